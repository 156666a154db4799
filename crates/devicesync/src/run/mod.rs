//! The sync itself, in the seed's order: select albums and find candidates (scan +
//! state), hash what is new, drop what the server already has (state, then
//! bulk-upload-check), check the quota, upload, record, sync albums. Each stage
//! has its module; this one keeps the order, and the [`ledger`] every outcome goes
//! through (state database, summary, albums; nothing written on a dry run).
//!
//! The state database is written as soon as something is known (a hash, an
//! outcome), so a killed run loses at most the uploads in flight, and those are
//! answered "duplicate" next time.

mod albums;
mod candidates;
mod check;
mod hashing;
mod ledger;
mod live;
#[cfg(test)]
pub(crate) use live::is_pair as live_is_pair;
mod reconcile;
mod upload;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use imb_immich::{ImmichClient, MediaTypes};

use crate::StopToken;
use crate::progress::{NoProgress, Phase, Progress};
use crate::state::{StateDb, now};
use crate::summary::{Quota, StopReason, Summary};
use crate::{Result, RunLock, SyncConfig};
use ledger::Ledger;

/// `meta` keys.
pub(crate) const META_SERVER: &str = "server";
pub(crate) const META_USER: &str = "user_id";
pub(crate) const META_MEDIA_TYPES: &str = "media_types";
/// Why background runs are being kept back (see [`crate::note_waiting`]).
pub(crate) const META_WAITING: &str = "waiting";
/// How many files the selection had at the last full walk.
pub(crate) const META_TOTAL: &str = "selection_total";
/// When the state's "on the server" facts were last checked with the server.
pub(crate) const META_RECONCILED: &str = "reconciled_at";

/// Runs device-sync: `run` for a full sync, `retry` for failed uploads.
///
/// ```no_run
/// # async fn f() -> imb_devicesync::Result<()> {
/// use std::sync::Arc;
/// use imb_devicesync::{DeviceSync, Selection, SyncConfig};
/// use imb_immich::{ApiKey, ClientConfig, ImmichClient};
///
/// let key = ApiKey::from_env("IMMICH_API_KEY")?;
/// let client = Arc::new(ImmichClient::new(ClientConfig::new("https://photos.example.org", key))?);
/// let mut cfg = SyncConfig::new(vec!["/sdcard/DCIM".into()], "/var/lib/device-sync".into());
/// cfg.selection = Selection::recents().excluding(["Screenshots"]);
/// let summary = DeviceSync::new(client, cfg).run().await?;
/// assert!(summary.total >= summary.uploaded);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct DeviceSync {
    client: Arc<ImmichClient>,
    config: SyncConfig,
    progress: Arc<dyn Progress>,
    stop: StopToken,
}

/// Which files a retry takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retry {
    /// Every failed file.
    All,
    /// These failed files (ids from `device-sync failed`).
    Ids(Vec<i64>),
}

/// What a sync looks at.
enum Scope {
    /// Every file under the roots.
    Full,
    /// These files and folders.
    Paths(Vec<PathBuf>),
    /// Failed files from the state database.
    Retry(Retry),
}

/// A file that may need uploading.
#[derive(Debug, Clone)]
struct Candidate {
    id: Option<i64>,
    path: PathBuf,
    album: String,
    size: u64,
    mtime: SystemTime,
    sha1: Option<[u8; 20]>,
    video: bool,
    /// A live photo's motion video: uploaded hidden.
    hidden: bool,
    /// A live photo's still: its motion video's asset id, to link at upload.
    live_video: Option<String>,
}

impl Candidate {
    fn shown(&self) -> String {
        self.path.display().to_string()
    }
}

/// The server's media types as JSON for the state's `meta`.
pub(crate) fn media_json(m: &MediaTypes) -> String {
    serde_json::json!({ "image": m.image, "video": m.video, "sidecar": m.sidecar }).to_string()
}

impl DeviceSync {
    /// A sync of `config` through `client`.
    pub fn new(client: Arc<ImmichClient>, config: SyncConfig) -> DeviceSync {
        DeviceSync {
            client,
            config,
            progress: Arc::new(NoProgress),
            stop: StopToken::new(),
        }
    }

    /// Report progress here.
    pub fn with_progress(mut self, p: Arc<dyn Progress>) -> Self {
        self.progress = p;
        self
    }

    /// Stop when this token is triggered.
    pub fn with_stop(mut self, stop: StopToken) -> Self {
        self.stop = stop;
        self
    }

    /// The settings.
    pub fn config(&self) -> &SyncConfig {
        &self.config
    }

    /// A full sync: every selected album under the roots.
    ///
    /// # Errors
    /// What stops the run as a whole: invalid settings, the lock held, the state
    /// database, the server unreachable or the key refused. Per-file problems are
    /// in the [`Summary`].
    pub async fn run(&self) -> Result<Summary> {
        self.sync(Scope::Full).await
    }

    /// A sync of only these files and folders (what a watcher saw change; paths
    /// outside the roots are ignored): no walk of the roots, no reconcile.
    ///
    /// # Errors
    /// As [`Self::run`].
    pub async fn run_paths(&self, paths: Vec<PathBuf>) -> Result<Summary> {
        self.sync(Scope::Paths(paths)).await
    }

    /// Retries failed uploads now (`device-sync failed --retry`), whatever their album.
    ///
    /// # Errors
    /// As [`Self::run`], and [`Error::UnknownFailedId`] for an id that is not a
    /// failed upload.
    pub async fn retry(&self, which: Retry) -> Result<Summary> {
        self.sync(Scope::Retry(which)).await
    }

