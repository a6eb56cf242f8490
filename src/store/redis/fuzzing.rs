//! The Redis store's reply decoding, reachable from the fuzz targets in `fuzz/` (feature
//! `fuzzing`, for fuzzing only: not part of the API, and not covered by semver).

use redis::Value;

use crate::error::StoreError;

use super::codec;

/// Decodes `reply` (a RESP reply as Redis sends it) with every decoder of the store's script
/// replies: a session record (as `rec()` and as stored, one string), a list of records, a lookup
/// and an optional record, a number, a timestamp and a denylist entry (`<scope>|<until>`).
/// Answers how many decoders accepted it.
/// Bad input must yield [`StoreError::Corrupt`], never a panic; bytes that are not RESP at all
/// are accepted by no decoder.
#[doc(hidden)]
pub fn decode_reply(resp: &[u8]) -> usize {
    let Ok(reply) = redis::parse_redis_value(resp) else {
        return 0;
    };
    let mut accepted = 0;
    let mut count = |r: Result<(), StoreError>| accepted += usize::from(r.is_ok());
    count(codec::record(&reply).map(drop));
    count(codec::bytes(&reply).and_then(codec::record_of_string).map(drop));
    count(codec::records(&reply).map(drop));
    count(codec::int(&reply).map(drop));
    count(codec::bytes(&reply).and_then(codec::parse_ts).map(drop));
    count(codec::text(&reply).and_then(codec::deny_entry).map(drop));
    if let Value::Array(items) = &reply {
        count(codec::lookup(items).map(drop));
        count(codec::optional_record(items).map(drop));
    }
    accepted
}
