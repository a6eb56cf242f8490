//! Whole access tokens through `SessionManager::verify_access`, with a known key: structure,
//! header, signature, claims, cache and denylist.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sessionkit_fuzz::{block_on, shared_manager};

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else { return };
    let manager = shared_manager();
    let first = block_on(manager.verify_access(token));
    // The second verification may come from the cache: it must agree.
    let second = block_on(manager.verify_access(token));
    match (&first, &second) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
        _ => panic!("verification and cached verification disagree: {first:?} / {second:?}"),
    }
    if first.is_ok() {
        assert_eq!(token.bytes().filter(|&b| b == b'.').count(), 2, "a verified token is a compact JWS");
    }
});
