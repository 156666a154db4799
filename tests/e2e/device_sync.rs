//! `device-sync` against the test Immich server: the scenarios, through
//! the real binary. The server runs in this process, so the tests read what it
//! received and script faults (a burst of 503s, a quota that runs out, a file
//! deleted when the server is asked about it).

use std::borrow::BorrowMut;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use imb_testkit::immich::{DEFAULT_EMAIL, Fault, Seen, TestServer, TestServerOptions, burst};
use serde_json::Value;

use crate::util::{bin, code, fake_nmcli, write};
use imb_testkit::fixtures::{jpg, jpg_with_exif, mp4};

/// A device folder, a state directory and a server.
struct Device {
    t: tempfile::TempDir,
    root: PathBuf,
    state: PathBuf,
    server: Arc<TestServer>,
}

impl Device {
    fn new(opts: TestServerOptions) -> Device {
        Device::with_server(|_| TestServer::start(opts))
    }

    /// `start` may keep a weak handle to the server for its fault script.
    fn with_server(start: impl FnOnce(&Path) -> TestServer) -> Device {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("DCIM");
        let state = t.path().join("state");
        fs::create_dir_all(&root).unwrap();
        let server = Arc::new(start(&root));
        Device {
            t,
            root,
            state,
            server,
        }
    }

    /// `device-sync` with a clean environment, the key in IMMICH_API_KEY and quick retries.
    fn cmd(&self) -> Command {
        let mut c = self.offline();
        c.env("IMMICH_API_KEY", self.server.key())
            .arg("--server")
            .arg(self.server.url());
        c
    }

    /// `device-sync` without a server or key.
    fn offline(&self) -> Command {
        let mut c = Command::new(bin("device-sync"));
        for (k, _) in std::env::vars() {
            if k.starts_with("IMB_") || k.starts_with("IMMICH_") || k == "XDG_STATE_HOME" {
                c.env_remove(k);
            }
        }
        c.env("RUST_LOG", "info")
            .arg("--root")
            .arg(&self.root)
            .arg("--state-dir")
            .arg(&self.state)
            .args(["--retry-initial", "10ms"]);
        c
    }

    fn file(&self, rel: &str, bytes: &[u8]) -> PathBuf {
        let p = self.root.join(rel);
        write(&p, bytes);
        p
    }

    fn posts(&self, from: usize) -> Vec<String> {
        self.server.requests()[from..]
            .iter()
            .filter(|s| s.method != "GET")
            .map(|s| format!("{} {}", s.method, s.path()))
            .collect()
    }
}

/// Runs with `--json`; returns the exit code, the JSON object and stderr.
fn run(mut c: impl BorrowMut<Command>, args: &[&str]) -> (i32, Value, String) {
    let out: Output = c
        .borrow_mut()
        .args(args)
        .arg("--json")
        .output()
        .expect("device-sync runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let v = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!("stdout is not one JSON object ({e}): {stdout}\nstderr: {stderr}")
    });
    (code(&out), v, stderr)
}

fn sha1(b: &[u8]) -> String {
    imb_hash::hex(&imb_hash::digest(b).sha1)
}

/// Three photos in two albums, a video, a sidecar and a text file.
fn device_files(d: &Device) -> Vec<u8> {
    let exif = jpg_with_exif(1);
    d.file("Camera/IMG_0001.jpg", &exif);
    d.file("Camera/IMG_0002.jpg", &jpg(2, 4000));
    d.file(
        "Camera/IMG_0002.xmp",
        b"<x:xmpmeta xmlns:x='adobe:ns:meta/'/>",
    );
    d.file("Camera/notes.txt", b"not a photo");
    d.file("Trip/IMG_0100.jpg", &jpg(3, 2000));
    d.file("Trip/clip.mp4", &mp4(4));
    exif
}

#[test]
fn first_sync_uploads_everything_with_its_metadata() {
    let d = Device::new(TestServerOptions::v3());
    let exif = device_files(&d);
    let (rc, s, err) = run(d.cmd(), &[]);
    assert_eq!(rc, 0, "{s}\n{err}");
    for k in [
        "total",
        "uploaded",
        "duplicates",
        "failed",
        "skipped",
        "bytes",
        "quota",
        "duration_s",
        "remaining",
        "unchanged",
        "hashed",
    ] {
        assert!(s.get(k).is_some(), "summary lacks {k}: {s}");
    }
    assert_eq!(s["total"], 4, "{s}");
    assert_eq!(s["uploaded"], 4);
    assert_eq!(s["failed"], 0);
    assert_eq!(s["skipped"]["unsupported"], 1);
    assert!(s["duration_s"].is_f64());
    assert_eq!(s["api"], "v3");
    let assets = d.server.assets();
    assert_eq!(assets.len(), 4);
    assert_eq!(
        s["bytes"].as_u64().unwrap(),
        assets.iter().map(|a| a.size).sum::<u64>()
    );
    let by_name = |n: &str| assets.iter().find(|a| a.filename == n).unwrap().clone();
    let photo = by_name("IMG_0001.jpg");
    assert_eq!(photo.checksum, sha1(&exif));
    assert_eq!(
        photo.fields["fileCreatedAt"], "2023-07-14T18:30:05.000+02:00",
        "the capture time comes from EXIF"
    );
    assert!(photo.fields["fileModifiedAt"].ends_with('Z'));
    assert_eq!(photo.fields["isFavorite"], "false");
    assert!(!photo.fields.contains_key("deviceAssetId"), "v3");
    let with_sidecar = by_name("IMG_0002.jpg");
    assert_eq!(with_sidecar.sidecar.as_ref().unwrap().0, "IMG_0002.xmp");
    assert_eq!(by_name("clip.mp4").fields["duration"], "42000");
    // Every upload carried its SHA-1, and the server was asked first.
    let reqs = d.server.requests();
    let uploads: Vec<&Seen> = reqs
        .iter()
        .filter(|r| r.method == "POST" && r.path() == "/api/assets")
        .collect();
    assert_eq!(uploads.len(), 4);
    for u in &uploads {
        let h = u.header("x-immich-checksum").unwrap();
        assert!(assets.iter().any(|a| a.checksum == h), "{h}");
    }
    let check = reqs
        .iter()
        .position(|r| r.path() == "/api/assets/bulk-upload-check")
        .unwrap();
    assert!(check < uploads[0].n);
    assert!(
        !err.contains(d.server.key()),
        "the key never reaches the logs"
    );
}

#[test]
fn a_rerun_without_changes_uploads_nothing_and_hashes_nothing() {
    let d = Device::new(TestServerOptions::v3());
    device_files(&d);
    assert_eq!(run(d.cmd(), &[]).0, 0);
    let before = d.server.requests().len();
    let (rc, s, err) = run(d.cmd(), &[]);
    assert_eq!(rc, 0, "{s}\n{err}");
    assert_eq!(s["unchanged"], 4, "{s}");
    assert_eq!(s["total"], 4, "all files in the selection, always: {s}");
    assert_eq!(s["candidates"], 0, "{s}");
    assert_eq!(s["hashed"], 0, "no file was read again");
    assert_eq!(s["uploaded"], 0);
    assert!(
        d.posts(before).is_empty(),
        "only server info was read: {:?}",
        d.posts(before)
    );
    assert_eq!(d.server.assets().len(), 4);
}

