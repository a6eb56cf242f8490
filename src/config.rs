//! [`SessionConfig`]: the session policies, validated once.
//!
//! Build one in code with [`SessionConfig::builder`], or deserialise it from any serde format
//! (TOML, YAML, JSON) with durations written for humans (`"30m"`, `"8h"`, `"7days"`). Either
//! way the combination is checked before a config exists: an idle timeout longer than its
//! absolute timeout, a zero duration or a touch interval that is not shorter than the idle
//! timeout are refused with a [`ConfigError`] naming the option.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config: sessionkit::SessionConfig = serde_json::from_str(
//!     r#"{ "idle_timeout": "15m", "absolute_timeout": "4h", "max_sessions_per_user": 3,
//!          "on_limit": "evict-lru" }"#,
//! )?;
//! assert_eq!(config.idle_timeout().as_secs(), 15 * 60);
//!
//! let invalid = sessionkit::SessionConfig::builder()
//!     .idle_timeout(std::time::Duration::from_secs(3600))
//!     .absolute_timeout(std::time::Duration::from_secs(60))
//!     .build();
//! assert!(invalid.is_err());
//! # Ok(()) }
//! ```

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
use crate::policy::LimitPolicy;

const MINUTE: u64 = 60;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;

/// Validated session policies. Cheap to clone.
///
/// Every option documents its default; the defaults follow the OWASP Session Management Cheat
/// Sheet for an ordinary web application (<https://cheatsheetseries.owasp.org/cheatsheets/Session_Management_Cheat_Sheet.html>).
/// High-value applications should shorten them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "ConfigValues", into = "ConfigValues")]
pub struct SessionConfig {
    values: ConfigValues,
}

/// The raw, unvalidated option values: what serde reads and the builder fills in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct ConfigValues {
    #[serde(with = "humantime_serde")]
    idle_timeout: Duration,
    #[serde(with = "humantime_serde")]
    absolute_timeout: Duration,
    #[serde(with = "humantime_serde")]
    remember_me_idle_timeout: Duration,
    #[serde(with = "humantime_serde")]
    remember_me_absolute_timeout: Duration,
    /// `None`: derived from the idle timeouts ([`derived_touch_interval`]).
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    touch_interval: Option<Duration>,
    #[serde(with = "session_limit")]
    max_sessions_per_user: Option<u32>,
    on_limit: LimitPolicy,
    max_user_agent_len: usize,
    max_data_bytes: usize,
    max_data_depth: usize,
    #[serde(with = "humantime_serde")]
    access_token_ttl: Duration,
    #[serde(with = "humantime_serde")]
    access_token_leeway: Duration,
    #[serde(with = "humantime_serde")]
    refresh_reuse_grace: Duration,
    jwt_issuer: Option<String>,
    jwt_audience: Option<String>,
    #[serde(with = "humantime_serde")]
    sweep_interval: Duration,
    access_token_cache_size: usize,
}

impl Default for ConfigValues {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(30 * MINUTE),
            absolute_timeout: Duration::from_secs(8 * HOUR),
            remember_me_idle_timeout: Duration::from_secs(7 * DAY),
            remember_me_absolute_timeout: Duration::from_secs(30 * DAY),
            touch_interval: None,
            max_sessions_per_user: Some(16),
            on_limit: LimitPolicy::EvictOldest,
            max_user_agent_len: 256,
            max_data_bytes: 4096,
            max_data_depth: 32,
            access_token_ttl: Duration::from_secs(15 * MINUTE),
            access_token_leeway: Duration::from_secs(30),
            refresh_reuse_grace: Duration::from_secs(5),
            jwt_issuer: None,
            jwt_audience: None,
            sweep_interval: Duration::from_secs(15 * MINUTE),
            access_token_cache_size: 16_384,
        }
    }
}

/// `max_sessions_per_user` reads a number, or `"unlimited"` (or `null`) for no limit, since
/// some formats (TOML) have no null.
mod session_limit {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &Option<u32>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(n) => s.serialize_u32(*n),
            None => s.serialize_str("unlimited"),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Limit {
            Number(u32),
            Word(String),
        }
        match Option::<Limit>::deserialize(d)? {
            None => Ok(None),
            Some(Limit::Number(n)) => Ok(Some(n)),
            Some(Limit::Word(w)) if w == "unlimited" => Ok(None),
            Some(Limit::Word(_)) => Err(serde::de::Error::custom("expected a number or \"unlimited\"")),
        }
    }
}

