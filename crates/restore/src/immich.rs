//! Proving a restore on the restored server itself: through Immich's own API,
//! every asset the dump lists is served (the original byte-identical, by the SHA-1
//! the dump records; a thumbnail wherever the dump lists one; the video playable
//! wherever it lists a transcode), and every album has its name, owner, members
//! and assets as in the dump.
//!
//! Immich serves an asset only to its owner (and album members and partners), so
//! the check takes one API key per user; what belongs to a user without a key is
//! counted as not checked. Generated files the backup left out (thumbnails and
//! previews; transcodes when `encoded-video/` was excluded) are queued for Immich's
//! own forced regeneration first, and the check waits for the queues to drain.
//! Nothing here deletes or changes an asset.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use imb_immich::{ApiKey, ClientConfig, ImmichClient, Served};
use rusqlite::{Connection, OpenFlags};
use serde::Serialize;
use tokio::task::JoinSet;

use crate::inventory::{THUMBS_NOT_BACKED_UP, VIDEOS_NOT_BACKED_UP};
use crate::{Finding, MAX_LISTED};

/// What to check, on which server.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ImmichCheckOptions {
    /// The restored server, e.g. `http://127.0.0.1:2283`.
    pub url: String,
    /// One API key per user whose assets are to be checked; an administrator's
    /// among them to queue the regeneration.
    pub keys: Vec<ApiKey>,
    /// Queue Immich's forced regeneration of the generated files the backup left out.
    pub regenerate: bool,
    /// Requests in flight.
    pub concurrency: usize,
    /// Certificate authorities to trust besides the system's.
    pub ca_certs: Vec<PathBuf>,
    /// How often the queues are polled while they drain.
    pub poll: Duration,
}

impl ImmichCheckOptions {
    /// Check the server at `url` with `keys`, regenerating what is missing.
    pub fn new(url: impl Into<String>, keys: Vec<ApiKey>) -> Self {
        ImmichCheckOptions {
            url: url.into(),
            keys,
            regenerate: true,
            concurrency: 8,
            ca_certs: Vec::new(),
            poll: Duration::from_secs(1),
        }
    }
}

/// The outcome of the check on a restored server.
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct ImmichReport {
    /// The server's version (`GET /server/version`).
    pub server_version: String,
    /// Users in the dump, and those a key was given for.
    pub users: u64,
    /// Users a key was given for.
    pub users_with_key: u64,
    /// Queues started with `force` (`thumbnailGeneration`, `videoConversion`).
    pub regenerated: Vec<String>,
    /// Seconds spent waiting for the queues to drain.
    pub queue_wait_s: f64,
    /// Assets checked through the API.
    pub assets_checked: u64,
    /// Of those, originals served byte-identical (the SHA-1 the dump records).
    pub originals_identical: u64,
    /// Assets whose listed thumbnails (and previews) the server serves as images.
    pub thumbnails_present: u64,
    /// Videos with a listed transcode the server plays.
    pub videos_playable: u64,
    /// Albums checked.
    pub albums_checked: u64,
    /// Albums with the dump's name, owner, members and assets.
    pub albums_identical: u64,
    /// Assets of users without a key: not checked.
    pub not_checked: u64,
    /// Albums none of whose users has a key: not checked.
    pub albums_not_checked: u64,
    /// Assets in a user's locked folder: an API key cannot see them (Immich wants
    /// a PIN-unlocked session), so they are counted, not checked. Their files are
    /// still checked against the backup.
    pub locked_not_checked: u64,
    /// Each difference, named.
    pub findings: Vec<Finding>,
    /// Findings not listed.
    pub findings_omitted: u64,
    /// Wall time in seconds.
    pub duration_s: f64,
}

impl ImmichReport {
    fn add(&mut self, path: &str, object: String, problem: String) {
        if self.findings.len() < MAX_LISTED {
            self.findings.push(Finding {
                path: path.to_owned(),
                object,
                problem,
            });
        } else {
            self.findings_omitted += 1;
        }
    }

    /// Whether everything in the dump was checked and found as it should be.
    pub fn ok(&self) -> bool {
        self.findings.is_empty()
            && self.findings_omitted == 0
            && self.not_checked == 0
            && self.albums_not_checked == 0
    }
}

