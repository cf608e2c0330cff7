//! The facade against the real server on loopback: sign-in with and without the rules of
//! behaviour acknowledged (device registration, reuse of a registration, refusals), sessions
//! opened and closed on the server, a hot list published on the server reaching the scanner
//! through `sync_now` (signature verified against the pinned key) so that a pushed frame of a
//! listed plate alerts, retro-hits on reads already stored when a plate is listed again, a
//! tampered list refused with the stored one kept, and the device token renewed by `sync_now`.

mod common;
mod loopback;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use loopback::Server;
use platewatch_ffi::*;
// The scene renderer of `platewatch demo`, compiled in directly (not the whole CLI crate).
#[path = "../../cli/src/scene.rs"]
#[allow(dead_code, clippy::all)]
mod scene;
use scene::{Rng, vehicle_pass};

/// A pass the models read exactly (as in scan.rs).
const SEED: u64 = 5;
const OFFICER: &str = "ofc.lee";
const PASSWORD: &str = "correct horse battery 42";

fn request(server: &Server, ack: Option<i64>) -> SignInRequest {
    SignInRequest {
        server_url: server.base.clone(),
        user: OFFICER.into(),
        password: PASSWORD.into(),
        acknowledge_rules_version: ack,
        device_name: "test phone".into(),
        existing_device: None,
    }
}

fn signed_in(r: Result<SignInResult, PlatewatchError>) -> (DeviceRegistration, bool) {
    match r {
        Ok(SignInResult::SignedIn {
            device, registered, ..
        }) => (device, registered),
        other => panic!("expected SignedIn, got {other:?}"),
    }
}

#[test]
fn sign_in_registers_the_device_and_requires_the_current_rules() {
    let server = Server::start();
    server.add_officer(OFFICER, PASSWORD);

    // No rules yet: signed in without acknowledging anything; the device is registered.
    match block_on(sign_in(request(&server, None))).expect("sign in") {
        SignInResult::SignedIn {
            device,
            registered,
            role,
            rules_version,
        } => {
            assert!(registered);
            assert_eq!((role.as_str(), rules_version), ("officer", None));
            assert!(device.device_token.starts_with("pwd_"));
            assert_eq!(device.device_name, "test phone");
            // Neither the password nor the token shows in Debug output.
            let shown = format!("{:?} {device:?}", request(&server, None));
            assert!(!shown.contains(PASSWORD) && !shown.contains(&device.device_token));
            assert_eq!(
                block_on(fetch_rules(server.base.clone(), device.device_token)),
                Ok(None)
            );
        }
        other => panic!("{other:?}"),
    }

    let text = "Scan only for a lawful purpose. Never share reads.";
    let version = server.set_rules(text);
    let rules = RulesOfBehaviour {
        version,
        text: text.into(),
    };
    // Without the acknowledgement, or with another version: the rules come back to be shown.
    for ack in [None, Some(version + 1)] {
        assert_eq!(
            block_on(sign_in(request(&server, ack))),
            Ok(SignInResult::RulesRequired {
                rules: rules.clone()
            })
        );
    }
    // Acknowledged: signed in and registered.
    let (device, registered) = signed_in(block_on(sign_in(request(&server, Some(version)))));
    assert!(registered);
    // The login screen can show the current rules with the device token.
    assert_eq!(
        block_on(fetch_rules(
            server.base.clone(),
            device.device_token.clone()
        )),
        Ok(Some(rules.clone()))
    );
    // The next sign-in keeps the registration while the server accepts its token...
    let mut again = request(&server, Some(version));
    again.existing_device = Some(device.clone());
    let (kept, registered) = signed_in(block_on(sign_in(again.clone())));
    assert!(!registered);
    assert_eq!(kept, device);
    // ...and registers the device anew when it does not.
    again.existing_device = Some(DeviceRegistration {
        device_token: "pwd_revoked".into(),
        ..device.clone()
    });
    let (fresh, registered) = signed_in(block_on(sign_in(again)));
    assert!(registered);
    assert_ne!(fresh.device_id, device.device_id);

    // A wrong password; an unknown server; nothing listening.
    let mut wrong = request(&server, Some(version));
    wrong.password = "not the password".into();
    let e = block_on(sign_in(wrong)).expect_err("wrong password");
    assert_eq!(e.kind(), ErrorKind::Unauthorized, "{e}");
    assert!(!e.to_string().contains("not the password"));
    let e = block_on(fetch_rules(server.base.clone(), "pwd_nope".into())).expect_err("token");
    assert_eq!(e.kind(), ErrorKind::Unauthorized, "{e}");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let mut away = request(&server, Some(version));
    away.server_url = format!("http://127.0.0.1:{port}");
    let e = block_on(sign_in(away)).expect_err("unreachable");
    assert_eq!(e.kind(), ErrorKind::Network, "{e}");
}

