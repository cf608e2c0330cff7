//! The account calls the apps make before they scan, as thin wrappers over
//! `platewatch_sync::account`: the server's rules of behaviour for the login screen, sign-in
//! with the acknowledged rules version plus device registration (or reuse of the device's
//! registration), and the hot list publisher key for an explicit trust-on-first-use. Every call
//! is `async` (Kotlin `suspend`, Swift `async`) and runs on a small process-wide tokio runtime.
//! Passwords and tokens never appear in `Debug` output, logs or error messages.

use std::future::Future;
use std::sync::OnceLock;

use platewatch_core::hotlist::signed;
use platewatch_sync::client::{Answer, REASON_CODES_PATH};
use platewatch_sync::{ClientConfig, ServerClient, SyncError, account, hotlists};

use crate::error::PlatewatchError;

/// The server's rules of behaviour: the text the officer reads and the version they
/// acknowledge when signing in.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct RulesOfBehaviour {
    pub version: i64,
    pub text: String,
}

/// A device registered on the server. Keep it in the Android Keystore / iOS Keychain and pass
/// it as `ScannerConfig::device`: `sync_now` then renews its token once half of the token's
/// lifetime is gone and hands back the renewed registration (`SyncReport::renewed_device`),
/// which replaces the stored one.
#[derive(Clone, PartialEq, Eq, uniffi::Record)]
pub struct DeviceRegistration {
    /// The server's id of the device (shown in its device list; revocation uses it).
    pub device_id: i64,
    pub device_name: String,
    /// The device token (`pwd_…`); it expires unless renewed.
    pub device_token: String,
    /// When the device received the token (ms since the epoch); None for a registration kept
    /// from before tokens expired (renewed at the next sync).
    #[uniffi(default = None)]
    pub issued_at_ms: Option<i64>,
    /// When the server stops accepting the token unless it is renewed.
    #[uniffi(default = None)]
    pub expires_at_ms: Option<i64>,
}

impl DeviceRegistration {
    /// The sync crate's view of the registration.
    pub(crate) fn to_device(&self) -> account::Device {
        account::Device {
            id: self.device_id,
            name: self.device_name.clone(),
            token: self.device_token.clone(),
            expires_at_ms: self.expires_at_ms,
            issued_at_ms: self.issued_at_ms,
        }
    }
}

impl From<account::Device> for DeviceRegistration {
    fn from(d: account::Device) -> Self {
        DeviceRegistration {
            device_id: d.id,
            device_name: d.name,
            device_token: d.token,
            issued_at_ms: d.issued_at_ms,
            expires_at_ms: d.expires_at_ms,
        }
    }
}

impl std::fmt::Debug for DeviceRegistration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceRegistration")
            .field("device_id", &self.device_id)
            .field("device_name", &self.device_name)
            .field("device_token", &"<redacted>")
            .field("issued_at_ms", &self.issued_at_ms)
            .field("expires_at_ms", &self.expires_at_ms)
            .finish()
    }
}

/// Signing an officer in on a device.
#[derive(Clone, uniffi::Record)]
pub struct SignInRequest {
    /// Base URL of the Platewatch server (`https://…`).
    pub server_url: String,
    pub user: String,
    pub password: String,
    /// The version of the rules of behaviour the officer has just read and accepted. The
    /// server requires its current version at every sign-in when it has rules; without it (or
    /// with an old one) the answer is [`SignInResult::RulesRequired`].
    #[uniffi(default = None)]
    pub acknowledge_rules_version: Option<i64>,
    /// How the device appears in the server's device list (e.g. "Platewatch Pixel 8").
    pub device_name: String,
    /// This device's registration from an earlier sign-in of the same user on the same server:
    /// kept when the server still accepts its token, instead of registering the device again.
    #[uniffi(default = None)]
    pub existing_device: Option<DeviceRegistration>,
}

impl std::fmt::Debug for SignInRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignInRequest")
            .field("server_url", &self.server_url)
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("acknowledge_rules_version", &self.acknowledge_rules_version)
            .field("device_name", &self.device_name)
            .field("existing_device", &self.existing_device)
            .finish()
    }
}

/// What [`sign_in`] did.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum SignInResult {
    /// Signed in; the device is registered (`registered` true: just now; false: the existing
    /// registration was still valid and is kept).
    SignedIn {
        device: DeviceRegistration,
        registered: bool,
        /// The user's role on the server (`officer`, `supervisor`, …).
        role: String,
        /// The rules version acknowledged at this sign-in (None: the server has no rules).
        rules_version: Option<i64>,
    },
    /// The server has rules of behaviour this sign-in did not acknowledge: show them, and sign
    /// in again with `acknowledge_rules_version` set to their version once the officer accepts.
    RulesRequired { rules: RulesOfBehaviour },
}

/// The hot list publisher key the server presents (`GET /v1/hotlists/key`).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct HotlistKey {
    /// Short id of the key (first 8 bytes of its SHA-256, hex), for display and comparison.
    pub key_id: String,
    /// The 32-byte ed25519 public key, base64: what `ScannerConfig::hotlist_key` takes.
    pub public_key: String,
}

