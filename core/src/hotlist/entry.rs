//! Hot list entries: a normalised plate (or wildcard pattern), its list category, priority,
//! source, region and vehicle details. `Debug` output never shows the plate or the note.

use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::date::Date;

/// Longest plate (or pattern) accepted, after normalisation.
pub const MAX_PLATE_LEN: usize = 15;
/// Fewest literal characters a wildcard pattern must keep (`*` alone would match every car).
pub const MIN_WILDCARD_LITERALS: usize = 3;

/// Why a plate, state or entry field was refused. Messages never contain the plate itself.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum EntryError {
    #[error("plate is empty")]
    EmptyPlate,
    #[error("plate is too long ({len} characters, at most {MAX_PLATE_LEN})")]
    TooLong { len: usize },
    #[error("junk plate (only zeros or a single repeated symbol)")]
    JunkPlate,
    #[error("plate holds a character that is not a letter, digit, `*` or `?`")]
    BadCharacter,
    #[error("wildcard pattern keeps fewer than {MIN_WILDCARD_LITERALS} literal characters")]
    WildcardTooBroad,
    #[error("unknown state or region code")]
    UnknownState,
    #[error("unknown list category")]
    UnknownCategory,
    #[error("priority must be 0..=100")]
    BadPriority,
    #[error("unknown source")]
    UnknownSource,
    #[error("bad date (expected YYYYMMDD, YYYY-MM-DD or MM/DD/YYYY)")]
    BadDate,
    #[error("bad vehicle year")]
    BadYear,
    #[error("too many entries for one matcher index (at most 16,777,215)")]
    TooManyEntries,
}

/// Region codes accepted on entries: US states and DC, US territories, Canadian provinces and
/// territories, and `US` for federal plates.
pub const REGIONS: [&str; 70] = [
    "AK", "AL", "AR", "AZ", "CA", "CO", "CT", "DC", "DE", "FL", "GA", "HI", "IA", "ID", "IL", "IN",
    "KS", "KY", "LA", "MA", "MD", "ME", "MI", "MN", "MO", "MS", "MT", "NC", "ND", "NE", "NH", "NJ",
    "NM", "NV", "NY", "OH", "OK", "OR", "PA", "RI", "SC", "SD", "TN", "TX", "UT", "VA", "VT", "WA",
    "WI", "WV", "WY", "PR", "GU", "VI", "AS", "MP", "US", "AB", "BC", "MB", "NB", "NL", "NS", "NT",
    "NU", "ON", "PE", "QC", "SK", "YT",
];

/// For each two-letter code (`(first - 'A') * 26 + (second - 'A')`), one more than its index in
/// [`REGIONS`], or 0: region lookups are one table read (a million-entry list parses fast).
const REGION_TABLE: [u8; 676] = {
    let mut t = [0u8; 676];
    let mut i = 0;
    while i < REGIONS.len() {
        let b = REGIONS[i].as_bytes();
        t[(b[0] - b'A') as usize * 26 + (b[1] - b'A') as usize] = i as u8 + 1;
        i += 1;
    }
    t
};

/// One more than the index in [`REGIONS`] of `s` (case-insensitive, surrounding blanks
/// ignored), or `None` when it is not a known region.
pub fn region_number(s: &str) -> Option<u8> {
    let &[a, b] = s.trim().as_bytes() else {
        return None;
    };
    let (a, b) = (a.to_ascii_uppercase(), b.to_ascii_uppercase());
    if !a.is_ascii_uppercase() || !b.is_ascii_uppercase() {
        return None;
    }
    match REGION_TABLE[usize::from(a - b'A') * 26 + usize::from(b - b'A')] {
        0 => None,
        n => Some(n),
    }
}

/// The region code for `s` (case-insensitive, surrounding blanks ignored).
pub fn parse_region(s: &str) -> Result<&'static str, EntryError> {
    region_number(s)
        .map(|n| REGIONS[usize::from(n) - 1])
        .ok_or(EntryError::UnknownState)
}

/// A normalised plate: upper-case ASCII letters and digits, plus `*` (any run of characters,
/// possibly empty) and `?` (exactly one character) in wildcard patterns.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PlatePattern(String);

