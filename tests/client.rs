//! The client helper (`client::TokenHolder`, feature `client`): scheduling under a mock clock,
//! single-flight refresh with many concurrent tasks, shared errors and retry, panics, the
//! refresh-after-401 path, and cancellation of the callers awaiting a refresh.
//!
//! A fake refresh endpoint counts its calls and can be held shut by a gate, so that callers
//! pile up behind a refresh that is still running. No test sleeps; time only moves on the mock
//! clock (a real-time timeout guards against hangs only).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use sessionkit::client::{
    Backoff, Credential, FailureKind, Grant, RefreshError, RefreshFailure, RefreshMargin, TokenHolder, Tokens,
};
use sessionkit::clock::{Clock, MockClock};
use tokio::sync::watch;

/// The error of the fake endpoint: which call failed, with which HTTP status.
#[derive(Debug, PartialEq, Eq)]
struct Refused(usize, u16);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "refresh number {} refused with {}", self.0, self.1)
    }
}

impl std::error::Error for Refused {}

impl RefreshFailure for Refused {
    fn failure_kind(&self) -> FailureKind {
        FailureKind::from_status(self.1)
    }
}

type Holder = TokenHolder<Refused, MockClock>;
type GrantFuture = Pin<Box<dyn Future<Output = Result<Grant, Refused>> + Send>>;

/// A refresh endpoint: the n-th call returns `access-n`/`refresh-n` living `LIFETIME`, after
/// the gate opens; `fail` (an HTTP status, 0 for none) makes calls fail, `panic` makes them
/// panic.
#[derive(Clone)]
struct Endpoint {
    calls: Arc<AtomicUsize>,
    gate: watch::Receiver<bool>,
    open: Arc<watch::Sender<bool>>,
    fail: Arc<AtomicU16>,
    panic: Arc<AtomicBool>,
    /// What each call received as the refresh token (`None`: the holder was empty).
    seen: Arc<parking_lot::Mutex<Vec<Option<String>>>>,
    /// Calls whose future was dropped before it finished.
    dropped: Arc<AtomicUsize>,
}

const LIFETIME: Duration = Duration::from_secs(900);
const GUARD: Duration = Duration::from_secs(30);

impl Endpoint {
    /// An endpoint whose gate is open.
    fn new() -> Self {
        let (open, gate) = watch::channel(true);
        Self {
            calls: Arc::default(),
            gate,
            open: Arc::new(open),
            fail: Arc::default(),
            panic: Arc::default(),
            seen: Arc::default(),
            dropped: Arc::default(),
        }
    }

    /// An endpoint whose calls wait until [`open`](Self::open).
    fn gated() -> Self {
        let endpoint = Self::new();
        endpoint.open.send_replace(false);
        endpoint
    }

    fn open(&self) {
        self.open.send_replace(true);
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// The refresh closure to hand to the holder.
    fn refresh(&self) -> impl FnOnce(Option<Arc<Tokens>>) -> GrantFuture + Send + 'static {
        let this = self.clone();
        move |old: Option<Arc<Tokens>>| {
            let n = this.calls.fetch_add(1, Ordering::SeqCst) + 1;
            this.seen.lock().push(old.as_deref().and_then(Tokens::refresh_token).map(|t| t.expose_secret().to_owned()));
            Box::pin(async move {
                let mut finished = DropGuard { dropped: Arc::clone(&this.dropped), armed: true };
                let mut gate = this.gate.clone();
                gate.wait_for(|open| *open).await.unwrap();
                finished.armed = false;
                if this.panic.load(Ordering::SeqCst) {
                    panic!("the refresh endpoint panicked (on purpose)");
                }
                match this.fail.load(Ordering::SeqCst) {
                    0 => {}
                    status => return Err(Refused(n, status)),
                }
                Ok(Grant::new(format!("access-{n}"))
                    .with_refresh_token(format!("refresh-{n}"))
                    .with_expires_in(LIFETIME))
            })
        }
    }
}

/// Counts a refresh future dropped while still waiting at the gate.
struct DropGuard {
    dropped: Arc<AtomicUsize>,
    armed: bool,
}

