//! How the engine reports progress and learns it should stop.

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Receives progress events. Every method has a no-op default; implementations
/// must be cheap, as they are called from worker threads for every file.
pub trait Progress: Send + Sync + Debug {
    /// A file needs work (hashing, maybe uploading); `bytes` is its size.
    fn queued(&self, bytes: u64) {
        let _ = bytes;
    }
    /// The walk has finished: no more files will be queued.
    fn walk_finished(&self) {}
    /// A worker started on `path`.
    fn started(&self, path: &str, bytes: u64) {
        let _ = (path, bytes);
    }
    /// A worker is done with `path`, whatever the outcome.
    fn finished(&self, path: &str, bytes: u64) {
        let _ = (path, bytes);
    }
    /// A file was found unchanged without reading it.
    fn unchanged(&self) {}
}

/// Progress that goes nowhere.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {}

/// Asks a running backup to stop gracefully: files in flight finish and are
/// recorded, the manifest is saved, and the summary says `stopped`.
#[derive(Debug, Clone, Default)]
pub struct StopToken(Arc<AtomicBool>);

impl StopToken {
    /// A token that has not been triggered.
    pub fn new() -> Self {
        Self::default()
    }
    /// Ask the backup to stop.
    pub fn stop(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    /// Whether a stop was asked for.
    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}
