//! Memory per live session in a [`MemoryStore`], every index included.
//!
//! Installs a counting global allocator (`stats_alloc`), fills a store through
//! [`SessionManager::create`] with 1,000,000 sessions without IP, user agent or data, and prints
//! the live heap bytes (allocated minus freed) per session, after subtracting what the empty
//! manager and store hold. Distributions: one session per user, and four sessions per user (each
//! login with its own `UserId`, as an application that reads the id from its database per
//! login; and, for comparison, with one `UserId` cloned for all logins of a user).
//!
//! The counted bytes are the sizes the program asked the allocator for; the resident-set growth
//! printed beside them (Linux only) adds the allocator's own headers, rounding and free space.
//!
//! With one session per user it then exports the store twice: streamed with
//! [`SessionManager::export_to`] into a writer that discards the bytes and samples the live heap
//! at every write (the peak growth while streaming), and into one `Vec` with
//! [`SessionManager::export`] (what a whole export held in memory costs).
//!
//! ```text
//! cargo run --release --example memory [SESSIONS]
//! ```

use std::alloc::System;
use std::pin::pin;
use std::process::ExitCode;
use std::task::{Context, Poll, Waker};

use sessionkit::{MemoryStore, NewSession, SessionConfig, SessionManager, UserId};
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// The budget from the issue: bytes per live session at 1,000,000 sessions.
const BUDGET: f64 = 300.0;

/// Live heap bytes and blocks: allocated minus freed.
fn live() -> (i128, i128) {
    let s = GLOBAL.stats();
    let bytes = s.bytes_allocated as i128 - s.bytes_deallocated as i128;
    let blocks = s.allocations as i128 - s.deallocations as i128;
    (bytes, blocks)
}

/// Resident set size in bytes, where the platform tells it.
fn rss() -> Option<i128> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: i128 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// Polls a future once: `MemoryStore`'s futures complete on their first poll, so a no-op waker
/// is all the executor this needs.
fn now_or_never<F: Future>(fut: F) -> Option<F::Output> {
    match pin!(fut).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => Some(out),
        Poll::Pending => None,
    }
}

/// How the sessions are spread over users.
#[derive(Clone, Copy)]
struct Distribution {
    name: &'static str,
    per_user: usize,
    /// Clone one `UserId` per user instead of building one per login.
    shared_user_id: bool,
}

struct Measured {
    empty: i128,
    bytes: i128,
    blocks: i128,
    rss: Option<i128>,
    export: Option<Exported>,
}

/// The two exports of a filled store.
struct Exported {
    /// Bytes of the export.
    size: u64,
    /// The highest live-heap growth seen at any write of the streamed export.
    streamed_peak: i128,
    /// The live-heap growth of the export held in one `Vec`.
    buffered: i128,
}

/// A writer that discards its bytes and records the highest live heap seen at a write.
struct PeakSink {
    peak: i128,
    written: u64,
}

