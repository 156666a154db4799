//! The `devicesync` bench: `device-sync` against `@immich/cli upload --recursive
//! --album` on the same folder trees, each against a fresh test Immich server.
//!
//! It installs the CLI and a Node 22 as `cargo xtask test` does, builds `device-sync`
//! in release, and runs imb-devicesync's `sync_bench` example, which generates the trees,
//! runs both tools (first run, then a no-change rerun) under GNU time and checks the
//! server's record after every run; this module reads its `key value` lines and
//! writes the table.

use std::fmt::Write as _;

use anyhow::{Context, Result};

use super::{Options, Section, cpu_model, parse_field, rest_of_line};
use crate::cmd::cmd;
use crate::prepare::node_cli;
use crate::project_root;

/// Rounds; each figure is the best of them.
const RUNS: &str = "3";
/// Uploads in flight, the same for both tools (the CLI's default is 1, ours 4).
const CONCURRENCY: &str = "4";
/// The example's figures per tree and tool, in table order.
const FIGURES: [&str; 7] = [
    "first_wall_s",
    "first_cpu_s",
    "first_rss_mib",
    "first_server_cpu_s",
    "rerun_wall_s",
    "rerun_cpu_s",
    "rerun_rss_mib",
];

/// `cargo xtask bench devicesync [--scale F]`.
pub(super) fn run(options: &Options) -> Result<Section> {
    let (node, cli) = node_cli()?;
    cmd("cargo", ["build", "--release", "-p", "device-sync"]).run()?;
    let device_sync = project_root().join("target/release/device-sync");
    let scale = options.scale.unwrap_or(1.0).to_string();
    let out = super::run_example(
        "imb-devicesync",
        "sync_bench",
        &[
            "--runs",
            RUNS,
            "--concurrency",
            CONCURRENCY,
            "--scale",
            &scale,
        ],
        &[
            ("--device-sync", &device_sync),
            ("--node", &node),
            ("--cli", &cli),
        ],
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
    let node_version = rest_of_line(out, "node_version").unwrap_or("?");
    let mut body = String::new();
    let _ = writeln!(
        body,
        "`cargo xtask bench devicesync`: imb-devicesync's `sync_bench` example generates two \
         device trees, `photos` (phone-sized JPEGs of 1–4 MB, every 20th file a 20 MB \
         video, in 6 albums) and `small` (4–40 KB files in 40 albums, where per-file costs \
         dominate), all distinct content. On each, `device-sync sync --album-sync` (release \
         build, fresh state directory) and `immich upload --recursive --album` (@immich/cli \
         {cli_version} on Node {node_version}, server and key from the environment) each \
         make a first run and then a no-change rerun against their own fresh test Immich \
         server (imb-immich's `TestServer`, in the example's process, on 127.0.0.1), both \
         with {CONCURRENCY} uploads in flight. Best of {} rounds, alternating tools. Wall \
         time as measured; CPU is the client's user + system seconds and peak RSS its max \
         resident set, from GNU time; server CPU is the test server's own during the run. \
         After every run the server's record was checked: each first run stored every file \
         once (count, bytes and distinct SHA-1s) and filled every album; each rerun stored \
         nothing. Machine: {}.\n",
        field("runs")?,
        cpu_model().unwrap_or_else(|| "an unknown CPU".to_owned()),
    );
    body.push_str(
        "| tree | tool | first run wall (s) | CPU (s) | peak RSS (MiB) | server CPU (s) | rerun wall (s) | rerun CPU (s) | rerun peak RSS (MiB) |\n",
    );
    body.push_str(
        "|------|------|-------------------:|--------:|---------------:|---------------:|---------------:|--------------:|---------------------:|\n",
    );
    let mut summary = Vec::new();
    for tree in ["photos", "small"] {
        let files = field(&format!("{tree}_files"))?;
        let bytes = field(&format!("{tree}_bytes"))?;
        let mut rows = Vec::new();
        for tool in ["ours", "cli"] {
            let mut row = Vec::new();
            for figure in FIGURES {
                row.push(field(&format!("{tree}_{tool}_{figure}"))?);
            }
            rows.push(row);
        }
        let label = format!("{tree} ({files:.0} files, {:.0} MB)", bytes / 1e6);
        for (tool, row) in [("device-sync", &rows[0]), ("@immich/cli", &rows[1])] {
            let _ = writeln!(
                body,
                "| {label} | {tool} | {:.2} | {:.2} | {:.1} | {:.2} | {:.2} | {:.2} | {:.1} |",
                row[0], row[1], row[2], row[3], row[4], row[5], row[6]
            );
        }
        let ratio: Vec<String> = rows[0]
            .iter()
            .zip(&rows[1])
            .map(|(ours, cli)| {
                if *cli > 0.0 {
                    format!("{:.2}", ours / cli)
                } else {
                    "–".to_owned()
                }
            })
            .collect();
        let _ = writeln!(
            body,
            "| {label} | **device-sync / cli** | {} |",
            ratio.join(" | ")
        );
        summary.push(format!(
            "on `{tree}` the first run took {}× the CLI's wall time with {}× its peak RSS, \
             the rerun {}× and {}×",
            ratio[0], ratio[2], ratio[4], ratio[6]
        ));
    }
    let _ = writeln!(
        body,
        "\nRatios (device-sync / CLI): {}. The rerun gap is by design: device-sync's state \
         database knows each file by path, size and mtime and that it is on the server, so \
         a rerun lists the folders, reads no file and uploads nothing, while the CLI (which \
         keeps no state) reads and hashes every file again and asks the server about all \
         of them. On first runs both tools hash each file once and send the same bytes; \
         the CLI spends more CPU per file doing it. The test server shares the 2 cores \
         (its CPU is in the table), so first-run wall times are partly the server's; \
         client CPU and peak RSS are the figures that carry over to a real server.",
        summary.join("; ")
    );
    Ok(Section {
        title: "Device sync vs @immich/cli upload",
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_figure_is_named() {
        let err = report("runs 3\nphotos_files 10\n")
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("the bench example printed no `photos_bytes <n>` line")
        );
    }

    #[test]
    fn ratios_divide_ours_by_the_cli() {
        let mut out = String::from("runs 1\ncli_version 3.2.2\nnode_version v22.0.0\n");
        for tree in ["photos", "small"] {
            let _ = writeln!(out, "{tree}_files 10\n{tree}_bytes 2000000");
            for (tool, scale) in [("ours", 1.0), ("cli", 4.0)] {
                for figure in FIGURES {
                    let _ = writeln!(out, "{tree}_{tool}_{figure} {}", scale * 2.0);
                }
            }
        }
        let section = report(&out).expect("report");
        assert!(
            section
                .body
                .contains("| photos (10 files, 2 MB) | **device-sync / cli** | 0.25 | 0.25 |"),
            "{}",
            section.body
        );
        assert!(section.body.contains("@immich/cli 3.2.2 on Node v22.0.0"));
    }
}
