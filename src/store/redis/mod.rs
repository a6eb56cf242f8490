//! [`RedisStore`]: sessions shared by any number of application instances through Redis or
//! Valkey (feature `redis`).
//!
//! Every [`SessionStore`] operation but one is one Lua script run by the server, so each is
//! atomic against every other instance: two instances can never both fill a user's last slot,
//! fork a refresh-token family or bring a revoked session back. The exception is
//! [`SessionStore::update_data`], an optimistic read, patch and versioned write (the patch and
//! its size cap are computed in Rust): no patch is ever lost, and after 64 attempts, each
//! failed because another patch won, it answers [`StoreError::Contended`].
//!
//! Validation ([`SessionStore::touch`]) is a read — one `HGET` of the session, stored as one
//! string — and writes nothing unless the throttled renewal is due; then the touch script
//! renews and writes the requests counted since (see [request counts](#request-counts)). When
//! this store's last read of the session shows the renewal due, the script is sent instead of
//! the read, so a validation is one round trip but for two cases that cost a second: a
//! renewal of a session the store has not read since it last renewed it (the read, then the
//! script), and a token with no session (the read, then its remembered revocation).
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
//! Keys are sharded by user over [`BUCKETS`] (256) buckets. A bucket is nine keys, each
//! `<prefix>:{b<n>}:<name>` (default prefix `sessionkit`); the hash tag `{b<n>}` puts them in
//! one Redis Cluster slot, so a script can update a session, its user's index and the denylist
//! together, while different users spread over every shard. A user's bucket is the top 8 bits
//! of their [`Route`] (12 bits of the SHA-256 of the user id). Session and refresh tokens
//! start with the route, and session ids carry it in their first 12 bits (see
//! [`Route`]), so a lookup by token or id finds its bucket without a scan or an extra round
//! trip. Separate applications use separate prefixes.
//!
//! Every script is passed all nine keys of its bucket in `KEYS` and touches no other key, so
//! it is correct on a Cluster in every state, and proxies that check scripts' keys accept it.
//! A bucket's first login gives each of its keys a placeholder entry, `""` (no digest, id or
//! index member is empty), so that from then on all nine exist and no script empties, and so
//! deletes, one: a script never meets a missing key midway. While a bucket's slot migrates
//! between masters, Redis runs scripts on the source until the first of its keys has moved,
//! then answers `TRYAGAIN`, before the script does anything, until the last has: the
//! operation fails with a [`StoreError`] after the client's retries, never half-done. A
//! validation's read follows its key (`ASK`).
//!
//! Tokens issued for this store by versions before routing (43 characters, no route) are not
//! found: their users sign in again once. Their keys lived under `<prefix>:{0}:`, which no
//! bucket uses; per-session keys expire by themselves, and the two unbounded keys of that
//! layout, `<prefix>:{0}:x` and `<prefix>:{0}:q`, can be deleted after the upgrade.
//!
//! | key | type | holds |
//! |---|---|---|
//! | `s` | hash | the sessions, by the SHA-256 digest of their token (base64url): each one string, its fields each ended by a newline, then the user id (metadata and data as compact JSON, which holds no raw newline) |
//! | `i` | hash | session id → digest |
//! | `u` | sorted set | the user index: one member per session, the user id's length (8 digits), the user id and the digest, all scored 0 so that a user's sessions are one lexical range |
//! | `r` | hash | the refresh tokens (current, and spent ones still recognised), by digest: kind, session id, and for the one spent last when and its sealed successor |
//! | `v` | hash | remembered revocations of session tokens and of their current or last spent refresh tokens, by digest: `reason\|until` (until: the session's absolute deadline) |
//! | `d` | hash | denylist entries, by session id: `reason\|until` (a revocation: every access token) or `below:<generation>\|until` (a rotation: those issued for an earlier generation), until the last access token expires |
//! | `x` | sorted set | the sessions' digests, scored by idle deadline (the sweeper's index) |
//! | `y` | sorted set | the entries of `v` and `d` (`v<digest>`, `d<id>`), scored by until |
//! | `q` | string | the creation sequence (orders logins made in the same instant) |
//!
//! Keys hold digests, never tokens: a dump of Redis cannot be replayed. Nothing expires by
//! itself (Redis before 7.4 cannot expire a hash's fields), so removal is explicit and the
//! indexes are exact. The sweeper removes expired sessions, revocations and denylist entries;
//! without it, each login removes two sessions of its bucket whose idle deadline passed more
//! than [`RedisConfig::expired_retention`] ago, and each revocation up to five revocations and
//! denylist entries whose time has passed, so a bucket never holds more than two sessions
//! beyond its peak of sessions unexpired or expired less than the retention ago, and expired
//! entries never pile up. Until it is removed, an expired session is answered "expired", an
//! expired revocation or denylist entry is ignored.
//!
//! Timestamps are stored as 20-digit strings (Unix nanoseconds + 2⁶³), so that scripts compare
//! them exactly, and always come from the caller's `now`, never from Redis's clock.
//!
//! # Request counts
//!
//! Each store counts the requests it validated in memory and writes them with the next
//! renewal it makes (at most once per [`touch_interval`](crate::SessionConfig::touch_interval)
//! per session), so that a validation is a plain read. Reads through the same store (the
//! validated session, [`SessionStore::get_by_id`], [`SessionStore::list_user`]) include its
//! unwritten counts; other instances and exports see them at most one touch interval of each
//! instance late; counts not yet written are lost if the process stops, and dropped with a
//! session whose deadline passes first. The memory this takes is one entry per session the
//! instance validated since its last renewal, pruned by the sweep.
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
//! Revocations, and rotations asked to end the older access tokens, write the session's entry
//! in `d` and publish `<session id>|<value>` (the entry's new value) on the channel
//! `<prefix>:denylist`. A session has one entry: each write merges with it in the same script
//! ([`DenyEntry::merge`]: a revocation outweighs a rotation, the later rotation wins, the
//! later until is kept). Instances of versions before rotations were denylisted ignore the
//! `below:` entries and messages they cannot read. In
//! [`DenylistMode::Subscribed`] (the default) each instance keeps a local copy of the denylist,
//! fed by that channel, so [`TokenStore::access_denied`] makes no round trip; an access token
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

