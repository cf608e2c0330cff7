//! The audit log: every login, device registration or revocation, rules change, user creation
//! and upload is appended to a hash chain, so an edited, inserted or deleted row breaks it;
//! `verify_chain` walks it and finds the first break.
//!
//! Two defences against someone who can write the database but not the server's key files:
//! - **A keyed chain**: `hash = HMAC-SHA256(chain key, prev_hash || canonical row)`. The key is
//!   a file beside the hot list key ([`Config::audit_key_path`]), never in the database, so
//!   recomputing the hashes after an edit needs that file. Rows written before the keyed chain
//!   existed (below `audit_head.keyed_from`, set by the migration) keep their unkeyed
//!   `sha256(prev_hash || canonical row)`; the first keyed row links to the last of them, so
//!   they are covered too. `audit_head.keyed_seal`, an HMAC of the boundary, stops anyone from
//!   moving it to pass keyed rows off as unkeyed ones.
//! - **Signed checkpoints** ([`Checkpoint`]): the server signs the head (`seq`, `hash`) with an
//!   ed25519 key (another file, [`Config::audit_signing_key_path`]) every few minutes and on
//!   every export. Auditors keep copies outside the server; [`Repo::verify_chain_against`] then
//!   finds any later rewrite, renumbering or truncation of the rows a checkpoint covers, even
//!   one made by someone who also holds the chain key.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use hmac::{Hmac, Mac as _};
use platewatch_core::hotlist::signed::{self, PublicKeyInfo};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::Row;
use sqlx::sqlite::SqliteConnection;

use crate::auth::{Principal, Role};
use crate::config::Config;
use crate::db::{Db, Repo, in_tx, on_pool};
use crate::error::ApiError;
use crate::keyfile::{self, KeyFileError};
use crate::{AppState, now_ms};

/// `prev_hash` of the first row.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One event to append. `criteria` is stored as canonical JSON (keys sorted).
#[derive(Debug, Clone, Default)]
pub struct AuditEvent {
    pub user_id: Option<i64>,
    pub username: Option<String>,
    pub on_behalf_of: Option<String>,
    /// What happened: `login`, `device.register`, `device.revoke`, `rules.set`, `user.create`,
    /// `encounters.upload`, …
    pub action: &'static str,
    /// `ok`, `denied` or `failed`.
    pub outcome: &'static str,
    pub reason: Option<String>,
    pub justification: Option<String>,
    pub criteria: serde_json::Value,
    pub result_count: Option<i64>,
    /// Client address and user agent, when known.
    pub client: Option<String>,
}

/// A stored row, as hashed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AuditRow {
    pub seq: i64,
    pub at_ms: i64,
    pub user_id: Option<i64>,
    pub username: Option<String>,
    pub on_behalf_of: Option<String>,
    pub action: String,
    pub outcome: String,
    pub reason: Option<String>,
    pub justification: Option<String>,
    pub criteria: String,
    pub result_count: Option<i64>,
    pub client: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

/// The canonical form of a row that is hashed: every field but the hashes, in this order.
#[derive(Serialize)]
struct Canonical<'a> {
    seq: i64,
    at_ms: i64,
    user_id: Option<i64>,
    username: Option<&'a str>,
    on_behalf_of: Option<&'a str>,
    action: &'a str,
    outcome: &'a str,
    reason: Option<&'a str>,
    justification: Option<&'a str>,
    criteria: &'a str,
    result_count: Option<i64>,
    client: Option<&'a str>,
}

/// The audit chain's HMAC-SHA256 key. `Debug` never shows it.
#[derive(Clone)]
pub struct ChainKey([u8; 32]);

impl ChainKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
}

impl std::fmt::Debug for ChainKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChainKey(..)")
    }
}

/// How a row's hash is computed.
#[derive(Debug, Clone, Copy)]
pub enum Scheme<'a> {
    /// `sha256(prev_hash || canonical row)`: rows written before the keyed chain's start.
    Unkeyed,
    /// `HMAC-SHA256(key, prev_hash || canonical row)`: every row from the keyed chain's start.
    Keyed(&'a ChainKey),
}

impl Scheme<'_> {
    /// The audit log's one hash: `parts` concatenated, hashed the scheme's way, lower-case hex.
    fn digest(self, parts: &[&[u8]]) -> String {
        match self {
            Scheme::Unkeyed => {
                let mut h = Sha256::new();
                for p in parts {
                    h.update(p);
                }
                hex::encode(h.finalize())
            }
            Scheme::Keyed(key) => {
                let mut m = <Hmac<Sha256> as hmac::Mac>::new_from_slice(&key.0)
                    .expect("HMAC takes a key of any length");
                for p in parts {
                    m.update(p);
                }
                hex::encode(m.finalize().into_bytes())
            }
        }
    }
}

/// What the seal of the keyed chain's start authenticates, before the boundary in decimal.
const SEAL_CONTEXT: &[u8] = b"platewatch audit keyed_from v1\n";

/// The seal of the boundary `keyed_from` under `key`.
fn seal(key: &ChainKey, keyed_from: i64) -> String {
    Scheme::Keyed(key).digest(&[SEAL_CONTEXT, keyed_from.to_string().as_bytes()])
}

impl AuditRow {
    /// `prev_hash || canonical JSON of the row`, hashed by `scheme`, lower-case hex.
    pub fn compute_hash(&self, scheme: Scheme<'_>) -> String {
        let c = Canonical {
            seq: self.seq,
            at_ms: self.at_ms,
            user_id: self.user_id,
            username: self.username.as_deref(),
            on_behalf_of: self.on_behalf_of.as_deref(),
            action: &self.action,
            outcome: &self.outcome,
            reason: self.reason.as_deref(),
            justification: self.justification.as_deref(),
            criteria: &self.criteria,
            result_count: self.result_count,
            client: self.client.as_deref(),
        };
        let canonical =
            serde_json::to_vec(&c).expect("a struct of strings and integers serialises");
        scheme.digest(&[self.prev_hash.as_bytes(), &canonical])
    }
}

