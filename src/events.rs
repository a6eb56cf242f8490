//! Session events: an audit trail of what happened to each session, delivered to listeners
//! the application registers, and (feature `tracing`, on by default) logged as structured
//! `tracing` events.
//!
//! Delivery never holds up a request. Each listener gets its own bounded queue and its own
//! thread; when a listener falls behind and its queue is full, further events for it are
//! dropped and counted ([`SessionManager::dropped_events`](crate::SessionManager::dropped_events)),
//! and a listener that panics is caught and keeps receiving. Events carry ids, user, time, and
//! IP and user agent where known, never a token.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};

use parking_lot::RwLock;
use serde::Serialize;
use time::OffsetDateTime;

use crate::clock::Timestamp;
use crate::error::{ExpiryReason, RevocationReason};
use crate::session::{SessionId, SessionRecord, UserId};

/// Capacity of each listener's queue.
pub const LISTENER_QUEUE: usize = 4096;

/// Who noticed that a session expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ObservedBy {
    /// A use of the session's token: validation, refresh or a data update.
    Validation,
    /// The sweeper removing expired sessions.
    Sweeper,
}

/// What is known about the session and client behind an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventInfo {
    /// The session, when the event concerns one.
    pub session_id: Option<SessionId>,
    /// The user.
    pub user: Option<UserId>,
    /// When it happened.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// The client's IP address, where known.
    pub ip: Option<IpAddr>,
    /// The client's user agent, where known.
    pub user_agent: Option<Arc<str>>,
}

impl EventInfo {
    pub(crate) fn of(record: &SessionRecord, at: Timestamp) -> Self {
        Self {
            session_id: Some(record.id),
            user: Some(record.user.clone()),
            at: at.to_offset_date_time(),
            ip: record.metadata.ip(),
            user_agent: record.metadata.user_agent().cloned(),
        }
    }
}

/// Something that happened to a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum SessionEvent {
    /// A login created a session.
    Created {
        /// Session and client.
        #[serde(flatten)]
        info: EventInfo,
        /// Whether it has the remember-me lifetimes.
        remember_me: bool,
    },
    /// The session's token was replaced.
    Rotated {
        /// Session and client.
        #[serde(flatten)]
        info: EventInfo,
    },
    /// The session's idle deadline was pushed out explicitly.
    Extended {
        /// Session and client.
        #[serde(flatten)]
        info: EventInfo,
    },
    /// A refresh token was exchanged for a new pair.
    Refreshed {
        /// Session and client.
        #[serde(flatten)]
        info: EventInfo,
    },
    /// The session was found expired.
    Expired {
        /// Session and client.
        #[serde(flatten)]
        info: EventInfo,
        /// Which deadline passed.
        reason: ExpiryReason,
        /// Who noticed.
        observed_by: ObservedBy,
    },
    /// The session was ended.
    Revoked {
        /// Session and client.
        #[serde(flatten)]
        info: EventInfo,
        /// Why.
        reason: RevocationReason,
    },
    /// A login was refused because the user is at the session limit (reject policy).
    LoginRejected {
        /// The user and client; no session exists.
        #[serde(flatten)]
        info: EventInfo,
        /// The limit.
        limit: u32,
    },
    /// A spent refresh token was presented after the grace window; the session has been
    /// revoked. Usually a stolen token: alert on it.
    RefreshTokenReused {
        /// Session and client.
        #[serde(flatten)]
        info: EventInfo,
    },
}

impl SessionEvent {
    /// The session and client this event is about.
    #[must_use]
    pub fn info(&self) -> &EventInfo {
        match self {
            Self::Created { info, .. }
            | Self::Rotated { info }
            | Self::Extended { info }
            | Self::Refreshed { info }
            | Self::Expired { info, .. }
            | Self::Revoked { info, .. }
            | Self::LoginRejected { info, .. }
            | Self::RefreshTokenReused { info } => info,
        }
    }

    /// The event's name, as in its JSON `event` field (`"created"`, `"revoked"`, …).
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::Created { .. } => "created",
            Self::Rotated { .. } => "rotated",
            Self::Extended { .. } => "extended",
            Self::Refreshed { .. } => "refreshed",
            Self::Expired { .. } => "expired",
            Self::Revoked { .. } => "revoked",
            Self::LoginRejected { .. } => "login_rejected",
            Self::RefreshTokenReused { .. } => "refresh_token_reused",
        }
    }
}

/// Receives session events on its own thread. Implemented for every
/// `Fn(&SessionEvent) + Send + Sync + 'static`.
pub trait EventListener: Send + 'static {
    /// Called once per event, in order, on the listener's thread.
    fn on_event(&mut self, event: &SessionEvent);
}

impl<F: FnMut(&SessionEvent) + Send + 'static> EventListener for F {
    fn on_event(&mut self, event: &SessionEvent) {
        self(event);
    }
}

/// Counters of what happened since the manager started, kept whether or not anyone listens.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) created: AtomicU64,
    pub(crate) rotated: AtomicU64,
    pub(crate) refreshed: AtomicU64,
    pub(crate) expired: AtomicU64,
    pub(crate) revoked: AtomicU64,
    pub(crate) evicted: AtomicU64,
    pub(crate) login_rejected: AtomicU64,
    pub(crate) refresh_reuse: AtomicU64,
}

