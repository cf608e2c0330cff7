//! `platewatch hotlist import | check | status`, and the hot list set that `scan --hotlist`
//! matches reads against (from files, or from a device store), with per-list staleness.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use platewatch_core::hotlist::{
    Category, Edit, Entry, Format, ImportOptions, ImportReport, IndexEntry, Match, Matcher,
    MatcherConfig, Query, Source, import,
};
use platewatch_store::{ListMeta, Store};
use serde_json::json;

#[derive(Debug, Subcommand)]
pub enum HotlistCommand {
    /// Import hot list files: print counts and rejected lines; with --store, apply each file as
    /// a snapshot of a list in the device store (and report retro-hits on stored reads).
    Import(ImportArgs),
    /// Explain the match decision for a plate against hot lists.
    Check(CheckArgs),
    /// List versions, ages and staleness of the lists in a device store.
    Status(StatusArgs),
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    #[arg(value_name = "FILE", required = true)]
    files: Vec<PathBuf>,
    /// ncic-fixed, ncic-csv, california or delimited (default: detected per file).
    #[arg(long, value_name = "F")]
    format: Option<String>,
    /// Category for files that carry none (default: stolen_vehicle).
    #[arg(long)]
    category: Option<String>,
    /// Source recorded on the entries (ncic, state, agency, officer; default: by format).
    #[arg(long)]
    source: Option<String>,
    /// Rejected lines to print per file in text mode (all are in --json).
    #[arg(long, default_value_t = 20)]
    show_rejects: usize,
    /// Device store (SQLite file, created if missing) to apply the files to.
    #[arg(long, value_name = "DB")]
    store: Option<PathBuf>,
    /// List name in the store (default: the file name).
    #[arg(long)]
    list: Option<String>,
    /// Version of the snapshot (default: the file's modification time in Unix seconds).
    #[arg(long)]
    version: Option<i64>,
    /// Hours after which the list is stale unless refreshed.
    #[arg(long, default_value_t = 24.0)]
    max_age_hours: f64,
    /// Refuse nothing: apply files whose trailer says they are truncated, or whose every line
    /// was rejected (which empties the list), too.
    #[arg(long)]
    force: bool,
    #[arg(long)]
    json: bool,
}

/// Where hot lists come from, for `scan` and `check`.
#[derive(Debug, Clone, Args)]
pub struct HotlistSource {
    /// Hot list files to match reads against (any supported format).
    #[arg(long = "hotlist", value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Device store holding hot lists (see `platewatch hotlist import --store`).
    #[arg(long = "store", value_name = "DB")]
    pub store: Option<PathBuf>,
    /// Hours after which a hot list file (by modification time) is flagged stale.
    #[arg(long, default_value_t = 24.0)]
    pub max_age_hours: f64,
    /// Minimum match score that raises an alert (0..1).
    #[arg(long, default_value_t = MatcherConfig::default().alert_threshold)]
    pub alert_threshold: f32,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The plate as read (normalised: case, spaces and dashes do not matter).
    plate: String,
    /// Per-character reader confidences, comma separated (default: 0.99 each, a sure read).
    #[arg(long, value_name = "C,C,…")]
    confidences: Option<String>,
    /// State read with the plate, and its confidence.
    #[arg(long)]
    state: Option<String>,
    #[arg(long, default_value_t = 0.9)]
    state_confidence: f32,
    #[command(flatten)]
    source: HotlistSource,
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[arg(long, value_name = "DB", required = true)]
    store: PathBuf,
    #[arg(long)]
    json: bool,
}

pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

pub fn run(cmd: HotlistCommand) -> Result<ExitCode> {
    match cmd {
        HotlistCommand::Import(a) => run_import(a),
        HotlistCommand::Check(a) => run_check(a),
        HotlistCommand::Status(a) => run_status(a),
    }
}

fn import_options(
    format: &Option<String>,
    category: &Option<String>,
    source: &Option<String>,
) -> Result<ImportOptions> {
    Ok(ImportOptions {
        format: format
            .as_deref()
            .map(|f| {
                Format::parse(f).with_context(|| {
                    format!("unknown --format {f:?} (ncic-fixed, ncic-csv, california, delimited)")
                })
            })
            .transpose()?,
        category: category
            .as_deref()
            .map(|c| Category::parse(c).with_context(|| format!("unknown --category {c:?}")))
            .transpose()?,
        source: source
            .as_deref()
            .map(|s| Source::parse(s).with_context(|| format!("unknown --source {s:?}")))
            .transpose()?,
    })
}

