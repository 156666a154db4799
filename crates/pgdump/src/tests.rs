//! Unit tests: settings parsing and secrecy, names, versions, the gzip pieces and
//! retention's decisions (against the in-memory store). Everything that needs a
//! PostgreSQL server is in `tests/pg`.

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, UNIX_EPOCH};

use async_trait::async_trait;
use imb_storage::{InMemory, Key, ObjectCreate, ObjectDelete, Payload, PutOptions};
use proptest::prelude::*;

use crate::conn::{Auth, passfile_line};
use crate::gzip;
use crate::version::{Major, major_from_num, parse_tool_version};
use crate::{Connection, DumpName, DumpOptions, DumpReport, Error, RetentionReport, dump, prune};

fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |k| map.get(k).cloned()
}

// Connection settings.

#[test]
fn url_with_everything() {
    let c =
        Connection::from_url("postgresql://immich:p%40ss%3Aw0rd@db.local:6543/immich_db").unwrap();
    assert_eq!(
        (
            c.host.as_str(),
            c.port,
            c.user.as_str(),
            c.database.as_str()
        ),
        ("db.local", 6543, "immich", "immich_db")
    );
    assert_eq!(c.password(), Some("p@ss:w0rd"));
    assert!(c.params().is_empty());
}

#[test]
fn url_defaults_and_variants() {
    let c = Connection::from_url("postgres://db/immich").unwrap();
    assert_eq!(
        (c.port, c.user.as_str(), c.password()),
        (5432, "postgres", None)
    );

    // An unescaped '@' in the password: the last '@' ends the user info.
    let c = Connection::from_url("postgres://u:a@b@host:1/d").unwrap();
    assert_eq!((c.password(), c.host.as_str()), (Some("a@b"), "host"));

    let c = Connection::from_url("postgres://u@[::1]:5433/d").unwrap();
    assert_eq!((c.host.as_str(), c.port), ("::1", 5433));
    assert_eq!(c.to_string(), "u@[::1]:5433/d");

    // A socket directory, percent-encoded, as libpq accepts.
    let c = Connection::from_url("postgres://u@%2Fvar%2Frun%2Fpostgresql/d").unwrap();
    assert_eq!(c.host, "/var/run/postgresql");

    let c = Connection::from_url("postgresql://u:pw@h/d?sslmode=no-verify&sslrootcert=%2Fca.pem")
        .unwrap();
    assert_eq!(
        c.params(),
        [
            ("sslmode".to_owned(), "require".to_owned()),
            ("sslrootcert".to_owned(), "/ca.pem".to_owned())
        ]
    );

    // A password in the query is the password, not a parameter for the command line.
    let c = Connection::from_url("postgresql://u@h/d?password=s3cr%3At&sslmode=require").unwrap();
    assert_eq!(c.password(), Some("s3cr:t"));
    assert!(!c.conninfo().contains("s3cr"));
    let c = Connection::new("h", 1, "u", "d").with_param("password", "hunter2");
    assert_eq!(c.password(), Some("hunter2"));
    assert!(c.params().is_empty() && !c.conninfo().contains("hunter2"));
}

#[test]
fn bad_urls_name_db_url_and_never_the_password() {
    for url in [
        "mysql://u:hunter2@h/d",
        "postgres://u:hunter2@h:notaport/d",
        "postgres://u:hunter2@h:70000/d",
        "postgres://u:hunter2@h/",
        "postgres://u:hunter2@/d",
        "postgres://u:hunter2%zz@h/d",
        // A sign is no hex digit: "%+5" was once read as 0x05.
        "postgres://u:hunter2%+5@h/d",
        "postgres://u:hunter2@h1,h2/d",
        "postgres://u:hunter2@[::1/d",
    ] {
        let err = Connection::from_url(url).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::InvalidConfig { .. }), "{url}: {err:?}");
        assert!(msg.starts_with("invalid DB_URL: "), "{msg}");
        assert!(!msg.contains("hunter2"), "{msg}");
        assert!(!format!("{err:?}").contains("hunter2"), "{err:?}");
    }
}

