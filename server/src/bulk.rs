//! Multi-row encounter inserts, shared by ingest (`POST /v1/encounters`, via
//! `Repo::insert_encounters`) and by bulk loading for benchmarks and large test fixtures
//! (`Repo::bulk_insert_encounters`).
//!
//! - PostgreSQL: one `INSERT … SELECT FROM UNNEST(…) ON CONFLICT (id) DO NOTHING RETURNING id`
//!   per call, whatever the row count (one prepared statement for every batch size).
//! - SQLite: multi-row `INSERT … VALUES (…), (…) … RETURNING id` in chunks of at most
//!   [`SQLITE_CHUNK`] rows (21 parameters a row, far below SQLite's 32,766). A remainder is
//!   split into powers of two, so at most eight statement texts exist and each stays prepared
//!   in the connection's statement cache. Then the partial-plate index (`plates`,
//!   `plate_grams`) is brought up to date for the whole batch in two statements (migration
//!   `0004_ingest_batch` replaced the per-row trigger that did it).
//!
//! Both return the ids that were new; callers dedupe ids within a call first (an id already
//! stored comes back as not new).

use std::sync::OnceLock;

use sqlx::{PgExecutor, SqliteConnection};

use crate::db::Repo;
use crate::ingest::Encounter;

const COLUMNS: &str = "id, plate, state, confidence, crop, context_image, lat, lon, \
     captured_at_ms, device_id, camera_id, user_id, on_behalf_of_user_id, reason_code, \
     case_number, justification, session_id, match_tags, alert_decision, alert_reason, \
     received_at_ms";

const PG_UNNEST: &str = "INSERT INTO encounters (id, plate, state, confidence, crop, \
     context_image, lat, lon, captured_at_ms, device_id, camera_id, user_id, on_behalf_of_user_id, \
     reason_code, case_number, justification, session_id, match_tags, alert_decision, \
     alert_reason, received_at_ms) \
     SELECT *, $21::BIGINT FROM UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::FLOAT8[], \
     $5::BYTEA[], $6::BYTEA[], $7::FLOAT8[], $8::FLOAT8[], $9::BIGINT[], $10::BIGINT[], \
     $11::TEXT[], $12::BIGINT[], $13::BIGINT[], $14::TEXT[], $15::TEXT[], $16::TEXT[], \
     $17::TEXT[], $18::TEXT[], $19::TEXT[], $20::TEXT[]) \
     ON CONFLICT (id) DO NOTHING RETURNING id";

/// Most rows in one SQLite `INSERT` (a power of two).
pub const SQLITE_CHUNK: usize = 128;
/// Bound parameters per row in the SQLite statement: anonymous `?`s, bound in order. (Numbered
/// `$N` parameters would cost a linear search per parameter when binding: sqlx looks up each
/// one's name, which made a 128-row statement spend half its time there.)
const SQLITE_ROW_PARAMS: usize = 21;

/// Grams of the batch's plates that `plates` does not list yet (padded `^^plate$$`, as in
/// migration `0002_queries`); `$1` is a JSON array of distinct plates.
const SQLITE_GRAMS: &str = "INSERT OR IGNORE INTO plate_grams (gram, plate) \
     SELECT substr('^^' || p.value || '$$', g.n, 3), p.value \
     FROM json_each($1) AS p JOIN plate_gram_positions AS g \
     ON g.n BETWEEN 2 AND length(p.value) + 1 \
     WHERE NOT EXISTS (SELECT 1 FROM plates WHERE plates.plate = p.value)";
const SQLITE_PLATES: &str = "INSERT OR IGNORE INTO plates (plate) SELECT value FROM json_each($1)";

/// The SQLite insert of `rows` rows (a power of two ≤ [`SQLITE_CHUNK`]), built once.
fn sqlite_insert_sql(rows: usize) -> &'static str {
    static SQL: OnceLock<Vec<String>> = OnceLock::new();
    let all = SQL.get_or_init(|| {
        (0..=SQLITE_CHUNK.trailing_zeros())
            .map(|k| {
                let n = 1usize << k;
                let mut sql = format!("INSERT INTO encounters ({COLUMNS}) VALUES ");
                for r in 0..n {
                    if r > 0 {
                        sql.push_str(", ");
                    }
                    sql.push('(');
                    sql.push_str(&["?"; SQLITE_ROW_PARAMS].join(", "));
                    sql.push(')');
                }
                sql.push_str(" ON CONFLICT (id) DO NOTHING RETURNING id");
                sql
            })
            .collect()
    });
    all.get(rows.trailing_zeros() as usize)
        .map_or("", String::as_str)
}

/// The next chunk length for `remaining` rows: [`SQLITE_CHUNK`], else the largest power of
/// two not above `remaining`.
fn chunk_len(remaining: usize) -> usize {
    if remaining >= SQLITE_CHUNK {
        SQLITE_CHUNK
    } else {
        1 << (usize::BITS - 1 - remaining.leading_zeros())
    }
}

