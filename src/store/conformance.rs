//! The conformance suite every store must pass (feature `test-util`).
//!
//! One public function per clause of the contract, grouped by trait: the [`SessionStore`]
//! checks, the [`TokenStore`] checks (refresh tokens, denylist) and the [`BackupStore`] checks
//! (scan, restore, and a round trip through a [`MemoryStore`](crate::MemoryStore)). Each takes
//! a fresh, empty store and panics on the first violation, naming the clause.
//!
//! Run them from a store's tests with [`conformance_tests!`](crate::conformance_tests), which
//! makes one `#[tokio::test]` per check (so a failure names its clause and the rest still run):
//!
//! ```ignore
//! // tests/my_store.rs
//! sessionkit::conformance_tests!(my_store, MyStore::new(), tokens, backup);
//! ```
//!
//! or all of them in one test with [`run_all`].

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::Timestamp;
use crate::error::{ExpiryReason, RevocationReason, StoreError};
use crate::expiry;
use crate::policy::{Limit, LimitPolicy};
use crate::session::{DataPatch, Metadata, SessionData, SessionId, SessionRecord, UserId};
use crate::store::{
    AccessDenial, BackupStore, DataOutcome, InsertOutcome, Lookup, REFRESH_REUSE_HISTORY, RefreshOutcome, Revocation,
    ScanCursor, SessionStore, StoredItem, Successor, TokenStore, TouchPolicy,
};
use crate::token::{Route, SessionToken, TokenDigest};

const IDLE: Duration = Duration::from_secs(30 * 60);
const ABSOLUTE: Duration = Duration::from_secs(8 * 3600);
const REMEMBER_IDLE: Duration = Duration::from_secs(7 * 86400);
const SECOND: Duration = Duration::from_secs(1);

/// 2024-01-01T00:00:00Z: the suite's epoch. Stores must not read a clock of their own.
pub const T0: Timestamp = Timestamp::from_unix_nanos(1_704_067_200 * 1_000_000_000);

/// The renewal policy the checks use: 60-second touch interval, counting requests.
pub const POLICY: TouchPolicy = TouchPolicy {
    idle_timeout: IDLE,
    remember_me_idle_timeout: REMEMBER_IDLE,
    interval: Duration::from_secs(60),
    count_request: true,
};

/// How long the checks denylist revoked sessions' access tokens.
const DENY_FOR: Duration = Duration::from_secs(15 * 60);

/// A revocation at `now` that denylists access tokens for 15 minutes.
pub fn revocation(reason: RevocationReason, now: Timestamp) -> Revocation {
    Revocation { reason, at: now, deny_access_until: Some(now.saturating_add(DENY_FOR)) }
}

fn evict_at(now: Timestamp) -> Revocation {
    revocation(RevocationReason::Evicted, now)
}

fn at(d: Duration) -> Timestamp {
    T0.saturating_add(d)
}

fn user(name: &str) -> UserId {
    UserId::new(name).unwrap()
}

/// A token digest with the route of `like` (another of the same user's digests), as the
/// manager makes them: a store sharded by user may rely on every digest and id of a session
/// carrying the user's [`Route`].
pub fn digest_like(like: &TokenDigest) -> TokenDigest {
    SessionToken::generate_routed(Some(like.route())).unwrap().1
}

/// A fresh record for `user` created at `now` with the suite's lifetimes; its digest and id
/// carry the user's [`Route`], as the manager's do.
pub fn record(user: &UserId, now: Timestamp) -> SessionRecord {
    let route = Some(Route::of_user(user));
    let (_, digest) = SessionToken::generate_routed(route).unwrap();
    let (idle_deadline, absolute_deadline) = expiry::initial_deadlines(now, IDLE, ABSOLUTE);
    SessionRecord {
        id: SessionId::generate_routed(route).unwrap(),
        digest,
        user: user.clone(),
        created_at: now,
        last_seen_at: now,
        idle_deadline,
        absolute_deadline,
        remember_me: false,
        request_count: 0,
        generation: 0,
        metadata: Metadata::default(),
        data: SessionData::default(),
    }
}

async fn insert_ok<S: SessionStore>(
    store: &S,
    r: &SessionRecord,
    limit: Option<Limit>,
    now: Timestamp,
) -> Vec<SessionRecord> {
    match store.insert(r.clone(), None, limit, evict_at(now)).await.expect("insert failed") {
        InsertOutcome::Inserted { evicted } => evicted,
        InsertOutcome::LimitReached => panic!("insert: unexpected LimitReached"),
    }
}

/// The session stored under `d`, live or expired, read without counting or renewing it
/// (a `touch` that is never due and counts nothing).
async fn get<S: SessionStore>(store: &S, d: &TokenDigest) -> Option<SessionRecord> {
    let peek = TouchPolicy { interval: Duration::MAX, count_request: false, ..POLICY };
    match store.touch(d, T0, peek).await.unwrap() {
        Lookup::Live(r) => Some(r),
        Lookup::Expired { record, .. } => Some(*record),
        Lookup::Revoked(_) | Lookup::NotFound => None,
    }
}

/// How many of `ids` are stored (live or expired, not yet removed).
async fn stored<S: SessionStore>(store: &S, ids: impl IntoIterator<Item = SessionId>) -> usize {
    let mut n = 0;
    for id in ids {
        n += usize::from(store.get_by_id(&id).await.unwrap().is_some());
    }
    n
}

async fn live<S: SessionStore>(store: &S, d: &TokenDigest, now: Timestamp) -> SessionRecord {
    match store.touch(d, now, POLICY).await.unwrap() {
        Lookup::Live(r) => r,
        other => panic!("touch: expected Live, got {other:?}"),
    }
}

/// Runs every check of all three traits, each on a fresh store from `make`, one after another
/// (the first failure stops the run). Prefer [`conformance_tests!`](crate::conformance_tests),
/// which makes one test per check.
pub async fn run_all<S, F, Fut>(make: F)
where
    S: TokenStore + BackupStore + Clone,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    insert_then_lookup(make().await).await;
    insert_never_overwrites(make().await).await;
    unknown_is_not_found(make().await).await;
    touch_counts_and_renews_when_due(make().await).await;
    deadlines_are_exact(make().await).await;
    renewal_never_passes_absolute(make().await).await;
    backwards_clock_moves_nothing_back(make().await).await;
    remove_is_idempotent_and_remembered(make().await).await;
    remove_by_digest_is_remove(make().await).await;
    remove_user_keeps_the_chosen_session(make().await).await;
    list_user_is_live_and_ordered(make().await).await;
    limit_evict_oldest(make().await).await;
    limit_evict_lru(make().await).await;
    limit_reject(make().await).await;
    expired_sessions_do_not_count_against_the_limit(make().await).await;
    rotate_rekeys_the_session(make().await).await;
    rotate_refuses_dead_and_taken(make().await).await;
    update_data_is_capped(make().await).await;
    remove_expired_cleans_every_index(make().await).await;
    remove_expired_spares_renewed_sessions(make().await).await;
    concurrent_logins_never_exceed_the_limit(make().await).await;
    concurrent_rotations_have_one_winner(make().await).await;
    concurrent_patches_are_all_applied(make().await).await;
    concurrent_revoke_all_and_logins(make().await).await;
    refresh_rotates_replays_and_detects_reuse(make().await).await;
    refresh_grace_is_a_strict_window(make().await).await;
    refresh_history_is_bounded(make().await).await;
    refresh_of_dead_sessions(make().await).await;
    rotate_with_refresh_replaces_the_family(make().await).await;
    denylist_follows_revocations(make().await).await;
    rotation_supersedes_older_access_tokens(make().await).await;
    concurrent_refreshes_fork_nothing(make().await).await;
    scan_visits_everything_once(make().await).await;
    restore_round_trips_a_scan(make().await).await;
    restore_is_all_or_nothing(make().await).await;
    restore_skips_what_is_over(make().await).await;
    backup_round_trips_through_another_store(make().await).await;
    denylist_entries_round_trip(make().await).await;
}

