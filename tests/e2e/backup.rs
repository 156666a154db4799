//! `backup` against a local target: the issue's scenarios, through the real binary.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use crate::util::{backup, bin, code, files, library, run_json, spawn, write};

fn args(c: &mut Command, src: &std::path::Path, dst: &std::path::Path) {
    c.arg("--source").arg(src).arg("--dest").arg(dst);
}

#[test]
fn first_run_rerun_and_the_json_summary() {
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("upload"), t.path().join("backup"));
    library(&src, 40, 3000);
    let mut c = backup();
    args(&mut c, &src, &dst);
    let (out, s) = run_json(c);
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    for k in [
        "files_scanned",
        "files_uploaded",
        "bytes_uploaded",
        "files_unchanged",
        "files_deduplicated",
        "files_archived",
        "files_failed",
        "failures",
        "manifest_saves",
        "duration_s",
        "retries",
        "suspect_corruption",
        "database",
        "stopped",
    ] {
        assert!(s.get(k).is_some(), "summary lacks {k}: {s}");
    }
    assert_eq!(s["files_scanned"], 46, "{s}");
    assert_eq!(s["bytes_uploaded"], 40 * 3000);
    assert!(s["database"].is_null());
    assert!(s["duration_s"].is_f64());
    assert!(dst.join("manifest.db").is_file());
    // The layout is the seed's bucket layout.
    assert!(
        dst.join("library/library/admin/2020/01/IMG_00000.jpg")
            .is_file()
    );
    let (_m, m) = crate::util::fetched_manifest(&dst);
    assert!(
        m.get("library/admin/2020/01/IMG_00000.jpg")
            .unwrap()
            .is_some()
    );
    assert_eq!(m.metadata("version").unwrap().as_deref(), Some("1"));

    let mut c = backup();
    args(&mut c, &src, &dst);
    let (out, s) = run_json(c);
    assert_eq!(code(&out), 0);
    assert_eq!(s["files_uploaded"], 0, "{s}");
    assert_eq!(s["files_unchanged"], 46);
    let text = {
        let mut c = backup();
        args(&mut c, &src, &dst);
        String::from_utf8_lossy(&c.output().unwrap().stderr).into_owned()
    };
    assert!(text.contains("nothing changed, nothing uploaded"), "{text}");
}

#[test]
fn modify_delete_move_and_odd_names() {
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("upload"), t.path().join("backup"));
    library(&src, 10, 2000);
    let weird = src.join(std::ffi::OsStr::from_bytes(
        b"library/admin/\xffname\x01.jpg",
    ));
    write(&weird, b"bytes of a weird name");
    let mut c = backup();
    args(&mut c, &src, &dst);
    assert_eq!(code(&run_json(c).0), 0);

    write(&src.join("library/admin/2020/01/IMG_00000.jpg"), b"edited");
    fs::remove_file(src.join("library/admin/2021/02/IMG_00001.jpg")).unwrap();
    fs::rename(
        src.join("library/admin/2022"),
        src.join("library/admin/moved-2022"),
    )
    .unwrap();
    let mut c = backup();
    args(&mut c, &src, &dst);
    let (out, s) = run_json(c);
    assert_eq!(code(&out), 0, "{s}");
    assert_eq!(s["files_uploaded"], 1, "{s}");
    assert_eq!(s["files_deduplicated"], 2, "{s}");
    assert_eq!(s["files_archived"], 3, "one deleted, two moved away: {s}");
    // Nothing was overwritten or deleted.
    assert_eq!(
        fs::read(dst.join("library/library/admin/2020/01/IMG_00000.jpg"))
            .unwrap()
            .len(),
        2000
    );
    assert!(
        dst.join("library/library/admin/2021/02/IMG_00001.jpg")
            .is_file()
    );
    let enc = "library/admin/%FFname%01.jpg";
    assert_eq!(
        fs::read(dst.join("library").join(enc)).unwrap(),
        b"bytes of a weird name"
    );
    let (_m, m) = crate::util::fetched_manifest(&dst);
    assert!(m.get(enc).unwrap().is_some());
    assert!(
        m.get("library/admin/2021/02/IMG_00001.jpg")
            .unwrap()
            .unwrap()
            .archived
    );
}

