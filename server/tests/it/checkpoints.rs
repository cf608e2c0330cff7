//! Tamper evidence against someone who can write the database, on both backends: the keyed
//! audit chain and signed checkpoints. Each rewrite is done in raw SQL the way an insider would,
//! and must be detected given a checkpoint signed before it: a denied row flipped to `ok` and
//! re-hashed (unkeyed, with a key guessed from the database, or passed off as pre-keyed rows),
//! every row of one action deleted and the rest renumbered and re-chained (even with the real
//! chain key), and the newest rows deleted with the head moved back. Also: an untouched log
//! verifies, forged checkpoints are refused, a log upgraded from the unkeyed chain is sealed
//! and covered, another key is refused, and the two endpoints serve what auditors keep.

use axum::http::{Method, StatusCode};
use platewatch_server::audit::{
    AuditEvent, AuditKeys, AuditRow, ChainKey, Checkpoint, CheckpointError, CheckpointRejected,
    GENESIS, Scheme, parse_checkpoints, parse_public_key,
};
use platewatch_server::{ChainStatus, Db, Repo};
use serde_json::json;

use crate::common::{TestDb, backends, env, exec};

const TRUNCATED: &str = "rows missing: a signed checkpoint attests a longer log (truncated)";
const DIFFERS: &str = "differs from a signed checkpoint (rewritten or renumbered)";

/// Appends `n` rows: logins, every third one denied, and a plate query after each login.
async fn seed(repo: &Repo, n: i64) {
    for i in 0..n {
        let query = i % 2 == 1;
        let event = AuditEvent {
            user_id: Some(2),
            username: Some(format!("user{}", i / 2)),
            action: if query { "query.plate" } else { "login" },
            outcome: if !query && i % 3 == 0 { "denied" } else { "ok" },
            reason: query.then(|| "stolen-vehicle".to_string()),
            criteria: json!({ "i": i }),
            result_count: query.then_some(i),
            ..AuditEvent::default()
        };
        repo.append_audit(event, 1_700_000_000_000 + i)
            .await
            .expect("append");
    }
}

async fn all_rows(repo: &Repo) -> Vec<AuditRow> {
    repo.audit_rows(1, 100_000).await.expect("rows")
}

/// What an insider does after editing rows: replaces the whole log with `rows`, renumbered
/// from 1, the rows numbered in `rehash` re-linked and re-hashed with `scheme` (the others keep
/// their stored hashes), and moves the head to the new last row.
async fn rewrite(
    repo: &Repo,
    rows: Vec<AuditRow>,
    scheme: Scheme<'_>,
    rehash: impl std::ops::RangeBounds<i64>,
) {
    const INSERT: &str = "INSERT INTO audit_log (seq, at_ms, user_id, username, on_behalf_of, \
         action, outcome, reason, justification, criteria, result_count, client, prev_hash, \
         hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)";
    exec(repo, "DELETE FROM audit_log").await;
    let mut prev = GENESIS.to_string();
    let mut seq = 0;
    for mut r in rows {
        seq += 1;
        r.seq = seq;
        if rehash.contains(&seq) {
            r.prev_hash = prev;
            r.hash = r.compute_hash(scheme);
        }
        prev = r.hash.clone();
        macro_rules! insert {
            ($p:expr) => {
                sqlx::query(INSERT)
                    .bind(r.seq)
                    .bind(r.at_ms)
                    .bind(r.user_id)
                    .bind(&r.username)
                    .bind(&r.on_behalf_of)
                    .bind(&r.action)
                    .bind(&r.outcome)
                    .bind(&r.reason)
                    .bind(&r.justification)
                    .bind(&r.criteria)
                    .bind(r.result_count)
                    .bind(&r.client)
                    .bind(&r.prev_hash)
                    .bind(&r.hash)
                    .execute($p)
                    .await
                    .expect("insert")
            };
        }
        match repo.db() {
            Db::Sqlite(p) => {
                insert!(p);
            }
            Db::Postgres(p) => {
                insert!(p);
            }
        }
    }
    exec(
        repo,
        &format!("UPDATE audit_head SET seq = {seq}, hash = '{prev}' WHERE id = 1"),
    )
    .await;
}

