//! The answers of [`Auth`](super::Auth)'s operations: JSON bodies in the crate's contract and
//! the cookies they set or clear.

use ::axum::Json;
use ::axum::http::header::{CACHE_CONTROL, SET_COOKIE};
use ::axum::http::{HeaderValue, StatusCode};
use ::axum::response::{IntoResponse, IntoResponseParts, Response, ResponseParts};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::config::WebConfig;
use super::error::ApiError;
use crate::clock::Timestamp;
use crate::manager::{Created, Rotated, TokenPair};
use crate::session::{Session, SessionId};

/// `Set-Cookie` headers to add to an answer (as a part of a response tuple:
/// `(cookies, Json(body))`).
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct SetCookies(Vec<HeaderValue>);

impl SetCookies {
    /// The values that clear the session and the refresh-token cookies.
    pub fn cleared(web: &WebConfig) -> Self {
        let mut cookies = Self::default();
        cookies.push(web.session_cookie.clear());
        cookies.push(web.refresh_cookie.clear());
        cookies
    }

    /// Adds a `Set-Cookie` value made by a [`SessionCookie`](crate::SessionCookie).
    ///
    /// Such values are always valid header values: the cookie's name, path and domain are
    /// checked when it is built, and values are checked (or made by the crate: base64url and
    /// `.`), all visible ASCII. Should that ever fail, the cookie is left out (and logged with
    /// the `tracing` feature) rather than sent broken.
    pub fn push(&mut self, set_cookie: String) {
        if let Ok(value) = HeaderValue::try_from(set_cookie) {
            self.0.push(value);
        } else {
            debug_assert!(false, "a SessionCookie made an invalid header value");
            #[cfg(feature = "tracing")]
            tracing::error!(target: "sessionkit::axum", "a Set-Cookie value is not a valid header value");
        }
    }

    /// The values, in order.
    #[must_use]
    pub fn values(&self) -> &[HeaderValue] {
        &self.0
    }
}

impl IntoResponseParts for SetCookies {
    type Error = std::convert::Infallible;

    fn into_response_parts(self, mut res: ResponseParts) -> Result<ResponseParts, Self::Error> {
        for value in self.0 {
            res.headers_mut().append(SET_COOKIE, value);
        }
        Ok(res)
    }
}

impl IntoResponse for SetCookies {
    fn into_response(self) -> Response {
        (self, StatusCode::NO_CONTENT).into_response()
    }
}

/// An answer carrying tokens: never stored by a cache (RFC 6749 §5.1).
fn token_answer(cookies: SetCookies, body: Map<String, Value>) -> Response {
    let no_store = [(CACHE_CONTROL, HeaderValue::from_static("no-store"))];
    (cookies, no_store, Json(Value::Object(body))).into_response()
}

/// The refresh-token cookie's value: the session's id, a dot, the refresh token (both
/// base64url, which has no dot). The id lets a cookie-based refresh check, before spending the
/// token, that the cookie belongs to the session cookie's session.
pub(crate) fn refresh_cookie_value(session: &SessionId, refresh_token: &str) -> String {
    format!("{session}.{refresh_token}")
}

/// An RFC 3339 timestamp.
pub(crate) fn rfc3339(t: OffsetDateTime) -> Result<String, ApiError> {
    t.format(&Rfc3339).map_err(|_| ApiError::internal("a timestamp cannot be formatted"))
}

/// The OAuth-style fields of a token pair: `access_token`, `refresh_token` (unless
/// `with_refresh` is false), `token_type`, `expires_in`.
fn insert_pair(body: &mut Map<String, Value>, pair: &TokenPair, now: Timestamp, with_refresh: bool) {
    body.insert("access_token".into(), pair.access_token.expose_secret().into());
    if with_refresh {
        body.insert("refresh_token".into(), pair.refresh_token.expose_secret().into());
    }
    body.insert("token_type".into(), "Bearer".into());
    body.insert("expires_in".into(), pair.expires_in(now).into());
}