#[test]
fn new_files_in_one_album_are_the_only_candidates() {
    let d = Device::new(TestServerOptions::v3());
    device_files(&d);
    assert_eq!(run(d.cmd(), &[]).0, 0);
    d.file("Trip/IMG_0101.jpg", &jpg(10, 1000));
    d.file("Trip/IMG_0102.jpg", &jpg(11, 1000));
    let before = d.server.requests().len();
    let (rc, s, _) = run(d.cmd(), &[]);
    assert_eq!(rc, 0);
    assert_eq!(
        (
            &s["unchanged"],
            &s["total"],
            &s["candidates"],
            &s["hashed"],
            &s["uploaded"]
        ),
        (&4.into(), &6.into(), &2.into(), &2.into(), &2.into()),
        "{s}"
    );
    assert_eq!(
        d.posts(before),
        [
            "POST /api/assets/bulk-upload-check",
            "POST /api/assets",
            "POST /api/assets"
        ]
    );
}

#[test]
fn an_excluded_album_is_skipped_even_when_selected() {
    let d = Device::new(TestServerOptions::v3());
    d.file("Camera/a.jpg", &jpg(1, 500));
    d.file("WhatsApp Images/w1.jpg", &jpg(2, 500));
    d.file("WhatsApp Images/w2.jpg", &jpg(3, 500));
    d.file("Other/o.jpg", &jpg(4, 500));
    let (rc, s, err) = run(
        d.cmd(),
        &[
            "--album",
            "Camera",
            "--album",
            "WhatsApp Images",
            "--exclude-album",
            "WhatsApp Images",
        ],
    );
    assert_eq!(rc, 0, "{s}\n{err}");
    assert_eq!(s["uploaded"], 1, "{s}");
    assert_eq!(s["skipped"]["excluded_album"], 2);
    assert_eq!(s["skipped"]["not_selected"], 1);
    let names: Vec<String> = d.server.assets().into_iter().map(|a| a.filename).collect();
    assert_eq!(names, ["a.jpg"]);

    // Recents (no --album) with the exclusion: everything but WhatsApp.
    let (rc, s, _) = run(d.cmd(), &["--exclude-album", "WhatsApp Images"]);
    assert_eq!(rc, 0);
    assert_eq!(
        (&s["uploaded"], &s["unchanged"]),
        (&1.into(), &1.into()),
        "{s}"
    );

    let (rc, v, _) = run(
        d.cmd(),
        &[
            "albums",
            "--album",
            "Camera",
            "--exclude-album",
            "WhatsApp Images",
        ],
    );
    assert_eq!(rc, 0);
    let albums = v["albums"].as_array().unwrap();
    let get = |n: &str| albums.iter().find(|a| a["name"] == n).unwrap().clone();
    assert_eq!(get("Camera")["selection"], "selected");
    assert_eq!(get("Camera")["backed_up"], 1);
    assert_eq!(get("WhatsApp Images")["selection"], "excluded");
    assert_eq!(get("WhatsApp Images")["files"], 2);
    assert_eq!(get("Other")["selection"], "not selected");
}

#[test]
fn album_sync_adds_to_the_existing_same_name_album() {
    let d = Device::new(TestServerOptions::v3());
    let older = d
        .server
        .add_album(DEFAULT_EMAIL, "Trip", "2024-01-01T00:00:00.000Z");
    let newer = d
        .server
        .add_album(DEFAULT_EMAIL, "Trip", "2024-06-01T00:00:00.000Z");
    device_files(&d);
    // Content already on the server (uploaded from another device) is added too.
    let elsewhere = d.server.add_asset(
        DEFAULT_EMAIL,
        "x.jpg",
        &fs::read(d.root.join("Trip/IMG_0100.jpg")).unwrap(),
    );
    let (rc, s, err) = run(d.cmd(), &["--album-sync"]);
    assert_eq!(rc, 0, "{s}\n{err}");
    assert_eq!(s["albums"]["created"], 1, "{s}");
    assert_eq!(s["albums"]["added"], 4);
    assert_eq!(s["duplicates"], 1);
    let albums = d.server.albums();
    let trip = albums.iter().find(|a| a.id == older).unwrap();
    assert_eq!(trip.assets.len(), 2, "the older same-name album is used");
    assert!(trip.assets.contains(&elsewhere));
    assert!(
        albums
            .iter()
            .find(|a| a.id == newer)
            .unwrap()
            .assets
            .is_empty()
    );
    let camera: Vec<_> = albums.iter().filter(|a| a.name == "Camera").collect();
    assert_eq!(camera.len(), 1, "created once");
    assert_eq!(camera[0].assets.len(), 2);

    // A new photo later: only it is added, to the same albums; nothing is created.
    d.file("Camera/IMG_0003.jpg", &jpg(20, 100));
    let (rc, s, _) = run(d.cmd(), &["--album-sync"]);
    assert_eq!(rc, 0);
    assert_eq!(
        (&s["albums"]["created"], &s["albums"]["added"]),
        (&0.into(), &1.into())
    );
    assert_eq!(d.server.albums().len(), 3);
}

/// When the pending files do not all fit the free quota, the ones that fit are
/// uploaded (each that still fits, in upload order) and the rest wait, named as
/// remaining; nothing the server would refuse is sent. The run says it stopped
/// for the quota (exit 2), and `status` says the backup is paused, counts the
/// waiting files as pending, and keeps "Last backup" at the last run that was
/// not stopped: none yet, then the one after room was made.
#[test]
fn a_quota_too_small_uploads_what_fits_and_leaves_the_rest() {
    let d = Device::new(TestServerOptions::v3().with_quota(5000));
    device_files(&d);
    let (rc, s, err) = run(d.cmd(), &[]);
    assert_eq!(rc, 2, "{s}\n{err}");
    assert_eq!(
        (&s["stopped"], &s["stop_reason"]),
        (&true.into(), &"quota".into()),
        "{s}"
    );
    let (uploaded, remaining) = (
        s["uploaded"].as_u64().unwrap(),
        s["remaining"].as_u64().unwrap(),
    );
    assert!(uploaded >= 1 && remaining >= 1, "{s}");
    assert_eq!(uploaded + remaining, 4, "{s}");
    assert_eq!(s["quota"]["size"], 5000);
    assert!(err.contains("quota"), "{err}");
    let stored: u64 = d.server.assets().iter().map(|a| a.size).sum();
    assert!(stored <= 5000, "only what fits was sent: {stored} bytes");
    assert_eq!(d.server.assets().len() as u64, uploaded);

    let (rc, st, _) = run(d.cmd(), &["status"]);
    assert_eq!(rc, 0);
    assert_eq!(st["paused"], "quota", "{st}");
    assert!(st["last_backup"].is_null(), "no run has finished: {st}");
    assert_eq!(
        st["statistics"]["pending"].as_u64(),
        Some(remaining),
        "{st}"
    );
    assert_eq!(st["remaining"].as_u64(), Some(remaining), "{st}");
    let out = d.cmd().arg("status").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("Backup paused: quota reached"), "{text}");
    assert!(text.contains(&format!("{remaining} pending")), "{text}");
    assert!(text.contains("Last backup: never"), "{text}");
    let text = String::from_utf8_lossy(&d.cmd().output().unwrap().stderr).into_owned();
    assert!(text.contains("Backup paused: quota reached"), "{text}");

    d.server.set_quota(DEFAULT_EMAIL, None);
    let (rc, s, _) = run(d.cmd(), &[]);
    assert_eq!(
        (rc, &s["stopped"], &s["stop_reason"]),
        (0, &false.into(), &Value::Null),
        "{s}"
    );
    let (_, st, _) = run(d.cmd(), &["status"]);
    assert!(st["paused"].is_null() && st["complete"] == true, "{st}");
    assert!(st["last_backup"].as_str().is_some(), "{st}");
}

