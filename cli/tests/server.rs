//! End-to-end tests of the server commands on a SQLite file: `audit verify` (exit 0 when
//! intact, exit 2 naming the row after an edit, a clear error for a missing database),
//! `audit verify --checkpoints` (exit 2 for a truncation behind the server's back and for
//! forged checkpoints), `audit checkpoints` and `audit key`, `audit export` (the range's rows,
//! itself audited, with a checkpoint), `retention run`, and `serve` answering over loopback
//! with no configuration but a database and a port.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use platewatch_server::audit::{AuditKeys, parse_checkpoints};
use platewatch_server::{AuditEvent, Config, Db, Repo};
use serde_json::{Value, json};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_platewatch"))
        .args(args)
        .env_remove("PLATEWATCH_DATABASE_URL")
        .output()
        .expect("platewatch runs")
}

/// A fresh directory for one test, removed when the returned guard drops.
fn tmpdir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("platewatch-srv-{name}-"))
        .tempdir()
        .expect("temp dir")
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// A database with three audit rows, written with the audit keys the server would create
/// beside it (which the commands then read).
fn seeded(dir: &Path) -> String {
    let url = format!("sqlite://{}", dir.join("server.db").display());
    let config = Config {
        database_url: url.clone(),
        ..Config::default()
    };
    let (keys, created) = AuditKeys::load_or_create(&config).expect("audit keys");
    assert!(created);
    block_on(async {
        let repo = Repo::connect(&url)
            .await
            .expect("create")
            .with_audit_keys(keys);
        for i in 0..3i64 {
            let event = AuditEvent {
                username: Some(format!("user{i}")),
                action: "login",
                outcome: "ok",
                criteria: json!({ "i": i }),
                ..AuditEvent::default()
            };
            repo.append_audit(event, 1_000_000 + i)
                .await
                .expect("append");
        }
    });
    url
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn audit_verify_detects_an_edited_row_and_export_writes_the_range() {
    let tmp = tmpdir("audit");
    let dir = tmp.path();
    let url = seeded(dir);
    let out = run(&["audit", "verify", "--database-url", &url]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("intact: 3 rows"), "{stdout}");

    let file = dir.join("export.json");
    let out = run(&[
        "audit",
        "export",
        "--database-url",
        &url,
        "--from",
        "1970-01-01",
        "--to",
        "1000002",
        "--format",
        "json",
        "-o",
        file.to_str().expect("utf-8"),
    ]);
    assert!(out.status.success(), "{:?}", text(&out));
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(&file).expect("export")).expect("json");
    assert_eq!(doc["count"], 2, "{doc}");
    assert_eq!(doc["rows"][1]["username"], "user1");
    assert_eq!(
        doc["checkpoint"]["seq"], 4,
        "signed after the export's own row: {doc}"
    );
    let out = run(&[
        "audit",
        "export",
        "--database-url",
        &url,
        "--from",
        "0",
        "--to",
        "1000003",
        "--format",
        "csv",
    ]);
    let (csv, _) = text(&out);
    assert!(out.status.success());
    assert!(csv.starts_with("seq,at_ms,"), "{csv}");
    assert_eq!(csv.lines().count(), 4, "{csv}");

    // Both exports were audited: the chain grew by two rows and is intact.
    let out = run(&["audit", "verify", "--database-url", &url, "--json"]);
    let (stdout, _) = text(&out);
    let v: Value = serde_json::from_str(stdout.trim()).expect("json");
    assert_eq!(v, json!({ "intact": true, "rows": 5 }));

    // Edit a row behind the server's back.
    block_on(async {
        let repo = Repo::connect_existing(&url).await.expect("open");
        let Db::Sqlite(p) = repo.db() else {
            panic!("sqlite")
        };
        sqlx::query("UPDATE audit_log SET username = 'someone-else' WHERE seq = 2")
            .execute(p)
            .await
            .expect("edit");
    });
    let out = run(&["audit", "verify", "--database-url", &url]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(
        stderr.contains("AUDIT LOG BROKEN at row 2: row altered"),
        "{stderr}"
    );

    let missing = format!("sqlite://{}", dir.join("nope.db").display());
    let out = run(&["audit", "verify", "--database-url", &missing]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("cannot open the database"), "{stderr}");
    assert!(
        !dir.join("nope.db").exists(),
        "verify never creates a database"
    );
    let out = run(&[
        "audit",
        "export",
        "--database-url",
        &url,
        "--from",
        "x",
        "--to",
        "1",
    ]);
    assert!(text(&out).1.contains("--from"), "{:?}", text(&out));
}

#[test]
fn retention_run_reports_counts() {
    let tmp = tmpdir("retention");
    let dir = tmp.path();
    let url = seeded(dir);
    let out = run(&[
        "retention",
        "run",
        "--database-url",
        &url,
        "--days",
        "30",
        "--json",
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    let v: Value = serde_json::from_str(stdout.trim()).expect("json");
    assert_eq!(
        (&v["deleted"], &v["held"], &v["retention_days"]),
        (&json!(0), &json!(0), &json!(30))
    );
    let out = run(&["audit", "verify", "--database-url", &url]);
    assert!(
        text(&out).0.contains("intact: 4 rows"),
        "the run is audited: {:?}",
        text(&out)
    );
}

#[test]
fn serve_answers_on_a_local_sqlite_file() {
    let tmp = tmpdir("serve");
    let dir = tmp.path();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let db = dir.join("pw.db");
    let mut child = Command::new(env!("CARGO_BIN_EXE_platewatch"))
        .args([
            "serve",
            "--database-url",
            &format!("sqlite://{}", db.display()),
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .env("PLATEWATCH_ADMIN_USER", "admin")
        .env("PLATEWATCH_ADMIN_PASSWORD", "admin-password-123")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve starts");
    let mut answer = String::new();
    for _ in 0..150 {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            s.set_read_timeout(Some(Duration::from_secs(5)))
                .expect("timeout");
            s.write_all(
                b"GET /openapi.json HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
            )
            .expect("write");
            let _ = s.read_to_string(&mut answer);
            break;
        }
        assert!(
            child.try_wait().expect("wait").is_none(),
            "serve exited early"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"openapi\": \"3.1.0\""));
    assert!(db.exists(), "the SQLite file was created");
    assert!(
        dir.join("pw.db.hotlist-key").exists(),
        "the signing key was created beside it"
    );
    assert!(dir.join("pw.db.audit-key").exists() && dir.join("pw.db.audit-signing-key").exists());
    // The command line reads the keys the server created: the server's log verifies.
    let url = format!("sqlite://{}", db.display());
    let out = run(&["audit", "checkpoints", "--new", "--database-url", &url]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        parse_checkpoints(&stdout).is_ok_and(|c| !c.is_empty()),
        "{stdout}"
    );
    let out = run(&["audit", "verify", "--database-url", &url]);
    assert!(out.status.success(), "{:?}", text(&out));
}

#[test]
fn audit_verify_against_kept_checkpoints_catches_truncation_and_forgeries() {
    let tmp = tmpdir("checkpoints");
    let dir = tmp.path();
    let url = seeded(dir);
    let path = |name: &str| dir.join(name).to_str().expect("utf-8").to_string();
    let (cps, key) = (path("kept.jsonl"), path("audit-key.json"));
    let out = run(&[
        "audit",
        "checkpoints",
        "--new",
        "--database-url",
        &url,
        "--out",
        &cps,
    ]);
    assert!(out.status.success(), "{:?}", text(&out));
    let out = run(&["audit", "key", "--database-url", &url, "-o", &key]);
    assert!(out.status.success(), "{:?}", text(&out));
    let kept = std::fs::read_to_string(&cps).expect("kept");
    assert_eq!(kept.lines().count(), 1, "{kept}");

    let verify = |extra: &[&str]| {
        let mut args = vec!["audit", "verify", "--database-url", url.as_str()];
        args.extend_from_slice(extra);
        run(&args)
    };
    let out = verify(&["--checkpoints", &cps, "--public-key", &key]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains(
            "intact: 3 rows, every hash verified; 1 signed checkpoints (the newest at row 3) match"
        ),
        "{stdout}"
    );
    let out = verify(&["--checkpoints", &cps, "--json"]);
    let v: Value = serde_json::from_str(text(&out).0.trim()).expect("json");
    assert_eq!(
        v,
        json!({ "intact": true, "rows": 3, "checkpoints": 1, "newest_checkpoint_seq": 3, "rejected_checkpoints": [] })
    );

    // A forged checkpoint (one claiming a shorter log, its signature copied) and one signed
    // with another key are refused: exit 2, naming them.
    let mut forged: Value = serde_json::from_str(kept.trim()).expect("checkpoint");
    forged["seq"] = json!(2);
    let forged_file = path("forged.json");
    std::fs::write(&forged_file, json!([forged]).to_string()).expect("write");
    let out = verify(&["--checkpoints", &forged_file]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("CHECKPOINT REJECTED: checkpoint 1 (row 2): the signature does not verify"),
        "{stderr}"
    );
    let other = AuditKeys::generate().public_key_info();
    let other_file = path("other-key.json");
    std::fs::write(&other_file, serde_json::to_string(&other).expect("json")).expect("write");
    let out = verify(&["--checkpoints", &cps, "--public-key", &other_file]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("signed with another key"), "{stderr}");

    // The newest row deleted, the head moved back and the server's own checkpoints deleted:
    // the chain alone cannot tell, the kept checkpoint can.
    block_on(async {
        let repo = Repo::connect_existing(&url).await.expect("open");
        let Db::Sqlite(p) = repo.db() else {
            panic!("sqlite")
        };
        let hash2: String = sqlx::query_scalar("SELECT hash FROM audit_log WHERE seq = 2")
            .fetch_one(p)
            .await
            .expect("row 2");
        for sql in [
            "DELETE FROM audit_log WHERE seq = 3".to_string(),
            format!("UPDATE audit_head SET seq = 2, hash = '{hash2}'"),
            "DELETE FROM audit_checkpoints".to_string(),
        ] {
            sqlx::query(&sql).execute(p).await.expect("tamper");
        }
    });
    let out = verify(&[]);
    assert!(text(&out).0.contains("intact: 2 rows"), "{:?}", text(&out));
    let out = verify(&["--checkpoints", &cps, "--public-key", &key]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(
        stderr.contains(
            "AUDIT LOG BROKEN at row 3: rows missing: a signed checkpoint attests a longer log (truncated)"
        ),
        "{stderr}"
    );

    // Without the server's chain key nothing is verified.
    let out = verify(&["--audit-key-file", &path("no-such-key")]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot read the server's audit keys"),
        "{stderr}"
    );
    assert!(stderr.contains("does not exist"), "{stderr}");
}
