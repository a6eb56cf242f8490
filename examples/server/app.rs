//! The example server's application: configuration from the command-line options, the user
//! database, the axum router, the handlers and the mapping of [`sessionkit::Error`] to HTTP.
//!
//! `main.rs` parses the command line and starts the server; everything that answers a request
//! lives here, so that `tests/server_http.rs` can include this file and boot the same router
//! in-process with a [`MockClock`](sessionkit::clock::MockClock).
//!
//! The state is generic over the store `S` and the clock `C`, exactly like
//! [`SessionManager<S, C>`]: the binary uses [`sessionkit::MemoryStore`] and the system clock.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, COOKIE, SET_COOKIE, USER_AGENT, WWW_AUTHENTICATE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router, middleware};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use sessionkit::{
    Clock, Error, LimitPolicy, NewSession, Session, SessionConfig, SessionId, SessionManager, SessionStore, StoreError,
    UserId,
};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Largest request body accepted, in bytes. Larger bodies are answered 413 `payload_too_large`.
pub(crate) const MAX_BODY_BYTES: usize = 64 * 1024;

/// Name of the session cookie.
pub(crate) const COOKIE_NAME: &str = "session";

/// The users created when no `--user` is given: `(name, password, admin)`.
pub(crate) const DEMO_USERS: &[(&str, &str, bool)] = &[("alice", "wonderland", true), ("bob", "builder", false)];

/// What the server is configured with, besides the listen address. Filled in by clap from the
/// command line in `main.rs`, or directly by tests.
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct Options {
    /// A user who may log in, as NAME:PASSWORD (repeatable). Without any, the demo users
    /// alice:wonderland (admin) and bob:builder are created.
    #[arg(long = "user", value_name = "NAME:PASSWORD")]
    pub(crate) users: Vec<String>,

    /// A user who may use the admin endpoints (repeatable). Must name a known user.
    #[arg(long = "admin", value_name = "NAME")]
    pub(crate) admins: Vec<String>,

    /// A `SessionConfig` in TOML (durations as "30m", "8h"). The flags below override it.
    #[arg(long = "config", value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,

    /// Idle timeout of ordinary sessions, e.g. "15m".
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub(crate) idle_timeout: Option<Duration>,

    /// Absolute lifetime of ordinary sessions, e.g. "8h".
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub(crate) absolute_timeout: Option<Duration>,

    /// Idle timeout of remember-me sessions, e.g. "7days".
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub(crate) remember_me_idle_timeout: Option<Duration>,

    /// Absolute lifetime of remember-me sessions, e.g. "30days".
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub(crate) remember_me_absolute_timeout: Option<Duration>,

    /// Maximum live sessions per user: a number, or "unlimited".
    #[arg(long, value_name = "N")]
    pub(crate) max_sessions_per_user: Option<MaxSessions>,

    /// What a login does at the per-user limit: evict-oldest, evict-lru or reject.
    #[arg(long, value_name = "POLICY")]
    pub(crate) on_limit: Option<LimitPolicy>,

    /// Leave the `Secure` attribute off the session cookie (for plain-HTTP development only).
    #[arg(long)]
    pub(crate) insecure_cookies: bool,
}

/// The value of `--max-sessions-per-user`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MaxSessions {
    /// No per-user limit.
    Unlimited,
    /// At most this many live sessions per user.
    Max(u32),
}

impl std::str::FromStr for MaxSessions {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s.eq_ignore_ascii_case("unlimited") || s.eq_ignore_ascii_case("none") {
            return Ok(Self::Unlimited);
        }
        s.parse::<u32>().map(Self::Max).map_err(|_| format!("expected a number or \"unlimited\", got {s:?}"))
    }
}

/// Why the server could not start: a bad option, an unreadable or invalid configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StartupError(String);

impl fmt::Display for StartupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StartupError {}

