//! Unit tests for the shared settings layering and progress counts.

use std::time::Duration;

use super::*;

#[test]
fn command_line_beats_the_file() {
    let d = duration_setting("poll", Some(Duration::from_secs(1)), Some("5s".into())).unwrap();
    assert_eq!(d, Some(Duration::from_secs(1)));
    let d = duration_setting("poll", None, Some("1m 5s".into())).unwrap();
    assert_eq!(d, Some(Duration::from_secs(65)));
    assert_eq!(duration_setting("poll", None, None).unwrap(), None);
    let err = duration_setting("poll", None, Some("soon".into())).unwrap_err();
    assert!(err.to_string().starts_with("poll \"soon\""), "{err}");

    assert_eq!(list_setting(vec![1], Some(vec![2, 3])), [1]);
    assert_eq!(list_setting(vec![], Some(vec![2, 3])), [2, 3]);
    assert!(list_setting(Vec::<u8>::new(), None).is_empty());
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
