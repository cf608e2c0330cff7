//! `platewatch scan`: images, folders, videos and cameras through the scanner; one output
//! line (or JSON object) per consensus read, optional crop images. With `--server` the whole
//! device loop runs around the scan (see `field`): sign-in, hot list sync, session,
//! encounters with alerts in the device store, upload.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Args;
use platewatch_core::hotlist::Query;
use platewatch_core::{Effort, Engine, Frame, PlateRead, Scanner};
use platewatch_store::Store;

use crate::ModelArgs;
use crate::field::{Field, ServerArgs};
use crate::hotlist::{HotlistSet, HotlistSource};
use crate::media;

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Image files, folders of images, or video files.
    #[arg(value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Scan live from camera N (build with `--features camera`).
    #[arg(long, value_name = "N")]
    camera: Option<u32>,
    /// Stop a camera scan after this many frames (default: until interrupted).
    #[arg(long)]
    max_frames: Option<u64>,
    /// Treat the images (in name order) as consecutive frames of one stream at this rate,
    /// instead of independent scenes.
    #[arg(long, value_name = "FPS")]
    sequence: Option<f32>,
    /// One JSON object per read on stdout, and a summary object as the last line.
    #[arg(long)]
    json: bool,
    /// Write each read's plate crop as a PNG into this folder.
    #[arg(long, value_name = "DIR")]
    save_crops: Option<PathBuf>,
    #[command(flatten)]
    hotlists: crate::hotlist::HotlistSource,
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    model: ModelArgs,
}

struct Output {
    json: bool,
    crops: Option<PathBuf>,
    reads: u64,
    crop_seq: u64,
    hot: Option<HotlistSet>,
    /// Device store that keeps reads (for retro-hits) and alerts, with its runtime.
    store: Option<(tokio::runtime::Runtime, Store)>,
    alerts: u64,
    /// The device loop against a server (`--server`).
    field: Option<Field>,
}

impl Output {
    fn emit(&mut self, source: &str, r: &PlateRead) -> Result<()> {
        self.reads += 1;
        let mut crop_path = None;
        if let Some(dir) = &self.crops {
            self.crop_seq += 1;
            let p = dir.join(format!("read-{:05}.png", self.crop_seq));
            let c = &r.crop;
            if c.width > 0 && c.height > 0 {
                image::GrayImage::from_raw(c.width as u32, c.height as u32, c.pixels.clone())
                    .context("crop buffer has the wrong size")?
                    .save(&p)
                    .with_context(|| format!("cannot write crop {}", p.display()))?;
                crop_path = Some(p);
            }
        }
        let now = crate::hotlist::now_secs();
        let matches = match &self.hot {
            Some(h) => {
                let q = Query {
                    text: &r.text,
                    confidences: &r.char_confidences,
                    state: r.state,
                    state_confidence: r.state_confidence,
                };
                h.matcher.alerts(&q, now)
            }
            None => Vec::new(),
        };
        self.alerts += matches.len() as u64;
        if let Some(field) = &mut self.field {
            field.record(r, &matches)?;
        }
        if let Some((rt, store)) = &self.store {
            rt.block_on(async {
                let id = store
                    .record_read(
                        &r.text,
                        &r.char_confidences,
                        r.state,
                        r.state_confidence,
                        now,
                    )
                    .await?;
                for m in &matches {
                    store.record_alert(id, m, now).await?;
                }
                Ok::<_, platewatch_store::StoreError>(())
            })
            .context("cannot record the read in the store")?;
        }
        if self.json {
            let mut v = serde_json::to_value(r)?;
            v["source"] = source.into();
            if let Some(p) = &crop_path {
                v["crop"] = p.display().to_string().into();
            }
            if let Some(h) = &self.hot {
                v["alerts"] = matches.iter().map(|m| h.alert_json(m, now)).collect();
            }
            println!("{v}");
        } else {
            let b = r.bbox;
            println!(
                "{:<28} {}  {:<10} {:<3} {:>5.1}%  box {:.0},{:.0} {:.0}x{:.0}  frames {}",
                source,
                fmt_ms(r.first_seen_ms),
                r.text,
                r.state.unwrap_or("--"),
                r.confidence * 100.0,
                b.x,
                b.y,
                b.w,
                b.h,
                r.frames
            );
            if let Some(h) = &self.hot {
                for m in &matches {
                    println!("  {}", h.alert_line(&r.text, m, now));
                }
            }
        }
        Ok(())
    }
}

pub fn fmt_ms(ms: u64) -> String {
    format!(
        "{:02}:{:02}.{:03}",
        ms / 60_000,
        (ms / 1000) % 60,
        ms % 1000
    )
}

