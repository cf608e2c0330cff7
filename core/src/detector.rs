//! Plate detector: the luma frame scaled into a fixed canvas, an anchor-free ONNX model
//! (heatmap + four corners per cell, see `models/CONTRACT.md`), peak decoding and NMS.

use serde::Serialize;

use crate::error::ModelError;
use crate::geometry::{BBox, Point, Quad, nms};
use crate::imgproc::Sampler;
use crate::model::{OnnxModel, Output};

/// Output stride of the detector model.
pub const STRIDE: usize = 4;

/// How the detector runs.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectorConfig {
    /// Canvas width the frame is scaled into (multiple of 32).
    pub input_width: usize,
    /// Canvas height (multiple of 32).
    pub input_height: usize,
    /// Largest upscale applied to frames smaller than the canvas.
    pub max_upscale: f32,
    /// Minimum heatmap peak for a detection.
    pub score_threshold: f32,
    /// Detections overlapping a better one by more than this IoU are dropped.
    pub nms_iou: f32,
    /// At most this many detections per frame, best first (the reader verifies each, about
    /// 2 ms apiece). 8: on the dev set (roboflow valid, every 10th dashcam train frame) the
    /// best 8 find as many plates as the best 10, and a dashcam frame has 6.5 rather than 7.3.
    pub max_detections: usize,
    /// Run the geometry head only around heatmap peaks when the model file allows it (names
    /// `geometry_features`): the same corners as running it on every cell, for less work.
    pub geometry_at_peaks: bool,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        DetectorConfig {
            input_width: 640,
            input_height: 384,
            max_upscale: 2.0,
            score_threshold: 0.15,
            nms_iou: 0.4,
            max_detections: 8,
            geometry_at_peaks: true,
        }
    }
}

impl DetectorConfig {
    fn validate(&self) -> Result<(), String> {
        if self.input_width == 0
            || self.input_height == 0
            || self.input_width % 32 != 0
            || self.input_height % 32 != 0
        {
            return Err(format!(
                "detector input {}x{} must be positive multiples of 32",
                self.input_width, self.input_height
            ));
        }
        if self.input_width > 4096 || self.input_height > 4096 {
            return Err("detector input larger than 4096".into());
        }
        if !(0.0..=1.0).contains(&self.score_threshold) || !(0.0..=1.0).contains(&self.nms_iou) {
            return Err("detector thresholds must be within 0..1".into());
        }
        if self.max_upscale.is_nan() || self.max_upscale <= 0.0 {
            return Err("max_upscale must be positive".into());
        }
        Ok(())
    }
}

/// One detected plate in upright frame pixels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Detection {
    pub quad: Quad,
    pub bbox: BBox,
    pub score: f32,
}

/// The tensor the geometry head reads, when the file names it (see `models/CONTRACT.md`).
pub const GEOMETRY_FEATURES: &str = "geometry_features";

/// Side of the feature patch the geometry head sees around a cell.
const PATCH: usize = 3;

/// Peaks whose corners one run of the geometry head computes.
const PATCH_BATCH: usize = 16;

/// At most this many heatmap peaks (the best) are decoded per frame.
const MAX_PEAKS: usize = 256;

/// Where the corners of a peak come from.
#[derive(Debug)]
enum Geometry {
    /// The dense `geometry` output, computed for every cell.
    Dense,
    /// The geometry head run only on the 3x3 patches of `geometry_features` (`channels`
    /// deep) around heatmap peaks: the same corners for a fraction of the work.
    AtPeaks { head: OnnxModel, channels: usize },
}

/// The plate detector, loaded and optimised once.
#[derive(Debug)]
pub struct PlateDetector {
    model: OnnxModel,
    geometry: Geometry,
    config: DetectorConfig,
}

impl PlateDetector {
    pub fn new(onnx: &[u8], config: DetectorConfig) -> Result<Self, crate::Error> {
        config.validate().map_err(crate::Error::Config)?;
        let shape = [1, 1, config.input_height, config.input_width];
        let parsed = OnnxModel::parse("detector", onnx)?;
        let local = config.geometry_at_peaks && parsed.has_tensor(GEOMETRY_FEATURES);
        let second = if local { GEOMETRY_FEATURES } else { "geometry" };
        let model = OnnxModel::plan(parsed.clone(), &shape, Some(&["heatmap", second]))?;
        let blank = vec![0.0; config.input_width * config.input_height];
        let channels = split_outputs(&model.run(blank)?, &config, local)?;
        let geometry = if local {
            let head = OnnxModel::plan_from(
                parsed,
                GEOMETRY_FEATURES,
                &[PATCH_BATCH, channels, PATCH, PATCH],
                &["geometry"],
            )?;
            let outs = head.run(vec![0.0; PATCH_BATCH * channels * PATCH * PATCH])?;
            if outs.len() != 1 || outs[0].shape() != [PATCH_BATCH, 8, PATCH, PATCH] {
                return Err(ModelError::Interface {
                    model: "detector",
                    reason: format!(
                        "the geometry head on {GEOMETRY_FEATURES} patches gives {:?}, expected [{PATCH_BATCH},8,{PATCH},{PATCH}]",
                        outs.iter().map(Output::shape).collect::<Vec<_>>()
                    ),
                }
                .into());
            }
            Geometry::AtPeaks { head, channels }
        } else {
            Geometry::Dense
        };
        Ok(PlateDetector {
            model,
            geometry,
            config,
        })
    }

