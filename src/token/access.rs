//! Short-lived signed access tokens: JWTs (RFC 7519) in compact JWS form, bound to a session.
//!
//! An access token lets an API check a request without a store lookup: the signature proves
//! the server issued it, `exp` bounds its life (15 minutes by default), and `sid` names the
//! session so that a revoked session's tokens can be refused at once through the denylist.
//!
//! Verification follows RFC 8725: the input is length-capped before anything is decoded; the
//! key is chosen by `kid` and the algorithm is the one that key is bound to (a header asking for
//! `none`, or for another algorithm than the key's, is refused); the signature is checked
//! before any claim is read; then every registered claim present must have its registered
//! JSON type (`null` is refused, not read as absent), `iss` and `aud` must match, and `exp`,
//! `nbf` and `iat` (not in the future) are checked with a leeway. A header with `crit` is
//! refused (RFC 7515 §4.1.11: sessionkit understands no extension).

use std::borrow::Cow;
use std::fmt;
use std::mem::MaybeUninit;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use zeroize::Zeroize as _;

use crate::clock::Timestamp;
use crate::hash::RandomKeys;
use crate::session::{SessionId, UserId};
use crate::token::keys::{Algorithm, KeySet};
use crate::token::{TokenDigest, decode_base64url};

/// Longest access token accepted for verification, in bytes. Anything longer is refused
/// before it is decoded.
pub const MAX_ACCESS_TOKEN_LEN: usize = 4096;

/// Why an access token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AccessTokenError {
    /// Not a compact JWS: wrong number of parts, bad base64url, invalid JSON, oversized, a
    /// header that is not a JSON object or whose `alg`, `kid` or `typ` is not a string (or is
    /// given twice), or a refresh or session token presented in its place.
    #[error("malformed access token")]
    Malformed,
    /// The header names an algorithm sessionkit does not accept (`none` included).
    #[error("unsupported access token algorithm")]
    UnsupportedAlgorithm,
    /// The header has a `crit` parameter (RFC 7515 §4.1.11), whatever its value: it lists
    /// extensions the recipient must understand, and sessionkit understands none.
    #[error("access token requires unsupported critical extensions")]
    UnsupportedCritical,
    /// The header's `kid` names no key of the key set (or is missing).
    #[error("unknown access token key")]
    UnknownKey,
    /// The header's `alg` is not the algorithm the named key is bound to.
    #[error("access token algorithm does not match its key")]
    AlgorithmMismatch,
    /// The signature does not verify.
    #[error("invalid access token signature")]
    BadSignature,
    /// A required claim (`sub`, `sid`, `exp`) is missing; a registered claim is present with
    /// the wrong JSON type, `null` included (`exp`, `nbf`, `iat`: integers; `gen`: a
    /// non-negative integer; `sub`, `sid`, `jti`, `iss`: strings; `aud`: a string or an array
    /// of strings); a claim is given twice;
    /// the claims set is not a JSON object; `sid` is not a session id; or `typ` is not `JWT`.
    #[error("invalid access token claims")]
    InvalidClaims,
    /// `exp` is in the past, beyond the leeway.
    #[error("access token expired")]
    Expired,
    /// `nbf` is in the future, beyond the leeway.
    #[error("access token not yet valid")]
    NotYetValid,
    /// `iat` is in the future, beyond the leeway: the issuer's clock is wrong, or the token is
    /// not what it claims to be.
    #[error("access token issued in the future")]
    IssuedInFuture,
    /// `iss` is missing or not the configured issuer.
    #[error("wrong access token issuer")]
    WrongIssuer,
    /// `aud` is missing or does not contain the configured audience.
    #[error("wrong access token audience")]
    WrongAudience,
    /// The token was issued before its session's token was last rotated
    /// ([`SessionManager::rotate`](crate::SessionManager::rotate)): its `gen` is below the
    /// session's generation. The session lives on; the token does not.
    #[error("access token superseded by a session rotation")]
    Superseded,
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
    /// `gen`: the session's generation when the token was issued
    /// ([`SessionRecord::generation`](crate::session::SessionRecord::generation)); 0 if the
    /// token has none. A rotation of the session refuses tokens of earlier generations.
    pub generation: u64,
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
    #[serde(rename = "gen")]
    generation: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<&'a str>,
}

/// The JOSE header of a token that is not byte for byte one of the key set's own headers.
/// Registered parameters must have their registered types (`alg`, `typ`, `kid`: strings);
/// `crit` is only noted, as any value of it is refused; other parameters are skipped.
struct HeaderIn<'a> {
    alg: Cow<'a, str>,
    typ: Option<Cow<'a, str>>,
    kid: Option<Cow<'a, str>>,
    crit: bool,
}