/// The touch interval used when none is set: a quarter of the shorter idle timeout (ordinary
/// or remember-me), at most 60 seconds. With idle timeouts of 4 minutes or more that is 60 s,
/// the value it always had; with a 30-second one, 7.5 s; so a short idle timeout works without
/// also choosing a touch interval, and idle expiry stays exact to within a quarter of it.
fn derived_touch_interval(idle: Duration, remember_me_idle: Duration) -> Duration {
    (idle.min(remember_me_idle) / 4).min(Duration::from_secs(MINUTE))
}

/// The largest [`SessionConfig::max_data_bytes`] a configuration may set: 1 MiB. Every reader
/// of stored sessions (the export and snapshot line limit, [`crate::export::MAX_LINE`]) is sized
/// for a session at this ceiling.
pub(crate) const MAX_DATA_BYTES_CEILING: usize = 1024 * 1024;

/// The largest [`SessionConfig::max_user_agent_len`] a configuration may set: 64 KiB.
pub(crate) const MAX_USER_AGENT_LEN_CEILING: usize = 64 * 1024;

/// Durations beyond this many nanoseconds do not fit the stores' `i64` timestamps.
const MAX_DURATION: Duration = Duration::from_nanos(i64::MAX as u64);

impl TryFrom<ConfigValues> for SessionConfig {
    type Error = ConfigError;

    fn try_from(v: ConfigValues) -> Result<Self, ConfigError> {
        for (field, d) in [
            ("idle_timeout", v.idle_timeout),
            ("absolute_timeout", v.absolute_timeout),
            ("remember_me_idle_timeout", v.remember_me_idle_timeout),
            ("remember_me_absolute_timeout", v.remember_me_absolute_timeout),
        ] {
            if d.is_zero() {
                return Err(ConfigError::Zero { field });
            }
            if d > MAX_DURATION {
                return Err(ConfigError::TooLong { field });
            }
        }
        if v.touch_interval.is_some_and(|d| d > MAX_DURATION) {
            return Err(ConfigError::TooLong { field: "touch_interval" });
        }
        let touch_interval =
            v.touch_interval.unwrap_or_else(|| derived_touch_interval(v.idle_timeout, v.remember_me_idle_timeout));
        for (idle, absolute, idle_d, absolute_d) in [
            ("idle_timeout", "absolute_timeout", v.idle_timeout, v.absolute_timeout),
            (
                "remember_me_idle_timeout",
                "remember_me_absolute_timeout",
                v.remember_me_idle_timeout,
                v.remember_me_absolute_timeout,
            ),
        ] {
            if idle_d > absolute_d {
                return Err(ConfigError::IdleExceedsAbsolute { idle, absolute });
            }
            if touch_interval >= idle_d {
                return Err(ConfigError::TouchIntervalTooLong { idle });
            }
        }
        if let Some(max) = v.max_sessions_per_user {
            range_check("max_sessions_per_user", u64::from(max), 1, 10_000)?;
        }
        range_check("max_user_agent_len", v.max_user_agent_len as u64, 0, MAX_USER_AGENT_LEN_CEILING as u64)?;
        range_check("max_data_bytes", v.max_data_bytes as u64, 0, MAX_DATA_BYTES_CEILING as u64)?;
        range_check("max_data_depth", v.max_data_depth as u64, 1, SessionConfig::MAX_DATA_DEPTH as u64)?;
        if v.access_token_ttl.is_zero() {
            return Err(ConfigError::Zero { field: "access_token_ttl" });
        }
        range_check("access_token_ttl", v.access_token_ttl.as_secs(), 1, DAY)?;
        range_check("access_token_leeway", v.access_token_leeway.as_secs(), 0, 5 * MINUTE)?;
        range_check("refresh_reuse_grace", v.refresh_reuse_grace.as_secs(), 0, MINUTE)?;
        range_check("sweep_interval", v.sweep_interval.as_secs(), 1, DAY)?;
        range_check("access_token_cache_size", v.access_token_cache_size as u64, 0, 10_000_000)?;
        for (field, value) in [("jwt_issuer", &v.jwt_issuer), ("jwt_audience", &v.jwt_audience)] {
            if let Some(value) = value {
                range_check(field, value.len() as u64, 1, 256)?;
            }
        }
        Ok(Self { values: v })
    }
}

