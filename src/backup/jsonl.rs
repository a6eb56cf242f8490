//! Export and import: every session (and remembered revocation and denylist entry) as
//! versioned JSON Lines.
//!
//! ```text
//! {"format":"sessionkit","version":2,"exported_at":"2026-11-23T18:00:00Z"}
//! {"type":"session","id":"…","digest":"…","user":"alice",…,"generation":1,…,"refresh":{"current":"…","spent":[]}}
//! {"type":"revoked","digest":"…","reason":"logout","until":1700000000000000000}
//! {"type":"denied","session_id":"…","reason":"logout","until":1700000000000000000}
//! {"type":"superseded","session_id":"…","below_generation":1,"until":1700000000000000000}
//! {"type":"end","items":4}
//! ```
//!
//! Version 2 added a session's `generation` (how often its token was rotated) and the
//! `superseded` denylist entries a rotation leaves. Version 1 files still import: their
//! sessions read as generation 0, and they have no `superseded` lines.
//!
//! Only digests leave the store, never a token; a restored session still accepts its original
//! token, because the digest is what was stored. Import reads and checks every line before it
//! changes anything, and reports the first bad line by number: an unknown format or version, a
//! malformed line, a duplicate session id or digest, or a missing or miscounted `end` line
//! (a truncated file) is refused, and nothing is half-imported. Timestamps are nanoseconds
//! since the Unix epoch, exactly as stored.

use std::collections::HashSet;
use std::io::{BufRead, Write};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::clock::Timestamp;
use crate::config::{MAX_DATA_BYTES_CEILING, MAX_USER_AGENT_LEN_CEILING, SessionConfig};
use crate::session::UserId;
use crate::store::{REFRESH_REUSE_HISTORY, StoredItem};

/// The format name in the header line.
pub const FORMAT: &str = "sessionkit";
/// The format version this build writes (and the newest it reads).
pub const VERSION: u32 = 2;
/// The oldest format version this build reads.
pub const OLDEST_VERSION: u32 = 1;
/// Longest accepted line, in bytes: 2 MiB, above the longest line of any session a
/// [`SessionConfig`] allows (about 1.4 MiB; see below), so that every export and snapshot the
/// crate writes can be read back. Longer lines are refused without being read whole.
///
/// A session's line is longest with the largest data bag a configuration may allow
/// ([`max_data_bytes`](SessionConfig::max_data_bytes) at most 1 MiB, written exactly as it was
/// measured: compact JSON), the longest user agent
/// ([`max_user_agent_len`](SessionConfig::max_user_agent_len) at most 64 KiB) and user id
/// ([`UserId::MAX_LEN`], 256 bytes), both of control characters (which JSON escapes as six
/// bytes each), and a full refresh history. Its data is nested one level inside the line, so
/// its depth (at most [`SessionConfig::MAX_DATA_DEPTH`]) stays within serde_json's 127 levels
/// too.
pub const MAX_LINE: usize = 2 << 20;

/// Everything in a session's line but its user id, user agent and data: field names and
/// punctuation, id, digests (the current refresh token's and the spent ones'), six
/// numbers of up to 20 characters and an IP address. Generous: about 1,100 bytes are used.
const SESSION_LINE_OVERHEAD: usize = 1024 + (REFRESH_REUSE_HISTORY + 2) * (DIGEST_TEXT_LEN + 3);

/// A token digest's text: 32 bytes in unpadded base64url.
const DIGEST_TEXT_LEN: usize = 43;

/// The longest line a session can have under any valid configuration (JSON escapes a control
/// character as six bytes).
pub(crate) const LONGEST_SESSION_LINE: usize =
    MAX_DATA_BYTES_CEILING + 6 * MAX_USER_AGENT_LEN_CEILING + 6 * UserId::MAX_LEN + SESSION_LINE_OVERHEAD;

const _: () = assert!(LONGEST_SESSION_LINE <= MAX_LINE, "the largest allowed session must fit one line");

/// The deepest nesting serde_json, which reads every line, accepts: 127 levels (its recursion
/// limit of 128 counts down on every `[` and `{`, and refuses the one that reaches zero).
const SERDE_JSON_MAX_DEPTH: usize = 127;

// A session's data sits one level inside its line (the line is an object holding the bag).
const _: () = assert!(SessionConfig::MAX_DATA_DEPTH < SERDE_JSON_MAX_DEPTH, "the deepest allowed data must parse");

