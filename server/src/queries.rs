//! Audited encounter queries: full plate (+ state), partial plate with wildcards, polygon and
//! common plate (`POST /v1/queries/{plate,partial,polygon,common}`). Each requires a timeframe,
//! a configured reason code and a case number or justification, optionally on behalf of another
//! user; each is appended to the audit log with its criteria, result count and flags (very large
//! areas, sensitive locations). A query matching `warn_rows` (10,000) or more rows answers the
//! count and a warning; repeated with `confirm: true` it returns the `confirmed_rows` (5,000)
//! most recent.
//!
//! Indexes (migration 0002): partial plates through trigrams of distinct plates (SQLite) or
//! pg_trgm (PostgreSQL); polygons through a grid-cell + time index (SQLite) or a GiST index over
//! position and time (PostgreSQL), then an exact point-in-polygon test here.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

use axum::Json;
use axum::extract::State;
use futures_util::TryStreamExt;
use platewatch_core::hotlist::entry::{MAX_PLATE_LEN, MIN_WILDCARD_LITERALS};
use platewatch_core::hotlist::parse_region;
use platewatch_core::text::CHARSET;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sqlx::Row;

use crate::areas::{self, Area, AreaFlags, AreaLimits, RingsIn, SensitiveLocation};
use crate::audit::AuditEvent;
use crate::auth::{Client, Principal, Role};
use crate::config::ConfigError;
use crate::db::{Db, Repo, on_pool};
use crate::error::{ApiError, ApiJson, redact_quoted};
use crate::routes::valid_username;
use crate::{AppState, now_ms};

/// Query limits and review flags.
#[derive(Debug, Clone)]
pub struct QueryConfig {
    /// A query matching this many rows or more answers a warning and the count.
    pub warn_rows: usize,
    /// Rows returned (the most recent) when such a query is confirmed.
    pub confirmed_rows: usize,
    /// Queries whose polygons cover more than this many km² in all are flagged.
    pub flag_area_km2: f64,
    /// Queries whose polygons touch one of these are flagged.
    pub sensitive_locations: Vec<SensitiveLocation>,
    pub max_polygons: usize,
    /// Vertices in all the polygons of one query.
    pub max_vertices: usize,
}

impl Default for QueryConfig {
    fn default() -> Self {
        Self {
            warn_rows: 10_000,
            confirmed_rows: 5_000,
            flag_area_km2: 100.0,
            sensitive_locations: Vec::new(),
            max_polygons: 10,
            max_vertices: 5_000,
        }
    }
}

impl QueryConfig {
    /// Overrides from `PLATEWATCH_QUERY_FLAG_AREA_KM2` and `PLATEWATCH_SENSITIVE_LOCATIONS` (a
    /// JSON list of `{name, lat, lon, radius_m}` or `{name, polygon: [[lat, lon], …]}`).
    pub fn apply_env(&mut self) -> Result<(), ConfigError> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        if let Some(v) = var("PLATEWATCH_QUERY_FLAG_AREA_KM2") {
            self.flag_area_km2 = v
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|a| a.is_finite() && *a > 0.0)
                .ok_or(ConfigError("PLATEWATCH_QUERY_FLAG_AREA_KM2"))?;
        }
        if let Some(v) = var("PLATEWATCH_SENSITIVE_LOCATIONS") {
            self.sensitive_locations = SensitiveLocation::parse_list(&v)
                .map_err(|_| ConfigError("PLATEWATCH_SENSITIVE_LOCATIONS"))?;
        }
        Ok(())
    }

    fn limits(&self) -> AreaLimits {
        AreaLimits {
            max_polygons: self.max_polygons,
            max_vertices: self.max_vertices,
        }
    }
}

/// The four kinds of query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Plate,
    Partial,
    Polygon,
    Common,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Plate => "plate",
            Kind::Partial => "partial",
            Kind::Polygon => "polygon",
            Kind::Common => "common",
        }
    }

    fn action(self) -> &'static str {
        match self {
            Kind::Plate => "query.plate",
            Kind::Partial => "query.partial",
            Kind::Polygon => "query.polygon",
            Kind::Common => "query.common",
        }
    }

    /// Partial plate, polygon and common plate need the `enhanced_queries` permission.
    pub fn enhanced(self) -> bool {
        self != Kind::Plate
    }

    fn fields(self) -> &'static [&'static str] {
        match self {
            Kind::Plate => &["plate", "state"],
            Kind::Partial => &["pattern", "state"],
            Kind::Polygon => &["polygons"],
            Kind::Common => &["polygons", "min_areas"],
        }
    }
}

