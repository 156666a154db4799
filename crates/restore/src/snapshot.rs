//! The manifest a verify or restore works from.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use imb_storage::ObjectRead;

use crate::{Error, Result};

/// A downloaded manifest, in a temporary directory removed on drop.
#[derive(Debug)]
pub struct Snapshot {
    dir: imb_workdir::WorkDir,
    path: PathBuf,
    /// The manifest object the snapshot is based on.
    pub name: String,
    /// When that backup ran.
    pub taken: SystemTime,
    /// Journals of later unfinished runs that were replayed.
    pub replayed: Vec<String>,
    /// Damaged manifests or journals that were skipped.
    pub warnings: Vec<String>,
    /// Manifests dated more than a day ahead of now, left out (findings: a
    /// correct backup never writes them).
    pub future: Vec<String>,
}

impl Snapshot {
    /// Fetches the newest manifest (with the journals of later unfinished runs),
    /// or, with `at`, the newest complete one at or before that time.
    ///
    /// # Errors
    /// [`Error::NoManifest`], or the store's error.
    pub async fn fetch(store: &dyn ObjectRead, at: Option<SystemTime>) -> Result<Snapshot> {
        let dir = imb_workdir::WorkDir::new("imb-restore-").map_err(|e| Error::Io {
            path: std::env::temp_dir().display().to_string(),
            source: e,
        })?;
        let path = dir.path().join("manifest.db");
        let fetched = imb_layout::fetch_manifest(store, &path, at, at.is_none()).await?;
        let Some(base) = fetched.base else {
            let when = at
                .map(|t| format!(" at or before {}", humantime::format_rfc3339_seconds(t)))
                .unwrap_or_default();
            return Err(Error::NoManifest(when));
        };
        Ok(Snapshot {
            taken: imb_layout::parse_ts(&base.ts).unwrap_or(SystemTime::UNIX_EPOCH),
            name: base.name(),
            replayed: fetched.replayed,
            warnings: fetched.warnings,
            future: fetched.future,
            path,
            dir,
        })
    }

    /// The local manifest file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory holding it.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}
