//! The web integration (`sessionkit::axum`) driven in process: a small router over
//! [`SessionLayer`] answers requests sent with `tower::ServiceExt::oneshot` (no sockets), over a
//! store the test can switch off and a [`MockClock`]. Every path of the extractors
//! ([`CurrentSession`], [`OptionalSession`], [`Auth`]), of the CSRF guard, of the cookies and
//! of the error answers is checked here.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::cell::RefCell;
use std::sync::OnceLock;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Body;
use axum::http::header::{CONTENT_TYPE, SET_COOKIE, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::routing;
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use common::Captured;
use serde::Deserialize;
use serde_json::{Value, json};
use sessionkit::axum::{
    AllowedOrigins, ApiError, Auth, CredentialKind, CurrentSession, JsonBody, LoggedOut, LoginAnswer, OptionalSession,
    Refreshed, RotatedAnswer, SessionLayer, WebConfig, WebConfigBuilder,
};
use sessionkit::clock::MockClock;
use sessionkit::token::TokenDigest;
use sessionkit::{
    KeySet, LimitPolicy, MemoryStore, Session, SessionConfig, SessionConfigBuilder, SessionManager, SigningKey, UserId,
};
use tower::ServiceExt as _;

// -------------------------------------------------------------------------------------------
// A store the test can switch off, to check the 503 answers.
// -------------------------------------------------------------------------------------------

#[path = "support/switchable_store.rs"]
mod switchable_store;

use switchable_store::SwitchableStore;

// -------------------------------------------------------------------------------------------
// The application under test: a few routes over the session layer.
// -------------------------------------------------------------------------------------------

/// The origin the application serves.
const ORIGIN: &str = "https://app.example.com";
/// Another site.
const EVIL: &str = "https://evil.example";
const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);

/// What the session routes answer about the request's session.
fn view(current: &CurrentSession) -> Value {
    let kind = match current.kind() {
        CredentialKind::SessionCookie => "cookie",
        CredentialKind::BearerSessionToken => "bearer",
        CredentialKind::AccessToken => "access",
        _ => "other",
    };
    json!({
        "user": current.user().as_str(),
        "session_id": current.id().to_string(),
        "kind": kind,
        "is_cookie": current.kind().is_cookie(),
        "access_sid": current.access_claims().map(|c| c.session_id.to_string()),
        "csrf_token": current.csrf_token().expose_secret(),
        "request_count": current.request_count(),
        "idle_expires_at": current.idle_expires_at().unix_timestamp(),
    })
}

async fn me(current: CurrentSession) -> Json<Value> {
    Json(view(&current))
}

async fn maybe(OptionalSession(current): OptionalSession) -> Json<Value> {
    Json(json!({ "session": current.as_ref().map(view) }))
}

#[derive(Deserialize)]
struct LoginRequest {
    user: String,
    #[serde(default)]
    remember_me: bool,
    #[serde(default)]
    cookie_only: bool,
}

async fn login(auth: Auth, JsonBody(body): JsonBody<LoginRequest>) -> Result<LoginAnswer, ApiError> {
    let user = UserId::new(body.user).map_err(|e| ApiError::invalid_request(e.to_string()))?;
    let answer = auth.login(auth.new_session(user).remember_me(body.remember_me)).await?;
    Ok(if body.cookie_only { answer.cookie_only() } else { answer })
}

async fn logout(auth: Auth) -> Result<LoggedOut, ApiError> {
    auth.logout().await
}

async fn rotate(auth: Auth) -> Result<RotatedAnswer, ApiError> {
    auth.rotate().await
}

async fn extend(auth: Auth) -> Result<Json<Value>, ApiError> {
    Ok(Json(view(&auth.extend().await?)))
}

#[derive(Deserialize)]
struct RefreshRequest {
    refresh_token: Option<String>,
}

async fn refresh(auth: Auth, JsonBody(body): JsonBody<RefreshRequest>) -> Result<Refreshed, ApiError> {
    auth.refresh_tokens(body.refresh_token.as_deref()).await
}

async fn echo(JsonBody(body): JsonBody<Value>) -> Json<Value> {
    Json(body)
}

/// The routes, without the layer.
fn routes() -> Router {
    Router::new()
        .route("/me", routing::get(me).post(me))
        .route("/maybe", routing::any(maybe))
        .route("/login", routing::post(login))
        .route("/logout", routing::post(logout))
        .route("/rotate", routing::post(rotate))
        .route("/extend", routing::post(extend))
        .route("/auth/refresh-token", routing::post(refresh))
        .route("/echo", routing::post(echo))
}

type Manager = SessionManager<SwitchableStore, MockClock>;

/// 30-minute idle, 8-hour absolute, 1-minute touch interval; remember-me 7 days idle, 30 days
/// absolute; access tokens 15 minutes with 30 seconds of leeway; no per-user limit.
fn config() -> SessionConfigBuilder {
    SessionConfig::builder()
        .idle_timeout(30 * MINUTE)
        .absolute_timeout(8 * HOUR)
        .remember_me_idle_timeout(7 * DAY)
        .remember_me_absolute_timeout(30 * DAY)
        .touch_interval(MINUTE)
        .access_token_ttl(15 * MINUTE)
        .access_token_leeway(Duration::from_secs(30))
        .max_sessions_per_user(None)
}

/// The secure defaults, for pages served from [`ORIGIN`].
fn web() -> WebConfigBuilder {
    WebConfig::builder(AllowedOrigins::new(ORIGIN).unwrap())
}

struct App {
    router: Router,
    manager: Manager,
    clock: MockClock,
    store: SwitchableStore,
    session_cookie: String,
    refresh_cookie: String,
}

impl App {
    fn new() -> Self {
        Self::with(config(), web())
    }

    /// With access-token signing keys: logins also answer a token pair and set the
    /// refresh-token cookie.
    fn with_keys() -> Self {
        let app = Self::new();
        app.set_keys();
        app
    }

    fn with(config: SessionConfigBuilder, web: WebConfigBuilder) -> Self {
        init_logs();
        let clock = MockClock::new();
        let store = SwitchableStore::default();
        let manager = SessionManager::with_clock(store.clone(), config.build().unwrap(), clock.clone());
        let web = web.build().unwrap();
        let session_cookie = web.session_cookie().name().to_owned();
        let refresh_cookie = web.refresh_cookie().name().to_owned();
        let router = routes().layer(SessionLayer::new(manager.clone(), web));
        Self { router, manager, clock, store, session_cookie, refresh_cookie }
    }

    fn set_keys(&self) {
        self.manager.set_keys(KeySet::new(SigningKey::generate_hs256("k1").unwrap()).unwrap());
    }

    fn store_down(&self, down: bool) {
        self.store.down.store(down, Ordering::SeqCst);
    }

    async fn send(&self, request: Req) -> Answer {
        send_to(&self.router, request).await
    }

    async fn login(&self, user: &str) -> Login {
        self.login_with(json!({ "user": user })).await
    }

    /// Logs in as a non-browser client would (no `Origin`).
    async fn login_with(&self, body: Value) -> Login {
        let answer = self.send(post("/login").json(&body)).await;
        assert_eq!(answer.status, StatusCode::OK, "login: {}", answer.body);
        Login::from_answer(answer, &self.session_cookie, &self.refresh_cookie)
    }

    /// The live session `id` as stored, without counting or renewing it.
    async fn stored(&self, id: &str) -> Option<Session> {
        self.manager.get(&id.parse().unwrap()).await.unwrap()
    }

    fn now(&self) -> i64 {
        self.clock.now_utc().unix_timestamp()
    }
}

/// What a login answered.
struct Login {
    answer: Answer,
    /// The session token, from the session cookie.
    token: String,
    /// `name=token`, as a browser sends the session cookie back.
    cookie: String,
    csrf: String,
    id: String,
    /// `name=value` of the refresh-token cookie, with signing keys.
    refresh_cookie: Option<String>,
    access: Option<String>,
    /// The refresh token, from the refresh-token cookie.
    refresh: Option<String>,
}

