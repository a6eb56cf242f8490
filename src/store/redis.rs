//! [`RedisStore`]: sessions shared by any number of application instances through Redis or
//! Valkey (feature `redis`).
//!
//! Every [`SessionStore`] operation but one is one Lua script run by the server, so each is
//! atomic against every other instance: two instances can never both fill a user's last slot,
//! fork a refresh-token family or bring a revoked session back. The exception is
//! [`SessionStore::update_data`], an optimistic read, patch and versioned write (the patch and
//! its size cap are computed in Rust): no patch is ever lost, and after 64 attempts, each
//! failed because another patch won, it answers [`StoreError::Contended`]. Validation ([`SessionStore::touch`])
//! is exactly one round trip, with the throttled renewal folded into it.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use sessionkit::store::redis::{RedisConfig, RedisStore};
//! use sessionkit::{SessionConfig, SessionManager};
//!
//! let store = RedisStore::connect(RedisConfig::new("redis://127.0.0.1:6379/")).await?;
//! let manager = SessionManager::new(store, SessionConfig::default());
//! # Ok(()) }
//! ```
//!
//! # Key layout
//!
//! All keys start with the base `<prefix>:{<tag>}:` (default `sessionkit:{0}:`); the hash tag
//! `{0}` puts every key in one Redis Cluster slot, which is what lets a script touch a session,
//! its user's index and the denylist together. A digest lookup cannot know its user, so keys are
//! not split per user; a Redis Cluster therefore serves one store from one shard (its replicas
//! give fail-over, not write scaling). Separate applications use separate prefixes.
//!
//! | key | type | holds | expires |
//! |---|---|---|---|
//! | `s:<digest>` | hash | a session, by the SHA-256 digest of its token (base64url) | absolute deadline + retention |
//! | `i:<session id>` | string | the digest of session `id` | with the session |
//! | `u:<user id>` | sorted set | the user's session digests, scored by absolute deadline | with the user's last session |
//! | `r:<digest>` | hash | a refresh token (current or spent) and its session id | with the session |
//! | `v:<digest>` | string | a remembered revocation of a session token, or of its current or last spent refresh token: `reason\|until` | at the session's absolute deadline |
//! | `d:<session id>` | string | a denylist entry: `reason\|until` | when the last access token expires |
//! | `x` | sorted set | every session digest, scored by its idle deadline (the sweeper's index) | never: pruned by the sweeper, and by every login of entries a day past their idle deadline |
//! | `q` | string | the creation sequence (orders logins made in the same instant) | never: one integer |
//!
//! Keys hold digests, never tokens: a dump of Redis cannot be replayed. Every per-session key
//! has a TTL, so Redis forgets expired sessions even if no sweeper runs. The two indexes are
//! pruned as they go: every login drops the user's sessions past their absolute deadline from
//! `u:<user>`, and entries of `x` more than a day past their idle deadline (a sweeper that runs
//! at all has removed those already), so memory stays bounded without a sweeper too.
//! Sessions are kept for [`RedisConfig::expired_retention`] past their absolute deadline so
//! that a late request is told "expired" rather than "unknown".
//!
//! Timestamps are stored as 20-digit strings (Unix nanoseconds + 2⁶³), so that scripts compare
//! them exactly; TTLs are counted from the caller's `now`, never from Redis's clock.
//!
//! # Idle timeout across instances
//!
//! A session's last-seen time and idle deadline are written at most once per
//! [`touch_interval`](crate::SessionConfig::touch_interval), by whichever instance validates it
//! first in that interval. Idle expiry is therefore exact to within one touch interval: a
//! session used only through instance B is renewed by B exactly as it would be by A.
//!
//! # The access-token denylist
//!
//! Revocations write `d:<session id>` and publish on the channel `<prefix>:denylist`. In
//! [`DenylistMode::Subscribed`] (the default) each instance keeps a local copy of the denylist,
//! fed by that channel, so [`SessionStore::access_denied`] makes no round trip; an access token
//! of a session revoked elsewhere is refused as soon as the message arrives (a millisecond or
//! so on a LAN). When the subscription is lost, the instance refuses every access token
//! (a [`StoreError::Unavailable`]) until it has resubscribed and read the whole denylist back
//! from Redis. [`DenylistMode::Strict`] asks Redis on every verification instead.
//!
//! # Failure behaviour
//!
//! [`RedisStore::connect`] never fails because Redis is down: the connection is made lazily
//! and re-made after a failure. While Redis is unreachable every operation returns
//! [`StoreError::Unavailable`] within [`RedisConfig::operation_timeout`] (1 second by default),
//! so requests fail closed and do not pile up; once Redis is back, operations succeed again
//! without a restart. Sessions survive a Redis restart if Redis persists its data (AOF or RDB).
//!
//! Supported servers: Redis 6.2 or later, and Valkey 7.2 or later.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use dashmap::DashMap;
use futures_util::StreamExt as _;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, RedisError, Script, Value};

use crate::clock::Timestamp;
use crate::error::{ExpiryReason, RevocationReason, StoreError};
use crate::policy::{Limit, LimitPolicy};
use crate::session::{DataPatch, Metadata, SessionData, SessionId, SessionRecord, UserId};
use crate::store::{
    DataOutcome, InsertOutcome, Lookup, REFRESH_REUSE_HISTORY, RefreshDigests, RefreshOutcome, Revocation, ScanPage,
    SessionStore, StoredItem, Successor, TouchPolicy,
};
use crate::token::TokenDigest;

/// How [`RedisStore`] answers [`SessionStore::access_denied`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum DenylistMode {
    /// A local copy kept current through Redis pub/sub: no round trip per verification. While
    /// the subscription is down the store refuses every access token until it has resynchronised.
    #[default]
    Subscribed,
    /// One Redis round trip per verification: a revocation anywhere is seen at once.
    Strict,
}

/// How to reach Redis and lay out the keys. Build with [`RedisConfig::new`] and the `with_`
/// methods; every option states its default.
///
/// Its `Debug` output hides the URL's password (and any `password`/`pass` query parameter):
///
/// ```
/// use sessionkit::store::redis::RedisConfig;
///
/// let config = RedisConfig::new("redis://app:s3cret@127.0.0.1:6379/0");
/// let shown = format!("{config:?}");
/// assert!(shown.contains("redis://app:***@127.0.0.1:6379/0") && !shown.contains("s3cret"));
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct RedisConfig {
    /// The server, as a `redis://` (or `rediss://` with a TLS-enabled `redis` crate) URL.
    pub url: String,
    /// First part of every key and of the denylist channel. Default `"sessionkit"`.
    pub key_prefix: String,
    /// Longest any operation may take, including reconnecting, before it fails with
    /// [`StoreError::Unavailable`]. Default 1 second.
    pub operation_timeout: Duration,
    /// Longest a connection attempt may take. Default 500 ms.
    pub connect_timeout: Duration,
    /// How long a session stays in Redis after its absolute deadline, so that a late request
    /// is answered "expired" rather than "unknown". Default 15 minutes (the sweeper's default
    /// interval, so the answer matches [`MemoryStore`](crate::MemoryStore)'s).
    pub expired_retention: Duration,
    /// How access-token denylist checks are answered. Default [`DenylistMode::Subscribed`].
    pub denylist: DenylistMode,
    /// In subscribed mode, how often the subscription is checked with a `PING`; a lost
    /// subscription is noticed within about this long. Default 1 second.
    pub subscription_check: Duration,
}

