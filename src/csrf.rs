//! Per-session CSRF tokens that need no storage.
//!
//! A cookie is sent by the browser with every request to its site, including requests that
//! another site's page starts (a form posted to your `/logout`, say): that is cross-site request
//! forgery. The defence this module implements is the *HMAC-based synchronizer token* of the
//! [OWASP CSRF cheat sheet]: the page receives a token bound to its session, and every
//! state-changing request authenticated by the cookie must echo it in a header, which another
//! site can neither read nor set.
//!
//! The token is `HMAC-SHA-256(key, "sessionkit/csrf/v2" ‖ 0x00 ‖ SHA-256(session token))`, 43
//! characters of base64url. It is derived from the digest of the session's current token with
//! a server-side secret, so nothing is stored, every instance that shares the [`CsrfKey`]
//! agrees on it, and it changes whenever the session token does: after
//! [`rotate`](crate::SessionManager::rotate) (a privilege change) a CSRF token read before is
//! refused. Because the digest is known from the presented session token alone, a request can
//! be checked before its session is looked up. The domain-separation label carries a version,
//! so a future format cannot be confused with this one. Verification checks the length before
//! decoding anything and compares the MAC in constant time (ring's [`hmac::verify`]).
//!
//! Pair it with an `Origin` check: the token defeats forgery, the origin check is defence in
//! depth and costs nothing. The `axum` integration (feature `axum`) does both on every
//! cookie-authenticated request that changes state.
//!
//! ```
//! use sessionkit::csrf::{CsrfError, CsrfKey};
//! # use sessionkit::{MemoryStore, NewSession, SessionManager, SessionConfig, UserId};
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let sessions = SessionManager::new(MemoryStore::new(), SessionConfig::default());
//! # let login = sessions.create(NewSession::new(UserId::new("alice")?)).await?;
//! let key = CsrfKey::generate()?; // or CsrfKey::from_bytes(&shared_secret) on every instance
//! let session = login.session;
//!
//! // Hand the token to the page (in a login answer, say); never put it in a cookie.
//! let token = key.token(&session);
//!
//! // On a cookie-authenticated POST: the header must carry it.
//! assert_eq!(key.verify(&session, token.expose_secret()), Ok(()));
//! assert_eq!(key.verify(&session, "forged"), Err(CsrfError::Malformed));
//!
//! // A privilege change rotates the session token, and with it the CSRF token.
//! let rotated = sessions.rotate(login.token.expose_secret()).await?;
//! assert_eq!(key.verify(&rotated.session, token.expose_secret()), Err(CsrfError::Mismatch));
//! # Ok(()) }
//! ```
//!
//! [OWASP CSRF cheat sheet]: https://cheatsheetseries.owasp.org/cheatsheets/Cross-Site_Request_Forgery_Prevention_Cheat_Sheet.html

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::TryRng as _;
use ring::hmac;
use zeroize::Zeroizing;

use crate::session::Session;
use crate::token::TokenDigest;

/// Shortest accepted key, in bytes: the output size of SHA-256.
pub const MIN_KEY_LEN: usize = 32;

/// Longest accepted key, in bytes. HMAC hashes longer keys down to 32 bytes anyway; the bound
/// keeps a misconfigured secret from being silently accepted.
pub const MAX_KEY_LEN: usize = 64;

/// Length of an encoded [`CsrfToken`]: 32 bytes as unpadded base64url.
pub const TOKEN_LEN: usize = 43;

/// Length of the raw MAC.
const MAC_LEN: usize = 32;

/// The domain-separation label: what the MAC is of, and which version of the format.
const LABEL: &[u8] = b"sessionkit/csrf/v2\0";

/// A [`CsrfKey`] could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CsrfKeyError {
    /// The secret is shorter than [`MIN_KEY_LEN`] or longer than [`MAX_KEY_LEN`] bytes.
    #[error("CSRF keys must be {MIN_KEY_LEN} to {MAX_KEY_LEN} bytes, got {0}")]
    BadLength(usize),
    /// The operating system's random number generator failed.
    #[error("the system random number generator failed")]
    Random,
}

