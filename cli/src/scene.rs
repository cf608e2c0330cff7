//! Synthetic street scenes for the demo, the benchmark and tests: plates rendered with an
//! embedded font onto car-like shapes over a textured background, moving across frames.

use ab_glyph::{Font, FontRef, PxScale, ScaleFont};
use image::{Rgb, RgbImage};

static FONT: &[u8] = include_bytes!("../assets/DejaVuSans-Bold.ttf");

/// Small deterministic PRNG (xorshift64*), so scenes are reproducible from a seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [lo, hi).
    pub fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

const LETTERS: &[u8] = b"ABCDEFGHJKLMNPRSTUVWXYZ";
const DIGITS: &[u8] = b"0123456789";

/// A random plate number in a common US serial format.
pub fn random_plate(rng: &mut Rng) -> String {
    let formats = [
        "DLLLDDD", "LLLDDDD", "LLLDDD", "DDDLLL", "LLDDDDD", "DLLDDD",
    ];
    let f = formats[rng.below(formats.len())];
    f.bytes()
        .map(|c| {
            let set = if c == b'D' { DIGITS } else { LETTERS };
            set[rng.below(set.len())] as char
        })
        .collect()
}

const STATE_NAMES: [&str; 6] = [
    "CALIFORNIA",
    "TEXAS",
    "NEW YORK",
    "FLORIDA",
    "OHIO",
    "ARIZONA",
];

/// Renders a 2:1 US-style plate: light background, border, state name, large characters.
pub fn render_plate(text: &str, rng: &mut Rng) -> RgbImage {
    let (w, h) = (360u32, 180u32);
    let font = FontRef::try_from_slice(FONT).expect("embedded font is valid");
    let bg = [
        rng.range(225.0, 255.0) as u8,
        rng.range(225.0, 255.0) as u8,
        rng.range(215.0, 255.0) as u8,
    ];
    let mut img = RgbImage::from_pixel(w, h, Rgb(bg));
    let ink = if rng.below(2) == 0 {
        Rgb([20, 30, 90])
    } else {
        Rgb([15, 15, 15])
    };
    for y in 0..h {
        for x in 0..w {
            if x < 6 || y < 6 || x >= w - 6 || y >= h - 6 {
                img.put_pixel(x, y, ink);
            }
        }
    }
    let state = STATE_NAMES[rng.below(STATE_NAMES.len())];
    draw_text(
        &mut img,
        &font,
        state,
        30.0,
        w as f32 / 2.0,
        30.0,
        Rgb([150, 20, 20]),
        1.0,
        w as f32 * 0.9,
    );
    draw_text(
        &mut img,
        &font,
        text,
        112.0,
        w as f32 / 2.0,
        108.0,
        ink,
        0.78,
        w as f32 * 0.9,
    );
    img
}

/// Draws `text` centred at (cx, cy) with glyph height `px`, squeezed horizontally by `squeeze`,
/// and squeezed further when it would be wider than `max_width` (a real plate's serial never
/// runs under its border).
#[allow(clippy::too_many_arguments)]
fn draw_text(
    img: &mut RgbImage,
    font: &FontRef<'_>,
    text: &str,
    px: f32,
    cx: f32,
    cy: f32,
    ink: Rgb<u8>,
    squeeze: f32,
    max_width: f32,
) {
    let advance = |scale: PxScale| -> f32 {
        let sf = font.as_scaled(scale);
        text.chars().map(|c| sf.h_advance(font.glyph_id(c))).sum()
    };
    let mut scale = PxScale {
        x: px * squeeze,
        y: px,
    };
    let natural = advance(scale);
    if natural > max_width {
        scale.x *= max_width / natural;
    }
    let sf = font.as_scaled(scale);
    let width = advance(scale);
    let mut x = cx - width / 2.0;
    let baseline = cy + (sf.ascent() + sf.descent()) / 2.0 - sf.descent() * 0.0;
    for c in text.chars() {
        let glyph = font
            .glyph_id(c)
            .with_scale_and_position(scale, ab_glyph::point(x, baseline - sf.ascent() * 0.25));
        x += sf.h_advance(font.glyph_id(c));
        if let Some(outline) = font.outline_glyph(glyph) {
            let b = outline.px_bounds();
            outline.draw(|gx, gy, cov| {
                let (px_, py_) = (b.min.x as i32 + gx as i32, b.min.y as i32 + gy as i32);
                if px_ >= 0 && py_ >= 0 && (px_ as u32) < img.width() && (py_ as u32) < img.height()
                {
                    let p = img.get_pixel_mut(px_ as u32, py_ as u32);
                    for k in 0..3 {
                        p.0[k] = (p.0[k] as f32 * (1.0 - cov) + ink.0[k] as f32 * cov) as u8;
                    }
                }
            });
        }
    }
}

/// A plate placed in a scene: its picture, centre and height in scene pixels.
#[derive(Debug, Clone)]
pub struct Placement<'a> {
    pub plate: &'a RgbImage,
    pub cx: f32,
    pub cy: f32,
    pub height: f32,
    pub car_colour: [u8; 3],
}

/// Background texture shared by the frames of one sequence.
pub fn background(w: u32, h: u32, rng: &mut Rng) -> RgbImage {
    let sky = rng.range(120.0, 200.0);
    let road = rng.range(60.0, 110.0);
    let mut img = RgbImage::new(w, h);
    for y in 0..h {
        let base = if y < h * 2 / 5 {
            sky - y as f32 * 0.05
        } else {
            road
        };
        for x in 0..w {
            let n = rng.range(-8.0, 8.0);
            let v = (base + n).clamp(0.0, 255.0) as u8;
            img.put_pixel(x, y, Rgb([v, v, (v as f32 * 1.05).min(255.0) as u8]));
        }
    }
    img
}

