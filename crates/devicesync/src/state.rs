//! The local state database (SQLite, `state.db` in the state directory): what is
//! known about each file, each album and each run, so a file is hashed once and
//! a file known to be on the server is never asked about again.
//!
//! Tables:
//! * `files`: one row per file path (bytes, so any file name fits): album, size,
//!   mtime (ns), SHA-1 and when it was computed, status (`pending` = hashed but not
//!   yet on the server, `uploaded`, `duplicate`, `failed`), the remote asset id,
//!   the last error, the number of upload attempts and when the last one was, and
//!   the server album the asset was added to (album sync), and whether it is a
//!   live photo's hidden motion video.
//! * `albums`: per device album, the last backup time.
//! * `runs`: one row per run with its counts.
//! * `meta`: the server and user the records belong to, the device id, and the
//!   server's media types (so `status` works offline).

use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::Serialize;

use crate::summary::StopReason;
use crate::{Error, Result};

/// The database's file name in the state directory.
pub const STATE_FILE: &str = "state.db";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    id INTEGER PRIMARY KEY,
    path BLOB NOT NULL UNIQUE,
    album TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    sha1 BLOB,
    hashed_at TEXT,
    status TEXT NOT NULL,
    asset_id TEXT,
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_attempt TEXT,
    album_id TEXT
);
CREATE INDEX IF NOT EXISTS files_by_sha1 ON files (sha1);
CREATE INDEX IF NOT EXISTS files_by_status ON files (status);
CREATE TABLE IF NOT EXISTS albums (name TEXT PRIMARY KEY, last_backup TEXT);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT NOT NULL,
    total INTEGER NOT NULL,
    uploaded INTEGER NOT NULL,
    duplicates INTEGER NOT NULL,
    failed INTEGER NOT NULL,
    skipped INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    complete INTEGER NOT NULL,
    stop_reason TEXT
);
";

/// Columns added after the first release, for databases made before them.
const ADDED_COLUMNS: &[(&str, &str, &str)] = &[
    ("runs", "stop_reason", "TEXT"),
    ("files", "hidden", "INTEGER NOT NULL DEFAULT 0"),
];

/// Where a file stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileStatus {
    /// Hashed, not yet known to be on the server.
    Pending,
    /// Uploaded by us (the server answered 201).
    Uploaded,
    /// Already on the server (200, or bulk-upload-check said so).
    Duplicate,
    /// The last attempt failed; `error` says why.
    Failed,
}

impl FileStatus {
    fn as_str(self) -> &'static str {
        match self {
            FileStatus::Pending => "pending",
            FileStatus::Uploaded => "uploaded",
            FileStatus::Duplicate => "duplicate",
            FileStatus::Failed => "failed",
        }
    }
    fn parse(s: &str) -> FileStatus {
        match s {
            "uploaded" => FileStatus::Uploaded,
            "duplicate" => FileStatus::Duplicate,
            "failed" => FileStatus::Failed,
            _ => FileStatus::Pending,
        }
    }
    /// Whether the server has the content (uploaded or duplicate).
    pub fn on_server(self) -> bool {
        matches!(self, FileStatus::Uploaded | FileStatus::Duplicate)
    }
}

/// One row of `files`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct FileRecord {
    /// The row id (what `device-sync failed --retry ID` takes).
    pub id: i64,
    /// The file.
    pub path: PathBuf,
    /// Its device album.
    pub album: String,
    /// Size when recorded.
    pub size: u64,
    /// Modification time when recorded, nanoseconds since 1970.
    pub mtime_ns: i64,
    /// SHA-1 of the content, when hashed.
    #[serde(serialize_with = "ser_sha1")]
    pub sha1: Option<[u8; 20]>,
    /// Status.
    pub status: FileStatus,
    /// The server's asset id (uploaded or duplicate).
    pub asset_id: Option<String>,
    /// The last error (failed).
    pub error: Option<String>,
    /// Upload attempts so far.
    pub attempts: u32,
    /// When the last attempt was (RFC 3339).
    pub last_attempt: Option<String>,
    /// When the SHA-1 was computed (RFC 3339).
    pub hashed_at: Option<String>,
    /// The server album the asset was added to by album sync.
    pub album_id: Option<String>,
}