/// The core promise: a run killed at any point, then run again, ends with every
/// file backed up exactly once and the manifest matching the target.
/// Every live row a reader assembles from the target names an object that holds
/// that row's content. Returns the rows.
fn assert_rows_have_their_objects(dst: &std::path::Path) -> usize {
    let (_m, m) = crate::util::fetched_manifest(dst);
    let mut rows = 0;
    m.for_each_file(|r| {
        rows += 1;
        let bytes = fs::read(dst.join(imb_layout::content_key(&r))).unwrap();
        assert_eq!(
            imb_hash::digest(&bytes).sha256,
            r.checksum,
            "{}",
            r.file_path
        );
        Ok(())
    })
    .unwrap();
    rows
}

/// A run that ends with a delta, killed with SIGKILL right after its first part,
/// after its third, and after its delta: after each kill every row a reader
/// assembles names an object holding that content, and the next run finishes the
/// job (the one after the last kill has nothing left to do).
#[test]
fn a_delta_run_killed_at_each_save_point_leaves_a_consistent_target() {
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("upload"), t.path().join("backup"));
    let n = 600;
    library(&src, n, 4096);
    let mut c = backup();
    args(&mut c, &src, &dst);
    assert_eq!(code(&run_json(c).0), 0);
    let changed: Vec<_> = files(&src.join("library"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .step_by(2)
        .collect();
    for (i, p) in changed.iter().enumerate() {
        write(
            &src.join("library").join(p),
            format!("edited {i}").repeat(400).as_bytes(),
        );
    }
    for (needle, nth) in [
        ("manifest journal saved", 1),
        ("manifest journal saved", 3),
        ("manifest delta saved", 1),
    ] {
        let mut c = backup();
        args(&mut c, &src, &dst);
        // Slow enough that the kill lands mid-run, whatever the machine.
        c.args(["--save-every", "50", "--bwlimit", "1M", "--workers", "2"]);
        let mut run = spawn(c);
        for _ in 0..nth {
            run.wait_for(needle);
        }
        let _ = run.child.kill(); // SIGKILL; after the delta the run may have ended
        let (status, _) = run.finish();
        if needle.contains("journal") {
            assert_ne!(status, 0, "killed mid-run at {needle} #{nth}");
        }
        assert_eq!(
            assert_rows_have_their_objects(&dst),
            n + 6,
            "after a kill at {needle} #{nth}"
        );
    }
    let mut c = backup();
    args(&mut c, &src, &dst);
    let (out, s) = run_json(c);
    assert_eq!(code(&out), 0, "{s}");
    assert_eq!(
        s["files_uploaded"], 0,
        "the runs before finished the job: {s}"
    );
    let (_m, m) = crate::util::fetched_manifest(&dst);
    for p in &changed {
        let rel = format!("library/{}", p.display());
        let rec = m.get(&rel).unwrap().unwrap();
        let want = imb_hash::digest(&fs::read(src.join(&rel)).unwrap()).sha256;
        assert_eq!(rec.checksum, want, "{rel}");
    }
}

#[test]
fn killed_with_sigkill_then_rerun_finishes_the_job() {
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("upload"), t.path().join("backup"));
    let n = 1500;
    library(&src, n, 4096);
    // A private temp dir, to see what the killed run leaves there.
    let tmp = t.path().join("tmp");
    fs::create_dir(&tmp).unwrap();
    let mut c = backup();
    c.env("TMPDIR", &tmp);
    args(&mut c, &src, &dst);
    // Slow enough that the kill lands mid-run, whatever the machine.
    c.args(["--save-every", "100", "--bwlimit", "1M", "--workers", "2"]);
    let mut run = spawn(c);
    run.wait_for("manifest journal saved");
    run.child.kill().unwrap(); // SIGKILL
    let (status, _) = run.finish();
    assert_ne!(status, 0, "the run was killed");
    let before = files(&dst.join("library")).len();
    assert!(
        before > 0 && before < n + 6,
        "killed mid-run: {before} objects"
    );

    let left: Vec<_> = fs::read_dir(&tmp)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(left.len(), 1, "the killed run's work dir: {left:?}");
    assert!(left[0].to_string_lossy().starts_with("imb-backup-"));

    let mut c = backup();
    c.env("TMPDIR", &tmp);
    args(&mut c, &src, &dst);
    let (out, s) = run_json(c);
    assert_eq!(
        code(&out),
        0,
        "{s}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        fs::read_dir(&tmp).unwrap().count(),
        0,
        "the next run removed the dead one's work dir, and its own"
    );
    let total = n as u64 + 6;
    assert_eq!(s["files_scanned"], total, "{s}");
    // Each object that the killed run stored is found, not stored again.
    let uploaded =
        s["files_uploaded"].as_u64().unwrap() + s["files_deduplicated"].as_u64().unwrap();
    assert_eq!(uploaded as usize, n + 6 - before, "{s}");
    let after = files(&dst.join("library"));
    assert_eq!(after.len(), n + 6);
    for p in &after {
        assert_eq!(
            fs::read(dst.join("library").join(p)).unwrap(),
            fs::read(src.join(p)).unwrap(),
            "{}",
            p.display()
        );
    }
    let (_m, m) = crate::util::fetched_manifest(&dst);
    let mut rows = 0;
    m.for_each_file(|r| {
        rows += 1;
        assert!(!r.archived);
        assert!(
            dst.join(imb_layout::content_key(&r)).is_file(),
            "{}",
            imb_layout::content_key(&r)
        );
        Ok(())
    })
    .unwrap();
    assert_eq!(rows, n + 6);
    assert!(
        !dst.join(".imb-staging").read_dir().unwrap().any(|_| true),
        "no staged leftovers"
    );
}

