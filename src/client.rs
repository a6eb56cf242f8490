//! The client side of access and refresh tokens (feature `client`): when to refresh, and one
//! refresh for any number of concurrent callers.
//!
//! A [`TokenHolder`] keeps the [`Tokens`] an API client obtained at login (an access token, a
//! refresh token, and when the access token expires). Every request asks it for a token with
//! [`get_or_refresh`](TokenHolder::get_or_refresh): a token that is not yet due for refresh
//! comes straight back; otherwise the holder runs **one** refresh, whatever the number of
//! callers, and every caller gets its result, error included (*single flight*). A request the
//! server still rejects with `401 access_token_expired` (the clocks disagree, the device slept)
//! hands the token it used to [`refresh_stale`](TokenHolder::refresh_stale), which refreshes
//! only if nobody has replaced that token yet, so N failing requests cause one refresh.
//!
//! The holder does no I/O: the application passes the refresh as a closure that receives the
//! tokens held so far and returns a future of a new [`Grant`], so any HTTP client and any async
//! runtime will do.
//!
//! ```
//! use std::time::Duration;
//! use sessionkit::client::{Grant, TokenHolder, Tokens};
//! use sessionkit::clock::MockClock;
//! use std::sync::Arc;
//!
//! /// What the application's HTTP call to the refresh endpoint returns.
//! async fn call_refresh_endpoint(old: Option<Arc<Tokens>>) -> Result<Grant, std::io::Error> {
//!     let _refresh_token = old.as_deref().and_then(Tokens::refresh_token); // send this
//!     Ok(Grant::new("new-access-token").with_refresh_token("new-refresh-token")
//!         .with_expires_in(Duration::from_secs(900)))
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let clock = MockClock::new(); // TokenHolder::new() uses the system clock
//! let holder: TokenHolder<std::io::Error, MockClock> = TokenHolder::with_clock(clock.clone());
//!
//! // After login: the server said `"expires_in": 900`.
//! holder.set(Grant::new("login-access-token").with_refresh_token("login-refresh-token")
//!     .with_expires_in(Duration::from_secs(900)));
//! // The default margin is 10 % of the lifetime, at most 60 s: refresh after 14 minutes.
//! assert_eq!(holder.time_until_refresh(), Some(Duration::from_secs(840)));
//!
//! // Every request: a fresh token comes back without calling the closure.
//! let tokens = holder.get_or_refresh(call_refresh_endpoint).await?;
//! assert_eq!(tokens.access_token().expose_secret(), "login-access-token");
//!
//! // 14 minutes later, the next caller refreshes (and concurrent callers share that refresh).
//! clock.advance(Duration::from_secs(840));
//! let tokens = holder.get_or_refresh(call_refresh_endpoint).await?;
//! assert_eq!(tokens.access_token().expose_secret(), "new-access-token");
//! # Ok(()) }
//! ```
//!
//! # Scheduling
//!
//! A token obtained with `expires_in` = *L* is refreshed from `obtained_at + L - margin(L)` on
//! ([`Tokens::refresh_at`]); [`RefreshMargin`] sets the margin, by default 10 % of *L* but at
//! most 60 seconds. `expires_in` counts from the moment the server answered, so the holder
//! counts it on its own clock from a moment no later than that: from when the refresh future
//! *started* for refreshes (the request had not been sent yet, so the computed expiry is never
//! later than the server's), from the call for [`TokenHolder::set`]. The difference between
//! the server's clock and the client's therefore does not matter: only durations travel, never
//! instants (which is why a client should not read the token's `exp` claim instead).
//!
//! A wall clock that jumps forward only makes a refresh come early. One that steps back behind
//! the moment a token was obtained makes the holder refresh at once, since it can no longer
//! tell how old the token is; a smaller step back, or a suspended device, can make a token look
//! younger than it is, which is what the `401` path ([`TokenHolder::refresh_stale`]) is for.
//! Without `expires_in` a token is never refreshed proactively, only through that path.
//!
//! A background task that keeps the token fresh is a loop around
//! [`time_until_refresh`](TokenHolder::time_until_refresh) and `get_or_refresh` on the
//! application's own runtime; nothing runs unless the application runs it.
//!
//! # Single flight, failures and cancellation
//!
//! At most one refresh runs at a time. Callers that arrive while it runs wait for it, and all
//! of them get its result: the new tokens, or the same [`RefreshError`] (the application's
//! error shared behind an [`Arc`]). A failed refresh leaves the tokens held as they were; when
//! the next attempt may start depends on the failure (next section).
//!
//! Every waiting caller can drive the refresh future, so dropping the caller that started it
//! (a timeout, a cancelled request) does not stop it while others wait. Once *every* caller has
//! gone, the refresh future is dropped, and the next caller starts a new one. A refresh request
//! that reached the server before it was dropped has spent the old refresh token; sessionkit's
//! server answers a replay of it within `refresh_reuse_grace` (5 s by default) with the same
//! new pair, so the next attempt still succeeds. A refresh closure or future that panics
//! fails that attempt with [`RefreshError::Panicked`] for every waiter instead of leaving them
//! waiting.
//!
//! [`TokenHolder::set`] (a new login) and [`TokenHolder::clear`] (logout) take effect at once;
//! a refresh that was running then has its result discarded.
//!
//! # Back-off after failures
//!
//! The refresh closure's error type implements [`RefreshFailure`], which tells the holder what
//! kind of failure it was ([`FailureKind`]; [`FailureKind::from_status`] classifies an HTTP
//! status, and `std::io::Error` is transient):
//!
//! * **Transient** — a network error, a timeout, a `5xx`, `408` or `429`. The holder backs off
//!   before it calls the endpoint again: after the *n*-th consecutive transient failure it
//!   waits a random delay in `[c / 2, c]` with `c = min(initial × 2^(n−1), max)`. The default
//!   [`Backoff`] is 1 s initial, 30 s maximum: 0.5–1 s, 1–2 s, 2–4 s, 4–8 s, 8–16 s, then
//!   15–30 s for every further failure. The jitter spreads clients that failed together (a
//!   server restart) over the window instead of sending them back at the same instant. A
//!   success, [`TokenHolder::set`] or [`TokenHolder::clear`] resets the count;
//!   [`TokenHolder::with_backoff`] changes the policy ([`Backoff::NONE`] for none).
//! * **Rejected** — `401` or another `4xx` (an invalid, expired, revoked or reused refresh
//!   token). The error reaches the caller at once, and the holder never retries: later calls
//!   get the same error without the endpoint being called (a spent refresh token sent again
//!   is only a second reuse), until a new login ([`TokenHolder::set`]) or
//!   [`TokenHolder::clear`]. [`TokenHolder::rejection`] shows it.
//!
//! The holder does not sleep (it has no runtime): a caller that arrives during a back-off gets
//! the held tokens if they have not expired by the local clock (an access token due for
//! refresh is still valid for the rest of its margin), and otherwise
//! [`RefreshError::BackingOff`] with the instant from which a new attempt is made. Both
//! instants are on the holder's [`Clock`], so tests move a `MockClock` instead of waiting;
//! [`TokenHolder::retry_at`] shows it, and [`TokenHolder::time_until_refresh`] includes it, so
//! a refresh loop that sleeps that long backs off as well. A clock stepped back behind the
//! failure ends the back-off, as it makes a token due (its age is unknown). A panicking refresh
//! is not a server's answer and is not backed off.
//!
//! # Secrets
//!
//! Tokens are held as [`Credential`]s: `Debug` and `Display` print `<redacted>`, equality is
//! constant-time, and the bytes are wiped when the last copy is dropped.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::num::NonZeroU32;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt as _;
use futures_util::future::{Shared, WeakShared};
use parking_lot::Mutex;
use subtle::ConstantTimeEq as _;
use zeroize::Zeroize as _;

