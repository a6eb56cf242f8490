//! Access tokens (JWT): issuance, every rejection case of verification, revocation through the
//! denylist, key rotation and JWKS, and interoperability with the `jsonwebtoken` crate.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use common::{MINUTE, config, manager, user};
use serde_json::{Value, json};
use sessionkit::token::keys::{KeySet, SigningKey};
use sessionkit::{AccessTokenError, Clock, Error, NewSession, RevocationReason, SessionStore};

const SECRET: [u8; 32] = [42; 32];

fn hs_keys() -> KeySet {
    KeySet::new(SigningKey::hs256("hs-1", &SECRET).unwrap()).unwrap()
}

async fn setup(
    builder: sessionkit::SessionConfigBuilder,
) -> (common::Manager, sessionkit::clock::MockClock, String, String) {
    let (m, clock) = manager(builder);
    m.set_keys(hs_keys());
    let created = m.create(NewSession::new(user("alice"))).await.unwrap();
    let pair = created.tokens.expect("keys are set, so create issues tokens");
    (m, clock, pair.access_token.expose_secret().to_owned(), created.token.expose_secret().to_owned())
}

fn rejected(r: Result<sessionkit::AccessClaims, Error>) -> AccessTokenError {
    match r {
        Err(Error::AccessToken(e)) => e,
        other => panic!("expected an access-token rejection, got {other:?}"),
    }
}

fn parts(token: &str) -> (Value, Value) {
    let mut it = token.split('.');
    let header = serde_json::from_slice(&B64.decode(it.next().unwrap()).unwrap()).unwrap();
    let claims = serde_json::from_slice(&B64.decode(it.next().unwrap()).unwrap()).unwrap();
    (header, claims)
}

/// Builds a compact JWS with an HMAC-SHA-256 signature under `secret`.
fn hs256(header: &Value, claims: &Value, secret: &[u8]) -> String {
    let input = format!("{}.{}", B64.encode(header.to_string()), B64.encode(claims.to_string()));
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    format!("{input}.{}", B64.encode(ring::hmac::sign(&key, input.as_bytes())))
}

#[tokio::test]
async fn issued_tokens_carry_the_documented_header_and_claims() {
    let builder = config().jwt_issuer(Some("https://auth.example".into())).jwt_audience(Some("api".into()));
    let (m, clock, access, session_token) = setup(builder).await;
    let (header, claims) = parts(&access);
    assert_eq!(header, json!({"alg": "HS256", "typ": "JWT", "kid": "hs-1"}));
    let session = m.validate(&session_token).await.unwrap();
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["sid"], session.id().to_string());
    assert_eq!(claims["iss"], "https://auth.example");
    assert_eq!(claims["aud"], "api");
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 15 * 60, "default lifetime");
    assert_eq!(claims["iat"].as_i64().unwrap(), clock.now_utc().unix_timestamp());
    assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));
    assert_eq!(claims["gen"], 0, "a new session's generation");
    let verified = m.verify_access(&access).await.unwrap();
    assert_eq!(verified.generation, 0);
    assert_eq!(verified.session_id, session.id());
    assert_eq!(verified.user.as_str(), "alice");
}

#[tokio::test]
async fn alg_none_is_refused_in_any_case() {
    let (m, _, access, _) = setup(config()).await;
    let (_, claims) = parts(&access);
    for alg in ["none", "None", "NONE", "nOnE"] {
        let header = json!({"alg": alg, "typ": "JWT", "kid": "hs-1"});
        let unsigned = format!("{}.{}.", B64.encode(header.to_string()), B64.encode(claims.to_string()));
        assert_eq!(rejected(m.verify_access(&unsigned).await), AccessTokenError::UnsupportedAlgorithm, "{alg}");
    }
}

