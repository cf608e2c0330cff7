//! The `Scanner` object: owns the engine, the device store, the server client (uploader, hot
//! list sync, sessions), the inference thread and a small tokio runtime for store and network
//! work. Blocking methods run their SQLite work on that runtime and return within milliseconds;
//! the methods that may talk to the server (`start_session`, `end_session`, `reason_codes`,
//! `sync_now`) are `async` (a Kotlin `suspend fun`, a Swift `async` function). With a server,
//! a session is opened on it before scanning, as `platewatch scan --server` does, and
//! `sync_now` uploads the outbox and then pulls every hot list, verified against the pinned key.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use platewatch_core::encounter::Disposition;
use platewatch_core::hotlist::signed;
use platewatch_core::hotlist::{ImportOptions, Match, Matcher, MatcherConfig, import};
use platewatch_core::session::{Session, SessionRequest};
use platewatch_core::{
    DetectorConfig, Engine, EngineConfig, Frame, GpsFix, Models, Plane, Rotation, TrackerConfig,
};
use platewatch_store::{EncounterStore, ImageKey, ListMeta, Store};
use platewatch_sync::{
    ClientConfig, HotlistSync, HotlistSyncConfig, ServerClient, SyncError, Uploader,
    UploaderConfig, account, now_ms,
};
use uuid::Uuid;

use crate::account::context;
use crate::error::{ErrorKind, PlatewatchError, guard};
use crate::events::{Event, Hub, ScanListener, TaskHandle};
use crate::raw;
use crate::types::*;
use crate::worker::{self, Mailbox, OwnedPixels, PendingFrame, alert_matches};

/// Scanners alive in this process (diagnostics; tests check that `close()` releases one).
static LIVE: AtomicU64 = AtomicU64::new(0);

/// How many `Scanner`s are alive in this process.
#[uniffi::export]
pub fn live_scanners() -> u64 {
    LIVE.load(Ordering::SeqCst)
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub pushed: AtomicU64,
    pub processed: AtomicU64,
    pub dropped: AtomicU64,
    pub failed: AtomicU64,
    pub last_inference_us: AtomicU64,
}

