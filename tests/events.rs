//! Session events: what is emitted when, listener isolation, and no secrets in events.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::mpsc;
use std::time::Duration;

use common::{MINUTE, config, manager, user};
use sessionkit::events::{ObservedBy, SessionEvent};
use sessionkit::token::keys::{KeySet, SigningKey};
use sessionkit::{DataPatch, Error, ExpiryReason, LimitPolicy, NewSession, RevocationReason};

fn collect(m: &common::Manager) -> mpsc::Receiver<SessionEvent> {
    let (tx, rx) = mpsc::channel();
    m.subscribe(move |e: &SessionEvent| {
        let _ = tx.send(e.clone());
    })
    .unwrap();
    rx
}

fn next(rx: &mpsc::Receiver<SessionEvent>) -> SessionEvent {
    rx.recv_timeout(Duration::from_secs(5)).expect("an event")
}

#[tokio::test]
async fn the_lifecycle_emits_one_event_per_step() {
    let (m, clock) = manager(config().max_sessions_per_user(Some(1)).on_limit(LimitPolicy::EvictOldest));
    m.set_keys(KeySet::new(SigningKey::hs256("k", &[1; 32]).unwrap()).unwrap());
    let rx = collect(&m);
    let ip = "198.51.100.7".parse().unwrap();
    let first = m.create(NewSession::new(user("alice")).ip(ip).user_agent("Agent/1").remember_me(true)).await.unwrap();
    match next(&rx) {
        SessionEvent::Created { info, remember_me } => {
            assert!(remember_me);
            assert_eq!(info.session_id, Some(first.session.id()));
            assert_eq!(info.user.as_ref().map(|u| u.as_str()), Some("alice"));
            assert_eq!(info.ip, Some(ip));
            assert_eq!(info.user_agent.as_deref(), Some("Agent/1"));
            assert_eq!(info.at, clock.now_utc());
        }
        other => panic!("{other:?}"),
    }
    let second = m.create(NewSession::new(user("alice"))).await.unwrap();
    assert!(matches!(next(&rx), SessionEvent::Created { .. }));
    assert!(
        matches!(next(&rx), SessionEvent::Revoked { reason: RevocationReason::Evicted, info } if info.session_id == Some(first.session.id()) && info.ip == Some(ip))
    );
    let token = second.token.expose_secret().to_owned();
    m.extend(&token).await.unwrap();
    assert!(matches!(next(&rx), SessionEvent::Extended { .. }));
    let rotated = m.rotate(&token).await.unwrap();
    assert!(matches!(next(&rx), SessionEvent::Rotated { .. }));
    let pair = rotated.tokens.clone().unwrap();
    m.refresh(pair.refresh_token.expose_secret()).await.unwrap();
    assert!(matches!(next(&rx), SessionEvent::Refreshed { .. }));
    clock.advance(10 * Duration::from_secs(1));
    assert!(m.refresh(pair.refresh_token.expose_secret()).await.is_err());
    assert!(
        matches!(next(&rx), SessionEvent::RefreshTokenReused { info } if info.session_id == Some(second.session.id()))
    );
    assert!(matches!(next(&rx), SessionEvent::Revoked { reason: RevocationReason::RefreshReuse, .. }));
    drop(rotated);
    let counters = m.counters();
    assert_eq!((counters.created, counters.evicted, counters.revoked, counters.refresh_reuse), (2, 1, 2, 1));
}

