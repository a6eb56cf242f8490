//! A printed walkthrough of the sessionkit API, without HTTP.
//!
//! ```sh
//! cargo run --example quickstart
//! ```
//!
//! It logs a user in twice under a limit of one session (the first login is evicted), lets a
//! session expire through idle time on a mock clock, shows a remember-me session surviving the
//! same wait, rotates a token, and logs out.

use std::net::Ipv4Addr;
use std::time::Duration;

use sessionkit::clock::MockClock;
use sessionkit::{Error, LimitPolicy, MemoryStore, NewSession, SessionConfig, SessionManager, UserId};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let config = SessionConfig::builder()
        .idle_timeout(Duration::from_secs(15 * 60))
        .absolute_timeout(Duration::from_secs(8 * 3600))
        .remember_me_idle_timeout(Duration::from_secs(7 * 86400))
        .remember_me_absolute_timeout(Duration::from_secs(30 * 86400))
        .max_sessions_per_user(Some(1))
        .on_limit(LimitPolicy::EvictOldest)
        .build()?;
    // A mock clock lets this walkthrough skip time; production code uses `SessionManager::new`,
    // which reads the system clock.
    let clock = MockClock::new();
    let sessions = SessionManager::with_clock(MemoryStore::new(), config, clock.clone());
    let alice = UserId::new("alice")?;

    println!("1. Login, limit of one session per user (evict-oldest)");
    let laptop = sessions.create(NewSession::new(alice.clone()).ip(Ipv4Addr::new(192, 0, 2, 10).into())).await?;
    let laptop_token = laptop.token.expose_secret().to_owned();
    println!("   laptop session {} (token {} — redacted when printed)", laptop.session.id(), laptop.token);
    println!("   expires at {}", laptop.session.expires_at());

    println!("2. A second login of the same user evicts the first");
    let phone = sessions.create(NewSession::new(alice.clone()).user_agent("Phone/1.0")).await?;
    println!("   phone session {}, evicted {:?}", phone.session.id(), phone.evicted);
    match sessions.validate(&laptop_token).await {
        Err(e @ Error::Revoked { .. }) => println!("   laptop token now: {e}"),
        other => println!("   unexpected: {other:?}"),
    }

    println!("3. Validation on every request slides the idle deadline");
    let phone_token = phone.token.expose_secret().to_owned();
    clock.advance(Duration::from_secs(10 * 60));
    let s = sessions.validate(&phone_token).await?;
    println!("   after 10 minutes: valid, {} request(s), idle deadline {}", s.request_count(), s.idle_expires_at());

    println!("4. Fifteen idle minutes later the session has expired");
    clock.advance(Duration::from_secs(15 * 60));
    match sessions.validate(&phone_token).await {
        Err(e @ Error::Expired { .. }) => println!("   {e}"),
        other => println!("   unexpected: {other:?}"),
    }

    println!("5. A remember-me session outlives the same wait");
    let remembered = sessions.create(NewSession::new(alice.clone()).remember_me(true)).await?;
    let remembered_token = remembered.token.expose_secret().to_owned();
    clock.advance(Duration::from_secs(2 * 3600));
    let s = sessions.validate(&remembered_token).await?;
    println!("   after 2 hours: valid until {} at the latest", s.absolute_expires_at());

    println!("6. Rotation after a privilege change: new token, same session, old token dead");
    let rotated = sessions.rotate(&remembered_token).await?;
    println!(
        "   session {} kept; old token: {:?}",
        rotated.session.id(),
        sessions.validate(&remembered_token).await.err()
    );
    let new_token = rotated.token.expose_secret().to_owned();
    sessions.validate(&new_token).await?;

    println!("7. Logout ends the session at once");
    sessions.revoke(&new_token).await?;
    match sessions.validate(&new_token).await {
        Err(e) => println!("   after logout: {e}"),
        Ok(_) => println!("   unexpected: still valid"),
    }
    println!("   live sessions of alice: {}", sessions.list(&alice).await?.len());
    Ok(())
}
