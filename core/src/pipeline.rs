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
use crate::reader::{CROP_MARGIN, Effort, PlateReader, PlateText};
use crate::tracker::{PlateRead, TrackInput, Tracker, TrackerConfig};

/// Engine settings.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EngineConfig {
    pub detector: DetectorConfig,
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
        let mut reader = PlateReader::new(reader_onnx)?;
        if let Some(m) = config.read_margin {
            reader.margin = m;
        }
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

    /// Detects and reads every plate in one frame, spending `effort` on each plate.
    pub fn analyze(&self, frame: &Frame<'_>, effort: Effort) -> Result<Vec<Observation>, Error> {
        let sampler = Sampler::new(frame.luma(), frame.rotation());
        let detections = self.detector.detect(&sampler)?;
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
