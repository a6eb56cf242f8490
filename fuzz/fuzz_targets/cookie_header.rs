//! The `Cookie` request header, as `SessionCookie::find` and `find_in` read it, and the
//! `Set-Cookie` value `SessionCookie::set` writes for a value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sessionkit::SessionCookie;

/// The cookie names the first byte picks from: the web integration's session cookie
/// (`__Host-session`, through its prefix), then two plain names.
const NAMES: [(&str, bool); 3] = [("session", true), ("sid", false), ("refresh_token", false)];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else { return };
    let Ok(header) = std::str::from_utf8(rest) else { return };
    let (name, host_prefix) = NAMES[usize::from(pick) % NAMES.len()];
    let cookie = SessionCookie::builder(name).host_prefix(host_prefix).build().expect("a valid cookie");
    let found = cookie.find(header);
    if let Some(value) = found {
        assert!(!value.is_empty());
        assert!(!value.contains(';'));
        // A slice of the header itself.
        let (start, end) = (value.as_ptr() as usize, value.as_ptr() as usize + value.len());
        assert!(start >= header.as_ptr() as usize && end <= header.as_ptr() as usize + header.len());
    }
    // HTTP/2 clients split cookies over several headers: the first header with it wins.
    let lines: Vec<&str> = header.split('\n').collect();
    let first = lines.iter().find_map(|line| cookie.find(line));
    assert_eq!(cookie.find_in(lines.iter().copied()), first);
    if lines.len() == 1 {
        assert_eq!(first, found);
    }
    // Writing: a value is accepted only if it can be read back as itself.
    if let Ok(set) = cookie.set(header, None) {
        let pair = set.split(';').next().unwrap_or_default();
        if !header.is_empty() {
            assert_eq!(cookie.find(pair), Some(header.trim_matches('"')).filter(|v| !v.is_empty()));
        }
    }
});
