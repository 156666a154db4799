//! Desktop notifications over D-Bus (`org.freedesktop.Notifications`, through
//! zbus) while device-sync runs in the background, as the phone app's
//! background backup notifies: progress while uploading ("Uploading 12/50
//! files…", one notification replaced in place), one notification per kind of
//! failure with a file's name and the reason, and the quota stop. Without a
//! session bus (a server, a unit without one), nothing is sent and that is said
//! once in the log.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use imb_devicesync::{Phase, Progress, Summary};

const APP: &str = "device-sync";
const DEST: &str = "org.freedesktop.Notifications";
const PATH: &str = "/org/freedesktop/Notifications";

/// The session bus's notification service.
#[derive(Debug, Clone)]
pub(crate) struct Notifier {
    conn: zbus::Connection,
    /// The progress notification shown now (0: none), replaced in place.
    progress_id: Arc<Mutex<u32>>,
}

/// Where a run's progress is counted for the notifier (and passed on).
#[derive(Debug)]
pub(crate) struct Counting {
    inner: Arc<dyn Progress>,
    uploading: AtomicBool,
    total: AtomicU64,
    done: AtomicU64,
}

impl Counting {
    pub(crate) fn new(inner: Arc<dyn Progress>) -> Arc<Counting> {
        Arc::new(Counting {
            inner,
            uploading: AtomicBool::new(false),
            total: AtomicU64::new(0),
            done: AtomicU64::new(0),
        })
    }

    /// `(done, total)` while uploading.
    fn uploading(&self) -> Option<(u64, u64)> {
        self.uploading.load(Ordering::Relaxed).then(|| {
            (
                self.done.load(Ordering::Relaxed),
                self.total.load(Ordering::Relaxed),
            )
        })
    }
}

impl Progress for Counting {
    fn phase(&self, phase: Phase) {
        self.uploading
            .store(phase == Phase::Uploading, Ordering::Relaxed);
        self.inner.phase(phase);
    }
    fn hashing(&self, files: u64, bytes: u64) {
        self.inner.hashing(files, bytes);
    }
    fn hashed(&self, bytes: u64) {
        self.inner.hashed(bytes);
    }
    fn queued(&self, files: u64, bytes: u64) {
        // Two passes (live-photo videos first) add up to one upload.
        if self.uploading.load(Ordering::Relaxed) {
            self.total.fetch_add(files, Ordering::Relaxed);
        }
        self.inner.queued(files, bytes);
    }
    fn started(&self, path: &str, bytes: u64) {
        self.inner.started(path, bytes);
    }
    fn finished(&self, path: &str, bytes: u64) {
        self.done.fetch_add(1, Ordering::Relaxed);
        self.inner.finished(path, bytes);
    }
}

/// The file name of a path, for a notification's title.
fn name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// A failure's kind: its text up to the first `:` ("permission denied",
/// "the server refuses it", a network error's first words).
fn kind(error: &str) -> &str {
    error.split(':').next().unwrap_or(error).trim()
}

/// The notifications a finished run gives: (summary, body), the failures one
/// per kind, then the quota stop.
pub(crate) fn outcome_texts(s: &Summary) -> Vec<(String, String)> {
    let mut by_kind: BTreeMap<&str, Vec<&imb_devicesync::Failure>> = BTreeMap::new();
    for f in &s.failures {
        by_kind.entry(kind(&f.error)).or_default().push(f);
    }
    let mut out = Vec::new();
    for fs in by_kind.values() {
        let first = fs[0];
        let title = match fs.len() {
            1 => format!("{} could not be uploaded", name(&first.path)),
            n => format!(
                "{} and {} more could not be uploaded",
                name(&first.path),
                n - 1
            ),
        };
        out.push((title, first.error.clone()));
    }
    if s.quota_stopped() {
        out.push((
            "Backup paused: quota reached".into(),
            format!(
                "{} files wait for room on the server; what fitted was uploaded",
                s.remaining
            ),
        ));
    }
    out
}

impl Notifier {
    /// The session bus, if there is one.
    pub(crate) async fn connect() -> Option<Notifier> {
        match zbus::Connection::session().await {
            Ok(conn) => Some(Notifier {
                conn,
                progress_id: Arc::new(Mutex::new(0)),
            }),
            Err(e) => {
                tracing::info!(error = %e, "no session bus: no desktop notifications");
                None
            }
        }
    }

    async fn notify(&self, replaces: u32, summary: &str, body: &str) -> Option<u32> {
        let hints: std::collections::HashMap<&str, zbus::zvariant::Value<'_>> =
            std::collections::HashMap::new();
        let reply = self
            .conn
            .call_method(
                Some(DEST),
                PATH,
                Some(DEST),
                "Notify",
                &(
                    APP,
                    replaces,
                    "",
                    summary,
                    body,
                    Vec::<&str>::new(),
                    hints,
                    -1i32,
                ),
            )
            .await;
        match reply.and_then(|m| m.body().deserialize::<u32>()) {
            Ok(id) => Some(id),
            Err(e) => {
                tracing::debug!(error = %e, "notification not shown");
                None
            }
        }
    }

    /// Shows a run's upload progress until it ends: as soon as uploading has
    /// begun, then as it moves, at most once a second, one notification
    /// replaced in place.
    pub(crate) fn follow(&self, counts: Arc<Counting>) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let mut shown: Option<(u64, std::time::Instant)> = None;
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let Some((done, total)) = counts.uploading() else {
                    continue;
                };
                let due = match shown {
                    None => true,
                    Some((d, at)) => d != done && at.elapsed() >= Duration::from_secs(1),
                };
                if !due || total == 0 {
                    continue;
                }
                shown = Some((done, std::time::Instant::now()));
                let replaces = *me.progress_id.lock().unwrap_or_else(|p| p.into_inner());
                let text = format!("Uploading {done}/{total} files…");
                if let Some(id) = me.notify(replaces, "Backing up to Immich", &text).await {
                    *me.progress_id.lock().unwrap_or_else(|p| p.into_inner()) = id;
                }
            }
        })
    }

    /// A run ended: the progress notification gives way to what went wrong, if anything.
    pub(crate) async fn finished(&self, s: &Summary) {
        let id = std::mem::take(&mut *self.progress_id.lock().unwrap_or_else(|p| p.into_inner()));
        if id != 0 {
            let _ = self
                .conn
                .call_method(Some(DEST), PATH, Some(DEST), "CloseNotification", &(id,))
                .await;
        }
        for (summary, body) in outcome_texts(s) {
            self.notify(0, &summary, &body).await;
        }
    }
}
