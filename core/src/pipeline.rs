//! The recognition pipeline: `Engine` (stateless: frame → observations, detect + read) and
//! `Scanner` (stateful: a stream of frames → one consensus `PlateRead` per vehicle pass, with
//! its best crop and the vehicle context image from that crop's frame).

use std::sync::Arc;

use serde::Serialize;

use crate::detector::{Detection, DetectorConfig, PlateDetector};
use crate::error::Error;
use crate::frame::Frame;
use crate::geometry::{BBox, Quad};
use crate::imgproc::{GrayImage, Sampler};
use crate::reader::{PlateReader, PlateText};
use crate::tracker::{PlateRead, TrackInput, Tracker, TrackerConfig};

/// Engine settings.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EngineConfig {
    pub detector: DetectorConfig,
    pub tracker: TrackerConfig,
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

/// Detector and reader, loaded and optimised once; shareable across threads.
#[derive(Debug)]
pub struct Engine {
    detector: PlateDetector,
    reader: PlateReader,
    config: EngineConfig,
}

impl Engine {
    /// Builds the engine from ONNX model bytes.
    pub fn new(
        detector_onnx: &[u8],
        reader_onnx: &[u8],
        config: EngineConfig,
    ) -> Result<Self, Error> {
        let detector = PlateDetector::new(detector_onnx, config.detector.clone())?;
        let reader = PlateReader::new(reader_onnx)?;
        Ok(Engine {
            detector,
            reader,
            config,
        })
    }

    /// Builds the engine from the models shipped in this repository.
    pub fn with_default_models(config: EngineConfig) -> Result<Self, Error> {
        Self::new(
            crate::DEFAULT_DETECTOR_ONNX,
            crate::DEFAULT_READER_ONNX,
            config,
        )
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Plate detections only.
    pub fn detect(&self, frame: &Frame<'_>) -> Result<Vec<Detection>, Error> {
        let sampler = Sampler::new(frame.luma(), frame.rotation());
        Ok(self.detector.detect(&sampler)?)
    }

    /// Detects and reads every plate in one frame.
    pub fn analyze(&self, frame: &Frame<'_>) -> Result<Vec<Observation>, Error> {
        let sampler = Sampler::new(frame.luma(), frame.rotation());
        let detections = self.detector.detect(&sampler)?;
        let mut out = Vec::with_capacity(detections.len());
        for detection in detections {
            let text = self.reader.read(&sampler, &detection.quad)?;
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
    pub fn read(&self, frame: &Frame<'_>, quad: &Quad) -> Result<PlateText, Error> {
        let sampler = Sampler::new(frame.luma(), frame.rotation());
        Ok(self.reader.read(&sampler, quad)?)
    }

    /// Reads a frame that is already a plate crop (no detection).
    pub fn read_crop(&self, frame: &Frame<'_>) -> Result<PlateText, Error> {
        let sampler = Sampler::new(frame.luma(), frame.rotation());
        let (w, h) = sampler.size();
        let quad = Quad::from_bbox(&BBox::new(0.0, 0.0, w as f32, h as f32));
        // The whole image is the plate quad, with the reader's usual margin (edges replicated).
        Ok(self.reader.read(&sampler, &quad)?)
    }
}

/// A continuous scan: frames in, consensus reads out as vehicle passes end.
#[derive(Debug)]
pub struct Scanner {
    engine: Arc<Engine>,
    tracker: Tracker,
    frames: u64,
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
    pub fn new(engine: Arc<Engine>) -> Self {
        let tracker = Tracker::new(engine.config.tracker.clone());
        Scanner {
            engine,
            tracker,
            frames: 0,
        }
    }

    /// Frames processed so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Processes one frame captured at `timestamp_ms`.
    pub fn push(&mut self, frame: &Frame<'_>, timestamp_ms: u64) -> Result<FrameResult, Error> {
        let observations = self.engine.analyze(frame)?;
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
