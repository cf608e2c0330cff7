//! Audited queries and scanning sessions on both backends: the auth matrix of every query and
//! session endpoint, required timeframe / reason / justification, exact answers of full,
//! partial, polygon and common-plate queries, the 10k/5k rule, the audit rows (criteria,
//! flags, chain still intact), 4xx for malformed or hostile bodies without plate text, and the
//! query plans using the indexes of migration 0002.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use platewatch_server::areas::{AreaLimits, SensitiveLocation, parse_polygons};
use platewatch_server::ingest::{Encounter, Uploader, validate};
use platewatch_server::queries::{Criteria, QueryConfig};
use platewatch_server::{ChainStatus, Config, Db};
use serde_json::{Value, json};

use crate::common::{Env, backends, encounter, env, env_with, test_config};

const DAY: i64 = 24 * 3600 * 1000;
const KINDS: [&str; 4] = ["plate", "partial", "polygon", "common"];

/// Ten days ago: the start of every test timeframe.
fn t0() -> i64 {
    platewatch_server::now_ms() - 10 * DAY
}

/// The officer whose device "captured" the seeded encounters: (user id, device id).
async fn capturer(env: &Env) -> (i64, i64) {
    let session = env.user("ofc.capture", "officer", false).await;
    let (device, _) = env.device(&session).await;
    let uid = env
        .state
        .repo
        .user_id_by_name("ofc.capture")
        .await
        .expect("q")
        .expect("user");
    (uid, device)
}

/// An encounter row with these fields, validated like an upload.
fn row(who: (i64, i64), plate: &str, state: &str, lat: f64, lon: f64, t: i64) -> Encounter {
    let mut v = encounter(plate);
    v["state"] = json!(state);
    v["lat"] = json!(lat);
    v["lon"] = json!(lon);
    v["captured_at_ms"] = json!(t);
    let upload = serde_json::from_value(v).expect("upload row");
    let uploader = Uploader {
        user_id: who.0,
        username: "ofc.capture",
        device_id: who.1,
        now_ms: platewatch_server::now_ms(),
    };
    validate(&upload, uploader, &Config::default())
        .expect("valid row")
        .0
}

async fn seed(env: &Env, rows: &[Encounter]) {
    for chunk in rows.chunks(2000) {
        env.state
            .repo
            .insert_encounters(chunk, platewatch_server::now_ms())
            .await
            .expect("seed");
    }
}

fn basis(from: i64, to: i64) -> Value {
    json!({
        "from_ms": from,
        "to_ms": to,
        "reason_code": "investigation",
        "case_number": "2026-0042",
    })
}

fn with(mut base: Value, extra: Value) -> Value {
    if let (Some(b), Value::Object(e)) = (base.as_object_mut(), extra) {
        b.extend(e);
    }
    base
}

/// `[lat, lon]` rings: a square of half-side `h` degrees around (lat, lon).
fn square(lat: f64, lon: f64, h: f64) -> Value {
    json!([[
        [lat - h, lon - h],
        [lat - h, lon + h],
        [lat + h, lon + h],
        [lat + h, lon - h]
    ]])
}

fn triangle() -> Value {
    json!([[[0.0, 0.0], [0.0, 2.0], [2.0, 0.0]]])
}

async fn query(env: &Env, token: &str, kind: &str, body: Value) -> (StatusCode, Value) {
    env.call(
        Method::POST,
        &format!("/v1/queries/{kind}"),
        Some(token),
        Some(body),
    )
    .await
}

