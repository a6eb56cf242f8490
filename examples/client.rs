//! An API client of the example server (`examples/server`), with reqwest and
//! [`sessionkit::client::TokenHolder`]: it logs in, then makes parallel API calls through the
//! holder, which refreshes the access token once for all of them.
//!
//! ```text
//! cargo run --example server -- --access-token-ttl 20s     # in one terminal
//! cargo run --example client                               # in another
//! ```
//!
//! Flags (all optional): `--server URL` (or the environment variable `SESSIONKIT_SERVER`;
//! default `http://127.0.0.1:8080`), `--user NAME:PASSWORD` (default `alice:wonderland`, a demo
//! user of the server), `--tasks N` (parallel requests per round, default 8), `--max-wait
//! DURATION` (how long to wait for the access token to come due for refresh, default `60s`).
//!
//! What it does, printing each step: (1) log in and hold the token pair; (2) N parallel
//! `GET /api/v1/auth/session` with the fresh access token: no refresh; (3) N tasks report the
//! access token rejected, as they would on `401 access_token_expired`: one refresh; (4) if the
//! access token comes due within `--max-wait` (start the server with a short
//! `--access-token-ttl`), wait for it and make N parallel requests: one refresh; (5) log out.
//!
//! Every request goes through [`ApiClient::get`]: it asks the holder for a token
//! (`get_or_refresh`, which refreshes ahead of expiry) and, if the server still answers `401
//! access_token_expired` (the device slept, or the token was older than the client thought),
//! hands that token back with `refresh_stale` and retries once. `tests/client_example.rs` runs
//! this flow against the server in-process.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use clap::Parser;
use serde_json::{Value, json};
use sessionkit::client::{FailureKind, Grant, RefreshError, RefreshFailure, TokenHolder, Tokens};
use sessionkit::{Clock, SystemClock};

/// An API client of the example server, with reqwest and sessionkit's token holder.
#[derive(Debug, Parser)]
#[command(name = "client")]
struct Cli {
    /// Base URL of the example server.
    #[arg(long, env = "SESSIONKIT_SERVER", default_value = "http://127.0.0.1:8080")]
    server: String,

    /// Who to log in as, NAME:PASSWORD.
    #[arg(long, value_name = "NAME:PASSWORD", default_value = "alice:wonderland")]
    user: String,

    /// Parallel requests per round.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=1000))]
    tasks: u16,

    /// Longest wait for the access token to come due for refresh, e.g. "60s".
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    max_wait: Duration,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let Some((user, password)) = cli.user.split_once(':') else {
        eprintln!("error: --user must be NAME:PASSWORD");
        return std::process::ExitCode::FAILURE;
    };
    let api = match reqwest::Client::builder().build() {
        Ok(http) => ApiClient::new(&cli.server, http, SystemClock),
        Err(e) => {
            eprintln!("error: cannot build the HTTP client: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match run(&api, user, password, usize::from(cli.tasks), cli.max_wait).await {
        Ok(_) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            std::process::ExitCode::FAILURE
        }
    }
}

/// Refreshes counted after each step of [`run`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Summary {
    /// After the round with the fresh token (expected: 0).
    pub(crate) fresh: usize,
    /// After the round of rejected tokens (expected: 1).
    pub(crate) rejected: usize,
    /// After the round once the token came due, if it came due within the wait (expected: 2).
    pub(crate) due: Option<usize>,
}

