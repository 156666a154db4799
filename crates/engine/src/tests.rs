//! Engine tests against the local-directory backend (real files) and, for
//! logic that does not depend on the store, the in-memory one.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use imb_layout::ManifestName;
use imb_manifest::ManifestReader;
use imb_storage::{InMemory, Key, LocalDir, ObjectRead};

use crate::{Backup, BackupConfig, Summary};

struct Fixture {
    _dir: tempfile::TempDir,
    src: PathBuf,
    dst: PathBuf,
}

fn write(p: &Path, bytes: &[u8]) {
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, bytes).unwrap();
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("upload");
    let dst = dir.path().join("backup");
    for top in [
        "library",
        "upload",
        "thumbs",
        "encoded-video",
        "profile",
        "backups",
    ] {
        write(&src.join(top).join(".immich"), b"");
    }
    write(
        &src.join("library/admin/2024/2024-01-15/IMG_0001.jpg"),
        &[1u8; 5000],
    );
    write(
        &src.join("library/admin/2024/2024-01-15/IMG_0001.jpg.xmp"),
        b"<xmp/>",
    );
    write(
        &src.join("library/admin/2024/2024-01-16/IMG_0002.jpg"),
        &[2u8; 70_000],
    );
    write(&src.join("upload/u1/ab/cd/abcd.mp4"), &[3u8; 300_000]);
    write(&src.join("thumbs/u1/ab/cd/abcd-preview.jpeg"), &[4u8; 100]);
    write(&src.join("encoded-video/u1/ab/cd/abcd.mp4"), &[5u8; 100]);
    Fixture {
        _dir: dir,
        src,
        dst,
    }
}

async fn run_with(
    src: &Path,
    store: Arc<LocalDir>,
    tweak: impl FnOnce(&mut BackupConfig),
) -> Summary {
    let mut cfg = BackupConfig::new(src);
    cfg.small_file = 64 * 1024; // exercise both the in-memory and the streamed path
    tweak(&mut cfg);
    Backup::new(cfg, store.clone())
        .with_replace(store)
        .run()
        .await
        .expect("backup runs")
}

async fn run(f: &Fixture) -> Summary {
    run_with(&f.src, Arc::new(LocalDir::new(&f.dst).unwrap()), |_| {}).await
}

/// The target's manifest as a reader sees it: the newest full manifest with the
/// deltas after it replayed, in a file of its own.
fn fetched(f: &Fixture) -> std::path::PathBuf {
    let (path, got) = fetch_at(f, None);
    assert!(got.warnings.is_empty(), "{got:?}");
    path
}

/// The restore point at `at` (the newest when `None`), and what the fetch found.
fn fetch_at(
    f: &Fixture,
    at: Option<std::time::SystemTime>,
) -> (std::path::PathBuf, imb_layout::Fetched) {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = f._dir.path().join(format!("fetched-{n}.db"));
    let (dst, p) = (f.dst.clone(), path.clone());
    // The tests run on a runtime already; fetch on a thread with its own.
    let got = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let store = LocalDir::new(&dst).unwrap();
        rt.block_on(imb_layout::fetch_manifest(&store, &p, at))
            .unwrap()
    })
    .join()
    .unwrap();
    (path, got)
}

fn manifest(f: &Fixture) -> ManifestReader {
    ManifestReader::open(&fetched(f)).unwrap()
}

fn assert_counts(s: &Summary) {
    assert_eq!(
        s.files_scanned,
        s.files_uploaded + s.files_unchanged + s.files_deduplicated + s.files_failed,
        "{s:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn first_run_uploads_everything_but_excluded_folders() {
    let f = fixture();
    let s = run(&f).await;
    assert_counts(&s);
    // 6 markers + 2 photos + sidecar + video; thumbs/ and encoded-video/ content excluded.
    assert_eq!(s.files_scanned, 10, "{s:?}");
    // The six empty markers share one content; workers running at once may each
    // upload it (dedup sees committed rows), so only the sum is fixed.
    assert_eq!(s.files_uploaded + s.files_deduplicated, 10, "{s:?}");
    assert_eq!(s.files_failed, 0);
    assert_eq!(s.bytes_uploaded, 5000 + 6 + 70_000 + 300_000);
    assert!(
        f.dst
            .join("library/library/admin/2024/2024-01-15/IMG_0001.jpg")
            .is_file()
    );
    assert!(
        f.dst.join("library/thumbs/.immich").is_file(),
        "markers of excluded folders are kept"
    );
    assert!(!f.dst.join("library/thumbs/u1").exists());
    assert_eq!(
        fs::read(f.dst.join("library/upload/u1/ab/cd/abcd.mp4")).unwrap(),
        vec![3u8; 300_000]
    );
    let m = manifest(&f);
    let rec = m
        .get("library/admin/2024/2024-01-16/IMG_0002.jpg")
        .unwrap()
        .unwrap();
    assert_eq!(rec.checksum, imb_hash::digest(&[2u8; 70_000]).sha256);
    assert_eq!(rec.sha1, imb_hash::digest(&[2u8; 70_000]).sha1);
    assert!(m.metadata("last_backup").unwrap().is_some());
    let manifests: Vec<_> = fs::read_dir(&f.dst)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("manifest-") && !n.contains(".part-"))
        .collect();
    assert_eq!(manifests.len(), 1, "{manifests:?}");
    assert_eq!(s.manifest.as_deref(), Some(manifests[0].as_str()));
}

