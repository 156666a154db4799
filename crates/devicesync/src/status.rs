//! The seed's Backup Status ("1,234 of 1,234 backed up", last backup, quota) and
//! the album list, from a walk of the roots compared with the state database.
//! Nothing is uploaded, hashed or written.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use imb_immich::{ImmichClient, MediaTypes};
use serde::Serialize;

use crate::run::{META_MEDIA_TYPES, META_WAITING};
use crate::scan::{self, Event, Kind};
use crate::state::{FileStatus, RunRecord, StateDb, Totals};
use crate::summary::{Quota, StopReason};
use crate::{AlbumChoice, Error, Result, SyncConfig};

/// One device album.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct AlbumInfo {
    /// Its name.
    pub name: String,
    /// `selected`, `excluded` or `not selected`.
    pub selection: String,
    /// Accepted media files in it.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Of those, known to be on the server unchanged.
    pub backed_up: u64,
    /// Of those, failed.
    pub failed: u64,
    /// When it was last backed up completely (RFC 3339).
    pub last_backup: Option<String>,
    /// The folders that make it up.
    pub folders: Vec<String>,
}

/// The seed's Backup Status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Status {
    /// Every selected file is on the server.
    pub complete: bool,
    /// Selected files on the server ("N of M backed up": N).
    pub backed_up: u64,
    /// Selected files ("N of M": M).
    pub total: u64,
    /// Selected files not yet on the server.
    pub remaining: u64,
    /// Selected files whose last upload failed.
    pub failed: u64,
    /// Selected files not backed up that are sync clients' placeholders (not
    /// on this disk; `--download-offline` reads them).
    pub offline: u64,
    /// When the last run that was not stopped early ended (RFC 3339): the
    /// seed's "Last backup".
    pub last_backup: Option<String>,
    /// Why the backup is paused: the last run stopped early for this reason
    /// (`quota`: nothing more fits; the next run goes on when there is room).
    pub paused: Option<StopReason>,
    /// Why a background run is waiting (a network or power rule not met), as
    /// the last one that did not start said.
    pub waiting: Option<Waiting>,
    /// Storage quota, when the server could be asked.
    pub quota: Option<Quota>,
    /// Why the server could not be asked, if it could not.
    pub server_error: Option<String>,
    /// Where the accepted extensions came from: `server` or `cache`.
    pub media_types_from: String,
    /// The seed's statistics over every recorded file.
    pub statistics: Totals,
    /// The last run.
    pub last_run: Option<RunRecord>,
    /// Every device album under the roots.
    pub albums: Vec<AlbumInfo>,
}

/// A background run that did not start, and why.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct Waiting {
    /// The rule not met, in words ("on a metered network: videos wait for an unmetered one").
    pub reason: String,
    /// Since when (RFC 3339): the first time this reason kept a run back.
    pub since: String,
}

/// Notes in `state_dir` that a run did not start because of `why` (for
/// `status`), or, with `None`, that nothing keeps runs back any more.
///
/// # Errors
/// [`Error::State`], [`Error::Io`] if the state directory cannot be made.
pub fn note_waiting(state_dir: &Path, why: Option<&str>) -> Result<()> {
    let Some(why) = why else {
        if let Some(db) = StateDb::open_existing(state_dir)? {
            db.delete_meta(META_WAITING)?;
        }
        return Ok(());
    };
    let db = StateDb::open(state_dir)?;
    let was = waiting(&db)?;
    if was.as_ref().is_some_and(|w| w.reason == why) {
        return Ok(());
    }
    let w = Waiting {
        reason: why.to_owned(),
        since: crate::state::now(),
    };
    db.set_meta(META_WAITING, &serde_json::to_string(&w).unwrap_or_default())
}

fn waiting(db: &StateDb) -> Result<Option<Waiting>> {
    // Read back from a file anyone with the state directory could have written:
    // a value that does not parse is no note.
    Ok(db
        .meta(META_WAITING)?
        .and_then(|j| serde_json::from_str(&j).ok()))
}

