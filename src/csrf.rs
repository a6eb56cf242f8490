//! Per-session CSRF tokens that need no storage.
//!
//! A cookie is sent by the browser with every request to its site, including requests that
//! another site's page starts (a form posted to your `/logout`, say): that is cross-site request
//! forgery. The defence this module implements is the *HMAC-based synchronizer token* of the
//! [OWASP CSRF cheat sheet]: the page receives a token bound to its session, and every
//! state-changing request authenticated by the cookie must echo it in a header, which another
//! site can neither read nor set.
//!
//! The token is `HMAC-SHA-256(key, "sessionkit/csrf/v1" ‖ 0x00 ‖ session id)`, 43 characters of
//! base64url. It is derived from the public [`SessionId`] with a server-side secret, so nothing
//! is stored and every instance that shares the [`CsrfKey`] agrees on it; it lives exactly as
//! long as the session (a rotated session token keeps its id, and so its CSRF token). The
//! domain-separation label carries a version, so a future format cannot be confused with this
//! one. Verification checks the length before decoding anything and compares the MAC in
//! constant time (ring's [`hmac::verify`]).
//!
//! Pair it with an `Origin` check: the token defeats forgery, the origin check is defence in
//! depth and costs nothing (the example server does both).
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
//! let token = key.token(&session.id());
//!
//! // On a cookie-authenticated POST: the header must carry it.
//! assert_eq!(key.verify(&session.id(), token.expose_secret()), Ok(()));
//! assert_eq!(key.verify(&session.id(), "forged"), Err(CsrfError::Malformed));
//! # Ok(()) }
//! ```
//!
//! [OWASP CSRF cheat sheet]: https://cheatsheetseries.owasp.org/cheatsheets/Cross-Site_Request_Forgery_Prevention_Cheat_Sheet.html

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::TryRng as _;
use ring::hmac;
use zeroize::Zeroizing;

