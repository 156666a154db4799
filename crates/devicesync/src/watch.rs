//! Watch mode's parts, each testable without a clock: when to run again after
//! files change (the seed's `TriggerDelay` and `MaxDelay`), [`Events`]: the
//! changed paths as inotify reports them (through the `notify` crate), so a
//! change costs a look at that file rather than a walk of every root, and a
//! cheap [`fingerprint`] of the roots for polling, where inotify does not see
//! every change (network and FUSE file systems: [`poll_reason`]).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind};
use notify::{RecursiveMode, Watcher as _};

/// The seed's `TriggerDelay`: wait this long after the last change.
pub const TRIGGER_DELAY: Duration = Duration::from_millis(5000);
/// The seed's `MaxDelay`: never wait longer than this after the first change.
pub const MAX_DELAY: Duration = Duration::from_millis(50_000);

/// When a change should start a run: once no further change arrived for
/// `trigger` (files still being copied settle first), or `max` after the first
/// change however busy the folders are.
#[derive(Debug, Clone)]
pub struct Debounce {
    trigger: Duration,
    max: Duration,
    first: Option<Instant>,
    last: Option<Instant>,
}

impl Debounce {
    /// A debounce with these delays.
    pub fn new(trigger: Duration, max: Duration) -> Debounce {
        Debounce {
            trigger,
            max,
            first: None,
            last: None,
        }
    }

    /// A change was seen at `now`.
    pub fn changed(&mut self, now: Instant) {
        self.first.get_or_insert(now);
        self.last = Some(now);
    }

    /// Whether a run is due at `now`.
    pub fn due(&self, now: Instant) -> bool {
        match (self.first, self.last) {
            (Some(first), Some(last)) => {
                now.duration_since(last) >= self.trigger || now.duration_since(first) >= self.max
            }
            _ => false,
        }
    }

    /// Whether a change is waiting.
    pub fn pending(&self) -> bool {
        self.first.is_some()
    }

    /// Forget the changes (a run has started).
    pub fn reset(&mut self) {
        self.first = None;
        self.last = None;
    }
}

impl Default for Debounce {
    fn default() -> Self {
        Debounce::new(TRIGGER_DELAY, MAX_DELAY)
    }
}

/// A fingerprint of the path, size and mtime of every non-hidden file under
/// `roots`: equal fingerprints mean nothing changed.
pub fn fingerprint(roots: &[PathBuf]) -> u64 {
    let roots = crate::scan::normalise_roots(roots).unwrap_or_else(|_| roots.to_vec());
    crate::scan::fingerprint(&roots, &imb_immich::MediaTypes::default())
}

/// Why watching `roots` by inotify would miss changes, if it would: a root on a
/// network or FUSE file system, where changes made by another machine (or by
/// the FUSE daemon) raise no event here.
pub fn poll_reason(roots: &[PathBuf]) -> Option<String> {
    roots.iter().find_map(|r| {
        let st = rustix::fs::statfs(r).ok()?;
        // The field's type varies by target.
        #[allow(clippy::unnecessary_cast)]
        let name = missed_by_inotify(st.f_type as i64)?;
        Some(format!(
            "{} is on {name}, where inotify does not see every change",
            r.display()
        ))
    })
}

/// The file systems, by `statfs` magic number (statfs(2)), whose changes made
/// elsewhere raise no inotify event here.
pub fn missed_by_inotify(magic: i64) -> Option<&'static str> {
    match magic {
        0x6969 => Some("NFS"),
        0x517b | 0xff53_4d42 | 0xfe53_4d42 => Some("SMB"),
        0x6573_5546 => Some("FUSE"),
        0x0102_1997 => Some("9p"),
        _ => None,
    }
}

/// What changed since the last [`Events::take`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// These paths (files, or folders moved in).
    Paths(Vec<PathBuf>),
    /// The kernel's queue overflowed, or more changed than is worth listing:
    /// only a full walk finds everything.
    Rescan,
}

/// Paths gathered beyond this make the next sync a full walk instead.
const MAX_PENDING: usize = 100_000;

#[derive(Debug, Default)]
struct Pending {
    paths: BTreeSet<PathBuf>,
    rescan: bool,
    /// Something arrived since [`Events::arrived`] was last asked.
    fresh: bool,
}

/// The roots watched by inotify (recursively; folders made later are watched
/// as they appear). Events are gathered until taken; what cannot change what is
/// uploaded (reads, opens, deletions, permission changes) is dropped.
pub struct Events {
    _watcher: notify::RecommendedWatcher,
    pending: Arc<Mutex<Pending>>,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events").finish_non_exhaustive()
    }
}

fn lock(p: &Mutex<Pending>) -> MutexGuard<'_, Pending> {
    p.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether an event of `kind` can mean new content to upload.
pub fn matters(kind: &EventKind) -> bool {
    match kind {
        EventKind::Create(_) => true,
        EventKind::Modify(m) => !matches!(
            m,
            ModifyKind::Metadata(
                notify::event::MetadataKind::Permissions
                    | notify::event::MetadataKind::Ownership
                    | notify::event::MetadataKind::AccessTime
                    | notify::event::MetadataKind::Extended
            )
        ),
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        _ => false,
    }
}

impl Events {
    /// Starts watching `roots`.
    ///
    /// # Errors
    /// inotify's, e.g. too many folders for `fs.inotify.max_user_watches`: the
    /// caller polls instead.
    pub fn start(roots: &[PathBuf]) -> notify::Result<Events> {
        let pending = Arc::new(Mutex::new(Pending::default()));
        let p = pending.clone();
        let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
            let mut p = lock(&p);
            match ev {
                Ok(ev) if ev.need_rescan() => p.rescan = true,
                Ok(ev) if matters(&ev.kind) => {
                    if p.paths.len() + ev.paths.len() > MAX_PENDING {
                        p.rescan = true;
                        p.paths.clear();
                    } else if !p.rescan {
                        p.paths.extend(ev.paths);
                    }
                }
                Ok(_) => return,
                // A watch lost (a folder replaced, say): walk to be sure.
                Err(_) => p.rescan = true,
            }
            p.fresh = true;
        })?;
        for r in roots {
            watcher.watch(r, RecursiveMode::Recursive)?;
        }
        Ok(Events {
            _watcher: watcher,
            pending,
        })
    }

    /// Whether anything arrived since this was last asked (for the debounce).
    pub fn arrived(&self) -> bool {
        std::mem::take(&mut lock(&self.pending).fresh)
    }

    /// What changed since the last take, if anything.
    pub fn take(&self) -> Option<Change> {
        let mut p = lock(&self.pending);
        p.fresh = false;
        if std::mem::take(&mut p.rescan) {
            p.paths.clear();
            return Some(Change::Rescan);
        }
        let paths = std::mem::take(&mut p.paths);
        (!paths.is_empty()).then(|| Change::Paths(paths.into_iter().collect()))
    }
}
