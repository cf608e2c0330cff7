//! Hot list publishing: admins upload list files (multipart or a raw body) that the `core`
//! importers parse; every change bumps the list's version; devices fetch a snapshot, or a delta
//! since the version they hold, as a payload signed with the server's ed25519 key (the wire
//! types and verification live in `platewatch_core::hotlist::signed`). Changes are audited;
//! plates and notes are never logged.

use std::collections::HashMap;
use std::path::Path as FsPath;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequest, Multipart, Path, Query, Request, State};
use axum::http::header::CONTENT_TYPE;
use ed25519_dalek::{SigningKey, VerifyingKey};
use platewatch_core::hotlist::signed::{self, PublicKeyInfo};
use platewatch_core::hotlist::{
    Category, Entry, EntryKey, Format, HotlistPayload, ImportError, ImportOptions, ListInfo,
    SignedHotlist, Source, Update, import,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::Row;

use crate::audit::AuditEvent;
use crate::auth::{Client, Principal, Role};
use crate::db::{Repo, on_pool};
use crate::error::{ApiError, redact_quoted};
use crate::keyfile;
use crate::{AppState, now_ms};

/// Rows per multi-row upsert (7 parameters each).
const UPSERT_CHUNK: usize = 1000;

/// The server's hot list signing key. `Debug` shows only the key id.
pub struct HotlistSigner {
    key: SigningKey,
}

impl std::fmt::Debug for HotlistSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HotlistSigner")
            .field("key_id", &signed::key_id(&self.key.verifying_key()))
            .finish_non_exhaustive()
    }
}

pub use crate::keyfile::KeyFileError;

impl HotlistSigner {
    /// A fresh random key (not persisted: tests, or until [`HotlistSigner::load_or_create`]).
    pub fn generate() -> Self {
        Self::from_seed(keyfile::random_32())
    }

    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self {
            key: SigningKey::from_bytes(&seed),
        }
    }

    /// Reads the key from `path` (base64 of the 32-byte seed), or creates the file with a new
    /// random key (mode 0600) when it does not exist. Returns the signer and whether it was
    /// created.
    pub fn load_or_create(path: &FsPath) -> Result<(Self, bool), KeyFileError> {
        let (seed, created) = keyfile::load_or_create(path, "hot list key")?;
        Ok((Self::from_seed(seed), created))
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    pub fn public_key_info(&self) -> PublicKeyInfo {
        signed::public_key_info(&self.key.verifying_key())
    }

    pub fn sign(&self, payload: &HotlistPayload) -> SignedHotlist {
        signed::sign(payload, &self.key)
    }
}

/// How an upload changes a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PublishMode {
    /// The upload is the whole list: entries not in it are removed.
    Replace,
    /// Entries are added or updated; nothing is removed.
    Merge,
    /// Every entry is removed (the list is withdrawn from devices).
    Retire,
}

/// What a publish did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishOutcome {
    pub list: String,
    pub previous_version: i64,
    /// Equal to `previous_version` when nothing changed.
    pub version: i64,
    pub changed: bool,
    pub added: usize,
    pub updated: usize,
    pub removed: usize,
    /// Live entries in the list after the change.
    pub entries: usize,
}

/// A list as listed for devices and admins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListSummary {
    #[serde(flatten)]
    pub info: ListInfo,
    pub entries: i64,
}

type Key = (String, String, String);

fn key_of(e: &Entry) -> Key {
    (
        e.plate.as_str().to_string(),
        e.state.clone().unwrap_or_default(),
        e.category.as_str().to_string(),
    )
}

/// A change to write: key, body, removed.
type Change = (Key, String, bool);

fn upsert_sql(rows: usize) -> String {
    let values: Vec<String> = (0..rows)
        .map(|i| {
            let b = i * 7;
            format!(
                "(${}, ${}, ${}, ${}, ${}, ${}, ${})",
                b + 1,
                b + 2,
                b + 3,
                b + 4,
                b + 5,
                b + 6,
                b + 7
            )
        })
        .collect();
    format!(
        "INSERT INTO hotlist_entries (list_id, plate, state, category, body, changed_version, \
         removed) VALUES {} ON CONFLICT (list_id, plate, state, category) DO UPDATE SET \
         body = excluded.body, changed_version = excluded.changed_version, \
         removed = excluded.removed",
        values.join(", ")
    )
}

