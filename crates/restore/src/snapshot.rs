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
    /// The restore point: the manifest object that ended the newest run read
    /// (a full manifest or a delta).
    pub name: String,
    /// The full manifest the deltas were replayed on.
    pub base: String,
    /// When that backup ran.
    pub taken: SystemTime,
    /// Parts and deltas replayed on the base, in order (with the parts of a later
    /// unfinished run when no time was asked for).
    pub replayed: Vec<String>,
    /// Damaged manifests or journals that were skipped.
    pub warnings: Vec<String>,
    /// Manifests dated more than a day ahead of now, left out (findings: a
    /// correct backup never writes them).
    pub future: Vec<String>,
    /// The newest run was sharded and not every pod finished it: which pods,
    /// and the runs its other shards come from (also one of the warnings).
    pub incomplete: Option<imb_layout::Incomplete>,
}

impl Snapshot {
    /// Fetches the newest manifest (with the parts of a later unfinished run),
    /// or, with `at`, the restore point of the newest run that finished at or
    /// before that time.
    ///
    /// # Errors
    /// [`Error::NoManifest`], or the store's error.
    pub async fn fetch(store: &dyn ObjectRead, at: Option<SystemTime>) -> Result<Snapshot> {
        let dir = imb_workdir::WorkDir::new("imb-restore-").map_err(|e| Error::Io {
            path: std::env::temp_dir().display().to_string(),
            source: e,
        })?;
        let path = dir.path().join("manifest.db");
        let fetched = imb_layout::fetch_manifest(store, &path, at).await?;
        let (Some(base), Some(point)) = (fetched.base, fetched.point) else {
            let when = at
                .map(|t| format!(" at or before {}", humantime::format_rfc3339_seconds(t)))
                .unwrap_or_default();
            return Err(Error::NoManifest(when));
        };
        Ok(Snapshot {
            taken: imb_layout::parse_ts(&point.ts).unwrap_or(SystemTime::UNIX_EPOCH),
            name: point.name(),
            base: base.name(),
            replayed: fetched.replayed,
            warnings: {
                let mut w = fetched.warnings;
                w.extend(fetched.incomplete.as_ref().map(|i| i.to_string()));
                w
            },
            future: fetched.future,
            incomplete: fetched.incomplete,
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
