//! The database-dump benchmark behind `cargo xtask bench pgdump`: [`imb_pgdump::dump`]
//! (pg_dump → multi-threaded gzip → a local directory store, fsync off) against the
//! shell pipeline `pg_dump … | gzip > file`, on the same generated database in a
//! [`ScratchCluster`], with the same `pg_dump` and the same connection.
//!
//! `cargo run --release -p imb-pgdump --example dump_bench -- [--mb N]
//! [--runs N]`
//!
//! It loads Immich-shaped tables (users, asset, asset_exif, album, album_asset,
//! version_history) in batches until the database holds about N MB (default 300),
//! vacuums it, then times each side once as a warm-up and N more times (default 3),
//! alternating, and prints `key value` lines: the best times (`ours_s`, `pipe_s`), the
//! compressed sizes, the SQL size, the database size, CPU seconds (this process and its
//! children, from `/proc/self/stat`, and the whole machine's, from `/proc/stat`, which
//! includes the PostgreSQL server) and the compression threads. Both warm-up outputs
//! are decompressed with the system's `gzip -dc` to check they are standard gzip of the
//! same SQL size. The pipeline gets the password through `PGPASSWORD` in its
//! environment, never its command line.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::error::Error;
use std::fs::File;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant, SystemTime};

use imb_pgdump::scratch::ScratchCluster;
use imb_pgdump::{DumpOptions, dump};
use imb_storage::LocalDir;

type Result<T> = std::result::Result<T, Box<dyn Error>>;

const DATABASE: &str = "immich";
/// Assets inserted per batch; the size is checked between batches.
const BATCH: u64 = 50_000;
const MB: f64 = 1e6;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let mut target_mb: u64 = 300;
    let mut runs: usize = 3;
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--mb" => target_mb = value("--mb")?.parse()?,
            "--runs" => runs = value("--runs")?.parse()?,
            _ => {
                return Err(format!(
                    "unexpected argument {arg:?} (usage: bench [--mb N] [--runs N])"
                )
                .into());
            }
        }
    }
    if target_mb == 0 || runs == 0 {
        return Err("--mb and --runs must be positive".into());
    }
    let ticks = clock_ticks()?;

    let cluster = ScratchCluster::start()?;
    cluster.create_db(DATABASE)?;
    let started = Instant::now();
    let (assets, db_bytes) = load(&cluster, target_mb * 1_000_000)?;
    eprintln!(
        "loaded {assets} assets, database {:.1} MB, in {:.1} s",
        db_bytes as f64 / MB,
        started.elapsed().as_secs_f64()
    );

    let work = tempfile::Builder::new()
        .prefix("imb-pgdump-bench-")
        .tempdir()?;
    let mut opts = DumpOptions::default();
    opts.pg_dump = cluster.bin("pg_dump");
    opts.immich_version = Some("v1.132.3".to_owned());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;

    let mut ours_best: Option<Timing> = None;
    let mut pipe_best: Option<Timing> = None;
    let mut sql_bytes = 0;
    for round in 0..=runs {
        let warm_up = round == 0;
        let label = if warm_up {
            "warm-up".to_owned()
        } else {
            format!("run {round}")
        };

        let dir = work.path().join(format!("ours-{round}"));
        std::fs::create_dir(&dir)?;
        let store = LocalDir::new(&dir)?.with_fsync(false);
        let conn = cluster.connection(DATABASE);
        let (cpu, busy) = (cpu_s(ticks)?, machine_busy_s(ticks)?);
        let clock = Instant::now();
        let report = runtime.block_on(dump(&store, &conn, &opts, SystemTime::now()))?;
        let ours = Timing {
            wall: clock.elapsed(),
            cpu_s: cpu_s(ticks)? - cpu,
            machine_s: machine_busy_s(ticks)? - busy,
            bytes: report.bytes,
        };
        sql_bytes = report.sql_bytes;
        let file = dir.join(&report.key);
        if warm_up {
            let plain = gunzip_len(&file)?;
            if plain != report.sql_bytes {
                return Err(format!(
                    "gzip -dc of our dump gives {plain} bytes, the dump reported {} of SQL",
                    report.sql_bytes
                )
                .into());
            }
            println!("ours_gunzip_bytes {plain}");
        }
        std::fs::remove_dir_all(&dir)?;
        eprintln!(
            "{label}: ours {:.2} s, CPU {:.2} s (machine {:.2} s), {} bytes",
            ours.wall.as_secs_f64(),
            ours.cpu_s,
            ours.machine_s,
            ours.bytes
        );

        let file = work.path().join(format!("pipe-{round}.sql.gz"));
        let (cpu, busy) = (cpu_s(ticks)?, machine_busy_s(ticks)?);
        let clock = Instant::now();
        pipeline(&cluster, &opts.pg_dump, &file)?;
        let pipe = Timing {
            wall: clock.elapsed(),
            cpu_s: cpu_s(ticks)? - cpu,
            machine_s: machine_busy_s(ticks)? - busy,
            bytes: std::fs::metadata(&file)?.len(),
        };
        if warm_up {
            println!("pipe_gunzip_bytes {}", gunzip_len(&file)?);
        }
        std::fs::remove_file(&file)?;
        eprintln!(
            "{label}: pipe {:.2} s, CPU {:.2} s (machine {:.2} s), {} bytes",
            pipe.wall.as_secs_f64(),
            pipe.cpu_s,
            pipe.machine_s,
            pipe.bytes
        );

        if !warm_up {
            keep_best(&mut ours_best, ours);
            keep_best(&mut pipe_best, pipe);
        }
    }
    let (ours, pipe) = (ours_best.ok_or("no runs")?, pipe_best.ok_or("no runs")?);
    println!("ours_s {:.3}", ours.wall.as_secs_f64());
    println!("pipe_s {:.3}", pipe.wall.as_secs_f64());
    println!("ours_cpu_s {:.2}", ours.cpu_s);
    println!("pipe_cpu_s {:.2}", pipe.cpu_s);
    println!("ours_machine_s {:.2}", ours.machine_s);
    println!("pipe_machine_s {:.2}", pipe.machine_s);
    println!("ours_bytes {}", ours.bytes);
    println!("pipe_bytes {}", pipe.bytes);
    println!("sql_bytes {sql_bytes}");
    println!("db_bytes {db_bytes}");
    println!("assets {assets}");
    println!("threads {}", opts.compression_threads);
    println!("level {}", opts.compression_level);
    println!("runs {runs}");
    println!("pg_dump_version {}", tool_version(&opts.pg_dump)?);
    Ok(())
}

