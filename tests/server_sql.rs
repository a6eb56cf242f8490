//! Example-server processes (`examples/server`) started with `--database-url`, as a deployment
//! would: on SQLite, sessions and revocations survive a crash (SIGKILL) of the server; on one
//! private PostgreSQL, two processes behave as one application, and fail closed (503
//! `store_unavailable`) while the database is down. Only 127.0.0.1 is contacted.

#![cfg(all(feature = "sqlite", feature = "postgres"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/postgres_server.rs"]
mod postgres_server;

#[path = "support/example_process.rs"]
mod example_process;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use example_process::ExampleProcess as Server;
use postgres_server::PostgresServer;
use serde_json::{Value, json};

fn server_command(database_url: &str) -> std::process::Command {
    let mut command = example_process::command("server");
    command
        .args(["--listen", "127.0.0.1:0", "--insecure-cookies", "--log-level", "warn"])
        .args(["--jwt-secret", "c2Vzc2lvbmtpdC10ZXN0LXNlY3JldC0zMi1ieXRlcy1sb25n"])
        .args(["--database-url", database_url])
        .env_remove("REDIS_URL")
        .env_remove("DATABASE_URL");
    command
}

fn start_server(database_url: &str) -> Server {
    example_process::start(server_command(database_url))
}

async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.expect("request to a loopback server");
    let status = response.status().as_u16();
    let bytes = response.bytes().await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// Logs `user` in through `server`; answers the login body.