#[test]
fn quota_reached_mid_run_stops_the_backup_and_the_next_run_continues() {
    // When the third upload arrives, another device has filled the quota.
    let cell: Arc<OnceLock<Weak<TestServer>>> = Arc::new(OnceLock::new());
    let uploads = Arc::new(AtomicUsize::new(0));
    let (c2, u2) = (cell.clone(), uploads.clone());
    let d = Device::with_server(move |_| {
        TestServer::start(TestServerOptions::v3().with_faults(move |s: &Seen| {
            if s.method == "POST"
                && s.path() == "/api/assets"
                && u2.fetch_add(1, Ordering::SeqCst) == 2
                && let Some(server) = c2.get().and_then(Weak::upgrade)
            {
                let used = server.users()[0].usage;
                server.set_quota(DEFAULT_EMAIL, Some(used));
            }
            Fault::Serve
        }))
    });
    cell.set(Arc::downgrade(&d.server)).unwrap();
    for i in 0..6 {
        d.file(&format!("Camera/IMG_{i}.jpg"), &jpg(100 + i, 1000));
    }
    let (rc, s, err) = run(d.cmd(), &["--concurrency", "1"]);
    assert_eq!(rc, 2, "{s}\n{err}");
    assert_eq!(s["stop_reason"], "quota", "{s}");
    assert_eq!(s["uploaded"], 2);
    assert_eq!(s["failed"], 0, "a full quota is not the file's fault");
    assert_eq!(s["remaining"], 4);
    assert!(err.contains("quota exceeded"), "{err}");
    assert_eq!(
        uploads.load(Ordering::SeqCst),
        3,
        "nothing sent after the refusal"
    );

    d.server.set_quota(DEFAULT_EMAIL, None);
    let (rc, s, _) = run(d.cmd(), &[]);
    assert_eq!(rc, 0, "{s}");
    assert_eq!(
        (&s["uploaded"], &s["unchanged"], &s["hashed"]),
        (&4.into(), &2.into(), &0.into())
    );
}

/// Answers the first `n` uploads with `status`, then serves.
fn failing_uploads(n: usize, status: u16) -> impl Fn(&Seen) -> Fault + Send + Sync + 'static {
    let left = AtomicUsize::new(n);
    move |s: &Seen| {
        if s.method == "POST"
            && s.path() == "/api/assets"
            && left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |l| l.checked_sub(1))
                .is_ok()
        {
            Fault::Status(status)
        } else {
            Fault::Serve
        }
    }
}

#[test]
fn a_5xx_burst_is_retried() {
    // A burst on the duplicate check: retried, then the run goes on.
    let d = Device::new(TestServerOptions::v3().with_faults(burst(
        "/api/assets/bulk-upload-check",
        2,
        502,
    )));
    device_files(&d);
    let (rc, s, err) = run(d.cmd(), &[]);
    assert_eq!(rc, 0, "{s}\n{err}");
    assert_eq!(s["retries"], 2, "{s}");

    let d = Device::new(TestServerOptions::v3().with_faults(failing_uploads(3, 503)));
    device_files(&d);
    let (rc, s, err) = run(d.cmd(), &["--concurrency", "1"]);
    assert_eq!(rc, 0, "{s}\n{err}");
    assert_eq!((&s["uploaded"], &s["failed"]), (&4.into(), &0.into()));
    assert_eq!(s["retries"], 3, "{s}");
    assert_eq!(
        (&s["concurrency"]["mode"], &s["concurrency"]["congestion"]),
        (&"fixed".into(), &3.into()),
        "each 503 reached the uploads-in-flight controller: {s}"
    );
    assert!(err.contains("retrying"), "{err}");
    let statuses: Vec<u16> = d
        .server
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path() == "/api/assets")
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [503, 503, 503, 201, 201, 201, 201]);

    // A burst longer than the retries fails the file, for the next run.
    let d = Device::new(TestServerOptions::v3().with_faults(failing_uploads(3, 500)));
    d.file("Camera/a.jpg", &jpg(1, 500));
    let (rc, s, _) = run(d.cmd(), &["--retries", "2"]);
    assert_eq!((rc, &s["failed"]), (2, &1.into()), "{s}");
    assert!(
        s["failures"][0]["error"]
            .as_str()
            .unwrap()
            .contains("HTTP 500"),
        "{s}"
    );
    let (rc, s, _) = run(d.cmd(), &[]);
    assert_eq!(
        (rc, &s["uploaded"], &s["hashed"]),
        (0, &1.into(), &0.into()),
        "{s}"
    );
}

