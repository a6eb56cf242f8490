//! [`MemoryStore`]: the embedded, in-process store (feature `memory`, on by default).
//!
//! # Layout
//!
//! Each session is one reference-counted allocation (`Entry`) holding its fixed facts and, as
//! atomics, its activity (`last_seen_at`, idle deadline, request count). Three indexes point at
//! it, each a table of 64 lock-sharded hash tables whose slots are single pointers:
//!
//! * by token digest — the validation hot path. The digest is uniformly random, so its own bits
//!   serve as the hash; nothing is hashed twice.
//! * by session id — for revocation and administration.
//! * by user — one slot per user with a mutex around the user's session list. Every operation
//!   that must be atomic for a user (insert with the limit, rotation, removal, revoke-all) holds
//!   that mutex, so concurrent logins of one user serialise while other users proceed.
//!
//! Validation takes one shard's read lock and touches the session's atomics: no allocation, no
//! write lock, no user lock. Lock order is always user mutex, then shard locks. A session's
//! extras (metadata, data, refresh tokens) are read without a lock and replaced, copy on write,
//! only under its user's mutex.
//!
//! Revoked sessions are remembered (digest → reason, for the session token and its current and
//! last spent refresh tokens) until their absolute deadline, up to
//! [`MemoryStoreBuilder::max_tracked_revocations`]; [`SessionStore::remove_expired`] forgets
//! the passed ones. The access-token denylist (session id → reason, until the last access token
//! issued before the revocation has expired) is a sharded map: one read lock per check. It is
//! never truncated early, since forgetting an entry would let a revoked token through; its size
//! is bounded by the revocations of one access-token lifetime.
//!
//! Refresh tokens live in the session's shared extras (current digest, the last spent one with
//! its sealed successor, and the previous [`REFRESH_REUSE_HISTORY`] spent digests), with a
//! digest → session id index; sessions without refresh tokens pay nothing for them.

use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use dashmap::DashMap;
use hashbrown::HashTable;
use parking_lot::{Mutex, RwLock};

use crate::clock::Timestamp;
use crate::error::{RevocationReason, StoreError};
use crate::expiry;
use crate::hash::RandomKeys;
use crate::policy::{Candidate, Limit, select_evictions};
use crate::session::{DataPatch, Metadata, SessionData, SessionId, SessionRecord, UserId};
use crate::store::{
    DataOutcome, InsertOutcome, Lookup, REFRESH_REUSE_HISTORY, RefreshDigests, RefreshOutcome, Revocation, ScanPage,
    SessionStore, StoredItem, Successor, TouchPolicy,
};
use crate::token::TokenDigest;

const SHARDS: usize = 64;

/// The in-process session store. Cheap to clone: clones share the same sessions.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), sessionkit::Error> {
/// use sessionkit::{MemoryStore, SessionConfig, SessionManager, NewSession, UserId};
///
/// let manager = SessionManager::new(MemoryStore::new(), SessionConfig::default());
/// let login = manager.create(NewSession::new(UserId::new("alice")?)).await?;
/// let session = manager.validate(login.token.expose_secret()).await?;
/// assert_eq!(session.user().as_str(), "alice");
/// # Ok(()) }
/// ```
#[derive(Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("sessions", &self.inner.sessions.len())
            .field("users", &self.inner.users.len())
            .field("tracked_revocations", &self.inner.revoked.len())
            .field("denylisted", &self.inner.denied.len())
            .finish()
    }
}

/// Options of a [`MemoryStore`].
#[derive(Debug, Clone)]
#[must_use]
pub struct MemoryStoreBuilder {
    max_tracked_revocations: usize,
}

impl Default for MemoryStoreBuilder {
    fn default() -> Self {
        Self { max_tracked_revocations: 100_000 }
    }
}

impl MemoryStoreBuilder {
    /// How many revoked tokens the store remembers, each until its session's absolute deadline,
    /// so that a revoked token is answered "revoked" rather than "unknown". A revoked session
    /// takes one entry for its session token, and one for each of its current refresh token and
    /// the one spent last, if it has them. Default 100,000 (about 6 MB). When full, revocations whose deadline passed are forgotten first; if none has, a new
    /// revocation is not remembered and its token reads as unknown. Either way it is rejected.
    pub fn max_tracked_revocations(mut self, n: usize) -> Self {
        self.max_tracked_revocations = n;
        self
    }

    /// Builds the store.
    #[must_use]
    pub fn build(self) -> MemoryStore {
        MemoryStore { inner: Arc::new(Inner::new(self.max_tracked_revocations)) }
    }
}

impl MemoryStore {
    /// An empty store with the default options.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// A builder for a store with other options.
    pub fn builder() -> MemoryStoreBuilder {
        MemoryStoreBuilder::default()
    }

    /// Number of sessions stored, live or expired but not yet swept.
    #[must_use]
    pub fn len(&self) -> usize {
        self.inner.sessions.len()
    }

    /// `true` when no session is stored.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of users with at least one stored session (the size of the per-user index).
    #[must_use]
    pub fn user_count(&self) -> usize {
        self.inner.users.len()
    }

    /// Number of revocations currently remembered.
    #[must_use]
    pub fn tracked_revocations(&self) -> usize {
        self.inner.revoked.len()
    }

    /// Number of sessions on the access-token denylist.
    #[must_use]
    pub fn denylist_len(&self) -> usize {
        self.inner.denied.len()
    }

    /// Number of refresh tokens indexed (current and remembered spent ones).
    #[must_use]
    pub fn refresh_token_count(&self) -> usize {
        self.inner.refresh_index.len()
    }
}

struct Inner {
    sessions: Table<Arc<Entry>>,
    by_id: Table<Arc<Entry>>,
    users: Table<Arc<UserSlot>>,
    user_hasher: std::collections::hash_map::RandomState,
    revoked: DashMap<TokenDigest, Tombstone, RandomKeys>,
    max_tracked_revocations: usize,
    /// No remembered revocation expires before this instant (Unix nanoseconds), so sweeping a
    /// full `revoked` table before then would free nothing. A lower bound: it may be stale-low
    /// (which costs one useless sweep), and is stale-high only if a revocation is remembered
    /// concurrently with a sweep (which costs remembering fewer revocations until the next one).
    revocations_expire_from: AtomicI64,
    denied: DashMap<SessionId, Tombstone, RandomKeys>,
    refresh_index: DashMap<TokenDigest, SessionId, RandomKeys>,
    expiry: ExpiryIndex,
}

