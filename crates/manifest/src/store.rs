//! The manifest database and its journal.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params};

use crate::schema::{FILE_COLUMNS, HISTORY_COLUMNS, INDEXES, tables};
use crate::{Error, RUN_PARTS, Result, SCHEMA_VERSION};

/// One backed-up file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRecord {
    /// Path relative to the source root, `/`-separated, in the reversible encoding
    /// of `imb_storage::encode_path`.
    pub file_path: String,
    /// SHA-256 of the content.
    pub checksum: [u8; 32],
    /// SHA-1 of the content, as Immich records it.
    pub sha1: [u8; 20],
    /// CRC32C of the content, as Cloud Storage reports it.
    pub crc32c: u32,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    /// Whether the file has left the source. Its object stays.
    pub archived: bool,
    /// The store's generation of the object, where it has one.
    pub generation: Option<i64>,
    /// The object holding the content, when it is not `library/{file_path}`.
    pub object_key: Option<String>,
}

impl FileRecord {
    /// A live record whose object is `library/{file_path}`.
    pub fn new(
        file_path: impl Into<String>,
        checksum: [u8; 32],
        sha1: [u8; 20],
        crc32c: u32,
        size: u64,
        mtime_ns: i64,
    ) -> Self {
        FileRecord {
            file_path: file_path.into(),
            checksum,
            sha1,
            crc32c,
            size,
            mtime_ns,
            archived: false,
            generation: None,
            object_key: None,
        }
    }
}

/// A content a path used to have (or a suspect content that was stored but not
/// made current).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRecord {
    /// The content and its object.
    pub file: FileRecord,
    /// Until when it was current, RFC 3339 UTC.
    pub replaced_at: String,
    /// `changed` or `suspect`.
    pub reason: String,
}

/// Totals over the files table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    /// Rows that are not archived.
    pub live: u64,
    /// Rows that are archived.
    pub archived: u64,
    /// Bytes of the live rows.
    pub live_bytes: u64,
}

/// The manifest, open for writing. Writes accumulate in an open transaction until
/// [`Manifest::commit`]; one writer at a time.
#[derive(Debug)]
pub struct Manifest {
    conn: Connection,
    path: PathBuf,
    in_tx: bool,
    journal: Option<PathBuf>,
    journal_rows: u64,
}

fn sql(path: &Path) -> impl Fn(rusqlite::Error) -> Error + '_ {
    move |source| Error::Sqlite {
        path: path.display().to_string(),
        source,
    }
}

fn blob<const N: usize>(path: &Path, file_path: &str, v: Vec<u8>, what: &str) -> Result<[u8; N]> {
    v.try_into().map_err(|v: Vec<u8>| Error::Malformed {
        path: path.display().to_string(),
        file_path: file_path.to_owned(),
        reason: format!("{what} has {} bytes, expected {N}", v.len()),
    })
}

struct RawFile {
    file_path: String,
    checksum: Vec<u8>,
    size: i64,
    archived: bool,
    mtime: i64,
    sha1: Vec<u8>,
    crc32c: i64,
    generation: Option<i64>,
    object_key: Option<String>,
}

fn raw_file(row: &Row<'_>, offset: usize) -> rusqlite::Result<RawFile> {
    Ok(RawFile {
        file_path: row.get(offset)?,
        checksum: row.get(offset + 1)?,
        size: row.get(offset + 2)?,
        archived: row.get(offset + 3)?,
        mtime: row.get(offset + 4)?,
        sha1: row.get(offset + 5)?,
        crc32c: row.get(offset + 6)?,
        generation: row.get(offset + 7)?,
        object_key: row.get(offset + 8)?,
    })
}

impl RawFile {
    fn finish(self, path: &Path) -> Result<FileRecord> {
        Ok(FileRecord {
            checksum: blob(path, &self.file_path, self.checksum, "checksum")?,
            sha1: blob(path, &self.file_path, self.sha1, "sha1")?,
            size: self.size as u64,
            archived: self.archived,
            mtime_ns: self.mtime,
            crc32c: self.crc32c as u32,
            generation: self.generation,
            object_key: self.object_key,
            file_path: self.file_path,
        })
    }
}