#[test]
fn watch_syncs_again_when_files_change_and_stops_on_sigterm() {
    let d = Device::new(TestServerOptions::v3());
    d.file("Camera/a.jpg", &jpg(1, 500));
    let mut c = d.cmd();
    c.args([
        "watch",
        "--watch-mode",
        "poll",
        "--poll",
        "100ms",
        "--trigger-delay",
        "100ms",
    ]);
    let w = crate::util::spawn(c);
    w.wait_for("watching by polling");
    w.wait_for("sync finished");
    assert_eq!(d.server.assets().len(), 1);
    // While it idles, a manual run is allowed (the lock is per run).
    assert_eq!(run(d.cmd(), &[]).0, 0);
    d.file("Camera/b.jpg", &jpg(2, 500));
    let line = w.wait_for("sync finished");
    assert!(
        line.contains("uploaded=1") && line.contains("walks=1"),
        "polling walks: {line}"
    );
    assert_eq!(d.server.assets().len(), 2);
    let kill = Command::new("kill")
        .args(["-TERM", &w.child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    w.wait_for("watch stopped");
    let (rc, _) = w.finish();
    assert_eq!(rc, 0);
}

#[test]
fn a_second_run_is_refused_while_the_lock_is_held() {
    let d = Device::new(TestServerOptions::v3());
    d.file("Camera/a.jpg", &jpg(1, 500));
    fs::create_dir_all(&d.state).unwrap();
    // A live process (this test) holds the lock: flock, as device-sync takes it.
    let lock = fs::File::create(d.state.join("sync.lock")).unwrap();
    lock.lock().unwrap();
    let (rc, v, _) = run(d.cmd(), &[]);
    assert_eq!(rc, 1, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("another device-sync is running"),
        "{v}"
    );
    // A dead one (its pid left in the file, its lock gone with it) does not.
    drop(lock);
    fs::write(d.state.join("sync.lock"), "4294967295\n").unwrap();
    let (rc, s, _) = run(d.cmd(), &[]);
    assert_eq!((rc, &s["uploaded"]), (0, &1.into()), "{s}");
    // The run released its lock on exit.
    let after = fs::File::open(d.state.join("sync.lock")).unwrap();
    after.try_lock().expect("the lock is free after the run");
}

#[test]
fn failed_uploads_are_listed_and_retried() {
    let broken = Arc::new(AtomicBool::new(true));
    let b2 = broken.clone();
    let d = Device::new(TestServerOptions::v3().with_faults(move |s: &Seen| {
        if s.method == "POST" && s.path() == "/api/assets" && b2.load(Ordering::SeqCst) {
            Fault::Status(503)
        } else {
            Fault::Serve
        }
    }));
    d.file("Camera/a.jpg", &jpg(1, 500));
    d.file("Camera/b.jpg", &jpg(2, 500));
    d.file("Trip/c.jpg", &jpg(3, 500));
    let (rc, s, err) = run(d.cmd(), &["--retries", "1"]);
    assert_eq!(rc, 2, "{s}\n{err}");
    assert_eq!(s["failed"], 3, "{s}");

    let (rc, f, _) = run(d.cmd(), &["failed"]);
    assert_eq!(rc, 0);
    assert_eq!(f["failed"], 3);
    let rows = f["uploads"].as_array().unwrap();
    assert!(rows[0]["error"].as_str().unwrap().contains("503"), "{f}");
    assert_eq!(rows[0]["attempts"], 1);
    assert_eq!(rows[0]["status"], "failed");
    let ids: Vec<i64> = rows.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    let text =
        String::from_utf8_lossy(&d.cmd().arg("failed").output().unwrap().stdout).into_owned();
    assert!(text.starts_with("3 uploads failed"), "{text}");
    assert!(text.contains("--retry-all"), "{text}");

    // Still broken: a retry fails again and counts the attempt.
    let (rc, s, _) = run(
        d.cmd(),
        &["failed", "--retry", &ids[0].to_string(), "--retries", "0"],
    );
    assert_eq!((rc, &s["failed"]), (2, &1.into()), "{s}");

    broken.store(false, Ordering::SeqCst);
    let before = d.server.requests().len();
    let (rc, s, _) = run(d.cmd(), &["failed", "--retry", &ids[0].to_string()]);
    assert_eq!(rc, 0, "{s}");
    assert_eq!(
        (&s["total"], &s["uploaded"], &s["hashed"]),
        (&1.into(), &1.into(), &0.into())
    );
    assert_eq!(
        d.posts(before),
        ["POST /api/assets/bulk-upload-check", "POST /api/assets"]
    );
    let (_, f, _) = run(d.cmd(), &["failed"]);
    assert_eq!(f["failed"], 2);

    let (rc, s, _) = run(d.cmd(), &["failed", "--retry-all"]);
    assert_eq!((rc, &s["uploaded"]), (0, &2.into()), "{s}");
    let (_, f, _) = run(d.cmd(), &["failed"]);
    assert_eq!(f["failed"], 0);

    let (rc, v, _) = run(d.cmd(), &["failed", "--retry", "9999"]);
    assert_eq!(rc, 1);
    assert!(v["error"].as_str().unwrap().contains("9999"), "{v}");
}

#[test]
fn a_file_deleted_between_scan_and_upload_is_skipped() {
    let victim: Arc<Mutex<Option<PathBuf>>> = Arc::new(Mutex::new(None));
    let v2 = victim.clone();
    let d = Device::new(TestServerOptions::v3().with_faults(move |s: &Seen| {
        // The server is asked about the hashed files: the user deletes one now.
        if s.path() == "/api/assets/bulk-upload-check"
            && let Some(p) = v2.lock().unwrap().take()
        {
            fs::remove_file(p).unwrap();
        }
        Fault::Serve
    }));
    d.file("Camera/a.jpg", &jpg(1, 500));
    let gone = d.file("Camera/b.jpg", &jpg(2, 500));
    d.file("Camera/c.jpg", &jpg(3, 500));
    *victim.lock().unwrap() = Some(gone);
    let (rc, s, err) = run(d.cmd(), &[]);
    assert_eq!(rc, 0, "{s}\n{err}");
    assert_eq!(s["hashed"], 3, "{s}");
    assert_eq!(s["uploaded"], 2);
    assert_eq!(s["failed"], 0);
    assert_eq!(s["skipped"]["deleted"], 1);
    assert!(d.server.assets().iter().all(|a| a.filename != "b.jpg"));
    let (_, f, _) = run(d.cmd(), &["failed"]);
    assert_eq!(f["failed"], 0);
}

#[test]
fn an_unreadable_file_is_failed_with_the_reason() {
    let d = Device::new(TestServerOptions::v3());
    fs::set_permissions(d.t.path(), fs::Permissions::from_mode(0o777)).unwrap();
    d.file("Camera/ok.jpg", &jpg(1, 500));
    let secret = d.file("Camera/secret.jpg", &jpg(2, 500));
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o000)).unwrap();
    for p in [&d.root, &d.root.join("Camera")] {
        fs::set_permissions(p, fs::Permissions::from_mode(0o755)).unwrap();
    }
    fs::create_dir_all(&d.state).unwrap();
    fs::set_permissions(&d.state, fs::Permissions::from_mode(0o777)).unwrap();
    // Root reads everything, so as root the sync runs as `nobody`.
    let c = if crate::util::is_root() {
        let mine = d.cmd();
        let mut c = Command::new("runuser");
        c.args(["-u", "nobody", "--"]).arg(mine.get_program());
        c.args(mine.get_args());
        for (k, v) in mine.get_envs() {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        c
    } else {
        d.cmd()
    };
    let (rc, s, err) = run(c, &[]);
    assert_eq!(rc, 2, "{s}\n{err}");
    assert_eq!(
        (&s["uploaded"], &s["failed"]),
        (&1.into(), &1.into()),
        "{s}"
    );
    let f = &s["failures"][0];
    assert!(f["path"].as_str().unwrap().ends_with("secret.jpg"), "{s}");
    assert!(
        f["error"].as_str().unwrap().contains("permission denied"),
        "{s}"
    );
}

#[test]
fn a_v2_server_gets_device_ids() {
    let d = Device::new(TestServerOptions::v2());
    d.file("Camera/IMG_1.jpg", &jpg(1, 700));
    d.file("Camera/clip.mp4", &mp4(2));
    let (rc, s, err) = run(d.cmd(), &["--device-id", "phone-1"]);
    assert_eq!(rc, 0, "{s}\n{err}");
    assert_eq!(s["api"], "v2");
    assert_eq!(s["uploaded"], 2);
    let assets = d.server.assets();
    let photo = assets.iter().find(|a| a.filename == "IMG_1.jpg").unwrap();
    assert_eq!(photo.fields["deviceId"], "phone-1");
    assert_eq!(
        photo.fields["deviceAssetId"],
        format!("IMG_1.jpg-{}", photo.size)
    );
    let clip = assets.iter().find(|a| a.filename == "clip.mp4").unwrap();
    assert_eq!(
        clip.fields["duration"], "0:00:42.000000",
        "v2 durations are strings"
    );

    // `--api v2` against a v3 server sends them too (unknown fields are ignored).
    let d = Device::new(TestServerOptions::v3());
    d.file("Camera/IMG_1.jpg", &jpg(1, 700));
    let (rc, s, _) = run(d.cmd(), &["--api", "v2"]);
    assert_eq!((rc, &s["api"]), (0, &"v2".into()));
    assert!(d.server.assets()[0].fields.contains_key("deviceAssetId"));
    assert!(
        d.server
            .requests()
            .iter()
            .all(|r| r.path() != "/api/server/version"),
        "the override is not second-guessed"
    );
}

#[test]
fn status_reports_n_of_m_last_backup_and_quota() {
    let d = Device::new(TestServerOptions::v3().with_quota(10_000_000));
    device_files(&d);
    // Before any sync: the server tells the media types, nothing is backed up.
    let (rc, st, err) = run(d.cmd(), &["status"]);
    assert_eq!(rc, 0, "{st}\n{err}");
    assert_eq!(st["complete"], false, "{st}");
    assert_eq!((&st["backed_up"], &st["total"]), (&0.into(), &4.into()));
    assert!(st["last_backup"].is_null());
    assert_eq!(st["quota"]["size"], 10_000_000);
    assert_eq!(st["quota"]["used"], 0);

    assert_eq!(run(d.cmd(), &[]).0, 0);
    let (rc, st, _) = run(d.cmd(), &["status"]);
    assert_eq!(rc, 0);
    assert_eq!(st["complete"], true, "{st}");
    assert_eq!((&st["backed_up"], &st["total"]), (&4.into(), &4.into()));
    assert!(st["last_backup"].as_str().unwrap().ends_with('Z'));
    assert!(st["quota"]["used"].as_u64().unwrap() > 0);
    assert_eq!(st["statistics"]["uploaded"], 4);
    assert_eq!(st["media_types_from"], "server");

    // Offline (no server): media types from the last run, no quota.
    d.file("Trip/IMG_0200.jpg", &jpg(30, 100));
    let (rc, st, err) = run(d.offline(), &["status"]);
    assert_eq!(rc, 0, "{st}\n{err}");
    assert_eq!(st["media_types_from"], "cache");
    assert!(st["quota"].is_null());
    assert_eq!(
        (&st["backed_up"], &st["total"], &st["complete"]),
        (&4.into(), &5.into(), &false.into())
    );

    let text =
        String::from_utf8_lossy(&d.cmd().arg("status").output().unwrap().stdout).into_owned();
    assert!(text.contains("4 of 5 backed up"), "{text}");
    assert!(text.contains("Last backup:"), "{text}");
}

#[test]
fn usage_errors_and_a_refused_key_exit_1() {
    let d = Device::new(TestServerOptions::v3());
    d.file("Camera/a.jpg", &jpg(1, 100));
    // The key is never an argument.
    let o = d.cmd().args(["--api-key", "x"]).output().unwrap();
    assert_eq!(code(&o), 1);
    let o = d.cmd().env_remove("IMMICH_API_KEY").output().unwrap();
    assert_eq!(code(&o), 1);
    assert!(String::from_utf8_lossy(&o.stderr).contains("IMMICH_API_KEY"));
    let (rc, v, _) = run(d.cmd().env("IMMICH_API_KEY", "wrong-key"), &[]);
    assert_eq!(rc, 1);
    assert!(v["error"].as_str().unwrap().contains("401"), "{v}");
    // A key file works, and its content is never shown.
    let key = d.t.path().join("key");
    fs::write(&key, format!("{}\n", d.server.key())).unwrap();
    let (rc, s, _) = run(
        d.cmd()
            .env_remove("IMMICH_API_KEY")
            .arg("--key-file")
            .arg(&key),
        &[],
    );
    assert_eq!((rc, &s["uploaded"]), (0, &1.into()), "{s}");
    // --dry-run uploads nothing.
    d.file("Camera/b.jpg", &jpg(2, 100));
    let (rc, s, _) = run(d.cmd(), &["--dry-run"]);
    assert_eq!(rc, 0);
    assert_eq!(
        (&s["to_upload"], &s["uploaded"], &s["dry_run"]),
        (&1.into(), &0.into(), &true.into())
    );
    assert_eq!(d.server.assets().len(), 1);
}

#[test]
fn sigterm_finishes_the_upload_in_flight_and_stops() {
    // The second upload is held at the server until the test has seen the stop
    // request, so SIGTERM surely arrives while exactly that upload is in flight.
    let (arrived_tx, arrived) = std::sync::mpsc::channel::<()>();
    let (open_gate, gate) = std::sync::mpsc::channel::<()>();
    let gate = Mutex::new(gate);
    let posts = AtomicUsize::new(0);
    let d = Device::new(TestServerOptions::v3().with_faults(move |s: &Seen| {
        if s.method == "POST"
            && s.path() == "/api/assets"
            && posts.fetch_add(1, Ordering::SeqCst) > 0
        {
            let _ = arrived_tx.send(());
            // Opened by dropping the sender; the bound only keeps a failed test
            // from holding a server thread forever.
            let _ = gate
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .recv_timeout(std::time::Duration::from_secs(120));
        }
        Fault::Serve
    }));
    for i in 0..8 {
        d.file(&format!("Camera/IMG_{i}.jpg"), &jpg(200 + i, 500));
    }
    let mut c = d.cmd();
    c.args(["--concurrency", "1"]);
    let w = crate::util::spawn(c);
    arrived
        .recv_timeout(std::time::Duration::from_secs(120))
        .expect("the second upload reaches the server");
    let kill = Command::new("kill")
        .args(["-TERM", &w.child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    w.wait_for("stop requested");
    drop(open_gate);
    let (rc, s) = w.finish();
    assert_eq!(rc, 2, "{s}");
    assert_eq!(
        (&s["stopped"], &s["stop_reason"]),
        (&true.into(), &"signal".into()),
        "{s}"
    );
    // The first upload, and the one in flight at SIGTERM; none started after it.
    let uploaded = s["uploaded"].as_u64().unwrap();
    assert_eq!(uploaded, 2, "{s}");
    assert_eq!(s["remaining"], 6, "{s}");
    assert_eq!(
        d.server.assets().len() as u64,
        uploaded,
        "every upload was recorded"
    );
    // The next run continues where this one stopped.
    let (rc, s, _) = run(d.cmd(), &[]);
    assert_eq!(rc, 0);
    assert_eq!(s["uploaded"].as_u64().unwrap(), 8 - uploaded, "{s}");
    assert_eq!(s["hashed"], 0, "{s}");
}

/// `status` against a server that is down: from the state of the last sync, saying
/// the server was not reachable and why; with no earlier sync, the cause is the
/// error, not "the file types are unknown".
#[test]
fn status_against_a_stopped_server_says_why() {
    let d = Device::new(TestServerOptions::v3());
    d.file("Camera/a.jpg", &jpg(1, 100));
    let (rc, _, err) = run(d.cmd(), &[]);
    assert_eq!(rc, 0, "{err}");
    let down = Device::with_server(|_| TestServer::start(TestServerOptions::v3()));
    let down_url = down.server.url();
    drop(down); // a port nothing listens on any more
    let status = |state: &Path, server: &str| {
        let mut c = Command::new(bin("device-sync"));
        crate::util::clean_env(&mut c);
        c.env_remove("IMMICH_API_KEY")
            .env("IMMICH_API_KEY", "k")
            .args(["--retry-initial", "10ms", "--server", server, "--root"])
            .arg(&d.root)
            .arg("--state-dir")
            .arg(state);
        c
    };
    let (rc, st, err) = run(status(&d.state, &down_url), &["status"]);
    assert_eq!(rc, 0, "{st}\n{err}");
    assert_eq!(st["media_types_from"], "cache");
    assert_eq!(st["backed_up"], 1);
    let why = st["server_error"].as_str().expect("the cause");
    assert!(why.to_lowercase().contains("connect"), "{why}");
    let out = status(&d.state, &down_url).arg("status").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Server: not reachable:"), "{text}");
    // Never synced: the cause is the error.
    let fresh = d.t.path().join("fresh-state");
    let (rc, v, _) = run(status(&fresh, &down_url), &["status"]);
    assert_eq!(rc, 1, "{v}");
    let e = v["error"].as_str().unwrap();
    assert!(
        e.contains("could not be asked") && e.to_lowercase().contains("connect"),
        "{e}"
    );
}

/// device-sync pings a dead-man's switch around each sync (`IMB_PING_URL`): start
/// and success for a good sync, start and `/1` with the error for a sync the
/// server refuses (a wrong key).
#[test]
fn a_sync_pings_start_and_how_it_ended() {
    use imb_testkit::ping::PingServer;
    let ping = PingServer::start();
    let d = Device::new(TestServerOptions::v3());
    device_files(&d);
    let mut c = d.cmd();
    c.env("IMB_PING_URL", ping.url());
    let (rc, s, err) = run(c, &[]);
    assert_eq!(rc, 0, "{s}\n{err}");
    let mut c = d.cmd();
    c.env("IMB_PING_URL", ping.url())
        .env("IMMICH_API_KEY", "not-the-key");
    let (rc, _, _) = run(c, &[]);
    assert_eq!(rc, 1);
    let got = ping.received();
    let paths: Vec<&str> = got.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/ping/check-uuid/start",
            "/ping/check-uuid",
            "/ping/check-uuid/start",
            "/ping/check-uuid/1"
        ],
        "{got:?}"
    );
    assert!(got[1].body.contains("\"uploaded\":4"), "{}", got[1].body);
    assert!(
        got[3].body.to_lowercase().contains("key"),
        "{}",
        got[3].body
    );
}

/// The seed's separate "use cellular" rules for photos and videos: on a metered
/// network `--only-if-unmetered-videos` uploads the photos and holds the video
/// back (skipped as `waiting`, named in `status`); once the network is
/// unmetered the video goes and `status` waits for nothing. `--only-if-unmetered`
/// (both) does not run at all on a metered network, and says so.
#[test]
fn videos_wait_for_an_unmetered_network_while_photos_go() {
    let d = Device::new(TestServerOptions::v3());
    device_files(&d);
    let metered = fake_nmcli(d.t.path(), "yes");
    let (rc, s, err) = run(
        d.cmd().env("PATH", &metered),
        &["--only-if-unmetered-videos"],
    );
    assert_eq!(rc, 0, "{s}\n{err}");
    assert_eq!(
        (&s["uploaded"], &s["skipped"]["waiting"]),
        (&3.into(), &1.into()),
        "{s}"
    );
    assert!(
        d.server
            .assets()
            .iter()
            .all(|a| !a.filename.ends_with(".mp4"))
    );
    let (_, st, _) = run(d.cmd(), &["status"]);
    let why = st["waiting"]["reason"].as_str().unwrap_or_default();
    assert!(
        why.contains("metered") && why.contains("videos wait"),
        "{st}"
    );
    assert_eq!(
        (&st["backed_up"], &st["total"]),
        (&3.into(), &4.into()),
        "{st}"
    );
    let text =
        String::from_utf8_lossy(&d.cmd().arg("status").output().unwrap().stdout).into_owned();
    assert!(
        text.contains("Waiting: NetworkManager reports a metered connection: videos wait"),
        "{text}"
    );

    let (rc, s, _) = run(d.cmd().env("PATH", &metered), &["--only-if-unmetered"]);
    assert_eq!((rc, &s["ran"]), (0, &false.into()), "{s}");
    assert_eq!(d.server.assets().len(), 3);

    let unmetered = fake_nmcli(d.t.path(), "no");
    let (rc, s, _) = run(
        d.cmd().env("PATH", &unmetered),
        &["--only-if-unmetered-videos"],
    );
    assert_eq!((rc, &s["uploaded"]), (0, &1.into()), "{s}");
    let (_, st, _) = run(d.cmd(), &["status"]);
    assert!(st["waiting"].is_null() && st["complete"] == true, "{st}");
}

/// The capture time device-sync sends (`fileCreatedAt`) comes from the EXIF of
/// HEIC, PNG and TIFF as well as JPEG, with its time zone, on files made with
/// the standard tools (ffmpeg, libheif's heif-enc, exiftool); without an offset
/// the EXIF time is sent as UTC.
#[test]
fn capture_dates_come_from_heic_png_and_tiff_exif_with_the_zone() {
    use imb_testkit::fixtures::real_dated;
    let d = Device::new(TestServerOptions::v3());
    let files = [
        (
            "Camera/IMG_0001.heic",
            real_dated(1, "heic", "2023:07:14 09:30:00", Some("+09:00")),
            "2023-07-14T09:30:00.000+09:00",
        ),
        (
            "Camera/shot.png",
            real_dated(2, "png", "2022:01:02 03:04:05", Some("-05:00")),
            "2022-01-02T03:04:05.000-05:00",
        ),
        (
            "Camera/scan.tif",
            real_dated(3, "tif", "2021:12:24 20:00:00", None),
            "2021-12-24T20:00:00.000Z",
        ),
        (
            "Camera/IMG_0002.jpg",
            real_dated(4, "jpg", "2020:06:30 23:59:59", Some("+05:30")),
            "2020-06-30T23:59:59.000+05:30",
        ),
    ];
    for (p, b, _) in &files {
        d.file(p, b);
    }
    let (rc, s, err) = run(d.cmd(), &[]);
    assert_eq!((rc, &s["uploaded"]), (0, &4.into()), "{s}\n{err}");
    for (p, _, want) in &files {
        let name = p.rsplit('/').next().unwrap();
        let a = d
            .server
            .assets()
            .into_iter()
            .find(|a| a.filename == name)
            .unwrap_or_else(|| panic!("{name} uploaded"));
        assert_eq!(a.fields["fileCreatedAt"], *want, "{name}");
    }
}

/// `c` as the unprivileged user 65534 when the tests run as root (root reads a
/// file whatever its mode), else as it is.
fn unprivileged(c: &Command) -> Command {
    let root =
        fs::metadata("/proc/self").is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0);
    let mut w = if root {
        let mut w = Command::new("setpriv");
        w.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(c.get_program());
        w
    } else {
        Command::new(c.get_program())
    };
    w.args(c.get_args());
    for (k, v) in c.get_envs() {
        match v {
            Some(v) => w.env(k, v),
            None => w.env_remove(k),
        };
    }
    w
}

