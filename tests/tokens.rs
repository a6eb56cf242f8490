//! Token handling through the manager: strict parsing, digests only in the store, redaction.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::{config, login, manager, user};
use sessionkit::{Error, NewSession, SessionStore, SessionToken};

#[tokio::test]
async fn malformed_tokens_are_rejected_before_any_lookup() {
    let (m, _) = manager(config());
    let good = login(&m, "alice").await;
    let cases = [
        String::new(),
        "x".repeat(1 << 20),
        good[..good.len() - 1].to_owned(),
        format!("{good}A"),
        format!("{}*", &good[..good.len() - 1]),
        format!("{}+", &good[..good.len() - 1]),
        format!("{}=", &good[..good.len() - 1]),
        " ".repeat(43),
        format!("Bearer {good}"),
    ];
    for bad in &cases {
        for result in [m.validate(bad).await, m.extend(bad).await] {
            assert!(matches!(result, Err(Error::MalformedToken)), "{:.50}: {result:?}", bad);
        }
        assert!(matches!(m.revoke(bad).await, Err(Error::MalformedToken)));
        assert!(matches!(m.rotate(bad).await, Err(Error::MalformedToken)));
    }
    assert!(m.validate(&good).await.is_ok(), "the good token still works");
}

#[tokio::test]
async fn a_well_formed_but_unknown_token_is_unknown() {
    let (m, _) = manager(config());
    login(&m, "alice").await;
    let stranger = SessionToken::parse(&"A".repeat(43)).unwrap();
    assert!(matches!(m.validate(stranger.expose_secret()).await, Err(Error::UnknownSession)));
}

#[tokio::test]
async fn the_store_holds_the_digest_never_the_token() {
    let (m, _) = manager(config());
    let created = m.create(NewSession::new(user("alice"))).await.unwrap();
    let secret = created.token.expose_secret().to_owned();
    let record = m.store().get_by_id(&created.session.id()).await.unwrap().unwrap();
    assert_eq!(record.digest, created.token.digest());
    let dumped = format!("{record:?} {} {:?}", serde_json::to_string(&record).unwrap(), created.session);
    assert!(!dumped.contains(&secret), "a store record must not contain the token");
    assert!(!format!("{:?}", created.token).contains(&secret));
    assert!(!format!("{}", created.token).contains(&secret));
    assert!(!format!("{created:?}").contains(&secret));
}

#[tokio::test]
async fn every_login_gets_a_distinct_token_and_id() {
    let (m, _) = manager(config());
    let mut tokens = std::collections::HashSet::new();
    let mut ids = std::collections::HashSet::new();
    for _ in 0..200 {
        let c = m.create(NewSession::new(user("alice"))).await.unwrap();
        assert_eq!(c.token.expose_secret().len(), sessionkit::token::ROUTED_TOKEN_LEN);
        assert!(tokens.insert(c.token.expose_secret().to_owned()));
        assert!(ids.insert(c.session.id()));
    }
}

/// Sessions whose tokens were issued before routing (43 characters, no route; stores kept the
/// plain SHA-256) keep validating after an upgrade, here through an export and import.
#[tokio::test]
async fn tokens_issued_before_routing_still_validate() {
    let (m, _) = manager(config());
    let created = m.create(NewSession::new(user("alice"))).await.unwrap();
    let mut export = Vec::new();
    m.export(&mut export).await.unwrap();
    // The same session as the previous version stored it: keyed by a 43-character token's digest.
    let legacy = "YSBzZXNzaW9uIHRva2VuIG9mIHRoZSBvbGQgZm9ybWE";
    let legacy_digest = sessionkit::token::TokenDigest::of_token(legacy).unwrap();
    let export =
        String::from_utf8(export).unwrap().replace(&created.token.digest().to_base64(), &legacy_digest.to_base64());
    let (upgraded, _) = manager(config());
    upgraded.import(export.as_bytes()).await.unwrap();
    let session = upgraded.validate(legacy).await.unwrap();
    assert_eq!(session.id(), created.session.id());
    assert!(matches!(upgraded.validate(created.token.expose_secret()).await, Err(Error::UnknownSession)));
}