fn list_info_from<R: Row>(r: &R) -> Result<ListInfo, sqlx::Error>
where
    for<'c> &'c str: sqlx::ColumnIndex<R>,
    i64: for<'x> sqlx::Decode<'x, R::Database> + sqlx::Type<R::Database>,
    String: for<'x> sqlx::Decode<'x, R::Database> + sqlx::Type<R::Database>,
{
    let source: String = r.try_get("source")?;
    Ok(ListInfo {
        name: r.try_get("name")?,
        source: Source::parse(&source)
            .map_err(|_| sqlx::Error::Decode("unknown hot list source".into()))?,
        version: r.try_get("version")?,
        published_at: r.try_get::<i64, _>("published_at_ms")?.div_euclid(1000),
        max_age_secs: r.try_get("max_age_secs")?,
    })
}

fn decode_entry(body: &str) -> Result<Entry, sqlx::Error> {
    serde_json::from_str(body).map_err(|_| sqlx::Error::Decode("corrupt hot list entry".into()))
}

const LIST_COLUMNS: &str = "id, name, source, version, max_age_secs, published_at_ms";

impl Repo {
    /// Applies `entries` to list `name` in one transaction. A change (any entry added, updated
    /// or removed, or a new source or maximum age) bumps the version by one; an upload that
    /// changes nothing leaves it. Retiring an unknown list is `Ok(None)`.
    pub async fn publish_hotlist(
        &self,
        name: &str,
        source: Source,
        max_age_secs: i64,
        entries: &[Entry],
        mode: PublishMode,
        now_ms: i64,
    ) -> Result<Option<PublishOutcome>, sqlx::Error> {
        let postgres = self.backend() == "postgres";
        let select = format!(
            "SELECT {LIST_COLUMNS} FROM hotlists WHERE name = $1{}",
            if postgres { " FOR UPDATE" } else { "" }
        );
        const CREATE: &str = "INSERT INTO hotlists (name, source, version, max_age_secs, \
             published_at_ms, created_at_ms) VALUES ($1, $2, 0, $3, $4, $4) \
             ON CONFLICT (name) DO NOTHING";
        const EXISTING: &str =
            "SELECT plate, state, category, body, removed FROM hotlist_entries WHERE list_id = $1";
        const BUMP: &str = "UPDATE hotlists SET version = $1, source = $2, max_age_secs = $3, \
             published_at_ms = $4 WHERE id = $5";
        let mut incoming: Vec<(Key, String)> = Vec::with_capacity(entries.len());
        for e in entries {
            let body = serde_json::to_string(e).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
            incoming.push((key_of(e), body));
        }
        let outcome = crate::db::in_tx!(self.db(), tx => {
            if mode != PublishMode::Retire {
                sqlx::query(CREATE)
                    .bind(name)
                    .bind(source.as_str())
                    .bind(max_age_secs)
                    .bind(now_ms)
                    .execute(&mut *tx)
                    .await?;
            }
            let Some(row) = sqlx::query(&select).bind(name).fetch_optional(&mut *tx).await? else {
                return Ok(None);
            };
            let list_id: i64 = row.try_get("id")?;
            let info = list_info_from(&row)?;
            let mut existing: HashMap<Key, (String, bool)> = HashMap::new();
            for r in sqlx::query(EXISTING).bind(list_id).fetch_all(&mut *tx).await? {
                existing.insert(
                    (r.try_get("plate")?, r.try_get("state")?, r.try_get("category")?),
                    (r.try_get("body")?, r.try_get("removed")?),
                );
            }
            let mut changes: Vec<Change> = Vec::new();
            let (mut added, mut updated, mut removed) = (0, 0, 0);
            let mut live = existing.values().filter(|(_, gone)| !gone).count();
            let mut seen: std::collections::HashSet<&Key> = std::collections::HashSet::new();
            if mode != PublishMode::Retire {
                for (key, body) in &incoming {
                    seen.insert(key);
                    match existing.get(key) {
                        Some((old, false)) if old == body => {}
                        Some((_, false)) => {
                            updated += 1;
                            changes.push((key.clone(), body.clone(), false));
                        }
                        _ => {
                            added += 1;
                            live += 1;
                            changes.push((key.clone(), body.clone(), false));
                        }
                    }
                }
            }
            if mode != PublishMode::Merge {
                for (key, (body, gone)) in &existing {
                    if !gone && !seen.contains(key) {
                        removed += 1;
                        live -= 1;
                        changes.push((key.clone(), body.clone(), true));
                    }
                }
            }
            let meta_changed = mode != PublishMode::Retire
                && (info.source != source || info.max_age_secs != max_age_secs);
            let changed = !changes.is_empty() || meta_changed;
            let version = if changed { info.version + 1 } else { info.version };
            if changed {
                for chunk in changes.chunks(UPSERT_CHUNK) {
                    let sql = upsert_sql(chunk.len());
                    let mut q = sqlx::query(&sql);
                    for ((plate, state, category), body, gone) in chunk {
                        q = q
                            .bind(list_id)
                            .bind(plate)
                            .bind(state)
                            .bind(category)
                            .bind(body)
                            .bind(version)
                            .bind(*gone);
                    }
                    q.execute(&mut *tx).await?;
                }
                let (source, max_age) = if mode == PublishMode::Retire {
                    (info.source, info.max_age_secs)
                } else {
                    (source, max_age_secs)
                };
                sqlx::query(BUMP)
                    .bind(version)
                    .bind(source.as_str())
                    .bind(max_age)
                    .bind(now_ms)
                    .bind(list_id)
                    .execute(&mut *tx)
                    .await?;
            }
            PublishOutcome {
                list: name.to_string(),
                previous_version: info.version,
                version,
                changed,
                added,
                updated,
                removed,
                entries: live,
            }
        });
        Ok(Some(outcome))
    }