/// Expands to one `#[tokio::test]` per conformance check, in a module named `$name`, so that a
/// failure names the clause it broke and the other checks still run.
///
/// `conformance_tests!(name, store)` or `conformance_tests!(name, { statements; } => store)`,
/// followed by `, tokens` (also the [`TokenStore`] checks), `, backup` (also the
/// [`BackupStore`] checks) or `, tokens, backup`. The statements run first in each test (start
/// a server and bind it, so that it lives as long as the test; `return` to skip) and the store
/// expression (which may `.await`) makes the test's store; both see the enclosing module's
/// items (`use super::*` is in scope). The tests run on a two-worker multi-threaded tokio
/// runtime, so the crate using the macro needs tokio with `macros` and `rt-multi-thread`.
///
/// ```ignore
/// sessionkit::conformance_tests!(memory, sessionkit::MemoryStore::new(), tokens, backup);
/// sessionkit::conformance_tests!(remote, {
///     let Some(server) = TestServer::start() else { return };
/// } => RemoteStore::connect(&server.url()).await.unwrap(), tokens, backup);
/// ```
#[macro_export]
macro_rules! conformance_tests {
    ($name:ident, { $($setup:stmt;)* } => $store:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            $crate::__conformance_each!([$($setup;)*], $store, insert_then_lookup insert_never_overwrites unknown_is_not_found touch_counts_and_renews_when_due deadlines_are_exact renewal_never_passes_absolute backwards_clock_moves_nothing_back remove_is_idempotent_and_remembered remove_by_digest_is_remove remove_user_keeps_the_chosen_session list_user_is_live_and_ordered limit_evict_oldest limit_evict_lru limit_reject expired_sessions_do_not_count_against_the_limit rotate_rekeys_the_session rotate_refuses_dead_and_taken update_data_is_capped remove_expired_cleans_every_index remove_expired_spares_renewed_sessions concurrent_logins_never_exceed_the_limit concurrent_rotations_have_one_winner concurrent_patches_are_all_applied concurrent_revoke_all_and_logins);
        }
    };
    ($name:ident, { $($setup:stmt;)* } => $store:expr, tokens) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            $crate::__conformance_each!([$($setup;)*], $store, insert_then_lookup insert_never_overwrites unknown_is_not_found touch_counts_and_renews_when_due deadlines_are_exact renewal_never_passes_absolute backwards_clock_moves_nothing_back remove_is_idempotent_and_remembered remove_by_digest_is_remove remove_user_keeps_the_chosen_session list_user_is_live_and_ordered limit_evict_oldest limit_evict_lru limit_reject expired_sessions_do_not_count_against_the_limit rotate_rekeys_the_session rotate_refuses_dead_and_taken update_data_is_capped remove_expired_cleans_every_index remove_expired_spares_renewed_sessions concurrent_logins_never_exceed_the_limit concurrent_rotations_have_one_winner concurrent_patches_are_all_applied concurrent_revoke_all_and_logins refresh_rotates_replays_and_detects_reuse refresh_grace_is_a_strict_window refresh_history_is_bounded refresh_of_dead_sessions rotate_with_refresh_replaces_the_family denylist_follows_revocations rotation_supersedes_older_access_tokens concurrent_refreshes_fork_nothing);
        }
    };
    ($name:ident, { $($setup:stmt;)* } => $store:expr, backup) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            $crate::__conformance_each!([$($setup;)*], $store, insert_then_lookup insert_never_overwrites unknown_is_not_found touch_counts_and_renews_when_due deadlines_are_exact renewal_never_passes_absolute backwards_clock_moves_nothing_back remove_is_idempotent_and_remembered remove_by_digest_is_remove remove_user_keeps_the_chosen_session list_user_is_live_and_ordered limit_evict_oldest limit_evict_lru limit_reject expired_sessions_do_not_count_against_the_limit rotate_rekeys_the_session rotate_refuses_dead_and_taken update_data_is_capped remove_expired_cleans_every_index remove_expired_spares_renewed_sessions concurrent_logins_never_exceed_the_limit concurrent_rotations_have_one_winner concurrent_patches_are_all_applied concurrent_revoke_all_and_logins scan_visits_everything_once restore_round_trips_a_scan restore_is_all_or_nothing restore_skips_what_is_over backup_round_trips_through_another_store denylist_entries_round_trip);
        }
    };
    ($name:ident, { $($setup:stmt;)* } => $store:expr, tokens, backup) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            $crate::__conformance_each!([$($setup;)*], $store, insert_then_lookup insert_never_overwrites unknown_is_not_found touch_counts_and_renews_when_due deadlines_are_exact renewal_never_passes_absolute backwards_clock_moves_nothing_back remove_is_idempotent_and_remembered remove_by_digest_is_remove remove_user_keeps_the_chosen_session list_user_is_live_and_ordered limit_evict_oldest limit_evict_lru limit_reject expired_sessions_do_not_count_against_the_limit rotate_rekeys_the_session rotate_refuses_dead_and_taken update_data_is_capped remove_expired_cleans_every_index remove_expired_spares_renewed_sessions concurrent_logins_never_exceed_the_limit concurrent_rotations_have_one_winner concurrent_patches_are_all_applied concurrent_revoke_all_and_logins refresh_rotates_replays_and_detects_reuse refresh_grace_is_a_strict_window refresh_history_is_bounded refresh_of_dead_sessions rotate_with_refresh_replaces_the_family denylist_follows_revocations rotation_supersedes_older_access_tokens concurrent_refreshes_fork_nothing scan_visits_everything_once restore_round_trips_a_scan restore_is_all_or_nothing restore_skips_what_is_over backup_round_trips_through_another_store denylist_entries_round_trip);
        }
    };
    ($name:ident, $store:expr $(, $extra:ident)*) => {
        $crate::conformance_tests!($name, {} => $store $(, $extra)*);
    };
}

/// One test per check name (used by [`conformance_tests!`]).
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_each {
    ($setup:tt, $store:expr, $($check:ident)*) => {
        $( $crate::__conformance_test!($check, $setup, $store); )*
    };
}

/// One test (used by [`conformance_tests!`]).
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_test {
    ($check:ident, [$($setup:stmt;)*], $store:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $check() {
            $($setup;)*
            let store = $store;
            $crate::store::conformance::$check(store).await;
        }
    };
}

pub async fn insert_then_lookup<S: SessionStore>(store: S) {
    let alice = user("alice");
    let mut r = record(&alice, T0);
    r.remember_me = true;
    r.metadata = Metadata::new(Some([192, 0, 2, 7].into()), Some(Arc::from("agent/1.0")));
    r.data = SessionData::from_map(serde_json::json!({"role": "admin"}).as_object().unwrap().clone());
    assert!(insert_ok(&store, &r, None, T0).await.is_empty());
    assert_eq!(get(&store, &r.digest).await.as_ref(), Some(&r), "the digest finds what was inserted");
    assert_eq!(store.get_by_id(&r.id).await.unwrap().as_ref(), Some(&r), "get_by_id returns what was inserted");
    let seen = live(&store, &r.digest, at(SECOND)).await;
    assert_eq!(seen.id, r.id);
    assert_eq!(seen.metadata, r.metadata);
    assert_eq!(seen.data, r.data);
    assert_eq!(seen.request_count, 1, "touch counts the request");
}

pub async fn insert_never_overwrites<S: SessionStore>(store: S) {
    let (alice, bob) = (user("alice"), user("bob"));
    let r = record(&alice, T0);
    insert_ok(&store, &r, None, T0).await;
    let mut same_digest = record(&alice, T0);
    same_digest.digest = r.digest;
    let same_digest_id = same_digest.id;
    assert!(
        matches!(store.insert(same_digest, None, None, evict_at(T0)).await, Err(StoreError::Conflict)),
        "digest taken"
    );
    let mut same_id = record(&alice, T0);
    same_id.id = r.id;
    let same_id_digest = same_id.digest;
    assert!(matches!(store.insert(same_id, None, None, evict_at(T0)).await, Err(StoreError::Conflict)), "id taken");
    assert_eq!(get(&store, &r.digest).await.map(|x| x.user), Some(alice.clone()), "the first session is intact");
    assert_eq!(get(&store, &same_id_digest).await, None, "nothing stored on conflict");
    assert_eq!(store.get_by_id(&same_digest_id).await.unwrap(), None, "nothing stored on conflict");
    assert_eq!(store.list_user(&alice, T0).await.unwrap().len(), 1, "nothing stored on conflict");
    assert!(store.list_user(&bob, T0).await.unwrap().is_empty());
}

pub async fn unknown_is_not_found<S: SessionStore>(store: S) {
    let (_, d) = SessionToken::generate().unwrap();
    assert_eq!(store.touch(&d, T0, POLICY).await.unwrap(), Lookup::NotFound);
    assert_eq!(get(&store, &d).await, None);
    let id = SessionId::generate().unwrap();
    assert_eq!(store.get_by_id(&id).await.unwrap(), None);
    assert_eq!(
        store.remove(&id, revocation(RevocationReason::Admin, T0)).await.unwrap(),
        None,
        "removing nothing is fine"
    );
    assert!(
        store.remove_user(&user("nobody"), None, revocation(RevocationReason::LogoutAll, T0)).await.unwrap().is_empty()
    );
    assert!(store.list_user(&user("nobody"), T0).await.unwrap().is_empty());
    assert_eq!(store.update_data(&id, &DataPatch::new().set("a", 1), 100, T0).await.unwrap(), DataOutcome::NotFound);
}

