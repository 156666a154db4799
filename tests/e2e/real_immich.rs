//! Against the real Immich server v3.1.0 (built by `cargo xtask immich` from
//! `../shared/third_party`), on a scratch PostgreSQL with pgvector, its own Redis
//! and media directory, all on 127.0.0.1. One server per test: a start costs
//! about ten seconds.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;

use imb_pgdump::scratch::ScratchCluster;
use imb_testkit::fixtures::{jpg, real_jpg, real_mp4, real_png};
use imb_testkit::real_immich::{Db, RealImmich, User};
use serde_json::{Value, json};

use crate::util::{bin, clean_env, code};

/// A scratch cluster with an empty `immich` database.
fn cluster() -> (ScratchCluster, Db) {
    let pg = ScratchCluster::start().unwrap();
    pg.create_db("immich").unwrap();
    let db = Db {
        port: pg.port(),
        user: pg.connection("immich").user,
        password: pg.password().to_owned(),
        database: "immich".into(),
    };
    (pg, db)
}

/// A scratch cluster with an empty `immich` database, and a server on it.
fn server() -> (ScratchCluster, RealImmich, Db) {
    let (pg, db) = cluster();
    let immich = RealImmich::start(&db);
    (pg, immich, db)
}

/// `DB_*` for `c`: Immich's own settings naming `db`.
fn with_db<'c>(c: &'c mut Command, db: &Db) -> &'c mut Command {
    c.env("DB_HOSTNAME", "127.0.0.1")
        .env("DB_PORT", db.port.to_string())
        .env("DB_USERNAME", &db.user)
        .env("DB_PASSWORD", &db.password)
        .env("DB_DATABASE_NAME", &db.database)
}

fn sha1(b: &[u8]) -> String {
    imb_hash::hex(&imb_hash::digest(b).sha1)
}

fn device_sync(immich: &RealImmich, user: &User, root: &Path, state: &Path) -> (i32, Value) {
    device_sync_with(
        immich,
        user,
        root,
        state,
        &["--exclude-album", "Private", "--album-sync"],
    )
}

/// `device-sync --json` of `root` to `user`'s account with `args`.
fn device_sync_with(
    immich: &RealImmich,
    user: &User,
    root: &Path,
    state: &Path,
    args: &[&str],
) -> (i32, Value) {
    let mut c = Command::new(bin("device-sync"));
    clean_env(&mut c);
    let out = c
        .env("IMMICH_API_KEY", &user.key)
        .arg("--server")
        .arg(immich.url())
        .arg("--root")
        .arg(root)
        .arg("--state-dir")
        .arg(state)
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (code(&out), v)
}

/// `backup` of the server's media location and database with Immich's own
/// `DB_*` settings and no other flag; its JSON summary.
fn backup_server(pg: &ScratchCluster, db: &Db, immich: &RealImmich, dest: &Path) -> Value {
    let mut c = crate::util::backup();
    let out = with_db(&mut c, db)
        .env("IMB_PG_DUMP", pg.bin("pg_dump"))
        .arg("--source")
        .arg(immich.media())
        .arg("--dest")
        .arg(dest)
        .arg("--json")
        .output()
        .unwrap();
    let s: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        code(&out),
        0,
        "{s}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    s
}

