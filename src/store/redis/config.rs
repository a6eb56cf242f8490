//! [`RedisConfig`]: how to reach Redis and lay out the keys, its limits and its errors.

use std::time::Duration;

use redis::RedisError;

use super::DenylistMode;

/// How to reach Redis and lay out the keys. Build with [`RedisConfig::new`] and the `with_`
/// methods; every option states its default.
///
/// Its `Debug` output hides the URL's password (and any `password`/`pass` query parameter):
///
/// ```
/// use sessionkit::store::redis::RedisConfig;
///
/// let config = RedisConfig::new("redis://app:s3cret@127.0.0.1:6379/0");
/// let shown = format!("{config:?}");
/// assert!(shown.contains("redis://app:***@127.0.0.1:6379/0") && !shown.contains("s3cret"));
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct RedisConfig {
    /// The server, as a `redis://` (or `rediss://` with a TLS-enabled `redis` crate) URL. For
    /// a Cluster, the first of [`cluster_nodes`](Self::cluster_nodes).
    pub url: String,
    /// Seed nodes of a Redis (or Valkey) Cluster; empty for a standalone server. Any reachable
    /// seed is enough: the client learns the topology from it, follows `MOVED`/`ASK`
    /// redirections and refreshes the slot map when masters change.
    pub cluster_nodes: Vec<String>,
    /// First part of every key and of the denylist channel. Default `"sessionkit"`.
    pub key_prefix: String,
    /// Longest any operation may take, including reconnecting, before it fails with
    /// [`StoreError::Unavailable`](crate::error::StoreError::Unavailable). Default 1 second.
    pub operation_timeout: Duration,
    /// Longest a connection attempt may take. Default 500 ms.
    pub connect_timeout: Duration,
    /// How long an expired session stays in Redis at least when no sweeper removes it (a
    /// login removes sessions of its bucket this long past their expiry), so that a late
    /// request is answered "expired" rather than "unknown". Default 15 minutes (the sweeper's
    /// default interval, so the answer matches [`MemoryStore`](crate::MemoryStore)'s).
    pub expired_retention: Duration,
    /// How access-token denylist checks are answered. Default [`DenylistMode::Subscribed`].
    pub denylist: DenylistMode,
    /// In subscribed mode, the longest the subscription may go unconfirmed: it is sent a `PING`
    /// every half of this, and one not answered within the other half counts it lost, even when
    /// its connection died without closing (a peer or a network path gone silent). A lost
    /// subscription is noticed within this long; from then on every access token is refused
    /// until the store has resubscribed and read the whole denylist back, so the revocations
    /// published while it was lost are in force again at once. Default 1 second, at most
    /// [`MAX_SUBSCRIPTION_CHECK`].
    pub subscription_check: Duration,
    /// Durable revocation: after a logout, a revoke-all or an admin revocation, wait until this
    /// many replicas (of every master, on a Cluster) have acknowledged the writes (`WAIT`), so
    /// that a fail-over cannot bring the revoked session back. Default 0: off. See
    /// [`with_durable_revocations`](Self::with_durable_revocations).
    pub revocation_replicas: u32,
    /// How long a durable revocation waits for its replicas. Default 1 second.
    pub revocation_wait: Duration,
}

