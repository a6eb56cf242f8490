//! The store bench: `validate` and `create` on every store — [`MemoryStore`], [`RedisStore`],
//! and [`SqlStore`] on SQLite and PostgreSQL — in one criterion run, with tower-sessions' SQL
//! stores next to the SQL subjects.
//!
//! The bench starts its own servers, as the tests do: a `redis-server` on a free loopback port
//! (no persistence) and a PostgreSQL server on another (`tests/support/postgres_server.rs`:
//! `fsync=off`, so its figures are the statements and the round trips, not a disk); SQLite is
//! a file in a temporary directory in WAL mode (SQLite's default `synchronous=FULL`). Network
//! figures include the loopback round trips of each operation (see the README's tables of
//! round trips and statements). Groups:
//!
//! * `store/validate/{memory,redis,sqlite,postgres}`: [`SessionManager::validate`] of 1,000
//!   sessions (250 users), tokens in shuffled order, on a tokio current-thread runtime.
//! * `store/create/{memory,redis,sqlite,postgres}`: a login of a user at the limit (3,
//!   evict-oldest): every create evicts one session in the same atomic step.
//! * `store/verify_access/{memory,redis,sqlite,postgres}`: an access token checked against the
//!   denylist (the network stores in subscribed mode: no round trip).
//! * `store/ping/redis`: a `PING` on a connection of the same client library, the cost of one
//!   round trip with no work on the server: the reference for the Redis figures above.
//! * `store/peer_load_save/{sqlite,postgres}`: tower-sessions-sqlx-store 0.15 (`SqliteStore`,
//!   `PostgresStore`) loading one of 1,000 sessions by id and saving it back with its expiry
//!   moved forward, what a tower-sessions request does under `Expiry::OnInactivity` (the
//!   peer of `validate`, which also writes: the request count and the throttled renewal).
//! * `store/peer_create/{sqlite,postgres}`: the same stores creating a session (no limit).
//!
//! After each Redis subject the bench prints the server's own time per script call (from
//! `INFO commandstats`), which tells script execution apart from the round trip.
//!
//! If `redis-server` or PostgreSQL is not installed their subjects are skipped with one printed
//! line (unless `SESSIONKIT_REQUIRE_REDIS` / `SESSIONKIT_REQUIRE_POSTGRES` is set, as in CI).
//! Run with `cargo bench --bench redis` (the store bench's name from before it had SQL
//! subjects).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a benchmark must stop loudly if its setup or a measured operation fails"
)]

#[path = "../tests/support/postgres_server.rs"]
mod postgres_server;
#[path = "../tests/support/redis_server.rs"]
mod redis_server;

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput};
use postgres_server::PostgresServer;
use rand::seq::SliceRandom as _;
use redis_server::RedisServer;
use sessionkit::store::redis::{RedisConfig, RedisStore};
use sessionkit::store::sql::{SqlConfig, SqlStore};
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
        // The commands the operations sent themselves, per operation (`INFO commandstats`
        // also counts the commands a script runs inside its own call: those are left out). A
        // validation reads with HMGET and GET in one round trip and runs its script only when
        // the renewal is due (no script runs a top-level HMGET); a login is one script call.
        let stat = |fields: &str, key: &str| -> f64 {
            fields
                .split(',')
                .find_map(|f| f.split_once('=').filter(|(k, _)| *k == key).map(|(_, v)| v.parse().unwrap_or(0.0)))
                .unwrap_or(0.0)
        };
        let sent: &[&str] = if subject == "validate" { &["hmget", "get", "evalsha"] } else { &["evalsha"] };
        let mut usec = 0.0;
        let mut operations = 0.0;
        for line in info.lines() {
            let Some((name, fields)) = line.strip_prefix("cmdstat_").and_then(|l| l.split_once(':')) else { continue };
            if sent.contains(&name) {
                usec += stat(fields, "usec");
            }
            if name == sent[0] {
                operations = stat(fields, "calls");
            }
        }
        if operations > 0.0 {
            println!(
                "store/{subject}/redis: server time per operation {:.2} usec ({operations:.0} operations)",
                usec / operations
            );
        }
    }
    let () = rt.block_on(redis::cmd("CONFIG").arg("RESETSTAT").query_async(conn)).unwrap();
}

/// tower-sessions' SQL stores, as the peer of the SQL subjects.
mod peer {
    use std::collections::HashMap;
    use std::hint::black_box;
    use std::str::FromStr as _;

