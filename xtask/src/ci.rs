//! The `ci` and `test` tasks.
//!
//! `ci` is what `.ci/run` calls: format check, clippy, the `test` task, then cargo-deny.
//! Each step is timed and a summary is printed at the end, also when a step fails.
//! `test` is `ci` without the lint steps; environment setup (emulators, Postgres) goes
//! in [`prepare`] so both tasks get it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::cmd::cmd;

/// `cargo xtask ci`.
pub(crate) fn ci() -> Result<()> {
    let mut steps = Steps::new("ci");
    let result = ci_steps(&mut steps);
    steps.summary();
    result
}

fn ci_steps(steps: &mut Steps) -> Result<()> {
    steps.run("fmt", || cargo(&["fmt", "--all", "--", "--check"]))?;
    steps.run("clippy", || {
        cargo(&[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ])
    })?;
    test_steps(steps)?;
    deny_steps(steps)
}

/// `cargo xtask test`.
pub(crate) fn test() -> Result<()> {
    let mut steps = Steps::new("test");
    let result = test_steps(&mut steps);
    steps.summary();
    result
}

fn test_steps(steps: &mut Steps) -> Result<()> {
    steps.run("prepare", crate::prepare::prepare)?;
    // End-to-end tests run the real binaries from target/debug, so build them first:
    // `cargo test` alone only builds the binaries of packages that have integration tests.
    steps.run("build bins", || cargo(&["build", "--workspace", "--bins"]))?;
    // Plain `cargo test --workspace` (not `--all-targets`) so doctests run too.
    steps.run("test", || cargo(&["test", "--workspace"]))
}

/// cargo-deny: bans, licenses and sources always; advisories only with a local database.
fn deny_steps(steps: &mut Steps) -> Result<()> {
    if !cmd("cargo", ["deny", "--version"]).succeeds() {
        steps.run("install cargo-deny", || {
            eprintln!("cargo-deny is not installed; compiling it from crates.io (takes minutes)");
            cargo(&["install", "cargo-deny", "--locked"])
        })?;
    }
    steps.run("deny", || {
        cargo(&[
            "deny",
            "--all-features",
            "check",
            "bans",
            "licenses",
            "sources",
        ])
    })?;
    match advisory_db() {
        Some(db) => steps.run("deny advisories", || {
            eprintln!("using the local advisory database in {}", db.display());
            // cargo-deny 0.20 replaced `check --disable-fetch` with the global `--offline`.
            cargo(&["deny", "--all-features", "--offline", "check", "advisories"])
        }),
        None => {
            steps.skip(
                "deny advisories",
                "no local advisory database in $CARGO_HOME/advisory-dbs and no network \
                 in CI to fetch one; `cargo deny fetch db` makes a local copy",
            );
            Ok(())
        }
    }
}

/// The local RustSec database cargo-deny reads with `--offline`, if there is one.
///
/// cargo-deny clones each database into `$CARGO_HOME/advisory-dbs/<name>-<hash>/`
/// (our deny.toml keeps the default `db-path`). Any non-empty directory there counts;
/// cargo-deny itself reports a database that is stale or for another URL.
fn advisory_db() -> Option<PathBuf> {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")))?;
    let dbs = cargo_home.join("advisory-dbs");
    let has_db = std::fs::read_dir(&dbs)
        .ok()?
        .filter_map(Result::ok)
        .any(|entry| entry.path().join(".git").exists() || entry.path().join("crates").is_dir());
    has_db.then_some(dbs)
}

fn cargo(args: &[&str]) -> Result<()> {
    cmd("cargo", args).run()
}

/// Runs named steps in order, timing each, and prints a summary.
pub(crate) struct Steps {
    task: &'static str,
    done: Vec<(String, Outcome)>,
    started: Instant,
}

enum Outcome {
    Passed(Duration),
    Failed(Duration),
    Skipped(String),
}

impl Steps {
    pub(crate) fn new(task: &'static str) -> Self {
        Self {
            task,
            done: Vec::new(),
            started: Instant::now(),
        }
    }

    /// Runs one step, printing a header before it and a timing line after it.
    pub(crate) fn run(&mut self, name: &str, step: impl FnOnce() -> Result<()>) -> Result<()> {
        eprintln!("\n==> [{}] {name}", self.task);
        let start = Instant::now();
        let result = step();
        let elapsed = start.elapsed();
        let (word, outcome) = match &result {
            Ok(()) => ("ok", Outcome::Passed(elapsed)),
            Err(_) => ("FAILED", Outcome::Failed(elapsed)),
        };
        eprintln!("<== [{}] {name}: {word} in {}", self.task, secs(elapsed));
        self.done.push((name.to_owned(), outcome));
        result.map_err(|err| err.context(format!("step `{name}` failed")))
    }

    /// Records a step that was deliberately not run, and why.
    pub(crate) fn skip(&mut self, name: &str, why: &str) {
        eprintln!("\n==> [{}] {name}: skipped: {why}", self.task);
        self.done
            .push((name.to_owned(), Outcome::Skipped(why.to_owned())));
    }

    /// Prints one line per step and the total time.
    pub(crate) fn summary(&self) {
        let width = self
            .done
            .iter()
            .map(|(name, _)| name.len())
            .max()
            .unwrap_or(0);
        eprintln!("\n[{}] summary:", self.task);
        for (name, outcome) in &self.done {
            let line = match outcome {
                Outcome::Passed(t) => format!("ok       {:>8}", secs(*t)),
                Outcome::Failed(t) => format!("FAILED   {:>8}", secs(*t)),
                Outcome::Skipped(why) => format!("skipped  ({why})"),
            };
            eprintln!("  {name:<width$}  {line}");
        }
        let failed = self
            .done
            .iter()
            .any(|(_, outcome)| matches!(outcome, Outcome::Failed(_)));
        eprintln!(
            "[{}] {} in {}",
            self.task,
            if failed { "FAILED" } else { "passed" },
            secs(self.started.elapsed())
        );
    }
}

fn secs(duration: Duration) -> String {
    format!("{:.1}s", duration.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_stop_at_the_first_failure_and_name_it() {
        let mut steps = Steps::new("t");
        steps.run("one", || Ok(())).unwrap();
        let err = steps
            .run("two", || Err(anyhow::anyhow!("boom")))
            .unwrap_err();
        assert_eq!(format!("{err:#}"), "step `two` failed: boom");
        steps.skip("three", "because");
        assert!(matches!(steps.done[0].1, Outcome::Passed(_)));
        assert!(matches!(steps.done[1].1, Outcome::Failed(_)));
        assert!(matches!(steps.done[2].1, Outcome::Skipped(_)));
        steps.summary();
    }
}
