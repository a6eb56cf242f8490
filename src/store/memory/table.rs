//! [`Table`]: the lock-sharded hash tables of pointers behind the store's indexes.

use std::sync::Arc;

use hashbrown::HashTable;
use parking_lot::RwLock;

use super::entry::Entry;

pub(super) const SHARDS: usize = 64;

/// 64 hash tables, each behind its own read-write lock, padded to separate cache lines.
pub(super) struct Table<T> {
    shards: Box<[Shard<T>]>,
}

#[repr(align(128))]
struct Shard<T> {
    map: RwLock<HashTable<T>>,
}

impl<T: Clone> Table<T> {
    pub(super) fn new() -> Self {
        Self { shards: (0..SHARDS).map(|_| Shard { map: RwLock::new(HashTable::new()) }).collect() }
    }

    pub(super) fn shard(&self, shard_bits: u64) -> &RwLock<HashTable<T>> {
        // Truncation intended: the low bits choose the shard.
        &self.shards[(shard_bits as usize) % SHARDS].map
    }

    pub(super) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.map.read().len()).sum()
    }

    pub(super) fn find(&self, shard_bits: u64, hash: u64, eq: impl FnMut(&T) -> bool) -> Option<T> {
        self.shard(shard_bits).read().find(hash, eq).cloned()
    }

    /// Inserts `value` unless `eq` matches a stored value; answers whether it inserted.
    pub(super) fn insert_unique(
        &self,
        shard_bits: u64,
        hash: u64,
        value: &T,
        mut eq: impl FnMut(&T) -> bool,
        rehash: impl Fn(&T) -> u64,
    ) -> bool {
        let mut map = self.shard(shard_bits).write();
        if map.find(hash, &mut eq).is_some() {
            return false;
        }
        map.insert_unique(hash, value.clone(), rehash);
        true
    }

    /// Returns the stored value matching `eq`, inserting `value` first if there is none.
    pub(super) fn insert_if_absent(
        &self,
        shard_bits: u64,
        hash: u64,
        value: T,
        mut eq: impl FnMut(&T) -> bool,
        rehash: impl Fn(&T) -> u64,
    ) -> T {
        let mut map = self.shard(shard_bits).write();
        if let Some(existing) = map.find(hash, &mut eq) {
            return existing.clone();
        }
        map.insert_unique(hash, value, rehash).get().clone()
    }

    pub(super) fn remove(&self, shard_bits: u64, hash: u64, eq: impl FnMut(&T) -> bool) -> Option<T> {
        let mut map = self.shard(shard_bits).write();
        map.find_entry(hash, eq).ok().map(|e| e.remove().0)
    }

    pub(super) fn replace(&self, shard_bits: u64, hash: u64, eq: impl FnMut(&T) -> bool, value: &T) {
        let mut map = self.shard(shard_bits).write();
        if let Some(slot) = map.find_mut(hash, eq) {
            *slot = value.clone();
        }
    }

    /// The values of one shard, copied out under a short read lock.
    pub(super) fn shard_values(&self, shard: usize) -> Vec<T> {
        self.shards[shard].map.read().iter().cloned().collect()
    }

    /// Gives memory back when a shard has shrunk to under a quarter of its capacity.
    pub(super) fn shrink_shard_if_sparse(&self, shard: usize, rehash: impl Fn(&T) -> u64) {
        {
            let map = self.shards[shard].map.read();
            if map.len() * 4 >= map.capacity() {
                return;
            }
        }
        let mut map = self.shards[shard].map.write();
        if map.len() * 4 < map.capacity() {
            let target = map.len() * 2;
            map.shrink_to(target, rehash);
        }
    }
}

/// The hash of an entry in the digest index.
pub(super) fn by_digest(e: &Arc<Entry>) -> u64 {
    e.digest.hash_bits()
}

/// The hash of an entry in the id index.
pub(super) fn by_id(e: &Arc<Entry>) -> u64 {
    e.id.hash_bits()
}