/// The keys of the audit log: the chain's HMAC key and the ed25519 key that signs
/// checkpoints. `Debug` shows only the signing key's id.
pub struct AuditKeys {
    chain: ChainKey,
    signing: SigningKey,
}

impl std::fmt::Debug for AuditKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditKeys")
            .field("key_id", &self.key_id())
            .finish_non_exhaustive()
    }
}

const CHAIN_KEY: &str = "audit key";
const SIGNING_KEY: &str = "audit signing key";

impl AuditKeys {
    /// Fresh random keys (not persisted: tests, demos, or until [`AuditKeys::load_or_create`]).
    pub fn generate() -> Self {
        Self::from_bytes(keyfile::random_32(), keyfile::random_32())
    }

    /// From the chain key's 32 bytes and the signing key's 32-byte seed.
    pub fn from_bytes(chain: [u8; 32], signing_seed: [u8; 32]) -> Self {
        Self {
            chain: ChainKey(chain),
            signing: SigningKey::from_bytes(&signing_seed),
        }
    }

    /// Reads both key files of `config`, creating either (mode 0600) when it does not exist.
    /// Returns the keys and whether a file was created.
    pub fn load_or_create(config: &Config) -> Result<(Self, bool), KeyFileError> {
        let (chain, c1) = keyfile::load_or_create(&config.audit_key_path(), CHAIN_KEY)?;
        let (seed, c2) = keyfile::load_or_create(&config.audit_signing_key_path(), SIGNING_KEY)?;
        Ok((Self::from_bytes(chain, seed), c1 || c2))
    }

    /// Reads both key files of `config`; a missing file is an error (tools that inspect the
    /// server's database must use the server's keys, never new ones).
    pub fn load(config: &Config) -> Result<Self, KeyFileError> {
        let chain = keyfile::load(&config.audit_key_path(), CHAIN_KEY)?;
        let seed = keyfile::load(&config.audit_signing_key_path(), SIGNING_KEY)?;
        Ok(Self::from_bytes(chain, seed))
    }

    pub fn chain_key(&self) -> &ChainKey {
        &self.chain
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        self.signing.verifying_key()
    }

    /// [`signed::key_id`] of the checkpoint signing key.
    pub fn key_id(&self) -> String {
        signed::key_id(&self.verifying_key())
    }

    /// The checkpoint signing key's public half, as `GET /v1/audit/key` serves it.
    pub fn public_key_info(&self) -> PublicKeyInfo {
        signed::public_key_info(&self.verifying_key())
    }

    /// A checkpoint of the head `(seq, hash)` with boundary `keyed_from`, signed at `at_ms`.
    fn sign(&self, seq: i64, hash: &str, keyed_from: i64, at_ms: i64) -> Checkpoint {
        let mut cp = Checkpoint {
            seq,
            hash: hash.to_string(),
            keyed_from,
            at_ms,
            key_id: self.key_id(),
            signature: String::new(),
        };
        cp.signature = B64.encode(self.signing.sign(&cp.signed_bytes()).to_bytes());
        cp
    }
}

/// A signed statement that the audit chain's row `seq` had hash `hash` (and the keyed chain
/// started at `keyed_from`) at `at_ms`: the analogue of a Certificate Transparency signed tree
/// head. `seq` 0 with [`GENESIS`] is the empty log.
///
/// The signature is ed25519 over [`Checkpoint::signed_bytes`], base64 (standard alphabet):
///
/// ```text
/// platewatch audit checkpoint v1\n
/// seq <seq>\n
/// hash <hash>\n
/// keyed_from <keyed_from>\n
/// at_ms <at_ms>\n
/// key_id <key_id>\n
/// ```
///
/// with integers in decimal (no sign for non-negative values, no leading zeros), the hash as
/// 64 lower-case hex digits and the key id as [`signed::key_id`] (16 lower-case hex digits).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub seq: i64,
    pub hash: String,
    pub keyed_from: i64,
    pub at_ms: i64,
    pub key_id: String,
    pub signature: String,
}

/// Why a checkpoint is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointRejected {
    #[error("signed with another key (key id {found}, expected {expected})")]
    OtherKey { found: String, expected: String },
    #[error("malformed: the hash or key id is not lower-case hex of the right length")]
    Malformed,
    #[error("the signature does not verify: the checkpoint was forged or altered")]
    BadSignature,
}

fn lower_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl Checkpoint {
    /// The bytes the signature covers (see [`Checkpoint`]).
    pub fn signed_bytes(&self) -> Vec<u8> {
        format!(
            "platewatch audit checkpoint v1\nseq {}\nhash {}\nkeyed_from {}\nat_ms {}\nkey_id {}\n",
            self.seq, self.hash, self.keyed_from, self.at_ms, self.key_id
        )
        .into_bytes()
    }

    /// Checks the signature with `key`.
    pub fn verify(&self, key: &VerifyingKey) -> Result<(), CheckpointRejected> {
        let expected = signed::key_id(key);
        if self.key_id != expected {
            return Err(CheckpointRejected::OtherKey {
                found: self.key_id.chars().take(64).collect(),
                expected,
            });
        }
        if !lower_hex(&self.hash, 64) || !lower_hex(&self.key_id, 16) {
            return Err(CheckpointRejected::Malformed);
        }
        let sig = B64
            .decode(self.signature.trim())
            .ok()
            .and_then(|b| <[u8; 64]>::try_from(b).ok())
            .ok_or(CheckpointRejected::BadSignature)?;
        key.verify_strict(&self.signed_bytes(), &Signature::from_bytes(&sig))
            .map_err(|_| CheckpointRejected::BadSignature)
    }
}

