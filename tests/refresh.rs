//! Refresh tokens: rotation, reuse detection, the grace window, and the concurrent races.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{MINUTE, config, manager, user};
use sessionkit::token::keys::{KeySet, SigningKey};
use sessionkit::{Error, ExpiryReason, NewSession, RevocationReason, TokenPair};

async fn login(
    builder: sessionkit::SessionConfigBuilder,
) -> (common::Manager, sessionkit::clock::MockClock, String, TokenPair) {
    let (m, clock) = manager(builder);
    m.set_keys(KeySet::new(SigningKey::hs256("k", &[5; 32]).unwrap()).unwrap());
    let created = m.create(NewSession::new(user("alice"))).await.unwrap();
    (m, clock, created.token.expose_secret().to_owned(), created.tokens.unwrap())
}

#[tokio::test]
async fn no_keys_no_tokens() {
    let (m, _) = manager(config());
    assert!(m.create(NewSession::new(user("alice"))).await.unwrap().tokens.is_none());
    assert!(matches!(m.refresh(&"A".repeat(43)).await, Err(Error::NoSigningKeys)));
    assert!(matches!(m.verify_access("a.b.c").await, Err(Error::NoSigningKeys)));
}

#[tokio::test]
async fn refresh_rotates_the_pair_and_spends_the_token() {
    let (m, clock, session_token, pair) = login(config()).await;
    clock.advance(10 * MINUTE);
    let next = m.refresh(pair.refresh_token.expose_secret()).await.unwrap();
    assert_ne!(next.refresh_token, pair.refresh_token);
    assert_ne!(next.access_token, pair.access_token);
    assert_eq!(next.claims.session_id, pair.claims.session_id);
    assert_eq!(next.expires_in(clock.now_utc().into()), 15 * 60);
    m.verify_access(next.access_token.expose_secret()).await.unwrap();
    // A refresh counts as activity: the idle deadline moved, the absolute one did not.
    let session = m.get(&next.claims.session_id).await.unwrap().unwrap();
    assert_eq!(session.idle_expires_at(), clock.now_utc() + 30 * MINUTE);
    assert_eq!(session.absolute_expires_at(), session.created_at() + 8 * 3600 * Duration::from_secs(1));
    m.validate(&session_token).await.unwrap();
}

#[tokio::test]
async fn a_refresh_never_extends_the_absolute_deadline() {
    let (m, clock, _, mut pair) = login(config()).await;
    for _ in 0..23 {
        clock.advance(20 * MINUTE);
        pair = m.refresh(pair.refresh_token.expose_secret()).await.unwrap();
    }
    clock.advance(20 * MINUTE);
    assert!(matches!(
        m.refresh(pair.refresh_token.expose_secret()).await,
        Err(Error::Expired { reason: ExpiryReason::Absolute })
    ));
}

#[tokio::test]
async fn an_idle_session_cannot_be_refreshed() {
    let (m, clock, _, pair) = login(config()).await;
    clock.advance(30 * MINUTE);
    assert!(matches!(
        m.refresh(pair.refresh_token.expose_secret()).await,
        Err(Error::Expired { reason: ExpiryReason::Idle })
    ));
}

#[tokio::test]
async fn reuse_after_the_grace_window_revokes_everything() {
    let (m, clock, session_token, pair) = login(config()).await;
    let next = m.refresh(pair.refresh_token.expose_secret()).await.unwrap();
    clock.advance(Duration::from_secs(6));
    assert!(matches!(m.refresh(pair.refresh_token.expose_secret()).await, Err(Error::RefreshTokenReused)));
    let revoked = Some(RevocationReason::RefreshReuse);
    let reason = |r: Result<_, Error>| match r {
        Err(Error::Revoked { reason }) => Some(reason),
        _ => None,
    };
    assert_eq!(reason(m.validate(&session_token).await.map(|_| ())), revoked, "the session token");
    assert_eq!(
        reason(m.verify_access(next.access_token.expose_secret()).await.map(|_| ())),
        revoked,
        "new access token"
    );
    assert_eq!(
        reason(m.verify_access(pair.access_token.expose_secret()).await.map(|_| ())),
        revoked,
        "old access token"
    );
    assert!(
        matches!(
            m.refresh(next.refresh_token.expose_secret()).await,
            Err(Error::Revoked { reason: RevocationReason::RefreshReuse })
        ),
        "successor"
    );
}