#[tokio::test]
async fn an_algorithm_switch_is_refused() {
    // The classic attack: an HS256 token "signed" with the server's Ed25519 *public* key.
    let (m, _, _, session_token) = setup(config()).await;
    let (ed, _) = SigningKey::generate_ed25519("ed-1").unwrap();
    m.set_keys(KeySet::new(ed.clone()).unwrap());
    let sid = m.validate(&session_token).await.unwrap().id();
    let claims = json!({"sub": "alice", "sid": sid.to_string(), "exp": 4_000_000_000i64, "iat": 1});
    let forged =
        hs256(&json!({"alg": "HS256", "typ": "JWT", "kid": "ed-1"}), &claims, &ed.ed25519_public_key().unwrap());
    assert_eq!(rejected(m.verify_access(&forged).await), AccessTokenError::AlgorithmMismatch);
}

#[tokio::test]
async fn an_unknown_or_missing_kid_is_refused() {
    let (m, _, access, _) = setup(config()).await;
    let (mut header, claims) = parts(&access);
    header["kid"] = json!("hs-2");
    assert_eq!(rejected(m.verify_access(&hs256(&header, &claims, &SECRET)).await), AccessTokenError::UnknownKey);
    header.as_object_mut().unwrap().remove("kid");
    assert_eq!(rejected(m.verify_access(&hs256(&header, &claims, &SECRET)).await), AccessTokenError::UnknownKey);
}

#[tokio::test]
async fn bad_and_truncated_signatures_are_refused() {
    let (m, _, access, _) = setup(config()).await;
    let (header, claims) = parts(&access);
    let other_secret = hs256(&header, &claims, &[7; 32]);
    assert_eq!(rejected(m.verify_access(&other_secret).await), AccessTokenError::BadSignature);
    let truncated = &access[..access.len() - 4];
    assert_eq!(rejected(m.verify_access(truncated).await), AccessTokenError::BadSignature);
    let no_signature = &access[..access.rfind('.').unwrap() + 1];
    assert_eq!(rejected(m.verify_access(no_signature).await), AccessTokenError::BadSignature);
}

#[tokio::test]
async fn a_tampered_payload_is_refused_before_its_claims_are_read() {
    let (m, _, access, _) = setup(config()).await;
    let (header, mut claims) = parts(&access);
    let signature = access.rsplit('.').next().unwrap();
    claims["sub"] = json!("mallory");
    let tampered = format!("{}.{}.{signature}", B64.encode(header.to_string()), B64.encode(claims.to_string()));
    assert_eq!(rejected(m.verify_access(&tampered).await), AccessTokenError::BadSignature);
    // Even a payload that is not JSON at all fails on the signature, not on parsing.
    let garbage = format!("{}.{}.{signature}", B64.encode(header.to_string()), B64.encode("not json"));
    assert_eq!(rejected(m.verify_access(&garbage).await), AccessTokenError::BadSignature);
}

#[tokio::test]
async fn missing_or_mistyped_exp_and_sid_are_refused() {
    let (m, _, access, _) = setup(config()).await;
    let (header, claims) = parts(&access);
    type Mutation = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Mutation)> = vec![
        ("missing exp", Box::new(|c| drop(c.as_object_mut().unwrap().remove("exp")))),
        ("string exp", Box::new(|c| c["exp"] = json!(c["exp"].to_string()))),
        ("float exp", Box::new(|c| c["exp"] = json!(4.0e9))),
        ("missing sid", Box::new(|c| drop(c.as_object_mut().unwrap().remove("sid")))),
        ("numeric sid", Box::new(|c| c["sid"] = json!(12))),
        ("malformed sid", Box::new(|c| c["sid"] = json!("not-a-session-id"))),
        ("missing sub", Box::new(|c| drop(c.as_object_mut().unwrap().remove("sub")))),
    ];
    for (name, mutate) in cases {
        let mut c = claims.clone();
        mutate(&mut c);
        assert_eq!(
            rejected(m.verify_access(&hs256(&header, &c, &SECRET)).await),
            AccessTokenError::InvalidClaims,
            "{name}"
        );
    }
}

