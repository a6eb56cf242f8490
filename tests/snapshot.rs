//! Restart persistence of the embedded store: atomic snapshots, restart, corruption.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::PathBuf;

use common::{config, login, user};
use sessionkit::clock::MockClock;
use sessionkit::store::memory::{SnapshotError, SnapshotHandle};
use sessionkit::token::keys::{KeySet, SigningKey};
use sessionkit::{Clock, Error, MemoryStore, NewSession, SessionManager};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sessionkit-snapshot-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn a_restarted_manager_accepts_old_tokens_and_rejects_revoked_ones() {
    let dir = scratch("restart");
    let path = dir.join("sessions.jsonl");
    let clock = MockClock::new();
    let keys = KeySet::new(SigningKey::hs256("k", &[9; 32]).unwrap()).unwrap();
    let (kept, revoked, revoked_pair) = {
        let m = SessionManager::with_clock(MemoryStore::new(), config().build().unwrap(), clock.clone());
        m.set_keys(keys.clone());
        let kept = login(&m, "alice").await;
        let gone = m.create(NewSession::new(user("bob"))).await.unwrap();
        m.revoke(gone.token.expose_secret()).await.unwrap();
        let written = m.store().save_snapshot(&path, clock.now()).unwrap();
        assert_eq!(written, 4, "one session, two revocations (session and refresh token), one denylist entry");
        (kept, gone.token.expose_secret().to_owned(), gone.tokens.unwrap())
    };
    let (access, refresh) = (revoked_pair.access_token, revoked_pair.refresh_token);
    let store = MemoryStore::new();
    assert_eq!(store.load_snapshot(&path).unwrap(), 4);
    let m = SessionManager::with_clock(store, config().build().unwrap(), clock.clone());
    m.set_keys(keys);
    m.validate(&kept).await.unwrap();
    assert!(matches!(m.validate(&revoked).await, Err(Error::Revoked { .. })));
    assert!(
        matches!(m.verify_access(access.expose_secret()).await, Err(Error::Revoked { .. })),
        "the denylist survives"
    );
    assert!(
        matches!(m.refresh(refresh.expose_secret()).await, Err(Error::Revoked { .. })),
        "so does the revocation of the refresh token"
    );
    let small = MemoryStore::builder().max_tracked_revocations(1).build();
    small.load_snapshot(&path).unwrap();
    assert_eq!(small.tracked_revocations(), 1, "a restore keeps within the store's revocation budget");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_missing_snapshot_is_a_first_start_and_a_corrupt_one_is_refused() {
    let dir = scratch("corrupt");
    let path = dir.join("sessions.jsonl");
    assert_eq!(MemoryStore::new().load_snapshot(&path).unwrap(), 0);

    let clock = MockClock::new();
    let m = SessionManager::with_clock(MemoryStore::new(), config().build().unwrap(), clock.clone());
    for i in 0..10 {
        login(&m, &format!("u{i}")).await;
    }
    m.store().save_snapshot(&path, clock.now()).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    for corrupt in [
        text[..text.len() / 2].to_owned(),
        text.replacen("\"user\":\"u3\"", "\"user\":3", 1),
        text.replacen("sessionkit", "other", 1),
        String::new(),
    ] {
        std::fs::write(&path, &corrupt).unwrap();
        let store = MemoryStore::new();
        match store.load_snapshot(&path) {
            Err(SnapshotError::Corrupt { .. }) => {}
            other => panic!("a corrupt snapshot must be refused, got {other:?}"),
        }
        assert!(store.is_empty(), "nothing is loaded from a corrupt snapshot");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_failed_write_leaves_the_previous_snapshot_intact() {
    let dir = scratch("atomic");
    let path = dir.join("sessions.jsonl");
    let clock = MockClock::new();
    let m = SessionManager::with_clock(MemoryStore::new(), config().build().unwrap(), clock.clone());
    let token = login(&m, "alice").await;
    m.store().save_snapshot(&path, clock.now()).unwrap();
    let before = std::fs::read(&path).unwrap();
    // A crash mid-write leaves a partial temporary file beside the snapshot, never a partial
    // snapshot: writes go to a temporary file that is renamed only once complete.
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(dir.join("sessions.jsonl.tmp-999999-0"), &text[..text.len() / 2]).unwrap();
    // A write that cannot complete reports the I/O error (the target's parent is a file).
    login(&m, "bob").await;
    let blocked = dir.join("not-a-dir");
    std::fs::write(&blocked, b"x").unwrap();
    assert!(matches!(m.store().save_snapshot(blocked.join("s.jsonl"), clock.now()), Err(SnapshotError::Io { .. })));
    assert_eq!(std::fs::read(&path).unwrap(), before, "the previous snapshot is untouched");
    let store = MemoryStore::new();
    store.load_snapshot(&path).unwrap();
    let restored = SessionManager::with_clock(store, config().build().unwrap(), clock);
    restored.validate(&token).await.unwrap();
    let mut leftovers: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    leftovers.sort();
    assert_eq!(
        leftovers,
        ["not-a-dir", "sessions.jsonl"],
        "the snapshot and the blocker; loading removed the crashed write's leftover"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "snapshots are readable by their owner only");
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// A manager whose store snapshots itself to `<scratch dir>/sessions.jsonl` every five minutes,
/// with alice logged in: the directory, the path, the clock, the manager and the handle.
async fn snapshotting(
    name: &str,
) -> (PathBuf, PathBuf, MockClock, SessionManager<MemoryStore, MockClock>, SnapshotHandle) {
    let dir = scratch(name);
    let path = dir.join("sessions.jsonl");
    let clock = MockClock::new();
    let m = SessionManager::with_clock(MemoryStore::new(), config().build().unwrap(), clock.clone());
    let handle = m.store().spawn_snapshots(&path, std::time::Duration::from_secs(300), clock.clone());
    login(&m, "alice").await;
    (dir, path, clock, m, handle)
}

#[tokio::test(start_paused = true)]
async fn periodic_snapshots_write_a_final_one_on_shutdown() {
    let (dir, path, clock, m, handle) = snapshotting("periodic").await;
    tokio::time::sleep(std::time::Duration::from_secs(301)).await;
    let store = MemoryStore::new();
    assert_eq!(store.load_snapshot(&path).unwrap(), 1, "written after one interval");
    let late = login(&m, "bob").await;
    assert_eq!(handle.shutdown().await.unwrap(), 2, "shutdown answers the final snapshot's items");
    let store = MemoryStore::new();
    assert_eq!(store.load_snapshot(&path).unwrap(), 2, "and once more at shutdown");
    SessionManager::with_clock(store, config().build().unwrap(), clock).validate(&late).await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(start_paused = true)]
async fn a_final_snapshot_that_cannot_be_written_is_an_error_of_shutdown() {
    let (dir, _, _, _m, handle) = snapshotting("unwritable").await;
    // The snapshot's directory is gone by the time the application stops.
    std::fs::remove_dir_all(&dir).unwrap();
    let error = handle.shutdown().await.unwrap_err();
    assert!(matches!(error, SnapshotError::Io { .. }), "{error}");
}

#[tokio::test]
async fn a_torn_temporary_file_never_stops_a_restart() {
    // A process killed mid-save leaves its temporary file, with any process id and counter
    // (a restarted process may get the same ones): the next start loads the snapshot, removes
    // the leftover, and saves again.
    let dir = scratch("torn");
    let path = dir.join("sessions.jsonl");
    let clock = MockClock::new();
    let m = SessionManager::with_clock(MemoryStore::new(), config().build().unwrap(), clock.clone());
    let token = login(&m, "alice").await;
    m.store().save_snapshot(&path, clock.now()).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let pid = std::process::id();
    for name in [format!("sessions.jsonl.tmp-{pid}-0-0123456789abcdef"), format!("sessions.jsonl.tmp-{pid}-0")] {
        std::fs::write(dir.join(name), &text[..text.len() / 3]).unwrap();
    }
    let store = MemoryStore::new();
    assert_eq!(store.load_snapshot(&path).unwrap(), 1);
    store.save_snapshot(&path, clock.now()).unwrap();
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, ["sessions.jsonl"], "no temporary file is left");
    SessionManager::with_clock(store, config().build().unwrap(), clock).validate(&token).await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}