/// An officer signed in through the facade and a scanner on the server with `key` pinned.
fn scanner_for(
    server_url: &str,
    server: &Server,
    dir: &std::path::Path,
    key: Option<String>,
) -> Arc<Scanner> {
    let (device, _) = signed_in(block_on(sign_in(request(server, None))));
    let mut c = config(&dir.join("device.db"));
    c.server_url = Some(server_url.to_string());
    c.device_token = Some(device.device_token);
    c.hotlist_key = key;
    // The server's reason codes apply, not these.
    c.reason_codes = Vec::new();
    Scanner::new(c).expect("scanner")
}

/// Pushes the rendered pass as strided YUV frames and waits for its read.
fn scan_pass(scanner: &Scanner, rec: &Recorder, frames: &[image::RgbImage], t0: i64) {
    let before = rec.seen.lock().expect("lock").reads.len();
    for (i, img) in frames.iter().enumerate() {
        let ts = t0 + 33 * i as i64;
        push_all(scanner, yuv_frame(img, ts, gps(ts)));
    }
    scanner.flush().expect("flush");
    assert!(
        rec.wait(Duration::from_secs(30), |s| s.reads.len() > before),
        "no read"
    );
}

#[test]
fn a_hot_list_published_on_the_server_alerts_after_sync_now() {
    let server = Server::start();
    server.add_officer(OFFICER, PASSWORD);
    let pass = vehicle_pass(&mut Rng::new(SEED), 12, 30.0, 80.0);
    server.publish(
        "stolen",
        &format!("plate;category\n{};stolen\nZZZ999;wanted\n", pass.text),
        3600,
    );
    let dir = tempfile::tempdir().expect("tempdir");
    // Without a pinned key, hot lists are not synced (and the call says so).
    let scanner = scanner_for(&server.base, &server, dir.path(), None);
    let e = block_on(scanner.sync_now()).expect_err("no key pinned");
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(scanner.hotlist_status().expect("lists").is_empty());
    drop(scanner);

    // Trust on first use, asked for explicitly: the key the server presents is the
    // operator's.
    let token = match block_on(sign_in(request(&server, None))).expect("sign in") {
        SignInResult::SignedIn { device, .. } => device.device_token,
        other => panic!("{other:?}"),
    };
    let key = block_on(fetch_hotlist_key(server.base.clone(), token)).expect("key");
    assert_eq!(key.public_key, server.publisher_key());
    assert_eq!(
        hotlist_key_id(key.public_key.clone()),
        Ok(key.key_id.clone())
    );
    let scanner = scanner_for(&server.base, &server, dir.path(), Some(key.public_key));
    assert_eq!(scanner.hotlist_key_id(), Some(key.key_id));
    let rec = Arc::new(Recorder::default());
    let _h = scanner.subscribe(rec.clone()).expect("subscribe");

    let report = block_on(scanner.sync_now()).expect("sync");
    assert_eq!(
        report.hotlists,
        vec![HotlistSyncResult {
            list: "stolen".into(),
            previous_version: None,
            outcome: HotlistOutcome::Updated {
                version: 1,
                added: 2,
                removed: 0,
                delta: false
            },
        }]
    );
    assert_eq!(report.lists.len(), 1);
    assert_eq!((report.lists[0].entries, report.lists[0].stale), (2, false));
    assert!(rec.wait(Duration::from_secs(5), |s| {
        s.syncs
            .iter()
            .any(|x| x.phase == SyncPhase::Finished && x.report.hotlists.len() == 1)
    }));

    // The session is opened on the server with one of its reason codes.
    let codes = block_on(scanner.reason_codes()).expect("reason codes");
    assert!(codes.contains(&"patrol".to_string()), "{codes:?}");
    let mut bad = session();
    bad.reason_code = "curiosity".into();
    let e = block_on(scanner.start_session(bad)).expect_err("not a server reason");
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    let info = block_on(scanner.start_session(session())).expect("session");
    assert_eq!(info.reason_code, "patrol");

    // The plate published on the server alerts.
    scan_pass(&scanner, &rec, &pass.frames, 1_767_000_000_000);
    assert!(rec.wait(Duration::from_secs(10), |s| !s.alerts.is_empty()));
    let alert = rec.seen.lock().expect("lock").alerts[0].clone();
    assert_eq!(alert.read.plate, pass.text);
    let m = &alert.matches[0];
    assert_eq!(
        (m.list.as_str(), m.list_version, m.kind, m.stale),
        ("stolen", 1, MatchKind::Exact, false)
    );
    scanner.accept_alert(alert.alert_id).expect("accept");
    let end = block_on(scanner.end_session()).expect("end");
    assert!(end.ended_on_server);
    assert_eq!(end.id, info.id);

    // The next sync uploads the encounter; the list is current.
    let report = block_on(scanner.sync_now()).expect("sync");
    assert_eq!(report.stored, 1);
    assert_eq!(
        report.hotlists[0].outcome,
        HotlistOutcome::Unchanged { version: 1 }
    );
    // A delta removing the plate silences it at once.
    server.publish("stolen", "plate;category\nZZZ999;wanted\n", 3600);
    let report = block_on(scanner.sync_now()).expect("sync");
    assert_eq!(
        report.hotlists[0].outcome,
        HotlistOutcome::Updated {
            version: 2,
            added: 0,
            removed: 1,
            delta: true
        }
    );
    block_on(scanner.start_session(session())).expect("session");
    scan_pass(&scanner, &rec, &pass.frames, 1_767_000_100_000);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        rec.seen.lock().expect("lock").alerts.len(),
        1,
        "no new alert"
    );
    block_on(scanner.end_session()).expect("end");

    // Listed again: the reads already on the device are retro-hits, recorded and delivered
    // as alerts marked `retro`.
    server.publish(
        "stolen",
        &format!("plate;category\n{};stolen\nZZZ999;wanted\n", pass.text),
        3600,
    );
    let report = block_on(scanner.sync_now()).expect("sync");
    assert!(report.retro_hits >= 1, "{report:?}");
    assert!(rec.wait(Duration::from_secs(5), |s| s.alerts.len() > 1));
    let seen = rec.seen.lock().expect("lock");
    let retro: Vec<_> = seen.alerts.iter().filter(|a| a.retro).collect();
    // One alert per encounter that was hit, however many entries hit it.
    assert!(
        !retro.is_empty() && retro.len() as u64 <= report.retro_hits,
        "{} retro alerts for {} hits",
        retro.len(),
        report.retro_hits
    );
    for a in retro {
        assert_eq!(a.read.plate, pass.text);
        assert!(a.read.stored && !a.crop_png.is_empty());
        assert_eq!(
            (a.matches[0].list.as_str(), a.matches[0].list_version),
            ("stolen", 3)
        );
    }
    assert!(!seen.alerts[0].retro, "the live alert is not a retro-hit");
}

