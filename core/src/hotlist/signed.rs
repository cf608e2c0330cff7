//! Signed hot list payloads: the wire types a server publishes and a device applies (a snapshot
//! or a delta of one list), and the ed25519 signing and verification of them. A device calls
//! [`verify`] with the publisher's pinned public key before it trusts a single entry.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

use super::entry::{Entry, EntryKey, Source};

/// Signature algorithm named in envelopes and key documents.
pub const ALGORITHM: &str = "ed25519";

/// Prepended to the payload bytes before signing, so a hot list signature can never be
/// mistaken for a signature over anything else made with the same key.
pub const SIGNING_CONTEXT: &[u8] = b"platewatch-hotlist-v1\n";

/// One list as published: its identity, version and freshness policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListInfo {
    pub name: String,
    pub source: Source,
    /// Increases by one with every change to the list.
    pub version: i64,
    /// When this version was published, Unix seconds.
    pub published_at: i64,
    /// Age in seconds after which a device must flag the list stale.
    pub max_age_secs: i64,
}

/// What a payload carries: every live entry, or the changes since a base version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Update {
    /// The whole list at `list.version`: replace what the device holds.
    Snapshot { entries: Vec<Entry> },
    /// From `base_version` to `list.version`: remove by key, then add (an added entry whose key
    /// exists replaces it).
    Delta {
        base_version: i64,
        add: Vec<Entry>,
        remove: Vec<EntryKey>,
    },
}

/// The signed content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HotlistPayload {
    pub list: ListInfo,
    /// When the server produced this payload, Unix seconds.
    pub issued_at: i64,
    pub update: Update,
}

/// A payload as served: the exact JSON text that was signed, and the signature over
/// [`SIGNING_CONTEXT`] followed by that text.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedHotlist {
    /// Always [`ALGORITHM`].
    pub alg: String,
    /// [`key_id`] of the signing key: tells a device which pinned key to use.
    pub key_id: String,
    /// The [`HotlistPayload`] as JSON text.
    pub payload: String,
    /// The 64-byte ed25519 signature, base64 (standard alphabet).
    pub signature: String,
}

impl fmt::Debug for SignedHotlist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedHotlist")
            .field("alg", &self.alg)
            .field("key_id", &self.key_id)
            .field("payload", &format_args!("<{} bytes>", self.payload.len()))
            .finish_non_exhaustive()
    }
}

/// The public key a device pins, as served by the publisher.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKeyInfo {
    pub alg: String,
    pub key_id: String,
    /// The 32-byte ed25519 public key, base64 (standard alphabet).
    pub public_key: String,
}

/// Why a signed payload was refused. Never carries entry contents.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum VerifyError {
    #[error("the envelope is not valid JSON of the expected shape")]
    Envelope,
    #[error("unsupported signature algorithm")]
    Algorithm,
    #[error("signed with another key (key id {0})")]
    UnknownKey(String),
    #[error("the signature is not 64 bytes of base64")]
    SignatureEncoding,
    #[error("the signature does not match the payload")]
    BadSignature,
    #[error("the signed payload does not decode: {0}")]
    Payload(String),
    #[error("the public key is not 32 bytes of base64 of a valid ed25519 key")]
    PublicKey,
}

/// A short identifier of a public key: the first 8 bytes of its SHA-256, lower-case hex.
pub fn key_id(key: &VerifyingKey) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The key document for `key`.
pub fn public_key_info(key: &VerifyingKey) -> PublicKeyInfo {
    PublicKeyInfo {
        alg: ALGORITHM.to_string(),
        key_id: key_id(key),
        public_key: B64.encode(key.as_bytes()),
    }
}

/// Decodes a base64 public key (as in [`PublicKeyInfo::public_key`]).
pub fn parse_public_key(b64: &str) -> Result<VerifyingKey, VerifyError> {
    let bytes = B64.decode(b64.trim()).map_err(|_| VerifyError::PublicKey)?;
    let bytes: [u8; 32] = bytes.try_into().map_err(|_| VerifyError::PublicKey)?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| VerifyError::PublicKey)
}

fn message(payload: &str) -> Vec<u8> {
    let mut m = Vec::with_capacity(SIGNING_CONTEXT.len() + payload.len());
    m.extend_from_slice(SIGNING_CONTEXT);
    m.extend_from_slice(payload.as_bytes());
    m
}

/// Serialises `payload` and signs it.
pub fn sign(payload: &HotlistPayload, key: &SigningKey) -> SignedHotlist {
    let text = serde_json::to_string(payload).expect("hot list payloads always serialise");
    let signature = key.sign(&message(&text));
    SignedHotlist {
        alg: ALGORITHM.to_string(),
        key_id: key_id(&key.verifying_key()),
        payload: text,
        signature: B64.encode(signature.to_bytes()),
    }
}

