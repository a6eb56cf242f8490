//! Snapshot files: the export format ([`super::jsonl`]) written atomically, read back
//! completely or not at all, and written periodically off the async runtime's workers.
//!
//! A snapshot is written to a fresh temporary file beside its path (created exclusively, `0600`
//! on Unix: it names users and their IPs), flushed to disk, renamed over the previous snapshot,
//! and the directory is synced so that the rename survives a crash too. A crash at any moment
//! leaves either the previous snapshot or the new one, never a torn file; a temporary file
//! whose rename failed is removed. Reading refuses a file that is not complete (no `end` line,
//! a wrong count) rather than starting from part of it.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::StoredItem;
use super::jsonl::{self, ImportError};
use crate::clock::Timestamp;

/// A snapshot could not be written or loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// Reading or writing the file failed.
    #[error("snapshot {path}: {source}", path = path.display())]
    Io {
        /// The snapshot file.
        path: PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a complete, valid snapshot.
    #[error("snapshot {path} is corrupt: {source}", path = path.display())]
    Corrupt {
        /// The snapshot file.
        path: PathBuf,
        /// What is wrong, with the line.
        #[source]
        source: ImportError,
    },
    /// The store already holds sessions that the snapshot also holds.
    #[error("the store already holds sessions of snapshot {path}", path = path.display())]
    Conflict {
        /// The snapshot file.
        path: PathBuf,
    },
}

/// Writes `pages` of items to `path` atomically (see the [module docs](self)). Answers the
/// number of items written. Blocking file I/O: call it from a blocking context.
pub(crate) fn write(
    path: &Path,
    now: Timestamp,
    pages: impl Iterator<Item = Vec<StoredItem>>,
) -> Result<u64, SnapshotError> {
    let io = |source| SnapshotError::Io { path: path.to_owned(), source };
    // A fresh, exclusively created name per save: concurrent saves never share a file. The
    // random part keeps a restarted process that got the same process id (as in a container)
    // from colliding with the temporary file a killed predecessor left behind.
    static SAVES: AtomicU64 = AtomicU64::new(0);
    let mut tmp_name = temporary_prefix(path);
    tmp_name.push(format!(
        "{}-{}-{:016x}",
        std::process::id(),
        SAVES.fetch_add(1, Ordering::Relaxed),
        rand::random::<u64>()
    ));
    let tmp = path.with_file_name(tmp_name);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(&tmp).map_err(io)?;
    let mut out = std::io::BufWriter::new(file);
    let written = (|| -> std::io::Result<u64> {
        jsonl::write_header(&mut out, now)?;
        let mut count = 0;
        for page in pages {
            for item in &page {
                jsonl::write_item(&mut out, item)?;
                count += 1;
            }
        }
        jsonl::write_end(&mut out, count)?;
        out.flush()?;
        let file = out.into_inner().map_err(std::io::IntoInnerError::into_error)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        Ok(count)
    })();
    let count = match written {
        Ok(count) => count,
        Err(e) => {
            // Nothing half-written is left behind: the previous snapshot stays as it was.
            let _ = std::fs::remove_file(&tmp);
            return Err(io(e));
        }
    };
    // Make the rename itself durable.
    std::fs::File::open(directory(path)).and_then(|d| d.sync_all()).map_err(io)?;
    Ok(count)
}

