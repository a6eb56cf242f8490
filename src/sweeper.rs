//! Background cleanup with graceful shutdown (feature `tokio`).
//!
//! Nothing runs in the background unless started: [`SessionManager::spawn_sweeper`] starts a
//! tokio task that calls [`SessionManager::sweep_expired`] every interval and returns a
//! [`SweeperHandle`]. [`SweeperHandle::shutdown`] lets the sweep in progress finish, then
//! stops the task. The task holds only a weak reference to the manager, so dropping every
//! clone of the manager ends it too; dropping the handle without calling `shutdown` also stops
//! it (after the sweep in progress). Applications with their own scheduler call
//! `sweep_expired` themselves instead.

use std::future::Future;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use crate::clock::Clock;
use crate::manager::SessionManager;
use crate::store::SessionStore;

/// A running background task; stop it with [`shutdown`](Self::shutdown).
#[derive(Debug)]
#[must_use = "dropping the handle stops the task; keep it, and call shutdown() when the application stops"]
pub struct SweeperHandle {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl SweeperHandle {
    /// Stops the task, after the run in progress (if any) has finished.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }

    /// Whether the task has ended (shut down, or its manager dropped).
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

/// The shortest interval of a periodic task; a shorter one (zero included) counts as this.
pub const MIN_INTERVAL: Duration = Duration::from_millis(1);

/// Runs `run` every `interval` (at least [`MIN_INTERVAL`]) until stopped (`run` answers `false`
/// to end the task early), then `finish` once.
pub(crate) fn spawn_periodic<F, Fut, Fin, FinFut>(interval: Duration, mut run: F, finish: Fin) -> SweeperHandle
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = bool> + Send,
    Fin: FnOnce() -> FinFut + Send + 'static,
    FinFut: Future + Send,
{
    let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        // `tokio::time::interval` panics on zero, inside the task where nobody would see it.
        let mut ticker = tokio::time::interval(interval.max(MIN_INTERVAL));
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // The first tick completes at once; the first run is one interval after the start.
        ticker.tick().await;
        loop {
            tokio::select! {
                biased;
                _ = &mut stop_rx => break,
                _ = ticker.tick() => {
                    // Not cancelled by a stop request: a run always completes.
                    if !run().await {
                        break;
                    }
                }
            }
        }
        finish().await;
    });
    SweeperHandle { stop: Some(stop_tx), task }
}

impl<S: SessionStore, C: Clock> SessionManager<S, C> {
    /// Starts removing expired sessions every `interval` (usually
    /// [`SessionConfig::sweep_interval`](crate::SessionConfig::sweep_interval)) on the current
    /// tokio runtime. Errors of a sweep are logged (feature `tracing`) and the next sweep runs
    /// on schedule. An interval under [`MIN_INTERVAL`] counts as `MIN_INTERVAL`.
    ///
    /// # Panics
    /// Outside a tokio runtime, like `tokio::spawn`.
    pub fn spawn_sweeper(&self, interval: Duration) -> SweeperHandle {
        let weak = self.downgrade();
        spawn_periodic(
            interval,
            move || {
                let manager = weak.upgrade();
                async move {
                    let Some(manager) = manager else {
                        return false;
                    };
                    match manager.sweep_expired().await {
                        Ok(_removed) => {
                            #[cfg(feature = "tracing")]
                            tracing::debug!(target: "sessionkit", removed = _removed, "swept expired sessions");
                        }
                        Err(_error) => {
                            #[cfg(feature = "tracing")]
                            tracing::warn!(target: "sessionkit", error = %_error, "sweep failed");
                        }
                    }
                    true
                }
            },
            || async {},
        )
    }
}
