//! Property test: random sequences of logins, validations, extensions, rotations, logouts,
//! revoke-alls and clock steps, checked against a simple model of the rules, on every store:
//! `MemoryStore`, `RedisStore` on a private `redis-server` and on a private three-master Redis
//! Cluster (skipped when Redis is not installed, unless `SESSIONKIT_REQUIRE_REDIS` is set), and `SqlStore` on SQLite and on a private
//! PostgreSQL server (skipped likewise, unless `SESSIONKIT_REQUIRE_POSTGRES` is set).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "support/postgres_server.rs"]
mod postgres_server;
#[path = "support/redis_cluster.rs"]
mod redis_cluster;
#[path = "support/redis_server.rs"]
mod redis_server;

use std::time::Duration;

use common::{config, user};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use sessionkit::clock::MockClock;
use sessionkit::{
    Error, ExpiryReason, LimitPolicy, MemoryStore, NewSession, RevocationReason, SessionManager, SessionStore,
};

const IDLE: i64 = 30 * 60;
const ABSOLUTE: i64 = 4 * 3600;
const TOUCH: i64 = 60;
const LIMIT: usize = 2;

#[derive(Debug, Clone)]
enum Op {
    Login(usize),
    Validate(usize),
    Extend(usize),
    Rotate(usize),
    Logout(usize),
    RevokeAll(usize),
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..3usize).prop_map(Op::Login),
        5 => any::<usize>().prop_map(Op::Validate),
        1 => any::<usize>().prop_map(Op::Extend),
        1 => any::<usize>().prop_map(Op::Rotate),
        1 => any::<usize>().prop_map(Op::Logout),
        1 => (0..3usize).prop_map(Op::RevokeAll),
        4 => (0..2400u64).prop_map(Op::Advance),
    ]
}

/// What the model expects of a token.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Outcome {
    Live,
    Expired(ExpiryReason),
    Revoked(RevocationReason),
    Unknown,
}

#[derive(Debug, Clone)]
struct ModelSession {
    user: usize,
    session: usize,
    created: i64,
    last_seen: i64,
    idle: i64,
    absolute: i64,
    state: State,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Stored,
    Revoked(RevocationReason),
    Gone,
}

impl ModelSession {
    fn expiry(&self, now: i64) -> Option<ExpiryReason> {
        if now >= self.absolute {
            Some(ExpiryReason::Absolute)
        } else if now >= self.idle {
            Some(ExpiryReason::Idle)
        } else {
            None
        }
    }

    fn outcome(&self, now: i64) -> Outcome {
        match self.state {
            State::Stored => self.expiry(now).map_or(Outcome::Live, Outcome::Expired),
            State::Revoked(reason) if now < self.absolute => Outcome::Revoked(reason),
            State::Revoked(_) | State::Gone => Outcome::Unknown,
        }
    }

    fn touch(&mut self, now: i64, interval: i64) {
        if now - self.last_seen >= interval {
            self.last_seen = now;
            self.idle = self.idle.max((now + IDLE).min(self.absolute));
        }
    }
}

fn observed(r: &Result<sessionkit::Session, Error>) -> Outcome {
    match r {
        Ok(_) => Outcome::Live,
        Err(Error::Expired { reason }) => Outcome::Expired(*reason),
        Err(Error::Revoked { reason }) => Outcome::Revoked(*reason),
        Err(Error::UnknownSession) => Outcome::Unknown,
        Err(e) => panic!("unexpected error {e:?}"),
    }
}

