//! Platewatch mobile facade: the UniFFI bindings (Kotlin, Swift) over `platewatch-core`,
//! `platewatch-store` and `platewatch-sync`. A thin layer: the account calls (rules of
//! behaviour, sign-in with device registration, the hot list key for trust on first use), a
//! `Scanner` object (sessions opened on the server, frames in on any thread, inference on its
//! own thread, frames dropped when it is busy, upload and signed hot list sync), a listener
//! foreign trait for reads, alerts, sync status and errors, and a small error enum. No panic
//! crosses the boundary; messages never contain plate text, passwords or tokens.

uniffi::setup_scaffolding!("platewatch");

mod account;
mod error;
mod events;
mod raw;
mod scanner;
mod types;
mod worker;

pub use account::{
    DeviceRegistration, HotlistKey, RulesOfBehaviour, SignInRequest, SignInResult,
    fetch_hotlist_key, fetch_rules, hotlist_key_id, sign_in,
};
pub use error::{ErrorKind, PlatewatchError};
pub use events::{ScanListener, TaskHandle};
pub use scanner::{Scanner, live_scanners};
pub use types::*;
