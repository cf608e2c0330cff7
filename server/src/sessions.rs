//! Scanning sessions: `POST /v1/sessions` starts one (who, on whose behalf, reason code, case
//! number or justification) and `POST /v1/sessions/{id}/end` ends it; both are audited.
//! Encounters carry the session's id. A device that started scanning offline registers the
//! session later with the id it generated (idempotent for the same user).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::Row;

use crate::audit::AuditEvent;
use crate::auth::{Client, Principal, Role};
use crate::db::{Repo, on_pool};
use crate::error::{ApiError, ApiJson};
use crate::routes::valid_username;
use crate::{AppState, now_ms};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartSession {
    /// A client-generated UUID (else the server makes one).
    #[serde(default)]
    pub id: Option<String>,
    pub reason_code: String,
    #[serde(default)]
    pub case_number: Option<String>,
    #[serde(default)]
    pub justification: Option<String>,
    #[serde(default)]
    pub on_behalf_of: Option<String>,
}

/// A scanning session as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScanSession {
    pub id: String,
    pub user_id: i64,
    pub device_id: Option<i64>,
    pub on_behalf_of_user_id: Option<i64>,
    pub reason_code: String,
    pub case_number: Option<String>,
    pub justification: Option<String>,
    pub started_at_ms: i64,
    pub ended_at_ms: Option<i64>,
}

fn session_from_row<R: Row>(r: &R) -> Result<ScanSession, sqlx::Error>
where
    for<'c> &'c str: sqlx::ColumnIndex<R>,
    i64: for<'x> sqlx::Decode<'x, R::Database> + sqlx::Type<R::Database>,
    String: for<'x> sqlx::Decode<'x, R::Database> + sqlx::Type<R::Database>,
{
    Ok(ScanSession {
        id: r.try_get("id")?,
        user_id: r.try_get("user_id")?,
        device_id: r.try_get("device_id")?,
        on_behalf_of_user_id: r.try_get("on_behalf_of_user_id")?,
        reason_code: r.try_get("reason_code")?,
        case_number: r.try_get("case_number")?,
        justification: r.try_get("justification")?,
        started_at_ms: r.try_get("started_at_ms")?,
        ended_at_ms: r.try_get("ended_at_ms")?,
    })
}

const COLUMNS: &str = "id, user_id, device_id, on_behalf_of_user_id, reason_code, case_number, \
     justification, started_at_ms, ended_at_ms";

impl Repo {
    /// Stores a new session; `false` when one with that id exists already.
    pub async fn create_scan_session(&self, s: &ScanSession) -> Result<bool, sqlx::Error> {
        let sql = format!(
            "INSERT INTO scan_sessions ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (id) DO NOTHING"
        );
        on_pool!(self.db(), p => Ok(sqlx::query(&sql)
            .bind(&s.id)
            .bind(s.user_id)
            .bind(s.device_id)
            .bind(s.on_behalf_of_user_id)
            .bind(&s.reason_code)
            .bind(&s.case_number)
            .bind(&s.justification)
            .bind(s.started_at_ms)
            .bind(s.ended_at_ms)
            .execute(p)
            .await?
            .rows_affected() > 0))
    }

    pub async fn scan_session(&self, id: &str) -> Result<Option<ScanSession>, sqlx::Error> {
        let sql = format!("SELECT {COLUMNS} FROM scan_sessions WHERE id = $1");
        on_pool!(self.db(), p => {
            let row = sqlx::query(&sql).bind(id).fetch_optional(p).await?;
            row.as_ref().map(session_from_row).transpose()
        })
    }

    /// Ends an open session; `false` when it was not open.
    pub async fn end_scan_session(&self, id: &str, now_ms: i64) -> Result<bool, sqlx::Error> {
        const SQL: &str =
            "UPDATE scan_sessions SET ended_at_ms = $1 WHERE id = $2 AND ended_at_ms IS NULL";
        on_pool!(self.db(), p => Ok(sqlx::query(SQL).bind(now_ms).bind(id).execute(p).await?.rows_affected() > 0))
    }
}

fn text(field: &str, s: Option<&str>, max: usize) -> Result<Option<String>, ApiError> {
    match s.map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) if v.chars().count() <= max && !v.chars().any(char::is_control) => {
            Ok(Some(v.to_string()))
        }
        Some(_) => Err(ApiError::BadRequest(format!(
            "{field} must be 1..={max} characters without control characters"
        ))),
    }
}

