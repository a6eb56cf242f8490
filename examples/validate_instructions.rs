//! Instruction counts of the validation hot path, for `valgrind --tool=callgrind`.
//!
//! Wall-clock benchmarks (`cargo bench --bench validate`) are noisy on a shared machine;
//! instruction counts are deterministic, so they are the way to compare two variants of the hot
//! path. This program fills a `MemoryStore` through the manager (4 sessions per user, as the
//! benchmark does) and a *floor* like the benchmark's (base64url-decode, SHA-256, one `DashMap`
//! hit, the deadline comparison, an atomic store), then runs `ITERS` validations of each in
//! random order in two `#[inline(never)]` functions, which callgrind reports separately:
//!
//! ```text
//! cargo build --release --example validate_instructions
//! valgrind --tool=callgrind --callgrind-out-file=cg.out \
//!     target/release/examples/validate_instructions [SESSIONS [ITERS]]
//! callgrind_annotate --inclusive=yes cg.out | grep -E 'run_(validate|floor)'
//! ```
//!
//! Divide each function's inclusive count by `ITERS`. Valgrind hides the CPU's SHA extensions,
//! so the SHA-256 share is larger than on the hardware; compare differences, not ratios.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a measurement harness stops loudly on failure"
)]

use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dashmap::DashMap;
use ring::digest::{SHA256, digest};
use sessionkit::{MemoryStore, NewSession, SessionConfig, SessionManager, UserId};

const TOKEN_LEN: usize = 43;

/// `MemoryStore` futures and the floor complete on their first poll.
fn now_or_never<F: Future>(fut: F) -> F::Output {
    match pin!(fut).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("pending"),
    }
}

/// SplitMix64, for a deterministic shuffle and floor keys.
struct SplitMix(u64);

impl SplitMix {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            v.swap(i, (self.next_u64() % (i as u64 + 1)) as usize);
        }
    }
}

struct FloorEntry {
    idle_deadline: i64,
    absolute_deadline: i64,
    last_seen: AtomicI64,
}

fn unix_nanos() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i64)
}

#[inline(never)]
fn run_validate(manager: &SessionManager<MemoryStore>, tokens: &str, iters: usize) -> usize {
    let len = tokens.len() / TOKEN_LEN;
    let mut ok = 0;
    for i in 0..iters {
        let at = (i % len) * TOKEN_LEN;
        let token = &tokens[at..at + TOKEN_LEN];
        ok += usize::from(black_box(now_or_never(manager.validate(token))).is_ok());
    }
    ok
}

#[inline(never)]
fn run_floor(map: &DashMap<[u8; 32], Arc<FloorEntry>>, tokens: &[[u8; TOKEN_LEN]], iters: usize) -> usize {
    let mut ok = 0;
    for i in 0..iters {
        let token = &tokens[i % tokens.len()];
        let hit = now_or_never(async {
            let mut raw = [0u8; 33];
            let Ok(32) = URL_SAFE_NO_PAD.decode_slice(token, &mut raw) else { return false };
            let Ok(key) = <[u8; 32]>::try_from(digest(&SHA256, &raw[..32]).as_ref()) else { return false };
            let Some(entry) = map.get(&key) else { return false };
            let now = unix_nanos();
            if now >= entry.absolute_deadline || now >= entry.idle_deadline {
                return false;
            }
            entry.last_seen.store(now, Ordering::Relaxed);
            true
        });
        ok += usize::from(black_box(hit));
    }
    ok
}

fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.replace('_', "").parse::<usize>().unwrap());
    let sessions = args.next().unwrap_or(1_000);
    let iters = args.next().unwrap_or(100_000);
    let mut rng = SplitMix(0x5E55_10CE_0000_0001);

    let manager = SessionManager::new(MemoryStore::new(), SessionConfig::default());
    let users = sessions.div_ceil(4);
    let mut tokens = Vec::with_capacity(sessions);
    for i in 0..sessions {
        let user = UserId::new(format!("user-{:07}", i % users)).unwrap();
        let created = now_or_never(manager.create(NewSession::new(user))).unwrap();
        tokens.push(<[u8; TOKEN_LEN]>::try_from(created.token.expose_secret().as_bytes()).unwrap());
    }
    rng.shuffle(&mut tokens);
    let tokens = String::from_utf8(tokens.concat()).unwrap();

    let map = DashMap::new();
    let now = unix_nanos();
    let mut floor_tokens = Vec::with_capacity(sessions);
    for _ in 0..sessions {
        let mut raw = [0u8; 32];
        for chunk in raw.chunks_exact_mut(8) {
            chunk.copy_from_slice(&rng.next_u64().to_le_bytes());
        }
        let mut token = [0u8; TOKEN_LEN];
        URL_SAFE_NO_PAD.encode_slice(raw, &mut token).unwrap();
        let key: [u8; 32] = digest(&SHA256, &raw).as_ref().try_into().unwrap();
        let entry = FloorEntry {
            idle_deadline: now + 30 * 60 * 1_000_000_000,
            absolute_deadline: now + 8 * 3600 * 1_000_000_000,
            last_seen: AtomicI64::new(now),
        };
        map.insert(key, Arc::new(entry));
        floor_tokens.push(token);
    }

    let v = run_validate(&manager, &tokens, iters);
    let f = run_floor(&map, &floor_tokens, iters);
    assert_eq!((v, f), (iters, iters), "every validation must succeed");
    // Optional wall-clock rounds (not for callgrind): the fastest round of each, alternating.
    if let Some(rounds) = args.next() {
        let (mut best_v, mut best_f) = (f64::MAX, f64::MAX);
        for _ in 0..rounds {
            let t = std::time::Instant::now();
            run_validate(&manager, &tokens, iters);
            best_v = best_v.min(t.elapsed().as_nanos() as f64 / iters as f64);
            let t = std::time::Instant::now();
            run_floor(&map, &floor_tokens, iters);
            best_f = best_f.min(t.elapsed().as_nanos() as f64 / iters as f64);
        }
        println!(
            "fastest of {rounds} rounds: validate {best_v:.1} ns, floor {best_f:.1} ns, ratio {:.3}",
            best_v / best_f
        );
    }
    println!("{sessions} sessions, {iters} validations and floor lookups");
}