/// State shared by the object, the inference thread and background tasks.
#[derive(Debug)]
pub(crate) struct Shared {
    pub engine: Arc<Engine>,
    pub rt: tokio::runtime::Handle,
    pub encounters: EncounterStore,
    matcher: RwLock<Arc<Matcher>>,
    matcher_config: MatcherConfig,
    session: Mutex<Option<Session>>,
    pub hub: Arc<Hub>,
    pub camera_id: String,
    device_id: String,
    /// The configured reason codes, replaced by the server's list whenever it is fetched.
    reason_codes: RwLock<Vec<String>>,
    uploader: Option<Uploader>,
    /// Hot list sync (a server and a pinned key are configured).
    hotlists: Option<HotlistSync>,
    /// The device's registration, when the app passed it (`ScannerConfig::device`): its token
    /// is renewed by `sync_now`.
    device: Mutex<Option<account::Device>>,
    /// Id of the pinned hot list key.
    hotlist_key_id: Option<String>,
    /// Serialises session starts and ends (the session slot itself is locked only briefly:
    /// `push_frame` reads it).
    session_op: tokio::sync::Mutex<()>,
    /// Serialises syncs.
    sync_op: tokio::sync::Mutex<()>,
    pub counters: Counters,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    pub(crate) fn matcher(&self) -> Arc<Matcher> {
        self.matcher
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The active session, if any.
    pub(crate) fn session_snapshot(&self) -> Option<Session> {
        lock(&self.session).clone().filter(Session::is_active)
    }

    /// The server client (a server is configured).
    fn server(&self) -> Option<&ServerClient> {
        self.uploader.as_ref().map(Uploader::client)
    }

    fn reason_codes(&self) -> Vec<String> {
        self.reason_codes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The server's reason codes (kept for the next session start), or the configured ones
    /// without a server.
    async fn fetch_reason_codes(&self) -> Result<Vec<String>, PlatewatchError> {
        let Some(server) = self.server() else {
            return Ok(self.reason_codes());
        };
        let codes = server
            .reason_codes()
            .await
            .map_err(|e| context(e.into(), "cannot fetch the server's reason codes"))?;
        codes.clone_into(&mut self.reason_codes.write().unwrap_or_else(|p| p.into_inner()));
        Ok(codes)
    }

    /// Starts a session: with a server, its reason codes are fetched first (the reason must be
    /// one of them) and the session is opened on the server before it is kept on the device,
    /// so scanning never starts without a server session. Without a server, the configured
    /// reason codes apply.
    async fn start_session(&self, request: SessionStart) -> Result<SessionInfo, PlatewatchError> {
        let _op = self.session_op.lock().await;
        if self.session_snapshot().is_some() {
            return Err(PlatewatchError::invalid(
                "a session is already active; end it first",
            ));
        }
        let codes = self.fetch_reason_codes().await?;
        let req = SessionRequest {
            user: request.user,
            on_behalf_of: request.on_behalf_of,
            reason_code: request.reason_code,
            case_number: request.case_number,
            justification: request.justification,
            device_id: self.device_id.clone(),
        };
        let session = Session::start(Uuid::new_v4(), &req, &codes, now_ms())?;
        if let Some(server) = self.server() {
            account::start_session(server, &session)
                .await
                .map_err(session_refused)?;
        }
        self.encounters.save_session(&session).await?;
        let info = session_info(&session);
        *lock(&self.session) = Some(session);
        Ok(info)
    }

    /// Ends the active session on the device, then on the server. The server not recording
    /// the end is reported (`ended_on_server` false, and an `on_error` event), not an error:
    /// the session is over on the device and every encounter carries it.
    async fn end_session(&self) -> Result<SessionEnd, PlatewatchError> {
        let _op = self.session_op.lock().await;
        let ended = {
            let mut slot = lock(&self.session);
            let Some(session) = slot.as_mut().filter(|s| s.is_active()) else {
                return Err(PlatewatchError::invalid("no session is active"));
            };
            session.end(now_ms().max(session.started_at_ms()))?;
            session.clone()
        };
        self.encounters.save_session(&ended).await?;
        let ended_on_server = match self.server() {
            None => false,
            Some(server) => match account::end_session(server, &ended).await {
                Ok(()) => true,
                Err(e) => {
                    let e = context(e.into(), "the server did not record the session's end");
                    self.hub.publish(Event::error(e.kind(), e.to_string()));
                    false
                }
            },
        };
        Ok(SessionEnd {
            id: ended.id().hyphenated().to_string(),
            ended_at_ms: ended.ended_at_ms().unwrap_or_else(now_ms),
            ended_on_server,
        })
    }

    async fn reload_matcher(&self) -> Result<(), PlatewatchError> {
        let m = self
            .encounters
            .store()
            .load_matcher(self.matcher_config)
            .await?;
        *self.matcher.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(m);
        Ok(())
    }

    async fn upload_status(&self) -> Result<UploadStatus, PlatewatchError> {
        let s = self.encounters.outbox_status(now_ms()).await?;
        Ok(UploadStatus {
            pending: s.pending,
            due: s.due,
            acked: s.acked,
            rejected: s.rejected,
            oldest_pending_ms: s.oldest_pending_ms,
        })
    }

    /// Uploads the outbox, then syncs the hot lists; publishes the progress to listeners.
    /// Both parts run even when the other fails (except after the server refused the device
    /// token); the first failure is returned, with the report carried by the `Failed` status.
    async fn sync(&self) -> Result<SyncReport, PlatewatchError> {
        let uploader = self.uploader.as_ref().ok_or_else(|| {
            PlatewatchError::invalid("no server is configured (ScannerConfig.server_url)")
        })?;
        let _op = self.sync_op.lock().await;
        let status = |phase, report, pending, error| {
            Event::Sync(SyncStatus {
                phase,
                report,
                pending,
                error,
            })
        };
        let pending = self.upload_status().await.unwrap_or_default();
        self.hub.publish(status(
            SyncPhase::Started,
            SyncReport::default(),
            pending,
            None,
        ));
        let mut report = SyncReport::default();
        let mut error = match self.renew_token(uploader).await {
            Ok(renewed) => {
                report.renewed_device = renewed;
                None
            }
            Err(e) => Some(e),
        };
        if error.is_none() {
            error = self.upload(uploader, &mut report).await.err();
        }
        if !matches!(error, Some(PlatewatchError::Unauthorized(_))) {
            if let Err(e) = self.sync_hotlists(&mut report).await {
                error.get_or_insert(e);
            }
        }
        if report.lists.is_empty() {
            report.lists = self.list_status().await.unwrap_or_default();
        }
        let pending = self.upload_status().await.unwrap_or_default();
        match error {
            None => {
                self.hub
                    .publish(status(SyncPhase::Finished, report.clone(), pending, None));
                Ok(report)
            }
            Some(e) => {
                self.hub.publish(status(
                    SyncPhase::Failed,
                    report,
                    pending,
                    Some(e.to_string()),
                ));
                self.hub.publish(Event::error(e.kind(), e.to_string()));
                Err(e)
            }
        }
    }

    /// Renews the device token when half of its lifetime is gone (with a registration from
    /// `ScannerConfig::device`), and sends the new one from then on. A token the server
    /// refuses is `Unauthorized`; a renewal that fails on the network is tried again at the
    /// next sync, with the old token, which is still valid.
    async fn renew_token(
        &self,
        uploader: &Uploader,
    ) -> Result<Option<crate::account::DeviceRegistration>, PlatewatchError> {
        let Some(device) = lock(&self.device).clone() else {
            return Ok(None);
        };
        if !device.renewal_due(now_ms()) {
            return Ok(None);
        }
        let renewed = match account::renew_device(uploader.client(), &device).await {
            Ok(d) => d,
            Err(e @ SyncError::Unauthorized { .. }) => {
                return Err(context(e.into(), "the device token was refused"));
            }
            Err(_) => return Ok(None),
        };
        uploader.client().set_device_token(&renewed.token)?;
        if let Some(h) = &self.hotlists {
            h.client().set_device_token(&renewed.token)?;
        }
        *lock(&self.device) = Some(renewed.clone());
        Ok(Some(renewed.into()))
    }

    /// Sends every due encounter and purges acknowledged ones, counting into `report`.
    async fn upload(
        &self,
        uploader: &Uploader,
        report: &mut SyncReport,
    ) -> Result<(), PlatewatchError> {
        let t = uploader.drain().await?;
        report.rows = t.rows as u64;
        report.requests = t.requests as u64;
        report.stored = t.stored as u64;
        report.duplicates = t.duplicates as u64;
        report.rejected = t.rejected as u64;
        report.retried = t.retried as u64;
        report.failures = t.failures as u64;
        report.purged = uploader.purge(now_ms()).await?;
        if t.failures > 0 {
            // The uploader keeps the rows and retries them with backoff; the app learns that
            // this attempt did not get through.
            return Err(PlatewatchError::Network(format!(
                "{} request(s) failed; {} row(s) will be retried",
                t.failures, t.retried
            )));
        }
        Ok(())
    }

    /// Pulls every hot list (verified against the pinned key, applied atomically by the
    /// store) and swaps the matcher when something changed, so new entries alert at once. A
    /// refused or unreachable list is an outcome in `report.hotlists`, not an error.
    async fn sync_hotlists(&self, report: &mut SyncReport) -> Result<(), PlatewatchError> {
        let Some(sync) = &self.hotlists else {
            return Err(PlatewatchError::invalid(
                "no hot list key is pinned (ScannerConfig.hotlist_key): hot lists were not synced",
            ));
        };
        match sync.sync_now().await {
            Ok(r) => {
                report.hotlists = r.lists.iter().map(HotlistSyncResult::from).collect();
                let changed = r.changed();
                report.lists = r.status.into_iter().map(HotlistInfo::from).collect();
                if changed {
                    self.reload_matcher().await?;
                }
                report.retro_hits = self.retro_hits(&r.added_ids).await?;
                Ok(())
            }
            Err(e) => {
                // Lists applied before the failure must alert too.
                self.reload_matcher().await?;
                Err(context(e.into(), "hot list sync failed"))
            }
        }
    }

    /// Checks the reads still on the device against the entries a sync just added: each hit
    /// is recorded as an alert (an encounter not uploaded yet waits for the officer's
    /// disposition and carries the match's tags) and delivered to listeners like a live alert,
    /// once per encounter, with `retro` set. Returns the number of hits.
    async fn retro_hits(&self, added: &[u32]) -> Result<u64, PlatewatchError> {
        let now = now_ms();
        let hits = self
            .encounters
            .retro_alerts(added, now, self.matcher_config)
            .await?;
        let mut by_encounter: Vec<(Uuid, Vec<&Match>)> = Vec::new();
        for h in &hits {
            let Some(id) = h.encounter else { continue };
            match by_encounter.iter_mut().find(|(e, _)| *e == id) {
                Some((_, ms)) => ms.push(&h.matched),
                None => by_encounter.push((id, vec![&h.matched])),
            }
        }
        if !by_encounter.is_empty() {
            let lists = self
                .encounters
                .store()
                .list_status(now.div_euclid(1000))
                .await?;
            let matcher = self.matcher();
            for (id, matches) in by_encounter {
                let Some(stored) = self.encounters.get(id).await? else {
                    continue;
                };
                let e = &stored.encounter;
                let alert_id = id.hyphenated().to_string();
                self.hub.publish(Event::Alert(AlertEvent {
                    alert_id: alert_id.clone(),
                    read: PlateReadEvent {
                        id: alert_id,
                        plate: e.plate.clone(),
                        confidence: e.confidence,
                        state: e.state.clone(),
                        bbox: e.plate_box.into(),
                        frames: 0,
                        first_seen_ms: e.captured_at_ms,
                        last_seen_ms: e.captured_at_ms,
                        stored: true,
                    },
                    crop_png: stored.evidence.crop.bytes.clone(),
                    matches: alert_matches(&matcher, &lists, matches),
                    retro: true,
                }));
            }
        }
        Ok(hits.len() as u64)
    }

    async fn list_status(&self) -> Result<Vec<HotlistInfo>, PlatewatchError> {
        let lists = self
            .encounters
            .store()
            .list_status(now_ms().div_euclid(1000))
            .await?;
        Ok(lists.into_iter().map(HotlistInfo::from).collect())
    }
}

/// A refusal of `POST /v1/sessions`: the server's 4xx (unknown reason code, missing case) is
/// the caller's to fix; the session is not started.
fn session_refused(e: SyncError) -> PlatewatchError {
    let what = "the server did not open the scanning session";
    match e {
        SyncError::Server { status, message } if (400..500).contains(&status) => {
            PlatewatchError::InvalidInput(format!("{what} (HTTP {status}): {message}"))
        }
        e => context(e.into(), what),
    }
}

/// The on-device scanner. Create one per camera session screen (model loading takes a few
/// hundred milliseconds) and `close()` it when done: that stops the inference thread, ends
/// every subscription and closes the store.
#[derive(uniffi::Object)]
pub struct Scanner {
    shared: Arc<Shared>,
    mailbox: Arc<Mailbox>,
    worker: Mutex<Option<JoinHandle<()>>>,
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
}

impl std::fmt::Debug for Scanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scanner")
            .field("camera_id", &self.shared.camera_id)
            .finish_non_exhaustive()
    }
}

