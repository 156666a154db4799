//! A target written by an attacker: planted psql meta-commands and SQL that reaches
//! outside the database, in a dump `restore-verify` checks and `--db-restore` loads.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use imb_pgdump::scratch::ScratchCluster;

use crate::database::{immich_db, with_db};
use crate::util::OnEmulator;
use crate::util::{backup, code, gunzip, gzip_to, library, restore_verify, run_json};

/// A target with a real dump of an Immich-shaped database; returns it with the
/// dump's text.
fn target_with_a_dump(pg: &ScratchCluster, t: &Path) -> (PathBuf, String) {
    immich_db(pg);
    let (src, dst) = (t.join("upload"), t.join("backup"));
    library(&src, 2, 100);
    let mut c = backup();
    with_db(&mut c, pg, pg.password());
    c.arg("--source").arg(&src).arg("--dest").arg(&dst);
    let (out, s) = run_json(c);
    assert_eq!(code(&out), 0, "{s}");
    let text = gunzip(&dst.join(s["database"]["object"].as_str().unwrap()));
    (dst, text)
}

/// A world-writable directory (mode 1777) for markers, so a planted command could
/// write there as whatever user runs it.
fn marker_dir(t: &Path) -> PathBuf {
    let d = t.join("markers");
    std::fs::create_dir(&d).unwrap();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o1777)).unwrap();
    d
}

