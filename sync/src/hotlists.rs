//! Hot list sync: for every list the server publishes, fetch a signed delta since the version
//! the device holds (or a snapshot when it holds none, or the delta cannot apply), verify the
//! ed25519 signature against the pinned publisher key before reading a single entry, and apply
//! it atomically through the device store. A payload that fails verification, names another
//! list or another base version is refused and the stored list is kept as it was.
//!
//! Trust model: the publisher's public key is *pinned* — given by configuration (MDM, a
//! provisioning file, `--hotlist-key`) and never replaced by what the server says. Fetching it
//! from `GET /v1/hotlists/key` ([`fetch_public_key`]) is trust on first use and only happens
//! when the shell explicitly asks for it; once pinned, a different key from the server is
//! refused. Freshness is measured from the payload's signed `issued_at` (capped at the local
//! clock), so replaying an old signed payload cannot make a list look fresh.

use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::VerifyingKey;
use platewatch_core::hotlist::signed::{self, PublicKeyInfo};
use platewatch_core::hotlist::{HotlistPayload, ListInfo, Update};
use platewatch_store::{ListMeta, ListStatus, Store, StoreError};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, watch};

use crate::client::{Answer, ClientConfig, ServerClient};
use crate::{SyncError, now_ms};

/// Path of the list index.
pub const HOTLISTS_PATH: &str = "/v1/hotlists";
/// Path of the publisher's key document.
pub const KEY_PATH: &str = "/v1/hotlists/key";

/// How hot list sync behaves.
#[derive(Debug, Clone)]
pub struct HotlistSyncConfig {
    pub client: ClientConfig,
    /// The pinned publisher key; every payload must verify against it.
    pub key: VerifyingKey,
    /// `run` syncs at least this often.
    pub interval: Duration,
}

impl HotlistSyncConfig {
    pub fn new(client: ClientConfig, key: VerifyingKey) -> Self {
        HotlistSyncConfig {
            client,
            key,
            interval: Duration::from_secs(15 * 60),
        }
    }
}

/// What happened to one list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ListOutcome {
    /// A snapshot replaced the stored list.
    Snapshot {
        version: i64,
        added: usize,
        removed: usize,
    },
    /// A delta moved the stored list forward.
    Delta {
        from: i64,
        version: i64,
        added: usize,
        removed: usize,
    },
    /// The server confirmed (signed) that the stored version is current.
    Current { version: i64 },
    /// The payload failed verification or did not fit the request: nothing was applied.
    Refused { reason: String },
    /// The server could not be reached or answered with an error: nothing was applied.
    Failed { reason: String },
}

/// One list's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListSync {
    pub list: String,
    /// The version held before the sync, if any.
    pub had: Option<i64>,
    #[serde(flatten)]
    pub outcome: ListOutcome,
}

/// The result of one sync of every list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HotlistReport {
    /// When the sync finished, Unix ms.
    pub at_ms: i64,
    pub lists: Vec<ListSync>,
    /// Every stored list afterwards with its age and staleness (lists the sync could not
    /// refresh may be stale: alerts from them must say so).
    pub status: Vec<ListStatus>,
    /// Ids of entries added or changed by this sync (for retro-hits and a live matcher).
    #[serde(skip)]
    pub added_ids: Vec<u32>,
    /// Ids of entries removed or changed by this sync.
    #[serde(skip)]
    pub removed_ids: Vec<u32>,
}

impl HotlistReport {
    /// Lists whose payload was refused (tampered, wrongly signed, mismatched).
    pub fn refused(&self) -> usize {
        self.lists
            .iter()
            .filter(|l| matches!(l.outcome, ListOutcome::Refused { .. }))
            .count()
    }

    /// Lists that could not be fetched.
    pub fn failed(&self) -> usize {
        self.lists
            .iter()
            .filter(|l| matches!(l.outcome, ListOutcome::Failed { .. }))
            .count()
    }

    /// Stored lists older than their maximum age.
    pub fn stale(&self) -> usize {
        self.status.iter().filter(|s| s.stale).count()
    }

    /// Whether something changed in the stored lists.
    pub fn changed(&self) -> bool {
        !self.added_ids.is_empty() || !self.removed_ids.is_empty()
    }
}

#[derive(Debug, Deserialize)]
struct IndexRow {
    #[serde(flatten)]
    info: ListInfo,
}

#[derive(Debug, Deserialize)]
struct Index {
    lists: Vec<IndexRow>,
}

/// Why a fetch did not produce a verified payload.
enum Fetch {
    Ok(Box<HotlistPayload>),
    /// 409 on a delta: the device is ahead of the server; take a snapshot.
    Conflict,
    Refused(String),
    Failed(String),
}

/// Syncs the device's hot lists from the server. Cheap to clone; clones share the wake-up.
#[derive(Debug, Clone)]
pub struct HotlistSync {
    store: Store,
    client: ServerClient,
    key: VerifyingKey,
    interval: Duration,
    wake: Arc<Notify>,
}

fn transport(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "could not connect".into()
    } else {
        "request failed".into()
    }
}

