//! Sealing a refresh token's successor for the grace window.
//!
//! When a refresh token is spent, the store keeps its successor for a few seconds so that a
//! client retrying the same refresh (or firing several at once) receives the same successor
//! instead of tripping reuse detection. The successor is a secret, and stores keep no secrets
//! in the clear: it is sealed with ChaCha20-Poly1305 under a key derived (HKDF-SHA-256) from
//! the *presented* token's bytes, which the store never sees. Only a caller who presents the
//! spent token again can open it.

use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hkdf::{HKDF_SHA256, Salt};

use crate::error::RandomError;
use crate::token::{RawToken, RefreshToken};

const SALT: &[u8] = b"sessionkit/refresh-successor/v1";

fn key_for(presented: &RawToken) -> Option<LessSafeKey> {
    let prk = Salt::new(HKDF_SHA256, SALT).extract(&presented.0);
    // ring's expand() fails only for outputs longer than 255 hash lengths; 32 bytes never is.
    let okm = prk.expand(&[b"chacha20-poly1305"], &CHACHA20_POLY1305).ok()?;
    Some(LessSafeKey::new(UnboundKey::from(okm)))
}

/// Seals `successor` so that only the holder of `presented` can open it.
pub(crate) fn seal(presented: &RawToken, successor: &RefreshToken) -> Result<Vec<u8>, RandomError> {
    // A nonce must be unique, not secret: the thread-local generator (ChaCha12, seeded and
    // reseeded from the OS) saves a system call per refresh.
    let mut nonce = [0u8; NONCE_LEN];
    rand::Rng::fill_bytes(&mut rand::rng(), &mut nonce);
    let key = key_for(presented).ok_or(RandomError(None))?;
    let mut sealed = Vec::with_capacity(NONCE_LEN + successor.expose_secret().len() + 16);
    sealed.extend_from_slice(&nonce);
    let mut body = successor.expose_secret().as_bytes().to_vec();
    key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut body)
        .map_err(|_| RandomError(None))?;
    sealed.extend_from_slice(&body);
    zeroize::Zeroize::zeroize(&mut body);
    Ok(sealed)
}

/// Opens what [`seal`] produced; `None` if it was sealed for another token or tampered with.
pub(crate) fn open(presented: &RawToken, sealed: &[u8]) -> Option<RefreshToken> {
    if sealed.len() < NONCE_LEN + 16 {
        return None;
    }
    let (nonce, body) = sealed.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
    let mut body = body.to_vec();
    let plain = key_for(presented)?.open_in_place(nonce, Aad::empty(), &mut body).ok()?;
    let token = std::str::from_utf8(plain).ok().and_then(|s| RefreshToken::parse(s).ok());
    zeroize::Zeroize::zeroize(&mut body);
    token
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(t: &RefreshToken) -> RawToken {
        RawToken::decode(t.expose_secret()).unwrap()
    }

    #[test]
    fn only_the_presented_token_opens_its_successor() {
        let (presented, _) = RefreshToken::generate().unwrap();
        let (successor, _) = RefreshToken::generate().unwrap();
        let (other, _) = RefreshToken::generate().unwrap();
        let sealed = seal(&raw(&presented), &successor).unwrap();
        assert!(!sealed.windows(10).any(|w| successor.expose_secret().as_bytes().windows(10).any(|s| s == w)));
        assert_eq!(open(&raw(&presented), &sealed), Some(successor));
        assert_eq!(open(&raw(&other), &sealed), None);
        let mut tampered = sealed.clone();
        tampered[20] ^= 1;
        assert_eq!(open(&raw(&presented), &tampered), None);
        assert_eq!(open(&raw(&presented), &sealed[..20]), None);
    }
}
