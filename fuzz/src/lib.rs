//! What the fuzz targets share: a fixed clock, a known signing key, a manager over a memory
//! store, and a runtime to drive its futures.

use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sessionkit::clock::MockClock;
use sessionkit::{KeySet, MemoryStore, SessionConfig, SessionManager, SigningKey, Timestamp};

/// The fuzz targets' "now": 2027-01-15T08:00:00Z, whatever the machine's clock says, so that
/// the committed seed tokens stay valid.
pub const NOW_SECS: i64 = 1_800_000_000;
/// The HS256 key every target signs and verifies with (the seeds were signed with it).
pub const HS256_SECRET: &[u8] = b"sessionkit-fuzz-hs256-key-0123456789abcdef";
/// Its `kid`.
pub const HS256_KID: &str = "k1";
/// The issuer and audience the manager requires.
pub const ISSUER: &str = "https://issuer.example";
/// See [`ISSUER`].
pub const AUDIENCE: &str = "api";

/// [`NOW_SECS`] as a timestamp.
#[must_use]
pub fn now() -> Timestamp {
    Timestamp::from_unix_nanos(NOW_SECS * 1_000_000_000)
}

/// The configuration of every manager here: the defaults, with an issuer and an audience.
#[must_use]
pub fn config() -> SessionConfig {
    SessionConfig::builder()
        .jwt_issuer(Some(ISSUER.into()))
        .jwt_audience(Some(AUDIENCE.into()))
        .build()
        .expect("a valid configuration")
}

/// The key set: the HS256 key, plus an Ed25519 key (one per process, made once) so that the
/// header checks meet two algorithms.
#[must_use]
pub fn keys() -> KeySet {
    static KEYS: OnceLock<KeySet> = OnceLock::new();
    KEYS.get_or_init(|| {
        let hs = SigningKey::hs256(HS256_KID, HS256_SECRET).expect("a valid HS256 key");
        let (ed, _) = SigningKey::generate_ed25519("e1").expect("an Ed25519 key");
        KeySet::new(hs).and_then(|k| k.with_verification_key(ed)).expect("a valid key set")
    })
    .clone()
}

/// A manager over an empty memory store, at [`now`], with [`keys`].
#[must_use]
pub fn manager() -> SessionManager<MemoryStore, MockClock> {
    let manager = SessionManager::with_clock(MemoryStore::new(), config(), MockClock::at(now()));
    manager.set_keys(keys());
    manager
}

/// One current-thread runtime per process: the memory store's futures need no more.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| tokio::runtime::Builder::new_current_thread().build().expect("a runtime")).block_on(future)
}

/// The encoded header of the HS256 key's own tokens.
#[must_use]
pub fn own_header() -> String {
    URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"HS256","typ":"JWT","kid":"{HS256_KID}"}}"#))
}

/// A compact JWS of `header` and `payload` (raw JSON bytes), signed with the HS256 key.
#[must_use]
pub fn sign(header_b64: &str, payload: &[u8]) -> String {
    let mut token = format!("{header_b64}.{}", URL_SAFE_NO_PAD.encode(payload));
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, HS256_SECRET);
    let tag = ring::hmac::sign(&key, token.as_bytes());
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(tag.as_ref()));
    token
}

/// A claims set this manager accepts at [`now`], for session id `sid`.
#[must_use]
pub fn valid_claims(sid: &str) -> String {
    format!(
        r#"{{"sub":"alice","sid":"{sid}","jti":"j1","iat":{},"exp":{},"iss":"{ISSUER}","aud":"{AUDIENCE}"}}"#,
        NOW_SECS,
        NOW_SECS + 900
    )
}

/// A well-formed session id (22 base64url characters of 16 bytes).
pub const SID: &str = "AAECAwQFBgcICQoLDA0ODw";

/// One [`manager`] for the whole process, for targets whose inputs do not change its state
/// (verification only: its cache answers a repeated token as the first verification did).
pub fn shared_manager() -> &'static SessionManager<MemoryStore, MockClock> {
    static MANAGER: OnceLock<SessionManager<MemoryStore, MockClock>> = OnceLock::new();
    MANAGER.get_or_init(manager)
}
