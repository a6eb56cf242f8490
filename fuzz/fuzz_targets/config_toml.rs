//! `SessionConfig` read from TOML: an accepted configuration is valid and round-trips.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sessionkit::SessionConfig;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(config) = toml::from_str::<SessionConfig>(text) else { return };
    // Every accepted configuration is one the builder accepts.
    assert_eq!(config.to_builder().build().as_ref(), Ok(&config));
    let written = toml::to_string(&config).expect("an accepted configuration serialises");
    let again: SessionConfig = toml::from_str(&written).expect("a written configuration reads back");
    assert_eq!(again, config);
});
