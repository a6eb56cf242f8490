//! [`SqlStore`]: sessions in PostgreSQL (feature `postgres`) or SQLite (feature `sqlite`),
//! through sqlx on tokio.
//!
//! Pick PostgreSQL when the application already runs one and wants sessions beside its data,
//! shared by any number of instances, with backups and durability it already has; pick SQLite
//! for a single process (or a few on one machine) that should survive restarts without a
//! server. For the lowest validation latency across instances, [`RedisStore`](crate::store::redis)
//! remains the better fit.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use sessionkit::store::sql::{SqlConfig, SqlStore};
//! use sessionkit::{SessionConfig, SessionManager};
//!
//! let store = SqlStore::connect(SqlConfig::new("sqlite://sessions.db")).await?;
//! let manager = SessionManager::new(store, SessionConfig::default());
//! # Ok(()) }
//! ```
//!
//! # Schema
//!
//! Created and upgraded by embedded migrations (`migrations/postgres`, `migrations/sqlite`)
//! when [`SqlStore::connect`] runs. Tables hold token digests (base64url SHA-256), never tokens;
//! timestamps are Unix nanoseconds (`BIGINT`), metadata and data JSON text.
//!
//! | table | key | holds | indexes |
//! |---|---|---|---|
//! | `sk_sessions` | `seq` (creation order) | a session; `digest` and `id` unique; `generation` (rotations so far, `BIGINT NOT NULL DEFAULT 0`) | `(user_id, created_at)`, `idle_deadline`, `absolute_deadline` |
//! | `sk_users` | `user_id` | one row per user who has logged in (kept: a few dozen bytes each): what PostgreSQL locks to serialise a user's writers | |
//! | `sk_refresh` | `digest` | refresh tokens: current (`spent_at` null) and spent, `n` orders the family; the token spent last keeps its sealed successor | `(session_id, n)` |
//! | `sk_revoked` | `digest` | remembered revocations: reason, until the session's absolute deadline | `until_at` |
//! | `sk_denied` | `session_id` | the access-token denylist, one row per session ([`DenyEntry`]): a revocation (`reason` set, `below_generation` null: every access token refused) or a rotation's entry (`reason` null, `below_generation` = G: tokens of generations below G refused; a `CHECK` allows exactly one), until the last access token it covers expires | `until_at` |
//!
//! The schema's versions are sqlx migrations, applied in order on connect: `20261130000000`
//! created the tables; `20261201000000` added `sk_sessions.generation` (rows of before read as
//! generation 0) and `sk_denied.below_generation` with a nullable `reason` (SQLite rebuilds
//! `sk_denied` for that, keeping its rows). A database of the previous version is upgraded by
//! the first [`SqlStore::connect`] of this one; instances of the previous version must not
//! share a database with this one (they cannot read rotation entries).
//!
//! # Statements per operation
//!
//! Writes are one transaction each. On PostgreSQL a transaction that changes a user's sessions
//! first locks the user's `sk_users` row (`INSERT … ON CONFLICT DO NOTHING`, then
//! `SELECT … FOR UPDATE`), so the limit, rotations, refresh rotation and revoke-all are atomic
//! per user across instances; on SQLite every write transaction is `BEGIN IMMEDIATE`, which
//! excludes every other writer of the file.
//!
//! | operation | statements |
//! |---|---|
//! | `touch` | **one** `SELECT … WHERE digest = $d` when no renewal is due: the request is counted in the store's memory (see below). When a renewal is due, **one** `UPDATE` (without the `SELECT` when this store's last read of the session shows the renewal due; after it otherwise): `UPDATE sk_sessions SET request_count = request_count + $n, last_seen_at = CASE …, idle_deadline = CASE … WHERE digest = $d AND $now < idle_deadline AND $now < absolute_deadline RETURNING …` writes the counts and renews (computed in SQL, so two instances renewing at once never move a deadline back). Only when that matches nothing, a `SELECT` tells expired from unknown and a `SELECT` on `sk_revoked` revoked from unknown |
//! | `insert` | lock user; with a limit, `SELECT` the user's sessions (index on `user_id`), delete the expired ones, evict with [`crate::policy::select_evictions`]; `INSERT` session (and refresh token). A unique violation is [`StoreError::Conflict`] |
//! | `rotate` | lock user; `UPDATE sk_sessions SET digest, generation = generation + 1 … RETURNING generation`; with `deny_access_until`, the merged denylist upsert (below); with a refresh token, replace the family |
//! | `rotate_refresh` | find the refresh row, lock user; current: mark spent with the sealed successor, insert the successor, trim the history, renew; spent last within grace: answer the stored successor; older: remove the session as reuse |
//! | `remove`, `remove_by_digest`, `remove_user` | lock user; per session: tombstones in `sk_revoked`, the merged denylist upsert, `DELETE` refresh tokens and session |
//! | `update_data` | `SELECT … FOR UPDATE` the row (PostgreSQL), patch in Rust, `UPDATE` |
//! | `list_user` | one `SELECT` by `user_id` |
//! | `remove_expired` | in batches of 512: `DELETE FROM sk_sessions WHERE seq IN (SELECT seq … WHERE idle_deadline <= $now OR absolute_deadline <= $now LIMIT $n [FOR UPDATE SKIP LOCKED]) RETURNING …` (the two deadline indexes: cost grows with what expired), then their refresh rows; forgotten revocations and denylist rows by their `until_at` index |
//! | `access_denied` | none: the local copy ([`DenylistMode::Subscribed`], the default); one `SELECT` by primary key ([`DenylistMode::Strict`]) |
//! | `scan` | keyset pages by `seq` over sessions (with their refresh rows), revocations, denylist |
//! | `restore` | one transaction of `INSERT`s (denylist entries: the merged upsert); any unique violation rolls all of it back |
//!
//! # Request counts
//!
//! A validation with no renewal due writes nothing: each store counts its requests in memory
//! and writes the counts with the next renewal it makes (at most once per
//! [`touch_interval`](crate::SessionConfig::touch_interval) per session). Reads through the
//! same store ([`SessionStore::get_by_id`], [`SessionStore::list_user`], the validated
//! session) include its unwritten counts; reads through another instance, and exports, lag by
//! at most one touch interval of each instance's requests. The counts of a session whose
//! deadline passes before the instance renews it again are dropped with it, and counts not
//! yet written are lost if the process stops. The memory this takes is one entry per session
//! the instance validated since its last renewal, pruned by the sweep.
//!
//! # The access-token denylist
//!
//! Revocations (and rotations given `deny_access_until`) upsert the session's `sk_denied` row
//! in one statement, `INSERT … ON CONFLICT (session_id) DO UPDATE SET reason = CASE …,
//! below_generation = CASE …, until_at = CASE … RETURNING …`, which merges the new entry with
//! the row exactly as [`DenyEntry::merge`] does (a revocation outweighs a rotation, two
//! rotations keep the higher generation, the later `until` is kept; a row whose `until` has
//! passed counts as none). On PostgreSQL the merged row is announced with
//! `pg_notify('sessionkit_denylist', payload)` in the same transaction (so it is delivered
//! exactly when it commits), the payload being `id|reason|until` for a revocation (the format
//! of earlier versions) and `id|below:G|until` for a rotation's entry (`G` plain decimal
//! digits; `until` in Unix nanoseconds). A payload (or row) that is not exactly one of these is
//! ignored; listeners merge what they receive into their copy. In [`DenylistMode::Subscribed`] (the default) each store
//! keeps a local copy, so [`TokenStore::access_denied`] runs no statement: a background task
//! `LISTEN`s, reads the whole table back on that same connection (nothing committed in between
//! is missed), and applies notifications; it sends itself a heartbeat every
//! [`SqlConfig::subscription_check`] (1 s), and when the connection drops or a heartbeat does
//! not come back it marks the copy unsynchronised, so that every `access_denied` fails closed
//! with [`StoreError::Unavailable`] until it has listened again and re-read the table. On SQLite
//! the copy is read at start-up and updated by the store's own writes, which assumes one process
//! writes the file; [`DenylistMode::Strict`] reads the table on every check instead.
//!
//! # Failure behaviour
//!
//! Every operation is bounded by [`SqlConfig::operation_timeout`] (1 second by default),
//! waiting for a pooled connection included: an unreachable database answers
//! [`StoreError::Unavailable`] within it, so requests fail closed and do not pile up. The pool
//! checks connections before handing them out and opens new ones as needed, so once the
//! database is back operations succeed again without a restart. An operation cut short by the
//! timeout rolls its transaction back.

