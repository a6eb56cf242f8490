//! The web integration end to end: an authenticated `GET` through a whole axum 0.8 router, in
//! process (`tower::ServiceExt::oneshot`, no sockets), against a floor and a peer in one
//! criterion run.
//!
//! Group `http`:
//!
//! * `http/floor`: a `Router` with one `GET` route whose handler answers the user name taken
//!   from an `x-user` request header. No session layer: routing, extraction and the response,
//!   nothing else.
//! * `http/sessionkit`: the same router shape with
//!   `.layer(SessionLayer::new(manager, web))` (a `MemoryStore`, an 8 h idle timeout so that
//!   nothing expires during the run, secure cookie defaults) and a handler taking
//!   [`CurrentSession`] that answers `current.user().as_str().to_owned()`. The request carries
//!   `Cookie: __Host-session=<token>` of a session created once before measuring, so each
//!   request finds the cookie, digests the token, and validates it against the store.
//! * `http/peer`: tower-sessions 0.15: `SessionManagerLayer` over its `MemoryStore`, a handler
//!   taking `tower_sessions::Session` that reads the user name with
//!   `session.get::<String>("user")`. A session is created once before measuring by a request
//!   to a login route that inserts `"user"`; every measured request carries its `id=...`
//!   cookie.
//!
//! Before measuring, each route is asked once and must answer 200 with the user name, and every
//! measured response must be 200, so that no error path is measured by mistake.
//!
//! All three are driven on a tokio current-thread runtime: one `block_on` per criterion sample
//! around a loop of `oneshot` calls (what criterion's `to_async` does), each building its
//! request (one header) and cloning the router. The floor pays the same runtime, request and
//! router costs, so `sessionkit - floor` and `peer - floor` are what each session layer adds.
//!
//! After the group, the figures: each subject timed again in 11 batches of 20,000 requests,
//! interleaved, and the median batch taken per subject; printed as `sessionkit - floor`,
//! `peer - floor` and their ratio. Then a breakdown of the sessionkit route, timed the same way:
//! the floor's route under a no-op layer (`tower::layer::util::Identity`: what any layer costs
//! in axum, which boxes the route once more), under sessionkit's layer (the layer without an
//! extractor), the sessionkit route with `Authorization: Bearer` instead of the cookie, and
//! `SessionManager::validate` alone on the same runtime (no router). Not printed in `--test`,
//! `--list` or `--profile-time` mode.
//!
//! Run with `cargo bench --bench http`; `cargo bench --bench http -- --test` checks the routes
//! quickly without measuring.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_precision_loss,
    reason = "a benchmark must stop loudly if its setup or a measured operation fails"
)]

use std::future::Future;
use std::hint::black_box;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::header::{AUTHORIZATION, COOKIE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Request, StatusCode};
use axum::routing::get;
use criterion::Criterion;
use sessionkit::axum::{AllowedOrigins, CurrentSession, SessionLayer, WebConfig};
use sessionkit::{MemoryStore, NewSession, SessionConfig, SessionManager, UserId};
use tokio::runtime::Runtime;
use tower::ServiceExt as _;

const USER: &str = "alice";
const PATH: &str = "/me";
const X_USER: HeaderName = HeaderName::from_static("x-user");

/// One subject: a router and the one header its authenticated request carries.
struct Subject {
    name: &'static str,
    router: Router,
    header: (HeaderName, HeaderValue),
}

impl Subject {
    /// The request: `GET /me` with the subject's header.
    #[inline(always)]
    fn request(&self) -> Request<Body> {
        let (name, value) = &self.header;
        Request::get(PATH).header(name, value.clone()).body(Body::empty()).unwrap()
    }

    /// Sends one request through the whole router; answers whether it was answered 200.
    #[inline(always)]
    async fn call(&self) -> bool {
        let response = self.router.clone().oneshot(self.request()).await.unwrap();
        black_box(response).status() == StatusCode::OK
    }

    /// Asks the route once: it must answer 200 with the user name.
    fn check(&self, rt: &Runtime) {
        let (status, body) = rt.block_on(async {
            let response = self.router.clone().oneshot(self.request()).await.unwrap();
            let status = response.status();
            let body = axum::body::to_bytes(response.into_body(), 1 << 16).await.unwrap();
            (status, body)
        });
        assert_eq!(status, StatusCode::OK, "{}: {}", self.name, String::from_utf8_lossy(&body));
        assert_eq!(&body[..], USER.as_bytes(), "{}: answers the user name", self.name);
    }
}

