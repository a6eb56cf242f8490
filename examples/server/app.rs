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

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequestParts, Path, Query, Request, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY as CONTENT_SECURITY_POLICY_HEADER, CONTENT_TYPE, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router, middleware};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::{Value, json};
use sessionkit::BackupStore;
use sessionkit::axum::{
    AllowedOrigins, ApiError, Auth, CurrentSession, JsonBody, LoggedOut, Refreshed, RotatedAnswer, SessionLayer,
    WebConfig,
};
use sessionkit::export::ExportError;
use sessionkit::store::memory::{SnapshotError, SnapshotHandle};
use sessionkit::sweeper::SweeperHandle;
use sessionkit::time::OffsetDateTime;
use sessionkit::time::format_description::well_known::Rfc3339;
use sessionkit::token::keys::{KeyError, MIN_HS256_SECRET_LEN};
use sessionkit::{
    Clock, CsrfKey, KeySet, LimitPolicy, MemoryStore, Session, SessionConfig, SessionConfigBuilder, SessionId,
    SessionManager, SessionStats, SigningKey, TokenStore, UserId,
};
use subtle::ConstantTimeEq;
use zeroize::Zeroize as _;

/// What the server needs of a store: sessions, access and refresh tokens, and backups (export,
/// statistics). Every store of the crate is one.
pub(crate) trait Store: TokenStore + BackupStore {}

impl<S: TokenStore + BackupStore> Store for S {}

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

    /// An origin whose pages may log in and send cookie-authenticated changes, as
    /// `https://app.example.com` (repeatable). Without any, a page's origin must name the
    /// request's own `Host` (https, or http for loopback hosts and with --insecure-cookies),
    /// which suits a server reached under names not known in advance; give the list in
    /// production, so that no other name pointed at the server (DNS rebinding) passes.
    #[arg(long = "allowed-origin", value_name = "ORIGIN")]
    pub(crate) allowed_origins: Vec<String>,

    /// Secret from which the per-session CSRF tokens are derived, base64url without padding,
    /// 32 to 64 bytes decoded; give every instance the same one. To rotate it, pass the new
    /// secret and the previous one, comma-separated (`NEW,OLD`): new tokens use the new
    /// secret, and tokens made with the old one are still accepted until it is removed from
    /// the flag (keep it at least the idle timeout). Default: a random secret generated at
    /// startup (tokens change with every start; pages fetch them again).
    #[arg(long, value_name = "BASE64URL[,PREVIOUS]")]
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
    /// start; a corrupt one stops the server from starting), save them to it every
    /// --snapshot-interval and on shutdown. The file holds token digests, never tokens, but
    /// also user names, IPs and user agents.
    #[arg(long, value_name = "FILE")]
    pub(crate) snapshot: Option<PathBuf>,

    /// With --snapshot: how often the sessions are saved to the file while the server runs,
    /// e.g. "30s" (default 60s, at least 100ms, at most a day), so that a crash loses at most
    /// the sessions of the last interval.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, requires = "snapshot")]
    pub(crate) snapshot_interval: Option<Duration>,
}

/// How often the `--snapshot` file is saved without `--snapshot-interval`.
pub(crate) const DEFAULT_SNAPSHOT_INTERVAL: Duration = Duration::from_secs(60);

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

/// What every handler shares: the session manager, the users, the web integration's
/// configuration (cookies, CSRF key, origins) and what the browser page is configured with.
pub(crate) struct AppState<S, C> {
    pub(crate) manager: SessionManager<S, C>,
    pub(crate) users: Arc<Users>,
    pub(crate) secure_cookies: bool,
    /// The cookies (`session`, or `__Host-session` with `--host-cookie-prefix`; the
    /// refresh-token cookie, sent only to the refresh-token endpoint), the CSRF key and the
    /// allowed origins.
    pub(crate) web: WebConfig,
    pub(crate) client: ClientConfig,
}

