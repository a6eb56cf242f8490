//! Errors returned by the manager, the stores and the configuration.
//!
//! Three kinds of failure are kept apart, because an application reacts to each differently:
//!
//! * **rejections of untrusted input** — a malformed, unknown, expired or revoked token, a login
//!   refused by the per-user limit, an oversized or overly nested data bag. These are the
//!   client's problem: answer with 401/403/409/413 and move on.
//! * **store failures** ([`StoreError`]) — the backend could not answer. These are the server's
//!   problem: answer 503 and alert. A store failure is never reported as a valid session.
//! * **misuse** — an invalid [`SessionConfig`](crate::SessionConfig) ([`ConfigError`]) or user id.

use std::error::Error as StdError;
use std::fmt;

/// Why a session stopped being valid through the passage of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExpiryReason {
    /// No activity for longer than the idle timeout.
    Idle,
    /// The session reached its absolute lifetime, whatever its activity.
    Absolute,
}

impl ExpiryReason {
    /// The reason as a short lowercase word (`"idle"`, `"absolute"`), as used in JSON.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Absolute => "absolute",
        }
    }
}

impl fmt::Display for ExpiryReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a session was ended before it expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RevocationReason {
    /// The user logged out of this session.
    Logout,
    /// The user (or the application on the user's behalf) ended all of the user's sessions.
    LogoutAll,
    /// An administrator ended the session.
    Admin,
    /// A newer login of the same user pushed it out under the per-user session limit.
    Evicted,
    /// A spent refresh token of the session was presented again after the grace window: the
    /// token family is presumed stolen, and the whole session ends.
    RefreshReuse,
}

impl RevocationReason {
    /// The reason as a short lowercase word (`"logout"`, `"evicted"`, …), as used in JSON.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Logout => "logout",
            Self::LogoutAll => "logout_all",
            Self::Admin => "admin",
            Self::Evicted => "evicted",
            Self::RefreshReuse => "refresh_reuse",
        }
    }

    /// The reason [`as_str`](Self::as_str) wrote, or `None`: how the remote stores read it back.
    #[cfg(any(feature = "redis", feature = "postgres", feature = "sqlite"))]
    pub(crate) fn from_str_exact(s: &str) -> Option<Self> {
        [Self::Logout, Self::LogoutAll, Self::Admin, Self::Evicted, Self::RefreshReuse]
            .into_iter()
            .find(|r| r.as_str() == s)
    }
}

