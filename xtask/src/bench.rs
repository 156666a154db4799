//! The `bench` task: our figures next to a reference's, as a ratio where there is one.
//!
//! Each sub-bench in [`BENCHES`] produces a markdown section; `cargo xtask bench` runs them
//! all, `cargo xtask bench NAME` runs one, and `--write` replaces that section of
//! `docs/benchmarks.md` (appending it if absent) while leaving other sections alone.
//! `hash` compares throughput with `openssl speed`, `manifest` the uploaded manifest's
//! bytes per file with the seed's, `rss` (in `bench_rss.rs`) measures the backup
//! binary's peak memory as the file count grows, `local` (in `bench_local.rs`) many
//! small files to a local directory beside restic, `cost` (in `bench_cost.rs`) the
//! requests and bytes of nightly runs and checks at a proxy, `gcs` (in `bench_gcs.rs`) uploads to
//! fake-gcs-server side by side with rclone, and `pgdump` (in `bench_pgdump.rs`) times
//! our database dump against `pg_dump | gzip > file`, and `devicesync` (in
//! `bench_devicesync.rs`) runs `device-sync` and `@immich/cli upload` on the same
//! folder trees against the test Immich server, and `drill` (in `bench_drill.rs`)
//! the same against the real Immich, then times the restore drill's phases.

use std::fmt::Write as _;

use anyhow::{Context, Result, bail};

use crate::args::Args;
use crate::cmd::cmd;
use crate::project_root;

#[path = "bench_cost.rs"]
mod cost;
#[path = "bench_devicesync.rs"]
mod devicesync;
#[path = "bench_drill.rs"]
mod drill;
#[path = "bench_gcs.rs"]
mod gcs;
#[path = "bench_local.rs"]
mod local;
#[path = "bench_pgdump.rs"]
mod pgdump;
#[path = "bench_rss.rs"]
mod rss;

/// One benchmark: a name for the command line and a function that measures and reports.
struct Bench {
    name: &'static str,
    run: fn(&Options) -> Result<Section>,
}

/// Every sub-bench, in the order `cargo xtask bench` runs them.
const BENCHES: &[Bench] = &[
    Bench {
        name: "hash",
        run: hash,
    },
    Bench {
        name: "manifest",
        run: manifest,
    },
    Bench {
        name: "rss",
        run: rss::run,
    },
    Bench {
        name: "local",
        run: local::run,
    },
    Bench {
        name: "cost",
        run: cost::run_bench,
    },
    Bench {
        name: "gcs",
        run: gcs::run,
    },
    Bench {
        name: "pgdump",
        run: pgdump::run,
    },
    Bench {
        name: "devicesync",
        run: devicesync::run,
    },
    Bench {
        name: "drill",
        run: drill::run,
    },
    Bench {
        name: "wan",
        run: gcs::run_wan,
    },
];

/// Options some benches take.
struct Options {
    /// `--files N,M,...`: the file counts `rss` measures.
    files: Option<Vec<u64>>,
    /// `--scale F`: multiplies the data `gcs`, `pgdump`, `devicesync` and `drill` generate (default 1).
    scale: Option<f64>,
    /// `--keep`: `gcs` leaves `target/bench-gcs` in place.
    keep: bool,
}

/// A `## Title` section of docs/benchmarks.md.
struct Section {
    title: &'static str,
    body: String,
}

/// `cargo xtask bench [NAME] [--write] [--files N,M,...] [--scale F] [--keep]`.
pub(crate) fn run(mut args: Args) -> Result<()> {
    let write = args.flag("--write");
    let keep = args.flag("--keep");
    let files: Option<String> = args.value("--files")?;
    let scale: Option<f64> = args.value("--scale")?;
    let name = args.next_positional();
    args.finish()?;
    let options = Options {
        files: files.as_deref().map(parse_counts).transpose()?,
        scale,
        keep,
    };
    if options.files.is_some() && !matches!(name.as_deref(), None | Some("all" | "rss" | "local")) {
        bail!("--files applies only to `bench rss` and `bench local`");
    }
    if let Some(scale) = scale {
        if !(scale.is_finite() && scale > 0.0) {
            bail!("--scale {scale}: must be a positive number");
        }
        if !matches!(
            name.as_deref(),
            None | Some("all" | "gcs" | "pgdump" | "devicesync" | "drill" | "wan")
        ) {
            bail!(
                "--scale applies only to `bench gcs`, `bench pgdump`, `bench devicesync` and `bench drill`"
            );
        }
    }
    if keep && !matches!(name.as_deref(), None | Some("all" | "gcs" | "wan")) {
        bail!("--keep applies only to `bench gcs`");
    }
    let selected: Vec<&Bench> = match name.as_deref() {
        None | Some("all") => BENCHES.iter().collect(),
        Some(name) => match BENCHES.iter().find(|bench| bench.name == name) {
            Some(bench) => vec![bench],
            None => {
                let known: Vec<_> = BENCHES.iter().map(|bench| bench.name).collect();
                bail!("unknown bench `{name}`; known: {}", known.join(", "))
            }
        },
    };
    for bench in selected {
        let section = (bench.run)(&options).with_context(|| format!("bench `{}`", bench.name))?;
        println!("\n## {}\n\n{}", section.title, section.body);
        if write {
            write_section(&section)?;
        }
    }
    Ok(())
}

