//! Sessions and the identifiers that name them.
//!
//! * [`Session`] — what the manager hands the application: who, since when, until when.
//! * [`SessionRecord`] — what a [`SessionStore`](crate::SessionStore) persists; store authors
//!   build and read it, applications rarely see it.
//! * [`SessionId`] — the public, non-secret name of a session, for listing and revoking.
//! * [`UserId`] — the application's identifier of the user who owns the session.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::TryRng as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::clock::Timestamp;
use crate::error::{InvalidUserId, RandomError};
use crate::token::TokenDigest;

/// The public identifier of a session: 128 random bits, shown as 22 base64url characters.
///
/// Unlike the [`SessionToken`](crate::SessionToken) it grants nothing: it appears in session
/// lists, audit events and admin URLs, and revoking by id requires an authorised caller.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId([u8; 16]);

/// Length of a [`SessionId`]'s text form.
const SESSION_ID_LEN: usize = 22;

impl SessionId {
    #[cfg(any(test, feature = "test-util"))]
    pub(crate) fn generate() -> Result<Self, RandomError> {
        Self::generate_routed(None)
    }

    /// A random id whose first 12 bits are `route`, when there is one.
    pub(crate) fn generate_routed(route: Option<crate::token::Route>) -> Result<Self, RandomError> {
        let mut b = [0u8; 16];
        rand::rngs::SysRng.try_fill_bytes(&mut b).map_err(|e| RandomError(Some(e)))?;
        if let Some(route) = route {
            route.stamp(&mut b);
        }
        Ok(Self(b))
    }

    /// The id's first 12 bits as a [`Route`](crate::token::Route): its user's route (random
    /// bits for an id made before routing).
    #[must_use]
    pub fn route(&self) -> crate::token::Route {
        crate::token::Route::read(&self.0)
    }

    /// A session id from its 16 bytes, as read back from a store.
    #[must_use]
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    /// The id's bytes.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// 64 bits of the (random) id for hash tables.
    #[inline]
    #[must_use]
    pub fn hash_bits(&self) -> u64 {
        // Not the first two bytes: they hold the route, which all of a user's ids share.
        let [_, _, a, b, c, d, e, f, g, h, ..] = self.0;
        u64::from_le_bytes([a, b, c, d, e, f, g, h])
    }

    /// Another 64 bits of the id, for choosing a shard.
    #[inline]
    #[must_use]
    pub fn shard_bits(&self) -> u64 {
        let [.., a, b, c, d, e, f, g, h] = self.0;
        u64::from_le_bytes([a, b, c, d, e, f, g, h])
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; SESSION_ID_LEN];
        match URL_SAFE_NO_PAD.encode_slice(self.0, &mut buf) {
            Ok(_) => f.write_str(std::str::from_utf8(&buf).map_err(|_| fmt::Error)?),
            Err(_) => Err(fmt::Error),
        }
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({self})")
    }
}

/// The text was not a session id (22 canonical base64url characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed session id")]
pub struct MalformedSessionId;

impl std::str::FromStr for SessionId {
    type Err = MalformedSessionId;

    fn from_str(s: &str) -> Result<Self, MalformedSessionId> {
        if s.len() != SESSION_ID_LEN {
            return Err(MalformedSessionId);
        }
        let mut raw = [std::mem::MaybeUninit::uninit(); 18];
        match crate::token::decode_base64url(s, &mut raw) {
            Some(Ok(decoded)) => decoded.try_into().map(Self).map_err(|_| MalformedSessionId),
            _ => Err(MalformedSessionId),
        }
    }
}

impl Serialize for SessionId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SessionId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The application's identifier of a user: 1 to [`UserId::MAX_LEN`] bytes of UTF-8.
///
/// Cloning is cheap (a reference count), so every session of a user can share one allocation.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(Arc<str>);

impl UserId {
    /// Longest accepted user id, in bytes.
    pub const MAX_LEN: usize = 256;