fn range_check(field: &'static str, value: u64, min: u64, max: u64) -> Result<(), ConfigError> {
    if (min..=max).contains(&value) { Ok(()) } else { Err(ConfigError::OutOfRange { field, min, max }) }
}

impl From<SessionConfig> for ConfigValues {
    fn from(c: SessionConfig) -> Self {
        c.values
    }
}

impl Default for SessionConfig {
    /// The documented defaults (which are valid by construction).
    fn default() -> Self {
        Self { values: ConfigValues::default() }
    }
}

impl SessionConfig {
    /// The largest [`max_data_depth`](Self::max_data_depth) a configuration may set: 64 levels.
    ///
    /// Every reader of stored sessions parses JSON with serde_json, which refuses documents
    /// nested more than 127 levels deep. A record nests its data at most one level down (an
    /// export or snapshot line is an object holding the data bag; the Redis and SQL stores keep
    /// the bag as a document of its own), so data up to 126 levels deep would parse; 64 leaves
    /// room for an envelope that grows, and bounds the stack that serde's buffered (`flatten`,
    /// internally tagged) deserialisation spends per level.
    pub const MAX_DATA_DEPTH: usize = 64;

    /// A builder starting from the defaults.
    pub fn builder() -> SessionConfigBuilder {
        SessionConfigBuilder { values: ConfigValues::default() }
    }

    /// A builder starting from this configuration, to derive a variant of it.
    pub fn to_builder(&self) -> SessionConfigBuilder {
        SessionConfigBuilder { values: self.values.clone() }
    }

    /// How long a session may go unused before it expires. Default 30 minutes.
    #[must_use]
    pub fn idle_timeout(&self) -> Duration {
        self.values.idle_timeout
    }

    /// How long a session may live at most, however active. Default 8 hours.
    #[must_use]
    pub fn absolute_timeout(&self) -> Duration {
        self.values.absolute_timeout
    }

    /// Idle timeout of remember-me sessions. Default 7 days.
    #[must_use]
    pub fn remember_me_idle_timeout(&self) -> Duration {
        self.values.remember_me_idle_timeout
    }

    /// Absolute lifetime of remember-me sessions. Default 30 days.
    #[must_use]
    pub fn remember_me_absolute_timeout(&self) -> Duration {
        self.values.remember_me_absolute_timeout
    }

    /// Minimum time between two writes of a session's activity: the one set, else a quarter of
    /// the shorter idle timeout, at most 60 seconds (60 s with the default idle timeouts).
    #[must_use]
    pub fn touch_interval(&self) -> Duration {
        self.values
            .touch_interval
            .unwrap_or_else(|| derived_touch_interval(self.values.idle_timeout, self.values.remember_me_idle_timeout))
    }

    /// Maximum live sessions per user, or `None` for no limit. Default 16.
    #[must_use]
    pub fn max_sessions_per_user(&self) -> Option<u32> {
        self.values.max_sessions_per_user
    }

    /// What a login does when the user is at the limit. Default [`LimitPolicy::EvictOldest`].
    #[must_use]
    pub fn on_limit(&self) -> LimitPolicy {
        self.values.on_limit
    }

    /// User-agent strings are truncated to this many bytes. Default 256.
    #[must_use]
    pub fn max_user_agent_len(&self) -> usize {
        self.values.max_user_agent_len
    }

    /// Largest JSON-encoded size of a session's data bag, in bytes. Default 4096.
    #[must_use]
    pub fn max_data_bytes(&self) -> usize {
        self.values.max_data_bytes
    }

    /// Deepest nesting of a session's data bag, in levels (the bag itself is level 1). Default
    /// 32.
    #[must_use]
    pub fn max_data_depth(&self) -> usize {
        self.values.max_data_depth
    }

    /// Lifetime of access tokens (JWTs). Default 15 minutes.
    #[must_use]
    pub fn access_token_ttl(&self) -> Duration {
        self.values.access_token_ttl
    }

    /// Clock skew tolerated when checking an access token's `exp` and `nbf`. Default 30 seconds.
    #[must_use]
    pub fn access_token_leeway(&self) -> Duration {
        self.values.access_token_leeway
    }

    /// How long a just-spent refresh token still returns its successor instead of counting as
    /// reuse. Default 5 seconds; zero makes refresh tokens strictly single-use.
    #[must_use]
    pub fn refresh_reuse_grace(&self) -> Duration {
        self.values.refresh_reuse_grace
    }