#[derive(Serialize, Deserialize)]
struct Header {
    format: String,
    version: u32,
    #[serde(with = "time::serde::rfc3339")]
    exported_at: OffsetDateTime,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Trailer {
    End { items: u64 },
}

/// Why an export could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// The file could not be read.
    #[error("read failed")]
    Io(#[source] std::io::Error),
    /// The first line is not a sessionkit header.
    #[error("line 1: not a sessionkit export header")]
    NotAnExport,
    /// The header names a version this build cannot read.
    #[error("line 1: unsupported export version {0} (this build reads versions {OLDEST_VERSION} to {VERSION})")]
    UnsupportedVersion(u32),
    /// A line is not a valid item.
    #[error("line {line}: {message}")]
    Malformed {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// Two sessions share an id or a token digest.
    #[error("line {line}: duplicate session {what}")]
    Duplicate {
        /// 1-based line number of the second occurrence.
        line: usize,
        /// `"id"` or `"digest"`.
        what: &'static str,
    },
    /// The file ends without its `end` line, or the count in it is wrong: it was truncated.
    #[error("truncated export: {0}")]
    Truncated(String),
    /// Lines follow the `end` line.
    #[error("line {0}: data after the end line")]
    TrailingData(usize),
    /// The store already holds one of the sessions, or could not take them; nothing was added.
    #[error("the store refused the import")]
    Store(#[source] crate::error::StoreError),
}

/// Why an export could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// Writing failed.
    #[error("write failed")]
    Io(#[from] std::io::Error),
    /// The store could not be read.
    #[error("the store could not be read")]
    Store(#[from] crate::error::StoreError),
}

/// Writes the header line.
///
/// # Errors
/// Any error of `out`.
pub fn write_header(out: &mut impl Write, now: Timestamp) -> std::io::Result<()> {
    let header = Header { format: FORMAT.into(), version: VERSION, exported_at: now.to_offset_date_time() };
    serde_json::to_writer(&mut *out, &header)?;
    out.write_all(b"\n")
}

/// Writes one item line.
///
/// # Errors
/// Any error of `out`.
pub fn write_item(out: &mut impl Write, item: &StoredItem) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, item)?;
    out.write_all(b"\n")
}

/// Writes the closing line, which counts the items.
///
/// # Errors
/// Any error of `out`.
pub fn write_end(out: &mut impl Write, items: u64) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, &Trailer::End { items })?;
    out.write_all(b"\n")
}

