//! Records and enums that cross the FFI: scanner configuration, camera frames (Y/U/V planes
//! with row and pixel strides, or BGRA with a row stride), sessions, and the events delivered
//! to listeners (reads, alerts, sync status with per-list hot list outcomes, errors). The
//! account records (sign-in, rules of behaviour) live in `account.rs`.

use crate::error::ErrorKind;

/// Where a model comes from: a file on the device (e.g. extracted from the APK's assets or
/// the app bundle) or bytes the app already holds.
#[derive(Debug, Clone, uniffi::Enum)]
pub enum ModelSource {
    File { path: String },
    Bytes { bytes: Vec<u8> },
}

/// Everything a [`crate::Scanner`] needs. With a `server_url`, sessions are opened and closed on
/// the server too and `sync_now` uploads encounters and pulls hot lists; without one the
/// scanner works offline (sessions checked against `reason_codes`, hot lists imported).
#[derive(Clone, uniffi::Record)]
pub struct ScannerConfig {
    /// `plate_detector.onnx`.
    pub detector: ModelSource,
    /// `plate_reader.onnx`.
    pub reader: ModelSource,
    /// `plate_refiner.onnx`, the box refiner run on each detection before it is read; `None`
    /// reads the detector's boxes as they are (fewer exact reads).
    #[uniffi(default = None)]
    pub refiner: Option<ModelSource>,
    /// The device store (SQLite; created if missing): hot lists, reads, encounters, outbox.
    pub store_path: String,
    /// This device's identifier (copied into every encounter).
    pub device_id: String,
    /// The camera's identifier (e.g. "rear-wide").
    #[uniffi(default = "camera-0")]
    pub camera_id: String,
    /// Reason codes the server accepts; a session's reason must be one of them.
    pub reason_codes: Vec<String>,
    /// Base URL of the Platewatch server (`https://…`); without one `sync_now` fails with
    /// `InvalidInput`.
    #[uniffi(default = None)]
    pub server_url: Option<String>,
    /// The device token from device registration (`pwd_…`, see [`crate::sign_in`]). Keep it in
    /// the Android Keystore / iOS Keychain; it never appears in `Debug` output. Ignored when
    /// `device` is set.
    #[uniffi(default = None)]
    pub device_token: Option<String>,
    /// The device's registration (from [`crate::sign_in`], or the latest
    /// `SyncReport::renewed_device`): its token is used as `device_token`, and `sync_now`
    /// renews it once half of its lifetime is gone. Prefer it to `device_token`, which is
    /// never renewed and stops working when it expires (30 days by default).
    #[uniffi(default = None)]
    pub device: Option<crate::account::DeviceRegistration>,
    /// The pinned hot list publisher key (base64 of the 32-byte ed25519 key, as the server's
    /// `GET /v1/hotlists/key` shows it): every hot list `sync_now` pulls must be signed with
    /// it. Provision it from the operator (MDM, settings), or — trust on first use, only when
    /// the user explicitly chose it — from [`crate::fetch_hotlist_key`] once, then keep it: the
    /// server never replaces a pinned key. Without one, `sync_now` uploads and then fails with
    /// `InvalidInput` instead of syncing hot lists.
    #[uniffi(default = None)]
    pub hotlist_key: Option<String>,
    /// 32-byte key sealing evidence images at rest (from the Android Keystore / iOS Keychain).
    #[uniffi(default = None)]
    pub image_key: Option<Vec<u8>>,
    /// Detector canvas width and height (multiples of 32; 0 = default 640x384).
    #[uniffi(default = 0)]
    pub input_width: u32,
    #[uniffi(default = 0)]
    pub input_height: u32,
    /// Minimum detector score (0 = default 0.15).
    #[uniffi(default = 0.0)]
    pub detector_threshold: f32,
    /// Minimum consensus confidence of a reported read (0 = default 0.5).
    #[uniffi(default = 0.0)]
    pub min_read_confidence: f32,
    /// Hot list match score that raises an alert (0 = default 0.5).
    #[uniffi(default = 0.0)]
    pub alert_threshold: f32,
    /// Milliseconds an alerting encounter waits for accept/reject before it is uploaded
    /// anyway (negative = default two minutes).
    #[uniffi(default = -1)]
    pub alert_hold_ms: i64,
}

impl std::fmt::Debug for ScannerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = |o: bool| if o { "<set>" } else { "<none>" };
        f.debug_struct("ScannerConfig")
            .field("store_path", &self.store_path)
            .field("device_id", &self.device_id)
            .field("camera_id", &self.camera_id)
            .field("reason_codes", &self.reason_codes)
            .field("server_url", &self.server_url)
            .field("device_token", &set(self.device_token.is_some()))
            .field("device", &self.device)
            .field("hotlist_key", &self.hotlist_key)
            .field("image_key", &set(self.image_key.is_some()))
            .finish_non_exhaustive()
    }
}