/// Inserts `rows` (distinct ids) on a SQLite connection inside the caller's transaction and
/// indexes the plates of the new ones; returns the ids that were new.
pub(crate) async fn sqlite_insert(
    conn: &mut SqliteConnection,
    rows: &[&Encounter],
    received_at_ms: i64,
) -> Result<Vec<String>, sqlx::Error> {
    let mut new_ids: Vec<String> = Vec::with_capacity(rows.len());
    let mut rest = rows;
    while !rest.is_empty() {
        let (chunk, tail) = rest.split_at(chunk_len(rest.len()));
        let mut q = sqlx::query_scalar::<_, String>(sqlite_insert_sql(chunk.len()));
        for e in chunk {
            q = q
                .bind(&e.id)
                .bind(&e.plate)
                .bind(e.state)
                .bind(e.confidence)
                .bind(&e.crop)
                .bind(&e.context_image)
                .bind(e.lat)
                .bind(e.lon)
                .bind(e.captured_at_ms)
                .bind(e.device_id)
                .bind(&e.camera_id)
                .bind(e.user_id)
                .bind(e.on_behalf_of_user_id)
                .bind(&e.reason_code)
                .bind(&e.case_number)
                .bind(&e.justification)
                .bind(&e.session_id)
                .bind(&e.match_tags)
                .bind(e.alert_decision)
                .bind(&e.alert_reason)
                .bind(received_at_ms);
        }
        new_ids.extend(q.fetch_all(&mut *conn).await?);
        rest = tail;
    }
    if !new_ids.is_empty() {
        let new: std::collections::HashSet<&str> = new_ids.iter().map(String::as_str).collect();
        let mut plates: Vec<&str> = rows
            .iter()
            .filter(|e| new.contains(e.id.as_str()))
            .map(|e| e.plate.as_str())
            .collect();
        plates.sort_unstable();
        plates.dedup();
        let plates = serde_json::Value::from(plates).to_string();
        sqlx::query(SQLITE_GRAMS)
            .bind(&plates)
            .execute(&mut *conn)
            .await?;
        sqlx::query(SQLITE_PLATES)
            .bind(&plates)
            .execute(&mut *conn)
            .await?;
    }
    Ok(new_ids)
}

/// Inserts `rows` (distinct ids) on PostgreSQL in one statement (atomic on its own); returns
/// the ids that were new.
pub(crate) async fn pg_insert<'c>(
    conn: impl PgExecutor<'c>,
    rows: &[&Encounter],
    received_at_ms: i64,
) -> Result<Vec<String>, sqlx::Error> {
    fn col<T>(rows: &[&Encounter], f: impl Fn(&Encounter) -> T) -> Vec<T> {
        rows.iter().map(|e| f(e)).collect()
    }
    sqlx::query_scalar::<_, String>(PG_UNNEST)
        .bind(col(rows, |e| e.id.clone()))
        .bind(col(rows, |e| e.plate.clone()))
        .bind(col(rows, |e| e.state.map(str::to_string)))
        .bind(col(rows, |e| e.confidence))
        .bind(col(rows, |e| e.crop.clone()))
        .bind(col(rows, |e| e.context_image.clone()))
        .bind(col(rows, |e| e.lat))
        .bind(col(rows, |e| e.lon))
        .bind(col(rows, |e| e.captured_at_ms))
        .bind(col(rows, |e| e.device_id))
        .bind(col(rows, |e| e.camera_id.clone()))
        .bind(col(rows, |e| e.user_id))
        .bind(col(rows, |e| e.on_behalf_of_user_id))
        .bind(col(rows, |e| e.reason_code.clone()))
        .bind(col(rows, |e| e.case_number.clone()))
        .bind(col(rows, |e| e.justification.clone()))
        .bind(col(rows, |e| e.session_id.clone()))
        .bind(col(rows, |e| e.match_tags.clone()))
        .bind(col(rows, |e| e.alert_decision.map(str::to_string)))
        .bind(col(rows, |e| e.alert_reason.clone()))
        .bind(received_at_ms)
        .fetch_all(conn)
        .await
}

impl Repo {
    /// Stores `encounters` like ingest does (one statement on PostgreSQL, one transaction of
    /// multi-row inserts on SQLite); returns how many were new.
    pub async fn bulk_insert_encounters(
        &self,
        encounters: &[Encounter],
        received_at_ms: i64,
    ) -> Result<u64, sqlx::Error> {
        let stored = self.insert_encounters(encounters, received_at_ms).await?;
        Ok(stored.iter().filter(|s| **s).count() as u64)
    }

    /// After a bulk load: refreshes the planner statistics (`ANALYZE`) and, on PostgreSQL,
    /// vacuums `encounters` so the trigram index's pending list is merged (autovacuum does the
    /// same in a running deployment; until then every partial query scans that list).
    pub async fn analyze(&self) -> Result<(), sqlx::Error> {
        match self.db() {
            crate::db::Db::Sqlite(p) => sqlx::query("ANALYZE").execute(p).await.map(|_| ()),
            crate::db::Db::Postgres(p) => {
                sqlx::query("VACUUM (ANALYZE) encounters")
                    .execute(p)
                    .await?;
                sqlx::query("ANALYZE").execute(p).await.map(|_| ())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_powers_of_two_with_prepared_texts() {
        let mut n = 500;
        let mut seen = Vec::new();
        while n > 0 {
            let k = chunk_len(n);
            seen.push(k);
            n -= k;
        }
        assert_eq!(seen, [128, 128, 128, 64, 32, 16, 4]);
        for k in [1, 2, 4, 64, 128] {
            let sql = sqlite_insert_sql(k);
            assert_eq!(sql.matches("), (").count(), k - 1, "{k}");
            assert_eq!(sql.matches('?').count(), k * SQLITE_ROW_PARAMS, "{k}");
        }
        assert_eq!(chunk_len(1), 1);
        assert_eq!(chunk_len(127), 64);
    }
}
