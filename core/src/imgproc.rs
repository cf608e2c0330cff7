//! Pure image operations on the luma plane: rotation-aware bilinear sampling, resize into the
//! detector canvas, perspective warp of a plate quad for the reader, and evidence crops.

use crate::frame::{Luma, Rotation};
use crate::geometry::{BBox, Point, Quad};

/// An owned 8-bit grayscale image (plate crops).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GrayImage {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<u8>,
}

/// Samples a luma plane in upright coordinates (the buffer rotated by `rotation`).
#[derive(Debug, Clone)]
pub struct Sampler<'a> {
    luma: Luma<'a>,
    rotation: Rotation,
}

impl<'a> Sampler<'a> {
    pub fn new(luma: Luma<'a>, rotation: Rotation) -> Self {
        Sampler { luma, rotation }
    }

    /// Width and height of the upright image.
    pub fn size(&self) -> (usize, usize) {
        match self.rotation {
            Rotation::R0 | Rotation::R180 => (self.luma.width, self.luma.height),
            Rotation::R90 | Rotation::R270 => (self.luma.height, self.luma.width),
        }
    }

    /// Maps continuous upright coordinates to continuous buffer coordinates
    /// (pixel i covers [i, i+1) in both systems).
    #[inline]
    fn to_buffer(&self, u: f32, v: f32) -> (f32, f32) {
        let (w, h) = (self.luma.width as f32, self.luma.height as f32);
        match self.rotation {
            Rotation::R0 => (u, v),
            Rotation::R90 => (v, h - u),
            Rotation::R180 => (w - u, h - v),
            Rotation::R270 => (w - v, u),
        }
    }

    /// Bilinear sample at continuous upright coordinates, edges replicated.
    #[inline]
    pub fn sample(&self, u: f32, v: f32) -> f32 {
        let (x, y) = self.to_buffer(u, v);
        self.sample_buffer(x - 0.5, y - 0.5)
    }

    #[inline]
    fn sample_buffer(&self, x: f32, y: f32) -> f32 {
        let maxx = (self.luma.width - 1) as f32;
        let maxy = (self.luma.height - 1) as f32;
        let x = x.clamp(0.0, maxx);
        let y = y.clamp(0.0, maxy);
        let x0 = x as usize;
        let y0 = y as usize;
        let x1 = (x0 + 1).min(self.luma.width - 1);
        let y1 = (y0 + 1).min(self.luma.height - 1);
        let fx = x - x0 as f32;
        let fy = y - y0 as f32;
        let l = &self.luma;
        let top = l.at(x0, y0) as f32 * (1.0 - fx) + l.at(x1, y0) as f32 * fx;
        let bot = l.at(x0, y1) as f32 * (1.0 - fx) + l.at(x1, y1) as f32 * fx;
        top * (1.0 - fy) + bot * fy
    }

