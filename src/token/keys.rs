//! Signing keys for access tokens, and the key set that rotates them.
//!
//! Each [`SigningKey`] is bound to exactly one algorithm (HS256 or EdDSA/Ed25519) and carries a
//! key id (`kid`). A [`KeySet`] has one active key, which signs new tokens, and any number of
//! verification-only keys, so that rotating the signing key does not invalidate tokens signed
//! with the previous one until they expire (RFC 8725 §3.1: the algorithm used to verify is the
//! one the key is bound to, never the one a token's header asks for).
//!
//! All cryptography is ring's: HMAC-SHA-256 and Ed25519.

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rand::TryRng as _;
use ring::hmac;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};
use serde::Serialize;
use zeroize::Zeroize as _;

/// Shortest accepted HS256 secret, in bytes (RFC 7518 §3.2: at least the hash output size).
pub const MIN_HS256_SECRET_LEN: usize = 32;

/// Longest accepted key id, in bytes.
pub const MAX_KID_LEN: usize = 64;

/// A JWS algorithm sessionkit signs and verifies with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// HMAC with SHA-256 and a shared secret (RFC 7518 §3.2).
    Hs256,
    /// Ed25519 signatures (RFC 8037).
    EdDsa,
}

impl Algorithm {
    /// The `alg` header value: `"HS256"` or `"EdDSA"`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Hs256 => "HS256",
            Self::EdDsa => "EdDSA",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A key could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// An HS256 secret shorter than [`MIN_HS256_SECRET_LEN`] bytes.
    #[error("HS256 secrets must be at least {MIN_HS256_SECRET_LEN} bytes, got {0}")]
    SecretTooShort(usize),
    /// The key id is empty, longer than [`MAX_KID_LEN`], or not printable ASCII.
    #[error("key ids must be 1 to {MAX_KID_LEN} printable ASCII characters")]
    InvalidKid,
    /// The Ed25519 key is not a valid PKCS#8 document (DER, or PEM `PRIVATE KEY`).
    #[error("invalid Ed25519 PKCS#8 key: {0}")]
    InvalidEd25519Key(&'static str),
    /// Two keys of a key set share a key id.
    #[error("duplicate key id {0:?}")]
    DuplicateKid(String),
    /// The active key of a key set cannot sign (it is verification-only).
    #[error("the active key must be able to sign")]
    CannotSign,
    /// The operating system's random number generator failed.
    #[error("the system random number generator failed")]
    Random,
}

enum Material {
    Hs256(hmac::Key),
    Ed25519 { pair: Option<Ed25519KeyPair>, public: [u8; 32] },
}

/// One key, bound to one algorithm, with its key id. Cheap to clone.
///
/// `Debug` shows the key id and algorithm, never key material.
#[derive(Clone)]
pub struct SigningKey {
    inner: Arc<KeyInner>,
}

struct KeyInner {
    kid: String,
    material: Material,
    /// The base64url JWS header this key signs with, computed once.
    encoded_header: String,
}

#[derive(Serialize)]
struct HeaderOut<'a> {
    alg: &'a str,
    typ: &'a str,
    kid: &'a str,
}

fn check_kid(kid: &str) -> Result<(), KeyError> {
    if kid.is_empty() || kid.len() > MAX_KID_LEN || !kid.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(KeyError::InvalidKid);
    }
    Ok(())
}

impl SigningKey {
    fn new(kid: String, material: Material) -> Result<Self, KeyError> {
        check_kid(&kid)?;
        let alg = match material {
            Material::Hs256(_) => Algorithm::Hs256,
            Material::Ed25519 { .. } => Algorithm::EdDsa,
        };
        let header = serde_json::to_vec(&HeaderOut { alg: alg.as_str(), typ: "JWT", kid: &kid })
            .map_err(|_| KeyError::InvalidKid)?;
        let encoded_header = URL_SAFE_NO_PAD.encode(header);
        Ok(Self { inner: Arc::new(KeyInner { kid, material, encoded_header }) })
    }

    /// An HS256 key from a shared secret of at least [`MIN_HS256_SECRET_LEN`] bytes.
    ///
    /// # Errors
    /// [`KeyError::SecretTooShort`], [`KeyError::InvalidKid`].
    pub fn hs256(kid: impl Into<String>, secret: &[u8]) -> Result<Self, KeyError> {
        if secret.len() < MIN_HS256_SECRET_LEN {
            return Err(KeyError::SecretTooShort(secret.len()));
        }
        Self::new(kid.into(), Material::Hs256(hmac::Key::new(hmac::HMAC_SHA256, secret)))
    }

