//! Calendar dates as found in hot list extracts (`YYYYMMDD`, `YYYY-MM-DD`, `MM/DD/YYYY`),
//! converted to and from Unix time without a date library (proleptic Gregorian, UTC).

use std::fmt;

use serde::{Deserialize, Serialize};

use super::entry::EntryError;

/// A calendar day, stored as days since 1970-01-01.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Date(i32);

impl Date {
    /// The date for a year, month (1-12) and day (1-31), if it exists (years 1900..=2199).
    pub fn from_ymd(y: i32, m: u32, d: u32) -> Option<Date> {
        if !(1900..=2199).contains(&y) || !(1..=12).contains(&m) || d == 0 {
            return None;
        }
        if d > days_in_month(y, m) {
            return None;
        }
        Some(Date(days_from_civil(y, m, d)))
    }

    /// (year, month, day).
    pub fn ymd(self) -> (i32, u32, u32) {
        civil_from_days(self.0)
    }

    pub fn days_since_epoch(self) -> i32 {
        self.0
    }

    /// Unix seconds at 00:00 UTC of this day.
    pub fn unix_seconds(self) -> i64 {
        i64::from(self.0) * 86_400
    }

    /// The day holding the Unix instant `secs`.
    pub fn from_unix_seconds(secs: i64) -> Date {
        Date(secs.div_euclid(86_400) as i32)
    }

    /// Parse `YYYYMMDD`, `YYYY-MM-DD` or `MM/DD/YYYY` (surrounding blanks ignored).
    pub fn parse(s: &str) -> Result<Date, EntryError> {
        let t = s.trim();
        let b = t.as_bytes();
        let num = |r: std::ops::Range<usize>| -> Result<u32, EntryError> {
            let part = t.get(r).ok_or(EntryError::BadDate)?;
            if part.is_empty() || !part.bytes().all(|c| c.is_ascii_digit()) {
                return Err(EntryError::BadDate);
            }
            part.parse().map_err(|_| EntryError::BadDate)
        };
        let (y, m, d) = match b.len() {
            8 if b.iter().all(u8::is_ascii_digit) => (num(0..4)?, num(4..6)?, num(6..8)?),
            10 if b[4] == b'-' && b[7] == b'-' => (num(0..4)?, num(5..7)?, num(8..10)?),
            10 if b[2] == b'/' && b[5] == b'/' => (num(6..10)?, num(0..2)?, num(3..5)?),
            _ => return Err(EntryError::BadDate),
        };
        Date::from_ymd(y as i32, m, d).ok_or(EntryError::BadDate)
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d) = self.ymd();
        write!(f, "{y:04}-{m:02}-{d:02}")
    }
}

impl fmt::Debug for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Date({self})")
    }
}

impl TryFrom<String> for Date {
    type Error = EntryError;
    fn try_from(s: String) -> Result<Date, EntryError> {
        Date::parse(&s)
    }
}

impl From<Date> for String {
    fn from(d: Date) -> String {
        d.to_string()
    }
}

fn is_leap(y: i32) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i32, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(y) => 29,
        _ => 28,
    }
}

/// Howard Hinnant's `days_from_civil`.
fn days_from_civil(y: i32, m: u32, d: u32) -> i32 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = m as i32;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i32 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Howard Hinnant's `civil_from_days`.
fn civil_from_days(z: i32) -> (i32, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i32::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_the_field_formats() {
        let d = Date::from_ymd(2018, 6, 27).unwrap();
        assert_eq!(Date::parse("20180627"), Ok(d));
        assert_eq!(Date::parse("2018-06-27"), Ok(d));
        assert_eq!(Date::parse("06/27/2018"), Ok(d));
        assert_eq!(d.to_string(), "2018-06-27");
        assert_eq!(Date::from_ymd(1970, 1, 1).unwrap().unix_seconds(), 0);
        assert_eq!(
            Date::from_ymd(2000, 3, 1).unwrap().days_since_epoch(),
            11_017
        );
    }

    #[test]
    fn refuses_impossible_dates() {
        for s in [
            "20180230",
            "20181301",
            "2018-00-10",
            "13/01/2018",
            "2018627",
            "",
            "abcdefgh",
            "19000229",
            "+2018-06-2",
        ] {
            assert_eq!(Date::parse(s), Err(EntryError::BadDate), "{s}");
        }
        assert!(Date::parse("20000229").is_ok());
    }

    proptest! {
        #[test]
        fn civil_round_trip(days in -25_000i32..80_000) {
            let (y, m, d) = civil_from_days(days);
            prop_assert_eq!(days_from_civil(y, m, d), days);
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,12}") {
            let _ = Date::parse(&s);
        }
    }
}
