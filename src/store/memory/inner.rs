//! [`Inner`]: the indexes of a [`MemoryStore`](super::MemoryStore) together, and the operations
//! that keep them consistent: the per-user lists and their mutexes, linking and unlinking a
//! session, remembered revocations and the access-token denylist.

use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use dashmap::DashMap;
use parking_lot::Mutex;

use crate::clock::Timestamp;
use crate::error::RevocationReason;
use crate::hash::RandomKeys;
use crate::session::{SessionId, UserId};
use crate::store::{DenyEntry, DenyScope, Lookup, RefreshOutcome, Revocation};
use crate::token::TokenDigest;

use super::MemoryStoreBuilder;
use super::entry::Entry;
use super::expiry::ExpiryIndex;
use super::table::{Table, by_digest, by_id};

pub(super) struct Inner {
    pub(super) sessions: Table<Arc<Entry>>,
    pub(super) by_id: Table<Arc<Entry>>,
    pub(super) users: Table<Arc<UserSlot>>,
    user_hasher: std::collections::hash_map::RandomState,
    pub(super) revoked: DashMap<TokenDigest, Tombstone, RandomKeys>,
    pub(super) max_tracked_revocations: usize,
    /// No remembered revocation expires before this instant (Unix nanoseconds), so sweeping a
    /// full `revoked` table before then would free nothing. A lower bound: it may be stale-low
    /// (which costs one useless sweep), and is stale-high only if a revocation is remembered
    /// concurrently with a sweep (which costs remembering fewer revocations until the next one).
    pub(super) revocations_expire_from: AtomicI64,
    pub(super) denied: DashMap<SessionId, DenyEntry, RandomKeys>,
    pub(super) refresh_index: DashMap<TokenDigest, SessionId, RandomKeys>,
    pub(super) expiry: ExpiryIndex,
}

impl Default for Inner {
    fn default() -> Self {
        Self::new(MemoryStoreBuilder::default().max_tracked_revocations)
    }
}

impl Inner {
    pub(super) fn new(max_tracked_revocations: usize) -> Self {
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

    pub(super) fn find(&self, digest: &TokenDigest) -> Option<Arc<Entry>> {
        self.sessions.find(digest.shard_bits(), digest.hash_bits(), |e| e.digest == *digest)
    }

    pub(super) fn find_id(&self, id: &SessionId) -> Option<Arc<Entry>> {
        self.by_id.find(id.shard_bits(), id.hash_bits(), |e| e.id == *id)
    }

    pub(super) fn revocation(&self, digest: &TokenDigest, now: Timestamp) -> Lookup {
        match self.revoked.get(digest) {
            Some(t) if t.until > now => Lookup::Revoked(t.reason),
            _ => Lookup::NotFound,
        }
    }

    /// The answer for a refresh token with no session: a remembered revocation, or nothing.
    pub(super) fn refresh_gone(&self, presented: &TokenDigest, now: Timestamp) -> RefreshOutcome {
        match self.revocation(presented, now) {
            Lookup::Revoked(reason) => RefreshOutcome::Revoked(reason),
            _ => RefreshOutcome::NotFound,
        }
    }

    /// Ends a session the caller holds the user lock for: remembers the revocation, denylists
    /// its access tokens, and unlinks it from every index but the user's list (the caller's).
    pub(super) fn revoke(&self, entry: &Arc<Entry>, revocation: &Revocation) {
        if let Some(until) = revocation.deny_access_until {
            self.deny(entry.id, DenyEntry { scope: DenyScope::All(revocation.reason), until });
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

    /// Adds `entry` to the denylist, merged with the session's entry if it has one.
    pub(super) fn deny(&self, id: SessionId, entry: DenyEntry) {
        self.denied.entry(id).and_modify(|e| *e = e.merge(entry)).or_insert(entry);
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
    pub(super) fn unlink(&self, entry: &Arc<Entry>) {
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
    pub(super) fn with_user<R>(&self, user: &UserId, create: bool, f: impl FnOnce(&mut UserState) -> R) -> Option<R> {
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
    pub(super) fn link(&self, entry: &Arc<Entry>) -> bool {
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
    pub(super) fn is_current(&self, entry: &Arc<Entry>) -> bool {
        self.find(&entry.digest).is_some_and(|e| Arc::ptr_eq(&e, entry))
    }
}

#[derive(Clone, Copy)]
pub(super) struct Tombstone {
    pub(super) reason: RevocationReason,
    pub(super) until: Timestamp,
}

/// The per-user index entry. Its state is set to `None` ("dead"), under the mutex, when the slot
/// is unlinked from the user table; whoever finds a dead slot looks the user up again. (`None`
/// rather than a flag beside the list: the option costs no space, a flag 8 bytes per user.)
pub(super) struct UserSlot {
    user: UserId,
    /// The user's sessions, as an exact-size slice: most users have one or two sessions and
    /// change them rarely, so a `Vec`'s capacity word and spare room would be paid per user for
    /// nothing. [`Inner::with_user`] lends it out as a `Vec`.
    state: Mutex<Option<Box<[Arc<Entry>]>>>,
}

pub(super) struct UserState {
    pub(super) sessions: Vec<Arc<Entry>>,
}
