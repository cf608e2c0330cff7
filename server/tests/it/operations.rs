//! Retention with case holds, monthly reports and audit export, on both backends: retention
//! deletes old encounters but keeps those of held cases (until released), report counts are
//! exact on seeded data (month edges, 4+/7+ plates, areas, hours), exports hold exactly the
//! range's rows with verifiable hashes, and every one of these is audited.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use platewatch_core::hotlist::Date;
use platewatch_server::audit::{AuditKeys, AuditRow, Checkpoint, Scheme, parse_public_key};
use platewatch_server::ingest::{Encounter, Uploader, validate};
use platewatch_server::retention::{DAY_MS, run_once};
use platewatch_server::{ChainStatus, Config, Db, Repo, now_ms};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::common::{Env, backends, encounter, env, exec};

/// A valid encounter of `plate` at `at_ms` and (`lat`, `lon`), uploaded by `user`/`device`.
fn enc(user: i64, device: i64, plate: &str, at_ms: i64, lat: f64, lon: f64) -> Encounter {
    let who = Uploader {
        user_id: user,
        username: "ofc.seed",
        device_id: device,
        now_ms: now_ms(),
    };
    let mut row = encounter(plate);
    row["captured_at_ms"] = json!(at_ms);
    row["lat"] = json!(lat);
    row["lon"] = json!(lon);
    row["match_tags"] = json!([]);
    row["alert"] = Value::Null;
    let row = serde_json::from_value(row).expect("row");
    validate(&row, who, &Config::default()).expect("valid").0
}

async fn seed_user(repo: &Repo) -> (i64, i64) {
    let uid = repo
        .create_user("ofc.seed", "h", platewatch_server::Role::Officer, false, 1)
        .await
        .expect("user");
    let dev = repo
        .create_device(
            uid,
            "seed phone",
            &uuid::Uuid::new_v4().to_string(),
            1,
            i64::MAX,
        )
        .await
        .expect("device");
    (uid, dev)
}

async fn ids(repo: &Repo) -> Vec<String> {
    const SQL: &str = "SELECT id FROM encounters ORDER BY id";
    match repo.db() {
        Db::Sqlite(p) => sqlx::query_scalar(SQL).fetch_all(p).await.expect("ids"),
        Db::Postgres(p) => sqlx::query_scalar(SQL).fetch_all(p).await.expect("ids"),
    }
}

