//! `SqlStore` on SQLite (a fresh WAL file per test) and on a private PostgreSQL server (one
//! server per test binary, one database per test): the conformance suite, two managers on two
//! pools behaving as one application, the cross-instance races (limit, refresh) and faults.

#![cfg(all(feature = "sqlite", feature = "postgres"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/freezing_proxy.rs"]
mod freezing_proxy;
#[path = "support/postgres_server.rs"]
mod postgres_server;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use freezing_proxy::FreezingProxy;
use postgres_server::PostgresServer;
use sessionkit::clock::MockClock;
use sessionkit::store::sql::{DenylistMode, SqlConfig, SqlStore};
use sessionkit::token::keys::{KeySet, SigningKey};
use sessionkit::{Error, LimitPolicy, NewSession, SessionConfig, SessionManager, StoreError, UserId};

type Manager = SessionManager<SqlStore, MockClock>;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A temporary SQLite file, removed (with its WAL files) on drop.
struct TempDb(PathBuf);

impl TempDb {
    fn new() -> Self {
        Self(std::env::temp_dir().join(format!(
            "sessionkit-sql-{}-{}.db",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        )))
    }

    fn url(&self) -> String {
        format!("sqlite://{}", self.0.display())
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.0.display()));
        }
    }
}

async fn sqlite(db: &TempDb) -> SqlStore {
    SqlStore::connect(SqlConfig::new(db.url())).await.unwrap()
}

async fn postgres(url: &str) -> SqlStore {
    postgres_with(url, DenylistMode::Subscribed).await
}

async fn postgres_with(url: &str, mode: DenylistMode) -> SqlStore {
    SqlStore::connect(SqlConfig::new(url).with_denylist(mode)).await.unwrap()
}

sessionkit::conformance_tests!(conformance_sqlite, {
    let db = TempDb::new();
} => sqlite(&db).await, tokens, backup);

sessionkit::conformance_tests!(conformance_sqlite_strict, {
    let db = TempDb::new();
} => SqlStore::connect(SqlConfig::new(db.url()).with_denylist(DenylistMode::Strict)).await.unwrap(), tokens, backup);

sessionkit::conformance_tests!(
    conformance_sqlite_memory,
    SqlStore::connect(SqlConfig::new("sqlite::memory:")).await.unwrap(),
    tokens,
    backup
);

sessionkit::conformance_tests!(conformance_postgres, {
    let Some(url) = PostgresServer::shared_database() else { return };
} => postgres(&url).await, tokens, backup);

sessionkit::conformance_tests!(conformance_postgres_strict, {
    let Some(url) = PostgresServer::shared_database() else { return };
} => postgres_with(&url, DenylistMode::Strict).await, tokens, backup);

