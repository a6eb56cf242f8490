//! `validate` and `create` on a [`RedisStore`] next to the same operations on a
//! [`MemoryStore`], in one criterion run.
//!
//! The bench starts its own `redis-server` on a free loopback port (no persistence), as the
//! tests do, so the Redis figures include one loopback round trip per operation (see the
//! README's table of round trips). Groups:
//!
//! * `store/validate/{memory,redis}`: [`SessionManager::validate`] of 1,000 sessions (250
//!   users), tokens in shuffled order, on a tokio current-thread runtime.
//! * `store/create/{memory,redis}`: a login of a user at the limit (3, evict-oldest): every
//!   create evicts one session in the same atomic step.
//! * `store/verify_access/{memory,redis}`: an access token checked against the denylist (the
//!   Redis store in subscribed mode: no round trip).
//! * `store/ping/redis`: a `PING` on a connection of the same client library, the cost of one
//!   round trip with no work on the server: the reference for the Redis figures above.
//!
//! After each Redis subject the bench prints the server's own time per script call (from
//! `INFO commandstats`), which tells script execution apart from the round trip.
//!
//! If `redis-server` is not installed the Redis subjects are skipped with one printed line
//! (unless `SESSIONKIT_REQUIRE_REDIS` is set, as in CI). Run with `cargo bench --bench redis`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a benchmark must stop loudly if its setup or a measured operation fails"
)]

#[path = "../tests/support/redis_server.rs"]
mod redis_server;

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput};
use rand::seq::SliceRandom as _;
use redis_server::RedisServer;
use sessionkit::store::redis::{RedisConfig, RedisStore};
use sessionkit::token::keys::{KeySet, SigningKey};
use sessionkit::{LimitPolicy, MemoryStore, NewSession, SessionConfig, SessionManager, TokenStore, UserId};
use tokio::runtime::Runtime;

const SESSIONS: usize = 1_000;
const USERS: usize = 250;

fn manager<S: TokenStore>(store: S, limit: Option<u32>) -> SessionManager<S> {
    let config =
        SessionConfig::builder().max_sessions_per_user(limit).on_limit(LimitPolicy::EvictOldest).build().unwrap();
    let m = SessionManager::new(store, config);
    m.set_keys(KeySet::new(SigningKey::hs256("bench", &[9; 32]).unwrap()).unwrap());
    m
}

fn users(n: usize) -> Vec<UserId> {
    (0..n).map(|i| UserId::new(format!("user{i}")).unwrap()).collect()
}

/// Fills `m` and answers the session tokens and access tokens, shuffled.
fn fill<S: TokenStore>(rt: &Runtime, m: &SessionManager<S>) -> (Vec<String>, Vec<String>) {
    let users = users(USERS);
    let mut tokens = Vec::with_capacity(SESSIONS);
    let mut access = Vec::with_capacity(SESSIONS);
    rt.block_on(async {
        for i in 0..SESSIONS {
            let created = m.create(NewSession::new(users[i % USERS].clone())).await.unwrap();
            tokens.push(created.token.expose_secret().to_owned());
            access.push(created.tokens.unwrap().access_token.expose_secret().to_owned());
        }
    });
    let mut rng = rand::rng();
    tokens.shuffle(&mut rng);
    access.shuffle(&mut rng);
    (tokens, access)
}

/// Benchmarks every subject on stores from `make`; `after` runs before and after each subject
/// with its name (the Redis run uses it to report the server's own time per call).
fn subjects<S: TokenStore>(
    c: &mut Criterion,
    rt: &Runtime,
    name: &str,
    mut make: impl FnMut() -> S,
    after: &dyn Fn(Option<&str>),
) {
    let mut group = c.benchmark_group("store");
    group.throughput(Throughput::Elements(1));

    let m = manager(make(), None);
    let (tokens, access) = fill(rt, &m);
    after(None);
    let mut i = 0;
    group.bench_function(format!("validate/{name}"), |b| {
        b.iter(|| {
            i = (i + 1) % tokens.len();
            black_box(rt.block_on(m.validate(&tokens[i])).unwrap());
        });
    });
    after(Some("validate"));
    let mut i = 0;
    group.bench_function(format!("verify_access/{name}"), |b| {
        b.iter(|| {
            i = (i + 1) % access.len();
            black_box(rt.block_on(m.verify_access(&access[i])).unwrap());
        });
    });
    after(Some("verify_access"));

    let m = manager(make(), Some(3));
    let alice = UserId::new("alice").unwrap();
    after(None);
    group.bench_function(format!("create/{name}"), |b| {
        b.iter(|| black_box(rt.block_on(m.create(NewSession::new(alice.clone()))).unwrap()));
    });
    after(Some("create"));
    group.finish();
}

/// One round trip and nothing else: `PING` on a multiplexed connection to the same server.
fn ping(c: &mut Criterion, rt: &Runtime, url: &str) {
    let client = redis::Client::open(url).unwrap();
    let mut conn = rt.block_on(client.get_multiplexed_async_connection()).unwrap();
    let mut group = c.benchmark_group("store");
    group.throughput(Throughput::Elements(1));
    group.bench_function("ping/redis", |b| {
        b.iter(|| {
            let pong: String = rt.block_on(redis::cmd("PING").query_async(&mut conn)).unwrap();
            black_box(pong);
        });
    });
    group.finish();
}

/// With a subject's name, prints the server's own time per script call since the last reset
/// (`INFO commandstats`: how much of a Redis figure is script execution, the rest being the
/// round trip); then resets the statistics.
fn server_time(rt: &Runtime, conn: &mut redis::aio::MultiplexedConnection, subject: Option<&str>) {
    if let Some(subject) = subject {
        let info: String = rt.block_on(redis::cmd("INFO").arg("commandstats").query_async(conn)).unwrap();
        let evalsha = info.lines().find(|l| l.starts_with("cmdstat_evalsha:")).unwrap_or("cmdstat_evalsha: no calls");
        println!("store/{subject}/redis: server time {}", evalsha.trim_start_matches("cmdstat_evalsha:"));
    }
    let () = rt.block_on(redis::cmd("CONFIG").arg("RESETSTAT").query_async(conn)).unwrap();
}

fn main() {
    let mut c = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();

    subjects(&mut c, &rt, "memory", MemoryStore::new, &|_| {});

    if let Some(server) = RedisServer::start("the Redis benchmarks") {
        let url = server.url();
        ping(&mut c, &rt, &url);
        let stats = redis::Client::open(url.as_str()).unwrap();
        let stats = std::cell::RefCell::new(rt.block_on(stats.get_multiplexed_async_connection()).unwrap());
        let mut prefix = 0;
        subjects(
            &mut c,
            &rt,
            "redis",
            || {
                prefix += 1;
                let config = RedisConfig::new(url.as_str()).with_key_prefix(format!("bench{prefix}"));
                rt.block_on(RedisStore::connect(config)).unwrap()
            },
            &|subject| server_time(&rt, &mut stats.borrow_mut(), subject),
        );
    }
    c.final_summary();
}
