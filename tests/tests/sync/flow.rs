//! The outbox flow: a session with on-behalf-of, encounters with encrypted images, an alert
//! held for its disposition, a misread correction, a row the server rejects (kept, surfaced,
//! never retried), resumption after reopening the store, and purge only after the grace period.
//! Also the server's reason code list as the device client fetches it.

use std::time::Duration;

use platewatch_core::encounter::{Disposition, Encounter};
use platewatch_core::hotlist::{Category, Match, MatchKind, StateCheck};
use platewatch_core::session::{GpsFix, Session, SessionRequest};
use platewatch_store::{EncounterStore, Store, UploadState};
use platewatch_sync::{
    Backoff, ClientConfig, ServerClient, SyncError, Uploader, UploaderConfig, now_ms,
};
use platewatch_tests::sync_fixture;
use uuid::Uuid;

use crate::common::{BACKENDS, Backend, OFFICER, PARTNER, TestServer};

fn alert_match() -> Match {
    Match {
        id: 1,
        list: 1,
        category: Category::StolenVehicle,
        priority: 90,
        kind: MatchKind::Exact,
        score: 1.0,
        lookalikes: 0,
        edit: None,
        state: StateCheck::Agree,
        alert: true,
    }
}

fn uploader(store: EncounterStore, server: &TestServer, grace: Duration) -> Uploader {
    let mut config = UploaderConfig::new(ClientConfig::new(
        server.base.clone(),
        server.device_token.clone(),
    ));
    config.batch_rows = 4;
    config.backoff = Backoff {
        initial: Duration::from_millis(10),
        max: Duration::from_millis(100),
    };
    config.purge_grace = grace;
    Uploader::new(store, config).expect("uploader")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_flow_on_both_backends() {
    for backend in BACKENDS {
        let server = TestServer::start(backend).await;
        let b = server.backend;
        let dir = tempfile::tempdir().expect("dir");
        let db = dir.path().join("device.db");
        let enc = EncounterStore::new(Store::open(&db).await.expect("store"))
            .with_image_key(sync_fixture::image_key())
            .with_alert_hold_ms(60_000);
        // The device validates against the list it was given; this one holds a code the
        // server does not know, so the server rejects that session's rows.
        let codes = ["patrol", "training"];
        let mut session = Session::start(
            Uuid::new_v4(),
            &SessionRequest {
                user: OFFICER.into(),
                on_behalf_of: Some(PARTNER.into()),
                reason_code: "patrol".into(),
                case_number: Some("2026-000777".into()),
                justification: None,
                device_id: "phone-1".into(),
            },
            &codes,
            now_ms(),
        )
        .expect("session");
        session
            .record_fix(GpsFix::new(40.7128, -74.006, Some(3.0), now_ms()).expect("fix"))
            .expect("fix");
        enc.save_session(&session).await.expect("save session");
        server.open_session(&session).await;
        let mut rogue = Session::start(
            Uuid::new_v4(),
            &SessionRequest {
                reason_code: "training".into(),
                on_behalf_of: None,
                ..session.request()
            },
            &codes,
            now_ms(),
        )
        .expect("session");
        rogue
            .record_fix(GpsFix::new(40.0, -74.0, None, now_ms()).expect("fix"))
            .expect("fix");
        enc.save_session(&rogue).await.expect("save");

        let evidence = sync_fixture::evidence();
        let mut ids = Vec::new();
        for i in 0..6u64 {
            let read = sync_fixture::plate_read(&sync_fixture::plate_for(i));
            let e =
                Encounter::from_read(Uuid::new_v4(), &read, &session, "rear", now_ms(), None, &[])
                    .expect("encounter");
            enc.record(&e, &evidence, &[], now_ms())
                .await
                .expect("record");
            ids.push(e.id);
        }
        // An alert: held until the officer decides.
        let read = sync_fixture::plate_read("ALERT1");
        let alert = Encounter::from_read(
            Uuid::new_v4(),
            &read,
            &session,
            "rear",
            now_ms(),
            None,
            &[alert_match()],
        )
        .expect("encounter");
        assert_eq!(alert.match_tags, ["stolen_vehicle"]);
        enc.record(&alert, &evidence, &[alert_match()], now_ms())
            .await
            .expect("record alert");
        let read = sync_fixture::plate_read("ROGUE1");
        let bad = Encounter::from_read(Uuid::new_v4(), &read, &rogue, "rear", now_ms(), None, &[])
            .expect("encounter");
        enc.record(&bad, &evidence, &[], now_ms())
            .await
            .expect("record");
        // Images are encrypted at rest: the raw blob is not the PNG.
        let raw: Vec<u8> =
            sqlx::query_scalar("SELECT bytes FROM encounter_images WHERE kind = 'crop' LIMIT 1")
                .fetch_one(enc.store().pool())
                .await
                .expect("blob");
        assert!(
            !raw.windows(4).any(|w| w == b"\x89PNG"),
            "{b}: crop stored in the clear"
        );

        // Restart the device before anything is sent: everything is still there.
        drop(enc);
        let enc = EncounterStore::new(Store::open(&db).await.expect("reopen"))
            .with_image_key(sync_fixture::image_key())
            .with_alert_hold_ms(60_000);
        let up = uploader(enc.clone(), &server, Duration::from_secs(3600));
        let totals = up.drain().await.expect("drain");
        assert_eq!((totals.stored, totals.rejected), (6, 1), "{b}: {totals:?}");
        let status = enc.outbox_status(now_ms()).await.expect("status");
        assert_eq!(
            (status.pending, status.acked, status.rejected),
            (1, 6, 1),
            "{b}"
        );

        // The rejection is surfaced with the server's reason and never sent again.
        let rejected = enc.rejected().await.expect("rejected");
        assert_eq!(rejected.len(), 1);
        assert_eq!(rejected[0].id, bad.id);
        assert!(
            rejected[0].reason.contains("reason_code"),
            "{b}: {rejected:?}"
        );
        assert!(!rejected[0].reason.contains("ROGUE1"));

        // The officer calls the alert a misread; it goes up with the correction.
        enc.set_disposition(
            alert.id,
            &Disposition::misread("ALERT7", now_ms()).expect("d"),
        )
        .await
        .expect("dispose");
        let totals = up.drain().await.expect("drain");
        assert_eq!((totals.rows, totals.stored), (1, 1), "{b}: {totals:?}");
        assert!(
            enc.set_disposition(alert.id, &Disposition::accept(now_ms()))
                .await
                .is_err(),
            "{b}: a disposition after the upload is refused"
        );
        let row = server.row(&alert.id.to_string()).await.expect("alert row");
        assert_eq!(row.plate, "ALERT7");
        assert_eq!(row.alert_decision.as_deref(), Some("rejected"));
        assert_eq!(row.alert_reason.as_deref(), Some("misread"));
        assert!(
            row.match_tags.contains("stolen_vehicle")
                && row.match_tags.contains("misread_corrected")
        );
        assert_eq!(row.on_behalf_of.as_deref(), Some(PARTNER), "{b}");
        assert_eq!(row.case_number.as_deref(), Some("2026-000777"));
        assert_eq!(row.reason_code, "patrol");
        assert_eq!(
            row.crop, evidence.crop.bytes,
            "{b}: decrypted before upload"
        );
        assert_eq!(
            row.context_image.as_deref(),
            evidence.context.as_ref().map(|c| c.bytes.as_slice())
        );

        // Nothing is due any more; the rejected row stays.
        assert_eq!(up.drain().await.expect("drain").rows, 0);
        // Purge waits for the grace period.
        assert_eq!(up.purge(now_ms()).await.expect("purge"), 0, "{b}");
        let st = enc.get(ids[0]).await.expect("get").expect("still here");
        assert_eq!(st.state, UploadState::Acked);
        assert_eq!(
            up.purge(now_ms() + 3_600_001).await.expect("purge"),
            7,
            "{b}"
        );
        assert!(enc.get(ids[0]).await.expect("get").is_none());
        let status = enc.outbox_status(now_ms()).await.expect("status");
        assert_eq!(
            (
                status.pending,
                status.acked,
                status.rejected,
                status.recorded_total
            ),
            (0, 0, 1, 8)
        );
        let reads: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM reads")
            .fetch_one(enc.store().pool())
            .await
            .expect("reads");
        assert_eq!(reads, 1, "{b}: reads of purged encounters are gone");

        // Without the key the images cannot be read.
        let keyless = EncounterStore::new(enc.store().clone());
        assert!(keyless.get(bad.id).await.is_err());

        let counts = server.plate_counts().await;
        assert_eq!(counts.values().sum::<i64>(), 7, "{b}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reason_codes_come_from_the_server_in_order() {
    for backend in BACKENDS {
        let server = TestServer::start(backend).await;
        let b = server.backend;
        let client = ServerClient::new(&ClientConfig::new(
            server.base.clone(),
            server.device_token.clone(),
        ))
        .expect("client");
        assert_eq!(
            client.reason_codes().await.expect("reason codes"),
            platewatch_server::config::DEFAULT_REASON_CODES,
            "{b}"
        );
        let stranger =
            ServerClient::new(&ClientConfig::new(server.base.clone(), "pwd_00")).expect("client");
        assert!(
            matches!(
                stranger.reason_codes().await,
                Err(SyncError::Unauthorized { status: 401, .. })
            ),
            "{b}"
        );
        let nowhere =
            ServerClient::new(&ClientConfig::new("http://127.0.0.1:9", "pwd_00")).expect("client");
        assert!(
            matches!(nowhere.reason_codes().await, Err(SyncError::Network(_))),
            "{b}"
        );
    }
}

/// A device token is renewed over HTTP: the new one works, the old one through the grace, and
/// the renewal is due again only after half of the new lifetime.
#[tokio::test]
async fn a_device_token_renews_and_the_old_one_lasts_through_the_grace() {
    let server = TestServer::start(Backend::Sqlite).await;
    let client =
        ServerClient::new(&ClientConfig::new(&server.base, &server.device_token)).expect("client");
    let device = platewatch_sync::account::Device {
        id: 1,
        name: "sync test phone".into(),
        token: server.device_token.clone(),
        expires_at_ms: None,
        issued_at_ms: None,
    };
    assert!(device.renewal_due(0), "an unknown expiry is renewed");
    let renewed = platewatch_sync::account::renew_device(&client, &device)
        .await
        .expect("renew");
    assert_ne!(renewed.token, device.token);
    let now = platewatch_sync::now_ms();
    assert!(!renewed.renewal_due(now));
    let expires = renewed.expires_at_ms.expect("expiry");
    assert!(renewed.renewal_due(now + (expires - now) / 2 + 1_000));
    for token in [&renewed.token, &device.token] {
        let c = ServerClient::new(&ClientConfig::new(&server.base, token)).expect("client");
        let codes = c.get("/v1/reason-codes").await.expect("get");
        assert_eq!(codes.status, 200);
    }
}