/// `cargo run --release -p PACKAGE --example EXAMPLE -- ARGS… FLAG PATH…`: what
/// the heavy benches run; its stdout, echoed to stderr.
fn run_example(
    package: &str,
    example: &str,
    args: &[&str],
    paths: &[(&str, &std::path::Path)],
) -> Result<String> {
    let mut all: Vec<std::ffi::OsString> = [
        "run",
        "--release",
        "-p",
        package,
        "--example",
        example,
        "--",
    ]
    .iter()
    .chain(args)
    .map(Into::into)
    .collect();
    for (flag, path) in paths {
        all.push(flag.into());
        all.push(path.into());
    }
    let out = cmd("cargo", all).read()?;
    eprint!("{out}");
    Ok(out)
}

fn write_section(section: &Section) -> Result<()> {
    let path = project_root().join("docs/benchmarks.md");
    let old = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => String::from(
            "# Benchmarks\n\nProduced by `cargo xtask bench --write`; each section is \
             replaced when its bench is re-run.\n",
        ),
        Err(err) => return Err(err).with_context(|| format!("reading {}", path.display())),
    };
    let new = replace_section(&old, section.title, &section.body);
    std::fs::write(&path, new).with_context(|| format!("writing {}", path.display()))?;
    eprintln!(
        "wrote section \"## {}\" of docs/benchmarks.md",
        section.title
    );
    Ok(())
}