/// The claims of a token whose signature verified, read in one pass over the JSON text
/// without an intermediate `Value`, by [`compact_claims`] or, for any other shape, by
/// [`ClaimsVisitor`]: strings are borrowed from the decoded payload unless they contain
/// escapes, and the audience is compared while it is read, so an array costs no allocation.
/// Every registered claim that is present must have its registered type (`null` is a wrong
/// type, not an absence); a claim given twice is refused; the claims set must be a JSON
/// object.
#[cfg_attr(test, derive(Debug, PartialEq, Eq))]
struct ClaimsIn<'a> {
    sub: Cow<'a, str>,
    sid: Cow<'a, str>,
    jti: Option<Cow<'a, str>>,
    iat: Option<i64>,
    exp: i64,
    nbf: Option<i64>,
    generation: Option<u64>,
    iss: Option<Cow<'a, str>>,
    /// `Some(true)` if `aud` is present and names the expected audience (any present `aud` if
    /// none is expected).
    aud: Option<bool>,
}

/// A JSON string and nothing else (`null` included), borrowed when it has no escapes.
struct Str<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Str<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StrVisitor;
        impl<'de> Visitor<'de> for StrVisitor {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
        }
        deserializer.deserialize_str(StrVisitor)
    }
}

/// The names sessionkit reads, in a header or a claims set; `Other` for every other name.
#[derive(Clone, Copy)]
enum Name {
    Alg,
    Typ,
    Kid,
    Crit,
    Sub,
    Sid,
    Jti,
    Iat,
    Exp,
    Nbf,
    Gen,
    Iss,
    Aud,
    Other,
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NameVisitor;
        impl Visitor<'_> for NameVisitor {
            type Value = Name;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Name, E> {
                Ok(match v {
                    "alg" => Name::Alg,
                    "typ" => Name::Typ,
                    "kid" => Name::Kid,
                    "crit" => Name::Crit,
                    "sub" => Name::Sub,
                    "sid" => Name::Sid,
                    "jti" => Name::Jti,
                    "iat" => Name::Iat,
                    "exp" => Name::Exp,
                    "nbf" => Name::Nbf,
                    "gen" => Name::Gen,
                    "iss" => Name::Iss,
                    "aud" => Name::Aud,
                    _ => Name::Other,
                })
            }
        }
        deserializer.deserialize_identifier(NameVisitor)
    }
}

/// Reads a member's value into its slot, refusing a second occurrence of the member.
fn set<'de, M: MapAccess<'de>, T: Deserialize<'de>>(
    map: &mut M,
    slot: &mut Option<T>,
    name: &'static str,
) -> Result<(), M::Error> {
    if slot.is_some() {
        return Err(de::Error::duplicate_field(name));
    }
    *slot = Some(map.next_value()?);
    Ok(())
}

struct HeaderVisitor;

impl<'de> Visitor<'de> for HeaderVisitor {
    type Value = HeaderIn<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JOSE header object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let [mut alg, mut typ, mut kid]: [Option<Str<'de>>; 3] = [None, None, None];
        let mut crit: Option<de::IgnoredAny> = None;
        while let Some(name) = map.next_key::<Name>()? {
            match name {
                Name::Alg => set(&mut map, &mut alg, "alg")?,
                Name::Typ => set(&mut map, &mut typ, "typ")?,
                Name::Kid => set(&mut map, &mut kid, "kid")?,
                Name::Crit => set(&mut map, &mut crit, "crit")?,
                _ => {
                    map.next_value::<de::IgnoredAny>()?;
                }
            }
        }
        let alg = alg.ok_or_else(|| de::Error::missing_field("alg"))?.0;
        let (typ, kid) = (typ.map(|t| t.0), kid.map(|k| k.0));
        Ok(HeaderIn { alg, typ, kid, crit: crit.is_some() })
    }
}

/// Reads a claims set, comparing `aud` with `audience` as it goes.
struct ClaimsVisitor<'p> {
    audience: Option<&'p str>,
}