impl Login {
    fn from_answer(answer: Answer, session_cookie: &str, refresh_cookie: &str) -> Self {
        let cookie = answer.cookie_pair(session_cookie).expect("login sets the session cookie");
        let token = cookie.split_once('=').unwrap().1.to_owned();
        let refresh_pair = answer.cookie_pair(refresh_cookie);
        let refresh = refresh_pair.as_ref().map(|pair| pair.split_once('.').unwrap().1.to_owned());
        Self {
            token,
            cookie,
            csrf: answer.body["csrf_token"].as_str().unwrap().to_owned(),
            id: answer.body["session_id"].as_str().unwrap().to_owned(),
            refresh_cookie: refresh_pair,
            access: answer.body["access_token"].as_str().map(str::to_owned),
            refresh,
            answer,
        }
    }

    fn access(&self) -> &str {
        self.access.as_deref().expect("an access token (signing keys set)")
    }

    fn refresh(&self) -> &str {
        self.refresh.as_deref().expect("a refresh token (signing keys set)")
    }

    fn refresh_cookie(&self) -> &str {
        self.refresh_cookie.as_deref().expect("a refresh-token cookie (signing keys set)")
    }
}

// -------------------------------------------------------------------------------------------
// Log capture
// -------------------------------------------------------------------------------------------

thread_local! {
    /// Where the log output of this thread's test goes, if it captures it.
    static CAPTURE: RefCell<Option<Captured>> = const { RefCell::new(None) };
}

/// Writes to the current thread's capture, if any; drops the output otherwise.
struct ThreadCapture;

impl std::io::Write for ThreadCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        CAPTURE.with(|c| match c.borrow_mut().as_mut() {
            Some(captured) => captured.write_all(buf),
            None => Ok(()),
        })?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs, once for the whole test binary and before anything logs, a global subscriber
/// that writes every event (all levels) to the capture of the thread it happens on. Each test
/// runs on its own thread (tokio's current-thread runtime), so a test captures its own output
/// only. Global rather than a scoped `set_default`: with tests running in parallel, a callsite
/// first hit on another thread while a scoped subscriber is being installed keeps a stale
/// "never" interest, and its events are lost to the capturing test.
fn init_logs() {
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| {
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(|| ThreadCapture)
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only global subscriber");
    });
}

// -------------------------------------------------------------------------------------------
// Requests and answers
// -------------------------------------------------------------------------------------------

/// A request under construction.
struct Req {
    method: Method,
    uri: String,
    headers: Vec<(String, String)>,
    body: String,
}

fn request(method: Method, uri: &str) -> Req {
    Req { method, uri: uri.to_owned(), headers: Vec::new(), body: String::new() }
}

fn get(uri: &str) -> Req {
    request(Method::GET, uri)
}

fn post(uri: &str) -> Req {
    request(Method::POST, uri)
}

impl Req {
    /// Adds a header (a repeated name adds another header line).
    fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    fn bearer(self, token: &str) -> Self {
        self.header("authorization", format!("Bearer {token}"))
    }

    fn cookie(self, pairs: &str) -> Self {
        self.header("cookie", pairs)
    }

    fn origin(self, origin: &str) -> Self {
        self.header("origin", origin)
    }

    fn csrf(self, token: &str) -> Self {
        self.header("x-csrf-token", token)
    }

    /// What a page of [`ORIGIN`] sends on a write: the session cookie, `Origin` and the CSRF
    /// header.
    fn browser(self, login: &Login) -> Self {
        self.cookie(&login.cookie).origin(ORIGIN).csrf(&login.csrf)
    }

    fn json(self, body: &Value) -> Self {
        self.raw("application/json", &body.to_string())
    }

    fn raw(mut self, content_type: &str, body: &str) -> Self {
        self.body = body.to_owned();
        self.header("content-type", content_type)
    }
}

/// A response, its body parsed as JSON (`Null` when empty).
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

async fn send_to(router: &Router, req: Req) -> Answer {
    init_logs();
    let mut builder = Request::builder().method(req.method).uri(req.uri);
    for (name, value) in &req.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let response = router.clone().oneshot(builder.body(Body::from(req.body)).unwrap()).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    Answer { status, headers, body }
}

impl Answer {
    fn set_cookies(&self) -> Vec<String> {
        self.headers.get_all(SET_COOKIE).iter().map(|v| v.to_str().unwrap().to_owned()).collect()
    }

    /// The whole `Set-Cookie` value for the cookie `name`.
    fn set_cookie(&self, name: &str) -> Option<String> {
        let prefix = format!("{name}=");
        self.set_cookies().into_iter().find(|c| c.starts_with(&prefix))
    }

    /// `name=value` of the cookie `name` as set.
    fn cookie_pair(&self, name: &str) -> Option<String> {
        self.set_cookie(name).map(|c| c.split(';').next().unwrap().to_owned())
    }

    /// 200 with a session view of `user` authenticated by `kind`.
    #[track_caller]
    fn assert_session(&self, user: &str, kind: &str) {
        assert_eq!(self.status, StatusCode::OK, "{}", self.body);
        assert_eq!(self.body["user"], user, "{}", self.body);
        assert_eq!(self.body["kind"], kind, "{}", self.body);
    }

    /// An error answer: `status`, `{"error": code, "message": ..}` plus `"reason"` exactly when
    /// given, JSON, and `WWW-Authenticate: Bearer` exactly on 401.
    #[track_caller]
    fn assert_error(&self, status: u16, code: &str, reason: Option<&str>) {
        assert_eq!(self.status.as_u16(), status, "{}", self.body);
        assert_eq!(self.body["error"], code, "{}", self.body);
        assert!(self.body["message"].as_str().is_some_and(|m| !m.is_empty()), "{}", self.body);
        assert_eq!(self.body.get("reason").and_then(Value::as_str), reason, "{}", self.body);
        let fields = self.body.as_object().unwrap().len();
        assert_eq!(fields, 2 + usize::from(reason.is_some()), "only error, message (and reason): {}", self.body);
        assert_eq!(self.headers[CONTENT_TYPE], "application/json");
        if status == 401 {
            assert_eq!(self.headers[WWW_AUTHENTICATE], "Bearer");
        } else {
            assert!(self.headers.get(WWW_AUTHENTICATE).is_none());
        }
    }

    #[track_caller]
    fn assert_csrf_failed(&self) {
        self.assert_error(403, "csrf_failed", None);
    }
}

/// A well-formed session token that names no session (made by another manager).
async fn unknown_token() -> String {
    init_logs();
    let other = SessionManager::new(MemoryStore::new(), SessionConfig::default());
    other
        .create(sessionkit::NewSession::new(UserId::new("ghost").unwrap()))
        .await
        .unwrap()
        .token
        .expose_secret()
        .to_owned()
}

// -------------------------------------------------------------------------------------------
// No credential
// -------------------------------------------------------------------------------------------

#[tokio::test]
async fn no_credential_is_401_invalid_session_as_json_with_www_authenticate() {
    let app = App::new();
    let answer = app.send(get("/me")).await;
    answer.assert_error(401, "invalid_session", None);
    let answer = app.send(post("/me").origin(ORIGIN)).await;
    answer.assert_error(401, "invalid_session", None);
}

#[tokio::test]
async fn optional_session_without_credential_is_none() {
    let app = App::new();
    let answer = app.send(get("/maybe")).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body, json!({ "session": null }));
}

#[tokio::test]
async fn optional_session_with_a_valid_credential_is_some() {
    let app = App::new();
    let alice = app.login("alice").await;
    let answer = app.send(get("/maybe").cookie(&alice.cookie)).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body["session"]["user"], "alice");
    assert_eq!(answer.body["session"]["kind"], "cookie");
    let answer = app.send(get("/maybe").bearer(&alice.token)).await;
    assert_eq!(answer.body["session"]["kind"], "bearer");
}