    pub fn config(&self) -> &DetectorConfig {
        &self.config
    }

    /// Whether the geometry head runs only around heatmap peaks (see
    /// [`DetectorConfig::geometry_at_peaks`]); `false` for files that do not allow it.
    pub fn geometry_at_peaks(&self) -> bool {
        matches!(self.geometry, Geometry::AtPeaks { .. })
    }

    /// The scale applied to an upright frame of size (w, h).
    pub fn scale_for(&self, w: usize, h: usize) -> f32 {
        let c = &self.config;
        (c.input_width as f32 / w as f32)
            .min(c.input_height as f32 / h as f32)
            .min(c.max_upscale)
    }

    /// Detects plates in the upright image behind `sampler`.
    pub fn detect(&self, sampler: &Sampler<'_>) -> Result<Vec<Detection>, ModelError> {
        let (w, h) = sampler.size();
        let scale = self.scale_for(w, h);
        let c = &self.config;
        let mut input = vec![0.0; c.input_width * c.input_height];
        sampler.resize_into(scale, c.input_width, c.input_height, &mut input);
        let outs = self.model.run(input)?;
        split_outputs(&outs, c, self.geometry_at_peaks())?;
        let (heat, second) = (outs[0].data(), outs[1].data());
        let grid = Grid {
            w: c.input_width / STRIDE,
            h: c.input_height / STRIDE,
        };
        let found = peaks(heat, grid, c.score_threshold);
        let offsets = match &self.geometry {
            Geometry::Dense => found.iter().map(|p| grid.at(second, p.cell)).collect(),
            Geometry::AtPeaks { head, channels } => {
                head_at_peaks(head, second, *channels, grid, &found)?
            }
        };
        let mut dets = detections(&found, &offsets, c.nms_iou);
        dets.truncate(c.max_detections);
        for d in &mut dets {
            d.quad = d.quad.scale(1.0 / scale);
            d.bbox = d.quad.bbox();
        }
        Ok(dets)
    }
}

/// Checks the plan's outputs: `[1,1,gh,gw]` heatmap first, then `[1,8,gh,gw]` geometry (or
/// `[1,C,gh,gw]` geometry features when `local`); returns the second output's channels.
fn split_outputs(outs: &[Output], c: &DetectorConfig, local: bool) -> Result<usize, ModelError> {
    let (gh, gw) = (c.input_height / STRIDE, c.input_width / STRIDE);
    match outs {
        [heat, second]
            if heat.shape() == [1, 1, gh, gw]
                && matches!(second.shape(), [1, ch, h, w] if *h == gh && *w == gw && (local || *ch == 8)) =>
        {
            Ok(second.shape()[1])
        }
        _ => Err(ModelError::Interface {
            model: "detector",
            reason: format!(
                "expected outputs heatmap [1,1,{gh},{gw}] and {} [1,{},{gh},{gw}], got {:?}",
                if local { GEOMETRY_FEATURES } else { "geometry" },
                if local { "C" } else { "8" },
                outs.iter().map(Output::shape).collect::<Vec<_>>()
            ),
        }),
    }
}

/// The detector's output grid (`w x h` cells of `STRIDE` canvas pixels).
#[derive(Debug, Clone, Copy)]
struct Grid {
    w: usize,
    h: usize,
}

impl Grid {
    /// The 8 corner offsets of `cell` (row, col) in a dense `8 x h x w` geometry map.
    fn at(&self, geom: &[f32], (r, c): (usize, usize)) -> [f32; 8] {
        let plane = self.w * self.h;
        std::array::from_fn(|k| geom[k * plane + r * self.w + c])
    }
}

/// A 3x3 local maximum of the heatmap at or above the threshold.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Peak {
    cell: (usize, usize),
    score: f32,
}

/// The heatmap's peaks in row-major order (the best `MAX_PEAKS` when there are more).
fn peaks(heat: &[f32], grid: Grid, threshold: f32) -> Vec<Peak> {
    let (gw, gh) = (grid.w, grid.h);
    let mut found = Vec::new();
    for r in 0..gh {
        for c in 0..gw {
            let p = heat[r * gw + c];
            if p < threshold || !p.is_finite() {
                continue;
            }
            let is_peak = (r.saturating_sub(1)..(r + 2).min(gh))
                .flat_map(|rr| (c.saturating_sub(1)..(c + 2).min(gw)).map(move |cc| (rr, cc)))
                .all(|(rr, cc)| heat[rr * gw + cc] <= p);
            if is_peak {
                found.push(Peak {
                    cell: (r, c),
                    score: p,
                });
            }
        }
    }
    if found.len() > MAX_PEAKS {
        found.sort_by(|a, b| b.score.total_cmp(&a.score));
        found.truncate(MAX_PEAKS);
        found.sort_by_key(|p| p.cell);
    }
    found
}