#[tokio::test]
async fn expiry_is_reported_by_validation_and_by_the_sweeper() {
    let (m, clock) = manager(config());
    let rx = collect(&m);
    let seen = m.create(NewSession::new(user("alice"))).await.unwrap();
    let swept = m.create(NewSession::new(user("bob"))).await.unwrap();
    let _ = (next(&rx), next(&rx));
    clock.advance(30 * MINUTE);
    assert!(m.validate(seen.token.expose_secret()).await.is_err());
    match next(&rx) {
        SessionEvent::Expired { info, reason: ExpiryReason::Idle, observed_by: ObservedBy::Validation } => {
            assert_eq!(info.session_id, Some(seen.session.id()));
        }
        other => panic!("{other:?}"),
    }
    // Any use of the token notices the expiry, not only `validate`.
    let err = m.update_data(seen.token.expose_secret(), DataPatch::new().set("k", 1)).await.unwrap_err();
    assert!(matches!(err, Error::Expired { reason: ExpiryReason::Idle }), "{err:?}");
    match next(&rx) {
        SessionEvent::Expired { info, reason: ExpiryReason::Idle, observed_by: ObservedBy::Validation } => {
            assert_eq!(info.session_id, Some(seen.session.id()));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(m.sweep_expired().await.unwrap(), 2);
    let mut swept_ids = vec![];
    for _ in 0..2 {
        match next(&rx) {
            SessionEvent::Expired { info, observed_by: ObservedBy::Sweeper, .. } => {
                swept_ids.push(info.session_id.unwrap())
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(swept_ids.contains(&swept.session.id()));
}

#[tokio::test]
async fn rejected_logins_and_revocations_are_reported() {
    let (m, _) = manager(config().max_sessions_per_user(Some(1)).on_limit(LimitPolicy::Reject));
    let rx = collect(&m);
    let a = m.create(NewSession::new(user("alice"))).await.unwrap();
    assert!(m.create(NewSession::new(user("alice"))).await.is_err());
    let _ = next(&rx);
    assert!(matches!(next(&rx), SessionEvent::LoginRejected { limit: 1, info } if info.session_id.is_none()));
    m.revoke(a.token.expose_secret()).await.unwrap();
    assert!(matches!(next(&rx), SessionEvent::Revoked { reason: RevocationReason::Logout, .. }));
    let b = m.create(NewSession::new(user("alice"))).await.unwrap();
    let _ = next(&rx);
    m.revoke_by_id(&b.session.id()).await.unwrap();
    assert!(matches!(next(&rx), SessionEvent::Revoked { reason: RevocationReason::Admin, .. }));
    m.create(NewSession::new(user("alice"))).await.unwrap();
    let _ = next(&rx);
    m.revoke_all(&user("alice"), None).await.unwrap();
    assert!(matches!(next(&rx), SessionEvent::Revoked { reason: RevocationReason::LogoutAll, .. }));
}

#[tokio::test]
async fn events_never_contain_a_token() {
    let (m, clock) = manager(config());
    m.set_keys(KeySet::new(SigningKey::hs256("k", &[1; 32]).unwrap()).unwrap());
    let rx = collect(&m);
    let c = m.create(NewSession::new(user("alice")).ip("192.0.2.1".parse().unwrap())).await.unwrap();
    let first = c.tokens.unwrap();
    let rotated = m.rotate(c.token.expose_secret()).await.unwrap();
    let pair = rotated.tokens.clone().unwrap();
    let next_pair = m.refresh(pair.refresh_token.expose_secret()).await.unwrap();
    clock.advance(Duration::from_secs(60));
    let _ = m.refresh(pair.refresh_token.expose_secret()).await;
    let secrets = [
        c.token.expose_secret().to_owned(),
        rotated.token.expose_secret().to_owned(),
        first.refresh_token.expose_secret().to_owned(),
        first.access_token.expose_secret().to_owned(),
        pair.refresh_token.expose_secret().to_owned(),
        pair.access_token.expose_secret().to_owned(),
        next_pair.refresh_token.expose_secret().to_owned(),
        next_pair.access_token.expose_secret().to_owned(),
    ];
    let mut seen = 0;
    while let Ok(event) = rx.recv_timeout(Duration::from_millis(500)) {
        seen += 1;
        let shown = format!("{event:?} {}", serde_json::to_string(&event).unwrap());
        for s in &secrets {
            assert!(!shown.contains(s.as_str()), "event leaks a token: {shown}");
        }
    }
    assert!(seen >= 5);
}
