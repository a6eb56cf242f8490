//! Whatever is stored can be read back: the largest and deepest session a configuration
//! accepts (data at `max_data_bytes` and `max_data_depth`, both at their ceilings, the longest
//! user agent and user id, made of characters JSON escapes, a full refresh history) survives a
//! memory-store snapshot, an export and import, the Redis store and the SQLite store.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[cfg(feature = "redis")]
#[path = "support/redis_server.rs"]
mod redis_server;

use std::net::IpAddr;
use std::path::PathBuf;

use serde_json::{Map, Value};
use sessionkit::clock::MockClock;
use sessionkit::store::{BackupStore, REFRESH_REUSE_HISTORY, TokenStore};
use sessionkit::token::keys::{KeySet, SigningKey};
use sessionkit::{Clock, Error, MemoryStore, NewSession, Session, SessionConfig, SessionManager, UserId};

/// The ceilings every configuration stays within.
const MAX_DATA_BYTES: usize = 1024 * 1024;
const MAX_USER_AGENT_LEN: usize = 64 * 1024;

/// JSON escapes this character as six bytes (`\u0001`): the longest encoding of a byte.
const ESCAPED: &str = "\u{1}";

fn largest_config() -> SessionConfig {
    SessionConfig::builder()
        .max_data_bytes(MAX_DATA_BYTES)
        .max_data_depth(SessionConfig::MAX_DATA_DEPTH)
        .max_user_agent_len(MAX_USER_AGENT_LEN)
        .max_sessions_per_user(None)
        .build()
        .unwrap()
}

fn keys() -> KeySet {
    KeySet::new(SigningKey::hs256("k", &[5; 32]).unwrap()).unwrap()
}

/// A data bag `depth` levels deep and exactly `bytes` long as compact JSON: one key whose
/// value is arrays nested in one another around a string, padded to the size.
fn data(depth: usize, bytes: usize) -> Map<String, Value> {
    let build = |pad: usize| {
        let mut v = Value::from("d".repeat(pad));
        for _ in 1..depth {
            v = Value::Array(vec![v]);
        }
        Map::from_iter([("deep".to_owned(), v)])
    };
    let unpadded = serde_json::to_vec(&build(0)).unwrap().len();
    let data = build(bytes - unpadded);
    assert_eq!(serde_json::to_vec(&data).unwrap().len(), bytes);
    data
}

fn ip() -> IpAddr {
    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff".parse().unwrap()
}

fn new_session(data: Map<String, Value>) -> NewSession {
    let mut new = NewSession::new(UserId::new(ESCAPED.repeat(UserId::MAX_LEN)).unwrap())
        .remember_me(true)
        .ip(ip())
        .user_agent(ESCAPED.repeat(MAX_USER_AGENT_LEN + 100));
    for (k, v) in data {
        new = new.data(k, v);
    }
    new
}

/// What a reader must give back: the largest session as written.
struct Written {
    token: String,
    refresh: String,
    session: Session,
}

/// Writes the largest and deepest session `m` accepts, after checking that one byte more or
/// one level deeper is refused, and spends refresh tokens until its history is full.
async fn write_largest<S: TokenStore, C: Clock>(m: &SessionManager<S, C>) -> Written {
    let depth = SessionConfig::MAX_DATA_DEPTH;
    let err = m.create(new_session(data(depth + 1, MAX_DATA_BYTES))).await.unwrap_err();
    assert!(matches!(err, Error::DataTooDeep { .. }), "{err:?}");
    let err = m.create(new_session(data(depth, MAX_DATA_BYTES + 1))).await.unwrap_err();
    assert!(matches!(err, Error::DataTooLarge { .. }), "{err:?}");

    let created = m.create(new_session(data(depth, MAX_DATA_BYTES))).await.unwrap();
    assert_eq!(created.session.user_agent().map(str::len), Some(MAX_USER_AGENT_LEN));
    let mut refresh = created.tokens.unwrap().refresh_token.expose_secret().to_owned();
    for _ in 0..=REFRESH_REUSE_HISTORY {
        refresh = m.refresh(&refresh).await.unwrap().refresh_token.expose_secret().to_owned();
    }
    let token = created.token.expose_secret().to_owned();
    let session = m.validate(&token).await.unwrap();
    Written { token, refresh, session }
}

