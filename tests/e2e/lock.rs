//! Backups started at the same moment against one target: the run lock lets
//! exactly one through, on GCS (with and without latency) and on a local directory.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use imb_testkit::gcs::{Emulator, Fault, FaultProxy};

use crate::util::{backup, code, library};

/// Runs `n` copies of `cmd` released together: each blocks reading a pipe that the
/// test holds open, and closing it lets all of them go at once.
fn race(n: usize, cmd: impl Fn() -> Command) -> Vec<Output> {
    let (reader, writer) = std::io::pipe().expect("pipe");
    let children: Vec<_> = (0..n)
        .map(|_| {
            let c = cmd();
            let mut sh = Command::new("sh");
            sh.arg("-c")
                .arg(r#"cat >/dev/null; exec "$0" "$@""#)
                .arg(c.get_program())
                .args(c.get_args());
            for (k, v) in c.get_envs() {
                match v {
                    Some(v) => sh.env(k, v),
                    None => sh.env_remove(k),
                };
            }
            sh.stdin(reader.try_clone().expect("dup"))
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("backup starts")
        })
        .collect();
    drop(reader);
    drop(writer); // the barrier opens
    children
        .into_iter()
        .map(|c| c.wait_with_output().expect("backup ends"))
        .collect()
}

/// Exactly one run got through while the others were starting; every other one
/// refused with exit 1 naming the holder; no run met an object another had written.
///
/// On a loaded machine a process can be so slow to start that the first runner has
/// finished and released before its lock object exists: it is then a later run,
/// not a concurrent one, and rightly goes ahead. Such a run is told apart by what
/// it found: the first runner's complete manifest (every file unchanged, nothing
/// uploaded), which a run overlapping it could not have seen.
fn assert_one_runner(round: usize, outs: &[Output]) {
    let show = |o: &Output| {
        format!(
            "exit {}: {}{}",
            code(o),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    let all: Vec<String> = outs.iter().map(show).collect();
    let summary =
        |o: &Output| -> serde_json::Value { serde_json::from_slice(&o.stdout).unwrap_or_default() };
    let came_after = |v: &serde_json::Value| {
        v["files_uploaded"] == 0 && v["files_unchanged"] == v["files_scanned"]
    };
    let runners: Vec<serde_json::Value> =
        outs.iter().filter(|o| code(o) == 0).map(summary).collect();
    let concurrent = runners.iter().filter(|v| !came_after(v)).count();
    assert_eq!(concurrent, 1, "round {round}: {all:#?}");
    for (o, s) in outs.iter().zip(&all) {
        assert!(!s.contains("already exists"), "round {round}: {s}");
        if code(o) != 0 {
            assert_eq!(code(o), 1, "round {round}: {s}");
            assert!(
                s.contains("another backup is running against this target: run "),
                "round {round}: {s}"
            );
        }
    }
}

const ROUNDS: usize = 50;
const RUNS: usize = 4;

fn gcs_rounds(endpoint: &str, src: &Path, tag: &str) {
    for round in 0..ROUNDS {
        let outs = race(RUNS, || {
            let mut c = backup();
            c.env(
                "STORAGE_EMULATOR_HOST",
                endpoint.trim_start_matches("http://"),
            )
            .env("RUST_LOG", "warn")
            .arg("--source")
            .arg(src)
            .arg("--dest")
            .arg(format!("gs://bk1/{tag}{round}"))
            .arg("--json");
            c
        });
        assert_one_runner(round, &outs);
    }
}

#[test]
fn four_backups_started_together_on_gcs_let_exactly_one_run() {
    let emu = Emulator::fake_gcs();
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("upload");
    library(&src, 3, 100);
    gcs_rounds(&emu.endpoint, &src, "plain");
}

#[test]
fn four_backups_started_together_behind_random_latency_let_exactly_one_run() {
    let emu = Emulator::fake_gcs();
    // 0–200 ms before each listing and create reaches the emulator, spread by a
    // fixed hash of the request number so a failure can be replayed.
    let proxy = FaultProxy::start(0, emu.port(), |s| {
        let listing = s.method == "GET" && s.target.contains("/o?");
        let create = s.target.starts_with("/upload/");
        if !(listing || create) {
            return Fault::Forward;
        }
        let spread = (s.n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56; // 0..=255
        Fault::Delay(std::time::Duration::from_millis(spread * 200 / 255))
    });
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("upload");
    library(&src, 3, 100);
    gcs_rounds(&proxy.endpoint(), &src, "slow");
    assert!(
        proxy
            .requests()
            .iter()
            .any(|s| s.target.starts_with("/upload/"))
    );
}

#[test]
fn four_backups_started_together_on_a_local_directory_let_exactly_one_run() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("upload");
    library(&src, 3, 100);
    for round in 0..ROUNDS {
        let dest = t.path().join(format!("dest{round}"));
        let outs = race(RUNS, || {
            let mut c = backup();
            c.env("RUST_LOG", "warn")
                .arg("--source")
                .arg(&src)
                .arg("--dest")
                .arg(&dest)
                .arg("--json");
            c
        });
        assert_one_runner(round, &outs);
    }
}

#[test]
fn four_backups_started_together_on_a_retention_locked_bucket_let_exactly_one_run() {
    let emu = Emulator::fake_gcs();
    // A bucket with a locked retention policy: no overwrite, no delete. The lock is
    // made of creates only, so it holds the same.
    let proxy = FaultProxy::start(0, emu.port(), imb_testkit::gcs::retention_locked);
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("upload");
    library(&src, 3, 100);
    gcs_rounds(&proxy.endpoint(), &src, "locked");
    assert!(
        proxy.requests().iter().any(|r| r.status == 403),
        "the lock was exercised"
    );
}
