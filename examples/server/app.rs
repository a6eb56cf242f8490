//! The example server's application: configuration from the command-line options, the user
//! database, the axum router, the handlers and the mapping of [`sessionkit::Error`] to HTTP.
//!
//! `main.rs` parses the command line and starts the server; everything that answers a request
//! lives here, so that `tests/server_http.rs` can include this file and boot the same router
//! in-process with a [`MockClock`](sessionkit::clock::MockClock).
//!
//! The state is generic over the store `S` and the clock `C`, exactly like
//! [`SessionManager<S, C>`]: the binary uses [`MemoryStore`] and the system clock, through
//! [`Running`], which also restores and saves the `--snapshot` file and runs the background
//! sweeper.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::header::{
    AUTHORIZATION, CACHE_CONTROL, CONTENT_SECURITY_POLICY as CONTENT_SECURITY_POLICY_HEADER, CONTENT_TYPE, COOKIE,
    HOST, ORIGIN, REFERRER_POLICY, SET_COOKIE, USER_AGENT, WWW_AUTHENTICATE, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router, middleware};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use sessionkit::export::ExportError;
use sessionkit::store::memory::SnapshotError;
use sessionkit::sweeper::SweeperHandle;
use sessionkit::time::OffsetDateTime;
use sessionkit::time::format_description::well_known::Rfc3339;
use sessionkit::token::keys::{KeyError, MIN_HS256_SECRET_LEN};
use sessionkit::{
    AccessClaims, AccessTokenError, Clock, CsrfKey, Error, KeySet, LimitPolicy, MemoryStore, NewSession, SameSite,
    Session, SessionConfig, SessionConfigBuilder, SessionCookie, SessionId, SessionManager, SessionStats, SessionStore,
    SigningKey, Timestamp, TokenPair, UserId,
};
use subtle::ConstantTimeEq;
use zeroize::Zeroize as _;

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

    /// Lifetime of access tokens (JWTs), e.g. "15m"; at most one day.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub(crate) access_token_ttl: Option<Duration>,

    /// How long a just-spent refresh token still returns the same successor pair, e.g. "5s";
    /// "0s" makes refresh tokens strictly single-use. At most one minute.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub(crate) refresh_reuse_grace: Option<Duration>,

    /// HS256 secret for access tokens, base64url without padding, at least 32 bytes decoded.
    /// Default: a random secret generated at startup (tokens die with the process).
    #[arg(long, value_name = "BASE64URL", conflicts_with = "jwt_ed25519_key")]
    pub(crate) jwt_secret: Option<JwtSecret>,

    /// Ed25519 private key (PKCS#8, DER or PEM) to sign access tokens with EdDSA; its public
    /// half is published at /.well-known/jwks.json.
    #[arg(long, value_name = "FILE")]
    pub(crate) jwt_ed25519_key: Option<PathBuf>,

    /// The `iss` claim of access tokens, required on verification.
    #[arg(long, value_name = "ISSUER")]
    pub(crate) jwt_issuer: Option<String>,

    /// The `aud` claim of access tokens, required on verification.
    #[arg(long, value_name = "AUDIENCE")]
    pub(crate) jwt_audience: Option<String>,

    /// Leave the `Secure` attribute off the session cookie (for plain-HTTP development only).
    #[arg(long)]
    pub(crate) insecure_cookies: bool,

    /// Name the session cookie `__Host-session` instead of `session`, so that no subdomain or
    /// plain-HTTP page can plant or overwrite it. Needs `Secure` (not with --insecure-cookies).
    #[arg(long, conflicts_with = "insecure_cookies")]
    pub(crate) host_cookie_prefix: bool,

    /// Secret from which the per-session CSRF tokens are derived, base64url without padding,
    /// 32 to 64 bytes decoded; give every instance the same one. Default: a random secret
    /// generated at startup (tokens change with every start; pages fetch them again).
    #[arg(long, value_name = "BASE64URL")]
    pub(crate) csrf_secret: Option<JwtSecret>,

    /// Clock skew tolerated on access tokens' `exp` and `nbf`, e.g. "30s" (the default); "0s"
    /// for none.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub(crate) access_token_leeway: Option<Duration>,

    /// Validation renews a session's idle deadline at most this often, e.g. "60s" (the
    /// default); must be shorter than the idle timeouts.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub(crate) touch_interval: Option<Duration>,

    /// Browser page: refresh the access token this long before it expires (default 60s; the
    /// page uses at most half the token's lifetime).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub(crate) client_refresh_margin: Option<Duration>,

    /// Browser page: sign out after this long without user activity (default: the idle
    /// timeout).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub(crate) client_idle_logout: Option<Duration>,

    /// Browser page: warn this long before an inactivity sign-out or the session's absolute
    /// end (default 60s).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub(crate) client_warning: Option<Duration>,

    /// Browser page: ask the server whether the session is still valid this often, and on tab
    /// focus (default 15m).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub(crate) client_check_interval: Option<Duration>,

    /// How often the background sweeper removes expired sessions from the store, e.g. "5m"
    /// (default 15m, at least 1s, at most a day). Expired sessions are refused whether or not
    /// they have been swept; sweeping only frees their memory.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub(crate) sweep_interval: Option<Duration>,

    /// Keep sessions across restarts: load them from FILE at startup (a missing file is a first
    /// start; a corrupt one stops the server from starting) and save them to it on shutdown.
    /// The file holds token digests, never tokens, but also user names, IPs and user agents.
    #[arg(long, value_name = "FILE")]
    pub(crate) snapshot: Option<PathBuf>,
}