/// Fields every query carries.
const COMMON_FIELDS: [&str; 7] = [
    "from_ms",
    "to_ms",
    "reason_code",
    "case_number",
    "justification",
    "on_behalf_of",
    "confirm",
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CommonIn {
    from_ms: i64,
    to_ms: i64,
    reason_code: String,
    #[serde(default)]
    case_number: Option<String>,
    #[serde(default)]
    justification: Option<String>,
    #[serde(default)]
    on_behalf_of: Option<String>,
    #[serde(default)]
    confirm: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlateIn {
    plate: String,
    #[serde(default)]
    state: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PartialIn {
    pattern: String,
    #[serde(default)]
    state: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolygonIn {
    polygons: Vec<RingsIn>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CommonPlateIn {
    polygons: Vec<RingsIn>,
    #[serde(default)]
    min_areas: Option<usize>,
}

/// The validated common part of a query.
#[derive(Debug, Clone)]
pub struct Basis {
    pub from_ms: i64,
    pub to_ms: i64,
    pub reason_code: String,
    pub case_number: Option<String>,
    pub justification: Option<String>,
    pub on_behalf_of: Option<(i64, String)>,
    pub confirm: bool,
}

/// What to look for, validated.
#[derive(Debug, Clone)]
pub enum Criteria {
    Plate {
        plate: String,
        state: Option<&'static str>,
    },
    /// `pattern`: A-Z 0-9 with `*` (any run, collapsed) and `?` (one character).
    Partial {
        pattern: String,
        state: Option<&'static str>,
    },
    Polygon {
        areas: Vec<Area>,
        polygons: Vec<RingsIn>,
    },
    Common {
        areas: Vec<Area>,
        polygons: Vec<RingsIn>,
        min_areas: usize,
    },
}

/// One encounter in a query's answer. Images are not included.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct EncounterHit {
    pub id: String,
    pub plate: String,
    pub state: Option<String>,
    pub confidence: f64,
    pub lat: f64,
    pub lon: f64,
    pub captured_at_ms: i64,
    pub device_id: i64,
    pub camera_id: String,
    pub user: String,
    pub on_behalf_of: Option<String>,
    pub reason_code: String,
    pub case_number: Option<String>,
    pub session_id: String,
    pub match_tags: Vec<String>,
    pub alert_decision: Option<String>,
    pub alert_reason: Option<String>,
    /// Common-plate queries: the positions of the polygons this encounter lies in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub areas: Option<Vec<usize>>,
}

impl std::fmt::Debug for EncounterHit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncounterHit")
            .field("id", &self.id)
            .field("plate", &"<redacted>")
            .field("captured_at_ms", &self.captured_at_ms)
            .finish_non_exhaustive()
    }
}

/// A query's answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct QueryResponse {
    /// The audit row recording this query.
    pub audit_seq: i64,
    pub kind: String,
    /// Rows matching the query.
    pub count: u64,
    /// Rows in `rows`.
    pub returned: usize,
    /// The count reached `warn_rows` and `confirm` was not given: no rows.
    pub confirm_required: bool,
    /// The rows are the most recent `confirmed_rows` of `count`.
    pub truncated: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
    /// Polygon and common-plate queries: why the query is flagged for review, if it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flags: Option<AreaFlags>,
    /// Most recent first.
    pub rows: Vec<EncounterHit>,
}

// ---------------------------------------------------------------------------------------------
// Validation

fn bad(reason: impl Into<String>) -> ApiError {
    ApiError::BadRequest(reason.into())
}

fn optional_text(field: &str, s: Option<&str>, max: usize) -> Result<Option<String>, ApiError> {
    match s.map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) if v.chars().count() <= max && !v.chars().any(char::is_control) => {
            Ok(Some(v.to_string()))
        }
        Some(_) => Err(bad(format!(
            "{field} must be 1..={max} characters without control characters"
        ))),
    }
}

/// Upper-cased plate of 1..=15 characters of A-Z 0-9.
pub fn normalize_plate(s: &str) -> Result<String, ApiError> {
    let plate = s.trim().to_ascii_uppercase();
    if plate.is_empty()
        || plate.len() > MAX_PLATE_LEN
        || !plate.bytes().all(|b| CHARSET.contains(&b))
    {
        return Err(bad(format!(
            "plate must be 1..={MAX_PLATE_LEN} characters of A-Z and 0-9"
        )));
    }
    Ok(plate)
}

/// Upper-cased pattern of A-Z 0-9, `*` (any run of characters, repeats collapsed) and `?` (one
/// character), with at least 3 known characters and at most 15 characters besides `*`.
pub fn normalize_pattern(s: &str) -> Result<String, ApiError> {
    let mut out = String::with_capacity(s.len());
    for c in s.trim().chars() {
        let c = c.to_ascii_uppercase();
        let ok = c == '*' || c == '?' || (c.is_ascii() && CHARSET.contains(&(c as u8)));
        if !ok {
            return Err(bad(
                "pattern must hold only A-Z, 0-9, `*` (any characters) and `?` (one character)",
            ));
        }
        if !(c == '*' && out.ends_with('*')) {
            out.push(c);
        }
    }
    let known = out.chars().filter(|c| *c != '*' && *c != '?').count();
    if known < MIN_WILDCARD_LITERALS {
        return Err(bad(format!(
            "pattern must keep at least {MIN_WILDCARD_LITERALS} known characters"
        )));
    }
    if out.chars().filter(|c| *c != '*').count() > MAX_PLATE_LEN {
        return Err(bad(format!(
            "pattern is longer than a plate ({MAX_PLATE_LEN} characters)"
        )));
    }
    Ok(out)
}

