//! End-to-end tests of the hot list commands: `hotlist import` (counts, rejects, errors,
//! applying to a device store), `hotlist status` (staleness), `hotlist check` (explanations),
//! `scan --hotlist` alerts on a real scan, retro-hits, and `bench hotlist`'s JSON contract.

use std::path::Path;
use std::process::{Command, Output};

use platewatch_cli::scene::{self, Rng};
use serde_json::Value;

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_platewatch"))
        .args(args)
        .output()
        .expect("platewatch runs")
}

fn fixture(name: &str) -> String {
    format!(
        "{}/../core/tests/fixtures/hotlist/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// A fresh directory for one test, removed when the returned guard drops.
fn tmpdir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("platewatch-hot-{name}-"))
        .tempdir()
        .expect("temp dir")
}

fn json_lines(o: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

fn ok(o: &Output) {
    assert!(
        o.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf8 path")
}

#[test]
fn import_prints_counts_and_rejects() {
    let o = run(&[
        "hotlist",
        "import",
        &fixture("ncic_fixed_edge.txt"),
        &fixture("california_truncated.txt"),
        "--json",
    ]);
    ok(&o);
    let v = json_lines(&o);
    assert_eq!(v.len(), 2);
    assert_eq!(v[0]["format"], "ncic-fixed");
    assert_eq!(v[0]["entries"], 4);
    assert_eq!(v[0]["rejected"], 8);
    assert_eq!(v[0]["rejects"][0]["line"], 3);
    assert_eq!(v[1]["format"], "california");
    assert!(
        v[1]["warnings"][0]
            .as_str()
            .expect("warning text")
            .contains("truncated")
    );

    let o = run(&["hotlist", "import", &fixture("ncic_fixed_edge.txt")]);
    ok(&o);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("4 imported"), "{out}");
    assert!(out.contains("line 9: duplicate of line 1"), "{out}");
    assert!(!out.contains("7ABC123"), "reports never echo plates: {out}");

    // Forced format.
    let o = run(&[
        "hotlist",
        "import",
        &fixture("plates_only.txt"),
        "--format",
        "delimited",
        "--category",
        "amber",
        "--json",
    ]);
    ok(&o);
    assert_eq!(json_lines(&o)[0]["entries"], 3);
}

#[test]
fn import_errors_are_clear() {
    for (args, needle) in [
        (vec![fixture("binary.bin")], "binary"),
        (vec![fixture("prose.txt")], "format could not be recognised"),
        (vec!["/no/such/list.txt".to_string()], "cannot read"),
        (
            vec![fixture("plates_only.txt"), "--format".into(), "xml".into()],
            "unknown --format",
        ),
    ] {
        let mut a = vec!["hotlist".to_string(), "import".to_string()];
        a.extend(args);
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        let o = run(&refs);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{refs:?} should fail");
        assert!(err.contains(needle), "{refs:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn store_import_status_and_check() {
    let tmp = tmpdir("store");
    let dir = tmp.path();
    let db = dir.join("device.db");
    let o = run(&[
        "hotlist",
        "import",
        &fixture("delimited_header.txt"),
        "--store",
        s(&db),
        "--list",
        "agency",
        "--version",
        "7",
        "--json",
    ]);
    ok(&o);
    let v = json_lines(&o);
    assert_eq!(v[0]["applied"]["added"], 4);
    // A truncated file is not applied as a snapshot unless forced.
    let o = run(&[
        "hotlist",
        "import",
        &fixture("california_truncated.txt"),
        "--store",
        s(&db),
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("truncated"));

    let o = run(&["hotlist", "status", "--store", s(&db), "--json"]);
    ok(&o);
    let v = json_lines(&o);
    assert_eq!(v[0]["lists"][0]["name"], "agency");
    assert_eq!(v[0]["lists"][0]["version"], 7);
    assert_eq!(v[0]["lists"][0]["entries"], 4);
    assert_eq!(v[0]["stale"], 0);

    // Exact, then a look-alike read with an unsure character, then a sure one.
    let o = run(&["hotlist", "check", "7abc-123", "--store", s(&db), "--json"]);
    ok(&o);
    let v = &json_lines(&o)[0];
    assert_eq!(v["alert"], true);
    assert_eq!(v["matches"][0]["kind"], "exact");
    assert_eq!(v["matches"][0]["list"], "agency");
    assert_eq!(v["matches"][0]["stale"], false);
    let o = run(&[
        "hotlist",
        "check",
        "XYZ1Z34",
        "--store",
        s(&db),
        "--confidences",
        "0.99,0.99,0.99,0.99,0.5,0.99,0.99",
    ]);
    ok(&o);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("ALERT XYZ1Z34 ~ XYZ1234"), "{out}");
    assert!(out.contains("look-alike Z→2 at 5"), "{out}");
    let o = run(&["hotlist", "check", "XYZ1Z34", "--store", s(&db)]);
    ok(&o);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("0 at or above"), "{out}");
    assert!(out.contains("no alert XYZ1Z34"), "{out}");
    // Wildcard entry from the file.
    let o = run(&["hotlist", "check", "ABQ9123", "--store", s(&db), "--json"]);
    assert_eq!(json_lines(&o)[0]["matches"][0]["kind"], "wildcard");

    // A list older than its maximum age is stale, in status and in every alert.
    let o = run(&[
        "hotlist",
        "import",
        &fixture("ncic_csv_valid.csv"),
        "--store",
        s(&db),
        "--list",
        "ncic",
        "--max-age-hours",
        "0.0002",
    ]);
    ok(&o);
    std::thread::sleep(std::time::Duration::from_millis(2600));
    let o = run(&["hotlist", "status", "--store", s(&db), "--json"]);
    let v = json_lines(&o);
    assert_eq!(v[0]["stale"], 1, "{v:?}");
    let o = run(&["hotlist", "check", "KJH445", "--store", s(&db)]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("STALE LIST"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}

/// One synthetic vehicle pass written as frames; returns the plate text.
fn write_pass(dir: &Path, seed: u64) -> String {
    let mut rng = Rng::new(seed);
    let pass = scene::vehicle_pass(&mut rng, 10, 30.0, 70.0);
    for (i, f) in pass.frames.iter().enumerate() {
        f.save(dir.join(format!("f{i:03}.jpg"))).expect("frame");
    }
    pass.text
}

#[test]
fn scan_alerts_and_retro_hits() {
    let tmp = tmpdir("scan");
    let dir = tmp.path();
    let frames = dir.join("frames");
    std::fs::create_dir_all(&frames).expect("dir");
    let text = write_pass(&frames, 11);
    let list = dir.join("wanted.txt");
    std::fs::write(
        &list,
        format!("plate;category;priority\n{text};amber;100\n1OTHER1;wanted;50\n"),
    )
    .expect("list");
    let o = run(&[
        "scan",
        s(&frames),
        "--sequence",
        "30",
        "--hotlist",
        s(&list),
        "--json",
    ]);
    ok(&o);
    let v = json_lines(&o);
    let read = v.iter().find(|x| x.get("text").is_some()).expect("a read");
    assert_eq!(read["text"], text.as_str());
    assert_eq!(read["alerts"][0]["kind"], "exact");
    assert_eq!(read["alerts"][0]["category"], "amber");
    assert_eq!(read["alerts"][0]["list"], "wanted.txt");
    assert_eq!(read["alerts"][0]["stale"], false);
    assert_eq!(v.last().expect("summary")["alerts"], 1);

    // Retro-hit: reads stored while scanning with no list match an entry that arrives later.
    let db = dir.join("device.db");
    let o = run(&["scan", s(&frames), "--sequence", "30", "--store", s(&db)]);
    ok(&o);
    let o = run(&["hotlist", "import", s(&list), "--store", s(&db), "--json"]);
    ok(&o);
    assert_eq!(json_lines(&o)[0]["applied"]["retro_hits"], 1);
}

#[test]
fn bench_hotlist_json_contract() {
    let o = run(&[
        "bench",
        "hotlist",
        "--entries",
        "20000",
        "--lookups",
        "2000",
        "--random-reads",
        "20000",
        "--linear-lookups",
        "5",
        "--json",
    ]);
    ok(&o);
    let out = String::from_utf8_lossy(&o.stdout);
    let last: Value = serde_json::from_str(out.lines().last().expect("a line")).expect("json");
    for k in [
        "entries",
        "build_ms",
        "memory_mb",
        "exact_p99_us",
        "fuzzy_p99_us",
        "linear_fuzzy_p99_us",
        "false_alert_rate",
    ] {
        assert!(last[k].is_number(), "{k} missing: {last}");
    }
    assert_eq!(last["entries"], 20000);
    assert_eq!(last["exact_recall"], 1.0);
    assert_eq!(last["fuzzy_recall"], 1.0);
    assert_eq!(last["linear_agreement"], 1.0);
    assert_eq!(last["delta_removed_silent"], true);
    assert_eq!(last["delta_added_found"], true);
}

/// A file whose every line is rejected leaves the device's list as it was (the server refuses
/// the same upload); devices, pipes and endless inputs are refused at once.
#[test]
fn import_never_empties_a_list_by_accident_nor_reads_endless_input() {
    let tmp = tmpdir("guard");
    let dir = tmp.path();
    let db = dir.join("device.db");
    let good = dir.join("wanted.txt");
    std::fs::write(
        &good,
        "plate,state,category\n7ABC123,CA,stolen_vehicle\n8XYZ999,AZ,felony\n",
    )
    .expect("write");
    ok(&run(&["hotlist", "import", s(&good), "--store", s(&db)]));
    let bad = dir.join("bad.txt");
    std::fs::write(
        &bad,
        "plate,state,category\n!!!!!!!!,CA,stolen_vehicle\n@@@@,ZZ,felony\n",
    )
    .expect("write");
    let o = run(&[
        "hotlist",
        "import",
        s(&bad),
        "--list",
        "wanted.txt",
        "--store",
        s(&db),
    ]);
    assert!(!o.status.success(), "an all-rejected file must not apply");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("every line") && err.contains("left as it was"),
        "{err}"
    );
    // The list still holds its entries.
    let o = run(&["hotlist", "import", s(&good), "--store", s(&db), "--json"]);
    ok(&o);
    assert_eq!(
        json_lines(&o)[0]["applied"]["added"],
        0,
        "nothing was removed"
    );

    let started = std::time::Instant::now();
    let o = run(&["hotlist", "import", "/dev/zero"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a regular file"));
    let fifo = dir.join("fifo");
    if Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .is_ok_and(|s| s.success())
    {
        let o = run(&["hotlist", "import", s(&fifo)]);
        assert!(!o.status.success());
        let o = run(&["scan", s(&fifo)]);
        assert!(!o.status.success());
        assert!(String::from_utf8_lossy(&o.stderr).contains("not a regular file"));
    }
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "nothing hung"
    );
}
