//! The facade's frame-push bar: how long a frame push takes on the caller's thread (median,
//! p99, max over 10,000 1280x720 YUV frames, most of them pushed while the inference thread is
//! busy), how many frames were dropped, and the process RSS before, during and after. The two
//! paths run side by side, alternating: `push_frame_buffers` (planes read in place, what the
//! Kotlin and Swift layers use) and `push_frame` with UniFFI's lift of the byte arrays.
//! Prints figures; asserts nothing.
//! `cargo run --release -p platewatch-ffi --example push_bench [N]`

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../../cli/src/scene.rs"]
#[allow(dead_code, clippy::all)]
mod scene;

use std::time::{Duration, Instant};

use platewatch_ffi::{BufferFrame, CameraFrame, PushOutcome, UniFfiTag};
use uniffi::{Lift, Lower};

fn rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn pct(v: &[f64], p: f64) -> f64 {
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(10_000);
    let dir = tempfile::tempdir()?;
    let scanner = common::scanner_with(&dir.path().join("device.db"));
    common::block_on(scanner.start_session(common::session()))?;
    let pass = scene::vehicle_pass(&mut scene::Rng::new(5), 12, 30.0, 80.0);
    let t0 = 1_767_000_000_000i64;
    let frames: Vec<_> = pass
        .frames
        .iter()
        .map(|img| common::yuv_frame(img, t0, common::gps(t0)))
        .collect();
    // Each frame as the foreign side serialises it into a RustBuffer.
    let wire: Vec<Vec<u8>> = frames
        .iter()
        .map(|f| {
            let mut buf = Vec::new();
            <CameraFrame as Lower<UniFfiTag>>::write(f.clone(), &mut buf);
            buf
        })
        .collect();
    // The same frames as the foreign side passes them in place (addresses of their planes).
    let in_place: Vec<BufferFrame> = frames.iter().map(common::in_place).collect();
    // Warm up: a few frames through inference.
    for f in frames.iter().take(3) {
        common::push_all(&scanner, f.clone());
    }
    std::thread::sleep(Duration::from_millis(200));
    let rss_before = rss_mb();
    let (mut push_ms, mut copy_ms) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let (mut buffers_ms, mut buffers_taken_ms) = (Vec::with_capacity(n), Vec::new());
    let (mut accepted, mut accepted_in_place, mut rss_mid) = (0usize, 0usize, 0.0);
    for i in 0..n {
        let c = Instant::now();
        // What UniFFI's generated scaffolding does before `push_frame` runs: lift the record
        // (and its plane bytes) out of the RustBuffer the foreign side filled.
        let mut f =
            <CameraFrame as Lift<UniFfiTag>>::try_read(&mut wire[i % wire.len()].as_slice())?;
        copy_ms.push(c.elapsed().as_secs_f64() * 1e3);
        f.timestamp_ms = t0 + 66 * i as i64;
        let outcome = scanner.push_frame(f)?;
        push_ms.push(c.elapsed().as_secs_f64() * 1e3);
        accepted += usize::from(outcome == PushOutcome::Accepted);
        std::thread::sleep(Duration::from_micros(250));

        let mut b = in_place[i % in_place.len()];
        b.timestamp_ms = t0 + 66 * i as i64 + 33;
        let t = Instant::now();
        let outcome = scanner.push_frame_buffers(b)?;
        let ms = t.elapsed().as_secs_f64() * 1e3;
        buffers_ms.push(ms);
        if outcome == PushOutcome::Accepted {
            // Accepted frames are the ones copied (luma rows).
            buffers_taken_ms.push(ms);
            accepted_in_place += 1;
        }
        // About 2,000 frames a second in all: the inference thread is busy for most pushes.
        std::thread::sleep(Duration::from_micros(250));
        if i == n / 10 {
            rss_mid = rss_mb();
        }
    }
    scanner.flush()?;
    let rss_after = rss_mb();
    let stats = scanner.frame_stats();
    for v in [
        &mut push_ms,
        &mut copy_ms,
        &mut buffers_ms,
        &mut buffers_taken_ms,
    ] {
        v.sort_by(f64::total_cmp);
    }
    println!(
        "frame push, {n} frames each way, 1280x720 YUV_420_888 (strided, interleaved chroma):"
    );
    println!(
        "  push_frame_buffers (in place):     median {:.4} ms, p99 {:.4} ms, max {:.3} ms, accepted {accepted_in_place}",
        pct(&buffers_ms, 0.5),
        pct(&buffers_ms, 0.99),
        buffers_ms[n - 1]
    );
    if !buffers_taken_ms.is_empty() {
        println!(
            "    accepted (copied) frames only:   median {:.4} ms, max {:.3} ms",
            pct(&buffers_taken_ms, 0.5),
            buffers_taken_ms[buffers_taken_ms.len() - 1]
        );
    }
    println!(
        "  push_frame incl. UniFFI lift:      median {:.4} ms, p99 {:.4} ms, max {:.3} ms, accepted {accepted}",
        pct(&push_ms, 0.5),
        pct(&push_ms, 0.99),
        push_ms[n - 1]
    );
    println!(
        "    of which the lift of the record: median {:.4} ms, p99 {:.4} ms",
        pct(&copy_ms, 0.5),
        pct(&copy_ms, 0.99)
    );
    println!(
        "  dropped (counted) {}, processed {}, last inference {:.1} ms",
        stats.dropped, stats.processed, stats.last_inference_ms
    );
    println!(
        "  RSS: before {rss_before:.1} MB, after {} frames {rss_mid:.1} MB, after {} frames {rss_after:.1} MB",
        2 * (n / 10 + 1),
        2 * n
    );
    println!(
        "{{\"frames\":{},\"push_median_ms\":{:.4},\"push_p99_ms\":{:.4},\"push_max_ms\":{:.3},\"bytes_push_median_ms\":{:.4},\"bytes_push_p99_ms\":{:.4},\"dropped\":{},\"processed\":{},\"rss_before_mb\":{rss_before:.1},\"rss_after_mb\":{rss_after:.1}}}",
        2 * n,
        pct(&buffers_ms, 0.5),
        pct(&buffers_ms, 0.99),
        buffers_ms[n - 1],
        pct(&push_ms, 0.5),
        pct(&push_ms, 0.99),
        stats.dropped,
        stats.processed
    );
    Ok(())
}
