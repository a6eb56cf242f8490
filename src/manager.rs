//! [`SessionManager`]: the operations an application calls. Orchestration only: deadlines come
//! from [`crate::expiry`], eviction choices from [`crate::policy`], atomicity from the store.

use std::net::IpAddr;
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use serde_json::{Map, Value};

use crate::clock::{Clock, SystemClock};
use crate::config::SessionConfig;
use crate::error::{Error, ExpiryReason, RevocationReason, StoreError};
use crate::events::{EventInfo, EventListener, Hub, ObservedBy, SessionEvent};
use crate::expiry;
use crate::policy::Limit;
use crate::session::{
    DataPatch, Metadata, PatchOp, Session, SessionData, SessionId, SessionRecord, UserId, nests_deeper_than,
    truncate_to_boundary,
};
use crate::store::{
    AccessDenial, BackupStore, DataOutcome, InsertOutcome, Lookup, RefreshOutcome, Revocation, ScanCursor,
    SessionStore, Successor, TokenStore, TouchPolicy,
};
use crate::token::access::{self, AccessPolicy};
use crate::token::keys::KeySet;
use crate::token::{AccessClaims, AccessToken, RawToken, RefreshToken, Route, SessionToken, TokenDigest, refresh};

/// How many times a new token is drawn when the store reports a collision. A collision of
/// 256-bit random tokens does not happen by chance; a store that keeps answering `Conflict` is
/// broken, and its error is returned.
const CONFLICT_RETRIES: usize = 3;

/// How many expired sessions [`SessionManager::sweep_expired`] removes per store call.
pub const SWEEP_BATCH: usize = 1024;

/// Returns `Pending` once (waking itself at once), letting other tasks run.
struct YieldNow(bool);

impl std::future::Future for YieldNow {
    type Output = ();

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        if self.0 {
            std::task::Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    }
}

/// Creates, validates, renews and revokes sessions in a [`SessionStore`].
///
/// Cheap to clone (one reference count) and `Send + Sync`: build it once at startup and hand
/// clones to every request handler. Do not wrap it in `Arc<Mutex<_>>`.
///
/// `C` is the [`Clock`]; tests inject a `clock::MockClock` (feature
/// `test-util`) through [`with_clock`](Self::with_clock) to move time without sleeping.
pub struct SessionManager<S, C = SystemClock> {
    inner: Arc<Inner<S, C>>,
}

struct Inner<S, C> {
    store: S,
    clock: C,
    config: SessionConfig,
    touch: TouchPolicy,
    limit: Option<Limit>,
    access: AccessPolicy,
    /// How long after a revocation its session's access tokens must still be refused: the
    /// token lifetime plus the verification leeway.
    deny_for: std::time::Duration,
    keys: ArcSwapOption<KeySet>,
    verified: access::VerifiedCache,
    events: Hub,
}

/// A weak reference to a manager, which does not keep it alive.
#[cfg(feature = "tokio")]
pub(crate) struct WeakManager<S, C> {
    inner: std::sync::Weak<Inner<S, C>>,
}

#[cfg(feature = "tokio")]
impl<S, C> WeakManager<S, C> {
    pub(crate) fn upgrade(&self) -> Option<SessionManager<S, C>> {
        self.inner.upgrade().map(|inner| SessionManager { inner })
    }
}

#[cfg(feature = "tokio")]
impl<S, C> SessionManager<S, C> {
    pub(crate) fn downgrade(&self) -> WeakManager<S, C> {
        WeakManager { inner: Arc::downgrade(&self.inner) }
    }
}

impl<S, C> Clone for SessionManager<S, C> {
    fn clone(&self) -> Self {
        Self { inner: Arc::clone(&self.inner) }
    }
}

impl<S, C> std::fmt::Debug for SessionManager<S, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionManager").field("config", &self.inner.config).finish_non_exhaustive()
    }
}

/// What [`SessionManager::create`] needs to know about a login.
#[derive(Debug, Clone)]
#[must_use]
pub struct NewSession {
    user: UserId,
    remember_me: bool,
    ip: Option<IpAddr>,
    user_agent: Option<String>,
    data: Map<String, Value>,
}

impl NewSession {
    /// A login of `user`, without remember-me or metadata.
    pub fn new(user: UserId) -> Self {
        Self { user, remember_me: false, ip: None, user_agent: None, data: Map::new() }
    }

    /// Whether the session gets the remember-me lifetimes. Default `false`.
    pub fn remember_me(mut self, remember_me: bool) -> Self {
        self.remember_me = remember_me;
        self
    }

    /// The client's IP address, for session lists and audit.
    pub fn ip(mut self, ip: IpAddr) -> Self {
        self.ip = Some(ip);
        self
    }

    /// The client's `User-Agent`; truncated to
    /// [`SessionConfig::max_user_agent_len`] bytes.
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = Some(user_agent.into());
        self
    }

    /// Initial application data.
    pub fn data(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.data.insert(key.into(), value.into());
        self
    }
}