impl RedisConfig {
    /// The defaults, for the server at `url`.
    #[must_use]
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            key_prefix: "sessionkit".to_owned(),
            operation_timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_millis(500),
            expired_retention: Duration::from_secs(15 * 60),
            denylist: DenylistMode::Subscribed,
            subscription_check: Duration::from_secs(1),
        }
    }

    /// The URL with its password hidden (user information and `password`/`pass` query
    /// parameters), fit for logs and start-up messages; what `Debug` shows.
    #[must_use]
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }

    /// Sets [`key_prefix`](Self::key_prefix).
    #[must_use]
    pub fn with_key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// Sets [`operation_timeout`](Self::operation_timeout).
    #[must_use]
    pub fn with_operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = timeout;
        self
    }

    /// Sets [`connect_timeout`](Self::connect_timeout).
    #[must_use]
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets [`expired_retention`](Self::expired_retention).
    #[must_use]
    pub fn with_expired_retention(mut self, retention: Duration) -> Self {
        self.expired_retention = retention;
        self
    }

    /// Sets [`denylist`](Self::denylist).
    #[must_use]
    pub fn with_denylist(mut self, mode: DenylistMode) -> Self {
        self.denylist = mode;
        self
    }

    /// Sets [`subscription_check`](Self::subscription_check).
    #[must_use]
    pub fn with_subscription_check(mut self, every: Duration) -> Self {
        self.subscription_check = every;
        self
    }
}

impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &self.redacted_url())
            .field("key_prefix", &self.key_prefix)
            .field("operation_timeout", &self.operation_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("expired_retention", &self.expired_retention)
            .field("denylist", &self.denylist)
            .field("subscription_check", &self.subscription_check)
            .finish()
    }
}

/// `url` with the password of its user information and the value of any `password` or `pass`
/// query parameter replaced by `***`, for `Debug` output. Text that is not a URL with an
/// authority is hidden whole, since where its secrets are cannot be told.
fn redact_url(url: &str) -> String {
    const HIDDEN: &str = "***";
    let Some((scheme, rest)) = url.split_once("://") else {
        return HIDDEN.to_owned();
    };
    let (before_query, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    let authority_end = before_query.find('/').unwrap_or(before_query.len());
    let (authority, path) = before_query.split_at(authority_end);
    let mut out = format!("{scheme}://");
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            match userinfo.split_once(':') {
                Some((user, _password)) => out.push_str(&format!("{user}:{HIDDEN}")),
                // `redis://secret@host` puts the password where a user name would be.
                None => out.push_str(HIDDEN),
            }
            out.push('@');
            out.push_str(host);
        }
        None => out.push_str(authority),
    }
    out.push_str(path);
    if let Some(query) = query {
        out.push('?');
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") || k.eq_ignore_ascii_case("pass") => {
                    format!("{k}={HIDDEN}")
                }
                _ => pair.to_owned(),
            })
            .collect();
        out.push_str(&pairs.join("&"));
    }
    out
}

/// Longest accepted [`RedisConfig::expired_retention`]: a year.
pub const MAX_EXPIRED_RETENTION: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// Longest accepted timeout or check interval in a [`RedisConfig`]: an hour.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(60 * 60);

/// Why a [`RedisStore`] could not be built. Redis being unreachable is not one of them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisConfigError {
    /// The URL is not a Redis URL.
    #[error("invalid Redis URL")]
    Url(#[source] RedisError),
    /// The key prefix is empty or contains `{`, `}` or a control character.
    #[error("invalid key prefix {0:?}: it must be non-empty, without braces or control characters")]
    Prefix(String),
    /// A timeout is zero.
    #[error("{0} must be greater than zero")]
    ZeroTimeout(&'static str),
    /// A duration is longer than its limit ([`MAX_TIMEOUT`] for the timeouts and the
    /// subscription check, [`MAX_EXPIRED_RETENTION`] for the retention).
    #[error("{option} must be at most {max:?}")]
    TooLong {
        /// The option's name.
        option: &'static str,
        /// Its limit.
        max: Duration,
    },
}

/// A [`SessionStore`] in Redis (or Valkey), shared by every instance that uses the same server
/// and key prefix. Cheap to clone. See the [module documentation](self).
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    conn: ConnectionManager,
    base: String,
    channel: String,
    config: RedisConfig,
    scripts: Scripts,
    denylist: Option<Arc<LocalDenylist>>,
    subscriber: Option<tokio::task::AbortHandle>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(task) = &self.subscriber {
            task.abort();
        }
    }
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password: show only the key base.
        f.debug_struct("RedisStore")
            .field("base", &self.inner.base)
            .field("denylist", &self.inner.config.denylist)
            .finish_non_exhaustive()
    }
}

struct Scripts {
    insert: Script,
    touch: Script,
    get: Script,
    rotate: Script,
    data_get: Script,
    data_set: Script,
    remove: Script,
    remove_user: Script,
    list_user: Script,
    refresh: Script,
    remove_expired: Script,
    scan: Script,
    restore: Script,
}

/// Attempts of the optimistic [`SessionStore::update_data`] before [`StoreError::Contended`].
const DATA_ATTEMPTS: usize = 64;

const PRELUDE: &str = include_str!("redis/prelude.lua");

fn script(body: &str) -> Script {
    Script::new(&format!("{PRELUDE}\n{body}"))
}

impl Scripts {
    fn new() -> Self {
        Self {
            insert: script(include_str!("redis/insert.lua")),
            touch: script(include_str!("redis/touch.lua")),
            get: script(include_str!("redis/get.lua")),
            rotate: script(include_str!("redis/rotate.lua")),
            data_get: script(include_str!("redis/data_get.lua")),
            data_set: script(include_str!("redis/data_set.lua")),
            remove: script(include_str!("redis/remove.lua")),
            remove_user: script(include_str!("redis/remove_user.lua")),
            list_user: script(include_str!("redis/list_user.lua")),
            refresh: script(include_str!("redis/refresh.lua")),
            remove_expired: script(include_str!("redis/remove_expired.lua")),
            scan: script(include_str!("redis/scan.lua")),
            restore: script(include_str!("redis/restore.lua")),
        }
    }

    fn all(&self) -> [&Script; 13] {
        [
            &self.insert,
            &self.touch,
            &self.get,
            &self.rotate,
            &self.data_get,
            &self.data_set,
            &self.remove,
            &self.remove_user,
            &self.list_user,
            &self.refresh,
            &self.remove_expired,
            &self.scan,
            &self.restore,
        ]
    }