impl PlatePattern {
    /// Normalise `raw` (upper case; spaces, dashes, dots and slashes removed; `**` collapsed)
    /// and validate it.
    pub fn parse(raw: &str) -> Result<Self, EntryError> {
        let mut s = String::with_capacity(raw.len());
        for c in raw.chars() {
            match c {
                ' ' | '-' | '.' | '/' | '\t' => {}
                '*' => {
                    if !s.ends_with('*') {
                        s.push('*');
                    }
                }
                '?' => s.push('?'),
                c if c.is_ascii_alphanumeric() => s.push(c.to_ascii_uppercase()),
                _ => return Err(EntryError::BadCharacter),
            }
        }
        if s.is_empty() {
            return Err(EntryError::EmptyPlate);
        }
        if s.len() > MAX_PLATE_LEN {
            return Err(EntryError::TooLong { len: s.len() });
        }
        let literals = s.bytes().filter(|b| b.is_ascii_alphanumeric()).count();
        let wildcard = literals != s.len();
        if wildcard {
            if literals < MIN_WILDCARD_LITERALS {
                return Err(EntryError::WildcardTooBroad);
            }
        } else if is_junk(s.as_bytes()) {
            return Err(EntryError::JunkPlate);
        }
        Ok(Self(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True when the pattern holds `*` or `?`.
    pub fn is_wildcard(&self) -> bool {
        self.0.bytes().any(|b| b == b'*' || b == b'?')
    }
}

/// Junk plates seen in field extracts: `0`, `00`, `000`, a single character, or one repeated
/// symbol (`XXXXXXX`, `1111111`).
fn is_junk(p: &[u8]) -> bool {
    p.len() < 2 || p.iter().all(|&b| b == b'0') || p.iter().all(|&b| b == p[0])
}

impl TryFrom<String> for PlatePattern {
    type Error = EntryError;
    fn try_from(s: String) -> Result<Self, EntryError> {
        Self::parse(&s)
    }
}

impl From<PlatePattern> for String {
    fn from(p: PlatePattern) -> String {
        p.0
    }
}

impl fmt::Debug for PlatePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PlatePattern(<{} chars redacted>)", self.0.len())
    }
}

/// What a list is about. NCIC list codes map onto these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    StolenVehicle,
    StolenPlate,
    Wanted,
    Felony,
    Missing,
    Amber,
    ProtectionOrder,
    SexOffender,
    Gang,
    SupervisedRelease,
    Custom,
}

impl Category {
    pub const ALL: [Category; 11] = [
        Category::StolenVehicle,
        Category::StolenPlate,
        Category::Wanted,
        Category::Felony,
        Category::Missing,
        Category::Amber,
        Category::ProtectionOrder,
        Category::SexOffender,
        Category::Gang,
        Category::SupervisedRelease,
        Category::Custom,
    ];

