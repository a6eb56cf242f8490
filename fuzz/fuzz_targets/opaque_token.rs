//! Session and refresh tokens as clients present them, and token digests as stores return them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sessionkit::token::TokenDigest;
use sessionkit::{RefreshToken, SessionToken};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let digest = TokenDigest::of_token(s);
    let session = SessionToken::parse(s);
    let refresh = RefreshToken::parse(s);
    // One grammar for all three.
    assert_eq!(digest.is_ok(), session.is_ok());
    assert_eq!(digest.is_ok(), refresh.is_ok());
    if let (Ok(digest), Ok(session), Ok(refresh)) = (digest, session, refresh) {
        // A parsed token is the presented text, and digests as the presented text does.
        assert_eq!(session.expose_secret(), s);
        assert_eq!(refresh.expose_secret(), s);
        assert!(session.digest() == digest);
        assert!(refresh.digest() == digest);
        assert!(matches!(s.len(), 43 | 45));
    }
    // A digest's text form has one spelling.
    if let Ok(d) = TokenDigest::from_base64(s) {
        assert_eq!(d.to_base64(), s);
        assert!(TokenDigest::from_base64(&d.to_base64()).is_ok_and(|again| again == d));
    }
});
