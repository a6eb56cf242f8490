//! Per-user session limits through the manager, including the concurrent-login race.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::{MINUTE, config, login, manager, user};
use sessionkit::{Error, LimitPolicy, NewSession, RevocationReason};

async fn three_logins(m: &common::Manager, clock: &sessionkit::clock::MockClock) -> Vec<String> {
    let mut tokens = Vec::new();
    for _ in 0..3 {
        tokens.push(login(m, "alice").await);
        clock.advance(MINUTE);
    }
    tokens
}

#[tokio::test]
async fn evict_oldest_ends_the_first_login() {
    let (m, clock) = manager(config().max_sessions_per_user(Some(3)).on_limit(LimitPolicy::EvictOldest));
    let tokens = three_logins(&m, &clock).await;
    m.validate(&tokens[0]).await.unwrap();
    let oldest_id = m.validate(&tokens[0]).await.unwrap().id();
    let fourth = m.create(NewSession::new(user("alice"))).await.unwrap();
    assert_eq!(fourth.evicted, vec![oldest_id]);
    assert!(matches!(m.validate(&tokens[0]).await, Err(Error::Revoked { reason: RevocationReason::Evicted })));
    for t in &tokens[1..] {
        m.validate(t).await.unwrap();
    }
    assert_eq!(m.list(&user("alice")).await.unwrap().len(), 3);
}

#[tokio::test]
async fn evict_lru_ends_the_least_recently_used_login() {
    let (m, clock) = manager(config().max_sessions_per_user(Some(3)).on_limit(LimitPolicy::EvictLeastRecentlyUsed));
    let tokens = three_logins(&m, &clock).await;
    m.validate(&tokens[0]).await.unwrap();
    let lru = m.validate(&tokens[1]).await.unwrap().id();
    clock.advance(MINUTE);
    m.validate(&tokens[0]).await.unwrap();
    m.validate(&tokens[2]).await.unwrap();
    let fourth = m.create(NewSession::new(user("alice"))).await.unwrap();
    assert_eq!(fourth.evicted, vec![lru]);
    assert!(matches!(m.validate(&tokens[1]).await, Err(Error::Revoked { reason: RevocationReason::Evicted })));
}

#[tokio::test]
async fn reject_refuses_the_new_login_and_keeps_the_old_ones() {
    let (m, clock) = manager(config().max_sessions_per_user(Some(3)).on_limit(LimitPolicy::Reject));
    let tokens = three_logins(&m, &clock).await;
    let refused = m.create(NewSession::new(user("alice"))).await;
    assert!(matches!(refused, Err(Error::LimitReached { limit: 3 })), "{refused:?}");
    for t in &tokens {
        m.validate(t).await.unwrap();
    }
    login(&m, "bob").await;
    m.revoke(&tokens[0]).await.unwrap();
    login(&m, "alice").await;
}

#[tokio::test]
async fn limits_are_per_user() {
    let (m, _) = manager(config().max_sessions_per_user(Some(1)).on_limit(LimitPolicy::Reject));
    login(&m, "alice").await;
    login(&m, "bob").await;
    assert!(matches!(m.create(NewSession::new(user("alice"))).await, Err(Error::LimitReached { .. })));
}

/// 64 concurrent logins of one user at limit 3: never more than 3 live sessions, and every
/// evicted token fails validation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_logins_at_a_limit_of_three() {
    let (m, _) = manager(config().max_sessions_per_user(Some(3)).on_limit(LimitPolicy::EvictOldest));
    let alice = user("alice");
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let (m, alice) = (m.clone(), alice.clone());
        tasks.push(tokio::spawn(async move {
            let created = m.create(NewSession::new(alice.clone())).await.unwrap();
            let listed = m.list(&alice).await.unwrap().len();
            assert!(listed <= 3, "saw {listed} live sessions");
            (created.token.expose_secret().to_owned(), created.evicted.len())
        }));
    }
    let mut tokens = Vec::new();
    let mut evictions = 0;
    for t in tasks {
        let (token, evicted) = t.await.unwrap();
        tokens.push(token);
        evictions += evicted;
    }
    let mut live = 0;
    for t in &tokens {
        match m.validate(t).await {
            Ok(_) => live += 1,
            Err(Error::Revoked { reason: RevocationReason::Evicted }) => {}
            other => panic!("an evicted token must fail as evicted: {other:?}"),
        }
    }
    assert_eq!(live, 3);
    assert_eq!(evictions, 61);
}