/// A directory for `IMB_PG_BIN_DIR`: the system's server binaries, with `psql`
/// replaced by a shell script whose body is `psql_script` (`REAL` stands for the
/// real psql).
fn bin_dir_with_psql(pg: &ScratchCluster, t: &Path, psql_script: &str) -> PathBuf {
    let bin = t.join("bin");
    std::fs::create_dir(&bin).unwrap();
    for e in std::fs::read_dir(pg.bin_dir()).unwrap().flatten() {
        if e.file_name() != "psql" {
            std::os::unix::fs::symlink(e.path(), bin.join(e.file_name())).unwrap();
        }
    }
    let wrapper = bin.join("psql");
    let body = psql_script.replace("REAL", &pg.bin("psql").display().to_string());
    std::fs::write(&wrapper, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    imb_testkit::exec::wait_until_executable(&wrapper).unwrap();
    bin
}

/// How many tables `db` has in its public schema.
fn public_tables(pg: &ScratchCluster, db: &str) -> u64 {
    let n = pg
        .psql(
            db,
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'",
        )
        .unwrap();
    n.trim().parse().unwrap()
}

/// Plants `text` as the newest dump (a minute ahead of now) and returns its key.
fn plant(dst: &Path, text: &str) -> String {
    let key =
        imb_pgdump::DumpName::new(SystemTime::now() + Duration::from_secs(60), Some("v2.3.1"))
            .key();
    gzip_to(&dst.join(&key), text);
    key
}

/// The three plantings of the report: `\!` at the top; `\unrestrict` with the key
/// pg_dump printed, then `\!`, after pg_dump's own `\restrict`; and (unrestricted
/// the same way) `\o |command` after a statement.
fn tampered(real: &str, marker: &Path) -> Vec<String> {
    let touch = format!("touch {}", marker.display());
    let unrestricted = |planted: &str| match real.lines().find(|l| l.starts_with("\\restrict ")) {
        Some(line) => {
            let key = line.trim_start_matches("\\restrict ");
            real.replacen(line, &format!("{line}\n\\unrestrict {key}\n{planted}"), 1)
        }
        // An older pg_dump writes no \restrict: the planting needs no key.
        None => format!("{planted}\n{real}"),
    };
    let piped = unrestricted("").replacen(
        "SET statement_timeout = 0;",
        &format!("SET statement_timeout = 0;\n\\o |{touch}"),
        1,
    );
    vec![
        format!("\\! {touch}\n{real}"),
        unrestricted(&format!("\\! {touch}")),
        piped,
    ]
}

#[test]
fn a_planted_meta_command_never_runs_in_the_check_or_the_restore() {
    let pg = ScratchCluster::start().unwrap();
    pg.create_db("target").unwrap();
    let t = tempfile::tempdir().unwrap();
    let (dst, real) = target_with_a_dump(&pg, t.path());
    let markers = marker_dir(t.path());
    for (n, text) in tampered(&real, &markers.join("proof"))
        .into_iter()
        .enumerate()
    {
        // The planted command works: plain psql runs it.
        let proof = markers.join("proof");
        let db = format!("proof{n}");
        pg.create_db(&db).unwrap();
        let _ = pg.psql_with(&db, &[], text.as_bytes());
        assert!(
            proof.exists(),
            "planting {n} does not run under plain psql:\n{text:.400}"
        );
        std::fs::remove_file(&proof).unwrap();

        // Ours: the same dump, planted in the target, with a marker of its own.
        let marker = markers.join(format!("ours{n}"));
        let text = text.replace(&proof.display().to_string(), &marker.display().to_string());
        let key = plant(&dst, &text);
        let mut c = restore_verify();
        with_db(&mut c, &pg, pg.password());
        c.env("DB_DATABASE_NAME", "target")
            .arg("--from")
            .arg(&dst)
            .args(["--db-restore", "--psql"])
            .arg(pg.bin("psql"));
        let (out, v) = run_json(c);
        let shown = format!("{v}\n{}", String::from_utf8_lossy(&out.stderr));
        assert!(!marker.exists(), "planting {n} ran: {shown}");
        assert_eq!(code(&out), 2, "{shown}");
        let db = &v["database"];
        assert_eq!(db["dump"], key.as_str(), "{shown}");
        let refused = db["refused"].as_str().expect("refused");
        assert!(
            refused.starts_with("line ") && refused.contains("meta-command"),
            "{refused}"
        );
        assert!(
            !refused.contains("touch"),
            "the line itself is not repeated: {refused}"
        );
        assert!(db["findings"].to_string().contains(&key), "{shown}");
        // --db-restore loads only what the check passed.
        assert!(
            v["db_restore"]["error"]
                .as_str()
                .unwrap()
                .contains("did not refuse"),
            "{shown}"
        );
        assert_eq!(public_tables(&pg, "target"), 0, "nothing restored");
        std::fs::remove_file(dst.join(&key)).unwrap();
    }
}

#[test]
fn sql_that_reaches_outside_the_database_is_refused_or_stopped_by_the_role() {
    let pg = ScratchCluster::start().unwrap();
    let t = tempfile::tempdir().unwrap();
    let (dst, real) = target_with_a_dump(&pg, t.path());
    // The superuser reads the server's own files: the danger is real.
    let read = "SELECT pg_read_file('PG_VERSION')";
    let version = pg.psql("immich", read).unwrap();
    assert!(version.trim().parse::<u32>().is_ok(), "{version}");

    // Named directly, the guard refuses it before anything is loaded.
    let key = plant(&dst, &format!("{real}\n{read};\n"));
    let (out, v) = run_json({
        let mut c = restore_verify();
        c.arg("--from").arg(&dst);
        c
    });
    assert_eq!(code(&out), 2, "{v}");
    assert_eq!(v["database"]["dump"], key.as_str());
    assert!(
        v["database"]["refused"]
            .as_str()
            .unwrap()
            .contains("pg_read_file"),
        "{v}"
    );
    std::fs::remove_file(dst.join(&key)).unwrap();

    // Built at run time inside a DO block, the text filter cannot see it: the
    // unprivileged role of the scratch load stops it.
    let hidden = "DO $$ BEGIN EXECUTE 'SELECT pg_read_' || 'file(''PG_VERSION'')'; END $$;";
    let key = plant(&dst, &format!("{real}\n{hidden}\n"));
    let (out, v) = run_json({
        let mut c = restore_verify();
        c.arg("--from").arg(&dst);
        c
    });
    assert_eq!(code(&out), 2, "{v}");
    let db = &v["database"];
    assert_eq!(db["dump"], key.as_str());
    assert!(db["refused"].is_null(), "{v}");
    let findings = db["findings"].to_string();
    assert!(
        findings.contains("does not restore")
            && findings.contains("permission denied for function pg_read_file"),
        "{findings}"
    );
}

/// Planted `manifest-2999-…` and `database/2999-…` objects are findings; the real
/// newest manifest and dump are the ones checked, and `--max-age` is not fooled.
#[test]
fn future_dated_manifests_and_dumps_are_findings_never_the_newest() {
    let pg = ScratchCluster::start().unwrap();
    let t = tempfile::tempdir().unwrap();
    let (dst, real) = target_with_a_dump(&pg, t.path());
    let real_manifest = std::fs::read_dir(&dst)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("manifest-") && !n.contains(".part-"))
        .max()
        .unwrap();
    std::fs::copy(
        dst.join(&real_manifest),
        dst.join("manifest-2999-01-01T00-00-00.db"),
    )
    .unwrap();
    gzip_to(
        &dst.join("database/2999-01-01T00-00-00-immich-v2.3.1.sql.gz"),
        &real,
    );

    let mut c = restore_verify();
    c.arg("--from").arg(&dst).args(["--max-age", "1h"]);
    let (out, v) = run_json(c);
    assert_eq!(code(&out), 2, "{v}");
    assert_eq!(v["manifest"], real_manifest.as_str(), "{v}");
    assert_eq!(
        v["future_dated_manifests"][0],
        "manifest-2999-01-01T00-00-00.db"
    );
    assert!(
        v["database"]["dump"].as_str().unwrap() < "database/2100",
        "{v}"
    );
    assert!(
        v["database"]["findings"]
            .to_string()
            .contains("database/2999-01-01T00-00-00"),
        "{v}"
    );
    assert_eq!(v["freshness"]["stale"], false, "{v}");
}