/// A session just created: the token to hand to the client, and the session.
#[derive(Debug)]
#[non_exhaustive]
pub struct Created {
    /// The secret to send to the client (cookie or response body). Shown only this once.
    pub token: SessionToken,
    /// The new session.
    pub session: Session,
    /// Sessions of the same user ended to make room under the per-user limit.
    pub evicted: Vec<SessionId>,
    /// An access token and a refresh token bound to the session, when the manager has signing
    /// keys ([`SessionManager::set_keys`]).
    pub tokens: Option<TokenPair>,
}

/// A short-lived access token and the refresh token that renews it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenPair {
    /// The signed access token (a JWT) for `Authorization: Bearer`.
    pub access_token: AccessToken,
    /// The single-use refresh token for [`SessionManager::refresh`].
    pub refresh_token: RefreshToken,
    /// The access token's claims.
    pub claims: AccessClaims,
}

impl TokenPair {
    /// Seconds from `now` until the access token expires, for an OAuth-style `expires_in`.
    #[must_use]
    pub fn expires_in(&self, now: crate::clock::Timestamp) -> u64 {
        self.claims.expires_in(now)
    }
}

/// A session whose token was just replaced.
#[derive(Debug)]
#[non_exhaustive]
pub struct Rotated {
    /// The new secret; the old one no longer works.
    pub token: SessionToken,
    /// The session, unchanged but for its token.
    pub session: Session,
    /// When the manager has signing keys: a new access token and a new refresh token. The
    /// session's earlier refresh tokens stopped working with the rotation.
    pub tokens: Option<TokenPair>,
}

impl<S: SessionStore> SessionManager<S, SystemClock> {
    /// A manager over `store`, with the system clock.
    pub fn new(store: S, config: SessionConfig) -> Self {
        Self::with_clock(store, config, SystemClock)
    }
}

impl<S: SessionStore, C: Clock> SessionManager<S, C> {
    /// A manager with an explicit clock.
    pub fn with_clock(store: S, config: SessionConfig, clock: C) -> Self {
        let touch = TouchPolicy {
            idle_timeout: config.idle_timeout(),
            remember_me_idle_timeout: config.remember_me_idle_timeout(),
            interval: config.touch_interval(),
            count_request: true,
        };
        let limit = config.max_sessions_per_user().map(|max| Limit { max, policy: config.on_limit() });
        let access = AccessPolicy {
            ttl_secs: i64::try_from(config.access_token_ttl().as_secs()).unwrap_or(i64::MAX),
            leeway_secs: i64::try_from(config.access_token_leeway().as_secs()).unwrap_or(i64::MAX),
            issuer: config.jwt_issuer().map(str::to_owned),
            audience: config.jwt_audience().map(str::to_owned),
        };
        // One extra second covers the rounding of `iat` down to whole seconds.
        let deny_for = config.access_token_ttl() + config.access_token_leeway() + std::time::Duration::from_secs(1);
        let verified = access::VerifiedCache::new(config.access_token_cache_size());
        Self {
            inner: Arc::new(Inner {
                store,
                clock,
                config,
                touch,
                limit,
                access,
                deny_for,
                keys: ArcSwapOption::empty(),
                verified,
                events: Hub::default(),
            }),
        }
    }

    fn revocation(&self, reason: RevocationReason, at: crate::clock::Timestamp) -> Revocation {
        Revocation { reason, at, deny_access_until: Some(self.deny_access_until(at)) }
    }

    /// Until when a denylist entry made at `at` must last: until the last access token issued
    /// before it has expired.
    fn deny_access_until(&self, at: crate::clock::Timestamp) -> crate::clock::Timestamp {
        at.saturating_add(self.inner.deny_for)
    }

    /// Registers a listener for [`SessionEvent`]s. It runs on a thread of its own with a queue
    /// of [`LISTENER_QUEUE`](crate::events::LISTENER_QUEUE) events: a slow listener loses
    /// events (counted by [`dropped_events`](Self::dropped_events)) rather than slowing
    /// requests, and a panicking one is caught. The thread ends when the manager is dropped.
    ///
    /// # Errors
    /// The operating system refused to start the thread.
    pub fn subscribe(&self, listener: impl EventListener) -> std::io::Result<()> {
        self.inner.events.subscribe(listener)
    }

    /// Events that could not be queued because a listener was behind.
    #[must_use]
    pub fn dropped_events(&self) -> u64 {
        self.inner.events.dropped()
    }

    /// Panics caught in listeners.
    #[must_use]
    pub fn listener_panics(&self) -> u64 {
        self.inner.events.listener_panics()
    }

    /// Counters of what happened since this manager started.
    #[must_use]
    pub fn counters(&self) -> crate::events::CounterSnapshot {
        self.inner.events.counters.snapshot()
    }

    fn emit(&self, event: SessionEvent) {
        self.inner.events.emit(event);
    }

    fn emit_revoked(&self, records: &[SessionRecord], reason: RevocationReason, at: crate::clock::Timestamp) {
        for record in records {
            self.emit(SessionEvent::Revoked { info: EventInfo::of(record, at), reason });
        }
    }

