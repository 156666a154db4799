//! Private working directories that outlive a kill only until the next run.
//!
//! A backup's manifest copy, restore-verify's dump and its scratch PostgreSQL all
//! live in temporary directories. A run that is killed (`kill -9`, an OOM kill, a
//! pod evicted mid-run) cannot remove its own, and at a million files one is about
//! 200 MB. So each [`WorkDir`] holds an exclusive `flock` on an owner file inside
//! it for as long as it lives (the owner writes its pid there once it holds the
//! lock), and creating one first removes every directory of the same prefix whose
//! owner file is written and unlocked: its owner is gone. A directory whose owner
//! file is missing or empty (being created right now, or its creator died between
//! `mkdir` and locking) is left for an hour.
//!
//! Locks are advisory and per open file, so they hold across processes and users
//! and are released by the kernel when the owner dies, whatever killed it.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The owner file inside every work directory.
pub const OWNER: &str = ".imb-owner";

/// How long a directory without an owner file is given before it counts as stale.
const UNOWNED_GRACE: Duration = Duration::from_secs(3600);

/// A private (mode 0700) temporary directory, locked while it lives and removed
/// on drop.
#[derive(Debug)]
pub struct WorkDir {
    // Field order: the directory goes before the lock is released.
    dir: tempfile::TempDir,
    _owner: File,
}

impl WorkDir {
    /// Creates `{temp dir}/{prefix}XXXXXX` after sweeping stale ones.
    ///
    /// # Errors
    /// When the directory or its owner file cannot be created or locked.
    pub fn new(prefix: &str) -> io::Result<WorkDir> {
        Self::new_in(&std::env::temp_dir(), prefix, |_| {})
    }

    /// Creates `{parent}/{prefix}XXXXXX` after sweeping stale ones, calling
    /// `before_remove` on each stale directory first (to stop what a dead run left
    /// running in it).
    ///
    /// # Errors
    /// When the directory or its owner file cannot be created or locked.
    pub fn new_in(
        parent: &Path,
        prefix: &str,
        before_remove: impl Fn(&Path),
    ) -> io::Result<WorkDir> {
        for stale in sweep(parent, prefix, before_remove) {
            tracing::info!(dir = %stale.display(), "removed the work directory of a run that was killed");
        }
        let dir = tempfile::Builder::new().prefix(prefix).tempdir_in(parent)?;
        let mut owner = File::create(dir.path().join(OWNER))?;
        // Blocking: a concurrent sweep may hold it for a moment to look.
        owner.lock()?;
        // Written only under the lock: an empty owner file is one being created
        // (not yet locked), which a sweep must not take for a dead one.
        writeln!(owner, "{}", std::process::id())?;
        Ok(WorkDir { dir, _owner: owner })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Removes the directories in `parent` named `{prefix}…` whose owner is gone;
/// returns them.
pub fn sweep(parent: &Path, prefix: &str, before_remove: impl Fn(&Path)) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name();
        let is_ours = name.to_str().is_some_and(|n| n.starts_with(prefix));
        // Never follow a link planted in a shared temp directory.
        if !is_ours || !e.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let dir = e.path();
        if !is_stale(&dir) {
            continue;
        }
        before_remove(&dir);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => removed.push(dir),
            Err(err) => {
                tracing::warn!(dir = %dir.display(), error = %err, "could not remove a stale work directory")
            }
        }
    }
    removed
}

fn is_stale(dir: &Path) -> bool {
    let old = || {
        std::fs::metadata(dir)
            .and_then(|m| m.modified())
            .is_ok_and(|t| SystemTime::now().duration_since(t).unwrap_or_default() > UNOWNED_GRACE)
    };
    match File::open(dir.join(OWNER)) {
        // A free lock on a written owner file: its owner is gone. (Ours is dropped
        // at once.) An empty one is still being created, between create and lock.
        Ok(f) => match f.try_lock() {
            Ok(()) => f.metadata().is_ok_and(|m| m.len() > 0) || old(),
            Err(_) => false,
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => old(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_dir_is_kept_and_a_dead_ones_is_swept() {
        let parent = tempfile::tempdir().unwrap();
        let live = WorkDir::new_in(parent.path(), "imb-t-", |_| {}).unwrap();
        // A dead run's directory: an owner file nobody holds.
        let dead = parent.path().join("imb-t-dead");
        std::fs::create_dir(&dead).unwrap();
        std::fs::write(dead.join(OWNER), b"4242\n").unwrap();
        std::fs::write(dead.join("manifest-work.db"), b"200 MB at a million files").unwrap();
        // Being created right now: no owner file yet, or not yet locked and written.
        let young = parent.path().join("imb-t-young");
        std::fs::create_dir(&young).unwrap();
        let creating = parent.path().join("imb-t-creating");
        std::fs::create_dir(&creating).unwrap();
        std::fs::write(creating.join(OWNER), b"").unwrap();
        // Another prefix is not ours to touch.
        let other = parent.path().join("other-dead");
        std::fs::create_dir(&other).unwrap();
        std::fs::write(other.join(OWNER), b"1\n").unwrap();

        let seen = std::cell::RefCell::new(Vec::new());
        let second = WorkDir::new_in(parent.path(), "imb-t-", |d| {
            seen.borrow_mut().push(d.to_owned())
        })
        .unwrap();
        assert_eq!(*seen.borrow(), vec![dead.clone()]);
        assert!(!dead.exists() && young.exists() && creating.exists() && other.exists());
        assert!(live.path().exists() && second.path().exists());

        let kept = live.path().to_owned();
        drop(live);
        assert!(!kept.exists(), "a work dir removes itself");
    }

    /// Runs starting together sweep each other's directories while they are being
    /// created: none may lose its own, and none may fail to take its lock.
    #[test]
    fn concurrent_creation_never_loses_a_live_dir() {
        let parent = tempfile::tempdir().unwrap();
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..100 {
                        let w = WorkDir::new_in(parent.path(), "imb-race-", |_| {}).unwrap();
                        std::fs::write(w.path().join("work"), b"x").unwrap();
                        assert!(w.path().join(OWNER).exists());
                    }
                });
            }
        });
        assert_eq!(std::fs::read_dir(parent.path()).unwrap().count(), 0);
    }
}