/// One plane of a camera image.
#[derive(Debug, Clone, uniffi::Record)]
pub struct PlaneData {
    pub bytes: Vec<u8>,
    /// Bytes from one row to the next.
    pub row_stride: u32,
    /// Bytes from one pixel to the next (1 for planar, 2 for interleaved chroma).
    pub pixel_stride: u32,
}

/// The pixels of a camera frame, as the platforms deliver them.
#[derive(Debug, Clone, uniffi::Enum)]
pub enum FramePixels {
    /// CameraX `ImageProxy` (`YUV_420_888`): three planes with row and pixel strides.
    Yuv420 {
        y: PlaneData,
        u: PlaneData,
        v: PlaneData,
    },
    /// iOS `kCVPixelFormatType_32BGRA` (`CVPixelBuffer`), `row_stride` = bytes per row.
    Bgra { bytes: Vec<u8>, row_stride: u32 },
    /// 8-bit luma only (e.g. just the Y plane).
    Gray { bytes: Vec<u8>, row_stride: u32 },
}

/// One plane of a camera image in memory the platform owns (CameraX `ImageProxy.PlaneProxy`
/// direct `ByteBuffer`, `CVPixelBuffer` base address): read in place during
/// [`Scanner::push_frame_buffers`](crate::scanner::Scanner::push_frame_buffers), never kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct BufferPlane {
    /// Native address of the plane's first byte.
    pub address: u64,
    /// Bytes readable from `address`.
    pub len: u64,
    /// Bytes from one row to the next.
    pub row_stride: u32,
    /// Bytes from one pixel to the next (1 for planar, 2 for interleaved chroma, 4 for BGRA).
    pub pixel_stride: u32,
}

/// The pixels of a camera frame left where the platform put them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum BufferPixels {
    /// CameraX `YUV_420_888`, or a bi-planar `CVPixelBuffer` (`v` = `u` + 1, pixel stride 2).
    Yuv420 {
        y: BufferPlane,
        u: BufferPlane,
        v: BufferPlane,
    },
    /// `kCVPixelFormatType_32BGRA`.
    Bgra { plane: BufferPlane },
    /// 8-bit luma only.
    Gray { plane: BufferPlane },
}

/// A camera frame whose pixels stay in platform memory (see [`BufferPlane`]).
#[derive(Debug, Clone, Copy, PartialEq, uniffi::Record)]
pub struct BufferFrame {
    /// Buffer size before rotation.
    pub width: u32,
    pub height: u32,
    /// Clockwise rotation that makes the scene upright (CameraX `rotationDegrees`).
    pub rotation_degrees: i32,
    /// Unix time of capture in milliseconds.
    pub timestamp_ms: i64,
    pub pixels: BufferPixels,
    /// The newest location fix, if any.
    #[uniffi(default = None)]
    pub gps: Option<GpsPosition>,
}

/// A position from the platform's location service.
#[derive(Debug, Clone, Copy, PartialEq, uniffi::Record)]
pub struct GpsPosition {
    pub lat: f64,
    pub lon: f64,
    #[uniffi(default = None)]
    pub accuracy_m: Option<f32>,
    /// Unix time of the fix in milliseconds.
    pub at_ms: i64,
}

/// One camera frame.
#[derive(Debug, Clone, uniffi::Record)]
pub struct CameraFrame {
    /// Buffer size before rotation.
    pub width: u32,
    pub height: u32,
    /// Clockwise rotation that makes the scene upright (CameraX `rotationDegrees`).
    pub rotation_degrees: i32,
    /// Unix time of capture in milliseconds.
    pub timestamp_ms: i64,
    pub pixels: FramePixels,
    /// The newest location fix, if any.
    #[uniffi(default = None)]
    pub gps: Option<GpsPosition>,
}

/// What `push_frame` did with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum PushOutcome {
    /// Handed to the inference thread.
    Accepted,
    /// Dropped because the inference thread was busy (counted in [`FrameStats::dropped`]).
    Dropped,
}

/// Frame counters since the scanner was created.
#[derive(Debug, Clone, Copy, PartialEq, uniffi::Record)]
pub struct FrameStats {
    pub pushed: u64,
    pub processed: u64,
    pub dropped: u64,
    /// Frames whose processing failed (reported through `on_error`).
    pub failed: u64,
    /// Events not delivered because a listener fell behind.
    pub events_dropped: u64,
    /// Inference time of the last processed frame.
    pub last_inference_ms: f64,
}

