//! The account calls a device makes before it scans: sign the officer in (acknowledging the
//! server's rules of behaviour explicitly), register the device for a device token, and open
//! and close the scanning session on the server. Passwords and tokens are never logged.

use platewatch_core::session::Session;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::SyncError;
use crate::client::{Answer, ServerClient};

/// A signed-in user (the login session token is short-lived; keep it in memory only).
#[derive(Clone, Deserialize)]
pub struct Login {
    pub token: String,
    pub expires_at_ms: i64,
    pub role: String,
    #[serde(default)]
    pub enhanced_queries: bool,
    pub rules_version: Option<i64>,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("token", &"<redacted>")
            .field("expires_at_ms", &self.expires_at_ms)
            .field("role", &self.role)
            .field("rules_version", &self.rules_version)
            .finish_non_exhaustive()
    }
}

/// A registered device: its server id and its token, which expires unless renewed
/// ([`renew_device`], which sync calls once half of the token's lifetime is gone).
#[derive(Clone, Serialize, Deserialize)]
pub struct Device {
    pub id: i64,
    pub name: String,
    pub token: String,
    /// When the server stops accepting the token (unknown for registrations kept from before
    /// tokens expired).
    #[serde(default)]
    pub expires_at_ms: Option<i64>,
    /// When this device received the token.
    #[serde(default)]
    pub issued_at_ms: Option<i64>,
}

impl Device {
    /// Whether the token should be renewed now: half of its lifetime is gone, or its expiry is
    /// unknown.
    pub fn renewal_due(&self, now_ms: i64) -> bool {
        match (self.issued_at_ms, self.expires_at_ms) {
            (Some(issued), Some(expires)) => now_ms >= issued + (expires - issued) / 2,
            _ => true,
        }
    }
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("token", &"<redacted>")
            .field("expires_at_ms", &self.expires_at_ms)
            .finish_non_exhaustive()
    }
}

fn transport(e: &reqwest::Error) -> SyncError {
    SyncError::Network(if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "could not connect".into()
    } else {
        "request failed".into()
    })
}

fn json_body(v: &serde_json::Value) -> Result<Vec<u8>, SyncError> {
    serde_json::to_vec(v).map_err(|e| SyncError::Config(format!("request body: {e}")))
}

fn refused(a: &Answer) -> SyncError {
    match a.status {
        401 | 403 => SyncError::Unauthorized {
            status: a.status,
            message: a.error_message(),
        },
        s => SyncError::Server {
            status: s,
            message: a.error_message(),
        },
    }
}

/// `POST /v1/login`. `acknowledge_rules_version` must name the server's current rules version
/// when it has rules; otherwise the answer is [`SyncError::RulesNotAcknowledged`] carrying the
/// current version and text, for the shell to show.
pub async fn login(
    client: &ServerClient,
    username: &str,
    password: &str,
    acknowledge_rules_version: Option<i64>,
) -> Result<Login, SyncError> {
    let body = json_body(&json!({
        "username": username,
        "password": password,
        "acknowledge_rules_version": acknowledge_rules_version,
    }))?;
    let a = client
        .post_json_as("/v1/login", None, body)
        .await
        .map_err(|e| transport(&e))?;
    if a.status == 200 {
        return serde_json::from_slice(&a.body)
            .map_err(|_| SyncError::Protocol("the login answer could not be read".into()));
    }
    if a.status == 403 {
        let v: serde_json::Value = serde_json::from_slice(&a.body).unwrap_or_default();
        if v["code"] == "rules_not_acknowledged" {
            return Err(SyncError::RulesNotAcknowledged {
                version: v["rules_version"].as_i64().unwrap_or(0),
                text: v["rules_text"].as_str().unwrap_or_default().to_string(),
            });
        }
    }
    Err(refused(&a))
}

/// `POST /v1/devices` with the login session token: registers this device, returns its token.
pub async fn register_device(
    client: &ServerClient,
    session_token: &str,
    name: &str,
) -> Result<Device, SyncError> {
    let a = client
        .post_json_as(
            "/v1/devices",
            Some(session_token),
            json_body(&json!({ "name": name }))?,
        )
        .await
        .map_err(|e| transport(&e))?;
    if a.status != 201 && a.status != 200 {
        return Err(refused(&a));
    }
    let mut device: Device = serde_json::from_slice(&a.body)
        .map_err(|_| SyncError::Protocol("the device registration could not be read".into()))?;
    device.issued_at_ms = Some(crate::now_ms());
    Ok(device)
}

/// `POST /v1/devices/renew` with the device's token (the client's): the same device with a
/// new token and expiry. The token it replaces stays valid on the server for a grace period,
/// so a renewal whose answer is lost can be repeated with it.
pub async fn renew_device(client: &ServerClient, device: &Device) -> Result<Device, SyncError> {
    #[derive(Deserialize)]
    struct Renewed {
        id: i64,
        token: String,
        expires_at_ms: i64,
    }
    let a = client
        .post_json("/v1/devices/renew", b"{}".to_vec())
        .await
        .map_err(|e| transport(&e))?;
    if a.status != 200 {
        return Err(refused(&a));
    }
    let r: Renewed = serde_json::from_slice(&a.body)
        .map_err(|_| SyncError::Protocol("the token renewal could not be read".into()))?;
    if r.id != device.id {
        return Err(SyncError::Protocol(
            "the server renewed another device".into(),
        ));
    }
    Ok(Device {
        token: r.token,
        expires_at_ms: Some(r.expires_at_ms),
        issued_at_ms: Some(crate::now_ms()),
        ..device.clone()
    })
}

/// `POST /v1/sessions` with the device token: registers `session` (its client id, reason code,
/// case number, justification, on-behalf-of) on the server, which checks the reason code
/// against its configured list and audits it. Repeating it is harmless.
pub async fn start_session(client: &ServerClient, session: &Session) -> Result<(), SyncError> {
    let body = json_body(&json!({
        "id": session.id().hyphenated().to_string(),
        "reason_code": session.reason_code(),
        "case_number": session.case_number(),
        "justification": session.justification(),
        "on_behalf_of": session.on_behalf_of(),
    }))?;
    let a = client
        .post_json("/v1/sessions", body)
        .await
        .map_err(|e| transport(&e))?;
    match a.status {
        200 | 201 => Ok(()),
        _ => Err(refused(&a)),
    }
}

/// `POST /v1/sessions/{id}/end` with the device token; a session the server already ended is
/// fine.
pub async fn end_session(client: &ServerClient, session: &Session) -> Result<(), SyncError> {
    let path = format!("/v1/sessions/{}/end", session.id().hyphenated());
    let a = client
        .post_json(&path, b"{}".to_vec())
        .await
        .map_err(|e| transport(&e))?;
    match a.status {
        200 | 201 | 409 => Ok(()),
        _ => Err(refused(&a)),
    }
}