fn parse_id(s: &str) -> Result<String, ApiError> {
    uuid::Uuid::parse_str(s.trim())
        .map(|u| u.hyphenated().to_string())
        .map_err(|_| ApiError::BadRequest("session id must be a UUID".into()))
}

/// `POST /v1/sessions` (officer, analyst; session or device token) → 201 with the session, or
/// 200 when the same user registers the same id again.
pub async fn start(
    State(state): State<AppState>,
    principal: Principal,
    Client(client): Client,
    ApiJson(req): ApiJson<StartSession>,
) -> Result<(StatusCode, Json<ScanSession>), ApiError> {
    principal.require_device_work(&[Role::Officer, Role::Analyst])?;
    let id = match req.id.as_deref() {
        Some(s) => parse_id(s)?,
        None => uuid::Uuid::new_v4().hyphenated().to_string(),
    };
    let reason_code = req.reason_code.trim();
    if !state.config.reason_codes.iter().any(|c| c == reason_code) {
        return Err(ApiError::BadRequest(
            "reason_code is not one of the configured reason codes".into(),
        ));
    }
    let case_number = text("case_number", req.case_number.as_deref(), 64)?;
    let justification = text("justification", req.justification.as_deref(), 2000)?;
    if case_number.is_none() && justification.is_none() {
        return Err(ApiError::BadRequest(
            "a case_number or a justification is required".into(),
        ));
    }
    let on_behalf_of =
        match req.on_behalf_of.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(u) if valid_username(u) => Some((
                state.repo.user_id_by_name(u).await?.ok_or_else(|| {
                    ApiError::BadRequest("on_behalf_of names no known user".into())
                })?,
                u.to_string(),
            )),
            Some(_) => {
                return Err(ApiError::BadRequest(
                    "on_behalf_of is not a valid username".into(),
                ));
            }
        };
    let session = ScanSession {
        id: id.clone(),
        user_id: principal.user_id,
        device_id: principal.device_id,
        on_behalf_of_user_id: on_behalf_of.as_ref().map(|(i, _)| *i),
        reason_code: reason_code.to_string(),
        case_number,
        justification,
        started_at_ms: now_ms(),
        ended_at_ms: None,
    };
    if !state.repo.create_scan_session(&session).await? {
        let existing = state
            .repo
            .scan_session(&id)
            .await?
            .ok_or(ApiError::Internal)?;
        if existing.user_id != principal.user_id {
            return Err(ApiError::Conflict(
                "a session with this id belongs to another user".into(),
            ));
        }
        return Ok((StatusCode::OK, Json(existing)));
    }
    state
        .repo
        .append_audit(
            AuditEvent {
                user_id: Some(principal.user_id),
                username: Some(principal.username),
                on_behalf_of: on_behalf_of.map(|(_, n)| n),
                action: "session.start",
                outcome: "ok",
                reason: Some(session.reason_code.clone()),
                justification: session.justification.clone(),
                criteria: json!({
                    "session_id": session.id,
                    "device_id": session.device_id,
                    "case_number": session.case_number,
                }),
                client,
                ..AuditEvent::default()
            },
            now_ms(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(session)))
}

/// `POST /v1/sessions/{id}/end` (the user who started it) → the ended session; 409 when it had
/// ended already.
pub async fn end(
    State(state): State<AppState>,
    principal: Principal,
    Client(client): Client,
    Path(id): Path<String>,
) -> Result<Json<ScanSession>, ApiError> {
    principal.require_device_work(&[Role::Officer, Role::Analyst])?;
    let id = parse_id(&id)?;
    let session = state
        .repo
        .scan_session(&id)
        .await?
        .ok_or(ApiError::NotFound("no such session"))?;
    if session.user_id != principal.user_id {
        return Err(ApiError::Forbidden(
            "only the user who started a session may end it".into(),
        ));
    }
    let now = now_ms();
    if !state.repo.end_scan_session(&id, now).await? {
        return Err(ApiError::Conflict("the session has ended already".into()));
    }
    state
        .repo
        .append_audit(
            AuditEvent {
                user_id: Some(principal.user_id),
                username: Some(principal.username),
                action: "session.end",
                outcome: "ok",
                reason: Some(session.reason_code.clone()),
                criteria: json!({
                    "session_id": id,
                    "device_id": principal.device_id,
                    "duration_ms": now - session.started_at_ms,
                }),
                client,
                ..AuditEvent::default()
            },
            now,
        )
        .await?;
    Ok(Json(ScanSession {
        ended_at_ms: Some(now),
        ..session
    }))
}