#[test]
fn sigterm_stops_gracefully_and_the_next_run_resumes() {
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("upload"), t.path().join("backup"));
    library(&src, 1500, 4096);
    let mut c = backup();
    args(&mut c, &src, &dst);
    c.args(["--save-every", "100", "--bwlimit", "1M", "--workers", "2"]);
    let run = spawn(c);
    run.wait_for("manifest journal saved");
    let pid = run.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let (status, s) = run.finish();
    assert_eq!(status, 2, "{s}");
    assert_eq!(s["stopped"], true, "{s}");
    assert!(s["manifest"].is_string(), "the manifest was saved: {s}");
    let done = s["files_uploaded"].as_u64().unwrap() + s["files_deduplicated"].as_u64().unwrap();

    let mut c = backup();
    args(&mut c, &src, &dst);
    let (out, s2) = run_json(c);
    assert_eq!(code(&out), 0, "{s2}");
    let rest = s2["files_uploaded"].as_u64().unwrap() + s2["files_deduplicated"].as_u64().unwrap();
    assert_eq!(
        done + rest,
        1506,
        "every file uploaded exactly once across the two runs: {s} {s2}"
    );
    assert_eq!(s2["files_unchanged"].as_u64().unwrap(), done);
}

#[test]
fn a_second_backup_refuses_while_one_runs() {
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("upload"), t.path().join("backup"));
    library(&src, 800, 4096);
    let mut c = backup();
    args(&mut c, &src, &dst);
    // About 13 s for the 3.2 MiB at 256 KiB/s, so the second run surely starts
    // while the first holds the lock, even on a loaded machine.
    c.args(["--save-every", "50", "--bwlimit", "256K", "--workers", "1"]);
    let mut first = spawn(c);
    first.wait_for("manifest journal saved");
    let mut c = backup();
    args(&mut c, &src, &dst);
    let (out, s) = run_json(c);
    assert_eq!(code(&out), 1, "{s}");
    assert!(
        s["error"]
            .as_str()
            .unwrap()
            .contains("another backup is running"),
        "{s}"
    );
    first.child.kill().unwrap();
    first.finish();
}

#[test]
fn bad_input_gets_named_errors_and_the_right_exit_codes() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("upload");
    library(&src, 3, 100);

    // Missing source: could not run.
    let mut c = backup();
    args(&mut c, &t.path().join("nope"), &t.path().join("b1"));
    let (out, s) = run_json(c);
    assert_eq!(code(&out), 1);
    let err = s["error"].as_str().unwrap();
    assert!(err.contains("nope"), "{s}");
    // Its cause once, in the JSON and on stderr.
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.matches("No such file or directory").count(),
        1,
        "{stderr}"
    );

    // A bad flag exits 1, not clap's 2.
    let out = backup().arg("--no-such-flag").output().unwrap();
    assert_eq!(code(&out), 1);

    // A target inside the source would copy itself.
    let mut c = backup();
    args(&mut c, &src, &src.join("library/backup"));
    let (out, s) = run_json(c);
    assert_eq!(code(&out), 1);
    assert!(
        s["error"].as_str().unwrap().contains("inside --source"),
        "{s}"
    );

    // An unwritable target.
    let blocker = t.path().join("file");
    write(&blocker, b"x");
    let mut c = backup();
    args(&mut c, &src, &blocker.join("sub"));
    let (out, s) = run_json(c);
    assert_eq!(code(&out), 1);
    assert!(s["error"].as_str().unwrap().contains("sub"), "{s}");

    // A config file with an unknown key names it.
    let cfg = t.path().join("c.toml");
    write(&cfg, b"source = '/x'\nworkerz = 2\n");
    let out = backup()
        .arg("--config")
        .arg(&cfg)
        .arg("--dest")
        .arg(t.path().join("b2"))
        .output()
        .unwrap();
    assert_eq!(code(&out), 1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("workerz"));
}

