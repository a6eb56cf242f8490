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
mod denylist;
mod scripts;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, RedisError};

use crate::clock::Timestamp;
use crate::error::{RevocationReason, StoreError};
use crate::policy::{Limit, LimitPolicy};
use crate::session::{DataPatch, SessionData, SessionId, SessionRecord, UserId};
use crate::store::{
    BackupStore, DataOutcome, InsertOutcome, Lookup, REFRESH_REUSE_HISTORY, RefreshDigests, RefreshOutcome, Revocation,
    SCAN_PAGE, ScanCursor, ScanPage, SessionStore, StoredItem, Successor, TokenStore, TouchPolicy,
};
use crate::token::TokenDigest;

use codec::{
    array, bytes, corrupt, deny_arg, digest, expiry_reason, field, glob_escape, int, json, lookup, optional_record,
    parse_ts, reason, record, records, tag, text, touch_args, ts,
};
pub use config::{MAX_EXPIRED_RETENTION, MAX_TIMEOUT, RedisConfig, RedisConfigError};
pub use denylist::DenylistMode;
use denylist::{LocalDenylist, SubscriberSettings, subscribe_loop};
use scripts::Scripts;

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
                let local = Arc::new(LocalDenylist::new(false));
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
    /// [`DenylistMode::Strict`]). While `false`, [`TokenStore::access_denied`] fails closed.
    #[must_use]
    pub fn denylist_synced(&self) -> bool {
        self.inner.denylist.as_ref().is_none_or(|d| d.synced.load(Ordering::Acquire))
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

    async fn list_user(&self, user: &UserId, now: Timestamp) -> Result<Vec<SessionRecord>, StoreError> {
        let args = vec![ts(now), user.as_str().as_bytes().to_vec()];
        let reply = self.run(&self.inner.scripts.list_user, &self.key("u", user.as_str()), args).await?;
        let mut live = records(&reply)?;
        live.sort_by_key(|r| (r.created_at, r.id));
        Ok(live)
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
}

impl BackupStore for RedisStore {
    async fn scan(&self, cursor: ScanCursor) -> Result<ScanPage, StoreError> {
        let pattern = format!("{}*", glob_escape(&self.inner.base));
        let args =
            vec![cursor.raw().to_string().into_bytes(), SCAN_PAGE.to_string().into_bytes(), pattern.into_bytes()];
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
        Ok(ScanPage { items, next: (next != 0).then_some(ScanCursor::from_raw(next)) })
    }

    async fn restore(&self, items: Vec<StoredItem>, now: Timestamp) -> Result<(), StoreError> {
        // TTLs are counted from `now`, or from the latest activity among the items if that is
        // later (a clock behind the exporter's), so that no entry (a denylist entry in
        // particular) can expire before its time.
        let reference = items
            .iter()
            .filter_map(|i| match i {
                StoredItem::Session { record, .. } => Some(record.last_seen_at),
                _ => None,
            })
            .fold(now, Timestamp::max);
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
}