/// A presented CSRF token was refused. Every variant is a rejection of untrusted input: answer
/// it with 403 and change nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CsrfError {
    /// No token was presented (an empty string).
    #[error("no CSRF token")]
    Missing,
    /// The token is not [`TOKEN_LEN`] characters of canonical base64url; nothing was computed.
    #[error("malformed CSRF token")]
    Malformed,
    /// The token is well formed but not this session's (another session's, another key's, or
    /// forged).
    #[error("CSRF token does not match the session")]
    Mismatch,
}

/// The server-side secret CSRF tokens are derived with.
///
/// `Debug` shows nothing of it, and the copy of the secret it keeps is wiped from memory when
/// the last clone is dropped. ring's HMAC key schedule, computed once when the key is made, is
/// not wiped by ring.
///
/// Cheap to clone: clones share the secret.
#[derive(Clone)]
pub struct CsrfKey {
    inner: Arc<KeyInner>,
}

struct KeyInner {
    /// Kept only to be wiped on drop; the MACs use `hmac`.
    _secret: Zeroizing<Vec<u8>>,
    hmac: hmac::Key,
    /// The key this one replaced, still accepted (never used to make a token): see
    /// [`CsrfKey::with_previous`].
    previous: Option<CsrfKey>,
}

impl fmt::Debug for CsrfKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CsrfKey(<redacted>)")
    }
}

impl CsrfKey {
    /// A key from a secret of [`MIN_KEY_LEN`] to [`MAX_KEY_LEN`] random bytes. Give every
    /// instance of a multi-instance deployment the same secret, so that a token issued by one
    /// verifies on all; changing the secret invalidates every outstanding token (pages must
    /// fetch a new one).
    ///
    /// The caller's copy of `secret` is not wiped; wipe it once the key is made.
    ///
    /// # Errors
    /// [`CsrfKeyError::BadLength`].
    pub fn from_bytes(secret: &[u8]) -> Result<Self, CsrfKeyError> {
        if !(MIN_KEY_LEN..=MAX_KEY_LEN).contains(&secret.len()) {
            return Err(CsrfKeyError::BadLength(secret.len()));
        }
        Ok(Self::of_secret(Zeroizing::new(secret.to_vec())))
    }

    /// A new key of 32 bytes from the operating system's CSPRNG, for a single process (tokens
    /// stop verifying when it restarts).
    ///
    /// # Errors
    /// [`CsrfKeyError::Random`].
    pub fn generate() -> Result<Self, CsrfKeyError> {
        let mut secret = Zeroizing::new(vec![0u8; MIN_KEY_LEN]);
        rand::rngs::SysRng.try_fill_bytes(&mut secret).map_err(|_| CsrfKeyError::Random)?;
        Ok(Self::of_secret(secret))
    }

    fn of_secret(secret: Zeroizing<Vec<u8>>) -> Self {
        let hmac = hmac::Key::new(hmac::HMAC_SHA256, &secret);
        Self { inner: Arc::new(KeyInner { _secret: secret, hmac, previous: None }) }
    }

    /// This key, still accepting the tokens made with `previous`: the rotation step, as
    /// [`KeySet::rotated`](crate::token::keys::KeySet::rotated) is for signing keys.
    ///
    /// New tokens are always made with this key. A token made with `previous` keeps verifying
    /// for as long as `previous` is configured, so that rotating the secret does not fail the
    /// pages that still hold a token they read before. That is the acceptance window, and it
    /// is the deployment's to choose: keep the previous secret at least as long as a page may
    /// go without fetching its token again (the login and session answers carry a fresh one;
    /// the sessions' idle timeout bounds it, since a page idle for longer has lost its session
    /// anyway), then drop it by making the key without it. Only one previous key is kept: the
    /// previous key's own previous key, if any, is no longer accepted.
    ///
    /// Verification tries this key, then the previous one, each compared in constant time.
    #[must_use]
    pub fn with_previous(self, previous: CsrfKey) -> Self {
        // A key's secret and MAC key with another previous key (an `Arc`'s contents are shared).
        let remade = |key: &CsrfKey, previous| CsrfKey {
            inner: Arc::new(KeyInner { _secret: key.inner._secret.clone(), hmac: key.inner.hmac.clone(), previous }),
        };
        remade(&self, Some(remade(&previous, None)))
    }

