//! `platewatch bench hotlist`: builds a one-million-entry hot list in realistic plate formats
//! (1% wildcard entries) and measures, in the same run, the matcher's index against a linear
//! scan: build time, memory, lookup latency for exact and fuzzy reads, recall within the
//! advertised tolerance, delta cost and the false alert rate on random valid-format reads.

use std::collections::HashSet;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Result, bail};
use clap::Args;
use platewatch_core::hotlist::{
    Category, IndexEntry, Match, MatchKind, Matcher, MatcherConfig, Query, Scratch,
};
use serde_json::json;

use crate::scene::Rng;

#[derive(Debug, Args)]
pub struct HotlistBenchArgs {
    /// Entries in the generated list.
    #[arg(long, default_value_t = 1_000_000)]
    entries: usize,
    /// Timed lookups per kind (exact, fuzzy).
    #[arg(long, default_value_t = 100_000)]
    lookups: usize,
    /// Wildcard entries per thousand (the default list has 1%).
    #[arg(long, default_value_t = 10)]
    wildcard_per_mille: usize,
    /// Random reads for the false alert rate.
    #[arg(long, default_value_t = 1_000_000)]
    random_reads: usize,
    /// Fuzzy reads timed through the linear scan (each scans every entry).
    #[arg(long, default_value_t = 30)]
    linear_lookups: usize,
    /// Print a JSON object with the figures as the last line.
    #[arg(long)]
    json: bool,
}

/// Plate formats by region: `L` letter, `D` digit. Weighted roughly by fleet size.
const FORMATS: [(&str, &str, u32); 20] = [
    ("CA", "DLLLDDD", 14),
    ("TX", "LLLDDDD", 10),
    ("FL", "LLLLDD", 7),
    ("NY", "LLLDDDD", 6),
    ("PA", "LLLDDDD", 4),
    ("IL", "LLDDDDD", 4),
    ("OH", "LLLDDDD", 4),
    ("GA", "LLLDDDD", 4),
    ("NC", "LLLDDDD", 4),
    ("MI", "LLLDDDD", 4),
    ("NJ", "LDDLLL", 4),
    ("VA", "LLLDDDD", 4),
    ("WA", "LLLDDDD", 3),
    ("AZ", "LLLDLL", 3),
    ("MA", "DLLDDD", 3),
    ("MD", "DLLDDDD", 3),
    ("MN", "LLLDDD", 3),
    ("CO", "LLLLDD", 3),
    ("TN", "LLLDDD", 3),
    ("ON", "LLLLDDD", 2),
];

const CATS: [Category; 6] = [
    Category::StolenVehicle,
    Category::StolenPlate,
    Category::Wanted,
    Category::Felony,
    Category::Missing,
    Category::ProtectionOrder,
];

fn pick_format(rng: &mut Rng) -> (&'static str, &'static str) {
    let total: u32 = FORMATS.iter().map(|f| f.2).sum();
    let mut x = (rng.next_u64() % u64::from(total)) as u32;
    for (st, f, w) in FORMATS {
        if x < w {
            return (st, f);
        }
        x -= w;
    }
    (FORMATS[0].0, FORMATS[0].1)
}

fn random_plate(rng: &mut Rng, fmt: &str) -> String {
    fmt.bytes()
        .map(|c| {
            if c == b'L' {
                (b'A' + (rng.next_u64() % 26) as u8) as char
            } else {
                (b'0' + (rng.next_u64() % 10) as u8) as char
            }
        })
        .collect()
}

/// A partial plate as a witness reports it: one `?` or a `*` for a forgotten run, keeping at
/// least five literal characters.
fn wildcard_of(rng: &mut Rng, plate: &str) -> String {
    let b = plate.as_bytes();
    let n = b.len();
    if rng.next_u64() % 2 == 0 {
        let k = 1 + (rng.next_u64() as usize % (n - 2));
        let mut s = b.to_vec();
        s[k] = b'?';
        String::from_utf8(s).unwrap_or_default()
    } else {
        let k = 2 + (rng.next_u64() as usize % (n - 4).max(1));
        let mut s = b[..k].to_vec();
        s.push(b'*');
        s.extend_from_slice(&b[k + 1..]);
        String::from_utf8(s).unwrap_or_default()
    }
}

/// Per-character reader confidences of clean reads: 90% at 0.95-1.0, 8% at 0.8-0.95, 2% at
/// 0.5-0.8 (the shape our reader gives on real crops).
fn confidences(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n)
        .map(|_| {
            let u = rng.range(0.0, 1.0);
            let v = rng.range(0.0, 1.0);
            if u < 0.90 {
                0.95 + 0.05 * v
            } else if u < 0.98 {
                0.80 + 0.15 * v
            } else {
                0.5 + 0.3 * v
            }
        })
        .collect()
}

