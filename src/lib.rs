//! Server-side sessions that are secure by default, fast on the hot path, and yours to wire into
//! any HTTP stack.
//!
//! ```
//! use sessionkit::{Error, ExpiryReason, MemoryStore, NewSession, SessionConfig, SessionManager, UserId};
//! use sessionkit::clock::MockClock;
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Error> {
//! let config = SessionConfig::builder()
//!     .idle_timeout(Duration::from_secs(15 * 60))
//!     .absolute_timeout(Duration::from_secs(8 * 3600))
//!     .max_sessions_per_user(Some(3))
//!     .build()?;
//! let clock = MockClock::new(); // SessionManager::new(store, config) uses the system clock
//! let sessions = SessionManager::with_clock(MemoryStore::new(), config, clock.clone());
//!
//! // Login: hand `login.token` to the client (cookie or response body).
//! let login = sessions.create(NewSession::new(UserId::new("alice")?).remember_me(false)).await?;
//! let token = login.token.expose_secret().to_owned();
//!
//! // Every request: validate what the client presents.
//! let session = sessions.validate(&token).await?;
//! assert_eq!(session.user().as_str(), "alice");
//!
//! // Fifteen idle minutes later the session has expired.
//! clock.advance(Duration::from_secs(15 * 60));
//! assert!(matches!(sessions.validate(&token).await, Err(Error::Expired { reason: ExpiryReason::Idle })));
//!
//! // Logout ends a session at once; revoked tokens say why they stopped working.
//! let login = sessions.create(NewSession::new(UserId::new("alice")?)).await?;
//! sessions.revoke(login.token.expose_secret()).await?;
//! assert!(matches!(sessions.validate(login.token.expose_secret()).await, Err(Error::Revoked { .. })));
//! # Ok(()) }
//! ```
//!
//! # What it does
//!
//! * **Tokens**: 256 bits from the OS CSPRNG, base64url; parsed strictly (length first) and
//!   stored only as SHA-256 digests, compared in constant time; redacted in `Debug`/`Display`.
//! * **Lifetimes**: idle and absolute timeouts (the earlier wins), separate remember-me
//!   lifetimes, sliding renewal throttled by a touch interval, explicit
//!   [`extend`](SessionManager::extend), and [`rotate`](SessionManager::rotate) against
//!   session fixation.
//! * **Limits**: at most N sessions per user, evicting the oldest or least recently used, or
//!   refusing the login ([`LimitPolicy`]). Enforced atomically by the store.
//! * **Revocation**: logout, logout-everywhere (optionally keeping the current session),
//!   self-service and admin revocation by [`SessionId`]; a revoked token answers
//!   [`Error::Revoked`] with its [`RevocationReason`], not just "unknown".
//! * **Data**: client IP, user agent and request count per session, and a small JSON data bag
//!   updated atomically ([`DataPatch`]).
//! * **Browsers**: a [`SessionCookie`] with safe attributes (`HttpOnly`, `Secure`, `SameSite`,
//!   the `__Host-` prefix, `Max-Age` bounded by the session) and per-session CSRF tokens
//!   ([`CsrfKey`]) derived with HMAC-SHA-256 from the session id, so nothing extra is stored.
//!
//! # Security model
//!
//! The token is the only secret. Stores hold `SHA-256(token)`, so a leaked store dump cannot be
//! replayed; the token has full entropy, so a fast hash is appropriate. The public
//! [`SessionId`] names a session for listing and revocation but grants nothing. Errors, events
//! and `Debug` output never contain a token. Expiry is enforced on every validation from the
//! deadlines in the store, so a session never outlives its absolute deadline, even with a
//! clock that steps backwards (deadlines never move back). Nothing a client sends grows memory
//! without bound: tokens are length-checked before decoding, user agents are truncated, data
//! bags are capped, sessions per user are limited, and remembered revocations are bounded.
//!
//! # Stores
//!
//! [`SessionStore`] is the seam: an async trait whose every method documents its atomicity
//! contract (one atomic step per user), with [`TokenStore`] (refresh tokens and the
//! access-token denylist) and [`BackupStore`] (scan and restore) beside it, so that a store can
//! be written in steps; a conformance suite (`store::conformance`, `conformance_tests!`,
//! feature `test-util`) that every store passes checks each clause. [`MemoryStore`] (feature `memory`, default) is the embedded store: sharded
//! pointer tables, one read lock and a few atomics per validation. `store::redis` (feature
//! `redis`) shares sessions between instances through Redis; `store::sql` (features
//! `postgres`, `sqlite`) keeps them in PostgreSQL or SQLite.
//!
//! # Features
//!
//! * `memory` (default): [`MemoryStore`].
//! * `tracing` (default): session events also logged as structured `tracing` events.
//! * `tokio`: `SessionManager::spawn_sweeper` and `MemoryStore::spawn_snapshots`.
//! * `test-util`: `clock::MockClock` and the store conformance suite.
//! * `redis`: `RedisStore`, sessions in Redis or Valkey (tokio runtime).
//! * `postgres`, `sqlite`: `SqlStore`, sessions in PostgreSQL or SQLite through sqlx (tokio
//!   runtime).
//! * `axum`: `sessionkit::axum`, the web integration for axum 0.8: a tower layer, the
//!   `CurrentSession` and `OptionalSession` extractors, the CSRF guard, cookies and JSON error
//!   answers.
//! * `client`: `client::TokenHolder`, for API clients of a sessionkit server: refreshes access
//!   tokens ahead of expiry, once for any number of concurrent callers. No HTTP client, no
//!   runtime.
//!
//! # Minimum supported Rust version
//!
//! 1.88, as declared in `Cargo.toml` (`rust-version`).

#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "axum")]
pub mod axum;
pub mod backup;
#[cfg(feature = "client")]
pub mod client;
pub mod clock;
pub mod config;
pub mod cookie;
pub mod csrf;
pub mod error;
pub mod events;
pub mod expiry;
/// Export and import as JSON Lines: the [`backup::jsonl`] module under its earlier path.
pub use backup::jsonl as export;
mod hash;
pub mod manager;
pub mod policy;
pub mod session;
pub mod stats;
pub mod store;
#[cfg(feature = "tokio")]
pub mod sweeper;
pub mod token;

pub use clock::{Clock, SystemClock, Timestamp};
pub use config::{SessionConfig, SessionConfigBuilder};
pub use cookie::{SameSite, SessionCookie};
pub use csrf::{CsrfError, CsrfKey, CsrfToken};
pub use error::{ConfigError, Error, ExpiryReason, RevocationReason, StoreError};
pub use events::{EventListener, SessionEvent};
pub use manager::{Created, NewSession, Rotated, SessionManager, TokenPair};
pub use policy::LimitPolicy;
pub use session::{DataPatch, Session, SessionData, SessionId, UserId};
pub use stats::SessionStats;
#[cfg(feature = "memory")]
pub use store::memory::MemoryStore;
#[cfg(feature = "redis")]
pub use store::redis::RedisStore;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub use store::sql::SqlStore;
pub use store::{BackupStore, SessionStore, TokenStore};
pub use token::keys::{KeySet, SigningKey};
pub use token::{AccessClaims, AccessToken, AccessTokenError, RefreshToken, SessionToken};

/// The `time` crate, whose [`OffsetDateTime`](time::OffsetDateTime) the API returns.
pub use time;

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