/// Sessions by the second their effective deadline fell in when last indexed, for the sweeper.
///
/// Absolute deadlines are fixed but idle deadlines move on every renewal, and renewals must
/// not pay for index upkeep. So the index is lazy: a session is filed under its deadline when
/// it is stored, and when that second has passed the sweeper re-checks it and either removes it
/// (expired) or files it again under its current deadline (renewed meanwhile). A sweep costs
/// the number of sessions whose filed deadline has passed, not the number of sessions.
///
/// Entries are weak, but a `Weak` keeps its session's allocation (not what the session owns)
/// until it is dropped. Sessions removed otherwise (logout, eviction, rotation) would so hold
/// on to that memory until their filed deadline, days for remember-me sessions. The index
/// therefore compacts itself: when it has grown to twice its size after the last compaction
/// (plus [`COMPACT_SLACK`]), every filing also drops the dead entries of the next
/// [`COMPACT_STEP`] or so, bucket by bucket, until it has been through all of them. Dead
/// entries stay below about twice the entries of the last compaction plus the slack, at an
/// amortised cost of a few entries examined per filing, and no filing holds the lock for a
/// whole pass.
#[derive(Default)]
struct ExpiryIndex {
    state: Mutex<IndexState>,
}

#[derive(Default)]
struct IndexState {
    buckets: std::collections::BTreeMap<i64, Vec<std::sync::Weak<Entry>>>,
    /// Entries in all buckets.
    len: usize,
    /// `len` when the last compaction ended.
    compacted_len: usize,
    /// While a compaction runs: the first bucket it has not been through.
    cursor: Option<i64>,
}

const BUCKET_NANOS: i64 = 1_000_000_000;

/// How many candidates a sweep takes from the index at a time (the index lock is held that long).
const SWEEP_CHUNK: usize = 256;

/// Growth of the expiry index, beyond twice its size after the last compaction, that starts a
/// compaction.
const COMPACT_SLACK: usize = 4096;

/// Entries a compaction examines per filing (whole buckets: it may go over by one bucket).
const COMPACT_STEP: usize = 32;

impl ExpiryIndex {
    fn file(&self, entry: &Arc<Entry>) {
        let deadline = entry.idle_deadline().min(entry.absolute_deadline).unix_nanos();
        // Filed under the first whole second at or after it (the ceiling), so a bucket whose
        // second has come holds only deadlines that have passed.
        let bucket = deadline.saturating_add(BUCKET_NANOS - 1).div_euclid(BUCKET_NANOS);
        let mut state = self.state.lock();
        let state = &mut *state;
        let bucket = state.buckets.entry(bucket).or_default();
        // A bucket can hold a second's worth of logins. Past a few thousand entries it grows by
        // an eighth rather than doubling, so its spare room stays under 12.5% (large buffers are
        // reallocated by remapping pages, not by copying).
        if bucket.len() == bucket.capacity() && bucket.len() >= 4096 {
            bucket.reserve_exact(bucket.len() / 8);
        }
        bucket.push(Arc::downgrade(entry));
        state.len += 1;
        if state.cursor.is_none() && state.len >= state.compacted_len.saturating_mul(2).saturating_add(COMPACT_SLACK) {
            state.cursor = Some(i64::MIN);
        }
        state.compact_step();
    }

    /// Up to `max` entries filed under seconds that have come at `now`.
    fn take_due(&self, now: Timestamp, max: usize) -> Vec<std::sync::Weak<Entry>> {
        let due = now.unix_nanos().div_euclid(BUCKET_NANOS);
        let mut state = self.state.lock();
        let mut out = Vec::new();
        while out.len() < max {
            let Some(mut first) = state.buckets.first_entry() else { break };
            if *first.key() > due {
                break;
            }
            let bucket = first.get_mut();
            let take = bucket.len().min(max - out.len());
            out.extend(bucket.drain(bucket.len() - take..));
            if bucket.is_empty() {
                first.remove();
            }
        }
        state.len -= out.len();
        out
    }

    fn len(&self) -> usize {
        self.state.lock().len
    }
}

impl IndexState {
    /// If a compaction runs: drops the dead entries of the next buckets, about
    /// [`COMPACT_STEP`] entries' worth.
    fn compact_step(&mut self) {
        let mut examined = 0;
        while examined < COMPACT_STEP {
            let Some(from) = self.cursor else { return };
            let Some((&key, bucket)) = self.buckets.range_mut(from..).next() else {
                self.cursor = None;
                self.compacted_len = self.len;
                return;
            };
            let before = bucket.len();
            bucket.retain(|e| e.strong_count() > 0);
            examined += before;
            self.len -= before - bucket.len();
            if bucket.is_empty() {
                self.buckets.remove(&key);
            }
            self.cursor = key.checked_add(1);
            if self.cursor.is_none() {
                self.compacted_len = self.len;
            }
        }
    }
}

impl Default for Inner {
    fn default() -> Self {
        Self::new(MemoryStoreBuilder::default().max_tracked_revocations)
    }
}

#[derive(Clone, Copy)]
struct Tombstone {
    reason: RevocationReason,
    until: Timestamp,
}

/// One stored session. Fixed facts are plain fields; activity is atomic so that validation
/// needs no lock; metadata, data and refresh tokens sit behind one shared pointer, so that
/// sessions without them pay 8 bytes.
struct Entry {
    digest: TokenDigest,
    id: SessionId,
    user: UserId,
    created_at: Timestamp,
    absolute_deadline: Timestamp,
    idle_deadline: AtomicI64,
    last_seen_at: AtomicI64,
    /// The request count in the low 62 bits, and two flags above it: [`REMEMBER_ME`] (fixed) and
    /// [`HAS_EXTRA`] (whether `extra` has ever been set, so that `record` can skip loading it for
    /// the common sessions without metadata, data or refresh tokens; never cleared). Packed so
    /// that the entry takes 112 bytes rather than 120: two booleans beside the 8-aligned fields
    /// would cost a word. 2^62 requests are beyond reach, so the count never carries into the
    /// flags.
    counter: AtomicU64,
    /// Metadata, data and refresh tokens, read without a lock. Copy on write: a published
    /// `Extra` never changes; writers build a new one and store it while they hold the user's
    /// mutex, so writes of one session are serialised and none is lost. (A mutex here would
    /// cost 8 bytes per session for its lock byte and padding.)
    extra: ArcSwapOption<Extra>,
}

#[derive(Clone)]
struct Extra {
    metadata: Metadata,
    data: SessionData,
    refresh: Option<RefreshFamily>,
}

/// A session's refresh tokens: the current one, the one spent last (with its sealed successor,
/// for the grace window), and older spent ones, most recent first.
#[derive(Clone)]
struct RefreshFamily {
    current: TokenDigest,
    last_spent: Option<Spent>,
    older: VecDeque<TokenDigest>,
}

#[derive(Clone)]
struct Spent {
    digest: TokenDigest,
    at: Timestamp,
    sealed: Box<[u8]>,
}

