//! Retention: encounters older than the configured period (730 days by default) are deleted
//! unless their case number is under an open case hold. Analysts set and release holds; holds
//! and every retention run (with its counts) are audited. `serve` runs the job periodically;
//! `platewatch retention run` runs it once.

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
use crate::{AppState, now_ms};

/// Milliseconds in a day.
pub const DAY_MS: i64 = 86_400_000;
/// Encounters deleted per statement (keeps transactions and locks short).
const DELETE_BATCH: i64 = 5_000;

/// What one retention run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionReport {
    pub retention_days: u32,
    /// Encounters captured before this instant (Unix ms) were due.
    pub cutoff_ms: i64,
    pub deleted: u64,
    /// Due, but kept because their case is on hold.
    pub held: u64,
}

/// A case hold as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseHold {
    pub id: i64,
    pub case_number: String,
    pub justification: String,
    pub created_by: String,
    pub created_at_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released_at_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_reason: Option<String>,
}

/// The condition "not under an open hold" on an `encounters` row.
const NOT_HELD: &str = "(case_number IS NULL OR case_number NOT IN \
     (SELECT case_number FROM case_holds WHERE released_at_ms IS NULL))";

const HOLD_COLUMNS: &str = "h.id, h.case_number, h.justification, c.username AS created_by, \
     h.created_at_ms, r.username AS released_by, h.released_at_ms, h.release_reason";

fn hold_from<R: Row>(r: &R) -> Result<CaseHold, sqlx::Error>
where
    for<'c> &'c str: sqlx::ColumnIndex<R>,
    i64: for<'x> sqlx::Decode<'x, R::Database> + sqlx::Type<R::Database>,
    String: for<'x> sqlx::Decode<'x, R::Database> + sqlx::Type<R::Database>,
{
    Ok(CaseHold {
        id: r.try_get("id")?,
        case_number: r.try_get("case_number")?,
        justification: r.try_get("justification")?,
        created_by: r.try_get("created_by")?,
        created_at_ms: r.try_get("created_at_ms")?,
        released_by: r.try_get("released_by")?,
        released_at_ms: r.try_get("released_at_ms")?,
        release_reason: r.try_get("release_reason")?,
    })
}

/// What releasing a hold did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Released {
    Now,
    Already,
    NotFound,
}

impl Repo {
    /// Deletes encounters captured before `cutoff_ms` whose case is not on hold, in batches;
    /// returns (deleted, held).
    pub async fn delete_expired_encounters(
        &self,
        cutoff_ms: i64,
    ) -> Result<(u64, u64), sqlx::Error> {
        let delete = format!(
            "DELETE FROM encounters WHERE id IN (SELECT id FROM encounters \
             WHERE captured_at_ms < $1 AND {NOT_HELD} LIMIT $2)"
        );
        const HELD: &str = "SELECT COUNT(*) FROM encounters WHERE captured_at_ms < $1 \
             AND case_number IN (SELECT case_number FROM case_holds WHERE released_at_ms IS NULL)";
        let mut deleted = 0u64;
        loop {
            let n = on_pool!(self.db(), p => sqlx::query(&delete)
                .bind(cutoff_ms)
                .bind(DELETE_BATCH)
                .execute(p)
                .await?
                .rows_affected());
            deleted += n;
            if n < u64::try_from(DELETE_BATCH).unwrap_or(u64::MAX) {
                break;
            }
        }
        let held: i64 =
            on_pool!(self.db(), p => sqlx::query_scalar(HELD).bind(cutoff_ms).fetch_one(p).await?);
        Ok((deleted, u64::try_from(held).unwrap_or(0)))
    }

    /// Opens a hold on `case_number`; a case already on hold is a unique violation.
    pub async fn create_hold(
        &self,
        case_number: &str,
        justification: &str,
        by: i64,
        now_ms: i64,
    ) -> Result<i64, sqlx::Error> {
        const SQL: &str = "INSERT INTO case_holds (case_number, justification, created_by, \
             created_at_ms) VALUES ($1, $2, $3, $4) RETURNING id";
        on_pool!(self.db(), p => sqlx::query_scalar(SQL)
            .bind(case_number)
            .bind(justification)
            .bind(by)
            .bind(now_ms)
            .fetch_one(p)
            .await)
    }

    pub async fn release_hold(
        &self,
        id: i64,
        by: i64,
        reason: &str,
        now_ms: i64,
    ) -> Result<Released, sqlx::Error> {
        const SQL: &str = "UPDATE case_holds SET released_at_ms = $1, released_by = $2, \
             release_reason = $3 WHERE id = $4 AND released_at_ms IS NULL";
        const EXISTS: &str = "SELECT COUNT(*) FROM case_holds WHERE id = $1";
        on_pool!(self.db(), p => {
            let n = sqlx::query(SQL).bind(now_ms).bind(by).bind(reason).bind(id)
                .execute(p).await?.rows_affected();
            if n > 0 {
                return Ok(Released::Now);
            }
            let e: i64 = sqlx::query_scalar(EXISTS).bind(id).fetch_one(p).await?;
            Ok(if e > 0 { Released::Already } else { Released::NotFound })
        })
    }

    /// Holds, newest first; only open ones unless `all`.
    pub async fn holds(&self, all: bool) -> Result<Vec<CaseHold>, sqlx::Error> {
        let sql = format!(
            "SELECT {HOLD_COLUMNS} FROM case_holds h JOIN users c ON c.id = h.created_by \
             LEFT JOIN users r ON r.id = h.released_by {} ORDER BY h.id DESC",
            if all {
                ""
            } else {
                "WHERE h.released_at_ms IS NULL"
            }
        );
        on_pool!(self.db(), p => {
            let rows = sqlx::query(&sql).fetch_all(p).await?;
            rows.iter().map(hold_from).collect()
        })
    }
}

