//! The figures of the restore drill behind `cargo xtask bench drill`, against the
//! real Immich server v3.1.0 (built by `cargo xtask immich`) on 127.0.0.1:
//!
//! 1. `device-sync --album-sync` and `@immich/cli upload --recursive --album` on the
//!    same tree of real photos (1280×720 JPEGs made by ffmpeg, a few videos, in
//!    albums), each against its own fresh server: a first run and a no-change rerun
//!    under GNU time (wall, CPU, peak RSS). The server's record is checked after
//!    each run (every file once, every album; the rerun added nothing).
//! 2. The drill on device-sync's server: `backup` (files and the database with
//!    Immich's `DB_*` settings), `restore-verify --all`, the file restore, the
//!    database check and `--db-restore` into a fresh cluster, a second server's
//!    start on the restored data, and `restore-verify --immich-url` (of which
//!    Immich's forced thumbnail regeneration).
//!
//! `cargo run --release -p imb-e2e --example drill_bench -- --bin-dir target/release
//! --node PATH --cli PATH [--scale F] [--concurrency N]`; prints `key value` lines.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::error::Error;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use imb_pgdump::scratch::ScratchCluster;
use imb_testkit::measure;
use imb_testkit::real_immich::{Db, RealImmich, User};
use serde_json::{Value, json};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

const ALBUMS: usize = 4;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

struct Options {
    bins: PathBuf,
    node: PathBuf,
    cli: PathBuf,
    scale: f64,
    concurrency: usize,
}

/// A fresh cluster with an empty `immich` database.
fn cluster() -> Result<(ScratchCluster, Db)> {
    let pg = ScratchCluster::start()?;
    pg.create_db("immich")?;
    let db = Db {
        port: pg.port(),
        user: pg.connection("immich").user,
        password: pg.password().to_owned(),
        database: "immich".into(),
    };
    Ok((pg, db))
}

fn with_db<'c>(c: &'c mut Command, db: &Db) -> &'c mut Command {
    c.env("DB_HOSTNAME", "127.0.0.1")
        .env("DB_PORT", db.port.to_string())
        .env("DB_USERNAME", &db.user)
        .env("DB_PASSWORD", &db.password)
        .env("DB_DATABASE_NAME", &db.database)
}

fn run() -> Result<()> {
    let opts = parse_args()?;
    let work = tempfile::Builder::new()
        .prefix("imb-drill-bench-")
        .tempdir()?;
    let root = work.path().join("DCIM");
    let photos = ((100.0 * opts.scale).round() as usize).max(ALBUMS);
    let (files, bytes) = generate(&root, photos)?;
    println!("files {files}");
    println!("bytes {bytes}");
    println!("albums {ALBUMS}");
    println!("concurrency {}", opts.concurrency);
    println!("cli_version {}", version(&opts.node, &[&opts.cli])?);

    let mut kept = None;
    for tool in ["cli", "ours"] {
        let (pg, db) = cluster()?;
        let immich = RealImmich::start(&db);
        let user = immich.user("bench@example.test");
        let home = work.path().join(tool);
        fs::create_dir_all(&home)?;
        for (pass, label) in [(0, "first"), (1, "rerun")] {
            let before = asset_count(&immich, &user)?;
            let (wall, cpu, rss) = timed(&opts, tool, &root, &home, &immich, &user)?;
            let after = asset_count(&immich, &user)?;
            let want = if pass == 0 { files } else { before };
            if after != want {
                return Err(format!(
                    "{tool} {label}: the server holds {after} assets, expected {want}"
                )
                .into());
            }
            let albums = immich.get("/api/albums", &user.key);
            if albums.as_array().map_or(0, Vec::len) != ALBUMS {
                return Err(format!("{tool} {label}: albums {albums}").into());
            }
            eprintln!("{tool} {label}: wall {wall:.2} s, CPU {cpu:.2} s, peak RSS {rss:.1} MiB");
            println!("{tool}_{label}_wall_s {wall:.3}");
            println!("{tool}_{label}_cpu_s {cpu:.3}");
            println!("{tool}_{label}_rss_mib {rss:.1}");
            // The server's thumbnailing of the uploads runs in the background; let
            // it finish so the next run is measured alone.
            immich.wait_idle();
        }
        if tool == "ours" {
            kept = Some((pg, db, immich, user));
        }
    }
    let (pg, db, immich, user) = kept.ok_or("no server")?;
    drill(&opts, work.path(), &pg, &db, &immich, &user)
}

