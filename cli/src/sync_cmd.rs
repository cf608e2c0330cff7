//! `platewatch sync` (upload the device's pending encounters, pull its hot lists) and
//! `platewatch status` (pending uploads, rejected rows, last sync, hot list ages), both on the
//! device directory a `scan --server` registered.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use platewatch_store::{EncounterStore, Store};
use platewatch_sync::{ServerClient, now_ms};
use serde_json::json;

use crate::device::{DeviceArgs, DeviceDir, fmt_time_ms};
use crate::field::{sync_hotlists, upload};

#[derive(Debug, Args)]
pub struct SyncArgs {
    #[command(flatten)]
    device: DeviceArgs,
    /// Only upload encounters.
    #[arg(long, conflicts_with = "no_upload")]
    no_hotlists: bool,
    /// Only pull hot lists.
    #[arg(long)]
    no_upload: bool,
    /// Keep acknowledged encounters on the device this long before deleting them.
    #[arg(long, value_name = "SECS", default_value_t = 0)]
    purge_grace_secs: u64,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Device directory.
    #[arg(long, value_name = "DIR", default_value = "platewatch-device")]
    device_dir: std::path::PathBuf,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

pub fn run_sync(a: SyncArgs) -> Result<ExitCode> {
    let rt = runtime()?;
    rt.block_on(sync_async(a))
}

async fn sync_async(a: SyncArgs) -> Result<ExitCode> {
    let mut dir = DeviceDir::open_existing(&a.device.device_dir)?;
    let client = ServerClient::new(&dir.client_config()?)?;
    let (store, enc) = dir.stores().await?;
    let quiet = a.json;
    let say = |s: &str| {
        if !quiet {
            println!("{s}");
        }
    };
    let mut ok = true;
    let mut out = json!({});
    if !a.no_upload {
        let pb = crate::progress(0, "uploading");
        pb.enable_steady_tick(Duration::from_millis(200));
        let (totals, purged) = upload(
            &mut dir,
            &enc,
            Duration::from_secs(a.purge_grace_secs),
            true,
        )
        .await?;
        pb.finish_and_clear();
        let outbox = enc.outbox_status(now_ms()).await?;
        say(&format!(
            "uploaded {} encounter(s) ({} stored, {} already there, {} rejected, {} failed request(s)); purged {purged}; {} pending",
            totals.stored + totals.duplicates,
            totals.stored,
            totals.duplicates,
            totals.rejected,
            totals.failures,
            outbox.pending
        ));
        if totals.failures > 0 {
            ok = false;
        }
        out["upload"] = json!({"totals": totals, "purged": purged, "pending": outbox.pending,
                               "rejected": outbox.rejected});
    }
    if !a.no_hotlists {
        let (key, note) = dir.hotlist_key(&a.device, &client).await?;
        say(&note);
        let report = sync_hotlists(&mut dir, key, &store, &say).await?;
        if report.refused() > 0 || report.failed() > 0 {
            ok = false;
        }
        out["hotlists"] = serde_json::to_value(&report)?;
    }
    if a.json {
        out["ok"] = ok.into();
        println!("{out}");
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub fn run_status(a: StatusArgs) -> Result<ExitCode> {
    let rt = runtime()?;
    rt.block_on(status_async(a))
}

async fn status_async(a: StatusArgs) -> Result<ExitCode> {
    let dir = DeviceDir::open_existing(&a.device_dir)?;
    let db = dir.db_path();
    let store = Store::open(&db)
        .await
        .with_context(|| format!("cannot open the device store {}", db.display()))?;
    // Status never decrypts images: no key needed.
    let enc = EncounterStore::new(store.clone());
    let now = now_ms();
    let outbox = enc.outbox_status(now).await?;
    let rejected = enc.rejected().await?;
    let lists = store.list_status(now.div_euclid(1000)).await?;
    let active = enc.active_sessions().await?;
    let s = &dir.state;
    if a.json {
        println!(
            "{}",
            json!({
                "server": s.server,
                "user": s.user,
                "device_id": s.device.as_ref().map(|d| d.id),
                "hotlist_key_id": s.hotlist_key_id,
                "outbox": outbox,
                "rejected": rejected,
                "last_upload_ms": s.last_upload_ms,
                "last_hotlist_sync_ms": s.last_hotlist_sync_ms,
                "last_hotlist_refused": s.last_hotlist_refused,
                "lists": lists,
                "stale_lists": lists.iter().filter(|l| l.stale).count(),
                "active_sessions": active.iter().map(ToString::to_string).collect::<Vec<_>>(),
            })
        );
        return Ok(ExitCode::SUCCESS);
    }
    let when = |t: Option<i64>| t.map_or_else(|| "never".to_string(), fmt_time_ms);
    println!(
        "device      {} on {} as {}",
        s.device
            .as_ref()
            .map_or_else(|| "not registered".to_string(), |d| format!("#{}", d.id)),
        s.server.as_deref().unwrap_or("-"),
        s.user.as_deref().unwrap_or("-")
    );
    println!(
        "hot list key {}",
        s.hotlist_key_id.as_deref().unwrap_or("not pinned")
    );
    println!(
        "uploads     {} pending ({} due now), {} rejected, {} acknowledged awaiting purge, {} recorded in all",
        outbox.pending, outbox.due, outbox.rejected, outbox.acked, outbox.recorded_total
    );
    if let Some(t) = outbox.oldest_pending_ms {
        println!(
            "            oldest pending encounter captured {}",
            fmt_time_ms(t)
        );
    }
    for r in &rejected {
        println!(
            "  rejected  {} captured {}: {}",
            r.id,
            fmt_time_ms(r.captured_at_ms),
            r.reason
        );
    }
    println!("last upload {}", when(s.last_upload_ms));
    println!(
        "last hot list sync {}{}",
        when(s.last_hotlist_sync_ms),
        if s.last_hotlist_refused > 0 {
            format!(" ({} list(s) REFUSED)", s.last_hotlist_refused)
        } else {
            String::new()
        }
    );
    if lists.is_empty() {
        println!("hot lists   none");
    }
    for l in &lists {
        println!(
            "hot list    {:<20} v{:<5} {:>7} entries  {:>6.1} h old{}",
            l.name,
            l.version,
            l.entries,
            l.age_secs as f64 / 3600.0,
            if l.stale {
                format!("  STALE (max {:.1} h)", l.max_age_secs as f64 / 3600.0)
            } else {
                String::new()
            }
        );
    }
    if !active.is_empty() {
        println!("sessions    {} not ended", active.len());
    }
    Ok(ExitCode::SUCCESS)
}
