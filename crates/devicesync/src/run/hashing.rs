//! Stage 2: the SHA-1 of every candidate without one for its current size and
//! mtime, `hash_workers` files at a time on blocking threads. Each hash is
//! recorded as soon as it is known.

use std::path::Path;
use std::time::SystemTime;

use tokio::task::JoinSet;

use super::ledger::Ledger;
use super::{Candidate, DeviceSync, read_error};
use crate::Result;
use crate::progress::Phase;
use crate::summary::StopReason;

/// Why hashing a file did not give a hash.
enum HashError {
    Deleted,
    Failed(String),
}

/// Hashes `path`; returns the SHA-1 with the size and mtime of what was hashed.
fn hash_file(path: &Path) -> Result<([u8; 20], u64, SystemTime), HashError> {
    let file = std::fs::File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => HashError::Deleted,
        _ => HashError::Failed(read_error(&e)),
    })?;
    let meta = file
        .metadata()
        .map_err(|e| HashError::Failed(read_error(&e)))?;
    let mtime = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
    let d = imb_hash::hash_reader(&file).map_err(|e| HashError::Failed(read_error(&e)))?;
    if d.len != meta.len() {
        return Err(HashError::Failed(format!(
            "the file changed while being hashed ({} bytes read, {} expected)",
            d.len,
            meta.len()
        )));
    }
    Ok((d.sha1, d.len, mtime))
}

impl DeviceSync {
    /// Hashes the candidates without a hash; drops those that are gone, failed,
    /// or not reached before a stop.
    pub(super) async fn hash(&self, l: &mut Ledger, cands: &mut Vec<Candidate>) -> Result<()> {
        let todo: Vec<usize> = (0..cands.len())
            .filter(|&i| cands[i].sha1.is_none())
            .collect();
        if todo.is_empty() {
            return Ok(());
        }
        self.progress.phase(Phase::Hashing);
        self.progress
            .hashing(todo.len() as u64, todo.iter().map(|&i| cands[i].size).sum());
        let mut gone = vec![false; cands.len()];
        let mut set = JoinSet::new();
        let mut next = todo.into_iter();
        loop {
            while set.len() < self.config.hash_workers && !self.stop.is_stopped() {
                let Some(i) = next.next() else { break };
                let path = cands[i].path.clone();
                set.spawn_blocking(move || (i, hash_file(&path)));
            }
            let Some(joined) = set.join_next().await else {
                break;
            };
            let (i, res) = match joined {
                Ok(r) => r,
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            };
            let c = &mut cands[i];
            self.progress.hashed(c.size);
            match res {
                Ok((sha1, size, mtime)) => {
                    c.sha1 = Some(sha1);
                    c.size = size;
                    c.mtime = mtime;
                    l.with(|e| e.hashed(c, &sha1))?;
                }
                Err(HashError::Deleted) => {
                    tracing::info!(file = %c.shown(), "deleted before it could be read: skipped");
                    gone[i] = true;
                    l.with(|e| e.deleted(&c.path))?;
                }
                Err(HashError::Failed(msg)) => {
                    tracing::warn!(file = %c.shown(), error = %msg, "cannot hash");
                    gone[i] = true;
                    l.with(|e| e.failed(c, &msg))?;
                }
            }
        }
        // Stopped while hashing: what was not hashed waits for the next run.
        for i in next {
            gone[i] = true;
            l.s.stop(StopReason::Signal);
            l.left(&cands[i]);
        }
        let mut i = 0;
        cands.retain(|_| {
            i += 1;
            !gone[i - 1]
        });
        Ok(())
    }
}
