//! Idle and absolute timeouts, remember-me, sliding renewal and extension, under a mock clock.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::{HOUR, MINUTE, NANO, config, login, manager, user};
use sessionkit::{Error, ExpiryReason, NewSession};

fn expired(r: Result<sessionkit::Session, Error>) -> Option<ExpiryReason> {
    match r {
        Err(Error::Expired { reason }) => Some(reason),
        _ => None,
    }
}

#[tokio::test]
async fn idle_timeout_boundary_is_exact() {
    let (m, clock) = manager(config());
    let before = login(&m, "a").await;
    let at = login(&m, "b").await;
    let after = login(&m, "c").await;
    clock.advance(30 * MINUTE - NANO);
    assert!(m.validate(&before).await.is_ok(), "one nanosecond before the idle deadline");
    clock.advance(NANO);
    assert_eq!(expired(m.validate(&at).await), Some(ExpiryReason::Idle), "at the idle deadline");
    clock.advance(NANO);
    assert_eq!(expired(m.validate(&after).await), Some(ExpiryReason::Idle), "one nanosecond after");
}

#[tokio::test]
async fn absolute_timeout_ends_even_a_busy_session() {
    let (m, clock) = manager(config());
    let token = login(&m, "alice").await;
    let mut elapsed = std::time::Duration::ZERO;
    while elapsed + 20 * MINUTE < 8 * HOUR {
        clock.advance(20 * MINUTE);
        elapsed += 20 * MINUTE;
        m.validate(&token).await.unwrap();
    }
    clock.advance(8 * HOUR - elapsed - NANO);
    let s = m.validate(&token).await.unwrap();
    assert_eq!(s.idle_expires_at(), s.absolute_expires_at(), "renewal is capped by the absolute deadline");
    clock.advance(NANO);
    assert_eq!(expired(m.validate(&token).await), Some(ExpiryReason::Absolute));
    clock.advance(NANO);
    assert_eq!(expired(m.validate(&token).await), Some(ExpiryReason::Absolute));
}

#[tokio::test]
async fn remember_me_sessions_get_their_own_lifetimes() {
    let builder = config().remember_me_idle_timeout(24 * HOUR).remember_me_absolute_timeout(72 * HOUR);
    let (m, clock) = manager(builder);
    let plain = login(&m, "alice").await;
    let remembered = m.create(NewSession::new(user("alice")).remember_me(true)).await.unwrap();
    assert!(remembered.session.remember_me());
    assert_eq!(remembered.session.absolute_expires_at() - remembered.session.created_at(), 72 * HOUR);
    let token = remembered.token.expose_secret().to_owned();
    clock.advance(2 * HOUR);
    assert_eq!(expired(m.validate(&plain).await), Some(ExpiryReason::Idle));
    assert!(m.validate(&token).await.is_ok());
    clock.advance(24 * HOUR);
    assert_eq!(expired(m.validate(&token).await), Some(ExpiryReason::Idle), "remember-me idle timeout");
    let again = m.create(NewSession::new(user("alice")).remember_me(true)).await.unwrap();
    let token = again.token.expose_secret().to_owned();
    for _ in 0..5 {
        clock.advance(12 * HOUR);
        m.validate(&token).await.unwrap();
    }
    clock.advance(12 * HOUR);
    assert_eq!(expired(m.validate(&token).await), Some(ExpiryReason::Absolute), "remember-me absolute");
}

#[tokio::test]
async fn sliding_renewal_is_throttled_by_the_touch_interval() {
    let (m, clock) = manager(config());
    let token = login(&m, "alice").await;
    let first = m.validate(&token).await.unwrap();
    clock.advance(30 * std::time::Duration::from_secs(1));
    let within = m.validate(&token).await.unwrap();
    assert_eq!(within.idle_expires_at(), first.idle_expires_at(), "no write within the interval");
    assert_eq!(within.request_count(), 2, "but the request is counted");
    clock.advance(30 * std::time::Duration::from_secs(1));
    let renewed = m.validate(&token).await.unwrap();
    assert_eq!(renewed.idle_expires_at() - first.idle_expires_at(), MINUTE);
    assert_eq!(renewed.last_seen_at(), clock.now_utc());
    // Activity keeps the session alive far past one idle timeout.
    for _ in 0..10 {
        clock.advance(20 * MINUTE);
        m.validate(&token).await.unwrap();
    }
}

#[tokio::test]
async fn extend_pushes_the_idle_deadline_but_never_past_absolute() {
    let (m, clock) = manager(config());
    let token = login(&m, "alice").await;
    clock.advance(10 * std::time::Duration::from_secs(1));
    let extended = m.extend(&token).await.unwrap();
    assert_eq!(extended.idle_expires_at(), clock.now_utc() + 30 * MINUTE, "extension ignores the touch interval");
    assert_eq!(extended.request_count(), 0, "extension is not a request");
    for _ in 0..16 {
        clock.advance(29 * MINUTE);
        m.extend(&token).await.unwrap();
    }
    let last = m.extend(&token).await.unwrap();
    assert_eq!(last.idle_expires_at(), last.absolute_expires_at());
    clock.set(last.absolute_expires_at());
    assert_eq!(expired(m.extend(&token).await), Some(ExpiryReason::Absolute));
}

#[tokio::test]
async fn a_clock_stepping_backwards_shortens_nothing() {
    let (m, clock) = manager(config());
    let token = login(&m, "alice").await;
    clock.advance(10 * MINUTE);
    let ahead = m.validate(&token).await.unwrap();
    clock.rewind(HOUR);
    let back = m.validate(&token).await.unwrap();
    assert_eq!(back.idle_expires_at(), ahead.idle_expires_at());
    assert_eq!(back.last_seen_at(), ahead.last_seen_at());
    clock.advance(HOUR + 30 * MINUTE - NANO);
    assert!(m.get(&ahead.id()).await.unwrap().is_some(), "the deadline set before the step still holds");
    clock.advance(NANO);
    assert_eq!(expired(m.validate(&token).await), Some(ExpiryReason::Idle));
}
