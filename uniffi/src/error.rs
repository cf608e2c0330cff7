//! The FFI's small error enum (what the apps act on differently), the one place that converts
//! the crates' rich errors into it, and the guard that turns a panic into `Internal`.
//! Messages never contain plate text.

use std::panic::{AssertUnwindSafe, catch_unwind};

use platewatch_core::encounter::EncounterError;
use platewatch_core::hotlist::ImportError;
use platewatch_core::session::{GpsError, SessionError};
use platewatch_store::StoreError;
use platewatch_sync::SyncError;

/// Errors thrown to Kotlin (`PlatewatchException.*`) and Swift (`PlatewatchError.*`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
#[uniffi(flat_error)]
pub enum PlatewatchError {
    /// The caller passed something unusable (a frame with bad strides, an unknown reason code,
    /// an empty rejection reason, an unknown alert id, no active session).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The device store failed (disk full, corrupt database, unreadable path).
    #[error("storage: {0}")]
    Storage(String),
    /// The server could not be reached or failed; the rows stay queued and are retried.
    #[error("network: {0}")]
    Network(String),
    /// A model file is missing, corrupt or has the wrong interface.
    #[error("model: {0}")]
    Model(String),
    /// The server refused the device's credentials: sign in again.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// A bug (including a caught panic); the scanner stays usable.
    #[error("internal: {0}")]
    Internal(String),
}

/// What kind of error an [`crate::ScanListener::on_error`] event reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum ErrorKind {
    InvalidInput,
    Storage,
    Network,
    Model,
    Unauthorized,
    Internal,
}

impl PlatewatchError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            PlatewatchError::InvalidInput(_) => ErrorKind::InvalidInput,
            PlatewatchError::Storage(_) => ErrorKind::Storage,
            PlatewatchError::Network(_) => ErrorKind::Network,
            PlatewatchError::Model(_) => ErrorKind::Model,
            PlatewatchError::Unauthorized(_) => ErrorKind::Unauthorized,
            PlatewatchError::Internal(_) => ErrorKind::Internal,
        }
    }

    pub(crate) fn invalid(msg: impl Into<String>) -> Self {
        PlatewatchError::InvalidInput(msg.into())
    }
}

impl From<platewatch_core::Error> for PlatewatchError {
    fn from(e: platewatch_core::Error) -> Self {
        match e {
            platewatch_core::Error::Frame(f) => PlatewatchError::InvalidInput(f.to_string()),
            platewatch_core::Error::Model(m) => PlatewatchError::Model(m.to_string()),
            platewatch_core::Error::Config(c) => PlatewatchError::InvalidInput(c),
        }
    }
}

impl From<platewatch_core::FrameError> for PlatewatchError {
    fn from(e: platewatch_core::FrameError) -> Self {
        PlatewatchError::InvalidInput(e.to_string())
    }
}

impl From<SessionError> for PlatewatchError {
    fn from(e: SessionError) -> Self {
        PlatewatchError::InvalidInput(e.to_string())
    }
}

impl From<GpsError> for PlatewatchError {
    fn from(e: GpsError) -> Self {
        PlatewatchError::InvalidInput(format!("GPS: {e}"))
    }
}

impl From<EncounterError> for PlatewatchError {
    fn from(e: EncounterError) -> Self {
        PlatewatchError::InvalidInput(e.to_string())
    }
}

impl From<ImportError> for PlatewatchError {
    fn from(e: ImportError) -> Self {
        PlatewatchError::InvalidInput(format!("hot list: {e}"))
    }
}

impl From<StoreError> for PlatewatchError {
    fn from(e: StoreError) -> Self {
        match e {
            // Refusals of what the caller asked for, not failures of the store.
            StoreError::VersionMismatch { .. }
            | StoreError::OlderVersion { .. }
            | StoreError::UnknownList(_)
            | StoreError::Invalid(_)
            | StoreError::NotFound(_) => PlatewatchError::InvalidInput(e.to_string()),
            // sqlx messages can quote values; keep only the kind.
            StoreError::Db(_) => PlatewatchError::Storage("database error".into()),
            StoreError::Migrate(_) => PlatewatchError::Storage("database migration failed".into()),
            StoreError::Corrupt(_) | StoreError::Crypto | StoreError::Image(_) => {
                PlatewatchError::Storage(e.to_string())
            }
        }
    }
}

impl From<SyncError> for PlatewatchError {
    fn from(e: SyncError) -> Self {
        match e {
            SyncError::Store(s) => s.into(),
            SyncError::Config(c) => PlatewatchError::InvalidInput(c),
            SyncError::Unauthorized { status, .. } => PlatewatchError::Unauthorized(format!(
                "the server refused the device's credentials (HTTP {status})"
            )),
            SyncError::RulesNotAcknowledged { version, .. } => PlatewatchError::Unauthorized(
                format!("the rules of behaviour (version {version}) must be acknowledged"),
            ),
            SyncError::Network(m) => PlatewatchError::Network(m),
            SyncError::Server { status, .. } => {
                PlatewatchError::Network(format!("the server answered HTTP {status}"))
            }
            SyncError::Protocol(m) => PlatewatchError::Network(format!("unexpected answer: {m}")),
        }
    }
}

/// Runs `f`, turning a panic into [`PlatewatchError::Internal`] so that no panic reaches the
/// foreign caller as an unknown exception.
pub(crate) fn guard<T>(
    f: impl FnOnce() -> Result<T, PlatewatchError>,
) -> Result<T, PlatewatchError> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|p| Err(panic_error(p.as_ref())))
}

/// The error for a caught panic payload.
pub(crate) fn panic_error(payload: &(dyn std::any::Any + Send)) -> PlatewatchError {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    PlatewatchError::Internal(format!("panic: {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panics_become_internal_errors() {
        let r: Result<(), _> = guard(|| panic!("boom"));
        assert_eq!(r, Err(PlatewatchError::Internal("panic: boom".into())));
    }

    #[test]
    fn store_errors_map_to_the_small_enum() {
        assert_eq!(
            PlatewatchError::from(StoreError::NotFound("encounter".into())).kind(),
            ErrorKind::InvalidInput
        );
        assert_eq!(
            PlatewatchError::from(StoreError::Crypto).kind(),
            ErrorKind::Storage
        );
        let e = PlatewatchError::from(SyncError::Unauthorized {
            status: 401,
            message: "token revoked".into(),
        });
        assert_eq!(e.kind(), ErrorKind::Unauthorized);
    }
}