const LOOKALIKE: [(u8, u8); 12] = [
    (b'0', b'O'),
    (b'O', b'0'),
    (b'D', b'0'),
    (b'8', b'B'),
    (b'B', b'8'),
    (b'1', b'I'),
    (b'I', b'1'),
    (b'L', b'1'),
    (b'5', b'S'),
    (b'S', b'5'),
    (b'2', b'Z'),
    (b'6', b'G'),
];

/// A read of `plate` with one error inside the advertised tolerance, and its confidences.
/// Tolerance: one or two look-alikes read at confidence ≤ 0.7, or one substitution or extra
/// character read at confidence ≤ 0.3.
fn fuzzy_read(rng: &mut Rng, plate: &str) -> Option<(String, Vec<f32>)> {
    let mut b = plate.as_bytes().to_vec();
    let mut c = vec![0.99f32; b.len()];
    match rng.next_u64() % 3 {
        0 => {
            let spots: Vec<usize> = (0..b.len())
                .filter(|&i| LOOKALIKE.iter().any(|l| l.0 == b[i]))
                .collect();
            if spots.is_empty() {
                return None;
            }
            let i = spots[rng.next_u64() as usize % spots.len()];
            let to = LOOKALIKE.iter().find(|l| l.0 == b[i]).map(|l| l.1)?;
            b[i] = to;
            c[i] = 0.4 + 0.3 * rng.range(0.0, 1.0);
        }
        1 => {
            let i = rng.next_u64() as usize % b.len();
            let old = b[i];
            while b[i] == old
                || platewatch_core::hotlist::lookalike::class(b[i])
                    == platewatch_core::hotlist::lookalike::class(old)
            {
                b[i] = if old.is_ascii_digit() {
                    b'0' + (rng.next_u64() % 10) as u8
                } else {
                    b'A' + (rng.next_u64() % 26) as u8
                };
            }
            c[i] = 0.1 + 0.2 * rng.range(0.0, 1.0);
        }
        _ => {
            let i = rng.next_u64() as usize % (b.len() + 1);
            b.insert(i, b'A' + (rng.next_u64() % 26) as u8);
            c.insert(i, 0.1 + 0.2 * rng.range(0.0, 1.0));
        }
    }
    Some((String::from_utf8(b).ok()?, c))
}

/// Bring the read into cache before timing: a read the reader just produced is hot, while the
/// benchmark's pre-generated reads are scattered over a large heap.
fn touch(q: &Query<'_>) {
    let sum: u32 = q.text.bytes().map(u32::from).sum::<u32>()
        + q.confidences.iter().map(|c| c.to_bits() & 1).sum::<u32>();
    std::hint::black_box(sum);
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// Resident set size of this process in MB (Linux), for a cross-check of the index's own count.
fn rss_mb() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: f64 = s.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096.0 / 1_048_576.0)
}

fn literal_match(m: &Match) -> bool {
    matches!(m.kind, MatchKind::Exact) || (m.kind == MatchKind::Wildcard && m.lookalikes == 0)
}

