//! Identity: roles, Argon2id password hashes, random bearer tokens stored only as SHA-256
//! hashes, and the extractors that authenticate every request and check its role and token
//! scope: a login session token may do what its role allows; a device token only device work
//! (upload, hot list sync, reason codes, its user's scanning sessions, its own renewal).

use argon2::Argon2;
use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::{AUTHORIZATION, USER_AGENT};
use axum::http::request::Parts;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::db::UserRow;
use crate::error::ApiError;

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Scans and uploads encounters.
    Officer,
    /// Scans, uploads and (with `enhanced_queries`) runs enhanced queries.
    Analyst,
    /// Manages users, devices and the rules of behaviour.
    Admin,
    /// Reads and verifies the audit log.
    Auditor,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Officer, Role::Analyst, Role::Admin, Role::Auditor];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Officer => "officer",
            Role::Analyst => "analyst",
            Role::Admin => "admin",
            Role::Auditor => "auditor",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// Argon2id hash (PHC string) of `password` with a random salt.
pub fn hash_password(password: &str) -> Result<String, ApiError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| ApiError::Internal)
}

/// Whether `password` matches the PHC string `hash`.
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Prefix of session tokens (from `POST /v1/login`).
pub const SESSION_PREFIX: &str = "pws_";
/// Prefix of device tokens (from `POST /v1/devices`).
pub const DEVICE_PREFIX: &str = "pwd_";

/// A new random token (256 bits, hex) with `prefix`.
pub fn new_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    format!("{prefix}{}", hex::encode(bytes))
}

/// What is stored for a token: its SHA-256, hex. Tokens are random, so a fast hash suffices.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user_id: i64,
    pub username: String,
    pub role: Role,
    pub enhanced_queries: bool,
    /// Set when the caller used a device token.
    pub device_id: Option<i64>,
    /// Set when the caller used a login session token.
    pub session_id: Option<i64>,
}

/// The routes a device token may call (method, route as registered in `app()`): device work.
/// Every other route refuses device tokens before its body is read; the OpenAPI document's
/// `x-platewatch-token` says the same (a test keeps them equal).
pub const DEVICE_ROUTES: [(&str, &str); 10] = [
    ("GET", "/v1/rules"),
    ("GET", "/v1/reason-codes"),
    ("POST", "/v1/devices/renew"),
    ("POST", "/v1/encounters"),
    ("POST", "/v1/sessions"),
    ("POST", "/v1/sessions/{id}/end"),
    ("GET", "/v1/hotlists"),
    ("GET", "/v1/hotlists/key"),
    ("GET", "/v1/hotlists/{name}/snapshot"),
    ("GET", "/v1/hotlists/{name}/delta"),
];

/// Whether a device token may call `method` on the registered route `route`.
pub fn device_route(method: &str, route: &str) -> bool {
    DEVICE_ROUTES
        .iter()
        .any(|(m, r)| *m == method && *r == route)
}

/// Why a device token is refused outside device work.
pub const DEVICE_SCOPE: &str = "a device token may only upload encounters, sync hot lists and \
     run scanning sessions; sign in for this";

impl Principal {
    /// `Forbidden` unless the caller used a login session token and its role is one of
    /// `roles`. Device tokens are refused: see [`Principal::require_device_work`].
    pub fn require(&self, roles: &[Role]) -> Result<(), ApiError> {
        if self.device_id.is_some() {
            return Err(ApiError::Forbidden(DEVICE_SCOPE.into()));
        }
        self.require_role(roles)
    }

    /// For device work (upload, hot list sync, reason codes, scanning sessions): `Forbidden`
    /// unless the caller's role is one of `roles`, with a session or a device token.
    pub fn require_device_work(&self, roles: &[Role]) -> Result<(), ApiError> {
        self.require_role(roles)
    }

    fn require_role(&self, roles: &[Role]) -> Result<(), ApiError> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "role {} may not do this",
                self.role.as_str()
            )))
        }
    }
}

/// The bearer token of a request's `Authorization` header.
pub fn bearer(headers: &axum::http::HeaderMap) -> Result<&str, ApiError> {
    let header = headers
        .get(AUTHORIZATION)
        .ok_or(ApiError::Unauthorized("missing bearer token"))?;
    header
        .to_str()
        .ok()
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or(ApiError::Unauthorized("malformed Authorization header"))
}