/// The trigrams (as indexed in SQLite's `plate_grams`: plate padded `^^…$$`, grams with at
/// least two plate characters) that every plate matching `pattern` contains, of the most
/// selective kind present, at most three; empty when the pattern gives none.
pub fn pattern_grams(pattern: &str) -> Vec<String> {
    let mut padded = String::new();
    if !pattern.starts_with('*') {
        padded.push_str("^^");
    }
    padded.push_str(pattern);
    if !pattern.ends_with('*') {
        padded.push_str("$$");
    }
    let mut grams: Vec<(usize, String)> = Vec::new();
    for seg in padded.split(['*', '?']) {
        let b = seg.as_bytes();
        for w in b.windows(3) {
            let known = w.iter().filter(|c| **c != b'^' && **c != b'$').count();
            let g = String::from_utf8_lossy(w).into_owned();
            if !grams.iter().any(|(_, x)| *x == g) {
                grams.push((known, g));
            }
        }
    }
    // Grams with a single plate character are not indexed.
    let best = grams.iter().map(|(k, _)| *k).max().unwrap_or(0);
    if best < 2 {
        return Vec::new();
    }
    let chosen: Vec<String> = grams
        .into_iter()
        .filter(|(k, _)| *k == best)
        .map(|(_, g)| g)
        .collect();
    // Spread over the pattern: first, last and middle.
    match chosen.len() {
        0..=3 => chosen,
        n => vec![
            chosen[0].clone(),
            chosen[n - 1].clone(),
            chosen[n / 2].clone(),
        ],
    }
}

fn state_field(s: Option<&str>) -> Result<Option<&'static str>, ApiError> {
    match s.map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => parse_region(v)
            .map(Some)
            .map_err(|e| bad(format!("state: {e}"))),
    }
}

fn decode<T: DeserializeOwned>(what: &str, map: Map<String, Value>) -> Result<T, ApiError> {
    serde_json::from_value(Value::Object(map))
        .map_err(|e| bad(format!("invalid {what}: {}", redact_quoted(&e.to_string()))))
}

/// Splits a request body into its common and its kind-specific fields and validates both.
async fn parse_request(
    state: &AppState,
    kind: Kind,
    body: Value,
) -> Result<(Basis, Criteria), ApiError> {
    let Value::Object(obj) = body else {
        return Err(bad("the query must be a JSON object"));
    };
    let mut common = Map::new();
    let mut specific = Map::new();
    for (k, v) in obj {
        if COMMON_FIELDS.contains(&k.as_str()) {
            common.insert(k, v);
        } else if kind.fields().contains(&k.as_str()) {
            specific.insert(k, v);
        } else {
            // The name is not echoed: it could be anything, a plate included.
            return Err(bad(format!(
                "unknown field (a {} query takes {}, {}; make, model and colour are not \
                 recorded on encounters)",
                kind.as_str(),
                COMMON_FIELDS.join(", "),
                kind.fields().join(", ")
            )));
        }
    }
    let has = |k: &str| common.get(k).is_some_and(|v| !v.is_null());
    if !has("from_ms") || !has("to_ms") {
        return Err(bad(
            "a timeframe is required: from_ms and to_ms (Unix milliseconds)",
        ));
    }
    if !has("reason_code") {
        return Err(bad("a reason_code is required"));
    }
    let c: CommonIn = decode("query", common)?;
    if c.from_ms < 0 || c.from_ms > c.to_ms {
        return Err(bad("the timeframe needs 0 <= from_ms <= to_ms"));
    }
    let reason_code = c.reason_code.trim();
    if !state.config.reason_codes.iter().any(|r| r == reason_code) {
        return Err(bad("reason_code is not one of the configured reason codes"));
    }
    let case_number = optional_text("case_number", c.case_number.as_deref(), 64)?;
    let justification = optional_text("justification", c.justification.as_deref(), 2000)?;
    if case_number.is_none() && justification.is_none() {
        return Err(bad("a case_number or a justification is required"));
    }
    let on_behalf_of = match c.on_behalf_of.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(u) if valid_username(u) => {
            let id = state
                .repo
                .user_id_by_name(u)
                .await?
                .ok_or_else(|| bad("on_behalf_of names no known user"))?;
            Some((id, u.to_string()))
        }
        Some(_) => return Err(bad("on_behalf_of is not a valid username")),
    };
    let basis = Basis {
        from_ms: c.from_ms,
        to_ms: c.to_ms,
        reason_code: reason_code.to_string(),
        case_number,
        justification,
        on_behalf_of,
        confirm: c.confirm,
    };
    let limits = state.config.queries.limits();
    let criteria = match kind {
        Kind::Plate => {
            let p: PlateIn = decode("plate query", specific)?;
            Criteria::Plate {
                plate: normalize_plate(&p.plate)?,
                state: state_field(p.state.as_deref())?,
            }
        }
        Kind::Partial => {
            let p: PartialIn = decode("partial plate query", specific)?;
            Criteria::Partial {
                pattern: normalize_pattern(&p.pattern)?,
                state: state_field(p.state.as_deref())?,
            }
        }
        Kind::Polygon => {
            let p: PolygonIn = decode("polygon query", specific)?;
            let areas = areas::parse_polygons("polygons", &p.polygons, 1, limits).map_err(bad)?;
            Criteria::Polygon {
                areas,
                polygons: p.polygons,
            }
        }
        Kind::Common => {
            let p: CommonPlateIn = decode("common plate query", specific)?;
            let areas = areas::parse_polygons("polygons", &p.polygons, 2, limits).map_err(bad)?;
            let min_areas = p.min_areas.unwrap_or(2);
            if min_areas < 2 || min_areas > areas.len() {
                return Err(bad(
                    "min_areas must be between 2 and the number of polygons",
                ));
            }
            Criteria::Common {
                areas,
                polygons: p.polygons,
                min_areas,
            }
        }
    };
    Ok((basis, criteria))
}

