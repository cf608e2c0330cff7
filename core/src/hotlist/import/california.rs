//! California-style extracts: a `DATE07/02/2018 09:00` header, records such as
//! `ABC123 CA0120180627` (plate field, state, county, incident date) and a
//! `TOTAL RECORD 0000072` trailer whose count is checked against the records read.
//!
//! Records are parsed from the right (the last 12 characters are state, county and date), so the
//! plate field may be 7 or 8 characters wide.

use super::{Collector, FieldErrorKind, ImportError, RejectReason, check_len};
use crate::hotlist::date::Date;
use crate::hotlist::entry::{Category, Entry, PlatePattern, Source, parse_region};

const TAIL: usize = 12;
const TRAILER: &str = "TOTAL RECORD";

pub(super) fn is_header(line: &str) -> bool {
    let t = line.trim();
    t.len() >= 14
        && t.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("DATE"))
        && t.get(4..14).is_some_and(|d| Date::parse(d).is_ok())
}

pub(super) fn import(
    lines: &[&str],
    source: Source,
    category: Category,
    out: &mut Collector,
) -> Result<(), ImportError> {
    let mut header_seen = false;
    let mut trailer: Option<(usize, Option<usize>)> = None;
    for (i, raw) in lines.iter().enumerate() {
        let line = raw.trim_end();
        if line.trim().is_empty() {
            continue;
        }
        if !header_seen && out.records() == 0 && is_header(line) {
            header_seen = true;
            continue;
        }
        if let Some(rest) = line
            .trim_start()
            .get(..TRAILER.len())
            .filter(|p| p.eq_ignore_ascii_case(TRAILER))
            .map(|_| line.trim_start()[TRAILER.len()..].trim())
        {
            if trailer.is_some() {
                out.warn(format!("line {}: a second TOTAL RECORD trailer", i + 1));
            }
            trailer = Some((i + 1, rest.parse().ok()));
            continue;
        }
        if let Some((tline, _)) = trailer {
            out.warn(format!(
                "line {}: record after the trailer on line {tline}",
                i + 1
            ));
        }
        out.push(i, parse_record(line, source, category));
    }
    if out.records() == 0 && !header_seen && trailer.is_none() {
        return Err(ImportError::Malformed {
            format: super::Format::California,
            reason: "no header, records or trailer".into(),
        });
    }
    if !header_seen {
        out.warn("no DATE header line".into());
    }
    match trailer {
        None => out.warn("no TOTAL RECORD trailer: the file may be truncated".into()),
        Some((line, None)) => out.warn(format!("line {line}: unreadable TOTAL RECORD count")),
        Some((line, Some(n))) if n != out.records() => out.warn(format!(
            "line {line}: trailer counts {n} records but the file holds {}",
            out.records()
        )),
        Some(_) => {}
    }
    Ok(())
}

fn parse_record(line: &str, source: Source, category: Category) -> Result<Entry, RejectReason> {
    check_len(line)?;
    if !line.is_ascii() {
        return Err(RejectReason::NotAscii);
    }
    let t = line.trim();
    if t.len() < TAIL + 1 {
        return Err(RejectReason::LineTooShort {
            len: t.len(),
            need: TAIL + 1,
        });
    }
    let (plate, tail) = t.split_at(t.len() - TAIL);
    let (state, rest) = tail.split_at(2);
    let (county, date) = rest.split_at(2);
    let plate = PlatePattern::parse(plate).map_err(FieldErrorKind::plate)?;
    let state = parse_region(state).map_err(FieldErrorKind::state)?;
    if !county.bytes().all(|b| b.is_ascii_digit()) {
        return Err(RejectReason::Field(FieldErrorKind::State(
            "county code is not two digits".into(),
        )));
    }
    let mut e = Entry::new(plate, category, source);
    e.state = Some(state.to_string());
    e.incident_date = Some(Date::parse(date).map_err(FieldErrorKind::date)?);
    Ok(e)
}
