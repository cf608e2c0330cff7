//! Matcher tests: each match kind, confidence weighting, state checks, expiry, deltas, and a
//! property test that the index finds exactly what a linear scan finds.

use proptest::prelude::*;

use super::*;

fn entry(id: u32, plate: &str) -> IndexEntry<'_> {
    IndexEntry {
        id,
        list: 0,
        plate,
        state: None,
        category: Category::StolenVehicle,
        priority: 60,
        expires_at: None,
    }
}

fn matcher(plates: &[&'static str]) -> Matcher {
    Matcher::build(
        plates.iter().enumerate().map(|(i, p)| entry(i as u32, p)),
        MatcherConfig::default(),
    )
    .unwrap()
}

fn read<'a>(text: &'a str, conf: &'a [f32]) -> Query<'a> {
    Query {
        text,
        confidences: conf,
        state: None,
        state_confidence: 0.0,
    }
}

const SURE: [f32; 8] = [0.99; 8];

#[test]
fn exact_match_alerts() {
    let m = matcher(&["7ABC123", "8XYZ987"]);
    let r = m.alerts(&read("7ABC123", &SURE), 0);
    assert_eq!(r.len(), 1);
    assert_eq!((r[0].id, r[0].kind, r[0].score), (0, MatchKind::Exact, 1.0));
    assert!(m.alerts(&read("7ABC124", &SURE), 0).is_empty());
    assert!(m.alerts(&read("", &SURE), 0).is_empty());
    assert!(
        m.alerts(&read("7abc123", &SURE), 0).is_empty(),
        "reads are normalised upstream"
    );
}

#[test]
fn lookalikes_are_per_position_and_confidence_weighted() {
    let m = matcher(&["7AB0123"]);
    // Reader saw O where the plate has 0, and was unsure: alert.
    let mut c = SURE;
    c[3] = 0.6;
    let r = m.alerts(&read("7ABO123", &c), 0);
    assert_eq!(r.len(), 1);
    assert_eq!((r[0].kind, r[0].lookalikes), (MatchKind::LookAlike, 1));
    // The same difference read with full confidence is a different plate.
    let all = m.explain(&read("7ABO123", &SURE), 0);
    assert_eq!(all.len(), 1);
    assert!(!all[0].alert && all[0].score < 0.1);
    // 8/B at position 2 is a look-alike; 8/B at a position where the plate has a 3 is not.
    c = SURE;
    c[2] = 0.5;
    assert_eq!(m.alerts(&read("7A80123", &c), 0).len(), 1);
    let m = matcher(&["7A30123"]);
    assert_eq!(
        m.explain(&read("7A80123", &c), 0)[0].kind,
        MatchKind::OneEdit
    );
}

#[test]
fn one_edit_needs_an_unsure_reader() {
    let m = matcher(&["7ABC123"]);
    let mut c = SURE;
    c[4] = 0.2;
    let r = m.alerts(&read("7ABC923", &c), 0);
    assert_eq!(r.len(), 1);
    assert_eq!(
        (r[0].kind, r[0].edit),
        (MatchKind::OneEdit, Some(Edit::Substitute(4)))
    );
    assert!(m.alerts(&read("7ABC923", &SURE), 0).is_empty());
    // Extra character in the read.
    let c9 = [0.99, 0.99, 0.99, 0.2, 0.99, 0.99, 0.99, 0.99];
    let r = m.alerts(&read("7ABX C123".replace(' ', "").as_str(), &c9), 0);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].edit, Some(Edit::Insert(3)));
    // An extra copy of a character: the unsure copy is the extra one.
    let c9 = [0.99, 0.99, 0.99, 0.99, 0.2, 0.99, 0.99, 0.99];
    let r = m.alerts(&read("7ABCC123", &c9), 0);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].edit, Some(Edit::Insert(4)));
    // A missing character never alerts on its own at the default threshold, but a lost
    // repeat (CTC merges repeats) scores higher than any other loss.
    let m = matcher(&["7ABB123", "7ABC123"]);
    assert!(m.alerts(&read("7AB123", &SURE), 0).is_empty());
    let all = m.explain(&read("7AB123", &SURE), 0);
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].id, 0);
    assert!(all[0].score > all[1].score);
    assert!(matches!(all[0].edit, Some(Edit::Delete(_))));
    // Two substitutions never match.
    let low = [0.1; 8];
    assert!(m.explain(&read("7AXC1Y3", &low), 0).is_empty());
}