    /// Stable snake_case name, used in files, the database and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::StolenVehicle => "stolen_vehicle",
            Category::StolenPlate => "stolen_plate",
            Category::Wanted => "wanted",
            Category::Felony => "felony",
            Category::Missing => "missing",
            Category::Amber => "amber",
            Category::ProtectionOrder => "protection_order",
            Category::SexOffender => "sex_offender",
            Category::Gang => "gang",
            Category::SupervisedRelease => "supervised_release",
            Category::Custom => "custom",
        }
    }

    /// The NCIC one-letter list code (column 0 of the fixed-width extract).
    pub fn from_ncic_code(c: u8) -> Option<Category> {
        Some(match c.to_ascii_uppercase() {
            b'V' => Category::StolenVehicle,
            b'P' | b'L' => Category::StolenPlate,
            b'W' => Category::Wanted,
            b'F' => Category::Felony,
            b'M' => Category::Missing,
            b'A' => Category::Amber,
            b'H' => Category::ProtectionOrder,
            b'X' => Category::SexOffender,
            b'G' => Category::Gang,
            b'S' => Category::SupervisedRelease,
            b'C' => Category::Custom,
            _ => return None,
        })
    }

    /// The NCIC one-letter code of this category.
    pub fn ncic_code(self) -> u8 {
        match self {
            Category::StolenVehicle => b'V',
            Category::StolenPlate => b'P',
            Category::Wanted => b'W',
            Category::Felony => b'F',
            Category::Missing => b'M',
            Category::Amber => b'A',
            Category::ProtectionOrder => b'H',
            Category::SexOffender => b'X',
            Category::Gang => b'G',
            Category::SupervisedRelease => b'S',
            Category::Custom => b'C',
        }
    }

    /// Parse a category from its name, common spellings, or an NCIC letter.
    pub fn parse(s: &str) -> Result<Category, EntryError> {
        let t: String = s
            .trim()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .map(|c| c.to_ascii_lowercase())
            .collect();
        if t.len() == 1 {
            return Category::from_ncic_code(t.as_bytes()[0]).ok_or(EntryError::UnknownCategory);
        }
        Ok(match t.as_str() {
            "stolenvehicle" | "stolen" | "sv" | "stolenauto" | "stolencar" => {
                Category::StolenVehicle
            }
            "stolenplate" | "stolenplates" | "sp" | "stolentag" => Category::StolenPlate,
            "wanted" | "wantedperson" | "warrant" => Category::Wanted,
            "felony" | "felonyvehicle" => Category::Felony,
            "missing" | "missingperson" => Category::Missing,
            "amber" | "amberalert" | "childabduction" => Category::Amber,
            "protectionorder" | "protective" | "protectiveorder" | "po" => {
                Category::ProtectionOrder
            }
            "sexoffender" | "so" => Category::SexOffender,
            "gang" | "gangmember" => Category::Gang,
            "supervisedrelease" | "parole" | "probation" => Category::SupervisedRelease,
            "custom" | "other" | "bolo" => Category::Custom,
            _ => return Err(EntryError::UnknownCategory),
        })
    }

    /// Default priority (0..=100) when a file does not give one: life first, then property.
    pub fn default_priority(self) -> u8 {
        match self {
            Category::Amber => 100,
            Category::Missing => 90,
            Category::Wanted | Category::Felony => 80,
            Category::ProtectionOrder => 70,
            Category::StolenVehicle => 60,
            Category::StolenPlate => 50,
            Category::Gang | Category::SexOffender | Category::SupervisedRelease => 40,
            Category::Custom => 30,
        }
    }
}

/// Who published an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Ncic,
    State,
    Agency,
    Officer,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Ncic => "ncic",
            Source::State => "state",
            Source::Agency => "agency",
            Source::Officer => "officer",
        }
    }

    pub fn parse(s: &str) -> Result<Source, EntryError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "ncic" => Ok(Source::Ncic),
            "state" | "dmv" => Ok(Source::State),
            "agency" | "local" => Ok(Source::Agency),
            "officer" | "user" | "manual" => Ok(Source::Officer),
            _ => Err(EntryError::UnknownSource),
        }
    }
}

/// Optional vehicle description carried by an entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vehicle {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub make: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub colour: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub year: Option<u16>,
}

impl Vehicle {
    /// A vehicle year in 1900..=2100 (two-digit years: 00-49 → 20xx, 50-99 → 19xx).
    pub fn parse_year(s: &str) -> Result<Option<u16>, EntryError> {
        let t = s.trim();
        if t.is_empty() || t.bytes().all(|b| b == b'0') {
            return Ok(None);
        }
        let y: u16 = t.parse().map_err(|_| EntryError::BadYear)?;
        let y = match (t.len(), y) {
            (2, y) if y < 50 => 2000 + y,
            (2, y) => 1900 + y,
            (4, y) if (1900..=2100).contains(&y) => y,
            _ => return Err(EntryError::BadYear),
        };
        Ok(Some(y))
    }
}

/// Turn an empty or blank field into `None`, trimming the rest.
pub(crate) fn opt_field(s: &str) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_string())
}

/// One hot list entry.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub plate: PlatePattern,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    pub category: Category,
    /// 0 (lowest) ..= 100 (highest).
    pub priority: u8,
    pub source: Source,
    #[serde(default)]
    pub vehicle: Vehicle,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident_date: Option<Date>,
    /// Unix seconds (UTC) from which the entry no longer matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    /// Free text for the officer. Never logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Entry {
    /// A new entry with the category's default priority and no optional fields.
    pub fn new(plate: PlatePattern, category: Category, source: Source) -> Self {
        Self {
            plate,
            state: None,
            category,
            priority: category.default_priority(),
            source,
            vehicle: Vehicle::default(),
            incident_date: None,
            expires_at: None,
            note: None,
        }
    }

    /// True when the entry can still match at `now` (unix seconds).
    pub fn is_live(&self, now: i64) -> bool {
        self.expires_at.is_none_or(|e| now < e)
    }
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("plate", &self.plate)
            .field("state", &self.state)
            .field("category", &self.category)
            .field("priority", &self.priority)
            .field("source", &self.source)
            .field("incident_date", &self.incident_date)
            .field("expires_at", &self.expires_at)
            .field("note", &self.note.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

/// The natural key of an entry within a list: plate (or pattern), region and category. Hot list
/// deltas remove entries by this key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EntryKey {
    pub plate: PlatePattern,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    pub category: Category,
}