fn model_bytes(what: &str, m: ModelSource) -> Result<Vec<u8>, PlatewatchError> {
    match m {
        ModelSource::Bytes { bytes } => Ok(bytes),
        ModelSource::File { path } => std::fs::read(&path)
            .map_err(|e| PlatewatchError::Model(format!("cannot read the {what} model: {e}"))),
    }
}

fn dim(v: u32, what: &str) -> Result<usize, PlatewatchError> {
    usize::try_from(v).map_err(|_| PlatewatchError::invalid(format!("{what} is out of range")))
}

fn plane(p: &PlaneData) -> Result<Plane<'_>, PlatewatchError> {
    Ok(Plane::new(
        &p.bytes,
        dim(p.row_stride, "row_stride")?,
        dim(p.pixel_stride, "pixel_stride")?,
    ))
}

/// The checked header of a frame: size, rotation, time and GPS fix.
struct FrameHeader {
    width: usize,
    height: usize,
    rotation: Rotation,
    timestamp_ms: i64,
    gps: Option<GpsFix>,
}

impl FrameHeader {
    fn check(
        width: u32,
        height: u32,
        rotation_degrees: i32,
        timestamp_ms: i64,
        gps: Option<GpsPosition>,
    ) -> Result<FrameHeader, PlatewatchError> {
        let (width, height) = (dim(width, "width")?, dim(height, "height")?);
        let rotation = Rotation::from_degrees(rotation_degrees)
            .ok_or_else(|| PlatewatchError::invalid("rotation_degrees must be a multiple of 90"))?;
        if timestamp_ms < 0 {
            return Err(PlatewatchError::invalid(
                "timestamp_ms must not be negative",
            ));
        }
        let gps = gps
            .map(|g| GpsFix::new(g.lat, g.lon, g.accuracy_m, g.at_ms))
            .transpose()?;
        Ok(FrameHeader {
            width,
            height,
            rotation,
            timestamp_ms,
            gps,
        })
    }