impl RefreshFamily {
    /// A family whose only token is `current`, none spent yet.
    fn new(current: TokenDigest) -> Self {
        Self { current, last_spent: None, older: VecDeque::new() }
    }

    fn digests(&self) -> impl Iterator<Item = &TokenDigest> {
        std::iter::once(&self.current).chain(self.last_spent.as_ref().map(|s| &s.digest)).chain(self.older.iter())
    }
}

/// What to do with a presented refresh token, decided under the user's mutex.
enum RefreshStep {
    Rotate,
    Replay { sealed: Vec<u8>, spent_at: Timestamp },
    Reuse,
    Unknown,
}

/// [`Entry::counter`]: the session was created with remember-me.
const REMEMBER_ME: u64 = 1 << 63;
/// [`Entry::counter`]: `extra` has been set.
const HAS_EXTRA: u64 = 1 << 62;
/// [`Entry::counter`]: the request count.
const COUNT_MASK: u64 = HAS_EXTRA - 1;

impl Entry {
    fn remember_me(&self) -> bool {
        self.counter.load(Ordering::Relaxed) & REMEMBER_ME != 0
    }

    fn from_record(r: SessionRecord, refresh: Option<TokenDigest>) -> Self {
        Self::with_family(r, refresh.map(RefreshFamily::new))
    }

    fn with_family(r: SessionRecord, refresh: Option<RefreshFamily>) -> Self {
        let extra = if r.metadata.is_empty() && r.data.is_empty() && refresh.is_none() {
            None
        } else {
            Some(Arc::new(Extra { metadata: r.metadata, data: r.data, refresh }))
        };
        Self {
            digest: r.digest,
            id: r.id,
            user: r.user,
            created_at: r.created_at,
            absolute_deadline: r.absolute_deadline,
            idle_deadline: AtomicI64::new(r.idle_deadline.unix_nanos()),
            last_seen_at: AtomicI64::new(r.last_seen_at.unix_nanos()),
            counter: AtomicU64::new(
                r.request_count.min(COUNT_MASK)
                    | if r.remember_me { REMEMBER_ME } else { 0 }
                    | if extra.is_some() { HAS_EXTRA } else { 0 },
            ),
            extra: ArcSwapOption::new(extra),
        }
    }

    fn idle_deadline(&self) -> Timestamp {
        Timestamp::from_unix_nanos(self.idle_deadline.load(Ordering::Acquire))
    }

    fn last_seen_at(&self) -> Timestamp {
        Timestamp::from_unix_nanos(self.last_seen_at.load(Ordering::Acquire))
    }

    fn check(&self, now: Timestamp) -> Result<(), crate::error::ExpiryReason> {
        expiry::check(now, self.idle_deadline(), self.absolute_deadline)
    }

    fn is_live(&self, now: Timestamp) -> bool {
        self.check(now).is_ok()
    }

    fn candidate(&self) -> Candidate {
        Candidate { created_at: self.created_at, last_seen_at: self.last_seen_at() }
    }

    fn record(&self) -> SessionRecord {
        let counter = self.counter.load(Ordering::Acquire);
        let (metadata, data) = if counter & HAS_EXTRA != 0 {
            match self.extra.load().as_deref() {
                Some(x) => (x.metadata.clone(), x.data.clone()),
                None => (Metadata::default(), SessionData::default()),
            }
        } else {
            (Metadata::default(), SessionData::default())
        };
        SessionRecord {
            id: self.id,
            digest: self.digest,
            user: self.user.clone(),
            created_at: self.created_at,
            last_seen_at: self.last_seen_at(),
            idle_deadline: self.idle_deadline(),
            absolute_deadline: self.absolute_deadline,
            remember_me: counter & REMEMBER_ME != 0,
            request_count: counter & COUNT_MASK,
            metadata,
            data,
        }
    }

    /// A copy of this entry under another digest, for rotation, sharing its extras (metadata,
    /// data, refresh family). The caller holds the user's mutex. The user id is copied afresh,
    /// to be allocated beside the new entry (see `insert`).
    fn rekeyed(&self, digest: TokenDigest) -> Self {
        let extra = self.extra.load_full();
        let counter = self.counter.load(Ordering::Acquire) & !HAS_EXTRA;
        Self {
            digest,
            id: self.id,
            user: self.user.copied(),
            created_at: self.created_at,
            absolute_deadline: self.absolute_deadline,
            idle_deadline: AtomicI64::new(self.idle_deadline.load(Ordering::Acquire)),
            last_seen_at: AtomicI64::new(self.last_seen_at.load(Ordering::Acquire)),
            counter: AtomicU64::new(counter | if extra.is_some() { HAS_EXTRA } else { 0 }),
            extra: ArcSwapOption::new(extra),
        }
    }

    /// Replaces the extras with `f` of a copy of the current ones (or of empty ones), and
    /// answers what `f` answered. The caller holds the user's mutex: that is what keeps two
    /// writers from both copying the same version.
    fn update_extra<R>(&self, f: impl FnOnce(&mut Extra) -> R) -> R {
        let mut next = self.extra.load().as_deref().cloned().unwrap_or_else(|| Extra {
            metadata: Metadata::default(),
            data: SessionData::default(),
            refresh: None,
        });
        let result = f(&mut next);
        self.extra.store(Some(Arc::new(next)));
        self.counter.fetch_or(HAS_EXTRA, Ordering::Release);
        result
    }

    /// The session with its refresh digests, for export.
    fn stored_item(&self) -> StoredItem {
        let refresh = self.extra.load().as_ref().and_then(|x| x.refresh.as_ref()).map(|f| RefreshDigests {
            current: f.current,
            spent: f.last_spent.iter().map(|s| s.digest).chain(f.older.iter().copied()).collect(),
        });
        StoredItem::Session { record: self.record(), refresh }
    }

    /// Renews the session as `touch` would, if due (the caller has checked it is live).
    fn renew(&self, now: Timestamp, policy: TouchPolicy) {
        if policy.count_request {
            self.counter.fetch_add(1, Ordering::Relaxed);
        }
        if expiry::touch_due(now, self.last_seen_at(), policy.interval) {
            let idle = expiry::renewed_idle_deadline(
                now,
                policy.idle_timeout_for(self.remember_me()),
                self.idle_deadline(),
                self.absolute_deadline,
            );
            self.idle_deadline.fetch_max(idle.unix_nanos(), Ordering::AcqRel);
            self.last_seen_at.fetch_max(now.unix_nanos(), Ordering::AcqRel);
        }
    }