#[test]
fn immich_settings() {
    assert_eq!(Connection::from_lookup(lookup(&[])).unwrap(), None);
    // A password alone does not configure a database.
    assert_eq!(
        Connection::from_lookup(lookup(&[("DB_PASSWORD", "pw")])).unwrap(),
        None
    );
    let c = Connection::from_lookup(lookup(&[
        ("DB_HOSTNAME", "immich_postgres"),
        ("DB_PASSWORD", "pw"),
    ]))
    .unwrap()
    .unwrap();
    assert_eq!(c.to_string(), "postgres@immich_postgres:5432/immich");
    assert_eq!(c.password(), Some("pw"));

    let c = Connection::from_lookup(lookup(&[
        ("DB_HOSTNAME", "h"),
        ("DB_PORT", "5433"),
        ("DB_USERNAME", "immich"),
        ("DB_DATABASE_NAME", "photos"),
        ("DB_PASSWORD", ""),
    ]))
    .unwrap()
    .unwrap();
    assert_eq!(c.to_string(), "immich@h:5433/photos");
    assert_eq!(c.password(), None, "empty counts as unset");

    // DB_URL wins, as in Immich.
    let c = Connection::from_lookup(lookup(&[
        ("DB_URL", "postgres://a:b@urlhost/urldb"),
        ("DB_HOSTNAME", "h"),
    ]))
    .unwrap()
    .unwrap();
    assert_eq!(c.to_string(), "a@urlhost:5432/urldb");

    let err =
        Connection::from_lookup(lookup(&[("DB_HOSTNAME", "h"), ("DB_PORT", "54x")])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid DB_PORT: \"54x\" is not a TCP port number"
    );
}

#[test]
fn immich_settings_from_files() {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "from-file\n").unwrap();
    let pw = pw.to_str().unwrap().to_owned();
    let c = Connection::from_lookup(lookup(&[("DB_HOSTNAME", "h"), ("DB_PASSWORD_FILE", &pw)]))
        .unwrap()
        .unwrap();
    assert_eq!(c.password(), Some("from-file"));
    // The plain variable wins.
    let c = Connection::from_lookup(lookup(&[
        ("DB_HOSTNAME", "h"),
        ("DB_PASSWORD", "plain"),
        ("DB_PASSWORD_FILE", &pw),
    ]))
    .unwrap()
    .unwrap();
    assert_eq!(c.password(), Some("plain"));
    let err = Connection::from_lookup(lookup(&[
        ("DB_HOSTNAME", "h"),
        ("DB_PASSWORD_FILE", "/nonexistent/pw"),
    ]))
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("invalid DB_PASSWORD_FILE: cannot read /nonexistent/pw")
    );
}

#[test]
fn debug_and_display_never_show_the_password() {
    let c = Connection::new("h", 1, "u", "d").with_password("hunter2");
    let debug = format!("{c:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(debug.contains("<redacted>"), "{debug}");
    assert!(!c.to_string().contains("hunter2"));
    assert!(!c.conninfo().contains("hunter2"));
    let auth = Auth::prepare(&c).unwrap();
    assert!(!format!("{auth:?}").contains("hunter2"));
    let env_auth = Auth::prepare(&c.clone().with_password("multi\nline")).unwrap();
    assert!(!format!("{env_auth:?}").contains("multi"));
}

#[test]
fn conninfo_quotes_every_value() {
    let c = Connection::new("h", 5432, "u", "we'ird\\db name").with_param("sslmode", "require");
    assert_eq!(
        c.conninfo(),
        "host='h' port='5432' user='u' dbname='we\\'ird\\\\db name' connect_timeout='30' \
         application_name='immich-backup' sslmode='require'"
    );
}

#[test]
fn passfile_escapes_colons_and_backslashes() {
    assert_eq!(passfile_line("a:b\\c d'e"), "*:*:*:*:a\\:b\\\\c d'e\n");
}

#[test]
fn passfile_is_private_and_deleted_after_use() {
    let c = Connection::new("h", 1, "u", "d").with_password("p:w");
    let auth = Auth::prepare(&c).unwrap();
    let mut cmd = tokio::process::Command::new("true");
    auth.apply(&mut cmd);
    let file = cmd
        .as_std()
        .get_envs()
        .find(|(k, _)| *k == "PGPASSFILE")
        .and_then(|(_, v)| v)
        .map(std::path::PathBuf::from)
        .unwrap();
    let removed: Vec<_> = cmd
        .as_std()
        .get_envs()
        .filter(|(_, v)| v.is_none())
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        removed,
        ["PGPASSWORD"],
        "an inherited PGPASSWORD cannot win over the file"
    );
    let meta = std::fs::metadata(&file).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "*:*:*:*:p\\:w\n");
    drop(auth);
    assert!(!file.exists());

    // No password: nothing to write, the child's environment is left alone.
    let auth = Auth::prepare(&Connection::new("h", 1, "u", "d")).unwrap();
    let mut cmd = tokio::process::Command::new("true");
    auth.apply(&mut cmd);
    assert_eq!(cmd.as_std().get_envs().count(), 0);
}