// ---------------------------------------------------------------------------------------------
// Storage

/// A value bound to a query.
#[derive(Debug, Clone)]
enum Arg {
    Text(String),
    Int(i64),
    Real(f64),
}

/// Binds `args` to a search statement. The statement is not kept prepared: PostgreSQL would
/// switch a prepared statement to a generic plan after five runs, and a generic plan cannot see
/// how selective the pattern or area is. It then ANDs the whole timeframe's time-index bitmap
/// into every partial-plate search (108 ms instead of 1.5 ms at 1M encounters, growing with the
/// table). Unnamed statements are planned with the actual values on every run.
macro_rules! bind_all {
    ($q:expr, $args:expr) => {{
        let mut q = $q.persistent(false);
        for a in $args {
            q = match a {
                Arg::Text(s) => q.bind(s.clone()),
                Arg::Int(i) => q.bind(*i),
                Arg::Real(r) => q.bind(*r),
            };
        }
        q
    }};
}

const HIT_COLUMNS: &str = "e.id, e.plate, e.state, e.confidence, e.lat, e.lon, e.captured_at_ms, \
     e.device_id, e.camera_id, u.username AS username, o.username AS on_behalf_of, e.reason_code, \
     e.case_number, e.session_id, e.match_tags, e.alert_decision, e.alert_reason";
const HIT_JOINS: &str =
    "JOIN users u ON u.id = e.user_id LEFT JOIN users o ON o.id = e.on_behalf_of_user_id";

fn hit_from_row<R: Row>(r: &R) -> Result<EncounterHit, sqlx::Error>
where
    for<'c> &'c str: sqlx::ColumnIndex<R>,
    i64: for<'x> sqlx::Decode<'x, R::Database> + sqlx::Type<R::Database>,
    f64: for<'x> sqlx::Decode<'x, R::Database> + sqlx::Type<R::Database>,
    String: for<'x> sqlx::Decode<'x, R::Database> + sqlx::Type<R::Database>,
{
    let tags: String = r.try_get("match_tags")?;
    Ok(EncounterHit {
        id: r.try_get("id")?,
        plate: r.try_get("plate")?,
        state: r.try_get("state")?,
        confidence: r.try_get("confidence")?,
        lat: r.try_get("lat")?,
        lon: r.try_get("lon")?,
        captured_at_ms: r.try_get("captured_at_ms")?,
        device_id: r.try_get("device_id")?,
        camera_id: r.try_get("camera_id")?,
        user: r.try_get("username")?,
        on_behalf_of: r.try_get("on_behalf_of")?,
        reason_code: r.try_get("reason_code")?,
        case_number: r.try_get("case_number")?,
        session_id: r.try_get("session_id")?,
        match_tags: serde_json::from_str(&tags).unwrap_or_default(),
        alert_decision: r.try_get("alert_decision")?,
        alert_reason: r.try_get("alert_reason")?,
        areas: None,
    })
}

/// A WHERE clause over `encounters e` and its arguments.
fn plate_filter(db: &Db, criteria: &Criteria, from_ms: i64, to_ms: i64) -> (String, Vec<Arg>) {
    let mut args = vec![Arg::Int(from_ms), Arg::Int(to_ms)];
    let mut sql = String::from("e.captured_at_ms BETWEEN $1 AND $2");
    let next = |args: &mut Vec<Arg>, a: Arg| {
        args.push(a);
        format!("${}", args.len())
    };
    let state = match criteria {
        Criteria::Plate { plate, state } => {
            let p = next(&mut args, Arg::Text(plate.clone()));
            sql.push_str(&format!(" AND e.plate = {p}"));
            *state
        }
        Criteria::Partial { pattern, state } => {
            match db {
                Db::Sqlite(_) => {
                    let grams = pattern_grams(pattern);
                    let glob = next(&mut args, Arg::Text(pattern.clone()));
                    if grams.is_empty() {
                        // No gram to look up: scan the distinct plates.
                        let g2 = next(&mut args, Arg::Text(pattern.clone()));
                        sql.push_str(&format!(
                            " AND e.plate IN (SELECT plate FROM plates WHERE plate GLOB {g2})"
                        ));
                    } else {
                        let sets: Vec<String> = grams
                            .into_iter()
                            .map(|g| {
                                let g = next(&mut args, Arg::Text(g));
                                format!("SELECT plate FROM plate_grams WHERE gram = {g}")
                            })
                            .collect();
                        sql.push_str(&format!(" AND e.plate IN ({})", sets.join(" INTERSECT ")));
                    }
                    sql.push_str(&format!(" AND e.plate GLOB {glob}"));
                }
                Db::Postgres(_) => {
                    let like = pattern.replace('*', "%").replace('?', "_");
                    let like = next(&mut args, Arg::Text(like));
                    // Through `encounters_plate_trgm` (pg_trgm).
                    sql.push_str(&format!(" AND e.plate LIKE {like}"));
                }
            }
            *state
        }
        Criteria::Polygon { .. } | Criteria::Common { .. } => None,
    };
    if let Some(s) = state {
        let p = next(&mut args, Arg::Text(s.to_string()));
        sql.push_str(&format!(" AND e.state = {p}"));
    }
    (sql, args)
}

/// SQLite's grid cell of an encounter (0.01 degree), exactly as indexed by
/// `encounters_cell_time` (migration 0002).
pub const SQLITE_CELL: &str = "(CAST((e.lat + 90.0) * 100.0 AS INTEGER) * 36001 + \
     CAST((e.lon + 180.0) * 100.0 AS INTEGER))";
