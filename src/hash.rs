//! Hashing for tables keyed by values that are uniformly random already.

use std::hash::{BuildHasher, Hasher};

/// Hashing for maps keyed by token digests, session ids or other uniformly random values the
/// server drew: their own bits are the hash, nothing is mixed. (A lookup with a key a client
/// chose only probes the table; it never inserts, so it cannot degrade it.)
#[derive(Clone, Copy, Default)]
pub(crate) struct RandomKeys;

impl BuildHasher for RandomKeys {
    type Hasher = RandomKeyHasher;

    fn build_hasher(&self) -> RandomKeyHasher {
        RandomKeyHasher(0)
    }
}

/// Folds the bytes written into 64 bits; a `u64` written alone is the hash as it is.
pub(crate) struct RandomKeyHasher(u64);

impl Hasher for RandomKeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}
