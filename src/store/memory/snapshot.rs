//! Snapshots of a [`MemoryStore`] in a file: [`MemoryStore::save_snapshot`] and
//! [`MemoryStore::load_snapshot`]. The file format, its atomic writing and the periodic
//! `spawn_snapshots` (feature `tokio`) live with the other persistence formats in
//! [`crate::backup::snapshot`].

use crate::backup::snapshot;
use crate::clock::Timestamp;

pub use crate::backup::snapshot::SnapshotError;
#[cfg(feature = "tokio")]
pub use crate::backup::snapshot::SnapshotHandle;

use super::MemoryStore;

impl MemoryStore {
    /// Writes everything the store holds to `path`, atomically: into a temporary file beside
    /// it, flushed to disk, then renamed over it (and the directory synced), so that a crash
    /// mid-write leaves the previous snapshot intact. The format is the export format
    /// ([`crate::export`]): digests only. Answers the number of items written.
    ///
    /// Blocking file I/O: from async code, call it through `tokio::task::spawn_blocking` (as
    /// `spawn_snapshots`, feature `tokio`, does).
    ///
    /// # Errors
    /// [`SnapshotError::Io`].
    pub fn save_snapshot(&self, path: impl AsRef<std::path::Path>, now: Timestamp) -> Result<u64, SnapshotError> {
        let mut cursor = Some(0);
        let pages = std::iter::from_fn(|| {
            let (items, next) = self.page(cursor?);
            cursor = next;
            Some(items)
        });
        snapshot::write(path.as_ref(), now, pages)
    }

    /// Adds everything in the snapshot at `path` to this store (normally empty, at startup).
    /// A missing file is not an error (a first start): it answers 0. A file that exists but
    /// cannot be read completely is refused, and nothing is added: a corrupt snapshot never
    /// silently starts an empty store.
    ///
    /// Only `path` itself is read, never a temporary file of [`save_snapshot`](Self::save_snapshot)
    /// (which a process killed mid-write leaves beside it); those leftovers are removed here, so
    /// call this at startup, before anything (in this or another process) saves to `path`.
    ///
    /// # Errors
    /// [`SnapshotError::Io`], [`SnapshotError::Corrupt`], [`SnapshotError::Conflict`].
    pub fn load_snapshot(&self, path: impl AsRef<std::path::Path>) -> Result<usize, SnapshotError> {
        let path = path.as_ref();
        let _removed = snapshot::remove_temporaries(path);
        #[cfg(feature = "tracing")]
        if _removed > 0 {
            tracing::warn!(target: "sessionkit", removed = _removed, "removed temporary files of interrupted snapshot saves");
        }
        let Some(items) = snapshot::read(path)? else {
            return Ok(0);
        };
        let count = items.len();
        self.restore_items(items).map_err(|_| SnapshotError::Conflict { path: path.to_owned() })?;
        Ok(count)
    }
}
