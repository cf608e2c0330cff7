//! Monthly reports: alerts triggered, encounters, distinct plates and plates encountered 4+ and
//! 7+ times, counts by area (square latitude/longitude grid cells of `report_grid_deg`) and by
//! hour of day. Aggregated in SQL on either backend; reports carry no plate text. Asking for
//! one is audited.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use platewatch_core::hotlist::Date;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::Row;

use crate::audit::AuditEvent;
use crate::auth::{Client, Principal, Role};
use crate::db::{Repo, on_pool};
use crate::error::ApiError;
use crate::{AppState, now_ms};

/// Most grid cells listed in one report (the busiest first).
pub const MAX_AREAS: usize = 10_000;

/// Encounters in one grid cell: the cell spans `[south, south + size)` ×
/// `[west, west + size)` degrees, and `(lat_index, lon_index) = floor((lat, lon) / size)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AreaCount {
    pub lat_index: i64,
    pub lon_index: i64,
    pub south: f64,
    pub west: f64,
    pub size_deg: f64,
    pub encounters: i64,
}

/// One month's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonthlyReport {
    /// `YYYY-MM`.
    pub month: String,
    pub utc_offset_minutes: i32,
    /// The month in Unix ms: `[from_ms, to_ms)`.
    pub from_ms: i64,
    pub to_ms: i64,
    pub encounters: i64,
    pub distinct_plates: i64,
    /// Encounters that raised an alert: a match tag or an alert disposition.
    pub alerts_triggered: i64,
    pub alerts_accepted: i64,
    pub alerts_rejected: i64,
    /// Distinct plates (by plate text) encountered at least 4 times in the month.
    pub plates_seen_4_plus: i64,
    /// Distinct plates encountered at least 7 times in the month.
    pub plates_seen_7_plus: i64,
    /// Encounters per local hour of day, index 0 = 00:00–00:59.
    pub by_hour: [i64; 24],
    /// Grid cells with encounters, busiest first (at most [`MAX_AREAS`]).
    pub by_area: Vec<AreaCount>,
    pub areas_truncated: bool,
}

/// The month `YYYY-MM` at a UTC offset, as `[from_ms, to_ms)`.
pub fn month_range(month: &str, utc_offset_minutes: i32) -> Result<(i64, i64), String> {
    let bad = || format!("month {month:?} is not YYYY-MM");
    let (y, m) = month.trim().split_once('-').ok_or_else(bad)?;
    if y.len() != 4 || m.len() != 2 {
        return Err(bad());
    }
    let y: i32 = y.parse().map_err(|_| bad())?;
    let m: u32 = m.parse().map_err(|_| bad())?;
    let start = Date::from_ymd(y, m, 1).ok_or_else(bad)?;
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    let end = Date::from_ymd(ny, nm, 1).ok_or_else(bad)?;
    let off = i64::from(utc_offset_minutes) * 60_000;
    Ok((
        start.unix_seconds() * 1000 - off,
        end.unix_seconds() * 1000 - off,
    ))
}