#[test]
fn a_tampered_hot_list_is_refused_and_the_stored_one_kept() {
    let server = Server::start();
    server.add_officer(OFFICER, PASSWORD);
    let pass = vehicle_pass(&mut Rng::new(SEED), 12, 30.0, 80.0);
    server.publish(
        "stolen",
        &format!("plate;category\n{};stolen\nZZZ999;wanted\n", pass.text),
        3,
    );
    // The scanner talks to the server through a man-in-the-middle; the key is the operator's.
    let mitm = server.tamperer();
    let dir = tempfile::tempdir().expect("tempdir");
    let scanner = scanner_for(
        &mitm.base,
        &server,
        dir.path(),
        Some(server.publisher_key()),
    );
    let rec = Arc::new(Recorder::default());
    let _h = scanner.subscribe(rec.clone()).expect("subscribe");
    let report = block_on(scanner.sync_now()).expect("sync");
    assert!(matches!(
        report.hotlists[0].outcome,
        HotlistOutcome::Updated { version: 1, .. }
    ));

    // Version 2 adds an entry; on the way, one character of it is changed.
    server.publish(
        "stolen",
        &format!(
            "plate;category\n{};stolen\nZZZ999;wanted\nYYY888;stolen\n",
            pass.text
        ),
        3,
    );
    mitm.rewrite("YYY888", "YYY889");
    let report = block_on(scanner.sync_now()).expect("a refusal is an outcome, not an error");
    let HotlistOutcome::Refused { reason } = &report.hotlists[0].outcome else {
        panic!("not refused: {report:?}");
    };
    assert!(reason.contains("signature"), "{reason}");
    assert!(
        !reason.contains("YYY"),
        "no entry text in the reason: {reason}"
    );
    assert_eq!(report.refused(), 1);
    assert!(
        rec.wait(Duration::from_secs(5), |s| s.syncs.iter().any(|x| {
            x.phase == SyncPhase::Finished
                && matches!(
                    x.report.hotlists.first().map(|h| &h.outcome),
                    Some(HotlistOutcome::Refused { .. })
                )
        }))
    );
    // The stored list is the one verified before, unchanged.
    let lists = scanner.hotlist_status().expect("lists");
    assert_eq!((lists[0].version, lists[0].entries), (1, 2));

    // It still alerts, and once past its maximum age the alert says the list is stale.
    std::thread::sleep(Duration::from_millis(4_500));
    assert!(scanner.hotlist_status().expect("lists")[0].stale);
    block_on(scanner.start_session(session())).expect("session");
    scan_pass(&scanner, &rec, &pass.frames, 1_767_000_000_000);
    assert!(rec.wait(Duration::from_secs(10), |s| !s.alerts.is_empty()));
    let alert = rec.seen.lock().expect("lock").alerts[0].clone();
    let m = &alert.matches[0];
    assert_eq!(
        (m.list.as_str(), m.list_version, m.stale),
        ("stolen", 1, true)
    );
    block_on(scanner.end_session()).expect("end");
}