impl From<&Entry> for EntryKey {
    fn from(e: &Entry) -> Self {
        Self {
            plate: e.plate.clone(),
            state: e.state.clone(),
            category: e.category,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plates_are_normalised() {
        assert_eq!(PlatePattern::parse("abc-123").unwrap().as_str(), "ABC123");
        assert_eq!(
            PlatePattern::parse(" 7 xyz.12 ").unwrap().as_str(),
            "7XYZ12"
        );
        assert_eq!(PlatePattern::parse("AB**12?3").unwrap().as_str(), "AB*12?3");
        assert!(PlatePattern::parse("AB*123").unwrap().is_wildcard());
        assert!(!PlatePattern::parse("AB123").unwrap().is_wildcard());
    }

    #[test]
    fn bad_plates_are_refused_with_a_reason() {
        assert_eq!(PlatePattern::parse(" - "), Err(EntryError::EmptyPlate));
        assert_eq!(PlatePattern::parse("0"), Err(EntryError::JunkPlate));
        assert_eq!(PlatePattern::parse("000"), Err(EntryError::JunkPlate));
        assert_eq!(PlatePattern::parse("XXXXXXX"), Err(EntryError::JunkPlate));
        assert_eq!(
            PlatePattern::parse("ABCDEFGHIJKLMNOP"),
            Err(EntryError::TooLong { len: 16 })
        );
        assert_eq!(PlatePattern::parse("AB#12"), Err(EntryError::BadCharacter));
        assert_eq!(
            PlatePattern::parse("A*1"),
            Err(EntryError::WildcardTooBroad)
        );
        assert_eq!(PlatePattern::parse("é123"), Err(EntryError::BadCharacter));
    }

    #[test]
    fn debug_never_shows_the_plate_or_note() {
        let mut e = Entry::new(
            PlatePattern::parse("SECRET1").unwrap(),
            Category::Wanted,
            Source::Agency,
        );
        e.note = Some("armed suspect".into());
        let s = format!("{e:?}");
        assert!(!s.contains("SECRET1") && !s.contains("armed"), "{s}");
    }

    #[test]
    fn categories_round_trip() {
        for c in Category::ALL {
            assert_eq!(Category::parse(c.as_str()), Ok(c));
            assert_eq!(Category::from_ncic_code(c.ncic_code()), Some(c));
        }
        assert_eq!(
            Category::parse("Stolen Vehicle"),
            Ok(Category::StolenVehicle)
        );
        assert_eq!(Category::parse("AMBER alert"), Ok(Category::Amber));
        assert!(Category::parse("unicorn").is_err());
    }

    #[test]
    fn regions_and_years() {
        assert_eq!(parse_region(" ca "), Ok("CA"));
        assert_eq!(parse_region("ON"), Ok("ON"));
        assert_eq!(parse_region("ZZ"), Err(EntryError::UnknownState));
        for (i, r) in REGIONS.iter().enumerate() {
            assert_eq!(region_number(r), Some(i as u8 + 1));
            assert_eq!(region_number(&r.to_ascii_lowercase()), Some(i as u8 + 1));
        }
        for bad in ["", "C", "CAL", "C1", "1C", "é", "  ", "Ω"] {
            assert_eq!(region_number(bad), None, "{bad:?}");
        }
        assert_eq!(Vehicle::parse_year("2019"), Ok(Some(2019)));
        assert_eq!(Vehicle::parse_year("19"), Ok(Some(2019)));
        assert_eq!(Vehicle::parse_year("87"), Ok(Some(1987)));
        assert_eq!(Vehicle::parse_year("0000"), Ok(None));
        assert_eq!(Vehicle::parse_year("2x19"), Err(EntryError::BadYear));
    }
}