/// Builds the session configuration: the `--config` file (or the defaults), then the flags.
pub(crate) fn session_config(options: &Options) -> Result<SessionConfig, StartupError> {
    let mut builder = match &options.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| StartupError(format!("cannot read config file {}: {e}", path.display())))?;
            let config: SessionConfig = toml::from_str(&text)
                .map_err(|e| StartupError(format!("invalid config file {}: {e}", path.display())))?;
            config.to_builder()
        }
        None => SessionConfig::builder(),
    };
    if let Some(d) = options.idle_timeout {
        builder = builder.idle_timeout(d);
    }
    if let Some(d) = options.absolute_timeout {
        builder = builder.absolute_timeout(d);
    }
    if let Some(d) = options.remember_me_idle_timeout {
        builder = builder.remember_me_idle_timeout(d);
    }
    if let Some(d) = options.remember_me_absolute_timeout {
        builder = builder.remember_me_absolute_timeout(d);
    }
    match options.max_sessions_per_user {
        Some(MaxSessions::Unlimited) => builder = builder.max_sessions_per_user(None),
        Some(MaxSessions::Max(n)) => builder = builder.max_sessions_per_user(Some(n)),
        None => {}
    }
    if let Some(policy) = options.on_limit {
        builder = builder.on_limit(policy);
    }
    builder.build().map_err(|e| StartupError(format!("invalid session configuration: {e}")))
}

/// One user of the demo user database.
#[derive(Debug)]
struct UserEntry {
    id: UserId,
    password: String,
    admin: bool,
}

/// The user database: names, passwords and admin flags, fixed at startup.
///
/// Passwords are kept in clear because this is a demonstration with passwords given on the
/// command line; a real application stores password hashes (Argon2id, scrypt, bcrypt) and
/// verifies with the hash library.
#[derive(Debug)]
pub(crate) struct Users {
    by_name: HashMap<String, UserEntry>,
    demo: bool,
}

/// Compared against when the user name is unknown, so that a failed login for an unknown user
/// does the same work as one for a known user.
const DUMMY_PASSWORD: &str = "not-a-password-of-any-user";

impl Users {
    /// Builds the database from `--user NAME:PASSWORD` and `--admin NAME` values; the demo users
    /// when `users` is empty.
    pub(crate) fn from_specs(users: &[String], admins: &[String]) -> Result<Self, StartupError> {
        let mut by_name = HashMap::new();
        let demo = users.is_empty();
        if demo {
            for &(name, password, admin) in DEMO_USERS {
                let id = UserId::new(name).map_err(|e| StartupError(format!("demo user {name:?}: {e}")))?;
                by_name.insert(name.to_owned(), UserEntry { id, password: password.to_owned(), admin });
            }
        }
        for spec in users {
            let Some((name, password)) = spec.split_once(':') else {
                return Err(StartupError(format!("--user expects NAME:PASSWORD, got {spec:?}")));
            };
            if password.is_empty() {
                return Err(StartupError(format!("--user {name}: the password must not be empty")));
            }
            let id = UserId::new(name).map_err(|e| StartupError(format!("--user {name:?}: {e}")))?;
            let entry = UserEntry { id, password: password.to_owned(), admin: false };
            if by_name.insert(name.to_owned(), entry).is_some() {
                return Err(StartupError(format!("--user {name:?} given twice")));
            }
        }
        for name in admins {
            match by_name.get_mut(name) {
                Some(entry) => entry.admin = true,
                None => {
                    return Err(StartupError(format!("--admin {name:?} is not a user (add --user {name}:PASSWORD)")));
                }
            }
        }
        Ok(Self { by_name, demo })
    }

    /// The user `name` if `password` is theirs. Passwords are compared in constant time (with
    /// respect to their content; a length mismatch fails at once), and an unknown name costs a
    /// comparison too.
    fn authenticate(&self, name: &str, password: &str) -> Option<&UserEntry> {
        let entry = self.by_name.get(name);
        let expected = entry.map_or(DUMMY_PASSWORD, |e| e.password.as_str());
        let matches: bool = password.as_bytes().ct_eq(expected.as_bytes()).into();
        entry.filter(|_| matches)
    }

    /// Whether `user` may use the admin endpoints.
    pub(crate) fn is_admin(&self, user: &UserId) -> bool {
        self.by_name.get(user.as_str()).is_some_and(|e| e.admin)
    }

    /// Whether the demo users are in use (no `--user` was given).
    pub(crate) fn are_demo_users(&self) -> bool {
        self.demo
    }

