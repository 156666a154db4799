//! The `pgdump` bench: our database dump (pg_dump → multi-threaded gzip → storage)
//! against `pg_dump … | gzip > file` on the same database.
//!
//! It runs imb-pgdump's `dump_bench` example (release build), which starts a scratch
//! PostgreSQL cluster, loads a few hundred MB of Immich-shaped tables (300 MB by
//! default, times `--scale`), and times both sides, best of several runs after a
//! warm-up; this module reads the example's `key value` lines and writes the table.

use std::fmt::Write as _;

use anyhow::{Context, Result};

use super::{Options, Section, cpu_model, parse_field, rest_of_line};
use crate::cmd::cmd;

/// Database size at scale 1, in MB (10^6 bytes).
const DEFAULT_MB: f64 = 300.0;
/// Timed runs per side after the warm-up.
const RUNS: &str = "3";

/// `cargo xtask bench pgdump [--scale F]`.
pub(super) fn run(options: &Options) -> Result<Section> {
    let mb = (DEFAULT_MB * options.scale.unwrap_or(1.0)).round().max(1.0);
    let mb = format!("{mb:.0}");
    let out = cmd(
        "cargo",
        [
            "run",
            "--release",
            "-p",
            "imb-pgdump",
            "--example",
            "dump_bench",
            "--",
            "--mb",
            &mb,
            "--runs",
            RUNS,
        ],
    )
    .read()?;
    eprint!("{out}");
    let field = |name: &str| {
        parse_field(&out, name)
            .with_context(|| format!("the bench example printed no `{name} <n>` line"))
    };
    let ours_s = field("ours_s")?;
    let pipe_s = field("pipe_s")?;
    let ours_cpu = field("ours_cpu_s")?;
    let pipe_cpu = field("pipe_cpu_s")?;
    let ours_bytes = field("ours_bytes")?;
    let pipe_bytes = field("pipe_bytes")?;
    let sql_bytes = field("sql_bytes")?;
    let db_bytes = field("db_bytes")?;
    let assets = field("assets")?;
    let threads = field("threads")?;
    let level = field("level")?;
    let ours_plain = field("ours_gunzip_bytes")?;
    let pipe_plain = field("pipe_gunzip_bytes")?;
    let ours_machine = field("ours_machine_s")?;
    let pipe_machine = field("pipe_machine_s")?;
    let pg_dump = rest_of_line(&out, "pg_dump_version").unwrap_or("pg_dump");

    let mut body = String::new();
    let _ = writeln!(
        body,
        "`cargo xtask bench pgdump`: imb-pgdump's `dump_bench` example (release build) loads \
         Immich-shaped tables (users, asset with paths and SHA-1 checksums, asset_exif, \
         album, album_asset, version_history; {assets:.0} assets) into a scratch PostgreSQL \
         cluster, {:.0} MB on disk with indexes (`pg_database_size`), and dumps it with \
         {pg_dump} both ways: ours is `imb_pgdump::dump` (`pg_dump --clean --if-exists` → \
         gzip level {level:.0} on {threads:.0} compression threads, one standard gzip member → \
         `LocalDir` store, fsync off), the reference `pg_dump --clean --if-exists … | gzip > \
         file` (gzip's default level 6, one thread), same pg_dump and connection. Best of \
         {RUNS} runs each after a warm-up, alternating; time is wall-clock, CPU is the \
         process's and its children's user + system seconds (our compression threads, \
         pg_dump, gzip), machine CPU the busy seconds of all cores (`/proc/stat`), which \
         adds the PostgreSQL server's backend (and anything else running). SQL MB/s is \
         the {:.1} MB (10^6 bytes) of SQL \
         pg_dump writes over the time. {} Compression threads: {threads:.0}, on {}.\n",
        db_bytes / 1e6,
        sql_bytes / 1e6,
        if (ours_plain - pipe_plain).abs() < 0.5 && (ours_plain - sql_bytes).abs() < 0.5 {
            format!(
                "Both warm-up outputs decompress with the system's `gzip -dc` to the same \
                 {ours_plain:.0} bytes, the SQL size our dump reports."
            )
        } else {
            format!(
                "MISMATCH: the warm-up outputs decompress with `gzip -dc` to {ours_plain:.0} \
                 bytes (ours) and {pipe_plain:.0} (pipeline); our dump reported \
                 {sql_bytes:.0} bytes of SQL."
            )
        },
        cpu_model().unwrap_or_else(|| "an unknown CPU".to_owned()),
    );
    body.push_str(
        "| | time (s) | SQL MB/s | CPU (s) | machine CPU (s) | compressed (MB) | compressed / SQL |\n",
    );
    body.push_str(
        "|-|---------:|---------:|--------:|----------------:|----------------:|-----------------:|\n",
    );
    for (name, secs, cpu, machine, bytes) in [
        (
            "ours: dump → gzip → store",
            ours_s,
            ours_cpu,
            ours_machine,
            ours_bytes,
        ),
        (
            "`pg_dump \\| gzip > file`",
            pipe_s,
            pipe_cpu,
            pipe_machine,
            pipe_bytes,
        ),
    ] {
        let _ = writeln!(
            body,
            "| {name} | {secs:.2} | {:.1} | {cpu:.2} | {machine:.2} | {:.1} | {:.3} |",
            sql_bytes / 1e6 / secs,
            bytes / 1e6,
            bytes / sql_bytes,
        );
    }
    let _ = writeln!(
        body,
        "| **ours / pipe** | {:.2} | {:.2} | {:.2} | {:.2} | {:.3} | |",
        ours_s / pipe_s,
        pipe_s / ours_s,
        ours_cpu / pipe_cpu,
        ours_machine / pipe_machine,
        ours_bytes / pipe_bytes,
    );
    Ok(Section {
        title: "Database dump vs pg_dump | gzip",
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_text_fields() {
        let out = "ours_s 1.5\npg_dump_version pg_dump (PostgreSQL) 15.18\n";
        assert_eq!(
            rest_of_line(out, "pg_dump_version"),
            Some("pg_dump (PostgreSQL) 15.18")
        );
        assert_eq!(rest_of_line(out, "pg"), None);
        assert_eq!(parse_field(out, "ours_s"), Some(1.5));
    }
}
