//! The validation hot path, measured against a floor and a peer in one criterion run.
//!
//! Groups (criterion ids are `KIND/SIZE/THREADS`, e.g. `validate/1m/2t`):
//!
//! * `validate`: [`SessionManager::validate`] over a [`MemoryStore`] with the default
//!   configuration (30 min idle, 8 h absolute, 60 s touch interval, 16 sessions per user), filled
//!   through the manager with 1,000 sessions of 250 users or 1,000,000 sessions of 250,000 users
//!   (4 each), using the system clock.
//! * `floor`: the least work a validation can do: base64url-decode the token into a stack
//!   buffer, SHA-256 it (`ring`), one `DashMap<[u8; 32], Arc<FloorEntry>>` hit on the digest (the
//!   map's default hasher), compare two `i64` deadlines with `SystemTime::now()`, and store
//!   last-seen in an atomic. Nothing else.
//! * `floor-nohash`: the same with a pass-through hasher that takes 64 bits of the (uniformly
//!   random) digest, as sessionkit's own tables do: a stricter floor.
//! * `peer`: `tower-sessions-memory-store` 0.15, the store Rust users pick today:
//!   `SessionStore::load` by `Id` then `SessionStore::save` of the loaded record (one small
//!   data entry naming the user), over 1,000 or 1,000,000 records.
//! * `peer-spin` (2 threads only): the same peer driven by a spinning executor, its best case
//!   under contention (see below).
//! * `create/evict-oldest`: a login of a user already at the limit (3, evict-oldest), so every
//!   create evicts one session and remembers it as revoked. The default store remembers up to
//!   100,000 revocations; criterion's warm-up alone passes that many evictions, so this measures
//!   creates with the revocation table full (as on a server that evicted or revoked 100,000
//!   sessions within one absolute timeout). `create/evict-oldest-untracked` is the same with
//!   `max_tracked_revocations(0)`, i.e. without remembering revocations.
//!
//! Keys are pre-generated, shuffled, laid out contiguously in lookup order and cycled through,
//! with a cursor that persists across samples so that no sample re-reads a warm prefix. Every
//! operation's outcome is checked (a failed validation panics the run), so no error path is
//! measured by mistake.
//!
//! # Executor
//!
//! All three subjects are driven by the same minimal executor, [`block_on`]: the future is pinned
//! on the stack and polled with a per-thread waker that unparks the polling thread; on `Pending`
//! the thread parks. sessionkit's `MemoryStore` futures and the floor never return `Pending`;
//! the peer's `tokio::sync::Mutex` needs no runtime and returns `Pending` only under contention
//! (2 threads), which is why a no-op waker is not enough and why no tokio runtime is needed.
//! The waker is built once per thread, so the executor costs one poll per operation.
//!
//! Under contention tokio's mutex is fair: the releasing thread hands the lock to the waiter and
//! unparks it, so with two threads and this executor nearly every operation waits for a thread
//! wake-up. A tokio runtime would park its worker the same way when it has no other task. That
//! is the `peer` 2-thread figure; `peer-spin` re-polls instead of parking (no futex sleep and
//! wake), which is the most favourable way to drive the peer, and the fairer yardstick for
//! throughput comparisons.
//!
//! # Threads
//!
//! `1t` runs in the benchmark thread. `2t` uses `iter_custom`: two std threads each do half of
//! the iterations, from their own position in the key sequence, after a barrier; the time
//! reported is wall time from the first start to the last end, divided by all iterations, so
//! per-op time is the inverse of total throughput.
//!
//! Run with `cargo bench --bench validate`; a filter selects groups, e.g.
//! `cargo bench --bench validate -- floor/1k`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a benchmark must stop loudly if its setup or a measured operation fails"
)]

#[path = "support/floor.rs"]
mod floor;

use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::hint::black_box;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use floor::SplitMix;
use sessionkit::token::ROUTED_TOKEN_LEN;
use sessionkit::{LimitPolicy, MemoryStore, NewSession, SessionConfig, SessionManager, UserId};
use tower_sessions_core::SessionStore as _;
use tower_sessions_core::session::{Id, Record};

const SESSIONS_PER_USER: usize = 4;

// ---------------------------------------------------------------------------------------------
// Executor