    /// Checks and wraps a user id.
    ///
    /// # Errors
    /// [`InvalidUserId`] if `id` is empty or longer than [`MAX_LEN`](Self::MAX_LEN) bytes.
    pub fn new(id: impl AsRef<str> + Into<Arc<str>>) -> Result<Self, InvalidUserId> {
        let len = id.as_ref().len();
        if len == 0 || len > Self::MAX_LEN {
            return Err(InvalidUserId { len });
        }
        Ok(Self(id.into()))
    }

    /// The id as a string slice.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The same id in an allocation of its own, made now: see `MemoryStore::insert`.
    #[cfg(feature = "memory")]
    pub(crate) fn copied(&self) -> Self {
        Self(Arc::from(&*self.0))
    }
}

impl TryFrom<&str> for UserId {
    type Error = InvalidUserId;

    fn try_from(s: &str) -> Result<Self, InvalidUserId> {
        Self::new(s)
    }
}

impl TryFrom<String> for UserId {
    type Error = InvalidUserId;

    fn try_from(s: String) -> Result<Self, InvalidUserId> {
        Self::new(s)
    }
}

impl AsRef<str> for UserId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UserId({:?})", &*self.0)
    }
}

impl Serialize for UserId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for UserId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::new(s).map_err(serde::de::Error::custom)
    }
}

/// What is known about the client that created a session: its IP address and user agent.
///
/// One pointer wide (the fields live in a shared allocation, or nowhere when both are unknown),
/// so that a [`SessionRecord`] stays small enough to be copied cheaply on the validation path.
/// Serialises as `{"ip": ..., "user_agent": ...}`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Metadata(Option<Arc<MetadataFields>>);

/// The fields of a non-empty [`Metadata`], and its serialised form.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct MetadataFields {
    ip: Option<IpAddr>,
    user_agent: Option<Arc<str>>,
}

impl Metadata {
    /// Metadata of a client; empty (no allocation) when both are `None`.
    ///
    /// The user agent is kept as given: [`SessionManager::create`](crate::SessionManager::create)
    /// truncates it to
    /// [`SessionConfig::max_user_agent_len`](crate::SessionConfig::max_user_agent_len) bytes.
    #[must_use]
    pub fn new(ip: Option<IpAddr>, user_agent: Option<Arc<str>>) -> Self {
        Self::from_fields(MetadataFields { ip, user_agent })
    }

    fn from_fields(fields: MetadataFields) -> Self {
        if fields.ip.is_none() && fields.user_agent.is_none() { Self(None) } else { Self(Some(Arc::new(fields))) }
    }

    /// The client's IP address, as the application determined it.
    #[must_use]
    pub fn ip(&self) -> Option<IpAddr> {
        self.0.as_ref()?.ip
    }

    /// The client's `User-Agent`, truncated to
    /// [`SessionConfig::max_user_agent_len`](crate::SessionConfig::max_user_agent_len) bytes.
    #[must_use]
    pub fn user_agent(&self) -> Option<&Arc<str>> {
        self.0.as_ref()?.user_agent.as_ref()
    }

    /// `true` when neither IP nor user agent is known.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }
}

impl fmt::Debug for Metadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metadata").field("ip", &self.ip()).field("user_agent", &self.user_agent()).finish()
    }
}

impl Serialize for Metadata {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            Some(fields) => fields.serialize(s),
            None => MetadataFields::default().serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Metadata {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        MetadataFields::deserialize(d).map(Self::from_fields)
    }
}