use crate::clock::{Clock, SystemClock, Timestamp};

// -------------------------------------------------------------------------------------------
// Credentials and grants
// -------------------------------------------------------------------------------------------

/// A bearer secret held by a client: an access token or a refresh token.
///
/// `Debug` and `Display` print `<redacted>`; equality is constant-time (for equal lengths); the
/// bytes are wiped on drop. Deserialises from a JSON string.
#[derive(Clone, serde::Deserialize)]
#[serde(transparent)]
pub struct Credential(String);

impl Credential {
    /// Wraps a secret received from a server.
    #[must_use]
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret itself, to put in an `Authorization` header or a request body.
    #[must_use]
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl From<String> for Credential {
    fn from(secret: String) -> Self {
        Self(secret)
    }
}

impl From<&str> for Credential {
    fn from(secret: &str) -> Self {
        Self(secret.to_owned())
    }
}

impl PartialEq for Credential {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

impl Eq for Credential {}

impl Drop for Credential {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credential(<redacted>)")
    }
}

impl fmt::Display for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// What a login or refresh answer grants: an access token, optionally a refresh token, and
/// the access token's lifetime.
///
/// Deserialises from an OAuth 2.0 token response (RFC 6749 §5.1), such as the example server's
/// login and `refresh-token` answers: `access_token` (required), `refresh_token` and
/// `expires_in` (seconds, a non-negative integer) optional, other fields (`token_type`,
/// `scope`, …) ignored. The access token is meant to be sent as a bearer token.
///
/// ```
/// use std::time::Duration;
/// use sessionkit::client::Grant;
///
/// let grant: Grant = serde_json::from_str(
///     r#"{"access_token":"eyJ…","refresh_token":"r1","token_type":"Bearer","expires_in":900}"#,
/// )?;
/// assert_eq!(grant.expires_in(), Some(Duration::from_secs(900)));
/// assert_eq!(format!("{grant:?}").contains("eyJ"), false); // secrets are redacted
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(from = "GrantResponse")]
pub struct Grant {
    access_token: Credential,
    refresh_token: Option<Credential>,
    expires_in: Option<Duration>,
}

/// The wire form of a [`Grant`].
#[derive(serde::Deserialize)]
struct GrantResponse {
    access_token: Credential,
    #[serde(default)]
    refresh_token: Option<Credential>,
    #[serde(default)]
    expires_in: Option<u64>,
}

impl From<GrantResponse> for Grant {
    fn from(r: GrantResponse) -> Self {
        Self {
            access_token: r.access_token,
            refresh_token: r.refresh_token,
            expires_in: r.expires_in.map(Duration::from_secs),
        }
    }
}

impl Grant {
    /// A grant of `access_token` alone, of unknown lifetime and without a refresh token.
    #[must_use]
    pub fn new(access_token: impl Into<Credential>) -> Self {
        Self { access_token: access_token.into(), refresh_token: None, expires_in: None }
    }

    /// With a refresh token, which [`Tokens::refresh_token`] hands to the next refresh.
    #[must_use]
    pub fn with_refresh_token(mut self, refresh_token: impl Into<Credential>) -> Self {
        self.refresh_token = Some(refresh_token.into());
        self
    }

    /// With the access token's lifetime as the server stated it (`expires_in`). Without it the
    /// token is never refreshed proactively.
    #[must_use]
    pub fn with_expires_in(mut self, expires_in: Duration) -> Self {
        self.expires_in = Some(expires_in);
        self
    }

    /// The access token.
    #[must_use]
    pub fn access_token(&self) -> &Credential {
        &self.access_token
    }

    /// The refresh token, if the server sent one.
    #[must_use]
    pub fn refresh_token(&self) -> Option<&Credential> {
        self.refresh_token.as_ref()
    }

    /// The access token's lifetime, if the server stated it.
    #[must_use]
    pub fn expires_in(&self) -> Option<Duration> {
        self.expires_in
    }
}

impl fmt::Debug for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Grant")
            .field("access_token", &self.access_token)
            .field("refresh_token", &self.refresh_token)
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

// -------------------------------------------------------------------------------------------
// Scheduling (pure)
// -------------------------------------------------------------------------------------------

/// How long before an access token expires the holder refreshes it.
///
/// The margin for a lifetime *L* is `min(L × percent / 100, cap)`. The default,
/// [`RefreshMargin::DEFAULT`], is 10 % of the lifetime, at most 60 seconds: a 15-minute token
/// is refreshed after 14 minutes, a 5-minute one after 4½, a 60-second one after 54 seconds.
/// The proportional part keeps short-lived tokens useful for most of their life; it leaves time
/// for a slow refresh round trip and absorbs `expires_in` being whole seconds. The cap stops a
/// long-lived token (a day: 10 % would be 2.4 hours) from being refreshed needlessly early.
/// sessionkit's server also accepts an access token for `access_token_leeway` (30 s) past its
/// expiry, a further cushion the margin does not count on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RefreshMargin {
    percent: u8,
    cap: Duration,
}

impl RefreshMargin {
    /// 10 % of the lifetime, at most 60 seconds.
    pub const DEFAULT: Self = Self { percent: 10, cap: Duration::from_secs(60) };

    /// `percent` of the lifetime (values above 100 count as 100), at most `cap`.
    #[must_use]
    pub const fn proportional(percent: u8, cap: Duration) -> Self {
        Self { percent: if percent > 100 { 100 } else { percent }, cap }
    }