    /// Loads every script into Redis's script cache.
    async fn load(&self, conn: &ConnectionManager) -> Result<(), RedisError> {
        let mut conn = conn.clone();
        for s in self.all() {
            s.load_async(&mut conn).await?;
        }
        Ok(())
    }
}

/// The subscribed mode's local copy of the denylist.
struct LocalDenylist {
    entries: DashMap<SessionId, (RevocationReason, Timestamp)>,
    /// `false` until the first resynchronisation, and from a lost subscription until the next.
    synced: AtomicBool,
    /// The latest `now` a caller passed to `access_denied` (to within a second), in Unix
    /// nanoseconds: entries that expired before it are pruned once per subscription check, so
    /// the copy holds only live entries even if no sweeper runs. (The store reads no clock.)
    latest_now: AtomicI64,
}

impl LocalDenylist {
    fn new() -> Self {
        Self { entries: DashMap::new(), synced: AtomicBool::new(false), latest_now: AtomicI64::new(i64::MIN) }
    }

    /// Notes the caller's time. Written at most about once a second, so that concurrent
    /// verifications do not contend on it.
    fn observe(&self, now: Timestamp) {
        let now = now.unix_nanos();
        if now > self.latest_now.load(Ordering::Relaxed).saturating_add(1_000_000_000) {
            self.latest_now.store(now, Ordering::Relaxed);
        }
    }

    fn prune(&self) {
        let latest = Timestamp::from_unix_nanos(self.latest_now.load(Ordering::Relaxed));
        self.entries.retain(|_, e| e.1 > latest);
    }

    fn add(&self, id: SessionId, reason: RevocationReason, until: Timestamp) {
        self.entries
            .entry(id)
            .and_modify(|e| {
                if until > e.1 {
                    *e = (reason, until);
                }
            })
            .or_insert((reason, until));
    }
}

impl RedisStore {
    /// A store on the server `config.url`. Connects lazily: an unreachable server is not an
    /// error here, but every operation fails with [`StoreError::Unavailable`] until it is
    /// reachable. In [`DenylistMode::Subscribed`] this waits (at most
    /// [`operation_timeout`](RedisConfig::operation_timeout)) for the first denylist
    /// synchronisation, and a background task keeps the copy current.
    ///
    /// # Panics
    /// Outside a tokio runtime (the connection and the subscription run on it).
    ///
    /// # Errors
    /// [`RedisConfigError`] if the URL, prefix, a timeout or the retention is invalid.
    pub async fn connect(config: RedisConfig) -> Result<Self, RedisConfigError> {
        if config.key_prefix.is_empty() || config.key_prefix.chars().any(|c| c == '{' || c == '}' || c.is_control()) {
            return Err(RedisConfigError::Prefix(config.key_prefix));
        }
        for (name, d) in [
            ("operation_timeout", config.operation_timeout),
            ("connect_timeout", config.connect_timeout),
            ("subscription_check", config.subscription_check),
        ] {
            if d.is_zero() {
                return Err(RedisConfigError::ZeroTimeout(name));
            }
            if d > MAX_TIMEOUT {
                return Err(RedisConfigError::TooLong { option: name, max: MAX_TIMEOUT });
            }
        }
        if config.expired_retention > MAX_EXPIRED_RETENTION {
            return Err(RedisConfigError::TooLong { option: "expired_retention", max: MAX_EXPIRED_RETENTION });
        }
        let client = Client::open(config.url.as_str()).map_err(RedisConfigError::Url)?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(config.operation_timeout))
            .set_number_of_retries(1)
            .set_max_delay(config.operation_timeout);
        let conn =
            ConnectionManager::new_lazy_with_config(client.clone(), manager_config).map_err(RedisConfigError::Url)?;
        let base = format!("{}:{{0}}:", config.key_prefix);
        let channel = format!("{}:denylist", config.key_prefix);
        let (denylist, subscriber) = match config.denylist {
            DenylistMode::Strict => (None, None),
            DenylistMode::Subscribed => {
                let local = Arc::new(LocalDenylist::new());
                let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
                let task = tokio::spawn(subscribe_loop(
                    client.clone(),
                    conn.clone(),
                    Arc::clone(&local),
                    SubscriberSettings {
                        base: base.clone(),
                        channel: channel.clone(),
                        check: config.subscription_check,
                        timeout: config.operation_timeout,
                    },
                    ready_tx,
                ));
                // Redis may be down: then the store starts unsynced and fails closed.
                let _ = tokio::time::timeout(config.operation_timeout, ready_rx).await;
                (Some(local), Some(task.abort_handle()))
            }
        };
        let scripts = Scripts::new();
        // Best effort: with the scripts loaded, even the first call of each is one round trip.
        // (If Redis is down, or restarts later, a script is loaded on its first use instead.)
        let _ = tokio::time::timeout(config.operation_timeout, scripts.load(&conn)).await;
        Ok(Self { inner: Arc::new(Inner { client, conn, base, channel, config, scripts, denylist, subscriber }) })
    }

    /// The configuration the store was built with.
    #[must_use]
    pub fn config(&self) -> &RedisConfig {
        &self.inner.config
    }

    /// Whether the local denylist is synchronised with Redis (always `true` in
    /// [`DenylistMode::Strict`]). While `false`, [`SessionStore::access_denied`] fails closed.
    #[must_use]
    pub fn denylist_synced(&self) -> bool {
        self.inner.denylist.as_ref().is_none_or(|d| d.synced.load(Ordering::Acquire))
    }

    /// Runs `script` with the base and channel as its first two arguments, then `args`.
    async fn run(&self, script: &Script, key: &str, args: Vec<Vec<u8>>) -> Result<Value, StoreError> {
        let inner = &*self.inner;
        let timeout = inner.config.operation_timeout;
        let mut invocation = script.key(key);
        invocation.arg(inner.base.as_str()).arg(inner.channel.as_str());
        for a in args {
            invocation.arg(a);
        }
        let mut conn = inner.conn.clone();
        match tokio::time::timeout(timeout, invocation.invoke_async::<Value>(&mut conn)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(redis_error(e)),
            Err(elapsed) => Err(StoreError::Unavailable(Box::new(elapsed))),
        }
    }

    /// Runs `script` on a connection of its own whose requests may take `timeout`: for
    /// scripts whose work grows with their input (a large restore), which the shared
    /// connection's per-request timeout would cut short.
    async fn run_long(
        &self,
        script: &Script,
        key: &str,
        args: Vec<Vec<u8>>,
        timeout: Duration,
    ) -> Result<Value, StoreError> {
        let inner = &*self.inner;
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(inner.config.connect_timeout))
            .set_response_timeout(Some(timeout));
        let connect = inner.client.get_multiplexed_async_connection_with_config(&config);
        let mut conn = tokio::time::timeout(inner.config.operation_timeout, connect)
            .await
            .map_err(|e| StoreError::Unavailable(Box::new(e)))?
            .map_err(redis_error)?;
        let mut invocation = script.key(key);
        invocation.arg(inner.base.as_str()).arg(inner.channel.as_str());
        for a in args {
            invocation.arg(a);
        }
        match tokio::time::timeout(timeout, invocation.invoke_async::<Value>(&mut conn)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(redis_error(e)),
            Err(elapsed) => Err(StoreError::Unavailable(Box::new(elapsed))),
        }
    }

    fn key(&self, kind: &str, name: &str) -> String {
        format!("{}{kind}:{name}", self.inner.base)
    }

    fn note_denied(&self, records: &[SessionRecord], revocation: &Revocation) {
        if let (Some(local), Some(until)) = (&self.inner.denylist, revocation.deny_access_until)
            && until > revocation.at
        {
            for r in records {
                local.add(r.id, revocation.reason, until);
            }
        }
    }

    /// One session removed by id or by digest (one round trip either way).
    async fn remove_one(
        &self,
        key: String,
        id: Vec<u8>,
        digest: Vec<u8>,
        revocation: Revocation,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let args =
            vec![ts(revocation.at), id, revocation.reason.as_str().as_bytes().to_vec(), deny_arg(&revocation), digest];
        let reply = self.run(&self.inner.scripts.remove, &key, args).await?;
        let removed = optional_record(array(&reply)?)?;
        if let Some(r) = &removed {
            self.note_denied(std::slice::from_ref(r), &revocation);
        }
        Ok(removed)
    }

    fn retention_ms(&self) -> Vec<u8> {
        let ms = u64::try_from(self.inner.config.expired_retention.as_millis()).unwrap_or(u64::MAX);
        ms.to_string().into_bytes()
    }
}