    /// The `iss` claim of access tokens, required on verification when set. Default none.
    #[must_use]
    pub fn jwt_issuer(&self) -> Option<&str> {
        self.values.jwt_issuer.as_deref()
    }

    /// The `aud` claim of access tokens, required on verification when set. Default none.
    #[must_use]
    pub fn jwt_audience(&self) -> Option<&str> {
        self.values.jwt_audience.as_deref()
    }

    /// How many verified access tokens are cached. Default 16,384.
    #[must_use]
    pub fn access_token_cache_size(&self) -> usize {
        self.values.access_token_cache_size
    }

    /// How often the background sweeper removes expired sessions. Default 15 minutes.
    #[must_use]
    pub fn sweep_interval(&self) -> Duration {
        self.values.sweep_interval
    }

    /// The `(idle, absolute)` lifetimes of a session, by its remember-me flag.
    #[must_use]
    pub fn lifetimes(&self, remember_me: bool) -> (Duration, Duration) {
        if remember_me {
            (self.values.remember_me_idle_timeout, self.values.remember_me_absolute_timeout)
        } else {
            (self.values.idle_timeout, self.values.absolute_timeout)
        }
    }
}

/// Builds a [`SessionConfig`]; every setter documents its default. Nothing is checked until
/// [`build`](Self::build), which checks everything at once.
///
/// It also deserialises, unchecked, from the same format as [`SessionConfig`]: read a file
/// into a builder, apply command-line overrides, then build, so that a file which is only
/// valid together with its overrides is accepted.
#[derive(Debug, Clone, Deserialize)]
#[serde(transparent)]
#[must_use]
pub struct SessionConfigBuilder {
    values: ConfigValues,
}

impl SessionConfigBuilder {
    /// How long a session may go unused before it expires. Default 30 minutes (OWASP: 15–30
    /// minutes for low-risk applications, 2–5 for high-value ones).
    pub fn idle_timeout(mut self, d: Duration) -> Self {
        self.values.idle_timeout = d;
        self
    }

    /// How long a session may live at most, whatever its activity. Default 8 hours (OWASP: 4–8
    /// hours, one working day). Must not be shorter than the idle timeout.
    pub fn absolute_timeout(mut self, d: Duration) -> Self {
        self.values.absolute_timeout = d;
        self
    }

    /// Idle timeout of sessions created with remember-me. Default 7 days.
    pub fn remember_me_idle_timeout(mut self, d: Duration) -> Self {
        self.values.remember_me_idle_timeout = d;
        self
    }

    /// Absolute lifetime of sessions created with remember-me. Default 30 days.
    pub fn remember_me_absolute_timeout(mut self, d: Duration) -> Self {
        self.values.remember_me_absolute_timeout = d;
        self
    }

    /// Minimum time between two writes of a session's activity (sliding renewal). Default: a
    /// quarter of the shorter idle timeout (ordinary or remember-me), at most 60 seconds, so
    /// 60 s with idle timeouts of 4 minutes or more and 7.5 s with `idle_timeout(30 s)`. Set explicitly, it must be
    /// shorter than both idle timeouts, or [`build`](Self::build) refuses it.
    ///
    /// Validation renews the idle deadline only when the last renewal is at least this old, so a
    /// remote store is written at most once per interval per session however busy the session
    /// is. The price: idle expiry, and `last_seen_at`, are exact only to within this interval.
    /// Zero renews on every validation.
    pub fn touch_interval(mut self, d: Duration) -> Self {
        self.values.touch_interval = Some(d);
        self
    }

    /// Maximum number of live sessions per user; `None` for no limit. Default 16, which stops a
    /// script that logs in in a loop from filling memory while leaving room for every device.
    pub fn max_sessions_per_user(mut self, max: Option<u32>) -> Self {
        self.values.max_sessions_per_user = max;
        self
    }

    /// What a login does when the user already has the maximum number of sessions. Default
    /// [`LimitPolicy::EvictOldest`].
    pub fn on_limit(mut self, policy: LimitPolicy) -> Self {
        self.values.on_limit = policy;
        self
    }

    /// User-agent strings recorded with a session are truncated to this many bytes (at a
    /// character boundary). Default 256, enough for every real browser's; at most 64 KiB.
    pub fn max_user_agent_len(mut self, len: usize) -> Self {
        self.values.max_user_agent_len = len;
        self
    }

