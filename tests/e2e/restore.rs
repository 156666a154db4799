//! `restore-verify` against targets written by the real `backup`.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use crate::util::{backup, code, files, library, run_json, write};

fn rv() -> Command {
    crate::util::restore_verify()
}

/// A source with odd names and old mtimes, backed up once into `dst`.
fn backed_up(t: &Path) -> (PathBuf, PathBuf) {
    let (src, dst) = (t.join("upload"), t.join("backup"));
    library(&src, 20, 3000);
    write(
        &src.join(OsStr::from_bytes(b"library/admin/caf\xe9 100%.jpg")),
        b"latin-1",
    );
    let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000);
    fs::File::options()
        .write(true)
        .open(src.join("library/admin/2020/01/IMG_00000.jpg"))
        .unwrap()
        .set_modified(old)
        .unwrap();
    let mut c = backup();
    c.arg("--source").arg(&src).arg("--dest").arg(&dst);
    assert_eq!(code(&run_json(c).0), 0);
    (src, dst)
}

fn verify(dst: &Path, args: &[&str]) -> (i32, serde_json::Value) {
    let mut c = rv();
    c.arg("--from").arg(dst).args(args);
    let (out, v) = run_json(c);
    (code(&out), v)
}

#[test]
fn a_clean_backup_verifies_and_restores_byte_for_byte() {
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = backed_up(t.path());
    let (c, v) = verify(&dst, &["--all"]);
    assert_eq!(c, 0, "{v}");
    assert_eq!(v["verify"]["files_checked"], 27);
    assert_eq!(v["verify"]["objects_hashed"], 27);

    let out = t.path().join("restored");
    let (c, v) = verify(&dst, &["--restore-to", out.to_str().unwrap()]);
    assert_eq!(c, 0, "{v}");
    assert_eq!(v["restore"]["files_restored"], 27);
    let want: Vec<_> = files(&src)
        .into_iter()
        .filter(|p| !p.starts_with("thumbs/a"))
        .collect();
    assert_eq!(files(&out), want);
    for p in &want {
        assert_eq!(
            fs::read(out.join(p)).unwrap(),
            fs::read(src.join(p)).unwrap(),
            "{}",
            p.display()
        );
    }
    let m = |p: &Path| fs::metadata(p).unwrap().modified().unwrap();
    let p = "library/admin/2020/01/IMG_00000.jpg";
    assert_eq!(
        m(&out.join(p)),
        m(&src.join(p)),
        "modification times are restored"
    );
    assert!(
        out.join(OsStr::from_bytes(b"library/admin/caf\xe9 100%.jpg"))
            .is_file(),
        "non-UTF-8 names as they were"
    );
    assert!(
        out.join("thumbs/.immich").is_file(),
        ".immich markers included"
    );

    // Resumable: a second run finds everything in place.
    let (c, v) = verify(&dst, &["--restore-to", out.to_str().unwrap()]);
    assert_eq!(c, 0);
    assert_eq!(
        (
            v["restore"]["files_restored"].as_u64(),
            v["restore"]["files_present"].as_u64()
        ),
        (Some(0), Some(27))
    );
}

