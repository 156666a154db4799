//! The `rss` bench: the backup binary's peak memory as the number of files grows.
//!
//! For each count N (`--files N,M,...`, default 10,000 and 1,000,000) it writes N small,
//! distinct files under `target/bench-rss/src` in an Immich storage-template layout
//! (`library/admin/{yyyy}/{yyyy-mm-dd}/IMG_nnnnnnn.jpg`, 1000 per folder, plus the
//! `library/.immich` marker), backs them up with the release `backup` binary to a local
//! directory, runs it again with nothing changed, and reads each run's own peak RSS
//! (`peak_rss_bytes`, its VmHWM) from the `--json` summary. The files live in
//! `target/bench-rss/run-{pid}` (so two benches at once do not clobber each other), which
//! is deleted after each N, also when a run fails.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::{Options, Section, cpu_model};
use crate::cmd::cmd;
use crate::project_root;

/// File counts measured when `--files` is not given.
const DEFAULT_FILES: [u64; 2] = [10_000, 1_000_000];
/// Files per generated folder.
const FILES_PER_DIR: u64 = 1000;
/// Generation prints a progress line every this many files.
const PROGRESS_EVERY: u64 = 100_000;
/// Hash-and-upload workers passed to the binary.
const WORKERS: &str = "4";
const MIB: f64 = 1024.0 * 1024.0;

/// One run of the binary.
struct Run {
    peak_rss_bytes: u64,
    wall: Duration,
    files_scanned: u64,
    files_uploaded: u64,
}

/// The first run and the no-change rerun for one file count.
struct Measurement {
    files: u64,
    first: Run,
    rerun: Run,
}

/// `cargo xtask bench rss [--files N,M,...]`.
pub(super) fn run(options: &Options) -> Result<Section> {
    let counts = options
        .files
        .clone()
        .unwrap_or_else(|| DEFAULT_FILES.to_vec());
    cmd("cargo", ["build", "--release", "--bin", "backup"]).run()?;
    let binary = project_root().join("target/release/backup");
    let work = project_root()
        .join("target/bench-rss")
        .join(format!("run-{}", std::process::id()));

    let mut measurements = Vec::new();
    for &files in &counts {
        let scratch = Scratch::new(&work)?;
        let src = scratch.0.join("src");
        let started = Instant::now();
        generate(&src, files)?;
        eprintln!(
            "generated {files} files in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        let dest = scratch.0.join("dest");
        let state = scratch.0.join("state");
        let first = backup(&binary, &src, &dest, &state).context("first run")?;
        let rerun = backup(&binary, &src, &dest, &state).context("no-change rerun")?;
        measurements.push(Measurement {
            files,
            first,
            rerun,
        });
        eprintln!("removing {}", scratch.0.display());
    }
    Ok(Section {
        title: "Memory as file counts grow",
        body: report(&measurements),
    })
}

/// A scratch directory, emptied on creation and removed on drop (with its parent, when
/// that is left empty).
pub(super) struct Scratch(pub(super) PathBuf);

impl Scratch {
    pub(super) fn new(dir: &Path) -> Result<Self> {
        match std::fs::remove_dir_all(dir) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(err).with_context(|| format!("emptying {}", dir.display())),
        }
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Self(dir.to_owned()))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Err(err) = std::fs::remove_dir_all(&self.0) {
            eprintln!("warning: could not remove {}: {err}", self.0.display());
        }
        if let Some(parent) = self.0.parent() {
            // Fails, as it should, while another bench still has a directory there.
            let _ = std::fs::remove_dir(parent);
        }
    }
}

/// Writes `files` files under `src` and the `library/.immich` marker.
fn generate(src: &Path, files: u64) -> Result<()> {
    generate_sized(src, files, 137)
}

