//! Unit tests: selection, candidates, the state database, media parsing, locks,
//! conditions, and whole runs against the test Immich server.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use imb_testkit::immich::{DEFAULT_EMAIL, TestServer, TestServerOptions};
use proptest::prelude::*;

use crate::conditions::{Check, charging, metered_from_nmcli};
use crate::media::{self, test_files};
use crate::watch::Debounce;
use crate::{
    AlbumChoice, DeviceSync, FileStatus, Retry, RunLock, RunRecord, Selection, StateDb, StopReason,
    SyncConfig, album_of, reason,
};

fn write(p: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
}

/// Distinct JPEG-looking bytes per `seed`.
fn jpg(seed: u32, len: usize) -> Vec<u8> {
    let mut v = vec![0xff, 0xd8, 0xff, 0xe0];
    v.extend(seed.to_le_bytes());
    v.extend((0..len).map(|i| (i as u32).wrapping_mul(seed | 1) as u8));
    v
}

// ---- selection ----

#[test]
fn exclusion_wins_over_selection() {
    let s = Selection::albums(["Camera", "Screenshots"]).excluding(["Screenshots"]);
    assert_eq!(s.choice("Camera"), AlbumChoice::Selected);
    assert_eq!(s.choice("Screenshots"), AlbumChoice::Excluded);
    assert_eq!(s.choice("WhatsApp"), AlbumChoice::NotSelected);
    let r = Selection::recents().excluding(["WhatsApp Images"]);
    assert!(r.is_recents());
    assert!(r.includes("Camera"));
    assert!(!r.includes("WhatsApp Images"));
}

#[test]
fn naming_recents_or_nothing_selects_everything() {
    assert!(Selection::albums(Vec::<String>::new()).is_recents());
    assert!(Selection::albums(["Camera", crate::RECENTS]).is_recents());
    assert!(!Selection::albums(["Camera"]).is_recents());
}

#[test]
fn the_album_is_the_directory_that_directly_contains_the_file() {
    assert_eq!(album_of(Path::new("/sd/DCIM/Camera/IMG_1.jpg")), "Camera");
    assert_eq!(
        album_of(Path::new("/sd/DCIM/Camera/2024/IMG_1.jpg")),
        "2024"
    );
    assert_eq!(album_of(Path::new("/IMG_1.jpg")), "/");
}

proptest! {
    /// Backup Candidates = Selected − Excluded, for any sets and album.
    #[test]
    fn selection_is_selected_minus_excluded(
        selected in proptest::collection::btree_set("[a-c]{1,2}", 0..4),
        excluded in proptest::collection::btree_set("[a-c]{1,2}", 0..4),
        album in "[a-c]{1,2}",
    ) {
        let s = Selection::albums(selected.clone()).excluding(excluded.clone());
        let expected = (selected.is_empty() || selected.contains(&album)) && !excluded.contains(&album);
        prop_assert_eq!(s.includes(&album), expected);
        prop_assert_eq!(s.choice(&album) == AlbumChoice::Excluded, excluded.contains(&album));
    }

    /// What the state records is what it returns, for any path bytes, size and mtime.
    #[test]
    fn state_round_trips(
        name in proptest::collection::vec(1u8..=255, 1..40),
        size in 0u64..(1 << 50),
        mtime in any::<i64>(),
        sha1 in any::<[u8; 20]>(),
        asset in "[a-f0-9-]{1,36}",
    ) {
        use std::os::unix::ffi::OsStrExt;
        let name: Vec<u8> = name.into_iter().map(|b| if b == b'/' { b'_' } else { b }).collect();
        let dir = tempfile::tempdir().unwrap();
        let db = StateDb::open(dir.path()).unwrap();
        let path = Path::new("/x").join(std::ffi::OsStr::from_bytes(&name));
        db.record_hash(&path, "Album", size, mtime, &sha1).unwrap();
        let r = db.get(&path).unwrap().unwrap();
        prop_assert_eq!(&r.path, &path);
        prop_assert_eq!((r.size, r.mtime_ns, r.sha1, r.status), (size, mtime, Some(sha1), FileStatus::Pending));
        db.record_on_server(&path, FileStatus::Uploaded, &asset, true).unwrap();
        let r = db.get(&path).unwrap().unwrap();
        prop_assert_eq!(r.asset_id.as_deref(), Some(asset.as_str()));
        prop_assert_eq!(r.attempts, 1);
        prop_assert_eq!(db.asset_for_sha1(&sha1).unwrap(), Some(asset));
    }
}