/// The directory that holds `path`: its parent, or the current directory for a bare file name
/// (whose parent is `""`).
fn directory(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// The start of the name of every temporary file of a snapshot at `path`: its file name and
/// `.tmp-`, followed by the process id, a counter and a random part.
fn temporary_prefix(path: &Path) -> std::ffi::OsString {
    let mut prefix = path.file_name().unwrap_or_default().to_owned();
    prefix.push(".tmp-");
    prefix
}

/// Removes the temporary files that saves to `path` left behind when their process was killed
/// mid-write (see [`write`]): files beside `path` named like its temporary files. Answers how
/// many were removed. Call it at startup, before anything saves to `path`: a save in progress
/// would lose its temporary file (and fail, leaving the previous snapshot). Best effort: a
/// file that cannot be listed or removed is left as it is (it is never read as a snapshot).
pub(crate) fn remove_temporaries(path: &Path) -> usize {
    let prefix = temporary_prefix(path);
    let Some(prefix) = prefix.to_str() else {
        return 0;
    };
    let Ok(entries) = std::fs::read_dir(directory(path)) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.map_while(Result::ok) {
        let name = entry.file_name();
        let is_temporary = name
            .to_str()
            .and_then(|name| name.strip_prefix(prefix))
            .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'));
        if is_temporary && entry.file_type().is_ok_and(|t| t.is_file()) && std::fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// Reads the snapshot at `path`: `None` if there is none (a first start), every item of a
/// complete file, or an error for a file that cannot be read completely.
pub(crate) fn read(path: &Path) -> Result<Option<Vec<StoredItem>>, SnapshotError> {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(SnapshotError::Io { path: path.to_owned(), source }),
    };
    jsonl::read(std::io::BufReader::new(file)).map(Some).map_err(|source| match source {
        ImportError::Io(source) => SnapshotError::Io { path: path.to_owned(), source },
        source => SnapshotError::Corrupt { path: path.to_owned(), source },
    })
}

#[cfg(feature = "tokio")]
impl crate::store::memory::MemoryStore {
    /// Writes a snapshot to `path` every `interval`, and once more when the handle's
    /// [`shutdown`](SnapshotHandle::shutdown) is called (or the handle is dropped), so that a
    /// restarted process can [`load_snapshot`](Self::load_snapshot). Each write runs on
    /// tokio's blocking pool ([`tokio::task::spawn_blocking`]), never on an async worker, so
    /// a slow disk holds up no request. The first write is one interval from now. A failed
    /// periodic write is logged (feature `tracing`) and the next one runs on schedule; the
    /// result of the final one is what `shutdown` answers. An interval under
    /// [`MIN_INTERVAL`](crate::sweeper::MIN_INTERVAL) counts as `MIN_INTERVAL`.
    ///
    /// # Panics
    /// Outside a tokio runtime, like `tokio::spawn`.
    pub fn spawn_snapshots<C: crate::Clock + Clone>(
        &self,
        path: impl Into<PathBuf>,
        interval: std::time::Duration,
        clock: C,
    ) -> SnapshotHandle {
        let path = path.into();
        let shown_path = path.clone();
        let (store, final_path, final_clock) = (self.clone(), path.clone(), clock.clone());
        let periodic_store = self.clone();
        let (last_tx, last) = tokio::sync::oneshot::channel();
        let task = crate::sweeper::spawn_periodic(
            interval,
            move || {
                let saved = save_off_the_workers(periodic_store.clone(), path.clone(), clock.now());
                async move {
                    logged(&saved.await);
                    true
                }
            },
            move || async move {
                let saved = save_off_the_workers(store, final_path, final_clock.now()).await;
                logged(&saved);
                // Nobody to tell if the handle was dropped rather than shut down.
                let _ = last_tx.send(saved);
            },
        );
        SnapshotHandle { task, last, path: shown_path }
    }
}

/// The task [`MemoryStore::spawn_snapshots`](crate::MemoryStore::spawn_snapshots) started:
/// stop it with [`shutdown`](Self::shutdown), which answers whether the final snapshot was
/// written. Dropping the handle stops the task too, after a final snapshot whose result is
/// only logged.
#[cfg(feature = "tokio")]
#[derive(Debug)]
#[must_use = "dropping the handle stops the snapshots; keep it, and call shutdown() when the application stops"]
pub struct SnapshotHandle {
    task: crate::sweeper::SweeperHandle,
    last: tokio::sync::oneshot::Receiver<Result<u64, SnapshotError>>,
    /// The snapshot file, for the error of a task that ended without its final snapshot.
    path: PathBuf,
}

#[cfg(feature = "tokio")]
impl SnapshotHandle {
    /// Stops the periodic snapshots (after the one in progress, if any), writes the final
    /// one, and answers its number of items.
    ///
    /// # Errors
    /// [`SnapshotError::Io`] if the final snapshot could not be written (or its task ended
    /// without writing it).
    pub async fn shutdown(self) -> Result<u64, SnapshotError> {
        self.task.shutdown().await;
        self.last.await.unwrap_or_else(|_| {
            Err(SnapshotError::Io {
                path: self.path,
                source: std::io::Error::other("the snapshot task ended without its final snapshot"),
            })
        })
    }

    /// Whether the task has ended.
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

/// Saves `store` to `path` on the blocking pool.
#[cfg(feature = "tokio")]
async fn save_off_the_workers(
    store: crate::store::memory::MemoryStore,
    path: PathBuf,
    now: Timestamp,
) -> Result<u64, SnapshotError> {
    let shown = path.clone();
    match tokio::task::spawn_blocking(move || store.save_snapshot(&path, now)).await {
        Ok(saved) => saved,
        Err(join) => Err(SnapshotError::Io { path: shown, source: std::io::Error::other(join) }),
    }
}

/// Logs the outcome of a snapshot write (feature `tracing`).
#[cfg(feature = "tokio")]
fn logged(_saved: &Result<u64, SnapshotError>) {
    #[cfg(feature = "tracing")]
    match _saved {
        Ok(items) => tracing::debug!(target: "sessionkit", items, "snapshot written"),
        Err(error) => tracing::error!(target: "sessionkit", error = %error, "snapshot failed"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sessionkit-snapshot-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_failed_rename_leaves_no_temporary_file_and_the_old_snapshot() {
        let dir = dir("rename");
        // A directory where the snapshot should go: the rename over it fails.
        let path = dir.join("snap");
        std::fs::create_dir(&path).unwrap();
        let err = write(&path, Timestamp::from_unix_nanos(0), std::iter::empty()).unwrap_err();
        assert!(matches!(err, SnapshotError::Io { .. }), "{err}");
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, ["snap"], "the temporary file is removed");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_is_none_and_truncated_is_corrupt() {
        let dir = dir("read");
        let path = dir.join("snap.jsonl");
        assert!(read(&path).unwrap().is_none(), "a first start");
        assert_eq!(write(&path, Timestamp::from_unix_nanos(0), std::iter::once(Vec::new())).unwrap(), 0);
        assert_eq!(read(&path).unwrap().map(|items| items.len()), Some(0));
        let text = std::fs::read_to_string(&path).unwrap();
        let header_only = text.lines().next().unwrap();
        std::fs::write(&path, format!("{header_only}\n")).unwrap();
        assert!(matches!(read(&path), Err(SnapshotError::Corrupt { .. })), "no end line: refused");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The names of the files in `dir` that start with `prefix`, sorted.
    fn names(dir: &Path, prefix: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|name| name.starts_with(prefix))
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_bare_file_name_is_written_in_the_current_directory() {
        // The directory sync of a relative path without a parent (`""`) uses ".".
        let name = format!("sessionkit-relative-{}.jsonl", std::process::id());
        let cwd = std::env::current_dir().unwrap();
        let path = Path::new(&name);
        let written = write(path, Timestamp::from_unix_nanos(0), std::iter::once(Vec::new()));
        let read_back = read(path);
        let left = names(&cwd, &name);
        let _ = std::fs::remove_file(cwd.join(&name));
        assert_eq!(written.unwrap(), 0);
        assert_eq!(read_back.unwrap().map(|items| items.len()), Some(0));
        assert_eq!(left, [name.as_str()], "the snapshot, and no temporary file");
    }

    #[test]
    fn a_failed_rename_of_a_bare_file_name_leaves_no_temporary_file() {
        // A directory named like the snapshot, in the current directory: the rename fails.
        let name = format!("sessionkit-relative-dir-{}.jsonl", std::process::id());
        let cwd = std::env::current_dir().unwrap();
        std::fs::create_dir(cwd.join(&name)).unwrap();
        let written = write(Path::new(&name), Timestamp::from_unix_nanos(0), std::iter::empty());
        let left = names(&cwd, &name);
        std::fs::remove_dir(cwd.join(&name)).unwrap();
        assert!(matches!(written, Err(SnapshotError::Io { .. })));
        assert_eq!(left, [name.as_str()], "the temporary file is removed");
    }

    #[test]
    fn leftover_temporary_files_are_never_read_and_are_removed() {
        let dir = dir("leftovers");
        let path = dir.join("snap.jsonl");
        write(&path, Timestamp::from_unix_nanos(0), std::iter::once(Vec::new())).unwrap();
        let good = std::fs::read(&path).unwrap();
        // What killed saves leave: a torn temporary file, one with the same process id and
        // counter a restarted process would use first, and an empty one.
        let pid = std::process::id();
        let torn = format!("snap.jsonl.tmp-{pid}-0-00000000000000ff");
        std::fs::write(dir.join(&torn), &good[..good.len() / 2]).unwrap();
        std::fs::write(dir.join(format!("snap.jsonl.tmp-{pid}-1-0123456789abcdef")), b"").unwrap();
        std::fs::write(dir.join("snap.jsonl.tmp-7-3"), b"{").unwrap();
        // Not ours: kept.
        for other in ["snap.jsonl.tmp-notes", "snap.jsonl.tmp-", "other.jsonl.tmp-1-2-3", "snap.jsonl.bak"] {
            std::fs::write(dir.join(other), b"keep").unwrap();
        }
        std::fs::create_dir(dir.join("snap.jsonl.tmp-1-1-1")).unwrap();

        assert_eq!(read(&path).unwrap().map(|items| items.len()), Some(0), "only the snapshot is read");
        // A save beside the leftovers works, and leaves them as they are.
        assert_eq!(write(&path, Timestamp::from_unix_nanos(1), std::iter::empty()).unwrap(), 0);
        assert_eq!(names(&dir, "snap.jsonl.tmp-").len(), 6);

        assert_eq!(remove_temporaries(&path), 3);
        assert_eq!(
            names(&dir, ""),
            [
                "other.jsonl.tmp-1-2-3",
                "snap.jsonl",
                "snap.jsonl.bak",
                "snap.jsonl.tmp-",
                "snap.jsonl.tmp-1-1-1",
                "snap.jsonl.tmp-notes"
            ]
        );
        assert_eq!(read(&path).unwrap().map(|items| items.len()), Some(0));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
