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
    /// `PLATEWATCH_REASON_CODES` (comma separated), `PLATEWATCH_BODY_LIMIT_BYTES` and
    /// `PLATEWATCH_ADMIN_USER` + `PLATEWATCH_ADMIN_PASSWORD`, and those of [`OpsConfig::read_env`].
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
        c.ops.read_env(&var)?;
        c.queries.apply_env()?;
        Ok(c)
    }
}

impl Config {
    /// Where the hot list signing key lives: the configured file, else beside a SQLite
    /// database file, else `platewatch-hotlist.key` in the working directory.
    pub fn hotlist_key_path(&self) -> PathBuf {
        if let Some(p) = &self.ops.hotlist_key_file {
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
            return PathBuf::from("platewatch-hotlist.key");
        }
        PathBuf::from(format!("{file}.hotlist-key"))
    }
}

impl OpsConfig {
    /// `PLATEWATCH_HOTLIST_KEY_FILE`, `PLATEWATCH_HOTLIST_MAX_AGE_SECS`,
    /// `PLATEWATCH_RETENTION_DAYS`, `PLATEWATCH_RETENTION_INTERVAL_SECS`,
    /// `PLATEWATCH_REPORT_GRID_DEG`, `PLATEWATCH_TLS_CERT` + `PLATEWATCH_TLS_KEY`.
    fn read_env(&mut self, var: &dyn Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        fn num<T: std::str::FromStr>(v: &str, name: &'static str) -> Result<T, ConfigError> {
            v.trim().parse().map_err(|_| ConfigError(name))
        }
        if let Some(v) = var("PLATEWATCH_HOTLIST_KEY_FILE") {
            self.hotlist_key_file = Some(PathBuf::from(v));
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

    /// Refuses values no deployment means: a zero retention or interval, a non-positive list
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
}