/// The value of `--jwt-secret`, still encoded. `Debug` never shows it, and it is decoded (and
/// checked) only when the server starts, so that no error message repeats it.
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct JwtSecret(String);

impl fmt::Debug for JwtSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JwtSecret(<redacted>)")
    }
}

impl std::str::FromStr for JwtSecret {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

impl From<&str> for JwtSecret {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

impl Drop for JwtSecret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
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

/// Builds the session configuration: the `--config` file (or the defaults), then the flags,
/// then one check of the whole. The file is read unchecked, so a file that is only valid
/// together with the flags (say `idle_timeout = "9h"` with `--absolute-timeout 10h`) is
/// accepted.
pub(crate) fn session_config(options: &Options) -> Result<SessionConfig, StartupError> {
    let mut builder = match &options.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| StartupError(format!("cannot read config file {}: {e}", path.display())))?;
            toml::from_str::<SessionConfigBuilder>(&text)
                .map_err(|e| StartupError(format!("invalid config file {}: {e}", path.display())))?
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
    if let Some(d) = options.access_token_ttl {
        builder = builder.access_token_ttl(d);
    }
    if let Some(d) = options.refresh_reuse_grace {
        builder = builder.refresh_reuse_grace(d);
    }
    if let Some(d) = options.access_token_leeway {
        builder = builder.access_token_leeway(d);
    }
    if let Some(d) = options.touch_interval {
        builder = builder.touch_interval(d);
    }
    if let Some(issuer) = &options.jwt_issuer {
        builder = builder.jwt_issuer(Some(issuer.clone()));
    }
    if let Some(audience) = &options.jwt_audience {
        builder = builder.jwt_audience(Some(audience.clone()));
    }
    if let Some(d) = options.sweep_interval {
        builder = builder.sweep_interval(d);
    }
    builder.build().map_err(|e| StartupError(format!("invalid session configuration: {e}")))
}

/// The key id of the HS256 key (from `--jwt-secret` or generated).
pub(crate) const HS256_KID: &str = "hs256-1";

/// The access-token signing keys: the Ed25519 key of `--jwt-ed25519-key` (EdDSA), else the
/// HS256 secret of `--jwt-secret`, else a random HS256 secret.
///
/// The Ed25519 key's id is its RFC 7638 JWK thumbprint, so that a new key gets a new `kid`
/// without anyone choosing one.
pub(crate) fn signing_keys(options: &Options) -> Result<KeySet, StartupError> {
    let key = match (&options.jwt_ed25519_key, &options.jwt_secret) {
        (Some(_), Some(_)) => {
            return Err(StartupError("give --jwt-secret or --jwt-ed25519-key, not both".to_owned()));
        }
        (Some(path), None) => {
            let mut bytes = std::fs::read(path)
                .map_err(|e| StartupError(format!("cannot read --jwt-ed25519-key {}: {e}", path.display())))?;
            let key = SigningKey::ed25519_from_pkcs8_with_thumbprint(&bytes).map_err(|e| {
                StartupError(format!("--jwt-ed25519-key {}: {e} (expected PKCS#8, DER or PEM)", path.display()))
            });
            bytes.zeroize();
            key?
        }
        (None, Some(JwtSecret(encoded))) => {
            let mut secret = URL_SAFE_NO_PAD.decode(encoded.trim()).map_err(|_| {
                StartupError(
                    "--jwt-secret must be base64url without padding (alphabet A-Z a-z 0-9 - _, no `=`)".to_owned(),
                )
            })?;
            let key = SigningKey::hs256(HS256_KID, &secret).map_err(|e| match e {
                KeyError::SecretTooShort(n) => StartupError(format!(
                    "--jwt-secret is {n} bytes once decoded; HS256 needs at least {MIN_HS256_SECRET_LEN} random bytes \
                     (e.g. `head -c 32 /dev/urandom | basenc --base64url | tr -d =`)"
                )),
                other => StartupError(format!("--jwt-secret: {other}")),
            });
            secret.zeroize();
            key?
        }
        (None, None) => SigningKey::generate_hs256(HS256_KID)
            .map_err(|e| StartupError(format!("cannot generate an HS256 secret: {e}")))?,
    };
    KeySet::new(key).map_err(|e| StartupError(format!("invalid signing key: {e}")))
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

/// What every handler shares: the session manager, the users, the cookie and CSRF policy, and
/// what the browser page is configured with.
pub(crate) struct AppState<S, C> {
    pub(crate) manager: SessionManager<S, C>,
    pub(crate) users: Arc<Users>,
    pub(crate) secure_cookies: bool,
    /// The session cookie (`session`, or `__Host-session` with `--host-cookie-prefix`).
    pub(crate) cookie: SessionCookie,
    /// The refresh-token cookie: `SameSite=Strict`, sent only to the refresh-token endpoint.
    pub(crate) refresh_cookie: SessionCookie,
    pub(crate) csrf: Arc<CsrfKey>,
    pub(crate) client: ClientConfig,
}

impl<S, C> Clone for AppState<S, C> {
    fn clone(&self) -> Self {
        Self {
            manager: self.manager.clone(),
            users: Arc::clone(&self.users),
            secure_cookies: self.secure_cookies,
            cookie: self.cookie.clone(),
            refresh_cookie: self.refresh_cookie.clone(),
            csrf: Arc::clone(&self.csrf),
            client: self.client,
        }
    }
}

/// What the browser page is configured with, served at `GET /api/v1/client-config`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ClientConfig {
    pub(crate) refresh_margin: Duration,
    pub(crate) idle_logout: Duration,
    pub(crate) warning: Duration,
    pub(crate) check_interval: Duration,
    /// How often an open page must renew its session (a token refresh counts as activity) so
    /// that the server's idle timeout never ends a session whose user is active in the page:
    /// half of (the shorter idle timeout, ordinary or remember-me, − touch interval), since a
    /// renewal within the touch interval of the last one is not written; at least a second.
    pub(crate) session_renew: Duration,
}

impl ClientConfig {
    fn from_options(options: &Options, config: &SessionConfig) -> Result<Self, StartupError> {
        let client = Self {
            refresh_margin: options.client_refresh_margin.unwrap_or(Duration::from_secs(60)),
            idle_logout: options.client_idle_logout.unwrap_or(config.idle_timeout()),
            warning: options.client_warning.unwrap_or(Duration::from_secs(60)),
            check_interval: options.client_check_interval.unwrap_or(Duration::from_secs(15 * 60)),
            session_renew: (config
                .idle_timeout()
                .min(config.remember_me_idle_timeout())
                .saturating_sub(config.touch_interval())
                / 2)
            .max(Duration::from_secs(1)),
        };
        for (flag, d) in
            [("--client-idle-logout", client.idle_logout), ("--client-check-interval", client.check_interval)]
        {
            if d < Duration::from_secs(1) || d > Duration::from_secs(86_400) {
                return Err(StartupError(format!("{flag} must be between 1s and a day")));
            }
        }
        if client.warning >= client.idle_logout {
            return Err(StartupError("--client-warning must be shorter than --client-idle-logout".to_owned()));
        }
        Ok(client)
    }
}

/// Path of the refresh-token endpoint, and so of the refresh-token cookie.
pub(crate) const REFRESH_TOKEN_PATH: &str = "/api/v1/auth/refresh-token";

/// Name of the refresh-token cookie.
pub(crate) const REFRESH_COOKIE_NAME: &str = "refresh_token";

/// The request header that carries the CSRF token.
pub(crate) const CSRF_HEADER: &str = "x-csrf-token";

/// The CSRF key from `--csrf-secret`, else a random one.
fn csrf_key(options: &Options) -> Result<CsrfKey, StartupError> {
    let Some(JwtSecret(encoded)) = &options.csrf_secret else {
        return CsrfKey::generate().map_err(|e| StartupError(format!("cannot generate a CSRF secret: {e}")));
    };
    let mut secret = URL_SAFE_NO_PAD
        .decode(encoded.trim())
        .map_err(|_| StartupError("--csrf-secret must be base64url without padding".to_owned()))?;
    let key = CsrfKey::from_bytes(&secret).map_err(|e| StartupError(format!("--csrf-secret: {e}")));
    secret.zeroize();
    key
}

impl<S: SessionStore, C: Clock> AppState<S, C> {
    /// Builds the state from the options, over `store`, reading the time from `clock`.
    pub(crate) fn from_options(options: &Options, store: S, clock: C) -> Result<Self, StartupError> {
        let config = session_config(options)?;
        let client = ClientConfig::from_options(options, &config)?;
        let users = Users::from_specs(&options.users, &options.admins)?;
        let keys = signing_keys(options)?;
        let csrf = csrf_key(options)?;
        let secure = !options.insecure_cookies;
        let cookie = SessionCookie::builder(COOKIE_NAME)
            .secure(secure)
            .host_prefix(options.host_cookie_prefix)
            .build()
            .map_err(|e| StartupError(format!("session cookie: {e}")))?;
        let refresh_cookie = SessionCookie::builder(REFRESH_COOKIE_NAME)
            .secure(secure)
            .same_site(SameSite::Strict)
            .path(REFRESH_TOKEN_PATH)
            .build()
            .map_err(|e| StartupError(format!("refresh-token cookie: {e}")))?;
        let manager = SessionManager::with_clock(store, config, clock);
        manager.set_keys(keys);
        Ok(Self {
            manager,
            users: Arc::new(users),
            secure_cookies: secure,
            cookie,
            refresh_cookie,
            csrf: Arc::new(csrf),
            client,
        })
    }