    /// A fixed `margin` whatever the lifetime; a lifetime shorter than it is due at once.
    #[must_use]
    pub const fn fixed(margin: Duration) -> Self {
        Self { percent: 100, cap: margin }
    }

    /// The margin for an access token living `lifetime`; never more than `lifetime`.
    #[must_use]
    pub fn for_lifetime(self, lifetime: Duration) -> Duration {
        let nanos = lifetime.as_nanos().saturating_mul(u128::from(self.percent)) / 100;
        // `nanos` is at most `lifetime` in nanoseconds; a lifetime beyond u64 nanoseconds
        // (584 years) saturates, which only makes the margin its cap.
        let proportional = Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX));
        proportional.min(self.cap)
    }
}

impl Default for RefreshMargin {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The tokens a [`TokenHolder`] holds: a [`Grant`] stamped with the local time it was obtained,
/// and the deadlines computed from it.
///
/// `Debug` redacts the secrets.
pub struct Tokens {
    access_token: Credential,
    refresh_token: Option<Credential>,
    obtained_at: Timestamp,
    expires_at: Option<Timestamp>,
    refresh_at: Option<Timestamp>,
}

impl Tokens {
    /// `grant` as obtained at `obtained_at` (local clock), refreshed `margin` before expiry.
    /// This is the holder's arithmetic, public for applications that schedule themselves.
    #[must_use]
    pub fn new(grant: Grant, obtained_at: Timestamp, margin: RefreshMargin) -> Self {
        let Grant { access_token, refresh_token, expires_in } = grant;
        let (expires_at, refresh_at) = match expires_in {
            Some(lifetime) => {
                let expires_at = obtained_at.saturating_add(lifetime);
                (Some(expires_at), Some(expires_at.saturating_sub(margin.for_lifetime(lifetime))))
            }
            None => (None, None),
        };
        Self { access_token, refresh_token, obtained_at, expires_at, refresh_at }
    }

    /// The access token, to send as `Authorization: Bearer …`.
    #[must_use]
    pub fn access_token(&self) -> &Credential {
        &self.access_token
    }

    /// The refresh token, if the server issued one: what the refresh closure sends.
    #[must_use]
    pub fn refresh_token(&self) -> Option<&Credential> {
        self.refresh_token.as_ref()
    }

    /// When (local clock) the tokens were obtained: the start of the refresh that produced
    /// them, or the call to [`TokenHolder::set`].
    #[must_use]
    pub fn obtained_at(&self) -> Timestamp {
        self.obtained_at
    }

    /// When the access token expires by the local clock, if the server stated its lifetime.
    #[must_use]
    pub fn expires_at(&self) -> Option<Timestamp> {
        self.expires_at
    }

    /// From when the access token is due for refresh: [`expires_at`](Self::expires_at) less
    /// the margin.
    #[must_use]
    pub fn refresh_at(&self) -> Option<Timestamp> {
        self.refresh_at
    }

    /// Whether the access token is due for refresh at `now`: `now` is at or past
    /// [`refresh_at`](Self::refresh_at), or, for a token with a known lifetime, before
    /// [`obtained_at`](Self::obtained_at) (the clock stepped back, so its age is unknown).
    #[must_use]
    pub fn needs_refresh(&self, now: Timestamp) -> bool {
        self.refresh_at.is_some_and(|at| now >= at || now < self.obtained_at)
    }

    /// Whether the access token has expired at `now` by the local clock (at or past
    /// [`expires_at`](Self::expires_at)).
    #[must_use]
    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.expires_at.is_some_and(|at| now >= at)
    }

    /// The time from `now` until the token is due for refresh: zero if it is due, `None` if
    /// its lifetime is unknown.
    #[must_use]
    pub fn time_until_refresh(&self, now: Timestamp) -> Option<Duration> {
        let at = self.refresh_at?;
        Some(if self.needs_refresh(now) { Duration::ZERO } else { at.duration_since(now) })
    }
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokens")
            .field("access_token", &self.access_token)
            .field("refresh_token", &self.refresh_token)
            .field("obtained_at", &self.obtained_at)
            .field("expires_at", &self.expires_at)
            .field("refresh_at", &self.refresh_at)
            .finish()
    }
}

// -------------------------------------------------------------------------------------------
// Failures and back-off (pure)
// -------------------------------------------------------------------------------------------

/// What a failed refresh means for the next attempt: try again later, or stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FailureKind {
    /// The endpoint could not answer: a network error, a timeout, a `5xx`, `408 Request
    /// Timeout` or `429 Too Many Requests`. The holder backs off ([`Backoff`]) and then tries
    /// again.
    Transient,
    /// The endpoint refused the refresh: `401` or any other `4xx` but `408` and `429` (the
    /// refresh token is invalid, expired, revoked or reused). Trying again cannot help, and
    /// sending a spent refresh token again only repeats the reuse, so the holder never retries:
    /// the error reaches the caller at once, and every later caller gets it too, without the
    /// endpoint being called, until [`TokenHolder::set`] (a new login) or
    /// [`TokenHolder::clear`].
    Rejected,
}

impl FailureKind {
    /// The kind of a refresh answer whose HTTP `status` is not a success: [`Transient`] for
    /// `408`, `429` and `5xx` (the server may answer later), [`Rejected`] for everything else
    /// (`401`, `400`, `403`, … and any unexpected status, which another attempt would get too).
    ///
    /// ```
    /// use sessionkit::client::FailureKind;
    ///
    /// assert_eq!(FailureKind::from_status(503), FailureKind::Transient);
    /// assert_eq!(FailureKind::from_status(401), FailureKind::Rejected);
    /// ```
    ///
    /// [`Transient`]: Self::Transient
    /// [`Rejected`]: Self::Rejected
    #[must_use]
    pub const fn from_status(status: u16) -> Self {
        match status {
            408 | 429 | 500..=599 => Self::Transient,
            _ => Self::Rejected,
        }
    }
}

/// The error of a refresh closure, as the [`TokenHolder`] needs to see it: whether another
/// attempt could succeed.
///
/// Implement it for the application's error type; a transport error (no answer, a timeout) is
/// [`FailureKind::Transient`], an HTTP status can use [`FailureKind::from_status`]:
///
/// ```
/// use sessionkit::client::{FailureKind, RefreshFailure};
///
/// enum ApiError {
///     Network(std::io::Error),
///     Status(u16),
/// }
///
/// impl RefreshFailure for ApiError {
///     fn failure_kind(&self) -> FailureKind {
///         match self {
///             Self::Network(_) => FailureKind::Transient,
///             Self::Status(status) => FailureKind::from_status(*status),
///         }
///     }
/// }
/// ```
///
/// Implemented for [`std::io::Error`] (every I/O error is a transport failure: transient) and
/// for [`FailureKind`] itself.
pub trait RefreshFailure {
    /// Whether the holder should back off and try again, or stop.
    fn failure_kind(&self) -> FailureKind;
}