pub async fn touch_counts_and_renews_when_due<S: SessionStore>(store: S) {
    let r = record(&user("alice"), T0);
    insert_ok(&store, &r, None, T0).await;
    let a = live(&store, &r.digest, at(30 * SECOND)).await;
    assert_eq!(a.idle_deadline, r.idle_deadline, "within the touch interval: no renewal");
    assert_eq!(a.last_seen_at, T0);
    assert_eq!(a.request_count, 1);
    let b = live(&store, &r.digest, at(60 * SECOND)).await;
    assert_eq!(b.last_seen_at, at(60 * SECOND), "renewed once the interval has passed");
    assert_eq!(b.idle_deadline, at(60 * SECOND + IDLE));
    assert_eq!(b.request_count, 2);
    let quiet = TouchPolicy { count_request: false, ..POLICY };
    let Lookup::Live(c) = store.touch(&r.digest, at(61 * SECOND), quiet).await.unwrap() else { panic!() };
    assert_eq!(c.request_count, 2, "count_request: false does not count");
    let forced = TouchPolicy { interval: Duration::ZERO, count_request: false, ..POLICY };
    let Lookup::Live(d) = store.touch(&r.digest, at(62 * SECOND), forced).await.unwrap() else { panic!() };
    assert_eq!(d.idle_deadline, at(62 * SECOND + IDLE), "interval zero always renews");
    assert_eq!(get(&store, &r.digest).await.unwrap().idle_deadline, d.idle_deadline, "renewal is stored");
}

pub async fn deadlines_are_exact<S: SessionStore>(store: S) {
    let r = record(&user("alice"), T0);
    insert_ok(&store, &r, None, T0).await;
    let one_ns = Duration::from_nanos(1);
    let quiet = TouchPolicy { interval: Duration::MAX, ..POLICY };
    assert!(matches!(store.touch(&r.digest, at(IDLE - one_ns), quiet).await.unwrap(), Lookup::Live(_)));
    assert_eq!(store.touch(&r.digest, at(IDLE), quiet).await.unwrap().expired_reason(), Some(ExpiryReason::Idle));
    assert_eq!(
        store.touch(&r.digest, at(IDLE + one_ns), quiet).await.unwrap().expired_reason(),
        Some(ExpiryReason::Idle)
    );
    assert_eq!(get(&store, &r.digest).await.unwrap().request_count, 1, "an expired lookup changes nothing");

    let mut busy = record(&user("bob"), T0);
    busy.idle_deadline = busy.absolute_deadline;
    insert_ok(&store, &busy, None, T0).await;
    assert!(matches!(store.touch(&busy.digest, at(ABSOLUTE - one_ns), quiet).await.unwrap(), Lookup::Live(_)));
    assert_eq!(
        store.touch(&busy.digest, at(ABSOLUTE), quiet).await.unwrap().expired_reason(),
        Some(ExpiryReason::Absolute)
    );
    assert_eq!(
        store.touch(&r.digest, at(ABSOLUTE), quiet).await.unwrap().expired_reason(),
        Some(ExpiryReason::Absolute),
        "absolute is reported before idle"
    );
}

pub async fn renewal_never_passes_absolute<S: SessionStore>(store: S) {
    let r = record(&user("alice"), T0);
    insert_ok(&store, &r, None, T0).await;
    // Keep the session busy every 20 minutes up to 10 minutes before its absolute deadline.
    let mut t = Duration::ZERO;
    while t + Duration::from_secs(1200) < ABSOLUTE - Duration::from_secs(600) {
        t += Duration::from_secs(1200);
        live(&store, &r.digest, at(t)).await;
    }
    let last = live(&store, &r.digest, at(ABSOLUTE - Duration::from_secs(600))).await;
    assert_eq!(last.idle_deadline, r.absolute_deadline, "idle deadline capped by the absolute one");
    assert_eq!(
        store.touch(&r.digest, at(ABSOLUTE), POLICY).await.unwrap().expired_reason(),
        Some(ExpiryReason::Absolute)
    );
}

pub async fn backwards_clock_moves_nothing_back<S: SessionStore>(store: S) {
    let r = record(&user("alice"), T0);
    insert_ok(&store, &r, None, T0).await;
    let ahead = live(&store, &r.digest, at(Duration::from_secs(600))).await;
    let back = live(&store, &r.digest, at(Duration::from_secs(300))).await;
    assert_eq!(back.last_seen_at, ahead.last_seen_at, "last_seen_at never moves back");
    assert_eq!(back.idle_deadline, ahead.idle_deadline, "idle deadline never moves back");
    let before_creation = live(&store, &r.digest, T0.saturating_sub(Duration::from_secs(3600))).await;
    assert_eq!(before_creation.idle_deadline, ahead.idle_deadline);
}

pub async fn remove_is_idempotent_and_remembered<S: SessionStore>(store: S) {
    let r = record(&user("alice"), T0);
    insert_ok(&store, &r, None, T0).await;
    let removed = store.remove(&r.id, revocation(RevocationReason::Logout, at(SECOND))).await.unwrap();
    assert_eq!(removed.map(|x| x.id), Some(r.id));
    assert_eq!(
        store.remove(&r.id, revocation(RevocationReason::Logout, at(SECOND))).await.unwrap(),
        None,
        "idempotent"
    );
    assert_eq!(
        store.touch(&r.digest, at(2 * SECOND), POLICY).await.unwrap(),
        Lookup::Revoked(RevocationReason::Logout)
    );
    assert_eq!(get(&store, &r.digest).await, None);
    assert_eq!(store.get_by_id(&r.id).await.unwrap(), None);
    assert!(store.list_user(&r.user, at(SECOND)).await.unwrap().is_empty());
    // After the absolute deadline the revocation may be forgotten, never reported as live.
    assert!(!matches!(store.touch(&r.digest, at(ABSOLUTE), POLICY).await.unwrap(), Lookup::Live(_)));
    store.remove_expired(at(ABSOLUTE + SECOND), usize::MAX).await.unwrap();
    assert_eq!(store.touch(&r.digest, at(ABSOLUTE + SECOND), POLICY).await.unwrap(), Lookup::NotFound);
}

pub async fn remove_by_digest_is_remove<S: SessionStore>(store: S) {
    let r = record(&user("alice"), T0);
    let other = record(&user("alice"), T0);
    insert_ok(&store, &r, None, T0).await;
    insert_ok(&store, &other, None, T0).await;
    let removed = store.remove_by_digest(&r.digest, revocation(RevocationReason::Logout, at(SECOND))).await.unwrap();
    assert_eq!(removed.map(|x| x.id), Some(r.id));
    assert_eq!(
        store.remove_by_digest(&r.digest, revocation(RevocationReason::Logout, at(SECOND))).await.unwrap(),
        None,
        "idempotent"
    );
    let unknown = SessionToken::generate().unwrap().1;
    assert_eq!(store.remove_by_digest(&unknown, revocation(RevocationReason::Logout, T0)).await.unwrap(), None);
    assert_eq!(
        store.touch(&r.digest, at(2 * SECOND), POLICY).await.unwrap(),
        Lookup::Revoked(RevocationReason::Logout)
    );
    assert_eq!(store.get_by_id(&r.id).await.unwrap(), None);
    assert_eq!(store.list_user(&r.user, at(2 * SECOND)).await.unwrap().len(), 1, "only that session ended");
    live(&store, &other.digest, at(2 * SECOND)).await;
}

pub async fn remove_user_keeps_the_chosen_session<S: SessionStore>(store: S) {
    let (alice, bob) = (user("alice"), user("bob"));
    let mine: Vec<_> = (0..4).map(|i| record(&alice, at(i * SECOND))).collect();
    for r in &mine {
        insert_ok(&store, r, None, r.created_at).await;
    }
    let other = record(&bob, T0);
    insert_ok(&store, &other, None, T0).await;
    let now = at(10 * SECOND);
    let removed =
        store.remove_user(&alice, Some(&mine[2].id), revocation(RevocationReason::LogoutAll, now)).await.unwrap();
    let mut removed_ids: Vec<_> = removed.iter().map(|r| r.id).collect();
    removed_ids.sort();
    let mut expected: Vec<_> = [0, 1, 3].iter().map(|&i| mine[i].id).collect();
    expected.sort();
    assert_eq!(removed_ids, expected);
    for i in [0, 1, 3] {
        assert_eq!(
            store.touch(&mine[i].digest, now, POLICY).await.unwrap(),
            Lookup::Revoked(RevocationReason::LogoutAll)
        );
    }
    live(&store, &mine[2].digest, now).await;
    live(&store, &other.digest, now).await;
    assert_eq!(store.list_user(&alice, now).await.unwrap().len(), 1);
    let all = store.remove_user(&alice, None, revocation(RevocationReason::Admin, now)).await.unwrap();
    assert_eq!(all.len(), 1);
    assert!(store.list_user(&alice, now).await.unwrap().is_empty());
    assert_eq!(
        stored(&store, mine.iter().chain([&other]).map(|r| r.id)).await,
        1,
        "other users' sessions are untouched"
    );
}

pub async fn list_user_is_live_and_ordered<S: SessionStore>(store: S) {
    let alice = user("alice");
    let old = record(&alice, T0);
    let newer = record(&alice, at(100 * SECOND));
    insert_ok(&store, &newer, None, newer.created_at).await;
    insert_ok(&store, &old, None, newer.created_at).await;
    let list = store.list_user(&alice, at(200 * SECOND)).await.unwrap();
    assert_eq!(list.iter().map(|r| r.id).collect::<Vec<_>>(), vec![old.id, newer.id], "oldest first");
    let list = store.list_user(&alice, at(IDLE + 50 * SECOND)).await.unwrap();
    assert_eq!(list.iter().map(|r| r.id).collect::<Vec<_>>(), vec![newer.id], "expired sessions are not listed");
}

