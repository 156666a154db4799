//! Live photos, as the mobile app uploads them: the motion video first, hidden,
//! then the still with `livePhotoVideoId`, so the server shows one asset. A still
//! and a video in the same folder are a pair when their Apple content
//! identifiers match (the still's MakerNote, the video's QuickTime keys), or,
//! when neither has one, when they share a name stem and the video is at most
//! [`MAX_STEM_PAIR`] long. Pairs already on the server (found by checksum) are
//! linked with `PUT /assets/{still}`. Android motion photos are one file: the
//! server splits them, nothing to do here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use imb_immich::MediaTypes;

use super::ledger::Ledger;
use super::{Candidate, DeviceSync, blocking};
use crate::Result;
use crate::scan::{self, Kind};

/// The longest motion video paired by name alone (an iPhone's is about 3 s).
pub(crate) const MAX_STEM_PAIR: Duration = Duration::from_secs(4);

/// This run's pairs: still → video and back.
#[derive(Debug, Default)]
pub(super) struct Live {
    video_of: BTreeMap<PathBuf, PathBuf>,
    still_of: BTreeMap<PathBuf, PathBuf>,
}

/// What pairing needs to know of a file.
#[derive(Debug, Clone)]
struct Info {
    id: Option<String>,
    duration: Option<Duration>,
}

fn stem(p: &Path) -> Option<&std::ffi::OsStr> {
    p.file_stem()
}

/// Reads `p`'s identifier (and a video's duration); unreadable files pair with nothing.
fn info(p: &Path, video: bool) -> Option<Info> {
    let f = std::fs::File::open(p).ok()?;
    let len = f.metadata().ok()?.len();
    let (id, duration) = crate::media::live_info(&f, len, video);
    Some(Info { id, duration })
}

/// Whether a still and a video with these facts are one live photo.
pub(crate) fn is_pair(
    still_id: Option<&str>,
    video_id: Option<&str>,
    same_stem: bool,
    video_duration: Option<Duration>,
) -> bool {
    match (still_id, video_id) {
        (Some(a), Some(b)) => a == b,
        (None, None) => same_stem && video_duration.is_some_and(|d| d <= MAX_STEM_PAIR),
        _ => false,
    }
}

/// One folder's media files, read once per run, with what was read of them.
#[derive(Default)]
struct Folder {
    files: Vec<(PathBuf, bool)>,
    info: BTreeMap<PathBuf, Option<Info>>,
}

impl Folder {
    fn read(dir: &Path, media: &MediaTypes) -> Folder {
        let mut files = Vec::new();
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                let p = e.path();
                let hidden = e.file_name().as_encoded_bytes().first() == Some(&b'.');
                if hidden || !e.file_type().is_ok_and(|t| t.is_file()) {
                    continue;
                }
                match scan::kind_of(media, &p) {
                    Kind::Image => files.push((p, false)),
                    Kind::Video => files.push((p, true)),
                    _ => {}
                }
            }
        }
        files.sort();
        Folder {
            files,
            info: BTreeMap::new(),
        }
    }

    fn info(&mut self, p: &Path, video: bool) -> Option<Info> {
        self.info
            .entry(p.to_path_buf())
            .or_insert_with(|| info(p, video))
            .clone()
    }

    /// The partner of `p` (a still when `video`, else a video) in this folder:
    /// same stem first, else (with an identifier) any file of the other kind
    /// with the same one.
    fn partner(&mut self, p: &Path, video: bool) -> Option<PathBuf> {
        let mine = self.info(p, video)?;
        let others: Vec<PathBuf> = self
            .files
            .iter()
            .filter(|(q, v)| *v != video && q != p)
            .map(|(q, _)| q.clone())
            .collect();
        let (same, rest): (Vec<_>, Vec<_>) = others.into_iter().partition(|q| stem(q) == stem(p));
        let candidates = same.into_iter().map(|q| (q, true)).chain(
            mine.id
                .is_some()
                .then_some(rest)
                .into_iter()
                .flatten()
                .map(|q| (q, false)),
        );
        for (q, same_stem) in candidates {
            let Some(theirs) = self.info(&q, !video) else {
                continue;
            };
            let (still, vid) = if video {
                (&theirs, &mine)
            } else {
                (&mine, &theirs)
            };
            if is_pair(
                still.id.as_deref(),
                vid.id.as_deref(),
                same_stem,
                vid.duration,
            ) {
                return Some(q);
            }
        }
        None
    }
}

