//! The outbox uploader: takes due rows from the encounter store, sends them in batches to
//! `POST /v1/encounters`, marks each row from the server's per-row answer (stored / duplicate:
//! acknowledged; rejected: kept with the reason, never retried), schedules failed rows with
//! jittered exponential backoff (in SQLite, so a restart resumes it), splits batches the server
//! finds too large, and purges acknowledged rows after the grace period.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use platewatch_core::wire::{RowStatus, UploadBatch, UploadResponse};
use platewatch_store::{Ack, EncounterStore, OutboxRow};
use serde::Serialize;
use tokio::sync::{Notify, watch};
use uuid::Uuid;

use crate::client::{ClientConfig, ServerClient};
use crate::{Backoff, SyncError, now_ms};

/// Path of the ingest endpoint.
pub const ENCOUNTERS_PATH: &str = "/v1/encounters";

/// How the uploader behaves.
#[derive(Debug, Clone)]
pub struct UploaderConfig {
    pub client: ClientConfig,
    /// Most rows per request (the server accepts up to 500).
    pub batch_rows: usize,
    /// Rough bound on a request body, in bytes (below the server's body limit).
    pub batch_bytes: usize,
    pub backoff: Backoff,
    /// How long an acknowledged row stays on the device before it is deleted.
    pub purge_grace: Duration,
    /// `run` checks the outbox at least this often even without a wake-up.
    pub idle_poll: Duration,
}

impl UploaderConfig {
    pub fn new(client: ClientConfig) -> Self {
        UploaderConfig {
            client,
            batch_rows: 250,
            batch_bytes: 16 * 1024 * 1024,
            backoff: Backoff::default(),
            purge_grace: Duration::from_secs(10 * 60),
            idle_poll: Duration::from_secs(30),
        }
    }
}

/// What one upload pass (one batch, or its halves) did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PassReport {
    /// Rows taken from the outbox.
    pub rows: usize,
    /// Requests sent (more than one when a batch was split).
    pub requests: usize,
    pub stored: usize,
    pub duplicates: usize,
    pub rejected: usize,
    /// Rows scheduled for a later attempt after a failure.
    pub retried: usize,
    /// Requests that failed (transport error, timeout, 5xx, unreadable answer).
    pub failures: usize,
}

/// Sums of several passes.
pub type Totals = PassReport;

impl PassReport {
    fn add(&mut self, o: &PassReport) {
        self.rows += o.rows;
        self.requests += o.requests;
        self.stored += o.stored;
        self.duplicates += o.duplicates;
        self.rejected += o.rejected;
        self.retried += o.retried;
        self.failures += o.failures;
    }
}

/// What became of one request.
enum Sent {
    /// The server answered every row.
    Answered(UploadResponse),
    /// The body was too large for the server or the batch too long: split it.
    TooLarge(String),
    /// Try again later.
    Transient(String),
    /// The credentials were refused.
    Unauthorized(u16, String),
}

/// Uploads the encounter outbox. Cheap to clone; clones share the wake-up signal.
#[derive(Debug, Clone)]
pub struct Uploader {
    store: EncounterStore,
    client: ServerClient,
    config: UploaderConfig,
    wake: Arc<Notify>,
}

impl Uploader {
    pub fn new(store: EncounterStore, config: UploaderConfig) -> Result<Uploader, SyncError> {
        if config.batch_rows == 0 || config.batch_bytes == 0 {
            return Err(SyncError::Config(
                "batch_rows and batch_bytes must be positive".into(),
            ));
        }
        let client = ServerClient::new(&config.client)?;
        Ok(Uploader {
            store,
            client,
            config,
            wake: Arc::new(Notify::new()),
        })
    }

    pub fn store(&self) -> &EncounterStore {
        &self.store
    }

    pub fn client(&self) -> &ServerClient {
        &self.client
    }

