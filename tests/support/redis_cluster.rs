//! A private Redis Cluster for one test: three masters (and, on request, one replica each)
//! from `redis-server --cluster-enabled yes` on free loopback ports in fresh temporary
//! directories, joined with `redis-cli --cluster create`, waited for until every node reports
//! `cluster_state:ok`, and stopped (directories removed) on drop. Never a shared or remote
//! server. A node's cluster bus listens on its port + 10000, so both ports are checked free.
//!
//! If `redis-server` or `redis-cli` is missing, [`RedisCluster::start`] prints one line saying
//! the test was skipped and returns `None` — unless `SESSIONKIT_REQUIRE_REDIS` is set (as
//! `.ci/run` does), in which case it panics.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A node runs under a small shell that waits on a pipe from this process: a line "keep" kills
/// the server (SIGKILL) and keeps its directory; the pipe closing (this process ending, however
/// it ends, or the node dropped) kills it and removes the directory. So a cluster shared by a
/// whole test binary, in a static that is never dropped, leaves nothing behind.
pub struct Node {
    pub port: u16,
    dir: PathBuf,
    child: Option<(Child, ChildStdin)>,
}

pub struct RedisCluster {
    pub nodes: Vec<Node>,
}

static NEXT_DIR: AtomicU32 = AtomicU32::new(0);

/// A port that is free, with its bus port (+10000) free too.
fn free_port() -> u16 {
    loop {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        if port < 55_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli").arg("-p").arg(port.to_string()).args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Node {
    fn start(&mut self) {
        assert!(self.child.is_none(), "already running");
        let script = r#"dir="$1"; shift; "$@" & pid=$!; read -r cmd; kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; [ "$cmd" = keep ] || rm -rf "$dir""#;
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("sh")
            .arg(&self.dir)
            .arg("redis-server")
            .arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--cluster-enabled", "yes", "--cluster-node-timeout", "1000"])
            .arg("--cluster-config-file")
            .arg(self.dir.join("nodes.conf"))
            .arg("--dir")
            .arg(&self.dir)
            // A replica's first full sync starts at once (not after the default 5 s wait for
            // more replicas), so that it can take over as soon as the test needs it to.
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no", "--repl-diskless-sync-delay", "0"])
            .arg("--logfile")
            .arg(self.dir.join("redis.log"))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        self.child = Some((child, stdin));
        let deadline = Instant::now() + Duration::from_secs(10);
        while cli(self.port, &["PING"]).trim() != "PONG" {
            assert!(Instant::now() < deadline, "redis-server did not start; see {}", self.dir.display());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    /// `INFO replication`'s role: "master" or "slave".
    pub fn role(&self) -> String {
        cli(self.port, &["INFO", "replication"])
            .lines()
            .find_map(|l| l.strip_prefix("role:"))
            .map(|r| r.trim().to_owned())
            .unwrap_or_default()
    }

    /// Waits (at most 2 s) until its replica has every write (`WAIT 1`).
    pub fn wait_replica(&self) {
        cli(self.port, &["WAIT", "1", "2000"]);
    }

    /// How many keys the node holds that match `pattern`.
    pub fn keys(&self, pattern: &str) -> usize {
        cli(self.port, &["--scan", "--pattern", pattern]).lines().count()
    }
}

impl RedisCluster {
    /// Three masters, and one replica of each with `replicas`.
    pub fn start(test: &str, replicas: bool) -> Option<Self> {
        let installed = |p: &str| Command::new(p).arg("--version").stdout(Stdio::null()).status().is_ok();
        if !installed("redis-server") || !installed("redis-cli") {
            if std::env::var_os("SESSIONKIT_REQUIRE_REDIS").is_some() {
                panic!("redis-server or redis-cli is not installed, and SESSIONKIT_REQUIRE_REDIS is set");
            }
            println!("skipped {test}: redis-server is not installed (apt-get install redis-server)");
            return None;
        }
        let count = if replicas { 6 } else { 3 };
        let mut nodes = Vec::new();
        for _ in 0..count {
            let dir = std::env::temp_dir().join(format!(
                "sessionkit-cluster-{}-{}",
                std::process::id(),
                NEXT_DIR.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&dir).unwrap();
            let mut node = Node { port: free_port(), dir, child: None };
            node.start();
            nodes.push(node);
        }
        let cluster = Self { nodes };
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for n in &cluster.nodes {
            create.arg(format!("127.0.0.1:{}", n.port));
        }
        create.args(["--cluster-replicas", if replicas { "1" } else { "0" }, "--cluster-yes"]);
        let out = create.output().unwrap();
        assert!(out.status.success(), "cluster create failed: {}", String::from_utf8_lossy(&out.stdout));
        cluster.wait_ok();
        if replicas {
            cluster.wait_replicas_online();
        }
        Some(cluster)
    }

    /// Waits until every running node reports `cluster_state:ok` and knows every master.
    pub fn wait_ok(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ok = self.nodes.iter().filter(|n| n.running()).all(|n| {
                cli(n.port, &["CLUSTER", "INFO"]).contains("cluster_state:ok")
                    && cli(n.port, &["CLUSTER", "NODES"]).lines().filter(|l| l.contains("master")).count() >= 3
            });
            if ok {
                return;
            }
            assert!(Instant::now() < deadline, "the cluster did not become ok");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until every master has a replica in sync.
    fn wait_replicas_online(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.masters().iter().all(|m| cli(m.port, &["INFO", "replication"]).contains("state=online")) {
            assert!(Instant::now() < deadline, "the replicas did not come online");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(Node::url).collect()
    }

    /// The running masters.
    pub fn masters(&self) -> Vec<&Node> {
        self.nodes.iter().filter(|n| n.running() && n.role() == "master").collect()
    }

    /// A cluster shared by the whole test binary (tests use key prefixes of their own); never
    /// stopped before the process ends. `None` if Redis is not installed.
    pub fn shared() -> Option<&'static Self> {
        static SHARED: OnceLock<Option<RedisCluster>> = OnceLock::new();
        SHARED.get_or_init(|| Self::start("the Redis Cluster tests", false)).as_ref()
    }

    /// Kills node `i` at once (SIGKILL), keeping its data for [`restart`](Self::restart).
    pub fn kill(&mut self, i: usize) {
        if let Some((mut child, mut stdin)) = self.nodes[i].child.take() {
            let _ = stdin.write_all(b"keep\n");
            drop(stdin);
            let _ = child.wait();
        }
    }

    /// Starts node `i` again, with its cluster configuration.
    pub fn restart(&mut self, i: usize) {
        self.nodes[i].start();
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some((mut child, stdin)) = node.child.take() {
                drop(stdin);
                let _ = child.wait();
            }
            let _ = std::fs::remove_dir_all(&node.dir);
        }
    }
}
