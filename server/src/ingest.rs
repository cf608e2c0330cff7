//! Encounter ingest: `POST /v1/encounters` takes a batch, validates every row on its own
//! (wrong types included), stores the good rows idempotently by their client-generated UUID and
//! answers one status per row: `stored`, `duplicate` or `rejected` with a reason. Reasons name
//! the field, never its value.

use std::collections::{HashMap, HashSet};

use axum::Json;
use axum::extract::State;
use base64::Engine as _;
use platewatch_core::hotlist::entry::MAX_PLATE_LEN;
use platewatch_core::hotlist::parse_region;
use platewatch_core::text::CHARSET;
use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;

use crate::audit::AuditEvent;
use crate::auth::{Client, Principal, Role};
use crate::bulk;
use crate::config::Config;
use crate::db::{Db, Repo};
use crate::error::{ApiError, ApiJson, redact_quoted};
use crate::group_commit::AuditFor;
use crate::routes::valid_username;
use crate::sessions::ScanSession;
use crate::{AppState, now_ms};

/// Earliest accepted `captured_at_ms`: 2000-01-01T00:00:00Z.
pub const EARLIEST_CAPTURE_MS: i64 = 946_684_800_000;
/// How far in the future a capture time may be (device clock skew), in milliseconds.
pub const MAX_CLOCK_SKEW_MS: i64 = 5 * 60 * 1000;
/// Most match tags on one encounter.
pub const MAX_TAGS: usize = 32;

pub use platewatch_core::wire::{AlertDisposition, EncounterUpload};

/// A validated encounter, ready to store.
#[derive(Clone, PartialEq)]
pub struct Encounter {
    pub id: String,
    pub plate: String,
    pub state: Option<&'static str>,
    pub confidence: f64,
    pub crop: Vec<u8>,
    pub context_image: Option<Vec<u8>>,
    pub lat: f64,
    pub lon: f64,
    pub captured_at_ms: i64,
    pub device_id: i64,
    pub camera_id: String,
    pub user_id: i64,
    pub on_behalf_of_user_id: Option<i64>,
    pub reason_code: String,
    pub case_number: Option<String>,
    pub justification: Option<String>,
    pub session_id: String,
    /// JSON array of strings.
    pub match_tags: String,
    pub alert_decision: Option<&'static str>,
    pub alert_reason: Option<String>,
}

impl std::fmt::Debug for Encounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encounter")
            .field("id", &self.id)
            .field("plate", &"<redacted>")
            .field("captured_at_ms", &self.captured_at_ms)
            .field("device_id", &self.device_id)
            .finish_non_exhaustive()
    }
}

/// Who is uploading, and the clock.
#[derive(Debug, Clone, Copy)]
pub struct Uploader<'a> {
    pub user_id: i64,
    pub username: &'a str,
    pub device_id: i64,
    pub now_ms: i64,
}

fn text_field(field: &str, s: &str, max: usize) -> Result<String, String> {
    let s = s.trim();
    let n = s.chars().count();
    if n == 0 || n > max || s.chars().any(char::is_control) {
        return Err(format!(
            "{field} must be 1..={max} characters without control characters"
        ));
    }
    Ok(s.to_string())
}

fn optional_text(field: &str, s: &Option<String>, max: usize) -> Result<Option<String>, String> {
    match s.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => text_field(field, v, max).map(Some),
    }
}

fn image(field: &str, b64: &str, max: usize) -> Result<Vec<u8>, String> {
    if b64.len() > max.div_ceil(3) * 4 + 4 {
        return Err(format!("{field} is larger than {max} bytes"));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|_| format!("{field} is not valid base64"))?;
    if bytes.is_empty() {
        return Err(format!("{field} is empty"));
    }
    if bytes.len() > max {
        return Err(format!("{field} is larger than {max} bytes"));
    }
    Ok(bytes)
}

fn uuid_field(field: &str, s: &str) -> Result<String, String> {
    uuid::Uuid::parse_str(s.trim())
        .map(|u| u.hyphenated().to_string())
        .map_err(|_| format!("{field} must be a UUID"))
}

