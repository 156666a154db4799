//! Terminal output: the seed's Progress UI (file name, bar, "12 of 50 • 2.4 MB /
//! 5.1 MB") on a terminal, periodic log lines otherwise, and the texts of the
//! summary, `status`, `failed` and `albums`. Logging itself is `imb_cli::Terminal`.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use imb_cli::{Counters, Terminal};
use imb_devicesync::{AlbumInfo, FileRecord, Phase, Progress, Status, StopReason, Summary};
use indicatif::{DecimalBytes, MultiProgress, ProgressBar, ProgressStyle};

/// A fresh progress display for one run: bars on a terminal, log lines otherwise.
pub(crate) fn progress(term: &Terminal) -> Arc<dyn Progress> {
    match term.bars() {
        Some(mp) => Arc::new(BarProgress::new(mp)),
        None => Arc::new(LogProgress::default()),
    }
}

fn phase_name(p: Phase) -> &'static str {
    match p {
        Phase::Scanning => "Scanning…",
        Phase::Hashing => "Hashing…",
        Phase::Checking => "Checking the server…",
        Phase::Uploading => "Uploading…",
        Phase::Albums => "Syncing albums…",
        _ => "Working…",
    }
}

/// An indicatif bar in the seed's layout: title, file name, bar with percentage,
/// "12 of 50 • 2.4 MB / 5.1 MB".
#[derive(Debug)]
struct BarProgress {
    bar: ProgressBar,
    c: Arc<Counters>,
}

impl BarProgress {
    fn new(mp: &MultiProgress) -> Self {
        let c = Arc::new(Counters::default());
        let counts = c.clone();
        let bar = mp.add(ProgressBar::new(0));
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix}\n{wide_msg}\n[{bar:40}] {percent:>3}%\n{counts}",
            )
            .expect("template is valid")
            .progress_chars("█░ ")
            .with_key(
                "counts",
                move |_: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = w.write_str(&counts.line());
                },
            ),
        );
        bar.set_prefix(phase_name(Phase::Scanning));
        bar.enable_steady_tick(Duration::from_millis(200));
        BarProgress { bar, c }
    }
}

impl Progress for BarProgress {
    fn phase(&self, phase: Phase) {
        self.bar.set_prefix(phase_name(phase));
        self.bar.set_message("");
    }
    fn hashing(&self, files: u64, bytes: u64) {
        self.c.reset(files, bytes);
        self.bar.set_length(bytes.max(1));
        self.bar.set_position(0);
    }
    fn hashed(&self, bytes: u64) {
        self.c.done(bytes);
        self.bar.inc(bytes);
    }
    fn queued(&self, files: u64, bytes: u64) {
        self.hashing(files, bytes);
    }
    fn started(&self, path: &str, _bytes: u64) {
        let name = path.rsplit('/').next().unwrap_or(path);
        self.bar.set_message(name.to_owned());
    }
    fn finished(&self, _path: &str, bytes: u64) {
        self.hashed(bytes);
    }
}

/// Without a terminal: a progress log line at most every 10 seconds.
#[derive(Debug)]
struct LogProgress {
    c: Counters,
    what: Mutex<&'static str>,
    last: Mutex<Instant>,
}

impl Default for LogProgress {
    fn default() -> Self {
        LogProgress {
            c: Counters::default(),
            what: Mutex::new("hashing"),
            last: Mutex::new(Instant::now()),
        }
    }
}

impl LogProgress {
    fn maybe_log(&self) {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if last.elapsed() >= Duration::from_secs(10) {
            *last = Instant::now();
            let what = *self.what.lock().unwrap_or_else(|p| p.into_inner());
            tracing::info!("{what}: {}", self.c.line());
        }
    }
}

impl Progress for LogProgress {
    fn hashing(&self, files: u64, bytes: u64) {
        *self.what.lock().unwrap_or_else(|p| p.into_inner()) = "hashing";
        self.c.reset(files, bytes);
    }
    fn hashed(&self, bytes: u64) {
        self.c.done(bytes);
        self.maybe_log();
    }
    fn queued(&self, files: u64, bytes: u64) {
        *self.what.lock().unwrap_or_else(|p| p.into_inner()) = "uploading";
        self.c.reset(files, bytes);
    }
    fn finished(&self, _path: &str, bytes: u64) {
        self.hashed(bytes);
    }
}

