//! The facade end to end from Rust (the listener implemented in Rust, as the Kotlin and Swift
//! ones are): real frames rendered like `platewatch demo`, pushed as strided YUV and BGRA,
//! reads and alerts through the listener, dispositions, sessions, error mapping, release.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
// The scene renderer of `platewatch demo`, compiled in directly (not the whole CLI crate).
#[path = "../../cli/src/scene.rs"]
#[allow(dead_code, clippy::all)]
mod scene;
use platewatch_ffi::*;
use scene::{Rng, vehicle_pass};

/// A pass the models read exactly (plate HKH717).
const SEED: u64 = 5;

fn kind(e: &PlatewatchError) -> ErrorKind {
    e.kind()
}

#[test]
fn a_pass_pushed_as_strided_yuv_raises_an_alert_that_can_be_accepted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let scanner = scanner_with(&dir.path().join("device.db"));
    let rec = Arc::new(Recorder::default());
    let handle = scanner.subscribe(rec.clone()).expect("subscribe");
    let pass = vehicle_pass(&mut Rng::new(SEED), 12, 30.0, 80.0);
    let list = format!(
        "Plate;State;List;Priority\n{};;stolen vehicle;80\n",
        pass.text
    );
    let imported = scanner
        .import_hotlist("stolen".into(), 1, list.into_bytes())
        .expect("hot list applies");
    assert_eq!(imported.entries, 1);
    let info = block_on(scanner.start_session(session())).expect("session starts");
    assert_eq!(info.reason_code, "patrol");

    let t0 = 1_767_000_000_000i64;
    for (i, img) in pass.frames.iter().enumerate() {
        let ts = t0 + 33 * i as i64;
        push_all(&scanner, yuv_frame(img, ts, gps(ts)));
    }
    scanner.flush().expect("flush");
    let alerted = rec.wait(Duration::from_secs(20), |s| !s.alerts.is_empty());
    assert!(alerted, "no alert: {:?}", rec.seen.lock().expect("lock"));
    let alert = rec.seen.lock().expect("lock").alerts[0].clone();
    assert_eq!(alert.read.plate, pass.text);
    assert!(alert.read.stored, "the read is stored as an encounter");
    assert!(alert.crop_png.starts_with(b"\x89PNG"), "crop is a PNG");
    let m = &alert.matches[0];
    assert_eq!(
        (m.list.as_str(), m.kind, m.category.as_str(), m.stale),
        ("stolen", MatchKind::Exact, "stolen_vehicle", false)
    );
    assert_eq!(m.priority, 80);
    assert!(!rec.seen.lock().expect("lock").frames.is_empty());

    // Waiting for the officer: pending, not due. Accepting makes it due.
    let before = scanner.pending_uploads().expect("status");
    assert_eq!((before.pending, before.due), (1, 0));
    scanner
        .accept_alert(alert.alert_id.clone())
        .expect("accept");
    assert_eq!(scanner.pending_uploads().expect("status").due, 1);
    // A rejection needs a reason; an unknown id is refused.
    let e = scanner
        .reject_alert(alert.alert_id.clone(), "  ".into())
        .expect_err("empty reason");
    assert_eq!(kind(&e), ErrorKind::InvalidInput);
    let e = scanner
        .accept_alert("00000000-0000-4000-8000-000000000000".into())
        .expect_err("unknown alert");
    assert_eq!(kind(&e), ErrorKind::InvalidInput);
    let encounter_id = alert.alert_id.clone();
    scanner
        .correct_read(alert.alert_id, "abc 123".into())
        .expect("a correction replaces the decision");

    let stats = scanner.frame_stats();
    assert_eq!(stats.processed, 12);
    assert!(stats.pushed >= 12);
    let lists = scanner.hotlist_status().expect("lists");
    assert_eq!((lists[0].name.as_str(), lists[0].entries), ("stolen", 1));
    let end = block_on(scanner.end_session()).expect("end");
    assert!(!end.ended_on_server, "no server configured");
    assert!(scanner.current_session().is_none());
    handle.cancel();
    assert!(!handle.is_active());
    drop(scanner);

    // The encounter keeps the plate crop and the vehicle context the tracker took from the
    // best crop's frame: trimmed to the vehicle, never the whole 1280x720 frame.
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let stored = rt.block_on(async {
        let store = platewatch_store::Store::open(&dir.path().join("device.db"))
            .await
            .expect("store");
        platewatch_store::EncounterStore::new(store)
            .with_image_key(platewatch_store::ImageKey::from_bytes([7; 32]))
            .get(uuid::Uuid::parse_str(&encounter_id).expect("uuid"))
            .await
            .expect("read")
            .expect("stored")
    });
    let context = stored.evidence.context.expect("a context image");
    let img = image::load_from_memory(&context.bytes).expect("the context image decodes");
    // This pass ends close to the camera, so the vehicle fills most of the frame height.
    assert!(
        img.width() * img.height() < 1280 * 720,
        "context {}x{} is trimmed",
        img.width(),
        img.height()
    );
}

