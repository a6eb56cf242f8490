//! CSRF tokens as the page sends them back (the `X-CSRF-Token` header).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sessionkit::token::TokenDigest;
use sessionkit::{CsrfError, CsrfKey};

fuzz_target!(|data: &[u8]| {
    let Ok(presented) = std::str::from_utf8(data) else { return };
    let key = CsrfKey::from_bytes(&[7; 32]).expect("a valid key");
    let digest = TokenDigest::from_bytes([42; 32]);
    let expected = key.token_for_digest(&digest);
    match key.verify_digest(&digest, presented) {
        Ok(()) => assert_eq!(presented, expected.expose_secret()),
        Err(CsrfError::Missing) => assert!(presented.is_empty()),
        Err(CsrfError::Malformed) => assert_ne!(presented.len(), 0),
        Err(CsrfError::Mismatch) => {
            assert_eq!(presented.len(), 43);
            assert_ne!(presented, expected.expose_secret());
        }
        Err(e) => panic!("unexpected {e:?}"),
    }
});
