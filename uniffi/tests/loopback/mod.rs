//! The real Platewatch server for the facade's account and sync tests: `platewatch_server::app`
//! over SQLite in a temporary directory on a 127.0.0.1:0 listener (started the way
//! `tests/tests/sync/common.rs` starts it), the administrator's calls over HTTP (users, rules of
//! behaviour, hot list publishing, the publisher key), and a man-in-the-middle on loopback that
//! forwards everything to it and, when told to, alters bytes of the signed hot list payloads.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use platewatch_server::{AppState, Config, Repo};
use serde_json::{Value, json};

/// The bytes to replace in hot list payloads, and their replacement (None: pass through).
type Rewrite = Arc<Mutex<Option<(Vec<u8>, Vec<u8>)>>>;

const ADMIN: &str = "admin";
const ADMIN_PASSWORD: &str = "admin-password-123";

/// A running server with its own runtime; stopped when dropped.
pub struct Server {
    pub base: String,
    rt: tokio::runtime::Runtime,
    admin_token: Mutex<String>,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `router` on a fresh loopback port from `rt`.
fn serve(
    rt: &tokio::runtime::Runtime,
    router: axum::Router,
) -> (String, tokio::task::JoinHandle<()>) {
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = rt.spawn(async move {
        let _ = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await;
    });
    (format!("http://{addr}"), task)
}

impl Server {
    /// Starts the server with the default configuration (reason codes `patrol`,
    /// `investigation`, …) and a bootstrap administrator.
    pub fn start() -> Server {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("server runtime");
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("server.db");
        let state = rt.block_on(async {
            let repo = Repo::connect(path.to_str().expect("utf-8 path"))
                .await
                .expect("sqlite repo");
            let config = Config {
                bootstrap_admin: Some((ADMIN.into(), ADMIN_PASSWORD.into())),
                ..Config::default()
            };
            let state = AppState::new(repo, config);
            platewatch_server::bootstrap(&state)
                .await
                .expect("bootstrap");
            state
        });
        let (base, task) = serve(&rt, platewatch_server::app(state));
        let server = Server {
            base,
            rt,
            admin_token: Mutex::new(String::new()),
            task,
            _dir: dir,
        };
        let token = server.login(ADMIN, ADMIN_PASSWORD, None);
        *server.admin_token.lock().expect("lock") = token;
        server
    }

    fn admin(&self) -> String {
        self.admin_token.lock().expect("lock").clone()
    }

    /// Sends a request and returns the status and JSON body (null when not JSON).
    fn call(&self, req: reqwest::RequestBuilder) -> (u16, Value) {
        self.rt.block_on(async {
            let resp = req.send().await.expect("request");
            let status = resp.status().as_u16();
            let body = resp.bytes().await.expect("body");
            (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
        })
    }

    fn http(&self) -> reqwest::Client {
        reqwest::Client::new()
    }

    /// Signs `user` in over HTTP; returns the session token.
    fn login(&self, user: &str, password: &str, ack: Option<i64>) -> String {
        let (status, body) = self.call(self.http().post(format!("{}/v1/login", self.base)).json(
            &json!({"username": user, "password": password, "acknowledge_rules_version": ack}),
        ));
        assert_eq!(status, 200, "login of {user}: {body}");
        body["token"].as_str().expect("token").to_string()
    }

    /// Creates an officer.
    pub fn add_officer(&self, user: &str, password: &str) {
        let (status, body) = self.call(
            self.http()
                .post(format!("{}/v1/users", self.base))
                .bearer_auth(self.admin())
                .json(&json!({"username": user, "password": password, "role": "officer"})),
        );
        assert!(
            (200..300).contains(&status),
            "create {user}: {status} {body}"
        );
    }

    /// Publishes new rules of behaviour; returns their version. The administrator signs in
    /// again acknowledging them (tokens of users who have not are refused).
    pub fn set_rules(&self, text: &str) -> i64 {
        let (status, body) = self.call(
            self.http()
                .put(format!("{}/v1/rules", self.base))
                .bearer_auth(self.admin())
                .json(&json!({ "text": text })),
        );
        assert_eq!(status, 200, "set rules: {body}");
        let version = body["version"].as_i64().expect("version");
        let token = self.login(ADMIN, ADMIN_PASSWORD, Some(version));
        *self.admin_token.lock().expect("lock") = token;
        version
    }

    /// Publishes `body` (delimited, with a header line) as the next version of `list`.
    pub fn publish(&self, list: &str, body: &str, max_age_secs: i64) {
        let (status, answer) = self.call(
            self.http()
                .post(format!(
                    "{}/v1/hotlists?list={list}&format=delimited&max_age_secs={max_age_secs}",
                    self.base
                ))
                .bearer_auth(self.admin())
                .body(body.to_string()),
        );
        assert!((200..300).contains(&status), "publish: {status} {answer}");
    }

    /// The publisher key (base64), as the operator hands it out for pinning.
    pub fn publisher_key(&self) -> String {
        let (status, body) = self.call(
            self.http()
                .get(format!("{}/v1/hotlists/key", self.base))
                .bearer_auth(self.admin()),
        );
        assert_eq!(status, 200, "key: {body}");
        body["public_key"].as_str().expect("public_key").to_string()
    }

    /// Starts a man-in-the-middle in front of this server.
    pub fn tamperer(&self) -> Tamperer {
        let rewrite: Rewrite = Arc::default();
        let state = Mitm {
            upstream: self.base.clone(),
            http: reqwest::Client::new(),
            rewrite: rewrite.clone(),
        };
        let router = axum::Router::new().fallback(forward).with_state(state);
        let (base, task) = serve(&self.rt, router);
        Tamperer {
            base,
            rewrite,
            task,
        }
    }
}

/// A proxy that forwards every request to the server; hot list payloads (snapshots and
/// deltas) get `from` replaced by `to` while a rewrite is set.
pub struct Tamperer {
    pub base: String,
    rewrite: Rewrite,
    task: tokio::task::JoinHandle<()>,
}

impl Tamperer {
    /// From now on, replaces `from` with `to` in hot list payloads.
    pub fn rewrite(&self, from: &str, to: &str) {
        *self.rewrite.lock().expect("lock") = Some((from.into(), to.into()));
    }
}

impl Drop for Tamperer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Clone)]
struct Mitm {
    upstream: String,
    http: reqwest::Client,
    rewrite: Rewrite,
}

async fn forward(
    axum::extract::State(m): axum::extract::State<Mitm>,
    req: axum::extract::Request,
) -> axum::response::Response {
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let method = reqwest::Method::from_bytes(req.method().as_str().as_bytes()).expect("method");
    let mut out = m.http.request(method, format!("{}{path}", m.upstream));
    for name in ["authorization", "content-type"] {
        if let Some(v) = req.headers().get(name) {
            out = out.header(name, v.as_bytes());
        }
    }
    let body = axum::body::to_bytes(req.into_body(), usize::MAX)
        .await
        .expect("request body");
    let resp = out.body(body.to_vec()).send().await.expect("upstream");
    let status = resp.status().as_u16();
    let mut bytes = resp.bytes().await.expect("upstream body").to_vec();
    let payload = path.contains("/snapshot") || path.contains("/delta");
    if let (true, Some((from, to))) = (payload, m.rewrite.lock().expect("lock").clone()) {
        if let Some(at) = bytes.windows(from.len()).position(|w| w == from.as_slice()) {
            bytes.splice(at..at + from.len(), to);
        }
    }
    axum::response::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(axum::body::Body::from(bytes))
        .expect("response")
}
