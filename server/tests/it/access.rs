//! The access matrix of the hot list, hold, report and audit export endpoints on both
//! backends: each refuses no token, bad tokens and a revoked device token (401), every role
//! that lacks permission (403), session tokens where a device token is required (403), and
//! serves each allowed role. Also the reason code list: every role, either token, in the
//! configured order, refused until new rules are acknowledged.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::{Value, json};

use crate::common::{Env, backends, env, env_with, test_config};
use crate::hotlists::upload_raw;

/// Which token an endpoint is called with.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Token {
    Session,
    Device,
}

struct Endpoint {
    method: Method,
    uri: String,
    body: Option<Body>,
    /// JSON body instead of raw.
    json: Option<Value>,
    allowed: &'static [&'static str],
    token: Token,
}

impl Endpoint {
    fn new(method: Method, uri: &str, allowed: &'static [&'static str], token: Token) -> Self {
        Self {
            method,
            uri: uri.into(),
            body: None,
            json: None,
            allowed,
            token,
        }
    }
    fn json(mut self, v: Value) -> Self {
        self.json = Some(v);
        self
    }
    fn raw(mut self, s: &str) -> Self {
        self.body = Some(Body::from(s.to_string()));
        self
    }
}

async fn call(env: &Env, ep: &mut Endpoint, token: Option<&str>) -> (StatusCode, Value) {
    if let Some(v) = &ep.json {
        return env
            .call(ep.method.clone(), &ep.uri, token, Some(v.clone()))
            .await;
    }
    let mut req = Request::builder().method(ep.method.clone()).uri(&ep.uri);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let body = match &ep.body {
        Some(_) => {
            req = req.header("content-type", "text/plain");
            Body::from("Plate;State;List\n7ABC123;CA;felony\n")
        }
        None => Body::empty(),
    };
    env.send(req.body(body).expect("request")).await
}

fn endpoints(hold_id: i64) -> Vec<Endpoint> {
    use Token::*;
    vec![
        Endpoint::new(
            Method::POST,
            "/v1/hotlists?list=matrix",
            &["admin"],
            Session,
        )
        .raw("file"),
        Endpoint::new(
            Method::GET,
            "/v1/hotlists",
            &["officer", "analyst", "admin"],
            Session,
        ),
        Endpoint::new(
            Method::GET,
            "/v1/hotlists/key",
            &["officer", "analyst", "admin", "auditor"],
            Session,
        ),
        Endpoint::new(
            Method::GET,
            "/v1/hotlists/base/snapshot",
            &["officer", "analyst", "admin"],
            Device,
        ),
        Endpoint::new(
            Method::GET,
            "/v1/hotlists/base/delta?since=0",
            &["officer", "analyst", "admin"],
            Device,
        ),
        Endpoint::new(
            Method::DELETE,
            "/v1/hotlists/retire-me",
            &["admin"],
            Session,
        ),
        Endpoint::new(
            Method::GET,
            "/v1/audit/export?from=0&to=9999999999999&format=json",
            &["auditor"],
            Session,
        ),
        Endpoint::new(Method::POST, "/v1/holds", &["analyst"], Session)
            .json(json!({ "case_number": "M-1", "justification": "matrix" })),
        Endpoint::new(
            Method::GET,
            "/v1/holds",
            &["analyst", "admin", "auditor"],
            Session,
        ),
        Endpoint::new(
            Method::DELETE,
            &format!("/v1/holds/{hold_id}"),
            &["analyst"],
            Session,
        )
        .json(json!({ "reason": "matrix" })),
        Endpoint::new(
            Method::GET,
            "/v1/reports/monthly?month=2025-01",
            &["analyst", "admin", "auditor"],
            Session,
        ),
    ]
}