/// A sync client's placeholder (an old, unallocated, non-empty file) is skipped
/// as `offline` without being read: it has mode 000 and the sync runs as an
/// unprivileged user, so a read would have failed. `status` counts it as not
/// on this disk. A fresh unallocated file is read (it may still be being
/// written), and `--download-offline` reads the placeholder too: both fail
/// for the mode, which shows the read was tried.
#[test]
fn a_sync_clients_placeholder_is_skipped_without_reading_it() {
    let d = Device::new(TestServerOptions::v3());
    d.file("Camera/IMG_1.jpg", &jpg(1, 2000));
    let sparse = |name: &str, age: Duration| {
        let p = d.root.join("Camera").join(name);
        let f = fs::File::create(&p).unwrap();
        f.set_len(1 << 20).unwrap();
        f.set_modified(std::time::SystemTime::now() - age).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o000)).unwrap();
    };
    sparse("IMG_2.jpg", Duration::from_secs(3600));
    sparse("IMG_3.jpg", Duration::ZERO);
    std::os::unix::fs::chown(d.t.path(), Some(65534), Some(65534)).unwrap();
    fs::set_permissions(d.t.path(), fs::Permissions::from_mode(0o755)).unwrap();

    let (rc, s, err) = run(unprivileged(&d.cmd()), &[]);
    assert_eq!(rc, 2, "the fresh one failed: {s}\n{err}");
    assert_eq!(
        (&s["uploaded"], &s["skipped"]["offline"]),
        (&1.into(), &1.into()),
        "{s}"
    );
    let failed: Vec<&str> = s["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert!(failed.len() == 1 && failed[0].ends_with("IMG_3.jpg"), "{s}");
    assert!(
        s["failures"][0]["error"]
            .as_str()
            .unwrap()
            .contains("permission denied"),
        "{s}"
    );

    let (_, st, _) = run(unprivileged(&d.offline()), &["status"]);
    assert_eq!(
        (&st["offline"], &st["backed_up"], &st["total"]),
        (&1.into(), &1.into(), &3.into()),
        "{st}"
    );

    let (rc, s, _) = run(unprivileged(&d.cmd()), &["--download-offline"]);
    assert_eq!(
        (rc, &s["failed"], &s["skipped"]["offline"]),
        (2, &2.into(), &Value::Null),
        "{s}"
    );
    assert_eq!(d.server.assets().len(), 1);
}