#[test]
fn bgra_frames_are_read_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    let scanner = scanner_with(&dir.path().join("device.db"));
    let rec = Arc::new(Recorder::default());
    let _handle = scanner.subscribe(rec.clone()).expect("subscribe");
    block_on(scanner.start_session(session())).expect("session");
    let pass = vehicle_pass(&mut Rng::new(SEED), 12, 30.0, 80.0);
    let t0 = 1_767_000_000_000i64;
    let mut f = bgra_frame(&pass.frames[0], t0);
    f.gps = gps(t0);
    push_all(&scanner, f);
    for (i, img) in pass.frames.iter().enumerate().skip(1) {
        push_all(&scanner, bgra_frame(img, t0 + 33 * i as i64));
    }
    scanner.flush().expect("flush");
    assert!(rec.wait(Duration::from_secs(20), |s| !s.reads.is_empty()));
    let s = rec.seen.lock().expect("lock");
    assert_eq!(s.reads[0].plate, pass.text);
    assert!(s.reads[0].stored, "position from the session's track");
    assert!(s.alerts.is_empty(), "no hot list, no alert");
}

#[test]
fn bad_input_maps_to_the_small_error_enum() {
    let dir = tempfile::tempdir().expect("tempdir");
    let scanner = scanner_with(&dir.path().join("device.db"));
    let img = image::RgbImage::new(64, 48);
    // No session yet.
    let e = scanner
        .push_frame(yuv_frame(&img, 1, None))
        .expect_err("no session");
    assert_eq!(kind(&e), ErrorKind::InvalidInput);
    // Unknown reason code; missing case number and justification.
    let mut bad = session();
    bad.reason_code = "curiosity".into();
    assert_eq!(
        kind(&block_on(scanner.start_session(bad)).expect_err("reason")),
        ErrorKind::InvalidInput
    );
    let mut bad = session();
    bad.case_number = None;
    assert_eq!(
        kind(&block_on(scanner.start_session(bad)).expect_err("case")),
        ErrorKind::InvalidInput
    );
    block_on(scanner.start_session(session())).expect("session");
    // Row stride shorter than a row.
    let mut f = yuv_frame(&img, 1, None);
    if let FramePixels::Yuv420 { y, .. } = &mut f.pixels {
        y.row_stride = 10;
    }
    assert_eq!(
        kind(&scanner.push_frame(f).expect_err("stride")),
        ErrorKind::InvalidInput
    );
    let mut f = yuv_frame(&img, 1, None);
    f.rotation_degrees = 45;
    assert_eq!(
        kind(&scanner.push_frame(f).expect_err("rotation")),
        ErrorKind::InvalidInput
    );
    // No server configured.
    let e = block_on(scanner.sync_now()).expect_err("no server");
    assert_eq!(kind(&e), ErrorKind::InvalidInput);
    // Corrupt model bytes and an unopenable store.
    let mut c = config(&dir.path().join("other.db"));
    c.reader = ModelSource::Bytes {
        bytes: b"not onnx".to_vec(),
    };
    assert_eq!(kind(&Scanner::new(c).expect_err("model")), ErrorKind::Model);
    let c = config(&dir.path().join("missing-dir/x/device.db"));
    assert_eq!(
        kind(&Scanner::new(c).expect_err("store")),
        ErrorKind::Storage
    );
}

#[test]
fn an_unreachable_server_is_a_network_error_and_rows_stay_pending() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("device.db");
    // A read recorded offline (a scanner without a server)...
    {
        let scanner = scanner_with(&db);
        let rec = Arc::new(Recorder::default());
        let _h = scanner.subscribe(rec.clone()).expect("subscribe");
        block_on(scanner.start_session(session())).expect("session");
        let pass = vehicle_pass(&mut Rng::new(SEED), 12, 30.0, 80.0);
        for (i, img) in pass.frames.iter().enumerate() {
            let ts = 1_767_000_000_000 + 33 * i as i64;
            push_all(&scanner, yuv_frame(img, ts, gps(ts)));
        }
        scanner.flush().expect("flush");
        assert!(rec.wait(Duration::from_secs(20), |s| !s.reads.is_empty()));
        block_on(scanner.end_session()).expect("end");
    }
    // ...then the same store with a server on a port nothing listens on.
    let mut c = config(&db);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    c.server_url = Some(format!("http://127.0.0.1:{port}"));
    c.device_token = Some("pwd_test".into());
    let scanner = Scanner::new(c).expect("scanner");
    let rec = Arc::new(Recorder::default());
    let _h = scanner.subscribe(rec.clone()).expect("subscribe");
    assert_eq!(scanner.pending_uploads().expect("status").due, 1);
    // With a server, a session needs the server: no silent offline scanning.
    let e = block_on(scanner.start_session(session())).expect_err("no server session");
    assert_eq!(kind(&e), ErrorKind::Network, "{e}");
    assert!(scanner.current_session().is_none());
    let e = block_on(scanner.sync_now()).expect_err("unreachable");
    assert_eq!(kind(&e), ErrorKind::Network, "{e}");
    assert_eq!(scanner.pending_uploads().expect("status").pending, 1);
    assert!(rec.wait(Duration::from_secs(5), |s| {
        s.syncs.iter().any(|x| x.phase == SyncPhase::Failed)
    }));
}

