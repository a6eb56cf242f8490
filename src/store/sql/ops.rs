//! The steps the operations share, each run inside the caller's transaction: locking a user,
//! removing a session (with its tombstones and denylist entry), answering for a digest that
//! names no session, and renewing a record as `touch` does.

use sqlx::Row;
use sqlx::any::Any;

use std::sync::LazyLock;

use super::codec::{COLS, deny_columns, json, nanos, reason, record, sql_error};
use super::schema::Dialect;
use crate::clock::Timestamp;
use crate::error::{RevocationReason, StoreError};
use crate::expiry;
use crate::session::{SessionRecord, UserId};
use crate::store::{DenyEntry, DenyScope, Revocation, TouchPolicy};
use crate::token::TokenDigest;

/// A transaction on the store's pool.
pub(super) type Tx = sqlx::Transaction<'static, Any>;

/// Serialises this user's writers until the transaction ends. PostgreSQL: the user's row in
/// `sk_users`, created on first use and locked `FOR UPDATE` (two statements). SQLite: nothing
/// to do, the transaction began with `BEGIN IMMEDIATE`, which excludes every other writer.
pub(super) async fn lock_user(tx: &mut Tx, dialect: Dialect, user: &UserId) -> Result<(), StoreError> {
    match dialect {
        #[cfg(feature = "postgres")]
        Dialect::Postgres => {
            sqlx::query("INSERT INTO sk_users (user_id) VALUES ($1) ON CONFLICT DO NOTHING")
                .bind(user.as_str())
                .execute(&mut **tx)
                .await
                .map_err(sql_error)?;
            sqlx::query("SELECT user_id FROM sk_users WHERE user_id = $1 FOR UPDATE")
                .bind(user.as_str())
                .fetch_optional(&mut **tx)
                .await
                .map_err(sql_error)?;
            Ok(())
        }
        #[cfg(feature = "sqlite")]
        Dialect::Sqlite => {
            let _ = (tx, user);
            Ok(())
        }
    }
}

/// The session whose column `key` (`digest` or `id`) is `value`, read inside `tx` after
/// locking its user: `None` if there is none (or it went away while the lock was awaited).
pub(super) async fn locked_session(
    tx: &mut Tx,
    dialect: Dialect,
    key: &str,
    value: &str,
) -> Result<Option<SessionRecord>, StoreError> {
    let user: Option<String> = sqlx::query_scalar(&format!("SELECT user_id FROM sk_sessions WHERE {key} = $1"))
        .bind(value)
        .fetch_optional(&mut **tx)
        .await
        .map_err(sql_error)?;
    let Some(user) = user else { return Ok(None) };
    let user = UserId::new(user).map_err(|_| super::codec::corrupt("user id"))?;
    lock_user(tx, dialect, &user).await?;
    let row = sqlx::query(&format!("SELECT {COLS} FROM sk_sessions WHERE {key} = $1"))
        .bind(value)
        .fetch_optional(&mut **tx)
        .await
        .map_err(sql_error)?;
    row.map(|r| record(&r).map(|(_, rec)| rec)).transpose()
}

/// A remembered revocation of `digest` that still holds at `now`.
pub(super) async fn gone<'e, E>(
    exec: E,
    digest: &TokenDigest,
    now: Timestamp,
) -> Result<Option<RevocationReason>, StoreError>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    let row = sqlx::query("SELECT reason, until_at FROM sk_revoked WHERE digest = $1")
        .bind(digest.to_base64())
        .fetch_optional(exec)
        .await
        .map_err(sql_error)?;
    let Some(row) = row else { return Ok(None) };
    let until: i64 = row.try_get(1).map_err(sql_error)?;
    if nanos(now) < until { Ok(Some(reason(&row.try_get::<String, _>(0).map_err(sql_error)?)?)) } else { Ok(None) }
}

/// Merges `entry` into session `id`'s denylist row as [`DenyEntry::merge`] does (a row whose
/// time has passed counts as none), in one statement, and on PostgreSQL announces the merged
/// entry to every listening instance (delivered at commit). Nothing if `entry` has expired.
pub(super) async fn deny(
    tx: &mut Tx,
    dialect: Dialect,
    id: &str,
    entry: DenyEntry,
    now: Timestamp,
) -> Result<(), StoreError> {
    if entry.until <= now {
        return Ok(());
    }
    let (why, below) = deny_columns(&entry);
    let row = sqlx::query(&DENY)
        .bind(id)
        .bind(why)
        .bind(below)
        .bind(nanos(entry.until))
        .bind(nanos(now))
        .fetch_one(&mut **tx)
        .await
        .map_err(sql_error)?;
    #[cfg(feature = "postgres")]
    if dialect == Dialect::Postgres {
        let merged = super::codec::deny_entry(
            row.try_get::<Option<String>, _>(0).map_err(sql_error)?.as_deref(),
            row.try_get(1).map_err(sql_error)?,
            row.try_get(2).map_err(sql_error)?,
        )?;
        // Delivered to every listening instance when the transaction commits.
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(super::denylist::CHANNEL)
            .bind(super::denylist::payload(id, &merged))
            .execute(&mut **tx)
            .await
            .map_err(sql_error)?;
    }
    let _ = (dialect, row);
    Ok(())
}

