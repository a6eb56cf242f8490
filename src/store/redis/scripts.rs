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
    Script::new(&with_prelude(body))
}

/// `body` after the parts of the prelude it uses. Redis runs a script's whole text on every
/// call, so a script carries only the definitions it needs: the prelude's paragraphs (separated
/// by blank lines) each define one name, but the first (`B` and `CH`), which every script gets;
/// a paragraph is included when the body, or a paragraph included, mentions its name.
fn with_prelude(body: &str) -> String {
    let paragraphs: Vec<&str> = PRELUDE.split("\n\n").collect();
    let names: Vec<Option<&str>> = paragraphs.iter().map(|p| defined(p)).collect();
    let mut needed = vec![false; paragraphs.len()];
    needed[0] = true;
    let mut unread = vec![body];
    while let Some(text) = unread.pop() {
        for (i, name) in names.iter().enumerate() {
            if let Some(name) = name
                && !needed[i]
                && mentions(text, name)
            {
                needed[i] = true;
                unread.push(paragraphs[i]);
            }
        }
    }
    let mut out: Vec<&str> = paragraphs.iter().zip(&needed).filter(|(_, n)| **n).map(|(p, _)| *p).collect();
    out.push(body);
    out.join("\n\n")
}

/// The name a prelude paragraph defines (`local function NAME(` or `local NAME =`).
fn defined(paragraph: &str) -> Option<&str> {
    paragraph.lines().find_map(|line| {
        let rest = line.strip_prefix("local function ").or_else(|| line.strip_prefix("local "))?;
        let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))?;
        Some(&rest[..end]).filter(|name| !name.is_empty())
    })
}

/// Whether `text` mentions `name` as a whole word.
fn mentions(text: &str, name: &str) -> bool {
    let word = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    text.match_indices(name)
        .any(|(at, _)| !word(text[..at].chars().next_back()) && !word(text[at + name.len()..].chars().next()))
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
            scan_code: with_prelude(include_str!("scan.lua")),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_script_carries_the_prelude_it_uses_and_no_more() {
        let text = with_prelude("local h = get(B .. 's:' .. ARGV[3])\nreturn rec(h)");
        for needed in ["local B =", "local CH =", "local function get(", "local F =", "local function rec("] {
            assert!(text.contains(needed), "{needed}");
        }
        for unneeded in ["local function drop(", "local function deny(", "local function merge(", "local function put("]
        {
            assert!(!text.contains(unneeded), "{unneeded}");
        }
        assert!(text.ends_with("return rec(h)"));
        // What the definitions included use comes along: drop needs deny, which needs merge.
        let text = with_prelude("drop(dg, h, 'logout', '', ARGV[3])");
        for needed in
            ["local function deny(", "local function merge(", "local function drop_refresh(", "local function ttl("]
        {
            assert!(text.contains(needed), "{needed}");
        }
        // In the prelude's order, so that every local is defined before the code that uses it.
        assert!(text.find("local function merge(") < text.find("local function deny("));
    }

    #[test]
    fn names_are_matched_as_whole_words() {
        assert!(mentions("drop(dg, h)", "drop"));
        assert!(mentions("x = 1 + ms(t)", "ms"));
        assert!(!mentions("drop_refresh(h)", "drop"));
        assert!(!mentions("new_refresh(h)", "refresh"));
        assert!(!mentions("items", "ms"));
        assert_eq!(defined("-- a comment\nlocal function by_id(id)\nend"), Some("by_id"));
        assert_eq!(defined("local F = {'id'}"), Some("F"));
        assert_eq!(defined("-- only a comment"), None);
    }
}
