//! The JOSE header of an access token whose signature is valid: the input is the header's JSON,
//! signed here with the known HS256 key over a valid claims set, then verified in full.
#![no_main]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;
use sessionkit_fuzz::{HS256_KID, SID, block_on, shared_manager, sign, valid_claims};

fuzz_target!(|data: &[u8]| {
    let manager = shared_manager();
    let token = sign(&URL_SAFE_NO_PAD.encode(data), valid_claims(SID).as_bytes());
    let verified = block_on(manager.verify_access(&token));
    if verified.is_ok() {
        // Only a JSON object naming this key and its algorithm, with no `crit`, is accepted.
        let text = std::str::from_utf8(data).expect("an accepted header is UTF-8");
        assert!(serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok(), "an accepted header is JSON");
        // serde_json's `Value` refuses numbers beyond `f64` (valid JSON, skipped by the
        // verifier in members it does not read): the members are checked when it reads them.
        let Ok(header) = serde_json::from_str::<serde_json::Value>(text) else { return };
        assert_eq!(header["alg"], "HS256");
        assert_eq!(header["kid"], HS256_KID);
        assert!(header.get("crit").is_none());
        assert!(header.get("typ").is_none_or(|t| t.as_str().is_some_and(|t| t.eq_ignore_ascii_case("JWT"))));
    }
});
