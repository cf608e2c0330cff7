//! `platewatch eval LABELS.csv`: detection recall/precision and reading accuracy on labelled
//! scenes (`image,x,y,w,h,text`) or plate crops (`image,text[,state]`).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;

use platewatch_core::hotlist::{Category, IndexEntry, Matcher, MatcherConfig, PlatePattern, Query};
use platewatch_core::reader::PlateText;
use platewatch_core::text::{char_accuracy, normalize_plate, normalize_state};
use platewatch_core::{BBox, Effort, Frame};
use serde_json::json;

use crate::ModelArgs;

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// CSV with a header; image paths relative to the CSV's folder.
    #[arg(value_name = "LABELS.csv")]
    labels: PathBuf,
    /// Print a JSON object with the figures as the last line.
    #[arg(long)]
    json: bool,
    /// Print the image of every miss (no plate text).
    #[arg(long)]
    verbose: bool,
    /// Write every misread (image, label, read, its confidence, IoU of the detection) to this
    /// CSV file. Plate text goes to this file only, never to the terminal or a log.
    #[arg(long, value_name = "FILE")]
    errors: Option<PathBuf>,
    #[command(flatten)]
    model: ModelArgs,
}

/// Splits one CSV line (double-quoted fields allowed).
pub fn split_csv(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter().map(|s| s.trim().to_string()).collect()
}

struct Labelled {
    image: PathBuf,
    plate: Option<(BBox, String)>,
}

struct CropLabel {
    image: PathBuf,
    text: String,
    state: Option<String>,
    /// The plate's country, as `platewatch_core::text::REGIONS` names it.
    region: Option<String>,
}

enum Labels {
    Scenes(BTreeMap<PathBuf, Vec<(BBox, String)>>),
    Crops(Vec<CropLabel>),
}

fn parse_labels(path: &Path) -> Result<Labels> {
    let body =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut lines = body
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines
        .next()
        .with_context(|| format!("{} is empty", path.display()))?;
    let cols: Vec<String> = split_csv(header)
        .into_iter()
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let col = |name: &str| cols.iter().position(|c| c == name);
    let image_col = col("image")
        .with_context(|| format!("{}: header has no `image` column", path.display()))?;
    let text_col = col("text");
    let is_scene = ["x", "y", "w", "h"].iter().all(|c| col(c).is_some());
    if !is_scene && text_col.is_none() {
        bail!(
            "{}: header must be `image,x,y,w,h,text` (scenes) or `image,text[,state][,region]` (crops)",
            path.display()
        );
    }
    let mut rows = Vec::new();
    let mut crops = Vec::new();
    for (n, line) in lines {
        let f = split_csv(line);
        let get = |i: Option<usize>| i.and_then(|i| f.get(i)).map(String::as_str).unwrap_or("");
        let image = base.join(get(Some(image_col)));
        if get(Some(image_col)).is_empty() {
            bail!("{}:{}: empty image path", path.display(), n + 1);
        }
        let text = normalize_plate(get(text_col));
        if is_scene {
            let xs: Vec<&str> = ["x", "y", "w", "h"].iter().map(|c| get(col(c))).collect();
            let plate = if xs.iter().all(|s| s.is_empty()) {
                None
            } else {
                let v: Vec<f32> = xs
                    .iter()
                    .map(|s| s.parse::<f32>())
                    .collect::<Result<_, _>>()
                    .with_context(|| {
                        format!("{}:{}: box values must be numbers", path.display(), n + 1)
                    })?;
                Some((BBox::new(v[0], v[1], v[2], v[3]), text))
            };
            rows.push(Labelled { image, plate });
        } else {
            let state = col("state")
                .map(|i| get(Some(i)).to_ascii_uppercase())
                .filter(|s| !s.is_empty());
            let region = col("region")
                .map(|i| get(Some(i)).trim().to_string())
                .filter(|s| !s.is_empty());
            crops.push(CropLabel {
                image,
                text,
                state,
                region,
            });
        }
    }
    if is_scene {
        let mut scenes: BTreeMap<PathBuf, Vec<(BBox, String)>> = BTreeMap::new();
        for r in rows {
            let e = scenes.entry(r.image).or_default();
            if let Some(p) = r.plate {
                e.push(p);
            }
        }
        Ok(Labels::Scenes(scenes))
    } else {
        Ok(Labels::Crops(crops))
    }
}

