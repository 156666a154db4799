//! The `local` bench: a first backup and a no-change rerun of many small files to a
//! local directory, ours (durable: one filesystem sync per manifest save) beside
//! restic's on the same library, with wall time, CPU and peak RSS from GNU time,
//! and what our manifest objects came to against the full manifest.
//!
//! The library is 50,000 files of 64–264 bytes (`--files N` to change it) in the
//! storage-template layout of `bench rss`, under `target/bench-local/run-{pid}` (the
//! disk) and again under `/dev/shm` (tmpfs, where there is no inode allocator to
//! pay), removed afterwards. restic (Debian's package, installed when missing) backs up
//! to a fresh repository with its password in the environment.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use imb_testkit::measure::{self, Usage};

use super::rss::{Scratch, generate_sized, json_number};
use super::{Options, Section, cpu_model};
use crate::cmd::cmd;
use crate::project_root;

const DEFAULT_FILES: u64 = 50_000;

struct Side {
    first: Usage,
    rerun: Usage,
}

/// One location's figures.
struct Measured {
    ours: Side,
    restic: Side,
    manifest_bytes: f64,
    full: f64,
}

/// `cargo xtask bench local [--files N]`.
pub(super) fn run(options: &Options) -> Result<Section> {
    let files = options
        .files
        .as_ref()
        .and_then(|f| f.first().copied())
        .unwrap_or(DEFAULT_FILES);
    crate::prepare::debian_packages(&[("restic", "/usr/bin/restic")], "the local bench")?;
    cmd("cargo", ["build", "--release", "--bin", "backup"]).run()?;
    let disk = project_root()
        .join("target/bench-local")
        .join(format!("run-{}", std::process::id()));
    let on_disk = measure_at(&disk, files)?;
    // tmpfs has no inode allocator to pay: what is left is each tool's own work.
    let shm = Path::new("/dev/shm");
    let in_memory = if shm.is_dir() {
        Some(measure_at(
            &shm.join(format!("imb-bench-local-{}", std::process::id())),
            files,
        )?)
    } else {
        None
    };
    let version = cmd("/usr/bin/restic", ["version"])
        .read()
        .unwrap_or_default();

    let mut body = String::new();
    let _ = writeln!(
        body,
        "`cargo xtask bench local`: {files} distinct files of 64–264 bytes in the \
         storage-template layout, backed up to a local directory by the release `backup` \
         (durable: each object written to an unnamed file in its directory and linked at its \
         key, the filesystem synced once before each manifest save) and by {} (a fresh \
         repository), then again with nothing changed; on this machine's disk (ext4) and in \
         `/dev/shm` (tmpfs). Wall and CPU (user + system) seconds and peak RSS from GNU time, \
         on {}, each first run after `sync` and a drop of the clean page cache. Before this design the first run took 11.8 s on the disk against restic's \
         4.7 s, mostly system time in a per-file fsync and directory sync.\n",
        version.trim(),
        cpu_model().unwrap_or_else(|| "this machine".into())
    );
    body.push_str("| where | run | ours wall (s) | restic wall (s) | ours / restic | ours CPU (s) | restic CPU (s) | ours peak RSS (MiB) | restic peak RSS (MiB) |\n");
    body.push_str("|---|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for (place, m) in [("disk", Some(&on_disk)), ("tmpfs", in_memory.as_ref())] {
        let Some(m) = m else { continue };
        for (name, o, t) in [
            ("first", &m.ours.first, &m.restic.first),
            ("no-change rerun", &m.ours.rerun, &m.restic.rerun),
        ] {
            let _ = writeln!(
                body,
                "| {place} | {name} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} | {:.1} |",
                o.wall_s,
                t.wall_s,
                o.wall_s / t.wall_s,
                o.cpu_s,
                t.cpu_s,
                o.rss_mib(),
                t.rss_mib()
            );
        }
    }
    let _ = writeln!(
        body,
        "\nWe create an inode per object where restic writes a few pack files, so on ext4 \
         our first run is sensitive to the allocator's state: without the cache drop, after \
         benches had freed a few hundred thousand files, the same run took 3 to 8 s (most of \
         it in ext4's check for recently freed inodes) against restic's 2.4 s. The first run's \
         manifest objects (gzip-compressed parts and the full manifest) came to {:.2} MB for a \
         {:.2} MB full manifest: {:.2}× (was 3.2×: uncompressed journals, the full manifest \
         and its copy), {:.1} bytes per file in the full manifest.",
        on_disk.manifest_bytes / 1e6,
        on_disk.full / 1e6,
        on_disk.manifest_bytes / on_disk.full,
        on_disk.full / files as f64
    );
    Ok(Section {
        title: "Many small files to a local directory",
        body,
    })
}

/// Generates the library under `root` and measures both tools there.
fn measure_at(root: &Path, files: u64) -> Result<Measured> {
    let backup = project_root().join("target/release/backup");
    let scratch = Scratch::new(root)?;
    let src = scratch.0.join("src");
    generate_sized(&src, files, 201)?;
    let times = scratch.0.join("times");

    let dest = scratch.0.join("ours");
    let ours_args = |json: bool| {
        let mut a: Vec<&OsStr> = vec![
            "--source".as_ref(),
            src.as_os_str(),
            "--dest".as_ref(),
            dest.as_os_str(),
            "--no-database".as_ref(),
        ];
        if json {
            a.push("--json".as_ref());
        }
        a
    };
    settle();
    let (out, first) = measure::timed(&backup, &ours_args(true), &times, |_| {})?;
    let summary = String::from_utf8_lossy(&out.stdout).into_owned();
    let manifest_bytes = json_number(&summary, "manifest_bytes").context("manifest_bytes")?;
    let full = std::fs::read_dir(&dest)?
        .flatten()
        .find(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with("manifest-") && n.ends_with(".db") && !n.contains(".part-")
        })
        .context("no full manifest")?
        .metadata()?
        .len() as f64;
    let (_, rerun) = measure::timed(&backup, &ours_args(false), &times, |_| {})?;
    let ours = Side { first, rerun };

    let repo = scratch.0.join("restic");
    let restic = Path::new("/usr/bin/restic");
    let env = |c: &mut std::process::Command| {
        c.env("RESTIC_PASSWORD", "bench")
            .env("RESTIC_REPOSITORY", &repo);
    };
    measure::timed(restic, &["init".as_ref()], &times, env)?;
    let restic_args: Vec<&OsStr> = vec!["backup".as_ref(), "--quiet".as_ref(), src.as_os_str()];
    settle();
    let (_, first) = measure::timed(restic, &restic_args, &times, env)?;
    let (_, rerun) = measure::timed(restic, &restic_args, &times, env)?;
    Ok(Measured {
        ours,
        restic: Side { first, rerun },
        manifest_bytes,
        full,
    })
}

/// Writes dirty pages out and, where allowed (root), drops the clean page cache, so
/// each first run starts from the same state: the source read from disk, and ext4's
/// inode allocator not walking the cached inode-table blocks of the files earlier
/// benches freed (which made the same run take 3 s or 8 s).
fn settle() {
    let _ = cmd("sync", Vec::<&str>::new()).run();
    let _ = std::fs::write("/proc/sys/vm/drop_caches", "1");
}
