//! Generic delimited hot lists: `;`, tab, `,` or `:` separated, with a header row whose column
//! names are mapped (plate, state, category, priority, …) or, without one, the column order
//! `plate;state;category;priority;source;make;model;colour;year;incident_date;expires;note`.

use super::{Collector, FieldErrorKind, ImportError, RejectReason, check_len, parse_expiry};
use crate::hotlist::date::Date;
use crate::hotlist::entry::{
    Category, Entry, EntryError, PlatePattern, Source, Vehicle, opt_field, parse_region,
};

const DELIMITERS: [char; 4] = [';', '\t', ',', ':'];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Col {
    Plate,
    State,
    Category,
    Priority,
    Source,
    Make,
    Model,
    Colour,
    Year,
    IncidentDate,
    Expires,
    Note,
    Ignore,
}

const DEFAULT_ORDER: [Col; 12] = [
    Col::Plate,
    Col::State,
    Col::Category,
    Col::Priority,
    Col::Source,
    Col::Make,
    Col::Model,
    Col::Colour,
    Col::Year,
    Col::IncidentDate,
    Col::Expires,
    Col::Note,
];

fn column(name: &str) -> Option<Col> {
    let n: String = name
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    Some(match n.as_str() {
        "plate" | "plates" | "tag" | "lpn" | "licenseplate" | "licence" | "license"
        | "platenumber" | "plateno" | "registration" | "vrm" => Col::Plate,
        "state" | "region" | "st" | "platestate" | "jurisdiction" | "province" => Col::State,
        "category" | "list" | "listtype" | "type" | "reason" | "alerttype" | "listcode" => {
            Col::Category
        }
        "priority" | "prio" | "level" => Col::Priority,
        "source" | "origin" | "agency" => Col::Source,
        "make" | "vehiclemake" | "vma" => Col::Make,
        "model" | "vehiclemodel" | "vmo" => Col::Model,
        "colour" | "color" | "vehiclecolour" | "vehiclecolor" | "vco" => Col::Colour,
        "year" | "vehicleyear" | "vyr" => Col::Year,
        "incidentdate" | "date" | "entered" | "entrydate" | "dateofincident" => Col::IncidentDate,
        "expires" | "expiry" | "expiration" | "expiresat" | "expirationdate" | "validuntil" => {
            Col::Expires
        }
        "note" | "notes" | "remarks" | "comment" | "comments" | "misc" => Col::Note,
        "id" | "recordid" | "body" | "platetype" | "plateyear" | "county" => Col::Ignore,
        _ => return None,
    })
}

/// Split a line on `delim`, honouring double-quoted fields (`""` is a literal quote).
pub(crate) fn split_quoted(line: &str, delim: char) -> Result<Vec<String>, RejectReason> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    let mut in_quotes = false;
    let mut at_start = true;
    while let Some(c) = chars.next() {
        if in_quotes {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    cur.push('"');
                } else {
                    in_quotes = false;
                }
            } else {
                cur.push(c);
            }
        } else if c == delim {
            fields.push(std::mem::take(&mut cur));
            at_start = true;
            continue;
        } else if c == '"' && at_start && cur.trim().is_empty() {
            cur.clear();
            in_quotes = true;
        } else {
            cur.push(c);
        }
        at_start = false;
    }
    if in_quotes {
        return Err(RejectReason::UnterminatedQuote);
    }
    fields.push(cur);
    Ok(fields)
}

/// The delimiter that splits most sample lines into the same number (≥ 2) of fields, or `None`
/// for a one-column file of plates. `None` overall when the sample is neither.
pub(super) fn sniff(sample: &[&str]) -> Option<Option<char>> {
    for d in DELIMITERS {
        let counts: Vec<usize> = sample
            .iter()
            .filter_map(|l| split_quoted(l, d).ok().map(|f| f.len()))
            .collect();
        let Some(&mode) = counts
            .iter()
            .max_by_key(|&&c| counts.iter().filter(|&&x| x == c).count())
        else {
            continue;
        };
        let agree = counts.iter().filter(|&&c| c == mode).count();
        if mode >= 2 && agree * 5 >= sample.len() * 4 {
            return Some(Some(d));
        }
    }
    // One column: most lines are plates (a header naming the column is allowed).
    let plates = sample
        .iter()
        .filter(|l| PlatePattern::parse(l).is_ok() || column(l) == Some(Col::Plate))
        .count();
    (plates * 5 >= sample.len() * 4).then_some(None)
}