/// Runs `ops` through a manager on `store` and checks every answer against the model.
async fn check<S: SessionStore>(store: S, ops: Vec<Op>) {
    {
        let builder = config()
            .idle_timeout(Duration::from_secs(IDLE as u64))
            .absolute_timeout(Duration::from_secs(ABSOLUTE as u64))
            .touch_interval(Duration::from_secs(TOUCH as u64))
            .max_sessions_per_user(Some(LIMIT as u32))
            .on_limit(LimitPolicy::EvictOldest);
        let clock = MockClock::new();
        let m = SessionManager::with_clock(store, builder.build().unwrap(), clock.clone());
        let users = ["u0", "u1", "u2"];
        let mut now = 0i64;
        // One entry per token ever issued; `session` links rotated tokens of one session.
        let mut tokens: Vec<(String, ModelSession)> = Vec::new();
        let mut sessions = 0;
        for op in ops {
            match op {
                Op::Advance(secs) => {
                    clock.advance(Duration::from_secs(secs));
                    now += secs as i64;
                }
                Op::Login(u) => {
                    // Distinct creation times keep "oldest" unambiguous.
                    clock.advance(Duration::from_secs(1));
                    now += 1;
                    // The store drops the user's expired sessions when it admits a new one.
                    for (_, s) in tokens.iter_mut() {
                        if s.user == u && s.state == State::Stored && s.expiry(now).is_some() {
                            s.state = State::Gone;
                        }
                    }
                    let mut live: Vec<usize> = (0..tokens.len())
                        .filter(|&i| tokens[i].1.user == u && tokens[i].1.state == State::Stored)
                        .collect();
                    live.sort_by_key(|&i| tokens[i].1.created);
                    let evict = (live.len() + 1).saturating_sub(LIMIT);
                    for &i in &live[..evict] {
                        tokens[i].1.state = State::Revoked(RevocationReason::Evicted);
                    }
                    let created = m.create(NewSession::new(user(users[u]))).await.unwrap();
                    assert_eq!(created.evicted.len(), evict, "evictions at login");
                    sessions += 1;
                    let s = ModelSession {
                        user: u,
                        session: sessions,
                        created: now,
                        last_seen: now,
                        idle: now + IDLE,
                        absolute: now + ABSOLUTE,
                        state: State::Stored,
                    };
                    tokens.push((created.token.expose_secret().to_owned(), s));
                }
                Op::Validate(i) | Op::Extend(i) if !tokens.is_empty() => {
                    let i = i % tokens.len();
                    let expected = tokens[i].1.outcome(now);
                    let got = match op {
                        Op::Validate(_) => m.validate(&tokens[i].0).await,
                        _ => m.extend(&tokens[i].0).await,
                    };
                    assert_eq!(observed(&got), expected, "{op:?} of token {i}");
                    if expected == Outcome::Live {
                        let interval = if matches!(op, Op::Validate(_)) { TOUCH } else { 0 };
                        tokens[i].1.touch(now, interval);
                        let s = got.unwrap();
                        let model = &tokens[i].1;
                        let offset =
                            |t: time::OffsetDateTime| (t.unix_timestamp() - clock.now_utc().unix_timestamp()) + now;
                        assert_eq!(offset(s.idle_expires_at()), model.idle, "idle deadline");
                        assert_eq!(offset(s.absolute_expires_at()), model.absolute, "absolute deadline");
                        assert_eq!(offset(s.last_seen_at()), model.last_seen, "last seen");
                    }
                }
                Op::Rotate(i) if !tokens.is_empty() => {
                    let i = i % tokens.len();
                    let expected = tokens[i].1.outcome(now);
                    let got = m.rotate(&tokens[i].0).await;
                    assert_eq!(observed(&got.as_ref().map(|r| r.session.clone()).map_err(clone_err)), expected);
                    if let Ok(r) = got {
                        let mut s = tokens[i].1.clone();
                        tokens[i].1.state = State::Gone;
                        s.state = State::Stored;
                        tokens.push((r.token.expose_secret().to_owned(), s));
                    }
                }
                Op::Logout(i) if !tokens.is_empty() => {
                    let i = i % tokens.len();
                    let stored = tokens[i].1.state == State::Stored;
                    assert_eq!(m.revoke(&tokens[i].0).await.unwrap(), stored, "logout of token {i}");
                    if stored {
                        tokens[i].1.state = State::Revoked(RevocationReason::Logout);
                    }
                }
                Op::RevokeAll(u) => {
                    let mut expected = 0;
                    for (_, s) in tokens.iter_mut() {
                        if s.user == u && s.state == State::Stored {
                            s.state = State::Revoked(RevocationReason::LogoutAll);
                            expected += 1;
                        }
                    }
                    assert_eq!(m.revoke_all(&user(users[u]), None).await.unwrap(), expected, "revoke-all");
                }
                _ => {}
            }
            for (u, name) in users.iter().enumerate() {
                let mut model: Vec<usize> = tokens
                    .iter()
                    .filter(|(_, s)| s.user == u && s.outcome(now) == Outcome::Live)
                    .map(|(_, s)| s.session)
                    .collect();
                model.sort_unstable();
                model.dedup();
                let listed = m.list(&user(name)).await.unwrap().len();
                assert_eq!(listed, model.len(), "live sessions of {name}");
                assert!(listed <= LIMIT);
            }
        }
    }
}