// ---- state ----

#[test]
fn state_records_failures_duplicates_and_forgets() {
    let dir = tempfile::tempdir().unwrap();
    let db = StateDb::open(dir.path()).unwrap();
    let (a, b) = (Path::new("/r/A/a.jpg"), Path::new("/r/B/b.jpg"));
    db.record_hash(a, "A", 10, 5, &[1; 20]).unwrap();
    db.record_failure(a, "A", 10, 5, "HTTP 503").unwrap();
    db.record_failure(a, "A", 10, 5, "HTTP 503 again").unwrap();
    db.record_failure(b, "B", 3, 4, "permission denied")
        .unwrap();
    let failed = db.failed().unwrap();
    assert_eq!(failed.len(), 2);
    assert_eq!(failed[0].path, a);
    assert_eq!(failed[0].attempts, 2);
    assert_eq!(failed[0].error.as_deref(), Some("HTTP 503 again"));
    assert_eq!(failed[0].sha1, Some([1; 20]), "a failure keeps the hash");
    assert_eq!(failed[1].sha1, None);
    db.record_on_server(a, FileStatus::Duplicate, "asset-1", false)
        .unwrap();
    let r = db.get(a).unwrap().unwrap();
    assert_eq!(r.status, FileStatus::Duplicate);
    assert_eq!(r.error, None);
    assert_eq!(r.attempts, 2, "a duplicate found by checking is no attempt");
    let t = db.totals().unwrap();
    assert_eq!((t.total, t.duplicates, t.failed), (2, 1, 1));
    // Changed content starts over.
    db.record_hash(a, "A", 11, 6, &[2; 20]).unwrap();
    let r = db.get(a).unwrap().unwrap();
    assert_eq!(
        (r.status, r.asset_id, r.attempts),
        (FileStatus::Pending, None, 0)
    );
    db.forget(b).unwrap();
    assert!(db.get(b).unwrap().is_none());
    // Album sync bookkeeping.
    db.record_on_server(a, FileStatus::Uploaded, "asset-2", true)
        .unwrap();
    let pending = db.not_in_album().unwrap();
    assert_eq!(pending.len(), 1);
    db.mark_in_album(&[pending[0].id], "album-1").unwrap();
    assert!(db.not_in_album().unwrap().is_empty());
    // A new server forgets what was on the old one, but keeps the hashes.
    assert_eq!(db.forget_server().unwrap(), 1);
    let r = db.get(a).unwrap().unwrap();
    assert_eq!((r.status, r.sha1), (FileStatus::Pending, Some([2; 20])));
    // Albums and runs.
    db.set_album_backup("A", "2024-01-01T00:00:00Z").unwrap();
    assert_eq!(
        db.album_backup("A").unwrap().as_deref(),
        Some("2024-01-01T00:00:00Z")
    );
    assert_eq!(db.album_backup("B").unwrap(), None);
    assert!(db.last_run().unwrap().is_none());
    db.set_meta("k", "v").unwrap();
    db.set_meta("k", "w").unwrap();
    assert_eq!(db.meta("k").unwrap().as_deref(), Some("w"));
}

#[test]
fn state_reopens_with_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = StateDb::open(dir.path()).unwrap();
        db.record_hash(Path::new("/p"), "A", 1, 2, &[3; 20])
            .unwrap();
    }
    let db = StateDb::open_existing(dir.path()).unwrap().unwrap();
    assert_eq!(db.get(Path::new("/p")).unwrap().unwrap().size, 1);
    assert!(
        StateDb::open_existing(&dir.path().join("none"))
            .unwrap()
            .is_none()
    );
}

