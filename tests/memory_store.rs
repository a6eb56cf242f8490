//! The store conformance suite against `MemoryStore`: one test per clause of the contract of
//! `SessionStore`, `TokenStore` and `BackupStore`.

sessionkit::conformance_tests!(memory_store, sessionkit::MemoryStore::new(), tokens, backup);
