//! Sessions in an [axum](https://docs.rs/axum) application (feature `axum`): a tower layer,
//! extractors, the CSRF guard, cookies and JSON errors, so that an application wires sessions
//! in with a few lines instead of writing the security-sensitive glue itself.
//!
//! ```
//! use axum::routing::{get, post};
//! use axum::{Json, Router};
//! use serde_json::{Value, json};
//! use sessionkit::axum::{AllowedOrigins, ApiError, Auth, CurrentSession, LoggedOut, LoginAnswer, SessionLayer, WebConfig};
//! use sessionkit::{MemoryStore, SessionConfig, SessionManager, UserId};
//!
//! async fn login(auth: Auth) -> Result<LoginAnswer, ApiError> {
//!     // Check the user's password first.
//!     let user = UserId::new("alice").map_err(|e| ApiError::invalid_request(e.to_string()))?;
//!     auth.login(auth.new_session(user)).await
//! }
//!
//! async fn me(current: CurrentSession) -> Json<Value> {
//!     Json(json!({ "user": current.user().as_str() }))
//! }
//!
//! async fn logout(auth: Auth) -> Result<LoggedOut, ApiError> {
//!     auth.logout().await
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let sessions = SessionManager::new(MemoryStore::new(), SessionConfig::default());
//! let web = WebConfig::builder(AllowedOrigins::new("https://app.example.com")?).build()?;
//! let app: Router = Router::new()
//!     .route("/login", post(login))
//!     .route("/me", get(me))
//!     .route("/logout", post(logout))
//!     .layer(SessionLayer::new(sessions, web));
//! # use tower::ServiceExt as _;
//! # let request = axum::http::Request::post("/login").body(axum::body::Body::empty())?;
//! # let response = app.clone().oneshot(request).await?;
//! # assert_eq!(response.status(), 200);
//! # let cookie = response.headers()["set-cookie"].to_str()?.split(';').next().unwrap_or("").to_owned();
//! # assert!(cookie.starts_with("__Host-session="));
//! # let request = axum::http::Request::get("/me").header("cookie", cookie).body(axum::body::Body::empty())?;
//! # assert_eq!(app.oneshot(request).await?.status(), 200);
//! # Ok(()) }
//! ```
//!
//! # What each piece does
//!
//! * [`SessionLayer`] shares the [`SessionManager`](crate::SessionManager) and the
//!   [`WebConfig`] with every route below it, whatever the router's state; it does no other
//!   work.
//! * [`CurrentSession`] is the request's validated session, or a 401 answer;
//!   [`OptionalSession`] is `None` instead of the 401. Both read `Authorization: Bearer`
//!   (a session token, or an access token when the manager has signing keys) or the session
//!   cookie. An access token does not slide the idle deadline and is not counted.
//! * [`Auth`] performs the operations that set or clear cookies: login, logout, token
//!   refresh, rotation, renewal.
//! * The **CSRF guard**, on for every cookie-authenticated request that changes state
//!   (anything but `GET`, `HEAD`, `OPTIONS`): the `Origin` must be one of the
//!   [`AllowedOrigins`] (or, without `Origin`, `Sec-Fetch-Site: same-origin`), and the
//!   `X-CSRF-Token` header must carry the session's CSRF token
//!   ([`CurrentSession::csrf_token`], `csrf_token` in the login answer). The token is bound to
//!   the session token, so it changes when the session is rotated. Bearer credentials are
//!   exempt: another site cannot make a browser send them. Failures answer 403 `csrf_failed`.
//! * **Errors** answer `{"error": code, "message": text}` (plus `"reason"` for expired and
//!   revoked sessions) with the status of [`Error::http_status`](crate::Error::http_status):
//!   [`ApiError`], and `IntoResponse` for [`Error`](crate::Error) itself. A store failure is
//!   503 `store_unavailable`, never 401 or a success. [`JsonBody`] gives malformed JSON the
//!   same shape.
//! * **Cookies** ([`WebConfig`]): the session cookie `HttpOnly`, `Secure`, `SameSite=Lax`,
//!   named `__Host-session`; the refresh-token cookie `HttpOnly`, `SameSite=Strict`, sent only
//!   to the refresh path. Remember-me cookies last until the session's absolute deadline,
//!   never longer; others end with the browser session.
//!
//! # Coming from tower-sessions
//!
//! | tower-sessions | sessionkit |
//! |---|---|
//! | `SessionManagerLayer::new(store)` | [`SessionLayer::new`]`(manager, web_config)` |
//! | `session: Session` extractor | [`CurrentSession`] (authenticated) or [`OptionalSession`] |
//! | `session.insert(key, value)` | [`SessionManager::update_data`](crate::SessionManager::update_data) with a [`DataPatch`](crate::DataPatch) |
//! | `session.cycle_id()` | [`Auth::rotate`] |
//! | `session.flush()` | [`Auth::logout`] |
//! | `with_secure`, `with_same_site`, ... | [`WebConfigBuilder`] (secure defaults) |
//!
//! The difference in kind: a tower-sessions session exists for every visitor and holds
//! anything; a sessionkit session exists only once a user has logged in, and carries the
//! security properties (timeouts, limits, revocation, CSRF) with it.

mod answer;
mod config;
mod error;
mod extract;
mod layer;
mod origin;

pub use answer::{LoggedOut, LoginAnswer, Refreshed, RotatedAnswer, SetCookies};
pub use config::{
    CSRF_HEADER, REFRESH_COOKIE_NAME, REFRESH_PATH, SESSION_COOKIE_NAME, WebConfig, WebConfigBuilder, WebConfigError,
};
pub use error::{ApiError, JsonBody};
pub use extract::{Auth, CredentialKind, CurrentSession, OptionalSession};
pub use layer::{SessionLayer, SessionService};
pub use origin::{AllowedOrigins, InvalidOrigin};