/// A database from before `runs.stop_reason` gains the column on open, and
/// "last backup" is the newest run that was not stopped early: a quota stop
/// after it does not move it, a run with failed files does.
#[test]
fn an_old_state_gains_stop_reasons_and_last_backup_skips_stopped_runs() {
    let dir = tempfile::tempdir().unwrap();
    {
        let c = rusqlite::Connection::open(dir.path().join(crate::STATE_FILE)).unwrap();
        c.execute_batch(
            "CREATE TABLE runs (id INTEGER PRIMARY KEY, kind TEXT NOT NULL,
               started_at TEXT NOT NULL, finished_at TEXT NOT NULL, total INTEGER NOT NULL,
               uploaded INTEGER NOT NULL, duplicates INTEGER NOT NULL, failed INTEGER NOT NULL,
               skipped INTEGER NOT NULL, bytes INTEGER NOT NULL, complete INTEGER NOT NULL);
             INSERT INTO runs VALUES (1, 'sync', 't0', 'old', 1, 1, 0, 0, 0, 1, 1);",
        )
        .unwrap();
    }
    let db = StateDb::open(dir.path()).unwrap();
    assert_eq!(db.last_finished_run().unwrap().unwrap().finished_at, "old");
    let run = |finished: &str, failed: u64, stop: Option<StopReason>| RunRecord {
        kind: "sync".into(),
        started_at: "t".into(),
        finished_at: finished.into(),
        total: 1,
        uploaded: 0,
        duplicates: 0,
        failed,
        skipped: 0,
        bytes: 0,
        complete: failed == 0 && stop.is_none(),
        stop_reason: stop,
    };
    db.record_run(&run("with failures", 1, None)).unwrap();
    db.record_run(&run("quota", 0, Some(StopReason::Quota)))
        .unwrap();
    assert_eq!(
        db.last_finished_run().unwrap().unwrap().finished_at,
        "with failures"
    );
    let last = db.last_run().unwrap().unwrap();
    assert_eq!(
        (last.finished_at.as_str(), last.stop_reason),
        ("quota", Some(StopReason::Quota))
    );
    drop(db);
    // Opening again does not add the column twice.
    assert!(StateDb::open(dir.path()).is_ok());
}

// ---- media ----

#[test]
fn exif_capture_time_with_and_without_offset() {
    let with = test_files::jpeg_with_exif("2023:07:14 18:30:05", Some("+02:00"), b"pixels");
    let exif = |b: &[u8]| media::exif_datetime(&mut std::io::Cursor::new(b));
    assert_eq!(
        exif(&with).as_deref(),
        Some("2023-07-14T18:30:05.000+02:00")
    );
    let without = test_files::jpeg_with_exif("2023:07:14 18:30:05", None, b"pixels");
    assert_eq!(exif(&without).as_deref(), Some("2023-07-14T18:30:05.000Z"));
    let zero = test_files::jpeg_with_exif("0000:00:00 00:00:00", None, b"");
    assert_eq!(exif(&zero), None);
    assert_eq!(exif(&jpg(1, 100)), None);
    assert_eq!(exif(b"not an image"), None);
    // Truncated input never panics.
    for n in 0..with.len() {
        let _ = exif(&with[..n]);
    }
}

#[test]
fn file_times_when_there_is_no_exif_and_videos_read_mvhd() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.jpg");
    write(&p, &jpg(1, 100));
    let f = std::fs::File::open(&p).unwrap();
    let mtime = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let info = media::inspect(&f, 104, mtime, false);
    assert_eq!(info.created_at, "2023-11-14T22:13:20.000Z");
    assert_eq!(info.modified_at, info.created_at);
    assert_eq!(info.duration, None);

    let v = dir.path().join("v.mp4");
    write(&v, &test_files::mp4(42, 1_600_000_000, &[0u8; 1000]));
    let f = std::fs::File::open(&v).unwrap();
    let len = f.metadata().unwrap().len();
    let info = media::inspect(&f, len, mtime, true);
    assert_eq!(info.duration, Some(Duration::from_secs(42)));
    assert_eq!(info.created_at, "2020-09-13T12:26:40.000Z");
}

#[test]
fn sidecars_are_found_in_both_namings() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("A.jpg");
    let b = dir.path().join("B.jpg");
    let c = dir.path().join("C.jpg");
    for p in [&a, &b, &c] {
        write(p, b"x");
    }
    write(&dir.path().join("A.jpg.xmp"), b"<x/>");
    write(&dir.path().join("B.xmp"), b"<x/>");
    assert_eq!(media::sidecar_of(&a), Some(dir.path().join("A.jpg.xmp")));
    assert_eq!(media::sidecar_of(&b), Some(dir.path().join("B.xmp")));
    assert_eq!(media::sidecar_of(&c), None);
}