impl Live {
    /// Paired motion videos to upload first (hidden), and the rest.
    pub(super) fn order(&self, to_upload: Vec<Candidate>) -> (Vec<Candidate>, Vec<Candidate>) {
        let (mut videos, rest): (Vec<_>, Vec<_>) = to_upload
            .into_iter()
            .partition(|c| c.video && self.still_of.contains_key(&c.path));
        for v in &mut videos {
            v.hidden = true;
        }
        (videos, rest)
    }

    /// The stills among `rest` get their video's asset id, where the server has it.
    pub(super) fn with_videos(
        &self,
        l: &Ledger,
        mut rest: Vec<Candidate>,
    ) -> Result<Vec<Candidate>> {
        let db = l.db();
        for c in &mut rest {
            if let Some(v) = self.video_of.get(&c.path)
                && let Some(r) = db.get(v)?
                && r.status.on_server()
            {
                c.live_video = r.asset_id;
            }
        }
        Ok(rest)
    }
}

impl DeviceSync {
    /// Finds this run's pairs: each candidate with its partner in its folder
    /// (the partner may be a candidate too, or already backed up).
    pub(super) async fn pair(&self, cands: &[Candidate], media: &MediaTypes) -> Result<Live> {
        let wanted: Vec<(PathBuf, bool)> =
            cands.iter().map(|c| (c.path.clone(), c.video)).collect();
        let media = media.clone();
        blocking(move || {
            let mut live = Live::default();
            let mut folders: BTreeMap<PathBuf, Folder> = BTreeMap::new();
            for (p, video) in wanted {
                if live.video_of.contains_key(&p) || live.still_of.contains_key(&p) {
                    continue;
                }
                let Some(dir) = p.parent() else { continue };
                let folder = folders
                    .entry(dir.to_path_buf())
                    .or_insert_with(|| Folder::read(dir, &media));
                let Some(q) = folder.partner(&p, video) else {
                    continue;
                };
                let (still, vid) = if video { (q, p) } else { (p, q) };
                if live.video_of.contains_key(&still) || live.still_of.contains_key(&vid) {
                    continue;
                }
                tracing::debug!(still = %still.display(), video = %vid.display(), "a live photo");
                live.still_of.insert(vid.clone(), still.clone());
                live.video_of.insert(still, vid);
            }
            Ok(live)
        })
        .await
    }

    /// Links the pairs the uploads did not link (the still was already on the
    /// server, or went before its video could), and marks the videos hidden so
    /// album sync leaves them to their stills.
    pub(super) async fn link(&self, l: &mut Ledger, live: &Live) -> Result<()> {
        let mut todo = Vec::new();
        {
            let db = l.db();
            for (still, video) in &live.video_of {
                db.set_hidden(video)?;
                if l.linked.contains(still) {
                    continue;
                }
                let asset = |p: &Path| -> Result<Option<String>> {
                    Ok(db
                        .get(p)?
                        .filter(|r| r.status.on_server())
                        .and_then(|r| r.asset_id))
                };
                if let (Some(s), Some(v)) = (asset(still)?, asset(video)?) {
                    todo.push((still.clone(), s, v));
                }
            }
        }
        for (path, still, video) in todo {
            match self.client.link_live_photo(&still, &video).await {
                Ok(()) => {
                    tracing::info!(still = %path.display(), "live photo linked");
                    l.s.live_photos += 1;
                }
                Err(e) if e.is_unauthorized() => return Err(e.into()),
                Err(e) => {
                    tracing::warn!(still = %path.display(), error = %e, "could not link the live photo");
                    l.s.live_photo_errors
                        .push(format!("{}: {e}", path.display()));
                }
            }
        }
        Ok(())
    }
}