/// Bounding boxes over more cells than this are read through the time index instead.
pub const MAX_CELLS: usize = 4096;

/// The cell ids under a bounding box, computed like [`SQLITE_CELL`]; `None` when too many.
pub fn cells(b: &crate::areas::BBox) -> Option<Vec<i64>> {
    let row = |lat: f64| ((lat + 90.0) * 100.0) as i64;
    let col = |lon: f64| ((lon + 180.0) * 100.0) as i64;
    let (r0, r1, c0, c1) = (
        row(b.min_lat),
        row(b.max_lat),
        col(b.min_lon),
        col(b.max_lon),
    );
    let n = usize::try_from((r1 - r0 + 1) * (c1 - c0 + 1)).ok()?;
    if n > MAX_CELLS {
        return None;
    }
    Some(
        (r0..=r1)
            .flat_map(|r| (c0..=c1).map(move |c| r * 36001 + c))
            .collect(),
    )
}

/// The candidate query for one area's bounding box and the timeframe (index prefilter).
fn box_query(db: &Db, area: &Area, from_ms: i64, to_ms: i64) -> (String, Vec<Arg>) {
    let b = area.bbox;
    match db {
        Db::Sqlite(_) => {
            // Cell ids are integers computed here: safe to inline.
            let by_cell = match cells(&b) {
                Some(c) => format!(
                    "{SQLITE_CELL} IN ({}) AND ",
                    c.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
                ),
                None => String::new(),
            };
            (
                format!(
                    "SELECT e.id, e.plate, e.lat, e.lon, e.captured_at_ms FROM encounters e \
                     WHERE {by_cell}e.captured_at_ms BETWEEN $1 AND $2 \
                     AND e.lat BETWEEN $3 AND $4 AND e.lon BETWEEN $5 AND $6"
                ),
                vec![
                    Arg::Int(from_ms),
                    Arg::Int(to_ms),
                    Arg::Real(b.min_lat),
                    Arg::Real(b.max_lat),
                    Arg::Real(b.min_lon),
                    Arg::Real(b.max_lon),
                ],
            )
        }
        Db::Postgres(_) => (
            "SELECT e.id, e.plate, e.lat, e.lon, e.captured_at_ms FROM encounters e \
             WHERE point(e.lon, e.lat) <@ box(point($1, $2), point($3, $4)) \
             AND e.captured_at_ms BETWEEN $5 AND $6"
                .to_string(),
            vec![
                Arg::Real(b.min_lon),
                Arg::Real(b.min_lat),
                Arg::Real(b.max_lon),
                Arg::Real(b.max_lat),
                Arg::Int(from_ms),
                Arg::Int(to_ms),
            ],
        ),
    }
}

/// An encounter inside a query's areas, as kept while scanning candidates.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ranked {
    captured_at_ms: i64,
    id: String,
    /// Bit i: inside polygon i.
    mask: u32,
}

/// "Better" = more recent, then smaller id: a max-heap of `Reverse`d entries keeps the best.
impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> Ordering {
        self.captured_at_ms
            .cmp(&other.captured_at_ms)
            .then_with(|| other.id.cmp(&self.id))
    }
}

impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Counts matches and keeps the `keep` most recent.
#[derive(Debug)]
struct TopK {
    keep: usize,
    count: u64,
    heap: BinaryHeap<std::cmp::Reverse<Ranked>>,
}

impl TopK {
    fn new(keep: usize) -> Self {
        Self {
            keep,
            count: 0,
            heap: BinaryHeap::new(),
        }
    }

    fn push(&mut self, r: Ranked) {
        self.count += 1;
        if self.heap.len() < self.keep {
            self.heap.push(std::cmp::Reverse(r));
        } else if self.heap.peek().is_some_and(|worst| r > worst.0) {
            self.heap.pop();
            self.heap.push(std::cmp::Reverse(r));
        }
    }

    /// Most recent first.
    fn into_sorted(self) -> Vec<Ranked> {
        let mut v: Vec<Ranked> = self.heap.into_iter().map(|r| r.0).collect();
        v.sort_by(|a, b| b.cmp(a));
        v
    }
}

/// A query's matches: the total and the rows to return (empty when confirmation is needed).
#[derive(Debug)]
pub struct Found {
    pub count: u64,
    pub rows: Vec<EncounterHit>,
    pub confirm_required: bool,
    pub truncated: bool,
}

/// Rows fetched by id per statement.
const ID_CHUNK: usize = 500;

impl Repo {
    /// Runs a validated query: counts the matches and returns the rows the 10k/5k rule allows.
    pub async fn find_encounters(
        &self,
        criteria: &Criteria,
        basis: &Basis,
        config: &QueryConfig,
    ) -> Result<Found, sqlx::Error> {
        match criteria {
            Criteria::Plate { .. } | Criteria::Partial { .. } => {
                self.find_by_plate(criteria, basis, config).await
            }
            Criteria::Polygon { areas, .. } => self.find_in_areas(areas, None, basis, config).await,
            Criteria::Common {
                areas, min_areas, ..
            } => {
                self.find_in_areas(areas, Some(*min_areas), basis, config)
                    .await
            }
        }
    }

