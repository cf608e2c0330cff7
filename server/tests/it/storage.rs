//! Repository tests on both backends: users, sessions, devices, rules, idempotent encounter
//! inserts, and the audit chain catching edits, re-hashed edits and deletions made in raw SQL.

use platewatch_server::audit::{AuditEvent, Scheme};
use platewatch_server::db::Revoked;
use platewatch_server::ingest::{Encounter, Uploader, validate};
use platewatch_server::{ChainStatus, Config, Db, Repo, Role};
use serde_json::json;

use crate::common::{backends, encounter};

async fn exec(repo: &Repo, sql: &str) -> u64 {
    match repo.db() {
        Db::Sqlite(p) => sqlx::query(sql)
            .execute(p)
            .await
            .expect("raw sql")
            .rows_affected(),
        Db::Postgres(p) => sqlx::query(sql)
            .execute(p)
            .await
            .expect("raw sql")
            .rows_affected(),
    }
}

async fn chain_of(repo: &Repo, n: i64) {
    for i in 0..n {
        let event = AuditEvent {
            user_id: Some(1),
            username: Some(format!("user{i}")),
            on_behalf_of: (i % 2 == 0).then(|| "partner".to_string()),
            action: "login",
            outcome: "ok",
            reason: Some("patrol".into()),
            justification: Some("shift start".into()),
            criteria: json!({ "z": i, "a": [1, 2], "m": { "y": true, "b": null } }),
            result_count: Some(i),
            client: Some("127.0.0.1 test".into()),
        };
        assert_eq!(
            repo.append_audit(event, 1_700_000_000_000 + i)
                .await
                .expect("append"),
            i + 1
        );
    }
    assert_eq!(
        repo.verify_chain().await.expect("verify"),
        ChainStatus::Intact { rows: n as u64 }
    );
}

#[tokio::test]
async fn audit_chain_detects_edits_and_deletions() {
    // Each tampering on its own fresh database, on both backends.
    {
        let cases: [(&str, i64, &str); 5] = [
            (
                "UPDATE audit_log SET username = 'someone' WHERE seq = 3",
                3,
                "row altered",
            ),
            (
                "UPDATE audit_log SET result_count = 99 WHERE seq = 5",
                5,
                "row altered",
            ),
            (
                "UPDATE audit_log SET criteria = '{}' WHERE seq = 1",
                1,
                "row altered",
            ),
            ("DELETE FROM audit_log WHERE seq = 2", 2, "row missing"),
            (
                "DELETE FROM audit_log WHERE seq = 5",
                5,
                "newest rows missing or head altered",
            ),
        ];
        for (sql, seq, problem) in cases {
            for db in backends().await {
                let repo = &db.repo;
                chain_of(repo, 5).await;
                assert_eq!(exec(repo, sql).await, 1);
                assert_eq!(
                    repo.verify_chain().await.expect("verify"),
                    ChainStatus::Broken { seq, problem },
                    "{}: {sql}",
                    repo.backend()
                );
            }
        }
    }
}

#[tokio::test]
async fn audit_chain_detects_a_rehashed_edit() {
    for db in backends().await {
        let repo = &db.repo;
        chain_of(repo, 4).await;
        // Edit row 2 and recompute its own hash without the chain key (the unkeyed scheme):
        // the row no longer verifies.
        let mut row = repo.audit_rows(2, 1).await.expect("rows").remove(0);
        row.username = Some("someone".into());
        let unkeyed = row.compute_hash(Scheme::Unkeyed);
        exec(
            repo,
            &format!("UPDATE audit_log SET username = 'someone', hash = '{unkeyed}' WHERE seq = 2"),
        )
        .await;
        assert_eq!(
            repo.verify_chain().await.expect("verify"),
            ChainStatus::Broken {
                seq: 2,
                problem: "row altered"
            },
            "{}",
            repo.backend()
        );
        // With the key it verifies, but row 3 no longer links to it.
        let keyed = row.compute_hash(Scheme::Keyed(repo.audit_keys().chain_key()));
        exec(
            repo,
            &format!("UPDATE audit_log SET hash = '{keyed}' WHERE seq = 2"),
        )
        .await;
        assert_eq!(
            repo.verify_chain().await.expect("verify"),
            ChainStatus::Broken {
                seq: 3,
                problem: "does not link to the previous row"
            },
            "{}",
            repo.backend()
        );
    }
}

