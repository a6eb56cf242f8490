//! Token rotation (anti-fixation): new token, same session, old token dead at once.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::{MINUTE, config, login, manager};
use sessionkit::token::keys::{KeySet, SigningKey};
use sessionkit::{Error, ExpiryReason, NewSession};

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

/// Whoever planted a session before a privilege change may hold its refresh token too: the
/// rotation replaces it, and the new pair comes with the new session token.
#[tokio::test]
async fn rotation_replaces_the_refresh_tokens_too() {
    let (m, clock) = manager(config());
    m.set_keys(KeySet::new(SigningKey::hs256("k", &[7; 32]).unwrap()).unwrap());
    let created = m.create(NewSession::new(common::user("alice"))).await.unwrap();
    let planted = created.tokens.unwrap();
    let spent = planted.refresh_token.expose_secret().to_owned();
    let held = m.refresh(&spent).await.unwrap().refresh_token.expose_secret().to_owned();
    clock.advance(MINUTE);

    let rotated = m.rotate(created.token.expose_secret()).await.unwrap();
    let pair = rotated.tokens.expect("with keys, a rotation issues a new pair");
    for old in [&held, &spent] {
        assert!(matches!(m.refresh(old).await, Err(Error::InvalidRefreshToken)), "a refresh token of before is dead");
    }
    let claims = m.verify_access(pair.access_token.expose_secret()).await.unwrap();
    assert_eq!(claims.session_id, rotated.session.id());
    let next = m.refresh(pair.refresh_token.expose_secret()).await.unwrap();
    assert_eq!(next.claims.session_id, rotated.session.id());
    m.validate(rotated.token.expose_secret()).await.unwrap();

    // Without keys there is nothing to replace.
    let (plain, _) = manager(config());
    let token = login(&plain, "bob").await;
    assert!(plain.rotate(&token).await.unwrap().tokens.is_none());
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