/// `m` holds the largest session as written: found by its token, listed, refreshable.
async fn reads_back<S: TokenStore, C: Clock>(m: &SessionManager<S, C>, written: &Written) {
    let expected = &written.session;
    let found = m.validate(&written.token).await.unwrap();
    assert_eq!(found.id(), expected.id());
    assert_eq!(found.user(), expected.user());
    assert_eq!(found.user_agent(), expected.user_agent());
    assert_eq!(found.ip(), Some(ip()));
    assert!(found.remember_me());
    assert_eq!(found.data(), expected.data(), "the data reads back whole, at every level");
    assert_eq!(found.data().encoded_len(), MAX_DATA_BYTES);
    let listed = m.list(expected.user()).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].data(), expected.data());
    m.refresh(&written.refresh).await.unwrap();
}

/// Exports `m` and checks that the export holds a line beyond the former 1 MiB line limit.
async fn export<S: BackupStore, C: Clock>(m: &SessionManager<S, C>) -> Vec<u8> {
    let mut out = Vec::new();
    m.export(&mut out).await.unwrap();
    let longest = out.split(|&b| b == b'\n').map(<[u8]>::len).max().unwrap();
    assert!(longest > 1 << 20, "the session's line is {longest} bytes");
    assert!(longest <= sessionkit::export::MAX_LINE, "the session's line is {longest} bytes");
    out
}

fn manager<S: TokenStore>(store: S, clock: &MockClock) -> SessionManager<S, MockClock> {
    let m = SessionManager::with_clock(store, largest_config(), clock.clone());
    m.set_keys(keys());
    m
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sessionkit-largest-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn the_largest_session_survives_a_snapshot() {
    let clock = MockClock::new();
    let m = manager(MemoryStore::new(), &clock);
    let written = write_largest(&m).await;
    let dir = scratch("snapshot");
    let path = dir.join("sessions.jsonl");
    m.store().save_snapshot(&path, clock.now()).unwrap();
    let store = MemoryStore::new();
    assert!(store.load_snapshot(&path).unwrap() > 0);
    reads_back(&manager(store, &clock), &written).await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn the_largest_session_survives_export_and_import() {
    let clock = MockClock::new();
    let m = manager(MemoryStore::new(), &clock);
    let written = write_largest(&m).await;
    let exported = export(&m).await;
    let restored = manager(MemoryStore::new(), &clock);
    assert!(restored.import(exported.as_slice()).await.unwrap() > 0);
    reads_back(&restored, &written).await;
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn the_largest_session_survives_redis() {
    use sessionkit::store::redis::{RedisConfig, RedisStore};
    let Some(server) = redis_server::RedisServer::start("the_largest_session_survives_redis") else { return };
    let clock = MockClock::new();
    let connect = |prefix: &'static str| {
        let url = server.url();
        async move { RedisStore::connect(RedisConfig::new(url).with_key_prefix(prefix)).await.unwrap() }
    };
    let m = manager(connect("a").await, &clock);
    let written = write_largest(&m).await;
    let exported = export(&m).await;
    // Read back from Redis by another instance,
    reads_back(&manager(connect("a").await, &clock), &written).await;
    // imported from Redis's export into memory,
    let memory = manager(MemoryStore::new(), &clock);
    memory.import(exported.as_slice()).await.unwrap();
    reads_back(&memory, &written).await;
    // and restored into Redis.
    let restored = manager(connect("b").await, &clock);
    restored.import(exported.as_slice()).await.unwrap();
    reads_back(&restored, &written).await;
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn the_largest_session_survives_sqlite() {
    use sessionkit::store::sql::{SqlConfig, SqlStore};
    let dir = scratch("sqlite");
    let url = format!("sqlite://{}", dir.join("sessions.db").display());
    let clock = MockClock::new();
    let m = manager(SqlStore::connect(SqlConfig::new(&url)).await.unwrap(), &clock);
    let written = write_largest(&m).await;
    let exported = export(&m).await;
    reads_back(&manager(SqlStore::connect(SqlConfig::new(&url)).await.unwrap(), &clock), &written).await;
    let memory = manager(MemoryStore::new(), &clock);
    memory.import(exported.as_slice()).await.unwrap();
    reads_back(&memory, &written).await;
    let _ = std::fs::remove_dir_all(dir);
}