/// Every asset of `user` as the server lists it: id → (original's SHA-1, file name).
fn assets_of(immich: &RealImmich, user: &User) -> BTreeMap<String, (String, String)> {
    let (status, body) = immich.call(
        "POST",
        "/api/search/metadata",
        Some(&user.key),
        &json!({"size": 1000}),
    );
    assert_eq!(status, 200, "{body}");
    let mut out = BTreeMap::new();
    for a in body["assets"]["items"].as_array().expect("items") {
        let id = a["id"].as_str().unwrap().to_owned();
        let (status, original) = immich.request(
            "GET",
            &format!("/api/assets/{id}/original"),
            &[("x-api-key", &user.key)],
            &[],
        );
        assert_eq!(status, 200, "original of {id}");
        let name = a["originalFileName"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        out.insert(id, (sha1(&original), name));
    }
    out
}

/// device-sync's uploads as the real server's own API shows them: every photo
/// (real JPEGs with EXIF dates in two time zones, a PNG) and the video once (a copy
/// in a second album too), byte-identical, the excluded album and the text file
/// left out, albums made with their members, dates and time zones as EXIF says,
/// the sidecar's description read by the server; a rerun uploads nothing. Then the server's library and database are backed up with Immich's
/// own `DB_*` settings and no other flag, and `restore-verify --all` passes with
/// its defaults: the dump says where the media location was (#12), and v3 keeps
/// sidecars in `asset_file` (#22).
#[test]
fn device_sync_then_backup_and_verify_against_the_real_server() {
    let t = tempfile::tempdir().unwrap();
    let (pg, immich, db) = server();
    let alice = immich.user("alice@example.test");
    let root = t.path().join("DCIM");
    let state = t.path().join("state");
    let summer = Some(("2023:07:14 18:30:05", "+02:00"));
    let xmas = Some(("2021:12:24 20:00:00", "-05:00"));
    let sidecar = "<x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#'>\
        <rdf:Description xmlns:dc='http://purl.org/dc/elements/1.1/'><dc:description><rdf:Alt>\
        <rdf:li xml:lang='x-default'>from the sidecar</rdf:li></rdf:Alt></dc:description>\
        </rdf:Description></rdf:RDF></x:xmpmeta>";
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("Camera/IMG_0001.jpg", real_jpg(1, summer)),
        ("Camera/IMG_0002.jpg", real_jpg(2, None)),
        ("Camera/IMG_0002.xmp", sidecar.as_bytes().to_vec()),
        ("Camera/IMG_0003.png", real_png(3)),
        ("Camera/notes.txt", b"not a photo".to_vec()),
        ("Trip/IMG_0100.jpg", real_jpg(4, xmas)),
        ("Trip/clip.mp4", real_mp4(5)),
        // The same photo in a second album: one asset, in both albums.
        ("Trip/IMG_0001-copy.jpg", real_jpg(1, summer)),
        ("Private/IMG_9999.jpg", real_jpg(9, None)),
    ];
    for (p, bytes) in &files {
        crate::util::write(&root.join(p), bytes);
    }

    let (status, first) = device_sync(&immich, &alice, &root, &state);
    assert_eq!(status, 0, "{first}");
    assert_eq!(first["uploaded"], 5, "{first}");
    assert_eq!(first["duplicates"], 1, "the copy in Trip: {first}");
    assert_eq!(first["skipped"]["unsupported"], 1, "notes.txt: {first}");
    assert_eq!(first["skipped"]["excluded_album"], 1, "Private: {first}");

    let uploaded = [
        "Camera/IMG_0001.jpg",
        "Camera/IMG_0002.jpg",
        "Camera/IMG_0003.png",
        "Trip/IMG_0100.jpg",
        "Trip/clip.mp4",
    ];
    let want: std::collections::BTreeSet<String> = files
        .iter()
        .filter(|(p, _)| uploaded.contains(p))
        .map(|(_, b)| sha1(b))
        .collect();
    let assets = assets_of(&immich, &alice);
    let got: std::collections::BTreeSet<String> = assets.values().map(|(s, _)| s.clone()).collect();
    assert_eq!(got, want, "every asset once, byte-identical: {assets:?}");
    assert_eq!(assets.len(), 5, "{assets:?}");

    let albums = immich.get("/api/albums", &alice.key);
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for a in albums.as_array().expect("albums") {
        counts.insert(
            a["albumName"].as_str().unwrap().to_owned(),
            a["assetCount"].as_u64().unwrap(),
        );
    }
    assert_eq!(
        counts,
        BTreeMap::from([("Camera".to_owned(), 3), ("Trip".to_owned(), 3)]),
        "{albums}"
    );

    // Dates and time zones from EXIF, and the sidecar's metadata, as the server's
    // own metadata extraction read them.
    immich.wait_idle();
    // By content: which of two identical files became the asset (and so its
    // name) depends on which upload came first.
    let info = |path: &str| {
        let want = files
            .iter()
            .find(|(p, _)| *p == path)
            .map(|(_, b)| sha1(b))
            .unwrap();
        let id = assets
            .iter()
            .find(|(_, (s, _))| *s == want)
            .map(|(id, _)| id.clone())
            .unwrap_or_else(|| panic!("{path} in {assets:?}"));
        immich.get(&format!("/api/assets/{id}"), &alice.key)
    };
    let a = info("Camera/IMG_0001.jpg");
    assert_eq!(
        a["exifInfo"]["dateTimeOriginal"], "2023-07-14T16:30:05+00:00",
        "{a}"
    );
    assert_eq!(a["localDateTime"], "2023-07-14T18:30:05.000Z", "{a}");
    let a = info("Trip/IMG_0100.jpg");
    assert_eq!(
        a["exifInfo"]["dateTimeOriginal"], "2021-12-25T01:00:00+00:00",
        "{a}"
    );
    assert_eq!(a["localDateTime"], "2021-12-24T20:00:00.000Z", "{a}");
    let a = info("Camera/IMG_0002.jpg");
    assert_eq!(a["exifInfo"]["description"], "from the sidecar", "{a}");

    let (_, again) = device_sync(&immich, &alice, &root, &state);
    assert_eq!(again["uploaded"], 0, "{again}");
    assert_eq!(assets_of(&immich, &alice).len(), 5);

    // The library and the database, as an operator's nightly run would.
    let dest = t.path().join("backup");
    let s = backup_server(&pg, &db, &immich, &dest);
    let dump = s["database"]["object"].as_str().unwrap();
    assert!(
        dump.contains("-immich-v3.1.0.sql.gz"),
        "named by the real version: {s}"
    );

    let verify = |extra: &[&str]| {
        let mut c = crate::util::restore_verify();
        let out = c
            .arg("--from")
            .arg(&dest)
            .args(["--all", "--json"])
            .args(extra)
            .output()
            .unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        (code(&out), v)
    };
    let (status, v) = verify(&[]);
    assert_eq!(status, 0, "{v}");
    let d = &v["database"];
    assert_eq!(
        d["media_location"].as_str(),
        immich.media().to_str(),
        "the dump says where the library was: {d}"
    );
    assert_eq!(d["assets"], 5, "{d}");
    assert_eq!(d["originals_checked"], 5, "{d}");
    assert_eq!(
        d["unreferenced_originals"], 0,
        "the sidecar is referenced: {d}"
    );
    assert!(
        d["schema"].as_str().unwrap().starts_with("v2.4 and later"),
        "{d}"
    );
    assert!(d["findings"].as_array().unwrap().is_empty(), "{d}");

    // The same real dump where pgvector is not available: what needs it is
    // skipped and listed, and every asset is still checked.
    let (_, v) = verify(&["--without-extension", "vector"]);
    let d = &v["database"];
    let skipped = d["skipped_statements"].to_string();
    assert!(
        skipped.contains("CREATE EXTENSION IF NOT EXISTS vector"),
        "{d}"
    );
    assert!(skipped.contains("smart_search"), "{d}");
    assert_eq!(d["originals_checked"], 5, "{d}");
    assert_eq!(d["unreferenced_originals"], 0, "{d}");

    // The real dump against a damaged target (#22): a file no asset references is
    // reported as such; a sidecar changed or gone in the target is named.
    let stray = immich.media().join("upload/stray.jpg");
    fs::create_dir_all(stray.parent().unwrap()).unwrap();
    fs::write(&stray, jpg(77, 500)).unwrap();
    let mut c = crate::util::backup();
    let out = c
        .arg("--source")
        .arg(immich.media())
        .arg("--dest")
        .arg(&dest)
        .args(["--no-database", "--json"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    let (status, v) = verify(&[]);
    assert_eq!(v["database"]["unreferenced_originals"], 1, "{v}");
    assert!(
        v["database"]["unreferenced"]
            .to_string()
            .contains("stray.jpg"),
        "{v}"
    );
    assert!(
        v["verify"]["findings"].as_array().unwrap().is_empty(),
        "{v}"
    );
    // Reported, not a problem: Immich may not have imported a file yet.
    assert_eq!(status, 0, "{v}");

    let library = dest.join("library");
    let sidecar = crate::util::files(&library)
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "xmp"))
        .expect("the sidecar is backed up");
    let object = library.join(&sidecar);
    let name = sidecar.file_name().unwrap().to_string_lossy().into_owned();
    let good = fs::read(&object).unwrap();
    fs::remove_file(&object).unwrap(); // a hard link of its own: replace, not write through
    fs::write(&object, b"<x:xmpmeta tampered/>").unwrap();
    let (status, v) = verify(&[]);
    assert_eq!(status, 2, "{v}");
    assert!(
        v["verify"]["findings"].to_string().contains(&name),
        "changed: {v}"
    );
    fs::remove_file(&object).unwrap();
    let (status, v) = verify(&[]);
    assert_eq!(status, 2, "{v}");
    assert!(
        v["verify"]["findings"].to_string().contains(&name),
        "gone: {v}"
    );
    fs::write(&object, good).unwrap();
}

