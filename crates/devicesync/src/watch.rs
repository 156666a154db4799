//! Watch mode's decisions, kept here so they can be tested without a clock: when
//! to run again after files change (the seed's `TriggerDelay` and `MaxDelay`), and
//! a cheap fingerprint of the roots to notice changes by polling (no inotify: a
//! poll every few seconds is enough for a photo folder, and works on network and
//! FUSE mounts where inotify does not).

use std::path::PathBuf;
use std::time::{Duration, Instant};

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
