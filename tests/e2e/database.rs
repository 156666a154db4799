//! `backup` with a real PostgreSQL: dump first, then the library.

use std::fs;
use std::process::Command;

use imb_pgdump::scratch::ScratchCluster;

use crate::util::{backup, code, files, library, run_json};

pub(crate) fn immich_db(pg: &ScratchCluster) {
    pg.create_db("immich").unwrap();
    pg.psql(
        "immich",
        r#"CREATE TABLE version_history (id serial PRIMARY KEY, "createdAt" timestamptz NOT NULL, version text NOT NULL);
           INSERT INTO version_history ("createdAt", version) VALUES ('2024-01-01', 'v1.118.0'), ('2024-06-01', 'v2.3.1');
           CREATE TABLE asset (id uuid PRIMARY KEY, "originalPath" text NOT NULL, checksum bytea NOT NULL, "sidecarPath" text);
           INSERT INTO asset SELECT gen_random_uuid(), '/data/library/admin/' || i || '.jpg', sha224(i::text::bytea) FROM generate_series(1, 500) i;"#,
    )
    .unwrap();
}

pub(crate) fn with_db(c: &mut Command, pg: &ScratchCluster, password: &str) {
    let conn = pg.connection("immich");
    c.env("DB_HOSTNAME", "127.0.0.1")
        .env("DB_PORT", pg.port().to_string())
        .env("DB_USERNAME", &conn.user)
        .env("DB_PASSWORD", password)
        .env("DB_DATABASE_NAME", "immich")
        .env_remove("DB_URL")
        .env("IMB_PG_DUMP", pg.bin("pg_dump"));
}

#[test]
fn the_database_is_dumped_first_and_its_version_recorded() {
    let pg = ScratchCluster::start().unwrap();
    immich_db(&pg);
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("upload"), t.path().join("backup"));
    library(&src, 5, 100);
    let mut c = backup();
    with_db(&mut c, &pg, pg.password());
    c.arg("--source").arg(&src).arg("--dest").arg(&dst);
    let (out, s) = run_json(c);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(code(&out), 0, "{s}\n{stderr}");
    let key = s["database"]["object"].as_str().expect("a dump object");
    assert!(
        key.starts_with("database/") && key.ends_with("-immich-v2.3.1.sql.gz"),
        "{key}"
    );
    assert!(s["database"]["bytes"].as_u64().unwrap() > 0);
    let dump = dst.join(key);
    assert!(
        Command::new("gzip")
            .arg("-t")
            .arg(&dump)
            .status()
            .unwrap()
            .success(),
        "gzip integrity"
    );
    let (_m, m) = crate::util::fetched_manifest(&dst);
    assert!(
        m.metadata("immich_version")
            .unwrap()
            .unwrap()
            .contains("2.3.1")
    );
    // Database before library: the dump line is logged before the walk starts.
    let dumped = stderr.find("database dumped").expect("dump logged");
    let started = stderr.find("backup starting").expect("backup logged");
    assert!(dumped < started, "{stderr}");
    // The password never appears in the output or the process's arguments.
    assert!(!stderr.contains(pg.password()) && !s.to_string().contains(pg.password()));
}

#[test]
fn a_failed_dump_is_reported_and_the_library_is_still_backed_up() {
    let pg = ScratchCluster::start().unwrap();
    immich_db(&pg);
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("upload"), t.path().join("backup"));
    library(&src, 5, 100);
    let mut c = backup();
    with_db(&mut c, &pg, "wrong-password-1234");
    c.arg("--source").arg(&src).arg("--dest").arg(&dst);
    let (out, s) = run_json(c);
    assert_eq!(code(&out), 2, "{s}");
    let err = s["database"]["error"]
        .as_str()
        .expect("the database part failed");
    assert!(err.contains("password authentication failed"), "{err}");
    assert!(
        !err.contains("wrong-password-1234")
            && !String::from_utf8_lossy(&out.stderr).contains("wrong-password-1234")
    );
    assert_eq!(
        s["files_uploaded"].as_u64().unwrap() + s["files_deduplicated"].as_u64().unwrap(),
        11
    );
    assert!(
        !dst.join("database").exists() || files(&dst.join("database")).is_empty(),
        "no dump object"
    );
}

