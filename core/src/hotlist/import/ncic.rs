//! NCIC extracts: the fixed-width layout (list code in column 0, incident date 19-26, plate
//! 27-36, state 37-38, plate year 39-42, vehicle year 45-48, make 49-52, model 53-55, colour
//! 58-) and the 11-field comma-separated layout (record id, state record id, date, plate, state,
//! registration year, vehicle year, make, model, body, colour).

use std::ops::Range;

use super::delimited::split_quoted;
use super::{Collector, FieldErrorKind, RejectReason, check_len};
use crate::hotlist::date::Date;
use crate::hotlist::entry::{
    Category, Entry, PlatePattern, Source, Vehicle, opt_field, parse_region,
};

const DATE: Range<usize> = 19..27;
const PLATE: Range<usize> = 27..37;
const STATE: Range<usize> = 37..39;
const VEHICLE_YEAR: Range<usize> = 45..49;
const MAKE: Range<usize> = 49..53;
const MODEL: Range<usize> = 53..56;
const COLOUR: usize = 58;
/// A fixed-width record must reach the plate field (trailing blank fields may be cut off).
const MIN_FIXED: usize = PLATE.start + 1;
const CSV_FIELDS: usize = 11;

pub(super) fn looks_like_fixed(line: &str) -> bool {
    let b = line.as_bytes();
    b.len() >= MIN_FIXED
        && line.is_ascii()
        && Category::from_ncic_code(b[0]).is_some()
        && b[DATE].iter().all(u8::is_ascii_digit)
}

/// Eleven comma-separated fields (quotes honoured).
pub(super) fn has_csv_shape(line: &str) -> bool {
    split_quoted(line, ',').is_ok_and(|f| f.len() == CSV_FIELDS)
}

/// Eleven fields, the first starting with an NCIC list code, and a plate.
pub(super) fn looks_like_csv(line: &str) -> bool {
    split_quoted(line, ',').is_ok_and(|f| {
        f.len() == CSV_FIELDS
            && f[0]
                .trim()
                .bytes()
                .next()
                .is_some_and(|c| Category::from_ncic_code(c).is_some())
            && !f[3].trim().is_empty()
    })
}

fn field(line: &str, r: Range<usize>) -> &str {
    let end = r.end.min(line.len());
    line.get(r.start.min(end)..end).unwrap_or("").trim()
}

pub(super) fn import_fixed(lines: &[&str], source: Source, out: &mut Collector) {
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        out.push(i, parse_fixed(line, source));
    }
}

fn parse_fixed(line: &str, source: Source) -> Result<Entry, RejectReason> {
    check_len(line)?;
    if !line.is_ascii() {
        return Err(RejectReason::NotAscii);
    }
    if line.len() < MIN_FIXED {
        return Err(RejectReason::LineTooShort {
            len: line.len(),
            need: MIN_FIXED,
        });
    }
    let category =
        Category::from_ncic_code(line.as_bytes()[0]).ok_or(RejectReason::UnknownListCode)?;
    let colour = line.get(COLOUR..).unwrap_or("");
    build(
        category,
        source,
        Fields {
            date: field(line, DATE),
            plate: field(line, PLATE),
            state: field(line, STATE),
            vehicle_year: field(line, VEHICLE_YEAR),
            make: field(line, MAKE),
            model: field(line, MODEL),
            colour,
        },
    )
}

pub(super) fn import_csv(lines: &[&str], source: Source, out: &mut Collector) {
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        // A header row naming the columns is skipped, not rejected.
        if out.records() == 0
            && !looks_like_csv(line)
            && line.to_ascii_uppercase().contains("PLATE")
        {
            continue;
        }
        out.push(i, parse_csv(line, source));
    }
}

fn parse_csv(line: &str, source: Source) -> Result<Entry, RejectReason> {
    check_len(line)?;
    let f = split_quoted(line, ',')?;
    if f.len() != CSV_FIELDS {
        return Err(RejectReason::FieldCount {
            expected: CSV_FIELDS,
            found: f.len(),
        });
    }
    let code = f[0]
        .trim()
        .bytes()
        .next()
        .ok_or(RejectReason::UnknownListCode)?;
    let category = Category::from_ncic_code(code).ok_or(RejectReason::UnknownListCode)?;
    build(
        category,
        source,
        Fields {
            date: &f[2],
            plate: &f[3],
            state: &f[4],
            vehicle_year: &f[6],
            make: &f[7],
            model: &f[8],
            colour: &f[10],
        },
    )
}

struct Fields<'a> {
    date: &'a str,
    plate: &'a str,
    state: &'a str,
    vehicle_year: &'a str,
    make: &'a str,
    model: &'a str,
    colour: &'a str,
}

fn build(category: Category, source: Source, f: Fields<'_>) -> Result<Entry, RejectReason> {
    let plate = PlatePattern::parse(f.plate).map_err(FieldErrorKind::plate)?;
    let mut e = Entry::new(plate, category, source);
    let state = f.state.trim();
    if !state.is_empty() {
        e.state = Some(
            parse_region(state)
                .map_err(FieldErrorKind::state)?
                .to_string(),
        );
    }
    let date = f.date.trim();
    if !date.is_empty() && !date.bytes().all(|b| b == b'0') {
        e.incident_date = Some(Date::parse(date).map_err(FieldErrorKind::date)?);
    }
    e.vehicle = Vehicle {
        make: opt_field(f.make).map(|s| s.to_ascii_uppercase()),
        model: opt_field(f.model).map(|s| s.to_ascii_uppercase()),
        colour: opt_field(f.colour).map(|s| s.to_ascii_uppercase()),
        year: Vehicle::parse_year(f.vehicle_year).map_err(FieldErrorKind::year)?,
    };
    Ok(e)
}