#[tokio::test]
async fn within_the_grace_window_a_replay_returns_the_same_pair() {
    let (m, clock, _, pair) = login(config()).await;
    let first = m.refresh(pair.refresh_token.expose_secret()).await.unwrap();
    clock.advance(Duration::from_secs(4));
    let again = m.refresh(pair.refresh_token.expose_secret()).await.unwrap();
    assert_eq!(again.refresh_token, first.refresh_token);
    assert_eq!(again.access_token, first.access_token);
    let third = m.refresh(first.refresh_token.expose_secret()).await.unwrap();
    m.verify_access(third.access_token.expose_secret()).await.unwrap();
}

#[tokio::test]
async fn a_zero_grace_window_is_strict_single_use() {
    let (m, _, _, pair) = login(config().refresh_reuse_grace(Duration::ZERO)).await;
    m.refresh(pair.refresh_token.expose_secret()).await.unwrap();
    assert!(matches!(m.refresh(pair.refresh_token.expose_secret()).await, Err(Error::RefreshTokenReused)));
}

#[tokio::test]
async fn malformed_and_unknown_refresh_tokens_are_invalid() {
    let (m, _, session_token, pair) = login(config()).await;
    for bad in ["", "short", &"A".repeat(43), &session_token, pair.access_token.expose_secret(), &"x".repeat(1 << 20)] {
        assert!(matches!(m.refresh(bad).await, Err(Error::InvalidRefreshToken)), "{:.40}", bad);
    }
}

#[tokio::test]
async fn logout_kills_the_refresh_token() {
    let (m, _, session_token, pair) = login(config()).await;
    m.revoke(&session_token).await.unwrap();
    assert!(matches!(
        m.refresh(pair.refresh_token.expose_secret()).await,
        Err(Error::Revoked { reason: RevocationReason::Logout })
    ));
}

/// 50 concurrent refreshes with one token all succeed with the identical pair; exactly one
/// successor exists; nothing is revoked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_refreshes_share_one_successor() {
    let (m, _, session_token, pair) = login(config()).await;
    let presented = pair.refresh_token.expose_secret().to_owned();
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (m, presented) = (m.clone(), presented.clone());
        tasks.push(tokio::spawn(async move { m.refresh(&presented).await }));
    }
    let mut pairs = Vec::new();
    for t in tasks {
        pairs.push(t.await.unwrap().expect("every concurrent refresh succeeds"));
    }
    assert!(pairs.iter().all(|p| p.refresh_token == pairs[0].refresh_token && p.access_token == pairs[0].access_token));
    assert_eq!(m.store().refresh_token_count(), 2, "one current successor plus the spent token");
    m.validate(&session_token).await.unwrap();
    m.refresh(pairs[0].refresh_token.expose_secret()).await.unwrap();
}

/// Session-token rotation racing refreshes: each refresh lands before the rotation (and gets
/// the one successor) or after it (and finds its token replaced); afterwards only the
/// rotation's refresh token works, so the family never forks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_and_refresh_race_without_forking_the_family() {
    let (m, _, session_token, pair) = login(config().refresh_reuse_grace(Duration::from_secs(5))).await;
    let refresh = pair.refresh_token.expose_secret().to_owned();
    let (m1, m2) = (m.clone(), m.clone());
    let rotate = tokio::spawn(async move { m1.rotate(&session_token).await });
    let refreshes = tokio::spawn(async move {
        let mut out = Vec::new();
        for _ in 0..8 {
            out.push(m2.refresh(&refresh).await);
        }
        out
    });
    let rotated = rotate.await.unwrap().unwrap();
    let results = refreshes.await.unwrap();
    let mut successors = Vec::new();
    let mut replaced = false;
    for r in results {
        match r {
            Ok(pair) => {
                assert!(!replaced, "no refresh succeeds after one found its token replaced");
                successors.push(pair.refresh_token.expose_secret().to_owned());
            }
            Err(Error::InvalidRefreshToken) => replaced = true,
            Err(e) => panic!("a refresh racing a rotation: {e:?}"),
        }
    }
    successors.dedup();
    assert!(successors.len() <= 1, "one successor at most, replayed within the grace window");
    for s in &successors {
        assert!(matches!(m.refresh(s).await, Err(Error::InvalidRefreshToken)), "replaced by the rotation");
    }
    m.validate(rotated.token.expose_secret()).await.unwrap();
    m.refresh(rotated.tokens.unwrap().refresh_token.expose_secret()).await.unwrap();
    assert_eq!(m.list(&user("alice")).await.unwrap().len(), 1);
}