    fn emit_expired(
        &self,
        record: &SessionRecord,
        reason: ExpiryReason,
        observed_by: ObservedBy,
        at: crate::clock::Timestamp,
    ) {
        self.emit(SessionEvent::Expired { info: EventInfo::of(record, at), reason, observed_by });
    }

    /// Turns a lookup into the caller's answer, reporting an expiry seen on the way.
    #[inline]
    fn answer(&self, lookup: Lookup, now: crate::clock::Timestamp) -> Result<Session, Error> {
        match lookup {
            Lookup::Live(record) => Ok(Session::from_live_record(record)),
            rejected => Err(self.rejection(rejected, now)),
        }
    }

    /// The error for a lookup that found no live session, reporting an expiry seen on the way.
    /// Out of line, so that the live path's code stays small.
    #[cold]
    #[inline(never)]
    fn rejection(&self, lookup: Lookup, now: crate::clock::Timestamp) -> Error {
        match lookup {
            Lookup::Expired { reason, record } => {
                self.emit_expired(&record, reason, ObservedBy::Validation, now);
                Error::Expired { reason }
            }
            Lookup::Revoked(reason) => Error::Revoked { reason },
            // `answer` keeps `Live` for itself.
            Lookup::Live(_) | Lookup::NotFound => Error::UnknownSession,
        }
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &SessionConfig {
        &self.inner.config
    }

    /// The store.
    #[must_use]
    pub fn store(&self) -> &S {
        &self.inner.store
    }

    /// The clock.
    #[must_use]
    pub fn clock(&self) -> &C {
        &self.inner.clock
    }

    /// Logs a user in: creates a session with a fresh token, enforcing the per-user limit.
    ///
    /// Under [`LimitPolicy::EvictOldest`](crate::LimitPolicy::EvictOldest) or
    /// [`EvictLeastRecentlyUsed`](crate::LimitPolicy::EvictLeastRecentlyUsed) the sessions it
    /// pushes out are listed in [`Created::evicted`]; their tokens answer
    /// [`Error::Revoked`] from then on.
    ///
    /// # Errors
    /// [`Error::LimitReached`] under [`LimitPolicy::Reject`](crate::LimitPolicy::Reject) at the
    /// limit; [`Error::DataTooDeep`] if the initial data nests deeper than
    /// [`SessionConfig::max_data_depth`]; [`Error::DataTooLarge`] if it exceeds
    /// [`SessionConfig::max_data_bytes`]; [`Error::Random`] if the OS RNG fails;
    /// [`Error::Store`] if the store fails.
    pub async fn create(&self, new: NewSession) -> Result<Created, Error> {
        let config = &self.inner.config;
        // Depth first: measuring the size serialises the data, recursively.
        if nests_deeper_than(new.data.values(), config.max_data_depth()) {
            return Err(Error::DataTooDeep { limit: config.max_data_depth() });
        }
        let data = SessionData::from_map(new.data);
        let size = data.encoded_len();
        if size > config.max_data_bytes() {
            return Err(Error::DataTooLarge { size, limit: config.max_data_bytes() });
        }
        let metadata = Metadata::new(
            new.ip,
            new.user_agent.as_deref().map(|ua| Arc::from(truncate_to_boundary(ua, config.max_user_agent_len()))),
        );
        let now = self.inner.clock.now();
        let (idle, absolute) = config.lifetimes(new.remember_me);
        let (idle_deadline, absolute_deadline) = expiry::initial_deadlines(now, idle, absolute);
        let keys = self.inner.keys.load_full();
        let eviction = self.revocation(RevocationReason::Evicted, now);
        let mut last_error = StoreError::Conflict;
        let route = Some(Route::of_user(&new.user));
        for _ in 0..CONFLICT_RETRIES {
            let (token, digest) = SessionToken::generate_routed(route).map_err(Error::Random)?;
            let refresh = match keys {
                Some(_) => Some(RefreshToken::generate_routed(route).map_err(Error::Random)?),
                None => None,
            };
            let record = SessionRecord {
                id: SessionId::generate_routed(route).map_err(Error::Random)?,
                digest,
                user: new.user.clone(),
                created_at: now,
                last_seen_at: now,
                idle_deadline,
                absolute_deadline,
                remember_me: new.remember_me,
                request_count: 0,
                generation: 0,
                metadata: metadata.clone(),
                data: data.clone(),
            };
            let refresh_digest = refresh.as_ref().map(|(_, d)| *d);
            match self.inner.store.insert(record.clone(), refresh_digest, self.inner.limit, eviction).await {
                Ok(InsertOutcome::Inserted { evicted }) => {
                    self.emit(SessionEvent::Created {
                        info: EventInfo::of(&record, now),
                        remember_me: record.remember_me,
                    });
                    self.emit_revoked(&evicted, RevocationReason::Evicted, now);
                    let tokens = match (&keys, refresh) {
                        (Some(keys), Some((refresh_token, refresh_digest))) => {
                            Some(self.pair(keys, &record, refresh_token, &refresh_digest, now))
                        }
                        _ => None,
                    };
                    return Ok(Created {
                        token,
                        session: Session::from_live_record(record),
                        evicted: evicted.into_iter().map(|r| r.id).collect(),
                        tokens,
                    });
                }
                Ok(InsertOutcome::LimitReached) => {
                    let limit = self.inner.limit.map_or(0, |l| l.max);
                    let mut info = EventInfo::of(&record, now);
                    info.session_id = None;
                    self.emit(SessionEvent::LoginRejected { info, limit });
                    return Err(Error::LimitReached { limit });
                }
                Err(StoreError::Conflict) => last_error = StoreError::Conflict,
                Err(e) => return Err(Error::Store(e)),
            }
        }
        Err(Error::Store(last_error))
    }

    /// Validates a token presented by a client: the per-request hot path.
    ///
    /// Parses the token (length first, then alphabet), digests it, looks the digest up, checks
    /// the absolute and then the idle deadline, counts the request and, if the last renewal is
    /// older than [`SessionConfig::touch_interval`], slides the idle deadline forward (never
    /// past the absolute deadline).
    ///
    /// # Errors
    /// [`Error::MalformedToken`], [`Error::UnknownSession`], [`Error::Expired`] (with
    /// [`ExpiryReason`]), [`Error::Revoked`] (with
    /// [`RevocationReason`]), or [`Error::Store`].
    #[inline]
    pub async fn validate(&self, token: &str) -> Result<Session, Error> {
        let digest = TokenDigest::of_token(token).map_err(|_| Error::MalformedToken)?;
        self.validate_digest(&digest).await
    }

    /// [`validate`](Self::validate) of a token already digested (the web integration digests
    /// a cookie's token once, for the CSRF check and the lookup).
    #[inline]
    pub(crate) async fn validate_digest(&self, digest: &TokenDigest) -> Result<Session, Error> {
        let now = self.inner.clock.now();
        self.answer(self.inner.store.touch(digest, now, self.inner.touch).await?, now)
    }

    /// Extends a session: pushes its idle deadline to now plus the idle timeout, whatever the
    /// touch interval, never past the absolute deadline. Does not count as a request.
    ///
    /// # Errors
    /// As [`validate`](Self::validate).
    pub async fn extend(&self, token: &str) -> Result<Session, Error> {
        let digest = TokenDigest::of_token(token).map_err(|_| Error::MalformedToken)?;
        self.extend_digest(&digest).await
    }

    /// [`extend`](Self::extend) of a token already digested.
    pub(crate) async fn extend_digest(&self, digest: &TokenDigest) -> Result<Session, Error> {
        let now = self.inner.clock.now();
        let policy = TouchPolicy { interval: std::time::Duration::ZERO, count_request: false, ..self.inner.touch };
        let session = self.answer(self.inner.store.touch(digest, now, policy).await?, now)?;
        self.emit(SessionEvent::Extended { info: EventInfo::of(session.record(), now) });
        Ok(session)
    }

    /// Replaces a session's token, keeping the session: call it whenever the session's
    /// privilege changes (login step-up, role change) so that a token planted before the change
    /// is useless after it — the defence against session fixation
    /// (<https://owasp.org/www-community/attacks/Session_fixation>). The old token stops working
    /// at once; send the new one to the client.
    ///
    /// The session keeps its id, and its [`generation`](Session::generation) goes up by one.
    /// With signing keys set, every token issued before stops working in the same atomic step,
    /// on every instance sharing the store: the session's refresh tokens are replaced (whoever
    /// planted the session may hold one), and its access tokens of earlier generations are
    /// denylisted until the last of them expires, so that [`verify_access`](Self::verify_access)
    /// refuses them with [`AccessTokenError::Superseded`](crate::AccessTokenError::Superseded).
    /// [`Rotated::tokens`] carries a new refresh token and a new access token.
    ///
    /// # Errors
    /// As [`validate`](Self::validate); also [`Error::Random`].
    pub async fn rotate(&self, token: &str) -> Result<Rotated, Error> {
        let old = TokenDigest::of_token(token).map_err(|_| Error::MalformedToken)?;
        let keys = self.inner.keys.load_full();
        let route = Some(old.route());
        for _ in 0..CONFLICT_RETRIES {
            let (token, new) = SessionToken::generate_routed(route).map_err(Error::Random)?;
            let refresh = match keys {
                Some(_) => Some(RefreshToken::generate_routed(route).map_err(Error::Random)?),
                None => None,
            };
            let now = self.inner.clock.now();
            let deny_access_until = Some(self.deny_access_until(now));
            match self.inner.store.rotate(&old, new, refresh.as_ref().map(|(_, d)| *d), now, deny_access_until).await {
                Ok(lookup) => {
                    let session = self.answer(lookup, now)?;
                    self.emit(SessionEvent::Rotated { info: EventInfo::of(session.record(), now) });
                    let tokens = match (&keys, refresh) {
                        (Some(keys), Some((refresh_token, refresh_digest))) => {
                            Some(self.pair(keys, session.record(), refresh_token, &refresh_digest, now))
                        }
                        _ => None,
                    };
                    return Ok(Rotated { token, session, tokens });
                }
                Err(StoreError::Conflict) => {}
                Err(e) => return Err(Error::Store(e)),
            }
        }
        Err(Error::Store(StoreError::Conflict))
    }

    /// Applies `patch` to the data of the session behind `token`, atomically, and returns the
    /// data now stored. Does not count as a request.
    ///
    /// # Errors
    /// As [`validate`](Self::validate); [`Error::DataTooDeep`] if a value the patch sets would
    /// nest the data deeper than [`SessionConfig::max_data_depth`]; [`Error::DataTooLarge`] if
    /// the result would exceed [`SessionConfig::max_data_bytes`]. Nothing changes then.
    pub async fn update_data(&self, token: &str, patch: DataPatch) -> Result<SessionData, Error> {
        let digest = TokenDigest::of_token(token).map_err(|_| Error::MalformedToken)?;
        let now = self.inner.clock.now();
        let record = self.live_record(&digest, now).await?;
        // Only the values the patch sets can deepen the data: what is stored passed this check
        // when it was written. Checked here, before a store clones or serialises the patch.
        let depth = self.inner.config.max_data_depth();
        let set = patch.ops().iter().filter_map(|op| match op {
            PatchOp::Set(_, value) => Some(value),
            _ => None,
        });
        if nests_deeper_than(set, depth) {
            return Err(Error::DataTooDeep { limit: depth });
        }
        let limit = self.inner.config.max_data_bytes();
        match self.inner.store.update_data(&record.id, &patch, limit, now).await? {
            DataOutcome::Updated(data) => Ok(data),
            DataOutcome::TooLarge { size } => Err(Error::DataTooLarge { size, limit }),
            // Removed or expired between the two calls.
            DataOutcome::NotFound => Err(Error::UnknownSession),
        }
    }

    /// Logs out: ends the session behind `token`. Answers whether a session was ended; an
    /// unknown, expired or already revoked token is not an error (logging out twice is fine).
    ///
    /// # Errors
    /// [`Error::MalformedToken`], [`Error::Store`].
    pub async fn revoke(&self, token: &str) -> Result<bool, Error> {
        let digest = TokenDigest::of_token(token).map_err(|_| Error::MalformedToken)?;
        Ok(self.revoke_digest(&digest).await?.is_some())
    }

    /// [`revoke`](Self::revoke) of a token already digested, answering the session as it was
    /// when it ended (one store call).
    pub(crate) async fn revoke_digest(&self, digest: &TokenDigest) -> Result<Option<SessionRecord>, Error> {
        let now = self.inner.clock.now();
        let reason = RevocationReason::Logout;
        let removed = self.inner.store.remove_by_digest(digest, self.revocation(reason, now)).await?;
        if let Some(record) = &removed {
            self.emit_revoked(std::slice::from_ref(record), reason, now);
        }
        Ok(removed)
    }

    async fn remove(
        &self,
        id: &SessionId,
        reason: RevocationReason,
        now: crate::clock::Timestamp,
    ) -> Result<bool, Error> {
        let removed = self.inner.store.remove(id, self.revocation(reason, now)).await?;
        if let Some(record) = &removed {
            self.emit_revoked(std::slice::from_ref(record), reason, now);
        }
        Ok(removed.is_some())
    }

    /// Ends the session `id`, whoever owns it: for administrators. Answers whether a session
    /// was ended. Check the caller's authority before calling.
    ///
    /// # Errors
    /// [`Error::Store`].
    pub async fn revoke_by_id(&self, id: &SessionId) -> Result<bool, Error> {
        let now = self.inner.clock.now();
        self.remove(id, RevocationReason::Admin, now).await
    }

    /// Ends the session `id` if it belongs to `user`: self-service revocation from a session
    /// list. Answers `false` (and changes nothing) for another user's or an unknown id, so the
    /// caller cannot probe which ids exist.
    ///
    /// # Errors
    /// [`Error::Store`].
    pub async fn revoke_own(&self, user: &UserId, id: &SessionId) -> Result<bool, Error> {
        match self.inner.store.get_by_id(id).await? {
            Some(record) if record.user == *user => {
                let now = self.inner.clock.now();
                self.remove(id, RevocationReason::Logout, now).await
            }
            _ => Ok(false),
        }
    }

    /// Ends every session of `user`, except `keep` if given ("log out my other devices").
    /// Answers how many were ended.
    ///
    /// # Errors
    /// [`Error::Store`].
    pub async fn revoke_all(&self, user: &UserId, keep: Option<&SessionId>) -> Result<usize, Error> {
        self.revoke_user_sessions(user, keep, RevocationReason::LogoutAll).await
    }

    /// Ends every session of `user` for an administrator (reason
    /// [`RevocationReason::Admin`]). Answers how many were ended.
    ///
    /// # Errors
    /// [`Error::Store`].
    pub async fn revoke_user_by_admin(&self, user: &UserId) -> Result<usize, Error> {
        self.revoke_user_sessions(user, None, RevocationReason::Admin).await
    }

    async fn revoke_user_sessions(
        &self,
        user: &UserId,
        keep: Option<&SessionId>,
        reason: RevocationReason,
    ) -> Result<usize, Error> {
        let now = self.inner.clock.now();
        let removed = self.inner.store.remove_user(user, keep, self.revocation(reason, now)).await?;
        self.emit_revoked(&removed, reason, now);
        Ok(removed.len())
    }

    /// The live sessions of `user`, oldest first.
    ///
    /// # Errors
    /// [`Error::Store`].
    pub async fn list(&self, user: &UserId) -> Result<Vec<Session>, Error> {
        let now = self.inner.clock.now();
        Ok(self.inner.store.list_user(user, now).await?.into_iter().map(Session::from_live_record).collect())
    }

    /// The live session `id`, if any, without counting or renewing it.
    ///
    /// # Errors
    /// [`Error::Store`].
    pub async fn get(&self, id: &SessionId) -> Result<Option<Session>, Error> {
        let now = self.inner.clock.now();
        Ok(self
            .inner
            .store
            .get_by_id(id)
            .await?
            .filter(|r| expiry::check(now, r.idle_deadline, r.absolute_deadline).is_ok())
            .map(Session::from_live_record))
    }

    fn pair(
        &self,
        keys: &KeySet,
        record: &SessionRecord,
        refresh_token: RefreshToken,
        refresh_digest: &TokenDigest,
        issued_at: crate::clock::Timestamp,
    ) -> TokenPair {
        let (access_token, claims) = access::issue(
            keys,
            &self.inner.access,
            &record.user,
            &record.id,
            issued_at,
            record.generation,
            refresh_digest,
        );
        TokenPair { access_token, refresh_token, claims }
    }

    /// Removes every session that has expired, with its refresh tokens and index entries, and
    /// forgets revocations and denylist entries whose time has passed. Answers how many
    /// sessions were removed.
    ///
    /// Works in batches of [`SWEEP_BATCH`] and yields to the executor between them, so that
    /// validations running meanwhile are never held up for long.
    ///
    /// # Errors
    /// [`Error::Store`]; sessions removed before the failure stay removed.
    pub async fn sweep_expired(&self) -> Result<usize, Error> {
        let mut total = 0;
        loop {
            let now = self.inner.clock.now();
            let removed = self.inner.store.remove_expired(now, SWEEP_BATCH).await?;
            total += removed.len();
            for record in &removed {
                let reason = match expiry::check(now, record.idle_deadline, record.absolute_deadline) {
                    Err(reason) => reason,
                    Ok(()) => ExpiryReason::Idle,
                };
                self.emit_expired(record, reason, ObservedBy::Sweeper, now);
            }
            if removed.len() < SWEEP_BATCH {
                return Ok(total);
            }
            YieldNow(false).await;
        }
    }

    async fn live_record(&self, digest: &TokenDigest, now: crate::clock::Timestamp) -> Result<SessionRecord, Error> {
        let policy = TouchPolicy { interval: std::time::Duration::MAX, count_request: false, ..self.inner.touch };
        self.answer(self.inner.store.touch(digest, now, policy).await?, now).map(Session::into_record)
    }
}

/// Access and refresh tokens: with a store that keeps refresh tokens and the denylist.
impl<S: TokenStore, C: Clock> SessionManager<S, C> {
    /// Sets (or replaces) the keys that sign and verify access tokens. From then on
    /// [`create`](Self::create) also issues an access and a refresh token. Replacing the set
    /// takes effect at once for every clone of the manager; to rotate keys without
    /// invalidating tokens in flight, pass [`KeySet::rotated`].
    pub fn set_keys(&self, keys: KeySet) {
        self.inner.keys.store(Some(Arc::new(keys)));
        self.inner.verified.clear();
    }

