//! The backup manifest: a SQLite database that records, for every backed-up file,
//! its content hashes, size, modification time, where its object lives, and
//! whether it has left the source (`archived`).
//!
//! Design decisions:
//! * SQLite, not JSON: millions of rows without loading them into memory, indexed
//!   lookups by path and by content. The schema keeps the seed's names
//!   (`manifest_metadata`, `files(file_path, checksum, size, archived)`) and adds
//!   only what the engine needs, stored compactly (hashes as BLOBs, `WITHOUT ROWID`,
//!   the object key derived from the path unless it differs).
//! * Every change is also written to a *journal*: a small SQLite file with the same
//!   tables holding only the rows changed since the last save. The engine uploads
//!   journals ([`pack`]ed) as create-only parts and a run's delta, so saves and
//!   nightly runs cost the rows that changed, not the whole manifest, and
//!   [`Manifest::apply`] replays them on the newest full manifest.
//! * A manifest row is written only after its object is confirmed in the store.
//!
//! ```
//! use imb_manifest::{FileRecord, Manifest};
//! let dir = tempfile::tempdir().unwrap();
//! let mut m = Manifest::open(&dir.path().join("manifest.db")).unwrap();
//! let rec = FileRecord::new("library/a.jpg", [1; 32], [2; 20], 7, 3, 1_700_000_000_000_000_000);
//! m.upsert(&rec).unwrap();
//! m.commit().unwrap();
//! assert_eq!(m.get("library/a.jpg").unwrap(), Some(rec));
//! ```

mod pack;
mod schema;
mod store;

pub use pack::{pack, unpack};
pub use store::{Counts, FileRecord, HistoryRecord, Manifest, ManifestReader};

/// Removes a manifest file and SQLite's side files next to it (`-wal`, `-shm`);
/// what is already absent is no error.
pub fn remove_db(path: &std::path::Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut s = path.as_os_str().to_owned();
        s.push(suffix);
        let _ = std::fs::remove_file(std::path::PathBuf::from(s));
    }
}

/// The `manifest_metadata` key of a run's delta that says how many parts the run
/// saved before it, so a reader can tell a lost part; never replayed.
pub const RUN_PARTS: &str = "run_parts";

/// The schema version this build writes and the newest it reads.
pub const SCHEMA_VERSION: u32 = 1;

/// Shorthand for results whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a manifest operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// SQLite failed on the named database file.
    #[error("manifest {path}: {source}")]
    Sqlite {
        /// The database file.
        path: String,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// The manifest was written by a newer build.
    #[error(
        "manifest {path}: schema version {found} is newer than this build supports ({supported})"
    )]
    TooNew {
        /// The database file.
        path: String,
        /// The version found.
        found: u32,
        /// The newest version this build reads.
        supported: u32,
    },
    /// A row does not have the shape this build expects (e.g. a hash of the wrong length).
    #[error("manifest {path}: malformed row for {file_path}: {reason}")]
    Malformed {
        /// The database file.
        path: String,
        /// The row's path.
        file_path: String,
        /// What is wrong.
        reason: String,
    },
    /// A local file failed (packing or unpacking a journal).
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The database is not shaped as this program writes manifests (a trigger, a
    /// view, a virtual or unknown table, other columns): it came from the target,
    /// where anyone with write access may have put it, so it is not used.
    #[error("manifest {path}: not a manifest this program wrote: {reason}")]
    Untrusted {
        /// The database file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
}

#[cfg(test)]
mod tests;
