//! The Lua scripts (`*.lua` beside this file, each run after `prelude.lua`), loading them into
//! Redis's script cache, and running them.

use std::time::Duration;

use redis::{RedisError, Script, ScriptInvocation, Value};

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
}

const PRELUDE: &str = include_str!("prelude.lua");

fn script(body: &str) -> Script {
    Script::new(&with_prelude(body))
}

/// `body` after the parts of the prelude it uses. Redis runs a script's whole text on every
/// call, so a script carries only the definitions it needs: the prelude's paragraphs (separated
/// by blank lines) each define one name, but the first (the keys, `B` and `CH`), which every
/// script gets; a paragraph is included when the body, or a paragraph included, mentions its
/// name.
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

/// Every script's body, in the order of [`Scripts`]' fields: one list for the scripts and for
/// the tests that read them.
const BODIES: [&str; 13] = [
    include_str!("insert.lua"),
    include_str!("touch.lua"),
    include_str!("get.lua"),
    include_str!("rotate.lua"),
    include_str!("data_get.lua"),
    include_str!("data_set.lua"),
    include_str!("remove.lua"),
    include_str!("remove_user.lua"),
    include_str!("list_user.lua"),
    include_str!("refresh.lua"),
    include_str!("remove_expired.lua"),
    include_str!("scan.lua"),
    include_str!("restore.lua"),
];

impl Scripts {
    pub(super) fn new() -> Self {
        let [
            insert,
            touch,
            get,
            rotate,
            data_get,
            data_set,
            remove,
            remove_user,
            list_user,
            refresh,
            remove_expired,
            scan,
            restore,
        ] = BODIES.map(script);
        Self {
            insert,
            touch,
            get,
            rotate,
            data_get,
            data_set,
            remove,
            remove_user,
            list_user,
            refresh,
            remove_expired,
            scan,
            restore,
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

/// The names of a bucket's keys (after its key base), in the order every script receives them
/// as `KEYS`: each script declares every key it may touch.
pub(super) const KEY_NAMES: [&str; 9] = ["s", "i", "u", "r", "v", "d", "x", "y", "q"];

/// A bucket's key base (`<prefix>:{b<n>}:`) and its keys, named once when the store is made
/// rather than on every request.
pub(super) struct Bucket {
    pub(super) base: String,
    keys: [String; 9],
}

impl Bucket {
    pub(super) fn new(prefix: &str, n: usize) -> Self {
        let base = format!("{prefix}:{{b{n}}}:");
        let keys = KEY_NAMES.map(|name| format!("{base}{name}"));
        Self { base, keys }
    }

    /// `s`: the sessions.
    pub(super) fn sessions(&self) -> &str {
        &self.keys[0]
    }

    /// `v`: the remembered revocations.
    pub(super) fn revocations(&self) -> &str {
        &self.keys[4]
    }

    /// `d`: the denylist entries.
    pub(super) fn denylist(&self) -> &str {
        &self.keys[5]
    }
}

impl RedisStore {
    /// The invocation of `script` on bucket `bucket`: its keys, then the bucket's key base and
    /// the channel as the first two arguments, then `args`.
    fn invocation<'a>(&self, script: &'a Script, bucket: usize, args: Vec<Vec<u8>>) -> ScriptInvocation<'a> {
        let inner = &*self.inner;
        let bucket = &inner.buckets[bucket];
        let mut invocation = script.prepare_invoke();
        for key in &bucket.keys {
            invocation.key(key.as_str());
        }
        invocation.arg(bucket.base.as_str()).arg(inner.channel.as_str());
        for a in args {
            invocation.arg(a);
        }
        invocation
    }

    /// Runs `script` on bucket `bucket` with `args` (see [`invocation`](Self::invocation)).
    pub(super) async fn run(&self, script: &Script, bucket: usize, args: Vec<Vec<u8>>) -> Result<Value, StoreError> {
        self.run_on(&self.inner.conn, script, bucket, args).await
    }

    /// [`run`](Self::run) on connection `conn`.
    pub(super) async fn run_on(
        &self,
        conn: &Conn,
        script: &Script,
        bucket: usize,
        args: Vec<Vec<u8>>,
    ) -> Result<Value, StoreError> {
        let invocation = self.invocation(script, bucket, args);
        within(self.inner.config.operation_timeout, conn.invoke(&invocation)).await
    }

    /// Runs `script` on a connection of its own whose requests may take `timeout`: for
    /// scripts whose work grows with their input (a large restore), which the shared
    /// connection's per-request timeout would cut short.
    pub(super) async fn run_long(
        &self,
        script: &Script,
        bucket: usize,
        args: Vec<Vec<u8>>,
        timeout: Duration,
    ) -> Result<Value, StoreError> {
        let inner = &*self.inner;
        let invocation = self.invocation(script, bucket, args);
        if let Conn::Cluster(_) = inner.conn {
            // The Cluster connection's own response timeout is long; bound this request alone.
            return within(timeout, inner.conn.invoke(&invocation)).await;
        }
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(inner.config.connect_timeout))
            .set_response_timeout(Some(timeout));
        let connect = inner.client.get_multiplexed_async_connection_with_config(&config);
        let mut conn = tokio::time::timeout(inner.config.operation_timeout, connect)
            .await
            .map_err(|e| StoreError::Unavailable(Box::new(e)))?
            .map_err(redis_error)?;
        within(timeout, invocation.invoke_async::<Value>(&mut conn)).await
    }
}