/// Truncates `s` to at most `max` bytes at a character boundary.
pub(crate) fn truncate_to_boundary(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A session's application data: a small map of JSON values, shared cheaply between copies.
///
/// Read it from [`Session::data`]; change it with
/// [`SessionManager::update_data`](crate::SessionManager::update_data), which applies a
/// [`DataPatch`] atomically and enforces
/// [`SessionConfig::max_data_bytes`](crate::SessionConfig::max_data_bytes) and
/// [`SessionConfig::max_data_depth`](crate::SessionConfig::max_data_depth).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionData(Option<Arc<Map<String, Value>>>);

impl SessionData {
    /// Wraps a map (an empty map is stored as nothing).
    #[must_use]
    pub fn from_map(map: Map<String, Value>) -> Self {
        if map.is_empty() { Self(None) } else { Self(Some(Arc::new(map))) }
    }

    /// The value under `key`.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.as_ref()?.get(key)
    }

    /// The value under `key`, deserialised into `T`; `None` if absent or of another shape.
    #[must_use]
    pub fn get_as<T: serde::de::DeserializeOwned>(&self, key: &str) -> Option<T> {
        T::deserialize(self.get(key)?).ok()
    }

    /// Number of keys.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |m| m.len())
    }

    /// `true` when there are no keys.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The entries, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Value)> {
        self.0.iter().flat_map(|m| m.iter())
    }

    /// The underlying map, if any key is set.
    #[must_use]
    pub fn as_map(&self) -> Option<&Map<String, Value>> {
        self.0.as_deref()
    }

    /// Applies `patch`, returning the new data and its compact JSON size in bytes.
    #[must_use]
    pub fn patched(&self, patch: &DataPatch) -> (Self, usize) {
        let mut map = self.0.as_deref().cloned().unwrap_or_default();
        for op in &patch.ops {
            match op {
                PatchOp::Set(k, v) => {
                    map.insert(k.clone(), v.clone());
                }
                PatchOp::Remove(k) => {
                    map.remove(k);
                }
                PatchOp::Clear => map.clear(),
            }
        }
        let next = Self::from_map(map);
        let size = next.encoded_len();
        (next, size)
    }

    /// Size of the data as compact JSON, in bytes (`{}` counts 2).
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        let mut counter = ByteCounter(0);
        match &self.0 {
            // Serialising a Map<String, Value> into a counting writer cannot fail.
            Some(map) => serde_json::to_writer(&mut counter, map.as_ref()).map_or(usize::MAX, |()| counter.0),
            None => 2,
        }
    }
}

/// `true` when a data bag holding `values` would nest deeper than `limit` levels: the bag is
/// level 1, and each array or object adds one level below the one that holds it.
///
/// Iterative, with an explicit stack of at most `limit` iterators, and it stops at the first
/// container past the limit: a value nested a million levels deep (which serialising,
/// cloning or comparing would recurse through) costs `limit` steps down, never the call stack.
pub(crate) fn nests_deeper_than<'a>(values: impl IntoIterator<Item = &'a Value>, limit: usize) -> bool {
    if limit == 0 {
        return true; // the bag itself is one level
    }
    // The children still to visit of each open container; the containers whose children are
    // on top of the stack are at level `stack.len() + 1`.
    let mut stack: Vec<Children<'a>> = Vec::new();
    for value in values {
        let Some(children) = Children::of(value) else { continue };
        stack.push(children);
        if stack.len() >= limit {
            return true;
        }
        while let Some(top) = stack.last_mut() {
            match top.next() {
                Some(child) => {
                    if let Some(children) = Children::of(child) {
                        stack.push(children);
                        if stack.len() >= limit {
                            return true;
                        }
                    }
                }
                None => {
                    stack.pop();
                }
            }
        }
    }
    false
}

/// The elements of an array or the values of an object, one at a time.
enum Children<'a> {
    Array(std::slice::Iter<'a, Value>),
    Object(serde_json::map::Values<'a>),
}

impl<'a> Children<'a> {
    /// `None` for a scalar, which adds no level.
    fn of(value: &'a Value) -> Option<Self> {
        match value {
            Value::Array(a) => Some(Self::Array(a.iter())),
            Value::Object(o) => Some(Self::Object(o.values())),
            _ => None,
        }
    }
}

impl<'a> Iterator for Children<'a> {
    type Item = &'a Value;

    fn next(&mut self) -> Option<&'a Value> {
        match self {
            Self::Array(i) => i.next(),
            Self::Object(i) => i.next(),
        }
    }
}

struct ByteCounter(usize);

impl std::io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Serialize for SessionData {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            Some(m) => m.serialize(s),
            None => Map::new().serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for SessionData {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Self::from_map(Map::deserialize(d)?))
    }
}

/// A set of changes to a session's data, applied atomically by the store.
///
/// ```
/// use sessionkit::DataPatch;
/// let patch = DataPatch::new().set("role", "admin").remove("pending_mfa");
/// assert_eq!(patch.len(), 2);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
#[must_use]
pub struct DataPatch {
    ops: Vec<PatchOp>,
}

