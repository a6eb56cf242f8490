//! Helpers shared by the integration tests: a manager on a `MemoryStore` under a `MockClock`.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use sessionkit::clock::MockClock;
use sessionkit::{MemoryStore, NewSession, SessionConfig, SessionConfigBuilder, SessionManager, UserId};

pub type Manager = SessionManager<MemoryStore, MockClock>;

pub const MINUTE: Duration = Duration::from_secs(60);
pub const HOUR: Duration = Duration::from_secs(3600);
pub const NANO: Duration = Duration::from_nanos(1);

/// 30-minute idle, 8-hour absolute, 60-second touch interval, no per-user limit unless the
/// builder says otherwise.
pub fn config() -> SessionConfigBuilder {
    SessionConfig::builder()
        .idle_timeout(30 * MINUTE)
        .absolute_timeout(8 * HOUR)
        .touch_interval(MINUTE)
        .max_sessions_per_user(None)
}

pub fn manager(config: SessionConfigBuilder) -> (Manager, MockClock) {
    let clock = MockClock::new();
    (SessionManager::with_clock(MemoryStore::new(), config.build().unwrap(), clock.clone()), clock)
}

pub fn user(name: &str) -> UserId {
    UserId::new(name).unwrap()
}

/// Logs `name` in and returns the token string.
pub async fn login(m: &Manager, name: &str) -> String {
    m.create(NewSession::new(user(name))).await.unwrap().token.expose_secret().to_owned()
}

/// A `tracing` writer that keeps everything written, for tests that read log output.
#[derive(Clone, Default)]
pub struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}
