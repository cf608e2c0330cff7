//! `platewatch bench`: median milliseconds per 1280x720 frame on one thread for detection,
//! reading (per plate) and the whole pipeline, on generated scenes or given images.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Result, bail};
use clap::Args;
use image::RgbImage;
use platewatch_core::{Effort, Frame, Scanner};
use serde_json::json;

use crate::ModelArgs;
use crate::scene::{self, Placement, Rng};

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchArgs {
    #[command(subcommand)]
    what: Option<BenchWhat>,
    /// Frames to benchmark on (default: generated 1280x720 street scenes with plates).
    #[arg(long = "image", value_name = "FILE")]
    images: Vec<PathBuf>,
    /// Timed runs per frame.
    #[arg(long, default_value_t = 10)]
    iterations: usize,
    /// Print a JSON object with the figures as the last line.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    model: ModelArgs,
}

#[derive(Debug, clap::Subcommand)]
pub enum BenchWhat {
    /// The hot list matcher: a 1,000,000-entry list, index against linear scan.
    Hotlist(crate::bench_hotlist::HotlistBenchArgs),
    /// The backend over loopback HTTP: ingest rate on SQLite and PostgreSQL, p95 of partial
    /// plate and polygon queries.
    Server(crate::bench_server::ServerBenchArgs),
    /// Device sync: store encounters with images, upload them to a loopback server, purge.
    Sync(crate::bench_sync::SyncBenchArgs),
}

/// Generated 1280x720 scenes, each with three cars at different distances.
pub fn bench_scenes(n: usize) -> Vec<RgbImage> {
    let mut rng = Rng::new(2024);
    (0..n)
        .map(|_| {
            let plates: Vec<RgbImage> = (0..3)
                .map(|_| scene::render_plate(&scene::random_plate(&mut rng), &mut rng))
                .collect();
            let bg = scene::background(1280, 720, &mut rng);
            let placements: Vec<Placement<'_>> = plates
                .iter()
                .enumerate()
                .map(|(i, p)| Placement {
                    plate: p,
                    cx: 220.0 + 420.0 * i as f32,
                    cy: rng.range(420.0, 560.0),
                    height: [24.0, 40.0, 60.0][i],
                    car_colour: [
                        rng.range(20.0, 230.0) as u8,
                        90,
                        rng.range(20.0, 230.0) as u8,
                    ],
                })
                .collect();
            scene::compose(&bg, &placements).0
        })
        .collect()
}

pub fn run(args: BenchArgs) -> Result<ExitCode> {
    match args.what {
        Some(BenchWhat::Hotlist(a)) => return crate::bench_hotlist::run(a),
        Some(BenchWhat::Server(a)) => return crate::bench_server::run(a),
        Some(BenchWhat::Sync(a)) => return crate::bench_sync::run(a),
        None => {}
    }
    if args.iterations == 0 {
        bail!("--iterations must be at least 1");
    }
    let engine = args.model.engine()?;
    // The detector with its geometry head on every cell, timed beside it for comparison.
    let dense = args
        .model
        .engine_with(|c| c.detector.geometry_at_peaks = false)?;
    let frames: Vec<RgbImage> = if args.images.is_empty() {
        bench_scenes(4)
    } else {
        args.images
            .iter()
            .map(|p| crate::media::load_image(p))
            .collect::<Result<_>>()?
    };
    let (mut detect, mut read, mut whole) = (Vec::new(), Vec::new(), Vec::new());
    let mut detect_dense = Vec::new();
    let mut read_still = Vec::new();
    let mut plates = 0usize;
    let pb = crate::progress((frames.len() * args.iterations) as u64, "benchmarking");
    for img in &frames {
        let (w, h) = (img.width() as usize, img.height() as usize);
        let frame = Frame::rgb8(img.as_raw(), w, h, w * 3)?;
        // Warm-up.
        let dets = engine.detect(&frame)?;
        plates += dets.len();
        let mut scanner = Scanner::new(engine.clone());
        scanner.push(&frame, 0)?;
        for it in 0..args.iterations {
            pb.inc(1);
            let t = Instant::now();
            let dets = engine.detect(&frame)?;
            detect.push(t.elapsed().as_secs_f64() * 1000.0);
            let t = Instant::now();
            dense.detect(&frame)?;
            detect_dense.push(t.elapsed().as_secs_f64() * 1000.0);
            for d in &dets {
                let t = Instant::now();
                engine.read(&frame, &d.quad, Effort::Frame)?;
                read.push(t.elapsed().as_secs_f64() * 1000.0);
                let t = Instant::now();
                engine.read(&frame, &d.quad, Effort::Still)?;
                read_still.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            let t = Instant::now();
            scanner.push(&frame, 33 * (it as u64 + 1))?;
            whole.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    pb.finish_and_clear();
    let dd = crate::median(&mut detect_dense);
    let (d, r, f) = (
        crate::median(&mut detect),
        crate::median(&mut read),
        crate::median(&mut whole),
    );
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let (read_mean, still_mean) = (mean(&read), mean(&read_still));
    let cfg = &engine.config().detector;
    println!(
        "frames               {} ({}x{} scaled into the {}x{} detector input)",
        frames.len(),
        frames[0].width(),
        frames[0].height(),
        cfg.input_width,
        cfg.input_height
    );
    println!(
        "plates per frame     {:.1}",
        plates as f64 / frames.len() as f64
    );
    println!(
        "detect               {d:.2} ms (median, one thread; {})",
        if engine.has_refiner() {
            "with the box refiner on each detection"
        } else {
            "no box refiner"
        }
    );
    println!(
        "  beside it           {dd:.2} ms with the geometry head on every cell ({:.2}x)",
        dd / d
    );
    println!("read                 {r:.2} ms per plate (median; mean {read_mean:.2} ms)");
    println!(
        "read, still image    mean {still_mean:.2} ms per plate (second opinions, disputed or uncertain \
         reads re-read; scan of single images and eval)"
    );
    println!(
        "whole pipeline       {f:.2} ms per frame = {:.0} fps (target 25 ms: {:.2}x of budget)",
        1000.0 / f,
        f / 25.0
    );
    if args.json {
        println!(
            "{}",
            json!({"detect_ms": d, "detect_dense_geometry_ms": dd, "read_ms": r, "read_still_mean_ms": still_mean,
                   "frame_ms": f, "frames": frames.len(),
                   "plates_per_frame": plates as f64 / frames.len() as f64, "threads": 1})
        );
    }
    Ok(ExitCode::SUCCESS)
}
