//! The device-sync benchmark behind `cargo xtask bench devicesync`: the `device-sync`
//! binary against `@immich/cli upload --recursive --album` on the same folder tree,
//! each against a fresh test Immich server (imb-testkit's `immich::TestServer`, in
//! this process), side by side.
//!
//! `cargo run --release -p imb-devicesync --example sync_bench -- --device-sync PATH
//! --node PATH --cli PATH [--scale F] [--runs N] [--concurrency N]`
//!
//! Two trees are generated: `photos` (phone-sized JPEGs and a few videos in a handful
//! of albums) and `small` (thousands of small files in many albums, where per-file
//! costs dominate). For each tree and round, each tool makes a first run (upload
//! everything, create the albums) and a no-change rerun against its own fresh server,
//! alternating. Every run goes through GNU time for CPU seconds and peak RSS; the
//! server's CPU is this process's own during the run. After each run the server's
//! record is checked: the first run stored every file once (count, bytes, distinct
//! SHA-1s) with every album complete, the rerun stored nothing new. The output is
//! `key value` lines, best of the rounds per figure, which xtask turns into a table.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::BTreeSet;
use std::error::Error;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use imb_testkit::immich::{TestServer, TestServerOptions};
use imb_testkit::measure;

type Result<T> = std::result::Result<T, Box<dyn Error>>;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A generated folder tree: `albums` folders under one root.
struct Tree {
    name: &'static str,
    albums: usize,
    files: usize,
    /// Sizes are spread evenly over `min..=max` bytes; every `video_every`-th file is
    /// an `.mp4` of `video` bytes instead (0: none).
    min: usize,
    max: usize,
    video_every: usize,
    video: usize,
}

/// What one run of a client cost, and the server's CPU meanwhile.
#[derive(Clone, Copy, Default)]
struct Usage {
    run: measure::Usage,
    server_cpu_s: f64,
}

struct Options {
    device_sync: PathBuf,
    node: PathBuf,
    cli: PathBuf,
    scale: f64,
    runs: usize,
    concurrency: usize,
}

fn run() -> Result<()> {
    let opts = parse_args()?;
    let scaled = |n: usize| ((n as f64 * opts.scale).round() as usize).max(1);
    let trees = [
        Tree {
            name: "photos",
            albums: 6,
            files: scaled(300),
            min: 1_000_000,
            max: 4_000_000,
            video_every: 20,
            video: 20_000_000,
        },
        Tree {
            name: "small",
            albums: 40,
            files: scaled(4000),
            min: 4_000,
            max: 40_000,
            video_every: 0,
            video: 0,
        },
    ];
    let ticks = measure::clock_ticks()?;
    let work = tempfile::Builder::new()
        .prefix("imb-devicesync-bench-")
        .tempdir()?;
    println!("concurrency {}", opts.concurrency);
    println!("runs {}", opts.runs);
    println!("cli_version {}", version(&opts.node, &[&opts.cli])?);
    println!("node_version {}", version(&opts.node, &[])?);
    for tree in &trees {
        let root = work.path().join(tree.name).join("DCIM");
        let (files, bytes) = generate(tree, &root)?;
        println!("{}_files {files}", tree.name);
        println!("{}_bytes {bytes}", tree.name);
        println!("{}_albums {}", tree.name, tree.albums);
        let mut best: [[Option<Usage>; 2]; 2] = Default::default();
        for round in 1..=opts.runs {
            for (tool, slot) in [("ours", 0), ("cli", 1)] {
                let home = work.path().join(format!("{}-{tool}-{round}", tree.name));
                fs::create_dir_all(&home)?;
                let server = TestServer::start(TestServerOptions::v3());
                for (pass, label) in [(0, "first"), (1, "rerun")] {
                    let before = server.assets().len();
                    let usage = timed(&opts, tool, &root, &home, &server, ticks)?;
                    check(&server, tree, files, bytes, before, pass == 1)
                        .map_err(|e| format!("{} {tool} {label} run {round}: {e}", tree.name))?;
                    eprintln!(
                        "{} round {round} {tool} {label}: wall {:.2} s, CPU {:.2} s, \
                         peak RSS {:.1} MiB, server CPU {:.2} s",
                        tree.name,
                        usage.run.wall_s,
                        usage.run.cpu_s,
                        usage.run.rss_mib(),
                        usage.server_cpu_s
                    );
                    let kept = &mut best[slot][pass];
                    *kept = Some(match *kept {
                        None => usage,
                        Some(b) => Usage {
                            run: b.run.best(usage.run),
                            server_cpu_s: b.server_cpu_s.min(usage.server_cpu_s),
                        },
                    });
                }
                fs::remove_dir_all(&home)?;
            }
        }
        for (tool, slot) in [("ours", 0), ("cli", 1)] {
            for (pass, label) in [(0, "first"), (1, "rerun")] {
                let u = best[slot][pass].ok_or("no runs")?;
                let key = format!("{}_{tool}_{label}", tree.name);
                println!("{key}_wall_s {:.3}", u.run.wall_s);
                println!("{key}_cpu_s {:.3}", u.run.cpu_s);
                println!("{key}_rss_mib {:.1}", u.run.rss_mib());
                println!("{key}_server_cpu_s {:.3}", u.server_cpu_s);
            }
        }
        fs::remove_dir_all(work.path().join(tree.name))?;
    }
    Ok(())
}