#[test]
fn without_database_settings_the_run_says_it_skipped_the_database() {
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("upload"), t.path().join("backup"));
    library(&src, 2, 100);
    let mut c = backup();
    for k in ["DB_URL", "DB_HOSTNAME"] {
        c.env_remove(k);
    }
    c.arg("--source").arg(&src).arg("--dest").arg(&dst);
    let (out, s) = run_json(c);
    assert_eq!(code(&out), 0);
    assert!(s["database"].is_null(), "{s}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("skipping the database dump"));
}

#[test]
fn retention_keeps_the_newest_dumps_only_under_database() {
    let pg = ScratchCluster::start().unwrap();
    immich_db(&pg);
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("upload"), t.path().join("backup"));
    library(&src, 2, 100);
    let mut keys = Vec::new();
    for _ in 0..3 {
        let mut c = backup();
        with_db(&mut c, &pg, pg.password());
        c.arg("--source")
            .arg(&src)
            .arg("--dest")
            .arg(&dst)
            .args(["--db-backup-retention", "2"]);
        let (out, s) = run_json(c);
        assert_eq!(code(&out), 0, "{s}");
        keys.push(s["database"]["object"].as_str().unwrap().to_owned());
    }
    let left: Vec<String> = files(&dst.join("database"))
        .iter()
        .map(|p| format!("database/{}", p.display()))
        .collect();
    assert_eq!(
        left,
        vec![keys[1].clone(), keys[2].clone()],
        "the oldest went"
    );
    assert_eq!(files(&dst.join("library")).len(), 8, "library untouched");
    let _ = fs::metadata(&dst);
}

