//! With the `tracing` feature, events are logged as structured `tracing` events, at sensible
//! levels, and no token or secret ever appears in the output.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{Captured, config, manager, user};
use sessionkit::token::keys::{KeySet, SigningKey};
use sessionkit::{LimitPolicy, NewSession};

#[tokio::test]
async fn logs_describe_every_step_and_never_contain_a_secret() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let secret = [0x5A; 32];
    let (m, clock) = manager(config().max_sessions_per_user(Some(1)).on_limit(LimitPolicy::Reject));
    m.set_keys(KeySet::new(SigningKey::hs256("k", &secret).unwrap()).unwrap());
    let created = m
        .create(NewSession::new(user("alice")).ip("203.0.113.9".parse().unwrap()).user_agent("Agent/2"))
        .await
        .unwrap();
    let _ = m.create(NewSession::new(user("alice"))).await;
    let first = created.tokens.unwrap();
    let rotated = m.rotate(created.token.expose_secret()).await.unwrap();
    let pair = rotated.tokens.clone().unwrap();
    let next = m.refresh(pair.refresh_token.expose_secret()).await.unwrap();
    clock.advance(Duration::from_secs(60));
    let _ = m.refresh(pair.refresh_token.expose_secret()).await;

    let log = captured.text();
    for line in ["session created", "session token rotated", "refresh token exchanged", "session revoked"] {
        assert!(log.contains(line), "missing {line:?} in:\n{log}");
    }
    let reuse = log.lines().find(|l| l.contains("refresh token reuse detected")).expect("reuse is logged");
    assert!(reuse.contains("WARN"), "reuse is a warning: {reuse}");
    assert!(log.lines().any(|l| l.contains("login rejected") && l.contains("WARN")));
    assert!(log.contains("user=\"alice\"") || log.contains("user=alice"), "{log}");
    assert!(log.contains("203.0.113.9") && log.contains("Agent/2"));
    let hex_secret: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    for s in [
        created.token.expose_secret(),
        rotated.token.expose_secret(),
        first.refresh_token.expose_secret(),
        first.access_token.expose_secret(),
        pair.refresh_token.expose_secret(),
        pair.access_token.expose_secret(),
        next.refresh_token.expose_secret(),
        next.access_token.expose_secret(),
        &hex_secret,
    ] {
        assert!(!log.contains(s), "the log leaks a secret");
    }
    // The digest of a token is not printed whole either.
    assert!(!log.contains(&created.token.digest().to_base64()));
}
