//! Failed dumps: nothing appears at any dump name, the error says why, and the
//! password is in no error.

use imb_pgdump::{Error, dump};
use imb_storage::LocalDir;

use crate::support::{Record, Recording, immich_cluster, keys, options, script, staged_files, t0};

#[tokio::test]
async fn wrong_password_stores_nothing_and_hides_the_password() {
    let cluster = immich_cluster(10);
    let dir = tempfile::tempdir().unwrap();
    let store = Recording::new(LocalDir::new(dir.path()).unwrap());
    let conn = cluster
        .connection("immich")
        .with_password("Wrong:Secret-4711");

    let err = dump(&store, &conn, &options(&cluster), t0())
        .await
        .unwrap_err();

    let msg = err.to_string();
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    assert!(msg.contains("password authentication failed"), "{msg}");
    assert!(msg.contains("postgres@127.0.0.1"), "{msg}");
    for secret in ["Wrong:Secret-4711", "Secret-4711", cluster.password()] {
        assert!(!msg.contains(secret), "{msg}");
        assert!(!format!("{err:?}").contains(secret), "{err:?}");
    }
    assert_eq!(store.record(), Record::default(), "no upload was started");
    assert!(keys(&store.inner, "").await.is_empty());
}

#[tokio::test]
async fn server_down_stores_nothing() {
    let mut cluster = immich_cluster(10);
    let conn = cluster.connection("immich");
    let opts = options(&cluster);
    cluster.stop().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Recording::new(LocalDir::new(dir.path()).unwrap());

    let err = dump(&store, &conn, &opts, t0()).await.unwrap_err();

    // Any connection failure, not just "Connection refused": a parallel test's
    // cluster may have taken the freed port, and it refuses this cluster's login.
    assert!(
        matches!(&err, Error::Connect { target, .. } if *target == conn.to_string()),
        "{err:?}"
    );
    assert_eq!(store.record(), Record::default());
    assert!(keys(&store.inner, "").await.is_empty());
}

/// pg_dump dies by SIGKILL after about 3 MB of output: compressed pieces had
/// already been written to the upload, which is then aborted, so no object
/// appears and no staged bytes remain.
#[tokio::test]
async fn pg_dump_killed_mid_stream_stores_nothing() {
    let cluster = immich_cluster(20_000);
    let tools = tempfile::tempdir().unwrap();
    let real = cluster.bin("pg_dump");
    let wrapper = script(
        tools.path(),
        "pg_dump",
        &format!(
            "case \"$1\" in --version) exec '{real}' --version;; esac\n\
             '{real}' \"$@\" | {{ head -c 3000000; kill -9 $$; }}\n",
            real = real.display()
        ),
    );
    let dir = tempfile::tempdir().unwrap();
    let store = Recording::new(LocalDir::new(dir.path()).unwrap());
    let mut opts = options(&cluster);
    opts.pg_dump = wrapper;
    opts.compression_threads = 1;

    let err = dump(&store, &cluster.connection("immich"), &opts, t0())
        .await
        .unwrap_err();

    assert!(matches!(err, Error::PgDump { .. }), "{err:?}");
    assert!(err.to_string().contains("killed by signal 9"), "{err}");
    let record = store.record();
    assert!(record.writes >= 3 && record.bytes > 100_000, "{record:?}");
    assert_eq!((record.aborted, record.completed), (1, 0), "{record:?}");
    assert!(keys(&store.inner, "").await.is_empty());
    assert!(staged_files(&store.inner).is_empty());
}