    /// Every published list with its live entry count, by name.
    pub async fn hotlists(&self) -> Result<Vec<ListSummary>, sqlx::Error> {
        const SQL: &str = "SELECT l.id, l.name, l.source, l.version, l.max_age_secs, \
             l.published_at_ms, (SELECT COUNT(*) FROM hotlist_entries e WHERE e.list_id = l.id \
             AND e.removed = FALSE) AS live FROM hotlists l ORDER BY l.name";
        on_pool!(self.db(), p => {
            let rows = sqlx::query(SQL).fetch_all(p).await?;
            rows.iter()
                .map(|r| Ok(ListSummary { info: list_info_from(r)?, entries: r.try_get("live")? }))
                .collect()
        })
    }

    /// The list's current version and either every live entry (`since = None`) or the changes
    /// after version `since`: (info, added or updated entries, removed keys). Read in one
    /// snapshot-isolated transaction, so the entries are exactly those of that version.
    pub async fn hotlist_changes(
        &self,
        name: &str,
        since: Option<i64>,
    ) -> Result<Option<(ListInfo, Vec<Entry>, Vec<EntryKey>)>, sqlx::Error> {
        let postgres = self.backend() == "postgres";
        let select = format!("SELECT {LIST_COLUMNS} FROM hotlists WHERE name = $1");
        const LIVE: &str = "SELECT body, removed FROM hotlist_entries WHERE list_id = $1 \
             AND removed = FALSE ORDER BY plate, state, category";
        const CHANGED: &str = "SELECT body, removed FROM hotlist_entries WHERE list_id = $1 \
             AND changed_version > $2 ORDER BY plate, state, category";
        on_pool!(self.db(), p => {
            let mut tx = p.begin().await?;
            if postgres {
                sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                    .execute(&mut *tx)
                    .await?;
            }
            let Some(row) = sqlx::query(&select).bind(name).fetch_optional(&mut *tx).await? else {
                return Ok(None);
            };
            let list_id: i64 = row.try_get("id")?;
            let info = list_info_from(&row)?;
            let rows = match since {
                None => sqlx::query(LIVE).bind(list_id).fetch_all(&mut *tx).await?,
                Some(v) => sqlx::query(CHANGED).bind(list_id).bind(v).fetch_all(&mut *tx).await?,
            };
            tx.commit().await?;
            let mut add = Vec::new();
            let mut remove = Vec::new();
            for r in &rows {
                let entry = decode_entry(&r.try_get::<String, _>("body")?)?;
                if r.try_get::<bool, _>("removed")? {
                    remove.push(EntryKey::from(&entry));
                } else {
                    add.push(entry);
                }
            }
            Ok(Some((info, add, remove)))
        })
    }
}