    /// The user names, sorted, each with its admin flag.
    pub(crate) fn names(&self) -> Vec<(&str, bool)> {
        let mut names: Vec<_> = self.by_name.iter().map(|(name, e)| (name.as_str(), e.admin)).collect();
        names.sort_unstable();
        names
    }
}

/// What every handler shares: the session manager, the users, the cookie policy.
pub(crate) struct AppState<S, C> {
    pub(crate) manager: SessionManager<S, C>,
    pub(crate) users: Arc<Users>,
    pub(crate) secure_cookies: bool,
}

impl<S, C> Clone for AppState<S, C> {
    fn clone(&self) -> Self {
        Self { manager: self.manager.clone(), users: Arc::clone(&self.users), secure_cookies: self.secure_cookies }
    }
}

impl<S: SessionStore, C: Clock> AppState<S, C> {
    /// Builds the state from the options, over `store`, reading the time from `clock`.
    pub(crate) fn from_options(options: &Options, store: S, clock: C) -> Result<Self, StartupError> {
        let config = session_config(options)?;
        let users = Users::from_specs(&options.users, &options.admins)?;
        Ok(Self {
            manager: SessionManager::with_clock(store, config, clock),
            users: Arc::new(users),
            secure_cookies: !options.insecure_cookies,
        })
    }

    /// Removes up to `max` expired sessions from the store (and forgets revocations past their
    /// deadline). Answers how many sessions were removed. `main.rs` calls it periodically.
    pub(crate) async fn sweep_expired(&self, max: usize) -> Result<usize, StoreError> {
        let now = self.manager.clock().now();
        self.manager.store().remove_expired(now, max).await
    }

    /// A `Set-Cookie` value carrying `token`; with `Max-Age` when `max_age` is given.
    fn session_cookie(&self, token: &str, max_age: Option<i64>) -> String {
        let mut cookie = format!("{COOKIE_NAME}={token}; HttpOnly; SameSite=Lax; Path=/");
        if self.secure_cookies {
            cookie.push_str("; Secure");
        }
        if let Some(seconds) = max_age {
            cookie.push_str(&format!("; Max-Age={seconds}"));
        }
        cookie
    }

    /// A `Set-Cookie` value that makes the browser drop the session cookie.
    fn clearing_cookie(&self) -> String {
        self.session_cookie("", Some(0))
    }
}

/// The router: every endpoint under `/api/v1`, JSON errors for unknown routes and methods, the
/// 64 KiB body limit, and `Cache-Control: no-store` on every response (they carry tokens and
/// per-user data).
pub(crate) fn router<S: SessionStore, C: Clock>(state: AppState<S, C>) -> Router {
    Router::new()
        .route("/api/v1/auth/login", post(login::<S, C>))
        .route("/api/v1/auth/logout", post(logout::<S, C>))
        .route("/api/v1/auth/logout-all", post(logout_all::<S, C>))
        .route("/api/v1/auth/session", get(current_session))
        .route("/api/v1/auth/sessions", get(list_sessions::<S, C>))
        .route("/api/v1/auth/sessions/refresh", post(refresh::<S, C>))
        .route("/api/v1/auth/sessions/revoke", post(revoke_session::<S, C>))
        .route("/api/v1/admin/sessions", get(admin_list_sessions::<S, C>))
        .route("/api/v1/admin/sessions/{session_id}", delete(admin_revoke_session::<S, C>))
        .route("/api/v1/admin/users/{name}/sessions", delete(admin_revoke_user::<S, C>))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::map_response(no_store))
        .with_state(state)
}

/// Serves `app` on `listener` until `shutdown` completes, then finishes the requests in flight.
/// The peer address of every connection is made available to the handlers (the client IP
/// recorded with each session).
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await
}

