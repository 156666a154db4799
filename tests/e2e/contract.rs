//! The `--json` output is a contract: `docs/cli.md` lists every field of every
//! binary's JSON (objects one level deep), and this test fails when a run shows a
//! field the document does not list, or the document lists one no run shows.

use std::collections::BTreeSet;
use std::fs;
use std::process::Command;

use imb_pgdump::scratch::ScratchCluster;
use imb_testkit::immich::{TestServer, TestServerOptions};
use serde_json::Value;

use crate::database::{immich_db, with_db};
use crate::util::{backup, bin, clean_env, code, library, restore_verify, run_json, write};

/// Field names of a JSON object, objects one level deep as `outer.inner`.
fn fields(v: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (k, inner) in v.as_object().expect("a JSON object") {
        out.insert(k.clone());
        if let Some(o) = inner.as_object() {
            out.extend(o.keys().map(|i| format!("{k}.{i}")));
        }
    }
    out
}

/// The fields `docs/cli.md` lists in the table after `<!-- json: NAME -->`.
fn documented(doc: &str, name: &str) -> BTreeSet<String> {
    let marker = format!("<!-- json: {name} -->");
    let at = doc
        .find(&marker)
        .unwrap_or_else(|| panic!("docs/cli.md has no {marker}"));
    doc[at + marker.len()..]
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .filter_map(|l| {
            let cell = l.trim_start_matches('|').trim();
            let name = cell.strip_prefix('`')?.split('`').next()?;
            Some(name.to_owned())
        })
        .collect()
}

/// What is wrong with the document's `name` table, given what runs showed.
fn check(doc: &str, name: &str, runs: &[&Value], problems: &mut Vec<String>) {
    let seen: BTreeSet<String> = runs.iter().flat_map(|v| fields(v)).collect();
    let listed = documented(doc, name);
    let undocumented: Vec<_> = seen.difference(&listed).collect();
    let gone: Vec<_> = listed.difference(&seen).collect();
    if !undocumented.is_empty() || !gone.is_empty() {
        problems.push(format!(
            "`{name}`: not documented {undocumented:?}; documented but not output {gone:?}"
        ));
    }
}

fn json(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// For parts a run needs a real server for (`--immich-url`): the fields of
/// `part` in `v` against the document's table `name`.
pub(crate) fn assert_documented(name: &str, part: &str, v: &Value) {
    let doc = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/cli.md"))
        .expect("docs/cli.md");
    let mut problems = Vec::new();
    check(
        &doc,
        name,
        &[&serde_json::json!({ part: v[part].clone() })],
        &mut problems,
    );
    assert!(
        problems.is_empty(),
        "docs/cli.md is out of date:\n{}",
        problems.join("\n")
    );
}

#[test]
fn every_json_field_is_documented_in_docs_cli_md() {
    let doc = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/cli.md"))
        .expect("docs/cli.md");
    let t = tempfile::tempdir().unwrap();
    let pg = ScratchCluster::start().unwrap();
    immich_db(&pg);
    pg.create_db("target").unwrap();
    let (src, dst) = (t.path().join("upload"), t.path().join("backup"));
    library(&src, 3, 100);

    // backup, with the database.
    let mut c = backup();
    with_db(&mut c, &pg, pg.password());
    c.arg("--source").arg(&src).arg("--dest").arg(&dst);
    let (out, b) = run_json(c);
    assert_eq!(code(&out), 0, "{b}");
    let mut problems = Vec::new();
    check(&doc, "backup", &[&b], &mut problems);

    // Any binary that could not run.
    let mut c = backup();
    c.arg("--source")
        .arg(t.path().join("nope"))
        .arg("--dest")
        .arg(&dst);
    let (out, e) = run_json(c);
    assert_eq!(code(&out), 1);
    check(&doc, "error", &[&e], &mut problems);

    // restore-verify with every part: database check, --db-restore, --max-age,
    // --restore-to, --write-report.
    let mut c = restore_verify();
    with_db(&mut c, &pg, pg.password());
    c.env("DB_DATABASE_NAME", "target")
        .arg("--from")
        .arg(&dst)
        .args([
            "--max-age",
            "1h",
            "--write-report",
            "--db-restore",
            "--sample",
            "2",
            "--seed",
            "1",
        ])
        .arg("--psql")
        .arg(pg.bin("psql"))
        .arg("--restore-to")
        .arg(t.path().join("restored"));
    let (_, r) = run_json(c);
    assert!(r["db_restore"]["error"].is_null(), "{r}");
    // ... and the rotating re-hash.
    let mut c = restore_verify();
    c.arg("--from")
        .arg(&dst)
        .args(["--rotate", "3", "--no-database"]);
    let (_, rot) = run_json(c);
    check(&doc, "restore-verify", &[&r, &rot], &mut problems);

    // device-sync: sync, status, failed, albums.
    let server = TestServer::start(TestServerOptions::default());
    let device = t.path().join("DCIM");
    write(
        &device.join("Camera/IMG_1.jpg"),
        b"\xff\xd8\xff\xe0 one photo",
    );
    let metered = crate::util::fake_nmcli(t.path(), "yes");
    let ds = |args: &[&str]| {
        let mut c = Command::new(bin("device-sync"));
        clean_env(&mut c);
        // NetworkManager's stand-in says "metered": only a per-type rule asks it.
        c.env("IMMICH_API_KEY", server.key())
            .env("PATH", &metered)
            .arg("--server")
            .arg(server.url())
            .arg("--root")
            .arg(&device)
            .arg("--state-dir")
            .arg(t.path().join("state"))
            .args(args)
            .arg("--json");
        let out = c.output().unwrap();
        assert_eq!(
            code(&out),
            0,
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        json(&out)
    };
    let sync = ds(&["--album-sync"]);
    check(&doc, "device-sync", &[&sync], &mut problems);
    let v = ds(&["status"]);
    // A run that held videos back on a metered network: status says it waits.
    ds(&["--only-if-unmetered-videos"]);
    let waiting = ds(&["status"]);
    check(&doc, "device-sync status", &[&v, &waiting], &mut problems);
    let v = ds(&["failed"]);
    check(&doc, "device-sync failed", &[&v], &mut problems);
    let v = ds(&["albums"]);
    check(&doc, "device-sync albums", &[&v], &mut problems);
    assert!(
        problems.is_empty(),
        "docs/cli.md is out of date:\n{}",
        problems.join("\n")
    );
}
