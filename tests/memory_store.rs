//! The store conformance suite, run against `MemoryStore`.

use sessionkit::MemoryStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store_passes_the_conformance_suite() {
    sessionkit::store::conformance::run_all(|| async { MemoryStore::new() }).await;
}
