//! An HTTP login server on sessionkit, with axum and tokio: password login, bearer-token or
//! cookie authentication, session listing and revocation, and admin endpoints.
//!
//! ```text
//! cargo run --example server -- --listen 127.0.0.1:8080 \
//!     --user alice:wonderland --user bob:builder --admin alice
//! ```
//!
//! Without `--user` the demo users `alice:wonderland` (admin) and `bob:builder` are created.
//! Other flags (all optional): `--idle-timeout 15m`, `--absolute-timeout 8h`,
//! `--remember-me-idle-timeout 7days`, `--remember-me-absolute-timeout 30days`,
//! `--max-sessions-per-user N|unlimited`, `--on-limit evict-oldest|evict-lru|reject`,
//! `--config FILE` (a `SessionConfig` in TOML, which the flags override) and
//! `--insecure-cookies` (no `Secure` cookie attribute, for plain-HTTP development). Port 0
//! picks a free port; the server prints `listening on http://ADDR` once it accepts connections,
//! and shuts down gracefully on Ctrl-C or SIGTERM.
//!
//! JSON in and out; every error is `{"error": "<code>", "message": "<text>"}` (expired and
//! revoked sessions add `"reason"`). Authenticated endpoints take
//! `Authorization: Bearer <session_token>` or the `session` cookie.
//!
//! | Endpoint | Answer |
//! |---|---|
//! | `POST /api/v1/auth/login` `{"username","password","remember_me"?}` | 200 token, id and deadlines; sets the `session` cookie. 401 `invalid_credentials`, 409 `session_limit_reached` |
//! | `GET /api/v1/auth/session` | 200 the current session |
//! | `POST /api/v1/auth/sessions/refresh` | 200 the session with its idle deadline extended |
//! | `POST /api/v1/auth/logout` | 204, clears the cookie |
//! | `POST /api/v1/auth/logout-all` | 200 `{"revoked": n}`: every session of the user |
//! | `GET /api/v1/auth/sessions` | 200 `{"sessions": [...]}`, the caller's, with `current` |
//! | `POST /api/v1/auth/sessions/revoke` `{"session_id"}` | 204; 404 `not_found` if not the caller's |
//! | `GET /api/v1/admin/sessions?user=NAME` | 200 that user's sessions (admins only, else 403) |
//! | `DELETE /api/v1/admin/sessions/{session_id}` | 204; 404 `not_found` |
//! | `DELETE /api/v1/admin/users/{name}/sessions` | 200 `{"revoked": n}` |
//!
//! Unauthenticated requests get 401 `invalid_session`, `session_expired` (`reason` `idle` or
//! `absolute`) or `session_revoked` (`reason` `logout`, `logout_all`, `admin`, `evicted`); a
//! store failure 503 `store_unavailable`; bodies over 64 KiB 413 `payload_too_large`; malformed
//! JSON 400 `invalid_request`; unknown routes 404 `not_found`.
//!
//! ```text
//! curl -s -X POST localhost:8080/api/v1/auth/login -H 'content-type: application/json' \
//!     -d '{"username":"alice","password":"wonderland"}'
//! curl -s localhost:8080/api/v1/auth/session -H "authorization: Bearer $TOKEN"
//! ```

mod app;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use sessionkit::{MemoryStore, SystemClock};

/// How often expired sessions are swept from the store, and how many at most per sweep.
const SWEEP_EVERY: Duration = Duration::from_secs(60);
const SWEEP_BATCH: usize = 10_000;

/// An HTTP login server on sessionkit.
#[derive(Debug, Parser)]
#[command(name = "server", version)]
struct Cli {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,

    #[command(flatten)]
    options: app::Options,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    let state = app::AppState::from_options(&cli.options, MemoryStore::new(), SystemClock)?;
    if state.users.are_demo_users() {
        let names: Vec<String> = state
            .users
            .names()
            .into_iter()
            .map(|(name, admin)| if admin { format!("{name} (admin)") } else { name.to_owned() })
            .collect();
        println!(
            "note: no --user given, using the demo users alice:wonderland and bob:builder (users: {})",
            names.join(", ")
        );
    }
    if !state.secure_cookies {
        println!(
            "note: --insecure-cookies: the session cookie is sent without `Secure`; use only over plain-HTTP loopback"
        );
    }

    let listener =
        tokio::net::TcpListener::bind(cli.listen).await.map_err(|e| format!("cannot listen on {}: {e}", cli.listen))?;
    let addr = listener.local_addr()?;

    let sweeper = {
        let state = state.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(SWEEP_EVERY);
            loop {
                ticks.tick().await;
                if let Err(e) = state.sweep_expired(SWEEP_BATCH).await {
                    eprintln!("sweeping expired sessions failed: {e}");
                }
            }
        })
    };

    println!("listening on http://{addr}");
    let served = app::serve(listener, app::router(state), shutdown_signal()).await;
    sweeper.abort();
    served?;
    println!("shut down");
    Ok(())
}

/// Completes on Ctrl-C or, on Unix, SIGTERM. A signal that cannot be listened for never fires
/// (rather than shutting the server down at once).
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            eprintln!("cannot listen for Ctrl-C: {e}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(e) => {
                eprintln!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    println!("shutting down");
}
