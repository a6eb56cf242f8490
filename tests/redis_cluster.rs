//! `RedisStore` on a real Redis Cluster of three masters started by the test harness
//! (`tests/support/redis_cluster.rs`): the conformance suite, sessions of many users spread
//! over every master, the cross-instance races, and a master's failure and fail-over.

#![cfg(feature = "redis")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/redis_cluster.rs"]
mod redis_cluster;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use redis_cluster::RedisCluster;
use sessionkit::store::redis::{DenylistMode, RedisConfig, RedisStore};
use sessionkit::token::keys::{KeySet, SigningKey};
use sessionkit::{Error, LimitPolicy, NewSession, SessionConfig, SessionManager, UserId};

static NEXT: AtomicU32 = AtomicU32::new(0);

fn user(name: &str) -> UserId {
    UserId::new(name).unwrap()
}

/// The hash tag of `name`'s bucket: `{b<n>}`, `n` the top 8 bits of the user's route.
fn tag(name: &str) -> String {
    format!("{{b{}}}", sessionkit::token::Route::of_user(&user(name)).get() >> 4)
}

fn keys() -> KeySet {
    KeySet::new(SigningKey::hs256("k1", &[7; 32]).unwrap()).unwrap()
}

/// A store on the binary's shared cluster, under a key prefix of its own.
async fn store(cluster: &RedisCluster, mode: DenylistMode) -> RedisStore {
    let prefix = format!("t{}", NEXT.fetch_add(1, Ordering::Relaxed));
    store_with_prefix(cluster, mode, &prefix).await
}

async fn store_with_prefix(cluster: &RedisCluster, mode: DenylistMode, prefix: &str) -> RedisStore {
    let config = RedisConfig::cluster(cluster.urls()).with_key_prefix(prefix).with_denylist(mode);
    RedisStore::connect(config).await.unwrap()
}

sessionkit::conformance_tests!(conformance_cluster, {
    let Some(cluster) = RedisCluster::shared() else { return };
} => store(cluster, DenylistMode::Subscribed).await, tokens, backup);

sessionkit::conformance_tests!(conformance_cluster_strict, {
    let Some(cluster) = RedisCluster::shared() else { return };
} => store(cluster, DenylistMode::Strict).await, tokens, backup);

/// Sessions of 1,000 users land on every master, each user's keys in one slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_of_many_users_land_on_every_master() {
    let Some(cluster) = RedisCluster::shared() else { return };
    let m = SessionManager::new(
        store_with_prefix(cluster, DenylistMode::Subscribed, "spread").await,
        SessionConfig::default(),
    );
    m.set_keys(keys());
    let mut tokens = Vec::new();
    for i in 0..1_000 {
        tokens.push(m.create(NewSession::new(user(&format!("user{i}")))).await.unwrap().token);
    }
    let masters = cluster.masters();
    assert_eq!(masters.len(), 3);
    let per_master: Vec<usize> = masters.iter().map(|n| n.keys("spread:*")).collect();
    assert!(per_master.iter().all(|&n| n > 0), "every master holds sessions: {per_master:?}");
    for token in tokens.iter().step_by(97) {
        m.validate(token.expose_secret()).await.unwrap();
    }
    // Per-user operations stay whole: one user's sessions listed and revoked together.
    m.create(NewSession::new(user("user5"))).await.unwrap();
    assert_eq!(m.list(&user("user5")).await.unwrap().len(), 2);
    assert_eq!(m.revoke_all(&user("user5"), None).await.unwrap(), 2);
    // The export walks every master.
    let mut out = Vec::new();
    let exported = m.export(&mut out).await.unwrap();
    assert!(exported >= 999, "{exported}");
}

