//! The client example (`examples/client.rs`) against the example server (`examples/server`),
//! both in-process: the example's own flow, then scheduled and 401-driven refreshes of many
//! parallel requests, with the server and the client each on its own mock clock (their clocks
//! disagree by design: only `expires_in` travels between them).
//!
//! Only 127.0.0.1 is contacted (the client ignores proxy settings).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(dead_code)]
#[path = "../examples/server/app.rs"]
mod app;

#[allow(dead_code)]
#[path = "../examples/client.rs"]
mod client;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::middleware::Next;
use tokio::sync::Semaphore;

use client::{ApiClient, ApiError, Summary};
use sessionkit::clock::MockClock;
use sessionkit::{MemoryStore, SystemClock};

const MINUTE: Duration = Duration::from_secs(60);

/// The example server on a free loopback port, over a memory store and `clock`. Stops when
/// the returned sender is dropped.
async fn serve(options: app::Options, clock: MockClock) -> (String, tokio::sync::oneshot::Sender<()>) {
    let (base, stop, gate) = serve_gated(options, clock).await;
    gate.add_permits(Semaphore::MAX_PERMITS);
    (base, stop)
}

/// As [`serve`], but every `POST /api/v1/auth/refresh-token` waits for a permit of the
/// returned gate, so that a test can hold a refresh until its callers have all joined it.
async fn serve_gated(
    options: app::Options,
    clock: MockClock,
) -> (String, tokio::sync::oneshot::Sender<()>, Arc<Semaphore>) {
    let state = app::AppState::from_options(&options, MemoryStore::new(), clock).expect("valid options");
    let gate = Arc::new(Semaphore::new(0));
    let held = Arc::clone(&gate);
    let router = app::router(state).layer(axum::middleware::from_fn(move |request: Request, next: Next| {
        let gate = Arc::clone(&held);
        async move {
            if request.uri().path() == "/api/v1/auth/refresh-token" {
                gate.acquire().await.expect("the gate stays open").forget();
            }
            next.run(request).await
        }
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app::serve(listener, router, async move {
        let _ = stopped.await;
    }));
    (format!("http://{addr}"), stop, gate)
}

fn options() -> app::Options {
    app::Options { users: vec!["bob:builder".into()], ..app::Options::default() }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// N parallel `GET /api/v1/auth/session`, each of which must answer bob's session.
async fn parallel_gets<C: sessionkit::Clock>(api: &ApiClient<C>, n: usize) {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        let api = api.clone();
        set.spawn(async move { api.get("/api/v1/auth/session").await });
    }
    while let Some(joined) = set.join_next().await {
        let session = joined.unwrap().unwrap();
        assert_eq!(session["user"], "bob", "{session}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_flow_runs_against_the_example_server() {
    // The server's clock stands in 2024, the client's is the system clock: only durations
    // travel, so the disagreement does not matter.
    let (base, _stop) = serve(options(), MockClock::new()).await;
    let api = ApiClient::new(&base, http(), SystemClock);
    // 15-minute access tokens: due in 14 minutes, more than the zero wait allowed here.
    let summary = client::run(&api, "bob", "builder", 8, Duration::ZERO).await.unwrap();
    assert_eq!(summary, Summary { fresh: 0, rejected: 1, due: None });
    assert!(api.holder().current().is_none(), "logged out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_flow_waits_for_a_short_lived_token() {
    let options = app::Options { access_token_ttl: Some(Duration::from_secs(2)), ..options() };
    let (base, _stop) = serve(options, MockClock::new()).await;
    let api = ApiClient::new(&base, http(), SystemClock);
    // 2-second tokens are due after 1.8 s of real time: the one test that waits.
    let summary = client::run(&api, "bob", "builder", 8, Duration::from_secs(5)).await.unwrap();
    assert_eq!(summary, Summary { fresh: 0, rejected: 1, due: Some(2) });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_requests_share_one_refresh_when_due_and_after_a_401() {
    let server_clock = MockClock::new();
    let (base, _stop) = serve(options(), server_clock.clone()).await;
    let client_clock = MockClock::at(time::macros::datetime!(2031-05-06 07:08:09 UTC));
    let api = ApiClient::new(&base, http(), client_clock.clone());
    let login = api.login("bob", "builder").await.unwrap();
    assert_eq!(api.holder().time_until_refresh(), Some(14 * MINUTE), "15 minutes, less 10 % capped at 60 s");

    parallel_gets(&api, 50).await;
    assert_eq!(api.refreshes(), 0);

    // Due by the client's clock (the server's has not moved): one refresh for fifty requests.
    client_clock.advance(14 * MINUTE);
    parallel_gets(&api, 50).await;
    assert_eq!(api.refreshes(), 1);
    let refreshed = api.holder().current().unwrap();
    assert_ne!(refreshed.access_token(), login.access_token());
    assert_ne!(refreshed.refresh_token(), login.refresh_token());

    // The server's clock runs past the token's expiry and leeway while the client's stands
    // still (a suspended laptop): every request is refused with `access_token_expired`, hands
    // the token back, and one refresh serves them all.
    server_clock.advance(16 * MINUTE);
    parallel_gets(&api, 50).await;
    assert_eq!(api.refreshes(), 2);

    api.logout().await.unwrap();
    match api.get("/api/v1/auth/session").await {
        Err(ApiError::Refresh(sessionkit::client::RefreshError::Failed(e))) => {
            assert!(matches!(*e, ApiError::NotLoggedIn), "{e:?}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_refresh_is_reported_to_every_request() {
    let server_clock = MockClock::new();
    let (base, _stop, gate) = serve_gated(options(), server_clock.clone()).await;
    let client_clock = MockClock::new();
    let api = ApiClient::new(&base, http(), client_clock.clone());
    api.login("bob", "builder").await.unwrap();

    // The session idles out on the server (30 minutes by default): the refresh is refused,
    // and every waiting request gets that answer.
    server_clock.advance(31 * MINUTE);
    client_clock.advance(14 * MINUTE);
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let api = api.clone();
        set.spawn(async move { api.get("/api/v1/auth/session").await });
    }
    // The server holds the refresh until all 20 requests wait for it, so that all of them join
    // this one refresh.
    tokio::time::timeout(Duration::from_secs(10), async {
        while api.holder().waiters() < 20 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("every request joins the refresh");
    gate.add_permits(1);
    while let Some(joined) = set.join_next().await {
        match joined.unwrap() {
            Err(ApiError::Refresh(sessionkit::client::RefreshError::Failed(e))) => {
                assert!(matches!(&*e, ApiError::Status { status: 401, code } if code == "session_expired"), "{e:?}");
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(api.refreshes(), 1);

    // A 401 is never retried: a later request gets the same answer without a refresh request.
    client_clock.advance(10 * MINUTE);
    match api.get("/api/v1/auth/session").await {
        Err(ApiError::Refresh(sessionkit::client::RefreshError::Failed(e))) => {
            assert!(matches!(&*e, ApiError::Status { status: 401, .. }), "{e:?}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(api.refreshes(), 1);
}
