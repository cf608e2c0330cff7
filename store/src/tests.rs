//! Store tests against real SQLite files: snapshots and deltas applied atomically and
//! reflected in the matcher at once, version checks, expiry, staleness and retro-hits.

use super::*;
use platewatch_core::hotlist::{ImportOptions, import};

fn e(plate: &str, state: Option<&str>, category: Category) -> Entry {
    let mut x = Entry::new(
        PlatePattern::parse(plate).unwrap(),
        category,
        Source::Agency,
    );
    x.state = state.map(str::to_string);
    x
}

fn sure(text: &str) -> Vec<f32> {
    vec![0.99; text.len()]
}

async fn alerts(m: &Matcher, plate: &str, now: i64) -> Vec<Match> {
    let c = sure(plate);
    m.alerts(
        &Query {
            text: plate,
            confidences: &c,
            state: None,
            state_confidence: 0.0,
        },
        now,
    )
}

async fn file_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("device.db")).await.unwrap();
    (dir, store)
}

#[tokio::test]
async fn snapshot_then_delta() {
    let (_dir, s) = file_store().await;
    let meta = ListMeta::new("ncic", Source::Ncic);
    let a = s
        .apply_snapshot(
            &meta,
            1,
            None,
            &[
                e("7ABC123", Some("CA"), Category::StolenVehicle),
                e("8XYZ987", None, Category::Wanted),
            ],
            1000,
        )
        .await
        .unwrap();
    assert_eq!(a.added.len(), 2);
    let mut m = s.load_matcher(MatcherConfig::default()).await.unwrap();
    assert_eq!(alerts(&m, "7ABC123", 1000).await.len(), 1);

    // The delta removes one entry and adds another; the live matcher follows immediately.
    let d = s
        .apply_delta(
            "ncic",
            1,
            2,
            &[e("5NEW555", Some("NV"), Category::Felony)],
            &[EntryKey::from(&e(
                "7ABC123",
                Some("CA"),
                Category::StolenVehicle,
            ))],
            2000,
        )
        .await
        .unwrap();
    assert_eq!((d.added.len(), d.removed.len()), (1, 1));
    let fresh = s.entries_by_id(&d.added).await.unwrap();
    m.apply_delta(
        &d.removed,
        fresh.iter().map(|x| index_entry(x, x.list_id as u16)),
    )
    .unwrap();
    assert!(alerts(&m, "7ABC123", 2000).await.is_empty());
    assert_eq!(alerts(&m, "5NEW555", 2000).await.len(), 1);
    // A matcher loaded from the store agrees.
    let m2 = s.load_matcher(MatcherConfig::default()).await.unwrap();
    assert!(alerts(&m2, "7ABC123", 2000).await.is_empty());
    assert_eq!(m2.len(), 2);

    // Wrong base version: refused, nothing changes.
    let err = s
        .apply_delta(
            "ncic",
            1,
            3,
            &[e("6BAD666", None, Category::Gang)],
            &[],
            3000,
        )
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        StoreError::VersionMismatch {
            have: 2,
            base: 1,
            ..
        }
    ));
    assert_eq!(s.entries().await.unwrap().len(), 2);
    // Going back to an older snapshot is refused.
    assert!(matches!(
        s.apply_snapshot(&meta, 1, None, &[], 3000)
            .await
            .unwrap_err(),
        StoreError::OlderVersion { .. }
    ));
    assert!(matches!(
        s.apply_delta("nope", 1, 2, &[], &[], 0).await.unwrap_err(),
        StoreError::UnknownList(_)
    ));
}

#[tokio::test]
async fn snapshot_replaces_and_keeps_ids() {
    let (_dir, s) = file_store().await;
    let meta = ListMeta::new("state", Source::State);
    let a = s
        .apply_snapshot(
            &meta,
            5,
            Some(900),
            &[
                e("AAA111", None, Category::StolenPlate),
                e("BBB222", None, Category::StolenPlate),
            ],
            1000,
        )
        .await
        .unwrap();
    let mut second = e("BBB222", None, Category::StolenPlate);
    second.priority = 99;
    let b = s
        .apply_snapshot(
            &meta,
            6,
            None,
            &[second, e("CCC333", None, Category::Missing)],
            1100,
        )
        .await
        .unwrap();
    assert_eq!(b.removed, vec![a.added[0]]);
    assert_eq!(b.added.len(), 1);
    let all = s.entries().await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].id, a.added[1], "surviving entry keeps its id");
    assert_eq!(all[0].entry.priority, 99, "and takes the new fields");
    // Re-applying the same version is idempotent.
    let c = s
        .apply_snapshot(
            &meta,
            6,
            None,
            &[all[0].entry.clone(), all[1].entry.clone()],
            1200,
        )
        .await
        .unwrap();
    assert!(c.added.is_empty() && c.removed.is_empty());
}

