//! Instruction counts of the validation hot path, for `valgrind --tool=callgrind`.
//!
//! Wall-clock benchmarks (`cargo bench --bench validate`) are noisy on a shared machine;
//! instruction counts are deterministic, so they are the way to compare two variants of the hot
//! path. This program fills a `MemoryStore` through the manager (4 sessions per user, as the
//! benchmark does) and the benchmark's own *floor* (`benches/support/floor.rs`: base64url-decode,
//! SHA-256, one `DashMap` hit, the deadline comparison, an atomic store), then runs `ITERS` validations of each in
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

use std::hash::RandomState;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use floor::{FloorMap, SplitMix, TOKEN_LEN};
use sessionkit::token::ROUTED_TOKEN_LEN;
use sessionkit::{MemoryStore, NewSession, SessionConfig, SessionManager, UserId};

#[path = "../benches/support/floor.rs"]
mod floor;

/// `MemoryStore` futures and the floor complete on their first poll.
fn now_or_never<F: Future>(fut: F) -> F::Output {
    match pin!(fut).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("pending"),
    }
}

#[inline(never)]
fn run_validate(manager: &SessionManager<MemoryStore>, tokens: &str, iters: usize) -> usize {
    let len = tokens.len() / ROUTED_TOKEN_LEN;
    let mut ok = 0;
    for i in 0..iters {
        let at = (i % len) * ROUTED_TOKEN_LEN;
        let token = &tokens[at..at + ROUTED_TOKEN_LEN];
        ok += usize::from(black_box(now_or_never(manager.validate(token))).is_ok());
    }
    ok
}

#[inline(never)]
fn run_floor(map: &FloorMap<RandomState>, tokens: &[[u8; TOKEN_LEN]], iters: usize) -> usize {
    let mut ok = 0;
    for i in 0..iters {
        let hit = now_or_never(async { floor::lookup(map, &tokens[i % tokens.len()]) });
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
        tokens.push(<[u8; ROUTED_TOKEN_LEN]>::try_from(created.token.expose_secret().as_bytes()).unwrap());
    }
    rng.shuffle(&mut tokens);
    let tokens = String::from_utf8(tokens.concat()).unwrap();

    let (map, floor_tokens) = floor::build::<RandomState>(sessions, &mut rng);

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