    /// Whether tokens made with a previous key are still accepted
    /// ([`with_previous`](Self::with_previous)).
    #[must_use]
    pub fn has_previous(&self) -> bool {
        self.inner.previous.is_some()
    }

    /// The MAC input: the versioned label, then the token digest's 32 bytes. Fixed length, so
    /// no two inputs can be confused.
    fn message(digest: &TokenDigest) -> [u8; LABEL.len() + 32] {
        let mut message = [0u8; LABEL.len() + 32];
        let (label, rest) = message.split_at_mut(LABEL.len());
        label.copy_from_slice(LABEL);
        rest.copy_from_slice(digest.as_bytes());
        message
    }

    /// The CSRF token of `session` as it is now. The same session token always gets the same
    /// CSRF token (under the same key), so it can be computed again on every page load; a
    /// rotated session gets a new one.
    #[must_use]
    pub fn token(&self, session: &Session) -> CsrfToken {
        self.token_for_digest(&session.record().digest)
    }

    /// The CSRF token of the session whose token has `digest`
    /// ([`SessionToken::digest`](crate::SessionToken::digest)).
    #[must_use]
    pub fn token_for_digest(&self, digest: &TokenDigest) -> CsrfToken {
        let tag = hmac::sign(&self.inner.hmac, &Self::message(digest));
        CsrfToken { encoded: URL_SAFE_NO_PAD.encode(tag.as_ref()) }
    }

    /// Checks that `presented` is the CSRF token of `session` as it is now.
    ///
    /// The length is checked first and the alphabet strictly (only the canonical 43-character
    /// encoding of 32 bytes), so oversized or odd input costs nothing; the MAC is then compared
    /// in constant time.
    ///
    /// # Errors
    /// [`CsrfError::Missing`] for an empty string, [`CsrfError::Malformed`] for anything but 43
    /// canonical base64url characters, [`CsrfError::Mismatch`] for a token of another session,
    /// of the session before a rotation, or of another key (neither this key nor its
    /// [previous](Self::with_previous) one).
    pub fn verify(&self, session: &Session, presented: &str) -> Result<(), CsrfError> {
        self.verify_digest(&session.record().digest, presented)
    }

    /// [`verify`](Self::verify) against the digest of the session token the request presented,
    /// before (or without) looking the session up.
    ///
    /// # Errors
    /// As [`verify`](Self::verify).
    pub fn verify_digest(&self, digest: &TokenDigest, presented: &str) -> Result<(), CsrfError> {
        if presented.is_empty() {
            return Err(CsrfError::Missing);
        }
        if presented.len() != TOKEN_LEN {
            return Err(CsrfError::Malformed);
        }
        let mut tag = Zeroizing::new([0u8; MAC_LEN]);
        // 43 base64url characters decode to exactly 32 bytes; the engine refuses non-canonical
        // trailing bits, so each token has one spelling.
        match URL_SAFE_NO_PAD.decode_slice(presented, tag.as_mut_slice()) {
            Ok(MAC_LEN) => {}
            _ => return Err(CsrfError::Malformed),
        }
        let message = Self::message(digest);
        if hmac::verify(&self.inner.hmac, &message, tag.as_slice()).is_ok() {
            return Ok(());
        }
        match &self.inner.previous {
            Some(previous) => {
                hmac::verify(&previous.inner.hmac, &message, tag.as_slice()).map_err(|_| CsrfError::Mismatch)
            }
            None => Err(CsrfError::Mismatch),
        }
    }
}

