//! The client helper's grant: a login or refresh answer from the server (RFC 6749 §5.1).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sessionkit::client::{Grant, RefreshMargin, TokenHolder, Tokens};
use sessionkit::clock::MockClock;
use sessionkit_fuzz::now;

fuzz_target!(|data: &[u8]| {
    let Ok(grant) = serde_json::from_slice::<Grant>(data) else { return };
    let tokens = Tokens::new(grant.clone(), now(), RefreshMargin::default());
    match (tokens.expires_at(), tokens.refresh_at()) {
        (Some(expires), Some(refresh)) => {
            assert!(expires >= now());
            assert!(refresh <= expires);
        }
        (None, None) => assert!(grant.expires_in().is_none()),
        other => panic!("expiry and refresh disagree: {other:?}"),
    }
    let holder: TokenHolder<std::io::Error, MockClock> = TokenHolder::with_clock(MockClock::at(now()));
    holder.set(grant);
    let _ = holder.time_until_refresh();
    let _ = holder.needs_refresh(now());
});
