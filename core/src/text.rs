//! Plate text: normalisation (upper case, letters and digits only), edit distance and the
//! character set, US state list and region (country) list shared with the models.

/// Characters the reader can emit, in model class order (class 0 is the CTC blank).
pub const CHARSET: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// US postal codes in the reader's state class order (class 0 is "unknown").
pub const STATES: [&str; 51] = [
    "AK", "AL", "AR", "AZ", "CA", "CO", "CT", "DC", "DE", "FL", "GA", "HI", "IA", "ID", "IL", "IN",
    "KS", "KY", "LA", "MA", "MD", "ME", "MI", "MN", "MO", "MS", "MT", "NC", "ND", "NE", "NH", "NJ",
    "NM", "NV", "NY", "OH", "OK", "OR", "PA", "RI", "SC", "SD", "TN", "TX", "UT", "VA", "VT", "WA",
    "WI", "WV", "WY",
];

/// Countries in the reader's region class order (class 0 is "unknown"); `models/reader/common.py`
/// `REGIONS` is the same list.
pub const REGIONS: [&str; 66] = [
    "Albania",
    "Andorra",
    "Argentina",
    "Armenia",
    "Australia",
    "Austria",
    "Azerbaijan",
    "Bahrain",
    "Belarus",
    "Belgium",
    "Bosnia and Herzegovina",
    "Brazil",
    "Bulgaria",
    "Cambodia",
    "Canada",
    "Croatia",
    "Cyprus",
    "Czech Republic",
    "Denmark",
    "Estonia",
    "Finland",
    "France",
    "Georgia",
    "Germany",
    "Gibraltar",
    "Greece",
    "Guernsey",
    "Hungary",
    "Iceland",
    "India",
    "Indonesia",
    "Ireland",
    "Israel",
    "Italy",
    "Latvia",
    "Liechtenstein",
    "Lithuania",
    "Luxembourg",
    "Malaysia",
    "Malta",
    "Mexico",
    "Moldova",
    "Monaco",
    "Montenegro",
    "Netherlands",
    "New Zealand",
    "North Macedonia",
    "Norway",
    "Poland",
    "Portugal",
    "Qatar",
    "Romania",
    "San Marino",
    "Serbia",
    "Singapore",
    "Slovakia",
    "Slovenia",
    "Spain",
    "Sweden",
    "Switzerland",
    "Thailand",
    "Turkey",
    "Ukraine",
    "United Kingdom",
    "United States",
    "Vietnam",
];

/// Upper case, ASCII letters and digits only (spaces, dashes, dots and the rest removed).
pub fn normalize_plate(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// Normalised US state code if `s` names one (case-insensitive), else None.
pub fn normalize_state(s: &str) -> Option<&'static str> {
    let up = s.trim().to_ascii_uppercase();
    STATES.iter().copied().find(|st| *st == up)
}

/// Levenshtein distance between two strings, by characters.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let sub = prev[j - 1] + usize::from(a[i - 1] != b[j - 1]);
            cur[j] = sub.min(prev[j] + 1).min(cur[j - 1] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// Character accuracy of a read against the truth: 1 - edit distance / truth length, at least 0.
pub fn char_accuracy(read: &str, truth: &str) -> f64 {
    let n = truth.chars().count();
    if n == 0 {
        return if read.is_empty() { 1.0 } else { 0.0 };
    }
    (1.0 - edit_distance(read, truth) as f64 / n as f64).max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn normalises() {
        assert_eq!(normalize_plate(" ab-12 3.c "), "AB123C");
        assert_eq!(normalize_state("ca"), Some("CA"));
        assert_eq!(normalize_state("zz"), None);
        assert_eq!(edit_distance("ABC123", "A8C123"), 1);
        assert_eq!(edit_distance("ABC123", "BC123"), 1);
        assert_eq!(char_accuracy("", "ABC"), 0.0);
        assert!((char_accuracy("ABD", "ABC") - 2.0 / 3.0).abs() < 1e-9);
    }

    proptest! {
        #[test]
        fn normalised_text_is_idempotent_and_clean(s in "\\PC{0,20}") {
            let n = normalize_plate(&s);
            prop_assert!(n.bytes().all(|b| CHARSET.contains(&b)));
            prop_assert_eq!(normalize_plate(&n), n.clone());
        }

        #[test]
        fn edit_distance_is_a_metric(a in "[A-C0-2]{0,8}", b in "[A-C0-2]{0,8}") {
            prop_assert_eq!(edit_distance(&a, &b), edit_distance(&b, &a));
            prop_assert_eq!(edit_distance(&a, &a), 0);
            prop_assert!(edit_distance(&a, &b) <= a.len().max(b.len()));
        }
    }
}
