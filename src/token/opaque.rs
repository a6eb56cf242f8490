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

const RAW_LEN: usize = 32;

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
            pub(crate) fn generate() -> Result<(Self, TokenDigest), RandomError> {
                let (encoded, digest) = generate_encoded()?;
                Ok((Self { encoded }, digest))
            }

            /// Parses a token presented by a client, checking its length before anything else
            /// and its alphabet strictly.
            ///
            /// # Errors
            /// [`MalformedToken`] for anything but 43 canonical base64url characters.
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

fn generate_encoded() -> Result<(String, TokenDigest), RandomError> {
    let mut raw = [0u8; RAW_LEN];
    rand::rngs::SysRng.try_fill_bytes(&mut raw).map_err(|e| RandomError(Some(e)))?;
    let encoded = URL_SAFE_NO_PAD.encode(raw);
    let digest = TokenDigest::of_raw(&raw);
    raw.zeroize();
    Ok((encoded, digest))
}

/// A presented token's raw 32 bytes, wiped on drop.
pub(crate) struct RawToken(pub(crate) [u8; RAW_LEN]);

impl Drop for RawToken {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl RawToken {
    /// Decodes a presented token strictly (length first).
    pub(crate) fn decode(token: &str) -> Result<Self, MalformedToken> {
        if token.len() != TOKEN_LEN {
            return Err(MalformedToken);
        }
        let mut buf = [0u8; RAW_LEN + 1];
        let n = URL_SAFE_NO_PAD.decode_slice(token, &mut buf);
        let mut raw = Self([0u8; RAW_LEN]);
        raw.0.copy_from_slice(&buf[..RAW_LEN]);
        buf.zeroize();
        match n {
            Ok(RAW_LEN) => Ok(raw),
            _ => Err(MalformedToken),
        }
    }

    pub(crate) fn digest(&self) -> TokenDigest {
        TokenDigest::of_raw(&self.0)
    }
}

/// The SHA-256 digest of a token: how stores identify a session without holding its secret.
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
    /// [`MalformedToken`] for anything but 43 canonical base64url characters. The length is
    /// checked first, so oversized input costs nothing.
    #[inline]
    pub fn of_token(token: &str) -> Result<Self, MalformedToken> {
        if token.len() != TOKEN_LEN {
            return Err(MalformedToken);
        }
        let mut raw = [0u8; RAW_LEN + 1];
        let n = URL_SAFE_NO_PAD.decode_slice(token, &mut raw).map_err(|_| MalformedToken)?;
        if n != RAW_LEN {
            return Err(MalformedToken);
        }
        let d = Self::of_raw(&raw[..RAW_LEN]);
        raw.zeroize();
        Ok(d)
    }

    fn of_raw(raw: &[u8]) -> Self {
        let mut out = [0u8; 32];
        out.copy_from_slice(digest(&SHA256, raw).as_ref());
        Self(out)
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
        let [a, b, c, d, e, f, g, h, ..] = self.0;
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
    fn digest_base64_round_trips() {
        let (_, digest) = SessionToken::generate().unwrap();
        assert_eq!(TokenDigest::from_base64(&digest.to_base64()), Ok(digest));
        let json = serde_json::to_string(&digest).unwrap();
        assert_eq!(serde_json::from_str::<TokenDigest>(&json).unwrap(), digest);
        assert!(TokenDigest::from_base64("short").is_err());
    }
}
