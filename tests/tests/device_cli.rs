//! The `platewatch` device commands end to end, run as a child process against the real
//! server on loopback (SQLite) through a small proxy that can tamper with hot list payloads
//! or fail uploads: `scan --server` (sign-in with explicit rules acknowledgement, device
//! registration, hot list sync, session, encounters with alerts, upload), `sync`, `status`,
//! a tampered hot list refused with the old one kept, and `demo`.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use platewatch_cli::scene::{self, Placement, Rng};
use platewatch_server::{AppState, Config, Repo};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_platewatch-e2e");
const OFFICER: &str = "ofc.cli";
const PASSWORD: &str = "officer-password-42";

#[derive(Clone)]
struct Proxy {
    upstream: String,
    http: reqwest::Client,
    tamper: Arc<AtomicBool>,
    fail_uploads: Arc<AtomicBool>,
}

/// Changes one digit of the first `priority` in the signed payload text.
fn tamper(body: &mut [u8]) {
    let pat = b"priority";
    let at = body
        .windows(pat.len())
        .position(|w| w == pat)
        .expect("a priority in the payload");
    let d = (at..body.len())
        .find(|&i| body[i].is_ascii_digit())
        .expect("a digit");
    body[d] = if body[d] == b'1' { b'2' } else { b'1' };
}

async fn forward(State(p): State<Proxy>, req: Request) -> Response {
    let path = req
        .uri()
        .path_and_query()
        .map(ToString::to_string)
        .unwrap_or_default();
    if p.fail_uploads.load(Ordering::SeqCst) && path.starts_with("/v1/encounters") {
        return (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "down for the test",
        )
            .into_response();
    }
    let method = req.method().clone();
    let headers = req.headers().clone();
    let body = axum::body::to_bytes(req.into_body(), 64 << 20)
        .await
        .expect("request body");
    let mut r = p
        .http
        .request(method, format!("{}{path}", p.upstream))
        .body(body.to_vec());
    for (k, v) in &headers {
        if k != "host" && k != "content-length" {
            r = r.header(k, v);
        }
    }
    let resp = r.send().await.expect("upstream");
    let status = resp.status();
    let ct = resp.headers().get("content-type").cloned();
    let mut bytes = resp.bytes().await.expect("upstream body").to_vec();
    if p.tamper.load(Ordering::SeqCst)
        && status.is_success()
        && (path.contains("/snapshot") || path.contains("/delta"))
    {
        tamper(&mut bytes);
    }
    let mut out = (status, bytes).into_response();
    if let Some(ct) = ct {
        out.headers_mut().insert("content-type", ct);
    }
    out
}

struct Env {
    /// The proxy's URL (what the device talks to).
    url: String,
    direct: String,
    key: String,
    admin: String,
    tamper: Arc<AtomicBool>,
    fail_uploads: Arc<AtomicBool>,
    _dir: tempfile::TempDir,
}

async fn call(url: String, token: Option<&str>, method: reqwest::Method, body: Value) -> Value {
    let mut r = reqwest::Client::new().request(method, &url).json(&body);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let resp = r.send().await.expect("request");
    let status = resp.status();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{url}: {status} {v}");
    v
}

async fn publish(env: &Env, body: &str) {
    let r = reqwest::Client::new()
        .post(format!(
            "{}/v1/hotlists?list=stolen&format=delimited",
            env.direct
        ))
        .bearer_auth(&env.admin)
        .body(body.to_string())
        .send()
        .await
        .expect("publish");
    assert!(r.status().is_success());
}

/// The server (SQLite) with rules v1, an officer, and the proxy in front of it.
async fn start() -> Env {
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = Repo::connect(dir.path().join("server.db").to_str().expect("utf-8"))
        .await
        .expect("repo");
    let state = AppState::new(
        repo,
        Config {
            bootstrap_admin: Some(("admin".into(), "admin-password-123".into())),
            ..Config::default()
        },
    );
    let key = state.signer.public_key_info().public_key;
    platewatch_server::bootstrap(&state)
        .await
        .expect("bootstrap");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let direct = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            platewatch_server::app(state).into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await;
    });
    let login = |v: Option<i64>| json!({"username": "admin", "password": "admin-password-123", "acknowledge_rules_version": v});
    let post = reqwest::Method::POST;
    let admin = call(
        format!("{direct}/v1/login"),
        None,
        post.clone(),
        login(None),
    )
    .await;
    let admin = admin["token"].as_str().expect("token").to_string();
    call(
        format!("{direct}/v1/rules"),
        Some(&admin),
        reqwest::Method::PUT,
        json!({"text": "Scan only with a reason."}),
    )
    .await;
    let admin = call(
        format!("{direct}/v1/login"),
        None,
        post.clone(),
        login(Some(1)),
    )
    .await;
    let admin = admin["token"].as_str().expect("token").to_string();
    call(
        format!("{direct}/v1/users"),
        Some(&admin),
        post,
        json!({"username": OFFICER, "password": PASSWORD, "role": "officer"}),
    )
    .await;
    let proxy = Proxy {
        upstream: direct.clone(),
        http: reqwest::Client::new(),
        tamper: Arc::new(AtomicBool::new(false)),
        fail_uploads: Arc::new(AtomicBool::new(false)),
    };
    let (tamper, fail_uploads) = (proxy.tamper.clone(), proxy.fail_uploads.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let app = axum::Router::new().fallback(forward).with_state(proxy);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Env {
        url,
        direct,
        key,
        admin,
        tamper,
        fail_uploads,
        _dir: dir,
    }
}