/// "2 hours ago" for an RFC 3339 time.
fn ago(t: &str) -> String {
    let Ok(then) = humantime::parse_rfc3339_weak(t) else {
        return t.to_owned();
    };
    let secs = SystemTime::now()
        .duration_since(then)
        .map_or(0, |d| d.as_secs());
    let (n, unit) = match secs {
        0..60 => return "just now".into(),
        60..3600 => (secs / 60, "minute"),
        3600..86_400 => (secs / 3600, "hour"),
        _ => (secs / 86_400, "day"),
    };
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
}

fn quota_line(q: &imb_devicesync::Quota) -> String {
    match (q.used, q.size) {
        (used, Some(size)) => format!(
            "{} of {} used",
            DecimalBytes(used.unwrap_or(0)),
            DecimalBytes(size)
        ),
        (Some(used), None) => format!("{} used (no quota)", DecimalBytes(used)),
        (None, None) => "no quota".into(),
    }
}

pub(crate) fn print_summary(s: &Summary) {
    let mut out = String::new();
    let title = if s.dry_run {
        "Dry run: nothing uploaded"
    } else if s.quota_stopped() {
        "Backup paused: quota reached (what fitted was uploaded; the rest waits for room)"
    } else if s.stopped {
        "Backup stopped early (the next run continues)"
    } else if s.has_problems() {
        "Backup finished with problems"
    } else if s.uploaded == 0 && s.duplicates == 0 {
        "Backup complete: nothing new"
    } else {
        "Backup complete"
    };
    out.push_str(&format!("{title}\n"));
    out.push_str(&format!(
        "  {} to back up: {} uploaded ({}), {} already on the server, {} failed, {} not attempted; {} unchanged\n",
        s.candidates,
        s.uploaded,
        DecimalBytes(s.bytes),
        s.duplicates,
        s.failed,
        s.remaining,
        s.unchanged
    ));
    if s.dry_run {
        out.push_str(&format!(
            "  would upload {} files ({})\n",
            s.to_upload,
            DecimalBytes(s.bytes_to_upload)
        ));
    }
    if s.requeued > 0 || s.trashed > 0 {
        out.push_str(&format!(
            "  server: {} deleted there, backed up again; {} in its trash, left there\n",
            s.requeued, s.trashed
        ));
    }
    if !s.skipped.is_empty() {
        let parts: Vec<String> = s.skipped.iter().map(|(k, v)| format!("{v} {k}")).collect();
        out.push_str(&format!("  skipped: {}\n", parts.join(", ")));
    }
    if s.albums.enabled {
        out.push_str(&format!(
            "  albums: {} created, {} assets added\n",
            s.albums.created, s.albums.added
        ));
        for e in &s.albums.errors {
            out.push_str(&format!("  album sync failed: {e}\n"));
        }
    }
    if let Some(q) = &s.quota {
        out.push_str(&format!("  storage: {}\n", quota_line(q)));
    }
    for f in &s.failures {
        let id = f.id.map(|i| format!("[{i}] ")).unwrap_or_default();
        out.push_str(&format!("  failed: {id}{}: {}\n", f.path, f.error));
    }
    if s.failed > s.failures.len() as u64 {
        out.push_str(&format!(
            "  … and {} more (see `device-sync failed`)\n",
            s.failed - s.failures.len() as u64
        ));
    }
    out.push_str(&format!("  took {:.1} s\n", s.duration_s));
    eprint!("{out}");
}

