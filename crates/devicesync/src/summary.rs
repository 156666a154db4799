//! What a run reports: the seed's statistics for this run, the skipped files by
//! reason, the quota, and the failures by name.

use std::collections::BTreeMap;

use serde::Serialize;

/// Failures listed by name in a summary; the rest are counted.
pub const MAX_LISTED_FAILURES: usize = 100;

/// Why a file was not uploaded without being a failure. The names are the keys
/// of [`Summary::skipped`].
pub mod reason {
    /// An extension the server does not accept (`GET /server/media-types`).
    pub const UNSUPPORTED: &str = "unsupported";
    /// In an excluded album.
    pub const EXCLUDED_ALBUM: &str = "excluded_album";
    /// In an album that is not selected.
    pub const NOT_SELECTED: &str = "not_selected";
    /// Deleted between the scan and the upload.
    pub const DELETED: &str = "deleted";
    /// Changed between hashing and uploading; the next run takes the new content.
    pub const CHANGED: &str = "changed";
    /// Held back by a network rule (videos on a metered network): the next run
    /// where the rule is met takes it.
    pub const WAITING: &str = "waiting";
    /// A sync client's placeholder whose content is not on this disk (see
    /// `--download-offline`).
    pub const OFFLINE: &str = "offline";
    /// A directory the walk could not read.
    pub const UNREADABLE_DIR: &str = "unreadable_dir";
}

/// Why a run stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum StopReason {
    /// Nothing more fits in the storage quota.
    Quota,
    /// A stop was requested (SIGTERM, Ctrl-C).
    Signal,
}

impl StopReason {
    /// The name in the JSON and the state database.
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Quota => "quota",
            StopReason::Signal => "signal",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<StopReason> {
        match s {
            "quota" => Some(StopReason::Quota),
            "signal" => Some(StopReason::Signal),
            _ => None,
        }
    }
}

/// The user's storage quota (`GET /users/me`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Quota {
    /// Bytes used.
    pub used: Option<u64>,
    /// The quota; `None` is unlimited.
    pub size: Option<u64>,
}

impl Quota {
    pub(crate) fn of(u: &imb_immich::User) -> Quota {
        Quota {
            used: u.quota_usage_in_bytes,
            size: u.quota_size_in_bytes,
        }
    }
}

/// One failed file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Failure {
    /// Its id in the state database (for `failed --retry ID`), if it has a row.
    pub id: Option<i64>,
    /// The file.
    pub path: String,
    /// Why.
    pub error: String,
}

/// What album sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct AlbumSync {
    /// Whether album sync was on.
    pub enabled: bool,
    /// Server albums created.
    pub created: u64,
    /// Assets added to server albums (already there is not counted).
    pub added: u64,
    /// Albums that could not be synced, with the reason.
    pub errors: Vec<String>,
}

/// The outcome of a run.
///
/// Counting: `scanned` is every accepted media file in the selected, non-excluded
/// albums; `unchanged` of them are known to be on the server and were not looked
/// at; the other `candidates`, and each ends as exactly one of
/// `uploaded`, `duplicates`, `failed`, `remaining` (not attempted: the run stopped,
/// or a dry run), `skipped.deleted` or `skipped.changed`. The other `skipped`
/// reasons count files outside the candidates.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Summary {
    /// The API generation spoken (`v2` or `v3`).
    pub api: String,
    /// Accepted media files in the selected albums.
    pub scanned: u64,
    /// Known to be on the server with the same size and mtime: skipped without asking.
    pub unchanged: u64,
    /// Every accepted media file in the selection, on every run (as `scanned`;
    /// the failed files, for a retry).
    pub total: u64,
    /// This run's candidates: new, changed, or not yet on the server.
    pub candidates: u64,
    /// Files hashed in this run.
    pub hashed: u64,
    /// Uploaded (201).
    pub uploaded: u64,
    /// Already on the server (200, bulk-upload-check, or known locally by SHA-1).
    pub duplicates: u64,
    /// Failed; recorded for `device-sync failed` and retried next run.
    pub failed: u64,
    /// Not attempted because the run stopped (quota, signal) or was a dry run.
    pub remaining: u64,
    /// Skipped files by reason (see [`reason`]).
    pub skipped: BTreeMap<String, u64>,
    /// Bytes of the files uploaded as new assets.
    pub bytes: u64,
    /// Files that were to be uploaded after the duplicate checks.
    pub to_upload: u64,
    /// Their bytes.
    pub bytes_to_upload: u64,
    /// The quota after the run (before it, when it could not be read again).
    pub quota: Option<Quota>,
    /// The run stopped before everything was attempted; `stop_reason` says why.
    pub stopped: bool,
    /// Why it stopped: the storage quota (up front or on the server's answer),
    /// or a stop request (signal).
    pub stop_reason: Option<StopReason>,
    /// Assets the state called backed up that the server no longer has: they
    /// were candidates again (reconciling, see [`crate::SyncConfig::reconcile_every`]).
    pub requeued: u64,
    /// Assets the state called backed up that are in the server's trash: not
    /// uploaded again (the user deleted them there).
    pub trashed: u64,
    /// Whether this run asked the server about what the state calls backed up.
    pub reconciled: bool,
    /// A dry run: nothing was uploaded or recorded.
    pub dry_run: bool,
    /// Live photos linked this run (a still with its motion video, at upload or
    /// afterwards for a pair already on the server).
    pub live_photos: u64,
    /// Pairs that could not be linked, with the reason (the next run tries again).
    pub live_photo_errors: Vec<String>,
    /// Album sync.
    pub albums: AlbumSync,
    /// Failures by name (at most [`MAX_LISTED_FAILURES`]).
    pub failures: Vec<Failure>,
    /// HTTP requests retried.
    pub retries: u64,
    /// The uploads in flight: how many, and why that changed (absent when
    /// nothing was uploaded).
    pub concurrency: Option<imb_storage::adaptive::Report>,
    /// Full walks of the roots this run made: 1 for a sync, 0 for one that
    /// looked only at the paths a watcher reported (or a retry).
    pub walks: u64,
    /// Wall time in seconds.
    pub duration_s: f64,
}

impl Summary {
    /// Whether the run left work undone that it should have done: failures, a
    /// quota stop, a signal stop, or albums that could not be synced.
    pub fn has_problems(&self) -> bool {
        self.failed > 0
            || self.stopped
            || !self.albums.errors.is_empty()
            || !self.live_photo_errors.is_empty()
    }

    /// Whether the quota stopped the run.
    pub fn quota_stopped(&self) -> bool {
        self.stop_reason == Some(StopReason::Quota)
    }

    /// The run stops for `why`; the first reason is the one reported.
    pub(crate) fn stop(&mut self, why: StopReason) {
        self.stopped = true;
        self.stop_reason.get_or_insert(why);
    }

    /// Skipped files, all reasons.
    pub fn skipped_total(&self) -> u64 {
        self.skipped.values().sum()
    }

    pub(crate) fn skip(&mut self, reason: &str) {
        *self.skipped.entry(reason.to_owned()).or_default() += 1;
    }

    pub(crate) fn fail(&mut self, id: Option<i64>, path: &str, error: &str) {
        self.failed += 1;
        if self.failures.len() < MAX_LISTED_FAILURES {
            self.failures.push(Failure {
                id,
                path: path.to_owned(),
                error: error.to_owned(),
            });
        }
    }
}
