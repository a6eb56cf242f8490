//! The store traits: the seam between the manager and where sessions live.
//!
//! The manager decides *what* should happen (deadlines, which session to evict, when to renew);
//! a store makes each step happen *atomically*, in memory or in a remote engine. Every method
//! documents its contract, and the conformance suite (`store::conformance`, feature `test-util`)
//! checks it, so a store that passes can be swapped for another.
//!
//! | trait | methods | what it enables |
//! |---|---|---|
//! | [`SessionStore`] | `insert`, `touch`, `get_by_id`, `rotate`, `update_data`, `remove`, `remove_by_digest`, `remove_user`, `list_user`, `remove_expired` | sessions: login, validation, renewal, rotation, data, logout, revoke-all, listing, sweeping |
//! | [`TokenStore`] | `rotate_refresh`, `access_denied` | access and refresh tokens ([`SessionManager::set_keys`](crate::SessionManager::set_keys)) |
//! | [`BackupStore`] | `scan`, `restore` | export, import, statistics |
//!
//! # The contract, in general
//!
//! * **Atomic per user.** Each method is one atomic step with respect to every other
//!   operation on the same user's sessions (see [`SessionStore`]).
//! * **Keys are digests.** Sessions are found by [`TokenDigest`] (the hot path) or by
//!   [`SessionId`]. A store never sees a token.
//! * **"Not found" is an outcome, not an error.** An unknown digest or id answers
//!   [`Lookup::NotFound`] / `None` / `false`. [`StoreError`] means the store could not answer,
//!   and the manager then fails closed.
//! * **Never overwrite.** [`insert`](SessionStore::insert) and [`rotate`](SessionStore::rotate)
//!   answer [`StoreError::Conflict`] if the new digest or id is taken (a lesson of other
//!   libraries, where an id collision let one session take over another).
//! * **Removal is idempotent.** Removing what is not there does nothing and succeeds.
//! * **Revocations are remembered.** A session removed by [`remove`](SessionStore::remove) or
//!   [`remove_user`](SessionStore::remove_user), or evicted by `insert`, is remembered as revoked
//!   (with its [`RevocationReason`]) until its absolute deadline, so that
//!   [`touch`](SessionStore::touch) can answer [`Lookup::Revoked`]; so are its current refresh
//!   token and the one spent last, so that [`rotate_refresh`](TokenStore::rotate_refresh) can
//!   answer [`RefreshOutcome::Revoked`]. The memory this takes must be bounded: a store may forget
//!   revocations early (the token then reads as unknown) but never report a revoked session as
//!   live.
//! * **One denylist entry per session** (a [`TokenStore`]): what a revocation or a rotation
//!   leaves is combined with the session's entry by [`DenyEntry::merge`], in the same atomic
//!   step as the revocation or rotation, and forgotten once its `until` has passed.
//! * **Time comes from the caller.** Every method that needs the time takes `now`; stores never
//!   read a clock. Deadlines are checked with [`crate::expiry`], so every store draws the same lines.
//!
//! # Writing a store
//!
//! 1. **Persist [`SessionRecord`]s** under two keys, the token digest and the session id, with
//!    a per-user index (for the limit, listing and revoke-all) and an expiry index on the
//!    earlier of the two deadlines (so that [`remove_expired`](SessionStore::remove_expired)
//!    costs what expired, not everything).
//! 2. **Make each method one atomic step per user**: a mutex per user in memory, a script or
//!    transaction keyed by the user in a remote engine (a row lock on the user's row, a Redis
//!    hash tag per user). Use the pure functions the manager uses, so every store draws the same
//!    lines: [`crate::expiry`] for deadlines and renewal, [`crate::policy::select_evictions`] for
//!    the limit.
//! 3. **Remember revocations** (bounded), as the contract above says.
//! 4. Add [`TokenStore`] when the application uses access and refresh tokens, and
//!    [`BackupStore`] for export, import and statistics.
//! 5. **Run the conformance suite** from the store's tests: one `#[tokio::test]` per clause, so
//!    that a failure names the clause and the others still run. Statements in braces run first
//!    in each test (start a server and bind it, so that it lives as long as the test; `return`
//!    to skip when there is none):
//!
//! ```ignore
//! // tests/my_store.rs (with tokio's `macros` and `rt-multi-thread` features)
//! sessionkit::conformance_tests!(my_store, MyStore::new());
//! sessionkit::conformance_tests!(with_tokens_and_backup, MyStore::new(), tokens, backup);
//! sessionkit::conformance_tests!(remote, {
//!     let Some(server) = TestServer::start() else { return };
//! } => MyStore::connect(&server.url()).await.unwrap(), tokens, backup);
//! ```
//!
//! The property test of the crate's own `tests/model.rs`, which drives a manager through random
//! logins, validations, rotations, logouts and clock steps against a model of the rules, is a
//! good second check to copy.