use crate::session::SessionId;

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
const LABEL: &[u8] = b"sessionkit/csrf/v1\0";

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
/// `Debug` shows nothing of it, and its bytes are wiped from memory when it is dropped. ring
/// expands the secret into an HMAC key schedule for the duration of each call; that copy lives
/// on the stack and is not wiped by ring.
///
/// Cheap to clone? No: it owns its secret; share it behind an `Arc` or in your application
/// state.
pub struct CsrfKey {
    secret: Zeroizing<Vec<u8>>,
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
        Ok(Self { secret: Zeroizing::new(secret.to_vec()) })
    }

    /// A new key of 32 bytes from the operating system's CSPRNG, for a single process (tokens
    /// stop verifying when it restarts).
    ///
    /// # Errors
    /// [`CsrfKeyError::Random`].
    pub fn generate() -> Result<Self, CsrfKeyError> {
        let mut secret = Zeroizing::new(vec![0u8; MIN_KEY_LEN]);
        rand::rngs::SysRng.try_fill_bytes(&mut secret).map_err(|_| CsrfKeyError::Random)?;
        Ok(Self { secret })
    }

    fn hmac_key(&self) -> hmac::Key {
        hmac::Key::new(hmac::HMAC_SHA256, &self.secret)
    }

    /// The MAC input: the versioned label, then the session id's 16 bytes. Fixed length, so no
    /// two inputs can be confused.
    fn message(session: &SessionId) -> [u8; LABEL.len() + 16] {
        let mut message = [0u8; LABEL.len() + 16];
        let (label, id) = message.split_at_mut(LABEL.len());
        label.copy_from_slice(LABEL);
        id.copy_from_slice(session.as_bytes());
        message
    }

    /// The CSRF token of `session`. The same session always gets the same token (under the same
    /// key), so it can be computed again on every page load.
    #[must_use]
    pub fn token(&self, session: &SessionId) -> CsrfToken {
        let tag = hmac::sign(&self.hmac_key(), &Self::message(session));
        CsrfToken { encoded: URL_SAFE_NO_PAD.encode(tag.as_ref()) }
    }

    /// Checks that `presented` is the CSRF token of `session`.
    ///
    /// The length is checked first and the alphabet strictly (only the canonical 43-character
    /// encoding of 32 bytes), so oversized or odd input costs nothing; the MAC is then compared
    /// in constant time.
    ///
    /// # Errors
    /// [`CsrfError::Missing`] for an empty string, [`CsrfError::Malformed`] for anything but 43
    /// canonical base64url characters, [`CsrfError::Mismatch`] for a token of another session or
    /// key.
    pub fn verify(&self, session: &SessionId, presented: &str) -> Result<(), CsrfError> {
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
        hmac::verify(&self.hmac_key(), &Self::message(session), tag.as_slice()).map_err(|_| CsrfError::Mismatch)
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

    fn id(byte: u8) -> SessionId {
        SessionId::from_bytes([byte; 16])
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
        let token = key.token(&id(9));
        assert_eq!(token.expose_secret().len(), TOKEN_LEN);
        assert_eq!(token, same.token(&id(9)), "instances sharing a secret agree");
        assert_ne!(token, key.token(&id(8)));
        assert_ne!(token, other.token(&id(9)));
        assert_eq!(same.verify(&id(9), token.expose_secret()), Ok(()));
        assert_eq!(key.verify(&id(8), token.expose_secret()), Err(CsrfError::Mismatch));
        assert_eq!(other.verify(&id(9), token.expose_secret()), Err(CsrfError::Mismatch));
    }

    #[test]
    fn the_mac_is_of_the_versioned_label_and_the_id() {
        // Known answer, computed independently: HMAC-SHA-256 of the label and the id bytes.
        let key = CsrfKey::from_bytes(&[0x0b; 32]).unwrap();
        let mut message = b"sessionkit/csrf/v1\0".to_vec();
        message.extend_from_slice(&[0xab; 16]);
        let expected = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &[0x0b; 32]), &message);
        assert_eq!(key.token(&id(0xab)).expose_secret(), URL_SAFE_NO_PAD.encode(expected.as_ref()));
        // Without the label the MAC differs: a MAC of the bare id made elsewhere is no token.
        let bare = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &[0x0b; 32]), &[0xab; 16]);
        assert_eq!(key.verify(&id(0xab), &URL_SAFE_NO_PAD.encode(bare.as_ref())), Err(CsrfError::Mismatch));
    }

    #[test]
    fn malformed_input_is_refused_before_any_work() {
        let key = CsrfKey::generate().unwrap();
        let good = key.token(&id(3));
        let good = good.expose_secret();
        assert_eq!(key.verify(&id(3), ""), Err(CsrfError::Missing));
        assert_eq!(key.verify(&id(3), &good[..42]), Err(CsrfError::Malformed));
        assert_eq!(key.verify(&id(3), &format!("{good}A")), Err(CsrfError::Malformed));
        assert_eq!(key.verify(&id(3), &"A".repeat(1 << 20)), Err(CsrfError::Malformed));
        assert_eq!(key.verify(&id(3), &format!("{}*", &good[..42])), Err(CsrfError::Malformed));
        assert_eq!(key.verify(&id(3), &format!("{}=", &good[..42])), Err(CsrfError::Malformed));
        // Same length, non-ASCII: not base64url.
        assert_eq!(key.verify(&id(3), &format!("{}é", &good[..41])), Err(CsrfError::Malformed));
        // The last character carries 2 bits beyond the 256: a spelling with them set is refused.
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let last = ALPHABET.iter().position(|&c| c == good.as_bytes()[42]).unwrap();
        let mut odd = good.as_bytes().to_vec();
        odd[42] = ALPHABET[last ^ 1];
        assert_eq!(key.verify(&id(3), std::str::from_utf8(&odd).unwrap()), Err(CsrfError::Malformed));
        // Every single-character change fails.
        for i in 0..TOKEN_LEN {
            let mut bytes = good.as_bytes().to_vec();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let changed = String::from_utf8(bytes).unwrap();
            assert_ne!(key.verify(&id(3), &changed), Ok(()), "change at {i}");
        }
        assert_eq!(key.verify(&id(3), good), Ok(()));
    }

    #[test]
    fn debug_and_display_are_redacted() {
        let key = CsrfKey::from_bytes(&[0x41; 32]).unwrap();
        assert_eq!(format!("{key:?}"), "CsrfKey(<redacted>)");
        let token = key.token(&id(1));
        assert!(!format!("{token:?}").contains(token.expose_secret()));
        assert_eq!(token.to_string(), "<redacted>");
    }
}