    async fn find_by_plate(
        &self,
        criteria: &Criteria,
        basis: &Basis,
        config: &QueryConfig,
    ) -> Result<Found, sqlx::Error> {
        let (filter, args) = plate_filter(self.db(), criteria, basis.from_ms, basis.to_ms);
        let count_sql = format!("SELECT COUNT(*) FROM encounters e WHERE {filter}");
        let count: i64 = on_pool!(self.db(), p => bind_all!(sqlx::query_scalar(&count_sql), &args).fetch_one(p).await?);
        let count = u64::try_from(count).unwrap_or(0);
        let warn = config.warn_rows as u64;
        if count >= warn && !basis.confirm {
            return Ok(Found {
                count,
                rows: Vec::new(),
                confirm_required: true,
                truncated: false,
            });
        }
        let limit = if count >= warn {
            config.confirmed_rows
        } else {
            config.warn_rows.saturating_sub(1)
        };
        let sql = format!(
            "SELECT {HIT_COLUMNS} FROM encounters e {HIT_JOINS} WHERE {filter} \
             ORDER BY e.captured_at_ms DESC, e.id LIMIT {limit}"
        );
        let rows = on_pool!(self.db(), p => {
            let rows = bind_all!(sqlx::query(&sql), &args).fetch_all(p).await?;
            rows.iter().map(hit_from_row).collect::<Result<Vec<_>, _>>()?
        });
        Ok(Found {
            count,
            truncated: count >= warn,
            rows,
            confirm_required: false,
        })
    }

    /// Streams the index candidates of one area; `each(id, plate, lat, lon, t)`.
    async fn scan_area(
        &self,
        area: &Area,
        basis: &Basis,
        mut each: impl FnMut(String, String, f64, f64, i64),
    ) -> Result<(), sqlx::Error> {
        let (sql, args) = box_query(self.db(), area, basis.from_ms, basis.to_ms);
        on_pool!(self.db(), p => {
            let mut rows = bind_all!(sqlx::query(&sql), &args).fetch(p);
            while let Some(r) = rows.try_next().await? {
                each(
                    r.try_get("id")?,
                    r.try_get("plate")?,
                    r.try_get("lat")?,
                    r.try_get("lon")?,
                    r.try_get("captured_at_ms")?,
                );
            }
        });
        Ok(())
    }

    /// Polygon (`min_areas` None: inside any area) and common plate (`Some(k)`: encounters in
    /// the areas of plates seen in at least `k` of them) queries.
    async fn find_in_areas(
        &self,
        areas: &[Area],
        min_areas: Option<usize>,
        basis: &Basis,
        config: &QueryConfig,
    ) -> Result<Found, sqlx::Error> {
        let mask_of = |lat: f64, lon: f64| -> u32 {
            areas
                .iter()
                .enumerate()
                .filter(|(_, a)| a.contains(lat, lon))
                .fold(0u32, |m, (i, _)| m | (1 << i))
        };
        // Common plate, first pass: which areas each plate was seen in.
        let mut qualifying: Option<HashMap<String, u32>> = None;
        if let Some(k) = min_areas {
            let mut seen: HashMap<String, u32> = HashMap::new();
            for (i, area) in areas.iter().enumerate() {
                self.scan_area(area, basis, |_, plate, lat, lon, _| {
                    if area.contains(lat, lon) {
                        *seen.entry(plate).or_insert(0) |= 1 << i;
                    }
                })
                .await?;
            }
            seen.retain(|_, m| m.count_ones() as usize >= k);
            qualifying = Some(seen);
        }
        let keep = config
            .warn_rows
            .saturating_sub(1)
            .max(config.confirmed_rows);
        let mut top = TopK::new(keep);
        for (i, area) in areas.iter().enumerate() {
            let earlier = (1u32 << i) - 1;
            self.scan_area(area, basis, |id, plate, lat, lon, t| {
                if !area.contains(lat, lon) {
                    return;
                }
                let mask = mask_of(lat, lon);
                // Counted once: in the first area that holds it.
                if mask & earlier != 0 {
                    return;
                }
                if let Some(q) = &qualifying {
                    if !q.contains_key(&plate) {
                        return;
                    }
                }
                top.push(Ranked {
                    captured_at_ms: t,
                    id,
                    mask,
                });
            })
            .await?;
        }
        let count = top.count;
        let warn = config.warn_rows as u64;
        if count >= warn && !basis.confirm {
            return Ok(Found {
                count,
                rows: Vec::new(),
                confirm_required: true,
                truncated: false,
            });
        }
        let mut ranked = top.into_sorted();
        if count >= warn {
            ranked.truncate(config.confirmed_rows);
        }
        let mut by_id: HashMap<String, EncounterHit> = HashMap::with_capacity(ranked.len());
        for chunk in ranked.chunks(ID_CHUNK) {
            let marks: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT {HIT_COLUMNS} FROM encounters e {HIT_JOINS} WHERE e.id IN ({})",
                marks.join(", ")
            );
            let args: Vec<Arg> = chunk.iter().map(|r| Arg::Text(r.id.clone())).collect();
            on_pool!(self.db(), p => {
                for row in bind_all!(sqlx::query(&sql), &args).fetch_all(p).await? {
                    let hit = hit_from_row(&row)?;
                    by_id.insert(hit.id.clone(), hit);
                }
            });
        }
        let rows: Vec<EncounterHit> = ranked
            .into_iter()
            .filter_map(|r| {
                let mut hit = by_id.remove(&r.id)?;
                if min_areas.is_some() {
                    hit.areas = Some(
                        (0..areas.len())
                            .filter(|i| r.mask & (1 << i) != 0)
                            .collect(),
                    );
                }
                Some(hit)
            })
            .collect();
        Ok(Found {
            count,
            truncated: count >= warn,
            rows,
            confirm_required: false,
        })
    }

    /// The query plan of a query's main statement (`EXPLAIN QUERY PLAN` / `EXPLAIN`), one line
    /// per row: how tests and the bench check that the indexes are used. `no_seqscan` plans with
    /// sequential scans disabled on PostgreSQL (its plans for tiny test tables prefer them).
    pub async fn explain(
        &self,
        criteria: &Criteria,
        from_ms: i64,
        to_ms: i64,
        no_seqscan: bool,
    ) -> Result<String, sqlx::Error> {
        let (sql, args) = match criteria {
            Criteria::Plate { .. } | Criteria::Partial { .. } => {
                let (filter, args) = plate_filter(self.db(), criteria, from_ms, to_ms);
                (
                    format!("SELECT COUNT(*) FROM encounters e WHERE {filter}"),
                    args,
                )
            }
            Criteria::Polygon { areas, .. } | Criteria::Common { areas, .. } => {
                let Some(area) = areas.first() else {
                    return Ok(String::new());
                };
                box_query(self.db(), area, from_ms, to_ms)
            }
        };
        let sqlite_sql = format!("EXPLAIN QUERY PLAN {sql}");
        let pg_sql = format!("EXPLAIN {sql}");
        let lines: Vec<String> = match self.db() {
            Db::Sqlite(p) => {
                let rows = bind_all!(sqlx::query(&sqlite_sql), &args)
                    .fetch_all(p)
                    .await?;
                rows.iter()
                    .map(|r| r.try_get::<String, _>("detail"))
                    .collect::<Result<_, _>>()?
            }
            Db::Postgres(p) => {
                let mut tx = p.begin().await?;
                if no_seqscan {
                    sqlx::query("SET LOCAL enable_seqscan = off")
                        .execute(&mut *tx)
                        .await?;
                }
                let rows = bind_all!(sqlx::query(&pg_sql), &args)
                    .fetch_all(&mut *tx)
                    .await?;
                tx.rollback().await?;
                rows.iter()
                    .map(|r| r.try_get::<String, _>(0))
                    .collect::<Result<_, _>>()?
            }
        };
        Ok(lines.join("\n"))
    }
}