#[tokio::test]
async fn optional_session_with_a_dead_credential_is_none() {
    let app = App::new();
    let revoked = app.login("alice").await;
    app.manager.revoke(&revoked.token).await.unwrap();
    let expiring = app.login("bob").await;
    let unknown = unknown_token().await;
    for req in [
        get("/maybe").cookie("__Host-session=not-a-token"),
        get("/maybe").bearer("not-a-token"),
        get("/maybe").bearer(&unknown),
        get("/maybe").header("authorization", "Basic YWxpY2U6cGFzcw=="),
        get("/maybe").bearer(&revoked.token),
    ] {
        let answer = app.send(req).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        assert_eq!(answer.body, json!({ "session": null }));
    }
    app.clock.advance(31 * MINUTE);
    let answer = app.send(get("/maybe").cookie(&expiring.cookie)).await;
    assert_eq!((answer.status, &answer.body), (StatusCode::OK, &json!({ "session": null })));
}

#[tokio::test]
async fn optional_session_still_refuses_a_cross_origin_cookie_write() {
    let app = App::new();
    let alice = app.login("alice").await;
    app.send(post("/maybe").cookie(&alice.cookie).origin(EVIL).csrf(&alice.csrf)).await.assert_csrf_failed();
    let answer = app.send(post("/maybe").browser(&alice)).await;
    assert_eq!(answer.body["session"]["user"], "alice", "{}", answer.body);
}

// -------------------------------------------------------------------------------------------
// Malformed, unknown and foreign credentials
// -------------------------------------------------------------------------------------------

#[tokio::test]
async fn malformed_token_in_the_cookie_is_401_invalid_session() {
    let app = App::new();
    for value in ["not-a-token", "A", "A".repeat(44).as_str(), "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"] {
        let answer = app.send(get("/me").cookie(&format!("__Host-session={value}"))).await;
        answer.assert_error(401, "invalid_session", None);
        assert_eq!(answer.body["message"], "malformed session token");
    }
}

#[tokio::test]
async fn malformed_bearer_token_is_401_invalid_session() {
    let app = App::new();
    for value in ["not-a-token", "A", "A".repeat(44).as_str()] {
        let answer = app.send(get("/me").bearer(value)).await;
        answer.assert_error(401, "invalid_session", None);
        assert_eq!(answer.body["message"], "malformed session token");
    }
    for header in ["Bearer", "Bearer    ", "Bearertoken"] {
        let answer = app.send(get("/me").header("authorization", header)).await;
        answer.assert_error(401, "invalid_session", None);
    }
}

#[tokio::test]
async fn unknown_token_is_401_invalid_session() {
    let app = App::new();
    let unknown = unknown_token().await;
    for req in [get("/me").bearer(&unknown), get("/me").cookie(&format!("__Host-session={unknown}"))] {
        let answer = app.send(req).await;
        answer.assert_error(401, "invalid_session", None);
        assert_eq!(answer.body["message"], "unknown session");
    }
}

#[tokio::test]
async fn basic_authorization_is_401_and_not_passed_over_for_the_cookie() {
    let app = App::new();
    let alice = app.login("alice").await;
    let answer = app.send(get("/me").header("authorization", "Basic YWxpY2U6cGFzcw==")).await;
    answer.assert_error(401, "invalid_session", None);
    // Even with a valid session cookie beside it, the Authorization header decides.
    let answer = app.send(get("/me").header("authorization", "Basic YWxpY2U6cGFzcw==").cookie(&alice.cookie)).await;
    answer.assert_error(401, "invalid_session", None);
    app.send(get("/me").cookie(&alice.cookie)).await.assert_session("alice", "cookie");
}

#[tokio::test]
async fn bearer_scheme_is_accepted_in_any_case() {
    let app = App::new();
    let alice = app.login("alice").await;
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let answer = app.send(get("/me").header("authorization", format!("{scheme} {}", alice.token))).await;
        answer.assert_session("alice", "bearer");
    }
}

#[tokio::test]
async fn the_cookie_with_the_wrong_name_is_no_credential() {
    let app = App::new();
    let alice = app.login("alice").await;
    // Without the __Host- prefix (planted by a subdomain, say) the cookie is not read.
    let answer = app.send(get("/me").cookie(&format!("session={}", alice.token))).await;
    answer.assert_error(401, "invalid_session", None);
}

#[tokio::test]
async fn cookies_split_across_several_cookie_headers_are_found() {
    let app = App::with_keys();
    let alice = app.login("alice").await;
    let answer = app.send(get("/me").cookie("theme=dark").cookie(&alice.cookie).cookie("lang=en; tz=UTC")).await;
    answer.assert_session("alice", "cookie");
    // The refresh through the cookie finds both cookies in separate headers too.
    let answer = app
        .send(
            post("/auth/refresh-token")
                .cookie("theme=dark")
                .cookie(alice.refresh_cookie())
                .cookie(&alice.cookie)
                .origin(ORIGIN)
                .csrf(&alice.csrf)
                .json(&json!({})),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert!(answer.body["access_token"].is_string());
}

// -------------------------------------------------------------------------------------------
// Expired sessions
// -------------------------------------------------------------------------------------------

#[tokio::test]
async fn idle_session_is_401_session_expired_reason_idle() {
    let app = App::new();
    let alice = app.login("alice").await;
    app.clock.advance(29 * MINUTE);
    app.send(get("/me").cookie(&alice.cookie)).await.assert_session("alice", "cookie");
    // The request above slid the idle deadline to 59 minutes; 31 more minutes pass it.
    app.clock.advance(31 * MINUTE);
    app.send(get("/me").cookie(&alice.cookie)).await.assert_error(401, "session_expired", Some("idle"));
    app.send(get("/me").bearer(&alice.token)).await.assert_error(401, "session_expired", Some("idle"));
}

#[tokio::test]
async fn session_past_its_absolute_deadline_is_401_session_expired_reason_absolute() {
    let app = App::new();
    let alice = app.login("alice").await;
    // Active every 20 minutes, so the idle deadline never passes: 23 × 20 min = 7 h 40 min.
    for _ in 0..23 {
        app.clock.advance(20 * MINUTE);
        app.send(get("/me").bearer(&alice.token)).await.assert_session("alice", "bearer");
    }
    app.clock.advance(21 * MINUTE);
    let answer = app.send(get("/me").bearer(&alice.token)).await;
    answer.assert_error(401, "session_expired", Some("absolute"));
}

// -------------------------------------------------------------------------------------------
// Revoked sessions, for every reason a request can meet
// -------------------------------------------------------------------------------------------

#[tokio::test]
async fn logged_out_session_is_401_session_revoked_reason_logout() {
    let app = App::new();
    let alice = app.login("alice").await;
    let answer = app.send(post("/logout").bearer(&alice.token)).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT, "{}", answer.body);
    for req in [get("/me").bearer(&alice.token), get("/me").cookie(&alice.cookie)] {
        app.send(req).await.assert_error(401, "session_revoked", Some("logout"));
    }
}

#[tokio::test]
async fn logout_everywhere_is_401_session_revoked_reason_logout_all() {
    let app = App::new();
    let phone = app.login("alice").await;
    let laptop = app.login("alice").await;
    let bob = app.login("bob").await;
    assert_eq!(app.manager.revoke_all(&UserId::new("alice").unwrap(), None).await.unwrap(), 2);
    for alice in [&phone, &laptop] {
        app.send(get("/me").cookie(&alice.cookie)).await.assert_error(401, "session_revoked", Some("logout_all"));
    }
    app.send(get("/me").cookie(&bob.cookie)).await.assert_session("bob", "cookie");
}

#[tokio::test]
async fn admin_revocation_is_401_session_revoked_reason_admin() {
    let app = App::new();
    let alice = app.login("alice").await;
    assert!(app.manager.revoke_by_id(&alice.id.parse().unwrap()).await.unwrap());
    app.send(get("/me").bearer(&alice.token)).await.assert_error(401, "session_revoked", Some("admin"));
}

#[tokio::test]
async fn evicted_session_is_401_session_revoked_reason_evicted() {
    let app = App::with(config().max_sessions_per_user(Some(1)).on_limit(LimitPolicy::EvictOldest), web());
    let first = app.login("alice").await;
    let second = app.login("alice").await;
    app.send(get("/me").cookie(&first.cookie)).await.assert_error(401, "session_revoked", Some("evicted"));
    app.send(get("/me").cookie(&second.cookie)).await.assert_session("alice", "cookie");
}

