//! Crash safety of the example server's `--snapshot` (`examples/server`): a server process
//! saving every `--snapshot-interval` while logins keep it busy is killed with SIGKILL at
//! random moments (half of the kills aimed at a save in progress: the moment a file of the
//! snapshot appears or changes), and restarted, many times. Every restart must start (it loads a complete snapshot,
//! the previous or the new one, never a temporary file), and every session created more than
//! one interval (plus a margin for the save itself on a busy machine) before the kill must
//! still validate through the HTTP API. The snapshot is a bare relative file name in the
//! server's working directory, so the directory sync of a path whose parent is `""` is taken
//! too.
//!
//! Real time is unavoidable here (a real process saves on its own timer); sleeps only pace
//! the kills and the load, and no assertion depends on how fast anything runs: the number of
//! cycles is bounded by a time budget.

#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/example_process.rs"]
mod example_process;

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

/// The snapshot, relative to the server's working directory (the test's temporary directory).
const SNAPSHOT: &str = "sessions.jsonl";
/// `--snapshot-interval`.
const INTERVAL: Duration = Duration::from_millis(200);
/// Time allowed, beyond the interval, for the save that picks a session up to complete: the
/// save itself (serialising, fsync) on a loaded two-core machine.
const MARGIN: Duration = Duration::from_millis(1500);
/// Kill cycles at most; fewer if [`BUDGET`] runs out first.
const MAX_CYCLES: usize = 24;
/// No new cycle starts after this much time (the test ends well within about a minute).
const BUDGET: Duration = Duration::from_secs(45);
/// The longest a server runs under load before it is killed.
const MAX_RUN: Duration = Duration::from_millis(3000);

/// The logins' `User-Agent`, as long as the server keeps (256 bytes): each session adds a
/// few hundred bytes to the snapshot, so that a save takes long enough to be killed during.
const USER_AGENT: &str = concat!(
    "Mozilla/5.0 (X11; Linux x86_64) sessionkit-crash-test ",
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
);

/// A server process; killed (SIGKILL) on drop.
struct Server {
    child: Child,
    base: String,
    /// The item count of its `snapshot: loaded N items` line.
    loaded: u64,
}

impl Server {
    /// SIGKILL: no shutdown code runs, as in a crash.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts the server in `dir` and waits for it to listen. A server that exits instead (it
/// refused to start) fails the test with its log.
fn start(dir: &Path, run: usize) -> Server {
    let log_path = dir.join(format!("server-{run}.log"));
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = example_process::command("server")
        .current_dir(dir)
        .args(["--listen", "127.0.0.1:0", "--insecure-cookies", "--log-level", "warn"])
        .args(["--max-sessions-per-user", "unlimited"])
        .args(["--snapshot", SNAPSHOT, "--snapshot-interval", "200ms"])
        .env_remove("REDIS_URL")
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_CLUSTER_URLS")
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut loaded = None;
        // Reads to the end, so that the server never blocks on a full pipe.
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix("snapshot: loaded ") {
                loaded = rest.split(' ').next().and_then(|n| n.parse::<u64>().ok());
            } else if let Some(base) = line.strip_prefix("listening on ") {
                let _ = tx.send((base.to_owned(), loaded));
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok((base, Some(loaded))) => Server { child, base, loaded },
        Ok((_, None)) => panic!("run {run}: the server did not print `snapshot: loaded N items`"),
        Err(_) => {
            let _ = child.kill();
            let status = child.wait().unwrap();
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            panic!("run {run}: the server did not start ({status}):\n{log}");
        }
    }
}

/// The temporary files of saves beside the snapshot.
fn temporaries(dir: &Path) -> Vec<String> {
    let prefix = format!("{SNAPSHOT}.tmp-");
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.starts_with(&prefix))
        .collect()
}

/// The snapshot's files (the snapshot and any temporary file of a save) with their length,
/// modification time and inode: what changes as soon as a save starts writing, whichever way
/// the writer goes about it.
fn snapshot_files(dir: &Path) -> Vec<(String, u64, std::time::SystemTime, u64)> {
    use std::os::unix::fs::MetadataExt as _;
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            let name = e.file_name().into_string().ok()?;
            let meta = e.metadata().ok()?;
            let modified = meta.modified().ok()?;
            name.starts_with(SNAPSHOT).then(|| (name, meta.len(), modified, meta.ino()))
        })
        .collect();
    files.sort();
    files
}

/// A session created through the API: its token, and when its login was answered (it was
/// created no later).
struct Created {
    token: String,
    at: Instant,
}

/// Logs `bob` in over and over until `stop`, recording each session created. Failed requests
/// (the server was just killed) are skipped.
async fn load(http: reqwest::Client, base: String, stop: Arc<AtomicBool>, created: Arc<Mutex<Vec<Created>>>) {
    while !stop.load(Ordering::Relaxed) {
        let answer = http
            .post(format!("{base}/api/v1/auth/login"))
            .header("user-agent", USER_AGENT)
            .json(&json!({ "username": "bob", "password": "builder" }))
            .send()
            .await;
        if let Ok(response) = answer
            && response.status() == 200
            && let Ok(body) = response.json::<serde_json::Value>().await
        {
            let at = Instant::now();
            let token = body["session_token"].as_str().unwrap().to_owned();
            created.lock().unwrap().push(Created { token, at });
        }
        // Paces the load: a few hundred logins a second at most, so that the snapshot grows
        // by thousands of sessions over the test, not millions.
        tokio::time::sleep(Duration::from_millis(8)).await;
    }
}