/// Query parameters (and multipart text fields) of an upload.
#[derive(Debug, Default, Deserialize)]
pub struct UploadParams {
    /// List name: 1..=64 of `A-Z a-z 0-9 . _ -`.
    pub list: Option<String>,
    /// `ncic`, `state`, `agency` or `officer` (default: by format).
    pub source: Option<String>,
    /// `auto` (default), `ncic-fixed`, `ncic-csv`, `california` or `delimited`.
    pub format: Option<String>,
    /// Category for formats that carry none (default: stolen vehicle).
    pub category: Option<String>,
    /// `replace` (default) or `merge`.
    pub mode: Option<String>,
    /// Seconds after which devices flag the list stale (default: configured).
    pub max_age_secs: Option<i64>,
}

impl UploadParams {
    fn set(&mut self, field: &str, value: String) -> Result<(), ApiError> {
        let slot = match field {
            "list" => &mut self.list,
            "source" => &mut self.source,
            "format" => &mut self.format,
            "category" => &mut self.category,
            "mode" => &mut self.mode,
            "max_age_secs" => {
                self.max_age_secs =
                    Some(value.trim().parse().map_err(|_| {
                        ApiError::BadRequest("max_age_secs must be an integer".into())
                    })?);
                return Ok(());
            }
            _ => {
                return Err(ApiError::BadRequest(
                    "unknown multipart field (expected file, list, source, format, category, \
                     mode, max_age_secs)"
                        .into(),
                ));
            }
        };
        *slot = Some(value);
        Ok(())
    }
}

/// One rejected line of an upload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RejectedLine {
    pub line: usize,
    pub reason: String,
}

/// The answer to an upload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UploadResponse {
    #[serde(flatten)]
    pub outcome: PublishOutcome,
    pub format: String,
    /// Record lines seen in the file.
    pub records: usize,
    /// Entries the file yielded.
    pub imported: usize,
    pub rejects: Vec<RejectedLine>,
    pub warnings: Vec<String>,
}

/// Valid list names: 1..=64 of `A-Z a-z 0-9 . _ -`.
pub fn valid_list_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        // `.` and `..` are path segments URLs normalise away: devices could never fetch them.
        && s.bytes().any(|b| b != b'.')
}

fn list_name(s: Option<&str>) -> Result<String, ApiError> {
    match s.map(str::trim) {
        Some(n) if valid_list_name(n) => Ok(n.to_string()),
        Some(_) => Err(ApiError::BadRequest(
            "list must be 1..=64 characters of A-Z, a-z, 0-9, '.', '_', '-', not only dots".into(),
        )),
        None => Err(ApiError::BadRequest(
            "list (the list name) is required".into(),
        )),
    }
}

fn query_rejection(r: &QueryRejection) -> ApiError {
    ApiError::BadRequest(format!(
        "invalid query parameters: {}",
        redact_quoted(&r.body_text())
    ))
}

