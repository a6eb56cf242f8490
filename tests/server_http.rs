//! Integration test of the example HTTP server (`examples/server`): its router is booted
//! in-process on a loopback port, over a store that the test can switch off and a
//! [`MockClock`], and every endpoint of the contract is driven over HTTP with reqwest. The
//! binary's startup and shutdown (`app::Running`: snapshot restore and save, the sweeper) run
//! here too, over a [`MemoryStore`]. The access log is checked in `tests/server_logs.rs`.
//!
//! Only 127.0.0.1 is contacted (the client ignores proxy settings).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../examples/server/app.rs"]
mod app;

use std::sync::atomic::Ordering;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use clap::Parser;
use reqwest::header::{CACHE_CONTROL, CONTENT_TYPE, COOKIE, HOST, ORIGIN, SET_COOKIE, USER_AGENT, WWW_AUTHENTICATE};
use serde_json::{Value, json};
use sessionkit::clock::MockClock;
use sessionkit::{Error, LimitPolicy, MemoryStore, RevocationReason, SessionId, SessionManager, UserId};

// -------------------------------------------------------------------------------------------
// A store the test can switch off, to check the 503 answer.
// -------------------------------------------------------------------------------------------

#[path = "support/switchable_store.rs"]
mod switchable_store;

use switchable_store::SwitchableStore;

// -------------------------------------------------------------------------------------------
// Harness
// -------------------------------------------------------------------------------------------

const MINUTE: Duration = Duration::from_secs(60);
const DAY: Duration = Duration::from_secs(86_400);

/// Alice (admin), bob, and carol whose password contains colons; idle 10 minutes, absolute one
/// hour, remember-me one day / seven days. The mock clock starts at 2024-01-01T00:00:00Z.
fn options() -> app::Options {
    app::Options {
        users: vec!["alice:wonderland".into(), "bob:builder".into(), "carol:pass:with:colons".into()],
        admins: vec!["alice".into()],
        idle_timeout: Some(10 * MINUTE),
        absolute_timeout: Some(60 * MINUTE),
        remember_me_idle_timeout: Some(DAY),
        remember_me_absolute_timeout: Some(7 * DAY),
        ..app::Options::default()
    }
}

/// The router of the example served on a loopback port, over the store `S`.
struct Server<S = SwitchableStore> {
    base: String,
    clock: MockClock,
    http: reqwest::Client,
    state: app::AppState<S, MockClock>,
    /// Stops the HTTP server (gracefully) when sent to or dropped.
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    served: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

/// One HTTP answer: status, headers, and the body as JSON (`Null` when empty).
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Answer {
    /// Asserts an error answer of the documented shape.
    #[track_caller]
    fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "body: {}", self.body);
        assert_eq!(self.body["error"], code, "body: {}", self.body);
        assert!(self.body["message"].as_str().is_some_and(|m| !m.is_empty()), "body: {}", self.body);
    }

    /// Asserts a 401 `session_expired` / `session_revoked` answer with its reason.
    #[track_caller]
    fn assert_rejected(&self, code: &str, reason: &str) {
        self.assert_error(401, code);
        assert_eq!(self.body["reason"], reason, "body: {}", self.body);
    }

    fn set_cookie(&self) -> &str {
        self.headers.get(SET_COOKIE).expect("Set-Cookie header").to_str().unwrap()
    }
}

/// A successful login.
struct Login {
    token: String,
    session_id: String,
    access: String,
    refresh: String,
    csrf: String,
    answer: Answer,
}

/// Serves the options over a [`SwitchableStore`].
async fn start(options: app::Options) -> Server {
    let clock = MockClock::new();
    let state =
        app::AppState::from_options(&options, SwitchableStore::default(), clock.clone()).expect("valid options");
    serve(state, clock).await
}

/// Serves `state` on a free loopback port.
async fn serve<S: app::Store>(state: app::AppState<S, MockClock>, clock: MockClock) -> Server<S> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(app::serve(listener, app::router(state.clone()), async move {
        let _ = stop.await;
    }));
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    Server { base: format!("http://{addr}"), clock, http, state, shutdown: Some(shutdown), served: Some(served) }
}

impl Server {
    fn set_store_down(&self, down: bool) {
        self.state.manager.store().down.store(down, Ordering::SeqCst);
    }
}

impl<S> Server<S> {
    /// Shuts the HTTP server down and waits until it has drained, as on Ctrl-C.
    async fn drain(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(served) = self.served.take() {
            tokio::time::timeout(Duration::from_secs(10), served)
                .await
                .expect("the server drains within 10 s")
                .unwrap()
                .unwrap();
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        let response = request.send().await.expect("request to the loopback server");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                panic!("status {status}: body is not JSON ({e}): {}", String::from_utf8_lossy(&bytes))
            })
        };
        Answer { status, headers, body }
    }

    async fn get(&self, path: &str, token: &str) -> Answer {
        self.send(self.http.get(self.url(path)).bearer_auth(token)).await
    }

    async fn post(&self, path: &str, token: &str, body: Option<Value>) -> Answer {
        let mut request = self.http.post(self.url(path)).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        self.send(request).await
    }

    async fn delete(&self, path: &str, token: &str) -> Answer {
        self.send(self.http.delete(self.url(path)).bearer_auth(token)).await
    }

    async fn login_with(&self, body: Value, user_agent: &str) -> Answer {
        self.send(self.http.post(self.url("/api/v1/auth/login")).header(USER_AGENT, user_agent).json(&body)).await
    }

    /// Logs in and asserts success.
    async fn login(&self, user: &str, password: &str) -> Login {
        self.login_as(user, password, "test-agent").await
    }

    async fn login_as(&self, user: &str, password: &str, user_agent: &str) -> Login {
        let answer = self.login_with(json!({ "username": user, "password": password }), user_agent).await;
        assert_eq!(answer.status, 200, "login of {user}: {}", answer.body);
        let field =
            |name: &str| answer.body[name].as_str().unwrap_or_else(|| panic!("{name}: {}", answer.body)).to_owned();
        Login {
            token: field("session_token"),
            session_id: field("session_id"),
            access: field("access_token"),
            refresh: field("refresh_token"),
            csrf: field("csrf_token"),
            answer,
        }
    }

    async fn session(&self, token: &str) -> Answer {
        self.get("/api/v1/auth/session", token).await
    }

    /// `POST /api/v1/auth/refresh-token` with `refresh_token`, no other credential.
    async fn refresh_token(&self, refresh_token: &str) -> Answer {
        let request = self.http.post(self.url("/api/v1/auth/refresh-token"));
        self.send(request.json(&json!({ "refresh_token": refresh_token }))).await
    }

    /// The origin of the server's own page: `https://` with `Secure` cookies (served behind TLS),
    /// else `http://`.
    fn origin(&self) -> String {
        if self.state.secure_cookies { self.base.replacen("http://", "https://", 1) } else { self.base.clone() }
    }

    /// A POST authenticated by the session cookie, as the server's own page sends it: with its
    /// `Origin`, and with `csrf` in `X-CSRF-Token` if given.
    fn cookie_post(&self, path: &str, session_token: &str, csrf: Option<&str>) -> reqwest::RequestBuilder {
        let mut request = self
            .http
            .post(self.url(path))
            .header(COOKIE, format!("session={session_token}"))
            .header(ORIGIN, self.origin());
        if let Some(csrf) = csrf {
            request = request.header("x-csrf-token", csrf);
        }
        request
    }

    async fn jwks(&self) -> Answer {
        self.send(self.http.get(self.url("/.well-known/jwks.json"))).await
    }
}

/// The attributes of a `Set-Cookie` value after the `name=value` pair.
fn cookie_parts(set_cookie: &str) -> (String, Vec<String>) {
    let mut parts = set_cookie.split(';').map(|p| p.trim().to_owned());
    let pair = parts.next().unwrap();
    (pair, parts.collect())
}

// -------------------------------------------------------------------------------------------
// Login and authentication
// -------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_succeeds_with_the_right_password_only() {
    let server = start(options()).await;

    for (user, password) in [("alice", "wrong"), ("alice", "wonderlan"), ("alice", "wonderland!"), ("mallory", "x")] {
        let answer = server.login_with(json!({ "username": user, "password": password }), "t").await;
        answer.assert_error(401, "invalid_credentials");
        assert!(answer.headers.get(SET_COOKIE).is_none());
        assert!(answer.body.get("session_token").is_none());
    }

    let login = server.login("alice", "wonderland").await;
    let body = &login.answer.body;
    assert_eq!(login.token.len(), 45, "{body}");
    assert_eq!(login.session_id.len(), 22, "{body}");
    assert_eq!(body["idle_expires_at"], "2024-01-01T00:10:00Z");
    assert_eq!(body["absolute_expires_at"], "2024-01-01T01:00:00Z");
    assert_eq!(body["expires_at"], "2024-01-01T00:10:00Z");
    assert_eq!(login.answer.headers.get(CACHE_CONTROL).unwrap(), "no-store");

    // A password with colons survives `--user NAME:PASSWORD` parsing.
    server.login("carol", "pass:with:colons").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_cookie_attributes() {
    let server = start(options()).await;
    let login = server.login("bob", "builder").await;
    let (pair, attributes) = cookie_parts(login.answer.set_cookie());
    assert_eq!(pair, format!("session={}", login.token));
    for expected in ["HttpOnly", "SameSite=Lax", "Path=/", "Secure"] {
        assert!(attributes.iter().any(|a| a == expected), "{expected} missing: {attributes:?}");
    }
    // Without remember-me it is a browser-session cookie.
    assert!(!attributes.iter().any(|a| a.starts_with("Max-Age") || a.starts_with("Expires")), "{attributes:?}");

    let insecure = start(app::Options { insecure_cookies: true, ..options() }).await;
    let login = insecure.login("bob", "builder").await;
    let (_, attributes) = cookie_parts(login.answer.set_cookie());
    assert!(!attributes.iter().any(|a| a == "Secure"), "{attributes:?}");
    for expected in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(attributes.iter().any(|a| a == expected), "{expected} missing: {attributes:?}");
    }

    // Remember-me: the longer lifetimes, and a persistent cookie until the absolute deadline.
    let answer =
        insecure.login_with(json!({ "username": "bob", "password": "builder", "remember_me": true }), "t").await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["idle_expires_at"], "2024-01-02T00:00:00Z");
    assert_eq!(answer.body["absolute_expires_at"], "2024-01-08T00:00:00Z");
    let (_, attributes) = cookie_parts(answer.set_cookie());
    assert!(attributes.iter().any(|a| a == "Max-Age=604800"), "{attributes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_and_cookie_authentication() {
    let server = start(options()).await;
    let login = server.login_as("alice", "wonderland", "agent/1.0").await;

    let answer = server.session(&login.token).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let body = &answer.body;
    assert_eq!(body["session_id"], login.session_id.as_str());
    assert_eq!(body["user"], "alice");
    assert_eq!(body["created_at"], "2024-01-01T00:00:00Z");
    assert_eq!(body["last_seen_at"], "2024-01-01T00:00:00Z");
    assert_eq!(body["expires_at"], "2024-01-01T00:10:00Z");
    assert_eq!(body["idle_expires_at"], "2024-01-01T00:10:00Z");
    assert_eq!(body["absolute_expires_at"], "2024-01-01T01:00:00Z");
    assert_eq!(body["remember_me"], false);
    assert_eq!(body["request_count"], 1);

    // The same session through the cookie, among other cookies.
    let cookie = format!("theme=dark; session={}; lang=en", login.token);
    let answer = server.send(server.http.get(server.url("/api/v1/auth/session")).header(COOKIE, cookie)).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["session_id"], login.session_id.as_str());
    assert_eq!(answer.body["request_count"], 2);

    // No credentials, malformed tokens, an unknown well-formed token, another scheme.
    let url = server.url("/api/v1/auth/session");
    let no_credentials = server.send(server.http.get(&url)).await;
    no_credentials.assert_error(401, "invalid_session");
    assert_eq!(no_credentials.headers.get(WWW_AUTHENTICATE).unwrap(), "Bearer");
    server.send(server.http.get(&url).header(COOKIE, "theme=dark")).await.assert_error(401, "invalid_session");
    for token in ["not-a-token", "x", &"A".repeat(44), &format!("{}*", &login.token[..42]), &"A".repeat(43)] {
        server.session(token).await.assert_error(401, "invalid_session");
    }
    let basic = server.send(server.http.get(&url).basic_auth("alice", Some("wonderland"))).await;
    basic.assert_error(401, "invalid_session");
    let bad_cookie = server.send(server.http.get(&url).header(COOKIE, "session=garbage")).await;
    bad_cookie.assert_error(401, "invalid_session");

    // The failed attempts did not count against the session.
    assert_eq!(server.session(&login.token).await.body["request_count"], 3);
}