#[tokio::test]
async fn refresh_token_reuse_is_401_session_revoked_reason_refresh_reuse() {
    let app = App::with_keys();
    let alice = app.login("alice").await;
    let body = json!({ "refresh_token": alice.refresh() });
    let answer = app.send(post("/auth/refresh-token").json(&body)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let successor = answer.body["refresh_token"].as_str().unwrap().to_owned();
    app.clock.advance(Duration::from_secs(6)); // past the 5-second reuse grace
    let answer = app.send(post("/auth/refresh-token").json(&body)).await;
    answer.assert_error(401, "refresh_token_reused", None);
    app.send(get("/me").cookie(&alice.cookie)).await.assert_error(401, "session_revoked", Some("refresh_reuse"));
    // The successor is dead too, and says why.
    let answer = app.send(post("/auth/refresh-token").json(&json!({ "refresh_token": successor }))).await;
    answer.assert_error(401, "invalid_refresh_token", Some("refresh_reuse"));
}

// -------------------------------------------------------------------------------------------
// Access tokens
// -------------------------------------------------------------------------------------------

#[tokio::test]
async fn access_token_authenticates_without_sliding_or_counting() {
    let app = App::with_keys();
    let alice = app.login("alice").await;
    let idle_deadline = app.stored(&alice.id).await.unwrap().idle_expires_at();
    app.clock.advance(5 * MINUTE); // past the touch interval: a counted request would slide
    for _ in 0..3 {
        let answer = app.send(get("/me").bearer(alice.access())).await;
        answer.assert_session("alice", "access");
        assert_eq!(answer.body["access_sid"], alice.id.as_str());
        assert_eq!(answer.body["is_cookie"], false);
    }
    let stored = app.stored(&alice.id).await.unwrap();
    assert_eq!(stored.idle_expires_at(), idle_deadline, "an access token does not slide the idle deadline");
    assert_eq!(stored.request_count(), 0, "an access token is not counted");
}

#[tokio::test]
async fn session_token_request_is_counted_and_slides_the_idle_deadline() {
    let app = App::with_keys();
    let alice = app.login("alice").await;
    app.clock.advance(5 * MINUTE);
    let answer = app.send(get("/me").bearer(&alice.token)).await;
    answer.assert_session("alice", "bearer");
    assert_eq!(answer.body["request_count"], 1);
    app.send(get("/me").cookie(&alice.cookie)).await.assert_session("alice", "cookie");
    let stored = app.stored(&alice.id).await.unwrap();
    assert_eq!(stored.request_count(), 2);
    assert_eq!(stored.idle_expires_at().unix_timestamp(), app.now() + 30 * 60);
}

#[tokio::test]
async fn expired_access_token_is_401_access_token_expired() {
    let app = App::with_keys();
    let alice = app.login("alice").await;
    // Valid until its 15 minutes and 30 seconds of leeway have passed.
    app.clock.advance(15 * MINUTE + Duration::from_secs(29));
    app.send(get("/me").bearer(alice.access())).await.assert_session("alice", "access");
    app.clock.advance(Duration::from_secs(2));
    app.send(get("/me").bearer(alice.access())).await.assert_error(401, "access_token_expired", None);
    // The session itself lives on.
    app.send(get("/me").bearer(&alice.token)).await.assert_session("alice", "bearer");
}

#[tokio::test]
async fn forged_or_tampered_access_token_is_401_invalid_access_token() {
    let app = App::with_keys();
    let alice = app.login("alice").await;
    let access = alice.access();
    let parts: Vec<&str> = access.split('.').collect();
    assert_eq!(parts.len(), 3);

    // The payload changed to name another user, the signature kept.
    let mut claims: Value = serde_json::from_slice(&B64.decode(parts[1]).unwrap()).unwrap();
    claims["sub"] = json!("mallory");
    let tampered = format!("{}.{}.{}", parts[0], B64.encode(claims.to_string()), parts[2]);
    // The signature changed.
    let mut signature = B64.decode(parts[2]).unwrap();
    signature[0] ^= 1;
    let resigned = format!("{}.{}.{}", parts[0], parts[1], B64.encode(&signature));
    // Signed with another key under the same key id.
    let other = App::with_keys();
    let forger = other.login("alice").await;
    for token in [tampered.as_str(), resigned.as_str(), forger.access()] {
        app.send(get("/me").bearer(token)).await.assert_error(401, "invalid_access_token", None);
    }
    app.send(get("/me").bearer(access)).await.assert_session("alice", "access");
}

#[tokio::test]
async fn access_token_of_a_revoked_session_is_401_session_revoked() {
    let app = App::with_keys();
    let alice = app.login("alice").await;
    assert!(app.manager.revoke_by_id(&alice.id.parse().unwrap()).await.unwrap());
    app.send(get("/me").bearer(alice.access())).await.assert_error(401, "session_revoked", Some("admin"));
}

#[tokio::test]
async fn jwt_shaped_bearer_without_signing_keys_is_401_invalid_session() {
    // Without signing keys there are no access tokens: a JWT-shaped credential is the
    // client's mistake (401), not a server failure (500), and OptionalSession reads it as none.
    let app = App::new();
    let other = App::with_keys();
    let alice = other.login("alice").await;
    for token in [alice.access(), "a.b.c"] {
        app.send(get("/me").bearer(token)).await.assert_error(401, "invalid_session", None);
        let answer = app.send(get("/maybe").bearer(token)).await;
        assert_eq!((answer.status, &answer.body), (StatusCode::OK, &json!({ "session": null })));
    }
}

// -------------------------------------------------------------------------------------------
// The CSRF guard
// -------------------------------------------------------------------------------------------

#[tokio::test]
async fn cookie_post_from_the_allowed_origin_with_the_csrf_token_passes() {
    let app = App::new();
    let alice = app.login("alice").await;
    let answer = app.send(post("/me").browser(&alice)).await;
    answer.assert_session("alice", "cookie");
    assert_eq!(answer.body["is_cookie"], true);
    // The origin is compared normalised: the default port is the same origin.
    let answer =
        app.send(post("/me").cookie(&alice.cookie).origin("https://APP.example.com:443").csrf(&alice.csrf)).await;
    answer.assert_session("alice", "cookie");
    for method in [Method::PUT, Method::PATCH, Method::DELETE] {
        let answer = app.send(request(method.clone(), "/maybe").cookie(&alice.cookie).origin(EVIL)).await;
        answer.assert_csrf_failed();
    }
}

/// The guard refuses `req` (a cookie-authenticated POST to `/me`) with 403 before the store is
/// asked: the session is neither counted nor changed.
async fn assert_refused_before_the_store(app: &App, login: &Login, req: Req) {
    let before = app.stored(&login.id).await.unwrap();
    app.send(req).await.assert_csrf_failed();
    let after = app.stored(&login.id).await.unwrap();
    assert_eq!(after.request_count(), before.request_count(), "not counted");
    assert_eq!(after.idle_expires_at(), before.idle_expires_at(), "not renewed");
}

#[tokio::test]
async fn cookie_post_from_another_origin_is_403_csrf_failed() {
    let app = App::new();
    let alice = app.login("alice").await;
    for origin in
        [EVIL, "http://app.example.com", "https://app.example.com:8443", "https://app.example.com.evil.example"]
    {
        let req = post("/me").cookie(&alice.cookie).origin(origin).csrf(&alice.csrf);
        assert_refused_before_the_store(&app, &alice, req).await;
    }
}

#[tokio::test]
async fn cookie_post_with_origin_null_is_403_csrf_failed() {
    let app = App::new();
    let alice = app.login("alice").await;
    let req = post("/me").cookie(&alice.cookie).origin("null").csrf(&alice.csrf);
    assert_refused_before_the_store(&app, &alice, req).await;
    // A null origin is refused even when the fetch metadata claims same-origin.
    let req =
        post("/me").cookie(&alice.cookie).origin("null").header("sec-fetch-site", "same-origin").csrf(&alice.csrf);
    assert_refused_before_the_store(&app, &alice, req).await;
}

#[tokio::test]
async fn cookie_post_without_origin_or_fetch_metadata_is_403_csrf_failed() {
    let app = App::new();
    let alice = app.login("alice").await;
    let req = post("/me").cookie(&alice.cookie).csrf(&alice.csrf);
    assert_refused_before_the_store(&app, &alice, req).await;
}

#[tokio::test]
async fn cookie_post_with_sec_fetch_site_other_than_same_origin_is_403_csrf_failed() {
    let app = App::new();
    let alice = app.login("alice").await;
    for site in ["cross-site", "same-site", "none"] {
        let req = post("/me").cookie(&alice.cookie).header("sec-fetch-site", site).csrf(&alice.csrf);
        assert_refused_before_the_store(&app, &alice, req).await;
    }
}

#[tokio::test]
async fn cookie_post_with_sec_fetch_site_same_origin_and_no_origin_passes() {
    let app = App::new();
    let alice = app.login("alice").await;
    let answer =
        app.send(post("/me").cookie(&alice.cookie).header("sec-fetch-site", "same-origin").csrf(&alice.csrf)).await;
    answer.assert_session("alice", "cookie");
    // The CSRF token is still required.
    let req = post("/me").cookie(&alice.cookie).header("sec-fetch-site", "same-origin");
    assert_refused_before_the_store(&app, &alice, req).await;
}

#[tokio::test]
async fn missing_malformed_or_foreign_csrf_token_is_403_and_changes_nothing() {
    let app = App::new();
    let alice = app.login("alice").await;
    let bob = app.login("bob").await;
    let another_of_alice = app.login("alice").await;
    let mut malformed = alice.csrf.clone();
    malformed.pop();
    let mut flipped = alice.csrf.clone().into_bytes();
    flipped[0] = if flipped[0] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    let bad_tokens: Vec<Option<&str>> = vec![
        None,
        Some(""),
        Some(malformed.as_str()),
        Some("not a token at all"),
        Some(flipped.as_str()),
        Some(bob.csrf.as_str()),
        Some(another_of_alice.csrf.as_str()),
    ];
    app.clock.advance(5 * MINUTE); // so that a renewal would show
    let before = app.stored(&alice.id).await.unwrap();
    for csrf in bad_tokens {
        for path in ["/me", "/logout", "/rotate", "/extend", "/maybe"] {
            let mut req = post(path).cookie(&alice.cookie).origin(ORIGIN);
            if let Some(csrf) = csrf {
                req = req.csrf(csrf);
            }
            app.send(req).await.assert_csrf_failed();
        }
    }
    // Nothing changed: not logged out, not rotated, not renewed, not counted.
    let after = app.stored(&alice.id).await.expect("still live");
    assert_eq!(after.request_count(), before.request_count());
    assert_eq!(after.idle_expires_at(), before.idle_expires_at());
    app.send(get("/me").cookie(&alice.cookie)).await.assert_session("alice", "cookie");
    app.send(post("/me").browser(&alice)).await.assert_session("alice", "cookie");
}

#[tokio::test]
async fn csrf_token_read_before_rotation_is_refused_after_it() {
    let app = App::new();
    let alice = app.login("alice").await;
    let answer = app.send(post("/rotate").browser(&alice)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert!(answer.body.get("session_token").is_none(), "through the cookie the token stays in the cookie");
    assert_eq!(answer.body["session_id"], alice.id.as_str());
    let new_csrf = answer.body["csrf_token"].as_str().unwrap().to_owned();
    assert_ne!(new_csrf, alice.csrf);
    let new_cookie = answer.cookie_pair("__Host-session").expect("the new session cookie");
    assert_ne!(new_cookie, alice.cookie);

    // The old CSRF token with the new cookie: refused.
    app.send(post("/me").cookie(&new_cookie).origin(ORIGIN).csrf(&alice.csrf)).await.assert_csrf_failed();
    // The new one (from the rotation's answer) works...
    app.send(post("/me").cookie(&new_cookie).origin(ORIGIN).csrf(&new_csrf)).await.assert_session("alice", "cookie");
    // ...and is the one CurrentSession::csrf_token gives the page.
    let answer = app.send(get("/me").cookie(&new_cookie)).await;
    assert_eq!(answer.body["csrf_token"], new_csrf.as_str());
    // The old session token is gone.
    app.send(get("/me").cookie(&alice.cookie)).await.assert_error(401, "invalid_session", None);
}

#[tokio::test]
async fn bearer_post_with_a_hostile_origin_and_no_csrf_token_passes() {
    let app = App::with_keys();
    let alice = app.login("alice").await;
    let answer = app.send(post("/me").bearer(&alice.token).origin(EVIL).header("sec-fetch-site", "cross-site")).await;
    answer.assert_session("alice", "bearer");
    let answer = app.send(post("/me").bearer(alice.access()).origin("null")).await;
    answer.assert_session("alice", "access");
}

#[tokio::test]
async fn cookie_get_from_another_origin_passes() {
    let app = App::new();
    let alice = app.login("alice").await;
    let answer = app.send(get("/me").cookie(&alice.cookie).origin(EVIL).header("sec-fetch-site", "cross-site")).await;
    answer.assert_session("alice", "cookie");
    for method in [Method::HEAD, Method::OPTIONS] {
        let answer = app.send(request(method, "/maybe").cookie(&alice.cookie).origin(EVIL)).await;
        assert_eq!(answer.status, StatusCode::OK);
    }
    let answer = app.send(request(Method::OPTIONS, "/maybe").cookie(&alice.cookie).origin(EVIL)).await;
    assert_eq!(answer.body["session"]["user"], "alice");
}

#[tokio::test]
async fn dns_rebinding_request_is_refused_by_the_explicit_origin_list() {
    let rebinding = |login: &Login| {
        post("/me").cookie(&login.cookie).header("host", "evil.example").origin("http://evil.example").csrf(&login.csrf)
    };
    let app = App::new();
    let alice = app.login("alice").await;
    assert_refused_before_the_store(&app, &alice, rebinding(&alice)).await;
    // The request-host policy trusts the Host header, which is why it is not the default.
    let trusting = App::with(config(), WebConfig::builder(AllowedOrigins::request_host(true)));
    let alice = trusting.login("alice").await;
    trusting.send(rebinding(&alice)).await.assert_session("alice", "cookie");
}

#[tokio::test]
async fn cross_origin_login_is_403_and_creates_no_session() {
    let app = App::new();
    let alice = UserId::new("alice").unwrap();
    let body = json!({ "user": "alice" });
    for req in [
        post("/login").origin(EVIL).json(&body),
        post("/login").origin("null").json(&body),
        post("/login").header("sec-fetch-site", "cross-site").json(&body),
    ] {
        app.send(req).await.assert_csrf_failed();
    }
    assert!(app.manager.list(&alice).await.unwrap().is_empty());
    // The application's own page, and a client that sends no Origin, may log in.
    for req in [post("/login").origin(ORIGIN).json(&body), post("/login").json(&body)] {
        assert_eq!(app.send(req).await.status, StatusCode::OK);
    }
    assert_eq!(app.manager.list(&alice).await.unwrap().len(), 2);
}

// -------------------------------------------------------------------------------------------
// Store outage: 503, never 401
// -------------------------------------------------------------------------------------------

#[tokio::test]
async fn store_outage_is_503_for_current_session() {
    let app = App::with_keys();
    let alice = app.login("alice").await;
    app.store_down(true);
    for req in [
        get("/me").cookie(&alice.cookie),
        get("/me").bearer(&alice.token),
        get("/me").bearer(alice.access()),
        post("/me").browser(&alice),
    ] {
        app.send(req).await.assert_error(503, "store_unavailable", None);
    }
    app.store_down(false);
    app.send(get("/me").cookie(&alice.cookie)).await.assert_session("alice", "cookie");
}

#[tokio::test]
async fn store_outage_is_503_for_optional_session_not_none() {
    let app = App::new();
    let alice = app.login("alice").await;
    app.store_down(true);
    app.send(get("/maybe").cookie(&alice.cookie)).await.assert_error(503, "store_unavailable", None);
    app.send(get("/maybe").bearer(&alice.token)).await.assert_error(503, "store_unavailable", None);
    // Without a credential there is nothing to look up.
    assert_eq!(app.send(get("/maybe")).await.body, json!({ "session": null }));
}

#[tokio::test]
async fn store_outage_is_503_for_login() {
    let app = App::new();
    app.store_down(true);
    let answer = app.send(post("/login").json(&json!({ "user": "alice" }))).await;
    answer.assert_error(503, "store_unavailable", None);
    assert!(answer.set_cookies().is_empty());
}

#[tokio::test]
async fn store_outage_is_503_for_logout() {
    let app = App::new();
    let alice = app.login("alice").await;
    app.store_down(true);
    for req in [post("/logout").bearer(&alice.token), post("/logout").browser(&alice)] {
        let answer = app.send(req).await;
        answer.assert_error(503, "store_unavailable", None);
        assert!(answer.set_cookies().is_empty(), "cookies are not cleared when nothing was ended");
    }
    app.store_down(false);
    app.send(get("/me").bearer(&alice.token)).await.assert_session("alice", "bearer");
}

#[tokio::test]
async fn store_outage_is_503_for_rotate_extend_and_refresh() {
    let app = App::with_keys();
    let alice = app.login("alice").await;
    app.store_down(true);
    for req in [
        post("/rotate").browser(&alice),
        post("/extend").bearer(&alice.token),
        post("/auth/refresh-token").json(&json!({ "refresh_token": alice.refresh() })),
        post("/auth/refresh-token")
            .cookie(&format!("{}; {}", alice.cookie, alice.refresh_cookie()))
            .origin(ORIGIN)
            .csrf(&alice.csrf)
            .json(&json!({})),
    ] {
        app.send(req).await.assert_error(503, "store_unavailable", None);
    }
}

// -------------------------------------------------------------------------------------------
// Cookies
// -------------------------------------------------------------------------------------------

#[tokio::test]
async fn login_sets_a_host_prefixed_browser_session_cookie() {
    let app = App::new();
    let alice = app.login("alice").await;
    let cookies = alice.answer.set_cookies();
    assert_eq!(cookies, [format!("__Host-session={}; HttpOnly; SameSite=Lax; Path=/; Secure", alice.token)]);
    assert_eq!(alice.answer.body["session_token"], alice.token.as_str());
    assert_eq!(alice.answer.body["remember_me"], false);
    assert_eq!(alice.answer.body["user"], "alice");
    assert!(alice.answer.body.get("access_token").is_none(), "no signing keys, no token pair");
    assert_eq!(alice.answer.headers["cache-control"], "no-store", "token answers are never cached");
}

#[tokio::test]
async fn remember_me_cookies_last_until_the_absolute_deadline_never_longer() {
    let app = App::with_keys();
    let alice = app.login_with(json!({ "user": "alice", "remember_me": true })).await;
    assert_eq!(alice.answer.body["remember_me"], true);
    let absolute = app.stored(&alice.id).await.unwrap().absolute_expires_at().unix_timestamp();
    let max_age = |set_cookie: &str| -> i64 {
        set_cookie.split("; ").find_map(|a| a.strip_prefix("Max-Age=")).expect("Max-Age").parse().unwrap()
    };
    let session_cookie = alice.answer.set_cookie("__Host-session").unwrap();
    let refresh_cookie = alice.answer.set_cookie("refresh_token").unwrap();
    assert_eq!(max_age(&session_cookie), 30 * 86_400);
    for cookie in [&session_cookie, &refresh_cookie] {
        assert!(max_age(cookie) <= absolute - app.now(), "{cookie}");
        assert!(max_age(cookie) > 0, "{cookie}");
    }
    // A day later, a rotation's cookies last only as long as the session has left.
    app.clock.advance(DAY);
    let answer = app.send(post("/rotate").browser(&alice)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    for name in ["__Host-session", "refresh_token"] {
        let cookie = answer.set_cookie(name).unwrap();
        assert_eq!(max_age(&cookie), absolute - app.now(), "{cookie}");
        assert_eq!(max_age(&cookie), 29 * 86_400, "{cookie}");
    }
}

#[tokio::test]
async fn insecure_development_config_names_the_cookie_session_without_secure() {
    let app = App::with(config(), web().secure(false));
    app.set_keys();
    let alice = app.login("alice").await;
    assert_eq!(
        alice.answer.set_cookie("session").unwrap(),
        format!("session={}; HttpOnly; SameSite=Lax; Path=/", alice.token)
    );
    let refresh = alice.answer.set_cookie("refresh_token").unwrap();
    assert!(!refresh.contains("Secure"), "{refresh}");
    assert!(alice.answer.set_cookie("__Host-session").is_none());
    app.send(get("/me").cookie(&format!("session={}", alice.token))).await.assert_session("alice", "cookie");
    // The production name is not read.
    let answer = app.send(get("/me").cookie(&format!("__Host-session={}", alice.token))).await;
    answer.assert_error(401, "invalid_session", None);
}

#[tokio::test]
async fn refresh_cookie_is_strict_and_scoped_to_the_refresh_path() {
    let app = App::with_keys();
    let alice = app.login("alice").await;
    let refresh = alice.answer.body["refresh_token"].as_str().unwrap();
    assert_eq!(alice.refresh(), refresh);
    assert_eq!(
        alice.answer.set_cookie("refresh_token").unwrap(),
        format!("refresh_token={}.{refresh}; HttpOnly; SameSite=Strict; Path=/auth/refresh-token; Secure", alice.id)
    );
    assert_eq!(alice.answer.set_cookies().len(), 2);
    assert_eq!(alice.answer.body["token_type"], "Bearer");
    assert_eq!(alice.answer.body["expires_in"], 900);
}

#[tokio::test]
async fn refresh_secure_prefix_names_the_cookie_secure_refresh_token() {
    let app = App::with(config(), web().refresh_secure_prefix(true));
    app.set_keys();
    let alice = app.login("alice").await;
    let cookie = alice.answer.set_cookie("__Secure-refresh_token").expect("prefixed refresh cookie");
    assert!(cookie.ends_with("; HttpOnly; SameSite=Strict; Path=/auth/refresh-token; Secure"), "{cookie}");
    assert!(alice.answer.set_cookie("refresh_token").is_none());
    // It is read back under that name.
    let answer = app
        .send(
            post("/auth/refresh-token")
                .cookie(&format!("{}; {}", alice.cookie, alice.refresh_cookie()))
                .origin(ORIGIN)
                .csrf(&alice.csrf)
                .json(&json!({})),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert!(answer.set_cookie("__Secure-refresh_token").is_some());
}

#[tokio::test]
async fn logout_clears_both_cookies() {
    let app = App::with_keys();
    let alice = app.login("alice").await;
    let answer = app.send(post("/logout").browser(&alice)).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT, "{}", answer.body);
    assert_eq!(
        answer.set_cookies(),
        [
            "__Host-session=; HttpOnly; SameSite=Lax; Path=/; Secure; Max-Age=0",
            "refresh_token=; HttpOnly; SameSite=Strict; Path=/auth/refresh-token; Secure; Max-Age=0",
        ]
    );
}

#[tokio::test]
async fn cookie_only_login_keeps_the_tokens_out_of_the_body() {
    let app = App::with_keys();
    let alice = app.login_with(json!({ "user": "alice", "cookie_only": true })).await;
    let body = alice.answer.body.as_object().unwrap();
    assert!(!body.contains_key("session_token"), "{body:?}");
    assert!(!body.contains_key("refresh_token"), "{body:?}");
    for field in ["csrf_token", "session_id", "access_token", "expires_in", "absolute_expires_at"] {
        assert!(body.contains_key(field), "{field}: {body:?}");
    }
    // The cookies carry them.
    assert!(alice.refresh.is_some());
    app.send(get("/me").cookie(&alice.cookie)).await.assert_session("alice", "cookie");
}

// -------------------------------------------------------------------------------------------
// Token refresh through the cookie and through the body
// -------------------------------------------------------------------------------------------

/// A refresh through the cookie, as the page sends it.
fn cookie_refresh(login: &Login, refresh_cookie: &str) -> Req {
    post("/auth/refresh-token")
        .cookie(&format!("{}; {refresh_cookie}", login.cookie))
        .origin(ORIGIN)
        .csrf(&login.csrf)
        .json(&json!({}))
}

#[tokio::test]
async fn refresh_through_the_cookie_sets_the_successor_and_keeps_it_out_of_the_body() {
    let app = App::with_keys();
    let alice = app.login_with(json!({ "user": "alice", "cookie_only": true })).await;
    let answer = app.send(cookie_refresh(&alice, alice.refresh_cookie())).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert!(answer.body.get("refresh_token").is_none(), "{}", answer.body);
    assert_eq!(answer.body["token_type"], "Bearer");
    assert_eq!(answer.body["expires_in"], 900);
    let access = answer.body["access_token"].as_str().unwrap();
    assert_ne!(access, alice.access());
    app.send(get("/me").bearer(access)).await.assert_session("alice", "access");
    let successor = answer.set_cookie("refresh_token").expect("the successor cookie");
    let (value, attributes) = successor.split_once("; ").unwrap();
    assert_eq!(attributes, "HttpOnly; SameSite=Strict; Path=/auth/refresh-token; Secure");
    let (sid, token) = value.strip_prefix("refresh_token=").unwrap().split_once('.').unwrap();
    assert_eq!(sid, alice.id);
    assert_ne!(token, alice.refresh());
    assert_eq!(answer.set_cookies().len(), 1, "the session cookie is not touched");
    // The successor works in turn.
    let answer = app.send(cookie_refresh(&alice, value)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
}

#[tokio::test]
async fn refresh_with_the_token_in_the_body_answers_in_the_body_and_sets_no_cookie() {
    let app = App::with_keys();
    let alice = app.login("alice").await;
    let answer = app.send(post("/auth/refresh-token").json(&json!({ "refresh_token": alice.refresh() }))).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert!(answer.set_cookies().is_empty());
    assert_eq!(answer.headers["cache-control"], "no-store", "token answers are never cached");
    let next = answer.body["refresh_token"].as_str().unwrap();
    assert_ne!(next, alice.refresh());
    assert!(answer.body["access_token"].is_string());
    let answer = app.send(post("/auth/refresh-token").json(&json!({ "refresh_token": next }))).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let answer = app.send(post("/auth/refresh-token").json(&json!({ "refresh_token": "garbage" }))).await;
    answer.assert_error(401, "invalid_refresh_token", None);
    let answer = app.send(post("/auth/refresh-token").json(&json!({}))).await;
    answer.assert_error(400, "invalid_request", None);
}

#[tokio::test]
async fn refresh_through_the_cookie_is_guarded_and_spends_nothing_when_refused() {
    let app = App::with_keys();
    let alice = app.login("alice").await;
    let both = format!("{}; {}", alice.cookie, alice.refresh_cookie());
    let refresh = |req: Req| req.json(&json!({}));
    for req in [
        post("/auth/refresh-token").cookie(&both).origin(ORIGIN),
        post("/auth/refresh-token").cookie(&both).origin(ORIGIN).csrf("forged"),
        post("/auth/refresh-token").cookie(&both).origin(EVIL).csrf(&alice.csrf),
        post("/auth/refresh-token").cookie(&both).csrf(&alice.csrf),
    ] {
        app.send(refresh(req)).await.assert_csrf_failed();
    }
    let answer = app
        .send(refresh(post("/auth/refresh-token").cookie(alice.refresh_cookie()).origin(ORIGIN).csrf(&alice.csrf)))
        .await;
    answer.assert_error(401, "invalid_session", None);
    // Past the reuse grace: a spent token would now be reuse.
    app.clock.advance(Duration::from_secs(6));
    let answer = app.send(cookie_refresh(&alice, alice.refresh_cookie())).await;
    assert_eq!(answer.status, StatusCode::OK, "nothing was spent: {}", answer.body);
}

#[tokio::test]
async fn refresh_cookie_of_another_session_is_refused_before_it_is_spent() {
    let app = App::with_keys();
    let victim = app.login("alice").await;
    let other = app.login("bob").await;
    // Bob's refresh cookie (planted, or left by another tab's login) beside alice's session
    // cookie: refused before bob's refresh token is spent.
    app.send(cookie_refresh(&victim, other.refresh_cookie())).await.assert_csrf_failed();
    // Alice's session id with another session's token: refused, and nothing handed out.
    let mixed = format!("refresh_token={}.{}", victim.id, app.login("carol").await.refresh());
    let answer = app.send(cookie_refresh(&victim, &mixed)).await;
    answer.assert_csrf_failed();
    assert!(answer.set_cookies().is_empty());
    // Past the reuse grace, a spent token would be reuse and end its session: bob's and
    // alice's refresh tokens both still work.
    app.clock.advance(Duration::from_secs(6));
    for login in [&other, &victim] {
        let answer = app.send(post("/auth/refresh-token").json(&json!({ "refresh_token": login.refresh() }))).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    }
    app.send(get("/me").cookie(&other.cookie)).await.assert_session("bob", "cookie");
    app.send(get("/me").cookie(&victim.cookie)).await.assert_session("alice", "cookie");
}

// -------------------------------------------------------------------------------------------
// Logout, renewal and rotation
// -------------------------------------------------------------------------------------------

#[tokio::test]
async fn logout_through_the_cookie_needs_the_csrf_header() {
    let app = App::new();
    let alice = app.login("alice").await;
    let answer = app.send(post("/logout").cookie(&alice.cookie).origin(ORIGIN)).await;
    answer.assert_csrf_failed();
    assert!(answer.set_cookies().is_empty());
    app.send(get("/me").cookie(&alice.cookie)).await.assert_session("alice", "cookie");
    let answer = app.send(post("/logout").cookie(&alice.cookie).csrf(&alice.csrf)).await;
    answer.assert_csrf_failed();
    let answer = app.send(post("/logout").browser(&alice)).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT, "{}", answer.body);
    app.send(get("/me").cookie(&alice.cookie)).await.assert_error(401, "session_revoked", Some("logout"));
}

#[tokio::test]
async fn logout_of_an_already_revoked_token_is_401_session_revoked_reason_logout() {
    let app = App::new();
    let alice = app.login("alice").await;
    assert_eq!(app.send(post("/logout").bearer(&alice.token)).await.status, StatusCode::NO_CONTENT);
    for req in [post("/logout").bearer(&alice.token), post("/logout").browser(&alice)] {
        let answer = app.send(req).await;
        answer.assert_error(401, "session_revoked", Some("logout"));
    }
}

#[tokio::test]
async fn logout_without_a_credential_or_of_an_expired_session_is_401() {
    let app = App::new();
    app.send(post("/logout")).await.assert_error(401, "invalid_session", None);
    app.send(post("/logout").bearer(&unknown_token().await)).await.assert_error(401, "invalid_session", None);
    let alice = app.login("alice").await;
    app.clock.advance(31 * MINUTE);
    app.send(post("/logout").bearer(&alice.token)).await.assert_error(401, "session_expired", Some("idle"));
}

#[tokio::test]
async fn logout_with_an_access_token_ends_its_session() {
    let app = App::with_keys();
    let alice = app.login("alice").await;
    let answer = app.send(post("/logout").bearer(alice.access())).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT, "{}", answer.body);
    app.send(get("/me").bearer(&alice.token)).await.assert_error(401, "session_revoked", Some("logout"));
    app.send(get("/me").bearer(alice.access())).await.assert_error(401, "session_revoked", Some("logout"));
}

#[tokio::test]
async fn extend_renews_the_idle_deadline_without_counting() {
    let app = App::with_keys();
    let alice = app.login("alice").await;
    app.clock.advance(10 * MINUTE);
    let answer = app.send(post("/extend").bearer(&alice.token)).await;
    answer.assert_session("alice", "bearer");
    assert_eq!(answer.body["idle_expires_at"], app.now() + 30 * 60);
    let stored = app.stored(&alice.id).await.unwrap();
    assert_eq!(stored.idle_expires_at().unix_timestamp(), app.now() + 30 * 60);
    assert_eq!(stored.request_count(), 0);
    // With an access token the session is answered unchanged.
    app.clock.advance(2 * MINUTE); // the access token is still valid
    let answer = app.send(post("/extend").bearer(alice.access())).await;
    answer.assert_session("alice", "access");
    assert_eq!(answer.body["idle_expires_at"], stored.idle_expires_at().unix_timestamp());
}

#[tokio::test]
async fn extend_through_the_cookie_needs_the_csrf_guard() {
    let app = App::new();
    let alice = app.login("alice").await;
    app.clock.advance(10 * MINUTE);
    let deadline = app.stored(&alice.id).await.unwrap().idle_expires_at();
    app.send(post("/extend").cookie(&alice.cookie).origin(EVIL).csrf(&alice.csrf)).await.assert_csrf_failed();
    app.send(post("/extend").cookie(&alice.cookie).origin(ORIGIN)).await.assert_csrf_failed();
    assert_eq!(app.stored(&alice.id).await.unwrap().idle_expires_at(), deadline);
    let answer = app.send(post("/extend").browser(&alice)).await;
    answer.assert_session("alice", "cookie");
    assert_eq!(answer.body["idle_expires_at"], app.now() + 30 * 60);
}

#[tokio::test]
async fn rotate_with_a_bearer_token_answers_the_new_token_in_the_body() {
    let app = App::with_keys();
    let alice = app.login("alice").await;
    let answer = app.send(post("/rotate").bearer(&alice.token)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert!(answer.set_cookies().is_empty());
    assert_eq!(answer.body["session_id"], alice.id.as_str());
    let token = answer.body["session_token"].as_str().unwrap();
    assert!(answer.body["refresh_token"].is_string());
    assert!(answer.body["access_token"].is_string());
    app.send(get("/me").bearer(token)).await.assert_session("alice", "bearer");
    app.send(get("/me").bearer(&alice.token)).await.assert_error(401, "invalid_session", None);
    // The refresh tokens from before the rotation stopped working.
    let answer = app.send(post("/auth/refresh-token").json(&json!({ "refresh_token": alice.refresh() }))).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.body);
}

#[tokio::test]
async fn rotate_needs_the_session_token_not_an_access_token() {
    let app = App::with_keys();
    let alice = app.login("alice").await;
    app.send(post("/rotate").bearer(alice.access())).await.assert_error(401, "invalid_session", None);
    app.send(post("/rotate")).await.assert_error(401, "invalid_session", None);
    app.send(get("/me").bearer(&alice.token)).await.assert_session("alice", "bearer");
}

// -------------------------------------------------------------------------------------------
// JSON bodies and a route without the layer
// -------------------------------------------------------------------------------------------

#[tokio::test]
async fn malformed_json_body_is_400_invalid_request() {
    let app = App::new();
    for body in ["{not json", "", "[1, 2", "{\"user\": 42}"] {
        let answer = app.send(post("/login").raw("application/json", body)).await;
        answer.assert_error(400, "invalid_request", None);
    }
    let answer = app.send(post("/echo").json(&json!({ "a": 1 }))).await;
    assert_eq!((answer.status, &answer.body), (StatusCode::OK, &json!({ "a": 1 })));
}

#[tokio::test]
async fn wrong_content_type_is_415_unsupported_media_type() {
    let app = App::new();
    for content_type in ["text/plain", "application/x-www-form-urlencoded"] {
        let answer = app.send(post("/echo").raw(content_type, "{}")).await;
        answer.assert_error(415, "unsupported_media_type", None);
    }
    let mut req = post("/echo");
    req.body = "{}".to_owned();
    app.send(req).await.assert_error(415, "unsupported_media_type", None);
}

#[tokio::test]
async fn route_without_the_layer_is_500_internal_error_not_a_panic() {
    let bare = routes();
    let app = App::new();
    let alice = app.login("alice").await;
    for req in [
        get("/me").cookie(&alice.cookie),
        get("/maybe"),
        post("/logout").bearer(&alice.token),
        post("/login").json(&json!({ "user": "alice" })),
    ] {
        send_to(&bare, req).await.assert_error(500, "internal_error", None);
    }
}

// -------------------------------------------------------------------------------------------
// Logs
// -------------------------------------------------------------------------------------------

#[tokio::test]
async fn no_token_appears_in_the_logs() {
    let captured = Captured::default();
    init_logs();
    CAPTURE.with(|c| *c.borrow_mut() = Some(captured.clone()));

    let app = App::with_keys();
    let mut secrets: Vec<String> = Vec::new();
    let mut keep = |s: &str| secrets.push(s.to_owned());

    // Logins, a body refresh, a cookie refresh and a rotation.
    let alice = app.login("alice").await;
    let bob = app.login_with(json!({ "user": "bob", "cookie_only": true })).await;
    let carol = app.login("carol").await;
    for login in [&alice, &bob, &carol] {
        keep(&login.token);
        keep(&login.csrf);
        keep(login.access());
        keep(login.refresh());
    }
    for login in [&alice, &carol] {
        let answer = app.send(post("/auth/refresh-token").json(&json!({ "refresh_token": login.refresh() }))).await;
        assert_eq!(answer.status, StatusCode::OK);
        keep(answer.body["access_token"].as_str().unwrap());
        keep(answer.body["refresh_token"].as_str().unwrap());
    }
    let answer = app.send(cookie_refresh(&bob, bob.refresh_cookie())).await;
    assert_eq!(answer.status, StatusCode::OK);
    keep(answer.body["access_token"].as_str().unwrap());
    keep(answer.cookie_pair("refresh_token").unwrap().split_once('.').unwrap().1);
    let answer = app.send(post("/rotate").bearer(&alice.token)).await;
    assert_eq!(answer.status, StatusCode::OK);
    let rotated = answer.body["session_token"].as_str().unwrap().to_owned();
    keep(&rotated);
    for field in ["csrf_token", "access_token", "refresh_token"] {
        keep(answer.body[field].as_str().unwrap());
    }

    // Failures: CSRF, origin, dead and forged credentials, a reused refresh token.
    app.send(post("/me").cookie(&bob.cookie).origin(ORIGIN).csrf(&alice.csrf)).await.assert_csrf_failed();
    app.send(post("/me").cookie(&bob.cookie).origin(EVIL).csrf(&bob.csrf)).await.assert_csrf_failed();
    app.send(get("/me").bearer(&alice.token)).await.assert_error(401, "invalid_session", None);
    let forged = format!("{}x", alice.access());
    app.send(get("/me").bearer(&forged)).await.assert_error(401, "invalid_access_token", None);
    app.clock.advance(Duration::from_secs(6));
    let answer = app.send(post("/auth/refresh-token").json(&json!({ "refresh_token": carol.refresh() }))).await;
    answer.assert_error(401, "refresh_token_reused", None);

    // A store outage, and a route without the layer.
    app.store_down(true);
    app.send(get("/me").cookie(&bob.cookie)).await.assert_error(503, "store_unavailable", None);
    app.send(post("/login").json(&json!({ "user": "dave" }))).await.assert_error(503, "store_unavailable", None);
    app.send(post("/logout").browser(&bob)).await.assert_error(503, "store_unavailable", None);
    app.store_down(false);
    send_to(&routes(), get("/me").cookie(&bob.cookie)).await.assert_error(500, "internal_error", None);
    assert_eq!(app.send(post("/logout").browser(&bob)).await.status, StatusCode::NO_CONTENT);

    let log = captured.text();
    for line in [
        "session created",
        "refresh token exchanged",
        "session token rotated",
        "refresh token reuse detected",
        "session operation failed",
        "without SessionLayer",
        "session revoked",
    ] {
        assert!(log.contains(line), "missing {line:?} in:\n{log}");
    }
    for secret in &secrets {
        assert!(!secret.is_empty());
        assert!(!log.contains(secret.as_str()), "the log leaks a secret");
    }
    for token in [&alice.token, &bob.token, &rotated] {
        let digest = TokenDigest::of_token(token).unwrap().to_base64();
        assert!(!log.contains(&digest), "the log shows a whole token digest");
    }
}