/// Read and import one file.
pub fn import_file(path: &Path, opts: &ImportOptions) -> Result<ImportReport> {
    let bytes = crate::input::read_file(path, "hot list", crate::input::MAX_HOTLIST_BYTES)?;
    import(&bytes, opts).with_context(|| format!("cannot import {}", path.display()))
}

fn file_mtime(path: &Path) -> Option<i64> {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs() as i64)
}

fn list_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

fn run_import(a: ImportArgs) -> Result<ExitCode> {
    let opts = import_options(&a.format, &a.category, &a.source)?;
    if a.list.is_some() && a.files.len() > 1 {
        bail!("--list names one list: give one file with it");
    }
    if !(a.max_age_hours > 0.0 && a.max_age_hours.is_finite()) {
        bail!("--max-age-hours must be positive");
    }
    let rt = runtime()?;
    let store = match &a.store {
        Some(p) => Some(
            rt.block_on(Store::open(p))
                .with_context(|| format!("cannot open store {}", p.display()))?,
        ),
        None => None,
    };
    let mut failed = false;
    for path in &a.files {
        let report = match import_file(path, &opts) {
            Ok(r) => r,
            Err(e) => {
                failed = true;
                if a.json {
                    println!(
                        "{}",
                        json!({"file": path.display().to_string(), "error": format!("{e:#}")})
                    );
                } else {
                    eprintln!("error: {e:#}");
                }
                continue;
            }
        };
        let mut applied = serde_json::Value::Null;
        if let Some(store) = &store {
            let truncated = report.warnings.iter().any(|w| w.contains("truncated"));
            // A file whose every line was rejected would empty the list: the server refuses
            // that upload, and so does the device.
            let all_rejected = report.entries.is_empty() && !report.rejects.is_empty();
            if truncated && !a.force {
                failed = true;
                eprintln!(
                    "error: {} looks truncated; not applied as a snapshot (use --force)",
                    path.display()
                );
            } else if all_rejected && !a.force {
                failed = true;
                eprintln!(
                    "error: every line of {} was rejected ({}); the list is left as it was \
                     (use --force to empty it)",
                    path.display(),
                    report.rejects.len()
                );
            } else {
                let now = now_secs();
                let name = a.list.clone().unwrap_or_else(|| list_name(path));
                let version = a.version.or_else(|| file_mtime(path)).unwrap_or(now);
                let meta = ListMeta {
                    name: name.clone(),
                    source: opts.source.unwrap_or(report.format.default_source()),
                    max_age_secs: (a.max_age_hours * 3600.0).round().max(1.0) as i64,
                };
                let res = rt.block_on(async {
                    let ap = store
                        .apply_snapshot(&meta, version, None, &report.entries, now)
                        .await?;
                    // Retro-hits: reads stored in the last 30 days that the new entries match.
                    let hits = store
                        .retro_hits(&ap.added, now - 30 * 86_400, now, MatcherConfig::default())
                        .await?;
                    Ok::<_, platewatch_store::StoreError>((ap, hits))
                });
                match res {
                    Ok((ap, hits)) => {
                        applied = json!({"list": name, "version": version, "added": ap.added.len(),
                            "removed": ap.removed.len(), "retro_hits": hits.len()});
                        if !a.json {
                            println!(
                                "  applied to list {name:?} version {version}: {} added, {} removed, {} retro-hit(s)",
                                ap.added.len(),
                                ap.removed.len(),
                                hits.len()
                            );
                            for h in &hits {
                                println!(
                                    "  RETRO-HIT read #{} seen at {} matches entry #{} ({}, priority {}, {} score {:.2})",
                                    h.read_id,
                                    h.seen_at,
                                    h.matched.id,
                                    h.matched.category.as_str(),
                                    h.matched.priority,
                                    h.matched.kind.as_str(),
                                    h.matched.score
                                );
                            }
                        }
                    }
                    Err(e) => {
                        failed = true;
                        eprintln!("error: cannot apply {}: {e}", path.display());
                    }
                }
            }
        }
        if a.json {
            let mut v = serde_json::to_value(&report)?;
            v["file"] = path.display().to_string().into();
            v["entries"] = report.entries.len().into();
            v["rejected"] = report.rejects.len().into();
            v["applied"] = applied;
            println!("{v}");
        } else {
            print_report(path, &report, a.show_rejects);
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn print_report(path: &Path, r: &ImportReport, show: usize) {
    let wild = r.entries.iter().filter(|e| e.plate.is_wildcard()).count();
    println!(
        "{}: format {}, {} record line(s): {} imported ({} wildcard), {} rejected",
        path.display(),
        r.format,
        r.records,
        r.entries.len(),
        wild,
        r.rejects.len()
    );
    let mut by_cat: Vec<(Category, usize)> = Category::ALL
        .iter()
        .map(|&c| (c, r.entries.iter().filter(|e| e.category == c).count()))
        .filter(|&(_, n)| n > 0)
        .collect();
    by_cat.sort_by_key(|&(_, n)| std::cmp::Reverse(n));
    if !by_cat.is_empty() {
        let s: Vec<String> = by_cat
            .iter()
            .map(|(c, n)| format!("{} {n}", c.as_str()))
            .collect();
        println!("  categories: {}", s.join(", "));
    }
    for w in &r.warnings {
        println!("  warning: {w}");
    }
    for x in r.rejects.iter().take(show) {
        println!("  line {}: {}", x.line, x.reason);
    }
    if r.rejects.len() > show {
        println!(
            "  … {} more rejected line(s) (see --json)",
            r.rejects.len() - show
        );
    }
}

/// A list the scanner matches against, with its freshness.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ListInfo {
    pub name: String,
    pub received_at: i64,
    pub max_age_secs: i64,
}

impl ListInfo {
    pub fn age(&self, now: i64) -> i64 {
        (now - self.received_at).max(0)
    }
    pub fn stale(&self, now: i64) -> bool {
        self.age(now) > self.max_age_secs
    }
}

/// Hot lists loaded for matching: the matcher, the lists (by matcher list index) and the
/// entries (by matcher id) for alert details.
#[derive(Debug)]
pub struct HotlistSet {
    pub matcher: Matcher,
    pub lists: Vec<Option<ListInfo>>,
    pub entries: std::collections::HashMap<u32, Entry>,
}

impl HotlistSet {
    /// Load from files and/or a store. `None` when no hot list was asked for.
    pub fn load(src: &HotlistSource, quiet: bool) -> Result<Option<HotlistSet>> {
        if src.files.is_empty() && src.store.is_none() {
            return Ok(None);
        }
        if !(src.max_age_hours > 0.0 && src.max_age_hours.is_finite()) {
            bail!("--max-age-hours must be positive");
        }
        if !(0.0..=1.0).contains(&src.alert_threshold) {
            bail!("--alert-threshold must be within 0..1");
        }
        let config = MatcherConfig {
            alert_threshold: src.alert_threshold,
            ..MatcherConfig::default()
        };
        let mut lists: Vec<Option<ListInfo>> = Vec::new();
        let mut entries: std::collections::HashMap<u32, Entry> = Default::default();
        let mut index: Vec<(u32, u16)> = Vec::new();
        if let Some(db) = &src.store {
            let rt = runtime()?;
            let (status, stored) = rt
                .block_on(async {
                    let s = Store::open(db).await?;
                    Ok::<_, platewatch_store::StoreError>((
                        s.list_status(now_secs()).await?,
                        s.entries().await?,
                    ))
                })
                .with_context(|| format!("cannot load hot lists from {}", db.display()))?;
            for st in status {
                let i = usize::try_from(st.id).context("list id out of range")?;
                if lists.len() <= i {
                    lists.resize(i + 1, None);
                }
                lists[i] = Some(ListInfo {
                    name: st.name,
                    received_at: st.received_at,
                    max_age_secs: st.max_age_secs,
                });
            }
            for s in stored {
                index.push((
                    s.id,
                    u16::try_from(s.list_id).context("list id out of range")?,
                ));
                entries.insert(s.id, s.entry);
            }
        }
        let opts = ImportOptions::default();
        let mut next_id = entries.keys().max().map_or(0, |m| m + 1);
        for path in &src.files {
            let r = import_file(path, &opts)?;
            if !quiet && !r.rejects.is_empty() {
                eprintln!(
                    "warning: {}: {} line(s) rejected (see `platewatch hotlist import`)",
                    path.display(),
                    r.rejects.len()
                );
            }
            let list = u16::try_from(lists.len()).context("too many hot lists")?;
            lists.push(Some(ListInfo {
                name: list_name(path),
                received_at: file_mtime(path).unwrap_or_else(now_secs),
                max_age_secs: (src.max_age_hours * 3600.0).round().max(1.0) as i64,
            }));
            for e in r.entries {
                index.push((next_id, list));
                entries.insert(next_id, e);
                next_id += 1;
            }
        }
        let matcher = Matcher::build(
            index.iter().map(|&(id, list)| {
                let e = &entries[&id];
                IndexEntry {
                    id,
                    list,
                    plate: e.plate.as_str(),
                    state: e.state.as_deref(),
                    category: e.category,
                    priority: e.priority,
                    expires_at: e.expires_at,
                }
            }),
            config,
        )
        .context("cannot index the hot lists")?;
        Ok(Some(HotlistSet {
            matcher,
            lists,
            entries,
        }))
    }

    pub fn list(&self, m: &Match) -> Option<&ListInfo> {
        self.lists.get(m.list as usize).and_then(Option::as_ref)
    }

    /// One alert as JSON: entry plate, list, category, priority, kind, score, staleness.
    pub fn alert_json(&self, m: &Match, now: i64) -> serde_json::Value {
        let e = self.entries.get(&m.id);
        let l = self.list(m);
        json!({
            "entry_id": m.id,
            "entry_plate": e.map(|e| e.plate.as_str()),
            "entry_state": e.and_then(|e| e.state.as_deref()),
            "list": l.map(|l| l.name.as_str()),
            "category": m.category.as_str(),
            "priority": m.priority,
            "kind": m.kind.as_str(),
            "score": (m.score * 1000.0).round() / 1000.0,
            "lookalikes": m.lookalikes,
            "edit": m.edit,
            "state_check": m.state,
            "alert": m.alert,
            "list_age_secs": l.map(|l| l.age(now)),
            "stale": l.map(|l| l.stale(now)),
            "vehicle": e.map(|e| &e.vehicle),
        })
    }

    /// One alert as a text line.
    pub fn alert_line(&self, read: &str, m: &Match, now: i64) -> String {
        let e = self.entries.get(&m.id);
        let l = self.list(m);
        let stale = match l {
            Some(l) if l.stale(now) => format!("  STALE LIST ({}h old)", l.age(now) / 3600),
            _ => String::new(),
        };
        format!(
            "ALERT {read} ~ {} [{}] list {} {} priority {} {} score {:.2}{stale}",
            e.map_or("?", |e| e.plate.as_str()),
            e.and_then(|e| e.state.as_deref()).unwrap_or("--"),
            l.map_or("?", |l| l.name.as_str()),
            m.category.as_str(),
            m.priority,
            m.kind.as_str(),
            m.score,
        )
    }
}

fn parse_confidences(s: &Option<String>, n: usize) -> Result<Vec<f32>> {
    match s {
        None => Ok(vec![0.99; n]),
        Some(s) => {
            let v: Vec<f32> = s
                .split(',')
                .map(|x| x.trim().parse::<f32>())
                .collect::<Result<_, _>>()
                .context("--confidences must be comma-separated numbers")?;
            if v.len() != n {
                bail!(
                    "--confidences has {} value(s) but the plate has {n} character(s)",
                    v.len()
                );
            }
            if v.iter().any(|c| !(0.0..=1.0).contains(c)) {
                bail!("confidences must be within 0..1");
            }
            Ok(v)
        }
    }
}

fn describe(read: &str, entry: &str, m: &Match) -> String {
    let mut parts = Vec::new();
    let (r, e) = (read.as_bytes(), entry.as_bytes());
    let mut look = Vec::new();
    if m.kind != platewatch_core::hotlist::MatchKind::Wildcard {
        let (mut i, mut j) = (0, 0);
        while i < r.len() && j < e.len() {
            match m.edit {
                Some(Edit::Insert(k)) if i == k as usize => {
                    i += 1;
                    continue;
                }
                Some(Edit::Delete(k)) if j == k as usize => {
                    j += 1;
                    continue;
                }
                _ => {}
            }
            if r[i] != e[j] && platewatch_core::hotlist::lookalike::is_lookalike(r[i], e[j]) {
                look.push(format!("{}→{} at {}", r[i] as char, e[j] as char, i + 1));
            }
            i += 1;
            j += 1;
        }
    }
    if !look.is_empty() {
        parts.push(format!("look-alike {}", look.join(", ")));
    }
    match m.edit {
        Some(Edit::Substitute(k)) => parts.push(format!(
            "substitution at {} ({}→{})",
            k + 1,
            r.get(k as usize).map_or('?', |&b| b as char),
            e.get(k as usize).map_or('?', |&b| b as char)
        )),
        Some(Edit::Insert(k)) => parts.push(format!(
            "extra character {} at {}",
            r.get(k as usize).map_or('?', |&b| b as char),
            k + 1
        )),
        Some(Edit::Delete(k)) => parts.push(format!(
            "missing character {} at {}",
            e.get(k as usize).map_or('?', |&b| b as char),
            k + 1
        )),
        None => {}
    }
    parts.join("; ")
}

fn run_check(a: CheckArgs) -> Result<ExitCode> {
    let plate = platewatch_core::text::normalize_plate(&a.plate);
    if plate.is_empty() || plate.len() > platewatch_core::hotlist::entry::MAX_PLATE_LEN {
        bail!("the plate must have 1 to 15 letters or digits");
    }
    let conf = parse_confidences(&a.confidences, plate.len())?;
    if a.source.files.is_empty() && a.source.store.is_none() {
        bail!("give hot lists with --hotlist FILE or --store DB");
    }
    let set = HotlistSet::load(&a.source, a.json)?.context("no hot lists")?;
    let state = a
        .state
        .as_deref()
        .map(|s| {
            platewatch_core::hotlist::parse_region(s)
                .map_err(|_| anyhow::anyhow!("unknown --state {s:?}"))
        })
        .transpose()?;
    let q = Query {
        text: &plate,
        confidences: &conf,
        state,
        state_confidence: a.state_confidence,
    };
    let now = now_secs();
    let matches = set.matcher.explain(&q, now);
    let cfg = set.matcher.config();
    let alerting = matches.iter().filter(|m| m.alert).count();
    if a.json {
        let list: Vec<serde_json::Value> = matches.iter().map(|m| set.alert_json(m, now)).collect();
        println!(
            "{}",
            json!({"plate": plate, "entries": set.matcher.len(), "threshold": cfg.alert_threshold,
                   "alert": alerting > 0, "matches": list, "config": cfg})
        );
    } else {
        println!(
            "{plate}: {} candidate(s) in {} entries, {alerting} at or above the alert threshold {:.2}",
            matches.len(),
            set.matcher.len(),
            cfg.alert_threshold
        );
        for m in &matches {
            let entry = set.entries.get(&m.id).map_or("?", |e| e.plate.as_str());
            println!(
                "  {}",
                set.alert_line(&plate, m, now).replacen(
                    "ALERT ",
                    if m.alert { "ALERT " } else { "no alert " },
                    1
                )
            );
            let d = describe(&plate, entry, m);
            let state = format!("{:?}", m.state).to_lowercase();
            println!(
                "      {}state {state}",
                if d.is_empty() {
                    String::new()
                } else {
                    format!("{d}; ")
                }
            );
        }
        if matches.is_empty() {
            println!("  no entry is exact, look-alike, one edit or wildcard away");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn run_status(a: StatusArgs) -> Result<ExitCode> {
    if !a.store.exists() {
        bail!("no store at {}", a.store.display());
    }
    let rt = runtime()?;
    let now = now_secs();
    let status = rt
        .block_on(async { Store::open(&a.store).await?.list_status(now).await })
        .with_context(|| format!("cannot read {}", a.store.display()))?;
    let stale = status.iter().filter(|s| s.stale).count();
    if a.json {
        println!("{}", json!({"lists": status, "stale": stale}));
    } else {
        for s in &status {
            println!(
                "{:<24} v{:<12} {:>9} entries  age {:>6.1}h / max {:.1}h{}",
                s.name,
                s.version,
                s.entries,
                s.age_secs as f64 / 3600.0,
                s.max_age_secs as f64 / 3600.0,
                if s.stale { "  STALE" } else { "" }
            );
        }
        if status.is_empty() {
            println!("no hot lists in {}", a.store.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