mod codec;
mod config;
mod denylist;
mod ops;
mod schema;

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use crate::store::pending::PendingCounts;
use sqlx::AnyPool;
use sqlx::Row;

use crate::clock::Timestamp;
use crate::error::{RevocationReason, StoreError};
use crate::expiry;
use crate::policy::{Candidate, Limit, select_evictions};
use crate::session::{DataPatch, SessionId, SessionRecord, UserId};
use crate::store::{
    AccessDenial, BackupStore, DataOutcome, DenyEntry, DenyScope, InsertOutcome, Lookup, REFRESH_REUSE_HISTORY,
    RefreshDigests, RefreshOutcome, Revocation, SCAN_PAGE, ScanCursor, ScanPage, SessionStore, StoredItem, Successor,
    TokenStore, TouchPolicy,
};
use crate::token::TokenDigest;

use codec::{COLS, corrupt, deny_entry, digest, json, nanos, reason, record, record_at, sql_error};
pub use config::{DenylistMode, MAX_SUBSCRIPTION_CHECK, MAX_TIMEOUT, SqlConfig, SqlConnectError};
use denylist::LocalDenylist;
use ops::{Tx, deny, drop_session, gone, insert_session, lock_user, locked_session, remember, renewed, write_renewal};
use schema::Dialect;

/// A [`SessionStore`] (with [`TokenStore`] and [`BackupStore`]) in PostgreSQL or SQLite.
/// Cheap to clone (the pool is shared). See the [module documentation](self).
#[derive(Clone)]
pub struct SqlStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: AnyPool,
    dialect: Dialect,
    config: SqlConfig,
    /// The local copy of the denylist ([`DenylistMode::Subscribed`]).
    denylist: Option<Arc<LocalDenylist>>,
    /// The PostgreSQL listener task, stopped with the store.
    listener: Option<tokio::task::AbortHandle>,
    /// Requests counted by this instance and not yet written.
    pending: PendingCounts,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(task) = &self.listener {
            task.abort();
        }
    }
}

impl std::fmt::Debug for SqlStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStore")
            .field("dialect", &self.inner.dialect)
            .field("url", &self.inner.config.redacted_url())
            .finish_non_exhaustive()
    }
}

/// Expired sessions are removed in transactions of at most this many.
const SWEEP_BATCH: usize = 512;

/// The validation statement: count, renew if due (`$3` is `now - interval`), refuse expired
/// sessions, in one round trip. `$4`/`$5` are `now + idle` for ordinary and remember-me
/// sessions; the renewed deadline is capped at the absolute one and never moves back.
static TOUCH: LazyLock<String> = LazyLock::new(|| {
    let due = "$1 >= last_seen_at AND last_seen_at <= $3";
    let candidate = "(CASE WHEN remember_me <> 0 THEN $5 ELSE $4 END)";
    let capped = format!("(CASE WHEN {candidate} < absolute_deadline THEN {candidate} ELSE absolute_deadline END)");
    format!(
        "UPDATE sk_sessions SET request_count = request_count + $2, \
         last_seen_at = CASE WHEN {due} THEN $1 ELSE last_seen_at END, \
         idle_deadline = CASE WHEN {due} AND {capped} > idle_deadline THEN {capped} ELSE idle_deadline END \
         WHERE digest = $6 AND $1 < absolute_deadline AND $1 < idle_deadline RETURNING {COLS}"
    )
});

/// A session by its token digest.
static BY_DIGEST: LazyLock<String> = LazyLock::new(|| format!("SELECT {COLS} FROM sk_sessions WHERE digest = $1"));

/// The session columns qualified with `s.`, for joins.
static S_COLS: LazyLock<String> =
    LazyLock::new(|| COLS.split(", ").map(|c| format!("s.{}", c.trim())).collect::<Vec<_>>().join(", "));