    /// Writes the upright image scaled by `scale` into the top-left of a `cw` x `ch` canvas
    /// of values in 0..1 (the rest is 0). Returns the size of the scaled image in the canvas.
    pub fn resize_into(&self, scale: f32, cw: usize, ch: usize, out: &mut [f32]) -> (usize, usize) {
        let (w, h) = self.size();
        let sw = ((w as f32 * scale).round() as usize).clamp(1, cw);
        let sh = ((h as f32 * scale).round() as usize).clamp(1, ch);
        out[..cw * ch].fill(0.0);
        let inv = 1.0 / scale;
        let l = &self.luma;
        // Bilinear taps along one output axis: the buffer axis it runs along (`len` pixels,
        // reversed when `flip`), as in `sample`: the two pixels and the weight of the second.
        let taps = |n: usize, len: usize, flip: bool| -> Vec<(usize, usize, f32)> {
            (0..n)
                .map(|o| {
                    let c = (o as f32 + 0.5) * inv;
                    let c = if flip { len as f32 - c } else { c };
                    let x = (c - 0.5).clamp(0.0, (len - 1) as f32);
                    let x0 = x as usize;
                    (x0, (x0 + 1).min(len - 1), x - x0 as f32)
                })
                .collect()
        };
        let (w, h) = (l.width, l.height);
        let halving = scale == 0.5 && w % 2 == 0 && h % 2 == 0;
        match self.rotation {
            // Halving: every bilinear tap falls midway between two pixels, so each output is
            // the mean of a 2x2 block (the same value, computed in a vectorisable loop).
            Rotation::R0 if halving => {
                for oy in 0..sh {
                    halve_row(l, oy, &mut out[oy * cw..oy * cw + sw]);
                }
            }
            rotation if halving => {
                // Halve in buffer order, then turn upright.
                let (hw, hh) = (w / 2, h / 2);
                let mut half = vec![0.0; hw * hh];
                for (y, row) in half.chunks_exact_mut(hw).enumerate() {
                    halve_row(l, y, row);
                }
                for oy in 0..sh {
                    let dst = &mut out[oy * cw..oy * cw + sw];
                    for (ox, d) in dst.iter_mut().enumerate() {
                        let (x, y) = match rotation {
                            Rotation::R0 => (ox, oy),
                            Rotation::R90 => (oy, hh - 1 - ox),
                            Rotation::R180 => (hw - 1 - ox, hh - 1 - oy),
                            Rotation::R270 => (hw - 1 - oy, ox),
                        };
                        *d = half[y * hw + x];
                    }
                }
            }
            Rotation::R0 | Rotation::R180 => {
                // Separable: output rows run along buffer rows; one row pair per output row.
                let flip = self.rotation == Rotation::R180;
                let cols = taps(sw, w, flip);
                for (oy, (y0, y1, fy)) in taps(sh, h, flip).into_iter().enumerate() {
                    let r0 = &l.data[y0 * l.stride..y0 * l.stride + w];
                    let r1 = &l.data[y1 * l.stride..y1 * l.stride + w];
                    let dst = &mut out[oy * cw..oy * cw + sw];
                    for (d, &(x0, x1, fx)) in dst.iter_mut().zip(&cols) {
                        *d = bilerp(r0, r1, x0, x1, fx, fy);
                    }
                }
            }
            Rotation::R90 | Rotation::R270 => {
                // Output rows run along buffer columns: R90 maps upright (u, v) to buffer
                // (v, h - u), R270 to (w - v, u).
                let r90 = self.rotation == Rotation::R90;
                let rows = taps(sw, h, r90);
                for (oy, (x0, x1, fx)) in taps(sh, w, !r90).into_iter().enumerate() {
                    let dst = &mut out[oy * cw..oy * cw + sw];
                    for (d, &(y0, y1, fy)) in dst.iter_mut().zip(&rows) {
                        let (r0, r1) = (&l.data[y0 * l.stride..], &l.data[y1 * l.stride..]);
                        *d = bilerp(r0, r1, x0, x1, fx, fy);
                    }
                }
            }
        }
        (sw, sh)
    }

    /// Warps the quad (upright coordinates, corners TL TR BR BL) to an `ow` x `oh` image of
    /// values in 0..1 written into `out` with row length `out_stride`.
    pub fn warp_quad(&self, quad: &Quad, ow: usize, oh: usize, out: &mut [f32], out_stride: usize) {
        let map = QuadMap::new(quad, ow, oh);
        // Output pixel (ox, oy) samples the source at H(ox, oy) in pixel-index coordinates,
        // the convention of OpenCV's warpPerspective that the reader was trained with.
        for oy in 0..oh {
            let py = oy as f32;
            for ox in 0..ow {
                let p = map.apply(ox as f32, py);
                out[oy * out_stride + ox] = self.sample(p.x + 0.5, p.y + 0.5) * (1.0 / 255.0);
            }
        }
    }

    /// The upright region `b` (clipped to the image) at native resolution.
    pub fn crop(&self, b: &BBox) -> GrayImage {
        let (w, h) = self.size();
        let x0 = b.x.floor().clamp(0.0, w as f32 - 1.0) as usize;
        let y0 = b.y.floor().clamp(0.0, h as f32 - 1.0) as usize;
        let x1 = ((b.x + b.w).ceil() as usize).clamp(x0 + 1, w);
        let y1 = ((b.y + b.h).ceil() as usize).clamp(y0 + 1, h);
        let mut pixels = Vec::with_capacity((x1 - x0) * (y1 - y0));
        for v in y0..y1 {
            for u in x0..x1 {
                pixels.push(self.sample(u as f32 + 0.5, v as f32 + 0.5).round() as u8);
            }
        }
        GrayImage {
            width: x1 - x0,
            height: y1 - y0,
            pixels,
        }
    }
}

/// Bilinear value in 0..1 between pixels `x0`, `x1` of rows `r0`, `r1` (weights `fx`, `fy`
/// of the second pixel and row).
#[inline(always)]
fn bilerp(r0: &[u8], r1: &[u8], x0: usize, x1: usize, fx: f32, fy: f32) -> f32 {
    let top = r0[x0] as f32 + (r0[x1] as f32 - r0[x0] as f32) * fx;
    let bot = r1[x0] as f32 + (r1[x1] as f32 - r1[x0] as f32) * fx;
    (top + (bot - top) * fy) * (1.0 / 255.0)
}

