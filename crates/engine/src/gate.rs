//! The engine's uploads in flight: worker threads take a permit from the shared
//! [`imb_storage::adaptive::Flow`] before a file is read (so a file waiting to
//! upload never sits in memory beyond the bound), and give it back with what was
//! sent. The target's congestion counter (its retries after 429, 503 or a
//! timeout) is read at every return.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use imb_storage::adaptive::{Flow, Limits, Report, Signal};

/// The permits, shared by the worker threads.
#[derive(Debug)]
pub(crate) struct Gate {
    flow: Mutex<Flow>,
    freed: Condvar,
}

/// How long a waiting thread sleeps before it looks at the stop flags again.
const RECHECK: Duration = Duration::from_millis(100);

impl Gate {
    pub(crate) fn new(limits: Limits, signal: Option<Signal>) -> Gate {
        Gate {
            flow: Mutex::new(Flow::new(limits, signal)),
            freed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Flow> {
        self.flow.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for a permit for a transfer buffering `bytes`; `None` once `stop()`
    /// says the run is stopping.
    pub(crate) fn acquire(&self, bytes: u64, stop: impl Fn() -> bool) -> Option<()> {
        let mut flow = self.lock();
        loop {
            if stop() {
                return None;
            }
            if flow.try_start(bytes) {
                return Some(());
            }
            let wait = flow
                .next_start()
                .saturating_duration_since(Instant::now())
                .clamp(Duration::from_millis(1), RECHECK);
            flow = self
                .freed
                .wait_timeout(flow, wait)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Gives a permit back: `sent` bytes uploaded, or `None` when the file needed
    /// no upload (its time says nothing about the link).
    pub(crate) fn release(&self, bytes: u64, sent: Option<u64>) {
        self.lock().finish(bytes, sent);
        self.freed.notify_all();
    }

    pub(crate) fn report(&self) -> Report {
        self.lock().report()
    }
}