#[test]
fn a_flipped_byte_and_a_deleted_object_are_caught_and_named() {
    let t = tempfile::tempdir().unwrap();
    let (_src, dst) = backed_up(t.path());
    let flipped = dst.join("library/library/admin/2021/02/IMG_00001.jpg");
    let mut b = fs::read(&flipped).unwrap();
    b[100] ^= 1;
    // Objects are hard links in a local target: write a new inode, don't edit in place.
    fs::remove_file(&flipped).unwrap();
    fs::write(&flipped, &b).unwrap();
    fs::remove_file(dst.join("library/library/admin/2022/03/IMG_00002.jpg")).unwrap();

    let (c, v) = verify(&dst, &[]);
    assert_eq!(c, 2, "{v}");
    let findings = v["verify"]["findings"].to_string();
    assert!(
        findings.contains("IMG_00002.jpg") && findings.contains("object missing"),
        "{findings}"
    );
    assert!(
        !findings.contains("IMG_00001"),
        "metadata alone cannot see a flipped byte on a local target"
    );

    let (c, v) = verify(&dst, &["--all"]);
    assert_eq!(c, 2);
    let findings = v["verify"]["findings"].to_string();
    assert!(
        findings.contains("IMG_00001.jpg") && findings.contains("content differs"),
        "{findings}"
    );

    // A seeded sample is repeatable.
    let (_, a) = verify(&dst, &["--sample", "5", "--seed", "42"]);
    let (_, b) = verify(&dst, &["--sample", "5", "--seed", "42"]);
    assert_eq!(a["verify"]["objects_hashed"], b["verify"]["objects_hashed"]);
    assert_eq!(a["verify"]["findings"], b["verify"]["findings"]);
}

#[test]
fn a_truncated_manifest_is_named_and_an_older_one_used() {
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = backed_up(t.path());
    write(&src.join("library/admin/new.jpg"), b"second run");
    let mut c = backup();
    c.arg("--source").arg(&src).arg("--dest").arg(&dst);
    let (_, s) = run_json(c);
    let newest = s["manifest"].as_str().unwrap().to_owned();
    let p = dst.join(&newest);
    let len = fs::metadata(&p).unwrap().len();
    fs::File::options()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let (c, v) = verify(&dst, &[]);
    assert_eq!(c, 2, "{v}");
    assert!(v["warnings"].to_string().contains(&newest), "{v}");
    assert_ne!(v["manifest"], newest.as_str());
}

#[test]
fn a_manifest_entry_that_escapes_the_restore_directory_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let (_src, dst) = backed_up(t.path());
    // A tampered manifest: an entry pointing outside, and one through a symlink.
    let newest = files(&dst)
        .into_iter()
        .map(|p| p.display().to_string())
        .filter(|n| n.starts_with("manifest-") && !n.contains(".part-"))
        .max()
        .unwrap();
    {
        let mut m = imb_manifest::Manifest::open(&dst.join(&newest)).unwrap();
        let mut rec = m
            .get("library/admin/2020/01/IMG_00000.jpg")
            .unwrap()
            .unwrap();
        rec.file_path = "../escaped.jpg".into();
        rec.object_key = Some("library/library/admin/2020/01/IMG_00000.jpg".into());
        m.upsert(&rec).unwrap();
        rec.file_path = "planted/inside.jpg".into();
        m.upsert(&rec).unwrap();
        m.commit().unwrap();
    }
    let out = t.path().join("restored");
    let outside = t.path().join("elsewhere");
    fs::create_dir_all(&out).unwrap();
    fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, out.join("planted")).unwrap();
    let (c, v) = verify(&dst, &["--restore-to", out.to_str().unwrap()]);
    assert_eq!(c, 2, "{v}");
    let refused = v["restore"]["refused"].to_string();
    assert!(
        refused.contains("../escaped.jpg") && refused.contains("planted/inside.jpg"),
        "{refused}"
    );
    assert!(!t.path().join("escaped.jpg").exists());
    assert!(
        fs::read_dir(&outside).unwrap().next().is_none(),
        "nothing written through the symlink"
    );
    assert_eq!(v["restore"]["files_restored"], 27, "the rest was restored");
}