async fn limit_check<S: SessionStore>(store: S, policy: LimitPolicy) {
    let alice = user("alice");
    let limit = Some(Limit { max: 3, policy });
    let rs: Vec<_> = (0..3).map(|i| record(&alice, at(i * SECOND))).collect();
    for r in &rs {
        insert_ok(&store, r, limit, r.created_at).await;
    }
    // Use the oldest session so that it is the most recently used one.
    live(&store, &rs[0].digest, at(Duration::from_secs(120))).await;
    let newest = record(&alice, at(Duration::from_secs(180)));
    let now = newest.created_at;
    let outcome = store.insert(newest.clone(), None, limit, evict_at(now)).await.unwrap();
    let expected_victim = match policy {
        LimitPolicy::EvictOldest => Some(&rs[0]),
        LimitPolicy::EvictLeastRecentlyUsed => Some(&rs[1]),
        LimitPolicy::Reject => None,
    };
    match (outcome, expected_victim) {
        (InsertOutcome::Inserted { evicted }, Some(victim)) => {
            assert_eq!(evicted.iter().map(|r| r.id).collect::<Vec<_>>(), vec![victim.id], "{policy}: wrong victim");
            assert_eq!(
                store.touch(&victim.digest, now, POLICY).await.unwrap(),
                Lookup::Revoked(RevocationReason::Evicted)
            );
            live(&store, &newest.digest, now).await;
        }
        (InsertOutcome::LimitReached, None) => {
            assert_eq!(get(&store, &newest.digest).await, None, "refused login stores nothing");
            for r in &rs {
                live(&store, &r.digest, now).await;
            }
        }
        (outcome, _) => panic!("{policy}: unexpected {outcome:?}"),
    }
    assert_eq!(store.list_user(&alice, now).await.unwrap().len(), 3);
}

pub async fn limit_evict_oldest<S: SessionStore>(store: S) {
    limit_check(store, LimitPolicy::EvictOldest).await;
}

pub async fn limit_evict_lru<S: SessionStore>(store: S) {
    limit_check(store, LimitPolicy::EvictLeastRecentlyUsed).await;
}

pub async fn limit_reject<S: SessionStore>(store: S) {
    limit_check(store, LimitPolicy::Reject).await;
}

pub async fn expired_sessions_do_not_count_against_the_limit<S: SessionStore>(store: S) {
    let alice = user("alice");
    let limit = Some(Limit { max: 2, policy: LimitPolicy::Reject });
    for i in 0..2 {
        insert_ok(&store, &record(&alice, at(i * SECOND)), limit, at(i * SECOND)).await;
    }
    let later = at(IDLE + 10 * SECOND);
    let evicted = insert_ok(&store, &record(&alice, later), limit, later).await;
    assert!(evicted.is_empty(), "expired sessions are not evicted, they are gone");
    assert_eq!(store.list_user(&alice, later).await.unwrap().len(), 1);
}

pub async fn rotate_rekeys_the_session<S: SessionStore>(store: S) {
    let r = record(&user("alice"), T0);
    insert_ok(&store, &r, None, T0).await;
    live(&store, &r.digest, at(SECOND)).await;
    let new = digest_like(&r.digest);
    let Lookup::Live(rotated) = store.rotate(&r.digest, new, None, at(2 * SECOND), None).await.unwrap() else {
        panic!("rotate of a live session must succeed")
    };
    assert_eq!(rotated.id, r.id, "same session");
    assert_eq!(rotated.digest, new);
    assert_eq!(rotated.generation, r.generation + 1, "a rotation raises the generation by one");
    assert_eq!(rotated.created_at, r.created_at);
    assert_eq!(rotated.absolute_deadline, r.absolute_deadline);
    assert_eq!(store.touch(&r.digest, at(3 * SECOND), POLICY).await.unwrap(), Lookup::NotFound, "old token dead");
    let now_live = live(&store, &new, at(3 * SECOND)).await;
    assert_eq!(now_live.request_count, 2, "activity carried over");
    assert_eq!(now_live.generation, 1, "the generation is stored");
    let again = digest_like(&new);
    let Lookup::Live(twice) = store.rotate(&new, again, None, at(3 * SECOND), None).await.unwrap() else {
        panic!("a rotated session rotates again")
    };
    assert_eq!(twice.generation, 2);
    assert_eq!(store.get_by_id(&r.id).await.unwrap().map(|x| x.generation), Some(2));
    let new = again;
    assert_eq!(store.get_by_id(&r.id).await.unwrap().map(|x| x.digest), Some(new), "id index follows");
    let listed = store.list_user(&r.user, at(3 * SECOND)).await.unwrap();
    assert_eq!(listed.iter().map(|x| x.digest).collect::<Vec<_>>(), [new], "user index follows");
    // Removal after rotation finds the session under its new digest.
    store.remove(&r.id, revocation(RevocationReason::Logout, at(4 * SECOND))).await.unwrap();
    assert_eq!(store.touch(&new, at(5 * SECOND), POLICY).await.unwrap(), Lookup::Revoked(RevocationReason::Logout));
}

pub async fn rotate_refuses_dead_and_taken<S: SessionStore>(store: S) {
    let (a, b) = (record(&user("alice"), T0), record(&user("alice"), T0));
    insert_ok(&store, &a, None, T0).await;
    insert_ok(&store, &b, None, T0).await;
    assert!(matches!(store.rotate(&a.digest, b.digest, None, at(SECOND), None).await, Err(StoreError::Conflict)));
    live(&store, &a.digest, at(SECOND)).await;
    live(&store, &b.digest, at(SECOND)).await;
    let fresh = digest_like(&a.digest);
    assert_eq!(
        store.rotate(&a.digest, fresh, None, at(IDLE + 2 * SECOND), None).await.unwrap().expired_reason(),
        Some(ExpiryReason::Idle)
    );
    let (_, unknown) = SessionToken::generate().unwrap();
    assert_eq!(store.rotate(&unknown, fresh, None, T0, None).await.unwrap(), Lookup::NotFound);
    store.remove(&b.id, revocation(RevocationReason::Admin, at(SECOND))).await.unwrap();
    assert_eq!(
        store.rotate(&b.digest, fresh, None, at(2 * SECOND), None).await.unwrap(),
        Lookup::Revoked(RevocationReason::Admin)
    );
    assert_eq!(get(&store, &fresh).await, None);
}

pub async fn update_data_is_capped<S: SessionStore>(store: S) {
    let r = record(&user("alice"), T0);
    insert_ok(&store, &r, None, T0).await;
    let outcome = store.update_data(&r.id, &DataPatch::new().set("role", "admin"), 64, T0).await.unwrap();
    let DataOutcome::Updated(data) = outcome else { panic!("update failed: {outcome:?}") };
    assert_eq!(data.get("role").and_then(|v| v.as_str()), Some("admin"));
    let big = DataPatch::new().set("blob", "x".repeat(100));
    assert!(
        matches!(store.update_data(&r.id, &big, 64, T0).await.unwrap(), DataOutcome::TooLarge { size } if size > 100)
    );
    let stored = live(&store, &r.digest, T0).await;
    assert_eq!(stored.data, data, "an oversized patch changes nothing");
    let removed = store.update_data(&r.id, &DataPatch::new().remove("role"), 64, T0).await.unwrap();
    assert_eq!(removed, DataOutcome::Updated(SessionData::default()));
    assert_eq!(
        store.update_data(&r.id, &DataPatch::new().set("a", 1), 64, at(IDLE)).await.unwrap(),
        DataOutcome::NotFound,
        "expired sessions take no data"
    );
}

pub async fn remove_expired_cleans_every_index<S: SessionStore>(store: S) {
    let users: Vec<_> = (0..5).map(|i| user(&format!("user{i}"))).collect();
    let mut keep = Vec::new();
    let mut ids = Vec::new();
    for (i, u) in users.iter().enumerate() {
        for _ in 0..3 {
            let r = record(u, T0);
            insert_ok(&store, &r, None, T0).await;
            ids.push(r.id);
        }
        if i % 2 == 0 {
            let r = record(u, at(IDLE - SECOND));
            insert_ok(&store, &r, None, at(IDLE - SECOND)).await;
            ids.push(r.id);
            keep.push(r);
        }
    }
    let now = at(IDLE + SECOND);
    let first = store.remove_expired(now, 4).await.unwrap();
    assert_eq!(first.len(), 4, "a batch stops at max");
    let rest = store.remove_expired(now, usize::MAX).await.unwrap();
    assert_eq!(first.len() + rest.len(), 15);
    assert!(first.iter().chain(&rest).all(|r| r.idle_deadline <= now), "only expired sessions are swept");
    assert!(store.remove_expired(now, usize::MAX).await.unwrap().is_empty(), "nothing left to sweep");
    assert_eq!(stored(&store, ids).await, keep.len(), "only the swept sessions are gone");
    for r in &keep {
        live(&store, &r.digest, now).await;
    }
    for (i, u) in users.iter().enumerate() {
        assert_eq!(store.list_user(u, now).await.unwrap().len(), usize::from(i % 2 == 0));
        assert!(store.remove_user(u, None, revocation(RevocationReason::Admin, now)).await.unwrap().len() <= 1);
    }
    // Users whose sessions were all swept can log in again under a limit of one.
    let limit = Some(Limit { max: 1, policy: LimitPolicy::Reject });
    insert_ok(&store, &record(&users[1], now), limit, now).await;
}

