//! The validation *floor*, shared by `benches/validate.rs` (criterion timings) and
//! `examples/validate_instructions.rs` (instruction counts), so that both compare `validate`
//! against the same code: base64url-decode the token into a stack buffer, SHA-256 it (`ring`),
//! one `DashMap<[u8; 32], Arc<FloorEntry>>` hit on the digest, compare two `i64` deadlines with
//! `SystemTime::now()`, and store last-seen in an atomic. Nothing else.
//!
//! Included with `#[path]`; each includer uses what it needs.

#![allow(dead_code, reason = "each includer uses a different part")]

use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dashmap::DashMap;
use ring::digest::{SHA256, digest};

/// Characters in a session token (32 bytes, base64url without padding).
pub const TOKEN_LEN: usize = 43;

/// SplitMix64: a deterministic generator for shuffling and synthetic keys (not for secrets).
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        // Modulo bias is irrelevant for a shuffle of at most a million keys.
        (self.next_u64() % n as u64) as usize
    }

    pub fn bytes32(&mut self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for chunk in out.chunks_exact_mut(8) {
            chunk.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        out
    }

    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            v.swap(i, self.below(i + 1));
        }
    }
}

/// What the floor keeps per session.
pub struct FloorEntry {
    idle_deadline: i64,
    absolute_deadline: i64,
    last_seen: AtomicI64,
}

/// The floor's table, keyed by token digest, with the map hasher `S`.
pub type FloorMap<S> = DashMap<[u8; 32], Arc<FloorEntry>, S>;

pub fn unix_nanos() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i64)
}

/// A table of `sessions` live entries (30 minutes idle, 8 hours absolute) under random tokens,
/// and those tokens in creation order.
pub fn build<S: BuildHasher + Clone + Default>(
    sessions: usize,
    rng: &mut SplitMix,
) -> (FloorMap<S>, Vec<[u8; TOKEN_LEN]>) {
    let map = DashMap::with_hasher(S::default());
    let now = unix_nanos();
    let mut tokens = Vec::with_capacity(sessions);
    for _ in 0..sessions {
        let raw = rng.bytes32();
        let mut token = [0u8; TOKEN_LEN];
        URL_SAFE_NO_PAD.encode_slice(raw, &mut token).unwrap();
        let key: [u8; 32] = digest(&SHA256, &raw).as_ref().try_into().unwrap();
        let entry = FloorEntry {
            idle_deadline: now + 30 * 60 * 1_000_000_000,
            absolute_deadline: now + 8 * 3600 * 1_000_000_000,
            last_seen: AtomicI64::new(now),
        };
        assert!(map.insert(key, Arc::new(entry)).is_none());
        tokens.push(token);
    }
    (map, tokens)
}

/// One floor validation: whether `token` names a live entry (whose last-seen it then sets).
#[inline(always)]
pub fn lookup<S: BuildHasher + Clone>(map: &FloorMap<S>, token: &[u8]) -> bool {
    let mut raw = [0u8; 33];
    let Ok(32) = URL_SAFE_NO_PAD.decode_slice(token, &mut raw) else {
        return false;
    };
    let Ok(key) = <[u8; 32]>::try_from(digest(&SHA256, &raw[..32]).as_ref()) else {
        return false;
    };
    let Some(entry) = map.get(&key) else {
        return false;
    };
    let now = unix_nanos();
    if now >= entry.absolute_deadline || now >= entry.idle_deadline {
        return false;
    }
    entry.last_seen.store(now, Ordering::Relaxed);
    true
}
