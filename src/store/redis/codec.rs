//! Encoding of script arguments and decoding of script replies: timestamps as sortable
//! strings, session records, revocation and expiry reasons, and the replies' outcome tags.

use redis::Value;

use crate::clock::Timestamp;
use crate::error::{ExpiryReason, RevocationReason, StoreError};
use crate::session::{Metadata, SessionData, SessionRecord, UserId};
use crate::store::{DenyEntry, DenyScope, Lookup, Revocation, TouchPolicy};
use crate::token::TokenDigest;

/// A timestamp as 20 decimal digits whose string order is time order.
pub(super) fn ts(t: Timestamp) -> Vec<u8> {
    #[allow(clippy::cast_sign_loss)] // the bit flip maps i64 order onto u64 order
    let v = (t.unix_nanos() as u64) ^ (1 << 63);
    format!("{v:020}").into_bytes()
}

pub(super) fn parse_ts(s: &[u8]) -> Result<Timestamp, StoreError> {
    let v: u64 = std::str::from_utf8(s)
        .ok()
        .filter(|s| s.len() == 20)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| corrupt("timestamp"))?;
    #[allow(clippy::cast_possible_wrap)]
    Ok(Timestamp::from_unix_nanos((v ^ (1 << 63)) as i64))
}

pub(super) fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("unreadable {what} in Redis"))
}

pub(super) fn bytes(v: &Value) -> Result<&[u8], StoreError> {
    match v {
        Value::BulkString(b) => Ok(b),
        Value::SimpleString(s) => Ok(s.as_bytes()),
        _ => Err(corrupt("script reply")),
    }
}

pub(super) fn text(v: &Value) -> Result<&str, StoreError> {
    std::str::from_utf8(bytes(v)?).map_err(|_| corrupt("text"))
}

pub(super) fn array(v: &Value) -> Result<&[Value], StoreError> {
    match v {
        Value::Array(a) => Ok(a),
        Value::Nil => Ok(&[]),
        _ => Err(corrupt("script reply")),
    }
}

pub(super) fn int(v: &Value) -> Result<i64, StoreError> {
    match v {
        Value::Int(i) => Ok(*i),
        other => text(other)?.parse().map_err(|_| corrupt("number")),
    }
}

/// The reply's first element: which outcome the script reports.
pub(super) fn tag(v: &[Value]) -> Result<&str, StoreError> {
    v.first().ok_or_else(|| corrupt("empty script reply")).and_then(text)
}

pub(super) fn field(v: &[Value], i: usize) -> Result<&Value, StoreError> {
    v.get(i).ok_or_else(|| corrupt("short script reply"))
}

pub(super) fn digest(s: &str) -> Result<TokenDigest, StoreError> {
    TokenDigest::from_base64(s).map_err(|_| corrupt("digest"))
}

pub(super) fn reason(s: &str) -> Result<RevocationReason, StoreError> {
    RevocationReason::from_str_exact(s).ok_or_else(|| corrupt("revocation reason"))
}

pub(super) fn expiry_reason(s: &str) -> Result<ExpiryReason, StoreError> {
    match s {
        "idle" => Ok(ExpiryReason::Idle),
        "absolute" => Ok(ExpiryReason::Absolute),
        _ => Err(corrupt("expiry reason")),
    }
}

/// A generation as the scripts write it: canonical decimal digits (`""`, the field absent, is 0).
fn generation(s: &str) -> Result<u64, StoreError> {
    if s.is_empty() {
        return Ok(0);
    }
    crate::store::canonical_u64(s).ok_or_else(|| corrupt("session generation"))
}

/// The 12 fields of `rec()` in the scripts' prelude.
pub(super) fn record(v: &Value) -> Result<SessionRecord, StoreError> {
    let f = array(v)?;
    if f.len() != 12 {
        return Err(corrupt("session record"));
    }
    let mut parts: [&[u8]; 12] = [&[]; 12];
    for (part, value) in parts.iter_mut().zip(f) {
        *part = bytes(value)?;
    }
    record_of_parts(parts)
}

/// The number of newline-ended fields before the user id in a stored session (`F` in the
/// scripts' prelude).
const STORED_FIELDS: usize = 15;

/// A session as stored, one string (see `get` in the scripts' prelude): `id`, digest, created,
/// last seen, idle and absolute deadlines, remember-me, request count, generation, data
/// version, creation sequence, current and spent refresh digests, metadata and data, each
/// ended by a newline, then the user id (any bytes, so last).
pub(super) fn record_of_string(s: &[u8]) -> Result<SessionRecord, StoreError> {
    let mut f: [&[u8]; STORED_FIELDS] = [&[]; STORED_FIELDS];
    let mut rest = s;
    for part in &mut f {
        let end = rest.iter().position(|&b| b == b'\n').ok_or_else(|| corrupt("session record"))?;
        *part = &rest[..end];
        rest = &rest[end + 1..];
    }
    let [id, digest, created, seen, idle, absolute, remember, count, generation, _, _, _, _, metadata, data] = f;
    record_of_parts([id, digest, rest, created, seen, idle, absolute, remember, count, metadata, data, generation])
}