impl RefreshFailure for FailureKind {
    fn failure_kind(&self) -> FailureKind {
        *self
    }
}

impl RefreshFailure for std::io::Error {
    fn failure_kind(&self) -> FailureKind {
        FailureKind::Transient
    }
}

/// How long a [`TokenHolder`] waits after a [transient](FailureKind::Transient) refresh failure
/// before it tries again: exponential, bounded and jittered.
///
/// After the *n*-th consecutive transient failure the holder waits a delay drawn uniformly
/// from `[c / 2, c]`, where the ceiling `c = min(initial × 2^(n−1), max)` ("equal jitter"):
/// never more than `max`, never less than half the ceiling, and different for every client, so
/// clients that failed together (a server restart) do not come back together. The default,
/// [`Backoff::DEFAULT`], starts at 1 second and stops growing at 30 seconds: 0.5–1 s, 1–2 s,
/// 2–4 s, … 15–30 s. A success resets the count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
}

impl Backoff {
    /// Starts at 1 second, doubles, at most 30 seconds. The largest delay stays well under the
    /// refresh margin's 60 seconds, so a refresh due at the margin gets several attempts before
    /// the access token expires.
    pub const DEFAULT: Self = Self { initial: Duration::from_secs(1), max: Duration::from_secs(30) };

    /// No delay: the next call after a transient failure tries again at once (the behaviour
    /// before back-off existed). Rejections are still never retried.
    pub const NONE: Self = Self { initial: Duration::ZERO, max: Duration::ZERO };

    /// Ceilings from `initial`, doubling after every failure, at most `max` (a `max` below
    /// `initial` counts as `initial`).
    #[must_use]
    pub const fn new(initial: Duration, max: Duration) -> Self {
        let max = if max.as_nanos() < initial.as_nanos() { initial } else { max };
        Self { initial, max }
    }

    /// The ceiling after the first failure.
    #[must_use]
    pub const fn initial(self) -> Duration {
        self.initial
    }

    /// The largest delay.
    #[must_use]
    pub const fn max(self) -> Duration {
        self.max
    }

    /// The ceiling of the delay after `failures` consecutive transient failures:
    /// `min(initial × 2^(failures−1), max)`; zero for zero failures.
    #[must_use]
    pub fn ceiling(self, failures: u32) -> Duration {
        let Some(doublings) = failures.checked_sub(1) else {
            return Duration::ZERO;
        };
        // From 2^32 on the factor saturates, which only makes the ceiling `max`.
        let factor = 1_u32.checked_shl(doublings).unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// The delays the holder draws from after `failures` consecutive transient failures:
    /// from half the [`ceiling`](Self::ceiling) to the ceiling, both included.
    #[must_use]
    pub fn range(self, failures: u32) -> std::ops::RangeInclusive<Duration> {
        let ceiling = self.ceiling(failures);
        ceiling / 2..=ceiling
    }

    /// A delay drawn uniformly at random from [`range`](Self::range)`(failures)`.
    #[must_use]
    pub fn delay(self, failures: u32) -> Duration {
        let range = self.range(failures);
        // Delays beyond u64 nanoseconds (584 years) saturate there.
        let nanos = |d: &Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rand::random_range(nanos(range.start())..=nanos(range.end())))
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::DEFAULT
    }
}

// -------------------------------------------------------------------------------------------
// Errors
// -------------------------------------------------------------------------------------------

/// Why [`TokenHolder::get_or_refresh`] or [`TokenHolder::refresh_stale`] returned no tokens.
///
/// Every caller that waited on the same refresh gets a clone of the same error.
#[non_exhaustive]
pub enum RefreshError<E> {
    /// The refresh future returned this error. The holder keeps its previous tokens; the next
    /// call tries again.
    Failed(Arc<E>),
    /// The refresh closure or future panicked (the panic was reported by the panic hook where
    /// it happened). The next call tries again.
    Panicked,
    /// [`TokenHolder::clear`] was called while the refresh ran (a logout): its result was
    /// discarded and there are no tokens.
    Cleared,
    /// The last refresh failed [transiently](FailureKind::Transient) and the holder is backing
    /// off: the endpoint was not called, and will not be before `retry_at` (local clock). Only
    /// returned when the held access token cannot be used meanwhile (there is none, it has
    /// expired by the local clock, or the server called it expired).
    BackingOff {
        /// From when the next call may refresh ([`TokenHolder::retry_at`]).
        retry_at: Timestamp,
        /// The error of the failed refresh.
        last: Arc<E>,
    },
}

impl<E> Clone for RefreshError<E> {
    fn clone(&self) -> Self {
        match self {
            Self::Failed(e) => Self::Failed(Arc::clone(e)),
            Self::Panicked => Self::Panicked,
            Self::Cleared => Self::Cleared,
            Self::BackingOff { retry_at, last } => Self::BackingOff { retry_at: *retry_at, last: Arc::clone(last) },
        }
    }
}

impl<E: fmt::Debug> fmt::Debug for RefreshError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Failed(e) => f.debug_tuple("Failed").field(e).finish(),
            Self::Panicked => f.write_str("Panicked"),
            Self::Cleared => f.write_str("Cleared"),
            Self::BackingOff { retry_at, last } => {
                f.debug_struct("BackingOff").field("retry_at", retry_at).field("last", last).finish()
            }
        }
    }
}

impl<E> fmt::Display for RefreshError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Failed(_) => "token refresh failed",
            Self::Panicked => "token refresh panicked",
            Self::Cleared => "tokens cleared while refreshing",
            Self::BackingOff { .. } => "token refresh backing off after a failure",
        })
    }
}

impl<E: std::error::Error + 'static> std::error::Error for RefreshError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Failed(e) | Self::BackingOff { last: e, .. } => Some(&**e),
            Self::Panicked | Self::Cleared => None,
        }
    }
}

// -------------------------------------------------------------------------------------------
// The holder
// -------------------------------------------------------------------------------------------

type Outcome<E> = Result<Arc<Tokens>, RefreshError<E>>;
type RefreshFuture<E> = Pin<Box<dyn Future<Output = Outcome<E>> + Send>>;