async fn no_store(mut response: Response) -> Response {
    response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "method not allowed on this endpoint")
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// An error answer: `{"error": code, "message": text}`, plus `"reason"` for expired and revoked
/// sessions.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    reason: Option<&'static str>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), reason: None }
    }

    fn invalid_session(message: &str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_session", message)
    }

    fn not_found(message: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", message)
    }

    fn json_rejection(rejection: &JsonRejection) -> Self {
        match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("request body is larger than {MAX_BODY_BYTES} bytes"),
            ),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Self::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "expected a request body with `Content-Type: application/json`",
            ),
            _ => Self::invalid_request(rejection.body_text()),
        }
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::MalformedToken => Self::invalid_session("malformed session token"),
            Error::UnknownSession => Self::invalid_session("unknown session"),
            Error::Expired { reason } => Self {
                reason: Some(reason.as_str()),
                ..Self::new(StatusCode::UNAUTHORIZED, "session_expired", format!("session expired ({reason} timeout)"))
            },
            Error::Revoked { reason } => Self {
                reason: Some(reason.as_str()),
                ..Self::new(StatusCode::UNAUTHORIZED, "session_revoked", format!("session revoked ({reason})"))
            },
            Error::LimitReached { limit } => Self::new(
                StatusCode::CONFLICT,
                "session_limit_reached",
                format!("this user already has the maximum of {limit} sessions; log out of one first"),
            ),
            Error::Store(e) => {
                eprintln!("session store failure: {e}");
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", "the session store is unavailable")
            }
            Error::InvalidUserId(e) => Self::invalid_request(e.to_string()),
            other => {
                eprintln!("internal error: {other}");
                Self::internal("internal error")
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.code, "message": self.message });
        if let (Some(reason), Value::Object(map)) = (self.reason, &mut body) {
            map.insert("reason".to_owned(), Value::from(reason));
        }
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// `Json<T>`, but a rejection (malformed JSON, wrong content type, body over the limit) answers
/// with our error shape.
pub(crate) struct ApiJson<T>(pub(crate) T);

impl<T: DeserializeOwned, St: Send + Sync> FromRequest<St> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &St) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(ApiError::json_rejection(&rejection)),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Extractors
// ---------------------------------------------------------------------------------------------

/// The session token the client presented: `Authorization: Bearer <token>`, or else the
/// `session` cookie. A present `Authorization` header that is not a bearer token is not
/// overridden by the cookie: the request is rejected.
fn presented_token(headers: &HeaderMap) -> Result<String, ApiError> {
    if let Some(value) = headers.get(AUTHORIZATION) {
        let bearer = value
            .to_str()
            .ok()
            .and_then(|v| v.trim().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|token| !token.is_empty());
        return match bearer {
            Some(token) => Ok(token.to_owned()),
            None => Err(ApiError::invalid_session("the Authorization header is not `Bearer <session token>`")),
        };
    }
    let from_cookie = headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, token)| token.trim().trim_matches('"'));
    match from_cookie {
        Some(token) if !token.is_empty() => Ok(token.to_owned()),
        _ => Err(ApiError::invalid_session(
            "no session token: send `Authorization: Bearer <token>` or the session cookie",
        )),
    }
}

/// The token presented with the request, not yet validated.
pub(crate) struct PresentedToken(String);

impl<St: Send + Sync> FromRequestParts<St> for PresentedToken {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &St) -> Result<Self, ApiError> {
        presented_token(&parts.headers).map(Self)
    }
}

/// The validated session of the request (through [`SessionManager::validate`], which also counts
/// the request and slides the idle deadline), and the token it was found by.
pub(crate) struct CurrentSession {
    session: Session,
    token: String,
}

impl<S: SessionStore, C: Clock> FromRequestParts<AppState<S, C>> for CurrentSession {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState<S, C>) -> Result<Self, ApiError> {
        let PresentedToken(token) = PresentedToken::from_request_parts(parts, state).await?;
        let session = state.manager.validate(&token).await?;
        Ok(Self { session, token })
    }
}

/// A [`CurrentSession`] of an administrator; 403 `forbidden` for other users.
pub(crate) struct AdminSession(CurrentSession);

impl<S: SessionStore, C: Clock> FromRequestParts<AppState<S, C>> for AdminSession {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState<S, C>) -> Result<Self, ApiError> {
        let current = CurrentSession::from_request_parts(parts, state).await?;
        if state.users.is_admin(current.session.user()) {
            Ok(Self(current))
        } else {
            Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", "administrators only"))
        }
    }
}