/// The session cookie and, with a token pair, the refresh-token cookie for `session`.
fn session_cookies(
    web: &WebConfig,
    token: &str,
    session: &Session,
    pair: Option<&TokenPair>,
    now: Timestamp,
) -> SetCookies {
    let mut cookies = SetCookies::default();
    cookies.push(web.session_cookie.set_trusted(token, session, now));
    if let Some(pair) = pair {
        let value = refresh_cookie_value(&session.id(), pair.refresh_token.expose_secret());
        cookies.push(web.refresh_cookie.set_trusted(&value, session, now));
    }
    cookies
}

/// The answer to a login ([`Auth::login`](super::Auth::login)): 200 with the session cookie
/// (and the refresh-token cookie when there are signing keys) and this JSON body:
///
/// | field | value |
/// |---|---|
/// | `csrf_token` | the session's CSRF token, to send back in the CSRF header |
/// | `session_token` | the session token (for API clients; see [`cookie_only`](Self::cookie_only)) |
/// | `session_id` | the public session id |
/// | `user` | the user id |
/// | `remember_me` | whether the session has the remember-me lifetimes |
/// | `expires_at`, `idle_expires_at`, `absolute_expires_at` | RFC 3339 |
/// | `access_token`, `refresh_token`, `token_type`, `expires_in` | with signing keys: the token pair |
///
/// Cookies are browser-session cookies, or for a remember-me session persistent until its
/// absolute deadline, never longer. Like every answer carrying tokens, it is sent with
/// `Cache-Control: no-store`.
#[derive(Debug)]
#[must_use]
pub struct LoginAnswer {
    created: Created,
    body: Map<String, Value>,
    cookies: SetCookies,
}

impl LoginAnswer {
    pub(crate) fn new(web: &WebConfig, created: Created, now: Timestamp) -> Result<Self, ApiError> {
        let session = &created.session;
        let mut body = Map::new();
        body.insert("csrf_token".into(), web.csrf.token(session).expose_secret().into());
        body.insert("session_token".into(), created.token.expose_secret().into());
        body.insert("session_id".into(), session.id().to_string().into());
        body.insert("user".into(), session.user().as_str().into());
        body.insert("remember_me".into(), session.remember_me().into());
        body.insert("expires_at".into(), rfc3339(session.expires_at())?.into());
        body.insert("idle_expires_at".into(), rfc3339(session.idle_expires_at())?.into());
        body.insert("absolute_expires_at".into(), rfc3339(session.absolute_expires_at())?.into());
        if let Some(pair) = &created.tokens {
            insert_pair(&mut body, pair, now, true);
        }
        let cookies = session_cookies(web, created.token.expose_secret(), session, created.tokens.as_ref(), now);
        Ok(Self { created, body, cookies })
    }

    /// Leaves `session_token` and `refresh_token` out of the body, for a browser page that
    /// relies on the `HttpOnly` cookies: a token in the body is readable by any script on the
    /// page, which is what `HttpOnly` keeps from it.
    pub fn cookie_only(mut self) -> Self {
        self.body.remove("session_token");
        self.body.remove("refresh_token");
        self
    }

    /// What was created: the session, its token, the sessions evicted to make room, the token
    /// pair.
    #[must_use]
    pub fn created(&self) -> &Created {
        &self.created
    }

    /// The JSON body, to add fields to.
    pub fn body_mut(&mut self) -> &mut Map<String, Value> {
        &mut self.body
    }
}

impl IntoResponse for LoginAnswer {
    fn into_response(self) -> Response {
        token_answer(self.cookies, self.body)
    }
}

/// The answer to a logout ([`Auth::logout`](super::Auth::logout)): 204 with both cookies
/// cleared.
#[derive(Debug)]
#[must_use]
pub struct LoggedOut(SetCookies);

impl LoggedOut {
    pub(crate) fn new(web: &WebConfig) -> Self {
        Self(SetCookies::cleared(web))
    }
}

impl IntoResponse for LoggedOut {
    fn into_response(self) -> Response {
        (self.0, StatusCode::NO_CONTENT).into_response()
    }
}

