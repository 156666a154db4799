//! Terminal output: tracing to stderr (text or JSON) that never tears through the
//! progress bars, the counts behind the seed's progress line, and the JSON and
//! error lines every binary prints.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};

use indicatif::{DecimalBytes, MultiProgress, ProgressDrawTarget};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::LogFormat;

/// The process's output: logging is installed, and bars (on a terminal, with text
/// logs) are ready for the binary's progress display.
#[derive(Debug)]
pub struct Terminal {
    bars: Option<MultiProgress>,
}

impl Terminal {
    /// Installs the tracing subscriber on stderr, filtered by `RUST_LOG` (default
    /// `info`). `json_summary` says a JSON summary will go to stdout.
    pub fn install(format: LogFormat, json_summary: bool) -> Terminal {
        let tty = std::io::stderr().is_terminal();
        let bars = (tty && format == LogFormat::Text)
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        let writer = SuspendWriter(bars.clone());
        // A person at a terminal watches the bars; per-save lines would flood them
        // (they stay in piped and JSON logs, and RUST_LOG can bring them back).
        let default = if bars.is_some() {
            "info,imb_engine::save=warn"
        } else {
            "info"
        };
        let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
        let fmt = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(writer);
        // A JSON summary on stdout implies a machine reads us: keep stderr parseable too.
        if format == LogFormat::Json {
            fmt.json().flatten_event(true).init();
        } else {
            // Colour only for a person at a terminal who has not asked for none.
            let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
            fmt.with_ansi(tty && !json_summary && !no_color).init();
        }
        Terminal { bars }
    }

    /// Where progress bars go; `None` when progress should be log lines instead.
    pub fn bars(&self) -> Option<&MultiProgress> {
        self.bars.as_ref()
    }

    /// Clears the bars, before the summary is printed.
    pub fn finish(&self) {
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

/// The last log lines, for a ping's body.
static TAIL: std::sync::Mutex<std::collections::VecDeque<String>> =
    std::sync::Mutex::new(std::collections::VecDeque::new());
const TAIL_LINES: usize = 40;

/// The last lines logged (at most 40), oldest first: what a failed run's ping
/// carries. Logs hold no secrets, so neither does this.
pub fn log_tail() -> String {
    let tail = TAIL.lock().unwrap_or_else(|p| p.into_inner());
    tail.iter().map(String::as_str).collect()
}

impl Drop for Line {
    fn drop(&mut self) {
        {
            let mut tail = TAIL.lock().unwrap_or_else(|p| p.into_inner());
            if tail.len() == TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(String::from_utf8_lossy(&self.1).into_owned());
        }
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

/// The counts behind the seed's progress line, shared by bars and log lines.
#[derive(Debug, Default)]
pub struct Counters {
    files_total: AtomicU64,
    files_done: AtomicU64,
    bytes_total: AtomicU64,
    bytes_done: AtomicU64,
}

impl Counters {
    /// `files` more files of `bytes` bytes are to do.
    pub fn add(&self, files: u64, bytes: u64) {
        self.files_total.fetch_add(files, Ordering::Relaxed);
        self.bytes_total.fetch_add(bytes, Ordering::Relaxed);
    }

    /// A new step: `files` files of `bytes` bytes to do, none done.
    pub fn reset(&self, files: u64, bytes: u64) {
        self.files_total.store(files, Ordering::Relaxed);
        self.bytes_total.store(bytes, Ordering::Relaxed);
        self.files_done.store(0, Ordering::Relaxed);
        self.bytes_done.store(0, Ordering::Relaxed);
    }

    /// One file of `bytes` bytes is done.
    pub fn done(&self, bytes: u64) {
        self.files_done.fetch_add(1, Ordering::Relaxed);
        self.bytes_done.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Files and bytes done so far.
    pub fn done_counts(&self) -> (u64, u64) {
        (
            self.files_done.load(Ordering::Relaxed),
            self.bytes_done.load(Ordering::Relaxed),
        )
    }

    /// The seed's progress line: "12 of 50 • 2.4 MB / 5.1 MB".
    pub fn line(&self) -> String {
        format!(
            "{} of {} • {} / {}",
            self.files_done.load(Ordering::Relaxed),
            self.files_total.load(Ordering::Relaxed),
            DecimalBytes(self.bytes_done.load(Ordering::Relaxed)),
            DecimalBytes(self.bytes_total.load(Ordering::Relaxed)),
        )
    }
}

/// Prints one JSON value as a line on stdout.
pub fn print_json(v: &serde_json::Value) {
    println!("{v}");
}

/// An error and its causes, each said once: library errors often include their
/// source's text in their own message (thiserror's `{source}`) and also report it
/// as the source, which `{:#}` would print twice.
pub fn error_chain(e: &anyhow::Error) -> String {
    chain_of(e.as_ref())
}

/// [`error_chain`] of any error.
pub fn chain_of(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = String::new();
    for cause in std::iter::successors(Some(e), |e| e.source()) {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// Reports that `program` could not run: `{"error": …}` on stdout when `json`,
/// and always `program: error: …` on stderr. Returns exit status 1.
pub fn fail(program: &str, json: bool, e: &anyhow::Error) -> ExitCode {
    let msg = error_chain(e);
    if json {
        print_json(&serde_json::json!({ "error": msg }));
    }
    eprintln!("{program}: error: {msg}");
    ExitCode::from(1)
}