fn ser_sha1<S: serde::Serializer>(v: &Option<[u8; 20]>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(h) => s.serialize_some(&imb_hash::hex(h)),
        None => s.serialize_none(),
    }
}

impl FileRecord {
    /// Whether the file still has the recorded size and mtime.
    pub fn matches(&self, size: u64, mtime_ns: i64) -> bool {
        self.size == size && self.mtime_ns == mtime_ns
    }
}

/// One row of `runs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RunRecord {
    /// `sync` or `retry`.
    pub kind: String,
    /// Start (RFC 3339).
    pub started_at: String,
    /// End (RFC 3339).
    pub finished_at: String,
    /// Candidates.
    pub total: u64,
    /// Uploaded.
    pub uploaded: u64,
    /// Duplicates.
    pub duplicates: u64,
    /// Failed.
    pub failed: u64,
    /// Skipped (any reason).
    pub skipped: u64,
    /// Bytes uploaded.
    pub bytes: u64,
    /// Whether the run finished everything it found (no failures, not stopped).
    pub complete: bool,
    /// Why it stopped early, if it did.
    pub stop_reason: Option<StopReason>,
}

/// Totals over `files`: the seed's statistics.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Totals {
    /// Files recorded.
    pub total: u64,
    /// Uploaded by us.
    pub uploaded: u64,
    /// Found already on the server.
    pub duplicates: u64,
    /// Failed.
    pub failed: u64,
    /// Hashed, not yet on the server (new, or waiting for quota).
    pub pending: u64,
}

/// Nanoseconds since 1970 (negative before).
pub fn mtime_ns(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_nanos()).map_or(i64::MIN, |n| -n),
    }
}

/// Now, RFC 3339 UTC to the second.
pub(crate) fn now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// The state database. Not `Sync`: the engine keeps it behind a mutex and never
/// holds it across an await.
#[derive(Debug)]
pub struct StateDb {
    conn: Connection,
    path: PathBuf,
}

fn path_bytes(p: &Path) -> &[u8] {
    p.as_os_str().as_bytes()
}

const COLUMNS: &str = "id, path, album, size, mtime_ns, sha1, status, asset_id, error, attempts, last_attempt, hashed_at, album_id";

fn record(row: &Row<'_>) -> rusqlite::Result<FileRecord> {
    let path: Vec<u8> = row.get(1)?;
    let sha1: Option<Vec<u8>> = row.get(5)?;
    let status: String = row.get(6)?;
    Ok(FileRecord {
        id: row.get(0)?,
        path: PathBuf::from(std::ffi::OsString::from_vec(path)),
        album: row.get(2)?,
        size: row.get::<_, i64>(3)?.max(0) as u64,
        mtime_ns: row.get(4)?,
        sha1: sha1.and_then(|v| v.try_into().ok()),
        status: FileStatus::parse(&status),
        asset_id: row.get(7)?,
        error: row.get(8)?,
        attempts: row.get::<_, i64>(9)?.clamp(0, i64::from(u32::MAX)) as u32,
        last_attempt: row.get(10)?,
        hashed_at: row.get(11)?,
        album_id: row.get(12)?,
    })
}