// -------------------------------------------------------------------------------------------
// Expiry and refresh
// -------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sessions_expire_and_used_ones_slide() {
    let server = start(options()).await;
    let idle = server.login("alice", "wonderland").await;
    let used = server.login("alice", "wonderland").await;

    server.clock.advance(5 * MINUTE);
    let answer = server.session(&used.token).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["idle_expires_at"], "2024-01-01T00:15:00Z");
    assert_eq!(answer.body["last_seen_at"], "2024-01-01T00:05:00Z");

    server.clock.advance(5 * MINUTE + Duration::from_secs(1));
    server.session(&idle.token).await.assert_rejected("session_expired", "idle");
    assert_eq!(server.session(&used.token).await.status, 200);

    // Expired sessions can be swept; the swept token then reads as unknown.
    assert_eq!(server.state.manager.sweep_expired().await.unwrap(), 1);
    server.session(&idle.token).await.assert_error(401, "invalid_session");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_expire_at_the_absolute_deadline_however_busy() {
    let server = start(options()).await;
    let login = server.login("bob", "builder").await;
    for _ in 0..6 {
        server.clock.advance(9 * MINUTE);
        let answer = server.session(&login.token).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
    }
    // 54 minutes in, the idle deadline is capped at the absolute one.
    let answer = server.session(&login.token).await;
    assert_eq!(answer.body["idle_expires_at"], "2024-01-01T01:00:00Z");
    assert_eq!(answer.body["expires_at"], "2024-01-01T01:00:00Z");

    server.clock.advance(6 * MINUTE);
    server.session(&login.token).await.assert_rejected("session_expired", "absolute");
    server
        .post("/api/v1/auth/sessions/refresh", &login.token, None)
        .await
        .assert_rejected("session_expired", "absolute");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_extends_the_idle_deadline() {
    let server = start(options()).await;
    let login = server.login("alice", "wonderland").await;
    assert_eq!(login.answer.body["idle_expires_at"], "2024-01-01T00:10:00Z");

    // 30 s is within the touch interval: validation alone would not move the deadline.
    server.clock.advance(Duration::from_secs(30));
    let answer = server.post("/api/v1/auth/sessions/refresh", &login.token, None).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["session_id"], login.session_id.as_str());
    assert_eq!(answer.body["user"], "alice");
    assert_eq!(answer.body["idle_expires_at"], "2024-01-01T00:10:30Z");
    assert_eq!(answer.body["expires_at"], "2024-01-01T00:10:30Z");
    assert_eq!(answer.body["absolute_expires_at"], "2024-01-01T01:00:00Z");
    assert_eq!(answer.body["request_count"], 0, "refresh does not count as a request");

    // Past the original deadline, before the extended one.
    server.clock.advance(9 * MINUTE + Duration::from_secs(45));
    assert_eq!(server.session(&login.token).await.status, 200);

    server.post("/api/v1/auth/sessions/refresh", "garbage", None).await.assert_error(401, "invalid_session");
    let no_token = server.send(server.http.post(server.url("/api/v1/auth/sessions/refresh"))).await;
    no_token.assert_error(401, "invalid_session");
}

// -------------------------------------------------------------------------------------------
// Logout and revocation
// -------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_revokes_the_session_and_clears_the_cookie() {
    let server = start(options()).await;
    let login = server.login("alice", "wonderland").await;
    let other = server.login("alice", "wonderland").await;

    let answer = server.post("/api/v1/auth/logout", &login.token, None).await;
    assert_eq!(answer.status, 204);
    assert_eq!(answer.body, Value::Null);
    let (pair, attributes) = cookie_parts(answer.set_cookie());
    assert_eq!(pair, "session=");
    assert!(attributes.iter().any(|a| a == "Max-Age=0"), "{attributes:?}");
    assert!(attributes.iter().any(|a| a == "Path=/"), "{attributes:?}");

    server.session(&login.token).await.assert_rejected("session_revoked", "logout");
    server.post("/api/v1/auth/logout", &login.token, None).await.assert_rejected("session_revoked", "logout");
    assert_eq!(server.session(&other.token).await.status, 200, "only the one session ends");

    // Logout through the cookie, from the server's own page (origin and CSRF token: see
    // `cookie_authenticated_changes_need_the_origin_and_the_csrf_token`).
    let request = server.cookie_post("/api/v1/auth/logout", &other.token, Some(&other.csrf));
    let answer = server.send(request).await;
    assert_eq!(answer.status, 204, "{}", answer.body);
    server.session(&other.token).await.assert_rejected("session_revoked", "logout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_all_ends_every_session_of_the_user() {
    let server = start(options()).await;
    let first = server.login("alice", "wonderland").await;
    let second = server.login("alice", "wonderland").await;
    let bob = server.login("bob", "builder").await;

    let answer = server.post("/api/v1/auth/logout-all", &first.token, None).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body, json!({ "revoked": 2 }));
    assert!(answer.set_cookie().starts_with("session=;"), "{}", answer.set_cookie());

    server.session(&first.token).await.assert_rejected("session_revoked", "logout_all");
    server.session(&second.token).await.assert_rejected("session_revoked", "logout_all");
    assert_eq!(server.session(&bob.token).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_listing_and_self_service_revocation() {
    let server = start(options()).await;
    let here = server.login_as("alice", "wonderland", "laptop-browser").await;
    server.clock.advance(MINUTE);
    let there = server.login_as("alice", "wonderland", "phone-app").await;
    let bob = server.login("bob", "builder").await;

    let answer = server.get("/api/v1/auth/sessions", &here.token).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let sessions = answer.body["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2, "{}", answer.body);
    let current: Vec<_> = sessions.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1, "{}", answer.body);
    assert_eq!(current[0]["session_id"], here.session_id.as_str());
    assert_eq!(current[0]["user_agent"], "laptop-browser");
    assert_eq!(current[0]["ip"], "127.0.0.1");
    assert_eq!(current[0]["created_at"], "2024-01-01T00:00:00Z");
    assert_eq!(current[0]["remember_me"], false);
    assert_eq!(current[0]["request_count"], 1);
    let other = sessions.iter().find(|s| s["current"] == false).unwrap();
    assert_eq!(other["session_id"], there.session_id.as_str());
    assert_eq!(other["user_agent"], "phone-app");
    assert_eq!(other["created_at"], "2024-01-01T00:01:00Z");
    assert_eq!(other["last_seen_at"], "2024-01-01T00:01:00Z");
    assert_eq!(other["request_count"], 0);
    assert!(!answer.body.to_string().contains(&there.token), "a listing never shows tokens");

    // Another user's session, an unknown id and a malformed one: 404, and nothing changes.
    let revoke = "/api/v1/auth/sessions/revoke";
    server
        .post(revoke, &here.token, Some(json!({ "session_id": bob.session_id })))
        .await
        .assert_error(404, "not_found");
    assert_eq!(server.session(&bob.token).await.status, 200);
    let unknown = "A".repeat(22); // well formed; the chance that it names a session is 2^-128
    server.post(revoke, &here.token, Some(json!({ "session_id": unknown }))).await.assert_error(404, "not_found");
    server.post(revoke, &here.token, Some(json!({ "session_id": "nope" }))).await.assert_error(404, "not_found");
    server.post(revoke, &here.token, Some(json!({}))).await.assert_error(400, "invalid_request");

    // The user's own other session.
    let answer = server.post(revoke, &here.token, Some(json!({ "session_id": there.session_id }))).await;
    assert_eq!(answer.status, 204, "{}", answer.body);
    server.session(&there.token).await.assert_rejected("session_revoked", "logout");
    server
        .post(revoke, &here.token, Some(json!({ "session_id": there.session_id })))
        .await
        .assert_error(404, "not_found");
    let answer = server.get("/api/v1/auth/sessions", &here.token).await;
    assert_eq!(answer.body["sessions"].as_array().unwrap().len(), 1, "{}", answer.body);

    // Bob cannot revoke alice's session either.
    server
        .post(revoke, &bob.token, Some(json!({ "session_id": here.session_id })))
        .await
        .assert_error(404, "not_found");
    assert_eq!(server.session(&here.token).await.status, 200);
}

// -------------------------------------------------------------------------------------------
// Per-user limits
// -------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_with_reject_refuses_the_login() {
    let options = app::Options {
        max_sessions_per_user: Some(app::MaxSessions::Max(2)),
        on_limit: Some(LimitPolicy::Reject),
        ..options()
    };
    let server = start(options).await;
    let first = server.login("alice", "wonderland").await;
    let second = server.login("alice", "wonderland").await;
    let answer = server.login_with(json!({ "username": "alice", "password": "wonderland" }), "t").await;
    answer.assert_error(409, "session_limit_reached");
    assert!(answer.headers.get(SET_COOKIE).is_none());
    assert_eq!(server.session(&first.token).await.status, 200);
    assert_eq!(server.session(&second.token).await.status, 200);
    server.login("bob", "builder").await;

    assert_eq!(server.post("/api/v1/auth/logout", &first.token, None).await.status, 204);
    server.login("alice", "wonderland").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_with_eviction_revokes_the_oldest_or_least_recently_used() {
    let limited = |policy| app::Options {
        max_sessions_per_user: Some(app::MaxSessions::Max(2)),
        on_limit: Some(policy),
        ..options()
    };

    let server = start(limited(LimitPolicy::EvictOldest)).await;
    let oldest = server.login("alice", "wonderland").await;
    server.clock.advance(MINUTE);
    let middle = server.login("alice", "wonderland").await;
    server.clock.advance(MINUTE);
    assert_eq!(server.session(&oldest.token).await.status, 200, "using it does not save the oldest");
    let newest = server.login("alice", "wonderland").await;
    server.session(&oldest.token).await.assert_rejected("session_revoked", "evicted");
    assert_eq!(server.session(&middle.token).await.status, 200);
    assert_eq!(server.session(&newest.token).await.status, 200);

    let server = start(limited(LimitPolicy::EvictLeastRecentlyUsed)).await;
    let first = server.login("alice", "wonderland").await;
    server.clock.advance(MINUTE);
    let second = server.login("alice", "wonderland").await;
    server.clock.advance(2 * MINUTE);
    assert_eq!(server.session(&first.token).await.status, 200, "first is now the most recently used");
    server.login("alice", "wonderland").await;
    server.session(&second.token).await.assert_rejected("session_revoked", "evicted");
    assert_eq!(server.session(&first.token).await.status, 200);
}

// -------------------------------------------------------------------------------------------
// Admin
// -------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_endpoints_are_for_admins_only() {
    let server = start(options()).await;
    let admin = server.login("alice", "wonderland").await;
    let bob1 = server.login("bob", "builder").await;
    let bob2 = server.login("bob", "builder").await;

    // Not authenticated: 401. Authenticated but not an admin: 403, and nothing happens.
    let list = server.url("/api/v1/admin/sessions?user=bob");
    server.send(server.http.get(&list)).await.assert_error(401, "invalid_session");
    server.get("/api/v1/admin/sessions?user=bob", "garbage").await.assert_error(401, "invalid_session");
    server.get("/api/v1/admin/sessions?user=alice", &bob1.token).await.assert_error(403, "forbidden");
    let by_id = format!("/api/v1/admin/sessions/{}", admin.session_id);
    server.delete(&by_id, &bob1.token).await.assert_error(403, "forbidden");
    server.delete("/api/v1/admin/users/alice/sessions", &bob1.token).await.assert_error(403, "forbidden");
    server.send(server.http.delete(server.url(&by_id))).await.assert_error(401, "invalid_session");
    assert_eq!(server.session(&admin.token).await.status, 200);

    // Listing another user's sessions: `current` is false for all of them.
    let answer = server.get("/api/v1/admin/sessions?user=bob", &admin.token).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let sessions = answer.body["sessions"].as_array().unwrap();
    let mut ids: Vec<_> = sessions.iter().map(|s| s["session_id"].as_str().unwrap().to_owned()).collect();
    ids.sort();
    let mut expected = vec![bob1.session_id.clone(), bob2.session_id.clone()];
    expected.sort();
    assert_eq!(ids, expected);
    assert!(sessions.iter().all(|s| s["current"] == false && s["ip"] == "127.0.0.1"), "{}", answer.body);
    // The admin's own list marks the admin's session.
    let answer = server.get("/api/v1/admin/sessions?user=alice", &admin.token).await;
    assert_eq!(answer.body["sessions"][0]["current"], true, "{}", answer.body);
    let answer = server.get("/api/v1/admin/sessions?user=nobody", &admin.token).await;
    assert_eq!(answer.body, json!({ "sessions": [] }));
    server.get("/api/v1/admin/sessions", &admin.token).await.assert_error(400, "invalid_request");

    // Revoking one session by id.
    let path = format!("/api/v1/admin/sessions/{}", bob1.session_id);
    let answer = server.delete(&path, &admin.token).await;
    assert_eq!(answer.status, 204, "{}", answer.body);
    server.session(&bob1.token).await.assert_rejected("session_revoked", "admin");
    assert_eq!(server.session(&bob2.token).await.status, 200);
    server.delete(&path, &admin.token).await.assert_error(404, "not_found");
    server.delete("/api/v1/admin/sessions/not-an-id", &admin.token).await.assert_error(404, "not_found");

    // Revoking every session of a user.
    let bob3 = server.login("bob", "builder").await;
    let answer = server.delete("/api/v1/admin/users/bob/sessions", &admin.token).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body, json!({ "revoked": 2 }));
    server.session(&bob2.token).await.assert_rejected("session_revoked", "admin");
    server.session(&bob3.token).await.assert_rejected("session_revoked", "admin");
    assert_eq!(server.delete("/api/v1/admin/users/bob/sessions", &admin.token).await.body, json!({ "revoked": 0 }));
    assert_eq!(server.session(&admin.token).await.status, 200);
}