    /// A `Set-Cookie` value of `cookie` carrying `value` for `session`: a browser-session
    /// cookie, or with remember-me a persistent one until the session's absolute deadline.
    fn cookie_for(&self, cookie: &SessionCookie, value: &str, session: &Session) -> Result<String, ApiError> {
        let set = if session.remember_me() {
            let deadline = Timestamp::from(session.absolute_expires_at());
            cookie.set_until(value, deadline, self.manager.clock().now())
        } else {
            cookie.set(value, None)
        };
        set.map_err(|e| ApiError::internal(format!("cookie: {e}")))
    }

    /// The CSRF defence for a request that a cookie authenticates: its `Origin` must be this
    /// server's (see [`same_origin`]), checked before the session is looked at.
    fn check_origin(&self, parts: &RequestHead<'_>, origin: OriginRule) -> Result<(), ApiError> {
        if same_origin(parts, self.secure_cookies, origin) {
            Ok(())
        } else {
            Err(ApiError::csrf("cross-origin request refused: the Origin header must name this server"))
        }
    }

    /// The second half of the CSRF defence: the `X-CSRF-Token` header must carry the session's
    /// CSRF token.
    fn check_csrf_token(&self, headers: &HeaderMap, session: &SessionId) -> Result<(), ApiError> {
        let presented = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
        self.csrf
            .verify(session, presented)
            .map_err(|e| ApiError::csrf(format!("{e}: send the session's csrf_token in the X-CSRF-Token header")))
    }
}

/// How strictly [`same_origin`] treats a request without an `Origin` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OriginRule {
    /// A cookie-authenticated state-changing request: without `Origin`, only
    /// `Sec-Fetch-Site: same-origin` is accepted.
    Required,
    /// A login: without `Origin`, anything but a `Sec-Fetch-Site` naming another site
    /// (`cross-site`, `same-site`) is accepted, so that non-browser clients can log in.
    WhenPresent,
}

