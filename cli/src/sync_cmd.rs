//! `platewatch sync` (upload the device's pending encounters, pull its hot lists and reason
//! codes, report retro-hits of new entries on stored reads; once, or with `--watch` every
//! interval until Ctrl-C with one line per round and backoff after failed rounds) and
//! `platewatch status` (pending uploads, rejected rows, last sync, hot list ages, reason
//! codes), both on the device directory a `scan --server` registered.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use platewatch_store::{EncounterStore, Store};
use platewatch_sync::{Backoff, HotlistReport, ListOutcome, Totals, now_ms};
use serde_json::json;

use crate::device::{DeviceArgs, DeviceDir, fmt_time_ms};
use crate::field::{RetroSummary, sync_hotlists, upload};

#[derive(Debug, Args)]
pub struct SyncArgs {
    #[command(flatten)]
    device: DeviceArgs,
    /// Only upload encounters.
    #[arg(long, conflicts_with = "no_upload")]
    no_hotlists: bool,
    /// Only pull hot lists (and the reason codes).
    #[arg(long)]
    no_upload: bool,
    /// Keep acknowledged encounters on the device this long before deleting them.
    #[arg(long, value_name = "SECS", default_value_t = 0)]
    purge_grace_secs: u64,
    /// Print one JSON object (with --watch: one per round, and one when stopped).
    #[arg(long)]
    json: bool,
    /// Keep syncing until Ctrl-C (SIGINT) or SIGTERM: a round every --interval, one line per
    /// round (counts only); a failed round backs off (with jitter) up to ten minutes.
    #[arg(long)]
    watch: bool,
    /// Time between rounds of --watch: 60s, 5m, 1h, 500ms, or a number of seconds.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    interval: Option<Duration>,
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

/// Parses `60s`, `5m`, `1h`, `250ms` or a plain number of seconds (at least 100 ms).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 60s, 5m, 1h or 500ms"))?;
    let secs = match unit.trim() {
        "" | "s" | "sec" | "secs" => n,
        "ms" => n / 1000.0,
        "m" | "min" | "mins" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("{s:?}: the unit must be ms, s, m or h")),
    };
    if !(0.1..=7.0 * 86_400.0).contains(&secs) {
        return Err(format!("{s:?}: must be between 100ms and 7 days"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

pub fn run_sync(a: SyncArgs) -> Result<ExitCode> {
    if a.interval.is_some() && !a.watch {
        bail!("--interval only applies to --watch");
    }
    let rt = runtime()?;
    if a.watch {
        rt.block_on(watch(a))
    } else {
        rt.block_on(sync_async(a))
    }
}

async fn sync_async(a: SyncArgs) -> Result<ExitCode> {
    let mut dir = DeviceDir::open_existing(&a.device.device_dir)?;
    let client = dir.client().await?;
    let (_, enc) = dir.stores().await?;
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
        let (report, retro) = sync_hotlists(&mut dir, key, &enc, &say).await?;
        if report.refused() > 0 || report.failed() > 0 {
            ok = false;
        }
        out["hotlists"] = serde_json::to_value(&report)?;
        out["retro_hits"] = serde_json::to_value(retro)?;
        match dir.refresh_reason_codes(&client).await {
            Ok(codes) => {
                say(&format!("reason codes: {}", codes.join(", ")));
                out["reason_codes"] = json!(codes);
            }
            Err(e) => {
                say(&format!(
                    "warning: {e:#}; keeping the reason codes fetched before"
                ));
                ok = false;
            }
        }
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

/// Waits for SIGINT (Ctrl-C) or SIGTERM; the handlers are installed when it is made, so a
/// signal arriving between two waits is not lost.
struct Stop {
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
}

impl Stop {
    fn new() -> Result<Stop> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Stop {
                int: signal(SignalKind::interrupt()).context("cannot handle SIGINT")?,
                term: signal(SignalKind::terminate()).context("cannot handle SIGTERM")?,
            })
        }
        #[cfg(not(unix))]
        Ok(Stop {})
    }

    async fn wait(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// What one round of `sync --watch` did.
#[derive(Debug, Default)]
struct Round {
    upload: Option<(Totals, u64)>,
    pending: Option<i64>,
    hotlists: Option<HotlistReport>,
    retro: RetroSummary,
    errors: Vec<String>,
}

impl Round {
    /// Whether the round should be retried sooner than a backoff: nothing failed.
    fn ok(&self) -> bool {
        self.errors.is_empty()
            && self.upload.is_none_or(|(t, _)| t.failures == 0)
            && self.hotlists.as_ref().is_none_or(|h| h.failed() == 0)
    }

    fn list_changes(&self) -> (usize, usize, usize) {
        let mut changed = (0, 0, 0);
        for l in self.hotlists.iter().flat_map(|h| &h.lists) {
            match l.outcome {
                ListOutcome::Snapshot { added, removed, .. }
                | ListOutcome::Delta { added, removed, .. } => {
                    changed.0 += 1;
                    changed.1 += added;
                    changed.2 += removed;
                }
                _ => {}
            }
        }
        changed
    }
}

/// One round: re-reads `device.json` (a `scan` may have signed in again meanwhile), uploads
/// due rows (all of them on the first round, as `sync` does), pulls the hot lists (retro-hits
/// on stored reads) and refreshes the reason codes. Failures are collected, not returned.
async fn watch_round(
    a: &SyncArgs,
    dir: &mut DeviceDir,
    enc: &EncounterStore,
    key_args: &mut Option<DeviceArgs>,
    first: bool,
) -> Round {
    let mut r = Round::default();
    if let Err(e) = dir.reload() {
        r.errors.push(format!("{e:#}"));
        return r;
    }
    let client = match dir.client().await {
        Ok(c) => c,
        Err(e) => {
            r.errors.push(format!("{e:#}"));
            return r;
        }
    };
    if !a.no_upload {
        let grace = Duration::from_secs(a.purge_grace_secs);
        match upload(dir, enc, grace, first).await {
            Ok(t) => r.upload = Some(t),
            Err(e) => r.errors.push(format!("upload: {e:#}")),
        }
        match enc.outbox_status(now_ms()).await {
            Ok(o) => r.pending = Some(o.pending),
            Err(e) => r.errors.push(format!("device store: {e}")),
        }
    }
    if !a.no_hotlists {
        let pinned = match key_args {
            Some(args) => dir.hotlist_key(args, &client).await,
            None => dir.hotlist_key(&a.device_without_key(), &client).await,
        };
        match pinned {
            Ok((key, _)) => {
                *key_args = None;
                match sync_hotlists(dir, key, enc, &|_| {}).await {
                    Ok((report, retro)) => {
                        r.hotlists = Some(report);
                        r.retro = retro;
                    }
                    Err(e) => r.errors.push(format!("{e:#}")),
                }
            }
            Err(e) => r.errors.push(format!("{e:#}")),
        }
        if let Err(e) = dir.refresh_reason_codes(&client).await {
            r.errors.push(format!("{e:#}"));
        }
    }
    r
}

impl SyncArgs {
    /// The device options with no key to pin (the key is pinned by the first round).
    fn device_without_key(&self) -> DeviceArgs {
        DeviceArgs {
            device_dir: self.device.device_dir.clone(),
            hotlist_key: None,
            trust_server_key: false,
        }
    }
}

async fn watch(a: SyncArgs) -> Result<ExitCode> {
    let interval = a.interval.unwrap_or(Duration::from_secs(60));
    let backoff = Backoff {
        initial: interval,
        max: interval.max(Duration::from_secs(600)),
    };
    let mut dir = DeviceDir::open_existing(&a.device.device_dir)?;
    dir.client_config()?;
    let (_, enc) = dir.stores().await?;
    let mut stop = Stop::new()?;
    let mut key_args = Some(a.device.clone());
    let (mut rounds, mut failures) = (0u64, 0u32);
    let (mut uploaded, mut retro_hits) = (0usize, 0usize);
    if !a.json {
        eprintln!("syncing every {}; Ctrl-C stops", fmt_duration(interval));
    }
    let mut rng = rand::rng();
    loop {
        let first = rounds == 0;
        let round = tokio::select! {
            r = watch_round(&a, &mut dir, &enc, &mut key_args, first) => r,
            _ = stop.wait() => break,
        };
        rounds += 1;
        let ok = round.ok();
        failures = if ok { 0 } else { failures.saturating_add(1) };
        let wait = if ok {
            interval
        } else {
            backoff.delay(failures.saturating_add(1), &mut rng)
        };
        let up = round.upload.map(|(t, _)| t).unwrap_or_default();
        uploaded += up.stored + up.duplicates;
        retro_hits += round.retro.hits;
        print_round(&a, rounds, &round, wait);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.wait() => break,
        }
    }
    if a.json {
        println!(
            "{}",
            json!({"stopped": true, "rounds": rounds, "uploaded": uploaded,
                   "retro_hits": retro_hits})
        );
    } else {
        println!(
            "stopped after {rounds} round(s): {uploaded} encounter(s) uploaded, {retro_hits} retro-hit(s)"
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn fmt_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms % 3_600_000 == 0 {
        format!("{}h", ms / 3_600_000)
    } else if ms % 60_000 == 0 {
        format!("{}m", ms / 60_000)
    } else if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else if ms >= 10_000 {
        format!("{}s", ms.div_ceil(1000))
    } else {
        format!("{ms}ms")
    }
}

/// One line (or JSON object) per round: counts only, never plate text.
fn print_round(a: &SyncArgs, n: u64, r: &Round, wait: Duration) {
    let (changed, added, removed) = r.list_changes();
    let now = now_ms();
    if a.json {
        let mut v = json!({
            "round": n,
            "at_ms": now,
            "ok": r.ok(),
            "retro_hits": r.retro,
            "errors": r.errors,
            "next_round_ms": u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
        });
        if let Some((t, purged)) = &r.upload {
            v["upload"] = json!({"totals": t, "purged": purged, "pending": r.pending});
        }
        if let Some(h) = &r.hotlists {
            v["hotlists"] = json!({
                "changed": changed, "added": added, "removed": removed,
                "refused": h.refused(), "failed": h.failed(), "stale": h.stale(),
                "versions": h.status.iter().map(|s| (s.name.clone(), s.version))
                    .collect::<std::collections::BTreeMap<_, _>>(),
            });
        }
        println!("{v}");
        return;
    }
    let mut parts = Vec::new();
    if let Some((t, purged)) = &r.upload {
        parts.push(format!(
            "uploaded {} ({} stored, {} already there, {} rejected, {} failed request(s)), purged {purged}, {} pending",
            t.stored + t.duplicates,
            t.stored,
            t.duplicates,
            t.rejected,
            t.failures,
            r.pending.map_or_else(|| "?".to_string(), |p| p.to_string())
        ));
    }
    if let Some(h) = &r.hotlists {
        parts.push(format!(
            "hot lists: {changed} changed (+{added} −{removed}), {} refused, {} not refreshed, {} stale",
            h.refused(),
            h.failed(),
            h.stale()
        ));
        parts.push(format!(
            "{} retro-hit(s) ({} waiting for a disposition)",
            r.retro.hits, r.retro.pending
        ));
    }
    for e in &r.errors {
        parts.push(format!("error: {e}"));
    }
    println!(
        "{} round {n}: {}; next round in {}",
        fmt_time_ms(now),
        parts.join("; "),
        fmt_duration(wait)
    );
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
    let waiting = enc.alerts().await?.iter().filter(|a| a.waiting()).count();
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
                "alerts_waiting": waiting,
                "last_upload_ms": s.last_upload_ms,
                "last_hotlist_sync_ms": s.last_hotlist_sync_ms,
                "last_hotlist_refused": s.last_hotlist_refused,
                "lists": lists,
                "stale_lists": lists.iter().filter(|l| l.stale).count(),
                "active_sessions": active.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "reason_codes": s.reason_codes,
                "reason_codes_at_ms": s.reason_codes_at_ms,
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
    if s.reason_codes.is_empty() {
        println!("reason codes not fetched yet");
    } else {
        println!(
            "reason codes {} (fetched {})",
            s.reason_codes.join(", "),
            when(s.reason_codes_at_ms)
        );
    }
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
    if waiting > 0 {
        println!("alerts      {waiting} waiting for a disposition (`platewatch alerts`)");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_print() {
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        for bad in ["", "s", "10x", "-1s", "0s", "50ms", "30d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(fmt_duration(Duration::from_secs(60)), "1m");
        assert_eq!(fmt_duration(Duration::from_secs(90)), "90s");
        assert_eq!(fmt_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(fmt_duration(Duration::from_secs(7200)), "2h");
    }
}
