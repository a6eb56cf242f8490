//! The web integration's request headers: `Authorization`, `Cookie` (one or several), `Origin`,
//! `Sec-Fetch-Site`, `Host` and `X-CSRF-Token`, through a router with `SessionLayer` and the
//! `CurrentSession`, `OptionalSession` and `Auth` extractors.
//!
//! The input is text: a first line `METHOD PATH`, then one `name: value` header a line. The
//! placeholders `{session}`, `{csrf}` and `{access}` become a live session's token, its CSRF
//! token and an access token of it, so that seeds reach the authenticated paths and the CSRF
//! guard. No answer may be a 500, and nothing may panic.
#![no_main]

use std::sync::OnceLock;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Method, Request, StatusCode};
use axum::routing::any;
use libfuzzer_sys::fuzz_target;
use sessionkit::axum::{AllowedOrigins, Auth, CurrentSession, OptionalSession, SessionLayer, WebConfig};
use sessionkit::{CsrfKey, NewSession, UserId};
use sessionkit_fuzz::{block_on, manager};
use tower::ServiceExt as _;

struct Fixture {
    router: Router,
    session: String,
    csrf: String,
    access: String,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let manager = manager();
        let key = CsrfKey::from_bytes(&[9; 32]).expect("a CSRF key");
        let origins = AllowedOrigins::new("https://app.example.com").expect("an origin");
        let web = WebConfig::builder(origins).csrf_key(key.clone()).build().expect("a web configuration");
        let created =
            block_on(manager.create(NewSession::new(UserId::new("alice").expect("a user")))).expect("a session");
        let tokens = created.tokens.expect("the manager has keys");
        let router = Router::new()
            .route("/me", any(|s: CurrentSession| async move { s.user().as_str().to_owned() }))
            .route("/maybe", any(|s: OptionalSession| async move { s.0.is_some().to_string() }))
            .route(
                "/auth",
                any(
                    |auth: Auth| async move { auth.current().await.map(|s| s.csrf_token().expose_secret().to_owned()) },
                ),
            )
            .layer(SessionLayer::new(manager, web));
        Fixture {
            router,
            csrf: key.token_for_digest(&created.token.digest()).expose_secret().to_owned(),
            session: created.token.expose_secret().to_owned(),
            access: tokens.access_token.expose_secret().to_owned(),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let fixture = fixture();
    let text = text
        .replace("{session}", &fixture.session)
        .replace("{csrf}", &fixture.csrf)
        .replace("{access}", &fixture.access);
    let mut lines = text.split('\n');
    let (method, path) = lines.next().unwrap_or_default().split_once(' ').unwrap_or(("GET", "/me"));
    let Ok(method) = Method::from_bytes(method.as_bytes()) else { return };
    let path = match path.trim() {
        p @ ("/me" | "/maybe" | "/auth") => p,
        _ => "/me",
    };
    let mut request = Request::builder().method(method).uri(path);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else { continue };
        let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(name.trim().as_bytes()), HeaderValue::from_str(value.trim()))
        else {
            continue;
        };
        request = request.header(name, value);
    }
    let Ok(request) = request.body(Body::empty()) else { return };
    let response = block_on(fixture.router.clone().oneshot(request)).expect("the router is infallible");
    let status = response.status();
    assert!(
        matches!(status, StatusCode::OK | StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN),
        "unexpected status {status}"
    );
});