pub async fn remove_expired_spares_renewed_sessions<S: SessionStore>(store: S) {
    let r = record(&user("alice"), T0);
    insert_ok(&store, &r, None, T0).await;
    live(&store, &r.digest, at(20 * 60 * SECOND)).await;
    assert!(store.remove_expired(at(IDLE + SECOND), usize::MAX).await.unwrap().is_empty(), "renewed: not expired");
    live(&store, &r.digest, at(IDLE + 2 * SECOND)).await;
    let later = at(IDLE + 2 * SECOND + IDLE);
    let swept = store.remove_expired(later, usize::MAX).await.unwrap();
    assert_eq!(swept.iter().map(|x| x.id).collect::<Vec<_>>(), vec![r.id], "swept once its renewed deadline passed");
    assert_eq!(store.get_by_id(&r.id).await.unwrap(), None);
}

/// 64 concurrent logins of one user at limit 3: never more than 3 live, and every evicted
/// token fails.
pub async fn concurrent_logins_never_exceed_the_limit<S: SessionStore + Clone>(store: S) {
    let alice = user("alice");
    let limit = Some(Limit { max: 3, policy: LimitPolicy::EvictOldest });
    let mut tasks = Vec::new();
    for i in 0..64u64 {
        let (store, alice) = (store.clone(), alice.clone());
        tasks.push(tokio::spawn(async move {
            let now = at(Duration::from_millis(i));
            let r = record(&alice, now);
            let outcome = store.insert(r.clone(), None, limit, evict_at(now)).await.unwrap();
            let listed = store.list_user(&alice, now).await.unwrap().len();
            assert!(listed <= 3, "a user never has more than 3 live sessions (saw {listed})");
            (r, outcome)
        }));
    }
    let mut all = Vec::new();
    let mut evicted_total = 0;
    for t in tasks {
        let (r, outcome) = t.await.unwrap();
        let InsertOutcome::Inserted { evicted } = outcome else { panic!("evicting policy never refuses") };
        evicted_total += evicted.len();
        all.push(r);
    }
    let now = at(SECOND);
    let mut live_count = 0;
    for r in &all {
        match store.touch(&r.digest, now, POLICY).await.unwrap() {
            Lookup::Live(_) => live_count += 1,
            Lookup::Revoked(RevocationReason::Evicted) => {}
            other => panic!("an evicted session must answer Revoked(Evicted), got {other:?}"),
        }
    }
    assert_eq!(live_count, 3);
    assert_eq!(evicted_total, 61, "every eviction is reported exactly once");
    assert_eq!(store.list_user(&alice, now).await.unwrap().len(), 3);
}

