//! The recognition pipeline: `Engine` (stateless: frame → observations, detect + read) and
//! `Scanner` (stateful: a stream of frames → one consensus `PlateRead` per vehicle pass, with
//! its best crop and the vehicle context image from that crop's frame).

use std::sync::Arc;

use serde::Serialize;

use crate::detector::{Detection, DetectorConfig, PlateDetector};
use crate::error::Error;
use crate::frame::Frame;
use crate::geometry::{BBox, Quad, nms};
use crate::imgproc::{GrayImage, Sampler};
use crate::reader::{CROP_MARGIN, Effort, PlateReader, PlateText};
use crate::refiner::{PlateRefiner, RefinerConfig};
use crate::tracker::{PlateRead, TrackInput, Tracker, TrackerConfig};

/// Engine settings.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EngineConfig {
    pub detector: DetectorConfig,
    pub refiner: RefinerConfig,
    pub tracker: TrackerConfig,
    /// Margin around each quad before it is read (see [`PlateReader::margin`]); `None` keeps
    /// the reader's default.
    pub read_margin: Option<(f32, f32)>,
}

/// One plate found in one frame.
#[derive(Debug, Clone, Serialize)]
pub struct Observation {
    pub detection: Detection,
    pub text: PlateText,
    /// Evidence crop around the plate (grayscale, native resolution).
    #[serde(skip)]
    pub crop: GrayImage,
}

impl Observation {
    /// True when the reader confirms the detection as a plate by the same rule the tracker
    /// applies to its reads (plausible length, mean character confidence).
    pub fn is_confirmed(&self, rule: &crate::TrackerConfig) -> bool {
        rule.accepts(&self.text.text, self.text.confidence)
    }
}

/// The ONNX files an [`Engine`] runs (see `models/CONTRACT.md`).
#[derive(Debug, Clone, Copy)]
pub struct Models<'a> {
    pub detector: &'a [u8],
    /// The box refiner; `None` reads the detector's quads as they are.
    pub refiner: Option<&'a [u8]>,
    pub reader: &'a [u8],
}

impl Models<'static> {
    /// The models shipped in this repository.
    pub fn shipped() -> Self {
        Models {
            detector: crate::DEFAULT_DETECTOR_ONNX,
            refiner: Some(crate::DEFAULT_REFINER_ONNX),
            reader: crate::DEFAULT_READER_ONNX,
        }
    }
}

/// Detector, box refiner and reader, loaded and optimised once; shareable across threads.
#[derive(Debug)]
pub struct Engine {
    detector: PlateDetector,
    refiner: Option<PlateRefiner>,
    reader: PlateReader,
    config: EngineConfig,
}

impl Engine {
    /// Builds the engine from ONNX model bytes.
    pub fn new(models: Models<'_>, config: EngineConfig) -> Result<Self, Error> {
        let detector = PlateDetector::new(models.detector, config.detector.clone())?;
        let refiner = models
            .refiner
            .map(|r| PlateRefiner::new(r, config.refiner.clone()))
            .transpose()?;
        let mut reader = PlateReader::new(models.reader)?;
        if let Some(m) = config.read_margin {
            reader.margin = m;
        }
        Ok(Engine {
            detector,
            refiner,
            reader,
            config,
        })
    }

