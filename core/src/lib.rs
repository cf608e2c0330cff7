//! Platewatch recognition engine: camera frames in, one consensus plate read per vehicle pass out.
//!
//! The engine is pure Rust with no FFI and no platform code. Its layers:
//! [`frame`] (borrowed camera buffers) → [`imgproc`] (sampling, resize, perspective warp)
//! → [`detector`] (ONNX plate detector) → [`refiner`] (ONNX box refiner) → [`reader`] (ONNX plate OCR) → [`tracker`]
//! (multi-frame consensus) → [`PlateRead`]. [`pipeline`] ties them together. [`hotlist`] imports
//! hot lists and matches each read against them.

pub mod detector;
pub mod encounter;
pub mod error;
pub mod frame;
pub mod geometry;
pub mod hotlist;
pub mod imgproc;
mod model;
pub mod pipeline;
pub mod reader;
pub mod refiner;
pub mod session;
pub mod text;
pub mod tracker;
pub mod wire;

pub use detector::{Detection, DetectorConfig, PlateDetector};
pub use encounter::{Disposition, Encounter, EncounterError};
pub use error::{Error, FrameError, ModelError};
pub use frame::{Frame, Plane, Rotation};
pub use geometry::{BBox, Point, Quad};
pub use imgproc::GrayImage;
pub use pipeline::{Engine, EngineConfig, FrameResult, Models, Observation, Scanner};
pub use reader::{Effort, Layout, PlateReader, PlateText};
pub use refiner::{PlateRefiner, RefinerConfig};
pub use session::{GpsFix, GpsTrack, Session, SessionError, SessionRequest};
pub use tracker::{PlateRead, Tracker, TrackerConfig};

/// The detector model shipped with this repository (trained by `models/detector/train.py`).
pub const DEFAULT_DETECTOR_ONNX: &[u8] = include_bytes!("../../models/plate_detector.onnx");
/// The reader model shipped with this repository (trained by `models/reader/train.py`).
pub const DEFAULT_READER_ONNX: &[u8] = include_bytes!("../../models/plate_reader.onnx");
/// The box refiner model shipped with this repository (trained by `models/refiner/train.py`).
pub const DEFAULT_REFINER_ONNX: &[u8] = include_bytes!("../../models/plate_refiner.onnx");

/// Stands in for plate text in `Debug` output: shows only the length, so a `{:?}` in a log
/// line can never leak a plate.
pub(crate) struct Redacted(pub usize);

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<redacted, {} chars>", self.0)
    }
}

#[cfg(test)]
mod redaction_tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_plate_text() {
        let t = PlateText {
            text: "7ABC123".into(),
            char_confidences: vec![0.9; 7],
            confidence: 0.9,
            state: Some("CA"),
            state_confidence: 0.8,
            region: Some("United States"),
            region_confidence: 0.9,
            layout: Layout::Line,
        };
        let s = format!("{t:?} {t:#?}");
        assert!(
            !s.contains("7ABC123") && s.contains("<redacted, 7 chars>"),
            "{s}"
        );
    }
}
