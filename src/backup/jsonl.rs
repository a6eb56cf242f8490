//! Export and import: every session (and remembered revocation and denylist entry) as
//! versioned JSON Lines.
//!
//! ```text
//! {"format":"sessionkit","version":1,"exported_at":"2026-11-23T18:00:00Z"}
//! {"type":"session","id":"…","digest":"…","user":"alice",…,"refresh":{"current":"…","spent":[]}}
//! {"type":"revoked","digest":"…","reason":"logout","until":1700000000000000000}
//! {"type":"denied","session_id":"…","reason":"logout","until":1700000000000000000}
//! {"type":"end","items":3}
//! ```
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
use crate::store::StoredItem;

/// The format name in the header line.
pub const FORMAT: &str = "sessionkit";
/// The format version this build writes and reads.
pub const VERSION: u32 = 1;
/// Longest accepted line, in bytes (a session with a full data bag is far shorter).
pub const MAX_LINE: usize = 1 << 20;

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
    #[error("line 1: unsupported export version {0} (this build reads version {VERSION})")]
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
pub fn read(input: impl BufRead) -> Result<Vec<StoredItem>, ImportError> {
    let mut lines = input.split(b'\n');
    let first = lines.next().ok_or(ImportError::NotAnExport)?.map_err(ImportError::Io)?;
    let header: Header = serde_json::from_slice(&first).map_err(|_| ImportError::NotAnExport)?;
    if header.format != FORMAT {
        return Err(ImportError::NotAnExport);
    }
    if header.version != VERSION {
        return Err(ImportError::UnsupportedVersion(header.version));
    }
    let mut items = Vec::new();
    let mut ids = HashSet::new();
    let mut digests = HashSet::new();
    let mut end = None;
    for (index, line) in lines.enumerate() {
        let number = index + 2;
        let line = line.map_err(ImportError::Io)?;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if end.is_some() {
            return Err(ImportError::TrailingData(number));
        }
        if line.len() > MAX_LINE {
            return Err(ImportError::Malformed { line: number, message: "line too long".into() });
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