/// Writes `n` still scenes with one large plate each; returns their plate texts.
fn scenes(dir: &Path, n: usize, seed: u64) -> Vec<String> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|i| {
            let text = scene::random_plate(&mut rng);
            let plate = scene::render_plate(&text, &mut rng);
            let bg = scene::background(1280, 720, &mut rng);
            let (img, _) = scene::compose(
                &bg,
                &[Placement {
                    plate: &plate,
                    cx: 640.0,
                    cy: 500.0,
                    height: 64.0,
                    car_colour: [40, 90, 160],
                }],
            );
            img.save(dir.join(format!("scene-{i}.png")))
                .expect("write scene");
            text
        })
        .collect()
}

/// Runs the command (off the async workers, so the server keeps serving).
async fn run(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .args(&args)
            .env("PLATEWATCH_PASSWORD", PASSWORD)
            .output()
            .expect("run platewatch")
    })
    .await
    .expect("join")
}

fn last_json(out: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|_| {
        panic!(
            "no JSON last line:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(ToString::to_string).collect()
}

fn scan_args(env: &Env, images: &Path, device: &Path) -> Vec<String> {
    s(&[
        "scan",
        images.to_str().expect("utf-8"),
        "--server",
        &env.url,
        "--user",
        OFFICER,
        "--reason",
        "patrol",
        "--case",
        "CASE-7",
        "--position",
        "37.77,-122.42",
        "--device-dir",
        device.to_str().expect("utf-8"),
        "--hotlist-key",
        &env.key,
        "--json",
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_with_server_then_sync_and_status() {
    let env = start().await;
    let tmp = tempfile::tempdir().expect("temp dir");
    let images = tmp.path().join("images");
    std::fs::create_dir_all(&images).expect("mkdir");
    let plates = scenes(&images, 3, 11);
    let mut list = String::from("plate;category\n");
    for p in &plates {
        list.push_str(&format!("{p};stolen\n"));
    }
    publish(&env, &list).await;
    let device = tmp.path().join("device");

    // Without acknowledging the rules: refused, naming the version to acknowledge.
    let out = run(scan_args(&env, &images, &device)).await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--acknowledge-rules 1"), "{err}");

    // The whole loop, with uploads failing: encounters stay pending on the device.
    env.fail_uploads.store(true, Ordering::SeqCst);
    let mut args = scan_args(&env, &images, &device);
    args.extend(s(&["--acknowledge-rules", "1"]));
    let out = run(args.clone()).await;
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{err}");
    let summary = last_json(&out);
    let encounters = summary["encounters"].as_u64().expect("encounters");
    assert!(encounters >= 2, "{summary}\n{err}");
    assert!(
        summary["alerts"].as_u64().expect("alerts") >= 1,
        "{summary}"
    );
    assert_eq!(summary["uploaded"], 0);
    assert_eq!(summary["pending"].as_u64(), Some(encounters));
    assert!(err.contains("snapshot v1"), "{err}");
    for p in &plates {
        assert!(!err.contains(p.as_str()), "plate text on stderr");
    }

    let dev = device.to_str().expect("utf-8");
    let status = last_json(&run(s(&["status", "--device-dir", dev, "--json"])).await);
    assert_eq!(status["outbox"]["pending"].as_u64(), Some(encounters));
    assert_eq!(status["lists"][0]["version"], 1);
    assert_eq!(status["lists"][0]["stale"], false);
    assert!(status["last_hotlist_sync_ms"].as_i64().is_some());
    let text = run(s(&["status", "--device-dir", dev])).await;
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains(&format!("{encounters} pending")), "{text}");
    assert!(text.contains("stolen"), "{text}");

    // `sync` uploads them (on demand, despite the backoff) and pulls the new version.
    env.fail_uploads.store(false, Ordering::SeqCst);
    publish(&env, &format!("{list}ZZZ999;stolen\n")).await;
    let out = run(s(&["sync", "--device-dir", dev, "--json"])).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sync = last_json(&out);
    assert_eq!(
        sync["upload"]["totals"]["stored"].as_u64(),
        Some(encounters)
    );
    assert_eq!(sync["upload"]["pending"], 0);
    assert_eq!(sync["hotlists"]["lists"][0]["outcome"], "delta");
    assert_eq!(sync["hotlists"]["lists"][0]["version"], 2);
    let status = last_json(&run(s(&["status", "--device-dir", dev, "--json"])).await);
    assert_eq!(status["outbox"]["pending"], 0);
    assert_eq!(status["lists"][0]["version"], 2);
    assert_eq!(
        status["lists"][0]["entries"].as_u64(),
        Some(plates.len() as u64 + 1)
    );

    // A second scan reuses the device registration and uploads at once.
    let out = run(args).await;
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{err}");
    assert!(err.contains("reusing this device's registration"), "{err}");
    let summary = last_json(&out);
    assert_eq!(summary["uploaded"], summary["encounters"]);
    assert_eq!(summary["pending"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_or_wrongly_signed_hot_list_is_refused_and_old_kept() {
    let env = start().await;
    let tmp = tempfile::tempdir().expect("temp dir");
    let images = tmp.path().join("images");
    std::fs::create_dir_all(&images).expect("mkdir");
    scenes(&images, 1, 5);
    publish(
        &env,
        "plate;category;priority\nAAA111;stolen;80\nBBB222;stolen;80\n",
    )
    .await;
    let device = tmp.path().join("device");
    let dev = device.to_str().expect("utf-8");
    let mut args = scan_args(&env, &images, &device);
    args.extend(s(&["--acknowledge-rules", "1"]));
    let out = run(args).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // v2 arrives tampered in transit: refused, v1 kept.
    publish(
        &env,
        "plate;category;priority\nAAA111;stolen;80\nCCC333;stolen;80\n",
    )
    .await;
    env.tamper.store(true, Ordering::SeqCst);
    let out = run(s(&["sync", "--device-dir", dev, "--json", "--no-upload"])).await;
    assert!(!out.status.success());
    let sync = last_json(&out);
    assert_eq!(sync["hotlists"]["lists"][0]["outcome"], "refused", "{sync}");
    assert!(
        sync["hotlists"]["lists"][0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("signature")),
        "{sync}"
    );
    let status = last_json(&run(s(&["status", "--device-dir", dev, "--json"])).await);
    assert_eq!(status["lists"][0]["version"], 1);
    assert_eq!(status["lists"][0]["entries"], 2);
    assert_eq!(status["last_hotlist_refused"], 1);
    let text = run(s(&["status", "--device-dir", dev])).await;
    assert!(String::from_utf8_lossy(&text.stdout).contains("REFUSED"));

    // Signed with a key other than the pinned one: refused too.
    env.tamper.store(false, Ordering::SeqCst);
    let other = platewatch_server::publish::HotlistSigner::generate()
        .public_key_info()
        .public_key;
    let out = run(s(&[
        "sync",
        "--device-dir",
        dev,
        "--json",
        "--no-upload",
        "--hotlist-key",
        &other,
    ]))
    .await;
    assert!(!out.status.success());
    let sync = last_json(&out);
    assert_eq!(sync["hotlists"]["lists"][0]["outcome"], "refused", "{sync}");
    let status = last_json(&run(s(&["status", "--device-dir", dev, "--json"])).await);
    assert_eq!(status["lists"][0]["version"], 1);

    // The right key again: v2 applies.
    let out = run(s(&[
        "sync",
        "--device-dir",
        dev,
        "--json",
        "--no-upload",
        "--hotlist-key",
        &env.key,
    ]))
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = last_json(&run(s(&["status", "--device-dir", dev, "--json"])).await);
    assert_eq!(status["lists"][0]["version"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_runs_and_reports_alerts_and_uploads() {
    let out = run(s(&["demo", "--passes", "3", "--json"])).await;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = last_json(&out);
    assert!(v["alerts"].as_u64().expect("alerts") >= 1, "{stdout}");
    assert!(
        v["encounters"].as_u64().expect("encounters") >= 2,
        "{stdout}"
    );
    assert_eq!(v["uploaded"], v["encounters"], "{stdout}");
    assert_eq!(v["pending"], 0);
    assert_eq!(v["audit_intact"], true);
    assert!(
        v["query_count"].as_u64().expect("a query ran") >= 1,
        "{stdout}"
    );
    for step in [
        "1. server",
        "2. device",
        "3. scan",
        "4. upload",
        "5. query",
        "6. audit",
    ] {
        assert!(stdout.contains(step), "{step} missing:\n{stdout}");
    }
    assert!(stdout.contains("ALERT"), "{stdout}");
}