/// restore-verify restores the newest dump into a scratch PostgreSQL, skipping
/// what needs pgvector (and saying so), and checks every asset's original against
/// the backup by the SHA-1 Immich recorded.
#[test]
fn restore_verify_loads_the_dump_and_checks_immich_against_the_library() {
    let pg = ScratchCluster::start().unwrap();
    pg.create_db("immich").unwrap();
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("upload"), t.path().join("backup"));
    library(&src, 5, 100);
    let sha1 = |p: &str| imb_hash::digest(&fs::read(src.join(p)).unwrap()).sha1_hex();
    let originals: Vec<String> = (0..5)
        .map(|i| {
            format!(
                "library/admin/{}/{:02}/IMG_{i:05}.jpg",
                2020 + i % 5,
                i % 12 + 1
            )
        })
        .collect();
    let mut sql = String::from(
        r#"CREATE TABLE "user" (id int PRIMARY KEY, email text);
           INSERT INTO "user" VALUES (1, 'admin@example.com');
           CREATE TABLE album (id int PRIMARY KEY, "albumName" text);
           CREATE TABLE version_history (id serial PRIMARY KEY, "createdAt" timestamptz NOT NULL, version text NOT NULL);
           INSERT INTO version_history ("createdAt", version) VALUES ('2024-06-01', 'v2.3.1');
           CREATE TABLE asset (id serial PRIMARY KEY, "originalPath" text NOT NULL, checksum bytea NOT NULL, "libraryId" int);
        "#,
    );
    for (i, p) in originals.iter().enumerate() {
        // The second asset's checksum is wrong; the rest are right.
        let sum = if i == 1 { "00".repeat(20) } else { sha1(p) };
        sql.push_str(&format!("INSERT INTO asset (\"originalPath\", checksum) VALUES ('/data/{p}', decode('{sum}', 'hex'));\n"));
    }
    sql.push_str("INSERT INTO asset (\"originalPath\", checksum) VALUES ('/data/library/admin/gone.jpg', decode(repeat('ab', 20), 'hex'));\n");
    sql.push_str("INSERT INTO asset (\"originalPath\", checksum, \"libraryId\") VALUES ('/mnt/photos/x.jpg', decode(repeat('cd', 20), 'hex'), 7);\n");
    // v3 keeps sidecars as asset_file rows; this one's file was never backed up.
    sql.push_str(
        "CREATE TABLE asset_file (id serial PRIMARY KEY, \"assetId\" int, type text, path text);\n",
    );
    sql.push_str("INSERT INTO asset_file (\"assetId\", type, path) VALUES (1, 'sidecar', '/data/library/admin/lost.xmp');\n");
    pg.psql("immich", &sql).unwrap();
    // A backed-up original no asset references (the dump is missing its row).
    crate::util::write(&src.join("library/admin/orphan.jpg"), b"no asset row");

    let mut c = backup();
    with_db(&mut c, &pg, pg.password());
    c.arg("--source").arg(&src).arg("--dest").arg(&dst);
    let (out, s) = run_json(c);
    assert_eq!(code(&out), 0, "{s}");

    // Real Immich dumps carry pgvector; the scratch server has none. Add what such a
    // dump contains, as a newer dump.
    let key = s["database"]["object"].as_str().unwrap();
    let mut text = crate::util::gunzip(&dst.join(key));
    text.push_str(concat!(
        "CREATE EXTENSION IF NOT EXISTS vector WITH SCHEMA public;\n",
        "CREATE TABLE public.smart_search (\n    \"assetId\" integer NOT NULL,\n    embedding public.vector(512) NOT NULL\n);\n",
        "COPY public.smart_search (\"assetId\", embedding) FROM stdin;\n1\t[0.1,0.2]\n\\.\n",
        "CREATE INDEX clip_index ON public.smart_search USING hnsw (embedding public.vector_cosine_ops);\n",
    ));
    let newer_key = format!("database/{}-immich-v2.3.1.sql.gz", crate::util::ts_in(60));
    let newer = dst.join(&newer_key);
    crate::util::gzip_to(&newer, &text);

    // The same on machines with and without pgvector: the check treats it as absent.
    let mut c = crate::util::restore_verify();
    c.arg("--from")
        .arg(&dst)
        .args(["--without-extension", "vector"]);
    let (out, v) = run_json(c);
    assert_eq!(
        code(&out),
        2,
        "{v}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let db = &v["database"];
    assert_eq!(db["dump"], newer_key.as_str());
    let skipped = db["skipped_statements"].to_string();
    for s in [
        "CREATE EXTENSION IF NOT EXISTS vector",
        "CREATE TABLE public.smart_search",
        "COPY public.smart_search",
        "CREATE INDEX clip_index",
    ] {
        assert!(skipped.contains(s), "{s} not in {skipped}");
    }
    assert_eq!(db["users"], 1);
    assert_eq!(db["assets"], 6, "{db}");
    assert_eq!(db["external_assets"], 1);
    assert_eq!(db["version_in_database"], "v2.3.1");
    let findings = db["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 3, "{db}");
    assert!(
        db["findings"].to_string().contains("lost.xmp")
            && db["findings"].to_string().contains("sidecar"),
        "{db}"
    );
    assert_eq!(db["unreferenced_originals"], 1, "{db}");
    assert_eq!(db["unreferenced"][0], "library/admin/orphan.jpg");
    let text = db["findings"].to_string();
    assert!(
        text.contains("/data/library/admin/gone.jpg") && text.contains("not in the backup"),
        "{text}"
    );
    assert!(
        text.contains(&format!("/data/{}", originals[1])) && text.contains("SHA-1"),
        "{text}"
    );
    assert_eq!(
        v["verify"]["findings"].as_array().unwrap().len(),
        0,
        "the files themselves are fine"
    );
}

/// `--db-restore` restores the dump into the database Immich's settings name,
/// refusing a non-empty one unless forced.
#[test]
fn db_restore_fills_an_empty_database_and_refuses_a_full_one() {
    let pg = ScratchCluster::start().unwrap();
    immich_db(&pg);
    pg.create_db("target").unwrap();
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("upload"), t.path().join("backup"));
    library(&src, 2, 100);
    let mut c = backup();
    with_db(&mut c, &pg, pg.password());
    c.arg("--source").arg(&src).arg("--dest").arg(&dst);
    assert_eq!(code(&run_json(c).0), 0);

    let restore = |force: bool, check: bool| {
        let mut c = crate::util::restore_verify();
        with_db(&mut c, &pg, pg.password());
        c.env("DB_DATABASE_NAME", "target")
            .arg("--from")
            .arg(&dst)
            .args(["--db-restore", "--psql"])
            .arg(pg.bin("psql"));
        if force {
            c.arg("--force");
        }
        if !check {
            c.arg("--no-database");
        }
        run_json(c)
    };
    // Only a dump this run's check loaded is restored.
    let (out, v) = restore(false, false);
    assert_eq!(code(&out), 2, "{v}");
    assert!(
        v["db_restore"]["error"]
            .as_str()
            .unwrap()
            .contains("drop --no-database"),
        "{v}"
    );
    // (The check has findings: this database's assets are not in the library.)
    let (out, v) = restore(false, true);
    assert!(
        v["db_restore"]["error"].is_null() && v["database"]["refused"].is_null(),
        "{v}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        pg.psql("target", "SELECT count(*) FROM asset")
            .unwrap()
            .trim(),
        "500"
    );
    assert!(!v.to_string().contains(pg.password()));

    // A database with tables: could not run (exit 1), before any verify or load.
    let (out, v) = restore(false, true);
    assert_eq!(code(&out), 1, "{v}");
    let err = v["error"].as_str().unwrap();
    assert!(err.contains("not empty") && err.contains("--force"), "{v}");
    assert!(v["verify"].is_null(), "nothing was checked: {v}");
    let (_, v) = restore(true, true);
    assert!(v["db_restore"]["error"].is_null(), "{v}");
    assert_eq!(
        pg.psql("target", "SELECT count(*) FROM asset")
            .unwrap()
            .trim(),
        "500"
    );
}

