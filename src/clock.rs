//! Time, injected.
//!
//! Every deadline in sessionkit is computed from a [`Clock`], never from the system time directly,
//! so applications and tests can replace it. [`SystemClock`] is the default; `MockClock`
//! (feature `test-util`) is set and advanced by hand, so timeouts are tested without sleeping.
//!
//! Internally, instants are [`Timestamp`]s: UTC nanoseconds since the Unix epoch in an `i64`
//! (good until the year 2262). Comparing and adding them costs a machine instruction, which
//! matters on the validation hot path; the manager's public API converts them to
//! [`time::OffsetDateTime`].

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;

/// A UTC instant with nanosecond precision, as stored by [`SessionStore`](crate::SessionStore)s.
///
/// Convert with [`Timestamp::to_offset_date_time`] and `Timestamp::from(OffsetDateTime)`.
/// Arithmetic saturates instead of overflowing.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The Unix epoch, 1970-01-01T00:00:00Z.
    pub const UNIX_EPOCH: Self = Self(0);

    /// The instant `nanos` nanoseconds after the Unix epoch (negative: before it).
    #[must_use]
    pub const fn from_unix_nanos(nanos: i64) -> Self {
        Self(nanos)
    }

    /// Nanoseconds since the Unix epoch.
    #[must_use]
    pub const fn unix_nanos(self) -> i64 {
        self.0
    }

    /// This instant as an [`OffsetDateTime`] in UTC.
    #[must_use]
    pub fn to_offset_date_time(self) -> OffsetDateTime {
        // Every i64 nanosecond count lies within OffsetDateTime's range (years -9999..=9999), so
        // the fallback is unreachable; it keeps this function total without a panic path.
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0)).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    /// `self + d`, saturating at the largest representable instant.
    #[must_use]
    pub fn saturating_add(self, d: Duration) -> Self {
        Self(self.0.saturating_add(duration_nanos(d)))
    }

    /// `self - d`, saturating at the smallest representable instant.
    #[must_use]
    pub fn saturating_sub(self, d: Duration) -> Self {
        Self(self.0.saturating_sub(duration_nanos(d)))
    }

    /// The time from `earlier` to `self`, or zero if `earlier` is later.
    #[must_use]
    pub fn duration_since(self, earlier: Self) -> Duration {
        u64::try_from(self.0.saturating_sub(earlier.0)).map_or(Duration::ZERO, Duration::from_nanos)
    }
}

/// Nanoseconds in `d`, saturating at `i64::MAX` (about 292 years).
pub(crate) fn duration_nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

impl From<OffsetDateTime> for Timestamp {
    fn from(t: OffsetDateTime) -> Self {
        let nanos = t.unix_timestamp_nanos();
        Self(i64::try_from(nanos).unwrap_or(if nanos < 0 { i64::MIN } else { i64::MAX }))
    }
}

impl From<Timestamp> for OffsetDateTime {
    fn from(t: Timestamp) -> Self {
        t.to_offset_date_time()
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({})", self.to_offset_date_time())
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.to_offset_date_time(), f)
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(self.unix_nanos())
    }
}

impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <i64 as serde::Deserialize>::deserialize(d).map(Timestamp::from_unix_nanos)
    }
}

/// A source of the current time.
///
/// Implementations must be cheap: [`SessionManager::validate`](crate::SessionManager::validate)
/// reads the clock once per call. A clock may step backwards (NTP adjustments, a test); the
/// manager and the stores tolerate that: a backwards step never shortens a deadline and never
/// moves `last_seen_at` back.
pub trait Clock: Send + Sync + 'static {
    /// The current instant.
    fn now(&self) -> Timestamp;
}

impl<C: Clock + ?Sized> Clock for std::sync::Arc<C> {
    fn now(&self) -> Timestamp {
        (**self).now()
    }
}

/// The operating system's wall clock. The default clock of every manager.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[inline]
    fn now(&self) -> Timestamp {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => Timestamp(duration_nanos(d)),
            Err(before) => Timestamp(duration_nanos(before.duration()).saturating_neg()),
        }
    }
}