/// Reads the checkpoints an auditor kept: a JSON array of checkpoints, one checkpoint, the
/// `GET /v1/audit/checkpoints` document (`{key, checkpoints}`), a JSON audit export (its
/// `checkpoint`), or JSON lines of any of these. Signatures are not checked here.
pub fn parse_checkpoints(text: &str) -> Result<Vec<Checkpoint>, String> {
    fn collect(v: serde_json::Value, out: &mut Vec<Checkpoint>) -> Result<(), &'static str> {
        use serde_json::Value;
        match v {
            Value::Array(items) => {
                for item in items {
                    collect(item, out)?;
                }
                Ok(())
            }
            Value::Object(ref m) if m.contains_key("signature") => {
                let cp = serde_json::from_value(v)
                    .map_err(|_| "a checkpoint with missing or mistyped fields")?;
                out.push(cp);
                Ok(())
            }
            Value::Object(mut m) => match (m.remove("checkpoints"), m.remove("checkpoint")) {
                (Some(list), _) => collect(list, out),
                (None, Some(Value::Null)) => Ok(()),
                (None, Some(one)) => collect(one, out),
                (None, None) => Err("neither a checkpoint nor a document holding checkpoints"),
            },
            _ => Err("not a checkpoint"),
        }
    }
    let mut out = Vec::new();
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(v) => collect(v, &mut out).map_err(str::to_string)?,
        Err(_) => {
            for (i, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let v: serde_json::Value =
                    serde_json::from_str(line).map_err(|_| format!("line {}: not JSON", i + 1))?;
                collect(v, &mut out).map_err(|m| format!("line {}: {m}", i + 1))?;
            }
        }
    }
    if out.is_empty() {
        return Err("no checkpoints in it".into());
    }
    Ok(out)
}

/// Reads an audit public key: the `GET /v1/audit/key` document (or any JSON object with a
/// `public_key` field, or a `key` object holding one), or the base64 key alone.
pub fn parse_public_key(text: &str) -> Result<VerifyingKey, String> {
    let b64 = match serde_json::from_str::<serde_json::Value>(text) {
        Ok(v) => {
            let doc = if v.get("public_key").is_some() {
                &v
            } else {
                v.get("key").unwrap_or(&v)
            };
            doc.get("public_key")
                .and_then(|k| k.as_str())
                .ok_or("a JSON document without a public_key")?
                .to_string()
        }
        Err(_) => text.trim().to_string(),
    };
    signed::parse_public_key(&b64).map_err(|e| e.to_string())
}

/// What `verify_chain` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainStatus {
    /// Every row links to the previous one and the last matches the recorded head.
    Intact { rows: u64 },
    /// The first problem found, at row `seq`.
    Broken { seq: i64, problem: &'static str },
}

const ROW_MISSING: &str = "row missing";
const NOT_LINKED: &str = "does not link to the previous row";
const ALTERED: &str = "row altered";
const HEAD_ALTERED: &str = "newest rows missing or head altered";
const CHECKPOINT_DIFFERS: &str = "differs from a signed checkpoint (rewritten or renumbered)";
const TRUNCATED: &str = "rows missing: a signed checkpoint attests a longer log (truncated)";
const SEAL_ALTERED: &str =
    "the start of the keyed chain was moved or its seal altered (or another audit key is in use)";
const UNSEALED: &str = "the start of the keyed chain is not sealed (the server seals it when it \
     starts): its rows may have been passed off as unkeyed ones";
const BOUNDARY_MOVED: &str = "the start of the keyed chain differs from a signed checkpoint";

pub(crate) fn row_from<R: Row>(r: &R) -> Result<AuditRow, sqlx::Error>
where
    for<'c> &'c str: sqlx::ColumnIndex<R>,
    i64: for<'x> sqlx::Decode<'x, R::Database> + sqlx::Type<R::Database>,
    String: for<'x> sqlx::Decode<'x, R::Database> + sqlx::Type<R::Database>,
{
    Ok(AuditRow {
        seq: r.try_get("seq")?,
        at_ms: r.try_get("at_ms")?,
        user_id: r.try_get("user_id")?,
        username: r.try_get("username")?,
        on_behalf_of: r.try_get("on_behalf_of")?,
        action: r.try_get("action")?,
        outcome: r.try_get("outcome")?,
        reason: r.try_get("reason")?,
        justification: r.try_get("justification")?,
        criteria: r.try_get("criteria")?,
        result_count: r.try_get("result_count")?,
        client: r.try_get("client")?,
        prev_hash: r.try_get("prev_hash")?,
        hash: r.try_get("hash")?,
    })
}

fn checkpoint_from<R: Row>(r: &R) -> Result<Checkpoint, sqlx::Error>
where
    for<'c> &'c str: sqlx::ColumnIndex<R>,
    i64: for<'x> sqlx::Decode<'x, R::Database> + sqlx::Type<R::Database>,
    String: for<'x> sqlx::Decode<'x, R::Database> + sqlx::Type<R::Database>,
{
    Ok(Checkpoint {
        seq: r.try_get("seq")?,
        hash: r.try_get("hash")?,
        keyed_from: r.try_get("keyed_from")?,
        at_ms: r.try_get("at_ms")?,
        key_id: r.try_get("key_id")?,
        signature: r.try_get("signature")?,
    })
}

