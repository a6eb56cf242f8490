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
//! * `store/peer_load_save/redis`, `store/peer_create/redis`: tower-sessions-redis-store 0.16
//!   (one fred client) on the same Redis, likewise (its load is a `GET`, its save a `SET`).
//! * `store/validate_64/redis`, `store/peer_load_save_64/redis`: 64 of those operations at once
//!   through one manager (one multiplexed connection) and one fred client: throughput.
//! * `store/validate_64/redis_cluster`: the same validations on a Cluster of three masters that
//!   the bench starts (`tests/support/redis_cluster.rs`), sharing this machine's cores.
//!
//! After each Redis subject the bench prints the server's own time per script call (from
//! `INFO commandstats`), which tells script execution apart from the round trip, and per
//! operation; with `SESSIONKIT_BENCH_COMMANDSTATS=1` it also prints every command's line (the
//! commands scripts run inside their calls included), for telling where a script's time goes.
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
#[path = "../tests/support/redis_cluster.rs"]
mod redis_cluster;
#[path = "../tests/support/redis_server.rs"]
mod redis_server;

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput};
use postgres_server::PostgresServer;
use rand::seq::SliceRandom as _;
use redis_cluster::RedisCluster;
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
/// round trip), and per operation; then resets the statistics. With several connections (the
/// masters of a Cluster) the figures are their sums.
fn server_time(rt: &Runtime, conns: &mut [redis::aio::MultiplexedConnection], name: &str, subject: Option<&str>) {
    if let Some(subject) = subject {
        // The commands the operations sent themselves, per operation (`INFO commandstats`
        // also counts the commands a script runs inside its own call: those are left out). A
        // validation reads with one HGET and runs its script only when the renewal is due (in
        // this bench, rarely: its sessions are validated within a touch interval of their
        // creation); a login is one script call.
        // The peer (tower-sessions-redis-store) loads with GET and saves with SET.
        let sent: &[&str] = match subject {
            "validate" | "validate_64" => &["hget", "evalsha"],
            "peer_load_save" | "peer_load_save_64" => &["get", "set"],
            "peer_create" => &["set"],
            _ => &["evalsha"],
        };
        let stat = |fields: &str, key: &str| -> f64 {
            fields
                .split(',')
                .find_map(|f| f.split_once('=').filter(|(k, _)| *k == key).map(|(_, v)| v.parse().unwrap_or(0.0)))
                .unwrap_or(0.0)
        };
        let (mut evalsha_calls, mut evalsha_usec, mut rejected, mut failed) = (0.0, 0.0, 0.0, 0.0);
        let mut usec = 0.0;
        let mut operations = 0.0;
        for conn in conns.iter_mut() {
            let info: String = rt.block_on(redis::cmd("INFO").arg("commandstats").query_async(conn)).unwrap();
            for line in info.lines() {
                let Some((command, fields)) = line.strip_prefix("cmdstat_").and_then(|l| l.split_once(':')) else {
                    continue;
                };
                if std::env::var_os("SESSIONKIT_BENCH_COMMANDSTATS").is_some() {
                    println!("store/{subject}/{name}: command {command} {fields}");
                }
                if command == "evalsha" {
                    evalsha_calls += stat(fields, "calls");
                    evalsha_usec += stat(fields, "usec");
                    rejected += stat(fields, "rejected_calls");
                    failed += stat(fields, "failed_calls");
                }
                if sent.contains(&command) {
                    usec += stat(fields, "usec");
                }
                if command == sent[0] {
                    operations += stat(fields, "calls");
                }
            }
        }
        if !subject.starts_with("peer_") {
            if evalsha_calls > 0.0 {
                println!(
                    "store/{subject}/{name}: server time calls={evalsha_calls:.0},usec={evalsha_usec:.0},usec_per_call={:.2},rejected_calls={rejected:.0},failed_calls={failed:.0}",
                    evalsha_usec / evalsha_calls
                );
            } else {
                println!("store/{subject}/{name}: server time  no calls");
            }
        }
        if operations > 0.0 {
            println!(
                "store/{subject}/{name}: server time per operation {:.2} usec ({operations:.0} operations)",
                usec / operations
            );
        }
    }
    for conn in conns.iter_mut() {
        let () = rt.block_on(redis::cmd("CONFIG").arg("RESETSTAT").query_async(conn)).unwrap();
    }
}

/// 64 operations at once through one client: sessionkit's `validate` through one manager (one
/// multiplexed connection, or one Cluster client), and tower-sessions-redis-store's load + save
/// through one fred client.
mod concurrent {
    use std::hint::black_box;

    use criterion::{Criterion, Throughput};
    use futures_util::future::join_all;
    use sessionkit::SessionManager;
    use sessionkit::store::redis::RedisStore;
    use time::OffsetDateTime;
    use tokio::runtime::Runtime;
    use tower_sessions_core_014::SessionStore;
    use tower_sessions_core_014::session::Id;
    use tower_sessions_redis_store::RedisStore as PeerStore;
    use tower_sessions_redis_store::fred::prelude::{Builder, ClientLike as _, Config};

    /// Operations in flight at once.
    pub const CONCURRENCY: usize = 64;

