//! The crate-wide error type.

use std::io;

/// Shorthand for results whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a storage operation failed. Each variant names the object or store, never a
/// credential.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The object does not exist.
    #[error("object not found: {key}")]
    NotFound {
        /// The object key.
        key: String,
    },
    /// A create-only write found an object already at the key.
    #[error("object already exists: {key}")]
    AlreadyExists {
        /// The object key.
        key: String,
    },
    /// The bytes received do not match the checksum the caller declared, so the
    /// store refused to create the object.
    #[error("checksum mismatch for {key}: expected crc32c {expected:08x}, got {actual:08x}")]
    ChecksumMismatch {
        /// The object key.
        key: String,
        /// The declared CRC32C.
        expected: u32,
        /// The CRC32C of what arrived.
        actual: u32,
    },
    /// The store refused the operation (permissions, a retention policy, a hold).
    #[error("permission denied for {key}: {source}")]
    PermissionDenied {
        /// The object key.
        key: String,
        /// What the store said.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The store rejected our credentials.
    #[error("{store}: authentication failed: {source}")]
    Unauthenticated {
        /// The store's name.
        store: &'static str,
        /// What the store said.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The backend cannot do this.
    #[error("{implementer} does not support {operation}")]
    NotImplemented {
        /// The operation asked for.
        operation: &'static str,
        /// The backend.
        implementer: &'static str,
    },
    /// A key was not valid.
    #[error(transparent)]
    InvalidKey(#[from] KeyError),
    /// A local I/O error on the named path or key.
    #[error("{path}: {source}")]
    Io {
        /// The file or key involved.
        path: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Anything else a backend reports. `transient` says whether retrying may help.
    #[error("{store}: {message}")]
    Generic {
        /// The store's name.
        store: &'static str,
        /// What happened, naming the object where there is one.
        message: String,
        /// Whether a retry may succeed (network errors, 5xx, 429, 408).
        transient: bool,
        /// The underlying error, if any.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

impl Error {
    /// Whether retrying the same request may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Generic { transient, .. } => *transient,
            Error::Io { source, .. } => matches!(
                source.kind(),
                io::ErrorKind::Interrupted | io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
            ),
            _ => false,
        }
    }

    /// Wraps an I/O error with the path or key it concerns.
    pub fn io(path: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// Why a string is not a valid [`crate::Key`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The key is empty.
    #[error("invalid object key: empty")]
    Empty,
    /// The key is longer than the 1024 bytes Cloud Storage allows.
    #[error("invalid object key {0:?}: longer than 1024 bytes")]
    TooLong(String),
    /// The key has an empty, `.` or `..` segment, or starts or ends with `/`.
    #[error("invalid object key {0:?}: empty, '.' or '..' segment")]
    BadSegment(String),
    /// The key has a control character.
    #[error("invalid object key {0:?}: control character")]
    ControlCharacter(String),
    /// A percent-encoded path did not decode.
    #[error("invalid encoded path {0:?}: bad percent escape")]
    BadEscape(String),
}