#[test]
fn sync_now_renews_the_device_token_past_half_its_life() {
    let server = Server::start();
    server.add_officer(OFFICER, PASSWORD);
    let (device, _) = signed_in(block_on(sign_in(request(&server, None))));
    let (issued, expires) = (
        device.issued_at_ms.expect("issued at"),
        device.expires_at_ms.expect("expires at"),
    );
    assert!(expires > issued, "{device:?}");
    let dir = tempfile::tempdir().expect("tempdir");
    let scanner_with = |device: DeviceRegistration| {
        let mut c = config(&dir.path().join("device.db"));
        c.server_url = Some(server.base.clone());
        c.device = Some(device);
        c.hotlist_key = Some(server.publisher_key());
        c.reason_codes = Vec::new();
        Scanner::new(c).expect("scanner")
    };

    // A fresh token is kept as it is.
    let scanner = scanner_with(device.clone());
    let report = block_on(scanner.sync_now()).expect("sync");
    assert_eq!(report.renewed_device, None);
    drop(scanner);

    // Past half of its lifetime, the sync renews it and hands the new registration back.
    let old = DeviceRegistration {
        issued_at_ms: Some(issued - (expires - issued)),
        ..device.clone()
    };
    let scanner = scanner_with(old);
    let rec = Arc::new(Recorder::default());
    let _h = scanner.subscribe(rec.clone()).expect("subscribe");
    let report = block_on(scanner.sync_now()).expect("sync");
    let renewed = report.renewed_device.clone().expect("renewed");
    assert_eq!(
        (renewed.device_id, renewed.device_name.as_str()),
        (device.device_id, device.device_name.as_str())
    );
    assert_ne!(renewed.device_token, device.device_token);
    assert!(renewed.expires_at_ms >= device.expires_at_ms);
    assert!(!format!("{report:?}").contains(&renewed.device_token));
    // Listeners see the same report.
    assert!(rec.wait(Duration::from_secs(5), |s| {
        s.syncs
            .iter()
            .any(|x| x.phase == SyncPhase::Finished && x.report.renewed_device.is_some())
    }));
    // The next sync runs on the new token and does not renew again.
    let report = block_on(scanner.sync_now()).expect("sync with the new token");
    assert_eq!(report.renewed_device, None);
    // The renewed registration works on its own (a restarted app passes it).
    drop(scanner);
    let scanner = scanner_with(renewed.clone());
    let report = block_on(scanner.sync_now()).expect("sync after a restart");
    assert_eq!(report.renewed_device, None);

    // A token the server refuses is Unauthorized, and no renewal is handed back.
    drop(scanner);
    let scanner = scanner_with(DeviceRegistration {
        device_token: "pwd_revoked".into(),
        issued_at_ms: Some(0),
        ..renewed
    });
    let e = block_on(scanner.sync_now()).expect_err("refused token");
    assert_eq!(e.kind(), ErrorKind::Unauthorized, "{e}");
}