/// Two managers on two connections to the cluster.
async fn two_instances(
    cluster: &RedisCluster,
    config: SessionConfig,
) -> (SessionManager<RedisStore>, SessionManager<RedisStore>) {
    let prefix = format!("pair{}", NEXT.fetch_add(1, Ordering::Relaxed));
    let a = SessionManager::new(store_with_prefix(cluster, DenylistMode::Subscribed, &prefix).await, config.clone());
    let b = SessionManager::new(store_with_prefix(cluster, DenylistMode::Subscribed, &prefix).await, config);
    a.set_keys(keys());
    b.set_keys(keys());
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_logins_through_two_instances_keep_the_limit() {
    let Some(cluster) = RedisCluster::shared() else { return };
    let config =
        SessionConfig::builder().max_sessions_per_user(Some(3)).on_limit(LimitPolicy::EvictOldest).build().unwrap();
    let (a, b) = two_instances(cluster, config).await;
    let (a, b) = (Arc::new(a), Arc::new(b));
    let mut tasks = Vec::new();
    for i in 0..50 {
        let m = if i % 2 == 0 { Arc::clone(&a) } else { Arc::clone(&b) };
        tasks.push(tokio::spawn(async move { m.create(NewSession::new(user("alice"))).await.unwrap().token }));
    }
    let mut tokens = Vec::new();
    for t in tasks {
        tokens.push(t.await.unwrap());
    }
    assert_eq!(a.list(&user("alice")).await.unwrap().len(), 3, "exactly three live");
    let mut live = 0;
    for token in &tokens {
        if b.validate(token.expose_secret()).await.is_ok() {
            live += 1;
        }
    }
    assert_eq!(live, 3, "no evicted session validates");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_refreshes_through_two_instances_have_one_successor() {
    let Some(cluster) = RedisCluster::shared() else { return };
    let (a, b) = two_instances(cluster, SessionConfig::default()).await;
    let pair = a.create(NewSession::new(user("bob"))).await.unwrap().tokens.unwrap();
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
    b.refresh(successors.iter().next().unwrap()).await.unwrap();
}

/// A logout through one instance ends the access tokens at the other at once (the denylist
/// message crosses the cluster).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_reach_every_instance() {
    let Some(cluster) = RedisCluster::shared() else { return };
    let (a, b) = two_instances(cluster, SessionConfig::default()).await;
    let created = a.create(NewSession::new(user("carol"))).await.unwrap();
    let access = created.tokens.unwrap().access_token.expose_secret().to_owned();
    b.verify_access(&access).await.unwrap();
    a.revoke(created.token.expose_secret()).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    while b.verify_access(&access).await.is_ok() {
        assert!(Instant::now() < deadline, "the revocation never reached the other instance");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A master killed: the users on its slots fail closed within the operation timeout while the
/// others keep working; once its replica is promoted, they work again without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_master_fails_its_users_closed_until_fail_over() {
    let Some(mut cluster) = RedisCluster::start("cluster_failover", true) else { return };
    let config = RedisConfig::cluster(cluster.urls()).with_key_prefix("failover");
    let m = SessionManager::new(RedisStore::connect(config).await.unwrap(), SessionConfig::default());
    let mut sessions = Vec::new();
    for i in 0..60 {
        let name = format!("user{i}");
        let token = m.create(NewSession::new(user(&name))).await.unwrap().token;
        sessions.push((name, token));
    }
    // The master holding the most of them goes down.
    let masters: Vec<u16> = cluster.masters().iter().map(|n| n.port).collect();
    let victim_port = *masters
        .iter()
        .max_by_key(|p| cluster.nodes.iter().find(|n| n.port == **p).unwrap().keys("failover:*"))
        .unwrap();
    let on_victim: HashSet<String> = {
        let node = cluster.nodes.iter().find(|n| n.port == victim_port).unwrap();
        assert!(node.keys("failover:*:s") > 0);
        sessions
            .iter()
            .filter(|(name, _)| node.keys(&format!("failover:{}:s", tag(name))) == 1)
            .map(|(n, _)| n.clone())
            .collect()
    };
    let victim = cluster.nodes.iter().position(|n| n.port == victim_port).unwrap();
    cluster.nodes[victim].wait_replica();
    cluster.kill(victim);

    let started = Instant::now();
    let mut failed = 0;
    let mut worked = 0;
    for (name, token) in &sessions {
        let t = Instant::now();
        match m.validate(token.expose_secret()).await {
            Ok(_) => {
                assert!(!on_victim.contains(name), "{name}'s master is down, yet it validated");
                worked += 1;
            }
            Err(Error::Store(_)) => {
                assert!(on_victim.contains(name), "{name}'s master is up, yet it failed");
                assert!(t.elapsed() < Duration::from_millis(1_500), "failed closed in {:?}", t.elapsed());
                failed += 1;
            }
            Err(e) => panic!("{name}: {e:?}"),
        }
        if started.elapsed() > Duration::from_secs(2) {
            break;
        }
    }
    assert!(failed > 0 && worked > 0, "failed {failed}, worked {worked}");

    // The replica takes over (node timeout 1 s); the victim's users recover, same process.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut failure = None;
        for (name, token) in &sessions {
            if let Err(e) = m.validate(token.expose_secret()).await {
                failure = Some(format!("{name}: {e:?}"));
                break;
            }
        }
        let Some(failure) = failure else { break };
        assert!(
            Instant::now() < deadline,
            "the sessions did not recover after fail-over: {failure}; masters now {:?}",
            cluster.masters().iter().map(|n| n.port).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Durable revocations: a logout acknowledged by a replica survives its master's failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_logout_survives_fail_over() {
    let Some(mut cluster) = RedisCluster::start("durable_fail_over", true) else { return };
    let config = RedisConfig::cluster(cluster.urls())
        .with_key_prefix("durable")
        .with_durable_revocations(1, Duration::from_secs(1));
    let m = SessionManager::new(RedisStore::connect(config).await.unwrap(), SessionConfig::default());
    let created = m.create(NewSession::new(user("alice"))).await.unwrap();
    let port =
        cluster.masters().iter().find(|n| n.keys(&format!("durable:{}:s", tag("alice"))) == 1).map(|n| n.port).unwrap();
    let master = cluster.nodes.iter().position(|n| n.port == port).unwrap();
    cluster.nodes[master].wait_replica();
    m.revoke(created.token.expose_secret()).await.unwrap();
    // At once, before anything else could replicate the logout: its master dies.
    cluster.kill(master);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match m.validate(created.token.expose_secret()).await {
            Err(Error::Store(_)) => {
                assert!(Instant::now() < deadline, "no fail-over");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(Error::Revoked { .. }) => break,
            other => panic!("after fail-over the logout must hold: {other:?}"),
        }
    }
}

/// A user's bucket moved to another master while in use (`CLUSTER SETSLOT … MIGRATING`, then
/// `MIGRATE`, then `SETSLOT … NODE`). Every script declares all nine keys of its bucket, and
/// none of them is ever emptied (and so deleted) once the bucket is in use, so Redis runs a
/// script only on a master that holds all of them, and the script never meets a missing key
/// midway: before any key has moved, rotations, logins at the limit and logouts work on the
/// source; while the keys are split between the two masters a logout is refused whole
/// (`TRYAGAIN`), never run in part, and validations, plain reads, follow the key they read
/// (`ASK`). Once the bucket has moved, everything works on the new master.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_moves_between_masters_while_in_use() {
    // A cluster of its own: a migrating slot would disturb the shared cluster's other tests.
    let Some(cluster) = RedisCluster::start("slot migration", false) else { return };
    let one_session = SessionConfig::builder().max_sessions_per_user(Some(1)).build().unwrap();
    let m = SessionManager::new(store_with_prefix(&cluster, DenylistMode::Subscribed, "migrating").await, one_session);
    m.set_keys(keys());
    // One session, never a revocation: the bucket's remembered revocations and denylist hold
    // nothing.
    let first = m.create(NewSession::new(user("alice"))).await.unwrap();

    let tag = tag("alice");
    let masters = cluster.masters();
    let mut conns = Vec::new();
    for node in &masters {
        let client = redis::Client::open(node.url()).unwrap();
        conns.push(client.get_multiplexed_async_connection().await.unwrap());
    }
    let slot: i64 = redis::cmd("CLUSTER").arg("KEYSLOT").arg(&tag).query_async(&mut conns[0]).await.unwrap();
    let mut ids = Vec::new();
    let mut owner = None;
    for (i, conn) in conns.iter_mut().enumerate() {
        ids.push(redis::cmd("CLUSTER").arg("MYID").query_async::<String>(conn).await.unwrap());
        let keys: i64 = redis::cmd("CLUSTER").arg("COUNTKEYSINSLOT").arg(slot).query_async(conn).await.unwrap();
        if keys > 0 {
            assert_eq!(keys, 9, "a bucket in use is nine keys");
            owner = Some(i);
        }
    }
    let owner = owner.expect("the master holding alice's keys");
    let target = (owner + 1) % conns.len();
    let setslot = async |conn: &mut redis::aio::MultiplexedConnection, state: &str, node: Option<&str>| {
        let mut cmd = redis::cmd("CLUSTER");
        cmd.arg("SETSLOT").arg(slot).arg(state);
        if let Some(node) = node {
            cmd.arg(node);
        }
        let () = cmd.query_async(conn).await.unwrap();
    };
    let migrate = async |conn: &mut redis::aio::MultiplexedConnection, names: &[&str]| {
        let mut cmd = redis::cmd("MIGRATE");
        cmd.arg("127.0.0.1").arg(masters[target].port).arg("").arg(0).arg(5000).arg("KEYS");
        for name in names {
            cmd.arg(format!("migrating:{tag}:{name}"));
        }
        let () = cmd.query_async(conn).await.unwrap();
    };
    let (owner_id, target_id) = (ids[owner].clone(), ids[target].clone());
    setslot(&mut conns[target], "IMPORTING", Some(&owner_id)).await;
    setslot(&mut conns[owner], "MIGRATING", Some(&target_id)).await;

    // Nothing has moved yet: every operation works on the source. The rotation empties the
    // sessions of their only entry before it writes the new one; the login at the limit evicts
    // the only session, revoking it.
    let rotated = m.rotate(first.token.expose_secret()).await.expect("a rotation before any key moved");
    let second = m.create(NewSession::new(user("alice"))).await.expect("a login at the limit before any key moved");
    assert!(matches!(m.validate(rotated.token.expose_secret()).await, Err(Error::Revoked { .. })), "evicted");
    let token = second.token.expose_secret().to_owned();
    let access = second.tokens.unwrap().access_token.expose_secret().to_owned();
    m.validate(&token).await.unwrap();

    // The sessions move first: a validation follows them, a logout waits for the rest.
    migrate(&mut conns[owner], &["s"]).await;
    m.validate(&token).await.expect("a read of a key already on the target");
    assert!(matches!(m.revoke(&token).await, Err(Error::Store(_))), "refused while the bucket is split");
    m.validate(&token).await.expect("the refused logout changed nothing");
    assert!(m.verify_access(&access).await.is_ok(), "nor denied the access token");

    migrate(&mut conns[owner], &["i", "u", "r", "v", "d", "x", "y", "q"]).await;
    for conn in [target, owner].into_iter().chain((0..conns.len()).filter(|i| *i != target && *i != owner)) {
        setslot(&mut conns[conn], "NODE", Some(&target_id)).await;
    }
    assert!(m.revoke(&token).await.unwrap(), "logged out on the new master");
    assert!(matches!(m.verify_access(&access).await, Err(Error::Revoked { .. })));
    assert!(matches!(m.validate(&token).await, Err(Error::Revoked { .. })));
    assert!(matches!(m.validate(rotated.token.expose_secret()).await, Err(Error::Revoked { .. })), "moved too");
    // Alice has no session now, and the bucket is still its nine keys, all on the new master.
    for (i, conn) in conns.iter_mut().enumerate() {
        let keys: i64 = redis::cmd("CLUSTER").arg("COUNTKEYSINSLOT").arg(slot).query_async(conn).await.unwrap();
        assert_eq!(keys, if i == target { 9 } else { 0 });
    }
}
