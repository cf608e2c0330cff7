//! Multi-frame consensus on frame sequences synthesised from real images: real US plate
//! crops moving and growing over real dashcam frames, with camera pan, blur, noise and
//! occlusion. Every vehicle pass must give exactly one read.

use image::imageops::{self, FilterType};
use image::{Rgb, RgbImage};
use platewatch_core::{BBox, Frame, Scanner};
use platewatch_tests::{csv_rows, datasets, engine, load_rgb, us_crops};

struct Lcg(u64);
impl Lcg {
    fn f(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// One pass: returns the frames and the pasted plate's box in each (None when fully occluded).
fn synth_pass(
    bg: &RgbImage,
    plate: &RgbImage,
    rng: &mut Lcg,
    frames: usize,
) -> (Vec<RgbImage>, Vec<Option<BBox>>) {
    // Background enlarged so the 1280x720 window can pan across it.
    let big = imageops::resize(bg, 1600, 900, FilterType::Triangle);
    let (mut out, mut boxes) = (Vec::new(), Vec::new());
    let x0 = 200.0 + rng.f() * 500.0;
    for i in 0..frames {
        let t = i as f32 / (frames - 1) as f32;
        let pan = (i as f32 * 12.0) as u32;
        let mut f = imageops::crop_imm(&big, pan, 60, 1280, 720).to_image();
        // Zoom: the plate grows as the car approaches; it drifts right and down.
        let h = 34.0 + 46.0 * t;
        let w = h * plate.width() as f32 / plate.height() as f32;
        let (x, y) = (x0 + 10.0 * i as f32, 80.0 + 120.0 * t);
        let scaled = imageops::resize(plate, w as u32, h as u32, FilterType::Triangle);
        imageops::overlay(&mut f, &scaled, x as i64, y as i64);
        let mut visible = Some(BBox::new(x, y, w, h));
        // Occlusion: a pole across part of the plate in two frames, the whole plate in one.
        if i == 5 || i == 6 {
            fill(&mut f, x + w * 0.55, y - 10.0, w * 0.2, h + 20.0);
        }
        if i == 9 {
            fill(&mut f, x - 10.0, y - 10.0, w + 20.0, h + 20.0);
            visible = None;
        }
        // Motion/focus blur and sensor noise.
        let sigma = rng.f() * 1.4;
        if sigma > 0.3 {
            f = imageops::blur(&f, sigma);
        }
        for p in f.pixels_mut() {
            let n = (rng.f() - 0.5) * 16.0;
            for c in &mut p.0 {
                *c = (*c as f32 + n).clamp(0.0, 255.0) as u8;
            }
        }
        out.push(f);
        boxes.push(visible);
    }
    (out, boxes)
}

fn fill(img: &mut RgbImage, x: f32, y: f32, w: f32, h: f32) {
    for yy in (y.max(0.0) as u32)..((y + h) as u32).min(img.height()) {
        for xx in (x.max(0.0) as u32)..((x + w) as u32).min(img.width()) {
            img.put_pixel(xx, yy, Rgb([70, 70, 70]));
        }
    }
}

#[test]
fn one_read_per_vehicle_pass_on_sequences_from_real_images() {
    let engine = engine();
    let data = datasets();
    let dash = data.join("detect-dashcam-ro");
    let backgrounds: Vec<_> = csv_rows(&dash.join("labels.csv"))
        .into_iter()
        .filter(|r| r[0].starts_with("valid/"))
        .map(|r| dash.join(&r[0]))
        .step_by(17)
        .take(8)
        .collect();
    let crops = us_crops();
    let mut rng = Lcg(42);
    let (mut passes, mut exact, mut chars, mut unread) = (0, 0, 0.0f64, 0);
    for (k, bg_path) in backgrounds.iter().enumerate() {
        let (plate_path, _, truth) = &crops[(k * 97 + 13) % crops.len()];
        let plate = load_rgb(plate_path);
        let bg = load_rgb(bg_path);
        let (frames, boxes) = synth_pass(&bg, &plate, &mut rng, 16);
        let mut scanner = Scanner::new(engine.clone());
        let mut reads = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            let frame = Frame::rgb8(f.as_raw(), 1280, 720, 1280 * 3).expect("valid frame");
            reads.extend(
                scanner
                    .push(&frame, i as u64 * 33)
                    .expect("pipeline runs")
                    .reads,
            );
        }
        reads.extend(scanner.finish());
        // Reads of the pasted plate: their best box lies on the plate's trajectory.
        let trajectory: Vec<BBox> = boxes.iter().flatten().copied().collect();
        let ours: Vec<_> = reads
            .iter()
            .filter(|r| {
                trajectory
                    .iter()
                    .any(|b| b.iou(&r.bbox) > 0.2 || b.contains(r.bbox.center()))
            })
            .collect();
        // Never more than one read per pass (the tracker must not split a pass); zero only
        // when the reader rejects the plate as unreadable, which the count below bounds.
        assert!(
            ours.len() <= 1,
            "pass {k}: expected one read of the moving plate, got {} (of {} reads in total): {:?}",
            ours.len(),
            reads.len(),
            reads
                .iter()
                .map(|r| (
                    &r.text,
                    r.frames,
                    r.confidence,
                    r.first_seen_ms,
                    r.last_seen_ms,
                    r.bbox
                ))
                .collect::<Vec<_>>()
        );
        let Some(read) = ours.first() else {
            unread += 1;
            continue;
        };
        assert!(
            read.frames >= 8,
            "pass {k}: the read should gather votes from most frames, got {}",
            read.frames
        );
        passes += 1;
        exact += usize::from(&read.text == truth);
        chars += platewatch_core::text::char_accuracy(&read.text, truth);
    }
    let chars = chars / passes.max(1) as f64;
    eprintln!(
        "sequences: {passes} passes read once each, {unread} unread, {exact} exact, character accuracy {chars:.3}"
    );
    assert!(unread <= 1, "{unread} of 8 passes gave no read");
    // Guards the reader through the tracker; the plate-level bar is measured by `platewatch eval`.
    assert!(chars >= 0.75, "consensus reads lost characters: {chars:.3}");
}