/// `systemd-analyze --user verify` of `unit`: exit 0 and not one warning.
/// (`--man=no`: the man page is installed by `cargo xtask man`, not here.)
fn verify_unit(unit: &Path, runtime: &Path) {
    let out = Command::new("systemd-analyze")
        .env("XDG_RUNTIME_DIR", runtime)
        .args(["--user", "verify", "--man=no"])
        .arg(unit)
        .output()
        .expect("systemd-analyze (`cargo xtask prepare` installs systemd)");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.trim().is_empty(),
        "{}: {err}",
        unit.display()
    );
}

/// `install` writes systemd user units that run this binary with the current
/// settings (every layer merged into a settings file of mode 0600), pass
/// `systemd-analyze --user verify` without a warning, and hold no key: the key
/// stays in the key file named by path (neither it nor a canary key in the
/// environment appears in any written file). It refuses without `--key-file`.
/// `--timer` writes a one-shot sync and its timer instead;
/// `uninstall` removes all of it.
#[test]
fn install_writes_verified_units_without_the_key_and_uninstall_removes_them() {
    let d = Device::new(TestServerOptions::v3());
    let canary = "canary-key-7f3e9a";
    let key = d.t.path().join("key");
    write(&key, d.server.key().as_bytes());
    let (cfg_home, runtime) = (d.t.path().join("config"), d.t.path().join("run"));
    fs::create_dir_all(&runtime).unwrap();
    fs::set_permissions(&runtime, fs::Permissions::from_mode(0o700)).unwrap();
    let install = |extra: &[&str]| {
        let mut c = d.cmd();
        c.env("XDG_CONFIG_HOME", &cfg_home)
            .env("IMMICH_API_KEY", canary)
            .env("IMB_SYNC_EXCLUDE_ALBUM", "Screenshots")
            .arg("install")
            .arg("--no-enable")
            .args(extra);
        c
    };
    // The key in the environment only: refused, nothing written.
    let o = install(&[]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(code(&o), 1, "{err}");
    assert!(err.contains("--key-file") && !err.contains(canary), "{err}");
    assert!(!cfg_home.exists());

    let (rc, out, err) = run(install(&["--key-file", key.to_str().unwrap()]), &[]);
    assert_eq!(rc, 0, "{out}\n{err}");
    let units = cfg_home.join("systemd/user");
    let service = units.join("immich-device-sync.service");
    let settings = cfg_home.join("immich-device-sync/device-sync.toml");
    let text = fs::read_to_string(&service).unwrap();
    assert!(
        text.contains(&format!(
            "ExecStart={} --config {} watch",
            bin("device-sync").display(),
            settings.display()
        )),
        "{text}"
    );
    verify_unit(&service, &runtime);
    let toml = fs::read_to_string(&settings).unwrap();
    assert!(
        toml.contains("Screenshots") && toml.contains(&d.server.url()),
        "{toml}"
    );
    assert!(
        toml.contains(&format!(
            "key_file = \"{}\"",
            fs::canonicalize(&key).unwrap().display()
        )),
        "{toml}"
    );
    assert_eq!(
        fs::metadata(&settings).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(out["done"].as_array().unwrap().len() >= 2, "{out}");

    // The units' settings file is a config device-sync reads: a status with it works.
    let o = Command::new(bin("device-sync"))
        .env("IMMICH_API_KEY", "not-this-one")
        .arg("--config")
        .arg(&settings)
        .args(["status", "--json"])
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));

    let (rc, _, _) = run(
        install(&["--key-file", key.to_str().unwrap(), "--timer", "90m"]),
        &[],
    );
    assert_eq!(rc, 0);
    let timer = units.join("immich-device-sync.timer");
    assert!(
        fs::read_to_string(&timer)
            .unwrap()
            .contains("OnUnitActiveSec=1h30m")
    );
    assert!(
        fs::read_to_string(&service)
            .unwrap()
            .contains("Type=oneshot")
    );
    verify_unit(&timer, &runtime);
    verify_unit(&service, &runtime);
    for f in crate::util::files(&cfg_home) {
        let bytes = fs::read(cfg_home.join(&f)).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains(canary) && !text.contains(d.server.key()),
            "{} holds a key",
            f.display()
        );
    }

    // Enabling and disabling ask the user's systemd; a stand-in `systemctl`
    // first on PATH records what it was asked (never the machine's own).
    let asked = d.t.path().join("systemctl.log");
    let path = crate::util::stand_in(
        d.t.path(),
        "systemctl",
        &format!("echo \"$*\" >> '{}'", asked.display()),
    );
    let mut c = d.cmd();
    c.env("XDG_CONFIG_HOME", &cfg_home)
        .env("PATH", &path)
        .args(["install", "--key-file", key.to_str().unwrap()]);
    assert_eq!(run(c, &[]).0, 0);
    let (rc, out, _) = run(
        d.offline()
            .env("XDG_CONFIG_HOME", &cfg_home)
            .env("PATH", &path)
            .arg("uninstall"),
        &[],
    );
    assert_eq!(rc, 0, "{out}");
    assert_eq!(
        fs::read_to_string(&asked).unwrap(),
        "--user disable --now immich-device-sync.timer\n\
         --user daemon-reload\n\
         --user enable --now immich-device-sync.service\n\
         --user disable --now immich-device-sync.service\n\
         --user daemon-reload\n",
        "switching from the timer disables it; uninstall disables the service"
    );
    assert!(
        !service.exists() && !timer.exists() && !settings.exists(),
        "{out}"
    );
}