/// `request`'s reply, or [`StoreError::Unavailable`] after `timeout`.
async fn within(
    timeout: Duration,
    request: impl std::future::Future<Output = Result<Value, RedisError>>,
) -> Result<Value, StoreError> {
    match tokio::time::timeout(timeout, request).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(redis_error(e)),
        Err(elapsed) => Err(StoreError::Unavailable(Box::new(elapsed))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_script_carries_the_prelude_it_uses_and_no_more() {
        let text = with_prelude("local h = get(ARGV[3])\nreturn rec(h)");
        for needed in ["local S, I", "local CH =", "local function get(", "local F =", "local function rec("] {
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
            ["local function deny(", "local function merge(", "local function drop_refresh(", "local function prune("]
        {
            assert!(text.contains(needed), "{needed}");
        }
        // In the prelude's order, so that every local is defined before the code that uses it.
        assert!(text.find("local function merge(") < text.find("local function deny("));
    }

    /// Every script's text, prelude included.
    fn every_script() -> Vec<String> {
        BODIES.into_iter().map(with_prelude).collect()
    }

    /// The calls in `text` whose key is not one of the declared keys (`redis.call('COMMAND',
    /// KEY, …)`, KEY one of the names the prelude binds to `KEYS`; the one command without a
    /// key, PUBLISH, names the channel), and whether it calls Redis any other way.
    fn undeclared(text: &str) -> Vec<String> {
        let names: Vec<String> = KEY_NAMES.iter().map(|n| n.to_uppercase()).collect();
        let mut bad: Vec<String> = text
            .split("redis.call(")
            .skip(1)
            .filter_map(|call| {
                let mut args = call.splitn(3, [',', ')']);
                let command = args.next().unwrap_or_default().trim().trim_matches('\'');
                let key = args.next().unwrap_or_default().trim();
                let declared = if command == "PUBLISH" { key == "CH" } else { names.iter().any(|n| n == key) };
                (!declared).then(|| format!("redis.call('{command}', {key}"))
            })
            .collect();
        if text.contains("redis.pcall") {
            bad.push("redis.pcall".to_owned());
        }
        bad
    }

    #[test]
    fn every_key_a_script_touches_is_declared() {
        // The prelude binds the declared keys, in KEY_NAMES order, to one upper-case name each.
        let binding = format!(
            "local {} = {}",
            KEY_NAMES.iter().map(|n| n.to_uppercase()).collect::<Vec<_>>().join(", "),
            (1..=KEY_NAMES.len()).map(|i| format!("KEYS[{i}]")).collect::<Vec<_>>().join(", ")
        );
        assert!(PRELUDE.lines().any(|l| l == binding), "{binding}");
        assert_eq!(PRELUDE.matches("KEYS[").count(), KEY_NAMES.len(), "KEYS is read only there");
        for text in every_script() {
            assert!(text.contains("redis.call("));
            assert_eq!(undeclared(&text), Vec::<String>::new());
        }
        // A key built at run time, or any other, is caught.
        assert_eq!(undeclared("redis.call('GET', B .. 'x:' .. id)"), ["redis.call('GET', B .. 'x:' .. id"]);
        assert_eq!(undeclared("redis.call('HGET', KEYS[1], f)"), ["redis.call('HGET', KEYS[1]"]);
        assert_eq!(undeclared("redis.call('PUBLISH', S, m)"), ["redis.call('PUBLISH', S"]);
        assert_eq!(undeclared("redis.pcall('GET', S)"), ["redis.pcall"]);
    }

    #[test]
    fn a_bucket_names_its_keys() {
        let b = Bucket::new("app", 7);
        assert_eq!(b.base, "app:{b7}:");
        assert_eq!((b.sessions(), b.revocations(), b.denylist()), ("app:{b7}:s", "app:{b7}:v", "app:{b7}:d"));
        assert_eq!(b.keys.iter().map(|k| &k[b.base.len()..]).collect::<Vec<_>>(), KEY_NAMES);
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