// ---- lock, conditions, watch ----

#[test]
fn lock_is_exclusive_and_a_dead_holders_file_is_no_lock() {
    let dir = tempfile::tempdir().unwrap();
    let held = RunLock::acquire(dir.path()).unwrap();
    let err = RunLock::acquire(dir.path()).unwrap_err();
    assert!(err.is_lock_held(), "{err}");
    assert!(
        err.to_string()
            .contains(&format!("pid {}", std::process::id())),
        "{err}"
    );
    drop(held);
    // A file left by a killed run (its pid, no lock) does not hold anyone up.
    std::fs::write(dir.path().join(crate::LOCK_FILE), "4294967295\n").unwrap();
    let l = RunLock::acquire(dir.path()).unwrap();
    let text = std::fs::read_to_string(l.path()).unwrap();
    assert_eq!(text.trim(), std::process::id().to_string());
}

#[test]
fn charging_from_power_supply_files() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(charging(dir.path()), Check::Assumed(_)));
    write(&dir.path().join("BAT0/type"), b"Battery\n");
    write(&dir.path().join("BAT0/status"), b"Discharging\n");
    write(&dir.path().join("AC/type"), b"Mains\n");
    write(&dir.path().join("AC/online"), b"0\n");
    assert!(matches!(charging(dir.path()), Check::NotMet(_)));
    assert!(!charging(dir.path()).allows());
    write(&dir.path().join("AC/online"), b"1\n");
    assert_eq!(charging(dir.path()), Check::Met);
    write(&dir.path().join("AC/online"), b"0\n");
    write(&dir.path().join("BAT0/status"), b"Charging\n");
    assert_eq!(charging(dir.path()), Check::Met);
    assert!(matches!(
        charging(&dir.path().join("missing")),
        Check::Assumed(_)
    ));
}

#[test]
fn metered_from_nmcli_output() {
    assert_eq!(
        metered_from_nmcli("GENERAL.METERED:no\nGENERAL.METERED:unknown\n"),
        Check::Met
    );
    assert!(matches!(
        metered_from_nmcli("GENERAL.METERED:no\nGENERAL.METERED:yes (guessed)\n"),
        Check::NotMet(_)
    ));
    assert!(matches!(metered_from_nmcli(""), Check::Assumed(_)));
}

#[test]
fn debounce_waits_for_quiet_but_not_forever() {
    let t0 = Instant::now();
    let s = Duration::from_secs;
    let mut d = Debounce::new(s(5), s(50));
    assert!(!d.due(t0 + s(100)));
    d.changed(t0);
    assert!(!d.due(t0 + s(4)));
    assert!(d.due(t0 + s(5)));
    // Changes every 3 s keep postponing it, up to the maximum.
    for i in 1..20 {
        d.changed(t0 + s(3 * i));
        if 3 * i + 1 < 50 {
            assert!(!d.due(t0 + s(3 * i + 1)), "at {}", 3 * i + 1);
        }
    }
    assert!(d.due(t0 + s(50)));
    d.reset();
    assert!(!d.pending());
}

#[test]
fn fingerprint_changes_with_files() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("A/a.jpg"), b"1");
    let roots = vec![dir.path().to_path_buf()];
    let f1 = crate::watch::fingerprint(&roots);
    assert_eq!(f1, crate::watch::fingerprint(&roots));
    write(&dir.path().join("A/b.jpg"), b"2");
    assert_ne!(f1, crate::watch::fingerprint(&roots));
    // Hidden files do not count.
    let f2 = crate::watch::fingerprint(&roots);
    write(&dir.path().join("A/.thumbs/c.jpg"), b"3");
    assert_eq!(f2, crate::watch::fingerprint(&roots));
}

// ---- runs against the test server ----

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    state: PathBuf,
    server: TestServer,
}

