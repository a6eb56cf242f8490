//! The example server's logs (`examples/server`): one `access` line per request, and no token,
//! refresh token, access token or password anywhere in the log.
//!
//! The server answers on tasks of a multi-thread runtime, which a thread-local
//! `tracing::subscriber::set_default` would not see, so this test binary of its own installs a
//! global subscriber that captures everything (down to TRACE) into memory. Only 127.0.0.1 is
//! contacted.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

// This binary uses only part of the application.
#[allow(dead_code)]
#[path = "../examples/server/app.rs"]
mod app;
mod common;

use common::Captured;
use std::time::Duration;

use reqwest::header::COOKIE;
use serde_json::{Value, json};
use sessionkit::clock::MockClock;

/// Sends a request and answers its status and JSON body (`Null` when empty or not JSON).
async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.expect("request to the loopback server");
    let status = response.status().as_u16();
    let bytes = response.bytes().await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_is_logged_and_no_secret_is() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber of this test binary");

    let options = app::Options {
        users: vec!["alice:wonderland".into(), "bob:builder".into()],
        admins: vec!["alice".into()],
        ..app::Options::default()
    };
    let clock = MockClock::new();
    let running = app::Running::start(&options, clock).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(app::serve(listener, app::router(running.state.clone()), async move {
        let _ = stop.await;
    }));
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let url = |path: &str| format!("{base}{path}");

    // (method, path as logged, status) of every request, in order.
    let mut expected: Vec<(&str, &str, u16)> = Vec::new();

    let (status, login) =
        send(http.post(url("/api/v1/auth/login")).json(&json!({ "username": "alice", "password": "wonderland" })))
            .await;
    assert_eq!(status, 200, "{login}");
    expected.push(("POST", "/api/v1/auth/login", 200));
    let field = |body: &Value, name: &str| body[name].as_str().unwrap().to_owned();
    let (token, access, refresh) =
        (field(&login, "session_token"), field(&login, "access_token"), field(&login, "refresh_token"));

    assert_eq!(send(http.get(url("/api/v1/auth/session")).bearer_auth(&token)).await.0, 200);
    expected.push(("GET", "/api/v1/auth/session", 200));

    // Tokens in the query string and in the cookie: the query string is never logged.
    let query = format!("/api/v1/auth/session?access_token={access}&token={token}");
    let request = http.get(url(&query)).header(COOKIE, format!("session={token}"));
    assert_eq!(send(request).await.0, 200);
    expected.push(("GET", "/api/v1/auth/session", 200));

    let (status, pair) =
        send(http.post(url("/api/v1/auth/refresh-token")).json(&json!({ "refresh_token": refresh }))).await;
    assert_eq!(status, 200, "{pair}");
    expected.push(("POST", "/api/v1/auth/refresh-token", 200));
    let (access2, refresh2) = (field(&pair, "access_token"), field(&pair, "refresh_token"));

    assert_eq!(send(http.get(url("/api/v1/auth/session")).bearer_auth(&access2)).await.0, 200);
    expected.push(("GET", "/api/v1/auth/session", 200));
    assert_eq!(send(http.get(url("/api/v1/admin/sessions/stats")).bearer_auth(&token)).await.0, 200);
    expected.push(("GET", "/api/v1/admin/sessions/stats", 200));
    assert_eq!(send(http.get(url("/api/v1/admin/sessions/export")).bearer_auth(&access2)).await.0, 200);
    expected.push(("GET", "/api/v1/admin/sessions/export", 200));
    assert_eq!(send(http.get(url(&format!("/api/v1/nope?session={token}")))).await.0, 404);
    expected.push(("GET", "/api/v1/nope", 404));
    let (status, _) =
        send(http.post(url("/api/v1/auth/login")).json(&json!({ "username": "bob", "password": "wonderlnd" }))).await;
    assert_eq!(status, 401);
    expected.push(("POST", "/api/v1/auth/login", 401));
    assert_eq!(send(http.post(url("/api/v1/auth/logout")).bearer_auth(&token)).await.0, 204);
    expected.push(("POST", "/api/v1/auth/logout", 204));
    assert_eq!(send(http.get(url("/api/v1/auth/session")).bearer_auth(&token)).await.0, 401);
    expected.push(("GET", "/api/v1/auth/session", 401));

    let _ = shutdown.send(());
    tokio::time::timeout(Duration::from_secs(10), served).await.unwrap().unwrap().unwrap();
    assert_eq!(running.shut_down().await.unwrap(), None);

    let log = captured.text();
    let access_lines: Vec<&str> = log.lines().filter(|l| l.contains(" access: ")).collect();
    assert_eq!(access_lines.len(), expected.len(), "one line per request:\n{log}");
    for (line, (method, path, status)) in access_lines.iter().zip(&expected) {
        assert!(line.contains(" INFO "), "{line}");
        for part in [format!("method={method}"), format!("path={path} "), format!("status={status}")] {
            assert!(line.contains(&part), "{part:?} missing in {line}");
        }
        assert!(line.contains("latency_ms=") && line.contains("ip=127.0.0.1"), "{line}");
    }
    // The library's own events reach the same subscriber.
    assert!(log.lines().any(|l| l.contains(" sessionkit") && l.contains("session created")), "{log}");

    for secret in [&token, &access, &refresh, &access2, &refresh2] {
        assert!(!log.contains(secret.as_str()), "the log contains a token:\n{log}");
    }
    for leak in ["wonderland", "wonderlnd", "access_token=", "Bearer", "session="] {
        assert!(!log.contains(leak), "the log contains {leak:?}:\n{log}");
    }
}
