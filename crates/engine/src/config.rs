//! Backup settings.

use std::path::PathBuf;
use std::time::Duration;

/// How a file whose content is already in the target is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum DedupMode {
    /// Copy the existing object to the file's own key inside the store (free on a
    /// local target, where it is a hard link; a server-side copy on GCS).
    #[default]
    Copy,
    /// Record a reference to the existing object instead of copying it (for cold
    /// storage classes, where a copy pays a retrieval).
    Reference,
}

/// Storage classes per kind of object; `None` leaves the store's default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StorageClasses {
    /// Library files and their versions.
    pub library: Option<String>,
    /// Manifests and their journals.
    pub manifests: Option<String>,
}

/// Uploads in flight where an adaptive run starts.
pub const ADAPTIVE_INITIAL: usize = 16;
/// The most uploads in flight an adaptive run tries.
pub const ADAPTIVE_MAX: usize = 64;

/// What a backup run does. Build with [`BackupConfig::new`] and set fields.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BackupConfig {
    /// The library root (Immich's `UPLOAD_LOCATION`). Opened read-only.
    pub source: PathBuf,
    /// Threads hashing at once (CPU and disk bound).
    pub workers: usize,
    /// Uploads in flight at once, fixed; `None` adapts them to the link (from
    /// [`ADAPTIVE_INITIAL`] up to [`ADAPTIVE_MAX`], see `imb_storage::adaptive`).
    /// Many small files over a high-latency link want more uploads than hashers.
    pub uploads: Option<usize>,
    /// Bytes that uploads in flight may hold in memory (a file counts by what it
    /// buffers: all of a small file, a streamed one's [`Self::small_file`]).
    pub upload_memory: u64,
    /// Starts of uploads per second at most, doubling every 20 minutes: Cloud
    /// Storage's ramp-up rule for a bucket's writes. `None`: no cap.
    pub upload_start_rate: Option<f64>,
    /// Capacity of the upload queue; `None` means `workers × 10`, as in the seed.
    pub queue_size: Option<usize>,
    /// Glob patterns (relative to the source) to leave out. A pattern that matches
    /// a directory leaves out everything below it. `.immich` markers are always kept.
    pub excludes: Vec<String>,
    /// If not empty, only files matching one of these globs are backed up.
    pub includes: Vec<String>,
    /// Re-hash every file, even when size and modification time are unchanged.
    pub checksum: bool,
    /// Save a manifest journal after this many changed rows (the seed: 1000).
    pub save_every: u64,
    /// ... or after this long with unsaved rows.
    pub save_interval: Duration,
    /// The Immich version to record; overrides what the database says.
    pub immich_version: Option<String>,
    /// Stop gracefully after this long (finish files in flight, save, exit).
    pub max_duration: Option<Duration>,
    /// Cap on upload bandwidth, bytes per second.
    pub bwlimit: Option<u64>,
    /// Where working files go; a temporary directory when `None`.
    pub state_dir: Option<PathBuf>,
    /// How already-stored content is reused.
    pub dedup: DedupMode,
    /// How long a lock lasts without a heartbeat before others may ignore it.
    pub lock_lease: Duration,
    /// How long a run that started together with later ones waits for them to
    /// back off before it backs off too (the lock protocol, `lock.rs`).
    pub lock_wait: Duration,
    /// Files up to this size are read once into memory; larger ones are hashed in
    /// a first pass and streamed from the open file in a second.
    pub small_file: u64,
    /// Storage classes per kind of object.
    pub storage_classes: StorageClasses,
    /// A run ends with a full manifest (instead of a delta) when the chain of
    /// deltas since the last full one reaches this many runs, which bounds what a
    /// reader replays; also when the chain's bytes reach the full manifest's, so
    /// full manifests cost in proportion to changes. 1 writes a full
    /// manifest every run.
    pub full_manifest_every: u32,
}

impl BackupConfig {
    /// The defaults, for `source`.
    pub fn new(source: impl Into<PathBuf>) -> Self {
        BackupConfig {
            source: source.into(),
            workers: 4,
            uploads: None,
            upload_memory: 256 << 20,
            upload_start_rate: None,
            queue_size: None,
            excludes: Self::default_excludes(),
            includes: Vec::new(),
            checksum: false,
            save_every: 1000,
            save_interval: Duration::from_secs(300),
            immich_version: None,
            max_duration: None,
            bwlimit: None,
            state_dir: None,
            dedup: DedupMode::Copy,
            lock_lease: Duration::from_secs(30 * 60),
            lock_wait: Duration::from_secs(30),
            small_file: 8 * 1024 * 1024,
            storage_classes: StorageClasses::default(),
            full_manifest_every: 100,
        }
    }

    /// Immich regenerates thumbnails and transcoded videos, so they are left out
    /// unless asked for.
    pub fn default_excludes() -> Vec<String> {
        vec!["thumbs".into(), "encoded-video".into()]
    }

    pub(crate) fn upload_threads(&self) -> usize {
        self.uploads
            .unwrap_or(ADAPTIVE_MAX)
            .max(self.workers)
            .max(1)
    }

    /// The bounds of the uploads in flight.
    pub(crate) fn upload_limits(&self) -> imb_storage::adaptive::Limits {
        let limits = match self.uploads {
            Some(n) => imb_storage::adaptive::Limits::fixed(n.max(1), self.upload_memory),
            None => imb_storage::adaptive::Limits::adaptive(
                ADAPTIVE_INITIAL,
                ADAPTIVE_MAX,
                self.upload_memory,
            ),
        };
        match self.upload_start_rate {
            Some(r) => limits.with_start_rate(r),
            None => limits,
        }
    }

    pub(crate) fn queue_capacity(&self) -> usize {
        self.queue_size.unwrap_or(self.workers.max(1) * 10).max(1)
    }
}
