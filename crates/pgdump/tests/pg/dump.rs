//! Successful dumps: content survives a restore, names carry the version.

use imb_pgdump::{DumpName, dump};
use imb_storage::LocalDir;

use crate::support::{
    FINGERPRINT, immich_cluster, keys, options, restore, script, staged_files, t0,
};

/// The whole path: an Immich-shaped database is dumped, the object is a standard
/// gzip file named by time and the newest `version_history` row, and restoring it
/// into a fresh database with `psql --single-transaction` gives the same rows.
#[tokio::test]
async fn dump_restores_into_a_fresh_database() {
    let cluster = immich_cluster(20_000);
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

    assert_eq!(
        report.key,
        "database/2024-01-15T03-00-00-immich-v2.3.1.sql.gz"
    );
    assert_eq!(report.immich_version.as_deref(), Some("2.3.1"));
    assert!(report.server_version.starts_with("15."), "{report:?}");
    assert_eq!(keys(&store, "").await, vec![report.key.clone()]);
    assert!(staged_files(&store).is_empty());
    let path = dir.path().join(&report.key);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), report.bytes);
    assert!(
        report.sql_bytes > 8_000_000 && report.bytes < report.sql_bytes / 2,
        "{report:?}"
    );

    // gzip itself accepts the file.
    let status = std::process::Command::new("gzip")
        .arg("-t")
        .arg(&path)
        .status()
        .unwrap();
    assert!(status.success());

    let sql = restore(&cluster, "restored", &path);
    assert_eq!(
        sql.len() as u64,
        report.sql_bytes,
        "one gzip member holds it all"
    );
    let text = String::from_utf8(sql).unwrap();
    assert!(
        text.contains("DROP TABLE IF EXISTS public.asset;"),
        "--clean --if-exists"
    );

    let before = cluster.psql("immich", FINGERPRINT).unwrap();
    let after = cluster.psql("restored", FINGERPRINT).unwrap();
    assert_eq!(before, after);
    for expected in [
        "user|5|",
        "asset|20000|",
        "album|30|",
        "album_asset|6666|",
        "asset_file|45000|",
        "version_history|3|",
    ] {
        assert!(after.contains(expected), "{expected} in\n{after}");
    }
}

/// The configured version wins over `version_history`, and a leading `v` is not
/// doubled; a database without `version_history` gives an `unknown` name. The
/// names parse back, so retention and restore-verify find these dumps.
#[tokio::test]
async fn version_comes_from_the_setting_or_is_unknown() {
    let cluster = immich_cluster(10);
    cluster.create_db("bare").unwrap();
    cluster
        .psql("bare", "CREATE TABLE t (x int); INSERT INTO t VALUES (1);")
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = LocalDir::new(dir.path()).unwrap();

    let mut opts = options(&cluster);
    opts.immich_version = Some("v1.2.3".to_owned());
    let overridden = dump(&store, &cluster.connection("immich"), &opts, t0())
        .await
        .unwrap();
    assert_eq!(
        overridden.key,
        "database/2024-01-15T03-00-00-immich-v1.2.3.sql.gz"
    );
    assert_eq!(overridden.immich_version.as_deref(), Some("1.2.3"));

    let unknown = dump(
        &store,
        &cluster.connection("bare"),
        &options(&cluster),
        t0() + std::time::Duration::from_secs(1),
    )
    .await
    .unwrap();
    assert_eq!(
        unknown.key,
        "database/2024-01-15T03-00-01-immich-unknown.sql.gz"
    );
    assert_eq!(unknown.immich_version, None);
    for key in [&overridden.key, &unknown.key] {
        assert!(DumpName::parse(key).is_some(), "{key}");
    }
    restore(&cluster, "bare_restored", &dir.path().join(&unknown.key));
    assert_eq!(
        cluster.psql("bare_restored", "SELECT x FROM t").unwrap(),
        "1\n"
    );
}

/// The password is never on pg_dump's command line or in `PGPASSWORD`: pg_dump
/// gets a passfile that only its user can read, and the file is gone afterwards.
/// (The cluster's password contains `:`, `\`, `'` and a space, so the dump
/// succeeding also shows the passfile escaping is right.)
#[tokio::test]
async fn password_reaches_pg_dump_only_through_a_passfile() {
    let cluster = immich_cluster(10);
    let tools = tempfile::tempdir().unwrap();
    let log = tools.path().join("log");
    let wrapper = script(
        tools.path(),
        "pg_dump",
        &format!(
            "if [ \"$1\" != --version ]; then\n\
             {{ printf 'arg=%s\\n' \"$@\"; echo \"PGPASSFILE=$PGPASSFILE\"; \
             echo \"PGPASSWORD=${{PGPASSWORD-unset}}\"; stat -c 'mode=%a' \"$PGPASSFILE\"; }} > '{}'\n\
             fi\nexec '{}' \"$@\"\n",
            log.display(),
            cluster.bin("pg_dump").display()
        ),
    );
    let dir = tempfile::tempdir().unwrap();
    let store = LocalDir::new(dir.path()).unwrap();
    let mut opts = options(&cluster);
    opts.pg_dump = wrapper;

    dump(&store, &cluster.connection("immich"), &opts, t0())
        .await
        .unwrap();

    let seen = std::fs::read_to_string(&log).unwrap();
    assert!(!seen.contains(cluster.password()), "{seen}");
    assert!(seen.contains("arg=--clean\narg=--if-exists\n"), "{seen}");
    assert!(seen.contains("PGPASSWORD=unset"), "{seen}");
    assert!(seen.contains("mode=600"), "{seen}");
    let passfile = seen
        .lines()
        .find_map(|l| l.strip_prefix("PGPASSFILE="))
        .unwrap();
    assert!(!passfile.is_empty());
    assert!(
        !std::path::Path::new(passfile).exists(),
        "the passfile is deleted after the dump"
    );
}
