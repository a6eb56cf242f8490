//! Instruction counts of a first-sight `verify_access` (HS256), for `valgrind --tool=callgrind`.
//!
//! The tokens bench's `verify_access-cold/hs256` is noisy on a shared machine; instruction
//! counts are deterministic, so they are the way to compare two variants of the cold path. This
//! program makes a manager as that bench does (cache disabled, 10,000 sessions, one in a hundred
//! revoked so that the denylist is not empty), then verifies one token `ITERS` times in an
//! `#[inline(never)]` function, and checks the same signature with ring alone (the bench's
//! `floor/hs256`) in another, which callgrind reports separately:
//!
//! ```text
//! cargo build --release --example verify_instructions
//! valgrind --tool=callgrind --callgrind-out-file=cg.out \
//!     target/release/examples/verify_instructions [ITERS]
//! callgrind_annotate --inclusive=yes cg.out | grep -E 'run_(verify|floor)'
//! ```
//!
//! Divide each function's inclusive count by `ITERS`. Valgrind hides the CPU's SHA extensions,
//! so the HMAC's share is larger than on the hardware; compare differences, not ratios.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a measurement harness stops loudly on failure"
)]

use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use sessionkit::token::keys::{KeySet, SigningKey};
use sessionkit::{MemoryStore, NewSession, SessionConfig, SessionManager, UserId};

/// `MemoryStore` futures complete on their first poll.
fn now_or_never<F: Future>(fut: F) -> F::Output {
    match pin!(fut).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("pending"),
    }
}

#[inline(never)]
fn run_verify(manager: &SessionManager<MemoryStore>, token: &str, iters: usize) -> usize {
    let mut ok = 0;
    for _ in 0..iters {
        ok += usize::from(black_box(now_or_never(manager.verify_access(black_box(token)))).is_ok());
    }
    ok
}

#[inline(never)]
fn run_floor(key: &ring::hmac::Key, signing_input: &[u8], signature: &[u8], iters: usize) -> usize {
    let mut ok = 0;
    for _ in 0..iters {
        ok += usize::from(ring::hmac::verify(key, black_box(signing_input), black_box(signature)).is_ok());
    }
    ok
}

fn main() {
    let iters = std::env::args().nth(1).map_or(100_000, |a| a.replace('_', "").parse::<usize>().unwrap());
    let secret = [0x42u8; 32];
    let config = SessionConfig::builder().max_sessions_per_user(None).access_token_cache_size(0).build().unwrap();
    let manager = SessionManager::new(MemoryStore::new(), config);
    manager.set_keys(KeySet::new(SigningKey::hs256("hs", &secret).unwrap()).unwrap());
    for i in 0..10_000 {
        let c = now_or_never(manager.create(NewSession::new(UserId::new(format!("user{i}")).unwrap()))).unwrap();
        if i % 100 == 0 {
            now_or_never(manager.revoke(c.token.expose_secret())).unwrap();
        }
    }
    let created = now_or_never(manager.create(NewSession::new(UserId::new("alice").unwrap()))).unwrap();
    let token = created.tokens.unwrap().access_token.expose_secret().to_owned();

    let dot = token.rfind('.').unwrap();
    let signature =
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, &token[dot + 1..]).unwrap();
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret);

    let v = run_verify(&manager, &token, iters);
    let f = run_floor(&key, &token.as_bytes()[..dot], &signature, iters);
    assert_eq!((v, f), (iters, iters), "every verification must succeed");
    println!("{iters} first-sight verifications and floor signature checks of a {}-byte token", token.len());
}