/// One timed dump.
#[derive(Clone, Copy)]
struct Timing {
    wall: Duration,
    /// This process and its children: our compression threads, pg_dump, gzip.
    cpu_s: f64,
    /// The whole machine, which includes the PostgreSQL server's backend.
    machine_s: f64,
    bytes: u64,
}

fn keep_best(best: &mut Option<Timing>, candidate: Timing) {
    if best.is_none_or(|b| candidate.wall < b.wall) {
        *best = Some(candidate);
    }
}

/// `pg_dump --clean --if-exists … | gzip > file`, the two processes joined by a pipe
/// as a shell would, the password in pg_dump's environment.
fn pipeline(cluster: &ScratchCluster, pg_dump: &Path, file: &Path) -> Result<()> {
    let mut dump = Command::new(pg_dump)
        .args([
            "--clean",
            "--if-exists",
            "--no-password",
            "--host",
            "127.0.0.1",
        ])
        .args(["--port", &cluster.port().to_string()])
        .args(["--username", "postgres", "--dbname", DATABASE])
        .env("PGPASSWORD", cluster.password())
        .env_remove("PGPASSFILE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()?;
    let sql = dump.stdout.take().ok_or("pg_dump's stdout is piped")?;
    let gzip = Command::new("gzip")
        .stdin(sql)
        .stdout(File::create(file)?)
        .status()?;
    let dumped = dump.wait()?;
    if !dumped.success() || !gzip.success() {
        return Err(format!("pg_dump | gzip failed: pg_dump {dumped}, gzip {gzip}").into());
    }
    Ok(())
}

/// How many bytes `gzip -dc` gives back: the file is standard gzip.
fn gunzip_len(file: &Path) -> Result<u64> {
    let mut child = Command::new("gzip")
        .arg("-dc")
        .arg(file)
        .stdout(Stdio::piped())
        .spawn()?;
    let mut out = child.stdout.take().ok_or("gzip's stdout is piped")?;
    let n = std::io::copy(&mut out, &mut std::io::sink())?;
    let status = child.wait()?;
    if !status.success() {
        return Err(format!("gzip -dc {} failed: {status}", file.display()).into());
    }
    Ok(n)
}

/// This process's CPU seconds plus those of its waited-for children.
fn cpu_s(ticks: f64) -> Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // After the command name: utime, stime, cutime, cstime are fields 14–17.
    let total: f64 = fields
        .get(11..15)
        .ok_or("short /proc/self/stat")?
        .iter()
        .map(|f| f.parse::<f64>())
        .sum::<std::result::Result<f64, _>>()?;
    Ok(total / ticks)
}