/// Builds a compact JWS from raw header and claims JSON texts (duplicate keys, arrays), signed
/// with HMAC-SHA-256 under `secret`.
fn hs256_raw(header: &str, claims: &str, secret: &[u8]) -> String {
    let input = format!("{}.{}", B64.encode(header), B64.encode(claims));
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    format!("{input}.{}", B64.encode(ring::hmac::sign(&key, input.as_bytes())))
}

/// Every registered claim present with the wrong JSON type is refused, `null` included (a
/// `null` used to read as "absent" for `iat`, `nbf`, `iss`, `aud` and `jti`), whether or not
/// an issuer and an audience are configured.
#[tokio::test]
async fn registered_claims_of_the_wrong_type_are_refused_null_included() {
    for builder in [config(), config().jwt_issuer(Some("https://auth.example".into())).jwt_audience(Some("api".into()))]
    {
        let (m, _, access, _) = setup(builder).await;
        let (header, claims) = parts(&access);
        let mut wrong = Vec::new();
        for (claim, values) in [
            ("exp", vec![json!(null), json!("4000000000"), json!(4.0e9), json!([4_000_000_000i64]), json!(true)]),
            ("nbf", vec![json!(null), json!("1"), json!(1.5), json!({}), json!(false)]),
            ("iat", vec![json!(null), json!("1"), json!(1.5), json!([1]), json!(true)]),
            ("iss", vec![json!(null), json!(1), json!(["https://auth.example"]), json!({}), json!(true)]),
            ("aud", vec![json!(null), json!(1), json!(["api", 1]), json!(["api", null]), json!({"api": true})]),
            ("sub", vec![json!(null), json!(1), json!(["alice"]), json!({})]),
            ("sid", vec![json!(null), json!(1), json!([claims["sid"].clone()]), json!(false)]),
            ("jti", vec![json!(null), json!(1), json!(["j"])]),
            ("gen", vec![json!(null), json!(-1), json!("0"), json!(1.5), json!([0]), json!(true)]),
        ] {
            for value in values {
                let mut c = claims.clone();
                c[claim] = value.clone();
                let got = m.verify_access(&hs256(&header, &c, &SECRET)).await;
                if !matches!(got, Err(Error::AccessToken(AccessTokenError::InvalidClaims))) {
                    wrong.push(format!("{claim}: {value} -> {got:?}"));
                }
            }
        }
        assert!(wrong.is_empty(), "accepted or refused for another reason: {wrong:#?}");
    }
}

/// A JWT claims set is a JSON object (RFC 7519 §7.2); the same values as an array are not
/// claims.
#[tokio::test]
async fn a_claims_set_that_is_not_an_object_is_refused() {
    let (m, _, access, _) = setup(config()).await;
    let (header, claims) = parts(&access);
    let positional = json!([claims["sub"], claims["sid"], claims["jti"], claims["iat"], claims["exp"]]);
    assert_eq!(rejected(m.verify_access(&hs256(&header, &positional, &SECRET)).await), AccessTokenError::InvalidClaims);
    for not_an_object in [json!(null), json!("claims"), json!(1)] {
        assert_eq!(
            rejected(m.verify_access(&hs256(&header, &not_an_object, &SECRET)).await),
            AccessTokenError::InvalidClaims,
            "{not_an_object}"
        );
    }
}

