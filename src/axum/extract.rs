//! The extractors: [`CurrentSession`], [`OptionalSession`] and [`Auth`], and how a request's
//! credential is found and guarded.

use std::ops::Deref;

use ::axum::extract::FromRequestParts;
use ::axum::http::header::{AUTHORIZATION, COOKIE, USER_AGENT};
use ::axum::http::request::Parts;
use ::axum::http::{HeaderMap, Method, StatusCode};

use super::answer::{LoggedOut, LoginAnswer, Refreshed, RotatedAnswer, SetCookies, refresh_cookie_value};
use super::config::WebConfig;
use super::error::ApiError;
use super::layer::Context;
use super::origin::{self, OriginRule};
use crate::csrf::CsrfToken;
use crate::error::Error;
use crate::expiry;
use crate::manager::NewSession;
use crate::session::{Session, UserId};
use crate::token::{AccessClaims, TokenDigest};

/// How a request presented its credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CredentialKind {
    /// A session token in the session cookie. The browser sends it by itself, so requests that
    /// change state pass the CSRF guard.
    SessionCookie,
    /// A session token in `Authorization: Bearer`.
    BearerSessionToken,
    /// An access token (a JWT) in `Authorization: Bearer`: its session is read without being
    /// counted or renewed.
    AccessToken,
}

impl CredentialKind {
    /// Whether the browser attached the credential by itself (the session cookie).
    #[must_use]
    pub fn is_cookie(self) -> bool {
        self == Self::SessionCookie
    }
}

/// The credential of a request, found but not yet checked.
pub(crate) enum Presented<'a> {
    /// `Authorization: Bearer <token>` (a session token or an access token).
    Bearer(&'a str),
    /// The session cookie's value.
    Cookie(&'a str),
}

impl Presented<'_> {
    fn token(&self) -> &str {
        match self {
            Self::Bearer(token) | Self::Cookie(token) => token,
        }
    }

    fn is_cookie(&self) -> bool {
        matches!(self, Self::Cookie(_))
    }
}

/// The credential `headers` present: `Authorization: Bearer <token>` (the scheme in any case),
/// or else the session cookie, from any of the `Cookie` headers. An `Authorization` header
/// that is not a bearer token is refused rather than passed over for the cookie. `Ok(None)`
/// when there is no credential.
pub(crate) fn presented<'a>(headers: &'a HeaderMap, web: &WebConfig) -> Result<Option<Presented<'a>>, ApiError> {
    if let Some(value) = headers.get(AUTHORIZATION) {
        return bearer(value.as_bytes())
            .map(|token| Some(Presented::Bearer(token)))
            .ok_or_else(|| ApiError::invalid_session("the Authorization header is not `Bearer <token>`"));
    }
    let cookies = headers.get_all(COOKIE).iter().filter_map(|v| v.to_str().ok());
    Ok(web.session_cookie.find_in(cookies).map(Presented::Cookie))
}

