//! Server configuration: listen address, database URL, reason codes, size limits and the
//! initial administrator, read from `PLATEWATCH_*` environment variables with defaults.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Size limits on requests and uploaded encounters.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request body accepted, in bytes (413 beyond it).
    pub body_bytes: usize,
    /// Most encounters in one upload batch.
    pub batch_rows: usize,
    /// Largest plate crop, in bytes after base64 decoding.
    pub crop_bytes: usize,
    /// Largest context image, in bytes after base64 decoding.
    pub context_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            body_bytes: 32 * 1024 * 1024,
            batch_rows: 500,
            crop_bytes: 256 * 1024,
            context_bytes: 2 * 1024 * 1024,
        }
    }
}

/// How long a client may take and how many may connect at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// From a connection's start, or the end of its last response, until a request's headers
    /// are in (so also the idle timeout of a kept-alive connection), and for the TLS handshake.
    pub header_timeout_ms: u64,
    /// From a request's headers until its whole body is in.
    pub body_timeout_ms: u64,
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_timeout_ms: 10_000,
            body_timeout_ms: 30_000,
            max_connections: 1024,
        }
    }
}

/// Everything `serve` needs.
#[derive(Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// `sqlite://FILE` (created if missing) or `postgres://…`.
    pub database_url: String,
    /// Reason codes an encounter (and later a query) may give.
    pub reason_codes: Vec<String>,
    pub limits: Limits,
    /// Lifetime of a login session token, in milliseconds.
    pub session_ttl_ms: i64,
    /// Lifetime of a device token, in milliseconds; `POST /v1/devices/renew` (which sync
    /// calls when half of it is gone) issues a new one.
    pub device_ttl_ms: i64,
    /// How long the token a renewal replaces stays valid.
    pub device_renew_grace_ms: i64,
    /// Login throttling.
    pub login: crate::throttle::LoginLimits,
    /// Timeouts and the connection cap.
    pub connections: ConnectionLimits,
    /// Created as an admin when the database holds no user yet: (username, password).
    pub bootstrap_admin: Option<(String, String)>,
    /// Hot list publishing, retention, reports and TLS.
    pub ops: OpsConfig,
    /// Encounter queries: the 10k/5k rule and the review flags.
    pub queries: crate::queries::QueryConfig,
}

/// Hot list signing, retention, report and TLS settings.
#[derive(Debug, Clone)]
pub struct OpsConfig {
    /// The ed25519 key that signs hot list payloads: base64 of its 32-byte seed. Created (mode
    /// 0600) on first start when missing. Default: beside the SQLite file
    /// (`FILE.hotlist-key`), or `platewatch-hotlist.key` in the working directory.
    pub hotlist_key_file: Option<PathBuf>,
    /// The audit chain's HMAC-SHA256 key: base64 of 32 random bytes, kept out of the database
    /// so that writing the database is not enough to rewrite the chain. Created (mode 0600)
    /// on first start when missing. Default: beside the SQLite file (`FILE.audit-key`), or
    /// `platewatch-audit.key` in the working directory.
    pub audit_key_file: Option<PathBuf>,
    /// The ed25519 key that signs audit checkpoints: base64 of its 32-byte seed, created like
    /// the others. Default: `FILE.audit-signing-key`, or `platewatch-audit-signing.key`.
    pub audit_signing_key_file: Option<PathBuf>,
    /// How often `serve` signs a checkpoint of the audit chain's head (it also signs one at
    /// start and on every audit export).
    pub audit_checkpoint_interval_secs: u64,
    /// Age after which devices flag a published list stale, unless the upload says otherwise.
    pub hotlist_max_age_secs: i64,
    /// Encounters older than this are deleted unless their case is on hold.
    pub retention_days: u32,
    /// How often `serve` runs the retention job (it also runs once at start).
    pub retention_interval_secs: u64,
    /// Side of the square latitude/longitude grid cells that reports count by, in degrees.
    pub report_grid_deg: f64,
    /// PEM certificate chain and private key: when given, `serve` speaks HTTPS only.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

impl Default for OpsConfig {
    fn default() -> Self {
        Self {
            hotlist_key_file: None,
            audit_key_file: None,
            audit_signing_key_file: None,
            audit_checkpoint_interval_secs: 600,
            hotlist_max_age_secs: 24 * 3600,
            retention_days: 730,
            retention_interval_secs: 3600,
            report_grid_deg: 0.01,
            tls_cert: None,
            tls_key: None,
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field(
                "database",
                &self.database_url.split(':').next().unwrap_or(""),
            )
            .field("reason_codes", &self.reason_codes)
            .field("limits", &self.limits)
            .field("session_ttl_ms", &self.session_ttl_ms)
            .field("device_ttl_ms", &self.device_ttl_ms)
            .field("device_renew_grace_ms", &self.device_renew_grace_ms)
            .field("login", &self.login)
            .field("connections", &self.connections)
            .field(
                "bootstrap_admin",
                &self.bootstrap_admin.as_ref().map(|(u, _)| u),
            )
            .field("ops", &self.ops)
            .field("queries", &self.queries)
            .finish()
    }
}

/// Reason codes accepted when none are configured.
pub const DEFAULT_REASON_CODES: [&str; 6] = [
    "patrol",
    "investigation",
    "stolen-vehicle",
    "wanted-person",
    "missing-person",
    "amber-alert",
];

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: "sqlite://platewatch-server.db".into(),
            reason_codes: DEFAULT_REASON_CODES.iter().map(|s| s.to_string()).collect(),
            limits: Limits::default(),
            session_ttl_ms: 12 * 3600 * 1000,
            device_ttl_ms: 30 * 24 * 3600 * 1000,
            device_renew_grace_ms: 3600 * 1000,
            login: crate::throttle::LoginLimits::default(),
            connections: ConnectionLimits::default(),
            bootstrap_admin: None,
            ops: OpsConfig::default(),
            queries: crate::queries::QueryConfig::default(),
        }
    }
}