/// The parts of a request the origin check reads.
pub(crate) struct RequestHead<'a> {
    headers: &'a HeaderMap,
    uri: &'a axum::http::Uri,
}

/// Whether the request comes from a page of this server: its `Origin` is `https://HOST` with
/// `HOST` the request's `Host` header (or HTTP/2 authority), compared without regard to case.
/// `http://HOST` matches too when cookies are not `Secure`, or when `HOST` is a loopback name
/// or address (browsers treat loopback as a secure context and keep `Secure` cookies for it,
/// so `cargo run --example server` works as printed). An `Origin` of `null` never matches.
/// Without `Origin`, the browser's `Sec-Fetch-Site` decides as [`OriginRule`] says.
///
/// Behind a reverse proxy the proxy must pass the original `Host` on.
fn same_origin(parts: &RequestHead<'_>, secure: bool, rule: OriginRule) -> bool {
    let Some(origin) = parts.headers.get(ORIGIN) else {
        let fetch_site = parts.headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
        return match rule {
            OriginRule::Required => fetch_site == Some("same-origin"),
            OriginRule::WhenPresent => fetch_site.is_none_or(|site| site == "same-origin" || site == "none"),
        };
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let host =
        parts.headers.get(HOST).and_then(|v| v.to_str().ok()).or_else(|| parts.uri.authority().map(|a| a.as_str()));
    let Some(host) = host.filter(|h| !h.is_empty()) else {
        return false;
    };
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false;
    };
    let scheme_ok = scheme == "https" || (scheme == "http" && (!secure || is_loopback(host)));
    scheme_ok && authority.eq_ignore_ascii_case(host)
}

/// Whether a `Host` value (`name[:port]`, `[v6]:port`) names the loopback interface.
fn is_loopback(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split_once(']').map_or(rest, |(v6, _)| v6),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Whether a request method may change state: anything but `GET`, `HEAD` and `OPTIONS`.
fn is_state_changing(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The server as the binary runs it: the state over a [`MemoryStore`] restored from the
/// `--snapshot` file (or, with `REDIS_URL` and the `redis` feature, over a
/// [`RedisStore`](sessionkit::RedisStore)), and the background sweeper. Startup
/// ([`Running::start`]) and shutdown ([`Running::shut_down`]) are functions of their own so
/// that the tests run exactly what `main.rs` runs.
pub(crate) struct Running<S: SessionStore, C> {
    /// The state to build the router with.
    pub(crate) state: AppState<S, C>,
    /// Items (sessions, remembered revocations, denylist entries) read from the snapshot at
    /// startup: 0 without `--snapshot`, or on a first start (no file yet).
    pub(crate) loaded: usize,
    snapshot: Option<(PathBuf, MemoryStore)>,
    sweeper: SweeperHandle,
}

impl<C: Clock> Running<MemoryStore, C> {
    /// Builds the state from the options over a new [`MemoryStore`], loads the `--snapshot`
    /// file into it, and starts the sweeper (every `--sweep-interval`).
    ///
    /// A snapshot file that exists but cannot be read completely (corrupt, truncated, of
    /// another format, unreadable) is an error: the server must not start with an empty store
    /// and then overwrite the file on shutdown. The snapshot is also written once right after
    /// loading, so that an unwritable path fails now rather than when the sessions are about
    /// to be lost.
    ///
    /// # Panics
    /// Outside a tokio runtime (the sweeper is a tokio task).
    pub(crate) fn start(options: &Options, clock: C) -> Result<Self, StartupError> {
        let state = AppState::from_options(options, MemoryStore::new(), clock)?;
        let loaded = match &options.snapshot {
            Some(path) => {
                let store = state.manager.store();
                let loaded = store.load_snapshot(path).map_err(|e| {
                    StartupError(format!(
                        "cannot restore sessions: {e}; not starting with an empty store (move the file away to start without its sessions)"
                    ))
                })?;
                store
                    .save_snapshot(path, state.manager.clock().now())
                    .map_err(|e| StartupError(format!("the --snapshot file is not writable: {e}")))?;
                loaded
            }
            None => 0,
        };
        let snapshot = options.snapshot.clone().map(|path| (path, state.manager.store().clone()));
        let sweeper = state.manager.spawn_sweeper(state.manager.config().sweep_interval());
        Ok(Self { state, loaded, snapshot, sweeper })
    }
}

#[cfg(feature = "redis")]
impl<C: Clock> Running<sessionkit::RedisStore, C> {
    /// Builds the state from the options over a [`RedisStore`](sessionkit::RedisStore) on
    /// `url`, and starts the sweeper. Redis being down is not an error: requests answer 503
    /// `store_unavailable` until it is back. `--snapshot` is refused: Redis persists sessions
    /// itself (AOF or RDB).
    #[allow(
        dead_code,
        reason = "main.rs calls it; tests/server_http.rs includes this file and starts processes instead"
    )]
    pub(crate) async fn start_redis(options: &Options, clock: C, url: &str) -> Result<Self, StartupError> {
        use sessionkit::store::redis::{RedisConfig, RedisStore};
        if options.snapshot.is_some() {
            return Err(StartupError(
                "--snapshot applies to the in-memory store; with REDIS_URL, Redis persists the sessions".into(),
            ));
        }
        let store =
            RedisStore::connect(RedisConfig::new(url)).await.map_err(|e| StartupError(format!("REDIS_URL: {e}")))?;
        let state = AppState::from_options(options, store, clock)?;
        let sweeper = state.manager.spawn_sweeper(state.manager.config().sweep_interval());
        Ok(Self { state, loaded: 0, snapshot: None, sweeper })
    }
}