#[test]
fn point_in_time_restore_brings_back_earlier_content_and_deleted_files() {
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = backed_up(t.path());
    let first = files(&dst)
        .into_iter()
        .map(|p| p.display().to_string())
        .find(|n| n.starts_with("manifest-") && !n.contains(".part-"))
        .unwrap();
    let p = "library/admin/2020/01/IMG_00000.jpg";
    let original = fs::read(src.join(p)).unwrap();
    write(&src.join(p), b"edited later");
    fs::remove_file(src.join("library/admin/2021/02/IMG_00001.jpg")).unwrap();
    let mut c = backup();
    c.arg("--source").arg(&src).arg("--dest").arg(&dst);
    assert_eq!(code(&run_json(c).0), 0);

    let now = t.path().join("now");
    let (c, _) = verify(&dst, &["--restore-to", now.to_str().unwrap()]);
    assert_eq!(c, 0);
    assert_eq!(
        fs::read(now.join(p)).unwrap(),
        b"edited later",
        "newest content by default"
    );
    assert!(!now.join("library/admin/2021/02/IMG_00001.jpg").exists());

    let then = t.path().join("then");
    let (c, v) = verify(
        &dst,
        &["--restore-to", then.to_str().unwrap(), "--at", &first],
    );
    assert_eq!(c, 0, "{v}");
    assert_eq!(
        fs::read(then.join(p)).unwrap(),
        original,
        "the earlier content"
    );
    assert!(
        then.join("library/admin/2021/02/IMG_00001.jpg").is_file(),
        "a file archived since"
    );
}

#[test]
fn stale_backups_fail_max_age_and_reports_can_live_in_the_target() {
    let t = tempfile::tempdir().unwrap();
    let (_src, dst) = backed_up(t.path());
    let (c, v) = verify(&dst, &["--max-age", "1h", "--write-report"]);
    assert_eq!(c, 0, "{v}");
    let obj = v["report_object"].as_str().unwrap();
    assert!(obj.starts_with("reports/") && dst.join(obj).is_file());
    // A manifest from long ago is stale.
    let old = t.path().join("old");
    fs::create_dir_all(&old).unwrap();
    let newest = files(&dst)
        .into_iter()
        .map(|p| p.display().to_string())
        .filter(|n| n.starts_with("manifest-") && !n.contains(".part-"))
        .max()
        .unwrap();
    fs::copy(
        dst.join(&newest),
        old.join("manifest-2020-01-01T00-00-00.db"),
    )
    .unwrap();
    let (c, v) = verify(&old, &["--max-age", "36h"]);
    assert_eq!(c, 2, "{v}");
    assert_eq!(v["freshness"]["stale"], true);
    // No manifest at all: could not run.
    let (c, v) = verify(&t.path().join("empty"), &[]);
    assert_eq!(c, 1, "{v}");
    assert!(v["error"].as_str().unwrap().contains("no manifest"), "{v}");
}

#[test]
fn a_prefix_restores_only_that_part() {
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = backed_up(t.path());
    let out = t.path().join("part");
    let (c, v) = verify(
        &dst,
        &[
            "--prefix",
            "library/admin/2020/",
            "--restore-to",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(c, 0, "{v}");
    let got = files(&out);
    assert!(
        !got.is_empty() && got.iter().all(|p| p.starts_with("library/admin/2020")),
        "{got:?}"
    );
    let want: Vec<_> = files(&src)
        .into_iter()
        .filter(|p| p.starts_with("library/admin/2020"))
        .collect();
    assert_eq!(got, want);
    assert_eq!(
        v["verify"]["files_checked"].as_u64().unwrap() as usize,
        want.len(),
        "verify honours it too"
    );
}

#[test]
fn a_corrupt_dump_is_named() {
    let t = tempfile::tempdir().unwrap();
    let (_src, dst) = backed_up(t.path());
    let ts = crate::util::ts_in(60);
    write(
        &dst.join(format!("database/{ts}-immich-v2.3.1.sql.gz")),
        b"\x1f\x8b\x08\x00 this is not deflate data at all",
    );
    let (c, v) = verify(&dst, &[]);
    assert_eq!(c, 2, "{v}");
    let f = v["database"]["findings"].to_string();
    assert!(
        f.contains("not a valid gzip stream") && f.contains(&ts),
        "{v}"
    );
}

/// `restore-verify … 2>&1 | tail`: piped, its text output and log lines carry no
/// terminal escape codes; `--log-format json` gives one JSON object per line.
#[test]
fn piped_output_has_no_escape_codes() {
    let t = tempfile::tempdir().unwrap();
    let (_src, dst) = backed_up(t.path());
    let out = rv()
        .env("RUST_LOG", "info")
        .arg("--from")
        .arg(&dst)
        .arg("--no-database")
        .output()
        .unwrap();
    assert_eq!(code(&out), 0);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("INFO"), "log lines are there: {stderr}");
    assert!(
        !stderr.contains('\x1b') && !out.stdout.contains(&0x1b),
        "{stderr:?}"
    );
    let out = rv()
        .env("RUST_LOG", "info")
        .args(["--log-format", "json", "--no-database", "--from"])
        .arg(&dst)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.is_empty());
    for line in stderr.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v["level"].is_string(), "{line}");
    }
}