async fn seal_of(repo: &Repo) -> String {
    match repo.db() {
        Db::Sqlite(p) => sqlx::query_scalar("SELECT keyed_seal FROM audit_head")
            .fetch_one(p)
            .await
            .expect("seal"),
        Db::Postgres(p) => sqlx::query_scalar("SELECT keyed_seal FROM audit_head")
            .fetch_one(p)
            .await
            .expect("seal"),
    }
}

/// A key an attacker could make from what the database holds: the seal's bytes.
async fn key_from_the_database(repo: &Repo) -> ChainKey {
    let seal = hex::decode(seal_of(repo).await).expect("hex seal");
    ChainKey::from_bytes(seal.try_into().expect("32 bytes"))
}

async fn intact(repo: &Repo, checkpoints: &[Checkpoint]) -> ChainStatus {
    repo.verify_chain_against(checkpoints)
        .await
        .expect("verify")
}

fn broken(seq: i64, problem: &'static str) -> ChainStatus {
    ChainStatus::Broken { seq, problem }
}

#[tokio::test]
async fn an_untouched_log_verifies_against_every_checkpoint() {
    for db in backends().await {
        let repo = &db.repo;
        let empty = repo
            .sign_checkpoint(1)
            .await
            .expect("checkpoint of the empty log");
        assert_eq!((empty.seq, empty.hash.as_str()), (0, GENESIS));
        seed(repo, 6).await;
        let first = repo.sign_checkpoint(2).await.expect("checkpoint");
        assert_eq!(first.seq, 6);
        assert_eq!(
            first.keyed_from, 1,
            "a new database is keyed from its first row"
        );
        seed(repo, 5).await;
        let second = repo.sign_checkpoint(3).await.expect("checkpoint");
        assert_eq!(second.seq, 11);
        let key = repo.audit_keys().verifying_key();
        for cp in [&empty, &first, &second] {
            assert_eq!(cp.verify(&key), Ok(()));
        }
        assert_eq!(
            intact(repo, &[empty.clone(), first.clone(), second.clone()]).await,
            ChainStatus::Intact { rows: 11 },
            "{}",
            repo.backend()
        );
        // Stored oldest first; a signed head that has not moved is signed again (freshness).
        let again = repo.sign_checkpoint(4).await.expect("checkpoint");
        assert_eq!((again.seq, again.hash.as_str()), (11, second.hash.as_str()));
        let stored = repo.audit_checkpoints(i64::MIN, 100).await.expect("list");
        assert_eq!(stored, vec![empty, first, second.clone(), again.clone()]);
        assert_eq!(
            repo.audit_checkpoints(3, 1).await.expect("list"),
            vec![again],
            "the newest `limit` since the instant"
        );
    }
}

#[tokio::test]
async fn a_denied_row_flipped_to_ok_and_rehashed_is_detected() {
    for db in backends().await {
        let repo = &db.repo;
        seed(repo, 8).await;
        let cp = repo.sign_checkpoint(1).await.expect("checkpoint");
        let rows = all_rows(repo).await;
        let denied = rows
            .iter()
            .find(|r| r.outcome == "denied" && r.seq > 1)
            .expect("a denied row")
            .seq;
        let flipped = || {
            let mut rows = rows.clone();
            rows[usize::try_from(denied - 1).expect("index")].outcome = "ok".into();
            rows
        };
        let guessed = key_from_the_database(repo).await;
        for (name, scheme) in [
            ("plain SHA-256", Scheme::Unkeyed),
            ("a key read from the database", Scheme::Keyed(&guessed)),
        ] {
            rewrite(repo, flipped(), scheme, denied..).await;
            assert_eq!(
                intact(repo, &[]).await,
                broken(denied, "row altered"),
                "{} {name}: the chain alone",
                repo.backend()
            );
            assert_eq!(
                intact(repo, std::slice::from_ref(&cp)).await,
                broken(denied, "row altered"),
                "{} {name}: with the checkpoint",
                repo.backend()
            );
            assert!(
                matches!(
                    repo.sign_checkpoint(2).await,
                    Err(CheckpointError::Broken { .. })
                ),
                "{name}: the server signs no checkpoint over a rewrite"
            );
        }

        // Passing every row off as written before the keyed chain existed (SHA-256 rows below
        // `keyed_from`): the seal no longer matches the boundary…
        rewrite(repo, flipped(), Scheme::Unkeyed, 1..).await;
        exec(repo, "UPDATE audit_head SET keyed_from = 9").await;
        let moved = "the start of the keyed chain was moved or its seal altered (or another \
                     audit key is in use)";
        assert_eq!(intact(repo, &[]).await, broken(9, moved));
        // …and without a seal the log is refused too.
        exec(repo, "UPDATE audit_head SET keyed_seal = NULL").await;
        let ChainStatus::Broken { seq: 9, problem } = intact(repo, &[]).await else {
            panic!("an unsealed log is not intact");
        };
        assert!(problem.contains("not sealed"), "{problem}");
        // Even if the server is then restarted (which seals an unsealed log, as after an
        // upgrade from the unkeyed chain), the checkpoint names the real boundary.
        assert_eq!(repo.seal_audit_chain().await.expect("seal"), Some(9));
        exec(repo, "DELETE FROM audit_checkpoints").await;
        assert_eq!(
            intact(repo, &[]).await,
            ChainStatus::Intact { rows: 8 },
            "{}: the gap only a checkpoint closes",
            repo.backend()
        );
        assert_eq!(
            intact(repo, std::slice::from_ref(&cp)).await,
            broken(
                1,
                "the start of the keyed chain differs from a signed checkpoint"
            ),
            "{}",
            repo.backend()
        );
    }
}

