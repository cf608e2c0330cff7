//! Handler tests through `oneshot` on both backends: the auth matrix (no token, revoked token,
//! each role lacking permission), rules-of-behaviour acknowledgement, per-row ingest
//! validation, idempotent retry, and 4xx answers (never 500) to malformed requests.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use platewatch_server::Config;
use serde_json::{Value, json};

use crate::common::{ADMIN, ADMIN_PASSWORD, Env, backends, encounter, env, env_with, test_config};

/// An endpoint, a valid body for it and the roles allowed to call it.
struct Endpoint {
    method: Method,
    uri: String,
    body: Option<Value>,
    allowed: &'static [&'static str],
    /// Whether it is called with a device token (else a session token).
    device: bool,
}

fn endpoints(device_id: i64) -> Vec<Endpoint> {
    vec![
        Endpoint {
            method: Method::POST,
            uri: "/v1/devices".into(),
            body: Some(json!({ "name": "tablet" })),
            allowed: &["officer", "analyst", "admin"],
            device: false,
        },
        Endpoint {
            method: Method::DELETE,
            uri: format!("/v1/devices/{device_id}"),
            body: None,
            allowed: &["admin"],
            device: false,
        },
        Endpoint {
            method: Method::PUT,
            uri: "/v1/rules".into(),
            body: Some(json!({ "text": "Use only for official purposes." })),
            allowed: &["admin"],
            device: false,
        },
        Endpoint {
            method: Method::GET,
            uri: "/v1/rules".into(),
            body: None,
            allowed: &["officer", "analyst", "admin", "auditor"],
            device: false,
        },
        Endpoint {
            method: Method::POST,
            uri: "/v1/users".into(),
            body: Some(
                json!({ "username": "new.user", "password": "a-long-password-42", "role": "officer" }),
            ),
            allowed: &["admin"],
            device: false,
        },
        Endpoint {
            method: Method::POST,
            uri: "/v1/encounters".into(),
            body: Some(json!({ "encounters": [encounter("7ABC123")] })),
            allowed: &["officer", "analyst"],
            device: true,
        },
        Endpoint {
            method: Method::GET,
            uri: "/v1/audit/verify".into(),
            body: None,
            allowed: &["auditor", "admin"],
            device: false,
        },
    ]
}

