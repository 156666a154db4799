//! [`StopToken`]: how a caller (a signal handler, a UI) asks a running backup or
//! sync to stop gracefully. Work in flight finishes and is recorded; the rest waits
//! for the next run. Here because both flows share this crate, not an engine.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Asks a run to stop gracefully; clones share one flag.
#[derive(Debug, Clone, Default)]
pub struct StopToken(Arc<AtomicBool>);

impl StopToken {
    /// A token that has not been triggered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Ask the run to stop.
    pub fn stop(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether a stop was asked for.
    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}