#[tokio::test]
async fn deleting_one_action_and_renumbering_is_detected() {
    for db in backends().await {
        let repo = &db.repo;
        seed(repo, 4).await;
        let early = repo.sign_checkpoint(1).await.expect("checkpoint");
        seed(repo, 6).await;
        let late = repo.sign_checkpoint(2).await.expect("checkpoint");
        let kept: Vec<AuditRow> = all_rows(repo)
            .await
            .into_iter()
            .filter(|r| r.action != "query.plate")
            .collect();
        assert_eq!(kept.len(), 5);

        // Without the key: the first renumbered row no longer verifies.
        rewrite(repo, kept.clone(), Scheme::Unkeyed, 2..).await;
        assert_eq!(intact(repo, &[]).await, broken(2, "row altered"));
        assert_eq!(
            intact(repo, &[early.clone(), late.clone()]).await,
            broken(2, "row altered")
        );

        // Even an insider holding the chain key, who also empties the server's checkpoint
        // table, is caught by the checkpoints auditors kept.
        let key = repo.audit_keys().chain_key().clone();
        rewrite(repo, kept, Scheme::Keyed(&key), 2..).await;
        exec(repo, "DELETE FROM audit_checkpoints").await;
        assert_eq!(
            intact(repo, &[]).await,
            ChainStatus::Intact { rows: 5 },
            "{}: a re-keyed rewrite the chain alone cannot see",
            repo.backend()
        );
        assert_eq!(
            intact(repo, std::slice::from_ref(&early)).await,
            broken(4, DIFFERS),
            "{}: row 4 is now another row",
            repo.backend()
        );
        assert_eq!(
            intact(repo, std::slice::from_ref(&late)).await,
            broken(6, TRUNCATED),
            "{}: the log is shorter than a checkpoint says",
            repo.backend()
        );
    }
}

#[tokio::test]
async fn deleting_the_newest_rows_and_moving_the_head_back_is_detected() {
    for db in backends().await {
        let repo = &db.repo;
        seed(repo, 8).await;
        let cp = repo.sign_checkpoint(1).await.expect("checkpoint");
        let row5 = repo.audit_rows(5, 1).await.expect("row").remove(0);
        assert_eq!(exec(repo, "DELETE FROM audit_log WHERE seq > 5").await, 3);
        // Without moving the head the chain alone sees it…
        assert_eq!(
            intact(repo, &[]).await,
            broken(8, "newest rows missing or head altered")
        );
        exec(
            repo,
            &format!(
                "UPDATE audit_head SET seq = 5, hash = '{}' WHERE id = 1",
                row5.hash
            ),
        )
        .await;
        // …with the head moved back, the checkpoint stored on the server still does…
        assert_eq!(intact(repo, &[]).await, broken(6, TRUNCATED));
        // …and once that is deleted too, only the auditor's copy can.
        exec(repo, "DELETE FROM audit_checkpoints").await;
        assert_eq!(intact(repo, &[]).await, ChainStatus::Intact { rows: 5 });
        assert_eq!(
            intact(repo, std::slice::from_ref(&cp)).await,
            broken(6, TRUNCATED),
            "{}",
            repo.backend()
        );
        // The whole log deleted: the same.
        exec(repo, "DELETE FROM audit_log").await;
        exec(
            repo,
            &format!("UPDATE audit_head SET seq = 0, hash = '{GENESIS}', keyed_seal = NULL"),
        )
        .await;
        assert_eq!(intact(repo, &[]).await, ChainStatus::Intact { rows: 0 });
        assert_eq!(intact(repo, &[cp]).await, broken(1, TRUNCATED));
    }
}