mod codec;
mod config;
mod conn;
mod denylist;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod scripts;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use redis::{Client, RedisError};

use crate::clock::Timestamp;
use crate::error::StoreError;
use crate::policy::{Limit, LimitPolicy};
use crate::session::{DataPatch, SessionData, SessionId, SessionRecord, UserId};
use crate::store::pending::PendingCounts;
use crate::store::{
    AccessDenial, BackupStore, DataOutcome, DenyEntry, DenyScope, InsertOutcome, Lookup, REFRESH_REUSE_HISTORY,
    RefreshDigests, RefreshOutcome, Revocation, SCAN_PAGE, ScanCursor, ScanPage, SessionStore, StoredItem, Successor,
    TokenStore, TouchPolicy,
};
use crate::token::{Route, TokenDigest};

use codec::{
    array, bytes, corrupt, deny_arg, deny_entry, deny_scope, deny_scope_arg, digest, expiry_reason, field, int, json,
    lookup, optional_record, parse_ts, reason, record, record_of_string, records, tag, text, touch_args, ts,
};
pub use config::{MAX_EXPIRED_RETENTION, MAX_SUBSCRIPTION_CHECK, MAX_TIMEOUT, RedisConfig, RedisConfigError};
use conn::Conn;
pub use denylist::DenylistMode;
use denylist::{LocalDenylist, SubscriberSettings, subscribe_loop};
use scripts::{Bucket, Scripts};

/// A [`SessionStore`] in Redis (or Valkey), shared by every instance that uses the same server
/// and key prefix. Cheap to clone. See the [module documentation](self).
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    conn: Conn,
    /// Every bucket's key base and keys, by bucket number.
    buckets: Vec<Bucket>,
    /// The bucket the next sweep starts at, so that sweeps bounded by `max` visit every one.
    sweep_from: std::sync::atomic::AtomicUsize,
    channel: String,
    config: RedisConfig,
    scripts: Scripts,
    denylist: Option<Arc<LocalDenylist>>,
    subscriber: Option<tokio::task::AbortHandle>,
    /// Requests counted by this instance and not yet written.
    pending: PendingCounts,
    /// With durable revocations, the connection revocations (and their `WAIT`) use: `WAIT`
    /// blocks the connection it is sent on, so it gets one of its own.
    revocations: Option<Conn>,
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
            .field("key_prefix", &self.inner.config.key_prefix)
            .field("denylist", &self.inner.config.denylist)
            .finish_non_exhaustive()
    }
}

