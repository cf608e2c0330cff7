//! Helpers for the device-sync tests: the real server (`platewatch_server::app`) on a
//! 127.0.0.1:0 listener over SQLite or PostgreSQL (`PLATEWATCH_PG_URL`, or a private server
//! started with `server/scripts/start-test-postgres.sh`), an officer with a registered device,
//! and queries on what the server stored.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::sync::{Mutex, OnceLock};

use platewatch_server::{AppState, Config, Db, Repo};
use serde_json::{Value, json};
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions};
use tempfile::TempDir;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub const BACKENDS: [Backend; 2] = [Backend::Sqlite, Backend::Postgres];
pub const OFFICER: &str = "ofc.sync";
pub const PARTNER: &str = "det.partner";
const PASSWORD: &str = "a-long-password-42";

/// A running server with an officer and a device token.
pub struct TestServer {
    pub base: String,
    pub addr: SocketAddr,
    pub device_token: String,
    pub repo: Repo,
    pub backend: &'static str,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: Option<TempDir>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct PrivatePg {
    url: String,
    _watchdog: Mutex<Child>,
}

fn start_private_pg() -> Result<PrivatePg, String> {
    let scripts = concat!(env!("CARGO_MANIFEST_DIR"), "/../server/scripts");
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

fn pg_admin_url() -> String {
    if let Ok(url) = std::env::var("PLATEWATCH_PG_URL")
        && !url.trim().is_empty()
    {
        return url;
    }
    static PG: OnceLock<Result<PrivatePg, String>> = OnceLock::new();
    match PG.get_or_init(start_private_pg) {
        Ok(pg) => pg.url.clone(),
        Err(e) => panic!(
            "PostgreSQL is required for the sync tests and could not be started \
             (install Debian's postgresql, or set PLATEWATCH_PG_URL):\n{e}"
        ),
    }
}

async fn repo(backend: Backend) -> (Repo, Option<TempDir>) {
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("temp dir");
            let path = dir.path().join("server.db");
            let repo = Repo::connect(path.to_str().expect("utf-8 path"))
                .await
                .expect("sqlite repo");
            (repo, Some(dir))
        }
        Backend::Postgres => {
            let admin = pg_admin_url();
            let name = format!("pwsync_{}", uuid::Uuid::new_v4().simple());
            let mut conn = PgConnection::connect(&admin)
                .await
                .unwrap_or_else(|e| panic!("connecting to the test PostgreSQL server: {e}"));
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut conn)
                .await
                .expect("create test database");
            conn.close().await.expect("close");
            let opts = PgConnectOptions::from_str(&admin)
                .expect("PostgreSQL URL")
                .database(&name);
            let pool = PgPoolOptions::new()
                .max_connections(8)
                .connect_with(opts)
                .await
                .expect("pool");
            let repo = Repo::from_db(Db::Postgres(pool))
                .await
                .expect("postgres migrations");
            (repo, None)
        }
    }
}

async fn post(http: &reqwest::Client, url: String, token: Option<&str>, body: Value) -> Value {
    let mut req = http.post(&url).json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status();
    let body: Value = resp.json().await.expect("json body");
    assert!(status.is_success(), "{url}: {status} {body}");
    body
}