/// Validates one row: everything but whether `on_behalf_of` names a known user (the returned
/// name, checked against the database by the caller).
pub fn validate(
    row: &EncounterUpload,
    who: Uploader<'_>,
    config: &Config,
) -> Result<(Encounter, Option<String>), String> {
    let id = uuid_field("id", &row.id)?;
    let plate = row.plate.trim().to_ascii_uppercase();
    if plate.is_empty()
        || plate.len() > MAX_PLATE_LEN
        || !plate.bytes().all(|b| CHARSET.contains(&b))
    {
        return Err(format!(
            "plate must be 1..={MAX_PLATE_LEN} characters of A-Z and 0-9"
        ));
    }
    let state = match row.state.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(s) => Some(parse_region(s).map_err(|e| format!("state: {e}"))?),
    };
    if !(row.confidence.is_finite() && (0.0..=1.0).contains(&row.confidence)) {
        return Err("confidence must be between 0 and 1".into());
    }
    if !(row.lat.is_finite() && (-90.0..=90.0).contains(&row.lat)) {
        return Err("lat must be between -90 and 90".into());
    }
    if !(row.lon.is_finite() && (-180.0..=180.0).contains(&row.lon)) {
        return Err("lon must be between -180 and 180".into());
    }
    if row.captured_at_ms < EARLIEST_CAPTURE_MS {
        return Err("captured_at_ms is before the year 2000".into());
    }
    if row.captured_at_ms > who.now_ms.saturating_add(MAX_CLOCK_SKEW_MS) {
        return Err("captured_at_ms is more than 5 minutes in the future".into());
    }
    let crop = image("crop", &row.crop, config.limits.crop_bytes)?;
    let context_image = match &row.context_image {
        None => None,
        Some(b64) => Some(image("context_image", b64, config.limits.context_bytes)?),
    };
    if row.device_id.is_some_and(|d| d != who.device_id) {
        return Err("device_id does not match the authenticated device".into());
    }
    let camera_id = text_field("camera_id", &row.camera_id, 64)?;
    if row.user.as_deref().is_some_and(|u| u != who.username) {
        return Err("user does not match the authenticated user".into());
    }
    let on_behalf_of = match row.on_behalf_of.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(u) if valid_username(u) => Some(u.to_string()),
        Some(_) => return Err("on_behalf_of is not a valid username".into()),
    };
    let reason_code = row.reason_code.trim();
    if !config.reason_codes.iter().any(|c| c == reason_code) {
        return Err("reason_code is not one of the configured reason codes".into());
    }
    let case_number = optional_text("case_number", &row.case_number, 64)?;
    let justification = optional_text("justification", &row.justification, 2000)?;
    if case_number.is_none() && justification.is_none() {
        return Err("a case_number or a justification is required".into());
    }
    let session_id = uuid_field("session_id", &row.session_id)?;
    if row.match_tags.len() > MAX_TAGS {
        return Err(format!("at most {MAX_TAGS} match_tags"));
    }
    let tags = row
        .match_tags
        .iter()
        .map(|t| text_field("match_tags", t, 64))
        .collect::<Result<Vec<_>, _>>()?;
    let (alert_decision, alert_reason) = match &row.alert {
        None => (None, None),
        Some(a) => {
            let reason = optional_text("alert.reason", &a.reason, 500)?;
            match a.decision.as_str() {
                "accepted" => (Some("accepted"), reason),
                "rejected" if reason.is_some() => (Some("rejected"), reason),
                "rejected" => {
                    return Err("alert.reason is required when an alert is rejected".into());
                }
                _ => return Err("alert.decision must be accepted or rejected".into()),
            }
        }
    };
    let encounter = Encounter {
        id,
        plate,
        state,
        confidence: row.confidence,
        crop,
        context_image,
        lat: row.lat,
        lon: row.lon,
        captured_at_ms: row.captured_at_ms,
        device_id: who.device_id,
        camera_id,
        user_id: who.user_id,
        on_behalf_of_user_id: None,
        reason_code: reason_code.to_string(),
        case_number,
        justification,
        session_id,
        match_tags: serde_json::to_string(&tags).expect("a list of strings serialises"),
        alert_decision,
        alert_reason,
    };
    Ok((encounter, on_behalf_of))
}

/// An encounter's scanning session must be one its uploader started on the server (devices
/// open the session there before they scan), and the encounter must not be captured after
/// that session ended (beyond the allowed clock skew). An encounter uploaded after its session
/// ended is fine: the outbox uploads when it can.
fn session_check(
    session: Option<&ScanSession>,
    e: &Encounter,
    who: Uploader<'_>,
) -> Result<(), String> {
    let Some(session) = session else {
        return Err("session_id names no scanning session on the server; start it first".into());
    };
    if session.user_id != who.user_id {
        return Err("session_id names another user's scanning session".into());
    }
    if session
        .ended_at_ms
        .is_some_and(|end| e.captured_at_ms > end.saturating_add(MAX_CLOCK_SKEW_MS))
    {
        return Err("captured_at_ms is after its scanning session ended".into());
    }
    Ok(())
}