    /// Decides what a presented refresh token means for this session.
    fn refresh_step(&self, presented: &TokenDigest, now: Timestamp, grace: Duration) -> RefreshStep {
        let extra = self.extra.load();
        let Some(family) = extra.as_ref().and_then(|x| x.refresh.as_ref()) else {
            return RefreshStep::Unknown;
        };
        if family.current == *presented {
            return RefreshStep::Rotate;
        }
        if let Some(spent) = family.last_spent.as_ref().filter(|s| s.digest == *presented) {
            // A spent_at later than now comes from a clock that runs ahead (or this one was
            // stepped back): within the window on either side, the two were concurrent.
            let within = now.duration_since(spent.at) < grace && spent.at.duration_since(now) < grace;
            return if within {
                RefreshStep::Replay { sealed: spent.sealed.to_vec(), spent_at: spent.at }
            } else {
                RefreshStep::Reuse
            };
        }
        if family.older.contains(presented) { RefreshStep::Reuse } else { RefreshStep::Unknown }
    }
}

/// The per-user index entry. Its state is set to `None` ("dead"), under the mutex, when the slot
/// is unlinked from the user table; whoever finds a dead slot looks the user up again. (`None`
/// rather than a flag beside the list: the option costs no space, a flag 8 bytes per user.)
struct UserSlot {
    user: UserId,
    /// The user's sessions, as an exact-size slice: most users have one or two sessions and
    /// change them rarely, so a `Vec`'s capacity word and spare room would be paid per user for
    /// nothing. [`Inner::with_user`] lends it out as a `Vec`.
    state: Mutex<Option<Box<[Arc<Entry>]>>>,
}

struct UserState {
    sessions: Vec<Arc<Entry>>,
}

impl Inner {
    fn new(max_tracked_revocations: usize) -> Self {
        Self {
            sessions: Table::new(),
            by_id: Table::new(),
            users: Table::new(),
            user_hasher: std::collections::hash_map::RandomState::new(),
            revoked: DashMap::with_hasher(RandomKeys),
            max_tracked_revocations,
            revocations_expire_from: AtomicI64::new(i64::MAX),
            denied: DashMap::with_hasher(RandomKeys),
            refresh_index: DashMap::with_hasher(RandomKeys),
            expiry: ExpiryIndex::default(),
        }
    }

    fn find(&self, digest: &TokenDigest) -> Option<Arc<Entry>> {
        self.sessions.find(digest.shard_bits(), digest.hash_bits(), |e| e.digest == *digest)
    }

    fn find_id(&self, id: &SessionId) -> Option<Arc<Entry>> {
        self.by_id.find(id.shard_bits(), id.hash_bits(), |e| e.id == *id)
    }

    fn revocation(&self, digest: &TokenDigest, now: Timestamp) -> Lookup {
        match self.revoked.get(digest) {
            Some(t) if t.until > now => Lookup::Revoked(t.reason),
            _ => Lookup::NotFound,
        }
    }

    /// The answer for a refresh token with no session: a remembered revocation, or nothing.
    fn refresh_gone(&self, presented: &TokenDigest, now: Timestamp) -> RefreshOutcome {
        match self.revocation(presented, now) {
            Lookup::Revoked(reason) => RefreshOutcome::Revoked(reason),
            _ => RefreshOutcome::NotFound,
        }
    }

    /// Ends a session the caller holds the user lock for: remembers the revocation, denylists
    /// its access tokens, and unlinks it from every index but the user's list (the caller's).
    fn revoke(&self, entry: &Arc<Entry>, revocation: &Revocation) {
        if let Some(until) = revocation.deny_access_until {
            let tombstone = Tombstone { reason: revocation.reason, until };
            self.denied
                .entry(entry.id)
                .and_modify(|t| {
                    if t.until < until {
                        *t = tombstone;
                    }
                })
                .or_insert(tombstone);
        }
        self.remember_revocation(entry.digest, entry.absolute_deadline, revocation.reason, revocation.at);
        if let Some(family) = entry.extra.load().as_ref().and_then(|x| x.refresh.as_ref()) {
            // Its current refresh token and the one spent last answer "revoked" too.
            for digest in std::iter::once(family.current).chain(family.last_spent.as_ref().map(|s| s.digest)) {
                self.remember_revocation(digest, entry.absolute_deadline, revocation.reason, revocation.at);
            }
        }
        self.unlink(entry);
    }

    /// Remembers that `digest` (a session token's or a refresh token's) answers "revoked" for
    /// `reason` until `until`, if the table has room.
    fn remember_revocation(&self, digest: TokenDigest, until: Timestamp, reason: RevocationReason, now: Timestamp) {
        if until <= now || self.max_tracked_revocations == 0 {
            return;
        }
        if self.revoked.len() >= self.max_tracked_revocations {
            // Full. Sweep only if some revocation has expired since the last sweep: sweeping on
            // every revocation made each eviction or logout O(max_tracked_revocations) once the
            // table was full of live revocations.
            if now.unix_nanos() < self.revocations_expire_from.load(Ordering::Relaxed) {
                return;
            }
            let mut earliest = i64::MAX;
            self.revoked.retain(|_, t| {
                let keep = t.until > now;
                if keep {
                    earliest = earliest.min(t.until.unix_nanos());
                }
                keep
            });
            self.revocations_expire_from.store(earliest, Ordering::Relaxed);
            if self.revoked.len() >= self.max_tracked_revocations {
                return;
            }
        }
        self.revoked.insert(digest, Tombstone { reason, until });
        self.revocations_expire_from.fetch_min(until.unix_nanos(), Ordering::Relaxed);
    }

    /// Unlinks `entry` from the digest, id and refresh indexes. The caller holds the user's
    /// mutex and removes it from the user's list.
    fn unlink(&self, entry: &Arc<Entry>) {
        self.sessions.remove(entry.digest.shard_bits(), entry.digest.hash_bits(), |e| Arc::ptr_eq(e, entry));
        self.by_id.remove(entry.id.shard_bits(), entry.id.hash_bits(), |e| Arc::ptr_eq(e, entry));
        let refresh: Vec<TokenDigest> = match entry.extra.load().as_ref().and_then(|x| x.refresh.as_ref()) {
            Some(family) => family.digests().copied().collect(),
            None => Vec::new(),
        };
        for digest in refresh {
            self.refresh_index.remove(&digest);
        }
    }

    fn user_hash(&self, user: &UserId) -> u64 {
        self.user_hasher.hash_one(user.as_str())
    }

