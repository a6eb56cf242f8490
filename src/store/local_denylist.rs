//! The local copy of the access-token denylist that the remote stores keep in their subscribed
//! mode, so that verifying an access token asks no server: entries by session id, never
//! shortened, and whether the copy is synchronised (while it is not, the store refuses every
//! access token). How the copy is fed (Redis pub/sub, PostgreSQL `LISTEN`/`NOTIFY`, the
//! store's own writes) is each store's business.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use dashmap::DashMap;

use crate::clock::Timestamp;
use crate::error::RevocationReason;
use crate::session::SessionId;

/// A local copy of the denylist.
pub(crate) struct LocalDenylist {
    pub(crate) entries: DashMap<SessionId, (RevocationReason, Timestamp)>,
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
        self.entries.retain(|_, e| e.1 > latest);
    }

    /// Adds an entry, never shortening one.
    pub(crate) fn add(&self, id: SessionId, reason: RevocationReason, until: Timestamp) {
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_local_denylist_keeps_the_latest_entry_and_prunes_by_the_callers_time() {
        let local = LocalDenylist::new(false);
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
}
