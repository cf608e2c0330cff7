//! The encounter upload wire format (`POST /v1/encounters`), shared by the device uploader and
//! the server's ingest so both sides serialise the same structs. Debug output never shows plate
//! text.

use serde::{Deserialize, Serialize};

/// The officer's decision on an alert shown for this read.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct AlertDisposition {
    /// `accepted` or `rejected`.
    pub decision: String,
    /// Required when rejected.
    #[serde(default)]
    pub reason: Option<String>,
}

/// One encounter as a device uploads it. Images are base64 (standard alphabet).
#[derive(Clone, PartialEq, Deserialize, Serialize)]
pub struct EncounterUpload {
    /// Client-generated UUID; a retried upload with the same id is not stored twice.
    pub id: String,
    pub plate: String,
    #[serde(default)]
    pub state: Option<String>,
    pub confidence: f64,
    pub crop: String,
    #[serde(default)]
    pub context_image: Option<String>,
    pub lat: f64,
    pub lon: f64,
    /// Unix time in milliseconds.
    pub captured_at_ms: i64,
    /// If given, must be the device whose token uploads it.
    #[serde(default)]
    pub device_id: Option<i64>,
    pub camera_id: String,
    /// If given, must be the authenticated user's name.
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub on_behalf_of: Option<String>,
    pub reason_code: String,
    #[serde(default)]
    pub case_number: Option<String>,
    #[serde(default)]
    pub justification: Option<String>,
    /// The scanning session's UUID.
    pub session_id: String,
    #[serde(default)]
    pub match_tags: Vec<String>,
    #[serde(default)]
    pub alert: Option<AlertDisposition>,
}

impl std::fmt::Debug for EncounterUpload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncounterUpload")
            .field("id", &self.id)
            .field("plate", &"<redacted>")
            .field("captured_at_ms", &self.captured_at_ms)
            .finish_non_exhaustive()
    }
}

/// The body a device sends: one batch of encounters.
#[derive(Debug, Clone, Serialize)]
pub struct UploadBatch<'a> {
    pub encounters: Vec<&'a EncounterUpload>,
}

/// The outcome for one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RowStatus {
    Stored,
    Duplicate,
    Rejected,
}

/// The server's answer for one row of a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowResult {
    pub index: usize,
    /// The row's id when it is a valid UUID.
    pub id: Option<String>,
    pub status: RowStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The server's answer for a batch: counts and one result per row, in request order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadResponse {
    pub stored: usize,
    pub duplicates: usize,
    pub rejected: usize,
    pub results: Vec<RowResult>,
}