pub fn run(args: EvalArgs) -> Result<ExitCode> {
    let labels = parse_labels(&args.labels)?;
    let engine = args.model.engine()?;
    let mut ms = Vec::new();
    let mut failures = 0u64;
    let summary = match labels {
        Labels::Scenes(scenes) => {
            let (mut plates, mut detected, mut dets, mut true_dets) = (0u64, 0u64, 0u64, 0u64);
            let (mut raw_dets, mut raw_true, mut reported) = (0u64, 0u64, 0u64);
            let (mut iou50, mut iou70, mut false_reported) = (0u64, 0u64, 0u64);
            let rule = engine.config().tracker.clone();
            let (mut with_text, mut exact, mut chars, mut matched) = (0u64, 0u64, 0f64, 0u64);
            let mut reliability = Reliability::default();
            let hot = LabelList::build(scenes.values().flatten().map(|(_, t)| t.as_str()))?;
            let mut errors = match &args.errors {
                Some(p) => Some(ErrorsFile::create(p)?),
                None => None,
            };
            let pb = crate::progress(scenes.len() as u64, "evaluating scenes");
            for (image, truth) in &scenes {
                pb.inc(1);
                let img = match crate::media::load_image(image) {
                    Ok(i) => i,
                    Err(e) => {
                        failures += 1;
                        pb.suspend(|| eprintln!("error: {e:#}"));
                        continue;
                    }
                };
                let (w, h) = (img.width() as usize, img.height() as usize);
                let frame = Frame::rgb8(img.as_raw(), w, h, w * 3)?;
                let t0 = Instant::now();
                let obs = engine.analyze(&frame, Effort::Still)?;
                ms.push(t0.elapsed().as_secs_f64() * 1000.0);
                let is_true = |o: &platewatch_core::Observation| {
                    truth.iter().any(|(b, _)| matches(b, &o.detection.bbox))
                };
                raw_dets += obs.len() as u64;
                raw_true += obs.iter().filter(|o| is_true(o)).count() as u64;
                // Precision of what the pipeline reports: detections the reader confirms.
                let confirmed: Vec<_> = obs.iter().filter(|o| o.is_confirmed(&rule)).collect();
                dets += confirmed.len() as u64;
                let confirmed_true = confirmed.iter().filter(|o| is_true(o)).count() as u64;
                true_dets += confirmed_true;
                false_reported += confirmed.len() as u64 - confirmed_true;
                for (b, text) in truth {
                    plates += 1;
                    let best =
                        obs.iter()
                            .filter(|o| matches(b, &o.detection.bbox))
                            .max_by(|x, y| {
                                b.iou(&x.detection.bbox)
                                    .total_cmp(&b.iou(&y.detection.bbox))
                            });
                    if confirmed.iter().any(|o| matches(b, &o.detection.bbox)) {
                        reported += 1;
                    }
                    let iou = best.map_or(0.0, |o| b.iou(&o.detection.bbox));
                    iou50 += u64::from(iou >= 0.5);
                    iou70 += u64::from(iou >= 0.7);
                    if best.is_some() {
                        detected += 1;
                    } else if args.verbose {
                        pb.suspend(|| eprintln!("missed plate in {}", image.display()));
                    }
                    if !text.is_empty() {
                        with_text += 1;
                        let got = best.map(|o| o.text.text.as_str()).unwrap_or("");
                        exact += u64::from(got == text);
                        chars += char_accuracy(got, text);
                        // An alert needs a read the pipeline reports (confirmed as a plate).
                        matched += u64::from(best.is_some_and(|o| {
                            o.is_confirmed(&rule) && hot.alerts_on(&o.text, text)
                        }));
                        if let Some(o) = best.filter(|o| !o.text.text.is_empty()) {
                            reliability.add(o.text.confidence, got == text);
                        }
                        if got != text
                            && let Some(f) = &mut errors
                        {
                            let confidence = best.map_or(0.0, |o| o.text.confidence);
                            f.write(image, text, got, confidence, iou)?;
                        }
                    }
                }
            }
            pb.finish_and_clear();
            if let Some(f) = errors {
                f.finish()?;
            }
            let rate = |a: u64, b: u64| (b > 0).then(|| a as f64 / b as f64);
            let images = scenes.len() as u64 - failures;
            json!({
                "images": images,
                "plates": plates,
                "detection_recall": rate(detected, plates),
                "detection_recall_iou50": rate(iou50, plates),
                "detection_recall_iou70": rate(iou70, plates),
                "detection_precision": rate(true_dets, dets),
                "false_detections_per_image": rate(false_reported, images),
                "reported_recall": rate(reported, plates),
                "raw_detection_precision": rate(raw_true, raw_dets),
                "exact_rate": rate(exact, with_text),
                "match_rate": rate(matched, with_text),
                "reliability": reliability.json(),
                "char_accuracy": (with_text > 0).then(|| chars / with_text as f64),
                "state_rate": null,
                "ms_per_image": crate::median(&mut ms),
            })
        }
        Labels::Crops(crops) => {
            let (mut n, mut exact, mut chars, mut states, mut state_ok) =
                (0u64, 0u64, 0f64, 0u64, 0u64);
            let (mut regions, mut region_ok) = (0u64, 0u64);
            let pb = crate::progress(crops.len() as u64, "evaluating crops");
            for c in &crops {
                pb.inc(1);
                let img = match crate::media::load_image(&c.image) {
                    Ok(i) => i,
                    Err(e) => {
                        failures += 1;
                        pb.suspend(|| eprintln!("error: {e:#}"));
                        continue;
                    }
                };
                let (w, h) = (img.width() as usize, img.height() as usize);
                let frame = Frame::rgb8(img.as_raw(), w, h, w * 3)?;
                let t0 = Instant::now();
                let read = engine.read_crop(&frame)?;
                ms.push(t0.elapsed().as_secs_f64() * 1000.0);
                n += 1;
                let ok = read.text == c.text;
                exact += u64::from(ok);
                chars += char_accuracy(&read.text, &c.text);
                if !ok && args.verbose {
                    pb.suspend(|| eprintln!("miss {}", c.image.display()));
                }
                if let Some(s) = &c.state {
                    states += 1;
                    state_ok += u64::from(read.state.is_some() && read.state == normalize_state(s));
                }
                if let Some(r) = &c.region {
                    regions += 1;
                    region_ok += u64::from(read.region.is_some_and(|g| g.eq_ignore_ascii_case(r)));
                }
            }
            pb.finish_and_clear();
            let rate = |a: u64, b: u64| (b > 0).then(|| a as f64 / b as f64);
            json!({
                "images": n,
                "plates": n,
                "detection_recall": null,
                "detection_precision": null,
                "reported_recall": null,
                "exact_rate": rate(exact, n),
                "char_accuracy": (n > 0).then(|| chars / n as f64),
                "state_rate": rate(state_ok, states),
                "region_rate": rate(region_ok, regions),
                "ms_per_image": crate::median(&mut ms),
            })
        }
    };
    let show = |k: &str| match summary[k].as_f64() {
        Some(v) if k == "ms_per_image" => format!("{v:.2}"),
        Some(v) => format!("{:.4}", v),
        None => "n/a".into(),
    };
    println!("{:<26} {}", "images", summary["images"]);
    println!("{:<26} {}", "plates", summary["plates"]);
    for k in [
        "detection_recall",
        "detection_recall_iou50",
        "detection_recall_iou70",
        "detection_precision",
        "false_detections_per_image",
        "reported_recall",
        "exact_rate",
        "match_rate",
        "char_accuracy",
        "state_rate",
        "region_rate",
        "ms_per_image",
    ] {
        if !summary[k].is_null() || !(k.starts_with("detection_recall_") || k == "region_rate") {
            println!("{k:<26} {}", show(k));
        }
    }
    if let Some(bins) = summary["reliability"].as_array() {
        println!("reliability (reads of texted plates by reported confidence):");
        for b in bins {
            println!(
                "  confidence {:>4} - {:<4} reads {:>5}  exact {}",
                b["from"],
                b["to"],
                b["reads"],
                b["exact_rate"]
                    .as_f64()
                    .map_or("n/a".into(), |v| format!("{v:.3}"))
            );
        }
    }
    if failures > 0 {
        eprintln!("{failures} image(s) could not be read");
    }
    if args.json {
        println!("{summary}");
    }
    Ok(if failures > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// A hot list holding every labelled text, matched with the matcher's default settings: a read
/// "matches" when it raises an alert on its own label's entry (what an officer would see).
struct LabelList {
    ids: BTreeMap<String, u32>,
    matcher: Matcher,
}

impl LabelList {
    fn build<'a>(texts: impl Iterator<Item = &'a str>) -> Result<Self> {
        let mut ids = BTreeMap::new();
        // A label the hot list format refuses (too short, say) can never alert.
        for t in texts.filter(|t| PlatePattern::parse(t).is_ok()) {
            let n = ids.len() as u32;
            ids.entry(t.to_string()).or_insert(n);
        }
        let matcher = Matcher::build(
            ids.iter().map(|(plate, &id)| IndexEntry {
                id,
                list: 0,
                plate,
                state: None,
                category: Category::Wanted,
                priority: 50,
                expires_at: None,
            }),
            MatcherConfig::default(),
        )
        .context("a label is not a valid hot list plate")?;
        Ok(Self { ids, matcher })
    }

    fn alerts_on(&self, read: &PlateText, label: &str) -> bool {
        let Some(&id) = self.ids.get(label) else {
            return false;
        };
        let q = Query {
            text: &read.text,
            confidences: &read.char_confidences,
            state: read.state,
            state_confidence: read.state_confidence,
        };
        self.matcher.alerts(&q, 0).iter().any(|m| m.id == id)
    }
}

/// Reads binned by their reported (mean character) confidence, each bin with the share that
/// is exact: whether a confidence means what it says.
#[derive(Default)]
struct Reliability {
    /// (reads, exact) per bin of `RELIABILITY_EDGES`.
    bins: [(u64, u64); RELIABILITY_EDGES.len() - 1],
}

const RELIABILITY_EDGES: [f64; 7] = [0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 1.0];
/// The first bin of reads reported at 0.9 or more.
const CONFIDENT_BIN: usize = 4;

impl Reliability {
    fn add(&mut self, confidence: f32, exact: bool) {
        let i = RELIABILITY_EDGES[1..]
            .iter()
            .position(|&hi| f64::from(confidence) < hi)
            .unwrap_or(self.bins.len() - 1);
        self.bins[i].0 += 1;
        self.bins[i].1 += u64::from(exact);
    }

    fn json(&self) -> serde_json::Value {
        let row = |from: f64, to: f64, (n, ok): (u64, u64)| {
            json!({
                "from": from,
                "to": to,
                "reads": n,
                "exact_rate": (n > 0).then(|| ok as f64 / n as f64),
            })
        };
        let mut rows: Vec<_> = self
            .bins
            .iter()
            .enumerate()
            .map(|(i, &b)| row(RELIABILITY_EDGES[i], RELIABILITY_EDGES[i + 1], b))
            .collect();
        // The bar's figure: every read reported at 0.9 or more.
        let confident = self.bins[CONFIDENT_BIN..]
            .iter()
            .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
        rows.push(row(RELIABILITY_EDGES[CONFIDENT_BIN], 1.0, confident));
        serde_json::Value::Array(rows)
    }
}

/// `--errors FILE`: one CSV row per misread, written only where the user asked.
struct ErrorsFile {
    path: PathBuf,
    out: std::io::BufWriter<std::fs::File>,
}

impl ErrorsFile {
    fn create(path: &Path) -> Result<Self> {
        let f = std::fs::File::create(path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        let mut out = std::io::BufWriter::new(f);
        writeln!(out, "image,label,read,confidence,iou")
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(Self {
            path: path.to_path_buf(),
            out,
        })
    }

    fn write(
        &mut self,
        image: &Path,
        label: &str,
        read: &str,
        confidence: f32,
        iou: f32,
    ) -> Result<()> {
        let img = image.display().to_string().replace('"', "\"\"");
        writeln!(
            self.out,
            "\"{img}\",{label},{read},{confidence:.3},{iou:.3}"
        )
        .with_context(|| format!("cannot write {}", self.path.display()))
    }

    fn finish(mut self) -> Result<()> {
        self.out
            .flush()
            .with_context(|| format!("cannot write {}", self.path.display()))
    }
}

/// A labelled plate is found by a detection that overlaps it with IoU ≥ 0.3 or contains its centre.
pub fn matches(label: &BBox, det: &BBox) -> bool {
    label.iou(det) >= 0.3 || det.contains(label.center())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_split_and_match_rule() {
        assert_eq!(
            split_csv("a, \"b,c\" ,\"d\"\"e\""),
            vec!["a", "b,c", "d\"e"]
        );
        let label = BBox::new(10.0, 10.0, 40.0, 10.0);
        assert!(matches(&label, &BBox::new(0.0, 0.0, 100.0, 100.0))); // contains centre
        assert!(matches(&label, &BBox::new(12.0, 10.0, 40.0, 10.0)));
        assert!(!matches(&label, &BBox::new(60.0, 10.0, 40.0, 10.0)));
    }
}
