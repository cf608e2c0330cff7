//! The one HTTP error type: each variant has a status code and a JSON body with a reason.
//! Database errors become 500s without their message; no body ever carries plate text.

use axum::Json;
use axum::body::Bytes;
use axum::extract::FromRequest;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::json;

/// An error answered to the client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No, an unknown, an expired or a revoked bearer token; or a wrong password.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// Authenticated, but the role or permission does not allow this.
    #[error("{0}")]
    Forbidden(String),
    /// The current rules of behaviour have not been acknowledged by this user.
    #[error("the current rules of behaviour must be acknowledged")]
    RulesNotAcknowledged { version: i64, text: String },
    #[error("{0}")]
    NotFound(&'static str),
    /// Malformed, mistyped or invalid input.
    #[error("{0}")]
    BadRequest(String),
    /// A uniqueness or other constraint was violated.
    #[error("{0}")]
    Conflict(String),
    #[error("request body too large")]
    PayloadTooLarge,
    /// Too many failed attempts: try again after this many seconds (`Retry-After`).
    #[error("too many failed attempts; try again in {0} s")]
    TooManyRequests(u64),
    /// Anything else; details are logged (never plate text), not answered.
    #[error("internal error")]
    Internal,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) | Self::RulesNotAcknowledged { .. } => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = match &self {
            Self::RulesNotAcknowledged { version, text } => json!({
                "error": self.to_string(),
                "code": "rules_not_acknowledged",
                "rules_version": version,
                "rules_text": text,
            }),
            Self::TooManyRequests(secs) => json!({
                "error": self.to_string(),
                "code": "too_many_attempts",
                "retry_after_secs": secs,
            }),
            _ => json!({ "error": self.to_string() }),
        };
        let mut response = (status, Json(body)).into_response();
        if let Self::TooManyRequests(secs) = self {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e {
            if db.is_unique_violation() {
                return Self::Conflict("already exists".into());
            }
            if db.is_foreign_key_violation() || db.is_check_violation() {
                return Self::BadRequest(
                    "refers to something that does not exist or is invalid".into(),
                );
            }
        }
        // Only the kind and SQLSTATE are logged: driver messages can quote values.
        let code = match &e {
            sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()).unwrap_or_default(),
            _ => String::new(),
        };
        tracing::error!(kind = error_kind(&e), code, "database error");
        Self::Internal
    }
}

fn error_kind(e: &sqlx::Error) -> &'static str {
    match e {
        sqlx::Error::Database(_) => "database",
        sqlx::Error::PoolTimedOut => "pool timed out",
        sqlx::Error::PoolClosed => "pool closed",
        sqlx::Error::Io(_) => "io",
        sqlx::Error::RowNotFound => "row not found",
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => "decode",
        _ => "other",
    }
}

/// Replaces the contents of every double-quoted or backtick-quoted value in a serde message
/// with `…`: `invalid type: string "ABC123", expected f64` must not echo the plate back, nor
/// ``invalid type: integer `7654321` `` a numeric plate or password. Field names serde quotes
/// (`` unknown field `foo` ``) are kept: they are the schema's, not the caller's values.
pub fn redact_quoted(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut inside: Option<char> = None;
    let mut value = String::new();
    for c in msg.chars() {
        match inside {
            None if c == '"' || c == '`' => {
                inside = Some(c);
                out.push(c);
            }
            None => out.push(c),
            Some(q) if c == q => {
                let keep = q == '`' && is_field_context(&out);
                out.push_str(if keep { &value } else { "…" });
                out.push(c);
                value.clear();
                inside = None;
            }
            Some(_) => value.push(c),
        }
    }
    out
}

/// Whether the backtick-quoted text that follows `before` names a field or variant of the
/// schema (`unknown field `, `missing field `, `expected one of `), not a value.
fn is_field_context(before: &str) -> bool {
    let b = before.strip_suffix('`').unwrap_or(before);
    [
        "unknown field ",
        "missing field ",
        "duplicate field ",
        "expected one of ",
        "`, ",
    ]
    .iter()
    .any(|p| b.ends_with(p))
}

