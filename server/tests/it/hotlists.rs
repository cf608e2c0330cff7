//! Hot list publishing on both backends: upload (raw body and multipart) through the `core`
//! importers with per-line rejects, version bumps only on change, signed snapshot and delta
//! verified with `platewatch_core` and applied to a real device store until it equals the
//! server's list, tampered payloads refused, retirement, and the audit trail (without plates).

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use platewatch_core::hotlist::signed::{self, parse_public_key};
use platewatch_core::hotlist::{EntryKey, SignedHotlist, Update, VerifyError};
use platewatch_store::{ListMeta, Store};
use serde_json::Value;

use crate::common::{Env, backends, env};

const V1: &str = "Plate;State;List;Priority;Notes\n\
                  7ABC123;CA;stolen vehicle;60;keys in car\n\
                  8XYZ987;AZ;gang;;\n\
                  LMN4567;WA;felony;;\n\
                  000;CA;felony;;\n";

const V2: &str = "Plate;State;List;Priority;Notes\n\
                  7ABC123;CA;stolen vehicle;70;keys in car\n\
                  LMN4567;WA;felony;;\n\
                  5NEW555;NV;wanted;;armed\n";

/// Uploads `file` as a raw body with `query`.
pub async fn upload_raw(env: &Env, token: &str, query: &str, file: &str) -> (StatusCode, Value) {
    let req = Request::builder()
        .method(Method::POST)
        .uri(format!("/v1/hotlists?{query}"))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "text/plain")
        .body(Body::from(file.to_string()))
        .expect("request");
    env.send(req).await
}

async fn upload_multipart(env: &Env, token: &str, fields: &[(&str, &str)]) -> (StatusCode, Value) {
    let boundary = "pw-test-boundary-7d1e";
    let mut body = String::new();
    for (name, value) in fields {
        body.push_str(&format!("--{boundary}\r\n"));
        if *name == "file" {
            body.push_str(
                "Content-Disposition: form-data; name=\"file\"; filename=\"list.txt\"\r\n\
                 Content-Type: text/plain\r\n\r\n",
            );
        } else {
            body.push_str(&format!(
                "Content-Disposition: form-data; name=\"{name}\"\r\n\r\n"
            ));
        }
        body.push_str(value);
        body.push_str("\r\n");
    }
    body.push_str(&format!("--{boundary}--\r\n"));
    let req = Request::builder()
        .method(Method::POST)
        .uri("/v1/hotlists")
        .header("authorization", format!("Bearer {token}"))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(Body::from(body))
        .expect("request");
    env.send(req).await
}

async fn fetch(env: &Env, token: &str, uri: &str) -> (StatusCode, Value) {
    env.call(Method::GET, uri, Some(token), None).await
}

fn signed(v: &Value) -> SignedHotlist {
    serde_json::from_value(v.clone()).expect("a signed envelope")
}

fn keys(entries: &[platewatch_core::hotlist::Entry]) -> Vec<(String, u8)> {
    let mut k: Vec<(String, u8)> = entries
        .iter()
        .map(|e| (e.plate.as_str().to_string(), e.priority))
        .collect();
    k.sort();
    k
}