/// An unreadable file is reported by name, the rest is backed up, exit 2. Root
/// reads everything, so as root the backup runs as `nobody`.
#[test]
fn an_unreadable_file_fails_alone() {
    let t = tempfile::tempdir().unwrap();
    fs::set_permissions(t.path(), fs::Permissions::from_mode(0o777)).unwrap();
    let (src, dst) = (t.path().join("upload"), t.path().join("backup"));
    library(&src, 5, 100);
    let secret = src.join("library/admin/secret.jpg");
    write(&secret, b"cannot read me");
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o000)).unwrap();
    for p in [&src, &src.join("library"), &src.join("library/admin")] {
        fs::set_permissions(p, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let mut c = if crate::util::is_root() {
        // The clone may sit where `nobody` cannot reach; run a copy from the temp dir.
        let copy = t.path().join("backup-bin");
        fs::copy(crate::util::bin("backup"), &copy).unwrap();
        fs::set_permissions(&copy, fs::Permissions::from_mode(0o755)).unwrap();
        // A child forked by another test thread may still hold it open for writing.
        imb_testkit::exec::wait_until_executable(&copy).unwrap();
        let mut c = Command::new("runuser");
        crate::util::clean_env(&mut c);
        c.args(["-u", "nobody", "--"]).arg(&copy);
        c
    } else {
        backup()
    };
    c.env("TMPDIR", t.path());
    args(&mut c, &src, &dst);
    let (out, s) = run_json(c);
    assert_eq!(
        code(&out),
        2,
        "{s}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(s["files_failed"], 1, "{s}");
    assert_eq!(s["failures"][0]["path"], "library/admin/secret.jpg");
    assert!(
        s["failures"][0]["error"]
            .as_str()
            .unwrap()
            .contains("ermission"),
        "{s}"
    );
    assert_eq!(
        s["files_uploaded"].as_u64().unwrap() + s["files_deduplicated"].as_u64().unwrap(),
        11
    );
}

#[test]
fn settings_come_from_env_and_config_file() {
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("upload"), t.path().join("backup"));
    library(&src, 3, 100);
    write(&src.join("backups/immich-db-backup-1.sql.gz"), b"dump");
    let cfg = t.path().join("backup.toml");
    write(
        &cfg,
        format!(
            "source = {:?}\nworkers = 2\nexcludes = ['backups']\n",
            src.display().to_string()
        )
        .as_bytes(),
    );
    let mut c = backup();
    c.arg("--config").arg(&cfg).env("IMB_DEST", &dst);
    let (out, s) = run_json(c);
    assert_eq!(code(&out), 0, "{s}");
    assert!(
        !dst.join("library/backups/immich-db-backup-1.sql.gz")
            .exists(),
        "excluded by the file"
    );
    assert!(
        dst.join("library/backups/.immich").is_file(),
        "its marker is kept"
    );
}

/// `PROGRAM completions SHELL` and `PROGRAM man`, for each binary, as clap-based
/// tools offer them; a shell we do not know is a usage error.
#[test]
fn completions_and_man_pages_for_every_binary() {
    for b in ["backup", "restore-verify", "device-sync"] {
        for (shell, says) in [
            ("bash", format!("complete -F _{}", b.replace('-', "__"))),
            ("zsh", format!("#compdef {b}")),
            ("fish", format!("complete -c {b}")),
        ] {
            let out = Command::new(bin(b))
                .args(["completions", shell])
                .output()
                .unwrap();
            assert_eq!(code(&out), 0, "{b} {shell}");
            let script = String::from_utf8_lossy(&out.stdout);
            assert!(script.contains(&says), "{b} {shell}: {script:.300}");
            let flag = if shell == "fish" { "-l json" } else { "--json" };
            assert!(script.contains(flag), "{b} {shell} completes the flags");
        }
        let out = Command::new(bin(b)).arg("man").output().unwrap();
        let page = String::from_utf8_lossy(&out.stdout);
        assert!(
            page.contains(".TH") && page.contains(r"\-\-json"),
            "{b}: {page:.300}"
        );
        let out = Command::new(bin(b))
            .args(["completions", "tcsh"])
            .output()
            .unwrap();
        assert_eq!(code(&out), 1);
        assert!(String::from_utf8_lossy(&out.stderr).contains("name a shell"));
    }
}

/// At a terminal (a pseudo-terminal from `script`): the bar, no line per manifest
/// save above it, and a summary that ends with the rate. Piped, the per-save lines
/// stay in the log.
#[test]
fn a_terminal_gets_the_bar_and_the_rate_not_a_line_per_save() {
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("upload"), t.path().join("backup"));
    library(&src, 60, 1000);
    let c = backup();
    let mut line = format!(
        "{} --source {} --dest {} --save-every 5",
        c.get_program().to_string_lossy(),
        src.display(),
        dst.display()
    );
    line.push_str(" 2>&1");
    let mut script = Command::new("script");
    script.args(["-qfec", &line, "/dev/null"]);
    for (k, v) in c.get_envs() {
        match v {
            Some(v) => script.env(k, v),
            None => script.env_remove(k),
        };
    }
    // The test's own RUST_LOG=info would bring the lines back, as it should.
    script.env_remove("RUST_LOG");
    let out = script.output().unwrap();
    let screen = String::from_utf8_lossy(&out.stdout);
    assert_eq!(code(&out), 0, "{screen}");
    assert!(!screen.contains("manifest journal saved"), "{screen}");
    assert!(
        screen.contains("Backup complete") && screen.contains("files/s"),
        "{screen}"
    );

    // Piped: the same run's saves are logged.
    fs::remove_dir_all(&dst).unwrap();
    let mut c = backup();
    args(&mut c, &src, &dst);
    let out = c
        .args(["--save-every", "5"])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.matches("manifest journal saved").count() >= 10, "{log}");
}