/// Holds a client's current [`Tokens`] and refreshes them once for all concurrent callers.
///
/// Generic over the refresh error `E` and the [`Clock`] `C` ([`SystemClock`] by default).
/// Cheap to clone; clones share the tokens, so do not wrap it in `Arc<Mutex<_>>`. See the
/// [module documentation](self) for scheduling, cancellation and failure semantics.
pub struct TokenHolder<E, C = SystemClock> {
    inner: Arc<Inner<E, C>>,
}

struct Inner<E, C> {
    clock: C,
    state: Mutex<State<E>>,
}

struct State<E> {
    current: Option<Arc<Tokens>>,
    margin: RefreshMargin,
    backoff: Backoff,
    /// The last refresh failed (and nothing replaced the tokens since): when to try again.
    failure: Option<Failure<E>>,
    /// Bumped whenever `current` changes, so that a refresh finishing after a `set` or `clear`
    /// knows its result is stale.
    generation: u64,
    next_attempt: u64,
    in_flight: Option<InFlight<E>>,
}

/// A failed refresh the holder remembers, so that it does not call the endpoint again too soon
/// (transient) or at all (rejected).
struct Failure<E> {
    error: Arc<E>,
    /// When it failed (local clock).
    at: Timestamp,
    /// Consecutive transient failures; `None` for a rejection, which is never retried.
    transient: Option<NonZeroU32>,
    /// From when the next attempt may start (`at` for a rejection: unused).
    retry_at: Timestamp,
}

/// The refresh in progress. Held weakly: the callers awaiting it keep it alive, so once they
/// have all gone it is dropped, and `upgrade` fails.
struct InFlight<E> {
    id: u64,
    attempt: WeakShared<RefreshFuture<E>>,
}

impl<E> TokenHolder<E, SystemClock> {
    /// An empty holder on the system clock, with the default [`RefreshMargin`].
    #[must_use]
    pub fn new() -> Self {
        Self::with_clock(SystemClock)
    }
}

impl<E> Default for TokenHolder<E, SystemClock> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E, C> Clone for TokenHolder<E, C> {
    fn clone(&self) -> Self {
        Self { inner: Arc::clone(&self.inner) }
    }
}

impl<E, C: Clock> TokenHolder<E, C> {
    /// An empty holder reading time from `clock`, with the default [`RefreshMargin`].
    #[must_use]
    pub fn with_clock(clock: C) -> Self {
        let state = State {
            current: None,
            margin: RefreshMargin::DEFAULT,
            backoff: Backoff::DEFAULT,
            failure: None,
            generation: 0,
            next_attempt: 0,
            in_flight: None,
        };
        Self { inner: Arc::new(Inner { clock, state: Mutex::new(state) }) }
    }

    /// With `margin` instead of [`RefreshMargin::DEFAULT`], for the tokens obtained from now on
    /// (by this holder and its clones).
    #[must_use]
    pub fn with_margin(self, margin: RefreshMargin) -> Self {
        self.inner.state.lock().margin = margin;
        self
    }

    /// The refresh margin.
    #[must_use]
    pub fn margin(&self) -> RefreshMargin {
        self.inner.state.lock().margin
    }

    /// With `backoff` instead of [`Backoff::DEFAULT`] after transient refresh failures (for
    /// this holder and its clones).
    #[must_use]
    pub fn with_backoff(self, backoff: Backoff) -> Self {
        self.inner.state.lock().backoff = backoff;
        self
    }

    /// The back-off policy after transient refresh failures.
    #[must_use]
    pub fn backoff(&self) -> Backoff {
        self.inner.state.lock().backoff
    }

    /// While the holder backs off after a [transient](FailureKind::Transient) refresh failure:
    /// from when (local clock) the next call may refresh. `None` when no refresh has failed
    /// since the tokens were last replaced, or the last one was
    /// [rejected](FailureKind::Rejected) (never retried; see [`rejection`](Self::rejection)).
    #[must_use]
    pub fn retry_at(&self) -> Option<Timestamp> {
        self.inner.state.lock().failure.as_ref().filter(|f| f.transient.is_some()).map(|f| f.retry_at)
    }

    /// The error of a refresh the endpoint [rejected](FailureKind::Rejected): while it is held,
    /// refreshing returns it without calling the endpoint. [`set`](Self::set) or
    /// [`clear`](Self::clear) forget it.
    #[must_use]
    pub fn rejection(&self) -> Option<Arc<E>> {
        let state = self.inner.state.lock();
        state.failure.as_ref().filter(|f| f.transient.is_none()).map(|f| Arc::clone(&f.error))
    }

    /// The clock the holder reads.
    #[must_use]
    pub fn clock(&self) -> &C {
        &self.inner.clock
    }

    /// Holds `grant` (typically from a login), obtained now, in place of any tokens held
    /// before. A refresh that is running has its result discarded; its waiters get these
    /// tokens.
    pub fn set(&self, grant: Grant) -> Arc<Tokens> {
        let mut state = self.inner.state.lock();
        let tokens = Arc::new(Tokens::new(grant, self.inner.clock.now(), state.margin));
        state.replace(Some(Arc::clone(&tokens)));
        tokens
    }

    /// Forgets the tokens (a logout) and returns them, for instance to revoke the refresh
    /// token at the server. A refresh that is running has its result discarded; its waiters
    /// get [`RefreshError::Cleared`].
    pub fn clear(&self) -> Option<Arc<Tokens>> {
        self.inner.state.lock().replace(None)
    }

    /// The tokens held, fresh or not.
    #[must_use]
    pub fn current(&self) -> Option<Arc<Tokens>> {
        self.inner.state.lock().current.clone()
    }

    /// From when the held access token is due for refresh: `None` if there is none, or its
    /// lifetime is unknown.
    #[must_use]
    pub fn refresh_at(&self) -> Option<Timestamp> {
        self.inner.state.lock().current.as_ref().and_then(|t| t.refresh_at())
    }

    /// Whether [`get_or_refresh`](Self::get_or_refresh) at `now` would refresh: the holder is
    /// empty, or its token is due ([`Tokens::needs_refresh`]).
    #[must_use]
    pub fn needs_refresh(&self, now: Timestamp) -> bool {
        self.inner.state.lock().current.as_ref().is_none_or(|t| t.needs_refresh(now))
    }