    /// A new HS256 key with a random 32-byte secret, for a single process that does not share
    /// its tokens (the secret is lost at exit, and with it every token signed with it).
    ///
    /// # Errors
    /// [`KeyError::Random`], [`KeyError::InvalidKid`].
    pub fn generate_hs256(kid: impl Into<String>) -> Result<Self, KeyError> {
        let mut secret = [0u8; 32];
        rand::rngs::SysRng.try_fill_bytes(&mut secret).map_err(|_| KeyError::Random)?;
        let key = Self::hs256(kid, &secret);
        secret.zeroize();
        key
    }

    /// An Ed25519 signing key from a PKCS#8 document in DER (v1, as OpenSSL writes, or v2).
    ///
    /// # Errors
    /// [`KeyError::InvalidEd25519Key`], [`KeyError::InvalidKid`].
    pub fn ed25519_from_pkcs8_der(kid: impl Into<String>, der: &[u8]) -> Result<Self, KeyError> {
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
            .map_err(|_| KeyError::InvalidEd25519Key("not an Ed25519 PKCS#8 document"))?;
        let mut public = [0u8; 32];
        public.copy_from_slice(pair.public_key().as_ref());
        Self::new(kid.into(), Material::Ed25519 { pair: Some(pair), public })
    }

    /// An Ed25519 signing key from a PEM `-----BEGIN PRIVATE KEY-----` document.
    ///
    /// # Errors
    /// [`KeyError::InvalidEd25519Key`], [`KeyError::InvalidKid`].
    pub fn ed25519_from_pem(kid: impl Into<String>, pem: &str) -> Result<Self, KeyError> {
        let mut der = pem_private_key(pem)?;
        let key = Self::ed25519_from_pkcs8_der(kid, &der);
        der.zeroize();
        key
    }

    /// An Ed25519 signing key from either a PEM or a DER PKCS#8 document.
    ///
    /// # Errors
    /// As [`ed25519_from_pem`](Self::ed25519_from_pem) and
    /// [`ed25519_from_pkcs8_der`](Self::ed25519_from_pkcs8_der).
    pub fn ed25519_from_pkcs8(kid: impl Into<String>, bytes: &[u8]) -> Result<Self, KeyError> {
        match std::str::from_utf8(bytes) {
            Ok(text) if text.trim_start().starts_with("-----BEGIN") => Self::ed25519_from_pem(kid, text),
            _ => Self::ed25519_from_pkcs8_der(kid, bytes),
        }
    }

    /// An Ed25519 signing key from a PEM or DER PKCS#8 document, whose key id is its RFC 7638
    /// JWK thumbprint (see [`thumbprint`](Self::thumbprint)): a new key gets a new `kid` without
    /// anyone choosing one, and every service derives the same `kid` from the same key.
    ///
    /// # Errors
    /// As [`ed25519_from_pkcs8`](Self::ed25519_from_pkcs8).
    pub fn ed25519_from_pkcs8_with_thumbprint(bytes: &[u8]) -> Result<Self, KeyError> {
        // Placeholder kid while the public key is read: a valid one, replaced below.
        let probe = Self::ed25519_from_pkcs8("thumbprint", bytes)?;
        let Material::Ed25519 { public, .. } = probe.inner.material else {
            return Err(KeyError::InvalidEd25519Key("not an Ed25519 key"));
        };
        Self::ed25519_from_pkcs8(ed25519_thumbprint(&public), bytes)
    }

