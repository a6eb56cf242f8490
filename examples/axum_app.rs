//! The smallest axum application with sessions: `POST /login`, `GET /me`, `POST /logout`, over
//! plain HTTP on loopback (development cookies). One user, `demo:demo`.
//!
//! ```text
//! cargo run --example axum_app -- --listen 127.0.0.1:3000
//! curl -si -X POST localhost:3000/login -H 'content-type: application/json' -d '{"username":"demo","password":"demo"}'
//! curl -s localhost:3000/me -H "authorization: Bearer $SESSION_TOKEN"
//! ```

use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use sessionkit::axum::{AllowedOrigins, ApiError, Auth, CurrentSession, JsonBody, LoggedOut, LoginAnswer};
use sessionkit::axum::{SessionLayer, WebConfig};
use sessionkit::{MemoryStore, SessionConfig, SessionManager, UserId};

#[derive(Deserialize)]
struct Credentials {
    username: String,
    password: String,
}

async fn login(auth: Auth, JsonBody(body): JsonBody<Credentials>) -> Result<LoginAnswer, ApiError> {
    // A real application verifies a password hash (Argon2id) in constant time.
    if (body.username.as_str(), body.password.as_str()) != ("demo", "demo") {
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "invalid_credentials", "wrong user name or password"));
    }
    let user = UserId::new(body.username).map_err(|e| ApiError::invalid_request(e.to_string()))?;
    auth.login(auth.new_session(user)).await
}

async fn me(current: CurrentSession) -> Json<Value> {
    Json(json!({ "user": current.user().as_str() }))
}

async fn logout(auth: Auth) -> Result<LoggedOut, ApiError> {
    auth.logout().await
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let listen = match (args.next().as_deref(), args.next()) {
        (Some("--listen"), Some(addr)) => addr,
        (None, _) => "127.0.0.1:3000".to_owned(),
        _ => return Err("usage: axum_app [--listen ADDR]".into()),
    };
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    let addr = listener.local_addr()?;

    let sessions = SessionManager::new(MemoryStore::new(), SessionConfig::default());
    // The origins this application's pages are served from; plain-HTTP cookies for loopback.
    let origins = AllowedOrigins::new(format!("http://{addr}"))?.and(format!("http://localhost:{}", addr.port()))?;
    let web = WebConfig::builder(origins).secure(false).build()?;
    let app = Router::new()
        .route("/login", post(login))
        .route("/me", get(me))
        .route("/logout", post(logout))
        .layer(SessionLayer::new(sessions, web));

    println!("listening on http://{addr}");
    axum::serve(listener, app).await?;
    Ok(())
}
