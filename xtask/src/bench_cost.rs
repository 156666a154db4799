//! The `cost` bench: what nightly runs and checks ask of a billed store, counted at
//! a proxy in front of fake-gcs-server (`imb_testkit::gcs::FaultProxy`), beside
//! the previous design's figures; and the two figures of big files: the rate a
//! 1 GiB file is sent at under `--bwlimit 20M`, and peak RSS with eight 256 MiB
//! files in flight (`--uploads 8`).
//!
//! For 3,000 and 30,000 small files (the `bench rss` layout) it backs up to the
//! emulator, then counts through the proxy: `restore-verify --no-database`'s
//! requests (metadata by listing), and the request-body bytes of a no-change
//! rerun and of reruns changing 1 and 1,000 files (beyond those files' bytes).
//! Sources live in `target/bench-cost/run-{pid}`, removed afterwards; the big files
//! are sparse.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use imb_testkit::gcs::{Emulator, Fault, FaultProxy};

use super::rss::{Scratch, generate_sized};
use super::{Options, Section, cpu_model};
use crate::cmd::cmd;
use crate::project_root;

/// Runs a release binary against the emulator (or proxy) at `endpoint` (which also
/// keeps credentials out: the emulator host sends none); returns its JSON summary.
fn run(bin: &str, endpoint: &str, args: &[&str]) -> Result<serde_json::Value> {
    let program = project_root().join("target/release").join(bin);
    let out = cmd(
        program.to_str().context("UTF-8 path")?,
        args.iter().chain(&["--json"]),
    )
    .env(
        "STORAGE_EMULATOR_HOST",
        endpoint.trim_start_matches("http://"),
    )
    .read()?;
    serde_json::from_str(&out).with_context(|| format!("{bin} printed no JSON: {out}"))
}

fn sent_since(proxy: &FaultProxy, from: usize) -> (usize, usize) {
    let r = proxy.requests();
    (r.len() - from, r[from..].iter().map(|s| s.body_len).sum())
}

struct Nightly {
    files: u64,
    verify_requests: usize,
    list_requests: u64,
    no_change: usize,
    one: usize,
    thousand: usize,
}

/// `cargo xtask bench cost`.
pub(super) fn run_bench(_: &Options) -> Result<Section> {
    cmd(
        "cargo",
        [
            "build",
            "--release",
            "--bin",
            "backup",
            "--bin",
            "restore-verify",
        ],
    )
    .run()?;
    let scratch = Scratch::new(
        &project_root()
            .join("target/bench-cost")
            .join(format!("run-{}", std::process::id())),
    )?;
    let mut nightly = Vec::new();
    for files in [3_000u64, 30_000] {
        nightly.push(measure_nightly(
            &scratch.0.join(format!("n{files}")),
            files,
        )?);
    }
    let (rate, rss) = big_files(&scratch.0.join("big"))?;

    let mut body = String::new();
    let _ = writeln!(
        body,
        "`cargo xtask bench cost`: requests and request-body bytes counted at a proxy in front \
         of fake-gcs-server, release binaries, small files in the `bench rss` layout (64–200 \
         bytes), on {}. A rerun's bytes leave out the changed files' own. The previous design \
         (a metadata request per file, the whole manifest uploaded twice every run) made 3,001 \
         requests to verify 3,000 files and sent 837 kB on a no-change rerun of them.\n",
        cpu_model().unwrap_or_else(|| "this machine".into())
    );
    body.push_str("| files | verify requests (listing pages) | no-change rerun (bytes) | 1 file changed (bytes beyond it) | 1,000 changed (bytes beyond them) |\n");
    body.push_str("|---:|---:|---:|---:|---:|\n");
    for n in &nightly {
        let _ = writeln!(
            body,
            "| {} | {} ({}) | {} | {} | {} ({:.0} per file) |",
            n.files,
            n.verify_requests,
            n.list_requests,
            n.no_change,
            n.one,
            n.thousand,
            n.thousand as f64 / 1000.0
        );
    }
    let _ = writeln!(
        body,
        "\nBig files: a 1 GiB file backed up to a local directory with `--bwlimit 20M` \
         went at {:.1} MiB/s over the whole run, its hashing pass included (20 asked; the \
         limit is taken per 256 KiB piece as it is sent, where it used to pace whole files, \
         so a large file went at full speed after its wait); eight 256 MiB files with `--uploads 8` peaked at {:.1} MiB RSS \
         (request bodies stream from the file; it was 154 MiB with 16 MiB chunks held per \
         upload).",
        rate / (1024.0 * 1024.0),
        rss
    );
    Ok(Section {
        title: "What nightly runs and checks cost",
        body,
    })
}