    /// A new Ed25519 key pair; returns the key and its PKCS#8 (v2, DER) document to store.
    ///
    /// # Errors
    /// [`KeyError::Random`], [`KeyError::InvalidKid`].
    pub fn generate_ed25519(kid: impl Into<String>) -> Result<(Self, Vec<u8>), KeyError> {
        let rng = ring::rand::SystemRandom::new();
        let doc = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| KeyError::Random)?;
        let key = Self::ed25519_from_pkcs8_der(kid, doc.as_ref())?;
        Ok((key, doc.as_ref().to_vec()))
    }

    /// A verification-only Ed25519 key from its 32-byte public key (for instance another
    /// service's, taken from its JWKS).
    ///
    /// # Errors
    /// [`KeyError::InvalidKid`].
    pub fn ed25519_public(kid: impl Into<String>, public: [u8; 32]) -> Result<Self, KeyError> {
        Self::new(kid.into(), Material::Ed25519 { pair: None, public })
    }

    /// The key id.
    #[must_use]
    pub fn kid(&self) -> &str {
        &self.inner.kid
    }

    /// The one algorithm this key signs and verifies with.
    #[must_use]
    pub fn algorithm(&self) -> Algorithm {
        match self.inner.material {
            Material::Hs256(_) => Algorithm::Hs256,
            Material::Ed25519 { .. } => Algorithm::EdDsa,
        }
    }

    /// Whether this key can sign (HS256 keys and Ed25519 keys with their private half).
    #[must_use]
    pub fn can_sign(&self) -> bool {
        !matches!(self.inner.material, Material::Ed25519 { pair: None, .. })
    }

    /// The Ed25519 public key, if this is an Ed25519 key.
    #[must_use]
    pub fn ed25519_public_key(&self) -> Option<[u8; 32]> {
        match self.inner.material {
            Material::Ed25519 { public, .. } => Some(public),
            Material::Hs256(_) => None,
        }
    }

    /// The key's RFC 7638 JWK thumbprint (base64url SHA-256 of its canonical public JWK), for
    /// Ed25519 keys; `None` for HS256 keys, whose thumbprint would be a hash of the secret.
    #[must_use]
    pub fn thumbprint(&self) -> Option<String> {
        self.ed25519_public_key().map(|public| ed25519_thumbprint(&public))
    }

    pub(crate) fn encoded_header(&self) -> &str {
        &self.inner.encoded_header
    }

    /// Signs `message`; `None` for a verification-only key.
    pub(crate) fn sign(&self, message: &[u8]) -> Option<Vec<u8>> {
        match &self.inner.material {
            Material::Hs256(key) => Some(hmac::sign(key, message).as_ref().to_vec()),
            Material::Ed25519 { pair: Some(pair), .. } => Some(pair.sign(message).as_ref().to_vec()),
            Material::Ed25519 { pair: None, .. } => None,
        }
    }

    /// Verifies `signature` over `message`, in constant time for HMAC.
    pub(crate) fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match &self.inner.material {
            Material::Hs256(key) => hmac::verify(key, message, signature).is_ok(),
            Material::Ed25519 { public, .. } => {
                UnparsedPublicKey::new(&ED25519, public).verify(message, signature).is_ok()
            }
        }
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.inner.kid)
            .field("algorithm", &self.algorithm())
            .field("can_sign", &self.can_sign())
            .finish_non_exhaustive()
    }
}

/// Decodes the body of a PEM `PRIVATE KEY` block.
fn pem_private_key(pem: &str) -> Result<Vec<u8>, KeyError> {
    const BEGIN: &str = "-----BEGIN PRIVATE KEY-----";
    const END: &str = "-----END PRIVATE KEY-----";
    let start = pem.find(BEGIN).ok_or(KeyError::InvalidEd25519Key("no PEM PRIVATE KEY block"))? + BEGIN.len();
    let len = pem[start..].find(END).ok_or(KeyError::InvalidEd25519Key("unterminated PEM block"))?;
    let body: String = pem[start..start + len].chars().filter(|c| !c.is_ascii_whitespace()).collect();
    STANDARD.decode(body).map_err(|_| KeyError::InvalidEd25519Key("PEM body is not base64"))
}

/// One active signing key and any number of verification-only keys.
///
/// ```
/// use sessionkit::token::keys::{KeySet, SigningKey};
///
/// let old = SigningKey::hs256("2026-10", &[7u8; 32])?;
/// let new = SigningKey::hs256("2026-11", &[9u8; 32])?;
/// // Sign with the new key; keep accepting the old one until its tokens have expired.
/// let keys = KeySet::new(new)?.with_verification_key(old)?;
/// assert_eq!(keys.active().kid(), "2026-11");
/// assert!(keys.get("2026-10").is_some());
/// # Ok::<(), sessionkit::token::keys::KeyError>(())
/// ```
#[derive(Debug, Clone)]
pub struct KeySet {
    active: SigningKey,
    keys: Vec<SigningKey>,
}

impl KeySet {
    /// A key set that signs with `active` (which must be able to sign).
    ///
    /// # Errors
    /// [`KeyError::CannotSign`] for a verification-only key.
    pub fn new(active: SigningKey) -> Result<Self, KeyError> {
        if !active.can_sign() {
            return Err(KeyError::CannotSign);
        }
        Ok(Self { keys: vec![active.clone()], active })
    }

