//! How the engine reports progress and learns it should stop. The binary renders
//! the events (the seed's "12 of 50 • 2.4 MB / 5.1 MB"); the library never prints.

use std::fmt::Debug;

/// The steps of a run, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Phase {
    /// Walking the roots and comparing with the state database.
    Scanning,
    /// Hashing new and changed files.
    Hashing,
    /// Asking the server which contents it already has.
    Checking,
    /// Uploading.
    Uploading,
    /// Adding assets to server albums.
    Albums,
}

/// Receives progress events. Every method has a no-op default; implementations
/// must be cheap.
pub trait Progress: Send + Sync + Debug {
    /// A new step starts.
    fn phase(&self, phase: Phase) {
        let _ = phase;
    }
    /// `files` files of `bytes` bytes will be hashed.
    fn hashing(&self, files: u64, bytes: u64) {
        let _ = (files, bytes);
    }
    /// One file of `bytes` bytes was hashed (or could not be).
    fn hashed(&self, bytes: u64) {
        let _ = bytes;
    }
    /// `files` files of `bytes` bytes will be uploaded.
    fn queued(&self, files: u64, bytes: u64) {
        let _ = (files, bytes);
    }
    /// An upload of `path` started.
    fn started(&self, path: &str, bytes: u64) {
        let _ = (path, bytes);
    }
    /// The upload of `path` ended, whatever the outcome.
    fn finished(&self, path: &str, bytes: u64) {
        let _ = (path, bytes);
    }
}

/// Progress that goes nowhere.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {}
