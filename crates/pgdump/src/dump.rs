//! [`dump`]: `pg_dump` → gzip → a streamed create in the store.
//!
//! The dump never touches local disk: `pg_dump`'s standard output is read in
//! 1 MiB chunks, the chunks are deflated on tokio's blocking pool (several at once,
//! see `gzip.rs`), and the compressed pieces are written in order to an
//! [`imb_storage::Upload`]. Memory is bounded by the chunks in flight (about
//! 2 MiB per compression thread, plus the chunk being read). Nothing exists at the dump's name until
//! `pg_dump` has exited 0 and the upload is completed: the last piece and the gzip
//! trailer are held back until then, and any failure aborts the upload.

use std::collections::VecDeque;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use flate2::Crc;
use imb_storage::{Key, ObjectCreate, PutOptions, Upload};
use serde::Serialize;
use tokio::io::AsyncReadExt;
use tokio::process::{ChildStderr, ChildStdout, Command};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::conn::Auth;
use crate::gzip::{self, Piece};
use crate::version::{Major, major_from_num, parse_tool_version};
use crate::{Connection, Error, Result};
use imb_layout::DumpName;

/// How much of `pg_dump`'s output is compressed as one piece.
const CHUNK: usize = 1024 * 1024;
/// The default compression threads' cap: one pg_dump produces SQL at roughly four
/// cores' worth of deflate (about 85 MB/s against 25 MB/s per core, measured).
const MAX_DEFAULT_THREADS: usize = 4;
/// How much of a child's error output is kept (the end of it, where errors are).
const STDERR_KEEP: usize = 32 * 1024;

/// How to dump.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DumpOptions {
    /// The `pg_dump` to run (default `pg_dump`, found on `PATH`). It must be at least
    /// the server's major version.
    pub pg_dump: PathBuf,
    /// The `psql` that reads the server and Immich versions (default `psql`; when left
    /// at the default and `pg_dump` is a path whose directory has a `psql`, that one).
    pub psql: PathBuf,
    /// The Immich version for the dump's name, instead of reading `version_history`.
    pub immich_version: Option<String>,
    /// The storage class to create the dump in (issue 7: STANDARD by default, which
    /// the caller decides; `None` leaves it to the store).
    pub storage_class: Option<String>,
    /// Gzip level, 0 (store) to 9 (smallest); default 6, as `gzip`.
    pub compression_level: u32,
    /// How many chunks are compressed at once (default: the number of CPUs, at most
    /// 4, which is about what one `pg_dump` can feed). The output is one standard
    /// gzip member whatever the number; each thread holds about 2 MiB.
    pub compression_threads: usize,
}

impl Default for DumpOptions {
    fn default() -> Self {
        DumpOptions {
            pg_dump: PathBuf::from("pg_dump"),
            psql: PathBuf::from("psql"),
            immich_version: None,
            storage_class: None,
            compression_level: 6,
            compression_threads: std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(MAX_DEFAULT_THREADS),
        }
    }
}

/// What a dump stored. Serializable: the backup `--json` summary embeds it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct DumpReport {
    /// The object's key, `database/{ts}-immich-v{version}.sql.gz`.
    pub key: String,
    /// Bytes stored (compressed).
    pub bytes: u64,
    /// Bytes of SQL `pg_dump` produced (uncompressed).
    pub sql_bytes: u64,
    /// Wall time from the first query to the completed upload, in seconds.
    pub duration_s: f64,
    /// The Immich version in the name; `None` when it was unknown.
    pub immich_version: Option<String>,
    /// The server's version (`15.18`).
    pub server_version: String,
}