/// Starting a scanning session.
#[derive(Debug, Clone, uniffi::Record)]
pub struct SessionStart {
    pub user: String,
    /// One of `ScannerConfig::reason_codes`.
    pub reason_code: String,
    /// A case number, or else a justification, is required.
    #[uniffi(default = None)]
    pub case_number: Option<String>,
    #[uniffi(default = None)]
    pub justification: Option<String>,
    #[uniffi(default = None)]
    pub on_behalf_of: Option<String>,
}

/// A running session.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SessionInfo {
    pub id: String,
    pub user: String,
    pub reason_code: String,
    pub started_at_ms: i64,
}

/// What `end_session` did.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SessionEnd {
    pub id: String,
    pub ended_at_ms: i64,
    /// The server recorded the end (false without a server, or when it could not be reached:
    /// the session is ended on the device either way, and every encounter carries it).
    pub ended_on_server: bool,
}

/// A box in upright frame pixels.
#[derive(Debug, Clone, Copy, PartialEq, uniffi::Record)]
pub struct PlateBox {
    pub x: f32,
    pub y: f32,
    pub width: f32,
    pub height: f32,
}

impl From<platewatch_core::BBox> for PlateBox {
    fn from(b: platewatch_core::BBox) -> Self {
        PlateBox {
            x: b.x,
            y: b.y,
            width: b.w,
            height: b.h,
        }
    }
}

/// A plate seen in one frame (for live overlays).
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Detection {
    pub bbox: PlateBox,
    pub text: String,
    pub confidence: f32,
}

/// What one processed frame showed.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct FrameResult {
    pub timestamp_ms: i64,
    /// Upright frame size, for mapping boxes onto the preview.
    pub width: u32,
    pub height: u32,
    pub detections: Vec<Detection>,
    pub inference_ms: f64,
}

/// The consensus read of one vehicle pass.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct PlateReadEvent {
    /// The encounter's id (also the alert id when the read alerted); empty if not stored.
    pub id: String,
    pub plate: String,
    pub confidence: f32,
    pub state: Option<String>,
    pub bbox: PlateBox,
    pub frames: u32,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    /// Kept in the device store and queued for upload.
    pub stored: bool,
}

/// How a read matched a hot list entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum MatchKind {
    Exact,
    LookAlike,
    OneEdit,
    Wildcard,
}

impl From<platewatch_core::hotlist::MatchKind> for MatchKind {
    fn from(k: platewatch_core::hotlist::MatchKind) -> Self {
        use platewatch_core::hotlist::MatchKind as K;
        match k {
            K::Exact => MatchKind::Exact,
            K::LookAlike => MatchKind::LookAlike,
            K::OneEdit => MatchKind::OneEdit,
            K::Wildcard => MatchKind::Wildcard,
        }
    }
}

/// One hot list entry a read matched.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct AlertMatch {
    pub list: String,
    pub list_version: i64,
    /// The entry's plate (or pattern).
    pub entry_plate: String,
    /// e.g. `stolen_vehicle`, `wanted`, `amber`.
    pub category: String,
    /// 0..=100; higher is more urgent.
    pub priority: u8,
    pub kind: MatchKind,
    pub score: f32,
    /// Age of the list when the alert was raised.
    pub list_age_secs: i64,
    /// The list is older than its maximum age: the alert must say so.
    pub stale: bool,
}

/// A read that matched one or more hot lists.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct AlertEvent {
    /// Pass to `accept_alert` / `reject_alert` / `correct_read`.
    pub alert_id: String,
    pub read: PlateReadEvent,
    /// The clearest crop of the plate, PNG (grayscale).
    pub crop_png: Vec<u8>,
    /// Best first.
    pub matches: Vec<AlertMatch>,
    /// Raised by a hot list sync on a read made before the entry arrived (a retro-hit), not
    /// by a live read: the vehicle was seen at `read.last_seen_ms`, possibly a while ago.
    pub retro: bool,
}

/// Where a sync stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum SyncPhase {
    Started,
    Finished,
    Failed,
}

/// Progress of a `sync_now`.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct SyncStatus {
    pub phase: SyncPhase,
    pub report: SyncReport,
    pub pending: UploadStatus,
    /// Set when `phase` is `Failed`.
    pub error: Option<String>,
}