/// The client's IP address: the peer address of the connection, when the router is served with
/// connect info (see [`serve`]). Behind a reverse proxy, take it from the proxy's header instead.
pub(crate) struct ClientIp(Option<IpAddr>);

impl<St: Send + Sync> FromRequestParts<St> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &St) -> Result<Self, Self::Rejection> {
        Ok(Self(parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| addr.ip().to_canonical())))
    }
}

// ---------------------------------------------------------------------------------------------
// Views
// ---------------------------------------------------------------------------------------------

fn rfc3339(t: OffsetDateTime) -> Result<String, ApiError> {
    t.format(&Rfc3339).map_err(|e| ApiError::internal(format!("timestamp cannot be formatted: {e}")))
}

/// `GET /auth/session` and `POST /auth/sessions/refresh`.
fn session_view(session: &Session) -> Result<Value, ApiError> {
    Ok(json!({
        "session_id": session.id().to_string(),
        "user": session.user().as_str(),
        "created_at": rfc3339(session.created_at())?,
        "last_seen_at": rfc3339(session.last_seen_at())?,
        "expires_at": rfc3339(session.expires_at())?,
        "idle_expires_at": rfc3339(session.idle_expires_at())?,
        "absolute_expires_at": rfc3339(session.absolute_expires_at())?,
        "remember_me": session.remember_me(),
        "request_count": session.request_count(),
    }))
}

/// One entry of a session list.
fn list_item(session: &Session, current: Option<SessionId>) -> Result<Value, ApiError> {
    Ok(json!({
        "session_id": session.id().to_string(),
        "created_at": rfc3339(session.created_at())?,
        "last_seen_at": rfc3339(session.last_seen_at())?,
        "ip": session.ip().map(|ip| ip.to_string()),
        "user_agent": session.user_agent(),
        "request_count": session.request_count(),
        "remember_me": session.remember_me(),
        "current": current == Some(session.id()),
    }))
}

async fn session_list<S: SessionStore, C: Clock>(
    state: &AppState<S, C>,
    user: &UserId,
    current: Option<SessionId>,
) -> Result<Json<Value>, ApiError> {
    let sessions = state.manager.list(user).await?;
    let items = sessions.iter().map(|s| list_item(s, current)).collect::<Result<Vec<_>, _>>()?;
    Ok(Json(json!({ "sessions": items })))
}

fn with_cookie(mut response: Response, cookie: &str) -> Result<Response, ApiError> {
    let value = HeaderValue::from_str(cookie).map_err(|_| ApiError::internal("cookie value is not a valid header"))?;
    response.headers_mut().append(SET_COOKIE, value);
    Ok(response)
}

// ---------------------------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize)]
struct LoginRequest {
    username: String,
    password: String,
    #[serde(default)]
    remember_me: bool,
}

/// `POST /api/v1/auth/login`.
async fn login<S: SessionStore, C: Clock>(
    State(state): State<AppState<S, C>>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    ApiJson(body): ApiJson<LoginRequest>,
) -> Result<Response, ApiError> {
    let Some(user) = state.users.authenticate(&body.username, &body.password) else {
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "invalid_credentials", "wrong user name or password"));
    };
    let mut new = NewSession::new(user.id.clone()).remember_me(body.remember_me);
    if let Some(ip) = ip {
        new = new.ip(ip);
    }
    if let Some(agent) = headers.get(USER_AGENT).and_then(|v| v.to_str().ok()) {
        new = new.user_agent(agent);
    }
    let created = state.manager.create(new).await?;
    let session = &created.session;
    let token = created.token.expose_secret();
    // A remember-me session survives browser restarts: a persistent cookie lasting until the
    // session's absolute deadline. Otherwise a session cookie, gone when the browser closes.
    let max_age = session.remember_me().then(|| {
        let now = state.manager.clock().now().to_offset_date_time();
        (session.absolute_expires_at() - now).whole_seconds().max(0)
    });
    let body = json!({
        "session_token": token,
        "session_id": session.id().to_string(),
        "user": session.user().as_str(),
        "remember_me": session.remember_me(),
        "expires_at": rfc3339(session.expires_at())?,
        "idle_expires_at": rfc3339(session.idle_expires_at())?,
        "absolute_expires_at": rfc3339(session.absolute_expires_at())?,
    });
    with_cookie(Json(body).into_response(), &state.session_cookie(token, max_age))
}