impl<'de> Visitor<'de> for ClaimsVisitor<'_> {
    type Value = ClaimsIn<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JWT claims set object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let [mut sub, mut sid, mut jti, mut iss]: [Option<Str<'de>>; 4] = [None, None, None, None];
        let [mut iat, mut exp, mut nbf]: [Option<i64>; 3] = [None; 3];
        let mut gen_ = None;
        let mut aud = None;
        while let Some(name) = map.next_key::<Name>()? {
            match name {
                Name::Sub => set(&mut map, &mut sub, "sub")?,
                Name::Sid => set(&mut map, &mut sid, "sid")?,
                Name::Jti => set(&mut map, &mut jti, "jti")?,
                Name::Iss => set(&mut map, &mut iss, "iss")?,
                Name::Iat => set(&mut map, &mut iat, "iat")?,
                Name::Exp => set(&mut map, &mut exp, "exp")?,
                Name::Nbf => set(&mut map, &mut nbf, "nbf")?,
                Name::Gen => set(&mut map, &mut gen_, "gen")?,
                Name::Aud if aud.is_some() => return Err(de::Error::duplicate_field("aud")),
                Name::Aud => aud = Some(map.next_value_seed(AudienceSeed(self.audience))?),
                _ => {
                    map.next_value::<de::IgnoredAny>()?;
                }
            }
        }
        Ok(ClaimsIn {
            sub: sub.ok_or_else(|| de::Error::missing_field("sub"))?.0,
            sid: sid.ok_or_else(|| de::Error::missing_field("sid"))?.0,
            jti: jti.map(|j| j.0),
            iat,
            exp: exp.ok_or_else(|| de::Error::missing_field("exp"))?,
            nbf,
            generation: gen_,
            iss: iss.map(|i| i.0),
            aud,
        })
    }
}

/// Reads `aud`, a string or an array of strings (RFC 7519 §4.1.3), and answers whether it
/// names the expected audience (`true` for any well-typed `aud` if none is expected).
struct AudienceSeed<'p>(Option<&'p str>);

impl<'de> DeserializeSeed<'de> for AudienceSeed<'_> {
    type Value = bool;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        // `deserialize_any` because `aud` has two shapes; serde_json dispatches on the next
        // byte, nothing is buffered.
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for AudienceSeed<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or an array of strings")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        Ok(self.0.is_none_or(|expected| expected == v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        let mut found = self.0.is_none();
        while let Some(Str(aud)) = seq.next_element::<Str<'de>>()? {
            found |= self.0 == Some(&*aud);
        }
        Ok(found)
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
    generation: u64,
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
        generation,
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
        generation,
    };
    (AccessToken { encoded }, claims)
}