/// A record from its fields in `rec()`'s order (metadata and data empty when there are none,
/// the generation empty when never written).
fn record_of_parts(f: [&[u8]; 12]) -> Result<SessionRecord, StoreError> {
    let utf8 = |b| std::str::from_utf8(b).map_err(|_| corrupt("text"));
    let metadata = match f[9] {
        b"" => Metadata::default(),
        m => serde_json::from_slice(m).map_err(|_| corrupt("session metadata"))?,
    };
    let data = match f[10] {
        b"" => SessionData::default(),
        d => SessionData::from_map(serde_json::from_slice(d).map_err(|_| corrupt("session data"))?),
    };
    Ok(SessionRecord {
        id: utf8(f[0])?.parse().map_err(|_| corrupt("session id"))?,
        digest: digest(utf8(f[1])?)?,
        user: UserId::new(utf8(f[2])?).map_err(|_| corrupt("user id"))?,
        created_at: parse_ts(f[3])?,
        last_seen_at: parse_ts(f[4])?,
        idle_deadline: parse_ts(f[5])?,
        absolute_deadline: parse_ts(f[6])?,
        remember_me: f[7] == b"1",
        request_count: utf8(f[8])?.parse().map_err(|_| corrupt("request count"))?,
        generation: generation(utf8(f[11])?)?,
        metadata,
        data,
    })
}

pub(super) fn records(v: &Value) -> Result<Vec<SessionRecord>, StoreError> {
    array(v)?.iter().map(record).collect()
}

/// `value` as compact JSON, the form of a stored session's metadata and data. serde_json's
/// compact form escapes every control character, so it never holds a raw newline, the stored
/// record's field separator; this checks it rather than trust it.
pub(super) fn json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    let v = serde_json::to_vec(value).map_err(|e| StoreError::Backend(Box::new(e)))?;
    if v.contains(&b'\n') {
        return Err(StoreError::Backend("session JSON holds a raw newline".into()));
    }
    Ok(v)
}

/// A denylist entry's scope as stored and published ([`DenyScope::to_text`]).
pub(super) fn deny_scope_arg(scope: DenyScope) -> Vec<u8> {
    scope.to_text().into_owned().into_bytes()
}

/// The scope [`deny_scope_arg`] wrote, strictly ([`DenyScope::from_text`]).
pub(super) fn deny_scope(s: &str) -> Result<DenyScope, StoreError> {
    DenyScope::from_text(s).ok_or_else(|| corrupt("denylist scope"))
}

/// A denylist key's value, `<scope>|<until>` (see [`deny_scope_arg`]).
pub(super) fn deny_entry(v: &str) -> Result<DenyEntry, StoreError> {
    let (scope, until) = v.split_once('|').ok_or_else(|| corrupt("denylist entry"))?;
    Ok(DenyEntry { scope: deny_scope(scope)?, until: parse_ts(until.as_bytes())? })
}

pub(super) fn deny_arg(revocation: &Revocation) -> Vec<u8> {
    revocation.deny_access_until.map(ts).unwrap_or_default()
}

/// The arguments every renewal takes: `now - interval`, `now + idle` (ordinary, remember-me)
/// and whether to count the request.
pub(super) fn touch_args(now: Timestamp, policy: &TouchPolicy) -> [Vec<u8>; 4] {
    [
        ts(now.saturating_sub(policy.interval)),
        ts(now.saturating_add(policy.idle_timeout)),
        ts(now.saturating_add(policy.remember_me_idle_timeout)),
        if policy.count_request { b"1".to_vec() } else { b"0".to_vec() },
    ]
}

pub(super) fn lookup(reply: &[Value]) -> Result<Lookup, StoreError> {
    match tag(reply)? {
        "live" => Ok(Lookup::Live(record(field(reply, 1)?)?)),
        "expired" => Ok(Lookup::Expired {
            reason: expiry_reason(text(field(reply, 1)?)?)?,
            record: Box::new(record(field(reply, 2)?)?),
        }),
        "revoked" => Ok(Lookup::Revoked(reason(text(field(reply, 1)?)?)?)),
        "none" => Ok(Lookup::NotFound),
        _ => Err(corrupt("lookup reply")),
    }
}

