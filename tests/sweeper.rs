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

/// The sweeper removes the sessions that expired by the manager's clock and keeps the live
/// ones: a sweep is not a purge.
#[tokio::test(start_paused = true)]
async fn the_sweeper_removes_expired_sessions_and_keeps_live_ones() {
    let (m, clock) = manager(config());
    login_many(&m, "old", 10).await;
    clock.advance(20 * MINUTE);
    let fresh = login_many(&m, "fresh", 5).await;
    let handle = m.spawn_sweeper(Duration::from_secs(60));
    // The old sessions are 31 minutes idle (past the 30-minute idle timeout), the fresh 11.
    clock.advance(11 * MINUTE);
    tokio::time::sleep(Duration::from_secs(61)).await;
    assert_eq!(m.store().len(), 5, "the ten expired sessions were swept, the five live ones kept");
    assert_eq!(m.store().user_count(), 5);
    for token in &fresh {
        m.validate(token).await.expect("a live session survives the sweep");
    }
    // Validation renewed them; 29 more idle minutes keep them alive through further sweeps.
    clock.advance(29 * MINUTE);
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(m.store().len(), 5, "sessions inside their idle timeout are never swept");
    // Past it, the next sweep takes them too.
    clock.advance(2 * MINUTE);
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(m.store().len(), 0);
    handle.shutdown().await;
}

/// Logs in `n` users named `{prefix}{i}` and returns their tokens.
async fn login_many(m: &common::Manager, prefix: &str, n: usize) -> Vec<String> {
    let mut tokens = Vec::with_capacity(n);
    for i in 0..n {
        tokens.push(login(m, &format!("{prefix}{i}")).await);
    }
    tokens
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
    let mut high_water = (0, 0);
    for round in 0..100 {
        for i in 0..10_000 {
            let created = m.create(NewSession::new(users[(round * 7 + i) % users.len()].clone())).await.unwrap();
            if i % 100 == 0 {
                m.revoke(created.token.expose_secret()).await.unwrap();
            }
        }
        // Nothing of an earlier round survives into this one, and the revoked sessions are gone:
        // exactly this round's 9,900 live sessions. Every 100th session is revoked, and each
        // user gets every 2,000th, so 20 users lost all five of theirs and have no index entry.
        let s = m.store();
        assert_eq!(s.len(), 9_900, "round {round}: live sessions before the sweep");
        assert_eq!(s.user_count(), 1_980, "round {round}: users with live sessions");
        high_water = (high_water.0.max(s.tracked_revocations()), high_water.1.max(s.denylist_len()));
        clock.advance(31 * MINUTE);
        let removed = m.sweep_expired().await.unwrap();
        assert_eq!(removed, 9_900, "round {round}: the sweep removed every expired session, and only those");
        assert_eq!(m.store().len(), 0, "round {round}: everything expired was swept");
        assert_eq!(m.store().user_count(), 0, "round {round}: no orphaned user index entries");
        assert_eq!(m.store().expiry_index_len(), 0, "round {round}: the expiry index drains with the sessions");
    }
    // Revocations are remembered until the absolute deadline (8 h, 16 rounds of 31 min): 100
    // a round would reach 10,000 over the run if they were never forgotten.
    assert!(high_water.0 <= 100 * 17, "revocation memory is bounded: {high_water:?}");
    // 100 revocations a round: the denylist would reach 10,000 if it never forgot an entry.
    assert!(high_water.1 <= 100, "the denylist forgets entries once the access tokens they cover expired");
    clock.advance(8 * HOUR);
    m.sweep_expired().await.unwrap();
    assert_eq!(m.store().tracked_revocations(), 0);
    assert_eq!(m.store().denylist_len(), 0);
}