/// Runs one command on `conn`, failing with [`StoreError::Unavailable`] after `timeout`.
async fn query<T: redis::FromRedisValue>(
    conn: &ConnectionManager,
    cmd: redis::Cmd,
    timeout: Duration,
) -> Result<T, StoreError> {
    let mut conn = conn.clone();
    match tokio::time::timeout(timeout, cmd.query_async::<T>(&mut conn)).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(redis_error(e)),
        Err(elapsed) => Err(StoreError::Unavailable(Box::new(elapsed))),
    }
}

fn redis_error(e: RedisError) -> StoreError {
    if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal() {
        StoreError::Unavailable(Box::new(e))
    } else {
        StoreError::Backend(Box::new(e))
    }
}

// ---- encoding -----------------------------------------------------------------------------

/// A timestamp as 20 decimal digits whose string order is time order.
fn ts(t: Timestamp) -> Vec<u8> {
    #[allow(clippy::cast_sign_loss)] // the bit flip maps i64 order onto u64 order
    let v = (t.unix_nanos() as u64) ^ (1 << 63);
    format!("{v:020}").into_bytes()
}

fn parse_ts(s: &[u8]) -> Result<Timestamp, StoreError> {
    let v: u64 = std::str::from_utf8(s)
        .ok()
        .filter(|s| s.len() == 20)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| corrupt("timestamp"))?;
    #[allow(clippy::cast_possible_wrap)]
    Ok(Timestamp::from_unix_nanos((v ^ (1 << 63)) as i64))
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("unreadable {what} in Redis"))
}

fn bytes(v: &Value) -> Result<&[u8], StoreError> {
    match v {
        Value::BulkString(b) => Ok(b),
        Value::SimpleString(s) => Ok(s.as_bytes()),
        _ => Err(corrupt("script reply")),
    }
}

fn text(v: &Value) -> Result<&str, StoreError> {
    std::str::from_utf8(bytes(v)?).map_err(|_| corrupt("text"))
}

fn array(v: &Value) -> Result<&[Value], StoreError> {
    match v {
        Value::Array(a) => Ok(a),
        Value::Nil => Ok(&[]),
        _ => Err(corrupt("script reply")),
    }
}

fn int(v: &Value) -> Result<i64, StoreError> {
    match v {
        Value::Int(i) => Ok(*i),
        other => text(other)?.parse().map_err(|_| corrupt("number")),
    }
}

/// The reply's first element: which outcome the script reports.
fn tag(v: &[Value]) -> Result<&str, StoreError> {
    v.first().ok_or_else(|| corrupt("empty script reply")).and_then(text)
}

fn field(v: &[Value], i: usize) -> Result<&Value, StoreError> {
    v.get(i).ok_or_else(|| corrupt("short script reply"))
}

fn digest(s: &str) -> Result<TokenDigest, StoreError> {
    TokenDigest::from_base64(s).map_err(|_| corrupt("digest"))
}

fn reason(s: &str) -> Result<RevocationReason, StoreError> {
    [
        RevocationReason::Logout,
        RevocationReason::LogoutAll,
        RevocationReason::Admin,
        RevocationReason::Evicted,
        RevocationReason::RefreshReuse,
    ]
    .into_iter()
    .find(|r| r.as_str() == s)
    .ok_or_else(|| corrupt("revocation reason"))
}

fn expiry_reason(s: &str) -> Result<ExpiryReason, StoreError> {
    match s {
        "idle" => Ok(ExpiryReason::Idle),
        "absolute" => Ok(ExpiryReason::Absolute),
        _ => Err(corrupt("expiry reason")),
    }
}

/// The 11 fields of `rec()` in the scripts' prelude.
fn record(v: &Value) -> Result<SessionRecord, StoreError> {
    let f = array(v)?;
    if f.len() != 11 {
        return Err(corrupt("session record"));
    }
    let metadata = match bytes(&f[9])? {
        b"" => Metadata::default(),
        m => serde_json::from_slice(m).map_err(|_| corrupt("session metadata"))?,
    };
    let data = match bytes(&f[10])? {
        b"" => SessionData::default(),
        d => SessionData::from_map(serde_json::from_slice(d).map_err(|_| corrupt("session data"))?),
    };
    Ok(SessionRecord {
        id: text(&f[0])?.parse().map_err(|_| corrupt("session id"))?,
        digest: digest(text(&f[1])?)?,
        user: UserId::new(text(&f[2])?).map_err(|_| corrupt("user id"))?,
        created_at: parse_ts(bytes(&f[3])?)?,
        last_seen_at: parse_ts(bytes(&f[4])?)?,
        idle_deadline: parse_ts(bytes(&f[5])?)?,
        absolute_deadline: parse_ts(bytes(&f[6])?)?,
        remember_me: bytes(&f[7])? == b"1",
        request_count: text(&f[8])?.parse().map_err(|_| corrupt("request count"))?,
        metadata,
        data,
    })
}

fn records(v: &Value) -> Result<Vec<SessionRecord>, StoreError> {
    array(v)?.iter().map(record).collect()
}