/// The status of `GET /api/v1/auth/session` with `token`.
async fn validate(http: &reqwest::Client, server: &Server, token: &str) -> u16 {
    http.get(format!("{}/api/v1/auth/session", server.base))
        .bearer_auth(token)
        .send()
        .await
        .expect("a request to the restarted server")
        .status()
        .as_u16()
}

/// A temporary directory, removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_under_load_every_restart_loads_a_complete_snapshot_with_the_older_sessions() {
    let dir = TempDir(std::env::temp_dir().join(format!("sessionkit-snapshot-crash-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    std::fs::create_dir_all(&dir.0).unwrap();
    let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(30)).build().unwrap();

    let began = Instant::now();
    let mut server = start(&dir.0, 0);
    assert_eq!(server.loaded, 0, "a first start");
    // Sessions that a restart has loaded: every later restart must load them again.
    let mut durable: Vec<String> = Vec::new();
    let (mut cycles, mut aimed, mut mid_save, mut leftovers, mut checked_old) = (0, 0, 0, 0, 0);
    // Sessions old enough at their kill that they had to survive it (the others may).
    let mut old_at_kill = 0;

    while cycles < MAX_CYCLES && began.elapsed() < BUDGET {
        cycles += 1;
        let stop = Arc::new(AtomicBool::new(false));
        let created = Arc::new(Mutex::new(Vec::new()));
        let loaders: Vec<_> = (0..2)
            .map(|_| tokio::spawn(load(http.clone(), server.base.clone(), stop.clone(), created.clone())))
            .collect();

        // Pace the kill: a random moment, and on every other cycle the first moment after
        // it when a save is writing (a file of the snapshot appears or changes), if one comes
        // soon, so that many kills land in the middle of a save.
        let run = Duration::from_millis(rand::random_range(50..=MAX_RUN.as_millis() as u64));
        tokio::time::sleep(run).await;
        if cycles % 2 == 0 {
            aimed += 1;
            let until = Instant::now() + 2 * INTERVAL + MARGIN;
            let before = snapshot_files(&dir.0);
            while snapshot_files(&dir.0) == before && Instant::now() < until {
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
        }
        let killed_at = Instant::now();
        server.kill();
        let left = temporaries(&dir.0);
        if !left.is_empty() {
            mid_save += 1;
            leftovers += left.len();
        }
        stop.store(true, Ordering::Relaxed);
        for loader in loaders {
            loader.await.unwrap();
        }
        let created = std::mem::take(&mut *created.lock().unwrap());

        // Every restart starts, from a complete snapshot holding at least every session an
        // earlier restart loaded (nothing is revoked or evicted in this test).
        server = start(&dir.0, cycles);
        assert!(
            server.loaded >= durable.len() as u64,
            "cycle {cycles} (killed after {run:?}): loaded {} items, but {} sessions were loaded before",
            server.loaded,
            durable.len()
        );
        // The killed process's temporary files are gone; at most a save of the new one runs.
        let left = temporaries(&dir.0);
        assert!(left.len() <= 1, "cycle {cycles}: leftover temporary files {left:?}");

        // Every session old enough at the kill validates; a younger one may be lost, and
        // then it is unknown (401), nothing else.
        for Created { token, at } in &created {
            let age = killed_at.duration_since(*at);
            old_at_kill += usize::from(age >= INTERVAL + MARGIN);
            match validate(&http, &server, token).await {
                200 => durable.push(token.clone()),
                401 if age < INTERVAL + MARGIN => {}
                status => panic!(
                    "cycle {cycles} (killed after {run:?}): a session created {age:?} before the kill answers {status} after the restart"
                ),
            }
        }
        // And so does a sample of the sessions of earlier cycles.
        for _ in 0..durable.len().min(40) {
            let token = &durable[rand::random_range(0..durable.len())];
            assert_eq!(validate(&http, &server, token).await, 200, "cycle {cycles}: an older session was lost");
            checked_old += 1;
        }
    }

    // A graceful shutdown at the end saves too, and the last restart loads everything.
    let pid = server.child.id();
    let term = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
    assert!(term.success());
    assert!(server.child.wait().unwrap().success(), "a clean shutdown after the crashes");
    server = start(&dir.0, cycles + 1);
    assert!(server.loaded >= durable.len() as u64);
    for token in durable.iter().step_by((durable.len() / 200).max(1)) {
        assert_eq!(validate(&http, &server, token).await, 200, "a session lost after the clean shutdown");
    }
    assert!(temporaries(&dir.0).len() <= 1);
    drop(server);
    println!(
        "{cycles} SIGKILL cycles in {:.1?} ({aimed} aimed at a save, {mid_save} killed mid-save, {leftovers} \
         temporary files left and removed at restart); {} sessions kept ({old_at_kill} of them old enough at \
         their kill that they had to be), {checked_old} from earlier cycles re-checked",
        began.elapsed(),
        durable.len()
    );
}