/// One change in a [`DataPatch`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum PatchOp {
    /// Set `key` to a value.
    Set(String, Value),
    /// Remove `key`.
    Remove(String),
    /// Remove every key.
    Clear,
}

impl DataPatch {
    /// An empty patch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key` to `value`.
    pub fn set(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.ops.push(PatchOp::Set(key.into(), value.into()));
        self
    }

    /// Removes `key` (nothing happens if it is absent).
    pub fn remove(mut self, key: impl Into<String>) -> Self {
        self.ops.push(PatchOp::Remove(key.into()));
        self
    }

    /// Removes every key. Later operations in the same patch still apply.
    pub fn clear(mut self) -> Self {
        self.ops.push(PatchOp::Clear);
        self
    }

    /// The operations, in order.
    #[must_use]
    pub fn ops(&self) -> &[PatchOp] {
        &self.ops
    }

    /// Number of operations.
    #[must_use]
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// `true` when the patch changes nothing.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// A session as a [`SessionStore`](crate::SessionStore) keeps it.
///
/// The fields are public so that store implementations can build and persist records; the
/// [`SessionManager`](crate::SessionManager) keeps them consistent (deadlines ordered, digest
/// matching a token it issued).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// The public session id.
    pub id: SessionId,
    /// The digest of the session's current token.
    pub digest: TokenDigest,
    /// Who owns the session.
    pub user: UserId,
    /// When the session was created.
    pub created_at: Timestamp,
    /// When the session's activity was last recorded (at most one touch interval stale).
    pub last_seen_at: Timestamp,
    /// When the session expires unless renewed.
    pub idle_deadline: Timestamp,
    /// When the session expires, whatever its activity.
    pub absolute_deadline: Timestamp,
    /// Whether the session was created with remember-me (and has its longer lifetimes).
    pub remember_me: bool,
    /// Validations counted against the session.
    pub request_count: u64,
    /// How many times the session's token has been rotated ([`SessionManager::rotate`]).
    /// Access tokens carry the generation they were issued for, and a rotation refuses those
    /// of earlier generations. Zero for a new session, and for a session exported before
    /// generations existed (export format version 1).
    ///
    /// [`SessionManager::rotate`]: crate::SessionManager::rotate
    #[serde(default)]
    pub generation: u64,
    /// IP and user agent of the client that created it.
    pub metadata: Metadata,
    /// Application data.
    pub data: SessionData,
}

/// A live session, as the manager returns it from validation, creation and listing.
///
/// A snapshot: it does not change when the stored session does. Cheap to clone.
///
/// Only the crate makes a `Session`, from a record it has just found live (validated, created,
/// rotated or listed), so holding one is proof that the [`SessionManager`](crate::SessionManager)
/// accepted it. Applications and store authors can read the record behind it
/// ([`record`](Self::record), [`into_record`](Self::into_record)) but cannot turn an arbitrary
/// [`SessionRecord`] back into a `Session`:
///
/// ```compile_fail,E0277
/// use sessionkit::Session;
/// use sessionkit::session::SessionRecord;
///
/// fn forge(record: SessionRecord) -> Session {
///     Session::from(record) // error: `From<SessionRecord>` is not implemented for `Session`
/// }
/// ```
///
/// ```compile_fail,E0277
/// use sessionkit::Session;
/// use sessionkit::session::SessionRecord;
///
/// fn forge(record: SessionRecord) -> Session {
///     record.into() // error: the same conversion, spelled `Into`
/// }
/// ```
///
/// The way back is open:
///
/// ```
/// use sessionkit::Session;
/// use sessionkit::session::SessionRecord;
///
/// fn record_of(session: Session) -> SessionRecord {
///     session.into_record()
/// }
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Session {
    record: SessionRecord,
}

impl Session {
    /// Wraps a record the crate has just found live. Crate-only: a `Session` is proof of
    /// validation, so no caller outside the crate may build one from a record of its choosing.
    pub(crate) fn from_live_record(record: SessionRecord) -> Self {
        Self { record }
    }

    /// The public session id.
    #[must_use]
    pub fn id(&self) -> SessionId {
        self.record.id
    }