/// Wakes a parked polling thread.
struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// A waker for the current thread; build it once per thread.
fn thread_waker() -> Waker {
    Waker::from(Arc::new(Unpark(thread::current())))
}

/// Runs `fut` to completion on the current thread: poll, and park until woken if pending.
#[inline(always)]
fn block_on<F: Future>(cx: &mut Context<'_>, fut: F) -> F::Output {
    let mut fut = pin!(fut);
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(cx) {
            return out;
        }
        thread::park();
    }
}

/// Runs `fut` to completion by polling it until it is ready, spinning in between: the peer's
/// best case under contention, where a lock handed over is picked up at once instead of after
/// the waiter's thread is unparked.
#[inline(always)]
fn block_on_spin<F: Future>(cx: &mut Context<'_>, fut: F) -> F::Output {
    let mut fut = pin!(fut);
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(cx) {
            return out;
        }
        std::hint::spin_loop();
    }
}

// ---------------------------------------------------------------------------------------------
// Keys

/// Token strings in lookup order, back to back in one buffer so that walking them is sequential.
struct Tokens {
    text: String,
    len: usize,
    width: usize,
}

impl Tokens {
    /// Tokens of `N` characters: the floor's 43 (a bare 256-bit secret) or the manager's 45
    /// (its route, then the secret).
    fn shuffled<const N: usize>(mut tokens: Vec<[u8; N]>, rng: &mut SplitMix) -> Self {
        rng.shuffle(&mut tokens);
        let len = tokens.len();
        let text = String::from_utf8(tokens.concat()).expect("tokens are base64url");
        Self { text, len, width: N }
    }

    #[inline(always)]
    fn get(&self, i: usize) -> &str {
        &self.text[i * self.width..(i + 1) * self.width]
    }
}

fn token_bytes(token: &str) -> [u8; ROUTED_TOKEN_LEN] {
    token.as_bytes().try_into().expect("a 45-character token")
}

fn user_name(user: usize) -> String {
    format!("user-{user:07}")
}

// ---------------------------------------------------------------------------------------------
// Workloads

/// One measured operation over `len` keys, cycled through.
trait Workload: Sync {
    fn len(&self) -> usize;

    /// Does the operation on key `i`; answers whether it had the expected outcome.
    fn op(&self, cx: &mut Context<'_>, i: usize) -> bool;
}

/// sessionkit: `SessionManager::validate` over a `MemoryStore`.
struct Validate {
    manager: SessionManager<MemoryStore>,
    tokens: Tokens,
}

impl Validate {
    fn build(sessions: usize, rng: &mut SplitMix) -> Self {
        let manager = SessionManager::new(MemoryStore::new(), SessionConfig::default());
        let users = sessions.div_ceil(SESSIONS_PER_USER);
        let waker = thread_waker();
        let mut cx = Context::from_waker(&waker);
        let mut tokens = Vec::with_capacity(sessions);
        for i in 0..sessions {
            // A fresh UserId per login, as an application that reads the id from its database.
            let user = UserId::new(user_name(i % users)).unwrap();
            let created = block_on(&mut cx, manager.create(NewSession::new(user))).unwrap();
            assert!(created.evicted.is_empty());
            tokens.push(token_bytes(created.token.expose_secret()));
        }
        assert_eq!(manager.store().len(), sessions);
        assert_eq!(manager.store().user_count(), users);
        Self { manager, tokens: Tokens::shuffled(tokens, rng) }
    }
}

impl Workload for Validate {
    fn len(&self) -> usize {
        self.tokens.len
    }

    #[inline(always)]
    fn op(&self, cx: &mut Context<'_>, i: usize) -> bool {
        black_box(block_on(cx, self.manager.validate(self.tokens.get(i)))).is_ok()
    }
}

/// The floor (`support/floor.rs`): decode, digest, one map hit, two comparisons, one atomic
/// store.
struct Floor<S> {
    map: floor::FloorMap<S>,
    tokens: Tokens,
}

impl<S: BuildHasher + Clone + Default> Floor<S> {
    fn build(sessions: usize, rng: &mut SplitMix) -> Self {
        let (map, tokens) = floor::build(sessions, rng);
        Self { map, tokens: Tokens::shuffled(tokens, rng) }
    }
}

impl<S: BuildHasher + Clone + Sync + Send> Workload for Floor<S> {
    fn len(&self) -> usize {
        self.tokens.len
    }