/// `iters` operations in one `block_on` (as criterion's `to_async` does): the loop's wall time.
/// Every operation must succeed.
fn run<F: Future<Output = bool>>(rt: &Runtime, name: &str, iters: u64, mut op: impl FnMut() -> F) -> Duration {
    rt.block_on(async {
        let mut failures = 0u64;
        let start = Instant::now();
        for _ in 0..iters {
            if !op().await {
                failures += 1;
            }
        }
        let elapsed = start.elapsed();
        assert_eq!(failures, 0, "{name}: operations failed");
        elapsed
    })
}

// ---------------------------------------------------------------------------------------------
// Subjects

/// The floor's handler: the user name from the `x-user` header.
async fn floor_me(headers: HeaderMap) -> String {
    headers.get(X_USER).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

/// The floor: the user name from a request header, no session layer.
fn floor() -> Subject {
    Subject {
        name: "floor",
        router: Router::new().route(PATH, get(floor_me)),
        header: (X_USER, HeaderValue::from_static(USER)),
    }
}

/// A manager over a `MemoryStore` holding one session of [`USER`] (8 h idle and absolute
/// timeouts, so that nothing expires during the run), and the session's token.
fn session(rt: &Runtime) -> (SessionManager<MemoryStore>, String) {
    let config = SessionConfig::builder()
        .idle_timeout(Duration::from_secs(8 * 3600))
        .absolute_timeout(Duration::from_secs(8 * 3600))
        .build()
        .unwrap();
    let manager = SessionManager::new(MemoryStore::new(), config);
    let created = rt.block_on(manager.create(NewSession::new(UserId::new(USER).unwrap()))).unwrap();
    let token = created.token.expose_secret().to_owned();
    (manager, token)
}

/// sessionkit's layer (secure cookie defaults) over [`session`]'s manager, and the token.
fn sessionkit_layer(rt: &Runtime) -> (SessionLayer, String) {
    let (manager, token) = session(rt);
    let web = WebConfig::builder(AllowedOrigins::new("https://app.example.com").unwrap()).build().unwrap();
    assert_eq!(web.session_cookie().name(), "__Host-session", "secure cookie defaults");
    (SessionLayer::new(manager, web), token)
}

async fn sessionkit_me(current: CurrentSession) -> String {
    current.user().as_str().to_owned()
}

/// sessionkit: `CurrentSession` from the session cookie.
fn sessionkit(rt: &Runtime) -> Subject {
    let (layer, token) = sessionkit_layer(rt);
    Subject {
        name: "sessionkit",
        router: Router::new().route(PATH, get(sessionkit_me)).layer(layer),
        header: (COOKIE, HeaderValue::from_str(&format!("__Host-session={token}")).unwrap()),
    }
}

/// The peer: tower-sessions with its `MemoryStore`; a login request creates the session.
fn peer(rt: &Runtime) -> Subject {
    async fn me(session: tower_sessions::Session) -> String {
        session.get::<String>("user").await.unwrap().unwrap_or_default()
    }
    async fn login(session: tower_sessions::Session) -> &'static str {
        session.insert("user", USER).await.unwrap();
        "ok"
    }
    let layer = tower_sessions::SessionManagerLayer::new(tower_sessions::MemoryStore::default());
    let router = Router::new().route(PATH, get(me)).route("/login", get(login)).layer(layer);
    let response = rt.block_on(router.clone().oneshot(Request::get("/login").body(Body::empty()).unwrap())).unwrap();
    assert_eq!(response.status(), StatusCode::OK, "peer: login");
    let set_cookie = response.headers().get(SET_COOKIE).expect("peer: login sets the session cookie");
    let cookie = set_cookie.to_str().unwrap().split(';').next().unwrap().to_owned();
    assert!(cookie.starts_with("id="), "peer: cookie {cookie}");
    Subject { name: "peer", router, header: (COOKIE, HeaderValue::from_str(&cookie).unwrap()) }
}