pub(super) fn import(
    lines: &[&str],
    source: Source,
    category: Category,
    out: &mut Collector,
) -> Result<(), ImportError> {
    let sample: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| !l.trim().is_empty())
        .take(50)
        .collect();
    let delim = sniff(&sample).ok_or_else(|| ImportError::Malformed {
        format: super::Format::Delimited,
        reason: "no consistent delimiter (tried ; tab , :)".into(),
    })?;
    let split = |l: &str| match delim {
        Some(d) => split_quoted(l, d),
        None => Ok(vec![l.to_string()]),
    };
    let mut cols: Option<Vec<Col>> = None;
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        if cols.is_none() {
            // The first non-empty line is a header when it names a plate column and every
            // name is known (unknown names in a header are ignored only when the plate is
            // named).
            let names = split(line).unwrap_or_default();
            let mapped: Vec<Option<Col>> = names.iter().map(|n| column(n)).collect();
            if mapped.contains(&Some(Col::Plate))
                && mapped.iter().filter(|c| c.is_some()).count() * 2 >= mapped.len()
            {
                cols = Some(
                    mapped
                        .into_iter()
                        .map(|c| c.unwrap_or(Col::Ignore))
                        .collect(),
                );
                continue;
            }
            cols = Some(DEFAULT_ORDER.to_vec());
        }
        let layout = cols.as_deref().unwrap_or(&DEFAULT_ORDER);
        let r = check_len(line)
            .and_then(|_| split(line))
            .and_then(|f| parse_record(&f, layout, source, category));
        out.push(i, r);
    }
    Ok(())
}

fn parse_record(
    fields: &[String],
    layout: &[Col],
    source: Source,
    category: Category,
) -> Result<Entry, RejectReason> {
    if fields.len() > layout.len() {
        return Err(RejectReason::FieldCount {
            expected: layout.len(),
            found: fields.len(),
        });
    }
    let get = |c: Col| -> &str {
        layout
            .iter()
            .position(|&x| x == c)
            .and_then(|i| fields.get(i))
            .map_or("", |s| s.trim())
    };
    let plate = PlatePattern::parse(get(Col::Plate)).map_err(FieldErrorKind::plate)?;
    let cat = match get(Col::Category) {
        "" => category,
        s => Category::parse(s).map_err(FieldErrorKind::category)?,
    };
    let src = match get(Col::Source) {
        "" => source,
        s => Source::parse(s).map_err(FieldErrorKind::source)?,
    };
    let mut e = Entry::new(plate, cat, src);
    let state = get(Col::State);
    if !state.is_empty() {
        e.state = Some(
            parse_region(state)
                .map_err(FieldErrorKind::state)?
                .to_string(),
        );
    }
    match get(Col::Priority) {
        "" => {}
        s => {
            let p: u8 = s
                .parse()
                .map_err(|_| FieldErrorKind::priority(EntryError::BadPriority))?;
            if p > 100 {
                return Err(FieldErrorKind::priority(EntryError::BadPriority));
            }
            e.priority = p;
        }
    }
    e.vehicle = Vehicle {
        make: opt_field(get(Col::Make)).map(|s| s.to_ascii_uppercase()),
        model: opt_field(get(Col::Model)).map(|s| s.to_ascii_uppercase()),
        colour: opt_field(get(Col::Colour)).map(|s| s.to_ascii_uppercase()),
        year: Vehicle::parse_year(get(Col::Year)).map_err(FieldErrorKind::year)?,
    };
    let date = get(Col::IncidentDate);
    if !date.is_empty() {
        e.incident_date = Some(Date::parse(date).map_err(FieldErrorKind::date)?);
    }
    e.expires_at = parse_expiry(get(Col::Expires)).map_err(FieldErrorKind::date)?;
    e.note = opt_field(get(Col::Note));
    Ok(e)
}