/// Replaces the `## title` section of `doc` (up to the next `## ` heading) with `body`,
/// or appends the section when `doc` has none.
fn replace_section(doc: &str, title: &str, body: &str) -> String {
    let heading = format!("## {title}");
    let new_section = format!("{heading}\n\n{}\n", body.trim_end());
    let lines: Vec<&str> = doc.lines().collect();
    let Some(start) = lines.iter().position(|line| line.trim_end() == heading) else {
        let mut out = doc.trim_end().to_owned();
        if !out.is_empty() {
            out.push_str("\n\n");
        }
        out.push_str(&new_section);
        return out;
    };
    let end = lines[start + 1..]
        .iter()
        .position(|line| line.starts_with("## "))
        .map_or(lines.len(), |offset| start + 1 + offset);
    let mut out = String::new();
    for line in &lines[..start] {
        out.push_str(line);
        out.push('\n');
    }
    out.push_str(&new_section);
    if end < lines.len() {
        out.push('\n');
        for line in &lines[end..] {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// `10000,1_000_000` as a list of counts.
fn parse_counts(list: &str) -> Result<Vec<u64>> {
    let counts = list
        .split(',')
        .map(|item| {
            let item = item.trim().replace('_', "");
            match item.parse::<u64>() {
                Ok(0) | Err(_) => bail!("--files {list}: `{item}` is not a positive count"),
                Ok(count) => Ok(count),
            }
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(counts)
}

/// imb-hash's `throughput` example against `openssl speed`.
fn hash(_: &Options) -> Result<Section> {
    let ours_out = cmd(
        "cargo",
        [
            "run",
            "--release",
            "-p",
            "imb-hash",
            "--example",
            "throughput",
        ],
    )
    .read()?;
    eprint!("{ours_out}");
    let ours = parse_ours(&ours_out);
    if ours.is_empty() {
        bail!("the throughput example printed no `<algorithm> <MB/s>` lines");
    }

    let sha256 = openssl_speed("sha256")?;
    let sha1 = openssl_speed("sha1")?;
    let mut rows = Vec::new();
    for (algorithm, ours_mbs) in &ours {
        let openssl_mbs = match algorithm.as_str() {
            "sha256" => Some(sha256),
            "sha1" => Some(sha1),
            // Our single pass computing all three digests, against openssl computing
            // SHA-256 and SHA-1 in two passes over the same bytes.
            "combined" => Some(1.0 / (1.0 / sha256 + 1.0 / sha1)),
            // openssl has no CRC32C.
            _ => None,
        };
        rows.push((algorithm.clone(), *ours_mbs, openssl_mbs));
    }

    let openssl_version = cmd("openssl", ["version"]).read()?;
    let mut body = String::new();
    let _ = writeln!(
        body,
        "`cargo xtask bench hash`: imb-hash's `throughput` example (release build) against \
         `openssl speed -evp <alg> -bytes 1048576 -seconds 3` ({}) on {}. \
         MB/s is 10^6 bytes per second; ratio is ours / openssl. `combined` is our one pass \
         computing SHA-256, SHA-1 and CRC32C together; its openssl figure is SHA-256 then \
         SHA-1 in two passes. openssl has no CRC32C.\n",
        openssl_version
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" "),
        cpu_model().unwrap_or_else(|| "an unknown CPU".to_owned()),
    );
    body.push_str("| algorithm | ours MB/s | openssl MB/s | ours / openssl |\n");
    body.push_str("|-----------|----------:|-------------:|---------------:|\n");
    for (algorithm, ours_mbs, openssl_mbs) in rows {
        let (openssl_cell, ratio_cell) = match openssl_mbs {
            Some(theirs) => (format!("{theirs:.0}"), format!("{:.2}", ours_mbs / theirs)),
            None => ("n/a".to_owned(), "n/a".to_owned()),
        };
        let _ = writeln!(
            body,
            "| {algorithm} | {ours_mbs:.0} | {openssl_cell} | {ratio_cell} |"
        );
    }
    Ok(Section {
        title: "Hashing",
        body,
    })
}

/// Bytes per file the seed documents for its manifest (path, SHA-256, size, archived).
const SEED_BYTES_PER_FILE: f64 = 252.0;

/// imb-manifest's `bytes_per_file` example against the seed's documented bytes per file.
fn manifest(_: &Options) -> Result<Section> {
    let out = cmd(
        "cargo",
        [
            "run",
            "--release",
            "-p",
            "imb-manifest",
            "--example",
            "bytes_per_file",
        ],
    )
    .read()?;
    eprint!("{out}");
    let field = |name: &str| {
        parse_field(&out, name)
            .with_context(|| format!("the bytes_per_file example printed no `{name} <n>` line"))
    };
    let rows = field("rows")?;
    let path_bytes = field("avg_path_bytes")?;
    let snapshot_bytes = field("snapshot_bytes")?;
    let per_file = field("bytes_per_file")?;
    let index_per_file = field("index_bytes_per_file")?;
    let working_bytes = field("working_bytes")?;

    let mut body = String::new();
    let _ = writeln!(
        body,
        "`cargo xtask bench manifest`: imb-manifest's `bytes_per_file` example (release build) \
         fills a manifest with {rows:.0} Immich-shaped paths (45% storage-template originals \
         `library/{{user}}/{{yyyy}}/{{yyyy-mm-dd}}/IMG_nnnn.jpg`, 15% their `.xmp` sidecars, \
         30% `upload/{{user}}/{{ab}}/{{cd}}/{{asset}}.jpg|heic|mp4`, 10% profile pictures and \
         database dumps), then takes the snapshot that gets uploaded (`Manifest::snapshot`). \
         Bytes per file is the snapshot's size over its rows; the seed documents ~252 bytes \
         per file for its schema (path, hex SHA-256, size, archived flag).\n"
    );
    body.push_str(
        "| rows | mean path (bytes) | snapshot (bytes) | ours bytes / file | seed bytes / file | ours / seed |\n",
    );
    body.push_str(
        "|-----:|------------------:|-----------------:|------------------:|------------------:|------------:|\n",
    );
    let _ = writeln!(
        body,
        "| {rows:.0} | {path_bytes:.1} | {snapshot_bytes:.0} | {per_file:.1} | \
         {SEED_BYTES_PER_FILE:.0} | {:.2} |",
        per_file / SEED_BYTES_PER_FILE
    );
    let _ = writeln!(
        body,
        "\nPer row the `files` table (`WITHOUT ROWID`, keyed by `file_path`) stores the path, \
         SHA-256 (32-byte BLOB), SHA-1 (20-byte BLOB, what Immich records), CRC32C, size, \
         mtime in nanoseconds and the archived flag; `generation` and `object_key` are NULL \
         unless the store has generations or the object is not `library/{{file_path}}`. {} \
         The working database plus WAL was {:.1} MiB (informational; it is not uploaded).",
        if index_per_file >= 0.5 {
            format!(
                "The `files_by_content` index (first 8 bytes of the SHA-256, plus the path it \
                 points to) accounts for {index_per_file:.1} of the {per_file:.1} bytes per file."
            )
        } else {
            "The snapshot carries no `files_by_content` index; the working copy rebuilds it."
                .to_owned()
        },
        working_bytes / MIB
    );
    Ok(Section {
        title: "Manifest size",
        body,
    })
}

const MIB: f64 = 1024.0 * 1024.0;

/// What follows `name ` on the first line that starts with it.
fn rest_of_line<'a>(output: &'a str, name: &str) -> Option<&'a str> {
    output.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?.strip_prefix(' ')?.trim();
        (!rest.is_empty()).then_some(rest)
    })
}

