//! The claims set of an access token whose signature is valid: the input is the claims JSON,
//! signed here with the known HS256 key under its own header, then verified in full.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sessionkit_fuzz::{AUDIENCE, ISSUER, NOW_SECS, block_on, own_header, shared_manager, sign};

fuzz_target!(|data: &[u8]| {
    let manager = shared_manager();
    let token = sign(&own_header(), data);
    let Ok(claims) = block_on(manager.verify_access(&token)) else { return };
    // What was accepted is a JSON object whose registered claims have their registered types
    // and the values the verifier answered (serde_json keeps the last of duplicate members,
    // so this also shows that none was given twice with different values).
    let text = std::str::from_utf8(data).expect("accepted claims are UTF-8");
    assert!(serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok(), "accepted claims are JSON");
    // serde_json's `Value` refuses numbers beyond `f64` (valid JSON, which the verifier skips
    // in members it does not read): the values are compared when it can read them.
    let Ok(json) = serde_json::from_str::<serde_json::Value>(text) else { return };
    assert_eq!(json["sub"].as_str(), Some(claims.user.as_str()));
    assert_eq!(json["sid"].as_str().map(str::to_owned), Some(claims.session_id.to_string()));
    assert_eq!(json["exp"].as_i64(), Some(claims.expires_at));
    assert_eq!(json["iss"], ISSUER);
    match &json["aud"] {
        serde_json::Value::String(aud) => assert_eq!(aud, AUDIENCE),
        serde_json::Value::Array(auds) => assert!(auds.iter().any(|a| a == AUDIENCE)),
        other => panic!("accepted aud {other:?}"),
    }
    match json.get("iat") {
        Some(iat) => assert_eq!(iat.as_i64(), Some(claims.issued_at)),
        None => assert_eq!(claims.issued_at, 0),
    }
    match json.get("gen") {
        Some(generation) => assert_eq!(generation.as_u64(), Some(claims.generation)),
        None => assert_eq!(claims.generation, 0),
    }
    if let Some(nbf) = json.get("nbf") {
        assert!(nbf.as_i64().is_some(), "nbf must be an integer");
    }
    assert!(claims.expires_at > NOW_SECS - 60, "an accepted token has not expired");
});