    /// The user who owns the session.
    #[must_use]
    pub fn user(&self) -> &UserId {
        &self.record.user
    }

    /// When the session was created.
    #[must_use]
    pub fn created_at(&self) -> OffsetDateTime {
        self.record.created_at.to_offset_date_time()
    }

    /// When the session's activity was last recorded. Renewals are throttled by
    /// [`SessionConfig::touch_interval`](crate::SessionConfig::touch_interval), so this may be
    /// up to one interval old.
    #[must_use]
    pub fn last_seen_at(&self) -> OffsetDateTime {
        self.record.last_seen_at.to_offset_date_time()
    }

    /// When the session expires unless it is used again.
    #[must_use]
    pub fn idle_expires_at(&self) -> OffsetDateTime {
        self.record.idle_deadline.to_offset_date_time()
    }

    /// When the session expires whatever its activity.
    #[must_use]
    pub fn absolute_expires_at(&self) -> OffsetDateTime {
        self.record.absolute_deadline.to_offset_date_time()
    }

    /// When the session expires if not used again: the earlier of the two deadlines.
    #[must_use]
    pub fn expires_at(&self) -> OffsetDateTime {
        self.record.idle_deadline.min(self.record.absolute_deadline).to_offset_date_time()
    }

    /// Whether the session was created with remember-me.
    #[must_use]
    pub fn remember_me(&self) -> bool {
        self.record.remember_me
    }

    /// Number of validations counted against the session, this one included.
    #[must_use]
    pub fn request_count(&self) -> u64 {
        self.record.request_count
    }

    /// How many times the session's token has been rotated: the generation its access tokens
    /// are issued for (see [`SessionRecord::generation`]).
    #[must_use]
    pub fn generation(&self) -> u64 {
        self.record.generation
    }

    /// The client's IP address at login, if the application supplied it.
    #[must_use]
    pub fn ip(&self) -> Option<IpAddr> {
        self.record.metadata.ip()
    }

    /// The client's user agent at login (truncated), if the application supplied it.
    #[must_use]
    pub fn user_agent(&self) -> Option<&str> {
        self.record.metadata.user_agent().map(|ua| &**ua)
    }

    /// The application data bag.
    #[must_use]
    pub fn data(&self) -> &SessionData {
        &self.record.data
    }

    /// The stored record behind this session (deadlines as [`Timestamp`]s, token digest).
    #[must_use]
    pub fn record(&self) -> &SessionRecord {
        &self.record
    }

    /// The stored record behind this session, by value.
    #[must_use]
    pub fn into_record(self) -> SessionRecord {
        self.record
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.record.id)
            .field("user", &self.record.user)
            .field("created_at", &self.record.created_at)
            .field("last_seen_at", &self.record.last_seen_at)
            .field("idle_deadline", &self.record.idle_deadline)
            .field("absolute_deadline", &self.record.absolute_deadline)
            .field("remember_me", &self.record.remember_me)
            .field("request_count", &self.record.request_count)
            .field("generation", &self.record.generation)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_id_text_round_trips_and_is_strict() {
        let id = SessionId::generate().unwrap();
        let s = id.to_string();
        assert_eq!(s.len(), 22);
        assert_eq!(s.parse::<SessionId>(), Ok(id));
        assert!("".parse::<SessionId>().is_err());
        assert!(s[..21].parse::<SessionId>().is_err());
        assert!(format!("{s}A").parse::<SessionId>().is_err());
        assert!(format!("{}+", &s[..21]).parse::<SessionId>().is_err());
        assert_eq!(serde_json::from_str::<SessionId>(&serde_json::to_string(&id).unwrap()).unwrap(), id);
    }

    #[test]
    fn user_ids_are_length_checked() {
        assert!(UserId::new("").is_err());
        assert!(UserId::new("a".repeat(UserId::MAX_LEN)).is_ok());
        assert_eq!(UserId::new("a".repeat(UserId::MAX_LEN + 1)), Err(InvalidUserId { len: 257 }));
        assert!(serde_json::from_str::<UserId>("\"\"").is_err());
    }