    /// Runs `f` with the user's session list locked. With `create`, a missing slot is created;
    /// without, a missing user answers `None`. A list left empty unlinks the slot.
    fn with_user<R>(&self, user: &UserId, create: bool, f: impl FnOnce(&mut UserState) -> R) -> Option<R> {
        let hash = self.user_hash(user);
        let shard_bits = hash.rotate_left(32);
        loop {
            let slot = match self.users.find(shard_bits, hash, |s| s.user == *user) {
                Some(slot) => slot,
                None if create => {
                    let fresh = Arc::new(UserSlot { user: user.clone(), state: Mutex::new(Some(Box::default())) });
                    self.users.insert_if_absent(
                        shard_bits,
                        hash,
                        fresh,
                        |s| s.user == *user,
                        |s| self.user_hash(&s.user),
                    )
                }
                None => return None,
            };
            let mut guard = slot.state.lock();
            let Some(stored) = guard.as_mut() else {
                continue;
            };
            // Lent out as a `Vec` (no copy: the capacity is the length) and put back at its
            // exact size (a reallocation only if `f` changed the length).
            let mut state = UserState { sessions: std::mem::take(stored).into_vec() };
            let result = f(&mut state);
            if state.sessions.is_empty() {
                *guard = None;
                self.users.remove(shard_bits, hash, |s| Arc::ptr_eq(s, &slot));
            } else {
                *stored = state.sessions.into_boxed_slice();
            }
            return Some(result);
        }
    }

    /// Links a restored entry into every index; `false` (and nothing linked) if a key is taken.
    fn link(&self, entry: &Arc<Entry>) -> bool {
        let linked = self.with_user(&entry.user, true, |state| {
            if !self.sessions.insert_unique(
                entry.digest.shard_bits(),
                entry.digest.hash_bits(),
                entry,
                |e| e.digest == entry.digest,
                by_digest,
            ) {
                return false;
            }
            if !self.by_id.insert_unique(
                entry.id.shard_bits(),
                entry.id.hash_bits(),
                entry,
                |e| e.id == entry.id,
                by_id,
            ) {
                self.sessions.remove(entry.digest.shard_bits(), entry.digest.hash_bits(), |e| Arc::ptr_eq(e, entry));
                return false;
            }
            if let Some(family) = entry.extra.load().as_ref().and_then(|x| x.refresh.as_ref()) {
                for d in family.digests() {
                    self.refresh_index.insert(*d, entry.id);
                }
            }
            state.sessions.push(Arc::clone(entry));
            self.expiry.file(entry);
            true
        });
        linked.unwrap_or(false)
    }

    /// Whether `entry` is still the stored session under its digest.
    fn is_current(&self, entry: &Arc<Entry>) -> bool {
        self.find(&entry.digest).is_some_and(|e| Arc::ptr_eq(&e, entry))
    }
}

impl SessionStore for MemoryStore {
    async fn insert(
        &self,
        record: SessionRecord,
        refresh: Option<TokenDigest>,
        limit: Option<Limit>,
        eviction: Revocation,
    ) -> Result<InsertOutcome, StoreError> {
        let inner = &*self.inner;
        let now = eviction.at;
        // The entry takes its own copy of the user id, allocated just before the entry itself:
        // every validation clones the id (an atomic increment on its allocation), and with
        // an allocator that hands out consecutive blocks side by side (glibc's does) the two
        // share a cache line or sit on adjacent ones, instead of the id costing one more miss
        // after the entry's. Measured at 1,000,000 sessions: 1,070-1,130 ns -> 910-960 ns per
        // validation. A new user's slot shares the same copy, so one session per user still
        // costs one id allocation.
        let user = record.user.copied();
        let entry = Arc::new(Entry::from_record(SessionRecord { user: user.clone(), ..record }, refresh));
        let outcome = inner.with_user(&user, true, |state| {
            // Expired sessions of this user go now: they no longer count, and this keeps a
            // user's list bounded even without a sweeper.
            state.sessions.retain(|e| {
                let live = e.is_live(now);
                if !live {
                    inner.unlink(e);
                }
                live
            });
            let evict = match limit {
                Some(limit) => {
                    let candidates: Vec<Candidate> = state.sessions.iter().map(|e| e.candidate()).collect();
                    match select_evictions(limit, &candidates) {
                        Ok(evict) => evict,
                        Err(_) => return Ok(InsertOutcome::LimitReached),
                    }
                }
                None => Vec::new(),
            };
            if inner.find(&entry.digest).is_some()
                || inner.find_id(&entry.id).is_some()
                || refresh.is_some_and(|r| inner.refresh_index.contains_key(&r))
            {
                return Err(StoreError::Conflict);
            }
            // The pre-check above makes these inserts succeed unless a concurrent insert for
            // another user drew the same random digest or id in between.
            if !inner.sessions.insert_unique(
                entry.digest.shard_bits(),
                entry.digest.hash_bits(),
                &entry,
                |e| e.digest == entry.digest,
                by_digest,
            ) {
                return Err(StoreError::Conflict);
            }
            if !inner.by_id.insert_unique(
                entry.id.shard_bits(),
                entry.id.hash_bits(),
                &entry,
                |e| e.id == entry.id,
                by_id,
            ) {
                inner.sessions.remove(entry.digest.shard_bits(), entry.digest.hash_bits(), |e| Arc::ptr_eq(e, &entry));
                return Err(StoreError::Conflict);
            }
            if let Some(r) = refresh {
                inner.refresh_index.insert(r, entry.id);
            }
            let mut evicted = Vec::with_capacity(evict.len());
            for &i in &evict {
                let victim = &state.sessions[i];
                inner.revoke(victim, &eviction);
                evicted.push(victim.record());
            }
            let mut i = 0;
            state.sessions.retain(|_| {
                i += 1;
                !evict.contains(&(i - 1))
            });
            state.sessions.push(Arc::clone(&entry));
            inner.expiry.file(&entry);
            Ok(InsertOutcome::Inserted { evicted })
        });
        outcome.unwrap_or(Err(StoreError::Conflict))
    }

    async fn touch(&self, digest: &TokenDigest, now: Timestamp, policy: TouchPolicy) -> Result<Lookup, StoreError> {
        let inner = &*self.inner;
        let shard = inner.sessions.shard(digest.shard_bits()).read();
        let Some(e) = shard.find(digest.hash_bits(), |e| e.digest == *digest) else {
            drop(shard);
            return Ok(inner.revocation(digest, now));
        };
        if let Err(reason) = e.check(now) {
            return Ok(Lookup::Expired { reason, record: Box::new(e.record()) });
        }
        e.renew(now, policy);
        // Built in place in the answer: the record is the largest value on this path.
        Ok(Lookup::Live(e.record()))
    }

    async fn get(&self, digest: &TokenDigest) -> Result<Option<SessionRecord>, StoreError> {
        Ok(self.inner.find(digest).map(|e| e.record()))
    }

    async fn get_by_id(&self, id: &SessionId) -> Result<Option<SessionRecord>, StoreError> {
        Ok(self.inner.find_id(id).map(|e| e.record()))
    }

