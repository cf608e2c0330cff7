//! The OpenAPI document: the committed `server/openapi.json` equals what the server serves,
//! every route registered in the router (found in `server/src`) is documented and every
//! documented operation is routed, and documented authentication is what the server enforces.
//! `PLATEWATCH_UPDATE_OPENAPI=1` rewrites the committed file.

use std::collections::BTreeSet;

use axum::http::{Method, StatusCode};
use platewatch_server::openapi;
use serde_json::Value;

use crate::common::{backends, env};

const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json");

#[test]
fn committed_document_is_current() {
    let text = openapi::document_text();
    if std::env::var("PLATEWATCH_UPDATE_OPENAPI").is_ok_and(|v| v == "1") {
        std::fs::write(COMMITTED, text).expect("write server/openapi.json");
    }
    let committed = std::fs::read_to_string(COMMITTED).unwrap_or_default();
    assert!(
        committed == text,
        "server/openapi.json is out of date: run PLATEWATCH_UPDATE_OPENAPI=1 cargo test -p \
         platewatch-server openapi"
    );
}

/// `(METHOD, path)` of every `.route("path", get(..).post(..))` call in the server's sources.
fn registered_routes() -> BTreeSet<(String, String)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
    let mut out = BTreeSet::new();
    for entry in std::fs::read_dir(dir).expect("src") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let src = std::fs::read_to_string(&path).expect("source");
        let mut rest = src.as_str();
        while let Some(at) = rest.find(".route(") {
            rest = &rest[at + ".route(".len()..];
            // The call's argument text, up to the matching parenthesis.
            let mut depth = 1;
            let mut end = 0;
            for (i, c) in rest.char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            end = i;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let args = &rest[..end];
            let Some(p0) = args.find('"') else { continue };
            let Some(p1) = args[p0 + 1..].find('"') else {
                continue;
            };
            let route = args[p0 + 1..p0 + 1 + p1].to_string();
            let handlers = &args[p0 + 2 + p1..];
            let bytes = handlers.as_bytes();
            for m in ["get", "post", "put", "delete", "patch"] {
                let needle = format!("{m}(");
                let mut from = 0;
                while let Some(i) = handlers[from..].find(&needle) {
                    let at = from + i;
                    let before = at.checked_sub(1).map(|j| bytes[j]);
                    if before.is_none_or(|b| !(b.is_ascii_alphanumeric() || b == b'_' || b == b':'))
                    {
                        out.insert((m.to_ascii_uppercase(), route.clone()));
                    }
                    from = at + needle.len();
                }
            }
        }
    }
    out
}

#[test]
fn every_registered_route_is_documented_and_nothing_else() {
    let registered = registered_routes();
    assert!(
        registered.len() >= 25,
        "found too few routes: {registered:?}"
    );
    let documented: BTreeSet<(String, String)> = openapi::documented_routes().into_iter().collect();
    let undocumented: Vec<_> = registered.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&registered).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from the OpenAPI document: {undocumented:?}"
    );
    assert!(
        unrouted.is_empty(),
        "documented but not routed: {unrouted:?}"
    );
    // Device tokens are let through exactly where the document says a device token works.
    let doc = openapi::document();
    for (method, path) in &documented {
        let token = &doc["paths"][path][method.to_ascii_lowercase()]["x-platewatch-token"];
        let device = token == "device" || token == "any";
        assert_eq!(
            platewatch_server::auth::device_route(method, path),
            device,
            "{method} {path}: DEVICE_ROUTES and the document disagree"
        );
    }
    // Every operation has an id, a success response and, unless public, 401 documented.
    for (method, path) in &documented {
        let op = &doc["paths"][path][method.to_ascii_lowercase()];
        assert!(op["operationId"].is_string(), "{method} {path}");
        let public = op["security"] == serde_json::json!([]);
        if !public {
            assert!(
                op["responses"]["401"].is_object(),
                "{method} {path}: 401 undocumented"
            );
        }
    }
    // Every schema reference resolves.
    let text = openapi::document_text();
    for part in text.split("\"#/components/schemas/").skip(1) {
        let name = &part[..part.find('"').expect("closing quote")];
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "dangling $ref {name}"
        );
    }
}

#[tokio::test]
async fn served_document_matches_and_documented_auth_is_enforced() {
    for db in backends().await.into_iter().take(1) {
        let env = env(db).await;
        let (status, served) = env.call(Method::GET, "/openapi.json", None, None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(served, openapi::document());
        let committed: Value =
            serde_json::from_str(&std::fs::read_to_string(COMMITTED).unwrap_or_default())
                .unwrap_or(Value::Null);
        assert_eq!(
            served, committed,
            "the server serves the committed document"
        );
        // Every documented operation exists (not the 404 fallback, not 405) and those that
        // document a bearer token refuse a request without one.
        for (method, path) in openapi::documented_routes() {
            let uri = path
                .replace("{id}", "7f1c0b8e-7a51-4d0e-9f3e-0b7f5d7c9a10")
                .replace("{name}", "somelist");
            let m = Method::from_bytes(method.as_bytes()).expect("method");
            let (status, body) = env.call(m, &uri, None, None).await;
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            assert_ne!(body["error"], "no such endpoint", "{method} {path}");
            let op = &served["paths"][&path][method.to_ascii_lowercase()];
            if op["security"] != serde_json::json!([]) {
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}: {body}");
            }
        }
    }
}

#[tokio::test]
async fn served_document_names_the_configured_reason_codes() {
    for db in backends().await.into_iter().take(1) {
        let mut config = crate::common::test_config();
        config.reason_codes = vec!["patrol".into(), "amber-alert".into()];
        let env = crate::common::env_with(db, config).await;
        let (status, served) = env.call(Method::GET, "/openapi.json", None, None).await;
        assert_eq!(status, StatusCode::OK);
        let schemas = &served["components"]["schemas"];
        let codes = serde_json::json!(["patrol", "amber-alert"]);
        assert_eq!(
            schemas["StartSession"]["properties"]["reason_code"]["enum"],
            codes
        );
        assert_eq!(
            schemas["PlateQuery"]["properties"]["reason_code"]["enum"],
            codes
        );
        // Everything else is the committed document.
        assert_eq!(
            served,
            openapi::document_for(&["patrol".into(), "amber-alert".into()])
        );
        assert_ne!(served, openapi::document());
    }
}
