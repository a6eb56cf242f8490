//! The JSON Lines export format as `import` reads it: an accepted file re-exports to the same
//! items, and imports into a memory store without a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sessionkit::backup::jsonl;
use sessionkit_fuzz::{block_on, manager, now};

fuzz_target!(|data: &[u8]| {
    let Ok(items) = jsonl::read(data) else {
        // Whatever `read` refuses, `import` refuses too.
        assert!(block_on(manager().import(data)).is_err());
        return;
    };
    let mut out = Vec::new();
    jsonl::write_header(&mut out, now()).expect("writes to a Vec");
    for item in &items {
        jsonl::write_item(&mut out, item).expect("writes to a Vec");
    }
    jsonl::write_end(&mut out, items.len() as u64).expect("writes to a Vec");
    let again = jsonl::read(out.as_slice()).expect("an export of accepted items reads back");
    assert_eq!(again, items);
    let _ = block_on(manager().import(data));
});