#[tokio::test]
async fn publish_snapshot_delta_round_trip_with_signatures() {
    for db in backends().await {
        let env = env(db).await;
        let b = env.backend();
        let officer = env.user("ofc.lists", "officer", false).await;
        let (_, device) = env.device(&officer).await;

        // The key devices pin.
        let (status, key) = fetch(&env, &device, "/v1/hotlists/key").await;
        assert_eq!(status, StatusCode::OK, "{b}: {key}");
        assert_eq!(key["alg"], "ed25519");
        let pk = parse_public_key(key["public_key"].as_str().expect("key")).expect("valid key");
        assert_eq!(pk, env.state.signer.verifying_key(), "{b}");

        // Version 1: three entries, the junk line rejected with its line number.
        let (status, v1) = upload_raw(&env, &env.admin, "list=agency-bolo&format=auto", V1).await;
        assert_eq!(status, StatusCode::OK, "{b}: {v1}");
        assert_eq!(
            (&v1["version"], &v1["added"], &v1["changed"], &v1["format"]),
            (
                &Value::from(1),
                &Value::from(3),
                &Value::Bool(true),
                &Value::from("delimited")
            ),
            "{b}: {v1}"
        );
        assert_eq!(v1["rejects"].as_array().expect("rejects").len(), 1, "{v1}");
        assert_eq!(v1["rejects"][0]["line"], 5);
        assert!(
            v1["rejects"][0]["reason"]
                .as_str()
                .expect("reason")
                .contains("junk"),
            "{v1}"
        );
        // The same file again changes nothing and keeps the version.
        let (status, again) = upload_raw(&env, &env.admin, "list=agency-bolo", V1).await;
        assert_eq!(status, StatusCode::OK, "{b}");
        assert_eq!(
            (&again["version"], &again["changed"]),
            (&Value::from(1), &Value::Bool(false))
        );

        // The device takes a snapshot, verifies it with core, and stores it.
        let (status, snap) = fetch(&env, &device, "/v1/hotlists/agency-bolo/snapshot").await;
        assert_eq!(status, StatusCode::OK, "{b}: {snap}");
        let payload = signed::verify(&signed(&snap), &pk).expect("valid snapshot signature");
        assert_eq!(payload.list.name, "agency-bolo");
        assert_eq!(payload.list.version, 1);
        assert_eq!(payload.list.max_age_secs, 24 * 3600);
        let Update::Snapshot { entries } = &payload.update else {
            panic!("{b}: not a snapshot")
        };
        assert_eq!(
            keys(entries),
            [
                ("7ABC123".into(), 60),
                ("8XYZ987".into(), 40),
                ("LMN4567".into(), 80)
            ]
        );
        assert_eq!(
            entries[0].note.as_deref(),
            Some("keys in car"),
            "{b}: notes travel"
        );
        let store = Store::open_in_memory().await.expect("device store");
        let mut meta = ListMeta::new(&payload.list.name, payload.list.source);
        meta.max_age_secs = payload.list.max_age_secs;
        store
            .apply_snapshot(&meta, 1, Some(payload.list.published_at), entries, 1)
            .await
            .expect("apply snapshot");

        // Version 2 by multipart: one update, one removal, one addition.
        let (status, v2) = upload_multipart(
            &env,
            &env.admin,
            &[
                ("list", "agency-bolo"),
                ("format", "delimited"),
                ("file", V2),
            ],
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{b}: {v2}");
        assert_eq!(
            (
                &v2["previous_version"],
                &v2["version"],
                &v2["added"],
                &v2["updated"],
                &v2["removed"],
                &v2["entries"]
            ),
            (
                &Value::from(1),
                &Value::from(2),
                &Value::from(1),
                &Value::from(1),
                &Value::from(1),
                &Value::from(3)
            ),
            "{b}: {v2}"
        );

        // The delta since 1, verified and applied, brings the device to the server's list.
        let (status, delta) = fetch(&env, &device, "/v1/hotlists/agency-bolo/delta?since=1").await;
        assert_eq!(status, StatusCode::OK, "{b}: {delta}");
        let envelope = signed(&delta);
        let payload = signed::verify(&envelope, &pk).expect("valid delta signature");
        assert_eq!(payload.list.version, 2);
        let Update::Delta {
            base_version,
            add,
            remove,
        } = &payload.update
        else {
            panic!("{b}: not a delta")
        };
        assert_eq!(*base_version, 1);
        assert_eq!(keys(add), [("5NEW555".into(), 80), ("7ABC123".into(), 70)]);
        assert_eq!(remove.len(), 1);
        assert_eq!(remove[0].plate.as_str(), "8XYZ987");
        store
            .apply_delta("agency-bolo", 1, 2, add, remove, 2)
            .await
            .expect("apply delta");
        let (_, snap2) = fetch(&env, &device, "/v1/hotlists/agency-bolo/snapshot").await;
        let Update::Snapshot { entries: server } = signed::verify(&signed(&snap2), &pk)
            .expect("snapshot 2")
            .update
        else {
            panic!("not a snapshot")
        };
        let on_device: Vec<_> = store
            .entries()
            .await
            .expect("entries")
            .into_iter()
            .map(|s| s.entry)
            .collect();
        assert_eq!(keys(&on_device), keys(&server), "{b}: device equals server");
        let mut server_keys: Vec<EntryKey> = server.iter().map(EntryKey::from).collect();
        let mut device_keys: Vec<EntryKey> = on_device.iter().map(EntryKey::from).collect();
        server_keys.sort_by(|a, b| a.plate.cmp(&b.plate));
        device_keys.sort_by(|a, b| a.plate.cmp(&b.plate));
        assert_eq!(server_keys, device_keys);

        // Tampering with the payload or the signature is refused by core.
        let mut tampered = envelope.clone();
        tampered.payload = tampered.payload.replace("5NEW555", "5NEW556");
        assert_eq!(
            signed::verify(&tampered, &pk),
            Err(VerifyError::BadSignature)
        );
        let mut tampered = envelope.clone();
        tampered.payload = tampered
            .payload
            .replacen("\"remove\":[{", "\"remove\":[],\"x\":[{", 1);
        assert_eq!(
            signed::verify(&tampered, &pk),
            Err(VerifyError::BadSignature)
        );
        let other = platewatch_server::publish::HotlistSigner::generate();
        assert!(signed::verify(&envelope, &other.verifying_key()).is_err());
        let body = serde_json::to_vec(&delta).expect("json");
        assert!(signed::verify_json(&body, &pk).is_ok());

        // Deltas: none since the current version; a device ahead or a bad version is refused.
        let (status, none) = fetch(&env, &device, "/v1/hotlists/agency-bolo/delta?since=2").await;
        assert_eq!(status, StatusCode::OK);
        let p = signed::verify(&signed(&none), &pk).expect("empty delta");
        assert_eq!(
            p.update,
            Update::Delta {
                base_version: 2,
                add: vec![],
                remove: vec![]
            }
        );
        let (status, _) = fetch(&env, &device, "/v1/hotlists/agency-bolo/delta?since=9").await;
        assert_eq!(status, StatusCode::CONFLICT, "{b}");
        for bad in ["since=-1", "since=x", ""] {
            let (status, body) = fetch(
                &env,
                &device,
                &format!("/v1/hotlists/agency-bolo/delta?{bad}"),
            )
            .await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{b} {bad}: {body}");
        }
        let (status, _) = fetch(&env, &device, "/v1/hotlists/nope/snapshot").await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        // Merge adds without removing; the index lists versions and counts.
        let (status, m) = upload_raw(
            &env,
            &env.admin,
            "list=agency-bolo&mode=merge&format=delimited",
            "Plate;State;List\n9MRG999;OR;missing\n",
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{b}: {m}");
        assert_eq!(
            (&m["version"], &m["entries"], &m["removed"]),
            (&Value::from(3), &Value::from(4), &Value::from(0))
        );
        let (status, index) = fetch(&env, &device, "/v1/hotlists").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(index["lists"][0]["name"], "agency-bolo");
        assert_eq!(index["lists"][0]["version"], 3);
        assert_eq!(index["lists"][0]["entries"], 4);

        // Retiring removes every entry; the next delta tells the device.
        let (status, r) = env
            .call(
                Method::DELETE,
                "/v1/hotlists/agency-bolo",
                Some(&env.admin),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{b}: {r}");
        assert_eq!(
            (&r["version"], &r["removed"], &r["entries"]),
            (&Value::from(4), &Value::from(4), &Value::from(0))
        );
        let (_, d) = fetch(&env, &device, "/v1/hotlists/agency-bolo/delta?since=3").await;
        let Update::Delta { add, remove, .. } =
            signed::verify(&signed(&d), &pk).expect("delta").update
        else {
            panic!("not a delta")
        };
        assert_eq!((add.len(), remove.len()), (0, 4));
        let (status, _) = env
            .call(
                Method::DELETE,
                "/v1/hotlists/never-published",
                Some(&env.admin),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        // Bad uploads: 4xx with a reason, nothing published.
        for (query, file, what) in [
            ("list=x", "\u{1}\u{2}binary", "binary"),
            ("list=x", "000;CA;felony\n00;CA;felony\n", "only rejects"),
            ("list=bad%20name", V1, "list name"),
            ("format=delimited", V1, "no list"),
            ("list=x&format=pdf", V1, "format"),
            ("list=x&mode=append", V1, "mode"),
            ("list=x&max_age_secs=0", V1, "max age"),
            ("list=x&source=nsa", V1, "source"),
        ] {
            let (status, body) = upload_raw(&env, &env.admin, query, file).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{b} {what}: {body}");
            let reason = body["error"].as_str().expect("reason");
            assert!(!reason.contains("7ABC123"), "{reason}");
        }
        let (_, index) = fetch(&env, &device, "/v1/hotlists").await;
        assert_eq!(
            index["lists"].as_array().expect("lists").len(),
            1,
            "{b}: {index}"
        );

        // Every change is audited, with counts and never a plate or a note.
        let rows = env.state.repo.audit_rows(1, 1000).await.expect("audit");
        let publishes: Vec<_> = rows
            .iter()
            .filter(|r| r.action == "hotlist.publish")
            .collect();
        assert_eq!(
            publishes.iter().filter(|r| r.outcome == "ok").count(),
            4,
            "{b}: v1, v1 again, v2, merge"
        );
        assert_eq!(
            publishes.iter().filter(|r| r.outcome == "failed").count(),
            2,
            "{b}"
        );
        let v2_row = publishes
            .iter()
            .find(|r| {
                r.criteria.contains("\"version\":2")
                    && r.criteria.contains("\"previous_version\":1")
            })
            .expect("the v2 publish row");
        let c: Value = serde_json::from_str(&v2_row.criteria).expect("criteria");
        assert_eq!(
            (&c["added"], &c["updated"], &c["removed"]),
            (&Value::from(1), &Value::from(1), &Value::from(1))
        );
        assert_eq!(v2_row.username.as_deref(), Some("admin"));
        assert!(
            rows.iter()
                .any(|r| r.action == "hotlist.retire" && r.outcome == "ok")
        );
        for r in &rows {
            let text = serde_json::to_string(r).expect("row");
            for secret in ["7ABC123", "5NEW555", "keys in car", "armed"] {
                assert!(
                    !text.contains(secret),
                    "{b}: audit row {} holds {secret}",
                    r.seq
                );
            }
        }
        assert!(env.state.repo.verify_chain().await.expect("verify").eq(
            &platewatch_server::ChainStatus::Intact {
                rows: rows.len() as u64
            }
        ));
    }
}

#[tokio::test]
async fn signing_key_is_created_once_and_reloaded() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("hotlist.key");
    let (a, created) =
        platewatch_server::publish::HotlistSigner::load_or_create(&path).expect("create");
    assert!(created);
    let (b, created) =
        platewatch_server::publish::HotlistSigner::load_or_create(&path).expect("load");
    assert!(!created);
    assert_eq!(a.verifying_key(), b.verifying_key());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    std::fs::write(&path, "not a key").expect("write");
    assert!(platewatch_server::publish::HotlistSigner::load_or_create(&path).is_err());
}