/// Breakdown variants of the sessionkit route, timed with the figures after the group: what any
/// layer costs in axum, what sessionkit's layer costs, and the extractor on a bearer token.
fn breakdown(rt: &Runtime) -> Vec<Subject> {
    let (layer, token) = sessionkit_layer(rt);
    vec![
        // Any layer: axum boxes the route once more (one more boxed service clone and boxed
        // future per request).
        Subject {
            name: "floor+identity-layer",
            router: Router::new().route(PATH, get(floor_me)).layer(tower::layer::util::Identity::new()),
            header: (X_USER, HeaderValue::from_static(USER)),
        },
        // sessionkit's layer on the floor's route: no extractor, so no validation.
        Subject {
            name: "floor+sessionkit-layer",
            router: Router::new().route(PATH, get(floor_me)).layer(layer.clone()),
            header: (X_USER, HeaderValue::from_static(USER)),
        },
        // The extractor on `Authorization: Bearer` instead of the cookie.
        Subject {
            name: "sessionkit-bearer",
            router: Router::new().route(PATH, get(sessionkit_me)).layer(layer),
            header: (AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {token}")).unwrap()),
        },
    ]
}

// ---------------------------------------------------------------------------------------------
// Figures

/// Median nanoseconds per operation of each subject: `batches` batches of `per_batch`
/// operations, the subjects interleaved batch by batch so that a disturbance of the machine
/// does not fall on one alone.
fn medians(subjects: &[(&str, &dyn Fn(u64) -> Duration)], batches: usize, per_batch: u64) -> Vec<f64> {
    for (_, run) in subjects {
        run(per_batch / 4);
    }
    let mut times: Vec<Vec<f64>> = vec![Vec::with_capacity(batches); subjects.len()];
    for _ in 0..batches {
        for ((_, run), t) in subjects.iter().zip(&mut times) {
            t.push(run(per_batch).as_nanos() as f64 / per_batch as f64);
        }
    }
    times
        .into_iter()
        .map(|mut t| {
            t.sort_by(f64::total_cmp);
            t[t.len() / 2]
        })
        .collect()
}

const BATCHES: usize = 11;
const PER_BATCH: u64 = 20_000;

fn figures(rt: &Runtime, subjects: &[Subject], breakdown: &[Subject]) {
    let (manager, token) = session(rt);
    let validate = |iters| run(rt, "validate", iters, || async { manager.validate(black_box(&token)).await.is_ok() });
    let routes: Vec<_> = subjects.iter().chain(breakdown).collect();
    let closures: Vec<_> = routes.iter().map(|s| move |iters| run(rt, s.name, iters, || s.call())).collect();
    let mut all: Vec<(&str, &dyn Fn(u64) -> Duration)> =
        routes.iter().zip(&closures).map(|(s, f)| (s.name, f as &dyn Fn(u64) -> Duration)).collect();
    all.push(("validate", &validate));
    let m = medians(&all, BATCHES, PER_BATCH);
    let (floor, sessionkit, peer) = (m[0], m[1], m[2]);
    let ours = sessionkit - floor;
    let theirs = peer - floor;
    println!(
        "http: median of {BATCHES} batches of {PER_BATCH} requests: floor {floor:.0} ns, sessionkit {sessionkit:.0} ns, peer {peer:.0} ns"
    );
    println!("http: sessionkit - floor: {ours:.0} ns per request (target <= 1000 ns)");
    println!("http: peer - floor: {theirs:.0} ns per request");
    println!("http: (sessionkit - floor) / (peer - floor): {:.2} (target <= 0.50, aim 0.33)", ours / theirs);
    for ((name, _), ns) in all.iter().zip(&m).skip(subjects.len()) {
        if *name == "validate" {
            println!("http: breakdown: SessionManager::validate alone (no router): {ns:.0} ns");
        } else {
            println!("http: breakdown: {name}: {ns:.0} ns, {:.0} ns over the floor", ns - floor);
        }
    }
}

fn main() {
    let mut c = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    // No figures when criterion only tests, lists or profiles.
    let quick = std::env::args().any(|a| a == "--test" || a == "--list" || a.starts_with("--profile-time"));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();

    let subjects = [floor(), sessionkit(&rt), peer(&rt)];
    let breakdown = breakdown(&rt);
    for s in subjects.iter().chain(&breakdown) {
        s.check(&rt);
    }

    let mut group = c.benchmark_group("http");
    for s in &subjects {
        group.bench_function(s.name, |b| b.iter_custom(|iters| run(&rt, s.name, iters, || s.call())));
    }
    group.finish();

    if !quick {
        figures(&rt, &subjects, &breakdown);
    }
    c.final_summary();
}