    /// `validate_64/{name}`: 64 validations of different sessions at once, on the bench's
    /// current-thread runtime.
    pub fn validate(c: &mut Criterion, rt: &Runtime, name: &str, m: &SessionManager<RedisStore>, tokens: &[String]) {
        let mut group = c.benchmark_group("store");
        group.throughput(Throughput::Elements(CONCURRENCY as u64));
        let mut i = 0;
        group.bench_function(format!("validate_{CONCURRENCY}/{name}"), |b| {
            b.iter(|| {
                i = (i + CONCURRENCY) % (tokens.len() - CONCURRENCY);
                let batch = &tokens[i..i + CONCURRENCY];
                let done = rt.block_on(join_all(batch.iter().map(|t| m.validate(t))));
                for v in done {
                    black_box(v.unwrap());
                }
            });
        });
        group.finish();
    }

    /// tower-sessions-redis-store 0.16 on one fred client: `peer_load_save/redis` and
    /// `peer_create/redis` one at a time (as the SQL peers), then `peer_load_save_64/redis`.
    pub fn peer(c: &mut Criterion, rt: &Runtime, url: &str, after: &dyn Fn(Option<&str>)) {
        let store = rt.block_on(async {
            let client = Builder::from_config(Config::from_url(url).unwrap()).build().unwrap();
            client.init().await.unwrap();
            PeerStore::new(client)
        });
        after(None);
        super::peer::run(c, rt, "redis", &store, after);
        after(Some("peer_create"));
        let ids: Vec<Id> = rt.block_on(async {
            let mut ids = Vec::with_capacity(super::SESSIONS);
            for i in 0..super::SESSIONS {
                let mut r = super::peer::record(i);
                store.create(&mut r).await.unwrap();
                ids.push(r.id);
            }
            ids
        });
        after(None);
        let mut group = c.benchmark_group("store");
        group.throughput(Throughput::Elements(CONCURRENCY as u64));
        let mut i = 0;
        group.bench_function(format!("peer_load_save_{CONCURRENCY}/redis"), |b| {
            b.iter(|| {
                i = (i + CONCURRENCY) % (ids.len() - CONCURRENCY);
                let batch = &ids[i..i + CONCURRENCY];
                rt.block_on(join_all(batch.iter().map(|id| async {
                    let mut record = store.load(id).await.unwrap().unwrap();
                    record.expiry_date = OffsetDateTime::now_utc() + time::Duration::days(1);
                    store.save(black_box(&record)).await.unwrap();
                })));
            });
        });
        group.finish();
        after(Some("peer_load_save_64"));
    }
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
    pub fn record(i: usize) -> Record {
        let data = HashMap::from([("user_id".to_owned(), serde_json::json!(format!("user{}", i % super::USERS)))]);
        Record { id: Id::default(), data, expiry_date: OffsetDateTime::now_utc() + time::Duration::days(1) }
    }

    /// `peer_load_save/{name}` over 1,000 sessions in shuffled order, then `peer_create/{name}`.
    pub fn run<S: SessionStore>(c: &mut Criterion, rt: &Runtime, name: &str, store: &S, after: &dyn Fn(Option<&str>)) {
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
        after(None);
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
        after(Some("peer_load_save"));
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
        run(c, rt, "sqlite", &store, &|_| {});
    }

    /// The peer on a PostgreSQL database, with the pool size `SqlStore` uses.
    pub fn postgres(c: &mut Criterion, rt: &Runtime, url: &str, connections: u32) {
        let store = rt.block_on(async {
            let pool = PgPoolOptions::new().max_connections(connections).connect(url).await.unwrap();
            let store = PostgresStore::new(pool);
            store.migrate().await.unwrap();
            store
        });
        run(c, rt, "postgres", &store, &|_| {});
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
        let stats = std::cell::RefCell::new([rt.block_on(stats.get_multiplexed_async_connection()).unwrap()]);
        let after = |subject: Option<&str>| server_time(&rt, &mut stats.borrow_mut()[..], "redis", subject);
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
            &after,
        );
        let m = manager(rt.block_on(RedisStore::connect(RedisConfig::new(url.as_str()))).unwrap(), None);
        let (tokens, _) = fill(&rt, &m);
        after(None);
        concurrent::validate(&mut c, &rt, "redis", &m, &tokens);
        after(Some("validate_64"));
        concurrent::peer(&mut c, &rt, &url, &after);
    }

    // The same 64 concurrent validations on a Cluster of three masters (sharing this
    // machine's cores with the bench): how throughput grows from one master to three.
    if let Some(cluster) = RedisCluster::start("the Redis Cluster benchmark", false) {
        let mut stats: Vec<_> = cluster
            .masters()
            .iter()
            .map(|n| {
                let client = redis::Client::open(n.url()).unwrap();
                rt.block_on(client.get_multiplexed_async_connection()).unwrap()
            })
            .collect();
        let m = manager(rt.block_on(RedisStore::connect(RedisConfig::cluster(cluster.urls()))).unwrap(), None);
        let (tokens, _) = fill(&rt, &m);
        server_time(&rt, &mut stats, "redis_cluster", None);
        concurrent::validate(&mut c, &rt, "redis_cluster", &m, &tokens);
        server_time(&rt, &mut stats, "redis_cluster", Some("validate_64"));
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