use std::future::Future;
use std::time::Duration;

use crate::clock::Timestamp;
use crate::error::{ExpiryReason, RevocationReason, StoreError};
use crate::policy::Limit;
use crate::session::{DataPatch, SessionData, SessionId, SessionRecord, UserId};
use crate::token::TokenDigest;

pub use crate::backup::{RefreshDigests, StoredItem};

#[cfg(feature = "memory")]
pub mod memory;

#[cfg(feature = "redis")]
pub mod redis;

#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub mod sql;

#[cfg(any(feature = "redis", feature = "postgres", feature = "sqlite"))]
mod local_denylist;
#[cfg(any(feature = "redis", feature = "postgres", feature = "sqlite"))]
mod pending;
#[cfg(any(feature = "redis", feature = "postgres", feature = "sqlite"))]
mod url;

#[cfg(feature = "test-util")]
pub mod conformance;

/// How [`SessionStore::touch`] renews a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TouchPolicy {
    /// Idle timeout of ordinary sessions.
    pub idle_timeout: Duration,
    /// Idle timeout of remember-me sessions.
    pub remember_me_idle_timeout: Duration,
    /// Renew only if the last renewal is at least this old; zero renews every time.
    pub interval: Duration,
    /// Count this lookup in the session's `request_count`.
    pub count_request: bool,
}

impl TouchPolicy {
    /// The idle timeout that applies to a session with this remember-me flag.
    #[must_use]
    pub fn idle_timeout_for(&self, remember_me: bool) -> Duration {
        if remember_me { self.remember_me_idle_timeout } else { self.idle_timeout }
    }
}

/// The answer of a lookup by digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The session is live; the record reflects the lookup's own renewal and count.
    Live(SessionRecord),
    /// The session exists but has expired. It is left for the sweeper.
    Expired {
        /// Which deadline passed.
        reason: ExpiryReason,
        /// The session as stored (for events and audit).
        record: Box<SessionRecord>,
    },
    /// The session was revoked, and the store still remembers why.
    Revoked(RevocationReason),
    /// No such session (never existed, rotated away, swept, or its revocation forgotten).
    NotFound,
}

/// How a store ends sessions: why, when, and until when their access tokens are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revocation {
    /// Why the sessions end.
    pub reason: RevocationReason,
    /// When.
    pub at: Timestamp,
    /// If set, the store adds each ended session's id to its access-token denylist until this
    /// instant (when the last access token issued before the revocation has expired).
    pub deny_access_until: Option<Timestamp>,
}

/// What an access-token denylist entry refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyScope {
    /// Every access token of the session: it was revoked, for this reason.
    All(RevocationReason),
    /// The session's access tokens of a generation below this one: its token was rotated
    /// ([`SessionStore::rotate`]), and tokens issued before the rotation are superseded.
    Below(u64),
}

/// A session's entry on the access-token denylist: what it refuses, and until when (when the
/// last access token it covers has expired). A store keeps at most one entry per session,
/// combining what it is given with [`merge`](Self::merge).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DenyEntry {
    /// What it refuses.
    pub scope: DenyScope,
    /// When it may be forgotten.
    pub until: Timestamp,
}

/// Why [`TokenStore::access_denied`] refuses an access token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessDenial {
    /// The token's session was revoked.
    Revoked(RevocationReason),
    /// The token was issued before its session's token was last rotated.
    Superseded,
}

