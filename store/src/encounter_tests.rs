//! Unit tests of the encounter store and outbox: session round trip, the alert hold released
//! by a disposition, retries and rejections, purge, the lifetime count and encrypted blobs; the
//! alert list and retro-hits of new entries on encounters still on the device.

use platewatch_core::encounter::{Disposition, Encounter};
use platewatch_core::hotlist::{
    Category, Entry, Match, MatchKind, MatcherConfig, PlatePattern, Source, StateCheck,
};
use platewatch_core::session::{GpsFix, Session, SessionRequest};
use platewatch_core::{BBox, GrayImage, PlateRead, Quad};
use uuid::Uuid;

use crate::{Ack, EncounterStore, Evidence, ImageKey, ListMeta, Store, StoreError, UploadState};

fn session() -> Session {
    let mut s = Session::start(
        Uuid::new_v4(),
        &SessionRequest {
            user: "ofc.unit".into(),
            on_behalf_of: None,
            reason_code: "patrol".into(),
            case_number: None,
            justification: Some("unit test".into()),
            device_id: "dev-1".into(),
        },
        &["patrol"],
        1_000,
    )
    .unwrap();
    s.record_fix(GpsFix::new(1.0, 2.0, None, 1_001).unwrap())
        .unwrap();
    s
}

fn encounter(s: &Session, text: &str, matches: &[Match]) -> Encounter {
    let bbox = BBox::new(10.0, 10.0, 40.0, 12.0);
    let read = PlateRead {
        track_id: 1,
        text: text.into(),
        char_confidences: vec![0.5; text.len()],
        confidence: 0.5,
        state: None,
        state_confidence: 0.0,
        region: None,
        region_confidence: 0.0,
        bbox,
        quad: Quad::from_bbox(&bbox),
        first_seen_ms: 0,
        last_seen_ms: 0,
        frames: 1,
        crop: GrayImage::default(),
        context: None,
    };
    Encounter::from_read(Uuid::new_v4(), &read, s, "front", 2_000, None, matches).unwrap()
}

fn evidence() -> Evidence {
    let img = GrayImage {
        width: 8,
        height: 4,
        pixels: (0..32).collect(),
    };
    Evidence::encode(&img, Some(&img)).unwrap()
}

fn alert() -> Match {
    Match {
        id: 3,
        list: 1,
        category: Category::Wanted,
        priority: 80,
        kind: MatchKind::Exact,
        score: 1.0,
        lookalikes: 0,
        edit: None,
        state: StateCheck::Unknown,
        alert: true,
    }
}

#[tokio::test]
async fn outbox_lifecycle() {
    let store = Store::open_in_memory().await.unwrap();
    let enc = EncounterStore::new(store)
        .with_image_key(ImageKey::from_bytes([1; 32]))
        .with_alert_hold_ms(10_000);
    let s = session();
    let orphan = encounter(&s, "ABC123", &[]);
    assert!(matches!(
        enc.record(&orphan, &evidence(), &[], 5_000).await,
        Err(StoreError::Invalid(_))
    ));
    enc.save_session(&s).await.unwrap();
    assert_eq!(enc.session(s.id()).await.unwrap().unwrap(), s);
    assert_eq!(enc.active_sessions().await.unwrap(), [s.id()]);

    let plain = encounter(&s, "ABC123", &[]);
    let hit = encounter(&s, "WANTED1", &[alert()]);
    enc.record(&plain, &evidence(), &[], 5_000).await.unwrap();
    enc.record(&hit, &evidence(), &[alert()], 5_000)
        .await
        .unwrap();
    // The alert waits for its disposition.
    let due: Vec<Uuid> = enc
        .due(5_000, 10)
        .await
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(due, [plain.id]);
    enc.set_disposition(hit.id, &Disposition::accept(6_000))
        .await
        .unwrap();
    let due = enc.due(6_000, 10).await.unwrap();
    assert_eq!(due.len(), 2);
    assert_eq!(due[1].upload.alert.as_ref().unwrap().decision, "accepted");
    assert_eq!(due[1].upload.match_tags, ["wanted"]);
    let got = enc.get(hit.id).await.unwrap().unwrap();
    assert_eq!(got.evidence, evidence());
    assert_eq!(got.encounter, hit);

    // A failed attempt is counted and scheduled; a rejection is final.
    enc.mark_retry(&[(plain.id, 9_000)], "HTTP 503")
        .await
        .unwrap();
    assert!(
        enc.due(8_999, 10)
            .await
            .unwrap()
            .iter()
            .all(|r| r.id != plain.id)
    );
    let again = enc.due(9_000, 10).await.unwrap();
    assert_eq!(again[0].attempts, 1);
    enc.mark_rejected(
        &[(
            hit.id,
            "reason_code is not one of the configured reason codes".into(),
        )],
        9_500,
    )
    .await
    .unwrap();
    enc.mark_acked(&[(plain.id, Ack::Duplicate)], 10_000)
        .await
        .unwrap();
    assert!(enc.due(i64::MAX, 10).await.unwrap().is_empty());
    assert!(
        enc.set_disposition(hit.id, &Disposition::accept(1))
            .await
            .is_err()
    );
    let st = enc.outbox_status(10_000).await.unwrap();
    assert_eq!(
        (st.pending, st.acked, st.rejected, st.recorded_total),
        (0, 1, 1, 2)
    );
    assert_eq!(enc.rejected().await.unwrap()[0].id, hit.id);

    // Purge only what was acknowledged before the cut-off; the count of all time stays.
    assert_eq!(enc.purge_acked(9_999).await.unwrap(), 0);
    assert_eq!(enc.purge_acked(10_000).await.unwrap(), 1);
    assert!(enc.get(plain.id).await.unwrap().is_none());
    assert_eq!(
        enc.get(hit.id).await.unwrap().unwrap().state,
        UploadState::Rejected
    );
    assert_eq!(enc.recorded_total().await.unwrap(), 2);

    // The wrong key cannot open the blobs.
    let wrong =
        EncounterStore::new(enc.store().clone()).with_image_key(ImageKey::from_bytes([2; 32]));
    assert!(matches!(wrong.get(hit.id).await, Err(StoreError::Crypto)));
}