    async fn rotate(
        &self,
        old: &TokenDigest,
        new: TokenDigest,
        refresh: Option<TokenDigest>,
        now: Timestamp,
    ) -> Result<Lookup, StoreError> {
        let inner = &*self.inner;
        let Some(entry) = inner.find(old) else {
            return Ok(inner.revocation(old, now));
        };
        let outcome = inner.with_user(&entry.user, false, |state| {
            // Re-check under the user's mutex: a concurrent rotation or removal may have won.
            if !inner.is_current(&entry) {
                return Ok(inner.revocation(old, now));
            }
            if let Err(reason) = entry.check(now) {
                return Ok(Lookup::Expired { reason, record: Box::new(entry.record()) });
            }
            if refresh.is_some_and(|r| inner.refresh_index.contains_key(&r)) {
                return Err(StoreError::Conflict);
            }
            let fresh = Arc::new(entry.rekeyed(new));
            if !inner.sessions.insert_unique(new.shard_bits(), new.hash_bits(), &fresh, |e| e.digest == new, by_digest)
            {
                return Err(StoreError::Conflict);
            }
            if let Some(refresh) = refresh {
                if let Some(replaced) = fresh.update_extra(|x| x.refresh.replace(RefreshFamily::new(refresh))) {
                    for d in replaced.digests() {
                        inner.refresh_index.remove(d);
                    }
                }
                inner.refresh_index.insert(refresh, fresh.id);
            }
            inner.sessions.remove(old.shard_bits(), old.hash_bits(), |e| Arc::ptr_eq(e, &entry));
            inner.by_id.replace(entry.id.shard_bits(), entry.id.hash_bits(), |e| Arc::ptr_eq(e, &entry), &fresh);
            for slot in &mut state.sessions {
                if Arc::ptr_eq(slot, &entry) {
                    *slot = Arc::clone(&fresh);
                }
            }
            inner.expiry.file(&fresh);
            Ok(Lookup::Live(fresh.record()))
        });
        outcome.unwrap_or_else(|| Ok(inner.revocation(old, now)))
    }

    async fn update_data(
        &self,
        id: &SessionId,
        patch: &DataPatch,
        max_bytes: usize,
        now: Timestamp,
    ) -> Result<DataOutcome, StoreError> {
        let Some(entry) = self.inner.find_id(id) else {
            return Ok(DataOutcome::NotFound);
        };
        if !entry.is_live(now) {
            return Ok(DataOutcome::NotFound);
        }
        // Under the user's mutex, so that concurrent patches of the session apply one after
        // the other, to the session as it is now: a rotation meanwhile replaced the entry,
        // and patching the replaced one would lose the patch.
        let outcome = self.inner.with_user(&entry.user, false, |state| {
            let Some(entry) = state.sessions.iter().find(|e| e.id == *id) else {
                return DataOutcome::NotFound;
            };
            let current = entry.extra.load().as_ref().map(|x| x.data.clone()).unwrap_or_default();
            let (next, size) = current.patched(patch);
            if size > max_bytes {
                return DataOutcome::TooLarge { size };
            }
            entry.update_extra(|x| x.data = next.clone());
            DataOutcome::Updated(next)
        });
        Ok(outcome.unwrap_or(DataOutcome::NotFound))
    }

    async fn remove(&self, id: &SessionId, revocation: Revocation) -> Result<Option<SessionRecord>, StoreError> {
        let inner = &*self.inner;
        let Some(entry) = inner.find_id(id) else {
            return Ok(None);
        };
        let removed = inner.with_user(&entry.user, false, |state| {
            let pos = state.sessions.iter().position(|e| e.id == *id)?;
            let victim = state.sessions.swap_remove(pos);
            inner.revoke(&victim, &revocation);
            Some(victim.record())
        });
        Ok(removed.flatten())
    }

    async fn remove_user(
        &self,
        user: &UserId,
        keep: Option<&SessionId>,
        revocation: Revocation,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        let inner = &*self.inner;
        let removed = inner.with_user(user, false, |state| {
            let mut removed = Vec::new();
            state.sessions.retain(|e| {
                if Some(&e.id) == keep {
                    return true;
                }
                inner.revoke(e, &revocation);
                removed.push(e.record());
                false
            });
            removed
        });
        Ok(removed.unwrap_or_default())
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
        let inner = &*self.inner;
        let Some(id) = inner.refresh_index.get(presented).map(|r| *r) else {
            return Ok(inner.refresh_gone(presented, now));
        };
        let Some(entry) = inner.find_id(&id) else {
            return Ok(inner.refresh_gone(presented, now));
        };
        let outcome = inner.with_user(&entry.user, false, |state| {
            // Re-check under the user's mutex: the session may have been rotated or removed.
            let Some(entry) = state.sessions.iter().find(|e| e.id == id).cloned() else {
                return Ok(inner.refresh_gone(presented, now));
            };
            match entry.refresh_step(presented, now, grace) {
                RefreshStep::Unknown => Ok(RefreshOutcome::NotFound),
                RefreshStep::Reuse => {
                    if let Some(pos) = state.sessions.iter().position(|e| Arc::ptr_eq(e, &entry)) {
                        state.sessions.swap_remove(pos);
                    }
                    inner.revoke(&entry, &reuse);
                    Ok(RefreshOutcome::Reused(entry.record()))
                }
                RefreshStep::Replay { sealed, spent_at } => match entry.check(now) {
                    Err(reason) => Ok(RefreshOutcome::Expired { reason, record: Box::new(entry.record()) }),
                    Ok(()) => Ok(RefreshOutcome::Replayed { record: entry.record(), sealed, spent_at }),
                },
                RefreshStep::Rotate => {
                    if let Err(reason) = entry.check(now) {
                        return Ok(RefreshOutcome::Expired { reason, record: Box::new(entry.record()) });
                    }
                    match inner.refresh_index.entry(successor.digest) {
                        dashmap::Entry::Occupied(_) => return Err(StoreError::Conflict),
                        dashmap::Entry::Vacant(slot) => {
                            slot.insert(id);
                        }
                    }
                    let forgotten = entry.update_extra(|extra| {
                        extra.refresh.as_mut().and_then(|family| {
                            if let Some(previous) = family.last_spent.take() {
                                family.older.push_front(previous.digest);
                            }
                            family.last_spent =
                                Some(Spent { digest: family.current, at: now, sealed: successor.sealed.into() });
                            family.current = successor.digest;
                            (family.older.len() > REFRESH_REUSE_HISTORY).then(|| family.older.pop_back()).flatten()
                        })
                    });
                    if let Some(old) = forgotten {
                        inner.refresh_index.remove(&old);
                    }
                    entry.renew(now, touch);
                    Ok(RefreshOutcome::Rotated(entry.record()))
                }
            }
        });
        outcome.unwrap_or_else(|| Ok(inner.refresh_gone(presented, now)))
    }

    async fn access_denied(&self, id: &SessionId, now: Timestamp) -> Result<Option<RevocationReason>, StoreError> {
        Ok(self.inner.denied.get(id).and_then(|t| (t.until > now).then_some(t.reason)))
    }