#[test]
fn dropping_the_scanner_releases_it_and_ends_subscriptions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let scanner = scanner_with(&dir.path().join("device.db"));
    let rec = Arc::new(Recorder::default());
    let handle = scanner.subscribe(rec.clone()).expect("subscribe");
    assert!(handle.is_active());
    assert!(live_scanners() >= 1);
    // The listener is held by its delivery thread (plus ours).
    assert_eq!(Arc::strong_count(&rec), 2);
    drop(scanner);
    assert!(!handle.is_active());
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while Arc::strong_count(&rec) > 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "listener not released"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // The store is closed: it can be reopened at once.
    let again = scanner_with(&dir.path().join("device.db"));
    drop(again);
}

#[test]
fn frames_pushed_while_busy_are_dropped_not_queued() {
    let dir = tempfile::tempdir().expect("tempdir");
    let scanner = scanner_with(&dir.path().join("device.db"));
    block_on(scanner.start_session(session())).expect("session");
    let pass = vehicle_pass(&mut Rng::new(SEED), 2, 30.0, 80.0);
    let frame = yuv_frame(&pass.frames[0], 1_767_000_000_000, None);
    let mut outcomes = Vec::new();
    for i in 0..50 {
        let mut f = frame.clone();
        f.timestamp_ms += i;
        outcomes.push(scanner.push_frame(f).expect("push"));
    }
    let accepted = outcomes
        .iter()
        .filter(|o| **o == PushOutcome::Accepted)
        .count();
    let stats = scanner.frame_stats();
    assert!((1..50).contains(&accepted), "accepted {accepted}");
    assert_eq!(stats.dropped as usize, 50 - accepted);
    assert_eq!(stats.pushed, 50);
}

#[test]
fn frames_read_in_place_give_the_same_reads() {
    let pass = vehicle_pass(&mut Rng::new(SEED), 12, 30.0, 80.0);
    let t0 = 1_767_000_000_000i64;
    for bgra in [false, true] {
        let dir = tempfile::tempdir().expect("tempdir");
        let scanner = scanner_with(&dir.path().join("device.db"));
        let rec = Arc::new(Recorder::default());
        let _handle = scanner.subscribe(rec.clone()).expect("subscribe");
        block_on(scanner.start_session(session())).expect("session");
        for (i, img) in pass.frames.iter().enumerate() {
            let ts = t0 + 33 * i as i64;
            let frame = if bgra {
                bgra_frame(img, ts)
            } else {
                yuv_frame(img, ts, gps(ts))
            };
            let buffers = in_place(&frame);
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            while scanner.push_frame_buffers(buffers).expect("push") == PushOutcome::Dropped {
                assert!(std::time::Instant::now() < deadline, "never accepted");
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        scanner.flush().expect("flush");
        assert!(rec.wait(Duration::from_secs(20), |s| !s.reads.is_empty()));
        let s = rec.seen.lock().expect("lock");
        assert_eq!(s.reads[0].plate, pass.text, "bgra: {bgra}");
        assert_eq!(scanner.frame_stats().processed, pass.frames.len() as u64);
    }
}

#[test]
fn bad_in_place_planes_are_invalid_input() {
    let dir = tempfile::tempdir().expect("tempdir");
    let scanner = scanner_with(&dir.path().join("device.db"));
    block_on(scanner.start_session(session())).expect("session");
    let pass = vehicle_pass(&mut Rng::new(SEED), 2, 30.0, 80.0);
    let frame = bgra_frame(&pass.frames[0], 1_767_000_000_000);
    let good = in_place(&frame);
    let BufferPixels::Bgra { plane } = good.pixels else {
        panic!("a BGRA frame")
    };
    for bad in [
        BufferPlane {
            address: 0,
            ..plane
        },
        BufferPlane {
            len: plane.len / 2,
            ..plane
        },
        BufferPlane {
            row_stride: 100,
            ..plane
        },
        BufferPlane {
            address: u64::MAX - 8,
            ..plane
        },
    ] {
        let f = BufferFrame {
            pixels: BufferPixels::Bgra { plane: bad },
            ..good
        };
        assert_eq!(
            kind(&scanner.push_frame_buffers(f).expect_err("bad plane")),
            ErrorKind::InvalidInput
        );
    }
}
