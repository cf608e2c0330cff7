//! Hot lists on the device: the entry model, importers for the field formats, look-alike
//! classes and the matcher that checks every plate read against the lists.

pub mod date;
pub mod entry;
pub mod import;
pub mod lookalike;
pub mod matcher;
pub mod signed;

pub use date::Date;
pub use entry::{
    Category, Entry, EntryError, EntryKey, PlatePattern, Source, Vehicle, parse_region,
};
pub use import::{
    Format, ImportError, ImportOptions, ImportReport, Reject, RejectReason, detect, import,
};
pub use matcher::{
    Edit, IndexEntry, Match, MatchKind, Matcher, MatcherConfig, Query, Scratch, StateCheck,
};
pub use signed::{HotlistPayload, ListInfo, SignedHotlist, Update, VerifyError};