#[test]
fn redaction() {
    let c = Connection::new("h", 1, "u", "d").with_password("s3cret");
    assert_eq!(c.redact("bad s3cret here"), "bad <redacted> here");
    assert_eq!(Connection::new("h", 1, "u", "d").redact("as is"), "as is");
}

// Versions.

#[test]
fn tool_versions() {
    let v = parse_tool_version;
    assert_eq!(
        v("pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)\n"),
        Some((Major(15, 0), "15.18".to_owned()))
    );
    assert_eq!(
        v("pg_dump (PostgreSQL) 17beta1"),
        Some((Major(17, 0), "17beta1".to_owned()))
    );
    assert_eq!(
        v("pg_dump (PostgreSQL) 9.6.24"),
        Some((Major(9, 6), "9.6.24".to_owned()))
    );
    assert_eq!(v("command not found"), None);
    assert_eq!(major_from_num(150_018), Major(15, 0));
    assert_eq!(major_from_num(90_624), Major(9, 6));
    assert!(Major(9, 6) < Major(10, 0) && Major(14, 0) < Major(15, 0));
    assert_eq!(
        (Major(9, 6).to_string(), Major(16, 0).to_string()),
        ("9.6".to_owned(), "16".to_owned())
    );
}

// Names.

#[test]
fn dump_names() {
    let t = UNIX_EPOCH + Duration::from_secs(1_705_287_600);
    let key = |v: Option<&str>| DumpName::new(t, v).key();
    assert_eq!(
        key(Some("2.3.1")),
        "database/2024-01-15T03-00-00-immich-v2.3.1.sql.gz"
    );
    assert_eq!(
        key(Some("v2.3.1")),
        "database/2024-01-15T03-00-00-immich-v2.3.1.sql.gz"
    );
    assert_eq!(
        key(Some(" 2.3.1-rc.1\n")),
        "database/2024-01-15T03-00-00-immich-v2.3.1-rc.1.sql.gz"
    );
    assert_eq!(
        key(Some("1.2/../x y")),
        "database/2024-01-15T03-00-00-immich-v1.2_.._x_y.sql.gz"
    );
    assert_eq!(
        key(None),
        "database/2024-01-15T03-00-00-immich-unknown.sql.gz"
    );
    assert_eq!(key(Some("v")), key(None));

    for v in [Some("2.3.1"), Some("2.3.1-rc.1"), None] {
        let name = DumpName::new(t, v);
        assert_eq!(DumpName::parse(&name.key()), Some(name.clone()));
        assert_eq!(name.time(), Some(t));
    }
    for other in [
        "library/2024-01-15T03-00-00-immich-v2.3.1.sql.gz",
        "database/sub/2024-01-15T03-00-00-immich-v2.3.1.sql.gz",
        "database/2024-01-15T03-00-00-immich-v2.3.1.sql",
        "database/2024-01-15T03-00-00-immich-2.3.1.sql.gz",
        "database/2024-01-15T03-00-00-immich-v.sql.gz",
        "database/2024-13-15T03-00-00-immich-v1.sql.gz",
        "database/immich-db-backup-20240115T030000-v1.106.4-pg14.10.sql.gz",
        "database/README",
    ] {
        assert_eq!(DumpName::parse(other), None, "{other}");
    }
}

// Gzip pieces.

fn gzip_in_pieces(data: &[u8], cuts: &[usize], level: u32) -> Vec<u8> {
    let mut out = gzip::HEADER.to_vec();
    let mut crc = flate2::Crc::new();
    let mut start = 0;
    let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
    bounds.sort_unstable();
    bounds.push(data.len());
    for (i, &end) in bounds.iter().enumerate() {
        let end = end.max(start);
        let piece = gzip::deflate_piece(&data[start..end], level, i == bounds.len() - 1);
        crc.combine(&piece.crc);
        out.extend_from_slice(&piece.data);
        start = end;
    }
    out.extend_from_slice(&gzip::trailer(&crc));
    out
}

fn gunzip_one_member(gz: &[u8]) -> Vec<u8> {
    let mut d = flate2::read::GzDecoder::new(gz);
    let mut out = Vec::new();
    d.read_to_end(&mut out).unwrap();
    // Nothing may follow the one member.
    assert_eq!(d.into_inner(), &[] as &[u8]);
    out
}