impl<S, C> Clone for AppState<S, C> {
    fn clone(&self) -> Self {
        Self {
            manager: self.manager.clone(),
            users: Arc::clone(&self.users),
            secure_cookies: self.secure_cookies,
            web: self.web.clone(),
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
    /// The page's settings: each flag, or its default. The warning defaults to 60 s, or a
    /// quarter of the sign-out delay when that is shorter than 4 minutes, so that a short
    /// `--idle-timeout` works without `--client-warning`; an explicit warning must still be
    /// shorter than the sign-out delay.
    fn from_options(options: &Options, config: &SessionConfig) -> Result<Self, StartupError> {
        let idle_logout = options.client_idle_logout.unwrap_or(config.idle_timeout());
        let client = Self {
            refresh_margin: options.client_refresh_margin.unwrap_or(Duration::from_secs(60)),
            idle_logout,
            warning: options.client_warning.unwrap_or_else(|| (idle_logout / 4).min(Duration::from_secs(60))),
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

/// The CSRF key from `--csrf-secret CURRENT[,PREVIOUS]` (the previous key's tokens still
/// accepted), else a random one.
fn csrf_key(options: &Options) -> Result<CsrfKey, StartupError> {
    let Some(JwtSecret(encoded)) = &options.csrf_secret else {
        return CsrfKey::generate().map_err(|e| StartupError(format!("cannot generate a CSRF secret: {e}")));
    };
    let one = |encoded: &str| {
        let mut secret = URL_SAFE_NO_PAD
            .decode(encoded.trim())
            .map_err(|_| StartupError("--csrf-secret must be base64url without padding".to_owned()))?;
        let key = CsrfKey::from_bytes(&secret).map_err(|e| StartupError(format!("--csrf-secret: {e}")));
        secret.zeroize();
        key
    };
    match encoded.split_once(',') {
        None => one(encoded),
        Some((current, previous)) => {
            if previous.contains(',') {
                return Err(StartupError(
                    "--csrf-secret takes the current secret and at most one previous one".to_owned(),
                ));
            }
            Ok(one(current)?.with_previous(one(previous)?))
        }
    }
}

/// The allowed origins: the `--allowed-origin` list, else any origin naming the request's own
/// `Host`.
fn allowed_origins(options: &Options, secure: bool) -> Result<AllowedOrigins, StartupError> {
    let mut list = options.allowed_origins.iter();
    let Some(first) = list.next() else {
        return Ok(AllowedOrigins::request_host(!secure));
    };
    let invalid = |e| StartupError(format!("--allowed-origin: {e}"));
    list.try_fold(AllowedOrigins::new(first).map_err(invalid)?, |origins, o| origins.and(o).map_err(invalid))
}

/// The web integration's configuration from the options.
fn web_config(options: &Options) -> Result<WebConfig, StartupError> {
    let secure = !options.insecure_cookies;
    WebConfig::builder(allowed_origins(options, secure)?)
        .secure(secure)
        .session_cookie_name(COOKIE_NAME)
        .host_prefix(options.host_cookie_prefix)
        .refresh_cookie_name(REFRESH_COOKIE_NAME)
        .refresh_path(REFRESH_TOKEN_PATH)
        .csrf_key(csrf_key(options)?)
        .build()
        .map_err(|e| StartupError(format!("session {e}")))
}

impl<S: Store, C: Clock> AppState<S, C> {
    /// Builds the state from the options, over `store`, reading the time from `clock`.
    pub(crate) fn from_options(options: &Options, store: S, clock: C) -> Result<Self, StartupError> {
        let config = session_config(options)?;
        let client = ClientConfig::from_options(options, &config)?;
        let users = Users::from_specs(&options.users, &options.admins)?;
        let keys = signing_keys(options)?;
        let web = web_config(options)?;
        let manager = SessionManager::with_clock(store, config, clock);
        manager.set_keys(keys);
        Ok(Self { manager, users: Arc::new(users), secure_cookies: !options.insecure_cookies, web, client })
    }
}

/// The server as the binary runs it: the state over a [`MemoryStore`] restored from the
/// `--snapshot` file (or, with `REDIS_URL` and the `redis` feature, over a
/// [`RedisStore`](sessionkit::RedisStore); with `--database-url` and the `postgres` or
/// `sqlite` feature, over a [`SqlStore`](sessionkit::SqlStore)), and the background sweeper. Startup
/// ([`Running::start`]) and shutdown ([`Running::shut_down`]) are functions of their own so
/// that the tests run exactly what `main.rs` runs.
pub(crate) struct Running<S: Store, C> {
    /// The state to build the router with.
    pub(crate) state: AppState<S, C>,
    /// Items (sessions, remembered revocations, denylist entries) read from the snapshot at
    /// startup: 0 without `--snapshot`, or on a first start (no file yet).
    pub(crate) loaded: usize,
    snapshot: Option<Snapshots>,
    sweeper: SweeperHandle,
}

/// The `--snapshot` file of a running server and the library's task that saves the store to it
/// every `--snapshot-interval` (`MemoryStore::spawn_snapshots`), and once more at shutdown.
struct Snapshots {
    path: PathBuf,
    handle: SnapshotHandle,
}

impl<C: Clock + Clone> Running<MemoryStore, C> {
    /// Builds the state from the options over a new [`MemoryStore`], loads the `--snapshot`
    /// file into it, and starts the sweeper (every `--sweep-interval`).
    ///
    /// A snapshot file that exists but cannot be read completely (corrupt, truncated, of
    /// another format, unreadable) is an error: the server must not start with an empty store
    /// and then overwrite the file on shutdown. The snapshot is also written once right after
    /// loading, so that an unwritable path fails now rather than when the sessions are about
    /// to be lost, and then every `--snapshot-interval` (off the async workers) until
    /// [`Running::shut_down`]. Saves go through a temporary file renamed over the snapshot, so
    /// a crash at any moment leaves a complete snapshot (the previous or the new one); the
    /// temporary files of a killed process are never loaded, and are removed here.
    ///
    /// # Panics
    /// Outside a tokio runtime (the sweeper and the periodic saves are tokio tasks).
    pub(crate) fn start(options: &Options, clock: C) -> Result<Self, StartupError> {
        let interval = options.snapshot_interval.unwrap_or(DEFAULT_SNAPSHOT_INTERVAL);
        if interval < Duration::from_millis(100) || interval > Duration::from_secs(86_400) {
            return Err(StartupError("--snapshot-interval must be between 100ms and a day".to_owned()));
        }
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
        let snapshot = options.snapshot.clone().map(|path| {
            let handle = state.manager.store().spawn_snapshots(path.clone(), interval, state.manager.clock().clone());
            Snapshots { path, handle }
        });
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
    pub(crate) async fn start_redis(
        options: &Options,
        clock: C,
        config: sessionkit::store::redis::RedisConfig,
    ) -> Result<Self, StartupError> {
        use sessionkit::store::redis::RedisStore;
        let source = if config.is_cluster() { "--redis-cluster" } else { "REDIS_URL" };
        if options.snapshot.is_some() {
            return Err(StartupError(format!(
                "--snapshot applies to the in-memory store; with {source}, Redis persists the sessions"
            )));
        }
        let store = RedisStore::connect(config).await.map_err(|e| StartupError(format!("{source}: {e}")))?;
        let state = AppState::from_options(options, store, clock)?;
        let sweeper = state.manager.spawn_sweeper(state.manager.config().sweep_interval());
        Ok(Self { state, loaded: 0, snapshot: None, sweeper })
    }
}

#[cfg(any(feature = "postgres", feature = "sqlite"))]
impl<C: Clock> Running<sessionkit::SqlStore, C> {
    /// Builds the state from the options over a [`SqlStore`](sessionkit::SqlStore) on `url`
    /// (`sqlite://PATH`, the file created when missing, or `postgres://…`), migrating its
    /// schema, and starts the sweeper. Unlike Redis, the database must be up at startup (to
    /// migrate); once running, requests answer 503 `store_unavailable` while it is down.
    /// `--snapshot` is refused: the database persists sessions itself.
    ///
    /// On SQLite the access-token denylist is read from the file on every check
    /// ([`DenylistMode::Strict`](sessionkit::store::sql::DenylistMode::Strict)), so that
    /// several processes on one file see one another's revocations.
    #[allow(
        dead_code,
        reason = "main.rs calls it; tests/server_http.rs includes this file and starts processes instead"
    )]
    pub(crate) async fn start_sql(options: &Options, clock: C, url: &str) -> Result<Self, StartupError> {
        use sessionkit::store::sql::{DenylistMode, SqlConfig, SqlStore};
        if options.snapshot.is_some() {
            return Err(StartupError(
                "--snapshot applies to the in-memory store; with --database-url, the database persists the sessions"
                    .into(),
            ));
        }
        let mut config = SqlConfig::new(url);
        if url.starts_with("sqlite:") {
            config = config.with_denylist(DenylistMode::Strict);
        }
        let shown = config.redacted_url();
        let store = SqlStore::connect(config).await.map_err(|e| {
            // The source chain says why (refused, timed out, a failed migration); the URL is
            // shown redacted, never with its password.
            let mut message = format!("--database-url {shown}: {e}");
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                message = format!("{message}: {cause}");
                source = cause.source();
            }
            StartupError(message)
        })?;
        let state = AppState::from_options(options, store, clock)?;
        let sweeper = state.manager.spawn_sweeper(state.manager.config().sweep_interval());
        Ok(Self { state, loaded: 0, snapshot: None, sweeper })
    }
}

impl<S: Store, C: Clock> Running<S, C> {
    /// The `--snapshot` file, if any.
    pub(crate) fn snapshot_path(&self) -> Option<&FsPath> {
        self.snapshot.as_ref().map(|snapshots| snapshots.path.as_path())
    }

    /// Shuts down, once the HTTP server has drained (no request can change the store any
    /// more): stops the sweeper after the sweep in progress and the periodic snapshots after
    /// the save in progress, then saves the store to the `--snapshot` file (off the async
    /// workers). Answers how many items were saved (`None` without `--snapshot`).
    pub(crate) async fn shut_down(self) -> Result<Option<u64>, SnapshotError> {
        self.sweeper.shutdown().await;
        let Some(snapshots) = self.snapshot else {
            return Ok(None);
        };
        snapshots.handle.shutdown().await.map(Some)
    }
}

/// The router: every endpoint under `/api/v1` and the JWKS, the browser page (`/`, `/app.js`,
/// `/app.css`) and its configuration, the session layer (`sessionkit::axum`: extractors, CSRF
/// guard, cookies), JSON errors for unknown routes and methods, the 64 KiB
/// body limit, the security headers and `Cache-Control: no-store` on every response that does
/// not set its own (they carry tokens and per-user data; only the public JWKS is cacheable)
/// ([`security_headers`]), and one access-log line per request ([`access_log`]).
pub(crate) fn router<S: Store, C: Clock>(state: AppState<S, C>) -> Router {
    Router::new()
        .route("/", get(page_html))
        .route("/app.js", get(page_js))
        .route("/app.css", get(page_css))
        .route("/api/v1/client-config", get(client_config::<S, C>))
        .route("/api/v1/auth/login", post(login::<S, C>))
        .route("/api/v1/auth/logout", post(logout))
        .route("/api/v1/auth/logout-all", post(logout_all::<S, C>))
        .route("/api/v1/auth/session", get(current_session))
        .route("/api/v1/auth/sessions", get(list_sessions::<S, C>))
        .route("/api/v1/auth/sessions/refresh", post(refresh))
        .route("/api/v1/auth/sessions/rotate", post(rotate))
        .route("/api/v1/auth/sessions/revoke", post(revoke_session::<S, C>))
        .route("/api/v1/auth/refresh-token", post(refresh_token))
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
        .layer(SessionLayer::new(state.manager.clone(), state.web.clone()))
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
async fn client_config<S: Store, C: Clock>(State(state): State<AppState<S, C>>) -> Json<Value> {
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

/// An export that failed: a store failure answers 503 like any other; a failure to write the
/// answer is the server's.
fn export_error(e: ExportError) -> ApiError {
    match e {
        ExportError::Store(e) => sessionkit::Error::Store(e).into(),
        other => {
            tracing::error!(target: "server", error = %other, "export failed");
            ApiError::internal("the export could not be written")
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Extractors (the session ones come from `sessionkit::axum`)
// ---------------------------------------------------------------------------------------------

/// A [`CurrentSession`] of an administrator; 403 `forbidden` for other users.
pub(crate) struct AdminSession(CurrentSession);

impl<S: Store, C: Clock> FromRequestParts<AppState<S, C>> for AdminSession {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState<S, C>) -> Result<Self, ApiError> {
        let current = CurrentSession::from_request_parts(parts, state).await?;
        if state.users.is_admin(current.user()) {
            Ok(Self(current))
        } else {
            Err(ApiError::forbidden("administrators only"))
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
fn session_view(current: &CurrentSession) -> Result<Value, ApiError> {
    let session = current.session();
    Ok(json!({
        "csrf_token": current.csrf_token().expose_secret(),
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

async fn session_list<S: Store, C: Clock>(
    state: &AppState<S, C>,
    user: &UserId,
    current: Option<SessionId>,
) -> Result<Json<Value>, ApiError> {
    let sessions = state.manager.list(user).await?;
    let items = sessions.iter().map(|s| list_item(s, current)).collect::<Result<Vec<_>, _>>()?;
    Ok(Json(json!({ "sessions": items })))
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
    /// A browser page that keeps its tokens in the `HttpOnly` cookies asks for an answer
    /// without `session_token` and `refresh_token`.
    #[serde(default)]
    cookie_only: bool,
}

/// `POST /api/v1/auth/login`: checks the password, then [`Auth::login`] (login-CSRF guard,
/// session and refresh-token cookies, the login answer).
async fn login<S: Store, C: Clock>(
    State(state): State<AppState<S, C>>,
    auth: Auth,
    ClientIp(ip): ClientIp,
    JsonBody(body): JsonBody<LoginRequest>,
) -> Result<Response, ApiError> {
    let Some(user) = state.users.authenticate(&body.username, &body.password) else {
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "invalid_credentials", "wrong user name or password"));
    };
    let mut new = auth.new_session(user.id.clone()).remember_me(body.remember_me);
    if let Some(ip) = ip {
        new = new.ip(ip);
    }
    let answer = auth.login(new).await?;
    Ok(if body.cookie_only { answer.cookie_only() } else { answer }.into_response())
}

#[derive(Deserialize)]
struct RefreshTokenRequest {
    /// Absent: the refresh-token cookie is used instead.
    #[serde(default)]
    refresh_token: Option<String>,
}

/// `POST /api/v1/auth/refresh-token`: spends a refresh token for a new access token and a new
/// refresh token ([`Auth::refresh_tokens`]): the body's `refresh_token`, or else the
/// refresh-token cookie (CSRF-guarded, bound to the session cookie's session, answered with the
/// successor cookie and no refresh token in the body).
async fn refresh_token(auth: Auth, JsonBody(body): JsonBody<RefreshTokenRequest>) -> Result<Refreshed, ApiError> {
    auth.refresh_tokens(body.refresh_token.as_deref()).await
}

/// `GET /.well-known/jwks.json`: the public keys that verify access tokens (none under HS256,
/// whose secret is not public). Cacheable for five minutes.
async fn jwks<S: Store, C: Clock>(State(state): State<AppState<S, C>>) -> Result<Response, ApiError> {
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
async fn current_session(current: CurrentSession) -> Result<Json<Value>, ApiError> {
    session_view(&current).map(Json)
}

/// `POST /api/v1/auth/sessions/refresh`: pushes the idle deadline out by a full idle timeout
/// ([`Auth::extend`]). With an access token the session is answered unchanged (such clients
/// renew it through `/api/v1/auth/refresh-token`).
async fn refresh(auth: Auth) -> Result<Json<Value>, ApiError> {
    session_view(&auth.extend().await?).map(Json)
}

/// `POST /api/v1/auth/sessions/rotate`: replaces the session's token after a privilege change
/// ([`Auth::rotate`]): 200 with the new `session_token`, `csrf_token` and, with signing keys,
/// a new access and refresh token, all in the body (and, through the cookie, in new cookies
/// too). The session id stays; the previous session token, CSRF token, refresh tokens and
/// access tokens are refused from then on, on every instance.
async fn rotate(auth: Auth) -> Result<RotatedAnswer, ApiError> {
    Ok(auth.rotate().await?.with_tokens_in_body())
}

/// `POST /api/v1/auth/logout`: ends the session the request authenticated with (reason
/// `logout`, whichever credential was used) and clears both cookies.
async fn logout(auth: Auth) -> Result<LoggedOut, ApiError> {
    auth.logout().await
}

/// `POST /api/v1/auth/logout-all`: ends every session of the user, this one included.
async fn logout_all<S: Store, C: Clock>(
    State(state): State<AppState<S, C>>,
    auth: Auth,
    current: CurrentSession,
) -> Result<Response, ApiError> {
    let revoked = state.manager.revoke_all(current.user(), None).await?;
    Ok((auth.clear_cookies(), Json(json!({ "revoked": revoked }))).into_response())
}

/// `GET /api/v1/auth/sessions`.
async fn list_sessions<S: Store, C: Clock>(
    State(state): State<AppState<S, C>>,
    current: CurrentSession,
) -> Result<Json<Value>, ApiError> {
    session_list(&state, current.user(), Some(current.id())).await
}

#[derive(Deserialize)]
struct RevokeRequest {
    session_id: String,
}

/// `POST /api/v1/auth/sessions/revoke`: ends one of the caller's own sessions.
async fn revoke_session<S: Store, C: Clock>(
    State(state): State<AppState<S, C>>,
    current: CurrentSession,
    JsonBody(body): JsonBody<RevokeRequest>,
) -> Result<StatusCode, ApiError> {
    // A malformed id cannot name one of the caller's sessions: the same 404 as any other.
    let id = body.session_id.parse::<SessionId>().map_err(|_| ApiError::not_found("no such session"))?;
    if state.manager.revoke_own(current.user(), &id).await? {
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
async fn admin_list_sessions<S: Store, C: Clock>(
    State(state): State<AppState<S, C>>,
    AdminSession(admin): AdminSession,
    query: Result<Query<AdminListQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query.map_err(|_| ApiError::invalid_request("expected the query parameter `user=NAME`"))?;
    let user = UserId::new(query.user).map_err(|e| ApiError::invalid_request(e.to_string()))?;
    session_list(&state, &user, Some(admin.id())).await
}

/// `DELETE /api/v1/admin/sessions/{session_id}`.
async fn admin_revoke_session<S: Store, C: Clock>(
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
async fn admin_revoke_user<S: Store, C: Clock>(
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
async fn admin_stats<S: Store, C: Clock>(
    State(state): State<AppState<S, C>>,
    _admin: AdminSession,
) -> Result<Json<SessionStats>, ApiError> {
    Ok(Json(state.manager.stats().await?))
}

/// `GET /api/v1/admin/sessions/export`: every session, remembered revocation and denylist entry
/// as JSON Lines ([`sessionkit::export`]): token digests, never tokens. Streamed
/// ([`SessionManager::export_to`](sessionkit::SessionManager::export_to) through a 64 KiB
/// pipe), so the server's memory does not grow with the store. An export that fails before
/// its first 64 KiB (a store that is down) answers 503; a failure after the answer has
/// started cuts the body short, which a reader sees by its missing end line.
async fn admin_export<S: Store, C: Clock>(
    State(state): State<AppState<S, C>>,
    _admin: AdminSession,
) -> Result<Response, ApiError> {
    use futures_util::StreamExt as _;
    use tokio::io::AsyncReadExt as _;

    const PIPE: usize = 64 * 1024;
    let (mut writer, mut reader) = tokio::io::duplex(PIPE);
    let manager = state.manager.clone();
    let export = tokio::spawn(async move {
        let written = manager.export_to(&mut writer).await;
        if let Err(e) = &written {
            // The body ends without its end line, which an import refuses.
            tracing::warn!(target: "server", error = %e, "export cut short");
        }
        written
    });
    let mut first = vec![0u8; PIPE];
    let n = reader.read(&mut first).await.map_err(|_| ApiError::internal("the export could not be written"))?;
    if n == 0 {
        // Nothing was written: the export failed before its first write.
        return Err(match export.await {
            Ok(Err(e)) => export_error(e),
            Ok(Ok(_)) | Err(_) => ApiError::internal("the export could not be written"),
        });
    }
    first.truncate(n);
    let body = futures_util::stream::once(std::future::ready(Ok(axum::body::Bytes::from(first))))
        .chain(tokio_util::io::ReaderStream::new(reader));
    let mut response = axum::body::Body::from_stream(body).into_response();
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/x-ndjson"));
    Ok(response)
}
