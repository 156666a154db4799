//! Proving the database dump restores: download it, check the gzip stream, load it
//! into a throwaway PostgreSQL, run sanity queries, and check Immich's view of the
//! library against the manifest (every asset's original is backed up with the
//! SHA-1 Immich recorded).

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use imb_pgdump::guard::{DumpGuard, IMMICH_EXTENSIONS, Refusal, Step, Verdict};
use imb_pgdump::scratch::ScratchCluster;
use imb_storage::{GetOptions, ObjectRead};
use serde::Serialize;

use crate::{Finding, MAX_LISTED, Result, Snapshot};

/// Extensions real Immich dumps use for vector search; a scratch server usually
/// lacks them, and what depends on them is skipped (and listed) rather than failing.
const VECTOR_TYPES: &[&str] = &[
    "vector",
    "vchord",
    "vectors",
    "halfvec",
    "sparsevec",
    "vecf16",
];

/// Where Immich's container sees the library: `/data` in v3, `/usr/src/app/upload`
/// before.
pub const DEFAULT_IMMICH_ROOTS: [&str; 2] = ["/data", "/usr/src/app/upload"];

/// What to check.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DbVerifyOptions {
    /// The dump to check (a `database/…` key); the newest when `None`.
    pub dump: Option<String>,
    /// Where Immich sees the library, stripped from `originalPath` to get the
    /// backed-up path. Empty: where the dump says it was (v3's `system_metadata`
    /// key `MediaLocation`), then [`DEFAULT_IMMICH_ROOTS`].
    pub immich_roots: Vec<String>,
    /// A full server to load the dump into (a new database, dropped afterwards)
    /// instead of a scratch cluster: full fidelity when it has pgvector.
    pub server: Option<imb_pgdump::Connection>,
    /// The psql to run against `server`.
    pub psql: PathBuf,
    /// Extensions to treat as unavailable even where the server has them.
    pub without_extensions: Vec<String>,
    /// Also write what a restored server must serve (assets, albums, users) into
    /// [`DbReport::inventory`], for [`crate::verify_immich`].
    pub inventory: bool,
}

impl Default for DbVerifyOptions {
    fn default() -> Self {
        DbVerifyOptions {
            dump: None,
            immich_roots: Vec::new(),
            server: None,
            psql: PathBuf::from("psql"),
            without_extensions: Vec::new(),
            inventory: false,
        }
    }
}

/// The outcome of a database check.
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct DbReport {
    /// The dump checked.
    pub dump: String,
    /// Its compressed size.
    pub dump_bytes: u64,
    /// SQL bytes after decompression.
    pub sql_bytes: u64,
    /// Whether the scratch server ran confined by Landlock to its own directory.
    pub confined: bool,
    /// Why the dump was refused before loading (a form pg_dump never writes, at a
    /// line); nothing of it was loaded.
    pub refused: Option<String>,
    /// Statements not loaded because the scratch server lacks an extension they need.
    pub skipped_statements: Vec<String>,
    /// Users, assets (in this server's libraries) and external-library assets.
    pub users: u64,
    /// Assets whose files are in the backed-up library.
    pub assets: u64,
    /// Assets of external libraries (outside the library; not checked).
    pub external_assets: u64,
    /// The newest `version_history` row.
    pub version_in_database: Option<String>,
    /// The schema generation recognised (where sidecars are kept).
    pub schema: String,
    /// Where the dump says the library was (`MediaLocation`), if it says.
    pub media_location: Option<String>,
    /// The library roots stripped from asset paths: the ones given, else the
    /// dump's media location and the defaults.
    pub immich_roots: Vec<String>,
    /// The version in the dump's name.
    pub version_in_name: Option<String>,
    /// Originals checked against the manifest.
    pub originals_checked: u64,
    /// Backed-up originals no asset references (a count; the first ones listed).
    pub unreferenced_originals: u64,
    /// Their paths (the first 1000).
    pub unreferenced: Vec<String>,
    /// Problems, each named.
    pub findings: Vec<Finding>,
    /// Problems not listed.
    pub findings_omitted: u64,
    /// The inventory file, when asked for (in the snapshot's private directory).
    #[serde(skip)]
    pub inventory: Option<PathBuf>,
}

