//! One run at a time per state directory: a lock file holding the owner's pid,
//! created exclusively. A lock whose pid no longer exists (a killed run) is stale
//! and taken over. The check-then-replace of a stale lock can race with another
//! process doing the same; both then retry the exclusive create, so at most one wins.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// The lock file's name in the state directory.
pub const LOCK_FILE: &str = "sync.lock";

/// A held lock; released (the file removed) on drop.
#[derive(Debug)]
pub struct RunLock {
    path: PathBuf,
}

fn alive(pid: u32) -> bool {
    pid != 0 && Path::new("/proc").join(pid.to_string()).exists()
}

impl RunLock {
    /// Takes the lock in `dir` (created if missing).
    ///
    /// # Errors
    /// [`Error::LockHeld`] if a live process holds it; [`Error::Io`] otherwise.
    pub fn acquire(dir: &Path) -> Result<RunLock> {
        std::fs::create_dir_all(dir).map_err(crate::error::io_err(dir))?;
        let path = dir.join(LOCK_FILE);
        for _ in 0..3 {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    writeln!(f, "{}", std::process::id()).map_err(crate::error::io_err(&path))?;
                    return Ok(RunLock { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let text = std::fs::read_to_string(&path).unwrap_or_default();
                    match text.trim().parse::<u32>() {
                        Ok(pid) if alive(pid) => {
                            return Err(Error::LockHeld {
                                path: path.display().to_string(),
                                pid,
                            });
                        }
                        // A pid that is gone, or a file a crash left empty (the
                        // write follows the create): stale.
                        _ => {
                            tracing::warn!(lock = %path.display(), owner = %text.trim(), "removing a stale lock");
                            let _ = std::fs::remove_file(&path);
                        }
                    }
                }
                Err(e) => return Err(crate::error::io_err(&path)(e)),
            }
        }
        Err(Error::LockHeld {
            path: path.display().to_string(),
            pid: 0,
        })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
