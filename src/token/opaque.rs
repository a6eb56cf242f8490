//! Opaque 256-bit tokens and their SHA-256 digests.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::TryRng as _;
use ring::digest::{SHA256, digest};
use zeroize::Zeroize as _;

use crate::error::RandomError;

/// Length of an encoded token: 32 bytes as unpadded base64url.
pub const TOKEN_LEN: usize = 43;

/// Length of an encoded token that carries a [`Route`]: the route's two characters, then the
/// [`TOKEN_LEN`] characters of the 32 secret bytes.
pub const ROUTED_TOKEN_LEN: usize = TOKEN_LEN + 2;

const RAW_LEN: usize = 32;

/// The base64url alphabet, by value.
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// [`ALPHABET`] inverted: a character's value, or [`INVALID`]. (A table, so that the hot path
/// reads the route in two loads.)
const DECODE: [u8; 256] = {
    let mut table = [INVALID; 256];
    let mut i = 0;
    while i < 64 {
        table[ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    table
};
const INVALID: u8 = 0xff;

/// A token's or a session id's non-secret routing part: 12 bits derived from the user id
/// ([`Route::of_user`]), so that a store sharded by user (the Redis store on a Cluster) finds
/// a token's shard from the token alone.
///
/// The manager issues tokens of [`ROUTED_TOKEN_LEN`] characters — the route as two base64url
/// characters, then the 256 secret bits — and session ids whose first 12 bits are the route. Every digest of a routed token has the route as its first 12 bits
/// ([`TokenDigest::route`]). Routes carry no secret: they tell only which of 4,096 groups a
/// user hashes to, and the token stays 256 bits from the CSPRNG.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Route(u16);

impl Route {
    /// How many routes there are: 4,096 (12 bits).
    pub const COUNT: u16 = 4096;

    /// The route of `user`: the first 12 bits of the SHA-256 of its id.
    #[must_use]
    pub fn of_user(user: &crate::UserId) -> Self {
        let d = digest(&SHA256, user.as_str().as_bytes());
        let b = d.as_ref();
        Self(u16::from_be_bytes([b[0], b[1]]) >> 4)
    }

    /// The route with this number, if it is below [`COUNT`](Self::COUNT).
    #[must_use]
    pub const fn new(n: u16) -> Option<Self> {
        if n < Self::COUNT { Some(Self(n)) } else { None }
    }

    /// The route's number, below [`COUNT`](Self::COUNT).
    #[must_use]
    pub const fn get(self) -> u16 {
        self.0
    }

    /// The route as the first 12 bits of `bytes` (the rest of the second byte kept).
    pub(crate) fn stamp(self, bytes: &mut [u8]) {
        if let [a, b, ..] = bytes {
            *a = (self.0 >> 4) as u8;
            *b = ((self.0 as u8 & 0x0f) << 4) | (*b & 0x0f);
        }
    }

    /// The first 12 bits of `bytes`.
    pub(crate) fn read(bytes: &[u8]) -> Self {
        match bytes {
            [a, b, ..] => Self((u16::from(*a) << 4) | u16::from(*b >> 4)),
            _ => Self(0),
        }
    }

    fn encode(self) -> [u8; 2] {
        [ALPHABET[usize::from(self.0 >> 6)], ALPHABET[usize::from(self.0 & 63)]]
    }

    fn decode(chars: [u8; 2]) -> Option<Self> {
        let value = |c: u8| match DECODE[usize::from(c)] {
            INVALID => None,
            v => Some(u16::from(v)),
        };
        Some(Self((value(chars[0])? << 6) | value(chars[1])?))
    }
}

/// Splits a presented token into its route (routed tokens only) and its 43 secret characters,
/// by length first.
fn split_route(token: &str) -> Result<(Option<Route>, &str), MalformedToken> {
    match token.len() {
        TOKEN_LEN => Ok((None, token)),
        ROUTED_TOKEN_LEN => {
            let bytes = token.as_bytes();
            let route = Route::decode([bytes[0], bytes[1]]).ok_or(MalformedToken)?;
            // Both route characters are ASCII, so index 2 is a character boundary.
            Ok((Some(route), token.get(2..).ok_or(MalformedToken)?))
        }
        _ => Err(MalformedToken),
    }
}

/// The presented string is not a well-formed token: not exactly [`TOKEN_LEN`] characters of the
/// base64url alphabet encoding 32 bytes canonically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed token")]
pub struct MalformedToken;

macro_rules! opaque_token {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        ///
        /// Send it to the client with [`expose_secret`](Self::expose_secret) and nowhere else.
        /// `Debug` and `Display` are redacted, so it cannot leak through logs by accident, its
        /// bytes are wiped from memory when it is dropped, and equality is constant time.
        #[derive(Clone)]
        pub struct $name {
            encoded: String,
        }

        impl $name {
            /// Draws a new token from the operating system's CSPRNG and returns it with its digest.
            #[cfg(any(test, feature = "test-util"))]
            #[allow(dead_code, reason = "each token type's tests use it, not every build")]
            pub(crate) fn generate() -> Result<(Self, TokenDigest), RandomError> {
                Self::generate_routed(None)
            }

            /// [`generate`](Self::generate), carrying `route` when there is one.
            pub(crate) fn generate_routed(route: Option<Route>) -> Result<(Self, TokenDigest), RandomError> {
                let (encoded, digest) = generate_encoded(route)?;
                Ok((Self { encoded }, digest))
            }

            /// Parses a token presented by a client, checking its length before anything else
            /// and its alphabet strictly.
            ///
            /// # Errors
            /// [`MalformedToken`] for anything but 43 canonical base64url characters, or 45 of
            /// a routed token.
            pub fn parse(s: &str) -> Result<Self, MalformedToken> {
                TokenDigest::of_token(s)?;
                Ok(Self { encoded: s.to_owned() })
            }

            /// The token as the client must present it. Handle with care: this is the secret.
            #[must_use]
            pub fn expose_secret(&self) -> &str {
                &self.encoded
            }

            /// The digest under which stores keep this token.
            #[must_use]
            pub fn digest(&self) -> TokenDigest {
                // The encoded form was produced by `generate` or checked by `parse`.
                TokenDigest::of_token(&self.encoded).unwrap_or(TokenDigest([0; 32]))
            }
        }

        impl Drop for $name {
            fn drop(&mut self) {
                self.encoded.zeroize();
            }
        }

        impl PartialEq for $name {
            /// Constant-time comparison.
            fn eq(&self, other: &Self) -> bool {
                super::ct_eq(self.encoded.as_bytes(), other.encoded.as_bytes())
            }
        }

        impl Eq for $name {}

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "(<redacted>)"))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("<redacted>")
            }
        }
    };
}

