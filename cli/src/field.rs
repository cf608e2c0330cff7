//! The whole device loop against a server, shared by `platewatch scan --server` and the demo:
//! sign in (rules acknowledged explicitly), register the device or reuse its token, check the
//! session's reason code against the server's list, sync hot lists (signed, pinned key; new
//! entries are checked against the reads still on the device for retro-hits), start a scanning
//! session, record every read as an encounter with its alerts and vehicle context image in the
//! device store, upload the outbox and end the session.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use ed25519_dalek::VerifyingKey;
use platewatch_core::hotlist::{Match, MatcherConfig};
use platewatch_core::session::{GpsFix, Session, SessionRequest};
use platewatch_core::{Encounter, PlateRead};
use platewatch_store::{EncounterStore, Evidence, RetroAlert, Store};
use platewatch_sync::hotlists::HotlistSync;
use platewatch_sync::{
    HotlistReport, HotlistSyncConfig, ListOutcome, ServerClient, SyncError, Totals, Uploader,
    UploaderConfig, account, now_ms,
};
use serde::Serialize;

use crate::device::DeviceArgs;
use crate::device::DeviceDir;

/// Options of a scan that runs the whole loop against a server.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// Platewatch server (e.g. https://platewatch.example.org): sign in, sync hot lists, start
    /// a scanning session, upload the encounters.
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// The officer scanning (password from $PLATEWATCH_PASSWORD or --password-file).
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// Reason code of the scanning session (one of the server's configured codes).
    #[arg(long, value_name = "CODE")]
    pub reason: Option<String>,
    /// Case number of the session (this or --justification is required).
    #[arg(long = "case", value_name = "CASE")]
    pub case_number: Option<String>,
    /// Justification of the session.
    #[arg(long, value_name = "TEXT")]
    pub justification: Option<String>,
    /// Scanning on behalf of this user.
    #[arg(long, value_name = "USER")]
    pub on_behalf_of: Option<String>,
    /// Acknowledge the server's rules of behaviour of this version (required when it has
    /// rules; a login without it fails showing the current version).
    #[arg(long, value_name = "VERSION")]
    pub acknowledge_rules: Option<i64>,
    /// Read the password from the first line of this file instead of $PLATEWATCH_PASSWORD.
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Position of the scans, LAT,LON (the command line has no GPS).
    #[arg(long, value_name = "LAT,LON", allow_hyphen_values = true)]
    pub position: Option<String>,
    /// Camera id recorded with each encounter.
    #[arg(long, default_value = "cli")]
    pub camera_id: String,
    /// Keep encounters that raised an alert on the device this long, waiting for the
    /// officer's decision (`platewatch alerts accept|reject|correct`), before they upload
    /// without one.
    #[arg(long, value_name = "SECS", default_value_t = 0)]
    pub alert_hold_secs: u64,
    #[command(flatten)]
    pub device: DeviceArgs,
}

impl ServerArgs {
    /// Whether any server option was given (then `--server` is required).
    pub fn any(&self) -> bool {
        self.server.is_some()
            || self.user.is_some()
            || self.reason.is_some()
            || self.case_number.is_some()
            || self.justification.is_some()
            || self.on_behalf_of.is_some()
            || self.acknowledge_rules.is_some()
            || self.position.is_some()
            || self.alert_hold_secs > 0
    }

    /// The password: `--password-file`, else `$PLATEWATCH_PASSWORD`.
    pub fn password(&self) -> Result<String> {
        if let Some(p) = &self.password_file {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read the password file {}", p.display()))?;
            let line = text.lines().next().unwrap_or_default().to_string();
            if line.is_empty() {
                bail!("the password file {} is empty", p.display());
            }
            return Ok(line);
        }
        match std::env::var("PLATEWATCH_PASSWORD") {
            Ok(p) if !p.is_empty() => Ok(p),
            _ => bail!("no password: set PLATEWATCH_PASSWORD or pass --password-file FILE"),
        }
    }

    /// `--position` as a fix at `at_ms`.
    pub fn fix(&self, at_ms: i64) -> Result<GpsFix> {
        let p = self.position.as_deref().context(
            "--position LAT,LON is required with --server (the command line has no GPS)",
        )?;
        let (lat, lon) = p
            .split_once(',')
            .and_then(|(a, b)| Some((a.trim().parse().ok()?, b.trim().parse().ok()?)))
            .context("--position must be LAT,LON in degrees, e.g. 37.7749,-122.4194")?;
        GpsFix::new(lat, lon, None, at_ms).context("--position")
    }
}

