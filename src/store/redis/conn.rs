//! The connection a [`RedisStore`](super::RedisStore) talks through: a standalone server's
//! (reconnecting [`ConnectionManager`]) or a Cluster's (the `redis` crate's async cluster
//! client, which routes each request by its key's slot, follows `MOVED`/`ASK` and refreshes
//! its slot map when masters change). Both connect lazily: an unreachable Redis makes
//! requests fail, not the store's construction.

use std::sync::Arc;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Client, Cmd, FromRedisValue, RedisResult, ScriptInvocation, Value};

use super::config::{RedisConfig, RedisConfigError};

/// A connection to a standalone Redis or to a Cluster; cheap to clone.
#[derive(Clone)]
pub(super) enum Conn {
    Standalone(ConnectionManager),
    Cluster(Arc<LazyCluster>),
}

/// A Cluster connection made on first use (and again after a failed attempt).
pub(super) struct LazyCluster {
    client: ClusterClient,
    conn: tokio::sync::OnceCell<ClusterConnection>,
}

impl Conn {
    /// The connection `config` describes, not yet connected.
    pub(super) fn new(config: &RedisConfig, client: &Client) -> Result<Self, RedisConfigError> {
        if config.is_cluster() {
            let client = ClusterClient::builder(config.cluster_nodes.iter().map(String::as_str))
                .connection_timeout(config.connect_timeout)
                // Each operation is bounded by the store's own timeout; a long import on a
                // Cluster may take longer than one operation.
                .response_timeout(super::MAX_TIMEOUT)
                .retries(2)
                .build()
                .map_err(RedisConfigError::Url)?;
            return Ok(Self::Cluster(Arc::new(LazyCluster { client, conn: tokio::sync::OnceCell::new() })));
        }
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(config.operation_timeout))
            .set_number_of_retries(1)
            .set_max_delay(config.operation_timeout);
        let conn =
            ConnectionManager::new_lazy_with_config(client.clone(), manager_config).map_err(RedisConfigError::Url)?;
        Ok(Self::Standalone(conn))
    }

    async fn cluster(c: &LazyCluster) -> RedisResult<ClusterConnection> {
        c.conn.get_or_try_init(|| c.client.get_async_connection()).await.cloned()
    }

    /// Runs a script invocation (on the master of its key's slot, on a Cluster).
    pub(super) async fn invoke(&self, invocation: &ScriptInvocation<'_>) -> RedisResult<Value> {
        match self {
            Self::Standalone(m) => invocation.invoke_async(&mut m.clone()).await,
            Self::Cluster(c) => invocation.invoke_async(&mut Self::cluster(c).await?).await,
        }
    }

    /// Runs one command (on the master of its key's slot, on a Cluster).
    pub(super) async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> RedisResult<T> {
        match self {
            Self::Standalone(m) => cmd.query_async(&mut m.clone()).await,
            Self::Cluster(c) => cmd.query_async(&mut Self::cluster(c).await?).await,
        }
    }
}