pub fn run(a: HotlistBenchArgs) -> Result<ExitCode> {
    if a.entries < 1000 || a.lookups == 0 || a.random_reads == 0 {
        bail!("need at least 1000 entries and some lookups");
    }
    let mut rng = Rng::new(7);
    eprintln!("generating {} entries…", a.entries);
    let mut seen = HashSet::with_capacity(a.entries);
    let mut plates: Vec<(String, &'static str)> = Vec::with_capacity(a.entries);
    while plates.len() < a.entries {
        let (st, f) = pick_format(&mut rng);
        let p = random_plate(&mut rng, f);
        if seen.insert((p.clone(), st)) {
            plates.push((p, st));
        }
    }
    drop(seen);
    let n_wild = a.entries * a.wildcard_per_mille.min(1000) / 1000;
    for i in 0..n_wild {
        let k = (i * 97) % plates.len();
        plates[k].0 = wildcard_of(&mut rng, &plates[k].0);
    }
    let entry = |i: usize| IndexEntry {
        id: i as u32,
        list: (i % 4) as u16,
        plate: &plates[i].0,
        state: Some(plates[i].1),
        category: CATS[i % CATS.len()],
        priority: (i % 101) as u8,
        expires_at: None,
    };
    let rss0 = rss_mb();
    let t = Instant::now();
    let mut matcher = Matcher::build((0..plates.len()).map(entry), MatcherConfig::default())?;
    let build_ms = t.elapsed().as_secs_f64() * 1000.0;
    let rss1 = rss_mb();
    let memory_mb = matcher.heap_bytes() as f64 / 1_048_576.0;
    eprintln!("built in {build_ms:.0} ms, index {memory_mb:.1} MB");

    let exact_ids: Vec<usize> = (0..a.lookups)
        .map(|_| {
            loop {
                let i = rng.next_u64() as usize % plates.len();
                if !plates[i].0.contains(['*', '?']) {
                    break i;
                }
            }
        })
        .collect();
    let mut scratch = Scratch::default();
    let mut out = Vec::new();
    let now = 0;

    // Exact reads.
    let pb = crate::progress(a.lookups as u64 * 2, "lookups");
    let mut exact_us = Vec::with_capacity(a.lookups);
    let mut exact_found = 0usize;
    let conf99 = vec![0.99f32; 16];
    for &i in &exact_ids {
        let q = Query {
            text: &plates[i].0,
            confidences: &conf99,
            state: None,
            state_confidence: 0.0,
        };
        touch(&q);
        let t = Instant::now();
        matcher.lookup(&q, now, &mut scratch, &mut out);
        exact_us.push(t.elapsed().as_secs_f64() * 1e6);
        exact_found += usize::from(out.iter().any(|m| m.id == i as u32 && m.alert));
        pb.inc(1);
    }

    // Fuzzy reads within the advertised tolerance.
    let mut fuzzy: Vec<(usize, String, Vec<f32>)> = Vec::with_capacity(a.lookups);
    let mut k = 0;
    while fuzzy.len() < a.lookups {
        let i = exact_ids[k % exact_ids.len()];
        k += 1;
        if let Some((text, c)) = fuzzy_read(&mut rng, &plates[i].0) {
            fuzzy.push((i, text, c));
        }
    }
    let mut fuzzy_us = Vec::with_capacity(a.lookups);
    let mut fuzzy_found = 0usize;
    for (i, text, c) in &fuzzy {
        let q = Query {
            text,
            confidences: c,
            state: None,
            state_confidence: 0.0,
        };
        touch(&q);
        let t = Instant::now();
        matcher.lookup(&q, now, &mut scratch, &mut out);
        fuzzy_us.push(t.elapsed().as_secs_f64() * 1e6);
        // The read may also hit another entry literally (then the one-edit search is skipped
        // by design: the read explains itself); count it found when the source entry alerts
        // or the explain path finds it.
        let hit = out.iter().any(|m| m.id == *i as u32 && m.alert)
            || matcher
                .explain(&q, now)
                .iter()
                .any(|m| m.id == *i as u32 && m.alert);
        fuzzy_found += usize::from(hit);
        pb.inc(1);
    }
    pb.finish_and_clear();

    // Linear scan on a sample of the same fuzzy reads.
    let mut linear_us = Vec::new();
    let mut linear_agree = 0usize;
    for (_, text, c) in fuzzy.iter().take(a.linear_lookups) {
        let q = Query {
            text,
            confidences: c,
            state: None,
            state_confidence: 0.0,
        };
        let t = Instant::now();
        let lin = matcher.linear_scan(&q, now);
        linear_us.push(t.elapsed().as_secs_f64() * 1e6);
        let mut idx = matcher.explain(&q, now);
        let mut lin = lin;
        idx.sort_by_key(|m| m.id);
        lin.sort_by_key(|m| m.id);
        linear_agree += usize::from(idx == lin);
    }

    // False alerts: random valid-format reads with realistic confidences. Reads that are on
    // the list literally (exact, or inside a wildcard pattern) are true hits, not false alerts.
    let pb = crate::progress(a.random_reads as u64, "random reads");
    let mut false_alerts = 0usize;
    let mut literal_hits = 0usize;
    let mut by_kind = [0usize; 4];
    for j in 0..a.random_reads {
        let (_, f) = pick_format(&mut rng);
        let p = random_plate(&mut rng, f);
        let c = confidences(&mut rng, p.len());
        let q = Query {
            text: &p,
            confidences: &c,
            state: None,
            state_confidence: 0.0,
        };
        matcher.lookup(&q, now, &mut scratch, &mut out);
        let alerts: Vec<&Match> = out.iter().filter(|m| m.alert).collect();
        if alerts.iter().any(|m| literal_match(m)) {
            literal_hits += 1;
        } else if let Some(m) = alerts.first() {
            false_alerts += 1;
            by_kind[m.kind as usize] += 1;
        }
        if j % 4096 == 0 {
            pb.set_position(j as u64);
        }
    }
    pb.finish_and_clear();
    let false_alert_rate = false_alerts as f64 / a.random_reads as f64;

    // Delta: remove 1,000 entries and add 1,000 new ones.
    let remove: Vec<u32> = (0..1000).map(|i| (i * 911 % plates.len()) as u32).collect();
    let fresh: Vec<String> = (0..1000)
        .map(|_| {
            let f = pick_format(&mut rng).1;
            random_plate(&mut rng, f)
        })
        .collect();
    let base = plates.len() as u32;
    let t = Instant::now();
    matcher.apply_delta(
        &remove,
        fresh.iter().enumerate().map(|(i, p)| IndexEntry {
            id: base + i as u32,
            list: 0,
            plate: p,
            state: None,
            category: Category::Wanted,
            priority: 80,
            expires_at: None,
        }),
    )?;
    let delta_ms = t.elapsed().as_secs_f64() * 1000.0;
    let removed_gone = remove.iter().all(|&id| {
        let p = &plates[id as usize].0;
        p.contains(['*', '?'])
            || !matcher
                .alerts(&Query::typed(p), now)
                .iter()
                .any(|m| m.id == id)
    });
    let added_found = fresh.iter().enumerate().all(|(i, p)| {
        matcher
            .alerts(&Query::typed(p), now)
            .iter()
            .any(|m| m.id == base + i as u32)
    });

    let exact_p50 = percentile(&mut exact_us, 0.5);
    let exact_p99 = percentile(&mut exact_us, 0.99);
    let fuzzy_p50 = percentile(&mut fuzzy_us, 0.5);
    let fuzzy_p99 = percentile(&mut fuzzy_us, 0.99);
    let linear_p50 = percentile(&mut linear_us, 0.5);
    let linear_p99 = percentile(&mut linear_us, 0.99);
    let exact_recall = exact_found as f64 / exact_ids.len() as f64;
    let fuzzy_recall = fuzzy_found as f64 / fuzzy.len() as f64;
    println!(
        "hot list: {} entries ({} wildcard), 4 lists",
        plates.len(),
        n_wild
    );
    println!(
        "  build          {build_ms:>9.1} ms     index memory {memory_mb:.1} MB (RSS +{:.1} MB)",
        rss1.zip(rss0).map_or(0.0, |(b, a)| b - a)
    );
    println!(
        "  exact lookup   p50 {exact_p50:>7.2} us  p99 {exact_p99:>7.2} us  recall {exact_recall:.4}"
    );
    println!(
        "  fuzzy lookup   p50 {fuzzy_p50:>7.2} us  p99 {fuzzy_p99:>7.2} us  recall {fuzzy_recall:.4}"
    );
    println!(
        "  linear scan    p50 {linear_p50:>7.0} us  p99 {linear_p99:>7.0} us  ({:.0}x slower at p99; same answers {}/{})",
        linear_p99 / fuzzy_p99.max(1e-9),
        linear_agree,
        linear_us.len()
    );
    println!(
        "  random reads   {} : {false_alerts} false alert(s) (rate {false_alert_rate:.2e}; look-alike {}, one-edit {}, wildcard {}), {literal_hits} on the list literally",
        a.random_reads,
        by_kind[MatchKind::LookAlike as usize],
        by_kind[MatchKind::OneEdit as usize],
        by_kind[MatchKind::Wildcard as usize]
    );
    println!(
        "  delta -1000/+1000 {delta_ms:.1} ms; removed entries silent: {removed_gone}; added entries found: {added_found}"
    );
    if a.json {
        println!(
            "{}",
            json!({
                "entries": plates.len(),
                "wildcard_entries": n_wild,
                "build_ms": build_ms,
                "memory_mb": memory_mb,
                "exact_p50_us": exact_p50,
                "exact_p99_us": exact_p99,
                "fuzzy_p50_us": fuzzy_p50,
                "fuzzy_p99_us": fuzzy_p99,
                "linear_fuzzy_p50_us": linear_p50,
                "linear_fuzzy_p99_us": linear_p99,
                "exact_recall": exact_recall,
                "fuzzy_recall": fuzzy_recall,
                "linear_agreement": linear_agree as f64 / linear_us.len().max(1) as f64,
                "false_alert_rate": false_alert_rate,
                "random_reads": a.random_reads,
                "literal_hit_rate": literal_hits as f64 / a.random_reads as f64,
                "delta_ms": delta_ms,
                "delta_removed_silent": removed_gone,
                "delta_added_found": added_found,
            })
        );
    }
    Ok(ExitCode::SUCCESS)
}