/// The token of an `Authorization: Bearer <token>` value (RFC 6750: the scheme is
/// case-insensitive), trimmed; `None` for another scheme or an empty token.
pub(crate) fn bearer(value: &[u8]) -> Option<&str> {
    let value = std::str::from_utf8(value).ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Whether a presented token is shaped like a JWT (three parts, two dots) rather than a session
/// token (45 base64url characters, or 43 for a token issued before routing: never a dot).
pub(crate) fn looks_like_jwt(token: &str) -> bool {
    token.bytes().filter(|&b| b == b'.').count() == 2
}

/// Whether a request method may change state: anything but `GET`, `HEAD` and `OPTIONS`.
fn is_state_changing(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn context(parts: &Parts) -> Result<&Context, ApiError> {
    parts.extensions.get::<Context>().ok_or_else(|| {
        #[cfg(feature = "tracing")]
        tracing::error!(target: "sessionkit::axum", "a session extractor ran on a route without SessionLayer");
        ApiError::internal("the session layer is not installed on this route")
    })
}

/// The CSRF guard's first half: the request's origin.
fn check_origin(
    headers: &HeaderMap,
    authority: Option<&str>,
    web: &WebConfig,
    rule: OriginRule,
) -> Result<(), ApiError> {
    if origin::check(headers, authority, &web.origins, rule) {
        Ok(())
    } else {
        Err(ApiError::csrf("cross-origin request refused: the Origin header must name an allowed origin"))
    }
}

/// The CSRF guard's second half: the CSRF header must carry the token of the session whose
/// token has `digest`.
fn check_csrf_token(headers: &HeaderMap, web: &WebConfig, digest: &TokenDigest) -> Result<(), ApiError> {
    let presented = headers.get(&web.csrf_header).and_then(|v| v.to_str().ok()).unwrap_or("");
    web.csrf.verify_digest(digest, presented).map_err(|e| {
        ApiError::csrf(format!("{e}: send the session's csrf_token in the {} header", web.csrf_header.as_str()))
    })
}

/// Authenticates `presented`, guarding a state-changing request that came with the cookie:
/// origin first, then (for a session token) the CSRF token against the token's digest, before
/// the store is asked. An access token in the cookie is checked against its session's token
/// once the session is known.
async fn authenticate(
    context: &Context,
    presented: &Presented<'_>,
    headers: &HeaderMap,
    authority: Option<&str>,
    guarded: bool,
) -> Result<(Session, CredentialKind, Option<AccessClaims>), ApiError> {
    let web = &context.0.web;
    let token = presented.token();
    if guarded {
        check_origin(headers, authority, web, OriginRule::Required)?;
    }
    if looks_like_jwt(token) {
        let (claims, session) = context.0.backend.authenticate_access(token).await.map_err(|e| match e {
            // Without signing keys there are no access tokens: a JWT-shaped credential is the
            // client's malformed token (401), not a server failure (500).
            Error::NoSigningKeys => Error::MalformedToken,
            other => other,
        })?;
        if guarded {
            check_csrf_token(headers, web, &session.record().digest)?;
        }
        return Ok((session, CredentialKind::AccessToken, Some(claims)));
    }
    let digest = TokenDigest::of_token(token).map_err(|_| Error::MalformedToken)?;
    if guarded {
        check_csrf_token(headers, web, &digest)?;
    }
    let session = context.0.backend.validate(&digest).await?;
    let kind = if presented.is_cookie() { CredentialKind::SessionCookie } else { CredentialKind::BearerSessionToken };
    Ok((session, kind, None))
}

/// The request's [`CurrentSession`]: its credential found, guarded and authenticated.
async fn current(
    context: &Context,
    headers: &HeaderMap,
    method: &Method,
    authority: Option<&str>,
) -> Result<CurrentSession, ApiError> {
    let Some(presented) = presented(headers, &context.0.web)? else {
        return Err(ApiError::invalid_session(
            "no session token: send `Authorization: Bearer <token>` or the session cookie",
        ));
    };
    let guarded = presented.is_cookie() && is_state_changing(method);
    let (session, kind, claims) = authenticate(context, &presented, headers, authority, guarded).await?;
    Ok(CurrentSession { session, kind, claims, context: context.clone() })
}

/// The validated session of the request. A request without one is answered 401 in the crate's
/// JSON error shape ([`ApiError`]).
///
/// The credential is `Authorization: Bearer` (a session token, or an access token when the
/// manager has signing keys) or else the session cookie:
///
/// * a **session token** is validated with [`SessionManager::validate`](crate::SessionManager::validate):
///   the request is counted and the idle deadline slides;
/// * an **access token** is verified (signature, expiry, denylist) and its session read by the
///   token's `sid` without counting or renewing it
///   ([`SessionManager::authenticate_access`](crate::SessionManager::authenticate_access)).
///
/// A request that changes state (anything but `GET`, `HEAD`, `OPTIONS`) and came with the
/// session cookie must also pass the CSRF guard: its `Origin` must be allowed (or, without
/// `Origin`, `Sec-Fetch-Site: same-origin`), and the CSRF header must carry the session's
/// [`csrf_token`](Self::csrf_token); both are checked before the store is asked, and a failure
/// is 403 `csrf_failed`. Bearer credentials are exempt: another site's page cannot make a
/// browser send them.
///
/// A guard for administrators is a few lines over it:
///
/// ```
/// use axum::extract::FromRequestParts;
/// use axum::http::request::Parts;
/// use sessionkit::axum::{ApiError, CurrentSession};
///
/// struct Admin(CurrentSession);
///
/// impl<S: Send + Sync> FromRequestParts<S> for Admin {
///     type Rejection = ApiError;
///
///     async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
///         let current = CurrentSession::from_request_parts(parts, state).await?;
///         if current.user().as_str() == "root" { // or a look-up in your user database
///             Ok(Self(current))
///         } else {
///             Err(ApiError::forbidden("administrators only"))
///         }
///     }
/// }
/// ```
#[derive(Clone)]
pub struct CurrentSession {
    session: Session,
    kind: CredentialKind,
    claims: Option<AccessClaims>,
    context: Context,
}

impl CurrentSession {
    /// The session.
    #[must_use]
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The session, by value.
    #[must_use]
    pub fn into_session(self) -> Session {
        self.session
    }

    /// How the request presented its credential.
    #[must_use]
    pub fn kind(&self) -> CredentialKind {
        self.kind
    }

    /// The access token's claims, when the request authenticated with one.
    #[must_use]
    pub fn access_claims(&self) -> Option<&AccessClaims> {
        self.claims.as_ref()
    }

    /// The session's CSRF token, for the page to send back in the CSRF header (put it in a
    /// response body, never in a cookie).
    #[must_use]
    pub fn csrf_token(&self) -> CsrfToken {
        self.context.0.web.csrf.token(&self.session)
    }
}

impl Deref for CurrentSession {
    type Target = Session;

    fn deref(&self) -> &Session {
        &self.session
    }
}

impl std::fmt::Debug for CurrentSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CurrentSession").field("session", &self.session).field("kind", &self.kind).finish()
    }
}