    fn pending(self, pixels: OwnedPixels) -> PendingFrame {
        PendingFrame {
            width: self.width,
            height: self.height,
            rotation: self.rotation,
            timestamp_ms: self.timestamp_ms,
            gps: self.gps,
            pixels,
        }
    }
}

/// Checks a frame on the caller's thread and keeps what inference needs.
fn validate(frame: CameraFrame) -> Result<PendingFrame, PlatewatchError> {
    let head = FrameHeader::check(
        frame.width,
        frame.height,
        frame.rotation_degrees,
        frame.timestamp_ms,
        frame.gps,
    )?;
    let (w, h) = (head.width, head.height);
    let pixels = match frame.pixels {
        FramePixels::Yuv420 { y, u, v } => {
            Frame::yuv420(w, h, plane(&y)?, plane(&u)?, plane(&v)?)?;
            // Both models read luma only: the chroma planes are released here.
            OwnedPixels::Gray {
                stride: dim(y.row_stride, "row_stride")?,
                bytes: y.bytes,
            }
        }
        FramePixels::Bgra { bytes, row_stride } => {
            let stride = dim(row_stride, "row_stride")?;
            Frame::bgra8(&bytes, w, h, stride)?;
            OwnedPixels::Bgra { bytes, stride }
        }
        FramePixels::Gray { bytes, row_stride } => {
            let stride = dim(row_stride, "row_stride")?;
            Frame::gray8(&bytes, w, h, stride)?;
            OwnedPixels::Gray { bytes, stride }
        }
    };
    Ok(head.pending(pixels))
}

fn buffer_plane(p: &BufferPlane) -> Result<Plane<'_>, PlatewatchError> {
    Ok(Plane::new(
        raw::plane_bytes(p)?,
        dim(p.row_stride, "row_stride")?,
        dim(p.pixel_stride, "pixel_stride")?,
    ))
}