impl Drop for DropGuard {
    fn drop(&mut self) {
        if self.armed {
            self.dropped.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// A holder on a mock clock holding `access-0`/`refresh-0`, obtained now.
fn holder_with_login(clock: &MockClock) -> Holder {
    let holder = TokenHolder::with_clock(clock.clone());
    holder.set(Grant::new("access-0").with_refresh_token("refresh-0").with_expires_in(LIFETIME));
    holder
}

fn access(tokens: &Tokens) -> &str {
    tokens.access_token().expose_secret()
}

/// Polls `future` once, without a task to wake.
fn poll_once<F: Future + ?Sized>(future: Pin<&mut F>) -> Poll<F::Output> {
    future.poll(&mut Context::from_waker(Waker::noop()))
}

// -------------------------------------------------------------------------------------------
// Scheduling
// -------------------------------------------------------------------------------------------

#[tokio::test]
async fn fresh_tokens_are_returned_until_the_refresh_point_then_refreshed() {
    let clock = MockClock::new();
    let holder = holder_with_login(&clock);
    let endpoint = Endpoint::new();
    // 900 s with the default margin (10 %, at most 60 s): due after 840 s.
    assert_eq!(holder.time_until_refresh(), Some(Duration::from_secs(840)));

    clock.advance(Duration::from_secs(840) - Duration::from_nanos(1));
    let tokens = holder.get_or_refresh(endpoint.refresh()).await.unwrap();
    assert_eq!((access(&tokens), endpoint.calls()), ("access-0", 0));
    assert_eq!(holder.time_until_refresh(), Some(Duration::from_nanos(1)));

    clock.advance(Duration::from_nanos(1));
    assert!(holder.needs_refresh(clock.now()));
    let tokens = holder.get_or_refresh(endpoint.refresh()).await.unwrap();
    assert_eq!((access(&tokens), endpoint.calls()), ("access-1", 1));
    assert_eq!(*endpoint.seen.lock(), [Some("refresh-0".to_owned())], "the refresh token is handed over");
    assert_eq!(tokens.obtained_at(), clock.now());
    assert_eq!(holder.time_until_refresh(), Some(Duration::from_secs(840)));
    assert!(Arc::ptr_eq(&holder.current().unwrap(), &tokens));
}

#[tokio::test]
async fn lifetimes_count_from_the_start_of_the_refresh() {
    // The server's `expires_in` counts from a moment between request and response, so the
    // holder counts from the request: the computed expiry is never later than the server's.
    let clock = MockClock::new();
    let holder: Holder = TokenHolder::with_clock(clock.clone()).with_margin(RefreshMargin::fixed(Duration::ZERO));
    let started = clock.now();
    let slow = clock.clone();
    let tokens = holder
        .get_or_refresh(move |_| async move {
            slow.advance(Duration::from_secs(7)); // a seven-second round trip
            Ok(Grant::new("a").with_expires_in(Duration::from_secs(60)))
        })
        .await
        .unwrap();
    assert_eq!(tokens.obtained_at(), started);
    assert_eq!(tokens.expires_at(), Some(started.saturating_add(Duration::from_secs(60))));
    assert_eq!(holder.time_until_refresh(), Some(Duration::from_secs(53)));
}

#[tokio::test]
async fn a_refresh_answer_without_a_refresh_token_keeps_the_one_held() {
    // RFC 6749 §6: the server may answer a refresh without issuing a new refresh token.
    let clock = MockClock::new();
    let holder = holder_with_login(&clock);
    clock.advance(LIFETIME);
    let tokens =
        holder.get_or_refresh(|_| async { Ok(Grant::new("access-1").with_expires_in(LIFETIME)) }).await.unwrap();
    assert_eq!(access(&tokens), "access-1");
    assert_eq!(tokens.refresh_token().map(Credential::expose_secret), Some("refresh-0"));

    // A new one, when sent, replaces it.
    clock.advance(LIFETIME);
    let tokens =
        holder.get_or_refresh(|_| async { Ok(Grant::new("access-2").with_refresh_token("refresh-2")) }).await.unwrap();
    assert_eq!(tokens.refresh_token().map(Credential::expose_secret), Some("refresh-2"));
}

#[tokio::test]
async fn an_empty_holder_calls_the_closure_with_nothing() {
    let clock = MockClock::new();
    let holder: Holder = TokenHolder::with_clock(clock);
    let endpoint = Endpoint::new();
    let tokens = holder.get_or_refresh(endpoint.refresh()).await.unwrap();
    assert_eq!(access(&tokens), "access-1");
    assert_eq!(*endpoint.seen.lock(), [None]);
}

#[tokio::test]
async fn a_token_without_lifetime_is_only_refreshed_when_stale() {
    let clock = MockClock::new();
    let holder: Holder = TokenHolder::with_clock(clock.clone());
    let t0 = holder.set(Grant::new("forever"));
    let endpoint = Endpoint::new();
    clock.advance(Duration::from_secs(10 * 365 * 86_400));
    assert!(Arc::ptr_eq(&holder.get_or_refresh(endpoint.refresh()).await.unwrap(), &t0));
    assert_eq!(holder.time_until_refresh(), None);
    let t1 = holder.refresh_stale(&t0, endpoint.refresh()).await.unwrap();
    assert_eq!((access(&t1), endpoint.calls()), ("access-1", 1));
}

// -------------------------------------------------------------------------------------------
// Single flight
// -------------------------------------------------------------------------------------------

/// Spawns `n` tasks calling `get_or_refresh` (or `refresh_stale` with `stale`), opens the gate
/// once every task has at least started, and returns their results.
async fn pile_up(
    holder: &Holder,
    endpoint: &Endpoint,
    n: usize,
    stale: Option<Arc<Tokens>>,
) -> Vec<Result<Arc<Tokens>, RefreshError<Refused>>> {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let (holder, endpoint, stale) = (holder.clone(), endpoint.clone(), stale.clone());
        tasks.spawn(async move {
            match stale {
                Some(stale) => holder.refresh_stale(&stale, endpoint.refresh()).await,
                None => holder.get_or_refresh(endpoint.refresh()).await,
            }
        });
    }
    // Every caller has joined the one refresh before it may complete.
    tokio::time::timeout(GUARD, async {
        while holder.waiters() < n {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("every caller joins the refresh");
    assert_eq!(holder.waiters(), n);
    endpoint.open();
    let mut results = Vec::with_capacity(n);
    while let Some(joined) = tokio::time::timeout(GUARD, tasks.join_next()).await.expect("no task hangs") {
        results.push(joined.unwrap());
    }
    results
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_concurrent_callers_share_one_refresh() {
    for round in 0..20 {
        let clock = MockClock::new();
        let holder = holder_with_login(&clock);
        clock.advance(LIFETIME); // expired: everyone needs a new token
        let endpoint = Endpoint::gated();
        let results = pile_up(&holder, &endpoint, 100, None).await;
        assert_eq!(endpoint.calls(), 1, "round {round}");
        let first = results[0].as_ref().unwrap();
        assert_eq!(access(first), "access-1");
        for r in &results {
            assert!(Arc::ptr_eq(r.as_ref().unwrap(), first), "every caller gets the same tokens");
        }
        assert!(!holder.is_refreshing());
        assert_eq!(holder.waiters(), 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_waiter_gets_the_same_error_and_the_next_call_tries_again() {
    let clock = MockClock::new();
    let holder = holder_with_login(&clock);
    clock.advance(LIFETIME);
    let endpoint = Endpoint::gated();
    endpoint.fail.store(503, Ordering::SeqCst);
    let results = pile_up(&holder, &endpoint, 50, None).await;
    assert_eq!(endpoint.calls(), 1);
    let first = match &results[0] {
        Err(RefreshError::Failed(e)) => Arc::clone(e),
        other => panic!("{other:?}"),
    };
    assert_eq!(*first, Refused(1, 503));
    for r in &results {
        match r {
            Err(RefreshError::Failed(e)) => assert!(Arc::ptr_eq(e, &first), "one error, shared"),
            other => panic!("{other:?}"),
        }
    }
    let error = results[0].as_ref().unwrap_err();
    assert_eq!(error.to_string(), "token refresh failed");
    assert_eq!(std::error::Error::source(error).unwrap().to_string(), "refresh number 1 refused with 503");

    // Not poisoned: the old tokens are still held, and once the back-off has passed the next
    // caller starts a new attempt.
    assert_eq!(access(&holder.current().unwrap()), "access-0");
    endpoint.fail.store(0, Ordering::SeqCst);
    clock.set(holder.retry_at().expect("a 503 is retried after a back-off"));
    let tokens = holder.get_or_refresh(endpoint.refresh()).await.unwrap();
    assert_eq!((access(&tokens), endpoint.calls()), ("access-2", 2));
    assert_eq!(holder.retry_at(), None, "a success ends the back-off");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_panicking_refresh_fails_every_waiter_and_poisons_nothing() {
    let clock = MockClock::new();
    let holder = holder_with_login(&clock);
    clock.advance(LIFETIME);
    let endpoint = Endpoint::gated();
    endpoint.panic.store(true, Ordering::SeqCst);
    let results = pile_up(&holder, &endpoint, 20, None).await;
    assert_eq!(endpoint.calls(), 1);
    assert!(results.iter().all(|r| matches!(r, Err(RefreshError::Panicked))), "{results:?}");

    endpoint.panic.store(false, Ordering::SeqCst);
    let tokens = holder.get_or_refresh(endpoint.refresh()).await.unwrap();
    assert_eq!(access(&tokens), "access-2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_rejected_with_the_same_token_cause_one_refresh() {
    // By the client's clock the token is fresh; the server says it has expired (the device
    // slept, or the clocks disagree). Fifty requests fail with it and ask for a refresh.
    let clock = MockClock::new();
    let holder = holder_with_login(&clock);
    let stale = holder.get_or_refresh(Endpoint::new().refresh()).await.unwrap();
    let endpoint = Endpoint::gated();
    let results = pile_up(&holder, &endpoint, 50, Some(Arc::clone(&stale))).await;
    assert_eq!(endpoint.calls(), 1);
    let fresh = holder.current().unwrap();
    assert_eq!(access(&fresh), "access-1");
    assert!(results.iter().all(|r| Arc::ptr_eq(r.as_ref().unwrap(), &fresh)));

    // A straggler failing with the old token gets the new one without another refresh ...
    let again = holder.refresh_stale(&stale, endpoint.refresh()).await.unwrap();
    assert!(Arc::ptr_eq(&again, &fresh));
    assert_eq!(endpoint.calls(), 1);
    // ... while a rejection of the new token refreshes again.
    let newer = holder.refresh_stale(&fresh, endpoint.refresh()).await.unwrap();
    assert_eq!((access(&newer), endpoint.calls()), ("access-2", 2));
}

#[tokio::test]
async fn a_stale_token_from_the_past_yields_the_current_one_unless_that_is_due_too() {
    let clock = MockClock::new();
    let holder = holder_with_login(&clock);
    let stale = holder.current().unwrap();
    let endpoint = Endpoint::new();
    let current = holder.set(Grant::new("access-x").with_refresh_token("refresh-x").with_expires_in(LIFETIME));
    assert!(Arc::ptr_eq(&holder.refresh_stale(&stale, endpoint.refresh()).await.unwrap(), &current));
    assert_eq!(endpoint.calls(), 0);
    clock.advance(LIFETIME);
    let refreshed = holder.refresh_stale(&stale, endpoint.refresh()).await.unwrap();
    assert_eq!((access(&refreshed), endpoint.calls()), ("access-1", 1));
    assert_eq!(*endpoint.seen.lock(), [Some("refresh-x".to_owned())]);
}

// -------------------------------------------------------------------------------------------
// Cancellation, login and logout during a refresh
// -------------------------------------------------------------------------------------------

type Call = Pin<Box<dyn Future<Output = Result<Arc<Tokens>, RefreshError<Refused>>> + Send>>;

fn call(holder: &Holder, endpoint: &Endpoint) -> Call {
    let (holder, endpoint) = (holder.clone(), endpoint.clone());
    Box::pin(async move { holder.get_or_refresh(endpoint.refresh()).await })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_caller_that_started_the_refresh_strands_no_waiter() {
    let clock = MockClock::new();
    let holder = holder_with_login(&clock);
    clock.advance(LIFETIME);
    let endpoint = Endpoint::gated();

    // The leader starts the refresh, which waits at the gate.
    let mut leader = call(&holder, &endpoint);
    assert!(poll_once(leader.as_mut()).is_pending());
    assert_eq!(endpoint.calls(), 1);
    assert!(holder.is_refreshing());

    // Ten waiters join it and park in their own tasks.
    let mut waiters = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let mut waiter = call(&holder, &endpoint);
        assert!(poll_once(waiter.as_mut()).is_pending());
        waiters.spawn(waiter);
    }
    tokio::task::yield_now().await;

    // The leader is cancelled (a request timeout); the refresh goes on for the waiters.
    drop(leader);
    assert!(holder.is_refreshing());
    assert_eq!(endpoint.dropped.load(Ordering::SeqCst), 0, "the refresh future is not dropped");
    endpoint.open();
    let mut n = 0;
    while let Some(joined) = tokio::time::timeout(GUARD, waiters.join_next()).await.expect("no waiter hangs") {
        assert_eq!(access(&joined.unwrap().unwrap()), "access-1");
        n += 1;
    }
    assert_eq!((n, endpoint.calls()), (10, 1));
    assert_eq!(access(&holder.current().unwrap()), "access-1");
}

#[tokio::test]
async fn when_every_caller_is_gone_the_refresh_is_dropped_and_the_next_call_starts_afresh() {
    let clock = MockClock::new();
    let holder = holder_with_login(&clock);
    clock.advance(LIFETIME);
    let endpoint = Endpoint::gated();
    let mut first = call(&holder, &endpoint);
    let mut second = call(&holder, &endpoint);
    assert!(poll_once(first.as_mut()).is_pending());
    assert!(poll_once(second.as_mut()).is_pending());
    assert_eq!(endpoint.calls(), 1);
    drop(first);
    drop(second);
    assert_eq!(endpoint.dropped.load(Ordering::SeqCst), 1, "the abandoned refresh future is dropped");
    assert!(!holder.is_refreshing());
    assert_eq!(access(&holder.current().unwrap()), "access-0", "nothing was installed");

    endpoint.open();
    let tokens = tokio::time::timeout(GUARD, call(&holder, &endpoint)).await.unwrap().unwrap();
    assert_eq!((access(&tokens), endpoint.calls()), ("access-2", 2));
    // The new attempt was handed the same refresh token (the server's grace window answers a
    // replay of a spent one with the same pair).
    assert_eq!(*endpoint.seen.lock(), [Some("refresh-0".to_owned()), Some("refresh-0".to_owned())]);
}

#[tokio::test]
async fn a_login_during_a_refresh_wins_over_its_result() {
    let clock = MockClock::new();
    let holder = holder_with_login(&clock);
    clock.advance(LIFETIME);
    let endpoint = Endpoint::gated();
    let mut waiter = call(&holder, &endpoint);
    assert!(poll_once(waiter.as_mut()).is_pending());

    let login = holder.set(Grant::new("access-login").with_expires_in(LIFETIME));
    assert!(!holder.is_refreshing(), "new callers do not join the superseded refresh");
    endpoint.open();
    let got = tokio::time::timeout(GUARD, waiter).await.unwrap().unwrap();
    assert!(Arc::ptr_eq(&got, &login));
    assert!(Arc::ptr_eq(&holder.current().unwrap(), &login));
}

#[tokio::test]
async fn a_logout_during_a_refresh_discards_its_result() {
    let clock = MockClock::new();
    let holder = holder_with_login(&clock);
    clock.advance(LIFETIME);
    let endpoint = Endpoint::gated();
    let mut waiter = call(&holder, &endpoint);
    assert!(poll_once(waiter.as_mut()).is_pending());

    assert_eq!(access(&holder.clear().unwrap()), "access-0");
    endpoint.open();
    let got = tokio::time::timeout(GUARD, waiter).await.unwrap();
    assert!(matches!(got, Err(RefreshError::Cleared)), "{got:?}");
    assert!(holder.current().is_none());
}

#[tokio::test]
async fn a_closure_may_use_the_holder_without_deadlocking() {
    // The closure runs outside the holder's lock, so it can read the holder.
    let clock = MockClock::new();
    let holder = holder_with_login(&clock);
    clock.advance(LIFETIME);
    let inside = holder.clone();
    let tokens = tokio::time::timeout(
        GUARD,
        holder.get_or_refresh(move |old| {
            assert!(inside.is_refreshing());
            let same = inside.current().zip(old).is_some_and(|(a, b)| Arc::ptr_eq(&a, &b));
            async move {
                assert!(same);
                Ok(Grant::new("reentrant").with_expires_in(LIFETIME))
            }
        }),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(access(&tokens), "reentrant");
}

// -------------------------------------------------------------------------------------------
// Back-off after failures
// -------------------------------------------------------------------------------------------

/// Fails the due refresh of `holder` with `status` and returns the delay until the holder
/// allows the next attempt, checking that the endpoint was called exactly once for it.
async fn fail_once(holder: &Holder, clock: &MockClock, endpoint: &Endpoint, status: u16) -> Duration {
    let calls = endpoint.calls();
    endpoint.fail.store(status, Ordering::SeqCst);
    let failed_at = clock.now();
    match holder.get_or_refresh(endpoint.refresh()).await {
        Err(RefreshError::Failed(e)) => assert_eq!(e.1, status),
        other => panic!("{other:?}"),
    }
    assert_eq!(endpoint.calls(), calls + 1);
    holder.retry_at().expect("a transient failure schedules a retry").duration_since(failed_at)
}

#[tokio::test]
async fn a_503_is_retried_after_a_jittered_delay_within_the_bounds_then_succeeds() {
    let clock = MockClock::new();
    let holder = holder_with_login(&clock);
    assert_eq!(holder.backoff(), Backoff::DEFAULT);
    clock.advance(LIFETIME - Duration::from_secs(60)); // due, not yet expired
    let endpoint = Endpoint::new();
    let delay = fail_once(&holder, &clock, &endpoint, 503).await;
    assert!(
        (Duration::from_millis(500)..=Duration::from_secs(1)).contains(&delay),
        "the first delay is between half the initial 1 s and 1 s: {delay:?}"
    );

    // During the back-off the endpoint is left alone: callers get the held token, still valid.
    endpoint.fail.store(0, Ordering::SeqCst);
    clock.advance(delay - Duration::from_nanos(1));
    let tokens = holder.get_or_refresh(endpoint.refresh()).await.unwrap();
    assert_eq!((access(&tokens), endpoint.calls()), ("access-0", 1));
    assert_eq!(holder.time_until_refresh(), Some(Duration::from_nanos(1)), "a scheduling loop backs off too");

    // At `retry_at` the next call refreshes.
    clock.advance(Duration::from_nanos(1));
    let tokens = holder.get_or_refresh(endpoint.refresh()).await.unwrap();
    assert_eq!((access(&tokens), endpoint.calls()), ("access-2", 2));
    assert_eq!(holder.retry_at(), None);
}

#[tokio::test]
async fn without_a_usable_token_a_caller_in_the_back_off_gets_backing_off_not_a_request() {
    let clock = MockClock::new();
    let holder = holder_with_login(&clock);
    clock.advance(LIFETIME); // expired by the local clock
    let endpoint = Endpoint::new();
    fail_once(&holder, &clock, &endpoint, 502).await;
    let retry_at = holder.retry_at().unwrap();
    for result in [
        holder.get_or_refresh(endpoint.refresh()).await,
        holder.refresh_stale(&holder.current().unwrap(), endpoint.refresh()).await,
    ] {
        match result {
            Err(RefreshError::BackingOff { retry_at: at, last }) => assert_eq!((at, last.0), (retry_at, 1)),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(endpoint.calls(), 1, "no request during the back-off");
}

#[tokio::test]
async fn repeated_failures_grow_the_delay_up_to_the_maximum_and_never_beyond() {
    let backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(8));
    let clock = MockClock::new();
    let holder = holder_with_login(&clock).with_backoff(backoff);
    clock.advance(LIFETIME);
    let endpoint = Endpoint::new();
    let mut delays = Vec::new();
    for failures in 1..=12_u32 {
        let delay = fail_once(&holder, &clock, &endpoint, 500).await;
        let ceiling = Duration::from_secs(1 << (failures - 1).min(3));
        assert!(
            (ceiling / 2..=ceiling).contains(&delay),
            "failure {failures}: {delay:?} outside [{:?}, {ceiling:?}]",
            ceiling / 2
        );
        assert!(delay <= backoff.max(), "failure {failures}: {delay:?}");
        delays.push(delay);
        clock.advance(delay);
    }
    // Each window starts where the previous one ended until the cap: the delay grows.
    assert!(delays[3] >= Duration::from_secs(4) && delays[0] <= Duration::from_secs(1), "{delays:?}");
    assert!(delays[4..].iter().all(|d| *d >= Duration::from_secs(4)), "at the cap: {delays:?}");
    // A success resets the count: the next failure starts from the initial delay again.
    endpoint.fail.store(0, Ordering::SeqCst);
    holder.get_or_refresh(endpoint.refresh()).await.unwrap();
    clock.advance(LIFETIME);
    assert!(fail_once(&holder, &clock, &endpoint, 500).await <= Duration::from_secs(1));
}

#[tokio::test]
async fn two_holders_failing_together_do_not_come_back_together() {
    let clock = MockClock::new();
    let (a, b) = (holder_with_login(&clock), holder_with_login(&clock));
    clock.advance(LIFETIME);
    let endpoint = Endpoint::new();
    let mut same = 0;
    for _ in 0..8 {
        let (da, db) = (fail_once(&a, &clock, &endpoint, 503).await, fail_once(&b, &clock, &endpoint, 503).await);
        same += usize::from(da == db);
        clock.advance(da.max(db));
    }
    // Each delay is drawn from at least half a second of nanoseconds (odds of a tie ~1e-9):
    // equal draws mean no jitter.
    assert_eq!(same, 0, "{same} of 8 delays were identical");
}

#[tokio::test]
async fn a_clock_stepped_back_behind_the_failure_ends_the_back_off() {
    let clock = MockClock::new();
    let holder = holder_with_login(&clock);
    clock.advance(LIFETIME);
    let endpoint = Endpoint::new();
    fail_once(&holder, &clock, &endpoint, 503).await;
    // Behind the failure its age is unknown (as for a token's): try rather than wait longer
    // than the maximum.
    clock.rewind(Duration::from_secs(1));
    endpoint.fail.store(0, Ordering::SeqCst);
    assert!(holder.get_or_refresh(endpoint.refresh()).await.is_ok());
    assert_eq!(endpoint.calls(), 2);
}

#[tokio::test]
async fn a_401_is_returned_at_once_and_never_retried() {
    let clock = MockClock::new();
    let holder = holder_with_login(&clock);
    clock.advance(LIFETIME);
    let endpoint = Endpoint::new();
    endpoint.fail.store(401, Ordering::SeqCst);
    let first = match holder.get_or_refresh(endpoint.refresh()).await {
        Err(RefreshError::Failed(e)) => e,
        other => panic!("{other:?}"),
    };
    assert_eq!(*first, Refused(1, 401));
    assert_eq!(holder.retry_at(), None, "no retry is scheduled");
    assert_eq!(holder.time_until_refresh(), None);
    assert!(Arc::ptr_eq(&holder.rejection().unwrap(), &first));

    // However long the caller waits, the rejected refresh token is not sent again.
    clock.advance(Duration::from_secs(24 * 3600));
    endpoint.fail.store(0, Ordering::SeqCst);
    let stale = holder.current().unwrap();
    for result in
        [holder.get_or_refresh(endpoint.refresh()).await, holder.refresh_stale(&stale, endpoint.refresh()).await]
    {
        match result {
            Err(RefreshError::Failed(e)) => assert!(Arc::ptr_eq(&e, &first), "the same rejection, at once"),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(endpoint.calls(), 1);

    // A new login starts over.
    holder.set(Grant::new("login-2").with_refresh_token("refresh-login-2").with_expires_in(LIFETIME));
    assert!(holder.rejection().is_none());
    clock.advance(LIFETIME);
    assert_eq!(access(&holder.get_or_refresh(endpoint.refresh()).await.unwrap()), "access-2");
}

#[tokio::test]
async fn other_4xx_are_rejections_and_408_429_5xx_are_transient() {
    for (status, transient) in
        [(400, false), (403, false), (404, false), (408, true), (429, true), (500, true), (504, true)]
    {
        let clock = MockClock::new();
        let holder = holder_with_login(&clock);
        clock.advance(LIFETIME);
        let endpoint = Endpoint::new();
        endpoint.fail.store(status, Ordering::SeqCst);
        assert!(holder.get_or_refresh(endpoint.refresh()).await.is_err());
        assert_eq!(holder.retry_at().is_some(), transient, "{status}");
        assert_eq!(holder.rejection().is_some(), !transient, "{status}");
    }
}