impl<St: Send + Sync> FromRequestParts<St> for CurrentSession {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &St) -> Result<Self, ApiError> {
        let context = context(parts)?;
        current(context, &parts.headers, &parts.method, parts.uri.authority().map(|a| a.as_str())).await
    }
}

/// The validated session of the request, if it has one: `None` without a credential or with
/// one that is malformed, unknown, expired or revoked, so that a page can serve visitors and
/// users alike. What is not the visitor's doing is still an error: a store failure answers
/// 503, and a cookie-authenticated request that changes state and fails the CSRF guard 403.
#[derive(Debug, Clone)]
pub struct OptionalSession(pub Option<CurrentSession>);

impl<St: Send + Sync> FromRequestParts<St> for OptionalSession {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &St) -> Result<Self, ApiError> {
        match CurrentSession::from_request_parts(parts, state).await {
            Ok(current) => Ok(Self(Some(current))),
            Err(e) if e.status() == StatusCode::UNAUTHORIZED => Ok(Self(None)),
            Err(e) => Err(e),
        }
    }
}

/// The session operations of a request that a route performs rather than requires: login,
/// logout, token refresh, rotation, renewal. Each applies the CSRF guard where it matters and
/// answers with the right cookies set or cleared.
///
/// Extracting it never fails on a route below [`SessionLayer`](super::SessionLayer) and does no
/// work: it copies the request's headers for the operation that follows.
pub struct Auth {
    context: Context,
    headers: HeaderMap,
    method: Method,
    authority: Option<String>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth").field("method", &self.method).finish_non_exhaustive()
    }
}