    /// Adds a key that verifies tokens but does not sign new ones (a previous signing key).
    ///
    /// # Errors
    /// [`KeyError::DuplicateKid`] if the key id is taken.
    pub fn with_verification_key(mut self, key: SigningKey) -> Result<Self, KeyError> {
        if self.get(key.kid()).is_some() {
            return Err(KeyError::DuplicateKid(key.kid().to_owned()));
        }
        self.keys.push(key);
        Ok(self)
    }

    /// A new key set that signs with `next` and still verifies with every key of this one:
    /// the usual rotation step. Drop old keys with [`without`](Self::without) once the
    /// longest-lived token they signed has expired.
    ///
    /// # Errors
    /// [`KeyError::CannotSign`], [`KeyError::DuplicateKid`].
    pub fn rotated(&self, next: SigningKey) -> Result<Self, KeyError> {
        let mut set = Self::new(next)?;
        for key in &self.keys {
            set = set.with_verification_key(key.clone())?;
        }
        Ok(set)
    }

    /// This key set without the verification key `kid` (the active key cannot be removed).
    #[must_use]
    pub fn without(mut self, kid: &str) -> Self {
        let active = self.active.kid().to_owned();
        self.keys.retain(|k| k.kid() == active || k.kid() != kid);
        self
    }

    /// The key that signs new tokens.
    #[must_use]
    pub fn active(&self) -> &SigningKey {
        &self.active
    }

    /// The key named `kid`, if any.
    #[must_use]
    pub fn get(&self, kid: &str) -> Option<&SigningKey> {
        self.keys.iter().find(|k| k.kid() == kid)
    }

    /// The key whose own JWS header, followed by a dot, begins `token`, as on every token this
    /// key set issued.
    pub(crate) fn by_header_prefix(&self, token: &str) -> Option<&SigningKey> {
        let token = token.as_bytes();
        self.keys.iter().find(|k| {
            let header = k.encoded_header().as_bytes();
            token.get(..header.len()) == Some(header) && token.get(header.len()) == Some(&b'.')
        })
    }

    /// Every key, the active one first.
    pub fn keys(&self) -> impl Iterator<Item = &SigningKey> {
        self.keys.iter()
    }

    /// The public keys as a JWKS document (RFC 7517, RFC 8037 `OKP`/`Ed25519`), for other
    /// services to verify access tokens. HS256 keys are secret and never listed, so an
    /// HS256-only set publishes `{"keys": []}`.
    #[must_use]
    pub fn jwks(&self) -> Jwks {
        Jwks {
            keys: self
                .keys
                .iter()
                .filter_map(|k| {
                    k.ed25519_public_key().map(|public| Jwk {
                        kty: "OKP",
                        crv: "Ed25519",
                        x: URL_SAFE_NO_PAD.encode(public),
                        kid: k.kid().to_owned(),
                        alg: "EdDSA",
                        key_use: "sig",
                    })
                })
                .collect(),
        }
    }
}

/// The RFC 7638 thumbprint of the Ed25519 public key `public` (RFC 8037 `OKP` JWK): SHA-256 of
/// `{"crv":"Ed25519","kty":"OKP","x":"<base64url public>"}`, base64url without padding.
#[must_use]
pub fn ed25519_thumbprint(public: &[u8; 32]) -> String {
    // RFC 7638 §3.2: the required members, in lexicographic order, without whitespace.
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, URL_SAFE_NO_PAD.encode(public));
    URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes()))
}

/// A JSON Web Key Set of public keys; serialise it with serde.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Jwks {
    /// The keys.
    pub keys: Vec<Jwk>,
}