fn history_row(r: &Row<'_>) -> rusqlite::Result<(RawFile, String, String)> {
    let raw = RawFile {
        file_path: r.get(0)?,
        checksum: r.get(3)?,
        size: r.get(4)?,
        archived: false,
        mtime: r.get(5)?,
        sha1: r.get(6)?,
        crc32c: r.get(7)?,
        generation: r.get(8)?,
        object_key: r.get(9)?,
    };
    Ok((raw, r.get(1)?, r.get(2)?))
}

fn file_params(r: &FileRecord) -> [rusqlite::types::Value; 9] {
    use rusqlite::types::Value;
    [
        Value::Text(r.file_path.clone()),
        Value::Blob(r.checksum.to_vec()),
        Value::Integer(r.size as i64),
        Value::Integer(i64::from(r.archived)),
        Value::Integer(r.mtime_ns),
        Value::Blob(r.sha1.to_vec()),
        Value::Integer(i64::from(r.crc32c)),
        r.generation.map_or(Value::Null, Value::Integer),
        r.object_key.clone().map_or(Value::Null, Value::Text),
    ]
}

/// Makes a connection safe for a database that came from a target: SQLite's
/// defensive mode, no triggers or views, and schema-embedded SQL (index
/// expressions, defaults) limited to what cannot have side effects.
fn harden(conn: &Connection, path: &Path) -> Result<()> {
    use rusqlite::config::DbConfig;
    for (setting, on) in [
        (DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true),
        (DbConfig::SQLITE_DBCONFIG_TRUSTED_SCHEMA, false),
        (DbConfig::SQLITE_DBCONFIG_ENABLE_TRIGGER, false),
        (DbConfig::SQLITE_DBCONFIG_ENABLE_VIEW, false),
    ] {
        conn.set_db_config(setting, on).map_err(sql(path))?;
    }
    Ok(())
}