    /// The time from now until the held token is due for refresh: zero if it is due, `None`
    /// if the holder is empty or the token's lifetime is unknown, or the last refresh was
    /// [rejected](FailureKind::Rejected). While the holder backs off after a transient failure,
    /// at least the time until [`retry_at`](Self::retry_at), so that a loop sleeping this long
    /// backs off too.
    #[must_use]
    pub fn time_until_refresh(&self) -> Option<Duration> {
        let now = self.inner.clock.now();
        let state = self.inner.state.lock();
        let due = state.current.as_ref().and_then(|t| t.time_until_refresh(now))?;
        match &state.failure {
            None => Some(due),
            Some(f) if f.transient.is_none() => None,
            Some(f) => Some(due.max(f.wait(now))),
        }
    }

    /// Whether a refresh is running (some caller is awaiting it).
    #[must_use]
    pub fn is_refreshing(&self) -> bool {
        // The upgraded handle may be the last one (its callers gone meanwhile); dropping it
        // drops the application's future, which must not happen under the lock.
        let running = self.inner.state.lock().in_flight.as_ref().and_then(|f| f.attempt.upgrade());
        running.is_some()
    }

    /// How many callers are awaiting the refresh in flight (0 when none runs): for metrics,
    /// and for tests that must know every caller has joined a refresh before it completes.
    #[must_use]
    pub fn waiters(&self) -> usize {
        // As in `is_refreshing`: the upgraded handle is dropped after the lock is released.
        let running = self.inner.state.lock().in_flight.as_ref().and_then(|f| f.attempt.upgrade());
        // `strong_count` counts the upgraded handle too.
        running.as_ref().and_then(Shared::strong_count).map_or(0, |n| n.saturating_sub(1))
    }
}