// ---------------------------------------------------------------------------------------------
// Handlers

/// Who may run `kind`: officers and analysts from a login session; partial plate, polygon and
/// common plate also need the `enhanced_queries` permission. Admins and auditors may not query
/// encounters (they manage users and review the audit log); device tokens may not either:
/// queries are a person's action, made from a login session.
pub fn authorize(principal: &Principal, kind: Kind) -> Result<(), String> {
    if principal.device_id.is_some() {
        return Err("queries are made from a login session, not with a device token".into());
    }
    if !matches!(principal.role, Role::Officer | Role::Analyst) {
        return Err(format!(
            "role {} may not query encounters",
            principal.role.as_str()
        ));
    }
    if kind.enhanced() && !principal.enhanced_queries {
        return Err(format!(
            "a {} query needs the enhanced_queries permission",
            kind.as_str()
        ));
    }
    Ok(())
}

fn criteria_json(
    kind: Kind,
    basis: &Basis,
    criteria: &Criteria,
    flags: Option<&AreaFlags>,
) -> Value {
    let mut c = json!({
        "kind": kind.as_str(),
        "from_ms": basis.from_ms,
        "to_ms": basis.to_ms,
        "confirm": basis.confirm,
        "case_number": basis.case_number,
    });
    let extra = match criteria {
        Criteria::Plate { plate, state } => json!({ "plate": plate, "state": state }),
        Criteria::Partial { pattern, state } => json!({ "pattern": pattern, "state": state }),
        Criteria::Polygon { polygons, .. } => json!({ "polygons": polygons }),
        Criteria::Common {
            polygons,
            min_areas,
            ..
        } => json!({ "polygons": polygons, "min_areas": min_areas }),
    };
    if let (Value::Object(c), Value::Object(extra)) = (&mut c, extra) {
        c.extend(extra);
        if let Some(f) = flags {
            c.insert("flagged".into(), Value::Bool(f.flagged()));
            c.insert("flags".into(), json!(f));
        }
    }
    c
}

