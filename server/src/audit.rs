//! The audit log: every login, device registration or revocation, rules change, user creation
//! and upload is appended with `hash = sha256(prev_hash || canonical row)`, so an edited,
//! inserted or deleted row breaks the chain; `verify_chain` walks it and finds the first break.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::Row;
use sqlx::sqlite::SqliteConnection;

use crate::db::{Db, Repo, in_tx, on_pool};

/// `prev_hash` of the first row.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One event to append. `criteria` is stored as canonical JSON (keys sorted).
#[derive(Debug, Clone, Default)]
pub struct AuditEvent {
    pub user_id: Option<i64>,
    pub username: Option<String>,
    pub on_behalf_of: Option<String>,
    /// What happened: `login`, `device.register`, `device.revoke`, `rules.set`, `user.create`,
    /// `encounters.upload`, …
    pub action: &'static str,
    /// `ok`, `denied` or `failed`.
    pub outcome: &'static str,
    pub reason: Option<String>,
    pub justification: Option<String>,
    pub criteria: serde_json::Value,
    pub result_count: Option<i64>,
    /// Client address and user agent, when known.
    pub client: Option<String>,
}

/// A stored row, as hashed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AuditRow {
    pub seq: i64,
    pub at_ms: i64,
    pub user_id: Option<i64>,
    pub username: Option<String>,
    pub on_behalf_of: Option<String>,
    pub action: String,
    pub outcome: String,
    pub reason: Option<String>,
    pub justification: Option<String>,
    pub criteria: String,
    pub result_count: Option<i64>,
    pub client: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

/// The canonical form of a row that is hashed: every field but the hashes, in this order.
#[derive(Serialize)]
struct Canonical<'a> {
    seq: i64,
    at_ms: i64,
    user_id: Option<i64>,
    username: Option<&'a str>,
    on_behalf_of: Option<&'a str>,
    action: &'a str,
    outcome: &'a str,
    reason: Option<&'a str>,
    justification: Option<&'a str>,
    criteria: &'a str,
    result_count: Option<i64>,
    client: Option<&'a str>,
}

impl AuditRow {
    /// `sha256(prev_hash || canonical JSON of the row)`, lower-case hex.
    pub fn compute_hash(&self) -> String {
        let c = Canonical {
            seq: self.seq,
            at_ms: self.at_ms,
            user_id: self.user_id,
            username: self.username.as_deref(),
            on_behalf_of: self.on_behalf_of.as_deref(),
            action: &self.action,
            outcome: &self.outcome,
            reason: self.reason.as_deref(),
            justification: self.justification.as_deref(),
            criteria: &self.criteria,
            result_count: self.result_count,
            client: self.client.as_deref(),
        };
        let canonical =
            serde_json::to_vec(&c).expect("a struct of strings and integers serialises");
        let mut h = Sha256::new();
        h.update(self.prev_hash.as_bytes());
        h.update(&canonical);
        hex::encode(h.finalize())
    }
}

/// What `verify_chain` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainStatus {
    /// Every row links to the previous one and the last matches the recorded head.
    Intact { rows: u64 },
    /// The first problem found, at row `seq`.
    Broken { seq: i64, problem: &'static str },
}

pub(crate) fn row_from<R: Row>(r: &R) -> Result<AuditRow, sqlx::Error>
where
    for<'c> &'c str: sqlx::ColumnIndex<R>,
    i64: for<'x> sqlx::Decode<'x, R::Database> + sqlx::Type<R::Database>,
    String: for<'x> sqlx::Decode<'x, R::Database> + sqlx::Type<R::Database>,
{
    Ok(AuditRow {
        seq: r.try_get("seq")?,
        at_ms: r.try_get("at_ms")?,
        user_id: r.try_get("user_id")?,
        username: r.try_get("username")?,
        on_behalf_of: r.try_get("on_behalf_of")?,
        action: r.try_get("action")?,
        outcome: r.try_get("outcome")?,
        reason: r.try_get("reason")?,
        justification: r.try_get("justification")?,
        criteria: r.try_get("criteria")?,
        result_count: r.try_get("result_count")?,
        client: r.try_get("client")?,
        prev_hash: r.try_get("prev_hash")?,
        hash: r.try_get("hash")?,
    })
}

const INSERT: &str = "INSERT INTO audit_log (seq, at_ms, user_id, username, on_behalf_of, action, \
     outcome, reason, justification, criteria, result_count, client, prev_hash, hash) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)";
const UPDATE_HEAD: &str = "UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1";

/// The insert of one [`AuditRow`], on either backend.
macro_rules! insert_row {
    ($row:expr) => {
        sqlx::query(INSERT)
            .bind($row.seq)
            .bind($row.at_ms)
            .bind($row.user_id)
            .bind(&$row.username)
            .bind(&$row.on_behalf_of)
            .bind(&$row.action)
            .bind(&$row.outcome)
            .bind(&$row.reason)
            .bind(&$row.justification)
            .bind(&$row.criteria)
            .bind($row.result_count)
            .bind(&$row.client)
            .bind(&$row.prev_hash)
            .bind(&$row.hash)
    };
}

