//! Bulk loading of validated encounters straight into the repository, for benchmarks and
//! large test fixtures (devices upload through `POST /v1/encounters`). PostgreSQL gets one
//! multi-row `INSERT … SELECT FROM UNNEST(…)` per call; SQLite one transaction of prepared
//! single-row inserts. Idempotent by id like the ingest path, and the query indexes' triggers
//! run as for any insert.

use crate::db::{Db, Repo};
use crate::ingest::Encounter;

const PG_UNNEST: &str = "INSERT INTO encounters (id, plate, state, confidence, crop, \
     context_image, lat, lon, captured_at_ms, device_id, camera_id, user_id, on_behalf_of_user_id, \
     reason_code, case_number, justification, session_id, match_tags, alert_decision, \
     alert_reason, received_at_ms) \
     SELECT *, $21::BIGINT FROM UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::FLOAT8[], \
     $5::BYTEA[], $6::BYTEA[], $7::FLOAT8[], $8::FLOAT8[], $9::BIGINT[], $10::BIGINT[], \
     $11::TEXT[], $12::BIGINT[], $13::BIGINT[], $14::TEXT[], $15::TEXT[], $16::TEXT[], \
     $17::TEXT[], $18::TEXT[], $19::TEXT[], $20::TEXT[]) \
     ON CONFLICT (id) DO NOTHING";

impl Repo {
    /// Stores `encounters` in one statement (PostgreSQL) or one transaction (SQLite); returns
    /// how many were new.
    pub async fn bulk_insert_encounters(
        &self,
        encounters: &[Encounter],
        received_at_ms: i64,
    ) -> Result<u64, sqlx::Error> {
        if encounters.is_empty() {
            return Ok(0);
        }
        match self.db() {
            Db::Sqlite(_) => {
                let stored = self.insert_encounters(encounters, received_at_ms).await?;
                Ok(stored.iter().filter(|s| **s).count() as u64)
            }
            Db::Postgres(p) => {
                let col =
                    |f: fn(&Encounter) -> String| encounters.iter().map(f).collect::<Vec<_>>();
                let opt = |f: fn(&Encounter) -> Option<String>| {
                    encounters.iter().map(f).collect::<Vec<_>>()
                };
                let done = sqlx::query(PG_UNNEST)
                    .bind(col(|e| e.id.clone()))
                    .bind(col(|e| e.plate.clone()))
                    .bind(opt(|e| e.state.map(str::to_string)))
                    .bind(encounters.iter().map(|e| e.confidence).collect::<Vec<_>>())
                    .bind(
                        encounters
                            .iter()
                            .map(|e| e.crop.clone())
                            .collect::<Vec<_>>(),
                    )
                    .bind(
                        encounters
                            .iter()
                            .map(|e| e.context_image.clone())
                            .collect::<Vec<_>>(),
                    )
                    .bind(encounters.iter().map(|e| e.lat).collect::<Vec<_>>())
                    .bind(encounters.iter().map(|e| e.lon).collect::<Vec<_>>())
                    .bind(
                        encounters
                            .iter()
                            .map(|e| e.captured_at_ms)
                            .collect::<Vec<_>>(),
                    )
                    .bind(encounters.iter().map(|e| e.device_id).collect::<Vec<_>>())
                    .bind(col(|e| e.camera_id.clone()))
                    .bind(encounters.iter().map(|e| e.user_id).collect::<Vec<_>>())
                    .bind(
                        encounters
                            .iter()
                            .map(|e| e.on_behalf_of_user_id)
                            .collect::<Vec<_>>(),
                    )
                    .bind(col(|e| e.reason_code.clone()))
                    .bind(opt(|e| e.case_number.clone()))
                    .bind(opt(|e| e.justification.clone()))
                    .bind(col(|e| e.session_id.clone()))
                    .bind(col(|e| e.match_tags.clone()))
                    .bind(opt(|e| e.alert_decision.map(str::to_string)))
                    .bind(opt(|e| e.alert_reason.clone()))
                    .bind(received_at_ms)
                    .execute(p)
                    .await?;
                Ok(done.rows_affected())
            }
        }
    }

    /// After a bulk load: refreshes the planner statistics (`ANALYZE`) and, on PostgreSQL,
    /// vacuums `encounters` so the trigram index's pending list is merged (autovacuum does the
    /// same in a running deployment; until then every partial query scans that list).
    pub async fn analyze(&self) -> Result<(), sqlx::Error> {
        match self.db() {
            Db::Sqlite(p) => sqlx::query("ANALYZE").execute(p).await.map(|_| ()),
            Db::Postgres(p) => {
                sqlx::query("VACUUM (ANALYZE) encounters")
                    .execute(p)
                    .await?;
                sqlx::query("ANALYZE").execute(p).await.map(|_| ())
            }
        }
    }
}