    #[test]
    fn metadata_serialises_as_its_two_fields() {
        let empty = Metadata::default();
        assert_eq!(serde_json::to_string(&empty).unwrap(), r#"{"ip":null,"user_agent":null}"#);
        assert_eq!(serde_json::from_str::<Metadata>(r#"{"ip":null,"user_agent":null}"#).unwrap(), empty);
        assert_eq!(serde_json::from_str::<Metadata>("{}").unwrap(), empty);
        let full = Metadata::new(Some([192, 0, 2, 1].into()), Some(Arc::from("Agent/1")));
        let json = serde_json::to_string(&full).unwrap();
        assert_eq!(json, r#"{"ip":"192.0.2.1","user_agent":"Agent/1"}"#);
        assert_eq!(serde_json::from_str::<Metadata>(&json).unwrap(), full);
        assert!(Metadata::new(None, None).is_empty());
        assert_eq!(format!("{full:?}"), r#"Metadata { ip: Some(192.0.2.1), user_agent: Some("Agent/1") }"#);
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        assert_eq!(truncate_to_boundary("héllo", 2), "h");
        assert_eq!(truncate_to_boundary("héllo", 3), "hé");
        assert_eq!(truncate_to_boundary("abc", 10), "abc");
    }

    /// `levels` arrays nested in one another around `1`: a data value `levels + 1` deep.
    fn nested(levels: usize) -> Value {
        let mut v = Value::from(1);
        for _ in 0..levels {
            v = Value::Array(vec![v]);
        }
        v
    }

    /// Drops a [`nested`] value one level at a time (the recursive drop would overflow the
    /// stack on a very deep one).
    fn dismantle(mut v: Value) {
        while let Value::Array(mut a) = v {
            match a.pop() {
                Some(inner) => v = inner,
                None => break,
            }
        }
    }

    #[test]
    fn depth_counts_the_bag_and_every_container() {
        let scalars = [Value::from(1), Value::from("x"), Value::Null];
        assert!(!nests_deeper_than(&scalars, 1), "scalars add no level to the bag's");
        assert!(!nests_deeper_than([], 1), "an empty bag is one level");
        assert!(nests_deeper_than([], 0));
        let two = serde_json::json!({});
        assert!(nests_deeper_than([&two], 1));
        assert!(!nests_deeper_than([&two], 2));
        let three = serde_json::json!({"prefs": {"tabs": ["a"]}});
        assert!(!nests_deeper_than([&three], 4), "the bag, the object, prefs, tabs");
        assert!(nests_deeper_than([&three], 3));
        // The deepest branch counts, wherever it is.
        let wide = serde_json::json!([1, [2, [3]], {"a": 4}, [[[[5]]]], 6]);
        assert!(!nests_deeper_than([&Value::from(0), &wide], 6));
        assert!(nests_deeper_than([&Value::from(0), &wide], 5));
        for limit in 1..=40 {
            let at_limit = nested(limit - 1);
            assert!(!nests_deeper_than([&at_limit], limit), "{limit}");
            assert!(nests_deeper_than([&at_limit], limit - 1), "{limit}");
        }
    }

    #[test]
    fn depth_of_a_very_deep_value_is_refused_without_recursion() {
        let deep = nested(1_000_000);
        assert!(nests_deeper_than([&deep], 32));
        // Walked all the way down, iteratively: the bag, then a million arrays.
        assert!(!nests_deeper_than([&deep], 1_000_001));
        assert!(nests_deeper_than([&deep], 1_000_000));
        dismantle(deep);
    }

    #[test]
    fn patches_apply_in_order_and_report_size() {
        let data = SessionData::default();
        assert_eq!(data.encoded_len(), 2);
        let (data, size) = data.patched(&DataPatch::new().set("a", 1).set("b", "x").remove("a"));
        assert_eq!(data.get("b"), Some(&Value::from("x")));
        assert_eq!(data.get("a"), None);
        assert_eq!(size, r#"{"b":"x"}"#.len());
        let (cleared, size) = data.patched(&DataPatch::new().clear());
        assert!(cleared.is_empty());
        assert_eq!(size, 2);
        assert_eq!(data.get_as::<String>("b").as_deref(), Some("x"));
    }
}