/// One key set in the file, the environment and the command line at once: the
/// command line wins, then the environment, then the file.
#[test]
fn a_setting_in_three_layers_is_taken_from_the_highest() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("lib");
    for f in ["upload/a.jpg", "thumbs/a.webp"] {
        let p = src.join(f);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, f).unwrap();
    }
    let cfg = t.path().join("c.toml");
    let scanned = |file: &str, env: Option<&str>, flag: Option<&str>| {
        fs::write(&cfg, file).unwrap();
        let mut c = backup();
        c.arg("--source")
            .arg(&src)
            .arg("--dest")
            .arg(t.path().join("dst"))
            .arg("--config")
            .arg(&cfg)
            .args(["--no-database", "--json"]);
        if let Some(v) = env {
            c.env("IMB_DEFAULT_EXCLUDES", v);
        }
        c.args(flag);
        let out = c.output().unwrap();
        assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
        let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        s["files_scanned"].as_u64().unwrap()
    };
    // thumbs/ excluded: 1 file; included: 2.
    let on = "default_excludes = true\n";
    let off = "default_excludes = false\n";
    assert_eq!(scanned(on, Some("false"), Some("--default-excludes")), 1);
    assert_eq!(scanned(off, Some("true"), Some("--no-default-excludes")), 2);
    assert_eq!(
        scanned(on, Some("false"), None),
        2,
        "the environment beats the file"
    );
    assert_eq!(
        scanned(off, Some("true"), None),
        1,
        "the environment beats the file"
    );
    assert_eq!(scanned(off, None, None), 2, "the file beats the default");
}

