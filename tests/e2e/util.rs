//! Helpers: locating the built binaries, making libraries, running and reading children.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A built binary from this workspace's target directory.
pub(crate) fn bin(name: &str) -> PathBuf {
    // The test executable is target/<profile>/deps/e2e-*; binaries are in target/<profile>.
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let p = dir.join(name);
    assert!(
        p.is_file(),
        "{} is missing: build the binaries first (`cargo build --workspace --bins`, which `cargo xtask test` does)",
        p.display()
    );
    p
}

/// GCS settings the binaries read from the environment (besides `IMB_*` and
/// Immich's `DB_*`). A developer's or CI's own values must not leak into a test;
/// a test that needs one sets it after the helper strips it.
const FOREIGN_SETTINGS: [&str; 4] = [
    "GCS_BUCKET",
    "GCS_CREDENTIALS",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "STORAGE_EMULATOR_HOST",
];

/// Removes every setting our binaries read from the environment.
pub(crate) fn clean_env(c: &mut Command) {
    for (k, _) in std::env::vars_os() {
        let Some(name) = k.to_str() else { continue };
        // `DB_*` covers DB_URL, DB_HOSTNAME, DB_PORT, DB_USERNAME, DB_PASSWORD(_FILE)
        // and DB_DATABASE_NAME; `PG*` is libpq's own (PGPASSWORD, PGHOST, ...).
        if name.starts_with("IMB_")
            || name.starts_with("DB_")
            || name.starts_with("PG")
            || FOREIGN_SETTINGS.contains(&name)
        {
            c.env_remove(&k);
        }
    }
}

/// A command for `backup` with a clean environment for our settings.
pub(crate) fn backup() -> Command {
    let mut c = Command::new(bin("backup"));
    clean_env(&mut c);
    c.env("RUST_LOG", "info");
    c
}

/// A command for `restore-verify` with a clean environment for our settings.
pub(crate) fn restore_verify() -> Command {
    let mut c = Command::new(bin("restore-verify"));
    clean_env(&mut c);
    c
}

pub(crate) fn write(p: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
}

/// An Immich-shaped library with `n` originals, each with distinct content.
pub(crate) fn library(root: &Path, n: usize, size: usize) {
    for top in [
        "library",
        "upload",
        "thumbs",
        "encoded-video",
        "profile",
        "backups",
    ] {
        write(&root.join(top).join(".immich"), b"");
    }
    for i in 0..n {
        let mut bytes = vec![(i % 251) as u8; size];
        bytes[..8].copy_from_slice(&(i as u64).to_le_bytes());
        write(
            &root.join(format!(
                "library/admin/{}/{:02}/IMG_{i:05}.jpg",
                2020 + i % 5,
                i % 12 + 1
            )),
            &bytes,
        );
    }
    write(&root.join("thumbs/a/b/thumb.webp"), b"thumb");
}

/// Every regular file under `root`, relative, sorted.
pub(crate) fn files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                out.push(e.path().strip_prefix(root).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

/// Runs to completion; returns the output and the parsed JSON summary (if any).
pub(crate) fn run_json(mut c: Command) -> (Output, serde_json::Value) {
    let out = c.arg("--json").output().expect("backup runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON object ({e}): {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out, v)
}

pub(crate) fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// A running child whose stderr lines arrive on a channel.
pub(crate) struct Running {
    pub(crate) child: Child,
    pub(crate) lines: mpsc::Receiver<String>,
}

pub(crate) fn spawn(mut c: Command) -> Running {
    let mut child = c
        .arg("--json")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("backup starts");
    let err = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    Running { child, lines: rx }
}

impl Running {
    /// Blocks until a stderr line contains `needle` (the child's own event, not a
    /// timer); fails after a generous limit so a broken build cannot hang CI.
    pub(crate) fn wait_for(&self, needle: &str) -> String {
        loop {
            match self.lines.recv_timeout(Duration::from_secs(120)) {
                Ok(l) if l.contains(needle) => return l,
                Ok(_) => {}
                Err(e) => panic!("no log line containing {needle:?}: {e}"),
            }
        }
    }

    pub(crate) fn finish(mut self) -> (i32, serde_json::Value) {
        let mut out = String::new();
        std::io::Read::read_to_string(self.child.stdout.as_mut().unwrap(), &mut out).unwrap();
        let status = self.child.wait().unwrap();
        let v = serde_json::from_str(out.trim()).unwrap_or(serde_json::Value::Null);
        (status.code().unwrap_or(-1), v)
    }
}

pub(crate) fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// The text of a gzip file.
pub(crate) fn gunzip(path: &Path) -> String {
    let out = Command::new("gzip").arg("-dc").arg(path).output().unwrap();
    assert!(out.status.success(), "gzip -dc {}", path.display());
    String::from_utf8(out.stdout).unwrap()
}

/// Writes `text` gzip-compressed to `path`.
pub(crate) fn gzip_to(path: &Path, text: &str) {
    let mut gz = Command::new("gzip")
        .arg("-c")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(gz.stdin.as_mut().unwrap(), text.as_bytes()).unwrap();
    drop(gz.stdin.take());
    let out = gz.wait_with_output().unwrap();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, out.stdout).unwrap();
}

/// A timestamp as in object names, `secs` seconds from now: for planting a newest
/// manifest or dump that is not future-dated (more than a day ahead is refused).
pub(crate) fn ts_in(secs: u64) -> String {
    let t = std::time::SystemTime::now() + Duration::from_secs(secs);
    imb_pgdump::DumpName::new(t, None).ts
}

/// A store on a test emulator (no auth, fast retries).
pub(crate) trait OnEmulator {
    fn config(&self) -> imb_gcs::GcsConfig;
    fn store(&self) -> imb_gcs::GcsStore {
        imb_gcs::GcsStore::new(self.config()).expect("store builds")
    }
}

impl OnEmulator for imb_testkit::gcs::Emulator {
    fn config(&self) -> imb_gcs::GcsConfig {
        let mut c = imb_gcs::GcsConfig::new(
            self.bucket.clone(),
            std::sync::Arc::new(imb_gcs::Credentials::None),
        );
        c.endpoint = self.endpoint.clone();
        c.retry = imb_gcs::RetryPolicy::fast();
        c
    }
}

/// The manifest a reader assembles from a local target (the newest full manifest
/// and the deltas after it), and the directory holding it.
pub(crate) fn fetched_manifest(dst: &Path) -> (tempfile::TempDir, imb_manifest::ManifestReader) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("manifest.db");
    let store = imb_storage::LocalDir::new(dst).unwrap();
    let got = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(imb_layout::fetch_manifest(&store, &path, None))
        .unwrap();
    assert!(got.point.is_some() && got.warnings.is_empty(), "{got:?}");
    let m = imb_manifest::ManifestReader::open(&path).unwrap();
    (dir, m)
}

/// A stand-in `name` (a shell script of `body`) in `dir/fake-bin`, for a system
/// tool the tests cannot run for real; returns a `PATH` with it first.
pub(crate) fn stand_in(dir: &Path, name: &str, body: &str) -> String {
    let bin = dir.join("fake-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let p = bin.join(name);
    write(&p, format!("#!/bin/sh\n{body}\n").as_bytes());
    std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// A stand-in for NetworkManager's `nmcli` (there is none here) answering
/// `GENERAL.METERED` with `metered`, first on `PATH`.
pub(crate) fn fake_nmcli(dir: &Path, metered: &str) -> String {
    stand_in(dir, "nmcli", &format!("echo 'GENERAL.METERED:{metered}'"))
}