    async fn scan(&self, cursor: u64, _count: usize) -> Result<ScanPage, StoreError> {
        Ok(self.page(cursor))
    }

    async fn restore(&self, items: Vec<StoredItem>) -> Result<(), StoreError> {
        self.restore_items(items)
    }

    async fn list_user(&self, user: &UserId, now: Timestamp) -> Result<Vec<SessionRecord>, StoreError> {
        let list = self.inner.with_user(user, false, |state| {
            let mut live: Vec<SessionRecord> =
                state.sessions.iter().filter(|e| e.is_live(now)).map(|e| e.record()).collect();
            live.sort_by_key(|r| (r.created_at, r.id));
            live
        });
        Ok(list.unwrap_or_default())
    }

    async fn count(&self) -> Result<usize, StoreError> {
        Ok(self.inner.sessions.len())
    }

    async fn remove_expired(&self, now: Timestamp, max: usize) -> Result<Vec<SessionRecord>, StoreError> {
        Ok(self.sweep(now, max))
    }
}

impl MemoryStore {
    /// One page of the store's contents: one shard of the session table (about 1/64 of the
    /// sessions), then the remembered revocations, then the denylist.
    fn page(&self, cursor: u64) -> ScanPage {
        let inner = &*self.inner;
        let shards = SHARDS as u64;
        let items = match cursor {
            c if c < shards => {
                // Usize from a u64 below 64.
                let entries = inner.sessions.shard_values(c as usize);
                entries.iter().map(|e| e.stored_item()).collect()
            }
            c if c == shards => inner
                .revoked
                .iter()
                .map(|t| StoredItem::Revoked { digest: *t.key(), reason: t.reason, until: t.until })
                .collect(),
            c if c == shards + 1 => inner
                .denied
                .iter()
                .map(|t| StoredItem::Denied { session_id: *t.key(), reason: t.reason, until: t.until })
                .collect(),
            _ => Vec::new(),
        };
        let next = (cursor < shards + 1).then_some(cursor + 1);
        ScanPage { items, next }
    }

    fn restore_items(&self, items: Vec<StoredItem>) -> Result<(), StoreError> {
        let inner = &*self.inner;
        let mut sessions = Vec::new();
        let mut seen_ids = std::collections::HashSet::new();
        let mut seen_digests = std::collections::HashSet::new();
        for item in &items {
            if let StoredItem::Session { record, refresh } = item {
                let refresh_digests = refresh.iter().flat_map(|r| std::iter::once(&r.current).chain(&r.spent));
                for d in std::iter::once(&record.digest).chain(refresh_digests) {
                    if !seen_digests.insert(*d.as_bytes())
                        || inner.find(d).is_some()
                        || inner.refresh_index.contains_key(d)
                    {
                        return Err(StoreError::Conflict);
                    }
                }
                if !seen_ids.insert(record.id) || inner.find_id(&record.id).is_some() {
                    return Err(StoreError::Conflict);
                }
            }
        }
        for item in items {
            match item {
                StoredItem::Session { record, refresh } => {
                    let family = refresh.map(|r| RefreshFamily {
                        current: r.current,
                        last_spent: None,
                        older: r.spent.into_iter().take(REFRESH_REUSE_HISTORY + 1).collect(),
                    });
                    // A fresh copy of the user id beside the entry, as `insert` makes.
                    let record = SessionRecord { user: record.user.copied(), ..record };
                    sessions.push(Arc::new(Entry::with_family(record, family)));
                }
                StoredItem::Revoked { digest, reason, until } => {
                    // Within the same budget as revocations made here (a dump from a store
                    // with a larger one keeps what fits), and seen by the next full-table sweep.
                    if inner.revoked.len() < inner.max_tracked_revocations {
                        inner.revoked.insert(digest, Tombstone { reason, until });
                        inner.revocations_expire_from.fetch_min(until.unix_nanos(), Ordering::Relaxed);
                    }
                }
                StoredItem::Denied { session_id, reason, until } => {
                    inner.denied.insert(session_id, Tombstone { reason, until });
                }
            }
        }
        for (i, entry) in sessions.iter().enumerate() {
            if !inner.link(entry) {
                // A concurrent insert took a key after the check: undo, so nothing is half-restored.
                for linked in &sessions[..i] {
                    inner.with_user(&linked.user, false, |state| {
                        state.sessions.retain(|e| !Arc::ptr_eq(e, linked));
                        inner.unlink(linked);
                    });
                }
                return Err(StoreError::Conflict);
            }
        }
        Ok(())
    }

    fn sweep(&self, now: Timestamp, max: usize) -> Vec<SessionRecord> {
        let inner = &*self.inner;
        let mut removed = Vec::new();
        while removed.len() < max {
            let due = inner.expiry.take_due(now, SWEEP_CHUNK.min(max - removed.len()));
            if due.is_empty() {
                break;
            }
            for entry in due.iter().filter_map(std::sync::Weak::upgrade) {
                // Rotated-away or removed sessions are no longer current: nothing to do.
                if !inner.is_current(&entry) {
                    continue;
                }
                if entry.is_live(now) {
                    // Renewed since it was filed: file it under its new deadline.
                    inner.expiry.file(&entry);
                    continue;
                }
                let done = inner.with_user(&entry.user, false, |state| {
                    let pos = state.sessions.iter().position(|e| Arc::ptr_eq(e, &entry))?;
                    state.sessions.swap_remove(pos);
                    inner.unlink(&entry);
                    Some(entry.record())
                });
                if let Some(record) = done.flatten() {
                    removed.push(record);
                }
            }
        }
        if removed.len() < max {
            // The last batch of a sweep: forget what has run out, and give memory back.
            inner.revoked.retain(|_, t| t.until > now);
            inner.denied.retain(|_, t| t.until > now);
            for shard in 0..SHARDS {
                inner.sessions.shrink_shard_if_sparse(shard, by_digest);
                inner.by_id.shrink_shard_if_sparse(shard, by_id);
            }
        }
        removed
    }

    /// Number of entries in the expiry index: stored sessions, plus removed ones the index has
    /// not dropped yet. It drops them in passing as it grows, so that they stay below about
    /// twice the sessions stored at its last compaction plus 4,096. For monitoring and tests.
    #[must_use]
    pub fn expiry_index_len(&self) -> usize {
        self.inner.expiry.len()
    }

