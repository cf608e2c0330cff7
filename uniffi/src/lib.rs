//! Platewatch mobile facade: the UniFFI bindings (Kotlin, Swift) over `platewatch-core`,
//! `platewatch-store` and `platewatch-sync`. A thin layer: a `Scanner` object (frames in on any
//! thread, inference on its own thread, frames dropped when it is busy), a listener foreign
//! trait for reads, alerts, sync status and errors, and a small error enum. No panic crosses
//! the boundary; messages never contain plate text.

uniffi::setup_scaffolding!("platewatch");

mod error;
mod events;
mod raw;
mod scanner;
mod types;
mod worker;

pub use error::{ErrorKind, PlatewatchError};
pub use events::{ScanListener, TaskHandle};
pub use scanner::{Scanner, live_scanners};
pub use types::*;