/// The number after `name ` on the first line that starts with it.
fn parse_field(output: &str, name: &str) -> Option<f64> {
    output.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        if words.next()? != name {
            return None;
        }
        words.next()?.parse().ok()
    })
}

/// Lines of the form `<algorithm> <MB/s>` (a trailing `MB/s` unit is tolerated); other
/// lines are ignored.
fn parse_ours(output: &str) -> Vec<(String, f64)> {
    output
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let name = words.next()?;
            let value: f64 = words.next()?.parse().ok()?;
            match words.next() {
                None | Some("MB/s") => Some((name.to_owned(), value)),
                Some(_) => None,
            }
        })
        .collect()
}

/// `openssl speed` for one digest on 1 MiB blocks, in MB/s.
fn openssl_speed(algorithm: &str) -> Result<f64> {
    let output = cmd(
        "openssl",
        [
            "speed", "-evp", algorithm, "-bytes", "1048576", "-seconds", "3",
        ],
    )
    .read()?;
    parse_openssl(&output, algorithm)
        .with_context(|| format!("no `{algorithm} <n>k` result line in openssl's output"))
}

/// The result table's last line for `algorithm`, e.g. `sha256  1381227.70k`, holds
/// thousands of bytes per second; returns MB/s (10^6 bytes).
fn parse_openssl(output: &str, algorithm: &str) -> Option<f64> {
    let line = output.lines().rev().find(|line| {
        line.split_whitespace()
            .next()
            .is_some_and(|first| first.eq_ignore_ascii_case(algorithm))
    })?;
    let value = line.split_whitespace().last()?.strip_suffix('k')?;
    let kilobytes_per_sec: f64 = value.parse().ok()?;
    Some(kilobytes_per_sec / 1000.0)
}

fn cpu_model() -> Option<String> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let model = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name")?.split_once(':'))?
        .1
        .trim()
        .to_owned();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    Some(format!("{model} ({cores} cores)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_openssl_speed_output() {
        let output = "version: 3.0.19\n\
            CPUINFO: OPENSSL_ia32cap=0xfffa\n\
            The 'numbers' are in 1000s of bytes per second processed.\n\
            type        1048576 bytes\n\
            sha256         1381227.70k\n";
        let mbs = parse_openssl(output, "sha256").unwrap();
        assert!((mbs - 1381.2277).abs() < 1e-6, "{mbs}");
        assert_eq!(parse_openssl(output, "sha1"), None);
        assert!(parse_openssl("SHA1  2000.00k\n", "sha1").is_some());
    }

    #[test]
    fn parses_our_example_output() {
        let output = "sha256 1234.5\nsha1 2000\nwarming up...\ncrc32c 9000.1 MB/s\ncombined 800\n";
        let parsed = parse_ours(output);
        let names: Vec<_> = parsed.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["sha256", "sha1", "crc32c", "combined"]);
        assert_eq!(parsed[2].1, 9000.1);
    }

    #[test]
    fn parses_counts_and_fields() {
        assert_eq!(
            parse_counts("10000,1_000_000").unwrap(),
            [10_000, 1_000_000]
        );
        assert!(parse_counts("10,0").is_err());
        assert!(parse_counts("10,,20").is_err());
        let out = "rows 200000\navg_path_bytes 71.5\nbytes_per_file 180.2\n";
        assert_eq!(parse_field(out, "avg_path_bytes"), Some(71.5));
        assert_eq!(parse_field(out, "rows"), Some(200_000.0));
        assert_eq!(parse_field(out, "bytes"), None);
    }

    #[test]
    fn replaces_only_its_section() {
        let doc = "# Benchmarks\n\nintro\n\n## Hashing\n\nold\ntable\n\n## Upload\n\nkeep me\n";
        let new = replace_section(doc, "Hashing", "new body\n");
        assert_eq!(
            new,
            "# Benchmarks\n\nintro\n\n## Hashing\n\nnew body\n\n## Upload\n\nkeep me\n"
        );
        let appended = replace_section("# Benchmarks\n", "Upload", "x");
        assert_eq!(appended, "# Benchmarks\n\n## Upload\n\nx\n");
        let last = replace_section("# B\n\n## Hashing\n\nold\n", "Hashing", "x");
        assert_eq!(last, "# B\n\n## Hashing\n\nx\n");
    }
}
