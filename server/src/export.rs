//! Audit export: the audit rows of a time range as CSV or JSON, with their hashes so the
//! segment can be checked outside the server. Served to auditors at `GET /v1/audit/export` and
//! used by `platewatch audit export`; every export is itself appended to the audit log, and then
//! a checkpoint of the chain's head is signed (the JSON document carries it).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use platewatch_core::hotlist::Date;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::audit::{AuditEvent, AuditRow, Checkpoint, CheckpointError, row_from};
use crate::auth::{Client, Principal, Role};
use crate::db::{Repo, on_pool};
use crate::error::ApiError;
use crate::{AppState, now_ms};

/// Most rows one export returns: narrow the range beyond this.
pub const MAX_EXPORT_ROWS: usize = 1_000_000;
const PAGE: i64 = 5_000;

/// Export file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    Csv,
    Json,
}

impl ExportFormat {
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "csv" => Some(Self::Csv),
            "json" => Some(Self::Json),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Json => "json",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Csv => "text/csv; charset=utf-8",
            Self::Json => "application/json",
        }
    }
}

/// Why an export was refused.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{0}")]
    Invalid(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

impl From<ExportError> for ApiError {
    fn from(e: ExportError) -> Self {
        match e {
            ExportError::Invalid(m) => ApiError::BadRequest(m),
            ExportError::Database(e) => ApiError::from(e),
        }
    }
}

/// An instant as Unix milliseconds: an integer, `YYYY-MM-DD` (00:00 UTC) or
/// `YYYY-MM-DDTHH:MM[:SS[.fff]]Z`.
pub fn parse_instant(s: &str) -> Result<i64, String> {
    let t = s.trim();
    let bad = || format!("{t:?} is not Unix milliseconds, YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ");
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return t.parse().map_err(|_| bad());
    }
    let (day, time) = match t.split_once('T') {
        Some((d, rest)) => (d, Some(rest)),
        None => (t, None),
    };
    if day.len() != 10 {
        return Err(bad());
    }
    let date = Date::parse(day).map_err(|_| bad())?;
    let mut ms = date.unix_seconds() * 1000;
    if let Some(rest) = time {
        let rest = rest.strip_suffix('Z').ok_or_else(bad)?;
        let (hms, frac) = match rest.split_once('.') {
            Some((a, f)) => (a, Some(f)),
            None => (rest, None),
        };
        let parts: Vec<&str> = hms.split(':').collect();
        if !(2..=3).contains(&parts.len()) {
            return Err(bad());
        }
        let mut fields = [0i64; 3];
        for (i, p) in parts.iter().enumerate() {
            if p.len() != 2 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            fields[i] = p.parse().map_err(|_| bad())?;
        }
        if fields[0] > 23 || fields[1] > 59 || fields[2] > 59 {
            return Err(bad());
        }
        ms += (fields[0] * 3600 + fields[1] * 60 + fields[2]) * 1000;
        if let Some(f) = frac {
            if f.is_empty() || f.len() > 3 || !f.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            let v: i64 = f.parse().map_err(|_| bad())?;
            ms += v * 10i64.pow(3 - u32::try_from(f.len()).unwrap_or(3));
        }
    }
    Ok(ms)
}

impl Repo {
    /// Audit rows with `from_ms <= at_ms < to_ms`, in chain order, at most `limit + 1` (so the
    /// caller can tell the range holds more than `limit`).
    pub async fn audit_rows_between(
        &self,
        from_ms: i64,
        to_ms: i64,
        limit: usize,
    ) -> Result<Vec<AuditRow>, sqlx::Error> {
        const SQL: &str = "SELECT seq, at_ms, user_id, username, on_behalf_of, action, outcome, \
             reason, justification, criteria, result_count, client, prev_hash, hash \
             FROM audit_log WHERE at_ms >= $1 AND at_ms < $2 AND seq > $3 ORDER BY seq LIMIT $4";
        let mut out: Vec<AuditRow> = Vec::new();
        let mut after = 0i64;
        loop {
            let page: Vec<AuditRow> = on_pool!(self.db(), p => {
                let rows = sqlx::query(SQL)
                    .bind(from_ms)
                    .bind(to_ms)
                    .bind(after)
                    .bind(PAGE)
                    .fetch_all(p)
                    .await?;
                rows.iter().map(row_from).collect::<Result<_, _>>()?
            });
            let n = page.len();
            if let Some(last) = page.last() {
                after = last.seq;
            }
            out.extend(page);
            if out.len() > limit || n < usize::try_from(PAGE).unwrap_or(usize::MAX) {
                break;
            }
        }
        out.truncate(limit.saturating_add(1));
        Ok(out)
    }
}

