//! The access-token denylist in [`DenylistMode::Subscribed`]: the local copy, and on PostgreSQL
//! the task that keeps it current through `LISTEN`/`NOTIFY`.

#[cfg(feature = "postgres")]
use crate::clock::Timestamp;
#[cfg(feature = "postgres")]
use crate::session::SessionId;

/// The channel revocations are announced on (PostgreSQL), with payload `id|reason|until`.
#[cfg(feature = "postgres")]
pub(super) const CHANNEL: &str = "sessionkit_denylist";

pub(super) use crate::store::local_denylist::LocalDenylist;

/// Applies a notification payload `id|reason|until` (nanoseconds) to `local`; false if it is
/// not one.
#[cfg(feature = "postgres")]
fn apply(local: &LocalDenylist, payload: &str) -> bool {
    let mut parts = payload.split('|');
    let (Some(id), Some(why), Some(until), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let (Ok(id), Ok(why), Ok(until)) = (id.parse::<SessionId>(), super::codec::reason(why), until.parse::<i64>())
    else {
        return false;
    };
    local.add(id, why, Timestamp::from_unix_nanos(until));
    true
}

/// Keeps `local` current on PostgreSQL: `LISTEN`, read the whole table back on the same
/// connection (so nothing committed in between is missed), mark synced, apply notifications.
/// Every half `check` it sends itself a heartbeat through `pool`; if a heartbeat has not come
/// back by the next half, or the connection drops, the copy is marked unsynced (every
/// `access_denied` then fails closed) and the cycle starts again.
#[cfg(feature = "postgres")]
pub(super) async fn listen_loop(
    url: String,
    pool: sqlx::AnyPool,
    local: std::sync::Arc<LocalDenylist>,
    check: std::time::Duration,
) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    use sqlx::Row;
    use sqlx::postgres::PgListener;

    let heartbeats = Arc::new(AtomicU64::new(0));
    loop {
        local.synced.store(false, Ordering::Release);
        let attempt = async {
            let mut listener = PgListener::connect(&url).await?;
            listener.listen(CHANNEL).await?;
            let rows =
                sqlx::query("SELECT session_id, reason, until_at FROM sk_denied").fetch_all(&mut listener).await?;
            local.entries.clear();
            for row in &rows {
                let id: String = row.try_get(0)?;
                let why: String = row.try_get(1)?;
                let until: i64 = row.try_get(2)?;
                apply(&local, &format!("{id}|{why}|{until}"));
            }
            Ok::<_, sqlx::Error>(listener)
        };
        let Ok(Ok(mut listener)) = tokio::time::timeout(check.max(Duration::from_secs(1)), attempt).await else {
            tokio::time::sleep(check.min(Duration::from_millis(200))).await;
            continue;
        };
        local.synced.store(true, Ordering::Release);
        let reader = async {
            // Ends when the connection is lost (None) or fails.
            while let Ok(Some(n)) = listener.try_recv().await {
                if n.payload() == "heartbeat" {
                    heartbeats.fetch_add(1, Ordering::AcqRel);
                } else {
                    apply(&local, n.payload());
                }
            }
        };
        // A heartbeat every half check, which must have come back by the next: a connection
        // gone silent (dead without closing) is noticed within one check.
        let half = check / 2;
        let watchdog = async {
            loop {
                let started = tokio::time::Instant::now();
                let before = heartbeats.load(Ordering::Acquire);
                let sent = tokio::time::timeout(
                    half,
                    sqlx::query("SELECT pg_notify($1, 'heartbeat')").bind(CHANNEL).execute(&pool),
                )
                .await;
                tokio::time::sleep_until(started + half).await;
                if !matches!(sent, Ok(Ok(_))) || heartbeats.load(Ordering::Acquire) == before {
                    return;
                }
            }
        };
        tokio::select! {
            () = reader => {}
            () = watchdog => {}
        }
        // The listener (and anything half-read on it) is dropped: the next cycle starts afresh.
    }
}
