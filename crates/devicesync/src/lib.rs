//! device-sync's engine: what the Immich mobile app's backup does, from a device's
//! photo folders (a phone's DCIM synced or mounted, a camera card, a laptop's
//! Pictures) to an Immich server.
//!
//! A run ([`DeviceSync::run`]) follows the seed's steps:
//! 1. **Select albums.** A device album is the directory that directly contains a
//!    file; [`Selection`] is "Recents" (all) or named albums, minus excluded ones
//!    (exclusion wins). Only extensions the server accepts count.
//! 2. **Find candidates.** The [`StateDb`] remembers every file's size, mtime,
//!    SHA-1 and server status; a file known to be on the server with the same size
//!    and mtime is skipped without reading it or asking the server.
//! 3. **Check for duplicates.** New and changed files are hashed once; a SHA-1 the
//!    state already knows on the server, and then what `bulk-upload-check` says
//!    the server has, is recorded as a duplicate with its asset id.
//! 4. **Upload** `concurrency` at a time, after checking the quota up front; 201 is
//!    uploaded, 200 duplicate, both recorded with the remote id.
//! 5. **Album sync** (optional): each device album's assets go into the user's
//!    server album of the same name, created when missing. When the user has
//!    several albums of that name, the one used is `imb_immich::pick_album`'s
//!    choice: among those the user owns, the one created first (ties: the
//!    smaller id), so every run and every device picks the same one.
//!
//! Design decisions:
//! * **One bad file never stops a run**; a full quota, a refused key or a
//!   stop request do. Per-file outcomes are recorded in the state database as they
//!   happen (failed files with their error, for `device-sync failed`) and counted
//!   in the [`Summary`].
//! * **No printing, no runtime.** Progress goes through [`Progress`], events through
//!   `tracing`; the caller owns the tokio runtime. Blocking work (the walk,
//!   hashing, opening files) runs in `spawn_blocking`.
//! * **Approximations** are written down where they are made: EXIF times without
//!   an offset are sent as UTC (`media.rs`), "unmetered" is NetworkManager's
//!   opinion (`conditions.rs`), placeholders are told by metadata (`offline.rs`),
//!   watch mode polls where inotify misses changes (`watch.rs`).

pub mod conditions;
mod config;
mod error;
mod lock;
mod media;
mod offline;
mod progress;
mod run;
mod scan;
mod selection;
mod state;
mod status;
mod summary;
pub mod watch;

pub use config::{
    DEFAULT_RECONCILE_EVERY, SyncConfig, default_device_id, default_state_dir, xdg_dir,
};
pub use error::{Error, Result};
pub use imb_storage::StopToken;
pub use lock::{LOCK_FILE, RunLock};
pub use progress::{NoProgress, Phase, Progress};
pub use run::{DeviceSync, Retry};
pub use selection::{AlbumChoice, RECENTS, Selection, album_of};
pub use state::{FileRecord, FileStatus, RunRecord, STATE_FILE, StateDb, Totals, mtime_ns};
pub use status::{AlbumInfo, Status, Waiting, failed_uploads, note_waiting, status};
pub use summary::{AlbumSync, Failure, MAX_LISTED_FAILURES, Quota, StopReason, Summary, reason};

#[cfg(test)]
mod tests;