/// Buffer row pair `2y, 2y + 1` halved into `dst` (`dst.len()` outputs, each the mean of a
/// 2x2 block, in 0..1).
fn halve_row(l: &Luma<'_>, y: usize, dst: &mut [f32]) {
    let r0 = &l.data[2 * y * l.stride..][..2 * dst.len()];
    let r1 = &l.data[(2 * y + 1) * l.stride..][..2 * dst.len()];
    for ((d, a), b) in dst
        .iter_mut()
        .zip(r0.chunks_exact(2))
        .zip(r1.chunks_exact(2))
    {
        let sum = (a[0] as u16 + a[1] as u16 + b[0] as u16 + b[1] as u16) as f32;
        *d = sum * 0.25 * (1.0 / 255.0);
    }
}

/// Projective transform mapping `src[i]` to `dst[i]`, as a row-major 3x3 matrix with h[8] = 1.
/// None when the points are degenerate.
pub fn homography(src: &[Point; 4], dst: &[Point; 4]) -> Option<[f32; 9]> {
    let mut a = [[0f64; 9]; 8];
    for i in 0..4 {
        let (x, y) = (src[i].x as f64, src[i].y as f64);
        let (u, v) = (dst[i].x as f64, dst[i].y as f64);
        a[2 * i] = [x, y, 1.0, 0.0, 0.0, 0.0, -u * x, -u * y, u];
        a[2 * i + 1] = [0.0, 0.0, 0.0, x, y, 1.0, -v * x, -v * y, v];
    }
    // Gaussian elimination with partial pivoting on the 8x8 system.
    for col in 0..8 {
        let pivot = (col..8).max_by(|&r1, &r2| a[r1][col].abs().total_cmp(&a[r2][col].abs()))?;
        if a[pivot][col].abs() < 1e-9 {
            return None;
        }
        a.swap(col, pivot);
        for r in 0..8 {
            if r != col {
                let f = a[r][col] / a[col][col];
                let pivot_row = a[col];
                for (x, p) in a[r][col..].iter_mut().zip(&pivot_row[col..]) {
                    *x -= f * p;
                }
            }
        }
    }
    let mut h = [0f32; 9];
    for i in 0..8 {
        h[i] = (a[i][8] / a[i][i]) as f32;
    }
    h[8] = 1.0;
    if h.iter().all(|v| v.is_finite()) {
        Some(h)
    } else {
        None
    }
}

/// Axis-aligned mapping onto the quad's bounding box, for degenerate quads.
/// The mapping from the pixels of an `ow` x `oh` output image to the upright source pixels of
/// a quad that [`Sampler::warp_quad`] warps: output (x, y) → source point.
#[derive(Debug, Clone, Copy)]
pub struct QuadMap([f32; 9]);

impl QuadMap {
    /// The homography taking the output rectangle's corners to the quad's (an axis-aligned
    /// fit of its bounding box when the quad is degenerate).
    pub fn new(quad: &Quad, ow: usize, oh: usize) -> Self {
        let rect = [
            Point::new(0.0, 0.0),
            Point::new(ow as f32, 0.0),
            Point::new(ow as f32, oh as f32),
            Point::new(0.0, oh as f32),
        ];
        QuadMap(homography(&rect, &quad.0).unwrap_or_else(|| affine_fallback(quad, ow, oh)))
    }

    /// The source point of output point (x, y).
    #[inline(always)]
    pub fn apply(&self, x: f32, y: f32) -> Point {
        let hm = &self.0;
        let w = hm[6] * x + hm[7] * y + hm[8];
        let w = if w.abs() < 1e-9 { 1e-9 } else { w };
        Point::new(
            (hm[0] * x + hm[1] * y + hm[2]) / w,
            (hm[3] * x + hm[4] * y + hm[5]) / w,
        )
    }
}