/// Runs retention once at `now_ms` and appends the run to the audit log (`actor` names who or
/// what ran it: `serve` or the command line).
pub async fn run_once(
    repo: &Repo,
    retention_days: u32,
    now_ms: i64,
    actor: &str,
) -> Result<RetentionReport, sqlx::Error> {
    let cutoff_ms = now_ms.saturating_sub(i64::from(retention_days) * DAY_MS);
    let (deleted, held) = repo.delete_expired_encounters(cutoff_ms).await?;
    let report = RetentionReport {
        retention_days,
        cutoff_ms,
        deleted,
        held,
    };
    repo.append_audit(
        AuditEvent {
            username: Some(actor.to_string()),
            action: "retention.run",
            outcome: "ok",
            criteria: json!(report),
            result_count: i64::try_from(deleted).ok(),
            ..AuditEvent::default()
        },
        crate::now_ms(),
    )
    .await?;
    Ok(report)
}

/// Runs retention now and then every configured interval, until the task is dropped. Failures
/// are logged and retried at the next interval.
pub async fn run_periodically(state: AppState) {
    let every = std::time::Duration::from_secs(state.config.ops.retention_interval_secs);
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        match run_once(
            &state.repo,
            state.config.ops.retention_days,
            now_ms(),
            "system:retention",
        )
        .await
        {
            Ok(r) => tracing::info!(deleted = r.deleted, held = r.held, "retention run"),
            Err(e) => {
                // The conversion logs the error's kind (never its message, which may quote
                // values); the next tick retries.
                let _logged = ApiError::from(e);
                tracing::warn!("retention run failed; retrying at the next interval");
            }
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct HoldRequest {
    pub case_number: String,
    pub justification: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct ReleaseRequest {
    pub reason: String,
}

fn text(field: &str, s: &str, max: usize) -> Result<String, ApiError> {
    let t = s.trim();
    let n = t.chars().count();
    if n == 0 || n > max || t.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(format!(
            "{field} must be 1..={max} characters without control characters"
        )));
    }
    Ok(t.to_string())
}

fn event(p: &Principal, client: Option<String>, action: &'static str) -> AuditEvent {
    AuditEvent {
        user_id: Some(p.user_id),
        username: Some(p.username.clone()),
        action,
        outcome: "ok",
        client,
        ..AuditEvent::default()
    }
}

/// `POST /v1/holds` (analyst): puts a case on hold; its encounters survive retention until
/// the hold is released.
pub async fn create(
    State(state): State<AppState>,
    principal: Principal,
    Client(client): Client,
    ApiJson(req): ApiJson<HoldRequest>,
) -> Result<(StatusCode, Json<CaseHold>), ApiError> {
    principal.require(&[Role::Analyst])?;
    let case_number = text("case_number", &req.case_number, 64)?;
    let justification = text("justification", &req.justification, 2000)?;
    let now = now_ms();
    let id = state
        .repo
        .create_hold(&case_number, &justification, principal.user_id, now)
        .await
        .map_err(|e| match ApiError::from(e) {
            ApiError::Conflict(_) => ApiError::Conflict("this case is already on hold".into()),
            other => other,
        })?;
    let mut ev = event(&principal, client, "hold.set");
    ev.justification = Some(justification.clone());
    ev.criteria = json!({ "hold_id": id, "case_number": case_number });
    state.repo.append_audit(ev, now_ms()).await?;
    Ok((
        StatusCode::CREATED,
        Json(CaseHold {
            id,
            case_number,
            justification,
            created_by: principal.username,
            created_at_ms: now,
            released_by: None,
            released_at_ms: None,
            release_reason: None,
        }),
    ))
}

/// `DELETE /v1/holds/{id}` (analyst) with `{reason}`: releases a hold; its encounters are then
/// subject to retention again.
pub async fn release(
    State(state): State<AppState>,
    principal: Principal,
    Client(client): Client,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<ReleaseRequest>,
) -> Result<StatusCode, ApiError> {
    principal.require(&[Role::Analyst])?;
    let id = crate::routes::integer_id("hold", &id)?;
    let reason = text("reason", &req.reason, 2000)?;
    let outcome = state
        .repo
        .release_hold(id, principal.user_id, &reason, now_ms())
        .await?;
    let mut ev = event(&principal, client, "hold.release");
    ev.reason = Some(reason);
    ev.criteria = json!({ "hold_id": id, "already_released": outcome == Released::Already });
    if outcome == Released::NotFound {
        ev.outcome = "failed";
    }
    state.repo.append_audit(ev, now_ms()).await?;
    match outcome {
        Released::Now | Released::Already => Ok(StatusCode::NO_CONTENT),
        Released::NotFound => Err(ApiError::NotFound("no such hold")),
    }
}

#[derive(Debug, Deserialize)]
pub struct ListParams {
    #[serde(default)]
    pub all: bool,
}

/// `GET /v1/holds[?all=true]` (analyst, admin, auditor): open holds (or every hold).
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    params: Result<axum::extract::Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    principal.require(&[Role::Analyst, Role::Admin, Role::Auditor])?;
    let all = params
        .map_err(|_| ApiError::BadRequest("all must be true or false".into()))?
        .0
        .all;
    let holds = state.repo.holds(all).await?;
    Ok(Json(json!({ "holds": holds })))
}