impl<S: SessionStore, C: Clock> Running<S, C> {
    /// The `--snapshot` file, if any.
    pub(crate) fn snapshot_path(&self) -> Option<&FsPath> {
        self.snapshot.as_ref().map(|(path, _)| path.as_path())
    }

    /// Shuts down, once the HTTP server has drained (no request can change the store any
    /// more): stops the sweeper after the sweep in progress, then saves the store to the
    /// `--snapshot` file. Answers how many items were saved (`None` without `--snapshot`).
    pub(crate) async fn shut_down(self) -> Result<Option<u64>, SnapshotError> {
        self.sweeper.shutdown().await;
        let Some((path, store)) = &self.snapshot else {
            return Ok(None);
        };
        let now = self.state.manager.clock().now();
        store.save_snapshot(path, now).map(Some)
    }
}

/// The router: every endpoint under `/api/v1` and the JWKS, the browser page (`/`, `/app.js`,
/// `/app.css`) and its configuration, JSON errors for unknown routes and methods, the 64 KiB
/// body limit, the security headers and `Cache-Control: no-store` on every response that does
/// not set its own (they carry tokens and per-user data; only the public JWKS is cacheable)
/// ([`security_headers`]), and one access-log line per request ([`access_log`]).
pub(crate) fn router<S: SessionStore, C: Clock>(state: AppState<S, C>) -> Router {
    Router::new()
        .route("/", get(page_html))
        .route("/app.js", get(page_js))
        .route("/app.css", get(page_css))
        .route("/api/v1/client-config", get(client_config::<S, C>))
        .route("/api/v1/auth/login", post(login::<S, C>))
        .route("/api/v1/auth/logout", post(logout::<S, C>))
        .route("/api/v1/auth/logout-all", post(logout_all::<S, C>))
        .route("/api/v1/auth/session", get(current_session))
        .route("/api/v1/auth/sessions", get(list_sessions::<S, C>))
        .route("/api/v1/auth/sessions/refresh", post(refresh::<S, C>))
        .route("/api/v1/auth/sessions/revoke", post(revoke_session::<S, C>))
        .route("/api/v1/auth/refresh-token", post(refresh_token::<S, C>))
        .route("/.well-known/jwks.json", get(jwks::<S, C>))
        .route("/api/v1/admin/sessions", get(admin_list_sessions::<S, C>))
        // Static segments win over `{session_id}` in axum 0.8, whatever the order: `GET
        // .../stats` is the statistics, `DELETE .../stats` is 405 (not a revocation attempt).
        .route("/api/v1/admin/sessions/stats", get(admin_stats::<S, C>))
        .route("/api/v1/admin/sessions/export", get(admin_export::<S, C>))
        .route("/api/v1/admin/sessions/{session_id}", delete(admin_revoke_session::<S, C>))
        .route("/api/v1/admin/users/{name}/sessions", delete(admin_revoke_user::<S, C>))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::map_response(security_headers))
        .layer(middleware::from_fn(access_log))
        .with_state(state)
}

/// Logs one line per request under the target `access`, at INFO, once the response is ready:
/// method, path, status, latency and client IP. Only the path is logged: never the query
/// string, the headers (`Authorization`, `Cookie`) or a body, which is where tokens travel.
async fn access_log(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let ip = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| addr.ip().to_canonical());
    let response = next.run(request).await;
    // Milliseconds with microsecond resolution, so that the field prints short (`0.042`).
    #[allow(clippy::cast_precision_loss)] // Exact below 2^52 microseconds (142 years).
    let latency_ms = started.elapsed().as_micros() as f64 / 1000.0;
    tracing::info!(
        target: "access",
        method = %method,
        path = %path,
        status = response.status().as_u16(),
        latency_ms,
        ip = ip.map(tracing::field::display),
        "request",
    );
    response
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

/// The Content-Security-Policy of every response: scripts, styles, images and connections
/// from this origin only, so no inline script or style runs (an injected `<script>` or
/// `onclick=` is inert); no plugins; no framing (clickjacking); no `<base>` rewriting; forms
/// post only here.
pub(crate) const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Headers on every response, errors included: the [`CONTENT_SECURITY_POLICY`],
/// `X-Content-Type-Options: nosniff` (no content-type guessing), `Referrer-Policy: no-referrer`,
/// `X-Frame-Options: DENY` (`frame-ancestors` for old browsers), `Cross-Origin-Opener-Policy:
/// same-origin`, and `Cache-Control: no-store` unless the handler chose otherwise.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.entry(CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    headers.insert(CONTENT_SECURITY_POLICY_HEADER, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert("cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
    response
}

