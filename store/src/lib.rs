//! The device store: hot lists with versioned snapshots and deltas applied atomically, list
//! staleness, plate reads kept for retro-hits, and alerts, in SQLite through sqlx with numbered
//! migrations (`store/migrations/`). Errors never carry plate text.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::str::FromStr;

use platewatch_core::hotlist::{
    Category, Date, Entry, IndexEntry, Match, Matcher, MatcherConfig, PlatePattern, Query, Source,
    Vehicle,
};
use serde::Serialize;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use thiserror::Error;

pub mod encounters;
pub mod evidence;

pub use encounters::{
    Ack, AlertMatch, AlertView, EncounterStore, OutboxRow, OutboxStatus, RETRO_HIT_TAG, RetroAlert,
    StoredEncounter, UploadState,
};
pub use evidence::{Evidence, Image, ImageFormat, ImageKey};

/// Default maximum age of a list before it is flagged stale: lists change daily.
pub const DEFAULT_MAX_AGE_SECS: i64 = 24 * 3600;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("list {list:?} is at version {have}; the delta applies to version {base}")]
    VersionMismatch { list: String, have: i64, base: i64 },
    #[error("list {list:?} is at version {have}; refusing to go back to version {offered}")]
    OlderVersion {
        list: String,
        have: i64,
        offered: i64,
    },
    #[error("no list named {0:?}")]
    UnknownList(String),
    #[error("stored row {0} is corrupt")]
    Corrupt(i64),
    #[error("invalid input: {0}")]
    Invalid(String),
    #[error("an image blob could not be decrypted (no key, the wrong key, or altered bytes)")]
    Crypto,
    #[error("image: {0}")]
    Image(String),
    #[error("no such {0}")]
    NotFound(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Identity of a list and how old it may get.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListMeta {
    pub name: String,
    pub source: Source,
    pub max_age_secs: i64,
}

impl ListMeta {
    pub fn new(name: impl Into<String>, source: Source) -> Self {
        Self {
            name: name.into(),
            source,
            max_age_secs: DEFAULT_MAX_AGE_SECS,
        }
    }
}

/// A list as stored, with its freshness at some instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListStatus {
    pub id: i64,
    pub name: String,
    pub source: Source,
    pub version: i64,
    pub entries: i64,
    pub received_at: i64,
    pub published_at: Option<i64>,
    pub age_secs: i64,
    pub max_age_secs: i64,
    /// Older than `max_age_secs`: alerts from this list must say so, and the list needs a sync.
    pub stale: bool,
}

/// The natural key of an entry within a list (shared with the server's hot list deltas).
pub use platewatch_core::hotlist::EntryKey;

/// What applying a snapshot or a delta changed, for updating a live [`Matcher`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    pub list_id: i64,
    pub version: i64,
    /// Ids of entries that are new in this version.
    pub added: Vec<u32>,
    /// Ids of entries that are gone.
    pub removed: Vec<u32>,
}

/// A stored entry with its ids.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEntry {
    pub id: u32,
    pub list_id: i64,
    pub entry: Entry,
}

/// A plate read kept on the device. `Debug` never shows the plate.
#[derive(Clone, PartialEq)]
pub struct StoredRead {
    pub id: i64,
    pub plate: String,
    pub confidences: Vec<f32>,
    pub state: Option<String>,
    pub state_confidence: f32,
    pub seen_at: i64,
}

impl std::fmt::Debug for StoredRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredRead")
            .field("id", &self.id)
            .field("plate", &"<redacted>")
            .field("state", &self.state)
            .field("seen_at", &self.seen_at)
            .finish_non_exhaustive()
    }
}

impl StoredRead {
    pub fn query(&self) -> Query<'_> {
        Query {
            text: &self.plate,
            confidences: &self.confidences,
            state: self.state.as_deref(),
            state_confidence: self.state_confidence,
        }
    }
}

