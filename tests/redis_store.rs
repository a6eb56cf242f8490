//! `RedisStore` against a private `redis-server`: the conformance suite in both denylist
//! modes, two managers on two connections behaving as one application, the cross-instance
//! races (limit, refresh), faults (unreachable, killed, restarted) and persistence.

#![cfg(feature = "redis")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/freezing_proxy.rs"]
mod freezing_proxy;
#[path = "support/redis_server.rs"]
mod redis_server;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use freezing_proxy::FreezingProxy;
use redis_server::RedisServer;
use sessionkit::clock::Clock;
use sessionkit::clock::MockClock;
use sessionkit::store::SessionStore;
use sessionkit::store::redis::{DenylistMode, RedisConfig, RedisStore};
use sessionkit::token::Route;
use sessionkit::token::keys::{KeySet, SigningKey};
use sessionkit::{Error, LimitPolicy, NewSession, SessionConfig, SessionManager, StoreError, UserId};

type Manager = SessionManager<RedisStore, MockClock>;

static PREFIX: AtomicU32 = AtomicU32::new(0);

/// A store with a key prefix of its own, so that stores on one server never see each other.
async fn store(url: &str, mode: DenylistMode) -> RedisStore {
    let prefix = format!("t{}", PREFIX.fetch_add(1, Ordering::Relaxed));
    RedisStore::connect(RedisConfig::new(url).with_key_prefix(prefix).with_denylist(mode)).await.unwrap()
}

/// A plain connection to `server`, for looking at (or tampering with) the keys directly.
async fn raw(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url()).unwrap().get_multiplexed_async_connection().await.unwrap()
}

fn user(name: &str) -> UserId {
    UserId::new(name).unwrap()
}

fn keys() -> KeySet {
    KeySet::new(SigningKey::hs256("k1", &[7; 32]).unwrap()).unwrap()
}

/// Two managers — two instances of one application — on two connections to one server, with
/// one shared clock.
async fn two_instances(
    server: &RedisServer,
    mode: DenylistMode,
    config: SessionConfig,
) -> (Manager, Manager, MockClock) {
    let prefix = format!("app{}", PREFIX.fetch_add(1, Ordering::Relaxed));
    let clock = MockClock::new();
    let mut managers = Vec::new();
    for _ in 0..2 {
        let store =
            RedisStore::connect(RedisConfig::new(server.url()).with_key_prefix(prefix.clone()).with_denylist(mode))
                .await
                .unwrap();
        let m = SessionManager::with_clock(store, config.clone(), clock.clone());
        m.set_keys(keys());
        managers.push(m);
    }
    let b = managers.pop().unwrap();
    let a = managers.pop().unwrap();
    (a, b, clock)
}

// The conformance suite, one test per clause, in both denylist modes; each test on a private
// server of its own.
sessionkit::conformance_tests!(conformance_subscribed, {
    let Some(server) = RedisServer::start("conformance_subscribed") else { return };
} => store(&server.url(), DenylistMode::Subscribed).await, tokens, backup);
sessionkit::conformance_tests!(conformance_strict, {
    let Some(server) = RedisServer::start("conformance_strict") else { return };
} => store(&server.url(), DenylistMode::Strict).await, tokens, backup);