/// What one `sync_now` did: the encounter upload (counts), then every hot list.
#[derive(Debug, Clone, PartialEq, Eq, Default, uniffi::Record)]
pub struct SyncReport {
    pub rows: u64,
    pub requests: u64,
    pub stored: u64,
    pub duplicates: u64,
    pub rejected: u64,
    pub retried: u64,
    pub failures: u64,
    pub purged: u64,
    /// Retro-hits: reads still on the device that entries added by this sync match. Each one
    /// is recorded as an alert and delivered to listeners as an `AlertEvent` with `retro` set.
    pub retro_hits: u64,
    /// One outcome per list the server publishes (empty when the hot list sync did not run or
    /// could not fetch the server's list index).
    pub hotlists: Vec<HotlistSyncResult>,
    /// Every hot list on the device after the sync, with its age and staleness: a list that
    /// could not be refreshed keeps aging, and alerts from a stale one say so.
    pub lists: Vec<HotlistInfo>,
    /// The device's registration with the token this sync renewed (half of the old token's
    /// lifetime was gone): store it in place of the old one (Keystore / Keychain) and pass it as
    /// `ScannerConfig::device` from now on. The old token stays valid for an hour.
    pub renewed_device: Option<crate::account::DeviceRegistration>,
}

impl SyncReport {
    /// Lists whose payload was refused (bad signature, wrong list or version).
    pub fn refused(&self) -> usize {
        self.hotlists
            .iter()
            .filter(|h| matches!(h.outcome, HotlistOutcome::Refused { .. }))
            .count()
    }
}

/// What the hot list sync did with one list.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct HotlistSyncResult {
    pub list: String,
    /// The version the device held before, if any.
    pub previous_version: Option<i64>,
    pub outcome: HotlistOutcome,
}

/// The outcome for one list. Only `Updated` changes what the device holds.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum HotlistOutcome {
    /// A signed snapshot (`delta` false) or delta (`delta` true) was verified against the
    /// pinned key and applied in one transaction; new entries alert at once.
    Updated {
        version: i64,
        added: u64,
        removed: u64,
        delta: bool,
    },
    /// The server confirmed (signed) that the stored version is current.
    Unchanged { version: i64 },
    /// The payload failed verification or did not fit the request: nothing was applied and
    /// the stored list is kept. The reason never contains entries.
    Refused { reason: String },
    /// The list could not be fetched: the stored list is kept and keeps aging.
    Failed { reason: String },
}

impl From<&platewatch_sync::ListSync> for HotlistSyncResult {
    fn from(l: &platewatch_sync::ListSync) -> Self {
        use platewatch_sync::ListOutcome as O;
        let n = |v: usize| v as u64;
        let outcome = match &l.outcome {
            O::Snapshot {
                version,
                added,
                removed,
            } => HotlistOutcome::Updated {
                version: *version,
                added: n(*added),
                removed: n(*removed),
                delta: false,
            },
            O::Delta {
                version,
                added,
                removed,
                ..
            } => HotlistOutcome::Updated {
                version: *version,
                added: n(*added),
                removed: n(*removed),
                delta: true,
            },
            O::Current { version } => HotlistOutcome::Unchanged { version: *version },
            O::Refused { reason } => HotlistOutcome::Refused {
                reason: reason.clone(),
            },
            O::Failed { reason } => HotlistOutcome::Failed {
                reason: reason.clone(),
            },
        };
        HotlistSyncResult {
            list: l.list.clone(),
            previous_version: l.had,
            outcome,
        }
    }
}

/// The upload outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, uniffi::Record)]
pub struct UploadStatus {
    /// Not yet acknowledged by the server.
    pub pending: i64,
    /// Pending rows due now (alerts wait for a decision first).
    pub due: i64,
    pub acked: i64,
    pub rejected: i64,
    pub oldest_pending_ms: Option<i64>,
}

/// A hot list on the device.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct HotlistInfo {
    pub name: String,
    pub version: i64,
    pub entries: i64,
    pub age_secs: i64,
    pub max_age_secs: i64,
    pub stale: bool,
}

impl From<platewatch_store::ListStatus> for HotlistInfo {
    fn from(l: platewatch_store::ListStatus) -> Self {
        HotlistInfo {
            name: l.name,
            version: l.version,
            entries: l.entries,
            age_secs: l.age_secs,
            max_age_secs: l.max_age_secs,
            stale: l.stale,
        }
    }
}

/// What `import_hotlist` applied.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct HotlistImport {
    pub list: String,
    pub version: i64,
    pub entries: u64,
    /// Lines refused (with their line numbers, never their content).
    pub rejected_lines: Vec<u64>,
}

/// An error reported asynchronously (from the inference thread or a sync).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ScanError {
    pub kind: ErrorKind,
    pub message: String,
}