    /// Builds the engine from the models shipped in this repository.
    pub fn with_default_models(config: EngineConfig) -> Result<Self, Error> {
        Self::new(Models::shipped(), config)
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Whether each detection goes through the box refiner before it is read.
    pub fn has_refiner(&self) -> bool {
        self.refiner.is_some()
    }

    /// Plate detections only (refined when the engine has a refiner).
    pub fn detect(&self, frame: &Frame<'_>) -> Result<Vec<Detection>, Error> {
        let sampler = Sampler::new(frame.luma(), frame.rotation());
        self.detections(&sampler)
    }

    /// The detector's detections, each refined and those the refiner rejects as no plate
    /// dropped (detections that end up overlapping a better one are dropped too).
    fn detections(&self, sampler: &Sampler<'_>) -> Result<Vec<Detection>, Error> {
        let detections = self.detector.detect(sampler)?;
        let Some(refiner) = &self.refiner else {
            return Ok(detections);
        };
        let mut refined = Vec::with_capacity(detections.len());
        for d in detections {
            let r = refiner.refine(sampler, &d.quad)?;
            if r.plate >= refiner.config().min_plate {
                refined.push(Detection {
                    quad: r.quad,
                    bbox: r.quad.bbox(),
                    score: d.score,
                });
            }
        }
        let boxes: Vec<BBox> = refined.iter().map(|d| d.bbox).collect();
        let scores: Vec<f32> = refined.iter().map(|d| d.score).collect();
        let keep = nms(&boxes, &scores, self.detector.config().nms_iou);
        Ok(keep.into_iter().map(|i| refined[i]).collect())
    }

    /// Detects and reads every plate in one frame, spending `effort` on each plate.
    pub fn analyze(&self, frame: &Frame<'_>, effort: Effort) -> Result<Vec<Observation>, Error> {
        let sampler = Sampler::new(frame.luma(), frame.rotation());
        let detections = self.detections(&sampler)?;
        let mut out = Vec::with_capacity(detections.len());
        for detection in detections {
            let text = self.reader.read(&sampler, &detection.quad, effort)?;
            let crop = sampler.crop(&detection.bbox.expand(0.15, 0.3));
            out.push(Observation {
                detection,
                text,
                crop,
            });
        }
        Ok(out)
    }

    /// Reads the plate inside `quad` (upright pixels, e.g. a detection's quad).
    pub fn read(&self, frame: &Frame<'_>, quad: &Quad, effort: Effort) -> Result<PlateText, Error> {
        let sampler = Sampler::new(frame.luma(), frame.rotation());
        Ok(self.reader.read(&sampler, quad, effort)?)
    }

    /// Reads a still image that is already a plate crop (no detection), with
    /// [`Effort::Still`].
    pub fn read_crop(&self, frame: &Frame<'_>) -> Result<PlateText, Error> {
        let sampler = Sampler::new(frame.luma(), frame.rotation());
        let (w, h) = sampler.size();
        let quad = Quad::from_bbox(&BBox::new(0.0, 0.0, w as f32, h as f32));
        // The whole image is the plate quad, with the trained margin (edges replicated).
        Ok(self
            .reader
            .read_with_margin(&sampler, &quad, Effort::Still, CROP_MARGIN)?)
    }
}

/// A continuous scan: frames in, consensus reads out as vehicle passes end.
#[derive(Debug)]
pub struct Scanner {
    engine: Arc<Engine>,
    tracker: Tracker,
    frames: u64,
    effort: Effort,
}

/// What one pushed frame produced.
#[derive(Debug, Default)]
pub struct FrameResult {
    /// Plates seen in this frame (for live overlays).
    pub observations: Vec<Observation>,
    /// Vehicle passes that ended with this frame.
    pub reads: Vec<PlateRead>,
}

impl Scanner {
    /// A scan of video or camera frames ([`Effort::Frame`]).
    pub fn new(engine: Arc<Engine>) -> Self {
        Self::with_effort(engine, Effort::Frame)
    }

    /// A scan spending `effort` on each plate of each frame ([`Effort::Still`] for a still
    /// image, which has no next frame to confirm an uncertain read).
    pub fn with_effort(engine: Arc<Engine>, effort: Effort) -> Self {
        let tracker = Tracker::new(engine.config.tracker.clone());
        Scanner {
            engine,
            tracker,
            frames: 0,
            effort,
        }
    }

    /// Frames processed so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Processes one frame captured at `timestamp_ms`.
    pub fn push(&mut self, frame: &Frame<'_>, timestamp_ms: u64) -> Result<FrameResult, Error> {
        let observations = self.engine.analyze(frame, self.effort)?;
        self.frames += 1;
        let inputs = observations
            .iter()
            .map(|o| TrackInput {
                quad: o.detection.quad,
                bbox: o.detection.bbox,
                text: o.text.clone(),
                crop: o.crop.clone(),
            })
            .collect();
        let reads = self.tracker.update_in(timestamp_ms, inputs, Some(frame));
        Ok(FrameResult {
            observations,
            reads,
        })
    }

    /// Ends the scan: every open track is emitted.
    pub fn finish(&mut self) -> Vec<PlateRead> {
        self.tracker.finish()
    }
}
