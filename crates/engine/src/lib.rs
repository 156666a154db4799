//! The backup engine: walk the source, skip what is unchanged, hash the rest,
//! deduplicate against content already in the target, upload with create-only
//! writes, and record each confirmed upload in the manifest.
//!
//! Design decisions:
//! * **Bounded producer/consumer** (the seed's design): a walker thread feeds a
//!   coordinator, which looks each file up in the manifest and pushes only new or
//!   changed files into an [`imb_queue::WorkQueue`] of capacity `workers × 10`;
//!   worker threads hash and upload. Memory is bounded by the queue, not by the
//!   number of files.
//! * **Data first, record second, manifest last.** A manifest row is written only
//!   after the store confirmed its object. Changed rows are saved as small
//!   create-only journal objects (`manifest-{ts}.part-{n}.db`) every
//!   `save_every` rows or `save_interval`; the run ends with a full
//!   `manifest-{ts}.db`. A run killed at any point loses at most the rows since
//!   the last save, and the next run finds those objects (`AlreadyExists` plus a
//!   hash comparison) instead of uploading them again.
//! * **Append-only.** The engine only ever holds an [`imb_storage::BackupStore`]
//!   (read + create). A changed file's new content goes to
//!   `versions/{path}/{ts}`; a deleted file's row is marked archived.
//! * The library reports through the [`Progress`] trait and `tracing` events; it
//!   never prints, and the caller owns the runtime and the signals ([`StopToken`]).

mod config;
mod gate;
mod lock;
mod progress;
mod run;
mod summary;
mod sync_store;
mod walk;
mod worker;

pub use config::{ADAPTIVE_INITIAL, ADAPTIVE_MAX, BackupConfig, DedupMode, StorageClasses};
pub use imb_storage::StopToken;
pub use progress::{NoProgress, Progress};
pub use run::Backup;
pub use summary::{Failure, Summary};

/// Shorthand for results whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a backup could not run (or had to stop) as a whole. Per-file problems are
/// not errors: they are listed in the [`Summary`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The source directory is missing or unreadable.
    #[error("source {path}: {source}")]
    Source {
        /// The source directory.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A setting is invalid.
    #[error("invalid setting {key}: {message}")]
    InvalidConfig {
        /// The setting's name.
        key: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// Another backup holds the target's lock.
    #[error("another backup is running against this target: {holder}")]
    LockHeld {
        /// Who holds it, and until when.
        holder: String,
    },
    /// The target failed in a way that makes continuing unsafe.
    #[error("target: {0}")]
    Store(#[from] imb_storage::Error),
    /// The manifest could not be read or written.
    #[error(transparent)]
    Manifest(#[from] imb_manifest::Error),
    /// Local working files (under the state directory) failed.
    #[error("state directory {path}: {source}")]
    State {
        /// The file or directory.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A worker thread died unexpectedly.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<imb_layout::Error> for Error {
    fn from(e: imb_layout::Error) -> Self {
        match e {
            imb_layout::Error::Store(e) => Error::Store(e),
            imb_layout::Error::Manifest(e) => Error::Manifest(e),
            imb_layout::Error::Local { path, source } => Error::State { path, source },
            other => Error::Internal(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests;
