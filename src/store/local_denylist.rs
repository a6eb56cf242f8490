//! The local copy of the access-token denylist that the remote stores keep in their subscribed
//! mode, so that verifying an access token asks no server: entries by session id, never
//! shortened, and whether the copy is synchronised (while it is not, the store refuses every
//! access token). How the copy is fed (Redis pub/sub, PostgreSQL `LISTEN`/`NOTIFY`, the
//! store's own writes) is each store's business.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use dashmap::DashMap;

use crate::clock::Timestamp;
use crate::session::SessionId;
use crate::store::{AccessDenial, DenyEntry};

/// A local copy of the denylist.
pub(crate) struct LocalDenylist {
    pub(crate) entries: DashMap<SessionId, DenyEntry>,
    /// `false` until the first synchronisation, and from a lost connection until the next.
    pub(crate) synced: AtomicBool,
    /// The latest `now` a caller passed to [`observe`](Self::observe) (to within a second), in
    /// Unix nanoseconds: [`prune`](Self::prune) drops the entries that expired before it, so
    /// the copy holds only live entries even if no sweeper runs. (Stores read no clock.)
    latest_now: AtomicI64,
}

impl LocalDenylist {
    /// An empty copy, synchronised or not yet.
    pub(crate) fn new(synced: bool) -> Self {
        Self { entries: DashMap::new(), synced: AtomicBool::new(synced), latest_now: AtomicI64::new(i64::MIN) }
    }

    /// Notes the caller's time. Written at most about once a second, so that concurrent
    /// verifications do not contend on it.
    #[cfg_attr(not(feature = "redis"), expect(dead_code, reason = "only the Redis store prunes by the callers' time"))]
    pub(crate) fn observe(&self, now: Timestamp) {
        let now = now.unix_nanos();
        if now > self.latest_now.load(Ordering::Relaxed).saturating_add(1_000_000_000) {
            self.latest_now.store(now, Ordering::Relaxed);
        }
    }

    /// Drops the entries that expired before the latest observed time.
    #[cfg_attr(not(feature = "redis"), expect(dead_code, reason = "only the Redis store prunes by the callers' time"))]
    pub(crate) fn prune(&self) {
        let latest = Timestamp::from_unix_nanos(self.latest_now.load(Ordering::Relaxed));
        self.entries.retain(|_, e| e.until > latest);
    }

    /// Adds an entry, merged with the session's entry if it has one ([`DenyEntry::merge`]:
    /// never weakened, never shortened, whatever the order entries arrive in).
    pub(crate) fn add(&self, id: SessionId, entry: DenyEntry) {
        self.entries.entry(id).and_modify(|e| *e = e.merge(entry)).or_insert(entry);
    }

    /// What the copy answers for an access token of `id` and `generation` at `now` (the caller
    /// checks that the copy is synchronised first).
    pub(crate) fn refuses(&self, id: &SessionId, generation: u64, now: Timestamp) -> Option<AccessDenial> {
        self.entries.get(id).and_then(|e| e.refuses(generation, now))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::error::RevocationReason;
    use crate::store::DenyScope;

    #[test]
    fn the_local_denylist_keeps_the_latest_entry_and_prunes_by_the_callers_time() {
        let local = LocalDenylist::new(false);
        let (a, b) = (SessionId::from_bytes([1; 16]), SessionId::from_bytes([2; 16]));
        let t = |s: i64| Timestamp::from_unix_nanos(s * 1_000_000_000);
        let all = |reason, until| DenyEntry { scope: DenyScope::All(reason), until };
        local.add(a, all(RevocationReason::Logout, t(100)));
        local.add(a, all(RevocationReason::Admin, t(50)));
        assert_eq!(local.entries.get(&a).map(|e| *e), Some(all(RevocationReason::Logout, t(100))), "never shortened");
        local.add(b, all(RevocationReason::Evicted, t(200)));
        local.observe(t(150));
        local.prune();
        assert!(local.entries.get(&a).is_none());
        assert!(local.entries.get(&b).is_some());
        // Within a second of the last observation nothing is written.
        local.observe(t(150).saturating_add(Duration::from_millis(500)));
        assert_eq!(local.latest_now.load(Ordering::Relaxed), t(150).unix_nanos());
    }

    #[test]
    fn rotations_and_revocations_merge_whatever_their_order() {
        let id = SessionId::from_bytes([3; 16]);
        let t = |s: i64| Timestamp::from_unix_nanos(s * 1_000_000_000);
        let below = |g, until| DenyEntry { scope: DenyScope::Below(g), until };
        let revoked = DenyEntry { scope: DenyScope::All(RevocationReason::Logout), until: t(90) };
        let entries = [below(2, t(100)), below(5, t(80)), revoked, below(3, t(120))];
        // Every order of arrival (a message racing a resynchronisation) ends the same.
        for order in [[0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1], [1, 3, 0, 2]] {
            let local = LocalDenylist::new(true);
            for i in order {
                local.add(id, entries[i]);
            }
            let merged = local.entries.get(&id).map(|e| *e);
            assert_eq!(merged, Some(DenyEntry { scope: DenyScope::All(RevocationReason::Logout), until: t(120) }));
        }
        let local = LocalDenylist::new(true);
        local.add(id, below(5, t(80)));
        local.add(id, below(2, t(100)));
        assert_eq!(local.refuses(&id, 4, t(50)), Some(AccessDenial::Superseded), "the later rotation counts");
        assert_eq!(local.refuses(&id, 5, t(50)), None, "tokens of the current generation pass");
        assert_eq!(local.refuses(&id, 0, t(100)), None, "until the entry's time has passed");
    }
}