#[test]
fn wildcards() {
    let m = matcher(&["AB*123", "XY?7*9", "*5KQ"]);
    assert_eq!(
        m.alerts(&read("AB123", &SURE), 0)[0].kind,
        MatchKind::Wildcard
    );
    assert_eq!(m.alerts(&read("ABZZZZ123", &SURE), 0).len(), 1);
    assert_eq!(m.alerts(&read("XYA779", &SURE), 0).len(), 1);
    assert_eq!(m.alerts(&read("XYA7Q29", &SURE), 0).len(), 1);
    assert!(m.alerts(&read("XY7Q29", &SURE), 0).is_empty());
    assert_eq!(m.alerts(&read("ZZZ5KQ", &SURE), 0).len(), 1);
    assert!(m.alerts(&read("AC123", &SURE), 0).is_empty());
    // Look-alikes inside a wildcard pattern, weighted like any other.
    let c = [0.5; 8];
    assert_eq!(m.alerts(&read("A8Z123", &c), 0).len(), 1);
}

#[test]
fn state_agreement_and_conflict() {
    let mut e = entry(1, "7ABC123");
    e.state = Some("CA");
    let m = Matcher::build([e], MatcherConfig::default()).unwrap();
    let mut q = read("7ABC123", &SURE);
    q.state = Some("CA");
    q.state_confidence = 0.9;
    assert_eq!(m.alerts(&q, 0)[0].state, StateCheck::Agree);
    q.state = Some("NV");
    assert!(m.alerts(&q, 0).is_empty());
    assert_eq!(m.explain(&q, 0)[0].state, StateCheck::Conflict);
    q.state_confidence = 0.2; // an unsure state read is ignored
    assert_eq!(m.alerts(&q, 0)[0].state, StateCheck::Unknown);
}

#[test]
fn expired_entries_never_alert() {
    let mut e = entry(1, "7ABC123");
    e.expires_at = Some(1_000);
    let m = Matcher::build([e], MatcherConfig::default()).unwrap();
    assert_eq!(m.alerts(&read("7ABC123", &SURE), 999).len(), 1);
    assert!(m.alerts(&read("7ABC123", &SURE), 1_000).is_empty());
    assert!(m.linear_scan(&read("7ABC123", &SURE), 1_000).is_empty());
}

#[test]
fn deltas_take_effect_immediately() {
    let mut m = matcher(&["7ABC123", "8XYZ987"]);
    m.apply_delta(&[0], [entry(7, "5NEW555")]).unwrap();
    assert!(m.alerts(&read("7ABC123", &SURE), 0).is_empty());
    assert_eq!(m.alerts(&read("5NEW555", &SURE), 0)[0].id, 7);
    assert_eq!(m.len(), 2);
    // Removing from the overlay works too, and a large delta rebuilds everything.
    m.apply_delta(&[7], []).unwrap();
    assert!(m.alerts(&read("5NEW555", &SURE), 0).is_empty());
    let many: Vec<String> = (0..5000).map(|i| format!("9Q{i:05}")).collect();
    m.apply_delta(
        &[],
        many.iter()
            .enumerate()
            .map(|(i, p)| entry(100 + i as u32, p)),
    )
    .unwrap();
    assert_eq!(m.len(), 5001);
    assert_eq!(m.alerts(&read("9Q04321", &SURE), 0)[0].id, 4421);
    assert_eq!(m.alerts(&read("8XYZ987", &SURE), 0)[0].id, 1);
}