fn json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Backend(Box::new(e)))
}

fn deny_arg(revocation: &Revocation) -> Vec<u8> {
    revocation.deny_access_until.map(ts).unwrap_or_default()
}

/// The arguments every renewal takes: `now - interval`, `now + idle` (ordinary, remember-me)
/// and whether to count the request.
fn touch_args(now: Timestamp, policy: &TouchPolicy) -> [Vec<u8>; 4] {
    [
        ts(now.saturating_sub(policy.interval)),
        ts(now.saturating_add(policy.idle_timeout)),
        ts(now.saturating_add(policy.remember_me_idle_timeout)),
        if policy.count_request { b"1".to_vec() } else { b"0".to_vec() },
    ]
}

/// Escapes the glob characters of a key base for `SCAN MATCH`.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 1);
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Expired sessions are removed in batches of at most this many per script run, so that a
/// sweep never holds Redis up for long.
const SWEEP_BATCH: usize = 512;

impl SessionStore for RedisStore {
    async fn insert(
        &self,
        record: SessionRecord,
        refresh: Option<TokenDigest>,
        limit: Option<Limit>,
        eviction: Revocation,
    ) -> Result<InsertOutcome, StoreError> {
        let digest = record.digest.to_base64();
        let (max, policy) = match limit {
            Some(l) => (
                l.max.to_string().into_bytes(),
                match l.policy {
                    LimitPolicy::EvictOldest => b"o".to_vec(),
                    LimitPolicy::EvictLeastRecentlyUsed => b"l".to_vec(),
                    LimitPolicy::Reject => b"r".to_vec(),
                },
            ),
            None => (Vec::new(), b"o".to_vec()),
        };
        let args = vec![
            ts(eviction.at),
            digest.clone().into_bytes(),
            record.id.to_string().into_bytes(),
            record.user.as_str().as_bytes().to_vec(),
            ts(record.created_at),
            ts(record.last_seen_at),
            ts(record.idle_deadline),
            ts(record.absolute_deadline),
            if record.remember_me { b"1".to_vec() } else { b"0".to_vec() },
            record.request_count.to_string().into_bytes(),
            json(&record.metadata)?,
            json(&record.data)?,
            refresh.map(|d| d.to_base64().into_bytes()).unwrap_or_default(),
            max,
            policy,
            eviction.reason.as_str().as_bytes().to_vec(),
            deny_arg(&eviction),
            self.retention_ms(),
        ];
        let reply = self.run(&self.inner.scripts.insert, &self.key("s", &digest), args).await?;
        let reply = array(&reply)?;
        match tag(reply)? {
            "ok" => {
                let evicted = records(field(reply, 1)?)?;
                self.note_denied(&evicted, &eviction);
                Ok(InsertOutcome::Inserted { evicted })
            }
            "limit" => Ok(InsertOutcome::LimitReached),
            "conflict" => Err(StoreError::Conflict),
            _ => Err(corrupt("insert reply")),
        }
    }

    async fn touch(&self, digest: &TokenDigest, now: Timestamp, policy: TouchPolicy) -> Result<Lookup, StoreError> {
        let d = digest.to_base64();
        let [due, idle, idle_rm, count] = touch_args(now, &policy);
        let args = vec![ts(now), d.clone().into_bytes(), due, idle, idle_rm, count];
        let reply = self.run(&self.inner.scripts.touch, &self.key("s", &d), args).await?;
        lookup(array(&reply)?)
    }

    async fn get(&self, digest: &TokenDigest) -> Result<Option<SessionRecord>, StoreError> {
        let d = digest.to_base64();
        let reply =
            self.run(&self.inner.scripts.get, &self.key("s", &d), vec![d.clone().into_bytes(), Vec::new()]).await?;
        optional_record(array(&reply)?)
    }

    async fn get_by_id(&self, id: &SessionId) -> Result<Option<SessionRecord>, StoreError> {
        let id = id.to_string();
        let reply =
            self.run(&self.inner.scripts.get, &self.key("i", &id), vec![Vec::new(), id.clone().into_bytes()]).await?;
        optional_record(array(&reply)?)
    }

    async fn rotate(
        &self,
        old: &TokenDigest,
        new: TokenDigest,
        refresh: Option<TokenDigest>,
        now: Timestamp,
    ) -> Result<Lookup, StoreError> {
        let old = old.to_base64();
        let refresh = refresh.map(|r| r.to_base64().into_bytes()).unwrap_or_default();
        let args = vec![ts(now), old.clone().into_bytes(), new.to_base64().into_bytes(), refresh];
        let reply = self.run(&self.inner.scripts.rotate, &self.key("s", &old), args).await?;
        let reply = array(&reply)?;
        if tag(reply)? == "conflict" {
            return Err(StoreError::Conflict);
        }
        lookup(reply)
    }

    async fn update_data(
        &self,
        id: &SessionId,
        patch: &DataPatch,
        max_bytes: usize,
        now: Timestamp,
    ) -> Result<DataOutcome, StoreError> {
        let id = id.to_string();
        let key = self.key("i", &id);
        // Optimistic: read the data and its version, patch here (the size cap is measured on
        // serde's JSON, which Lua's cjson would not reproduce), write if the version is
        // unchanged. Each failed attempt means another patch was applied meanwhile, so up to
        // DATA_ATTEMPTS concurrent patches of one session all succeed.
        for _ in 0..DATA_ATTEMPTS {
            let reply = self.run(&self.inner.scripts.data_get, &key, vec![ts(now), id.clone().into_bytes()]).await?;
            let reply = array(&reply)?;
            if tag(reply)? != "ok" {
                return Ok(DataOutcome::NotFound);
            }
            let version = bytes(field(reply, 1)?)?.to_vec();
            let current = match bytes(field(reply, 2)?)? {
                b"" => SessionData::default(),
                d => SessionData::from_map(serde_json::from_slice(d).map_err(|_| corrupt("session data"))?),
            };
            let (next, size) = current.patched(patch);
            if size > max_bytes {
                return Ok(DataOutcome::TooLarge { size });
            }
            let args = vec![ts(now), id.clone().into_bytes(), version, json(&next)?];
            let reply = self.run(&self.inner.scripts.data_set, &key, args).await?;
            match tag(array(&reply)?)? {
                "ok" => return Ok(DataOutcome::Updated(next)),
                "none" => return Ok(DataOutcome::NotFound),
                "retry" => {}
                _ => return Err(corrupt("update_data reply")),
            }
        }
        Err(StoreError::Contended)
    }

    async fn remove(&self, id: &SessionId, revocation: Revocation) -> Result<Option<SessionRecord>, StoreError> {
        let sid = id.to_string();
        let key = self.key("i", &sid);
        self.remove_one(key, sid.into_bytes(), Vec::new(), revocation).await
    }

