//! The repository: one API over two real backends, SQLite (embedded default) and PostgreSQL,
//! each with its own numbered migrations embedded by `sqlx::migrate!`. Queries are written once
//! (`$N` placeholders work on both) and dispatched on the backend enum.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::Row;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::auth::Role;

/// A connection pool on one of the two backends.
#[derive(Debug, Clone)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$p` bound to the backend's pool.
macro_rules! on_pool {
    ($db:expr, $p:ident => $body:expr) => {
        match $db {
            $crate::db::Db::Sqlite($p) => $body,
            $crate::db::Db::Postgres($p) => $body,
        }
    };
}
pub(crate) use on_pool;

/// Runs `$body` in a write transaction bound to `$tx` and commits it; an early return through
/// `?` rolls back. SQLite starts with `BEGIN IMMEDIATE` so a read-then-write transaction never
/// fails to upgrade its lock.
macro_rules! in_tx {
    ($db:expr, $tx:ident => $body:block) => {
        match $db {
            $crate::db::Db::Sqlite(p) => {
                let mut $tx = p.begin_with("BEGIN IMMEDIATE").await?;
                let r = $body;
                $tx.commit().await?;
                r
            }
            $crate::db::Db::Postgres(p) => {
                let mut $tx = p.begin().await?;
                let r = $body;
                $tx.commit().await?;
                r
            }
        }
    };
}
pub(crate) use in_tx;

/// The storage layer shared by every handler.
#[derive(Debug, Clone)]
pub struct Repo {
    db: Db,
    /// Serialises audit appends inside this process (the database serialises across processes)
    /// and holds the audit keys (`with_audit_keys`; random ones until then).
    pub(crate) audit_lock: Arc<crate::audit::AuditWriter>,
    /// SQLite only: the group commit encounter uploads go through (see `group_commit`).
    pub(crate) ingest: crate::group_commit::GroupCommit,
}

/// A user as stored.
#[derive(Clone)]
pub struct UserRow {
    pub id: i64,
    pub username: String,
    pub password_hash: String,
    pub role: Role,
    pub enhanced_queries: bool,
    pub rules_acked_version: Option<i64>,
    /// When an admin disabled the user: every token of theirs is refused from then on.
    pub disabled_at_ms: Option<i64>,
}

impl std::fmt::Debug for UserRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRow")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("role", &self.role)
            .field("enhanced_queries", &self.enhanced_queries)
            .field("rules_acked_version", &self.rules_acked_version)
            .field("disabled_at_ms", &self.disabled_at_ms)
            .finish_non_exhaustive()
    }
}

/// What revoking a device did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoked {
    Now,
    Already,
    NotFound,
}

fn user_from_row<R: Row>(row: &R) -> Result<UserRow, sqlx::Error>
where
    for<'c> &'c str: sqlx::ColumnIndex<R>,
    i64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    bool: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let role: String = row.try_get("role")?;
    Ok(UserRow {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        password_hash: row.try_get("password_hash")?,
        role: Role::parse(&role).ok_or_else(|| sqlx::Error::Decode("unknown role".into()))?,
        enhanced_queries: row.try_get("enhanced_queries")?,
        rules_acked_version: row.try_get("rules_acked_version")?,
        disabled_at_ms: row.try_get("disabled_at_ms")?,
    })
}

const USER_COLUMNS: &str = "u.id, u.username, u.password_hash, u.role, u.enhanced_queries, u.rules_acked_version, \
     u.disabled_at_ms";

impl Repo {
    /// Connects to `url` (`postgres://…`, `postgresql://…`, or a SQLite URL/path, created if
    /// missing) and applies that backend's migrations.
    pub async fn connect(url: &str) -> Result<Self, sqlx::Error> {
        Self::from_db(Self::pool(url, true).await?).await
    }

    /// Connects to an existing database without applying migrations (audit tools must not
    /// change the schema of the database they inspect).
    pub async fn connect_existing(url: &str) -> Result<Self, sqlx::Error> {
        Ok(Self {
            db: Self::pool(url, false).await?,
            audit_lock: crate::audit::AuditWriter::new(crate::audit::AuditKeys::generate()),
            ingest: Default::default(),
        })
    }