/// The `audit_head` row.
#[derive(Debug, Clone)]
struct Head {
    seq: i64,
    hash: String,
    keyed_from: i64,
    seal: Option<String>,
}

fn head_from<R: Row>(r: &R) -> Result<Head, sqlx::Error>
where
    for<'c> &'c str: sqlx::ColumnIndex<R>,
    i64: for<'x> sqlx::Decode<'x, R::Database> + sqlx::Type<R::Database>,
    String: for<'x> sqlx::Decode<'x, R::Database> + sqlx::Type<R::Database>,
{
    Ok(Head {
        seq: r.try_get("seq")?,
        hash: r.try_get("hash")?,
        keyed_from: r.try_get("keyed_from")?,
        seal: r.try_get("keyed_seal")?,
    })
}

impl Head {
    /// What is wrong with the keyed chain's start, for a verifier holding `key`. An empty log
    /// needs no seal (its first append writes it).
    fn seal_problem(&self, key: &ChainKey) -> Option<(i64, &'static str)> {
        match &self.seal {
            Some(s) if *s == seal(key, self.keyed_from) => None,
            Some(_) => Some((self.keyed_from, SEAL_ALTERED)),
            None if self.seq == 0 => None,
            None => Some((self.keyed_from, UNSEALED)),
        }
    }

    /// For an append: the boundary and seal to write first when the log is empty and not
    /// sealed yet (the keyed chain then starts at row 1); an error when the seal was made with
    /// another key, or a non-empty log is not sealed (only `serve`'s start seals one).
    fn seal_for_append(&self, key: &ChainKey) -> Result<Option<(i64, String)>, sqlx::Error> {
        match self.seal_problem(key) {
            None if self.seal.is_none() => Ok(Some((1, seal(key, 1)))),
            None => Ok(None),
            Some((_, problem)) if problem == SEAL_ALTERED => Err(key_mismatch()),
            Some(_) => Err(sqlx::Error::Configuration(
                "the audit chain's keyed start is not sealed: start the server once (it seals \
                 it) before appending to this audit log"
                    .into(),
            )),
        }
    }
}

fn key_mismatch() -> sqlx::Error {
    sqlx::Error::Configuration(
        "the audit key does not match this database's audit chain (its seal was made with \
         another key, or altered)"
            .into(),
    )
}

const HEAD: &str = "SELECT seq, hash, keyed_from, keyed_seal FROM audit_head WHERE id = 1";
// Locks the head row: appends from several server processes queue up here.
const HEAD_FOR_UPDATE: &str =
    "SELECT seq, hash, keyed_from, keyed_seal FROM audit_head WHERE id = 1 FOR UPDATE";
const SET_SEAL: &str = "UPDATE audit_head SET keyed_from = $1, keyed_seal = $2 WHERE id = 1";
const INSERT: &str = "INSERT INTO audit_log (seq, at_ms, user_id, username, on_behalf_of, action, \
     outcome, reason, justification, criteria, result_count, client, prev_hash, hash) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)";
const UPDATE_HEAD: &str = "UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1";
const INSERT_CHECKPOINT: &str = "INSERT INTO audit_checkpoints (seq, hash, keyed_from, at_ms, \
     key_id, signature) VALUES ($1, $2, $3, $4, $5, $6)";
const CHECKPOINT_COLUMNS: &str = "seq, hash, keyed_from, at_ms, key_id, signature";

/// The head query of an append on `db`'s backend.
fn head_sql(db: &Db) -> &'static str {
    match db {
        Db::Sqlite(_) => HEAD,
        Db::Postgres(_) => HEAD_FOR_UPDATE,
    }
}

/// The insert of one [`AuditRow`], on either backend.
macro_rules! insert_row {
    ($row:expr) => {
        sqlx::query(INSERT)
            .bind($row.seq)
            .bind($row.at_ms)
            .bind($row.user_id)
            .bind(&$row.username)
            .bind(&$row.on_behalf_of)
            .bind(&$row.action)
            .bind(&$row.outcome)
            .bind(&$row.reason)
            .bind(&$row.justification)
            .bind(&$row.criteria)
            .bind($row.result_count)
            .bind(&$row.client)
            .bind(&$row.prev_hash)
            .bind(&$row.hash)
    };
}

/// Appends `$events` at `$now_ms` with `$keys` through `$conn`, a connection in a write
/// transaction, reading the head with `$head_sql`; on either backend. Evaluates to the
/// sequence number of the last row.
macro_rules! append_events {
    ($conn:expr, $head_sql:expr, $keys:expr, $events:expr, $now_ms:expr) => {{
        let head = head_from(&sqlx::query($head_sql).fetch_one(&mut *$conn).await?)?;
        if let Some((keyed_from, seal)) = head.seal_for_append(&$keys.chain)? {
            sqlx::query(SET_SEAL)
                .bind(keyed_from)
                .bind(&seal)
                .execute(&mut *$conn)
                .await?;
        }
        let (mut seq, mut hash) = (head.seq, head.hash);
        for event in $events {
            let row = AuditRow::chained(seq, hash, event, $now_ms, &$keys.chain);
            insert_row!(row).execute(&mut *$conn).await?;
            (seq, hash) = (row.seq, row.hash);
        }
        sqlx::query(UPDATE_HEAD)
            .bind(seq)
            .bind(&hash)
            .execute(&mut *$conn)
            .await?;
        seq
    }};
}