impl DbReport {
    fn add(&mut self, path: &str, object: &str, problem: String) {
        if self.findings.len() < MAX_LISTED {
            self.findings.push(Finding {
                path: path.to_owned(),
                object: object.to_owned(),
                problem,
            });
        } else {
            self.findings_omitted += 1;
        }
    }

    /// Whether the dump restored and matches the library.
    pub fn ok(&self) -> bool {
        self.findings.is_empty() && self.findings_omitted == 0
    }
}

fn io(path: &Path, e: std::io::Error) -> crate::Error {
    crate::Error::Io {
        path: path.display().to_string(),
        source: e,
    }
}

/// Checks the newest (or chosen) dump in `store`. Returns `None` when the target
/// has no dump.
///
/// # Errors
/// When the store cannot be read or no scratch PostgreSQL can be started; problems
/// with the dump itself are findings.
pub async fn verify_database(
    store: &dyn ObjectRead,
    snap: &Snapshot,
    opts: &DbVerifyOptions,
) -> Result<Option<DbReport>> {
    let (dumps, future) = imb_layout::list_dumps_at(store, std::time::SystemTime::now())
        .await
        .map_err(|e| crate::Error::Io {
            path: "database/".into(),
            source: std::io::Error::other(e.to_string()),
        })?;
    let chosen = imb_layout::choose_dump(&dumps, opts.dump.as_deref());
    let Some((name, meta)) = chosen else {
        return Ok(None);
    };
    let mut report = DbReport {
        dump: name.key(),
        dump_bytes: meta.size,
        version_in_name: name.immich_version.clone(),
        ..DbReport::default()
    };
    for k in &future {
        report.add(
            k,
            k,
            "dump dated more than a day ahead of now: not taken as the newest (planted, or a clock far off)".into(),
        );
    }
    let gz = snap.dir().join("dump.sql.gz");
    {
        let mut f = std::fs::File::create(&gz).map_err(|e| io(&gz, e))?;
        let mut res = store.get_opts(&meta.key, GetOptions::default()).await?;
        while let Some(c) = res.body.next_chunk().await? {
            f.write_all(&c).map_err(|e| io(&gz, e))?;
        }
    }
    let manifest = snap.path().to_owned();
    let roots = opts.immich_roots.clone();
    let server = opts.server.clone().map(|c| (c, opts.psql.clone()));
    let without = opts.without_extensions.clone();
    let inventory = opts.inventory.then(|| snap.dir().join("inventory.db"));
    tokio::task::spawn_blocking(move || {
        load_and_check(&gz, &manifest, &roots, server, &without, inventory, report)
    })
    .await
    .map_err(|e| crate::Error::Io {
        path: "database check".into(),
        source: std::io::Error::other(e.to_string()),
    })?
    .map(Some)
}

/// Where the dump is loaded: a scratch cluster, or a new database on a named server.
enum Server {
    Scratch(ScratchCluster),
    Named(imb_pgdump::Psql, String),
}

/// The role a scratch load runs as: it owns only the database it loads into and
/// holds no superuser right and none of `pg_execute_server_program`,
/// `pg_read_server_files`, `pg_write_server_files`, so SQL in the dump (dynamic
/// SQL in a `DO` block included) cannot reach the machine.
const LOAD_ROLE: &str = "imb_restore";

/// The database the dump went into. Every query after the load runs as the same
/// role: the restored database's functions and views are the dump's code.
pub(crate) struct Db {
    server: Server,
    name: String,
}

impl Db {
    pub(crate) fn psql_command(&self) -> std::process::Command {
        match &self.server {
            Server::Scratch(pg) => pg.psql_command_as(&self.name, LOAD_ROLE),
            Server::Named(p, _) => p.command(&self.name),
        }
    }