/// Checks `signed` against the pinned `key` (strict ed25519 verification) and only then
/// decodes the payload. Any change to the payload text, the signature or the key fails.
pub fn verify(signed: &SignedHotlist, key: &VerifyingKey) -> Result<HotlistPayload, VerifyError> {
    if signed.alg != ALGORITHM {
        return Err(VerifyError::Algorithm);
    }
    if signed.key_id != key_id(key) {
        return Err(VerifyError::UnknownKey(
            signed.key_id.chars().take(32).collect(),
        ));
    }
    let sig = B64
        .decode(signed.signature.trim())
        .map_err(|_| VerifyError::SignatureEncoding)?;
    let sig: [u8; 64] = sig.try_into().map_err(|_| VerifyError::SignatureEncoding)?;
    key.verify_strict(&message(&signed.payload), &Signature::from_bytes(&sig))
        .map_err(|_| VerifyError::BadSignature)?;
    serde_json::from_str(&signed.payload).map_err(|e| VerifyError::Payload(redact(&e)))
}

/// [`verify`] on an envelope still in its JSON form (a response body).
pub fn verify_json(body: &[u8], key: &VerifyingKey) -> Result<HotlistPayload, VerifyError> {
    let signed: SignedHotlist = serde_json::from_slice(body).map_err(|_| VerifyError::Envelope)?;
    verify(&signed, key)
}

/// A serde error's category and position, without the offending value (it may be a plate).
fn redact(e: &serde_json::Error) -> String {
    format!(
        "{:?} error at line {} column {}",
        e.classify(),
        e.line(),
        e.column()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hotlist::entry::{Category, PlatePattern};

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn payload() -> HotlistPayload {
        let mut e = Entry::new(
            PlatePattern::parse("7ABC123").expect("plate"),
            Category::StolenVehicle,
            Source::Ncic,
        );
        e.state = Some("CA".into());
        e.note = Some("armed".into());
        HotlistPayload {
            list: ListInfo {
                name: "ncic".into(),
                source: Source::Ncic,
                version: 3,
                published_at: 1_700_000_000,
                max_age_secs: 86_400,
            },
            issued_at: 1_700_000_100,
            update: Update::Delta {
                base_version: 2,
                add: vec![e.clone()],
                remove: vec![EntryKey::from(&e)],
            },
        }
    }

    #[test]
    fn sign_then_verify_round_trips() {
        let k = key(7);
        let signed = sign(&payload(), &k);
        assert_eq!(verify(&signed, &k.verifying_key()), Ok(payload()));
        let json = serde_json::to_vec(&signed).expect("json");
        assert_eq!(verify_json(&json, &k.verifying_key()), Ok(payload()));
        let info = public_key_info(&k.verifying_key());
        assert_eq!(
            parse_public_key(&info.public_key),
            Ok(k.verifying_key()),
            "key documents round trip"
        );
        assert_eq!(info.key_id, signed.key_id);
    }

    #[test]
    fn any_tampering_is_refused() {
        let k = key(7);
        let pk = k.verifying_key();
        let signed = sign(&payload(), &k);

        let mut t = signed.clone();
        t.payload = t.payload.replace("7ABC123", "7ABC124");
        assert_eq!(verify(&t, &pk), Err(VerifyError::BadSignature));

        let mut t = signed.clone();
        t.payload = t.payload.replace("\"version\":3", "\"version\":4");
        assert_eq!(verify(&t, &pk), Err(VerifyError::BadSignature));

        let mut t = signed.clone();
        let mut sig = B64.decode(&t.signature).expect("b64");
        sig[5] ^= 1;
        t.signature = B64.encode(sig);
        assert_eq!(verify(&t, &pk), Err(VerifyError::BadSignature));

        let mut t = signed.clone();
        t.signature = "AAAA".into();
        assert_eq!(verify(&t, &pk), Err(VerifyError::SignatureEncoding));

        let mut t = signed.clone();
        t.alg = "none".into();
        assert_eq!(verify(&t, &pk), Err(VerifyError::Algorithm));

        // Signed by another key, even with the pinned key's id copied in.
        let mut t = sign(&payload(), &key(8));
        assert!(matches!(verify(&t, &pk), Err(VerifyError::UnknownKey(_))));
        t.key_id = signed.key_id.clone();
        assert_eq!(verify(&t, &pk), Err(VerifyError::BadSignature));

        assert_eq!(verify_json(b"{", &pk), Err(VerifyError::Envelope));
        assert_eq!(parse_public_key("AAAA"), Err(VerifyError::PublicKey));
    }

    #[test]
    fn errors_and_debug_never_show_entries() {
        let k = key(7);
        let signed = sign(&payload(), &k);
        let dbg = format!("{signed:?}");
        assert!(!dbg.contains("7ABC123") && !dbg.contains("armed"), "{dbg}");
        // A validly signed payload that does not decode: the error names no value.
        let mut bad = payload();
        bad.list.name = "x".into();
        let text = serde_json::to_string(&bad)
            .expect("json")
            .replace("\"stolen_vehicle\"", "\"SECRET9\"");
        let sig = k.sign(&message(&text));
        let forged = SignedHotlist {
            payload: text,
            signature: B64.encode(sig.to_bytes()),
            ..signed
        };
        let err = verify(&forged, &k.verifying_key()).expect_err("bad payload");
        assert!(matches!(err, VerifyError::Payload(_)));
        assert!(!err.to_string().contains("SECRET9"), "{err}");
    }
}
