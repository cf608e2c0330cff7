//! Platewatch backend server: identity and roles, a hash-chained audit log and encounter
//! ingest over one repository with two backends (SQLite embedded, PostgreSQL for production).
//!
//! `app(state)` builds the router (tests drive it with `oneshot` or over a loopback socket);
//! `serve(config)` connects, migrates, creates the first admin if needed and serves.

pub mod audit;
pub mod auth;
pub mod config;
pub mod db;
pub mod error;
pub mod ingest;
pub mod routes;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};

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
}

impl AppState {
    pub fn new(repo: Repo, config: Config) -> Self {
        Self {
            repo,
            config: Arc::new(config),
        }
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
    Router::new()
        .route("/v1/login", post(routes::login))
        .route("/v1/devices", post(routes::register_device))
        .route("/v1/devices/{id}", delete(routes::revoke_device))
        .route("/v1/rules", get(routes::get_rules).put(routes::set_rules))
        .route("/v1/users", post(routes::post_user))
        .route("/v1/encounters", post(ingest::upload))
        .route("/v1/audit/verify", get(routes::verify_audit))
        .fallback(|| async { ApiError::NotFound("no such endpoint") })
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
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
    let repo = Repo::connect(&config.database_url).await?;
    let listen = config.listen;
    let state = AppState::new(repo, config);
    bootstrap(&state).await?;
    let listener = tokio::net::TcpListener::bind(listen).await?;
    tracing::info!(addr = %listener.local_addr()?, "platewatch server listening");
    axum::serve(
        listener,
        app(state).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .await?;
    Ok(())
}