/// `s` as a `u64` if it is one written canonically (digits only, no sign, no leading zero), as
/// the remote stores write generations.
#[cfg(any(feature = "redis", feature = "postgres"))]
pub(crate) fn canonical_u64(s: &str) -> Option<u64> {
    let v: u64 = s.parse().ok()?;
    (s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'))).then_some(v)
}

/// The text form a scope is written in where it travels as text (a Redis denylist value and
/// message, a PostgreSQL notification): the revocation reason for [`DenyScope::All`] (the format of
/// versions before rotations were denylisted), `below:<generation>` for [`DenyScope::Below`].
#[cfg(any(feature = "redis", feature = "postgres"))]
impl DenyScope {
    pub(crate) fn to_text(self) -> std::borrow::Cow<'static, str> {
        match self {
            Self::All(reason) => reason.as_str().into(),
            Self::Below(generation) => format!("below:{generation}").into(),
        }
    }

    /// The scope [`to_text`](Self::to_text) wrote, strictly: a known reason, or `below:` and
    /// a generation in canonical decimal (digits only, no sign, no leading zero); else `None`.
    pub(crate) fn from_text(s: &str) -> Option<Self> {
        match s.strip_prefix("below:") {
            Some(g) => canonical_u64(g).map(Self::Below),
            None => RevocationReason::from_str_exact(s).map(Self::All),
        }
    }
}

impl DenyEntry {
    /// Whether this entry refuses an access token of `generation` at `now`, and why.
    #[must_use]
    pub fn refuses(&self, generation: u64, now: Timestamp) -> Option<AccessDenial> {
        if self.until <= now {
            return None;
        }
        match self.scope {
            DenyScope::All(reason) => Some(AccessDenial::Revoked(reason)),
            DenyScope::Below(current) => (generation < current).then_some(AccessDenial::Superseded),
        }
    }

    /// The entry that refuses everything either refuses, for as long as either does: a
    /// revocation outweighs a rotation, a later rotation an earlier one, and the later `until`
    /// is kept. (Between two revocations, the reason of the one with the later `until` is
    /// kept.) Order-independent, so that copies fed in any order (a subscription and a
    /// resynchronisation racing) agree.
    #[must_use]
    pub fn merge(self, other: Self) -> Self {
        let until = self.until.max(other.until);
        let scope = match (self.scope, other.scope) {
            (DenyScope::All(a), DenyScope::All(b)) => DenyScope::All(if other.until > self.until { b } else { a }),
            (DenyScope::All(a), DenyScope::Below(_)) | (DenyScope::Below(_), DenyScope::All(a)) => DenyScope::All(a),
            (DenyScope::Below(a), DenyScope::Below(b)) => DenyScope::Below(a.max(b)),
        };
        Self { scope, until }
    }
}

/// A refresh token's successor, as [`TokenStore::rotate_refresh`] stores it.
#[derive(Clone, PartialEq, Eq)]
pub struct Successor {
    /// Digest of the new refresh token.
    pub digest: TokenDigest,
    /// The new refresh token, sealed under a key derived from the presented one (see
    /// [`crate::token`]); the store keeps it for the grace window and hands it back on replay.
    pub sealed: Vec<u8>,
}

impl std::fmt::Debug for Successor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Successor").field("digest", &self.digest).finish_non_exhaustive()
    }
}

/// The answer of [`TokenStore::rotate_refresh`].
#[derive(Clone, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// The presented token was current: the successor is now current, the presented token is
    /// spent, and the session was renewed as by [`SessionStore::touch`].
    Rotated(SessionRecord),
    /// The presented token was spent less than the grace window ago: nothing changed; here is
    /// the sealed successor stored when it was spent, and when that was.
    Replayed {
        /// The session.
        record: SessionRecord,
        /// The sealed successor, as stored.
        sealed: Vec<u8>,
        /// When the presented token was spent.
        spent_at: Timestamp,
    },
    /// The presented token was spent longer ago than the grace window: reuse. The session has
    /// been removed with the `reuse` revocation.
    Reused(SessionRecord),
    /// The session has expired; nothing changed.
    Expired {
        /// Which deadline passed.
        reason: ExpiryReason,
        /// The session as stored.
        record: Box<SessionRecord>,
    },
    /// The refresh token's session was revoked (logout, eviction, administrator, reuse), and
    /// the store still remembers why; nothing changed.
    Revoked(RevocationReason),
    /// No session has this refresh token (never issued, too old, or its session is gone and
    /// no revocation is remembered).
    NotFound,
}