fn parse_args() -> Result<Options> {
    let mut args = std::env::args().skip(1);
    let (mut device_sync, mut node, mut cli) = (None, None, None);
    let (mut scale, mut runs, mut concurrency) = (1.0, 2, 4);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--device-sync" => device_sync = Some(PathBuf::from(value(&arg)?)),
            "--node" => node = Some(PathBuf::from(value(&arg)?)),
            "--cli" => cli = Some(PathBuf::from(value(&arg)?)),
            "--scale" => scale = value(&arg)?.parse()?,
            "--runs" => runs = value(&arg)?.parse()?,
            "--concurrency" => concurrency = value(&arg)?.parse()?,
            _ => return Err(format!("unexpected argument {arg:?}").into()),
        }
    }
    let need = |p: Option<PathBuf>, name: &str| p.ok_or(format!("{name} PATH is required"));
    let opts = Options {
        device_sync: need(device_sync, "--device-sync")?,
        node: need(node, "--node")?,
        cli: need(cli, "--cli")?,
        scale,
        runs,
        concurrency,
    };
    if !opts.scale.is_finite() || opts.scale <= 0.0 || opts.runs == 0 || opts.concurrency == 0 {
        return Err("--scale, --runs and --concurrency must be positive".into());
    }
    Ok(opts)
}

/// Writes the tree: distinct content per file (a JPEG or MP4 header, then bytes from
/// a per-file seeded random stream, which neither tool can dedup or compress away).
fn generate(tree: &Tree, root: &Path) -> Result<(usize, u64)> {
    let mut bytes = 0u64;
    let mut buf = Vec::new();
    for i in 0..tree.files {
        let album = root.join(format!("Album {:02}", i % tree.albums));
        fs::create_dir_all(&album)?;
        let video = tree.video_every > 0 && i % tree.video_every == tree.video_every - 1;
        let (name, len) = if video {
            (format!("VID_{i:05}.mp4"), tree.video)
        } else {
            let span = tree.max - tree.min;
            let len = tree.min + (i * 7919) % (span + 1);
            (format!("IMG_{i:05}.jpg"), len)
        };
        buf.clear();
        buf.extend_from_slice(if video {
            b"\0\0\0\x18ftypmp42"
        } else {
            b"\xff\xd8\xff\xe0\0\x10JFIF"
        });
        let head = buf.len();
        buf.resize(len.max(head), 0);
        fastrand::Rng::with_seed(i as u64 + 1).fill(&mut buf[head..]);
        buf.truncate(len);
        fs::File::create(album.join(name))?.write_all(&buf)?;
        bytes += len as u64;
    }
    Ok((tree.files, bytes))
}

/// The server's record after a run: a first run stored every file exactly once and
/// filled every album; a rerun stored nothing new.
fn check(
    server: &TestServer,
    tree: &Tree,
    files: usize,
    bytes: u64,
    before: usize,
    rerun: bool,
) -> Result<()> {
    let assets = server.assets();
    if rerun && assets.len() != before {
        return Err(format!("the rerun stored {} new assets", assets.len() - before).into());
    }
    let stored: u64 = assets.iter().map(|a| a.size).sum();
    let distinct: BTreeSet<&str> = assets.iter().map(|a| a.checksum.as_str()).collect();
    if assets.len() != files || stored != bytes || distinct.len() != files {
        return Err(format!(
            "the server holds {} assets ({} distinct) of {stored} bytes; the tree has {files} \
             files of {bytes} bytes",
            assets.len(),
            distinct.len()
        )
        .into());
    }
    let albums = server.albums();
    let filled: usize = albums.iter().map(|a| a.assets.len()).sum();
    if albums.len() != tree.albums || filled != files {
        return Err(format!(
            "the server has {} albums holding {filled} assets; expected {} albums holding {files}",
            albums.len(),
            tree.albums
        )
        .into());
    }
    Ok(())
}

/// Runs one tool once under GNU time; the server's CPU is this process's own
/// during the run (the test server runs on its threads).
fn timed(
    opts: &Options,
    tool: &str,
    root: &Path,
    home: &Path,
    server: &TestServer,
    ticks: f64,
) -> Result<Usage> {
    let concurrency = opts.concurrency.to_string();
    let (program, args): (&Path, Vec<std::ffi::OsString>) = if tool == "ours" {
        let mut a: Vec<std::ffi::OsString> =
            vec!["--server".into(), server.url().into(), "--root".into()];
        a.push(root.into());
        a.push("--state-dir".into());
        a.push(home.join("state").into());
        a.extend(
            [
                "--concurrency",
                &concurrency,
                "--album-sync",
                "--json",
                "sync",
            ]
            .map(Into::into),
        );
        (&opts.device_sync, a)
    } else {
        let mut a: Vec<std::ffi::OsString> = vec![opts.cli.clone().into()];
        a.extend(
            [
                "upload",
                "--recursive",
                "--album",
                "--no-progress",
                "--concurrency",
                &concurrency,
            ]
            .map(Into::into),
        );
        a.push(root.into());
        (&opts.node, a)
    };
    let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    let server_before = measure::process_cpu_s("self", ticks)?;
    let (_, usage) = measure::timed(program, &args, &home.join("time.txt"), |c| {
        c.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", home)
            .env("IMMICH_API_KEY", server.key())
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        if tool != "ours" {
            // The CLI takes the server and key from the environment, as its docs
            // show for scripts; it needs no `login` then.
            c.env("IMMICH_INSTANCE_URL", server.api_url())
                .env("IMMICH_CONFIG_DIR", home.join("config"))
                .env("NO_COLOR", "1");
        }
    })
    .map_err(|e| format!("{tool}: {e}"))?;
    Ok(Usage {
        run: usage,
        server_cpu_s: measure::process_cpu_s("self", ticks)? - server_before,
    })
}

/// What `program args… --version` prints.
fn version(program: &Path, args: &[&Path]) -> Result<String> {
    let out = Command::new(program).args(args).arg("--version").output()?;
    Ok(String::from_utf8(out.stdout)?.trim().to_owned())
}