/// pg_dump's own failure: its exit status and error output are in the error, with
/// the password redacted even if a (misbehaving) pg_dump printed it.
#[tokio::test]
async fn pg_dump_failure_reports_redacted_stderr() {
    let cluster = immich_cluster(10);
    let tools = tempfile::tempdir().unwrap();
    let real = cluster.bin("pg_dump");
    let wrapper = script(
        tools.path(),
        "pg_dump",
        &format!(
            "case \"$1\" in --version) exec '{real}' --version;; esac\n\
             echo 'SET statement_timeout = 0;'\n\
             cat <<'END' >&2\npg_dump: error: query failed: lost the connection ({pw})\nEND\nexit 1\n",
            real = real.display(),
            pw = cluster.password(),
        ),
    );
    let dir = tempfile::tempdir().unwrap();
    let store = Recording::new(LocalDir::new(dir.path()).unwrap());
    let mut opts = options(&cluster);
    opts.pg_dump = wrapper;

    let err = dump(&store, &cluster.connection("immich"), &opts, t0())
        .await
        .unwrap_err();

    let msg = err.to_string();
    assert!(matches!(err, Error::PgDump { .. }), "{err:?}");
    assert!(msg.contains("exited with status 1"), "{msg}");
    assert!(msg.contains("lost the connection (<redacted>)"), "{msg}");
    assert!(!msg.contains(cluster.password()), "{msg}");
    assert_eq!((store.record().aborted, store.record().completed), (1, 0));
    assert!(keys(&store.inner, "").await.is_empty());
}

/// Issue 7: a server newer than pg_dump is simulated with a wrapper, set as the
/// pg_dump path, that reports an older version. The dump is refused before any
/// upload starts or pg_dump runs, naming both versions and the path.
#[tokio::test]
async fn pg_dump_older_than_the_server_is_refused_before_writing() {
    let cluster = immich_cluster(10);
    let tools = tempfile::tempdir().unwrap();
    let ran = tools.path().join("ran");
    let wrapper = script(
        tools.path(),
        "pg_dump",
        &format!(
            "if [ \"$1\" = --version ]; then echo 'pg_dump (PostgreSQL) 14.11'; exit 0; fi\n\
             touch '{}'\nexec '{}' \"$@\"\n",
            ran.display(),
            cluster.bin("pg_dump").display()
        ),
    );
    let dir = tempfile::tempdir().unwrap();
    let store = Recording::new(LocalDir::new(dir.path()).unwrap());
    let mut opts = options(&cluster);
    opts.pg_dump = wrapper.clone();

    let err = dump(&store, &cluster.connection("immich"), &opts, t0())
        .await
        .unwrap_err();

    let msg = err.to_string();
    assert!(matches!(err, Error::VersionMismatch { .. }), "{err:?}");
    assert!(msg.contains("14.11") && msg.contains("15."), "{msg}");
    assert!(msg.contains(&wrapper.display().to_string()), "{msg}");
    assert!(msg.contains("pg_dump path"), "{msg}");
    assert_eq!(store.record(), Record::default());
    assert!(!ran.exists(), "pg_dump never ran a dump");
}

/// When the store fails mid-stream the dump stops, pg_dump is stopped (and reaped:
/// its process is gone when `dump` returns), the upload is aborted and the store's
/// error is returned.
#[tokio::test]
async fn store_failure_stops_the_dump() {
    let cluster = immich_cluster(20_000);
    let tools = tempfile::tempdir().unwrap();
    let pidfile = tools.path().join("pid");
    // `exec` keeps the pid, so the file names the real pg_dump process.
    let wrapper = script(
        tools.path(),
        "pg_dump",
        &format!(
            "[ \"$1\" = --version ] || echo $$ > '{}'\nexec '{}' \"$@\"\n",
            pidfile.display(),
            cluster.bin("pg_dump").display()
        ),
    );
    let dir = tempfile::tempdir().unwrap();
    let mut store = Recording::new(LocalDir::new(dir.path()).unwrap());
    store.fail_after = Some(200_000);
    let mut opts = options(&cluster);
    opts.pg_dump = wrapper;

    let err = dump(&store, &cluster.connection("immich"), &opts, t0())
        .await
        .unwrap_err();

    assert!(matches!(err, Error::Storage(_)), "{err:?}");
    assert!(err.to_string().contains("injected write failure"), "{err}");
    assert_eq!((store.record().aborted, store.record().completed), (1, 0));
    assert!(keys(&store.inner, "").await.is_empty());
    assert!(staged_files(&store.inner).is_empty());
    let pid = std::fs::read_to_string(&pidfile).unwrap();
    assert!(
        !std::path::Path::new(&format!("/proc/{}", pid.trim())).exists(),
        "pg_dump {pid} still exists"
    );
}