/// Fetches the publisher's key document over `client` (trust on first use: call it only when
/// the shell was explicitly told to, then pin the key it returns).
pub async fn fetch_public_key(client: &ServerClient) -> Result<PublicKeyInfo, SyncError> {
    let answer = client
        .get(KEY_PATH)
        .await
        .map_err(|e| SyncError::Network(transport(&e)))?;
    let answer = ok_or_error(answer)?;
    let info: PublicKeyInfo = serde_json::from_slice(&answer.body)
        .map_err(|_| SyncError::Protocol("the key document could not be read".into()))?;
    let key = signed::parse_public_key(&info.public_key)
        .map_err(|e| SyncError::Protocol(e.to_string()))?;
    if info.alg != signed::ALGORITHM || info.key_id != signed::key_id(&key) {
        return Err(SyncError::Protocol(
            "the key document's algorithm or key id does not match its key".into(),
        ));
    }
    Ok(info)
}

fn ok_or_error(answer: Answer) -> Result<Answer, SyncError> {
    match answer.status {
        200..=299 => Ok(answer),
        401 | 403 => Err(SyncError::Unauthorized {
            status: answer.status,
            message: answer.error_message(),
        }),
        s => Err(SyncError::Server {
            status: s,
            message: answer.error_message(),
        }),
    }
}

impl HotlistSync {
    /// The client the lists are fetched with.
    pub fn client(&self) -> &ServerClient {
        &self.client
    }