opaque_token! {
    /// A session token: the bearer secret that proves possession of a session.
    SessionToken
}

opaque_token! {
    /// A refresh token: a single-use secret that buys a new access token (and a new refresh
    /// token) for its session. See [`SessionManager::refresh`](crate::SessionManager::refresh).
    RefreshToken
}

fn generate_encoded(route: Option<Route>) -> Result<(String, TokenDigest), RandomError> {
    let mut raw = [0u8; RAW_LEN];
    rand::rngs::SysRng.try_fill_bytes(&mut raw).map_err(|e| RandomError(Some(e)))?;
    let mut encoded = String::with_capacity(ROUTED_TOKEN_LEN);
    if let Some(route) = route {
        encoded.extend(route.encode().map(char::from));
    }
    URL_SAFE_NO_PAD.encode_string(raw, &mut encoded);
    let digest = TokenDigest::of_raw(&raw, route);
    raw.zeroize();
    Ok((encoded, digest))
}

/// A presented token's raw 32 secret bytes (wiped on drop) and its route, if it has one.
pub(crate) struct RawToken(pub(crate) [u8; RAW_LEN], Option<Route>);

impl Drop for RawToken {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl RawToken {
    /// Decodes a presented token strictly (length first).
    pub(crate) fn decode(token: &str) -> Result<Self, MalformedToken> {
        let (route, token) = split_route(token)?;
        let mut buf = [0u8; RAW_LEN + 1];
        let n = URL_SAFE_NO_PAD.decode_slice(token, &mut buf);
        let mut raw = Self([0u8; RAW_LEN], route);
        raw.0.copy_from_slice(&buf[..RAW_LEN]);
        buf.zeroize();
        match n {
            Ok(RAW_LEN) => Ok(raw),
            _ => Err(MalformedToken),
        }
    }