/// A copy of the counters, as part of [`SessionStats`](crate::stats::SessionStats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct CounterSnapshot {
    /// Sessions created.
    pub created: u64,
    /// Token rotations.
    pub rotated: u64,
    /// Refresh-token exchanges.
    pub refreshed: u64,
    /// Sessions found expired (by validation or the sweeper; one session may count twice if
    /// it is seen expired by a validation and then swept).
    pub expired: u64,
    /// Sessions revoked, evictions and reuse included.
    pub revoked: u64,
    /// Sessions evicted by the per-user limit (also counted in `revoked`).
    pub evicted: u64,
    /// Logins refused by the per-user limit.
    pub login_rejected: u64,
    /// Refresh-token reuses detected (also counted in `revoked`).
    pub refresh_reuse: u64,
}

impl Counters {
    fn count(&self, event: &SessionEvent) {
        let counter = match event {
            SessionEvent::Created { .. } => &self.created,
            SessionEvent::Rotated { .. } => &self.rotated,
            SessionEvent::Refreshed { .. } => &self.refreshed,
            SessionEvent::Expired { .. } => &self.expired,
            SessionEvent::Revoked { reason, .. } => {
                if *reason == RevocationReason::Evicted {
                    self.evicted.fetch_add(1, Ordering::Relaxed);
                }
                &self.revoked
            }
            SessionEvent::LoginRejected { .. } => &self.login_rejected,
            SessionEvent::RefreshTokenReused { .. } => &self.refresh_reuse,
            SessionEvent::Extended { .. } => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> CounterSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CounterSnapshot {
            created: get(&self.created),
            rotated: get(&self.rotated),
            refreshed: get(&self.refreshed),
            expired: get(&self.expired),
            revoked: get(&self.revoked),
            evicted: get(&self.evicted),
            login_rejected: get(&self.login_rejected),
            refresh_reuse: get(&self.refresh_reuse),
        }
    }
}

/// The manager's event hub: counters, tracing, and the listeners' queues.
#[derive(Default)]
pub(crate) struct Hub {
    pub(crate) counters: Counters,
    listeners: RwLock<Vec<SyncSender<SessionEvent>>>,
    dropped: Arc<AtomicU64>,
    panics: Arc<AtomicU64>,
}

impl Hub {
    pub(crate) fn subscribe(&self, mut listener: impl EventListener) -> std::io::Result<()> {
        let (tx, rx): (SyncSender<SessionEvent>, Receiver<SessionEvent>) =
            std::sync::mpsc::sync_channel(LISTENER_QUEUE);
        let panics = Arc::clone(&self.panics);
        std::thread::Builder::new().name("sessionkit-events".into()).spawn(move || {
            // Ends when every sender is gone, that is when the manager is dropped.
            while let Ok(event) = rx.recv() {
                let delivered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| listener.on_event(&event)));
                if delivered.is_err() {
                    panics.fetch_add(1, Ordering::Relaxed);
                }
            }
        })?;
        self.listeners.write().push(tx);
        Ok(())
    }

    pub(crate) fn emit(&self, event: SessionEvent) {
        self.counters.count(&event);
        #[cfg(feature = "tracing")]
        trace(&event);
        let listeners = self.listeners.read();
        for tx in listeners.iter() {
            match tx.try_send(event.clone()) {
                Ok(()) | Err(TrySendError::Disconnected(_)) => {}
                Err(TrySendError::Full(_)) => {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    pub(crate) fn listener_panics(&self) -> u64 {
        self.panics.load(Ordering::Relaxed)
    }
}

#[cfg(feature = "tracing")]
fn trace(event: &SessionEvent) {
    use tracing::{Level, event as ev};

    let info = event.info();
    let session_id = info.session_id.map(|id| id.to_string());
    let user = info.user.as_ref().map(UserId::as_str);
    let ip = info.ip.map(|ip| ip.to_string());
    let user_agent = info.user_agent.as_deref();
    let name = event.name();
    macro_rules! emit {
        ($level:expr, $($extra:tt)*) => {
            ev!(target: "sessionkit", $level, event = name, session_id, user, ip, user_agent, $($extra)*)
        };
    }
    match event {
        SessionEvent::Created { remember_me, .. } => emit!(Level::INFO, remember_me, "session created"),
        SessionEvent::Rotated { .. } => emit!(Level::INFO, "session token rotated"),
        SessionEvent::Extended { .. } => emit!(Level::DEBUG, "session extended"),
        SessionEvent::Refreshed { .. } => emit!(Level::DEBUG, "refresh token exchanged"),
        SessionEvent::Expired { reason, observed_by, .. } => {
            emit!(Level::DEBUG, reason = reason.as_str(), observed_by = ?observed_by, "session expired");
        }
        SessionEvent::Revoked { reason, .. } => emit!(Level::INFO, reason = reason.as_str(), "session revoked"),
        SessionEvent::LoginRejected { limit, .. } => emit!(Level::WARN, limit, "login rejected by the session limit"),
        SessionEvent::RefreshTokenReused { .. } => {
            emit!(Level::WARN, "refresh token reuse detected; session revoked");
        }
    }
}