impl tokio::io::AsyncWrite for PeakSink {
    fn poll_write(mut self: std::pin::Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.peak = self.peak.max(live().0);
        self.written += buf.len() as u64;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: std::pin::Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: std::pin::Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Exports the store of `manager` streamed, then into one `Vec`.
fn export(manager: &SessionManager<MemoryStore>) -> Result<Exported, String> {
    let (before, _) = live();
    let mut sink = PeakSink { peak: before, written: 0 };
    now_or_never(manager.export_to(&mut sink)).ok_or("export_to returned Pending")?.map_err(|e| e.to_string())?;
    let mut whole = Vec::new();
    now_or_never(manager.export(&mut whole)).ok_or("export returned Pending")?.map_err(|e| e.to_string())?;
    let (held, _) = live();
    if whole.len() as u64 != sink.written {
        return Err(format!("the streamed export has {} bytes, the buffered one {}", sink.written, whole.len()));
    }
    Ok(Exported { size: sink.written, streamed_peak: sink.peak - before, buffered: held - before })
}

fn fill(sessions: usize, d: Distribution) -> Result<Measured, String> {
    let (base, _) = live();
    let manager = SessionManager::new(MemoryStore::new(), SessionConfig::default());
    let (after_new, blocks_before) = live();
    let rss_before = rss();
    let users = sessions.div_ceil(d.per_user);
    let mut stored = 0;
    for u in 0..users {
        let name = format!("user-{u:07}");
        let shared = UserId::new(name.as_str()).map_err(|e| e.to_string())?;
        for _ in 0..d.per_user.min(sessions - stored) {
            let user = if d.shared_user_id {
                shared.clone()
            } else {
                UserId::new(name.as_str()).map_err(|e| e.to_string())?
            };
            let created = now_or_never(manager.create(NewSession::new(user)))
                .ok_or("MemoryStore::insert returned Pending")?
                .map_err(|e| e.to_string())?;
            if !created.evicted.is_empty() {
                return Err("a login evicted a session: raise max_sessions_per_user".into());
            }
            stored += 1;
        }
    }
    let (after_fill, blocks_after) = live();
    let rss_after = rss();
    if manager.store().len() != sessions {
        return Err(format!("{} sessions stored, expected {sessions}", manager.store().len()));
    }
    let exported = if d.per_user == 1 { Some(export(&manager)?) } else { None };
    let measured = Measured {
        empty: after_new - base,
        bytes: after_fill - after_new,
        blocks: blocks_after - blocks_before,
        rss: rss_before.zip(rss_after).map(|(b, a)| a - b),
        export: exported,
    };
    drop(manager);
    let (leftover, _) = live();
    if leftover != base {
        return Err(format!("{} bytes still allocated after dropping the store", leftover - base));
    }
    Ok(measured)
}

const DISTRIBUTIONS: [Distribution; 3] = [
    Distribution { name: "1 session per user", per_user: 1, shared_user_id: false },
    Distribution { name: "4 sessions per user", per_user: 4, shared_user_id: false },
    Distribution { name: "4 sessions per user, shared UserId", per_user: 4, shared_user_id: true },
];

/// Measures one distribution in this process and prints its line.
fn run_one(sessions: usize, d: Distribution) -> Result<(), String> {
    // A small run first, so that one-time lazy allocations outside the store (192 bytes, made
    // once per process) are neither counted nor reported as a leak by the measured run.
    let _ = fill(1_000, d);
    let m = fill(sessions, d)?;
    let per_session = m.bytes as f64 / sessions as f64;
    let rss = m.rss.map_or_else(|| "n/a".to_owned(), |r| format!("{:.1}", r as f64 / sessions as f64));
    let verdict = if d.shared_user_id || sessions < 1_000_000 {
        ""
    } else if per_session <= BUDGET {
        "  [within the 300-byte budget]"
    } else {
        "  [OVER the 300-byte budget]"
    };
    println!(
        "{:<36} {per_session:>6.1} bytes/session counted ({:.2} blocks), resident growth {rss} \
         bytes/session; empty manager+store {} bytes{verdict}",
        d.name,
        m.blocks as f64 / sessions as f64,
        m.empty,
    );
    if let Some(e) = m.export {
        println!(
            "{:<36} export of {:.1} MiB: heap growth {:.2} MiB streamed (export_to, peak at a write), \
             {:.1} MiB held in one Vec (export)",
            "",
            e.size as f64 / 1048576.0,
            e.streamed_peak as f64 / 1048576.0,
            e.buffered as f64 / 1048576.0,
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (sessions, only) = match args.as_slice() {
        [] => (Some(1_000_000), None),
        [n] => (n.replace('_', "").parse().ok(), None),
        [n, flag, i] if flag == "--only" => (n.replace('_', "").parse().ok(), i.parse::<usize>().ok()),
        _ => (None, None),
    };
    let Some(sessions) = sessions.filter(|&n: &usize| n > 0) else {
        eprintln!("usage: memory [SESSIONS [--only DISTRIBUTION]]");
        return ExitCode::FAILURE;
    };
    if let Some(i) = only {
        let Some(&d) = DISTRIBUTIONS.get(i) else {
            eprintln!("no distribution {i}");
            return ExitCode::FAILURE;
        };
        return match run_one(sessions, d) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{}: {e}", d.name);
                ExitCode::FAILURE
            }
        };
    }
    println!("{sessions} sessions, no IP, user agent or data; user ids \"user-NNNNNNN\" (12 bytes)");
    // Each distribution in a fresh process, so that the resident-set growth of one is not hidden
    // by memory the allocator kept from the one before.
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("cannot find this program to run the distributions: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut ok = true;
    for i in 0..DISTRIBUTIONS.len() {
        let status =
            std::process::Command::new(&exe).args([sessions.to_string(), "--only".into(), i.to_string()]).status();
        ok &= status.is_ok_and(|s| s.success());
    }
    if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
