//! The engine's settings, built by the binary from its command line, environment
//! and config file.

use std::path::PathBuf;
use std::time::Duration;

use crate::{Error, Result, Selection};

/// How often a sync checks with the server what it still has, by default: a
/// day, as a phone's daily background backup would notice.
pub const DEFAULT_RECONCILE_EVERY: Duration = Duration::from_secs(24 * 3600);

/// Settings for a [`crate::DeviceSync`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SyncConfig {
    /// The folders whose subfolders are device albums (a DCIM, a card, Pictures).
    pub roots: Vec<PathBuf>,
    /// Which albums are backed up.
    pub selection: Selection,
    /// Where the state database and the lock live.
    pub state_dir: PathBuf,
    /// Uploads in flight at once, fixed; `None` adapts them (from 4 up to 32; an
    /// Immich server's CPU, not the link, is usually the bound).
    pub concurrency: Option<usize>,
    /// Files hashed at once (blocking threads).
    pub hash_workers: usize,
    /// After uploading, add each album's assets to the server album of the same name.
    pub album_sync: bool,
    /// Hash and ask the server, but upload nothing and record nothing.
    pub dry_run: bool,
    /// `deviceId` for v2 servers.
    pub device_id: String,
    /// Ask the server whether what the state calls backed up is still there at
    /// most this often (an asset deleted on the server is uploaded again).
    pub reconcile_every: Duration,
    /// Ask it in this run, whenever the last time was.
    pub reconcile: bool,
    /// Photos wait for a later run (a network rule is not met now): they are
    /// skipped as `waiting`, and their albums are not complete.
    pub hold_photos: bool,
    /// Videos wait likewise.
    pub hold_videos: bool,
    /// Read sync clients' placeholders too (downloading them); else they are
    /// skipped as `offline` and stay pending.
    pub download_offline: bool,
}

impl SyncConfig {
    /// The uploads in flight: fixed, or adapted from 4 up to 32.
    pub(crate) fn flow(&self) -> imb_storage::adaptive::Limits {
        // Uploads stream from their files: each buffers a chunk at most.
        const MEMORY: u64 = 256 << 20;
        match self.concurrency {
            Some(n) => imb_storage::adaptive::Limits::fixed(n, MEMORY),
            None => imb_storage::adaptive::Limits::adaptive(4, 32, MEMORY),
        }
    }

    /// Settings for `roots` with state in `state_dir`: every album, uploads in
    /// flight adapted, hashing on up to 4 threads, no album sync.
    pub fn new(roots: Vec<PathBuf>, state_dir: PathBuf) -> SyncConfig {
        SyncConfig {
            roots,
            selection: Selection::recents(),
            state_dir,
            concurrency: None,
            hash_workers: std::thread::available_parallelism()
                .map_or(2, |n| n.get())
                .min(4),
            album_sync: false,
            dry_run: false,
            device_id: default_device_id(),
            reconcile_every: DEFAULT_RECONCILE_EVERY,
            reconcile: false,
            hold_photos: false,
            hold_videos: false,
            download_offline: false,
        }
    }

    /// Checks the settings.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the setting.
    pub fn validate(&self) -> Result<()> {
        let bad = |setting, message: &str| {
            Err(Error::InvalidConfig {
                setting,
                message: message.to_owned(),
            })
        };
        if self.roots.is_empty() {
            return bad("root", "at least one root folder is needed");
        }
        if self.concurrency == Some(0) {
            return bad("concurrency", "must be at least 1");
        }
        if self.hash_workers == 0 {
            return bad("hash workers", "must be at least 1");
        }
        if self.device_id.trim().is_empty() {
            return bad("device id", "must not be empty");
        }
        Ok(())
    }
}

/// An XDG base directory: `$var` when absolute, else `$HOME/{under_home}`.
pub fn xdg_dir(var: &str, under_home: &str) -> Option<PathBuf> {
    let absolute = |v: std::ffi::OsString| Some(PathBuf::from(v)).filter(|p| p.is_absolute());
    std::env::var_os(var).and_then(absolute).or_else(|| {
        std::env::var_os("HOME")
            .and_then(absolute)
            .map(|h| h.join(under_home))
    })
}

/// `$XDG_STATE_HOME/immich-device-sync`, else `~/.local/state/immich-device-sync`.
pub fn default_state_dir() -> Option<PathBuf> {
    Some(xdg_dir("XDG_STATE_HOME", ".local/state")?.join("immich-device-sync"))
}

/// `device-sync-{hostname}`: what v2 servers get as `deviceId`.
pub fn default_device_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned());
    format!("device-sync-{host}")
}
