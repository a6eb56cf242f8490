//! Snapshots of a [`MemoryStore`] in a file: [`MemoryStore::save_snapshot`],
//! [`MemoryStore::load_snapshot`] and their [`SnapshotError`].

use std::sync::atomic::Ordering;

use crate::clock::Timestamp;

use super::MemoryStore;

impl MemoryStore {
    /// Writes everything the store holds to `path`, atomically: into a temporary file beside
    /// it, flushed to disk, then renamed over it, so that a crash mid-write leaves the previous
    /// snapshot intact. The format is the export format ([`crate::export`]): digests only.
    /// Answers the number of items written.
    ///
    /// # Errors
    /// [`SnapshotError::Io`].
    pub fn save_snapshot(&self, path: impl AsRef<std::path::Path>, now: Timestamp) -> Result<u64, SnapshotError> {
        let path = path.as_ref();
        let io = |source| SnapshotError::Io { path: path.to_owned(), source };
        // A fresh, exclusively created name per save: concurrent saves never share a file.
        static SAVES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let mut tmp_name = path.file_name().unwrap_or_default().to_owned();
        tmp_name.push(format!(".tmp-{}-{}", std::process::id(), SAVES.fetch_add(1, Ordering::Relaxed)));
        let tmp = path.with_file_name(tmp_name);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        // The snapshot names users and their IPs: readable by its owner only.
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(&tmp).map_err(io)?;
        let mut out = std::io::BufWriter::new(file);
        let written = (|| -> std::io::Result<u64> {
            crate::export::write_header(&mut out, now)?;
            let mut count = 0;
            let mut cursor = Some(0);
            while let Some(at) = cursor {
                let (items, next) = self.page(at);
                for item in &items {
                    crate::export::write_item(&mut out, item)?;
                    count += 1;
                }
                cursor = next;
            }
            crate::export::write_end(&mut out, count)?;
            let file = out.into_inner().map_err(std::io::IntoInnerError::into_error)?;
            file.sync_all()?;
            Ok(count)
        })();
        let count = match written {
            Ok(count) => count,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(io(e));
            }
        };
        std::fs::rename(&tmp, path).map_err(io)?;
        // Make the rename itself durable.
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
        }
        Ok(count)
    }

    /// Adds everything in the snapshot at `path` to this store (normally empty, at startup).
    /// A missing file is not an error (a first start): it answers 0. A file that exists but
    /// cannot be read completely is refused, and nothing is added: a corrupt snapshot never
    /// silently starts an empty store.
    ///
    /// # Errors
    /// [`SnapshotError::Io`], [`SnapshotError::Corrupt`], [`SnapshotError::Conflict`].
    pub fn load_snapshot(&self, path: impl AsRef<std::path::Path>) -> Result<usize, SnapshotError> {
        let path = path.as_ref();
        let file = match std::fs::File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(source) => return Err(SnapshotError::Io { path: path.to_owned(), source }),
        };
        let items = crate::export::read(std::io::BufReader::new(file)).map_err(|source| match source {
            crate::export::ImportError::Io(source) => SnapshotError::Io { path: path.to_owned(), source },
            source => SnapshotError::Corrupt { path: path.to_owned(), source },
        })?;
        let count = items.len();
        self.restore_items(items).map_err(|_| SnapshotError::Conflict { path: path.to_owned() })?;
        Ok(count)
    }
}

/// A snapshot could not be written or loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// Reading or writing the file failed.
    #[error("snapshot {path}: {source}", path = path.display())]
    Io {
        /// The snapshot file.
        path: std::path::PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a complete, valid snapshot.
    #[error("snapshot {path} is corrupt: {source}", path = path.display())]
    Corrupt {
        /// The snapshot file.
        path: std::path::PathBuf,
        /// What is wrong, with the line.
        #[source]
        source: crate::export::ImportError,
    },
    /// The store already holds sessions that the snapshot also holds.
    #[error("the store already holds sessions of snapshot {path}", path = path.display())]
    Conflict {
        /// The snapshot file.
        path: std::path::PathBuf,
    },
}