/// Quotes a CSV field when it holds a comma, quote, CR or LF (RFC 4180). A field that a
/// spreadsheet would run as a formula (it starts with `=`, `+`, `-`, `@`, a tab or a CR) gets
/// a leading `'` (OWASP's CSV injection advice): a justification `=HYPERLINK(…)` is shown as
/// text. The JSON export keeps every value exactly as hashed.
fn csv_field(out: &mut String, s: &str) {
    let escaped;
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        escaped = format!("'{s}");
        escaped.as_str()
    } else {
        s
    };
    if s.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&s.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(s);
    }
}

/// CSV columns, in order.
pub const CSV_COLUMNS: [&str; 14] = [
    "seq",
    "at_ms",
    "user_id",
    "username",
    "on_behalf_of",
    "action",
    "outcome",
    "reason",
    "justification",
    "criteria",
    "result_count",
    "client",
    "prev_hash",
    "hash",
];

/// The rows as CSV with a header line; absent values are empty fields.
pub fn to_csv(rows: &[AuditRow]) -> String {
    let mut out = CSV_COLUMNS.join(",");
    out.push_str("\r\n");
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    let num = |v: Option<i64>| v.map(|n| n.to_string()).unwrap_or_default();
    for r in rows {
        let fields = [
            r.seq.to_string(),
            r.at_ms.to_string(),
            num(r.user_id),
            opt(&r.username),
            opt(&r.on_behalf_of),
            r.action.clone(),
            r.outcome.clone(),
            opt(&r.reason),
            opt(&r.justification),
            r.criteria.clone(),
            num(r.result_count),
            opt(&r.client),
            r.prev_hash.clone(),
            r.hash.clone(),
        ];
        for (i, f) in fields.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            csv_field(&mut out, f);
        }
        out.push_str("\r\n");
    }
    out
}

/// The JSON export document.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JsonExport {
    pub from_ms: i64,
    pub to_ms: i64,
    pub count: usize,
    pub rows: Vec<AuditRow>,
    /// The checkpoint signed after this export was audited: it covers every row above and the
    /// export's own. `null` when the chain is broken (a checkpoint never vouches for that).
    #[serde(default)]
    pub checkpoint: Option<Checkpoint>,
}

/// What [`export`] made.
#[derive(Debug, Clone)]
pub struct Exported {
    /// The CSV or JSON document.
    pub body: String,
    /// Rows in it.
    pub count: usize,
    /// The checkpoint signed after the export was audited (`None` when the chain is broken).
    pub checkpoint: Option<Checkpoint>,
}

/// Who asks for an export, for its own audit row.
#[derive(Debug, Clone, Default)]
pub struct Exporter {
    pub user_id: Option<i64>,
    pub username: String,
    pub client: Option<String>,
}

