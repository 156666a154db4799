//! What a restored Immich must serve, as the dump says: every asset of the
//! server's own libraries (owner, SHA-1, the generated files the dump lists for
//! it), every album with its owner, members and assets, every user. Read from the
//! loaded dump with `COPY … TO STDOUT` into a SQLite file, so memory stays flat
//! however large the library; [`crate::verify_immich`] reads it back.
//!
//! Immich v2 and later only (an `asset_file` table): `--immich-url` talks to a
//! running server, and servers older than that are not what anyone restores to.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use rusqlite::{Connection, params};

use crate::database::{Db, DbReport, first_table, query};

const SCHEMA: &str = "
CREATE TABLE asset(id TEXT PRIMARY KEY, owner TEXT NOT NULL, sha1 TEXT NOT NULL,
  path TEXT NOT NULL, visibility TEXT NOT NULL, trashed INTEGER NOT NULL,
  thumbnail INTEGER NOT NULL, preview INTEGER NOT NULL, video INTEGER NOT NULL);
CREATE TABLE album(id TEXT PRIMARY KEY, name TEXT NOT NULL, owner TEXT NOT NULL);
CREATE TABLE album_user(album TEXT NOT NULL, user TEXT NOT NULL, role TEXT NOT NULL);
CREATE TABLE album_asset(album TEXT NOT NULL, asset TEXT NOT NULL);
CREATE TABLE user(id TEXT PRIMARY KEY, email TEXT NOT NULL);
CREATE TABLE meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);
";

/// `meta` keys: generated files the dump lists that the backup does not hold.
pub(crate) const THUMBS_NOT_BACKED_UP: &str = "thumbnails_not_backed_up";
pub(crate) const VIDEOS_NOT_BACKED_UP: &str = "videos_not_backed_up";

pub(crate) fn has_column(pg: &Db, table: &str, column: &str) -> bool {
    query(
        pg,
        &format!("SELECT count(*) FROM information_schema.columns WHERE table_schema = 'public' AND table_name = '{table}' AND column_name = '{column}'"),
    )
    .is_some_and(|c| c != "0")
}