/// The whole demonstration: login, three rounds of `tasks` parallel requests, logout.
pub(crate) async fn run<C: Clock>(
    api: &ApiClient<C>,
    user: &str,
    password: &str,
    tasks: usize,
    max_wait: Duration,
) -> Result<Summary, ApiError> {
    let tokens = api.login(user, password).await?;
    println!(
        "logged in as {user}: access token valid for {}, refresh due in {}",
        show(tokens.expires_at().map(|at| at.duration_since(tokens.obtained_at()))),
        show(api.holder().time_until_refresh()),
    );

    round(api, tasks, "fresh token").await?;
    let fresh = api.refreshes();
    println!("  refreshes so far: {fresh}");

    // What N requests do when the server rejects their token as expired: the first one
    // refreshes, the others get its result, and stragglers get the new token directly.
    let stale = api.holder().get_or_refresh(api.refresher()).await.map_err(ApiError::Refresh)?;
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..tasks {
        let (api, stale) = (api.clone(), Arc::clone(&stale));
        set.spawn(async move { api.holder().refresh_stale(&stale, api.refresher()).await });
    }
    while let Some(joined) = set.join_next().await {
        joined.map_err(|e| ApiError::Task(e.to_string()))?.map_err(ApiError::Refresh)?;
    }
    let rejected = api.refreshes();
    println!("{tasks} tasks saw their access token rejected: refreshes so far: {rejected}");

    let due = match api.holder().time_until_refresh() {
        Some(wait) if wait <= max_wait => {
            println!("waiting {} for the access token to come due for refresh", show(Some(wait)));
            tokio::time::sleep(wait).await;
            round(api, tasks, "token due for refresh").await?;
            println!("  refreshes so far: {}", api.refreshes());
            Some(api.refreshes())
        }
        wait => {
            println!(
                "the access token comes due in {}, more than --max-wait {}; start the server with \
                 --access-token-ttl 20s to see a scheduled refresh",
                show(wait),
                show(Some(max_wait)),
            );
            None
        }
    };

    api.logout().await?;
    println!("logged out");
    Ok(Summary { fresh, rejected, due })
}

/// `tasks` parallel `GET /api/v1/auth/session`.
async fn round<C: Clock>(api: &ApiClient<C>, tasks: usize, label: &str) -> Result<(), ApiError> {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..tasks {
        let api = api.clone();
        set.spawn(async move { api.get("/api/v1/auth/session").await });
    }
    let mut ok = 0;
    while let Some(joined) = set.join_next().await {
        let session = joined.map_err(|e| ApiError::Task(e.to_string()))??;
        if session["user"].is_string() {
            ok += 1;
        }
    }
    println!("{tasks} parallel requests with the {label}: {ok} answered with the session");
    Ok(())
}

fn show(d: Option<Duration>) -> String {
    d.map_or_else(|| "unknown".to_owned(), |d| humantime::format_duration(Duration::from_secs(d.as_secs())).to_string())
}

// -------------------------------------------------------------------------------------------
// The client
// -------------------------------------------------------------------------------------------

/// Why a call failed.
#[derive(Debug)]
pub(crate) enum ApiError {
    /// The request could not be sent or its answer read.
    Http(reqwest::Error),
    /// The server answered with an error (`{"error": code, ...}`).
    Status {
        /// The HTTP status.
        status: u16,
        /// The `error` field of the body.
        code: String,
    },
    /// A refresh was needed without a refresh token (not logged in).
    NotLoggedIn,
    /// The refresh failed (the error of the refresh request, shared by every waiting call).
    Refresh(RefreshError<ApiError>),
    /// A task of the demonstration failed.
    Task(String),
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Http(_) => f.write_str("HTTP request failed"),
            Self::Status { status, code } => write!(f, "server answered {status} {code}"),
            Self::NotLoggedIn => f.write_str("not logged in"),
            Self::Refresh(e) => write!(f, "{e}"),
            Self::Task(e) => write!(f, "task failed: {e}"),
        }
    }
}

impl std::error::Error for ApiError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Http(e) => Some(e),
            Self::Refresh(e) => e.source(),
            Self::Status { .. } | Self::NotLoggedIn | Self::Task(_) => None,
        }
    }
}

/// What a failed refresh means for the holder: a request that got no answer, or a `5xx`,
/// `408` or `429`, is tried again after a back-off; a `401` (the refresh token is spent,
/// expired or revoked) or any other answer is final until the next login.
impl RefreshFailure for ApiError {
    fn failure_kind(&self) -> FailureKind {
        match self {
            Self::Http(e) => e.status().map_or(FailureKind::Transient, |s| FailureKind::from_status(s.as_u16())),
            Self::Status { status, .. } => FailureKind::from_status(*status),
            Self::NotLoggedIn | Self::Refresh(_) | Self::Task(_) => FailureKind::Rejected,
        }
    }
}

impl From<reqwest::Error> for ApiError {
    fn from(e: reqwest::Error) -> Self {
        Self::Http(e)
    }
}

type GrantFuture = Pin<Box<dyn Future<Output = Result<Grant, ApiError>> + Send>>;

/// An API client of the example server. Cheap to clone; clones share the tokens.
pub(crate) struct ApiClient<C: Clock = SystemClock> {
    base: String,
    http: reqwest::Client,
    holder: TokenHolder<ApiError, C>,
    refreshes: Arc<AtomicUsize>,
}

