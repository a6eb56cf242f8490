//! The sweeper at scale: removing expired sessions from a `MemoryStore` of 1,000,000, and
//! what a sweep does to validations running at the same time.
//!
//! * `sweep/1m/1pct`, `sweep/1m/10pct`: one full sweep (batches of 1,024, as
//!   `SessionManager::sweep_expired` does) of a store holding 1,000,000 sessions of which 1% or
//!   10% have expired. Between samples the swept sessions are restored, untimed, so every
//!   sample sweeps the same amount.
//! * After the criterion groups, a latency probe: one thread sweeps a 1,000,000-session store
//!   with 10% expired while another validates live sessions in a loop; it prints how many
//!   validations ran during the sweep, their median, 99.9th percentile and maximum latency.
//!
//! Run with `cargo bench --bench sweep`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_precision_loss,
    reason = "a benchmark must stop loudly if its setup or a measured operation fails"
)]

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use criterion::Criterion;
use sessionkit::clock::MockClock;
use sessionkit::store::{BackupStore, SessionStore, StoredItem};
use sessionkit::{Clock, MemoryStore, NewSession, SessionConfig, SessionManager, Timestamp, UserId};

const SESSIONS: usize = 1_000_000;

/// Polls until ready; sessionkit's MemoryStore futures are ready at once.
fn run<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

struct Fixture {
    manager: SessionManager<MemoryStore, MockClock>,
    clock: MockClock,
    live_tokens: Vec<String>,
}

/// 1,000,000 sessions; `expired` of them created 31 minutes before the rest,
/// so that at the fixture's clock they are past their 30-minute idle timeout.
fn fixture(expired: usize) -> Fixture {
    let clock = MockClock::new();
    let config = SessionConfig::builder().max_sessions_per_user(None).build().unwrap();
    let manager = SessionManager::with_clock(MemoryStore::new(), config, clock.clone());
    // Expired and live sessions belong to different users: a login drops its own user's
    // expired sessions on the spot, which would leave the sweeper nothing to do.
    let user = |i: usize| UserId::new(format!("user{}", i % 250_000)).unwrap();
    for i in 0..expired {
        run(manager.create(NewSession::new(UserId::new(format!("gone{}", i % 25_000)).unwrap()))).unwrap();
    }
    clock.advance(Duration::from_secs(31 * 60));
    let mut live_tokens = Vec::with_capacity(SESSIONS - expired);
    for i in expired..SESSIONS {
        let c = run(manager.create(NewSession::new(user(i)))).unwrap();
        live_tokens.push(c.token.expose_secret().to_owned());
    }
    Fixture { manager, clock, live_tokens }
}

/// Sweeps as `sweep_expired` does, returning what was removed so it can be put back.
fn sweep(store: &MemoryStore, now: Timestamp) -> Vec<StoredItem> {
    let mut removed = Vec::new();
    loop {
        let batch = run(store.remove_expired(now, 1024)).unwrap();
        let done = batch.len() < 1024;
        removed.extend(batch.into_iter().map(|record| StoredItem::Session { record, refresh: None }));
        if done {
            return removed;
        }
    }
}

fn sweeps(c: &mut Criterion) {
    let mut group = c.benchmark_group("sweep/1m");
    group.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(8));
    for (name, expired) in [("1pct", SESSIONS / 100), ("10pct", SESSIONS / 10)] {
        let f = fixture(expired);
        let store = f.manager.store().clone();
        let now = f.clock.now();
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let started = Instant::now();
                    let removed = sweep(&store, now);
                    total += started.elapsed();
                    assert_eq!(removed.len(), expired);
                    run(store.restore(removed, now)).unwrap();
                }
                total
            });
        });
    }
    group.finish();
}

/// Validations on one thread while another sweeps 100,000 expired sessions out of 1,000,000.
fn latency_during_sweep() {
    let f = fixture(SESSIONS / 10);
    let stop = Arc::new(AtomicBool::new(false));
    let barrier = Arc::new(Barrier::new(2));
    let prober = {
        let (manager, tokens, stop, barrier) =
            (f.manager.clone(), f.live_tokens.clone(), stop.clone(), barrier.clone());
        std::thread::spawn(move || {
            let mut latencies = Vec::with_capacity(1 << 20);
            barrier.wait();
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let token = &tokens[i.wrapping_mul(7919) % tokens.len()];
                let started = Instant::now();
                run(manager.validate(token)).unwrap();
                latencies.push(started.elapsed());
                i += 1;
            }
            latencies
        })
    };
    let store = f.manager.store().clone();
    let now = f.clock.now();
    barrier.wait();
    let started = Instant::now();
    let removed = sweep(&store, now);
    let sweep_time = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let mut latencies = prober.join().unwrap();
    latencies.sort_unstable();
    let pick = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q) as usize];
    println!(
        "latency during sweep: swept {} sessions of 1,000,000 in {:?}; {} concurrent validations: median {:?}, p99.9 {:?}, max {:?}",
        removed.len(),
        sweep_time,
        latencies.len(),
        pick(0.5),
        pick(0.999),
        latencies.last().copied().unwrap_or_default(),
    );
}

fn probe(_: &mut Criterion) {
    latency_during_sweep();
}

criterion::criterion_group!(benches, sweeps, probe);
criterion::criterion_main!(benches);
