//! The `platewatch` device commands end to end, run as a child process against the real
//! server on loopback (SQLite) through a small proxy that can tamper with hot list payloads
//! or fail uploads: `scan --server` (sign-in with explicit rules acknowledgement, device
//! registration, the reason code checked against the server's list, hot list sync, session,
//! encounters with alerts and context images, also from a frame sequence, upload), `sync`,
//! `sync --watch` stopped with SIGINT, `status`, `alerts` (list, accept, reject, correct),
//! retro-hits after a hot list sync, a tampered hot list refused with the old one kept, and
//! `demo`.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use platewatch_cli::scene::{self, Placement, Rng};
use platewatch_server::{AppState, Config, Db, Repo};
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
    repo: Repo,
    _dir: tempfile::TempDir,
}

/// An encounter as the server stored it.
#[derive(Debug)]
struct ServerRow {
    id: String,
    plate: String,
    match_tags: Vec<String>,
    alert_decision: Option<String>,
    context_image: Option<Vec<u8>>,
}

async fn server_rows(env: &Env) -> Vec<ServerRow> {
    let Db::Sqlite(pool) = env.repo.db() else {
        panic!("the CLI tests run the server on SQLite")
    };
    type Raw = (String, String, String, Option<String>, Option<Vec<u8>>);
    let rows: Vec<Raw> = sqlx::query_as(
        "SELECT id, plate, match_tags, alert_decision, context_image FROM encounters ORDER BY id",
    )
    .fetch_all(pool)
    .await
    .expect("server encounters");
    rows.into_iter()
        .map(
            |(id, plate, tags, alert_decision, context_image)| ServerRow {
                id,
                plate,
                match_tags: serde_json::from_str(&tags).expect("tags are JSON"),
                alert_decision,
                context_image,
            },
        )
        .collect()
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
    let repo = state.repo.clone();
    platewatch_server::bootstrap(&state)
        .await
        .expect("bootstrap");
    let (addr, _server) = platewatch_server::serve_loopback(state)
        .await
        .expect("serve");
    let direct = format!("http://{addr}");
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
        repo,
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
    assert_eq!(
        status["reason_codes"],
        json!(platewatch_server::config::DEFAULT_REASON_CODES)
    );
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
    // Every encounter arrived with its vehicle context image.
    let rows = server_rows(&env).await;
    assert_eq!(rows.len() as u64, encounters);
    assert!(rows.iter().all(|r| r.context_image.is_some()));
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

/// Writes the frames of one synthetic vehicle pass into `dir`; returns its plate text.
fn write_pass(dir: &Path, seed: u64, frames: usize) -> String {
    std::fs::create_dir_all(dir).expect("mkdir");
    let pass = scene::vehicle_pass(&mut Rng::new(seed), frames, 24.0, 40.0);
    for (i, f) in pass.frames.iter().enumerate() {
        f.save(dir.join(format!("frame-{i:03}.png")))
            .expect("write frame");
    }
    pass.text
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// Scan arguments with the rules acknowledged and `extra` appended.
fn scan_acked(env: &Env, images: &Path, device: &Path, extra: &[&str]) -> Vec<String> {
    let mut args = scan_args(env, images, device);
    args.extend(s(&["--acknowledge-rules", "1"]));
    args.extend(s(extra));
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reason_code_is_checked_against_the_servers_list_before_scanning() {
    let env = start().await;
    let tmp = tempfile::tempdir().expect("temp dir");
    let images = tmp.path().join("images");
    std::fs::create_dir_all(&images).expect("mkdir");
    scenes(&images, 1, 21);
    let device = tmp.path().join("device");
    let dev = device.to_str().expect("utf-8");
    let mut args = scan_acked(&env, &images, &device, &[]);
    let at = args.iter().position(|a| a == "patrol").expect("reason");
    args[at] = "curiosity".into();
    let out = run(args).await;
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("not one of the server's reason codes"),
        "{err}"
    );
    assert!(
        err.contains(&platewatch_server::config::DEFAULT_REASON_CODES.join(", ")),
        "{err}"
    );
    assert!(
        !err.contains("scanning session"),
        "refused before scanning: {err}"
    );
    let status = last_json(&run(s(&["status", "--device-dir", dev, "--json"])).await);
    assert_eq!(status["outbox"]["recorded_total"], 0);
    assert_eq!(status["active_sessions"], json!([]));
    assert_eq!(
        status["reason_codes"],
        json!(platewatch_server::config::DEFAULT_REASON_CODES)
    );
    assert!(status["reason_codes_at_ms"].as_i64().is_some());

    // A code from the list works (here not the first one).
    let mut args = scan_acked(&env, &images, &device, &[]);
    args[at] = "missing-person".into();
    let out = run(args).await;
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("reason missing-person"), "{err}");
    let text = run(s(&["status", "--device-dir", dev])).await;
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("reason codes patrol, investigation, stolen-vehicle"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_are_reviewed_on_the_command_line() {
    let env = start().await;
    let tmp = tempfile::tempdir().expect("temp dir");
    let images = tmp.path().join("images");
    std::fs::create_dir_all(&images).expect("mkdir");
    let plates = scenes(&images, 3, 11);
    let mut list = String::from("plate;category;priority\n");
    for p in &plates {
        list.push_str(&format!("{p};stolen;80\n"));
    }
    publish(&env, &list).await;
    let device = tmp.path().join("device");
    let dev = device.to_str().expect("utf-8");
    let out = run(scan_acked(
        &env,
        &images,
        &device,
        &["--alert-hold-secs", "3600"],
    ))
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let summary = last_json(&out);
    assert!(
        summary["alerts"].as_u64().expect("alerts") >= 1,
        "{summary}"
    );
    // Alerting encounters wait on the device for the officer's decision.
    assert!(
        summary["pending"].as_u64().expect("pending") >= 1,
        "{summary}"
    );

    let listed = last_json(&run(s(&["alerts", "--device-dir", dev, "--json"])).await);
    let waiting = listed["waiting"].as_array().expect("waiting").clone();
    assert!(!waiting.is_empty(), "{listed}");
    for a in &waiting {
        let m = &a["matches"][0];
        assert_eq!(m["list"], "stolen", "{a}");
        assert_eq!(m["priority"], 80, "{a}");
        assert!(m["kind"].is_string() && m["category"].is_string(), "{a}");
        assert!(plates.contains(&m["entry_plate"].as_str().expect("plate").to_string()));
        assert!(
            a["plate"].is_string() && a["captured_at_ms"].is_i64(),
            "{a}"
        );
    }
    let id = waiting[0]["id"].as_str().expect("id").to_string();
    let short = id.replace('-', "")[..8].to_string();
    let text = run(s(&["alerts", "--device-dir", dev])).await;
    let text = String::from_utf8_lossy(&text.stdout).to_string();
    assert!(text.contains("waiting for a disposition"), "{text}");
    assert!(
        text.contains(&short) && text.contains("list stolen"),
        "{text}"
    );

    let act = |extra: &[&str]| {
        let mut v = s(&["alerts"]);
        v.extend(s(extra));
        v.extend(s(&["--device-dir", dev, "--json"]));
        v
    };
    let out = run(act(&["accept", &short])).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let v = last_json(&out);
    assert_eq!(
        (v["decision"].as_str(), v["replaced"].as_bool()),
        (Some("accepted"), Some(false))
    );
    let out = run(act(&["reject", &short, "--reason", "not the car"])).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(last_json(&out)["decision"], "rejected");
    // A rejection needs its reason.
    let out = run(act(&["reject", &short])).await;
    assert!(!out.status.success());
    // Bad plates and unknown ids are refused, without repeating what was typed.
    let out = run(act(&["correct", &short, "??"])).await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("A-Z and 0-9"), "{}", stderr(&out));
    let out = run(act(&["accept", "0000dead"])).await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no alert with that id"),
        "{}",
        stderr(&out)
    );
    let out = run(act(&["correct", &id, "zz9 999"])).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let v = last_json(&out);
    assert_eq!(
        (v["corrected"].as_bool(), v["replaced"].as_bool()),
        (Some(true), Some(true))
    );

    let listed = last_json(&run(s(&["alerts", "--device-dir", dev, "--json"])).await);
    let decided = listed["recent"]
        .as_array()
        .expect("recent")
        .iter()
        .find(|a| a["id"] == id.as_str())
        .expect("the decided alert is listed as recent")
        .clone();
    assert_eq!(decided["disposition"]["corrected_plate"], "ZZ9999");
    assert_eq!(decided["upload"], "pending");

    // The decided alert is due at once; it uploads with the correction. Kept an hour after.
    let out = run(s(&[
        "sync",
        "--device-dir",
        dev,
        "--json",
        "--purge-grace-secs",
        "3600",
    ]))
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let rows = server_rows(&env).await;
    let row = rows.iter().find(|r| r.id == id).expect("uploaded");
    assert_eq!(row.plate, "ZZ9999");
    assert_eq!(row.alert_decision.as_deref(), Some("rejected"));
    assert!(
        row.match_tags.iter().any(|t| t == "misread_corrected"),
        "{row:?}"
    );
    let out = run(act(&["accept", &short])).await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("already uploaded"),
        "{}",
        stderr(&out)
    );
    for p in &plates {
        assert!(!stderr(&out).contains(p.as_str()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hot_list_sync_raises_retro_hits_on_reads_still_on_the_device() {
    let env = start().await;
    let tmp = tempfile::tempdir().expect("temp dir");
    let images = tmp.path().join("images");
    std::fs::create_dir_all(&images).expect("mkdir");
    let plates = scenes(&images, 3, 11);
    publish(&env, "plate;category;priority\nAAA111;stolen;80\n").await;
    let device = tmp.path().join("device");
    let dev = device.to_str().expect("utf-8");
    // Scanned while the server cannot take uploads: the encounters stay on the device.
    env.fail_uploads.store(true, Ordering::SeqCst);
    let out = run(scan_acked(&env, &images, &device, &[])).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let summary = last_json(&out);
    assert_eq!(summary["alerts"], 0, "{summary}");
    let pending = summary["pending"].as_u64().expect("pending");
    assert!(pending >= 2, "{summary}");

    // The list grows to hold the plates just read: the sync finds them on the device.
    let mut list = String::from("plate;category;priority\nAAA111;stolen;80\n");
    for p in &plates {
        list.push_str(&format!("{p};stolen;70\n"));
    }
    publish(&env, &list).await;
    let out = run(s(&["sync", "--device-dir", dev, "--json", "--no-upload"])).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let v = last_json(&out);
    assert_eq!(v["hotlists"]["lists"][0]["outcome"], "delta", "{v}");
    let hits = v["retro_hits"]["hits"].as_u64().expect("hits");
    assert!(hits >= 1, "{v}");
    assert_eq!(v["retro_hits"]["pending"], v["retro_hits"]["reads"], "{v}");
    let text = run(s(&["sync", "--device-dir", dev, "--no-upload"])).await;
    let text = String::from_utf8_lossy(&text.stdout).to_string();
    assert!(!text.contains("retro-hits"), "raised once: {text}");
    for p in &plates {
        assert!(!text.contains(p.as_str()), "plate text in the sync output");
    }
    let again = last_json(&run(s(&["sync", "--device-dir", dev, "--json", "--no-upload"])).await);
    assert_eq!(again["retro_hits"]["hits"], 0, "{again}");

    // They are alerts now, waiting for a disposition, marked as retro-hits.
    let listed = last_json(&run(s(&["alerts", "--device-dir", dev, "--json"])).await);
    let waiting = listed["waiting"].as_array().expect("waiting");
    assert_eq!(
        waiting.len() as u64,
        v["retro_hits"]["pending"].as_u64().expect("n")
    );
    assert!(
        waiting.iter().all(|a| a["matches"][0]["retro"] == true),
        "{listed}"
    );
    let status = last_json(&run(s(&["status", "--device-dir", dev, "--json"])).await);
    assert_eq!(
        status["alerts_waiting"].as_u64(),
        Some(waiting.len() as u64)
    );
    let id = waiting[0]["id"].as_str().expect("id").to_string();
    let out = run(s(&["alerts", "accept", &id, "--device-dir", dev])).await;
    assert!(out.status.success(), "{}", stderr(&out));

    // Uploaded with the match's tags and the officer's decision.
    env.fail_uploads.store(false, Ordering::SeqCst);
    let out = run(s(&["sync", "--device-dir", dev, "--json"])).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let rows = server_rows(&env).await;
    assert_eq!(rows.len() as u64, pending);
    let row = rows.iter().find(|r| r.id == id).expect("uploaded");
    assert_eq!(row.alert_decision.as_deref(), Some("accepted"));
    assert!(row.match_tags.iter().any(|t| t == "retro_hit"), "{row:?}");
    assert!(
        row.match_tags.iter().any(|t| t == "stolen_vehicle"),
        "{row:?}"
    );
    let tagged = rows
        .iter()
        .filter(|r| r.match_tags.iter().any(|t| t == "retro_hit"))
        .count();
    assert_eq!(tagged, waiting.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sequence_scan_stores_a_context_image_for_every_encounter() {
    let env = start().await;
    let tmp = tempfile::tempdir().expect("temp dir");
    let frames = tmp.path().join("frames");
    let plate = write_pass(&frames, 3, 10);
    publish(&env, &format!("plate;category\n{plate};stolen\n")).await;
    let device = tmp.path().join("device");
    let out = run(scan_acked(&env, &frames, &device, &["--sequence", "30"])).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let summary = last_json(&out);
    assert!(
        summary["encounters"].as_u64().expect("encounters") >= 1,
        "{summary}"
    );
    assert_eq!(summary["uploaded"], summary["encounters"], "{summary}");
    let rows = server_rows(&env).await;
    assert_eq!(
        rows.len() as u64,
        summary["encounters"].as_u64().expect("n")
    );
    for r in &rows {
        let jpeg = r.context_image.as_ref().expect("a context image");
        let img = image::load_from_memory(jpeg).expect("the context image decodes");
        // Trimmed to the vehicle (plates at most 40 px high, about 90 wide: six plate widths,
        // eleven plate heights), never the 1280x720 frame.
        let (w, h) = (img.width(), img.height());
        assert!(w <= 640 && h <= 560, "{w}x{h}");
        assert!(w * h < 1280 * 720 / 3, "{w}x{h}");
    }
}

/// A child process killed (by its handle) if the test ends before it exits.
struct KillOnDrop(Option<std::process::Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Reads the child's stdout lines into a channel (the test awaits them with a deadline).
fn lines_of(out: std::process::ChildStdout) -> tokio::sync::mpsc::UnboundedReceiver<String> {
    use std::io::BufRead;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The next JSON line satisfying `pred` (every line read is kept in `seen`), within `secs`.
async fn wait_line(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>,
    seen: &mut Vec<String>,
    secs: u64,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(line)) => {
                seen.push(line.clone());
                let v: Value =
                    serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"));
                if pred(&v) {
                    return v;
                }
            }
            Ok(None) => panic!("sync --watch ended early:\n{}", seen.join("\n")),
            Err(_) => panic!("no such round within {secs}s:\n{}", seen.join("\n")),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_watch_uploads_and_pulls_every_interval_until_interrupted() {
    let env = start().await;
    let tmp = tempfile::tempdir().expect("temp dir");
    let first = tmp.path().join("first");
    std::fs::create_dir_all(&first).expect("mkdir");
    let mut plates = scenes(&first, 1, 5);
    publish(&env, "plate;category\nAAA111;stolen\n").await;
    let device = tmp.path().join("device");
    let dev = device.to_str().expect("utf-8");
    let out = run(scan_acked(&env, &first, &device, &[])).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let before = last_json(&out)["encounters"].as_u64().expect("encounters");

    let mut child = KillOnDrop(Some(
        Command::new(BIN)
            .args(s(&[
                "sync",
                "--watch",
                "--interval",
                "1s",
                "--json",
                "--device-dir",
                dev,
            ]))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start sync --watch"),
    ));
    let pid = child.0.as_ref().expect("child").id();
    let stdout = child.0.as_mut().and_then(|c| c.stdout.take());
    let mut rx = lines_of(stdout.expect("stdout"));
    let mut seen = Vec::new();
    let v = wait_line(&mut rx, &mut seen, 60, |v| v["round"] == 1).await;
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["hotlists"]["versions"]["stolen"], 1, "{v}");

    // A list delta published meanwhile arrives at a later round.
    publish(&env, "plate;category\nAAA111;stolen\nBBB222;stolen\n").await;
    let v = wait_line(&mut rx, &mut seen, 60, |v| {
        v["hotlists"]["versions"]["stolen"] == 2
    })
    .await;
    assert_eq!(v["hotlists"]["added"], 1, "{v}");

    // Encounters scanned meanwhile while uploads fail wait on the device (the rounds fail
    // and back off), then arrive once the server takes them again.
    let second = tmp.path().join("second");
    std::fs::create_dir_all(&second).expect("mkdir");
    plates.extend(scenes(&second, 2, 77));
    env.fail_uploads.store(true, Ordering::SeqCst);
    let out = run(scan_acked(&env, &second, &device, &[])).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let scanned = last_json(&out)["encounters"].as_u64().expect("encounters");
    assert!(scanned >= 1);
    env.fail_uploads.store(false, Ordering::SeqCst);
    let stored_before = |seen: &[String]| -> u64 {
        seen.iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter_map(|v| v["upload"]["totals"]["stored"].as_u64())
            .sum()
    };
    let mut stored = stored_before(&seen);
    while stored < scanned {
        wait_line(&mut rx, &mut seen, 90, |v| v["upload"].is_object()).await;
        stored = stored_before(&seen);
    }
    let v: Value = serde_json::from_str(seen.last().expect("a line")).expect("JSON");
    assert_eq!(v["upload"]["pending"], 0, "{v}");
    assert_eq!(server_rows(&env).await.len() as u64, before + scanned);

    // SIGINT stops it cleanly.
    let killed = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let v = wait_line(&mut rx, &mut seen, 30, |v| v["stopped"] == true).await;
    assert!(v["rounds"].as_u64().expect("rounds") >= 3, "{v}");
    let mut c = child.0.take().expect("child");
    let status = tokio::task::spawn_blocking(move || c.wait())
        .await
        .expect("join")
        .expect("wait");
    assert!(status.success(), "{status:?}");
    let all = seen.join("\n");
    for p in &plates {
        assert!(!all.contains(p.as_str()), "plate text in the watch output");
    }
}