/// `GET /api/v1/auth/session`.
async fn current_session(current: CurrentSession) -> Result<Json<Value>, ApiError> {
    session_view(&current.session).map(Json)
}

/// `POST /api/v1/auth/sessions/refresh`: pushes the idle deadline out by a full idle timeout.
async fn refresh<S: SessionStore, C: Clock>(
    State(state): State<AppState<S, C>>,
    PresentedToken(token): PresentedToken,
) -> Result<Json<Value>, ApiError> {
    let session = state.manager.extend(&token).await?;
    session_view(&session).map(Json)
}

/// `POST /api/v1/auth/logout`.
async fn logout<S: SessionStore, C: Clock>(
    State(state): State<AppState<S, C>>,
    current: CurrentSession,
) -> Result<Response, ApiError> {
    state.manager.revoke(&current.token).await?;
    with_cookie(StatusCode::NO_CONTENT.into_response(), &state.clearing_cookie())
}

/// `POST /api/v1/auth/logout-all`: ends every session of the user, this one included.
async fn logout_all<S: SessionStore, C: Clock>(
    State(state): State<AppState<S, C>>,
    current: CurrentSession,
) -> Result<Response, ApiError> {
    let revoked = state.manager.revoke_all(current.session.user(), None).await?;
    with_cookie(Json(json!({ "revoked": revoked })).into_response(), &state.clearing_cookie())
}

/// `GET /api/v1/auth/sessions`.
async fn list_sessions<S: SessionStore, C: Clock>(
    State(state): State<AppState<S, C>>,
    current: CurrentSession,
) -> Result<Json<Value>, ApiError> {
    session_list(&state, current.session.user(), Some(current.session.id())).await
}

#[derive(Deserialize)]
struct RevokeRequest {
    session_id: String,
}

/// `POST /api/v1/auth/sessions/revoke`: ends one of the caller's own sessions.
async fn revoke_session<S: SessionStore, C: Clock>(
    State(state): State<AppState<S, C>>,
    current: CurrentSession,
    ApiJson(body): ApiJson<RevokeRequest>,
) -> Result<StatusCode, ApiError> {
    // A malformed id cannot name one of the caller's sessions: the same 404 as any other.
    let id = body.session_id.parse::<SessionId>().map_err(|_| ApiError::not_found("no such session"))?;
    if state.manager.revoke_own(current.session.user(), &id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("no such session"))
    }
}

#[derive(Deserialize)]
struct AdminListQuery {
    user: String,
}

/// `GET /api/v1/admin/sessions?user=NAME`.
async fn admin_list_sessions<S: SessionStore, C: Clock>(
    State(state): State<AppState<S, C>>,
    AdminSession(admin): AdminSession,
    query: Result<Query<AdminListQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query.map_err(|_| ApiError::invalid_request("expected the query parameter `user=NAME`"))?;
    let user = UserId::new(query.user).map_err(|e| ApiError::invalid_request(e.to_string()))?;
    session_list(&state, &user, Some(admin.session.id())).await
}

/// `DELETE /api/v1/admin/sessions/{session_id}`.
async fn admin_revoke_session<S: SessionStore, C: Clock>(
    State(state): State<AppState<S, C>>,
    _admin: AdminSession,
    id: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let id = id
        .ok()
        .and_then(|Path(id)| id.parse::<SessionId>().ok())
        .ok_or_else(|| ApiError::not_found("no such session"))?;
    if state.manager.revoke_by_id(&id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("no such session"))
    }
}

/// `DELETE /api/v1/admin/users/{name}/sessions`.
async fn admin_revoke_user<S: SessionStore, C: Clock>(
    State(state): State<AppState<S, C>>,
    _admin: AdminSession,
    name: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let Path(name) = name.map_err(|_| ApiError::invalid_request("malformed user name in the path"))?;
    let user = UserId::new(name).map_err(|e| ApiError::invalid_request(e.to_string()))?;
    let revoked = state.manager.revoke_user_by_admin(&user).await?;
    Ok(Json(json!({ "revoked": revoked })))
}
