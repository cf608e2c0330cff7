//! Plate box refiner: a second look at each detection at the frame's full resolution. A small
//! ONNX model (see `models/CONTRACT.md`) sees a loose crop around the detector's quad and
//! returns the plate's own four corners and the chance that the crop holds a plate at all.

use crate::error::ModelError;
use crate::geometry::Quad;
use crate::imgproc::{QuadMap, Sampler};
use crate::model::{OnnxModel, Output};

/// Width of the refiner's input crop.
pub const INPUT_W: usize = 128;
/// Height of the refiner's input crop.
pub const INPUT_H: usize = 48;
/// The crop is the detection's quad grown by this much of its width left and right and of its
/// height above and below (what the model was trained with).
pub const MARGIN: (f32, f32) = (0.30, 0.60);

/// How the refiner is used.
#[derive(Debug, Clone, PartialEq)]
pub struct RefinerConfig {
    /// Detections the refiner gives a plate probability below this are dropped before they
    /// are read (saving the read). 0 keeps every detection. 0.1: on the dev set (roboflow
    /// valid and every 10th dashcam train frame) it keeps 99.4% of the detections of labelled
    /// plates and drops 55% of those that match none.
    pub min_plate: f32,
    /// Refinement passes: each pass crops around the previous pass's corners. 2: on the dev
    /// set the second pass lifts recall at IoU >= 0.7 from 0.82 to 0.84 (a third adds
    /// nothing).
    pub passes: usize,
}

impl Default for RefinerConfig {
    fn default() -> Self {
        RefinerConfig {
            min_plate: 0.1,
            passes: 2,
        }
    }
}

impl RefinerConfig {
    fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.min_plate) {
            return Err("refiner min_plate must be within 0..1".into());
        }
        if !(1..=4).contains(&self.passes) {
            return Err("refiner passes must be 1 to 4".into());
        }
        Ok(())
    }
}

/// A refined detection: the plate's corners and how sure the refiner is that it is a plate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Refined {
    pub quad: Quad,
    pub plate: f32,
}

/// The box refiner, loaded and optimised once.
#[derive(Debug)]
pub struct PlateRefiner {
    model: OnnxModel,
    config: RefinerConfig,
}

impl PlateRefiner {
    pub fn new(onnx: &[u8], config: RefinerConfig) -> Result<Self, crate::Error> {
        config.validate().map_err(crate::Error::Config)?;
        let parsed = OnnxModel::parse("refiner", onnx)?;
        let model = OnnxModel::plan(
            parsed,
            &[1, 1, INPUT_H, INPUT_W],
            Some(&["corners", "plate"]),
        )?;
        let outs = model.run(vec![0.0; INPUT_W * INPUT_H])?;
        split_outputs(&outs)?;
        Ok(PlateRefiner { model, config })
    }

    pub fn config(&self) -> &RefinerConfig {
        &self.config
    }

    /// Refines `quad` (upright frame pixels) against the image behind `sampler`. The plate
    /// probability is the first pass's (the crop around `quad` itself); below
    /// [`RefinerConfig::min_plate`] no further pass is run.
    pub fn refine(&self, sampler: &Sampler<'_>, quad: &Quad) -> Result<Refined, ModelError> {
        let first = self.refine_once(sampler, quad)?;
        let mut refined = first;
        if first.plate >= self.config.min_plate {
            for _ in 1..self.config.passes {
                refined = self.refine_once(sampler, &refined.quad)?;
            }
        }
        Ok(Refined {
            plate: first.plate,
            ..refined
        })
    }

    fn refine_once(&self, sampler: &Sampler<'_>, quad: &Quad) -> Result<Refined, ModelError> {
        let crop = quad.expand(MARGIN.0, MARGIN.1);
        let mut input = vec![0.0; INPUT_W * INPUT_H];
        sampler.warp_quad(&crop, INPUT_W, INPUT_H, &mut input, INPUT_W);
        let outs = self.model.run(input)?;
        let (corners, plate) = split_outputs(&outs)?;
        let (w, h) = (INPUT_W as f32, INPUT_H as f32);
        // The same input-pixel → frame mapping that cut the crop.
        let map = QuadMap::new(&crop, INPUT_W, INPUT_H);
        let q = Quad(std::array::from_fn(|i| {
            map.apply(corners[2 * i] * w, corners[2 * i + 1] * h)
        }));
        let sane = q.0.iter().all(|p| p.x.is_finite() && p.y.is_finite())
            && q.width() >= 2.0
            && q.height() >= 1.0;
        Ok(Refined {
            quad: if sane { q } else { *quad },
            plate,
        })
    }
}

/// The corners (8 values, input-normalised) and the plate probability of one crop.
fn split_outputs(outs: &[Output]) -> Result<([f32; 8], f32), ModelError> {
    let bad = |reason: String| ModelError::Interface {
        model: "refiner",
        reason,
    };
    if outs.len() != 2 || outs[0].shape() != [1, 8] || outs[1].shape() != [1, 1] {
        return Err(bad(format!(
            "expected outputs corners [1,8] and plate [1,1], got {:?}",
            outs.iter().map(Output::shape).collect::<Vec<_>>()
        )));
    }
    let c = outs[0].data();
    let plate = outs[1].data()[0];
    if c.iter().any(|v| !v.is_finite()) || !plate.is_finite() {
        return Err(bad("non-finite output".into()));
    }
    Ok((std::array::from_fn(|i| c[i]), plate))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_files_and_config() {
        assert!(PlateRefiner::new(&[], RefinerConfig::default()).is_err());
        assert!(PlateRefiner::new(crate::DEFAULT_READER_ONNX, RefinerConfig::default()).is_err());
        let bad = RefinerConfig {
            passes: 0,
            ..Default::default()
        };
        assert!(PlateRefiner::new(crate::DEFAULT_REFINER_ONNX, bad).is_err());
        assert!(PlateRefiner::new(crate::DEFAULT_REFINER_ONNX, RefinerConfig::default()).is_ok());
    }
}
