//! Short-lived signed access tokens: JWTs (RFC 7519) in compact JWS form, bound to a session.
//!
//! An access token lets an API check a request without a store lookup: the signature proves
//! the server issued it, `exp` bounds its life (15 minutes by default), and `sid` names the
//! session so that a revoked session's tokens can be refused at once through the denylist.
//!
//! Verification follows RFC 8725: the input is length-capped before anything is decoded; the
//! key is chosen by `kid` and the algorithm is the one that key is bound to (a header asking for
//! `none`, or for another algorithm than the key's, is refused); the signature is checked
//! before any claim is read; then `exp`, `nbf`, `iss` and `aud` are checked with a leeway.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use zeroize::Zeroize as _;

use crate::clock::Timestamp;
use crate::hash::RandomKeys;
use crate::session::{SessionId, UserId};
use crate::token::TokenDigest;
use crate::token::keys::{Algorithm, KeySet};

/// Longest access token accepted for verification, in bytes. Anything longer is refused
/// before it is decoded.
pub const MAX_ACCESS_TOKEN_LEN: usize = 4096;

/// Why an access token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AccessTokenError {
    /// Not a compact JWS: wrong number of parts, bad base64url, invalid JSON, oversized, or a
    /// refresh or session token presented in its place.
    #[error("malformed access token")]
    Malformed,
    /// The header names an algorithm sessionkit does not accept (`none` included) or asks for
    /// extensions it does not understand (`crit`).
    #[error("unsupported access token algorithm")]
    UnsupportedAlgorithm,
    /// The header's `kid` names no key of the key set (or is missing).
    #[error("unknown access token key")]
    UnknownKey,
    /// The header's `alg` is not the algorithm the named key is bound to.
    #[error("access token algorithm does not match its key")]
    AlgorithmMismatch,
    /// The signature does not verify.
    #[error("invalid access token signature")]
    BadSignature,
    /// A required claim (`sub`, `sid`, `exp`) is missing or of the wrong type, or `typ` is not
    /// `JWT`.
    #[error("invalid access token claims")]
    InvalidClaims,
    /// `exp` is in the past, beyond the leeway.
    #[error("access token expired")]
    Expired,
    /// `nbf` is in the future, beyond the leeway.
    #[error("access token not yet valid")]
    NotYetValid,
    /// `iss` is missing or not the configured issuer.
    #[error("wrong access token issuer")]
    WrongIssuer,
    /// `aud` is missing or does not contain the configured audience.
    #[error("wrong access token audience")]
    WrongAudience,
}

/// A signed access token (a JWT). `Debug` and `Display` are redacted; it is a bearer credential.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken {
    encoded: String,
}

impl AccessToken {
    /// The compact JWS to send to the client.
    #[must_use]
    pub fn expose_secret(&self) -> &str {
        &self.encoded
    }
}

impl Drop for AccessToken {
    fn drop(&mut self) {
        self.encoded.zeroize();
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken(<redacted>)")
    }
}

impl fmt::Display for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The claims of a verified access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessClaims {
    /// `sub`: the user.
    pub user: UserId,
    /// `sid`: the session the token belongs to.
    pub session_id: SessionId,
    /// `jti`: the token's unique id (empty if the token has none).
    pub token_id: Arc<str>,
    /// `iat`, seconds since the Unix epoch.
    pub issued_at: i64,
    /// `exp`, seconds since the Unix epoch.
    pub expires_at: i64,
}

impl AccessClaims {
    /// Seconds from `now` until the token expires (zero if it already has).
    #[must_use]
    pub fn expires_in(&self, now: Timestamp) -> u64 {
        u64::try_from(self.expires_at.saturating_sub(now.unix_nanos().div_euclid(1_000_000_000))).unwrap_or(0)
    }
}

/// What access tokens carry and how strictly they are checked; part of
/// [`SessionConfig`](crate::SessionConfig).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AccessPolicy {
    pub(crate) ttl_secs: i64,
    pub(crate) leeway_secs: i64,
    pub(crate) issuer: Option<String>,
    pub(crate) audience: Option<String>,
}

#[derive(Serialize)]
struct ClaimsOut<'a> {
    sub: &'a str,
    sid: &'a SessionId,
    jti: &'a str,
    iat: i64,
    exp: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<&'a str>,
}

#[derive(Deserialize)]
struct HeaderIn<'a> {
    #[serde(borrow)]
    alg: Cow<'a, str>,
    #[serde(borrow, default)]
    typ: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    kid: Option<Cow<'a, str>>,
    #[serde(default)]
    crit: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
