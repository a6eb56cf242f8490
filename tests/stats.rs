//! Analytics snapshot through the manager.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{HOUR, MINUTE, config, login, manager, user};
use sessionkit::NewSession;

#[tokio::test]
async fn stats_describe_the_live_sessions() {
    let (m, clock) = manager(config().absolute_timeout(48 * HOUR).idle_timeout(30 * HOUR));
    let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
    for _ in 0..3 {
        m.create(NewSession::new(user("alice")).ip(ip("192.0.2.1")).user_agent("Firefox")).await.unwrap();
    }
    clock.advance(2 * HOUR);
    m.create(NewSession::new(user("bob")).ip(ip("192.0.2.2")).remember_me(true)).await.unwrap();
    let gone = login(&m, "carol").await;
    m.revoke(&gone).await.unwrap();
    clock.advance(30 * MINUTE);

    let stats = m.stats().await.unwrap();
    assert_eq!(stats.active_sessions, 4);
    assert_eq!(stats.users, 2);
    assert!((stats.remember_me_share - 0.25).abs() < 1e-9);
    assert_eq!(stats.sessions_per_user[0].user.as_str(), "alice");
    assert_eq!(stats.sessions_per_user[0].sessions, 3);
    assert_eq!(stats.top_ips[0].ip, ip("192.0.2.1"));
    assert_eq!(stats.top_user_agents[0].sessions, 3);
    assert_eq!(stats.created_last_24h[23], 1, "bob, 30 minutes ago");
    assert_eq!(stats.created_last_24h[21], 3, "alice's three, 2.5 hours ago");
    assert!((stats.median_session_age_secs - 2.5 * 3600.0).abs() < 1.0);
    assert_eq!(stats.counters.created, 5);
    assert_eq!(stats.counters.revoked, 1);

    let json = serde_json::to_value(&stats).unwrap();
    for field in ["active_sessions", "users", "created_last_24h", "top_ips", "counters", "median_session_age_secs"] {
        assert!(json.get(field).is_some(), "{field} in {json}");
    }
    assert_eq!(json["created_last_24h"].as_array().unwrap().len(), 24);
}