impl std::fmt::Debug for RefreshOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Rotated(r) => f.debug_tuple("Rotated").field(&r.id).finish(),
            Self::Replayed { record, spent_at, .. } => {
                f.debug_struct("Replayed").field("id", &record.id).field("spent_at", spent_at).finish_non_exhaustive()
            }
            Self::Reused(r) => f.debug_tuple("Reused").field(&r.id).finish(),
            Self::Expired { reason, record } => {
                f.debug_struct("Expired").field("reason", reason).field("id", &record.id).finish()
            }
            Self::Revoked(reason) => f.debug_tuple("Revoked").field(reason).finish(),
            Self::NotFound => f.write_str("NotFound"),
        }
    }
}

/// How many spent refresh tokens of a session a store must recognise as reuse, most recent
/// first. Older spent tokens may read as unknown: still refused, but without revoking.
pub const REFRESH_REUSE_HISTORY: usize = 16;

impl Lookup {
    /// The expiry reason, if this is [`Lookup::Expired`].
    #[must_use]
    pub fn expired_reason(&self) -> Option<ExpiryReason> {
        match self {
            Self::Expired { reason, .. } => Some(*reason),
            _ => None,
        }
    }
}

impl RefreshOutcome {
    /// The expiry reason, if this is [`RefreshOutcome::Expired`].
    #[must_use]
    pub fn expired_reason(&self) -> Option<ExpiryReason> {
        match self {
            Self::Expired { reason, .. } => Some(*reason),
            _ => None,
        }
    }
}

/// Pages of [`BackupStore::scan`] hold about this many items (a store may make them somewhat
/// larger or smaller; callers rely only on `next`).
pub const SCAN_PAGE: usize = 4096;

/// Where a [`BackupStore::scan`] resumes: opaque to callers, meaningful only to the store
/// that made it. [`ScanCursor::START`] is the first page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ScanCursor(u64);

impl ScanCursor {
    /// The first page.
    pub const START: Self = Self(0);

    /// A cursor from a store's own position (an offset, a shard and slot, a server cursor).
    /// For store implementations; callers pass back what `scan` answered.
    #[must_use]
    pub const fn from_raw(position: u64) -> Self {
        Self(position)
    }

    /// The store's own position, for store implementations.
    #[must_use]
    pub const fn raw(self) -> u64 {
        self.0
    }
}

/// One page of a store's contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanPage {
    /// The items of this page.
    pub items: Vec<StoredItem>,
    /// The cursor of the next page, or `None` after the last.
    pub next: Option<ScanCursor>,
}

/// The answer of [`SessionStore::insert`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InsertOutcome {
    /// The session was stored; these sessions of the same user were evicted to make room (and
    /// are remembered as revoked with [`RevocationReason::Evicted`]).
    Inserted {
        /// The evicted sessions, oldest choice first.
        evicted: Vec<SessionRecord>,
    },
    /// The user is at the limit and the policy is
    /// [`LimitPolicy::Reject`](crate::LimitPolicy::Reject): nothing was stored.
    LimitReached,
}

/// The answer of [`SessionStore::update_data`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataOutcome {
    /// The patch was applied; this is the data now stored.
    Updated(SessionData),
    /// The patched data would be `size` bytes of JSON, over the limit: nothing changed.
    TooLarge {
        /// Size the patch would have produced.
        size: usize,
    },
    /// No live session has this id.
    NotFound,
}

