//! Platewatch backend server: identity and roles, a hash-chained audit log and encounter
//! ingest over one repository with two backends (SQLite embedded, PostgreSQL for production).
//!
//! `app(state)` builds the router (tests drive it with `oneshot` or over a loopback socket);
//! `serve(config)` connects, migrates, creates the first admin if needed and serves.

pub mod areas;
pub mod audit;
pub mod auth;
pub mod bulk;
pub mod config;
pub mod db;
pub mod error;
pub mod export;
pub mod group_commit;
pub mod ingest;
pub mod keyfile;
pub mod listen;
pub mod openapi;
pub mod publish;
pub mod queries;
pub mod reports;
pub mod retention;
pub mod routes;
pub mod sessions;
pub mod throttle;
pub mod tls;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, patch, post};

pub use audit::{AuditEvent, ChainStatus};
pub use auth::{Principal, Role};
pub use config::{Config, Limits};
pub use db::{Db, Repo};
pub use error::ApiError;

/// Shared by every handler.
#[derive(Debug, Clone)]
pub struct AppState {
    pub repo: Repo,
    pub config: Arc<Config>,
    /// Signs hot list payloads. `new` makes a random one; `serve` loads the persisted key.
    pub signer: Arc<publish::HotlistSigner>,
    /// Failed sign-ins per username and client address.
    pub throttle: Arc<throttle::LoginThrottle>,
}

impl AppState {
    pub fn new(repo: Repo, config: Config) -> Self {
        Self {
            repo,
            throttle: Arc::new(throttle::LoginThrottle::new(config.login)),
            config: Arc::new(config),
            signer: Arc::new(publish::HotlistSigner::generate()),
        }
    }