    /// The current key set, if any.
    #[must_use]
    pub fn keys(&self) -> Option<Arc<KeySet>> {
        self.inner.keys.load_full()
    }

    /// Exchanges a refresh token for a new access token and a new refresh token.
    ///
    /// The session is checked first (revoked, idle, absolute); a refresh counts as activity
    /// and renews the idle deadline, never the absolute one. The presented refresh token is
    /// spent. Presenting it again within
    /// [`SessionConfig::refresh_reuse_grace`] returns the very same pair (parallel requests and
    /// retries are safe); presenting it later is reuse: the whole session is revoked, every
    /// one of its tokens stops working, and [`Error::RefreshTokenReused`] is returned.
    ///
    /// # Errors
    /// [`Error::InvalidRefreshToken`], [`Error::RefreshTokenReused`], [`Error::Expired`],
    /// [`Error::NoSigningKeys`], [`Error::Random`], [`Error::Store`].
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenPair, Error> {
        let keys = self.inner.keys.load_full().ok_or(Error::NoSigningKeys)?;
        let presented = RawToken::decode(refresh_token).map_err(|_| Error::InvalidRefreshToken)?;
        let presented_digest = presented.digest();
        let grace = self.inner.config.refresh_reuse_grace();
        let touch = TouchPolicy { count_request: false, ..self.inner.touch };
        let route = Some(presented_digest.route());
        for _ in 0..CONFLICT_RETRIES {
            let (successor, successor_digest) = RefreshToken::generate_routed(route).map_err(Error::Random)?;
            let sealed = refresh::seal(&presented, &successor).map_err(Error::Random)?;
            let now = self.inner.clock.now();
            let reuse = self.revocation(RevocationReason::RefreshReuse, now);
            let next = Successor { digest: successor_digest, sealed };
            match self.inner.store.rotate_refresh(&presented_digest, next, now, grace, touch, reuse).await {
                Ok(RefreshOutcome::Rotated(record)) => {
                    self.emit(SessionEvent::Refreshed { info: EventInfo::of(&record, now) });
                    return Ok(self.pair(&keys, &record, successor, &successor_digest, now));
                }
                Ok(RefreshOutcome::Replayed { record, sealed, spent_at }) => {
                    let successor = refresh::open(&presented, &sealed).ok_or(Error::InvalidRefreshToken)?;
                    let digest = successor.digest();
                    return Ok(self.pair(&keys, &record, successor, &digest, spent_at));
                }
                Ok(RefreshOutcome::Reused(record)) => {
                    self.emit(SessionEvent::RefreshTokenReused { info: EventInfo::of(&record, now) });
                    self.emit_revoked(std::slice::from_ref(&record), RevocationReason::RefreshReuse, now);
                    return Err(Error::RefreshTokenReused);
                }
                Ok(RefreshOutcome::Expired { reason, record }) => {
                    self.emit_expired(&record, reason, ObservedBy::Validation, now);
                    return Err(Error::Expired { reason });
                }
                Ok(RefreshOutcome::Revoked(reason)) => return Err(Error::Revoked { reason }),
                Ok(RefreshOutcome::NotFound) => return Err(Error::InvalidRefreshToken),
                Err(StoreError::Conflict) => {}
                Err(e) => return Err(Error::Store(e)),
            }
        }
        Err(Error::Store(StoreError::Conflict))
    }

