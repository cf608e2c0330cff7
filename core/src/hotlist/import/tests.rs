//! Importer tests over the committed fixtures in `core/tests/fixtures/hotlist/` (valid, edge
//! and corrupt files for every format) and property tests: no input makes a parser panic.

use proptest::prelude::*;

use super::*;
use crate::hotlist::entry::Category;

macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/hotlist/",
            $name
        ))
        .as_slice()
    };
}

fn auto(bytes: &[u8]) -> ImportReport {
    import(bytes, &ImportOptions::default()).expect("fixture imports")
}

fn plates(r: &ImportReport) -> Vec<&str> {
    r.entries.iter().map(|e| e.plate.as_str()).collect()
}

fn reject_lines(r: &ImportReport) -> Vec<usize> {
    r.rejects.iter().map(|x| x.line).collect()
}

#[test]
fn ncic_fixed_valid() {
    let r = auto(fixture!("ncic_fixed_valid.txt"));
    assert_eq!(r.format, Format::NcicFixed);
    assert_eq!(r.records, 8);
    assert!(r.rejects.is_empty(), "{:?}", r.rejects);
    assert_eq!(
        plates(&r),
        [
            "7ABC123", "XYZ1234", "AB1234", "KJH445", "ON1234", "4GHT553", "BBB2222", "Q12345"
        ]
    );
    let e = &r.entries[0];
    assert_eq!(e.category, Category::StolenVehicle);
    assert_eq!(e.source, Source::Ncic);
    assert_eq!(e.state.as_deref(), Some("CA"));
    assert_eq!(
        e.incident_date.map(|d| d.to_string()).as_deref(),
        Some("2024-01-14")
    );
    assert_eq!(e.vehicle.year, Some(2019));
    assert_eq!(e.vehicle.make.as_deref(), Some("TOYT"));
    assert_eq!(e.vehicle.model.as_deref(), Some("CAM"));
    assert_eq!(e.vehicle.colour.as_deref(), Some("SIL"));
    assert_eq!(r.entries[3].category, Category::Amber);
    assert_eq!(r.entries[3].priority, 100);
    assert_eq!(r.entries[4].state.as_deref(), Some("ON"));
    assert_eq!(r.entries[5].category, Category::ProtectionOrder);
}

#[test]
fn ncic_fixed_edge_rejects_with_reasons() {
    let r = auto(fixture!("ncic_fixed_edge.txt"));
    assert_eq!(r.format, Format::NcicFixed);
    assert_eq!(plates(&r), ["7ABC123", "8JKL321", "2MNO777", "3PQR888"]);
    assert_eq!(reject_lines(&r), [3, 4, 5, 6, 7, 8, 9, 11]);
    let reasons: Vec<String> = r.rejects.iter().map(|x| x.reason.to_string()).collect();
    assert_eq!(reasons[0], "unknown NCIC list code");
    assert!(reasons[1].starts_with("date:"), "{}", reasons[1]);
    assert!(reasons[2].contains("junk plate"), "{}", reasons[2]);
    assert!(reasons[3].contains("unknown state"), "{}", reasons[3]);
    assert!(reasons[4].contains("too short"), "{}", reasons[4]);
    assert!(reasons[5].starts_with("year:"), "{}", reasons[5]);
    assert_eq!(reasons[6], "duplicate of line 1");
    assert!(reasons[7].contains("not a letter"), "{}", reasons[7]);
    // Every record line is either imported or rejected: nothing is silently dropped.
    assert_eq!(r.records, r.entries.len() + r.rejects.len());
}

#[test]
fn ncic_csv_valid_and_edge() {
    let r = auto(fixture!("ncic_csv_valid.csv"));
    assert_eq!(r.format, Format::NcicCsv);
    assert!(r.rejects.is_empty(), "{:?}", r.rejects);
    assert_eq!(plates(&r), ["7ABC123", "XYZ1234", "AB1234", "KJH445"]);
    assert_eq!(r.entries[1].category, Category::StolenPlate);
    assert_eq!(
        r.entries[1].incident_date.map(|d| d.to_string()).as_deref(),
        Some("2023-12-01")
    );
    assert_eq!(r.entries[0].vehicle.model.as_deref(), Some("CAMRY"));

    let r = auto(fixture!("ncic_csv_edge.csv"));
    assert_eq!(r.format, Format::NcicCsv);
    assert_eq!(plates(&r), ["7ABC123", "2XYZ123"]);
    assert_eq!(r.entries[1].vehicle.make.as_deref(), Some("TOYOTA, INC"));
    assert_eq!(reject_lines(&r), [3, 4, 5, 7, 8]);
    assert_eq!(
        r.rejects[0].reason,
        RejectReason::FieldCount {
            expected: 11,
            found: 8
        }
    );
    assert!(r.rejects[1].reason.to_string().contains("not a letter"));
    assert_eq!(r.rejects[2].reason, RejectReason::UnknownListCode);
    assert!(r.rejects[3].reason.to_string().contains("too long"));
    assert_eq!(r.rejects[4].reason, RejectReason::UnterminatedQuote);
}

