//! Network faults: the uploader talks to the real server through the fault-injecting proxy
//! (dropped connections, 5xx before and after the server stored the batch, dropped and
//! truncated answers, stalls past the timeout, slow answers, black holes). Every encounter
//! must reach the server exactly once and leave the device.

use std::sync::Arc;
use std::time::{Duration, Instant};

use platewatch_core::encounter::Encounter;
use platewatch_core::session::{GpsFix, Session, SessionRequest};
use platewatch_store::{EncounterStore, Store};
use platewatch_sync::{Backoff, ClientConfig, Totals, Uploader, UploaderConfig, now_ms};
use platewatch_tests::sync_fixture;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

use crate::common::{BACKENDS, OFFICER, TestServer, lost_and_duplicated};
use crate::proxy::{Fault, Proxy, Timings};

const ENCOUNTERS: u64 = 300;
const FAULTS: [Fault; 9] = [
    Fault::DropOnConnect,
    Fault::DropMidRequest,
    Fault::Unavailable,
    Fault::ErrorAfterProcessing,
    Fault::DropAnswer,
    Fault::TruncateAnswer,
    Fault::Stall,
    Fault::Slow,
    Fault::BlackHole,
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_encounter_delivered_exactly_once_through_faults() {
    for backend in BACKENDS {
        let server = TestServer::start(backend).await;
        let b = server.backend;
        let seed = 0x5EED_0000 + backend as u64;
        // The first request always passes, then 40 % pass and 60 % are spread over the faults.
        let schedule = Arc::new(move |n: usize| {
            if n == 0 {
                return Fault::Pass;
            }
            let mut rng =
                StdRng::seed_from_u64(seed ^ (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            if rng.random_bool(0.4) {
                Fault::Pass
            } else {
                FAULTS[rng.random_range(0..FAULTS.len())]
            }
        });
        // 10 s stalls of the field, shortened: the client gives up after 800 ms.
        let timeout = Duration::from_millis(800);
        let proxy = Proxy::start(
            server.addr,
            schedule,
            Timings {
                stall: Duration::from_millis(1_200),
                slow: Duration::from_millis(150),
                black_hole: Duration::from_millis(1_500),
            },
        )
        .await;

        let dir = tempfile::tempdir().expect("dir");
        let enc = EncounterStore::new(
            Store::open(&dir.path().join("device.db"))
                .await
                .expect("store"),
        );
        let mut session = Session::start(
            Uuid::new_v4(),
            &SessionRequest {
                user: OFFICER.into(),
                on_behalf_of: None,
                reason_code: "patrol".into(),
                case_number: None,
                justification: Some("network fault test".into()),
                device_id: "phone-faults".into(),
            },
            &["patrol"],
            now_ms(),
        )
        .expect("session");
        session
            .record_fix(GpsFix::new(51.5, -0.12, None, now_ms()).expect("fix"))
            .expect("fix");
        enc.save_session(&session).await.expect("save");
        server.open_session(&session).await;
        let evidence = sync_fixture::evidence();
        let mut expected = Vec::new();
        for i in 0..ENCOUNTERS {
            let plate = sync_fixture::plate_for(i);
            let read = sync_fixture::plate_read(&plate);
            let e =
                Encounter::from_read(Uuid::new_v4(), &read, &session, "rear", now_ms(), None, &[])
                    .expect("encounter");
            enc.record(&e, &evidence, &[], now_ms())
                .await
                .expect("record");
            expected.push(plate);
        }

        let mut config = UploaderConfig::new(ClientConfig {
            connect_timeout: timeout,
            request_timeout: timeout,
            ..ClientConfig::new(
                format!("http://{}", proxy.addr),
                server.device_token.clone(),
            )
        });
        config.batch_rows = 10;
        config.backoff = Backoff {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(150),
        };
        config.purge_grace = Duration::ZERO;
        let up = Uploader::new(enc.clone(), config).expect("uploader");

        let started = Instant::now();
        let mut totals = Totals::default();
        loop {
            let pass = up.upload_due().await.expect("upload pass");
            totals.rows += pass.rows;
            totals.requests += pass.requests;
            totals.stored += pass.stored;
            totals.duplicates += pass.duplicates;
            totals.failures += pass.failures;
            totals.retried += pass.retried;
            assert_eq!(pass.rejected, 0, "{b}: nothing here is invalid");
            up.purge(now_ms()).await.expect("purge");
            let st = enc.outbox_status(now_ms()).await.expect("status");
            if st.pending == 0 {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(150),
                "{b}: not delivered in time: {st:?}"
            );
            if pass.rows == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        let elapsed = started.elapsed();
        let counts = server.plate_counts().await;
        let (lost, duplicated) = lost_and_duplicated(&expected, &counts);
        let device_left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM encounters")
            .fetch_one(enc.store().pool())
            .await
            .expect("count");
        let faults = proxy.counts();
        println!(
            "network faults ({b}): {ENCOUNTERS} encounters in {:.1} s, {} requests",
            elapsed.as_secs_f64(),
            totals.requests
        );
        for (f, n) in &faults {
            println!("  {:<26} {n}", f.name());
        }
        println!(
            "  acknowledged stored {} + duplicate {} (re-sent after the server had stored them), failed requests {}, rows re-queued {}",
            totals.stored, totals.duplicates, totals.failures, totals.retried
        );
        println!("  lost {lost}, duplicated {duplicated}, left on device {device_left}");
        assert_eq!((lost, duplicated), (0, 0), "{b}");
        assert_eq!(counts.len() as u64, ENCOUNTERS, "{b}");
        assert_eq!(
            (totals.stored + totals.duplicates) as u64,
            ENCOUNTERS,
            "{b}: each acknowledged exactly once"
        );
        assert_eq!(device_left, 0, "{b}: acknowledged rows purged");
        let kinds = faults.keys().filter(|f| **f != Fault::Pass).count();
        assert!(
            kinds >= 7,
            "{b}: most fault kinds were exercised: {faults:?}"
        );
    }
}