    /// Verifies an access token: the second hot path.
    ///
    /// Checks, in order: the length cap, the structure, the key named by `kid` and that the
    /// header's `alg` is the one that key is bound to (`none` and algorithm switches are
    /// refused; so is a header with `crit`), the signature, then the claims' JSON types (a
    /// registered claim of the wrong type, `null` included, is refused), `iss` and `aud`, and
    /// `exp`/`nbf`/`iat` (with [`SessionConfig::access_token_leeway`]; `iat` must not be in the
    /// future), and finally the denylist, so that a token of a revoked session, or one issued
    /// before its session was [rotated](Self::rotate), is refused at once although it has not
    /// expired.
    ///
    /// # Errors
    /// [`Error::AccessToken`] with the precise [`AccessTokenError`](crate::token::AccessTokenError)
    /// ([`Superseded`](crate::token::AccessTokenError::Superseded) for a token issued before a
    /// rotation); [`Error::Revoked`] for a revoked session; [`Error::NoSigningKeys`];
    /// [`Error::Store`].
    pub async fn verify_access(&self, token: &str) -> Result<AccessClaims, Error> {
        // Before the keys: a key change after this point keeps the result out of the cache.
        let epoch = self.inner.verified.epoch();
        let keys = self.inner.keys.load();
        let keys = keys.as_deref().ok_or(Error::NoSigningKeys)?;
        let now = self.inner.clock.now();
        let claims = match self.inner.verified.get(token, &self.inner.access, now) {
            Some(hit) => hit?,
            None => {
                let (claims, nbf) = access::verify(keys, &self.inner.access, token, now)?;
                self.inner.verified.insert(token, &claims, nbf, now, epoch);
                claims
            }
        };
        match self.inner.store.access_denied(&claims.session_id, claims.generation, now).await? {
            Some(AccessDenial::Revoked(reason)) => Err(Error::Revoked { reason }),
            Some(AccessDenial::Superseded) => Err(Error::AccessToken(crate::token::AccessTokenError::Superseded)),
            None => Ok(claims),
        }
    }

