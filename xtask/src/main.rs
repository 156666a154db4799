//! `cargo xtask`: the project's build system, written in Rust so it runs wherever cargo does.
//!
//! `.cargo/config.toml` aliases `cargo xtask` to `cargo run --package xtask --bin xtask --`.
//! Each task lives in its own module; tools are started only through [`cmd::cmd`].
//! The tidy checks (`tidy.rs`) are an ordinary `#[test]`, so `cargo test` enforces them.
//! Run `cargo xtask` with no arguments for the task list.

// This is a command-line tool: printing is its job.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod args;
mod bench;
mod ci;
mod cmd;
mod demo;
mod immich;
mod prepare;
mod sample;
#[cfg(test)]
mod tidy;

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Result, bail};

use crate::args::Args;

const TASKS: &str = "\
Usage: cargo xtask <task> [options]

Tasks:
  ci                  fmt check, clippy, the test task, cargo-deny: what .ci/run calls
  test                build the binaries, then cargo test --workspace (tidy included)
  bench [NAME] [--write] [--files N,M,...] [--scale F] [--keep]
                      run benchmarks; NAME is one of:
                        hash      imb-hash throughput vs openssl speed
                        manifest  uploaded manifest bytes per file vs the seed's
                        rss       backup peak memory as file counts grow (--files)
                        gcs       upload to fake-gcs-server vs rclone (--scale: data
                                  size factor; --keep: leave target/bench-gcs)
                        pgdump    database dump vs pg_dump | gzip (--scale)
                        devicesync  device-sync vs @immich/cli upload, test server (--scale)
                        drill     the restore drill's phases, and device-sync vs
                                  @immich/cli, on the real Immich server (--scale)
                        wan       uploads through added latency vs rclone (--scale)
                      --write replaces the matching section of docs/benchmarks.md
  sample --out DIR [--files N] [--seed S] [--force]
                      generate a deterministic Immich-shaped library (default 200 files)
  demo                the whole story on a sample library in target/demo: back up, change a
                      photo, back up again, verify, restore, compare
  dist                the release build of the three binaries, into target/release (the
                      Dockerfile runs the same command)
  man [--out DIR]     man pages for the three binaries (default target/man)
  immich              build the real Immich server v3.1.0 from ../shared/third_party into
                      target/tools (idempotent; `test` and `ci` run it)
  help                print this list
";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let mut args = Args::from_env();
    let Some(task) = args.next_positional() else {
        print!("{TASKS}");
        return Ok(());
    };
    match task.as_str() {
        "ci" => {
            args.finish()?;
            ci::ci()
        }
        "test" => {
            args.finish()?;
            ci::test()
        }
        "bench" => bench::run(args),
        "sample" => sample::run(args),
        "demo" => {
            args.finish()?;
            demo::run()
        }
        "dist" => {
            args.finish()?;
            dist()
        }
        "man" => man(args),
        "immich" => {
            args.finish()?;
            immich::immich()
        }
        "help" | "-h" | "--help" => {
            print!("{TASKS}");
            Ok(())
        }
        other => {
            eprint!("{TASKS}");
            bail!("unknown task `{other}`")
        }
    }
}

/// The release build, word for word what the Dockerfile's build stage runs (tested),
/// so an image can differ from `cargo xtask dist` only in its base and PostgreSQL.
const RELEASE_BUILD: &[&str] = &[
    "build",
    "--release",
    "--locked",
    "--bin",
    "backup",
    "--bin",
    "restore-verify",
    "--bin",
    "device-sync",
];

/// `cargo xtask dist`.
fn dist() -> Result<()> {
    cmd::cmd("cargo", RELEASE_BUILD).run()?;
    for bin in ["backup", "restore-verify", "device-sync"] {
        println!(
            "{}",
            project_root().join("target/release").join(bin).display()
        );
    }
    Ok(())
}

/// `cargo xtask man`: each binary renders its own page (`PROGRAM man`).
fn man(mut args: Args) -> Result<()> {
    let out: std::path::PathBuf = args
        .value("--out")?
        .unwrap_or_else(|| project_root().join("target/man"));
    args.finish()?;
    cmd::cmd("cargo", RELEASE_BUILD).run()?;
    std::fs::create_dir_all(&out)?;
    for bin in ["backup", "restore-verify", "device-sync"] {
        let exe = project_root().join("target/release").join(bin);
        let page = cmd::cmd(exe.to_str().unwrap_or(bin), ["man"]).read()?;
        let path = out.join(format!("{bin}.1"));
        std::fs::write(&path, page)?;
        println!("{}", path.display());
    }
    println!(
        "install: cp {}/*.1 /usr/local/share/man/man1/",
        out.display()
    );
    Ok(())
}

/// The workspace root: the parent of this crate's directory.
pub(crate) fn project_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_dockerfile_builds_what_dist_builds() {
        let dockerfile = std::fs::read_to_string(super::project_root().join("Dockerfile")).unwrap();
        let line = format!("RUN cargo {}", super::RELEASE_BUILD.join(" "));
        let runs: Vec<&str> = dockerfile
            .lines()
            .filter(|l| l.contains("cargo build"))
            .collect();
        assert_eq!(runs, [line.as_str()], "the Dockerfile's build line");
    }
}
