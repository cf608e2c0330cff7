//! Unit tests of the encounter store and outbox: session round trip, the alert hold released
//! by a disposition, retries and rejections, purge, the lifetime count and encrypted blobs.

use platewatch_core::encounter::{Disposition, Encounter};
use platewatch_core::hotlist::{Category, Match, MatchKind, StateCheck};
use platewatch_core::session::{GpsFix, Session, SessionRequest};
use platewatch_core::{BBox, GrayImage, PlateRead, Quad};
use uuid::Uuid;

use crate::{Ack, EncounterStore, Evidence, ImageKey, Store, StoreError, UploadState};

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
        bbox,
        quad: Quad::from_bbox(&bbox),
        first_seen_ms: 0,
        last_seen_ms: 0,
        frames: 1,
        crop: GrayImage::default(),
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