/// The same database check from a bucket: dump and library in fake-gcs-server.
#[test]
fn restore_verify_checks_the_database_in_a_gcs_target() {
    let pg = ScratchCluster::start().unwrap();
    pg.create_db("immich").unwrap();
    let emu = imb_testkit::gcs::Emulator::fake_gcs();
    let host = emu.endpoint.trim_start_matches("http://").to_owned();
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("upload");
    library(&src, 3, 100);
    let sum = imb_hash::digest(&fs::read(src.join("library/admin/2020/01/IMG_00000.jpg")).unwrap())
        .sha1_hex();
    pg.psql(
        "immich",
        &format!(
            r#"CREATE TABLE users (id int PRIMARY KEY); INSERT INTO users VALUES (1);
               CREATE TABLE albums (id int PRIMARY KEY);
               CREATE TABLE version_history (id serial PRIMARY KEY, "createdAt" timestamptz NOT NULL, version text NOT NULL);
               INSERT INTO version_history ("createdAt", version) VALUES (now(), 'v1.106.4');
               CREATE TABLE assets (id serial PRIMARY KEY, "originalPath" text, checksum bytea, "libraryId" int, "sidecarPath" text);
               INSERT INTO assets ("originalPath", checksum) VALUES
                 ('/usr/src/app/upload/library/admin/2020/01/IMG_00000.jpg', decode('{sum}', 'hex')),
                 ('/usr/src/app/upload/library/admin/missing.jpg', decode(repeat('ee', 20), 'hex'));"#
        ),
    )
    .unwrap();
    let mut c = backup();
    with_db(&mut c, &pg, pg.password());
    c.env("STORAGE_EMULATOR_HOST", &host)
        .arg("--source")
        .arg(&src)
        .args(["--dest", "gs://bk1/n"]);
    let (out, s) = run_json(c);
    assert_eq!(code(&out), 0, "{s}");
    let mut c = crate::util::restore_verify();
    c.env("STORAGE_EMULATOR_HOST", &host)
        .args(["--from", "gs://bk1/n"]);
    let (out, v) = run_json(c);
    assert_eq!(code(&out), 2, "{v}");
    let db = &v["database"];
    assert_eq!(
        db["users"], 1,
        "older plural table names are accepted: {db}"
    );
    assert_eq!(db["assets"], 2);
    assert_eq!(db["findings"].as_array().unwrap().len(), 1, "{db}");
    assert!(
        db["findings"]
            .to_string()
            .contains("/usr/src/app/upload/library/admin/missing.jpg"),
        "{db}"
    );
    // The dump lacks rows for two backed-up photos: named as unreferenced originals.
    assert_eq!(db["unreferenced_originals"], 2, "{db}");
    assert!(
        db["unreferenced"].to_string().contains("IMG_00001.jpg"),
        "{db}"
    );
}

fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// IMB_VERIFY_DB_URL loads the dump into a new database on a named server (full
/// fidelity where it has pgvector) and drops it afterwards.
#[test]
fn restore_verify_can_load_the_dump_into_a_named_server() {
    let pg = ScratchCluster::start().unwrap();
    immich_db(&pg);
    let full = ScratchCluster::start().unwrap();
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("upload"), t.path().join("backup"));
    library(&src, 2, 100);
    let mut c = backup();
    with_db(&mut c, &pg, pg.password());
    c.arg("--source").arg(&src).arg("--dest").arg(&dst);
    assert_eq!(code(&run_json(c).0), 0);

    let conn = full.connection("postgres");
    let url = format!(
        "postgres://{}:{}@127.0.0.1:{}/postgres",
        conn.user,
        url_escape(full.password()),
        full.port()
    );
    let mut c = crate::util::restore_verify();
    c.env("IMB_VERIFY_DB_URL", &url)
        .arg("--from")
        .arg(&dst)
        .arg("--psql")
        .arg(full.bin("psql"));
    let (out, v) = run_json(c);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The 500 generated assets point at files this small library does not have.
    assert_eq!(v["database"]["assets"], 500, "{v}\n{stderr}");
    assert_eq!(v["database"]["version_in_database"], "v2.3.1");
    assert!(!stderr.contains(full.password()) && !v.to_string().contains(full.password()));
    let left = full
        .psql(
            "postgres",
            "SELECT count(*) FROM pg_database WHERE datname LIKE 'imb_verify_%'",
        )
        .unwrap();
    assert_eq!(left.trim(), "0", "the verification database is dropped");
    let _ = code(&out);
}

