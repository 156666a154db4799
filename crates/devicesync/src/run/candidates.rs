//! Stage 1: the files that may need uploading. A sync walks the roots and keeps
//! what is selected, supported and not known to be on the server; a retry takes
//! the failed files from the state database.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use imb_immich::MediaTypes;

use super::ledger::Ledger;
use super::{Candidate, DeviceSync, Retry, read_error};
use crate::scan::{self, Event, Found, Kind};
use crate::state::{FileStatus, mtime_ns};
use crate::summary::reason;
use crate::{AlbumChoice, Error, Result};

/// What the scan decides per file, the same for a full walk and for the paths
/// a watcher reported.
struct Classify {
    selection: crate::Selection,
    hold_photos: bool,
    hold_videos: bool,
    download_offline: bool,
    now: SystemTime,
}

impl Classify {
    fn of(c: &crate::SyncConfig) -> Classify {
        Classify {
            selection: c.selection.clone(),
            hold_photos: c.hold_photos,
            hold_videos: c.hold_videos,
            download_offline: c.download_offline,
            now: SystemTime::now(),
        }
    }

    /// Counts `f` and keeps it in `cands` when it may need uploading; `true`
    /// when it is a selected media file the state had no record of.
    fn take(&self, l: &mut Ledger, f: Found, cands: &mut Vec<Candidate>) -> Result<bool> {
        if f.kind == Kind::Sidecar {
            return Ok(false);
        }
        match self.selection.choice(&f.album) {
            AlbumChoice::Excluded => {
                l.s.skip(reason::EXCLUDED_ALBUM);
                return Ok(false);
            }
            AlbumChoice::NotSelected => {
                l.s.skip(reason::NOT_SELECTED);
                return Ok(false);
            }
            AlbumChoice::Selected => {}
        }
        if f.kind == Kind::Unsupported {
            l.s.skip(reason::UNSUPPORTED);
            return Ok(false);
        }
        l.s.scanned += 1;
        l.seen_album(&f.album);
        let held = match f.kind {
            Kind::Video => self.hold_videos,
            _ => self.hold_photos,
        };
        let rec = l.db().get(&f.path)?;
        let same = rec.as_ref().filter(|r| r.matches(f.size, f.mtime_ns()));
        if same.is_some_and(|r| r.status.on_server()) {
            l.s.unchanged += 1;
            return Ok(false);
        }
        if held {
            l.s.skip(reason::WAITING);
            l.incomplete(&f.album);
        } else if let Some(why) = f.placeholder(self.now).filter(|_| !self.download_offline) {
            tracing::info!(file = %f.path.display(), why, "not on this disk: skipped (--download-offline reads it)");
            l.s.skip(reason::OFFLINE);
            l.incomplete(&f.album);
        } else {
            cands.push(Candidate {
                id: rec.as_ref().map(|r| r.id),
                sha1: same.and_then(|r| r.sha1),
                video: f.kind == Kind::Video,
                path: f.path,
                album: f.album,
                size: f.size,
                mtime: f.mtime,
                hidden: false,
                live_video: None,
            });
        }
        Ok(rec.is_none())
    }
}

impl DeviceSync {
    /// Walks the roots (on a blocking thread: the walk and the state lookups are
    /// file system and SQLite work) and classifies every file; with `paths`,
    /// only those files and directories (what a watcher saw change), with
    /// `total` carried over from the last full walk.
    pub(super) async fn scan(
        &self,
        mut l: Ledger,
        media: &MediaTypes,
        paths: Option<Vec<PathBuf>>,
    ) -> Result<(Ledger, Vec<Candidate>)> {
        let roots = scan::normalise_roots(&self.config.roots)?;
        let media = media.clone();
        let classify = Classify::of(&self.config);
        let dry = self.config.dry_run;
        let joined = tokio::task::spawn_blocking(move || {
            let mut cands = Vec::new();
            let mut err = None;
            let mut new = 0u64;
            let mut visit = |e: Event| {
                let f = match e {
                    Event::File(f) => f,
                    Event::Problem(_) => return l.s.skip(reason::UNREADABLE_DIR),
                };
                if err.is_none() {
                    match classify.take(&mut l, f, &mut cands) {
                        Ok(n) => new += u64::from(n),
                        Err(e) => err = Some(e),
                    }
                }
            };
            let full = paths.is_none();
            match paths {
                None => scan::walk(&roots, &media, &mut visit),
                Some(paths) => scan::visit_paths(&roots, &paths, &media, &mut visit),
            }
            if let Some(e) = err {
                return Err(e);
            }
            if full {
                l.s.walks = 1;
                l.s.total = l.s.scanned;
            } else {
                // The selection's size as of the last walk, with the new files
                // (files deleted since are counted off at the next walk).
                let before = l.db().meta(super::META_TOTAL)?.and_then(|t| t.parse().ok());
                l.s.total = before.unwrap_or(0) + new;
            }
            if !dry {
                l.db().set_meta(super::META_TOTAL, &l.s.total.to_string())?;
            }
            Ok((l, cands))
        })
        .await;
        let (mut l, cands) = match joined {
            Ok(r) => r?,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        };
        l.s.candidates = cands.len() as u64;
        Ok((l, cands))
    }

    /// The failed files to retry, as candidates.
    pub(super) fn failed_candidates(
        &self,
        l: &mut Ledger,
        media: &MediaTypes,
        which: &Retry,
    ) -> Result<Vec<Candidate>> {
        let rows = {
            let db = l.db();
            match which {
                Retry::All => db.failed()?,
                Retry::Ids(ids) => {
                    let mut rows = Vec::new();
                    for &id in ids {
                        match db.get_id(id)? {
                            Some(r) if r.status == FileStatus::Failed => rows.push(r),
                            _ => return Err(Error::UnknownFailedId { id }),
                        }
                    }
                    rows
                }
            }
        };
        let mut cands = Vec::new();
        for r in rows {
            let kind = scan::kind_of(media, &r.path);
            let mut c = Candidate {
                id: Some(r.id),
                sha1: None,
                video: kind == Kind::Video,
                path: r.path,
                album: r.album,
                size: r.size,
                mtime: SystemTime::UNIX_EPOCH + Duration::from_nanos(r.mtime_ns.max(0) as u64),
                hidden: false,
                live_video: None,
            };
            let meta = match std::fs::metadata(&c.path) {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    l.s.candidates += 1;
                    l.with(|e| e.deleted(&c.path))?;
                    continue;
                }
                Err(e) => {
                    l.s.candidates += 1;
                    let msg = read_error(&e);
                    l.with(|e| e.failed(&c, &msg))?;
                    continue;
                }
            };
            if matches!(kind, Kind::Unsupported | Kind::Sidecar) {
                l.s.skip(reason::UNSUPPORTED);
                continue;
            }
            let mtime = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            l.s.scanned += 1;
            l.s.candidates += 1;
            c.sha1 = r
                .sha1
                .filter(|_| r.size == meta.len() && r.mtime_ns == mtime_ns(mtime));
            c.size = meta.len();
            c.mtime = mtime;
            cands.push(c);
        }
        l.s.total = l.s.scanned;
        Ok(cands)
    }
}