#[tokio::test]
async fn new_endpoints_refuse_missing_revoked_and_lacking_tokens() {
    for db in backends().await {
        let env = env(db).await;
        let b = env.backend();
        let mut sessions = vec![("admin", env.admin.clone())];
        for role in ["officer", "analyst", "auditor"] {
            sessions.push((role, env.user(&format!("mx.{role}"), role, true).await));
        }
        let mut devices = Vec::new();
        for (role, s) in &sessions {
            if *role != "auditor" {
                devices.push((*role, env.device(s).await.1));
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
        // Lists to fetch and retire, and a hold to release.
        for list in ["base", "retire-me"] {
            let (status, body) = upload_raw(
                &env,
                &env.admin,
                &format!("list={list}"),
                "Plate;State;List\n7ABC123;CA;felony\n",
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{b}: {body}");
        }
        let (status, hold) = env
            .call(
                Method::POST,
                "/v1/holds",
                Some(&sessions[2].1),
                Some(json!({ "case_number": "M-0", "justification": "release me" })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{b}: {hold}");
        let hold_id = hold["id"].as_i64().expect("id");

        for mut ep in endpoints(hold_id) {
            let what = format!("{b} {} {}", ep.method, ep.uri);
            for token in [
                None,
                Some(revoked.as_str()),
                Some("pwd_00"),
                Some("pws_00"),
                Some("junk"),
            ] {
                let (status, body) = call(&env, &mut ep, token).await;
                assert_eq!(
                    status,
                    StatusCode::UNAUTHORIZED,
                    "{what} with {token:?}: {body}"
                );
                assert!(body["error"].is_string(), "{what}: {body}");
            }
            // Roles that lack permission, with both kinds of token.
            for (role, s) in &sessions {
                if !ep.allowed.contains(role) {
                    let (status, body) = call(&env, &mut ep, Some(s)).await;
                    assert_eq!(status, StatusCode::FORBIDDEN, "{what} as {role}: {body}");
                }
            }
            for (role, d) in &devices {
                if !ep.allowed.contains(role) {
                    let (status, body) = call(&env, &mut ep, Some(d)).await;
                    assert_eq!(
                        status,
                        StatusCode::FORBIDDEN,
                        "{what} as {role} device: {body}"
                    );
                }
            }
            if ep.token == Token::Device {
                // Allowed roles, but with a session token: devices only.
                for (role, s) in &sessions {
                    if ep.allowed.contains(role) {
                        let (status, body) = call(&env, &mut ep, Some(s)).await;
                        assert_eq!(
                            status,
                            StatusCode::FORBIDDEN,
                            "{what} as {role} session: {body}"
                        );
                    }
                }
            }
            // Each allowed role succeeds (one call for one-shot endpoints).
            let tokens: Vec<(&str, &String)> = match ep.token {
                Token::Session => sessions.iter().map(|(r, t)| (*r, t)).collect(),
                Token::Device => devices.iter().map(|(r, t)| (*r, t)).collect(),
            };
            let once = ep.method != Method::GET;
            for (role, t) in tokens {
                if ep.allowed.contains(&role) {
                    let (status, body) = call(&env, &mut ep, Some(t)).await;
                    assert!(status.is_success(), "{what} as {role}: {status} {body}");
                    if once {
                        break;
                    }
                }
            }
        }
    }
}

#[tokio::test]
async fn reason_codes_are_served_in_order_to_every_authenticated_caller() {
    for db in backends().await {
        let codes = ["zeta-patrol", "alpha-case", "training"];
        let env = env_with(
            db,
            platewatch_server::Config {
                reason_codes: codes.iter().map(ToString::to_string).collect(),
                ..test_config()
            },
        )
        .await;
        let b = env.backend();
        for token in [None, Some("pwd_00"), Some("junk")] {
            let (status, body) = env.call(Method::GET, "/v1/reason-codes", token, None).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{b} {token:?}: {body}");
        }
        let mut tokens = vec![("admin".to_string(), env.admin.clone())];
        for role in ["officer", "analyst", "auditor"] {
            tokens.push((
                role.into(),
                env.user(&format!("rc.{role}"), role, false).await,
            ));
        }
        let officer = tokens[1].1.clone();
        let (_, device) = env.device(&officer).await;
        tokens.push(("officer device".into(), device.clone()));
        for (who, t) in &tokens {
            let (status, body) = env
                .call(Method::GET, "/v1/reason-codes", Some(t), None)
                .await;
            assert_eq!(status, StatusCode::OK, "{b} {who}: {body}");
            assert_eq!(body, json!({ "reason_codes": codes }), "{b} {who}");
        }
        // New rules of behaviour: refused until the user acknowledges them.
        let (status, _) = env
            .call(
                Method::PUT,
                "/v1/rules",
                Some(&env.admin),
                Some(json!({ "text": "Rules v1" })),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let (status, body) = env
            .call(Method::GET, "/v1/reason-codes", Some(&device), None)
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{b}: {body}");
        assert_eq!(body["code"], "rules_not_acknowledged");
        let again = env
            .login("rc.officer", crate::common::PASSWORD, Some(1))
            .await;
        let (status, body) = env
            .call(Method::GET, "/v1/reason-codes", Some(&again), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{b}: {body}");
        assert_eq!(body["reason_codes"][0], "zeta-patrol");
    }
}