    /// The same state signing hot lists with `signer`.
    pub fn with_signer(mut self, signer: publish::HotlistSigner) -> Self {
        self.signer = Arc::new(signer);
        self
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Every route; bodies larger than the configured limit get 413.
pub fn app(state: AppState) -> Router {
    let limit = state.config.limits.body_bytes;
    let https = state.config.ops.tls_cert.is_some();
    Router::new()
        .route("/v1/login", post(routes::login))
        .route("/v1/logout", post(routes::logout))
        .route("/v1/devices", post(routes::register_device))
        .route("/v1/devices/renew", post(routes::renew_device))
        .route("/v1/devices/{id}", delete(routes::revoke_device))
        .route("/v1/rules", get(routes::get_rules).put(routes::set_rules))
        .route("/v1/reason-codes", get(routes::reason_codes))
        .route("/v1/users", post(routes::post_user))
        .route("/v1/users/{id}", patch(routes::patch_user))
        .route(
            "/v1/users/{id}/revoke-sessions",
            post(routes::revoke_user_sessions),
        )
        .route("/v1/encounters", post(ingest::upload))
        .route("/v1/audit/verify", get(routes::verify_audit))
        .route("/v1/queries/plate", post(queries::plate))
        .route("/v1/queries/partial", post(queries::partial))
        .route("/v1/queries/polygon", post(queries::polygon))
        .route("/v1/queries/common", post(queries::common))
        .route("/v1/sessions", post(sessions::start))
        .route("/v1/sessions/{id}/end", post(sessions::end))
        .route("/v1/hotlists", get(publish::index).post(publish::upload))
        .route("/v1/hotlists/key", get(publish::key))
        .route("/v1/hotlists/{name}", delete(publish::retire))
        .route("/v1/hotlists/{name}/snapshot", get(publish::snapshot))
        .route("/v1/hotlists/{name}/delta", get(publish::delta))
        .route("/v1/audit/export", get(export::export_handler))
        .route("/v1/audit/checkpoints", get(audit::checkpoints))
        .route("/v1/audit/key", get(audit::key))
        .route("/v1/holds", get(retention::list).post(retention::create))
        .route("/v1/holds/{id}", delete(retention::release))
        .route("/v1/reports/monthly", get(reports::monthly))
        .route("/openapi.json", get(openapi::serve_document))
        .fallback(|| async { ApiError::NotFound("no such endpoint") })
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::map_response(move |r| {
            security_headers(r, https)
        }))
        .with_state(state)
}

/// Headers on every answer: nothing is cached (answers carry tokens, plates and audit rows),
/// no content sniffing, no framing; over HTTPS, HSTS for a year.
async fn security_headers(
    mut response: axum::response::Response,
    https: bool,
) -> axum::response::Response {
    use axum::http::{HeaderValue, header};
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if https {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    response
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("bootstrap admin: {0}")]
    Bootstrap(ApiError),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    HotlistKey(#[from] publish::KeyFileError),
    #[error("{0}")]
    AuditKey(keyfile::KeyFileError),
    #[error("{0}")]
    Tls(#[from] tls::TlsError),
}

/// Creates the configured admin when the database holds no user. Returns whether it did.
/// Without configured credentials an empty database gets `admin` with a random password,
/// printed once on stderr.
pub async fn bootstrap(state: &AppState) -> Result<bool, ServeError> {
    if state.repo.count_users().await? > 0 {
        return Ok(false);
    }
    let (username, password, generated) = match &state.config.bootstrap_admin {
        Some((u, p)) => (u.clone(), p.clone(), false),
        None => ("admin".to_string(), auth::new_token(""), true),
    };
    let req = routes::CreateUser {
        username: username.clone(),
        password: password.clone(),
        role: "admin".into(),
        enhanced_queries: false,
    };
    let (id, _) = routes::create_user(state, &req)
        .await
        .map_err(ServeError::Bootstrap)?;
    state
        .repo
        .append_audit(
            AuditEvent {
                user_id: Some(id),
                username: Some(username.clone()),
                action: "user.bootstrap",
                outcome: "ok",
                criteria: serde_json::json!({ "role": "admin", "generated_password": generated }),
                ..AuditEvent::default()
            },
            now_ms(),
        )
        .await?;
    if generated {
        eprintln!("platewatch: created the initial admin `{username}` with password {password}");
    }
    Ok(true)
}

/// Connects to the configured database, migrates it, bootstraps the first admin and serves
/// until the process ends.
pub async fn serve(config: Config) -> Result<(), ServeError> {
    let tls = match (&config.ops.tls_cert, &config.ops.tls_key) {
        (Some(cert), Some(key)) => Some(tls::server_config(cert, key)?),
        _ => None,
    };
    let key_path = config.hotlist_key_path();
    let (signer, created) = publish::HotlistSigner::load_or_create(&key_path)?;
    if created {
        eprintln!(
            "platewatch: created the hot list signing key {} (key id {})",
            key_path.display(),
            signer.public_key_info().key_id
        );
    }
    let (audit_keys, created) =
        audit::AuditKeys::load_or_create(&config).map_err(ServeError::AuditKey)?;
    if created {
        eprintln!(
            "platewatch: created the audit keys {} and {} (checkpoint key id {})",
            config.audit_key_path().display(),
            config.audit_signing_key_path().display(),
            audit_keys.key_id()
        );
    }
    let repo = Repo::connect(&config.database_url)
        .await?
        .with_audit_keys(audit_keys);
    if let Some(keyed_from) = repo.seal_audit_chain().await? {
        tracing::warn!(
            keyed_from,
            "sealed the start of the keyed audit chain (expected once, on the first start \
             after upgrading from the unkeyed chain)"
        );
    }
    let listen = config.listen;
    let state = AppState::new(repo, config).with_signer(signer);
    bootstrap(&state).await?;
    // Retention runs now and then periodically; it stops when `serve` returns.
    let retention = tokio::spawn(retention::run_periodically(state.clone()));
    let _stop_retention = AbortOnDrop(retention);
    // A signed checkpoint of the audit chain's head now and every configured interval.
    let checkpoints = tokio::spawn(audit::checkpoint_periodically(state.clone()));
    let _stop_checkpoints = AbortOnDrop(checkpoints);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    tracing::info!(addr = %listener.local_addr()?, https = tls.is_some(), "platewatch server listening");
    let limits = state.config.connections;
    listen::serve(listener, app(state), tls.map(Arc::new), limits).await?;
    Ok(())
}

/// Serves `state` over plain HTTP on an ephemeral loopback port, in a background task: the
/// real server for the demo, the benchmarks and the end-to-end tests. Returns the address
/// it listens on and the task.
pub async fn serve_loopback(
    state: AppState,
) -> std::io::Result<(
    std::net::SocketAddr,
    tokio::task::JoinHandle<std::io::Result<()>>,
)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let limits = state.config.connections;
    let task = tokio::spawn(listen::serve(listener, app(state), None, limits));
    Ok((addr, task))
}

/// Aborts a background task when dropped.
#[derive(Debug)]
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