async fn run(
    state: AppState,
    principal: Principal,
    client: Option<String>,
    kind: Kind,
    body: Value,
) -> Result<Json<QueryResponse>, ApiError> {
    if let Err(reason) = authorize(&principal, kind) {
        state
            .repo
            .append_audit(
                AuditEvent {
                    user_id: Some(principal.user_id),
                    username: Some(principal.username.clone()),
                    action: kind.action(),
                    outcome: "denied",
                    reason: Some(reason.clone()),
                    criteria: json!({ "kind": kind.as_str(), "device_id": principal.device_id }),
                    client,
                    ..AuditEvent::default()
                },
                now_ms(),
            )
            .await?;
        return Err(ApiError::Forbidden(reason));
    }
    let (basis, criteria) = parse_request(&state, kind, body).await?;
    let config = &state.config.queries;
    let flags = match &criteria {
        Criteria::Polygon { areas, .. } | Criteria::Common { areas, .. } => Some(areas::flags(
            areas,
            config.flag_area_km2,
            &config.sensitive_locations,
        )),
        _ => None,
    };
    let found = state
        .repo
        .find_encounters(&criteria, &basis, config)
        .await?;
    let mut criteria_value = criteria_json(kind, &basis, &criteria, flags.as_ref());
    if let Value::Object(m) = &mut criteria_value {
        m.insert("returned".into(), json!(found.rows.len()));
    }
    let audit_seq = state
        .repo
        .append_audit(
            AuditEvent {
                user_id: Some(principal.user_id),
                username: Some(principal.username.clone()),
                on_behalf_of: basis.on_behalf_of.as_ref().map(|(_, n)| n.clone()),
                action: kind.action(),
                outcome: if found.confirm_required {
                    "warned"
                } else {
                    "ok"
                },
                reason: Some(basis.reason_code.clone()),
                justification: basis.justification.clone(),
                criteria: criteria_value,
                result_count: i64::try_from(found.count).ok(),
                client,
            },
            now_ms(),
        )
        .await?;
    if flags.as_ref().is_some_and(AreaFlags::flagged) {
        tracing::warn!(audit_seq, kind = kind.as_str(), "query flagged for review");
    }
    let warning = if found.confirm_required {
        Some(format!(
            "{} encounters match (at least {}): repeat with confirm: true to get the {} most \
             recent, or narrow the query",
            found.count, config.warn_rows, config.confirmed_rows
        ))
    } else if found.truncated {
        Some(format!(
            "{} encounters match: these are the {} most recent",
            found.count, config.confirmed_rows
        ))
    } else {
        None
    };
    Ok(Json(QueryResponse {
        audit_seq,
        kind: kind.as_str().to_string(),
        count: found.count,
        returned: found.rows.len(),
        confirm_required: found.confirm_required,
        truncated: found.truncated,
        warning,
        flags,
        rows: found.rows,
    }))
}

/// `POST /v1/queries/plate`: a full plate (+ optional state).
pub async fn plate(
    State(state): State<AppState>,
    principal: Principal,
    Client(client): Client,
    ApiJson(body): ApiJson<Value>,
) -> Result<Json<QueryResponse>, ApiError> {
    run(state, principal, client, Kind::Plate, body).await
}

/// `POST /v1/queries/partial`: a plate pattern with `*` and `?` (+ optional state).
pub async fn partial(
    State(state): State<AppState>,
    principal: Principal,
    Client(client): Client,
    ApiJson(body): ApiJson<Value>,
) -> Result<Json<QueryResponse>, ApiError> {
    run(state, principal, client, Kind::Partial, body).await
}

/// `POST /v1/queries/polygon`: encounters inside any of the polygons.
pub async fn polygon(
    State(state): State<AppState>,
    principal: Principal,
    Client(client): Client,
    ApiJson(body): ApiJson<Value>,
) -> Result<Json<QueryResponse>, ApiError> {
    run(state, principal, client, Kind::Polygon, body).await
}

/// `POST /v1/queries/common`: encounters of plates seen in at least `min_areas` of the polygons.
pub async fn common(
    State(state): State<AppState>,
    principal: Principal,
    Client(client): Client,
    ApiJson(body): ApiJson<Value>,
) -> Result<Json<QueryResponse>, ApiError> {
    run(state, principal, client, Kind::Common, body).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_are_normalized_and_checked() {
        assert_eq!(normalize_pattern(" ab**1?3 ").expect("ok"), "AB*1?3");
        assert!(normalize_pattern("A*B").is_err());
        assert!(normalize_pattern("AB%123").is_err());
        assert!(normalize_pattern("AB[1]23").is_err());
        assert!(normalize_pattern("'; DROP TABLE encounters;--").is_err());
        assert!(normalize_pattern("ABCDEFGHIJKLMNOP*").is_err());
        let e = format!("{:?}", normalize_pattern("7ABC12%").expect_err("bad char"));
        assert!(!e.contains("7ABC12"), "{e}");
    }

    #[test]
    fn grams_prefer_full_trigrams_and_use_anchors() {
        assert_eq!(pattern_grams("AB*123"), vec!["123".to_string()]);
        assert_eq!(pattern_grams("XY*7*9"), vec!["^XY".to_string()]);
        assert_eq!(pattern_grams("*7*9"), Vec::<String>::new());
        assert_eq!(pattern_grams("*79"), vec!["79$".to_string()]);
        assert!(pattern_grams("*A*B*C*").is_empty());
        let g = pattern_grams("7ABC123");
        assert_eq!(g.len(), 3);
        assert!(g.iter().all(|g| !g.contains('^') && !g.contains('$')));
    }

    #[test]
    fn top_k_keeps_the_most_recent() {
        let mut t = TopK::new(3);
        for (i, ts) in [5, 1, 9, 7, 3, 9].into_iter().enumerate() {
            t.push(Ranked {
                captured_at_ms: ts,
                id: format!("id{i}"),
                mask: 1,
            });
        }
        assert_eq!(t.count, 6);
        let v: Vec<(i64, String)> = t
            .into_sorted()
            .into_iter()
            .map(|r| (r.captured_at_ms, r.id))
            .collect();
        assert_eq!(
            v,
            vec![(9, "id2".into()), (9, "id5".into()), (7, "id3".into())]
        );
    }
}