/// Composes a frame: background, one car-like box per plate, the plate scaled into it.
/// Returns the frame and each plate's box (x, y, w, h).
pub fn compose(bg: &RgbImage, placements: &[Placement<'_>]) -> (RgbImage, Vec<[f32; 4]>) {
    let mut img = bg.clone();
    let mut boxes = Vec::new();
    for p in placements {
        let ph = p.height;
        let pw = ph * p.plate.width() as f32 / p.plate.height() as f32;
        let (x0, y0) = (p.cx - pw / 2.0, p.cy - ph / 2.0);
        // Car body around the plate.
        fill_rect(
            &mut img,
            p.cx - pw * 2.6,
            p.cy - ph * 4.5,
            pw * 5.2,
            ph * 6.0,
            p.car_colour,
        );
        fill_rect(
            &mut img,
            p.cx - pw * 2.0,
            p.cy - ph * 4.2,
            pw * 4.0,
            ph * 1.6,
            [40, 50, 60],
        );
        blit_scaled(&mut img, p.plate, x0, y0, pw, ph);
        boxes.push([x0, y0, pw, ph]);
    }
    (img, boxes)
}

fn fill_rect(img: &mut RgbImage, x: f32, y: f32, w: f32, h: f32, c: [u8; 3]) {
    let (iw, ih) = (img.width() as i64, img.height() as i64);
    for yy in (y as i64).max(0)..((y + h) as i64).min(ih) {
        for xx in (x as i64).max(0)..((x + w) as i64).min(iw) {
            img.put_pixel(xx as u32, yy as u32, Rgb(c));
        }
    }
}

/// Pastes `src` scaled to `w` x `h` at (x, y) with area-weighted sampling.
fn blit_scaled(img: &mut RgbImage, src: &RgbImage, x: f32, y: f32, w: f32, h: f32) {
    let (iw, ih) = (img.width() as i64, img.height() as i64);
    let sx = src.width() as f32 / w;
    let sy = src.height() as f32 / h;
    for yy in (y.floor() as i64).max(0)..((y + h).ceil() as i64).min(ih) {
        for xx in (x.floor() as i64).max(0)..((x + w).ceil() as i64).min(iw) {
            let (u0, v0) = ((xx as f32 - x) * sx, (yy as f32 - y) * sy);
            let mut acc = [0f32; 3];
            let mut n = 0f32;
            let (su, sv) = (sx.max(1.0).ceil() as u32, sy.max(1.0).ceil() as u32);
            for dv in 0..sv {
                for du in 0..su {
                    let (u, v) = (
                        u0 + du as f32 * sx / su as f32,
                        v0 + dv as f32 * sy / sv as f32,
                    );
                    if u < 0.0 || v < 0.0 || u >= src.width() as f32 || v >= src.height() as f32 {
                        continue;
                    }
                    let p = src.get_pixel(u as u32, v as u32);
                    for (a, c) in acc.iter_mut().zip(p.0) {
                        *a += c as f32;
                    }
                    n += 1.0;
                }
            }
            if n > 0.0 {
                img.put_pixel(xx as u32, yy as u32, Rgb(acc.map(|a| (a / n) as u8)));
            }
        }
    }
}

/// One synthetic vehicle pass: frames of a plate approaching the camera, with its truth.
#[derive(Debug)]
pub struct Pass {
    pub text: String,
    pub frames: Vec<RgbImage>,
}

/// Renders `n_frames` 1280x720 frames of one car approaching, its plate growing from
/// `h0` to `h1` pixels high.
pub fn vehicle_pass(rng: &mut Rng, n_frames: usize, h0: f32, h1: f32) -> Pass {
    let text = random_plate(rng);
    let plate = render_plate(&text, rng);
    let bg = background(1280, 720, rng);
    let car_colour = [
        rng.range(20.0, 230.0) as u8,
        rng.range(20.0, 230.0) as u8,
        rng.range(20.0, 230.0) as u8,
    ];
    let (cx0, cy0) = (rng.range(400.0, 880.0), rng.range(380.0, 450.0));
    let drift = rng.range(-6.0, 6.0);
    let frames = (0..n_frames)
        .map(|i| {
            let t = i as f32 / (n_frames.max(2) - 1) as f32;
            let height = h0 + (h1 - h0) * t;
            let placement = Placement {
                plate: &plate,
                cx: cx0 + drift * i as f32,
                cy: cy0 + 60.0 * t,
                height,
                car_colour,
            };
            compose(&bg, &[placement]).0
        })
        .collect();
    Pass { text, frames }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenes_are_deterministic_and_place_plates() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        assert_eq!(random_plate(&mut a), random_plate(&mut b));
        let plate = render_plate("ABC123", &mut a);
        let bg = background(320, 240, &mut a);
        let (img, boxes) = compose(
            &bg,
            &[Placement {
                plate: &plate,
                cx: 160.0,
                cy: 150.0,
                height: 30.0,
                car_colour: [200, 0, 0],
            }],
        );
        assert_eq!(boxes[0], [130.0, 135.0, 60.0, 30.0]);
        assert_eq!(img.dimensions(), (320, 240));
        // The plate border is dark ink, inside the plate is light background.
        assert!(img.get_pixel(160, 137).0[0] > 150 || img.get_pixel(131, 136).0[0] < 100);
    }
}