/// Decodes a base64url part into `small` when it fits, else into `large`.
fn decode_part<'b>(
    b64: &str,
    small: &'b mut [MaybeUninit<u8>; 384],
    large: &'b mut Vec<u8>,
) -> Result<&'b [u8], AccessTokenError> {
    match decode_base64url(b64, small) {
        Some(Ok(decoded)) => Ok(decoded),
        Some(Err(())) => Err(AccessTokenError::Malformed),
        None => {
            *large = base64_simd::URL_SAFE_NO_PAD.decode_to_vec(b64).map_err(|_| AccessTokenError::Malformed)?;
            Ok(large.as_slice())
        }
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
    // Exactly three parts. Tokens this key set issued begin with a key's own header and a dot:
    // recognised without scanning or decoding it. The last dot starts the signature (a short
    // scan from the end); a dot in the payload between fails its base64url decoding.
    let own = keys.by_header_prefix(token);
    let bytes = token.as_bytes();
    let (Some(header_end), Some(signature_dot)) = (
        own.map(|key| key.encoded_header().len()).or_else(|| bytes.iter().position(|&b| b == b'.')),
        bytes.iter().rposition(|&b| b == b'.'),
    ) else {
        return Err(AccessTokenError::Malformed);
    };
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), Some(signing_input)) = (
        token.get(..header_end),
        token.get(header_end + 1..signature_dot),
        token.get(signature_dot + 1..),
        bytes.get(..signature_dot),
    ) else {
        return Err(AccessTokenError::Malformed);
    };
    let mut small = [MaybeUninit::uninit(); 384];
    let mut large = Vec::new();
    let payload = decode_part(payload_b64, &mut small, &mut large)?;
    // Any other header is decoded and checked field by field.
    let key = match own {
        Some(key) => key,
        None => {
            let (mut small, mut large) = ([MaybeUninit::uninit(); 384], Vec::new());
            let decoded = decode_part(header_b64, &mut small, &mut large)?;
            let header = parse(decoded, HeaderVisitor).ok_or(AccessTokenError::Malformed)?;
            let alg = match &*header.alg {
                "HS256" => Algorithm::Hs256,
                "EdDSA" => Algorithm::EdDsa,
                _ => return Err(AccessTokenError::UnsupportedAlgorithm),
            };
            if header.crit {
                return Err(AccessTokenError::UnsupportedCritical);
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
    let mut signature = [MaybeUninit::uninit(); 66];
    let Some(Ok(signature)) = decode_base64url(signature_b64, &mut signature) else {
        return Err(AccessTokenError::BadSignature);
    };
    if !key.verify(signing_input, signature) {
        return Err(AccessTokenError::BadSignature);
    }
    // Only now, with the signature verified, are the claims read: in place for sessionkit's
    // own layout, else by the compact reader, else by the full parser.
    let audience = policy.audience.as_deref();
    let claims = match own_claims(payload, audience) {
        Some(claims) => claims,
        None => match compact_claims(payload, audience) {
            Some(claims) => claims,
            None => parse(payload, ClaimsVisitor { audience }).ok_or(AccessTokenError::InvalidClaims)?,
        },
    };
    if let Some(issuer) = &policy.issuer
        && claims.iss.as_deref() != Some(issuer.as_str())
    {
        return Err(AccessTokenError::WrongIssuer);
    }
    if policy.audience.is_some() && claims.aud != Some(true) {
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
        generation: claims.generation.unwrap_or(0),
    };
    check_times(&verified, claims.nbf, policy, now)?;
    // Checked once, here: a cached token's `iat` only recedes into the past.
    if claims.iat.is_some_and(|iat| iat > unix_secs(now).saturating_add(policy.leeway_secs)) {
        return Err(AccessTokenError::IssuedInFuture);
    }
    Ok((verified, claims.nbf))
}

/// The claims of a claims set laid out exactly as [`issue`] writes it: `sub`, `sid`, `jti`,
/// `iat`, `exp`, `gen`, then `iss` and `aud` if present, compact, in that order. Such a set is
/// read by matching the names in place rather than reading and dispatching on each one, which
/// roughly halves the cost of reading the claims of the tokens sessionkit itself issues (the
/// common case). Answers `None` for anything else, and the caller then tries
/// [`compact_claims`]: like it, this only ever accepts what the full parser accepts, with the
/// same values (a unit test compares them on generated claims sets).
fn own_claims<'a>(json: &'a [u8], audience: Option<&str>) -> Option<ClaimsIn<'a>> {
    let mut scan = Compact { json: std::str::from_utf8(json).ok()?, at: 0 };
    scan.literal(b"{\"sub\":")?;
    let sub = scan.string()?;
    scan.literal(b",\"sid\":")?;
    let sid = scan.string()?;
    scan.literal(b",\"jti\":")?;
    let jti = scan.string()?;
    scan.literal(b",\"iat\":")?;
    let iat = scan.integer()?;
    scan.literal(b",\"exp\":")?;
    let exp = scan.integer()?;
    scan.literal(b",\"gen\":")?;
    let generation = u64::try_from(scan.integer()?).ok()?;
    let iss = match scan.literal(b",\"iss\":") {
        Some(()) => Some(Cow::Borrowed(scan.string()?)),
        None => None,
    };
    let aud = match scan.literal(b",\"aud\":") {
        Some(()) => {
            let value = scan.string()?;
            Some(audience.is_none_or(|expected| expected == value))
        }
        None => None,
    };
    scan.literal(b"}")?;
    if scan.at != json.len() {
        return None;
    }
    Some(ClaimsIn {
        sub: Cow::Borrowed(sub),
        sid: Cow::Borrowed(sid),
        jti: Some(Cow::Borrowed(jti)),
        iat: Some(iat),
        exp,
        nbf: None,
        generation: Some(generation),
        iss,
        aud,
    })
}

/// The claims of a claims set written the compact way sessionkit and most libraries write
/// it, read without serde: no whitespace, names and string values without escapes, integers
/// without fraction or exponent (at most 18 digits), no nested values. Answers `None` for
/// anything else, valid or not (whitespace, escapes, invalid UTF-8, arrays,
/// `null`, a claim given twice, a claim of the wrong type, a missing one), and the caller then
/// reads the claims with the full parser ([`ClaimsVisitor`]): this only ever accepts what that
/// parser accepts, with the same values (a unit test compares them on generated claims sets).
fn compact_claims<'a>(json: &'a [u8], audience: Option<&str>) -> Option<ClaimsIn<'a>> {
    /// Stores a value in its slot; `None` if the slot is already filled (a duplicate).
    fn fill<T>(slot: &mut Option<T>, value: T) -> Option<()> {
        slot.is_none().then(|| *slot = Some(value))
    }
    let mut scan = Compact { json: std::str::from_utf8(json).ok()?, at: 0 };
    scan.expect(b'{')?;
    let [mut sub, mut sid, mut jti, mut iss] = [None; 4];
    let [mut iat, mut exp, mut nbf] = [None; 3];
    let mut gen_ = None;
    let mut aud = None;
    loop {
        let name = scan.string()?;
        scan.expect(b':')?;
        match name {
            "sub" => fill(&mut sub, scan.string()?)?,
            "sid" => fill(&mut sid, scan.string()?)?,
            "jti" => fill(&mut jti, scan.string()?)?,
            "iss" => fill(&mut iss, scan.string()?)?,
            "aud" => {
                let value = scan.string()?;
                fill(&mut aud, audience.is_none_or(|expected| expected == value))?;
            }
            "iat" => fill(&mut iat, scan.integer()?)?,
            "exp" => fill(&mut exp, scan.integer()?)?,
            "nbf" => fill(&mut nbf, scan.integer()?)?,
            "gen" => fill(&mut gen_, u64::try_from(scan.integer()?).ok()?)?,
            _ if scan.peek() == Some(b'"') => {
                scan.string()?;
            }
            _ => {
                scan.integer()?;
            }
        }
        match scan.next()? {
            b',' => {}
            b'}' => break,
            _ => return None,
        }
    }
    if scan.at != json.len() {
        return None;
    }
    Some(ClaimsIn {
        sub: Cow::Borrowed(sub?),
        sid: Cow::Borrowed(sid?),
        jti: jti.map(Cow::Borrowed),
        iat,
        exp: exp?,
        nbf,
        generation: gen_,
        iss: iss.map(Cow::Borrowed),
        aud,
    })
}

