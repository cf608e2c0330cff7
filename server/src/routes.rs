//! Identity endpoints: login (with the rules-of-behaviour acknowledgement), device
//! registration and revocation, the rules text, the configured reason codes, user creation and
//! audit chain verification. Every change is appended to the audit log.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::audit::{AuditEvent, ChainStatus};
use crate::auth::{
    AnyRulesPrincipal, Client, DEVICE_PREFIX, Principal, Role, SESSION_PREFIX, hash_password,
    new_token, token_hash, verify_password,
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
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Json<LoginResponse>, ApiError> {
    if req.username.len() > 64 || req.password.len() > 1024 {
        return Err(ApiError::Unauthorized("invalid username or password"));
    }
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

#[derive(Debug, Deserialize)]
pub struct RegisterDevice {
    pub name: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct DeviceToken {
    pub id: i64,
    pub name: String,
    /// Shown once; only its hash is stored.
    pub token: String,
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
    let id = state
        .repo
        .create_device(principal.user_id, &req.name, &token_hash(&token), now_ms())
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
        }),
    ))
}

/// `DELETE /v1/devices/{id}` (admin): revokes a device token at once.
pub async fn revoke_device(
    State(state): State<AppState>,
    principal: Principal,
    Client(client): Client,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    principal.require(&[Role::Admin])?;
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::BadRequest("device id must be an integer".into()))?;
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
    principal.require(&Role::ALL)?;
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
    if req.password.chars().count() < MIN_PASSWORD_CHARS || req.password.len() > 1024 {
        return Err(ApiError::BadRequest(format!(
            "password must be {MIN_PASSWORD_CHARS}..=1024 characters"
        )));
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
