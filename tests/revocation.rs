//! Logout, logout-everywhere, self-service and admin revocation, and session listing.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::{HOUR, MINUTE, config, login, manager, user};
use sessionkit::{Error, NewSession, RevocationReason, SessionStore};

fn revoked(r: Result<sessionkit::Session, Error>) -> Option<RevocationReason> {
    match r {
        Err(Error::Revoked { reason }) => Some(reason),
        _ => None,
    }
}

#[tokio::test]
async fn logout_ends_the_session_at_once_and_twice_is_fine() {
    let (m, _) = manager(config());
    let token = login(&m, "alice").await;
    let other = login(&m, "alice").await;
    assert!(m.revoke(&token).await.unwrap());
    assert_eq!(revoked(m.validate(&token).await), Some(RevocationReason::Logout));
    assert!(!m.revoke(&token).await.unwrap(), "a second logout ends nothing and is not an error");
    m.validate(&other).await.unwrap();
}

#[tokio::test]
async fn logout_everywhere_can_keep_the_current_session() {
    let (m, _) = manager(config());
    let tokens: Vec<String> = futures_join(&m, "alice", 4).await;
    let bob = login(&m, "bob").await;
    let current = m.validate(&tokens[0]).await.unwrap();
    assert_eq!(m.revoke_all(&user("alice"), Some(&current.id())).await.unwrap(), 3);
    m.validate(&tokens[0]).await.unwrap();
    for t in &tokens[1..] {
        assert_eq!(revoked(m.validate(t).await), Some(RevocationReason::LogoutAll));
    }
    assert_eq!(m.revoke_all(&user("alice"), None).await.unwrap(), 1);
    assert_eq!(revoked(m.validate(&tokens[0]).await), Some(RevocationReason::LogoutAll));
    m.validate(&bob).await.unwrap();
}

async fn futures_join(m: &common::Manager, name: &str, n: usize) -> Vec<String> {
    let mut v = Vec::new();
    for _ in 0..n {
        v.push(login(m, name).await);
    }
    v
}

#[tokio::test]
async fn self_service_revocation_only_reaches_ones_own_sessions() {
    let (m, _) = manager(config());
    let alice = login(&m, "alice").await;
    let alice_phone = login(&m, "alice").await;
    let bob = login(&m, "bob").await;
    let phone_id = m.validate(&alice_phone).await.unwrap().id();
    let bob_id = m.validate(&bob).await.unwrap().id();
    assert!(!m.revoke_own(&user("alice"), &bob_id).await.unwrap(), "not alice's to revoke");
    m.validate(&bob).await.unwrap();
    assert!(m.revoke_own(&user("alice"), &phone_id).await.unwrap());
    assert_eq!(revoked(m.validate(&alice_phone).await), Some(RevocationReason::Logout));
    m.validate(&alice).await.unwrap();
}

#[tokio::test]
async fn admin_revocation_by_id_and_by_user() {
    let (m, _) = manager(config());
    let alice = login(&m, "alice").await;
    let bob1 = login(&m, "bob").await;
    let bob2 = login(&m, "bob").await;
    let id = m.validate(&alice).await.unwrap().id();
    assert!(m.revoke_by_id(&id).await.unwrap());
    assert!(!m.revoke_by_id(&id).await.unwrap());
    assert_eq!(revoked(m.validate(&alice).await), Some(RevocationReason::Admin));
    assert_eq!(m.revoke_user_by_admin(&user("bob")).await.unwrap(), 2);
    assert_eq!(revoked(m.validate(&bob1).await), Some(RevocationReason::Admin));
    assert_eq!(revoked(m.validate(&bob2).await), Some(RevocationReason::Admin));
}

#[tokio::test]
async fn listing_shows_live_sessions_with_metadata_oldest_first() {
    let (m, clock) = manager(config());
    let ua = "Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0";
    let first =
        m.create(NewSession::new(user("alice")).ip("192.0.2.10".parse().unwrap()).user_agent(ua)).await.unwrap();
    clock.advance(MINUTE);
    let second = login(&m, "alice").await;
    m.validate(&second).await.unwrap();
    login(&m, "bob").await;
    let list = m.list(&user("alice")).await.unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].id(), first.session.id());
    assert_eq!(list[0].ip(), Some("192.0.2.10".parse().unwrap()));
    assert_eq!(list[0].user_agent(), Some(ua));
    assert_eq!(list[1].request_count(), 1);
    clock.advance(30 * MINUTE - MINUTE);
    let list = m.list(&user("alice")).await.unwrap();
    assert_eq!(list.len(), 1, "the idle first session is no longer listed");
}

#[tokio::test]
async fn revocations_are_remembered_until_the_absolute_deadline_then_forgotten() {
    let (m, clock) = manager(config());
    let token = login(&m, "alice").await;
    m.revoke(&token).await.unwrap();
    clock.advance(8 * HOUR - MINUTE);
    assert_eq!(revoked(m.validate(&token).await), Some(RevocationReason::Logout));
    clock.advance(MINUTE);
    m.store().remove_expired(m.clock().now_utc().into(), usize::MAX).await.unwrap();
    assert_eq!(m.store().tracked_revocations(), 0, "memory of revocations is released");
    assert!(matches!(m.validate(&token).await, Err(Error::UnknownSession)));
}

#[tokio::test]
async fn remembered_revocations_are_bounded() {
    let store = sessionkit::MemoryStore::builder().max_tracked_revocations(10).build();
    let clock = sessionkit::clock::MockClock::new();
    let m = sessionkit::SessionManager::with_clock(store, config().build().unwrap(), clock);
    let mut tokens = Vec::new();
    for _ in 0..25 {
        let t = login(&m, "alice").await;
        m.revoke(&t).await.unwrap();
        tokens.push(t);
    }
    assert_eq!(m.store().tracked_revocations(), 10);
    for t in &tokens {
        assert!(m.validate(t).await.is_err(), "forgotten or not, a revoked token never validates");
    }
}

#[tokio::test]
async fn sweeping_removes_expired_sessions_and_their_index_entries() {
    let (m, clock) = manager(config());
    for i in 0..3000 {
        login(&m, &format!("user{}", i % 700)).await;
    }
    clock.advance(10 * MINUTE);
    let keep = login(&m, "keeper").await;
    clock.advance(25 * MINUTE);
    assert_eq!(m.sweep_expired().await.unwrap(), 3000, "all but the recent login, across several batches");
    assert_eq!(m.store().len(), 1);
    assert_eq!(m.store().user_count(), 1, "no orphaned per-user index entries");
    m.validate(&keep).await.unwrap();
    assert_eq!(m.sweep_expired().await.unwrap(), 0);
}
