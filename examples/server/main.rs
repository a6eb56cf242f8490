//! An HTTP login server on sessionkit, with axum and tokio: password login, bearer-token or
//! cookie authentication, signed access tokens (JWT) with rotating refresh tokens, session
//! listing and revocation, and admin endpoints.
//!
//! ```text
//! cargo run --example server -- --listen 127.0.0.1:8080 \
//!     --user alice:wonderland --user bob:builder --admin alice
//! ```
//!
//! Open the printed address in a browser for the demo page (`GET /`, with `/app.js` and
//! `/app.css`): sign in, see the session's countdowns and your sessions, and watch the access
//! token refresh, the inactivity warning and sign-out, and the tabs follow one another. It is
//! configured with `--client-refresh-margin 60s`, `--client-idle-logout` (default: the idle
//! timeout), `--client-warning 60s` and `--client-check-interval 15m`, served at
//! `GET /api/v1/client-config`.
//!
//! The session glue (extractors, CSRF guard, cookies, JSON errors) is the library's
//! `sessionkit::axum`; this example keeps the handlers and options. Browsers: a state-changing
//! request (not GET/HEAD/OPTIONS) authenticated by the session cookie must come from an allowed
//! origin (`--allowed-origin ORIGIN`, repeatable; without it, an origin naming the request's own
//! `Host`) or carry `Sec-Fetch-Site: same-origin`, and
//! carry the session's `csrf_token` (in the login and session answers) in `X-CSRF-Token`, else
//! 403 `csrf_failed`; bearer requests are exempt, and a login is refused only for a foreign
//! `Origin`. Login also sets a `refresh_token` cookie (HttpOnly, `SameSite=Strict`,
//! `Path=/api/v1/auth/refresh-token`) that `refresh-token` uses when the body has no
//! `refresh_token`; a refresh through that cookie answers the new pair with the successor in
//! the cookie only. A login body with `"cookie_only": true` (the page sends it) leaves
//! `session_token` and `refresh_token` out of the answer. Every response carries `Content-Security-Policy`, `X-Content-Type-Options`,
//! `Referrer-Policy` and `X-Frame-Options`. `--host-cookie-prefix` names the session cookie
//! `__Host-session`; `--csrf-secret BASE64URL` (32 to 64 bytes) shares CSRF tokens between
//! instances, and `--csrf-secret NEW,OLD` rotates it (tokens made with `OLD` still accepted
//! while it is listed); `--access-token-leeway` and `--touch-interval` set those options.
//!
//! Without `--user` the demo users `alice:wonderland` (admin) and `bob:builder` are created.
//! Other flags (all optional): `--idle-timeout 15m`, `--absolute-timeout 8h`,
//! `--remember-me-idle-timeout 7days`, `--remember-me-absolute-timeout 30days`,
//! `--max-sessions-per-user N|unlimited`, `--on-limit evict-oldest|evict-lru|reject`,
//! `--config FILE` (a `SessionConfig` in TOML, which the flags override; the file is checked
//! only together with the flags) and `--insecure-cookies` (no `Secure` cookie attribute, for
//! plain-HTTP development). Port 0 picks a free port; the server prints
//! `listening on http://ADDR` once it accepts connections, and shuts down gracefully on Ctrl-C
//! or SIGTERM.
//!
//! Operations: `--sweep-interval 15m` (how often a background task removes expired sessions
//! from the store; they are refused anyway, sweeping frees their memory). `--snapshot FILE`
//! keeps sessions across restarts: at startup the file is loaded (a missing file is a first
//! start; a corrupt or truncated one stops the server with an error rather than starting
//! empty) and rewritten at once (so an unwritable path fails at startup); it is then saved
//! every `--snapshot-interval` (default `60s`, at least `100ms`, at most a day), the file
//! written on tokio's blocking pool rather than on a request worker; on Ctrl-C or SIGTERM,
//! once the requests in flight are answered and the sweeper and the periodic saves have
//! stopped, the sessions are saved to it once more. The server prints how many items it
//! loaded and saved. Every save writes a temporary file beside the snapshot, syncs it, renames
//! it over the snapshot and syncs the directory, so a crash or a SIGKILL at any moment leaves a
//! complete snapshot, the previous or the new one, and the next start loads it (temporary
//! files left by a killed process are never loaded, and are removed at startup). A crash loses
//! at most what changed in the last interval. Session and refresh tokens survive a restart,
//! and so do revocations: a token revoked before is still refused, with its reason (the file
//! holds SHA-256 digests, never a token; it does hold user names, IPs and user agents). Access
//! tokens survive only with a fixed `--jwt-secret` or `--jwt-ed25519-key`.
//!
//! `REDIS_URL=redis://…` keeps the sessions in a standalone Redis (feature `redis`), and
//! `--redis-cluster URL,URL,…` (or `REDIS_CLUSTER_URLS`) in a Redis Cluster given by seed
//! nodes: several servers on one Redis or one Cluster act as one.
//!
//! `--database-url URL` (or the `DATABASE_URL` environment variable) keeps the sessions in a
//! `SqlStore` instead of memory: `sqlite:///path/to/file.db` or `sqlite://PATH` (the file is
//! created when missing; feature `sqlite`) or `postgres://USER:PASSWORD@HOST/DB` (feature
//! `postgres`; several processes on one database act as one), printed without its password;
//! not together with `--snapshot` or `REDIS_URL` (built without the feature, it is a startup
//! error naming the feature):
//!
//! ```text
//! cargo run --features sqlite --example server -- --database-url sqlite://sessions.db
//! ```
//!
//! Logs go to stderr through `tracing`, at `--log-level info` by default (`off`, `error`,
//! `warn`, `info`, `debug`, `trace`): session events under the target `sessionkit` (user, IP,
//! user agent, never a token) and one line per request under the target `access` with
//! `method`, `path`, `status`, `latency_ms` and `ip`. Only the path is logged, never the query
//! string, a header or a body, so no token reaches the log.
//!
//! Access tokens: `--access-token-ttl 15m` (their lifetime, at most a day),
//! `--refresh-reuse-grace 5s` (how long a just-spent refresh token still returns the same pair;
//! `0s` for strictly single-use), `--jwt-issuer ISS` and `--jwt-audience AUD` (claims put in and
//! required). They are signed with HS256 under `--jwt-secret BASE64URL` (base64url without
//! padding, at least 32 bytes decoded; `head -c 32 /dev/urandom | basenc --base64url | tr -d =`;
//! note that a command line is visible to other local users), or with EdDSA under
//! `--jwt-ed25519-key FILE` (a PKCS#8 private key, DER or PEM, e.g. from
//! `openssl genpkey -algorithm ed25519`; its `kid` is its RFC 7638 thumbprint). Without either,
//! a random HS256 secret is generated at startup and every access token dies with the process.
//!
//! JSON in and out; every error is `{"error": "<code>", "message": "<text>"}` (expired and
//! revoked sessions add `"reason"`). Authenticated endpoints take
//! `Authorization: Bearer <session_token>`, `Authorization: Bearer <access_token>` or the
//! `session` cookie; a bearer token with two dots is taken for an access token, anything else
//! for a session token. A request on an access token is not counted in the session's
//! `request_count` and does not slide its idle deadline (refreshing the tokens does).
//!
//! | Endpoint | Answer |
//! |---|---|
//! | `POST /api/v1/auth/login` `{"username","password","remember_me"?}` | 200 session token, id and deadlines, and `access_token`, `refresh_token`, `token_type` (`"Bearer"`), `expires_in` (seconds); sets the `session` cookie. 401 `invalid_credentials`, 409 `session_limit_reached` |
//! | `POST /api/v1/auth/refresh-token` `{"refresh_token"}` | 200 `{"access_token","refresh_token","token_type","expires_in"}`: a new pair; the old refresh token is spent. Presented again within the grace window it returns the same pair; later, 401 `refresh_token_reused` and the session is revoked (`reason` `refresh_reuse`). 401 `invalid_refresh_token`, `session_expired` |
//! | `GET /.well-known/jwks.json` | 200 `{"keys": [...]}`: the Ed25519 public key (`OKP`), or no key under HS256 |
//! | `GET /api/v1/auth/session` | 200 the current session |
//! | `POST /api/v1/auth/sessions/refresh` | 200 the session with its idle deadline extended (with an access token: the session unchanged; use `refresh-token`) |
//! | `POST /api/v1/auth/sessions/rotate` | 200 the new `session_token`, `csrf_token`, the unchanged `session_id` and, with signing keys, a new `access_token` and `refresh_token` (through the cookie, new cookies too): after a privilege change. The previous session token, CSRF token, access token and refresh token are refused from then on, on every instance. 401 `invalid_session` with an access token |
//! | `POST /api/v1/auth/logout` | 204, clears the cookie |
//! | `POST /api/v1/auth/logout-all` | 200 `{"revoked": n}`: every session of the user |
//! | `GET /api/v1/auth/sessions` | 200 `{"sessions": [...]}`, the caller's, with `current` |
//! | `POST /api/v1/auth/sessions/revoke` `{"session_id"}` | 204; 404 `not_found` if not the caller's |
//! | `GET /api/v1/admin/sessions?user=NAME` | 200 that user's sessions (this and the admin endpoints below: admins only, else 403 `forbidden`) |
//! | `DELETE /api/v1/admin/sessions/{session_id}` | 204; 404 `not_found` |
//! | `GET /api/v1/admin/sessions/stats` | 200 the store's statistics: `active_sessions`, `users`, `remember_me_share`, `sessions_per_user`, `created_last_24h` (24 hourly counts, oldest first), `top_ips`, `top_user_agents`, `average_session_age_secs`, `median_session_age_secs`, `counters` |
//! | `GET /api/v1/admin/sessions/export` | 200 `application/x-ndjson`: every session, remembered revocation and denylist entry as JSON Lines, from the header `{"format":"sessionkit","version":2,...}` to `{"type":"end","items":N}`; token digests, never tokens |
//! | `DELETE /api/v1/admin/users/{name}/sessions` | 200 `{"revoked": n}` |
//!
//! Unauthenticated requests get 401 `invalid_session`, `session_expired` (`reason` `idle` or
//! `absolute`) or `session_revoked` (`reason` `logout`, `logout_all`, `admin`, `evicted`,
//! `refresh_reuse`; an access token of a revoked session is refused at once, before it
//! expires), and with an access token also `access_token_expired` (past its `exp` and the
//! leeway) or `invalid_access_token` (bad signature, unknown key, wrong issuer or audience,
//! malformed). A store failure answers 503 `store_unavailable`; bodies over 64 KiB 413
//! `payload_too_large`; malformed JSON 400 `invalid_request`; unknown routes 404 `not_found`.
//!
//! ```text
//! curl -s -X POST localhost:8080/api/v1/auth/login -H 'content-type: application/json' \
//!     -d '{"username":"alice","password":"wonderland"}'
//! curl -s localhost:8080/api/v1/auth/session -H "authorization: Bearer $TOKEN"
//! curl -s -X POST localhost:8080/api/v1/auth/refresh-token -H 'content-type: application/json' \
//!     -d "{\"refresh_token\":\"$REFRESH\"}"
//! curl -s localhost:8080/.well-known/jwks.json
//! curl -s localhost:8080/api/v1/admin/sessions/stats -H "authorization: Bearer $TOKEN"
//! curl -s localhost:8080/api/v1/admin/sessions/export -H "authorization: Bearer $TOKEN"
//! ```

