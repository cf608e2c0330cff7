//! Identity endpoints: login (throttled, with the rules-of-behaviour acknowledgement) and
//! logout, device registration, renewal and revocation, the rules text, the configured reason
//! codes, user creation, disabling and session revocation, and audit chain verification.
//! Every change is appended to the audit log.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::audit::{AuditEvent, ChainStatus};
use crate::auth::{
    AnyRulesPrincipal, Client, DEVICE_PREFIX, PeerAddr, Principal, Role, SESSION_PREFIX,
    hash_password, new_token, token_hash, verify_password,
};
use crate::db::Revoked;
use crate::error::{ApiError, ApiJson};
use crate::{AppState, now_ms};

/// Longest accepted rules-of-behaviour text, in bytes.
pub const MAX_RULES_BYTES: usize = 100_000;
/// Shortest accepted password, in characters.
pub const MIN_PASSWORD_CHARS: usize = 12;

#[derive(Debug, Deserialize)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
    /// The rules-of-behaviour version the user has read and accepts.
    #[serde(default)]
    pub acknowledge_rules_version: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct LoginResponse {
    pub token: String,
    pub expires_at_ms: i64,
    pub role: Role,
    pub enhanced_queries: bool,
    pub rules_version: Option<i64>,
}

/// A hash verified when the username is unknown, so both cases take as long.
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password("not a real password").unwrap_or_default())
}

async fn audit(state: &AppState, event: AuditEvent) -> Result<(), ApiError> {
    state.repo.append_audit(event, now_ms()).await?;
    Ok(())
}