/// A restore-verify killed while its scratch PostgreSQL runs leaves the dump, the
/// manifest copy and a running server behind; the next run stops the server and
/// removes both directories.
#[test]
fn the_next_run_cleans_up_after_a_killed_one() {
    let pg = ScratchCluster::start().unwrap();
    let t = tempfile::tempdir().unwrap();
    let (dst, _) = target_with_a_dump(&pg, t.path());
    let tmp = t.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    // The system's server binaries, with a psql that parks the load: the run is
    // then killed at a known point, its cluster up.
    let mark = t.path().join("parked");
    let bin = bin_dir_with_psql(
        &pg,
        t.path(),
        &format!(
            "for a in \"$@\"; do [ \"$a\" = --single-transaction ] && {{ echo $$ > {}.tmp; mv {0}.tmp {0}; exec sleep 300; }}; done\nexec REAL \"$@\"",
            mark.display()
        ),
    );

    let mut c = restore_verify();
    c.env("TMPDIR", &tmp)
        .env("IMB_PG_BIN_DIR", &bin)
        .arg("--from")
        .arg(&dst)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = c.spawn().unwrap();
    // Wait for the condition (the load parked), not for a time.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while !mark.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the load never started"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "restore-verify ended early"
        );
        // Polling a condition with a deadline; the interval only spares the CPU.
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let parked: u32 = std::fs::read_to_string(&mark)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let _ = std::process::Command::new("kill")
        .arg(parked.to_string())
        .status();

    let mut left: Vec<String> = std::fs::read_dir(&tmp)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert!(
        left.len() == 2 && left[0].starts_with("imb-pg-") && left[1].starts_with("imb-restore-"),
        "{left:?}"
    );
    let pid_file = tmp.join(&left[0]).join("data/postmaster.pid");
    let postmaster: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(alive(postmaster), "the dead run's server is still up");

    let mut c = restore_verify();
    c.env("TMPDIR", &tmp).arg("--from").arg(&dst);
    let (out, v) = run_json(c);
    assert!(code(&out) <= 2, "{v}");
    assert!(v["database"]["dump"].is_string(), "the check ran: {v}");
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        0,
        "both dirs removed"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while alive(postmaster) {
        assert!(
            std::time::Instant::now() < deadline,
            "the orphaned server was not stopped"
        );
        // Polling a condition with a deadline; the interval only spares the CPU.
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether a process runs (a zombie waiting for its reaper does not).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z'))
    })
}