/// A configuration variable that could not be used.
#[derive(Debug, thiserror::Error)]
#[error("bad value for {0}")]
pub struct ConfigError(pub &'static str);

impl Config {
    /// Defaults overridden by `PLATEWATCH_LISTEN`, `PLATEWATCH_DATABASE_URL`,
    /// `PLATEWATCH_REASON_CODES` (comma separated), `PLATEWATCH_BODY_LIMIT_BYTES`,
    /// `PLATEWATCH_ADMIN_USER` + `PLATEWATCH_ADMIN_PASSWORD`, `PLATEWATCH_DEVICE_TOKEN_DAYS`,
    /// `PLATEWATCH_LOGIN_FREE_FAILURES_USER`, `PLATEWATCH_LOGIN_FREE_FAILURES_ADDR`,
    /// `PLATEWATCH_LOGIN_MAX_LOCK_SECS`, `PLATEWATCH_HEADER_TIMEOUT_SECS`,
    /// `PLATEWATCH_BODY_TIMEOUT_SECS`, `PLATEWATCH_MAX_CONNECTIONS`, and those of
    /// [`OpsConfig::read_env`].
    pub fn from_env() -> Result<Self, ConfigError> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let mut c = Self::default();
        if let Some(v) = var("PLATEWATCH_LISTEN") {
            c.listen = v
                .trim()
                .parse()
                .map_err(|_| ConfigError("PLATEWATCH_LISTEN"))?;
        }
        if let Some(v) = var("PLATEWATCH_DATABASE_URL") {
            c.database_url = v;
        }
        if let Some(v) = var("PLATEWATCH_REASON_CODES") {
            c.reason_codes = v
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
            if c.reason_codes.is_empty() {
                return Err(ConfigError("PLATEWATCH_REASON_CODES"));
            }
        }
        if let Some(v) = var("PLATEWATCH_BODY_LIMIT_BYTES") {
            c.limits.body_bytes = v
                .trim()
                .parse()
                .map_err(|_| ConfigError("PLATEWATCH_BODY_LIMIT_BYTES"))?;
        }
        match (
            var("PLATEWATCH_ADMIN_USER"),
            var("PLATEWATCH_ADMIN_PASSWORD"),
        ) {
            (Some(u), Some(p)) => c.bootstrap_admin = Some((u, p)),
            (None, None) => {}
            (Some(_), None) => return Err(ConfigError("PLATEWATCH_ADMIN_PASSWORD")),
            (None, Some(_)) => return Err(ConfigError("PLATEWATCH_ADMIN_USER")),
        }
        c.read_guard_env(&var)?;
        c.ops.read_env(&var)?;
        c.queries.apply_env()?;
        Ok(c)
    }

    fn read_guard_env(&mut self, var: &dyn Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        fn positive<T: std::str::FromStr + PartialOrd + Default>(
            var: &dyn Fn(&str) -> Option<String>,
            name: &'static str,
        ) -> Result<Option<T>, ConfigError> {
            match var(name) {
                None => Ok(None),
                Some(v) => match v.trim().parse::<T>() {
                    Ok(n) if n > T::default() => Ok(Some(n)),
                    _ => Err(ConfigError(name)),
                },
            }
        }
        const DAY_MS: i64 = 24 * 3600 * 1000;
        if let Some(d) = positive::<i64>(var, "PLATEWATCH_DEVICE_TOKEN_DAYS")? {
            self.device_ttl_ms = d
                .checked_mul(DAY_MS)
                .ok_or(ConfigError("PLATEWATCH_DEVICE_TOKEN_DAYS"))?;
        }
        if let Some(n) = positive(var, "PLATEWATCH_LOGIN_FREE_FAILURES_USER")? {
            self.login.free_per_user = n;
        }
        if let Some(n) = positive(var, "PLATEWATCH_LOGIN_FREE_FAILURES_ADDR")? {
            self.login.free_per_addr = n;
        }
        if let Some(s) = positive::<i64>(var, "PLATEWATCH_LOGIN_MAX_LOCK_SECS")? {
            self.login.max_lock_ms = s.saturating_mul(1000);
        }
        if let Some(s) = positive::<u64>(var, "PLATEWATCH_HEADER_TIMEOUT_SECS")? {
            self.connections.header_timeout_ms = s.saturating_mul(1000);
        }
        if let Some(s) = positive::<u64>(var, "PLATEWATCH_BODY_TIMEOUT_SECS")? {
            self.connections.body_timeout_ms = s.saturating_mul(1000);
        }
        if let Some(n) = positive(var, "PLATEWATCH_MAX_CONNECTIONS")? {
            self.connections.max_connections = n;
        }
        Ok(())
    }
}

