//! Tokens: the secrets clients hold, and the digests stores keep.
//!
//! A [`SessionToken`] is 256 bits from the operating system's CSPRNG, sent to the client as 43
//! characters of unpadded base64url. The server never stores it: stores key sessions by its
//! [`TokenDigest`], the SHA-256 of the token's bytes, so a copy of a store's contents cannot be
//! replayed as a login. Because the token has full entropy, a plain (unsalted, fast) hash is the
//! right tool here, unlike for passwords.
//!
//! The manager issues *routed* tokens: two base64url characters of [`Route`] — 12 bits derived
//! from the user id, not secret — then the 43 characters of the secret, 45 in all, so that a
//! store sharded by user (the Redis store) finds a token's shard from the token alone. Every
//! parser also accepts the 43-character tokens of versions before routing.

pub mod access;
pub mod keys;
mod opaque;
pub(crate) mod refresh;

pub use access::{AccessClaims, AccessToken, AccessTokenError};
use std::mem::MaybeUninit;

pub(crate) use opaque::RawToken;
pub use opaque::{MalformedToken, ROUTED_TOKEN_LEN, RefreshToken, Route, SessionToken, TOKEN_LEN, TokenDigest};

/// Decodes unpadded base64url `b64` into `out` (canonical encodings only: non-zero trailing
/// bits are refused): the decoded bytes, `Err` for invalid input, `None` if `out` may be too
/// short for them (nothing is decoded then). `out` need not be initialised: the hot paths
/// (access tokens, session ids) decode into stack buffers without zeroing them first.
pub(crate) fn decode_base64url<'o>(b64: &str, out: &'o mut [MaybeUninit<u8>]) -> Option<Result<&'o [u8], ()>> {
    let codec = base64_simd::URL_SAFE_NO_PAD;
    let room = out.get_mut(..codec.estimated_decoded_length(b64.len()))?;
    Some(codec.decode(b64.as_bytes(), base64_simd::Out::from_uninit_slice(room)).map(|d| &*d).map_err(drop))
}

/// Compares two byte strings in time that depends only on their lengths, a machine word at a
/// time: no branch depends on the contents, and the final test goes through `subtle`.
#[inline]
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq as _;
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u64;
    let (a_words, a_tail) = a.split_at(a.len() - a.len() % 8);
    let (b_words, b_tail) = b.split_at(a_words.len());
    for (x, y) in a_words.chunks_exact(8).zip(b_words.chunks_exact(8)) {
        let mut wx = [0u8; 8];
        let mut wy = [0u8; 8];
        wx.copy_from_slice(x);
        wy.copy_from_slice(y);
        diff |= u64::from_le_bytes(wx) ^ u64::from_le_bytes(wy);
    }
    for (x, y) in a_tail.iter().zip(b_tail) {
        diff |= u64::from(x ^ y);
    }
    diff.ct_eq(&0).into()
}

#[cfg(test)]
mod tests {
    use super::ct_eq;

    #[test]
    fn ct_eq_compares_every_byte() {
        let a: Vec<u8> = (0..=255).collect();
        assert!(ct_eq(&a, &a.clone()));
        for i in 0..a.len() {
            let mut b = a.clone();
            b[i] ^= 0x80;
            assert!(!ct_eq(&a, &b), "difference at {i}");
        }
        assert!(!ct_eq(&a, &a[..255]));
        assert!(ct_eq(b"", b""));
    }
}
