//! The minimal axum example (`examples/axum_app.rs`) as a process, driven over HTTP on
//! loopback: its contract (`--listen`, the printed address, `/login`, `/me`, `/logout`, the
//! cookie and the CSRF header) as a newcomer would use it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/example_process.rs"]
mod example_process;

use example_process::ExampleProcess;
use reqwest::header::{COOKIE, ORIGIN, SET_COOKIE};
use serde_json::{Value, json};

fn start() -> ExampleProcess {
    let mut command = example_process::command("axum_app");
    command.args(["--listen", "127.0.0.1:0"]);
    let app = example_process::start(command);
    assert!(app.base.starts_with("http://127.0.0.1:"), "{}", app.base);
    app
}

async fn send(request: reqwest::RequestBuilder) -> (u16, reqwest::header::HeaderMap, Value) {
    let response = request.send().await.expect("request to the loopback example");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.unwrap();
    (status, headers, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_minimal_example_logs_in_authenticates_and_logs_out() {
    let app = start();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let url = |path: &str| format!("{}{path}", app.base);

    // Wrong password, then the demo user.
    let (status, _, body) =
        send(http.post(url("/login")).json(&json!({ "username": "demo", "password": "nope" }))).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_credentials")), "{body}");
    let (status, headers, login) =
        send(http.post(url("/login")).json(&json!({ "username": "demo", "password": "demo" }))).await;
    assert_eq!(status, 200, "{login}");
    let token = login["session_token"].as_str().unwrap().to_owned();
    let csrf = login["csrf_token"].as_str().unwrap().to_owned();
    let set_cookie = headers.get(SET_COOKIE).unwrap().to_str().unwrap().to_owned();
    assert!(set_cookie.starts_with(&format!("session={token};")), "{set_cookie}");
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Lax"), "{set_cookie}");
    assert!(!set_cookie.contains("Secure"), "development cookies over plain HTTP: {set_cookie}");
    let cookie = format!("session={token}");

    // `/me` with the cookie, with a bearer token, and without either.
    let (status, _, body) = send(http.get(url("/me")).header(COOKIE, &cookie)).await;
    assert_eq!((status, body), (200, json!({ "user": "demo" })));
    let (status, _, body) = send(http.get(url("/me")).bearer_auth(&token)).await;
    assert_eq!((status, body), (200, json!({ "user": "demo" })));
    let (status, _, body) = send(http.get(url("/me"))).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_session")), "{body}");

    // Logout through the cookie needs the CSRF header (and the page's origin).
    let logout = || http.post(url("/logout")).header(COOKIE, &cookie).header(ORIGIN, &app.base);
    let (status, _, body) = send(logout()).await;
    assert_eq!((status, body["error"].as_str()), (403, Some("csrf_failed")), "{body}");
    let foreign = http.post(url("/logout")).header(COOKIE, &cookie).header(ORIGIN, "http://evil.example");
    let (status, _, body) = send(foreign.header("x-csrf-token", &csrf)).await;
    assert_eq!((status, body["error"].as_str()), (403, Some("csrf_failed")), "another origin: {body}");
    let (status, headers, _) = send(logout().header("x-csrf-token", &csrf)).await;
    assert_eq!(status, 204);
    let cleared = headers.get(SET_COOKIE).unwrap().to_str().unwrap();
    assert!(cleared.starts_with("session=;") && cleared.contains("Max-Age=0"), "{cleared}");

    let (status, _, body) = send(http.get(url("/me")).header(COOKIE, &cookie)).await;
    assert_eq!(
        (status, body["error"].as_str(), body["reason"].as_str()),
        (401, Some("session_revoked"), Some("logout"))
    );
}