impl AuditRow {
    /// The row for `event` at `now_ms` that follows the chain's head (`prev_seq`, `prev_hash`),
    /// hashed with `key`.
    fn chained(
        prev_seq: i64,
        prev_hash: String,
        event: &AuditEvent,
        now_ms: i64,
        key: &ChainKey,
    ) -> AuditRow {
        let mut row = AuditRow {
            seq: prev_seq + 1,
            at_ms: now_ms,
            user_id: event.user_id,
            username: event.username.clone(),
            on_behalf_of: event.on_behalf_of.clone(),
            action: event.action.to_string(),
            outcome: event.outcome.to_string(),
            reason: event.reason.clone(),
            justification: event.justification.clone(),
            criteria: event.criteria.to_string(),
            result_count: event.result_count,
            client: event.client.clone(),
            prev_hash,
            hash: String::new(),
        };
        row.hash = row.compute_hash(Scheme::Keyed(key));
        row
    }
}

/// The chain's writer in this process: its lock serialises audit appends (the database
/// serialises them across processes) and it holds the keys they hash with.
#[derive(Debug)]
pub(crate) struct AuditWriter {
    lock: tokio::sync::Mutex<()>,
    keys: Arc<AuditKeys>,
}

impl AuditWriter {
    pub(crate) fn new(keys: AuditKeys) -> Arc<Self> {
        Arc::new(Self {
            lock: tokio::sync::Mutex::new(()),
            keys: Arc::new(keys),
        })
    }

    /// Held for the whole of an append.
    pub(crate) async fn lock(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.lock.lock().await
    }
}

/// Appends `events` at `now_ms` inside the caller's SQLite write transaction (begun with
/// `BEGIN IMMEDIATE`), whose caller holds [`AuditWriter::lock`]: the encounter group commit
/// writes each upload's audit row in the same transaction as its encounters.
pub(crate) async fn append_sqlite(
    conn: &mut SqliteConnection,
    writer: &AuditWriter,
    events: &[AuditEvent],
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    if events.is_empty() {
        return Ok(());
    }
    let _last = append_events!(conn, HEAD, writer.keys, events, now_ms);
    Ok(())
}

const PAGE: usize = 1000;