impl Repo {
    /// The report for encounters captured in `[from_ms, to_ms)`; hours are counted at
    /// `utc_offset_minutes`, areas on a grid of `grid_deg`.
    pub async fn monthly_report(
        &self,
        month: &str,
        utc_offset_minutes: i32,
        grid_deg: f64,
    ) -> Result<MonthlyReport, ApiError> {
        let (from_ms, to_ms) =
            month_range(month, utc_offset_minutes).map_err(ApiError::BadRequest)?;
        const WHERE: &str = "captured_at_ms >= $1 AND captured_at_ms < $2";
        let totals = format!(
            "SELECT COUNT(*) AS n, COUNT(DISTINCT plate) AS plates, \
             COALESCE(SUM(CASE WHEN alert_decision IS NOT NULL OR match_tags <> '[]' \
             THEN 1 ELSE 0 END), 0) AS alerts, \
             COALESCE(SUM(CASE WHEN alert_decision = 'accepted' THEN 1 ELSE 0 END), 0) AS acc, \
             COALESCE(SUM(CASE WHEN alert_decision = 'rejected' THEN 1 ELSE 0 END), 0) AS rej \
             FROM encounters WHERE {WHERE}"
        );
        let repeats = format!(
            "SELECT COALESCE(SUM(CASE WHEN n >= 4 THEN 1 ELSE 0 END), 0) AS four, \
             COALESCE(SUM(CASE WHEN n >= 7 THEN 1 ELSE 0 END), 0) AS seven \
             FROM (SELECT plate, COUNT(*) AS n FROM encounters WHERE {WHERE} GROUP BY plate) t"
        );
        let hours = format!(
            "SELECT ((captured_at_ms + $3) / 3600000) % 24 AS hour, COUNT(*) AS n \
             FROM encounters WHERE {WHERE} GROUP BY ((captured_at_ms + $3) / 3600000) % 24"
        );
        // floor(x / size): PostgreSQL has FLOOR; SQLite truncates after shifting positive.
        let cell = |col: &str| match self.backend() {
            "postgres" => format!("CAST(FLOOR({col} / $3) AS BIGINT)"),
            _ => format!("(CAST({col} / $3 + 10000000 AS INTEGER) - 10000000)"),
        };
        let (lat_cell, lon_cell) = (cell("lat"), cell("lon"));
        let areas = format!(
            "SELECT {lat_cell} AS la, {lon_cell} AS lo, COUNT(*) AS n FROM encounters \
             WHERE {WHERE} GROUP BY {lat_cell}, {lon_cell} ORDER BY n DESC, la, lo LIMIT $4"
        );
        let off_ms = i64::from(utc_offset_minutes) * 60_000;
        let limit = i64::try_from(MAX_AREAS + 1).unwrap_or(i64::MAX);
        let mut report = on_pool!(self.db(), p => {
            let t = sqlx::query(&totals).bind(from_ms).bind(to_ms).fetch_one(p).await?;
            let r = sqlx::query(&repeats).bind(from_ms).bind(to_ms).fetch_one(p).await?;
            let mut by_hour = [0i64; 24];
            for h in sqlx::query(&hours).bind(from_ms).bind(to_ms).bind(off_ms).fetch_all(p).await? {
                let hour: i64 = h.try_get("hour")?;
                if let Some(slot) = usize::try_from(hour).ok().and_then(|i| by_hour.get_mut(i)) {
                    *slot = h.try_get("n")?;
                }
            }
            let mut by_area = Vec::new();
            for a in sqlx::query(&areas).bind(from_ms).bind(to_ms).bind(grid_deg).bind(limit)
                .fetch_all(p).await?
            {
                let (la, lo): (i64, i64) = (a.try_get("la")?, a.try_get("lo")?);
                by_area.push(AreaCount {
                    lat_index: la,
                    lon_index: lo,
                    south: la as f64 * grid_deg,
                    west: lo as f64 * grid_deg,
                    size_deg: grid_deg,
                    encounters: a.try_get("n")?,
                });
            }
            MonthlyReport {
                month: month.trim().to_string(),
                utc_offset_minutes,
                from_ms,
                to_ms,
                encounters: t.try_get("n")?,
                distinct_plates: t.try_get("plates")?,
                alerts_triggered: t.try_get("alerts")?,
                alerts_accepted: t.try_get("acc")?,
                alerts_rejected: t.try_get("rej")?,
                plates_seen_4_plus: r.try_get("four")?,
                plates_seen_7_plus: r.try_get("seven")?,
                by_hour,
                by_area,
                areas_truncated: false,
            }
        });
        if report.by_area.len() > MAX_AREAS {
            report.by_area.truncate(MAX_AREAS);
            report.areas_truncated = true;
        }
        Ok(report)
    }
}

#[derive(Debug, Deserialize)]
pub struct ReportParams {
    /// `YYYY-MM`.
    pub month: String,
    /// Local time offset for month boundaries and hours, -720..=840 (default 0, UTC).
    #[serde(default)]
    pub utc_offset_minutes: i32,
}

/// `GET /v1/reports/monthly?month=YYYY-MM[&utc_offset_minutes=N]` (analyst, admin, auditor).
pub async fn monthly(
    State(state): State<AppState>,
    principal: Principal,
    Client(client): Client,
    query: Result<Query<ReportParams>, QueryRejection>,
) -> Result<Json<MonthlyReport>, ApiError> {
    principal.require(&[Role::Analyst, Role::Admin, Role::Auditor])?;
    let Query(p) = query.map_err(|_| {
        ApiError::BadRequest(
            "month (YYYY-MM) is required; utc_offset_minutes must be an integer".into(),
        )
    })?;
    if !(-720..=840).contains(&p.utc_offset_minutes) {
        return Err(ApiError::BadRequest(
            "utc_offset_minutes must be -720..=840".into(),
        ));
    }
    let report = state
        .repo
        .monthly_report(
            &p.month,
            p.utc_offset_minutes,
            state.config.ops.report_grid_deg,
        )
        .await?;
    state
        .repo
        .append_audit(
            AuditEvent {
                user_id: Some(principal.user_id),
                username: Some(principal.username),
                action: "report.monthly",
                outcome: "ok",
                criteria: json!({
                    "month": report.month,
                    "utc_offset_minutes": report.utc_offset_minutes,
                    "grid_deg": state.config.ops.report_grid_deg,
                }),
                result_count: Some(report.encounters),
                client,
                ..AuditEvent::default()
            },
            now_ms(),
        )
        .await?;
    Ok(Json(report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn month_ranges() {
        assert_eq!(
            month_range("2024-02", 0),
            Ok((1_706_745_600_000, 1_709_251_200_000))
        );
        let (a, b) = month_range("2024-12", 60).expect("december");
        assert_eq!(a, 1_733_011_200_000 - 3_600_000);
        assert_eq!(b, 1_735_689_600_000 - 3_600_000);
        for bad in ["2024", "2024-13", "24-01", "2024-1", "x-01"] {
            assert!(month_range(bad, 0).is_err(), "{bad}");
        }
    }
}
