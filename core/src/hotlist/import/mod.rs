//! Hot list file importers: NCIC fixed width, NCIC comma separated, California-style and
//! generic delimited files, with format auto-detection. Each import yields the entries and a
//! report of every rejected line with its reason; corrupt or binary input is an error.

mod california;
mod delimited;
mod ncic;

use std::collections::HashMap;
use std::fmt;

use serde::Serialize;
use thiserror::Error;

use super::entry::{Category, Entry, EntryError, Source};

/// The field formats we import.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// NCIC fixed-width extract, one record per line.
    NcicFixed,
    /// NCIC comma-separated extract with 11 fields.
    NcicCsv,
    /// California-style: `DATE` header, fixed records, `TOTAL RECORD` trailer.
    California,
    /// Generic delimited (`;`, `,`, `:` or tab), with or without a header row.
    Delimited,
}

impl Format {
    pub const ALL: [Format; 4] = [
        Format::NcicFixed,
        Format::NcicCsv,
        Format::California,
        Format::Delimited,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Format::NcicFixed => "ncic-fixed",
            Format::NcicCsv => "ncic-csv",
            Format::California => "california",
            Format::Delimited => "delimited",
        }
    }

    /// Parse a format name as printed by [`Format::as_str`].
    pub fn parse(s: &str) -> Option<Format> {
        Format::ALL
            .into_iter()
            .find(|f| f.as_str().eq_ignore_ascii_case(s.trim()))
    }

    /// Where entries of this format come from when the caller does not say.
    pub fn default_source(self) -> Source {
        match self {
            Format::NcicFixed | Format::NcicCsv => Source::Ncic,
            Format::California => Source::State,
            Format::Delimited => Source::Agency,
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How to import a file.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Force a format; `None` detects it.
    pub format: Option<Format>,
    /// Source to record on the entries; `None` takes the format's default.
    pub source: Option<Source>,
    /// Category for formats that carry none (California-style, delimited files without a
    /// category column); `None` means stolen vehicle.
    pub category: Option<Category>,
}

/// Why one line was not imported. Never contains the plate.
#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum RejectReason {
    #[error("{0}")]
    Field(#[from] FieldErrorKind),
    #[error("line is too short for the format ({len} characters, need {need})")]
    LineTooShort { len: usize, need: usize },
    #[error("line is too long ({len} characters)")]
    LineTooLong { len: usize },
    #[error("expected {expected} fields, found {found}")]
    FieldCount { expected: usize, found: usize },
    #[error("unknown NCIC list code")]
    UnknownListCode,
    #[error("line holds non-ASCII characters in a fixed-width format")]
    NotAscii,
    #[error("duplicate of line {first}")]
    Duplicate { first: usize },
    #[error("unterminated quoted field")]
    UnterminatedQuote,
}

/// A field-level reason ([`EntryError`]) in serialisable form.
#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldErrorKind {
    #[error("plate: {0}")]
    Plate(String),
    #[error("state: {0}")]
    State(String),
    #[error("category: {0}")]
    Category(String),
    #[error("priority: {0}")]
    Priority(String),
    #[error("source: {0}")]
    Source(String),
    #[error("date: {0}")]
    Date(String),
    #[error("year: {0}")]
    Year(String),
}

impl FieldErrorKind {
    pub(crate) fn plate(e: EntryError) -> RejectReason {
        RejectReason::Field(FieldErrorKind::Plate(e.to_string()))
    }
    pub(crate) fn state(e: EntryError) -> RejectReason {
        RejectReason::Field(FieldErrorKind::State(e.to_string()))
    }
    pub(crate) fn category(e: EntryError) -> RejectReason {
        RejectReason::Field(FieldErrorKind::Category(e.to_string()))
    }
    pub(crate) fn priority(e: EntryError) -> RejectReason {
        RejectReason::Field(FieldErrorKind::Priority(e.to_string()))
    }
    pub(crate) fn source(e: EntryError) -> RejectReason {
        RejectReason::Field(FieldErrorKind::Source(e.to_string()))
    }
    pub(crate) fn date(e: EntryError) -> RejectReason {
        RejectReason::Field(FieldErrorKind::Date(e.to_string()))
    }
    pub(crate) fn year(e: EntryError) -> RejectReason {
        RejectReason::Field(FieldErrorKind::Year(e.to_string()))
    }
}