#[tokio::test]
async fn alert_list_and_retro_hits_on_stored_encounters() {
    let enc =
        EncounterStore::new(Store::open_in_memory().await.unwrap()).with_alert_hold_ms(10_000);
    let s = session();
    enc.save_session(&s).await.unwrap();
    let plain = encounter(&s, "ABC123", &[]);
    let hit = encounter(&s, "WANTED1", &[alert()]);
    let sent = encounter(&s, "XYZ789", &[]);
    for (e, m) in [(&plain, vec![]), (&hit, vec![alert()]), (&sent, vec![])] {
        enc.record(e, &evidence(), &m, 5_000).await.unwrap();
    }
    let alerts = enc.alerts().await.unwrap();
    assert_eq!(alerts.len(), 1);
    let a = &alerts[0];
    assert_eq!((a.id, a.plate.as_str()), (hit.id, "WANTED1"));
    assert!(a.waiting());
    assert_eq!(a.matches.len(), 1);
    assert_eq!(a.matches[0].kind, "exact");
    assert!(!a.matches[0].retro);
    // The entry is not in this store: no list name or priority, but the match is shown.
    assert_eq!(
        (a.matches[0].list.as_deref(), a.matches[0].priority),
        (None, None)
    );
    assert!(!format!("{a:?}").contains("WANTED1"));
    enc.set_disposition(hit.id, &Disposition::reject("not the car", 6_000).unwrap())
        .await
        .unwrap();
    let a = enc.alerts().await.unwrap().remove(0);
    assert!(!a.waiting());
    assert_eq!(
        a.disposition.unwrap().reason.as_deref(),
        Some("not the car")
    );
    enc.mark_acked(&[(sent.id, Ack::Stored)], 7_000)
        .await
        .unwrap();

    // A list arrives holding two plates read earlier: one encounter still pending, one sent.
    let mut stolen = Entry::new(
        PlatePattern::parse("ABC123").unwrap(),
        Category::StolenVehicle,
        Source::Agency,
    );
    stolen.priority = 70;
    let other = Entry::new(
        PlatePattern::parse("XYZ789").unwrap(),
        Category::Wanted,
        Source::Agency,
    );
    let applied = enc
        .store()
        .apply_snapshot(
            &ListMeta::new("hot", Source::Agency),
            1,
            None,
            &[stolen, other],
            8,
        )
        .await
        .unwrap();
    let retro = enc
        .retro_alerts(&applied.added, 8_000, MatcherConfig::default())
        .await
        .unwrap();
    assert_eq!(retro.len(), 2);
    let on_plain = retro
        .iter()
        .find(|r| r.encounter == Some(plain.id))
        .unwrap();
    assert!(on_plain.pending);
    assert_eq!(on_plain.matched.category, Category::StolenVehicle);
    let on_sent = retro.iter().find(|r| r.encounter == Some(sent.id)).unwrap();
    assert!(!on_sent.pending);
    // Raised once per read and entry.
    assert!(
        enc.retro_alerts(&applied.added, 9_000, MatcherConfig::default())
            .await
            .unwrap()
            .is_empty()
    );
    // The pending encounter is now an alert waiting for its disposition, tagged for upload.
    let alerts = enc.alerts().await.unwrap();
    let a = alerts.iter().find(|a| a.id == plain.id).unwrap();
    assert!(a.waiting());
    assert_eq!(a.matches[0].list.as_deref(), Some("hot"));
    assert_eq!(a.matches[0].priority, Some(70));
    assert_eq!(a.matches[0].entry_plate.as_deref(), Some("ABC123"));
    assert!(a.matches[0].retro);
    let sent_view = alerts.iter().find(|a| a.id == sent.id).unwrap();
    assert_eq!(sent_view.upload, UploadState::Acked);
    assert!(!sent_view.waiting());
    assert!(
        enc.due(8_000, 10)
            .await
            .unwrap()
            .iter()
            .all(|r| r.id != plain.id)
    );
    enc.set_disposition(plain.id, &Disposition::accept(8_500))
        .await
        .unwrap();
    let due = enc.due(8_500, 10).await.unwrap();
    let row = due.iter().find(|r| r.id == plain.id).unwrap();
    assert_eq!(row.upload.match_tags, ["retro_hit", "stolen_vehicle"]);
    assert_eq!(row.upload.alert.as_ref().unwrap().decision, "accepted");
}