    pub(crate) fn digest(&self) -> TokenDigest {
        TokenDigest::of_raw(&self.0, self.1)
    }
}

/// The SHA-256 digest of a token: how stores identify a session without holding its secret.
///
/// For a routed token (see [`Route`]) the first 12 bits of the digest are the token's route
/// instead of hash bits; 244 bits of SHA-256 remain.
///
/// Equality is constant time. `Debug` shows only the first four bytes, in hex; the digest is not
/// a secret (it cannot be turned back into the token), but there is no reason to print it whole.
/// It serialises as 43 characters of unpadded base64url.
#[derive(Clone, Copy)]
pub struct TokenDigest([u8; 32]);

impl TokenDigest {
    /// Parses a presented token and digests it, without allocating.
    ///
    /// # Errors
    /// [`MalformedToken`] for anything but 43 canonical base64url characters (or 45, for a
    /// routed token: two route characters first). The length is checked first, so oversized
    /// input costs nothing.
    #[inline]
    pub fn of_token(token: &str) -> Result<Self, MalformedToken> {
        let (route, token) = split_route(token)?;
        let mut raw = [0u8; RAW_LEN + 1];
        let n = URL_SAFE_NO_PAD.decode_slice(token, &mut raw).map_err(|_| MalformedToken)?;
        if n != RAW_LEN {
            return Err(MalformedToken);
        }
        let d = Self::of_raw(&raw[..RAW_LEN], route);
        raw.zeroize();
        Ok(d)
    }

    fn of_raw(raw: &[u8], route: Option<Route>) -> Self {
        let mut out = [0u8; 32];
        out.copy_from_slice(digest(&SHA256, raw).as_ref());
        if let Some(route) = route {
            route.stamp(&mut out);
        }
        Self(out)
    }

    /// The digest's first 12 bits as a [`Route`]: the route of the token it digests, for a
    /// routed token (for a token without a route, hash bits that no store routes by).
    #[must_use]
    pub fn route(&self) -> Route {
        Route::read(&self.0)
    }

    /// A digest from its 32 bytes, as read back from a store.
    #[must_use]
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The digest's bytes.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// 64 bits of the digest, for hash tables: the digest is uniformly random already, so
    /// hashing it again would be wasted work.
    #[inline]
    #[must_use]
    pub fn hash_bits(&self) -> u64 {
        // Not the first bytes: they hold the route, which all of a user's tokens share.
        let [_, _, _, _, _, _, _, _, a, b, c, d, e, f, g, h, ..] = self.0;
        u64::from_le_bytes([a, b, c, d, e, f, g, h])
    }

    /// Another 64 bits of the digest, independent of [`hash_bits`](Self::hash_bits), for
    /// choosing a shard.
    #[inline]
    #[must_use]
    pub fn shard_bits(&self) -> u64 {
        let [.., a, b, c, d, e, f, g, h] = self.0;
        u64::from_le_bytes([a, b, c, d, e, f, g, h])
    }

    /// The digest as 43 characters of unpadded base64url.
    #[must_use]
    pub fn to_base64(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    /// Parses the output of [`to_base64`](Self::to_base64).
    ///
    /// # Errors
    /// [`MalformedToken`] unless `s` is 43 canonical base64url characters.
    pub fn from_base64(s: &str) -> Result<Self, MalformedToken> {
        if s.len() != TOKEN_LEN {
            return Err(MalformedToken);
        }
        let mut raw = [0u8; RAW_LEN + 1];
        match URL_SAFE_NO_PAD.decode_slice(s, &mut raw) {
            Ok(RAW_LEN) => {
                let mut out = [0u8; 32];
                out.copy_from_slice(&raw[..RAW_LEN]);
                Ok(Self(out))
            }
            _ => Err(MalformedToken),
        }
    }
}

impl PartialEq for TokenDigest {
    /// Constant-time comparison.
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        super::ct_eq(&self.0, &other.0)
    }
}

impl Eq for TokenDigest {}

impl std::hash::Hash for TokenDigest {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash_bits());
    }
}

impl fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenDigest({:02x}{:02x}{:02x}{:02x}…)", self.0[0], self.0[1], self.0[2], self.0[3])
    }
}

impl serde::Serialize for TokenDigest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_base64())
    }
}

