//! Analytics: a serde-serialisable snapshot of how sessions are used.
//!
//! [`SessionManager::stats`](crate::SessionManager::stats) reads the store page by page
//! ([`BackupStore::scan`](crate::BackupStore::scan)) under the same shard read locks that
//! validations take, so computing it never blocks a validation; on a busy store the figures
//! are a consistent-enough sample rather than an atomic photograph.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use serde::Serialize;
use time::OffsetDateTime;

use crate::clock::Timestamp;
use crate::events::CounterSnapshot;
use crate::expiry;
use crate::session::{SessionRecord, UserId};

/// How many entries the top-N lists hold.
pub const TOP_N: usize = 10;

const HOUR_NANOS: i64 = 3600 * 1_000_000_000;

/// A snapshot of the sessions in a store. Serialises to JSON with the field names below.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionStats {
    /// When the snapshot was taken.
    #[serde(with = "time::serde::rfc3339")]
    pub generated_at: OffsetDateTime,
    /// Live sessions.
    pub active_sessions: u64,
    /// Distinct users with at least one live session.
    pub users: u64,
    /// Share of live sessions created with remember-me, from 0 to 1.
    pub remember_me_share: f64,
    /// Users with the most live sessions, most first.
    pub sessions_per_user: Vec<UserCount>,
    /// Sessions created in each of the last 24 hours that are still stored, oldest hour first:
    /// index 23 is the hour up to now.
    pub created_last_24h: [u64; 24],
    /// Client IPs with the most live sessions.
    pub top_ips: Vec<IpCount>,
    /// User agents with the most live sessions.
    pub top_user_agents: Vec<UserAgentCount>,
    /// Mean age of live sessions, in seconds.
    pub average_session_age_secs: f64,
    /// Median age of live sessions, in seconds.
    pub median_session_age_secs: f64,
    /// What happened since the manager started.
    pub counters: CounterSnapshot,
}

/// A user and their number of live sessions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserCount {
    /// The user.
    pub user: UserId,
    /// Live sessions.
    pub sessions: u64,
}

/// An IP address and its number of live sessions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IpCount {
    /// The address.
    pub ip: IpAddr,
    /// Live sessions.
    pub sessions: u64,
}

/// A user agent and its number of live sessions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserAgentCount {
    /// The user agent.
    pub user_agent: Arc<str>,
    /// Live sessions.
    pub sessions: u64,
}

/// Accumulates records into a [`SessionStats`].
#[derive(Debug)]
pub(crate) struct StatsBuilder {
    now: Timestamp,
    active: u64,
    remember_me: u64,
    per_user: HashMap<UserId, u64>,
    per_ip: HashMap<IpAddr, u64>,
    per_agent: HashMap<Arc<str>, u64>,
    created_last_24h: [u64; 24],
    ages: Vec<i64>,
}

impl StatsBuilder {
    pub(crate) fn new(now: Timestamp) -> Self {
        Self {
            now,
            active: 0,
            remember_me: 0,
            per_user: HashMap::new(),
            per_ip: HashMap::new(),
            per_agent: HashMap::new(),
            created_last_24h: [0; 24],
            ages: Vec::new(),
        }
    }

    pub(crate) fn add(&mut self, r: &SessionRecord) {
        if expiry::check(self.now, r.idle_deadline, r.absolute_deadline).is_err() {
            return;
        }
        self.active += 1;
        self.remember_me += u64::from(r.remember_me);
        *self.per_user.entry(r.user.clone()).or_default() += 1;
        if let Some(ip) = r.metadata.ip() {
            *self.per_ip.entry(ip).or_default() += 1;
        }
        if let Some(ua) = r.metadata.user_agent() {
            *self.per_agent.entry(Arc::clone(ua)).or_default() += 1;
        }
        let age = self.now.unix_nanos().saturating_sub(r.created_at.unix_nanos()).max(0);
        let hours_ago = age / HOUR_NANOS;
        if let Ok(h) = usize::try_from(hours_ago)
            && h < 24
        {
            self.created_last_24h[23 - h] += 1;
        }
        self.ages.push(age);
    }

