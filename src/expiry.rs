//! Deadline arithmetic, as pure functions of the session's deadlines and `now`.
//!
//! A session is live while `now < deadline` for both of its deadlines: at the deadline itself
//! it has expired. The effective expiry is `min(absolute deadline, idle deadline)`, and the
//! absolute deadline is checked first, so a session past both reports
//! [`ExpiryReason::Absolute`]. Renewal moves the idle deadline to `now + idle timeout`, never
//! past the absolute deadline and never backwards (a clock that steps back cannot shorten a
//! session). Stores call these functions so that every store draws the same lines.

use std::time::Duration;

use crate::clock::Timestamp;
use crate::error::ExpiryReason;

/// The deadlines of a session created at `now`: `(idle, absolute)`.
#[must_use]
pub fn initial_deadlines(now: Timestamp, idle: Duration, absolute: Duration) -> (Timestamp, Timestamp) {
    let absolute_deadline = now.saturating_add(absolute);
    (now.saturating_add(idle).min(absolute_deadline), absolute_deadline)
}

/// Checks a session's deadlines at `now`: absolute first, then idle.
///
/// # Errors
/// The [`ExpiryReason`] of the first deadline that has passed (`now >= deadline`).
pub fn check(now: Timestamp, idle_deadline: Timestamp, absolute_deadline: Timestamp) -> Result<(), ExpiryReason> {
    if now >= absolute_deadline {
        Err(ExpiryReason::Absolute)
    } else if now >= idle_deadline {
        Err(ExpiryReason::Idle)
    } else {
        Ok(())
    }
}

/// Whether a session last renewed at `last_seen` is due for renewal at `now`, given the touch
/// interval. A clock that went backwards (`now < last_seen`) is never due.
#[must_use]
pub fn touch_due(now: Timestamp, last_seen: Timestamp, interval: Duration) -> bool {
    now >= last_seen && now.duration_since(last_seen) >= interval
}

/// The idle deadline after a renewal at `now`: `now + idle`, capped at the absolute deadline,
/// and never earlier than the current idle deadline.
#[must_use]
pub fn renewed_idle_deadline(
    now: Timestamp,
    idle: Duration,
    current_idle_deadline: Timestamp,
    absolute_deadline: Timestamp,
) -> Timestamp {
    now.saturating_add(idle).min(absolute_deadline).max(current_idle_deadline)
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDLE: Duration = Duration::from_secs(30 * 60);
    const ABS: Duration = Duration::from_secs(8 * 3600);

    fn t(n: i64) -> Timestamp {
        Timestamp::from_unix_nanos(n)
    }

    #[test]
    fn boundaries_are_exact_to_the_nanosecond() {
        let (idle, abs) = initial_deadlines(t(0), IDLE, ABS);
        let idle_n = idle.unix_nanos();
        assert_eq!(check(t(idle_n - 1), idle, abs), Ok(()));
        assert_eq!(check(t(idle_n), idle, abs), Err(ExpiryReason::Idle));
        assert_eq!(check(t(idle_n + 1), idle, abs), Err(ExpiryReason::Idle));
        let abs_n = abs.unix_nanos();
        let renewed = t(abs_n);
        assert_eq!(check(t(abs_n - 1), renewed, abs), Ok(()));
        assert_eq!(check(t(abs_n), renewed, abs), Err(ExpiryReason::Absolute));
        assert_eq!(check(t(abs_n + 1), renewed, abs), Err(ExpiryReason::Absolute));
    }

    #[test]
    fn absolute_is_reported_before_idle() {
        assert_eq!(check(t(100), t(10), t(50)), Err(ExpiryReason::Absolute));
    }

    #[test]
    fn idle_deadline_starts_capped_by_absolute() {
        let (idle, abs) = initial_deadlines(t(0), ABS, IDLE);
        assert_eq!(idle, abs);
    }

    #[test]
    fn renewal_never_passes_absolute_nor_goes_back() {
        let abs = t(1_000);
        assert_eq!(renewed_idle_deadline(t(900), Duration::from_nanos(500), t(950), abs), abs);
        assert_eq!(renewed_idle_deadline(t(100), Duration::from_nanos(50), t(400), abs), t(400));
        assert_eq!(renewed_idle_deadline(t(100), Duration::from_nanos(50), t(120), abs), t(150));
    }

    #[test]
    fn touch_is_due_after_the_interval_only() {
        let i = Duration::from_nanos(10);
        assert!(!touch_due(t(109), t(100), i));
        assert!(touch_due(t(110), t(100), i));
        assert!(!touch_due(t(90), t(100), i), "backwards clock");
        assert!(touch_due(t(100), t(100), Duration::ZERO));
    }
}
