//! Stage 5: the uploads, `concurrency` at a time, each outcome recorded as it
//! arrives. Launching stops on a quota answer, a refused key, or a stop request;
//! what is in flight finishes.

use std::sync::Arc;
use std::time::SystemTime;

use imb_immich::{AssetUpload, ImmichClient, UploadStatus};
use imb_storage::Payload;
use tokio::task::JoinSet;

use super::ledger::Ledger;
use super::{Candidate, DeviceSync, read_error};
use crate::Result;
use crate::media;
use crate::progress::Phase;
use crate::state::{FileStatus, mtime_ns};
use crate::summary::{StopReason, reason};

/// How one upload ended.
enum Upload {
    Done(imb_immich::UploadOutcome),
    Deleted,
    Changed,
    Failed(String),
    Quota(String),
    Fatal(imb_immich::Error),
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
    .with_live_photo(c.hidden, c.live_video.clone())
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

/// What an upload holds in memory: it streams from the file, a chunk at a time.
fn buffered(c: &Candidate) -> u64 {
    c.size.min(8 << 20)
}

impl DeviceSync {
    /// Uploads `todo`, `concurrency` at a time; stops launching on a quota answer,
    /// a refused key, or a stop request.
    pub(super) async fn upload(&self, l: &mut Ledger, todo: Vec<Candidate>) -> Result<()> {
        if todo.is_empty() {
            return Ok(());
        }
        self.progress.phase(Phase::Uploading);
        self.progress
            .queued(todo.len() as u64, todo.iter().map(|c| c.size).sum());
        let mut set = JoinSet::new();
        let mut next = todo.into_iter().peekable();
        let mut fatal: Option<imb_immich::Error> = None;
        let client = self.client.clone();
        let signal = imb_storage::adaptive::Signal(Arc::new(move || client.congestion()));
        let mut flow = imb_storage::adaptive::Flow::new(self.config.flow(), Some(signal));
        loop {
            while !l.s.quota_stopped() && fatal.is_none() && !self.stop.is_stopped() {
                let Some(c) = next.peek() else { break };
                if !flow.try_start(buffered(c)) {
                    break;
                }
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
            // A duplicate answered from the checksum is a request like any other;
            // a file gone or changed moved nothing worth timing.
            let moved = match &out {
                Upload::Done(o) if o.status == UploadStatus::Created => Some(c.size),
                Upload::Deleted | Upload::Changed => None,
                _ => Some(0),
            };
            flow.finish(buffered(&c), moved);
            match out {
                Upload::Done(o) => {
                    let status = match o.status {
                        UploadStatus::Created => {
                            tracing::info!(file = %c.shown(), asset = %o.id, bytes = c.size, "uploaded");
                            FileStatus::Uploaded
                        }
                        UploadStatus::Duplicate => {
                            tracing::info!(file = %c.shown(), asset = %o.id, "already on the server");
                            FileStatus::Duplicate
                        }
                    };
                    l.with(|e| e.on_server(&c, status, &o.id, true))?;
                }
                Upload::Deleted => {
                    tracing::info!(file = %c.shown(), "deleted before upload: skipped");
                    l.with(|e| e.deleted(&c.path))?;
                }
                Upload::Changed => {
                    tracing::info!(file = %c.shown(), "changed since it was hashed: left for the next run");
                    l.s.skip(reason::CHANGED);
                    l.incomplete(&c.album);
                }
                Upload::Failed(msg) => {
                    tracing::warn!(file = %c.shown(), error = %msg, "upload failed");
                    l.with(|e| e.failed(&c, &msg))?;
                }
                Upload::Quota(msg) => {
                    if !l.s.quota_stopped() {
                        tracing::error!(file = %c.shown(), error = %msg, "storage quota exceeded: stopping the backup");
                    }
                    l.s.stop(StopReason::Quota);
                    l.left(&c);
                }
                Upload::Fatal(e) => {
                    l.s.remaining += 1;
                    fatal.get_or_insert(e);
                }
            }
        }
        let left: Vec<Candidate> = next.collect();
        for c in &left {
            l.left(c);
        }
        if !left.is_empty() && self.stop.is_stopped() && !l.s.quota_stopped() {
            l.s.stop(StopReason::Signal);
            tracing::warn!(
                left = left.len(),
                "stopped before every file was uploaded; the next run continues"
            );
        }
        l.s.concurrency = Some(flow.report());
        match fatal {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }
}