/// The same plantings in a bucket (fake-gcs-server), written as an attacker with
/// the backup's own create-only key would: never run, named, exit 2.
#[test]
fn a_planted_meta_command_in_a_bucket_never_runs() {
    let pg = ScratchCluster::start().unwrap();
    immich_db(&pg);
    pg.create_db("target").unwrap();
    let emu = imb_testkit::gcs::Emulator::fake_gcs();
    let host = emu.endpoint.trim_start_matches("http://").to_owned();
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("upload");
    library(&src, 2, 100);
    let mut c = backup();
    with_db(&mut c, &pg, pg.password());
    c.env("STORAGE_EMULATOR_HOST", &host)
        .arg("--source")
        .arg(&src)
        .args(["--dest", "gs://bk1/n"]);
    let (out, s) = run_json(c);
    assert_eq!(code(&out), 0, "{s}");
    let real_key = s["database"]["object"].as_str().unwrap().to_owned();
    let local = t.path().join("real.sql.gz");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = emu.store();
    use imb_storage::{ObjectCreate, ObjectReadExt};
    let bytes = rt
        .block_on(store.get_bytes(&imb_storage::Key::parse(format!("n/{real_key}")).unwrap()))
        .unwrap();
    std::fs::write(&local, &bytes).unwrap();
    let real = gunzip(&local);
    let markers = marker_dir(t.path());
    let placeholder = markers.join("gcs");
    for (n, text) in tampered(&real, &placeholder).into_iter().enumerate() {
        let marker = markers.join(format!("gcs{n}"));
        let text = text.replace(
            &placeholder.display().to_string(),
            &marker.display().to_string(),
        );
        let planted = t.path().join(format!("planted{n}.sql.gz"));
        gzip_to(&planted, &text);
        let name = imb_pgdump::DumpName::new(
            SystemTime::now() + Duration::from_secs(60 + n as u64),
            Some("v2.3.1"),
        )
        .key();
        let key = imb_storage::Key::parse(format!("n/{name}")).unwrap();
        rt.block_on(store.put_opts(
            &key,
            imb_storage::Payload::from(std::fs::read(&planted).unwrap()),
            imb_storage::PutOptions::default(),
        ))
        .unwrap();
        let mut c = restore_verify();
        with_db(&mut c, &pg, pg.password());
        c.env("STORAGE_EMULATOR_HOST", &host)
            .env("DB_DATABASE_NAME", "target")
            .args(["--from", "gs://bk1/n", "--db-restore", "--psql"])
            .arg(pg.bin("psql"));
        let (out, v) = run_json(c);
        assert!(!marker.exists(), "planting {n} ran: {v}");
        assert_eq!(code(&out), 2, "{v}");
        assert_eq!(v["database"]["dump"], name.as_str());
        assert!(
            v["database"]["refused"]
                .as_str()
                .unwrap()
                .contains("meta-command"),
            "{v}"
        );
        assert!(v["db_restore"]["error"].is_string(), "{v}");
    }
    assert_eq!(public_tables(&pg, "target"), 0, "nothing restored");
}

/// A psql too old for `\restrict` cannot hold a dump's meta-commands back: the
/// check refuses to run with it (exit 1), naming its version.
#[test]
fn a_psql_without_restrict_is_refused_with_exit_1() {
    let pg = ScratchCluster::start().unwrap();
    let t = tempfile::tempdir().unwrap();
    let (dst, _) = target_with_a_dump(&pg, t.path());
    let bin = bin_dir_with_psql(
        &pg,
        t.path(),
        "[ \"$1\" = --version ] && { echo 'psql (PostgreSQL) 15.13'; exit 0; }\nexec REAL \"$@\"",
    );
    let mut c = restore_verify();
    c.env("IMB_PG_BIN_DIR", &bin).arg("--from").arg(&dst);
    let (out, v) = run_json(c);
    assert_eq!(code(&out), 1, "{v}");
    let err = v["error"].as_str().unwrap_or_default();
    assert!(
        err.contains("psql 15.13") && err.contains("\\restrict"),
        "{v}"
    );
}