    #[inline(always)]
    fn op(&self, cx: &mut Context<'_>, i: usize) -> bool {
        // Through the executor like the other subjects, so that each pays the same poll.
        block_on(cx, async { floor::lookup(&self.map, self.tokens.get(i).as_bytes()) })
    }
}

/// Hashes a digest key by taking 64 of its (uniformly random) bits.
#[derive(Clone, Copy, Default)]
struct PassThrough;

/// The [`Hasher`] of [`PassThrough`].
#[derive(Default)]
struct PassThroughHasher(u64);

impl BuildHasher for PassThrough {
    type Hasher = PassThroughHasher;

    fn build_hasher(&self) -> PassThroughHasher {
        PassThroughHasher(0)
    }
}

impl Hasher for PassThroughHasher {
    fn write(&mut self, bytes: &[u8]) {
        if let Some(head) = bytes.first_chunk::<8>() {
            self.0 = u64::from_le_bytes(*head);
        }
    }

    // The slice length prefix that `[u8; 32]: Hash` writes carries no information.
    fn write_usize(&mut self, _: usize) {}

    fn finish(&self) -> u64 {
        self.0
    }
}

/// The peer: tower-sessions' `MemoryStore`, load then save.
struct Peer {
    store: tower_sessions_memory_store::MemoryStore,
    ids: Vec<Id>,
    /// Drive the futures with [`block_on_spin`] instead of [`block_on`].
    spin: bool,
}

impl Peer {
    fn build(sessions: usize, rng: &mut SplitMix) -> Self {
        let store = tower_sessions_memory_store::MemoryStore::default();
        let users = sessions.div_ceil(SESSIONS_PER_USER);
        let expiry_date = time::OffsetDateTime::now_utc() + time::Duration::minutes(30);
        let waker = thread_waker();
        let mut cx = Context::from_waker(&waker);
        let mut ids = Vec::with_capacity(sessions);
        for i in 0..sessions {
            let mut record = Record {
                id: Id(i128::from(rng.next_u64()) << 64 | i128::from(rng.next_u64())),
                data: HashMap::from([("user".to_owned(), serde_json::Value::from(user_name(i % users)))]),
                expiry_date,
            };
            block_on(&mut cx, store.create(&mut record)).unwrap();
            ids.push(record.id);
        }
        rng.shuffle(&mut ids);
        Self { store, ids, spin: false }
    }

    /// The same store and keys, driven by the spinning executor.
    fn spinning(&self) -> Self {
        Self { store: self.store.clone(), ids: self.ids.clone(), spin: true }
    }
}

impl Workload for Peer {
    fn len(&self) -> usize {
        self.ids.len()
    }

