//! Fuzz target: the hot list importer with format `auto` must never panic, and every record line
//! must be either imported or rejected.
#![no_main]

use libfuzzer_sys::fuzz_target;
use platewatch_core::hotlist::{ImportOptions, import};

fuzz_target!(|data: &[u8]| {
    let opts = ImportOptions {
        format: None,
        ..Default::default()
    };
    if let Ok(r) = import(data, &opts) {
        assert_eq!(r.records, r.entries.len() + r.rejects.len());
    }
});
