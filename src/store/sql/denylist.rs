//! The access-token denylist in [`DenylistMode::Subscribed`]: the local copy, and on PostgreSQL
//! the task that keeps it current through `LISTEN`/`NOTIFY`.

#[cfg(feature = "postgres")]
use crate::clock::Timestamp;
#[cfg(feature = "postgres")]
use crate::session::SessionId;
#[cfg(feature = "postgres")]
use crate::store::{DenyEntry, DenyScope};

/// The channel denylist entries are announced on (PostgreSQL), with the payloads of
/// [`payload`].
#[cfg(feature = "postgres")]
pub(super) const CHANNEL: &str = "sessionkit_denylist";

pub(super) use crate::store::local_denylist::LocalDenylist;

/// The notification payload of session `id`'s denylist entry: `id|reason|until` for a
/// revocation ([`DenyScope::All`]), `id|below:G|until` for a rotation's entry
/// ([`DenyScope::Below`] generation `G`, decimal); `until` in Unix nanoseconds.
#[cfg(feature = "postgres")]
pub(super) fn payload(id: &str, entry: &DenyEntry) -> String {
    format!("{id}|{}|{}", entry.scope.to_text(), entry.until.unix_nanos())
}

/// The entry a [`payload`] carries, or `None` if `payload` is not exactly one (an unknown
/// reason, a generation not in canonical decimal, a missing or extra field).
#[cfg(feature = "postgres")]
fn parse(payload: &str) -> Option<(SessionId, DenyEntry)> {
    let mut parts = payload.split('|');
    let (Some(id), Some(scope), Some(until), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return None;
    };
    let id = id.parse::<SessionId>().ok()?;
    let scope = DenyScope::from_text(scope)?;
    let until = Timestamp::from_unix_nanos(until.parse::<i64>().ok()?);
    Some((id, DenyEntry { scope, until }))
}

/// Applies a notification payload ([`payload`]) to `local`, merged with what it holds; false
/// (and nothing changed) if it is not one.
#[cfg(feature = "postgres")]
fn apply(local: &LocalDenylist, payload: &str) -> bool {
    let Some((id, entry)) = parse(payload) else { return false };
    local.add(id, entry);
    true
}

/// The columns of `sk_denied` that [`add_row`] reads, in its order.
pub(super) const SELECT_ALL: &str = "SELECT session_id, reason, below_generation, until_at FROM sk_denied";

/// Adds a row of `sk_denied` ([`SELECT_ALL`]) to `local`, merged with what it holds; a row
/// that is not a valid entry is skipped.
pub(super) fn add_row(local: &LocalDenylist, id: &str, reason: Option<&str>, below: Option<i64>, until: i64) {
    if let (Ok(id), Ok(entry)) = (id.parse(), super::codec::deny_entry(reason, below, until)) {
        local.add(id, entry);
    }
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
            let rows = sqlx::query(SELECT_ALL).fetch_all(&mut listener).await?;
            local.entries.clear();
            for row in &rows {
                let id: String = row.try_get(0)?;
                let why: Option<String> = row.try_get(1)?;
                let below: Option<i64> = row.try_get(2)?;
                let until: i64 = row.try_get(3)?;
                add_row(&local, &id, why.as_deref(), below, until);
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

#[cfg(all(test, feature = "postgres"))]
mod tests {
    use super::*;
    use crate::error::RevocationReason;

    #[test]
    fn payloads_round_trip_and_anything_else_is_ignored() {
        let id = SessionId::from_bytes([9; 16]);
        let until = Timestamp::from_unix_nanos(1_700_000_000_000_000_000);
        for scope in [DenyScope::All(RevocationReason::Logout), DenyScope::Below(0), DenyScope::Below(u64::MAX)] {
            let entry = DenyEntry { scope, until };
            assert_eq!(parse(&payload(&id.to_string(), &entry)), Some((id, entry)));
        }
        assert_eq!(
            payload(&id.to_string(), &DenyEntry { scope: DenyScope::Below(7), until }),
            format!("{id}|below:7|1700000000000000000")
        );
        assert_eq!(
            payload(&id.to_string(), &DenyEntry { scope: DenyScope::All(RevocationReason::Admin), until }),
            format!("{id}|admin|1700000000000000000"),
            "revocations keep the format of earlier versions"
        );
        for bad in [
            String::new(),
            "heartbeat".to_owned(),
            format!("{id}|logout"),
            format!("{id}|logout|1|2"),
            format!("{id}|stolen|1"),
            format!("{id}|below:|1"),
            format!("{id}|below:+1|1"),
            format!("{id}|below:-1|1"),
            format!("{id}|below: 1|1"),
            format!("{id}|below:1x|1"),
            format!("{id}|below:01|1"),
            format!("{id}|below:18446744073709551616|1"),
            format!("{id}|Below:1|1"),
            format!("{id}|below|1"),
            format!("{id}|below:1|soon"),
            "not-an-id|below:1|1".to_owned(),
        ] {
            assert_eq!(parse(&bad), None, "{bad:?}");
            let local = LocalDenylist::new(true);
            assert!(!apply(&local, &bad));
            assert!(local.entries.is_empty());
        }
    }
}