/// Checks a frame left in platform memory. The pixels are copied (only the rows inference
/// reads: luma for YUV) when `take` says the inference thread would accept the frame;
/// otherwise nothing is copied and `None` comes back.
fn validate_buffers(
    frame: &BufferFrame,
    take: impl FnOnce() -> bool,
) -> Result<(FrameHeader, Option<OwnedPixels>), PlatewatchError> {
    let head = FrameHeader::check(
        frame.width,
        frame.height,
        frame.rotation_degrees,
        frame.timestamp_ms,
        frame.gps,
    )?;
    let (w, h) = (head.width, head.height);
    // The pixels of one row and the plane they come from.
    let (bytes, stride, row_bytes) = match &frame.pixels {
        BufferPixels::Yuv420 { y, u, v } => {
            let luma = buffer_plane(y)?;
            Frame::yuv420(w, h, luma, buffer_plane(u)?, buffer_plane(v)?)?;
            (luma.data, luma.row_stride, w)
        }
        BufferPixels::Bgra { plane } => {
            let p = buffer_plane(plane)?;
            Frame::bgra8(p.data, w, h, p.row_stride)?;
            (p.data, p.row_stride, w * 4)
        }
        BufferPixels::Gray { plane } => {
            let p = buffer_plane(plane)?;
            Frame::gray8(p.data, w, h, p.row_stride)?;
            (p.data, p.row_stride, w)
        }
    };
    if !take() {
        return Ok((head, None));
    }
    // The frame checks above guarantee `h` rows of `row_bytes`, `stride` apart.
    let tight = raw::copy_rows(bytes, stride, row_bytes, h);
    let pixels = match frame.pixels {
        BufferPixels::Bgra { .. } => OwnedPixels::Bgra {
            bytes: tight,
            stride: row_bytes,
        },
        _ => OwnedPixels::Gray {
            bytes: tight,
            stride: row_bytes,
        },
    };
    Ok((head, Some(pixels)))
}

fn parse_id(alert_id: &str) -> Result<Uuid, PlatewatchError> {
    Uuid::parse_str(alert_id.trim())
        .map_err(|_| PlatewatchError::invalid("the alert id is not one this scanner issued"))
}

fn session_info(s: &Session) -> SessionInfo {
    SessionInfo {
        id: s.id().hyphenated().to_string(),
        user: s.user().to_string(),
        reason_code: s.reason_code().to_string(),
        started_at_ms: s.started_at_ms(),
    }
}