/// A new entry that matched a read stored before it arrived.
#[derive(Debug, Clone, PartialEq)]
pub struct RetroHit {
    pub read_id: i64,
    pub seen_at: i64,
    pub matched: Match,
}

/// SQLite-backed device store.
#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
}

fn db_id(id: i64) -> Result<u32> {
    u32::try_from(id).map_err(|_| StoreError::Corrupt(id))
}

fn list_index(id: i64) -> Result<u16> {
    u16::try_from(id).map_err(|_| StoreError::Invalid("more than 65535 lists".into()))
}

impl Store {
    /// Open (creating if needed) the store at `path` and run pending migrations.
    pub async fn open(path: &Path) -> Result<Store> {
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true);
        Self::connect(opts, 4).await
    }

    /// A private in-memory store (tests, one-shot CLI runs).
    pub async fn open_in_memory() -> Result<Store> {
        let opts = SqliteConnectOptions::from_str("sqlite::memory:")?.foreign_keys(true);
        Self::connect(opts, 1).await
    }

    async fn connect(opts: SqliteConnectOptions, max: u32) -> Result<Store> {
        let pool = SqlitePoolOptions::new()
            .max_connections(max)
            .connect_with(opts)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Store { pool })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Replace a list's entries with a full snapshot at `version`, atomically. A version older
    /// than the stored one is refused; the same version is re-applied (idempotent).
    pub async fn apply_snapshot(
        &self,
        meta: &ListMeta,
        version: i64,
        published_at: Option<i64>,
        entries: &[Entry],
        now: i64,
    ) -> Result<Applied> {
        if meta.max_age_secs <= 0 {
            return Err(StoreError::Invalid("max_age_secs must be positive".into()));
        }
        let mut tx = self.pool.begin().await?;
        let existing: Option<(i64, i64)> =
            sqlx::query_as("SELECT id, version FROM lists WHERE name = ?")
                .bind(&meta.name)
                .fetch_optional(&mut *tx)
                .await?;
        let list_id = match existing {
            Some((_, have)) if have > version => {
                return Err(StoreError::OlderVersion {
                    list: meta.name.clone(),
                    have,
                    offered: version,
                });
            }
            Some((id, _)) => {
                sqlx::query(
                    "UPDATE lists SET source = ?, version = ?, received_at = ?, published_at = ?, \
                     max_age_secs = ? WHERE id = ?",
                )
                .bind(meta.source.as_str())
                .bind(version)
                .bind(now)
                .bind(published_at)
                .bind(meta.max_age_secs)
                .bind(id)
                .execute(&mut *tx)
                .await?;
                id
            }
            None => sqlx::query(
                "INSERT INTO lists (name, source, version, received_at, published_at, max_age_secs) \
                 VALUES (?, ?, ?, ?, ?, ?)",
            )
            .bind(&meta.name)
            .bind(meta.source.as_str())
            .bind(version)
            .bind(now)
            .bind(published_at)
            .bind(meta.max_age_secs)
            .execute(&mut *tx)
            .await?
            .last_insert_rowid(),
        };
        list_index(list_id)?;
        // Entries that survive keep their id (so alerts stay linked); others are removed.
        let old: HashMap<(String, String, String), i64> =
            sqlx::query_as::<_, (i64, String, String, String)>(
                "SELECT id, plate, state, category FROM entries WHERE list_id = ?",
            )
            .bind(list_id)
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .map(|(id, p, s, c)| ((p, s, c), id))
            .collect();
        let keep: HashSet<(String, String, String)> = entries.iter().map(key_of).collect();
        let mut applied = Applied {
            list_id,
            version,
            ..Applied::default()
        };
        let gone: Vec<i64> = old
            .iter()
            .filter(|(k, _)| !keep.contains(*k))
            .map(|(_, &id)| id)
            .collect();
        for chunk in gone.chunks(500) {
            let marks = vec!["?"; chunk.len()].join(",");
            let sql = format!("DELETE FROM entries WHERE id IN ({marks})");
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(id);
            }
            q.execute(&mut *tx).await?;
        }
        applied.removed = gone.into_iter().map(db_id).collect::<Result<_>>()?;
        applied.removed.sort_unstable();
        for chunk in entries.chunks(UPSERT_CHUNK) {
            bulk_upsert(&mut tx, list_id, version, chunk).await?;
        }
        let now_rows: Vec<(i64, String, String, String)> =
            sqlx::query_as("SELECT id, plate, state, category FROM entries WHERE list_id = ?")
                .bind(list_id)
                .fetch_all(&mut *tx)
                .await?;
        for (id, p, s, c) in now_rows {
            if !old.contains_key(&(p, s, c)) {
                applied.added.push(db_id(id)?);
            }
        }
        applied.added.sort_unstable();
        tx.commit().await?;
        Ok(applied)
    }

    /// Apply a delta from `base_version` to `new_version` atomically: removals by key, then
    /// additions (an addition with an existing key updates that entry in place). A delta for a
    /// version other than the stored one is refused: fetch a snapshot instead.
    pub async fn apply_delta(
        &self,
        list: &str,
        base_version: i64,
        new_version: i64,
        add: &[Entry],
        remove: &[EntryKey],
        now: i64,
    ) -> Result<Applied> {
        if new_version <= base_version {
            return Err(StoreError::Invalid(
                "a delta must move to a newer version".into(),
            ));
        }
        let mut tx = self.pool.begin().await?;
        let (list_id, have): (i64, i64) =
            sqlx::query_as("SELECT id, version FROM lists WHERE name = ?")
                .bind(list)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| StoreError::UnknownList(list.to_string()))?;
        if have != base_version {
            return Err(StoreError::VersionMismatch {
                list: list.to_string(),
                have,
                base: base_version,
            });
        }
        let mut applied = Applied {
            list_id,
            version: new_version,
            ..Applied::default()
        };
        for k in remove {
            let id: Option<i64> = sqlx::query_scalar(
                "DELETE FROM entries WHERE list_id = ? AND plate = ? AND state = ? AND category = ? \
                 RETURNING id",
            )
            .bind(list_id)
            .bind(k.plate.as_str())
            .bind(k.state.as_deref().unwrap_or(""))
            .bind(k.category.as_str())
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(id) = id {
                applied.removed.push(db_id(id)?);
            }
        }
        for e in add {
            if let Some(id) = upsert_entry(&mut tx, list_id, new_version, e).await? {
                applied.added.push(id);
            } else {
                // Updated in place: the matcher must drop and re-add it.
                let id = entry_id(&mut tx, list_id, e)
                    .await?
                    .ok_or_else(|| StoreError::Invalid("entry vanished during upsert".into()))?;
                applied.removed.push(db_id(id)?);
                applied.added.push(db_id(id)?);
            }
        }
        sqlx::query("UPDATE lists SET version = ?, received_at = ? WHERE id = ?")
            .bind(new_version)
            .bind(now)
            .bind(list_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(applied)
    }

    /// Record that the publisher confirmed `list` is still at its stored version.
    pub async fn mark_current(&self, list: &str, now: i64) -> Result<()> {
        let n = sqlx::query("UPDATE lists SET received_at = ? WHERE name = ?")
            .bind(now)
            .bind(list)
            .execute(&self.pool)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(StoreError::UnknownList(list.to_string()));
        }
        Ok(())
    }

    /// Drop a list and its entries.
    pub async fn remove_list(&self, list: &str) -> Result<Vec<u32>> {
        let mut tx = self.pool.begin().await?;
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT e.id FROM entries e JOIN lists l ON l.id = e.list_id WHERE l.name = ?",
        )
        .bind(list)
        .fetch_all(&mut *tx)
        .await?;
        let n = sqlx::query("DELETE FROM lists WHERE name = ?")
            .bind(list)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(StoreError::UnknownList(list.to_string()));
        }
        tx.commit().await?;
        ids.into_iter().map(db_id).collect()
    }

    /// Every list with its age and staleness at `now`.
    pub async fn list_status(&self, now: i64) -> Result<Vec<ListStatus>> {
        let rows = sqlx::query(
            "SELECT l.id, l.name, l.source, l.version, l.received_at, l.published_at, l.max_age_secs, \
             (SELECT COUNT(*) FROM entries e WHERE e.list_id = l.id) AS n FROM lists l ORDER BY l.id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                let id: i64 = r.try_get("id")?;
                let received_at: i64 = r.try_get("received_at")?;
                let max_age_secs: i64 = r.try_get("max_age_secs")?;
                let age_secs = (now - received_at).max(0);
                Ok(ListStatus {
                    id,
                    name: r.try_get("name")?,
                    source: Source::parse(r.try_get("source")?)
                        .map_err(|_| StoreError::Corrupt(id))?,
                    version: r.try_get("version")?,
                    entries: r.try_get("n")?,
                    received_at,
                    published_at: r.try_get("published_at")?,
                    age_secs,
                    max_age_secs,
                    stale: age_secs > max_age_secs,
                })
            })
            .collect()
    }

    /// All entries (every list), in id order.
    pub async fn entries(&self) -> Result<Vec<StoredEntry>> {
        self.entries_where("1 = 1", &[]).await
    }

    /// Entries by id (missing ids are skipped).
    pub async fn entries_by_id(&self, ids: &[u32]) -> Result<Vec<StoredEntry>> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let marks = vec!["?"; chunk.len()].join(",");
            let ids: Vec<i64> = chunk.iter().map(|&i| i64::from(i)).collect();
            out.extend(
                self.entries_where(&format!("id IN ({marks})"), &ids)
                    .await?,
            );
        }
        Ok(out)
    }

    async fn entries_where(&self, cond: &str, binds: &[i64]) -> Result<Vec<StoredEntry>> {
        let sql = format!(
            "SELECT id, list_id, plate, state, category, priority, source, make, model, colour, \
             year, incident_date, expires_at, note FROM entries WHERE {cond} ORDER BY id"
        );
        let mut q = sqlx::query(&sql);
        for b in binds {
            q = q.bind(b);
        }
        let rows = q.fetch_all(&self.pool).await?;
        rows.into_iter().map(|r| decode_entry(&r)).collect()
    }

    /// Build a matcher over every stored entry. Expired entries are indexed too but never match
    /// at or after their expiry instant.
    pub async fn load_matcher(&self, config: MatcherConfig) -> Result<Matcher> {
        let entries = self.entries().await?;
        build_matcher(&entries, config)
    }

    /// Delete entries that expired at or before `now`; returns their ids.
    pub async fn purge_expired(&self, now: i64) -> Result<Vec<u32>> {
        let ids: Vec<i64> = sqlx::query_scalar(
            "DELETE FROM entries WHERE expires_at IS NOT NULL AND expires_at <= ? RETURNING id",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        ids.into_iter().map(db_id).collect()
    }

    /// Keep a plate read (for retro-hits until it is uploaded and deleted).
    pub async fn record_read(
        &self,
        plate: &str,
        confidences: &[f32],
        state: Option<&str>,
        state_confidence: f32,
        seen_at: i64,
    ) -> Result<i64> {
        let blob: Vec<u8> = confidences.iter().flat_map(|c| c.to_le_bytes()).collect();
        Ok(sqlx::query(
            "INSERT INTO reads (plate, confidences, state, state_confidence, seen_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(plate)
        .bind(blob)
        .bind(state)
        .bind(state_confidence)
        .bind(seen_at)
        .execute(&self.pool)
        .await?
        .last_insert_rowid())
    }

    /// Reads seen at or after `since`.
    pub async fn reads_since(&self, since: i64) -> Result<Vec<StoredRead>> {
        let rows = sqlx::query(
            "SELECT id, plate, confidences, state, state_confidence, seen_at FROM reads \
             WHERE seen_at >= ? ORDER BY id",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                let id: i64 = r.try_get("id")?;
                let blob: Vec<u8> = r.try_get("confidences")?;
                if blob.len() % 4 != 0 {
                    return Err(StoreError::Corrupt(id));
                }
                Ok(StoredRead {
                    id,
                    plate: r.try_get("plate")?,
                    confidences: blob
                        .chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                        .collect(),
                    state: r.try_get("state")?,
                    state_confidence: r.try_get("state_confidence")?,
                    seen_at: r.try_get("seen_at")?,
                })
            })
            .collect()
    }

    /// Retro-hits: stored reads seen at or after `since` that the entries `new_ids` (just
    /// added) match. Each hit is recorded as a retro alert (once per read and entry).
    pub async fn retro_hits(
        &self,
        new_ids: &[u32],
        since: i64,
        now: i64,
        config: MatcherConfig,
    ) -> Result<Vec<RetroHit>> {
        if new_ids.is_empty() {
            return Ok(Vec::new());
        }
        let fresh = self.entries_by_id(new_ids).await?;
        let matcher = build_matcher(&fresh, config)?;
        let mut hits = Vec::new();
        for read in self.reads_since(since).await? {
            for m in matcher.alerts(&read.query(), now) {
                let inserted = sqlx::query(
                    "INSERT OR IGNORE INTO alerts (read_id, entry_id, list_id, kind, score, retro, raised_at) \
                     VALUES (?, ?, ?, ?, ?, 1, ?)",
                )
                .bind(read.id)
                .bind(i64::from(m.id))
                .bind(i64::from(m.list))
                .bind(m.kind.as_str())
                .bind(m.score)
                .bind(now)
                .execute(&self.pool)
                .await?
                .rows_affected();
                if inserted == 1 {
                    hits.push(RetroHit {
                        read_id: read.id,
                        seen_at: read.seen_at,
                        matched: m,
                    });
                }
            }
        }
        Ok(hits)
    }

    /// Record a live alert for a stored read.
    pub async fn record_alert(&self, read_id: i64, m: &Match, now: i64) -> Result<()> {
        sqlx::query(
            "INSERT OR IGNORE INTO alerts (read_id, entry_id, list_id, kind, score, retro, raised_at) \
             VALUES (?, ?, ?, ?, ?, 0, ?)",
        )
        .bind(read_id)
        .bind(i64::from(m.id))
        .bind(i64::from(m.list))
        .bind(m.kind.as_str())
        .bind(m.score)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

/// Build a matcher over stored entries (ids are row ids, lists are list ids).
pub fn build_matcher(entries: &[StoredEntry], config: MatcherConfig) -> Result<Matcher> {
    let lists: Vec<u16> = entries
        .iter()
        .map(|e| list_index(e.list_id))
        .collect::<Result<_>>()?;
    Matcher::build(
        entries
            .iter()
            .zip(lists)
            .map(|(s, list)| index_entry(s, list)),
        config,
    )
    .map_err(|e| StoreError::Invalid(e.to_string()))
}

/// The matcher's view of a stored entry.
pub fn index_entry(s: &StoredEntry, list: u16) -> IndexEntry<'_> {
    IndexEntry {
        id: s.id,
        list,
        plate: s.entry.plate.as_str(),
        state: s.entry.state.as_deref(),
        category: s.entry.category,
        priority: s.entry.priority,
        expires_at: s.entry.expires_at,
    }
}

/// Rows per multi-row upsert statement (14 parameters each; SQLite allows 32766).
const UPSERT_CHUNK: usize = 1000;

fn key_of(e: &Entry) -> (String, String, String) {
    (
        e.plate.as_str().to_string(),
        e.state.clone().unwrap_or_default(),
        e.category.as_str().to_string(),
    )
}

/// Insert or update many entries in one statement.
async fn bulk_upsert(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    list_id: i64,
    version: i64,
    entries: &[Entry],
) -> Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let row = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
    let sql = format!(
        "INSERT INTO entries (list_id, plate, state, category, added_version, priority, source, \
         make, model, colour, year, incident_date, expires_at, note) VALUES {} \
         ON CONFLICT (list_id, plate, state, category) DO UPDATE SET priority = excluded.priority, \
         source = excluded.source, make = excluded.make, model = excluded.model, \
         colour = excluded.colour, year = excluded.year, incident_date = excluded.incident_date, \
         expires_at = excluded.expires_at, note = excluded.note",
        vec![row; entries.len()].join(", ")
    );
    let mut q = sqlx::query(&sql);
    for e in entries {
        q = q
            .bind(list_id)
            .bind(e.plate.as_str())
            .bind(e.state.as_deref().unwrap_or(""))
            .bind(e.category.as_str())
            .bind(version)
            .bind(i64::from(e.priority))
            .bind(e.source.as_str())
            .bind(e.vehicle.make.as_deref())
            .bind(e.vehicle.model.as_deref())
            .bind(e.vehicle.colour.as_deref())
            .bind(e.vehicle.year.map(i64::from))
            .bind(e.incident_date.map(|d| d.to_string()))
            .bind(e.expires_at)
            .bind(e.note.as_deref());
    }
    q.execute(&mut **tx).await?;
    Ok(())
}

