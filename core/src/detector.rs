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
    /// At most this many detections per frame, best first (the reader verifies each).
    pub max_detections: usize,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        DetectorConfig {
            input_width: 640,
            input_height: 384,
            max_upscale: 2.0,
            score_threshold: 0.15,
            nms_iou: 0.4,
            max_detections: 10,
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

/// The plate detector, loaded and optimised once.
#[derive(Debug)]
pub struct PlateDetector {
    model: OnnxModel,
    config: DetectorConfig,
}

impl PlateDetector {
    pub fn new(onnx: &[u8], config: DetectorConfig) -> Result<Self, crate::Error> {
        config.validate().map_err(crate::Error::Config)?;
        let model = OnnxModel::load(
            "detector",
            onnx,
            &[1, 1, config.input_height, config.input_width],
        )?;
        let det = PlateDetector { model, config };
        det.check_interface()?;
        Ok(det)
    }

    pub fn config(&self) -> &DetectorConfig {
        &self.config
    }

    fn check_interface(&self) -> Result<(), ModelError> {
        let input = vec![0.0; self.config.input_width * self.config.input_height];
        let outs = self.model.run(input)?;
        split_outputs(&outs, &self.config).map(|_| ())
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
        let (heat, geom) = split_outputs(&outs, c)?;
        let (gh, gw) = (c.input_height / STRIDE, c.input_width / STRIDE);
        let mut dets = decode(heat, geom, gw, gh, c.score_threshold, c.nms_iou);
        dets.truncate(c.max_detections);
        for d in &mut dets {
            d.quad = d.quad.scale(1.0 / scale);
            d.bbox = d.quad.bbox();
        }
        Ok(dets)
    }
}

fn split_outputs<'o>(
    outs: &'o [Output],
    c: &DetectorConfig,
) -> Result<(&'o [f32], &'o [f32]), ModelError> {
    let (gh, gw) = (c.input_height / STRIDE, c.input_width / STRIDE);
    let find = |ch: usize| {
        outs.iter()
            .find(|o| o.shape == [1, ch, gh, gw])
            .map(|o| o.data.as_slice())
    };
    match (find(1), find(8)) {
        (Some(h), Some(g)) => Ok((h, g)),
        _ => Err(ModelError::Interface {
            model: "detector",
            reason: format!(
                "expected outputs [1,1,{gh},{gw}] and [1,8,{gh},{gw}], got {:?}",
                outs.iter().map(|o| &o.shape).collect::<Vec<_>>()
            ),
        }),
    }
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
    let plane = gw * gh;
    let mut cands = Vec::new();
    for r in 0..gh {
        for c in 0..gw {
            let p = heat[r * gw + c];
            if p < threshold || !p.is_finite() {
                continue;
            }
            let is_peak = (r.saturating_sub(1)..(r + 2).min(gh))
                .flat_map(|rr| (c.saturating_sub(1)..(c + 2).min(gw)).map(move |cc| (rr, cc)))
                .all(|(rr, cc)| heat[rr * gw + cc] <= p);
            if !is_peak {
                continue;
            }
            let corner = |k: usize| {
                let dx = geom[(2 * k) * plane + r * gw + c];
                let dy = geom[(2 * k + 1) * plane + r * gw + c];
                Point::new(
                    (c as f32 + 0.5 + dx) * STRIDE as f32,
                    (r as f32 + 0.5 + dy) * STRIDE as f32,
                )
            };
            let quad = Quad([corner(0), corner(1), corner(2), corner(3)]);
            let bbox = quad.bbox();
            if bbox.w >= 2.0 && bbox.h >= 1.0 && bbox.w.is_finite() && bbox.h.is_finite() {
                cands.push(Detection {
                    quad,
                    bbox,
                    score: p,
                });
            }
        }
    }
    let boxes: Vec<BBox> = cands.iter().map(|d| d.bbox).collect();
    let scores: Vec<f32> = cands.iter().map(|d| d.score).collect();
    nms(&boxes, &scores, nms_iou)
        .into_iter()
        .map(|i| cands[i])
        .collect()
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
