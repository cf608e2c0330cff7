//! Renders the frames the Kotlin and Swift tests scan: one synthetic vehicle pass (1280x720
//! PNGs, as `platewatch demo` draws them) and `plate.txt` with the rendered plate.
//! `cargo run -p platewatch-ffi --example render_fixture -- OUT_DIR [SEED]`

// The scene renderer of `platewatch demo`, compiled in directly (not the whole CLI crate).
#[path = "../../cli/src/scene.rs"]
#[allow(dead_code, clippy::all)]
mod scene;
use scene::{Rng, vehicle_pass};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let out = std::path::PathBuf::from(args.next().ok_or("usage: render_fixture OUT_DIR [SEED]")?);
    let seed: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(5);
    std::fs::create_dir_all(&out)?;
    let pass = vehicle_pass(&mut Rng::new(seed), 12, 30.0, 80.0);
    for (i, f) in pass.frames.iter().enumerate() {
        f.save(out.join(format!("frame-{i:02}.png")))?;
    }
    std::fs::write(out.join("plate.txt"), &pass.text)?;
    println!(
        "{} frames of one pass written to {}",
        pass.frames.len(),
        out.display()
    );
    Ok(())
}