/// Dumps the database `conn` names into `store` as
/// `database/{ts}-immich-v{version}.sql.gz` (`ts` from `now`, UTC), with
/// `pg_dump --clean --if-exists`, the flags of Immich's own dumps, so Immich's
/// restore procedure accepts it.
///
/// Before anything is written, `pg_dump --version` is compared with the server's
/// version, and the Immich version is read from `version_history` (newest
/// `createdAt`) unless [`DumpOptions::immich_version`] is set; when neither gives
/// one the name says `unknown` and a warning is logged. The password reaches the
/// children through a temporary passfile (see [`Connection`]).
///
/// Needs a tokio runtime with I/O enabled (child processes) and the blocking pool.
///
/// # Errors
/// [`Error::InvalidConfig`] for bad options; [`Error::Spawn`] when `pg_dump` or
/// `psql` cannot run; [`Error::Connect`] when the server is unreachable or refuses
/// the login; [`Error::VersionMismatch`] when `pg_dump` is older than the server;
/// [`Error::PgDump`] when `pg_dump` fails or is killed; [`Error::Storage`] when the
/// store fails. On every error no object is left at the dump's name.
pub async fn dump(
    store: &dyn ObjectCreate,
    conn: &Connection,
    opts: &DumpOptions,
    now: SystemTime,
) -> Result<DumpReport> {
    if opts.compression_level > 9 {
        return Err(Error::invalid(
            "compression_level",
            format!("{} is not a gzip level (0 to 9)", opts.compression_level),
        ));
    }
    let started = Instant::now();
    let target = conn.to_string();
    let auth = Auth::prepare(conn)?;

    let (dump_major, dump_version) = tool_version("pg_dump", &opts.pg_dump).await?;
    let psql = psql_path(opts);
    let server = server_info(&psql, conn, &auth).await?;
    tracing::debug!(
        target = %target,
        pg_dump_version = %dump_version,
        server_version = %server.version,
        "versions"
    );
    if dump_major < server.major {
        return Err(Error::VersionMismatch {
            path: opts.pg_dump.clone(),
            pg_dump_version: dump_version,
            server_version: server.version,
            server_major: server.major.to_string(),
        });
    }
    let immich_version = match &opts.immich_version {
        Some(v) => Some(v.clone()),
        None if server.has_version_history => immich_version(&psql, conn, &auth).await?,
        None => None,
    };
    let name = DumpName::new(now, immich_version.as_deref());
    if name.immich_version.is_none() {
        tracing::warn!(
            target = %target,
            "the Immich version is unknown (no version_history rows and no immich_version \
             setting); the dump is named 'unknown'"
        );
    }
    let key = Key::parse(name.key())
        .map_err(|e| Error::invalid("immich_version", format!("gives a bad object name: {e}")))?;

    let mut put = PutOptions::default()
        .with_metadata("pg-server-version", server.version.clone())
        .with_metadata("pg-dump-version", dump_version.clone());
    if let Some(v) = &name.immich_version {
        put = put.with_metadata("immich-version", v.clone());
    }
    if let Some(class) = &opts.storage_class {
        put = put.with_storage_class(class.clone());
    }
    put.content_type = Some("application/gzip".to_owned());

    tracing::info!(key = %key, target = %target, pg_dump = %opts.pg_dump.display(), "database dump started");
    let mut upload = store.create_upload(&key, put).await?;

    let mut cmd = Command::new(&opts.pg_dump);
    cmd.env_clear()
        .envs(crate::conn::child_env())
        .args(["--clean", "--if-exists", "--no-password", "--dbname"])
        .arg(conn.conninfo())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    auth.apply(&mut cmd);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(source) => {
            abort(upload, &key).await;
            return Err(Error::Spawn {
                program: "pg_dump",
                path: opts.pg_dump.clone(),
                source,
            });
        }
    };
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    let threads = opts.compression_threads.max(1);
    let (tx, rx) = mpsc::channel(threads);
    let (_, pumped, err_text) = tokio::join!(
        read_chunks(stdout, tx),
        async {
            let r = compress_and_write(rx, upload.as_mut(), opts.compression_level, threads).await;
            if r.is_err() {
                // Stop pg_dump at once instead of letting it run into a closed pipe.
                let _ = child.start_kill();
            }
            r
        },
        collect_stderr(stderr),
    );
    let status = child.wait().await;
    let err_text = conn.redact(&err_text);

    let pumped = match pumped {
        Ok(p) => p,
        Err(e) => {
            abort(upload, &key).await;
            return Err(e);
        }
    };
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => {
            abort(upload, &key).await;
            tracing::warn!(key = %key, status = %describe(s), "pg_dump failed; nothing stored");
            return Err(Error::PgDump {
                status: describe(s),
                stderr: err_text,
            });
        }
        Err(e) => {
            abort(upload, &key).await;
            return Err(Error::io("waiting for pg_dump", e));
        }
    }
    if !err_text.is_empty() {
        tracing::warn!(key = %key, stderr = %err_text, "pg_dump succeeded with messages");
    }
    let tail_len = pumped.tail.len() as u64;
    if let Err(e) = upload.write(Bytes::from(pumped.tail)).await {
        abort(upload, &key).await;
        return Err(e.into());
    }
    let put = upload.complete().await?;
    let bytes = if put.size > 0 {
        put.size
    } else {
        pumped.stored + tail_len
    };
    let report = DumpReport {
        key: key.to_string(),
        bytes,
        sql_bytes: pumped.sql,
        duration_s: started.elapsed().as_secs_f64(),
        immich_version: name.immich_version,
        server_version: server.version,
    };
    tracing::info!(
        key = %report.key,
        bytes = report.bytes,
        sql_bytes = report.sql_bytes,
        duration_s = report.duration_s,
        "database dump stored"
    );
    Ok(report)
}