    /// The psql program the load runs.
    fn psql_program(&self) -> PathBuf {
        match &self.server {
            Server::Scratch(pg) => pg.bin("psql"),
            Server::Named(p, _) => p.program().to_owned(),
        }
    }

    fn psql(&self, sql: &str) -> std::io::Result<String> {
        run_sql(self.psql_command(), sql, &self.server)
    }

    /// psql's error output, with a named server's connection details taken out.
    pub(crate) fn redact(&self, err: &str) -> String {
        match &self.server {
            Server::Named(p, _) => p.redact(err),
            Server::Scratch(_) => err.to_owned(),
        }
    }
}

fn run_sql(mut cmd: std::process::Command, sql: &str, server: &Server) -> std::io::Result<String> {
    let out = cmd
        .arg("--command")
        .arg(sql)
        .stdin(Stdio::null())
        .output()?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        let err = match server {
            Server::Named(p, _) => p.redact(&err),
            Server::Scratch(_) => err,
        };
        return Err(std::io::Error::other(err.trim().to_owned()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl Drop for Db {
    fn drop(&mut self) {
        // A named server gets its verification database dropped; a cluster goes whole.
        if let Server::Named(p, maintenance) = &self.server {
            let sql = format!("DROP DATABASE IF EXISTS \"{}\"", self.name);
            if let Err(e) = run_sql(p.command(maintenance), &sql, &self.server) {
                tracing::warn!(database = %self.name, error = %e, "could not drop the verification database");
            }
        }
    }
}

/// Opens the database to load into, with the extensions of [`IMMICH_EXTENSIONS`]
/// that the server has already created (a scratch load's role could not), and
/// returns the names of the extensions the server has.
fn open_db(
    server: Option<(imb_pgdump::Connection, PathBuf)>,
    without: &[String],
) -> Result<(Db, HashSet<String>)> {
    let what = Path::new("verification database");
    match server {
        None => {
            let pg = ScratchCluster::start_private()
                .map_err(|e| io(Path::new("scratch PostgreSQL"), e))?;
            let admin = |db: &str, sql: &str| pg.psql(db, sql).map_err(|e| io(what, e));
            admin(
                "postgres",
                &format!(
                    "CREATE ROLE {LOAD_ROLE} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"
                ),
            )?;
            admin(
                "postgres",
                &format!("CREATE DATABASE restored OWNER {LOAD_ROLE}"),
            )?;
            let listing = admin("restored", "SELECT name FROM pg_available_extensions")?;
            let available = extensions(&listing, without);
            for ext in IMMICH_EXTENSIONS.iter().filter(|e| available.contains(**e)) {
                if let Err(e) = admin(
                    "restored",
                    &format!("CREATE EXTENSION IF NOT EXISTS \"{ext}\" CASCADE"),
                ) {
                    tracing::warn!(extension = ext, error = %e, "could not create an extension in the scratch database");
                }
            }
            Ok((
                Db {
                    server: Server::Scratch(pg),
                    name: "restored".into(),
                },
                available,
            ))
        }
        Some((conn, psql)) => {
            let maintenance = conn.database.clone();
            let p = imb_pgdump::Psql::new(conn, psql)
                .map_err(|e| io(what, std::io::Error::other(e.to_string())))?;
            let secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let name = format!("imb_verify_{}_{secs}", std::process::id());
            let server = Server::Named(p, maintenance.clone());
            if let Server::Named(p, _) = &server {
                run_sql(
                    p.command(&maintenance),
                    &format!("CREATE DATABASE \"{name}\""),
                    &server,
                )
                .map_err(|e| io(what, e))?;
            }
            let db = Db { server, name };
            let available = extensions(
                &db.psql("SELECT name FROM pg_available_extensions")
                    .unwrap_or_default(),
                without,
            );
            Ok((db, available))
        }
    }
}

fn extensions(listing: &str, without: &[String]) -> HashSet<String> {
    listing
        .lines()
        .map(|l| l.trim().to_owned())
        .filter(|e| !without.contains(e))
        .collect()
}

fn load_and_check(
    gz: &Path,
    manifest: &Path,
    roots: &[String],
    server: Option<(imb_pgdump::Connection, PathBuf)>,
    without: &[String],
    inventory: Option<PathBuf>,
    mut report: DbReport,
) -> Result<DbReport> {
    // The whole dump through the guard first: a refused one is never loaded at all
    // (and needs no server).
    let checked = filter_sql(gz, std::io::sink(), &[], true, &mut DbReport::default());
    if unusable(checked, &mut report) {
        return Ok(report);
    }
    let (pg, available) = open_db(server, without)?;
    let scratch = matches!(pg.server, Server::Scratch(_));
    report.confined = matches!(&pg.server, Server::Scratch(c) if c.confined());
    // The first layer against meta-commands: psql restricted from its first byte
    // with a key the dump cannot know. A psql without `\restrict` is refused.
    imb_pgdump::guard::check_psql(&pg.psql_program())?;
    let key = imb_pgdump::guard::restrict_key().map_err(|e| io(Path::new("/dev/urandom"), e))?;
    let missing: Vec<&str> = VECTOR_TYPES
        .iter()
        .copied()
        .filter(|t| !available.contains(*t))
        .collect();

    let mut psql = pg.psql_command();
    let mut psql = psql
        .arg("--single-transaction")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| io(Path::new("psql"), e))?;
    let mut stdin = psql.stdin.take().expect("stdin piped");
    let fed = writeln!(stdin, "\\restrict {key}")
        .and_then(|()| filter_sql(gz, &mut stdin, &missing, scratch, &mut report));
    if unusable(fed, &mut report) {
        // The guard is deterministic and the file is in our private directory, so
        // this is a backstop only. Killed before its input ends, psql never
        // commits: nothing is loaded.
        let _ = psql.kill();
        let _ = psql.wait();
        return Ok(report);
    }
    let dump = report.dump.clone();
    drop(stdin);
    let out = psql
        .wait_with_output()
        .map_err(|e| io(Path::new("psql"), e))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let err: String = err.chars().take(2000).collect();
        report.add(&dump, &dump, format!("dump does not restore: {err}"));
        return Ok(report);
    }
    sanity(&pg, &mut report);
    consistency(&pg, manifest, roots, &mut report)?;
    if let Some(path) = inventory {
        match crate::inventory::export(&pg, &path, manifest, &report) {
            Ok(()) => report.inventory = Some(path),
            Err(e) => {
                let dump = report.dump.clone();
                report.add(
                    &dump,
                    &dump,
                    format!(
                        "what the restored server must serve cannot be read from the dump: {e}"
                    ),
                );
            }
        }
    }
    Ok(report)
}

/// Records in `report` why a guard pass makes the dump unusable (not gzip, or
/// refused); false when the pass was clean.
fn unusable(
    pass: std::io::Result<std::result::Result<(), Refusal>>,
    report: &mut DbReport,
) -> bool {
    let dump = report.dump.clone();
    match pass {
        Ok(Ok(())) => return false,
        Ok(Err(refusal)) => {
            let why = refusal.to_string();
            tracing::error!(dump = %dump, refusal = %why, "dump refused before loading");
            report.add(
                &dump,
                &dump,
                format!("refused before loading ({why}): pg_dump never writes this; the target may have been tampered with"),
            );
            report.refused = Some(why);
        }
        Err(e) => report.add(
            &dump,
            &dump,
            format!("dump is not a valid gzip stream: {e}"),
        ),
    }
    true
}

/// The statement's text without the comments and blank lines before it.
fn head(text: &str) -> &str {
    let mut rest = text;
    loop {
        let t = rest.trim_start();
        match t.strip_prefix("--") {
            Some(c) => rest = c.split_once('\n').map_or("", |(_, r)| r),
            None => return t,
        }
    }
}

/// Streams the decompressed SQL through the [`DumpGuard`] into psql, leaving out
/// pg_dump's `\restrict` lines, statements that need a missing extension (and the
/// data and indexes of tables that do) and, on a scratch server, what the load's
/// role must not do (`OWNER TO`, the extensions created before the load).
/// Returns the guard's refusal, if any, after which nothing more is written.
fn filter_sql(
    gz: &Path,
    mut out: impl Write,
    missing: &[&str],
    scratch: bool,
    report: &mut DbReport,
) -> std::io::Result<std::result::Result<(), Refusal>> {
    let f = std::fs::File::open(gz)?;
    let r = BufReader::new(flate2::read::MultiGzDecoder::new(f));
    let needs_missing = |s: &str| {
        let l = s.to_ascii_lowercase();
        missing.iter().any(|t| {
            l.contains(&format!("extension if not exists {t}"))
                || l.contains(&format!("extension {t}"))
                || l.contains(&format!("public.{t}("))
                || l.contains(&format!(" {t}("))
                || l.contains(&format!("using {t}"))
                || l.contains(&format!("{t}_ops"))
                || l.contains(&format!("extension \"{t}\""))
        })
    };
    let mut guard = DumpGuard::new();
    let mut skipped_tables: Vec<String> = Vec::new();
    let mut skip_copy = false;
    // psql stopping early (an error) closes the pipe; its status says why.
    let mut pipe_ok = true;
    for line in r.lines() {
        let line = line?;
        report.sql_bytes += line.len() as u64 + 1;
        let step = match guard.line(&line) {
            Ok(s) => s,
            Err(refusal) => return Ok(Err(refusal)),
        };
        match step {
            Step::Copy => {
                if !skip_copy && pipe_ok {
                    pipe_ok = writeln!(out, "{line}").is_ok();
                }
            }
            Step::Drop | Step::Held => {}
            Step::Statements(stmts) => {
                for st in stmts {
                    let s = head(&st.text);
                    let table = table_of(s);
                    let missing_ext =
                        needs_missing(s) || skipped_tables.iter().any(|t| s.contains(t.as_str()));
                    if missing_ext {
                        if let Some(t) = &table
                            && s.starts_with("CREATE TABLE")
                        {
                            skipped_tables.push(t.clone());
                        }
                        let first: String = s
                            .lines()
                            .next()
                            .unwrap_or_default()
                            .chars()
                            .take(200)
                            .collect();
                        report.skipped_statements.push(first);
                    }
                    let privileged = scratch && st.verdict != Verdict::Load;
                    let skip = missing_ext || privileged;
                    if st.copy {
                        skip_copy = skip;
                    }
                    if !skip && pipe_ok {
                        pipe_ok = out.write_all(st.text.as_bytes()).is_ok()
                            && (!st.copy || out.write_all(b"\n").is_ok());
                    }
                }
            }
        }
    }
    match guard.finish() {
        Ok(rest) => {
            if pipe_ok {
                let _ = out.write_all(rest.as_bytes());
            }
            Ok(Ok(()))
        }
        Err(refusal) => Ok(Err(refusal)),
    }
}

/// `public.smart_search` from `CREATE TABLE public.smart_search (` or `COPY public.x (…`.
fn table_of(s: &str) -> Option<String> {
    let first = s.lines().next()?;
    let rest = first
        .strip_prefix("CREATE TABLE ")
        .or_else(|| first.strip_prefix("COPY "))?;
    Some(rest.split([' ', '(']).next()?.to_owned())
}

/// The media location Immich v3 records (`{"location": …}` under the key
/// `MediaLocation`); read back from the dump, so only ever a prefix to strip.
fn media_location(pg: &Db) -> Option<String> {
    first_table(pg, &["system_metadata"])?;
    let v = query(
        pg,
        "SELECT value::text FROM system_metadata WHERE key = 'MediaLocation'",
    )?;
    let v: serde_json::Value = serde_json::from_str(&v).ok()?;
    let loc = v.get("location")?.as_str()?.trim_end_matches('/');
    (loc.starts_with('/') && loc.len() > 1).then(|| loc.to_owned())
}

pub(crate) fn query(pg: &Db, sql: &str) -> Option<String> {
    pg.psql(sql).ok().map(|s| s.trim().to_owned())
}

pub(crate) fn first_table(pg: &Db, names: &[&str]) -> Option<String> {
    names
        .iter()
        .find(|n| {
            query(
                pg,
                &format!("SELECT to_regclass('public.\"{n}\"') IS NOT NULL"),
            )
            .as_deref()
                == Some("t")
        })
        .map(|n| format!("public.\"{n}\""))
}

fn sanity(pg: &Db, report: &mut DbReport) {
    let dump = report.dump.clone();
    let count = |t: &str| {
        query(pg, &format!("SELECT count(*) FROM {t}")).and_then(|c| c.parse::<u64>().ok())
    };
    match first_table(pg, &["user", "users"]) {
        Some(t) => report.users = count(&t).unwrap_or(0),
        None => report.add(
            &dump,
            &dump,
            "no user table in the restored database".into(),
        ),
    }
    if first_table(pg, &["asset", "assets"]).is_none() {
        report.add(
            &dump,
            &dump,
            "no asset table in the restored database".into(),
        );
    }
    if first_table(pg, &["album", "albums"]).is_none() {
        report.add(
            &dump,
            &dump,
            "no album table in the restored database".into(),
        );
    }
    report.version_in_database = query(
        pg,
        r#"SELECT version FROM version_history ORDER BY "createdAt" DESC LIMIT 1"#,
    )
    .filter(|v| !v.is_empty());
    let norm = |v: &str| v.trim_start_matches('v').to_owned();
    match (&report.version_in_database, &report.version_in_name) {
        (Some(db), Some(name)) if norm(db) != norm(name) => {
            let msg = format!("the dump's name says {name}, its version_history says {db}");
            report.add(&dump, &dump, msg);
        }
        (None, _) => report.add(
            &dump,
            &dump,
            "no version_history in the restored database".into(),
        ),
        _ => {}
    }
}

/// Every asset of the server's own libraries must have its original (and sidecar)
/// in the manifest with the SHA-1 Immich recorded.
fn consistency(pg: &Db, manifest: &Path, given: &[String], report: &mut DbReport) -> Result<()> {
    let Some(asset) = first_table(pg, &["asset", "assets"]) else {
        return Ok(());
    };
    report.media_location = media_location(pg);
    let roots: Vec<String> = if given.is_empty() {
        report
            .media_location
            .iter()
            .cloned()
            .chain(DEFAULT_IMMICH_ROOTS.map(String::from))
            .collect()
    } else {
        given.to_vec()
    };
    report.immich_roots = roots.clone();
    let roots = &roots;
    // External libraries arrived with "libraryId"; older schemas have no such column.
    let table = asset
        .rsplit('.')
        .next()
        .unwrap_or(&asset)
        .trim_matches('"')
        .to_owned();
    let has_library = crate::inventory::has_column(pg, &table, "libraryId");
    let own = if has_library {
        r#"WHERE "libraryId" IS NULL"#
    } else {
        ""
    };
    let external = if has_library {
        query(
            pg,
            &format!(r#"SELECT count(*) FROM {asset} WHERE "libraryId" IS NOT NULL"#),
        )
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
    } else {
        0
    };
    report.external_assets = external;
    let rows = pg
        .psql(&format!(
            r#"SELECT "originalPath", encode(checksum, 'hex') FROM {asset} {own} ORDER BY 1"#
        ))
        .map_err(|e| io(Path::new("psql"), e))?;
    // Sidecars, where this schema generation keeps them: `asset_file` rows of type
    // sidecar (v2.4 on), `asset."sidecarPath"` (before v2.4; v2.0–v2.3 have both the
    // table, for thumbnails, and the column, for sidecars). Both are read when both
    // exist. Each is (sidecar path, its asset's original path).
    let has_asset_file =
        query(pg, "SELECT to_regclass('public.asset_file') IS NOT NULL").as_deref() == Some("t");
    let has_sidecar_column = crate::inventory::has_column(pg, &table, "sidecarPath");
    let and_own = if has_library {
        r#"AND a."libraryId" IS NULL"#
    } else {
        ""
    };
    let mut sidecars: Vec<(String, String)> = Vec::new();
    let mut read_pairs = |sql: String| {
        for line in pg.psql(&sql).unwrap_or_default().lines() {
            if let Some((sidecar, original)) = line.split_once('|') {
                sidecars.push((sidecar.to_owned(), original.to_owned()));
            }
        }
    };
    if has_asset_file {
        read_pairs(format!(
            r#"SELECT f.path, a."originalPath" FROM asset_file f JOIN {asset} a ON a.id = f."assetId" WHERE f.type = 'sidecar' {and_own}"#
        ));
    }
    if has_sidecar_column {
        read_pairs(format!(
            r#"SELECT a."sidecarPath", a."originalPath" FROM {asset} a WHERE a."sidecarPath" IS NOT NULL {and_own}"#
        ));
    }
    report.schema = match (has_asset_file, has_sidecar_column) {
        (true, true) => "v2.0–v2.3: thumbnails in asset_file, sidecars in asset.sidecarPath".into(),
        (true, false) => "v2.4 and later: sidecars in asset_file".into(),
        (false, true) => format!("before v2: sidecars in {table}.sidecarPath"),
        (false, false) => {
            let dump = report.dump.clone();
            report.add(
                &dump,
                &dump,
                format!("unrecognised Immich schema: neither an asset_file table nor {table}.sidecarPath, so sidecars cannot be checked"),
            );
            "unrecognised".into()
        }
    };
    let reader = imb_manifest::ManifestReader::open(manifest)?;
    let rel = |p: &str| -> Option<String> {
        let r = roots.iter().find_map(|root| {
            p.strip_prefix(root.trim_end_matches('/'))?
                .strip_prefix('/')
        })?;
        imb_storage::encode_path(&PathBuf::from(r)).ok()
    };
    let mut referenced: HashSet<String> = HashSet::new();
    for line in rows.lines() {
        let Some((path, sha1)) = line.split_once('|') else {
            continue;
        };
        report.assets += 1;
        report.originals_checked += 1;
        let Some(fp) = rel(path) else {
            report.add(
                path,
                "",
                format!("originalPath is outside {roots:?}: set the Immich library root"),
            );
            continue;
        };
        referenced.insert(fp.clone());
        match reader.get(&fp)? {
            None => report.add(path, "", "original is not in the backup".into()),
            Some(r) if r.archived => report.add(
                path,
                &imb_layout::content_key(&r),
                "original was deleted from the library (archived in the backup)".into(),
            ),
            Some(r) if imb_hash::hex(&r.sha1) != sha1 => report.add(
                path,
                &imb_layout::content_key(&r),
                format!(
                    "SHA-1 {} in the backup, {sha1} in Immich",
                    imb_hash::hex(&r.sha1)
                ),
            ),
            Some(_) => {}
        }
    }
    for (sc, original) in &sidecars {
        let Some(fp) = rel(sc) else { continue };
        referenced.insert(fp.clone());
        if reader.get(&fp)?.is_none_or(|r| r.archived) {
            report.add(
                sc,
                "",
                format!("sidecar of {original} is not in the backup"),
            );
        }
    }
    // Originals nobody references: files in the originals folders that no asset names.
    reader.for_each_file(|r| {
        let original = (r.file_path.starts_with("library/") || r.file_path.starts_with("upload/"))
            && !r.file_path.ends_with("/.immich")
            && !r.archived;
        if original && !referenced.contains(&r.file_path) {
            report.unreferenced_originals += 1;
            if report.unreferenced.len() < MAX_LISTED {
                report.unreferenced.push(r.file_path.clone());
            }
        }
        Ok(())
    })?;
    Ok(())
}