fn drill(
    opts: &Options,
    work: &Path,
    pg: &ScratchCluster,
    db: &Db,
    immich: &RealImmich,
    user: &User,
) -> Result<()> {
    let dest = work.join("backup");
    let bin = |name: &str| {
        let mut c = Command::new(opts.bins.join(name));
        c.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", work)
            .stdin(Stdio::null());
        c
    };
    let phase = |name: &str, mut c: Command| -> Result<Value> {
        let started = Instant::now();
        let out = c.output()?;
        let s = started.elapsed().as_secs_f64();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        if !out.status.success() {
            return Err(format!(
                "{name}: {}\n{v}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )
            .into());
        }
        eprintln!("drill {name}: {s:.2} s");
        println!("drill_{name}_s {s:.3}");
        Ok(v)
    };

    let mut c = bin("backup");
    with_db(&mut c, db)
        .env("IMB_PG_DUMP", pg.bin("pg_dump"))
        .arg("--source")
        .arg(immich.media())
        .arg("--dest")
        .arg(&dest)
        .arg("--json");
    let b = phase("backup", c)?;
    println!(
        "drill_backup_files {}",
        b["files_total"].as_u64().unwrap_or(0)
    );

    let mut c = bin("restore-verify");
    c.arg("--from")
        .arg(&dest)
        .args(["--all", "--no-database", "--json"]);
    phase("verify_all", c)?;

    let mut c = bin("restore-verify");
    c.arg("--from")
        .arg(&dest)
        .args(["--no-database", "--json", "--restore-to"])
        .arg(work.join("restored"));
    phase("restore_files", c)?;

    let (pg2, db2) = cluster()?;
    let mut c = bin("restore-verify");
    with_db(&mut c, &db2)
        .arg("--from")
        .arg(&dest)
        .args(["--db-restore", "--json", "--psql"])
        .arg(pg2.bin("psql"));
    phase("db_check_and_restore", c)?;

    let started = Instant::now();
    let immich2 = RealImmich::start_on(&db2, &work.join("restored"));
    let s = started.elapsed().as_secs_f64();
    eprintln!("drill server_start: {s:.2} s");
    println!("drill_server_start_s {s:.3}");

    let keys = work.join("keys");
    fs::create_dir_all(&keys)?;
    fs::write(keys.join("user"), &user.key)?;
    fs::write(keys.join("admin"), &immich2.admin().key)?;
    let mut c = bin("restore-verify");
    c.arg("--from")
        .arg(&dest)
        .args(["--json", "--immich-url", &immich2.url(), "--key-file"])
        .arg(keys.join("user"))
        .arg("--key-file")
        .arg(keys.join("admin"));
    let v = phase("immich_check", c)?;
    let im = &v["immich"];
    if im["originals_identical"] != im["assets_checked"] || im["assets_checked"].as_u64() == Some(0)
    {
        return Err(format!("the restored server: {im}").into());
    }
    println!(
        "drill_regeneration_s {:.3}",
        im["queue_wait_s"].as_f64().unwrap_or(0.0)
    );
    println!("drill_assets_checked {}", im["assets_checked"]);
    println!("drill_thumbnails_present {}", im["thumbnails_present"]);
    Ok(())
}

fn parse_args() -> Result<Options> {
    let mut args = std::env::args().skip(1);
    let (mut bins, mut node, mut cli) = (None, None, None);
    let (mut scale, mut concurrency) = (1.0, 4);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--bin-dir" => bins = Some(PathBuf::from(value(&arg)?)),
            "--node" => node = Some(PathBuf::from(value(&arg)?)),
            "--cli" => cli = Some(PathBuf::from(value(&arg)?)),
            "--scale" => scale = value(&arg)?.parse()?,
            "--concurrency" => concurrency = value(&arg)?.parse()?,
            _ => return Err(format!("unexpected argument {arg:?}").into()),
        }
    }
    let need = |p: Option<PathBuf>, name: &str| p.ok_or(format!("{name} PATH is required"));
    let opts = Options {
        bins: need(bins, "--bin-dir")?,
        node: need(node, "--node")?,
        cli: need(cli, "--cli")?,
        scale,
        concurrency,
    };
    if !opts.scale.is_finite() || opts.scale <= 0.0 || opts.concurrency == 0 {
        return Err("--scale and --concurrency must be positive".into());
    }
    Ok(opts)
}

