//! What a run reports.

use serde::Serialize;

/// One file that could not be backed up, and why.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Failure {
    /// The path, relative to the source.
    pub path: String,
    /// What went wrong.
    pub error: String,
}

/// The outcome of a run. `files_scanned` = uploaded + unchanged + deduplicated + failed.
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct Summary {
    /// Files considered (after excludes).
    pub files_scanned: u64,
    /// Files whose content was sent.
    pub files_uploaded: u64,
    /// Library bytes sent.
    pub bytes_uploaded: u64,
    /// Files already backed up with the same content.
    pub files_unchanged: u64,
    /// Files whose content was already in the target under another path.
    pub files_deduplicated: u64,
    /// Files newly marked archived (gone from the source; their objects stay).
    pub files_archived: u64,
    /// Files that could not be backed up.
    pub files_failed: u64,
    /// Why, per file (the first 1000; `failures_omitted` counts the rest).
    pub failures: Vec<Failure>,
    /// Failures not listed.
    pub failures_omitted: u64,
    /// Entries skipped on purpose (symlinks, sockets, devices).
    pub files_skipped: u64,
    /// Manifest saves during the run (parts, and the delta or full manifest).
    pub manifest_saves: u64,
    /// Bytes of manifest objects uploaded (not counting the `manifest.db` copy).
    pub manifest_bytes: u64,
    /// Whether the run ended with a full manifest rather than a delta.
    pub manifest_full: bool,
    /// Requests retried.
    pub retries: u64,
    /// Files whose content changed while size and modification time did not.
    /// The new content is stored as a version; the backed-up copy stays current.
    pub suspect_corruption: Vec<String>,
    /// Whether the run stopped early (signal or `max_duration`); the next run resumes.
    pub stopped: bool,
    /// The manifest object that ended this run (its delta or full manifest).
    pub manifest: Option<String>,
    /// Non-fatal problems with the run itself (e.g. `manifest.db` not replaceable).
    pub warnings: Vec<String>,
    /// The database part of the run; `null` when no database is configured.
    pub database: Option<serde_json::Value>,
    /// The uploads in flight: how many, and why that changed.
    pub concurrency: Option<imb_storage::adaptive::Report>,
    /// Wall time in seconds.
    pub duration_s: f64,
}

pub(crate) const MAX_LISTED_FAILURES: usize = 1000;

impl Summary {
    /// Whether anything needs attention (exit status 2 for the binary).
    pub fn has_problems(&self) -> bool {
        self.files_failed > 0 || !self.suspect_corruption.is_empty() || self.stopped
    }

    pub(crate) fn fail(&mut self, path: String, error: String) {
        self.files_scanned += 1;
        self.files_failed += 1;
        if self.failures.len() < MAX_LISTED_FAILURES {
            self.failures.push(Failure { path, error });
        } else {
            self.failures_omitted += 1;
        }
    }
}
