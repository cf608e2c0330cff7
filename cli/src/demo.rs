//! `platewatch demo`: renders synthetic vehicle passes (a car approaching the camera), scans
//! them as one continuous stream and compares each consensus read with the rendered plate.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use platewatch_core::{Frame, Scanner};

use crate::ModelArgs;
use crate::scene::{self, Rng};

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Number of vehicle passes.
    #[arg(long, default_value_t = 5)]
    passes: usize,
    /// Frames per pass (30 fps).
    #[arg(long, default_value_t = 12)]
    frames: usize,
    /// Random seed for the scenes.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Also write the frames as JPEG files into this folder (scan them with
    /// `platewatch scan DIR --sequence 30`).
    #[arg(long, value_name = "DIR")]
    save_frames: Option<PathBuf>,
    #[command(flatten)]
    model: ModelArgs,
}

pub fn run(args: DemoArgs) -> Result<ExitCode> {
    let engine = args.model.engine()?;
    println!(
        "Platewatch demo: {} synthetic vehicle passes of {} frames (1280x720, 30 fps)",
        args.passes, args.frames
    );
    let mut rng = Rng::new(args.seed);
    let mut scanner = Scanner::new(engine);
    let mut ts = 0u64;
    let (mut exact, mut reads) = (0usize, 0usize);
    if let Some(d) = &args.save_frames {
        std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    let mut frame_no = 0usize;
    for p in 0..args.passes {
        let pass = scene::vehicle_pass(&mut rng, args.frames.max(1), 18.0, 70.0);
        let mut got = Vec::new();
        for img in &pass.frames {
            let (w, h) = (img.width() as usize, img.height() as usize);
            let frame = Frame::rgb8(img.as_raw(), w, h, w * 3)?;
            got.extend(scanner.push(&frame, ts)?.reads);
            ts += 33;
            if let Some(d) = &args.save_frames {
                let path = d.join(format!("frame-{frame_no:05}.jpg"));
                img.save(&path)
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            frame_no += 1;
        }
        // A gap between cars ends the pass.
        ts += 3000;
        got.extend(scanner.push(&blank(), ts)?.reads);
        println!("pass {}: rendered plate {}", p + 1, pass.text);
        if got.is_empty() {
            println!("         no read");
        }
        for r in &got {
            reads += 1;
            let ok = r.text == pass.text;
            exact += usize::from(ok);
            println!(
                "         read {:<9} {}  confidence {:>5.1}%  frames {:>2}  {}..{} ms",
                r.text,
                if ok { "exact" } else { "MISREAD" },
                r.confidence * 100.0,
                r.frames,
                r.first_seen_ms,
                r.last_seen_ms
            );
        }
    }
    for r in scanner.finish() {
        reads += 1;
        println!("late read {} ({} frames)", r.text, r.frames);
    }
    println!(
        "{} passes, {reads} consensus reads, {exact} exact",
        args.passes
    );
    Ok(ExitCode::SUCCESS)
}

fn blank() -> Frame<'static> {
    static GRAY: [u8; 64 * 64] = [96; 64 * 64];
    Frame::gray8(&GRAY, 64, 64, 64).expect("static frame is valid")
}
