//! The sync itself, in the seed's order: select albums and find candidates (scan +
//! state), hash what is new, drop what the server already has (state, then
//! bulk-upload-check), check the quota, upload, record, sync albums.
//!
//! The state database is written as soon as something is known (a hash, an
//! outcome), so a killed run loses at most the uploads in flight, and those are
//! answered "duplicate" next time.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime};

use imb_immich::{
    AssetUpload, CheckItem, CheckVerdict, ImmichClient, MediaTypes, UploadStatus, pick_album,
};
use imb_storage::Payload;
use tokio::task::JoinSet;

use crate::StopToken;
use crate::media;
use crate::progress::{NoProgress, Phase, Progress};
use crate::scan::{self, Event, Found, Kind};
use crate::state::{FileStatus, RunRecord, StateDb, mtime_ns, now};
use crate::summary::{Quota, Summary, reason};
use crate::{Error, Result, RunLock, SyncConfig};

/// `meta` keys.
pub(crate) const META_SERVER: &str = "server";
pub(crate) const META_USER: &str = "user_id";
pub(crate) const META_MEDIA_TYPES: &str = "media_types";

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
}

impl Candidate {
    fn shown(&self) -> String {
        self.path.display().to_string()
    }
}

/// Why hashing a file did not give a hash.
enum HashError {
    Deleted,
    Failed(String),
}

/// How one upload ended.
enum Upload {
    Done(imb_immich::UploadOutcome),
    Deleted,
    Changed,
    Failed(String),
    Quota(String),
    Fatal(imb_immich::Error),
}

fn lock(db: &Mutex<StateDb>) -> MutexGuard<'_, StateDb> {
    db.lock().unwrap_or_else(|p| p.into_inner())
}

/// Describes an I/O error reading a file: a permission problem says so plainly.
fn read_error(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::PermissionDenied => format!("permission denied: {e}"),
        _ => format!("cannot read the file: {e}"),
    }
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

/// Opens `c` and builds its upload; `Err` is how it ended without one.
fn prepare(c: &Candidate, device_id: &str, sha1: [u8; 20]) -> Result<AssetUpload, Upload> {
    let file = std::fs::File::open(&c.path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Upload::Deleted,
        _ => Upload::Failed(read_error(&e)),
    })?;
    let meta = file
        .metadata()
        .map_err(|e| Upload::Failed(read_error(&e)))?;
    let mtime = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
    if meta.len() != c.size || mtime_ns(mtime) != mtime_ns(c.mtime) {
        return Err(Upload::Changed);
    }
    let info = media::inspect(&file, c.size, mtime, c.video);
    let sidecar = media::sidecar_of(&c.path).and_then(|p| {
        let f = std::fs::File::open(&p)
            .and_then(|f| f.metadata().map(|m| (f, m.len())))
            .inspect_err(|e| tracing::warn!(sidecar = %p.display(), error = %e, "cannot read the sidecar; uploading without it"))
            .ok()?;
        Some(Payload::File {
            file: Arc::new(f.0),
            len: f.1,
        })
    });
    let filename = c
        .path
        .file_name()
        .map_or_else(|| c.shown(), |n| n.to_string_lossy().into_owned());
    let device_asset_id: String = format!("{filename}-{}", c.size)
        .split_whitespace()
        .collect();
    Ok(AssetUpload::new(
        filename,
        Payload::File {
            file: Arc::new(file),
            len: c.size,
        },
        sha1,
        info.created_at,
        info.modified_at,
    )
    .with_favorite(false)
    .with_duration(info.duration)
    .with_sidecar(sidecar)
    .with_device(device_id, device_asset_id)
    .with_display_name(c.shown()))
}