/// The denylist upsert: `$1` session id, `$2` reason and `$3` below_generation (one of them
/// null), `$4` until, `$5` now. Merged as [`DenyEntry::merge`]: a revocation outweighs a
/// rotation's entry, two rotations keep the higher generation, two revocations the reason of
/// the later `until`, and the later `until` is kept. An existing row whose `until` has passed
/// (not swept yet) is replaced. Answers the merged row.
static DENY: LazyLock<String> = LazyLock::new(|| {
    let stale = "sk_denied.until_at <= $5";
    format!(
        "INSERT INTO sk_denied (session_id, reason, below_generation, until_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (session_id) DO UPDATE SET \
         reason = CASE WHEN {stale} OR sk_denied.reason IS NULL THEN excluded.reason \
         WHEN excluded.reason IS NULL THEN sk_denied.reason \
         WHEN excluded.until_at > sk_denied.until_at THEN excluded.reason ELSE sk_denied.reason END, \
         below_generation = CASE WHEN {stale} THEN excluded.below_generation \
         WHEN sk_denied.reason IS NOT NULL OR excluded.reason IS NOT NULL THEN NULL \
         WHEN excluded.below_generation > sk_denied.below_generation THEN excluded.below_generation \
         ELSE sk_denied.below_generation END, \
         until_at = CASE WHEN {stale} OR excluded.until_at > sk_denied.until_at THEN excluded.until_at \
         ELSE sk_denied.until_at END \
         RETURNING reason, below_generation, until_at"
    )
});

/// Remembers `digest` as revoked for `reason` until `until` (replacing what was remembered).
pub(super) async fn remember(
    tx: &mut Tx,
    digest: &str,
    reason: RevocationReason,
    until: Timestamp,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO sk_revoked (digest, reason, until_at) VALUES ($1, $2, $3) ON CONFLICT (digest) \
         DO UPDATE SET reason = excluded.reason, until_at = excluded.until_at",
    )
    .bind(digest)
    .bind(reason.as_str())
    .bind(nanos(until))
    .execute(&mut **tx)
    .await
    .map_err(sql_error)?;
    Ok(())
}

/// Removes session `r` with its refresh tokens. With a revocation, first remembers its token,
/// its current refresh token and the one spent last as revoked until its absolute deadline, and
/// denylists its access tokens.
pub(super) async fn drop_session(
    tx: &mut Tx,
    dialect: Dialect,
    r: &SessionRecord,
    revocation: Option<&Revocation>,
) -> Result<(), StoreError> {
    let id = r.id.to_string();
    if let Some(rv) = revocation {
        if r.absolute_deadline > rv.at {
            // The current refresh token has the highest n, the one spent last the next.
            let refresh: Vec<String> =
                sqlx::query_scalar("SELECT digest FROM sk_refresh WHERE session_id = $1 ORDER BY n DESC LIMIT 2")
                    .bind(&id)
                    .fetch_all(&mut **tx)
                    .await
                    .map_err(sql_error)?;
            remember(tx, &r.digest.to_base64(), rv.reason, r.absolute_deadline).await?;
            for d in &refresh {
                remember(tx, d, rv.reason, r.absolute_deadline).await?;
            }
        }
        if let Some(until) = rv.deny_access_until {
            deny(tx, dialect, &id, DenyEntry { scope: DenyScope::All(rv.reason), until }, rv.at).await?;
        }
    }
    // The session row first: a sweep that holds it (and deletes its refresh rows next) is
    // waited for before any refresh row is locked here, so the two never deadlock.
    sqlx::query("DELETE FROM sk_sessions WHERE id = $1").bind(&id).execute(&mut **tx).await.map_err(sql_error)?;
    sqlx::query("DELETE FROM sk_refresh WHERE session_id = $1")
        .bind(&id)
        .execute(&mut **tx)
        .await
        .map_err(sql_error)?;
    Ok(())
}

/// `r` renewed at `now` as [`SessionStore::touch`](crate::store::SessionStore::touch) does
/// (counted, and renewed if due), and whether anything changed.
pub(super) fn renewed(mut r: SessionRecord, now: Timestamp, policy: &TouchPolicy) -> SessionRecord {
    if policy.count_request {
        r.request_count = r.request_count.saturating_add(1);
    }
    if expiry::touch_due(now, r.last_seen_at, policy.interval) {
        r.idle_deadline = expiry::renewed_idle_deadline(
            now,
            policy.idle_timeout_for(r.remember_me),
            r.idle_deadline,
            r.absolute_deadline,
        );
        r.last_seen_at = now;
    }
    r
}

/// Writes a renewal computed by [`renewed`].
pub(super) async fn write_renewal(tx: &mut Tx, r: &SessionRecord) -> Result<(), StoreError> {
    sqlx::query("UPDATE sk_sessions SET request_count = $2, last_seen_at = $3, idle_deadline = $4 WHERE id = $1")
        .bind(r.id.to_string())
        .bind(i64::try_from(r.request_count).unwrap_or(i64::MAX))
        .bind(nanos(r.last_seen_at))
        .bind(nanos(r.idle_deadline))
        .execute(&mut **tx)
        .await
        .map_err(sql_error)?;
    Ok(())
}

/// Writes `r` as a new row of `sk_sessions` (a login, or a restored session).
pub(super) async fn insert_session(tx: &mut Tx, r: &SessionRecord) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO sk_sessions (id, digest, user_id, created_at, last_seen_at, idle_deadline, \
         absolute_deadline, remember_me, request_count, metadata, data, generation) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(r.id.to_string())
    .bind(r.digest.to_base64())
    .bind(r.user.as_str())
    .bind(nanos(r.created_at))
    .bind(nanos(r.last_seen_at))
    .bind(nanos(r.idle_deadline))
    .bind(nanos(r.absolute_deadline))
    .bind(i64::from(r.remember_me))
    .bind(i64::try_from(r.request_count).unwrap_or(i64::MAX))
    .bind(json(&r.metadata)?)
    .bind(json(&r.data)?)
    .bind(i64::try_from(r.generation).unwrap_or(i64::MAX))
    .execute(&mut **tx)
    .await
    .map_err(sql_error)?;
    Ok(())
}
