//! The device's encounter store and upload outbox: scanning sessions, encounters written with
//! their read, alerts, images and disposition in one transaction, the outbox queries the
//! uploader drives (due rows, acknowledged, rejected, retry later) and the purge of
//! acknowledged rows after a grace period; the alerts waiting for the officer's disposition,
//! and retro-hits of new hot list entries on the reads still on the device. Every bit of state
//! lives in SQLite.

use std::collections::HashMap;
use std::sync::Arc;

use platewatch_core::encounter::{Decision, Disposition, Encounter};
use platewatch_core::hotlist::{Match, MatcherConfig};
use platewatch_core::session::{GpsTrack, Session, SessionRequest};
use platewatch_core::wire::EncounterUpload;
use platewatch_core::{BBox, GpsFix};
use serde::Serialize;
use sqlx::Row;
use uuid::Uuid;

use crate::evidence::{Evidence, Image, ImageFormat, ImageKey};
use crate::{Result, Store, StoreError};

/// By default an encounter that raised an alert waits this long for the officer's disposition
/// before it is uploaded without one.
pub const DEFAULT_ALERT_HOLD_MS: i64 = 2 * 60 * 1000;

/// Outbox state of an encounter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UploadState {
    /// Not yet acknowledged by the server.
    Pending,
    /// The server stored it (or already had it); deleted after the grace period.
    Acked,
    /// The server refused it; kept on the device with the reason, never retried.
    Rejected,
}

impl UploadState {
    fn parse(s: &str) -> Option<UploadState> {
        match s {
            "pending" => Some(UploadState::Pending),
            "acked" => Some(UploadState::Acked),
            "rejected" => Some(UploadState::Rejected),
            _ => None,
        }
    }
}

/// How the server acknowledged a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Ack {
    Stored,
    Duplicate,
}

impl Ack {
    fn as_str(self) -> &'static str {
        match self {
            Ack::Stored => "stored",
            Ack::Duplicate => "duplicate",
        }
    }
}

/// A due outbox row, ready to send.
#[derive(Debug, Clone)]
pub struct OutboxRow {
    pub seq: i64,
    pub id: Uuid,
    /// Failed attempts so far (for backoff).
    pub attempts: u32,
    pub upload: EncounterUpload,
    /// Approximate size of the row on the wire, in bytes.
    pub wire_bytes: usize,
}

/// A row the server refused.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RejectedEncounter {
    pub id: Uuid,
    pub captured_at_ms: i64,
    pub reason: String,
    pub rejected_at_ms: i64,
}

/// Counts for `status` screens.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OutboxStatus {
    pub pending: i64,
    /// Pending rows whose next attempt is due now.
    pub due: i64,
    pub acked: i64,
    pub rejected: i64,
    /// Capture time of the oldest pending row.
    pub oldest_pending_ms: Option<i64>,
    /// Earliest next attempt among pending rows.
    pub next_attempt_at_ms: Option<i64>,
    /// Encounters ever recorded on this device (purged ones included).
    pub recorded_total: i64,
}

/// An encounter as stored, with its images (decrypted), disposition and outbox state.
#[derive(Debug, Clone)]
pub struct StoredEncounter {
    pub seq: i64,
    pub encounter: Encounter,
    pub evidence: Evidence,
    pub disposition: Option<Disposition>,
    pub state: UploadState,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub reject_reason: Option<String>,
    pub acked_at_ms: Option<i64>,
}

/// One hot list match behind an encounter's alert. `Debug` never shows the listed plate.
#[derive(Clone, PartialEq, Serialize)]
pub struct AlertMatch {
    pub list_id: i64,
    /// The list's name; `None` when the list was removed since.
    pub list: Option<String>,
    pub entry_id: i64,
    /// The listed plate or pattern; `None` when the entry was removed since.
    pub entry_plate: Option<String>,
    pub entry_state: Option<String>,
    pub category: Option<String>,
    pub priority: Option<u8>,
    /// `exact`, `look_alike`, `one_edit` or `wildcard`.
    pub kind: String,
    pub score: f32,
    /// Raised by an entry that arrived after the read (a retro-hit).
    pub retro: bool,
    /// Unix seconds.
    pub raised_at: i64,
}

impl std::fmt::Debug for AlertMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertMatch")
            .field("list", &self.list)
            .field("entry_id", &self.entry_id)
            .field("entry_plate", &"<redacted>")
            .field("category", &self.category)
            .field("priority", &self.priority)
            .field("kind", &self.kind)
            .field("score", &self.score)
            .field("retro", &self.retro)
            .finish_non_exhaustive()
    }
}