fn affine_fallback(quad: &Quad, ow: usize, oh: usize) -> [f32; 9] {
    let b = quad.bbox();
    [
        b.w.max(1.0) / ow as f32,
        0.0,
        b.x,
        0.0,
        b.h.max(1.0) / oh as f32,
        b.y,
        0.0,
        0.0,
        1.0,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Frame;

    fn ramp(w: usize, h: usize) -> Vec<u8> {
        (0..w * h).map(|i| ((i % w) * 10 + (i / w)) as u8).collect()
    }

    #[test]
    fn rotation_maps_corners() {
        let buf = ramp(4, 3);
        let f = Frame::gray8(&buf, 4, 3, 4).expect("valid");
        // Rotated 90° clockwise, the upright top-left pixel is the buffer's bottom-left.
        let s = Sampler::new(f.luma(), Rotation::R90);
        assert_eq!(s.size(), (3, 4));
        assert_eq!(s.sample(0.5, 0.5), buf[2 * 4] as f32);
        assert_eq!(s.sample(2.5, 0.5), buf[0] as f32);
        let s = Sampler::new(f.luma(), Rotation::R270);
        assert_eq!(s.sample(0.5, 0.5), buf[3] as f32);
        let s = Sampler::new(f.luma(), Rotation::R180);
        assert_eq!(s.sample(0.5, 0.5), buf[2 * 4 + 3] as f32);
    }

    #[test]
    fn resize_fast_paths_match_bilinear_sampling() {
        // Every rotation, downscales (halving included), an upscale and a canvas smaller than
        // the scaled image, on uneven content: each output is `sample` at its centre.
        for (bw, bh) in [(23, 17), (24, 18)] {
            let buf: Vec<u8> = (0..bw * bh)
                .map(|i| ((i * 7919 + i / 5) % 251) as u8)
                .collect();
            let f = Frame::gray8(&buf, bw, bh, bw).expect("valid");
            for rotation in [Rotation::R0, Rotation::R90, Rotation::R180, Rotation::R270] {
                let s = Sampler::new(f.luma(), rotation);
                for (scale, canvas) in [(0.61, 32), (0.5, 32), (0.5, 8), (1.7, 32)] {
                    let mut out = vec![7.0; canvas * canvas];
                    let (sw, sh) = s.resize_into(scale, canvas, canvas, &mut out);
                    let (uw, uh) = s.size();
                    assert_eq!(
                        (sw, sh),
                        (
                            ((uw as f32 * scale).round() as usize).min(canvas),
                            ((uh as f32 * scale).round() as usize).min(canvas)
                        )
                    );
                    for oy in 0..canvas {
                        for ox in 0..canvas {
                            let got = out[oy * canvas + ox];
                            if ox >= sw || oy >= sh {
                                assert_eq!(got, 0.0);
                                continue;
                            }
                            let (u, v) = ((ox as f32 + 0.5) / scale, (oy as f32 + 0.5) / scale);
                            let want = s.sample(u, v) / 255.0;
                            assert!(
                                (got - want).abs() < 1e-5,
                                "{rotation:?} {bw}x{bh} scale {scale} at ({ox},{oy}): {got} vs {want}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn homography_maps_points() {
        let src = [
            Point::new(0.0, 0.0),
            Point::new(160.0, 0.0),
            Point::new(160.0, 48.0),
            Point::new(0.0, 48.0),
        ];
        let dst = [
            Point::new(10.0, 5.0),
            Point::new(90.0, 12.0),
            Point::new(95.0, 40.0),
            Point::new(8.0, 33.0),
        ];
        let h = homography(&src, &dst).expect("non-degenerate");
        for (s, d) in src.iter().zip(&dst) {
            let w = h[6] * s.x + h[7] * s.y + h[8];
            assert!(((h[0] * s.x + h[1] * s.y + h[2]) / w - d.x).abs() < 1e-3);
            assert!(((h[3] * s.x + h[4] * s.y + h[5]) / w - d.y).abs() < 1e-3);
        }
        assert!(homography(&src, &[Point::new(1.0, 1.0); 4]).is_none());
    }

    #[test]
    fn warp_of_axis_aligned_quad_is_a_crop() {
        let buf = ramp(20, 10);
        let f = Frame::gray8(&buf, 20, 10, 20).expect("valid");
        let s = Sampler::new(f.luma(), Rotation::R0);
        let q = Quad::from_bbox(&BBox::new(4.0, 2.0, 8.0, 4.0));
        let mut out = vec![0.0; 32];
        s.warp_quad(&q, 8, 4, &mut out, 8);
        assert!((out[0] * 255.0 - buf[2 * 20 + 4] as f32).abs() < 1e-3);
        assert!((out[31] * 255.0 - buf[5 * 20 + 11] as f32).abs() < 1e-3);
        let c = s.crop(&BBox::new(4.0, 2.0, 8.0, 4.0));
        assert_eq!((c.width, c.height), (8, 4));
        assert_eq!(c.pixels[0], buf[2 * 20 + 4]);
    }
}
