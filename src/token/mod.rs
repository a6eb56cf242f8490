//! Tokens: the secrets clients hold, and the digests stores keep.
//!
//! A [`SessionToken`] is 256 bits from the operating system's CSPRNG, sent to the client as 43
//! characters of unpadded base64url. The server never stores it: stores key sessions by its
//! [`TokenDigest`], the SHA-256 of the token's bytes, so a copy of a store's contents cannot be
//! replayed as a login. Because the token has full entropy, a plain (unsalted, fast) hash is the
//! right tool here, unlike for passwords.

pub mod access;
pub mod keys;
mod opaque;
pub(crate) mod refresh;

pub use access::{AccessClaims, AccessToken, AccessTokenError};
pub(crate) use opaque::RawToken;
pub use opaque::{MalformedToken, RefreshToken, SessionToken, TOKEN_LEN, TokenDigest};
