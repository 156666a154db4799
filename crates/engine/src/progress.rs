//! How the engine reports progress and learns it should stop.

use std::fmt::Debug;

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