impl Config {
    /// Where the hot list signing key lives: the configured file, else beside a SQLite
    /// database file, else `platewatch-hotlist.key` in the working directory.
    pub fn hotlist_key_path(&self) -> PathBuf {
        self.key_path(
            &self.ops.hotlist_key_file,
            "hotlist-key",
            "platewatch-hotlist.key",
        )
    }

    /// Where the audit chain's HMAC key lives (see [`OpsConfig::audit_key_file`]).
    pub fn audit_key_path(&self) -> PathBuf {
        self.key_path(
            &self.ops.audit_key_file,
            "audit-key",
            "platewatch-audit.key",
        )
    }

    /// Where the audit checkpoint signing key lives (see
    /// [`OpsConfig::audit_signing_key_file`]).
    pub fn audit_signing_key_path(&self) -> PathBuf {
        self.key_path(
            &self.ops.audit_signing_key_file,
            "audit-signing-key",
            "platewatch-audit-signing.key",
        )
    }

    /// `configured`, else `FILE.suffix` beside a SQLite database file, else `fallback` in the
    /// working directory (PostgreSQL, in-memory SQLite).
    fn key_path(&self, configured: &Option<PathBuf>, suffix: &str, fallback: &str) -> PathBuf {
        if let Some(p) = configured {
            return p.clone();
        }
        let url = self.database_url.as_str();
        let is_pg = url.starts_with("postgres://") || url.starts_with("postgresql://");
        let file = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        let file = file.split('?').next().unwrap_or("");
        if is_pg || file.is_empty() || file.contains(":memory:") {
            return PathBuf::from(fallback);
        }
        PathBuf::from(format!("{file}.{suffix}"))
    }
}

impl OpsConfig {
    /// `PLATEWATCH_HOTLIST_KEY_FILE`, `PLATEWATCH_AUDIT_KEY_FILE`,
    /// `PLATEWATCH_AUDIT_SIGNING_KEY_FILE`, `PLATEWATCH_AUDIT_CHECKPOINT_SECS`,
    /// `PLATEWATCH_HOTLIST_MAX_AGE_SECS`,
    /// `PLATEWATCH_RETENTION_DAYS`, `PLATEWATCH_RETENTION_INTERVAL_SECS`,
    /// `PLATEWATCH_REPORT_GRID_DEG`, `PLATEWATCH_TLS_CERT` + `PLATEWATCH_TLS_KEY`.
    fn read_env(&mut self, var: &dyn Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        fn num<T: std::str::FromStr>(v: &str, name: &'static str) -> Result<T, ConfigError> {
            v.trim().parse().map_err(|_| ConfigError(name))
        }
        if let Some(v) = var("PLATEWATCH_HOTLIST_KEY_FILE") {
            self.hotlist_key_file = Some(PathBuf::from(v));
        }
        if let Some(v) = var("PLATEWATCH_AUDIT_KEY_FILE") {
            self.audit_key_file = Some(PathBuf::from(v));
        }
        if let Some(v) = var("PLATEWATCH_AUDIT_SIGNING_KEY_FILE") {
            self.audit_signing_key_file = Some(PathBuf::from(v));
        }
        if let Some(v) = var("PLATEWATCH_AUDIT_CHECKPOINT_SECS") {
            self.audit_checkpoint_interval_secs = num(&v, "PLATEWATCH_AUDIT_CHECKPOINT_SECS")?;
        }
        if let Some(v) = var("PLATEWATCH_HOTLIST_MAX_AGE_SECS") {
            self.hotlist_max_age_secs = num(&v, "PLATEWATCH_HOTLIST_MAX_AGE_SECS")?;
        }
        if let Some(v) = var("PLATEWATCH_RETENTION_DAYS") {
            self.retention_days = num(&v, "PLATEWATCH_RETENTION_DAYS")?;
        }
        if let Some(v) = var("PLATEWATCH_RETENTION_INTERVAL_SECS") {
            self.retention_interval_secs = num(&v, "PLATEWATCH_RETENTION_INTERVAL_SECS")?;
        }
        if let Some(v) = var("PLATEWATCH_REPORT_GRID_DEG") {
            self.report_grid_deg = num(&v, "PLATEWATCH_REPORT_GRID_DEG")?;
        }
        self.tls_cert = var("PLATEWATCH_TLS_CERT")
            .map(PathBuf::from)
            .or(self.tls_cert.take());
        self.tls_key = var("PLATEWATCH_TLS_KEY")
            .map(PathBuf::from)
            .or(self.tls_key.take());
        self.validate()
    }