/// Backup status for `config`'s roots and selection. With a client, the quota and
/// the media types come from the server; without one (or when it cannot be
/// reached), media types come from the state's cache of the last run.
///
/// # Errors
/// [`Error::InvalidConfig`] when the media types are known neither from the
/// server nor from an earlier run; [`Error::State`], [`Error::Io`] for the roots.
pub async fn status(config: &SyncConfig, client: Option<&ImmichClient>) -> Result<Status> {
    let db = StateDb::open_existing(&config.state_dir)?;
    let mut st = Status::default();
    let mut media = None;
    if let Some(c) = client {
        match c.media_types().await {
            Ok(m) => {
                media = Some(m);
                st.media_types_from = "server".into();
                match c.my_user().await {
                    Ok(u) => st.quota = Some(Quota::of(&u)),
                    Err(e) => st.server_error = Some(e.to_string()),
                }
            }
            Err(e) if e.is_unauthorized() => return Err(e.into()),
            Err(e) => st.server_error = Some(e.to_string()),
        }
    }
    if media.is_none()
        && let Some(db) = &db
        && let Some(json) = db.meta(META_MEDIA_TYPES)?
    {
        media = serde_json::from_str::<MediaTypes>(&json).ok();
        st.media_types_from = "cache".into();
    }
    let media = media.ok_or_else(|| Error::InvalidConfig {
        setting: "server",
        message: match &st.server_error {
            // The cause first: a network or TLS error is what the user must fix.
            Some(e) => format!(
                "the server could not be asked ({e}), and no earlier sync recorded the file types it accepts"
            ),
            None => "the accepted file types are unknown: give the server (and key), or run a sync once"
                .into(),
        },
    })?;
    if let Some(db) = &db {
        st.statistics = db.totals()?;
        st.last_run = db.last_run()?;
        st.last_backup = db.last_finished_run()?.map(|r| r.finished_at);
        st.paused = st.last_run.as_ref().and_then(|r| r.stop_reason);
        st.waiting = waiting(db)?;
    }
    let roots = scan::normalise_roots(&config.roots)?;
    let selection = config.selection.clone();
    let db = db.map(|d| Arc::new(Mutex::new(d)));
    let joined = tokio::task::spawn_blocking(move || -> Result<Status> {
        let guard = db
            .as_ref()
            .map(|d| d.lock().unwrap_or_else(|p| p.into_inner()));
        let mut albums: BTreeMap<String, AlbumInfo> = BTreeMap::new();
        let mut offline = 0;
        let now = std::time::SystemTime::now();
        let mut err = None;
        scan::walk(&roots, &media, |e| {
            let Event::File(f) = e else { return };
            if !matches!(f.kind, Kind::Image | Kind::Video) || err.is_some() {
                return;
            }
            let a = albums.entry(f.album.clone()).or_insert_with(|| AlbumInfo {
                name: f.album.clone(),
                selection: selection.choice(&f.album).as_str().into(),
                ..AlbumInfo::default()
            });
            let folder = f
                .path
                .parent()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            if !a.folders.contains(&folder) {
                a.folders.push(folder);
            }
            a.files += 1;
            a.bytes += f.size;
            let record = match &guard {
                Some(db) => match db.get(&f.path) {
                    Ok(r) => r,
                    Err(e) => {
                        err = Some(e);
                        return;
                    }
                },
                None => None,
            };
            match record {
                Some(r) if r.matches(f.size, f.mtime_ns()) && r.status.on_server() => {
                    a.backed_up += 1;
                }
                Some(r) if r.status == FileStatus::Failed => a.failed += 1,
                _ if a.selection == AlbumChoice::Selected.as_str()
                    && f.placeholder(now).is_some() =>
                {
                    offline += 1;
                }
                _ => {}
            }
        });
        if let Some(e) = err {
            return Err(e);
        }
        let mut st = Status::default();
        for a in albums.values_mut() {
            if let Some(db) = &guard {
                a.last_backup = db.album_backup(&a.name)?;
            }
        }
        for a in albums.values() {
            if a.selection == AlbumChoice::Selected.as_str() {
                st.total += a.files;
                st.backed_up += a.backed_up;
                st.failed += a.failed;
            }
        }
        st.albums = albums.into_values().collect();
        st.offline = offline;
        Ok(st)
    })
    .await;
    let walked = match joined {
        Ok(r) => r?,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    };
    st.total = walked.total;
    st.backed_up = walked.backed_up;
    st.failed = walked.failed;
    st.offline = walked.offline;
    st.remaining = st.total - st.backed_up;
    st.complete = st.remaining == 0;
    st.albums = walked.albums;
    Ok(st)
}

/// The failed uploads recorded in `state_dir` (empty when there is no state yet).
///
/// # Errors
/// [`Error::State`].
pub fn failed_uploads(state_dir: &std::path::Path) -> Result<Vec<crate::FileRecord>> {
    match StateDb::open_existing(state_dir)? {
        Some(db) => db.failed(),
        None => Ok(Vec::new()),
    }
}