    /// Verifies an access token as [`verify_access`](Self::verify_access) does, then loads its
    /// session (without counting or renewing it), for handlers that need the session itself.
    ///
    /// # Errors
    /// As `verify_access`; [`Error::Expired`] if the session has expired since the token was
    /// issued, [`Error::UnknownSession`] if it is gone (swept), [`Error::AccessToken`] with
    /// `InvalidClaims` if the token's `sub` is not the session's user.
    pub async fn authenticate_access(&self, token: &str) -> Result<(AccessClaims, Session), Error> {
        let claims = self.verify_access(token).await?;
        let now = self.inner.clock.now();
        let record = self.inner.store.get_by_id(&claims.session_id).await?.ok_or(Error::UnknownSession)?;
        if record.user != claims.user {
            return Err(Error::AccessToken(crate::token::AccessTokenError::InvalidClaims));
        }
        if let Err(reason) = expiry::check(now, record.idle_deadline, record.absolute_deadline) {
            return Err(Error::Expired { reason });
        }
        Ok((claims, Session::from_live_record(record)))
    }
}

/// A walk over a [`BackupStore`]'s items, one page of its scan at a time.
struct Pages<'a, S> {
    store: &'a S,
    /// The next page's cursor; `None` once the last page has been read.
    cursor: Option<ScanCursor>,
}

