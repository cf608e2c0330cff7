//! The device's HTTP client for the Platewatch server: reqwest over rustls (ring provider),
//! bearer device token, configurable timeouts, optional extra root certificate. Shared by the
//! uploader, hot list sync and the account calls; also fetches the server's reason codes.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};

use crate::SyncError;

/// The `Authorization` header for a device token (marked sensitive: never logged).
fn bearer(token: &str) -> Result<HeaderValue, SyncError> {
    let mut auth = HeaderValue::from_str(&format!("Bearer {}", token.trim()))
        .map_err(|_| SyncError::Config("the device token has invalid characters".into()))?;
    auth.set_sensitive(true);
    Ok(auth)
}

/// Where the server is and how long to wait for it.
#[derive(Clone)]
pub struct ClientConfig {
    /// Base URL, e.g. `https://platewatch.example.org` (no trailing path).
    pub server: String,
    /// The device token (`pwd_…`) from device registration.
    pub device_token: String,
    pub connect_timeout: Duration,
    /// Whole request, body included; a stalled server counts as a failed attempt after it.
    pub request_timeout: Duration,
    pub user_agent: String,
    /// An extra trusted root (PEM), for servers with a private CA.
    pub root_ca_pem: Option<Vec<u8>>,
}

impl ClientConfig {
    pub fn new(server: impl Into<String>, device_token: impl Into<String>) -> Self {
        ClientConfig {
            server: server.into(),
            device_token: device_token.into(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            user_agent: concat!("platewatch-device/", env!("CARGO_PKG_VERSION")).to_string(),
            root_ca_pem: None,
        }
    }
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("server", &self.server)
            .field("device_token", &"<redacted>")
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .finish_non_exhaustive()
    }
}

/// Path of the server's reason code list.
pub const REASON_CODES_PATH: &str = "/v1/reason-codes";

/// An answer from the server: status and body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Answer {
    /// The `error` field of a JSON error body, or a placeholder.
    pub fn error_message(&self) -> String {
        serde_json::from_slice::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
            .unwrap_or_else(|| format!("HTTP {}", self.status))
    }
}

/// A configured client; cheap to clone. Clones share the device token, so a renewed token
/// ([`ServerClient::set_device_token`]) reaches every clone.
#[derive(Clone)]
pub struct ServerClient {
    http: reqwest::Client,
    base: String,
    auth: Arc<RwLock<HeaderValue>>,
}

impl std::fmt::Debug for ServerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerClient")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl ServerClient {
    pub fn new(config: &ClientConfig) -> Result<ServerClient, SyncError> {
        let base = config.server.trim().trim_end_matches('/').to_string();
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            return Err(SyncError::Config(
                "the server URL must start with https:// or http://".into(),
            ));
        }
        let auth = Arc::new(RwLock::new(bearer(&config.device_token)?));
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .user_agent(config.user_agent.clone())
            .pool_idle_timeout(Duration::from_secs(30));
        if let Some(pem) = &config.root_ca_pem {
            let cert = reqwest::Certificate::from_pem(pem)
                .map_err(|e| SyncError::Config(format!("root certificate: {e}")))?;
            builder = builder.add_root_certificate(cert);
        }
        let http = builder
            .build()
            .map_err(|e| SyncError::Config(format!("HTTP client: {e}")))?;
        Ok(ServerClient { http, base, auth })
    }

    /// Sends `token` instead of the configured device token from the next request on, from
    /// this client and every clone of it (after a token renewal).
    pub fn set_device_token(&self, token: &str) -> Result<(), SyncError> {
        let value = bearer(token)?;
        *self.auth.write().unwrap_or_else(|p| p.into_inner()) = value;
        Ok(())
    }

    fn auth(&self) -> HeaderValue {
        self.auth.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// POSTs a JSON body to `path` (e.g. `/v1/encounters`); transport errors (connection,
    /// timeout, truncated body) are `Err`, any HTTP answer is `Ok`.
    pub async fn post_json(&self, path: &str, body: Vec<u8>) -> Result<Answer, reqwest::Error> {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .header(AUTHORIZATION, self.auth())
            .header(CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await?.to_vec();
        Ok(Answer { status, body })
    }

    /// POSTs a JSON body to `path` with another bearer token (a login session token) or none
    /// (login itself); same error split as [`ServerClient::post_json`].
    pub async fn post_json_as(
        &self,
        path: &str,
        bearer: Option<&str>,
        body: Vec<u8>,
    ) -> Result<Answer, reqwest::Error> {
        let mut req = self
            .http
            .post(format!("{}{path}", self.base))
            .header(CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(t) = bearer {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await?.to_vec();
        Ok(Answer { status, body })
    }

    /// `GET /v1/reason-codes` with the device token: the reason codes the server accepts for a
    /// scanning session, in its configured order.
    pub async fn reason_codes(&self) -> Result<Vec<String>, SyncError> {
        #[derive(serde::Deserialize)]
        struct Codes {
            reason_codes: Vec<String>,
        }
        let a = self.get(REASON_CODES_PATH).await.map_err(|e| {
            SyncError::Network(if e.is_timeout() {
                "timed out".into()
            } else if e.is_connect() {
                "could not connect".into()
            } else {
                "request failed".into()
            })
        })?;
        match a.status {
            200 => {}
            401 | 403 => {
                return Err(SyncError::Unauthorized {
                    status: a.status,
                    message: a.error_message(),
                });
            }
            s => {
                return Err(SyncError::Server {
                    status: s,
                    message: a.error_message(),
                });
            }
        }
        let codes: Codes = serde_json::from_slice(&a.body)
            .map_err(|_| SyncError::Protocol("the reason code list could not be read".into()))?;
        let codes: Vec<String> = codes
            .reason_codes
            .into_iter()
            .map(|c| c.trim().to_string())
            .filter(|c| !c.is_empty())
            .collect();
        if codes.is_empty() {
            return Err(SyncError::Protocol(
                "the server has no reason codes configured".into(),
            ));
        }
        Ok(codes)
    }

    /// GETs `path`; same error split as [`ServerClient::post_json`].
    pub async fn get(&self, path: &str) -> Result<Answer, reqwest::Error> {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .header(AUTHORIZATION, self.auth())
            .send()
            .await?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await?.to_vec();
        Ok(Answer { status, body })
    }
}