    /// Refuses values no deployment means: a zero retention, retention or checkpoint interval,
    /// a non-positive list
    /// age, a grid finer than 0.0001 or coarser than 10 degrees, a certificate without a key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.hotlist_max_age_secs <= 0 {
            return Err(ConfigError("PLATEWATCH_HOTLIST_MAX_AGE_SECS"));
        }
        if self.retention_days == 0 {
            return Err(ConfigError("PLATEWATCH_RETENTION_DAYS"));
        }
        if self.retention_interval_secs == 0 {
            return Err(ConfigError("PLATEWATCH_RETENTION_INTERVAL_SECS"));
        }
        if self.audit_checkpoint_interval_secs == 0 {
            return Err(ConfigError("PLATEWATCH_AUDIT_CHECKPOINT_SECS"));
        }
        if !(self.report_grid_deg.is_finite() && (0.0001..=10.0).contains(&self.report_grid_deg)) {
            return Err(ConfigError("PLATEWATCH_REPORT_GRID_DEG"));
        }
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => Err(ConfigError("PLATEWATCH_TLS_KEY")),
            (None, Some(_)) => Err(ConfigError("PLATEWATCH_TLS_CERT")),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hotlist_key_sits_beside_the_sqlite_file() {
        let at = |url: &str| {
            Config {
                database_url: url.into(),
                ..Config::default()
            }
            .hotlist_key_path()
        };
        assert_eq!(
            at("sqlite://platewatch-server.db"),
            PathBuf::from("platewatch-server.db.hotlist-key")
        );
        assert_eq!(
            at("sqlite:///var/lib/pw/db.sqlite?mode=rwc"),
            PathBuf::from("/var/lib/pw/db.sqlite.hotlist-key")
        );
        assert_eq!(at("/tmp/x.db"), PathBuf::from("/tmp/x.db.hotlist-key"));
        assert_eq!(
            at("postgres://u@h/db"),
            PathBuf::from("platewatch-hotlist.key")
        );
        assert_eq!(
            at("sqlite::memory:"),
            PathBuf::from("platewatch-hotlist.key")
        );
        let mut c = Config::default();
        c.ops.hotlist_key_file = Some("/etc/pw/key".into());
        assert_eq!(c.hotlist_key_path(), PathBuf::from("/etc/pw/key"));
    }

    #[test]
    fn audit_keys_sit_beside_the_sqlite_file_apart_from_the_hot_list_key() {
        let c = Config {
            database_url: "sqlite:///var/lib/pw/db.sqlite".into(),
            ..Config::default()
        };
        assert_eq!(
            c.audit_key_path(),
            PathBuf::from("/var/lib/pw/db.sqlite.audit-key")
        );
        assert_eq!(
            c.audit_signing_key_path(),
            PathBuf::from("/var/lib/pw/db.sqlite.audit-signing-key")
        );
        let mut pg = Config {
            database_url: "postgres://u@h/db".into(),
            ..Config::default()
        };
        assert_eq!(pg.audit_key_path(), PathBuf::from("platewatch-audit.key"));
        assert_eq!(
            pg.audit_signing_key_path(),
            PathBuf::from("platewatch-audit-signing.key")
        );
        pg.ops.audit_key_file = Some("/etc/pw/audit".into());
        pg.ops.audit_signing_key_file = Some("/etc/pw/audit-sign".into());
        assert_eq!(pg.audit_key_path(), PathBuf::from("/etc/pw/audit"));
        assert_eq!(
            pg.audit_signing_key_path(),
            PathBuf::from("/etc/pw/audit-sign")
        );
        let mut ops = OpsConfig::default();
        assert_eq!(ops.audit_checkpoint_interval_secs, 600);
        ops.audit_checkpoint_interval_secs = 0;
        assert!(matches!(
            ops.validate(),
            Err(ConfigError("PLATEWATCH_AUDIT_CHECKPOINT_SECS"))
        ));
    }
}
