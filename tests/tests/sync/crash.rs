//! Crash safety: a child process records encounters and uploads them; it is killed with
//! SIGKILL at 100 random points (mid-write, mid-batch, mid-acknowledgement, mid-purge, at
//! start-up) and restarted each time, then run to completion. The server must hold every
//! encounter exactly once and the device none that were acknowledged.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use platewatch_store::{EncounterStore, Store};
use platewatch_sync::now_ms;
use platewatch_tests::sync_fixture;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::common::{Backend, OFFICER, TestServer, lost_and_duplicated};

const KILLS: usize = 100;
const TOTAL: u64 = 3000;
const CHILD: &str = env!("CARGO_BIN_EXE_sync-crash-child");

struct Run {
    child: std::process::Child,
    phase: Arc<Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Run {
    /// Waits until the child's stdout is closed (it exited or was killed).
    fn join_reader(&mut self) {
        if let Some(r) = self.reader.take() {
            r.join().expect("reader");
        }
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        // Never leave a child behind (a failing assertion unwinds through here).
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the device store says, for failure messages.
async fn device_state(db: &str) -> String {
    let enc = EncounterStore::new(Store::open(std::path::Path::new(db)).await.expect("store"));
    let st = enc.outbox_status(now_ms()).await.expect("status");
    let errors: Vec<(Option<String>, i64)> = sqlx::query_as(
        "SELECT last_error, COUNT(*) FROM encounters WHERE status = 'pending' GROUP BY last_error",
    )
    .fetch_all(enc.store().pool())
    .await
    .expect("errors");
    format!("{st:?}; pending by last error: {errors:?}")
}

fn spawn(db: &str, server: &TestServer) -> Run {
    let mut child = Command::new(CHILD)
        .args([
            db,
            &server.base,
            &server.device_token,
            OFFICER,
            &TOTAL.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the crash child");
    let out = child.stdout.take().expect("stdout");
    let phase = Arc::new(Mutex::new("start".to_string()));
    let p = phase.clone();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            *p.lock().expect("lock") = line;
        }
    });
    Run {
        child,
        phase,
        reader: Some(reader),
    }
}

async fn crash_safety(backend: Backend) {
    let server = TestServer::start(backend).await;
    let b = server.backend;
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("device.db");
    let db = db.to_str().expect("utf-8").to_string();
    let seed = 0xC0FFEE + backend as u64;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut killed_in: BTreeMap<String, usize> = BTreeMap::new();
    let mut finished_early = 0;
    let started = Instant::now();
    for _ in 0..KILLS {
        let mut run = spawn(&db, &server);
        let delay = Duration::from_millis(rng.random_range(5..=150));
        tokio::time::sleep(delay).await;
        match run.child.try_wait().expect("try_wait") {
            Some(status) => {
                assert!(
                    status.success(),
                    "{b}: the child failed on its own: {status}"
                );
                finished_early += 1;
            }
            None => {
                // std's kill is SIGKILL on Unix.
                run.child.kill().expect("SIGKILL");
                run.child.wait().expect("reap");
                let phase = run.phase.lock().expect("lock").clone();
                let phase = phase
                    .split_whitespace()
                    .next()
                    .unwrap_or("start")
                    .to_string();
                *killed_in.entry(phase).or_default() += 1;
            }
        }
        run.join_reader();
    }
    // Last run, to completion.
    let mut run = spawn(&db, &server);
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = run.child.try_wait().expect("try_wait") {
            break s;
        }
        if Instant::now() > deadline {
            drop(run);
            panic!(
                "{b}: the final run did not finish: {}",
                device_state(&db).await
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    run.join_reader();
    assert!(status.success(), "{b}: final run: {status}");
    let last = run.phase.lock().expect("lock").clone();
    assert!(last.starts_with("done"), "{b}: {last}");

    let expected: Vec<String> = (0..TOTAL).map(sync_fixture::plate_for).collect();
    let counts = server.plate_counts().await;
    let (lost, duplicated) = lost_and_duplicated(&expected, &counts);
    let enc = EncounterStore::new(
        Store::open(dir.path().join("device.db").as_path())
            .await
            .expect("store"),
    );
    let st = enc.outbox_status(now_ms()).await.expect("status");
    let on_device: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM encounters")
        .fetch_one(enc.store().pool())
        .await
        .expect("count");
    println!(
        "crash safety ({b}): {KILLS} SIGKILLs in {:.1} s (seed {seed:#x}), {finished_early} runs finished before their kill",
        started.elapsed().as_secs_f64()
    );
    println!("  killed while: {killed_in:?}");
    println!(
        "  encounters {TOTAL}: server holds {} rows; lost {lost}, duplicated {duplicated}; device holds {on_device} (acked {}, pending {}, rejected {})",
        counts.values().sum::<i64>(),
        st.acked,
        st.pending,
        st.rejected
    );
    assert_eq!((lost, duplicated), (0, 0), "{b}");
    assert_eq!(
        counts.values().sum::<i64>() as u64,
        TOTAL,
        "{b}: nothing else stored"
    );
    assert_eq!(
        st.recorded_total as u64, TOTAL,
        "{b}: every index recorded exactly once"
    );
    assert_eq!(
        (on_device, st.acked, st.pending, st.rejected),
        (0, 0, 0, 0),
        "{b}"
    );
    assert!(
        killed_in.values().sum::<usize>() >= KILLS / 2,
        "{b}: most runs were killed: {killed_in:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_safety_sqlite() {
    crash_safety(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_safety_postgres() {
    crash_safety(Backend::Postgres).await;
}