struct ClaimsIn<'a> {
    #[serde(borrow)]
    sub: Cow<'a, str>,
    #[serde(borrow)]
    sid: Cow<'a, str>,
    #[serde(borrow, default)]
    jti: Option<Cow<'a, str>>,
    #[serde(default)]
    iat: Option<i64>,
    exp: i64,
    #[serde(default)]
    nbf: Option<i64>,
    #[serde(borrow, default)]
    iss: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    aud: Option<Audience<'a>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience<'a> {
    One(#[serde(borrow)] Cow<'a, str>),
    Many(#[serde(borrow)] Vec<Cow<'a, str>>),
}

impl Audience<'_> {
    fn contains(&self, aud: &str) -> bool {
        match self {
            Self::One(a) => a == aud,
            Self::Many(all) => all.iter().any(|a| a == aud),
        }
    }
}

fn unix_secs(t: Timestamp) -> i64 {
    t.unix_nanos().div_euclid(1_000_000_000)
}

/// Signs an access token for `session_id` of `user`, issued at `now` for the policy's TTL.
///
/// Deterministic: the token id is derived from `refresh_digest`, the digest of the refresh
/// token issued alongside, and both signature algorithms are deterministic, so re-issuing with
/// the same inputs yields the same token. That is how a refresh replayed within the grace
/// window returns the very same pair without the store holding the access token.
pub(crate) fn issue(
    keys: &KeySet,
    policy: &AccessPolicy,
    user: &UserId,
    session_id: &SessionId,
    now: Timestamp,
    refresh_digest: &TokenDigest,
) -> (AccessToken, AccessClaims) {
    let mut seed = Vec::with_capacity(48);
    seed.extend_from_slice(b"sessionkit/jti/v1");
    seed.extend_from_slice(refresh_digest.as_bytes());
    let jti = URL_SAFE_NO_PAD.encode(&ring::digest::digest(&ring::digest::SHA256, &seed).as_ref()[..16]);
    let iat = unix_secs(now);
    let exp = iat.saturating_add(policy.ttl_secs);
    let claims = ClaimsOut {
        sub: user.as_str(),
        sid: session_id,
        jti: &jti,
        iat,
        exp,
        iss: policy.issuer.as_deref(),
        aud: policy.audience.as_deref(),
    };
    let key = keys.active();
    // Serialising a struct of strings and integers cannot fail.
    let payload = serde_json::to_vec(&claims).unwrap_or_default();
    let mut encoded = String::with_capacity(key.encoded_header().len() + payload.len() * 4 / 3 + 90);
    encoded.push_str(key.encoded_header());
    encoded.push('.');
    URL_SAFE_NO_PAD.encode_string(&payload, &mut encoded);
    // The active key of a KeySet can always sign (checked when the set was built).
    let signature = key.sign(encoded.as_bytes()).unwrap_or_default();
    encoded.push('.');
    URL_SAFE_NO_PAD.encode_string(&signature, &mut encoded);
    let claims = AccessClaims {
        user: user.clone(),
        session_id: *session_id,
        token_id: jti.into(),
        issued_at: iat,
        expires_at: exp,
    };
    (AccessToken { encoded }, claims)
}

/// Decodes a base64url part into `small` when it fits, else into `large`.
fn decode_part<'b>(b64: &str, small: &'b mut [u8; 512], large: &'b mut Vec<u8>) -> Result<&'b [u8], AccessTokenError> {
    if b64.len() / 4 * 3 + 3 <= small.len() {
        let n = URL_SAFE_NO_PAD.decode_slice(b64, &mut small[..]).map_err(|_| AccessTokenError::Malformed)?;
        Ok(&small[..n])
    } else {
        URL_SAFE_NO_PAD.decode_vec(b64, large).map_err(|_| AccessTokenError::Malformed)?;
        Ok(large.as_slice())
    }
}

/// Verifies a presented access token's structure, key, algorithm, signature and claims (not
/// the denylist: that is the manager's, as it needs the store). Answers the claims and the
/// `nbf` claim, if any.
pub(crate) fn verify(
    keys: &KeySet,
    policy: &AccessPolicy,
    token: &str,
    now: Timestamp,
) -> Result<(AccessClaims, Option<i64>), AccessTokenError> {
    if token.len() > MAX_ACCESS_TOKEN_LEN {
        return Err(AccessTokenError::Malformed);
    }
    let mut parts = token.splitn(4, '.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AccessTokenError::Malformed);
    };
    let mut small = [0u8; 512];
    let mut large = Vec::new();
    // Tokens this key set issued carry exactly a key's own header: recognise it without
    // decoding. Any other header is decoded and checked field by field.
    let key = match keys.by_encoded_header(header_b64) {
        Some(key) => key,
        None => {
            let decoded = decode_part(header_b64, &mut small, &mut large)?;
            let header: HeaderIn<'_> = serde_json::from_slice(decoded).map_err(|_| AccessTokenError::Malformed)?;
            let alg = match &*header.alg {
                "HS256" => Algorithm::Hs256,
                "EdDSA" => Algorithm::EdDsa,
                _ => return Err(AccessTokenError::UnsupportedAlgorithm),
            };
            if header.crit.is_some() {
                return Err(AccessTokenError::UnsupportedAlgorithm);
            }
            let key = header.kid.as_deref().and_then(|kid| keys.get(kid)).ok_or(AccessTokenError::UnknownKey)?;
            if key.algorithm() != alg {
                return Err(AccessTokenError::AlgorithmMismatch);
            }
            if header.typ.as_deref().is_some_and(|t| !t.eq_ignore_ascii_case("JWT")) {
                return Err(AccessTokenError::InvalidClaims);
            }
            key
        }
    };
    let mut signature = [0u8; 66];
    let sig_len =
        URL_SAFE_NO_PAD.decode_slice(signature_b64, &mut signature).map_err(|_| AccessTokenError::BadSignature)?;
    let signing_input = &token.as_bytes()[..header_b64.len() + 1 + payload_b64.len()];
    if !key.verify(signing_input, &signature[..sig_len]) {
        return Err(AccessTokenError::BadSignature);
    }
    // Only now, with the signature verified, is the payload read.
    let payload = decode_part(payload_b64, &mut small, &mut large)?;
    let claims: ClaimsIn<'_> = serde_json::from_slice(payload).map_err(|_| AccessTokenError::InvalidClaims)?;
    if let Some(issuer) = &policy.issuer
        && claims.iss.as_deref() != Some(issuer.as_str())
    {
        return Err(AccessTokenError::WrongIssuer);
    }
    if let Some(audience) = &policy.audience
        && !claims.aud.as_ref().is_some_and(|a| a.contains(audience))
    {
        return Err(AccessTokenError::WrongAudience);
    }
    let session_id = claims.sid.parse::<SessionId>().map_err(|_| AccessTokenError::InvalidClaims)?;
    let user = UserId::new(&*claims.sub).map_err(|_| AccessTokenError::InvalidClaims)?;
    let verified = AccessClaims {
        user,
        session_id,
        token_id: claims.jti.as_deref().map_or_else(|| Arc::from(""), Arc::from),
        issued_at: claims.iat.unwrap_or(0),
        expires_at: claims.exp,
    };
    check_times(&verified, claims.nbf, policy, now)?;
    Ok((verified, claims.nbf))
}

/// Checks `exp` and `nbf` at `now`, with the policy's leeway.
pub(crate) fn check_times(
    claims: &AccessClaims,
    nbf: Option<i64>,
    policy: &AccessPolicy,
    now: Timestamp,
) -> Result<(), AccessTokenError> {
    let now = unix_secs(now);
    if now >= claims.expires_at.saturating_add(policy.leeway_secs) {
        return Err(AccessTokenError::Expired);
    }
    if nbf.is_some_and(|nbf| nbf > now.saturating_add(policy.leeway_secs)) {
        return Err(AccessTokenError::NotYetValid);
    }
    Ok(())
}

/// A bounded cache of verified access tokens, so that a token presented again (an API client
/// reuses its access token for every request until it expires) skips decoding, signature and
/// parsing. Only tokens that passed full verification are cached; a hit compares the whole
/// token in constant time, re-checks `exp`/`nbf` against the current time, and the caller still
/// checks the denylist, so revocation stays immediate. Replacing the key set empties it.
///
/// A verification that began with the old key set and ends after the replacement must not
/// refill it: the cache has an epoch, read before the key set is loaded and advanced before the
/// cache is emptied, and an insert made under a stale epoch is dropped (the check runs under
/// the shard's write lock, which the emptying also takes).
pub(crate) struct VerifiedCache {
    shards: Box<[parking_lot::RwLock<std::collections::HashMap<u64, Cached, RandomKeys>>]>,
    per_shard: usize,
    epoch: std::sync::atomic::AtomicU64,
}

struct Cached {
    token: Box<str>,
    claims: AccessClaims,
    nbf: Option<i64>,
}

const CACHE_SHARDS: usize = 16;

impl VerifiedCache {
    pub(crate) fn new(capacity: usize) -> Self {
        let per_shard = capacity.div_ceil(CACHE_SHARDS);
        let shards = (0..if capacity == 0 { 0 } else { CACHE_SHARDS })
            .map(|_| parking_lot::RwLock::new(std::collections::HashMap::with_hasher(RandomKeys)))
            .collect();
        Self { shards, per_shard, epoch: std::sync::atomic::AtomicU64::new(0) }
    }

    /// The current epoch: read it before loading the key set a verification will use, and
    /// pass it to [`insert`](Self::insert).
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// A key from the token's signature part, which is high-entropy for genuine tokens. A
    /// crafted collision only costs the crafter a cache miss: a hit compares the whole token.
    fn key(token: &str) -> u64 {
        let tail = &token.as_bytes()[token.len().saturating_sub(32)..];
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for chunk in tail.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            h = (h ^ u64::from_le_bytes(word)).wrapping_mul(0x0000_0100_0000_01b3).rotate_left(29);
        }
        h
    }

    fn shard(&self, key: u64) -> Option<&parking_lot::RwLock<std::collections::HashMap<u64, Cached, RandomKeys>>> {
        // Truncation intended: the top bits choose the shard.
        self.shards.get((key >> 60) as usize % CACHE_SHARDS.max(1))
    }

    /// The verified claims of `token`, if it is cached and still within its times.
    pub(crate) fn get(
        &self,
        token: &str,
        policy: &AccessPolicy,
        now: Timestamp,
    ) -> Option<Result<AccessClaims, AccessTokenError>> {
        let key = Self::key(token);
        let shard = self.shard(key)?.read();
        let cached = shard.get(&key)?;
        if !crate::token::ct_eq(cached.token.as_bytes(), token.as_bytes()) {
            return None;
        }
        Some(check_times(&cached.claims, cached.nbf, policy, now).map(|()| cached.claims.clone()))
    }

    /// Remembers a token that passed full verification with the key set loaded after
    /// [`epoch`](Self::epoch) answered `epoch`; nothing if the key set has changed since.
    pub(crate) fn insert(&self, token: &str, claims: &AccessClaims, nbf: Option<i64>, now: Timestamp, epoch: u64) {
        let key = Self::key(token);
        let Some(shard) = self.shard(key) else { return };
        let mut shard = shard.write();
        if self.epoch() != epoch {
            return;
        }
        if shard.len() >= self.per_shard {
            let now = unix_secs(now);
            shard.retain(|_, c| c.claims.expires_at > now);
            if shard.len() >= self.per_shard
                && let Some(&victim) = shard.keys().next()
            {
                shard.remove(&victim);
            }
        }
        shard.insert(key, Cached { token: token.into(), claims: claims.clone(), nbf });
    }

    /// Forgets everything (the key set changed), and refuses inserts of verifications that
    /// began before.
    pub(crate) fn clear(&self) {
        self.epoch.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        for shard in self.shards.iter() {
            shard.write().clear();
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards.iter().map(|s| s.read().len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> AccessPolicy {
        AccessPolicy { ttl_secs: 900, leeway_secs: 0, issuer: None, audience: None }
    }

    fn claims(exp: i64) -> AccessClaims {
        AccessClaims {
            user: UserId::new("alice").unwrap(),
            session_id: SessionId::from_bytes([1; 16]),
            token_id: Arc::from("j"),
            issued_at: 0,
            expires_at: exp,
        }
    }

    const NOW: Timestamp = Timestamp::from_unix_nanos(1_000 * 1_000_000_000);

    #[test]
    fn a_hit_needs_the_whole_token_and_rechecks_expiry() {
        let cache = VerifiedCache::new(64);
        cache.insert("header.payload.signature-one", &claims(2_000), None, NOW, cache.epoch());
        assert!(matches!(cache.get("header.payload.signature-one", &policy(), NOW), Some(Ok(_))));
        assert!(cache.get("header.PAYLOAD.signature-one", &policy(), NOW).is_none(), "same key, other token");
        let later = Timestamp::from_unix_nanos(2_000 * 1_000_000_000);
        assert_eq!(cache.get("header.payload.signature-one", &policy(), later), Some(Err(AccessTokenError::Expired)));
        cache.clear();
        assert!(cache.get("header.payload.signature-one", &policy(), NOW).is_none());
    }

    #[test]
    fn a_verification_begun_before_a_key_change_is_not_cached_after_it() {
        let cache = VerifiedCache::new(64);
        let before = cache.epoch();
        cache.clear(); // set_keys, while the verification ran with the old set
        cache.insert("h.p.signed-with-the-old-key", &claims(2_000), None, NOW, before);
        assert!(cache.get("h.p.signed-with-the-old-key", &policy(), NOW).is_none());
        cache.insert("h.p.signed-with-the-new-key", &claims(2_000), None, NOW, cache.epoch());
        assert!(cache.get("h.p.signed-with-the-new-key", &policy(), NOW).is_some());
    }

    #[test]
    fn the_cache_stays_bounded() {
        let cache = VerifiedCache::new(32);
        for i in 0..1_000 {
            cache.insert(&format!("h.p.signature-{i:08}"), &claims(2_000), None, NOW, cache.epoch());
        }
        assert!(cache.len() <= 32 + CACHE_SHARDS, "{}", cache.len());
        let disabled = VerifiedCache::new(0);
        disabled.insert("h.p.s", &claims(2_000), None, NOW, disabled.epoch());
        assert!(disabled.get("h.p.s", &policy(), NOW).is_none());
    }
}