/// 16 concurrent rotations of one digest: exactly one wins.
pub async fn concurrent_rotations_have_one_winner<S: SessionStore + Clone>(store: S) {
    let r = record(&user("alice"), T0);
    insert_ok(&store, &r, None, T0).await;
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let store = store.clone();
        let old = r.digest;
        tasks.push(tokio::spawn(async move {
            let new = digest_like(&old);
            (new, store.rotate(&old, new, None, at(SECOND), None).await.unwrap())
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        let (new, outcome) = t.await.unwrap();
        match outcome {
            Lookup::Live(_) => winners.push(new),
            Lookup::NotFound => {}
            other => panic!("a losing rotation answers NotFound, got {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one rotation wins");
    let winner = live(&store, &winners[0], at(2 * SECOND)).await;
    assert_eq!(winner.generation, 1, "losing rotations raise nothing");
    assert_eq!(store.list_user(&winner.user, at(2 * SECOND)).await.unwrap().len(), 1, "one session, rekeyed");
}

/// 32 concurrent patches of one session's data, each setting its own key: every one is
/// applied, none lost to another's write.
pub async fn concurrent_patches_are_all_applied<S: SessionStore + Clone>(store: S) {
    let r = record(&user("alice"), T0);
    insert_ok(&store, &r, None, T0).await;
    let mut tasks = Vec::new();
    for i in 0..32 {
        let (store, id) = (store.clone(), r.id);
        tasks.push(tokio::spawn(async move {
            store.update_data(&id, &DataPatch::new().set(format!("k{i}"), i), 4096, at(SECOND)).await.unwrap()
        }));
    }
    for t in tasks {
        assert!(matches!(t.await.unwrap(), DataOutcome::Updated(_)));
    }
    let data = live(&store, &r.digest, at(2 * SECOND)).await.data;
    assert_eq!(data.len(), 32, "no patch is lost");
    for i in 0..32 {
        assert_eq!(data.get_as::<i64>(&format!("k{i}")), Some(i));
    }
}

/// Logins racing a revoke-all: afterwards every session is either revoked or was created after
/// the revoke-all and is listed; none is lost from the user index.
pub async fn concurrent_revoke_all_and_logins<S: SessionStore + Clone>(store: S) {
    let alice = user("alice");
    let mut tasks = Vec::new();
    for i in 0..32u64 {
        let (store, alice) = (store.clone(), alice.clone());
        tasks.push(tokio::spawn(async move {
            let now = at(Duration::from_millis(i));
            if i % 8 == 7 {
                store.remove_user(&alice, None, revocation(RevocationReason::LogoutAll, now)).await.unwrap();
                None
            } else {
                let r = record(&alice, now);
                store.insert(r.clone(), None, None, evict_at(now)).await.unwrap();
                Some(r)
            }
        }));
    }
    let mut created = Vec::new();
    for t in tasks {
        if let Some(r) = t.await.unwrap() {
            created.push(r);
        }
    }
    let now = at(SECOND);
    let listed: Vec<SessionId> = store.list_user(&alice, now).await.unwrap().iter().map(|r| r.id).collect();
    for r in &created {
        match store.touch(&r.digest, now, POLICY).await.unwrap() {
            Lookup::Live(_) => assert!(listed.contains(&r.id), "a live session is in the user index"),
            Lookup::Revoked(RevocationReason::LogoutAll) => assert!(!listed.contains(&r.id)),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(stored(&store, created.iter().map(|r| r.id)).await, listed.len(), "nothing stored outside the index");
}

const GRACE: Duration = Duration::from_secs(5);

/// A successor for the refresh family of `presented` (its route, as the manager makes it).
fn successor(presented: &TokenDigest, tag: u8) -> Successor {
    Successor { digest: digest_like(presented), sealed: vec![tag; 24] }
}

async fn insert_with_refresh<S: TokenStore>(store: &S, name: &str, now: Timestamp) -> (SessionRecord, TokenDigest) {
    let r = record(&user(name), now);
    let refresh = digest_like(&r.digest);
    let outcome = store.insert(r.clone(), Some(refresh), None, evict_at(now)).await.unwrap();
    assert!(matches!(outcome, InsertOutcome::Inserted { .. }));
    (r, refresh)
}

async fn refresh<S: TokenStore>(
    store: &S,
    presented: &TokenDigest,
    next: Successor,
    now: Timestamp,
    grace: Duration,
) -> RefreshOutcome {
    let reuse = revocation(RevocationReason::RefreshReuse, now);
    let quiet = TouchPolicy { count_request: false, ..POLICY };
    store.rotate_refresh(presented, next, now, grace, quiet, reuse).await.unwrap()
}

pub async fn refresh_rotates_replays_and_detects_reuse<S: TokenStore>(store: S) {
    let (r, r0) = insert_with_refresh(&store, "alice", T0).await;
    let s1 = successor(&r0, 1);
    let t1 = at(5 * 60 * SECOND);
    let RefreshOutcome::Rotated(rec) = refresh(&store, &r0, s1.clone(), t1, GRACE).await else {
        panic!("the current refresh token rotates")
    };
    assert_eq!(rec.id, r.id);
    assert_eq!(rec.idle_deadline, t1.saturating_add(IDLE), "a refresh counts as activity");
    assert_eq!(rec.absolute_deadline, r.absolute_deadline, "but never extends the absolute deadline");
    assert_eq!(rec.request_count, 0, "and is not a request");

    let retry = successor(&r0, 9);
    let retry_digest = retry.digest;
    match refresh(&store, &r0, retry, t1.saturating_add(SECOND), GRACE).await {
        RefreshOutcome::Replayed { record, sealed, spent_at } => {
            assert_eq!(sealed, s1.sealed, "a replay returns the successor stored when the token was spent");
            assert_eq!(spent_at, t1);
            assert_eq!(record.id, r.id);
        }
        other => panic!("within the grace window a spent token replays, got {other:?}"),
    }
    assert_eq!(
        refresh(&store, &retry_digest, successor(&retry_digest, 3), t1, GRACE).await,
        RefreshOutcome::NotFound,
        "a replay stores nothing"
    );
    // An instance whose clock lags the one that spent the token is still inside the window:
    // the two refreshes were concurrent, not a replay of a stolen token.
    match refresh(&store, &r0, successor(&r0, 8), t1.saturating_sub(2 * SECOND), GRACE).await {
        RefreshOutcome::Replayed { sealed, spent_at, .. } => {
            assert_eq!(sealed, s1.sealed);
            assert_eq!(spent_at, t1);
        }
        other => panic!("a spent_at ahead of now is inside the grace window, got {other:?}"),
    }

    // Rotating the session token keeps the refresh family.
    let new_session_digest = digest_like(&r.digest);
    assert!(matches!(store.rotate(&r.digest, new_session_digest, None, t1, None).await.unwrap(), Lookup::Live(_)));
    let t2 = t1.saturating_add(60 * SECOND);
    let s2 = successor(&s1.digest, 2);
    let current = s2.digest;
    assert!(matches!(refresh(&store, &s1.digest, s2, t2, GRACE).await, RefreshOutcome::Rotated(_)));

    // r0 is now two generations old: presenting it is reuse.
    match refresh(&store, &r0, successor(&r0, 4), t2.saturating_add(SECOND), GRACE).await {
        RefreshOutcome::Reused(record) => assert_eq!(record.id, r.id),
        other => panic!("an old spent token is reuse, got {other:?}"),
    }
    let after = t2.saturating_add(2 * SECOND);
    assert_eq!(
        store.touch(&new_session_digest, after, POLICY).await.unwrap(),
        Lookup::Revoked(RevocationReason::RefreshReuse),
        "reuse revokes the whole session"
    );
    assert_eq!(
        store.access_denied(&r.id, 0, after).await.unwrap(),
        Some(AccessDenial::Revoked(RevocationReason::RefreshReuse))
    );
    for (token, which) in [(s1.digest, "the token spent last"), (current, "the current token")] {
        assert_eq!(
            refresh(&store, &token, successor(&token, 5), after, GRACE).await,
            RefreshOutcome::Revoked(RevocationReason::RefreshReuse),
            "{which} of a revoked session answers why it ended"
        );
    }
    assert_eq!(store.get_by_id(&r.id).await.unwrap(), None);
}

/// A rotation that brings a new refresh token: every refresh token issued before finds
/// nothing (not reuse: the session lives on), the new one rotates, and a taken refresh digest
/// is a conflict that changes nothing.
pub async fn rotate_with_refresh_replaces_the_family<S: TokenStore>(store: S) {
    let (r, r0) = insert_with_refresh(&store, "alice", T0).await;
    let s1 = successor(&r0, 1);
    let t1 = at(60 * SECOND);
    assert!(matches!(refresh(&store, &r0, s1.clone(), t1, GRACE).await, RefreshOutcome::Rotated(_)));

    // Another session of the same user (a store sharded by user keeps a user's keys together,
    // and the manager never gives one user's session another user's refresh route).
    let (_, other) = insert_with_refresh(&store, "alice", T0).await;
    let taken_session = digest_like(&r.digest);
    assert!(matches!(store.rotate(&r.digest, taken_session, Some(other), t1, None).await, Err(StoreError::Conflict)));
    live(&store, &r.digest, t1).await;

    let new_session = digest_like(&r.digest);
    let new_refresh = digest_like(&r.digest);
    let t2 = t1.saturating_add(SECOND);
    let Lookup::Live(rotated) = store.rotate(&r.digest, new_session, Some(new_refresh), t2, None).await.unwrap() else {
        panic!("a live session rotates")
    };
    assert_eq!(rotated.id, r.id);
    for (token, which) in [(s1.digest, "the current refresh token"), (r0, "the spent one, within the grace window")] {
        assert_eq!(
            refresh(&store, &token, successor(&token, 5), t2, GRACE).await,
            RefreshOutcome::NotFound,
            "{which} of before the rotation finds nothing"
        );
    }
    live(&store, &new_session, t2).await;
    let t3 = t2.saturating_add(SECOND);
    match refresh(&store, &new_refresh, successor(&new_refresh, 6), t3, GRACE).await {
        RefreshOutcome::Rotated(record) => assert_eq!(record.id, r.id),
        other => panic!("the new refresh token rotates, got {other:?}"),
    }
    let listed = store.list_user(&r.user, t3).await.unwrap();
    let rekeyed: Vec<TokenDigest> = listed.iter().filter(|x| x.id == r.id).map(|x| x.digest).collect();
    assert_eq!(rekeyed, [new_session], "one session, rekeyed with its family");
}

pub async fn refresh_grace_is_a_strict_window<S: TokenStore>(store: S) {
    let (_, r0) = insert_with_refresh(&store, "alice", T0).await;
    assert!(matches!(refresh(&store, &r0, successor(&r0, 1), T0, GRACE).await, RefreshOutcome::Rotated(_)));
    let edge = T0.saturating_add(GRACE);
    assert!(
        matches!(refresh(&store, &r0, successor(&r0, 2), edge, GRACE).await, RefreshOutcome::Reused(_)),
        "at the end of the window: reuse"
    );

    let (_, r0) = insert_with_refresh(&store, "bob", T0).await;
    assert!(matches!(refresh(&store, &r0, successor(&r0, 1), T0, Duration::ZERO).await, RefreshOutcome::Rotated(_)));
    assert!(
        matches!(refresh(&store, &r0, successor(&r0, 2), T0, Duration::ZERO).await, RefreshOutcome::Reused(_)),
        "a zero grace window is strict single use"
    );

    let (_, r0) = insert_with_refresh(&store, "carol", T0).await;
    let ahead = T0.saturating_add(SECOND);
    assert!(matches!(refresh(&store, &r0, successor(&r0, 1), ahead, Duration::ZERO).await, RefreshOutcome::Rotated(_)));
    assert!(
        matches!(refresh(&store, &r0, successor(&r0, 2), T0, Duration::ZERO).await, RefreshOutcome::Reused(_)),
        "a zero grace window is strict even against a clock running ahead"
    );

    // Ahead by the window or more is not concurrency: reuse.
    let (_, r0) = insert_with_refresh(&store, "dave", T0).await;
    let far_ahead = T0.saturating_add(GRACE);
    assert!(matches!(refresh(&store, &r0, successor(&r0, 1), far_ahead, GRACE).await, RefreshOutcome::Rotated(_)));
    assert!(
        matches!(refresh(&store, &r0, successor(&r0, 2), T0, GRACE).await, RefreshOutcome::Reused(_)),
        "a spent_at a whole window ahead of now is reuse"
    );
}

pub async fn refresh_history_is_bounded<S: TokenStore>(store: S) {
    let (_, r0) = insert_with_refresh(&store, "alice", T0).await;
    let mut spent = vec![r0];
    let mut current = r0;
    for i in 0..REFRESH_REUSE_HISTORY + 3 {
        let next = successor(&current, 1);
        let now = at(Duration::from_secs(10 * (i as u64 + 1)));
        assert!(matches!(refresh(&store, &current, next.clone(), now, GRACE).await, RefreshOutcome::Rotated(_)));
        current = next.digest;
        spent.push(current);
    }
    spent.pop();
    let now = at(Duration::from_secs(1000));
    // The most recent REFRESH_REUSE_HISTORY + 1 spent tokens are recognised as reuse.
    let recognised = spent[spent.len() - (REFRESH_REUSE_HISTORY + 1)];
    let older = spent[0];
    assert_eq!(refresh(&store, &older, successor(&older, 2), now, GRACE).await, RefreshOutcome::NotFound, "forgotten");
    assert!(matches!(
        refresh(&store, &recognised, successor(&recognised, 2), now, GRACE).await,
        RefreshOutcome::Reused(_)
    ));
}

pub async fn refresh_of_dead_sessions<S: TokenStore>(store: S) {
    let (r, r0) = insert_with_refresh(&store, "alice", T0).await;
    assert_eq!(
        refresh(&store, &r0, successor(&r0, 1), at(IDLE), GRACE).await.expired_reason(),
        Some(ExpiryReason::Idle)
    );
    assert!(get(&store, &r.digest).await.is_some(), "an expired refresh changes nothing");

    let (r, r0) = insert_with_refresh(&store, "bob", T0).await;
    store.remove(&r.id, revocation(RevocationReason::Logout, at(SECOND))).await.unwrap();
    assert_eq!(
        refresh(&store, &r0, successor(&r0, 1), at(2 * SECOND), GRACE).await,
        RefreshOutcome::Revoked(RevocationReason::Logout),
        "a revoked session's refresh token answers why it ended"
    );
    assert_eq!(
        refresh(&store, &r0, successor(&r0, 1), r.absolute_deadline, GRACE).await,
        RefreshOutcome::NotFound,
        "until the session's absolute deadline, then it is forgotten"
    );

    let (_, r0) = insert_with_refresh(&store, "carol", T0).await;
    let (_, other) = insert_with_refresh(&store, "carol", T0).await;
    let taken = Successor { digest: other, sealed: vec![1; 24] };
    assert!(matches!(
        store.rotate_refresh(&r0, taken, T0, GRACE, POLICY, revocation(RevocationReason::RefreshReuse, T0)).await,
        Err(StoreError::Conflict)
    ));
    assert!(
        matches!(refresh(&store, &r0, successor(&r0, 1), at(SECOND), GRACE).await, RefreshOutcome::Rotated(_)),
        "a conflict changes nothing"
    );

    let (r, r0) = insert_with_refresh(&store, "erin", T0).await;
    store.remove_expired(at(IDLE + SECOND), usize::MAX).await.unwrap();
    assert_eq!(store.get_by_id(&r.id).await.unwrap(), None);
    assert_eq!(
        refresh(&store, &r0, successor(&r0, 1), at(IDLE + SECOND), GRACE).await,
        RefreshOutcome::NotFound,
        "sweeping drops refresh tokens"
    );
}

pub async fn denylist_follows_revocations<S: TokenStore>(store: S) {
    let alice = user("alice");
    let a = record(&alice, T0);
    let b = record(&alice, T0);
    let c = record(&alice, at(SECOND));
    insert_ok(&store, &a, None, T0).await;
    insert_ok(&store, &b, None, T0).await;
    assert_eq!(store.access_denied(&a.id, 0, T0).await.unwrap(), None, "live sessions are not denied");
    store.remove(&a.id, revocation(RevocationReason::Logout, at(SECOND))).await.unwrap();
    assert_eq!(
        store.access_denied(&a.id, 0, at(SECOND)).await.unwrap(),
        Some(AccessDenial::Revoked(RevocationReason::Logout))
    );
    assert_eq!(
        store.access_denied(&a.id, 0, at(SECOND + DENY_FOR - Duration::from_nanos(1))).await.unwrap(),
        Some(AccessDenial::Revoked(RevocationReason::Logout))
    );
    assert_eq!(
        store.access_denied(&a.id, 0, at(SECOND + DENY_FOR)).await.unwrap(),
        None,
        "entries expire with the last access token"
    );
    let limit = Some(Limit { max: 1, policy: LimitPolicy::EvictOldest });
    let evicted = insert_ok(&store, &c, limit, at(SECOND)).await;
    assert_eq!(evicted.iter().map(|r| r.id).collect::<Vec<_>>(), vec![b.id]);
    assert_eq!(
        store.access_denied(&b.id, 0, at(2 * SECOND)).await.unwrap(),
        Some(AccessDenial::Revoked(RevocationReason::Evicted))
    );
    store.remove_user(&alice, None, revocation(RevocationReason::LogoutAll, at(3 * SECOND))).await.unwrap();
    assert_eq!(
        store.access_denied(&c.id, 0, at(3 * SECOND)).await.unwrap(),
        Some(AccessDenial::Revoked(RevocationReason::LogoutAll))
    );
    let quiet = Revocation { deny_access_until: None, ..revocation(RevocationReason::Admin, T0) };
    let d = record(&alice, T0);
    insert_ok(&store, &d, None, T0).await;
    store.remove(&d.id, quiet).await.unwrap();
    assert_eq!(store.access_denied(&d.id, 0, T0).await.unwrap(), None, "no denylisting unless asked");
    let e = record(&alice, at(3 * SECOND));
    insert_ok(&store, &e, None, at(3 * SECOND)).await;
    store.remove_by_digest(&e.digest, revocation(RevocationReason::Logout, at(3 * SECOND))).await.unwrap();
    assert_eq!(
        store.access_denied(&e.id, 0, at(3 * SECOND)).await.unwrap(),
        Some(AccessDenial::Revoked(RevocationReason::Logout)),
        "a logout by digest denylists too"
    );
    store.remove_expired(at(3 * SECOND + DENY_FOR), usize::MAX).await.unwrap();
    assert_eq!(store.access_denied(&c.id, 0, at(3 * SECOND + DENY_FOR)).await.unwrap(), None);
}

/// A rotation with `deny_access_until` denylists the session's access tokens of earlier
/// generations until then, and no others; a later rotation moves the line up; a revocation
/// outweighs it; sweeping forgets it when its time has passed.
pub async fn rotation_supersedes_older_access_tokens<S: TokenStore>(store: S) {
    let alice = user("alice");
    let r = record(&alice, T0);
    insert_ok(&store, &r, None, T0).await;
    let t1 = at(SECOND);
    let until = |t: Timestamp| Some(t.saturating_add(DENY_FOR));
    let d1 = digest_like(&r.digest);
    let Lookup::Live(g1) = store.rotate(&r.digest, d1, None, t1, until(t1)).await.unwrap() else {
        panic!("a live session rotates")
    };
    assert_eq!(g1.generation, 1);
    assert_eq!(store.access_denied(&r.id, 0, t1).await.unwrap(), Some(AccessDenial::Superseded), "tokens of before");
    assert_eq!(store.access_denied(&r.id, 1, t1).await.unwrap(), None, "tokens of the new generation pass");
    let t2 = at(2 * SECOND);
    let d2 = digest_like(&r.digest);
    assert!(matches!(store.rotate(&d1, d2, None, t2, until(t2)).await.unwrap(), Lookup::Live(_)));
    for generation in [0, 1] {
        assert_eq!(
            store.access_denied(&r.id, generation, t2).await.unwrap(),
            Some(AccessDenial::Superseded),
            "generation {generation} is superseded after the second rotation"
        );
    }
    assert_eq!(store.access_denied(&r.id, 2, t2).await.unwrap(), None);
    let late = t2.saturating_add(DENY_FOR);
    assert_eq!(store.access_denied(&r.id, 0, late).await.unwrap(), None, "until the last of them has expired");
    live(&store, &d2, t2).await;

    // Without `deny_access_until` the generation still rises, and nothing is denylisted.
    let quiet = record(&alice, T0);
    insert_ok(&store, &quiet, None, T0).await;
    let Lookup::Live(q1) = store.rotate(&quiet.digest, digest_like(&quiet.digest), None, t1, None).await.unwrap()
    else {
        panic!("a live session rotates")
    };
    assert_eq!(q1.generation, 1);
    assert_eq!(store.access_denied(&quiet.id, 0, t1).await.unwrap(), None, "no denylisting unless asked");

    // A revocation after a rotation refuses every generation.
    let t3 = at(3 * SECOND);
    store.remove(&r.id, revocation(RevocationReason::Logout, t3)).await.unwrap();
    for generation in [0, 2, 3] {
        assert_eq!(
            store.access_denied(&r.id, generation, t3).await.unwrap(),
            Some(AccessDenial::Revoked(RevocationReason::Logout)),
            "a revocation outweighs a rotation"
        );
    }

    // Sweeping forgets entries whose time has passed, and only those.
    let s = record(&alice, T0);
    insert_ok(&store, &s, None, T0).await;
    let t4 = at(4 * SECOND);
    assert!(matches!(
        store.rotate(&s.digest, digest_like(&s.digest), None, t4, until(t4)).await.unwrap(),
        Lookup::Live(_)
    ));
    let swept = t3.saturating_add(DENY_FOR);
    store.remove_expired(swept, usize::MAX).await.unwrap();
    assert_eq!(store.access_denied(&r.id, 0, swept).await.unwrap(), None);
    assert_eq!(
        store.access_denied(&s.id, 0, swept).await.unwrap(),
        Some(AccessDenial::Superseded),
        "a rotation's entry outlives a sweep before its time"
    );
}

/// 50 concurrent refreshes of one token: one rotation, 49 replays of the same successor.
pub async fn concurrent_refreshes_fork_nothing<S: TokenStore + Clone>(store: S) {
    let (_, r0) = insert_with_refresh(&store, "alice", T0).await;
    let mut tasks = Vec::new();
    for i in 0..50u8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let next = successor(&r0, i);
            let outcome = refresh(&store, &r0, next.clone(), at(SECOND), GRACE).await;
            (next, outcome)
        }));
    }
    let mut winner = None;
    let mut replays = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            (next, RefreshOutcome::Rotated(_)) => {
                assert!(winner.is_none(), "two refreshes both rotated: the family forked");
                winner = Some(next);
            }
            (_, RefreshOutcome::Replayed { sealed, .. }) => replays.push(sealed),
            (_, other) => panic!("concurrent refresh within the grace window: {other:?}"),
        }
    }
    let winner = winner.expect("one refresh rotates");
    assert_eq!(replays.len(), 49);
    assert!(replays.iter().all(|s| *s == winner.sealed), "every replay returns the winner's successor");
    assert!(matches!(
        refresh(&store, &winner.digest, successor(&winner.digest, 1), at(2 * SECOND), GRACE).await,
        RefreshOutcome::Rotated(_)
    ));
}