    async fn pool(url: &str, create: bool) -> Result<Db, sqlx::Error> {
        let db = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = PgPoolOptions::new()
                .max_connections(10)
                .acquire_timeout(Duration::from_secs(10))
                .connect(url)
                .await?;
            Db::Postgres(pool)
        } else {
            let opts = if url.starts_with("sqlite:") {
                SqliteConnectOptions::from_str(url)?
            } else {
                SqliteConnectOptions::new().filename(url)
            };
            let opts = opts
                .create_if_missing(create)
                .journal_mode(SqliteJournalMode::Wal)
                // WAL + NORMAL: commits do not fsync; the WAL is synced at checkpoints. The
                // database stays consistent after any crash; an OS crash or power loss may
                // lose the last commits (see README, "Durability").
                .synchronous(SqliteSynchronous::Normal)
                // Checkpoint every ~40 MB of WAL rather than every 4 MB: a page that ingest
                // rewrites many times between checkpoints is copied back once.
                .pragma("wal_autocheckpoint", "10000")
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10));
            let pool = SqlitePoolOptions::new()
                .max_connections(4)
                .connect_with(opts)
                .await?;
            Db::Sqlite(pool)
        };
        Ok(db)
    }

    /// Wraps an existing pool and applies its backend's migrations.
    pub async fn from_db(db: Db) -> Result<Self, sqlx::Error> {
        match &db {
            Db::Sqlite(p) => sqlx::migrate!("migrations/sqlite").run(p).await?,
            Db::Postgres(p) => sqlx::migrate!("migrations/postgres").run(p).await?,
        }
        Ok(Self {
            db,
            audit_lock: crate::audit::AuditWriter::new(crate::audit::AuditKeys::generate()),
            ingest: Default::default(),
        })
    }

    /// The underlying pool (tests use it for raw SQL).
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn backend(&self) -> &'static str {
        match self.db {
            Db::Sqlite(_) => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }

    pub async fn count_users(&self) -> Result<i64, sqlx::Error> {
        on_pool!(&self.db, p => sqlx::query_scalar("SELECT COUNT(*) FROM users").fetch_one(p).await)
    }

    /// Inserts a user; a taken username is a unique violation.
    pub async fn create_user(
        &self,
        username: &str,
        password_hash: &str,
        role: Role,
        enhanced_queries: bool,
        now_ms: i64,
    ) -> Result<i64, sqlx::Error> {
        const SQL: &str = "INSERT INTO users (username, password_hash, role, enhanced_queries, \
                           created_at_ms) VALUES ($1, $2, $3, $4, $5) RETURNING id";
        on_pool!(&self.db, p => sqlx::query_scalar(SQL)
            .bind(username)
            .bind(password_hash)
            .bind(role.as_str())
            .bind(enhanced_queries)
            .bind(now_ms)
            .fetch_one(p)
            .await)
    }

    pub async fn user_by_name(&self, username: &str) -> Result<Option<UserRow>, sqlx::Error> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users u WHERE u.username = $1");
        on_pool!(&self.db, p => {
            let row = sqlx::query(&sql).bind(username).fetch_optional(p).await?;
            row.as_ref().map(user_from_row).transpose()
        })
    }

    pub async fn user_id_by_name(&self, username: &str) -> Result<Option<i64>, sqlx::Error> {
        on_pool!(&self.db, p => sqlx::query_scalar("SELECT id FROM users WHERE username = $1")
            .bind(username)
            .fetch_optional(p)
            .await)
    }

    pub async fn set_rules_acked(&self, user_id: i64, version: i64) -> Result<(), sqlx::Error> {
        on_pool!(&self.db, p => sqlx::query("UPDATE users SET rules_acked_version = $1 WHERE id = $2")
            .bind(version)
            .bind(user_id)
            .execute(p)
            .await
            .map(|_| ()))
    }

    /// The current rules of behaviour: (version, text).
    pub async fn current_rules(&self) -> Result<Option<(i64, String)>, sqlx::Error> {
        const SQL: &str = "SELECT version, body FROM rules ORDER BY version DESC LIMIT 1";
        on_pool!(&self.db, p => {
            let row = sqlx::query(SQL).fetch_optional(p).await?;
            row.map(|r| -> Result<_, sqlx::Error> { Ok((r.try_get("version")?, r.try_get("body")?)) })
                .transpose()
        })
    }

    pub async fn current_rules_version(&self) -> Result<Option<i64>, sqlx::Error> {
        on_pool!(&self.db, p => sqlx::query_scalar("SELECT MAX(version) FROM rules").fetch_one(p).await)
    }

    /// Stores a new version of the rules text; returns its version number.
    pub async fn add_rules(&self, text: &str, by: i64, now_ms: i64) -> Result<i64, sqlx::Error> {
        const SQL: &str = "INSERT INTO rules (body, created_by, created_at_ms) VALUES ($1, $2, $3) \
                           RETURNING version";
        on_pool!(&self.db, p => sqlx::query_scalar(SQL).bind(text).bind(by).bind(now_ms).fetch_one(p).await)
    }

    pub async fn create_session(
        &self,
        user_id: i64,
        token_hash: &str,
        now_ms: i64,
        expires_at_ms: i64,
    ) -> Result<i64, sqlx::Error> {
        const SQL: &str = "INSERT INTO sessions (user_id, token_hash, created_at_ms, expires_at_ms) \
                           VALUES ($1, $2, $3, $4) RETURNING id";
        on_pool!(&self.db, p => sqlx::query_scalar(SQL)
            .bind(user_id)
            .bind(token_hash)
            .bind(now_ms)
            .bind(expires_at_ms)
            .fetch_one(p)
            .await)
    }

    /// The session id and the enabled user behind a live (unexpired, unrevoked) session token
    /// hash.
    pub async fn user_by_session(
        &self,
        token_hash: &str,
        now_ms: i64,
    ) -> Result<Option<(i64, UserRow)>, sqlx::Error> {
        let sql = format!(
            "SELECT s.id AS session_id, {USER_COLUMNS} FROM sessions s JOIN users u \
             ON u.id = s.user_id WHERE s.token_hash = $1 AND s.revoked_at_ms IS NULL \
             AND s.expires_at_ms > $2 AND u.disabled_at_ms IS NULL"
        );
        on_pool!(&self.db, p => {
            let row = sqlx::query(&sql).bind(token_hash).bind(now_ms).fetch_optional(p).await?;
            row.map(|r| -> Result<_, sqlx::Error> { Ok((r.try_get("session_id")?, user_from_row(&r)?)) })
                .transpose()
        })
    }

    /// Revokes one login session; `false` when it was not live.
    pub async fn revoke_session(&self, id: i64, now_ms: i64) -> Result<bool, sqlx::Error> {
        const SQL: &str =
            "UPDATE sessions SET revoked_at_ms = $1 WHERE id = $2 AND revoked_at_ms IS NULL";
        on_pool!(&self.db, p => Ok(sqlx::query(SQL).bind(now_ms).bind(id).execute(p).await?.rows_affected() > 0))
    }

    /// Revokes every live login session of a user (device tokens stay: they are revoked one
    /// by one, or all at once by disabling the user). Returns how many were live.
    pub async fn revoke_user_sessions(
        &self,
        user_id: i64,
        now_ms: i64,
    ) -> Result<u64, sqlx::Error> {
        const SQL: &str = "UPDATE sessions SET revoked_at_ms = $1 \
                           WHERE user_id = $2 AND revoked_at_ms IS NULL AND expires_at_ms > $1";
        on_pool!(&self.db, p => Ok(sqlx::query(SQL).bind(now_ms).bind(user_id).execute(p).await?.rows_affected()))
    }

    /// A user by id, enabled or not.
    pub async fn user_by_id(&self, id: i64) -> Result<Option<UserRow>, sqlx::Error> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users u WHERE u.id = $1");
        on_pool!(&self.db, p => {
            let row = sqlx::query(&sql).bind(id).fetch_optional(p).await?;
            row.as_ref().map(user_from_row).transpose()
        })
    }

    /// Disables (`Some(now)`) or enables (`None`) a user; `false` when there is no such user.
    pub async fn set_user_disabled(
        &self,
        id: i64,
        disabled_at_ms: Option<i64>,
    ) -> Result<bool, sqlx::Error> {
        const SQL: &str = "UPDATE users SET disabled_at_ms = $1 WHERE id = $2";
        on_pool!(&self.db, p => Ok(sqlx::query(SQL).bind(disabled_at_ms).bind(id).execute(p).await?.rows_affected() > 0))
    }

    /// Whether a user has `username` in any case (`Admin` beside `admin` is refused).
    pub async fn username_taken_nocase(&self, username: &str) -> Result<bool, sqlx::Error> {
        const SQL: &str = "SELECT COUNT(*) FROM users WHERE lower(username) = lower($1)";
        on_pool!(&self.db, p => Ok(sqlx::query_scalar::<_, i64>(SQL).bind(username).fetch_one(p).await? > 0))
    }

    pub async fn create_device(
        &self,
        user_id: i64,
        name: &str,
        token_hash: &str,
        now_ms: i64,
        expires_at_ms: i64,
    ) -> Result<i64, sqlx::Error> {
        const SQL: &str = "INSERT INTO devices (user_id, name, token_hash, created_at_ms, \
                           expires_at_ms) VALUES ($1, $2, $3, $4, $5) RETURNING id";
        on_pool!(&self.db, p => sqlx::query_scalar(SQL)
            .bind(user_id)
            .bind(name)
            .bind(token_hash)
            .bind(now_ms)
            .bind(expires_at_ms)
            .fetch_one(p)
            .await)
    }

    /// The device id and its enabled user behind a live device token hash: the device's
    /// unexpired token, or its previous token within the grace after a renewal; never a
    /// revoked device.
    pub async fn user_by_device(
        &self,
        token_hash: &str,
        now_ms: i64,
    ) -> Result<Option<(i64, UserRow)>, sqlx::Error> {
        let sql = format!(
            "SELECT d.id AS device_id, {USER_COLUMNS} FROM devices d JOIN users u \
             ON u.id = d.user_id WHERE ((d.token_hash = $1 AND d.expires_at_ms > $2) \
             OR (d.prev_token_hash = $1 AND d.prev_valid_until_ms > $2)) \
             AND d.revoked_at_ms IS NULL AND u.disabled_at_ms IS NULL"
        );
        on_pool!(&self.db, p => {
            let row = sqlx::query(&sql).bind(token_hash).bind(now_ms).fetch_optional(p).await?;
            row.map(|r| -> Result<_, sqlx::Error> { Ok((r.try_get("device_id")?, user_from_row(&r)?)) })
                .transpose()
        })
    }

    /// Rotates a live device's token: `new_hash` becomes its token until `expires_at_ms`; the
    /// token it replaces stays valid until `grace_until_ms` (an answer lost on the way must
    /// not strand the device). A renewal made with the previous token within its grace
    /// replaces the current one instead (the device never received it). `false` when the
    /// device is revoked.
    pub async fn renew_device(
        &self,
        id: i64,
        used_hash: &str,
        new_hash: &str,
        expires_at_ms: i64,
        grace_until_ms: i64,
    ) -> Result<bool, sqlx::Error> {
        const SQL: &str = "UPDATE devices SET \
             prev_token_hash = CASE WHEN prev_token_hash = $2 THEN prev_token_hash ELSE token_hash END, \
             prev_valid_until_ms = CASE WHEN prev_token_hash = $2 THEN prev_valid_until_ms ELSE $5 END, \
             token_hash = $3, expires_at_ms = $4 \
             WHERE id = $1 AND revoked_at_ms IS NULL";
        on_pool!(&self.db, p => Ok(sqlx::query(SQL)
            .bind(id)
            .bind(used_hash)
            .bind(new_hash)
            .bind(expires_at_ms)
            .bind(grace_until_ms)
            .execute(p)
            .await?
            .rows_affected() > 0))
    }

    pub async fn revoke_device(&self, id: i64, now_ms: i64) -> Result<Revoked, sqlx::Error> {
        const SQL: &str =
            "UPDATE devices SET revoked_at_ms = $1 WHERE id = $2 AND revoked_at_ms IS NULL";
        const EXISTS: &str = "SELECT COUNT(*) FROM devices WHERE id = $1";
        on_pool!(&self.db, p => {
            let done = sqlx::query(SQL).bind(now_ms).bind(id).execute(p).await?.rows_affected();
            if done > 0 {
                return Ok(Revoked::Now);
            }
            let n: i64 = sqlx::query_scalar(EXISTS).bind(id).fetch_one(p).await?;
            Ok(if n > 0 { Revoked::Already } else { Revoked::NotFound })
        })
    }
}
