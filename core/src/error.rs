//! Error types of the engine. Messages never contain plate text (plate text is user data).

use thiserror::Error;

/// A camera frame that cannot be used as described.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum FrameError {
    #[error("frame dimensions {width}x{height} are out of range (1..=16384)")]
    BadDimensions { width: usize, height: usize },
    #[error("{plane} plane row stride {stride} is smaller than its row of {needed} bytes")]
    StrideTooSmall {
        plane: &'static str,
        stride: usize,
        needed: usize,
    },
    #[error("{plane} plane pixel stride {stride} is not supported (expected {expected})")]
    BadPixelStride {
        plane: &'static str,
        stride: usize,
        expected: &'static str,
    },
    #[error("{plane} plane holds {len} bytes but the frame needs {needed}")]
    BufferTooSmall {
        plane: &'static str,
        len: usize,
        needed: usize,
    },
}

/// A model file that cannot be loaded or run.
#[derive(Debug, Error)]
pub enum ModelError {
    #[error("the {model} model could not be parsed as ONNX: {source}")]
    Parse {
        model: &'static str,
        source: anyhow_like::TractError,
    },
    #[error("the {model} model does not have the expected interface: {reason}")]
    Interface { model: &'static str, reason: String },
    #[error("the {model} model failed to run: {source}")]
    Run {
        model: &'static str,
        source: anyhow_like::TractError,
    },
}

/// Any engine error.
#[derive(Debug, Error)]
pub enum Error {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("invalid configuration: {0}")]
    Config(String),
}

pub(crate) mod anyhow_like {
    //! tract reports errors as `anyhow::Error`; this wraps it so it can be a `#[source]`.
    use std::fmt;

    pub struct TractError(pub tract_onnx::prelude::TractError);

    impl fmt::Debug for TractError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "{:?}", self.0)
        }
    }
    impl fmt::Display for TractError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "{:#}", self.0)
        }
    }
    impl std::error::Error for TractError {}
}
