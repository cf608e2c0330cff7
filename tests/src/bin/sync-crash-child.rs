//! Child process of the sync crash-safety test: records encounters into a device store and
//! uploads them to a server, printing its phase before each step so the test can tell where
//! its SIGKILL landed. It resumes from the store alone: the next encounter index is the count
//! of encounters ever recorded, the session is the active one in the store.
//!
//! usage: sync-crash-child DB SERVER_URL DEVICE_TOKEN USER TOTAL

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use platewatch_core::encounter::Encounter;
use platewatch_core::session::{GpsFix, Session, SessionRequest};
use platewatch_store::{EncounterStore, Store};
use platewatch_sync::{Backoff, ClientConfig, Uploader, UploaderConfig, now_ms};
use platewatch_tests::sync_fixture;
use uuid::Uuid;

/// Encounters recorded between upload passes.
const WRITES_PER_PASS: u64 = 3;

fn phase(p: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{p}");
    let _ = out.flush();
}

async fn run(args: &[String]) -> Result<(), String> {
    let [db, server, token, user, total] = args else {
        return Err("usage: sync-crash-child DB SERVER_URL DEVICE_TOKEN USER TOTAL".into());
    };
    let total: u64 = total.parse().map_err(|_| "TOTAL must be a number")?;
    phase("open");
    let store = Store::open(Path::new(db))
        .await
        .map_err(|e| e.to_string())?;
    let enc = EncounterStore::new(store).with_image_key(sync_fixture::image_key());
    let mut config = UploaderConfig::new(ClientConfig {
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(5),
        ..ClientConfig::new(server.as_str(), token.as_str())
    });
    config.batch_rows = 8;
    config.backoff = Backoff {
        initial: Duration::from_millis(5),
        max: Duration::from_millis(50),
    };
    config.purge_grace = Duration::ZERO;
    let uploader = Uploader::new(enc.clone(), config).map_err(|e| e.to_string())?;
    let evidence = sync_fixture::evidence();

    let session = match enc
        .active_sessions()
        .await
        .map_err(|e| e.to_string())?
        .first()
    {
        Some(id) => enc
            .session(*id)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("active session vanished")?,
        None => {
            let req = SessionRequest {
                user: user.clone(),
                on_behalf_of: None,
                reason_code: "patrol".into(),
                case_number: Some("CRASH-TEST".into()),
                justification: None,
                device_id: "crash-child".into(),
            };
            let mut s = Session::start(Uuid::new_v4(), &req, &["patrol"], now_ms())
                .map_err(|e| e.to_string())?;
            s.record_fix(
                GpsFix::new(37.7749, -122.4194, Some(5.0), now_ms()).map_err(|e| e.to_string())?,
            )
            .map_err(|e| e.to_string())?;
            phase("session");
            enc.save_session(&s).await.map_err(|e| e.to_string())?;
            s
        }
    };
    // Opened on the server before any encounter, as devices do (again after a restart: the
    // call is idempotent, and the crash may have come before it).
    let client =
        platewatch_sync::ServerClient::new(&ClientConfig::new(server.as_str(), token.as_str()))
            .map_err(|e| e.to_string())?;
    platewatch_sync::account::start_session(&client, &session)
        .await
        .map_err(|e| e.to_string())?;

    loop {
        let next = u64::try_from(enc.recorded_total().await.map_err(|e| e.to_string())?)
            .map_err(|_| "negative count")?;
        if next < total {
            for i in next..(next + WRITES_PER_PASS).min(total) {
                let read = sync_fixture::plate_read(&sync_fixture::plate_for(i));
                let e = Encounter::from_read(
                    Uuid::new_v4(),
                    &read,
                    &session,
                    "rear",
                    now_ms(),
                    None,
                    &[],
                )
                .map_err(|e| e.to_string())?;
                phase("write");
                enc.record(&e, &evidence, &[], now_ms())
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }
        phase("upload");
        uploader.upload_due().await.map_err(|e| e.to_string())?;
        phase("purge");
        uploader.purge(now_ms()).await.map_err(|e| e.to_string())?;
        let status = enc
            .outbox_status(now_ms())
            .await
            .map_err(|e| e.to_string())?;
        if next >= total && status.pending == 0 {
            phase(&format!(
                "done {}",
                serde_json::json!({
                    "recorded": status.recorded_total,
                    "pending": status.pending,
                    "acked": status.acked,
                    "rejected": status.rejected,
                })
            ));
            return Ok(());
        }
        if next >= total && status.due == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(&args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