/// The answer to a token refresh ([`Auth::refresh_tokens`](super::Auth::refresh_tokens)): 200
/// with `access_token`, `refresh_token`, `token_type` (`Bearer`) and `expires_in`; through the
/// cookie, the successor cookie is set and `refresh_token` is not in the body.
#[derive(Debug)]
#[must_use]
pub struct Refreshed {
    pair: TokenPair,
    body: Map<String, Value>,
    cookies: SetCookies,
}

impl Refreshed {
    pub(crate) fn in_body(pair: TokenPair, now: Timestamp) -> Self {
        let mut body = Map::new();
        insert_pair(&mut body, &pair, now, true);
        Self { pair, body, cookies: SetCookies::default() }
    }

    pub(crate) fn in_cookie(pair: TokenPair, cookie: String, now: Timestamp) -> Self {
        let mut body = Map::new();
        insert_pair(&mut body, &pair, now, false);
        let mut cookies = SetCookies::default();
        cookies.push(cookie);
        Self { pair, body, cookies }
    }

    /// The new token pair.
    #[must_use]
    pub fn pair(&self) -> &TokenPair {
        &self.pair
    }

    /// Whether the refresh token travels in the cookie (and not in the body).
    #[must_use]
    pub fn in_cookie_only(&self) -> bool {
        !self.cookies.0.is_empty()
    }
}

impl IntoResponse for Refreshed {
    fn into_response(self) -> Response {
        token_answer(self.cookies, self.body)
    }
}

/// The answer to a rotation ([`Auth::rotate`](super::Auth::rotate)): 200 with `session_token`,
/// `csrf_token` (the new one), `session_id` (unchanged) and, with signing keys, the new token
/// pair. Through the cookie, the new cookies are set instead of the tokens being in the body.
#[derive(Debug)]
#[must_use]
pub struct RotatedAnswer {
    rotated: Rotated,
    body: Map<String, Value>,
    cookies: SetCookies,
}

impl RotatedAnswer {
    pub(crate) fn new(web: &WebConfig, rotated: Rotated, via_cookie: bool, now: Timestamp) -> Result<Self, ApiError> {
        let session = &rotated.session;
        let mut body = Map::new();
        body.insert("csrf_token".into(), web.csrf.token(session).expose_secret().into());
        if !via_cookie {
            body.insert("session_token".into(), rotated.token.expose_secret().into());
        }
        body.insert("session_id".into(), session.id().to_string().into());
        body.insert("user".into(), session.user().as_str().into());
        body.insert("expires_at".into(), rfc3339(session.expires_at())?.into());
        if let Some(pair) = &rotated.tokens {
            insert_pair(&mut body, pair, now, !via_cookie);
        }
        let cookies = if via_cookie {
            session_cookies(web, rotated.token.expose_secret(), session, rotated.tokens.as_ref(), now)
        } else {
            SetCookies::default()
        };
        Ok(Self { rotated, body, cookies })
    }

    /// Puts `session_token` and, with signing keys, `refresh_token` in the body through the
    /// cookie too, as a login answer does unless [`cookie_only`](LoginAnswer::cookie_only):
    /// for an API whose clients read the rotated tokens from the body whatever they
    /// authenticated with. (A token in the body is readable by any script on the page, which
    /// the `HttpOnly` cookies keep from it: leave them out for a browser page.)
    pub fn with_tokens_in_body(mut self) -> Self {
        self.body.insert("session_token".into(), self.rotated.token.expose_secret().into());
        if let Some(pair) = &self.rotated.tokens {
            self.body.insert("refresh_token".into(), pair.refresh_token.expose_secret().into());
        }
        self
    }

    /// What the rotation made: the new token, the session, the new token pair.
    #[must_use]
    pub fn rotated(&self) -> &Rotated {
        &self.rotated
    }

    /// The JSON body, to add fields to.
    pub fn body_mut(&mut self) -> &mut Map<String, Value> {
        &mut self.body
    }
}

impl IntoResponse for RotatedAnswer {
    fn into_response(self) -> Response {
        token_answer(self.cookies, self.body)
    }
}