impl Scanner {
    fn create(config: ScannerConfig) -> Result<Scanner, PlatewatchError> {
        let detector = model_bytes("detector", config.detector)?;
        let reader = model_bytes("reader", config.reader)?;
        let refiner = config
            .refiner
            .map(|r| model_bytes("refiner", r))
            .transpose()?;
        let mut detector_config = DetectorConfig::default();
        if config.input_width > 0 || config.input_height > 0 {
            detector_config.input_width = dim(config.input_width, "input_width")?;
            detector_config.input_height = dim(config.input_height, "input_height")?;
        }
        if config.detector_threshold > 0.0 {
            detector_config.score_threshold = config.detector_threshold;
        }
        let mut tracker = TrackerConfig::default();
        if config.min_read_confidence > 0.0 {
            tracker.min_confidence = config.min_read_confidence;
        }
        let engine = Engine::new(
            Models {
                detector: &detector,
                refiner: refiner.as_deref(),
                reader: &reader,
            },
            EngineConfig {
                detector: detector_config,
                tracker,
                ..EngineConfig::default()
            },
        )?;
        let mut matcher_config = MatcherConfig::default();
        if config.alert_threshold > 0.0 {
            matcher_config.alert_threshold = config.alert_threshold;
        }
        let key = config
            .image_key
            .map(|k| {
                <[u8; 32]>::try_from(k.as_slice())
                    .map(ImageKey::from_bytes)
                    .map_err(|_| PlatewatchError::invalid("image_key must be 32 bytes"))
            })
            .transpose()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("platewatch-io")
            .enable_all()
            .build()
            .map_err(|e| PlatewatchError::Internal(format!("cannot start the I/O runtime: {e}")))?;
        let path = std::path::PathBuf::from(&config.store_path);
        let store = runtime.block_on(Store::open(&path)).map_err(|e| {
            PlatewatchError::Storage(format!("cannot open the device store: {}", store_kind(&e)))
        })?;
        let mut encounters = EncounterStore::new(store);
        if let Some(k) = key {
            encounters = encounters.with_image_key(k);
        }
        if config.alert_hold_ms >= 0 {
            encounters = encounters.with_alert_hold_ms(config.alert_hold_ms);
        }
        let matcher = runtime.block_on(encounters.store().load_matcher(matcher_config))?;
        let key = match config.hotlist_key.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(b64) => Some(signed::parse_public_key(b64).map_err(|_| {
                PlatewatchError::invalid("hotlist_key is not a base64 ed25519 public key")
            })?),
        };
        let (uploader, hotlists) = match config.server_url.as_deref().map(str::trim) {
            None | Some("") => (None, None),
            Some(url) => {
                let _rt = runtime.enter();
                let token = match &config.device {
                    Some(d) => d.device_token.clone(),
                    None => config.device_token.clone().unwrap_or_default(),
                };
                let client = ClientConfig::new(url, token);
                let hotlists = key
                    .map(|k| {
                        HotlistSync::new(
                            encounters.store().clone(),
                            &HotlistSyncConfig::new(client.clone(), k),
                        )
                    })
                    .transpose()?;
                let uploader = Uploader::new(encounters.clone(), UploaderConfig::new(client))?;
                (Some(uploader), hotlists)
            }
        };
        let shared = Arc::new(Shared {
            engine: Arc::new(engine),
            rt: runtime.handle().clone(),
            encounters,
            matcher: RwLock::new(Arc::new(matcher)),
            matcher_config,
            session: Mutex::new(None),
            hub: Arc::new(Hub::default()),
            camera_id: config.camera_id,
            device_id: config.device_id,
            reason_codes: RwLock::new(config.reason_codes),
            uploader,
            hotlist_key_id: key.as_ref().map(signed::key_id),
            hotlists,
            device: Mutex::new(config.device.as_ref().map(|d| d.to_device())),
            session_op: tokio::sync::Mutex::new(()),
            sync_op: tokio::sync::Mutex::new(()),
            counters: Counters::default(),
        });
        let mailbox = Arc::new(Mailbox::default());
        let (s, m) = (shared.clone(), mailbox.clone());
        let worker = std::thread::Builder::new()
            .name("platewatch-inference".into())
            .spawn(move || worker::run(s, m))
            .map_err(|e| {
                PlatewatchError::Internal(format!("cannot start the inference thread: {e}"))
            })?;
        LIVE.fetch_add(1, Ordering::SeqCst);
        Ok(Scanner {
            shared,
            mailbox,
            worker: Mutex::new(Some(worker)),
            runtime: Mutex::new(Some(runtime)),
        })
    }

    fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.shared.rt.block_on(f)
    }

    /// Runs `f` to completion on one of the runtime's blocking threads (store and uploader
    /// futures are not `Send`); awaiting the result works from any executor (Kotlin
    /// coroutines, Swift tasks). A panic becomes `Internal`.
    async fn on_io<T, F, Fut>(&self, what: &str, f: F) -> Result<T, PlatewatchError>
    where
        T: Send + 'static,
        F: FnOnce(Arc<Shared>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<T, PlatewatchError>>,
    {
        let shared = self.shared.clone();
        let rt = self.shared.rt.clone();
        let task = self
            .shared
            .rt
            .spawn_blocking(move || rt.block_on(f(shared)));
        match task.await {
            Ok(r) => r,
            Err(e) if e.is_panic() => Err(PlatewatchError::Internal(format!("{what} panicked"))),
            Err(_) => Err(PlatewatchError::Internal(format!("{what} was cancelled"))),
        }
    }
}

/// The kind of a store failure, without sqlx's text (it can quote values).
fn store_kind(e: &platewatch_store::StoreError) -> String {
    match e {
        platewatch_store::StoreError::Db(sqlx::Error::Io(io)) => {
            format!("I/O error ({:?})", io.kind())
        }
        platewatch_store::StoreError::Db(_) => "database error".into(),
        other => other.to_string(),
    }
}

#[uniffi::export]
impl Scanner {
    /// Loads the models, opens (or creates) the device store and starts the inference thread.
    #[uniffi::constructor]
    pub fn new(config: ScannerConfig) -> Result<Arc<Scanner>, PlatewatchError> {
        guard(|| Scanner::create(config).map(Arc::new))
    }

    /// Starts a scanning session; frames are refused until one is active. With a server
    /// configured, this fetches the server's reason codes (the reason must be one of them) and
    /// opens the session on the server first, exactly as `platewatch scan --server` does: if
    /// the server cannot be reached or refuses, the session does not start (`Network`,
    /// `Unauthorized`, or `InvalidInput` for a reason or case the server refuses). Without a
    /// server, the session is checked against `ScannerConfig::reason_codes` only.
    pub async fn start_session(
        &self,
        request: SessionStart,
    ) -> Result<SessionInfo, PlatewatchError> {
        self.on_io("starting the session", move |s| async move {
            s.start_session(request).await
        })
        .await
    }

    /// The active session, if any.
    pub fn current_session(&self) -> Option<SessionInfo> {
        self.shared.session_snapshot().as_ref().map(session_info)
    }

