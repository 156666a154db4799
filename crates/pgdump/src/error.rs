//! The crate's one error type.

use std::io;
use std::path::PathBuf;

/// Shorthand for results whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a dump or a prune failed. Every variant names the setting, program or object
/// involved; none ever holds the database password (stderr is redacted before it is
/// stored here).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting has a value we cannot use.
    #[error("invalid {setting}: {reason}")]
    InvalidConfig {
        /// The setting, as the user writes it (`DB_URL`, `DB_PORT`, `db_backup_retention`).
        setting: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A program (`pg_dump`, `psql`) could not be started.
    #[error(
        "could not run {program} at {path:?} (set the {program} path to a PostgreSQL client): {source}"
    )]
    Spawn {
        /// Which program.
        program: &'static str,
        /// The path or name that was run.
        path: PathBuf,
        /// Why it did not start.
        #[source]
        source: io::Error,
    },
    /// A program printed something we could not parse.
    #[error("{program} at {path:?} printed unexpected output: {output:?}")]
    UnexpectedOutput {
        /// Which program.
        program: &'static str,
        /// The path or name that was run.
        path: PathBuf,
        /// What it printed (never secret: version strings and query results).
        output: String,
    },
    /// `pg_dump` is older than the server, so it would refuse to dump it (or dump it
    /// wrongly). Found before anything is written.
    #[error(
        "pg_dump at {path:?} is version {pg_dump_version} but the server is version {server_version}: \
         pg_dump must be at least the server's major version; set the pg_dump path to a newer pg_dump \
         (e.g. /usr/lib/postgresql/{server_major}/bin/pg_dump)"
    )]
    VersionMismatch {
        /// The configured pg_dump.
        path: PathBuf,
        /// What `pg_dump --version` reported.
        pg_dump_version: String,
        /// What the server reported.
        server_version: String,
        /// The server's major version, for the suggested path.
        server_major: String,
    },
    /// The server could not be reached or refused us (unreachable, wrong password).
    #[error("could not connect to the database {target}: {stderr}")]
    Connect {
        /// `user@host:port/database`.
        target: String,
        /// psql's error output, password redacted.
        stderr: String,
    },
    /// A query we need failed.
    #[error("query on the database {target} failed: {stderr}")]
    Query {
        /// `user@host:port/database`.
        target: String,
        /// psql's error output, password redacted.
        stderr: String,
    },
    /// `pg_dump` exited non-zero or was killed; nothing was stored.
    #[error("pg_dump {status}: {stderr}")]
    PgDump {
        /// How it ended: `exited with status 1`, `was killed by signal 9`.
        status: String,
        /// Its error output, password redacted.
        stderr: String,
    },
    /// A dump holds what pg_dump never writes (a psql meta-command, a statement that
    /// reaches outside the database): refused before anything was loaded.
    #[error(
        "dump {dump} refused before loading ({refusal}): the target may have been tampered with"
    )]
    Refused {
        /// The dump object.
        dump: String,
        /// The line and the form found there.
        refusal: crate::guard::Refusal,
    },
    /// The store failed (the storage error names the object).
    #[error(transparent)]
    Storage(#[from] imb_storage::Error),
    /// A local I/O error.
    #[error("{what}: {source}")]
    Io {
        /// What we were doing.
        what: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl Error {
    pub(crate) fn invalid(setting: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidConfig {
            setting: setting.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn io(what: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            what: what.into(),
            source,
        }
    }
}