/// The rows of one upload that are the first with their id, among the ids `seen` so far (in
/// the upload, or in the group it is written with): only those are inserted, and a later
/// occurrence of an id answers `duplicate`.
pub(crate) struct Claim<'a> {
    all: &'a [Encounter],
    first: Vec<bool>,
    /// The first occurrences, in upload order.
    pub rows: Vec<&'a Encounter>,
}

impl<'a> Claim<'a> {
    pub(crate) fn of(all: &'a [Encounter], seen: &mut HashSet<&'a str>) -> Self {
        let first: Vec<bool> = all.iter().map(|e| seen.insert(e.id.as_str())).collect();
        let rows = all
            .iter()
            .zip(&first)
            .filter_map(|(e, f)| f.then_some(e))
            .collect();
        Claim { all, first, rows }
    }

    /// For each row of the upload, whether it was stored: its id's first occurrence, and
    /// among the ids the insert returned as new.
    pub(crate) fn stored(&self, new_ids: &[String]) -> Vec<bool> {
        let new: HashSet<&str> = new_ids.iter().map(String::as_str).collect();
        self.all
            .iter()
            .zip(&self.first)
            .map(|(e, f)| *f && new.contains(e.id.as_str()))
            .collect()
    }
}

impl Repo {
    /// Stores `encounters` in one transaction; for each, whether it was new (`false`: an
    /// encounter with that id was already stored, or appears earlier in `encounters`).
    pub async fn insert_encounters(
        &self,
        encounters: &[Encounter],
        received_at_ms: i64,
    ) -> Result<Vec<bool>, sqlx::Error> {
        self.ingest(encounters.to_vec(), received_at_ms, None).await
    }

    /// Stores `encounters` and appends `audit`'s event (made from which rows were new).
    ///
    /// - SQLite: through the group commit (`group_commit`), the event in the same
    ///   transaction as the rows.
    /// - PostgreSQL: rows are deduplicated by id first (the first occurrence counts), sorted by
    ///   id (so two uploads racing over the same new ids take their locks in the same order
    ///   and cannot deadlock) and written with one statement (`bulk`); then the event.
    pub(crate) async fn ingest(
        &self,
        encounters: Vec<Encounter>,
        received_at_ms: i64,
        audit: Option<AuditFor>,
    ) -> Result<Vec<bool>, sqlx::Error> {
        if encounters.is_empty() && audit.is_none() {
            return Ok(Vec::new());
        }
        let p = match self.db() {
            Db::Sqlite(p) => {
                return self
                    .ingest
                    .write(p, &self.audit_lock, encounters, received_at_ms, audit)
                    .await;
            }
            Db::Postgres(p) => p,
        };
        let mut seen = HashSet::with_capacity(encounters.len());
        let claim = Claim::of(&encounters, &mut seen);
        let mut unique = claim.rows.clone();
        unique.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        let new_ids = if unique.is_empty() {
            Vec::new()
        } else {
            bulk::pg_insert(p, &unique, received_at_ms).await?
        };
        let stored = claim.stored(&new_ids);
        if let Some(audit) = audit {
            self.append_audit(audit(&stored), crate::now_ms()).await?;
        }
        Ok(stored)
    }

    pub async fn count_encounters(&self) -> Result<i64, sqlx::Error> {
        crate::db::on_pool!(self.db(), p => sqlx::query_scalar("SELECT COUNT(*) FROM encounters").fetch_one(p).await)
    }
}

/// The batch: each row is kept as its raw JSON text and decoded on its own, so one malformed
/// row is rejected with a reason while the others are stored (and no `Value` tree is built).
#[derive(Debug, Deserialize)]
pub struct UploadRequest {
    pub encounters: Vec<Box<RawValue>>,
}

/// Just the `id` of a row that failed to decode or validate, to name it in the answer.
#[derive(Deserialize)]
struct RowId {
    #[serde(default)]
    id: Option<serde_json::Value>,
}

fn row_id(raw: &RawValue) -> Option<String> {
    serde_json::from_str::<RowId>(raw.get())
        .ok()?
        .id?
        .as_str()
        .and_then(|s| uuid_field("id", s).ok())
}

pub use platewatch_core::wire::{RowResult, RowStatus, UploadResponse};

/// Why a row did not decode, without serde_json's "at line 1 column N" (the row is one
/// element of the batch; its position in the body says nothing to the client).
fn decode_reason(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg,
    }
}