impl AuditRow {
    /// The row for `event` at `now_ms` that follows the chain's head (`prev_seq`, `prev_hash`).
    fn chained(prev_seq: i64, prev_hash: String, event: &AuditEvent, now_ms: i64) -> AuditRow {
        let mut row = AuditRow {
            seq: prev_seq + 1,
            at_ms: now_ms,
            user_id: event.user_id,
            username: event.username.clone(),
            on_behalf_of: event.on_behalf_of.clone(),
            action: event.action.to_string(),
            outcome: event.outcome.to_string(),
            reason: event.reason.clone(),
            justification: event.justification.clone(),
            criteria: event.criteria.to_string(),
            result_count: event.result_count,
            client: event.client.clone(),
            prev_hash,
            hash: String::new(),
        };
        row.hash = row.compute_hash();
        row
    }
}

/// Appends `events` in order at `now_ms` inside the caller's SQLite write transaction (begun
/// with `BEGIN IMMEDIATE`), whose caller holds [`Repo::audit_lock`]: the encounter group
/// commit writes each upload's audit row in the same transaction as its encounters.
pub(crate) async fn append_sqlite(
    conn: &mut SqliteConnection,
    events: &[AuditEvent],
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    if events.is_empty() {
        return Ok(());
    }
    let head = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
        .fetch_one(&mut *conn)
        .await?;
    let (mut seq, mut hash): (i64, String) = (head.try_get("seq")?, head.try_get("hash")?);
    for event in events {
        let row = AuditRow::chained(seq, hash, event, now_ms);
        insert_row!(row).execute(&mut *conn).await?;
        (seq, hash) = (row.seq, row.hash);
    }
    sqlx::query(UPDATE_HEAD)
        .bind(seq)
        .bind(&hash)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
const PAGE: usize = 1000;

impl Repo {
    /// Appends `event` at `now_ms` to the chain; returns its sequence number.
    pub async fn append_audit(&self, event: AuditEvent, now_ms: i64) -> Result<i64, sqlx::Error> {
        let _guard = self.audit_lock.lock().await;
        let head_sql = match self.db() {
            Db::Sqlite(_) => "SELECT seq, hash FROM audit_head WHERE id = 1",
            // Locks the head row: appends from several server processes queue up here.
            Db::Postgres(_) => "SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE",
        };
        let seq = in_tx!(self.db(), tx => {
            let head = sqlx::query(head_sql).fetch_one(&mut *tx).await?;
            let row = AuditRow::chained(head.try_get("seq")?, head.try_get("hash")?, &event, now_ms);
            insert_row!(row).execute(&mut *tx).await?;
            sqlx::query(UPDATE_HEAD).bind(row.seq).bind(&row.hash).execute(&mut *tx).await?;
            row.seq
        });
        Ok(seq)
    }

    /// Rows with `from_seq <= seq`, in order, at most `limit`.
    pub async fn audit_rows(
        &self,
        from_seq: i64,
        limit: usize,
    ) -> Result<Vec<AuditRow>, sqlx::Error> {
        const SQL: &str = "SELECT seq, at_ms, user_id, username, on_behalf_of, action, outcome, \
             reason, justification, criteria, result_count, client, prev_hash, hash \
             FROM audit_log WHERE seq >= $1 ORDER BY seq LIMIT $2";
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        on_pool!(self.db(), p => {
            let rows = sqlx::query(SQL).bind(from_seq).bind(limit).fetch_all(p).await?;
            rows.iter().map(row_from).collect()
        })
    }

    /// Walks the whole chain page by page: sequence numbers without gaps from 1, each
    /// `prev_hash` equal to the previous row's hash, each hash recomputed, and the last row
    /// equal to the recorded head (so deleting the newest rows is caught too).
    pub async fn verify_chain(&self) -> Result<ChainStatus, sqlx::Error> {
        let mut expected = 1i64;
        let mut prev = GENESIS.to_string();
        loop {
            let rows = self.audit_rows(expected, PAGE).await?;
            let n = rows.len();
            for row in rows {
                if row.seq != expected {
                    return Ok(ChainStatus::Broken {
                        seq: expected,
                        problem: "row missing",
                    });
                }
                if row.prev_hash != prev {
                    return Ok(ChainStatus::Broken {
                        seq: row.seq,
                        problem: "does not link to the previous row",
                    });
                }
                if row.compute_hash() != row.hash {
                    return Ok(ChainStatus::Broken {
                        seq: row.seq,
                        problem: "row altered",
                    });
                }
                prev = row.hash;
                expected += 1;
            }
            if n < PAGE {
                break;
            }
        }
        const HEAD: &str = "SELECT seq, hash FROM audit_head WHERE id = 1";
        let (head_seq, head_hash): (i64, String) = on_pool!(self.db(), p => {
            let r = sqlx::query(HEAD).fetch_one(p).await?;
            (r.try_get("seq")?, r.try_get("hash")?)
        });
        let last = expected - 1;
        if head_seq != last || head_hash != prev {
            let seq = head_seq.max(last);
            return Ok(ChainStatus::Broken {
                seq,
                problem: "newest rows missing or head altered",
            });
        }
        Ok(ChainStatus::Intact {
            rows: u64::try_from(last).unwrap_or(0),
        })
    }
}
