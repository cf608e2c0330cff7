//! Device sync: the durable encounter outbox uploader. Rows live in the device store
//! (`platewatch-store`); this crate sends due rows in batches over HTTPS (reqwest + rustls with
//! the ring provider), applies the server's per-row answers, backs off with jitter on failures
//! and purges acknowledged rows after a grace period. Nothing is kept only in memory, so a
//! killed process resumes where it stopped. `hotlists` pulls signed hot list snapshots and
//! deltas, verifies them against the pinned publisher key and applies them atomically;
//! `account` signs an officer in, registers the device and opens scanning sessions.

pub mod account;
pub mod backoff;
pub mod client;
pub mod hotlists;
pub mod uploader;

pub use backoff::Backoff;
pub use client::{ClientConfig, ServerClient};
pub use hotlists::{HotlistReport, HotlistSync, HotlistSyncConfig, ListOutcome, ListSync};
pub use uploader::{PassReport, Totals, Uploader, UploaderConfig};

use platewatch_store::StoreError;

/// What went wrong while syncing. Messages never carry plate text.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("device store: {0}")]
    Store(#[from] StoreError),
    #[error("configuration: {0}")]
    Config(String),
    /// The server refused the device token (revoked, or rules not acknowledged): rows stay
    /// pending and the shell must get the officer to sign in again.
    #[error("the server refused the device's credentials ({status}): {message}")]
    Unauthorized { status: u16, message: String },
    /// The server has rules of behaviour the user has not acknowledged at this login.
    #[error(
        "the rules of behaviour (version {version}) must be acknowledged to sign in; read them and pass the version"
    )]
    RulesNotAcknowledged { version: i64, text: String },
    /// The server could not be reached (connection, timeout, cut-short answer).
    #[error("network: {0}")]
    Network(String),
    /// The server answered with an error status.
    #[error("the server answered {status}: {message}")]
    Server { status: u16, message: String },
    /// The server's answer did not have the expected shape.
    #[error("unexpected answer from the server: {0}")]
    Protocol(String),
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