/// [`generate`] with file sizes from 64 bytes to 64 + `spread` − 1.
pub(super) fn generate_sized(src: &Path, files: u64, spread: u64) -> Result<()> {
    let mut dir = PathBuf::new();
    for index in 0..files {
        if index % FILES_PER_DIR == 0 {
            dir = src.join(folder(index / FILES_PER_DIR));
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let path = dir.join(format!("IMG_{index:07}.jpg"));
        std::fs::write(&path, contents(index, spread))
            .with_context(|| format!("writing {}", path.display()))?;
        if (index + 1) % PROGRESS_EVERY == 0 {
            eprintln!("generated {} of {files} files", index + 1);
        }
    }
    let marker = src.join("library/.immich");
    std::fs::write(&marker, []).with_context(|| format!("writing {}", marker.display()))
}

/// The storage-template folder of the `number`th group of files: one day per folder,
/// 28-day months, starting 2015-01-01.
fn folder(number: u64) -> String {
    let day = 1 + number % 28;
    let month = 1 + (number / 28) % 12;
    let year = 2015 + number / (28 * 12);
    format!("library/admin/{year}/{year}-{month:02}-{day:02}")
}

/// 64 to 64 + `spread` − 1 bytes that start with the index, so every file's
/// content is distinct.
fn contents(index: u64, spread: u64) -> Vec<u8> {
    let mut state = index.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    let mut next = || {
        state ^= state >> 29;
        state = state.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        state ^= state >> 32;
        state
    };
    let len = 64 + usize::try_from(next() % spread).expect("a small spread");
    let mut bytes = format!("imb bench-rss file {index}\n").into_bytes();
    while bytes.len() < len {
        bytes.extend_from_slice(&next().to_le_bytes());
    }
    bytes.truncate(len);
    bytes
}

/// One run of `backup --json`, timed, with its summary's figures.
fn backup(binary: &Path, src: &Path, dest: &Path, state: &Path) -> Result<Run> {
    let args: Vec<OsString> = vec![
        "--source".into(),
        src.into(),
        "--dest".into(),
        dest.into(),
        "--state-dir".into(),
        state.into(),
        "--json".into(),
        "--no-fsync".into(),
        "--workers".into(),
        WORKERS.into(),
    ];
    let program = binary.to_str().context("the binary's path is not UTF-8")?;
    let started = Instant::now();
    let out = cmd(program, args).read()?;
    let wall = started.elapsed();
    let json = out
        .lines()
        .rfind(|line| line.trim_start().starts_with('{'))
        .with_context(|| format!("no JSON summary on stdout: {out:?}"))?;
    let field =
        |key: &str| json_number(json, key).with_context(|| format!("no numeric `{key}` in {json}"));
    let run = Run {
        peak_rss_bytes: field("peak_rss_bytes")? as u64,
        wall,
        files_scanned: field("files_scanned")? as u64,
        files_uploaded: field("files_uploaded")? as u64,
    };
    eprintln!(
        "peak RSS {:.1} MiB, {:.1} s, {} scanned, {} uploaded (engine: {:.1} s)",
        run.peak_rss_bytes as f64 / MIB,
        wall.as_secs_f64(),
        run.files_scanned,
        run.files_uploaded,
        field("duration_s")?,
    );
    Ok(run)
}

/// The number after the top-level `"key":` in one line of compact JSON; `None` when the
/// key is missing or its value is not a number (e.g. `null`).
pub(super) fn json_number(json: &str, key: &str) -> Option<f64> {
    let needle = format!("\"{key}\"");
    let at = json.find(&needle)? + needle.len();
    let rest = json[at..].trim_start().strip_prefix(':')?.trim_start();
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || "+-.eE".contains(c)))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

