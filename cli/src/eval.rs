//! `platewatch eval LABELS.csv`: detection recall/precision and reading accuracy on labelled
//! scenes (`image,x,y,w,h,text`) or plate crops (`image,text[,state]`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
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
    /// Print every miss (image, expected, got).
    #[arg(long)]
    verbose: bool,
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
            "{}: header must be `image,x,y,w,h,text` (scenes) or `image,text[,state]` (crops)",
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
            crops.push(CropLabel { image, text, state });
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
            let rule = engine.config().tracker.clone();
            let (mut with_text, mut exact, mut chars) = (0u64, 0u64, 0f64);
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
                true_dets += confirmed.iter().filter(|o| is_true(o)).count() as u64;
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
                    }
                }
            }
            pb.finish_and_clear();
            let rate = |a: u64, b: u64| (b > 0).then(|| a as f64 / b as f64);
            json!({
                "images": scenes.len() as u64 - failures,
                "plates": plates,
                "detection_recall": rate(detected, plates),
                "detection_precision": rate(true_dets, dets),
                "reported_recall": rate(reported, plates),
                "raw_detection_precision": rate(raw_true, raw_dets),
                "exact_rate": rate(exact, with_text),
                "char_accuracy": (with_text > 0).then(|| chars / with_text as f64),
                "state_rate": null,
                "ms_per_image": crate::median(&mut ms),
            })
        }
        Labels::Crops(crops) => {
            let (mut n, mut exact, mut chars, mut states, mut state_ok) =
                (0u64, 0u64, 0f64, 0u64, 0u64);
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
                "ms_per_image": crate::median(&mut ms),
            })
        }
    };
    let show = |k: &str| match summary[k].as_f64() {
        Some(v) if k == "ms_per_image" => format!("{v:.2}"),
        Some(v) => format!("{:.4}", v),
        None => "n/a".into(),
    };
    println!("images               {}", summary["images"]);
    println!("plates               {}", summary["plates"]);
    for k in [
        "detection_recall",
        "detection_precision",
        "reported_recall",
        "exact_rate",
        "char_accuracy",
        "state_rate",
        "ms_per_image",
    ] {
        println!("{k:<20} {}", show(k));
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