fn i(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl StateDb {
    /// Opens (creating) `state.db` in `dir`, creating the directory too.
    ///
    /// # Errors
    /// [`Error::Io`] if the directory cannot be made; [`Error::State`] if the
    /// database cannot be opened or its schema created.
    pub fn open(dir: &Path) -> Result<StateDb> {
        std::fs::create_dir_all(dir).map_err(crate::error::io_err(dir))?;
        let path = dir.join(STATE_FILE);
        let conn = Connection::open(&path).map_err(|source| Error::State {
            path: path.display().to_string(),
            source,
        })?;
        let db = StateDb { conn, path };
        db.conn
            .busy_timeout(std::time::Duration::from_secs(10))
            .map_err(db.err())?;
        db.conn
            .execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")
            .map_err(db.err())?;
        db.conn.execute_batch(SCHEMA).map_err(db.err())?;
        for (table, column, ty) in ADDED_COLUMNS {
            let has: bool = db
                .conn
                .query_row(
                    &format!("SELECT COUNT(*) FROM pragma_table_info('{table}') WHERE name = ?1"),
                    [column],
                    |r| r.get::<_, i64>(0),
                )
                .map(|n| n > 0)
                .map_err(db.err())?;
            if !has {
                db.conn
                    .execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {ty}"))
                    .map_err(db.err())?;
            }
        }
        Ok(db)
    }

    /// Opens an existing database read-only; `None` when there is none yet.
    ///
    /// # Errors
    /// [`Error::State`] if it exists but cannot be read.
    pub fn open_existing(dir: &Path) -> Result<Option<StateDb>> {
        if !dir.join(STATE_FILE).is_file() {
            return Ok(None);
        }
        StateDb::open(dir).map(Some)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> Error + '_ {
        |source| Error::State {
            path: self.path.display().to_string(),
            source,
        }
    }

    /// A `meta` value.
    ///
    /// # Errors
    /// [`Error::State`].
    pub fn meta(&self, key: &str) -> Result<Option<String>> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(self.err())
    }

    /// Sets a `meta` value.
    ///
    /// # Errors
    /// [`Error::State`].
    pub fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [key, value],
            )
            .map(drop)
            .map_err(self.err())
    }

    /// Removes a `meta` value.
    ///
    /// # Errors
    /// [`Error::State`].
    pub fn delete_meta(&self, key: &str) -> Result<()> {
        self.conn
            .execute("DELETE FROM meta WHERE key = ?1", [key])
            .map(drop)
            .map_err(self.err())
    }

    /// The record of `path`.
    ///
    /// # Errors
    /// [`Error::State`].
    pub fn get(&self, path: &Path) -> Result<Option<FileRecord>> {
        self.conn
            .prepare_cached(&format!("SELECT {COLUMNS} FROM files WHERE path = ?1"))
            .and_then(|mut st| st.query_row([path_bytes(path)], record).optional())
            .map_err(self.err())
    }

    /// The record with row id `id`.
    ///
    /// # Errors
    /// [`Error::State`].
    pub fn get_id(&self, id: i64) -> Result<Option<FileRecord>> {
        self.conn
            .prepare_cached(&format!("SELECT {COLUMNS} FROM files WHERE id = ?1"))
            .and_then(|mut st| st.query_row([id], record).optional())
            .map_err(self.err())
    }

    /// Records a fresh hash of `path`: the content is new or changed, so it is
    /// `pending` with no asset id (earlier attempts are forgotten with the old content).
    ///
    /// # Errors
    /// [`Error::State`].
    pub fn record_hash(
        &self,
        path: &Path,
        album: &str,
        size: u64,
        mtime_ns: i64,
        sha1: &[u8; 20],
    ) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO files (path, album, size, mtime_ns, sha1, hashed_at, status, attempts)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', 0)
                 ON CONFLICT (path) DO UPDATE SET album = excluded.album, size = excluded.size,
                   mtime_ns = excluded.mtime_ns, sha1 = excluded.sha1,
                   hashed_at = excluded.hashed_at, status = 'pending', asset_id = NULL,
                   error = NULL, attempts = 0, last_attempt = NULL, album_id = NULL",
            )
            .and_then(|mut st| {
                st.execute(params![
                    path_bytes(path),
                    album,
                    i(size),
                    mtime_ns,
                    &sha1[..],
                    now()
                ])
            })
            .map(drop)
            .map_err(self.err())
    }

    /// Records that the server has `path`'s content as `asset_id`; `attempted`
    /// says whether this came from an upload (counted as an attempt).
    ///
    /// # Errors
    /// [`Error::State`].
    pub fn record_on_server(
        &self,
        path: &Path,
        status: FileStatus,
        asset_id: &str,
        attempted: bool,
    ) -> Result<()> {
        let bump = i64::from(attempted);
        self.conn
            .prepare_cached(
                "UPDATE files SET status = ?2, asset_id = ?3, error = NULL,
                   attempts = attempts + ?4,
                   last_attempt = CASE WHEN ?4 = 1 THEN ?5 ELSE last_attempt END
                 WHERE path = ?1",
            )
            .and_then(|mut st| {
                st.execute(params![
                    path_bytes(path),
                    status.as_str(),
                    asset_id,
                    bump,
                    now()
                ])
            })
            .map(drop)
            .map_err(self.err())
    }

    /// Records a failure of `path` (inserting a row if it had none, e.g. a file
    /// that could not even be read for hashing).
    ///
    /// # Errors
    /// [`Error::State`].
    pub fn record_failure(
        &self,
        path: &Path,
        album: &str,
        size: u64,
        mtime_ns: i64,
        error: &str,
    ) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO files (path, album, size, mtime_ns, status, error, attempts, last_attempt)
                 VALUES (?1, ?2, ?3, ?4, 'failed', ?5, 1, ?6)
                 ON CONFLICT (path) DO UPDATE SET status = 'failed', error = excluded.error,
                   attempts = attempts + 1, last_attempt = excluded.last_attempt",
            )
            .and_then(|mut st| {
                st.execute(params![
                    path_bytes(path),
                    album,
                    i(size),
                    mtime_ns,
                    error,
                    now()
                ])
            })
            .map(drop)
            .map_err(self.err())
    }

    /// Forgets `path` (it was deleted).
    ///
    /// # Errors
    /// [`Error::State`].
    pub fn forget(&self, path: &Path) -> Result<()> {
        self.conn
            .execute("DELETE FROM files WHERE path = ?1", [path_bytes(path)])
            .map(drop)
            .map_err(self.err())
    }

    /// An asset id the server already has for this content, from any path.
    ///
    /// # Errors
    /// [`Error::State`].
    pub fn asset_for_sha1(&self, sha1: &[u8; 20]) -> Result<Option<String>> {
        self.conn
            .prepare_cached(
                "SELECT asset_id FROM files WHERE sha1 = ?1
                   AND status IN ('uploaded', 'duplicate') AND asset_id IS NOT NULL LIMIT 1",
            )
            .and_then(|mut st| st.query_row([&sha1[..]], |r| r.get(0)).optional())
            .map_err(self.err())
    }

    /// Every failed file, by id.
    ///
    /// # Errors
    /// [`Error::State`].
    pub fn failed(&self) -> Result<Vec<FileRecord>> {
        self.query(
            &format!("SELECT {COLUMNS} FROM files WHERE status = 'failed' ORDER BY id"),
            [],
        )
    }

    /// `path` is a live photo's motion video: shown through its still, never
    /// added to an album on its own.
    ///
    /// # Errors
    /// [`Error::State`].
    pub fn set_hidden(&self, path: &Path) -> Result<()> {
        self.conn
            .execute(
                "UPDATE files SET hidden = 1 WHERE path = ?1",
                [path_bytes(path)],
            )
            .map(drop)
            .map_err(self.err())
    }

    /// Files on the server not yet added to a server album, by album then path.
    ///
    /// # Errors
    /// [`Error::State`].
    pub fn not_in_album(&self) -> Result<Vec<FileRecord>> {
        self.query(
            &format!(
                "SELECT {COLUMNS} FROM files WHERE status IN ('uploaded', 'duplicate')
                   AND asset_id IS NOT NULL AND album_id IS NULL AND hidden = 0
                 ORDER BY album, path"
            ),
            [],
        )
    }

    fn query<P: rusqlite::Params>(&self, sql: &str, p: P) -> Result<Vec<FileRecord>> {
        self.conn
            .prepare(sql)
            .and_then(|mut st| st.query_map(p, record)?.collect())
            .map_err(self.err())
    }

    /// Marks the files with these row ids as added to server album `album_id`.
    ///
    /// # Errors
    /// [`Error::State`].
    pub fn mark_in_album(&self, ids: &[i64], album_id: &str) -> Result<()> {
        let tx = self.conn.unchecked_transaction().map_err(self.err())?;
        {
            let mut st = tx
                .prepare_cached("UPDATE files SET album_id = ?2 WHERE id = ?1")
                .map_err(self.err())?;
            for id in ids {
                st.execute(params![id, album_id]).map_err(self.err())?;
            }
        }
        tx.commit().map_err(self.err())
    }

    /// Forgets every "on the server" fact (the server or user changed): rows go
    /// back to `pending`, keeping their hashes.
    ///
    /// # Errors
    /// [`Error::State`].
    pub fn forget_server(&self) -> Result<u64> {
        self.conn
            .execute(
                "UPDATE files SET status = 'pending', asset_id = NULL, album_id = NULL,
                   error = NULL, attempts = 0
                 WHERE status <> 'pending' AND sha1 IS NOT NULL",
                [],
            )
            .map(|n| n as u64)
            .map_err(self.err())
    }

    /// Up to `limit` rows after row id `after` that are on the server with a
    /// hash and an asset id, by id: (id, SHA-1, asset id).
    ///
    /// # Errors
    /// [`Error::State`].
    pub fn on_server_page(&self, after: i64, limit: usize) -> Result<Vec<(i64, [u8; 20], String)>> {
        self.conn
            .prepare_cached(
                "SELECT id, sha1, asset_id FROM files
                 WHERE id > ?1 AND status IN ('uploaded', 'duplicate')
                   AND sha1 IS NOT NULL AND asset_id IS NOT NULL
                 ORDER BY id LIMIT ?2",
            )
            .and_then(|mut st| {
                st.query_map(params![after, i(limit as u64)], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?, r.get(2)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map(|rows| {
                rows.into_iter()
                    .filter_map(|(id, h, a)| Some((id, <[u8; 20]>::try_from(h).ok()?, a)))
                    .collect()
            })
            .map_err(self.err())
    }

    /// The server no longer has these rows' content: back to pending, hashes
    /// kept, so the next scan takes them without reading them again.
    ///
    /// # Errors
    /// [`Error::State`].
    pub fn requeue(&self, ids: &[i64]) -> Result<()> {
        self.batch(|db| {
            let mut st = db
                .conn
                .prepare_cached(
                    "UPDATE files SET status = 'pending', asset_id = NULL, album_id = NULL,
                       error = NULL, attempts = 0 WHERE id = ?1",
                )
                .map_err(db.err())?;
            for id in ids {
                st.execute([id]).map_err(db.err())?;
            }
            Ok(())
        })
    }

    /// Row `id`'s content is on the server as `asset_id`.
    ///
    /// # Errors
    /// [`Error::State`].
    pub fn set_asset(&self, id: i64, asset_id: &str) -> Result<()> {
        self.conn
            .execute(
                "UPDATE files SET asset_id = ?2, album_id = NULL WHERE id = ?1",
                params![id, asset_id],
            )
            .map(drop)
            .map_err(self.err())
    }

    /// Sets an album's last backup time.
    ///
    /// # Errors
    /// [`Error::State`].
    pub fn set_album_backup(&self, name: &str, at: &str) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO albums (name, last_backup) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET last_backup = excluded.last_backup",
                [name, at],
            )
            .map(drop)
            .map_err(self.err())
    }

    /// An album's last backup time.
    ///
    /// # Errors
    /// [`Error::State`].
    pub fn album_backup(&self, name: &str) -> Result<Option<String>> {
        self.conn
            .query_row(
                "SELECT last_backup FROM albums WHERE name = ?1",
                [name],
                |r| r.get(0),
            )
            .optional()
            .map(Option::flatten)
            .map_err(self.err())
    }

    /// Records a run.
    ///
    /// # Errors
    /// [`Error::State`].
    pub fn record_run(&self, r: &RunRecord) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO runs (kind, started_at, finished_at, total, uploaded, duplicates,
                   failed, skipped, bytes, complete, stop_reason)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    r.kind,
                    r.started_at,
                    r.finished_at,
                    i(r.total),
                    i(r.uploaded),
                    i(r.duplicates),
                    i(r.failed),
                    i(r.skipped),
                    i(r.bytes),
                    r.complete,
                    r.stop_reason.map(StopReason::as_str)
                ],
            )
            .map(drop)
            .map_err(self.err())
    }

    /// The latest run.
    ///
    /// # Errors
    /// [`Error::State`].
    pub fn last_run(&self) -> Result<Option<RunRecord>> {
        self.run_where("1")
    }

    /// The latest run that was not stopped early (by the quota or a signal): the
    /// seed's "Last backup". Failed files do not make a run stopped; they are
    /// counted apart.
    ///
    /// # Errors
    /// [`Error::State`].
    pub fn last_finished_run(&self) -> Result<Option<RunRecord>> {
        self.run_where("stop_reason IS NULL")
    }

    fn run_where(&self, cond: &str) -> Result<Option<RunRecord>> {
        self.conn
            .query_row(
                &format!(
                    "SELECT kind, started_at, finished_at, total, uploaded, duplicates, failed,
                       skipped, bytes, complete, stop_reason FROM runs WHERE {cond}
                     ORDER BY id DESC LIMIT 1"
                ),
                [],
                |r| {
                    let n = |k: usize| r.get::<_, i64>(k).map(|v| v.max(0) as u64);
                    Ok(RunRecord {
                        kind: r.get(0)?,
                        started_at: r.get(1)?,
                        finished_at: r.get(2)?,
                        total: n(3)?,
                        uploaded: n(4)?,
                        duplicates: n(5)?,
                        failed: n(6)?,
                        skipped: n(7)?,
                        bytes: n(8)?,
                        complete: r.get(9)?,
                        stop_reason: r
                            .get::<_, Option<String>>(10)?
                            .as_deref()
                            .and_then(StopReason::parse),
                    })
                },
            )
            .optional()
            .map_err(self.err())
    }

    /// Totals over every recorded file.
    ///
    /// # Errors
    /// [`Error::State`].
    pub fn totals(&self) -> Result<Totals> {
        let mut t = Totals::default();
        let mut st = self
            .conn
            .prepare("SELECT status, COUNT(*) FROM files GROUP BY status")
            .map_err(self.err())?;
        let rows = st
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .map_err(self.err())?;
        for row in rows {
            let (status, n) = row.map_err(self.err())?;
            let n = n.max(0) as u64;
            t.total += n;
            match FileStatus::parse(&status) {
                FileStatus::Uploaded => t.uploaded += n,
                FileStatus::Duplicate => t.duplicates += n,
                FileStatus::Failed => t.failed += n,
                FileStatus::Pending => t.pending += n,
            }
        }
        Ok(t)
    }

    /// Runs `f` in one transaction (many small writes at once).
    ///
    /// # Errors
    /// [`Error::State`], or `f`'s error (the transaction is then rolled back).
    pub fn batch<T>(&self, f: impl FnOnce(&StateDb) -> Result<T>) -> Result<T> {
        let tx = self.conn.unchecked_transaction().map_err(self.err())?;
        let out = f(self)?;
        tx.commit().map_err(self.err())?;
        Ok(out)
    }
}