impl<E, C> TokenHolder<E, C>
where
    E: RefreshFailure + Send + Sync + 'static,
    C: Clock,
{
    /// The held tokens if they are not yet due for refresh; otherwise the result of a refresh,
    /// shared with every concurrent caller.
    ///
    /// If a refresh is already running, this waits for it. Otherwise `refresh` is called with
    /// the tokens held so far (`None` if the holder is empty, so the same closure can log in)
    /// and its future runs once for all callers; a successful result replaces the held tokens.
    /// A grant without a refresh token keeps the refresh token held before (RFC 6749 §6: the
    /// server may leave it in force).
    /// `refresh` is called when the returned future is first polled, never while the holder
    /// is locked, and not at all if the tokens are fresh or another refresh is joined.
    ///
    /// # Errors
    ///
    /// [`RefreshError::Failed`] with the refresh future's error (every waiter gets the same
    /// one), [`RefreshError::Panicked`] if it panicked, [`RefreshError::Cleared`] if the holder
    /// was cleared meanwhile. The holder keeps its previous tokens, and the next call starts a
    /// new attempt.
    pub async fn get_or_refresh<F, Fut>(&self, refresh: F) -> Result<Arc<Tokens>, RefreshError<E>>
    where
        F: FnOnce(Option<Arc<Tokens>>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Grant, E>> + Send + 'static,
    {
        let attempt = {
            let mut state = self.inner.state.lock();
            let now = self.inner.clock.now();
            if let Some(current) = &state.current
                && !current.needs_refresh(now)
            {
                return Ok(Arc::clone(current));
            }
            if let Some(running) = state.running() {
                running
            } else if let Some(held_off) = state.held_off(now, state.current.as_ref()) {
                // Returned after the lock is released, and so is `refresh` dropped.
                return held_off;
            } else {
                self.start(&mut state, refresh)
            }
        };
        attempt.await
    }

    /// After the server rejected the access token of `stale` as expired (`401
    /// access_token_expired`): refreshes, unless the holder already holds other tokens.
    ///
    /// If the held tokens are no longer `stale` (compared by identity: pass the [`Tokens`]
    /// that [`get_or_refresh`](Self::get_or_refresh) returned), someone has replaced them, and
    /// they are returned (refreshed first if they are due themselves). Otherwise this joins
    /// the running refresh or starts one, whatever the clock says, so any number of requests
    /// failing with the same token cause one refresh.
    ///
    /// # Errors
    ///
    /// As [`get_or_refresh`](Self::get_or_refresh).
    pub async fn refresh_stale<F, Fut>(&self, stale: &Tokens, refresh: F) -> Result<Arc<Tokens>, RefreshError<E>>
    where
        F: FnOnce(Option<Arc<Tokens>>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Grant, E>> + Send + 'static,
    {
        let attempt = {
            let mut state = self.inner.state.lock();
            let now = self.inner.clock.now();
            let replaced = state.current.as_ref().filter(|current| !std::ptr::eq(Arc::as_ptr(current), stale));
            if let Some(current) = replaced
                && !current.needs_refresh(now)
            {
                return Ok(Arc::clone(current));
            }
            if let Some(running) = state.running() {
                running
            } else if let Some(held_off) = state.held_off(now, replaced) {
                // Returned after the lock is released, and so is `refresh` dropped.
                return held_off;
            } else {
                self.start(&mut state, refresh)
            }
        };
        attempt.await
    }

    /// A new refresh built around `refresh` (not yet called).
    fn start<F, Fut>(&self, state: &mut State<E>, refresh: F) -> Shared<RefreshFuture<E>>
    where
        F: FnOnce(Option<Arc<Tokens>>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Grant, E>> + Send + 'static,
    {
        let id = state.next_attempt;
        state.next_attempt = state.next_attempt.wrapping_add(1);
        let generation = state.generation;
        let old = state.current.clone();
        let inner = Arc::clone(&self.inner);
        let future: RefreshFuture<E> = Box::pin(async move {
            let started = inner.clock.now();
            // AssertUnwindSafe: after a panic the application's closure and future are dropped,
            // never used again, and the holder's lock is not held while they run, so no broken
            // state can be observed.
            let result = AssertUnwindSafe(async move { refresh(old).await }).catch_unwind().await;
            inner.finish(id, generation, started, result)
        });
        let attempt = future.shared();
        // `downgrade` is `None` only for a future already polled to completion; this one has
        // not been polled yet.
        state.in_flight = attempt.downgrade().map(|weak| InFlight { id, attempt: weak });
        attempt
    }
}

impl<E: RefreshFailure, C: Clock> Inner<E, C> {
    /// Settles refresh attempt `id`, started at `generation` and `started`, with `result`.
    /// Runs inside the shared future, so exactly once per attempt, before any waiter sees it.
    fn finish(
        &self,
        id: u64,
        generation: u64,
        started: Timestamp,
        result: Result<Result<Grant, E>, Box<dyn Any + Send>>,
    ) -> Outcome<E> {
        // Declared after `result`, so released before it (and anything of the application's
        // that it holds) is dropped.
        let mut state = self.state.lock();
        if state.in_flight.as_ref().is_some_and(|f| f.id == id) {
            state.in_flight = None;
        }
        if state.generation != generation {
            // `set` or `clear` replaced the tokens while this refresh ran: they win.
            return state.current.clone().ok_or(RefreshError::Cleared);
        }
        match result {
            Ok(Ok(mut grant)) => {
                // RFC 6749 §6: a refresh response without a refresh token leaves the one held
                // in force.
                if grant.refresh_token.is_none() {
                    grant.refresh_token = state.current.as_ref().and_then(|t| t.refresh_token.clone());
                }
                let tokens = Arc::new(Tokens::new(grant, started, state.margin));
                state.replace(Some(Arc::clone(&tokens)));
                Ok(tokens)
            }
            Ok(Err(e)) => {
                let error = Arc::new(e);
                let now = self.clock.now();
                let transient = match error.failure_kind() {
                    FailureKind::Rejected => None,
                    FailureKind::Transient => {
                        let before = state.failure.as_ref().and_then(|f| f.transient).map_or(0, NonZeroU32::get);
                        NonZeroU32::new(before.saturating_add(1))
                    }
                };
                let retry_at = transient.map_or(now, |n| now.saturating_add(state.backoff.delay(n.get())));
                state.failure = Some(Failure { error: Arc::clone(&error), at: now, transient, retry_at });
                Err(RefreshError::Failed(error))
            }
            // `_` leaves the panic payload in `result`, dropped after the lock is released.
            Err(_) => Err(RefreshError::Panicked),
        }
    }
}

impl<E> State<E> {
    /// Installs `tokens`, detaching any running refresh (it finishes for its waiters, but new
    /// callers do not join it) and forgetting any failed one, and returns the tokens held
    /// before.
    fn replace(&mut self, tokens: Option<Arc<Tokens>>) -> Option<Arc<Tokens>> {
        self.generation = self.generation.wrapping_add(1);
        self.in_flight = None;
        self.failure = None;
        std::mem::replace(&mut self.current, tokens)
    }

    /// The refresh in flight, if some caller still awaits it.
    fn running(&self) -> Option<Shared<RefreshFuture<E>>> {
        self.in_flight.as_ref().and_then(|f| f.attempt.upgrade())
    }

    /// What a caller gets instead of a new refresh at `now`, if the last one failed: the
    /// rejection, for good; during a back-off, `usable` (tokens not yet expired by the local
    /// clock), or else [`RefreshError::BackingOff`]. `None`: a refresh may start.
    fn held_off(&self, now: Timestamp, usable: Option<&Arc<Tokens>>) -> Option<Outcome<E>> {
        let failure = self.failure.as_ref()?;
        if failure.transient.is_none() {
            return Some(Err(RefreshError::Failed(Arc::clone(&failure.error))));
        }
        if failure.wait(now).is_zero() {
            return None;
        }
        Some(match usable.filter(|t| !t.is_expired(now)) {
            Some(tokens) => Ok(Arc::clone(tokens)),
            None => Err(RefreshError::BackingOff { retry_at: failure.retry_at, last: Arc::clone(&failure.error) }),
        })
    }
}

impl<E> Failure<E> {
    /// The time from `now` until the next attempt may start: zero once `retry_at` has come,
    /// and also if the clock stepped back behind the failure (its age is unknown, as for
    /// [`Tokens::needs_refresh`]).
    fn wait(&self, now: Timestamp) -> Duration {
        if now < self.at || now >= self.retry_at { Duration::ZERO } else { self.retry_at.duration_since(now) }
    }
}

impl<E, C: Clock> fmt::Debug for TokenHolder<E, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let refreshing = self.is_refreshing();
        let (current, margin) = {
            let state = self.inner.state.lock();
            (state.current.clone(), state.margin)
        };
        f.debug_struct("TokenHolder")
            .field("current", &current)
            .field("margin", &margin)
            .field("refreshing", &refreshing)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    const T0: Timestamp = Timestamp::from_unix_nanos(1_704_067_200 * 1_000_000_000);

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn grant(expires_in: Option<Duration>) -> Grant {
        let grant = Grant::new("access").with_refresh_token("refresh");
        match expires_in {
            Some(d) => grant.with_expires_in(d),
            None => grant,
        }
    }

    #[test]
    fn default_margin_is_ten_percent_capped_at_a_minute() {
        let m = RefreshMargin::default();
        assert_eq!(m.for_lifetime(secs(900)), secs(60));
        assert_eq!(m.for_lifetime(secs(600)), secs(60));
        assert_eq!(m.for_lifetime(secs(599)), Duration::from_millis(59_900));
        assert_eq!(m.for_lifetime(secs(300)), secs(30));
        assert_eq!(m.for_lifetime(secs(1)), Duration::from_millis(100));
        assert_eq!(m.for_lifetime(Duration::ZERO), Duration::ZERO);
        assert_eq!(m.for_lifetime(Duration::MAX), secs(60));
    }

    #[test]
    fn fixed_and_proportional_margins() {
        assert_eq!(RefreshMargin::fixed(secs(30)).for_lifetime(secs(900)), secs(30));
        assert_eq!(RefreshMargin::fixed(secs(30)).for_lifetime(secs(10)), secs(10), "never more than the lifetime");
        assert_eq!(RefreshMargin::proportional(50, Duration::MAX).for_lifetime(secs(100)), secs(50));
        assert_eq!(RefreshMargin::proportional(200, Duration::MAX), RefreshMargin::proportional(100, Duration::MAX));
        assert_eq!(RefreshMargin::proportional(0, secs(60)).for_lifetime(secs(100)), Duration::ZERO);
    }

    #[test]
    fn deadlines_at_their_boundaries() {
        let t = Tokens::new(grant(Some(secs(900))), T0, RefreshMargin::DEFAULT);
        assert_eq!(t.expires_at(), Some(T0.saturating_add(secs(900))));
        assert_eq!(t.refresh_at(), Some(T0.saturating_add(secs(840))));
        let due = T0.saturating_add(secs(840));
        assert!(!t.needs_refresh(T0));
        assert!(!t.needs_refresh(due.saturating_sub(Duration::from_nanos(1))));
        assert!(t.needs_refresh(due));
        assert_eq!(t.time_until_refresh(T0), Some(secs(840)));
        assert_eq!(t.time_until_refresh(due.saturating_sub(Duration::from_nanos(1))), Some(Duration::from_nanos(1)));
        assert_eq!(t.time_until_refresh(due), Some(Duration::ZERO));
        assert_eq!(t.time_until_refresh(due.saturating_add(secs(3600))), Some(Duration::ZERO));
        let exp = T0.saturating_add(secs(900));
        assert!(!t.is_expired(exp.saturating_sub(Duration::from_nanos(1))));
        assert!(t.is_expired(exp));
    }

    #[test]
    fn a_clock_behind_the_moment_of_issue_means_refresh() {
        let t = Tokens::new(grant(Some(secs(900))), T0, RefreshMargin::DEFAULT);
        let before = T0.saturating_sub(Duration::from_nanos(1));
        assert!(t.needs_refresh(before));
        assert_eq!(t.time_until_refresh(before), Some(Duration::ZERO));
        assert!(!t.is_expired(before));
    }

    #[test]
    fn zero_lifetime_is_due_at_once_and_unknown_lifetime_never() {
        let zero = Tokens::new(grant(Some(Duration::ZERO)), T0, RefreshMargin::DEFAULT);
        assert!(zero.needs_refresh(T0));
        assert!(zero.is_expired(T0));
        let unknown = Tokens::new(grant(None), T0, RefreshMargin::DEFAULT);
        assert_eq!((unknown.expires_at(), unknown.refresh_at()), (None, None));
        assert!(!unknown.needs_refresh(T0.saturating_add(secs(10 * 365 * 86_400))));
        assert!(!unknown.needs_refresh(T0.saturating_sub(secs(1))));
        assert_eq!(unknown.time_until_refresh(T0), None);
    }

    #[test]
    fn huge_lifetimes_saturate() {
        let t = Tokens::new(grant(Some(Duration::MAX)), T0, RefreshMargin::DEFAULT);
        assert_eq!(t.expires_at(), Some(Timestamp::from_unix_nanos(i64::MAX)));
        assert!(!t.needs_refresh(T0));
    }

    #[test]
    fn secrets_are_redacted_and_compared_by_value() {
        let t = Tokens::new(Grant::new("sekrit-a").with_refresh_token("sekrit-r"), T0, RefreshMargin::DEFAULT);
        let shown = format!("{t:?} {:?} {}", t.access_token(), t.access_token());
        assert!(!shown.contains("sekrit"), "{shown}");
        let holder: TokenHolder<(), _> = TokenHolder::with_clock(crate::clock::MockClock::at(T0));
        holder.set(Grant::new("sekrit-a"));
        assert!(!format!("{holder:?}").contains("sekrit"));
        assert_eq!(Credential::from("abc"), Credential::new("abc"));
        assert_ne!(Credential::from("abc"), Credential::new("abd"));
        assert_ne!(Credential::from("abc"), Credential::new("abcd"));
    }

    #[test]
    fn grants_deserialise_from_token_responses() {
        let g: Grant = serde_json::from_str(
            r#"{"access_token":"a","refresh_token":"r","token_type":"Bearer","expires_in":900,"session_id":"x"}"#,
        )
        .unwrap();
        assert_eq!(g, Grant::new("a").with_refresh_token("r").with_expires_in(secs(900)));
        let g: Grant = serde_json::from_str(r#"{"access_token":"a","expires_in":null}"#).unwrap();
        assert_eq!((g.refresh_token(), g.expires_in()), (None, None));
        for bad in [r#"{"refresh_token":"r"}"#, r#"{"access_token":"a","expires_in":-1}"#, r#"{"access_token":7}"#] {
            assert!(serde_json::from_str::<Grant>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn backoff_ceilings_double_from_the_initial_delay_up_to_the_maximum() {
        let b = Backoff::DEFAULT;
        assert_eq!((b.initial(), b.max()), (secs(1), secs(30)));
        assert_eq!(b.ceiling(0), Duration::ZERO);
        assert_eq!(b.ceiling(1), secs(1));
        assert_eq!(b.ceiling(2), secs(2));
        assert_eq!(b.ceiling(5), secs(16));
        assert_eq!(b.ceiling(6), secs(30), "32 s capped at 30 s");
        assert_eq!(b.ceiling(33), secs(30));
        assert_eq!(b.ceiling(u32::MAX), secs(30));
        assert_eq!(b.range(1), Duration::from_millis(500)..=secs(1));
        assert_eq!(Backoff::new(secs(10), secs(1)).max(), secs(10), "max below initial counts as initial");
        assert_eq!(Backoff::new(Duration::MAX, Duration::MAX).ceiling(3), Duration::MAX);
        assert_eq!(Backoff::NONE.delay(7), Duration::ZERO);
    }

    #[test]
    fn backoff_delays_stay_in_their_range() {
        let b = Backoff::new(Duration::from_millis(100), secs(2));
        for failures in 1..=10 {
            let range = b.range(failures);
            for _ in 0..200 {
                let d = b.delay(failures);
                assert!(range.contains(&d) && d <= b.max(), "{failures}: {d:?} outside {range:?}");
            }
        }
        let huge = Backoff::new(Duration::MAX, Duration::MAX);
        assert!(huge.delay(1) >= Duration::from_nanos(u64::MAX / 2), "saturates, does not wrap");
    }

    #[test]
    fn statuses_that_may_succeed_later_are_transient() {
        for status in [408, 429, 500, 502, 503, 504, 599] {
            assert_eq!(FailureKind::from_status(status), FailureKind::Transient, "{status}");
        }
        for status in [0, 200, 302, 400, 401, 403, 404, 409, 499, 600] {
            assert_eq!(FailureKind::from_status(status), FailureKind::Rejected, "{status}");
        }
        assert_eq!(std::io::Error::other("reset").failure_kind(), FailureKind::Transient);
    }

    #[test]
    fn the_holder_schedules_from_the_moment_it_obtained_the_tokens() {
        let clock = crate::clock::MockClock::at(T0);
        let holder: TokenHolder<(), _> =
            TokenHolder::with_clock(clock.clone()).with_margin(RefreshMargin::fixed(secs(5)));
        assert!(holder.needs_refresh(T0), "empty");
        assert_eq!((holder.refresh_at(), holder.time_until_refresh()), (None, None));
        clock.advance(secs(100));
        let tokens = holder.set(grant(Some(secs(60))));
        assert_eq!(tokens.obtained_at(), T0.saturating_add(secs(100)));
        assert_eq!(holder.refresh_at(), Some(T0.saturating_add(secs(155))));
        assert_eq!(holder.time_until_refresh(), Some(secs(55)));
        assert!(!holder.needs_refresh(clock.now()));
        clock.advance(secs(55));
        assert!(holder.needs_refresh(clock.now()));
        assert_eq!(holder.time_until_refresh(), Some(Duration::ZERO));
        assert!(holder.clear().is_some());
        assert!(holder.current().is_none());
    }
}