/// Reads the rows of `[from_ms, to_ms)`, appends the export to the audit log, signs a
/// checkpoint of the head and renders the document.
pub async fn export(
    repo: &Repo,
    from_ms: i64,
    to_ms: i64,
    format: ExportFormat,
    who: Exporter,
) -> Result<Exported, ExportError> {
    if to_ms <= from_ms {
        return Err(ExportError::Invalid("to must be after from".into()));
    }
    let rows = repo
        .audit_rows_between(from_ms, to_ms, MAX_EXPORT_ROWS)
        .await?;
    if rows.len() > MAX_EXPORT_ROWS {
        return Err(ExportError::Invalid(format!(
            "the range holds more than {MAX_EXPORT_ROWS} rows: narrow it"
        )));
    }
    let count = rows.len();
    repo.append_audit(
        AuditEvent {
            user_id: who.user_id,
            username: Some(who.username),
            action: "audit.export",
            outcome: "ok",
            criteria: json!({ "from_ms": from_ms, "to_ms": to_ms, "format": format.as_str() }),
            result_count: i64::try_from(count).ok(),
            client: who.client,
            ..AuditEvent::default()
        },
        now_ms(),
    )
    .await?;
    let checkpoint = match repo.sign_checkpoint(now_ms()).await {
        Ok(cp) => Some(cp),
        Err(CheckpointError::Broken { seq, problem }) => {
            tracing::error!(
                seq,
                problem,
                "audit chain broken: the export carries no checkpoint"
            );
            None
        }
        Err(CheckpointError::Database(e)) => return Err(e.into()),
    };
    let body = match format {
        ExportFormat::Csv => to_csv(&rows),
        ExportFormat::Json => serde_json::to_string(&JsonExport {
            from_ms,
            to_ms,
            count,
            rows,
            checkpoint: checkpoint.clone(),
        })
        .map_err(|_| ExportError::Invalid("rows could not be serialised".into()))?,
    };
    Ok(Exported {
        body,
        count,
        checkpoint,
    })
}

#[derive(Debug, Deserialize)]
pub struct ExportParams {
    pub from: String,
    pub to: String,
    #[serde(default)]
    pub format: Option<String>,
}

/// `GET /v1/audit/export?from=&to=&format=csv|json` (auditor).
pub async fn export_handler(
    State(state): State<AppState>,
    principal: Principal,
    Client(client): Client,
    query: Result<Query<ExportParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    principal.require(&[Role::Auditor])?;
    let Query(p) = query.map_err(|_| {
        ApiError::BadRequest("from and to are required (format: csv or json)".into())
    })?;
    let from = parse_instant(&p.from).map_err(|m| ApiError::BadRequest(format!("from: {m}")))?;
    let to = parse_instant(&p.to).map_err(|m| ApiError::BadRequest(format!("to: {m}")))?;
    let format = match p.format.as_deref() {
        None => ExportFormat::Json,
        Some(f) => ExportFormat::parse(f)
            .ok_or_else(|| ApiError::BadRequest("format must be csv or json".into()))?,
    };
    let who = Exporter {
        user_id: Some(principal.user_id),
        username: principal.username,
        client,
    };
    let body = export(&state.repo, from, to, format, who).await?.body;
    let filename = format!(
        "attachment; filename=\"audit-{from}-{to}.{}\"",
        format.as_str()
    );
    Ok((
        [
            (CONTENT_TYPE, format.content_type().to_string()),
            (CONTENT_DISPOSITION, filename),
        ],
        body,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants() {
        assert_eq!(parse_instant("1700000000000"), Ok(1_700_000_000_000));
        assert_eq!(parse_instant("2024-01-01"), Ok(1_704_067_200_000));
        assert_eq!(parse_instant("2024-01-01T00:00Z"), Ok(1_704_067_200_000));
        assert_eq!(parse_instant("2024-01-01T01:02:03Z"), Ok(1_704_070_923_000));
        assert_eq!(
            parse_instant("2024-01-01T01:02:03.5Z"),
            Ok(1_704_070_923_500)
        );
        for bad in [
            "",
            "yesterday",
            "2024-13-01",
            "2024-01-01T25:00Z",
            "2024-01-01T01:02",
        ] {
            assert!(parse_instant(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn csv_quotes_what_needs_it() {
        let mut s = String::new();
        csv_field(&mut s, r#"{"a":1,"b":"x"}"#);
        assert_eq!(s, r#""{""a"":1,""b"":""x""}""#);
        let mut s = String::new();
        csv_field(&mut s, "plain");
        assert_eq!(s, "plain");
        let mut s = String::new();
        csv_field(&mut s, r#"=HYPERLINK("http://x","y")"#);
        assert_eq!(s, r#""'=HYPERLINK(""http://x"",""y"")""#);
        for f in ["+1", "-1+2", "@SUM(A1)", "\tx"] {
            let mut s = String::new();
            csv_field(&mut s, f);
            assert!(s.starts_with('\''), "{f}: {s}");
        }
    }
}