/// restore-verify pushes its own series (job `immich_backup_verify`) beside the
/// backup's: neither replaces the other in the Pushgateway, a missing object is a
/// finding of kind `missing`, and a check with problems keeps the last success.
#[test]
fn verify_metrics_are_pushed_beside_the_backups() {
    use imb_testkit::prometheus::Pushgateway;
    let pg = Pushgateway::start();
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = backed_up(t.path());
    let dest = dst.to_str().unwrap().to_owned();
    let mut c = backup();
    c.arg("--source").arg(&src).arg("--dest").arg(&dst).args([
        "--no-database",
        "--metrics-push",
        &pg.url(),
    ]);
    assert_eq!(code(&run_json(c).0), 0);
    let push = || {
        let mut c = rv();
        c.arg("--from")
            .arg(&dst)
            .args(["--no-database", "--metrics-push", &pg.url()]);
        run_json(c)
    };
    let (out, v) = push();
    assert_eq!(code(&out), 0, "{v}");
    let job = [("job", "immich_backup_verify"), ("target", dest.as_str())];
    assert_eq!(
        pg.value("immich_backup_verify_last_run_success", &job),
        Some(1.0)
    );
    assert_eq!(
        pg.value("immich_backup_verify_objects_checked", &job),
        v["verify"]["files_checked"].as_f64()
    );
    let success = pg
        .value("immich_backup_verify_last_success_timestamp_seconds", &job)
        .expect("a success time");
    let backup_job = [("job", "immich_backup"), ("target", dest.as_str())];
    assert_eq!(
        pg.value("immich_backup_last_run_success", &backup_job),
        Some(1.0),
        "the backup's series are still there: {}",
        pg.metrics()
    );

    let gone = files(&dst)
        .into_iter()
        .find(|p| p.starts_with("library/library/admin"))
        .unwrap();
    fs::remove_file(dst.join(&gone)).unwrap();
    let file = t.path().join("verify.prom");
    let mut c = rv();
    c.arg("--from")
        .arg(&dst)
        .arg("--no-database")
        .arg("--metrics-file")
        .arg(&file);
    let (out, v) = run_json(c);
    assert_eq!(code(&out), 2, "{v}");
    let text = fs::read_to_string(&file).unwrap();
    assert!(text.contains("immich_backup_verify_findings{"), "{text}");
    let (status, said) = imb_testkit::prometheus::promtool(&["check", "metrics"], Some(&file));
    assert_eq!(
        (status, said.trim()),
        (0, ""),
        "promtool check metrics: {text}"
    );
    let (out, v) = push();
    assert_eq!(code(&out), 2, "{v}");
    let missing = [
        ("job", "immich_backup_verify"),
        ("target", dest.as_str()),
        ("kind", "missing"),
    ];
    assert_eq!(
        pg.value("immich_backup_verify_findings", &missing),
        Some(1.0)
    );
    assert_eq!(
        pg.value("immich_backup_verify_last_run_success", &job),
        Some(0.0)
    );
    assert_eq!(
        pg.value("immich_backup_verify_last_success_timestamp_seconds", &job),
        Some(success),
        "problems never move the last success"
    );
    assert_eq!(
        pg.value("immich_backup_last_run_success", &backup_job),
        Some(1.0),
        "still the backup's own"
    );
}