    /// Tells a running [`Uploader::run`] that new rows are due (after recording an encounter
    /// or a disposition).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    async fn send(&self, rows: &[OutboxRow]) -> Sent {
        let body = match serde_json::to_vec(&UploadBatch {
            encounters: rows.iter().map(|r| &r.upload).collect(),
        }) {
            Ok(b) => b,
            Err(e) => return Sent::Transient(format!("cannot serialise the batch: {e}")),
        };
        let answer = match self.client.post_json(ENCOUNTERS_PATH, body).await {
            Ok(a) => a,
            Err(e) => {
                let kind = if e.is_timeout() {
                    "timed out"
                } else if e.is_connect() {
                    "could not connect"
                } else if e.is_body() || e.is_decode() {
                    "answer cut short"
                } else {
                    "request failed"
                };
                return Sent::Transient(format!("{kind}: {e}"));
            }
        };
        match answer.status {
            200 => match serde_json::from_slice::<UploadResponse>(&answer.body) {
                Ok(r) => Sent::Answered(r),
                Err(_) => Sent::Transient("the server's answer could not be read".into()),
            },
            413 => Sent::TooLarge(answer.error_message()),
            400 => Sent::TooLarge(answer.error_message()),
            401 | 403 => Sent::Unauthorized(answer.status, answer.error_message()),
            s => Sent::Transient(format!("HTTP {s}: {}", answer.error_message())),
        }
    }

    async fn retry_later(&self, rows: &[OutboxRow], error: &str) -> Result<(), SyncError> {
        let now = now_ms();
        let mut rng = rand::rng();
        let plan: Vec<(Uuid, i64)> = rows
            .iter()
            .map(|r| {
                let d = self
                    .config
                    .backoff
                    .delay(r.attempts.saturating_add(1), &mut rng);
                let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
                (r.id, now.saturating_add(ms))
            })
            .collect();
        self.store.mark_retry(&plan, error).await?;
        Ok(())
    }

    /// Applies the server's per-row answers; rows it did not answer are retried later.
    async fn apply(
        &self,
        rows: &[OutboxRow],
        resp: &UploadResponse,
        report: &mut PassReport,
    ) -> Result<(), SyncError> {
        let mut acks = Vec::new();
        let mut rejects = Vec::new();
        let mut answered = vec![false; rows.len()];
        for r in &resp.results {
            let Some(row) = rows.get(r.index) else {
                continue;
            };
            let same =
                r.id.as_deref()
                    .is_none_or(|id| Uuid::parse_str(id).is_ok_and(|u| u == row.id));
            if !same || answered[r.index] {
                continue;
            }
            answered[r.index] = true;
            match r.status {
                RowStatus::Stored => {
                    report.stored += 1;
                    acks.push((row.id, Ack::Stored));
                }
                RowStatus::Duplicate => {
                    report.duplicates += 1;
                    acks.push((row.id, Ack::Duplicate));
                }
                RowStatus::Rejected => {
                    report.rejected += 1;
                    let reason = r
                        .reason
                        .clone()
                        .unwrap_or_else(|| "rejected without a reason".into());
                    rejects.push((row.id, reason));
                }
            }
        }
        let now = now_ms();
        self.store.mark_acked(&acks, now).await?;
        self.store.mark_rejected(&rejects, now).await?;
        let missing: Vec<OutboxRow> = rows
            .iter()
            .zip(&answered)
            .filter(|(_, a)| !**a)
            .map(|(r, _)| r.clone())
            .collect();
        if !missing.is_empty() {
            report.retried += missing.len();
            self.retry_later(&missing, "the server's answer left out this row")
                .await?;
        }
        Ok(())
    }

    /// Sends one batch of due rows (split if the server finds it too large). Returns what
    /// happened; `Err` only for store failures and refused credentials.
    pub async fn upload_due(&self) -> Result<PassReport, SyncError> {
        let mut rows = self.store.due(now_ms(), self.config.batch_rows).await?;
        let mut bytes = 0usize;
        let mut keep = 0usize;
        for r in &rows {
            if keep > 0 && bytes + r.wire_bytes > self.config.batch_bytes {
                break;
            }
            bytes += r.wire_bytes;
            keep += 1;
        }
        rows.truncate(keep);
        let mut report = PassReport {
            rows: rows.len(),
            ..PassReport::default()
        };
        let mut queue: VecDeque<Vec<OutboxRow>> = VecDeque::new();
        if !rows.is_empty() {
            queue.push_back(rows);
        }
        while let Some(batch) = queue.pop_front() {
            report.requests += 1;
            match self.send(&batch).await {
                Sent::Answered(resp) => self.apply(&batch, &resp, &mut report).await?,
                Sent::TooLarge(msg) if batch.len() > 1 => {
                    let mut a = batch;
                    let b = a.split_off(a.len() / 2);
                    queue.push_front(b);
                    queue.push_front(a);
                    tracing::debug!(error = %msg, "batch refused as too large; splitting");
                }
                Sent::TooLarge(msg) => {
                    report.rejected += 1;
                    let reason = format!("refused by the server as a whole request: {msg}");
                    let ids: Vec<(Uuid, String)> =
                        batch.iter().map(|r| (r.id, reason.clone())).collect();
                    self.store.mark_rejected(&ids, now_ms()).await?;
                }
                Sent::Transient(msg) => {
                    report.failures += 1;
                    report.retried += batch.len();
                    tracing::info!(rows = batch.len(), error = %msg, "upload failed; will retry");
                    self.retry_later(&batch, &msg).await?;
                    for rest in queue.drain(..) {
                        report.retried += rest.len();
                        self.retry_later(&rest, &msg).await?;
                    }
                }
                Sent::Unauthorized(status, message) => {
                    let msg = format!("credentials refused ({status})");
                    self.retry_later(&batch, &msg).await?;
                    for rest in queue.drain(..) {
                        self.retry_later(&rest, &msg).await?;
                    }
                    return Err(SyncError::Unauthorized { status, message });
                }
            }
        }
        Ok(report)
    }

    /// Uploads batches until no row is due now or a request fails; returns the sums.
    pub async fn drain(&self) -> Result<Totals, SyncError> {
        let mut totals = Totals::default();
        loop {
            let pass = self.upload_due().await?;
            totals.add(&pass);
            if pass.rows == 0 || pass.failures > 0 {
                return Ok(totals);
            }
        }
    }

    /// Deletes rows acknowledged more than the grace period before `now_ms`.
    pub async fn purge(&self, now_ms: i64) -> Result<u64, SyncError> {
        let grace = i64::try_from(self.config.purge_grace.as_millis()).unwrap_or(i64::MAX);
        Ok(self.store.purge_acked(now_ms.saturating_sub(grace)).await?)
    }

    /// Runs until `shutdown` turns true: uploads due rows, purges, then sleeps until the next
    /// row is due, a [`Uploader::wake`], or `idle_poll`. Errors are logged and retried; the
    /// latest refused-credentials error is published on `errors` for the shell to show.
    pub async fn run(
        &self,
        mut shutdown: watch::Receiver<bool>,
        errors: Option<watch::Sender<Option<String>>>,
    ) {
        loop {
            if *shutdown.borrow() {
                return;
            }
            let outcome = self.drain().await;
            if let Some(tx) = &errors {
                let _ = tx.send(outcome.as_ref().err().map(ToString::to_string));
            }
            if let Err(e) = &outcome {
                tracing::warn!(error = %e, "upload pass failed");
            }
            if let Err(e) = self.purge(now_ms()).await {
                tracing::warn!(error = %e, "purge failed");
            }
            let idle = self.config.idle_poll;
            let wait = match self.store.next_attempt_at().await {
                Ok(Some(at)) => {
                    Duration::from_millis(u64::try_from(at.saturating_sub(now_ms())).unwrap_or(0))
                        .min(idle)
                }
                _ => idle,
            }
            .max(Duration::from_millis(5));
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.wake.notified() => {}
                _ = shutdown.changed() => {}
            }
        }
    }
}