impl RedisConfig {
    /// The defaults, for the server at `url`.
    #[must_use]
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            cluster_nodes: Vec::new(),
            key_prefix: "sessionkit".to_owned(),
            operation_timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_millis(500),
            expired_retention: Duration::from_secs(15 * 60),
            denylist: DenylistMode::Subscribed,
            subscription_check: Duration::from_secs(1),
            revocation_replicas: 0,
            revocation_wait: Duration::from_secs(1),
        }
    }

    /// The defaults, for the Redis Cluster reachable through any of `nodes` (seed URLs, e.g.
    /// `redis://127.0.0.1:7000`). Keys are sharded by user over the Cluster's masters: see the
    /// [module documentation](super#key-layout).
    #[must_use]
    pub fn cluster(nodes: impl IntoIterator<Item = impl Into<String>>) -> Self {
        let cluster_nodes: Vec<String> = nodes.into_iter().map(Into::into).collect();
        let mut config = Self::new(cluster_nodes.first().cloned().unwrap_or_default());
        config.cluster_nodes = cluster_nodes;
        config
    }

    /// [`cluster_nodes`](Self::cluster_nodes) with their passwords hidden, as
    /// [`redacted_url`](Self::redacted_url) does.
    #[must_use]
    pub fn redacted_cluster_nodes(&self) -> Vec<String> {
        self.cluster_nodes.iter().map(|u| crate::store::url::redact_url(u)).collect()
    }

    /// Whether this configuration names a Cluster.
    #[must_use]
    pub fn is_cluster(&self) -> bool {
        !self.cluster_nodes.is_empty()
    }

    /// The URL with its password hidden (user information and `password`/`pass` query
    /// parameters), fit for logs and start-up messages; what `Debug` shows.
    #[must_use]
    pub fn redacted_url(&self) -> String {
        crate::store::url::redact_url(&self.url)
    }

    /// Sets [`key_prefix`](Self::key_prefix).
    #[must_use]
    pub fn with_key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// Sets [`operation_timeout`](Self::operation_timeout).
    #[must_use]
    pub fn with_operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = timeout;
        self
    }

    /// Sets [`connect_timeout`](Self::connect_timeout).
    #[must_use]
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets [`expired_retention`](Self::expired_retention).
    #[must_use]
    pub fn with_expired_retention(mut self, retention: Duration) -> Self {
        self.expired_retention = retention;
        self
    }

    /// Sets [`denylist`](Self::denylist).
    #[must_use]
    pub fn with_denylist(mut self, mode: DenylistMode) -> Self {
        self.denylist = mode;
        self
    }

    /// Makes logouts, revoke-alls and admin revocations durable: each waits (`WAIT`) until
    /// `replicas` replicas have acknowledged it, at most `wait`. If fewer acknowledge in time,
    /// the revocation is in force on the master but the operation answers
    /// [`StoreError::Unavailable`](crate::error::StoreError::Unavailable), so the caller can
    /// tell that a fail-over might still undo it (and retry: revoking again is harmless).
    ///
    /// The trade-off: every revocation takes the replicas' replication delay (usually well
    /// under a millisecond on a LAN) and fails while fewer than `replicas` replicas are up;
    /// validations, logins and refreshes are not affected. Without it (the default),
    /// replication is asynchronous: a master that fails right after a logout can hand over to
    /// a replica that has not seen the logout, and the session comes back.
    #[must_use]
    pub fn with_durable_revocations(mut self, replicas: u32, wait: Duration) -> Self {
        self.revocation_replicas = replicas;
        self.revocation_wait = wait;
        self
    }

    /// Sets [`subscription_check`](Self::subscription_check).
    #[must_use]
    pub fn with_subscription_check(mut self, every: Duration) -> Self {
        self.subscription_check = every;
        self
    }
}

impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &self.redacted_url())
            .field("cluster_nodes", &self.redacted_cluster_nodes())
            .field("key_prefix", &self.key_prefix)
            .field("operation_timeout", &self.operation_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("expired_retention", &self.expired_retention)
            .field("denylist", &self.denylist)
            .field("subscription_check", &self.subscription_check)
            .field("revocation_replicas", &self.revocation_replicas)
            .field("revocation_wait", &self.revocation_wait)
            .finish()
    }
}

/// Longest accepted [`RedisConfig::expired_retention`]: a year.
pub const MAX_EXPIRED_RETENTION: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// Longest accepted timeout in a [`RedisConfig`]: an hour.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(60 * 60);

/// Longest accepted [`RedisConfig::subscription_check`]: 10 seconds, the longest a subscribed
/// denylist can trust a copy whose subscription has silently died.
pub const MAX_SUBSCRIPTION_CHECK: Duration = Duration::from_secs(10);

/// Why a [`RedisStore`](super::RedisStore) could not be built. Redis being unreachable is not one of them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisConfigError {
    /// The URL is not a Redis URL.
    #[error("invalid Redis URL")]
    Url(#[source] RedisError),
    /// The key prefix is empty or contains `{`, `}` or a control character.
    #[error("invalid key prefix {0:?}: it must be non-empty, without braces or control characters")]
    Prefix(String),
    /// A timeout is zero.
    #[error("{0} must be greater than zero")]
    ZeroTimeout(&'static str),
    /// A duration is longer than its limit ([`MAX_TIMEOUT`] for the timeouts,
    /// [`MAX_SUBSCRIPTION_CHECK`] for the subscription check, [`MAX_EXPIRED_RETENTION`] for
    /// the retention).
    #[error("{option} must be at most {max:?}")]
    TooLong {
        /// The option's name.
        option: &'static str,
        /// Its limit.
        max: Duration,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_passwords() {
        for (url, shown) in [
            ("redis://127.0.0.1:6379/", "redis://127.0.0.1:6379/"),
            ("redis://:pw1@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
            ("redis://app:pw2@host/0?protocol=resp3", "redis://app:***@host/0?protocol=resp3"),
            ("rediss://pw3@host", "rediss://***@host"),
            ("redis://user:p@ss:w@rd@host:1", "redis://user:***@host:1"),
            ("redis+unix:///run/redis.sock?db=1&pass=pw4", "redis+unix:///run/redis.sock?db=1&pass=***"),
            ("unix:///run/redis.sock?password=pw5&user=u", "unix:///run/redis.sock?password=***&user=u"),
            ("not a url pw6", "***"),
        ] {
            assert_eq!(crate::store::url::redact_url(url), shown);
            let debug = format!("{:?}", RedisConfig::new(url));
            assert!(debug.contains(&format!("{shown:?}")), "{debug}");
            assert!(!debug.contains("pw"), "{debug}");
        }
    }
}
