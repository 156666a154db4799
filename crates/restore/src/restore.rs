//! Writing files back from the target.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use imb_manifest::FileRecord;
use imb_storage::{GetOptions, Key, ObjectRead};
use serde::Serialize;
use tokio::task::JoinSet;

use crate::{Finding, MAX_LISTED, Result, Snapshot, stream_rows};

/// What to restore, and where.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RestoreOptions {
    /// The directory to restore into; `DIR/<path>` gets the file at `<source>/<path>`.
    pub dest: PathBuf,
    /// Only paths starting with this.
    pub prefix: Option<String>,
    /// Files in flight: adapted to the link ([`crate::default_flow`]) or fixed.
    pub flow: imb_storage::adaptive::Limits,
    /// The target client's congestion count, to back off on.
    pub congestion: Option<imb_storage::adaptive::Signal>,
}

impl RestoreOptions {
    /// Restore everything into `dest`, files in flight adapted to the link.
    pub fn new(dest: impl Into<PathBuf>) -> Self {
        RestoreOptions {
            dest: dest.into(),
            prefix: None,
            flow: crate::default_flow(),
            congestion: None,
        }
    }
}

/// The outcome of a restore.
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct RestoreReport {
    /// The manifest restored from.
    pub manifest: String,
    /// Files written.
    pub files_restored: u64,
    /// Files already present with the right content (a resumed restore).
    pub files_present: u64,
    /// Bytes written.
    pub bytes_written: u64,
    /// Files that could not be restored, and why (the first 1000).
    pub failures: Vec<Finding>,
    /// Entries refused because they would write outside the directory.
    pub refused: Vec<Finding>,
    /// Problems not listed.
    pub omitted: u64,
    /// Files in flight: how many, and why that changed.
    pub concurrency: Option<imb_storage::adaptive::Report>,
    /// Wall time in seconds.
    pub duration_s: f64,
}

impl RestoreReport {
    /// Whether every file was restored.
    pub fn ok(&self) -> bool {
        self.failures.is_empty() && self.refused.is_empty() && self.omitted == 0
    }
}

enum Done {
    Restored(u64),
    Present,
    Failed(Finding),
    Refused(Finding),
}

/// Restores every live file of `snap` (under `opts.prefix`) into `opts.dest`.
///
/// # Errors
/// When the manifest cannot be read or `dest` cannot be created; per-file
/// problems are in the report.
pub async fn restore(
    store: Arc<dyn ObjectRead>,
    snap: &Snapshot,
    opts: &RestoreOptions,
) -> Result<RestoreReport> {
    let started = Instant::now();
    fs::create_dir_all(&opts.dest).map_err(|e| crate::Error::Io {
        path: opts.dest.display().to_string(),
        source: e,
    })?;
    let root = opts.dest.canonicalize().map_err(|e| crate::Error::Io {
        path: opts.dest.display().to_string(),
        source: e,
    })?;
    let mut report = RestoreReport {
        manifest: snap.name.clone(),
        ..RestoreReport::default()
    };
    let mut rows = stream_rows(snap.path().to_owned(), opts.prefix.clone());
    let mut tasks = JoinSet::new();
    let mut flow = imb_storage::adaptive::Flow::new(opts.flow, opts.congestion.clone());
    while let Some(row) = rows.recv().await {
        let row = row?;
        let buffered = row.size.min(crate::CHUNK);
        crate::admit(&mut flow, &mut tasks, buffered, |r| {
            tally(&mut report, Some(r))
        })
        .await;
        let (store, root) = (store.clone(), root.clone());
        tasks.spawn(async move {
            let done = one(&*store, &root, row).await;
            // A file already in place moved nothing worth timing.
            let moved = match &done {
                Done::Restored(b) => Some(*b),
                Done::Present => None,
                _ => Some(0),
            };
            (buffered, moved, done)
        });
    }
    crate::drain(&mut flow, &mut tasks, |r| tally(&mut report, Some(r))).await;
    report.concurrency = Some(flow.report());
    report.duration_s = started.elapsed().as_secs_f64();
    Ok(report)
}

fn tally(report: &mut RestoreReport, r: Option<std::result::Result<Done, tokio::task::JoinError>>) {
    let listed = report.failures.len() + report.refused.len();
    match r {
        Some(Ok(Done::Restored(b))) => {
            report.files_restored += 1;
            report.bytes_written += b;
        }
        Some(Ok(Done::Present)) => report.files_present += 1,
        Some(Ok(Done::Failed(f))) if listed < MAX_LISTED => report.failures.push(f),
        Some(Ok(Done::Refused(f))) if listed < MAX_LISTED => report.refused.push(f),
        Some(Ok(_)) => report.omitted += 1,
        Some(Err(e)) => report.failures.push(Finding {
            path: String::new(),
            object: String::new(),
            problem: format!("internal error: {e}"),
        }),
        None => {}
    }
}