/// What a user sees on a server: assets (id → SHA-1 of the original, file name),
/// albums (name → asset count and users), and the assets with a thumbnail.
#[derive(Debug, PartialEq)]
struct View {
    assets: BTreeMap<String, (String, String)>,
    albums: BTreeMap<String, (u64, Vec<String>)>,
    thumbnails: std::collections::BTreeSet<String>,
}

fn view(immich: &RealImmich, user: &User) -> View {
    let assets = assets_of(immich, user);
    let mut albums = BTreeMap::new();
    for a in immich
        .get("/api/albums", &user.key)
        .as_array()
        .expect("albums")
    {
        let mut users: Vec<String> = a["albumUsers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|u| {
                format!(
                    "{} {}",
                    u["user"]["email"].as_str().unwrap_or("?"),
                    u["role"].as_str().unwrap_or("?")
                )
            })
            .collect();
        users.sort();
        albums.insert(
            a["albumName"].as_str().unwrap().to_owned(),
            (a["assetCount"].as_u64().unwrap(), users),
        );
    }
    let thumbnails = assets
        .keys()
        .filter(|id| {
            let (status, body) = immich.request(
                "GET",
                &format!("/api/assets/{id}/thumbnail?size=thumbnail"),
                &[("x-api-key", &user.key)],
                &[],
            );
            status == 200 && !body.is_empty()
        })
        .cloned()
        .collect();
    View {
        assets,
        albums,
        thumbnails,
    }
}