impl<'de> serde::Deserialize<'de> for TokenDigest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::from_base64(&s).map_err(|_| serde::de::Error::custom("invalid token digest"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_parse_and_digest_consistently() {
        let (token, digest) = SessionToken::generate().unwrap();
        assert_eq!(token.expose_secret().len(), TOKEN_LEN);
        assert_eq!(TokenDigest::of_token(token.expose_secret()), Ok(digest));
        assert_eq!(token.digest(), digest);
        assert_eq!(SessionToken::parse(token.expose_secret()).unwrap(), token);
    }

    #[test]
    fn tokens_are_distinct() {
        let a = SessionToken::generate().unwrap().0;
        let b = SessionToken::generate().unwrap().0;
        assert_ne!(a, b);
    }

    #[test]
    fn the_digest_is_sha256_of_the_raw_bytes() {
        // 32 zero bytes encode as 43 'A's; SHA-256 of 32 zero bytes is well known.
        let d = TokenDigest::of_token(&"A".repeat(43)).unwrap();
        assert_eq!(d.as_bytes()[..4], [0x66, 0x68, 0x7a, 0xad]);
    }

    #[test]
    fn malformed_tokens_are_rejected() {
        let (token, _) = SessionToken::generate().unwrap();
        let good = token.expose_secret();
        let cases = [
            String::new(),
            "A".repeat(1 << 20),
            good[..42].to_owned(),
            format!("{good}A"),
            format!("{}+", &good[..42]),
            format!("{}/", &good[..42]),
            format!("{}=", &good[..42]),
            format!("{}é", &good[..41]),
            format!("{} ", &good[..42]),
            // Canonical encodings only: the last character must leave its two spare bits zero.
            format!("{}B", "A".repeat(42)),
        ];
        for bad in &cases {
            assert_eq!(TokenDigest::of_token(bad), Err(MalformedToken), "{:?}", &bad[..bad.len().min(50)]);
            assert!(SessionToken::parse(bad).is_err());
        }
    }

    #[test]
    fn secrets_are_redacted() {
        let (token, digest) = SessionToken::generate().unwrap();
        let secret = token.expose_secret().to_owned();
        for shown in [format!("{token:?}"), format!("{token}"), format!("{digest:?}")] {
            assert!(!shown.contains(&secret), "{shown}");
        }
        assert!(!format!("{digest:?}").contains(&digest.to_base64()));
    }

    #[test]
    fn routed_tokens_carry_their_route_into_the_digest() {
        let user = crate::UserId::new("alice").unwrap();
        let route = Route::of_user(&user);
        let (token, digest) = SessionToken::generate_routed(Some(route)).unwrap();
        let secret = token.expose_secret();
        assert_eq!(secret.len(), ROUTED_TOKEN_LEN);
        assert_eq!(digest.route(), route);
        assert_eq!(TokenDigest::of_token(secret), Ok(digest));
        assert_eq!(SessionToken::parse(secret).unwrap().digest(), digest);
        assert_eq!(RawToken::decode(secret).unwrap().digest(), digest);
        // The route is bound into the digest: the same secret under another route, or with no
        // route at all, is another token.
        let other = Route::new((route.get() + 1) % Route::COUNT).unwrap();
        let moved = format!("{}{}", String::from_utf8(other.encode().to_vec()).unwrap(), &secret[2..]);
        assert_ne!(TokenDigest::of_token(&moved).unwrap(), digest);
        assert_ne!(TokenDigest::of_token(&secret[2..]).unwrap(), digest);
        // Everything after the route is the digest of the secret bytes.
        assert_eq!(digest.as_bytes()[2..], TokenDigest::of_token(&secret[2..]).unwrap().as_bytes()[2..]);
        assert_eq!(digest.as_bytes()[1] & 0x0f, TokenDigest::of_token(&secret[2..]).unwrap().as_bytes()[1] & 0x0f);
    }

    #[test]
    fn every_route_round_trips_through_tokens_and_ids() {
        for n in [0, 1, 63, 64, 2047, 4095] {
            let route = Route::new(n).unwrap();
            assert_eq!(Route::decode(route.encode()), Some(route));
            let (_, digest) = RefreshToken::generate_routed(Some(route)).unwrap();
            assert_eq!(digest.route(), route);
            assert_eq!(crate::SessionId::generate_routed(Some(route)).unwrap().route(), route);
        }
        assert_eq!(Route::new(4096), None);
    }

    #[test]
    fn malformed_routed_tokens_are_rejected_without_panicking() {
        let (token, _) = SessionToken::generate_routed(Some(Route::new(7).unwrap())).unwrap();
        let good = token.expose_secret();
        let cases = [
            format!("=={}", &good[2..]),
            format!("A.{}", &good[2..]),
            // Multi-byte characters where the route is: 45 bytes, but not a token.
            format!("é{}", &good[2..]),
            format!("{}é", &good[..43]),
            format!("{good}A"),
        ];
        for bad in &cases {
            assert_eq!(TokenDigest::of_token(bad), Err(MalformedToken), "{bad:?}");
            assert!(RawToken::decode(bad).is_err());
        }
    }

    #[test]
    fn digest_base64_round_trips() {
        let (_, digest) = SessionToken::generate().unwrap();
        assert_eq!(TokenDigest::from_base64(&digest.to_base64()), Ok(digest));
        let json = serde_json::to_string(&digest).unwrap();
        assert_eq!(serde_json::from_str::<TokenDigest>(&json).unwrap(), digest);
        assert!(TokenDigest::from_base64("short").is_err());
    }
}