/// Counts of one field run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FieldStats {
    pub reads: u64,
    pub alerts: u64,
    /// Encounters stored on the device.
    pub encounters: u64,
    /// Reads not stored (text the server would refuse, or no crop).
    pub skipped: u64,
}

/// What the end of a field run did.
#[derive(Debug, Clone, Serialize)]
pub struct FieldReport {
    pub session_id: String,
    pub stats: FieldStats,
    pub upload: Totals,
    /// Rows still waiting for upload on the device.
    pub pending: i64,
    pub rejected: i64,
    pub purged: u64,
    pub session_ended_on_server: bool,
}

/// A signed-in device with an open scanning session.
#[derive(Debug)]
pub struct Field {
    rt: tokio::runtime::Runtime,
    pub dir: DeviceDir,
    pub store: Store,
    pub enc: EncounterStore,
    client: ServerClient,
    session: Session,
    camera_id: String,
    fix: GpsFix,
    pub hotlists: Option<HotlistReport>,
    pub stats: FieldStats,
}

/// Prints one line of a hot list sync report through `say`.
pub fn report_hotlists(report: &HotlistReport, say: &dyn Fn(&str)) {
    for l in &report.lists {
        let line = match &l.outcome {
            ListOutcome::Snapshot {
                version,
                added,
                removed,
            } => format!(
                "hot list {:?}: snapshot v{version} (+{added} −{removed}), signature verified",
                l.list
            ),
            ListOutcome::Delta {
                from,
                version,
                added,
                removed,
            } => format!(
                "hot list {:?}: delta v{from}→v{version} (+{added} −{removed}), signature verified",
                l.list
            ),
            ListOutcome::Current { version } => {
                format!("hot list {:?}: v{version} is current", l.list)
            }
            ListOutcome::Refused { reason } => format!(
                "hot list {:?}: REFUSED ({reason}); the stored list is kept",
                l.list
            ),
            ListOutcome::Failed { reason } => format!(
                "hot list {:?}: not refreshed ({reason}); the stored list is kept",
                l.list
            ),
        };
        say(&line);
    }
    for s in report.status.iter().filter(|s| s.stale) {
        say(&format!(
            "hot list {:?}: STALE ({:.1} h old, maximum {:.1} h): alerts from it will say so",
            s.name,
            s.age_secs as f64 / 3600.0,
            s.max_age_secs as f64 / 3600.0
        ));
    }
}

/// Counts of the retro-hits a hot list sync found on the reads still on the device.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RetroSummary {
    /// New alerts (one per stored read and new entry).
    pub hits: usize,
    /// Stored reads they fall on.
    pub reads: usize,
    /// Encounters still waiting for upload that are now alerts waiting for a disposition.
    pub pending: usize,
    /// Encounters already uploaded (the alert is kept on the device only).
    pub uploaded: usize,
}

impl RetroSummary {
    pub fn of(alerts: &[RetroAlert]) -> RetroSummary {
        let distinct = |f: &dyn Fn(&RetroAlert) -> bool| {
            let mut ids: Vec<i64> = alerts.iter().filter(|a| f(a)).map(|a| a.read_id).collect();
            ids.sort_unstable();
            ids.dedup();
            ids.len()
        };
        RetroSummary {
            hits: alerts.len(),
            reads: distinct(&|_| true),
            pending: distinct(&|a| a.pending),
            uploaded: distinct(&|a| a.encounter.is_some() && !a.pending),
        }
    }
}

/// Pulls the hot lists into the device store, verified against `key` (see
/// [`DeviceDir::hotlist_key`]), records the time in the device state, and checks the entries
/// the sync added against the reads still on the device (retro-hits, recorded as alerts).
pub async fn sync_hotlists(
    dir: &mut DeviceDir,
    key: VerifyingKey,
    enc: &EncounterStore,
    say: &dyn Fn(&str),
) -> Result<(HotlistReport, RetroSummary)> {
    let sync = HotlistSync::new(
        enc.store().clone(),
        &HotlistSyncConfig::new(dir.client_config()?, key),
    )?;
    let report = sync.sync_now().await.context("hot list sync failed")?;
    report_hotlists(&report, say);
    dir.state.last_hotlist_sync_ms = Some(report.at_ms);
    dir.state.last_hotlist_refused = report.refused();
    dir.save()?;
    let retro = enc
        .retro_alerts(&report.added_ids, now_ms(), MatcherConfig::default())
        .await
        .context("cannot check the stored reads against the new hot list entries")?;
    let retro = RetroSummary::of(&retro);
    if retro.hits > 0 {
        say(&format!(
            "retro-hits: {} new alert(s) on {} read(s) stored before the entries arrived; {} \
             encounter(s) on the device now wait for a disposition (`platewatch alerts`), {} \
             were uploaded already",
            retro.hits, retro.reads, retro.pending, retro.uploaded
        ));
    }
    Ok((report, retro))
}