/// A session's CSRF token, to hand to its page (a response body, a `<meta>` element), never to a
/// cookie.
///
/// Less sensitive than a session token (it grants nothing alone, and it is readable by the
/// page's scripts by design) but still a secret from other sites: `Debug` and `Display` are
/// redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct CsrfToken {
    encoded: String,
}

impl CsrfToken {
    /// The token as the page must send it back (in a request header such as `X-CSRF-Token`).
    #[must_use]
    pub fn expose_secret(&self) -> &str {
        &self.encoded
    }
}

impl fmt::Debug for CsrfToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CsrfToken(<redacted>)")
    }
}

impl fmt::Display for CsrfToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn id(byte: u8) -> TokenDigest {
        TokenDigest::from_bytes([byte; 32])
    }

    fn key(byte: u8) -> CsrfKey {
        CsrfKey::from_bytes(&[byte; 32]).unwrap()
    }

    #[test]
    fn key_length_is_bounded() {
        assert_eq!(CsrfKey::from_bytes(&[7; 31]).unwrap_err(), CsrfKeyError::BadLength(31));
        assert_eq!(CsrfKey::from_bytes(&[]).unwrap_err(), CsrfKeyError::BadLength(0));
        assert!(CsrfKey::from_bytes(&[7; 32]).is_ok());
        assert!(CsrfKey::from_bytes(&[7; 64]).is_ok());
        assert_eq!(CsrfKey::from_bytes(&[7; 65]).unwrap_err(), CsrfKeyError::BadLength(65));
    }

    #[test]
    fn tokens_are_deterministic_per_key_and_session() {
        let key = CsrfKey::from_bytes(&[1; 32]).unwrap();
        let same = CsrfKey::from_bytes(&[1; 32]).unwrap();
        let other = CsrfKey::from_bytes(&[2; 32]).unwrap();
        let token = key.token_for_digest(&id(9));
        assert_eq!(token.expose_secret().len(), TOKEN_LEN);
        assert_eq!(token, same.token_for_digest(&id(9)), "instances sharing a secret agree");
        assert_ne!(token, key.token_for_digest(&id(8)));
        assert_ne!(token, other.token_for_digest(&id(9)));
        assert_eq!(same.verify_digest(&id(9), token.expose_secret()), Ok(()));
        assert_eq!(key.verify_digest(&id(8), token.expose_secret()), Err(CsrfError::Mismatch));
        assert_eq!(other.verify_digest(&id(9), token.expose_secret()), Err(CsrfError::Mismatch));
    }

    #[test]
    fn the_mac_is_of_the_versioned_label_and_the_digest() {
        // Known answer, computed independently: HMAC-SHA-256 of the label and the digest bytes.
        let key = CsrfKey::from_bytes(&[0x0b; 32]).unwrap();
        let mut message = b"sessionkit/csrf/v2\0".to_vec();
        message.extend_from_slice(&[0xab; 32]);
        let expected = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &[0x0b; 32]), &message);
        assert_eq!(key.token_for_digest(&id(0xab)).expose_secret(), URL_SAFE_NO_PAD.encode(expected.as_ref()));
        // Without the label the MAC differs: a MAC of the bare digest made elsewhere is no token.
        let bare = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &[0x0b; 32]), &[0xab; 32]);
        assert_eq!(key.verify_digest(&id(0xab), &URL_SAFE_NO_PAD.encode(bare.as_ref())), Err(CsrfError::Mismatch));
    }

    #[test]
    fn malformed_input_is_refused_before_any_work() {
        let key = CsrfKey::generate().unwrap();
        let good = key.token_for_digest(&id(3));
        let good = good.expose_secret();
        assert_eq!(key.verify_digest(&id(3), ""), Err(CsrfError::Missing));
        assert_eq!(key.verify_digest(&id(3), &good[..42]), Err(CsrfError::Malformed));
        assert_eq!(key.verify_digest(&id(3), &format!("{good}A")), Err(CsrfError::Malformed));
        assert_eq!(key.verify_digest(&id(3), &"A".repeat(1 << 20)), Err(CsrfError::Malformed));
        assert_eq!(key.verify_digest(&id(3), &format!("{}*", &good[..42])), Err(CsrfError::Malformed));
        assert_eq!(key.verify_digest(&id(3), &format!("{}=", &good[..42])), Err(CsrfError::Malformed));
        // Same length, non-ASCII: not base64url.
        assert_eq!(key.verify_digest(&id(3), &format!("{}é", &good[..41])), Err(CsrfError::Malformed));
        // The last character carries 2 bits beyond the 256: a spelling with them set is refused.
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let last = ALPHABET.iter().position(|&c| c == good.as_bytes()[42]).unwrap();
        let mut odd = good.as_bytes().to_vec();
        odd[42] = ALPHABET[last ^ 1];
        assert_eq!(key.verify_digest(&id(3), std::str::from_utf8(&odd).unwrap()), Err(CsrfError::Malformed));
        // Every single-character change fails.
        for i in 0..TOKEN_LEN {
            let mut bytes = good.as_bytes().to_vec();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let changed = String::from_utf8(bytes).unwrap();
            assert_ne!(key.verify_digest(&id(3), &changed), Ok(()), "change at {i}");
        }
        assert_eq!(key.verify_digest(&id(3), good), Ok(()));
    }

    #[test]
    fn a_rotated_key_accepts_the_previous_keys_tokens_until_it_is_dropped() {
        let (old, new, other) = (key(1), key(2), key(3));
        let digest = id(9);
        let before = old.token_for_digest(&digest);
        let rotated = new.clone().with_previous(old.clone());
        assert!(rotated.has_previous() && !new.has_previous());
        // New tokens are made with the new key only.
        assert_eq!(rotated.token_for_digest(&digest), new.token_for_digest(&digest));
        assert_eq!(rotated.verify_digest(&digest, before.expose_secret()), Ok(()));
        assert_eq!(rotated.verify_digest(&digest, rotated.token_for_digest(&digest).expose_secret()), Ok(()));
        assert_eq!(rotated.verify_digest(&id(8), before.expose_secret()), Err(CsrfError::Mismatch));
        assert_eq!(
            rotated.verify_digest(&digest, other.token_for_digest(&digest).expose_secret()),
            Err(CsrfError::Mismatch)
        );
        // Rotating again keeps one previous key: the oldest one's tokens stop verifying.
        let again = other.clone().with_previous(rotated.clone());
        assert_eq!(again.verify_digest(&digest, rotated.token_for_digest(&digest).expose_secret()), Ok(()));
        assert_eq!(again.verify_digest(&digest, before.expose_secret()), Err(CsrfError::Mismatch));
        // The window ends when the previous key is dropped.
        assert_eq!(new.verify_digest(&digest, before.expose_secret()), Err(CsrfError::Mismatch));
        assert_eq!(format!("{rotated:?}"), "CsrfKey(<redacted>)");
    }

    #[test]
    fn clones_share_the_key() {
        let key = CsrfKey::generate().unwrap();
        let clone = key.clone();
        assert_eq!(clone.verify_digest(&id(5), key.token_for_digest(&id(5)).expose_secret()), Ok(()));
    }

    #[test]
    fn debug_and_display_are_redacted() {
        let key = CsrfKey::from_bytes(&[0x41; 32]).unwrap();
        assert_eq!(format!("{key:?}"), "CsrfKey(<redacted>)");
        let token = key.token_for_digest(&id(1));
        assert!(!format!("{token:?}").contains(token.expose_secret()));
        assert_eq!(token.to_string(), "<redacted>");
    }
}