/// Sidecars are found where each schema generation keeps them (#22): plural tables
/// with `assets."sidecarPath"` (v1), `asset_file` for thumbnails beside
/// `asset."sidecarPath"` for sidecars (v2.0–v2.3), sidecar rows in `asset_file`
/// (v2.4 on). A sidecar missing from the backup is a finding naming it and its
/// asset; a sidecar is never an unreferenced original.
#[test]
fn sidecars_are_checked_on_every_schema_generation() {
    let pg = ScratchCluster::start().unwrap();
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("upload");
    library(&src, 3, 100);
    let originals: Vec<String> = (0..3)
        .map(|i| format!("library/admin/{}/{:02}/IMG_{i:05}.jpg", 2020 + i, i + 1))
        .collect();
    for o in &originals {
        crate::util::write(
            &src.join(format!("{o}.xmp")),
            format!("<xmp about='{o}'/>").as_bytes(),
        );
    }
    crate::util::write(&src.join("library/admin/orphan.jpg"), b"no asset row");
    let sha1 = |p: &str| imb_hash::digest(&fs::read(src.join(p)).unwrap()).sha1_hex();

    for (generation, says) in [
        ("v1", "before v2: sidecars in assets.sidecarPath"),
        (
            "v2.0",
            "v2.0–v2.3: thumbnails in asset_file, sidecars in asset.sidecarPath",
        ),
        ("v2.4", "v2.4 and later: sidecars in asset_file"),
    ] {
        let db = format!("immich_{}", generation.replace('.', ""));
        pg.create_db(&db).unwrap();
        let (asset, root) = if generation == "v1" {
            ("assets", "/usr/src/app/upload")
        } else {
            ("asset", "/data")
        };
        let (users, albums) = if generation == "v1" {
            ("users", "albums")
        } else {
            ("\"user\"", "album")
        };
        let sidecar_column = if generation == "v2.4" {
            ""
        } else {
            r#", "sidecarPath" text"#
        };
        let mut sql = format!(
            r#"CREATE TABLE {users} (id int PRIMARY KEY); INSERT INTO {users} VALUES (1);
               CREATE TABLE {albums} (id int PRIMARY KEY);
               CREATE TABLE version_history (id serial PRIMARY KEY, "createdAt" timestamptz NOT NULL, version text NOT NULL);
               INSERT INTO version_history ("createdAt", version) VALUES (now(), '{generation}.0');
               CREATE TABLE {asset} (id int PRIMARY KEY, "originalPath" text NOT NULL, checksum bytea NOT NULL, "libraryId" int{sidecar_column});
            "#
        );
        if generation != "v1" {
            sql.push_str(r#"CREATE TABLE asset_file (id serial PRIMARY KEY, "assetId" int, type text, path text);"#);
        }
        for (i, o) in originals.iter().enumerate() {
            let xmp = format!("{root}/{o}.xmp");
            let sidecar_value = if generation == "v2.4" {
                String::new()
            } else {
                format!(", '{xmp}'")
            };
            let sidecar_col = if generation == "v2.4" {
                ""
            } else {
                r#", "sidecarPath""#
            };
            sql.push_str(&format!(
                r#"INSERT INTO {asset} (id, "originalPath", checksum{sidecar_col}) VALUES ({i}, '{root}/{o}', decode('{}', 'hex'){sidecar_value});"#,
                sha1(o)
            ));
            match generation {
                "v2.0" => sql.push_str(&format!(
                    "INSERT INTO asset_file (\"assetId\", type, path) VALUES ({i}, 'thumbnail', '{root}/thumbs/{i}.webp');"
                )),
                "v2.4" => sql.push_str(&format!(
                    "INSERT INTO asset_file (\"assetId\", type, path) VALUES ({i}, 'sidecar', '{xmp}');"
                )),
                _ => {}
            }
        }
        pg.psql(&db, &sql).unwrap();
        let verify = |dst: &std::path::Path, all: bool| {
            let mut c = crate::util::restore_verify();
            c.arg("--from").arg(dst);
            if all {
                c.arg("--all");
            }
            run_json(c)
        };
        let backup_into = |dst: &std::path::Path, exclude: Option<&str>| {
            let mut c = backup();
            with_db(&mut c, &pg, pg.password());
            c.env("DB_DATABASE_NAME", &db)
                .arg("--source")
                .arg(&src)
                .arg("--dest")
                .arg(dst);
            if let Some(x) = exclude {
                c.args(["--exclude", x]);
            }
            let (out, s) = run_json(c);
            assert_eq!(code(&out), 0, "{generation}: {s}");
        };

        // Every sidecar backed up: all good, and the orphan is the only
        // unreferenced original.
        let dst = t.path().join(format!("{db}-full"));
        backup_into(&dst, None);
        let (out, v) = verify(&dst, true);
        assert_eq!(code(&out), 0, "{generation}: {v}");
        assert_eq!(v["database"]["schema"], says, "{generation}");
        assert_eq!(
            v["database"]["unreferenced_originals"], 1,
            "{generation}: {v}"
        );
        assert_eq!(v["database"]["unreferenced"][0], "library/admin/orphan.jpg");

        // A sidecar never backed up: a finding naming it and its asset.
        let partial = t.path().join(format!("{db}-partial"));
        backup_into(&partial, Some("**/IMG_00001.jpg.xmp"));
        let (out, v) = verify(&partial, false);
        assert_eq!(code(&out), 2, "{generation}: {v}");
        let findings = v["database"]["findings"].to_string();
        assert!(
            findings.contains(&format!("{root}/{}.xmp", originals[1]))
                && findings.contains(&format!("sidecar of {root}/{}", originals[1])),
            "{generation}: {findings}"
        );

        // A sidecar deleted from the target, and one whose bytes changed.
        let gone = dst.join("library").join(format!("{}.xmp", originals[2]));
        fs::remove_file(&gone).unwrap();
        let changed = dst.join("library").join(format!("{}.xmp", originals[0]));
        fs::write(&changed, b"<xmp tampered='yes'/>").unwrap();
        let (out, v) = verify(&dst, true);
        assert_eq!(code(&out), 2, "{generation}: {v}");
        let findings = v["verify"]["findings"].to_string();
        for o in [&originals[2], &originals[0]] {
            assert!(
                findings.contains(&format!("{o}.xmp")),
                "{generation}: {findings}"
            );
        }
    }
}