/// An encounter that raised an alert: the read, its matches (best score first), the
/// officer's disposition and the outbox state. `Debug` never shows the plate.
#[derive(Clone, PartialEq, Serialize)]
pub struct AlertView {
    pub seq: i64,
    /// The encounter's id (what a disposition names).
    pub id: Uuid,
    pub captured_at_ms: i64,
    pub plate: String,
    pub state: Option<String>,
    pub confidence: f32,
    pub upload: UploadState,
    pub disposition: Option<Disposition>,
    pub matches: Vec<AlertMatch>,
}

impl std::fmt::Debug for AlertView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertView")
            .field("seq", &self.seq)
            .field("id", &self.id)
            .field("plate", &"<redacted>")
            .field("captured_at_ms", &self.captured_at_ms)
            .field("upload", &self.upload)
            .field("disposition", &self.disposition)
            .field("matches", &self.matches)
            .finish_non_exhaustive()
    }
}

impl AlertView {
    /// Still on the device and not decided: the officer's disposition is awaited.
    pub fn waiting(&self) -> bool {
        self.upload == UploadState::Pending && self.disposition.is_none()
    }
}

/// A new hot list entry that matched a read still on the device (recorded once per read and
/// entry as a retro alert).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RetroAlert {
    pub read_id: i64,
    /// When the read was made, Unix seconds.
    pub seen_at: i64,
    /// The encounter of the read, when it belongs to one.
    pub encounter: Option<Uuid>,
    /// The encounter was still waiting for upload: it is now an alert awaiting the officer's
    /// disposition and uploads with the match's tags (and `retro_hit`).
    pub pending: bool,
    pub matched: Match,
}

/// The tag added to an encounter whose alert came from a retro-hit.
pub const RETRO_HIT_TAG: &str = "retro_hit";

/// Encounters and their outbox over a [`Store`], with an optional key for image blobs.
#[derive(Debug, Clone)]
pub struct EncounterStore {
    store: Store,
    key: Option<Arc<ImageKey>>,
    alert_hold_ms: i64,
}

fn aad(id: &Uuid, kind: &str) -> Vec<u8> {
    let mut v = id.as_bytes().to_vec();
    v.extend_from_slice(kind.as_bytes());
    v
}

fn parse_uuid(s: &str, seq: i64) -> Result<Uuid> {
    Uuid::parse_str(s).map_err(|_| StoreError::Corrupt(seq))
}

fn confidences_blob(c: &[f32]) -> Vec<u8> {
    c.iter().flat_map(|c| c.to_le_bytes()).collect()
}

