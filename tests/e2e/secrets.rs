//! The secrets audit: canary values in every place a secret can come from, through
//! success, failure and `--json` paths of every binary, never appear in what they
//! print, what they store, or the argv and environment of their children.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::Ordering;

use imb_pgdump::scratch::ScratchCluster;
use imb_storage::ObjectReadExt;
use imb_testkit::gcs::{Emulator, token_server};
use imb_testkit::immich::{TestServer, TestServerOptions, TestUser};

use crate::database::immich_db;
use crate::util::OnEmulator;
use crate::util::{backup, bin, clean_env, code, library, restore_verify};

const BEARER: &str = "canary-bearer-token-6e1d44";

/// Every value that must never show, with what it is.
struct Canaries(Vec<(String, &'static str)>);

impl Canaries {
    fn check(&self, place: &str, bytes: &[u8]) {
        let text = String::from_utf8_lossy(bytes);
        for (value, what) in &self.0 {
            assert!(!text.contains(value.as_str()), "{what} appears in {place}");
        }
    }

    fn check_output(&self, run: &str, out: &Output) {
        self.check(&format!("{run} stdout"), &out.stdout);
        self.check(&format!("{run} stderr"), &out.stderr);
    }

    fn check_tree(&self, root: &Path) {
        for p in crate::util::files(root) {
            self.check(&p.display().to_string(), &fs::read(root.join(&p)).unwrap());
        }
    }
}

/// A script at `dir/name` that appends its argv and environment to `log`, then
/// runs `real`. `--version` probes (ours, while writing it) are not recorded.
fn recorder(dir: &Path, name: &str, real: &Path, log: &Path) -> PathBuf {
    let p = dir.join(name);
    fs::write(
        &p,
        format!(
            "#!/bin/sh\n[ \"$*\" = --version ] || {{ echo \"ARGV {name}: $*\"; env | sed 's/^/ENV {name}: /'; }} >> {}\nexec {} \"$@\"\n",
            log.display(),
            real.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    imb_testkit::exec::wait_until_executable(&p).unwrap();
    p
}

fn run(c: &mut Command) -> Output {
    c.output().expect("runs")
}

#[test]
fn no_secret_reaches_output_the_target_or_a_child() {
    let t = tempfile::tempdir().unwrap();
    let pg = ScratchCluster::start().unwrap();
    immich_db(&pg);
    pg.create_db("target").unwrap();
    let pem = imb_testkit::gcs::private_key_pem();
    let body = pem
        .lines()
        .nth(6)
        .expect("a line of the key body")
        .to_owned();
    let key_id = "canary-key-id-5b1e90c3";
    let wrong_pw = "canary-wrong-db-password-3f7a";
    let immich_key = "canary-immich-api-key-8d2c41aa";
    let wrong_key = "canary-wrong-immich-key-19ab77";
    let canaries = Canaries(vec![
        (body, "the service-account private key"),
        (key_id.into(), "the private key id"),
        (BEARER.into(), "the OAuth access token"),
        (pg.password().to_owned(), "DB_PASSWORD"),
        (wrong_pw.into(), "a wrong DB_PASSWORD"),
        (immich_key.into(), "IMMICH_API_KEY"),
        (wrong_key.into(), "a wrong IMMICH_API_KEY"),
    ]);

    // GCS through an endpoint that is sent the credentials, with the canary key's
    // token_uri on a loopback token server.
    let emu = Emulator::fake_gcs();
    let (token_uri, hits) = token_server(BEARER);
    let key = serde_json::json!({
        "type": "service_account",
        "project_id": "p",
        "private_key_id": key_id,
        "private_key": pem,
        "client_email": "backup@p.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": token_uri,
    })
    .to_string();
    let key_file = t.path().join("key.json");
    fs::write(&key_file, &key).unwrap();
    fs::set_permissions(&key_file, fs::Permissions::from_mode(0o600)).unwrap();
    let gcs = |c: &mut Command, by_file: bool| {
        c.env("GCS_ENDPOINT", &emu.endpoint);
        if by_file {
            c.env("GOOGLE_APPLICATION_CREDENTIALS", &key_file);
        } else {
            c.env("GCS_CREDENTIALS", &key);
        }
    };

    // Children record their argv and environment.
    // (Into a log the scratch cluster's programs, run as the postgres user, can
    // append to.)
    let shared = t.path().join("shared");
    fs::create_dir(&shared).unwrap();
    fs::set_permissions(&shared, fs::Permissions::from_mode(0o1777)).unwrap();
    fs::set_permissions(t.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let log = shared.join("children.log");
    fs::write(&log, "").unwrap();
    fs::set_permissions(&log, fs::Permissions::from_mode(0o666)).unwrap();
    let wrappers = t.path().join("bin");
    fs::create_dir(&wrappers).unwrap();
    let pg_dump = recorder(&wrappers, "pg_dump", &pg.bin("pg_dump"), &log);
    let psql = recorder(&wrappers, "psql", &pg.bin("psql"), &log);
    // The scratch cluster's own programs too (restore-verify's database check).
    let server_bin = t.path().join("server-bin");
    fs::create_dir(&server_bin).unwrap();
    for e in fs::read_dir(pg.bin_dir()).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if ["postgres", "initdb", "psql"].contains(&name.as_str()) {
            recorder(&server_bin, &name, &e.path(), &log);
        } else {
            std::os::unix::fs::symlink(e.path(), server_bin.join(&name)).unwrap();
        }
    }
    let db = |c: &mut Command, password: &str, url: bool| {
        let port = pg.port().to_string();
        if url {
            c.env(
                "DB_URL",
                format!("postgres://postgres:{password}@127.0.0.1:{port}/immich"),
            );
        } else {
            c.env("DB_HOSTNAME", "127.0.0.1")
                .env("DB_PORT", &port)
                .env("DB_USERNAME", "postgres")
                .env("DB_PASSWORD", password)
                .env("DB_DATABASE_NAME", "immich");
        }
    };

    let src = t.path().join("upload");
    library(&src, 4, 100);
    let dest = [
        "--source",
        src.to_str().unwrap(),
        "--dest",
        "gs://bk1/nightly",
    ];

    // backup: success (key JSON, DB_* settings), again (key file, DB_URL), --json.
    let mut c = backup();
    gcs(&mut c, false);
    db(&mut c, pg.password(), false);
    let out = run(c.env("IMB_PG_DUMP", &pg_dump).args(dest).arg("--json"));
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    canaries.check_output("backup", &out);
    assert!(
        hits.load(Ordering::SeqCst) > 0,
        "the key was used: the token server was called"
    );
    let mut c = backup();
    gcs(&mut c, true);
    db(&mut c, pg.password(), true);
    let out = run(c.env("IMB_PG_DUMP", &pg_dump).args(dest));
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    canaries.check_output("backup (key file, DB_URL)", &out);
    // Failures: a wrong database password; a bucket that does not exist.
    let mut c = backup();
    gcs(&mut c, false);
    db(&mut c, wrong_pw, false);
    let out = run(c.env("IMB_PG_DUMP", &pg_dump).args(dest).arg("--json"));
    assert_eq!(code(&out), 2, "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("password authentication failed"));
    canaries.check_output("backup (wrong password)", &out);
    let mut c = backup();
    gcs(&mut c, true);
    let out = run(c.args([
        "--source",
        src.to_str().unwrap(),
        "--dest",
        "gs://no-such-bucket",
        "--json",
    ]));
    assert_eq!(code(&out), 1, "{}", String::from_utf8_lossy(&out.stderr));
    canaries.check_output("backup (missing bucket)", &out);

    // restore-verify: a named server (IMB_VERIFY_DB_URL) and --db-restore; the
    // scratch cluster; a report written into the target; a failure.
    let mut c = restore_verify();
    gcs(&mut c, false);
    c.env(
        "IMB_VERIFY_DB_URL",
        format!(
            "postgres://postgres:{}@127.0.0.1:{}/postgres",
            pg.password(),
            pg.port()
        ),
    )
    .env("DB_HOSTNAME", "127.0.0.1")
    .env("DB_PORT", pg.port().to_string())
    .env("DB_USERNAME", "postgres")
    .env("DB_PASSWORD", pg.password())
    .env("DB_DATABASE_NAME", "target");
    let out = run(c
        .args([
            "--from",
            "gs://bk1/nightly",
            "--db-restore",
            "--write-report",
            "--json",
            "--psql",
        ])
        .arg(&psql));
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(report.contains("\"db_restore\":{\"database\""), "{report}");
    canaries.check_output("restore-verify (named server, --db-restore)", &out);
    let mut c = restore_verify();
    gcs(&mut c, true);
    let out =
        run(c
            .env("IMB_PG_BIN_DIR", &server_bin)
            .args(["--from", "gs://bk1/nightly", "--json"]));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("\"users\""),
        "the scratch check ran"
    );
    canaries.check_output("restore-verify (scratch)", &out);
    let mut c = restore_verify();
    c.env("GCS_ENDPOINT", &emu.endpoint).env(
        "GCS_CREDENTIALS",
        "{\"type\": \"service_account\", \"private_key\": \"canary-broken\"}",
    );
    let out = run(c.args(["--from", "gs://bk1/nightly", "--json"]));
    assert_eq!(code(&out), 1);
    canaries.check_output("restore-verify (bad key)", &out);

    // device-sync: the key from the environment and from a file; a wrong key.
    let mut opts = TestServerOptions::default();
    opts.users = vec![TestUser::new(
        imb_testkit::immich::DEFAULT_EMAIL,
        immich_key,
    )];
    let server = TestServer::start(opts);
    let device = t.path().join("DCIM");
    crate::util::write(
        &device.join("Camera/IMG_1.jpg"),
        b"\xff\xd8\xff\xe0 a photo",
    );
    let state = t.path().join("state");
    let sync = |key_env: Option<&str>| {
        let mut c = Command::new(bin("device-sync"));
        clean_env(&mut c);
        c.env_remove("IMMICH_API_KEY")
            .arg("--server")
            .arg(server.url())
            .arg("--root")
            .arg(&device)
            .arg("--state-dir")
            .arg(&state)
            .args(["--retry-initial", "10ms"]);
        if let Some(k) = key_env {
            c.env("IMMICH_API_KEY", k);
        }
        c
    };
    let out = run(sync(Some(immich_key)).arg("--json"));
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    canaries.check_output("device-sync", &out);
    let key_path = t.path().join("immich.key");
    fs::write(&key_path, immich_key).unwrap();
    fs::set_permissions(&key_path, fs::Permissions::from_mode(0o600)).unwrap();
    let out = run(sync(None)
        .arg("--key-file")
        .arg(&key_path)
        .args(["status", "--json"]));
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    canaries.check_output("device-sync status (key file)", &out);
    let out = run(sync(Some(wrong_key)).arg("--json"));
    assert_ne!(code(&out), 0);
    canaries.check_output("device-sync (wrong key)", &out);

    // What they stored: every object in the bucket (manifests, journals, dumps
    // are the database's rows, reports), device-sync's state.
    let store = emu.store();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let objects = rt.block_on(store.list_all("")).unwrap();
    assert!(
        objects
            .iter()
            .any(|o| o.key.as_str().starts_with("nightly/reports/"))
    );
    for o in &objects {
        let bytes = rt.block_on(store.get_bytes(&o.key)).unwrap();
        canaries.check(o.key.as_str(), &bytes);
    }
    canaries.check_tree(&state);

    // What the children saw: recorded, and clean. The password went by passfile.
    let children = fs::read_to_string(&log).unwrap();
    // initdb is started exactly as the server is (one environment builder); the
    // server itself runs under Landlock, which lets it write nowhere outside its
    // directory, so it cannot record itself.
    for name in ["pg_dump", "psql", "initdb"] {
        assert!(
            children.contains(&format!("ARGV {name}: --")),
            "{name} was recorded"
        );
    }
    assert!(children.contains("PGPASSFILE="));
    for leaked in [
        "GCS_CREDENTIALS",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "DB_URL",
        "DB_PASSWORD",
        "IMB_VERIFY_DB_URL",
        "PGPASSWORD=",
    ] {
        assert!(!children.contains(leaked), "{leaked} reached a child");
    }
    canaries.check("the argv and environment of children", children.as_bytes());
}