impl SqlStore {
    /// Connects to `config.url`, creating or upgrading the schema. Unlike
    /// `RedisStore::connect`, this needs the database up (to migrate);
    /// afterwards an unreachable database only makes operations fail with
    /// [`StoreError::Unavailable`] until it is back. In [`DenylistMode::Subscribed`] on
    /// PostgreSQL this waits (at most the operation timeout) for the first denylist
    /// synchronisation, and a background task keeps the copy current; each such task sends one
    /// heartbeat notification per [`SqlConfig::subscription_check`], which every listening
    /// instance receives.
    ///
    /// # Panics
    /// Outside a tokio runtime (the pool and the listener run on it).
    ///
    /// # Errors
    /// [`SqlConnectError`] if the URL or an option is invalid, or the database cannot be
    /// reached or migrated within the operation timeout.
    pub async fn connect(config: SqlConfig) -> Result<Self, SqlConnectError> {
        if config.operation_timeout.is_zero() || config.operation_timeout > MAX_TIMEOUT {
            return Err(SqlConnectError::Timeout);
        }
        if config.max_connections == 0 {
            return Err(SqlConnectError::Pool);
        }
        if config.subscription_check.is_zero() || config.subscription_check > MAX_SUBSCRIPTION_CHECK {
            return Err(SqlConnectError::Timeout);
        }
        let dialect = Dialect::of(&config.url)?;
        let pool = schema::open(&config, dialect).await?;
        let (denylist, listener) = match config.denylist {
            DenylistMode::Strict => (None, None),
            DenylistMode::Subscribed => Self::subscribe(&config, dialect, &pool).await?,
        };
        Ok(Self {
            inner: Arc::new(Inner { pool, dialect, config, denylist, listener, pending: PendingCounts::default() }),
        })
    }

    /// Starts the local denylist: on PostgreSQL the listener task (waiting at most the
    /// operation timeout for its first synchronisation; until then `access_denied` fails
    /// closed), on SQLite a copy of the table, kept current by this store's own writes.
    async fn subscribe(
        config: &SqlConfig,
        dialect: Dialect,
        pool: &AnyPool,
    ) -> Result<(Option<Arc<LocalDenylist>>, Option<tokio::task::AbortHandle>), SqlConnectError> {
        match dialect {
            #[cfg(feature = "postgres")]
            Dialect::Postgres => {
                let local = Arc::new(LocalDenylist::new(false));
                let task = tokio::spawn(denylist::listen_loop(
                    config.url.clone(),
                    pool.clone(),
                    Arc::clone(&local),
                    config.subscription_check,
                ));
                let waited = tokio::time::timeout(config.operation_timeout, async {
                    while !local.synced.load(std::sync::atomic::Ordering::Acquire) {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                })
                .await;
                let _ = waited;
                Ok((Some(local), Some(task.abort_handle())))
            }
            #[cfg(feature = "sqlite")]
            Dialect::Sqlite => {
                let local = Arc::new(LocalDenylist::new(true));
                let rows = sqlx::query(denylist::SELECT_ALL)
                    .fetch_all(pool)
                    .await
                    .map_err(|e| SqlConnectError::Connect(Box::new(e)))?;
                for row in &rows {
                    let (Ok(id), Ok(why), Ok(below), Ok(until)) = (
                        row.try_get::<String, _>(0),
                        row.try_get::<Option<String>, _>(1),
                        row.try_get::<Option<i64>, _>(2),
                        row.try_get::<i64, _>(3),
                    ) else {
                        continue;
                    };
                    denylist::add_row(&local, &id, why.as_deref(), below, until);
                }
                let _ = config;
                Ok((Some(local), None))
            }
        }
    }

    /// Whether the local denylist is synchronised (always `true` in [`DenylistMode::Strict`]
    /// and on SQLite). While `false`, [`TokenStore::access_denied`] fails closed.
    #[must_use]
    pub fn denylist_synced(&self) -> bool {
        self.inner.denylist.as_ref().is_none_or(|d| d.synced.load(std::sync::atomic::Ordering::Acquire))
    }

    /// Adds what a committed revocation denylisted to the local copy (the listener would bring
    /// it too on PostgreSQL; this makes it immediate on this instance).
    fn note_denied(&self, records: &[SessionRecord], revocation: &Revocation) {
        if let (Some(local), Some(until)) = (&self.inner.denylist, revocation.deny_access_until)
            && until > revocation.at
        {
            for r in records {
                local.add(r.id, DenyEntry { scope: DenyScope::All(revocation.reason), until });
            }
        }
    }

    /// The configuration the store was built with.
    #[must_use]
    pub fn config(&self) -> &SqlConfig {
        &self.inner.config
    }

    /// Runs `op` within the operation timeout.
    async fn bounded<T>(&self, op: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
        self.bounded_for(self.inner.config.operation_timeout, op).await
    }

    async fn bounded_for<T>(
        &self,
        timeout: Duration,
        op: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(timeout, op).await {
            Ok(r) => r,
            Err(elapsed) => Err(StoreError::Unavailable(Box::new(elapsed))),
        }
    }

    /// A write transaction: `BEGIN` on PostgreSQL (users are locked one by one), `BEGIN
    /// IMMEDIATE` on SQLite (the database's write lock, taken up front so that two
    /// transactions never both read and then fail to upgrade).
    async fn begin(&self) -> Result<Tx, StoreError> {
        match self.inner.dialect {
            #[cfg(feature = "postgres")]
            Dialect::Postgres => self.inner.pool.begin().await.map_err(sql_error),
            #[cfg(feature = "sqlite")]
            Dialect::Sqlite => self.inner.pool.begin_with("BEGIN IMMEDIATE").await.map_err(sql_error),
        }
    }

    /// `" FOR UPDATE"` on PostgreSQL, nothing on SQLite (whose transaction excludes writers).
    fn for_update(&self) -> &'static str {
        match self.inner.dialect {
            #[cfg(feature = "postgres")]
            Dialect::Postgres => " FOR UPDATE",
            #[cfg(feature = "sqlite")]
            Dialect::Sqlite => "",
        }
    }

    /// The session whose token has `digest`, if stored.
    async fn by_digest(&self, digest: &TokenDigest) -> Result<Option<SessionRecord>, StoreError> {
        let row = sqlx::query(&BY_DIGEST)
            .bind(digest.to_base64())
            .fetch_optional(&self.inner.pool)
            .await
            .map_err(sql_error)?;
        row.map(|row| record(&row).map(|(_, r)| r)).transpose()
    }