fn sample(len: usize) -> Vec<u8> {
    // SQL-ish text with some incompressible bytes, like a dump with hashes in it.
    let mut rng = fastrand::Rng::with_seed(0x9e37_79b9);
    (0..len)
        .map(|i| {
            if i % 64 < 40 {
                b"INSERT INTO asset VALUES ('upload/x.jpg');\n"[i % 43]
            } else {
                rng.u8(..)
            }
        })
        .collect()
}

#[test]
fn gzip_pieces_make_one_standard_member() {
    let data = sample(3 * 1024 * 1024 + 17);
    let whole = gzip_in_pieces(&data, &[], 6);
    let pieces = gzip_in_pieces(
        &data,
        &[1024 * 1024, 2 * 1024 * 1024, 2 * 1024 * 1024 + 5],
        6,
    );
    assert_eq!(gunzip_one_member(&whole), data);
    assert_eq!(gunzip_one_member(&pieces), data);
    // Independent pieces cost almost nothing in size.
    assert!(
        pieces.len() < whole.len() + whole.len() / 200,
        "{} vs {}",
        pieces.len(),
        whole.len()
    );
    assert_eq!(gunzip_one_member(&gzip_in_pieces(&[], &[], 6)), b"");
    assert_eq!(
        gunzip_one_member(&gzip_in_pieces(b"x", &[0, 0, 1], 0)),
        b"x"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Any cut of any input, at any level, decodes to the input as one member.
    #[test]
    fn gzip_pieces_round_trip(
        len in 0usize..200_000,
        cuts in proptest::collection::vec(any::<usize>(), 0..6),
        level in 0u32..=9,
    ) {
        let data = sample(len);
        prop_assert_eq!(gunzip_one_member(&gzip_in_pieces(&data, &cuts, level)), data);
    }
}

// Options and reports.

#[tokio::test]
async fn bad_options_and_missing_programs_fail_before_anything_is_written() {
    let store = InMemory::new();
    let conn = Connection::new("127.0.0.1", 1, "u", "d").with_password("hunter2");
    let opts = DumpOptions {
        compression_level: 10,
        ..DumpOptions::default()
    };
    let err = dump(&store, &conn, &opts, UNIX_EPOCH).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid compression_level: 10 is not a gzip level (0 to 9)"
    );

    let opts = DumpOptions {
        pg_dump: "/nonexistent/pg_dump".into(),
        ..DumpOptions::default()
    };
    let err = dump(&store, &conn, &opts, UNIX_EPOCH).await.unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(
            err,
            Error::Spawn {
                program: "pg_dump",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        msg.contains("/nonexistent/pg_dump") && msg.contains("set the pg_dump path"),
        "{msg}"
    );
    assert!(!msg.contains("hunter2"));
}

#[test]
fn reports_serialize_for_the_json_summary() {
    let report = DumpReport {
        key: "database/k.sql.gz".to_owned(),
        bytes: 10,
        sql_bytes: 30,
        duration_s: 1.5,
        immich_version: None,
        server_version: "15.18".to_owned(),
    };
    assert_eq!(
        serde_json::to_value(&report).unwrap(),
        serde_json::json!({
            "key": "database/k.sql.gz", "bytes": 10, "sql_bytes": 30, "duration_s": 1.5,
            "immich_version": null, "server_version": "15.18"
        })
    );
    let retention = RetentionReport {
        kept: vec!["a".to_owned()],
        deleted: vec![],
        refused: vec![("b".to_owned(), "denied".to_owned())],
        future: vec![],
    };
    assert_eq!(
        serde_json::to_value(&retention).unwrap(),
        serde_json::json!({"kept": ["a"], "deleted": [], "refused": [["b", "denied"]], "future": []})
    );
}

// Retention decisions.

/// A store whose deletes a retention policy refuses for some keys, and where
/// others vanish just before our delete (a concurrent run).
#[derive(Debug)]
struct Locked {
    inner: InMemory,
    refuse: Vec<String>,
    gone: Vec<String>,
}

#[async_trait]
impl ObjectDelete for Locked {
    async fn delete(&self, key: &Key) -> imb_storage::Result<()> {
        if self.refuse.iter().any(|k| k == key.as_str()) {
            return Err(imb_storage::Error::PermissionDenied {
                key: key.to_string(),
                source: "object is under a retention policy".into(),
            });
        }
        if self.gone.iter().any(|k| k == key.as_str()) {
            // Someone else deleted it between our list and our delete.
            self.inner.delete(key).await?;
            return Err(imb_storage::Error::NotFound {
                key: key.to_string(),
            });
        }
        self.inner.delete(key).await
    }
}

async fn put(store: &InMemory, key: &str) {
    store
        .put_opts(
            &Key::parse(key).unwrap(),
            Payload::from_static(b"x"),
            PutOptions::default(),
        )
        .await
        .unwrap();
}

fn dump_key(day: u32, version: &str) -> String {
    format!("database/2024-01-{day:02}T03-00-00-immich-v{version}.sql.gz")
}

#[tokio::test]
async fn prune_orders_by_the_time_in_the_name_and_reports_refusals() {
    let store = InMemory::new();
    // Key order is not time order here: "v10" sorts before "v9" but the names'
    // times decide. Day 5 has two dumps; the later name sorts first.
    for (day, v) in [
        (1, "9"),
        (3, "10"),
        (5, "1.0"),
        (5, "1.1"),
        (2, "9"),
        (4, "10"),
    ] {
        put(&store, &dump_key(day, v)).await;
    }
    put(&store, "library/2024-01-01T03-00-00-immich-v9.sql.gz").await;
    put(&store, "database/notes.txt").await;
    let locked = Locked {
        inner: store.clone(),
        refuse: vec![dump_key(3, "10")],
        gone: vec![dump_key(1, "9")],
    };

    let report = prune(&store, &locked, 3).await.unwrap();

    assert_eq!(
        report.kept,
        [dump_key(5, "1.1"), dump_key(5, "1.0"), dump_key(4, "10")]
    );
    assert_eq!(report.deleted, [dump_key(2, "9"), dump_key(1, "9")]);
    assert_eq!(report.refused.len(), 1);
    assert_eq!(report.refused[0].0, dump_key(3, "10"));
    assert!(
        report.refused[0].1.contains("retention policy"),
        "{:?}",
        report.refused
    );

    let left: Vec<String> = crate::list_dumps(&store)
        .await
        .unwrap()
        .into_iter()
        .map(|(n, _)| n.key())
        .collect();
    assert_eq!(
        left,
        [
            dump_key(5, "1.1"),
            dump_key(5, "1.0"),
            dump_key(4, "10"),
            dump_key(3, "10")
        ]
    );
    use imb_storage::ObjectRead;
    for untouched in [
        "library/2024-01-01T03-00-00-immich-v9.sql.gz",
        "database/notes.txt",
    ] {
        store.head(&Key::parse(untouched).unwrap()).await.unwrap();
    }
}

#[tokio::test]
async fn prune_needs_keep_of_at_least_one() {
    let store = InMemory::new();
    put(&store, &dump_key(1, "1")).await;
    let err = prune(&store, &store, 0).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid db_backup_retention: must be at least 1 (it is how many dumps to keep)"
    );
    assert_eq!(
        prune(&store, &store, 5).await.unwrap().kept,
        [dump_key(1, "1")]
    );
}