#[test]
fn california_valid_truncated_and_edge() {
    let r = auto(fixture!("california_valid.txt"));
    assert_eq!(r.format, Format::California);
    assert_eq!(plates(&r), ["ABC123", "7XYZ999", "4KLM22", "8ZZZ111"]);
    assert!(r.rejects.is_empty() && r.warnings.is_empty(), "{r:?}");
    assert_eq!(r.entries[0].state.as_deref(), Some("CA"));
    assert_eq!(r.entries[0].source, Source::State);
    assert_eq!(
        r.entries[1].incident_date.map(|d| d.to_string()).as_deref(),
        Some("2018-06-15")
    );

    let r = auto(fixture!("california_truncated.txt"));
    assert_eq!(r.entries.len(), 3);
    assert_eq!(r.warnings.len(), 1);
    assert!(r.warnings[0].contains("truncated"));

    let r = auto(fixture!("california_edge.txt"));
    assert_eq!(plates(&r), ["ABC123", "6QRS44"]);
    assert_eq!(reject_lines(&r), [3, 4, 5, 6, 7]);
    assert!(r.rejects[0].reason.to_string().contains("junk"));
    assert!(r.rejects[1].reason.to_string().contains("unknown state"));
    assert!(r.rejects[2].reason.to_string().contains("county"));
    assert!(r.rejects[3].reason.to_string().starts_with("date:"));
    assert!(matches!(
        r.rejects[4].reason,
        RejectReason::LineTooShort { .. }
    ));
    assert!(
        r.warnings.iter().any(|w| w.contains("counts 9")),
        "{:?}",
        r.warnings
    );
}

#[test]
fn delimited_with_header() {
    let r = auto(fixture!("delimited_header.txt"));
    assert_eq!(r.format, Format::Delimited);
    assert!(r.rejects.is_empty(), "{:?}", r.rejects);
    assert_eq!(plates(&r), ["7ABC123", "AB*123", "XYZ1234", "9DEF456"]);
    let e = &r.entries[0];
    assert_eq!(e.priority, 60);
    assert_eq!(e.vehicle.colour.as_deref(), Some("SILVER"));
    assert_eq!(e.vehicle.year, Some(2019));
    assert_eq!(e.note.as_deref(), Some("keys in car"));
    assert_eq!(
        e.expires_at,
        Some(
            crate::hotlist::Date::from_ymd(2030, 1, 1)
                .unwrap()
                .unix_seconds()
        )
    );
    assert!(r.entries[1].plate.is_wildcard());
    assert_eq!(r.entries[1].state, None);
    assert_eq!(r.entries[2].category, Category::Amber);
    assert_eq!(
        r.entries[2].expires_at,
        Some(
            crate::hotlist::Date::from_ymd(2030, 6, 30)
                .unwrap()
                .unix_seconds()
                + 12 * 3600
        )
    );
    assert_eq!(r.entries[3].priority, Category::Felony.default_priority());
}

#[test]
fn delimited_edge_rejects_with_reasons() {
    let r = auto(fixture!("delimited_edge.txt"));
    assert_eq!(plates(&r), ["7ABC123", "5ABC123"]);
    assert_eq!(r.entries[1].category, Category::StolenPlate);
    assert_eq!(r.entries[1].state.as_deref(), Some("CA"));
    let reasons: Vec<String> = r.rejects.iter().map(|x| x.reason.to_string()).collect();
    assert_eq!(reject_lines(&r), [3, 4, 5, 6, 7, 8, 9]);
    assert!(reasons[0].starts_with("state:"));
    assert!(reasons[1].starts_with("category:"));
    assert!(reasons[2].starts_with("priority:"));
    assert!(reasons[3].starts_with("date:"));
    assert!(reasons[4].contains("fields"));
    assert!(reasons[5].contains("wildcard"));
    assert!(reasons[6].starts_with("priority:"));
}