    async fn lookup_miss(&self, digest: &TokenDigest, now: Timestamp) -> Result<Option<Lookup>, StoreError> {
        if let Some(r) = self.by_digest(digest).await? {
            return Ok(match expiry::check(now, r.idle_deadline, r.absolute_deadline) {
                Err(reason) => Some(Lookup::Expired { reason, record: Box::new(r) }),
                // Inserted or restored between the two statements: look again.
                Ok(()) => None,
            });
        }
        Ok(Some(match gone(&self.inner.pool, digest, now).await? {
            Some(reason) => Lookup::Revoked(reason),
            None => Lookup::NotFound,
        }))
    }

    async fn touch_once(
        &self,
        digest: &TokenDigest,
        now: Timestamp,
        policy: TouchPolicy,
    ) -> Result<Lookup, StoreError> {
        // No renewal due: one read answers, and the request is counted here, to be written
        // with the next renewal (`pending`); a validation that writes nothing costs the
        // database no commit. When this instance's last read of the session says the renewal
        // is due, the write goes first (it checks again).
        if !self.inner.pending.renewal_due(digest, now, policy.interval)
            && let Some(r) = self.by_digest(digest).await?
            && let Some(answer) = self.inner.pending.answer_read(r, now, &policy)
        {
            return Ok(answer);
        }
        // A renewal is due (or the session is missing): write this instance's counts with it
        // (kept if the write fails).
        let renewal = |count| self.touch_write(digest, now, policy, count);
        self.inner.pending.renew_with(digest, now, policy.count_request, renewal).await
    }

    /// [`TOUCH`]: adds `count` requests, renews, and tells expired, revoked and unknown apart.
    async fn touch_write(
        &self,
        digest: &TokenDigest,
        now: Timestamp,
        policy: TouchPolicy,
        count: u64,
    ) -> Result<Lookup, StoreError> {
        let count = i64::try_from(count).unwrap_or(i64::MAX);
        for _ in 0..3 {
            let row = sqlx::query(&TOUCH)
                .bind(nanos(now))
                .bind(count)
                .bind(nanos(now.saturating_sub(policy.interval)))
                .bind(nanos(now.saturating_add(policy.idle_timeout)))
                .bind(nanos(now.saturating_add(policy.remember_me_idle_timeout)))
                .bind(digest.to_base64())
                .fetch_optional(&self.inner.pool)
                .await
                .map_err(sql_error)?;
            if let Some(row) = row {
                return Ok(Lookup::Live(record(&row)?.1));
            }
            if let Some(answer) = self.lookup_miss(digest, now).await? {
                return Ok(answer);
            }
        }
        Err(StoreError::Contended)
    }

    async fn remove_where(
        &self,
        key: &str,
        value: String,
        revocation: Revocation,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let mut tx = self.begin().await?;
        let Some(r) = locked_session(&mut tx, self.inner.dialect, key, &value).await? else { return Ok(None) };
        drop_session(&mut tx, self.inner.dialect, &r, Some(&revocation)).await?;
        tx.commit().await.map_err(sql_error)?;
        self.note_denied(std::slice::from_ref(&r), &revocation);
        Ok(Some(r))
    }
}