// Not derived: that would require `C: Clone`, and the holder is shared, not the clock.
impl<C: Clock> Clone for ApiClient<C> {
    fn clone(&self) -> Self {
        Self {
            base: self.base.clone(),
            http: self.http.clone(),
            holder: self.holder.clone(),
            refreshes: Arc::clone(&self.refreshes),
        }
    }
}

impl<C: Clock> ApiClient<C> {
    /// A client of the server at `base` (`http://host:port`), logged out.
    pub(crate) fn new(base: &str, http: reqwest::Client, clock: C) -> Self {
        let base = base.trim_end_matches('/').to_owned();
        Self { base, http, holder: TokenHolder::with_clock(clock), refreshes: Arc::default() }
    }

    /// The token holder.
    pub(crate) fn holder(&self) -> &TokenHolder<ApiError, C> {
        &self.holder
    }

    /// How many refresh requests were sent.
    pub(crate) fn refreshes(&self) -> usize {
        self.refreshes.load(Ordering::SeqCst)
    }

    /// `POST /api/v1/auth/login`; holds the token pair of the answer.
    pub(crate) async fn login(&self, user: &str, password: &str) -> Result<Arc<Tokens>, ApiError> {
        let response = self
            .http
            .post(format!("{}/api/v1/auth/login", self.base))
            .json(&json!({ "username": user, "password": password }))
            .send()
            .await?;
        // The answer also carries the session token and deadlines; `Grant` reads
        // `access_token`, `refresh_token` and `expires_in`.
        let grant: Grant = checked(response).await?.json().await?;
        Ok(self.holder.set(grant))
    }

    /// `POST /api/v1/auth/logout` with the current access token, then forgets the tokens.
    pub(crate) async fn logout(&self) -> Result<(), ApiError> {
        if let Some(tokens) = self.holder.clear() {
            let request = self.http.post(format!("{}/api/v1/auth/logout", self.base));
            checked(request.bearer_auth(tokens.access_token().expose_secret()).send().await?).await?;
        }
        Ok(())
    }

    /// `GET path` with the access token, refreshed as needed: ahead of expiry, and once after
    /// a `401 access_token_expired`.
    pub(crate) async fn get(&self, path: &str) -> Result<Value, ApiError> {
        let tokens = self.holder.get_or_refresh(self.refresher()).await.map_err(ApiError::Refresh)?;
        match self.send_get(path, &tokens).await {
            Err(ApiError::Status { status: 401, code }) if code == "access_token_expired" => {
                let tokens = self.holder.refresh_stale(&tokens, self.refresher()).await.map_err(ApiError::Refresh)?;
                self.send_get(path, &tokens).await
            }
            answer => answer,
        }
    }

    async fn send_get(&self, path: &str, tokens: &Tokens) -> Result<Value, ApiError> {
        let request = self.http.get(format!("{}{path}", self.base)).bearer_auth(tokens.access_token().expose_secret());
        Ok(checked(request.send().await?).await?.json().await?)
    }

    /// The refresh the holder runs (once for all waiting calls): `POST
    /// /api/v1/auth/refresh-token` with the held refresh token.
    pub(crate) fn refresher(&self) -> impl FnOnce(Option<Arc<Tokens>>) -> GrantFuture + Send + 'static {
        let (http, url, refreshes) =
            (self.http.clone(), format!("{}/api/v1/auth/refresh-token", self.base), Arc::clone(&self.refreshes));
        move |old| {
            Box::pin(async move {
                let refresh_token = old.as_deref().and_then(Tokens::refresh_token).ok_or(ApiError::NotLoggedIn)?;
                refreshes.fetch_add(1, Ordering::SeqCst);
                let response =
                    http.post(url).json(&json!({ "refresh_token": refresh_token.expose_secret() })).send().await?;
                Ok(checked(response).await?.json::<Grant>().await?)
            })
        }
    }
}

/// The response if it is a success, else its status and error code.
async fn checked(response: reqwest::Response) -> Result<reqwest::Response, ApiError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body: Value = response.json().await.unwrap_or(Value::Null);
    let code = body["error"].as_str().unwrap_or("unknown").to_owned();
    Err(ApiError::Status { status: status.as_u16(), code })
}