/// `--metrics-push` against Debian's Pushgateway and `--metrics-file` checked by
/// promtool (#16): a good run's series carry the summary's figures and a success
/// time; a run that could not run pushes `last_run_success 0` and leaves the last
/// success where it was; an unreachable Pushgateway is a warning, not a failure.
#[test]
fn metrics_are_pushed_and_written_and_a_failure_keeps_the_last_success() {
    use imb_testkit::prometheus::{Pushgateway, promtool, value_in};
    let pg = Pushgateway::start();
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("upload"), t.path().join("backup"));
    library(&src, 5, 100);
    let file = t.path().join("textfile/immich_backup.prom");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let dest = dst.to_str().unwrap().to_owned();
    let target = [("job", "immich_backup"), ("target", dest.as_str())];

    let mut c = backup();
    c.arg("--source").arg(&src).arg("--dest").arg(&dst);
    c.args(["--no-database", "--metrics-push", &pg.url()])
        .arg("--metrics-file")
        .arg(&file);
    let (out, s) = run_json(c);
    assert_eq!(code(&out), 0, "{s}");
    let uploaded = pg.value("immich_backup_last_run_files_uploaded", &target);
    assert_eq!(uploaded, s["files_uploaded"].as_f64(), "{}", pg.metrics());
    assert_eq!(
        pg.value("immich_backup_last_run_success", &target),
        Some(1.0)
    );
    let success = pg
        .value("immich_backup_last_success_timestamp_seconds", &target)
        .expect("a success time");
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(
        value_in(&text, "immich_backup_last_run_files_uploaded", &[]),
        uploaded,
        "{text}"
    );
    let (status, said) = promtool(&["check", "metrics"], Some(&file));
    assert_eq!((status, said.trim()), (0, ""), "promtool check metrics");

    // The source gone: could not run (exit 1). Pushed all the same; the last
    // success stays.
    let mut c = backup();
    c.arg("--source")
        .arg(t.path().join("gone"))
        .arg("--dest")
        .arg(&dst);
    c.args(["--no-database", "--metrics-push", &pg.url()]);
    let (out, _) = run_json(c);
    assert_eq!(code(&out), 1);
    assert_eq!(
        pg.value("immich_backup_last_run_success", &target),
        Some(0.0)
    );
    assert_eq!(
        pg.value("immich_backup_last_run_exit_status", &target),
        Some(1.0)
    );
    assert_eq!(
        pg.value("immich_backup_last_success_timestamp_seconds", &target),
        Some(success),
        "a failure never moves the last success"
    );

    // A Pushgateway that is not there: the backup still succeeds.
    let mut c = backup();
    c.arg("--source").arg(&src).arg("--dest").arg(&dst);
    let nowhere = format!("http://127.0.0.1:{}", imb_testkit::free_port());
    c.args(["--no-database", "--metrics-push", &nowhere]);
    let (out, s) = run_json(c);
    assert_eq!(code(&out), 0, "{s}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("could not push the metrics"));
}

/// Pings from `IMB_PING_URL` (healthchecks.io's protocol): `/start`, then the
/// check's URL for a good run; `/start`, then `/1` with the error and the log's
/// last lines for a run that could not run. The URL is a credential: it never
/// shows in the output. A ping endpoint that hangs or refuses changes nothing.
#[test]
fn pings_tell_a_dead_mans_switch_how_each_run_ended() {
    use imb_testkit::ping::{PingServer, refusing_url};
    let ping = PingServer::start();
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("upload"), t.path().join("backup"));
    library(&src, 3, 100);
    let run = |url: &str, source: &std::path::Path| {
        let mut c = backup();
        c.env("IMB_PING_URL", url).env("IMB_PING_TIMEOUT", "1s");
        c.arg("--source")
            .arg(source)
            .arg("--dest")
            .arg(&dst)
            .arg("--no-database");
        run_json(c)
    };
    let (out, s) = run(&ping.url(), &src);
    assert_eq!(code(&out), 0, "{s}");
    let got = ping.received();
    let paths: Vec<&str> = got.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        ["/ping/check-uuid/start", "/ping/check-uuid"],
        "{got:?}"
    );
    assert!(got[1].body.contains("files_uploaded"), "{}", got[1].body);
    let shown = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !shown.contains("check-uuid"),
        "the URL never shows: {shown}"
    );

    let (out, _) = run(&ping.url(), &t.path().join("gone"));
    assert_eq!(code(&out), 1);
    let got = ping.received();
    assert_eq!(got[2].path, "/ping/check-uuid/start");
    assert_eq!(got[3].path, "/ping/check-uuid/1", "{got:?}");
    assert!(got[3].body.contains("gone"), "the error: {}", got[3].body);
    assert!(
        got[3].body.contains("backup"),
        "the log's last lines: {}",
        got[3].body
    );

    for url in [PingServer::hanging().url(), refusing_url()] {
        let (out, s) = run(&url, &src);
        assert_eq!(code(&out), 0, "a ping that fails changes nothing: {s}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("could not ping"), "{err}");
    }
}
