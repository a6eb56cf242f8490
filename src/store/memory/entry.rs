//! [`Entry`]: one stored session, its extras (metadata, data, refresh tokens) and what it
//! decides on its own: whether it is live, its renewal, and what a presented refresh token means.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwapOption;

use crate::clock::Timestamp;
use crate::expiry;
use crate::policy::Candidate;
use crate::session::{Metadata, SessionData, SessionId, SessionRecord, UserId};
use crate::store::{RefreshDigests, StoredItem, TouchPolicy};
use crate::token::TokenDigest;

/// One stored session. Fixed facts are plain fields; activity is atomic so that validation
/// needs no lock; metadata, data and refresh tokens sit behind one shared pointer, so that
/// sessions without them pay 8 bytes.
pub(super) struct Entry {
    pub(super) digest: TokenDigest,
    pub(super) id: SessionId,
    pub(super) user: UserId,
    pub(super) created_at: Timestamp,
    pub(super) absolute_deadline: Timestamp,
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
    pub(super) extra: ArcSwapOption<Extra>,
}

#[derive(Clone)]
pub(super) struct Extra {
    pub(super) metadata: Metadata,
    pub(super) data: SessionData,
    pub(super) refresh: Option<RefreshFamily>,
    /// The session's generation: here rather than in the entry, as most sessions are never
    /// rotated and keep it at zero without paying for it.
    pub(super) generation: u64,
}

impl Extra {
    fn empty() -> Self {
        Self { metadata: Metadata::default(), data: SessionData::default(), refresh: None, generation: 0 }
    }
}

/// A session's refresh tokens: the current one, the one spent last (with its sealed successor,
/// for the grace window), and older spent ones, most recent first.
#[derive(Clone)]
pub(super) struct RefreshFamily {
    pub(super) current: TokenDigest,
    pub(super) last_spent: Option<Spent>,
    pub(super) older: VecDeque<TokenDigest>,
}

#[derive(Clone)]
pub(super) struct Spent {
    pub(super) digest: TokenDigest,
    pub(super) at: Timestamp,
    pub(super) sealed: Box<[u8]>,
}

impl RefreshFamily {
    /// A family whose only token is `current`, none spent yet.
    pub(super) fn new(current: TokenDigest) -> Self {
        Self { current, last_spent: None, older: VecDeque::new() }
    }

    pub(super) fn digests(&self) -> impl Iterator<Item = &TokenDigest> {
        std::iter::once(&self.current).chain(self.last_spent.as_ref().map(|s| &s.digest)).chain(self.older.iter())
    }
}

/// What to do with a presented refresh token, decided under the user's mutex.
pub(super) enum RefreshStep {
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

    pub(super) fn from_record(r: SessionRecord, refresh: Option<TokenDigest>) -> Self {
        Self::with_family(r, refresh.map(RefreshFamily::new))
    }

    pub(super) fn with_family(r: SessionRecord, refresh: Option<RefreshFamily>) -> Self {
        let extra = if r.metadata.is_empty() && r.data.is_empty() && refresh.is_none() && r.generation == 0 {
            None
        } else {
            Some(Arc::new(Extra { metadata: r.metadata, data: r.data, refresh, generation: r.generation }))
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

    pub(super) fn idle_deadline(&self) -> Timestamp {
        Timestamp::from_unix_nanos(self.idle_deadline.load(Ordering::Acquire))
    }

    fn last_seen_at(&self) -> Timestamp {
        Timestamp::from_unix_nanos(self.last_seen_at.load(Ordering::Acquire))
    }

    pub(super) fn check(&self, now: Timestamp) -> Result<(), crate::error::ExpiryReason> {
        expiry::check(now, self.idle_deadline(), self.absolute_deadline)
    }

    pub(super) fn is_live(&self, now: Timestamp) -> bool {
        self.check(now).is_ok()
    }

    pub(super) fn candidate(&self) -> Candidate {
        Candidate { created_at: self.created_at, last_seen_at: self.last_seen_at() }
    }

    pub(super) fn record(&self) -> SessionRecord {
        let counter = self.counter.load(Ordering::Acquire);
        let (metadata, data, generation) = if counter & HAS_EXTRA != 0 {
            match self.extra.load().as_deref() {
                Some(x) => (x.metadata.clone(), x.data.clone(), x.generation),
                None => (Metadata::default(), SessionData::default(), 0),
            }
        } else {
            (Metadata::default(), SessionData::default(), 0)
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
            generation,
            metadata,
            data,
        }
    }

    /// A copy of this entry under another digest and of the next generation, for rotation,
    /// with a copy of its extras (metadata, data, refresh family). The caller holds the user's
    /// mutex. The user id is copied afresh, to be allocated beside the new entry (see `insert`).
    pub(super) fn rekeyed(&self, digest: TokenDigest) -> Self {
        let mut next = self.extra.load().as_deref().cloned().unwrap_or_else(Extra::empty);
        next.generation = next.generation.saturating_add(1);
        let extra = Some(Arc::new(next));
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
    pub(super) fn update_extra<R>(&self, f: impl FnOnce(&mut Extra) -> R) -> R {
        let mut next = self.extra.load().as_deref().cloned().unwrap_or_else(Extra::empty);
        let result = f(&mut next);
        self.extra.store(Some(Arc::new(next)));
        self.counter.fetch_or(HAS_EXTRA, Ordering::Release);
        result
    }

    /// The session with its refresh digests, for export.
    pub(super) fn stored_item(&self) -> StoredItem {
        let refresh = self.extra.load().as_ref().and_then(|x| x.refresh.as_ref()).map(|f| RefreshDigests {
            current: f.current,
            spent: f.last_spent.iter().map(|s| s.digest).chain(f.older.iter().copied()).collect(),
        });
        StoredItem::Session { record: self.record(), refresh }
    }

    /// Renews the session as `touch` would, if due (the caller has checked it is live).
    pub(super) fn renew(&self, now: Timestamp, policy: TouchPolicy) {
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
    pub(super) fn refresh_step(&self, presented: &TokenDigest, now: Timestamp, grace: Duration) -> RefreshStep {
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