    async fn remove_by_digest(
        &self,
        digest: &TokenDigest,
        revocation: Revocation,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let d = digest.to_base64();
        let key = self.key("s", &d);
        self.remove_one(key, Vec::new(), d.into_bytes(), revocation).await
    }

    async fn remove_user(
        &self,
        user: &UserId,
        keep: Option<&SessionId>,
        revocation: Revocation,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        let args = vec![
            ts(revocation.at),
            user.as_str().as_bytes().to_vec(),
            keep.map(|k| k.to_string().into_bytes()).unwrap_or_default(),
            revocation.reason.as_str().as_bytes().to_vec(),
            deny_arg(&revocation),
        ];
        let reply = self.run(&self.inner.scripts.remove_user, &self.key("u", user.as_str()), args).await?;
        let removed = records(&reply)?;
        self.note_denied(&removed, &revocation);
        Ok(removed)
    }

    async fn rotate_refresh(
        &self,
        presented: &TokenDigest,
        successor: Successor,
        now: Timestamp,
        grace: Duration,
        touch: TouchPolicy,
        reuse: Revocation,
    ) -> Result<RefreshOutcome, StoreError> {
        let p = presented.to_base64();
        let [due, idle, idle_rm, count] = touch_args(now, &touch);
        let args = vec![
            ts(now),
            p.clone().into_bytes(),
            successor.digest.to_base64().into_bytes(),
            successor.sealed,
            ts(now.saturating_sub(grace)),
            due,
            idle,
            idle_rm,
            count,
            reuse.reason.as_str().as_bytes().to_vec(),
            deny_arg(&reuse),
            (REFRESH_REUSE_HISTORY + 1).to_string().into_bytes(),
            ts(now.saturating_add(grace)),
        ];
        let reply = self.run(&self.inner.scripts.refresh, &self.key("r", &p), args).await?;
        let reply = array(&reply)?;
        match tag(reply)? {
            "rotated" => Ok(RefreshOutcome::Rotated(record(field(reply, 1)?)?)),
            "replayed" => Ok(RefreshOutcome::Replayed {
                record: record(field(reply, 1)?)?,
                sealed: bytes(field(reply, 2)?)?.to_vec(),
                spent_at: parse_ts(bytes(field(reply, 3)?)?)?,
            }),
            "reused" => {
                let r = record(field(reply, 1)?)?;
                self.note_denied(std::slice::from_ref(&r), &reuse);
                Ok(RefreshOutcome::Reused(r))
            }
            "expired" => Ok(RefreshOutcome::Expired {
                reason: expiry_reason(text(field(reply, 1)?)?)?,
                record: Box::new(record(field(reply, 2)?)?),
            }),
            "conflict" => Err(StoreError::Conflict),
            "revoked" => Ok(RefreshOutcome::Revoked(reason(text(field(reply, 1)?)?)?)),
            "none" => Ok(RefreshOutcome::NotFound),
            _ => Err(corrupt("refresh reply")),
        }
    }

    async fn access_denied(&self, id: &SessionId, now: Timestamp) -> Result<Option<RevocationReason>, StoreError> {
        if let Some(local) = &self.inner.denylist {
            if !local.synced.load(Ordering::Acquire) {
                return Err(StoreError::Unavailable("the Redis denylist subscription is resynchronising".into()));
            }
            local.observe(now);
            return Ok(local.entries.get(id).and_then(|e| (e.1 > now).then_some(e.0)));
        }
        let mut get = redis::cmd("GET");
        get.arg(self.key("d", &id.to_string()));
        match query::<Option<String>>(&self.inner.conn, get, self.inner.config.operation_timeout).await? {
            None => Ok(None),
            Some(v) => {
                let (reason_s, until) = v.split_once('|').ok_or_else(|| corrupt("denylist entry"))?;
                Ok((parse_ts(until.as_bytes())? > now).then_some(reason(reason_s)?))
            }
        }
    }

    async fn list_user(&self, user: &UserId, now: Timestamp) -> Result<Vec<SessionRecord>, StoreError> {
        let args = vec![ts(now), user.as_str().as_bytes().to_vec()];
        let reply = self.run(&self.inner.scripts.list_user, &self.key("u", user.as_str()), args).await?;
        let mut live = records(&reply)?;
        live.sort_by_key(|r| (r.created_at, r.id));
        Ok(live)
    }

    async fn count(&self) -> Result<usize, StoreError> {
        let mut zcard = redis::cmd("ZCARD");
        zcard.arg(format!("{}x", self.inner.base));
        query(&self.inner.conn, zcard, self.inner.config.operation_timeout).await
    }

    async fn scan(&self, cursor: u64, count: usize) -> Result<ScanPage, StoreError> {
        let pattern = format!("{}*", glob_escape(&self.inner.base));
        let args = vec![cursor.to_string().into_bytes(), count.max(1).to_string().into_bytes(), pattern.into_bytes()];
        let reply = self.run(&self.inner.scripts.scan, &format!("{}x", self.inner.base), args).await?;
        let reply = array(&reply)?;
        let next: u64 = text(field(reply, 0)?)?.parse().map_err(|_| corrupt("scan cursor"))?;
        let mut items = Vec::new();
        for item in array(field(reply, 1)?)? {
            let f = array(item)?;
            items.push(match tag(f)? {
                "s" => {
                    let record = record(field(f, 1)?)?;
                    let current = text(field(f, 2)?)?;
                    let refresh = if current.is_empty() {
                        None
                    } else {
                        let spent = text(field(f, 3)?)?
                            .split(',')
                            .filter(|s| !s.is_empty())
                            .map(digest)
                            .collect::<Result<_, _>>()?;
                        Some(RefreshDigests { current: digest(current)?, spent })
                    };
                    StoredItem::Session { record, refresh }
                }
                "v" => StoredItem::Revoked {
                    digest: digest(text(field(f, 1)?)?)?,
                    reason: reason(text(field(f, 2)?)?)?,
                    until: parse_ts(bytes(field(f, 3)?)?)?,
                },
                "d" => StoredItem::Denied {
                    session_id: text(field(f, 1)?)?.parse().map_err(|_| corrupt("session id"))?,
                    reason: reason(text(field(f, 2)?)?)?,
                    until: parse_ts(bytes(field(f, 3)?)?)?,
                },
                _ => return Err(corrupt("scan item")),
            });
        }
        Ok(ScanPage { items, next: (next != 0).then_some(next) })
    }