#[tokio::test]
async fn failed_snapshot_changes_nothing() {
    let (_dir, s) = file_store().await;
    let meta = ListMeta::new("l", Source::Agency);
    s.apply_snapshot(&meta, 1, None, &[e("AAA111", None, Category::Custom)], 10)
        .await
        .unwrap();
    let mut bad = e("BBB222", None, Category::Custom);
    bad.priority = 101; // violates the CHECK constraint mid-transaction
    assert!(
        s.apply_snapshot(
            &meta,
            2,
            None,
            &[e("CCC333", None, Category::Custom), bad],
            20
        )
        .await
        .is_err()
    );
    let all = s.entries().await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].entry.plate.as_str(), "AAA111");
    assert_eq!(s.list_status(20).await.unwrap()[0].version, 1);
}

#[tokio::test]
async fn expiry_and_staleness() {
    let (_dir, s) = file_store().await;
    let mut meta = ListMeta::new("daily", Source::Agency);
    meta.max_age_secs = 3600;
    let mut x = e("7EXP777", None, Category::Wanted);
    x.expires_at = Some(5000);
    s.apply_snapshot(&meta, 1, None, &[x], 1000).await.unwrap();
    let m = s.load_matcher(MatcherConfig::default()).await.unwrap();
    assert_eq!(alerts(&m, "7EXP777", 4999).await.len(), 1);
    assert!(alerts(&m, "7EXP777", 5000).await.is_empty());
    assert_eq!(s.purge_expired(5000).await.unwrap().len(), 1);
    assert!(s.entries().await.unwrap().is_empty());

    let st = s.list_status(1000 + 3600).await.unwrap();
    assert!(!st[0].stale);
    let st = s.list_status(1000 + 3601).await.unwrap();
    assert!(st[0].stale && st[0].age_secs == 3601);
    s.mark_current("daily", 4601).await.unwrap();
    assert!(!s.list_status(4700).await.unwrap()[0].stale);
}

#[tokio::test]
async fn retro_hits_on_new_entries() {
    let (_dir, s) = file_store().await;
    let r1 = s
        .record_read("7ABC123", &sure("7ABC123"), Some("CA"), 0.9, 100)
        .await
        .unwrap();
    s.record_read("9ZZZ999", &sure("9ZZZ999"), None, 0.0, 200)
        .await
        .unwrap();
    let old = s
        .record_read("7ABC123", &sure("7ABC123"), None, 0.0, 10)
        .await
        .unwrap();
    let meta = ListMeta::new("hot", Source::Officer);
    let a = s
        .apply_snapshot(
            &meta,
            1,
            None,
            &[e("7ABC123", Some("CA"), Category::Amber)],
            300,
        )
        .await
        .unwrap();
    let hits = s
        .retro_hits(&a.added, 50, 300, MatcherConfig::default())
        .await
        .unwrap();
    assert_eq!(hits.len(), 1, "only reads inside the window");
    assert_eq!(hits[0].read_id, r1);
    assert_ne!(hits[0].read_id, old);
    assert_eq!(hits[0].matched.category, Category::Amber);
    // Raised once per read and entry.
    assert!(
        s.retro_hits(&a.added, 50, 301, MatcherConfig::default())
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn imported_file_round_trips() {
    let s = Store::open_in_memory().await.unwrap();
    let bytes = include_bytes!("../../core/tests/fixtures/hotlist/delimited_header.txt");
    let r = import(bytes, &ImportOptions::default()).unwrap();
    s.apply_snapshot(
        &ListMeta::new("file", Source::Agency),
        1,
        None,
        &r.entries,
        0,
    )
    .await
    .unwrap();
    let back: Vec<Entry> = s
        .entries()
        .await
        .unwrap()
        .into_iter()
        .map(|x| x.entry)
        .collect();
    assert_eq!(back, r.entries);
}

#[tokio::test]
async fn reopening_keeps_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.db");
    {
        let s = Store::open(&path).await.unwrap();
        s.apply_snapshot(
            &ListMeta::new("l", Source::Agency),
            3,
            None,
            &[e("AAA111", None, Category::Custom)],
            1,
        )
        .await
        .unwrap();
    }
    let s = Store::open(&path).await.unwrap();
    assert_eq!(s.list_status(1).await.unwrap()[0].version, 3);
    assert_eq!(s.entries().await.unwrap().len(), 1);
}
