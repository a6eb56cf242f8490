//! [`SessionLayer`]: shares the manager and the [`WebConfig`] with every route, so that the
//! extractors work whatever the application's state type.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use ::axum::http::Request;

use super::config::WebConfig;
use crate::clock::{Clock, Timestamp};
use crate::error::Error;
use crate::manager::{Created, NewSession, Rotated, SessionManager, TokenPair};
use crate::session::{Session, SessionId, SessionRecord, UserId};
use crate::store::TokenStore;
use crate::token::{AccessClaims, TokenDigest};

/// A boxed future of the object-safe view of the manager.
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the extractors need of a [`SessionManager`], whatever its store and clock.
pub(crate) trait Backend: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
    fn validate<'a>(&'a self, digest: &'a TokenDigest) -> BoxFuture<'a, Result<Session, Error>>;
    fn extend<'a>(&'a self, digest: &'a TokenDigest) -> BoxFuture<'a, Result<Session, Error>>;
    fn authenticate_access<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<(AccessClaims, Session), Error>>;
    fn create(&self, new: NewSession) -> BoxFuture<'_, Result<Created, Error>>;
    fn rotate<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Rotated, Error>>;
    fn refresh<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<TokenPair, Error>>;
    fn revoke<'a>(&'a self, digest: &'a TokenDigest) -> BoxFuture<'a, Result<Option<SessionRecord>, Error>>;
    fn revoke_own<'a>(&'a self, user: &'a UserId, id: &'a SessionId) -> BoxFuture<'a, Result<bool, Error>>;
}

impl<S: TokenStore, C: Clock> Backend for SessionManager<S, C> {
    fn now(&self) -> Timestamp {
        self.clock().now()
    }

    fn validate<'a>(&'a self, digest: &'a TokenDigest) -> BoxFuture<'a, Result<Session, Error>> {
        Box::pin(self.validate_digest(digest))
    }

    fn extend<'a>(&'a self, digest: &'a TokenDigest) -> BoxFuture<'a, Result<Session, Error>> {
        Box::pin(self.extend_digest(digest))
    }

    fn authenticate_access<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<(AccessClaims, Session), Error>> {
        Box::pin(SessionManager::authenticate_access(self, token))
    }

    fn create(&self, new: NewSession) -> BoxFuture<'_, Result<Created, Error>> {
        Box::pin(SessionManager::create(self, new))
    }

    fn rotate<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Rotated, Error>> {
        Box::pin(SessionManager::rotate(self, token))
    }

    fn refresh<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<TokenPair, Error>> {
        Box::pin(SessionManager::refresh(self, token))
    }

    fn revoke<'a>(&'a self, digest: &'a TokenDigest) -> BoxFuture<'a, Result<Option<SessionRecord>, Error>> {
        Box::pin(self.revoke_digest(digest))
    }

    fn revoke_own<'a>(&'a self, user: &'a UserId, id: &'a SessionId) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(SessionManager::revoke_own(self, user, id))
    }
}

/// What the layer puts in every request's extensions for the extractors.
#[derive(Clone)]
pub(crate) struct Context(pub(crate) Arc<Shared>);

pub(crate) struct Shared {
    pub(crate) backend: Box<dyn Backend>,
    pub(crate) web: WebConfig,
}

/// A tower [`Layer`](tower_layer::Layer) that makes a [`SessionManager`] and its
/// [`WebConfig`] available to the extractors ([`CurrentSession`](super::CurrentSession),
/// [`OptionalSession`](super::OptionalSession), [`Auth`](super::Auth)) of every route below
/// it, whatever the router's state. Cheap to clone.
///
/// The layer itself does no work on a request but one pointer copy into its extensions: a
/// route that does not ask for a session pays nothing, and a session is validated only by the
/// extractor that asks for it. Cookies are written by the answers of [`Auth`](super::Auth)'s
/// operations.
#[derive(Clone)]
pub struct SessionLayer {
    context: Context,
}

impl SessionLayer {
    /// A layer over `manager` (a clone shares its store) with the cookies, CSRF key and
    /// origins of `web`. The store keeps refresh tokens and the denylist ([`TokenStore`]), so
    /// that access tokens and token refresh work when the manager has signing keys.
    pub fn new<S: TokenStore, C: Clock>(manager: SessionManager<S, C>, web: WebConfig) -> Self {
        Self { context: Context(Arc::new(Shared { backend: Box::new(manager), web })) }
    }

    /// The web configuration.
    #[must_use]
    pub fn web_config(&self) -> &WebConfig {
        &self.context.0.web
    }
}

impl std::fmt::Debug for SessionLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionLayer").field("web", &self.context.0.web).finish_non_exhaustive()
    }
}

impl<Svc> tower_layer::Layer<Svc> for SessionLayer {
    type Service = SessionService<Svc>;

    fn layer(&self, inner: Svc) -> Self::Service {
        SessionService { inner, context: self.context.clone() }
    }
}

/// The service [`SessionLayer`] wraps around the routes.
#[derive(Clone)]
pub struct SessionService<Svc> {
    inner: Svc,
    context: Context,
}

impl<Svc> std::fmt::Debug for SessionService<Svc> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionService").finish_non_exhaustive()
    }
}

impl<Svc, B> tower_service::Service<Request<B>> for SessionService<Svc>
where
    Svc: tower_service::Service<Request<B>>,
{
    type Response = Svc::Response;
    type Error = Svc::Error;
    type Future = Svc::Future;

    #[inline]
    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        request.extensions_mut().insert(self.context.clone());
        self.inner.call(request)
    }
}
