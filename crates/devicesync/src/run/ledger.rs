//! The run's bookkeeping in one place: every outcome goes to the state database
//! (unless this is a dry run), to the summary, and to the album it belongs to
//! (an album is complete this run only if nothing in it was left undone).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::Result;
use crate::state::{FileStatus, RunRecord, StateDb, mtime_ns, now};
use crate::summary::{Summary, reason};

use super::Candidate;

/// Whether each album seen this run was backed up completely.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AlbumOutcome {
    Complete,
    Incomplete,
}

/// The state database, the summary and the albums' outcomes of one run.
pub(super) struct Ledger {
    db: Arc<Mutex<StateDb>>,
    dry: bool,
    /// What the run did, as reported.
    pub(super) s: Summary,
    albums: BTreeMap<String, AlbumOutcome>,
    /// Stills uploaded (created) with their motion video linked.
    pub(super) linked: BTreeSet<PathBuf>,
}

/// The ledger with the state database in hand: where outcomes are written.
pub(super) struct Entry<'a> {
    db: &'a StateDb,
    dry: bool,
    s: &'a mut Summary,
    albums: &'a mut BTreeMap<String, AlbumOutcome>,
    linked: &'a mut BTreeSet<PathBuf>,
}

fn lock(db: &Mutex<StateDb>) -> MutexGuard<'_, StateDb> {
    // A poisoned lock is still usable: every write is one statement or one
    // transaction.
    db.lock().unwrap_or_else(|p| p.into_inner())
}

impl Ledger {
    pub(super) fn new(db: StateDb, dry: bool, s: Summary) -> Ledger {
        Ledger {
            db: Arc::new(Mutex::new(db)),
            dry,
            s,
            albums: BTreeMap::new(),
            linked: BTreeSet::new(),
        }
    }

    /// The state database, for reads and the run's own writes (`meta`).
    pub(super) fn db(&self) -> MutexGuard<'_, StateDb> {
        lock(&self.db)
    }

    /// Writes outcomes through `f`.
    pub(super) fn with<T>(&mut self, f: impl FnOnce(&mut Entry<'_>) -> Result<T>) -> Result<T> {
        let db = lock(&self.db);
        f(&mut Entry {
            db: &db,
            dry: self.dry,
            s: &mut self.s,
            albums: &mut self.albums,
            linked: &mut self.linked,
        })
    }

    /// Writes many outcomes through `f` in one transaction. Call it on a
    /// blocking thread: it holds the database for the whole batch.
    pub(super) fn batch<T>(&mut self, f: impl FnOnce(&mut Entry<'_>) -> Result<T>) -> Result<T> {
        let db = lock(&self.db);
        let (dry, s, albums, linked) = (self.dry, &mut self.s, &mut self.albums, &mut self.linked);
        db.batch(|db| {
            f(&mut Entry {
                db,
                dry,
                s,
                albums,
                linked,
            })
        })
    }

    /// An album with a file selected this run (complete until something in it is not).
    pub(super) fn seen_album(&mut self, album: &str) {
        self.albums
            .entry(album.to_owned())
            .or_insert(AlbumOutcome::Complete);
    }

    /// `c` was not done this run (a stop, the quota, a dry run): the next run does it.
    pub(super) fn left(&mut self, c: &Candidate) {
        self.s.remaining += 1;
        self.albums
            .insert(c.album.clone(), AlbumOutcome::Incomplete);
    }

    /// Something in `album` was not backed up this run.
    pub(super) fn incomplete(&mut self, album: &str) {
        self.albums
            .insert(album.to_owned(), AlbumOutcome::Incomplete);
    }

    /// The end of the run: complete albums get this run's time (a full sync only),
    /// and the run is recorded.
    pub(super) fn finish(&self, kind: &str, started_at: String, full_sync: bool) -> Result<()> {
        if self.dry {
            return Ok(());
        }
        let s = &self.s;
        let db = self.db();
        let finished = now();
        if full_sync && !s.stopped {
            for (album, outcome) in &self.albums {
                if *outcome == AlbumOutcome::Complete {
                    db.set_album_backup(album, &finished)?;
                }
            }
        }
        db.record_run(&RunRecord {
            kind: kind.into(),
            started_at,
            finished_at: finished,
            total: s.candidates,
            uploaded: s.uploaded,
            duplicates: s.duplicates,
            failed: s.failed,
            skipped: s.skipped_total(),
            bytes: s.bytes,
            complete: !s.has_problems(),
            stop_reason: s.stop_reason,
        })
    }
}

impl Entry<'_> {
    /// `c` now has a hash for its current size and mtime.
    pub(super) fn hashed(&mut self, c: &Candidate, sha1: &[u8; 20]) -> Result<()> {
        self.s.hashed += 1;
        if !self.dry {
            self.db
                .record_hash(&c.path, &c.album, c.size, mtime_ns(c.mtime), sha1)?;
        }
        Ok(())
    }

    /// The file at `path` is gone: skipped, and forgotten.
    pub(super) fn deleted(&mut self, path: &Path) -> Result<()> {
        self.s.skip(reason::DELETED);
        if !self.dry {
            self.db.forget(path)?;
        }
        Ok(())
    }

    /// `c` failed with `msg`: recorded (for `device-sync failed` and the retry),
    /// counted, and its album is incomplete.
    pub(super) fn failed(&mut self, c: &Candidate, msg: &str) -> Result<()> {
        self.albums
            .insert(c.album.clone(), AlbumOutcome::Incomplete);
        let id = if self.dry {
            c.id
        } else {
            self.db
                .record_failure(&c.path, &c.album, c.size, mtime_ns(c.mtime), msg)?;
            self.db.get(&c.path)?.map(|r| r.id)
        };
        self.s.fail(id, &c.shown(), msg);
        Ok(())
    }

    /// The server has `c`'s content as `asset`: uploaded now, or already there.
    /// `attempted` says whether an upload said so (counted as an attempt).
    pub(super) fn on_server(
        &mut self,
        c: &Candidate,
        status: FileStatus,
        asset: &str,
        attempted: bool,
    ) -> Result<()> {
        if status == FileStatus::Uploaded {
            self.s.uploaded += 1;
            self.s.bytes += c.size;
            if c.live_video.is_some() {
                self.s.live_photos += 1;
                self.linked.insert(c.path.clone());
            }
        } else {
            self.s.duplicates += 1;
        }
        if !self.dry {
            self.db
                .record_on_server(&c.path, status, asset, attempted)?;
        }
        Ok(())
    }

    /// The content with this SHA-1 is known to be on the server, as that asset.
    pub(super) fn asset_for_sha1(&self, sha1: &[u8; 20]) -> Result<Option<String>> {
        self.db.asset_for_sha1(sha1)
    }
}