    /// Largest size of a session's application data bag, measured as compact JSON. Default
    /// 4096 bytes; at most 1 MiB, so that the largest session still fits one line of an export
    /// or snapshot ([`MAX_LINE`](crate::export::MAX_LINE)). Data is for small facts (a role, a
    /// CSRF seed, a locale), not for caching.
    pub fn max_data_bytes(mut self, bytes: usize) -> Self {
        self.values.max_data_bytes = bytes;
        self
    }

    /// Deepest nesting of a session's application data bag, in levels: the bag itself is level
    /// 1, and every object or array inside it adds one (`{"role": "admin"}` is 1 level deep,
    /// `{"prefs": {"tabs": ["a"]}}` 3). Default 32: small facts rarely nest beyond a handful
    /// of levels, and 32 leaves room for any reasonable document while keeping the check and
    /// every recursive (de)serialiser that handles the data cheap. 1 to
    /// [`SessionConfig::MAX_DATA_DEPTH`] (64).
    ///
    /// A write that would store data nested deeper is refused with
    /// [`Error::DataTooDeep`](crate::Error::DataTooDeep), before anything is serialised or
    /// stored. The bound is what keeps every session readable again: snapshots, exports and the
    /// Redis and SQL stores read sessions back with serde_json, which refuses JSON nested more
    /// than 127 levels, so data the manager accepted but no reader could parse would make a
    /// snapshot or an export unloadable. The ceiling keeps the deepest allowed data well within
    /// that, inside the record that holds it.
    pub fn max_data_depth(mut self, levels: usize) -> Self {
        self.values.max_data_depth = levels;
        self
    }

    /// Lifetime of access tokens (JWTs): how long a stolen access token stays useful, and how
    /// often clients refresh. Default 15 minutes; at most one day. Revocation does not wait for
    /// it: a revoked session's access tokens are refused at once through the denylist.
    ///
    /// Verifying an access token does not renew its session; a refresh does. With an idle
    /// timeout shorter than this lifetime, clients must refresh before the idle timeout runs
    /// out, not only before the token expires, or their session idles out meanwhile.
    pub fn access_token_ttl(mut self, d: Duration) -> Self {
        self.values.access_token_ttl = d;
        self
    }

    /// Clock skew tolerated between the issuer and verifiers of access tokens, applied to `exp`
    /// and `nbf`. Default 30 seconds; at most 5 minutes.
    pub fn access_token_leeway(mut self, d: Duration) -> Self {
        self.values.access_token_leeway = d;
        self
    }

    /// Grace window of refresh-token rotation. Default 5 seconds; at most one minute.
    ///
    /// Within it, presenting the refresh token that was just spent returns the same successor
    /// pair again, so a client that sends parallel refreshes or retries after a lost response is
    /// not logged out. After it, presenting a spent refresh token is treated as theft (RFC 6819
    /// §5.2.2.3, RFC 9700 §4.14.2) and revokes the whole session. The window extends on both
    /// sides of the moment the token was spent, so instances whose clocks differ by less than
    /// it still see a concurrent refresh as one.
    ///
    /// # Warning
    /// A longer window gives a thief who races the legitimate client that much longer to use a
    /// stolen, just-spent token undetected. Zero makes refresh tokens strictly single-use.
    pub fn refresh_reuse_grace(mut self, d: Duration) -> Self {
        self.values.refresh_reuse_grace = d;
        self
    }

    /// The `iss` claim to put in access tokens and require on verification. Default none.
    pub fn jwt_issuer(mut self, issuer: Option<String>) -> Self {
        self.values.jwt_issuer = issuer;
        self
    }

    /// The `aud` claim to put in access tokens and require on verification. Default none.
    pub fn jwt_audience(mut self, audience: Option<String>) -> Self {
        self.values.jwt_audience = audience;
        self
    }

    /// How many verified access tokens are remembered, so that a token presented again skips
    /// signature verification and parsing (it is still compared in full, its `exp`/`nbf` are
    /// still checked, and the denylist is still consulted, so revocation stays immediate).
    /// Default 16,384 (about 6 MB at most); zero disables the cache.
    pub fn access_token_cache_size(mut self, n: usize) -> Self {
        self.values.access_token_cache_size = n;
        self
    }