/// Where sessions live: the operations every store must do, each atomically. See the
/// [module documentation](self) for the general contract, and how to write and test a store.
///
/// # Atomicity
///
/// Every method is one atomic step **per user**: no other operation on a session of the same
/// user is seen half-done, and none interleaves with it. That is what makes the per-user limit
/// ([`insert`](Self::insert) against a concurrent insert or [`remove_user`](Self::remove_user)),
/// revoke-all and rotation safe across any number of application instances. Operations on
/// different users need no ordering between them. A store may be stricter (one lock per
/// store, a transaction per call), never looser.
///
/// Methods return `Send` futures so a manager can be used from any multi-threaded runtime. The
/// trait uses `async fn`-style methods without boxing, which keeps the validation hot path free
/// of allocations; to choose a store at run time, wrap the candidates in an enum that forwards.
///
/// Two further capabilities are traits of their own, so that a store can be written in steps:
/// [`TokenStore`] (refresh tokens and the access-token denylist, needed for
/// [`SessionManager::set_keys`](crate::SessionManager::set_keys)) and [`BackupStore`]
/// (scan and restore, needed for export, import and statistics).
pub trait SessionStore: Send + Sync + 'static {
    /// Stores a new session, with its first refresh token if given, enforcing the per-user
    /// `limit` in the same atomic step. (`refresh` is `Some` only for a store that implements
    /// [`TokenStore`]: the manager issues refresh tokens only once it has signing keys, which
    /// need one.)
    ///
    /// Atomically, at `eviction.at`: with a `limit`, remove the user's sessions that have
    /// expired (as [`remove_expired`](Self::remove_expired) would: not remembered as revoked;
    /// without a limit a store may leave them to the sweeper); choose evictions among the live
    /// ones with [`crate::policy::select_evictions`];
    /// if refused, store nothing and answer [`InsertOutcome::LimitReached`]; otherwise remove the
    /// evicted sessions as by [`remove`](Self::remove) with `eviction` (reason
    /// [`RevocationReason::Evicted`]) and store `record`. No interleaving of concurrent inserts
    /// may leave a user with more than `limit.max` live sessions, and no evicted session may
    /// validate afterwards.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] if `record.digest`, `record.id` or `refresh` is already stored
    /// (nothing is stored); other [`StoreError`]s if the store cannot answer.
    fn insert(
        &self,
        record: SessionRecord,
        refresh: Option<TokenDigest>,
        limit: Option<Limit>,
        eviction: Revocation,
    ) -> impl Future<Output = Result<InsertOutcome, StoreError>> + Send;

    /// The validation hot path: looks up by digest, checks deadlines, counts, renews.
    ///
    /// Atomically per session: if the session's absolute or idle deadline has passed at `now`
    /// ([`crate::expiry::check`]), answer [`Lookup::Expired`] and change nothing. Otherwise, if
    /// `policy.count_request`, add one to `request_count`; if a renewal is due
    /// ([`crate::expiry::touch_due`] of `last_seen_at`), set `last_seen_at` to `now` and the idle
    /// deadline with [`crate::expiry::renewed_idle_deadline`]. Neither ever moves backwards.
    /// Answer the record as it is after this call. A remote store does all of this in one round
    /// trip.
    ///
    /// # Errors
    /// [`StoreError`] only if the store cannot answer.
    fn touch(
        &self,
        digest: &TokenDigest,
        now: Timestamp,
        policy: TouchPolicy,
    ) -> impl Future<Output = Result<Lookup, StoreError>> + Send;

    /// Reads a session by id without counting or renewing it. Expired sessions are returned as
    /// they are (the caller checks deadlines).
    ///
    /// # Errors
    /// [`StoreError`] only if the store cannot answer.
    fn get_by_id(&self, id: &SessionId) -> impl Future<Output = Result<Option<SessionRecord>, StoreError>> + Send;

    /// Replaces a live session's digest: afterwards `new` finds the session and `old` finds
    /// nothing (not even a revocation). The session's
    /// [`generation`](SessionRecord::generation) goes up by one.
    ///
    /// With `deny_access_until` (only for a [`TokenStore`]), the session's access tokens of
    /// earlier generations are denylisted in the same step: its denylist entry is merged
    /// ([`DenyEntry::merge`]) with one of scope [`DenyScope::Below`] the new generation until
    /// `deny_access_until`, so that [`access_denied`](TokenStore::access_denied) answers
    /// [`AccessDenial::Superseded`] for them, on every instance, at once.
    ///
    /// With `refresh` (only for a [`TokenStore`]), the session's refresh tokens are replaced in
    /// the same step: `refresh`
    /// becomes its current refresh token (with no spent ones), and every refresh token issued
    /// before, current or spent, finds nothing from then on ([`RefreshOutcome::NotFound`]: a
    /// rotation is not theft, so presenting one is not reuse). Without it the refresh tokens
    /// are kept. Everything else about the session is unchanged.
    ///
    /// Atomically: if `old` names no session, or one that has expired at `now`, change nothing
    /// and answer as [`touch`](Self::touch) would (`NotFound`, `Expired`, `Revoked`). Two
    /// concurrent rotations of the same `old` digest: exactly one succeeds.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] if `new` is already stored as a session or `refresh` as a
    /// refresh token (nothing changes); other [`StoreError`]s if the store cannot answer.
    fn rotate(
        &self,
        old: &TokenDigest,
        new: TokenDigest,
        refresh: Option<TokenDigest>,
        now: Timestamp,
        deny_access_until: Option<Timestamp>,
    ) -> impl Future<Output = Result<Lookup, StoreError>> + Send;

    /// Applies `patch` to a live session's data, atomically with respect to other patches, if
    /// the result's compact JSON is at most `max_bytes`. Concurrent patches of one session are
    /// all applied, none lost. The manager has already checked the depth of the values the
    /// patch sets ([`SessionConfig::max_data_depth`](crate::SessionConfig::max_data_depth)),
    /// so the store need not.
    ///
    /// # Errors
    /// [`StoreError::Contended`] if a store that updates optimistically gave up under
    /// contention (nothing changed); other [`StoreError`]s if the store cannot answer.
    fn update_data(
        &self,
        id: &SessionId,
        patch: &DataPatch,
        max_bytes: usize,
        now: Timestamp,
    ) -> impl Future<Output = Result<DataOutcome, StoreError>> + Send;

    /// Removes one session with its refresh tokens, remembers it as revoked for
    /// `revocation.reason` until its absolute deadline, and (a [`TokenStore`]) denylists its
    /// access tokens until `revocation.deny_access_until`, all in one atomic step. Answers the removed record, or
    /// `None` if there was none (idempotent).
    ///
    /// # Errors
    /// [`StoreError`] only if the store cannot answer.
    fn remove(
        &self,
        id: &SessionId,
        revocation: Revocation,
    ) -> impl Future<Output = Result<Option<SessionRecord>, StoreError>> + Send;

    /// [`remove`](Self::remove), finding the session by token digest: what a logout does, in
    /// one step (one round trip for a remote store). A digest that names no session (or only
    /// a remembered revocation) removes nothing and answers `None`.
    ///
    /// # Errors
    /// [`StoreError`] only if the store cannot answer.
    fn remove_by_digest(
        &self,
        digest: &TokenDigest,
        revocation: Revocation,
    ) -> impl Future<Output = Result<Option<SessionRecord>, StoreError>> + Send;

    /// Removes every session of `user` except `keep` (if given), each as by
    /// [`remove`](Self::remove), as one atomic step: a session the user creates concurrently is
    /// either removed too or created after, never half-seen. Answers the removed records.
    ///
    /// # Errors
    /// [`StoreError`] only if the store cannot answer.
    fn remove_user(
        &self,
        user: &UserId,
        keep: Option<&SessionId>,
        revocation: Revocation,
    ) -> impl Future<Output = Result<Vec<SessionRecord>, StoreError>> + Send;

    /// The user's sessions that are live at `now`, oldest first.
    ///
    /// # Errors
    /// [`StoreError`] only if the store cannot answer.
    fn list_user(
        &self,
        user: &UserId,
        now: Timestamp,
    ) -> impl Future<Output = Result<Vec<SessionRecord>, StoreError>> + Send;

    /// Removes up to `max` sessions that have expired at `now`, with their refresh tokens and
    /// index entries, and forgets revocations and denylist entries whose time has passed.
    /// Answers the removed sessions; fewer than `max` means none are left. Expired sessions are
    /// not remembered as revoked.
    ///
    /// The cost should grow with the number of expired sessions, not with all sessions, and a
    /// call should not hold up concurrent validations for long: `max` bounds a batch.
    ///
    /// # Errors
    /// [`StoreError`] only if the store cannot answer.
    fn remove_expired(
        &self,
        now: Timestamp,
        max: usize,
    ) -> impl Future<Output = Result<Vec<SessionRecord>, StoreError>> + Send;
}