/// `$start, $start+1, …` for `n` binds.
fn placeholders(start: usize, n: usize) -> String {
    (start..start + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

impl SessionStore for SqlStore {
    async fn insert(
        &self,
        record: SessionRecord,
        refresh: Option<TokenDigest>,
        limit: Option<Limit>,
        eviction: Revocation,
    ) -> Result<InsertOutcome, StoreError> {
        self.bounded(async {
            let mut tx = self.begin().await?;
            lock_user(&mut tx, self.inner.dialect, &record.user).await?;
            let mut evicted = Vec::new();
            if let Some(limit) = limit {
                let rows = sqlx::query(&format!("SELECT {COLS} FROM sk_sessions WHERE user_id = $1 ORDER BY seq"))
                    .bind(record.user.as_str())
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(sql_error)?;
                let mut live = Vec::new();
                for row in &rows {
                    let (_, r) = codec::record(row)?;
                    if expiry::check(eviction.at, r.idle_deadline, r.absolute_deadline).is_err() {
                        drop_session(&mut tx, self.inner.dialect, &r, None).await?;
                    } else {
                        live.push(r);
                    }
                }
                let candidates: Vec<Candidate> =
                    live.iter().map(|r| Candidate { created_at: r.created_at, last_seen_at: r.last_seen_at }).collect();
                let Ok(chosen) = select_evictions(limit, &candidates) else {
                    tx.commit().await.map_err(sql_error)?;
                    return Ok(InsertOutcome::LimitReached);
                };
                for i in chosen {
                    let r = live[i].clone();
                    drop_session(&mut tx, self.inner.dialect, &r, Some(&eviction)).await?;
                    evicted.push(r);
                }
            }
            insert_session(&mut tx, &record).await?;
            if let Some(rf) = refresh {
                sqlx::query("INSERT INTO sk_refresh (digest, session_id, n) VALUES ($1, $2, 0)")
                    .bind(rf.to_base64())
                    .bind(record.id.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(sql_error)?;
            }
            tx.commit().await.map_err(sql_error)?;
            self.note_denied(&evicted, &eviction);
            Ok(InsertOutcome::Inserted { evicted })
        })
        .await
    }

    async fn touch(&self, digest: &TokenDigest, now: Timestamp, policy: TouchPolicy) -> Result<Lookup, StoreError> {
        self.bounded(self.touch_once(digest, now, policy)).await
    }

    async fn get_by_id(&self, id: &SessionId) -> Result<Option<SessionRecord>, StoreError> {
        self.bounded(async {
            let row = sqlx::query(&format!("SELECT {COLS} FROM sk_sessions WHERE id = $1"))
                .bind(id.to_string())
                .fetch_optional(&self.inner.pool)
                .await
                .map_err(sql_error)?;
            row.map(|r| record(&r).map(|(_, rec)| self.inner.pending.shown(rec))).transpose()
        })
        .await
    }

    async fn rotate(
        &self,
        old: &TokenDigest,
        new: TokenDigest,
        refresh: Option<TokenDigest>,
        now: Timestamp,
        deny_access_until: Option<Timestamp>,
    ) -> Result<Lookup, StoreError> {
        self.bounded(async {
            let mut tx = self.begin().await?;
            let Some(mut r) = locked_session(&mut tx, self.inner.dialect, "digest", &old.to_base64()).await? else {
                return Ok(match gone(&mut *tx, old, now).await? {
                    Some(reason) => Lookup::Revoked(reason),
                    None => Lookup::NotFound,
                });
            };
            if let Err(reason) = expiry::check(now, r.idle_deadline, r.absolute_deadline) {
                return Ok(Lookup::Expired { reason, record: Box::new(r) });
            }
            let id = r.id.to_string();
            let generation: i64 = sqlx::query_scalar(
                "UPDATE sk_sessions SET digest = $2, generation = generation + 1 WHERE id = $1 RETURNING generation",
            )
            .bind(&id)
            .bind(new.to_base64())
            .fetch_one(&mut *tx)
            .await
            .map_err(sql_error)?;
            r.generation = u64::try_from(generation).map_err(|_| corrupt("generation"))?;
            // Access tokens of earlier generations are refused from the commit on.
            let superseded = deny_access_until
                .map(|until| DenyEntry { scope: DenyScope::Below(r.generation), until })
                .filter(|e| e.until > now);
            if let Some(entry) = superseded {
                deny(&mut tx, self.inner.dialect, &id, entry, now).await?;
            }
            if let Some(rf) = refresh {
                // The refresh tokens issued before are forgotten (not remembered: not theft).
                sqlx::query("DELETE FROM sk_refresh WHERE session_id = $1")
                    .bind(&id)
                    .execute(&mut *tx)
                    .await
                    .map_err(sql_error)?;
                sqlx::query("INSERT INTO sk_refresh (digest, session_id, n) VALUES ($1, $2, 0)")
                    .bind(rf.to_base64())
                    .bind(&id)
                    .execute(&mut *tx)
                    .await
                    .map_err(sql_error)?;
            }
            tx.commit().await.map_err(sql_error)?;
            if let (Some(local), Some(entry)) = (&self.inner.denylist, superseded) {
                local.add(r.id, entry);
            }
            // The counts not yet written follow the session to its new token.
            self.inner.pending.rekey(old, new);
            r.digest = new;
            Ok(Lookup::Live(self.inner.pending.shown(r)))
        })
        .await
    }

    async fn update_data(
        &self,
        id: &SessionId,
        patch: &DataPatch,
        max_bytes: usize,
        now: Timestamp,
    ) -> Result<DataOutcome, StoreError> {
        self.bounded(async {
            let mut tx = self.begin().await?;
            let row = sqlx::query(&format!("SELECT {COLS} FROM sk_sessions WHERE id = $1{}", self.for_update()))
                .bind(id.to_string())
                .fetch_optional(&mut *tx)
                .await
                .map_err(sql_error)?;
            let Some(row) = row else { return Ok(DataOutcome::NotFound) };
            let (_, r) = record(&row)?;
            if expiry::check(now, r.idle_deadline, r.absolute_deadline).is_err() {
                return Ok(DataOutcome::NotFound);
            }
            let (next, size) = r.data.patched(patch);
            if size > max_bytes {
                return Ok(DataOutcome::TooLarge { size });
            }
            sqlx::query("UPDATE sk_sessions SET data = $2 WHERE id = $1")
                .bind(id.to_string())
                .bind(json(&next)?)
                .execute(&mut *tx)
                .await
                .map_err(sql_error)?;
            tx.commit().await.map_err(sql_error)?;
            Ok(DataOutcome::Updated(next))
        })
        .await
    }

    async fn remove(&self, id: &SessionId, revocation: Revocation) -> Result<Option<SessionRecord>, StoreError> {
        self.bounded(self.remove_where("id", id.to_string(), revocation)).await
    }

    async fn remove_by_digest(
        &self,
        digest: &TokenDigest,
        revocation: Revocation,
    ) -> Result<Option<SessionRecord>, StoreError> {
        self.bounded(self.remove_where("digest", digest.to_base64(), revocation)).await
    }

    async fn remove_user(
        &self,
        user: &UserId,
        keep: Option<&SessionId>,
        revocation: Revocation,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        self.bounded(async {
            let mut tx = self.begin().await?;
            lock_user(&mut tx, self.inner.dialect, user).await?;
            let rows = sqlx::query(&format!("SELECT {COLS} FROM sk_sessions WHERE user_id = $1 ORDER BY seq"))
                .bind(user.as_str())
                .fetch_all(&mut *tx)
                .await
                .map_err(sql_error)?;
            let mut removed = Vec::new();
            for row in &rows {
                let (_, r) = record(row)?;
                if Some(&r.id) != keep {
                    drop_session(&mut tx, self.inner.dialect, &r, Some(&revocation)).await?;
                    removed.push(r);
                }
            }
            tx.commit().await.map_err(sql_error)?;
            self.note_denied(&removed, &revocation);
            Ok(removed)
        })
        .await
    }

    async fn list_user(&self, user: &UserId, now: Timestamp) -> Result<Vec<SessionRecord>, StoreError> {
        self.bounded(async {
            let rows = sqlx::query(&format!(
                "SELECT {COLS} FROM sk_sessions WHERE user_id = $1 AND $2 < idle_deadline AND $2 < absolute_deadline"
            ))
            .bind(user.as_str())
            .bind(nanos(now))
            .fetch_all(&self.inner.pool)
            .await
            .map_err(sql_error)?;
            let mut live = rows
                .iter()
                .map(|r| record(r).map(|(_, rec)| self.inner.pending.shown(rec)))
                .collect::<Result<Vec<_>, _>>()?;
            live.sort_by_key(|r| (r.created_at, r.id));
            Ok(live)
        })
        .await
    }

    async fn remove_expired(&self, now: Timestamp, max: usize) -> Result<Vec<SessionRecord>, StoreError> {
        let skip_locked = match self.inner.dialect {
            // Rows a login or logout holds are left for the next sweep instead of waited for.
            #[cfg(feature = "postgres")]
            Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
            #[cfg(feature = "sqlite")]
            Dialect::Sqlite => "",
        };
        if let Some(local) = &self.inner.denylist {
            local.entries.retain(|_, e| e.until > now);
        }
        self.inner.pending.prune(now);
        let mut removed = Vec::new();
        let mut first = true;
        while removed.len() < max {
            let batch = (max - removed.len()).min(SWEEP_BATCH);
            let found = self
                .bounded(async {
                    let mut tx = self.begin().await?;
                    let rows = sqlx::query(&format!(
                        "DELETE FROM sk_sessions WHERE seq IN (SELECT seq FROM sk_sessions \
                         WHERE idle_deadline <= $1 OR absolute_deadline <= $1 LIMIT $2{skip_locked}) RETURNING {COLS}"
                    ))
                    .bind(nanos(now))
                    .bind(i64::try_from(batch).unwrap_or(i64::MAX))
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(sql_error)?;
                    let found = rows.iter().map(|r| record(r).map(|(_, rec)| rec)).collect::<Result<Vec<_>, _>>()?;
                    if !found.is_empty() {
                        let sql = format!(
                            "DELETE FROM sk_refresh WHERE session_id IN ({})",
                            placeholders(1, found.len())
                        );
                        let mut q = sqlx::query(&sql);
                        for r in &found {
                            q = q.bind(r.id.to_string());
                        }
                        q.execute(&mut *tx).await.map_err(sql_error)?;
                    }
                    if first {
                        for table in ["sk_revoked", "sk_denied"] {
                            sqlx::query(&format!(
                                "DELETE FROM {table} WHERE seq IN (SELECT seq FROM {table} WHERE until_at <= $1 LIMIT $2)"
                            ))
                            .bind(nanos(now))
                            .bind(i64::try_from(max.max(1)).unwrap_or(i64::MAX))
                            .execute(&mut *tx)
                            .await
                            .map_err(sql_error)?;
                        }
                    }
                    tx.commit().await.map_err(sql_error)?;
                    Ok(found)
                })
                .await?;
            first = false;
            let n = found.len();
            removed.extend(found);
            if n < batch {
                break;
            }
        }
        Ok(removed)
    }
}

impl TokenStore for SqlStore {
    async fn rotate_refresh(
        &self,
        presented: &TokenDigest,
        successor: Successor,
        now: Timestamp,
        grace: Duration,
        touch: TouchPolicy,
        reuse: Revocation,
    ) -> Result<RefreshOutcome, StoreError> {
        self.bounded(async {
            let p = presented.to_base64();
            let not_found = |reason: Option<RevocationReason>| match reason {
                Some(reason) => RefreshOutcome::Revoked(reason),
                None => RefreshOutcome::NotFound,
            };
            let mut tx = self.begin().await?;
            let owner: Option<String> = sqlx::query_scalar(
                "SELECT s.user_id FROM sk_refresh r JOIN sk_sessions s ON s.id = r.session_id WHERE r.digest = $1",
            )
            .bind(&p)
            .fetch_optional(&mut *tx)
            .await
            .map_err(sql_error)?;
            let Some(owner) = owner else { return Ok(not_found(gone(&mut *tx, presented, now).await?)) };
            lock_user(&mut tx, self.inner.dialect, &UserId::new(owner).map_err(|_| corrupt("user id"))?).await?;
            let row = sqlx::query(&format!(
                "SELECT r.n, r.spent_at, r.sealed, {} FROM sk_refresh r JOIN sk_sessions s ON s.id = r.session_id \
                 WHERE r.digest = $1",
                *S_COLS
            ))
            .bind(&p)
            .fetch_optional(&mut *tx)
            .await
            .map_err(sql_error)?;
            let Some(row) = row else { return Ok(not_found(gone(&mut *tx, presented, now).await?)) };
            let n: i64 = row.try_get(0).map_err(sql_error)?;
            let spent_at: Option<i64> = row.try_get(1).map_err(sql_error)?;
            let sealed: Option<Vec<u8>> = row.try_get(2).map_err(sql_error)?;
            let (_, r) = record_at(&row, 3)?;
            let id = r.id.to_string();
            let Some(spent_at) = spent_at else {
                // The current token.
                if let Err(reason) = expiry::check(now, r.idle_deadline, r.absolute_deadline) {
                    return Ok(RefreshOutcome::Expired { reason, record: Box::new(r) });
                }
                // Only the token spent last keeps its sealed successor.
                sqlx::query("UPDATE sk_refresh SET sealed = NULL WHERE session_id = $1 AND sealed IS NOT NULL")
                    .bind(&id)
                    .execute(&mut *tx)
                    .await
                    .map_err(sql_error)?;
                sqlx::query("UPDATE sk_refresh SET spent_at = $2, sealed = $3 WHERE digest = $1")
                    .bind(&p)
                    .bind(nanos(now))
                    .bind(successor.sealed)
                    .execute(&mut *tx)
                    .await
                    .map_err(sql_error)?;
                sqlx::query("INSERT INTO sk_refresh (digest, session_id, n) VALUES ($1, $2, $3)")
                    .bind(successor.digest.to_base64())
                    .bind(&id)
                    .bind(n.saturating_add(1))
                    .execute(&mut *tx)
                    .await
                    .map_err(sql_error)?;
                // Spent tokens kept: n - HISTORY ..= n, one more than the contract's minimum, as
                // the Redis store keeps.
                let history = i64::try_from(REFRESH_REUSE_HISTORY).unwrap_or(i64::MAX);
                sqlx::query("DELETE FROM sk_refresh WHERE session_id = $1 AND n < $2")
                    .bind(&id)
                    .bind(n.saturating_sub(history))
                    .execute(&mut *tx)
                    .await
                    .map_err(sql_error)?;
                let r = renewed(r, now, &touch);
                write_renewal(&mut tx, &r).await?;
                tx.commit().await.map_err(sql_error)?;
                return Ok(RefreshOutcome::Rotated(r));
            };
            let last: Option<i64> =
                sqlx::query_scalar("SELECT MAX(n) FROM sk_refresh WHERE session_id = $1 AND spent_at IS NOT NULL")
                    .bind(&id)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(sql_error)?;
            let (low, high) = (nanos(now.saturating_sub(grace)), nanos(now.saturating_add(grace)));
            // Spent less than the grace window before or after now (after: by an instance whose
            // clock runs ahead); with a zero window never.
            if last == Some(n)
                && low < nanos(now)
                && spent_at > low
                && spent_at < high
                && let Some(sealed) = sealed
            {
                if let Err(reason) = expiry::check(now, r.idle_deadline, r.absolute_deadline) {
                    return Ok(RefreshOutcome::Expired { reason, record: Box::new(r) });
                }
                return Ok(RefreshOutcome::Replayed {
                    record: r,
                    sealed,
                    spent_at: Timestamp::from_unix_nanos(spent_at),
                });
            }
            drop_session(&mut tx, self.inner.dialect, &r, Some(&reuse)).await?;
            tx.commit().await.map_err(sql_error)?;
            self.note_denied(std::slice::from_ref(&r), &reuse);
            Ok(RefreshOutcome::Reused(r))
        })
        .await
    }

    async fn access_denied(
        &self,
        id: &SessionId,
        generation: u64,
        now: Timestamp,
    ) -> Result<Option<AccessDenial>, StoreError> {
        if let Some(local) = &self.inner.denylist {
            if !local.synced.load(std::sync::atomic::Ordering::Acquire) {
                return Err(StoreError::Unavailable("the PostgreSQL denylist listener is resynchronising".into()));
            }
            return Ok(local.refuses(id, generation, now));
        }
        self.bounded(async {
            let row = sqlx::query("SELECT reason, below_generation, until_at FROM sk_denied WHERE session_id = $1")
                .bind(id.to_string())
                .fetch_optional(&self.inner.pool)
                .await
                .map_err(sql_error)?;
            let Some(row) = row else { return Ok(None) };
            let until: i64 = row.try_get(2).map_err(sql_error)?;
            if until <= nanos(now) {
                return Ok(None);
            }
            let why: Option<String> = row.try_get(0).map_err(sql_error)?;
            let entry = deny_entry(why.as_deref(), row.try_get(1).map_err(sql_error)?, until)?;
            Ok(entry.refuses(generation, now))
        })
        .await
    }
}

/// Scan cursors: the table in the top two bits (0 sessions, 1 revocations, 2 denylist), the
/// last `seq` seen in the rest.
const TABLE_SHIFT: u32 = 62;
const SEQ_MASK: u64 = (1 << TABLE_SHIFT) - 1;

impl BackupStore for SqlStore {
    async fn scan(&self, cursor: ScanCursor) -> Result<ScanPage, StoreError> {
        self.bounded(async {
            let mut table = cursor.raw() >> TABLE_SHIFT;
            let mut after = i64::try_from(cursor.raw() & SEQ_MASK).map_err(|_| corrupt("scan cursor"))?;
            let mut items = Vec::new();
            while table < 3 {
                let want = SCAN_PAGE - items.len();
                let limit = i64::try_from(want).unwrap_or(i64::MAX);
                let mut last = None;
                let mut got = 0;
                if table == 0 {
                    let rows = sqlx::query(&format!(
                        "SELECT {}, r.digest, r.spent_at FROM (SELECT {COLS} FROM sk_sessions WHERE seq > $1 \
                         ORDER BY seq LIMIT $2) s LEFT JOIN sk_refresh r ON r.session_id = s.id ORDER BY s.seq, r.n DESC",
                        *S_COLS
                    ))
                    .bind(after)
                    .bind(limit)
                    .fetch_all(&self.inner.pool)
                    .await
                    .map_err(sql_error)?;
                    let mut current: Option<(i64, SessionRecord, Option<TokenDigest>, Vec<TokenDigest>)> = None;
                    let flush = |c: Option<(i64, SessionRecord, Option<TokenDigest>, Vec<TokenDigest>)>,
                                     items: &mut Vec<StoredItem>| {
                        if let Some((_, record, cur, spent)) = c {
                            let refresh = cur.map(|current| RefreshDigests { current, spent });
                            items.push(StoredItem::Session { record, refresh });
                        }
                    };
                    for row in &rows {
                        let (seq, rec) = record(row)?;
                        if current.as_ref().is_none_or(|c| c.0 != seq) {
                            flush(current.take(), &mut items);
                            got += 1;
                            last = Some(seq);
                            current = Some((seq, rec, None, Vec::new()));
                        }
                        let rd: Option<String> = row.try_get(13).map_err(sql_error)?;
                        let spent: Option<i64> = row.try_get(14).map_err(sql_error)?;
                        if let (Some(rd), Some(c)) = (rd, current.as_mut()) {
                            match spent {
                                None => c.2 = Some(digest(&rd)?),
                                Some(_) => c.3.push(digest(&rd)?),
                            }
                        }
                    }
                    flush(current.take(), &mut items);
                } else {
                    let sql = if table == 1 {
                        "SELECT seq, digest, until_at, reason FROM sk_revoked WHERE seq > $1 ORDER BY seq LIMIT $2"
                    } else {
                        "SELECT seq, session_id, until_at, reason, below_generation FROM sk_denied \
                         WHERE seq > $1 ORDER BY seq LIMIT $2"
                    };
                    let rows =
                        sqlx::query(sql).bind(after).bind(limit).fetch_all(&self.inner.pool).await.map_err(sql_error)?;
                    for row in &rows {
                        let seq: i64 = row.try_get(0).map_err(sql_error)?;
                        let key: String = row.try_get(1).map_err(sql_error)?;
                        let until: i64 = row.try_get(2).map_err(sql_error)?;
                        let why: Option<String> = row.try_get(3).map_err(sql_error)?;
                        items.push(if table == 2 {
                            let below: Option<i64> = row.try_get(4).map_err(sql_error)?;
                            StoredItem::from_deny_entry(
                                key.parse().map_err(|_| corrupt("session id"))?,
                                deny_entry(why.as_deref(), below, until)?,
                            )
                        } else {
                            StoredItem::Revoked {
                                digest: digest(&key)?,
                                reason: reason(why.as_deref().unwrap_or_default())?,
                                until: Timestamp::from_unix_nanos(until),
                            }
                        });
                        got += 1;
                        last = Some(seq);
                    }
                }
                if got == want {
                    let seq = u64::try_from(last.unwrap_or(after)).map_err(|_| corrupt("sequence"))?;
                    return Ok(ScanPage { items, next: Some(ScanCursor::from_raw((table << TABLE_SHIFT) | seq)) });
                }
                table += 1;
                after = 0;
            }
            Ok(ScanPage { items, next: None })
        })
        .await
    }

    async fn restore(&self, items: Vec<StoredItem>, now: Timestamp) -> Result<(), StoreError> {
        let per_batch = u32::try_from(1 + items.len() / 10_000).unwrap_or(u32::MAX);
        let timeout =
            self.inner.config.operation_timeout.saturating_add(Duration::from_secs(1).saturating_mul(per_batch));
        self.bounded_for(timeout, async {
            let mut tx = self.begin().await?;
            for item in &items {
                match item {
                    StoredItem::Session { record, refresh } => {
                        if expiry::check(now, record.idle_deadline, record.absolute_deadline).is_err() {
                            continue;
                        }
                        insert_session(&mut tx, record).await?;
                        if let Some(rf) = refresh {
                            let id = record.id.to_string();
                            let k = i64::try_from(rf.spent.len()).unwrap_or(i64::MAX);
                            let insert =
                                "INSERT INTO sk_refresh (digest, session_id, n, spent_at) VALUES ($1, $2, $3, $4)";
                            sqlx::query(insert)
                                .bind(rf.current.to_base64())
                                .bind(&id)
                                .bind(k)
                                .bind(None::<i64>)
                                .execute(&mut *tx)
                                .await
                                .map_err(sql_error)?;
                            for (i, d) in (0_i64..).zip(&rf.spent) {
                                // When a restored token was spent is not exported: long ago, so
                                // presenting it is reuse (its sealed successor is gone anyway).
                                sqlx::query(insert)
                                    .bind(d.to_base64())
                                    .bind(&id)
                                    .bind(k - 1 - i)
                                    .bind(Some(i64::MIN))
                                    .execute(&mut *tx)
                                    .await
                                    .map_err(sql_error)?;
                            }
                        }
                    }
                    StoredItem::Revoked { digest, reason, until } => {
                        if *until > now {
                            remember(&mut tx, &digest.to_base64(), *reason, *until).await?;
                        }
                    }
                    StoredItem::Denied { .. } | StoredItem::Superseded { .. } => {
                        if let Some((session_id, entry)) = item.deny_entry() {
                            deny(&mut tx, self.inner.dialect, &session_id.to_string(), entry, now).await?;
                        }
                    }
                }
            }
            tx.commit().await.map_err(sql_error)?;
            if let Some(local) = &self.inner.denylist {
                for (session_id, entry) in items.iter().filter_map(StoredItem::deny_entry) {
                    if entry.until > now {
                        local.add(session_id, entry);
                    }
                }
            }
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn invalid_options_are_refused_before_any_connection() {
        let base = SqlConfig::new("postgres://127.0.0.1:1/none");
        for config in [
            base.clone().with_operation_timeout(Duration::ZERO),
            base.clone().with_operation_timeout(MAX_TIMEOUT + Duration::from_secs(1)),
            base.clone().with_subscription_check(Duration::ZERO),
            base.clone().with_subscription_check(MAX_SUBSCRIPTION_CHECK + Duration::from_millis(1)),
        ] {
            assert!(matches!(SqlStore::connect(config).await, Err(SqlConnectError::Timeout)));
        }
        assert!(matches!(SqlStore::connect(base.with_max_connections(0)).await, Err(SqlConnectError::Pool)));
        match SqlStore::connect(SqlConfig::new("mysql://u:secret@host/db")).await {
            Err(SqlConnectError::Url(shown)) => assert!(!shown.contains("secret"), "{shown}"),
            other => panic!("{other:?}"),
        }
    }

    /// A database of the first schema version (no generations, revocation-only denylist) is
    /// upgraded on connect: its sessions read as generation 0 and rotate, its denylist rows
    /// still refuse, and rotation entries are written beside them.
    #[cfg(feature = "sqlite")]
    #[tokio::test]
    async fn a_database_of_the_first_schema_version_is_upgraded_on_connect() {
        use crate::store::ScanCursor;

        let path = std::env::temp_dir().join(format!("sessionkit-sql-upgrade-{}.db", std::process::id()));
        let url = format!("sqlite://{}", path.display());
        let t = |s: i64| Timestamp::from_unix_nanos(s * 1_000_000_000);
        let (kept, revoked) = (SessionId::from_bytes([1; 16]), SessionId::from_bytes([2; 16]));
        let old = TokenDigest::from_base64(&"A".repeat(43)).unwrap();
        {
            let pool = sqlx::SqlitePool::connect(&format!("{url}?mode=rwc")).await.unwrap();
            let mut first = sqlx::migrate!("migrations/sqlite");
            first.migrations = std::borrow::Cow::Owned(first.migrations[..1].to_vec());
            first.run(&pool).await.unwrap();
            sqlx::query(
                "INSERT INTO sk_sessions (id, digest, user_id, created_at, last_seen_at, idle_deadline, \
                 absolute_deadline, remember_me, request_count, metadata, data) \
                 VALUES ($1, $2, 'alice', 0, 0, $3, $3, 0, 5, '', '')",
            )
            .bind(kept.to_string())
            .bind(old.to_base64())
            .bind(nanos(t(1000)))
            .execute(&pool)
            .await
            .unwrap();
            sqlx::query("INSERT INTO sk_denied (session_id, reason, until_at) VALUES ($1, 'logout', $2)")
                .bind(revoked.to_string())
                .bind(nanos(t(100)))
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        }
        for mode in [DenylistMode::Strict, DenylistMode::Subscribed] {
            let store = SqlStore::connect(SqlConfig::new(&url).with_denylist(mode)).await.unwrap();
            assert_eq!(
                store.access_denied(&revoked, 7, t(10)).await.unwrap(),
                Some(AccessDenial::Revoked(RevocationReason::Logout)),
                "{mode:?}"
            );
        }
        let store = SqlStore::connect(SqlConfig::new(&url).with_denylist(DenylistMode::Strict)).await.unwrap();
        let r = store.get_by_id(&kept).await.unwrap().unwrap();
        assert_eq!((r.generation, r.request_count), (0, 5));
        let new = TokenDigest::from_base64(&format!("{}A", "C".repeat(42))).unwrap();
        let Lookup::Live(r) = store.rotate(&old, new, None, t(10), Some(t(100))).await.unwrap() else {
            panic!("the old session rotates")
        };
        assert_eq!(r.generation, 1);
        assert_eq!(store.access_denied(&kept, 0, t(10)).await.unwrap(), Some(AccessDenial::Superseded));
        let page = store.scan(ScanCursor::START).await.unwrap();
        assert!(page.items.contains(&StoredItem::Superseded { session_id: kept, below_generation: 1, until: t(100) }));
        assert!(page.items.contains(&StoredItem::Denied {
            session_id: revoked,
            reason: RevocationReason::Logout,
            until: t(100)
        }));
        drop(store);
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }

    #[tokio::test]
    async fn an_unreachable_database_fails_within_the_timeout() {
        // A port nothing listens on: bind, note, release.
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port());
        let Ok(port) = port else { return };
        let started = std::time::Instant::now();
        let config = SqlConfig::new(format!("postgres://u@127.0.0.1:{port}/db"))
            .with_operation_timeout(Duration::from_millis(300));
        assert!(matches!(SqlStore::connect(config).await, Err(SqlConnectError::Connect(_))));
        assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    }
}