/// Attempts of the optimistic [`SessionStore::update_data`] before [`StoreError::Contended`].
const DATA_ATTEMPTS: usize = 64;

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
            ("revocation_wait", config.revocation_wait),
        ] {
            if d.is_zero() {
                return Err(RedisConfigError::ZeroTimeout(name));
            }
            if d > MAX_TIMEOUT {
                return Err(RedisConfigError::TooLong { option: name, max: MAX_TIMEOUT });
            }
        }
        if config.subscription_check > MAX_SUBSCRIPTION_CHECK {
            return Err(RedisConfigError::TooLong { option: "subscription_check", max: MAX_SUBSCRIPTION_CHECK });
        }
        if config.expired_retention > MAX_EXPIRED_RETENTION {
            return Err(RedisConfigError::TooLong { option: "expired_retention", max: MAX_EXPIRED_RETENTION });
        }
        let client = Client::open(config.url.as_str()).map_err(RedisConfigError::Url)?;
        // The pub/sub connection: to the server, or to any seed of a Cluster.
        let mut clients = vec![client.clone()];
        for url in config.cluster_nodes.iter().skip(1) {
            clients.push(Client::open(url.as_str()).map_err(RedisConfigError::Url)?);
        }
        let conn = Conn::new(&config, &client)?;
        let revocations = if config.revocation_replicas > 0 { Some(Conn::new(&config, &client)?) } else { None };
        let buckets: Vec<Bucket> = (0..BUCKETS).map(|b| Bucket::new(&config.key_prefix, b)).collect();
        let channel = format!("{}:denylist", config.key_prefix);
        let (denylist, subscriber) = match config.denylist {
            DenylistMode::Strict => (None, None),
            DenylistMode::Subscribed => {
                let local = Arc::new(LocalDenylist::new(false));
                let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
                let task = tokio::spawn(subscribe_loop(
                    clients,
                    conn.clone(),
                    Arc::clone(&local),
                    SubscriberSettings {
                        deny_keys: buckets.iter().map(|b| b.denylist().to_owned()).collect(),
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
        let sweep_from = std::sync::atomic::AtomicUsize::new(0);
        let pending = PendingCounts::default();
        let inner = Inner {
            client,
            conn,
            buckets,
            sweep_from,
            channel,
            config,
            scripts,
            denylist,
            subscriber,
            pending,
            revocations,
        };
        Ok(Self { inner: Arc::new(inner) })
    }

    /// The configuration the store was built with.
    #[must_use]
    pub fn config(&self) -> &RedisConfig {
        &self.inner.config
    }

    /// Whether the local denylist is synchronised with Redis (always `true` in
    /// [`DenylistMode::Strict`]). While `false`, [`TokenStore::access_denied`] fails closed.
    #[must_use]
    pub fn denylist_synced(&self) -> bool {
        self.inner.denylist.as_ref().is_none_or(|d| d.synced.load(Ordering::Acquire))
    }

    /// The bucket `route` falls in.
    fn bucket_of(&self, route: Route) -> &Bucket {
        &self.inner.buckets[bucket(route)]
    }

    fn note_denied(&self, records: &[SessionRecord], revocation: &Revocation) {
        if let (Some(local), Some(until)) = (&self.inner.denylist, revocation.deny_access_until)
            && until > revocation.at
        {
            for r in records {
                local.add(r.id, DenyEntry { scope: DenyScope::All(revocation.reason), until });
            }
        }
    }

    /// One session removed by id or by digest (one round trip either way).
    async fn remove_one(
        &self,
        route: Route,
        id: Vec<u8>,
        digest: Vec<u8>,
        revocation: Revocation,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let args =
            vec![ts(revocation.at), id, revocation.reason.as_str().as_bytes().to_vec(), deny_arg(&revocation), digest];
        let conn = self.revocation_conn();
        let reply = self.run_on(conn, &self.inner.scripts.remove, bucket(route), args).await?;
        let removed = optional_record(array(&reply)?)?;
        if let Some(r) = &removed {
            self.note_denied(std::slice::from_ref(r), &revocation);
            self.durable().await?;
        }
        Ok(removed)
    }

    /// The connection revocations are made on.
    fn revocation_conn(&self) -> &Conn {
        self.inner.revocations.as_ref().unwrap_or(&self.inner.conn)
    }

    /// With [`RedisConfig::with_durable_revocations`]: waits until the configured number of
    /// replicas (of every master) have every write made so far on the revocations' connection.
    async fn durable(&self) -> Result<(), StoreError> {
        let config = &self.inner.config;
        if config.revocation_replicas == 0 {
            return Ok(());
        }
        let wait_ms = u64::try_from(config.revocation_wait.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut wait = redis::cmd("WAIT");
        wait.arg(config.revocation_replicas).arg(wait_ms);
        let acknowledged: i64 =
            query(self.revocation_conn(), wait, config.revocation_wait.saturating_add(config.operation_timeout))
                .await?;
        if acknowledged < i64::from(config.revocation_replicas) {
            return Err(StoreError::Unavailable(
                format!("the revocation was acknowledged by {acknowledged} of {} replicas", config.revocation_replicas)
                    .into(),
            ));
        }
        Ok(())
    }

    fn retention_ms(&self) -> Vec<u8> {
        let ms = u64::try_from(self.inner.config.expired_retention.as_millis()).unwrap_or(u64::MAX);
        ms.to_string().into_bytes()
    }
}

/// Runs one command on `conn`, failing with [`StoreError::Unavailable`] after `timeout`.
async fn query<T: redis::FromRedisValue>(conn: &Conn, cmd: redis::Cmd, timeout: Duration) -> Result<T, StoreError> {
    match tokio::time::timeout(timeout, conn.query::<T>(&cmd)).await {
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

/// Expired sessions are removed in batches of at most this many per script run, so that a
/// sweep never holds Redis up for long.
const SWEEP_BATCH: usize = 512;

/// How many buckets the keys are spread over: each is one hash tag (`{b<n>}`), so one Redis
/// Cluster slot, and holds the users whose [`Route`] falls in it (a route's top 8 bits).
pub const BUCKETS: usize = 256;

/// A scan cursor's top 8 bits are the bucket, the next 2 which of its hashes is being read,
/// the low 54 that hash's own `HSCAN` cursor.
const BUCKET_CURSOR_SHIFT: u32 = 56;
const HASH_CURSOR_SHIFT: u32 = 54;
const HSCAN_CURSOR_MASK: u64 = (1 << HASH_CURSOR_SHIFT) - 1;

/// The bucket of `route`.
fn bucket(route: Route) -> usize {
    usize::from(route.get() >> 4)
}

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
            record.generation.to_string().into_bytes(),
        ];
        // The user's bucket; a routed token's digest names the same one.
        let route = Route::of_user(&record.user);
        let reply = self.run(&self.inner.scripts.insert, bucket(route), args).await?;
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
        let route = digest.route();
        let d = digest.to_base64();
        // The common case is one read of the session, a single string. Only a miss reads its
        // remembered revocation as well. A renewal due runs the script instead: straight away
        // when this instance's last read of the session says it is due (one round trip; the
        // script checks again), else after the read has shown it.
        if !self.inner.pending.renewal_due(digest, now, policy.interval) {
            let timeout = self.inner.config.operation_timeout;
            let mut get = redis::cmd("HGET");
            get.arg(self.bucket_of(route).sessions()).arg(&d);
            let Some(stored) = query::<Option<Vec<u8>>>(&self.inner.conn, get, timeout).await? else {
                let mut get = redis::cmd("HGET");
                get.arg(self.bucket_of(route).revocations()).arg(&d);
                return Ok(match query::<Option<String>>(&self.inner.conn, get, timeout).await? {
                    None => Lookup::NotFound,
                    Some(v) => {
                        let (why, until) = v.split_once('|').ok_or_else(|| corrupt("revocation"))?;
                        if now < parse_ts(until.as_bytes())? { Lookup::Revoked(reason(why)?) } else { Lookup::NotFound }
                    }
                });
            };
            if let Some(answer) = self.inner.pending.answer_read(record_of_string(&stored)?, now, &policy) {
                return Ok(answer);
            }
        }
        // A renewal is due: write this instance's counts with it (kept if the script fails).
        let [due, idle, idle_rm, _] = touch_args(now, &policy);
        let renewal = |count: u64| {
            let args = vec![ts(now), d.clone().into_bytes(), due, idle, idle_rm, count.to_string().into_bytes()];
            self.run(&self.inner.scripts.touch, bucket(route), args)
        };
        let reply = self.inner.pending.renew_with(digest, now, policy.count_request, renewal).await?;
        lookup(array(&reply)?)
    }

    async fn get_by_id(&self, id: &SessionId) -> Result<Option<SessionRecord>, StoreError> {
        let route = id.route();
        let id = id.to_string();
        let args = vec![Vec::new(), id.clone().into_bytes()];
        let reply = self.run(&self.inner.scripts.get, bucket(route), args).await?;
        Ok(optional_record(array(&reply)?)?.map(|r| self.inner.pending.shown(r)))
    }

    async fn rotate(
        &self,
        old: &TokenDigest,
        new: TokenDigest,
        refresh: Option<TokenDigest>,
        now: Timestamp,
        deny_access_until: Option<Timestamp>,
    ) -> Result<Lookup, StoreError> {
        let route = old.route();
        let old_digest = *old;
        let old = old.to_base64();
        let refresh = refresh.map(|r| r.to_base64().into_bytes()).unwrap_or_default();
        let deny = deny_access_until.map(ts).unwrap_or_default();
        let args = vec![ts(now), old.clone().into_bytes(), new.to_base64().into_bytes(), refresh, deny];
        let reply = self.run(&self.inner.scripts.rotate, bucket(route), args).await?;
        let reply = array(&reply)?;
        if tag(reply)? == "conflict" {
            return Err(StoreError::Conflict);
        }
        match lookup(reply)? {
            Lookup::Live(r) => {
                // This instance's copy knows at once (the message follows for the others).
                if let (Some(local), Some(until)) = (&self.inner.denylist, deny_access_until)
                    && until > now
                {
                    local.add(r.id, DenyEntry { scope: DenyScope::Below(r.generation), until });
                }
                // The counts not yet written follow the session to its new token.
                self.inner.pending.rekey(&old_digest, new);
                Ok(Lookup::Live(self.inner.pending.shown(r)))
            }
            other => Ok(other),
        }
    }

    async fn update_data(
        &self,
        id: &SessionId,
        patch: &DataPatch,
        max_bytes: usize,
        now: Timestamp,
    ) -> Result<DataOutcome, StoreError> {
        let b = bucket(id.route());
        let id = id.to_string();
        // Optimistic: read the data and its version, patch here (the size cap is measured on
        // serde's JSON, which Lua's cjson would not reproduce), write if the version is
        // unchanged. Each failed attempt means another patch was applied meanwhile, so up to
        // DATA_ATTEMPTS concurrent patches of one session all succeed.
        for _ in 0..DATA_ATTEMPTS {
            let reply = self.run(&self.inner.scripts.data_get, b, vec![ts(now), id.clone().into_bytes()]).await?;
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
            let reply = self.run(&self.inner.scripts.data_set, b, args).await?;
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
        self.remove_one(id.route(), id.to_string().into_bytes(), Vec::new(), revocation).await
    }

    async fn remove_by_digest(
        &self,
        digest: &TokenDigest,
        revocation: Revocation,
    ) -> Result<Option<SessionRecord>, StoreError> {
        self.remove_one(digest.route(), Vec::new(), digest.to_base64().into_bytes(), revocation).await
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
        let conn = self.revocation_conn();
        let reply = self.run_on(conn, &self.inner.scripts.remove_user, bucket(Route::of_user(user)), args).await?;
        let removed = records(&reply)?;
        self.note_denied(&removed, &revocation);
        if !removed.is_empty() {
            self.durable().await?;
        }
        Ok(removed)
    }

    async fn list_user(&self, user: &UserId, now: Timestamp) -> Result<Vec<SessionRecord>, StoreError> {
        let args = vec![ts(now), user.as_str().as_bytes().to_vec()];
        let reply = self.run(&self.inner.scripts.list_user, bucket(Route::of_user(user)), args).await?;
        let mut live: Vec<SessionRecord> = records(&reply)?.into_iter().map(|r| self.inner.pending.shown(r)).collect();
        live.sort_by_key(|r| (r.created_at, r.id));
        Ok(live)
    }

    async fn remove_expired(&self, now: Timestamp, max: usize) -> Result<Vec<SessionRecord>, StoreError> {
        if let Some(local) = &self.inner.denylist {
            local.entries.retain(|_, e| e.until > now);
        }
        self.inner.pending.prune(now);
        let mut removed = Vec::new();
        // Bucket by bucket, starting where the last sweep stopped, until `max` or every bucket.
        let start = self.inner.sweep_from.load(Ordering::Relaxed);
        for step in 0..BUCKETS {
            let b = (start + step) % BUCKETS;
            loop {
                if removed.len() >= max {
                    self.inner.sweep_from.store(b, Ordering::Relaxed);
                    return Ok(removed);
                }
                let batch = (max - removed.len()).min(SWEEP_BATCH);
                let args = vec![ts(now), batch.to_string().into_bytes()];
                let reply = self.run(&self.inner.scripts.remove_expired, b, args).await?;
                let reply = array(&reply)?;
                let count = |i| usize::try_from(int(field(reply, i)?)?).map_err(|_| corrupt("sweep count"));
                let (examined, stale, pruned) = (count(0)?, count(2)?, count(3)?);
                let found = records(field(reply, 1)?)?;
                let no_progress = found.is_empty() && stale == 0;
                removed.extend(found);
                // A full batch of candidates none of which has expired yet (the index's
                // millisecond scores round up to `now`) would be examined again and again:
                // next bucket. (Index entries without a session are progress: they leave.)
                // Expired revocations and denylist entries go in batches of the same size.
                if (examined < batch || no_progress) && pruned < batch {
                    break;
                }
            }
        }
        self.inner.sweep_from.store(start, Ordering::Relaxed);
        Ok(removed)
    }
}

impl TokenStore for RedisStore {
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
        let route = presented.route();
        let reply = self.run(&self.inner.scripts.refresh, bucket(route), args).await?;
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

    async fn access_denied(
        &self,
        id: &SessionId,
        generation: u64,
        now: Timestamp,
    ) -> Result<Option<AccessDenial>, StoreError> {
        if let Some(local) = &self.inner.denylist {
            if !local.synced.load(Ordering::Acquire) {
                return Err(StoreError::Unavailable("the Redis denylist subscription is resynchronising".into()));
            }
            local.observe(now);
            return Ok(local.refuses(id, generation, now));
        }
        let mut get = redis::cmd("HGET");
        get.arg(self.bucket_of(id.route()).denylist()).arg(id.to_string());
        match query::<Option<String>>(&self.inner.conn, get, self.inner.config.operation_timeout).await? {
            None => Ok(None),
            Some(v) => Ok(deny_entry(&v)?.refuses(generation, now)),
        }
    }
}

impl BackupStore for RedisStore {
    async fn scan(&self, cursor: ScanCursor) -> Result<ScanPage, StoreError> {
        // The cursor is the bucket, the hash of that bucket being read (sessions, remembered
        // revocations, denylist entries) and that hash's own `HSCAN` cursor. Each page is one
        // script on one bucket, so it goes to the master holding it, Cluster or not.
        let raw = cursor.raw();
        let b = usize::try_from(raw >> BUCKET_CURSOR_SHIFT).map_err(|_| corrupt("scan cursor"))?;
        if b >= BUCKETS {
            return Ok(ScanPage { items: Vec::new(), next: None });
        }
        let at = (raw >> HASH_CURSOR_SHIFT) & 3;
        let args = vec![
            at.to_string().into_bytes(),
            (raw & HSCAN_CURSOR_MASK).to_string().into_bytes(),
            SCAN_PAGE.to_string().into_bytes(),
        ];
        let reply = self.run(&self.inner.scripts.scan, b, args).await?;
        let reply = array(&reply)?;
        let at = u64::try_from(int(field(reply, 0)?)?).map_err(|_| corrupt("scan cursor"))?;
        let next: u64 = text(field(reply, 1)?)?.parse().map_err(|_| corrupt("scan cursor"))?;
        let mut items = Vec::new();
        for item in array(field(reply, 2)?)? {
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
                "d" => StoredItem::from_deny_entry(
                    text(field(f, 1)?)?.parse().map_err(|_| corrupt("session id"))?,
                    DenyEntry { scope: deny_scope(text(field(f, 2)?)?)?, until: parse_ts(bytes(field(f, 3)?)?)? },
                ),
                _ => return Err(corrupt("scan item")),
            });
        }
        // Bucket numbers are below 256, so the shifts lose nothing.
        let next = match at {
            // The bucket is done: the next one, if any.
            3 => (b + 1 < BUCKETS).then(|| ((b + 1) as u64) << BUCKET_CURSOR_SHIFT),
            0..=2 if next <= HSCAN_CURSOR_MASK => {
                Some(((b as u64) << BUCKET_CURSOR_SHIFT) | (at << HASH_CURSOR_SHIFT) | next)
            }
            _ => return Err(corrupt("scan cursor")),
        };
        Ok(ScanPage { items, next: next.map(ScanCursor::from_raw) })
    }

    async fn restore(&self, items: Vec<StoredItem>, now: Timestamp) -> Result<(), StoreError> {
        // Entries over by `now` are skipped, or by the latest activity among the items if that
        // is later (a clock behind the exporter's), so that no entry (a denylist entry in
        // particular) is dropped before its time.
        let reference = items
            .iter()
            .filter_map(|i| match i {
                StoredItem::Session { record, .. } => Some(record.last_seen_at),
                _ => None,
            })
            .fold(now, Timestamp::max);
        // Every item goes to its bucket: a session to its user's (where its routed token and
        // id lead), a revocation to its digest's, a denylist entry to its session id's.
        let mut buckets: Vec<Vec<Vec<u8>>> = vec![Vec::new(); BUCKETS];
        let mut keys = std::collections::HashSet::new();
        let mut denied = Vec::new();
        for item in &items {
            match item {
                StoredItem::Session { record, refresh } => {
                    let mut fresh = vec![format!("s:{}", record.digest.to_base64()), format!("i:{}", record.id)];
                    if let Some(r) = refresh {
                        fresh.extend(
                            std::iter::once(&r.current).chain(&r.spent).map(|d| format!("r:{}", d.to_base64())),
                        );
                    }
                    for key in fresh {
                        if !keys.insert(key) {
                            return Err(StoreError::Conflict);
                        }
                    }
                    buckets[bucket(Route::of_user(&record.user))].extend([
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
                        record.generation.to_string().into_bytes(),
                    ]);
                }
                StoredItem::Revoked { digest, reason, until } => {
                    buckets[bucket(digest.route())].extend([
                        b"v".to_vec(),
                        digest.to_base64().into_bytes(),
                        reason.as_str().as_bytes().to_vec(),
                        ts(*until),
                    ]);
                }
                StoredItem::Denied { .. } | StoredItem::Superseded { .. } => {
                    let Some((session_id, entry)) = item.deny_entry() else { continue };
                    denied.push((session_id, entry));
                    buckets[bucket(session_id.route())].extend([
                        b"d".to_vec(),
                        session_id.to_string().into_bytes(),
                        deny_scope_arg(entry.scope),
                        ts(entry.until),
                    ]);
                }
            }
        }
        // All or nothing: every bucket is checked before any is written. (A write racing the
        // restore between the two passes can still make one bucket refuse: restore into a
        // store that is not serving yet.) Each bucket is one script, which may take a while
        // for a large import (Redis answers nothing else meanwhile).
        let per_batch = u32::try_from(1 + items.len() / 10_000).unwrap_or(u32::MAX);
        let timeout =
            self.inner.config.operation_timeout.saturating_add(Duration::from_secs(1).saturating_mul(per_batch));
        for mode in ["check", "write"] {
            for (b, items) in buckets.iter().enumerate().filter(|(_, items)| !items.is_empty()) {
                let mut args = vec![ts(reference), mode.as_bytes().to_vec()];
                args.extend(items.iter().cloned());
                let reply = self.run_long(&self.inner.scripts.restore, b, args, timeout).await?;
                match tag(array(&reply)?)? {
                    "ok" => {}
                    "conflict" => return Err(StoreError::Conflict),
                    _ => return Err(corrupt("restore reply")),
                }
            }
        }
        if let Some(local) = &self.inner.denylist {
            for (id, entry) in denied {
                local.add(id, entry);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn out_of_range_durations_are_refused_before_any_connection() {
        // Port 1 on loopback: nothing is contacted, the check comes first.
        let base = RedisConfig::new("redis://127.0.0.1:1/");
        let refused = [
            (base.clone().with_expired_retention(Duration::MAX), "expired_retention"),
            (base.clone().with_operation_timeout(Duration::MAX), "operation_timeout"),
            (base.clone().with_connect_timeout(MAX_TIMEOUT + Duration::from_nanos(1)), "connect_timeout"),
            (
                base.clone().with_subscription_check(MAX_SUBSCRIPTION_CHECK + Duration::from_millis(1)),
                "subscription_check",
            ),
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
}