/// Refresh tokens and the access-token denylist: what a [`SessionStore`] adds so that the
/// manager can issue access and refresh tokens
/// ([`SessionManager::set_keys`](crate::SessionManager::set_keys)).
///
/// With it, the core methods also keep refresh tokens: [`insert`](SessionStore::insert) and
/// [`rotate`](SessionStore::rotate) store the refresh digest they are given, removals drop a
/// session's refresh tokens, remember its current and last spent refresh token as revoked, and
/// add the session to the denylist until `deny_access_until`. Atomic per user, as the core.
pub trait TokenStore: SessionStore {
    /// Refresh-token rotation with reuse detection, as one atomic step per session.
    ///
    /// Find the session whose current or spent refresh token is `presented`, then:
    /// * **current** — if the session has expired at `now`, answer
    ///   [`RefreshOutcome::Expired`]; otherwise make `successor` current, remember `presented`
    ///   as spent at `now` together with `successor.sealed`, renew the session as
    ///   [`touch`](SessionStore::touch) would with `touch`, and answer [`RefreshOutcome::Rotated`].
    /// * **the token spent last, less than `grace` from now** (`|now - spent_at| < grace`: a
    ///   `spent_at` later than `now` comes from another instance whose clock runs ahead, and a
    ///   concurrent refresh must not be taken for reuse) — change nothing and answer [`RefreshOutcome::Replayed`] with the sealed successor stored then
    ///   ([`RefreshOutcome::Expired`] if the session has expired meanwhile).
    /// * **any other spent token** among the last [`REFRESH_REUSE_HISTORY`] — remove the session
    ///   as by [`remove`](SessionStore::remove) with `reuse` and answer [`RefreshOutcome::Reused`].
    /// * a token of a session remembered as revoked (see the module docs) —
    ///   [`RefreshOutcome::Revoked`] with the reason.
    /// * otherwise [`RefreshOutcome::NotFound`].
    ///
    /// Two concurrent calls with the same current token: exactly one rotates; the other sees
    /// the token spent (and replays within the grace window). A family never forks.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] if `successor.digest` is already stored (nothing changes); other
    /// [`StoreError`]s if the store cannot answer.
    fn rotate_refresh(
        &self,
        presented: &TokenDigest,
        successor: Successor,
        now: Timestamp,
        grace: Duration,
        touch: TouchPolicy,
        reuse: Revocation,
    ) -> impl Future<Output = Result<RefreshOutcome, StoreError>> + Send;