#[tokio::test]
async fn retention_deletes_old_encounters_but_keeps_held_cases() {
    for db in backends().await {
        let env = env(db).await;
        let b = env.backend();
        let repo = env.state.repo.clone();
        let analyst = env.user("an.holds", "analyst", true).await;
        let (uid, dev) = seed_user(&repo).await;
        let now = now_ms();
        let day = |d: i64| now - d * DAY_MS;
        let mut rows = Vec::new();
        for (case, age_days) in [
            (Some("C-HELD"), 800),
            (Some("C-OPEN"), 800),
            (None, 800),
            (Some("C-OPEN"), 10),
            (Some("C-HELD"), 731),
            (Some("C-HELD"), 729),
        ] {
            let mut e = enc(uid, dev, "7ABC123", day(age_days), 37.0, -122.0);
            e.case_number = case.map(str::to_string);
            e.justification = Some("patrol".into());
            rows.push(e);
        }
        repo.insert_encounters(&rows, now).await.expect("seed");

        // An analyst puts C-HELD on hold (once: a second open hold is a conflict).
        let hold = json!({ "case_number": "C-HELD", "justification": "trial pending" });
        let (status, h) = env
            .call(
                Method::POST,
                "/v1/holds",
                Some(&analyst),
                Some(hold.clone()),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{b}: {h}");
        let hold_id = h["id"].as_i64().expect("id");
        let (status, _) = env
            .call(Method::POST, "/v1/holds", Some(&analyst), Some(hold))
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{b}");
        for bad in [
            json!({ "case_number": "", "justification": "x" }),
            json!({ "case_number": "C-1" }),
            json!({ "case_number": "C-1", "justification": "a\u{7}b" }),
        ] {
            let (status, _) = env
                .call(Method::POST, "/v1/holds", Some(&analyst), Some(bad.clone()))
                .await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{b}: {bad}");
        }
        let (status, list) = env
            .call(Method::GET, "/v1/holds", Some(&analyst), None)
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(list["holds"][0]["case_number"], "C-HELD");
        assert_eq!(list["holds"][0]["created_by"], "an.holds");

        // Retention: the two unheld rows older than 730 days go; the held ones stay.
        let r = run_once(&repo, 730, now_ms(), "test")
            .await
            .expect("retention");
        assert_eq!((r.deleted, r.held), (2, 2), "{b}");
        let left = ids(&repo).await;
        let mut expect: Vec<String> = [0, 3, 4, 5].iter().map(|&i| rows[i].id.clone()).collect();
        expect.sort();
        assert_eq!(left, expect, "{b}");
        // Running again deletes nothing more.
        let r = run_once(&repo, 730, now_ms(), "test")
            .await
            .expect("retention");
        assert_eq!((r.deleted, r.held), (0, 2), "{b}");

        // Released, the case's old encounters go at the next run.
        let (status, _) = env
            .call(
                Method::DELETE,
                &format!("/v1/holds/{hold_id}"),
                Some(&analyst),
                Some(json!({ "reason": "case closed" })),
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{b}");
        let (status, _) = env
            .call(
                Method::DELETE,
                "/v1/holds/999999",
                Some(&analyst),
                Some(json!({ "reason": "x" })),
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{b}");
        let (status, _) = env
            .call(
                Method::DELETE,
                &format!("/v1/holds/{hold_id}"),
                Some(&analyst),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{b}: a reason is required");
        let (_, open) = env
            .call(Method::GET, "/v1/holds", Some(&analyst), None)
            .await;
        assert_eq!(open["holds"].as_array().expect("holds").len(), 0);
        let (_, all) = env
            .call(Method::GET, "/v1/holds?all=true", Some(&analyst), None)
            .await;
        assert_eq!(all["holds"][0]["release_reason"], "case closed");
        let r = run_once(&repo, 730, now_ms(), "test")
            .await
            .expect("retention");
        assert_eq!((r.deleted, r.held), (2, 0), "{b}");
        let mut expect: Vec<String> = [3, 5].iter().map(|&i| rows[i].id.clone()).collect();
        expect.sort();
        assert_eq!(ids(&repo).await, expect, "{b}");

        // Holds and runs are audited with their counts.
        let audit = repo.audit_rows(1, 1000).await.expect("audit");
        let runs: Vec<&AuditRow> = audit
            .iter()
            .filter(|r| r.action == "retention.run")
            .collect();
        assert_eq!(
            runs.iter().map(|r| r.result_count).collect::<Vec<_>>(),
            [Some(2), Some(0), Some(2)],
            "{b}"
        );
        let c: Value = serde_json::from_str(&runs[0].criteria).expect("criteria");
        assert_eq!(
            (&c["deleted"], &c["held"], &c["retention_days"]),
            (&json!(2), &json!(2), &json!(730))
        );
        let set = audit
            .iter()
            .find(|r| r.action == "hold.set")
            .expect("hold.set");
        assert_eq!(set.justification.as_deref(), Some("trial pending"));
        assert_eq!(set.username.as_deref(), Some("an.holds"));
        let rel = audit
            .iter()
            .find(|r| r.action == "hold.release" && r.outcome == "ok");
        assert_eq!(rel.and_then(|r| r.reason.as_deref()), Some("case closed"));
        assert!(matches!(
            repo.verify_chain().await.expect("verify"),
            ChainStatus::Intact { .. }
        ));
    }
}

fn month_start(y: i32, m: u32) -> i64 {
    Date::from_ymd(y, m, 1).expect("date").unix_seconds() * 1000
}

#[tokio::test]
async fn monthly_report_counts_are_exact() {
    const H: i64 = 3_600_000;
    const D: i64 = 24 * H;
    const SF: (f64, f64) = (37.775, -122.415);
    const NYC: (f64, f64) = (40.715, -74.005);
    const LDN: (f64, f64) = (51.505, -0.125);
    for db in backends().await {
        let env = env(db).await;
        let b = env.backend();
        let repo = env.state.repo.clone();
        let (uid, dev) = seed_user(&repo).await;
        let m0 = month_start(2025, 3);
        let a0 = month_start(2025, 4);
        let mut rows = Vec::new();
        let mut add = |plate: &str, at: i64, (lat, lon): (f64, f64)| {
            rows.push(enc(uid, dev, plate, at, lat, lon));
            rows.len() - 1
        };
        let mut aaa = Vec::new();
        for d in 1..=7 {
            aaa.push(add("AAA111", m0 + d * D + 8 * H, SF));
        }
        let mut bbb = Vec::new();
        for d in 2..=5 {
            bbb.push(add("BBB222", m0 + d * D + 17 * H + 59 * 60_000, NYC));
        }
        for _ in 0..3 {
            add("CCC333", m0 + 10 * D + 8 * H, SF);
        }
        add("DDD444", m0 + 20 * D + 23 * H, LDN);
        for d in 2..=6 {
            add("DDD444", a0 + d * D, LDN);
        }
        add("EEE555", m0, SF); // first instant of March
        add("FFF666", m0 - 30 * 60_000, SF); // February, 23:30 UTC
        add("GGG777", a0, NYC); // first instant of April
        // Alerts: a tagged and accepted one, a tagged one without a decision, a rejected one.
        rows[aaa[0]].match_tags = r#"["stolen-vehicle"]"#.into();
        rows[aaa[0]].alert_decision = Some("accepted");
        rows[aaa[1]].match_tags = r#"["wanted"]"#.into();
        rows[bbb[0]].alert_decision = Some("rejected");
        rows[bbb[0]].alert_reason = Some("misread".into());
        repo.insert_encounters(&rows, now_ms()).await.expect("seed");

        let analyst = env.user("an.reports", "analyst", false).await;
        let (status, r) = env
            .call(
                Method::GET,
                "/v1/reports/monthly?month=2025-03",
                Some(&analyst),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{b}: {r}");
        assert_eq!(
            (r["from_ms"].as_i64(), r["to_ms"].as_i64()),
            (Some(m0), Some(a0))
        );
        assert_eq!(r["encounters"], 16, "{b}: {r}");
        assert_eq!(r["distinct_plates"], 5, "{b}");
        assert_eq!(r["alerts_triggered"], 3, "{b}");
        assert_eq!(r["alerts_accepted"], 1, "{b}");
        assert_eq!(r["alerts_rejected"], 1, "{b}");
        assert_eq!(r["plates_seen_4_plus"], 2, "{b}: AAA111 and BBB222");
        assert_eq!(r["plates_seen_7_plus"], 1, "{b}: AAA111");
        let mut hours = vec![0i64; 24];
        hours[0] = 1;
        hours[8] = 10;
        hours[17] = 4;
        hours[23] = 1;
        assert_eq!(r["by_hour"], json!(hours), "{b}");
        let areas: Vec<(i64, i64, i64)> = r["by_area"]
            .as_array()
            .expect("areas")
            .iter()
            .map(|a| {
                (
                    a["lat_index"].as_i64().expect("lat"),
                    a["lon_index"].as_i64().expect("lon"),
                    a["encounters"].as_i64().expect("n"),
                )
            })
            .collect();
        assert_eq!(
            areas,
            [(3777, -12242, 11), (4071, -7401, 4), (5150, -13, 1)],
            "{b}"
        );
        let sf = &r["by_area"][0];
        assert!((sf["south"].as_f64().expect("s") - 37.77).abs() < 1e-9);
        assert!((sf["west"].as_f64().expect("w") + 122.42).abs() < 1e-9);
        assert_eq!(r["areas_truncated"], false);

        let (_, april) = env
            .call(
                Method::GET,
                "/v1/reports/monthly?month=2025-04",
                Some(&analyst),
                None,
            )
            .await;
        assert_eq!(
            (
                &april["encounters"],
                &april["plates_seen_4_plus"],
                &april["plates_seen_7_plus"]
            ),
            (&json!(6), &json!(1), &json!(0)),
            "{b}: {april}"
        );
        // At UTC+1 March starts an hour earlier (FFF666 is in) and hours shift by one.
        let (_, local) = env
            .call(
                Method::GET,
                "/v1/reports/monthly?month=2025-03&utc_offset_minutes=60",
                Some(&analyst),
                None,
            )
            .await;
        assert_eq!(local["encounters"], 17, "{b}: {local}");
        assert_eq!(local["by_hour"][9], 10, "{b}");
        assert_eq!(local["by_hour"][0], 2, "{b}: 23:30 and 23:00 UTC");
        let (_, empty) = env
            .call(
                Method::GET,
                "/v1/reports/monthly?month=2019-01",
                Some(&analyst),
                None,
            )
            .await;
        assert_eq!(
            (&empty["encounters"], &empty["alerts_triggered"]),
            (&json!(0), &json!(0))
        );

        for bad in [
            "month=2025-13",
            "month=march",
            "",
            "month=2025-03&utc_offset_minutes=9999",
        ] {
            let (status, body) = env
                .call(
                    Method::GET,
                    &format!("/v1/reports/monthly?{bad}"),
                    Some(&analyst),
                    None,
                )
                .await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{b} {bad}: {body}");
        }
        let audit = repo.audit_rows(1, 1000).await.expect("audit");
        let reports: Vec<_> = audit
            .iter()
            .filter(|r| r.action == "report.monthly")
            .collect();
        assert_eq!(reports.len(), 4, "{b}");
        assert_eq!(reports[0].result_count, Some(16));
        assert!(reports.iter().all(|r| !r.criteria.contains("AAA111")));
    }
}

async fn get_raw(env: &Env, uri: &str, token: &str) -> (StatusCode, String, String) {
    let req = Request::builder()
        .uri(uri)
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .expect("request");
    let resp = env.app.clone().oneshot(req).await.expect("infallible");
    let status = resp.status();
    let ctype = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (
        status,
        ctype,
        String::from_utf8(body.to_vec()).expect("utf-8"),
    )
}

#[tokio::test]
async fn audit_export_holds_exactly_the_range_and_is_audited() {
    for db in backends().await {
        let env = env(db).await;
        let b = env.backend();
        let repo = env.state.repo.clone();
        let auditor = env.user("aud.export", "auditor", false).await;
        // Rows at known instants, some with characters CSV must quote.
        for (i, at) in [1_000_000i64, 2_000_000, 3_000_000, 4_000_000]
            .into_iter()
            .enumerate()
        {
            repo.append_audit(
                platewatch_server::AuditEvent {
                    username: Some(format!("user{i}")),
                    action: "login",
                    outcome: "ok",
                    justification: Some("said \"hi\", then\nleft".into()),
                    criteria: json!({ "i": i }),
                    ..Default::default()
                },
                at,
            )
            .await
            .expect("append");
        }
        let before = repo.audit_rows(1, 1000).await.expect("rows").len();

        let (status, ctype, body) = get_raw(
            &env,
            "/v1/audit/export?from=2000000&to=4000000&format=json",
            &auditor,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{b}: {body}");
        assert!(ctype.starts_with("application/json"), "{ctype}");
        let doc: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(doc["count"], 2, "{b}: [2000000, 4000000) holds two rows");
        let rows: Vec<AuditRow> = serde_json::from_value(doc["rows"].clone()).expect("rows");
        assert_eq!(
            rows.iter().map(|r| r.at_ms).collect::<Vec<_>>(),
            [2_000_000, 3_000_000]
        );
        assert_eq!(
            rows[1].prev_hash, rows[0].hash,
            "{b}: consecutive rows link"
        );
        for r in &rows {
            let keyed = Scheme::Keyed(repo.audit_keys().chain_key());
            assert_eq!(r.compute_hash(keyed), r.hash, "{b}: exported rows verify");
        }
        // The document carries the checkpoint signed after the export was audited: it covers
        // the export's own row and verifies with the key auditors fetch.
        let cp: Checkpoint = serde_json::from_value(doc["checkpoint"].clone()).expect("checkpoint");
        let (status, key) = env
            .call(Method::GET, "/v1/audit/key", Some(&auditor), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{b}: {key}");
        let key = parse_public_key(&key.to_string()).expect("key");
        assert_eq!(cp.verify(&key), Ok(()), "{b}");
        assert_eq!(
            usize::try_from(cp.seq).expect("seq"),
            before + 1,
            "{b}: the checkpoint covers the export's row"
        );
        // The export itself is the newest audit row.
        let after = repo.audit_rows(1, 1000).await.expect("rows");
        assert_eq!(after.len(), before + 1);
        let last = after.last().expect("row");
        assert_eq!(
            (last.action.as_str(), last.result_count),
            ("audit.export", Some(2))
        );
        assert_eq!(last.username.as_deref(), Some("aud.export"));
        let c: Value = serde_json::from_str(&last.criteria).expect("criteria");
        assert_eq!(
            (&c["from_ms"], &c["to_ms"], &c["format"]),
            (&json!(2_000_000), &json!(4_000_000), &json!("json"))
        );

        // CSV: header, one line per row, quoted fields round-trip.
        let (status, ctype, csv) = get_raw(
            &env,
            "/v1/audit/export?from=1970-01-01&to=1970-01-01T01:06:40Z&format=csv",
            &auditor,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{b}: {csv}");
        assert!(ctype.starts_with("text/csv"), "{ctype}");
        assert!(
            csv.starts_with("seq,at_ms,user_id,username,on_behalf_of,action,outcome,"),
            "{csv}"
        );
        assert_eq!(
            csv.matches("\r\n").count(),
            1 + 3,
            "{b}: header + 3 rows (1970-01-01T01:06:40Z is 4000000 ms, exclusive)"
        );
        assert!(csv.contains("\"said \"\"hi\"\", then\nleft\""), "{csv}");
        assert!(csv.contains("\"{\"\"i\"\":0}\""), "{csv}");

        for bad in [
            "from=5&to=5",
            "from=10&to=5",
            "from=yesterday&to=5",
            "to=5",
            "from=1&to=5&format=xml",
        ] {
            let (status, _, body) =
                get_raw(&env, &format!("/v1/audit/export?{bad}"), &auditor).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{b} {bad}: {body}");
        }
        assert!(matches!(
            repo.verify_chain().await.expect("verify"),
            ChainStatus::Intact { .. }
        ));
    }
}

#[tokio::test]
async fn verify_on_an_unmigrated_connection_detects_an_edited_row() {
    for db in backends().await {
        let repo = db.repo.clone();
        for i in 0..5 {
            repo.append_audit(
                platewatch_server::AuditEvent {
                    action: "login",
                    outcome: "ok",
                    criteria: json!({ "i": i }),
                    ..Default::default()
                },
                1_700_000_000_000 + i,
            )
            .await
            .expect("append");
        }
        assert_eq!(
            repo.verify_chain().await.expect("verify"),
            ChainStatus::Intact { rows: 5 }
        );
        assert_eq!(
            exec(
                &repo,
                "UPDATE audit_log SET outcome = 'denied' WHERE seq = 4"
            )
            .await,
            1
        );
        assert_eq!(
            repo.verify_chain().await.expect("verify"),
            ChainStatus::Broken {
                seq: 4,
                problem: "row altered"
            },
            "{}",
            repo.backend()
        );
    }
    // `platewatch audit verify` opens databases without migrating them.
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("server.db");
    let url = format!("sqlite://{}", path.display());
    assert!(
        Repo::connect_existing(&url).await.is_err(),
        "a missing file is not created"
    );
    // Both connections hold the server's audit keys (as `platewatch audit` reads them).
    let keys = || AuditKeys::from_bytes([3; 32], [4; 32]);
    let repo = Repo::connect(&url)
        .await
        .expect("create")
        .with_audit_keys(keys());
    repo.append_audit(
        platewatch_server::AuditEvent {
            action: "login",
            outcome: "ok",
            criteria: json!({}),
            ..Default::default()
        },
        1,
    )
    .await
    .expect("append");
    let existing = Repo::connect_existing(&url)
        .await
        .expect("open")
        .with_audit_keys(keys());
    assert_eq!(
        existing.verify_chain().await.expect("verify"),
        ChainStatus::Intact { rows: 1 }
    );
    // Any other key finds the chain's seal does not match.
    let stranger = Repo::connect_existing(&url)
        .await
        .expect("open")
        .with_audit_keys(AuditKeys::generate());
    assert!(matches!(
        stranger.verify_chain().await.expect("verify"),
        ChainStatus::Broken { seq: 1, .. }
    ));
}