mod app;

use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use sessionkit::SystemClock;
use tracing_subscriber::filter::LevelFilter;

/// An HTTP login server on sessionkit.
#[derive(Debug, Parser)]
#[command(name = "server", version)]
struct Cli {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,

    /// Most verbose log level written to stderr: off, error, warn, info, debug or trace.
    #[arg(long, value_name = "LEVEL", default_value = "info")]
    log_level: LevelFilter,

    /// Keep the sessions in a database: sqlite:///path/to/file.db or sqlite://PATH (the file
    /// is created when missing; feature sqlite) or postgres://USER:PASSWORD@HOST:PORT/DB
    /// (feature postgres). Not together with REDIS_URL or --snapshot.
    #[arg(long, value_name = "URL", env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,

    /// Keep the sessions in a Redis Cluster, given by seed nodes separated by commas
    /// (redis://127.0.0.1:7000,redis://127.0.0.1:7001,…; feature redis). Not together with
    /// REDIS_URL (a standalone Redis), a database URL or --snapshot.
    #[arg(long, value_name = "URLS", env = "REDIS_CLUSTER_URLS", value_delimiter = ',', hide_env_values = true)]
    redis_cluster: Vec<String>,

    #[command(flatten)]
    options: app::Options,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(cli.log_level)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    let cluster: Vec<String> = cli.redis_cluster.iter().filter(|u| !u.is_empty()).cloned().collect();
    if !cluster.is_empty() {
        if std::env::var_os("REDIS_URL").is_some_and(|u| !u.is_empty())
            || cli.database_url.as_ref().is_some_and(|u| !u.is_empty())
        {
            return Err(
                "--redis-cluster (REDIS_CLUSTER_URLS) is given with REDIS_URL or a database URL: choose one store"
                    .into(),
            );
        }
        #[cfg(feature = "redis")]
        {
            let config = sessionkit::store::redis::RedisConfig::cluster(cluster);
            let running = app::Running::start_redis(&cli.options, SystemClock, config).await?;
            // The URLs may hold a password: print the store's own, redacted.
            let shown = running.state.manager.store().config().redacted_cluster_nodes();
            println!("store: Redis Cluster at {}", shown.join(","));
            return serve(cli, running).await;
        }
        #[cfg(not(feature = "redis"))]
        return Err("--redis-cluster is given, but the server was built without the `redis` feature (cargo run --features redis --example server)".into());
    }
    if let Some(url) = cli.database_url.clone().filter(|u| !u.is_empty()) {
        if std::env::var_os("REDIS_URL").is_some_and(|u| !u.is_empty()) {
            return Err(
                "both REDIS_URL and a database URL (--database-url or DATABASE_URL) are given: choose one store".into(),
            );
        }
        return run_sql(cli, &url).await;
    }
    #[cfg(feature = "redis")]
    if let Some(url) = std::env::var("REDIS_URL").ok().filter(|u| !u.is_empty()) {
        let config = sessionkit::store::redis::RedisConfig::new(url);
        let running = app::Running::start_redis(&cli.options, SystemClock, config).await?;
        // The URL may hold a password: print the store's own, redacted.
        println!("store: Redis at {}", running.state.manager.store().config().redacted_url());
        return serve(cli, running).await;
    }
    #[cfg(not(feature = "redis"))]
    if std::env::var_os("REDIS_URL").is_some() {
        return Err("REDIS_URL is set, but the server was built without the `redis` feature (cargo run --features redis --example server)".into());
    }
    let running = app::Running::start(&cli.options, SystemClock)?;
    println!("store: in memory");
    serve(cli, running).await
}

