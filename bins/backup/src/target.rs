//! Chooses the storage backend from `--dest`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use imb_storage::{BackupStore, LocalDir, ObjectReplace};

/// The store the backup writes, and the replace capability for `manifest.db`.
pub(crate) type Opened = (Arc<dyn BackupStore>, Option<Arc<dyn ObjectReplace>>);

pub(crate) fn open(dest: &str, source: &Path, fsync: bool) -> anyhow::Result<Opened> {
    if dest.starts_with("gs://") {
        bail!(
            "--dest {dest}: Google Cloud Storage targets are not in this build yet; use a local directory"
        );
    }
    let path = match dest.strip_prefix("file://") {
        Some(p) => PathBuf::from(p),
        None if dest.contains("://") => {
            bail!("--dest {dest}: unknown scheme (use a path, file://PATH or gs://BUCKET)")
        }
        None => PathBuf::from(dest),
    };
    refuse_nested(&path, source)?;
    let dir = Arc::new(
        LocalDir::new(&path)
            .with_context(|| format!("--dest {dest}"))?
            .with_fsync(fsync),
    );
    Ok((dir.clone(), Some(dir)))
}

/// A target inside the source would back itself up, run after run.
fn refuse_nested(dest: &Path, source: &Path) -> anyhow::Result<()> {
    let Ok(src) = source.canonicalize() else {
        return Ok(()); // The engine reports a missing source with its own message.
    };
    let Ok(dest) = std::path::absolute(dest) else {
        return Ok(());
    };
    let dest = dest.as_path();
    let mut probe = dest.to_path_buf();
    // The target may not exist yet: check its nearest existing ancestor.
    let dst = loop {
        if let Ok(c) = probe.canonicalize() {
            break c.join(dest.strip_prefix(&probe).unwrap_or(Path::new("")));
        }
        if !probe.pop() {
            return Ok(());
        }
    };
    if dst.starts_with(&src) {
        bail!(
            "--dest {} is inside --source {}: the backup would copy itself",
            dest.display(),
            source.display()
        );
    }
    Ok(())
}