/// The relative path a manifest row names, if it stays inside the directory.
fn safe_relative(file_path: &str) -> std::result::Result<PathBuf, String> {
    let rel = imb_storage::decode_path(file_path).map_err(|e| e.to_string())?;
    if rel.as_os_str().is_empty() || !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err("refused: the path would leave the restore directory".into());
    }
    Ok(rel)
}

/// Creates the directories above `target` one by one, refusing to pass through a
/// symlink (one planted in the restore directory could point anywhere).
fn make_parents(root: &Path, rel: &Path) -> std::result::Result<(), String> {
    let mut at = root.to_path_buf();
    let parents: Vec<_> = rel.components().collect();
    for c in &parents[..parents.len().saturating_sub(1)] {
        at.push(c);
        match fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(format!("refused: {} is a symlink", at.display()));
            }
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(format!("{} is a file, not a directory", at.display())),
            Err(_) => fs::create_dir(&at)
                .or_else(|e| if at.is_dir() { Ok(()) } else { Err(e) })
                .map_err(|e| format!("cannot create {}: {e}", at.display()))?,
        }
    }
    Ok(())
}

fn same_content(path: &Path, row: &FileRecord) -> bool {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_file() && m.len() == row.size => {}
        _ => return false,
    }
    File::open(path)
        .and_then(|f| imb_hash::hash_reader(f.take(row.size + 1)))
        .is_ok_and(|d| d.sha256 == row.checksum)
}

async fn one(store: &dyn ObjectRead, root: &Path, row: FileRecord) -> Done {
    let object = imb_layout::content_key(&row);
    let finding = |problem: String| Finding {
        path: row.file_path.clone(),
        object: object.clone(),
        problem,
    };
    let rel = match safe_relative(&row.file_path) {
        Ok(r) => r,
        Err(e) => return Done::Refused(finding(e)),
    };
    if let Err(e) = make_parents(root, &rel) {
        return if e.starts_with("refused") {
            Done::Refused(finding(e))
        } else {
            Done::Failed(finding(e))
        };
    }
    let target = root.join(&rel);
    if fs::symlink_metadata(&target).is_ok_and(|m| m.file_type().is_symlink()) {
        return Done::Refused(finding(format!(
            "refused: {} is a symlink",
            target.display()
        )));
    }
    if same_content(&target, &row) {
        return Done::Present;
    }
    let key = match Key::parse(object.as_str()) {
        Ok(k) => k,
        Err(e) => return Done::Failed(finding(format!("invalid object key: {e}"))),
    };
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = target.with_file_name(format!(".{name}.imb-restore-{}", std::process::id()));
    let written = async {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
        let mut res = store
            .get_opts(&key, GetOptions::default())
            .await
            .map_err(|e| format!("cannot read the object: {e}"))?;
        let mut h = imb_hash::Hasher::new();
        while let Some(chunk) = res
            .body
            .next_chunk()
            .await
            .map_err(|e| format!("download failed: {e}"))?
        {
            h.update(&chunk);
            f.write_all(&chunk)
                .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
        }
        let d = h.finish();
        if d.sha256 != row.checksum {
            return Err(format!(
                "content differs from the manifest (sha256 {} vs {})",
                d.sha256_hex(),
                imb_hash::hex(&row.checksum)
            ));
        }
        let mtime = SystemTime::UNIX_EPOCH + Duration::from_nanos(row.mtime_ns.max(0) as u64);
        f.set_modified(mtime)
            .map_err(|e| format!("cannot set the time of {}: {e}", tmp.display()))?;
        f.sync_all()
            .map_err(|e| format!("cannot sync {}: {e}", tmp.display()))?;
        fs::rename(&tmp, &target).map_err(|e| format!("cannot move into place: {e}"))?;
        Ok(d.len)
    }
    .await;
    match written {
        Ok(n) => Done::Restored(n),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Done::Failed(finding(e))
        }
    }
}

/// What restoring `snap` (under `prefix`) reads from a priced store: every live
/// file once, priced as `class` (`None`: a store without prices). An upper bound:
/// a resumed restore skips what it already has.
///
/// # Errors
/// When the manifest cannot be read.
pub async fn restore_usage(
    snap: &Snapshot,
    prefix: Option<String>,
    class: Option<&str>,
) -> Result<imb_cost::Usage> {
    let mut usage = imb_cost::Usage::default();
    let mut rows = crate::stream_rows(snap.path().to_owned(), prefix);
    while let Some(row) = rows.recv().await {
        usage.read(class, row?.size);
    }
    Ok(usage)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_are_refused() {
        for bad in [
            "../etc/passwd",
            "a/../../b",
            "/etc/passwd",
            "a/%2E%2E/b",
            "%2F..%2Fx",
            ".",
        ] {
            assert!(safe_relative(bad).is_err(), "{bad}");
        }
        assert_eq!(
            safe_relative("library/a b.jpg").unwrap(),
            PathBuf::from("library/a b.jpg")
        );
    }
}