/// `POST /v1/login`: username + password (+ the acknowledged rules version) → session token.
pub async fn login(
    State(state): State<AppState>,
    Client(client): Client,
    PeerAddr(peer): PeerAddr,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Json<LoginResponse>, ApiError> {
    if req.username.len() > 64 || req.password.len() > 1024 {
        return Err(ApiError::Unauthorized("invalid username or password"));
    }
    // Throttled before any hashing: a locked user or address costs no Argon2 time. Refusals
    // are not audited one by one (a flood would fill the log); the lock's first failure is.
    let addr = peer.map(|a| a.to_string());
    let attempt = state
        .throttle
        .begin(&req.username, addr.as_deref(), now_ms())
        .map_err(ApiError::TooManyRequests)?;
    let user = state.repo.user_by_name(&req.username).await?;
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    let password = req.password.clone();
    let ok = tokio::task::spawn_blocking(move || match hash {
        Some(h) => verify_password(&password, &h),
        None => verify_password(&password, dummy_hash()),
    })
    .await
    .map_err(|_| ApiError::Internal)?;
    let event = |outcome, reason: Option<&str>, user_id| AuditEvent {
        user_id,
        username: Some(req.username.clone()),
        action: "login",
        outcome,
        reason: reason.map(str::to_string),
        client: client.clone(),
        ..AuditEvent::default()
    };
    let user = match user {
        Some(u) if ok => u,
        _ => {
            audit(&state, event("denied", Some("bad credentials"), None)).await?;
            return Err(ApiError::Unauthorized("invalid username or password"));
        }
    };
    state.throttle.succeeded(attempt);
    if user.disabled_at_ms.is_some() {
        audit(
            &state,
            event("denied", Some("user disabled"), Some(user.id)),
        )
        .await?;
        return Err(ApiError::Forbidden("this account is disabled".into()));
    }
    let rules = state.repo.current_rules().await?;
    if let Some((version, text)) = rules.as_ref() {
        if req.acknowledge_rules_version != Some(*version) {
            audit(
                &state,
                event("denied", Some("rules not acknowledged"), Some(user.id)),
            )
            .await?;
            return Err(ApiError::RulesNotAcknowledged {
                version: *version,
                text: text.clone(),
            });
        }
        state.repo.set_rules_acked(user.id, *version).await?;
    }
    let token = new_token(SESSION_PREFIX);
    let now = now_ms();
    let expires_at_ms = now + state.config.session_ttl_ms;
    state
        .repo
        .create_session(user.id, &token_hash(&token), now, expires_at_ms)
        .await?;
    let mut ok_event = event("ok", None, Some(user.id));
    ok_event.criteria = json!({ "rules_version": rules.as_ref().map(|r| r.0) });
    audit(&state, ok_event).await?;
    Ok(Json(LoginResponse {
        token,
        expires_at_ms,
        role: user.role,
        enhanced_queries: user.enhanced_queries,
        rules_version: rules.map(|r| r.0),
    }))
}

/// `POST /v1/logout` (login session token): revokes that session at once.
pub async fn logout(
    State(state): State<AppState>,
    principal: AnyRulesPrincipal,
    Client(client): Client,
) -> Result<StatusCode, ApiError> {
    let principal = principal.0;
    let session = principal.session_id.ok_or_else(|| {
        ApiError::Forbidden("logout ends a login session; revoke a device instead".into())
    })?;
    state.repo.revoke_session(session, now_ms()).await?;
    audit(
        &state,
        AuditEvent {
            user_id: Some(principal.user_id),
            username: Some(principal.username),
            action: "logout",
            outcome: "ok",
            client,
            ..AuditEvent::default()
        },
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterDevice {
    pub name: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct DeviceToken {
    pub id: i64,
    pub name: String,
    /// Shown once; only its hash is stored.
    pub token: String,
    /// When the token stops working unless renewed (`POST /v1/devices/renew`).
    pub expires_at_ms: i64,
}

fn check_label(field: &str, s: &str, max: usize) -> Result<(), ApiError> {
    let n = s.chars().count();
    if n == 0 || n > max || s.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(format!(
            "{field} must be 1..={max} characters without control characters"
        )));
    }
    Ok(())
}

/// `POST /v1/devices`: registers a device for the logged-in user (session token) and returns
/// its bearer token.
pub async fn register_device(
    State(state): State<AppState>,
    principal: Principal,
    Client(client): Client,
    ApiJson(req): ApiJson<RegisterDevice>,
) -> Result<(StatusCode, Json<DeviceToken>), ApiError> {
    principal.require(&[Role::Officer, Role::Analyst, Role::Admin])?;
    if principal.device_id.is_some() {
        return Err(ApiError::Forbidden(
            "devices are registered from a login session".into(),
        ));
    }
    check_label("name", &req.name, 100)?;
    let token = new_token(DEVICE_PREFIX);
    let now = now_ms();
    let expires_at_ms = now.saturating_add(state.config.device_ttl_ms);
    let id = state
        .repo
        .create_device(
            principal.user_id,
            &req.name,
            &token_hash(&token),
            now,
            expires_at_ms,
        )
        .await?;
    audit(
        &state,
        AuditEvent {
            user_id: Some(principal.user_id),
            username: Some(principal.username),
            action: "device.register",
            outcome: "ok",
            criteria: json!({ "device_id": id, "name": req.name }),
            client,
            ..AuditEvent::default()
        },
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(DeviceToken {
            id,
            name: req.name,
            token,
            expires_at_ms,
        }),
    ))
}

#[derive(Debug, Serialize, Deserialize)]
pub struct RenewedToken {
    pub id: i64,
    /// The device's new token; the one used for this call stays valid for the renewal grace.
    pub token: String,
    pub expires_at_ms: i64,
}

/// `POST /v1/devices/renew` (device token): rotates the device's token. Sync calls it when
/// half of the token's lifetime is gone.
pub async fn renew_device(
    State(state): State<AppState>,
    principal: AnyRulesPrincipal,
    Client(client): Client,
    headers: axum::http::HeaderMap,
) -> Result<Json<RenewedToken>, ApiError> {
    let principal = principal.0;
    let device = principal.device_id.ok_or_else(|| {
        ApiError::Forbidden("only a device token can be renewed; sign in again instead".into())
    })?;
    let used = crate::auth::bearer(&headers)?;
    let token = new_token(DEVICE_PREFIX);
    let now = now_ms();
    let expires_at_ms = now.saturating_add(state.config.device_ttl_ms);
    let renewed = state
        .repo
        .renew_device(
            device,
            &token_hash(used),
            &token_hash(&token),
            expires_at_ms,
            now.saturating_add(state.config.device_renew_grace_ms),
        )
        .await?;
    if !renewed {
        return Err(ApiError::Unauthorized("invalid, expired or revoked token"));
    }
    audit(
        &state,
        AuditEvent {
            user_id: Some(principal.user_id),
            username: Some(principal.username),
            action: "device.renew",
            outcome: "ok",
            criteria: json!({ "device_id": device, "expires_at_ms": expires_at_ms }),
            client,
            ..AuditEvent::default()
        },
    )
    .await?;
    Ok(Json(RenewedToken {
        id: device,
        token,
        expires_at_ms,
    }))
}

/// `DELETE /v1/devices/{id}` (admin): revokes a device token at once.
pub async fn revoke_device(
    State(state): State<AppState>,
    principal: Principal,
    Client(client): Client,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    principal.require(&[Role::Admin])?;
    let id = integer_id("device", &id)?;
    let outcome = state.repo.revoke_device(id, now_ms()).await?;
    audit(
        &state,
        AuditEvent {
            user_id: Some(principal.user_id),
            username: Some(principal.username),
            action: "device.revoke",
            outcome: if outcome == Revoked::NotFound {
                "failed"
            } else {
                "ok"
            },
            criteria: json!({ "device_id": id, "already_revoked": outcome == Revoked::Already }),
            client,
            ..AuditEvent::default()
        },
    )
    .await?;
    match outcome {
        Revoked::Now | Revoked::Already => Ok(StatusCode::NO_CONTENT),
        Revoked::NotFound => Err(ApiError::NotFound("no such device")),
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Rules {
    pub version: i64,
    pub text: String,
}

#[derive(Debug, Deserialize)]
pub struct SetRules {
    pub text: String,
}

/// `GET /v1/rules`: the current rules of behaviour (any authenticated user, acknowledged or not).
pub async fn get_rules(
    State(state): State<AppState>,
    _principal: AnyRulesPrincipal,
) -> Result<Json<Rules>, ApiError> {
    let (version, text) = state
        .repo
        .current_rules()
        .await?
        .ok_or(ApiError::NotFound("no rules of behaviour set yet"))?;
    Ok(Json(Rules { version, text }))
}

/// `PUT /v1/rules` (admin): a new version of the rules; every user must acknowledge it at their
/// next login, and tokens of users who have not are refused until then.
pub async fn set_rules(
    State(state): State<AppState>,
    principal: Principal,
    Client(client): Client,
    ApiJson(req): ApiJson<SetRules>,
) -> Result<Json<Rules>, ApiError> {
    principal.require(&[Role::Admin])?;
    if req.text.trim().is_empty() || req.text.len() > MAX_RULES_BYTES {
        return Err(ApiError::BadRequest(format!(
            "text must be 1..={MAX_RULES_BYTES} bytes"
        )));
    }
    let version = state
        .repo
        .add_rules(&req.text, principal.user_id, now_ms())
        .await?;
    audit(
        &state,
        AuditEvent {
            user_id: Some(principal.user_id),
            username: Some(principal.username),
            action: "rules.set",
            outcome: "ok",
            criteria: json!({ "version": version, "bytes": req.text.len() }),
            client,
            ..AuditEvent::default()
        },
    )
    .await?;
    Ok(Json(Rules {
        version,
        text: req.text,
    }))
}

/// The reason codes a scanning session or a query may give, in the configured order.
#[derive(Debug, Serialize, Deserialize)]
pub struct ReasonCodes {
    pub reason_codes: Vec<String>,
}

/// `GET /v1/reason-codes` (any authenticated user, session or device token): the configured
/// reason codes, in order, so a device can check a code before it starts a session.
pub async fn reason_codes(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<ReasonCodes>, ApiError> {
    principal.require_device_work(&Role::ALL)?;
    Ok(Json(ReasonCodes {
        reason_codes: state.config.reason_codes.clone(),
    }))
}

#[derive(Debug, Deserialize)]
pub struct CreateUser {
    pub username: String,
    pub password: String,
    pub role: String,
    #[serde(default)]
    pub enhanced_queries: bool,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct UserCreated {
    pub id: i64,
    pub username: String,
    pub role: Role,
    pub enhanced_queries: bool,
}

/// Usernames: 3..=64 of `a-z A-Z 0-9 . _ - @`.
pub fn valid_username(s: &str) -> bool {
    (3..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'))
}

/// Creates a user (shared by `POST /v1/users` and the bootstrap admin).
pub async fn create_user(state: &AppState, req: &CreateUser) -> Result<(i64, Role), ApiError> {
    if !valid_username(&req.username) {
        return Err(ApiError::BadRequest(
            "username must be 3..=64 characters of a-z, A-Z, 0-9, '.', '_', '-', '@'".into(),
        ));
    }
    let role = Role::parse(&req.role).ok_or_else(|| {
        ApiError::BadRequest("role must be officer, analyst, admin or auditor".into())
    })?;
    if req.password.chars().count() < MIN_PASSWORD_CHARS || req.password.chars().count() > 1024 {
        return Err(ApiError::BadRequest(format!(
            "password must be {MIN_PASSWORD_CHARS}..=1024 characters"
        )));
    }
    let distinct: std::collections::HashSet<char> = req.password.chars().collect();
    if req.password.trim().chars().count() < MIN_PASSWORD_CHARS || distinct.len() < 4 {
        return Err(ApiError::BadRequest(format!(
            "password must hold {MIN_PASSWORD_CHARS} characters besides leading and trailing \
             spaces, and at least 4 different ones"
        )));
    }
    if state.repo.username_taken_nocase(&req.username).await? {
        return Err(ApiError::Conflict(
            "username already exists (usernames are compared regardless of case)".into(),
        ));
    }
    let password = req.password.clone();
    let hash = tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|_| ApiError::Internal)??;
    let id = state
        .repo
        .create_user(&req.username, &hash, role, req.enhanced_queries, now_ms())
        .await
        .map_err(|e| match ApiError::from(e) {
            ApiError::Conflict(_) => ApiError::Conflict("username already exists".into()),
            other => other,
        })?;
    Ok((id, role))
}

/// `POST /v1/users` (admin).
pub async fn post_user(
    State(state): State<AppState>,
    principal: Principal,
    Client(client): Client,
    ApiJson(req): ApiJson<CreateUser>,
) -> Result<(StatusCode, Json<UserCreated>), ApiError> {
    principal.require(&[Role::Admin])?;
    let (id, role) = create_user(&state, &req).await?;
    audit(
        &state,
        AuditEvent {
            user_id: Some(principal.user_id),
            username: Some(principal.username),
            action: "user.create",
            outcome: "ok",
            criteria: json!({
                "user_id": id,
                "username": req.username,
                "role": role.as_str(),
                "enhanced_queries": req.enhanced_queries,
            }),
            client,
            ..AuditEvent::default()
        },
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(UserCreated {
            id,
            username: req.username,
            role,
            enhanced_queries: req.enhanced_queries,
        }),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchUser {
    /// `true` disables the user (every token of theirs is refused at once); `false` enables.
    #[serde(default)]
    pub disabled: Option<bool>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct UserState {
    pub id: i64,
    pub username: String,
    pub role: Role,
    pub enhanced_queries: bool,
    pub disabled: bool,
}

/// A numeric id from a path: `what id must be an integer` (400) otherwise.
pub fn integer_id(what: &str, id: &str) -> Result<i64, ApiError> {
    id.parse()
        .map_err(|_| ApiError::BadRequest(format!("{what} id must be an integer")))
}

/// `PATCH /v1/users/{id}` (admin): disables or enables a user. An admin cannot disable
/// themselves (no one could sign in to undo it).
pub async fn patch_user(
    State(state): State<AppState>,
    principal: Principal,
    Client(client): Client,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<PatchUser>,
) -> Result<Json<UserState>, ApiError> {
    principal.require(&[Role::Admin])?;
    let id = integer_id("user", &id)?;
    let mut user = state
        .repo
        .user_by_id(id)
        .await?
        .ok_or(ApiError::NotFound("no such user"))?;
    if let Some(disabled) = req.disabled {
        if disabled && id == principal.user_id {
            return Err(ApiError::BadRequest(
                "an admin cannot disable themselves".into(),
            ));
        }
        let at = disabled.then(now_ms);
        if disabled != user.disabled_at_ms.is_some() {
            state.repo.set_user_disabled(id, at).await?;
            user.disabled_at_ms = at;
        }
        audit(
            &state,
            AuditEvent {
                user_id: Some(principal.user_id),
                username: Some(principal.username),
                action: if disabled {
                    "user.disable"
                } else {
                    "user.enable"
                },
                outcome: "ok",
                criteria: json!({ "user_id": id, "username": user.username }),
                client,
                ..AuditEvent::default()
            },
        )
        .await?;
    }
    Ok(Json(UserState {
        id,
        username: user.username,
        role: user.role,
        enhanced_queries: user.enhanced_queries,
        disabled: user.disabled_at_ms.is_some(),
    }))
}

#[derive(Debug, Serialize, Deserialize)]
pub struct SessionsRevoked {
    pub revoked: u64,
}

/// `POST /v1/users/{id}/revoke-sessions` (admin): ends every login session of the user at
/// once (their device tokens are revoked one by one, or all with `disabled`).
pub async fn revoke_user_sessions(
    State(state): State<AppState>,
    principal: Principal,
    Client(client): Client,
    Path(id): Path<String>,
) -> Result<Json<SessionsRevoked>, ApiError> {
    principal.require(&[Role::Admin])?;
    let id = integer_id("user", &id)?;
    if state.repo.user_by_id(id).await?.is_none() {
        return Err(ApiError::NotFound("no such user"));
    }
    let revoked = state.repo.revoke_user_sessions(id, now_ms()).await?;
    audit(
        &state,
        AuditEvent {
            user_id: Some(principal.user_id),
            username: Some(principal.username),
            action: "user.revoke_sessions",
            outcome: "ok",
            criteria: json!({ "user_id": id, "revoked": revoked }),
            result_count: i64::try_from(revoked).ok(),
            client,
            ..AuditEvent::default()
        },
    )
    .await?;
    Ok(Json(SessionsRevoked { revoked }))
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ChainReport {
    pub intact: bool,
    pub rows: u64,
    pub broken_at_seq: Option<i64>,
    pub problem: Option<String>,
}

/// `GET /v1/audit/verify` (auditor, admin): walks the audit chain.
pub async fn verify_audit(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<ChainReport>, ApiError> {
    principal.require(&[Role::Auditor, Role::Admin])?;
    Ok(Json(match state.repo.verify_chain().await? {
        ChainStatus::Intact { rows } => ChainReport {
            intact: true,
            rows,
            broken_at_seq: None,
            problem: None,
        },
        ChainStatus::Broken { seq, problem } => ChainReport {
            intact: false,
            rows: 0,
            broken_at_seq: Some(seq),
            problem: Some(problem.to_string()),
        },
    }))
}