/// `POST /v1/encounters` (officer, analyst; device token).
///
/// The work runs in its own task: a device that drops the connection mid-request (killed,
/// out of signal) must not cancel a database transaction half-way. On SQLite a cancelled
/// `BEGIN IMMEDIATE` left the pooled connection inside a transaction holding the write lock,
/// and every later write failed (found by the sync crash-safety test).
pub async fn upload(
    State(state): State<AppState>,
    principal: Principal,
    Client(client): Client,
    ApiJson(req): ApiJson<UploadRequest>,
) -> Result<Json<UploadResponse>, ApiError> {
    tokio::spawn(upload_batch(state, principal, client, req))
        .await
        .map_err(|_| ApiError::Internal)?
}

async fn upload_batch(
    state: AppState,
    principal: Principal,
    client: Option<String>,
    req: UploadRequest,
) -> Result<Json<UploadResponse>, ApiError> {
    principal.require_device_work(&[Role::Officer, Role::Analyst])?;
    let device_id = principal
        .device_id
        .ok_or_else(|| ApiError::Forbidden("encounters are uploaded with a device token".into()))?;
    let max = state.config.limits.batch_rows;
    if req.encounters.is_empty() || req.encounters.len() > max {
        return Err(ApiError::BadRequest(format!(
            "a batch holds 1..={max} encounters"
        )));
    }
    let now = now_ms();
    let who = Uploader {
        user_id: principal.user_id,
        username: &principal.username,
        device_id,
        now_ms: now,
    };
    let mut results = Vec::with_capacity(req.encounters.len());
    let mut good = Vec::new();
    let mut good_index = Vec::new();
    let mut known_users: HashMap<String, Option<i64>> = HashMap::new();
    let mut known_sessions: HashMap<String, Option<ScanSession>> = HashMap::new();
    for (index, raw) in req.encounters.iter().enumerate() {
        let checked = match serde_json::from_str::<EncounterUpload>(raw.get()) {
            Err(e) => Err(redact_quoted(&decode_reason(&e))),
            Ok(row) => validate(&row, who, &state.config),
        };
        let checked = match checked {
            Ok((mut e, Some(name))) => {
                let uid = match known_users.get(&name) {
                    Some(uid) => *uid,
                    None => {
                        let uid = state.repo.user_id_by_name(&name).await?;
                        known_users.insert(name, uid);
                        uid
                    }
                };
                match uid {
                    Some(uid) => {
                        e.on_behalf_of_user_id = Some(uid);
                        Ok(e)
                    }
                    None => Err("on_behalf_of names no known user".to_string()),
                }
            }
            Ok((e, None)) => Ok(e),
            Err(reason) => Err(reason),
        };
        let checked = match checked {
            Ok(e) => {
                if !known_sessions.contains_key(&e.session_id) {
                    let s = state.repo.scan_session(&e.session_id).await?;
                    known_sessions.insert(e.session_id.clone(), s);
                }
                let session = known_sessions.get(&e.session_id).and_then(Option::as_ref);
                session_check(session, &e, who).map(|()| e)
            }
            Err(reason) => Err(reason),
        };
        match checked {
            Ok(e) => {
                good_index.push(results.len());
                results.push(RowResult {
                    index,
                    id: Some(e.id.clone()),
                    status: RowStatus::Stored,
                    reason: None,
                });
                good.push(e);
            }
            Err(reason) => results.push(RowResult {
                index,
                id: row_id(raw),
                status: RowStatus::Rejected,
                reason: Some(reason),
            }),
        }
    }
    // The upload's audit row, from which of its rows were new (on SQLite, written in the
    // same transaction as the rows).
    let rejected = results.len() - good.len();
    let audit: AuditFor = Box::new(move |stored: &[bool]| {
        let new = stored.iter().filter(|s| **s).count();
        AuditEvent {
            user_id: Some(principal.user_id),
            username: Some(principal.username.clone()),
            action: "encounters.upload",
            outcome: "ok",
            criteria: json!({
                "device_id": device_id,
                "stored": new,
                "duplicates": stored.len() - new,
                "rejected": rejected,
            }),
            result_count: i64::try_from(new).ok(),
            client: client.clone(),
            ..AuditEvent::default()
        }
    });
    let stored = state.repo.ingest(good, now, Some(audit)).await?;
    for (i, new) in good_index.into_iter().zip(stored) {
        if !new {
            results[i].status = RowStatus::Duplicate;
        }
    }
    let count = |s| results.iter().filter(|r| r.status == s).count();
    let response = UploadResponse {
        stored: count(RowStatus::Stored),
        duplicates: count(RowStatus::Duplicate),
        rejected: count(RowStatus::Rejected),
        results,
    };
    Ok(Json(response))
}
