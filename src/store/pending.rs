//! Requests a shared store's instance has counted and not yet written: the network stores
//! make a validation with no renewal due a plain read, and write the counts with the next
//! renewal the instance makes.

use dashmap::DashMap;

use crate::clock::Timestamp;
use crate::session::SessionRecord;
use crate::token::TokenDigest;

/// Digest → (requests counted, the idle deadline last read). An entry lives until the
/// instance renews the session (and writes the counts) or the sweep finds its deadline past,
/// so the map holds at most the live sessions this instance validated within one touch
/// interval.
#[derive(Default)]
pub(crate) struct PendingCounts(DashMap<TokenDigest, (u64, Timestamp)>);

impl PendingCounts {
    /// A validation of live session `r` with no renewal due: counts it (if `count_request`)
    /// and shows every unwritten count in `r`.
    pub(crate) fn count(&self, r: &mut SessionRecord, count_request: bool) {
        let mut entry = self.0.entry(r.digest).or_insert((0, r.idle_deadline));
        entry.0 += u64::from(count_request);
        entry.1 = r.idle_deadline;
        r.request_count = r.request_count.saturating_add(entry.0);
    }

    /// `r` with the requests counted and not yet written added.
    pub(crate) fn shown(&self, mut r: SessionRecord) -> SessionRecord {
        if let Some(p) = self.0.get(&r.digest) {
            r.request_count = r.request_count.saturating_add(p.0);
        }
        r
    }

    /// Takes the counts of `digest`, to be written with a renewal.
    pub(crate) fn take(&self, digest: &TokenDigest) -> u64 {
        self.0.remove(digest).map_or(0, |(_, (n, _))| n)
    }

    /// Gives back counts [`take`](Self::take) answered that could not be written.
    pub(crate) fn give_back(&self, digest: &TokenDigest, counted: u64, now: Timestamp) {
        if counted > 0 {
            self.0.entry(*digest).or_insert((0, now)).0 += counted;
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
        self.0.retain(|_, p| p.1 > now);
    }
}