/// `photos` distinct 1280×720 JPEGs (ffmpeg's test pattern, one frame each) and one
/// short video per album, spread over [`ALBUMS`] folders.
fn generate(root: &Path, photos: usize) -> Result<(usize, u64)> {
    let per = photos.div_ceil(ALBUMS);
    let mut made = 0;
    for a in 0..ALBUMS {
        let dir = root.join(format!("Album {a}"));
        fs::create_dir_all(&dir)?;
        let n = per.min(photos - made);
        let start = made;
        made += n;
        let status = Command::new("ffmpeg")
            .args(["-loglevel", "error", "-f", "lavfi", "-i"])
            .arg("testsrc2=size=1280x720:rate=1")
            // Frames from a different second of the pattern per album: distinct photos.
            .args([
                "-ss",
                &start.to_string(),
                "-frames:v",
                &n.to_string(),
                "-q:v",
                "3",
                "-y",
            ])
            .arg(dir.join("IMG_%04d.jpg"))
            .status()?;
        if !status.success() {
            return Err("ffmpeg failed to make the photos".into());
        }
        let status = Command::new("ffmpeg")
            .args(["-loglevel", "error", "-f", "lavfi", "-i"])
            .arg(format!(
                "testsrc2=size=1280x720:rate=25:duration=2,hue=h={}",
                a * 60
            ))
            .args(["-pix_fmt", "yuv420p", "-y"])
            .arg(dir.join("VID_0001.mp4"))
            .status()?;
        if !status.success() {
            return Err("ffmpeg failed to make the video".into());
        }
    }
    let mut count = 0;
    let mut bytes = 0;
    for a in 0..ALBUMS {
        for e in fs::read_dir(root.join(format!("Album {a}")))? {
            count += 1;
            bytes += e?.metadata()?.len();
        }
    }
    Ok((count, bytes))
}

fn asset_count(immich: &RealImmich, user: &User) -> Result<usize> {
    let mut n = 0;
    let mut page = 1;
    loop {
        let (status, body) = immich.call(
            "POST",
            "/api/search/metadata",
            Some(&user.key),
            &json!({"size": 1000, "page": page}),
        );
        if status != 200 {
            return Err(format!("search: HTTP {status}: {body}").into());
        }
        n += body["assets"]["items"].as_array().map_or(0, Vec::len);
        if body["assets"]["nextPage"].is_null() {
            return Ok(n);
        }
        page += 1;
    }
}

/// Runs one tool once under GNU time: wall, CPU (user + system) and peak RSS.
fn timed(
    opts: &Options,
    tool: &str,
    root: &Path,
    home: &Path,
    immich: &RealImmich,
    user: &User,
) -> Result<(f64, f64, f64)> {
    let concurrency = opts.concurrency.to_string();
    let (program, args): (PathBuf, Vec<std::ffi::OsString>) = if tool == "ours" {
        let mut a: Vec<std::ffi::OsString> =
            vec!["--server".into(), immich.url().into(), "--root".into()];
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
        (opts.bins.join("device-sync"), a)
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
        (opts.node.clone(), a)
    };
    let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    let (_, u) = measure::timed(&program, &args, &home.join("time.txt"), |c| {
        c.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", home)
            .env("IMMICH_API_KEY", &user.key)
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        if tool != "ours" {
            c.env("IMMICH_INSTANCE_URL", format!("{}/api", immich.url()))
                .env("IMMICH_CONFIG_DIR", home.join("config"))
                .env("NO_COLOR", "1");
        }
    })
    .map_err(|e| format!("{tool}: {e}"))?;
    Ok((u.wall_s, u.cpu_s, u.rss_mib()))
}

/// What `program args… --version` prints.
fn version(program: &Path, args: &[&Path]) -> Result<String> {
    let out = Command::new(program).args(args).arg("--version").output()?;
    Ok(String::from_utf8(out.stdout)?.trim().to_owned())
}
