//! Token rotation (anti-fixation): new token, same session, old token dead at once.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::{MINUTE, config, login, manager};
use sessionkit::{Error, ExpiryReason};

#[tokio::test]
async fn rotation_replaces_the_token_and_keeps_the_session() {
    let (m, clock) = manager(config());
    let old = login(&m, "alice").await;
    let before = m.validate(&old).await.unwrap();
    clock.advance(MINUTE);
    let rotated = m.rotate(&old).await.unwrap();
    let new = rotated.token.expose_secret().to_owned();
    assert_ne!(new, old);
    assert_eq!(rotated.session.id(), before.id());
    assert_eq!(rotated.session.created_at(), before.created_at());
    assert_eq!(rotated.session.absolute_expires_at(), before.absolute_expires_at());
    assert!(matches!(m.validate(&old).await, Err(Error::UnknownSession)), "the old token stops working at once");
    let after = m.validate(&new).await.unwrap();
    assert_eq!(after.id(), before.id());
    assert_eq!(after.request_count(), 2);
    assert!(m.revoke(&new).await.unwrap());
    assert!(matches!(m.validate(&new).await, Err(Error::Revoked { .. })));
}

#[tokio::test]
async fn an_expired_or_revoked_session_cannot_be_rotated() {
    let (m, clock) = manager(config());
    let token = login(&m, "alice").await;
    let revoked = login(&m, "alice").await;
    m.revoke(&revoked).await.unwrap();
    assert!(matches!(m.rotate(&revoked).await, Err(Error::Revoked { .. })));
    clock.advance(30 * MINUTE);
    assert!(matches!(m.rotate(&token).await, Err(Error::Expired { reason: ExpiryReason::Idle })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_rotations_of_one_token_have_one_winner() {
    let (m, _) = manager(config());
    let token = login(&m, "alice").await;
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let (m, token) = (m.clone(), token.clone());
        tasks.push(tokio::spawn(async move { m.rotate(&token).await }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(r) => winners.push(r.token.expose_secret().to_owned()),
            Err(Error::UnknownSession) => {}
            Err(e) => panic!("a losing rotation sees an unknown token, got {e:?}"),
        }
    }
    assert_eq!(winners.len(), 1);
    m.validate(&winners[0]).await.unwrap();
    assert_eq!(m.list(&common::user("alice")).await.unwrap().len(), 1);
}