/// The only file under `dir` whose name ends with `suffix`.
fn only_file(dir: &Path, suffix: &str) -> std::path::PathBuf {
    let found: Vec<_> = crate::util::files(dir)
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "{suffix} under {}: {found:?}",
        dir.display()
    );
    dir.join(&found[0])
}

/// Replaces the file at `p` (a hard link of its own on a local target: replace,
/// never write through) with `bytes`.
fn replace(p: &Path, bytes: &[u8]) {
    fs::remove_file(p).unwrap();
    fs::write(p, bytes).unwrap();
}

/// The restore drill, end to end (#12): two users' photos from device-sync, an
/// album shared between them → `backup` with Immich's `DB_*` settings and no other
/// flag → `restore-verify --all` passes with its defaults, and names a corrupted
/// object → the files restored and the dump loaded (`--db-restore`) into a fresh
/// cluster → a second real Immich started on them, with no flag → `restore-verify
/// --immich-url` regenerates the thumbnails the backup left out and proves every
/// asset and album through the API → both servers agree through the API (ids,
/// originals byte for byte, albums and their users, thumbnails). Then what the
/// check must catch on the restored server: a missing key, a changed original, a
/// lost thumbnail.
#[test]
fn restore_drill_ends_in_a_second_working_server() {
    let t = tempfile::tempdir().unwrap();
    let (pg, immich, db) = server();
    let alice = immich.user("alice@example.test");
    let bob = immich.user("bob@example.test");
    let summer = Some(("2023:07:14 18:30:05", "+02:00"));
    type Tree<'a> = (&'a User, Vec<(&'a str, Vec<u8>)>);
    let trees: [Tree<'_>; 2] = [
        (
            &alice,
            vec![
                ("Camera/IMG_0001.jpg", real_jpg(1, summer)),
                ("Camera/IMG_0002.png", real_png(2)),
                ("Trip/clip.mp4", real_mp4(3)),
                ("Trip/IMG_0001-copy.jpg", real_jpg(1, summer)),
            ],
        ),
        (
            &bob,
            vec![
                ("Family/IMG_0500.jpg", real_jpg(5, None)),
                (
                    "Family/IMG_0501.jpg",
                    real_jpg(6, Some(("2021:12:24 20:00:00", "-05:00"))),
                ),
            ],
        ),
    ];
    for (i, (user, files)) in trees.iter().enumerate() {
        let root = t.path().join(format!("device{i}"));
        for (p, bytes) in files {
            crate::util::write(&root.join(p), bytes);
        }
        let (status, v) = device_sync(&immich, user, &root, &t.path().join(format!("state{i}")));
        assert_eq!(status, 0, "{v}");
    }
    // Alice shares Trip with Bob.
    let trip = immich
        .get("/api/albums", &alice.key)
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["albumName"] == "Trip")
        .map(|a| a["id"].as_str().unwrap().to_owned())
        .expect("Trip");
    let (status, body) = immich.call(
        "PUT",
        &format!("/api/albums/{trip}/users"),
        Some(&alice.key),
        &json!({"albumUsers": [{"userId": bob.id, "role": "viewer"}]}),
    );
    assert_eq!(status, 200, "{body}");
    immich.wait_idle();
    let before = [view(&immich, &alice), view(&immich, &bob)];
    assert_eq!(before[0].assets.len(), 3, "{:?}", before[0]);
    assert_eq!(before[1].assets.len(), 2, "{:?}", before[1]);
    assert_eq!(
        before[0].thumbnails.len() + before[1].thumbnails.len(),
        5,
        "real pictures and a real video get thumbnails: {before:?}"
    );

    let dest = t.path().join("backup");
    backup_server(&pg, &db, &immich, &dest);
    let verify = |args: &[&str]| {
        let mut c = crate::util::restore_verify();
        let out = c
            .arg("--from")
            .arg(&dest)
            .arg("--json")
            .args(args)
            .output()
            .unwrap();
        let v: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
        (code(&out), v)
    };
    let (status, v) = verify(&["--all"]);
    assert_eq!(status, 0, "{v}");
    assert_eq!(v["database"]["originals_checked"], 5, "{v}");

    // One damaged object is named, by path.
    let png = only_file(&dest.join("library"), ".png");
    let good = fs::read(&png).unwrap();
    replace(&png, b"not the picture");
    let (status, v) = verify(&["--all"]);
    assert_eq!(status, 2, "{v}");
    let name = png.file_name().unwrap().to_string_lossy().into_owned();
    assert!(v["verify"]["findings"].to_string().contains(&name), "{v}");
    replace(&png, &good);

    // Files and database into a fresh place, as on a new machine; then a second
    // server on them, started as any Immich is: no flag of ours.
    let (pg2, db2) = cluster();
    let media2 = t.path().join("restored");
    let mut c = crate::util::restore_verify();
    let out = with_db(&mut c, &db2)
        .arg("--from")
        .arg(&dest)
        .args(["--db-restore", "--json", "--psql"])
        .arg(pg2.bin("psql"))
        .arg("--restore-to")
        .arg(&media2)
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        code(&out),
        0,
        "{v}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The backup keeps the markers of the folders it leaves out: Immich checks
    // them at start, and the restored database says it has.
    for m in ["thumbs/.immich", "encoded-video/.immich"] {
        assert!(media2.join(m).is_file(), "{m}: {v}");
    }
    let immich2 = RealImmich::start_on(&db2, &media2);

    let keys = t.path().join("keys");
    fs::create_dir_all(&keys).unwrap();
    let key_file = |name: &str, key: &str| {
        let p = keys.join(name);
        fs::write(&p, key).unwrap();
        p.to_string_lossy().into_owned()
    };
    // Keys restored with the database keep working; the admin's is the new server's.
    let (ka, kb, kadmin) = (
        key_file("alice", &alice.key),
        key_file("bob", &bob.key),
        key_file("admin", &immich2.admin().key),
    );
    let url = immich2.url();
    let (status, v) = verify(&[
        "--immich-url",
        &url,
        "--key-file",
        &ka,
        "--key-file",
        &kb,
        "--key-file",
        &kadmin,
    ]);
    let im = &v["immich"];
    assert_eq!(status, 0, "{v}");
    assert_eq!(im["server_version"], "3.1.0", "{im}");
    assert_eq!(im["regenerated"], json!(["thumbnailGeneration"]), "{im}");
    assert_eq!(im["assets_checked"], 5, "{im}");
    assert_eq!(im["originals_identical"], 5, "{im}");
    assert_eq!(im["thumbnails_present"], 5, "{im}");
    assert_eq!(im["albums_checked"], 3, "{im}");
    assert_eq!(im["albums_identical"], 3, "{im}");
    assert_eq!(im["not_checked"], 0, "{im}");
    assert_eq!(im["users"], 3, "{im}");
    crate::contract::assert_documented("restore-verify --immich-url", "immich", &v);

    let after = [view(&immich2, &alice), view(&immich2, &bob)];
    assert_eq!(after, before, "both servers agree through the API");

    // A user without a key: their assets are not checked, and that is a problem.
    let (status, v) = verify(&[
        "--immich-url",
        &url,
        "--key-file",
        &ka,
        "--key-file",
        &kadmin,
        "--regenerate=false",
    ]);
    assert_eq!(status, 2, "{v}");
    assert_eq!(v["immich"]["not_checked"], 2, "{v}");
    assert_eq!(v["immich"]["assets_checked"], 3, "{v}");

    // A changed original and a lost thumbnail on the restored server are named.
    let restored_png = only_file(&media2.join("upload"), ".png");
    fs::write(&restored_png, b"changed after the restore").unwrap();
    let thumb = crate::util::files(&media2.join("thumbs"))
        .into_iter()
        .find(|p| p.to_string_lossy().contains("thumbnail"))
        .expect("a regenerated thumbnail");
    fs::remove_file(media2.join("thumbs").join(&thumb)).unwrap();
    let (status, v) = verify(&[
        "--immich-url",
        &url,
        "--key-file",
        &ka,
        "--key-file",
        &kb,
        "--key-file",
        &kadmin,
        "--regenerate=false",
    ]);
    assert_eq!(status, 2, "{v}");
    let findings = v["immich"]["findings"].to_string();
    assert!(
        findings.contains(".png") && findings.contains("SHA-1"),
        "{findings}"
    );
    assert!(findings.contains("no thumbnail (404)"), "{findings}");
    assert_eq!(v["immich"]["originals_identical"], 4, "{v}");
}