#[tokio::test]
async fn empty_chain_is_intact_and_appends_continue() {
    for db in backends().await {
        let repo = &db.repo;
        assert_eq!(
            repo.verify_chain().await.expect("verify"),
            ChainStatus::Intact { rows: 0 }
        );
        chain_of(repo, 3).await;
        let rows = repo.audit_rows(1, 10).await.expect("rows");
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].prev_hash, platewatch_server::audit::GENESIS);
        assert_eq!(rows[1].prev_hash, rows[0].hash);
        // Criteria are stored canonically: keys sorted.
        assert_eq!(
            rows[0].criteria,
            r#"{"a":[1,2],"m":{"b":null,"y":true},"z":0}"#
        );
    }
}

#[tokio::test]
async fn users_sessions_devices_and_rules() {
    for db in backends().await {
        let repo = &db.repo;
        let b = repo.backend();
        assert_eq!(repo.count_users().await.expect("count"), 0);
        let id = repo
            .create_user("ofc.smith", "$argon2id$x", Role::Officer, false, 1)
            .await
            .expect("user");
        let dup = repo
            .create_user("ofc.smith", "$argon2id$y", Role::Admin, true, 2)
            .await;
        let err = dup.expect_err("duplicate username");
        assert!(
            err.as_database_error()
                .is_some_and(|e| e.is_unique_violation()),
            "{b}"
        );
        let user = repo
            .user_by_name("ofc.smith")
            .await
            .expect("query")
            .expect("found");
        assert_eq!(
            (user.id, user.role, user.enhanced_queries),
            (id, Role::Officer, false)
        );
        assert!(repo.user_by_name("nobody").await.expect("query").is_none());

        repo.create_session(id, "h1", 100, 200)
            .await
            .expect("session");
        assert_eq!(
            repo.user_by_session("h1", 150)
                .await
                .expect("q")
                .map(|(_, u)| u.id),
            Some(id)
        );
        assert!(
            repo.user_by_session("h1", 200).await.expect("q").is_none(),
            "{b}: expired"
        );
        assert!(repo.user_by_session("h2", 150).await.expect("q").is_none());

        let dev = repo
            .create_device(id, "phone", "d1", 100, 1_000)
            .await
            .expect("device");
        assert_eq!(
            repo.user_by_device("d1", 150)
                .await
                .expect("q")
                .map(|(d, u)| (d, u.id)),
            Some((dev, id))
        );
        assert!(
            repo.user_by_device("d1", 1_000).await.expect("q").is_none(),
            "{b}: device token expired"
        );
        // Renewal: the new token lives on, the old one only through its grace; renewing again
        // with the old token (its answer was lost) replaces the new one, not the grace.
        assert!(
            repo.renew_device(dev, "d1", "d1b", 5_000, 400)
                .await
                .expect("renew")
        );
        assert!(
            repo.user_by_device("d1b", 2_000)
                .await
                .expect("q")
                .is_some()
        );
        assert!(repo.user_by_device("d1", 399).await.expect("q").is_some());
        assert!(repo.user_by_device("d1", 400).await.expect("q").is_none());
        assert!(
            repo.renew_device(dev, "d1", "d1c", 6_000, 900)
                .await
                .expect("renew")
        );
        assert!(repo.user_by_device("d1b", 200).await.expect("q").is_none());
        assert!(repo.user_by_device("d1c", 200).await.expect("q").is_some());
        assert!(repo.user_by_device("d1", 399).await.expect("q").is_some());
        assert!(repo.user_by_device("d1", 401).await.expect("q").is_none());
        assert!(
            repo.renew_device(dev, "d1c", "d1", 1_000, 900)
                .await
                .expect("renew")
        );
        // Disabling the user refuses every token of theirs; enabling restores them.
        assert!(
            repo.set_user_disabled(id, Some(160))
                .await
                .expect("disable")
        );
        assert!(repo.user_by_device("d1", 150).await.expect("q").is_none());
        assert!(repo.user_by_session("h1", 150).await.expect("q").is_none());
        assert!(repo.set_user_disabled(id, None).await.expect("enable"));
        assert!(repo.user_by_session("h1", 150).await.expect("q").is_some());
        assert_eq!(
            repo.revoke_device(dev, 300).await.expect("revoke"),
            Revoked::Now
        );
        assert_eq!(
            repo.revoke_device(dev, 301).await.expect("revoke"),
            Revoked::Already
        );
        assert_eq!(
            repo.revoke_device(dev + 100, 301).await.expect("revoke"),
            Revoked::NotFound
        );
        assert!(
            repo.user_by_device("d1", 150).await.expect("q").is_none(),
            "{b}: revoked"
        );

        assert_eq!(repo.current_rules().await.expect("rules"), None);
        assert_eq!(repo.add_rules("v1 text", id, 1).await.expect("rules"), 1);
        assert_eq!(repo.add_rules("v2 text", id, 2).await.expect("rules"), 2);
        assert_eq!(
            repo.current_rules().await.expect("rules"),
            Some((2, "v2 text".into()))
        );
        assert_eq!(repo.current_rules_version().await.expect("rules"), Some(2));
        repo.set_rules_acked(id, 2).await.expect("ack");
        assert_eq!(
            repo.user_by_name("ofc.smith")
                .await
                .expect("q")
                .expect("u")
                .rules_acked_version,
            Some(2)
        );
    }
}