/// Busy CPU seconds of the whole machine so far (all but idle and iowait in the
/// `cpu` line of `/proc/stat`).
fn machine_busy_s(ticks: f64) -> Result<f64> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let line = stat.lines().next().ok_or("empty /proc/stat")?;
    let mut busy = 0.0;
    // user nice system idle iowait irq softirq steal (guest time is inside user).
    for (index, field) in line.split_whitespace().skip(1).take(8).enumerate() {
        if index != 3 && index != 4 {
            busy += field.parse::<f64>()?;
        }
    }
    Ok(busy / ticks)
}

fn clock_ticks() -> Result<f64> {
    let out = Command::new("getconf").arg("CLK_TCK").output()?;
    Ok(String::from_utf8(out.stdout)?.trim().parse()?)
}

fn tool_version(program: &Path) -> Result<String> {
    let out = Command::new(program).arg("--version").output()?;
    Ok(String::from_utf8(out.stdout)?.trim().to_owned())
}

/// The schema: the Immich tables a dump of a real library is mostly made of.
const SCHEMA: &str = r#"
CREATE TABLE users (id uuid PRIMARY KEY, email varchar NOT NULL, name varchar NOT NULL,
  "createdAt" timestamptz NOT NULL DEFAULT now());
CREATE TABLE asset (id uuid PRIMARY KEY, "ownerId" uuid NOT NULL,
  "deviceAssetId" varchar NOT NULL, "deviceId" varchar NOT NULL, type varchar NOT NULL,
  "originalPath" varchar NOT NULL, "originalFileName" varchar NOT NULL,
  checksum bytea NOT NULL, thumbhash bytea, "fileCreatedAt" timestamptz NOT NULL,
  "fileModifiedAt" timestamptz NOT NULL, "localDateTime" timestamptz NOT NULL,
  "isFavorite" boolean NOT NULL DEFAULT false, visibility varchar NOT NULL DEFAULT 'timeline',
  duration varchar, "encodedVideoPath" varchar, "createdAt" timestamptz NOT NULL DEFAULT now());
CREATE INDEX asset_owner_created ON asset ("ownerId", "fileCreatedAt");
CREATE UNIQUE INDEX asset_owner_checksum ON asset ("ownerId", checksum);
CREATE TABLE asset_exif ("assetId" uuid PRIMARY KEY, make varchar, model varchar,
  "exifImageWidth" integer, "exifImageHeight" integer, "fileSizeInByte" bigint,
  orientation varchar, "dateTimeOriginal" timestamptz, "lensModel" varchar,
  "fNumber" double precision, "focalLength" double precision, iso integer,
  "exposureTime" varchar, latitude double precision, longitude double precision,
  city varchar, state varchar, country varchar, description text NOT NULL DEFAULT '');
CREATE TABLE album (id uuid PRIMARY KEY, "ownerId" uuid NOT NULL, "albumName" varchar NOT NULL,
  "createdAt" timestamptz NOT NULL DEFAULT now());
CREATE TABLE album_asset ("albumId" uuid NOT NULL, "assetId" uuid NOT NULL,
  PRIMARY KEY ("albumId", "assetId"));
CREATE TABLE version_history (id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  "createdAt" timestamptz NOT NULL DEFAULT now(), version varchar NOT NULL);
INSERT INTO version_history (version) VALUES ('v1.132.3');
INSERT INTO users (id, email, name)
  SELECT md5('u' || u)::uuid, 'user' || u || '@example.com', 'User ' || u FROM generate_series(0, 2) u;
INSERT INTO album (id, "ownerId", "albumName")
  SELECT md5('al' || a)::uuid, md5('u' || (a % 3))::uuid, 'Album ' || a FROM generate_series(0, 199) a;
"#;