/// A static file of the browser page, embedded in the binary. `no-cache`: the browser may keep
/// it but asks again each time, so a rebuilt server is picked up at once.
fn static_file(body: &'static str, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// `GET /`: the browser page.
async fn page_html() -> Response {
    static_file(include_str!("static/index.html"), "text/html; charset=utf-8")
}

/// `GET /app.js`: the page's script, an ES module.
async fn page_js() -> Response {
    static_file(include_str!("static/app.js"), "text/javascript; charset=utf-8")
}

/// `GET /app.css`: the page's style sheet.
async fn page_css() -> Response {
    static_file(include_str!("static/app.css"), "text/css; charset=utf-8")
}

/// `GET /api/v1/client-config`: what the browser page is configured with, in milliseconds,
/// and the header it sends the CSRF token in. Public: it holds no secret.
async fn client_config<S: SessionStore, C: Clock>(State(state): State<AppState<S, C>>) -> Json<Value> {
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let client = state.client;
    Json(json!({
        "refresh_margin_ms": ms(client.refresh_margin),
        "idle_logout_ms": ms(client.idle_logout),
        "warning_ms": ms(client.warning),
        "check_interval_ms": ms(client.check_interval),
        "session_renew_ms": ms(client.session_renew),
        "csrf_header": "X-CSRF-Token",
    }))
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

    fn csrf(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "csrf_failed", message)
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
                tracing::error!(target: "server", error = %e, "session store failure");
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", "the session store is unavailable")
            }
            Error::RefreshTokenReused => Self::new(
                StatusCode::UNAUTHORIZED,
                "refresh_token_reused",
                "this refresh token was already used; the session has been revoked, log in again",
            ),
            Error::InvalidRefreshToken => Self::new(
                StatusCode::UNAUTHORIZED,
                "invalid_refresh_token",
                "malformed or unknown refresh token, or its session has ended",
            ),
            Error::AccessToken(AccessTokenError::Expired) => Self::new(
                StatusCode::UNAUTHORIZED,
                "access_token_expired",
                "access token expired; get a new one from /api/v1/auth/refresh-token",
            ),
            Error::AccessToken(e) => Self::new(StatusCode::UNAUTHORIZED, "invalid_access_token", e.to_string()),
            Error::InvalidUserId(e) => Self::invalid_request(e.to_string()),
            // `from_options` always sets the keys: a server misconfiguration if it happens.
            Error::NoSigningKeys => {
                tracing::error!(target: "server", "no access-token signing keys");
                Self::internal("access tokens are not configured")
            }
            other => {
                tracing::error!(target: "server", error = %other, "internal error");
                Self::internal("internal error")
            }
        }
    }
}

impl From<ExportError> for ApiError {
    fn from(e: ExportError) -> Self {
        match e {
            ExportError::Store(e) => Error::Store(e).into(),
            other => {
                tracing::error!(target: "server", error = %other, "export failed");
                Self::internal("the export could not be written")
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

/// The token the client presented: `Authorization: Bearer <token>`, or else the session
/// cookie, with whether it came from the cookie. A present `Authorization` header that is not a
/// bearer token is not overridden by the cookie: the request is rejected.
fn presented_token(headers: &HeaderMap, cookie: &SessionCookie) -> Result<PresentedToken, ApiError> {
    if let Some(value) = headers.get(AUTHORIZATION) {
        let bearer = value
            .to_str()
            .ok()
            .and_then(|v| v.trim().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|token| !token.is_empty());
        return match bearer {
            Some(token) => Ok(PresentedToken { token: token.to_owned(), via_cookie: false }),
            None => Err(ApiError::invalid_session("the Authorization header is not `Bearer <token>`")),
        };
    }
    let from_cookie = cookie_value(headers, cookie);
    match from_cookie {
        Some(token) => Ok(PresentedToken { token: token.to_owned(), via_cookie: true }),
        None => Err(ApiError::invalid_session(
            "no session token: send `Authorization: Bearer <token>` or the session cookie",
        )),
    }
}

/// The value of `cookie` in the request's `Cookie` headers.
fn cookie_value<'a>(headers: &'a HeaderMap, cookie: &SessionCookie) -> Option<&'a str> {
    headers.get_all(COOKIE).iter().filter_map(|value| value.to_str().ok()).find_map(|value| cookie.find(value))
}

/// Whether a presented bearer token is shaped like a JWT (three parts, two dots) rather than a
/// session token (43 base64url characters, which never contain a dot). Anything else is treated
/// as a (malformed) session token and answered `invalid_session`.
pub(crate) fn looks_like_jwt(token: &str) -> bool {
    token.bytes().filter(|&b| b == b'.').count() == 2
}

/// The token presented with the request, not yet validated.
pub(crate) struct PresentedToken {
    token: String,
    /// Whether the browser sent it by itself (the session cookie), which makes a
    /// state-changing request subject to the CSRF checks.
    via_cookie: bool,
}

impl<S: SessionStore, C: Clock> FromRequestParts<AppState<S, C>> for PresentedToken {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState<S, C>) -> Result<Self, ApiError> {
        presented_token(&parts.headers, &state.cookie)
    }
}

/// What a request authenticated with.
pub(crate) enum Credential {
    /// A session token, validated with [`SessionManager::validate`].
    SessionToken(String),
    /// A verified access token.
    AccessToken(AccessClaims),
}

/// The validated session of the request and the credential it was found by.
///
/// With a session token the session comes from [`SessionManager::validate`], which also counts
/// the request and slides the idle deadline. With an access token it is verified
/// and its session read by the token's `sid` without counting or renewing it
/// ([`SessionManager::authenticate_access`]: signature, expiry, denylist, then the session or
/// why it is gone): clients on access tokens keep their session alive through
/// `/api/v1/auth/refresh-token`.
///
/// A state-changing request (not `GET`, `HEAD`, `OPTIONS`) authenticated by the session
/// cookie must also pass the CSRF checks: its `Origin` is checked before the session is looked
/// up, and its `X-CSRF-Token` header against the session's CSRF token once it is known. A
/// failure answers 403 `csrf_failed`. Bearer tokens are exempt: another site's page cannot
/// make a browser send them.
pub(crate) struct CurrentSession {
    session: Session,
    credential: Credential,
}

impl<S: SessionStore, C: Clock> FromRequestParts<AppState<S, C>> for CurrentSession {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState<S, C>) -> Result<Self, ApiError> {
        let presented = PresentedToken::from_request_parts(parts, state).await?;
        let guarded = presented.via_cookie && is_state_changing(&parts.method);
        if guarded {
            state.check_origin(&RequestHead { headers: &parts.headers, uri: &parts.uri }, OriginRule::Required)?;
        }
        let current = authenticate(state, presented.token).await?;
        if guarded {
            state.check_csrf_token(&parts.headers, &current.session.id())?;
        }
        Ok(current)
    }
}

