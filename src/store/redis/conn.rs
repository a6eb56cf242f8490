//! The connection a [`RedisStore`](super::RedisStore) talks through: a standalone server's
//! (reconnecting [`ConnectionManager`]) or a Cluster's (the `redis` crate's async cluster
//! client, which routes each request by its key's slot, follows `MOVED`/`ASK` and refreshes
//! its slot map when masters change). Both connect lazily: an unreachable Redis makes
//! requests fail, not the store's construction.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
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

/// A master, for the requests that must visit every one (scans): its address on a Cluster,
/// nothing on a standalone server.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Master {
    Standalone,
    At { host: String, port: u16 },
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

    /// Runs one command on `master`.
    pub(super) async fn query_on<T: FromRedisValue>(&self, master: &Master, cmd: Cmd) -> RedisResult<T> {
        match (self, master) {
            (Self::Cluster(c), Master::At { host, port }) => {
                let routing =
                    RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress { host: host.clone(), port: *port });
                let value = Self::cluster(c).await?.route_command(cmd, routing).await?;
                Ok(redis::from_redis_value(value)?)
            }
            _ => self.query(&cmd).await,
        }
    }

    /// Every master serving slots, in a stable order: the one server of a standalone Redis.
    pub(super) async fn masters(&self) -> RedisResult<Vec<Master>> {
        let Self::Cluster(c) = self else { return Ok(vec![Master::Standalone]) };
        let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::RandomPrimary);
        let nodes = Self::cluster(c).await?.route_command(redis::cmd("CLUSTER").arg("NODES").clone(), routing).await?;
        let nodes: String = redis::from_redis_value(nodes)?;
        let mut masters: Vec<Master> = nodes.lines().filter_map(master_of_line).collect();
        masters.sort();
        masters.dedup();
        Ok(masters)
    }
}

/// The master a `CLUSTER NODES` line describes, if it is a master that serves slots and is
/// not failed: `<id> <host:port@bus[,hostname]> <flags> <master> <ping> <pong> <epoch> <link> <slot>…`.
fn master_of_line(line: &str) -> Option<Master> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let (address, flags) = (fields.get(1)?, fields.get(2)?);
    let flags: Vec<&str> = flags.split(',').collect();
    if !flags.contains(&"master") || flags.iter().any(|f| f.starts_with("fail") || *f == "noaddr") || fields.len() < 9 {
        return None;
    }
    let address = address.split(['@', ',']).next()?;
    let (host, port) = address.rsplit_once(':')?;
    Some(Master::At { host: host.to_owned(), port: port.parse().ok()? })
}

/// How long a scan page may take on one master.
pub(super) const SCAN_TIMEOUT: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_nodes_lines_name_the_serving_masters() {
        let text = "\
07c37dfeb235213a872192d90877d0cd55635b91 127.0.0.1:30004@40004 slave e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 0 1426238317239 4 connected
67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 127.0.0.1:30002@40002 master - 0 1426238316232 2 connected 5461-10922
292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f 127.0.0.1:30003@40003,host.example master - 0 1426238318243 3 connected 10923-16383
e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 127.0.0.1:30001@40001 myself,master - 0 0 1 connected 0-5460
aaaa 127.0.0.1:30005@40005 master,fail - 0 0 5 disconnected 1-2
bbbb 127.0.0.1:30006@40006 master - 0 0 6 connected";
        let masters: Vec<Master> = text.lines().filter_map(master_of_line).collect();
        let ports: Vec<u16> = masters
            .iter()
            .map(|m| match m {
                Master::At { port, .. } => *port,
                Master::Standalone => 0,
            })
            .collect();
        assert_eq!(ports, [30002, 30003, 30001]);
    }
}