/// The bytes that end the compact reader's strings: `"`, `\` (an escape: deferred) and the
/// control characters JSON forbids in strings.
const STRING_STOP: [bool; 256] = {
    let mut stop = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        stop[b] = true;
        b += 1;
    }
    stop[b'"' as usize] = true;
    stop[b'\\' as usize] = true;
    stop
};

/// The length of the longest prefix of `bytes` without a byte of [`STRING_STOP`]: eight bytes
/// at a time while eight remain (a string value of a token is mostly a run of such bytes),
/// then one at a time.
fn plain_run(bytes: &[u8]) -> usize {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    /// The high bit of each byte of `x` that is zero, exact up to the first such byte (a
    /// borrow can only mark bytes after it).
    const fn zero_bytes(x: u64) -> u64 {
        x.wrapping_sub(ONES) & !x & HIGHS
    }
    let mut at = 0;
    while let Some(chunk) = bytes.get(at..at + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        // `"`, `\`, and bytes below 0x20 (a byte of 0x80 or more has its high bit set, so
        // `!w` clears it: never a control character).
        let stops = zero_bytes(w ^ u64::from_ne_bytes([b'"'; 8]))
            | zero_bytes(w ^ u64::from_ne_bytes([b'\\'; 8]))
            | (w.wrapping_sub(u64::from_ne_bytes([0x20; 8])) & !w & HIGHS);
        if stops != 0 {
            // Little-endian: the lowest marked bit is the first stop in the string.
            return at + (stops.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    while let Some(&b) = bytes.get(at)
        && !STRING_STOP[usize::from(b)]
    {
        at += 1;
    }
    at
}

/// The value of eight ASCII digits, most significant first, or `None` if any byte is not a
/// digit: three multiplications instead of eight steps.
fn eight_digits(bytes: [u8; 8]) -> Option<i64> {
    let v = u64::from_le_bytes(bytes);
    // Every byte in 0x30..=0x39: its high nibble is 3, and adding 6 does not carry out of it.
    let high = u64::from_ne_bytes([0xf0; 8]);
    let threes = u64::from_ne_bytes([0x30; 8]);
    if v & high != threes || v.wrapping_add(u64::from_ne_bytes([0x06; 8])) & high != threes {
        return None;
    }
    // Little-endian, the first digit is the lowest byte: combine neighbours into pairs, pairs
    // into fours, fours into the eight-digit value.
    let v = v - threes;
    let v = (v.wrapping_mul(10) + (v >> 8)) & 0x00ff_00ff_00ff_00ff;
    let v = (v.wrapping_mul(100) + (v >> 16)) & 0x0000_ffff_0000_ffff;
    let v = v.wrapping_mul(10_000) + (v >> 32);
    i64::try_from(v & 0xffff_ffff).ok()
}

/// A cursor over a compact claims set (valid UTF-8), for [`compact_claims`].
struct Compact<'a> {
    json: &'a str,
    at: usize,
}

impl<'a> Compact<'a> {
    fn peek(&self) -> Option<u8> {
        self.json.as_bytes().get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.at += 1;
        Some(b)
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.next()? == byte).then_some(())
    }

    /// `literal` itself, next; nothing is consumed otherwise.
    fn literal(&mut self, literal: &[u8]) -> Option<()> {
        let end = self.at.checked_add(literal.len())?;
        (self.json.as_bytes().get(self.at..end)? == literal).then(|| self.at = end)
    }

    /// A string without escapes or control characters.
    fn string(&mut self) -> Option<&'a str> {
        self.expect(b'"')?;
        let (bytes, start) = (self.json.as_bytes(), self.at);
        let end = start + plain_run(bytes.get(start..)?);
        if bytes.get(end) != Some(&b'"') {
            return None;
        }
        self.at = end + 1;
        // Ends before an ASCII `"`, so on a character boundary.
        self.json.get(start..end)
    }

    /// `-?(0|[1-9][0-9]*)` with at most 18 digits (so it fits an `i64`), not `-0` (which JSON
    /// parsers read as a float).
    fn integer(&mut self) -> Option<i64> {
        let negative = self.peek() == Some(b'-');
        if negative {
            self.at += 1;
        }
        let (bytes, start) = (self.json.as_bytes(), self.at);
        // One pass: the digits are counted and accumulated together, the first eight at once
        // when they are all digits (a timestamp has ten). The value may wrap on a run longer
        // than 18 digits, which is then refused.
        let mut end = start;
        let mut value = 0i64;
        if let Some(eight) = bytes.get(start..start + 8).and_then(|b| <[u8; 8]>::try_from(b).ok())
            && let Some(first) = eight_digits(eight)
        {
            value = first;
            end += 8;
        }
        while let Some(&b) = bytes.get(end) {
            let digit = b.wrapping_sub(b'0');
            if digit > 9 {
                break;
            }
            value = value.wrapping_mul(10).wrapping_add(i64::from(digit));
            end += 1;
        }
        let len = end - start;
        if len == 0 || len > 18 || (bytes.get(start) == Some(&b'0') && (len > 1 || negative)) {
            return None;
        }
        self.at = end;
        Some(if negative { -value } else { value })
    }
}