impl<St: Send + Sync> FromRequestParts<St> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &St) -> Result<Self, ApiError> {
        let context = context(parts)?.clone();
        Ok(Self {
            context,
            headers: parts.headers.clone(),
            method: parts.method.clone(),
            authority: parts.uri.authority().map(|a| a.as_str().to_owned()),
        })
    }
}

impl Auth {
    /// The web configuration.
    #[must_use]
    pub fn web_config(&self) -> &WebConfig {
        &self.context.0.web
    }

    /// A [`NewSession`] for `user` with the request's `User-Agent`. Add the client's IP with
    /// [`NewSession::ip`] (from axum's `ConnectInfo`, or the proxy's header).
    pub fn new_session(&self, user: UserId) -> NewSession {
        let new = NewSession::new(user);
        match self.headers.get(USER_AGENT).and_then(|v| v.to_str().ok()) {
            Some(agent) => new.user_agent(agent),
            None => new,
        }
    }

    /// The request's session, as the [`CurrentSession`] extractor finds it.
    ///
    /// # Errors
    /// As the extractor's rejection.
    pub async fn current(&self) -> Result<CurrentSession, ApiError> {
        current(&self.context, &self.headers, &self.method, self.authority.as_deref()).await
    }

    /// Logs in: creates the session and answers it, with the session cookie and (when the
    /// manager has signing keys) the refresh-token cookie set. Check the user's credentials
    /// first.
    ///
    /// A login is guarded against login CSRF (another site logging the browser into the
    /// attacker's account): a browser's cross-origin login is refused with 403 `csrf_failed`;
    /// clients that send no `Origin` may log in.
    ///
    /// # Errors
    /// 403 `csrf_failed`; 409 `session_limit_reached`; 503 `store_unavailable`; as
    /// [`SessionManager::create`](crate::SessionManager::create).
    pub async fn login(&self, new: NewSession) -> Result<LoginAnswer, ApiError> {
        check_origin(&self.headers, self.authority.as_deref(), &self.context.0.web, OriginRule::WhenPresent)?;
        let created = self.context.0.backend.create(new).await?;
        LoginAnswer::new(&self.context.0.web, created, self.context.0.backend.now())
    }

    /// Logs out: ends the session the request authenticated with (reason `logout`) and clears
    /// both cookies. Through the cookie it passes the CSRF guard first, and then takes one
    /// store call; with an access token, the token is verified first.
    ///
    /// # Errors
    /// 401 as the [`CurrentSession`] extractor (a session already ended answers why); 403
    /// `csrf_failed`; 503 `store_unavailable`.
    pub async fn logout(&self) -> Result<LoggedOut, ApiError> {
        let web = &self.context.0.web;
        let backend = &self.context.0.backend;
        let Some(presented) = presented(&self.headers, web)? else {
            return Err(ApiError::invalid_session("no session token to log out"));
        };
        if looks_like_jwt(presented.token()) {
            let current = self.current().await?;
            backend.revoke_own(current.user(), &current.id()).await?;
            return Ok(LoggedOut::new(web));
        }
        let digest = TokenDigest::of_token(presented.token()).map_err(|_| Error::MalformedToken)?;
        if presented.is_cookie() && is_state_changing(&self.method) {
            check_origin(&self.headers, self.authority.as_deref(), web, OriginRule::Required)?;
            check_csrf_token(&self.headers, web, &digest)?;
        }
        match backend.revoke(&digest).await? {
            Some(record) => match expiry::check(backend.now(), record.idle_deadline, record.absolute_deadline) {
                Ok(()) => Ok(LoggedOut::new(web)),
                // It had expired before: gone all the same, but say so.
                Err(reason) => Err(Error::Expired { reason }.into()),
            },
            // Nothing to end: answer why the token does not work (revoked with its reason,
            // expired, unknown).
            None => match backend.validate(&digest).await {
                Err(e) => Err(e.into()),
                Ok(_) => Err(ApiError::invalid_session("the session changed while logging out")),
            },
        }
    }