impl Fixture {
    fn new(opts: TestServerOptions) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("DCIM");
        let state = dir.path().join("state");
        std::fs::create_dir_all(&root).unwrap();
        Fixture {
            _dir: dir,
            root,
            state,
            server: TestServer::start(opts),
        }
    }

    fn config(&self) -> SyncConfig {
        SyncConfig::new(vec![self.root.clone()], self.state.clone())
    }

    fn sync(&self, cfg: SyncConfig) -> DeviceSync {
        DeviceSync::new(Arc::new(self.server.client()), cfg)
    }

    fn posts(&self) -> Vec<String> {
        self.server
            .requests()
            .iter()
            .filter(|s| s.method != "GET")
            .map(|s| format!("{} {}", s.method, s.path()))
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn first_sync_then_a_rerun_that_reads_nothing() {
    let fx = Fixture::new(TestServerOptions::v3());
    write(&fx.root.join("Camera/IMG_1.jpg"), &jpg(1, 2000));
    write(&fx.root.join("Camera/IMG_2.jpg"), &jpg(2, 3000));
    write(&fx.root.join("Camera/notes.txt"), b"not media");
    write(&fx.root.join("Camera/IMG_2.jpg.xmp"), b"<x:xmpmeta/>");
    write(&fx.root.join("Screenshots/S_1.png"), &jpg(3, 100));

    let s = fx.sync(fx.config()).run().await.unwrap();
    assert_eq!(
        (s.scanned, s.total, s.candidates, s.hashed, s.uploaded),
        (3, 3, 3, 3, 3),
        "{s:?}"
    );
    assert_eq!(s.skipped.get(reason::UNSUPPORTED), Some(&1));
    assert!(!s.has_problems());
    let assets = fx.server.assets();
    assert_eq!(assets.len(), 3);
    let with_sidecar = assets.iter().find(|a| a.filename == "IMG_2.jpg").unwrap();
    assert_eq!(
        with_sidecar.sidecar,
        Some(("IMG_2.xmp".to_owned(), 12)),
        "the sidecar travels with its photo"
    );

    let before = fx.server.requests().len();
    let s = fx.sync(fx.config()).run().await.unwrap();
    assert_eq!(
        (s.unchanged, s.total, s.candidates, s.hashed, s.uploaded),
        (3, 3, 0, 0, 0),
        "{s:?}"
    );
    let after: Vec<String> = fx.server.requests()[before..]
        .iter()
        .map(|r| format!("{} {}", r.method, r.path()))
        .collect();
    assert!(
        after.iter().all(|r| r.starts_with("GET ")),
        "a rerun only reads server info: {after:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn candidates_are_new_changed_or_failed_files_in_selected_albums() {
    let fx = Fixture::new(TestServerOptions::v3());
    write(&fx.root.join("Camera/a.jpg"), &jpg(1, 500));
    write(&fx.root.join("Camera/b.jpg"), &jpg(2, 500));
    write(&fx.root.join("WhatsApp/w.jpg"), &jpg(3, 500));
    let mut cfg = fx.config();
    cfg.selection = Selection::recents().excluding(["WhatsApp"]);
    let s = fx.sync(cfg.clone()).run().await.unwrap();
    assert_eq!(s.uploaded, 2);
    assert_eq!(s.skipped.get(reason::EXCLUDED_ALBUM), Some(&1));

    // Change one file (size), add one: exactly those two are hashed.
    write(&fx.root.join("Camera/a.jpg"), &jpg(4, 600));
    write(&fx.root.join("Camera/c.jpg"), &jpg(5, 600));
    let s = fx.sync(cfg.clone()).run().await.unwrap();
    assert_eq!(
        (s.unchanged, s.total, s.candidates, s.hashed, s.uploaded),
        (1, 3, 2, 2, 2),
        "{s:?}"
    );

    // Naming only Camera leaves WhatsApp unselected rather than excluded.
    cfg.selection = Selection::albums(["Camera"]);
    let s = fx.sync(cfg).run().await.unwrap();
    assert_eq!(s.skipped.get(reason::NOT_SELECTED), Some(&1));
    // Camera's files are all known: in the selection, none a candidate.
    assert_eq!((s.total, s.candidates), (s.scanned, 0), "{s:?}");
    assert!(s.total > 0, "{s:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn known_content_is_a_duplicate_without_uploading() {
    let fx = Fixture::new(TestServerOptions::v3());
    let data = jpg(9, 4000);
    let existing = fx.server.add_asset(DEFAULT_EMAIL, "old.jpg", &data);
    write(&fx.root.join("Camera/same.jpg"), &data);
    write(&fx.root.join("Other/copy.jpg"), &data);
    let s = fx.sync(fx.config()).run().await.unwrap();
    assert_eq!((s.duplicates, s.uploaded), (2, 0), "{s:?}");
    assert!(!fx.posts().contains(&"POST /api/assets".to_owned()));
    let db = StateDb::open(&fx.state).unwrap();
    let r = db
        .get(&fx.root.join("Camera/same.jpg").canonicalize().unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(
        (r.status, r.asset_id.as_deref()),
        (FileStatus::Duplicate, Some(existing.as_str()))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_uploads_and_records_nothing() {
    let fx = Fixture::new(TestServerOptions::v3());
    write(&fx.root.join("Camera/a.jpg"), &jpg(1, 500));
    let mut cfg = fx.config();
    cfg.dry_run = true;
    let s = fx.sync(cfg).run().await.unwrap();
    assert_eq!((s.to_upload, s.remaining, s.uploaded), (1, 1, 0));
    assert!(fx.server.assets().is_empty());
    let db = StateDb::open(&fx.state).unwrap();
    assert_eq!(db.totals().unwrap().total, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn album_sync_uses_the_oldest_same_name_album_and_creates_missing_ones() {
    let fx = Fixture::new(TestServerOptions::v3());
    let first = fx
        .server
        .add_album(DEFAULT_EMAIL, "Trip", "2024-01-01T00:00:00.000Z");
    let _second = fx
        .server
        .add_album(DEFAULT_EMAIL, "Trip", "2024-06-01T00:00:00.000Z");
    write(&fx.root.join("Trip/a.jpg"), &jpg(1, 500));
    write(&fx.root.join("Trip/b.jpg"), &jpg(2, 500));
    write(&fx.root.join("Camera/c.jpg"), &jpg(3, 500));
    let mut cfg = fx.config();
    cfg.album_sync = true;
    let s = fx.sync(cfg.clone()).run().await.unwrap();
    assert_eq!((s.albums.created, s.albums.added), (1, 3), "{s:?}");
    let albums = fx.server.albums();
    let trip = albums.iter().find(|a| a.id == first).unwrap();
    assert_eq!(trip.assets.len(), 2);
    assert_eq!(albums.iter().filter(|a| a.name == "Camera").count(), 1);
    // Nothing left to add on a rerun: no album requests at all.
    let before = fx.server.requests().len();
    let s = fx.sync(cfg).run().await.unwrap();
    assert_eq!(s.albums.added, 0);
    assert!(
        fx.server.requests()[before..]
            .iter()
            .all(|r| !r.path().starts_with("/api/albums"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failure_is_recorded_and_retried_by_id() {
    // Two 503s: bulk-upload-check (same prefix) and the upload; no client retries.
    let fx = Fixture::new(
        TestServerOptions::v3().with_faults(imb_testkit::immich::burst("/api/assets", 2, 503)),
    );
    write(&fx.root.join("Camera/a.jpg"), &jpg(1, 500));
    let client = {
        let mut cfg = fx.server.client_config();
        cfg.retry = imb_immich::RetryPolicy::none();
        Arc::new(imb_immich::ImmichClient::new(cfg).unwrap())
    };
    let s = DeviceSync::new(client.clone(), fx.config())
        .run()
        .await
        .unwrap();
    assert_eq!(s.failed, 1, "{s:?}");
    assert!(s.has_problems());
    let id = s.failures[0].id.unwrap();
    let failed = crate::failed_uploads(&fx.state).unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].id, id);
    assert!(failed[0].error.as_deref().unwrap().contains("503"));

    let err = DeviceSync::new(client.clone(), fx.config())
        .retry(Retry::Ids(vec![id + 100]))
        .await
        .unwrap_err();
    assert!(matches!(err, crate::Error::UnknownFailedId { .. }), "{err}");
    let s = DeviceSync::new(client, fx.config())
        .retry(Retry::Ids(vec![id]))
        .await
        .unwrap();
    assert_eq!(
        (s.total, s.candidates, s.hashed, s.uploaded),
        (1, 1, 0, 1),
        "{s:?}"
    );
    assert!(crate::failed_uploads(&fx.state).unwrap().is_empty());
}

/// A client of the test Immich server (fast retries).
pub(crate) trait OnTestServer {
    fn client_config_for(&self, key: &str) -> imb_immich::ClientConfig;
    fn client_config(&self) -> imb_immich::ClientConfig;
    fn client(&self) -> imb_immich::ImmichClient {
        imb_immich::ImmichClient::new(self.client_config()).expect("client builds")
    }
}

impl OnTestServer for imb_testkit::immich::TestServer {
    fn client_config_for(&self, key: &str) -> imb_immich::ClientConfig {
        imb_immich::ClientConfig::new(
            self.api_url(),
            imb_immich::ApiKey::new(key, "test server").expect("valid test key"),
        )
        .with_retry(imb_immich::RetryPolicy::fast())
    }
    fn client_config(&self) -> imb_immich::ClientConfig {
        self.client_config_for(self.key())
    }
}

#[test]
fn network_rules_hold_back_only_the_type_they_name() {
    use crate::conditions::Rules;
    let metered = || Check::NotMet("metered".into());
    let asked = std::cell::Cell::new(false);
    let unasked = || {
        asked.set(true);
        Check::Met
    };
    // No rule: nothing is asked, everything goes.
    let a = Rules::default().allowed(|| unreachable!(), unasked);
    assert!(a.photos && a.videos && a.why.is_none() && !asked.get());
    let mut r = Rules {
        unmetered_videos: true,
        ..Rules::default()
    };
    let a = r.allowed(|| unreachable!(), metered);
    assert!(a.photos && !a.videos && !a.nothing());
    assert_eq!(
        a.why.as_deref(),
        Some("metered: videos wait for an unmetered network")
    );
    r.unmetered_photos = true;
    let a = r.allowed(|| unreachable!(), metered);
    assert!(a.nothing());
    assert_eq!(a.why.as_deref(), Some("metered"));
    // Charging first: on battery nothing runs, whatever the network.
    r.charging = true;
    let a = r.allowed(
        || Check::NotMet("on battery power".into()),
        || unreachable!(),
    );
    assert!(a.nothing());
    assert_eq!(a.why.as_deref(), Some("on battery power"));
    // What cannot be told is assumed met, and said.
    let a = r.allowed(|| Check::Met, || Check::Assumed("no nmcli".into()));
    assert!(a.photos && a.videos && a.assumed == ["no nmcli"]);
}

proptest! {
    /// A device's file may be anything: whatever follows a container's magic
    /// (JPEG, TIFF both orders, PNG, HEIF, WebP), reading its EXIF never panics.
    #[test]
    fn exif_of_any_bytes_never_panics(
        magic in 0usize..6,
        rest in proptest::collection::vec(any::<u8>(), 0..1500),
    ) {
        let magics: [&[u8]; 6] = [
            &[0xff, 0xd8, 0xff, 0xe1],
            b"II*\0",
            b"MM\0*",
            b"\x89PNG\r\n\x1a\n",
            b"\0\0\0\x18ftypheic\0\0\0\0heic",
            b"RIFF\0\0\0\0WEBPVP8X",
        ];
        let mut b = magics[magic].to_vec();
        b.extend(rest);
        let _ = media::exif_datetime(&mut std::io::Cursor::new(&b[..]));
    }
}

/// Placeholders are told by their metadata: an old unallocated non-empty file
/// is one, a fresh or small or allocated one is not; Windows' offline bits
/// as CIFS shows them.
#[test]
fn placeholders_are_told_without_reading() {
    use crate::offline::{SETTLE, dos_attributes, placeholder};
    let dir = tempfile::tempdir().unwrap();
    let sparse = dir.path().join("IMG_1.jpg");
    std::fs::File::create(&sparse)
        .unwrap()
        .set_len(1 << 20)
        .unwrap();
    let now = std::time::SystemTime::now();
    let old = now - SETTLE - Duration::from_secs(1);
    assert_eq!(
        placeholder(&sparse, 1 << 20, 0, old, now),
        Some("no data on this disk")
    );
    assert_eq!(placeholder(&sparse, 1 << 20, 0, now, now), None, "fresh");
    assert_eq!(placeholder(&sparse, 100, 0, old, now), None, "inline-sized");
    assert_eq!(
        placeholder(&sparse, 1 << 20, 2048, old, now),
        None,
        "allocated"
    );
    assert_eq!(dos_attributes(b"0x20"), Some(0x20));
    assert_eq!(dos_attributes(b"0x401020\0"), Some(0x40_1020));
    assert_eq!(dos_attributes(b"junk"), None);
}

/// What inotify reports that can mean new content: creation, writes, renames in,
/// a closed write; not reads, opens, deletions or permission changes (our own
/// hashing reads must not trigger a sync).
#[test]
fn only_events_that_can_bring_content_count() {
    use crate::watch::matters;
    use notify::event::{
        AccessKind, AccessMode, CreateKind, DataChange, EventKind, MetadataKind, ModifyKind,
        RemoveKind, RenameMode,
    };
    for yes in [
        EventKind::Create(CreateKind::File),
        EventKind::Modify(ModifyKind::Data(DataChange::Any)),
        EventKind::Modify(ModifyKind::Name(RenameMode::To)),
        EventKind::Modify(ModifyKind::Metadata(MetadataKind::WriteTime)),
        EventKind::Access(AccessKind::Close(AccessMode::Write)),
    ] {
        assert!(matters(&yes), "{yes:?}");
    }
    for no in [
        EventKind::Access(AccessKind::Open(AccessMode::Read)),
        EventKind::Access(AccessKind::Close(AccessMode::Read)),
        EventKind::Remove(RemoveKind::File),
        EventKind::Modify(ModifyKind::Metadata(MetadataKind::Permissions)),
    ] {
        assert!(!matters(&no), "{no:?}");
    }
}

/// Pairing rules: matching identifiers pair whatever the names; differing ones,
/// or one side only, never; without identifiers, the same stem and a video of
/// at most 4 s. The still's identifier is read from its Apple MakerNote.
#[test]
fn live_photo_pairs_by_identifier_or_by_stem_and_a_short_video() {
    use crate::run::live_is_pair as is_pair;
    let s3 = Some(Duration::from_secs(3));
    assert!(is_pair(Some("A"), Some("A"), false, None));
    assert!(!is_pair(Some("A"), Some("B"), true, s3));
    assert!(!is_pair(Some("A"), None, true, s3));
    assert!(!is_pair(None, Some("A"), true, s3));
    assert!(is_pair(None, None, true, s3));
    assert!(is_pair(None, None, true, Some(Duration::from_secs(4))));
    assert!(!is_pair(
        None,
        None,
        true,
        Some(Duration::from_millis(4001))
    ));
    assert!(!is_pair(None, None, true, None), "a duration is needed");
    assert!(!is_pair(None, None, false, s3));

    let still = imb_testkit::fixtures::with_apple_content_id(&jpg(1, 200), "5E1B-ID");
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("IMG_1.jpg");
    write(&p, &still);
    let f = std::fs::File::open(&p).unwrap();
    assert_eq!(
        media::live_info(&f, still.len() as u64, false).0.as_deref(),
        Some("5E1B-ID")
    );
    assert_eq!(
        media::apple_content_id(b"Apple iOS\0\0\x01MM\0"),
        None,
        "truncated"
    );
    assert_eq!(media::apple_content_id(b"Canon"), None);
}

/// Polling is chosen by the file system: network and FUSE ones by their
/// `statfs` magic; a local directory (this test's) is watched by events.
#[test]
fn polling_is_chosen_for_network_and_fuse_file_systems() {
    use crate::watch::{missed_by_inotify, poll_reason};
    assert_eq!(missed_by_inotify(0x6969), Some("NFS"));
    assert_eq!(missed_by_inotify(0xff53_4d42), Some("SMB"));
    assert_eq!(missed_by_inotify(0xfe53_4d42), Some("SMB"));
    assert_eq!(missed_by_inotify(0x6573_5546), Some("FUSE"));
    assert_eq!(missed_by_inotify(0x0102_1997), Some("9p"));
    assert_eq!(missed_by_inotify(0xef53), None, "ext4");
    assert_eq!(missed_by_inotify(0x0102_1994), None, "tmpfs");
    let dir = tempfile::tempdir().unwrap();
    let local = rustix::fs::statfs(dir.path()).unwrap();
    #[allow(clippy::unnecessary_cast)]
    let magic = local.f_type as i64;
    assert_eq!(
        poll_reason(&[dir.path().to_path_buf()]).is_some(),
        missed_by_inotify(magic).is_some()
    );
}