    pub(crate) fn finish(mut self, counters: CounterSnapshot) -> SessionStats {
        let secs = |nanos: f64| nanos / 1e9;
        #[allow(clippy::cast_precision_loss)] // Ages and counts are far below 2^52.
        let (average, median, share) = {
            let n = self.ages.len();
            let average = if n == 0 { 0.0 } else { self.ages.iter().map(|&a| a as f64).sum::<f64>() / n as f64 };
            self.ages.sort_unstable();
            let median = match n {
                0 => 0.0,
                _ if n % 2 == 1 => self.ages[n / 2] as f64,
                _ => (self.ages[n / 2 - 1] as f64 + self.ages[n / 2] as f64) / 2.0,
            };
            let share = if self.active == 0 { 0.0 } else { self.remember_me as f64 / self.active as f64 };
            (average, median, share)
        };
        SessionStats {
            generated_at: self.now.to_offset_date_time(),
            active_sessions: self.active,
            users: self.per_user.len() as u64,
            remember_me_share: share,
            sessions_per_user: top(self.per_user)
                .into_iter()
                .map(|(user, sessions)| UserCount { user, sessions })
                .collect(),
            created_last_24h: self.created_last_24h,
            top_ips: top(self.per_ip).into_iter().map(|(ip, sessions)| IpCount { ip, sessions }).collect(),
            top_user_agents: top(self.per_agent)
                .into_iter()
                .map(|(user_agent, sessions)| UserAgentCount { user_agent, sessions })
                .collect(),
            average_session_age_secs: secs(average),
            median_session_age_secs: secs(median),
            counters,
        }
    }
}

/// The [`TOP_N`] largest counts, largest first, ties broken by key for a stable order.
fn top<K: Ord + Clone>(counts: HashMap<K, u64>) -> Vec<(K, u64)> {
    let mut all: Vec<(K, u64)> = counts.into_iter().collect();
    all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    all.truncate(TOP_N);
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{Metadata, SessionData, SessionId};
    use crate::token::TokenDigest;

    fn record(user: &str, created_h_ago: i64, ip: Option<&str>, remember_me: bool, now: Timestamp) -> SessionRecord {
        let created = Timestamp::from_unix_nanos(now.unix_nanos() - created_h_ago * HOUR_NANOS - 1);
        SessionRecord {
            id: SessionId::generate().unwrap(),
            digest: TokenDigest::from_bytes([0; 32]),
            user: UserId::new(user).unwrap(),
            created_at: created,
            last_seen_at: created,
            idle_deadline: Timestamp::from_unix_nanos(now.unix_nanos() + HOUR_NANOS),
            absolute_deadline: Timestamp::from_unix_nanos(now.unix_nanos() + HOUR_NANOS),
            remember_me,
            request_count: 0,
            generation: 0,
            metadata: Metadata::new(ip.map(|i| i.parse().unwrap()), Some(Arc::from("ua"))),
            data: SessionData::default(),
        }
    }

    #[test]
    fn aggregates_live_sessions_only() {
        let now = Timestamp::from_unix_nanos(1_000_000 * HOUR_NANOS);
        let mut b = StatsBuilder::new(now);
        b.add(&record("alice", 0, Some("192.0.2.1"), true, now));
        b.add(&record("alice", 1, Some("192.0.2.1"), false, now));
        b.add(&record("bob", 3, Some("192.0.2.2"), false, now));
        b.add(&record("carol", 30, None, false, now));
        let mut expired = record("dave", 0, None, false, now);
        expired.idle_deadline = now;
        b.add(&expired);
        let s = b.finish(CounterSnapshot::default());
        assert_eq!(s.active_sessions, 4);
        assert_eq!(s.users, 3);
        assert!((s.remember_me_share - 0.25).abs() < 1e-9);
        assert_eq!(s.sessions_per_user[0], UserCount { user: UserId::new("alice").unwrap(), sessions: 2 });
        assert_eq!(s.top_ips[0].sessions, 2);
        assert_eq!(s.created_last_24h[23], 1);
        assert_eq!(s.created_last_24h[22], 1);
        assert_eq!(s.created_last_24h[20], 1);
        assert_eq!(s.created_last_24h.iter().sum::<u64>(), 3, "the 30-hour-old session is outside the window");
        assert!((s.median_session_age_secs - 2.0 * 3600.0).abs() < 1.0);
        assert_eq!(s.top_user_agents[0].sessions, 4);
    }

    #[test]
    fn an_empty_store_gives_zeros() {
        let s = StatsBuilder::new(Timestamp::UNIX_EPOCH).finish(CounterSnapshot::default());
        assert_eq!(s.active_sessions, 0);
        assert_eq!(s.average_session_age_secs, 0.0);
        assert_eq!(s.remember_me_share, 0.0);
    }
}