/// The process-wide runtime the account calls run on (they have no `Scanner` to borrow one
/// from). Made on first use; one worker thread.
fn runtime() -> Result<&'static tokio::runtime::Runtime, PlatewatchError> {
    static RT: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("platewatch-account")
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the account runtime: {e}"))
    })
    .as_ref()
    .map_err(|e| PlatewatchError::Internal(e.clone()))
}

/// Runs `f` on the account runtime; awaiting the result works from any executor (Kotlin
/// coroutines, Swift tasks). A panic becomes `Internal`.
async fn on_runtime<T, Fut>(f: Fut) -> Result<T, PlatewatchError>
where
    T: Send + 'static,
    Fut: Future<Output = Result<T, PlatewatchError>> + Send + 'static,
{
    match runtime()?.spawn(f).await {
        Ok(r) => r,
        Err(e) if e.is_panic() => Err(PlatewatchError::Internal("an account call panicked".into())),
        Err(_) => Err(PlatewatchError::Internal(
            "an account call was cancelled".into(),
        )),
    }
}

/// A client for `server_url` presenting `token` (empty: none).
pub(crate) fn client(server_url: &str, token: &str) -> Result<ServerClient, PlatewatchError> {
    if server_url.trim().is_empty() {
        return Err(PlatewatchError::invalid("the server URL is empty"));
    }
    Ok(ServerClient::new(&ClientConfig::new(
        server_url.trim(),
        token,
    ))?)
}

/// Keeps the error's kind and puts `context` in front of its message.
pub(crate) fn context(e: PlatewatchError, context: &str) -> PlatewatchError {
    use PlatewatchError as E;
    match e {
        E::InvalidInput(m) => E::InvalidInput(format!("{context}: {m}")),
        E::Storage(m) => E::Storage(format!("{context}: {m}")),
        E::Network(m) => E::Network(format!("{context}: {m}")),
        E::Model(m) => E::Model(format!("{context}: {m}")),
        E::Unauthorized(m) => E::Unauthorized(format!("{context}: {m}")),
        E::Internal(m) => E::Internal(format!("{context}: {m}")),
    }
}

/// A transport failure of a GET (connection, timeout, cut-short answer) as `Network`, without
/// reqwest's text (it can quote the URL).
macro_rules! transport {
    () => {
        |e| {
            PlatewatchError::Network(if e.is_timeout() {
                "timed out".into()
            } else if e.is_connect() {
                "could not connect".into()
            } else {
                "request failed".into()
            })
        }
    };
}

/// A refusal or error status as the small enum (401/403: `Unauthorized`).
fn status_error(a: &Answer, what: &str) -> PlatewatchError {
    match a.status {
        401 | 403 => PlatewatchError::Unauthorized(format!(
            "the server refused the device token for {what} (HTTP {})",
            a.status
        )),
        s => PlatewatchError::Network(format!("{what}: the server answered HTTP {s}")),
    }
}

/// The server's current rules of behaviour, read with a device token (`GET /v1/rules`; the
/// server requires a token, and accepts one whose user has not acknowledged the current rules
/// yet). None when the server has no rules. For a first sign-in, when the device has no token
/// yet, [`sign_in`] answers [`SignInResult::RulesRequired`] with the rules instead.
#[uniffi::export]
pub async fn fetch_rules(
    server_url: String,
    device_token: String,
) -> Result<Option<RulesOfBehaviour>, PlatewatchError> {
    on_runtime(async move {
        let c = client(&server_url, &device_token)?;
        let a = c.get("/v1/rules").await.map_err(transport!())?;
        match a.status {
            200 => {
                #[derive(serde::Deserialize)]
                struct Rules {
                    version: i64,
                    text: String,
                }
                let r: Rules = serde_json::from_slice(&a.body).map_err(|_| {
                    PlatewatchError::Network(
                        "unexpected answer: the rules could not be read".into(),
                    )
                })?;
                Ok(Some(RulesOfBehaviour {
                    version: r.version,
                    text: r.text,
                }))
            }
            404 => Ok(None),
            _ => Err(status_error(&a, "the rules of behaviour")),
        }
    })
    .await
}

