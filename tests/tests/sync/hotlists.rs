//! Hot list sync against the real server (SQLite and PostgreSQL): a snapshot, then deltas
//! (additions, removals), a signed "still current" answer, staleness, and refusal of payloads
//! signed with another key (a second server on the same database with its own key) — the
//! stored list is kept exactly as it was.

use std::time::Duration;

use platewatch_core::hotlist::signed;
use platewatch_server::{AppState, Config};
use platewatch_store::Store;
use platewatch_sync::hotlists::{HotlistSync, fetch_public_key};
use platewatch_sync::{ClientConfig, HotlistSyncConfig, ListOutcome, ServerClient};
use serde_json::json;

use crate::common::{BACKENDS, TestServer};

async fn admin_token(base: &str) -> String {
    let v: serde_json::Value = reqwest::Client::new()
        .post(format!("{base}/v1/login"))
        .json(&json!({"username": "admin", "password": "admin-password-123"}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("json");
    v["token"].as_str().expect("admin token").to_string()
}

async fn publish(base: &str, admin: &str, body: &str) {
    let r = reqwest::Client::new()
        .post(format!(
            "{base}/v1/hotlists?list=stolen&format=delimited&max_age_secs=3600"
        ))
        .bearer_auth(admin)
        .body(body.to_string())
        .send()
        .await
        .expect("publish");
    assert!(r.status().is_success(), "publish: {}", r.status());
}

async fn plates(store: &Store) -> Vec<String> {
    let mut v: Vec<String> = store
        .entries()
        .await
        .expect("entries")
        .into_iter()
        .map(|e| e.entry.plate.as_str().to_string())
        .collect();
    v.sort();
    v
}

/// A second server on the same database, signing with its own (different) key.
async fn impostor(server: &TestServer) -> (String, tokio::task::JoinHandle<std::io::Result<()>>) {
    let state = AppState::new(server.repo.clone(), Config::default());
    let (addr, task) = platewatch_server::serve_loopback(state)
        .await
        .expect("serve");
    (format!("http://{addr}"), task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_list_sync_verifies_applies_and_refuses_other_keys() {
    for backend in BACKENDS {
        let server = TestServer::start(backend).await;
        let admin = admin_token(&server.base).await;
        publish(
            &server.base,
            &admin,
            "plate;category\nAAA111;stolen\nBBB222;stolen\nCCC333;wanted\n",
        )
        .await;
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(&dir.path().join("device.db"))
            .await
            .expect("device store");
        let config = ClientConfig::new(&server.base, &server.device_token);
        // First use: the key is fetched explicitly and pinned.
        let info = fetch_public_key(&ServerClient::new(&config).expect("client"))
            .await
            .expect("key");
        let key = signed::parse_public_key(&info.public_key).expect("key");
        let sync = HotlistSync::new(store.clone(), &HotlistSyncConfig::new(config.clone(), key))
            .expect("sync");

        let r = sync.sync_now().await.expect("first sync");
        assert_eq!(r.lists.len(), 1, "{}", server.backend);
        assert!(
            matches!(
                r.lists[0].outcome,
                ListOutcome::Snapshot {
                    version: 1,
                    added: 3,
                    ..
                }
            ),
            "{:?}",
            r.lists[0]
        );
        assert_eq!(r.status[0].max_age_secs, 3600);
        assert!(!r.status[0].stale);
        assert_eq!(plates(&store).await, ["AAA111", "BBB222", "CCC333"]);

        // Nothing changed: a signed delta confirms the version.
        let r = sync.sync_now().await.expect("second sync");
        assert!(matches!(
            r.lists[0].outcome,
            ListOutcome::Current { version: 1 }
        ));

        // v2 removes one entry and adds one: a delta.
        publish(
            &server.base,
            &admin,
            "plate;category\nAAA111;stolen\nCCC333;wanted\nDDD444;stolen\n",
        )
        .await;
        let r = sync.sync_now().await.expect("delta sync");
        assert!(
            matches!(
                r.lists[0].outcome,
                ListOutcome::Delta {
                    from: 1,
                    version: 2,
                    added: 1,
                    removed: 1
                }
            ),
            "{:?}",
            r.lists[0]
        );
        assert_eq!(plates(&store).await, ["AAA111", "CCC333", "DDD444"]);

        // v3 is served by a server with another key: refused, v2 kept.
        publish(&server.base, &admin, "plate;category\nEEE555;stolen\n").await;
        let (impostor_base, task) = impostor(&server).await;
        let bad = HotlistSync::new(
            store.clone(),
            &HotlistSyncConfig::new(ClientConfig::new(&impostor_base, &server.device_token), key),
        )
        .expect("sync");
        let r = bad.sync_now().await.expect("sync through the impostor");
        assert!(
            matches!(&r.lists[0].outcome, ListOutcome::Refused { reason } if reason.contains("another key")),
            "{:?}",
            r.lists[0]
        );
        assert_eq!(r.refused(), 1);
        assert_eq!(r.status[0].version, 2);
        assert_eq!(plates(&store).await, ["AAA111", "CCC333", "DDD444"]);
        task.abort();

        // The real server brings it to v3; the scheduled loop syncs on demand too.
        let (tx, rx) = tokio::sync::watch::channel(false);
        let (rtx, mut rrx) = tokio::sync::watch::channel(None);
        let runner = sync.clone();
        let handle = tokio::spawn(async move { runner.run(rx, Some(rtx)).await });
        tokio::time::timeout(Duration::from_secs(20), rrx.changed())
            .await
            .expect("a report")
            .expect("channel");
        let report = rrx.borrow().clone().expect("report").expect("sync ok");
        assert!(matches!(
            report.lists[0].outcome,
            ListOutcome::Delta { version: 3, .. }
        ));
        assert_eq!(plates(&store).await, ["EEE555"]);
        sync.wake();
        tokio::time::timeout(Duration::from_secs(20), rrx.changed())
            .await
            .expect("an on-demand report")
            .expect("channel");
        tx.send(true).expect("shutdown");
        handle.await.expect("run ends");

        // Staleness: a list older than its maximum age is reported stale.
        let later = platewatch_sync::now_ms().div_euclid(1000) + 7200;
        let st = store.list_status(later).await.expect("status");
        assert!(st[0].stale, "{}", server.backend);
    }
}