async fn upload_one(client: Arc<ImmichClient>, c: Candidate, device_id: String) -> Upload {
    let Some(sha1) = c.sha1 else {
        return Upload::Failed("not hashed".into());
    };
    let prepared = tokio::task::spawn_blocking(move || prepare(&c, &device_id, sha1)).await;
    let asset = match prepared {
        Ok(Ok(a)) => a,
        Ok(Err(u)) => return u,
        Err(e) => return Upload::Failed(format!("preparing the upload failed: {e}")),
    };
    match client.upload(&asset).await {
        Ok(o) => Upload::Done(o),
        Err(e) if e.is_quota_exceeded() => Upload::Quota(e.to_string()),
        Err(e) if e.is_unauthorized() => Upload::Fatal(e),
        Err(imb_immich::Error::Io { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            Upload::Deleted
        }
        Err(e) => Upload::Failed(e.to_string()),
    }
}

/// The server's media types as JSON for the state's `meta`.
pub(crate) fn media_json(m: &MediaTypes) -> String {
    serde_json::json!({ "image": m.image, "video": m.video, "sidecar": m.sidecar }).to_string()
}

/// Per album: did anything go wrong this run?
type AlbumHealth = BTreeMap<String, bool>;

fn mark_problem(albums: &mut AlbumHealth, album: &str) {
    albums.insert(album.to_owned(), true);
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
        self.go(None).await
    }

    /// Retries failed uploads now (`device-sync failed --retry`), whatever their album.
    ///
    /// # Errors
    /// As [`Self::run`], and [`Error::UnknownFailedId`] for an id that is not a
    /// failed upload.
    pub async fn retry(&self, which: Retry) -> Result<Summary> {
        self.go(Some(which)).await
    }

    async fn go(&self, retry: Option<Retry>) -> Result<Summary> {
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
        let db = Arc::new(Mutex::new(StateDb::open(&self.config.state_dir)?));
        let client = &self.client;

        let api = client.api().await?;
        let media = client.media_types().await?;
        let user = client.my_user().await?;
        tracing::info!(server = %client.api_root(), api = %api, user = %user.email, "connected");
        if !dry {
            let db = lock(&db);
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

        let mut s = Summary {
            api: api.to_string(),
            dry_run: dry,
            quota: Some(Quota::of(&user)),
            ..Summary::default()
        };
        s.albums.enabled = self.config.album_sync;
        let mut health = AlbumHealth::new();

        // 1. Candidates.
        self.progress.phase(Phase::Scanning);
        let mut cands = match &retry {
            None => self.scan(&db, &media, &mut s, &mut health).await?,
            Some(which) => self.failed_candidates(&db, &media, which, &mut s)?,
        };
        tracing::info!(
            scanned = s.scanned,
            unchanged = s.unchanged,
            candidates = cands.len(),
            "scanned"
        );

        // 2. Hash what has no hash for its current size and mtime.
        self.hash(&db, &mut cands, &mut s, &mut health).await?;

        // 3. Drop what the server has: known locally by SHA-1, then asked in batches.
        self.progress.phase(Phase::Checking);
        let to_upload = self.check(&db, cands, &mut s, &mut health).await?;
        s.to_upload = to_upload.len() as u64;
        s.bytes_to_upload = to_upload.iter().map(|c| c.size).sum();

        // 4. Quota, up front.
        if !to_upload.is_empty() {
            let over = if dry {
                user.would_exceed_quota(s.bytes_to_upload)
            } else {
                match client.ensure_quota(s.bytes_to_upload).await {
                    Ok(u) => {
                        s.quota = Some(Quota::of(&u));
                        false
                    }
                    Err(e) if e.is_quota_exceeded() => {
                        tracing::error!(error = %e, "not enough quota for this backup: stopping");
                        true
                    }
                    Err(e) => return Err(e.into()),
                }
            };
            if over {
                s.quota_exceeded = true;
            }
        }

        // 5. Upload.
        if dry || s.quota_exceeded {
            s.remaining += to_upload.len() as u64;
            for c in &to_upload {
                mark_problem(&mut health, &c.album);
            }
        } else {
            self.upload(&db, to_upload, &mut s, &mut health).await?;
        }

        // 6. Album sync.
        if self.config.album_sync && !dry {
            self.progress.phase(Phase::Albums);
            self.sync_albums(&db, &user.id, &mut s).await?;
        }

        // 7. Record.
        if !dry && let Ok(u) = client.my_user().await {
            s.quota = Some(Quota::of(&u));
        }
        s.retries = client.retries();
        s.duration_s = start.elapsed().as_secs_f64();
        if !dry {
            let db = lock(&db);
            let finished = now();
            if retry.is_none() && !s.quota_exceeded && !s.stopped {
                for (album, problem) in &health {
                    if !problem {
                        db.set_album_backup(album, &finished)?;
                    }
                }
            }
            db.record_run(&RunRecord {
                kind: if retry.is_some() { "retry" } else { "sync" }.into(),
                started_at,
                finished_at: finished,
                total: s.total,
                uploaded: s.uploaded,
                duplicates: s.duplicates,
                failed: s.failed,
                skipped: s.skipped_total(),
                bytes: s.bytes,
                complete: !s.has_problems(),
            })?;
        }
        tracing::info!(
            uploaded = s.uploaded,
            duplicates = s.duplicates,
            failed = s.failed,
            remaining = s.remaining,
            "done"
        );
        Ok(s)
    }

    /// Walks the roots (on a blocking thread) and classifies every file.
    async fn scan(
        &self,
        db: &Arc<Mutex<StateDb>>,
        media: &MediaTypes,
        s: &mut Summary,
        health: &mut AlbumHealth,
    ) -> Result<Vec<Candidate>> {
        let roots = scan::normalise_roots(&self.config.roots)?;
        let db = db.clone();
        let media = media.clone();
        let selection = self.config.selection.clone();
        let mut summary = std::mem::take(s);
        let mut albums = std::mem::take(health);
        let joined = tokio::task::spawn_blocking(move || {
            let mut cands = Vec::new();
            let mut err = None;
            let db = lock(&db);
            scan::walk(&roots, &media, |e| {
                let f: Found = match e {
                    Event::File(f) => f,
                    Event::Problem(_) => return summary.skip(reason::UNREADABLE_DIR),
                };
                if f.kind == Kind::Sidecar || err.is_some() {
                    return;
                }
                match selection.choice(&f.album) {
                    crate::AlbumChoice::Excluded => return summary.skip(reason::EXCLUDED_ALBUM),
                    crate::AlbumChoice::NotSelected => {
                        return summary.skip(reason::NOT_SELECTED);
                    }
                    crate::AlbumChoice::Selected => {}
                }
                if f.kind == Kind::Unsupported {
                    return summary.skip(reason::UNSUPPORTED);
                }
                summary.scanned += 1;
                albums.entry(f.album.clone()).or_insert(false);
                let rec = match db.get(&f.path) {
                    Ok(r) => r,
                    Err(e) => {
                        err = Some(e);
                        return;
                    }
                };
                let same = rec.as_ref().filter(|r| r.matches(f.size, f.mtime_ns()));
                if same.is_some_and(|r| r.status.on_server()) {
                    summary.unchanged += 1;
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
                None => Ok((cands, summary, albums)),
            }
        })
        .await;
        let (cands, summary, albums) = match joined {
            Ok(r) => r?,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        };
        *s = summary;
        *health = albums;
        s.total = cands.len() as u64;
        Ok(cands)
    }

    /// The failed files to retry, as candidates.
    fn failed_candidates(
        &self,
        db: &Arc<Mutex<StateDb>>,
        media: &MediaTypes,
        which: &Retry,
        s: &mut Summary,
    ) -> Result<Vec<Candidate>> {
        let db = lock(db);
        let rows = match which {
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
        };
        let mut cands = Vec::new();
        for r in rows {
            let meta = match std::fs::metadata(&r.path) {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    s.skip(reason::DELETED);
                    s.total += 1;
                    if !self.config.dry_run {
                        db.forget(&r.path)?;
                    }
                    continue;
                }
                Err(e) => {
                    s.total += 1;
                    let msg = read_error(&e);
                    if !self.config.dry_run {
                        db.record_failure(&r.path, &r.album, r.size, r.mtime_ns, &msg)?;
                    }
                    s.fail(Some(r.id), &r.path.display().to_string(), &msg);
                    continue;
                }
            };
            let kind = scan::kind_of(media, &r.path);
            if matches!(kind, Kind::Unsupported | Kind::Sidecar) {
                s.skip(reason::UNSUPPORTED);
                continue;
            }
            let mtime = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            s.scanned += 1;
            s.total += 1;
            cands.push(Candidate {
                id: Some(r.id),
                sha1: r.sha1.filter(|_| r.matches(meta.len(), mtime_ns(mtime))),
                video: kind == Kind::Video,
                path: r.path,
                album: r.album,
                size: meta.len(),
                mtime,
            });
        }
        Ok(cands)
    }

    /// Hashes the candidates without a hash, `hash_workers` at a time.
    async fn hash(
        &self,
        db: &Arc<Mutex<StateDb>>,
        cands: &mut Vec<Candidate>,
        s: &mut Summary,
        health: &mut AlbumHealth,
    ) -> Result<()> {
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
                    s.hashed += 1;
                    c.sha1 = Some(sha1);
                    c.size = size;
                    c.mtime = mtime;
                    if !self.config.dry_run {
                        lock(db).record_hash(&c.path, &c.album, size, mtime_ns(mtime), &sha1)?;
                    }
                }
                Err(HashError::Deleted) => {
                    tracing::info!(file = %c.shown(), "deleted before it could be read: skipped");
                    s.skip(reason::DELETED);
                    gone[i] = true;
                    if !self.config.dry_run {
                        lock(db).forget(&c.path)?;
                    }
                }
                Err(HashError::Failed(msg)) => {
                    tracing::warn!(file = %c.shown(), error = %msg, "cannot hash");
                    gone[i] = true;
                    mark_problem(health, &c.album);
                    let id = if self.config.dry_run {
                        c.id
                    } else {
                        let db = lock(db);
                        db.record_failure(&c.path, &c.album, c.size, mtime_ns(c.mtime), &msg)?;
                        db.get(&c.path)?.map(|r| r.id)
                    };
                    s.fail(id, &c.shown(), &msg);
                }
            }
        }
        // Stopped while hashing: what was not hashed waits for the next run.
        for i in next {
            gone[i] = true;
            s.remaining += 1;
            s.stopped = true;
            mark_problem(health, &cands[i].album);
        }
        let mut i = 0;
        cands.retain(|_| {
            i += 1;
            !gone[i - 1]
        });
        Ok(())
    }

    /// Removes from `cands` what the server already has; returns what to upload.
    async fn check(
        &self,
        db: &Arc<Mutex<StateDb>>,
        cands: Vec<Candidate>,
        s: &mut Summary,
        health: &mut AlbumHealth,
    ) -> Result<Vec<Candidate>> {
        let dry = self.config.dry_run;
        let mut ask = Vec::new();
        {
            let db = lock(db);
            for c in cands {
                let Some(sha1) = c.sha1 else { continue };
                match db.asset_for_sha1(&sha1)? {
                    Some(asset) => {
                        tracing::debug!(file = %c.shown(), asset = %asset, "already on the server (another path with this content)");
                        s.duplicates += 1;
                        if !dry {
                            db.record_on_server(&c.path, FileStatus::Duplicate, &asset, false)?;
                        }
                    }
                    None => ask.push(c),
                }
            }
        }
        if ask.is_empty() {
            return Ok(ask);
        }
        let items: Vec<CheckItem> = ask
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.sha1.map(|h| CheckItem::new(i.to_string(), &h)))
            .collect();
        let results = match self.client.bulk_upload_check(&items).await {
            Ok(r) => r,
            Err(e) if e.is_unauthorized() => return Err(e.into()),
            Err(e) => {
                // Not fatal: every upload carries its checksum, so the server still
                // answers "duplicate" for what it has.
                tracing::warn!(error = %e, "bulk-upload-check failed; uploading without it");
                return Ok(ask);
            }
        };
        let mut keep = vec![true; ask.len()];
        let db = lock(db);
        for r in results {
            let Ok(i) = r.id.parse::<usize>() else {
                continue;
            };
            let Some(c) = ask.get(i) else { continue };
            match r.verdict {
                CheckVerdict::Accept => {}
                CheckVerdict::Duplicate { asset_id, .. } => {
                    keep[i] = false;
                    s.duplicates += 1;
                    if !dry {
                        db.record_on_server(&c.path, FileStatus::Duplicate, &asset_id, false)?;
                    }
                }
                CheckVerdict::Reject { reason: why } => {
                    keep[i] = false;
                    let msg = format!("the server refuses it: {why}");
                    mark_problem(health, &c.album);
                    let id = if dry {
                        c.id
                    } else {
                        db.record_failure(&c.path, &c.album, c.size, mtime_ns(c.mtime), &msg)?;
                        db.get(&c.path)?.map(|r| r.id)
                    };
                    s.fail(id, &c.shown(), &msg);
                }
                _ => {}
            }
        }
        drop(db);
        let mut i = 0;
        ask.retain(|_| {
            i += 1;
            keep[i - 1]
        });
        Ok(ask)
    }

    /// Uploads `todo`, `concurrency` at a time; stops launching on a quota answer,
    /// a refused key, or a stop request.
    async fn upload(
        &self,
        db: &Arc<Mutex<StateDb>>,
        todo: Vec<Candidate>,
        s: &mut Summary,
        health: &mut AlbumHealth,
    ) -> Result<()> {
        if todo.is_empty() {
            return Ok(());
        }
        self.progress.phase(Phase::Uploading);
        self.progress
            .queued(todo.len() as u64, todo.iter().map(|c| c.size).sum());
        let mut set = JoinSet::new();
        let mut next = todo.into_iter();
        let mut fatal: Option<imb_immich::Error> = None;
        loop {
            while set.len() < self.config.concurrency
                && !s.quota_exceeded
                && fatal.is_none()
                && !self.stop.is_stopped()
            {
                let Some(c) = next.next() else { break };
                self.progress.started(&c.shown(), c.size);
                let client = self.client.clone();
                let device = self.config.device_id.clone();
                set.spawn(async move {
                    let out = upload_one(client, c.clone(), device).await;
                    (c, out)
                });
            }
            let Some(joined) = set.join_next().await else {
                break;
            };
            let (c, out) = match joined {
                Ok(r) => r,
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            };
            self.progress.finished(&c.shown(), c.size);
            let db = lock(db);
            match out {
                Upload::Done(o) => {
                    let status = match o.status {
                        UploadStatus::Created => {
                            s.uploaded += 1;
                            s.bytes += c.size;
                            tracing::info!(file = %c.shown(), asset = %o.id, bytes = c.size, "uploaded");
                            FileStatus::Uploaded
                        }
                        UploadStatus::Duplicate => {
                            s.duplicates += 1;
                            tracing::info!(file = %c.shown(), asset = %o.id, "already on the server");
                            FileStatus::Duplicate
                        }
                    };
                    db.record_on_server(&c.path, status, &o.id, true)?;
                }
                Upload::Deleted => {
                    tracing::info!(file = %c.shown(), "deleted before upload: skipped");
                    s.skip(reason::DELETED);
                    db.forget(&c.path)?;
                }
                Upload::Changed => {
                    tracing::info!(file = %c.shown(), "changed since it was hashed: left for the next run");
                    s.skip(reason::CHANGED);
                    mark_problem(health, &c.album);
                }
                Upload::Failed(msg) => {
                    tracing::warn!(file = %c.shown(), error = %msg, "upload failed");
                    db.record_failure(&c.path, &c.album, c.size, mtime_ns(c.mtime), &msg)?;
                    let id = db.get(&c.path)?.map(|r| r.id);
                    s.fail(id, &c.shown(), &msg);
                    mark_problem(health, &c.album);
                }
                Upload::Quota(msg) => {
                    if !s.quota_exceeded {
                        tracing::error!(file = %c.shown(), error = %msg, "storage quota exceeded: stopping the backup");
                    }
                    s.quota_exceeded = true;
                    s.remaining += 1;
                    mark_problem(health, &c.album);
                }
                Upload::Fatal(e) => {
                    s.remaining += 1;
                    fatal.get_or_insert(e);
                }
            }
        }
        let left: Vec<Candidate> = next.collect();
        s.remaining += left.len() as u64;
        for c in &left {
            mark_problem(health, &c.album);
        }
        if !left.is_empty() && self.stop.is_stopped() && !s.quota_exceeded {
            s.stopped = true;
            tracing::warn!(
                left = left.len(),
                "stopped before every file was uploaded; the next run continues"
            );
        }
        match fatal {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }

    /// Adds every asset on the server that is not yet in its album's server album:
    /// the user's album of the same name picked by [`pick_album`] (the oldest one
    /// they own), or a new one. Assets are added in batches; an asset the album
    /// already has counts as added. Each file remembers the album id it went to,
    /// so later runs only add what is new (an album deleted on the server is not
    /// refilled).
    async fn sync_albums(
        &self,
        db: &Arc<Mutex<StateDb>>,
        user_id: &str,
        s: &mut Summary,
    ) -> Result<()> {
        let rows = lock(db).not_in_album()?;
        let mut by_album: BTreeMap<String, Vec<(i64, String)>> = BTreeMap::new();
        for r in rows {
            if !self.config.selection.includes(&r.album) {
                continue;
            }
            if let Some(asset) = r.asset_id {
                by_album.entry(r.album).or_default().push((r.id, asset));
            }
        }
        if by_album.is_empty() {
            return Ok(());
        }
        let server_albums = match self.client.albums().await {
            Ok(a) => a,
            Err(e) if e.is_unauthorized() => return Err(e.into()),
            Err(e) => {
                s.albums.errors.push(format!("listing albums: {e}"));
                return Ok(());
            }
        };
        for (name, rows) in by_album {
            let album_id = match pick_album(&server_albums, &name, user_id) {
                Some(a) => a.id.clone(),
                None => match self.client.create_album(&name).await {
                    Ok(a) => {
                        s.albums.created += 1;
                        tracing::info!(album = %name, id = %a.id, "created the server album");
                        a.id
                    }
                    Err(e) => {
                        tracing::warn!(album = %name, error = %e, "cannot create the server album");
                        s.albums.errors.push(format!("{name}: {e}"));
                        continue;
                    }
                },
            };
            let mut seen = BTreeSet::new();
            let ids: Vec<String> = rows
                .iter()
                .filter(|(_, a)| seen.insert(a.clone()))
                .map(|(_, a)| a.clone())
                .collect();
            let results = match self.client.add_to_album(&album_id, &ids).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(album = %name, error = %e, "cannot add assets to the server album");
                    s.albums.errors.push(format!("{name}: {e}"));
                    continue;
                }
            };
            s.albums.added += results.iter().filter(|r| r.success).count() as u64;
            let ok: HashSet<&str> = results
                .iter()
                .filter(|r| r.is_in_album())
                .map(|r| r.id.as_str())
                .collect();
            for r in results.iter().filter(|r| !r.is_in_album()) {
                tracing::warn!(album = %name, asset = %r.id, error = ?r.error, "not added to the album");
            }
            let done: Vec<i64> = rows
                .iter()
                .filter(|(_, a)| ok.contains(a.as_str()))
                .map(|(id, _)| *id)
                .collect();
            lock(db).mark_in_album(&done, &album_id)?;
            tracing::info!(album = %name, assets = done.len(), "album synced");
        }
        Ok(())
    }
}
