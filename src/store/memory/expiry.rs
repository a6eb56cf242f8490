//! [`ExpiryIndex`]: sessions by deadline, for the sweeper.

use std::sync::Arc;

use parking_lot::Mutex;

use crate::clock::Timestamp;

use super::entry::Entry;

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
pub(super) struct ExpiryIndex {
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
pub(super) const SWEEP_CHUNK: usize = 256;

/// Growth of the expiry index, beyond twice its size after the last compaction, that starts a
/// compaction.
const COMPACT_SLACK: usize = 4096;

/// Entries a compaction examines per filing (whole buckets: it may go over by one bucket).
const COMPACT_STEP: usize = 32;

impl ExpiryIndex {
    pub(super) fn file(&self, entry: &Arc<Entry>) {
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
    pub(super) fn take_due(&self, now: Timestamp, max: usize) -> Vec<std::sync::Weak<Entry>> {
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

    pub(super) fn len(&self) -> usize {
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