/// Signs the officer in (`POST /v1/login` with the acknowledged rules version) and registers
/// the device (`POST /v1/devices`), or keeps `existing_device` when the server still accepts
/// its token. A wrong user name or password is `Unauthorized`; rules not acknowledged are the
/// [`SignInResult::RulesRequired`] answer, not an error.
#[uniffi::export]
pub async fn sign_in(request: SignInRequest) -> Result<SignInResult, PlatewatchError> {
    on_runtime(async move {
        let user = request.user.trim().to_string();
        if user.is_empty() || request.password.is_empty() {
            return Err(PlatewatchError::invalid(
                "a user name and a password are required",
            ));
        }
        let anon = client(&request.server_url, "")?;
        let login = match account::login(
            &anon,
            &user,
            &request.password,
            request.acknowledge_rules_version,
        )
        .await
        {
            Ok(l) => l,
            Err(SyncError::RulesNotAcknowledged { version, text }) => {
                return Ok(SignInResult::RulesRequired {
                    rules: RulesOfBehaviour { version, text },
                });
            }
            Err(SyncError::Unauthorized { status, .. }) => {
                return Err(PlatewatchError::Unauthorized(format!(
                    "the server refused the user name or password (HTTP {status})"
                )));
            }
            Err(e) => return Err(context(e.into(), "sign-in failed")),
        };
        let kept = match request.existing_device {
            Some(d) if still_valid(&request.server_url, &d.device_token).await? => Some(d),
            _ => None,
        };
        let registered = kept.is_none();
        let device = match kept {
            Some(d) => d,
            None => {
                let name = request.device_name.trim();
                let name = if name.is_empty() {
                    "Platewatch device"
                } else {
                    name
                };
                account::register_device(&anon, &login.token, name)
                    .await
                    .map_err(|e| context(e.into(), "device registration failed"))?
                    .into()
            }
        };
        Ok(SignInResult::SignedIn {
            device,
            registered,
            role: login.role,
            rules_version: login.rules_version,
        })
    })
    .await
}

/// Whether the server still accepts a device token (asked with the cheapest authenticated
/// read, the reason codes, right after the user acknowledged the current rules).
async fn still_valid(server_url: &str, token: &str) -> Result<bool, PlatewatchError> {
    if token.trim().is_empty() {
        return Ok(false);
    }
    let Ok(c) = client(server_url, token) else {
        // A token with characters a header cannot carry was never issued by the server.
        return Ok(false);
    };
    let a = c.get(REASON_CODES_PATH).await.map_err(transport!())?;
    Ok(!matches!(a.status, 401 | 403))
}

/// The hot list publisher key the server presents. **Trust on first use**: call it only when
/// the user (or the agency's configuration) explicitly chose to trust this server's key, then
/// keep the key and pass it as `ScannerConfig::hotlist_key` from then on; never replace a
/// pinned key with what the server says later. The key document is checked for consistency
/// (algorithm, key id).
#[uniffi::export]
pub async fn fetch_hotlist_key(
    server_url: String,
    device_token: String,
) -> Result<HotlistKey, PlatewatchError> {
    on_runtime(async move {
        let c = client(&server_url, &device_token)?;
        let info = hotlists::fetch_public_key(&c)
            .await
            .map_err(|e| context(e.into(), "cannot fetch the hot list key"))?;
        Ok(HotlistKey {
            key_id: info.key_id,
            public_key: info.public_key,
        })
    })
    .await
}

/// The id of a base64 publisher key (what [`HotlistKey::key_id`] shows), or `InvalidInput`
/// when it is not a 32-byte ed25519 key.
#[uniffi::export]
pub fn hotlist_key_id(public_key: String) -> Result<String, PlatewatchError> {
    signed::parse_public_key(&public_key)
        .map(|k| signed::key_id(&k))
        .map_err(|_| PlatewatchError::invalid("the hot list key is not a base64 ed25519 key"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::types::{ModelSource, ScannerConfig};

    #[test]
    fn debug_output_never_shows_passwords_or_tokens() {
        let device = DeviceRegistration {
            device_id: 7,
            device_name: "phone".into(),
            device_token: "pwd_secret-token".into(),
            issued_at_ms: Some(1),
            expires_at_ms: Some(2),
        };
        let request = SignInRequest {
            server_url: "https://pw.example.org".into(),
            user: "ofc.lee".into(),
            password: "hunter2-password".into(),
            acknowledge_rules_version: Some(3),
            device_name: "phone".into(),
            existing_device: Some(device.clone()),
        };
        let device_for_config = device.clone();
        let result = SignInResult::SignedIn {
            device,
            registered: false,
            role: "officer".into(),
            rules_version: Some(3),
        };
        let config = ScannerConfig {
            detector: ModelSource::Bytes { bytes: vec![] },
            reader: ModelSource::Bytes { bytes: vec![] },
            refiner: None,
            store_path: "device.db".into(),
            device_id: "phone".into(),
            camera_id: "rear".into(),
            reason_codes: vec![],
            server_url: Some("https://pw.example.org".into()),
            device_token: Some("pwd_secret-token".into()),
            device: Some(device_for_config),
            hotlist_key: None,
            image_key: Some(vec![9; 32]),
            input_width: 0,
            input_height: 0,
            detector_threshold: 0.0,
            min_read_confidence: 0.0,
            alert_threshold: 0.0,
            alert_hold_ms: -1,
        };
        let shown = format!("{request:?} {result:?} {config:?}");
        assert!(shown.contains("ofc.lee") && shown.contains("<redacted>"));
        for secret in ["hunter2", "secret-token", "9, 9"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
    }

    #[test]
    fn context_keeps_the_kind() {
        let e = context(
            PlatewatchError::Network("could not connect".into()),
            "sign-in",
        );
        assert_eq!(e.kind(), ErrorKind::Network);
        assert_eq!(e.to_string(), "network: sign-in: could not connect");
        assert!(hotlist_key_id("not a key".into()).is_err());
    }
}