/// With inotify (the default on a local file system), after the start-up sync a
/// file copied in, and a folder of photos moved in, are each synced by looking
/// at those paths only: the sync says `walks=0` and uploads just them.
#[test]
fn watch_by_inotify_syncs_the_changed_paths_without_a_walk() {
    let d = Device::new(TestServerOptions::v3());
    d.file("Camera/a.jpg", &jpg(1, 500));
    let mut c = d.cmd();
    c.args(["watch", "--trigger-delay", "100ms"]);
    let w = crate::util::spawn(c);
    w.wait_for("watching by inotify events");
    let line = w.wait_for("sync finished");
    assert!(line.contains("walks=1"), "the start-up sync walks: {line}");

    // Written elsewhere, then copied in, as a file manager would.
    let staged = d.t.path().join("staged.jpg");
    write(&staged, &jpg(2, 800));
    fs::copy(&staged, d.root.join("Camera/b.jpg")).unwrap();
    let line = w.wait_for("sync finished");
    assert!(
        line.contains("walks=0") && line.contains("uploaded=1"),
        "{line}"
    );

    let trip = d.t.path().join("Trip");
    write(&trip.join("c.jpg"), &jpg(3, 600));
    write(&trip.join("d.jpg"), &jpg(4, 600));
    fs::rename(&trip, d.root.join("Trip")).unwrap();
    let line = w.wait_for("sync finished");
    assert!(
        line.contains("walks=0") && line.contains("uploaded=2"),
        "{line}"
    );
    let names: std::collections::BTreeSet<String> =
        d.server.assets().into_iter().map(|a| a.filename).collect();
    assert_eq!(names.len(), 4, "{names:?}");

    assert!(
        Command::new("kill")
            .args(["-TERM", &w.child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    w.wait_for("watch stopped");
    assert_eq!(w.finish().0, 0);
}

/// On a v2 server too, a live photo goes as the v2 app sent it: the motion
/// video first with `visibility=hidden`, then the still naming it in
/// `livePhotoVideoId` (the server links at upload; nothing else is asked).
#[test]
fn a_live_photo_on_a_v2_server_sends_the_hidden_video_first() {
    let d = Device::new(TestServerOptions::v2());
    d.file("Camera/IMG_7001.jpg", &jpg(1, 900));
    d.file(
        "Camera/IMG_7001.mov",
        &imb_testkit::fixtures::real_mov(2, 1, None),
    );
    let (rc, s, err) = run(d.cmd(), &[]);
    assert_eq!(
        (rc, &s["uploaded"], &s["live_photos"]),
        (0, &2.into(), &1.into()),
        "{s}\n{err}"
    );
    let assets = d.server.assets();
    assert_eq!(assets[0].filename, "IMG_7001.mov", "the video first");
    assert_eq!(
        assets[0].fields.get("visibility").map(String::as_str),
        Some("hidden")
    );
    assert_eq!(
        assets[1].fields.get("livePhotoVideoId"),
        Some(&assets[0].id)
    );
    assert!(
        assets[1].fields.contains_key("deviceAssetId"),
        "v2's device fields"
    );
}

/// A stand-in desktop: what a notification daemon on the session bus was asked
/// to show, as (summary, body).
#[derive(Clone, Default)]
struct Desktop(Arc<Mutex<Vec<(String, String)>>>);

#[zbus::interface(name = "org.freedesktop.Notifications")]
impl Desktop {
    #[allow(clippy::too_many_arguments)]
    fn notify(
        &self,
        _app: String,
        replaces: u32,
        _icon: String,
        summary: String,
        body: String,
        _actions: Vec<String>,
        _hints: std::collections::HashMap<String, zbus::zvariant::OwnedValue>,
        _timeout: i32,
    ) -> u32 {
        let mut shown = self.0.lock().unwrap();
        shown.push((summary, body));
        if replaces == 0 {
            shown.len() as u32
        } else {
            replaces
        }
    }
    fn close_notification(&self, _id: u32) {}
    fn get_capabilities(&self) -> Vec<String> {
        vec!["body".into()]
    }
}

/// A private session bus (`dbus-daemon --session`) with [`Desktop`] on it.
struct Bus {
    daemon: std::process::Child,
    address: String,
    desktop: Desktop,
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

fn session_bus() -> Bus {
    use std::io::BufRead;
    let mut daemon = Command::new("dbus-daemon")
        .args(["--session", "--nofork", "--print-address=1"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("dbus-daemon (`cargo xtask prepare` installs it)");
    let mut address = String::new();
    std::io::BufReader::new(daemon.stdout.take().unwrap())
        .read_line(&mut address)
        .unwrap();
    let address = address.trim().to_owned();
    assert!(address.starts_with("unix:"), "{address}");
    let desktop = Desktop::default();
    let (ready, up) = std::sync::mpsc::channel();
    let (d, a) = (desktop.clone(), address.clone());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let conn = zbus::connection::Builder::address(a.as_str())
                .unwrap()
                .name("org.freedesktop.Notifications")
                .unwrap()
                .serve_at("/org/freedesktop/Notifications", d)
                .unwrap()
                .build()
                .await
                .unwrap();
            ready.send(()).unwrap();
            // Serves until the test's process ends.
            std::future::pending::<()>().await;
            drop(conn);
        });
    });
    up.recv().unwrap();
    Bus {
        daemon,
        address,
        desktop,
    }
}

/// With `--notify`, on a session bus: upload progress ("Uploading 1/2
/// files…"), one notification per kind of failure with the file's name and the
/// reason, and the quota stop ("Backup paused: quota reached"). Without a bus
/// the run is the same and says so in its log.
#[test]
fn notifications_say_progress_failures_and_the_quota() {
    let uploads = Arc::new(AtomicUsize::new(0));
    let u = uploads.clone();
    let d = Device::new(
        TestServerOptions::v3()
            .with_quota(2500)
            .with_faults(move |s: &Seen| {
                if s.method == "POST" && s.path() == "/api/assets" {
                    return match u.fetch_add(1, Ordering::SeqCst) {
                        0 => Fault::Status(400),
                        // Long enough for the progress notification to be shown.
                        _ => Fault::Delay(Duration::from_secs(3)),
                    };
                }
                Fault::Serve
            }),
    );
    for i in 0..3 {
        d.file(&format!("Camera/IMG_{i}.jpg"), &jpg(10 + i, 1000));
    }
    d.file("Camera/IMG_9.jpg", &jpg(19, 5000));
    let bus = session_bus();
    let (rc, s, err) = run(
        d.cmd().env("DBUS_SESSION_BUS_ADDRESS", &bus.address).args([
            "--notify",
            "--concurrency",
            "2",
        ]),
        &[],
    );
    assert_eq!(rc, 2, "{s}\n{err}");
    assert_eq!(
        (&s["failed"], &s["stop_reason"]),
        (&1.into(), &"quota".into()),
        "{s}"
    );
    let shown = bus.desktop.0.lock().unwrap().clone();
    assert!(
        shown.iter().any(|(t, b)| t == "Backing up to Immich"
            && b.starts_with("Uploading ")
            && b.ends_with("/2 files…")),
        "{shown:?}"
    );
    let failed = s["failures"][0]["path"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    assert!(
        shown
            .iter()
            .any(|(t, b)| *t == format!("{failed} could not be uploaded") && b.contains("400")),
        "{shown:?}"
    );
    assert!(
        shown
            .iter()
            .any(|(t, _)| t == "Backup paused: quota reached"),
        "{shown:?}"
    );

    // No bus: the same run, no notification, said once.
    let o = d
        .cmd()
        .env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent")
        .arg("--notify")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("no desktop notifications"));
}
