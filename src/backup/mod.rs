//! The persistence formats, in one place: the [`StoredItem`] every store exports and restores,
//! the versioned JSON Lines of export and import ([`jsonl`], also at `sessionkit::export`), and
//! snapshot files with their scheduling ([`snapshot`]).
//!
//! | what | where | format |
//! |---|---|---|
//! | one stored thing (a session with its refresh digests, a remembered revocation, a denylist entry) | [`StoredItem`] | serde, tagged by `"type"` |
//! | an export ([`SessionManager::export`](crate::SessionManager::export)) and its import | [`jsonl`] | a header line, one item per line, an `end` line with the count |
//! | a snapshot of a [`MemoryStore`](crate::MemoryStore) | [`snapshot`] | the export format, written to a temporary file, synced and renamed over the last one |
//!
//! Every format holds token digests, never tokens.

pub mod jsonl;
#[cfg(feature = "memory")]
pub mod snapshot;

use crate::clock::Timestamp;
use crate::error::RevocationReason;
use crate::session::{SessionId, SessionRecord};
use crate::token::TokenDigest;

/// Everything a store holds, one item at a time: what export, import and snapshots carry.
/// Digests only: no item contains a token.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StoredItem {
    /// A session, with its refresh tokens.
    Session {
        /// The session.
        #[serde(flatten)]
        record: SessionRecord,
        /// Its refresh-token family, if it has one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        refresh: Option<RefreshDigests>,
    },
    /// A remembered revocation: the token `digest` answers "revoked" until `until`.
    Revoked {
        /// Digest of the revoked session's token, or of one of its refresh tokens.
        digest: TokenDigest,
        /// Why it was revoked.
        reason: RevocationReason,
        /// When the store may forget it.
        until: Timestamp,
    },
    /// A denylist entry: access tokens of `session_id` are refused until `until`.
    Denied {
        /// The revoked session.
        session_id: SessionId,
        /// Why it was revoked.
        reason: RevocationReason,
        /// When the last access token it covers expires.
        until: Timestamp,
    },
    /// A denylist entry left by a rotation: access tokens of `session_id` issued for a
    /// generation below `below_generation` are refused until `until`. (Export format version
    /// 2 and later.)
    Superseded {
        /// The rotated session.
        session_id: SessionId,
        /// The session's generation after the rotation.
        below_generation: u64,
        /// When the last access token it covers expires.
        until: Timestamp,
    },
}

impl StoredItem {
    /// The denylist entry this item is, if it is one ([`StoredItem::Denied`] or
    /// [`StoredItem::Superseded`]), with its session id.
    #[must_use]
    pub fn deny_entry(&self) -> Option<(SessionId, crate::store::DenyEntry)> {
        use crate::store::{DenyEntry, DenyScope};
        match *self {
            Self::Denied { session_id, reason, until } => {
                Some((session_id, DenyEntry { scope: DenyScope::All(reason), until }))
            }
            Self::Superseded { session_id, below_generation, until } => {
                Some((session_id, DenyEntry { scope: DenyScope::Below(below_generation), until }))
            }
            Self::Session { .. } | Self::Revoked { .. } => None,
        }
    }

    /// The item that carries `entry` of session `session_id`.
    #[must_use]
    pub fn from_deny_entry(session_id: SessionId, entry: crate::store::DenyEntry) -> Self {
        match entry.scope {
            crate::store::DenyScope::All(reason) => Self::Denied { session_id, reason, until: entry.until },
            crate::store::DenyScope::Below(below_generation) => {
                Self::Superseded { session_id, below_generation, until: entry.until }
            }
        }
    }
}

/// A session's refresh-token digests.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RefreshDigests {
    /// The current refresh token's digest.
    pub current: TokenDigest,
    /// Spent refresh tokens still recognised as reuse, most recent first.
    pub spent: Vec<TokenDigest>,
}