#[tokio::test]
async fn forged_checkpoints_are_refused() {
    for db in backends().await {
        let repo = &db.repo;
        seed(repo, 3).await;
        let cp = repo.sign_checkpoint(1).await.expect("checkpoint");
        let key = repo.audit_keys().verifying_key();
        // A checkpoint claiming a shorter log, its signature copied.
        let shorter = Checkpoint {
            seq: 2,
            hash: repo.audit_rows(2, 1).await.expect("row")[0].hash.clone(),
            ..cp.clone()
        };
        assert_eq!(shorter.verify(&key), Err(CheckpointRejected::BadSignature));
        // One signed with a key the attacker made, under the server's key id.
        let other_db: TestDb = crate::common::sqlite().await;
        let other = other_db.repo.clone().with_audit_keys(AuditKeys::generate());
        seed(&other, 3).await;
        let foreign = other.sign_checkpoint(1).await.expect("checkpoint");
        assert!(matches!(
            foreign.verify(&key),
            Err(CheckpointRejected::OtherKey { .. })
        ));
        let relabelled = Checkpoint {
            key_id: cp.key_id.clone(),
            ..foreign
        };
        assert_eq!(
            relabelled.verify(&key),
            Err(CheckpointRejected::BadSignature)
        );
        // Forged rows in the server's own table are ignored, never trusted.
        exec(
            repo,
            &format!(
                "INSERT INTO audit_checkpoints (seq, hash, keyed_from, at_ms, key_id, signature) \
                 VALUES (9, '{}', 1, 5, '{}', '{}')",
                "f".repeat(64),
                cp.key_id,
                cp.signature
            ),
        )
        .await;
        assert_eq!(intact(repo, &[]).await, ChainStatus::Intact { rows: 3 });
        assert_eq!(
            repo.sign_checkpoint(6).await.expect("checkpoint").seq,
            3,
            "the next checkpoint anchors on the newest one that verifies"
        );
    }
}