/// Runs the geometry head on the `PATCH x PATCH` patch of `features` (`channels x h x w`)
/// around each peak, zeros beyond the grid's edge as the dense head's padding gives, and
/// returns each peak's corner offsets (the patch's centre output).
fn head_at_peaks(
    head: &OnnxModel,
    features: &[f32],
    channels: usize,
    grid: Grid,
    found: &[Peak],
) -> Result<Vec<[f32; 8]>, ModelError> {
    let (plane, patch) = (grid.w * grid.h, PATCH * PATCH);
    let half = PATCH / 2;
    let mut offsets = Vec::with_capacity(found.len());
    for chunk in found.chunks(PATCH_BATCH) {
        let mut input = vec![0.0; PATCH_BATCH * channels * patch];
        for (k, peak) in chunk.iter().enumerate() {
            let (r, c) = peak.cell;
            for dy in 0..PATCH {
                let Some(rr) = (r + dy).checked_sub(half).filter(|&rr| rr < grid.h) else {
                    continue;
                };
                for dx in 0..PATCH {
                    let Some(cc) = (c + dx).checked_sub(half).filter(|&cc| cc < grid.w) else {
                        continue;
                    };
                    for ch in 0..channels {
                        input[(k * channels + ch) * patch + dy * PATCH + dx] =
                            features[ch * plane + rr * grid.w + cc];
                    }
                }
            }
        }
        let outs = head.run(input)?;
        let out = outs[0].data();
        let centre = half * PATCH + half;
        offsets.extend(
            (0..chunk.len()).map(|k| std::array::from_fn(|j| out[(k * 8 + j) * patch + centre])),
        );
    }
    Ok(offsets)
}

/// Turns peaks and their corner offsets (TL,TR,BR,BL as dx,dy in stride units from the cell
/// centre) into quads in canvas pixels, drops degenerate ones and applies NMS.
fn detections(found: &[Peak], offsets: &[[f32; 8]], nms_iou: f32) -> Vec<Detection> {
    let cands: Vec<Detection> = found
        .iter()
        .zip(offsets)
        .filter_map(|(peak, o)| {
            let (r, c) = peak.cell;
            let corner = |k: usize| {
                Point::new(
                    (c as f32 + 0.5 + o[2 * k]) * STRIDE as f32,
                    (r as f32 + 0.5 + o[2 * k + 1]) * STRIDE as f32,
                )
            };
            let quad = Quad([corner(0), corner(1), corner(2), corner(3)]);
            let bbox = quad.bbox();
            (bbox.w >= 2.0 && bbox.h >= 1.0 && bbox.w.is_finite() && bbox.h.is_finite()).then_some(
                Detection {
                    quad,
                    bbox,
                    score: peak.score,
                },
            )
        })
        .collect();
    let boxes: Vec<BBox> = cands.iter().map(|d| d.bbox).collect();
    let scores: Vec<f32> = cands.iter().map(|d| d.score).collect();
    nms(&boxes, &scores, nms_iou)
        .into_iter()
        .map(|i| cands[i])
        .collect()
}

/// Decodes heatmap peaks (3x3 local maxima at or above `threshold`) into quads in canvas
/// pixels and applies NMS. `heat` is `gh x gw`, `geom` is `8 x gh x gw`.
pub fn decode(
    heat: &[f32],
    geom: &[f32],
    gw: usize,
    gh: usize,
    threshold: f32,
    nms_iou: f32,
) -> Vec<Detection> {
    let grid = Grid { w: gw, h: gh };
    let found = peaks(heat, grid, threshold);
    let offsets: Vec<[f32; 8]> = found.iter().map(|p| grid.at(geom, p.cell)).collect();
    detections(&found, &offsets, nms_iou)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_finds_peaks_and_corners() {
        let (gw, gh) = (8, 6);
        let mut heat = vec![0.0; gw * gh];
        heat[2 * gw + 3] = 0.9;
        heat[2 * gw + 4] = 0.5; // neighbour, not a peak
        heat[5 * gw + 7] = 0.2; // below threshold
        let mut geom = vec![0.0; 8 * gw * gh];
        let idx = 2 * gw + 3;
        let offs = [(-2.0, -1.0), (2.0, -1.0), (2.0, 1.0), (-2.0, 1.0)];
        for (k, (dx, dy)) in offs.iter().enumerate() {
            geom[(2 * k) * gw * gh + idx] = *dx;
            geom[(2 * k + 1) * gw * gh + idx] = *dy;
        }
        let d = decode(&heat, &geom, gw, gh, 0.3, 0.4);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].score, 0.9);
        // Cell centre (3.5, 2.5) * 4 = (14, 10); corners ±8 x, ±4 y.
        assert_eq!(d[0].bbox, BBox::new(6.0, 6.0, 16.0, 8.0));
    }

    #[test]
    fn config_is_validated() {
        let c = DetectorConfig {
            input_width: 100,
            ..DetectorConfig::default()
        };
        assert!(c.validate().is_err());
        assert!(DetectorConfig::default().validate().is_ok());
    }
}