/// `axum::Json` whose rejections become [`ApiError`]s (4xx with a redacted reason). As JSON
/// Schema (and so the OpenAPI document) counts `5.0` as an integer, a number with no fraction
/// is read as an integer where the request type wants one.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        if !json_content_type(req.headers()) {
            return Err(ApiError::BadRequest(
                "expected a request with `Content-Type: application/json`".into(),
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|r| {
            if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::BadRequest("could not read the request body".into())
            }
        })?;
        match Json::<T>::from_bytes(&bytes) {
            Ok(Json(v)) => Ok(Self(v)),
            Err(rejection @ JsonRejection::JsonDataError(_)) => {
                let retry = serde_json::from_slice::<serde_json::Value>(&bytes)
                    .ok()
                    .and_then(|mut v| integral_numbers_as_integers(&mut v).then_some(v))
                    .and_then(|v| serde_json::from_value::<T>(v).ok());
                retry.map(Self).ok_or_else(|| json_rejection(&rejection))
            }
            Err(rejection) => Err(json_rejection(&rejection)),
        }
    }
}

/// `application/json` or `application/…+json`, as `axum::Json` accepts.
fn json_content_type(headers: &axum::http::HeaderMap) -> bool {
    let Some(v) = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mime = v
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

/// Rewrites every number of `v` that has no fraction and fits an i64 (`5.0`, `-2e3`) as that
/// integer; true when it changed one.
fn integral_numbers_as_integers(v: &mut serde_json::Value) -> bool {
    use serde_json::Value;
    match v {
        Value::Number(n) if !n.is_i64() && !n.is_u64() => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f >= i64::MIN as f64 && f < i64::MAX as f64 => {
                *v = Value::from(f as i64);
                true
            }
            _ => false,
        },
        Value::Array(items) => items
            .iter_mut()
            .fold(false, |c, x| integral_numbers_as_integers(x) | c),
        Value::Object(map) => map
            .values_mut()
            .fold(false, |c, x| integral_numbers_as_integers(x) | c),
        _ => false,
    }
}

fn json_rejection(rejection: &JsonRejection) -> ApiError {
    let status = rejection.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::PayloadTooLarge;
    }
    let reason = match rejection {
        JsonRejection::MissingJsonContentType(_) => {
            "expected a request with `Content-Type: application/json`".to_string()
        }
        JsonRejection::JsonSyntaxError(_) => {
            format!("malformed JSON: {}", redact_quoted(&rejection.body_text()))
        }
        JsonRejection::JsonDataError(_) => {
            format!(
                "invalid JSON fields: {}",
                redact_quoted(&rejection.body_text())
            )
        }
        _ => "could not read the request body".to_string(),
    };
    ApiError::BadRequest(reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_without_a_fraction_become_integers() {
        let mut v = json!({ "a": 5.0, "b": [-2e3, 1.5, 7], "c": { "d": 1e300 }, "e": "5.0" });
        assert!(integral_numbers_as_integers(&mut v));
        assert_eq!(
            v,
            json!({ "a": 5, "b": [-2000, 1.5, 7], "c": { "d": 1e300 }, "e": "5.0" })
        );
        let mut plain = json!({ "a": 5, "b": 1.5 });
        assert!(!integral_numbers_as_integers(&mut plain));
    }

    #[test]
    fn redacts_quoted_values() {
        assert_eq!(
            redact_quoted(r#"invalid type: string "ABC123", expected f64 at line 1"#),
            r#"invalid type: string "…", expected f64 at line 1"#
        );
        assert_eq!(redact_quoted("no quotes"), "no quotes");
        assert_eq!(
            redact_quoted("invalid type: integer `7654321`, expected a string at line 1"),
            "invalid type: integer `…`, expected a string at line 1"
        );
        assert_eq!(
            redact_quoted("unknown field `plat`, expected one of `id`, `plate`"),
            "unknown field `plat`, expected one of `id`, `plate`"
        );
        assert_eq!(
            redact_quoted("invalid value: integer `-5`, expected u32"),
            "invalid value: integer `…`, expected u32"
        );
        assert_eq!(redact_quoted(r#"open "ABC"#), r#"open ""#);
    }
}