#[tokio::test]
async fn a_log_upgraded_from_the_unkeyed_chain_is_sealed_and_covered() {
    for db in backends().await {
        let repo = &db.repo;
        // Rows written before the keyed chain existed, as the migration finds them: unkeyed,
        // the head after them, the keyed chain starting at the next row, no seal yet.
        let legacy: Vec<AuditRow> = (1..=4)
            .map(|i| AuditRow {
                seq: i,
                at_ms: 1_600_000_000_000 + i,
                user_id: Some(1),
                username: Some(format!("old{i}")),
                on_behalf_of: None,
                action: "login".into(),
                outcome: "ok".into(),
                reason: None,
                justification: None,
                criteria: "{}".into(),
                result_count: None,
                client: None,
                prev_hash: String::new(),
                hash: String::new(),
            })
            .collect();
        rewrite(repo, legacy, Scheme::Unkeyed, 1..).await;
        exec(
            repo,
            "UPDATE audit_head SET keyed_from = 5, keyed_seal = NULL",
        )
        .await;
        let ChainStatus::Broken { seq: 5, problem } = intact(repo, &[]).await else {
            panic!("an unsealed non-empty log is not intact");
        };
        assert!(problem.contains("not sealed"), "{problem}");
        let refused = repo
            .append_audit(
                AuditEvent {
                    action: "login",
                    outcome: "ok",
                    criteria: json!({}),
                    ..AuditEvent::default()
                },
                1,
            )
            .await;
        assert!(refused.is_err(), "appends wait for the seal");
        // `serve` seals it at start; new rows are keyed and link to the old ones.
        assert_eq!(repo.seal_audit_chain().await.expect("seal"), Some(5));
        assert_eq!(repo.seal_audit_chain().await.expect("sealed once"), None);
        assert_eq!(intact(repo, &[]).await, ChainStatus::Intact { rows: 4 });
        seed(repo, 3).await;
        let cp = repo.sign_checkpoint(1).await.expect("checkpoint");
        assert_eq!((cp.seq, cp.keyed_from), (7, 5));
        let rows = all_rows(repo).await;
        assert_eq!(
            rows[4].prev_hash, rows[3].hash,
            "the keyed chain covers the old rows"
        );
        assert_eq!(
            rows[4].hash,
            rows[4].compute_hash(Scheme::Keyed(repo.audit_keys().chain_key()))
        );
        assert_eq!(
            intact(repo, std::slice::from_ref(&cp)).await,
            ChainStatus::Intact { rows: 7 }
        );
        // An old row edited and the old (unkeyed) chain recomputed after it: the first keyed
        // row no longer links, and cannot be re-hashed without the key.
        let mut edited = rows.clone();
        edited[1].outcome = "denied".into();
        rewrite(repo, edited.clone(), Scheme::Unkeyed, 2..5).await;
        assert_eq!(
            intact(repo, &[]).await,
            broken(5, "does not link to the previous row")
        );
        rewrite(repo, edited, Scheme::Unkeyed, 2..).await;
        assert_eq!(intact(repo, &[]).await, broken(5, "row altered"));

        // Another key on the same database: refused at start and on append.
        let stranger = repo.clone().with_audit_keys(AuditKeys::generate());
        assert!(stranger.seal_audit_chain().await.is_err());
        let e = stranger
            .append_audit(
                AuditEvent {
                    action: "login",
                    outcome: "ok",
                    criteria: json!({}),
                    ..AuditEvent::default()
                },
                1,
            )
            .await
            .expect_err("another key");
        assert!(e.to_string().contains("audit key does not match"), "{e}");
    }
}

#[tokio::test]
async fn auditors_fetch_the_checkpoints_and_the_key() {
    for db in backends().await {
        let env = env(db).await;
        let b = env.backend();
        let auditor = env.user("aud.cp", "auditor", false).await;
        let officer = env.user("ofc.cp", "officer", false).await;
        let cp = env.state.repo.sign_checkpoint(1).await.expect("checkpoint");
        for token in [&auditor, &env.admin] {
            let (status, doc) = env
                .call(Method::GET, "/v1/audit/checkpoints", Some(token), None)
                .await;
            assert_eq!(status, StatusCode::OK, "{b}: {doc}");
            let (status, key) = env
                .call(Method::GET, "/v1/audit/key", Some(token), None)
                .await;
            assert_eq!(status, StatusCode::OK, "{b}: {key}");
            assert_eq!(doc["key"], key, "{b}");
            let key = parse_public_key(&key.to_string()).expect("key");
            let listed = parse_checkpoints(&doc.to_string()).expect("checkpoints");
            assert_eq!(listed, vec![cp.clone()], "{b}");
            assert_eq!(listed[0].verify(&key), Ok(()));
            assert_ne!(
                doc["key"]["public_key"],
                env.state.signer.public_key_info().public_key.as_str(),
                "{b}: not the hot list key"
            );
        }
        let (status, doc) = env
            .call(
                Method::GET,
                "/v1/audit/checkpoints?since_ms=2",
                Some(&auditor),
                None,
            )
            .await;
        assert_eq!(
            (status, doc["checkpoints"].clone()),
            (StatusCode::OK, json!([]))
        );
        let (status, _) = env
            .call(
                Method::GET,
                "/v1/audit/checkpoints?since_ms=soon",
                Some(&auditor),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        for uri in ["/v1/audit/checkpoints", "/v1/audit/key"] {
            let (status, _) = env.call(Method::GET, uri, Some(&officer), None).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{b} {uri}");
            let (status, _) = env.call(Method::GET, uri, None, None).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{b} {uri}");
        }
        // Device tokens may not read them either.
        let (_, device) = env.device(&officer).await;
        let (status, _) = env
            .call(Method::GET, "/v1/audit/checkpoints", Some(&device), None)
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{b}");
    }
}