    async fn restore(&self, items: Vec<StoredItem>) -> Result<(), StoreError> {
        // TTLs are counted from the latest activity among the items: the export was taken after
        // it, so no entry (a denylist entry in particular) can expire before its time.
        let reference = items
            .iter()
            .filter_map(|i| match i {
                StoredItem::Session { record, .. } => Some(record.last_seen_at),
                _ => None,
            })
            .max();
        let reference = match reference {
            Some(t) => t,
            None => self.server_time().await?,
        };
        let mut args = vec![ts(reference), self.retention_ms()];
        let mut denied = Vec::new();
        for item in &items {
            match item {
                StoredItem::Session { record, refresh } => {
                    args.extend([
                        b"s".to_vec(),
                        record.id.to_string().into_bytes(),
                        record.digest.to_base64().into_bytes(),
                        record.user.as_str().as_bytes().to_vec(),
                        ts(record.created_at),
                        ts(record.last_seen_at),
                        ts(record.idle_deadline),
                        ts(record.absolute_deadline),
                        if record.remember_me { b"1".to_vec() } else { b"0".to_vec() },
                        record.request_count.to_string().into_bytes(),
                        json(&record.metadata)?,
                        json(&record.data)?,
                        refresh.as_ref().map(|r| r.current.to_base64().into_bytes()).unwrap_or_default(),
                        refresh
                            .as_ref()
                            .map(|r| {
                                r.spent.iter().map(TokenDigest::to_base64).collect::<Vec<_>>().join(",").into_bytes()
                            })
                            .unwrap_or_default(),
                    ]);
                }
                StoredItem::Revoked { digest, reason, until } => {
                    args.extend([
                        b"v".to_vec(),
                        digest.to_base64().into_bytes(),
                        reason.as_str().as_bytes().to_vec(),
                        ts(*until),
                    ]);
                }
                StoredItem::Denied { session_id, reason, until } => {
                    denied.push((*session_id, *reason, *until));
                    args.extend([
                        b"d".to_vec(),
                        session_id.to_string().into_bytes(),
                        reason.as_str().as_bytes().to_vec(),
                        ts(*until),
                    ]);
                }
            }
        }
        // One script, so all or nothing; it may take a while for a large import (Redis answers
        // nothing else meanwhile: import into a store that is not serving yet).
        let per_batch = u32::try_from(1 + items.len() / 10_000).unwrap_or(u32::MAX);
        let timeout =
            self.inner.config.operation_timeout.saturating_add(Duration::from_secs(1).saturating_mul(per_batch));
        let reply = self.run_long(&self.inner.scripts.restore, &format!("{}x", self.inner.base), args, timeout).await?;
        match tag(array(&reply)?)? {
            "ok" => {
                if let Some(local) = &self.inner.denylist {
                    for (id, reason, until) in denied {
                        local.add(id, reason, until);
                    }
                }
                Ok(())
            }
            "conflict" => Err(StoreError::Conflict),
            _ => Err(corrupt("restore reply")),
        }
    }

    async fn remove_expired(&self, now: Timestamp, max: usize) -> Result<Vec<SessionRecord>, StoreError> {
        if let Some(local) = &self.inner.denylist {
            local.entries.retain(|_, e| e.1 > now);
        }
        let mut removed = Vec::new();
        let key = format!("{}x", self.inner.base);
        while removed.len() < max {
            let batch = (max - removed.len()).min(SWEEP_BATCH);
            let args = vec![ts(now), batch.to_string().into_bytes()];
            let reply = self.run(&self.inner.scripts.remove_expired, &key, args).await?;
            let reply = array(&reply)?;
            let examined = usize::try_from(int(field(reply, 0)?)?).map_err(|_| corrupt("sweep count"))?;
            let found = records(field(reply, 1)?)?;
            let stale = int(field(reply, 2)?)?;
            let no_progress = found.is_empty() && stale == 0;
            removed.extend(found);
            // A full batch of candidates none of which has expired yet (the index's
            // millisecond scores round up to `now`) would be examined again and again: stop.
            // (Entries whose session Redis already dropped by TTL are progress: they leave.)
            if examined < batch || no_progress {
                break;
            }
        }
        Ok(removed)
    }
}

impl RedisStore {
    /// Redis's own clock, for [`SessionStore::restore`] of items that carry no activity time.
    async fn server_time(&self) -> Result<Timestamp, StoreError> {
        let (secs, micros): (i64, i64) =
            query(&self.inner.conn, redis::cmd("TIME"), self.inner.config.operation_timeout).await?;
        Ok(Timestamp::from_unix_nanos(secs.saturating_mul(1_000_000_000).saturating_add(micros.saturating_mul(1000))))
    }
}

fn lookup(reply: &[Value]) -> Result<Lookup, StoreError> {
    match tag(reply)? {
        "live" => Ok(Lookup::Live(record(field(reply, 1)?)?)),
        "expired" => Ok(Lookup::Expired {
            reason: expiry_reason(text(field(reply, 1)?)?)?,
            record: Box::new(record(field(reply, 2)?)?),
        }),
        "revoked" => Ok(Lookup::Revoked(reason(text(field(reply, 1)?)?)?)),
        "none" => Ok(Lookup::NotFound),
        _ => Err(corrupt("lookup reply")),
    }
}

fn optional_record(reply: &[Value]) -> Result<Option<SessionRecord>, StoreError> {
    match tag(reply)? {
        "ok" => record(field(reply, 1)?).map(Some),
        "none" => Ok(None),
        _ => Err(corrupt("reply")),
    }
}

// ---- the denylist subscription ------------------------------------------------------------

struct SubscriberSettings {
    base: String,
    channel: String,
    check: Duration,
    timeout: Duration,
}

