//! Proving a backup restores, and restoring it.
//!
//! * [`Snapshot::fetch`] downloads the manifest that describes a target, as it is
//!   now or as it was at a point in time.
//! * [`verify`] checks the target against it, cheapest first: metadata only (every
//!   live file's object exists with the recorded size and CRC32C; no downloads,
//!   because Archive-class reads cost money), a seeded random sample re-hashed with
//!   SHA-256, or every object.
//! * [`restore`] writes the files back so that `DIR/<path>` is the file that was at
//!   `<source>/<path>`: byte-identical (hash-checked while written), original
//!   modification times, non-UTF-8 names as they were; resumable; a manifest entry
//!   that would escape `DIR` is refused and reported, and nothing is ever written
//!   outside `DIR`.
//!
//! Rows stream from the manifest through a bounded channel into a bounded set of
//! concurrent requests, so memory stays flat however many files there are.

mod database;
mod immich;
mod inventory;
mod listing;
mod restore;
mod snapshot;
mod verify;

pub use database::{DEFAULT_IMMICH_ROOTS, DbReport, DbVerifyOptions, verify_database};
pub use immich::{ImmichCheckOptions, ImmichError, ImmichReport, verify_immich};
pub use restore::{RestoreOptions, RestoreReport, restore, restore_usage};
pub use snapshot::Snapshot;
pub use verify::{
    Finding, Level, Rotation, Unreferenced, VerifyOptions, VerifyPlan, VerifyReport, plan_verify,
    verify, verify_planned,
};

/// Shorthand for results whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a verify or restore could not run. Problems with individual files are
/// findings in the report, not errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The target has no manifest (as of the time asked for).
    #[error("no manifest in the target{0}")]
    NoManifest(String),
    /// The target failed in a way that stops the whole run.
    #[error("target: {0}")]
    Store(#[from] imb_storage::Error),
    /// The manifest could not be read.
    #[error(transparent)]
    Manifest(#[from] imb_manifest::Error),
    /// A database tool cannot be used (a psql too old to load a dump restricted).
    #[error(transparent)]
    Dump(#[from] imb_pgdump::Error),
    /// A local file or directory failed.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl From<imb_layout::Error> for Error {
    fn from(e: imb_layout::Error) -> Self {
        match e {
            imb_layout::Error::Store(e) => Error::Store(e),
            imb_layout::Error::Manifest(e) => Error::Manifest(e),
            imb_layout::Error::Local { path, source } => Error::Io { path, source },
            other => Error::Io {
                path: String::new(),
                source: std::io::Error::other(other.to_string()),
            },
        }
    }
}

/// Transfers in flight by default: adapted to the link, from 16 up to 64.
pub fn default_flow() -> imb_storage::adaptive::Limits {
    imb_storage::adaptive::Limits::adaptive(16, 64, FLOW_MEMORY)
}

/// What transfers in flight may buffer: downloads stream, so each counts by a
/// chunk at most.
pub const FLOW_MEMORY: u64 = 256 << 20;
pub(crate) const CHUNK: u64 = 8 << 20;

/// A task's result with what the flow needs back: the bytes it buffered and the
/// bytes it moved (`None`: nothing worth timing).
pub(crate) type Flowed<T> = (u64, Option<u64>, T);

/// Waits until `flow` lets a transfer buffering `bytes` start, handing every task
/// that finishes meanwhile to `done`.
pub(crate) async fn admit<T: Send + 'static>(
    flow: &mut imb_storage::adaptive::Flow,
    tasks: &mut tokio::task::JoinSet<Flowed<T>>,
    bytes: u64,
    mut done: impl FnMut(std::result::Result<T, tokio::task::JoinError>),
) {
    while !flow.try_start(bytes) {
        match tasks.join_next().await {
            Some(r) => done(settle(flow, r)),
            None => tokio::time::sleep_until(flow.next_start().into()).await,
        }
    }
}

/// Every task left, handed to `done`.
pub(crate) async fn drain<T: Send + 'static>(
    flow: &mut imb_storage::adaptive::Flow,
    tasks: &mut tokio::task::JoinSet<Flowed<T>>,
    mut done: impl FnMut(std::result::Result<T, tokio::task::JoinError>),
) {
    while let Some(r) = tasks.join_next().await {
        done(settle(flow, r));
    }
}

fn settle<T>(
    flow: &mut imb_storage::adaptive::Flow,
    r: std::result::Result<Flowed<T>, tokio::task::JoinError>,
) -> std::result::Result<T, tokio::task::JoinError> {
    match r {
        Ok((bytes, moved, t)) => {
            flow.finish(bytes, moved);
            Ok(t)
        }
        Err(e) => {
            // A panicked task's permit: given back, its bytes unknown.
            flow.finish(0, None);
            Err(e)
        }
    }
}

/// Findings listed in a report before the rest are only counted.
pub(crate) const MAX_LISTED: usize = 1000;

/// Streams the manifest's rows (those under `prefix`, live ones unless
/// `archived`) into a bounded channel from a blocking thread.
pub(crate) fn stream_rows(
    path: std::path::PathBuf,
    prefix: Option<String>,
) -> tokio::sync::mpsc::Receiver<Result<imb_manifest::FileRecord>> {
    let (tx, rx) = tokio::sync::mpsc::channel(256);
    tokio::task::spawn_blocking(move || {
        let reader = match imb_manifest::ManifestReader::open(&path) {
            Ok(r) => r,
            Err(e) => {
                let _ = tx.blocking_send(Err(e.into()));
                return;
            }
        };
        let res = reader.for_each_file(|r| {
            if r.archived
                || prefix
                    .as_deref()
                    .is_some_and(|p| !r.file_path.starts_with(p))
            {
                return Ok(());
            }
            // A closed channel means the consumer stopped; end quietly.
            let _ = tx.blocking_send(Ok(r));
            Ok(())
        });
        if let Err(e) = res {
            let _ = tx.blocking_send(Err(e.into()));
        }
    });
    rx
}
