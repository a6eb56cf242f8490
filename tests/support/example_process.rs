//! An example binary (`examples/…`) run as a process, as a deployment would run it: started
//! with its flags, its address read from the `listening on http://ADDR` line it prints once it
//! accepts connections, and killed when dropped. Only loopback addresses are used.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running example process; killed on drop.
pub struct ExampleProcess {
    child: Child,
    /// `http://ADDR`, as the process printed it.
    pub base: String,
}

impl ExampleProcess {
    /// Kills the process at once (SIGKILL on Unix: no shutdown code runs, as in a crash) and
    /// waits for it to end.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ExampleProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The example binary `name` that `cargo test` builds next to the test binaries.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let bin = dir.join("examples").join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(bin.exists(), "{} is missing: run the tests with `cargo test` (which builds the examples)", bin.display());
    bin
}

/// A command for the example binary `name`.
pub fn command(name: &str) -> Command {
    Command::new(binary(name))
}

/// Starts `command` and waits (at most 30 s) for its `listening on ADDR` line.
pub fn start(mut command: Command) -> ExampleProcess {
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(base) = line.strip_prefix("listening on ") {
                let _ = tx.send(base.to_owned());
            }
        }
    });
    let base = rx.recv_timeout(Duration::from_secs(30)).expect("the process prints `listening on http://ADDR`");
    ExampleProcess { child, base }
}
