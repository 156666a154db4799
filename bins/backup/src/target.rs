//! Chooses the storage backend from `--dest`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use imb_engine::{BackupConfig, DedupMode};
use imb_storage::{BackupStore, ObjectDelete, ObjectReplace};
use imb_targets::{Kind, Options};

/// The backend the backup writes.
pub(crate) struct Opened {
    /// Read + create: all the engine gets.
    pub(crate) store: Arc<dyn BackupStore>,
    /// Replace, only for the `manifest.db` convenience copy.
    pub(crate) replace: Option<Arc<dyn ObjectReplace>>,
    /// Delete, only for database-dump retention.
    pub(crate) delete: Option<Arc<dyn ObjectDelete>>,
    /// Storage class for database dumps.
    pub(crate) database_class: Option<String>,
    /// Requests the backend retried, read after the run.
    pub(crate) retries: Box<dyn Fn() -> u64 + Send>,
    /// Retries after 429, 503 or a timeout, for the uploads in flight.
    pub(crate) congestion: imb_storage::adaptive::Signal,
    /// The requests and bytes so far, by storage class (GCS), read after the run.
    pub(crate) usage: Box<dyn Fn() -> imb_cost::Usage + Send>,
}

/// Storage classes where reading back (and so copying) costs a retrieval fee.
fn is_cold(class: &str) -> bool {
    matches!(
        class.to_ascii_uppercase().as_str(),
        "ARCHIVE" | "COLDLINE" | "NEARLINE"
    )
}

/// Opens `dest` and adjusts `config` to it (storage classes, dedup mode).
pub(crate) async fn open(
    dest: &str,
    config: &mut BackupConfig,
    asked: &crate::settings::TargetSettings,
    fsync: bool,
) -> anyhow::Result<Opened> {
    let opts = Options::default()
        .with_no_fsync(!fsync)
        .with_retries(asked.retries, asked.retry_initial);
    if let Some(p) = local_path(dest) {
        refuse_nested(&p, &config.source)?;
    }
    let t = imb_targets::open(dest, opts)
        .await
        .with_context(|| format!("--dest {dest}"))?;
    let mut database_class = None;
    if t.kind == Kind::Gcs {
        let library = asked.library.clone().unwrap_or_else(|| "ARCHIVE".into());
        if is_cold(&library) && config.dedup == DedupMode::Copy && !asked.dedup_set {
            // Copying an Archive object pays a retrieval; a reference costs nothing.
            config.dedup = DedupMode::Reference;
        }
        config.storage_classes.library = Some(library);
        config.storage_classes.manifests =
            Some(asked.manifests.clone().unwrap_or_else(|| "STANDARD".into()));
        // Dumps are pruned and read by every verify: Standard, not Archive.
        database_class = Some(asked.database.clone().unwrap_or_else(|| "STANDARD".into()));
        // Google's ramp-up rule: a bucket takes about 1,000 object writes a second
        // at first; double no faster than every 20 minutes.
        config.upload_start_rate = Some(1000.0);
    }
    let congestion = t.congestion();
    let t = Arc::new(t);
    let (r, u) = (t.clone(), t.clone());
    Ok(Opened {
        store: t.store.clone(),
        replace: Some(t.replace.clone()),
        delete: Some(t.delete.clone()),
        database_class,
        retries: Box::new(move || r.retries()),
        congestion,
        usage: Box::new(move || u.usage()),
    })
}

fn local_path(dest: &str) -> Option<PathBuf> {
    if dest.starts_with("gs:") {
        return None;
    }
    Some(PathBuf::from(dest.strip_prefix("file://").unwrap_or(dest)))
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