/// One batch of assets `lo..=hi` with their EXIF rows and album memberships.
fn batch_sql(lo: u64, hi: u64) -> String {
    format!(
        r#"
INSERT INTO asset (id, "ownerId", "deviceAssetId", "deviceId", type, "originalPath",
  "originalFileName", checksum, thumbhash, "fileCreatedAt", "fileModifiedAt", "localDateTime",
  "isFavorite", duration, "encodedVideoPath")
SELECT md5('a' || i)::uuid, md5('u' || (i % 3))::uuid,
  'IMG_' || lpad(i::text, 7, '0') || '-' || extract(epoch FROM t)::bigint, 'Library Import',
  CASE WHEN i % 10 = 0 THEN 'VIDEO' ELSE 'IMAGE' END,
  '/usr/src/app/upload/library/user' || (i % 3) || '/' || to_char(t, 'YYYY') || '/'
    || to_char(t, 'YYYY-MM-DD') || '/' || name,
  name,
  decode(md5('c' || i) || substr(md5('d' || i), 1, 8), 'hex'),
  decode(substr(md5('t' || i) || md5('h' || i), 1, 50), 'hex'),
  t, t + interval '3 seconds', t + interval '2 hours', i % 17 = 0,
  CASE WHEN i % 10 = 0 THEN '00:00:' || lpad((i % 60)::text, 2, '0') || '.000000' END,
  CASE WHEN i % 10 = 0 THEN '/usr/src/app/upload/encoded-video/' || md5('u' || (i % 3)) || '/'
    || substr(md5('a' || i), 1, 2) || '/' || md5('a' || i) || '.mp4' END
FROM (SELECT i, timestamptz '2012-01-01 00:00:00+00' + i * interval '7 minutes' AS t,
        'IMG_' || lpad(i::text, 7, '0') || CASE WHEN i % 10 = 0 THEN '.MP4' ELSE '.JPG' END AS name
      FROM generate_series({lo}, {hi}) i) s;
INSERT INTO asset_exif ("assetId", make, model, "exifImageWidth", "exifImageHeight",
  "fileSizeInByte", orientation, "dateTimeOriginal", "lensModel", "fNumber", "focalLength",
  iso, "exposureTime", latitude, longitude, city, state, country)
SELECT md5('a' || i)::uuid,
  (ARRAY['Apple', 'samsung', 'Canon', 'SONY', 'Google'])[1 + i % 5],
  (ARRAY['iPhone 13 Pro', 'SM-G991B', 'Canon EOS 80D', 'ILCE-7M3', 'Pixel 7'])[1 + i % 5],
  4032, 3024, 1500000 + abs(hashtext('s' || i)::bigint) % 6000000, '1',
  timestamptz '2012-01-01 00:00:00+00' + i * interval '7 minutes',
  (ARRAY['iPhone 13 Pro back triple camera 5.7mm f/1.5', 'EF-S18-135mm f/3.5-5.6 IS USM', 'FE 24-105mm F4 G OSS', NULL])[1 + i % 4],
  1.5 + (i % 7) * 0.4, 5.7 + (i % 11), 50 + i % 1600, '1/' || (30 + i % 970),
  37.0 + (hashtext('x' || i) % 1000000) / 1e5, -122.0 + (hashtext('y' || i) % 1000000) / 1e5,
  (ARRAY['San Francisco', 'Berlin', 'Lisbon', 'Kyoto', 'Toronto', 'Cape Town'])[1 + i % 6],
  (ARRAY['California', 'Berlin', 'Lisbon', 'Kyoto', 'Ontario', 'Western Cape'])[1 + i % 6],
  (ARRAY['United States of America', 'Germany', 'Portugal', 'Japan', 'Canada', 'South Africa'])[1 + i % 6]
FROM generate_series({lo}, {hi}) i;
INSERT INTO album_asset ("albumId", "assetId")
SELECT md5('al' || (i % 200))::uuid, md5('a' || i)::uuid
FROM generate_series({lo}, {hi}) i WHERE i % 2 = 0;
"#
    )
}

/// Loads batches until the database is at least `target` bytes; returns the asset
/// count and the final database size.
fn load(cluster: &ScratchCluster, target: u64) -> Result<(u64, u64)> {
    cluster.psql(DATABASE, SCHEMA)?;
    let size = || -> Result<u64> {
        let out = cluster.psql(DATABASE, &format!("SELECT pg_database_size('{DATABASE}')"))?;
        Ok(out.trim().parse()?)
    };
    let mut assets = 0;
    while size()? < target {
        cluster.psql(DATABASE, &batch_sql(assets, assets + BATCH - 1))?;
        assets += BATCH;
        eprintln!("{assets} assets, {:.1} MB", size()? as f64 / MB);
    }
    cluster.psql(
        DATABASE,
        r#"
ALTER TABLE asset ADD FOREIGN KEY ("ownerId") REFERENCES users (id);
ALTER TABLE asset_exif ADD FOREIGN KEY ("assetId") REFERENCES asset (id) ON DELETE CASCADE;
ALTER TABLE album ADD FOREIGN KEY ("ownerId") REFERENCES users (id);
ALTER TABLE album_asset ADD FOREIGN KEY ("albumId") REFERENCES album (id) ON DELETE CASCADE;
ALTER TABLE album_asset ADD FOREIGN KEY ("assetId") REFERENCES asset (id) ON DELETE CASCADE;
VACUUM (FREEZE, ANALYZE);
CHECKPOINT;
"#,
    )?;
    Ok((assets, size()?))
}