/// Abandons an upload after a failure; the failure being reported matters more than
/// an abort that failed too, which is only logged.
async fn abort(upload: Box<dyn Upload>, key: &Key) {
    if let Err(e) = upload.abort().await {
        tracing::warn!(key = %key, error = %e, "aborting the dump upload failed");
    }
}

/// The `psql` to use: a `psql` next to a configured `pg_dump` path beats the one on
/// `PATH`, so pointing `pg_dump` at `/usr/lib/postgresql/17/bin/pg_dump` is enough.
fn psql_path(opts: &DumpOptions) -> PathBuf {
    if opts.psql == Path::new("psql")
        && let Some(dir) = opts.pg_dump.parent().filter(|d| !d.as_os_str().is_empty())
        && dir.join("psql").is_file()
    {
        return dir.join("psql");
    }
    opts.psql.clone()
}

/// Runs `program --version` and parses it.
async fn tool_version(program: &'static str, path: &Path) -> Result<(Major, String)> {
    let out = Command::new(path)
        .env_clear()
        .envs(crate::conn::child_env())
        .arg("--version")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|source| Error::Spawn {
            program,
            path: path.to_owned(),
            source,
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    match parse_tool_version(&text) {
        Some(v) if out.status.success() => Ok(v),
        _ => Err(Error::UnexpectedOutput {
            program,
            path: path.to_owned(),
            output: format!(
                "{}{}",
                text.trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        }),
    }
}

#[derive(Debug)]
struct ServerInfo {
    major: Major,
    /// `15.18`: the first word of `server_version`.
    version: String,
    has_version_history: bool,
}

async fn server_info(psql: &Path, conn: &Connection, auth: &Auth) -> Result<ServerInfo> {
    let out = query(
        psql,
        conn,
        auth,
        "SELECT current_setting('server_version_num'), current_setting('server_version'), \
         to_regclass('version_history') IS NOT NULL",
    )
    .await?;
    let unexpected = || Error::UnexpectedOutput {
        program: "psql",
        path: psql.to_owned(),
        output: out.clone(),
    };
    let mut fields = out.trim_end().split('\t');
    let num: u32 = fields
        .next()
        .and_then(|n| n.parse().ok())
        .ok_or_else(unexpected)?;
    let version = fields
        .next()
        .and_then(|v| v.split_whitespace().next())
        .ok_or_else(unexpected)?
        .to_owned();
    let has_version_history = fields.next().ok_or_else(unexpected)? == "t";
    Ok(ServerInfo {
        major: major_from_num(num),
        version,
        has_version_history,
    })
}

async fn immich_version(psql: &Path, conn: &Connection, auth: &Auth) -> Result<Option<String>> {
    let out = query(
        psql,
        conn,
        auth,
        r#"SELECT version FROM version_history ORDER BY "createdAt" DESC LIMIT 1"#,
    )
    .await?;
    let v = out.trim();
    Ok((!v.is_empty()).then(|| v.to_owned()))
}

/// Runs one query with `psql` and returns its unaligned, tab-separated rows.
pub(crate) async fn query(
    psql: &Path,
    conn: &Connection,
    auth: &Auth,
    sql: &str,
) -> Result<String> {
    let mut cmd = Command::new(psql);
    cmd.env_clear()
        .envs(crate::conn::child_env())
        .args(crate::conn::PSQL_QUERY)
        .args(["--no-password", "--field-separator=\t", "--dbname"])
        .arg(conn.conninfo())
        .arg("--command")
        .arg(sql)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    auth.apply(&mut cmd);
    let out = cmd.output().await.map_err(|source| Error::Spawn {
        program: "psql",
        path: psql.to_owned(),
        source,
    })?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let stderr = conn.redact(String::from_utf8_lossy(&out.stderr).trim());
    let target = conn.to_string();
    // psql exits 2 when the connection failed, 3 when a statement did, 1 otherwise.
    Err(if out.status.code() == Some(2) {
        Error::Connect { target, stderr }
    } else {
        Error::Query {
            target,
            stderr: if stderr.is_empty() {
                describe(out.status)
            } else {
                stderr
            },
        }
    })
}

fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(sig)) => format!("was killed by signal {sig}"),
        (None, None) => "ended abnormally".to_owned(),
    }
}