/// Waits (at most `limit`) until `f` holds. For propagation between two pools, which no clock
/// can be injected into.
async fn within<F: AsyncFnMut() -> bool>(limit: Duration, mut f: F) -> bool {
    let start = Instant::now();
    loop {
        if f().await {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn user(name: &str) -> UserId {
    UserId::new(name).unwrap()
}

fn keys() -> KeySet {
    KeySet::new(SigningKey::hs256("k1", &[7; 32]).unwrap()).unwrap()
}

/// Two managers — two instances of one application — on two pools, with one shared clock.
async fn two_instances(url: &str, config: SessionConfig) -> (Manager, Manager, MockClock) {
    two_instances_with(url, config, DenylistMode::Subscribed).await
}

async fn two_instances_with(url: &str, config: SessionConfig, mode: DenylistMode) -> (Manager, Manager, MockClock) {
    let clock = MockClock::new();
    let mut managers = Vec::new();
    for _ in 0..2 {
        let m = SessionManager::with_clock(postgres_with(url, mode).await, config.clone(), clock.clone());
        m.set_keys(keys());
        managers.push(m);
    }
    let b = managers.pop().unwrap();
    let a = managers.pop().unwrap();
    (a, b, clock)
}

async fn shared_sessions(mode: DenylistMode) {
    let Some(url) = PostgresServer::shared_database() else { return };
    let (a, b, _clock) = two_instances_with(&url, SessionConfig::default(), mode).await;
    let created = a.create(NewSession::new(user("alice"))).await.unwrap();
    let token = created.token.expose_secret().to_owned();
    let access = created.tokens.unwrap().access_token.expose_secret().to_owned();
    assert_eq!(b.validate(&token).await.unwrap().id(), created.session.id());
    b.verify_access(&access).await.unwrap();
    assert!(a.revoke(&token).await.unwrap());
    assert!(matches!(b.validate(&token).await, Err(Error::Revoked { .. })));
    // Subscribed: the notification reaches B within milliseconds; strict: at once.
    let limit = if mode == DenylistMode::Strict { Duration::ZERO } else { Duration::from_millis(100) };
    assert!(
        within(limit, async || b.verify_access(&access).await.is_err()).await,
        "B still accepts the access token of a session revoked through A after {limit:?}"
    );
    assert!(matches!(b.verify_access(&access).await, Err(Error::Revoked { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_two_instances_share_sessions_and_revocations_subscribed() {
    shared_sessions(DenylistMode::Subscribed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_two_instances_share_sessions_and_revocations_strict() {
    shared_sessions(DenylistMode::Strict).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_concurrent_logins_through_two_instances_respect_the_limit() {
    let Some(url) = PostgresServer::shared_database() else { return };
    let config =
        SessionConfig::builder().max_sessions_per_user(Some(3)).on_limit(LimitPolicy::EvictOldest).build().unwrap();
    let (a, b, _clock) = two_instances(&url, config).await;
    let mut tasks = Vec::new();
    for i in 0..50 {
        let m = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move { m.create(NewSession::new(user("bob"))).await }));
    }
    let mut tokens = Vec::new();
    for t in tasks {
        tokens.push(t.await.unwrap().unwrap().token.expose_secret().to_owned());
    }
    let mut live = 0;
    for t in &tokens {
        match a.validate(t).await {
            Ok(_) => live += 1,
            Err(Error::Revoked { .. }) => {}
            Err(e) => panic!("unexpected validation error: {e}"),
        }
    }
    assert_eq!(live, 3, "exactly the limit is live after 50 concurrent logins");
    assert_eq!(b.list(&user("bob")).await.unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_concurrent_refreshes_fork_nothing() {
    let Some(url) = PostgresServer::shared_database() else { return };
    let (a, b, _clock) = two_instances(&url, SessionConfig::default()).await;
    let created = a.create(NewSession::new(user("carol"))).await.unwrap();
    let refresh = created.tokens.unwrap().refresh_token.expose_secret().to_owned();
    let mut tasks = Vec::new();
    for i in 0..50 {
        let m = if i % 2 == 0 { a.clone() } else { b.clone() };
        let r = refresh.clone();
        tasks.push(tokio::spawn(async move { m.refresh(&r).await }));
    }
    let mut successors = HashSet::new();
    for t in tasks {
        let pair = t.await.unwrap().expect("every refresh within the grace window succeeds");
        successors.insert(pair.refresh_token.expose_secret().to_owned());
    }
    assert_eq!(successors.len(), 1, "one successor: the family did not fork");
    let successor = successors.into_iter().next().unwrap();
    b.refresh(&successor).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_is_unavailable_within_the_timeout_and_recovers() {
    let Some(mut server) = PostgresServer::start("postgres_faults") else { return };
    let url = server.database("faults");
    let (a, b, _clock) = two_instances(&url, SessionConfig::default()).await;
    let m = a;
    let created = m.create(NewSession::new(user("dave"))).await.unwrap();
    let token = created.token.expose_secret().to_owned();
    let access = created.tokens.unwrap().access_token.expose_secret().to_owned();
    b.verify_access(&access).await.unwrap();
    server.stop();
    let start = Instant::now();
    let err = m.validate(&token).await.unwrap_err();
    assert!(matches!(err, Error::Store(StoreError::Unavailable(_))), "{err:?}");
    assert!(start.elapsed() < Duration::from_millis(1500), "took {:?}", start.elapsed());
    // The listener notices the lost connection and fails closed: no access token is accepted
    // while a revocation could be missed.
    assert!(
        within(Duration::from_secs(3), async || matches!(
            b.verify_access(&access).await,
            Err(Error::Store(StoreError::Unavailable(_)))
        ))
        .await,
        "the subscribed denylist still answers with the server down"
    );
    server.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match m.validate(&token).await {
            Ok(s) => {
                assert_eq!(s.id(), created.session.id());
                break;
            }
            Err(e) => assert!(Instant::now() < deadline, "not back after restart: {e:?}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Resynchronised: access tokens verify again, and a revocation made meanwhile is seen.
    assert!(within(Duration::from_secs(5), async || b.verify_access(&access).await.is_ok()).await, "not resynced");
    assert!(m.revoke(&token).await.unwrap());
    assert!(within(Duration::from_millis(100), async || b.verify_access(&access).await.is_err()).await);
}

/// A listening connection that dies without closing (nothing sent, nothing received) is
/// noticed within the default one-second check; the revocations committed meanwhile are
/// honoured once it has listened again and read the table back, and until then every access
/// token is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_silently_dead_listener_is_noticed_within_a_second_and_resynchronised() {
    let Some(url) = PostgresServer::shared_database() else { return };
    let (host, database) = url.rsplit_once('/').unwrap();
    let port: u16 = host.rsplit_once(':').unwrap().1.parse().unwrap();
    let proxy = FreezingProxy::start(port).await;
    let proxied_url = format!("postgres://postgres@127.0.0.1:{}/{database}", proxy.port);
    let a = SessionManager::new(postgres(&url).await, SessionConfig::default());
    // Through the proxy, with the default subscription check (1 s).
    let b = SessionManager::new(postgres(&proxied_url).await, SessionConfig::default());
    a.set_keys(keys());
    b.set_keys(keys());
    freezing_proxy::a_silent_loss_is_noticed_and_resynchronised(&a, &b, &proxy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_sessions_survive_reopening_the_file() {
    let db = TempDb::new();
    let clock = MockClock::new();
    let token = {
        let m = SessionManager::with_clock(sqlite(&db).await, SessionConfig::default(), clock.clone());
        m.create(NewSession::new(user("erin"))).await.unwrap().token.expose_secret().to_owned()
    };
    let m = SessionManager::with_clock(sqlite(&db).await, SessionConfig::default(), clock);
    m.validate(&token).await.unwrap();
}

#[test]
fn debug_hides_the_password() {
    let shown = format!("{:?}", SqlConfig::new("postgres://app:pw123@localhost/db"));
    assert!(!shown.contains("pw123"), "{shown}");
}

/// The statements that must not scan every session use their indexes (SQLite's plan; the
/// PostgreSQL schema has the same indexes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_sweep_and_user_lookups_use_indexes() {
    use sqlx::Row;
    let db = TempDb::new();
    drop(sqlite(&db).await);
    let pool = sqlx::SqlitePool::connect(&db.url()).await.unwrap();
    for (sql, index) in [
        (
            "SELECT seq FROM sk_sessions WHERE idle_deadline <= 1 OR absolute_deadline <= 1 LIMIT 512",
            "sk_sessions_idle",
        ),
        ("SELECT seq FROM sk_sessions WHERE user_id = 'a' ORDER BY seq", "sk_sessions_user"),
        ("SELECT seq FROM sk_revoked WHERE until_at <= 1 LIMIT 10", "sk_revoked_until"),
        ("SELECT seq FROM sk_denied WHERE until_at <= 1 LIMIT 10", "sk_denied_until"),
        ("SELECT digest FROM sk_refresh WHERE session_id = 'x' ORDER BY n DESC LIMIT 2", "sk_refresh_session"),
    ] {
        let plan: Vec<String> = sqlx::query(&format!("EXPLAIN QUERY PLAN {sql}"))
            .fetch_all(&pool)
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<String, _>(3))
            .collect();
        assert!(plan.iter().any(|p| p.contains(index)), "{sql}: {plan:?}");
        assert!(!plan.iter().any(|p| p.starts_with("SCAN sk_")), "{sql} scans a table: {plan:?}");
    }
}

/// A validation with no renewal due writes nothing (one `SELECT`): its request is counted in
/// the store's memory, shown by the store that counted it, and written with the next renewal
/// (once per touch interval). Another instance sees the counts at most one interval late.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validations_write_their_counts_with_the_renewal() {
    use sqlx::Row;
    let db = TempDb::new();
    let clock = MockClock::new();
    let a = SessionManager::with_clock(sqlite(&db).await, SessionConfig::default(), clock.clone());
    let b = SessionManager::with_clock(sqlite(&db).await, SessionConfig::default(), clock.clone());
    let created = a.create(NewSession::new(user("ivan"))).await.unwrap();
    let token = created.token.expose_secret().to_owned();
    let pool = sqlx::SqlitePool::connect(&db.url()).await.unwrap();
    let stored =
        async || -> i64 { sqlx::query("SELECT request_count FROM sk_sessions").fetch_one(&pool).await.unwrap().get(0) };
    let data_version = async || -> i64 { sqlx::query("PRAGMA data_version").fetch_one(&pool).await.unwrap().get(0) };

    let before = data_version().await;
    for n in 1..=3 {
        clock.advance(Duration::from_secs(10));
        assert_eq!(a.validate(&token).await.unwrap().request_count(), n);
    }
    assert_eq!(data_version().await, before, "no renewal was due: nothing was written");
    assert_eq!(stored().await, 0);
    assert_eq!(
        a.get(&created.session.id()).await.unwrap().unwrap().request_count(),
        3,
        "the counting store shows its counts"
    );
    assert_eq!(b.get(&created.session.id()).await.unwrap().unwrap().request_count(), 0, "another instance lags");

    clock.advance(Duration::from_secs(31));
    assert_eq!(a.validate(&token).await.unwrap().request_count(), 4);
    assert_eq!(stored().await, 4, "the renewal wrote every count");
    assert_eq!(b.get(&created.session.id()).await.unwrap().unwrap().request_count(), 4);
}