/// Keeps `local` current: subscribe, read the whole denylist back, then apply messages; on any
/// failure mark it unsynced (so verifications fail closed) and start over.
async fn subscribe_loop(
    client: Client,
    conn: ConnectionManager,
    local: Arc<LocalDenylist>,
    settings: SubscriberSettings,
    ready: tokio::sync::oneshot::Sender<()>,
) {
    let mut ready = Some(ready);
    let mut backoff = Duration::from_millis(50);
    loop {
        local.synced.store(false, Ordering::Release);
        let outcome = subscribed_session(&client, &conn, &local, &settings, &mut ready).await;
        local.synced.store(false, Ordering::Release);
        match outcome {
            // The subscription ran and then dropped: reconnect at once.
            Ok(()) => backoff = Duration::from_millis(50),
            Err(e) => {
                #[cfg(feature = "tracing")]
                tracing::warn!(target: "sessionkit::redis", error = %e, "denylist subscription failed; retrying");
                #[cfg(not(feature = "tracing"))]
                let _ = e;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}

async fn subscribed_session(
    client: &Client,
    conn: &ConnectionManager,
    local: &LocalDenylist,
    s: &SubscriberSettings,
    ready: &mut Option<tokio::sync::oneshot::Sender<()>>,
) -> Result<(), StoreError> {
    let pubsub = tokio::time::timeout(s.timeout, client.get_async_pubsub())
        .await
        .map_err(|e| StoreError::Unavailable(Box::new(e)))?
        .map_err(redis_error)?;
    let (mut sink, mut stream) = pubsub.split();
    tokio::time::timeout(s.timeout, sink.subscribe(&s.channel))
        .await
        .map_err(|e| StoreError::Unavailable(Box::new(e)))?
        .map_err(redis_error)?;
    // Subscribed first, then read back: nothing published in between is missed.
    resync(conn, local, s).await?;
    local.synced.store(true, Ordering::Release);
    if let Some(tx) = ready.take() {
        let _ = tx.send(());
    }
    let mut tick = tokio::time::interval(s.check);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            msg = stream.next() => {
                let Some(msg) = msg else { return Ok(()) };
                if let Ok(payload) = msg.get_payload::<String>() {
                    apply_message(local, &payload);
                }
            }
            _ = tick.tick() => {
                local.prune();
                match tokio::time::timeout(s.timeout, sink.ping::<Value>()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return Err(redis_error(e)),
                    Err(e) => return Err(StoreError::Unavailable(Box::new(e))),
                }
            }
        }
    }
}

fn apply_message(local: &LocalDenylist, payload: &str) {
    let mut parts = payload.splitn(3, '|');
    let (Some(id), Some(r), Some(until)) = (parts.next(), parts.next(), parts.next()) else { return };
    if let (Ok(id), Ok(r), Ok(until)) = (id.parse::<SessionId>(), reason(r), parse_ts(until.as_bytes())) {
        local.add(id, r, until);
    }
}

/// Reads every denylist entry from Redis into `local`.
async fn resync(conn: &ConnectionManager, local: &LocalDenylist, s: &SubscriberSettings) -> Result<(), StoreError> {
    let pattern = format!("{}d:*", glob_escape(&s.base));
    let mut cursor = 0u64;
    loop {
        let mut scan = redis::cmd("SCAN");
        scan.arg(cursor).arg("MATCH").arg(&pattern).arg("COUNT").arg(1000);
        let (next, keys): (u64, Vec<String>) = query(conn, scan, s.timeout).await?;
        if !keys.is_empty() {
            let mut mget = redis::cmd("MGET");
            mget.arg(&keys);
            let values: Vec<Option<String>> = query(conn, mget, s.timeout).await?;
            for (key, value) in keys.iter().zip(values) {
                let (Some(id), Some(value)) = (key.strip_prefix(&format!("{}d:", s.base)), value) else { continue };
                apply_message(local, &format!("{id}|{value}"));
            }
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_keep_their_order_as_strings() {
        let values = [i64::MIN, -1_000_000_007, -1, 0, 1, 1_704_067_200_000_000_000, i64::MAX];
        for pair in values.windows(2) {
            let (a, b) = (ts(Timestamp::from_unix_nanos(pair[0])), ts(Timestamp::from_unix_nanos(pair[1])));
            assert_eq!(a.len(), 20);
            assert!(a < b, "{pair:?}");
        }
        for v in values {
            assert_eq!(parse_ts(&ts(Timestamp::from_unix_nanos(v))).unwrap().unix_nanos(), v);
        }
        assert!(parse_ts(b"123").is_err());
        assert!(parse_ts(b"9999999999999999999x").is_err());
        assert!(parse_ts(b"99999999999999999999").is_err(), "over u64::MAX");
    }

    #[test]
    fn debug_output_hides_passwords() {
        for (url, shown) in [
            ("redis://127.0.0.1:6379/", "redis://127.0.0.1:6379/"),
            ("redis://:pw1@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
            ("redis://app:pw2@host/0?protocol=resp3", "redis://app:***@host/0?protocol=resp3"),
            ("rediss://pw3@host", "rediss://***@host"),
            ("redis://user:p@ss:w@rd@host:1", "redis://user:***@host:1"),
            ("redis+unix:///run/redis.sock?db=1&pass=pw4", "redis+unix:///run/redis.sock?db=1&pass=***"),
            ("unix:///run/redis.sock?password=pw5&user=u", "unix:///run/redis.sock?password=***&user=u"),
            ("not a url pw6", "***"),
        ] {
            assert_eq!(redact_url(url), shown);
            let debug = format!("{:?}", RedisConfig::new(url));
            assert!(debug.contains(&format!("{shown:?}")), "{debug}");
            assert!(!debug.contains("pw"), "{debug}");
        }
    }

    #[tokio::test]
    async fn out_of_range_durations_are_refused_before_any_connection() {
        // Port 1 on loopback: nothing is contacted, the check comes first.
        let base = RedisConfig::new("redis://127.0.0.1:1/");
        let refused = [
            (base.clone().with_expired_retention(Duration::MAX), "expired_retention"),
            (base.clone().with_operation_timeout(Duration::MAX), "operation_timeout"),
            (base.clone().with_connect_timeout(MAX_TIMEOUT + Duration::from_nanos(1)), "connect_timeout"),
            (base.clone().with_subscription_check(Duration::from_secs(86_400)), "subscription_check"),
        ];
        for (config, name) in refused {
            match RedisStore::connect(config).await {
                Err(RedisConfigError::TooLong { option, .. }) => assert_eq!(option, name),
                other => panic!("{name}: {other:?}"),
            }
        }
        assert!(matches!(
            RedisStore::connect(base.with_operation_timeout(Duration::ZERO)).await,
            Err(RedisConfigError::ZeroTimeout("operation_timeout"))
        ));
    }

    #[test]
    fn glob_characters_are_escaped() {
        assert_eq!(glob_escape("a*b?[c]\\:{0}:"), "a\\*b\\?\\[c\\]\\\\:{0}:");
    }

    #[test]
    fn the_local_denylist_keeps_the_latest_entry_and_prunes_by_the_callers_time() {
        let local = LocalDenylist::new();
        let (a, b) = (SessionId::from_bytes([1; 16]), SessionId::from_bytes([2; 16]));
        let t = |s: i64| Timestamp::from_unix_nanos(s * 1_000_000_000);
        local.add(a, RevocationReason::Logout, t(100));
        local.add(a, RevocationReason::Admin, t(50));
        assert_eq!(local.entries.get(&a).map(|e| *e), Some((RevocationReason::Logout, t(100))), "never shortened");
        local.add(b, RevocationReason::Evicted, t(200));
        local.observe(t(150));
        local.prune();
        assert!(local.entries.get(&a).is_none());
        assert!(local.entries.get(&b).is_some());
        // Within a second of the last observation nothing is written.
        local.observe(t(150).saturating_add(Duration::from_millis(500)));
        assert_eq!(local.latest_now.load(Ordering::Relaxed), t(150).unix_nanos());
    }

    #[test]
    fn denylist_messages_are_parsed_strictly() {
        let local = LocalDenylist::new();
        let id = SessionId::from_bytes([3; 16]);
        let until = String::from_utf8(ts(Timestamp::from_unix_nanos(5))).unwrap();
        for bad in ["", "x|logout|1", &format!("{id}|nonsense|{until}"), &format!("{id}|logout|12")] {
            apply_message(&local, bad);
        }
        assert!(local.entries.is_empty());
        apply_message(&local, &format!("{id}|logout_all|{until}"));
        assert_eq!(local.entries.get(&id).map(|e| e.0), Some(RevocationReason::LogoutAll));
    }
}
