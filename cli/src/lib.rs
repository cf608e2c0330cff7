//! The `platewatch` command as a library: subcommands, frame sources and synthetic scenes
//! (shared with the end-to-end tests).

pub mod alerts;
pub mod audit;
pub mod bench;
pub mod bench_hotlist;
pub mod bench_server;
pub mod bench_sync;
pub mod demo;
pub mod device;
pub mod eval;
pub mod field;
pub mod hotlist;
pub mod input;
pub mod media;
pub mod scan;
pub mod scene;
pub mod serve;
pub mod sync_cmd;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use platewatch_core::{DetectorConfig, Engine, EngineConfig, Models};

#[derive(Debug, Parser)]
#[command(
    name = "platewatch",
    version,
    about = "On-device licence plate recognition"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Scan images, folders, video files or a camera; print one line per vehicle pass.
    Scan(Box<scan::ScanArgs>),
    /// Measure detection and reading accuracy on a labelled CSV.
    Eval(eval::EvalArgs),
    /// Median milliseconds per 1280x720 frame on one thread: detect, read, whole pipeline
    /// (`bench hotlist`: the hot list matcher at a million entries).
    Bench(bench::BenchArgs),
    /// Hot lists: import files (and apply them to a device store), explain matches, status.
    #[command(subcommand)]
    Hotlist(hotlist::HotlistCommand),
    /// Render synthetic vehicle passes, scan them and compare the reads with the truth.
    Demo(demo::DemoArgs),
    /// Run the backend server (SQLite file by default; PostgreSQL by URL; HTTPS with a
    /// certificate).
    Serve(serve::ServeArgs),
    /// The server's audit log: verify its keyed hash chain (also against signed checkpoints
    /// kept outside the server), export a time range, list the checkpoints and their key.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// The server's retention job, run once.
    #[command(subcommand)]
    Retention(audit::RetentionCommand),
    /// Upload the device's pending encounters and pull its hot lists (signed, pinned key) and
    /// reason codes; `--watch` keeps doing it every interval until Ctrl-C.
    Sync(sync_cmd::SyncArgs),
    /// The device: pending uploads, rejected rows, last sync, hot list ages, reason codes.
    Status(sync_cmd::StatusArgs),
    /// The device's alerts: those waiting for a disposition and recent ones; accept, reject
    /// or correct one.
    Alerts(alerts::AlertsArgs),
}

/// Model and detector options shared by every command.
#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    /// Detector ONNX model (default: the model built into this binary).
    #[arg(long, value_name = "FILE")]
    pub detector: Option<PathBuf>,
    /// Reader ONNX model (default: the model built into this binary).
    #[arg(long, value_name = "FILE")]
    pub reader: Option<PathBuf>,
    /// Box refiner ONNX model (default: the model built into this binary).
    #[arg(long, value_name = "FILE", conflicts_with = "no_refiner")]
    pub refiner: Option<PathBuf>,
    /// Read the detector's boxes as they are, without the box refiner.
    #[arg(long)]
    pub no_refiner: bool,
    /// Detector input size WIDTHxHEIGHT (multiples of 32); frames are scaled to fit.
    #[arg(long, value_name = "WxH", default_value = "640x384")]
    pub input_size: String,
    /// Minimum detector score (0..1).
    #[arg(long, default_value_t = 0.15)]
    pub det_threshold: f32,
    /// Margin added around each detected plate before it is read, as shares of its width
    /// and height: `X,Y` (default: the reader's, 0.06,0.10; crops always use that).
    #[arg(long, value_name = "X,Y", value_parser = parse_margin)]
    pub read_margin: Option<(f32, f32)>,
}

fn parse_margin(s: &str) -> Result<(f32, f32), String> {
    let bad = || format!("{s:?} is not X,Y with each between -0.2 and 1");
    let (x, y) = s.split_once(',').ok_or_else(bad)?;
    let v = |t: &str| {
        t.trim()
            .parse::<f32>()
            .ok()
            .filter(|v| (-0.2..=1.0).contains(v))
    };
    Ok((v(x).ok_or_else(bad)?, v(y).ok_or_else(bad)?))
}

impl ModelArgs {
    pub fn engine(&self) -> Result<Arc<Engine>> {
        self.engine_with(|_| {})
    }

    /// The engine with `adjust` applied to the configuration the options give.
    pub fn engine_with(&self, adjust: impl FnOnce(&mut EngineConfig)) -> Result<Arc<Engine>> {
        let (w, h) = self
            .input_size
            .split_once(['x', 'X'])
            .and_then(|(w, h)| {
                Some((
                    w.trim().parse::<usize>().ok()?,
                    h.trim().parse::<usize>().ok()?,
                ))
            })
            .with_context(|| format!("--input-size {:?} is not WIDTHxHEIGHT", self.input_size))?;
        let mut config = EngineConfig {
            detector: DetectorConfig {
                input_width: w,
                input_height: h,
                score_threshold: self.det_threshold,
                ..DetectorConfig::default()
            },
            read_margin: self.read_margin,
            ..EngineConfig::default()
        };
        adjust(&mut config);
        let read = |p: &Option<PathBuf>,
                    default: &'static [u8]|
         -> Result<std::borrow::Cow<'static, [u8]>> {
            match p {
                Some(p) => {
                    Ok(crate::input::read_file(p, "model", crate::input::MAX_MODEL_BYTES)?.into())
                }
                None => Ok(default.into()),
            }
        };
        let det = read(&self.detector, platewatch_core::DEFAULT_DETECTOR_ONNX)?;
        let rd = read(&self.reader, platewatch_core::DEFAULT_READER_ONNX)?;
        let rf = read(&self.refiner, platewatch_core::DEFAULT_REFINER_ONNX)?;
        let models = Models {
            detector: &det,
            refiner: (!self.no_refiner).then_some(&rf[..]),
            reader: &rd,
        };
        Ok(Arc::new(
            Engine::new(models, config).context("cannot load the models")?,
        ))
    }
}

/// Parses the command line and runs the command; errors are printed, never panicked.
pub fn main_with_args() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Scan(a) => scan::run(*a),
        Command::Eval(a) => eval::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Demo(a) => demo::run(a),
        Command::Hotlist(c) => hotlist::run(c),
        Command::Serve(a) => serve::run(a),
        Command::Audit(c) => audit::run(c),
        Command::Retention(c) => audit::run_retention(c),
        Command::Sync(a) => sync_cmd::run_sync(a),
        Command::Status(a) => sync_cmd::run_status(a),
        Command::Alerts(a) => alerts::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A progress bar on stderr (hidden when stderr is not a terminal).
pub fn progress(len: u64, what: &str) -> indicatif::ProgressBar {
    let pb = indicatif::ProgressBar::new(len);
    pb.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {msg} [{bar:30}] {pos}/{len} {per_sec} eta {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    pb.set_message(what.to_string());
    pb
}

/// Median of a list of durations in milliseconds (0 when empty).
pub fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}