    /// The `Set-Cookie` values that clear both cookies, for an answer that ends sessions by
    /// other means (logout everywhere, say).
    pub fn clear_cookies(&self) -> SetCookies {
        SetCookies::cleared(&self.context.0.web)
    }

    /// Renews the request's session: pushes its idle deadline out by a full idle timeout
    /// ([`SessionManager::extend`](crate::SessionManager::extend)). With an access token the
    /// session is authenticated and answered unchanged (such clients renew it by refreshing
    /// their tokens). Through the cookie it passes the CSRF guard first.
    ///
    /// # Errors
    /// As the [`CurrentSession`] extractor.
    pub async fn extend(&self) -> Result<CurrentSession, ApiError> {
        let web = &self.context.0.web;
        let Some(presented) = presented(&self.headers, web)? else {
            return Err(ApiError::invalid_session("no session token to renew"));
        };
        if looks_like_jwt(presented.token()) {
            return self.current().await;
        }
        let digest = TokenDigest::of_token(presented.token()).map_err(|_| Error::MalformedToken)?;
        if presented.is_cookie() && is_state_changing(&self.method) {
            check_origin(&self.headers, self.authority.as_deref(), web, OriginRule::Required)?;
            check_csrf_token(&self.headers, web, &digest)?;
        }
        let session = self.context.0.backend.extend(&digest).await?;
        let kind =
            if presented.is_cookie() { CredentialKind::SessionCookie } else { CredentialKind::BearerSessionToken };
        Ok(CurrentSession { session, kind, claims: None, context: self.context.clone() })
    }

    /// Rotates the request's session token (a privilege change: step-up, role change): the
    /// old session token, its refresh tokens, its access tokens and its CSRF token stop
    /// working ([`SessionManager::rotate`](crate::SessionManager::rotate)); the session and
    /// its id stay. Needs the session token (cookie or bearer); through the cookie it passes
    /// the CSRF guard first and the answer sets the new cookies.
    ///
    /// # Errors
    /// 401 `invalid_session` with an access token (rotation needs the session token), or as
    /// the [`CurrentSession`] extractor; 403 `csrf_failed`; 503 `store_unavailable`.
    pub async fn rotate(&self) -> Result<RotatedAnswer, ApiError> {
        let web = &self.context.0.web;
        let Some(presented) = presented(&self.headers, web)? else {
            return Err(ApiError::invalid_session("no session token to rotate"));
        };
        if looks_like_jwt(presented.token()) {
            return Err(ApiError::invalid_session("rotation needs the session token, not an access token"));
        }
        if presented.is_cookie() {
            let digest = TokenDigest::of_token(presented.token()).map_err(|_| Error::MalformedToken)?;
            check_origin(&self.headers, self.authority.as_deref(), web, OriginRule::Required)?;
            check_csrf_token(&self.headers, web, &digest)?;
        }
        let rotated = self.context.0.backend.rotate(presented.token()).await?;
        RotatedAnswer::new(web, rotated, presented.is_cookie(), self.context.0.backend.now())
    }