#[tokio::test]
async fn every_endpoint_refuses_missing_bad_and_revoked_tokens_and_lacking_roles() {
    for db in backends().await {
        let env = env(db).await;
        let b = env.backend();
        let mut sessions = vec![("admin", env.admin.clone())];
        for role in ["officer", "analyst", "auditor"] {
            sessions.push((
                role,
                env.user(&format!("the.{role}"), role, role == "analyst")
                    .await,
            ));
        }
        // Device tokens for the roles that may register devices (auditors may not).
        let mut devices = Vec::new();
        for (role, session) in &sessions {
            if *role != "auditor" {
                devices.push((*role, env.device(session).await.1));
            }
        }
        let (revoked_id, revoked) = env.device(&sessions[1].1).await;
        let (status, _) = env
            .call(
                Method::DELETE,
                &format!("/v1/devices/{revoked_id}"),
                Some(&env.admin),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (target, _) = env.device(&sessions[1].1).await;

        for ep in endpoints(target) {
            let what = format!("{b} {} {}", ep.method, ep.uri);
            let bad_tokens = [
                None,
                Some(revoked.as_str()),
                Some("pwd_0000"),
                Some("pws_0000"),
                Some("junk"),
            ];
            for token in bad_tokens {
                let (status, body) = env
                    .call(ep.method.clone(), &ep.uri, token, ep.body.clone())
                    .await;
                assert_eq!(
                    status,
                    StatusCode::UNAUTHORIZED,
                    "{what} with {token:?}: {body}"
                );
                assert!(body["error"].is_string(), "{what}: {body}");
            }
            let mut req = Request::builder().method(ep.method.clone()).uri(&ep.uri);
            req = req.header("authorization", "Basic YWRtaW46eA==");
            let (status, _) = env.send(req.body(Body::empty()).expect("request")).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{what} with basic auth");

            let tokens: &[(&str, String)] = if ep.device { &devices } else { &sessions };
            for (role, token) in tokens {
                if ep.allowed.contains(role) {
                    continue;
                }
                let (status, body) = env
                    .call(ep.method.clone(), &ep.uri, Some(token), ep.body.clone())
                    .await;
                assert_eq!(status, StatusCode::FORBIDDEN, "{what} as {role}: {body}");
            }
            if ep.device {
                // A session token cannot upload, even for an allowed role; nor can an auditor.
                for (role, token) in &sessions {
                    let (status, body) = env
                        .call(ep.method.clone(), &ep.uri, Some(token), ep.body.clone())
                        .await;
                    assert_eq!(
                        status,
                        StatusCode::FORBIDDEN,
                        "{what} session of {role}: {body}"
                    );
                }
            }
            // An allowed role succeeds.
            let allowed = tokens
                .iter()
                .find(|(r, _)| ep.allowed.contains(r))
                .expect("an allowed role");
            let (status, body) = env
                .call(
                    ep.method.clone(),
                    &ep.uri,
                    Some(&allowed.1),
                    ep.body.clone(),
                )
                .await;
            assert!(
                status.is_success(),
                "{what} as {}: {status} {body}",
                allowed.0
            );
            if ep.uri == "/v1/rules" && ep.method == Method::PUT {
                // New rules: every token is refused until its user logs in again acknowledging.
                let (status, body) = env
                    .call(Method::GET, "/v1/audit/verify", Some(&env.admin), None)
                    .await;
                assert_eq!(status, StatusCode::FORBIDDEN, "{b}: {body}");
                assert_eq!(body["code"], "rules_not_acknowledged");
                for (role, token) in sessions.iter_mut() {
                    let name = if *role == "admin" {
                        ADMIN.to_string()
                    } else {
                        format!("the.{role}")
                    };
                    let pw = if *role == "admin" {
                        ADMIN_PASSWORD
                    } else {
                        crate::common::PASSWORD
                    };
                    *token = env
                        .login(&name, pw, Some(body["rules_version"].as_i64().expect("v")))
                        .await;
                }
            }
        }
        // A device token cannot register more devices.
        let (status, _) = env
            .call(
                Method::POST,
                "/v1/devices",
                Some(&devices[1].1),
                Some(json!({ "name": "x" })),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{b}");
    }
}

#[tokio::test]
async fn login_requires_the_current_rules_acknowledged() {
    for db in backends().await {
        let env = env(db).await;
        let b = env.backend();
        let officer = env.user("ofc.jones", "officer", false).await;
        let (_, device) = env.device(&officer).await;
        let (status, body) = env
            .call(
                Method::PUT,
                "/v1/rules",
                Some(&env.admin),
                Some(json!({ "text": "Rules v1" })),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{b}: {body}");
        assert_eq!(body["version"], 1);

        let login = |ack: Option<i64>, password: &str| json!({ "username": "ofc.jones", "password": password, "acknowledge_rules_version": ack });
        let (status, body) = env
            .call(
                Method::POST,
                "/v1/login",
                None,
                Some(login(None, crate::common::PASSWORD)),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{b}: {body}");
        assert_eq!(body["code"], "rules_not_acknowledged");
        assert_eq!(body["rules_version"], 1);
        assert_eq!(body["rules_text"], "Rules v1");
        let (status, _) = env
            .call(
                Method::POST,
                "/v1/login",
                None,
                Some(login(Some(0), crate::common::PASSWORD)),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{b}: stale acknowledgement");
        let (status, _) = env
            .call(
                Method::POST,
                "/v1/login",
                None,
                Some(login(Some(1), "wrong-password-123")),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{b}");
        let (status, _) = env
            .call(
                Method::POST,
                "/v1/login",
                None,
                Some(json!({ "username": "nobody", "password": "whatever-password" })),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{b}");

        // Until the officer acknowledges, the old device token is refused, but the rules can be read.
        let upload = json!({ "encounters": [encounter("7ABC123")] });
        let (status, _) = env
            .call(
                Method::POST,
                "/v1/encounters",
                Some(&device),
                Some(upload.clone()),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{b}");
        let (status, body) = env
            .call(Method::GET, "/v1/rules", Some(&device), None)
            .await;
        assert_eq!(
            (status, body["version"].as_i64()),
            (StatusCode::OK, Some(1)),
            "{b}"
        );

        env.login("ofc.jones", crate::common::PASSWORD, Some(1))
            .await;
        let (status, body) = env
            .call(Method::POST, "/v1/encounters", Some(&device), Some(upload))
            .await;
        assert_eq!(status, StatusCode::OK, "{b}: {body}");
        assert_eq!(body["stored"], 1);

        // Every step was audited, and the chain holds.
        let rows = env.state.repo.audit_rows(1, 1000).await.expect("audit");
        let actions: Vec<(&str, &str)> = rows
            .iter()
            .map(|r| (r.action.as_str(), r.outcome.as_str()))
            .collect();
        for expected in [
            ("user.bootstrap", "ok"),
            ("user.create", "ok"),
            ("device.register", "ok"),
            ("rules.set", "ok"),
            ("login", "denied"),
            ("login", "ok"),
            ("encounters.upload", "ok"),
        ] {
            assert!(
                actions.contains(&expected),
                "{b}: {expected:?} missing from {actions:?}"
            );
        }
        let (status, body) = env
            .call(Method::GET, "/v1/audit/verify", Some(&env.admin), None)
            .await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "{b}: admin has not acknowledged v1: {body}"
        );
        let admin = env.login(ADMIN, ADMIN_PASSWORD, Some(1)).await;
        let (status, body) = env
            .call(Method::GET, "/v1/audit/verify", Some(&admin), None)
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["intact"], true, "{b}: {body}");
    }
}

/// Rows that each break one rule, with the reason fragment expected.
fn bad_rows() -> Vec<(Value, &'static str)> {
    let now = platewatch_server::now_ms();
    let with = |k: &str, v: Value| {
        let mut row = encounter("8XYZ987");
        row[k] = v;
        row
    };
    let without = |k: &str| {
        let mut row = encounter("8XYZ987");
        row.as_object_mut().expect("object").remove(k);
        row
    };
    let big = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        vec![0u8; 256 * 1024 + 1],
    );
    vec![
        (with("id", json!("not-a-uuid")), "id must be a UUID"),
        (with("plate", json!("8XY-Z987")), "plate must be"),
        (with("plate", json!("")), "plate must be"),
        (with("plate", json!("8XYZ9878XYZ98780")), "plate must be"),
        (with("plate", json!("8XYZ' OR 1=1--")), "plate must be"),
        (with("state", json!("ZZ")), "state"),
        (with("confidence", json!(1.5)), "confidence"),
        (with("confidence", json!(-0.1)), "confidence"),
        (with("confidence", json!("8XYZ987")), "invalid type"),
        (with("lat", json!(90.5)), "lat"),
        (with("lon", json!(-181)), "lon"),
        (
            with("captured_at_ms", json!(now + 10 * 60 * 1000)),
            "future",
        ),
        (with("captured_at_ms", json!(900_000_000_000i64)), "2000"),
        (with("crop", json!("***")), "base64"),
        (with("crop", json!("")), "crop"),
        (with("crop", json!(big)), "larger than"),
        (with("device_id", json!(999_999)), "device_id"),
        (with("user", json!("someone.else")), "authenticated user"),
        (with("on_behalf_of", json!("ghost.user")), "no known user"),
        (with("on_behalf_of", json!("bad name!")), "on_behalf_of"),
        (with("reason_code", json!("curiosity")), "reason_code"),
        (
            {
                let mut r = without("case_number");
                r["justification"] = json!("   ");
                r
            },
            "case_number or a justification",
        ),
        (with("session_id", json!("s1")), "session_id"),
        (with("match_tags", json!(["ok", ""])), "match_tags"),
        (
            with("alert", json!({ "decision": "rejected" })),
            "alert.reason",
        ),
        (
            with("alert", json!({ "decision": "maybe" })),
            "alert.decision",
        ),
        (without("plate"), "missing field"),
        (without("lat"), "missing field"),
        (json!("8XYZ987"), "invalid type"),
        (json!(null), "invalid type"),
    ]
}

#[tokio::test]
async fn ingest_validates_each_row_and_retries_never_duplicate() {
    for db in backends().await {
        let env = env(db).await;
        let b = env.backend();
        let officer = env.user("ofc.lee", "officer", false).await;
        env.user("partner.one", "officer", false).await;
        let (device_id, device) = env.device(&officer).await;

        let mut rows = Vec::new();
        let mut good = Vec::new();
        for (i, plate) in ["7ABC123", "ab12", "Z"].iter().enumerate() {
            let mut row = encounter(plate);
            if i == 1 {
                row["device_id"] = json!(device_id);
                row["user"] = json!("ofc.lee");
                row["on_behalf_of"] = json!("partner.one");
                row["state"] = json!("on");
                row["context_image"] = Value::Null;
                row["case_number"] = Value::Null;
                row["justification"] = json!("assisting unit 12");
                row["alert"] = json!({ "decision": "rejected", "reason": "misread" });
            }
            good.push(rows.len());
            rows.push(row);
        }
        let bad = bad_rows();
        for (row, _) in &bad {
            rows.push(row.clone());
        }
        let batch = json!({ "encounters": rows });
        let (status, body) = env
            .call(
                Method::POST,
                "/v1/encounters",
                Some(&device),
                Some(batch.clone()),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{b}: {body}");
        assert_eq!(
            (body["stored"].as_u64(), body["duplicates"].as_u64()),
            (Some(3), Some(0)),
            "{b}: {body}"
        );
        assert_eq!(
            body["rejected"].as_u64(),
            Some(bad.len() as u64),
            "{b}: {body}"
        );
        let results = body["results"].as_array().expect("results");
        assert_eq!(results.len(), 3 + bad.len());
        for (i, r) in results.iter().enumerate() {
            assert_eq!(r["index"].as_u64(), Some(i as u64));
        }
        for &i in &good {
            assert_eq!(results[i]["status"], "stored", "{b}: {}", results[i]);
            assert_eq!(results[i]["id"], rows[i]["id"]);
        }
        for (k, (_, reason)) in bad.iter().enumerate() {
            let r = &results[3 + k];
            assert_eq!(r["status"], "rejected", "{b} row {k}: {r}");
            let text = r["reason"].as_str().expect("reason");
            assert!(
                text.contains(reason),
                "{b} row {k}: expected {reason:?} in {text:?}"
            );
        }
        // No plate text in any answer.
        let answer = body.to_string();
        for plate in ["8XYZ987", "8XY-Z987", "7ABC123", "8XYZ' OR"] {
            assert!(!answer.contains(plate), "{b}: plate text in the response");
        }
        assert_eq!(env.state.repo.count_encounters().await.expect("count"), 3);

        // The retried batch stores nothing new: the good rows are duplicates.
        let (status, body) = env
            .call(Method::POST, "/v1/encounters", Some(&device), Some(batch))
            .await;
        assert_eq!(status, StatusCode::OK, "{b}: {body}");
        assert_eq!(
            (body["stored"].as_u64(), body["duplicates"].as_u64()),
            (Some(0), Some(3)),
            "{b}: {body}"
        );
        for &i in &good {
            assert_eq!(body["results"][i]["status"], "duplicate");
        }
        // Upper-case spelling of the same UUID is the same encounter.
        let mut again = rows[0].clone();
        again["id"] = json!(rows[0]["id"].as_str().expect("id").to_uppercase());
        let (_, body) = env
            .call(
                Method::POST,
                "/v1/encounters",
                Some(&device),
                Some(json!({ "encounters": [again] })),
            )
            .await;
        assert_eq!(body["duplicates"], 1, "{b}: {body}");
        assert_eq!(
            env.state.repo.count_encounters().await.expect("count"),
            3,
            "{b}"
        );

        // Stored fields round-trip.
        let check = "SELECT plate, state, on_behalf_of_user_id IS NOT NULL AS obo, alert_decision, \
                     alert_reason, context_image IS NULL AS no_ctx, match_tags FROM encounters WHERE id = $1";
        let id = rows[1]["id"].as_str().expect("id");
        let got: (
            String,
            Option<String>,
            bool,
            Option<String>,
            Option<String>,
            bool,
            String,
        ) = match env.state.repo.db() {
            platewatch_server::Db::Sqlite(p) => sqlx::query_as(check).bind(id).fetch_one(p).await,
            platewatch_server::Db::Postgres(p) => sqlx::query_as(check).bind(id).fetch_one(p).await,
        }
        .expect("row");
        assert_eq!(
            got,
            (
                "AB12".into(),
                Some("ON".into()),
                true,
                Some("rejected".into()),
                Some("misread".into()),
                true,
                r#"["stolen-vehicle"]"#.into()
            ),
            "{b}"
        );
    }
}

#[tokio::test]
async fn batches_must_hold_one_to_the_limit() {
    for db in backends().await {
        let config = Config {
            limits: platewatch_server::Limits {
                batch_rows: 3,
                ..Default::default()
            },
            ..test_config()
        };
        let env = env_with(db, config).await;
        let officer = env.user("ofc.kim", "officer", false).await;
        let (_, device) = env.device(&officer).await;
        for n in [0, 4] {
            let rows: Vec<Value> = (0..n).map(|_| encounter("7ABC123")).collect();
            let (status, body) = env
                .call(
                    Method::POST,
                    "/v1/encounters",
                    Some(&device),
                    Some(json!({ "encounters": rows })),
                )
                .await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{n}: {body}");
        }
    }
}

async fn raw(
    env: &Env,
    method: Method,
    uri: &str,
    token: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, Value) {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {token}"));
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    env.send(req.body(Body::from(body)).expect("request")).await
}

#[tokio::test]
async fn malformed_requests_get_4xx_with_a_reason() {
    for db in backends().await {
        let config = Config {
            limits: platewatch_server::Limits {
                body_bytes: 64 * 1024,
                ..Default::default()
            },
            ..test_config()
        };
        let env = env_with(db, config).await;
        let b = env.backend();
        let officer = env.user("ofc.diaz", "officer", false).await;
        let (_, device) = env.device(&officer).await;
        let json_ct = Some("application/json");
        let cases: Vec<(&str, Option<&str>, Vec<u8>, StatusCode)> = vec![
            (
                "/v1/encounters",
                json_ct,
                b"{\"encounters\": [".to_vec(),
                StatusCode::BAD_REQUEST,
            ),
            (
                "/v1/encounters",
                json_ct,
                b"not json 7ABC123".to_vec(),
                StatusCode::BAD_REQUEST,
            ),
            (
                "/v1/encounters",
                json_ct,
                b"{\"encounters\": \"7ABC123\"}".to_vec(),
                StatusCode::BAD_REQUEST,
            ),
            (
                "/v1/encounters",
                json_ct,
                b"[1, 2, 3]".to_vec(),
                StatusCode::BAD_REQUEST,
            ),
            (
                "/v1/encounters",
                json_ct,
                vec![0xff, 0xfe, 0x00],
                StatusCode::BAD_REQUEST,
            ),
            (
                "/v1/encounters",
                None,
                b"{\"encounters\": []}".to_vec(),
                StatusCode::BAD_REQUEST,
            ),
            (
                "/v1/encounters",
                Some("text/plain"),
                b"{}".to_vec(),
                StatusCode::BAD_REQUEST,
            ),
            (
                "/v1/encounters",
                json_ct,
                vec![b' '; 70 * 1024],
                StatusCode::PAYLOAD_TOO_LARGE,
            ),
            (
                "/v1/devices",
                json_ct,
                b"{\"name\": 7}".to_vec(),
                StatusCode::BAD_REQUEST,
            ),
            (
                "/v1/devices",
                json_ct,
                b"{\"name\": \"\"}".to_vec(),
                StatusCode::BAD_REQUEST,
            ),
            (
                "/v1/devices",
                json_ct,
                b"{\"name\": \"a\\u0000b\"}".to_vec(),
                StatusCode::BAD_REQUEST,
            ),
        ];
        for (uri, ct, body, expected) in cases {
            let token = if uri == "/v1/devices" {
                &officer
            } else {
                &device
            };
            let (status, answer) = raw(&env, Method::POST, uri, token, ct, body).await;
            assert_eq!(status, expected, "{b} {uri}: {answer}");
            let reason = answer["error"].as_str().expect("a reason");
            assert!(!reason.is_empty());
            assert!(!reason.contains("7ABC123"), "{b}: plate text in {reason:?}");
        }
        // Oversize and malformed bodies on the admin endpoints too.
        let (status, _) = raw(
            &env,
            Method::PUT,
            "/v1/rules",
            &env.admin,
            json_ct,
            vec![b'x'; 100 * 1024],
        )
        .await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        let (status, body) = raw(
            &env,
            Method::POST,
            "/v1/users",
            &env.admin,
            json_ct,
            br#"{"username": "x"}"#.to_vec(),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        let (status, _) = raw(
            &env,
            Method::POST,
            "/v1/login",
            "",
            json_ct,
            br#"{"username": 1}"#.to_vec(),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, body) = env
            .call(Method::DELETE, "/v1/devices/abc", Some(&env.admin), None)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        let (status, _) = env
            .call(Method::DELETE, "/v1/devices/424242", Some(&env.admin), None)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, body) = env.call(Method::GET, "/v2/nothing", None, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(body["error"].is_string());
        let (status, _) = env
            .call(Method::GET, "/v1/encounters", Some(&device), None)
            .await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    }
}

#[tokio::test]
async fn user_creation_is_validated() {
    for db in backends().await {
        let env = env(db).await;
        let b = env.backend();
        let create = |name: &str, pw: &str, role: &str| json!({ "username": name, "password": pw, "role": role });
        let cases = [
            (
                create("ofc.ok", "a-long-password-42", "officer"),
                StatusCode::CREATED,
            ),
            (
                create("ofc.ok", "a-long-password-42", "analyst"),
                StatusCode::CONFLICT,
            ),
            (
                create("ofc.two", "short", "officer"),
                StatusCode::BAD_REQUEST,
            ),
            (
                create("ofc.two", "a-long-password-42", "root"),
                StatusCode::BAD_REQUEST,
            ),
            (
                create("x", "a-long-password-42", "officer"),
                StatusCode::BAD_REQUEST,
            ),
            (
                create(
                    "robert'); DROP TABLE users;--",
                    "a-long-password-42",
                    "officer",
                ),
                StatusCode::BAD_REQUEST,
            ),
        ];
        for (body, expected) in cases {
            let (status, answer) = env
                .call(
                    Method::POST,
                    "/v1/users",
                    Some(&env.admin),
                    Some(body.clone()),
                )
                .await;
            assert_eq!(status, expected, "{b} {body}: {answer}");
        }
        let (_, answer) = env
            .call(Method::POST, "/v1/users", Some(&env.admin), Some(json!({ "username": "an.analyst", "password": "a-long-password-42", "role": "analyst", "enhanced_queries": true })))
            .await;
        assert_eq!(
            (
                answer["role"].as_str(),
                answer["enhanced_queries"].as_bool()
            ),
            (Some("analyst"), Some(true))
        );
        let user = env
            .state
            .repo
            .user_by_name("an.analyst")
            .await
            .expect("q")
            .expect("user");
        assert!(user.password_hash.starts_with("$argon2id$"), "{b}");
        assert!(user.enhanced_queries);
    }
}

/// A tiny deterministic generator for mutating request bodies.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[tokio::test]
async fn mutated_bodies_never_cause_a_server_error() {
    const SPICE: &[&[u8]] = &[
        b"\"",
        b"{",
        b"}",
        b"[",
        b"]",
        b",",
        b":",
        b"null",
        b"true",
        b"-1e999",
        b"1e400",
        b"\\u0000",
        b"\\ud800",
        b"'; DROP TABLE encounters;--",
        b"99999999999999999999999",
        b"\xff",
        b"NaN",
        b"\"encounters\"",
    ];
    for db in backends().await {
        let env = env(db).await;
        let b = env.backend();
        let officer = env.user("ofc.fuzz", "officer", false).await;
        let (_, device) = env.device(&officer).await;
        let seed =
            json!({ "encounters": [encounter("7ABC123"), encounter("5XYZ890")] }).to_string();
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        let mut statuses = std::collections::BTreeMap::new();
        for _ in 0..150 {
            let mut body = seed.clone().into_bytes();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(body.len());
                match rng.below(3) {
                    0 => {
                        body.remove(at);
                    }
                    1 => {
                        let s = SPICE[rng.below(SPICE.len())];
                        body.splice(at..at, s.iter().copied());
                    }
                    _ => body[at] = (rng.next() & 0xff) as u8,
                }
            }
            for (uri, token) in [
                ("/v1/encounters", &device),
                ("/v1/devices", &officer),
                ("/v1/users", &env.admin),
            ] {
                let req = Request::builder()
                    .method(Method::POST)
                    .uri(uri)
                    .header("authorization", format!("Bearer {token}"))
                    .header("content-type", "application/json")
                    .body(Body::from(body.clone()))
                    .expect("request");
                let resp = tower::ServiceExt::oneshot(env.app.clone(), req)
                    .await
                    .expect("infallible");
                let status = resp.status();
                assert!(!status.is_server_error(), "{b} {uri}: {status}");
                let bytes = http_body_util::BodyExt::collect(resp.into_body())
                    .await
                    .expect("body")
                    .to_bytes();
                let text = String::from_utf8_lossy(&bytes);
                assert!(
                    !text.contains("7ABC123") && !text.contains("5XYZ890"),
                    "{b}: plate text in {text}"
                );
                *statuses.entry(status.as_u16()).or_insert(0) += 1;
            }
        }
        // The mutations exercise both the rejection and the validation paths.
        assert!(
            statuses.contains_key(&400) && statuses.contains_key(&200),
            "{b}: {statuses:?}"
        );
    }
}