fn confidences_from(blob: &[u8], seq: i64) -> Result<Vec<f32>> {
    if blob.len() % 4 != 0 {
        return Err(StoreError::Corrupt(seq));
    }
    Ok(blob
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

const ENCOUNTER_COLUMNS: &str = "e.seq, e.id, e.session_id, e.user_name, e.on_behalf_of, \
    e.reason_code, e.case_number, e.justification, e.device_id, e.camera_id, e.plate, e.state, \
    e.state_confidence, e.confidence, e.char_confidences, e.captured_at_ms, e.lat, e.lon, \
    e.accuracy_m, e.fix_at_ms, e.box_x, e.box_y, e.box_w, e.box_h, e.match_tags, e.status, \
    e.attempts, e.last_error, e.reject_reason, e.acked_at_ms, \
    c.format AS crop_format, c.encrypted AS crop_encrypted, c.bytes AS crop_bytes, \
    x.format AS ctx_format, x.encrypted AS ctx_encrypted, x.bytes AS ctx_bytes, \
    d.decision, d.reason AS d_reason, d.corrected_plate, d.decided_at_ms";

const ENCOUNTER_JOINS: &str = "FROM encounters e \
    LEFT JOIN encounter_images c ON c.encounter_seq = e.seq AND c.kind = 'crop' \
    LEFT JOIN encounter_images x ON x.encounter_seq = e.seq AND x.kind = 'context' \
    LEFT JOIN dispositions d ON d.encounter_seq = e.seq";

impl EncounterStore {
    /// Encounters over `store`, image blobs kept in the clear.
    pub fn new(store: Store) -> EncounterStore {
        EncounterStore {
            store,
            key: None,
            alert_hold_ms: DEFAULT_ALERT_HOLD_MS,
        }
    }

    /// Encrypt image blobs written from now on, and decrypt those read, with `key`.
    pub fn with_image_key(mut self, key: ImageKey) -> EncounterStore {
        self.key = Some(Arc::new(key));
        self
    }

    /// How long an alerting encounter waits for a disposition before it is uploaded anyway.
    pub fn with_alert_hold_ms(mut self, ms: i64) -> EncounterStore {
        self.alert_hold_ms = ms.max(0);
        self
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Inserts or updates a session (its end and track change while it runs).
    pub async fn save_session(&self, s: &Session) -> Result<()> {
        let track = serde_json::to_string(s.track())
            .map_err(|e| StoreError::Invalid(format!("track: {e}")))?;
        sqlx::query(
            "INSERT INTO sessions (id, user_name, on_behalf_of, reason_code, case_number, \
             justification, device_id, started_at_ms, ended_at_ms, track) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (id) DO UPDATE SET ended_at_ms = excluded.ended_at_ms, track = excluded.track",
        )
        .bind(s.id().hyphenated().to_string())
        .bind(s.user())
        .bind(s.on_behalf_of())
        .bind(s.reason_code())
        .bind(s.case_number())
        .bind(s.justification())
        .bind(s.device_id())
        .bind(s.started_at_ms())
        .bind(s.ended_at_ms())
        .bind(track)
        .execute(self.store.pool())
        .await?;
        Ok(())
    }

    /// A stored session.
    pub async fn session(&self, id: Uuid) -> Result<Option<Session>> {
        let row = sqlx::query(
            "SELECT rowid, user_name, on_behalf_of, reason_code, case_number, justification, \
             device_id, started_at_ms, ended_at_ms, track FROM sessions WHERE id = ?",
        )
        .bind(id.hyphenated().to_string())
        .fetch_optional(self.store.pool())
        .await?;
        let Some(r) = row else { return Ok(None) };
        let rowid: i64 = r.try_get("rowid")?;
        let track: GpsTrack =
            serde_json::from_str(r.try_get("track")?).map_err(|_| StoreError::Corrupt(rowid))?;
        let req = SessionRequest {
            user: r.try_get("user_name")?,
            on_behalf_of: r.try_get("on_behalf_of")?,
            reason_code: r.try_get("reason_code")?,
            case_number: r.try_get("case_number")?,
            justification: r.try_get("justification")?,
            device_id: r.try_get("device_id")?,
        };
        Session::resume(
            id,
            &req,
            r.try_get("started_at_ms")?,
            r.try_get("ended_at_ms")?,
            track,
        )
        .map(Some)
        .map_err(|_| StoreError::Corrupt(rowid))
    }

    /// Ids of sessions that have not ended.
    pub async fn active_sessions(&self) -> Result<Vec<Uuid>> {
        let ids: Vec<(i64, String)> = sqlx::query_as(
            "SELECT rowid, id FROM sessions WHERE ended_at_ms IS NULL ORDER BY started_at_ms",
        )
        .fetch_all(self.store.pool())
        .await?;
        ids.iter().map(|(r, s)| parse_uuid(s, *r)).collect()
    }

    /// Records an encounter in one transaction: the read (for retro-hits), its alerts, the
    /// encounter with its outbox state, and the images (encrypted when a key is set). The
    /// session must have been saved. An encounter that raised an alert waits for a disposition
    /// (or the alert hold) before it is due for upload. Returns the row's sequence number.
    pub async fn record(
        &self,
        e: &Encounter,
        evidence: &Evidence,
        matches: &[Match],
        now_ms: i64,
    ) -> Result<i64> {
        let evidence = Evidence::from_encoded(evidence.crop.clone(), evidence.context.clone())?;
        let alert = matches.iter().any(|m| m.alert);
        let id = e.id.hyphenated().to_string();
        let tags = serde_json::to_string(&e.match_tags)
            .map_err(|err| StoreError::Invalid(format!("match tags: {err}")))?;
        let mut tx = self.store.pool().begin().await?;
        let read_id = sqlx::query(
            "INSERT INTO reads (plate, confidences, state, state_confidence, seen_at) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&e.plate)
        .bind(confidences_blob(&e.char_confidences))
        .bind(e.state.as_deref())
        .bind(e.state_confidence)
        .bind(e.captured_at_ms.div_euclid(1000))
        .execute(&mut *tx)
        .await?
        .last_insert_rowid();
        for m in matches.iter().filter(|m| m.alert) {
            sqlx::query(
                "INSERT OR IGNORE INTO alerts (read_id, entry_id, list_id, kind, score, retro, \
                 raised_at) VALUES (?, ?, ?, ?, ?, 0, ?)",
            )
            .bind(read_id)
            .bind(i64::from(m.id))
            .bind(i64::from(m.list))
            .bind(m.kind.as_str())
            .bind(m.score)
            .bind(now_ms.div_euclid(1000))
            .execute(&mut *tx)
            .await?;
        }
        let next = if alert {
            now_ms.saturating_add(self.alert_hold_ms)
        } else {
            0
        };
        let seq = sqlx::query(
            "INSERT INTO encounters (id, session_id, read_id, user_name, on_behalf_of, reason_code, \
             case_number, justification, device_id, camera_id, plate, state, state_confidence, \
             confidence, char_confidences, captured_at_ms, lat, lon, accuracy_m, fix_at_ms, box_x, \
             box_y, box_w, box_h, match_tags, alert, created_at_ms, next_attempt_at_ms) VALUES \
             (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&id)
        .bind(e.session_id.hyphenated().to_string())
        .bind(read_id)
        .bind(&e.user)
        .bind(e.on_behalf_of.as_deref())
        .bind(&e.reason_code)
        .bind(e.case_number.as_deref())
        .bind(e.justification.as_deref())
        .bind(&e.device_id)
        .bind(&e.camera_id)
        .bind(&e.plate)
        .bind(e.state.as_deref())
        .bind(e.state_confidence)
        .bind(e.confidence)
        .bind(confidences_blob(&e.char_confidences))
        .bind(e.captured_at_ms)
        .bind(e.position.lat)
        .bind(e.position.lon)
        .bind(e.position.accuracy_m)
        .bind(e.position.at_ms)
        .bind(e.plate_box.x)
        .bind(e.plate_box.y)
        .bind(e.plate_box.w)
        .bind(e.plate_box.h)
        .bind(tags)
        .bind(alert)
        .bind(now_ms)
        .bind(next)
        .execute(&mut *tx)
        .await
        .map_err(|err| match &err {
            sqlx::Error::Database(d) if d.is_foreign_key_violation() => StoreError::Invalid(
                "the encounter's session is not stored; save the session first".into(),
            ),
            _ => StoreError::Db(err),
        })?
        .last_insert_rowid();
        let images: Vec<(&str, &Image)> = std::iter::once(("crop", &evidence.crop))
            .chain(evidence.context.as_ref().map(|c| ("context", c)))
            .collect();
        let sql = format!(
            "INSERT INTO encounter_images (encounter_seq, kind, format, encrypted, bytes) VALUES {}",
            vec!["(?, ?, ?, ?, ?)"; images.len()].join(", ")
        );
        let mut q = sqlx::query(&sql);
        for (kind, img) in images {
            let (encrypted, bytes) = match &self.key {
                Some(k) => (true, k.seal(&aad(&e.id, kind), &img.bytes)?),
                None => (false, img.bytes.clone()),
            };
            q = q
                .bind(seq)
                .bind(kind)
                .bind(img.format.as_str())
                .bind(encrypted)
                .bind(bytes);
        }
        q.execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(seq)
    }

    /// Records the officer's decision on an encounter's alert (replacing an earlier one) and
    /// makes the encounter due for upload. Refused once the server has acknowledged it.
    pub async fn set_disposition(&self, id: Uuid, d: &Disposition) -> Result<()> {
        let mut tx = self.store.pool().begin().await?;
        let row: Option<(i64, String)> =
            sqlx::query_as("SELECT seq, status FROM encounters WHERE id = ?")
                .bind(id.hyphenated().to_string())
                .fetch_optional(&mut *tx)
                .await?;
        let (seq, status) = row.ok_or_else(|| StoreError::NotFound("encounter".into()))?;
        if status != "pending" {
            return Err(StoreError::Invalid(
                "the encounter was already uploaded or rejected; its disposition is final".into(),
            ));
        }
        sqlx::query(
            "INSERT INTO dispositions (encounter_seq, decision, reason, corrected_plate, \
             decided_at_ms) VALUES (?, ?, ?, ?, ?) ON CONFLICT (encounter_seq) DO UPDATE SET \
             decision = excluded.decision, reason = excluded.reason, \
             corrected_plate = excluded.corrected_plate, decided_at_ms = excluded.decided_at_ms",
        )
        .bind(seq)
        .bind(d.decision.as_str())
        .bind(d.reason.as_deref())
        .bind(d.corrected_plate.as_deref())
        .bind(d.decided_at_ms)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE encounters SET next_attempt_at_ms = 0 WHERE seq = ? AND attempts = 0")
            .bind(seq)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every encounter on the device that raised an alert (live or retro), oldest first, with
    /// its matches (best score first), disposition and outbox state.
    pub async fn alerts(&self) -> Result<Vec<AlertView>> {
        let rows = sqlx::query(
            "SELECT e.seq, e.id, e.captured_at_ms, e.plate, e.state, e.confidence, e.status, \
             d.decision, d.reason AS d_reason, d.corrected_plate, d.decided_at_ms, \
             a.list_id, l.name AS list_name, a.entry_id, n.plate AS entry_plate, \
             n.state AS entry_state, n.category, n.priority, a.kind, a.score, a.retro, a.raised_at \
             FROM encounters e JOIN alerts a ON a.read_id = e.read_id \
             LEFT JOIN lists l ON l.id = a.list_id LEFT JOIN entries n ON n.id = a.entry_id \
             LEFT JOIN dispositions d ON d.encounter_seq = e.seq \
             ORDER BY e.seq, a.score DESC, a.id",
        )
        .fetch_all(self.store.pool())
        .await?;
        let mut out: Vec<AlertView> = Vec::new();
        for r in rows {
            let seq: i64 = r.try_get("seq")?;
            let priority: Option<i64> = r.try_get("priority")?;
            let entry_state: Option<String> = r.try_get("entry_state")?;
            let score: f64 = r.try_get("score")?;
            let m = AlertMatch {
                list_id: r.try_get("list_id")?,
                list: r.try_get("list_name")?,
                entry_id: r.try_get("entry_id")?,
                entry_plate: r.try_get("entry_plate")?,
                entry_state: entry_state.filter(|s| !s.is_empty()),
                category: r.try_get("category")?,
                priority: priority
                    .map(|p| u8::try_from(p).map_err(|_| StoreError::Corrupt(seq)))
                    .transpose()?,
                kind: r.try_get("kind")?,
                score: score as f32,
                retro: r.try_get("retro")?,
                raised_at: r.try_get("raised_at")?,
            };
            if let Some(last) = out.last_mut().filter(|v| v.seq == seq) {
                last.matches.push(m);
                continue;
            }
            let disposition = disposition_of(&r, seq)?;
            let status: String = r.try_get("status")?;
            let confidence: f64 = r.try_get("confidence")?;
            out.push(AlertView {
                seq,
                id: parse_uuid(r.try_get("id")?, seq)?,
                captured_at_ms: r.try_get("captured_at_ms")?,
                plate: r.try_get("plate")?,
                state: r.try_get("state")?,
                confidence: confidence as f32,
                upload: UploadState::parse(&status).ok_or(StoreError::Corrupt(seq))?,
                disposition,
                matches: vec![m],
            });
        }
        Ok(out)
    }

    /// Retro-hits: checks every read still on the device against the hot list entries
    /// `new_ids` (just added or changed by a sync) and records each new hit as a retro alert,
    /// once per read and entry. An encounter still waiting for upload whose read is hit becomes
    /// an alerting encounter: the match's category and `retro_hit` join its tags, and when it
    /// was not tried yet it waits for the officer's disposition (or the alert hold) like a live
    /// alert. One transaction. `now_ms` decides entry expiry.
    pub async fn retro_alerts(
        &self,
        new_ids: &[u32],
        now_ms: i64,
        config: MatcherConfig,
    ) -> Result<Vec<RetroAlert>> {
        if new_ids.is_empty() {
            return Ok(Vec::new());
        }
        let fresh = self.store.entries_by_id(new_ids).await?;
        if fresh.is_empty() {
            return Ok(Vec::new());
        }
        let matcher = crate::build_matcher(&fresh, config)?;
        let now_s = now_ms.div_euclid(1000);
        let reads = self.store.reads_since(i64::MIN).await?;
        let mut out = Vec::new();
        let mut tx = self.store.pool().begin().await?;
        for read in reads {
            let matches = matcher.alerts(&read.query(), now_s);
            if matches.is_empty() {
                continue;
            }
            let mut hits = Vec::new();
            for m in matches {
                let inserted = sqlx::query(
                    "INSERT OR IGNORE INTO alerts (read_id, entry_id, list_id, kind, score, retro, \
                     raised_at) VALUES (?, ?, ?, ?, ?, 1, ?)",
                )
                .bind(read.id)
                .bind(i64::from(m.id))
                .bind(i64::from(m.list))
                .bind(m.kind.as_str())
                .bind(m.score)
                .bind(now_s)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if inserted == 1 {
                    hits.push(m);
                }
            }
            if hits.is_empty() {
                continue;
            }
            type Row = (i64, String, String, i64, i64, String);
            let enc: Option<Row> = sqlx::query_as(
                "SELECT seq, id, status, attempts, next_attempt_at_ms, match_tags FROM encounters \
                 WHERE read_id = ?",
            )
            .bind(read.id)
            .fetch_optional(&mut *tx)
            .await?;
            let (mut encounter, mut pending) = (None, false);
            if let Some((seq, id, status, attempts, next, tags)) = enc {
                encounter = Some(parse_uuid(&id, seq)?);
                if status == "pending" {
                    pending = true;
                    let mut tags: Vec<String> =
                        serde_json::from_str(&tags).map_err(|_| StoreError::Corrupt(seq))?;
                    tags.extend(hits.iter().map(|m| m.category.as_str().to_string()));
                    tags.push(RETRO_HIT_TAG.to_string());
                    tags.sort_unstable();
                    tags.dedup();
                    let tags = serde_json::to_string(&tags)
                        .map_err(|e| StoreError::Invalid(format!("match tags: {e}")))?;
                    let next = if attempts == 0 {
                        next.max(now_ms.saturating_add(self.alert_hold_ms))
                    } else {
                        next
                    };
                    sqlx::query(
                        "UPDATE encounters SET match_tags = ?, alert = 1, next_attempt_at_ms = ? \
                         WHERE seq = ?",
                    )
                    .bind(tags)
                    .bind(next)
                    .bind(seq)
                    .execute(&mut *tx)
                    .await?;
                }
            }
            out.extend(hits.into_iter().map(|m| RetroAlert {
                read_id: read.id,
                seen_at: read.seen_at,
                encounter,
                pending,
                matched: m,
            }));
        }
        tx.commit().await?;
        Ok(out)
    }

    fn image_from(
        &self,
        id: &Uuid,
        kind: &str,
        seq: i64,
        format: Option<String>,
        encrypted: Option<bool>,
        bytes: Option<Vec<u8>>,
    ) -> Result<Option<Image>> {
        let (Some(format), Some(encrypted), Some(bytes)) = (format, encrypted, bytes) else {
            return Ok(None);
        };
        let format = ImageFormat::parse(&format).ok_or(StoreError::Corrupt(seq))?;
        let bytes = if encrypted {
            self.key
                .as_ref()
                .ok_or(StoreError::Crypto)?
                .open(&aad(id, kind), &bytes)?
        } else {
            bytes
        };
        Ok(Some(Image { format, bytes }))
    }

    fn decode(&self, r: &sqlx::sqlite::SqliteRow) -> Result<StoredEncounter> {
        let seq: i64 = r.try_get("seq")?;
        let bad = |_| StoreError::Corrupt(seq);
        let id = parse_uuid(r.try_get("id")?, seq)?;
        let tags: Vec<String> = serde_json::from_str(r.try_get("match_tags")?).map_err(bad)?;
        let crop = self
            .image_from(
                &id,
                "crop",
                seq,
                r.try_get("crop_format")?,
                r.try_get("crop_encrypted")?,
                r.try_get("crop_bytes")?,
            )?
            .ok_or(StoreError::Corrupt(seq))?;
        let context = self.image_from(
            &id,
            "context",
            seq,
            r.try_get("ctx_format")?,
            r.try_get("ctx_encrypted")?,
            r.try_get("ctx_bytes")?,
        )?;
        let disposition = disposition_of(r, seq)?;
        let status: String = r.try_get("status")?;
        let attempts: i64 = r.try_get("attempts")?;
        let position = GpsFix {
            lat: r.try_get("lat")?,
            lon: r.try_get("lon")?,
            accuracy_m: r.try_get("accuracy_m")?,
            at_ms: r.try_get("fix_at_ms")?,
        };
        let encounter = Encounter {
            id,
            session_id: parse_uuid(r.try_get("session_id")?, seq)?,
            user: r.try_get("user_name")?,
            on_behalf_of: r.try_get("on_behalf_of")?,
            reason_code: r.try_get("reason_code")?,
            case_number: r.try_get("case_number")?,
            justification: r.try_get("justification")?,
            device_id: r.try_get("device_id")?,
            camera_id: r.try_get("camera_id")?,
            plate: r.try_get("plate")?,
            state: r.try_get("state")?,
            state_confidence: r.try_get("state_confidence")?,
            confidence: r.try_get("confidence")?,
            char_confidences: confidences_from(r.try_get("char_confidences")?, seq)?,
            captured_at_ms: r.try_get("captured_at_ms")?,
            position,
            plate_box: BBox::new(
                r.try_get("box_x")?,
                r.try_get("box_y")?,
                r.try_get("box_w")?,
                r.try_get("box_h")?,
            ),
            match_tags: tags,
        };
        Ok(StoredEncounter {
            seq,
            encounter,
            evidence: Evidence { crop, context },
            disposition,
            state: UploadState::parse(&status).ok_or(StoreError::Corrupt(seq))?,
            attempts: u32::try_from(attempts).map_err(|_| StoreError::Corrupt(seq))?,
            last_error: r.try_get("last_error")?,
            reject_reason: r.try_get("reject_reason")?,
            acked_at_ms: r.try_get("acked_at_ms")?,
        })
    }

    /// One encounter by id.
    pub async fn get(&self, id: Uuid) -> Result<Option<StoredEncounter>> {
        let sql = format!("SELECT {ENCOUNTER_COLUMNS} {ENCOUNTER_JOINS} WHERE e.id = ?");
        let row = sqlx::query(&sql)
            .bind(id.hyphenated().to_string())
            .fetch_optional(self.store.pool())
            .await?;
        row.map(|r| self.decode(&r)).transpose()
    }

    /// Up to `limit` pending rows due at `now_ms`, oldest first, as upload rows.
    pub async fn due(&self, now_ms: i64, limit: usize) -> Result<Vec<OutboxRow>> {
        let sql = format!(
            "SELECT {ENCOUNTER_COLUMNS} {ENCOUNTER_JOINS} WHERE e.status = 'pending' \
             AND e.next_attempt_at_ms <= ? ORDER BY e.seq LIMIT ?"
        );
        let rows = sqlx::query(&sql)
            .bind(now_ms)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(self.store.pool())
            .await?;
        rows.iter()
            .map(|r| {
                let s = self.decode(r)?;
                let upload = s.encounter.to_upload(
                    &s.evidence.crop.bytes,
                    s.evidence.context.as_ref().map(|c| c.bytes.as_slice()),
                    s.disposition.as_ref(),
                );
                let images = s.evidence.crop.bytes.len()
                    + s.evidence.context.as_ref().map_or(0, |c| c.bytes.len());
                Ok(OutboxRow {
                    seq: s.seq,
                    id: s.encounter.id,
                    attempts: s.attempts,
                    upload,
                    wire_bytes: images.div_ceil(3) * 4 + 1024,
                })
            })
            .collect()
    }

    /// Marks rows the server acknowledged. Rows already acknowledged keep their first time.
    pub async fn mark_acked(&self, acks: &[(Uuid, Ack)], now_ms: i64) -> Result<()> {
        let mut tx = self.store.pool().begin().await?;
        for kind in [Ack::Stored, Ack::Duplicate] {
            let ids: Vec<String> = acks
                .iter()
                .filter(|(_, a)| *a == kind)
                .map(|(id, _)| id.hyphenated().to_string())
                .collect();
            for chunk in ids.chunks(500) {
                let sql = format!(
                    "UPDATE encounters SET status = 'acked', server_status = ?, acked_at_ms = ?, \
                     last_error = NULL WHERE status = 'pending' AND id IN ({})",
                    vec!["?"; chunk.len()].join(",")
                );
                let mut q = sqlx::query(&sql).bind(kind.as_str()).bind(now_ms);
                for id in chunk {
                    q = q.bind(id);
                }
                q.execute(&mut *tx).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Marks rows the server refused, with its reason: kept, surfaced, never retried.
    pub async fn mark_rejected(&self, rejects: &[(Uuid, String)], now_ms: i64) -> Result<()> {
        let mut tx = self.store.pool().begin().await?;
        for (id, reason) in rejects {
            sqlx::query(
                "UPDATE encounters SET status = 'rejected', reject_reason = ?, rejected_at_ms = ? \
                 WHERE id = ? AND status = 'pending'",
            )
            .bind(reason)
            .bind(now_ms)
            .bind(id.hyphenated().to_string())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Counts a failed attempt for each row and schedules its next one.
    pub async fn mark_retry(&self, retries: &[(Uuid, i64)], error: &str) -> Result<()> {
        let mut tx = self.store.pool().begin().await?;
        for (id, next_at) in retries {
            sqlx::query(
                "UPDATE encounters SET attempts = attempts + 1, next_attempt_at_ms = ?, \
                 last_error = ? WHERE id = ? AND status = 'pending'",
            )
            .bind(next_at)
            .bind(error)
            .bind(id.hyphenated().to_string())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Deletes encounters acknowledged at or before `acked_before_ms`, with their images,
    /// disposition, read and alerts. Returns how many were deleted.
    pub async fn purge_acked(&self, acked_before_ms: i64) -> Result<u64> {
        let mut tx = self.store.pool().begin().await?;
        let read_ids: Vec<Option<i64>> = sqlx::query_scalar(
            "DELETE FROM encounters WHERE status = 'acked' AND acked_at_ms <= ? RETURNING read_id",
        )
        .bind(acked_before_ms)
        .fetch_all(&mut *tx)
        .await?;
        let ids: Vec<i64> = read_ids.iter().flatten().copied().collect();
        for chunk in ids.chunks(500) {
            let marks = vec!["?"; chunk.len()].join(",");
            let sql = format!("DELETE FROM reads WHERE id IN ({marks})");
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(id);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(read_ids.len() as u64)
    }

    /// Rows the server refused, newest first.
    pub async fn rejected(&self) -> Result<Vec<RejectedEncounter>> {
        type Raw = (i64, String, i64, Option<String>, Option<i64>);
        let rows: Vec<Raw> = sqlx::query_as(
            "SELECT seq, id, captured_at_ms, reject_reason, rejected_at_ms FROM encounters \
             WHERE status = 'rejected' ORDER BY rejected_at_ms DESC, seq DESC",
        )
        .fetch_all(self.store.pool())
        .await?;
        rows.into_iter()
            .map(|(seq, id, at, reason, when)| {
                Ok(RejectedEncounter {
                    id: parse_uuid(&id, seq)?,
                    captured_at_ms: at,
                    reason: reason.unwrap_or_default(),
                    rejected_at_ms: when.unwrap_or_default(),
                })
            })
            .collect()
    }

    /// Encounters ever recorded on this device, purged ones included.
    pub async fn recorded_total(&self) -> Result<i64> {
        Ok(sqlx::query_scalar::<_, i64>(
            "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'encounters'), 0)",
        )
        .fetch_one(self.store.pool())
        .await?)
    }

    /// Makes every pending row that failed before due now (an on-demand sync by the user);
    /// rows still waiting for their first attempt (an alert's disposition) are left alone.
    /// Returns how many rows were rescheduled.
    pub async fn retry_now(&self) -> Result<u64> {
        Ok(sqlx::query(
            "UPDATE encounters SET next_attempt_at_ms = 0 WHERE status = 'pending' AND attempts > 0",
        )
        .execute(self.store.pool())
        .await?
        .rows_affected())
    }

    /// Earliest next attempt among pending rows.
    pub async fn next_attempt_at(&self) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT MIN(next_attempt_at_ms) FROM encounters WHERE status = 'pending'",
        )
        .fetch_one(self.store.pool())
        .await?)
    }

    /// Outbox counts at `now_ms`.
    pub async fn outbox_status(&self, now_ms: i64) -> Result<OutboxStatus> {
        let counts: Vec<(String, i64)> =
            sqlx::query_as("SELECT status, COUNT(*) FROM encounters GROUP BY status")
                .fetch_all(self.store.pool())
                .await?;
        let counts: HashMap<String, i64> = counts.into_iter().collect();
        let (due, oldest, next): (i64, Option<i64>, Option<i64>) = sqlx::query_as(
            "SELECT COALESCE(SUM(next_attempt_at_ms <= ?), 0), MIN(captured_at_ms), \
             MIN(next_attempt_at_ms) FROM encounters WHERE status = 'pending'",
        )
        .bind(now_ms)
        .fetch_one(self.store.pool())
        .await?;
        Ok(OutboxStatus {
            pending: counts.get("pending").copied().unwrap_or(0),
            due,
            acked: counts.get("acked").copied().unwrap_or(0),
            rejected: counts.get("rejected").copied().unwrap_or(0),
            oldest_pending_ms: oldest,
            next_attempt_at_ms: next,
            recorded_total: self.recorded_total().await?,
        })
    }
}

/// The disposition columns (`LEFT JOIN dispositions d`) of encounter `seq`'s row, if decided.
fn disposition_of(r: &sqlx::sqlite::SqliteRow, seq: i64) -> Result<Option<Disposition>> {
    let Some(d) = r.try_get::<Option<String>, _>("decision")? else {
        return Ok(None);
    };
    Disposition::restore(
        Decision::parse(&d).ok_or(StoreError::Corrupt(seq))?,
        r.try_get::<Option<String>, _>("d_reason")?.as_deref(),
        r.try_get::<Option<String>, _>("corrected_plate")?
            .as_deref(),
        r.try_get("decided_at_ms")?,
    )
    .map(Some)
    .map_err(|_| StoreError::Corrupt(seq))
}

#[cfg(test)]
#[path = "encounter_tests.rs"]
mod tests;