/// Where a walk stopped: the last row's seq and hash (`None` when it read no row from an
/// anchor past 0), or the first problem.
type Walked = Result<(i64, Option<String>), (i64, &'static str)>;

/// Why no checkpoint was signed.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("the audit chain is broken at row {seq}: {problem}; no checkpoint signed")]
    Broken { seq: i64, problem: &'static str },
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// Most checkpoints `GET /v1/audit/checkpoints` returns (the newest).
pub const MAX_LISTED_CHECKPOINTS: usize = 10_000;

impl Repo {
    /// This repository hashing, sealing and signing with `keys` (`connect` makes random ones).
    /// Call before cloning the repository.
    pub fn with_audit_keys(mut self, keys: AuditKeys) -> Self {
        self.audit_lock = AuditWriter::new(keys);
        self
    }

    /// The keys appends hash with and checkpoints are signed with.
    pub fn audit_keys(&self) -> &AuditKeys {
        &self.audit_lock.keys
    }

    /// Appends `event` at `now_ms` to the chain; returns its sequence number.
    pub async fn append_audit(&self, event: AuditEvent, now_ms: i64) -> Result<i64, sqlx::Error> {
        let _guard = self.audit_lock.lock().await;
        let keys = &self.audit_lock.keys;
        let head_sql = head_sql(self.db());
        let seq = in_tx!(self.db(), tx => {
            append_events!(tx, head_sql, keys, std::slice::from_ref(&event), now_ms)
        });
        Ok(seq)
    }

    /// Seals the keyed chain's start when it is not sealed yet: on a log upgraded from the
    /// unkeyed chain, the migration's boundary (or the next row, if that is lower). `serve`
    /// calls it at start. Returns the boundary when it sealed a non-empty log; an error when
    /// the seal was made with another key.
    pub async fn seal_audit_chain(&self) -> Result<Option<i64>, sqlx::Error> {
        let _guard = self.audit_lock.lock().await;
        let key = &self.audit_lock.keys.chain;
        let head_sql = head_sql(self.db());
        let sealed = in_tx!(self.db(), tx => {
            let head = head_from(&sqlx::query(head_sql).fetch_one(&mut *tx).await?)?;
            match head.seal_problem(key) {
                Some((_, problem)) if problem == SEAL_ALTERED => return Err(key_mismatch()),
                _ if head.seal.is_some() => None,
                _ => {
                    let keyed_from = head.keyed_from.clamp(1, head.seq + 1);
                    sqlx::query(SET_SEAL)
                        .bind(keyed_from)
                        .bind(seal(key, keyed_from))
                        .execute(&mut *tx)
                        .await?;
                    (head.seq > 0).then_some(keyed_from)
                }
            }
        });
        Ok(sealed)
    }

    /// Rows with `from_seq <= seq`, in order, at most `limit`.
    pub async fn audit_rows(
        &self,
        from_seq: i64,
        limit: usize,
    ) -> Result<Vec<AuditRow>, sqlx::Error> {
        const SQL: &str = "SELECT seq, at_ms, user_id, username, on_behalf_of, action, outcome, \
             reason, justification, criteria, result_count, client, prev_hash, hash \
             FROM audit_log WHERE seq >= $1 ORDER BY seq LIMIT $2";
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        on_pool!(self.db(), p => {
            let rows = sqlx::query(SQL).bind(from_seq).bind(limit).fetch_all(p).await?;
            rows.iter().map(row_from).collect()
        })
    }

    async fn audit_head(&self) -> Result<Head, sqlx::Error> {
        on_pool!(self.db(), p => head_from(&sqlx::query(HEAD).fetch_one(p).await?))
    }

    /// Stored checkpoints with `since_ms <= at_ms`, oldest first: the newest `limit` of them.
    pub async fn audit_checkpoints(
        &self,
        since_ms: i64,
        limit: usize,
    ) -> Result<Vec<Checkpoint>, sqlx::Error> {
        let sql = format!(
            "SELECT {CHECKPOINT_COLUMNS} FROM audit_checkpoints WHERE at_ms >= $1 \
             ORDER BY id DESC LIMIT $2"
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut out: Vec<Checkpoint> = on_pool!(self.db(), p => {
            let rows = sqlx::query(&sql).bind(since_ms).bind(limit).fetch_all(p).await?;
            rows.iter().map(checkpoint_from).collect::<Result<_, _>>()?
        });
        out.reverse();
        Ok(out)
    }

    /// Stored checkpoints this repository's key signed (others are ignored: anyone who can
    /// write the table can add rows to it).
    async fn own_checkpoints(&self) -> Result<Vec<Checkpoint>, sqlx::Error> {
        let key = self.audit_keys().verifying_key();
        let mut all = self.audit_checkpoints(i64::MIN, usize::MAX).await?;
        all.retain(|c| c.verify(&key).is_ok());
        Ok(all)
    }

    /// Walks rows from `anchor_seq` (0: from the first row, linked to [`GENESIS`]) up to
    /// `until` (or to the end): sequence numbers without gaps, each `prev_hash` equal to the
    /// previous row's hash, each hash recomputed (unkeyed below `keyed_from`, keyed from it),
    /// and each row a checkpoint in `anchors` covers equal to it.
    async fn walk(
        &self,
        keyed_from: i64,
        anchor_seq: i64,
        until: Option<i64>,
        anchors: &BTreeMap<i64, Vec<&str>>,
    ) -> Result<Walked, sqlx::Error> {
        let key = &self.audit_lock.keys.chain;
        let mut expected = anchor_seq.max(1);
        let mut prev = (anchor_seq <= 0).then(|| GENESIS.to_string());
        'pages: loop {
            let rows = self.audit_rows(expected, PAGE).await?;
            let n = rows.len();
            for row in rows {
                if until.is_some_and(|u| row.seq > u) {
                    break 'pages;
                }
                if row.seq != expected {
                    return Ok(Err((expected, ROW_MISSING)));
                }
                if prev.as_ref().is_some_and(|p| *p != row.prev_hash) {
                    return Ok(Err((row.seq, NOT_LINKED)));
                }
                let scheme = if row.seq >= keyed_from {
                    Scheme::Keyed(key)
                } else {
                    Scheme::Unkeyed
                };
                if row.compute_hash(scheme) != row.hash {
                    return Ok(Err((row.seq, ALTERED)));
                }
                if anchors
                    .get(&row.seq)
                    .is_some_and(|hs| hs.iter().any(|h| *h != row.hash))
                {
                    return Ok(Err((row.seq, CHECKPOINT_DIFFERS)));
                }
                prev = Some(row.hash);
                expected += 1;
            }
            if n < PAGE {
                break;
            }
        }
        Ok(Ok((expected - 1, prev)))
    }

    /// The whole check: the keyed chain's seal, the walk from `from` (a checkpoint this key
    /// signed, or the first row), the head, and every checkpoint in `checkpoints` (whose
    /// signatures the caller checked). With `snapshot`, the head is read first and rows
    /// appended since are not looked at (no race with appends); without, it is read after the
    /// walk, so rows past the head are found too. Returns the status and the head checked.
    async fn check(
        &self,
        from: Option<&Checkpoint>,
        snapshot: bool,
        checkpoints: &[Checkpoint],
    ) -> Result<(ChainStatus, Head), sqlx::Error> {
        let first = self.audit_head().await?;
        let broken = |seq, problem| ChainStatus::Broken { seq, problem };
        if let Some((seq, problem)) = first.seal_problem(&self.audit_lock.keys.chain) {
            return Ok((broken(seq, problem), first));
        }
        let mut anchors: BTreeMap<i64, Vec<&str>> = BTreeMap::new();
        for c in checkpoints.iter().chain(from) {
            if c.keyed_from != first.keyed_from {
                let seq = c.keyed_from.min(first.keyed_from);
                return Ok((broken(seq, BOUNDARY_MOVED), first));
            }
            anchors.entry(c.seq).or_default().push(&c.hash);
        }
        if anchors
            .get(&0)
            .is_some_and(|hs| hs.iter().any(|h| *h != GENESIS))
        {
            return Ok((broken(0, CHECKPOINT_DIFFERS), first));
        }
        let until = snapshot.then_some(first.seq);
        let anchor_seq = from.map_or(0, |c| c.seq);
        let (last, prev) = match self
            .walk(first.keyed_from, anchor_seq, until, &anchors)
            .await?
        {
            Ok(end) => end,
            Err((seq, problem)) => return Ok((broken(seq, problem), first)),
        };
        let head = if snapshot {
            first
        } else {
            self.audit_head().await?
        };
        if head.seq != last || prev.as_deref() != Some(head.hash.as_str()) {
            let seq = head.seq.max(last);
            return Ok((broken(seq, HEAD_ALTERED), head));
        }
        if anchors.keys().next_back().is_some_and(|&s| s > last) {
            return Ok((broken(last + 1, TRUNCATED), head));
        }
        let rows = u64::try_from(last).unwrap_or(0);
        Ok((ChainStatus::Intact { rows }, head))
    }

    /// Walks the whole chain page by page: sequence numbers without gaps from 1, each
    /// `prev_hash` equal to the previous row's hash, each hash recomputed with the chain key
    /// (unkeyed below the sealed start of the keyed chain), the last row equal to the recorded
    /// head (so deleting the newest rows is caught too), and every stored checkpoint signed
    /// with this repository's key matching the row it covers.
    pub async fn verify_chain(&self) -> Result<ChainStatus, sqlx::Error> {
        self.verify_chain_against(&[]).await
    }

    /// [`Repo::verify_chain`], also against `checkpoints` an auditor kept (their signatures
    /// already checked with [`Checkpoint::verify`]): the row each covers must still have the
    /// checkpoint's hash (else it was rewritten, or rows before it deleted and the rest
    /// renumbered), and the log must reach the newest of them (else it was truncated).
    pub async fn verify_chain_against(
        &self,
        checkpoints: &[Checkpoint],
    ) -> Result<ChainStatus, sqlx::Error> {
        let mut all = self.own_checkpoints().await?;
        all.extend_from_slice(checkpoints);
        Ok(self.check(None, false, &all).await?.0)
    }

    /// Verifies the rows since the newest checkpoint this key signed (all of them when there
    /// is none), then signs the head, stores the checkpoint and returns it. A broken chain is
    /// not signed: a checkpoint must never vouch for a rewrite.
    pub async fn sign_checkpoint(&self, now_ms: i64) -> Result<Checkpoint, CheckpointError> {
        let keys = &self.audit_lock.keys;
        let newest = {
            let key = keys.verifying_key();
            let recent = self.audit_checkpoints(i64::MIN, 16).await?;
            recent.into_iter().rev().find(|c| c.verify(&key).is_ok())
        };
        let (status, head) = self.check(newest.as_ref(), true, &[]).await?;
        if let ChainStatus::Broken { seq, problem } = status {
            return Err(CheckpointError::Broken { seq, problem });
        }
        let cp = keys.sign(head.seq, &head.hash, head.keyed_from, now_ms);
        on_pool!(self.db(), p => {
            sqlx::query(INSERT_CHECKPOINT)
                .bind(cp.seq)
                .bind(&cp.hash)
                .bind(cp.keyed_from)
                .bind(cp.at_ms)
                .bind(&cp.key_id)
                .bind(&cp.signature)
                .execute(p)
                .await?;
        });
        Ok(cp)
    }
}

/// Signs a checkpoint now and then every configured interval, until the task is dropped. A
/// broken chain is logged (row and problem only) and checked again at the next interval.
pub async fn checkpoint_periodically(state: AppState) {
    let every = std::time::Duration::from_secs(state.config.ops.audit_checkpoint_interval_secs);
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        match state.repo.sign_checkpoint(now_ms()).await {
            Ok(cp) => tracing::info!(seq = cp.seq, "audit checkpoint signed"),
            Err(CheckpointError::Broken { seq, problem }) => {
                tracing::error!(seq, problem, "audit chain broken: no checkpoint signed");
            }
            Err(CheckpointError::Database(e)) => {
                // The conversion logs the error's kind (never its message).
                let _logged = ApiError::from(e);
                tracing::warn!("audit checkpoint failed; retrying at the next interval");
            }
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct CheckpointParams {
    /// Only checkpoints signed at or after this instant (Unix ms).
    #[serde(default)]
    pub since_ms: Option<i64>,
}

/// `GET /v1/audit/checkpoints`: the key that signs them and the checkpoints, oldest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckpointList {
    pub key: PublicKeyInfo,
    pub checkpoints: Vec<Checkpoint>,
}

const AUDIT_ROLES: [Role; 2] = [Role::Auditor, Role::Admin];

/// `GET /v1/audit/checkpoints[?since_ms=]` (auditor, admin; session token): the stored signed
/// checkpoints, the newest [`MAX_LISTED_CHECKPOINTS`], oldest first.
pub async fn checkpoints(
    State(state): State<AppState>,
    principal: Principal,
    query: Result<Query<CheckpointParams>, QueryRejection>,
) -> Result<Json<CheckpointList>, ApiError> {
    principal.require(&AUDIT_ROLES)?;
    let Query(p) =
        query.map_err(|_| ApiError::BadRequest("since_ms must be Unix milliseconds".into()))?;
    let checkpoints = state
        .repo
        .audit_checkpoints(p.since_ms.unwrap_or(i64::MIN), MAX_LISTED_CHECKPOINTS)
        .await?;
    Ok(Json(CheckpointList {
        key: state.repo.audit_keys().public_key_info(),
        checkpoints,
    }))
}

/// `GET /v1/audit/key` (auditor, admin; session token): the ed25519 public key that verifies
/// audit checkpoints.
pub async fn key(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<PublicKeyInfo>, ApiError> {
    principal.require(&AUDIT_ROLES)?;
    Ok(Json(state.repo.audit_keys().public_key_info()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> AuditRow {
        AuditRow {
            seq: 3,
            at_ms: 1_700_000_000_000,
            user_id: Some(2),
            username: Some("ofc.lee".into()),
            on_behalf_of: None,
            action: "login".into(),
            outcome: "denied".into(),
            reason: None,
            justification: None,
            criteria: "{}".into(),
            result_count: None,
            client: None,
            prev_hash: GENESIS.into(),
            hash: String::new(),
        }
    }

    #[test]
    fn keyed_hashes_depend_on_the_key_and_differ_from_unkeyed_ones() {
        let r = row();
        let a = ChainKey::from_bytes([1; 32]);
        let b = ChainKey::from_bytes([2; 32]);
        let unkeyed = r.compute_hash(Scheme::Unkeyed);
        let ka = r.compute_hash(Scheme::Keyed(&a));
        assert_eq!(ka, r.compute_hash(Scheme::Keyed(&a)), "deterministic");
        assert_ne!(ka, r.compute_hash(Scheme::Keyed(&b)));
        assert_ne!(ka, unkeyed);
        assert!(lower_hex(&ka, 64) && lower_hex(&unkeyed, 64));
        // The unkeyed scheme is the original chain's: sha256(prev_hash || canonical JSON).
        let canonical = r#"{"seq":3,"at_ms":1700000000000,"user_id":2,"username":"ofc.lee","on_behalf_of":null,"action":"login","outcome":"denied","reason":null,"justification":null,"criteria":"{}","result_count":null,"client":null}"#;
        let mut h = Sha256::new();
        h.update(GENESIS.as_bytes());
        h.update(canonical.as_bytes());
        assert_eq!(unkeyed, hex::encode(h.finalize()));
        // The keyed one is HMAC-SHA256 (RFC 2104) of the same bytes.
        let mut m = <Hmac<Sha256> as hmac::Mac>::new_from_slice(&[1; 32]).expect("key");
        m.update(GENESIS.as_bytes());
        m.update(canonical.as_bytes());
        assert_eq!(ka, hex::encode(m.finalize().into_bytes()));
        // Seals are keyed and bound to the boundary.
        assert_ne!(seal(&a, 1), seal(&a, 2));
        assert_ne!(seal(&a, 1), seal(&b, 1));
        assert!(!format!("{a:?}").contains("1, 1"), "Debug hides the key");
    }

    #[test]
    fn checkpoint_bytes_are_the_documented_text_and_signatures_verify() {
        let keys = AuditKeys::from_bytes([7; 32], [9; 32]);
        let hash = "ab".repeat(32);
        let cp = keys.sign(42, &hash, 5, 1_700_000_000_123);
        assert_eq!(
            String::from_utf8(cp.signed_bytes()).expect("utf-8"),
            format!(
                "platewatch audit checkpoint v1\nseq 42\nhash {hash}\nkeyed_from 5\n\
                 at_ms 1700000000123\nkey_id {}\n",
                keys.key_id()
            )
        );
        let vk = keys.verifying_key();
        assert_eq!(cp.verify(&vk), Ok(()));
        for forged in [
            Checkpoint {
                seq: 43,
                ..cp.clone()
            },
            Checkpoint {
                hash: "cd".repeat(32),
                ..cp.clone()
            },
            Checkpoint {
                keyed_from: 1,
                ..cp.clone()
            },
            Checkpoint {
                at_ms: 0,
                ..cp.clone()
            },
            Checkpoint {
                signature: "AAAA".into(),
                ..cp.clone()
            },
        ] {
            assert_eq!(forged.verify(&vk), Err(CheckpointRejected::BadSignature));
        }
        let upper = Checkpoint {
            hash: hash.to_uppercase(),
            ..cp.clone()
        };
        assert_eq!(upper.verify(&vk), Err(CheckpointRejected::Malformed));
        let other = AuditKeys::from_bytes([7; 32], [8; 32]);
        assert!(matches!(
            cp.verify(&other.verifying_key()),
            Err(CheckpointRejected::OtherKey { .. })
        ));
        // The same statement signed by another key, relabelled with this key's id.
        let relabelled = Checkpoint {
            key_id: keys.key_id(),
            ..other.sign(42, &hash, 5, 1_700_000_000_123)
        };
        assert_eq!(
            relabelled.verify(&vk),
            Err(CheckpointRejected::BadSignature)
        );
    }

    #[test]
    fn checkpoint_files_in_every_accepted_shape() {
        let keys = AuditKeys::generate();
        let a = keys.sign(1, &"a".repeat(64), 1, 10);
        let b = keys.sign(2, &"b".repeat(64), 1, 20);
        let one = |c: &Checkpoint| serde_json::to_string(c).expect("json");
        let array = serde_json::to_string(&[&a, &b]).expect("json");
        let list = serde_json::to_string(&CheckpointList {
            key: keys.public_key_info(),
            checkpoints: vec![a.clone(), b.clone()],
        })
        .expect("json");
        let lines = format!("{}\n\n{}\n", one(&a), one(&b));
        let export = serde_json::json!({ "count": 0, "rows": [], "checkpoint": b }).to_string();
        let want = vec![a.clone(), b.clone()];
        assert_eq!(parse_checkpoints(&array), Ok(want.clone()));
        assert_eq!(parse_checkpoints(&list), Ok(want.clone()));
        assert_eq!(parse_checkpoints(&lines), Ok(want));
        assert_eq!(parse_checkpoints(&one(&a)), Ok(vec![a.clone()]));
        assert_eq!(parse_checkpoints(&export), Ok(vec![b.clone()]));
        let no_checkpoint = r#"{"count":0,"rows":[],"checkpoint":null}"#;
        assert_eq!(
            parse_checkpoints(no_checkpoint),
            Err("no checkpoints in it".to_string())
        );
        let bad = format!("{}\nnot json\n", one(&a));
        assert_eq!(parse_checkpoints(&bad), Err("line 2: not JSON".to_string()));
        let partial = r#"[{"seq": 1, "signature": "x"}]"#;
        assert!(parse_checkpoints(partial).is_err());
        assert!(parse_checkpoints(r#"{"rows": []}"#).is_err());

        let vk = keys.verifying_key();
        let info = keys.public_key_info();
        let doc = serde_json::to_string(&info).expect("json");
        assert_eq!(parse_public_key(&doc), Ok(vk));
        assert_eq!(parse_public_key(&list), Ok(vk));
        assert_eq!(parse_public_key(&format!("{}\n", info.public_key)), Ok(vk));
        assert!(parse_public_key("{}").is_err());
        assert!(parse_public_key("not a key").is_err());
    }
}
