//! `restore_dump` streams a dump through the guard into a psql restricted with a
//! key of its own: pg_dump's output loads, a planted command never runs, and a
//! refused dump leaves the database as it was.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;

use imb_pgdump::{Error, RestoreDbOptions, dump, restore_dump};
use imb_storage::{Key, LocalDir};

use crate::support::{FINGERPRINT, immich_cluster, options, t0};

fn gzip(text: &str) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(text.as_bytes()).unwrap();
    gz.finish().unwrap()
}

#[tokio::test]
async fn a_dump_of_ours_loads_through_the_guard_and_a_planted_command_does_not() {
    let cluster = immich_cluster(300);
    let dir = tempfile::tempdir().unwrap();
    let store = LocalDir::new(dir.path()).unwrap();
    let report = dump(
        &store,
        &cluster.connection("immich"),
        &options(&cluster),
        t0(),
    )
    .await
    .unwrap();
    let mut opts = RestoreDbOptions::default();
    opts.psql = cluster.bin("psql");

    // pg_dump's own output (extensions, a plpgsql body, COPY rows with \N and \\)
    // is no false alarm.
    cluster.create_db("restored").unwrap();
    let key = Key::parse(report.key.as_str()).unwrap();
    restore_dump(&store, &key, &cluster.connection("restored"), &opts)
        .await
        .unwrap();
    assert_eq!(
        cluster.psql("restored", FINGERPRINT).unwrap(),
        cluster.psql("immich", FINGERPRINT).unwrap()
    );

    // Planted halfway, after tables were created in the same transaction.
    let text = String::from_utf8(
        std::process::Command::new("gzip")
            .arg("-dc")
            .arg(dir.path().join(&report.key))
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let marker = dir.path().join("pwned");
    let at = text.find("COPY public.asset ").expect("the asset data");
    let planted = format!(
        "{}\\! touch {}\n{}",
        &text[..at],
        marker.display(),
        &text[at..]
    );
    let line = text[..at].lines().count() as u64 + 1;
    std::fs::write(dir.path().join("database/planted.sql.gz"), gzip(&planted)).unwrap();
    cluster.create_db("victim").unwrap();
    let err = restore_dump(
        &store,
        &Key::parse("database/planted.sql.gz").unwrap(),
        &cluster.connection("victim"),
        &opts,
    )
    .await
    .unwrap_err();
    match &err {
        Error::Refused { dump, refusal } => {
            assert_eq!(dump, "database/planted.sql.gz");
            assert_eq!(refusal.line, line, "{err}");
        }
        other => panic!("not refused: {other}"),
    }
    assert!(!marker.exists());
    let tables = cluster
        .psql(
            "victim",
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'",
        )
        .unwrap();
    assert_eq!(tables.trim(), "0", "nothing of a refused dump is committed");
}

#[tokio::test]
async fn a_psql_without_restrict_is_refused_naming_its_version() {
    let dir = tempfile::tempdir().unwrap();
    let old = crate::support::script(
        dir.path(),
        "psql",
        "echo 'psql (PostgreSQL) 15.13 (Debian 15.13-0+deb12u1)'\n",
    );
    let err = imb_pgdump::guard::check_psql(&old).unwrap_err().to_string();
    assert!(
        err.contains("psql 15.13") && err.contains("--psql"),
        "{err}"
    );
}

/// The cluster an untrusted dump is loaded into listens on its private socket
/// only: nothing else on the machine can reach it.
#[test]
fn the_private_cluster_listens_on_no_address() {
    let pg = imb_pgdump::scratch::ScratchCluster::start_private().unwrap();
    let got = pg.psql("postgres", "SHOW listen_addresses").unwrap();
    assert_eq!(got.trim(), "");
    let public = imb_pgdump::scratch::ScratchCluster::start().unwrap();
    let got = public.psql("postgres", "SHOW listen_addresses").unwrap();
    assert_eq!(got.trim(), "127.0.0.1");
}

/// The private cluster's server is confined by Landlock: even as the superuser it
/// reads no file outside the system's programs and its directory and writes none
/// outside its directory. On a kernel without Landlock it says so instead.
#[test]
fn the_private_clusters_server_reaches_only_its_own_directory() {
    let pg = imb_pgdump::scratch::ScratchCluster::start_private().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret");
    std::fs::write(&secret, "not for the dump").unwrap();
    std::fs::set_permissions(outside.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    let read = format!("SELECT pg_read_file('{}')", secret.display());
    let write = format!(
        "COPY (SELECT 1) TO '{}'",
        outside.path().join("written").display()
    );
    // Its own files stay readable, the system's programs runnable.
    assert!(
        pg.psql("postgres", "SELECT pg_read_file('PG_VERSION')")
            .is_ok()
    );
    let unconfined =
        imb_pgdump::scratch::ScratchCluster::start_private().is_ok_and(|c| !c.confined());
    if pg.confined() {
        let e = pg.psql("postgres", &read).unwrap_err().to_string();
        assert!(e.contains("Permission denied"), "{e}");
        let e = pg.psql("postgres", &write).unwrap_err().to_string();
        assert!(e.contains("Permission denied"), "{e}");
        assert!(!outside.path().join("written").exists());
        // A cluster for tests (listening on 127.0.0.1) is not confined: the
        // difference is the ruleset, not file permissions.
        let open = imb_pgdump::scratch::ScratchCluster::start().unwrap();
        assert!(!open.confined());
        assert_eq!(
            open.psql("postgres", &read).unwrap().trim(),
            "not for the dump"
        );
    } else {
        assert!(
            unconfined,
            "the kernel has no Landlock: every private cluster says so"
        );
    }
}
