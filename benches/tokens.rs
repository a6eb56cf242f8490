//! Access-token verification and refresh-token rotation, in one criterion run.
//!
//! * `verify_access/hs256`, `verify_access/eddsa`: [`SessionManager::verify_access`] of a
//!   token sessionkit issued, presented again and again as an API client does until the token
//!   expires, denylist check included (a `MemoryStore` holding 10,000 sessions, 100 of them
//!   revoked, so the denylist is not empty). After the first call the token is served by the
//!   verified-token cache: full constant-time comparison, `exp`/`nbf`, denylist.
//! * `verify_access-cold/…`: the same with the cache disabled (`access_token_cache_size(0)`):
//!   every call decodes, checks the signature and parses the claims, as for a token seen for
//!   the first time.
//! * `jsonwebtoken/hs256`, `jsonwebtoken/eddsa`: `jsonwebtoken::decode` (11.x, `rust_crypto`
//!   backend) of the *same* token with the same key and claims struct, validation on
//!   (`exp` and `sub` required, default leeway): the peer.
//! * `floor/hs256`, `floor/eddsa`: only the signature check of the same token with ring
//!   (`hmac::verify`, `ED25519` verify) over its signing input and already-decoded signature:
//!   what any verifier must spend, so that `verify_access-cold` minus this is what sessionkit
//!   adds (splitting, base64url, claims, clock, denylist).
//! * `refresh/memory`: [`SessionManager::refresh`] on a `MemoryStore`: a chain of refreshes,
//!   each presenting the refresh token the previous one returned (new successor from the OS
//!   RNG, sealing for the grace window, one atomic store step, access token signed with HS256).
//!
//! sessionkit's futures over a `MemoryStore` complete on their first poll, so they are driven by
//! polling once with a no-op waker. Run with `cargo bench --bench tokens`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a benchmark must stop loudly if its setup or a measured operation fails"
)]

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::Criterion;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
use sessionkit::token::keys::{KeySet, SigningKey};
use sessionkit::{MemoryStore, NewSession, SessionConfig, SessionManager, UserId};

/// Polls a future that is ready at once.
fn now<F: Future>(fut: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(fut).poll(&mut cx) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("MemoryStore futures complete on their first poll"),
    }
}

#[derive(serde::Deserialize)]
#[allow(dead_code, reason = "fields are decoded as the peer would, then dropped")]
struct Claims {
    sub: String,
    sid: String,
    jti: String,
    iat: i64,
    exp: i64,
}

fn manager(keys: KeySet, cache: usize) -> SessionManager<MemoryStore> {
    let config = SessionConfig::builder().max_sessions_per_user(None).access_token_cache_size(cache).build().unwrap();
    let m = SessionManager::new(MemoryStore::new(), config);
    m.set_keys(keys);
    for i in 0..10_000 {
        let c = now(m.create(NewSession::new(UserId::new(format!("user{i}")).unwrap()))).unwrap();
        if i % 100 == 0 {
            now(m.revoke(c.token.expose_secret())).unwrap();
        }
    }
    m
}

/// The floor's signature check: signing input, signature.
type SignatureCheck = Box<dyn Fn(&[u8], &[u8]) -> bool>;

fn verify(c: &mut Criterion) {
    let validation = |alg| {
        let mut v = Validation::new(alg);
        v.required_spec_claims = ["exp", "sub"].into_iter().map(String::from).collect();
        v
    };
    let secret = [0x42u8; 32];
    let (ed, _) = SigningKey::generate_ed25519("ed").unwrap();
    let cases = [
        (
            "hs256",
            SigningKey::hs256("hs", &secret).unwrap(),
            DecodingKey::from_secret(&secret),
            validation(Algorithm::HS256),
        ),
        (
            "eddsa",
            ed.clone(),
            DecodingKey::from_ed_components(&URL_SAFE_NO_PAD.encode(ed.ed25519_public_key().unwrap())).unwrap(),
            validation(Algorithm::EdDSA),
        ),
    ];
    for (name, key, peer_key, peer_validation) in cases {
        let m = manager(KeySet::new(key.clone()).unwrap(), 16_384);
        let created = now(m.create(NewSession::new(UserId::new("alice").unwrap()))).unwrap();
        let token = created.tokens.unwrap().access_token.expose_secret().to_owned();
        assert!(now(m.verify_access(&token)).is_ok());
        assert!(decode::<Claims>(&token, &peer_key, &peer_validation).is_ok(), "the peer accepts our token");
        c.bench_function(&format!("verify_access/{name}"), |b| {
            b.iter(|| now(m.verify_access(black_box(&token))).unwrap());
        });
        let cold = manager(KeySet::new(key).unwrap(), 0);
        let created = now(cold.create(NewSession::new(UserId::new("alice").unwrap()))).unwrap();
        let cold_token = created.tokens.unwrap().access_token.expose_secret().to_owned();
        c.bench_function(&format!("verify_access-cold/{name}"), |b| {
            b.iter(|| now(cold.verify_access(black_box(&cold_token))).unwrap());
        });
        c.bench_function(&format!("jsonwebtoken/{name}"), |b| {
            b.iter(|| decode::<Claims>(black_box(&token), &peer_key, &peer_validation).unwrap());
        });
        let (signing_input, signature) = token.rsplit_once('.').unwrap();
        let signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
        let check: SignatureCheck = match name {
            "hs256" => {
                let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret);
                Box::new(move |m, s| ring::hmac::verify(&key, m, s).is_ok())
            }
            _ => {
                let public = ed.ed25519_public_key().unwrap();
                Box::new(move |m, s| {
                    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, public).verify(m, s).is_ok()
                })
            }
        };
        assert!(check(signing_input.as_bytes(), &signature));
        c.bench_function(&format!("floor/{name}"), |b| {
            b.iter(|| assert!(check(black_box(signing_input.as_bytes()), black_box(&signature))));
        });
    }
}

fn refresh(c: &mut Criterion) {
    let m = manager(KeySet::new(SigningKey::hs256("hs", &[7; 32]).unwrap()).unwrap(), 16_384);
    let created = now(m.create(NewSession::new(UserId::new("alice").unwrap()))).unwrap();
    let mut current = created.tokens.unwrap().refresh_token;
    c.bench_function("refresh/memory", |b| {
        b.iter(|| {
            let pair = now(m.refresh(black_box(current.expose_secret()))).unwrap();
            current = pair.refresh_token;
        });
    });
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(50)
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(3))
}

criterion::criterion_group! { name = benches; config = config(); targets = verify, refresh }
criterion::criterion_main!(benches);