/// Uploads due encounters (with `force`, also those waiting out a backoff) and purges
/// acknowledged ones older than `grace`.
pub async fn upload(
    dir: &mut DeviceDir,
    enc: &EncounterStore,
    grace: Duration,
    force: bool,
) -> Result<(Totals, u64)> {
    let mut config = UploaderConfig::new(dir.client_config()?);
    config.purge_grace = grace;
    let up = Uploader::new(enc.clone(), config)?;
    if force {
        enc.retry_now().await?;
    }
    let totals = match up.drain().await {
        Ok(t) => t,
        Err(SyncError::Unauthorized { status, message }) => bail!(
            "the server refused the device token ({status}: {message}); sign in again with \
             `platewatch scan … --server URL --user U`"
        ),
        Err(e) => return Err(e.into()),
    };
    let purged = up.purge(now_ms()).await?;
    dir.state.last_upload_ms = Some(now_ms());
    dir.save()?;
    Ok((totals, purged))
}

impl Field {
    /// Signs in, registers the device (or reuses its token), syncs the hot lists and starts
    /// the session on the server and on the device. `say` receives one line per step.
    pub fn start(args: &ServerArgs, say: &dyn Fn(&str)) -> Result<Field> {
        let server = args.server.clone().context("--server URL is required")?;
        let user = args
            .user
            .clone()
            .context("--user is required with --server")?;
        let reason = args
            .reason
            .clone()
            .context("--reason CODE is required with --server")?;
        if args.case_number.is_none() && args.justification.is_none() {
            bail!("a scanning session needs --case CASE or --justification TEXT");
        }
        let fix = args.fix(now_ms())?;
        let password = args.password()?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        let mut dir = DeviceDir::open(&args.device.device_dir)?;
        let (store, enc) = rt.block_on(dir.stores())?;
        let hold_ms = i64::try_from(args.alert_hold_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        let enc = enc.with_alert_hold_ms(hold_ms);
        // Pending rows of another user or server would be refused by the server.
        let outbox = rt.block_on(enc.outbox_status(now_ms()))?;
        let same = dir.state.server.as_deref() == Some(server.trim_end_matches('/'))
            && dir.state.user.as_deref() == Some(user.as_str());
        if !same && outbox.pending > 0 && dir.state.device.is_some() {
            bail!(
                "{} encounter(s) of {} are still waiting for upload to {}: run `platewatch sync` \
                 before signing in as another user or to another server",
                outbox.pending,
                dir.state.user.as_deref().unwrap_or("another user"),
                dir.state.server.as_deref().unwrap_or("another server")
            );
        }
        let anon = ServerClient::new(&platewatch_sync::ClientConfig::new(&server, ""))?;
        let login = match rt.block_on(account::login(
            &anon,
            &user,
            &password,
            args.acknowledge_rules,
        )) {
            Ok(l) => l,
            Err(SyncError::RulesNotAcknowledged { version, text }) => bail!(
                "the server's rules of behaviour are at version {version}; read them and sign in \
                 again with --acknowledge-rules {version}:\n\n{text}\n"
            ),
            Err(e) => return Err(anyhow::Error::from(e).context("sign-in failed")),
        };
        say(&format!(
            "signed in as {user} ({}){}",
            login.role,
            login
                .rules_version
                .map(|v| format!(", rules of behaviour v{v} acknowledged"))
                .unwrap_or_default()
        ));
        if !same || dir.state.device.is_none() {
            let name = format!("platewatch-cli {}", env!("CARGO_PKG_VERSION"));
            let device = rt
                .block_on(account::register_device(&anon, &login.token, &name))
                .context("device registration failed")?;
            say(&format!("device registered (id {})", device.id));
            dir.state.server = Some(server.trim_end_matches('/').to_string());
            dir.state.user = Some(user.clone());
            dir.state.device = Some(device);
            dir.save()?;
        } else if let Some(d) = &dir.state.device {
            say(&format!("reusing this device's registration (id {})", d.id));
        }
        let client = rt.block_on(dir.client())?;
        // The session's reason code must be one of the server's: check before scanning.
        let codes = rt.block_on(dir.refresh_reason_codes(&client))?;
        let reason = reason.trim().to_string();
        if !codes.contains(&reason) {
            bail!(
                "reason code {reason:?} is not one of the server's reason codes: {}; pass one of \
                 them with --reason",
                codes.join(", ")
            );
        }
        let (key, note) = rt.block_on(dir.hotlist_key(&args.device, &client))?;
        say(&note);
        let hotlists = match rt.block_on(sync_hotlists(&mut dir, key, &enc, say)) {
            Ok((r, _)) => Some(r),
            Err(e) => {
                say(&format!("warning: {e:#}; scanning with the stored lists"));
                None
            }
        };
        let device_id = dir
            .state
            .device
            .as_ref()
            .map(|d| format!("device-{}", d.id))
            .context("no device registration")?;
        let request = SessionRequest {
            user: user.clone(),
            on_behalf_of: args.on_behalf_of.clone(),
            reason_code: reason.clone(),
            case_number: args.case_number.clone(),
            justification: args.justification.clone(),
            device_id,
        };
        let mut session = Session::start(uuid::Uuid::new_v4(), &request, &codes, now_ms())
            .context("cannot start the scanning session")?;
        session.record_fix(fix)?;
        rt.block_on(account::start_session(&client, &session))
            .context("the server refused the scanning session")?;
        rt.block_on(enc.save_session(&session))?;
        say(&format!(
            "scanning session {} started: reason {reason}{}{}",
            session.id(),
            session
                .case_number()
                .map(|c| format!(", case {c}"))
                .unwrap_or_default(),
            session
                .on_behalf_of()
                .map(|o| format!(", on behalf of {o}"))
                .unwrap_or_default()
        ));
        Ok(Field {
            rt,
            dir,
            store,
            enc,
            client,
            session,
            camera_id: args.camera_id.clone(),
            fix,
            hotlists,
            stats: FieldStats::default(),
        })
    }

    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Stores `read` as an encounter of the session with its alerting `matches`, the plate
    /// crop and the vehicle context image the tracker kept from the best crop's frame (stills,
    /// sequences and video alike). Returns whether it was stored.
    pub fn record(&mut self, read: &PlateRead, matches: &[Match]) -> Result<bool> {
        self.stats.reads += 1;
        self.stats.alerts += matches.iter().filter(|m| m.alert).count() as u64;
        if read.crop.width == 0 || read.crop.height == 0 {
            self.stats.skipped += 1;
            return Ok(false);
        }
        let now = now_ms();
        let encounter = match Encounter::from_read(
            uuid::Uuid::new_v4(),
            read,
            &self.session,
            &self.camera_id,
            now,
            Some(GpsFix {
                at_ms: now,
                ..self.fix
            }),
            matches,
        ) {
            Ok(e) => e,
            Err(_) => {
                self.stats.skipped += 1;
                return Ok(false);
            }
        };
        let context = read
            .context
            .as_ref()
            .filter(|c| c.width > 0 && c.height > 0);
        let evidence = Evidence::encode(&read.crop, context)?;
        self.rt
            .block_on(self.enc.record(&encounter, &evidence, matches, now))
            .context("cannot store the encounter")?;
        self.stats.encounters += 1;
        Ok(true)
    }

    /// Ends the session (device and server) and uploads the outbox. Network failures leave
    /// the rows pending (`platewatch sync` retries) and are reported through `say`.
    pub fn finish(mut self, grace: Duration, say: &dyn Fn(&str)) -> Result<FieldReport> {
        let now = now_ms();
        self.session.end(now.max(self.session.started_at_ms()))?;
        self.rt.block_on(self.enc.save_session(&self.session))?;
        let (upload, purged) =
            match self
                .rt
                .block_on(upload(&mut self.dir, &self.enc, grace, false))
            {
                Ok(r) => r,
                Err(e) => {
                    say(&format!("warning: upload failed: {e:#}"));
                    (Totals::default(), 0)
                }
            };
        let ended = match self
            .rt
            .block_on(account::end_session(&self.client, &self.session))
        {
            Ok(()) => true,
            Err(e) => {
                say(&format!(
                    "warning: the server did not record the session's end: {e}"
                ));
                false
            }
        };
        let outbox = self.rt.block_on(self.enc.outbox_status(now_ms()))?;
        say(&format!(
            "uploaded {} encounter(s) ({} stored, {} already there, {} rejected); {} pending on the device",
            upload.stored + upload.duplicates,
            upload.stored,
            upload.duplicates,
            upload.rejected,
            outbox.pending
        ));
        if ended {
            say(&format!("scanning session {} ended", self.session.id()));
        }
        Ok(FieldReport {
            session_id: self.session.id().to_string(),
            stats: self.stats,
            upload,
            pending: outbox.pending,
            rejected: outbox.rejected,
            purged,
            session_ended_on_server: ended,
        })
    }
}
