//! Errors as HTTP answers: `{"error": code, "message": text}`, plus `"reason"` for expired
//! and revoked sessions.

use ::axum::Json;
use ::axum::extract::rejection::JsonRejection;
use ::axum::extract::{FromRequest, Request};
use ::axum::http::header::WWW_AUTHENTICATE;
use ::axum::http::{HeaderValue, StatusCode};
use ::axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::Error;

/// An error answer in the crate's JSON shape: `{"error": code, "message": text}`, and
/// `"reason"` where there is one (why a session expired or was revoked). A 401 answer also
/// carries `WWW-Authenticate: Bearer`.
///
/// Every [`Error`] converts into one ([`Error::code`], [`Error::http_status`]); a store failure
/// is answered 503 `store_unavailable`, never 401 or a success, and is logged (with the
/// `tracing` feature) without anything a client sent. Applications make their own with
/// [`ApiError::new`]:
///
/// ```
/// use sessionkit::axum::ApiError;
/// use axum::http::StatusCode;
///
/// let e = ApiError::new(StatusCode::UNAUTHORIZED, "invalid_credentials", "wrong user name or password");
/// assert_eq!(e.code(), "invalid_credentials");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    reason: Option<&'static str>,
}

impl ApiError {
    /// An answer with `status`, the machine-readable `code` and a human-readable `message`.
    /// The message is sent to the client: never put a secret in it.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), reason: None }
    }

    /// The same answer with a `"reason"` field.
    #[must_use]
    pub fn with_reason(mut self, reason: &'static str) -> Self {
        self.reason = Some(reason);
        self
    }

    /// 401 `invalid_session`: no credential, or one that names no session.
    pub fn invalid_session(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_session", message)
    }

    /// 403 `csrf_failed`: a cookie-authenticated request that changes state came from another
    /// origin or without the session's CSRF token.
    pub fn csrf(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "csrf_failed", message)
    }

    /// 403 `forbidden`: authenticated, but not allowed (an admin guard, say).
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 400 `invalid_request`.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 500 `internal_error`. The message goes to the client: keep details for the logs.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", message)
    }

    /// The HTTP status.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The `"error"` code.
    #[must_use]
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The `"message"`.
    #[must_use]
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The `"reason"`, if any.
    #[must_use]
    pub fn reason(&self) -> Option<&'static str> {
        self.reason
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let message = match &e {
            Error::MalformedToken => "malformed session token".to_owned(),
            Error::UnknownSession => "unknown session".to_owned(),
            Error::LimitReached { limit } => {
                format!("this user already has the maximum of {limit} sessions; log out of one first")
            }
            Error::RefreshTokenReused => {
                "this refresh token was already used; the session has been revoked, log in again".to_owned()
            }
            Error::InvalidRefreshToken => "malformed or unknown refresh token, or its session has ended".to_owned(),
            Error::AccessToken(crate::token::AccessTokenError::Expired) => {
                "access token expired; get a new one with the refresh token".to_owned()
            }
            Error::Store(_) => {
                log_failure(&e);
                "the session store is unavailable".to_owned()
            }
            Error::NoSigningKeys | Error::Config(_) | Error::Random(_) => {
                log_failure(&e);
                "internal error".to_owned()
            }
            // The rest describe themselves without anything the client sent.
            other => other.to_string(),
        };
        let answer = Self::new(status, e.code(), message);
        match e.reason() {
            Some(reason) => answer.with_reason(reason),
            None => answer,
        }
    }
}

/// Logs a server-side failure (the error chain holds no token).
#[cfg_attr(not(feature = "tracing"), expect(unused_variables, reason = "logged only with the tracing feature"))]
fn log_failure(e: &Error) {
    #[cfg(feature = "tracing")]
    {
        let source = std::error::Error::source(e).map(ToString::to_string);
        tracing::error!(target: "sessionkit::axum", error = %e, source, "session operation failed");
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = Map::new();
        body.insert("error".to_owned(), Value::from(self.code));
        body.insert("message".to_owned(), Value::from(self.message));
        if let Some(reason) = self.reason {
            body.insert("reason".to_owned(), Value::from(reason));
        }
        let mut response = (self.status, Json(Value::Object(body))).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// Handlers may return `Result<_, sessionkit::Error>`: the error answers as its [`ApiError`].
impl IntoResponse for Error {
    fn into_response(self) -> Response {
        ApiError::from(self).into_response()
    }
}

/// `axum::Json<T>`, but a rejection (malformed JSON, a wrong `Content-Type`, a body over the
/// limit) answers in the crate's JSON error shape: 400 `invalid_request`, 415
/// `unsupported_media_type`, 413 `payload_too_large`.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, St: Send + Sync> FromRequest<St> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &St) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(&rejection)),
        }
    }
}

fn json_rejection(rejection: &JsonRejection) -> ApiError {
    match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "request body is too large")
        }
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "expected a request body with `Content-Type: application/json`",
        ),
        _ => ApiError::invalid_request(rejection.body_text()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::error::{ExpiryReason, RevocationReason, StoreError};
    use crate::token::AccessTokenError;

    #[test]
    fn every_error_has_its_status_and_code() {
        let cases: Vec<(Error, u16, &str, Option<&str>)> = vec![
            (Error::MalformedToken, 401, "invalid_session", None),
            (Error::UnknownSession, 401, "invalid_session", None),
            (Error::Expired { reason: ExpiryReason::Idle }, 401, "session_expired", Some("idle")),
            (Error::Expired { reason: ExpiryReason::Absolute }, 401, "session_expired", Some("absolute")),
            (Error::Revoked { reason: RevocationReason::Evicted }, 401, "session_revoked", Some("evicted")),
            (Error::AccessToken(AccessTokenError::Expired), 401, "access_token_expired", None),
            (Error::AccessToken(AccessTokenError::BadSignature), 401, "invalid_access_token", None),
            (Error::InvalidRefreshToken, 401, "invalid_refresh_token", None),
            (Error::RefreshTokenReused, 401, "refresh_token_reused", None),
            (Error::LimitReached { limit: 3 }, 409, "session_limit_reached", None),
            (Error::DataTooLarge { size: 9, limit: 1 }, 413, "session_data_too_large", None),
            (Error::DataTooDeep { limit: 32 }, 413, "session_data_too_deep", None),
            (Error::Store(StoreError::Contended), 503, "store_unavailable", None),
            (Error::Store(StoreError::Corrupt("x".into())), 503, "store_unavailable", None),
            (Error::NoSigningKeys, 500, "internal_error", None),
        ];
        for (error, status, code, reason) in cases {
            assert_eq!(error.is_unauthenticated(), status == 401, "{error:?}");
            let api = ApiError::from(error);
            assert_eq!((api.status().as_u16(), api.code(), api.reason()), (status, code, reason));
            assert!(!api.message().is_empty());
        }
    }

    #[tokio::test]
    async fn answers_are_json_with_www_authenticate_on_401() {
        let response = Error::Revoked { reason: RevocationReason::Logout }.into_response();
        assert_eq!(response.status(), 401);
        assert_eq!(response.headers()[WWW_AUTHENTICATE], "Bearer");
        let body = ::axum::body::to_bytes(response.into_body(), 1 << 16).await.unwrap();
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"], "session_revoked");
        assert_eq!(body["reason"], "logout");
        assert_eq!(body["message"], "session revoked (logout)");
        let store = Error::Store(StoreError::Contended).into_response();
        assert_eq!(store.status(), 503);
        assert!(store.headers().get(WWW_AUTHENTICATE).is_none());
    }
}