fn valid(repo_user: i64, device: i64) -> Encounter {
    let config = Config::default();
    let who = Uploader {
        user_id: repo_user,
        username: "ofc.smith",
        device_id: device,
        now_ms: platewatch_server::now_ms(),
    };
    let row = serde_json::from_value(encounter("7ABC123")).expect("row");
    validate(&row, who, &config).expect("valid").0
}

#[tokio::test]
async fn encounter_inserts_are_idempotent() {
    for db in backends().await {
        let repo = &db.repo;
        let uid = repo
            .create_user("ofc.smith", "h", Role::Officer, false, 1)
            .await
            .expect("user");
        let dev = repo
            .create_device(uid, "phone", "d1", 1, i64::MAX)
            .await
            .expect("device");
        let a = valid(uid, dev);
        let b = valid(uid, dev);
        assert_eq!(
            repo.insert_encounters(&[a.clone(), b.clone()], 5)
                .await
                .expect("insert"),
            [true, true]
        );
        assert_eq!(
            repo.insert_encounters(&[b, a.clone(), a], 6)
                .await
                .expect("insert"),
            [false, false, false]
        );
        assert_eq!(
            repo.count_encounters().await.expect("count"),
            2,
            "{}",
            repo.backend()
        );
    }
}

/// Encounters must name an existing device and users, on both backends (SQLite: foreign keys;
/// PostgreSQL: a statement-level check, migration 0005), and users and devices that encounters
/// name cannot be deleted.
#[tokio::test]
async fn encounter_references_are_enforced() {
    for db in backends().await {
        let repo = &db.repo;
        let backend = repo.backend();
        let uid = repo
            .create_user("ofc.jones", "h", Role::Officer, false, 1)
            .await
            .expect("user");
        let dev = repo
            .create_device(uid, "phone", "d2", 1, i64::MAX)
            .await
            .expect("device");
        let good = valid(uid, dev);
        let mut no_device = valid(uid, dev);
        no_device.device_id = dev + 1000;
        let mut no_user = valid(uid, dev);
        no_user.user_id = uid + 1000;
        let mut no_behalf = valid(uid, dev);
        no_behalf.on_behalf_of_user_id = Some(uid + 2000);
        for (what, bad) in [
            ("device", no_device),
            ("user", no_user),
            ("on-behalf-of user", no_behalf),
        ] {
            let err = repo
                .insert_encounters(&[good.clone(), bad], 5)
                .await
                .expect_err(what);
            let code = err
                .as_database_error()
                .and_then(|e| e.code())
                .map(|c| c.into_owned());
            assert!(
                matches!(code.as_deref(), Some("23503" | "787")),
                "{backend}: an unknown {what} gave {err}"
            );
        }
        // Nothing of the refused batches was stored; the good row alone still goes in.
        assert_eq!(
            repo.count_encounters().await.expect("count"),
            0,
            "{backend}"
        );
        assert_eq!(
            repo.insert_encounters(&[good], 6).await.expect("insert"),
            [true]
        );
        for sql in [
            format!("DELETE FROM devices WHERE id = {dev}"),
            format!("DELETE FROM users WHERE id = {uid}"),
            format!("UPDATE users SET id = {} WHERE id = {uid}", uid + 5000),
        ] {
            let refused = match repo.db() {
                Db::Sqlite(p) => sqlx::query(&sql).execute(p).await.is_err(),
                Db::Postgres(p) => sqlx::query(&sql).execute(p).await.is_err(),
            };
            assert!(refused, "{backend}: {sql} was allowed");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_keep_one_chain() {
    for db in backends().await {
        let repo = db.repo.clone();
        let tasks: Vec<_> = (0..24)
            .map(|i| {
                let repo = repo.clone();
                tokio::spawn(async move {
                    let event = AuditEvent {
                        action: "login",
                        outcome: "ok",
                        criteria: json!({ "task": i }),
                        ..AuditEvent::default()
                    };
                    repo.append_audit(event, platewatch_server::now_ms()).await
                })
            })
            .collect();
        let mut seqs = Vec::new();
        for t in tasks {
            seqs.push(t.await.expect("task").expect("append"));
        }
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=24).collect::<Vec<i64>>(), "{}", repo.backend());
        assert_eq!(
            repo.verify_chain().await.expect("verify"),
            ChainStatus::Intact { rows: 24 }
        );
    }
}