pub(crate) fn print_status(s: &Status) {
    let mut out = String::new();
    out.push_str(match (&s.paused, &s.waiting) {
        (Some(StopReason::Quota), _) => "Backup paused: quota reached\n",
        _ if s.complete => "✓ Backup complete\n",
        (Some(_), _) => "… Backup stopped early (the next run continues)\n",
        _ => "… Backup not complete\n",
    });
    if let Some(w) = &s.waiting {
        out.push_str(&format!(
            "  Waiting: {} (since {})\n",
            w.reason,
            ago(&w.since)
        ));
    }
    out.push_str(&format!("  {} of {} backed up\n", s.backed_up, s.total));
    match &s.last_backup {
        Some(t) => out.push_str(&format!("  Last backup: {} ({t})\n", ago(t))),
        None => out.push_str("  Last backup: never\n"),
    }
    if s.failed > 0 {
        out.push_str(&format!(
            "  {} failed (see `device-sync failed`)\n",
            s.failed
        ));
    }
    if s.offline > 0 {
        out.push_str(&format!(
            "  {} not on this disk (a sync client's placeholders; --download-offline reads them)\n",
            s.offline
        ));
    }
    match (&s.quota, &s.server_error) {
        (Some(q), _) => out.push_str(&format!("  Storage: {}\n", quota_line(q))),
        (None, Some(e)) => out.push_str(&format!(
            "  Server: not reachable: {e}\n  (counts from this device's records of the last sync)\n  Storage: unknown\n"
        )),
        (None, None) => out.push_str("  Storage: unknown (no server given)\n"),
    }
    let t = &s.statistics;
    out.push_str(&format!(
        "  Statistics: {} files recorded: {} uploaded, {} duplicates, {} failed, {} pending\n",
        t.total, t.uploaded, t.duplicates, t.failed, t.pending
    ));
    print!("{out}");
}

pub(crate) fn print_failed(rows: &[FileRecord]) {
    let mut out = String::new();
    out.push_str(&format!(
        "{} upload{} failed\n",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" }
    ));
    for r in rows {
        out.push_str(&format!(
            "  [{}] {} ({})\n      {}\n      {} attempt{}, last {}\n",
            r.id,
            r.path.display(),
            r.album,
            r.error.as_deref().unwrap_or("unknown error"),
            r.attempts,
            if r.attempts == 1 { "" } else { "s" },
            r.last_attempt
                .as_deref()
                .map_or_else(|| "never".into(), ago)
        ));
    }
    if !rows.is_empty() {
        out.push_str("Retry: device-sync failed --retry ID, or --retry-all\n");
    }
    print!("{out}");
}

pub(crate) fn print_albums(albums: &[AlbumInfo]) {
    let mut out = String::new();
    let width = albums
        .iter()
        .map(|a| a.name.len())
        .max()
        .unwrap_or(5)
        .max(5);
    out.push_str(&format!(
        "  {:<width$}  {:>7}  {:>10}  {:>9}  {:<12}  last backup\n",
        "album", "files", "size", "backed up", "selection"
    ));
    for a in albums {
        let mark = match a.selection.as_str() {
            "selected" => '✓',
            "excluded" => '✗',
            _ => ' ',
        };
        out.push_str(&format!(
            "{mark} {:<width$}  {:>7}  {:>10}  {:>9}  {:<12}  {}\n",
            a.name,
            a.files,
            DecimalBytes(a.bytes).to_string(),
            a.backed_up,
            a.selection,
            a.last_backup.as_deref().map_or_else(|| "never".into(), ago)
        ));
    }
    print!("{out}");
}

#[cfg(test)]
mod tests {
    use indicatif::ProgressDrawTarget;

    use super::*;

    #[test]
    fn the_bar_renders_the_seed_line() {
        let mp = MultiProgress::with_draw_target(ProgressDrawTarget::hidden());
        let p = BarProgress::new(&mp);
        p.phase(Phase::Uploading);
        p.queued(50, 5_100_000);
        for i in 0..12 {
            p.started(&format!("/sd/DCIM/Camera/IMG_{i}.jpg"), 200_000);
            p.finished(&format!("/sd/DCIM/Camera/IMG_{i}.jpg"), 200_000);
        }
        assert_eq!(p.c.line(), "12 of 50 • 2.40 MB / 5.10 MB");
        assert_eq!(p.bar.message(), "IMG_11.jpg");
        assert_eq!(p.bar.prefix(), "Uploading…");
    }

    #[test]
    fn relative_times() {
        let an_hour_ago = humantime::format_rfc3339_seconds(
            SystemTime::now() - Duration::from_secs(2 * 3600 + 5),
        )
        .to_string();
        assert_eq!(ago(&an_hour_ago), "2 hours ago");
        assert_eq!(ago("not a time"), "not a time");
    }
}
