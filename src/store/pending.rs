//! Requests a shared store's instance has counted and not yet written: the network stores
//! make a validation with no renewal due a plain read, and write the counts with the next
//! renewal the instance makes.

use dashmap::DashMap;

use std::future::Future;

use crate::clock::Timestamp;
use crate::error::StoreError;
use crate::session::SessionRecord;
use crate::store::{Lookup, TouchPolicy};
use crate::token::TokenDigest;

/// Digest → the requests counted, and what the instance last read of the session. An entry
/// lives until the instance renews the session (and writes the counts) or the sweep finds its
/// deadline past, so the map holds at most the live sessions this instance validated since it
/// last renewed them.
#[derive(Default)]
pub(crate) struct PendingCounts(DashMap<TokenDigest, Pending>);

struct Pending {
    /// Requests counted and not yet written.
    count: u64,
    /// The idle deadline last read (the sweep drops the entry once it has passed).
    idle_deadline: Timestamp,
    /// The last-seen time last read: when the next renewal falls due.
    last_seen: Timestamp,
}

impl PendingCounts {
    /// A validation of live session `r` with no renewal due: counts it (if `count_request`)
    /// and shows every unwritten count in `r`.
    fn count(&self, r: &mut SessionRecord, count_request: bool) {
        let mut entry = self.0.entry(r.digest).or_insert(Pending {
            count: 0,
            idle_deadline: r.idle_deadline,
            last_seen: r.last_seen_at,
        });
        entry.count += u64::from(count_request);
        entry.idle_deadline = r.idle_deadline;
        entry.last_seen = r.last_seen_at;
        r.request_count = r.request_count.saturating_add(entry.count);
    }

    /// Whether, by what this instance last read of it, session `digest` is due for its renewal
    /// at `now`: the store can then go straight to the renewing write, which checks again.
    /// `false` for a session this instance has not read since it last renewed it.
    pub(crate) fn renewal_due(&self, digest: &TokenDigest, now: Timestamp, interval: std::time::Duration) -> bool {
        self.0.get(digest).is_some_and(|p| crate::expiry::touch_due(now, p.last_seen, interval))
    }

    /// What a read of session `r` answers at `now` without a write: [`Lookup::Expired`] (the
    /// unwritten counts shown), or [`Lookup::Live`] with this request counted; `None` when the
    /// throttled renewal is due, which only a write may answer.
    pub(crate) fn answer_read(&self, mut r: SessionRecord, now: Timestamp, policy: &TouchPolicy) -> Option<Lookup> {
        if let Err(reason) = crate::expiry::check(now, r.idle_deadline, r.absolute_deadline) {
            return Some(Lookup::Expired { reason, record: Box::new(self.shown(r)) });
        }
        if crate::expiry::touch_due(now, r.last_seen_at, policy.interval) {
            return None;
        }
        self.count(&mut r, policy.count_request);
        Some(Lookup::Live(r))
    }

    /// Runs `write`, a renewal of session `digest` that adds the requests it is given: this
    /// instance's unwritten counts, and this request if `count_request`. If the write fails,
    /// the counts are kept for the next renewal.
    pub(crate) async fn renew_with<T, W, F>(
        &self,
        digest: &TokenDigest,
        now: Timestamp,
        count_request: bool,
        write: W,
    ) -> Result<T, StoreError>
    where
        W: FnOnce(u64) -> F,
        F: Future<Output = Result<T, StoreError>>,
    {
        let counted = self.take(digest);
        let answer = write(counted + u64::from(count_request)).await;
        if answer.is_err() {
            self.give_back(digest, counted, now);
        }
        answer
    }

    /// `r` with the requests counted and not yet written added.
    pub(crate) fn shown(&self, mut r: SessionRecord) -> SessionRecord {
        if let Some(p) = self.0.get(&r.digest) {
            r.request_count = r.request_count.saturating_add(p.count);
        }
        r
    }

    /// Takes the counts of `digest`, to be written with a renewal.
    fn take(&self, digest: &TokenDigest) -> u64 {
        self.0.remove(digest).map_or(0, |(_, p)| p.count)
    }

    /// Gives back counts `take` answered that could not be written.
    fn give_back(&self, digest: &TokenDigest, counted: u64, now: Timestamp) {
        if counted > 0 {
            // Nothing read: no renewal is predicted from this entry (`last_seen` is `now`).
            self.0.entry(*digest).or_insert(Pending { count: 0, idle_deadline: now, last_seen: now }).count += counted;
        }
    }

    /// The counts of a rotated session follow it to its new digest.
    pub(crate) fn rekey(&self, old: &TokenDigest, new: TokenDigest) {
        if let Some((_, p)) = self.0.remove(old) {
            self.0.insert(new, p);
        }
    }

    /// Drops the entries whose idle deadline has passed at `now`.
    pub(crate) fn prune(&self, now: Timestamp) {
        self.0.retain(|_, p| p.idle_deadline > now);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::session::{Metadata, SessionData, SessionId, UserId};

    fn record(digest: TokenDigest, last_seen: i64) -> SessionRecord {
        let t = Timestamp::from_unix_nanos;
        SessionRecord {
            id: SessionId::generate().unwrap(),
            digest,
            user: UserId::new("alice").unwrap(),
            created_at: t(0),
            last_seen_at: t(last_seen),
            idle_deadline: t(last_seen + 1_000_000_000_000),
            absolute_deadline: t(10_000_000_000_000),
            remember_me: false,
            request_count: 10,
            generation: 0,
            metadata: Metadata::default(),
            data: SessionData::default(),
        }
    }

    #[test]
    fn a_renewal_is_predicted_from_the_last_read_only() {
        let pending = PendingCounts::default();
        let (a, b) = (TokenDigest::from_bytes([1; 32]), TokenDigest::from_bytes([2; 32]));
        let minute = Duration::from_secs(60);
        let at = |s: i64| Timestamp::from_unix_nanos(s * 1_000_000_000);
        let mut r = record(a, 5_000_000_000);
        pending.count(&mut r, true);
        assert_eq!(r.request_count, 11, "the unwritten count is shown");
        assert!(!pending.renewal_due(&a, at(64), minute));
        assert!(pending.renewal_due(&a, at(65), minute), "one touch interval after the last seen time read");
        assert!(!pending.renewal_due(&a, at(4), minute), "a clock behind the last seen time");
        assert!(!pending.renewal_due(&b, at(1_000), minute), "a session this instance has not read");
        // A renewal takes the counts: nothing is predicted until the session is read again.
        assert_eq!(pending.take(&a), 1);
        assert!(!pending.renewal_due(&a, at(1_000), minute));
        // Counts given back after a failed write predict nothing either.
        pending.give_back(&a, 1, at(1_000));
        assert!(!pending.renewal_due(&a, at(1_000), minute));
        assert_eq!(pending.take(&a), 1);
    }
}