// -------------------------------------------------------------------------------------------
// Malformed requests, unknown routes, store failures
// -------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_malformed_bodies_get_json_errors() {
    let server = start(options()).await;
    let login_url = server.url("/api/v1/auth/login");
    let json_post = |body: Vec<u8>| server.http.post(&login_url).header("content-type", "application/json").body(body);

    // Just under the limit: read and answered normally.
    let filler = "x".repeat(app::MAX_BODY_BYTES - 100);
    let body = serde_json::to_vec(&json!({ "username": "alice", "password": filler })).unwrap();
    assert!(body.len() <= app::MAX_BODY_BYTES);
    server.send(json_post(body)).await.assert_error(401, "invalid_credentials");

    // Over the limit.
    let filler = "x".repeat(app::MAX_BODY_BYTES);
    let body = serde_json::to_vec(&json!({ "username": "alice", "password": filler })).unwrap();
    server.send(json_post(body)).await.assert_error(413, "payload_too_large");
    let token = server.login("alice", "wonderland").await.token;
    let revoke = server.http.post(server.url("/api/v1/auth/sessions/revoke")).bearer_auth(&token);
    let body = format!(r#"{{"session_id":"{}"}}"#, "A".repeat(70_000));
    let answer = server.send(revoke.header("content-type", "application/json").body(body)).await;
    answer.assert_error(413, "payload_too_large");

    // Malformed JSON, wrong shapes, wrong content type.
    for body in [&b"{\"username\": \"alice\", "[..], b"not json", b"", b"[]", br#"{"username":"alice"}"#] {
        server.send(json_post(body.to_vec())).await.assert_error(400, "invalid_request");
    }
    let wrong_type = json!({ "username": "alice", "password": "wonderland", "remember_me": "yes" });
    server.send(json_post(serde_json::to_vec(&wrong_type).unwrap())).await.assert_error(400, "invalid_request");
    let text = server.http.post(&login_url).header("content-type", "text/plain").body("{}");
    server.send(text).await.assert_error(415, "unsupported_media_type");

    // The server is still up.
    server.login("alice", "wonderland").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_and_methods_get_json_errors() {
    let server = start(options()).await;
    // `/` is the browser page (`browser_page_and_client_config`).
    for path in ["/index.html", "/api/v1/nope", "/api/v1/auth/sessions/extra"] {
        server.send(server.http.get(server.url(path))).await.assert_error(404, "not_found");
    }
    let answer = server.send(server.http.get(server.url("/api/v1/auth/login"))).await;
    answer.assert_error(405, "method_not_allowed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_failures_answer_503() {
    let server = start(options()).await;
    let login = server.login("alice", "wonderland").await;

    server.set_store_down(true);
    server.session(&login.token).await.assert_error(503, "store_unavailable");
    server.get("/api/v1/auth/sessions", &login.token).await.assert_error(503, "store_unavailable");
    let answer = server.login_with(json!({ "username": "bob", "password": "builder" }), "t").await;
    answer.assert_error(503, "store_unavailable");
    assert!(answer.headers.get(SET_COOKIE).is_none());

    server.set_store_down(false);
    assert_eq!(server.session(&login.token).await.status, 200);
}

// -------------------------------------------------------------------------------------------
// Access tokens, refresh tokens, JWKS
// -------------------------------------------------------------------------------------------

/// The decoded JSON header of a JWT.
fn jwt_header(token: &str) -> Value {
    let header = token.split('.').next().unwrap();
    serde_json::from_slice(&B64.decode(header).unwrap()).unwrap()
}

/// The decoded JSON payload of a JWT.
fn jwt_payload(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&B64.decode(payload).unwrap()).unwrap()
}

/// A temporary file that is removed when dropped.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn new(name: &str, contents: &[u8]) -> Self {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let path = std::env::temp_dir().join(format!("sessionkit-server-test-{}-{n}-{name}", std::process::id()));
        std::fs::write(&path, contents).unwrap();
        Self(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_returns_a_token_pair_and_the_access_token_authenticates() {
    let server = start(app::Options { access_token_ttl: Some(5 * MINUTE), ..options() }).await;
    let login = server.login("alice", "wonderland").await;
    let body = &login.answer.body;
    assert_eq!(body["token_type"], "Bearer", "{body}");
    assert_eq!(body["expires_in"], 300, "{body}");
    assert_eq!(login.refresh.len(), 45, "{body}");
    assert_ne!(login.refresh, login.token);
    assert_eq!(login.access.matches('.').count(), 2, "{body}");
    assert_eq!(jwt_header(&login.access), json!({ "alg": "HS256", "typ": "JWT", "kid": "hs256-1" }));
    let claims = jwt_payload(&login.access);
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["sid"], login.session_id.as_str());
    assert_eq!(claims["exp"], 1_704_067_200 + 300);

    // GET /session with the access token: the same session, not counted as a request.
    let answer = server.session(&login.access).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["session_id"], login.session_id.as_str());
    assert_eq!(answer.body["user"], "alice");
    assert_eq!(answer.body["idle_expires_at"], "2024-01-01T00:10:00Z");
    assert_eq!(answer.body["request_count"], 0);

    // Listings mark the access token's session as current.
    let other = server.login("alice", "wonderland").await;
    for (login, id) in [(&login, &login.session_id), (&other, &other.session_id)] {
        let answer = server.get("/api/v1/auth/sessions", &login.access).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        let current: Vec<_> =
            answer.body["sessions"].as_array().unwrap().iter().filter(|s| s["current"] == true).collect();
        assert_eq!(current.len(), 1, "{}", answer.body);
        assert_eq!(current[0]["session_id"], id.as_str());
    }

    // sessions/refresh with an access token answers the session unchanged.
    server.clock.advance(MINUTE);
    let answer = server.post("/api/v1/auth/sessions/refresh", &login.access, None).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["session_id"], login.session_id.as_str());
    assert_eq!(answer.body["idle_expires_at"], "2024-01-01T00:10:00Z");

    // Admin endpoints: by the user's role, whichever credential.
    assert_eq!(server.get("/api/v1/admin/sessions?user=bob", &login.access).await.status, 200);
    let bob = server.login("bob", "builder").await;
    server.get("/api/v1/admin/sessions?user=alice", &bob.access).await.assert_error(403, "forbidden");

    // Self-service revocation with an access token.
    let answer = server
        .post("/api/v1/auth/sessions/revoke", &login.access, Some(json!({ "session_id": other.session_id })))
        .await;
    assert_eq!(answer.status, 204, "{}", answer.body);
    server.session(&other.access).await.assert_rejected("session_revoked", "logout");

    // A refresh token is not a session token.
    server.session(&login.refresh).await.assert_error(401, "invalid_session");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_token_rotates_and_replays_within_the_grace_window() {
    let options = app::Options {
        access_token_ttl: Some(5 * MINUTE),
        refresh_reuse_grace: Some(Duration::from_secs(5)),
        ..options()
    };
    let server = start(options).await;
    let login = server.login("alice", "wonderland").await;

    server.clock.advance(MINUTE);
    let first = server.refresh_token(&login.refresh).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert!(first.headers.get(SET_COOKIE).is_none());
    assert_eq!(first.headers.get(CACHE_CONTROL).unwrap(), "no-store");
    let mut keys: Vec<_> = first.body.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["access_token", "expires_in", "refresh_token", "token_type"]);
    assert_eq!(first.body["token_type"], "Bearer");
    assert_eq!(first.body["expires_in"], 300);
    let access = first.body["access_token"].as_str().unwrap().to_owned();
    let refresh = first.body["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(access, login.access);
    assert_ne!(refresh, login.refresh);
    assert_eq!(jwt_payload(&access)["sid"], login.session_id.as_str());

    // The new access token works; the refresh renewed the idle deadline (not counted).
    let answer = server.session(&access).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["idle_expires_at"], "2024-01-01T00:11:00Z");
    assert_eq!(answer.body["request_count"], 0);

    // A replay within the grace window returns the very same pair.
    server.clock.advance(Duration::from_secs(2));
    let replay = server.refresh_token(&login.refresh).await;
    assert_eq!(replay.status, 200, "{}", replay.body);
    assert_eq!(replay.body["access_token"], access.as_str());
    assert_eq!(replay.body["refresh_token"], refresh.as_str());
    assert_eq!(replay.body["expires_in"], 298, "issued when the token was spent");

    // The successor rotates in turn.
    let second = server.refresh_token(&refresh).await;
    assert_eq!(second.status, 200, "{}", second.body);
    let latest_access = second.body["access_token"].as_str().unwrap().to_owned();
    let latest_refresh = second.body["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(latest_refresh, refresh);

    // After the grace window, the first token again is reuse: the whole session ends.
    server.clock.advance(Duration::from_secs(4));
    let reused = server.refresh_token(&login.refresh).await;
    reused.assert_error(401, "refresh_token_reused");
    assert_eq!(reused.headers.get(WWW_AUTHENTICATE).unwrap(), "Bearer");
    server.session(&login.token).await.assert_rejected("session_revoked", "refresh_reuse");
    for token in [&login.access, &access, &latest_access] {
        server.session(token).await.assert_rejected("session_revoked", "refresh_reuse");
    }
    server.refresh_token(&latest_refresh).await.assert_rejected("invalid_refresh_token", "refresh_reuse");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_grace_makes_refresh_tokens_single_use() {
    let server = start(app::Options { refresh_reuse_grace: Some(Duration::ZERO), ..options() }).await;
    let login = server.login("bob", "builder").await;
    assert_eq!(server.refresh_token(&login.refresh).await.status, 200);
    server.refresh_token(&login.refresh).await.assert_error(401, "refresh_token_reused");
    server.session(&login.token).await.assert_rejected("session_revoked", "refresh_reuse");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_and_expired_refresh_tokens_are_refused() {
    let server = start(options()).await;
    let login = server.login("alice", "wonderland").await;

    let unknown = "A".repeat(43);
    for token in ["garbage", "", &unknown, &login.token, &login.access, &format!("{}=", login.refresh)] {
        server.refresh_token(token).await.assert_error(401, "invalid_refresh_token");
    }
    let url = server.url("/api/v1/auth/refresh-token");
    server.send(server.http.post(&url).json(&json!({}))).await.assert_error(400, "invalid_request");
    server.send(server.http.post(&url).json(&json!({ "refresh_token": 7 }))).await.assert_error(400, "invalid_request");
    // The failed attempts did not spend the token.
    assert_eq!(server.refresh_token(&login.refresh).await.status, 200);

    // An idle-expired session: its refresh token and its (unexpired) access token say so.
    let idle = server.login("bob", "builder").await;
    server.clock.advance(10 * MINUTE + Duration::from_secs(1));
    server.refresh_token(&idle.refresh).await.assert_rejected("session_expired", "idle");
    server.session(&idle.access).await.assert_rejected("session_expired", "idle");

    // Once swept, the session is unknown.
    assert!(server.state.manager.sweep_expired().await.unwrap() >= 1);
    server.refresh_token(&idle.refresh).await.assert_error(401, "invalid_refresh_token");
    server.session(&idle.access).await.assert_error(401, "invalid_session");

    // The absolute deadline ends refreshing too.
    let busy = server.login("carol", "pass:with:colons").await;
    let mut refresh = busy.refresh.clone();
    for _ in 0..6 {
        server.clock.advance(9 * MINUTE);
        let answer = server.refresh_token(&refresh).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        refresh = answer.body["refresh_token"].as_str().unwrap().to_owned();
    }
    server.clock.advance(6 * MINUTE);
    server.refresh_token(&refresh).await.assert_rejected("session_expired", "absolute");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_tokens_of_revoked_sessions_are_refused_before_they_expire() {
    let server = start(options()).await;

    // Logout with the session token: the access token stops working at once.
    let login = server.login("alice", "wonderland").await;
    assert_eq!(server.session(&login.access).await.status, 200);
    assert_eq!(server.post("/api/v1/auth/logout", &login.token, None).await.status, 204);
    server.session(&login.access).await.assert_rejected("session_revoked", "logout");
    server.refresh_token(&login.refresh).await.assert_rejected("invalid_refresh_token", "logout");

    // Logout with the access token: reason `logout`, the cookie cleared, both credentials dead.
    let login = server.login("alice", "wonderland").await;
    let answer = server.post("/api/v1/auth/logout", &login.access, None).await;
    assert_eq!(answer.status, 204, "{}", answer.body);
    assert!(answer.set_cookie().starts_with("session=;"), "{}", answer.set_cookie());
    server.session(&login.token).await.assert_rejected("session_revoked", "logout");
    server.session(&login.access).await.assert_rejected("session_revoked", "logout");
    server.post("/api/v1/auth/logout", &login.access, None).await.assert_rejected("session_revoked", "logout");

    // Admin revocation and logout-all.
    let admin = server.login("alice", "wonderland").await;
    let bob = server.login("bob", "builder").await;
    let path = format!("/api/v1/admin/sessions/{}", bob.session_id);
    assert_eq!(server.delete(&path, &admin.access).await.status, 204);
    server.session(&bob.access).await.assert_rejected("session_revoked", "admin");
    let second = server.login("alice", "wonderland").await;
    let answer = server.post("/api/v1/auth/logout-all", &admin.access, None).await;
    assert_eq!(answer.body, json!({ "revoked": 2 }));
    server.session(&admin.access).await.assert_rejected("session_revoked", "logout_all");
    server.session(&second.access).await.assert_rejected("session_revoked", "logout_all");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_replaces_every_token_and_keeps_the_session() {
    let server = start(options()).await;
    let before = server.login("alice", "wonderland").await;
    let other = server.login("alice", "wonderland").await;
    server.clock.advance(MINUTE);

    // With the session token as bearer: 200 and every new token in the body.
    let answer = server.post("/api/v1/auth/sessions/rotate", &before.token, None).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.headers.get(CACHE_CONTROL).unwrap(), "no-store");
    let field = |name: &str| answer.body[name].as_str().unwrap_or_else(|| panic!("{name}: {}", answer.body)).to_owned();
    let (token, csrf, access, refresh) =
        (field("session_token"), field("csrf_token"), field("access_token"), field("refresh_token"));
    assert_eq!(field("session_id"), before.session_id, "the session id is unchanged");
    assert_eq!(answer.body["token_type"], "Bearer");
    for (new, old) in
        [(&token, &before.token), (&csrf, &before.csrf), (&access, &before.access), (&refresh, &before.refresh)]
    {
        assert_ne!(new, old);
    }
    assert_eq!(jwt_payload(&access)["sid"], before.session_id.as_str());
    assert_eq!(jwt_payload(&access)["gen"], 1, "the access token names the session's new generation");

    // The previous session token, access token and refresh token are refused at once.
    server.session(&before.token).await.assert_error(401, "invalid_session");
    server.session(&before.access).await.assert_error(401, "invalid_access_token");
    server.post("/api/v1/auth/logout", &before.access, None).await.assert_error(401, "invalid_access_token");
    server.refresh_token(&before.refresh).await.assert_error(401, "invalid_refresh_token");
    // So is the previous CSRF token, through the new cookie.
    let stale = server.send(server.cookie_post("/api/v1/auth/sessions/refresh", &token, Some(&before.csrf))).await;
    stale.assert_error(403, "csrf_failed");

    // The new ones work, and name the same session.
    for credential in [&token, &access] {
        let answer = server.session(credential).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert_eq!(answer.body["session_id"], before.session_id.as_str());
    }
    let fresh = server.send(server.cookie_post("/api/v1/auth/sessions/refresh", &token, Some(&csrf))).await;
    assert_eq!(fresh.status, 200, "{}", fresh.body);
    let refreshed = server.refresh_token(&refresh).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    let access = refreshed.body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(jwt_payload(&access)["gen"], 1, "a refresh issues for the current generation");
    assert_eq!(server.session(&access).await.status, 200);
    // The user's other session is untouched.
    assert_eq!(server.session(&other.access).await.status, 200);

    // Through the cookie: CSRF-guarded, new cookies, and the tokens in the body as well.
    let answer = server.send(server.cookie_post("/api/v1/auth/sessions/rotate", &token, Some(&csrf))).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let rotated = answer.body["session_token"].as_str().unwrap().to_owned();
    assert!(answer.set_cookie().starts_with(&format!("session={rotated};")), "{}", answer.set_cookie());
    assert_eq!(jwt_payload(answer.body["access_token"].as_str().unwrap())["gen"], 2);
    server.session(&access).await.assert_error(401, "invalid_access_token");
    server.session(&token).await.assert_error(401, "invalid_session");
    assert_eq!(server.session(&rotated).await.body["session_id"], before.session_id.as_str());

    // An access token cannot rotate: rotation needs the session token.
    server.post("/api/v1/auth/sessions/rotate", &other.access, None).await.assert_error(401, "invalid_session");
    server.post("/api/v1/auth/sessions/rotate", &before.token, None).await.assert_error(401, "invalid_session");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_tokens_expire_after_their_ttl_and_the_leeway() {
    // TTL 5 minutes; the default leeway is 30 seconds.
    let server = start(app::Options { access_token_ttl: Some(5 * MINUTE), ..options() }).await;
    let login = server.login("bob", "builder").await;

    server.clock.advance(5 * MINUTE + Duration::from_secs(29));
    assert_eq!(server.session(&login.access).await.status, 200, "within the leeway");
    server.clock.advance(Duration::from_secs(1));
    let answer = server.session(&login.access).await;
    answer.assert_error(401, "access_token_expired");
    assert_eq!(answer.headers.get(WWW_AUTHENTICATE).unwrap(), "Bearer");
    server.get("/api/v1/auth/sessions", &login.access).await.assert_error(401, "access_token_expired");

    // The session itself is alive: the refresh token buys a new access token.
    assert_eq!(server.session(&login.token).await.status, 200);
    let answer = server.refresh_token(&login.refresh).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(server.session(answer.body["access_token"].as_str().unwrap()).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_and_foreign_access_tokens_are_invalid() {
    let server = start(options()).await;
    let login = server.login("bob", "builder").await;
    let parts: Vec<&str> = login.access.split('.').collect();

    // A character of the signature changed.
    let mut signature = parts[2].to_owned().into_bytes();
    signature[10] = if signature[10] == b'A' { b'B' } else { b'A' };
    let tampered_signature = format!("{}.{}.{}", parts[0], parts[1], String::from_utf8(signature).unwrap());
    // The payload re-encoded with another user (the signature no longer matches).
    let mut claims = jwt_payload(&login.access);
    claims["sub"] = json!("alice");
    let tampered_payload = format!("{}.{}.{}", parts[0], B64.encode(claims.to_string()), parts[2]);
    // `alg: none`.
    let none = format!("{}.{}.", B64.encode(r#"{"alg":"none","typ":"JWT"}"#), parts[1]);
    // An unknown key id.
    let other_kid = format!("{}.{}.{}", B64.encode(r#"{"alg":"HS256","typ":"JWT","kid":"nope"}"#), parts[1], parts[2]);
    for token in [&tampered_signature, &tampered_payload, &none, &other_kid, "a.b.c", ".."] {
        let answer = server.session(token).await;
        answer.assert_error(401, "invalid_access_token");
        assert_eq!(answer.headers.get(WWW_AUTHENTICATE).unwrap(), "Bearer");
    }
    // Not two dots: taken for a malformed session token.
    server.session(&format!("{}.x", login.access)).await.assert_error(401, "invalid_session");

    // Another server's token (its own random secret, same kid): the signature fails.
    let other = start(options()).await;
    let foreign = other.login("bob", "builder").await;
    server.session(&foreign.access).await.assert_error(401, "invalid_access_token");

    // The untampered token still works.
    assert_eq!(server.session(&login.access).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_jwt_secret_and_issuer_and_audience() {
    let secret = B64.encode([42u8; 32]);
    let shared = || app::Options {
        jwt_secret: Some(secret.as_str().into()),
        jwt_issuer: Some("https://login.example".into()),
        jwt_audience: Some("api".into()),
        ..options()
    };
    let first = start(shared()).await;
    let second = start(shared()).await;
    let login = first.login("alice", "wonderland").await;
    let claims = jwt_payload(&login.access);
    assert_eq!(claims["iss"], "https://login.example");
    assert_eq!(claims["aud"], "api");
    assert_eq!(first.session(&login.access).await.status, 200);
    // The second server verifies the signature and claims, but has no such session.
    second.session(&login.access).await.assert_error(401, "invalid_session");

    // Same secret, another audience: refused.
    let elsewhere = start(app::Options { jwt_audience: Some("billing".into()), ..shared() }).await;
    elsewhere.session(&login.access).await.assert_error(401, "invalid_access_token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_lists_the_ed25519_key_and_nothing_under_hs256() {
    let hs256 = start(options()).await;
    let answer = hs256.jwks().await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body, json!({ "keys": [] }));
    assert_eq!(answer.headers.get(CACHE_CONTROL).unwrap(), "public, max-age=300");

    let (key, der) = sessionkit::SigningKey::generate_ed25519("test").unwrap();
    let public = B64.encode(key.ed25519_public_key().unwrap());
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(&der)
    );
    let der_file = TempFile::new("ed25519.der", &der);
    let pem_file = TempFile::new("ed25519.pem", pem.as_bytes());
    let mut kids = Vec::new();
    for file in [&der_file, &pem_file] {
        let server = start(app::Options { jwt_ed25519_key: Some(file.0.clone()), ..options() }).await;
        let answer = server.jwks().await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        let keys = answer.body["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 1, "{}", answer.body);
        let jwk = &keys[0];
        assert_eq!(jwk["kty"], "OKP");
        assert_eq!(jwk["crv"], "Ed25519");
        assert_eq!(jwk["alg"], "EdDSA");
        assert_eq!(jwk["use"], "sig");
        assert_eq!(jwk["x"], public.as_str());
        let kid = jwk["kid"].as_str().unwrap().to_owned();
        assert_eq!(kid.len(), 43, "an RFC 7638 thumbprint: {kid}");

        let login = server.login("alice", "wonderland").await;
        let header = jwt_header(&login.access);
        assert_eq!(header["alg"], "EdDSA");
        assert_eq!(header["kid"], kid.as_str());
        assert_eq!(server.session(&login.access).await.status, 200);
        kids.push(kid);
    }
    assert_eq!(kids[0], kids[1], "the same key, DER or PEM");
}

#[test]
fn bad_jwt_keys_are_refused_at_startup() {
    let refused = |options: app::Options| {
        app::AppState::from_options(&options, MemoryStore::new(), MockClock::new()).map(|_| ()).unwrap_err()
    };
    let short = B64.encode([7u8; 31]);
    let err = refused(app::Options { jwt_secret: Some(short.as_str().into()), ..options() });
    assert!(err.to_string().contains("31 bytes") && err.to_string().contains("32"), "{err}");
    assert!(!err.to_string().contains(&short), "the secret is not echoed: {err}");

    let padded = base64::engine::general_purpose::URL_SAFE.encode([7u8; 32]);
    assert!(padded.ends_with('='));
    for bad in ["not base64!", &padded, &base64::engine::general_purpose::STANDARD.encode([0xfbu8; 33])] {
        let err = refused(app::Options { jwt_secret: Some(bad.into()), ..options() });
        assert!(err.to_string().contains("base64url"), "{err}");
        assert!(!err.to_string().contains(bad), "the secret is not echoed: {err}");
    }
    let exact = B64.encode([7u8; 32]);
    assert!(
        app::AppState::from_options(
            &app::Options { jwt_secret: Some(exact.as_str().into()), ..options() },
            MemoryStore::new(),
            MockClock::new()
        )
        .is_ok()
    );

    let (_, der) = sessionkit::SigningKey::generate_ed25519("k").unwrap();
    let key = TempFile::new("both.der", &der);
    let err = refused(app::Options {
        jwt_secret: Some(exact.as_str().into()),
        jwt_ed25519_key: Some(key.0.clone()),
        ..options()
    });
    assert!(err.to_string().contains("not both"), "{err}");
    let missing = std::env::temp_dir().join("sessionkit-server-test-no-such-key.der");
    let err = refused(app::Options { jwt_ed25519_key: Some(missing), ..options() });
    assert!(err.to_string().contains("cannot read"), "{err}");
    let garbage = TempFile::new("garbage.der", b"not a key");
    let err = refused(app::Options { jwt_ed25519_key: Some(garbage.0.clone()), ..options() });
    assert!(err.to_string().contains("PKCS#8"), "{err}");

    // Token options out of range.
    let err = refused(app::Options { access_token_ttl: Some(2 * DAY), ..options() });
    assert!(err.to_string().contains("access_token_ttl"), "{err}");
    let err = refused(app::Options { refresh_reuse_grace: Some(2 * MINUTE), ..options() });
    assert!(err.to_string().contains("refresh_reuse_grace"), "{err}");

    // The secret never shows in Debug output.
    let options = app::Options { jwt_secret: Some(exact.as_str().into()), ..options() };
    assert!(!format!("{options:?}").contains(&exact));
}

#[test]
fn jwt_flags_parse() {
    let secret = B64.encode([9u8; 32]);
    let cli = Cli::try_parse_from([
        "server",
        "--access-token-ttl",
        "5m",
        "--refresh-reuse-grace",
        "0s",
        "--jwt-secret",
        &secret,
        "--jwt-issuer",
        "https://login.example",
        "--jwt-audience",
        "api",
    ])
    .unwrap();
    assert_eq!(cli.options.jwt_secret, Some(secret.as_str().into()));
    let config = app::session_config(&cli.options).unwrap();
    assert_eq!(config.access_token_ttl(), 5 * MINUTE);
    assert_eq!(config.refresh_reuse_grace(), Duration::ZERO);
    assert_eq!(config.jwt_issuer(), Some("https://login.example"));
    assert_eq!(config.jwt_audience(), Some("api"));
    let keys = app::signing_keys(&cli.options).unwrap();
    assert_eq!(keys.active().kid(), app::HS256_KID);
    assert_eq!(keys.active().algorithm(), sessionkit::token::keys::Algorithm::Hs256);

    let cli = Cli::try_parse_from(["server", "--refresh-reuse-grace", "3s", "--jwt-ed25519-key", "/k.pem"]).unwrap();
    assert_eq!(cli.options.jwt_ed25519_key.as_deref(), Some(std::path::Path::new("/k.pem")));
    assert_eq!(app::session_config(&cli.options).unwrap().refresh_reuse_grace(), Duration::from_secs(3));

    // Defaults: 15 minutes, 5 seconds, a random HS256 key.
    let cli = Cli::try_parse_from(["server"]).unwrap();
    let config = app::session_config(&cli.options).unwrap();
    assert_eq!(config.access_token_ttl(), 15 * MINUTE);
    assert_eq!(config.refresh_reuse_grace(), Duration::from_secs(5));
    assert_eq!(app::signing_keys(&cli.options).unwrap().active().kid(), app::HS256_KID);

    for bad in [
        vec!["--access-token-ttl", "soon"],
        vec!["--refresh-reuse-grace", "-1s"],
        vec!["--jwt-secret", &secret, "--jwt-ed25519-key", "/k.pem"],
    ] {
        let args = std::iter::once("server").chain(bad.iter().copied());
        assert!(Cli::try_parse_from(args).is_err(), "{bad:?} accepted");
    }
}

// -------------------------------------------------------------------------------------------
// Options: flags, config file, users
// -------------------------------------------------------------------------------------------

#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    options: app::Options,
}

#[test]
fn flags_parse_into_the_session_config() {
    let cli = Cli::try_parse_from([
        "server",
        "--user",
        "dave:pw",
        "--admin",
        "dave",
        "--idle-timeout",
        "5m",
        "--absolute-timeout",
        "2h 30m",
        "--remember-me-idle-timeout",
        "2days",
        "--remember-me-absolute-timeout",
        "14days",
        "--max-sessions-per-user",
        "3",
        "--on-limit",
        "evict-lru",
        "--insecure-cookies",
    ])
    .unwrap();
    assert!(cli.options.insecure_cookies);
    let config = app::session_config(&cli.options).unwrap();
    assert_eq!(config.idle_timeout(), 5 * MINUTE);
    assert_eq!(config.absolute_timeout(), 150 * MINUTE);
    assert_eq!(config.remember_me_idle_timeout(), 2 * DAY);
    assert_eq!(config.remember_me_absolute_timeout(), 14 * DAY);
    assert_eq!(config.max_sessions_per_user(), Some(3));
    assert_eq!(config.on_limit(), LimitPolicy::EvictLeastRecentlyUsed);

    let cli = Cli::try_parse_from(["server", "--max-sessions-per-user", "unlimited", "--on-limit", "reject"]).unwrap();
    let config = app::session_config(&cli.options).unwrap();
    assert_eq!(config.max_sessions_per_user(), None);
    assert_eq!(config.on_limit(), LimitPolicy::Reject);

    for bad in [["--on-limit", "lru"], ["--idle-timeout", "soon"], ["--max-sessions-per-user", "-1"]] {
        assert!(Cli::try_parse_from(["server", bad[0], bad[1]]).is_err(), "{bad:?} accepted");
    }
}

#[test]
fn invalid_options_are_refused_at_startup() {
    let refused = |options: app::Options| {
        app::AppState::from_options(&options, MemoryStore::new(), MockClock::new()).map(|_| ()).unwrap_err()
    };
    refused(app::Options { admins: vec!["mallory".into()], ..options() });
    refused(app::Options { users: vec!["no-colon".into()], ..options() });
    refused(app::Options { users: vec!["empty:".into()], ..options() });
    refused(app::Options { users: vec![":nameless".into()], ..options() });
    refused(app::Options { users: vec!["twice:a".into(), "twice:b".into()], ..options() });
    let err = refused(app::Options { idle_timeout: Some(2 * 60 * MINUTE), ..options() });
    assert!(err.to_string().contains("idle_timeout"), "{err}");
    refused(app::Options { max_sessions_per_user: Some(app::MaxSessions::Max(0)), ..options() });
    let missing = std::env::temp_dir().join("sessionkit-server-test-no-such-file.toml");
    refused(app::Options { config: Some(missing), ..options() });
    // An explicit impossible combination is still refused with its clear error.
    let err = refused(app::Options {
        idle_timeout: Some(Duration::from_secs(3)),
        touch_interval: Some(Duration::from_secs(5)),
        ..app::Options::default()
    });
    assert!(err.to_string().contains("touch_interval"), "{err}");
    let err = refused(app::Options {
        idle_timeout: Some(Duration::from_secs(3)),
        client_warning: Some(Duration::from_secs(5)),
        ..app::Options::default()
    });
    assert!(err.to_string().contains("--client-warning"), "{err}");
}

#[test]
fn a_short_idle_timeout_alone_starts_the_server() {
    let cli = Cli::try_parse_from(["server", "--idle-timeout", "3s"]).unwrap();
    let state = app::AppState::from_options(&cli.options, MemoryStore::new(), MockClock::new()).unwrap();
    assert_eq!(state.manager.config().touch_interval(), Duration::from_millis(750), "a quarter of the idle timeout");
    assert_eq!(state.client.idle_logout, Duration::from_secs(3));
    assert_eq!(state.client.warning, Duration::from_millis(750), "a quarter of the sign-out delay");
    assert_eq!(state.client.session_renew, Duration::from_millis(1125), "half of (idle - touch)");
    let config = sessionkit::SessionConfig::builder().idle_timeout(Duration::from_secs(30)).build();
    assert!(config.is_ok(), "the library builder too: {config:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_file_is_read_and_flags_override_it() {
    let path = std::env::temp_dir().join(format!("sessionkit-server-test-{}.toml", std::process::id()));
    std::fs::write(
        &path,
        "idle_timeout = \"20m\"\nabsolute_timeout = \"2h\"\nmax_sessions_per_user = 1\non_limit = \"reject\"\n",
    )
    .unwrap();
    let options = app::Options {
        config: Some(path.clone()),
        idle_timeout: Some(5 * MINUTE),
        absolute_timeout: None,
        remember_me_idle_timeout: None,
        remember_me_absolute_timeout: None,
        ..options()
    };
    let config = app::session_config(&options);
    let server = start(options).await;

    let bad = std::env::temp_dir().join(format!("sessionkit-server-test-bad-{}.toml", std::process::id()));
    std::fs::write(&bad, "idle_timout = \"20m\"\n").unwrap();
    let unknown_field = app::session_config(&app::Options { config: Some(bad.clone()), ..app::Options::default() });
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_file(&bad);

    let config = config.unwrap();
    assert_eq!(config.idle_timeout(), 5 * MINUTE, "the flag wins");
    assert_eq!(config.absolute_timeout(), 120 * MINUTE, "from the file");
    assert_eq!(config.max_sessions_per_user(), Some(1));
    assert_eq!(config.on_limit(), LimitPolicy::Reject);
    assert!(unknown_field.unwrap_err().to_string().contains("idle_timout"));

    // And the server really runs with it.
    let login = server.login("alice", "wonderland").await;
    assert_eq!(login.answer.body["idle_expires_at"], "2024-01-01T00:05:00Z");
    assert_eq!(login.answer.body["absolute_expires_at"], "2024-01-01T02:00:00Z");
    let answer = server.login_with(json!({ "username": "alice", "password": "wonderland" }), "t").await;
    answer.assert_error(409, "session_limit_reached");
}

#[test]
fn a_config_file_only_valid_with_its_overrides_is_accepted() {
    let file = TempFile::new(
        "overrides.toml",
        b"idle_timeout = \"9h\"\nmax_sessions_per_user = \"unlimited\"\naccess_token_ttl = \"2m\"\nrefresh_reuse_grace = \"0s\"\njwt_issuer = \"from-file\"\n",
    );
    // Alone, a 9-hour idle timeout exceeds the default 8-hour absolute one.
    let alone = app::session_config(&app::Options { config: Some(file.0.clone()), ..app::Options::default() });
    assert!(alone.unwrap_err().to_string().contains("idle_timeout"));

    let options = app::Options {
        config: Some(file.0.clone()),
        absolute_timeout: Some(10 * 60 * MINUTE),
        jwt_issuer: Some("from-flag".into()),
        ..app::Options::default()
    };
    let config = app::session_config(&options).unwrap();
    assert_eq!(config.idle_timeout(), 9 * 60 * MINUTE);
    assert_eq!(config.absolute_timeout(), 10 * 60 * MINUTE);
    assert_eq!(config.max_sessions_per_user(), None);
    assert_eq!(config.access_token_ttl(), 2 * MINUTE);
    assert_eq!(config.refresh_reuse_grace(), Duration::ZERO);
    assert_eq!(config.jwt_issuer(), Some("from-flag"), "the flag wins");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_users_without_user_flags() {
    let server = start(app::Options::default()).await;
    assert!(server.state.users.are_demo_users());
    assert_eq!(server.state.users.names(), vec![("alice", true), ("bob", false)]);
    let alice = server.login("alice", "wonderland").await;
    let bob = server.login("bob", "builder").await;
    assert_eq!(server.get("/api/v1/admin/sessions?user=bob", &alice.token).await.status, 200);
    server.get("/api/v1/admin/sessions?user=alice", &bob.token).await.assert_error(403, "forbidden");
    // Default config: 30 minutes idle, 8 hours absolute.
    assert_eq!(alice.answer.body["idle_expires_at"], "2024-01-01T00:30:00Z");
    assert_eq!(alice.answer.body["absolute_expires_at"], "2024-01-01T08:00:00Z");

    let explicit = start(options()).await;
    assert!(!explicit.state.users.are_demo_users());
    assert!(explicit.state.users.is_admin(&UserId::new("alice").unwrap()));
    assert!(!explicit.state.users.is_admin(&UserId::new("bob").unwrap()));
    let answer = explicit.login_with(json!({ "username": "carol", "password": "wonderland" }), "t").await;
    answer.assert_error(401, "invalid_credentials");
}

// -------------------------------------------------------------------------------------------
// Operations: statistics, export, sweeper, snapshots
// -------------------------------------------------------------------------------------------

const STATS: &str = "/api/v1/admin/sessions/stats";
const EXPORT: &str = "/api/v1/admin/sessions/export";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_stats_count_the_live_sessions() {
    let server = start(options()).await;
    let alice = server.login_as("alice", "wonderland", "Browser/1").await;
    let bob1 = server.login_as("bob", "builder", "Browser/1").await;
    let _bob2 = server.login_as("bob", "builder", "Phone/2").await;
    let carol = server.login("carol", "pass:with:colons").await;
    assert_eq!(server.post("/api/v1/auth/logout", &carol.token, None).await.status, 204);

    // Admins only.
    server.send(server.http.get(server.url(STATS))).await.assert_error(401, "invalid_session");
    server.get(STATS, &bob1.token).await.assert_error(403, "forbidden");
    server.get(STATS, &bob1.access).await.assert_error(403, "forbidden");

    let answer = server.get(STATS, &alice.token).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.headers.get(CACHE_CONTROL).unwrap(), "no-store");
    let stats = &answer.body;
    assert_eq!(stats["active_sessions"], 3, "carol logged out: {stats}");
    assert_eq!(stats["users"], 2, "{stats}");
    let hours = stats["created_last_24h"].as_array().unwrap();
    assert_eq!(hours.len(), 24, "{stats}");
    assert_eq!(hours[23], 3, "created in the current hour: {stats}");
    assert_eq!(hours.iter().map(|h| h.as_u64().unwrap()).sum::<u64>(), 3, "{stats}");
    assert_eq!(stats["top_ips"], json!([{ "ip": "127.0.0.1", "sessions": 3 }]), "{stats}");
    assert_eq!(stats["sessions_per_user"][0], json!({ "user": "bob", "sessions": 2 }), "{stats}");
    assert_eq!(stats["top_user_agents"][0], json!({ "user_agent": "Browser/1", "sessions": 2 }), "{stats}");
    assert_eq!(stats["generated_at"], "2024-01-01T00:00:00Z", "{stats}");
    assert!(stats["counters"].is_object(), "{stats}");

    // Expired sessions are not counted, swept or not: bob's two idle out, alice's was used.
    server.clock.advance(5 * MINUTE);
    assert_eq!(server.session(&alice.token).await.status, 200);
    server.clock.advance(6 * MINUTE);
    let answer = server.get(STATS, &alice.access).await;
    assert_eq!(answer.status, 200, "an admin's access token works too: {}", answer.body);
    assert_eq!(answer.body["active_sessions"], 1, "{}", answer.body);
    assert_eq!(answer.body["users"], 1, "{}", answer.body);
    assert_eq!(answer.body["top_ips"], json!([{ "ip": "127.0.0.1", "sessions": 1 }]), "{}", answer.body);

    // `stats` and `export` do not shadow the revocation route, nor the other way round.
    let answer = server.delete(STATS, &alice.token).await;
    answer.assert_error(405, "method_not_allowed");
    let by_id = format!("/api/v1/admin/sessions/{}", bob1.session_id);
    server.get(&by_id, &alice.token).await.assert_error(405, "method_not_allowed");
    server.delete(EXPORT, &alice.token).await.assert_error(405, "method_not_allowed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_export_is_json_lines_without_a_token() {
    let server = start(options()).await;
    let alice = server.login("alice", "wonderland").await;
    let bob = server.login("bob", "builder").await;
    let refreshed = server.refresh_token(&bob.refresh).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    let carol = server.login("carol", "pass:with:colons").await;
    assert_eq!(server.post("/api/v1/auth/logout", &carol.token, None).await.status, 204);

    server.send(server.http.get(server.url(EXPORT))).await.assert_error(401, "invalid_session");
    server.get(EXPORT, &bob.token).await.assert_error(403, "forbidden");

    let response = server.http.get(server.url(EXPORT)).bearer_auth(&alice.token).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers().get("content-type").unwrap(), "application/x-ndjson");
    assert_eq!(response.headers().get(CACHE_CONTROL).unwrap(), "no-store");
    let text = response.text().await.unwrap();
    assert!(text.ends_with('\n'), "{text}");
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).expect("every line is JSON")).collect();
    assert!(lines.len() >= 2, "{text}");
    assert_eq!(lines[0]["format"], "sessionkit", "{text}");
    assert_eq!(lines[0]["version"], 2, "{text}");
    assert_eq!(lines[0]["exported_at"], "2024-01-01T00:00:00Z", "{text}");
    let items = &lines[1..lines.len() - 1];
    assert_eq!(lines[lines.len() - 1], json!({ "type": "end", "items": items.len() }), "{text}");
    let of_type = |t: &str| items.iter().filter(|i| i["type"] == t).count();
    assert_eq!(of_type("session"), 2, "alice and bob: {text}");
    assert!(of_type("revoked") >= 1 && of_type("denied") >= 1, "carol's logout is remembered: {text}");

    let secrets = [&alice, &bob, &carol]
        .iter()
        .flat_map(|l| [l.token.clone(), l.access.clone(), l.refresh.clone()])
        .chain(["access_token", "refresh_token"].map(|f| refreshed.body[f].as_str().unwrap().to_owned()))
        .collect::<Vec<_>>();
    for secret in &secrets {
        assert!(!text.contains(secret.as_str()), "the export contains a token");
    }

    // The export is complete: imported elsewhere, the tokens keep working, and carol's stays
    // revoked.
    let config = app::session_config(&options()).unwrap();
    let restored = SessionManager::with_clock(MemoryStore::new(), config, server.clock.clone());
    assert_eq!(restored.import(text.as_bytes()).await.unwrap(), items.len());
    assert_eq!(restored.validate(&alice.token).await.unwrap().id().to_string(), alice.session_id);
    assert!(restored.validate(&bob.token).await.is_ok());
    assert!(matches!(restored.validate(&carol.token).await, Err(Error::Revoked { reason: RevocationReason::Logout })));
}

#[test]
fn operations_flags_parse() {
    let cli =
        Cli::try_parse_from(["server", "--sweep-interval", "30s", "--snapshot", "/var/lib/sessions.jsonl"]).unwrap();
    assert_eq!(cli.options.sweep_interval, Some(Duration::from_secs(30)));
    assert_eq!(cli.options.snapshot.as_deref(), Some(std::path::Path::new("/var/lib/sessions.jsonl")));
    assert_eq!(app::session_config(&cli.options).unwrap().sweep_interval(), Duration::from_secs(30));

    let cli = Cli::try_parse_from(["server"]).unwrap();
    assert_eq!(cli.options.snapshot, None);
    assert_eq!(app::session_config(&cli.options).unwrap().sweep_interval(), 15 * MINUTE, "the default");

    assert!(Cli::try_parse_from(["server", "--sweep-interval", "often"]).is_err());

    let cli = Cli::try_parse_from(["server", "--snapshot", "s.jsonl", "--snapshot-interval", "250ms"]).unwrap();
    assert_eq!(cli.options.snapshot_interval, Some(Duration::from_millis(250)));
    assert_eq!(Cli::try_parse_from(["server", "--snapshot", "s.jsonl"]).unwrap().options.snapshot_interval, None);
    assert_eq!(app::DEFAULT_SNAPSHOT_INTERVAL, Duration::from_secs(60));
    assert!(Cli::try_parse_from(["server", "--snapshot-interval", "5s"]).is_err(), "only with --snapshot");
    assert!(Cli::try_parse_from(["server", "--snapshot", "s.jsonl", "--snapshot-interval", "soon"]).is_err());
    for out_of_range in ["0s", "2days"] {
        let cli = Cli::try_parse_from(["server", "--sweep-interval", out_of_range]).unwrap();
        let err = app::session_config(&cli.options).unwrap_err();
        assert!(err.to_string().contains("sweep_interval"), "{err}");
    }
}

/// A directory under the system temporary directory, with a name no other test (or run) uses,
/// removed with its contents when dropped.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let path =
            std::env::temp_dir().join(format!("sessionkit-server-test-{}-{nanos}-{n}-{name}", std::process::id()));
        std::fs::create_dir(&path).unwrap();
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The item count of a snapshot file, checked against its header and end lines.
fn snapshot_items(path: &std::path::Path) -> u64 {
    let text = std::fs::read_to_string(path).unwrap();
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines[0]["format"], "sessionkit", "{text}");
    let end = lines.last().unwrap();
    assert_eq!(end["type"], "end", "{text}");
    assert_eq!(end["items"].as_u64().unwrap(), lines.len() as u64 - 2, "{text}");
    end["items"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_survive_a_restart_through_the_snapshot() {
    let dir = TempDir::new("restart");
    let path = dir.0.join("sessions.jsonl");
    let secret = B64.encode([7u8; 32]);
    let options =
        || app::Options { snapshot: Some(path.clone()), jwt_secret: Some(secret.as_str().into()), ..options() };

    // First run: no file yet, a first start. The file is written at once (a writable path).
    let clock = MockClock::new();
    let first = app::Running::start(&options(), clock.clone()).expect("a missing snapshot is a first start");
    assert_eq!(first.loaded, 0);
    assert_eq!(first.snapshot_path(), Some(path.as_path()));
    assert_eq!(snapshot_items(&path), 0);
    let mut server = serve(first.state.clone(), clock.clone()).await;
    let kept = server.login("alice", "wonderland").await;
    let revoked = server.login("bob", "builder").await;
    assert_eq!(server.post("/api/v1/auth/logout", &revoked.token, None).await.status, 204);
    assert_eq!(server.session(&kept.token).await.status, 200);
    let old_base = server.base.clone();

    // Ctrl-C: the HTTP server drains, then the sweeper stops and the store is saved.
    server.drain().await;
    assert!(server.http.get(format!("{old_base}/api/v1/auth/session")).send().await.is_err(), "still serving");
    let saved = first.shut_down().await.unwrap().expect("a snapshot path was given");
    assert!(saved >= 3, "alice's session and bob's revocation: {saved}");
    assert_eq!(snapshot_items(&path), saved);
    let text = std::fs::read_to_string(&path).unwrap();
    for secret in [&kept.token, &kept.access, &kept.refresh, &revoked.token, &revoked.access, &revoked.refresh] {
        assert!(!text.contains(secret.as_str()), "the snapshot contains a token");
    }

    // Second run, a minute later, from the same file.
    clock.advance(MINUTE);
    let second = app::Running::start(&options(), clock.clone()).expect("the snapshot loads");
    assert_eq!(second.loaded as u64, saved);
    let mut server = serve(second.state.clone(), clock.clone()).await;
    let answer = server.session(&kept.token).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["session_id"], kept.session_id.as_str());
    assert_eq!(answer.body["request_count"], 2, "one request before the restart, one after: {}", answer.body);
    server.session(&revoked.token).await.assert_rejected("session_revoked", "logout");
    // With the same --jwt-secret, access tokens survive too, and so does the denylist.
    assert_eq!(server.session(&kept.access).await.status, 200);
    server.session(&revoked.access).await.assert_rejected("session_revoked", "logout");
    assert_eq!(server.refresh_token(&kept.refresh).await.status, 200, "the refresh token survived");
    server.refresh_token(&revoked.refresh).await.assert_rejected("invalid_refresh_token", "logout");

    server.drain().await;
    assert!(second.shut_down().await.unwrap().is_some());
    assert!(snapshot_items(&path) >= saved);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_snapshot_stops_the_startup() {
    let dir = TempDir::new("corrupt");
    let header = br#"{"format":"sessionkit","version":1,"exported_at":"2024-01-01T00:00:00Z"}"#;
    let truncated = [&header[..], b"\n"].concat();
    let future_version = br#"{"format":"sessionkit","version":3,"exported_at":"2024-01-01T00:00:00Z"}
{"type":"end","items":0}
"#;
    let bad_item = [&header[..], b"\n{\"type\":\"session\",\"id\":42}\n{\"type\":\"end\",\"items\":1}\n"].concat();
    let cases: [(&str, &[u8]); 5] = [
        ("garbage", b"this is not a snapshot\n"),
        ("empty", b""),
        ("truncated", &truncated),
        ("future-version", future_version),
        ("bad-item", &bad_item),
    ];
    let with_snapshot = |path: std::path::PathBuf| app::Options { snapshot: Some(path), ..options() };
    for (name, contents) in cases {
        let path = dir.0.join(name);
        std::fs::write(&path, contents).unwrap();
        let Err(err) = app::Running::start(&with_snapshot(path.clone()), MockClock::new()) else {
            panic!("{name}: the server started over a corrupt snapshot");
        };
        let message = err.to_string();
        assert!(message.contains("corrupt") && message.contains(&path.display().to_string()), "{name}: {message}");
        assert_eq!(std::fs::read(&path).unwrap(), contents, "{name}: the file was changed");
    }

    // A directory, and a path whose directory does not exist: refused at startup too, not
    // discovered when the sessions are to be saved.
    assert!(app::Running::start(&with_snapshot(dir.0.clone()), MockClock::new()).is_err());
    let unwritable = with_snapshot(dir.0.join("missing-dir").join("sessions.jsonl"));
    let Err(err) = app::Running::start(&unwritable, MockClock::new()) else {
        panic!("started with an unwritable snapshot path");
    };
    assert!(err.to_string().contains("not writable"), "{err}");

    // The valid file next to them still loads.
    let good = dir.0.join("good");
    std::fs::write(&good, [&header[..], b"\n{\"type\":\"end\",\"items\":0}\n"].concat()).unwrap();
    let running = app::Running::start(&with_snapshot(good), MockClock::new()).unwrap();
    assert_eq!(running.loaded, 0);
    assert!(running.shut_down().await.unwrap().is_some());
}

#[tokio::test(start_paused = true)]
async fn the_snapshot_is_saved_every_snapshot_interval_until_shutdown() {
    let dir = TempDir::new("periodic");
    let path = dir.0.join("sessions.jsonl");
    let with_interval =
        |interval| app::Options { snapshot: Some(path.clone()), snapshot_interval: Some(interval), ..options() };
    for out_of_range in [Duration::ZERO, Duration::from_millis(99), Duration::from_secs(86_401)] {
        let Err(err) = app::Running::start(&with_interval(out_of_range), MockClock::new()) else {
            panic!("started with --snapshot-interval {out_of_range:?}");
        };
        assert!(err.to_string().contains("--snapshot-interval"), "{err}");
    }

    let clock = MockClock::new();
    let running = app::Running::start(&with_interval(Duration::from_secs(30)), clock.clone()).unwrap();
    let config = running.state.manager.config().clone();
    assert_eq!(snapshot_items(&path), 0, "written once at startup");
    let alice = running.state.manager.create(sessionkit::NewSession::new(UserId::new("alice").unwrap())).await.unwrap();
    tokio::time::sleep(Duration::from_secs(29)).await;
    assert_eq!(snapshot_items(&path), 0, "not saved again before the interval");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let saved = snapshot_items(&path);
    assert!(saved >= 1, "saved after one interval, while running");
    let restored = MemoryStore::new();
    restored.load_snapshot(&path).unwrap();
    let restored = SessionManager::with_clock(restored, config.clone(), clock.clone());
    restored.validate(alice.token.expose_secret()).await.unwrap();

    // And again every interval, until the shutdown saves once more.
    let bob = running.state.manager.create(sessionkit::NewSession::new(UserId::new("bob").unwrap())).await.unwrap();
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(snapshot_items(&path) > saved, "the next interval's save has bob's session");
    let carol = running.state.manager.create(sessionkit::NewSession::new(UserId::new("carol").unwrap())).await.unwrap();
    let at_shutdown = running.shut_down().await.unwrap().expect("a snapshot path was given");
    assert_eq!(snapshot_items(&path), at_shutdown);
    let restored = MemoryStore::new();
    restored.load_snapshot(&path).unwrap();
    let restored = SessionManager::with_clock(restored, config, clock);
    for session in [&alice, &bob, &carol] {
        restored.validate(session.token.expose_secret()).await.unwrap();
    }
    let names: Vec<_> = std::fs::read_dir(&dir.0).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, ["sessions.jsonl"], "no temporary file is left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweeper_runs_every_sweep_interval_until_shutdown() {
    let clock = MockClock::new();
    let options = app::Options { sweep_interval: Some(Duration::from_secs(1)), ..options() };
    let running = app::Running::start(&options, clock.clone()).unwrap();
    assert_eq!(running.snapshot_path(), None);
    let server = serve(running.state.clone(), clock.clone()).await;
    server.login("alice", "wonderland").await;
    server.login("bob", "builder").await;
    let store = running.state.manager.store();
    assert_eq!(store.len(), 2);

    // Past the absolute deadline: the next sweep (within a second of real time) removes both.
    clock.advance(2 * 60 * MINUTE);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !store.is_empty() {
        assert!(std::time::Instant::now() < deadline, "the sweeper did not run");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(running.shut_down().await.unwrap(), None, "no --snapshot, nothing saved");
}

// -------------------------------------------------------------------------------------------
// Browsers: CSRF, cookies, security headers, the page
// -------------------------------------------------------------------------------------------

/// Every cookie-authenticated state-changing endpoint, as `(method, path, body)`; `other` is a
/// session to revoke.
fn guarded_requests(other: &Login) -> Vec<(reqwest::Method, String, Option<Value>)> {
    use reqwest::Method;
    vec![
        (Method::POST, "/api/v1/auth/logout".into(), None),
        (Method::POST, "/api/v1/auth/logout-all".into(), None),
        (Method::POST, "/api/v1/auth/sessions/refresh".into(), None),
        (Method::POST, "/api/v1/auth/sessions/rotate".into(), None),
        (Method::POST, "/api/v1/auth/sessions/revoke".into(), Some(json!({ "session_id": other.session_id }))),
        (Method::DELETE, format!("/api/v1/admin/sessions/{}", other.session_id), None),
        (Method::DELETE, "/api/v1/admin/users/bob/sessions".into(), None),
        (Method::POST, "/api/v1/auth/refresh-token".into(), Some(json!({}))),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_authenticated_changes_need_the_origin_and_the_csrf_token() {
    let server = start(options()).await;
    let alice = server.login("alice", "wonderland").await;
    let second = server.login("alice", "wonderland").await;
    let bob = server.login("bob", "builder").await;
    assert_eq!(alice.csrf.len(), 43, "{}", alice.answer.body);
    assert_ne!(alice.csrf, second.csrf, "one token per session");
    let origin = server.origin();
    let cookies = format!("session={}; refresh_token={}", alice.token, alice.refresh);

    // (Origin, Sec-Fetch-Site, CSRF token) combinations that must all be refused.
    let malformed = format!("{}*", &alice.csrf[..42]);
    let refused: Vec<(Option<&str>, Option<&str>, Option<&str>)> = vec![
        (Some(&origin), None, None),                             // no token
        (Some(&origin), None, Some("")),                         // empty token
        (Some(&origin), None, Some(&bob.csrf)),                  // another user's token
        (Some(&origin), None, Some(&second.csrf)),               // another session's token
        (Some(&origin), None, Some(&malformed)),                 // malformed
        (Some("https://evil.example"), None, Some(&alice.csrf)), // another origin
        (Some("null"), None, Some(&alice.csrf)),                 // opaque origin
        (None, None, Some(&alice.csrf)),                         // no origin at all
        (None, Some("cross-site"), Some(&alice.csrf)),
        (None, Some("same-site"), Some(&alice.csrf)),
    ];
    for (method, path, body) in guarded_requests(&bob) {
        for (origin, fetch_site, token) in refused.clone() {
            let mut request = server.http.request(method.clone(), server.url(&path)).header(COOKIE, &cookies);
            if let Some(origin) = origin {
                request = request.header(ORIGIN, origin);
            }
            if let Some(site) = fetch_site {
                request = request.header("sec-fetch-site", site);
            }
            if let Some(token) = token {
                request = request.header("x-csrf-token", token);
            }
            if let Some(body) = &body {
                request = request.json(body);
            }
            let answer = server.send(request).await;
            answer.assert_error(403, "csrf_failed");
            assert!(answer.headers.get(SET_COOKIE).is_none(), "{method} {path}");
        }
    }
    // Nothing changed: every session is alive and the refresh token unspent.
    for login in [&alice, &second, &bob] {
        assert_eq!(server.session(&login.token).await.status, 200);
    }
    assert_eq!(server.refresh_token(&alice.refresh).await.status, 200);

    // With both, the page's requests go through; without Origin, `Sec-Fetch-Site: same-origin`
    // stands in for it.
    let answer =
        server.send(server.cookie_post("/api/v1/auth/sessions/refresh", &alice.token, Some(&alice.csrf))).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["csrf_token"], alice.csrf.as_str());
    let request = server
        .http
        .post(server.url("/api/v1/auth/sessions/refresh"))
        .header(COOKIE, format!("session={}", alice.token))
        .header("sec-fetch-site", "same-origin")
        .header("x-csrf-token", &alice.csrf);
    assert_eq!(server.send(request).await.status, 200);
    let revoke = server
        .cookie_post("/api/v1/auth/sessions/revoke", &alice.token, Some(&alice.csrf))
        .json(&json!({ "session_id": second.session_id }));
    assert_eq!(server.send(revoke).await.status, 204);
    server.session(&second.token).await.assert_rejected("session_revoked", "logout");

    // Bearer tokens are exempt, whatever the origin: another site cannot make a browser send one.
    for credential in [&bob.token, &bob.access] {
        let request = server
            .http
            .post(server.url("/api/v1/auth/sessions/refresh"))
            .bearer_auth(credential)
            .header(ORIGIN, "https://evil.example")
            .header(COOKIE, format!("session={}", alice.token));
        let answer = server.send(request).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert_eq!(answer.body["user"], "bob");
    }
    // Reading is not guarded (another site cannot read the answer).
    let request = server
        .http
        .get(server.url("/api/v1/auth/session"))
        .header(COOKIE, format!("session={}", alice.token))
        .header(ORIGIN, "https://evil.example");
    let answer = server.send(request).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["csrf_token"], alice.csrf.as_str());

    // With Secure cookies a plain-HTTP page is another origin, but for loopback hosts (which
    // browsers treat as secure contexts).
    let from = |host: &str, origin: &str| {
        server
            .http
            .post(server.url("/api/v1/auth/sessions/refresh"))
            .header(COOKIE, format!("session={}", alice.token))
            .header("x-csrf-token", &alice.csrf)
            .header(HOST, host.to_owned())
            .header(ORIGIN, origin.to_owned())
    };
    server.send(from("example.com", "http://example.com")).await.assert_error(403, "csrf_failed");
    server.send(from("example.com", "https://example.com:8443")).await.assert_error(403, "csrf_failed");
    for (host, origin) in [
        ("example.com", "https://example.com"),
        ("Example.COM:8443", "https://example.com:8443"),
        ("localhost:8080", "http://localhost:8080"),
        ("127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("[::1]:8080", "http://[::1]:8080"),
    ] {
        let answer = server.send(from(host, origin)).await;
        assert_eq!(answer.status, 200, "{host} {origin}: {}", answer.body);
    }

    // Plain HTTP pages are same-origin once cookies are not Secure.
    let insecure = start(app::Options { insecure_cookies: true, ..options() }).await;
    let carol = insecure.login("carol", "pass:with:colons").await;
    assert!(insecure.origin().starts_with("http://"));
    let answer = insecure.send(insecure.cookie_post("/api/v1/auth/logout", &carol.token, Some(&carol.csrf))).await;
    assert_eq!(answer.status, 204, "{}", answer.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_checks_the_origin_when_a_browser_sends_one() {
    let server = start(options()).await;
    let login = |origin: Option<&str>, fetch_site: Option<&str>| {
        let mut request = server
            .http
            .post(server.url("/api/v1/auth/login"))
            .json(&json!({ "username": "bob", "password": "builder" }));
        if let Some(origin) = origin {
            request = request.header(ORIGIN, origin.to_owned());
        }
        if let Some(site) = fetch_site {
            request = request.header("sec-fetch-site", site);
        }
        request
    };
    for (origin, site) in [(Some("https://evil.example"), None), (Some("null"), None), (None, Some("cross-site"))] {
        let answer = server.send(login(origin, site)).await;
        answer.assert_error(403, "csrf_failed");
        assert!(answer.headers.get(SET_COOKIE).is_none());
    }
    let origin = server.origin();
    for (origin, site) in [(Some(origin.as_str()), Some("same-origin")), (None, None), (None, Some("none"))] {
        let answer = server.send(login(origin, site)).await;
        assert_eq!(answer.status, 200, "{origin:?} {site:?}: {}", answer.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csrf_tokens_agree_across_instances_sharing_the_secret() {
    let secret = B64.encode([7u8; 32]);
    let with_secret = app::Options { csrf_secret: Some(secret.as_str().into()), ..options() };
    let first = start(with_secret.clone()).await;
    let second = start(with_secret).await;
    let other = start(options()).await;
    let login = first.login("alice", "wonderland").await;
    let id: SessionId = login.session_id.parse().unwrap();
    let session = first.state.manager.get(&id).await.unwrap().unwrap();
    assert_eq!(second.state.web.csrf_key().token(&session).expose_secret(), login.csrf);
    assert_ne!(other.state.web.csrf_key().token(&session).expose_secret(), login.csrf);

    for bad in [B64.encode([7u8; 31]), "not base64!".to_owned()] {
        let options = app::Options { csrf_secret: Some(bad.as_str().into()), ..options() };
        let error = app::AppState::from_options(&options, MemoryStore::new(), MockClock::new()).err().unwrap();
        assert!(error.to_string().contains("--csrf-secret"), "{error}");
        assert!(!error.to_string().contains(&bad), "the secret is not repeated: {error}");
    }
}

/// `--csrf-secret NEW,OLD` makes tokens with NEW and still accepts those made with OLD; once
/// OLD is dropped from the flag its tokens are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_csrf_secret_rotates_with_a_previous_secret_still_accepted() {
    let (old, new) = (B64.encode([7u8; 32]), B64.encode([8u8; 32]));
    let before = start(app::Options { csrf_secret: Some(old.as_str().into()), ..options() }).await;
    let login = before.login("alice", "wonderland").await;
    let id: SessionId = login.session_id.parse().unwrap();
    let session = before.state.manager.get(&id).await.unwrap().unwrap();

    let rotating = format!("{new},{old}");
    let options_with = |secret: &str| app::Options { csrf_secret: Some(secret.into()), ..options() };
    let rotated = app::AppState::from_options(&options_with(&rotating), MemoryStore::new(), MockClock::new()).unwrap();
    let after = app::AppState::from_options(&options_with(&new), MemoryStore::new(), MockClock::new()).unwrap();
    // New tokens come from the new secret; the page's old token still verifies meanwhile.
    let fresh = rotated.web.csrf_key().token(&session);
    assert_ne!(fresh.expose_secret(), login.csrf);
    assert_eq!(fresh, after.web.csrf_key().token(&session));
    assert_eq!(rotated.web.csrf_key().verify(&session, &login.csrf), Ok(()));
    assert_eq!(rotated.web.csrf_key().verify(&session, fresh.expose_secret()), Ok(()));
    // Without the previous secret, the old token is refused.
    assert_eq!(after.web.csrf_key().verify(&session, &login.csrf), Err(sessionkit::CsrfError::Mismatch));

    for bad in [format!("{new},{old},{old}"), format!("{new},short"), format!("{new},")] {
        let error =
            app::AppState::from_options(&options_with(&bad), MemoryStore::new(), MockClock::new()).err().unwrap();
        assert!(error.to_string().contains("--csrf-secret"), "{error}");
        assert!(!error.to_string().contains(&old) && !error.to_string().contains(&new), "no secret repeated: {error}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_refresh_token_cookie_is_narrow_and_csrf_checked() {
    let server = start(options()).await;
    let alice = server.login("alice", "wonderland").await;
    let bob = server.login("bob", "builder").await;
    let set_cookies: Vec<&str> = alice.answer.headers.get_all(SET_COOKIE).iter().map(|v| v.to_str().unwrap()).collect();
    assert_eq!(set_cookies.len(), 2, "{set_cookies:?}");
    assert!(set_cookies[0].starts_with("session="), "the session cookie comes first: {set_cookies:?}");
    let (pair, attributes) = cookie_parts(set_cookies[1]);
    // The cookie names its session, so that a cookie refresh can check it before spending.
    assert_eq!(pair, format!("refresh_token={}.{}", alice.session_id, alice.refresh));
    for expected in ["HttpOnly", "SameSite=Strict", "Path=/api/v1/auth/refresh-token", "Secure"] {
        assert!(attributes.iter().any(|a| a == expected), "{expected} missing: {attributes:?}");
    }

    let through_cookie = |session: &str, refresh: &str, csrf: Option<&str>| {
        let mut request = server
            .http
            .post(server.url("/api/v1/auth/refresh-token"))
            .header(COOKIE, format!("session={session}; refresh_token={refresh}"))
            .header(ORIGIN, server.origin())
            .json(&json!({}));
        if let Some(csrf) = csrf {
            request = request.header("x-csrf-token", csrf.to_owned());
        }
        request
    };
    let alice_cookie = format!("{}.{}", alice.session_id, alice.refresh);
    server.send(through_cookie(&alice.token, &alice_cookie, None)).await.assert_error(403, "csrf_failed");
    // Bob's refresh cookie planted next to alice's session cookie: refused before bob's token
    // is spent, so bob (past the grace window) can still use it; and with alice's session id
    // forged in front of it, refused after, with nothing handed out.
    let bob_cookie = format!("{}.{}", bob.session_id, bob.refresh);
    let planted = server.send(through_cookie(&alice.token, &bob_cookie, Some(&alice.csrf))).await;
    planted.assert_error(403, "csrf_failed");
    server.clock.advance(Duration::from_secs(6));
    let bob_refreshed = server.refresh_token(&bob.refresh).await;
    assert_eq!(bob_refreshed.status, 200, "bob's token was not spent: {}", bob_refreshed.body);
    let bob_next = bob_refreshed.body["refresh_token"].as_str().unwrap();
    let forged = format!("{}.{bob_next}", alice.session_id);
    let answer = server.send(through_cookie(&alice.token, &forged, Some(&alice.csrf))).await;
    answer.assert_error(403, "csrf_failed");
    assert!(answer.headers.get(SET_COOKIE).is_none(), "nothing handed out");
    // A cookie without its session id is not a refresh token.
    let bare = server.send(through_cookie(&alice.token, &alice.refresh, Some(&alice.csrf))).await;
    bare.assert_error(401, "invalid_refresh_token");

    let answer = server.send(through_cookie(&alice.token, &alice_cookie, Some(&alice.csrf))).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["expires_in"], 900);
    // The successor travels in the HttpOnly cookie only, not also in the body.
    assert!(answer.body.get("refresh_token").is_none(), "{}", answer.body);
    let (pair, _) = cookie_parts(answer.set_cookie());
    let prefix = format!("refresh_token={}.", alice.session_id);
    let next = pair.strip_prefix(&prefix).unwrap_or_else(|| panic!("{pair}")).to_owned();
    let next = next.as_str();
    assert_ne!(next, alice.refresh);
    assert_eq!(server.get("/api/v1/auth/session", answer.body["access_token"].as_str().unwrap()).await.status, 200);

    // No body token and no cookie; the body token wins over the cookie and needs no CSRF token.
    let empty = server.send(server.http.post(server.url("/api/v1/auth/refresh-token")).json(&json!({}))).await;
    empty.assert_error(400, "invalid_request");
    let body_wins = server
        .http
        .post(server.url("/api/v1/auth/refresh-token"))
        .header(COOKIE, format!("refresh_token={}", alice.refresh))
        .json(&json!({ "refresh_token": next }));
    let answer = server.send(body_wins).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(answer.headers.get(SET_COOKIE).is_none(), "a body refresh sets no cookie");

    // Logout clears both cookies.
    let answer = server.post("/api/v1/auth/logout", &alice.token, None).await;
    let cleared: Vec<&str> = answer.headers.get_all(SET_COOKIE).iter().map(|v| v.to_str().unwrap()).collect();
    assert!(cleared[0].starts_with("session=;"), "{cleared:?}");
    assert!(cleared[1].starts_with("refresh_token=;") && cleared[1].contains("Max-Age=0"), "{cleared:?}");
    assert!(cleared[1].contains("Path=/api/v1/auth/refresh-token"), "{cleared:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_cookie_prefix_is_opt_in() {
    let server = start(app::Options { host_cookie_prefix: true, ..options() }).await;
    let login = server.login("bob", "builder").await;
    let (pair, attributes) = cookie_parts(login.answer.set_cookie());
    assert_eq!(pair, format!("__Host-session={}", login.token));
    for expected in ["HttpOnly", "Secure", "Path=/"] {
        assert!(attributes.iter().any(|a| a == expected), "{expected} missing: {attributes:?}");
    }
    let url = server.url("/api/v1/auth/session");
    let cookie = format!("__Host-session={}", login.token);
    assert_eq!(server.send(server.http.get(&url).header(COOKIE, cookie)).await.status, 200);
    let plain = format!("session={}", login.token);
    server.send(server.http.get(&url).header(COOKIE, plain)).await.assert_error(401, "invalid_session");

    let options = app::Options { host_cookie_prefix: true, insecure_cookies: true, ..options() };
    let error = app::AppState::from_options(&options, MemoryStore::new(), MockClock::new()).err().unwrap();
    assert!(error.to_string().contains("__Host-"), "{error}");
    assert!(Cli::try_parse_from(["server", "--host-cookie-prefix", "--insecure-cookies"]).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_headers_on_every_response() {
    let server = start(options()).await;
    let login = server.login("alice", "wonderland").await;
    let answers = [
        ("login", login.answer),
        ("page", {
            let response = server.http.get(server.url("/")).send().await.unwrap();
            Answer { status: response.status().as_u16(), headers: response.headers().clone(), body: Value::Null }
        }),
        ("session", server.session(&login.token).await),
        ("sessions", server.get("/api/v1/auth/sessions", &login.access).await),
        ("refresh-token", server.refresh_token(&login.refresh).await),
        ("401", server.session("garbage").await),
        ("404", server.send(server.http.get(server.url("/nope"))).await),
        ("jwks", server.jwks().await),
    ];
    for (what, answer) in &answers {
        let header = |name: &str| {
            answer.headers.get(name).unwrap_or_else(|| panic!("{what}: no {name}")).to_str().unwrap().to_owned()
        };
        let csp = header("content-security-policy");
        for directive in ["script-src 'self'", "frame-ancestors 'none'", "base-uri 'none'", "form-action 'self'"] {
            assert!(csp.contains(directive), "{what}: {directive} missing from {csp}");
        }
        assert!(!csp.contains("unsafe"), "{what}: {csp}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{what}");
        assert_eq!(header("referrer-policy"), "no-referrer", "{what}");
        assert_eq!(header("x-frame-options"), "DENY", "{what}");
    }
    // Authenticated answers are never stored by a cache.
    for (what, answer) in &answers[..5] {
        if *what != "page" {
            assert_eq!(answer.headers.get(CACHE_CONTROL).unwrap(), "no-store", "{what}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_page_and_client_config() {
    let server = start(options()).await;
    let get = |path: &str| server.http.get(server.url(path)).send();
    for (path, content_type, needle) in [
        ("/", "text/html; charset=utf-8", "<script type=\"module\" src=\"/app.js\"></script>"),
        ("/app.js", "text/javascript; charset=utf-8", "/api/v1/auth/refresh-token"),
        ("/app.css", "text/css; charset=utf-8", "{"),
    ] {
        let response = get(path).await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(response.headers().get(CONTENT_TYPE).unwrap(), content_type, "{path}");
        let text = response.text().await.unwrap();
        assert!(text.contains(needle), "{path}");
        if path == "/" {
            // No inline script or handler: the CSP would refuse them anyway.
            assert_eq!(text.matches("<script").count(), 1, "only the module");
            assert!(!text.contains(" onclick") && !text.contains(" style="), "no inline handlers or styles");
        }
        if path == "/app.js" {
            assert!(!text.contains("localStorage") && !text.contains("sessionStorage"), "tokens stay out of storage");
        }
    }

    let answer = server.send(server.http.get(server.url("/api/v1/client-config"))).await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.body,
        json!({
            "refresh_margin_ms": 60_000, "idle_logout_ms": 600_000, "warning_ms": 60_000,
            "check_interval_ms": 900_000, "session_renew_ms": 270_000, "csrf_header": "X-CSRF-Token",
        })
    );
    let cli = Cli::try_parse_from([
        "server",
        "--client-refresh-margin",
        "1s",
        "--client-idle-logout",
        "6s",
        "--client-warning",
        "3s",
        "--client-check-interval",
        "2s",
        "--access-token-leeway",
        "0s",
        "--touch-interval",
        "1s",
        "--idle-timeout",
        "6s",
    ])
    .unwrap();
    let configured = start(cli.options.clone()).await;
    let answer = configured.send(configured.http.get(configured.url("/api/v1/client-config"))).await;
    assert_eq!(answer.body["refresh_margin_ms"], 1000);
    assert_eq!(answer.body["idle_logout_ms"], 6000);
    assert_eq!(answer.body["warning_ms"], 3000);
    assert_eq!(answer.body["check_interval_ms"], 2000);
    // Half of (idle timeout - touch interval): a renewal is written at most once per touch
    // interval, so refreshes this often keep an open page's session alive.
    assert_eq!(answer.body["session_renew_ms"], 2500);
    // The shorter idle timeout counts (here remember-me's), and never less than a second.
    let cases: [(&[&str], u64); 2] = [
        (&["--idle-timeout", "30m", "--remember-me-idle-timeout", "5m"], 120_000),
        (&["--idle-timeout", "2s", "--touch-interval", "1999ms", "--client-warning", "500ms"], 1000),
    ];
    for (flags, renew_ms) in cases {
        let cli = Cli::try_parse_from(std::iter::once("server").chain(flags.iter().copied())).unwrap();
        let server = start(cli.options).await;
        let answer = server.send(server.http.get(server.url("/api/v1/client-config"))).await;
        assert_eq!(answer.body["session_renew_ms"], renew_ms, "{flags:?}");
    }
    let config = app::session_config(&cli.options).unwrap();
    assert_eq!(config.access_token_leeway(), Duration::ZERO);
    assert_eq!(config.touch_interval(), Duration::from_secs(1));

    // The warning must come before the sign-out.
    let options = app::Options { client_warning: Some(Duration::from_secs(6)), ..cli.options };
    assert!(app::AppState::from_options(&options, MemoryStore::new(), MockClock::new()).is_err());
}
