//! A private PostgreSQL server: Debian's `initdb` and `postgres` on a free loopback port in a
//! fresh temporary directory. Never a shared or remote server.
//!
//! [`PostgresServer::start`] makes one for a test (stopped, and its directory removed, on
//! drop); [`PostgresServer::shared_database`] makes one database per call on a server shared by
//! the whole test binary, so a suite of many tests starts one server, not one per test. The
//! shared server is never dropped (statics are not), so it is run under a small shell that
//! waits on a pipe from this process: when the process ends, however it ends, the pipe closes
//! and the shell kills the server and removes its directory.
//!
//! PostgreSQL refuses to run as root: as root, `initdb` and `postgres` run as `nobody` (through
//! `setpriv`), in a directory owned by `nobody`.
//!
//! If the binaries are missing, `start` prints one line saying the test was skipped and
//! returns `None` — unless `SESSIONKIT_REQUIRE_POSTGRES` is set (as `.ci/run` does), in which
//! case it panics, so CI can never skip these tests silently.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

pub struct PostgresServer {
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
    /// The supervising shell and the pipe it waits on.
    running: Option<(Child, ChildStdin)>,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// `/usr/lib/postgresql/<newest>/bin`, if it holds `initdb` and `postgres`.
fn binaries() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let v = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            (bin.join("initdb").exists() && bin.join("postgres").exists()).then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// `program` run as `nobody` when this process is root.
fn command(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

impl PostgresServer {
    /// A server of the test's own, or `None` (after printing why) if PostgreSQL is missing.
    pub fn start(test: &str) -> Option<Self> {
        let Some(bin) = binaries() else {
            if std::env::var_os("SESSIONKIT_REQUIRE_POSTGRES").is_some() {
                panic!("PostgreSQL is not installed, and SESSIONKIT_REQUIRE_POSTGRES is set");
            }
            println!("skipped {test}: PostgreSQL is not installed (apt-get install postgresql)");
            return None;
        };
        let dir = std::env::temp_dir().join(format!(
            "sessionkit-pg-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        if is_root() {
            let status = Command::new("chown").arg("nobody:nogroup").arg(&dir).status().unwrap();
            assert!(status.success(), "chown nobody {}", dir.display());
        }
        let out = command(&bin.join("initdb"))
            .arg("-D")
            .arg(dir.join("data"))
            .args(["-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C"])
            .output()
            .unwrap();
        assert!(out.status.success(), "initdb failed: {}", String::from_utf8_lossy(&out.stderr));
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut server = Self { port, dir, bin, running: None };
        server.restart();
        Some(server)
    }

    /// A fresh database on the test binary's shared server, as a URL; `None` if PostgreSQL
    /// is missing.
    pub fn shared_database() -> Option<String> {
        static SHARED: OnceLock<Option<Mutex<PostgresServer>>> = OnceLock::new();
        let server = SHARED.get_or_init(|| Self::start("the PostgreSQL tests").map(Mutex::new)).as_ref()?;
        let name = format!("t{}", NEXT.fetch_add(1, Ordering::Relaxed));
        Some(server.lock().unwrap().database(&name))
    }

    /// Creates database `name` and answers its URL.
    pub fn database(&self, name: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-q", "-c"])
            .arg(format!("CREATE DATABASE {name}"))
            .arg("-p")
            .arg(self.port.to_string())
            .output()
            .unwrap();
        assert!(out.status.success(), "CREATE DATABASE failed: {}", String::from_utf8_lossy(&out.stderr));
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Starts the server process (again), on the same port and directory, and waits until it
    /// answers.
    pub fn restart(&mut self) {
        assert!(self.running.is_none(), "already running");
        let postgres = command(&self.bin.join("postgres"));
        let mut argv: Vec<String> = std::iter::once(postgres.get_program().to_string_lossy().into_owned())
            .chain(postgres.get_args().map(|a| a.to_string_lossy().into_owned()))
            .collect();
        argv.extend([
            "-D".into(),
            self.dir.join("data").display().to_string(),
            "-p".into(),
            self.port.to_string(),
            "-k".into(),
            self.dir.display().to_string(),
            "-c".into(),
            "listen_addresses=127.0.0.1".into(),
            "-c".into(),
            // No fsync: the tests need no durability against power loss, and a SIGKILL loses
            // nothing committed (the WAL is written, only not flushed to disk).
            "fsync=off".into(),
            "-c".into(),
            "full_page_writes=off".into(),
            "-c".into(),
            "max_connections=300".into(),
        ]);
        // The shell starts the server, then waits for a line (or end of input) on its stdin:
        // "keep" stops the server and keeps the data; anything else, or this process ending,
        // also removes the directory.
        let script = r#"dir="$1"; shift; "$@" >"$dir/log" 2>&1 & pid=$!; read -r cmd; kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; [ "$cmd" = keep ] || rm -rf "$dir""#;
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("sh")
            .arg(&self.dir)
            .args(&argv)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        self.running = Some((child, stdin));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = Command::new(self.bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-U", "postgres", "-p"])
                .arg(self.port.to_string())
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return;
            }
            assert!(Instant::now() < deadline, "postgres did not start; see {}/log", self.dir.display());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the server at once (SIGKILL), keeping its data for [`restart`](Self::restart).
    pub fn stop(&mut self) {
        if let Some((mut child, mut stdin)) = self.running.take() {
            let _ = stdin.write_all(b"keep\n");
            drop(stdin);
            let _ = child.wait();
        }
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        if let Some((mut child, stdin)) = self.running.take() {
            drop(stdin);
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