type ChunkMsg = io::Result<(Vec<u8>, bool)>;

/// Reads `pg_dump`'s output in full chunks and sends them with an end-of-output
/// flag; the last message has the flag set (its chunk may be empty). Stops when the
/// receiver is gone, which drops the pipe so `pg_dump` stops too.
async fn read_chunks(mut stdout: ChildStdout, tx: mpsc::Sender<ChunkMsg>) {
    loop {
        let mut buf = vec![0u8; CHUNK];
        let mut filled = 0;
        let msg = loop {
            if filled == CHUNK {
                break Ok(false);
            }
            match stdout.read(&mut buf[filled..]).await {
                Ok(0) => break Ok(true),
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        buf.truncate(filled);
        let done = !matches!(msg, Ok(false));
        if tx.send(msg.map(|eof| (buf, eof))).await.is_err() || done {
            return;
        }
    }
}

/// What the pipeline wrote, and the bytes it held back until `pg_dump` succeeds.
#[derive(Debug)]
struct Pumped {
    /// The last piece and the gzip trailer.
    tail: Vec<u8>,
    /// Bytes written to the upload so far.
    stored: u64,
    /// SQL bytes read.
    sql: u64,
}

/// Compresses chunks `threads` at a time on the blocking pool and writes the pieces
/// in order. The chunk flagged as last is compressed but returned, not written.
async fn compress_and_write(
    mut rx: mpsc::Receiver<ChunkMsg>,
    upload: &mut dyn Upload,
    level: u32,
    threads: usize,
) -> Result<Pumped> {
    upload.write(Bytes::from_static(&gzip::HEADER)).await?;
    let mut stored = gzip::HEADER.len() as u64;
    let mut sql = 0u64;
    let mut crc = Crc::new();
    let mut in_flight: VecDeque<JoinHandle<Piece>> = VecDeque::new();
    loop {
        let (chunk, last) = rx
            .recv()
            .await
            .unwrap_or_else(|| Err(io::Error::other("the reader stopped")))
            .map_err(|e| Error::io("reading pg_dump's output", e))?;
        sql += chunk.len() as u64;
        in_flight.push_back(tokio::task::spawn_blocking(move || {
            gzip::deflate_piece(&chunk, level, last)
        }));
        if last {
            break;
        }
        if in_flight.len() >= threads {
            let piece = finish(in_flight.pop_front().expect("not empty")).await?;
            crc.combine(&piece.crc);
            stored += piece.data.len() as u64;
            upload.write(Bytes::from(piece.data)).await?;
        }
    }
    while in_flight.len() > 1 {
        let piece = finish(in_flight.pop_front().expect("not empty")).await?;
        crc.combine(&piece.crc);
        stored += piece.data.len() as u64;
        upload.write(Bytes::from(piece.data)).await?;
    }
    let last = finish(in_flight.pop_front().expect("the last piece")).await?;
    crc.combine(&last.crc);
    let mut tail = last.data;
    tail.extend_from_slice(&gzip::trailer(&crc));
    Ok(Pumped { tail, stored, sql })
}

async fn finish(task: JoinHandle<Piece>) -> Result<Piece> {
    task.await
        .map_err(|e| Error::io("compressing the dump", io::Error::other(e.to_string())))
}

/// Reads a child's error output to the end, keeping the last [`STDERR_KEEP`] bytes.
async fn collect_stderr(mut stderr: ChildStderr) -> String {
    let mut kept = Vec::new();
    let mut buf = vec![0u8; 8192];
    let mut dropped = false;
    loop {
        match stderr.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => {
                kept.extend_from_slice(&buf[..n]);
                if kept.len() > 2 * STDERR_KEEP {
                    kept.drain(..kept.len() - STDERR_KEEP);
                    dropped = true;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    if kept.len() > STDERR_KEEP {
        kept.drain(..kept.len() - STDERR_KEEP);
        dropped = true;
    }
    let text = String::from_utf8_lossy(&kept).trim().to_owned();
    if dropped { format!("…{text}") } else { text }
}