impl<S: BackupStore> Pages<'_, S> {
    /// The next page's items, or `None` after the last page.
    async fn next(&mut self) -> Result<Option<Vec<crate::store::StoredItem>>, StoreError> {
        let Some(at) = self.cursor else { return Ok(None) };
        let page = self.store.scan(at).await?;
        self.cursor = page.next;
        Ok(Some(page.items))
    }
}

/// Export, import and statistics: with a store that can be scanned and restored.
impl<S: BackupStore, C: Clock> SessionManager<S, C> {
    /// A snapshot of the sessions in the store: counts, top users, IPs and user agents,
    /// logins per hour over the last day, session ages, and the counters. Reads the store page
    /// by page without blocking validations.
    ///
    /// # Errors
    /// [`Error::Store`].
    pub async fn stats(&self) -> Result<crate::stats::SessionStats, Error> {
        let now = self.inner.clock.now();
        let mut builder = crate::stats::StatsBuilder::new(now);
        let mut pages = self.pages();
        while let Some(items) = pages.next().await? {
            for item in &items {
                if let crate::store::StoredItem::Session { record, .. } = item {
                    builder.add(record);
                }
            }
            YieldNow(false).await;
        }
        Ok(builder.finish(self.counters()))
    }

    /// The store's items, a page of its scan at a time.
    fn pages(&self) -> Pages<'_, S> {
        Pages { store: &self.inner.store, cursor: Some(ScanCursor::START) }
    }

    /// Writes every session, remembered revocation and denylist entry as JSON Lines (see
    /// [`crate::export`]), page by page. Answers the number of items. No token is written.
    ///
    /// # Errors
    /// [`ExportError`](crate::export::ExportError) if writing or reading the store fails.
    pub async fn export(&self, out: &mut impl std::io::Write) -> Result<u64, crate::export::ExportError> {
        crate::export::write_header(out, self.inner.clock.now())?;
        let mut count = 0;
        let mut pages = self.pages();
        while let Some(items) = pages.next().await? {
            for item in &items {
                crate::export::write_item(out, item)?;
                count += 1;
            }
        }
        crate::export::write_end(out, count)?;
        Ok(count)
    }

    /// [`export`](Self::export) to an async writer (a response body, a file, a socket),
    /// streamed: each page of the store's scan is written as it is read, in writes of about
    /// 64 KiB, so memory holds one page of items whatever the size of the store. The writer is
    /// flushed at the end. Answers the number of items.
    ///
    /// A reader can tell an export cut short (a failed write, a store error mid-way) from a
    /// whole one: only a whole one ends with its end line, which counts the items.
    ///
    /// # Errors
    /// [`ExportError`](crate::export::ExportError) if writing or reading the store fails.
    #[cfg(feature = "tokio")]
    pub async fn export_to<W>(&self, out: &mut W) -> Result<u64, crate::export::ExportError>
    where
        W: tokio::io::AsyncWrite + Unpin + ?Sized,
    {
        use tokio::io::AsyncWriteExt as _;
        const CHUNK: usize = 64 * 1024;
        let mut buf = Vec::with_capacity(CHUNK);
        crate::export::write_header(&mut buf, self.inner.clock.now())?;
        let mut count = 0;
        let mut pages = self.pages();
        while let Some(items) = pages.next().await? {
            for item in &items {
                crate::export::write_item(&mut buf, item)?;
                count += 1;
                if buf.len() >= CHUNK {
                    out.write_all(&buf).await?;
                    buf.clear();
                }
            }
        }
        crate::export::write_end(&mut buf, count)?;
        out.write_all(&buf).await?;
        out.flush().await?;
        Ok(count)
    }

    /// Reads an export (see [`crate::export`]), checks every line, then adds everything to the
    /// store at once. Answers the number of items. On any error nothing is added.
    ///
    /// # Errors
    /// [`ImportError`](crate::export::ImportError), naming the first bad line.
    pub async fn import(&self, input: impl std::io::BufRead) -> Result<usize, crate::export::ImportError> {
        let items = crate::export::read(input)?;
        let count = items.len();
        let now = self.inner.clock.now();
        self.inner.store.restore(items, now).await.map_err(crate::export::ImportError::Store)?;
        Ok(count)
    }
}
