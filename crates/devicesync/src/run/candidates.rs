//! Stage 1: the files that may need uploading. A sync walks the roots and keeps
//! what is selected, supported and not known to be on the server; a retry takes
//! the failed files from the state database.

use std::time::{Duration, SystemTime};

use imb_immich::MediaTypes;

use super::ledger::Ledger;
use super::{Candidate, DeviceSync, Retry, read_error};
use crate::scan::{self, Event, Found, Kind};
use crate::state::{FileStatus, mtime_ns};
use crate::summary::reason;
use crate::{AlbumChoice, Error, Result};

impl DeviceSync {
    /// Walks the roots (on a blocking thread: the walk and the state lookups are
    /// file system and SQLite work) and classifies every file.
    pub(super) async fn scan(
        &self,
        mut l: Ledger,
        media: &MediaTypes,
    ) -> Result<(Ledger, Vec<Candidate>)> {
        let roots = scan::normalise_roots(&self.config.roots)?;
        let media = media.clone();
        let selection = self.config.selection.clone();
        let (hold_photos, hold_videos) = (self.config.hold_photos, self.config.hold_videos);
        let download_offline = self.config.download_offline;
        let now = SystemTime::now();
        let joined = tokio::task::spawn_blocking(move || {
            let mut cands = Vec::new();
            let mut err = None;
            scan::walk(&roots, &media, |e| {
                let f: Found = match e {
                    Event::File(f) => f,
                    Event::Problem(_) => return l.s.skip(reason::UNREADABLE_DIR),
                };
                if f.kind == Kind::Sidecar || err.is_some() {
                    return;
                }
                match selection.choice(&f.album) {
                    AlbumChoice::Excluded => return l.s.skip(reason::EXCLUDED_ALBUM),
                    AlbumChoice::NotSelected => return l.s.skip(reason::NOT_SELECTED),
                    AlbumChoice::Selected => {}
                }
                if f.kind == Kind::Unsupported {
                    return l.s.skip(reason::UNSUPPORTED);
                }
                l.s.scanned += 1;
                l.seen_album(&f.album);
                let held = match f.kind {
                    Kind::Video => hold_videos,
                    _ => hold_photos,
                };
                let rec = match l.db().get(&f.path) {
                    Ok(r) => r,
                    Err(e) => {
                        err = Some(e);
                        return;
                    }
                };
                let same = rec.as_ref().filter(|r| r.matches(f.size, f.mtime_ns()));
                if same.is_some_and(|r| r.status.on_server()) {
                    l.s.unchanged += 1;
                    return;
                }
                if held {
                    l.s.skip(reason::WAITING);
                    l.incomplete(&f.album);
                    return;
                }
                if !download_offline && let Some(why) = f.placeholder(now) {
                    tracing::info!(file = %f.path.display(), why, "not on this disk: skipped (--download-offline reads it)");
                    l.s.skip(reason::OFFLINE);
                    l.incomplete(&f.album);
                    return;
                }
                cands.push(Candidate {
                    id: rec.as_ref().map(|r| r.id),
                    sha1: same.and_then(|r| r.sha1),
                    video: f.kind == Kind::Video,
                    path: f.path,
                    album: f.album,
                    size: f.size,
                    mtime: f.mtime,
                });
            });
            match err {
                Some(e) => Err(e),
                None => Ok((l, cands)),
            }
        })
        .await;
        let (mut l, cands) = match joined {
            Ok(r) => r?,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        };
        l.s.candidates = cands.len() as u64;
        l.s.total = l.s.scanned;
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