pub fn run(args: ScanArgs) -> Result<ExitCode> {
    if args.paths.is_empty() && args.camera.is_none() {
        bail!("nothing to scan: give image/video paths or --camera N");
    }
    if let Some(dir) = &args.save_crops {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    if let Some(fps) = args.sequence {
        if !(fps > 0.0 && fps.is_finite()) {
            bail!("--sequence needs a positive frame rate");
        }
    }
    let field = if args.server.any() {
        if args.hotlists.store.is_some() || !args.hotlists.files.is_empty() {
            bail!(
                "with --server the hot lists come from the server into the device store: drop --store and --hotlist"
            );
        }
        Some(Field::start(&args.server, &|s| eprintln!("{s}"))?)
    } else {
        None
    };
    let hot = match &field {
        Some(f) => HotlistSet::load(
            &HotlistSource {
                files: Vec::new(),
                store: Some(f.dir.db_path()),
                ..args.hotlists.clone()
            },
            false,
        )?,
        None => HotlistSet::load(&args.hotlists, false)?,
    };
    if let Some(h) = &hot {
        let now = crate::hotlist::now_secs();
        for l in h.lists.iter().flatten() {
            eprintln!(
                "hot list {:?}: {:.1}h old{}",
                l.name,
                l.age(now) as f64 / 3600.0,
                if l.stale(now) {
                    " — STALE: alerts will say so; sync the list"
                } else {
                    ""
                }
            );
        }
        eprintln!("{} hot list entries loaded", h.matcher.len());
    }
    let store = match &args.hotlists.store {
        Some(p) => {
            let rt = crate::hotlist::runtime()?;
            let s = rt
                .block_on(Store::open(p))
                .with_context(|| format!("cannot open store {}", p.display()))?;
            Some((rt, s))
        }
        None => None,
    };
    let engine = args.model.engine()?;
    let mut out = Output {
        json: args.json,
        crops: args.save_crops.clone(),
        reads: 0,
        crop_seq: 0,
        hot,
        store,
        alerts: 0,
        field,
    };
    let mut failures = 0u64;
    let mut frames = 0u64;
    if let Some(index) = args.camera {
        frames += scan_camera(&engine, index, args.max_frames, &mut out)?;
    }
    let inputs = media::expand_inputs(&args.paths)?;
    let pb = crate::progress(inputs.len() as u64, "scanning");
    let mut seq: Option<Scanner> = args.sequence.map(|_| Scanner::new(engine.clone()));
    for (i, path) in inputs.iter().enumerate() {
        pb.set_position(i as u64);
        let name = path.display().to_string();
        let res = if media::is_video(path) {
            scan_video(&engine, path, &mut out, &pb)
        } else {
            match (&mut seq, args.sequence) {
                (Some(s), Some(fps)) => {
                    let ts = (i as f64 * 1000.0 / fps as f64) as u64;
                    scan_image(s, path, ts, &mut out).map(|_| 1)
                }
                _ => {
                    // A still image: no next frame confirms an uncertain read, so the reader
                    // re-checks it.
                    let mut s = Scanner::with_effort(engine.clone(), Effort::Still);
                    scan_image(&mut s, path, 0, &mut out).and_then(|_| {
                        s.finish().iter().try_for_each(|r| out.emit(&name, r))?;
                        Ok(1)
                    })
                }
            }
        };
        match res {
            Ok(n) => frames += n,
            Err(e) => {
                failures += 1;
                pb.suspend(|| eprintln!("error: {e:#}"));
            }
        }
    }
    if let Some(s) = &mut seq {
        for r in s.finish() {
            out.emit("sequence", &r)?;
        }
    }
    pb.finish_and_clear();
    let field = match out.field.take() {
        Some(f) => Some(f.finish(std::time::Duration::ZERO, &|s| eprintln!("{s}"))?),
        None => None,
    };
    if args.json {
        let mut summary = serde_json::json!({"summary": true, "inputs": inputs.len(), "frames": frames, "reads": out.reads, "alerts": out.alerts, "failed_inputs": failures});
        if let Some(f) = &field {
            summary["session_id"] = f.session_id.clone().into();
            summary["encounters"] = f.stats.encounters.into();
            summary["uploaded"] = (f.upload.stored + f.upload.duplicates).into();
            summary["upload_rejected"] = f.upload.rejected.into();
            summary["pending"] = f.pending.into();
        }
        println!("{summary}");
    } else {
        eprintln!(
            "{} input(s), {frames} frame(s), {} read(s), {} alert(s), {failures} failed",
            inputs.len(),
            out.reads,
            out.alerts
        );
    }
    Ok(if failures > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn scan_image(s: &mut Scanner, path: &Path, ts: u64, out: &mut Output) -> Result<()> {
    let img = media::load_image(path)?;
    let (w, h) = (img.width() as usize, img.height() as usize);
    let frame = Frame::rgb8(img.as_raw(), w, h, w * 3)?;
    let name = path.display().to_string();
    for r in s.push(&frame, ts)?.reads {
        out.emit(&name, &r)?;
    }
    Ok(())
}

fn scan_video(
    engine: &Arc<Engine>,
    path: &Path,
    out: &mut Output,
    pb: &indicatif::ProgressBar,
) -> Result<u64> {
    let mut s = Scanner::new(engine.clone());
    let name = path.display().to_string();
    let fpb = crate::progress(0, "frames");
    let res = media::for_each_video_frame(path, |vf, total| {
        if let Some(t) = total {
            fpb.set_length(t);
        }
        fpb.inc(1);
        let frame = Frame::i420(
            vf.width,
            vf.height,
            (&vf.y.0, vf.y.1),
            (&vf.u.0, vf.u.1),
            (&vf.v.0, vf.v.1),
        )?;
        for r in s.push(&frame, vf.timestamp_ms)?.reads {
            pb.suspend(|| out.emit(&name, &r))?;
        }
        Ok(())
    });
    // Reads of the frames that did decode are reported even when the stream is broken.
    for r in s.finish() {
        out.emit(&name, &r)?;
    }
    fpb.finish_and_clear();
    res
}

fn scan_camera(
    engine: &Arc<Engine>,
    index: u32,
    max_frames: Option<u64>,
    out: &mut Output,
) -> Result<u64> {
    let mut s = Scanner::new(engine.clone());
    let mut n = 0u64;
    let name = format!("camera{index}");
    media::for_each_camera_frame(index, |img, ts| {
        let (w, h) = (img.width() as usize, img.height() as usize);
        let frame = Frame::rgb8(img.as_raw(), w, h, w * 3)?;
        for r in s.push(&frame, ts)?.reads {
            out.emit(&name, &r)?;
        }
        n += 1;
        Ok(max_frames.is_none_or(|m| n < m))
    })?;
    for r in s.finish() {
        out.emit(&name, &r)?;
    }
    Ok(n)
}