/// Reads one JSON object from `json` with `visitor`; nothing may follow it but whitespace.
/// The whole text must be UTF-8 (RFC 7515 §5.2, RFC 7519 §7.2): serde_json checks the strings
/// it reads, not those it skips, so an unknown member's value would otherwise pass unchecked.
fn parse<'de, V: Visitor<'de>>(json: &'de [u8], visitor: V) -> Option<V::Value> {
    let json = std::str::from_utf8(json).ok()?;
    let mut deserializer = serde_json::Deserializer::from_str(json);
    let value = serde::Deserializer::deserialize_map(&mut deserializer, visitor).ok()?;
    deserializer.end().ok()?;
    Some(value)
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
        if self.shards.is_empty() {
            return None;
        }
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
        if self.shards.is_empty() {
            return;
        }
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

    #[test]
    fn base64url_decoding_is_strict_and_bounded() {
        let mut out = [MaybeUninit::uninit(); 8];
        assert_eq!(decode_base64url("QUJD", &mut out), Some(Ok(&b"ABC"[..])));
        assert_eq!(decode_base64url("QUI", &mut out), Some(Ok(&b"AB"[..])));
        assert_eq!(decode_base64url("", &mut out), Some(Ok(&b""[..])));
        // Non-zero trailing bits (a second spelling of the same bytes), a length no bytes
        // encode, padding, the standard alphabet, whitespace: all refused.
        for bad in ["QUJ", "AB", "A", "QUI=", "QU+D", "QU/D", "QU D", "QUJD\n"] {
            assert_eq!(decode_base64url(bad, &mut out), Some(Err(())), "{bad:?}");
        }
        // Too long for the buffer: nothing is decoded, and nothing panics.
        assert_eq!(decode_base64url(&"A".repeat(12), &mut out), None);
        let mut small = [MaybeUninit::uninit(); 384];
        let mut large = Vec::new();
        let long = URL_SAFE_NO_PAD.encode([7u8; 1000]);
        assert_eq!(decode_part(&long, &mut small, &mut large).unwrap(), &[7u8; 1000][..]);
        // A session id has one spelling.
        let id = SessionId::from_bytes([0xff; 16]).to_string();
        assert_eq!(id.parse::<SessionId>().unwrap(), SessionId::from_bytes([0xff; 16]));
        let last = id.chars().last().unwrap();
        assert_eq!(last, 'w', "16 bytes leave 4 trailing bits: {id}");
        assert!(format!("{}_", &id[..21]).parse::<SessionId>().is_err());
    }

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
            generation: 0,
        }
    }

    const NOW: Timestamp = Timestamp::from_unix_nanos(1_000 * 1_000_000_000);

    fn full(json: &[u8], audience: Option<&str>) -> Option<ClaimsIn<'static>> {
        let claims = parse(json, ClaimsVisitor { audience })?;
        // Owned copies, so that the answer outlives `json` as the fast path's does not need to.
        let own = |c: Cow<'_, str>| Cow::Owned(c.into_owned());
        Some(ClaimsIn {
            sub: own(claims.sub),
            sid: own(claims.sid),
            jti: claims.jti.map(own),
            iat: claims.iat,
            exp: claims.exp,
            nbf: claims.nbf,
            generation: claims.generation,
            iss: claims.iss.map(own),
            aud: claims.aud,
        })
    }

    /// Whatever the fast readers (of sessionkit's own layout, and of compact sets) accept, the
    /// full parser accepts with the same values.
    fn agrees(json: &str, audience: Option<&str>) -> Result<(), String> {
        for (name, fast) in
            [("own", own_claims(json.as_bytes(), audience)), ("compact", compact_claims(json.as_bytes(), audience))]
        {
            if let Some(fast) = fast {
                match full(json.as_bytes(), audience) {
                    Some(slow) if slow == fast => {}
                    other => return Err(format!("{json}: {name} {fast:?}, full {other:?}")),
                }
            }
        }
        Ok(())
    }

    #[test]
    fn the_compact_reader_reads_issued_claims_and_defers_the_rest() {
        let issued =
            r#"{"sub":"alice","sid":"AAAAAAAAAAAAAAAAAAAAAA","jti":"j","iat":1,"exp":2,"gen":3,"iss":"i","aud":"api"}"#;
        let fast = compact_claims(issued.as_bytes(), Some("api")).unwrap();
        assert_eq!((&*fast.sub, fast.iat, fast.exp, fast.aud), ("alice", Some(1), 2, Some(true)));
        assert_eq!(fast.generation, Some(3));
        assert_eq!(compact_claims(issued.as_bytes(), Some("other")).unwrap().aud, Some(false));
        let unicode = r#"{"sub":"alicé","sid":"s","exp":2}"#;
        assert_eq!(compact_claims(unicode.as_bytes(), None).unwrap().sub, "alicé");
        assert!(compact_claims(b"{\"sub\":\"al\xffce\",\"sid\":\"s\",\"exp\":2}", None).is_none(), "not UTF-8");
        for deferred in [
            r#"{ "sub":"alice","sid":"s","exp":2}"#,
            r#"{"sub":"al\u0069ce","sid":"s","exp":2}"#,
            r#"{"sub":"alice","sid":"s","exp":2,"aud":["api"]}"#,
            r#"{"sub":"alice","sid":"s","exp":2,"x":null}"#,
            r#"{"sub":"alice","sid":"s","exp":2.0}"#,
            r#"{"sub":"alice","sid":"s","exp":-0}"#,
            r#"{"sub":"alice","sid":"s","exp":01}"#,
            r#"{"sub":"alice","sid":"s","exp":1234567890123456789}"#,
            r#"{"sub":"alice","sid":"s","exp":2,"exp":3}"#,
            r#"{"sub":"alice","sid":"s"}"#,
            r#"{"sub":"alice","sid":"s","exp":2} "#,
            r#"{"sub":"alice","sid":"s","exp":2,}"#,
            r#"{"sub":"alice","sid":"s","exp":"2"}"#,
            r#"{"sub":"alice","sid":"s","exp":2,"gen":-1}"#,
            r#"{"sub":"alice","sid":"s","exp":2,"gen":"1"}"#,
            r#"{"sub":1,"sid":"s","exp":2}"#,
            "{}",
            "[]",
        ] {
            assert!(compact_claims(deferred.as_bytes(), None).is_none(), "{deferred}");
            agrees(deferred, None).unwrap();
        }
    }

    #[test]
    fn the_own_layout_reader_reads_what_issue_writes() {
        let keys = KeySet::new(crate::token::keys::SigningKey::hs256("k", &[1; 32]).unwrap()).unwrap();
        for (issuer, audience) in [(None, None), (Some("https://i.example"), Some("api"))] {
            let policy =
                AccessPolicy { issuer: issuer.map(str::to_owned), audience: audience.map(str::to_owned), ..policy() };
            let user = UserId::new("alice").unwrap();
            let id = SessionId::from_bytes([9; 16]);
            let (token, _) = issue(&keys, &policy, &user, &id, NOW, 7, &TokenDigest::from_bytes([3; 32]));
            let payload = token.expose_secret().split('.').nth(1).unwrap();
            let json = base64_simd::URL_SAFE_NO_PAD.decode_to_vec(payload).unwrap();
            let own = own_claims(&json, audience).expect("the layout issue writes");
            assert_eq!((&*own.sub, own.generation, own.aud), ("alice", Some(7), audience.map(|_| true)));
            assert_eq!(own.iss.as_deref(), issuer);
            agrees(std::str::from_utf8(&json).unwrap(), audience).unwrap();
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(4096))]

        /// Eight digits at once read what eight steps read, and nothing that is not digits.
        #[test]
        fn eight_digits_at_once(bytes in proptest::array::uniform8(proptest::prop_oneof![
            4 => proptest::strategy::Strategy::prop_map(0u8..10, |d| b'0' + d),
            1 => proptest::num::u8::ANY,
        ])) {
            let slow = bytes
                .iter()
                .all(u8::is_ascii_digit)
                .then(|| bytes.iter().fold(0i64, |n, &d| n * 10 + i64::from(d - b'0')));
            proptest::prop_assert_eq!(eight_digits(bytes), slow, "{:?}", bytes);
        }

        /// The word-at-a-time scan stops where the byte-at-a-time one does.
        #[test]
        fn plain_runs_end_at_the_first_stop(
            bytes in proptest::collection::vec(
                proptest::prop_oneof![
                    4 => proptest::strategy::Strategy::prop_map(proptest::num::u8::ANY, |b| b'a' + b % 26),
                    1 => proptest::sample::select(vec![b'"', b'\\', 0x00, 0x1f, 0x20, 0x7f, 0x80, 0xc3, 0xff]),
                ],
                0..40,
            ),
        ) {
            let slow = bytes.iter().position(|&b| STRING_STOP[usize::from(b)]).unwrap_or(bytes.len());
            proptest::prop_assert_eq!(plain_run(&bytes), slow, "{:?}", bytes);
        }

        /// Claims sets in sessionkit's own layout, with values at and beyond its edges: the
        /// own-layout reader may defer, never disagree with the full parser.
        #[test]
        fn the_own_layout_reader_never_disagrees_with_the_full_parser(
            sub in proptest::sample::select(vec!["\"alice\"", "\"a\\\"b\"", "\"é\"", "\"\\u0061\"", "\"\"", "1", "null"]),
            sid in proptest::sample::select(vec!["\"AAAAAAAAAAAAAAAAAAAAAA\"", "\"s\"", "2", "[]"]),
            jti in proptest::sample::select(vec!["\"j\"", "\"\"", "null", "3"]),
            iat in proptest::sample::select(vec!["1", "-1", "0", "-0", "01", "1.5", "1e3", "\"1\"", "999999999999999999", "9223372036854775808"]),
            exp in proptest::sample::select(vec!["2", "-2", "02", "2.0", "null", "123456789012345678", "1234567890123456789"]),
            generation in proptest::sample::select(vec!["0", "1", "7", "0", "-1", "01", "1.0", "null", "\"0\"", "18446744073709551615", "18446744073709551616"]),
            iss in proptest::option::of(proptest::sample::select(vec!["\"i\"", "1", "null", "\"\\n\""])),
            aud in proptest::option::of(proptest::sample::select(vec!["\"api\"", "\"x\"", "[\"api\"]", "null"])),
            tail in proptest::sample::select(vec!["", "", "", "", "", "", ",\"x\":1", ",\"sub\":\"bob\"", ",\"gen\":2", " ", ","]),
            audience in proptest::option::of(proptest::sample::select(vec!["api", "x"])),
        ) {
            let mut json = format!(
                r#"{{"sub":{sub},"sid":{sid},"jti":{jti},"iat":{iat},"exp":{exp},"gen":{generation}"#
            );
            if let Some(iss) = iss {
                json.push_str(&format!(r#","iss":{iss}"#));
            }
            if let Some(aud) = aud {
                json.push_str(&format!(r#","aud":{aud}"#));
            }
            json.push_str(tail);
            json.push('}');
            proptest::prop_assert!(agrees(&json, audience).is_ok(), "{}", agrees(&json, audience).unwrap_err());
        }

        /// Claims sets of names and values, as the compact reader reads them and around its
        /// edges: it may defer to the full parser, never disagree with it.
        #[test]
        fn the_compact_reader_never_disagrees_with_the_full_parser(
            members in proptest::collection::vec(
                (
                    proptest::sample::select(vec![
                        "sub", "sid", "jti", "iss", "aud", "iat", "exp", "nbf", "gen", "x", "crit", "s\\u0075b",
                        "é",
                    ]),
                    proptest::sample::select(vec![
                        "\"alice\"", "\"api\"", "\"\"", "\"a\\\"b\"", "\"é\"", "\"\\u0061pi\"", "0", "-0", "1",
                        "-17", "01", "1.5", "1e3", "999999999999999999", "9223372036854775807",
                        "-9223372036854775808", "9223372036854775808", "18446744073709551616", "null", "true",
                        "[\"api\"]", "[]",
                        "{}", "\"\u{7f}\"", "\"\t\"",
                    ]),
                ),
                0..8,
            ),
            required in proptest::bool::ANY,
            separator in proptest::sample::select(vec![",", ",", ",", ", ", ",,"]),
            audience in proptest::option::of(proptest::sample::select(vec!["api", "alice"])),
        ) {
            // With the required claims first, most sets are valid and many compact.
            let required = required.then(|| r#""sub":"alice","sid":"s","exp":5"#.to_owned());
            let body: Vec<String> =
                required.into_iter().chain(members.iter().map(|(n, v)| format!("\"{n}\":{v}"))).collect();
            let json = format!("{{{}}}", body.join(separator));
            proptest::prop_assert!(agrees(&json, audience).is_ok(), "{}", agrees(&json, audience).unwrap_err());
        }
    }

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
