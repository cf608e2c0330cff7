//! Test helpers: a fresh SQLite file or a fresh PostgreSQL database per test (a private server
//! started once per test process, or `PLATEWATCH_PG_URL`), an app with a bootstrapped admin,
//! and small request helpers.

use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::sync::{Mutex, OnceLock};

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use platewatch_server::{AppState, Config, Db, Repo};
use serde_json::{Value, json};
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions};
use tempfile::TempDir;
use tower::ServiceExt;

/// A repository on a fresh database; keeps the SQLite directory alive.
pub struct TestDb {
    pub repo: Repo,
    _dir: Option<TempDir>,
}

pub async fn sqlite() -> TestDb {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("server.db");
    let repo = Repo::connect(path.to_str().expect("utf-8 temp path"))
        .await
        .expect("sqlite repo");
    TestDb {
        repo,
        _dir: Some(dir),
    }
}

struct PrivatePg {
    url: String,
    /// Its stdin closes when this process exits; the watchdog then stops the server.
    _watchdog: Mutex<Child>,
}

fn start_private_pg() -> Result<PrivatePg, String> {
    let scripts = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts");
    let dir = tempfile::Builder::new()
        .prefix("platewatch-pg-")
        .tempdir()
        .map_err(|e| format!("temp dir: {e}"))?
        .keep();
    let out = Command::new("bash")
        .arg(format!("{scripts}/start-test-postgres.sh"))
        .arg(&dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running start-test-postgres.sh: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let url = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let watchdog = Command::new("bash")
        .arg("-c")
        .arg(r#"read -r _; REMOVE=1 "$0" "$1""#)
        .arg(format!("{scripts}/stop-test-postgres.sh"))
        .arg(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting the watchdog: {e}"))?;
    Ok(PrivatePg {
        url,
        _watchdog: Mutex::new(watchdog),
    })
}

/// The URL of a PostgreSQL server where test databases may be created: `PLATEWATCH_PG_URL`,
/// or a private server started on first use. Panics (the test fails) if there is none.
fn pg_admin_url() -> String {
    if let Ok(url) = std::env::var("PLATEWATCH_PG_URL") {
        if !url.trim().is_empty() {
            return url;
        }
    }
    static PG: OnceLock<Result<PrivatePg, String>> = OnceLock::new();
    match PG.get_or_init(start_private_pg) {
        Ok(pg) => pg.url.clone(),
        Err(e) => panic!(
            "PostgreSQL is required for the server tests and could not be started \
             (install Debian's postgresql, or set PLATEWATCH_PG_URL):\n{e}"
        ),
    }
}

pub async fn postgres() -> TestDb {
    let admin = pg_admin_url();
    let name = format!("pwtest_{}", uuid::Uuid::new_v4().simple());
    let mut conn = PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("connecting to the test PostgreSQL server: {e}"));
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("create test database");
    conn.close().await.expect("close admin connection");
    let opts = PgConnectOptions::from_str(&admin)
        .expect("PostgreSQL URL")
        .database(&name);
    let pool = PgPoolOptions::new()
        .max_connections(5)
        .connect_with(opts)
        .await
        .expect("pool");
    let repo = Repo::from_db(Db::Postgres(pool))
        .await
        .expect("postgres migrations");
    TestDb { repo, _dir: None }
}

/// A fresh database on each backend.
pub async fn backends() -> Vec<TestDb> {
    vec![sqlite().await, postgres().await]
}

pub const ADMIN: &str = "admin";
pub const ADMIN_PASSWORD: &str = "admin-password-123";
pub const PASSWORD: &str = "a-long-password-42";

/// The app on one backend with a bootstrapped admin, logged in.
pub struct Env {
    pub state: AppState,
    pub app: Router,
    pub admin: String,
    _db: TestDb,
}

pub fn test_config() -> Config {
    Config {
        bootstrap_admin: Some((ADMIN.into(), ADMIN_PASSWORD.into())),
        ..Config::default()
    }
}

pub async fn env_with(db: TestDb, config: Config) -> Env {
    let state = AppState::new(db.repo.clone(), config);
    assert!(
        platewatch_server::bootstrap(&state)
            .await
            .expect("bootstrap")
    );
    assert!(
        !platewatch_server::bootstrap(&state)
            .await
            .expect("second bootstrap is a no-op")
    );
    let app = platewatch_server::app(state.clone());
    let mut env = Env {
        state,
        app,
        admin: String::new(),
        _db: db,
    };
    env.admin = env.login(ADMIN, ADMIN_PASSWORD, None).await;
    env
}

pub async fn env(db: TestDb) -> Env {
    env_with(db, test_config()).await
}

impl Env {
    pub fn backend(&self) -> &'static str {
        self.state.repo.backend()
    }

    /// Sends one request through the router; returns the status and the JSON body (or Null).
    pub async fn call(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        }
        .expect("request");
        self.send(req).await
    }

    pub async fn send(&self, req: Request<Body>) -> (StatusCode, Value) {
        let resp = self
            .app
            .clone()
            .oneshot(req)
            .await
            .expect("router is infallible");
        let status = resp.status();
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                panic!(
                    "non-JSON body with {status}: {}",
                    String::from_utf8_lossy(&bytes)
                )
            })
        };
        (status, value)
    }

    /// Logs in (acknowledging `rules`) and returns the session token.
    pub async fn login(&self, user: &str, password: &str, rules: Option<i64>) -> String {
        let (status, body) = self
            .call(
                Method::POST,
                "/v1/login",
                None,
                Some(json!({ "username": user, "password": password, "acknowledge_rules_version": rules })),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::OK,
            "{} login {user}: {body}",
            self.backend()
        );
        body["token"].as_str().expect("token").to_string()
    }

    /// Creates a user (by the admin) and returns its session token.
    pub async fn user(&self, name: &str, role: &str, enhanced: bool) -> String {
        let (status, body) = self
            .call(
                Method::POST,
                "/v1/users",
                Some(&self.admin),
                Some(json!({ "username": name, "password": PASSWORD, "role": role, "enhanced_queries": enhanced })),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::CREATED,
            "{} create {name}: {body}",
            self.backend()
        );
        self.login(name, PASSWORD, None).await
    }

    /// Registers a device with a session token; returns (device id, device token).
    pub async fn device(&self, session: &str) -> (i64, String) {
        let (status, body) = self
            .call(
                Method::POST,
                "/v1/devices",
                Some(session),
                Some(json!({ "name": "phone" })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{}: {body}", self.backend());
        let token = body["token"].as_str().expect("token").to_string();
        // The scanning session `encounter` rows name, opened on the server as devices do
        // before they scan (the first device's user owns it).
        let _ = self
            .call(
                Method::POST,
                "/v1/sessions",
                Some(&token),
                Some(json!({ "id": SESSION_ID, "reason_code": "patrol", "case_number": "2026-001234" })),
            )
            .await;
        (body["id"].as_i64().expect("id"), token)
    }
}

/// The scanning session of [`encounter`] rows.
pub const SESSION_ID: &str = "7f1c0b8e-7a51-4d0e-9f3e-0b7f5d7c9a10";

/// A valid encounter row with a fresh id.
pub fn encounter(plate: &str) -> Value {
    json!({
        "id": uuid::Uuid::new_v4().to_string(),
        "plate": plate,
        "state": "CA",
        "confidence": 0.93,
        "crop": "iVBORw0KGgo=",
        "context_image": "/9j/4AAQSkZJRg==",
        "lat": 37.7749,
        "lon": -122.4194,
        "captured_at_ms": platewatch_server::now_ms() - 60_000,
        "camera_id": "rear",
        "reason_code": "patrol",
        "case_number": "2026-001234",
        "session_id": SESSION_ID,
        "match_tags": ["stolen-vehicle"],
        "alert": { "decision": "accepted" }
    })
}

/// Runs `sql` directly on the test database (what an insider with database access could do);
/// returns the rows affected.
pub async fn exec(repo: &Repo, sql: &str) -> u64 {
    match repo.db() {
        Db::Sqlite(p) => sqlx::query(sql)
            .execute(p)
            .await
            .expect("sql")
            .rows_affected(),
        Db::Postgres(p) => sqlx::query(sql)
            .execute(p)
            .await
            .expect("sql")
            .rows_affected(),
    }
}