    /// Writes everything the store holds to `path`, atomically: into a temporary file beside
    /// it, flushed to disk, then renamed over it, so that a crash mid-write leaves the previous
    /// snapshot intact. The format is the export format ([`crate::export`]): digests only.
    /// Answers the number of items written.
    ///
    /// # Errors
    /// [`SnapshotError::Io`].
    pub fn save_snapshot(&self, path: impl AsRef<std::path::Path>, now: Timestamp) -> Result<u64, SnapshotError> {
        let path = path.as_ref();
        let io = |source| SnapshotError::Io { path: path.to_owned(), source };
        // A fresh, exclusively created name per save: concurrent saves never share a file.
        static SAVES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let mut tmp_name = path.file_name().unwrap_or_default().to_owned();
        tmp_name.push(format!(".tmp-{}-{}", std::process::id(), SAVES.fetch_add(1, Ordering::Relaxed)));
        let tmp = path.with_file_name(tmp_name);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        // The snapshot names users and their IPs: readable by its owner only.
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(&tmp).map_err(io)?;
        let mut out = std::io::BufWriter::new(file);
        let written = (|| -> std::io::Result<u64> {
            crate::export::write_header(&mut out, now)?;
            let mut count = 0;
            let mut cursor = Some(0);
            while let Some(at) = cursor {
                let page = self.page(at);
                for item in &page.items {
                    crate::export::write_item(&mut out, item)?;
                    count += 1;
                }
                cursor = page.next;
            }
            crate::export::write_end(&mut out, count)?;
            let file = out.into_inner().map_err(std::io::IntoInnerError::into_error)?;
            file.sync_all()?;
            Ok(count)
        })();
        let count = match written {
            Ok(count) => count,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(io(e));
            }
        };
        std::fs::rename(&tmp, path).map_err(io)?;
        // Make the rename itself durable.
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
        }
        Ok(count)
    }

    /// Adds everything in the snapshot at `path` to this store (normally empty, at startup).
    /// A missing file is not an error (a first start): it answers 0. A file that exists but
    /// cannot be read completely is refused, and nothing is added: a corrupt snapshot never
    /// silently starts an empty store.
    ///
    /// # Errors
    /// [`SnapshotError::Io`], [`SnapshotError::Corrupt`], [`SnapshotError::Conflict`].
    pub fn load_snapshot(&self, path: impl AsRef<std::path::Path>) -> Result<usize, SnapshotError> {
        let path = path.as_ref();
        let file = match std::fs::File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(source) => return Err(SnapshotError::Io { path: path.to_owned(), source }),
        };
        let items = crate::export::read(std::io::BufReader::new(file)).map_err(|source| match source {
            crate::export::ImportError::Io(source) => SnapshotError::Io { path: path.to_owned(), source },
            source => SnapshotError::Corrupt { path: path.to_owned(), source },
        })?;
        let count = items.len();
        self.restore_items(items).map_err(|_| SnapshotError::Conflict { path: path.to_owned() })?;
        Ok(count)
    }
}

/// A snapshot could not be written or loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// Reading or writing the file failed.
    #[error("snapshot {path}: {source}", path = path.display())]
    Io {
        /// The snapshot file.
        path: std::path::PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a complete, valid snapshot.
    #[error("snapshot {path} is corrupt: {source}", path = path.display())]
    Corrupt {
        /// The snapshot file.
        path: std::path::PathBuf,
        /// What is wrong, with the line.
        #[source]
        source: crate::export::ImportError,
    },
    /// The store already holds sessions that the snapshot also holds.
    #[error("the store already holds sessions of snapshot {path}", path = path.display())]
    Conflict {
        /// The snapshot file.
        path: std::path::PathBuf,
    },
}

/// The hash of an entry in the digest index.
fn by_digest(e: &Arc<Entry>) -> u64 {
    e.digest.hash_bits()
}

/// The hash of an entry in the id index.
fn by_id(e: &Arc<Entry>) -> u64 {
    e.id.hash_bits()
}

/// 64 hash tables, each behind its own read-write lock, padded to separate cache lines.
struct Table<T> {
    shards: Box<[Shard<T>]>,
}

#[repr(align(128))]
struct Shard<T> {
    map: RwLock<HashTable<T>>,
}

impl<T: Clone> Table<T> {
    fn new() -> Self {
        Self { shards: (0..SHARDS).map(|_| Shard { map: RwLock::new(HashTable::new()) }).collect() }
    }

    fn shard(&self, shard_bits: u64) -> &RwLock<HashTable<T>> {
        // Truncation intended: the low bits choose the shard.
        &self.shards[(shard_bits as usize) % SHARDS].map
    }

    fn len(&self) -> usize {
        self.shards.iter().map(|s| s.map.read().len()).sum()
    }

    fn find(&self, shard_bits: u64, hash: u64, eq: impl FnMut(&T) -> bool) -> Option<T> {
        self.shard(shard_bits).read().find(hash, eq).cloned()
    }

    /// Inserts `value` unless `eq` matches a stored value; answers whether it inserted.
    fn insert_unique(
        &self,
        shard_bits: u64,
        hash: u64,
        value: &T,
        mut eq: impl FnMut(&T) -> bool,
        rehash: impl Fn(&T) -> u64,
    ) -> bool {
        let mut map = self.shard(shard_bits).write();
        if map.find(hash, &mut eq).is_some() {
            return false;
        }
        map.insert_unique(hash, value.clone(), rehash);
        true
    }

    /// Returns the stored value matching `eq`, inserting `value` first if there is none.
    fn insert_if_absent(
        &self,
        shard_bits: u64,
        hash: u64,
        value: T,
        mut eq: impl FnMut(&T) -> bool,
        rehash: impl Fn(&T) -> u64,
    ) -> T {
        let mut map = self.shard(shard_bits).write();
        if let Some(existing) = map.find(hash, &mut eq) {
            return existing.clone();
        }
        map.insert_unique(hash, value, rehash).get().clone()
    }

    fn remove(&self, shard_bits: u64, hash: u64, eq: impl FnMut(&T) -> bool) -> Option<T> {
        let mut map = self.shard(shard_bits).write();
        map.find_entry(hash, eq).ok().map(|e| e.remove().0)
    }

    fn replace(&self, shard_bits: u64, hash: u64, eq: impl FnMut(&T) -> bool, value: &T) {
        let mut map = self.shard(shard_bits).write();
        if let Some(slot) = map.find_mut(hash, eq) {
            *slot = value.clone();
        }
    }

    /// The values of one shard, copied out under a short read lock.
    fn shard_values(&self, shard: usize) -> Vec<T> {
        self.shards[shard].map.read().iter().cloned().collect()
    }

    /// Gives memory back when a shard has shrunk to under a quarter of its capacity.
    fn shrink_shard_if_sparse(&self, shard: usize, rehash: impl Fn(&T) -> u64) {
        {
            let map = self.shards[shard].map.read();
            if map.len() * 4 >= map.capacity() {
                return;
            }
        }
        let mut map = self.shards[shard].map.write();
        if map.len() * 4 < map.capacity() {
            let target = map.len() * 2;
            map.shrink_to(target, rehash);
        }
    }
}
