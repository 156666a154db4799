//! The `drill` bench: the restore drill's phases and device-sync against
//! `@immich/cli` on the real Immich server v3.1.0.
//!
//! It builds the real server (`cargo xtask immich`) and the release binaries,
//! installs the CLI as `cargo xtask test` does, and runs imb-e2e's `drill_bench`
//! example, which generates a tree of real photos, runs both tools against their own
//! fresh servers and then the drill; this module reads its `key value` lines and
//! writes the tables.

use std::fmt::Write as _;

use anyhow::{Context, Result};

use super::{Options, Section, cpu_model, parse_field, rest_of_line};
use crate::cmd::cmd;
use crate::prepare::node_cli;
use crate::project_root;

/// Uploads in flight, the same for both tools.
const CONCURRENCY: &str = "4";

/// `cargo xtask bench drill [--scale F]`.
pub(super) fn run(options: &Options) -> Result<Section> {
    crate::immich::immich()?;
    let (node, cli) = node_cli()?;
    cmd("cargo", ["build", "--release", "--bins"]).run()?;
    let bins = project_root().join("target/release");
    let scale = options.scale.unwrap_or(1.0).to_string();
    let out = super::run_example(
        "imb-e2e",
        "drill_bench",
        &["--concurrency", CONCURRENCY, "--scale", &scale],
        &[("--bin-dir", &bins), ("--node", &node), ("--cli", &cli)],
    )?;
    report(&out)
}

/// The section from the example's output.
fn report(out: &str) -> Result<Section> {
    let field = |name: &str| {
        parse_field(out, name)
            .with_context(|| format!("the bench example printed no `{name} <n>` line"))
    };
    let cli_version = rest_of_line(out, "cli_version").unwrap_or("?");
    let mut body = String::new();
    let _ = writeln!(
        body,
        "`cargo xtask bench drill`: imb-e2e's `drill_bench` example against the real Immich \
         server v3.1.0 (built from `../shared/third_party` by `cargo xtask immich`, its own \
         scratch PostgreSQL with pgvector and Redis, machine learning off), on 127.0.0.1. \
         The tree: {:.0} files, {:.1} MB: 1280×720 JPEGs made by ffmpeg and one 2-second \
         video per album, in {:.0} albums. Machine: {}.\n",
        field("files")?,
        field("bytes")? / 1e6,
        field("albums")?,
        cpu_model().unwrap_or_else(|| "an unknown CPU".to_owned()),
    );
    let _ = writeln!(
        body,
        "**Device sync against the real server.** `device-sync sync --album-sync` (release \
         build) and `immich upload --recursive --album` (@immich/cli {cli_version}), each \
         against its own fresh server, {} uploads in flight; a first run, then a no-change \
         rerun after the server's queues drained. CPU is the client's user + system \
         seconds and peak RSS its max resident set, from GNU time. After every run the \
         server's API showed every file once and every album; the rerun added nothing.\n",
        field("concurrency")?
    );
    body.push_str("| tool | first run wall (s) | CPU (s) | peak RSS (MiB) | rerun wall (s) | rerun CPU (s) | rerun peak RSS (MiB) |\n");
    body.push_str("|------|-------------------:|--------:|---------------:|---------------:|--------------:|---------------------:|\n");
    let figures = |tool: &str| -> Result<Vec<f64>> {
        let mut row = Vec::new();
        for pass in ["first", "rerun"] {
            for f in ["wall_s", "cpu_s", "rss_mib"] {
                row.push(field(&format!("{tool}_{pass}_{f}"))?);
            }
        }
        Ok(row)
    };
    let (ours, theirs) = (figures("ours")?, figures("cli")?);
    for (tool, r) in [("device-sync", &ours), ("@immich/cli", &theirs)] {
        let _ = writeln!(
            body,
            "| {tool} | {:.2} | {:.2} | {:.1} | {:.2} | {:.2} | {:.1} |",
            r[0], r[1], r[2], r[3], r[4], r[5]
        );
    }
    let ratio: Vec<String> = ours
        .iter()
        .zip(&theirs)
        .map(|(a, b)| {
            if *b > 0.0 {
                format!("{:.2}", a / b)
            } else {
                "–".into()
            }
        })
        .collect();
    let _ = writeln!(body, "| **device-sync / cli** | {} |", ratio.join(" | "));
    let _ = writeln!(
        body,
        "\nFirst-run wall times are the server's: on two cores the real server's upload \
         handling and the thumbnail and metadata jobs each upload starts bound both tools \
         alike. Client CPU and peak RSS are the clients' own; a rerun is device-sync's \
         state database against the CLI re-hashing every file and asking the server."
    );
    let _ = writeln!(
        body,
        "\n**The drill**, on device-sync's server after its runs: `backup` of the media \
         location and the database (Immich's `DB_*` settings, no other flag) to a local \
         directory; `restore-verify --all --no-database` (every object re-hashed); the \
         file restore (`--restore-to`); the database check and `--db-restore` into a \
         fresh cluster; a second real server's start on the restored files and database \
         (migrations, the media-location rewrite, the admin's login); `restore-verify \
         --immich-url` with the user's and the admin's keys ({:.0} assets checked, {:.0} \
         with thumbnails), of which the wait for Immich's forced thumbnail regeneration.\n",
        field("drill_assets_checked")?,
        field("drill_thumbnails_present")?,
    );
    body.push_str("| phase | wall (s) |\n|-------|---------:|\n");
    for (name, key) in [
        ("backup (files + database dump)", "drill_backup_s"),
        ("verify every object", "drill_verify_all_s"),
        ("file restore", "drill_restore_files_s"),
        (
            "database check + `--db-restore`",
            "drill_db_check_and_restore_s",
        ),
        ("second server start", "drill_server_start_s"),
        ("`--immich-url` check, in all", "drill_immich_check_s"),
        ("… of which the regeneration", "drill_regeneration_s"),
    ] {
        let _ = writeln!(body, "| {name} | {:.2} |", field(key)?);
    }
    Ok(Section {
        title: "The restore drill against the real Immich",
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_figure_is_named() {
        let err = report("files 10\nbytes 100\nalbums 4\n")
            .err()
            .map(|e| format!("{e:#}"));
        assert!(
            err.as_deref()
                .is_some_and(|e| e.contains("`concurrency <n>`")),
            "{err:?}"
        );
    }
}