/// A claim given twice is ambiguous (another parser may read the other value): refused.
#[tokio::test]
async fn duplicate_claims_are_refused() {
    let (m, clock, access, _) = setup(config()).await;
    let (_, claims) = parts(&access);
    let now = clock.now_utc().unix_timestamp();
    let header = r#"{"alg":"HS256","typ":"JWT","kid":"hs-1"}"#;
    let (sub, sid) = (&claims["sub"], &claims["sid"]);
    let valid = format!(r#"{{"sub":{sub},"sid":{sid},"iat":{now},"exp":{}}}"#, now + 60);
    assert!(m.verify_access(&hs256_raw(header, &valid, &SECRET)).await.is_ok(), "the control verifies");
    for twice in [
        format!(r#"{{"sub":{sub},"sid":{sid},"iat":{now},"exp":{},"exp":{}}}"#, now - 60, now + 60),
        format!(r#"{{"sub":{sub},"sub":"mallory","sid":{sid},"exp":{}}}"#, now + 60),
        format!(r#"{{"sub":{sub},"sid":{sid},"exp":{},"nbf":1,"nbf":2}}"#, now + 60),
    ] {
        assert_eq!(
            rejected(m.verify_access(&hs256_raw(header, &twice, &SECRET)).await),
            AccessTokenError::InvalidClaims,
            "{twice}"
        );
    }
}

/// RFC 7515 §4.1.11: a recipient that does not understand a `crit` extension must refuse the
/// token. sessionkit understands none, so `crit` present with any value is refused, with its
/// own error.
#[tokio::test]
async fn crit_in_the_header_is_refused_whatever_its_value() {
    let (m, _, access, _) = setup(config()).await;
    let (header, claims) = parts(&access);
    for crit in [json!(null), json!([]), json!(["b64"]), json!(["exp"]), json!("exp"), json!(1), json!({})] {
        let mut h = header.clone();
        h["crit"] = crit.clone();
        assert_eq!(
            rejected(m.verify_access(&hs256(&h, &claims, &SECRET)).await),
            AccessTokenError::UnsupportedCritical,
            "{crit}"
        );
    }
}

/// The header's registered parameters have types too: `alg`, `kid` and `typ` are strings.
#[tokio::test]
async fn header_parameters_of_the_wrong_type_are_refused() {
    let (m, _, access, _) = setup(config()).await;
    let (header, claims) = parts(&access);
    for (param, value) in [
        ("typ", json!(null)),
        ("typ", json!(1)),
        ("kid", json!(null)),
        ("kid", json!(["hs-1"])),
        ("alg", json!(null)),
        ("alg", json!(["HS256"])),
    ] {
        let mut h = header.clone();
        h[param] = value.clone();
        assert_eq!(
            rejected(m.verify_access(&hs256(&h, &claims, &SECRET)).await),
            AccessTokenError::Malformed,
            "{param}: {value}"
        );
    }
    let not_an_object = format!("{}.{}", B64.encode("[\"HS256\"]"), access.split_once('.').unwrap().1);
    assert_eq!(rejected(m.verify_access(&not_an_object).await), AccessTokenError::Malformed);
}

/// A JOSE header and a claims set are UTF-8 JSON (RFC 7515 §5.2, RFC 7519 §7.2), also in the
/// members sessionkit skips: serde_json does not check the UTF-8 of a string it skips, and
/// such a header used to verify (found by the `access_header` fuzz target).
#[tokio::test]
async fn headers_and_claims_that_are_not_utf8_are_refused() {
    let (m, clock, access, _) = setup(config()).await;
    let (_, claims) = parts(&access);
    let now = clock.now_utc().unix_timestamp();
    let sign = |header: &[u8], claims: &[u8]| {
        let input = format!("{}.{}", B64.encode(header), B64.encode(claims));
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &SECRET);
        format!("{input}.{}", B64.encode(ring::hmac::sign(&key, input.as_bytes())))
    };
    let (sub, sid) = (&claims["sub"], &claims["sid"]);
    let header = |x: &[u8]| [br#"{"alg":"HS256","kid":"hs-1","x":""#, x, br#""}"#].concat();
    let claims =
        |x: &[u8]| [format!(r#"{{"sub":{sub},"sid":{sid},"exp":{}, "x":""#, now + 60).as_bytes(), x, b"\"}"].concat();
    assert!(m.verify_access(&sign(&header(b"J"), &claims(b"y"))).await.is_ok(), "the control verifies");
    assert_eq!(rejected(m.verify_access(&sign(&header(b"J\xd7T"), &claims(b"y"))).await), AccessTokenError::Malformed);
    // The input the fuzz target found: a skipped member before `kid`.
    let found = b"{\"alg\":\"HS256\",\"t,yp\":\"J\xd7T\",\"kid\":\"hs-1\"}";
    assert_eq!(rejected(m.verify_access(&sign(found, &claims(b"y"))).await), AccessTokenError::Malformed);
    assert_eq!(
        rejected(m.verify_access(&sign(&header(b"J"), &claims(b"\xff\xfe"))).await),
        AccessTokenError::InvalidClaims
    );
}

/// A token claiming to be issued in the future, beyond the leeway, comes from a clock that is
/// wrong or from a forger: refused, as `nbf` in the future is.
#[tokio::test]
async fn iat_in_the_future_beyond_the_leeway_is_refused() {
    let (m, clock, access, _) = setup(config()).await;
    let (header, mut claims) = parts(&access);
    let now = clock.now_utc().unix_timestamp();
    claims["exp"] = json!(now + 3600);
    claims["iat"] = json!(now + 30);
    assert!(m.verify_access(&hs256(&header, &claims, &SECRET)).await.is_ok(), "iat within the 30 s leeway");
    claims["iat"] = json!(now + 31);
    assert_eq!(rejected(m.verify_access(&hs256(&header, &claims, &SECRET)).await), AccessTokenError::IssuedInFuture);
    claims["nbf"] = json!(now + 31);
    claims["iat"] = json!(now);
    assert_eq!(rejected(m.verify_access(&hs256(&header, &claims, &SECRET)).await), AccessTokenError::NotYetValid);
}

#[tokio::test]
async fn expiry_and_not_before_honour_the_leeway() {
    let (m, clock, access, _) = setup(config()).await;
    clock.advance(15 * MINUTE + Duration::from_secs(29));
    assert!(m.verify_access(&access).await.is_ok(), "within the 30 s leeway");
    clock.advance(Duration::from_secs(1));
    assert_eq!(rejected(m.verify_access(&access).await), AccessTokenError::Expired);

    let (m, clock, access, _) = setup(config()).await;
    let (header, mut claims) = parts(&access);
    let now = clock.now_utc().unix_timestamp();
    claims["nbf"] = json!(now + 30);
    assert!(m.verify_access(&hs256(&header, &claims, &SECRET)).await.is_ok(), "nbf within the leeway");
    claims["nbf"] = json!(now + 31);
    assert_eq!(rejected(m.verify_access(&hs256(&header, &claims, &SECRET)).await), AccessTokenError::NotYetValid);
}

#[tokio::test]
async fn wrong_issuer_and_audience_are_refused() {
    let builder = config().jwt_issuer(Some("https://auth.example".into())).jwt_audience(Some("api".into()));
    let (m, _, access, _) = setup(builder).await;
    let (header, claims) = parts(&access);
    let mut c = claims.clone();
    c["iss"] = json!("https://evil.example");
    assert_eq!(rejected(m.verify_access(&hs256(&header, &c, &SECRET)).await), AccessTokenError::WrongIssuer);
    let mut c = claims.clone();
    c.as_object_mut().unwrap().remove("iss");
    assert_eq!(rejected(m.verify_access(&hs256(&header, &c, &SECRET)).await), AccessTokenError::WrongIssuer);
    let mut c = claims.clone();
    c["aud"] = json!("other-api");
    assert_eq!(rejected(m.verify_access(&hs256(&header, &c, &SECRET)).await), AccessTokenError::WrongAudience);
    let mut c = claims.clone();
    c["aud"] = json!(["other-api", "api"]);
    assert!(m.verify_access(&hs256(&header, &c, &SECRET)).await.is_ok(), "aud arrays are accepted");
}

#[tokio::test]
async fn other_tokens_and_garbage_are_malformed() {
    let (m, _, _, session_token) = setup(config()).await;
    let refresh = m.create(NewSession::new(user("bob"))).await.unwrap().tokens.unwrap().refresh_token;
    for bad in [
        refresh.expose_secret().to_owned(),
        session_token,
        String::new(),
        "a.b".into(),
        "a.b.c.d".into(),
        "!!!.???.***".into(),
        ".".repeat(1_000_000),
        "x".repeat(5000),
    ] {
        // `Malformed`, not `UnknownKey` or `BadSignature`: refused on its structure (or the length
        // cap), before any key is looked up or any signature computed. How fast is the bench's.
        assert_eq!(rejected(m.verify_access(&bad).await), AccessTokenError::Malformed, "{:.40}", bad);
    }
}

#[tokio::test]
async fn revocation_is_immediate_for_unexpired_access_tokens() {
    let (m, _, access, session_token) = setup(config()).await;
    m.verify_access(&access).await.unwrap();
    m.revoke(&session_token).await.unwrap();
    assert!(matches!(m.verify_access(&access).await, Err(Error::Revoked { reason: RevocationReason::Logout })));

    let (m, _, access, session_token) = setup(config()).await;
    let id = m.validate(&session_token).await.unwrap().id();
    m.revoke_by_id(&id).await.unwrap();
    assert!(matches!(m.verify_access(&access).await, Err(Error::Revoked { reason: RevocationReason::Admin })));

    let (m, _, access, _) = setup(config()).await;
    m.revoke_all(&user("alice"), None).await.unwrap();
    assert!(matches!(m.verify_access(&access).await, Err(Error::Revoked { reason: RevocationReason::LogoutAll })));
}

/// A rotation (a privilege change) ends the access tokens issued before it at once, cached or
/// not, while the session and the tokens issued with and after the rotation live on.
#[tokio::test]
async fn rotation_supersedes_the_access_tokens_issued_before_it() {
    let (m, clock, access, session_token) = setup(config()).await;
    m.verify_access(&access).await.unwrap();
    let bob = m.create(NewSession::new(user("bob"))).await.unwrap().tokens.unwrap();
    let bob_access = bob.access_token.expose_secret().to_owned();
    // Within the same second as the tokens it supersedes: generations do not depend on time.
    let rotated = m.rotate(&session_token).await.unwrap();
    assert_eq!(rotated.session.generation(), 1);
    assert_eq!(rejected(m.verify_access(&access).await), AccessTokenError::Superseded);
    let new_pair = rotated.tokens.unwrap();
    let claims = m.verify_access(new_pair.access_token.expose_secret()).await.unwrap();
    assert_eq!((claims.session_id, claims.generation), (rotated.session.id(), 1));
    let refreshed = m.refresh(new_pair.refresh_token.expose_secret()).await.unwrap();
    assert_eq!(m.verify_access(refreshed.access_token.expose_secret()).await.unwrap().generation, 1);
    assert!(m.verify_access(&bob_access).await.is_ok(), "other sessions are untouched");

    // Twice: tokens of generation 1 go too.
    let token = rotated.token.expose_secret().to_owned();
    let again = m.rotate(&token).await.unwrap();
    for old in [new_pair.access_token.expose_secret(), refreshed.access_token.expose_secret(), access.as_str()] {
        assert_eq!(rejected(m.verify_access(old).await), AccessTokenError::Superseded);
    }
    m.verify_access(again.tokens.unwrap().access_token.expose_secret()).await.unwrap();

    // A token without `gen` (issued before generations existed) counts as generation 0.
    let (header, mut claims) = parts(&access);
    claims.as_object_mut().unwrap().remove("gen");
    assert_eq!(rejected(m.verify_access(&hs256(&header, &claims, &SECRET)).await), AccessTokenError::Superseded);

    // A logout afterwards refuses every generation as revoked; the entry goes when the last
    // token it covers has expired.
    m.revoke(again.token.expose_secret()).await.unwrap();
    assert!(matches!(m.verify_access(&access).await, Err(Error::Revoked { reason: RevocationReason::Logout })));
    clock.advance(15 * MINUTE + Duration::from_secs(31));
    m.store().remove_expired(m.clock().now(), usize::MAX).await.unwrap();
    assert_eq!(m.store().denylist_len(), 0);
}

#[tokio::test]
async fn denylist_entries_expire_with_the_tokens_they_cover() {
    let (m, clock, access, session_token) = setup(config()).await;
    m.revoke(&session_token).await.unwrap();
    assert_eq!(m.store().denylist_len(), 1);
    clock.advance(15 * MINUTE + Duration::from_secs(31));
    assert_eq!(rejected(m.verify_access(&access).await), AccessTokenError::Expired);
    m.store().remove_expired(m.clock().now(), usize::MAX).await.unwrap();
    assert_eq!(m.store().denylist_len(), 0, "the denylist forgets what can no longer verify");
}

#[tokio::test]
async fn key_rotation_keeps_old_tokens_valid_until_the_old_key_is_dropped() {
    let (m, _, old_access, _) = setup(config()).await;
    let (ed, _) = SigningKey::generate_ed25519("ed-1").unwrap();
    let rotated = m.keys().unwrap().rotated(ed).unwrap();
    m.set_keys(rotated.clone());
    m.verify_access(&old_access).await.unwrap();
    let new_access = m.create(NewSession::new(user("bob"))).await.unwrap().tokens.unwrap().access_token;
    assert_eq!(parts(new_access.expose_secret()).0["alg"], "EdDSA");
    m.verify_access(new_access.expose_secret()).await.unwrap();
    m.set_keys(rotated.without("hs-1"));
    assert_eq!(rejected(m.verify_access(&old_access).await), AccessTokenError::UnknownKey);
    m.verify_access(new_access.expose_secret()).await.unwrap();
}

/// A key dropped while verifications with it are in flight: none of them may leave the token
/// in the verified cache, where later requests would accept it without the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_key_stays_dropped_while_verifications_race_the_change() {
    let (m, _, old_access, _) = setup(config()).await;
    let (ed, _) = SigningKey::generate_ed25519("ed-1").unwrap();
    let both = m.keys().unwrap().rotated(ed).unwrap();
    let only_new = both.clone().without("hs-1");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let racers: Vec<_> = (0..2)
        .map(|_| {
            let (m, token, stop) = (m.clone(), old_access.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = m.verify_access(&token).await;
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    for _ in 0..2_000 {
        m.set_keys(both.clone());
        tokio::task::yield_now().await;
        m.set_keys(only_new.clone());
        assert_eq!(rejected(m.verify_access(&old_access).await), AccessTokenError::UnknownKey);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in racers {
        r.await.unwrap();
    }
    assert_eq!(rejected(m.verify_access(&old_access).await), AccessTokenError::UnknownKey);
}

#[tokio::test]
async fn jwks_publishes_the_ed25519_public_keys() {
    let (m, _) = manager(config());
    let (ed, _) = SigningKey::generate_ed25519("ed-1").unwrap();
    m.set_keys(
        KeySet::new(ed.clone()).unwrap().with_verification_key(SigningKey::hs256("hs", &SECRET).unwrap()).unwrap(),
    );
    let jwks = serde_json::to_value(m.keys().unwrap().jwks()).unwrap();
    assert_eq!(
        jwks,
        json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "ed-1", "alg": "EdDSA", "use": "sig",
                         "x": B64.encode(ed.ed25519_public_key().unwrap())}]})
    );
}

mod interop {
    use super::*;
    use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};

    #[derive(serde::Serialize, serde::Deserialize)]
    struct Claims {
        sub: String,
        sid: String,
        jti: String,
        iat: i64,
        exp: i64,
    }

    fn validation(alg: Algorithm) -> Validation {
        let mut v = Validation::new(alg);
        v.required_spec_claims = ["exp", "sub"].into_iter().map(String::from).collect();
        v
    }

    #[tokio::test]
    async fn hs256_tokens_verify_both_ways() {
        // jsonwebtoken reads the system clock, so the mock clock starts at the real time here.
        let (m, clock) = manager(config());
        clock.set(sessionkit::SystemClock.now());
        m.set_keys(hs_keys());
        let created = m.create(NewSession::new(user("alice"))).await.unwrap();
        let access = created.tokens.unwrap().access_token.expose_secret().to_owned();
        let session_token = created.token.expose_secret().to_owned();
        let ours =
            decode::<Claims>(&access, &DecodingKey::from_secret(&SECRET), &validation(Algorithm::HS256)).unwrap();
        assert_eq!(ours.claims.sub, "alice");
        let sid = m.validate(&session_token).await.unwrap().id();
        assert_eq!(ours.claims.sid, sid.to_string());

        let now = clock.now_utc().unix_timestamp();
        let claims = Claims { sub: "alice".into(), sid: sid.to_string(), jti: "j1".into(), iat: now, exp: now + 60 };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("hs-1".into());
        let theirs = encode(&header, &claims, &EncodingKey::from_secret(&SECRET)).unwrap();
        assert_eq!(m.verify_access(&theirs).await.unwrap().session_id, sid);

        let tampered = tamper(&theirs);
        assert!(matches!(m.verify_access(&tampered).await, Err(Error::AccessToken(AccessTokenError::BadSignature))));
        assert!(
            decode::<Claims>(&tamper(&access), &DecodingKey::from_secret(&SECRET), &validation(Algorithm::HS256))
                .is_err()
        );
    }

    #[tokio::test]
    async fn eddsa_tokens_verify_both_ways() {
        let (m, clock) = manager(config());
        clock.set(sessionkit::SystemClock.now());
        let (ed, pkcs8) = SigningKey::generate_ed25519("ed-1").unwrap();
        m.set_keys(KeySet::new(ed.clone()).unwrap());
        let created = m.create(NewSession::new(user("alice"))).await.unwrap();
        let access = created.tokens.unwrap().access_token;
        let public = DecodingKey::from_ed_components(&B64.encode(ed.ed25519_public_key().unwrap())).unwrap();
        let ours = decode::<Claims>(access.expose_secret(), &public, &validation(Algorithm::EdDSA)).unwrap();
        assert_eq!(ours.claims.sid, created.session.id().to_string());

        let now = clock.now_utc().unix_timestamp();
        let claims = Claims {
            sub: "alice".into(),
            sid: created.session.id().to_string(),
            jti: "j".into(),
            iat: now,
            exp: now + 60,
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some("ed-1".into());
        let theirs = encode(&header, &claims, &EncodingKey::from_ed_der(&pkcs8)).unwrap();
        m.verify_access(&theirs).await.unwrap();
        assert!(m.verify_access(&tamper(&theirs)).await.is_err());
        assert!(decode::<Claims>(&tamper(access.expose_secret()), &public, &validation(Algorithm::EdDSA)).is_err());
    }

    /// Changes one character of the payload.
    fn tamper(token: &str) -> String {
        let mut parts: Vec<String> = token.split('.').map(String::from).collect();
        let claims: Value = serde_json::from_slice(&B64.decode(&parts[1]).unwrap()).unwrap();
        let mut claims = claims;
        claims["sub"] = json!("mallory");
        parts[1] = B64.encode(claims.to_string());
        parts.join(".")
    }
}

#[tokio::test]
async fn authenticate_access_returns_the_session_or_why_it_is_gone() {
    // Access tokens outliving the idle timeout, so that the session can expire under a valid token.
    let (m, clock, access, _) = setup(config().access_token_ttl(2 * 60 * MINUTE)).await;
    let (claims, session) = m.authenticate_access(&access).await.unwrap();
    assert_eq!(session.id(), claims.session_id);
    assert_eq!(session.request_count(), 0, "reading the session does not count a request");
    clock.advance(30 * MINUTE);
    assert!(matches!(
        m.authenticate_access(&access).await,
        Err(Error::Expired { reason: sessionkit::ExpiryReason::Idle })
    ));
    m.sweep_expired().await.unwrap();
    assert!(matches!(m.authenticate_access(&access).await, Err(Error::UnknownSession)), "swept");
}
