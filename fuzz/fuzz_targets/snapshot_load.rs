//! A memory store's snapshot file as `MemoryStore::load_snapshot` reads it at startup: an
//! accepted snapshot saves and loads again with the same number of items.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sessionkit::MemoryStore;
use sessionkit_fuzz::now;

fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // Saving syncs the file and its directory: in memory (/dev/shm) when there is one.
        let shm = std::path::Path::new("/dev/shm");
        let base = if shm.is_dir() { shm.to_owned() } else { std::env::temp_dir() };
        let dir = base.join(format!("sessionkit-fuzz-snapshot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        dir
    })
}

/// Removes the iteration's files, however it ends (only the empty directory stays behind).
struct Cleanup([PathBuf; 2]);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for path in &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let (input, output) = (dir().join("in.jsonl"), dir().join("out.jsonl"));
    let _cleanup = Cleanup([input.clone(), output.clone()]);
    std::fs::write(&input, data).expect("writes the input");
    let store = MemoryStore::new();
    let Ok(loaded) = store.load_snapshot(&input) else {
        assert!(store.is_empty(), "a refused snapshot adds nothing");
        return;
    };
    let saved = store.save_snapshot(&output, now()).expect("saves");
    let again = MemoryStore::new();
    let reloaded = again.load_snapshot(&output).expect("a saved snapshot loads");
    assert_eq!(u64::try_from(reloaded).ok(), Some(saved));
    assert_eq!(store.len(), again.len());
    assert!(saved <= loaded as u64);
});