/// Why the check could not run at all (a refused key, an unreachable server).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImmichError {
    /// The server refused or could not be asked.
    #[error("{what}: {source}")]
    Server {
        /// Which request, or which key.
        what: String,
        /// The client's error.
        #[source]
        source: imb_immich::Error,
    },
    /// The inventory the database check wrote cannot be read.
    #[error("inventory {path}: {message}")]
    Inventory {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
}

type Clients = Arc<HashMap<String, Arc<ImmichClient>>>;

struct Asset {
    id: String,
    owner: String,
    sha1: String,
    path: String,
    visibility: String,
    trashed: bool,
    thumbnail: bool,
    preview: bool,
    video: bool,
}

fn inv_err(path: &Path, e: impl std::fmt::Display) -> ImmichError {
    ImmichError::Inventory {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

fn open(path: &Path) -> Result<Connection, ImmichError> {
    Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| inv_err(path, e))
}

/// Checks the server named in `opts` against `inventory` (written by the
/// database check with [`crate::DbVerifyOptions::inventory`]).
///
/// # Errors
/// When a key is refused or the server cannot be reached at all; every
/// difference is a finding.
pub async fn verify_immich(
    inventory: &Path,
    opts: &ImmichCheckOptions,
) -> Result<ImmichReport, ImmichError> {
    let started = Instant::now();
    let mut report = ImmichReport::default();
    let mut clients = HashMap::new();
    let mut admin: Option<Arc<ImmichClient>> = None;
    for (i, key) in opts.keys.iter().enumerate() {
        let mut cfg = ClientConfig::new(opts.url.clone(), key.clone());
        cfg.ca_certs = opts.ca_certs.clone();
        let what = format!("API key {} of {}", i + 1, opts.keys.len());
        let client = Arc::new(
            ImmichClient::new(cfg).map_err(|source| ImmichError::Server {
                what: what.clone(),
                source,
            })?,
        );
        let me = client
            .my_user()
            .await
            .map_err(|source| ImmichError::Server { what, source })?;
        if me.is_admin && admin.is_none() {
            admin = Some(client.clone());
        }
        clients.insert(me.id, client);
    }
    let any = clients.values().next().cloned();
    if let Some(c) = &any {
        report.server_version = c
            .server_version()
            .await
            .map_err(|source| ImmichError::Server {
                what: "GET /server/version".into(),
                source,
            })?
            .to_string();
    }
    let clients: Clients = Arc::new(clients);

    let inv = inventory.to_owned();
    let (users, thumbs_missing, videos_missing, with_key) = {
        let ids: Vec<String> = clients.keys().cloned().collect();
        tokio::task::spawn_blocking(move || -> Result<_, ImmichError> {
            let db = open(&inv)?;
            let count = |sql: &str| {
                db.query_row(sql, [], |r| r.get::<_, i64>(0))
                    .map_err(|e| inv_err(&inv, e))
            };
            let meta = |k: &str| {
                db.query_row("SELECT value FROM meta WHERE key = ?1", [k], |r| {
                    r.get::<_, i64>(0)
                })
                .unwrap_or(0)
            };
            let mut with_key = 0u64;
            for id in &ids {
                with_key += count(&format!(
                    "SELECT count(*) FROM user WHERE id = '{}'",
                    id.replace('\'', "''")
                ))? as u64;
            }
            Ok((
                count("SELECT count(*) FROM user")? as u64,
                meta(THUMBS_NOT_BACKED_UP),
                meta(VIDEOS_NOT_BACKED_UP),
                with_key,
            ))
        })
        .await
        .map_err(|e| inv_err(inventory, e))??
    };
    report.users = users;
    report.users_with_key = with_key;

    if opts.regenerate {
        let mut queues = Vec::new();
        if thumbs_missing > 0 {
            queues.push("thumbnailGeneration");
        }
        if videos_missing > 0 {
            queues.push("videoConversion");
        }
        if !queues.is_empty() {
            match &admin {
                None => report.add(
                    "",
                    String::new(),
                    format!(
                        "{thumbs_missing} thumbnails and {videos_missing} transcodes the dump lists are not in the backup, and \
                         regenerating them needs an administrator's API key: add one (--key-file)"
                    ),
                ),
                Some(a) => {
                    let waited = Instant::now();
                    regenerate(a, &queues, opts.poll, &mut report).await;
                    report.queue_wait_s = waited.elapsed().as_secs_f64();
                }
            }
        }
    }

    check_assets(inventory, &clients, opts.concurrency.max(1), &mut report).await?;
    check_albums(inventory, &clients, &mut report).await?;
    report.duration_s = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Starts each queue with `force` and waits until no queue has work left.
async fn regenerate(
    admin: &ImmichClient,
    queues: &[&str],
    poll: Duration,
    report: &mut ImmichReport,
) {
    for q in queues {
        // A queue busy with work of its own (a restored server's start queues some)
        // refuses a second start: let it finish, then start.
        let mut res = admin.start_queue(q, true).await;
        if matches!(&res, Err(imb_immich::Error::Rejected { status: 400, .. })) {
            drain(admin, poll, report).await;
            res = admin.start_queue(q, true).await;
        }
        match res {
            Ok(()) => {
                tracing::info!(queue = q, "queued Immich's forced regeneration");
                report.regenerated.push((*q).to_owned());
            }
            Err(e) => report.add(
                "",
                format!("queue {q}"),
                format!("cannot start the regeneration: {e}"),
            ),
        }
    }
    drain(admin, poll, report).await;
}

/// Polls the queues until none that is running has jobs left, twice in a row
/// (a job moving between states is counted in neither for an instant).
async fn drain(admin: &ImmichClient, poll: Duration, report: &mut ImmichReport) {
    let mut zero = 0;
    let mut last_log = Instant::now();
    let mut paused_named = BTreeSet::new();
    loop {
        let queues = match admin.queues().await {
            Ok(q) => q,
            Err(e) => {
                report.add(
                    "",
                    "queues".into(),
                    format!("cannot read Immich's queues: {e}"),
                );
                return;
            }
        };
        let mut pending = 0;
        for q in &queues {
            if q.is_paused {
                if q.pending() > 0 && paused_named.insert(q.name.clone()) {
                    report.add(
                        "",
                        format!("queue {}", q.name),
                        format!(
                            "queue {} is paused with {} jobs: resume it in Immich's job settings",
                            q.name,
                            q.pending()
                        ),
                    );
                }
                continue;
            }
            pending += q.pending();
        }
        if pending == 0 {
            zero += 1;
            if zero == 2 {
                return;
            }
        } else {
            zero = 0;
            if last_log.elapsed() >= Duration::from_secs(10) {
                let busy: Vec<String> = queues
                    .iter()
                    .filter(|q| !q.is_paused && q.pending() > 0)
                    .map(|q| format!("{} {}", q.name, q.pending()))
                    .collect();
                tracing::info!(pending, queues = %busy.join(", "), "waiting for Immich's queues to drain");
                last_log = Instant::now();
            }
        }
        tokio::time::sleep(poll).await;
    }
}

enum Outcome {
    NotChecked,
    Locked,
    Checked {
        identical: bool,
        thumbs: bool,
        video: bool,
        findings: Vec<(String, String, String)>,
    },
}

async fn check_assets(
    inventory: &Path,
    clients: &Clients,
    concurrency: usize,
    report: &mut ImmichReport,
) -> Result<(), ImmichError> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Asset, ImmichError>>(256);
    let inv = inventory.to_owned();
    tokio::task::spawn_blocking(move || {
        let res = (|| {
            let db = open(&inv)?;
            let mut st = db
                .prepare("SELECT id, owner, sha1, path, visibility, trashed, thumbnail, preview, video FROM asset ORDER BY path")
                .map_err(|e| inv_err(&inv, e))?;
            let rows = st
                .query_map([], |r| {
                    Ok(Asset {
                        id: r.get(0)?,
                        owner: r.get(1)?,
                        sha1: r.get(2)?,
                        path: r.get(3)?,
                        visibility: r.get(4)?,
                        trashed: r.get(5)?,
                        thumbnail: r.get(6)?,
                        preview: r.get(7)?,
                        video: r.get(8)?,
                    })
                })
                .map_err(|e| inv_err(&inv, e))?;
            for row in rows {
                if tx.blocking_send(row.map_err(|e| inv_err(&inv, e))).is_err() {
                    break;
                }
            }
            Ok(())
        })();
        if let Err(e) = res {
            let _ = tx.blocking_send(Err(e));
        }
    });
    let mut tasks = JoinSet::new();
    let mut last_log = Instant::now();
    while let Some(a) = rx.recv().await {
        let a = a?;
        while tasks.len() >= concurrency {
            tally(report, tasks.join_next().await);
        }
        let clients = clients.clone();
        tasks.spawn(async move {
            let path = a.path.clone();
            (path, a.id.clone(), one(&clients, a).await)
        });
        if last_log.elapsed() >= Duration::from_secs(10) {
            tracing::info!(
                checked = report.assets_checked,
                "checking assets on the restored server"
            );
            last_log = Instant::now();
        }
    }
    while let Some(r) = tasks.join_next().await {
        tally(report, Some(r));
    }
    Ok(())
}

fn tally(
    report: &mut ImmichReport,
    r: Option<Result<(String, String, Outcome), tokio::task::JoinError>>,
) {
    match r {
        Some(Ok((_, _, Outcome::NotChecked))) => report.not_checked += 1,
        Some(Ok((_, _, Outcome::Locked))) => report.locked_not_checked += 1,
        Some(Ok((
            _,
            _,
            Outcome::Checked {
                identical,
                thumbs,
                video,
                findings,
            },
        ))) => {
            report.assets_checked += 1;
            report.originals_identical += u64::from(identical);
            report.thumbnails_present += u64::from(thumbs);
            report.videos_playable += u64::from(video);
            for (path, object, problem) in findings {
                report.add(&path, object, problem);
            }
        }
        Some(Err(e)) => report.add("", String::new(), format!("internal error: {e}")),
        None => {}
    }
}

async fn one(clients: &Clients, a: Asset) -> Outcome {
    let Some(c) = clients.get(&a.owner) else {
        return Outcome::NotChecked;
    };
    if a.visibility == "locked" {
        return Outcome::Locked;
    }
    let object = format!("asset {}", a.id);
    let mut findings = Vec::new();
    let mut problem = |p: String| findings.push((a.path.clone(), object.clone(), p));
    let identical = match c.original(&a.id).await {
        Ok(Served::File { sha1, .. }) if imb_hash::hex(&sha1) == a.sha1 => true,
        Ok(Served::File { sha1, bytes, .. }) => {
            problem(format!(
                "the original is served with SHA-1 {} ({bytes} bytes); the dump records {}",
                imb_hash::hex(&sha1),
                a.sha1
            ));
            false
        }
        Ok(_) => {
            problem("the server does not serve the original (404)".into());
            false
        }
        Err(e) => {
            problem(format!("the original cannot be read: {e}"));
            false
        }
    };
    // Immich regenerates for assets in the timeline or archive, not for trashed or
    // hidden ones (a live photo's motion part): only those are owed a thumbnail.
    let owed = !a.trashed && a.visibility != "hidden";
    let mut thumbs = true;
    for (listed, size) in [(a.thumbnail, "thumbnail"), (a.preview, "preview")] {
        if !(listed && owed) {
            continue;
        }
        match c.thumbnail(&a.id, size).await {
            Ok(Served::File { content_type, .. }) if content_type.starts_with("image/") => {}
            Ok(Served::File { content_type, .. }) => {
                thumbs = false;
                problem(format!(
                    "the {size} is served as {content_type:?}, not an image"
                ));
            }
            Ok(_) => {
                thumbs = false;
                problem(format!(
                    "no {size} (404): regenerate thumbnails in Immich (Jobs → Generate Thumbnails → All)"
                ));
            }
            Err(e) => {
                thumbs = false;
                problem(format!("the {size} cannot be read: {e}"));
            }
        }
    }
    let thumbs = thumbs && owed && (a.thumbnail || a.preview);
    let mut video = false;
    if a.video && owed {
        match c.playback(&a.id).await {
            Ok(Served::File { .. }) => video = true,
            Ok(_) => problem("the video does not play (404): transcode videos in Immich (Jobs → Transcode Videos → All)".into()),
            Err(e) => problem(format!("the video cannot be played: {e}")),
        }
    }
    Outcome::Checked {
        identical,
        thumbs,
        video,
        findings,
    }
}

struct Album {
    id: String,
    name: String,
    owner: String,
    members: BTreeSet<(String, String)>,
    assets: BTreeSet<String>,
}

fn albums(inventory: &Path) -> Result<Vec<(String, String, String)>, ImmichError> {
    let db = open(inventory)?;
    let mut st = db
        .prepare("SELECT id, name, owner FROM album ORDER BY name, id")
        .map_err(|e| inv_err(inventory, e))?;
    let rows = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .map_err(|e| inv_err(inventory, e))?;
    rows.collect::<Result<_, _>>()
        .map_err(|e| inv_err(inventory, e))
}

/// An album's members and the assets Immich shows in it (not trashed, not hidden
/// or locked), as the dump says.
fn album_detail(
    inventory: &Path,
    (id, name, owner): (String, String, String),
) -> Result<Album, ImmichError> {
    let db = open(inventory)?;
    let e = |e| inv_err(inventory, e);
    let mut st = db
        .prepare("SELECT user, role FROM album_user WHERE album = ?1")
        .map_err(e)?;
    let members = st
        .query_map([&id], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(e)?
        .collect::<Result<_, _>>()
        .map_err(e)?;
    let mut st = db
        .prepare(
            "SELECT aa.asset FROM album_asset aa JOIN asset a ON a.id = aa.asset
             WHERE aa.album = ?1 AND a.trashed = 0 AND a.visibility IN ('timeline', 'archive')",
        )
        .map_err(e)?;
    let assets = st
        .query_map([&id], |r| r.get(0))
        .map_err(e)?
        .collect::<Result<_, _>>()
        .map_err(e)?;
    Ok(Album {
        id,
        name,
        owner,
        members,
        assets,
    })
}

async fn check_albums(
    inventory: &Path,
    clients: &Clients,
    report: &mut ImmichReport,
) -> Result<(), ImmichError> {
    let inv = inventory.to_owned();
    let list = tokio::task::spawn_blocking(move || albums(&inv))
        .await
        .map_err(|e| inv_err(inventory, e))??;
    for row in list {
        let inv = inventory.to_owned();
        let want = tokio::task::spawn_blocking(move || album_detail(&inv, row))
            .await
            .map_err(|e| inv_err(inventory, e))??;
        let who = std::iter::once(&want.owner).chain(want.members.iter().map(|(u, _)| u));
        let Some(c) = who.filter_map(|u| clients.get(u)).next() else {
            report.albums_not_checked += 1;
            continue;
        };
        report.albums_checked += 1;
        let object = format!("album {}", want.id);
        let before = report.findings.len() as u64 + report.findings_omitted;
        match c.album(&want.id).await {
            Ok(got) => {
                if got.album_name != want.name {
                    report.add(
                        &want.name,
                        object.clone(),
                        format!("named {:?} on the server", got.album_name),
                    );
                }
                if got.owner() != Some(want.owner.as_str()) {
                    report.add(
                        &want.name,
                        object.clone(),
                        format!(
                            "owned by {:?} on the server, by {} in the dump",
                            got.owner(),
                            want.owner
                        ),
                    );
                }
                let members: BTreeSet<(String, String)> = got
                    .album_users
                    .iter()
                    .filter(|u| u.role != "owner")
                    .map(|u| (u.user.id.clone(), u.role.clone()))
                    .collect();
                if members != want.members {
                    report.add(
                        &want.name,
                        object.clone(),
                        format!(
                            "members {members:?} on the server, {:?} in the dump",
                            want.members
                        ),
                    );
                }
            }
            Err(e) => report.add(
                &want.name,
                object.clone(),
                format!("the server does not serve the album: {e}"),
            ),
        }
        match c.album_asset_ids(&want.id).await {
            Ok(ids) => {
                let got: BTreeSet<String> = ids.into_iter().collect();
                let missing: Vec<&String> = want.assets.difference(&got).collect();
                let extra: Vec<&String> = got.difference(&want.assets).collect();
                if !missing.is_empty() || !extra.is_empty() {
                    report.add(
                        &want.name,
                        object.clone(),
                        format!(
                            "{} assets on the server, {} in the dump: missing {:?}, not in the dump {:?}",
                            got.len(),
                            want.assets.len(),
                            missing.iter().take(10).collect::<Vec<_>>(),
                            extra.iter().take(10).collect::<Vec<_>>()
                        ),
                    );
                }
            }
            Err(e) => report.add(
                &want.name,
                object,
                format!("the album's assets cannot be listed: {e}"),
            ),
        }
        if report.findings.len() as u64 + report.findings_omitted == before {
            report.albums_identical += 1;
        }
    }
    Ok(())
}