#[test]
fn delimited_variants() {
    let r = auto(fixture!("delimited_tab.tsv"));
    assert_eq!(r.format, Format::Delimited);
    assert_eq!(plates(&r), ["7ABC123", "8XYZ987", "6JKL555"]);
    assert_eq!(r.entries[1].category, Category::Missing);
    let r = auto(fixture!("delimited_colon.txt"));
    assert_eq!(plates(&r), ["7ABC123", "8XYZ987", "LMN4567"]);
    assert_eq!(r.entries[1].category, Category::Gang);
    let r = auto(fixture!("delimited_comma.csv"));
    assert_eq!(r.entries.len(), 2, "{:?}", r.rejects);
    assert_eq!(r.entries[0].note.as_deref(), Some("seen near 5th, Main"));
    assert_eq!(r.entries[1].note.as_deref(), Some("said \"armed\""));
    let r = auto(fixture!("plates_only.txt"));
    assert_eq!(plates(&r), ["7ABC123", "8XYZ987", "LMN4567"]);
    assert_eq!(r.entries[0].category, Category::StolenVehicle);
    let r = auto(fixture!("latin1.txt"));
    assert_eq!(r.entries[0].note.as_deref(), Some("Citroën gris"));
}

#[test]
fn forced_format_and_options() {
    let opts = ImportOptions {
        format: Some(Format::Delimited),
        source: Some(Source::Officer),
        category: Some(Category::Wanted),
    };
    let r = import(fixture!("plates_only.txt"), &opts).unwrap();
    assert!(r.entries.iter().all(|e| e.category == Category::Wanted));
    assert!(r.entries.iter().all(|e| e.source == Source::Officer));
    // Forcing the wrong format rejects lines rather than inventing entries.
    let r = import(
        fixture!("ncic_csv_valid.csv"),
        &ImportOptions {
            format: Some(Format::NcicFixed),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(r.entries.len() + r.rejects.len(), r.records);
    assert_eq!(Format::parse("NCIC-CSV"), Some(Format::NcicCsv));
}

#[test]
fn corrupt_files_are_errors() {
    assert!(matches!(
        import(fixture!("binary.bin"), &ImportOptions::default()),
        Err(ImportError::Binary { .. })
    ));
    assert_eq!(
        import(b"", &ImportOptions::default()).unwrap_err(),
        ImportError::Empty
    );
    assert_eq!(
        import(b"\n\r\n  \n", &ImportOptions::default()).unwrap_err(),
        ImportError::Empty
    );
    assert_eq!(
        import(fixture!("prose.txt"), &ImportOptions::default()).unwrap_err(),
        ImportError::UnknownFormat
    );
    // Error messages never echo file content.
    let msg = import(fixture!("prose.txt"), &ImportOptions::default())
        .unwrap_err()
        .to_string();
    assert!(!msg.contains("colleague"));
}

#[test]
fn fuzz_regression_corpus_never_panics() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/corpus");
    let Ok(targets) = std::fs::read_dir(dir) else {
        panic!("fuzz corpus missing at {dir}");
    };
    let mut n = 0;
    for t in targets.flatten() {
        for f in std::fs::read_dir(t.path()).expect("corpus dir").flatten() {
            let bytes = std::fs::read(f.path()).expect("corpus file");
            for format in Format::ALL.map(Some).into_iter().chain([None]) {
                let _ = import(
                    &bytes,
                    &ImportOptions {
                        format,
                        ..Default::default()
                    },
                );
            }
            n += 1;
        }
    }
    assert!(n > 0, "empty fuzz corpus");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        for format in Format::ALL.map(Some).into_iter().chain([None]) {
            if let Ok(r) = import(&bytes, &ImportOptions { format, ..Default::default() }) {
                prop_assert_eq!(r.records, r.entries.len() + r.rejects.len());
            }
        }
    }

    #[test]
    fn plausible_lines_never_panic(
        lines in proptest::collection::vec("[ A-Z0-9,;:\t\"/*?-]{0,70}", 0..20)
    ) {
        let text = lines.join("\n");
        for format in Format::ALL.map(Some).into_iter().chain([None]) {
            if let Ok(r) = import(text.as_bytes(), &ImportOptions { format, ..Default::default() }) {
                prop_assert_eq!(r.records, r.entries.len() + r.rejects.len());
            }
        }
    }

    #[test]
    fn delimited_round_trip(
        rows in proptest::collection::vec(("[0-9][A-Z]{3}[0-9]{3}", 0usize..51, 0u8..=100), 1..30)
    ) {
        let mut text = String::from("plate;state;category;priority\n");
        let mut want = Vec::new();
        for (p, s, pr) in &rows {
            let st = crate::text::STATES[*s];
            text.push_str(&format!("{p};{st};wanted;{pr}\n"));
            if !want.iter().any(|(q, t, _)| q == p && *t == st) {
                want.push((p.clone(), st, *pr));
            }
        }
        let r = import(text.as_bytes(), &ImportOptions::default()).unwrap();
        prop_assert_eq!(r.entries.len(), want.len());
        for (e, (p, s, pr)) in r.entries.iter().zip(&want) {
            prop_assert_eq!(e.plate.as_str(), p.as_str());
            prop_assert_eq!(e.state.as_deref(), Some(*s));
            prop_assert_eq!(e.priority, *pr);
        }
    }
}
