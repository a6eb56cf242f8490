//! Rows to records and back, and sqlx errors to [`StoreError`]s.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::clock::Timestamp;
use crate::error::{RevocationReason, StoreError};
use crate::session::{Metadata, SessionData, SessionRecord, UserId};
use crate::store::{DenyEntry, DenyScope};
use crate::token::TokenDigest;

/// The session columns every statement that answers a record selects, in [`record`]'s order.
pub(super) const COLS: &str = "seq, id, digest, user_id, created_at, last_seen_at, idle_deadline, \
     absolute_deadline, remember_me, request_count, metadata, data, generation";

pub(super) fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("unreadable {what} in the session database"))
}

/// A session row (selected as [`COLS`], from column `at` on) with its `seq`.
pub(super) fn record_at(row: &AnyRow, at: usize) -> Result<(i64, SessionRecord), StoreError> {
    let int = |i: usize, what: &str| row.try_get::<i64, _>(at + i).map_err(|_| corrupt(what));
    let text = |i: usize, what: &str| row.try_get::<String, _>(at + i).map_err(|_| corrupt(what));
    let metadata = match text(10, "session metadata")?.as_str() {
        "" => Metadata::default(),
        m => serde_json::from_str(m).map_err(|_| corrupt("session metadata"))?,
    };
    let data = match text(11, "session data")?.as_str() {
        "" => SessionData::default(),
        d => SessionData::from_map(serde_json::from_str(d).map_err(|_| corrupt("session data"))?),
    };
    let record = SessionRecord {
        id: text(1, "session id")?.parse().map_err(|_| corrupt("session id"))?,
        digest: digest(&text(2, "digest")?)?,
        user: UserId::new(text(3, "user id")?).map_err(|_| corrupt("user id"))?,
        created_at: Timestamp::from_unix_nanos(int(4, "timestamp")?),
        last_seen_at: Timestamp::from_unix_nanos(int(5, "timestamp")?),
        idle_deadline: Timestamp::from_unix_nanos(int(6, "timestamp")?),
        absolute_deadline: Timestamp::from_unix_nanos(int(7, "timestamp")?),
        remember_me: int(8, "remember-me flag")? != 0,
        request_count: u64::try_from(int(9, "request count")?).map_err(|_| corrupt("request count"))?,
        generation: u64::try_from(int(12, "generation")?).map_err(|_| corrupt("generation"))?,
        metadata,
        data,
    };
    Ok((int(0, "sequence")?, record))
}

pub(super) fn record(row: &AnyRow) -> Result<(i64, SessionRecord), StoreError> {
    record_at(row, 0)
}

pub(super) fn digest(s: &str) -> Result<TokenDigest, StoreError> {
    TokenDigest::from_base64(s).map_err(|_| corrupt("digest"))
}

pub(super) fn reason(s: &str) -> Result<RevocationReason, StoreError> {
    RevocationReason::from_str_exact(s).ok_or_else(|| corrupt("revocation reason"))
}

/// A denylist row's entry from its columns: `reason` set for a revocation
/// ([`DenyScope::All`]), `below_generation` set for a rotation's entry ([`DenyScope::Below`]);
/// exactly one of them.
pub(super) fn deny_entry(reason_: Option<&str>, below: Option<i64>, until: i64) -> Result<DenyEntry, StoreError> {
    let scope = match (reason_, below) {
        (Some(why), None) => DenyScope::All(reason(why)?),
        (None, Some(g)) => DenyScope::Below(u64::try_from(g).map_err(|_| corrupt("denylist generation"))?),
        _ => return Err(corrupt("denylist entry")),
    };
    Ok(DenyEntry { scope, until: Timestamp::from_unix_nanos(until) })
}

/// The `reason` and `below_generation` columns of `entry` (see [`deny_entry`]).
pub(super) fn deny_columns(entry: &DenyEntry) -> (Option<&'static str>, Option<i64>) {
    match entry.scope {
        DenyScope::All(why) => (Some(why.as_str()), None),
        DenyScope::Below(g) => (None, Some(i64::try_from(g).unwrap_or(i64::MAX))),
    }
}

pub(super) fn json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Backend(Box::new(e)))
}

pub(super) fn nanos(t: Timestamp) -> i64 {
    t.unix_nanos()
}

/// Connection trouble and timeouts are [`StoreError::Unavailable`] (the manager fails closed
/// and the pool reconnects); a unique violation is [`StoreError::Conflict`]; a deadlock or
/// serialization failure [`StoreError::Contended`]; the rest [`StoreError::Backend`].
pub(super) fn sql_error(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict,
        // PostgreSQL's deadlock and serialization failures: the transaction was rolled back,
        // nothing changed, and a retry may succeed.
        sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("40P01" | "40001")) => StoreError::Contended,
        sqlx::Error::Database(db) if is_transient(db.code().as_deref()) => StoreError::Unavailable(Box::new(e)),
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => StoreError::Unavailable(Box::new(e)),
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) | sqlx::Error::ColumnNotFound(_) => corrupt("row"),
        _ => StoreError::Backend(Box::new(e)),
    }
}

/// Database error codes that mean "not now" rather than "wrong": PostgreSQL's shutdown and
/// connection classes (`57P0x`, `08xxx`), SQLite's busy and locked (primary codes 5 and 6: the
/// busy timeout ran out).
fn is_transient(code: Option<&str>) -> bool {
    let Some(code) = code else { return false };
    code.starts_with("57P0") || code.starts_with("08") || code.parse::<i32>().is_ok_and(|c| matches!(c & 0xff, 5 | 6))
}