/// Reads the file (and any text fields) of an upload: multipart/form-data with a `file` part,
/// or the raw request body.
async fn read_upload(
    state: &AppState,
    req: Request,
    params: &mut UploadParams,
) -> Result<Bytes, ApiError> {
    let multipart = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("multipart/form-data"));
    if !multipart {
        return Bytes::from_request(req, state).await.map_err(|r| {
            if r.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::BadRequest("could not read the request body".into())
            }
        });
    }
    let mut form = Multipart::from_request(req, state)
        .await
        .map_err(|_| ApiError::BadRequest("malformed multipart body".into()))?;
    let mut file = None;
    loop {
        let field = match form.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(ApiError::PayloadTooLarge);
            }
            Err(_) => return Err(ApiError::BadRequest("malformed multipart body".into())),
        };
        let name = field.name().unwrap_or("").to_string();
        let data = field.bytes().await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::BadRequest("malformed multipart body".into())
            }
        })?;
        if name == "file" {
            if file.is_some() {
                return Err(ApiError::BadRequest("one file per upload".into()));
            }
            file = Some(data);
        } else {
            let text = String::from_utf8(data.to_vec())
                .map_err(|_| ApiError::BadRequest(format!("field {name} is not UTF-8")))?;
            params.set(&name, text)?;
        }
    }
    file.ok_or_else(|| ApiError::BadRequest("multipart upload without a `file` part".into()))
}

fn parse_options(p: &UploadParams) -> Result<(ImportOptions, PublishMode), ApiError> {
    let format = match p.format.as_deref().map(str::trim) {
        None | Some("") | Some("auto") => None,
        Some(f) => Some(Format::parse(f).ok_or_else(|| {
            ApiError::BadRequest(
                "format must be auto, ncic-fixed, ncic-csv, california or delimited".into(),
            )
        })?),
    };
    let source = p
        .source
        .as_deref()
        .map(|s| {
            Source::parse(s).map_err(|_| {
                ApiError::BadRequest("source must be ncic, state, agency or officer".into())
            })
        })
        .transpose()?;
    let category = p
        .category
        .as_deref()
        .map(|c| Category::parse(c).map_err(|_| ApiError::BadRequest("unknown category".into())))
        .transpose()?;
    let mode = match p.mode.as_deref().map(str::trim) {
        None | Some("") | Some("replace") => PublishMode::Replace,
        Some("merge") => PublishMode::Merge,
        Some(_) => return Err(ApiError::BadRequest("mode must be replace or merge".into())),
    };
    Ok((
        ImportOptions {
            format,
            source,
            category,
        },
        mode,
    ))
}

fn audit_event(
    principal: &Principal,
    client: Option<String>,
    action: &'static str,
    outcome: &'static str,
    reason: Option<String>,
    criteria: serde_json::Value,
    count: Option<usize>,
) -> AuditEvent {
    AuditEvent {
        user_id: Some(principal.user_id),
        username: Some(principal.username.clone()),
        action,
        outcome,
        reason,
        criteria,
        result_count: count.and_then(|n| i64::try_from(n).ok()),
        client,
        ..AuditEvent::default()
    }
}

/// Audits a publish that was refused (nothing changed) with its reason.
async fn audit_failed_publish(
    state: &AppState,
    principal: &Principal,
    client: Option<String>,
    reason: &str,
    criteria: serde_json::Value,
) -> Result<(), ApiError> {
    let event = audit_event(
        principal,
        client,
        "hotlist.publish",
        "failed",
        Some(reason.to_string()),
        criteria,
        None,
    );
    state.repo.append_audit(event, now_ms()).await?;
    Ok(())
}

