//! Two example-server processes (`examples/server`) on one private `redis-server`, started
//! with `REDIS_URL` as a deployment would: they behave as one application, and fail closed
//! (503 `store_unavailable`, never 200) while Redis is down. Only 127.0.0.1 is contacted.

#![cfg(feature = "redis")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/redis_server.rs"]
mod redis_server;

#[path = "support/example_process.rs"]
mod example_process;

#[path = "support/redis_cluster.rs"]
mod redis_cluster;

use std::time::{Duration, Instant};

use example_process::ExampleProcess as Server;
use redis_server::RedisServer;
use serde_json::{Value, json};

fn start_server(redis_url: &str) -> Server {
    let mut command = example_process::command("server");
    command
        .args(["--listen", "127.0.0.1:0", "--insecure-cookies", "--log-level", "warn"])
        .args(["--jwt-secret", "c2Vzc2lvbmtpdC10ZXN0LXNlY3JldC0zMi1ieXRlcy1sb25n"])
        .env("REDIS_URL", redis_url)
        // A database URL from the environment would make the server refuse to start.
        .env_remove("DATABASE_URL");
    example_process::start(command)
}

/// A server on a Redis Cluster, given by `REDIS_CLUSTER_URLS` as a deployment would.
fn start_cluster_server(urls: &[String]) -> Server {
    let mut command = example_process::command("server");
    command
        .args(["--listen", "127.0.0.1:0", "--insecure-cookies", "--log-level", "warn"])
        .args(["--jwt-secret", "c2Vzc2lvbmtpdC10ZXN0LXNlY3JldC0zMi1ieXRlcy1sb25n"])
        .env("REDIS_CLUSTER_URLS", urls.join(","))
        .env_remove("REDIS_URL")
        .env_remove("DATABASE_URL");
    example_process::start(command)
}

async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.expect("request to a loopback server");
    let status = response.status().as_u16();
    let bytes = response.bytes().await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_server_processes_on_one_redis_are_one_application() {
    let Some(mut redis) = RedisServer::start("two_server_processes") else { return };
    let (a, b) = (start_server(&redis.url()), start_server(&redis.url()));
    let http = reqwest::Client::builder().no_proxy().build().unwrap();

    let (status, login) = send(
        http.post(format!("{}/api/v1/auth/login", a.base))
            .json(&json!({ "username": "alice", "password": "wonderland" })),
    )
    .await;
    assert_eq!(status, 200, "{login}");
    let token = login["session_token"].as_str().unwrap().to_owned();
    let access = login["access_token"].as_str().unwrap().to_owned();

    // Created through A, used through B: with the session token and with the access token.
    let session =
        |server: &Server, bearer: &str| http.get(format!("{}/api/v1/auth/session", server.base)).bearer_auth(bearer);
    let (status, body) = send(session(&b, &token)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["session_id"], login["session_id"]);
    assert_eq!(send(session(&b, &access)).await.0, 200);

    // Rotated through A: B refuses the previous access token within 100 ms (the denylist entry
    // travels by pub/sub) and accepts the new one, of the same session.
    let (status, rotated) =
        send(http.post(format!("{}/api/v1/auth/sessions/rotate", a.base)).bearer_auth(&token)).await;
    assert_eq!(status, 200, "{rotated}");
    assert_eq!(rotated["session_id"], login["session_id"]);
    let started = Instant::now();
    loop {
        let (status, body) = send(session(&b, &access)).await;
        if status == 401 {
            assert_eq!(body["error"], "invalid_access_token", "{body}");
            break;
        }
        assert!(started.elapsed() < Duration::from_millis(100), "B accepted a superseded access token for 100 ms");
    }
    let (token, access) =
        (rotated["session_token"].as_str().unwrap().to_owned(), rotated["access_token"].as_str().unwrap().to_owned());
    for bearer in [&token, &access] {
        let (status, body) = send(session(&b, bearer)).await;
        assert_eq!((status, &body["session_id"]), (200, &login["session_id"]), "{body}");
    }

    // Logged out through A: B refuses the session token at once, and the access token within
    // 100 ms (the denylist travels by pub/sub).
    assert_eq!(send(http.post(format!("{}/api/v1/auth/logout", a.base)).bearer_auth(&token)).await.0, 204);
    let (status, body) = send(session(&b, &token)).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("session_revoked")), "{body}");
    let started = Instant::now();
    loop {
        let (status, body) = send(session(&b, &access)).await;
        if status == 401 {
            assert_eq!(body["error"], "session_revoked", "{body}");
            break;
        }
        assert!(started.elapsed() < Duration::from_millis(100), "B accepted a revoked access token for 100 ms");
    }

    // A second login, then Redis goes down: authenticated requests fail closed with 503.
    let (_, login) = send(
        http.post(format!("{}/api/v1/auth/login", b.base)).json(&json!({ "username": "bob", "password": "builder" })),
    )
    .await;
    let token = login["session_token"].as_str().unwrap().to_owned();
    let access = login["access_token"].as_str().unwrap().to_owned();
    redis.kill();
    for server in [&a, &b] {
        for bearer in [&token, &access] {
            let (status, body) = send(session(server, bearer)).await;
            assert_eq!((status, body["error"].as_str()), (503, Some("store_unavailable")), "{body}");
        }
    }
    let (status, body) = send(
        http.post(format!("{}/api/v1/auth/login", a.base)).json(&json!({ "username": "bob", "password": "builder" })),
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (503, Some("store_unavailable")), "{body}");

    // Redis is back (empty: this one does not persist): no restart needed, answers are
    // truthful again (the session is gone with Redis's data).
    redis.restart();
    let started = Instant::now();
    loop {
        let (status, body) = send(session(&a, &token)).await;
        if status != 503 {
            assert_eq!((status, body["error"].as_str()), (401, Some("invalid_session")), "{body}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "the server did not recover after Redis came back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Two servers on one Redis Cluster act as one: a session made through one is used, and
/// ended, through the other, with the HTTP contract unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_server_processes_on_one_cluster_are_one_application() {
    let Some(cluster) = redis_cluster::RedisCluster::start("two_servers_on_a_cluster", false) else { return };
    let (a, b) = (start_cluster_server(&cluster.urls()), start_cluster_server(&cluster.urls()));
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let session =
        |server: &Server, bearer: &str| http.get(format!("{}/api/v1/auth/session", server.base)).bearer_auth(bearer);
    for (name, password) in [("alice", "wonderland"), ("bob", "builder")] {
        let (status, login) = send(
            http.post(format!("{}/api/v1/auth/login", a.base)).json(&json!({ "username": name, "password": password })),
        )
        .await;
        assert_eq!(status, 200, "{login}");
        let token = login["session_token"].as_str().unwrap().to_owned();
        let access = login["access_token"].as_str().unwrap().to_owned();
        let (status, body) = send(session(&b, &token)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["session_id"], login["session_id"]);
        assert_eq!(send(session(&b, &access)).await.0, 200);
        assert_eq!(send(http.post(format!("{}/api/v1/auth/logout", b.base)).bearer_auth(&token)).await.0, 204);
        let (status, body) = send(session(&a, &token)).await;
        assert_eq!((status, body["error"].as_str()), (401, Some("session_revoked")), "{body}");
    }
}
