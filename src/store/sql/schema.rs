//! The two dialects, their embedded migrations, and the pool that [`SqlStore`](super::SqlStore)
//! opens.
//!
//! The store talks to both databases through sqlx's `Any` driver rather than being generic
//! over `sqlx::Database`: every statement but a handful is the same text in both dialects
//! (`$n` placeholders, `ON CONFLICT`, `RETURNING`, `CASE` instead of `GREATEST`/`MAX`), and
//! `Any` lets one implementation run them without the trait bounds a generic store would carry
//! on every function. The few differences are [`Dialect`]'s methods: how a write transaction
//! begins, how a user is locked, and how the sweeper skips rows another transaction holds.

use std::time::Duration;

use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;

use super::config::{SqlConfig, SqlConnectError};

/// Which database the store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dialect {
    /// PostgreSQL: row locks on `sk_users` serialise each user's writers.
    #[cfg(feature = "postgres")]
    Postgres,
    /// SQLite: `BEGIN IMMEDIATE` serialises every writer of the database.
    #[cfg(feature = "sqlite")]
    Sqlite,
}

impl Dialect {
    pub(super) fn of(url: &str) -> Result<Self, SqlConnectError> {
        #[cfg(feature = "postgres")]
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Self::Postgres);
        }
        #[cfg(feature = "sqlite")]
        if url.starts_with("sqlite:") {
            return Ok(Self::Sqlite);
        }
        Err(SqlConnectError::Url(crate::store::url::redact_url(url)))
    }
}

/// Opens the pool and brings the schema up to date.
pub(super) async fn open(config: &SqlConfig, dialect: Dialect) -> Result<AnyPool, SqlConnectError> {
    // Installs the drivers this build has; if the application installed its own set first,
    // that set is kept (and must include ours, or connecting fails with an error, not a panic).
    let _ = sqlx::any::install_drivers(&[
        #[cfg(feature = "postgres")]
        sqlx::postgres::any::DRIVER,
        #[cfg(feature = "sqlite")]
        sqlx::sqlite::any::DRIVER,
    ]);
    let timeout = config.operation_timeout;
    let (url, max) = pool_target(config, dialect);
    let busy_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
    let options = AnyPoolOptions::new()
        .max_connections(max)
        .min_connections(0)
        .acquire_timeout(timeout)
        // An in-memory SQLite database lives as long as its one connection.
        .idle_timeout(if config.url == "sqlite::memory:" { None } else { Some(Duration::from_secs(600)) })
        .max_lifetime(if config.url == "sqlite::memory:" { None } else { Some(Duration::from_secs(1800)) })
        .after_connect(move |conn, _| {
            Box::pin(async move {
                #[cfg(feature = "sqlite")]
                if dialect == Dialect::Sqlite {
                    // Writers wait for each other's BEGIN IMMEDIATE at most the operation timeout.
                    sqlx::Executor::execute(&mut *conn, format!("PRAGMA busy_timeout = {busy_ms}").as_str()).await?;
                }
                let _ = (&conn, busy_ms);
                Ok(())
            })
        });
    let pool = tokio::time::timeout(timeout, options.connect(&url))
        .await
        .map_err(|e| SqlConnectError::Connect(Box::new(e)))?
        .map_err(|e| SqlConnectError::Connect(Box::new(e)))?;
    match dialect {
        #[cfg(feature = "postgres")]
        Dialect::Postgres => {
            sqlx::migrate!("migrations/postgres").run(&pool).await.map_err(SqlConnectError::Migrate)?
        }
        #[cfg(feature = "sqlite")]
        Dialect::Sqlite => {
            if config.url != "sqlite::memory:" {
                // WAL: readers (validations) never wait for the writer. Persistent in the file.
                sqlx::Executor::execute(&pool, "PRAGMA journal_mode = WAL")
                    .await
                    .map_err(|e| SqlConnectError::Connect(Box::new(e)))?;
            }
            sqlx::migrate!("migrations/sqlite").run(&pool).await.map_err(SqlConnectError::Migrate)?;
        }
    }
    Ok(pool)
}

/// The URL the pool connects to and its size: a SQLite file is created if missing, and an
/// in-memory SQLite database gets one connection (each connection would be a database of its
/// own).
fn pool_target(config: &SqlConfig, dialect: Dialect) -> (String, u32) {
    match dialect {
        #[cfg(feature = "postgres")]
        Dialect::Postgres => (config.url.clone(), config.max_connections),
        #[cfg(feature = "sqlite")]
        Dialect::Sqlite => {
            if config.url == "sqlite::memory:" {
                (config.url.clone(), 1)
            } else if config.url.contains("mode=") {
                (config.url.clone(), config.max_connections)
            } else {
                let sep = if config.url.contains('?') { '&' } else { '?' };
                (format!("{}{sep}mode=rwc", config.url), config.max_connections)
            }
        }
    }
}