/// `POST /v1/hotlists` (admin): publishes a list file. Parameters in the query string or as
/// multipart text fields; the file as the raw body or the multipart `file` part.
pub async fn upload(
    State(state): State<AppState>,
    principal: Principal,
    Client(client): Client,
    query: Result<Query<UploadParams>, QueryRejection>,
    req: Request,
) -> Result<Json<UploadResponse>, ApiError> {
    principal.require(&[Role::Admin])?;
    let mut params = query.map_err(|r| query_rejection(&r))?.0;
    let bytes = read_upload(&state, req, &mut params).await?;
    let name = list_name(params.list.as_deref())?;
    let (opts, mode) = parse_options(&params)?;
    let max_age = params
        .max_age_secs
        .unwrap_or(state.config.ops.hotlist_max_age_secs);
    if max_age <= 0 {
        return Err(ApiError::BadRequest("max_age_secs must be positive".into()));
    }
    let criteria = |extra: serde_json::Value| {
        let mut c = json!({
            "list": name,
            "mode": mode,
            "format": params.format.as_deref().unwrap_or("auto"),
            "bytes": bytes.len(),
        });
        if let (Some(c), Some(e)) = (c.as_object_mut(), extra.as_object()) {
            c.extend(e.clone());
        }
        c
    };
    let file = bytes.clone();
    let imported = tokio::task::spawn_blocking(move || import(&file, &opts))
        .await
        .map_err(|_| ApiError::Internal)?;
    let report = match imported {
        Ok(r) => r,
        Err(e) => {
            let reason = import_error_reason(&e);
            audit_failed_publish(&state, &principal, client, &reason, criteria(json!({}))).await?;
            return Err(ApiError::BadRequest(reason));
        }
    };
    let rejects: Vec<RejectedLine> = report
        .rejects
        .iter()
        .map(|r| RejectedLine {
            line: r.line,
            reason: r.reason.to_string(),
        })
        .collect();
    if report.entries.is_empty() {
        let reason = "the file holds no valid entry; nothing was published".to_string();
        let counts = json!({ "records": report.records, "rejected": rejects.len() });
        audit_failed_publish(&state, &principal, client, &reason, criteria(counts)).await?;
        return Err(ApiError::BadRequest(format!(
            "{reason} ({} records, {} rejected)",
            report.records,
            rejects.len()
        )));
    }
    let source = opts_source(&params, report.format)?;
    let outcome = state
        .repo
        .publish_hotlist(&name, source, max_age, &report.entries, mode, now_ms())
        .await?
        .ok_or(ApiError::Internal)?;
    state
        .repo
        .append_audit(
            audit_event(
                &principal,
                client,
                "hotlist.publish",
                "ok",
                None,
                criteria(json!({
                    "detected_format": report.format.as_str(),
                    "source": source.as_str(),
                    "records": report.records,
                    "rejected": rejects.len(),
                    "previous_version": outcome.previous_version,
                    "version": outcome.version,
                    "added": outcome.added,
                    "updated": outcome.updated,
                    "removed": outcome.removed,
                })),
                Some(outcome.entries),
            ),
            now_ms(),
        )
        .await?;
    Ok(Json(UploadResponse {
        format: report.format.as_str().to_string(),
        records: report.records,
        imported: report.entries.len(),
        rejects,
        warnings: report.warnings,
        outcome,
    }))
}

fn opts_source(p: &UploadParams, format: Format) -> Result<Source, ApiError> {
    Ok(match p.source.as_deref() {
        Some(s) => Source::parse(s).map_err(|_| {
            ApiError::BadRequest("source must be ncic, state, agency or officer".into())
        })?,
        None => format.default_source(),
    })
}

/// Import errors name the format and the problem, never a plate; the control-byte offset is
/// kept, the byte itself too (it is not plate text).
fn import_error_reason(e: &ImportError) -> String {
    match e {
        ImportError::UnknownFormat => {
            "the format could not be recognised; pass format (ncic-fixed, ncic-csv, california, \
             delimited)"
                .into()
        }
        other => other.to_string(),
    }
}

/// `DELETE /v1/hotlists/{name}` (admin): removes every entry; devices drop them at their next
/// delta.
pub async fn retire(
    State(state): State<AppState>,
    principal: Principal,
    Client(client): Client,
    Path(name): Path<String>,
) -> Result<Json<PublishOutcome>, ApiError> {
    principal.require(&[Role::Admin])?;
    let name = list_name(Some(&name))?;
    let outcome = state
        .repo
        .publish_hotlist(&name, Source::Agency, 1, &[], PublishMode::Retire, now_ms())
        .await?;
    let criteria = match &outcome {
        Some(o) => json!({
            "list": name,
            "previous_version": o.previous_version,
            "version": o.version,
            "removed": o.removed,
        }),
        None => json!({ "list": name }),
    };
    state
        .repo
        .append_audit(
            audit_event(
                &principal,
                client,
                "hotlist.retire",
                if outcome.is_some() { "ok" } else { "failed" },
                None,
                criteria,
                outcome.as_ref().map(|o| o.removed),
            ),
            now_ms(),
        )
        .await?;
    outcome
        .map(Json)
        .ok_or(ApiError::NotFound("no such hot list"))
}