    pub fn new(store: Store, config: &HotlistSyncConfig) -> Result<HotlistSync, SyncError> {
        Ok(HotlistSync {
            store,
            client: ServerClient::new(&config.client)?,
            key: config.key,
            interval: config.interval.max(Duration::from_secs(1)),
            wake: Arc::new(Notify::new()),
        })
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Asks a running [`HotlistSync::run`] to sync now (on demand).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// GETs `path` and verifies the signed payload it returns.
    async fn fetch(&self, path: &str) -> Fetch {
        let answer = match self.client.get(path).await {
            Ok(a) => a,
            Err(e) => return Fetch::Failed(transport(&e)),
        };
        match answer.status {
            200 => match signed::verify_json(&answer.body, &self.key) {
                Ok(p) => Fetch::Ok(Box::new(p)),
                Err(e) => Fetch::Refused(e.to_string()),
            },
            409 => Fetch::Conflict,
            s => Fetch::Failed(format!("HTTP {s}: {}", answer.error_message())),
        }
    }

    /// Freshness instant of a verified payload, Unix seconds: when the server issued it, never
    /// later than the local clock.
    fn fresh_at(payload: &HotlistPayload) -> i64 {
        payload.issued_at.min(now_ms().div_euclid(1000))
    }

    async fn apply_snapshot(
        &self,
        name: &str,
        had: Option<i64>,
        report: &mut HotlistReport,
    ) -> Result<ListOutcome, SyncError> {
        let path = format!("{HOTLISTS_PATH}/{}/snapshot", encode_segment(name));
        let payload = match self.fetch(&path).await {
            Fetch::Ok(p) => p,
            Fetch::Conflict => {
                return Ok(ListOutcome::Failed {
                    reason: "the server answered a snapshot with a conflict".into(),
                });
            }
            Fetch::Refused(reason) => return Ok(ListOutcome::Refused { reason }),
            Fetch::Failed(reason) => return Ok(ListOutcome::Failed { reason }),
        };
        if payload.list.name != name {
            return Ok(ListOutcome::Refused {
                reason: "the signed payload is for another list".into(),
            });
        }
        let Update::Snapshot { entries } = &payload.update else {
            return Ok(ListOutcome::Refused {
                reason: "a delta was served for a snapshot request".into(),
            });
        };
        if had.is_some_and(|h| h > payload.list.version) {
            return Ok(ListOutcome::Refused {
                reason: format!(
                    "the snapshot is version {}, older than the stored one",
                    payload.list.version
                ),
            });
        }
        let meta = ListMeta {
            name: name.to_string(),
            source: payload.list.source,
            max_age_secs: payload.list.max_age_secs.max(1),
        };
        let applied = self
            .store
            .apply_snapshot(
                &meta,
                payload.list.version,
                Some(payload.list.published_at),
                entries,
                Self::fresh_at(&payload),
            )
            .await?;
        let outcome = ListOutcome::Snapshot {
            version: applied.version,
            added: applied.added.len(),
            removed: applied.removed.len(),
        };
        report.added_ids.extend(applied.added);
        report.removed_ids.extend(applied.removed);
        Ok(outcome)
    }

    /// Brings one list up to date. Store failures are `Err`; refusals and network failures are
    /// outcomes (the stored list is untouched).
    async fn sync_list(
        &self,
        name: &str,
        had: Option<i64>,
        report: &mut HotlistReport,
    ) -> Result<ListOutcome, SyncError> {
        let Some(have) = had else {
            return self.apply_snapshot(name, had, report).await;
        };
        let path = format!(
            "{HOTLISTS_PATH}/{}/delta?since={have}",
            encode_segment(name)
        );
        let payload = match self.fetch(&path).await {
            Fetch::Ok(p) => p,
            Fetch::Conflict => return self.apply_snapshot(name, had, report).await,
            Fetch::Refused(reason) => return Ok(ListOutcome::Refused { reason }),
            Fetch::Failed(reason) => return Ok(ListOutcome::Failed { reason }),
        };
        if payload.list.name != name {
            return Ok(ListOutcome::Refused {
                reason: "the signed payload is for another list".into(),
            });
        }
        let Update::Delta {
            base_version,
            add,
            remove,
        } = &payload.update
        else {
            return Ok(ListOutcome::Refused {
                reason: "a snapshot was served for a delta request".into(),
            });
        };
        if *base_version != have {
            return Ok(ListOutcome::Refused {
                reason: format!("the delta starts at version {base_version}, not {have}"),
            });
        }
        let fresh = Self::fresh_at(&payload);
        if payload.list.version == have {
            if !add.is_empty() || !remove.is_empty() {
                return Ok(ListOutcome::Refused {
                    reason: "a delta to the same version carries changes".into(),
                });
            }
            self.store.mark_current(name, fresh).await?;
            return Ok(ListOutcome::Current { version: have });
        }
        match self
            .store
            .apply_delta(name, have, payload.list.version, add, remove, fresh)
            .await
        {
            Ok(applied) => {
                let outcome = ListOutcome::Delta {
                    from: have,
                    version: applied.version,
                    added: applied.added.len(),
                    removed: applied.removed.len(),
                };
                report.added_ids.extend(applied.added);
                report.removed_ids.extend(applied.removed);
                Ok(outcome)
            }
            // The list moved under us (another sync): a snapshot settles it.
            Err(StoreError::VersionMismatch { .. } | StoreError::UnknownList(_)) => {
                self.apply_snapshot(name, Some(have), report).await
            }
            Err(StoreError::Invalid(m)) => Ok(ListOutcome::Refused { reason: m }),
            Err(e) => Err(e.into()),
        }
    }

    /// Syncs every list the server publishes. `Err` when the list index cannot be fetched, the
    /// credentials are refused or the store fails; a refused or unreachable list is reported
    /// in [`HotlistReport::lists`] and keeps its stored version.
    pub async fn sync_now(&self) -> Result<HotlistReport, SyncError> {
        let answer = self
            .client
            .get(HOTLISTS_PATH)
            .await
            .map_err(|e| SyncError::Network(transport(&e)))?;
        let answer = ok_or_error(answer)?;
        let index: Index = serde_json::from_slice(&answer.body)
            .map_err(|_| SyncError::Protocol("the list index could not be read".into()))?;
        let stored: std::collections::HashMap<String, i64> = self
            .store
            .list_status(now_ms().div_euclid(1000))
            .await?
            .into_iter()
            .map(|s| (s.name, s.version))
            .collect();
        let mut report = HotlistReport {
            at_ms: 0,
            lists: Vec::new(),
            status: Vec::new(),
            added_ids: Vec::new(),
            removed_ids: Vec::new(),
        };
        for row in index.lists {
            let name = row.info.name;
            let had = stored.get(&name).copied();
            let outcome = self.sync_list(&name, had, &mut report).await?;
            match &outcome {
                ListOutcome::Refused { reason } => {
                    tracing::warn!(list = %name, %reason, "hot list payload refused; the stored list is kept");
                }
                ListOutcome::Failed { reason } => {
                    tracing::info!(list = %name, %reason, "hot list not refreshed");
                }
                _ => {}
            }
            report.lists.push(ListSync {
                list: name,
                had,
                outcome,
            });
        }
        report.at_ms = now_ms();
        report.status = self
            .store
            .list_status(report.at_ms.div_euclid(1000))
            .await?;
        Ok(report)
    }

    /// Runs until `shutdown` turns true: syncs every `interval` and whenever
    /// [`HotlistSync::wake`] is called; each report (or error) is published on `reports`.
    pub async fn run(
        &self,
        mut shutdown: watch::Receiver<bool>,
        reports: Option<watch::Sender<Option<Result<HotlistReport, String>>>>,
    ) {
        loop {
            if *shutdown.borrow() {
                return;
            }
            let outcome = self.sync_now().await;
            if let Err(e) = &outcome {
                tracing::warn!(error = %e, "hot list sync failed");
            }
            if let Some(tx) = &reports {
                let _ = tx.send(Some(outcome.map_err(|e| e.to_string())));
            }
            tokio::select! {
                _ = tokio::time::sleep(self.interval) => {}
                _ = self.wake.notified() => {}
                _ = shutdown.changed() => {}
            }
        }
    }
}

/// Percent-encodes a list name for a URL path segment.
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_encoded() {
        assert_eq!(encode_segment("stolen-vehicles_1"), "stolen-vehicles_1");
        assert_eq!(encode_segment("a b/c"), "a%20b%2Fc");
    }
}
