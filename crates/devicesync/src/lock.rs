//! One run at a time per state directory: an exclusive advisory lock (`flock`) on a
//! lock file that also names the holder's pid for the "another device-sync is
//! running" message. The kernel drops the lock when its holder exits, however it
//! exits, so there is no stale-lock takeover to race on; the file itself stays
//! (deleting it would let a waiter lock an unlinked inode while a newcomer locks
//! a fresh one).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// The lock file's name in the state directory.
pub const LOCK_FILE: &str = "sync.lock";

/// A held lock; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct RunLock {
    path: PathBuf,
    // Held for its lock.
    _file: File,
}

impl RunLock {
    /// Takes the lock in `dir` (created if missing).
    ///
    /// # Errors
    /// [`Error::LockHeld`] if another process (or another handle in this one)
    /// holds it; [`Error::Io`] otherwise.
    pub fn acquire(dir: &Path) -> Result<RunLock> {
        std::fs::create_dir_all(dir).map_err(crate::error::io_err(dir))?;
        let path = dir.join(LOCK_FILE);
        let io = |e: std::io::Error| crate::error::io_err(&path)(e);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                return Err(Error::LockHeld {
                    path: path.display().to_string(),
                    // 0 while the holder has locked but not yet written its pid.
                    pid: text.trim().parse().unwrap_or(0),
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        Ok(RunLock { path, _file: file })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