/// Checks, before any query touches its tables, that `schema` (`main` or an
/// attached journal) holds only what [`tables`] and [`INDEXES`] create.
fn check_schema(conn: &Connection, schema: &str, path: &Path) -> Result<()> {
    let untrusted = |reason: String| Error::Untrusted {
        path: path.display().to_string(),
        reason,
    };
    let expected: [(&str, &str); 3] = [
        ("manifest_metadata", "key, value"),
        ("files", FILE_COLUMNS),
        ("file_history", HISTORY_COLUMNS),
    ];
    let mut stmt = conn
        .prepare(&format!(
            "SELECT type, name, coalesce(sql, '') FROM {schema}.sqlite_schema"
        ))
        .map_err(sql(path))?;
    let objects: Vec<(String, String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .map_err(sql(path))?
        .collect::<rusqlite::Result<_>>()
        .map_err(sql(path))?;
    let squash = |s: &str| {
        s.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_ascii_lowercase()
    };
    for (kind, name, text) in &objects {
        match kind.as_str() {
            "table" => {
                if !expected.iter().any(|(t, _)| t == name) {
                    return Err(untrusted(format!("unknown table {name:?}")));
                }
                if !squash(text).starts_with("create table ") {
                    return Err(untrusted(format!("{name} is not a plain table")));
                }
            }
            "index" if name.starts_with("sqlite_autoindex_") && text.is_empty() => {}
            "index"
                if name == "files_by_content"
                    && squash(text).ends_with("on files (substr(checksum, 1, 8))") => {}
            other => return Err(untrusted(format!("unexpected {other} {name:?}"))),
        }
    }
    for (table, columns) in expected {
        let mut stmt = conn
            .prepare("SELECT name FROM pragma_table_info(?1, ?2)")
            .map_err(sql(path))?;
        let found: Vec<String> = stmt
            .query_map([table, schema], |r| r.get(0))
            .map_err(sql(path))?
            .collect::<rusqlite::Result<_>>()
            .map_err(sql(path))?;
        let want: Vec<&str> = columns.split(", ").collect();
        if found != want {
            return Err(untrusted(format!(
                "table {table} has columns {found:?}, not {want:?}"
            )));
        }
    }
    Ok(())
}

fn check_version(conn: &Connection, path: &Path) -> Result<()> {
    let found: Option<String> = conn
        .query_row(
            "SELECT value FROM main.manifest_metadata WHERE key = 'version'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(sql(path))?;
    if let Some(v) = found {
        let found = v.parse::<u32>().unwrap_or(u32::MAX);
        if found > SCHEMA_VERSION {
            return Err(Error::TooNew {
                path: path.display().to_string(),
                found,
                supported: SCHEMA_VERSION,
            });
        }
    }
    Ok(())
}

impl Manifest {
    /// Opens (creating if missing) the manifest at `path`.
    ///
    /// # Errors
    /// [`Error::Sqlite`] if the file is not a usable SQLite database;
    /// [`Error::TooNew`] if a newer build wrote it.
    pub fn open(path: &Path) -> Result<Self> {
        let existing = std::fs::metadata(path).is_ok_and(|m| m.len() > 0);
        let conn = Connection::open(path).map_err(sql(path))?;
        harden(&conn, path)?;
        // A manifest downloaded from the target is checked before it is used.
        if existing {
            check_schema(&conn, "main", path)?;
        }
        // The working copy is rebuilt from the store after a crash, so local
        // durability buys nothing; WAL lets worker threads read while we write.
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF; PRAGMA temp_store = FILE;",
        )
        .map_err(sql(path))?;
        conn.execute_batch(&tables("main")).map_err(sql(path))?;
        conn.execute_batch(INDEXES).map_err(sql(path))?;
        check_version(&conn, path)?;
        conn.execute(
            "INSERT OR IGNORE INTO main.manifest_metadata (key, value) VALUES ('version', ?1)",
            [SCHEMA_VERSION.to_string()],
        )
        .map_err(sql(path))?;
        conn.execute_batch(
            "CREATE TEMP TABLE IF NOT EXISTS seen (file_path TEXT PRIMARY KEY NOT NULL) WITHOUT ROWID;",
        )
        .map_err(sql(path))?;
        Ok(Manifest {
            conn,
            path: path.to_owned(),
            in_tx: false,
            journal: None,
            journal_rows: 0,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn tx(&mut self) -> Result<()> {
        if !self.in_tx {
            self.conn.execute_batch("BEGIN").map_err(sql(&self.path))?;
            self.in_tx = true;
        }
        Ok(())
    }

    /// Commits the writes made so far.
    ///
    /// # Errors
    /// [`Error::Sqlite`].
    pub fn commit(&mut self) -> Result<()> {
        if self.in_tx {
            self.conn.execute_batch("COMMIT").map_err(sql(&self.path))?;
            self.in_tx = false;
        }
        Ok(())
    }

    /// A read-only connection to the same file, for other threads. It sees what
    /// has been committed.
    ///
    /// # Errors
    /// [`Error::Sqlite`].
    pub fn reader(&self) -> Result<ManifestReader> {
        ManifestReader::open(&self.path)
    }

    /// The record for `file_path`.
    ///
    /// # Errors
    /// [`Error::Sqlite`] or [`Error::Malformed`].
    pub fn get(&self, file_path: &str) -> Result<Option<FileRecord>> {
        get(&self.conn, &self.path, file_path)
    }

    /// Some record whose content has this SHA-256 (archived ones too: their
    /// objects remain), preferring one stored at its own `library/` key.
    ///
    /// # Errors
    /// [`Error::Sqlite`] or [`Error::Malformed`].
    pub fn find_content(&self, sha256: &[u8; 32]) -> Result<Option<FileRecord>> {
        find_content(&self.conn, &self.path, sha256)
    }

    /// Inserts or replaces the record for `rec.file_path`, in the manifest and the journal.
    ///
    /// # Errors
    /// [`Error::Sqlite`].
    pub fn upsert(&mut self, rec: &FileRecord) -> Result<()> {
        self.tx()?;
        let p = file_params(rec);
        let mut schemas = vec!["main"];
        if self.journal.is_some() {
            schemas.push("journal");
        }
        for s in schemas {
            self.conn
                .prepare_cached(&format!(
                    "INSERT OR REPLACE INTO {s}.files ({FILE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
                ))
                .and_then(|mut st| st.execute(rusqlite::params_from_iter(p.iter())))
                .map_err(sql(&self.path))?;
        }
        self.journal_rows += u64::from(self.journal.is_some());
        Ok(())
    }

    /// Records a content the path used to have.
    ///
    /// # Errors
    /// [`Error::Sqlite`].
    pub fn add_history(&mut self, h: &HistoryRecord) -> Result<()> {
        self.tx()?;
        let f = &h.file;
        let mut schemas = vec!["main"];
        if self.journal.is_some() {
            schemas.push("journal");
        }
        for s in schemas {
            self.conn
                .prepare_cached(&format!(
                    "INSERT OR REPLACE INTO {s}.file_history ({HISTORY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
                ))
                .and_then(|mut st| {
                    st.execute(params![
                        f.file_path,
                        h.replaced_at,
                        h.reason,
                        f.checksum.to_vec(),
                        f.size as i64,
                        f.mtime_ns,
                        f.sha1.to_vec(),
                        i64::from(f.crc32c),
                        f.generation,
                        f.object_key
                    ])
                })
                .map_err(sql(&self.path))?;
        }
        self.journal_rows += u64::from(self.journal.is_some());
        Ok(())
    }

    /// Every history row of `file_path`, oldest first.
    ///
    /// # Errors
    /// [`Error::Sqlite`] or [`Error::Malformed`].
    pub fn history(&self, file_path: &str) -> Result<Vec<HistoryRecord>> {
        let mut st = self
            .conn
            .prepare_cached(&format!(
                "SELECT {HISTORY_COLUMNS} FROM main.file_history WHERE file_path = ?1 ORDER BY replaced_at"
            ))
            .map_err(sql(&self.path))?;
        let rows = st
            .query_map([file_path], history_row)
            .map_err(sql(&self.path))?;
        let mut out = Vec::new();
        for row in rows {
            let (raw, replaced_at, reason) = row.map_err(sql(&self.path))?;
            out.push(HistoryRecord {
                file: raw.finish(&self.path)?,
                replaced_at,
                reason,
            });
        }
        Ok(out)
    }

    /// Sets a `manifest_metadata` row.
    ///
    /// # Errors
    /// [`Error::Sqlite`].
    pub fn set_metadata(&mut self, key: &str, value: &str) -> Result<()> {
        self.tx()?;
        let mut schemas = vec!["main"];
        if self.journal.is_some() {
            schemas.push("journal");
        }
        for s in schemas {
            self.conn
                .execute(
                    &format!(
                        "INSERT OR REPLACE INTO {s}.manifest_metadata (key, value) VALUES (?1, ?2)"
                    ),
                    [key, value],
                )
                .map_err(sql(&self.path))?;
        }
        Ok(())
    }

    /// A `manifest_metadata` value.
    ///
    /// # Errors
    /// [`Error::Sqlite`].
    pub fn metadata(&self, key: &str) -> Result<Option<String>> {
        self.conn
            .query_row(
                "SELECT value FROM main.manifest_metadata WHERE key = ?1",
                [key],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql(&self.path))
    }

    /// Sets a `manifest_metadata` row in the open journal only: what describes
    /// that journal ([`RUN_PARTS`]), never replayed into a manifest.
    ///
    /// # Errors
    /// [`Error::Sqlite`]; none when no journal is open.
    pub fn set_journal_metadata(&mut self, key: &str, value: &str) -> Result<()> {
        if self.journal.is_none() {
            return Ok(());
        }
        self.tx()?;
        self.conn
            .execute(
                "INSERT OR REPLACE INTO journal.manifest_metadata (key, value) VALUES (?1, ?2)",
                [key, value],
            )
            .map_err(sql(&self.path))?;
        Ok(())
    }

    /// Starts writing every change also to a new journal file at `path`.
    /// Commits first (SQLite cannot attach inside a transaction).
    ///
    /// # Errors
    /// [`Error::Sqlite`].
    pub fn begin_journal(&mut self, path: &Path) -> Result<()> {
        self.end_journal()?;
        let _ = std::fs::remove_file(path);
        self.conn
            .execute("ATTACH DATABASE ?1 AS journal", [path.to_string_lossy()])
            .map_err(sql(path))?;
        self.conn
            .execute_batch(&tables("journal"))
            .map_err(sql(path))?;
        self.journal = Some(path.to_owned());
        self.journal_rows = 0;
        Ok(())
    }

    /// Rows written to the current journal.
    pub fn journal_rows(&self) -> u64 {
        self.journal_rows
    }

    /// Commits, closes the current journal and returns its file and row count
    /// (`None` if no journal was open).
    ///
    /// # Errors
    /// [`Error::Sqlite`].
    pub fn end_journal(&mut self) -> Result<Option<(PathBuf, u64)>> {
        self.commit()?;
        let Some(path) = self.journal.take() else {
            return Ok(None);
        };
        self.conn
            .execute_batch("DETACH DATABASE journal")
            .map_err(sql(&path))?;
        Ok(Some((path, std::mem::take(&mut self.journal_rows))))
    }

    /// Replays a journal (or a whole manifest) into this one: its rows replace ours.
    /// Returns the number of file rows applied.
    ///
    /// # Errors
    /// [`Error::Sqlite`] if `part` is not a manifest or journal.
    pub fn apply(&mut self, part: &Path) -> Result<u64> {
        self.commit()?;
        self.conn
            .execute("ATTACH DATABASE ?1 AS part", [part.to_string_lossy()])
            .map_err(sql(part))?;
        if let Err(e) = check_schema(&self.conn, "part", part) {
            let _ = self.conn.execute_batch("DETACH DATABASE part");
            return Err(e);
        }
        let res = (|| -> rusqlite::Result<u64> {
            self.conn.execute_batch("BEGIN")?;
            // Rows replayed from a part belong in the next save too.
            let mut targets = vec!["main"];
            if self.journal.is_some() {
                targets.push("journal");
            }
            let mut n = 0;
            for t in targets {
                n = self.conn.execute(
                    &format!("INSERT OR REPLACE INTO {t}.files ({FILE_COLUMNS}) SELECT {FILE_COLUMNS} FROM part.files"),
                    [],
                )? as u64;
                self.conn.execute(
                    &format!("INSERT OR REPLACE INTO {t}.file_history ({HISTORY_COLUMNS}) SELECT {HISTORY_COLUMNS} FROM part.file_history"),
                    [],
                )?;
                self.conn.execute(
                    &format!("INSERT OR REPLACE INTO {t}.manifest_metadata (key, value) SELECT key, value FROM part.manifest_metadata WHERE key NOT IN ('version', '{RUN_PARTS}')"),
                    [],
                )?;
            }
            self.conn.execute_batch("COMMIT")?;
            Ok(n)
        })();
        if res.is_err() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        let detach = self.conn.execute_batch("DETACH DATABASE part");
        let n = res.map_err(sql(part))?;
        detach.map_err(sql(part))?;
        if self.journal.is_some() {
            self.journal_rows += n;
        }
        Ok(n)
    }

    /// Notes that `file_path` exists in the source this run.
    ///
    /// # Errors
    /// [`Error::Sqlite`].
    pub fn mark_seen(&mut self, file_path: &str) -> Result<()> {
        self.tx()?;
        self.conn
            .prepare_cached("INSERT OR IGNORE INTO temp.seen (file_path) VALUES (?1)")
            .and_then(|mut st| st.execute([file_path]))
            .map_err(sql(&self.path))?;
        Ok(())
    }

    /// Marks every live row not seen this run as archived (its object stays) and
    /// returns how many. Call only after a complete walk.
    ///
    /// # Errors
    /// [`Error::Sqlite`].
    pub fn archive_unseen(&mut self) -> Result<u64> {
        self.tx()?;
        let unseen = "archived = 0 AND file_path NOT IN (SELECT file_path FROM temp.seen)";
        if self.journal.is_some() {
            self.conn
                .execute(
                    &format!(
                        "INSERT OR REPLACE INTO journal.files ({FILE_COLUMNS})
                         SELECT file_path, checksum, size, 1, mtime, sha1, crc32c, generation, object_key
                         FROM main.files WHERE {unseen}"
                    ),
                    [],
                )
                .map_err(sql(&self.path))?;
        }
        let n = self
            .conn
            .execute(
                &format!("UPDATE main.files SET archived = 1 WHERE {unseen}"),
                [],
            )
            .map_err(sql(&self.path))? as u64;
        if self.journal.is_some() {
            self.journal_rows += n;
        }
        Ok(n)
    }

    /// Totals over the files table.
    ///
    /// # Errors
    /// [`Error::Sqlite`].
    pub fn counts(&self) -> Result<Counts> {
        self.conn
            .query_row(
                "SELECT
                   COALESCE(SUM(archived = 0), 0),
                   COALESCE(SUM(archived = 1), 0),
                   COALESCE(SUM(CASE WHEN archived = 0 THEN size ELSE 0 END), 0)
                 FROM main.files",
                [],
                |r| {
                    Ok(Counts {
                        live: r.get::<_, i64>(0)? as u64,
                        archived: r.get::<_, i64>(1)? as u64,
                        live_bytes: r.get::<_, i64>(2)? as u64,
                    })
                },
            )
            .map_err(sql(&self.path))
    }

    /// Calls `f` for every file row in path order, streaming (memory stays flat).
    ///
    /// # Errors
    /// [`Error::Sqlite`] or [`Error::Malformed`], or the first error `f` returns.
    pub fn for_each_file(&self, f: impl FnMut(FileRecord) -> Result<()>) -> Result<()> {
        for_each_file(&self.conn, &self.path, f)
    }

    /// Writes a compact, self-contained copy of the manifest to `dest` (which must
    /// not exist): the snapshot that gets uploaded. The files table is copied with
    /// a bare `INSERT … SELECT *`, which SQLite's transfer optimisation turns into
    /// appends of whole records in key order, so leaf pages are about full (an
    /// `ORDER BY` copy splits them to ~90 %: 155 instead of 171 bytes per file at
    /// the benchmark's paths); the dedup index is left out (only a backup run needs it, and
    /// [`Manifest::open`] rebuilds it), which keeps the uploaded bytes per file low.
    ///
    /// # Errors
    /// [`Error::Sqlite`].
    pub fn snapshot(&mut self, dest: &Path) -> Result<()> {
        self.commit()?;
        {
            let c = Connection::open(dest).map_err(sql(dest))?;
            c.execute_batch("PRAGMA journal_mode = DELETE;")
                .map_err(sql(dest))?;
        }
        self.conn
            .execute("ATTACH DATABASE ?1 AS snap", [dest.to_string_lossy()])
            .map_err(sql(dest))?;
        let copy = (|| -> rusqlite::Result<()> {
            self.conn.execute_batch(&tables("snap"))?;
            self.conn.execute_batch(&format!(
                "BEGIN;
                 INSERT INTO snap.manifest_metadata (key, value) SELECT key, value FROM main.manifest_metadata ORDER BY key;
                 INSERT INTO snap.files SELECT * FROM main.files;
                 INSERT INTO snap.file_history ({HISTORY_COLUMNS}) SELECT {HISTORY_COLUMNS} FROM main.file_history
                     ORDER BY file_path, replaced_at, reason;
                 COMMIT;"
            ))
        })();
        if copy.is_err() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        let detach = self.conn.execute_batch("DETACH DATABASE snap");
        copy.map_err(sql(dest))?;
        detach.map_err(sql(dest))?;
        Ok(())
    }
}

fn get(conn: &Connection, path: &Path, file_path: &str) -> Result<Option<FileRecord>> {
    let raw = conn
        .prepare_cached(&format!(
            "SELECT {FILE_COLUMNS} FROM main.files WHERE file_path = ?1"
        ))
        .and_then(|mut st| st.query_row([file_path], |r| raw_file(r, 0)).optional())
        .map_err(sql(path))?;
    raw.map(|r| r.finish(path)).transpose()
}

fn find_content(conn: &Connection, path: &Path, sha256: &[u8; 32]) -> Result<Option<FileRecord>> {
    let raw = conn
        .prepare_cached(&format!(
            "SELECT {FILE_COLUMNS} FROM main.files
             WHERE substr(checksum, 1, 8) = substr(?1, 1, 8) AND checksum = ?1
             ORDER BY object_key IS NOT NULL, archived LIMIT 1"
        ))
        .and_then(|mut st| {
            st.query_row([sha256.to_vec()], |r| raw_file(r, 0))
                .optional()
        })
        .map_err(sql(path))?;
    raw.map(|r| r.finish(path)).transpose()
}

fn for_each_file(
    conn: &Connection,
    path: &Path,
    mut f: impl FnMut(FileRecord) -> Result<()>,
) -> Result<()> {
    let mut st = conn
        .prepare(&format!(
            "SELECT {FILE_COLUMNS} FROM main.files ORDER BY file_path"
        ))
        .map_err(sql(path))?;
    let rows = st.query_map([], |r| raw_file(r, 0)).map_err(sql(path))?;
    for row in rows {
        f(row.map_err(sql(path))?.finish(path)?)?;
    }
    Ok(())
}

/// A read-only view of a manifest, for threads other than the writer, and for
/// readers of downloaded manifests (restore, verify).
#[derive(Debug)]
pub struct ManifestReader {
    conn: Connection,
    path: PathBuf,
}

impl ManifestReader {
    /// Opens `path` read-only.
    ///
    /// # Errors
    /// [`Error::Sqlite`] if it is missing or not a manifest; [`Error::TooNew`].
    pub fn open(path: &Path) -> Result<Self> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sql(path))?;
        harden(&conn, path)?;
        check_schema(&conn, "main", path)?;
        conn.query_row("SELECT count(*) FROM main.files LIMIT 1", [], |_| Ok(()))
            .map_err(sql(path))?;
        check_version(&conn, path)?;
        Ok(ManifestReader {
            conn,
            path: path.to_owned(),
        })
    }

    /// The record for `file_path`.
    ///
    /// # Errors
    /// [`Error::Sqlite`] or [`Error::Malformed`].
    pub fn get(&self, file_path: &str) -> Result<Option<FileRecord>> {
        get(&self.conn, &self.path, file_path)
    }

    /// As [`Manifest::find_content`].
    ///
    /// # Errors
    /// [`Error::Sqlite`] or [`Error::Malformed`].
    pub fn find_content(&self, sha256: &[u8; 32]) -> Result<Option<FileRecord>> {
        find_content(&self.conn, &self.path, sha256)
    }

    /// As [`Manifest::for_each_file`].
    ///
    /// # Errors
    /// [`Error::Sqlite`] or [`Error::Malformed`], or the first error `f` returns.
    pub fn for_each_file(&self, f: impl FnMut(FileRecord) -> Result<()>) -> Result<()> {
        for_each_file(&self.conn, &self.path, f)
    }

    /// Calls `f` for every history row (the contents paths used to have), in
    /// path order, streaming.
    ///
    /// # Errors
    /// [`Error::Sqlite`] or [`Error::Malformed`], or the first error `f` returns.
    pub fn for_each_history(&self, mut f: impl FnMut(HistoryRecord) -> Result<()>) -> Result<()> {
        let mut st = self
            .conn
            .prepare(&format!(
                "SELECT {HISTORY_COLUMNS} FROM main.file_history ORDER BY file_path, replaced_at"
            ))
            .map_err(sql(&self.path))?;
        let rows = st.query_map([], history_row).map_err(sql(&self.path))?;
        for row in rows {
            let (raw, replaced_at, reason) = row.map_err(sql(&self.path))?;
            f(HistoryRecord {
                file: raw.finish(&self.path)?,
                replaced_at,
                reason,
            })?;
        }
        Ok(())
    }

    /// A `manifest_metadata` value.
    ///
    /// # Errors
    /// [`Error::Sqlite`].
    pub fn metadata(&self, key: &str) -> Result<Option<String>> {
        self.conn
            .query_row(
                "SELECT value FROM main.manifest_metadata WHERE key = ?1",
                [key],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql(&self.path))
    }
}
