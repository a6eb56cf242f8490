//! The background sweeper and its graceful shutdown, and a soak test showing memory stays
//! bounded while a million sessions come and go. Time is a mock clock for sessions and
//! tokio's paused clock for the sweeper's schedule: nothing sleeps.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{HOUR, MINUTE, config, login, manager, user};
use sessionkit::NewSession;

#[tokio::test(start_paused = true)]
async fn the_sweeper_runs_on_schedule_and_shuts_down_gracefully() {
    let (m, clock) = manager(config());
    for i in 0..100 {
        login(&m, &format!("u{i}")).await;
    }
    let handle = m.spawn_sweeper(Duration::from_secs(60));
    clock.advance(31 * MINUTE);
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(m.store().len(), 100, "nothing runs before the first interval");
    tokio::time::sleep(Duration::from_secs(31)).await;
    assert_eq!(m.store().len(), 0, "the first sweep removed the expired sessions");
    assert_eq!(m.store().user_count(), 0);
    assert!(!handle.is_finished());
    handle.shutdown().await;
    login(&m, "late").await;
    clock.advance(31 * MINUTE);
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!(m.store().len(), 1, "after shutdown nothing sweeps");
}

#[tokio::test(start_paused = true)]
async fn a_zero_interval_sweeps_every_millisecond() {
    let (m, clock) = manager(config());
    login(&m, "alice").await;
    let handle = m.spawn_sweeper(Duration::ZERO);
    clock.advance(31 * MINUTE);
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert!(!handle.is_finished(), "the task runs");
    assert_eq!(m.store().len(), 0, "and sweeps");
    handle.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn dropping_the_manager_ends_the_sweeper() {
    let (m, _) = manager(config());
    let handle = m.spawn_sweeper(Duration::from_secs(1));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!handle.is_finished());
    drop(m);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(handle.is_finished(), "the task holds only a weak reference");
}

/// Sessions ended long before their deadline (logout, rotation) leave no trail in the expiry
/// index, which would otherwise keep each one's allocation until its remember-me deadline,
/// days later.
#[tokio::test]
async fn ended_sessions_do_not_pile_up_in_the_expiry_index() {
    let (m, _) = manager(config());
    for _ in 0..20_000 {
        let created = m.create(NewSession::new(user("alice")).remember_me(true)).await.unwrap();
        m.revoke(created.token.expose_secret()).await.unwrap();
    }
    let after_logouts = m.store().expiry_index_len();
    assert!(after_logouts <= 9_000, "20,000 logouts left {after_logouts} entries");

    let mut token = login(&m, "bob").await;
    for _ in 0..20_000 {
        token = m.rotate(&token).await.unwrap().token.expose_secret().to_owned();
    }
    let after_rotations = m.store().expiry_index_len();
    assert!(after_rotations <= 9_000, "20,000 rotations left {after_rotations} entries");
    assert_eq!(m.store().len(), 1);
    m.validate(&token).await.unwrap();
}

/// A million sessions created and expired in rounds: the store, its per-user index, the
/// revocation memory and the denylist stay bounded.
#[tokio::test]
async fn a_million_sessions_come_and_go_in_bounded_memory() {
    let (m, clock) = manager(config().max_sessions_per_user(Some(16)));
    let users: Vec<_> = (0..2000).map(|i| user(&format!("user{i}"))).collect();
    let mut high_water = (0, 0, 0, 0);
    for round in 0..100 {
        let mut revoked = 0;
        for i in 0..10_000 {
            let created = m.create(NewSession::new(users[(round * 7 + i) % users.len()].clone())).await.unwrap();
            if i % 100 == 0 {
                m.revoke(created.token.expose_secret()).await.unwrap();
                revoked += 1;
            }
        }
        assert_eq!(revoked, 100);
        let s = m.store();
        high_water = (
            high_water.0.max(s.len()),
            high_water.1.max(s.user_count()),
            high_water.2.max(s.tracked_revocations()),
            high_water.3.max(s.denylist_len()),
        );
        clock.advance(31 * MINUTE);
        m.sweep_expired().await.unwrap();
        assert_eq!(m.store().len(), 0, "round {round}: everything expired was swept");
        assert_eq!(m.store().user_count(), 0, "round {round}: no orphaned user index entries");
        assert_eq!(m.store().expiry_index_len(), 0, "round {round}: the expiry index drains with the sessions");
    }
    assert!(high_water.0 <= 10_000 && high_water.1 <= 2000, "{high_water:?}");
    // Revocations are remembered until the absolute deadline (8 h, 16 rounds of 31 min).
    assert!(high_water.2 <= 100 * 17, "revocation memory is bounded: {high_water:?}");
    assert!(high_water.3 <= 100, "the denylist forgets entries once the access tokens they cover expired");
    clock.advance(8 * HOUR);
    m.sweep_expired().await.unwrap();
    assert_eq!(m.store().tracked_revocations(), 0);
    assert_eq!(m.store().denylist_len(), 0);
}