async fn login(http: &reqwest::Client, server: &Server, user: &str, password: &str) -> Value {
    let (status, body) = send(
        http.post(format!("{}/api/v1/auth/login", server.base))
            .json(&json!({ "username": user, "password": password })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

fn session(http: &reqwest::Client, server: &Server, bearer: &str) -> reqwest::RequestBuilder {
    http.get(format!("{}/api/v1/auth/session", server.base)).bearer_auth(bearer)
}

/// A database file in a fresh temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("sessionkit-server-sql-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_sessions_and_logouts_survive_a_killed_server() {
    let dir = TempDir::new("crash");
    // sqlite:// followed by an absolute path: sqlite:///tmp/…/sessions.db. The file does not
    // exist yet: the server creates it.
    let url = format!("sqlite://{}", dir.0.join("sessions.db").display());
    let http = http();

    let mut first = start_server(&url);
    let alice = login(&http, &first, "alice", "wonderland").await;
    let bob = login(&http, &first, "bob", "builder").await;
    let alice_token = alice["session_token"].as_str().unwrap().to_owned();
    let bob_token = bob["session_token"].as_str().unwrap().to_owned();
    assert_eq!(send(http.post(format!("{}/api/v1/auth/logout", first.base)).bearer_auth(&bob_token)).await.0, 204);
    // A crash: SIGKILL, no shutdown code runs.
    first.kill();

    let second = start_server(&url);
    let (status, body) = send(session(&http, &second, &alice_token)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["session_id"], alice["session_id"]);
    let (status, body) = send(session(&http, &second, &bob_token)).await;
    assert_eq!(
        (status, body["error"].as_str(), body["reason"].as_str()),
        (401, Some("session_revoked"), Some("logout")),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_server_processes_on_one_postgres_are_one_application() {
    let Some(url) = PostgresServer::shared_database() else { return };
    let (a, b) = (start_server(&url), start_server(&url));
    let http = http();

    let login = login(&http, &a, "alice", "wonderland").await;
    let token = login["session_token"].as_str().unwrap().to_owned();
    let access = login["access_token"].as_str().unwrap().to_owned();

    // Created through A, used through B: with the session token and with the access token.
    let (status, body) = send(session(&http, &b, &token)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["session_id"], login["session_id"]);
    let (status, body) = send(session(&http, &b, &access)).await;
    assert_eq!(status, 200, "{body}");

    // Rotated through A: B refuses the previous access token once the notification arrives
    // (within a second) and accepts the new one, of the same session.
    let (status, rotated) =
        send(http.post(format!("{}/api/v1/auth/sessions/rotate", a.base)).bearer_auth(&token)).await;
    assert_eq!(status, 200, "{rotated}");
    assert_eq!(rotated["session_id"], login["session_id"]);
    let started = Instant::now();
    loop {
        let (status, body) = send(session(&http, &b, &access)).await;
        if status == 401 {
            assert_eq!(body["error"], "invalid_access_token", "{body}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(1), "B accepted a superseded access token for a second");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (token, access) =
        (rotated["session_token"].as_str().unwrap().to_owned(), rotated["access_token"].as_str().unwrap().to_owned());
    for bearer in [&token, &access] {
        let (status, body) = send(session(&http, &b, bearer)).await;
        assert_eq!((status, &body["session_id"]), (200, &login["session_id"]), "{body}");
    }

    // Logged out through B: A refuses the session token.
    assert_eq!(send(http.post(format!("{}/api/v1/auth/logout", b.base)).bearer_auth(&token)).await.0, 204);
    let (status, body) = send(session(&http, &a, &token)).await;
    assert_eq!(
        (status, body["error"].as_str(), body["reason"].as_str()),
        (401, Some("session_revoked"), Some("logout")),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_answers_503_quickly_and_the_server_recovers() {
    let Some(mut postgres) = PostgresServer::start("postgres_down_answers_503") else { return };
    let url = postgres.database("server_faults");
    let server = start_server(&url);
    let http = http();
    let login = login(&http, &server, "bob", "builder").await;
    let token = login["session_token"].as_str().unwrap().to_owned();

    postgres.stop();
    let started = Instant::now();
    let (status, body) = send(session(&http, &server, &token)).await;
    assert_eq!((status, body["error"].as_str()), (503, Some("store_unavailable")), "{body}");
    assert!(started.elapsed() < Duration::from_secs(2), "503 took {:?}", started.elapsed());

    // PostgreSQL is back (with its data): no server restart needed.
    postgres.restart();
    let started = Instant::now();
    loop {
        let (status, body) = send(session(&http, &server, &token)).await;
        if status == 200 {
            assert_eq!(body["session_id"], login["session_id"]);
            break;
        }
        assert_eq!((status, body["error"].as_str()), (503, Some("store_unavailable")), "{body}");
        assert!(started.elapsed() < Duration::from_secs(10), "the server did not recover after PostgreSQL came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs the server with `command` expecting it to refuse to start; answers its stderr.
fn refused(mut command: std::process::Command) -> String {
    let out = command.output().unwrap();
    assert!(!out.status.success(), "the server started");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_database_url_with_redis_url_or_snapshot_is_refused_at_startup() {
    let dir = TempDir::new("refused");
    let url = format!("sqlite://{}", dir.0.join("sessions.db").display());

    let mut both = server_command(&url);
    both.env("REDIS_URL", "redis://127.0.0.1:1/");
    let stderr = refused(both);
    assert!(stderr.contains("both REDIS_URL and a database URL"), "{stderr}");

    let mut snapshot = server_command(&url);
    snapshot.arg("--snapshot").arg(dir.0.join("snapshot"));
    let stderr = refused(snapshot);
    assert!(stderr.contains("--snapshot"), "{stderr}");

    let stderr = refused(server_command("mysql://127.0.0.1/sessions"));
    assert!(stderr.contains("unsupported database URL"), "{stderr}");

    // DATABASE_URL is read like the flag, and its password never printed.
    let mut env = example_process::command("server");
    env.args(["--listen", "127.0.0.1:0", "--log-level", "off"])
        .env_remove("REDIS_URL")
        .env("DATABASE_URL", "postgres://app:s3cret@127.0.0.1:1/sessions");
    let out = env.output().unwrap();
    assert!(!out.status.success(), "the server started without a database");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(stderr.contains("postgres://app:***@127.0.0.1:1/sessions"), "{stderr}");
    assert!(!stdout.contains("s3cret") && !stderr.contains("s3cret"), "{stdout}{stderr}");
}