/// A rejected line: 1-based line number and reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reject {
    pub line: usize,
    pub reason: RejectReason,
}

/// What an import produced.
#[derive(Debug, Clone, Serialize)]
pub struct ImportReport {
    pub format: Format,
    /// Record lines seen (blank lines, header and trailer not counted).
    pub records: usize,
    #[serde(skip)]
    pub entries: Vec<Entry>,
    pub rejects: Vec<Reject>,
    /// File-level findings that did not stop the import (missing trailer, count mismatch).
    pub warnings: Vec<String>,
}

/// A file that cannot be imported at all.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ImportError {
    #[error("the file is empty")]
    Empty,
    #[error("the file looks binary (control byte 0x{byte:02x} at offset {offset}), not a hot list")]
    Binary { offset: usize, byte: u8 },
    #[error(
        "the format could not be recognised; pass --format (one of: ncic-fixed, ncic-csv, california, delimited)"
    )]
    UnknownFormat,
    #[error("{format}: {reason}")]
    Malformed { format: Format, reason: String },
    #[error("the file is too large ({len} bytes, at most {max})")]
    TooLarge { len: usize, max: usize },
}

/// Largest file accepted (1 GiB): far above any real extract.
pub const MAX_FILE_BYTES: usize = 1 << 30;
/// Longest line accepted in any format.
pub const MAX_LINE_CHARS: usize = 4096;

/// Import a hot list file.
pub fn import(bytes: &[u8], opts: &ImportOptions) -> Result<ImportReport, ImportError> {
    let text = decode(bytes)?;
    let lines = split_lines(&text);
    if lines.iter().all(|l| l.trim().is_empty()) {
        return Err(ImportError::Empty);
    }
    let format = match opts.format {
        Some(f) => f,
        None => detect_lines(&lines).ok_or(ImportError::UnknownFormat)?,
    };
    let source = opts.source.unwrap_or(format.default_source());
    let category = opts.category.unwrap_or(Category::StolenVehicle);
    let mut out = Collector::new(format);
    match format {
        Format::NcicFixed => ncic::import_fixed(&lines, source, &mut out),
        Format::NcicCsv => ncic::import_csv(&lines, source, &mut out),
        Format::California => california::import(&lines, source, category, &mut out)?,
        Format::Delimited => delimited::import(&lines, source, category, &mut out)?,
    }
    Ok(out.finish())
}

/// Guess the format of a file's text, if it can be recognised.
pub fn detect(bytes: &[u8]) -> Result<Format, ImportError> {
    let text = decode(bytes)?;
    detect_lines(&split_lines(&text)).ok_or(ImportError::UnknownFormat)
}

fn detect_lines(lines: &[&str]) -> Option<Format> {
    let sample: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| !l.trim().is_empty())
        .take(50)
        .collect();
    let first = *sample.first()?;
    if california::is_header(first) {
        return Some(Format::California);
    }
    let majority = |pred: &dyn Fn(&str) -> bool| {
        let n = sample.iter().filter(|l| pred(l)).count();
        n * 2 > sample.len()
    };
    let shaped = sample.iter().filter(|l| ncic::has_csv_shape(l)).count();
    let coded = sample.iter().filter(|l| ncic::looks_like_csv(l)).count();
    if shaped * 2 > sample.len() && coded * 2 >= shaped {
        return Some(Format::NcicCsv);
    }
    if majority(&ncic::looks_like_fixed) {
        return Some(Format::NcicFixed);
    }
    if delimited::sniff(&sample).is_some() {
        return Some(Format::Delimited);
    }
    None
}

