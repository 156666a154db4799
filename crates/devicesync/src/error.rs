//! The crate's one error type: what stops a run (or a query) as a whole. Per-file
//! problems never become an `Error`; they are outcomes recorded in the state
//! database and counted in the [`crate::Summary`].

use std::io;

/// Shorthand for results whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a sync, a retry or a status query could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting is invalid (no roots, a zero concurrency, …).
    #[error("invalid setting {setting}: {message}")]
    InvalidConfig {
        /// The setting's name.
        setting: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A local file or directory the run needs (a root, the state directory) failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The state database could not be opened, read or written.
    #[error("state database {path}: {source}")]
    State {
        /// The database file.
        path: String,
        /// The underlying error.
        #[source]
        source: rusqlite::Error,
    },
    /// Another sync holds the lock in the state directory.
    #[error("another device-sync is running (pid {pid}; lock file {path})")]
    LockHeld {
        /// The lock file.
        path: String,
        /// The process holding it.
        pid: u32,
    },
    /// A failed-upload id that the state database does not know (or that is not failed).
    #[error("no failed upload with id {id} (see `device-sync failed`)")]
    UnknownFailedId {
        /// The id asked for.
        id: i64,
    },
    /// The server could not be used: unreachable after retries, the key refused,
    /// or an answer this client does not understand.
    #[error(transparent)]
    Immich(#[from] imb_immich::Error),
}

impl Error {
    /// Whether the API key was refused (or lacks a permission).
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, Error::Immich(e) if e.is_unauthorized())
    }

    /// Whether another run holds the lock.
    pub fn is_lock_held(&self) -> bool {
        matches!(self, Error::LockHeld { .. })
    }
}

pub(crate) fn io_err(path: &std::path::Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.display().to_string(),
        source,
    }
}