/// Insert an entry, or update the existing one with the same key (through [`bulk_upsert`]).
/// Returns the new id when it was inserted, `None` when an existing entry was updated.
async fn upsert_entry(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    list_id: i64,
    version: i64,
    e: &Entry,
) -> Result<Option<u32>> {
    let existed = entry_id(tx, list_id, e).await?.is_some();
    bulk_upsert(tx, list_id, version, std::slice::from_ref(e)).await?;
    if existed {
        return Ok(None);
    }
    let id = entry_id(tx, list_id, e)
        .await?
        .ok_or_else(|| StoreError::Invalid("entry vanished during upsert".into()))?;
    Ok(Some(db_id(id)?))
}

/// Row id of the entry with `e`'s key in a list, if stored.
async fn entry_id(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    list_id: i64,
    e: &Entry,
) -> Result<Option<i64>> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM entries WHERE list_id = ? AND plate = ? AND state = ? AND category = ?",
    )
    .bind(list_id)
    .bind(e.plate.as_str())
    .bind(e.state.as_deref().unwrap_or(""))
    .bind(e.category.as_str())
    .fetch_optional(&mut **tx)
    .await?)
}

fn decode_entry(r: &sqlx::sqlite::SqliteRow) -> Result<StoredEntry> {
    let id: i64 = r.try_get("id")?;
    let bad = |_| StoreError::Corrupt(id);
    let plate = PlatePattern::parse(r.try_get("plate")?).map_err(bad)?;
    let category = Category::parse(r.try_get("category")?).map_err(bad)?;
    let source = Source::parse(r.try_get("source")?).map_err(bad)?;
    let state: String = r.try_get("state")?;
    let priority: i64 = r.try_get("priority")?;
    let year: Option<i64> = r.try_get("year")?;
    let incident: Option<String> = r.try_get("incident_date")?;
    let entry = Entry {
        plate,
        state: (!state.is_empty()).then_some(state),
        category,
        priority: u8::try_from(priority).map_err(|_| StoreError::Corrupt(id))?,
        source,
        vehicle: Vehicle {
            make: r.try_get("make")?,
            model: r.try_get("model")?,
            colour: r.try_get("colour")?,
            year: year.and_then(|y| u16::try_from(y).ok()),
        },
        incident_date: incident.map(|d| Date::parse(&d)).transpose().map_err(bad)?,
        expires_at: r.try_get("expires_at")?,
        note: r.try_get("note")?,
    };
    Ok(StoredEntry {
        id: db_id(id)?,
        list_id: r.try_get("list_id")?,
        entry,
    })
}

#[cfg(test)]
mod tests;