/// UTF-8 (BOM stripped) or, failing that, Latin-1, which legacy extracts use. Refuses files with
/// NUL or other control bytes (other than tab, CR, LF, form feed).
fn decode(bytes: &[u8]) -> Result<String, ImportError> {
    if bytes.len() > MAX_FILE_BYTES {
        return Err(ImportError::TooLarge {
            len: bytes.len(),
            max: MAX_FILE_BYTES,
        });
    }
    if let Some(offset) = bytes
        .iter()
        .position(|&b| (b < 0x20 && !matches!(b, b'\t' | b'\r' | b'\n' | 0x0c)) || b == 0x7f)
    {
        return Err(ImportError::Binary {
            offset,
            byte: bytes[offset],
        });
    }
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if bytes.is_empty() {
        return Err(ImportError::Empty);
    }
    Ok(match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(_) => bytes.iter().map(|&b| char::from(b)).collect(),
    })
}

fn split_lines(text: &str) -> Vec<&str> {
    text.split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect()
}

/// Gathers entries and rejects, and rejects duplicates (same plate, state and category).
pub(crate) struct Collector {
    format: Format,
    records: usize,
    entries: Vec<Entry>,
    rejects: Vec<Reject>,
    warnings: Vec<String>,
    seen: HashMap<(String, Option<String>, Category), usize>,
}

impl Collector {
    fn new(format: Format) -> Self {
        Self {
            format,
            records: 0,
            entries: Vec::new(),
            rejects: Vec::new(),
            warnings: Vec::new(),
            seen: HashMap::new(),
        }
    }

    /// Record the outcome of one record line (0-based index `idx`).
    pub(crate) fn push(&mut self, idx: usize, r: Result<Entry, RejectReason>) {
        self.records += 1;
        let line = idx + 1;
        match r {
            Ok(e) => {
                let key = (e.plate.as_str().to_string(), e.state.clone(), e.category);
                if let Some(&first) = self.seen.get(&key) {
                    self.reject(idx, RejectReason::Duplicate { first });
                } else {
                    self.seen.insert(key, line);
                    self.entries.push(e);
                }
            }
            Err(reason) => self.reject(idx, reason),
        }
    }

    pub(crate) fn reject(&mut self, idx: usize, reason: RejectReason) {
        self.rejects.push(Reject {
            line: idx + 1,
            reason,
        });
    }

    pub(crate) fn warn(&mut self, w: String) {
        self.warnings.push(w);
    }

    pub(crate) fn records(&self) -> usize {
        self.records
    }

    fn finish(self) -> ImportReport {
        ImportReport {
            format: self.format,
            records: self.records,
            entries: self.entries,
            rejects: self.rejects,
            warnings: self.warnings,
        }
    }
}

/// Reject over-long lines before any format parses them.
pub(crate) fn check_len(line: &str) -> Result<(), RejectReason> {
    let len = line.chars().count();
    if len > MAX_LINE_CHARS {
        return Err(RejectReason::LineTooLong { len });
    }
    Ok(())
}

/// Parse an expiry: a date (expires at 00:00 UTC that day), `YYYY-MM-DDTHH:MM[:SS]Z`, or Unix
/// seconds.
pub(crate) fn parse_expiry(s: &str) -> Result<Option<i64>, EntryError> {
    use super::date::Date;
    let t = s.trim();
    if t.is_empty() {
        return Ok(None);
    }
    if t.len() > 10 && t.as_bytes().get(10) == Some(&b'T') {
        let day = Date::parse(&t[..10])?;
        let rest = t[11..].trim_end_matches('Z');
        let mut parts = rest.split(':');
        let mut next = |max: i64| -> Result<i64, EntryError> {
            match parts.next() {
                None => Ok(0),
                Some(p) if p.len() == 2 && p.bytes().all(|b| b.is_ascii_digit()) => {
                    let v: i64 = p.parse().map_err(|_| EntryError::BadDate)?;
                    if v > max {
                        Err(EntryError::BadDate)
                    } else {
                        Ok(v)
                    }
                }
                Some(_) => Err(EntryError::BadDate),
            }
        };
        let (h, m, sec) = (next(23)?, next(59)?, next(59)?);
        return Ok(Some(day.unix_seconds() + h * 3600 + m * 60 + sec));
    }
    if t.len() >= 9 && t.bytes().all(|b| b.is_ascii_digit()) && t.len() != 8 {
        return t.parse().map(Some).map_err(|_| EntryError::BadDate);
    }
    Ok(Some(Date::parse(t)?.unix_seconds()))
}

#[cfg(test)]
mod tests;