fn measure_nightly(dir: &Path, files: u64) -> Result<Nightly> {
    let emu = Emulator::fake_gcs();
    let proxy = FaultProxy::start(0, emu.port(), |_| Fault::Forward);
    let src = dir.join("src");
    generate_sized(&src, files, 137)?;
    let s = src.to_str().context("UTF-8 path")?;
    let dest = ["--source", s, "--dest", "gs://bk1/nightly", "--no-database"];
    run("backup", &emu.endpoint, &dest)?;
    let mark = proxy.requests().len();
    let v = run(
        "restore-verify",
        &proxy.endpoint(),
        &["--from", "gs://bk1/nightly", "--no-database"],
    )?;
    let (verify_requests, _) = sent_since(&proxy, mark);
    let list_requests = v["verify"]["list_requests"].as_u64().unwrap_or(0);
    let mark = proxy.requests().len();
    run("backup", &proxy.endpoint(), &dest)?;
    let (_, no_change) = sent_since(&proxy, mark);
    let mut changed = Vec::new();
    for k in [1u64, 1000] {
        let mut bytes = 0;
        for i in 0..k {
            let p = first_files(&src, i)?;
            let content = format!("changed {k} {i}");
            bytes += content.len();
            std::fs::write(&p, content)?;
        }
        let mark = proxy.requests().len();
        run("backup", &proxy.endpoint(), &dest)?;
        changed.push(sent_since(&proxy, mark).1.saturating_sub(bytes));
    }
    Ok(Nightly {
        files,
        verify_requests,
        list_requests,
        no_change,
        one: changed[0],
        thousand: changed[1],
    })
}

/// The `i`th file of the generated library (`bench rss` names them by index).
fn first_files(src: &Path, i: u64) -> Result<std::path::PathBuf> {
    let folder = i / 1000;
    let (day, month, year) = (1 + folder % 28, 1 + (folder / 28) % 12, 2015 + folder / 336);
    let p = src.join(format!(
        "library/admin/{year}/{year}-{month:02}-{day:02}/IMG_{i:07}.jpg"
    ));
    if !p.is_file() {
        bail!("{} is not a generated file", p.display());
    }
    Ok(p)
}

/// The rate of a 1 GiB file under `--bwlimit 20M`, and the peak RSS (MiB) of eight
/// 256 MiB files at `--uploads 8`.
fn big_files(dir: &Path) -> Result<(f64, f64)> {
    let sparse = |p: &Path, len: u64| -> Result<()> {
        std::fs::create_dir_all(p.parent().expect("a parent"))?;
        std::fs::File::create(p)?.set_len(len)?;
        Ok(())
    };
    // To a local directory: the emulator's own pace (about 16 MB/s for a 1 GiB
    // resumable upload into its memory backend) would hide the limiter's.
    let one = dir.join("one");
    sparse(&one.join("library/admin/video.mp4"), 1 << 30)?;
    let started = Instant::now();
    let v = run(
        "backup",
        "",
        &[
            "--source",
            one.to_str().context("UTF-8")?,
            "--dest",
            dir.join("one-dest").to_str().context("UTF-8")?,
            "--no-database",
            "--bwlimit",
            "20M",
        ],
    )?;
    let secs = v["duration_s"]
        .as_f64()
        .unwrap_or(started.elapsed().as_secs_f64());
    let rate = v["bytes_uploaded"].as_f64().context("bytes_uploaded")? / secs;
    let emu = Emulator::fake_gcs();
    let eight = dir.join("eight");
    for i in 0..8 {
        sparse(
            &eight.join(format!("library/admin/video-{i}.mp4")),
            256 << 20,
        )?;
    }
    let v = run(
        "backup",
        &emu.endpoint,
        &[
            "--source",
            eight.to_str().context("UTF-8")?,
            "--dest",
            "gs://bk1/eight",
            "--no-database",
            "--uploads",
            "8",
        ],
    )?;
    let rss = v["peak_rss_bytes"].as_f64().context("peak_rss_bytes")? / (1024.0 * 1024.0);
    Ok((rate, rss))
}