/// Roles whose devices receive hot lists.
const LIST_ROLES: [Role; 3] = [Role::Officer, Role::Analyst, Role::Admin];

/// `GET /v1/hotlists` (officer, analyst, admin): every list with its version.
pub async fn index(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<serde_json::Value>, ApiError> {
    principal.require_device_work(&LIST_ROLES)?;
    let lists = state.repo.hotlists().await?;
    Ok(Json(json!({ "lists": lists })))
}

/// `GET /v1/hotlists/key` (any authenticated user): the public key that verifies payloads.
pub async fn key(State(state): State<AppState>, _principal: Principal) -> Json<PublicKeyInfo> {
    Json(state.signer.public_key_info())
}

fn device(principal: &Principal) -> Result<(), ApiError> {
    principal.require_device_work(&LIST_ROLES)?;
    if principal.device_id.is_none() {
        return Err(ApiError::Forbidden(
            "hot lists are fetched with a device token".into(),
        ));
    }
    Ok(())
}

/// `GET /v1/hotlists/{name}/snapshot` (device token): every live entry, signed.
pub async fn snapshot(
    State(state): State<AppState>,
    principal: Principal,
    Path(name): Path<String>,
) -> Result<Json<SignedHotlist>, ApiError> {
    device(&principal)?;
    let name = list_name(Some(&name))?;
    let (list, entries, _) = state
        .repo
        .hotlist_changes(&name, None)
        .await?
        .ok_or(ApiError::NotFound("no such hot list"))?;
    let payload = HotlistPayload {
        list,
        issued_at: now_ms().div_euclid(1000),
        update: Update::Snapshot { entries },
    };
    Ok(Json(sign_blocking(&state, payload).await?))
}

#[derive(Debug, Deserialize)]
pub struct DeltaParams {
    /// The version the device holds.
    pub since: i64,
}

/// `GET /v1/hotlists/{name}/delta?since=V` (device token): the changes after version `V`,
/// signed. A device ahead of the server (its `V` is newer) gets 409 and must fetch a snapshot.
pub async fn delta(
    State(state): State<AppState>,
    principal: Principal,
    Path(name): Path<String>,
    query: Result<Query<DeltaParams>, QueryRejection>,
) -> Result<Json<SignedHotlist>, ApiError> {
    device(&principal)?;
    let name = list_name(Some(&name))?;
    let since = query.map_err(|r| query_rejection(&r))?.0.since;
    if since < 0 {
        return Err(ApiError::BadRequest("since must be a version (≥ 0)".into()));
    }
    let (list, add, remove) = state
        .repo
        .hotlist_changes(&name, Some(since))
        .await?
        .ok_or(ApiError::NotFound("no such hot list"))?;
    if since > list.version {
        return Err(ApiError::Conflict(format!(
            "the list is at version {}, older than {since}: fetch a snapshot",
            list.version
        )));
    }
    let payload = HotlistPayload {
        list,
        issued_at: now_ms().div_euclid(1000),
        update: Update::Delta {
            base_version: since,
            add,
            remove,
        },
    };
    Ok(Json(sign_blocking(&state, payload).await?))
}

/// Serialising and signing a large list takes a while: off the async workers.
async fn sign_blocking(
    state: &AppState,
    payload: HotlistPayload,
) -> Result<SignedHotlist, ApiError> {
    let signer = state.signer.clone();
    tokio::task::spawn_blocking(move || signer.sign(&payload))
        .await
        .map_err(|_| ApiError::Internal)
}
