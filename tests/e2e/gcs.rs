//! `backup --dest gs://…` against fake-gcs-server on 127.0.0.1.

use std::collections::BTreeMap;
use std::fs;
use std::process::Command;

use imb_storage::{Key, ObjectRead, ObjectReadExt};
use imb_testkit::gcs::{Emulator, Fault, FaultProxy};

use crate::util::OnEmulator;
use crate::util::{backup, code, library, run_json, spawn, write};

fn gs(c: &mut Command, endpoint: &str, src: &std::path::Path) {
    c.env(
        "STORAGE_EMULATOR_HOST",
        endpoint.trim_start_matches("http://"),
    )
    .env_remove("GOOGLE_APPLICATION_CREDENTIALS")
    .env_remove("GCS_CREDENTIALS")
    .arg("--source")
    .arg(src)
    .args(["--dest", "gs://bk1/nightly"]);
}

/// `restore-verify --from gs://bk1/PREFIX` against the emulator (or proxy) at
/// `endpoint`, with no credentials.
fn rv_gs(endpoint: &str, prefix: &str) -> Command {
    let mut c = crate::util::restore_verify();
    c.env(
        "STORAGE_EMULATOR_HOST",
        endpoint.trim_start_matches("http://"),
    )
    .env_remove("GOOGLE_APPLICATION_CREDENTIALS")
    .env_remove("GCS_CREDENTIALS")
    .args(["--from", &format!("gs://bk1/{prefix}")]);
    c
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Every object under `prefix`, name → bytes.
fn objects(emu: &Emulator, prefix: &str) -> BTreeMap<String, Vec<u8>> {
    let store = emu.store();
    rt().block_on(async {
        let mut out = BTreeMap::new();
        for m in store.list_all(prefix).await.unwrap() {
            out.insert(
                m.key.to_string(),
                store.get_bytes(&m.key).await.unwrap().to_vec(),
            );
        }
        out
    })
}

/// Every live manifest row's object holds exactly its source file's bytes, and
/// every source file has a row. Returns the number of rows.
fn assert_manifest_matches(emu: &Emulator, src: &std::path::Path) -> usize {
    let store = emu.store();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("manifest.db");
    // Readers use the newest full manifest and the deltas after it, not the
    // convenience copy.
    let mut cfg = emu.config();
    cfg.prefix = "nightly".into();
    let nightly = imb_gcs::GcsStore::new(cfg).unwrap();
    let got = rt()
        .block_on(imb_layout::fetch_manifest(&nightly, &path, None))
        .unwrap();
    assert!(got.point.is_some() && got.warnings.is_empty(), "{got:?}");
    let m = imb_manifest::ManifestReader::open(&path).unwrap();
    let mut live = 0;
    m.for_each_file(|r| {
        if !r.archived {
            live += 1;
            let got = rt()
                .block_on(store.get_bytes(
                    &Key::parse(format!("nightly/{}", imb_layout::content_key(&r))).unwrap(),
                ))
                .unwrap();
            let want = fs::read(src.join(imb_storage::decode_path(&r.file_path).unwrap())).unwrap();
            assert!(
                got == want,
                "{} (object {})",
                r.file_path,
                imb_layout::content_key(&r)
            );
        }
        Ok(())
    })
    .unwrap();
    assert_eq!(
        live,
        crate::util::files(src)
            .iter()
            .filter(|p| !p.starts_with("thumbs/a"))
            .count()
    );
    live
}

#[test]
fn backup_to_gcs_first_run_rerun_modify_delete_move() {
    let emu = Emulator::fake_gcs();
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("upload");
    library(&src, 30, 2000);

    let mut c = backup();
    gs(&mut c, &emu.endpoint, &src);
    let (out, s) = run_json(c);
    assert_eq!(
        code(&out),
        0,
        "{s}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(s["files_scanned"], 36);
    assert_eq!(assert_manifest_matches(&emu, &src), 36);
    let store = emu.store();
    let (lib_meta, manifest_meta) = rt().block_on(async {
        (
            store
                .head(&Key::parse("nightly/library/library/admin/2020/01/IMG_00000.jpg").unwrap())
                .await
                .unwrap(),
            store
                .head(&Key::parse("nightly/manifest.db").unwrap())
                .await
                .unwrap(),
        )
    });
    assert_eq!(
        lib_meta.storage_class.as_deref(),
        Some("ARCHIVE"),
        "library/ is Archive by default"
    );
    assert_eq!(
        manifest_meta.storage_class.as_deref(),
        Some("STANDARD"),
        "manifests are Standard"
    );

    let mut c = backup();
    gs(&mut c, &emu.endpoint, &src);
    let (out, s) = run_json(c);
    assert_eq!(code(&out), 0);
    assert_eq!(s["files_uploaded"], 0, "{s}");

    write(&src.join("library/admin/2020/01/IMG_00000.jpg"), b"edited");
    fs::remove_file(src.join("library/admin/2021/02/IMG_00001.jpg")).unwrap();
    fs::rename(
        src.join("library/admin/2022"),
        src.join("library/admin/moved"),
    )
    .unwrap();
    let mut c = backup();
    gs(&mut c, &emu.endpoint, &src);
    let (out, s) = run_json(c);
    assert_eq!(code(&out), 0, "{s}");
    assert_eq!(s["files_uploaded"], 1, "{s}");
    assert_eq!(s["files_deduplicated"], 6, "{s}");
    assert_eq!(s["files_archived"], 7, "{s}");
    assert_manifest_matches(&emu, &src);
    // Cold storage: moved files are recorded as references, not copied; nothing
    // was overwritten or deleted.
    let photos = |m: &BTreeMap<String, Vec<u8>>| m.keys().filter(|k| k.ends_with(".jpg")).count();
    let after = objects(&emu, "nightly/library/");
    assert_eq!(photos(&after), 30, "no copies of the moved files");
    assert_eq!(
        after["nightly/library/library/admin/2020/01/IMG_00000.jpg"].len(),
        2000
    );
    assert_eq!(objects(&emu, "nightly/versions/").len(), 1);
}

#[test]
fn backup_to_gcs_killed_then_rerun_finishes_with_nothing_uploaded_twice() {
    let emu = Emulator::fake_gcs();
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("upload");
    let n = 600;
    let workers = 2;
    library(&src, n, 4096);
    let mut c = backup();
    gs(&mut c, &emu.endpoint, &src);
    // Copy mode, so every file has its own object and objects can be counted.
    c.args([
        "--save-every",
        "50",
        "--bwlimit",
        "512K",
        "--workers",
        &workers.to_string(),
        "--dedup",
        "copy",
    ]);
    let mut run = spawn(c);
    run.wait_for("manifest journal saved");
    run.child.kill().unwrap();
    run.finish();
    // An upload whose body had reached the emulator before the kill may still be
    // stored after this listing; at most one per worker is in flight, so up to
    // `workers` objects can be missing from `before`.
    let before = objects(&emu, "nightly/library/").len();
    assert!(before > 0 && before < n + 6, "{before}");

    let mut c = backup();
    gs(&mut c, &emu.endpoint, &src);
    c.args(["--dedup", "copy"]);
    let (out, s) = run_json(c);
    assert_eq!(code(&out), 0, "{s}");
    assert_eq!(s["files_scanned"], (n + 6) as u64);
    assert_eq!(assert_manifest_matches(&emu, &src), n + 6);
    let sent = s["files_uploaded"].as_u64().unwrap() + s["files_deduplicated"].as_u64().unwrap();
    // Objects stored by the killed run are found, not sent again; those stored
    // after the listing above are the only slack.
    let sent = sent as usize;
    assert!(
        (n + 6 - before).saturating_sub(workers) <= sent && sent <= n + 6 - before,
        "each object stored once ({before} listed after the kill): {s}"
    );
    let lib = objects(&emu, "nightly/library/");
    assert_eq!(lib.len(), n + 6);
    for (k, v) in &lib {
        let rel = k.strip_prefix("nightly/library/").unwrap();
        assert_eq!(v, &fs::read(src.join(rel)).unwrap(), "{k}");
    }
}

#[test]
fn backup_to_gcs_survives_faults_and_counts_retries() {
    let emu = Emulator::fake_gcs();
    let counter = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c2 = counter.clone();
    let proxy = FaultProxy::start(0, emu.port(), move |s| {
        if !s.target.starts_with("/upload/") {
            return Fault::Forward;
        }
        match c2.fetch_add(1, std::sync::atomic::Ordering::SeqCst) % 7 {
            1 => Fault::Status(503, None),
            3 => Fault::ResetMidBody,
            5 => Fault::Status(429, Some(1)),
            _ => Fault::Forward,
        }
    });
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("upload");
    library(&src, 20, 1000);
    let mut c = backup();
    gs(&mut c, &proxy.endpoint(), &src);
    // The seed's 2 s first backoff would make this test slow; the policy is the same.
    c.args(["--retry-initial", "10ms"]);
    let (out, s) = run_json(c);
    assert_eq!(
        code(&out),
        0,
        "{s}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(s["retries"].as_u64().unwrap() >= 3, "{s}");
    assert!(
        s["concurrency"]["congestion"].as_u64().unwrap() >= 1,
        "the 503 and the 429 reached the uploads-in-flight controller: {s}"
    );
    assert_eq!(assert_manifest_matches(&emu, &src), 26, "nothing lost");
    assert_eq!(
        s["files_uploaded"].as_u64().unwrap() + s["files_deduplicated"].as_u64().unwrap(),
        26,
        "nothing twice: {s}"
    );
}

/// A bucket with a locked retention policy refuses overwrites and deletes. The
/// backup needs neither: only the `manifest.db` convenience copy is refused, and
/// that is reported, not fatal.
#[test]
fn a_retention_locked_bucket_only_loses_the_convenience_copy() {
    let emu = Emulator::fake_gcs();
    let proxy = FaultProxy::start(0, emu.port(), imb_testkit::gcs::retention_locked);
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("upload");
    library(&src, 5, 500);
    let mut c = backup();
    gs(&mut c, &proxy.endpoint(), &src);
    let (out, s) = run_json(c);
    assert_eq!(code(&out), 0, "{s}");
    let warnings = s["warnings"].to_string();
    assert!(warnings.contains("manifest.db not refreshed"), "{s}");
    assert_eq!(assert_manifest_matches(&emu, &src), 11);
    let refused = proxy.requests().iter().filter(|r| r.status == 403).count();
    assert_eq!(refused, 1, "only the convenience copy was an overwrite");
}

/// On GCS the metadata check sees CRC32C, so a tampered object is caught without
/// downloading anything (Archive reads cost money); a restore from the bucket is
/// byte-for-byte.
#[test]
fn restore_verify_on_gcs_catches_tampering_by_metadata_and_restores() {
    let emu = Emulator::fake_gcs();
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("upload");
    library(&src, 10, 1500);
    let mut c = backup();
    gs(&mut c, &emu.endpoint, &src);
    assert_eq!(code(&run_json(c).0), 0);

    let rv = |args: &[&str]| {
        let mut c = rv_gs(&emu.endpoint, "nightly");
        c.args(args);
        run_json(c)
    };
    let out = t.path().join("restored");
    let (o, v) = rv(&["--restore-to", out.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{v}");
    assert_eq!(
        v["verify"]["objects_hashed"], 0,
        "metadata only: nothing downloaded"
    );
    assert_eq!(v["restore"]["files_restored"], 16);
    for p in crate::util::files(&src)
        .iter()
        .filter(|p| !p.starts_with("thumbs/a"))
    {
        assert_eq!(
            fs::read(out.join(p)).unwrap(),
            fs::read(src.join(p)).unwrap(),
            "{}",
            p.display()
        );
    }

    // Overwrite one object behind the backup's back (same size, other bytes).
    let name = "nightly/library/library/admin/2021/02/IMG_00001.jpg";
    let path = format!(
        "/upload/storage/v1/b/bk1/o?uploadType=media&name={}",
        name.replace('/', "%2F")
    );
    let (status, _) = imb_testkit::gcs::raw_request(
        emu.port(),
        "POST",
        &path,
        &[("Content-Type", "image/jpeg")],
        &[7u8; 1500],
    );
    assert_eq!(status, 200);
    let (o, v) = rv(&[]);
    assert_eq!(code(&o), 2, "{v}");
    let findings = v["verify"]["findings"].to_string();
    assert!(
        findings.contains("IMG_00001.jpg") && findings.contains("crc32c"),
        "{findings}"
    );
}

/// A tampered manifest in the bucket whose entry would escape the restore
/// directory is refused; the rest restores.
#[test]
fn a_tampered_bucket_manifest_cannot_write_outside_the_restore_directory() {
    let emu = Emulator::fake_gcs();
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("upload");
    library(&src, 3, 500);
    let mut c = backup();
    gs(&mut c, &emu.endpoint, &src);
    let (_, s) = run_json(c);
    let store = emu.store();
    let name = format!("nightly/{}", s["manifest"].as_str().unwrap());
    let local = t.path().join("m.db");
    fs::write(
        &local,
        rt().block_on(store.get_bytes(&Key::parse(name.as_str()).unwrap()))
            .unwrap(),
    )
    .unwrap();
    {
        let mut m = imb_manifest::Manifest::open(&local).unwrap();
        let mut rec = m
            .get("library/admin/2020/01/IMG_00000.jpg")
            .unwrap()
            .unwrap();
        rec.file_path = "../../outside.jpg".into();
        rec.object_key = Some("library/library/admin/2020/01/IMG_00000.jpg".into());
        m.upsert(&rec).unwrap();
        let snap = t.path().join("tampered.db");
        m.snapshot(&snap).unwrap();
        let body = fs::read(&snap).unwrap();
        let path = format!(
            "/upload/storage/v1/b/bk1/o?uploadType=media&name=nightly%2Fmanifest-{}.db",
            crate::util::ts_in(60)
        );
        let (status, _) = imb_testkit::gcs::raw_request(emu.port(), "POST", &path, &[], &body);
        assert_eq!(status, 200);
    }
    let out = t.path().join("a/b/restored");
    let mut c = rv_gs(&emu.endpoint, "nightly");
    c.arg("--restore-to").arg(&out);
    let (o, v) = run_json(c);
    assert_eq!(code(&o), 2, "{v}");
    assert!(
        v["restore"]["refused"]
            .to_string()
            .contains("../../outside.jpg"),
        "{v}"
    );
    assert!(!t.path().join("a/outside.jpg").exists() && !t.path().join("outside.jpg").exists());
    assert_eq!(v["restore"]["files_restored"], 9, "{v}");
}

/// With 30 ms added to every request (a home server's distance to Cloud Storage),
/// the uploads in flight grow past where they start, and the emulator sees them:
/// more than 16 requests at once at the proxy. `--uploads 4` keeps it at 4. (How
/// much faster that is lives in `cargo xtask bench wan`, not in a timed assertion.)
#[test]
fn uploads_in_flight_grow_to_fill_a_slow_link_and_a_fixed_setting_holds() {
    let emu = Emulator::fake_gcs();
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("upload");
    library(&src, 600, 3000);
    let run = |bucket: &str, extra: &[&str]| {
        let proxy = FaultProxy::start(0, emu.port(), |s| {
            if s.target.starts_with("/upload/") {
                Fault::Delay(std::time::Duration::from_millis(30))
            } else {
                Fault::Forward
            }
        });
        let mut c = backup();
        c.env(
            "STORAGE_EMULATOR_HOST",
            proxy.endpoint().trim_start_matches("http://"),
        )
        .env_remove("GOOGLE_APPLICATION_CREDENTIALS")
        .env_remove("GCS_CREDENTIALS")
        .arg("--source")
        .arg(&src)
        .args(["--dest", &format!("gs://bk1/{bucket}"), "--no-database"])
        .args(extra);
        let (out, s) = run_json(c);
        assert_eq!(
            code(&out),
            0,
            "{s}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            s["files_uploaded"].as_u64().unwrap() + s["files_deduplicated"].as_u64().unwrap(),
            606,
            "{s}"
        );
        (s, proxy.peak_concurrent())
    };
    let (s, peak) = run("wan-adaptive", &[]);
    let c = &s["concurrency"];
    assert_eq!(c["mode"], "adaptive", "{c}");
    assert_eq!(c["initial"], 16, "{c}");
    assert!(c["max"].as_u64().unwrap() > 16, "it grew: {c}");
    assert!(c["changes"].to_string().contains("throughput_grew"), "{c}");
    assert!(peak > 16, "the proxy saw {peak} uploads at once: {c}");

    // restore-verify's downloads on the same link: every object re-hashed.
    let proxy = FaultProxy::start(0, emu.port(), |s| {
        if s.target.contains("alt=media") {
            Fault::Delay(std::time::Duration::from_millis(30))
        } else {
            Fault::Forward
        }
    });
    let mut c = rv_gs(&proxy.endpoint(), "wan-adaptive");
    c.args(["--all", "--no-database"]);
    let (out, v) = run_json(c);
    assert_eq!(code(&out), 0, "{v}");
    assert_eq!(v["verify"]["objects_hashed"], 606, "{v}");
    let c = &v["verify"]["concurrency"];
    assert!(c["max"].as_u64().unwrap() > 16, "downloads grew too: {c}");
    assert!(proxy.peak_concurrent() > 16, "{c}");

    let (s, peak) = run("wan-fixed", &["--uploads", "4"]);
    let c = &s["concurrency"];
    assert_eq!(
        (c["mode"].as_str(), c["max"].as_u64()),
        (Some("fixed"), Some(4)),
        "{c}"
    );
    assert!(c["peak_in_flight"].as_u64().unwrap() <= 4, "{c}");
    assert!(
        peak <= 4 + 1,
        "the proxy saw {peak} at once (4 uploads, and the lock or manifest)"
    );
}

/// Request-body bytes the proxy saw since request `from`.
fn sent_since(proxy: &FaultProxy, from: usize) -> usize {
    proxy.requests()[from..].iter().map(|r| r.body_len).sum()
}

fn lib_path(i: usize) -> String {
    format!(
        "library/admin/{}/{:02}/IMG_{i:05}.jpg",
        2020 + i % 5,
        i % 12 + 1
    )
}

/// Nightly runs cost what changed, counted at a proxy in front of the emulator
/// over 3,000 files: the first run's manifest objects add up to at most twice the
/// full manifest; a rerun that changes nothing sends at most 64 KiB of request
/// bodies in all; one changing k files at most 64 KiB + 1 KiB × k beyond the files'
/// own bytes (k = 1 and 1000). Each rerun ends with a delta, and what a reader
/// assembles still matches the source.
#[test]
fn nightly_runs_upload_what_changed_not_the_whole_manifest() {
    const N: usize = 3000;
    const SIZE: usize = 100;
    let emu = Emulator::fake_gcs();
    let proxy = FaultProxy::start(0, emu.port(), |_| Fault::Forward);
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("upload");
    library(&src, N, SIZE);
    let run = |from: usize| {
        let mut c = backup();
        gs(&mut c, &proxy.endpoint(), &src);
        let (out, s) = run_json(c);
        assert_eq!(
            code(&out),
            0,
            "{s}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (s, sent_since(&proxy, from))
    };
    let (s, _) = run(0);
    assert_eq!(s["manifest_full"], true, "{s}");
    let full = objects(&emu, "nightly/manifest-")
        .into_iter()
        .find(|(k, _)| k.ends_with(".db") && !k.contains(".part-"))
        .map(|(_, v)| v.len())
        .unwrap();
    let manifest_sent = s["manifest_bytes"].as_u64().unwrap() as usize;
    assert!(
        manifest_sent <= 2 * full,
        "first run: {manifest_sent} bytes of manifest objects for a {full}-byte manifest"
    );

    let mark = proxy.requests().len();
    let (s, sent) = run(mark);
    assert_eq!(s["files_uploaded"], 0, "{s}");
    assert_eq!(s["manifest_full"], false, "{s}");
    assert!(sent <= 64 << 10, "a no-change rerun sent {sent} bytes: {s}");
    // The run's own account, by class: one manifest object (the delta, Standard),
    // no library object, lock objects in the bucket's default class.
    let ops = &s["operations"];
    assert_eq!(ops["class_a"]["STANDARD"], 1, "{s}");
    assert!(ops["written_bytes"]["ARCHIVE"].is_null(), "{s}");
    assert!(
        ops["class_a"]["default"].as_u64().unwrap() >= 2,
        "lock objects and listings: {s}"
    );
    assert!(s["cost"]["estimated_usd"].as_f64().unwrap() < 0.01, "{s}");

    for k in [1usize, 1000] {
        for i in 0..k {
            let mut bytes = vec![0xa5; SIZE];
            bytes[..8].copy_from_slice(&(i as u64).to_le_bytes());
            bytes[8] = k as u8;
            write(&src.join(lib_path(i * 3)), &bytes);
        }
        let mark = proxy.requests().len();
        let (s, sent) = run(mark);
        assert_eq!(s["files_uploaded"], k as u64, "{s}");
        assert_eq!(s["manifest_full"], false, "{s}");
        assert_eq!(
            s["operations"]["written_bytes"]["ARCHIVE"],
            (k * SIZE) as u64,
            "the changed files went to Archive: {s}"
        );
        let beyond = sent.saturating_sub(k * SIZE);
        assert!(
            beyond <= (64 << 10) + 1024 * k,
            "{k} changed files: {beyond} bytes beyond their own: {s}"
        );
    }
    assert_eq!(assert_manifest_matches(&emu, &src), N + 6, "nothing lost");
}

/// restore-verify's metadata level lists the target instead of asking per file:
/// over 3,000 files the requests are one per page of objects, the manifest's own
/// and a few more, and not one metadata request per file. A deleted object is a
/// finding (confirmed by one metadata request); a planted one is counted as
/// unreferenced, reported and left alone.
#[test]
fn metadata_verify_lists_the_target_instead_of_asking_per_file() {
    const N: usize = 3000;
    let emu = Emulator::fake_gcs();
    let proxy = FaultProxy::start(0, emu.port(), |_| Fault::Forward);
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("upload");
    library(&src, N, 100);
    let mut c = backup();
    gs(&mut c, &emu.endpoint, &src);
    assert_eq!(code(&run_json(c).0), 0);
    let verify = || {
        let mark = proxy.requests().len();
        let mut c = rv_gs(&proxy.endpoint(), "nightly");
        c.arg("--no-database");
        let (out, v) = run_json(c);
        (code(&out), v, proxy.requests().len() - mark)
    };
    let (c, v, requests) = verify();
    assert_eq!(c, 0, "{v}");
    let r = &v["verify"];
    assert_eq!(r["files_checked"], N as u64 + 6, "{v}");
    assert_eq!(r["head_requests"], 0, "{v}");
    assert_eq!(r["unreferenced_objects"], 0, "{v}");
    let listed = r["list_requests"].as_u64().unwrap() as usize;
    assert!(listed <= N / 1000 + 3 + 3, "{v}");
    // Besides the listing: the manifest listing and download, and nothing per file.
    assert!(
        requests <= listed + 5,
        "{requests} requests for {N} files: {v}"
    );

    let store = emu.store();
    let gone = Key::parse(format!("nightly/library/{}", lib_path(7))).unwrap();
    rt().block_on(imb_storage::ObjectDelete::delete(&store, &gone))
        .unwrap();
    let planted = Key::parse("nightly/library/planted.jpg").unwrap();
    rt().block_on(imb_storage::ObjectCreate::put_opts(
        &store,
        &planted,
        b"not ours".to_vec().into(),
        Default::default(),
    ))
    .unwrap();
    let (c, v, _) = verify();
    assert_eq!(c, 2, "{v}");
    let r = &v["verify"];
    assert_eq!(r["findings"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(r["findings"][0]["path"], lib_path(7), "{v}");
    assert_eq!(r["findings"][0]["problem"], "object missing", "{v}");
    assert_eq!(
        r["head_requests"], 1,
        "the missing object confirmed once: {v}"
    );
    assert_eq!(r["unreferenced_objects"], 1, "{v}");
    assert_eq!(r["unreferenced"][0]["object"], "library/planted.jpg", "{v}");
    assert!(
        rt().block_on(store.head(&planted)).is_ok(),
        "the planted object is reported, never deleted"
    );
}

/// `--max-cost` refuses (exit 1) before any object is read when the estimate is
/// above it: the proxy sees the manifest and the listing, and not one library
/// object downloaded. Under the cap, the estimate is in the report and counts
/// exactly what the sample reads.
#[test]
fn max_cost_refuses_before_any_object_is_read() {
    const SIZE: usize = 10_000;
    let emu = Emulator::fake_gcs();
    let proxy = FaultProxy::start(0, emu.port(), |_| Fault::Forward);
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("upload");
    library(&src, 200, SIZE);
    let mut c = backup();
    gs(&mut c, &emu.endpoint, &src);
    assert_eq!(code(&run_json(c).0), 0);
    let run = |args: &[&str]| {
        let mark = proxy.requests().len();
        let mut c = rv_gs(&proxy.endpoint(), "nightly");
        c.arg("--no-database").args(args);
        let (out, v) = run_json(c);
        let downloads = proxy.requests()[mark..]
            .iter()
            .filter(|r| r.target.contains("alt=media") && r.target.contains("library%2F"))
            .count();
        (code(&out), v, downloads)
    };
    let (c, v, downloads) = run(&["--all", "--max-cost", "0.001"]);
    assert_eq!(c, 1, "{v}");
    let e = v["error"].as_str().unwrap();
    assert!(
        e.contains("above --max-cost") && e.contains("nothing was read"),
        "{v}"
    );
    assert_eq!(downloads, 0, "refused before any object was read: {v}");

    let (c, v, downloads) = run(&["--sample", "5", "--seed", "3", "--max-cost", "1"]);
    assert_eq!(c, 0, "{v}");
    assert_eq!(downloads, 5, "{v}");
    assert_eq!(
        v["cost"]["bytes_retrieved"], v["verify"]["bytes_downloaded"],
        "{v}"
    );
    let usd = v["cost"]["estimated_usd"].as_f64().unwrap();
    // Five Archive reads and their retrieval and egress, and the listing.
    assert!(usd > 5.0 * 0.5 / 10_000.0 && usd < 0.001, "{v}");
}