    async fn sync(&self, scope: Scope) -> Result<Summary> {
        let start = Instant::now();
        let started_at = now();
        self.config.validate()?;
        let dry = self.config.dry_run;
        // A dry run writes nothing, so it does not need to keep others out.
        let _lock = if dry {
            None
        } else {
            Some(RunLock::acquire(&self.config.state_dir)?)
        };
        let db = StateDb::open(&self.config.state_dir)?;
        let client = &self.client;

        let api = client.api().await?;
        let media = client.media_types().await?;
        let user = client.my_user().await?;
        tracing::info!(server = %client.api_root(), api = %api, user = %user.email, "connected");
        if !dry {
            let server = client.api_root().to_owned();
            let known = (db.meta(META_SERVER)?, db.meta(META_USER)?);
            if let (Some(s), Some(u)) = &known
                && (*s != server || *u != user.id)
            {
                let n = db.forget_server()?;
                tracing::warn!(was = %s, now = %server, files = n, "the server or user changed: what was known to be on the old one is checked again");
            }
            db.set_meta(META_SERVER, &server)?;
            db.set_meta(META_USER, &user.id)?;
            db.set_meta(META_MEDIA_TYPES, &media_json(&media))?;
        }
        let mut summary = Summary {
            api: api.to_string(),
            dry_run: dry,
            quota: Some(Quota::of(&user)),
            ..Summary::default()
        };
        summary.albums.enabled = self.config.album_sync;
        let l = Ledger::new(db, dry, summary);

        // 1. Candidates.
        self.progress.phase(Phase::Scanning);
        let full = matches!(scope, Scope::Full);
        let kind = if matches!(scope, Scope::Retry(_)) {
            "retry"
        } else {
            "sync"
        };
        let (mut l, mut cands) = match scope {
            Scope::Full => {
                let l = self.reconcile(l).await?;
                self.scan(l, &media, None).await?
            }
            Scope::Paths(paths) => self.scan(l, &media, Some(paths)).await?,
            Scope::Retry(which) => {
                let mut l = l;
                let cands = self.failed_candidates(&mut l, &media, &which)?;
                (l, cands)
            }
        };
        tracing::info!(
            scanned = l.s.scanned,
            unchanged = l.s.unchanged,
            candidates = cands.len(),
            "scanned"
        );

        // 2. Hash what has no hash for its current size and mtime.
        self.hash(&mut l, &mut cands).await?;

        // Live photos: which still goes with which motion video.
        let live = self.pair(&cands, &media).await?;

        // 3. Drop what the server has: known locally by SHA-1, then asked in batches.
        self.progress.phase(Phase::Checking);
        let (mut l, to_upload) = self.check(l, cands).await?;
        l.s.to_upload = to_upload.len() as u64;
        l.s.bytes_to_upload = to_upload.iter().map(|c| c.size).sum();

        // 4. Quota, up front: when everything does not fit, what fits goes (in
        // the upload order, each file that still fits), the rest waits for room.
        let mut to_upload = to_upload;
        let mut short_of_quota = false;
        if !to_upload.is_empty() {
            let now = if dry {
                user.clone()
            } else {
                client.my_user().await?
            };
            l.s.quota = Some(Quota::of(&now));
            if let Some(room) = now.quota_remaining().filter(|r| *r < l.s.bytes_to_upload) {
                short_of_quota = true;
                let mut room = room;
                let (fit, wait): (Vec<_>, Vec<_>) = to_upload.into_iter().partition(|c| {
                    let fits = c.size <= room;
                    if fits {
                        room -= c.size;
                    }
                    fits
                });
                tracing::error!(
                    uploading = fit.len(),
                    waiting = wait.len(),
                    free = now.quota_remaining().unwrap_or(0),
                    "not enough quota for this whole backup: uploading what fits"
                );
                for c in &wait {
                    l.left(c);
                }
                to_upload = fit;
            }
        }

        // 5. Upload: a live photo's motion video first (hidden), then the rest,
        // each still with its video's asset id; then link the pairs that were
        // not linked by their upload.
        if dry {
            for c in &to_upload {
                l.left(c);
            }
        } else {
            let (videos, rest) = live.order(to_upload);
            self.upload(&mut l, videos).await?;
            let rest = live.with_videos(&l, rest)?;
            self.upload(&mut l, rest).await?;
            self.link(&mut l, &live).await?;
        }
        // Set after the upload, which stops at the first quota refusal.
        if short_of_quota {
            l.s.stop(StopReason::Quota);
        }

        // 6. Album sync.
        if self.config.album_sync && !dry {
            self.progress.phase(Phase::Albums);
            self.sync_albums(&mut l, &user.id).await?;
        }

        // 7. Record.
        if !dry && let Ok(u) = client.my_user().await {
            l.s.quota = Some(Quota::of(&u));
        }
        l.s.retries = client.retries();
        l.s.duration_s = start.elapsed().as_secs_f64();
        l.finish(kind, started_at, full)?;
        let s = l.s;
        tracing::info!(
            uploaded = s.uploaded,
            duplicates = s.duplicates,
            failed = s.failed,
            remaining = s.remaining,
            "done"
        );
        Ok(s)
    }
}

/// Describes an I/O error reading a file: a permission problem says so plainly.
fn read_error(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::PermissionDenied => format!("permission denied: {e}"),
        _ => format!("cannot read the file: {e}"),
    }
}

/// Runs `f` on a blocking thread (SQLite and file system work stay off the
/// runtime's threads); a panic there is a panic here.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}