/// Reads and checks a whole export, returning its items.
///
/// # Errors
/// The first problem found, with its line number; see [`ImportError`].
pub fn read(mut input: impl BufRead) -> Result<Vec<StoredItem>, ImportError> {
    let mut line = Vec::new();
    match next_line(&mut input, &mut line).map_err(ImportError::Io)? {
        Line::Read => {}
        Line::End | Line::TooLong => return Err(ImportError::NotAnExport),
    }
    let header: Header = serde_json::from_slice(&line).map_err(|_| ImportError::NotAnExport)?;
    if header.format != FORMAT {
        return Err(ImportError::NotAnExport);
    }
    if !(OLDEST_VERSION..=VERSION).contains(&header.version) {
        return Err(ImportError::UnsupportedVersion(header.version));
    }
    let mut items = Vec::new();
    let mut ids = HashSet::new();
    let mut digests = HashSet::new();
    let mut end = None;
    for number in 2.. {
        match next_line(&mut input, &mut line).map_err(ImportError::Io)? {
            Line::End => break,
            Line::TooLong => {
                return Err(ImportError::Malformed { line: number, message: format!("line over {MAX_LINE} bytes") });
            }
            Line::Read => {}
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if end.is_some() {
            return Err(ImportError::TrailingData(number));
        }
        if let Ok(Trailer::End { items: count }) = serde_json::from_slice::<Trailer>(&line) {
            end = Some(count);
            continue;
        }
        let item: StoredItem = serde_json::from_slice(&line)
            .map_err(|e| ImportError::Malformed { line: number, message: e.to_string() })?;
        if let StoredItem::Session { record, .. } = &item {
            if !ids.insert(record.id) {
                return Err(ImportError::Duplicate { line: number, what: "id" });
            }
            if !digests.insert(*record.digest.as_bytes()) {
                return Err(ImportError::Duplicate { line: number, what: "digest" });
            }
        }
        items.push(item);
    }
    match end {
        None => Err(ImportError::Truncated("no end line".into())),
        Some(count) if count != items.len() as u64 => {
            Err(ImportError::Truncated(format!("the end line counts {count} items, the file has {}", items.len())))
        }
        Some(_) => Ok(items),
    }
}

/// What [`next_line`] found.
enum Line {
    /// A line, now in the buffer without its `\n`.
    Read,
    /// A line longer than [`MAX_LINE`]: only its first `MAX_LINE + 1` bytes were read.
    TooLong,
    /// The end of the input.
    End,
}

/// Reads the next line of `input` into `line`, but never more than [`MAX_LINE`] bytes and its
/// newline: an oversized line is refused after `MAX_LINE + 1` bytes, not read whole.
fn next_line(input: &mut impl BufRead, line: &mut Vec<u8>) -> std::io::Result<Line> {
    line.clear();
    let limit = MAX_LINE as u64 + 1;
    let read = std::io::Read::take(&mut *input, limit).read_until(b'\n', line)?;
    if read == 0 {
        return Ok(Line::End);
    }
    if line.last() == Some(&b'\n') {
        line.pop();
        return Ok(Line::Read);
    }
    // No newline: either the input's last line, or one too long to have ended within the limit.
    Ok(if read as u64 == limit { Line::TooLong } else { Line::Read })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::{Map, Value};

    use super::*;
    use crate::session::{Metadata, SessionData, SessionId, SessionRecord, nests_deeper_than};
    use crate::store::RefreshDigests;
    use crate::token::TokenDigest;

    /// A data bag exactly `depth` levels deep and `bytes` long as compact JSON.
    fn data(depth: usize, bytes: usize) -> SessionData {
        let build = |pad: usize| {
            let mut v = Value::from("x".repeat(pad));
            for _ in 1..depth {
                v = Value::Array(vec![v]);
            }
            SessionData::from_map(Map::from_iter([("d".to_owned(), v)]))
        };
        let data = build(bytes - build(0).encoded_len());
        assert_eq!(data.encoded_len(), bytes);
        let values = || data.as_map().unwrap().values();
        assert!(!nests_deeper_than(values(), depth) && nests_deeper_than(values(), depth - 1));
        data
    }

    /// The longest session line any configuration allows: every field at its longest.
    fn longest_session() -> StoredItem {
        let control = "\u{1}"; // escaped as six bytes
        let digest = TokenDigest::from_bytes([0xff; 32]);
        StoredItem::Session {
            record: SessionRecord {
                id: SessionId::from_bytes([0xff; 16]),
                digest,
                user: UserId::new(control.repeat(UserId::MAX_LEN)).unwrap(),
                created_at: Timestamp::from_unix_nanos(i64::MIN),
                last_seen_at: Timestamp::from_unix_nanos(i64::MIN),
                idle_deadline: Timestamp::from_unix_nanos(i64::MIN),
                absolute_deadline: Timestamp::from_unix_nanos(i64::MIN),
                remember_me: false,
                request_count: u64::MAX,
                generation: u64::MAX,
                metadata: Metadata::new(
                    Some("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff".parse().unwrap()),
                    Some(control.repeat(MAX_USER_AGENT_LEN_CEILING).into()),
                ),
                data: data(SessionConfig::MAX_DATA_DEPTH, MAX_DATA_BYTES_CEILING),
            },
            refresh: Some(RefreshDigests { current: digest, spent: vec![digest; REFRESH_REUSE_HISTORY] }),
        }
    }

    fn export_of(items: &[StoredItem]) -> Vec<u8> {
        let mut out = Vec::new();
        write_header(&mut out, Timestamp::from_unix_nanos(0)).unwrap();
        for item in items {
            write_item(&mut out, item).unwrap();
        }
        write_end(&mut out, items.len() as u64).unwrap();
        out
    }

    #[test]
    fn the_longest_allowed_session_fits_a_line_and_reads_back() {
        let item = longest_session();
        let line = serde_json::to_vec(&item).unwrap();
        assert!(line.len() > 1 << 20, "over the former 1 MiB limit: {}", line.len());
        assert!(line.len() <= LONGEST_SESSION_LINE, "{} > the bound {LONGEST_SESSION_LINE}", line.len());
        assert!(LONGEST_SESSION_LINE - line.len() < 1024, "the bound is tight: {}", LONGEST_SESSION_LINE - line.len());
        let items = read(export_of(std::slice::from_ref(&item)).as_slice()).unwrap();
        assert_eq!(items, [item]);
    }

    #[test]
    fn serde_json_reads_127_levels_and_no_more() {
        let nested = |levels: usize| format!("{}{}", "[".repeat(levels), "]".repeat(levels));
        assert!(serde_json::from_str::<Value>(&nested(SERDE_JSON_MAX_DEPTH)).is_ok());
        assert!(serde_json::from_str::<Value>(&nested(SERDE_JSON_MAX_DEPTH + 1)).is_err());
    }

    #[test]
    fn lines_up_to_the_limit_are_read_and_longer_ones_refused_unread() {
        let header = export_of(&[]);
        let header = &header[..=header.iter().position(|&b| b == b'\n').unwrap()];
        let end = |len: usize| {
            let mut line = br#"{"type":"end","items":0}"#.to_vec();
            line.resize(len, b' ');
            [header, &line, b"\n"].concat()
        };
        assert!(read(end(MAX_LINE).as_slice()).is_ok(), "exactly MAX_LINE bytes");
        assert!(read(&end(MAX_LINE)[..header.len() + MAX_LINE]).is_ok(), "the last line needs no newline");
        let err = read(end(MAX_LINE + 1).as_slice()).unwrap_err();
        assert!(matches!(err, ImportError::Malformed { line: 2, .. }), "{err}");
        // An endless line is refused after MAX_LINE + 1 bytes, not read until memory runs out.
        let endless = std::io::BufReader::new(std::io::Read::chain(header, std::io::repeat(b'x')));
        assert!(matches!(read(endless), Err(ImportError::Malformed { line: 2, .. })));
        let endless_header = std::io::BufReader::new(std::io::repeat(b'{'));
        assert!(matches!(read(endless_header), Err(ImportError::NotAnExport)));
    }
}
