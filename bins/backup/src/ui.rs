//! Terminal output: the progress display (bars on a terminal, periodic log lines
//! otherwise) and the final summary. Logging itself is `imb_cli::Terminal`.

#![allow(clippy::print_stderr)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use imb_cli::{Counters, Terminal};
use imb_engine::{Progress, Summary};
use indicatif::{DecimalBytes, MultiProgress, ProgressBar, ProgressStyle};

/// The run's progress display: bars on a terminal, log lines otherwise.
pub(crate) fn progress(term: &Terminal) -> Arc<dyn Progress> {
    match term.bars() {
        Some(mp) => Arc::new(BarProgress::new(mp)),
        None => Arc::new(LogProgress::default()),
    }
}

/// An indicatif bar in the seed's style: current file, bar, "12 of 50 • 2.4 MB / 5.1 MB".
#[derive(Debug)]
struct BarProgress {
    bar: ProgressBar,
    c: Counters,
    unchanged: AtomicU64,
    started: Instant,
}

/// The bar: file, bar, the seed's counts, the rate, and (once the walk has counted
/// everything) the time left.
const BAR: &str = "{wide_msg}\n[{bar:40}] {percent:>3}%  {prefix}";
const BAR_WITH_ETA: &str = "{wide_msg}\n[{bar:40}] {percent:>3}%  {prefix} • ETA {eta}";

impl BarProgress {
    fn new(mp: &MultiProgress) -> Self {
        let bar = mp.add(ProgressBar::new(0));
        bar.set_style(style(BAR));
        bar.enable_steady_tick(Duration::from_millis(200));
        BarProgress {
            bar,
            c: Counters::default(),
            unchanged: AtomicU64::new(0),
            started: Instant::now(),
        }
    }

    fn refresh(&self) {
        let unchanged = self.unchanged.load(Ordering::Relaxed);
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let (files, bytes) = self.c.done_counts();
        self.bar.set_prefix(format!(
            "{} ({unchanged} unchanged) • {}",
            self.c.line(),
            rate(files, bytes, secs)
        ));
    }
}

impl Progress for BarProgress {
    fn queued(&self, bytes: u64) {
        self.c.add(1, bytes);
        self.bar.inc_length(bytes);
        self.refresh();
    }
    fn started(&self, path: &str, _bytes: u64) {
        self.bar.set_message(path.to_owned());
    }
    fn finished(&self, _path: &str, bytes: u64) {
        self.c.done(bytes);
        self.bar.inc(bytes);
        self.refresh();
    }
    fn unchanged(&self) {
        self.unchanged.fetch_add(1, Ordering::Relaxed);
    }
    fn walk_finished(&self) {
        self.bar.set_style(style(BAR_WITH_ETA));
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .expect("template is valid")
        .progress_chars("█░ ")
}

/// "41 files/s, 3.2 MB/s".
fn rate(files: u64, bytes: u64, secs: f64) -> String {
    format!(
        "{:.0} files/s, {}/s",
        files as f64 / secs,
        DecimalBytes((bytes as f64 / secs) as u64)
    )
}

/// Without a terminal: a progress log line at most every 30 seconds.
#[derive(Debug)]
struct LogProgress {
    c: Counters,
    unchanged: AtomicU64,
    last: Mutex<Instant>,
}

impl Default for LogProgress {
    fn default() -> Self {
        LogProgress {
            c: Counters::default(),
            unchanged: AtomicU64::new(0),
            last: Mutex::new(Instant::now()),
        }
    }
}

impl LogProgress {
    fn maybe_log(&self) {
        let mut last = self.last.lock().expect("progress lock poisoned");
        if last.elapsed() >= Duration::from_secs(30) {
            *last = Instant::now();
            tracing::info!(
                unchanged = self.unchanged.load(Ordering::Relaxed),
                "progress: {}",
                self.c.line()
            );
        }
    }
}

impl Progress for LogProgress {
    fn queued(&self, bytes: u64) {
        self.c.add(1, bytes);
    }
    fn finished(&self, _path: &str, bytes: u64) {
        self.c.done(bytes);
        self.maybe_log();
    }
    fn unchanged(&self) {
        self.unchanged.fetch_add(1, Ordering::Relaxed);
        self.maybe_log();
    }
}

pub(crate) fn print_summary(s: &Summary) {
    let mut out = String::new();
    let db_error = s
        .database
        .as_ref()
        .and_then(|d| d.get("error"))
        .and_then(|e| e.as_str());
    let status = if s.stopped {
        "Backup stopped early (the next run resumes)"
    } else if s.has_problems() || db_error.is_some() {
        "Backup finished with problems"
    } else if s.files_uploaded == 0 && s.files_deduplicated == 0 && s.files_archived == 0 {
        "Backup complete: nothing changed, nothing uploaded"
    } else {
        "Backup complete"
    };
    out.push_str(&format!("{status}\n"));
    out.push_str(&format!(
        "  {} files scanned: {} uploaded ({}), {} unchanged, {} deduplicated, {} failed; {} archived\n",
        s.files_scanned,
        s.files_uploaded,
        DecimalBytes(s.bytes_uploaded),
        s.files_unchanged,
        s.files_deduplicated,
        s.files_failed,
        s.files_archived
    ));
    if let Some(c) = &s.concurrency
        && s.files_uploaded > 0
    {
        out.push_str(&format!(
            "  uploads in flight: {} ({}; from {}, up to {}{})\n",
            c.last,
            c.mode,
            c.initial,
            c.max,
            if c.congestion > 0 {
                format!(", backed off on {} congestion signals", c.congestion)
            } else {
                String::new()
            }
        ));
    }
    match (&s.database, db_error) {
        (None, _) => out.push_str("  database: not configured\n"),
        (Some(_), Some(e)) => out.push_str(&format!("  database: FAILED: {e}\n")),
        (Some(d), None) => out.push_str(&format!(
            "  database: {} ({})\n",
            d["object"].as_str().unwrap_or("?"),
            DecimalBytes(d["bytes"].as_u64().unwrap_or(0))
        )),
    }
    if let Some(m) = &s.manifest {
        out.push_str(&format!("  manifest: {m} ({} saves)\n", s.manifest_saves));
    }
    for f in &s.failures {
        out.push_str(&format!("  failed: {}: {}\n", f.path, f.error));
    }
    if s.failures_omitted > 0 {
        out.push_str(&format!("  … and {} more failures\n", s.failures_omitted));
    }
    for p in &s.suspect_corruption {
        out.push_str(&format!(
            "  suspected corruption (backed-up copy kept): {p}\n"
        ));
    }
    for w in &s.warnings {
        out.push_str(&format!("  warning: {w}\n"));
    }
    let done = s.files_uploaded + s.files_unchanged + s.files_deduplicated;
    out.push_str(&format!(
        "  took {:.1} s ({})\n",
        s.duration_s,
        rate(done, s.bytes_uploaded, s.duration_s.max(0.001))
    ));
    eprint!("{out}");
}
