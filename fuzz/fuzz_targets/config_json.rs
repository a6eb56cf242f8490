//! `SessionConfig` read from JSON: an accepted configuration is valid and round-trips.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sessionkit::SessionConfig;

fuzz_target!(|data: &[u8]| {
    let Ok(config) = serde_json::from_slice::<SessionConfig>(data) else { return };
    assert_eq!(config.to_builder().build().as_ref(), Ok(&config));
    let written = serde_json::to_vec(&config).expect("an accepted configuration serialises");
    let again: SessionConfig = serde_json::from_slice(&written).expect("a written configuration reads back");
    assert_eq!(again, config);
});