fn report(measurements: &[Measurement]) -> String {
    let mut body = String::new();
    let _ = writeln!(
        body,
        "`cargo xtask bench rss`: the release `backup` binary backs up N small files \
         (64–200 bytes, distinct, 1000 per folder under `library/admin/{{yyyy}}/{{yyyy-mm-dd}}/`, \
         plus `library/.immich`) to a local directory with `--workers {WORKERS} --no-fsync \
         --json`, then runs again with nothing changed. Peak RSS is the process's own VmHWM \
         (`peak_rss_bytes` in its summary), MiB = 2^20 bytes; times are wall-clock for the \
         whole process, on {}.\n",
        cpu_model().unwrap_or_else(|| "an unknown CPU".to_owned()),
    );
    body.push_str(
        "| files | first run peak RSS (MiB) | first run time (s) | first run files/s | rerun peak RSS (MiB) | rerun time (s) |\n",
    );
    body.push_str(
        "|------:|-------------------------:|-------------------:|------------------:|---------------------:|---------------:|\n",
    );
    for m in measurements {
        let first_s = m.first.wall.as_secs_f64();
        let _ = writeln!(
            body,
            "| {} | {:.1} | {first_s:.2} | {:.0} | {:.1} | {:.2} |",
            m.files,
            m.first.peak_rss_bytes as f64 / MIB,
            m.files as f64 / first_s,
            m.rerun.peak_rss_bytes as f64 / MIB,
            m.rerun.wall.as_secs_f64(),
        );
    }
    body.push('\n');
    let smallest = measurements.iter().min_by_key(|m| m.files);
    let largest = measurements.iter().max_by_key(|m| m.files);
    match (smallest, largest) {
        (Some(small), Some(large)) if small.files != large.files => {
            let mib = |run: &Run| run.peak_rss_bytes as f64 / MIB;
            let _ = writeln!(
                body,
                "From {} to {} files ({}×) the first run's peak grew by {:.1} MiB \
                 ({:.1} → {:.1}) and the rerun's by {:.1} MiB ({:.1} → {:.1}).",
                small.files,
                large.files,
                ratio(large.files, small.files),
                mib(&large.first) - mib(&small.first),
                mib(&small.first),
                mib(&large.first),
                mib(&large.rerun) - mib(&small.rerun),
                mib(&small.rerun),
                mib(&large.rerun),
            );
        }
        _ => body.push_str("Only one file count was measured, so there is no growth to state.\n"),
    }
    let odd: Vec<String> = measurements
        .iter()
        .filter(|m| m.first.files_uploaded < m.files || m.rerun.files_uploaded != 0)
        .map(|m| {
            format!(
                "{} files: first run scanned {} and uploaded {}, rerun scanned {} and \
                 uploaded {}",
                m.files,
                m.first.files_scanned,
                m.first.files_uploaded,
                m.rerun.files_scanned,
                m.rerun.files_uploaded
            )
        })
        .collect();
    if odd.is_empty() {
        body.push_str("Every first run uploaded every file and every rerun uploaded none.\n");
    } else {
        let _ = writeln!(body, "Unexpected counts: {}.", odd.join("; "));
    }
    body
}

/// `large / small` as a whole number when it is one, else with one decimal.
fn ratio(large: u64, small: u64) -> String {
    let ratio = large as f64 / small.max(1) as f64;
    if large.is_multiple_of(small.max(1)) {
        format!("{ratio:.0}")
    } else {
        format!("{ratio:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_numbers_from_compact_json() {
        let json = r#"{"files_scanned":1001,"failures":[{"path":"a \"files_uploaded\":9"}],"files_uploaded":1000,"duration_s":12.5,"peak_rss_bytes":123456,"database":null}"#;
        assert_eq!(json_number(json, "files_scanned"), Some(1001.0));
        assert_eq!(json_number(json, "files_uploaded"), Some(1000.0));
        assert_eq!(json_number(json, "duration_s"), Some(12.5));
        assert_eq!(json_number(json, "peak_rss_bytes"), Some(123_456.0));
        assert_eq!(json_number(json, "database"), None);
        assert_eq!(json_number(json, "missing"), None);
        assert_eq!(json_number(r#"{"x" : 1e3}"#, "x"), Some(1000.0));
    }

    #[test]
    fn contents_are_small_and_distinct() {
        let all: Vec<Vec<u8>> = (0..2000).map(|i| contents(i, 137)).collect();
        for bytes in &all {
            assert!((64..=200).contains(&bytes.len()), "{}", bytes.len());
        }
        assert!((0..2000).all(|i| (64..=264).contains(&contents(i, 201).len())));
        let mut unique = all.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), all.len());
        assert!(all[7].starts_with(b"imb bench-rss file 7\n"));
    }

    #[test]
    fn ratios() {
        assert_eq!(ratio(1_000_000, 10_000), "100");
        assert_eq!(ratio(5000, 2000), "2.5");
    }

    #[test]
    fn folders_are_storage_template_dates() {
        assert_eq!(folder(0), "library/admin/2015/2015-01-01");
        assert_eq!(folder(27), "library/admin/2015/2015-01-28");
        assert_eq!(folder(28), "library/admin/2015/2015-02-01");
        assert_eq!(folder(336), "library/admin/2016/2016-01-01");
        assert_ne!(folder(999), folder(998));
    }
}