/// A planted `database/2999-…` dump would otherwise be the newest forever and make
/// retention delete the real ones: it is neither kept, nor counted, nor deleted.
#[tokio::test]
async fn a_future_dated_dump_is_not_counted_by_retention() {
    let store = InMemory::new();
    for day in [1, 2] {
        put(&store, &dump_key(day, "2.3.1")).await;
    }
    let planted = "database/2999-01-01T00-00-00-immich-v2.3.1.sql.gz";
    put(&store, planted).await;
    let report = prune(&store, &store, 1).await.unwrap();
    assert_eq!(report.kept, [dump_key(2, "2.3.1")]);
    assert_eq!(report.deleted, [dump_key(1, "2.3.1")]);
    assert_eq!(report.future, [planted]);
    use imb_storage::ObjectRead;
    store.head(&Key::parse(planted).unwrap()).await.unwrap();
    let newest = crate::list_dumps(&store).await.unwrap();
    assert_eq!(newest[0].0.key(), dump_key(2, "2.3.1"));
}

/// restore-verify prices and checks the same dump: the newest, or the one named.
#[tokio::test]
async fn the_dump_a_check_reads_is_the_newest_or_the_named_one() {
    let store = InMemory::new();
    for day in [1, 3, 2] {
        put(&store, &dump_key(day, "2.3.1")).await;
    }
    let dumps = crate::list_dumps(&store).await.unwrap();
    let pick = |wanted: Option<&str>| imb_layout::choose_dump(&dumps, wanted).map(|(n, _)| n.key());
    assert_eq!(pick(None), Some(dump_key(3, "2.3.1")));
    assert_eq!(
        pick(Some(&dump_key(1, "2.3.1"))),
        Some(dump_key(1, "2.3.1"))
    );
    assert_eq!(pick(Some("database/nothing.sql.gz")), None);
}
