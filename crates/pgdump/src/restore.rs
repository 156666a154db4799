//! Restoring a dump into a database the user names: Immich's documented restore
//! procedure (psql in one transaction, stopping at the first error), streamed from
//! the store through gunzip into psql's stdin, with the same password handling as
//! dumps.

use std::io::Write;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Instant;

use imb_storage::{GetOptions, Key, ObjectRead};
use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::conn::Auth;
use crate::{Connection, Error, Result};

/// How to restore.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RestoreDbOptions {
    /// The psql to run.
    pub psql: PathBuf,
    /// Restore even into a database that already has tables.
    pub force: bool,
}

impl Default for RestoreDbOptions {
    fn default() -> Self {
        RestoreDbOptions {
            psql: PathBuf::from("psql"),
            force: false,
        }
    }
}

/// What a restore did.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct RestoreDbReport {
    /// The dump restored.
    pub dump: String,
    /// The database it went into (no password).
    pub database: String,
    /// SQL bytes fed to psql.
    pub sql_bytes: u64,
    /// Wall time in seconds.
    pub duration_s: f64,
}

/// Restores the dump at `key` into the database `conn` names. Refuses a database
/// that already has tables unless `opts.force`.
///
/// # Errors
/// [`Error::InvalidConfig`] for a non-empty database without `force`;
/// [`Error::Connect`] / [`Error::Query`] from psql (redacted); the store's error.
pub async fn restore_dump(
    store: &dyn ObjectRead,
    key: &Key,
    conn: &Connection,
    opts: &RestoreDbOptions,
) -> Result<RestoreDbReport> {
    let started = Instant::now();
    let auth = Auth::prepare(conn)?;
    if !opts.force {
        refuse_tables(conn, &auth, &opts.psql).await?;
    }
    // psql restricted from its first byte with our own key (the dump's
    // `\restrict` lines are dropped), and every line through the guard first.
    crate::guard::check_psql(&opts.psql)?;
    let restrict =
        crate::guard::restrict_key().map_err(|e| Error::io("reading /dev/urandom", e))?;
    let mut cmd = Command::new(&opts.psql);
    cmd.env_clear()
        .envs(crate::conn::child_env())
        .args([
            "--no-psqlrc",
            "--quiet",
            "--no-password",
            "--single-transaction",
            "--set=ON_ERROR_STOP=1",
            "--dbname",
        ])
        .arg(conn.conninfo())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    auth.apply(&mut cmd);
    let mut child = cmd.spawn().map_err(|source| Error::Spawn {
        program: "psql",
        path: opts.psql.clone(),
        source,
    })?;
    let mut stdin = child.stdin.take().expect("stdin piped");
    let mut sql_bytes = 0u64;
    let mut lines = Lines::default();
    let fed = async {
        // psql stopping early (an error) closes the pipe; its status says why.
        if stdin
            .write_all(format!("\\restrict {restrict}\n").as_bytes())
            .await
            .is_err()
        {
            return Ok(());
        }
        let mut res = store.get_opts(key, GetOptions::default()).await?;
        let mut gz = flate2::write::MultiGzDecoder::new(Vec::new());
        let mut open = true;
        loop {
            let chunk = res.body.next_chunk().await?;
            match &chunk {
                Some(c) => gz.write_all(c),
                None => gz.try_finish(),
            }
            .map_err(|e| Error::io(format!("decompressing {key}"), e))?;
            let out = std::mem::take(gz.get_mut());
            sql_bytes += out.len() as u64;
            let checked = lines
                .push(&out, chunk.is_none())
                .map_err(|refusal| Error::Refused {
                    dump: key.to_string(),
                    refusal,
                })?;
            if open && !checked.is_empty() {
                open = stdin.write_all(&checked).await.is_ok();
            }
            if chunk.is_none() {
                return Ok::<_, Error>(());
            }
        }
    }
    .await;
    if fed.is_err() {
        // Killed before its input ends, psql never commits: nothing is loaded.
        let _ = child.kill().await;
    }
    drop(stdin);
    let out = child
        .wait_with_output()
        .await
        .map_err(|source| Error::Spawn {
            program: "psql",
            path: opts.psql.clone(),
            source,
        })?;
    fed?;
    if !out.status.success() {
        let stderr = conn.redact(String::from_utf8_lossy(&out.stderr).trim());
        let target = conn.to_string();
        return Err(if out.status.code() == Some(2) {
            Error::Connect { target, stderr }
        } else {
            Error::Query { target, stderr }
        });
    }
    Ok(RestoreDbReport {
        dump: key.to_string(),
        database: conn.to_string(),
        sql_bytes,
        duration_s: started.elapsed().as_secs_f64(),
    })
}

/// Splits decompressed SQL into lines and passes each through the guard, returning
/// the bytes that may go to psql.
#[derive(Default)]
struct Lines {
    guard: crate::guard::DumpGuard,
    partial: Vec<u8>,
}

impl Lines {
    fn push(
        &mut self,
        bytes: &[u8],
        end: bool,
    ) -> std::result::Result<Vec<u8>, crate::guard::Refusal> {
        use crate::guard::Step;
        self.partial.extend_from_slice(bytes);
        let mut out = Vec::with_capacity(self.partial.len());
        let mut start = 0;
        while let Some(n) = self.partial[start..].iter().position(|b| *b == b'\n') {
            let line = &self.partial[start..start + n];
            start += n + 1;
            let Ok(text) = std::str::from_utf8(line) else {
                return Err(crate::guard::Refusal {
                    line: self.guard.line_number() + 1,
                    reason: "text that is not UTF-8".into(),
                });
            };
            match self.guard.line(text)? {
                Step::Copy => {
                    out.extend_from_slice(line);
                    out.push(b'\n');
                }
                Step::Drop | Step::Held => {}
                Step::Statements(stmts) => {
                    for s in stmts {
                        out.extend_from_slice(s.text.as_bytes());
                        if s.copy {
                            out.push(b'\n');
                        }
                    }
                }
            }
        }
        self.partial.drain(..start);
        if end {
            if !self.partial.is_empty() {
                let last = std::mem::take(&mut self.partial);
                let tail = self.push(&[&last[..], b"\n"].concat(), false)?;
                out.extend_from_slice(&tail);
            }
            out.extend_from_slice(self.guard.finish()?.as_bytes());
        }
        Ok(out)
    }
}

/// Whether [`restore_dump`] would load into `conn`: it must be reachable and, unless
/// `opts.force`, have no tables. A caller checks this before any other work, so a
/// database that is not empty is "could not run", not a finding after a long verify.
///
/// # Errors
/// [`Error::InvalidConfig`] naming `db-restore` for a database with tables; the
/// connection's error.
pub async fn check_restore_target(conn: &Connection, opts: &RestoreDbOptions) -> Result<()> {
    let auth = Auth::prepare(conn)?;
    if opts.force {
        crate::dump::query(&opts.psql, conn, &auth, "SELECT 1").await?;
        return Ok(());
    }
    refuse_tables(conn, &auth, &opts.psql).await
}

async fn refuse_tables(conn: &Connection, auth: &Auth, psql: &std::path::Path) -> Result<()> {
    let tables = crate::dump::query(
        psql,
        conn,
        auth,
        "SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')",
    )
    .await?;
    let n: u64 = tables.trim().parse().unwrap_or(0);
    if n > 0 {
        return Err(Error::invalid(
            "db-restore",
            format!(
                "the database {conn} is not empty ({n} tables); use --force to restore over it"
            ),
        ));
    }
    Ok(())
}