    /// Whether an access token of session `id`, issued for `generation`, is denylisted at
    /// `now`, and why: what the session's denylist entry answers ([`DenyEntry::refuses`]).
    /// The second hot path (every access-token verification): O(1), and cheap enough to run
    /// on every request.
    ///
    /// # Errors
    /// [`StoreError`] only if the store cannot answer; callers must then refuse the token.
    fn access_denied(
        &self,
        id: &SessionId,
        generation: u64,
        now: Timestamp,
    ) -> impl Future<Output = Result<Option<AccessDenial>, StoreError>> + Send;
}

/// Scan and restore: what a [`SessionStore`] adds for export, import, snapshots between stores
/// and statistics ([`SessionManager::export`](crate::SessionManager::export),
/// [`import`](crate::SessionManager::import), [`stats`](crate::SessionManager::stats)).
pub trait BackupStore: SessionStore {
    /// One page of everything the store holds (sessions with their refresh digests, remembered
    /// revocations, denylist entries), starting at `cursor` ([`ScanCursor::START`] for the
    /// first page), about [`SCAN_PAGE`] items long. Following `next` until it is `None` visits
    /// every item stored for the whole scan exactly once. Pages are read without blocking
    /// concurrent operations; items changed during a scan may appear in their old or new state,
    /// or (if removed) not at all.
    ///
    /// # Errors
    /// [`StoreError`] only if the store cannot answer.
    fn scan(&self, cursor: ScanCursor) -> impl Future<Output = Result<ScanPage, StoreError>> + Send;

    /// Adds `items` (as exported by [`scan`](Self::scan), possibly from another store), all or
    /// nothing: if any session id, token digest or refresh digest is already stored, nothing
    /// is added. No per-user limit applies. Items already over at `now` (sessions past a
    /// deadline, revocations and denylist entries whose `until` has passed) may be skipped.
    /// Meant for a store that is not yet serving traffic.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] on a collision (nothing added); other [`StoreError`]s if the
    /// store cannot answer.
    fn restore(&self, items: Vec<StoredItem>, now: Timestamp) -> impl Future<Output = Result<(), StoreError>> + Send;
}