#[cfg(any(test, feature = "test-util"))]
pub use mock::MockClock;

#[cfg(any(test, feature = "test-util"))]
mod mock {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicI64, Ordering};
    use std::time::Duration;

    use time::OffsetDateTime;

    use super::{Clock, Timestamp, duration_nanos};

    /// A clock that only moves when told to (feature `test-util`).
    ///
    /// Clones share the same time, so a test keeps one clone and hands another to the manager:
    ///
    /// ```
    /// use std::time::Duration;
    /// use sessionkit::clock::{Clock, MockClock};
    ///
    /// let clock = MockClock::new();
    /// let manager_side = clock.clone();
    /// let before = manager_side.now();
    /// clock.advance(Duration::from_secs(60));
    /// assert_eq!(manager_side.now().duration_since(before), Duration::from_secs(60));
    /// ```
    #[derive(Debug, Clone)]
    pub struct MockClock {
        nanos: Arc<AtomicI64>,
    }

    impl MockClock {
        /// A clock standing at 2024-01-01T00:00:00Z.
        #[must_use]
        pub fn new() -> Self {
            Self::at(Timestamp::from_unix_nanos(1_704_067_200 * 1_000_000_000))
        }

        /// A clock standing at `t`.
        #[must_use]
        pub fn at(t: impl Into<Timestamp>) -> Self {
            Self { nanos: Arc::new(AtomicI64::new(t.into().unix_nanos())) }
        }

        /// Moves the clock forward by `d`.
        pub fn advance(&self, d: Duration) {
            let step = duration_nanos(d);
            // fetch_update never fails with a closure that always returns Some.
            let _ = self.nanos.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| Some(n.saturating_add(step)));
        }

        /// Moves the clock backward by `d`, as an NTP correction might.
        pub fn rewind(&self, d: Duration) {
            let step = duration_nanos(d);
            let _ = self.nanos.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| Some(n.saturating_sub(step)));
        }

        /// Sets the clock to `t`.
        pub fn set(&self, t: impl Into<Timestamp>) {
            self.nanos.store(t.into().unix_nanos(), Ordering::SeqCst);
        }

        /// The current time as an [`OffsetDateTime`].
        #[must_use]
        pub fn now_utc(&self) -> OffsetDateTime {
            self.now().to_offset_date_time()
        }
    }

    impl Default for MockClock {
        fn default() -> Self {
            Self::new()
        }
    }

    impl Clock for MockClock {
        fn now(&self) -> Timestamp {
            Timestamp::from_unix_nanos(self.nanos.load(Ordering::SeqCst))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_date_time_round_trip_is_exact() {
        let t = Timestamp::from_unix_nanos(1_700_000_000_123_456_789);
        assert_eq!(Timestamp::from(t.to_offset_date_time()), t);
    }

    #[test]
    fn arithmetic_saturates() {
        let max = Timestamp::from_unix_nanos(i64::MAX);
        assert_eq!(max.saturating_add(Duration::from_secs(1)), max);
        assert_eq!(Timestamp::from_unix_nanos(i64::MIN).saturating_sub(Duration::MAX).unix_nanos(), i64::MIN);
        assert_eq!(Timestamp::UNIX_EPOCH.duration_since(max), Duration::ZERO);
    }

    #[test]
    fn mock_clock_moves_only_when_told() {
        let clock = MockClock::new();
        let t0 = clock.now();
        assert_eq!(clock.now(), t0);
        clock.advance(Duration::from_nanos(1));
        assert_eq!(clock.now().unix_nanos(), t0.unix_nanos() + 1);
        clock.rewind(Duration::from_secs(10));
        assert!(clock.now() < t0);
    }

    #[test]
    fn system_clock_is_after_2020() {
        assert!(SystemClock.now().unix_nanos() > 1_577_836_800 * 1_000_000_000);
    }
}