impl TestServer {
    /// Starts the server on `backend` with the default configuration; creates an officer and
    /// a partner (for on-behalf-of) and registers the officer's device.
    pub async fn start(backend: Backend) -> TestServer {
        let (repo, dir) = repo(backend).await;
        let config = Config {
            bootstrap_admin: Some(("admin".into(), "admin-password-123".into())),
            ..Config::default()
        };
        let state = AppState::new(repo.clone(), config);
        platewatch_server::bootstrap(&state)
            .await
            .expect("bootstrap");
        let (addr, task) = platewatch_server::serve_loopback(state)
            .await
            .expect("serve");
        let base = format!("http://{addr}");
        let http = reqwest::Client::new();
        let admin = post(
            &http,
            format!("{base}/v1/login"),
            None,
            json!({"username": "admin", "password": "admin-password-123"}),
        )
        .await["token"]
            .as_str()
            .expect("token")
            .to_string();
        for user in [OFFICER, PARTNER] {
            post(
                &http,
                format!("{base}/v1/users"),
                Some(&admin),
                json!({"username": user, "password": PASSWORD, "role": "officer"}),
            )
            .await;
        }
        let officer = post(
            &http,
            format!("{base}/v1/login"),
            None,
            json!({"username": OFFICER, "password": PASSWORD}),
        )
        .await["token"]
            .as_str()
            .expect("token")
            .to_string();
        let device = post(
            &http,
            format!("{base}/v1/devices"),
            Some(&officer),
            json!({"name": "sync test phone"}),
        )
        .await;
        TestServer {
            base,
            addr,
            device_token: device["token"].as_str().expect("token").to_string(),
            backend: repo.backend(),
            repo,
            task,
            _dir: dir,
        }
    }

    /// Opens `session` on the server with the device token, as devices do before they scan.
    pub async fn open_session(&self, session: &platewatch_core::session::Session) {
        let client = platewatch_sync::ServerClient::new(&platewatch_sync::ClientConfig::new(
            &self.base,
            &self.device_token,
        ))
        .expect("client");
        platewatch_sync::account::start_session(&client, session)
            .await
            .expect("the server opens the session");
    }

    /// How many rows the server holds for each plate.
    pub async fn plate_counts(&self) -> HashMap<String, i64> {
        let sql = "SELECT plate, COUNT(*) FROM encounters GROUP BY plate";
        let rows: Vec<(String, i64)> = match self.repo.db() {
            Db::Sqlite(p) => sqlx::query_as(sql).fetch_all(p).await,
            Db::Postgres(p) => sqlx::query_as(sql).fetch_all(p).await,
        }
        .expect("count plates");
        rows.into_iter().collect()
    }

    /// Stored columns of one encounter (by id) as strings, for spot checks.
    pub async fn row(&self, id: &str) -> Option<ServerRow> {
        let sql = "SELECT e.plate, e.reason_code, e.case_number, e.match_tags, e.alert_decision, \
                   e.alert_reason, e.crop, e.context_image, u.username \
                   FROM encounters e LEFT JOIN users u ON u.id = e.on_behalf_of_user_id \
                   WHERE e.id = $1";
        type Raw = (
            String,
            String,
            Option<String>,
            String,
            Option<String>,
            Option<String>,
            Vec<u8>,
            Option<Vec<u8>>,
            Option<String>,
        );
        let r: Option<Raw> = match self.repo.db() {
            Db::Sqlite(p) => sqlx::query_as(sql).bind(id).fetch_optional(p).await,
            Db::Postgres(p) => sqlx::query_as(sql).bind(id).fetch_optional(p).await,
        }
        .expect("fetch encounter");
        r.map(|r| ServerRow {
            plate: r.0,
            reason_code: r.1,
            case_number: r.2,
            match_tags: r.3,
            alert_decision: r.4,
            alert_reason: r.5,
            crop: r.6,
            context_image: r.7,
            on_behalf_of: r.8,
        })
    }
}

#[derive(Debug)]
pub struct ServerRow {
    pub plate: String,
    pub reason_code: String,
    pub case_number: Option<String>,
    pub match_tags: String,
    pub alert_decision: Option<String>,
    pub alert_reason: Option<String>,
    pub crop: Vec<u8>,
    pub context_image: Option<Vec<u8>>,
    pub on_behalf_of: Option<String>,
}

/// Lost and duplicated counts of plates `expected` against what the server holds.
pub fn lost_and_duplicated(expected: &[String], counts: &HashMap<String, i64>) -> (usize, i64) {
    let lost = expected.iter().filter(|p| !counts.contains_key(*p)).count();
    let dup = expected
        .iter()
        .filter_map(|p| counts.get(p))
        .map(|c| c - 1)
        .sum();
    (lost, dup)
}