/// One public key of a [`Jwks`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Jwk {
    /// Key type: `"OKP"`.
    pub kty: &'static str,
    /// Curve: `"Ed25519"`.
    pub crv: &'static str,
    /// The public key, base64url.
    pub x: String,
    /// Key id.
    pub kid: String,
    /// Algorithm: `"EdDSA"`.
    pub alg: &'static str,
    /// Use: `"sig"`.
    #[serde(rename = "use")]
    pub key_use: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_hs256_secrets_are_refused() {
        assert_eq!(SigningKey::hs256("k", &[0; 31]).unwrap_err(), KeyError::SecretTooShort(31));
        assert!(SigningKey::hs256("k", &[0; 32]).is_ok());
    }

    #[test]
    fn thumbprints_follow_rfc_8037() {
        // RFC 8037, Appendix A.3: the thumbprint of the Appendix A.2 public key.
        let public: [u8; 32] =
            URL_SAFE_NO_PAD.decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo").unwrap().try_into().unwrap();
        assert_eq!(ed25519_thumbprint(&public), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
        let key = SigningKey::ed25519_public("k", public).unwrap();
        assert_eq!(key.thumbprint().as_deref(), Some("kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"));
        assert_eq!(SigningKey::hs256("k", &[7; 32]).unwrap().thumbprint(), None);

        let (generated, pkcs8) = SigningKey::generate_ed25519("k").unwrap();
        let key = SigningKey::ed25519_from_pkcs8_with_thumbprint(&pkcs8).unwrap();
        assert_eq!(Some(key.kid().to_owned()), generated.thumbprint());
        assert_eq!(key.ed25519_public_key(), generated.ed25519_public_key());
        assert!(matches!(
            SigningKey::ed25519_from_pkcs8_with_thumbprint(b"not a key"),
            Err(KeyError::InvalidEd25519Key(_))
        ));
    }

    #[test]
    fn kids_are_checked() {
        for bad in ["", "has space", &"k".repeat(65), "é"] {
            assert_eq!(SigningKey::hs256(bad, &[0; 32]).unwrap_err(), KeyError::InvalidKid, "{bad:?}");
        }
    }

    #[test]
    fn ed25519_keys_round_trip_through_pkcs8_der_and_pem() {
        let (key, der) = SigningKey::generate_ed25519("ed").unwrap();
        let again = SigningKey::ed25519_from_pkcs8("ed", &der).unwrap();
        assert_eq!(again.ed25519_public_key(), key.ed25519_public_key());
        let pem = format!("-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n", STANDARD.encode(&der));
        let from_pem = SigningKey::ed25519_from_pkcs8("ed", pem.as_bytes()).unwrap();
        assert_eq!(from_pem.ed25519_public_key(), key.ed25519_public_key());
        let sig = key.sign(b"msg").unwrap();
        assert!(from_pem.verify(b"msg", &sig));
        assert!(!from_pem.verify(b"msG", &sig));
        assert!(matches!(SigningKey::ed25519_from_pkcs8("ed", b"garbage"), Err(KeyError::InvalidEd25519Key(_))));
        assert!(matches!(
            SigningKey::ed25519_from_pem("ed", "-----BEGIN PRIVATE KEY-----\n!!\n-----END PRIVATE KEY-----"),
            Err(KeyError::InvalidEd25519Key(_))
        ));
    }

    #[test]
    fn verification_only_keys_cannot_sign_or_be_active() {
        let (key, _) = SigningKey::generate_ed25519("ed").unwrap();
        let public = SigningKey::ed25519_public("ed", key.ed25519_public_key().unwrap()).unwrap();
        assert!(!public.can_sign());
        assert!(public.sign(b"x").is_none());
        assert!(public.verify(b"x", &key.sign(b"x").unwrap()));
        assert_eq!(KeySet::new(public).unwrap_err(), KeyError::CannotSign);
    }

    #[test]
    fn key_sets_rotate_and_publish_only_public_keys() {
        let hs = SigningKey::hs256("hs", &[1; 32]).unwrap();
        let set = KeySet::new(hs.clone()).unwrap();
        assert_eq!(serde_json::to_value(set.jwks()).unwrap(), serde_json::json!({"keys": []}));
        let (ed, _) = SigningKey::generate_ed25519("ed").unwrap();
        let rotated = set.rotated(ed.clone()).unwrap();
        assert_eq!(rotated.active().kid(), "ed");
        assert!(rotated.get("hs").is_some());
        let jwks = serde_json::to_value(rotated.jwks()).unwrap();
        assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
        assert_eq!(jwks["keys"][0]["kty"], "OKP");
        assert_eq!(jwks["keys"][0]["crv"], "Ed25519");
        assert_eq!(jwks["keys"][0]["kid"], "ed");
        assert_eq!(jwks["keys"][0]["x"], URL_SAFE_NO_PAD.encode(ed.ed25519_public_key().unwrap()));
        assert!(rotated.clone().with_verification_key(hs).is_err(), "duplicate kid");
        assert!(rotated.clone().without("hs").get("hs").is_none());
        assert!(rotated.clone().without("ed").get("ed").is_some(), "the active key stays");
    }

    #[test]
    fn debug_shows_no_key_material() {
        let key = SigningKey::hs256("kid-1", &[0xAB; 32]).unwrap();
        let shown = format!("{key:?}");
        assert!(shown.contains("kid-1") && !shown.contains("171") && !shown.to_lowercase().contains("abab"));
    }
}