/// Reconciling with the real server (#14): after a sync, one asset is deleted
/// for good on the server (`DELETE /api/assets` with `force`, its deletion job
/// run to the end) and another is moved to the trash. A sync within the
/// reconcile interval asks nothing; `--reconcile` asks, uploads the deleted one
/// again (`requeued` 1, from its recorded hash: nothing hashed) and leaves the
/// trashed one in the trash (`trashed` 1, not uploaded).
#[test]
fn a_file_deleted_on_the_server_is_uploaded_again_and_a_trashed_one_is_not() {
    let t = tempfile::tempdir().unwrap();
    let (_pg, immich, _db) = server();
    let bob = immich.user("bob@example.test");
    let root = t.path().join("DCIM");
    let state = t.path().join("state");
    let files = [
        ("Camera/gone.jpg", real_jpg(41, None)),
        ("Camera/trashed.jpg", real_jpg(42, None)),
        ("Camera/kept.jpg", real_jpg(43, None)),
    ];
    for (p, b) in &files {
        let p = root.join(p);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, b).unwrap();
    }
    let sync = |extra: &[&str]| device_sync_with(&immich, &bob, &root, &state, extra);
    let (rc, s) = sync(&[]);
    assert_eq!((rc, &s["uploaded"]), (0, &3.into()), "{s}");
    assert_eq!(s["reconciled"], true, "the first sync has never asked: {s}");
    let by_sha1 = |want: &[u8]| {
        let want = sha1(want);
        assets_of(&immich, &bob)
            .into_iter()
            .find(|(_, (s, _))| *s == want)
            .map(|(id, _)| id)
    };
    let gone = by_sha1(&files[0].1).expect("uploaded");
    let trashed = by_sha1(&files[1].1).expect("uploaded");
    let (status, body) = immich.call(
        "DELETE",
        "/api/assets",
        Some(&bob.key),
        &json!({"ids": [gone], "force": true}),
    );
    assert_eq!(status, 204, "{body}");
    let (status, body) = immich.call(
        "DELETE",
        "/api/assets",
        Some(&bob.key),
        &json!({"ids": [trashed]}),
    );
    assert_eq!(status, 204, "{body}");
    immich.wait_idle();
    assert!(by_sha1(&files[0].1).is_none(), "deleted for good");

    // Within the interval (a day by default): not asked, nothing uploaded.
    let (rc, s) = sync(&[]);
    assert_eq!(
        (rc, &s["reconciled"], &s["uploaded"]),
        (0, &false.into(), &0.into()),
        "{s}"
    );

    let (rc, s) = sync(&["--reconcile"]);
    assert_eq!(rc, 0, "{s}");
    assert_eq!(
        (&s["reconciled"], &s["requeued"], &s["trashed"]),
        (&true.into(), &1.into(), &1.into()),
        "{s}"
    );
    assert_eq!(
        (&s["uploaded"], &s["hashed"]),
        (&1.into(), &0.into()),
        "{s}"
    );
    let again = by_sha1(&files[0].1).expect("uploaded again");
    assert_ne!(again, gone, "a new asset");
    let info = immich.get(&format!("/api/assets/{trashed}"), &bob.key);
    assert_eq!(info["isTrashed"], true, "left in the trash: {info}");
    let (status, body) = immich.call(
        "POST",
        "/api/search/metadata",
        Some(&bob.key),
        &json!({"withDeleted": true, "size": 100}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["assets"]["items"].as_array().map(Vec::len),
        Some(3),
        "one asset per file, the trashed one not uploaded again: {body}"
    );
}