impl fmt::Display for RevocationReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error type of [`SessionManager`](crate::SessionManager) operations.
///
/// Match on it to choose a response; the variants are stable in meaning, and new ones may be
/// added (the enum is `#[non_exhaustive]`). None of them ever contains a token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The presented token is not a well-formed session token (wrong length, wrong alphabet,
    /// empty or oversized). Nothing was looked up.
    #[error("malformed session token")]
    MalformedToken,
    /// The token is well formed but names no session: it was never issued, was rotated away,
    /// or its session was swept after it expired.
    #[error("unknown session")]
    UnknownSession,
    /// The session has expired.
    #[error("session expired ({reason} timeout)")]
    Expired {
        /// Which deadline passed.
        reason: ExpiryReason,
    },
    /// The session was ended explicitly (logout, eviction, administrator).
    #[error("session revoked ({reason})")]
    Revoked {
        /// Why it was ended.
        reason: RevocationReason,
    },
    /// The user already has the maximum number of sessions and the policy is
    /// [`LimitPolicy::Reject`](crate::LimitPolicy::Reject).
    #[error("session limit of {limit} per user reached")]
    LimitReached {
        /// The configured maximum.
        limit: u32,
    },
    /// A session data update would make the session's data bag larger than allowed.
    #[error("session data of {size} bytes exceeds the limit of {limit} bytes")]
    DataTooLarge {
        /// Encoded size the update would have produced.
        size: usize,
        /// The configured maximum
        /// ([`SessionConfig::max_data_bytes`](crate::SessionConfig::max_data_bytes)).
        limit: usize,
    },
    /// A session data write would nest the data bag deeper than allowed: refused before
    /// anything was serialised or stored, so that every stored session stays readable by
    /// snapshots, exports and the stores.
    #[error("session data nests deeper than the limit of {limit} levels")]
    DataTooDeep {
        /// The configured maximum
        /// ([`SessionConfig::max_data_depth`](crate::SessionConfig::max_data_depth)).
        limit: usize,
    },
    /// The refresh token is malformed or names no session (never issued, its session ended,
    /// or it is older than the reuse history).
    #[error("invalid refresh token")]
    InvalidRefreshToken,
    /// A spent refresh token was presented after the grace window. The session has been
    /// revoked with all its tokens; alert on this, it usually means a token was stolen.
    #[error("refresh token reused; the session has been revoked")]
    RefreshTokenReused,
    /// The access token was refused before its session was consulted.
    #[error(transparent)]
    AccessToken(#[from] crate::token::AccessTokenError),
    /// Access or refresh tokens were asked for, but the manager has no signing keys
    /// ([`SessionManager::set_keys`](crate::SessionManager::set_keys)).
    #[error("no access-token signing keys are configured")]
    NoSigningKeys,
    /// A user id was empty or longer than [`UserId::MAX_LEN`](crate::UserId::MAX_LEN).
    #[error(transparent)]
    InvalidUserId(#[from] InvalidUserId),
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The operating system's random number generator failed; no token was issued.
    #[error("the system random number generator failed")]
    Random(#[source] RandomError),
    /// The store could not complete the operation. The session state is unknown: fail closed.
    #[error("session store failure")]
    Store(#[from] StoreError),
}

impl Error {
    /// `true` for rejections of what a client presented (malformed, unknown, expired or revoked
    /// token; login refused by the limit; oversized or overly nested data): the client's fault,
    /// not the server's.
    ///
    /// Not every rejection means "not authenticated": [`LimitReached`](Self::LimitReached)
    /// answers 409, [`DataTooLarge`](Self::DataTooLarge) and [`DataTooDeep`](Self::DataTooDeep)
    /// 413. Use
    /// [`http_status`](Self::http_status) to answer, and
    /// [`is_unauthenticated`](Self::is_unauthenticated) to tell a missing or dead credential.
    #[must_use]
    pub const fn is_rejection(&self) -> bool {
        matches!(
            self,
            Self::MalformedToken
                | Self::UnknownSession
                | Self::Expired { .. }
                | Self::Revoked { .. }
                | Self::LimitReached { .. }
                | Self::DataTooLarge { .. }
                | Self::DataTooDeep { .. }
                | Self::InvalidRefreshToken
                | Self::RefreshTokenReused
                | Self::AccessToken(_)
        )
    }
}

impl Error {
    /// `true` when the request has no valid credential: a malformed, unknown, expired or
    /// revoked session token, a refused access token or refresh token (HTTP 401).
    #[must_use]
    pub const fn is_unauthenticated(&self) -> bool {
        self.http_status() == 401
    }

    /// The HTTP status this error is answered with: 401 for a missing or dead credential, 409
    /// for a login refused by the per-user limit, 413 for oversized or overly nested session
    /// data, 400 for an invalid user id, 503 for a store failure (never 401: the session's state
    /// is unknown), 500 for the rest (misconfiguration, a failed random number generator).
    #[must_use]
    pub const fn http_status(&self) -> u16 {
        match self {
            Self::MalformedToken
            | Self::UnknownSession
            | Self::Expired { .. }
            | Self::Revoked { .. }
            | Self::InvalidRefreshToken
            | Self::RefreshTokenReused
            | Self::AccessToken(_) => 401,
            Self::LimitReached { .. } => 409,
            Self::DataTooLarge { .. } | Self::DataTooDeep { .. } => 413,
            Self::InvalidUserId(_) => 400,
            Self::Store(_) => 503,
            Self::NoSigningKeys | Self::Config(_) | Self::Random(_) => 500,
        }
    }

    /// The stable machine-readable code of this error, as the `axum` integration puts it in
    /// the `"error"` field of its JSON answers:
    ///
    /// | code | variants |
    /// |---|---|
    /// | `invalid_session` | [`MalformedToken`](Self::MalformedToken), [`UnknownSession`](Self::UnknownSession) |
    /// | `session_expired` | [`Expired`](Self::Expired) (see [`reason`](Self::reason)) |
    /// | `session_revoked` | [`Revoked`](Self::Revoked) (see [`reason`](Self::reason)) |
    /// | `access_token_expired` | [`AccessToken`](Self::AccessToken) with [`AccessTokenError::Expired`](crate::AccessTokenError::Expired) |
    /// | `invalid_access_token` | any other [`AccessToken`](Self::AccessToken) |
    /// | `invalid_refresh_token` | [`InvalidRefreshToken`](Self::InvalidRefreshToken) |
    /// | `refresh_token_reused` | [`RefreshTokenReused`](Self::RefreshTokenReused) |
    /// | `session_limit_reached` | [`LimitReached`](Self::LimitReached) |
    /// | `session_data_too_large` | [`DataTooLarge`](Self::DataTooLarge) |
    /// | `session_data_too_deep` | [`DataTooDeep`](Self::DataTooDeep) |
    /// | `invalid_request` | [`InvalidUserId`](Self::InvalidUserId) |
    /// | `store_unavailable` | [`Store`](Self::Store) |
    /// | `internal_error` | [`NoSigningKeys`](Self::NoSigningKeys), [`Config`](Self::Config), [`Random`](Self::Random) |
    #[must_use]
    pub const fn code(&self) -> &'static str {
        match self {
            Self::MalformedToken | Self::UnknownSession => "invalid_session",
            Self::Expired { .. } => "session_expired",
            Self::Revoked { .. } => "session_revoked",
            Self::AccessToken(crate::token::AccessTokenError::Expired) => "access_token_expired",
            Self::AccessToken(_) => "invalid_access_token",
            Self::InvalidRefreshToken => "invalid_refresh_token",
            Self::RefreshTokenReused => "refresh_token_reused",
            Self::LimitReached { .. } => "session_limit_reached",
            Self::DataTooLarge { .. } => "session_data_too_large",
            Self::DataTooDeep { .. } => "session_data_too_deep",
            Self::InvalidUserId(_) => "invalid_request",
            Self::Store(_) => "store_unavailable",
            Self::NoSigningKeys | Self::Config(_) | Self::Random(_) => "internal_error",
        }
    }

    /// Why the session ended, for [`Expired`](Self::Expired) (`"idle"`, `"absolute"`) and
    /// [`Revoked`](Self::Revoked) (`"logout"`, `"evicted"`, …); `None` otherwise.
    #[must_use]
    pub const fn reason(&self) -> Option<&'static str> {
        match self {
            Self::Expired { reason } => Some(reason.as_str()),
            Self::Revoked { reason } => Some(reason.as_str()),
            _ => None,
        }
    }
}

/// A user id was rejected: empty, or longer than [`UserId::MAX_LEN`](crate::UserId::MAX_LEN) bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("user id must be 1 to {max} bytes long, got {len}", max = crate::UserId::MAX_LEN)]
pub struct InvalidUserId {
    pub(crate) len: usize,
}

/// The operating system's random number generator (or, never in practice, a key derivation
/// from its output) failed.
#[derive(Debug, thiserror::Error)]
#[error("random number generation failed")]
pub struct RandomError(#[source] pub(crate) Option<rand::rngs::SysError>);

/// An invalid [`SessionConfig`](crate::SessionConfig), refused when it is built or deserialised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A duration that must be positive is zero.
    #[error("`{field}` must be greater than zero")]
    Zero {
        /// The option's name.
        field: &'static str,
    },
    /// A duration is too long to be represented (over about 292 years).
    #[error("`{field}` is too long")]
    TooLong {
        /// The option's name.
        field: &'static str,
    },
    /// An idle timeout is longer than the absolute timeout it belongs to, so it could never apply.
    #[error("`{idle}` must not be longer than `{absolute}`")]
    IdleExceedsAbsolute {
        /// The idle option's name.
        idle: &'static str,
        /// The absolute option's name.
        absolute: &'static str,
    },
    /// The touch interval is not shorter than the idle timeout, so sessions would expire between
    /// two writes of their activity.
    #[error("`touch_interval` must be shorter than `{idle}`")]
    TouchIntervalTooLong {
        /// The idle option it conflicts with.
        idle: &'static str,
    },
    /// A size option is outside its allowed range.
    #[error("`{field}` must be between {min} and {max}")]
    OutOfRange {
        /// The option's name.
        field: &'static str,
        /// Smallest allowed value.
        min: u64,
        /// Largest allowed value.
        max: u64,
    },
}

/// A failure of the session store itself, as opposed to a rejection of what a client sent.
///
/// Stores report "not found" as a normal outcome, never as an error; a `StoreError` means the
/// store could not answer, and callers must fail closed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The key of a new session, or the new key of a rotation, is already taken. With 256-bit
    /// random tokens this does not happen by chance; the manager retries with a fresh token.
    #[error("a session with this token digest or id already exists")]
    Conflict,
    /// Concurrent writers kept changing the same session until the store gave up (a store
    /// that updates optimistically bounds its retries). Nothing changed; the operation may be
    /// retried.
    #[error("too many concurrent updates of the same session")]
    Contended,
    /// The backend is unreachable or timed out.
    #[error("session store unavailable")]
    Unavailable(#[source] Box<dyn StdError + Send + Sync>),
    /// The backend answered with data this version cannot read.
    #[error("session store returned corrupt data: {0}")]
    Corrupt(String),
    /// Any other backend failure.
    #[error("session store failure")]
    Backend(#[source] Box<dyn StdError + Send + Sync>),
}
