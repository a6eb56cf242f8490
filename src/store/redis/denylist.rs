//! The access-token denylist: [`DenylistMode`], and in subscribed mode the local copy
//! (`LocalDenylist`) and the task that keeps it current from the pub/sub channel.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::StreamExt as _;
use redis::{Client, Value};

use crate::error::StoreError;
use crate::session::SessionId;

use super::codec::deny_entry;
use super::conn::Conn;
use super::{query, redis_error};

/// How [`RedisStore`](super::RedisStore) answers
/// [`TokenStore::access_denied`](crate::store::TokenStore::access_denied).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum DenylistMode {
    /// A local copy kept current through Redis pub/sub: no round trip per verification. While
    /// the subscription is down the store refuses every access token until it has resynchronised.
    #[default]
    Subscribed,
    /// One Redis round trip per verification: a revocation anywhere is seen at once.
    Strict,
}

pub(super) use crate::store::local_denylist::LocalDenylist;

pub(super) struct SubscriberSettings {
    /// Every bucket's denylist key.
    pub(super) deny_keys: Vec<String>,
    pub(super) channel: String,
    /// The longest the subscription may go unconfirmed by a `PING`.
    pub(super) check: Duration,
    pub(super) timeout: Duration,
}

/// Keeps `local` current: subscribe, read the whole denylist back, then apply messages; on any
/// failure mark it unsynced (so verifications fail closed) and start over.
pub(super) async fn subscribe_loop(
    clients: Vec<Client>,
    conn: Conn,
    local: Arc<LocalDenylist>,
    settings: SubscriberSettings,
    ready: tokio::sync::oneshot::Sender<()>,
) {
    let mut ready = Some(ready);
    let mut backoff = Duration::from_millis(50);
    // On a Cluster any node hears every message published: a lost node is replaced by the
    // next seed.
    for client in clients.iter().cycle() {
        local.synced.store(false, Ordering::Release);
        let outcome = subscribed_session(client, &conn, &local, &settings, &mut ready).await;
        local.synced.store(false, Ordering::Release);
        match outcome {
            // The subscription ran and then dropped: reconnect at once.
            Ok(()) => backoff = Duration::from_millis(50),
            Err(e) => {
                #[cfg(feature = "tracing")]
                tracing::warn!(target: "sessionkit::redis", error = %e, "denylist subscription failed; retrying");
                #[cfg(not(feature = "tracing"))]
                let _ = e;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}

async fn subscribed_session(
    client: &Client,
    conn: &Conn,
    local: &LocalDenylist,
    s: &SubscriberSettings,
    ready: &mut Option<tokio::sync::oneshot::Sender<()>>,
) -> Result<(), StoreError> {
    let pubsub = tokio::time::timeout(s.timeout, client.get_async_pubsub())
        .await
        .map_err(|e| StoreError::Unavailable(Box::new(e)))?
        .map_err(redis_error)?;
    let (mut sink, mut stream) = pubsub.split();
    tokio::time::timeout(s.timeout, sink.subscribe(&s.channel))
        .await
        .map_err(|e| StoreError::Unavailable(Box::new(e)))?
        .map_err(redis_error)?;
    // Subscribed first, then read back: nothing published in between is missed.
    resync(conn, local, s).await?;
    local.synced.store(true, Ordering::Release);
    if let Some(tx) = ready.take() {
        let _ = tx.send(());
    }
    // A PING every half check, answered within the other half: a subscription gone silent
    // (its connection dead without closing) is noticed within one check.
    let half = s.check / 2;
    let mut tick = tokio::time::interval(half);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            msg = stream.next() => {
                let Some(msg) = msg else { return Ok(()) };
                if let Ok(payload) = msg.get_payload::<String>() {
                    apply_message(local, &payload);
                }
            }
            _ = tick.tick() => {
                local.prune();
                match tokio::time::timeout(half, sink.ping::<Value>()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return Err(redis_error(e)),
                    Err(e) => return Err(StoreError::Unavailable(Box::new(e))),
                }
            }
        }
    }
}

/// Applies a message `<session id>|<scope>|<until>` (a denylist key's value prefixed with its
/// session id): the scope is a revocation reason or `below:<generation>`. Anything else is
/// ignored (a format of a later version).
fn apply_message(local: &LocalDenylist, payload: &str) {
    let Some((id, entry)) = payload.split_once('|') else { return };
    if let (Ok(id), Ok(entry)) = (id.parse::<SessionId>(), deny_entry(entry)) {
        local.add(id, entry);
    }
}

/// Reads every denylist entry from Redis into `local`: each bucket's `d` hash, all at once
/// (the requests share the connection, and on a Cluster each goes to its bucket's master).
async fn resync(conn: &Conn, local: &LocalDenylist, s: &SubscriberSettings) -> Result<(), StoreError> {
    let reads = s.deny_keys.iter().map(|key| {
        let mut all = redis::cmd("HGETALL");
        all.arg(key);
        query::<Vec<(String, String)>>(conn, all, s.timeout)
    });
    for entries in futures_util::future::try_join_all(reads).await? {
        // The bucket's placeholder, '' (see `next_seq` in prelude.lua), is no entry.
        for (id, value) in entries.into_iter().filter(|(id, _)| !id.is_empty()) {
            apply_message(local, &format!("{id}|{value}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::codec::ts;
    use super::*;
    use crate::clock::Timestamp;
    use crate::error::RevocationReason;
    use crate::store::{DenyEntry, DenyScope};

    #[test]
    fn denylist_messages_are_parsed_strictly() {
        let local = LocalDenylist::new(false);
        let id = SessionId::from_bytes([3; 16]);
        let t = Timestamp::from_unix_nanos(5);
        let until = String::from_utf8(ts(t)).unwrap();
        for bad in [
            String::new(),
            "x|logout|1".into(),
            format!("{id}|nonsense|{until}"),
            format!("{id}|logout|12"),
            format!("{id}|logout|{until}|x"),
            format!("x|below:1|{until}"),
            format!("{id}|below:|{until}"),
            format!("{id}|below:x|{until}"),
            format!("{id}|below:-1|{until}"),
            format!("{id}|below:+1|{until}"),
            format!("{id}|below:01|{until}"),
            format!("{id}|below:18446744073709551616|{until}"),
            format!("{id}|below 1|{until}"),
            format!("{id}|below:1|12"),
            format!("{id}|below:1"),
        ] {
            apply_message(&local, &bad);
        }
        assert!(local.entries.is_empty());
        apply_message(&local, &format!("{id}|below:4|{until}"));
        assert_eq!(local.entries.get(&id).map(|e| *e), Some(DenyEntry { scope: DenyScope::Below(4), until: t }));
        apply_message(&local, &format!("{id}|below:2|{until}"));
        assert_eq!(local.entries.get(&id).map(|e| e.scope), Some(DenyScope::Below(4)), "merged");
        apply_message(&local, &format!("{id}|logout_all|{until}"));
        assert_eq!(local.entries.get(&id).map(|e| e.scope), Some(DenyScope::All(RevocationReason::LogoutAll)));
    }
}