/// Waits (at most `limit`) until `f` holds; answers how long it took. For propagation between
/// two connections, which no clock can be injected into.
async fn within<F: AsyncFnMut() -> bool>(limit: Duration, mut f: F) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if f().await {
            return Some(start.elapsed());
        }
        if start.elapsed() > limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn shared_sessions(mode: DenylistMode) {
    let Some(server) = RedisServer::start("shared_sessions") else { return };
    let (a, b, _clock) = two_instances(&server, mode, SessionConfig::default()).await;
    let created = a.create(NewSession::new(user("alice"))).await.unwrap();
    let token = created.token.expose_secret().to_owned();
    let access = created.tokens.unwrap().access_token.expose_secret().to_owned();
    // Created through A, valid through B, access token included.
    assert_eq!(b.validate(&token).await.unwrap().id(), created.session.id());
    b.verify_access(&access).await.unwrap();
    // Logged out through A: refused through B at once, and its access token too.
    assert!(a.revoke(&token).await.unwrap());
    assert!(matches!(b.validate(&token).await, Err(Error::Revoked { .. })));
    let seen = within(Duration::from_millis(100), async || b.verify_access(&access).await.is_err()).await;
    assert!(seen.is_some(), "B still accepts the access token of a session revoked through A after 100 ms");
    assert!(matches!(b.verify_access(&access).await, Err(Error::Revoked { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_sessions_and_revocations_subscribed() {
    shared_sessions(DenylistMode::Subscribed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_sessions_and_revocations_strict() {
    shared_sessions(DenylistMode::Strict).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_denylist_needs_no_propagation() {
    let Some(server) = RedisServer::start("strict_denylist") else { return };
    let (a, b, _clock) = two_instances(&server, DenylistMode::Strict, SessionConfig::default()).await;
    for _ in 0..20 {
        let created = a.create(NewSession::new(user("alice"))).await.unwrap();
        let access = created.tokens.unwrap().access_token.expose_secret().to_owned();
        b.verify_access(&access).await.unwrap();
        a.revoke_all(&user("alice"), None).await.unwrap();
        // No waiting: the very next verification through B asks Redis.
        assert!(matches!(b.verify_access(&access).await, Err(Error::Revoked { .. })));
    }
}

async fn limit_race(policy: LimitPolicy) {
    let Some(server) = RedisServer::start("limit_race") else { return };
    let config = SessionConfig::builder().max_sessions_per_user(Some(5)).on_limit(policy).build().unwrap();
    let (a, b, _clock) = two_instances(&server, DenylistMode::Subscribed, config).await;
    let (a, b) = (Arc::new(a), Arc::new(b));
    let mut tasks = Vec::new();
    for i in 0..100 {
        let m = if i % 2 == 0 { Arc::clone(&a) } else { Arc::clone(&b) };
        tasks.push(tokio::spawn(async move { m.create(NewSession::new(user("alice"))).await }));
    }
    let mut tokens = Vec::new();
    let mut refused = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(c) => tokens.push(c.token.expose_secret().to_owned()),
            Err(Error::LimitReached { .. }) => refused += 1,
            Err(e) => panic!("login failed: {e}"),
        }
    }
    let mut live = 0;
    for (i, t) in tokens.iter().enumerate() {
        let m = if i % 2 == 0 { &a } else { &b };
        match m.validate(t).await {
            Ok(_) => live += 1,
            Err(Error::Revoked { .. }) => {}
            Err(e) => panic!("unexpected validation error: {e}"),
        }
    }
    assert_eq!(live, 5, "exactly the limit is live");
    assert_eq!(a.list(&user("alice")).await.unwrap().len(), 5);
    match policy {
        LimitPolicy::Reject => assert_eq!(refused, 95),
        _ => assert_eq!((tokens.len(), refused), (100, 0)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_logins_across_instances_evict_oldest() {
    limit_race(LimitPolicy::EvictOldest).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_logins_across_instances_evict_lru() {
    limit_race(LimitPolicy::EvictLeastRecentlyUsed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_logins_across_instances_reject() {
    limit_race(LimitPolicy::Reject).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_refreshes_across_instances_have_one_successor() {
    let Some(server) = RedisServer::start("refresh_race") else { return };
    let (a, b, _clock) = two_instances(&server, DenylistMode::Subscribed, SessionConfig::default()).await;
    let pair = a.create(NewSession::new(user("alice"))).await.unwrap().tokens.unwrap();
    let presented = pair.refresh_token.expose_secret().to_owned();
    let (a, b) = (Arc::new(a), Arc::new(b));
    let mut tasks = Vec::new();
    for i in 0..50 {
        let m = if i % 2 == 0 { Arc::clone(&a) } else { Arc::clone(&b) };
        let presented = presented.clone();
        tasks.push(tokio::spawn(async move { m.refresh(&presented).await }));
    }
    let mut successors = HashSet::new();
    for t in tasks {
        let next = t.await.unwrap().expect("every refresh within the grace window succeeds");
        successors.insert(next.refresh_token.expose_secret().to_owned());
    }
    assert_eq!(successors.len(), 1, "one successor: the family did not fork");
    let successor = successors.into_iter().next().unwrap();
    b.refresh(&successor).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_at_start_fails_closed() {
    // A port nothing listens on: bind, note, release.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("redis://127.0.0.1:{port}/");
    let started = Instant::now();
    let store = RedisStore::connect(RedisConfig::new(url)).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(2), "connect waits at most the operation timeout");
    assert!(!store.denylist_synced());
    let m = SessionManager::new(store, SessionConfig::default());
    m.set_keys(keys());
    let started = Instant::now();
    assert!(matches!(m.create(NewSession::new(user("alice"))).await, Err(Error::Store(_))));
    assert!(matches!(m.validate(&"A".repeat(43)).await, Err(Error::Store(_))));
    assert!(started.elapsed() < Duration::from_secs(3), "each operation fails within its timeout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_then_restarted_fails_closed_then_recovers() {
    let Some(mut server) = RedisServer::start("kill_restart") else { return };
    let (a, b, _clock) = two_instances(&server, DenylistMode::Subscribed, SessionConfig::default()).await;
    let created = a.create(NewSession::new(user("alice"))).await.unwrap();
    let token = created.token.expose_secret().to_owned();
    let access = created.tokens.unwrap().access_token.expose_secret().to_owned();
    b.verify_access(&access).await.unwrap();

    server.kill();
    // Validation fails closed with a store error, within the 1 s operation timeout, and many
    // concurrent requests do not pile up behind one another.
    let a = Arc::new(a);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (a, token) = (Arc::clone(&a), token.clone());
        tasks.push(tokio::spawn(async move { a.validate(&token).await }));
    }
    for t in tasks {
        assert!(matches!(t.await.unwrap(), Err(Error::Store(_))));
    }
    assert!(started.elapsed() < Duration::from_millis(2500), "took {:?}", started.elapsed());
    // The lost subscription is noticed, and access tokens are refused meanwhile.
    let refused = within(Duration::from_secs(3), async || {
        matches!(b.verify_access(&access).await, Err(Error::Store(StoreError::Unavailable(_))))
    })
    .await;
    assert!(refused.is_some(), "B kept trusting its denylist copy without a subscription");

    server.restart();
    // Redis is back (empty: no persistence here): operations succeed again, no restart. (The
    // first request on a connection that died may still fail, and makes it reconnect.)
    let back = within(Duration::from_secs(5), async || a.create(NewSession::new(user("bob"))).await.is_ok()).await;
    assert!(back.is_some(), "operations did not recover after Redis came back");
    let created = a.create(NewSession::new(user("bob"))).await.unwrap();
    let token = created.token.expose_secret();
    let back = within(Duration::from_secs(5), async || b.validate(token).await.is_ok()).await;
    assert!(back.is_some(), "the other instance did not recover");
    let access = created.tokens.unwrap().access_token.expose_secret().to_owned();
    let synced = within(Duration::from_secs(5), async || b.verify_access(&access).await.is_ok()).await;
    assert!(synced.is_some(), "the denylist did not resynchronise");
}

/// A subscription that dies without its connection closing (nothing sent, nothing received)
/// is noticed within the default one-second check; the revocations published meanwhile are
/// honoured once it has resynchronised, and until then every access token is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silently_dead_subscription_is_noticed_within_a_second_and_resynchronised() {
    let Some(server) = RedisServer::start("silent_subscription") else { return };
    let proxy = FreezingProxy::start(server.port).await;
    let prefix = format!("app{}", PREFIX.fetch_add(1, Ordering::Relaxed));
    let direct = RedisStore::connect(RedisConfig::new(server.url()).with_key_prefix(prefix.clone())).await.unwrap();
    // Through the proxy, with the default subscription check (1 s).
    let proxied = RedisStore::connect(RedisConfig::new(proxy.url()).with_key_prefix(prefix)).await.unwrap();
    let (a, b) =
        (SessionManager::new(direct, SessionConfig::default()), SessionManager::new(proxied, SessionConfig::default()));
    a.set_keys(keys());
    b.set_keys(keys());
    freezing_proxy::a_silent_loss_is_noticed_and_resynchronised(&a, &b, &proxy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_survive_a_restart_with_aof() {
    let Some(mut server) = RedisServer::start_with("aof_restart", true) else { return };
    let (a, b, _clock) = two_instances(&server, DenylistMode::Subscribed, SessionConfig::default()).await;
    let kept = a.create(NewSession::new(user("alice"))).await.unwrap();
    let revoked = a.create(NewSession::new(user("alice"))).await.unwrap();
    a.revoke(revoked.token.expose_secret()).await.unwrap();

    server.kill();
    server.restart();
    let back = within(Duration::from_secs(5), async || b.validate(kept.token.expose_secret()).await.is_ok()).await;
    assert!(back.is_some(), "the session did not survive the restart");
    assert!(matches!(b.validate(revoked.token.expose_secret()).await, Err(Error::Revoked { .. })));
    let access = revoked.tokens.unwrap().access_token.expose_secret().to_owned();
    let denied =
        within(Duration::from_secs(5), async || matches!(b.verify_access(&access).await, Err(Error::Revoked { .. })))
            .await;
    assert!(denied.is_some(), "the denylist was not read back after the restart");
}

/// The key names of a bucket (after its base `<prefix>:{b<n>}:`): every script declares all
/// of them, and the store has no other keys.
const BUCKET_KEYS: [&str; 9] = ["s", "i", "u", "r", "v", "d", "x", "y", "q"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_hold_digests_and_a_bucket_has_nine_keys() {
    let Some(server) = RedisServer::start("key_layout") else { return };
    let (a, _b, _clock) = two_instances(&server, DenylistMode::Subscribed, SessionConfig::default()).await;
    let created = a.create(NewSession::new(user("alice"))).await.unwrap();
    let other = a.create(NewSession::new(user("alice"))).await.unwrap();
    a.revoke(other.token.expose_secret()).await.unwrap();
    let pair = created.tokens.unwrap();
    a.refresh(pair.refresh_token.expose_secret()).await.unwrap();

    let mut conn = raw(&server).await;
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query_async(&mut conn).await.unwrap();
    let mut names: Vec<&str> = keys.iter().map(|k| k.split_once(':').map_or("", |(_, rest)| rest)).collect();
    names.sort_unstable();
    let mut expected: Vec<String> = BUCKET_KEYS.iter().map(|name| format!("{}:{name}", tag("alice"))).collect();
    expected.sort();
    assert_eq!(names, expected, "one bucket's nine keys, all in use");
    // Everything the keys hold, as Redis answers it (a DUMP would be compressed).
    let mut held: Vec<Vec<u8>> = Vec::new();
    for key in &keys {
        let kind: String = redis::cmd("TYPE").arg(key).query_async(&mut conn).await.unwrap();
        let mut read = match kind.as_str() {
            "hash" => redis::cmd("HGETALL"),
            "zset" => redis::cmd("ZRANGE"),
            _ => redis::cmd("GET"),
        };
        read.arg(key);
        if kind == "zset" {
            read.arg(0).arg(-1);
        }
        let values: Vec<Vec<u8>> = if kind == "string" {
            vec![read.query_async(&mut conn).await.unwrap()]
        } else {
            read.query_async(&mut conn).await.unwrap()
        };
        held.extend(values);
    }
    let contains = |needle: &str| held.iter().any(|v| v.windows(needle.len()).any(|w| w == needle.as_bytes()));
    for secret in [created.token.expose_secret(), other.token.expose_secret(), pair.refresh_token.expose_secret()] {
        assert!(!contains(secret), "Redis holds a token");
    }
    // What it holds instead: their digests (the live session's, the revoked one's remembered).
    assert!(contains(&created.token.digest().to_base64()));
    assert!(contains(&other.token.digest().to_base64()));
}

/// The hash tag of `name`'s bucket: `{b<n>}`, `n` the top 8 bits of the user's route.
fn tag(name: &str) -> String {
    format!("{{b{}}}", Route::of_user(&user(name)).get() >> 4)
}

/// Sessions are sharded by user: each user's keys share one hash tag (one Cluster slot), and
/// many users spread over many buckets; tokens and ids carry their user's route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_sharded_by_user() {
    let Some(server) = RedisServer::start("sharded") else { return };
    let config = RedisConfig::new(server.url()).with_key_prefix("sharded");
    let m = SessionManager::new(RedisStore::connect(config).await.unwrap(), SessionConfig::default());
    m.set_keys(keys());
    let mut buckets = std::collections::HashSet::new();
    for i in 0..300 {
        let name = format!("user{i}");
        let created = m.create(NewSession::new(user(&name))).await.unwrap();
        let route = Route::of_user(&user(&name));
        assert_eq!(created.token.expose_secret().len(), sessionkit::token::ROUTED_TOKEN_LEN);
        assert_eq!(created.token.digest().route(), route);
        assert_eq!(created.session.id().route(), route);
        assert_eq!(created.tokens.unwrap().refresh_token.digest().route(), route);
        buckets.insert(tag(&name));
    }
    let mut conn = raw(&server).await;
    let keys: Vec<String> = redis::cmd("KEYS").arg("sharded:*").query_async(&mut conn).await.unwrap();
    let used: std::collections::HashSet<&str> =
        keys.iter().filter_map(|k| k.split_once('{').and_then(|(_, r)| r.split_once('}')).map(|(t, _)| t)).collect();
    assert_eq!(used.len(), buckets.len(), "the keys use exactly the users' buckets");
    // 300 users in 256 buckets fill about 256 × (1 − e^(−300/256)) ≈ 177 of them.
    assert!(buckets.len() > 150, "300 users spread over many of the 256 buckets: {}", buckets.len());
    // user7's session is indexed in user7's bucket, and in no other.
    for key in keys.iter().filter(|k| k.ends_with(":u")) {
        let members: Vec<Vec<u8>> = redis::cmd("ZRANGE").arg(key).arg(0).arg(-1).query_async(&mut conn).await.unwrap();
        let of_user7 = members.iter().filter(|m| m.starts_with(b"00000005user7")).count();
        assert_eq!(of_user7, usize::from(key.contains(&tag("user7"))), "{key}");
    }
}

/// Counts the requests clients send to Redis, from `MONITOR`: each command a client sends is
/// one line, while the commands a script runs inside Redis show as `[0 lua]` and are not
/// requests. A marker command (`ECHO`) closes each window.
struct Requests {
    lines: std::pin::Pin<Box<dyn futures_util::Stream<Item = String> + Send>>,
    marker: redis::aio::MultiplexedConnection,
    markers: u32,
}

impl Requests {
    async fn start(server: &RedisServer) -> Self {
        let monitor = redis::Client::open(server.url()).unwrap().get_async_monitor().await.unwrap();
        Self { lines: Box::pin(monitor.into_on_message::<String>()), marker: raw(server).await, markers: 0 }
    }

    /// The requests made since the last call (the denylist subscription's `PING`s aside).
    async fn since_last(&mut self) -> u64 {
        use futures_util::StreamExt;
        self.markers += 1;
        let marker = format!("sessionkit-marker-{}", self.markers);
        let _: String = redis::cmd("ECHO").arg(&marker).query_async(&mut self.marker).await.unwrap();
        let mut requests = 0;
        loop {
            let line = tokio::time::timeout(Duration::from_secs(5), self.lines.next()).await.unwrap().unwrap();
            if line.contains(&marker) {
                return requests;
            }
            let command = line.split_once("] ").map_or("", |(_, c)| c);
            if !line.contains(" lua] ") && !command.starts_with("\"ping\"") && !command.starts_with("\"echo\"") {
                requests += 1;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trips_per_operation() {
    let Some(server) = RedisServer::start("round_trips") else { return };
    let mut requests = Requests::start(&server).await;
    // Few subscription PINGs during the count (and `PING` is not counted).
    let config =
        RedisConfig::new(server.url()).with_subscription_check(sessionkit::store::redis::MAX_SUBSCRIPTION_CHECK);
    let clock = MockClock::new();
    let m =
        SessionManager::with_clock(RedisStore::connect(config).await.unwrap(), SessionConfig::default(), clock.clone());
    m.set_keys(keys());

    async fn count<F: AsyncFnMut()>(requests: &mut Requests, mut op: F) -> u64 {
        requests.since_last().await;
        op().await;
        requests.since_last().await
    }
    let created = m.create(NewSession::new(user("alice"))).await.unwrap();
    let token = created.token.expose_secret().to_owned();
    let pair = created.tokens.unwrap();
    assert_eq!(count(&mut requests, async || drop(m.create(NewSession::new(user("bob"))).await.unwrap())).await, 1);
    // Validation: one round trip (a read). When the renewal is due (once per touch interval):
    // one round trip, the renewing script, if this instance's last read of the session shows
    // it due; the read and then the script if not.
    assert_eq!(count(&mut requests, async || drop(m.validate(&token).await.unwrap())).await, 1);
    clock.advance(Duration::from_secs(120));
    let renewed = clock.now();
    assert_eq!(count(&mut requests, async || drop(m.validate(&token).await.unwrap())).await, 1);
    let seen = async || m.validate(&token).await.unwrap().last_seen_at();
    assert_eq!(seen().await, renewed.to_offset_date_time(), "renewed by the script");
    let other = RedisStore::connect(RedisConfig::new(server.url())).await.unwrap();
    let other = SessionManager::with_clock(other, SessionConfig::default(), clock.clone());
    other.set_keys(keys());
    clock.advance(Duration::from_secs(120));
    assert_eq!(count(&mut requests, async || drop(other.validate(&token).await.unwrap())).await, 2);
    // The first instance still predicts a renewal, which the script finds already made by the
    // other: it only writes the counts. Every validation is counted once, whichever instance
    // made it and however.
    assert_eq!(m.validate(&token).await.unwrap().request_count(), 5);
    assert_eq!(other.validate(&token).await.unwrap().request_count(), 6);
    // Access tokens in subscribed mode: none.
    let access = pair.access_token.expose_secret().to_owned();
    assert_eq!(count(&mut requests, async || drop(m.verify_access(&access).await.unwrap())).await, 0);
    let refresh = pair.refresh_token.expose_secret().to_owned();
    assert_eq!(count(&mut requests, async || drop(m.refresh(&refresh).await.unwrap())).await, 1);
    assert_eq!(count(&mut requests, async || assert!(m.revoke(&token).await.unwrap())).await, 1);
    // A token with no session: the read, then its remembered revocation.
    let revoked = async || assert!(matches!(m.validate(&token).await, Err(Error::Revoked { .. })));
    assert_eq!(count(&mut requests, revoked).await, 2);
}

/// The number of entries of a bucket's key `name` (a hash or a sorted set).
async fn entries(conn: &mut redis::aio::MultiplexedConnection, key: &str) -> usize {
    members(conn, key).await.len()
}

/// The fields of hash `key`, or the members of sorted set `key`, but the placeholder `""`
/// that keeps every key of a bucket in use from being emptied (and so deleted).
async fn members(conn: &mut redis::aio::MultiplexedConnection, key: &str) -> Vec<String> {
    let kind: String = redis::cmd("TYPE").arg(key).query_async(conn).await.unwrap();
    let mut read = if kind == "zset" { redis::cmd("ZRANGE") } else { redis::cmd("HKEYS") };
    read.arg(key);
    if kind == "zset" {
        read.arg(0).arg(-1);
    }
    let all: Vec<String> = read.query_async(conn).await.unwrap();
    all.into_iter().filter(|m| !m.is_empty()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_stays_bounded_without_a_sweeper() {
    let Some(server) = RedisServer::start("bounded_bucket") else { return };
    let config = RedisConfig::new(server.url()).with_key_prefix("bounded");
    let clock = MockClock::new();
    let unlimited = SessionConfig::builder().max_sessions_per_user(None).build().unwrap();
    let m = SessionManager::with_clock(RedisStore::connect(config).await.unwrap(), unlimited, clock.clone());
    m.set_keys(keys());
    let mut conn = raw(&server).await;
    let key = |name: &str| format!("bounded:{}:{name}", tag("alice"));
    let mut revoked = Vec::new();
    for i in 0..50 {
        let created = m.create(NewSession::new(user("alice"))).await.unwrap();
        if i % 5 == 0 {
            revoked.push(created.token.expose_secret().to_owned());
        }
    }
    for token in &revoked {
        assert!(m.revoke(token).await.unwrap());
    }
    for name in ["s", "i", "u", "r", "x"] {
        assert_eq!(entries(&mut conn, &key(name)).await, 40, "{name}");
    }
    // Each revocation remembered for the session token and its refresh token, each with a
    // denylist entry for its access tokens.
    assert_eq!(entries(&mut conn, &key("v")).await, 20);
    assert_eq!(entries(&mut conn, &key("d")).await, 10);

    // A minute past their idle deadline (30 minutes), within the retention (15 minutes): a
    // login removes none of them, so that a late request is still answered "expired".
    clock.advance(Duration::from_secs(31 * 60));
    let mut live = vec![m.create(NewSession::new(user("alice"))).await.unwrap()];
    assert_eq!(entries(&mut conn, &key("s")).await, 41);

    // Two days later, with no sweeper ever run: nothing expires by itself, but each login
    // removes two sessions long expired, and each revocation up to five remembered
    // revocations and denylist entries whose time has passed, so the bucket comes to hold
    // what is live and no more.
    clock.advance(Duration::from_secs(2 * 86_400));
    for _ in 0..21 {
        live.push(m.create(NewSession::new(user("alice"))).await.unwrap());
    }
    for name in ["s", "i", "u", "r", "x"] {
        assert_eq!(entries(&mut conn, &key(name)).await, 21, "{name}: the 41 expired sessions are gone");
    }
    for created in live.iter().skip(1).take(10) {
        assert!(m.revoke(created.token.expose_secret()).await.unwrap());
    }
    assert_eq!(entries(&mut conn, &key("v")).await, 20, "only the new revocations are remembered");
    assert_eq!(entries(&mut conn, &key("d")).await, 10);
    assert_eq!(entries(&mut conn, &key("y")).await, 30);
    assert_eq!(m.list(&user("alice")).await.unwrap().len(), 11);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_over_due_index_entries_of_live_sessions_ends() {
    // The expiry index scores deadlines in (rounded) milliseconds, so an entry can be due by
    // its score while its session is still live. A sweep must examine it once and stop.
    let Some(server) = RedisServer::start("sweep_ends") else { return };
    let clock = MockClock::new();
    let store = RedisStore::connect(RedisConfig::new(server.url()).with_key_prefix("sweepends")).await.unwrap();
    let m = SessionManager::with_clock(store.clone(), SessionConfig::default(), clock.clone());
    let created = m.create(NewSession::new(user("alice"))).await.unwrap();
    let mut conn = raw(&server).await;
    let digests = members(&mut conn, &format!("sweepends:{}:x", tag("alice"))).await;
    assert_eq!(digests.len(), 1);
    let _: () = redis::cmd("ZADD")
        .arg(format!("sweepends:{}:x", tag("alice")))
        .arg("XX")
        .arg(0)
        .arg(&digests[0])
        .query_async(&mut conn)
        .await
        .unwrap();

    let sweep = SessionStore::remove_expired(&store, clock.now(), 1);
    let removed = tokio::time::timeout(Duration::from_secs(10), sweep).await.expect("the sweep ends").unwrap();
    assert!(removed.is_empty(), "a live session is not swept");
    m.validate(created.token.expose_secret()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_goes_on_past_index_entries_without_a_session() {
    // Index entries without a session (left by a bug, or by a hand editing Redis) are cleared
    // by a sweep, which goes on to the expired sessions after them.
    let Some(server) = RedisServer::start("sweep_stale") else { return };
    let clock = MockClock::new();
    let store = RedisStore::connect(RedisConfig::new(server.url()).with_key_prefix("sweepstale")).await.unwrap();
    let m = SessionManager::with_clock(store.clone(), SessionConfig::default(), clock.clone());
    m.create(NewSession::new(user("alice"))).await.unwrap();
    let mut conn = raw(&server).await;
    let mut stale = redis::cmd("ZADD");
    stale.arg(format!("sweepstale:{}:x", tag("alice")));
    for i in 0..2_000 {
        stale.arg(0).arg(format!("gone-{i:05}"));
    }
    let _: () = stale.query_async(&mut conn).await.unwrap();
    clock.advance(Duration::from_secs(2 * 86_400));
    let removed = SessionStore::remove_expired(&store, clock.now(), usize::MAX).await.unwrap();
    assert_eq!(removed.len(), 1, "the expired session behind the stale entries is swept");
    assert_eq!(entries(&mut conn, &format!("sweepstale:{}:x", tag("alice"))).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_removes_revocations_and_denylist_entries_whose_time_has_passed() {
    let Some(server) = RedisServer::start("sweep_revocations") else { return };
    let clock = MockClock::new();
    let store = RedisStore::connect(RedisConfig::new(server.url()).with_key_prefix("sweeprev")).await.unwrap();
    let m = SessionManager::with_clock(store.clone(), SessionConfig::default(), clock.clone());
    m.set_keys(keys());
    for _ in 0..3 {
        let created = m.create(NewSession::new(user("alice"))).await.unwrap();
        assert!(m.revoke(created.token.expose_secret()).await.unwrap());
    }
    let mut conn = raw(&server).await;
    let key = |name: &str| format!("sweeprev:{}:{name}", tag("alice"));
    assert_eq!(entries(&mut conn, &key("v")).await, 6);
    assert_eq!(entries(&mut conn, &key("y")).await, 9);
    // A day on, their sessions' absolute deadlines and the access tokens have long passed.
    clock.advance(Duration::from_secs(86_400));
    // A revocation made now, remembered for hours yet (its session's absolute deadline).
    let fresh = m.create(NewSession::new(user("alice"))).await.unwrap();
    assert!(m.revoke(fresh.token.expose_secret()).await.unwrap());
    SessionStore::remove_expired(&store, clock.now(), usize::MAX).await.unwrap();
    assert_eq!(entries(&mut conn, &key("v")).await, 2, "the session token's and the refresh token's");
    assert_eq!(entries(&mut conn, &key("d")).await, 1);
    assert_eq!(entries(&mut conn, &key("y")).await, 3);
    assert!(matches!(m.validate(fresh.token.expose_secret()).await, Err(Error::Revoked { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_from_memory_import_into_redis_and_back() {
    let Some(server) = RedisServer::start("export_import") else { return };
    let clock = MockClock::new();
    let memory = SessionManager::with_clock(sessionkit::MemoryStore::new(), SessionConfig::default(), clock.clone());
    memory.set_keys(keys());
    let kept = memory.create(NewSession::new(user("alice"))).await.unwrap();
    let revoked = memory.create(NewSession::new(user("bob"))).await.unwrap();
    memory.revoke(revoked.token.expose_secret()).await.unwrap();
    let mut dump = Vec::new();
    memory.export(&mut dump).await.unwrap();

    let redis = SessionManager::with_clock(
        store(&server.url(), DenylistMode::Subscribed).await,
        SessionConfig::default(),
        clock.clone(),
    );
    redis.set_keys(keys());
    // One live session, two remembered revocations (the revoked session's token and its
    // refresh token), one denylist entry.
    assert_eq!(redis.import(dump.as_slice()).await.unwrap(), 4);
    // The session, its refresh token, the remembered revocation and the denylist entry all moved.
    redis.validate(kept.token.expose_secret()).await.unwrap();
    redis.refresh(kept.tokens.as_ref().unwrap().refresh_token.expose_secret()).await.unwrap();
    assert!(matches!(redis.validate(revoked.token.expose_secret()).await, Err(Error::Revoked { .. })));
    let revoked_refresh = revoked.tokens.as_ref().unwrap().refresh_token.expose_secret();
    assert!(matches!(redis.refresh(revoked_refresh).await, Err(Error::Revoked { .. })));
    let access = revoked.tokens.as_ref().unwrap().access_token.expose_secret().to_owned();
    assert!(matches!(redis.verify_access(&access).await, Err(Error::Revoked { .. })));
    // Importing the same dump again collides and adds nothing.
    assert!(redis.import(dump.as_slice()).await.is_err());

    // And back: Redis's export imports into a fresh memory store.
    let mut again = Vec::new();
    redis.export(&mut again).await.unwrap();
    let back = SessionManager::with_clock(sessionkit::MemoryStore::new(), SessionConfig::default(), clock);
    back.import(again.as_slice()).await.unwrap();
    back.validate(kept.token.expose_secret()).await.unwrap();
    assert!(matches!(back.validate(revoked.token.expose_secret()).await, Err(Error::Revoked { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_import_is_one_step_within_its_own_timeout() {
    let Some(server) = RedisServer::start("large_import") else { return };
    let clock = MockClock::new();
    let unlimited = SessionConfig::builder().max_sessions_per_user(None).build().unwrap();
    let memory = SessionManager::with_clock(sessionkit::MemoryStore::new(), unlimited.clone(), clock.clone());
    let mut tokens = Vec::new();
    for i in 0..30_000 {
        let created = memory.create(NewSession::new(user(&format!("user{}", i % 1000)))).await.unwrap();
        if i % 1000 == 0 {
            tokens.push(created.token.expose_secret().to_owned());
        }
    }
    let mut dump = Vec::new();
    memory.export(&mut dump).await.unwrap();
    let redis = SessionManager::with_clock(store(&server.url(), DenylistMode::Strict).await, unlimited, clock);
    assert_eq!(redis.import(dump.as_slice()).await.unwrap(), 30_000);
    for t in &tokens {
        redis.validate(t).await.unwrap();
    }
    assert_eq!(redis.list(&user("user7")).await.unwrap().len(), 30);
}

/// A validation with no renewal due is a read: the request is counted in the instance's
/// memory, shown by that instance, and written with the next renewal it makes (once per touch
/// interval); the other instance sees the counts at most one interval late.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validations_write_their_counts_with_the_renewal() {
    let Some(server) = RedisServer::start("counts") else { return };
    let (a, b, clock) = two_instances(&server, DenylistMode::Subscribed, SessionConfig::default()).await;
    let created = a.create(NewSession::new(user("ivan"))).await.unwrap();
    let token = created.token.expose_secret().to_owned();
    let id = created.session.id();
    let mut conn = raw(&server).await;
    let writes = async |conn: &mut redis::aio::MultiplexedConnection| -> u64 {
        let info: String = redis::cmd("INFO").arg("commandstats").query_async(conn).await.unwrap();
        info.lines()
            .filter(|l| l.starts_with("cmdstat_evalsha:") || l.starts_with("cmdstat_eval:"))
            .map(|l| l.split_once("calls=").unwrap().1.split(',').next().unwrap().parse::<u64>().unwrap())
            .sum()
    };
    let before = writes(&mut conn).await;
    for n in 1..=3 {
        clock.advance(Duration::from_secs(10));
        assert_eq!(a.validate(&token).await.unwrap().request_count(), n);
    }
    assert_eq!(writes(&mut conn).await, before, "no renewal was due: no script ran");
    assert_eq!(a.get(&id).await.unwrap().unwrap().request_count(), 3, "the counting instance shows its counts");
    assert_eq!(b.get(&id).await.unwrap().unwrap().request_count(), 0, "the other instance lags");

    clock.advance(Duration::from_secs(31));
    assert_eq!(a.validate(&token).await.unwrap().request_count(), 4);
    assert_eq!(b.get(&id).await.unwrap().unwrap().request_count(), 4, "the renewal wrote every count");
}

/// Durable revocations on a server without replicas: the logout is in force on the master,
/// but the caller is told it was not acknowledged by the replicas it asked for, within the
/// wait; validations are not affected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_revocations_without_replicas_fail_closed() {
    let Some(server) = RedisServer::start("durable") else { return };
    let config = RedisConfig::new(server.url())
        .with_key_prefix("durable")
        .with_durable_revocations(1, Duration::from_millis(200));
    let m = SessionManager::new(RedisStore::connect(config).await.unwrap(), SessionConfig::default());
    let created = m.create(NewSession::new(user("alice"))).await.unwrap();
    let other = m.create(NewSession::new(user("alice"))).await.unwrap();
    m.validate(other.token.expose_secret()).await.unwrap();
    let started = Instant::now();
    assert!(matches!(m.revoke(created.token.expose_secret()).await, Err(Error::Store(StoreError::Unavailable(_)))));
    assert!(started.elapsed() < Duration::from_millis(1_500), "{:?}", started.elapsed());
    assert!(matches!(m.validate(created.token.expose_secret()).await, Err(Error::Revoked { .. })));
    assert!(matches!(m.revoke_all(&user("alice"), None).await, Err(Error::Store(StoreError::Unavailable(_)))));
    assert!(matches!(m.validate(other.token.expose_secret()).await, Err(Error::Revoked { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newlines_in_user_ids_metadata_and_data_survive_the_stored_record() {
    // A session is stored as one string whose fields end with newlines: a user id may hold
    // any character, and metadata and data are kept as compact JSON, which escapes them.
    let Some(server) = RedisServer::start("newlines") else { return };
    let store = RedisStore::connect(RedisConfig::new(server.url())).await.unwrap();
    let m = SessionManager::new(store, SessionConfig::default());
    let odd = user("line one\nline two\n");
    let created =
        m.create(NewSession::new(odd.clone()).user_agent("agent\nwith\nnewlines").data("note", "a\nb")).await.unwrap();
    let token = created.token.expose_secret().to_owned();
    let patch = sessionkit::DataPatch::new().set("more", "c\n\nd");
    m.update_data(&token, patch).await.unwrap();
    let s = m.validate(&token).await.unwrap();
    assert_eq!(s.user(), &odd);
    assert_eq!(s.user_agent(), Some("agent\nwith\nnewlines"));
    assert_eq!(s.data().get("note"), Some(&serde_json::json!("a\nb")));
    assert_eq!(s.data().get("more"), Some(&serde_json::json!("c\n\nd")));
    let listed = m.list(&odd).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].user(), &odd);
}