    /// How often the background sweeper
    /// (`SessionManager::spawn_sweeper`, feature `tokio`) removes
    /// expired sessions. Default 15 minutes; 1 second to 1 day. Expired sessions are refused
    /// on validation whatever this is; it only bounds how long they occupy memory.
    pub fn sweep_interval(mut self, d: Duration) -> Self {
        self.values.sweep_interval = d;
        self
    }

    /// Checks the combination and returns the configuration.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first offending option: a zero or overlong duration, an idle
    /// timeout longer than its absolute timeout, a touch interval not shorter than an idle
    /// timeout, or a size outside its range.
    pub fn build(self) -> Result<SessionConfig, ConfigError> {
        SessionConfig::try_from(self.values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_documented_values() {
        let c = SessionConfig::builder().build();
        assert_eq!(c.as_ref(), Ok(&SessionConfig::default()));
        let c = SessionConfig::default();
        assert_eq!(c.idle_timeout(), Duration::from_secs(1800));
        assert_eq!(c.absolute_timeout(), Duration::from_secs(8 * 3600));
        assert_eq!(c.lifetimes(true), (Duration::from_secs(7 * 86400), Duration::from_secs(30 * 86400)));
        assert_eq!(c.max_sessions_per_user(), Some(16));
    }

    #[test]
    fn idle_longer_than_absolute_is_refused() {
        let err = SessionConfig::builder()
            .idle_timeout(Duration::from_secs(7200))
            .absolute_timeout(Duration::from_secs(3600))
            .build();
        assert_eq!(err, Err(ConfigError::IdleExceedsAbsolute { idle: "idle_timeout", absolute: "absolute_timeout" }));
        let err = SessionConfig::builder().remember_me_idle_timeout(Duration::from_secs(400 * 86400)).build();
        assert!(matches!(err, Err(ConfigError::IdleExceedsAbsolute { idle: "remember_me_idle_timeout", .. })));
    }

    #[test]
    fn zero_and_overlong_durations_are_refused() {
        assert_eq!(
            SessionConfig::builder().idle_timeout(Duration::ZERO).build(),
            Err(ConfigError::Zero { field: "idle_timeout" })
        );
        assert_eq!(
            SessionConfig::builder().absolute_timeout(Duration::MAX).build(),
            Err(ConfigError::TooLong { field: "absolute_timeout" })
        );
    }

    #[test]
    fn touch_interval_must_be_shorter_than_idle() {
        let err = SessionConfig::builder()
            .idle_timeout(Duration::from_secs(60))
            .touch_interval(Duration::from_secs(60))
            .build();
        assert_eq!(err, Err(ConfigError::TouchIntervalTooLong { idle: "idle_timeout" }));
        assert!(SessionConfig::builder().touch_interval(Duration::ZERO).build().is_ok());
    }

    #[test]
    fn an_unset_touch_interval_follows_short_idle_timeouts() {
        let defaults = SessionConfig::default();
        assert_eq!(defaults.touch_interval(), Duration::from_secs(60), "the documented default");
        let short = SessionConfig::builder().idle_timeout(Duration::from_secs(30)).build().unwrap();
        assert_eq!(short.touch_interval(), Duration::from_millis(7500));
        let tiny = SessionConfig::builder().idle_timeout(Duration::from_secs(3)).build().unwrap();
        assert_eq!(tiny.touch_interval(), Duration::from_millis(750));
        let four_minutes = SessionConfig::builder().idle_timeout(Duration::from_secs(240)).build().unwrap();
        assert_eq!(four_minutes.touch_interval(), Duration::from_secs(60), "unchanged from 4 minutes up");
        let remembered = SessionConfig::builder()
            .remember_me_idle_timeout(Duration::from_secs(100))
            .remember_me_absolute_timeout(Duration::from_secs(1000))
            .build()
            .unwrap();
        assert_eq!(remembered.touch_interval(), Duration::from_secs(25), "the shorter idle timeout counts");
        let json = serde_json::to_string(&short).unwrap();
        assert!(!json.contains("touch_interval"), "a derived value is not written out: {json}");
        assert_eq!(serde_json::from_str::<SessionConfig>(&json).unwrap(), short);
        let from_file: SessionConfig = serde_json::from_str(r#"{"idle_timeout":"20s"}"#).unwrap();
        assert_eq!(from_file.touch_interval(), Duration::from_secs(5));
        // An explicit impossible combination is still refused.
        let err = SessionConfig::builder()
            .idle_timeout(Duration::from_secs(30))
            .touch_interval(Duration::from_secs(60))
            .build();
        assert_eq!(err, Err(ConfigError::TouchIntervalTooLong { idle: "idle_timeout" }));
    }

    #[test]
    fn limits_are_range_checked() {
        assert!(matches!(
            SessionConfig::builder().max_sessions_per_user(Some(0)).build(),
            Err(ConfigError::OutOfRange { field: "max_sessions_per_user", .. })
        ));
        assert!(SessionConfig::builder().max_sessions_per_user(None).build().is_ok());
    }

    #[test]
    fn data_depth_defaults_to_32_and_is_bounded_by_what_readers_parse() {
        assert_eq!(SessionConfig::default().max_data_depth(), 32);
        for depth in [1, 32, SessionConfig::MAX_DATA_DEPTH] {
            let c = SessionConfig::builder().max_data_depth(depth).build().unwrap();
            assert_eq!(c.max_data_depth(), depth);
        }
        for depth in [0, SessionConfig::MAX_DATA_DEPTH + 1, usize::MAX] {
            assert_eq!(
                SessionConfig::builder().max_data_depth(depth).build(),
                Err(ConfigError::OutOfRange { field: "max_data_depth", min: 1, max: 64 })
            );
        }
        let c: SessionConfig = serde_json::from_str(r#"{"max_data_depth":8}"#).unwrap();
        assert_eq!(c.max_data_depth(), 8);
        assert!(serde_json::to_string(&c).unwrap().contains(r#""max_data_depth":8"#));
        let bad = serde_json::from_str::<SessionConfig>(r#"{"max_data_depth":65}"#).unwrap_err();
        assert!(bad.to_string().contains("max_data_depth"), "{bad}");
    }

    #[test]
    fn deserialises_human_durations_and_validates() {
        let c: SessionConfig = serde_json::from_str(
            r#"{"idle_timeout":"10m","absolute_timeout":"2h 30m","on_limit":"reject","max_sessions_per_user":null}"#,
        )
        .unwrap();
        assert_eq!(c.idle_timeout(), Duration::from_secs(600));
        assert_eq!(c.absolute_timeout(), Duration::from_secs(9000));
        assert_eq!(c.on_limit(), LimitPolicy::Reject);
        assert_eq!(c.max_sessions_per_user(), None);

        let bad = serde_json::from_str::<SessionConfig>(r#"{"idle_timeout":"9h"}"#).unwrap_err();
        assert!(bad.to_string().contains("idle_timeout"), "{bad}");
        let unknown = serde_json::from_str::<SessionConfig>(r#"{"idle_timout":"9h"}"#).unwrap_err();
        assert!(unknown.to_string().contains("unknown field"), "{unknown}");
    }

    #[test]
    fn the_session_limit_reads_numbers_and_unlimited() {
        let c: SessionConfig = serde_json::from_str(r#"{"max_sessions_per_user":"unlimited"}"#).unwrap();
        assert_eq!(c.max_sessions_per_user(), None);
        let c: SessionConfig = serde_json::from_str(r#"{"max_sessions_per_user":3}"#).unwrap();
        assert_eq!(c.max_sessions_per_user(), Some(3));
        assert!(serde_json::from_str::<SessionConfig>(r#"{"max_sessions_per_user":"lots"}"#).is_err());
        let json =
            serde_json::to_string(&SessionConfig::builder().max_sessions_per_user(None).build().unwrap()).unwrap();
        assert!(json.contains(r#""max_sessions_per_user":"unlimited""#), "{json}");
    }

    #[test]
    fn a_builder_deserialises_unchecked_then_builds() {
        let b: SessionConfigBuilder = serde_json::from_str(r#"{"idle_timeout":"9h"}"#).unwrap();
        assert!(b.clone().build().is_err(), "9h idle under an 8h absolute is invalid alone");
        assert!(b.absolute_timeout(Duration::from_secs(10 * 3600)).build().is_ok(), "valid with the override");
    }

    #[test]
    fn serialises_back_to_what_it_reads() {
        let c = SessionConfig::builder().idle_timeout(Duration::from_secs(900)).build().unwrap();
        let json = serde_json::to_string(&c).unwrap();
        assert!(json.contains(r#""idle_timeout":"15m""#), "{json}");
        assert_eq!(serde_json::from_str::<SessionConfig>(&json).unwrap(), c);
    }
}
