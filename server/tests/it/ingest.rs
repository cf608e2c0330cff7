//! Batched ingest on both backends: a full 500-row batch mixing new rows, rows stored earlier,
//! repeats of an id inside the batch and rejected rows keeps every per-row status exact, indexes
//! new plates for partial queries, writes one audit row with the counts, and a retry stores
//! nothing; concurrent uploads of the same ids in different orders store each id once, each
//! with its own audit row.

use axum::http::{Method, StatusCode};
use platewatch_server::ChainStatus;
use serde_json::{Value, json};

use crate::common::{Env, backends, encounter, env};

async fn upload(env: &Env, device: &str, rows: &[Value]) -> Value {
    let (status, body) = env
        .call(
            Method::POST,
            "/v1/encounters",
            Some(device),
            Some(json!({ "encounters": rows })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{}: {body}", env.backend());
    body
}

fn statuses(body: &Value) -> Vec<String> {
    body["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["status"].as_str().expect("status").to_string())
        .collect()
}

/// A plate made of letters only from `i` (distinct for distinct `i`), prefixed `QZ`.
fn plate(i: usize) -> String {
    let a = char::from(b'A' + (i % 26) as u8);
    let b = char::from(b'A' + (i / 26 % 26) as u8);
    format!("QZ{a}{b}7")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_batches_keep_every_row_status() {
    for db in backends().await {
        let env = env(db).await;
        let b = env.backend();
        let officer = env.user("ofc.batch", "officer", false).await;
        let analyst = env.user("an.batch", "analyst", true).await;
        let (_, device) = env.device(&officer).await;

        // 37 rows stored by an earlier upload.
        let earlier: Vec<Value> = (0..37).map(|i| encounter(&plate(i))).collect();
        let body = upload(&env, &device, &earlier).await;
        assert_eq!(body["stored"], 37, "{b}: {body}");

        // 500 rows: new ones over 36 plates (some never seen), the earlier rows again, repeats of
        // new ids within the batch (also upper-cased), and rejected rows.
        let mut rows = Vec::new();
        let mut expected = Vec::new();
        let mut fresh = Vec::new();
        while rows.len() < 500 {
            let k = rows.len();
            match k % 10 {
                0..=5 => {
                    let row = encounter(&plate(k % 60));
                    fresh.push(row.clone());
                    rows.push(row);
                    expected.push("stored");
                }
                6 => {
                    rows.push(earlier[k % earlier.len()].clone());
                    expected.push("duplicate");
                }
                7 | 8 => {
                    let mut again = fresh[k % fresh.len()].clone();
                    if k % 10 == 8 {
                        let id = again["id"].as_str().expect("id").to_uppercase();
                        again["id"] = json!(id);
                    }
                    rows.push(again);
                    expected.push("duplicate");
                }
                _ => {
                    let mut bad = encounter("8XYZ987");
                    bad["lat"] = json!(91.0);
                    rows.push(bad);
                    expected.push("rejected");
                }
            }
        }
        let body = upload(&env, &device, &rows).await;
        assert_eq!(statuses(&body), expected, "{b}");
        let stored = fresh.len();
        assert_eq!(
            (
                body["stored"].as_u64(),
                body["duplicates"].as_u64(),
                body["rejected"].as_u64()
            ),
            (Some(stored as u64), Some(150), Some(50)),
            "{b}"
        );
        for (i, r) in body["results"]
            .as_array()
            .expect("results")
            .iter()
            .enumerate()
        {
            assert_eq!(r["index"].as_u64(), Some(i as u64), "{b}");
            if expected[i] != "rejected" {
                let want = rows[i]["id"].as_str().expect("id").to_lowercase();
                assert_eq!(r["id"].as_str(), Some(want.as_str()), "{b}");
            }
        }
        assert_eq!(
            env.state.repo.count_encounters().await.expect("count"),
            (37 + stored) as i64,
            "{b}"
        );

        // One audit row for the batch, carrying its counts.
        let rows_now = env.state.repo.audit_rows(1, 10_000).await.expect("audit");
        let last = rows_now.last().expect("audit row");
        assert_eq!(last.action, "encounters.upload", "{b}");
        let criteria: Value = serde_json::from_str(&last.criteria).expect("criteria");
        assert_eq!(criteria["stored"], stored, "{b}");
        assert_eq!(criteria["duplicates"], 150, "{b}");
        assert_eq!(criteria["rejected"], 50, "{b}");
        assert_eq!(last.result_count, Some(stored as i64), "{b}");
        let uploads = rows_now
            .iter()
            .filter(|r| r.action == "encounters.upload")
            .count();
        assert_eq!(uploads, 2, "{b}");

        // A plate first seen in this batch is found by a partial query (its grams are indexed).
        let target = plate(50);
        let want = fresh
            .iter()
            .filter(|r| r["plate"] == target.as_str())
            .count();
        assert!(want > 0);
        let now = platewatch_server::now_ms();
        let (status, answer) = env
            .call(
                Method::POST,
                "/v1/queries/partial",
                Some(&analyst),
                Some(json!({
                    "from_ms": now - 3_600_000,
                    "to_ms": now,
                    "reason_code": "investigation",
                    "case_number": "2026-0042",
                    "pattern": format!("*{}", &target[2..]),
                })),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{b}: {answer}");
        assert_eq!(answer["count"].as_u64(), Some(want as u64), "{b}");

        // The retried batch stores nothing.
        let body = upload(&env, &device, &rows).await;
        let retried: Vec<&str> = expected
            .iter()
            .map(|s| if *s == "stored" { "duplicate" } else { s })
            .collect();
        assert_eq!(statuses(&body), retried, "{b}");
        assert_eq!(body["stored"], 0, "{b}");
        assert_eq!(
            env.state.repo.count_encounters().await.expect("count"),
            (37 + stored) as i64,
            "{b}"
        );
        assert!(
            matches!(
                env.state.repo.verify_chain().await.expect("verify"),
                ChainStatus::Intact { .. }
            ),
            "{b}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_overlapping_uploads_store_each_id_once() {
    for db in backends().await {
        let env = env(db).await;
        let b = env.backend();
        let officer = env.user("ofc.race", "officer", false).await;
        let (_, device) = env.device(&officer).await;
        let rows: Vec<Value> = (0..300).map(|i| encounter(&plate(i))).collect();
        // Six uploads of the same ids, each in its own order.
        let batches: Vec<Vec<Value>> = (0..6)
            .map(|k| {
                let mut v = rows.clone();
                v.rotate_left(k * 50);
                if k % 2 == 1 {
                    v.reverse();
                }
                v
            })
            .collect();
        let answers = futures_util::future::join_all(
            batches.iter().map(|batch| upload(&env, &device, batch)),
        )
        .await;
        let stored: u64 = answers
            .iter()
            .map(|a| a["stored"].as_u64().expect("stored"))
            .sum();
        let duplicates: u64 = answers
            .iter()
            .map(|a| a["duplicates"].as_u64().expect("duplicates"))
            .sum();
        assert_eq!((stored, duplicates), (300, 5 * 300), "{b}");
        assert_eq!(
            env.state.repo.count_encounters().await.expect("count"),
            300,
            "{b}"
        );
        // One audit row per upload (on SQLite written in the group's transaction), with the
        // counts its answer gave, and the chain intact.
        let repo = &env.state.repo;
        let uploads: Vec<Value> = repo
            .audit_rows(1, 10_000)
            .await
            .expect("audit rows")
            .into_iter()
            .filter(|r| r.action == "encounters.upload")
            .map(|r| serde_json::from_str(&r.criteria).expect("criteria"))
            .collect();
        assert_eq!(uploads.len(), 6, "{b}");
        let mut logged: Vec<(u64, u64)> = uploads
            .iter()
            .map(|c| {
                (
                    c["stored"].as_u64().unwrap_or(99),
                    c["duplicates"].as_u64().unwrap_or(99),
                )
            })
            .collect();
        let mut answered: Vec<(u64, u64)> = answers
            .iter()
            .map(|a| {
                (
                    a["stored"].as_u64().unwrap_or(0),
                    a["duplicates"].as_u64().unwrap_or(0),
                )
            })
            .collect();
        logged.sort_unstable();
        answered.sort_unstable();
        assert_eq!(logged, answered, "{b}");
        assert!(
            matches!(
                repo.verify_chain().await.expect("verify"),
                ChainStatus::Intact { .. }
            ),
            "{b}"
        );
    }
}
