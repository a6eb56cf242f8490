//! Per-user session limits: which sessions a new login evicts, or whether it is refused.
//!
//! The choice is a pure function of the user's live sessions, so every store makes it the same
//! way; the store's job is only to make "count, choose, evict, insert" one atomic step.

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;

/// What a login does when its user already has the maximum number of live sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LimitPolicy {
    /// End the session created longest ago. The default: a user who logs in on a new device
    /// gets in, and the oldest login, the likeliest to be forgotten, goes.
    #[default]
    EvictOldest,
    /// End the session used least recently (by `last_seen_at`).
    #[serde(rename = "evict-lru")]
    EvictLeastRecentlyUsed,
    /// Refuse the new login with [`Error::LimitReached`](crate::Error::LimitReached). Safest
    /// against a stolen password, at the price of locking a user out until a session ends.
    Reject,
}

impl LimitPolicy {
    /// The policy's name as used in configuration (`"evict-oldest"`, `"evict-lru"`, `"reject"`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::EvictOldest => "evict-oldest",
            Self::EvictLeastRecentlyUsed => "evict-lru",
            Self::Reject => "reject",
        }
    }
}

impl std::fmt::Display for LimitPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for LimitPolicy {
    type Err = UnknownPolicy;

    fn from_str(s: &str) -> Result<Self, UnknownPolicy> {
        match s {
            "evict-oldest" => Ok(Self::EvictOldest),
            "evict-lru" => Ok(Self::EvictLeastRecentlyUsed),
            "reject" => Ok(Self::Reject),
            _ => Err(UnknownPolicy),
        }
    }
}

/// A policy name other than `evict-oldest`, `evict-lru` or `reject`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown limit policy (expected evict-oldest, evict-lru or reject)")]
pub struct UnknownPolicy;

/// A per-user session limit as stores receive it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Maximum number of live sessions, at least 1.
    pub max: u32,
    /// What to do at the limit.
    pub policy: LimitPolicy,
}

/// The facts about a live session that eviction looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// When the session was created.
    pub created_at: Timestamp,
    /// When the session was last renewed.
    pub last_seen_at: Timestamp,
}

/// The new login is refused: the user is at the limit under [`LimitPolicy::Reject`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused;

/// Chooses which of a user's live sessions to evict so that one more fits under `limit`.
///
/// `live` must hold only sessions that have not expired. Returns the indexes into `live` to
/// evict (empty when there is room), in eviction order, or [`Refused`] under
/// [`LimitPolicy::Reject`] when there is no room. Ties are broken by position in `live`, so the
/// choice is deterministic.
///
/// # Errors
/// [`Refused`] when the policy is `Reject` and `live.len() >= limit.max`.
pub fn select_evictions(limit: Limit, live: &[Candidate]) -> Result<Vec<usize>, Refused> {
    let max = usize::try_from(limit.max.max(1)).unwrap_or(usize::MAX);
    let excess = (live.len() + 1).saturating_sub(max);
    if excess == 0 {
        return Ok(Vec::new());
    }
    let mut order: Vec<usize> = (0..live.len()).collect();
    match limit.policy {
        LimitPolicy::Reject => return Err(Refused),
        LimitPolicy::EvictOldest => order.sort_by_key(|&i| (live[i].created_at, i)),
        LimitPolicy::EvictLeastRecentlyUsed => {
            order.sort_by_key(|&i| (live[i].last_seen_at, live[i].created_at, i));
        }
    }
    order.truncate(excess);
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(created: i64, seen: i64) -> Candidate {
        Candidate { created_at: Timestamp::from_unix_nanos(created), last_seen_at: Timestamp::from_unix_nanos(seen) }
    }

    const OLDEST: Limit = Limit { max: 3, policy: LimitPolicy::EvictOldest };
    const LRU: Limit = Limit { max: 3, policy: LimitPolicy::EvictLeastRecentlyUsed };
    const REJECT: Limit = Limit { max: 3, policy: LimitPolicy::Reject };

    #[test]
    fn room_left_evicts_nothing() {
        let live = [c(1, 1), c(2, 2)];
        for limit in [OLDEST, LRU, REJECT] {
            assert_eq!(select_evictions(limit, &live), Ok(vec![]));
        }
    }

    #[test]
    fn oldest_goes_first() {
        let live = [c(5, 50), c(1, 90), c(3, 10)];
        assert_eq!(select_evictions(OLDEST, &live), Ok(vec![1]));
    }

    #[test]
    fn least_recently_used_goes_first() {
        let live = [c(5, 50), c(1, 90), c(3, 10)];
        assert_eq!(select_evictions(LRU, &live), Ok(vec![2]));
    }

    #[test]
    fn reject_refuses_at_the_limit() {
        assert_eq!(select_evictions(REJECT, &[c(1, 1), c(2, 2), c(3, 3)]), Err(Refused));
    }

    #[test]
    fn over_the_limit_evicts_down_to_room_for_one() {
        // A lowered limit: five live sessions, limit 3, so three go to make room for the new one.
        let live = [c(5, 5), c(4, 4), c(3, 3), c(2, 2), c(1, 1)];
        assert_eq!(select_evictions(OLDEST, &live), Ok(vec![4, 3, 2]));
    }

    #[test]
    fn ties_are_deterministic() {
        let live = [c(1, 1), c(1, 1), c(1, 1)];
        assert_eq!(select_evictions(OLDEST, &live), Ok(vec![0]));
        assert_eq!(select_evictions(LRU, &live), Ok(vec![0]));
    }

    #[test]
    fn policy_names_round_trip() {
        for p in [LimitPolicy::EvictOldest, LimitPolicy::EvictLeastRecentlyUsed, LimitPolicy::Reject] {
            assert_eq!(p.as_str().parse::<LimitPolicy>(), Ok(p));
            assert_eq!(serde_json::to_string(&p).unwrap(), format!("\"{}\"", p.as_str()));
        }
        assert_eq!("lru".parse::<LimitPolicy>(), Err(UnknownPolicy));
    }
}