#[test]
fn bad_entries_are_refused() {
    assert!(Matcher::build([entry(0, "abc")], MatcherConfig::default()).is_err());
    assert!(Matcher::build([entry(0, "")], MatcherConfig::default()).is_err());
    let mut e = entry(0, "ABC123");
    e.state = Some("QQ");
    assert!(Matcher::build([e], MatcherConfig::default()).is_err());
}

#[test]
fn deletion_keys_match_the_reference() {
    use crate::hotlist::lookalike::{hash, pack_class_without};
    for p in [&b"7ABC123"[..], b"BB8O0", b"A", b"ABCDEFGHIJKLMNO"] {
        let mut got = Vec::new();
        for_each_deletion(p, |h| got.push(h));
        let mut want: Vec<u64> = (0..p.len())
            .map(|k| hash(pack_class_without(p, k)))
            .collect();
        want.dedup();
        assert_eq!(got, want);
    }
}

fn plate_strategy() -> impl Strategy<Value = String> {
    // A small alphabet rich in look-alikes makes collisions and near misses common.
    "[0O8B1IL5SAC]{3,8}"
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn index_agrees_with_linear_scan(
        plates in proptest::collection::vec(plate_strategy(), 1..40),
        wild in proptest::collection::vec(
            "[0O8B1A]{0,4}[*?]([0O8B1A]{0,2}[*?])?[0O8B1A]{0,4}",
            0..8,
        ),
        q in plate_strategy(),
        conf in proptest::collection::vec(0.05f32..1.0, 8),
        split in 0usize..40,
    ) {
        let all: Vec<String> = plates.into_iter().chain(wild).collect();
        let valid: Vec<&String> = all.iter().filter(|p| {
            crate::hotlist::PlatePattern::parse(p).is_ok_and(|x| x.as_str() == p.as_str())
        }).collect();
        let entries: Vec<IndexEntry<'_>> =
            valid.iter().enumerate().map(|(i, p)| entry(i as u32, p)).collect();
        let cut = split.min(entries.len());
        let cfg = MatcherConfig { max_matches: 1000, ..MatcherConfig::default() };
        // Half in the base, half added as a delta: the overlay must behave the same.
        let mut m = Matcher::build(entries[..cut].iter().copied(), cfg).unwrap();
        m.apply_delta(&[], entries[cut..].iter().copied()).unwrap();
        let query = Query { text: &q, confidences: &conf, state: None, state_confidence: 0.0 };
        let mut a = m.explain(&query, 0);
        let mut b = m.linear_scan(&query, 0);
        a.sort_by_key(|x| x.id);
        b.sort_by_key(|x| x.id);
        prop_assert_eq!(a, b);
    }
}

/// Large enough for full directory buckets (about 64 slots each): every entry is found by its
/// exact read, and a plate of another length finds nothing.
#[test]
fn every_entry_is_found_in_a_large_index() {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut plates = std::collections::BTreeSet::new();
    while plates.len() < 40_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let p: String = (0..7)
            .map(|k| {
                let r = (x >> (k * 8)) as u8;
                if k == 0 || k >= 4 {
                    (b'0' + r % 10) as char
                } else {
                    (b'A' + r % 26) as char
                }
            })
            .collect();
        plates.insert(p);
    }
    let plates: Vec<String> = plates.into_iter().collect();
    let m = Matcher::build(
        plates
            .iter()
            .enumerate()
            .map(|(i, p)| entry(i as u32, p.as_str())),
        MatcherConfig::default(),
    )
    .unwrap();
    let conf = [0.99f32; 8];
    for (i, p) in plates.iter().enumerate() {
        let r = m.alerts(&read(p, &conf), 0);
        assert!(
            r.iter()
                .any(|h| h.id == i as u32 && h.kind == MatchKind::Exact),
            "entry {i} not found"
        );
    }
    // Eight characters, letters only: not on the list and not one edit from any entry.
    assert!(m.alerts(&read("ZZZZZZZZ", &conf), 0).is_empty());
}
