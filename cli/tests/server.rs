//! End-to-end tests of the server commands on a SQLite file: `audit verify` (exit 0 when
//! intact, exit 2 naming the row after an edit, a clear error for a missing database),
//! `audit export` (the range's rows, itself audited), `retention run`, and `serve` answering
//! over loopback with no configuration but a database and a port.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use platewatch_server::{AuditEvent, Db, Repo};
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

fn seeded(dir: &Path) -> String {
    let url = format!("sqlite://{}", dir.join("server.db").display());
    block_on(async {
        let repo = Repo::connect(&url).await.expect("create");
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
}