    /// Spends a refresh token for a new access token and a new refresh token
    /// ([`SessionManager::refresh`](crate::SessionManager::refresh)).
    ///
    /// The refresh token is `body_token` (from the request body), or else the refresh-token
    /// cookie that login sets. A refresh through the cookie is cookie-authenticated: it passes
    /// the CSRF guard against the session cookie's session, the cookie must belong to that
    /// session (checked before its token is spent, so a planted cookie spends nothing), the
    /// answer sets the successor cookie, and the new refresh token is not repeated in the
    /// body (an `HttpOnly` cookie would protect nothing otherwise).
    ///
    /// # Errors
    /// 400 `invalid_request` with neither; 401 `invalid_refresh_token` (with `"reason"` when
    /// its session was revoked), `refresh_token_reused`, `session_expired`; 403 `csrf_failed`;
    /// 503 `store_unavailable`.
    pub async fn refresh_tokens(&self, body_token: Option<&str>) -> Result<Refreshed, ApiError> {
        let web = &self.context.0.web;
        let backend = &self.context.0.backend;
        if let Some(token) = body_token {
            let pair = backend.refresh(token).await.map_err(refresh_error)?;
            return Ok(Refreshed::in_body(pair, backend.now()));
        }
        let cookies = || self.headers.get_all(COOKIE).iter().filter_map(|v| v.to_str().ok());
        let Some(refresh_cookie) = web.refresh_cookie.find_in(cookies()) else {
            return Err(ApiError::invalid_request("expected `refresh_token` in the body, or the refresh-token cookie"));
        };
        check_origin(&self.headers, self.authority.as_deref(), web, OriginRule::Required)?;
        let Some(session_token) = web.session_cookie.find_in(cookies()) else {
            return Err(ApiError::invalid_session("a refresh through the cookie needs the session cookie too"));
        };
        let digest = TokenDigest::of_token(session_token).map_err(|_| Error::MalformedToken)?;
        check_csrf_token(&self.headers, web, &digest)?;
        let session = backend.validate(&digest).await?;
        let Some((cookie_session, refresh_token)) = refresh_cookie.split_once('.') else {
            return Err(refresh_error(Error::InvalidRefreshToken));
        };
        // A refresh cookie of another session (planted from elsewhere, or left by another
        // tab's login) is refused before its token is spent, so its own session loses nothing.
        let mismatch = || ApiError::csrf("the refresh-token cookie does not belong to the session cookie's session");
        if cookie_session != session.id().to_string() {
            return Err(mismatch());
        }
        let pair = backend.refresh(refresh_token).await.map_err(refresh_error)?;
        if pair.claims.session_id != session.id() {
            // The cookie named this session but carried another's token: not handed out.
            return Err(mismatch());
        }
        let now = backend.now();
        let cookie = web.refresh_cookie.set_trusted(
            &refresh_cookie_value(&session.id(), pair.refresh_token.expose_secret()),
            &session,
            now,
        );
        Ok(Refreshed::in_cookie(pair, cookie, now))
    }
}

/// A failed refresh's answer. A refresh token of a revoked session keeps the code
/// `invalid_refresh_token` that clients know, and adds why the session ended as `"reason"`.
fn refresh_error(e: Error) -> ApiError {
    match e {
        Error::Revoked { reason } => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_refresh_token",
            format!("this refresh token's session was revoked ({reason})"),
        )
        .with_reason(reason.as_str()),
        other => other.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_scheme_is_case_insensitive_and_trimmed() {
        assert_eq!(bearer(b"Bearer abc"), Some("abc"));
        assert_eq!(bearer(b"bearer abc"), Some("abc"));
        assert_eq!(bearer(b"BEARER   abc  "), Some("abc"));
        assert_eq!(bearer(b"  Bearer abc"), Some("abc"));
        assert_eq!(bearer(b"Basic abc"), None);
        assert_eq!(bearer(b"Bearer"), None);
        assert_eq!(bearer(b"Bearer   "), None);
        assert_eq!(bearer(b"Bearerabc"), None);
        assert_eq!(bearer(b"Bearer \xff"), None);
    }

    #[test]
    fn jwts_have_two_dots() {
        assert!(looks_like_jwt("a.b.c"));
        assert!(!looks_like_jwt("abc"));
        assert!(!looks_like_jwt("a.b"));
        assert!(!looks_like_jwt("a.b.c.d"));
    }

    #[test]
    fn only_get_head_and_options_are_safe() {
        for (method, changes) in [
            (Method::GET, false),
            (Method::HEAD, false),
            (Method::OPTIONS, false),
            (Method::POST, true),
            (Method::PUT, true),
            (Method::PATCH, true),
            (Method::DELETE, true),
        ] {
            assert_eq!(is_state_changing(&method), changes, "{method}");
        }
    }
}
