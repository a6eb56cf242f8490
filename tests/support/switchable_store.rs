//! A `MemoryStore` the test can switch off: while it is down every operation answers
//! `StoreError::Unavailable`, as a database or Redis outage would, so that tests can check the
//! 503 answers (and that a store failure is never taken for a missing session).

#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sessionkit::policy::Limit;
use sessionkit::session::SessionRecord;
use sessionkit::store::{
    AccessDenial, BackupStore, DataOutcome, InsertOutcome, Lookup, RefreshOutcome, Revocation, ScanCursor, ScanPage,
    StoredItem, Successor, TokenStore, TouchPolicy,
};
use sessionkit::token::TokenDigest;
use sessionkit::{DataPatch, MemoryStore, SessionId, SessionStore, StoreError, Timestamp, UserId};

#[derive(Clone, Default)]
pub struct SwitchableStore {
    pub inner: Arc<MemoryStore>,
    pub down: Arc<AtomicBool>,
}

impl SwitchableStore {
    /// Takes the store down, or brings it back.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            Err(StoreError::Unavailable(Box::new(std::io::Error::other("switched off by the test"))))
        } else {
            Ok(())
        }
    }
}

impl SessionStore for SwitchableStore {
    async fn insert(
        &self,
        record: SessionRecord,
        refresh: Option<TokenDigest>,
        limit: Option<Limit>,
        eviction: Revocation,
    ) -> Result<InsertOutcome, StoreError> {
        self.check()?;
        self.inner.insert(record, refresh, limit, eviction).await
    }

    async fn touch(&self, digest: &TokenDigest, now: Timestamp, policy: TouchPolicy) -> Result<Lookup, StoreError> {
        self.check()?;
        self.inner.touch(digest, now, policy).await
    }

    async fn get_by_id(&self, id: &SessionId) -> Result<Option<SessionRecord>, StoreError> {
        self.check()?;
        self.inner.get_by_id(id).await
    }

    async fn rotate(
        &self,
        old: &TokenDigest,
        new: TokenDigest,
        refresh: Option<TokenDigest>,
        now: Timestamp,
        deny_access_until: Option<Timestamp>,
    ) -> Result<Lookup, StoreError> {
        self.check()?;
        self.inner.rotate(old, new, refresh, now, deny_access_until).await
    }

    async fn update_data(
        &self,
        id: &SessionId,
        patch: &DataPatch,
        max_bytes: usize,
        now: Timestamp,
    ) -> Result<DataOutcome, StoreError> {
        self.check()?;
        self.inner.update_data(id, patch, max_bytes, now).await
    }

    async fn remove(&self, id: &SessionId, revocation: Revocation) -> Result<Option<SessionRecord>, StoreError> {
        self.check()?;
        self.inner.remove(id, revocation).await
    }

    async fn remove_by_digest(
        &self,
        digest: &TokenDigest,
        revocation: Revocation,
    ) -> Result<Option<SessionRecord>, StoreError> {
        self.check()?;
        self.inner.remove_by_digest(digest, revocation).await
    }

    async fn remove_user(
        &self,
        user: &UserId,
        keep: Option<&SessionId>,
        revocation: Revocation,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        self.check()?;
        self.inner.remove_user(user, keep, revocation).await
    }

    async fn list_user(&self, user: &UserId, now: Timestamp) -> Result<Vec<SessionRecord>, StoreError> {
        self.check()?;
        self.inner.list_user(user, now).await
    }

    async fn remove_expired(&self, now: Timestamp, max: usize) -> Result<Vec<SessionRecord>, StoreError> {
        self.check()?;
        self.inner.remove_expired(now, max).await
    }
}

impl TokenStore for SwitchableStore {
    async fn rotate_refresh(
        &self,
        presented: &TokenDigest,
        successor: Successor,
        now: Timestamp,
        grace: Duration,
        touch: TouchPolicy,
        reuse: Revocation,
    ) -> Result<RefreshOutcome, StoreError> {
        self.check()?;
        self.inner.rotate_refresh(presented, successor, now, grace, touch, reuse).await
    }

    async fn access_denied(
        &self,
        id: &SessionId,
        generation: u64,
        now: Timestamp,
    ) -> Result<Option<AccessDenial>, StoreError> {
        self.check()?;
        self.inner.access_denied(id, generation, now).await
    }
}

impl BackupStore for SwitchableStore {
    async fn scan(&self, cursor: ScanCursor) -> Result<ScanPage, StoreError> {
        self.check()?;
        self.inner.scan(cursor).await
    }

    async fn restore(&self, items: Vec<StoredItem>, now: Timestamp) -> Result<(), StoreError> {
        self.check()?;
        self.inner.restore(items, now).await
    }
}