pub(super) fn optional_record(reply: &[Value]) -> Result<Option<SessionRecord>, StoreError> {
    match tag(reply)? {
        "ok" => record(field(reply, 1)?).map(Some),
        "none" => Ok(None),
        _ => Err(corrupt("reply")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_keep_their_order_as_strings() {
        let values = [i64::MIN, -1_000_000_007, -1, 0, 1, 1_704_067_200_000_000_000, i64::MAX];
        for pair in values.windows(2) {
            let (a, b) = (ts(Timestamp::from_unix_nanos(pair[0])), ts(Timestamp::from_unix_nanos(pair[1])));
            assert_eq!(a.len(), 20);
            assert!(a < b, "{pair:?}");
        }
        for v in values {
            assert_eq!(parse_ts(&ts(Timestamp::from_unix_nanos(v))).unwrap().unix_nanos(), v);
        }
        assert!(parse_ts(b"123").is_err());
        assert!(parse_ts(b"9999999999999999999x").is_err());
        assert!(parse_ts(b"99999999999999999999").is_err(), "over u64::MAX");
    }

    #[test]
    fn denylist_entries_are_parsed_strictly() {
        let until = Timestamp::from_unix_nanos(5);
        let u = String::from_utf8(ts(until)).unwrap();
        let all = DenyEntry { scope: DenyScope::All(RevocationReason::Admin), until };
        assert_eq!(deny_entry(&format!("admin|{u}")).unwrap(), all, "the format of earlier versions");
        for g in [0, 7, u64::MAX] {
            let scope = DenyScope::Below(g);
            let v = format!("{}|{u}", String::from_utf8(deny_scope_arg(scope)).unwrap());
            assert_eq!(deny_entry(&v).unwrap(), DenyEntry { scope, until });
        }
        for bad in ["below:|", "below:-1", "below:+1", "below:01", "below:1x", "below:18446744073709551616", "below:"] {
            assert!(deny_entry(&format!("{bad}|{u}")).is_err(), "{bad}");
        }
        assert!(deny_entry("below:1").is_err());
        assert!(deny_entry(&format!("below:1|{u}x")).is_err());
        assert!(deny_entry(&format!("nonsense|{u}")).is_err());
    }

    #[test]
    fn generations_are_read_strictly() {
        assert_eq!(generation("").unwrap(), 0, "absent: stored before generations existed");
        assert_eq!(generation("12").unwrap(), 12);
        for bad in ["x", "-1", "+1", "01", "1.0", "18446744073709551616"] {
            assert!(generation(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_stored_session_is_read_with_any_user_id() {
        let t = |n| String::from_utf8(ts(Timestamp::from_unix_nanos(n))).unwrap();
        let digest = TokenDigest::from_bytes([7; 32]).to_base64();
        let id = crate::session::SessionId::generate().unwrap();
        let fields = [
            id.to_string(),
            digest.clone(),
            t(1),
            t(2),
            t(3),
            t(4),
            "1".into(),
            "7".into(),
            "3".into(),
            "0".into(),
            "12".into(),
            "refresh".into(),
            "spent1,spent2".into(),
            r#"{"ip":null,"user_agent":"a\nb"}"#.into(),
            r#"{"k":"v"}"#.into(),
        ];
        let stored = format!("{}\nuser\nwith|newlines", fields.join("\n"));
        let r = record_of_string(stored.as_bytes()).unwrap();
        assert_eq!((r.id, r.digest.to_base64()), (id, digest));
        assert_eq!(r.user.as_str(), "user\nwith|newlines", "the user id is everything after the 15th newline");
        assert_eq!((r.created_at, r.last_seen_at), (Timestamp::from_unix_nanos(1), Timestamp::from_unix_nanos(2)));
        assert_eq!(
            (r.idle_deadline, r.absolute_deadline),
            (Timestamp::from_unix_nanos(3), Timestamp::from_unix_nanos(4))
        );
        assert_eq!((r.remember_me, r.request_count, r.generation), (true, 7, 3));
        assert_eq!(r.metadata.user_agent().map(|a| &**a), Some("a\nb"));
        assert_eq!(r.data.get("k"), Some(&serde_json::json!("v")));
        // Cut short anywhere before the user id, or with a field out of form: corrupt, no panic.
        let cut = stored.find("user").unwrap();
        for end in 0..cut {
            assert!(matches!(record_of_string(&stored.as_bytes()[..end]), Err(StoreError::Corrupt(_))), "{end}");
        }
        let bad = stored.replacen("\n1\n7\n", "\n1\nseven\n", 1);
        assert!(matches!(record_of_string(bad.as_bytes()), Err(StoreError::Corrupt(_))));
    }
}
