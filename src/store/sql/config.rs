//! [`SqlConfig`]: which database, how long an operation may take, the pool, the denylist mode;
//! and why a store could not be built.

use std::time::Duration;

/// How [`TokenStore::access_denied`](crate::store::TokenStore::access_denied) is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum DenylistMode {
    /// A local copy of the denylist: no statement per verification. On PostgreSQL it is kept
    /// current by `LISTEN`/`NOTIFY` (a revocation through another instance arrives within
    /// milliseconds); while the listening connection is down (noticed within
    /// [`SqlConfig::subscription_check`]) the store refuses every access token until it has
    /// listened again and read the whole table back. On SQLite the copy is read at start-up and
    /// updated by this store's own writes. The default.
    ///
    /// # Warning
    /// On SQLite this assumes one process writes the file: revocations written by another
    /// process are not seen. Use [`Strict`](Self::Strict) when several processes share it.
    #[default]
    Subscribed,
    /// Read the denylist table on every access-token verification: one indexed lookup by
    /// primary key, exact across every instance and process.
    Strict,
}

/// Where the sessions live and how the store behaves. Build with [`SqlConfig::new`] and the
/// `with_` methods; every option states its default.
///
/// Its `Debug` output hides the URL's password:
///
/// ```
/// use sessionkit::store::sql::SqlConfig;
///
/// let config = SqlConfig::new("postgres://app:s3cret@127.0.0.1:5432/sessions");
/// let shown = format!("{config:?}");
/// assert!(shown.contains("postgres://app:***@127.0.0.1:5432/sessions") && !shown.contains("s3cret"));
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct SqlConfig {
    /// The database: `postgres://user:password@host:port/database` (feature `postgres`), or
    /// `sqlite://path/to/file.db` (created if missing) or `sqlite::memory:` (feature `sqlite`).
    pub url: String,
    /// Longest any operation may take, including waiting for a pooled connection or a lock,
    /// before it fails with [`StoreError::Unavailable`](crate::error::StoreError::Unavailable).
    /// Default 1 second.
    pub operation_timeout: Duration,
    /// Most connections the pool opens. Default 10; always 1 for `sqlite::memory:` (each
    /// connection to it would be a database of its own).
    pub max_connections: u32,
    /// How access-token denylist checks are answered. Default [`DenylistMode::Subscribed`].
    pub denylist: DenylistMode,
    /// On PostgreSQL in subscribed mode, the longest the listening connection may go
    /// unconfirmed: it sends itself a heartbeat notification every half of this, which must
    /// come back within the other half. A lost connection (closed, or dead without closing) is
    /// noticed within this long; from then on every access token is refused until the store
    /// has listened again and read the whole denylist back. Default 1 second, at most
    /// [`MAX_SUBSCRIPTION_CHECK`].
    pub subscription_check: Duration,
}

impl SqlConfig {
    /// The defaults, for the database at `url`.
    #[must_use]
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            operation_timeout: Duration::from_secs(1),
            max_connections: 10,
            denylist: DenylistMode::Subscribed,
            subscription_check: Duration::from_secs(1),
        }
    }

    /// The URL with its password hidden, fit for logs and start-up messages; what `Debug` shows.
    #[must_use]
    pub fn redacted_url(&self) -> String {
        crate::store::url::redact_url(&self.url)
    }

    /// Sets [`operation_timeout`](Self::operation_timeout).
    #[must_use]
    pub fn with_operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = timeout;
        self
    }

    /// Sets [`max_connections`](Self::max_connections).
    #[must_use]
    pub fn with_max_connections(mut self, n: u32) -> Self {
        self.max_connections = n;
        self
    }

    /// Sets [`denylist`](Self::denylist).
    #[must_use]
    pub fn with_denylist(mut self, mode: DenylistMode) -> Self {
        self.denylist = mode;
        self
    }

    /// Sets [`subscription_check`](Self::subscription_check).
    #[must_use]
    pub fn with_subscription_check(mut self, every: Duration) -> Self {
        self.subscription_check = every;
        self
    }
}

impl std::fmt::Debug for SqlConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlConfig")
            .field("url", &self.redacted_url())
            .field("operation_timeout", &self.operation_timeout)
            .field("max_connections", &self.max_connections)
            .field("denylist", &self.denylist)
            .field("subscription_check", &self.subscription_check)
            .finish()
    }
}

/// Longest accepted [`SqlConfig::operation_timeout`]: an hour.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(60 * 60);

/// Longest accepted [`SqlConfig::subscription_check`]: 10 seconds, the longest a subscribed
/// denylist can trust a copy whose listening connection has silently died.
pub const MAX_SUBSCRIPTION_CHECK: Duration = Duration::from_secs(10);

/// Why [`SqlStore::connect`](super::SqlStore::connect) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SqlConnectError {
    /// The URL names no database this build supports (`postgres://` needs feature `postgres`,
    /// `sqlite:` feature `sqlite`).
    #[error("unsupported database URL {0:?} (postgres:// with feature postgres, sqlite: with feature sqlite)")]
    Url(String),
    /// The operation timeout or the subscription check is zero, or longer than its limit
    /// ([`MAX_TIMEOUT`], [`MAX_SUBSCRIPTION_CHECK`]).
    #[error(
        "operation_timeout and subscription_check must be greater than zero, and at most {MAX_TIMEOUT:?} and {MAX_SUBSCRIPTION_CHECK:?}"
    )]
    Timeout,
    /// `max_connections` is zero.
    #[error("max_connections must be at least 1")]
    Pool,
    /// The database could not be reached or refused the connection (within the operation
    /// timeout).
    #[error("could not connect to the session database")]
    Connect(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The schema migrations failed.
    #[error("could not migrate the session database schema")]
    Migrate(#[source] sqlx::migrate::MigrateError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_passwords() {
        for (url, shown) in [
            ("postgres://app:pw1@db.example:5432/sessions", "postgres://app:***@db.example:5432/sessions"),
            ("postgresql://pw2@db/sessions?sslmode=require", "postgresql://***@db/sessions?sslmode=require"),
            // A lone user name is hidden too: Redis URLs put a password there.
            ("postgres://app@db/s?password=pw3", "postgres://***@db/s?password=***"),
            ("sqlite://var/sessions.db", "sqlite://var/sessions.db"),
            ("sqlite::memory:", "sqlite::memory:"),
        ] {
            let debug = format!("{:?}", SqlConfig::new(url));
            assert!(debug.contains(&format!("{shown:?}")), "{debug}");
            assert!(!debug.contains("pw"), "{debug}");
        }
    }
}
