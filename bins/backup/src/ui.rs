//! Terminal output: progress bars on a terminal, periodic log lines otherwise,
//! tracing to stderr (text or JSON), and the final summary.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use imb_engine::{Progress, Summary};
use indicatif::{DecimalBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::settings::LogFormat;

/// The process's output: logging is installed, progress is ready.
pub(crate) struct Ui {
    bars: Option<MultiProgress>,
    progress: Arc<dyn Progress>,
}

impl Ui {
    pub(crate) fn install(format: LogFormat, json_summary: bool) -> Ui {
        let tty = std::io::stderr().is_terminal();
        let bars = (tty && format == LogFormat::Text)
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        let writer = SuspendWriter(bars.clone());
        let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
        let fmt = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(writer);
        // A JSON summary on stdout implies a machine reads us: keep stderr parseable too.
        if format == LogFormat::Json {
            fmt.json().flatten_event(true).init();
        } else {
            fmt.with_ansi(tty && !json_summary).init();
        }
        let progress: Arc<dyn Progress> = match &bars {
            Some(mp) => Arc::new(BarProgress::new(mp)),
            None => Arc::new(LogProgress::default()),
        };
        Ui { bars, progress }
    }

    pub(crate) fn progress(&self) -> Arc<dyn Progress> {
        self.progress.clone()
    }

    pub(crate) fn finish(&self) {
        if let Some(mp) = &self.bars {
            let _ = mp.clear();
        }
    }
}

/// Writes log lines with the bars suspended, so lines never tear through them.
#[derive(Clone)]
struct SuspendWriter(Option<MultiProgress>);

struct Line(Option<MultiProgress>, Vec<u8>);

impl Write for Line {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.1.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        let out = |b: &[u8]| {
            let _ = std::io::stderr().lock().write_all(b);
        };
        match &self.0 {
            Some(mp) => mp.suspend(|| out(&self.1)),
            None => out(&self.1),
        }
    }
}

impl<'a> MakeWriter<'a> for SuspendWriter {
    type Writer = Line;
    fn make_writer(&'a self) -> Line {
        Line(self.0.clone(), Vec::new())
    }
}

#[derive(Debug, Default)]
struct Counters {
    files_total: AtomicU64,
    files_done: AtomicU64,
    bytes_total: AtomicU64,
    bytes_done: AtomicU64,
    unchanged: AtomicU64,
}

impl Counters {
    /// The seed's progress line: "12 of 50 • 2.4 MB / 5.1 MB".
    fn line(&self) -> String {
        format!(
            "{} of {} • {} / {}",
            self.files_done.load(Ordering::Relaxed),
            self.files_total.load(Ordering::Relaxed),
            DecimalBytes(self.bytes_done.load(Ordering::Relaxed)),
            DecimalBytes(self.bytes_total.load(Ordering::Relaxed)),
        )
    }
}

/// An indicatif bar in the seed's style: current file, bar, "12 of 50 • 2.4 MB / 5.1 MB".
#[derive(Debug)]
struct BarProgress {
    bar: ProgressBar,
    c: Counters,
}

impl BarProgress {
    fn new(mp: &MultiProgress) -> Self {
        let bar = mp.add(ProgressBar::new(0));
        bar.set_style(
            ProgressStyle::with_template("{wide_msg}\n[{bar:40}] {percent:>3}%  {prefix}")
                .expect("template is valid")
                .progress_chars("█░ "),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        BarProgress {
            bar,
            c: Counters::default(),
        }
    }

    fn refresh(&self) {
        let unchanged = self.c.unchanged.load(Ordering::Relaxed);
        self.bar
            .set_prefix(format!("{} ({unchanged} unchanged)", self.c.line()));
    }
}

impl Progress for BarProgress {
    fn queued(&self, bytes: u64) {
        self.c.files_total.fetch_add(1, Ordering::Relaxed);
        self.c.bytes_total.fetch_add(bytes, Ordering::Relaxed);
        self.bar.inc_length(bytes);
        self.refresh();
    }
    fn started(&self, path: &str, _bytes: u64) {
        self.bar.set_message(path.to_owned());
    }
    fn finished(&self, _path: &str, bytes: u64) {
        self.c.files_done.fetch_add(1, Ordering::Relaxed);
        self.c.bytes_done.fetch_add(bytes, Ordering::Relaxed);
        self.bar.inc(bytes);
        self.refresh();
    }
    fn unchanged(&self) {
        self.c.unchanged.fetch_add(1, Ordering::Relaxed);
    }
}

/// Without a terminal: a progress log line at most every 30 seconds.
#[derive(Debug)]
struct LogProgress {
    c: Counters,
    last: Mutex<Instant>,
}

impl Default for LogProgress {
    fn default() -> Self {
        LogProgress {
            c: Counters::default(),
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
                unchanged = self.c.unchanged.load(Ordering::Relaxed),
                "progress: {}",
                self.c.line()
            );
        }
    }
}

impl Progress for LogProgress {
    fn queued(&self, bytes: u64) {
        self.c.files_total.fetch_add(1, Ordering::Relaxed);
        self.c.bytes_total.fetch_add(bytes, Ordering::Relaxed);
    }
    fn finished(&self, _path: &str, bytes: u64) {
        self.c.files_done.fetch_add(1, Ordering::Relaxed);
        self.c.bytes_done.fetch_add(bytes, Ordering::Relaxed);
        self.maybe_log();
    }
    fn unchanged(&self) {
        self.c.unchanged.fetch_add(1, Ordering::Relaxed);
        self.maybe_log();
    }
}

pub(crate) fn print_json(v: &serde_json::Value) {
    println!("{v}");
}

pub(crate) fn print_error(msg: &str) {
    eprintln!("backup: error: {msg}");
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
    out.push_str(&format!("  took {:.1} s\n", s.duration_s));
    eprint!("{out}");
}
