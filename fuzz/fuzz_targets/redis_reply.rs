//! The Redis store's decoding of script replies (session records, lookups), from RESP bytes,
//! through the hidden entry point of the `fuzzing` feature.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = sessionkit::store::redis::fuzzing::decode_reply(data);
});