/// Serves over a `SqlStore` on `url`, if this build has the feature its scheme needs.
async fn run_sql(cli: Cli, url: &str) -> Result<(), Box<dyn std::error::Error>> {
    let feature = if url.starts_with("sqlite:") {
        "sqlite"
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        "postgres"
    } else {
        return Err(
            "unsupported database URL: expected sqlite:///path/to/file.db, sqlite://PATH or postgres://…".into()
        );
    };
    let built = match feature {
        "sqlite" => cfg!(feature = "sqlite"),
        _ => cfg!(feature = "postgres"),
    };
    #[cfg(any(feature = "postgres", feature = "sqlite"))]
    if built {
        let running = app::Running::start_sql(&cli.options, SystemClock, url).await?;
        // The URL may hold a password: print the store's own, redacted.
        println!("store: SQL database at {}", running.state.manager.store().config().redacted_url());
        return serve(cli, running).await;
    }
    let _ = (cli, built);
    Err(format!(
        "a {feature} database URL is given, but the server was built without the `{feature}` feature (cargo run --features {feature} --example server)"
    )
    .into())
}

async fn serve<S: app::Store>(
    cli: Cli,
    running: app::Running<S, SystemClock>,
) -> Result<(), Box<dyn std::error::Error>> {
    if let Some(path) = running.snapshot_path() {
        println!("snapshot: loaded {} items from {}", running.loaded, path.display());
    }
    let state = running.state.clone();
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
    if let Some(keys) = state.manager.keys() {
        let key = keys.active();
        println!("access tokens: {} (kid {})", key.algorithm(), key.kid());
    }
    if cli.options.jwt_secret.is_none() && cli.options.jwt_ed25519_key.is_none() {
        println!(
            "note: no --jwt-secret or --jwt-ed25519-key: access tokens are signed with a random secret and stop working when the server stops"
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

    println!("listening on http://{addr}");
    let served = app::serve(listener, app::router(state), shutdown_signal()).await;
    // The requests in flight have been answered (or serving failed): stop the sweeper, then
    // save the store, even after a serving error, so that no session is lost.
    let snapshot = running.snapshot_path().map(std::path::Path::to_owned);
    let saved = running.shut_down().await;
    if let (Ok(Some(items)), Some(path)) = (&saved, &snapshot) {
        println!("snapshot: saved {items} items to {}", path.display());
    }
    match (served, saved) {
        (Ok(()), Ok(_)) => {
            println!("shut down");
            Ok(())
        }
        (Err(serve), Ok(_)) => Err(serve.into()),
        (Ok(()), Err(save)) => Err(format!("cannot save the sessions: {save}").into()),
        (Err(serve), Err(save)) => Err(format!("{serve}; and cannot save the sessions: {save}").into()),
    }
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