    use criterion::{Criterion, Throughput};
    use time::OffsetDateTime;
    use tokio::runtime::Runtime;
    use tower_sessions_core_014::SessionStore;
    use tower_sessions_core_014::session::{Id, Record};
    use tower_sessions_sqlx_store::sqlx::postgres::PgPoolOptions;
    use tower_sessions_sqlx_store::sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
    use tower_sessions_sqlx_store::{PostgresStore, SqliteStore};

    /// A record like one of the bench's sessions: its user, a day to live.
    fn record(i: usize) -> Record {
        let data = HashMap::from([("user_id".to_owned(), serde_json::json!(format!("user{}", i % super::USERS)))]);
        Record { id: Id::default(), data, expiry_date: OffsetDateTime::now_utc() + time::Duration::days(1) }
    }

    /// `peer_load_save/{name}` over 1,000 sessions in shuffled order, then `peer_create/{name}`.
    fn run<S: SessionStore>(c: &mut Criterion, rt: &Runtime, name: &str, store: S) {
        let mut ids: Vec<Id> = rt.block_on(async {
            let mut ids = Vec::with_capacity(super::SESSIONS);
            for i in 0..super::SESSIONS {
                let mut r = record(i);
                store.create(&mut r).await.unwrap();
                ids.push(r.id);
            }
            ids
        });
        rand::seq::SliceRandom::shuffle(ids.as_mut_slice(), &mut rand::rng());
        let mut group = c.benchmark_group("store");
        group.throughput(Throughput::Elements(1));
        let mut i = 0;
        group.bench_function(format!("peer_load_save/{name}"), |b| {
            b.iter(|| {
                i = (i + 1) % ids.len();
                rt.block_on(async {
                    let mut record = store.load(&ids[i]).await.unwrap().unwrap();
                    // Sliding expiry, as tower-sessions' `Expiry::OnInactivity` saves on every
                    // request (and as `validate` renews): a record saved back unchanged would
                    // cost SQLite no write at all (an identical row rewrite dirties no page).
                    record.expiry_date = OffsetDateTime::now_utc() + time::Duration::days(1);
                    store.save(black_box(&record)).await.unwrap();
                });
            });
        });
        let mut n = 0;
        group.bench_function(format!("peer_create/{name}"), |b| {
            b.iter(|| {
                n += 1;
                let mut r = record(n);
                rt.block_on(store.create(&mut r)).unwrap();
                black_box(r.id);
            });
        });
        group.finish();
    }

    /// The peer on a SQLite file in WAL mode, with the pool size `SqlStore` uses.
    pub fn sqlite(c: &mut Criterion, rt: &Runtime, path: &std::path::Path, connections: u32) {
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
            .unwrap()
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal);
        let store = rt.block_on(async {
            let pool = SqlitePoolOptions::new().max_connections(connections).connect_with(options).await.unwrap();
            let store = SqliteStore::new(pool);
            store.migrate().await.unwrap();
            store
        });
        run(c, rt, "sqlite", store);
    }

    /// The peer on a PostgreSQL database, with the pool size `SqlStore` uses.
    pub fn postgres(c: &mut Criterion, rt: &Runtime, url: &str, connections: u32) {
        let store = rt.block_on(async {
            let pool = PgPoolOptions::new().max_connections(connections).connect(url).await.unwrap();
            let store = PostgresStore::new(pool);
            store.migrate().await.unwrap();
            store
        });
        run(c, rt, "postgres", store);
    }
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

    let dir = std::env::temp_dir().join(format!("sessionkit-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let connections = SqlConfig::new("").max_connections;
    let mut file = 0;
    subjects(
        &mut c,
        &rt,
        "sqlite",
        || {
            file += 1;
            let url = format!("sqlite://{}", dir.join(format!("sessions{file}.db")).display());
            rt.block_on(SqlStore::connect(SqlConfig::new(url))).unwrap()
        },
        &|_| {},
    );
    peer::sqlite(&mut c, &rt, &dir.join("peer.db"), connections);
    std::fs::remove_dir_all(&dir).unwrap();

    if let Some(server) = PostgresServer::start("the PostgreSQL benchmarks") {
        let mut database = 0;
        subjects(
            &mut c,
            &rt,
            "postgres",
            || {
                database += 1;
                let url = server.database(&format!("sessions{database}"));
                rt.block_on(SqlStore::connect(SqlConfig::new(url))).unwrap()
            },
            &|_| {},
        );
        peer::postgres(&mut c, &rt, &server.database("peer"), connections);
    }
    c.final_summary();
}