/// Live photos against the real server with its metadata job paused, so only
/// device-sync can link (#14): a name-stem pair (`IMG_4001.jpg` + a 1-second
/// `IMG_4001.mov`) and a content-identifier pair under different names (the
/// still's Apple MakerNote, synthetic; the movie's QuickTime key, written by
/// exiftool) each become one asset right after the upload: the still's
/// `livePhotoVideoId` is the video, the video hidden, and album sync puts only
/// the stills in the album. A 6-second movie of the same stem as a third still
/// stays its own asset. A second device syncing the same files uploads nothing
/// and links the pairs it finds on the server by checksum.
#[test]
fn live_photos_are_uploaded_as_linked_pairs() {
    use imb_testkit::fixtures::{real_mov, with_apple_content_id};
    let t = tempfile::tempdir().unwrap();
    let (_pg, immich, _db) = server();
    let (status, body) = immich.call(
        "PUT",
        "/api/jobs/metadataExtraction",
        Some(&immich.admin().key),
        &json!({"command": "pause", "force": false}),
    );
    assert!(status < 300, "pause the metadata job: {status} {body}");
    let carol = immich.user("carol@example.test");
    let root = t.path().join("DCIM");
    let files = [
        ("Camera/IMG_4001.jpg", real_jpg(51, None)),
        ("Camera/IMG_4001.mov", real_mov(52, 1, None)),
        (
            "Camera/IMG_5000.jpg",
            with_apple_content_id(&real_jpg(53, None), "9A1C3F2E-LIVE"),
        ),
        (
            "Camera/motion_5000.mov",
            real_mov(54, 2, Some("9A1C3F2E-LIVE")),
        ),
        ("Camera/IMG_6000.jpg", real_jpg(55, None)),
        ("Camera/IMG_6000.mov", real_mov(56, 6, None)),
    ];
    for (p, b) in &files {
        let p = root.join(p);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, b).unwrap();
    }
    let sync = |state: &Path| device_sync_with(&immich, &carol, &root, state, &["--album-sync"]);
    let (rc, s) = sync(&t.path().join("state"));
    assert_eq!(rc, 0, "{s}");
    assert_eq!(
        (&s["uploaded"], &s["live_photos"]),
        (&6.into(), &2.into()),
        "{s}"
    );

    let id_of = |b: &[u8]| {
        let want = sha1(b);
        let (status, body) = immich.call(
            "POST",
            "/api/search/metadata",
            Some(&carol.key),
            &json!({"checksum": base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                imb_hash::digest(b).sha1
            ), "withDeleted": true}),
        );
        assert_eq!(status, 200, "{body}");
        let items = body["assets"]["items"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(items.len(), 1, "{want}: {body}");
        items[0]["id"].as_str().unwrap().to_owned()
    };
    for (still, video) in [(0, 1), (2, 3)] {
        let (s_id, v_id) = (id_of(&files[still].1), id_of(&files[video].1));
        let a = immich.get(&format!("/api/assets/{s_id}"), &carol.key);
        assert_eq!(
            a["livePhotoVideoId"],
            v_id.as_str(),
            "{}: {a}",
            files[still].0
        );
        let v = immich.get(&format!("/api/assets/{v_id}"), &carol.key);
        assert_eq!(v["visibility"], "hidden", "{}: {v}", files[video].0);
    }
    let lone = immich.get(&format!("/api/assets/{}", id_of(&files[5].1)), &carol.key);
    assert_eq!(
        lone["visibility"], "timeline",
        "a 6-second movie is its own asset: {lone}"
    );
    let albums = immich.get("/api/albums", &carol.key);
    assert_eq!(
        albums[0]["assetCount"], 4,
        "the stills and the lone movie: {albums}"
    );

    let (rc, s) = sync(&t.path().join("second-device"));
    assert_eq!(rc, 0, "{s}");
    assert_eq!(
        (&s["uploaded"], &s["duplicates"], &s["live_photos"]),
        (&0.into(), &6.into(), &2.into()),
        "{s}"
    );
}