fn clone_err(e: &Error) -> Error {
    match e {
        Error::Expired { reason } => Error::Expired { reason: *reason },
        Error::Revoked { reason } => Error::Revoked { reason: *reason },
        Error::UnknownSession => Error::UnknownSession,
        other => panic!("unexpected error {other:?}"),
    }
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    proptest::collection::vec(op(), 1..60)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn the_manager_follows_the_model_on_memory_store(ops in ops()) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(check(MemoryStore::new(), ops));
    }
}

/// The same model on `RedisStore`: one private server for the whole run, a fresh key prefix
/// (an empty store) per case. Fewer cases than in memory: every operation is a round trip.
#[cfg(feature = "redis")]
#[test]
fn the_manager_follows_the_model_on_redis_store() {
    use sessionkit::store::redis::{RedisConfig, RedisStore};
    use std::sync::atomic::{AtomicU32, Ordering};

    let Some(server) = redis_server::RedisServer::start("the_manager_follows_the_model_on_redis_store") else {
        return;
    };
    let url = server.url();
    let case = AtomicU32::new(0);
    let mut runner = TestRunner::new(ProptestConfig { cases: 48, ..ProptestConfig::default() });
    let result = runner.run(&ops(), |ops| {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let prefix = format!("model{}", case.fetch_add(1, Ordering::Relaxed));
            let store = RedisStore::connect(RedisConfig::new(&url).with_key_prefix(prefix)).await.unwrap();
            check(store, ops).await;
        });
        Ok(())
    });
    if let Err(e) = result {
        panic!("RedisStore departs from the model: {e}");
    }
}

/// The same model on `RedisStore` over a Redis Cluster of three masters: one cluster for the
/// whole run, a fresh key prefix per case.
#[cfg(feature = "redis")]
#[test]
fn the_manager_follows_the_model_on_a_redis_cluster() {
    use sessionkit::store::redis::{RedisConfig, RedisStore};
    use std::sync::atomic::{AtomicU32, Ordering};

    let Some(cluster) = redis_cluster::RedisCluster::start("the_manager_follows_the_model_on_a_redis_cluster", false)
    else {
        return;
    };
    let urls = cluster.urls();
    let case = AtomicU32::new(0);
    let mut runner = TestRunner::new(ProptestConfig { cases: 32, ..ProptestConfig::default() });
    let result = runner.run(&ops(), |ops| {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let prefix = format!("model{}", case.fetch_add(1, Ordering::Relaxed));
            let config = RedisConfig::cluster(urls.clone()).with_key_prefix(prefix);
            check(RedisStore::connect(config).await.unwrap(), ops).await;
        });
        Ok(())
    });
    if let Err(e) = result {
        panic!("RedisStore on a Cluster departs from the model: {e}");
    }
}

/// The same model on `SqlStore` over SQLite: a fresh in-memory database per case.
#[cfg(feature = "sqlite")]
#[test]
fn the_manager_follows_the_model_on_sqlite() {
    use sessionkit::store::sql::{SqlConfig, SqlStore};

    let mut runner = TestRunner::new(ProptestConfig { cases: 64, ..ProptestConfig::default() });
    let result = runner.run(&ops(), |ops| {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let store = SqlStore::connect(SqlConfig::new("sqlite::memory:")).await.unwrap();
            check(store, ops).await;
        });
        Ok(())
    });
    if let Err(e) = result {
        panic!("SqlStore (SQLite) departs from the model: {e}");
    }
}

/// The same model on `SqlStore` over PostgreSQL: one private server for the whole run, a
/// fresh database per case.
#[cfg(feature = "postgres")]
#[test]
fn the_manager_follows_the_model_on_postgres() {
    use sessionkit::store::sql::{SqlConfig, SqlStore};
    use std::sync::atomic::{AtomicU32, Ordering};

    let Some(server) = postgres_server::PostgresServer::start("the_manager_follows_the_model_on_postgres") else {
        return;
    };
    let case = AtomicU32::new(0);
    let mut runner = TestRunner::new(ProptestConfig { cases: 32, ..ProptestConfig::default() });
    let result = runner.run(&ops(), |ops| {
        let url = server.database(&format!("model{}", case.fetch_add(1, Ordering::Relaxed)));
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let store = SqlStore::connect(SqlConfig::new(&url)).await.unwrap();
            check(store, ops).await;
        });
        Ok(())
    });
    if let Err(e) = result {
        panic!("SqlStore (PostgreSQL) departs from the model: {e}");
    }
}