    /// Ends the session: open tracks are finished first (their reads are stored under it),
    /// then the session and its GPS track are saved, then — with a server — the session is
    /// closed on the server. The server not recording the end does not fail the call
    /// (`SessionEnd::ended_on_server` is false and an `on_error` event says why).
    pub async fn end_session(&self) -> Result<SessionEnd, PlatewatchError> {
        let mailbox = self.mailbox.clone();
        self.on_io("ending the session", move |s| async move {
            mailbox.flush(Duration::from_secs(30));
            s.end_session().await
        })
        .await
    }

    /// The reason codes a session may give: fetched from the server (and used by the next
    /// `start_session`) when one is configured, else `ScannerConfig::reason_codes`.
    pub async fn reason_codes(&self) -> Result<Vec<String>, PlatewatchError> {
        self.on_io("fetching the reason codes", |s| async move {
            s.fetch_reason_codes().await
        })
        .await
    }

    /// The id of the pinned hot list key (`ScannerConfig::hotlist_key`), if any.
    pub fn hotlist_key_id(&self) -> Option<String> {
        self.shared.hotlist_key_id.clone()
    }

    /// Hands one camera frame to the inference thread and returns at once: the frame is
    /// checked here (sizes, strides) and then either accepted or, when the thread is still
    /// busy with an earlier frame, dropped and counted. Nothing is queued. A GPS fix in the
    /// frame is added to the session's track either way. The pixels cross the FFI as byte
    /// arrays, which UniFFI copies byte by byte: on a camera stream use
    /// [`Scanner::push_frame_buffers`], which copies nothing on the caller's side.
    pub fn push_frame(&self, frame: CameraFrame) -> Result<PushOutcome, PlatewatchError> {
        guard(|| {
            self.shared.counters.pushed.fetch_add(1, Ordering::Relaxed);
            let pending = validate(frame)?;
            self.note_fix(pending.gps)?;
            self.hand_over(Some(pending))
        })
    }

    /// [`Scanner::push_frame`] for pixels left in platform memory: a CameraX `ImageProxy`'s
    /// direct plane buffers, a locked `CVPixelBuffer`. Returns within a fraction of a
    /// millisecond: a frame the inference thread is too busy for is dropped (and counted)
    /// without being copied, an accepted one is copied once (luma only for YUV).
    ///
    /// Contract (the Kotlin and Swift layers keep it; call it directly only if you can): every
    /// plane's `address` points to at least `len` readable bytes that stay valid and
    /// unchanged until this call returns. Nothing is kept after it returns.
    pub fn push_frame_buffers(&self, frame: BufferFrame) -> Result<PushOutcome, PlatewatchError> {
        guard(|| {
            self.shared.counters.pushed.fetch_add(1, Ordering::Relaxed);
            let (head, pixels) = validate_buffers(&frame, || self.mailbox.is_free())?;
            self.note_fix(head.gps)?;
            self.hand_over(pixels.map(|p| head.pending(p)))
        })
    }

    /// Ends every open track now (e.g. when the camera stops) and waits until their reads
    /// have been matched, stored and delivered to the listeners' queues.
    pub fn flush(&self) -> Result<(), PlatewatchError> {
        guard(|| {
            if self.mailbox.flush(Duration::from_secs(30)) {
                Ok(())
            } else {
                Err(PlatewatchError::Internal(
                    "the inference thread did not finish in time".into(),
                ))
            }
        })
    }

    /// Frame counters.
    pub fn frame_stats(&self) -> FrameStats {
        let c = &self.shared.counters;
        FrameStats {
            pushed: c.pushed.load(Ordering::Relaxed),
            processed: c.processed.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            events_dropped: self.shared.hub.dropped(),
            last_inference_ms: c.last_inference_us.load(Ordering::Relaxed) as f64 / 1e3,
        }
    }

    /// Delivers events to `listener` on its own thread until the returned handle is cancelled
    /// or dropped (or the scanner closed).
    pub fn subscribe(
        &self,
        listener: Arc<dyn ScanListener>,
    ) -> Result<Arc<TaskHandle>, PlatewatchError> {
        guard(|| {
            self.shared
                .hub
                .subscribe(listener)
                .map(Arc::new)
                .map_err(|e| PlatewatchError::Internal(format!("cannot start a listener: {e}")))
        })
    }

    /// The officer confirms the alert (the plate on the crop is the listed one).
    pub fn accept_alert(&self, alert_id: String) -> Result<(), PlatewatchError> {
        guard(|| self.dispose(&alert_id, Disposition::accept(now_ms())))
    }

    /// The officer rejects the alert; a reason is required.
    pub fn reject_alert(&self, alert_id: String, reason: String) -> Result<(), PlatewatchError> {
        guard(|| self.dispose(&alert_id, Disposition::reject(&reason, now_ms())?))
    }