/// The ids of a successful answer, in order.
fn ids(b: &str, what: &str, answer: &(StatusCode, Value)) -> Vec<String> {
    assert_eq!(answer.0, StatusCode::OK, "{b} {what}: {}", answer.1);
    answer.1["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r["id"].as_str().expect("id").to_string())
        .collect()
}

fn valid_body(kind: &str) -> Value {
    let now = platewatch_server::now_ms();
    let b = basis(now - DAY, now);
    match kind {
        "plate" => with(b, json!({ "plate": "7ABC123", "state": "CA" })),
        "partial" => with(b, json!({ "pattern": "7AB*123" })),
        "polygon" => with(b, json!({ "polygons": [square(37.7, -122.4, 0.01)] })),
        _ => with(
            b,
            json!({ "polygons": [square(37.7, -122.4, 0.01), square(37.8, -122.3, 0.01)] }),
        ),
    }
}

#[tokio::test]
async fn query_and_session_endpoints_refuse_missing_revoked_tokens_and_lacking_roles() {
    for db in backends().await {
        let env = env(db).await;
        let b = env.backend();
        let officer = env.user("ofc.plain", "officer", false).await;
        let officer_enh = env.user("ofc.enh", "officer", true).await;
        let analyst = env.user("ana.plain", "analyst", false).await;
        let analyst_enh = env.user("ana.enh", "analyst", true).await;
        let auditor = env.user("aud.it", "auditor", true).await;
        let admin_enh = {
            let (s, body) = env
                .call(Method::POST, "/v1/users", Some(&env.admin), Some(json!({ "username": "adm.enh", "password": crate::common::PASSWORD, "role": "admin", "enhanced_queries": true })))
                .await;
            assert_eq!(s, StatusCode::CREATED, "{body}");
            env.login("adm.enh", crate::common::PASSWORD, None).await
        };
        let (_, device_enh) = env.device(&analyst_enh).await;
        let (revoked_id, revoked) = env.device(&analyst_enh).await;
        let (s, _) = env
            .call(
                Method::DELETE,
                &format!("/v1/devices/{revoked_id}"),
                Some(&env.admin),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT);

        let tokens: Vec<(&str, &str, bool)> = vec![
            // (who, token, may run enhanced queries)
            ("admin", env.admin.as_str(), false),
            ("admin with permission", admin_enh.as_str(), false),
            ("auditor with permission", auditor.as_str(), false),
            ("officer", officer.as_str(), false),
            ("analyst", analyst.as_str(), false),
            ("officer with permission", officer_enh.as_str(), true),
            ("analyst with permission", analyst_enh.as_str(), true),
            ("device token", device_enh.as_str(), false),
        ];
        for kind in KINDS {
            let uri = format!("/v1/queries/{kind}");
            let body = valid_body(kind);
            for token in [None, Some(revoked.as_str()), Some("pws_00"), Some("junk")] {
                let (s, answer) = env
                    .call(Method::POST, &uri, token, Some(body.clone()))
                    .await;
                assert_eq!(
                    s,
                    StatusCode::UNAUTHORIZED,
                    "{b} {kind} {token:?}: {answer}"
                );
                assert!(answer["error"].is_string());
            }
            // Even a malformed body is refused for the token first.
            let (s, _) = env
                .call(Method::POST, &uri, None, Some(json!("not a query")))
                .await;
            assert_eq!(s, StatusCode::UNAUTHORIZED);
            for (who, token, enhanced) in &tokens {
                let allowed = match (*who, kind) {
                    ("device token" | "admin" | "admin with permission", _) => false,
                    ("auditor with permission", _) => false,
                    (_, "plate") => true,
                    _ => *enhanced,
                };
                let (s, answer) = query(&env, token, kind, body.clone()).await;
                if allowed {
                    assert_eq!(s, StatusCode::OK, "{b} {kind} as {who}: {answer}");
                    assert_eq!(answer["count"], 0);
                } else {
                    assert_eq!(s, StatusCode::FORBIDDEN, "{b} {kind} as {who}: {answer}");
                }
            }
        }
        // Denied attempts are audited too.
        let rows = env.state.repo.audit_rows(1, 100_000).await.expect("audit");
        let denied = rows
            .iter()
            .filter(|r| r.action.starts_with("query.") && r.outcome == "denied")
            .count();
        assert_eq!(denied, 3 * 4 + 3 * 2, "{b}");
        // The device token's four are refused for its scope, before the query is read.
        let scope = rows
            .iter()
            .filter(|r| r.action == "token.scope" && r.criteria.contains("/v1/queries/"))
            .count();
        assert_eq!(scope, 4, "{b}");

        // Sessions: officers and analysts, with a login session or a device token.
        let start = json!({ "reason_code": "patrol", "justification": "night shift" });
        for token in [None, Some(revoked.as_str())] {
            let (s, _) = env
                .call(Method::POST, "/v1/sessions", token, Some(start.clone()))
                .await;
            assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");
        }
        for (who, token) in [("admin", &env.admin), ("auditor", &auditor)] {
            let (s, _) = env
                .call(
                    Method::POST,
                    "/v1/sessions",
                    Some(token),
                    Some(start.clone()),
                )
                .await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{b} {who}");
        }
        let (s, started) = env
            .call(
                Method::POST,
                "/v1/sessions",
                Some(&device_enh),
                Some(start.clone()),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}: {started}");
        let end = format!("/v1/sessions/{}/end", started["id"].as_str().expect("id"));
        for token in [None, Some(revoked.as_str())] {
            let (s, _) = env.call(Method::POST, &end, token, None).await;
            assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");
        }
        for token in [&env.admin, &auditor, &officer] {
            let (s, _) = env.call(Method::POST, &end, Some(token), None).await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
        }
        let (s, ended) = env.call(Method::POST, &end, Some(&analyst_enh), None).await;
        assert_eq!(s, StatusCode::OK, "{b}: {ended}");
    }
}

#[tokio::test]
async fn queries_require_a_timeframe_a_reason_and_a_justification() {
    for db in backends().await {
        let env = env(db).await;
        let b = env.backend();
        let analyst = env.user("ana.enh", "analyst", true).await;
        let now = platewatch_server::now_ms();
        for kind in KINDS {
            let full = valid_body(kind);
            let without = |keys: &[&str]| {
                let mut v = full.clone();
                for k in keys {
                    v.as_object_mut().expect("object").remove(*k);
                }
                v
            };
            let cases: Vec<(Value, &str)> = vec![
                (without(&["from_ms"]), "timeframe"),
                (without(&["to_ms"]), "timeframe"),
                (without(&["from_ms", "to_ms"]), "timeframe"),
                (with(full.clone(), json!({ "from_ms": null })), "timeframe"),
                (without(&["reason_code"]), "reason_code"),
                (
                    with(full.clone(), json!({ "reason_code": "curiosity" })),
                    "reason_code",
                ),
                (without(&["case_number"]), "case_number or a justification"),
                (
                    with(full.clone(), json!({ "case_number": "  " })),
                    "case_number or a justification",
                ),
                (
                    with(full.clone(), json!({ "from_ms": now, "to_ms": now - DAY })),
                    "timeframe",
                ),
                (
                    with(full.clone(), json!({ "on_behalf_of": "nobody.here" })),
                    "on_behalf_of",
                ),
                (
                    with(full.clone(), json!({ "on_behalf_of": "x'; --" })),
                    "on_behalf_of",
                ),
                (
                    with(full.clone(), json!({ "make": "Honda" })),
                    "unknown field",
                ),
                (
                    with(full.clone(), json!({ "from_ms": "yesterday" })),
                    "invalid",
                ),
                (with(full.clone(), json!({ "confirm": "yes" })), "invalid"),
            ];
            for (body, want) in cases {
                let (s, answer) = query(&env, &analyst, kind, body.clone()).await;
                assert_eq!(s, StatusCode::BAD_REQUEST, "{b} {kind} {body}: {answer}");
                let reason = answer["error"].as_str().expect("reason");
                assert!(
                    reason.contains(want),
                    "{b} {kind}: {reason:?} lacks {want:?}"
                );
            }
            // A justification instead of a case number, on behalf of a known user: fine.
            let ok = with(
                without(&["case_number"]),
                json!({ "justification": "tip from dispatch", "on_behalf_of": "admin" }),
            );
            let (s, answer) = query(&env, &analyst, kind, ok).await;
            assert_eq!(s, StatusCode::OK, "{b} {kind}: {answer}");
        }
    }
}

#[tokio::test]
async fn plate_and_partial_queries_return_exactly_the_matching_rows() {
    for db in backends().await {
        let env = env(db).await;
        let b = env.backend();
        let who = capturer(&env).await;
        let analyst = env.user("ana.enh", "analyst", true).await;
        let t = t0();
        let rows = vec![
            row(who, "AB1123", "CA", 10.0, 20.0, t + 1000),
            row(who, "AB9123", "CA", 10.2, 20.2, t + 2000),
            row(who, "AB123", "NV", 10.4, 20.4, t + 3000),
            row(who, "XAB1123", "CA", 10.0, 20.0, t + 4000),
            row(who, "AB11234", "CA", 10.0, 20.0, t + 5000),
            row(who, "XY17X9", "CA", 10.0, 20.0, t + 6000),
            row(who, "XY7999", "CA", 10.0, 20.0, t + 7000),
            row(who, "XY9", "CA", 10.0, 20.0, t + 8000),
            row(who, "AB1123", "CA", 10.0, 20.0, t - DAY),
        ];
        seed(&env, &rows).await;
        let id = |i: usize| rows[i].id.clone();
        let window = basis(t, t + DAY);
        let cases: Vec<(&str, Value, Vec<usize>)> = vec![
            ("plate", json!({ "plate": "AB1123" }), vec![0]),
            (
                "plate",
                json!({ "plate": "ab1123", "state": "CA" }),
                vec![0],
            ),
            ("plate", json!({ "plate": "AB1123", "state": "NV" }), vec![]),
            ("partial", json!({ "pattern": "AB*123" }), vec![2, 1, 0]),
            (
                "partial",
                json!({ "pattern": "ab*123", "state": "CA" }),
                vec![1, 0],
            ),
            ("partial", json!({ "pattern": "AB?123" }), vec![1, 0]),
            ("partial", json!({ "pattern": "XY*7*9" }), vec![6, 5]),
            ("partial", json!({ "pattern": "*123" }), vec![3, 2, 1, 0]),
            (
                "partial",
                json!({ "pattern": "*A*B*1*" }),
                vec![4, 3, 2, 1, 0],
            ),
            ("partial", json!({ "pattern": "AB1123" }), vec![0]),
            ("partial", json!({ "pattern": "?B11*" }), vec![4, 0]),
            ("partial", json!({ "pattern": "*99X*" }), vec![]),
            ("partial", json!({ "pattern": "*999" }), vec![6]),
        ];
        for (kind, extra, want) in cases {
            let answer = query(&env, &analyst, kind, with(window.clone(), extra.clone())).await;
            let got = ids(b, &format!("{kind} {extra}"), &answer);
            let want: Vec<String> = want.into_iter().map(id).collect();
            assert_eq!(got, want, "{b} {kind} {extra}");
            assert_eq!(answer.1["count"], json!(want.len()));
            assert_eq!(answer.1["confirm_required"], false);
        }
        // The whole row comes back.
        let (_, answer) = query(
            &env,
            &analyst,
            "plate",
            with(window.clone(), json!({ "plate": "AB123" })),
        )
        .await;
        let hit = &answer["rows"][0];
        assert_eq!(hit["plate"], "AB123");
        assert_eq!(hit["state"], "NV");
        assert_eq!(hit["user"], "ofc.capture");
        assert_eq!(hit["device_id"], who.1);
        assert_eq!(hit["lat"], 10.4);
        assert_eq!(hit["match_tags"], json!(["stolen-vehicle"]));
        assert!(hit.get("crop").is_none());
    }
}

#[tokio::test]
async fn polygon_and_common_queries_return_exactly_the_matching_rows() {
    for db in backends().await {
        let env = env(db).await;
        let b = env.backend();
        let who = capturer(&env).await;
        let analyst = env.user("ana.enh", "analyst", true).await;
        let t = t0();
        let rows = vec![
            row(who, "TRI001", "CA", 0.5, 0.5, t + 100), // 0 inside the triangle
            row(who, "TRI002", "CA", 1.5, 1.5, t + 200), // 1 in its box, not in it
            row(who, "TRI003", "CA", 1.0, 1.0, t + 300), // 2 on its edge: inside
            row(who, "FAR001", "CA", 5.0, 5.0, t + 400), // 3 far away
            row(who, "CMN001", "CA", 0.3, 0.3, t + 500), // 4 triangle
            row(who, "CMN001", "CA", 10.1, 10.1, t + 600), // 5 square
            row(who, "CMN002", "CA", 0.2, 0.2, t + 700), // 6 triangle
            row(who, "CMN002", "CA", 0.25, 0.25, t + 800), // 7 triangle again
            row(who, "CMN003", "CA", 10.2, 9.8, t + 900), // 8 square
            row(who, "CMN003", "CA", 5.0, 5.1, t + 1000), // 9 far
            row(who, "CMN001", "CA", 0.3, 0.3, t - 2 * DAY), // 10 before the timeframe
            row(who, "CMN001", "CA", 0.3, 0.3, t + 2 * DAY), // 11 after it
        ];
        seed(&env, &rows).await;
        let id = |i: usize| rows[i].id.clone();
        let window = basis(t, t + DAY);
        let sq = square(10.0, 10.0, 0.5);
        let far = square(5.0, 5.0, 0.2);
        let overlap = square(0.5, 0.5, 0.1);
        let mut donut = square(0.5, 0.5, 0.4);
        let hole = square(0.5, 0.5, 0.05)[0].clone();
        donut.as_array_mut().expect("rings").push(hole);
        let cases: Vec<(&str, Value, Vec<usize>)> = vec![
            (
                "polygon",
                json!({ "polygons": [triangle()] }),
                vec![7, 6, 4, 2, 0],
            ),
            (
                "polygon",
                json!({ "polygons": [triangle(), sq] }),
                vec![8, 7, 6, 5, 4, 2, 0],
            ),
            (
                "polygon",
                json!({ "polygons": [triangle(), overlap] }),
                vec![7, 6, 4, 2, 0],
            ),
            // The hole excludes TRI001 at its centre.
            ("polygon", json!({ "polygons": [donut] }), vec![7, 6, 4]),
            (
                "common",
                json!({ "polygons": [triangle(), sq] }),
                vec![5, 4],
            ),
            (
                "common",
                json!({ "polygons": [triangle(), sq, far] }),
                vec![9, 8, 5, 4],
            ),
            (
                "common",
                json!({ "polygons": [triangle(), sq, far], "min_areas": 3 }),
                vec![],
            ),
        ];
        for (kind, extra, want) in cases {
            let answer = query(&env, &analyst, kind, with(window.clone(), extra.clone())).await;
            let got = ids(b, &format!("{kind} {extra}"), &answer);
            let want: Vec<String> = want.into_iter().map(id).collect();
            assert_eq!(got, want, "{b} {kind} {extra}");
            assert_eq!(answer.1["count"], json!(want.len()), "{b} {kind} {extra}");
        }
        let answer = query(
            &env,
            &analyst,
            "common",
            with(window.clone(), json!({ "polygons": [triangle(), sq, far] })),
        )
        .await;
        let areas: Vec<Value> = answer.1["rows"]
            .as_array()
            .expect("rows")
            .iter()
            .map(|r| r["areas"].clone())
            .collect();
        assert_eq!(
            areas,
            vec![json!([2]), json!([1]), json!([1]), json!([0])],
            "{b}"
        );
        // A deleted encounter is gone from the answers.
        let delete = format!("DELETE FROM encounters WHERE id = '{}'", id(0));
        match env.state.repo.db() {
            Db::Sqlite(p) => sqlx::query(&delete).execute(p).await.map(|_| ()),
            Db::Postgres(p) => sqlx::query(&delete).execute(p).await.map(|_| ()),
        }
        .expect("delete");
        let answer = query(
            &env,
            &analyst,
            "polygon",
            with(window.clone(), json!({ "polygons": [triangle()] })),
        )
        .await;
        assert_eq!(
            ids(b, "after delete", &answer),
            vec![id(7), id(6), id(4), id(2)]
        );
    }
}

#[tokio::test]
async fn ten_thousand_rows_warn_and_confirmed_return_the_five_thousand_most_recent() {
    for db in backends().await {
        let env = env(db).await;
        let b = env.backend();
        let who = capturer(&env).await;
        let analyst = env.user("ana.enh", "analyst", true).await;
        let t = t0();
        // 10,000 of one plate (exactly the threshold) plus 2 of another, close together.
        let mut rows: Vec<Encounter> = (0..10_000)
            .map(|i| {
                let f = f64::from(i % 100) * 0.0001;
                row(
                    who,
                    "BULK001",
                    "TX",
                    30.0 + f,
                    -97.0 - f,
                    t + i64::from(i) * 1000,
                )
            })
            .collect();
        rows.push(row(who, "BULK002", "TX", 30.0, -97.0, t + 1));
        rows.push(row(who, "BULK002", "TX", 30.0, -97.0, t + 2));
        seed(&env, &rows).await;
        let window = basis(t, t + DAY);
        let area = json!({ "polygons": [square(30.0, -97.0, 0.05)] });
        for (kind, extra, total) in [
            ("plate", json!({ "plate": "BULK001" }), 10_000u64),
            ("partial", json!({ "pattern": "BULK*" }), 10_002),
            ("polygon", area.clone(), 10_002),
        ] {
            let (s, warned) =
                query(&env, &analyst, kind, with(window.clone(), extra.clone())).await;
            assert_eq!(s, StatusCode::OK, "{b} {kind}: {warned}");
            assert_eq!(warned["confirm_required"], true, "{b} {kind}");
            assert_eq!(warned["count"], total, "{b} {kind}");
            assert_eq!(warned["rows"], json!([]));
            assert!(
                warned["warning"]
                    .as_str()
                    .expect("warning")
                    .contains("confirm")
            );
            let confirmed = with(
                with(window.clone(), extra.clone()),
                json!({ "confirm": true }),
            );
            let (s, answer) = query(&env, &analyst, kind, confirmed).await;
            assert_eq!(s, StatusCode::OK, "{b} {kind}: {}", answer["error"]);
            assert_eq!(answer["count"], total);
            assert_eq!(answer["truncated"], true);
            let got: Vec<i64> = answer["rows"]
                .as_array()
                .expect("rows")
                .iter()
                .map(|r| r["captured_at_ms"].as_i64().expect("t"))
                .collect();
            let want: Vec<i64> = (5_000..10_000).rev().map(|i| t + i * 1000).collect();
            assert_eq!(got, want, "{b} {kind}: the 5,000 most recent, newest first");
        }
        // One fewer than the threshold returns everything without confirmation.
        let (_, answer) = query(
            &env,
            &analyst,
            "plate",
            with(basis(t + 1000, t + DAY), json!({ "plate": "BULK001" })),
        )
        .await;
        assert_eq!(answer["count"], 9_999);
        assert_eq!(answer["returned"], 9_999);
        assert_eq!(answer["confirm_required"], false);
        // Audited: warned, then confirmed; the chain still verifies.
        let rows = env.state.repo.audit_rows(1, 100_000).await.expect("audit");
        let outcomes: Vec<(&str, &str, Option<i64>)> = rows
            .iter()
            .filter(|r| r.action.starts_with("query."))
            .map(|r| (r.action.as_str(), r.outcome.as_str(), r.result_count))
            .collect();
        assert_eq!(
            outcomes,
            vec![
                ("query.plate", "warned", Some(10_000)),
                ("query.plate", "ok", Some(10_000)),
                ("query.partial", "warned", Some(10_002)),
                ("query.partial", "ok", Some(10_002)),
                ("query.polygon", "warned", Some(10_002)),
                ("query.polygon", "ok", Some(10_002)),
                ("query.plate", "ok", Some(9_999)),
            ],
            "{b}"
        );
        assert!(matches!(
            env.state.repo.verify_chain().await.expect("verify"),
            ChainStatus::Intact { .. }
        ));
    }
}

#[tokio::test]
async fn queries_are_audited_with_criteria_and_flags() {
    for db in backends().await {
        let mut config = test_config();
        config.queries = QueryConfig {
            flag_area_km2: 50.0,
            sensitive_locations: SensitiveLocation::parse_list(
                r#"[{"name": "clinic", "lat": 0.5, "lon": 0.5, "radius_m": 500},
                    {"name": "shelter", "polygon": [[20, 20], [20, 20.01], [20.01, 20.01]]}]"#,
            )
            .expect("locations"),
            ..QueryConfig::default()
        };
        let env = env_with(db, config).await;
        let b = env.backend();
        let analyst = env.user("ana.enh", "analyst", true).await;
        let t = t0();
        let small_far = square(10.0, 10.0, 0.01); // ~4.9 km²: not flagged
        let near_clinic = square(0.5, 0.51, 0.01); // the clinic is 0 m from its edge
        let big = square(40.0, 40.0, 0.5); // ~9,500 km²
        let cases = [
            (json!({ "polygons": [small_far] }), false, json!([])),
            (
                json!({ "polygons": [near_clinic] }),
                false,
                json!(["clinic"]),
            ),
            (json!({ "polygons": [big] }), true, json!([])),
        ];
        let before = env
            .state
            .repo
            .audit_rows(1, 100_000)
            .await
            .expect("a")
            .len();
        for (extra, large, sensitive) in cases.clone() {
            let body = with(
                with(basis(t, t + DAY), extra),
                json!({ "on_behalf_of": "admin", "justification": "burglary series" }),
            );
            let (s, answer) = query(&env, &analyst, "polygon", body).await;
            assert_eq!(s, StatusCode::OK, "{b}: {answer}");
            assert_eq!(answer["flags"]["large_area"], large, "{b}");
            assert_eq!(answer["flags"]["sensitive_locations"], sensitive, "{b}");
        }
        let (s, _) = query(
            &env,
            &analyst,
            "partial",
            with(basis(t, t + DAY), json!({ "pattern": "7AB*12" })),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        let rows = env.state.repo.audit_rows(1, 100_000).await.expect("audit");
        let new: Vec<_> = rows[before..].iter().collect();
        assert_eq!(new.len(), 4, "{b}");
        for (r, (_, large, sensitive)) in new.iter().zip(cases.iter()) {
            assert_eq!(r.action, "query.polygon");
            assert_eq!(r.username.as_deref(), Some("ana.enh"));
            assert_eq!(r.on_behalf_of.as_deref(), Some("admin"));
            assert_eq!(r.reason.as_deref(), Some("investigation"));
            assert_eq!(r.justification.as_deref(), Some("burglary series"));
            assert_eq!(r.result_count, Some(0));
            let c: Value = serde_json::from_str(&r.criteria).expect("criteria json");
            // Canonical: keys sorted, so re-serialising gives the same text.
            assert_eq!(c.to_string(), r.criteria);
            assert_eq!(c["kind"], "polygon");
            assert_eq!(c["case_number"], "2026-0042");
            assert_eq!(c["from_ms"], t);
            assert_eq!(c["flags"]["large_area"], *large);
            assert_eq!(c["flags"]["sensitive_locations"], *sensitive);
            assert_eq!(c["flagged"], *large || sensitive != &json!([]));
            assert!(c["polygons"].is_array());
        }
        let partial: Value = serde_json::from_str(&new[3].criteria).expect("json");
        assert_eq!(partial["pattern"], "7AB*12");
        assert_eq!(new[3].action, "query.partial");
        assert!(matches!(
            env.state.repo.verify_chain().await.expect("verify"),
            ChainStatus::Intact { .. }
        ));
    }
}

#[tokio::test]
async fn sessions_start_and_end_are_audited() {
    for db in backends().await {
        let env = env(db).await;
        let b = env.backend();
        let officer = env.user("ofc.one", "officer", false).await;
        let other = env.user("ofc.two", "officer", false).await;
        let (_, device) = env.device(&officer).await;
        let id = uuid::Uuid::new_v4().to_string();
        let body = json!({ "id": id, "reason_code": "patrol", "case_number": "C-1", "on_behalf_of": "ofc.two" });
        let (s, started) = env
            .call(
                Method::POST,
                "/v1/sessions",
                Some(&device),
                Some(body.clone()),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}: {started}");
        assert_eq!(started["id"], id.as_str());
        assert!(started["device_id"].is_i64());
        // The same id again (an offline device retrying) is the same session.
        let (s, again) = env
            .call(
                Method::POST,
                "/v1/sessions",
                Some(&officer),
                Some(body.clone()),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{b}: {again}");
        assert_eq!(again["started_at_ms"], started["started_at_ms"]);
        let (s, _) = env
            .call(
                Method::POST,
                "/v1/sessions",
                Some(&other),
                Some(body.clone()),
            )
            .await;
        assert_eq!(s, StatusCode::CONFLICT);
        let bad = [
            json!({ "reason_code": "patrol" }),
            json!({ "reason_code": "fun", "case_number": "C-1" }),
            json!({ "id": "not-a-uuid", "reason_code": "patrol", "case_number": "C-1" }),
            json!({ "case_number": "C-1" }),
            json!({ "reason_code": "patrol", "case_number": "C-1", "plate": "7ABC123" }),
        ];
        for body in bad {
            let (s, answer) = env
                .call(
                    Method::POST,
                    "/v1/sessions",
                    Some(&officer),
                    Some(body.clone()),
                )
                .await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{b} {body}: {answer}");
            assert!(!answer.to_string().contains("7ABC123"));
        }
        let end = format!("/v1/sessions/{id}/end");
        let (s, _) = env.call(Method::POST, &end, Some(&other), None).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, ended) = env.call(Method::POST, &end, Some(&officer), None).await;
        assert_eq!(s, StatusCode::OK, "{b}: {ended}");
        assert!(ended["ended_at_ms"].is_i64());
        let (s, _) = env.call(Method::POST, &end, Some(&officer), None).await;
        assert_eq!(s, StatusCode::CONFLICT);
        let (s, _) = env
            .call(Method::POST, "/v1/sessions/nope/end", Some(&officer), None)
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        let (s, _) = env
            .call(
                Method::POST,
                &format!("/v1/sessions/{}/end", uuid::Uuid::new_v4()),
                Some(&officer),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let rows = env.state.repo.audit_rows(1, 100_000).await.expect("audit");
        let sessions: Vec<_> = rows
            .iter()
            .filter(|r| {
                r.action.starts_with("session.") && !r.criteria.contains(crate::common::SESSION_ID)
            })
            .collect();
        assert_eq!(sessions.len(), 2, "{b}");
        assert_eq!(sessions[0].action, "session.start");
        assert_eq!(sessions[0].on_behalf_of.as_deref(), Some("ofc.two"));
        assert_eq!(sessions[0].reason.as_deref(), Some("patrol"));
        assert!(sessions[0].criteria.contains(&id));
        assert_eq!(sessions[1].action, "session.end");
        assert!(matches!(
            env.state.repo.verify_chain().await.expect("verify"),
            ChainStatus::Intact { .. }
        ));
    }
}

async fn raw(env: &Env, uri: &str, token: &str, body: Vec<u8>) -> (StatusCode, String) {
    let req = Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Body::from(body))
        .expect("request");
    let resp = tower::ServiceExt::oneshot(env.app.clone(), req)
        .await
        .expect("infallible");
    let status = resp.status();
    let bytes = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .expect("body")
        .to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test]
async fn hostile_query_bodies_get_4xx_with_a_reason_and_no_plate_text() {
    for db in backends().await {
        let env = env(db).await;
        let b = env.backend();
        let analyst = env.user("ana.enh", "analyst", true).await;
        let now = platewatch_server::now_ms();
        let window = basis(now - DAY, now);
        let huge: Vec<[f64; 2]> = (0..6000)
            .map(|i| {
                let a = f64::from(i) * std::f64::consts::TAU / 6000.0;
                [a.sin(), a.cos()]
            })
            .collect();
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("plate", b"{\"plate\": \"7ABC123\"".to_vec()),
            ("plate", b"7ABC123".to_vec()),
            ("plate", b"[\"7ABC123\"]".to_vec()),
            ("plate", with(window.clone(), json!({ "plate": 7 })).to_string().into_bytes()),
            ("plate", with(window.clone(), json!({ "plate": "7ABC123'; DROP TABLE encounters;--" })).to_string().into_bytes()),
            ("plate", with(window.clone(), json!({ "plate": "7ABC123", "state": "ZZ" })).to_string().into_bytes()),
            ("plate", with(window.clone(), json!({ "plate": "7ABC1234567890123" })).to_string().into_bytes()),
            ("plate", with(window.clone(), json!({ "7ABC123": true, "plate": "7ABC123" })).to_string().into_bytes()),
            ("partial", with(window.clone(), json!({ "pattern": "7ABC123%' OR 1=1 --" })).to_string().into_bytes()),
            ("partial", with(window.clone(), json!({ "pattern": "7ABC12[3]" })).to_string().into_bytes()),
            ("partial", with(window.clone(), json!({ "pattern": "*7*" })).to_string().into_bytes()),
            ("partial", with(window.clone(), json!({ "pattern": ["7ABC123"] })).to_string().into_bytes()),
            ("polygon", with(window.clone(), json!({ "polygons": [[huge]] })).to_string().into_bytes()),
            ("polygon", with(window.clone(), json!({ "polygons": [] })).to_string().into_bytes()),
            ("polygon", with(window.clone(), json!({ "polygons": "7ABC123" })).to_string().into_bytes()),
            ("polygon", with(window.clone(), json!({ "polygons": [[[[0, 0], [0, 1]]]] })).to_string().into_bytes()),
            ("polygon", with(window.clone(), json!({ "polygons": [[[[0, 0], [0, 1], [91, 1]]]] })).to_string().into_bytes()),
            ("polygon", with(window.clone(), json!({ "polygons": [[[[0, 0, 0], [0, 1], [1, 1]]]] })).to_string().into_bytes()),
            ("polygon", with(window.clone(), json!({ "polygons": vec![square(0.0, 0.0, 0.1); 11] })).to_string().into_bytes()),
            ("polygon", br#"{"from_ms": 0, "to_ms": 1, "reason_code": "patrol", "case_number": "1", "polygons": [[[[1e999, 0], [0, 1], [1, 1]]]]}"#.to_vec()),
            ("common", with(window.clone(), json!({ "polygons": [square(0.0, 0.0, 0.1)] })).to_string().into_bytes()),
            ("common", with(window.clone(), json!({ "polygons": [square(0.0, 0.0, 0.1), square(1.0, 1.0, 0.1)], "min_areas": 3 })).to_string().into_bytes()),
            ("common", with(window.clone(), json!({ "polygons": [square(0.0, 0.0, 0.1), square(1.0, 1.0, 0.1)], "min_areas": -1 })).to_string().into_bytes()),
        ];
        for (kind, body) in cases {
            let (s, text) = raw(&env, &format!("/v1/queries/{kind}"), &analyst, body.clone()).await;
            assert_eq!(
                s,
                StatusCode::BAD_REQUEST,
                "{b} {kind} {}: {text}",
                String::from_utf8_lossy(&body)
            );
            let answer: Value = serde_json::from_str(&text).expect("JSON error");
            assert!(!answer["error"].as_str().expect("reason").is_empty());
            assert!(!text.contains("7ABC12"), "{b}: plate text in {text}");
        }
        // Mutated valid bodies: never a server error, never plate text.
        let seeds: Vec<(&str, String)> = vec![
            (
                "partial",
                with(
                    window.clone(),
                    json!({ "pattern": "7AB*123", "state": "CA" }),
                )
                .to_string(),
            ),
            (
                "polygon",
                with(window.clone(), json!({ "polygons": [triangle()] })).to_string(),
            ),
            (
                "common",
                with(
                    window.clone(),
                    json!({ "polygons": [triangle(), square(1.0, 1.0, 0.1)] }),
                )
                .to_string(),
            ),
        ];
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        const SPICE: &[&[u8]] = &[
            b"\"",
            b"{",
            b"]",
            b",",
            b"null",
            b"-1e999",
            b"1e308",
            b"'; --",
            b"\\u0000",
            b"\xff",
            b"*",
            b"[[[",
            b"99999999999999999999",
        ];
        for (kind, seed_body) in &seeds {
            for _ in 0..60 {
                let mut body = seed_body.clone().into_bytes();
                for _ in 0..1 + next() % 3 {
                    let at = (next() as usize) % body.len();
                    match next() % 3 {
                        0 => {
                            body.remove(at);
                        }
                        1 => {
                            let s = SPICE[(next() as usize) % SPICE.len()];
                            body.splice(at..at, s.iter().copied());
                        }
                        _ => body[at] = (next() & 0xff) as u8,
                    }
                }
                let (s, text) = raw(&env, &format!("/v1/queries/{kind}"), &analyst, body).await;
                assert!(!s.is_server_error(), "{b} {kind}: {s} {text}");
                assert!(!text.contains("7AB"), "{b}: plate text in {text}");
            }
        }
    }
}

#[tokio::test]
async fn query_plans_use_the_indexes() {
    for db in backends().await {
        let env = env(db).await;
        let b = env.backend();
        let repo = &env.state.repo;
        let t = t0();
        // Enough varied rows for the planners' statistics to mean something.
        let who = capturer(&env).await;
        let rows: Vec<Encounter> = (0..30_000u32)
            .map(|i| {
                let plate = format!(
                    "{}{:04}",
                    ["7AB", "8CD", "9EF", "1GH", "2JK"][(i % 5) as usize],
                    i % 9973
                );
                let f = f64::from(i);
                row(
                    who,
                    &plate,
                    "CA",
                    (f * 0.37) % 80.0,
                    (f * 0.73) % 170.0,
                    t - DAY * 30 + i64::from(i) * 60_000,
                )
            })
            .collect();
        // Through the bulk loader (one UNNEST statement on PostgreSQL).
        let stored = repo
            .bulk_insert_encounters(&rows, platewatch_server::now_ms())
            .await
            .expect("bulk load");
        assert_eq!(stored, 30_000, "{b}");
        assert_eq!(
            repo.bulk_insert_encounters(&rows[..10], 1)
                .await
                .expect("again"),
            0
        );
        match repo.db() {
            Db::Sqlite(p) => sqlx::query("ANALYZE").execute(p).await.map(|_| ()),
            Db::Postgres(p) => sqlx::query("ANALYZE").execute(p).await.map(|_| ()),
        }
        .expect("analyze");
        let partial = Criteria::Partial {
            pattern: "7AB*123".into(),
            state: None,
        };
        let limits = AreaLimits {
            max_polygons: 10,
            max_vertices: 100,
        };
        let polygons = vec![serde_json::from_value(square(37.7, -122.4, 0.01)).expect("rings")];
        let polygon = Criteria::Polygon {
            areas: parse_polygons("polygons", &polygons, 1, limits).expect("area"),
            polygons,
        };
        let from = t - 31 * DAY;
        let plan_partial = repo.explain(&partial, from, t, true).await.expect("plan");
        let plan_polygon = repo.explain(&polygon, from, t, true).await.expect("plan");
        match repo.db() {
            Db::Sqlite(_) => {
                assert!(plan_partial.contains("plate_grams"), "{plan_partial}");
                assert!(
                    plan_partial.contains("encounters_plate_time"),
                    "{plan_partial}"
                );
                assert!(
                    plan_polygon.contains("encounters_cell_time"),
                    "{plan_polygon}"
                );
            }
            Db::Postgres(_) => {
                assert!(
                    plan_partial.contains("encounters_plate_trgm"),
                    "{b}: {plan_partial}"
                );
                assert!(
                    plan_polygon.contains("encounters_geo"),
                    "{b}: {plan_polygon}"
                );
                assert!(
                    plan_polygon.contains("captured_at_ms"),
                    "{b}: {plan_polygon}"
                );
            }
        }
    }
}