/// The storage quota on the real server (#14): with room for some files only,
/// those are uploaded and the run stops naming the quota (exit 2, `stop_reason`
/// `quota`); the server holds exactly what was reported uploaded, within the
/// quota. `status` says the backup is paused. With the quota lifted, the next
/// run uploads the rest.
#[test]
fn a_quota_that_fits_some_files_uploads_those_and_stops_naming_the_quota() {
    let t = tempfile::tempdir().unwrap();
    let (_pg, immich, _db) = server();
    let dave = immich.user("dave@example.test");
    let root = t.path().join("DCIM");
    let files: Vec<(String, Vec<u8>)> = (0..4)
        .map(|i| (format!("Camera/IMG_{i}.jpg"), real_jpg(61 + i, None)))
        .collect();
    for (p, b) in &files {
        let p = root.join(p);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, b).unwrap();
    }
    let largest = files.iter().map(|(_, b)| b.len() as u64).max().unwrap();
    let quota = 2 * largest + 10;
    let set_quota = |q: Option<u64>| {
        let (status, body) = immich.call(
            "PUT",
            &format!("/api/admin/users/{}", dave.id),
            Some(&immich.admin().key),
            &json!({ "quotaSizeInBytes": q }),
        );
        assert_eq!(status, 200, "{body}");
    };
    set_quota(Some(quota));
    let state = t.path().join("state");
    let sync = |args: &[&str]| device_sync_with(&immich, &dave, &root, &state, args);
    let (rc, s) = sync(&[]);
    assert_eq!(
        (rc, &s["stopped"], &s["stop_reason"]),
        (2, &true.into(), &"quota".into()),
        "{s}"
    );
    let uploaded = s["uploaded"].as_u64().unwrap();
    assert!(uploaded >= 2, "two of the largest fit: {s}");
    assert_eq!(uploaded + s["remaining"].as_u64().unwrap(), 4, "{s}");
    let on_server = assets_of(&immich, &dave);
    assert_eq!(on_server.len() as u64, uploaded, "{on_server:?}");
    let me = immich.get("/api/users/me", &dave.key);
    assert!(me["quotaUsageInBytes"].as_u64().unwrap() <= quota, "{me}");
    let (_, st) = sync(&["status"]);
    assert_eq!(st["paused"], "quota", "{st}");

    set_quota(None);
    let (rc, s) = sync(&[]);
    assert_eq!((rc, s["uploaded"].as_u64()), (0, Some(4 - uploaded)), "{s}");
    assert_eq!(assets_of(&immich, &dave).len(), 4);
}