async fn authenticate<S: SessionStore, C: Clock>(
    state: &AppState<S, C>,
    token: String,
) -> Result<CurrentSession, ApiError> {
    if looks_like_jwt(&token) {
        let (claims, session) = state.manager.authenticate_access(&token).await?;
        Ok(CurrentSession { session, credential: Credential::AccessToken(claims) })
    } else {
        let session = state.manager.validate(&token).await?;
        Ok(CurrentSession { session, credential: Credential::SessionToken(token) })
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

/// `GET /auth/session` and `POST /auth/sessions/refresh`, with the session's CSRF token for
/// the page (cookie-authenticated state-changing requests must send it back).
fn session_view(session: &Session, csrf: &CsrfKey) -> Result<Value, ApiError> {
    Ok(json!({
        "csrf_token": csrf.token(&session.id()).expose_secret(),
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
    uri: axum::http::Uri,
    headers: HeaderMap,
    ApiJson(body): ApiJson<LoginRequest>,
) -> Result<Response, ApiError> {
    // Login CSRF (another site logging the browser into the attacker's account): a browser's
    // cross-origin login is refused; clients that send no `Origin` may log in.
    state.check_origin(&RequestHead { headers: &headers, uri: &uri }, OriginRule::WhenPresent)?;
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
    let mut body = json!({
        "csrf_token": state.csrf.token(&session.id()).expose_secret(),
        "session_token": token,
        "session_id": session.id().to_string(),
        "user": session.user().as_str(),
        "remember_me": session.remember_me(),
        "expires_at": rfc3339(session.expires_at())?,
        "idle_expires_at": rfc3339(session.idle_expires_at())?,
        "absolute_expires_at": rfc3339(session.absolute_expires_at())?,
    });
    // The manager always has keys (`from_options` sets them), so the pair is always there.
    if let (Some(pair), Value::Object(map)) = (&created.tokens, &mut body)
        && let Value::Object(tokens) = token_pair_view(&state, pair)
    {
        map.extend(tokens);
    }
    // A remember-me session survives browser restarts: persistent cookies lasting until the
    // session's absolute deadline. Otherwise session cookies, gone when the browser closes.
    let mut response = with_cookie(Json(body).into_response(), &state.cookie_for(&state.cookie, token, session)?)?;
    if let Some(pair) = &created.tokens {
        let value = refresh_cookie_value(&session.id(), pair.refresh_token.expose_secret());
        let refresh = state.cookie_for(&state.refresh_cookie, &value, session)?;
        response = with_cookie(response, &refresh)?;
    }
    Ok(response)
}

/// The OAuth-style token fields of a login or refresh answer.
fn token_pair_view<S: SessionStore, C: Clock>(state: &AppState<S, C>, pair: &TokenPair) -> Value {
    json!({
        "access_token": pair.access_token.expose_secret(),
        "refresh_token": pair.refresh_token.expose_secret(),
        "token_type": "Bearer",
        "expires_in": pair.expires_in(state.manager.clock().now()),
    })
}

#[derive(Deserialize)]
struct RefreshTokenRequest {
    /// Absent: the refresh-token cookie is used instead.
    #[serde(default)]
    refresh_token: Option<String>,
}

/// `POST /api/v1/auth/refresh-token`: spends a refresh token for a new access token and a new
/// refresh token. The session must still be live; the refresh renews its idle deadline.
///
/// The refresh token is the body's `refresh_token`, or else the `refresh_token` cookie that
/// login sets (HttpOnly, `SameSite=Strict`, sent only to this path), for pages that keep the
/// refresh token out of reach of scripts. A refresh through the cookie is cookie-authenticated,
/// so it passes the CSRF checks against the session cookie's session (origin, then the
/// `X-CSRF-Token` header), the new pair must belong to that same session, and the answer sets
/// the successor cookie.
async fn refresh_token<S: SessionStore, C: Clock>(
    State(state): State<AppState<S, C>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    ApiJson(body): ApiJson<RefreshTokenRequest>,
) -> Result<Response, ApiError> {
    if let Some(refresh_token) = &body.refresh_token {
        let pair = state.manager.refresh(refresh_token).await.map_err(refresh_error)?;
        return Ok(Json(token_pair_view(&state, &pair)).into_response());
    }
    let Some(refresh_cookie) = cookie_value(&headers, &state.refresh_cookie) else {
        return Err(ApiError::invalid_request("expected `refresh_token` in the body, or the refresh-token cookie"));
    };
    state.check_origin(&RequestHead { headers: &headers, uri: &uri }, OriginRule::Required)?;
    let Some(session_token) = cookie_value(&headers, &state.cookie) else {
        return Err(ApiError::invalid_session("a refresh through the cookie needs the session cookie too"));
    };
    let current = authenticate(&state, session_token.to_owned()).await?;
    state.check_csrf_token(&headers, &current.session.id())?;
    let Some((cookie_session, refresh_token)) = refresh_cookie.split_once('.') else {
        return Err(refresh_error(Error::InvalidRefreshToken));
    };
    // A refresh cookie of another session (planted from elsewhere, or left by another tab's
    // login) is refused before its token is spent, so its own session loses nothing.
    let mismatch = || ApiError::csrf("the refresh-token cookie does not belong to the session cookie's session");
    if cookie_session != current.session.id().to_string() {
        return Err(mismatch());
    }
    let pair = state.manager.refresh(refresh_token).await.map_err(refresh_error)?;
    if pair.claims.session_id != current.session.id() {
        // The cookie named this session but carried another's token: not handed out.
        return Err(mismatch());
    }
    let value = refresh_cookie_value(&current.session.id(), pair.refresh_token.expose_secret());
    let cookie = state.cookie_for(&state.refresh_cookie, &value, &current.session)?;
    with_cookie(Json(token_pair_view(&state, &pair)).into_response(), &cookie)
}

/// The refresh-token cookie's value: the session's id, a dot, the refresh token (both
/// base64url, which has no dot). The id lets a cookie-based refresh check, before spending the
/// token, that the cookie belongs to the session cookie's session.
fn refresh_cookie_value(session: &SessionId, refresh_token: &str) -> String {
    format!("{session}.{refresh_token}")
}

/// A failed refresh's answer. A refresh token of a revoked session keeps the code
/// `invalid_refresh_token` that clients know, and adds why the session ended as `"reason"`
/// (`logout`, `refresh_reuse`, ...), so that a page can tell its user.
fn refresh_error(e: Error) -> ApiError {
    match e {
        Error::Revoked { reason } => ApiError {
            reason: Some(reason.as_str()),
            ..ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_refresh_token",
                format!("this refresh token's session was revoked ({reason})"),
            )
        },
        other => other.into(),
    }
}

/// `GET /.well-known/jwks.json`: the public keys that verify access tokens (none under HS256,
/// whose secret is not public). Cacheable for five minutes.
async fn jwks<S: SessionStore, C: Clock>(State(state): State<AppState<S, C>>) -> Result<Response, ApiError> {
    let body = match state.manager.keys() {
        Some(keys) => serde_json::to_value(keys.jwks())
            .map_err(|e| ApiError::internal(format!("JWKS cannot be serialised: {e}")))?,
        None => json!({ "keys": [] }),
    };
    let mut response = Json(body).into_response();
    response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    Ok(response)
}

/// `GET /api/v1/auth/session`.
async fn current_session<S: SessionStore, C: Clock>(
    State(state): State<AppState<S, C>>,
    current: CurrentSession,
) -> Result<Json<Value>, ApiError> {
    session_view(&current.session, &state.csrf).map(Json)
}

/// `POST /api/v1/auth/sessions/refresh`: pushes the idle deadline out by a full idle timeout.
///
/// [`SessionManager::extend`] takes a session token. With an access token the session is
/// answered unchanged (still authenticated and checked): such clients renew the idle deadline
/// through `/api/v1/auth/refresh-token`.
///
/// Through the session cookie the request passes the CSRF checks first (which validate the
/// session, so such a refresh counts as one request).
async fn refresh<S: SessionStore, C: Clock>(
    State(state): State<AppState<S, C>>,
    presented: PresentedToken,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let PresentedToken { token, via_cookie } = presented;
    if via_cookie {
        state.check_origin(&RequestHead { headers: &headers, uri: &uri }, OriginRule::Required)?;
        let current = authenticate(&state, token.clone()).await?;
        state.check_csrf_token(&headers, &current.session.id())?;
    }
    let session = if looks_like_jwt(&token) {
        authenticate(&state, token).await?.session
    } else {
        state.manager.extend(&token).await?
    };
    session_view(&session, &state.csrf).map(Json)
}

/// `POST /api/v1/auth/logout`: ends the session the request authenticated with (reason
/// `logout`, whichever credential was used).
async fn logout<S: SessionStore, C: Clock>(
    State(state): State<AppState<S, C>>,
    current: CurrentSession,
) -> Result<Response, ApiError> {
    match &current.credential {
        Credential::SessionToken(token) => {
            state.manager.revoke(token).await?;
        }
        Credential::AccessToken(claims) => {
            // `revoke_by_id` would record the reason `admin`; this is the user's own logout.
            state.manager.revoke_own(current.session.user(), &claims.session_id).await?;
        }
    }
    let response = with_cookie(StatusCode::NO_CONTENT.into_response(), &state.cookie.clear())?;
    with_cookie(response, &state.refresh_cookie.clear())
}

/// `POST /api/v1/auth/logout-all`: ends every session of the user, this one included.
async fn logout_all<S: SessionStore, C: Clock>(
    State(state): State<AppState<S, C>>,
    current: CurrentSession,
) -> Result<Response, ApiError> {
    let revoked = state.manager.revoke_all(current.session.user(), None).await?;
    let response = with_cookie(Json(json!({ "revoked": revoked })).into_response(), &state.cookie.clear())?;
    with_cookie(response, &state.refresh_cookie.clear())
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

/// `GET /api/v1/admin/sessions/stats`: the [`SessionStats`] of the whole store, as they
/// serialise.
async fn admin_stats<S: SessionStore, C: Clock>(
    State(state): State<AppState<S, C>>,
    _admin: AdminSession,
) -> Result<Json<SessionStats>, ApiError> {
    Ok(Json(state.manager.stats().await?))
}

/// `GET /api/v1/admin/sessions/export`: every session, remembered revocation and denylist entry
/// as JSON Lines ([`sessionkit::export`]): token digests, never tokens. Built in memory, so it
/// is meant for stores of moderate size.
async fn admin_export<S: SessionStore, C: Clock>(
    State(state): State<AppState<S, C>>,
    _admin: AdminSession,
) -> Result<Response, ApiError> {
    let mut body = Vec::new();
    state.manager.export(&mut body).await?;
    let mut response = body.into_response();
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/x-ndjson"));
    Ok(response)
}
