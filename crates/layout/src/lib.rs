//! Where things live in a backup target, in one place: object names, the
//! timestamps in them, and finding the manifests and dumps a target holds. The
//! backup engine writes by it, `imb-pgdump` names dumps by it, and `imb-restore`
//! reads by it, without depending on one another.
//!
//! ```text
//! manifest.db                         convenience copy of the newest full manifest (replaceable)
//! manifest-{ts}.db                    a full manifest, now and then a run's end (create-only)
//! manifest-{ts}.delta.db.gz           the rest of a run's changes, the usual run's end (create-only)
//! manifest-{ts}.part-{n}.db.gz        rows changed since the run's previous save (create-only)
//! manifest-{ts}.shard-{K}-of-{N}.{part-{n},delta}.db.gz   the same, from pod K of a sharded run
//! library/{file_path}                 the first content of each path
//! versions/{file_path}/{ts}           later contents of a path
//! long/{sha256 of file_path}[/{ts}]   content of a path too long for an object name
//! database/{ts}-immich-v{version}.sql.gz   database dumps
//! locks/{run_id}/{n}.json, released   run locks with an expiry (or withdrawn); never deleted
//! reports/{ts}.json                   restore-verify's reports
//! ```
//!
//! `{ts}` is UTC, `2024-01-15T03-00-00` ([`format_ts`]). Names sort by time, and
//! everything that orders objects (the newest manifest, dump retention) orders by
//! the time in the name, never by the store's modification time, which a copy of
//! the bucket would change. A name dated more than [`FUTURE_SLACK`] ahead of now is
//! taken as planted and left out of every listing, and reported.

mod dump;
mod keys;
mod manifest;
mod shard;
mod ts;

pub use dump::{DUMP_PREFIX, DumpName, choose_dump, list_dumps, list_dumps_at};
pub use keys::{
    LOCKS_PREFIX, content_key, library_key, lock_key, lock_marker_key, manifest_copy_key,
    report_key, version_key,
};
pub use manifest::{
    Fetched, Incomplete, Kind, Listed, ManifestName, fetch_manifest, list_manifests,
    list_manifests_at,
};
pub use shard::{DirShard, LOGICAL_SHARDS, Shard, dir_shard, logical_shard};
pub use ts::{FUTURE_SLACK, format_ts, is_future, parse_ts, run_ts};

/// Shorthand for results whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a listing or a manifest download failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] imb_storage::Error),
    /// A manifest that opened could not take a journal.
    #[error(transparent)]
    Manifest(#[from] imb_manifest::Error),
    /// A local file failed.
    #[error("{path}: {source}")]
    Local {
        /// The file.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}