    /// The engine misread the plate: the alert is rejected as a misread and the officer's
    /// reading is kept as the correction (uploaded tagged `misread_corrected`).
    pub fn correct_read(
        &self,
        alert_id: String,
        corrected_plate: String,
    ) -> Result<(), PlatewatchError> {
        guard(|| self.dispose(&alert_id, Disposition::misread(&corrected_plate, now_ms())?))
    }

    /// Uploads every due encounter now and purges acknowledged ones, then syncs every hot
    /// list the server publishes: each payload is verified against the pinned key
    /// (`ScannerConfig::hotlist_key`) and applied in one transaction, and the matcher is
    /// swapped so new entries alert at once. The report has one outcome per list (updated,
    /// unchanged, refused with the reason — the stored list is kept —, failed) and every
    /// list's age and staleness; listeners get it through `on_sync`. Rows that fail to upload
    /// stay queued and are retried with backoff by the next call. Fails with `Network` when a
    /// request failed or the list index could not be fetched, `Unauthorized` when the device
    /// token was refused, `InvalidInput` without a server or without a pinned hot list key
    /// (after uploading).
    pub async fn sync_now(&self) -> Result<SyncReport, PlatewatchError> {
        self.on_io("sync", |s| async move { s.sync().await }).await
    }

    /// The hot lists on the device, with their age and staleness.
    pub fn hotlist_status(&self) -> Result<Vec<HotlistInfo>, PlatewatchError> {
        guard(|| self.block_on(self.shared.list_status()))
    }

    /// The upload outbox.
    pub fn pending_uploads(&self) -> Result<UploadStatus, PlatewatchError> {
        guard(|| self.block_on(self.shared.upload_status()))
    }

    /// Applies a hot list file (NCIC, California or delimited; detected) as a snapshot of
    /// `list` at `version`, and starts matching against it. For side-loading and tests: lists
    /// from the server arrive signed through sync.
    pub fn import_hotlist(
        &self,
        list: String,
        version: i64,
        contents: Vec<u8>,
    ) -> Result<HotlistImport, PlatewatchError> {
        guard(|| {
            let report = import(&contents, &ImportOptions::default())?;
            let meta = ListMeta::new(list.trim(), report.format.default_source());
            let now = now_ms().div_euclid(1000);
            let applied = self.block_on(self.shared.encounters.store().apply_snapshot(
                &meta,
                version,
                None,
                &report.entries,
                now,
            ))?;
            self.block_on(self.shared.reload_matcher())?;
            Ok(HotlistImport {
                list: meta.name,
                version: applied.version,
                entries: report.entries.len() as u64,
                rejected_lines: report.rejects.iter().map(|r| r.line as u64).collect(),
            })
        })
    }
}

impl Scanner {
    fn dispose(&self, alert_id: &str, d: Disposition) -> Result<(), PlatewatchError> {
        let id = parse_id(alert_id)?;
        self.block_on(self.shared.encounters.set_disposition(id, &d))?;
        if let Some(u) = &self.shared.uploader {
            u.wake();
        }
        Ok(())
    }
}

impl Drop for Scanner {
    fn drop(&mut self) {
        self.mailbox.stop();
        if let Some(w) = lock(&self.worker).take() {
            if w.thread().id() != std::thread::current().id() && w.join().is_err() {
                self.shared.hub.publish(Event::error(
                    ErrorKind::Internal,
                    "the inference thread panicked",
                ));
            }
        }
        self.shared.hub.close_all();
        if let Some(rt) = lock(&self.runtime).take() {
            rt.block_on(self.shared.encounters.store().pool().close());
            rt.shutdown_timeout(Duration::from_secs(2));
        }
        LIVE.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Frame hand-over shared by the two push methods (not exported).
impl Scanner {
    /// Adds a frame's GPS fix to the active session's track (or fails without a session).
    fn note_fix(&self, fix: Option<GpsFix>) -> Result<(), PlatewatchError> {
        let mut slot = lock(&self.shared.session);
        let Some(session) = slot.as_mut().filter(|s| s.is_active()) else {
            return Err(PlatewatchError::invalid(
                "start a session before pushing frames",
            ));
        };
        if let Some(fix) = fix {
            if session.track().last().is_none_or(|l| l.at_ms != fix.at_ms) {
                session.record_fix(fix)?;
            }
        }
        Ok(())
    }

    /// Offers a frame to the inference thread; `None` (not copied because the thread was
    /// busy) and a refused offer both count as dropped.
    fn hand_over(&self, pending: Option<PendingFrame>) -> Result<PushOutcome, PlatewatchError> {
        match pending.map(|p| self.mailbox.offer(p)) {
            Some(Ok(())) => Ok(PushOutcome::Accepted),
            Some(Err(_)) | None => {
                self.shared.counters.dropped.fetch_add(1, Ordering::Relaxed);
                Ok(PushOutcome::Dropped)
            }
        }
    }
}