    #[inline(always)]
    fn op(&self, cx: &mut Context<'_>, i: usize) -> bool {
        if self.spin {
            let Ok(Some(record)) = block_on_spin(cx, self.store.load(&self.ids[i])) else {
                return false;
            };
            block_on_spin(cx, self.store.save(black_box(&record))).is_ok()
        } else {
            let Ok(Some(record)) = block_on(cx, self.store.load(&self.ids[i])) else {
                return false;
            };
            block_on(cx, self.store.save(black_box(&record))).is_ok()
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Measurement

/// Positions in the key sequence, one per thread, kept across samples.
struct Cursors([AtomicUsize; 2]);

impl Cursors {
    fn new(len: usize) -> Self {
        Self([AtomicUsize::new(0), AtomicUsize::new(len / 2)])
    }
}

/// `iters` operations from `cursor`; answers when the loop started and ended.
#[inline(never)]
fn worker<W: Workload>(w: &W, cursor: &AtomicUsize, iters: u64, barrier: Option<&Barrier>) -> (Instant, Instant) {
    let waker = thread_waker();
    let mut cx = Context::from_waker(&waker);
    let len = w.len();
    let mut i = cursor.load(Ordering::Relaxed);
    let mut failures = 0u64;
    if let Some(barrier) = barrier {
        barrier.wait();
    }
    let start = Instant::now();
    for _ in 0..iters {
        if !w.op(&mut cx, i) {
            failures += 1;
        }
        i += 1;
        if i == len {
            i = 0;
        }
    }
    let end = Instant::now();
    cursor.store(i, Ordering::Relaxed);
    assert_eq!(failures, 0, "operations failed");
    (start, end)
}

/// Wall time of `iters` operations spread over `threads` threads (1 or 2).
fn measure<W: Workload>(w: &W, cursors: &Cursors, threads: usize, iters: u64) -> Duration {
    if threads == 1 {
        let (start, end) = worker(w, &cursors.0[0], iters, None);
        return end - start;
    }
    let barrier = Barrier::new(threads);
    let spans: Vec<(Instant, Instant)> = thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let share = iters / threads as u64 + u64::from((t as u64) < iters % threads as u64);
                let (barrier, cursor) = (&barrier, &cursors.0[t]);
                s.spawn(move || worker(w, cursor, share, Some(barrier)))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let start = spans.iter().map(|s| s.0).min().unwrap();
    let end = spans.iter().map(|s| s.1).max().unwrap();
    end - start
}

fn bench<W: Workload>(c: &mut Criterion, kind: &str, size: &str, threads: usize, w: &W, cursors: &Cursors) {
    let mut group = c.benchmark_group(format!("{kind}/{size}"));
    group.throughput(Throughput::Elements(1));
    group.bench_function(format!("{threads}t"), |b| b.iter_custom(|iters| measure(w, cursors, threads, iters)));
    group.finish();
}

fn bench_size(c: &mut Criterion, size: &str, sessions: usize, rng: &mut SplitMix) {
    let started = Instant::now();
    let validate = Validate::build(sessions, rng);
    let floor = Floor::<std::hash::RandomState>::build(sessions, rng);
    let floor_nohash = Floor::<PassThrough>::build(sessions, rng);
    let peer = Peer::build(sessions, rng);
    let peer_spin = peer.spinning();
    eprintln!("built the {size} stores in {:.1?}", started.elapsed());
    let cursors = [validate.len(), floor.len(), floor_nohash.len(), peer.len()].map(Cursors::new);
    // The subjects alternate, so that a disturbance of the machine does not fall on one alone.
    for threads in [1, 2] {
        bench(c, "validate", size, threads, &validate, &cursors[0]);
        bench(c, "floor", size, threads, &floor, &cursors[1]);
        bench(c, "floor-nohash", size, threads, &floor_nohash, &cursors[2]);
        bench(c, "peer", size, threads, &peer, &cursors[3]);
    }
    // Single-threaded, the peer's futures never wait, so only the 2-thread case differs.
    bench(c, "peer-spin", size, 2, &peer_spin, &cursors[3]);
}

fn bench_create(c: &mut Criterion) {
    let config =
        SessionConfig::builder().max_sessions_per_user(Some(3)).on_limit(LimitPolicy::EvictOldest).build().unwrap();
    let stores = [
        ("evict-oldest", MemoryStore::new()),
        ("evict-oldest-untracked", MemoryStore::builder().max_tracked_revocations(0).build()),
    ];
    let waker = thread_waker();
    let mut cx = Context::from_waker(&waker);
    for (name, store) in stores {
        let manager = SessionManager::new(store, config.clone());
        let user = UserId::new(user_name(0)).unwrap();
        for _ in 0..3 {
            block_on(&mut cx, manager.create(NewSession::new(user.clone()))).unwrap();
        }
        let mut group = c.benchmark_group("create");
        group.throughput(Throughput::Elements(1));
        group.bench_function(name, |b| {
            b.iter(|| {
                let created = block_on(&mut cx, manager.create(NewSession::new(user.clone()))).unwrap();
                assert_eq!(created.evicted.len(), 1);
                created
            });
        });
        group.finish();
        eprintln!("create/{name}: {} revocations remembered at the end", manager.store().tracked_revocations());
    }
}

fn main() {
    let mut c = Criterion::default()
        .sample_size(40)
        .warm_up_time(Duration::from_millis(1500))
        .measurement_time(Duration::from_secs(4))
        .configure_from_args();
    let mut rng = SplitMix(0x5E55_10CE_0000_0001);
    bench_size(&mut c, "1k", 1_000, &mut rng);
    bench_size(&mut c, "1M", 1_000_000, &mut rng);
    bench_create(&mut c);
    c.final_summary();
}