// ---------------------------------------------------------------------------------------------
// Backup: scan and restore
// ---------------------------------------------------------------------------------------------

/// Every item of a full scan, in a canonical order (by their JSON), so two stores' contents
/// compare equal whatever order they page in.
async fn scan_all<S: BackupStore>(store: &S) -> Vec<StoredItem> {
    let mut items = Vec::new();
    let mut cursor = Some(ScanCursor::START);
    let mut pages = 0;
    while let Some(at) = cursor {
        let page = store.scan(at).await.unwrap();
        items.extend(page.items);
        cursor = page.next;
        pages += 1;
        assert!(pages < 100_000, "scan: the cursor never ends");
    }
    items.sort_by_cached_key(|item| serde_json::to_string(item).unwrap());
    items
}

/// What a store holding `live` sessions and the revoked `gone` (reason `Logout`, at `now`)
/// scans as: the sessions, and a remembered revocation of each gone session's digest.
fn expected_items(live: &[SessionRecord], gone: &[SessionRecord]) -> Vec<StoredItem> {
    let mut items: Vec<StoredItem> =
        live.iter().map(|r| StoredItem::Session { record: r.clone(), refresh: None }).collect();
    items.extend(gone.iter().map(|r| StoredItem::Revoked {
        digest: r.digest,
        reason: RevocationReason::Logout,
        until: r.absolute_deadline,
    }));
    items.sort_by_cached_key(|item| serde_json::to_string(item).unwrap());
    items
}

