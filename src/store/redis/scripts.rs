//! The Lua scripts (`*.lua` beside this file, each run after `prelude.lua`), loading them into
//! Redis's script cache, and running them.

use std::time::Duration;

use redis::{RedisError, Script, Value};

use crate::error::StoreError;

use super::conn::Conn;
use super::{RedisStore, redis_error};

pub(super) struct Scripts {
    pub(super) insert: Script,
    pub(super) touch: Script,
    pub(super) get: Script,
    pub(super) rotate: Script,
    pub(super) data_get: Script,
    pub(super) data_set: Script,
    pub(super) remove: Script,
    pub(super) remove_user: Script,
    pub(super) list_user: Script,
    pub(super) refresh: Script,
    pub(super) remove_expired: Script,
    pub(super) scan: Script,
    pub(super) restore: Script,
    /// The scan script's text, sent with `EVAL` to each master in turn (a script routed to a
    /// node rather than by a key).
    pub(super) scan_code: String,
}

const PRELUDE: &str = include_str!("prelude.lua");

fn script(body: &str) -> Script {
    Script::new(&format!("{PRELUDE}\n{body}"))
}

impl Scripts {
    pub(super) fn new() -> Self {
        Self {
            insert: script(include_str!("insert.lua")),
            touch: script(include_str!("touch.lua")),
            get: script(include_str!("get.lua")),
            rotate: script(include_str!("rotate.lua")),
            data_get: script(include_str!("data_get.lua")),
            data_set: script(include_str!("data_set.lua")),
            remove: script(include_str!("remove.lua")),
            remove_user: script(include_str!("remove_user.lua")),
            list_user: script(include_str!("list_user.lua")),
            refresh: script(include_str!("refresh.lua")),
            remove_expired: script(include_str!("remove_expired.lua")),
            scan: script(include_str!("scan.lua")),
            restore: script(include_str!("restore.lua")),
            scan_code: format!("{PRELUDE}\n{}", include_str!("scan.lua")),
        }
    }

    fn all(&self) -> [&Script; 13] {
        [
            &self.insert,
            &self.touch,
            &self.get,
            &self.rotate,
            &self.data_get,
            &self.data_set,
            &self.remove,
            &self.remove_user,
            &self.list_user,
            &self.refresh,
            &self.remove_expired,
            &self.scan,
            &self.restore,
        ]
    }

    /// Loads every script into Redis's script cache.
    pub(super) async fn load(&self, conn: &Conn) -> Result<(), RedisError> {
        // On a Cluster each master loads a script on its first use instead.
        if let Conn::Standalone(conn) = conn {
            let mut conn = conn.clone();
            for s in self.all() {
                s.load_async(&mut conn).await?;
            }
        }
        Ok(())
    }
}

impl RedisStore {
    /// Runs `script` on `key` with the key base of its bucket and the channel as its first two
    /// arguments, then `args`.
    pub(super) async fn run(
        &self,
        script: &Script,
        base: &str,
        key: &str,
        args: Vec<Vec<u8>>,
    ) -> Result<Value, StoreError> {
        self.run_on(&self.inner.conn, script, base, key, args).await
    }

    /// [`run`](Self::run) on connection `conn`.
    pub(super) async fn run_on(
        &self,
        conn: &Conn,
        script: &Script,
        base: &str,
        key: &str,
        args: Vec<Vec<u8>>,
    ) -> Result<Value, StoreError> {
        let inner = &*self.inner;
        let timeout = inner.config.operation_timeout;
        let mut invocation = script.key(key);
        invocation.arg(base).arg(inner.channel.as_str());
        for a in args {
            invocation.arg(a);
        }
        match tokio::time::timeout(timeout, conn.invoke(&invocation)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(redis_error(e)),
            Err(elapsed) => Err(StoreError::Unavailable(Box::new(elapsed))),
        }
    }

    /// Runs `script` on a connection of its own whose requests may take `timeout`: for
    /// scripts whose work grows with their input (a large restore), which the shared
    /// connection's per-request timeout would cut short.
    pub(super) async fn run_long(
        &self,
        script: &Script,
        base: &str,
        key: &str,
        args: Vec<Vec<u8>>,
        timeout: Duration,
    ) -> Result<Value, StoreError> {
        let inner = &*self.inner;
        if let Conn::Cluster(_) = inner.conn {
            // The Cluster connection's own response timeout is long; bound this request alone.
            let mut invocation = script.key(key);
            invocation.arg(base).arg(inner.channel.as_str());
            for a in args {
                invocation.arg(a);
            }
            return match tokio::time::timeout(timeout, inner.conn.invoke(&invocation)).await {
                Ok(Ok(v)) => Ok(v),
                Ok(Err(e)) => Err(redis_error(e)),
                Err(elapsed) => Err(StoreError::Unavailable(Box::new(elapsed))),
            };
        }
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(inner.config.connect_timeout))
            .set_response_timeout(Some(timeout));
        let connect = inner.client.get_multiplexed_async_connection_with_config(&config);
        let mut conn = tokio::time::timeout(inner.config.operation_timeout, connect)
            .await
            .map_err(|e| StoreError::Unavailable(Box::new(e)))?
            .map_err(redis_error)?;
        let mut invocation = script.key(key);
        invocation.arg(base).arg(inner.channel.as_str());
        for a in args {
            invocation.arg(a);
        }
        match tokio::time::timeout(timeout, invocation.invoke_async::<Value>(&mut conn)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(redis_error(e)),
            Err(elapsed) => Err(StoreError::Unavailable(Box::new(elapsed))),
        }
    }
}
