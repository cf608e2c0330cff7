//! End to end over a real loopback socket with a rustls-capable reqwest client, on both
//! backends: bootstrap, login, user creation, device registration, upload, retry, revocation,
//! and the audit chain recording the client address.

use std::net::SocketAddr;

use platewatch_server::{AppState, bootstrap, serve_loopback};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{ADMIN, ADMIN_PASSWORD, PASSWORD, backends, encounter, test_config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_flow_over_loopback() {
    for db in backends().await {
        let b = db.repo.backend();
        let state = AppState::new(db.repo.clone(), test_config());
        bootstrap(&state).await.expect("bootstrap");
        let (addr, server) = serve_loopback(state).await.expect("serve");
        let base = format!("http://{addr}");
        let http = reqwest::Client::builder()
            .user_agent("platewatch-test/1")
            .build()
            .expect("client");

        let post = |path: &str, token: Option<&str>, body: Value| {
            let mut req = http.post(format!("{base}{path}")).json(&body);
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            req.send()
        };
        let login = |user: &'static str, pw: &'static str| {
            post(
                "/v1/login",
                None,
                json!({ "username": user, "password": pw }),
            )
        };

        let resp = login(ADMIN, ADMIN_PASSWORD).await.expect("login");
        assert_eq!(resp.status(), StatusCode::OK, "{b}");
        let admin: Value = resp.json().await.expect("json");
        let admin = admin["token"].as_str().expect("token").to_string();

        let resp = post(
            "/v1/users",
            Some(&admin),
            json!({ "username": "ofc.e2e", "password": PASSWORD, "role": "officer" }),
        )
        .await
        .expect("create user");
        assert_eq!(resp.status(), StatusCode::CREATED, "{b}");

        let officer: Value = login("ofc.e2e", PASSWORD)
            .await
            .expect("login")
            .json()
            .await
            .expect("json");
        assert_eq!(officer["role"], "officer");
        let officer = officer["token"].as_str().expect("token").to_string();
        let resp = post(
            "/v1/devices",
            Some(&officer),
            json!({ "name": "patrol tablet" }),
        )
        .await
        .expect("device");
        assert_eq!(resp.status(), StatusCode::CREATED, "{b}");
        let device: Value = resp.json().await.expect("json");
        let (device_id, device) = (
            device["id"].as_i64().expect("id"),
            device["token"].as_str().expect("t").to_string(),
        );

        let resp = post(
            "/v1/sessions",
            Some(&device),
            json!({ "id": crate::common::SESSION_ID, "reason_code": "patrol", "case_number": "2026-001234" }),
        )
        .await
        .expect("session");
        assert_eq!(resp.status(), StatusCode::CREATED, "{b}");
        let batch = json!({ "encounters": [encounter("7ABC123"), encounter("5XYZ890")] });
        for expected in [(2, 0), (0, 2)] {
            let resp = post("/v1/encounters", Some(&device), batch.clone())
                .await
                .expect("upload");
            assert_eq!(resp.status(), StatusCode::OK, "{b}");
            let body: Value = resp.json().await.expect("json");
            assert_eq!(
                (body["stored"].as_u64(), body["duplicates"].as_u64()),
                (Some(expected.0), Some(expected.1)),
                "{b}"
            );
        }

        let resp = http
            .delete(format!("{base}/v1/devices/{device_id}"))
            .bearer_auth(&admin)
            .send()
            .await
            .expect("revoke");
        assert_eq!(resp.status(), StatusCode::NO_CONTENT, "{b}");
        let resp = post("/v1/encounters", Some(&device), batch)
            .await
            .expect("upload");
        assert_eq!(
            resp.status(),
            StatusCode::UNAUTHORIZED,
            "{b}: revoked device"
        );

        let resp = http
            .post(format!("{base}/v1/encounters"))
            .bearer_auth(&officer)
            .body("{")
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{b}");

        let report: Value = http
            .get(format!("{base}/v1/audit/verify"))
            .bearer_auth(&admin)
            .send()
            .await
            .expect("verify")
            .json()
            .await
            .expect("json");
        assert_eq!(report["intact"], true, "{b}: {report}");
        assert!(report["rows"].as_u64().expect("rows") >= 8, "{b}: {report}");
        let rows = db.repo.audit_rows(1, 100).await.expect("audit");
        let login_row = rows
            .iter()
            .find(|r| r.action == "login")
            .expect("a login row");
        assert_eq!(
            login_row.client.as_deref(),
            Some("127.0.0.1 platewatch-test/1"),
            "{b}"
        );
        server.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_bootstraps_and_answers() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let config = platewatch_server::Config {
        listen: SocketAddr::from(([127, 0, 0, 1], port)),
        database_url: format!("sqlite://{}", dir.path().join("pw.db").display()),
        ..test_config()
    };
    let server = tokio::spawn(platewatch_server::serve(config));
    let http = reqwest::Client::new();
    let mut answer = None;
    for _ in 0..100 {
        let sent = http
            .post(format!("http://127.0.0.1:{port}/v1/login"))
            .json(&json!({ "username": ADMIN, "password": ADMIN_PASSWORD }))
            .send()
            .await;
        if let Ok(resp) = sent {
            answer = Some(resp.status());
            break;
        }
        assert!(!server.is_finished(), "serve stopped early");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(answer, Some(StatusCode::OK));
    assert!(dir.path().join("pw.db").exists());
    server.abort();
}