/// Writes the inventory of the dump loaded in `pg` into `path`.
pub(crate) fn export(
    pg: &Db,
    path: &Path,
    manifest: &Path,
    report: &DbReport,
) -> Result<(), String> {
    if first_table(pg, &["asset_file"]).is_none() || first_table(pg, &["asset"]).is_none() {
        return Err(
            "the dump is older than Immich v2 (no asset and asset_file tables); \
                    --immich-url checks servers of v2 and later"
                .into(),
        );
    }
    let _ = std::fs::remove_file(path);
    let mut db = Connection::open(path).map_err(|e| e.to_string())?;
    db.execute_batch(SCHEMA).map_err(|e| e.to_string())?;
    let tx = db.transaction().map_err(|e| e.to_string())?;
    let reader = imb_manifest::ManifestReader::open(manifest).map_err(|e| e.to_string())?;
    let roots = &report.immich_roots;
    // A generated file counts as backed up when its path, relative to a library
    // root, is a live file of the manifest.
    let backed_up = |p: &str| -> bool {
        roots
            .iter()
            .find_map(|root| {
                p.strip_prefix(root.trim_end_matches('/'))?
                    .strip_prefix('/')
            })
            .and_then(|r| imb_storage::encode_path(&PathBuf::from(r)).ok())
            .and_then(|k| reader.get(&k).ok().flatten())
            .is_some_and(|r| !r.archived)
    };

    let own = if has_column(pg, "asset", "libraryId") {
        r#"WHERE a."libraryId" IS NULL"#
    } else {
        ""
    };
    let not_edited = if has_column(pg, "asset_file", "isEdited") {
        r#" AND NOT f."isEdited""#
    } else {
        ""
    };
    let file = |kind: &str| {
        format!(
            r#"(SELECT f.path FROM asset_file f WHERE f."assetId" = a.id AND f.type::text = '{kind}'{not_edited} ORDER BY f.path LIMIT 1)"#
        )
    };
    // Transcodes: `asset_file` rows in v3, `asset."encodedVideoPath"` before.
    let video = if has_column(pg, "asset", "encodedVideoPath") {
        format!(
            r#"COALESCE({}, NULLIF(a."encodedVideoPath", ''))"#,
            file("encoded_video")
        )
    } else {
        file("encoded_video")
    };
    let visibility = if has_column(pg, "asset", "visibility") {
        r#"a.visibility::text"#
    } else {
        "'timeline'"
    };
    let sql = format!(
        r#"SELECT a.id, a."ownerId", encode(a.checksum, 'hex'), a."originalPath", {visibility},
                  a."deletedAt" IS NOT NULL, {}, {}, {video}
           FROM asset a {own}"#,
        file("thumbnail"),
        file("preview"),
    );
    let (mut thumbs_missing, mut videos_missing) = (0i64, 0i64);
    {
        let mut ins = tx
            .prepare("INSERT INTO asset VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)")
            .map_err(|e| e.to_string())?;
        copy_out(pg, &sql, |f| {
            let [
                id,
                owner,
                sha1,
                original,
                vis,
                trashed,
                thumb,
                preview,
                video,
            ] = &f[..]
            else {
                return Err(format!("asset row with {} fields", f.len()));
            };
            let listed = |p: &Option<String>| p.is_some();
            for p in [thumb, preview].into_iter().flatten() {
                if !backed_up(p) {
                    thumbs_missing += 1;
                }
            }
            if let Some(v) = video
                && !backed_up(v)
            {
                videos_missing += 1;
            }
            ins.execute(params![
                id.as_deref().unwrap_or_default(),
                owner.as_deref().unwrap_or_default(),
                sha1.as_deref().unwrap_or_default(),
                original.as_deref().unwrap_or_default(),
                vis.as_deref().unwrap_or("timeline"),
                trashed.as_deref() == Some("t"),
                listed(thumb),
                listed(preview),
                listed(video),
            ])
            .map(drop)
            .map_err(|e| e.to_string())
        })?;
    }
    for (k, v) in [
        (THUMBS_NOT_BACKED_UP, thumbs_missing),
        (VIDEOS_NOT_BACKED_UP, videos_missing),
    ] {
        tx.execute("INSERT INTO meta VALUES (?1, ?2)", params![k, v])
            .map_err(|e| e.to_string())?;
    }

    let user_table =
        first_table(pg, &["user", "users"]).unwrap_or_else(|| "public.\"user\"".into());
    let deleted = if has_column(
        pg,
        user_table
            .rsplit('.')
            .next()
            .unwrap_or("")
            .trim_matches('"'),
        "deletedAt",
    ) {
        r#"WHERE "deletedAt" IS NULL"#
    } else {
        ""
    };
    insert_all(
        pg,
        &tx,
        &format!("SELECT id, email FROM {user_table} {deleted}"),
        "INSERT INTO user VALUES (?1, ?2)",
    )?;

    if first_table(pg, &["album"]).is_some()
        && first_table(pg, &["album_user"]).is_some()
        && first_table(pg, &["album_asset"]).is_some()
    {
        // The owner: `album."ownerId"` in v2, the `album_user` row of role owner in v3.
        let owner = if has_column(pg, "album", "ownerId") {
            r#"al."ownerId""#
        } else {
            r#"(SELECT u."userId" FROM album_user u WHERE u."albumId" = al.id AND u.role::text = 'owner' LIMIT 1)"#
        };
        let live = if has_column(pg, "album", "deletedAt") {
            r#"WHERE al."deletedAt" IS NULL"#
        } else {
            ""
        };
        insert_all(
            pg,
            &tx,
            &format!(r#"SELECT al.id, al."albumName", {owner} FROM album al {live}"#),
            "INSERT INTO album VALUES (?1, ?2, ?3)",
        )?;
        insert_all(
            pg,
            &tx,
            r#"SELECT "albumId", "userId", role::text FROM album_user WHERE role::text <> 'owner'"#,
            "INSERT INTO album_user VALUES (?1, ?2, ?3)",
        )?;
        insert_all(
            pg,
            &tx,
            r#"SELECT "albumId", "assetId" FROM album_asset"#,
            "INSERT INTO album_asset VALUES (?1, ?2)",
        )?;
    }
    tx.commit().map_err(|e| e.to_string())
}

/// Every row of `select` into the table `insert` fills (all fields text, nulls empty).
fn insert_all(
    pg: &Db,
    tx: &rusqlite::Transaction<'_>,
    select: &str,
    insert: &str,
) -> Result<(), String> {
    let mut ins = tx.prepare(insert).map_err(|e| e.to_string())?;
    copy_out(pg, select, |f| {
        let f: Vec<String> = f.into_iter().map(Option::unwrap_or_default).collect();
        ins.execute(rusqlite::params_from_iter(f.iter()))
            .map(drop)
            .map_err(|e| e.to_string())
    })
}

/// Runs `COPY (select) TO STDOUT` and hands each row's fields to `each` as they
/// arrive (`None` for SQL NULL).
fn copy_out(
    pg: &Db,
    select: &str,
    mut each: impl FnMut(Vec<Option<String>>) -> Result<(), String>,
) -> Result<(), String> {
    let mut child = pg
        .psql_command()
        .arg("--command")
        .arg(format!("COPY ({select}) TO STDOUT"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("psql: {e}"))?;
    let out = child.stdout.take().expect("piped");
    let mut failed = None;
    for line in BufReader::new(out).split(b'\n') {
        let line = match line {
            Ok(l) => l,
            Err(e) => {
                failed = Some(e.to_string());
                break;
            }
        };
        if let Err(e) = each(copy_fields(&String::from_utf8_lossy(&line))) {
            failed = Some(e);
            break;
        }
    }
    if failed.is_some() {
        let _ = child.kill();
    }
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    let status = child.wait().map_err(|e| format!("psql: {e}"))?;
    if let Some(f) = failed {
        return Err(f);
    }
    if !status.success() {
        return Err(pg.redact(err.trim()));
    }
    Ok(())
}

/// The fields of one line of `COPY … TO STDOUT` text format: tab-separated,
/// `\N` for NULL, backslash escapes.
fn copy_fields(line: &str) -> Vec<Option<String>> {
    line.split('\t')
        .map(|f| (f != "\\N").then(|| unescape(f)))
        .collect()
}

fn unescape(f: &str) -> String {
    if !f.contains('\\') {
        return f.to_owned();
    }
    let mut out = Vec::with_capacity(f.len());
    let b = f.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' || i + 1 == b.len() {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let c = b[i + 1];
        i += 2;
        match c {
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(11),
            b'0'..=b'7' => {
                let mut v = u32::from(c - b'0');
                let mut n = 1;
                while n < 3 && i < b.len() && (b'0'..=b'7').contains(&b[i]) {
                    v = v * 8 + u32::from(b[i] - b'0');
                    i += 1;
                    n += 1;
                }
                out.push(v as u8);
            }
            b'x' => {
                let mut v = 0u32;
                let mut n = 0;
                while n < 2 && i < b.len() && b[i].is_ascii_hexdigit() {
                    v = v * 16 + char::from(b[i]).to_digit(16).unwrap_or(0);
                    i += 1;
                    n += 1;
                }
                out.push(v as u8);
            }
            other => out.push(other),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_text_format_is_decoded() {
        assert_eq!(
            copy_fields("a\\tb\t\\N\tc\\\\d\te\\nf\t\\101\\x42"),
            vec![
                Some("a\tb".into()),
                None,
                Some("c\\d".into()),
                Some("e\nf".into()),
                Some("AB".into())
            ]
        );
        assert_eq!(copy_fields(""), vec![Some(String::new())]);
    }
}