/// Only the items of `items` that are sessions and remembered revocations (a store that is
/// also a [`TokenStore`] adds denylist entries, which these checks do not count).
fn sessions_and_revocations(items: Vec<StoredItem>) -> Vec<StoredItem> {
    items.into_iter().filter(|item| item.deny_entry().is_none()).collect()
}

/// Sessions of a few users, with their metadata and data, for the backup checks.
fn backup_records(n: usize) -> Vec<SessionRecord> {
    (0..n)
        .map(|i| {
            let mut r = record(&user(&format!("user{}", i % 7)), at(Duration::from_secs(i as u64)));
            r.remember_me = i % 3 == 0;
            r.request_count = i as u64;
            r.generation = (i % 4) as u64;
            if i % 2 == 0 {
                r.metadata = Metadata::new(Some([192, 0, 2, (i % 250) as u8].into()), Some(Arc::from("agent/1.0")));
                r.data = SessionData::from_map(serde_json::json!({ "i": i }).as_object().unwrap().clone());
            }
            r
        })
        .collect()
}

/// A scan visits every session and remembered revocation exactly once, and ends.
pub async fn scan_visits_everything_once<S: BackupStore>(store: S) {
    assert!(scan_all(&store).await.is_empty(), "an empty store scans empty");
    let records = backup_records(300);
    for r in &records {
        insert_ok(&store, r, None, T0).await;
    }
    let now = at(400 * SECOND);
    let (gone, live) = records.split_at(40);
    for r in gone {
        store
            .remove(&r.id, Revocation { reason: RevocationReason::Logout, at: now, deny_access_until: None })
            .await
            .unwrap();
    }
    assert_eq!(
        sessions_and_revocations(scan_all(&store).await),
        expected_items(live, gone),
        "every live session once, with what it holds, and every remembered revocation once"
    );
}

/// What `restore` adds, a scan gives back, and the sessions work.
pub async fn restore_round_trips_a_scan<S: BackupStore>(store: S) {
    let records = backup_records(120);
    let (gone, kept) = records.split_at(20);
    let items = expected_items(kept, gone);
    store.restore(items.clone(), T0).await.unwrap();
    assert_eq!(sessions_and_revocations(scan_all(&store).await), items);
    let now = at(200 * SECOND);
    for r in kept {
        assert_eq!(live(&store, &r.digest, now).await.id, r.id, "a restored session validates");
    }
    for r in gone {
        assert_eq!(
            store.touch(&r.digest, now, POLICY).await.unwrap(),
            Lookup::Revoked(RevocationReason::Logout),
            "a restored revocation is remembered"
        );
    }
    let user3 = kept.iter().filter(|r| r.user == user("user3")).count();
    assert_eq!(store.list_user(&user("user3"), now).await.unwrap().len(), user3, "restored into the user index");
}

/// A restore that collides with what is stored adds nothing at all.
pub async fn restore_is_all_or_nothing<S: BackupStore>(store: S) {
    let existing = record(&user("alice"), T0);
    insert_ok(&store, &existing, None, T0).await;
    let fresh = record(&user("bob"), T0);
    let mut same_id = record(&user("alice"), T0);
    same_id.id = existing.id;
    let mut same_digest = record(&user("alice"), T0);
    same_digest.digest = existing.digest;
    for clash in [same_id, same_digest] {
        let items = vec![
            StoredItem::Session { record: fresh.clone(), refresh: None },
            StoredItem::Session { record: clash, refresh: None },
        ];
        assert!(matches!(store.restore(items, T0).await, Err(StoreError::Conflict)), "a collision is a conflict");
        assert_eq!(store.get_by_id(&fresh.id).await.unwrap(), None, "nothing of a refused restore is added");
        assert_eq!(get(&store, &fresh.digest).await, None);
    }
    assert_eq!(get(&store, &existing.digest).await.map(|r| r.user), Some(user("alice")), "what was stored is intact");
    // Duplicates within one restore collide too.
    let twice = vec![
        StoredItem::Session { record: fresh.clone(), refresh: None },
        StoredItem::Session { record: fresh.clone(), refresh: None },
    ];
    assert!(matches!(store.restore(twice, T0).await, Err(StoreError::Conflict)));
    assert_eq!(store.get_by_id(&fresh.id).await.unwrap(), None);
}

/// A restored session already past a deadline at `now` never validates.
pub async fn restore_skips_what_is_over<S: BackupStore>(store: S) {
    let old = record(&user("alice"), T0);
    let current = record(&user("alice"), at(ABSOLUTE));
    let now = at(ABSOLUTE + SECOND);
    let items = vec![
        StoredItem::Session { record: old.clone(), refresh: None },
        StoredItem::Session { record: current.clone(), refresh: None },
    ];
    store.restore(items, now).await.unwrap();
    assert!(!matches!(store.touch(&old.digest, now, POLICY).await.unwrap(), Lookup::Live(_)), "over: never live");
    live(&store, &current.digest, now).await;
    let listed = store.list_user(&user("alice"), now).await.unwrap();
    assert_eq!(listed.iter().map(|r| r.id).collect::<Vec<_>>(), [current.id], "only the live one is listed");
}

/// Denylist entries of both kinds (a revocation's and a rotation's) restore and scan back, one
/// per session, as [`DenyEntry::merge`](crate::store::DenyEntry::merge) combines them.
pub async fn denylist_entries_round_trip<S: BackupStore>(store: S) {
    let until = at(DENY_FOR);
    let later = at(2 * DENY_FOR);
    let (a, b, c) = (record(&user("alice"), T0), record(&user("bob"), T0), record(&user("carol"), T0));
    let superseded = |r: &SessionRecord, below_generation, until| StoredItem::Superseded {
        session_id: r.id,
        below_generation,
        until,
    };
    let denied =
        |r: &SessionRecord, until| StoredItem::Denied { session_id: r.id, reason: RevocationReason::Admin, until };
    let items = vec![
        superseded(&a, 3, until),
        superseded(&a, 2, later),
        denied(&b, until),
        superseded(&c, 1, later),
        denied(&c, until),
    ];
    store.restore(items, T0).await.unwrap();
    let mut expected = vec![superseded(&a, 3, later), denied(&b, until), denied(&c, later)];
    expected.sort_by_cached_key(|item| serde_json::to_string(item).unwrap());
    let entries: Vec<StoredItem> = scan_all(&store).await.into_iter().filter(|i| i.deny_entry().is_some()).collect();
    assert_eq!(entries, expected, "merged per session: the later rotation, the revocation over the rotation");
}

/// An export of this store restores into a [`MemoryStore`](crate::MemoryStore) and back with
/// nothing lost: what another store exported, this one reads, and the other way round.
pub async fn backup_round_trips_through_another_store<S: BackupStore>(store: S) {
    let other = crate::MemoryStore::new();
    let records = backup_records(60);
    let (gone, live) = records.split_at(10);
    let expected = expected_items(live, gone);
    other.restore(expected.clone(), T0).await.unwrap();
    store.restore(scan_all(&other).await, T0).await.unwrap();
    let here = sessions_and_revocations(scan_all(&store).await);
    assert_eq!(here, expected, "memory -> this store");
    let back = crate::MemoryStore::new();
    back.restore(here, T0).await.unwrap();
    assert_eq!(sessions_and_revocations(scan_all(&back).await), expected, "this store -> memory");
}