#[tokio::test(flavor = "multi_thread")]
async fn every_marker_gets_its_object_within_one_run() {
    // Six empty .immich markers share one content. Within a run, a worker's dedup
    // lookup sees only rows the coordinator has committed (every 512 writes), so
    // with one worker all six are uploaded: exactly ten uploads, no dedup. Dedup
    // across runs is `moved_library_is_deduplicated_not_uploaded`. (This test
    // used to assert only uploaded + deduplicated = 10, true with zero dedup.)
    let f = fixture();
    let s = run_with(&f.src, Arc::new(LocalDir::new(&f.dst).unwrap()), |c| {
        c.workers = 1;
    })
    .await;
    assert_eq!((s.files_uploaded, s.files_deduplicated), (10, 0), "{s:?}");
    for top in [
        "library",
        "upload",
        "thumbs",
        "encoded-video",
        "profile",
        "backups",
    ] {
        assert!(
            f.dst.join("library").join(top).join(".immich").is_file(),
            "{top}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rerun_without_changes_uploads_nothing() {
    let f = fixture();
    run(&f).await;
    let s = run(&f).await;
    assert_counts(&s);
    assert_eq!(s.files_uploaded, 0, "{s:?}");
    assert_eq!(s.files_deduplicated, 0);
    assert_eq!(s.bytes_uploaded, 0);
    assert_eq!(s.files_unchanged, 10);
    assert_eq!(s.files_archived, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn modified_file_keeps_its_old_content_as_history() {
    let f = fixture();
    run(&f).await;
    let p = f.src.join("library/admin/2024/2024-01-15/IMG_0001.jpg");
    write(&p, &[9u8; 6000]);
    let s = run(&f).await;
    assert_eq!(s.files_uploaded, 1, "{s:?}");
    // The first content is untouched; the new one is a version.
    assert_eq!(
        fs::read(
            f.dst
                .join("library/library/admin/2024/2024-01-15/IMG_0001.jpg")
        )
        .unwrap(),
        vec![1u8; 5000]
    );
    let m = manifest(&f);
    let rec = m
        .get("library/admin/2024/2024-01-15/IMG_0001.jpg")
        .unwrap()
        .unwrap();
    let k = rec
        .object_key
        .clone()
        .expect("new content is at a version key");
    assert!(
        k.starts_with("versions/library/admin/2024/2024-01-15/IMG_0001.jpg/"),
        "{k}"
    );
    assert_eq!(fs::read(f.dst.join(&k)).unwrap(), vec![9u8; 6000]);
    let w = crate::tests::writer(&f);
    let h = w
        .history("library/admin/2024/2024-01-15/IMG_0001.jpg")
        .unwrap();
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].reason, "changed");
    assert_eq!(
        imb_layout::content_key(&h[0].file),
        "library/library/admin/2024/2024-01-15/IMG_0001.jpg"
    );
}

fn writer(f: &Fixture) -> imb_manifest::Manifest {
    imb_manifest::Manifest::open(&fetched(f)).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn deleted_file_is_archived_and_its_object_stays() {
    let f = fixture();
    run(&f).await;
    fs::remove_file(f.src.join("library/admin/2024/2024-01-16/IMG_0002.jpg")).unwrap();
    let s = run(&f).await;
    assert_eq!(s.files_archived, 1, "{s:?}");
    assert!(
        f.dst
            .join("library/library/admin/2024/2024-01-16/IMG_0002.jpg")
            .is_file()
    );
    let rec = manifest(&f)
        .get("library/admin/2024/2024-01-16/IMG_0002.jpg")
        .unwrap()
        .unwrap();
    assert!(rec.archived);
    // Coming back with the same content un-archives it without an upload.
    write(
        &f.src.join("library/admin/2024/2024-01-16/IMG_0002.jpg"),
        &[2u8; 70_000],
    );
    let s = run(&f).await;
    assert_eq!((s.files_uploaded, s.files_archived), (0, 0), "{s:?}");
    assert!(
        !manifest(&f)
            .get("library/admin/2024/2024-01-16/IMG_0002.jpg")
            .unwrap()
            .unwrap()
            .archived
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn moved_library_is_deduplicated_not_uploaded() {
    let f = fixture();
    run(&f).await;
    // A storage-template migration: the whole admin folder moves.
    fs::rename(f.src.join("library/admin"), f.src.join("library/ed1c8a0e")).unwrap();
    let s = run(&f).await;
    assert_counts(&s);
    assert_eq!(s.files_uploaded, 0, "{s:?}");
    assert_eq!(s.files_deduplicated, 3);
    assert_eq!(s.bytes_uploaded, 0);
    assert_eq!(s.files_archived, 3);
    assert_eq!(
        fs::read(
            f.dst
                .join("library/library/ed1c8a0e/2024/2024-01-16/IMG_0002.jpg")
        )
        .unwrap(),
        vec![2u8; 70_000]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn non_utf8_names_and_odd_entries() {
    let f = fixture();
    let raw = f
        .src
        .join(OsStr::from_bytes(b"library/admin/caf\xe9 50%.jpg"));
    write(&raw, b"latin-1 name");
    std::os::unix::fs::symlink("/etc/passwd", f.src.join("library/link.jpg")).unwrap();
    std::os::unix::fs::symlink(f.src.join("library"), f.src.join("library/loop")).unwrap();
    write(&f.src.join("library/admin/empty.jpg"), b"");
    let s = run(&f).await;
    assert_counts(&s);
    assert_eq!(s.files_failed, 0, "{s:?}");
    assert_eq!(s.files_skipped, 2, "two symlinks skipped: {s:?}");
    let enc = "library/admin/caf%E9 50%25.jpg";
    let rec = manifest(&f)
        .get(enc)
        .unwrap()
        .expect("encoded name recorded");
    assert_eq!(rec.size, 12);
    assert_eq!(
        fs::read(f.dst.join("library").join(enc)).unwrap(),
        b"latin-1 name"
    );
    assert_eq!(
        imb_storage::decode_path(enc)
            .unwrap()
            .as_os_str()
            .as_bytes(),
        b"library/admin/caf\xe9 50%.jpg"
    );
    assert!(
        manifest(&f)
            .get("library/admin/empty.jpg")
            .unwrap()
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn checksum_run_flags_silent_corruption_and_keeps_the_good_copy() {
    let f = fixture();
    run(&f).await;
    let p = f.src.join("library/admin/2024/2024-01-16/IMG_0002.jpg");
    let before = fs::metadata(&p).unwrap();
    let mut bytes = vec![2u8; 70_000];
    bytes[1234] ^= 0xff;
    fs::write(&p, &bytes).unwrap();
    let t = filetime_of(&before);
    set_mtime(&p, t);
    let s = run_with(&f.src, Arc::new(LocalDir::new(&f.dst).unwrap()), |c| {
        c.checksum = true
    })
    .await;
    assert_eq!(
        s.suspect_corruption,
        vec!["library/admin/2024/2024-01-16/IMG_0002.jpg".to_string()],
        "{s:?}"
    );
    assert!(s.has_problems());
    let rec = manifest(&f)
        .get("library/admin/2024/2024-01-16/IMG_0002.jpg")
        .unwrap()
        .unwrap();
    assert_eq!(
        rec.checksum,
        imb_hash::digest(&[2u8; 70_000]).sha256,
        "good copy stays current"
    );
    assert_eq!(
        fs::read(
            f.dst
                .join("library/library/admin/2024/2024-01-16/IMG_0002.jpg")
        )
        .unwrap(),
        vec![2u8; 70_000]
    );
}

fn filetime_of(md: &fs::Metadata) -> std::time::SystemTime {
    md.modified().unwrap()
}

fn set_mtime(p: &Path, t: std::time::SystemTime) {
    let f = fs::File::options().write(true).open(p).unwrap();
    f.set_modified(t).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn lost_manifest_rows_are_found_again_not_reuploaded() {
    // A run that uploaded objects but died before recording them: simulate by
    // backing up, then deleting every manifest from the target.
    let f = fixture();
    run(&f).await;
    for e in fs::read_dir(&f.dst).unwrap() {
        let e = e.unwrap();
        if e.file_name().to_string_lossy().starts_with("manifest") {
            fs::remove_file(e.path()).unwrap();
        }
    }
    let s = run(&f).await;
    assert_counts(&s);
    assert_eq!(s.files_uploaded, 0, "{s:?}");
    assert_eq!(s.bytes_uploaded, 0);
    assert_eq!(s.files_unchanged + s.files_deduplicated, 10);
    assert!(
        manifest(&f)
            .get("library/admin/2024/2024-01-15/IMG_0001.jpg")
            .unwrap()
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn periodic_saves_write_only_changed_rows() {
    let f = fixture();
    for i in 0..25 {
        write(
            &f.src.join(format!("library/bulk/{i:03}.jpg")),
            format!("photo {i}").as_bytes(),
        );
    }
    let s = run_with(&f.src, Arc::new(LocalDir::new(&f.dst).unwrap()), |c| {
        c.save_every = 10
    })
    .await;
    // 35 rows: parts after 10 and 20 and 30 rows, a final part, and the full manifest.
    assert!(s.manifest_saves >= 4, "{s:?}");
    let mut part_rows = 0;
    for e in fs::read_dir(&f.dst).unwrap() {
        let n = e.unwrap().file_name().to_string_lossy().into_owned();
        if n.contains(".part-") {
            let plain = f._dir.path().join("part.db");
            imb_manifest::unpack(&f.dst.join(&n), &plain).unwrap();
            let r = ManifestReader::open(&plain).unwrap();
            r.for_each_file(|_| {
                part_rows += 1;
                Ok(())
            })
            .unwrap();
        }
    }
    assert_eq!(part_rows, 35, "each changed row is in exactly one journal");
    // A no-change rerun writes no journal at all, and ends with a delta.
    let s = run(&f).await;
    assert_eq!(s.manifest_saves, 1, "only the delta: {s:?}");
    assert!(!s.manifest_full, "{s:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn journals_of_an_unfinished_run_are_replayed() {
    // Model a killed run: its journal parts are in the target, its final manifest is not.
    let f = fixture();
    let s = run_with(&f.src, Arc::new(LocalDir::new(&f.dst).unwrap()), |c| {
        c.save_every = 3
    })
    .await;
    let final_name = s.manifest.unwrap();
    fs::remove_file(f.dst.join(&final_name)).unwrap();
    fs::remove_file(f.dst.join("manifest.db")).unwrap();
    let s = run(&f).await;
    assert_eq!(s.files_uploaded, 0, "{s:?}");
    assert_eq!(
        s.files_unchanged, 10,
        "rows came back from the journals: {s:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_held_lock_refuses_a_second_run() {
    let f = fixture();
    let store = Arc::new(LocalDir::new(&f.dst).unwrap());
    // A live lock from another host that has not expired.
    let info = serde_json::json!({
        "run_id": "0000-01-01T00-00-00-aaaa", "host": "other-host", "pid": 1,
        "pid_start": null, "expires": "2999-01-01T00:00:00Z"
    });
    let k = Key::parse("locks/0000-01-01T00-00-00-aaaa/000000.json").unwrap();
    imb_storage::ObjectCreate::put_opts(
        &*store,
        &k,
        serde_json::to_vec(&info).unwrap().into(),
        Default::default(),
    )
    .await
    .unwrap();
    let err = Backup::new(BackupConfig::new(&f.src), store.clone())
        .run()
        .await
        .unwrap_err();
    assert!(matches!(err, crate::Error::LockHeld { .. }), "{err}");
    assert!(err.to_string().contains("other-host"), "{err}");
    // Its release marker frees the target.
    let r = Key::parse("locks/0000-01-01T00-00-00-aaaa/released").unwrap();
    imb_storage::ObjectCreate::put_opts(&*store, &r, Vec::new().into(), Default::default())
        .await
        .unwrap();
    let s = Backup::new(BackupConfig::new(&f.src), store)
        .run()
        .await
        .unwrap();
    assert_eq!(s.files_failed, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn stale_lock_of_a_dead_local_process_is_ignored() {
    let f = fixture();
    let store = Arc::new(LocalDir::new(&f.dst).unwrap());
    let host = fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_owned();
    let info = serde_json::json!({
        "run_id": "0000-01-01T00-00-00-bbbb", "host": host, "pid": u32::MAX - 1,
        "pid_start": 1, "expires": "2999-01-01T00:00:00Z"
    });
    let k = Key::parse("locks/0000-01-01T00-00-00-bbbb/000000.json").unwrap();
    imb_storage::ObjectCreate::put_opts(
        &*store,
        &k,
        serde_json::to_vec(&info).unwrap().into(),
        Default::default(),
    )
    .await
    .unwrap();
    let s = Backup::new(BackupConfig::new(&f.src), store)
        .run()
        .await
        .unwrap();
    assert_eq!(s.files_uploaded + s.files_deduplicated, 10);
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_source_and_bad_globs_are_named() {
    let store = Arc::new(InMemory::new());
    let err = Backup::new(BackupConfig::new("/nonexistent/immich"), store.clone())
        .run()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("/nonexistent/immich"), "{err}");
    let f = fixture();
    let mut cfg = BackupConfig::new(&f.src);
    cfg.excludes = vec!["[".into()];
    let err = Backup::new(cfg, store).run().await.unwrap_err();
    assert!(err.to_string().contains("exclude"), "{err}");
}

/// A run stopped while `first` files are in flight: a hook on the first hashed
/// file triggers `stop` (the signal handler's token, or the `--max-duration`
/// deadline when `wait_for` is set, which the hook waits out).
fn stopping_on_the_first_file(
    b: &mut Backup,
    stop: Option<crate::StopToken>,
    wait_for: Option<std::time::Instant>,
) -> Arc<std::sync::Mutex<Option<PathBuf>>> {
    let first = Arc::new(std::sync::Mutex::new(None::<PathBuf>));
    let seen = first.clone();
    b.after_hash = Some(crate::run::TestHook(Arc::new(move |p: &Path| {
        let mut f = seen.lock().unwrap();
        if f.is_none() {
            *f = Some(p.to_owned());
            if let Some(stop) = &stop {
                stop.stop();
            }
            // Waiting for a condition (the deadline has passed), not for a guess.
            while wait_for.is_some_and(|t| std::time::Instant::now() < t) {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
    })));
    first
}

/// After a stop, what was in flight is finished and recorded; the next run does
/// the rest, and only the rest.
async fn in_flight_finished_then_resumed(
    f: &Fixture,
    s: &Summary,
    first: &Option<PathBuf>,
    store: Arc<LocalDir>,
) {
    assert!(s.stopped, "{s:?}");
    assert_eq!(
        s.files_uploaded + s.files_deduplicated,
        1,
        "the file in flight finished; none was started after the stop: {s:?}"
    );
    assert_eq!(s.files_archived, 0, "a stopped run marks nothing archived");
    let rel = first
        .as_ref()
        .expect("a file was hashed")
        .strip_prefix(&f.src)
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let saved = ManifestReader::open(&f.dst.join(s.manifest.as_deref().unwrap())).unwrap();
    assert!(
        saved.get(&rel).unwrap().is_some(),
        "the finished file is in the saved manifest"
    );
    let s = Backup::new(BackupConfig::new(&f.src), store)
        .run()
        .await
        .unwrap();
    assert!(!s.stopped);
    assert_eq!(s.files_scanned, 10);
    assert_eq!(s.files_failed, 0);
    assert_eq!(
        s.files_uploaded + s.files_deduplicated,
        9,
        "the rest, and not the finished one again: {s:?}"
    );
    assert!(f.dst.join("library/library/.immich").is_file());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stop_lets_the_file_in_flight_finish_and_the_next_run_does_the_rest() {
    let f = fixture();
    let store = Arc::new(LocalDir::new(&f.dst).unwrap());
    let stop = crate::StopToken::new();
    let mut cfg = BackupConfig::new(&f.src);
    cfg.workers = 1;
    let mut b = Backup::new(cfg, store.clone()).with_stop(stop.clone());
    let first = stopping_on_the_first_file(&mut b, Some(stop), None);
    let s = b.run().await.unwrap();
    assert!(
        s.manifest.is_some(),
        "a stopped run still saves its manifest"
    );
    let first = first.lock().unwrap().clone();
    in_flight_finished_then_resumed(&f, &s, &first, store).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn paths_too_long_for_an_object_name_get_a_hashed_key() {
    let f = fixture();
    // 5 × 200-byte directory names: over the 1024-byte object-name limit.
    let mut rel = PathBuf::from("library");
    for i in 0..5 {
        rel.push(format!("{i}").repeat(200));
    }
    rel.push("IMG_long.jpg");
    write(&f.src.join(&rel), b"deep down");
    let s = run(&f).await;
    assert_eq!(s.files_failed, 0, "{s:?}");
    let fp = rel.to_str().unwrap();
    let rec = manifest(&f).get(fp).unwrap().expect("recorded");
    let k = rec.object_key.clone().expect("a hashed key is recorded");
    assert!(k.starts_with("long/") && k.len() < 100, "{k}");
    assert_eq!(fs::read(f.dst.join(&k)).unwrap(), b"deep down");
    // A rerun recognises it as unchanged.
    assert_eq!(run(&f).await.files_uploaded, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn reference_dedup_records_the_existing_object_instead_of_copying() {
    let f = fixture();
    run(&f).await;
    write(&f.src.join("library/copy-of-0002.jpg"), &[2u8; 70_000]);
    let s = run_with(&f.src, Arc::new(LocalDir::new(&f.dst).unwrap()), |c| {
        c.dedup = crate::DedupMode::Reference;
    })
    .await;
    assert_eq!((s.files_uploaded, s.files_deduplicated), (0, 1), "{s:?}");
    assert!(
        !f.dst.join("library/library/copy-of-0002.jpg").exists(),
        "no copy made"
    );
    let rec = manifest(&f)
        .get("library/copy-of-0002.jpg")
        .unwrap()
        .unwrap();
    assert_eq!(
        rec.object_key.as_deref(),
        Some("library/library/admin/2024/2024-01-16/IMG_0002.jpg")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn max_duration_lets_the_file_in_flight_finish_and_the_next_run_does_the_rest() {
    let f = fixture();
    let store = Arc::new(LocalDir::new(&f.dst).unwrap());
    let mut cfg = BackupConfig::new(&f.src);
    cfg.workers = 1;
    // One upload in flight: the others wait while the hook holds the first past
    // the deadline (with more, they would be read, so in flight, meanwhile).
    cfg.uploads = Some(1);
    // Long enough that the first file is surely started before it (a run of ten
    // small files starts in milliseconds); the hook holds that file past it.
    let limit = std::time::Duration::from_secs(2);
    cfg.max_duration = Some(limit);
    let deadline = std::time::Instant::now() + limit + std::time::Duration::from_millis(100);
    let mut b = Backup::new(cfg, store.clone());
    let first = stopping_on_the_first_file(&mut b, None, Some(deadline));
    let s = b.run().await.unwrap();
    assert!(s.has_problems(), "stopping early is reported: {s:?}");
    let saved = Key::parse(
        s.manifest
            .clone()
            .expect("a stopped run still saves its manifest"),
    )
    .unwrap();
    assert!(store.head(&saved).await.is_ok());
    let first = first.lock().unwrap().clone();
    in_flight_finished_then_resumed(&f, &s, &first, store).await;
}

fn rewrite_keeping_size_and_mtime(p: &Path, byte: u8) {
    let md = fs::metadata(p).unwrap();
    fs::write(p, vec![byte; md.len() as usize]).unwrap();
    set_mtime(p, md.modified().unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_changed_during_upload_is_retried_once_then_reported() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let f = fixture();
    let video = f.src.join("upload/u1/ab/cd/abcd.mp4");
    let store = Arc::new(LocalDir::new(&f.dst).unwrap());

    // Changed once, between hashing and upload: the store refuses the bytes that
    // no longer match, the engine re-reads, and the new content is backed up.
    let calls = Arc::new(AtomicUsize::new(0));
    let (c, v) = (calls.clone(), video.clone());
    let mut cfg = BackupConfig::new(&f.src);
    cfg.small_file = 1024; // stream the video from the open file
    let mut b = Backup::new(cfg.clone(), store.clone());
    b.after_hash = Some(crate::run::TestHook(Arc::new(move |p: &Path| {
        if p == v && c.fetch_add(1, Ordering::SeqCst) == 0 {
            rewrite_keeping_size_and_mtime(p, 7);
        }
    })));
    let s = b.run().await.unwrap();
    assert_eq!(s.files_failed, 0, "{s:?}");
    assert_eq!(calls.load(Ordering::SeqCst), 2, "hashed twice");
    assert_eq!(
        fs::read(f.dst.join("library/upload/u1/ab/cd/abcd.mp4")).unwrap(),
        vec![7u8; 300_000]
    );

    // Changed on every attempt: reported by name after the second try, and the
    // run goes on with the rest.
    write(&f.src.join("upload/u1/ab/cd/other.mp4"), &[1u8; 200_000]);
    let v2 = f.src.join("upload/u1/ab/cd/other.mp4");
    let mut b = Backup::new(cfg, store);
    let n = Arc::new(AtomicUsize::new(0));
    let n2 = n.clone();
    b.after_hash = Some(crate::run::TestHook(Arc::new(move |p: &Path| {
        if p == v2 {
            let i = n2.fetch_add(1, Ordering::SeqCst);
            rewrite_keeping_size_and_mtime(p, 100 + i as u8);
        }
    })));
    let s = b.run().await.unwrap();
    assert_eq!(s.files_failed, 1, "{s:?}");
    assert_eq!(s.failures[0].path, "upload/u1/ab/cd/other.mp4");
    assert!(
        s.failures[0].error.contains("changed while being read"),
        "{s:?}"
    );
    assert!(
        !f.dst.join("library/upload/u1/ab/cd/other.mp4").exists(),
        "no object with mismatched content"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn more_uploads_than_hashers_still_backs_up_everything_once() {
    let f = fixture();
    for i in 0..60 {
        write(
            &f.src.join(format!("library/many/{i:03}.jpg")),
            format!("small {i}").as_bytes(),
        );
    }
    let s = run_with(&f.src, Arc::new(LocalDir::new(&f.dst).unwrap()), |c| {
        c.workers = 1;
        c.uploads = Some(8);
    })
    .await;
    assert_counts(&s);
    assert_eq!(s.files_scanned, 70);
    assert_eq!(s.files_failed, 0);
    assert_eq!(s.files_uploaded + s.files_deduplicated, 70);
    let m = manifest(&f);
    for i in 0..60 {
        let r = m.get(&format!("library/many/{i:03}.jpg")).unwrap().unwrap();
        assert_eq!(
            fs::read(f.dst.join(imb_layout::content_key(&r))).unwrap(),
            format!("small {i}").as_bytes()
        );
    }
}

/// A planted `manifest-2999-…` (an empty one: a tampered "newest" state) is not
/// the newest: the run loads the real manifest, names itself by now, and says so.
#[tokio::test(flavor = "multi_thread")]
async fn a_future_dated_manifest_is_ignored_and_reported() {
    let f = fixture();
    run(&f).await;
    let planted = "manifest-2999-01-01T00-00-00.db";
    imb_manifest::Manifest::open(&f.dst.join("empty.db")).unwrap();
    fs::copy(f.dst.join("empty.db"), f.dst.join(planted)).unwrap();
    let s = run(&f).await;
    assert_eq!(s.files_uploaded, 0, "the real manifest was the base: {s:?}");
    assert_eq!(s.files_unchanged, 10);
    assert!(
        s.warnings
            .iter()
            .any(|w| w.contains(planted) && w.contains("ahead")),
        "{s:?}"
    );
    let name = s.manifest.unwrap();
    assert!(
        name.as_str() < "manifest-2100",
        "named by now, not after the plant: {name}"
    );
    let (listed, future) = imb_layout::list_manifests_at(
        &LocalDir::new(&f.dst).unwrap(),
        std::time::SystemTime::now(),
    )
    .await
    .unwrap();
    assert_eq!(future, vec![planted.to_owned()]);
    let ends: Vec<_> = listed.iter().filter(|l| l.name.finished()).collect();
    assert_eq!(ends.len(), 2, "{listed:?}");
}

const CHANGING: &str = "library/admin/2024/2024-01-15/IMG_0001.jpg";

/// Runs that change one file each end with deltas, and every run's restore point
/// comes back: the newest full manifest and the deltas up to that run.
#[tokio::test(flavor = "multi_thread")]
async fn a_chain_of_deltas_restores_every_point_in_time() {
    let f = fixture();
    let first = run(&f).await;
    assert!(
        first.manifest_full,
        "a first run writes a full manifest: {first:?}"
    );
    let mut points = vec![(first.manifest.clone().unwrap(), b"v0".to_vec())];
    for v in 1..=3u8 {
        let content = format!("version {v}").into_bytes();
        write(&f.src.join(CHANGING), &content);
        let s = run(&f).await;
        assert_eq!(s.files_uploaded, 1, "{s:?}");
        assert!(!s.manifest_full, "{s:?}");
        let name = s.manifest.clone().unwrap();
        assert!(name.ends_with(".delta.db.gz"), "{name}");
        assert!(
            s.manifest_bytes < 8 * 1024,
            "a one-file delta is small: {s:?}"
        );
        points.push((name, content));
    }
    for (i, (name, content)) in points.iter().enumerate() {
        let ts = imb_layout::ManifestName::parse(name).unwrap().ts;
        let (path, got) = fetch_at(&f, imb_layout::parse_ts(&ts));
        assert!(got.warnings.is_empty(), "{got:?}");
        assert_eq!(
            got.point.as_ref().map(ManifestName::name).as_ref(),
            Some(name)
        );
        assert_eq!(got.chain_runs as usize, i, "{got:?}");
        let rec = ManifestReader::open(&path)
            .unwrap()
            .get(CHANGING)
            .unwrap()
            .unwrap();
        if i > 0 {
            assert_eq!(
                rec.checksum,
                imb_hash::digest(content).sha256,
                "point {name}"
            );
        } else {
            assert_eq!(rec.checksum, manifest_at_first(&f, &first), "point {name}");
        }
    }
    // The newest point is the default, and manifest.db is still the full one.
    assert_eq!(
        fetch_at(&f, None).1.point.map(|p| p.name()).as_ref(),
        Some(&points[3].0)
    );
    let copy = ManifestReader::open(&f.dst.join("manifest.db")).unwrap();
    assert_eq!(
        copy.get(CHANGING).unwrap().unwrap().checksum,
        manifest_at_first(&f, &first)
    );
}

fn manifest_at_first(f: &Fixture, first: &Summary) -> [u8; 32] {
    ManifestReader::open(&f.dst.join(first.manifest.as_deref().unwrap()))
        .unwrap()
        .get(CHANGING)
        .unwrap()
        .unwrap()
        .checksum
}

/// A lost delta loses that run's rows and nothing else; a corrupt one is skipped
/// with a warning naming it; the next run stores the lost change again under a
/// new key, overwriting nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_lost_or_corrupt_delta_loses_only_its_runs_rows() {
    let f = fixture();
    run(&f).await;
    let other = "library/admin/2024/2024-01-16/IMG_0002.jpg";
    write(&f.src.join(CHANGING), b"changed in run 2");
    let lost = run(&f).await.manifest.unwrap();
    write(&f.src.join(other), b"changed in run 3");
    let kept = run(&f).await.manifest.unwrap();
    fs::remove_file(f.dst.join(&lost)).unwrap();
    let (path, got) = fetch_at(&f, None);
    assert!(
        got.warnings.is_empty(),
        "a missing delta is silent: {got:?}"
    );
    assert_eq!(got.point.map(|p| p.name()), Some(kept.clone()));
    let m = ManifestReader::open(&path).unwrap();
    assert_eq!(
        m.get(other).unwrap().unwrap().checksum,
        imb_hash::digest(b"changed in run 3").sha256
    );
    assert_ne!(
        m.get(CHANGING).unwrap().unwrap().checksum,
        imb_hash::digest(b"changed in run 2").sha256,
        "run 2's row is gone with its delta"
    );
    fs::write(f.dst.join(&kept), b"not a gzip, not sqlite").unwrap();
    let (_, got) = fetch_at(&f, None);
    assert!(
        got.warnings.iter().any(|w| w.contains(&kept)),
        "the corrupt delta is named: {got:?}"
    );
    // The next run sees the change again and stores it under a new version key,
    // and ends with a full manifest so the damaged chain is not read again.
    let s = run(&f).await;
    assert_eq!(s.files_uploaded, 2, "{s:?}");
    assert!(s.manifest_full, "{s:?}");
    let (path, _) = fetch_at(&f, None);
    let m = ManifestReader::open(&path).unwrap();
    let rec = m.get(CHANGING).unwrap().unwrap();
    assert_eq!(rec.checksum, imb_hash::digest(b"changed in run 2").sha256);
    assert!(
        rec.object_key.is_some_and(|k| k.starts_with("versions/")),
        "{:?}",
        m.get(CHANGING)
    );
}

/// `full_manifest_every` bounds the chain: with 2, every other run writes a full
/// manifest (and refreshes manifest.db); a lost part of a run is reported.
#[tokio::test(flavor = "multi_thread")]
async fn the_chain_is_bounded_and_a_lost_part_is_reported() {
    let f = fixture();
    let every2 = |c: &mut BackupConfig| {
        c.full_manifest_every = 2;
        c.save_every = 2;
    };
    let store = || Arc::new(LocalDir::new(&f.dst).unwrap());
    assert!(run_with(&f.src, store(), every2).await.manifest_full);
    for i in 0..5 {
        write(&f.src.join(format!("library/more/{i}.jpg")), &[i; 10]);
    }
    let delta = run_with(&f.src, store(), every2).await;
    assert!(!delta.manifest_full, "{delta:?}");
    assert!(
        delta.manifest_saves >= 3,
        "parts, then the delta: {delta:?}"
    );
    let full = run_with(&f.src, store(), every2).await;
    assert!(full.manifest_full, "the second run after a full: {full:?}");
    let rows = |m: ManifestReader| {
        let mut n = 0;
        m.for_each_file(|_| {
            n += 1;
            Ok(())
        })
        .unwrap();
        n
    };
    assert_eq!(
        rows(ManifestReader::open(&f.dst.join("manifest.db")).unwrap()),
        rows(manifest(&f))
    );
    // Lose the delta run's first part: the point before the full names the loss.
    let ts = imb_layout::ManifestName::parse(delta.manifest.as_deref().unwrap())
        .unwrap()
        .ts;
    fs::remove_file(f.dst.join(imb_layout::ManifestName::part(&ts, 1).name())).unwrap();
    let (_, got) = fetch_at(&f, imb_layout::parse_ts(&ts));
    assert!(
        got.warnings
            .iter()
            .any(|w| w.contains(&ts) && w.contains("parts found")),
        "{got:?}"
    );
}
