//! Server configuration: listen address, database URL, reason codes, size limits and the
//! initial administrator, read from `PLATEWATCH_*` environment variables with defaults.

use std::net::SocketAddr;

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
    /// `PLATEWATCH_ADMIN_USER` + `PLATEWATCH_ADMIN_PASSWORD`.
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
        Ok(c)
    }
}
