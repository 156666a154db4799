//! Unit tests for the shared settings layering and progress counts.

use std::time::Duration;

use super::*;

/// A settings struct as the binaries write theirs.
#[derive(Debug, Default, clap::Parser, serde::Deserialize, conflate::Merge)]
#[serde(deny_unknown_fields, default)]
#[merge(strategy = conflate::option::overwrite_none)]
struct Layered {
    #[arg(long)]
    #[serde(skip)]
    config: Option<std::path::PathBuf>,
    #[arg(long)]
    workers: Option<u32>,
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    checksum: Option<bool>,
    #[arg(long)]
    #[merge(skip)]
    no_checksum: bool,
    #[arg(long, value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde")]
    poll: Option<Duration>,
}

impl Layer for Layered {
    fn config(&self) -> Option<&std::path::Path> {
        self.config.as_deref()
    }
    fn fold_negations(&mut self) {
        negate(self.no_checksum, &mut self.checksum);
    }
}

fn layered_from(file: &str, args: &[&str]) -> Layered {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, file).unwrap();
    let mut all = vec!["t", "--config", path.to_str().unwrap()];
    all.extend_from_slice(args);
    layered(parse_from::<Layered, _, _>(all).unwrap()).unwrap()
}

#[test]
fn the_command_line_beats_the_file_key_by_key() {
    let file = "workers = 8\nchecksum = true\npoll = '1m 5s'\n";
    let l = layered_from(file, &[]);
    assert_eq!(
        (l.workers, l.checksum, l.poll),
        (Some(8), Some(true), Some(Duration::from_secs(65)))
    );
    let l = layered_from(file, &["--workers", "2", "--poll", "1s"]);
    assert_eq!((l.workers, l.checksum), (Some(2), Some(true)));
    assert_eq!(l.poll, Some(Duration::from_secs(1)));
}

/// Before one struct per binary, on/off settings were OR-ed across layers: a
/// `checksum = true` in the file could not be switched off.
#[test]
fn an_on_off_setting_in_the_file_can_be_switched_off_and_on() {
    assert_eq!(
        layered_from("checksum = true", &["--no-checksum"]).checksum,
        Some(false)
    );
    assert_eq!(
        layered_from("checksum = true", &["--checksum=false"]).checksum,
        Some(false)
    );
    assert_eq!(
        layered_from("checksum = false", &["--checksum"]).checksum,
        Some(true)
    );
    // The last of --X and --no-X wins, as in other tools.
    let l = layered_from("", &["--no-checksum", "--checksum"]);
    assert_eq!(l.checksum, Some(true));
    let l = layered_from("", &["--checksum", "--no-checksum"]);
    assert_eq!(l.checksum, Some(false));
    assert_eq!(layered_from("", &[]).checksum, None);
}

#[test]
fn a_bad_duration_in_the_file_names_the_key() {
    use clap::Parser;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, "poll = 'soon'").unwrap();
    let cli = Layered::try_parse_from(["t", "--config", path.to_str().unwrap()]).unwrap();
    let err = layered(cli).unwrap_err().to_string();
    assert!(err.contains("c.toml") && err.contains("poll"), "{err}");
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    workers: Option<u32>,
}

#[test]
fn config_files_name_themselves_and_unknown_keys() {
    let none: File = read_config(None).unwrap();
    assert_eq!(none.workers, None);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, "workers = 3\n").unwrap();
    assert_eq!(read_config::<File>(Some(&path)).unwrap().workers, Some(3));
    std::fs::write(&path, "wrokers = 3\n").unwrap();
    let err = read_config::<File>(Some(&path)).unwrap_err().to_string();
    assert!(err.contains("c.toml") && err.contains("wrokers"), "{err}");
    let err = read_config::<File>(Some(&dir.path().join("missing.toml")))
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing.toml"), "{err}");
}

#[test]
fn counters_make_the_seed_line() {
    let c = Counters::default();
    c.add(1, 3_000_000);
    c.add(1, 2_100_000);
    c.done(2_400_000);
    assert_eq!(c.line(), "1 of 2 • 2.40 MB / 5.10 MB");
    c.reset(3, 1000);
    assert_eq!(c.line(), "0 of 3 • 0 B / 1.00 kB");
}

/// A library error that prints its source and also reports it as the source.
#[derive(Debug, thiserror::Error)]
#[error("source /tmp/nope: {0}")]
struct Repeats(#[source] std::io::Error);

#[test]
fn an_error_chain_says_each_cause_once() {
    let io = std::io::Error::new(
        std::io::ErrorKind::NotFound,
        "No such file or directory (os error 2)",
    );
    let e = anyhow::Error::new(Repeats(io));
    assert_eq!(
        format!("{e:#}").matches("No such file").count(),
        2,
        "the bug this fixes"
    );
    assert_eq!(
        error_chain(&e),
        "source /tmp/nope: No such file or directory (os error 2)"
    );
    // Context that adds something keeps it, once each.
    let e = e.context("backup");
    assert_eq!(
        error_chain(&e),
        "backup: source /tmp/nope: No such file or directory (os error 2)"
    );
}