async fn authenticate(
    state: &AppState,
    parts: &Parts,
    check_rules: bool,
) -> Result<Principal, ApiError> {
    let token = bearer(&parts.headers)?;
    let hash = token_hash(token);
    let now = crate::now_ms();
    let refused = ApiError::Unauthorized("invalid, expired or revoked token");
    let (user, device_id, session_id): (UserRow, Option<i64>, Option<i64>) =
        if token.starts_with(SESSION_PREFIX) {
            let (session, user) = state
                .repo
                .user_by_session(&hash, now)
                .await?
                .ok_or(refused)?;
            (user, None, Some(session))
        } else if token.starts_with(DEVICE_PREFIX) {
            let (device, user) = state
                .repo
                .user_by_device(&hash, now)
                .await?
                .ok_or(refused)?;
            let route = parts
                .extensions
                .get::<axum::extract::MatchedPath>()
                .map(|p| p.as_str());
            if !route.is_some_and(|r| device_route(parts.method.as_str(), r)) {
                // A device token used beyond device work: refused before the body is read,
                // and audited (a stolen token probing the API leaves a trace).
                let event = crate::audit::AuditEvent {
                    user_id: Some(user.id),
                    username: Some(user.username.clone()),
                    action: "token.scope",
                    outcome: "denied",
                    reason: Some("device token outside device work".into()),
                    criteria: serde_json::json!({
                        "device_id": device,
                        "method": parts.method.as_str(),
                        "route": route,
                    }),
                    ..crate::audit::AuditEvent::default()
                };
                state.repo.append_audit(event, now).await?;
                return Err(ApiError::Forbidden(DEVICE_SCOPE.into()));
            }
            (user, Some(device), None)
        } else {
            return Err(ApiError::Unauthorized("invalid, expired or revoked token"));
        };
    if check_rules {
        if let Some((version, text)) = state.repo.current_rules().await? {
            if user.rules_acked_version != Some(version) {
                return Err(ApiError::RulesNotAcknowledged { version, text });
            }
        }
    }
    Ok(Principal {
        user_id: user.id,
        username: user.username,
        role: user.role,
        enhanced_queries: user.enhanced_queries,
        device_id,
        session_id,
    })
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    /// A valid token whose user has acknowledged the current rules of behaviour.
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        authenticate(state, parts, true).await
    }
}

/// A valid token, whether or not its user has acknowledged the current rules (only for reading
/// the rules themselves).
#[derive(Debug, Clone)]
pub struct AnyRulesPrincipal(pub Principal);

impl FromRequestParts<AppState> for AnyRulesPrincipal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        authenticate(state, parts, false).await.map(Self)
    }
}

/// The client's IP address, when served with connect info (login throttling counts by it).
#[derive(Debug, Clone, Copy, Default)]
pub struct PeerAddr(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for PeerAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .extensions
                .get::<ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

/// The client's address (when served with connect info) and user agent, for the audit log.
#[derive(Debug, Clone, Default)]
pub struct Client(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let addr = parts
            .extensions
            .get::<ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip().to_string());
        let agent = parts
            .headers
            .get(USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(200).collect::<String>());
        Ok(Self(match (addr, agent) {
            (None, None) => None,
            (a, b) => Some(
                format!(
                    "{} {}",
                    a.unwrap_or_else(|| "-".into()),
                    b.unwrap_or_default()
                )
                .trim_end()
                .to_string(),
            ),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_roundtrip_is_argon2id() {
        let h = hash_password("correct horse battery").expect("hash");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("wrong", &h));
        assert!(!verify_password("x", "not a phc string"));
    }

    #[test]
    fn tokens_are_random_and_hashed() {
        let a = new_token(DEVICE_PREFIX);
        let b = new_token(DEVICE_PREFIX);
        assert_ne!(a, b);
        assert_eq!(a.len(), 4 + 64);
        assert_eq!(token_hash(&a).len(), 64);
        assert_ne!(token_hash(&a), a);
    }

    #[test]
    fn roles_roundtrip() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("root"), None);
    }
}
