//! The security suite: token scopes (every session-only operation of the OpenAPI document
//! refuses the device tokens of every role), logout, session revocation and disabled users,
//! device token lifetime and rotation, login throttling (one user, and a flood from one
//! address over loopback), slow and idle clients cut off while the server keeps serving,
//! encounters bound to their uploader's scanning sessions, and inputs that must never be
//! echoed or accepted.

use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{
    ADMIN, ADMIN_PASSWORD, Env, PASSWORD, SESSION_ID, backends, encounter, env, env_with, sqlite,
    test_config,
};

async fn user_id(env: &Env, name: &str) -> i64 {
    env.state
        .repo
        .user_id_by_name(name)
        .await
        .expect("query")
        .expect("user exists")
}

#[tokio::test]
async fn device_tokens_of_every_role_are_refused_outside_device_work() {
    for db in backends().await {
        let env = env(db).await;
        let b = env.backend();
        let mut devices = Vec::new();
        for (name, role) in [
            ("ofc.scope", "officer"),
            ("ana.scope", "analyst"),
            ("adm.scope", "admin"),
        ] {
            let session = env.user(name, role, true).await;
            devices.push((role, env.device(&session).await.1));
        }
        let doc = platewatch_server::openapi::document();
        let mut checked = 0;
        for (path, ops) in doc["paths"].as_object().expect("paths") {
            for (method, op) in ops.as_object().expect("ops") {
                if op["x-platewatch-token"] != "session" {
                    continue;
                }
                let uri = path.replace("{id}", "1").replace("{name}", "somelist");
                let m = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).expect("m");
                let body = matches!(method.as_str(), "post" | "put" | "patch").then(|| json!({}));
                for (role, token) in &devices {
                    let (status, answer) =
                        env.call(m.clone(), &uri, Some(token), body.clone()).await;
                    assert_eq!(
                        status,
                        StatusCode::FORBIDDEN,
                        "{b}: {method} {path} with an {role}'s device token: {answer}"
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked >= 19 * 3, "{b}: {checked} probes");
        // Device work still works with them.
        for (role, token) in &devices {
            let (status, _) = env
                .call(Method::GET, "/v1/reason-codes", Some(token), None)
                .await;
            assert_eq!(status, StatusCode::OK, "{b}: {role}");
            let (status, _) = env
                .call(Method::GET, "/v1/hotlists", Some(token), None)
                .await;
            assert_eq!(status, StatusCode::OK, "{b}: {role}");
        }
    }
}

#[tokio::test]
async fn logout_session_revocation_and_disabled_users_refuse_tokens_at_once() {
    for db in backends().await {
        let env = env(db).await;
        let b = env.backend();
        let first = env.user("ofc.leave", "officer", false).await;
        let second = env.login("ofc.leave", PASSWORD, None).await;
        let (_, device) = env.device(&second).await;
        let uid = user_id(&env, "ofc.leave").await;

        let (status, _) = env
            .call(Method::POST, "/v1/logout", Some(&first), None)
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{b}");
        let (status, _) = env
            .call(Method::GET, "/v1/reason-codes", Some(&first), None)
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{b}: logged out");
        let (status, _) = env
            .call(Method::POST, "/v1/logout", Some(&device), None)
            .await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "{b}: a device token is not a login"
        );

        let third = env.login("ofc.leave", PASSWORD, None).await;
        let (status, body) = env
            .call(
                Method::POST,
                &format!("/v1/users/{uid}/revoke-sessions"),
                Some(&env.admin),
                None,
            )
            .await;
        assert_eq!(
            (status, body["revoked"].as_u64()),
            (StatusCode::OK, Some(2)),
            "{b}: {body}"
        );
        for t in [&second, &third] {
            let (status, _) = env
                .call(Method::GET, "/v1/reason-codes", Some(t), None)
                .await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{b}: revoked");
        }
        let (status, _) = env
            .call(Method::GET, "/v1/reason-codes", Some(&device), None)
            .await;
        assert_eq!(
            status,
            StatusCode::OK,
            "{b}: devices are revoked on their own"
        );

        let fourth = env.login("ofc.leave", PASSWORD, None).await;
        let (status, body) = env
            .call(
                Method::PATCH,
                &format!("/v1/users/{uid}"),
                Some(&env.admin),
                Some(json!({ "disabled": true })),
            )
            .await;
        assert_eq!(
            (status, body["disabled"].as_bool()),
            (StatusCode::OK, Some(true)),
            "{b}: {body}"
        );
        for t in [&fourth, &device] {
            let (status, _) = env
                .call(Method::GET, "/v1/reason-codes", Some(t), None)
                .await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{b}: disabled");
        }
        let (status, body) = env
            .call(
                Method::POST,
                "/v1/login",
                None,
                Some(json!({ "username": "ofc.leave", "password": PASSWORD })),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{b}: {body}");
        let admin_id = user_id(&env, ADMIN).await;
        let (status, _) = env
            .call(
                Method::PATCH,
                &format!("/v1/users/{admin_id}"),
                Some(&env.admin),
                Some(json!({ "disabled": true })),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "{b}: an admin cannot lock themselves out"
        );
        let (status, _) = env
            .call(
                Method::PATCH,
                &format!("/v1/users/{uid}"),
                Some(&env.admin),
                Some(json!({ "disabled": false })),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{b}");
        let (status, _) = env
            .call(Method::GET, "/v1/reason-codes", Some(&device), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{b}: enabled again");
        let rows = env.state.repo.audit_rows(1, 100_000).await.expect("audit");
        for action in [
            "logout",
            "user.revoke_sessions",
            "user.disable",
            "user.enable",
        ] {
            assert!(
                rows.iter().any(|r| r.action == action),
                "{b}: {action} audited"
            );
        }
    }
}

#[tokio::test]
async fn device_tokens_expire_and_rotate() {
    let config = platewatch_server::Config {
        device_ttl_ms: 60_000,
        device_renew_grace_ms: 0,
        ..test_config()
    };
    let env = env_with(sqlite().await, config).await;
    let session = env.user("ofc.rotate", "officer", false).await;
    let (id, old) = env.device(&session).await;
    let (status, body) = env
        .call(Method::POST, "/v1/devices/renew", Some(&old), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["id"].as_i64(), Some(id));
    let new = body["token"].as_str().expect("token").to_string();
    let left = body["expires_at_ms"].as_i64().expect("expiry") - platewatch_server::now_ms();
    assert!((50_000..=60_000).contains(&left), "{left}");
    let (status, _) = env
        .call(Method::GET, "/v1/reason-codes", Some(&new), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = env
        .call(Method::GET, "/v1/reason-codes", Some(&old), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "no grace configured");
    let (status, _) = env
        .call(Method::POST, "/v1/devices/renew", Some(&session), None)
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a login session is not renewed"
    );

    let short = platewatch_server::Config {
        device_ttl_ms: 1,
        ..test_config()
    };
    let env = env_with(sqlite().await, short).await;
    let session = env.user("ofc.expire", "officer", false).await;
    let (_, device) = env.device(&session).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let (status, _) = env
        .call(Method::GET, "/v1/reason-codes", Some(&device), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "expired");
}

#[tokio::test]
async fn repeated_wrong_passwords_lock_the_user_for_a_growing_time() {
    let env = env(sqlite().await).await;
    env.user("ofc.guess", "officer", false).await;
    let attempt = |password: &'static str| {
        env.call(
            Method::POST,
            "/v1/login",
            None,
            Some(json!({ "username": "ofc.guess", "password": password })),
        )
    };
    let mut statuses = Vec::new();
    for _ in 0..20 {
        statuses.push(attempt("wrong-password-000").await);
    }
    let unauthorized = statuses
        .iter()
        .filter(|(s, _)| *s == StatusCode::UNAUTHORIZED)
        .count();
    let throttled: Vec<_> = statuses
        .iter()
        .filter(|(s, _)| *s == StatusCode::TOO_MANY_REQUESTS)
        .collect();
    assert_eq!(unauthorized, 10, "the free failures");
    assert_eq!(throttled.len(), 10);
    assert_eq!(throttled[0].1["code"], "too_many_attempts");
    assert!(
        throttled[0].1["retry_after_secs"]
            .as_u64()
            .is_some_and(|s| s >= 1)
    );
    // Locked: even the right password waits.
    let (status, _) = attempt(PASSWORD).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    // Others are not locked out by it.
    env.login(ADMIN, ADMIN_PASSWORD, None).await;
    // The lock doubles with each failure after it ends: wait out the first (1 s).
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let (status, _) = attempt("wrong-password-000").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = attempt(PASSWORD).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "now 2 s: {body}");
    assert!(
        body["retry_after_secs"].as_u64().is_some_and(|s| s == 2),
        "{body}"
    );
}

/// A server on an ephemeral loopback port with `config`, and its base URL.
async fn loopback(config: platewatch_server::Config) -> (Env, String) {
    let env = env_with(sqlite().await, config).await;
    let (addr, _task) = platewatch_server::serve_loopback(env.state.clone())
        .await
        .expect("serve");
    (env, format!("http://{addr}"))
}

#[tokio::test]
async fn a_login_flood_from_one_address_costs_almost_no_password_hashing() {
    let (_env, base) = loopback(test_config()).await;
    let client = reqwest::Client::new();
    let started = Instant::now();
    let mut tasks = Vec::new();
    // 100 requests a second for 3 seconds, each for another (unknown) username.
    for i in 0..300u32 {
        let at = started + Duration::from_millis(u64::from(i) * 10);
        let client = client.clone();
        let url = format!("{base}/v1/login");
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(at.into()).await;
            let r = client
                .post(url)
                .json(&json!({ "username": format!("nobody{i}"), "password": "guess-guess-guess" }))
                .send()
                .await
                .expect("send");
            (r.status(), r.headers().contains_key("retry-after"))
        }));
    }
    let mut hashed = 0;
    let mut throttled = 0;
    for t in tasks {
        match t.await.expect("task") {
            (s, _) if s == reqwest::StatusCode::UNAUTHORIZED => hashed += 1,
            (s, true) if s == reqwest::StatusCode::TOO_MANY_REQUESTS => throttled += 1,
            other => panic!("unexpected answer {other:?}"),
        }
    }
    let elapsed = started.elapsed();
    // 20 free failures, then locks of 1 s, 2 s, 4 s: at most one more hash per doubling.
    assert!(hashed <= 20 + 3, "{hashed} passwords hashed in {elapsed:?}");
    assert_eq!(hashed + throttled, 300);
}

async fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue, // an error response before the close
        }
    }
}

#[tokio::test]
async fn slow_and_idle_clients_are_cut_off_while_the_server_keeps_serving() {
    let mut config = test_config();
    config.connections.header_timeout_ms = 1_000;
    config.connections.body_timeout_ms = 1_000;
    config.connections.max_connections = 4;
    let (_env, base) = loopback(config).await;
    let addr = base.trim_start_matches("http://").to_string();
    let client = reqwest::Client::new();
    let served = |client: reqwest::Client, base: String| async move {
        client
            .get(format!("{base}/openapi.json"))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map(|r| r.status().is_success())
            .unwrap_or(false)
    };

    // Headers that never end (one more header line every 300 ms).
    let mut slow_headers = TcpStream::connect(&addr).await.expect("connect");
    slow_headers
        .write_all(b"POST /v1/login HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    let trickle = {
        let started = Instant::now();
        async move {
            for _ in 0..10 {
                tokio::time::sleep(Duration::from_millis(300)).await;
                if slow_headers.write_all(b"X-Slow: 1\r\n").await.is_err() {
                    break;
                }
            }
            (
                closed_within(&mut slow_headers, Duration::from_secs(5)).await,
                started.elapsed(),
            )
        }
    };
    // A body that never arrives in full.
    let mut slow_body = TcpStream::connect(&addr).await.expect("connect");
    slow_body
        .write_all(b"POST /v1/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"user")
        .await
        .expect("write");
    // A connection that never sends anything.
    let mut idle = TcpStream::connect(&addr).await.expect("connect");

    assert!(
        served(client.clone(), base.clone()).await,
        "served beside the slow clients"
    );
    let started = Instant::now();
    assert!(
        closed_within(&mut slow_body, Duration::from_secs(5)).await,
        "slow body cut off"
    );
    assert!(
        closed_within(&mut idle, Duration::from_secs(5)).await,
        "idle connection closed"
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    let (closed, took) = trickle.await;
    assert!(
        closed && took < Duration::from_secs(4),
        "slow headers cut off after {took:?}"
    );

    // At the connection cap, idle connections are closed and a real client is served.
    let mut hogs = Vec::new();
    for _ in 0..4 {
        hogs.push(TcpStream::connect(&addr).await.expect("connect"));
    }
    let started = Instant::now();
    assert!(
        served(client.clone(), base.clone()).await,
        "served after the idle ones"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn encounters_must_name_a_scanning_session_of_their_uploader() {
    for db in backends().await {
        let env = env(db).await;
        let b = env.backend();
        let owner = env.user("ofc.owner", "officer", false).await;
        let (_, owner_device) = env.device(&owner).await; // opens SESSION_ID
        let other = env.user("ofc.other", "officer", false).await;
        let (_, other_device) = env.device(&other).await;
        let upload = |token: String, row: Value| {
            let env = &env;
            async move {
                env.call(
                    Method::POST,
                    "/v1/encounters",
                    Some(&token),
                    Some(json!({ "encounters": [row] })),
                )
                .await
            }
        };
        let (_, body) = upload(other_device.clone(), encounter("7ABC123")).await;
        assert_eq!(body["rejected"], 1, "{b}: another user's session: {body}");
        let mut unknown = encounter("7ABC123");
        unknown["session_id"] = json!(uuid::Uuid::new_v4().to_string());
        let (_, body) = upload(owner_device.clone(), unknown).await;
        assert_eq!(body["rejected"], 1, "{b}: no such session: {body}");
        let (_, body) = upload(owner_device.clone(), encounter("7ABC123")).await;
        assert_eq!(body["stored"], 1, "{b}: {body}");

        // The session ended ten minutes ago (by the server's clock).
        let ended = platewatch_server::now_ms() - 600_000;
        assert!(
            env.state
                .repo
                .end_scan_session(SESSION_ID, ended)
                .await
                .expect("end")
        );
        let mut during = encounter("7ABC124");
        during["captured_at_ms"] = json!(ended - 60_000);
        let (_, body) = upload(owner_device.clone(), during).await;
        assert_eq!(
            body["stored"], 1,
            "{b}: captured during the session, uploaded after: {body}"
        );
        let (_, body) = upload(owner_device.clone(), encounter("7ABC125")).await;
        assert_eq!(
            body["rejected"], 1,
            "{b}: captured after the session ended: {body}"
        );
    }
}

#[tokio::test]
async fn values_are_never_echoed_and_weak_identities_are_refused() {
    let env = env(sqlite().await).await;
    let session = env.user("ofc.echo", "officer", false).await;
    let (_, device) = env.device(&session).await;
    let mut numeric = encounter("X");
    numeric["plate"] = json!(7654321);
    let (_, body) = env
        .call(
            Method::POST,
            "/v1/encounters",
            Some(&device),
            Some(json!({ "encounters": [numeric] })),
        )
        .await;
    assert_eq!(body["rejected"], 1, "{body}");
    assert!(!body.to_string().contains("7654321"), "{body}");
    let (status, body) = env
        .call(
            Method::POST,
            "/v1/login",
            None,
            Some(json!({ "username": "ofc.echo", "password": 98765432109876i64 })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(!body.to_string().contains("98765432109876"), "{body}");

    for (name, password, want) in [
        ("ofc.spaces", "            ", StatusCode::BAD_REQUEST),
        ("ofc.same", "aaaaaaaaaaaaaaaa", StatusCode::BAD_REQUEST),
        ("ADMIN", PASSWORD, StatusCode::CONFLICT),
        ("Ofc.Echo", PASSWORD, StatusCode::CONFLICT),
    ] {
        let (status, body) = env
            .call(
                Method::POST,
                "/v1/users",
                Some(&env.admin),
                Some(json!({ "username": name, "password": password, "role": "officer" })),
            )
            .await;
        assert_eq!(status, want, "{name}: {body}");
    }
    for name in [".", ".."] {
        let (status, body) =
            crate::hotlists::upload_raw(&env, &env.admin, &format!("list={name}"), "7ABC123\n")
                .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "list {name:?}: {body}");
    }
}

#[tokio::test]
async fn answers_are_never_cached_nor_sniffed() {
    let env = env(sqlite().await).await;
    for (uri, token) in [
        ("/v1/reason-codes", Some(env.admin.as_str())),
        ("/v1/nope", None),
    ] {
        let req = axum::http::Request::builder()
            .uri(uri)
            .header("authorization", format!("Bearer {}", token.unwrap_or("x")))
            .body(axum::body::Body::empty())
            .expect("request");
        let resp = tower::ServiceExt::oneshot(env.app.clone(), req)
            .await
            .expect("infallible");
        let h = resp.headers();
        assert_eq!(h["cache-control"], "no-store", "{uri}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{uri}");
        assert_eq!(h["x-frame-options"], "DENY", "{uri}");
    }
}
