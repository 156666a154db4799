//! Checking the target against the manifest.

use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::Instant;

use imb_manifest::FileRecord;
use imb_storage::{Error as StoreError, GetOptions, Key, ObjectRead};
use serde::Serialize;
use sha2::Digest;
use tokio::task::JoinSet;

use crate::listing::{Listing, Lookup, Lookups};
use crate::{MAX_LISTED, Result, Snapshot};

/// How thoroughly to check.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Level {
    /// Object existence, size and CRC32C only: no downloads.
    Metadata,
    /// Metadata for all, and a random sample downloaded and re-hashed. The sample
    /// is chosen by hashing `seed` with each path, so the same seed picks the
    /// same files.
    Sample {
        /// At most this many files.
        count: Option<u64>,
        /// At most this many bytes.
        bytes: Option<u64>,
        /// The seed.
        seed: u64,
    },
    /// Every object downloaded and re-hashed.
    All,
    /// Metadata for all, and one slice of the objects downloaded and re-hashed:
    /// those whose path hashes to `day` modulo `every`. Stateless, so the same day
    /// picks the same slice on any machine, and every object is re-hashed once
    /// every `every` days.
    Rotate {
        /// Days in the cycle.
        every: u32,
        /// Days since the Unix epoch (UTC): which slice.
        day: u64,
    },
}

impl Level {
    /// A rotation for today.
    pub fn rotate_today(every: u32) -> Level {
        let day = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() / 86_400);
        Level::Rotate {
            every: every.max(1),
            day,
        }
    }
}

/// Which slice of a rotation ran, and when its cycle completes.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Rotation {
    /// Days in the cycle.
    pub every: u32,
    /// The slice that ran, `0..every`.
    pub slice: u64,
    /// The day (UTC) the last slice of this cycle runs: by then every object has
    /// been re-hashed once.
    pub cycle_completes: String,
}

fn in_slice(path: &str, every: u32, day: u64) -> bool {
    let h = sha2::Sha256::digest(path.as_bytes());
    u64::from_le_bytes(h[..8].try_into().expect("8 bytes")) % u64::from(every)
        == day % u64::from(every)
}

/// What to verify.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct VerifyOptions {
    /// How thoroughly.
    pub level: Level,
    /// Requests in flight: adapted to the link ([`crate::default_flow`]) or fixed.
    pub flow: imb_storage::adaptive::Limits,
    /// The target client's congestion count, to back off on.
    pub congestion: Option<imb_storage::adaptive::Signal>,
    /// Only paths starting with this.
    pub prefix: Option<String>,
    /// Check sizes and CRC32Cs against a listing of the target (a request per
    /// page of objects) rather than a metadata request per file.
    pub listing: bool,
    /// Count listed objects that no manifest row names (not with `prefix`). Off
    /// for an older restore point, whose later runs' objects would all count.
    pub unreferenced: bool,
    /// The storage class to price what the listing does not say (its own
    /// requests, objects outside it); `None` for a store with no prices (a local
    /// directory).
    pub assumed_class: Option<String>,
}

impl VerifyOptions {
    /// Options at `level`, requests in flight adapted to the link.
    pub fn new(level: Level) -> Self {
        VerifyOptions {
            level,
            flow: crate::default_flow(),
            congestion: None,
            prefix: None,
            listing: true,
            unreferenced: true,
            assumed_class: None,
        }
    }
}

/// One problem, named by file and object.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Finding {
    /// The file's path relative to the source.
    pub path: String,
    /// The object holding it.
    pub object: String,
    /// What is wrong.
    pub problem: String,
}

/// A listed object no manifest row names: left by a killed run (its row was
/// never saved), by a run still going, or put there by someone else. Reported,
/// never deleted.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Unreferenced {
    /// The object.
    pub object: String,
    /// Its size.
    pub size: u64,
}

/// The outcome of a verify.
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct VerifyReport {
    /// The manifest checked against.
    pub manifest: String,
    /// Live files in the manifest that were checked.
    pub files_checked: u64,
    /// Their bytes, by the manifest.
    pub bytes_in_manifest: u64,
    /// Objects listed from the target (when checking against a listing).
    pub objects_listed: u64,
    /// Listing requests made (one per page).
    pub list_requests: u64,
    /// Metadata requests made one object at a time (objects outside the listing,
    /// or missing from it).
    pub head_requests: u64,
    /// Listed objects that no manifest row names (`None`: not counted).
    pub unreferenced_objects: Option<u64>,
    /// The first 1000 of them.
    pub unreferenced: Vec<Unreferenced>,
    /// The slice a [`Level::Rotate`] re-hashed.
    pub rotation: Option<Rotation>,
    /// What the check was estimated to do to a priced store, before it started
    /// (the binary reports it priced, as `cost`).
    #[serde(skip)]
    pub usage: imb_cost::Usage,
    /// Objects downloaded and re-hashed.
    pub objects_hashed: u64,
    /// Bytes downloaded.
    pub bytes_downloaded: u64,
    /// Problems (the first 1000; `findings_omitted` counts the rest).
    pub findings: Vec<Finding>,
    /// Problems not listed.
    pub findings_omitted: u64,
    /// Requests in flight: how many, and why that changed.
    pub concurrency: Option<imb_storage::adaptive::Report>,
    /// Wall time in seconds.
    pub duration_s: f64,
}

impl VerifyReport {
    fn add(&mut self, f: Finding) {
        if self.findings.len() < MAX_LISTED {
            self.findings.push(f);
        } else {
            self.findings_omitted += 1;
        }
    }

    /// Whether everything checked was good.
    pub fn ok(&self) -> bool {
        self.findings.is_empty() && self.findings_omitted == 0
    }
}

fn priority(seed: u64, path: &str) -> u64 {
    let mut h = sha2::Sha256::new();
    h.update(seed.to_le_bytes());
    h.update(path.as_bytes());
    u64::from_le_bytes(h.finalize()[..8].try_into().expect("8 bytes"))
}

/// A sample entry ordered by priority (the heap keeps the smallest ones), with
/// its size and storage class.
#[derive(PartialEq, Eq)]
struct Pick(u64, String, u64, Option<String>);

impl Ord for Pick {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.0, &self.1).cmp(&(o.0, &o.1))
    }
}
impl PartialOrd for Pick {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}

/// What a check will do, worked out before it reads any object: the listing
/// (made), the sample (chosen), and what the rest will cost ([`VerifyPlan::usage`]).
#[derive(Debug)]
pub struct VerifyPlan {
    lookups: Option<Lookups>,
    objects_listed: u64,
    list_requests: u64,
    sample: Vec<String>,
    /// Requests and bytes the check will make of a priced store, by class: the
    /// listing's, one metadata request per object outside it, and one read per
    /// object re-hashed.
    pub usage: imb_cost::Usage,
}

/// Lists the target and plans the check of `snap` at `opts.level` (see
/// [`VerifyPlan`]); no object data is read.
///
/// # Errors
/// When the manifest cannot be read or the target cannot be listed.
pub async fn plan_verify(
    store: Arc<dyn ObjectRead>,
    snap: &Snapshot,
    opts: &VerifyOptions,
) -> Result<VerifyPlan> {
    let assumed = opts.assumed_class.clone();
    let mut usage = imb_cost::Usage::default();
    let (lookups, objects_listed, list_requests) = if opts.listing {
        let covered = match &opts.prefix {
            None => vec!["library/".into(), "versions/".into(), "long/".into()],
            Some(p) => vec![format!("library/{p}"), format!("versions/{p}")],
        };
        let listing = Listing::build(&*store, snap.dir().join("listing.db"), covered).await?;
        usage.class_a(assumed.as_deref(), listing.requests);
        (
            Some(Lookups::open(&listing)?),
            listing.objects,
            listing.requests,
        )
    } else {
        (None, 0, 0)
    };
    let (manifest, prefix, level) = (
        snap.path().to_owned(),
        opts.prefix.clone(),
        opts.level.clone(),
    );
    let (lookups, sample, rows) = tokio::task::spawn_blocking(move || {
        plan_rows(
            &manifest,
            prefix.as_deref(),
            lookups,
            &level,
            assumed.as_deref(),
        )
    })
    .await
    .map_err(|e| crate::Error::Io {
        path: snap.path().display().to_string(),
        source: std::io::Error::other(e),
    })??;
    usage.add(&rows);
    Ok(VerifyPlan {
        lookups,
        objects_listed,
        list_requests,
        sample,
        usage,
    })
}

type Planned = (Option<Lookups>, Vec<String>, imb_cost::Usage);

/// One pass over the live rows: what each will cost, and the sample.
fn plan_rows(
    manifest: &std::path::Path,
    prefix: Option<&str>,
    lookups: Option<Lookups>,
    level: &Level,
    assumed: Option<&str>,
) -> Result<Planned> {
    let reader = imb_manifest::ManifestReader::open(manifest)?;
    let mut usage = imb_cost::Usage::default();
    let mut sample: BinaryHeap<Pick> = BinaryHeap::new();
    let mut sample_bytes = 0u64;
    reader.for_each_file(|row| {
        if row.archived || prefix.is_some_and(|p| !row.file_path.starts_with(p)) {
            return Ok(());
        }
        let lookup = match &lookups {
            Some(l) => l
                .lookup(&imb_layout::content_key(&row))
                .map_err(to_manifest)?,
            None => Lookup::NotCovered,
        };
        let class = match lookup {
            // A store that lists no classes is priced as assumed.
            Lookup::Found { class, .. } => class.or_else(|| assumed.map(str::to_owned)),
            Lookup::Absent | Lookup::NotCovered => {
                usage.class_b(assumed, 1);
                assumed.map(str::to_owned)
            }
        };
        match level {
            Level::All => usage.read(class.as_deref(), row.size),
            Level::Rotate { every, day } if in_slice(&row.file_path, *every, *day) => {
                usage.read(class.as_deref(), row.size);
            }
            Level::Sample { count, bytes, seed } => {
                sample.push(Pick(
                    priority(*seed, &row.file_path),
                    row.file_path.clone(),
                    row.size,
                    class,
                ));
                sample_bytes += row.size;
                while count.is_some_and(|c| sample.len() as u64 > c)
                    || (bytes.is_some_and(|b| sample_bytes > b) && sample.len() > 1)
                {
                    if let Some(p) = sample.pop() {
                        sample_bytes -= p.2;
                    }
                }
            }
            _ => {}
        }
        Ok(())
    })?;
    let mut paths = Vec::with_capacity(sample.len());
    for Pick(_, path, size, class) in sample.into_sorted_vec() {
        usage.read(class.as_deref(), size);
        paths.push(path);
    }
    Ok((lookups, paths, usage))
}

/// Checks `store` against `snap` at `opts.level`: [`plan_verify`], then
/// [`verify_planned`].
///
/// # Errors
/// Only when the manifest cannot be read or the target listed; problems with
/// objects are findings.
pub async fn verify(
    store: Arc<dyn ObjectRead>,
    snap: &Snapshot,
    opts: &VerifyOptions,
) -> Result<VerifyReport> {
    let plan = plan_verify(store.clone(), snap, opts).await?;
    verify_planned(store, snap, opts, plan).await
}

/// Carries out a [`VerifyPlan`].
///
/// # Errors
/// Only when the manifest cannot be read; problems with objects are findings.
pub async fn verify_planned(
    store: Arc<dyn ObjectRead>,
    snap: &Snapshot,
    opts: &VerifyOptions,
    plan: VerifyPlan,
) -> Result<VerifyReport> {
    let started = Instant::now();
    let mut report = VerifyReport {
        manifest: snap.name.clone(),
        objects_listed: plan.objects_listed,
        list_requests: plan.list_requests,
        usage: plan.usage,
        ..VerifyReport::default()
    };
    if let Level::Rotate { every, day } = opts.level {
        let last = day + u64::from(every) - 1 - day % u64::from(every);
        let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(last * 86_400);
        report.rotation = Some(Rotation {
            every,
            slice: day % u64::from(every),
            cycle_completes: humantime::format_rfc3339_seconds(when).to_string()[..10].to_owned(),
        });
    }
    let unreferenced = opts.unreferenced && opts.prefix.is_none() && plan.lookups.is_some();
    // Pass 1: metadata for every live file (and hashes, for `All` and a rotation's slice).
    let mut rows = stream_checked(
        snap.path().to_owned(),
        opts.prefix.clone(),
        plan.lookups,
        unreferenced,
    );
    let mut tasks = JoinSet::new();
    let mut flow = imb_storage::adaptive::Flow::new(opts.flow, opts.congestion.clone());
    while let Some(msg) = rows.recv().await {
        let (row, lookup) = match msg? {
            Streamed::Row(row, lookup) => (row, lookup),
            Streamed::Unreferenced(listed, n) => {
                report.unreferenced_objects = Some(n);
                report.unreferenced = listed
                    .into_iter()
                    .map(|(object, size)| Unreferenced { object, size })
                    .collect();
                continue;
            }
        };
        report.files_checked += 1;
        report.bytes_in_manifest += row.size;
        let hash = match opts.level {
            Level::All => true,
            Level::Rotate { every, day } => in_slice(&row.file_path, every, day),
            _ => false,
        };
        let buffered = if hash { row.size.min(crate::CHUNK) } else { 0 };
        crate::admit(&mut flow, &mut tasks, buffered, |r| {
            collect(&mut report, Some(r))
        })
        .await;
        let store = store.clone();
        tasks.spawn(async move { flowed(buffered, check(&*store, row, hash, Some(lookup)).await) });
    }
    crate::drain(&mut flow, &mut tasks, |r| collect(&mut report, Some(r))).await;
    // Pass 2: the sample, looked up by path.
    if !plan.sample.is_empty() {
        let reader = imb_manifest::ManifestReader::open(snap.path())?;
        for path in plan.sample {
            let Some(row) = reader.get(&path)? else {
                continue;
            };
            let buffered = row.size.min(crate::CHUNK);
            crate::admit(&mut flow, &mut tasks, buffered, |r| {
                collect_hashed(&mut report, Some(r));
            })
            .await;
            let store = store.clone();
            // Its metadata was checked in pass 1.
            tasks.spawn(async move { flowed(buffered, check(&*store, row, true, None).await) });
        }
        crate::drain(&mut flow, &mut tasks, |r| {
            collect_hashed(&mut report, Some(r))
        })
        .await;
    }
    report.concurrency = Some(flow.report());
    report.duration_s = started.elapsed().as_secs_f64();
    Ok(report)
}

/// A finding, the bytes hashed, and the metadata requests made.
type Checked = (Option<Finding>, Option<u64>, u64);

/// A check's result with what the flow needs: a lookup moves no bytes but is a
/// request like any other; a download moves what it hashed.
fn flowed(buffered: u64, c: Checked) -> crate::Flowed<Checked> {
    (buffered, Some(c.1.unwrap_or(0)), c)
}

fn collect(
    report: &mut VerifyReport,
    r: Option<std::result::Result<Checked, tokio::task::JoinError>>,
) {
    match r {
        Some(Ok((finding, hashed, heads))) => {
            report.head_requests += heads;
            if let Some(f) = finding {
                report.add(f);
            }
            if let Some(b) = hashed {
                report.objects_hashed += 1;
                report.bytes_downloaded += b;
            }
        }
        Some(Err(e)) => report.add(Finding {
            path: String::new(),
            object: String::new(),
            problem: format!("internal error: {e}"),
        }),
        None => {}
    }
}

/// Sample results: metadata problems were already reported in pass 1.
fn collect_hashed(
    report: &mut VerifyReport,
    r: Option<std::result::Result<Checked, tokio::task::JoinError>>,
) {
    if let Some(Ok((Some(f), _, _))) = &r
        && report.findings.iter().any(|g| g.path == f.path)
    {
        return;
    }
    collect(report, r);
}

/// What the blocking thread streams: live rows with what the listing says of
/// their objects, then, when asked, the listed objects no row names.
enum Streamed {
    Row(FileRecord, Lookup),
    Unreferenced(Vec<(String, u64)>, u64),
}

/// Streams the manifest's live rows (under `prefix`) from a blocking thread,
/// each looked up in the listing there (`NotCovered` without one).
fn stream_checked(
    manifest: std::path::PathBuf,
    prefix: Option<String>,
    lookups: Option<Lookups>,
    unreferenced: bool,
) -> tokio::sync::mpsc::Receiver<Result<Streamed>> {
    let (tx, rx) = tokio::sync::mpsc::channel(256);
    tokio::task::spawn_blocking(move || {
        let res = (|| -> Result<()> {
            let reader = imb_manifest::ManifestReader::open(&manifest)?;
            let look = |key: &str| match &lookups {
                Some(l) => l.lookup(key),
                None => Ok(Lookup::NotCovered),
            };
            reader.for_each_file(|r| {
                if r.archived
                    || prefix
                        .as_deref()
                        .is_some_and(|p| !r.file_path.starts_with(p))
                {
                    return Ok(());
                }
                let lookup = look(&imb_layout::content_key(&r)).map_err(to_manifest)?;
                // A closed channel means the consumer stopped; end quietly.
                let _ = tx.blocking_send(Ok(Streamed::Row(r, lookup)));
                Ok(())
            })?;
            let Some(l) = lookups.as_ref().filter(|_| unreferenced) else {
                return Ok(());
            };
            // Every object a row names: archived rows' and earlier contents' too.
            l.begin()?;
            reader.for_each_file(|r| l.mark(&imb_layout::content_key(&r)).map_err(to_manifest))?;
            reader.for_each_history(|h| {
                l.mark(&imb_layout::content_key(&h.file))
                    .map_err(to_manifest)
            })?;
            l.commit()?;
            let (listed, n) = l.unmarked(MAX_LISTED)?;
            let _ = tx.blocking_send(Ok(Streamed::Unreferenced(listed, n)));
            Ok(())
        })();
        if let Err(e) = res {
            let _ = tx.blocking_send(Err(e));
        }
    });
    rx
}

/// The manifest's callbacks return its error type; a listing error travels in it.
fn to_manifest(e: crate::Error) -> imb_manifest::Error {
    imb_manifest::Error::Io {
        path: "listing".into(),
        source: std::io::Error::other(e.to_string()),
    }
}

/// Checks one file's object against `lookup` (`None`: its metadata was checked
/// already); with `hash`, downloads and re-hashes it.
async fn check(
    store: &dyn ObjectRead,
    row: FileRecord,
    hash: bool,
    lookup: Option<Lookup>,
) -> Checked {
    let object = imb_layout::content_key(&row);
    let finding = |problem: String| Finding {
        path: row.file_path.clone(),
        object: object.clone(),
        problem,
    };
    let key = match Key::parse(object.as_str()) {
        Ok(k) => k,
        Err(e) => return (Some(finding(format!("invalid object key: {e}"))), None, 0),
    };
    let mut heads = 0;
    let meta = match lookup {
        None => None,
        Some(Lookup::Found { size, crc32c, .. }) => Some((size, crc32c)),
        // Not listed, or not under a listed prefix: one request resolves it.
        Some(Lookup::Absent | Lookup::NotCovered) => {
            heads = 1;
            match store.head(&key).await {
                Ok(m) => Some((m.size, m.crc32c)),
                Err(StoreError::NotFound { .. }) => {
                    return (Some(finding("object missing".into())), None, heads);
                }
                Err(e) => return (Some(finding(format!("cannot check: {e}"))), None, heads),
            }
        }
    };
    if let Some((size, crc32c)) = meta {
        if size != row.size {
            return (
                Some(finding(format!(
                    "size {size} in the target, {} in the manifest",
                    row.size
                ))),
                None,
                heads,
            );
        }
        if let Some(c) = crc32c
            && c != row.crc32c
        {
            return (
                Some(finding(format!(
                    "crc32c {c:08x} in the target, {:08x} in the manifest",
                    row.crc32c
                ))),
                None,
                heads,
            );
        }
    }
    if !hash {
        return (None, None, heads);
    }
    let hashed = async {
        let mut res = store.get_opts(&key, GetOptions::default()).await?;
        let mut h = imb_hash::Hasher::new();
        while let Some(c) = res.body.next_chunk().await? {
            h.update(&c);
        }
        Ok::<_, StoreError>(h.finish())
    }
    .await;
    match hashed {
        Ok(d) if d.sha256 == row.checksum => (None, Some(d.len), heads),
        Ok(d) => (
            Some(finding(format!(
                "content differs: sha256 {} in the target, {} in the manifest",
                d.sha256_hex(),
                imb_hash::hex(&row.checksum)
            ))),
            Some(d.len),
            heads,
        ),
        Err(e) => (Some(finding(format!("cannot read: {e}"))), None, heads),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imb_storage::{InMemory, ObjectCreate, Payload};

    /// A target of `n` files in memory and its manifest.
    async fn target(n: u32) -> Arc<InMemory> {
        let store = Arc::new(InMemory::new());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        let mut m = imb_manifest::Manifest::open(&path).unwrap();
        for i in 0..n {
            let bytes = format!("content of file {i}").into_bytes();
            let d = imb_hash::digest(&bytes);
            let rec = FileRecord::new(format!("f/{i}.jpg"), d.sha256, d.sha1, d.crc32c, d.len, 1);
            let key = Key::parse(imb_layout::content_key(&rec)).unwrap();
            store
                .put_opts(&key, Payload::from(bytes), Default::default())
                .await
                .unwrap();
            m.upsert(&rec).unwrap();
        }
        m.commit().unwrap();
        drop(m);
        let name = imb_layout::ManifestName::full("2026-01-01T00-00-00");
        let bytes = std::fs::read(&path).unwrap();
        store
            .put_opts(&name.key(), Payload::from(bytes), Default::default())
            .await
            .unwrap();
        store
    }

    /// A rotation re-hashes disjoint slices that together cover every object once
    /// per cycle, names the slice and the day the cycle completes, and plans the
    /// reads it makes.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_rotation_covers_every_object_once_per_cycle() {
        let store = target(60).await;
        let snap = Snapshot::fetch(&*store, None).await.unwrap();
        let mut hashed = 0;
        let start = 20_000 - 20_000 % 3; // the first day of a 3-day cycle

        for day in start..start + 3 {
            let mut opts = VerifyOptions::new(Level::Rotate { every: 3, day });
            opts.assumed_class = Some("ARCHIVE".into());
            let plan = plan_verify(store.clone(), &snap, &opts).await.unwrap();
            let planned = plan.usage.read_bytes.get("ARCHIVE").copied().unwrap_or(0);
            let r = verify_planned(store.clone(), &snap, &opts, plan)
                .await
                .unwrap();
            assert!(r.ok(), "{r:?}");
            assert_eq!(r.bytes_downloaded, planned, "the plan priced what was read");
            let rot = r.rotation.clone().unwrap();
            assert_eq!(rot.slice, day % 3);
            assert_eq!(
                rot.cycle_completes,
                humantime::format_rfc3339_seconds(
                    std::time::UNIX_EPOCH + std::time::Duration::from_secs((start + 2) * 86_400)
                )
                .to_string()[..10]
            );
            assert!(r.objects_hashed > 5 && r.objects_hashed < 35, "{r:?}");
            hashed += r.objects_hashed;
        }
        assert_eq!(hashed, 60, "each object once in the cycle");
    }

    /// The metadata level lists instead of asking per object, and a sample plans
    /// exactly what it reads.
    #[tokio::test(flavor = "multi_thread")]
    async fn metadata_by_listing_and_a_sample_planned_exactly() {
        let store = target(25).await;
        let snap = Snapshot::fetch(&*store, None).await.unwrap();
        let r = verify(store.clone(), &snap, &VerifyOptions::new(Level::Metadata))
            .await
            .unwrap();
        assert!(r.ok(), "{r:?}");
        assert_eq!(
            (r.files_checked, r.objects_listed, r.head_requests),
            (25, 25, 0)
        );
        assert_eq!(r.unreferenced_objects, Some(0));
        assert_eq!(
            r.usage,
            imb_cost::Usage::default(),
            "an unpriced store costs nothing"
        );
        let mut opts = VerifyOptions::new(Level::Sample {
            count: Some(4),
            bytes: None,
            seed: 7,
        });
        opts.assumed_class = Some("COLDLINE".into());
        let plan = plan_verify(store.clone(), &snap, &opts).await.unwrap();
        assert_eq!(plan.usage.class_b.get("COLDLINE"), Some(&4));
        let r = verify_planned(store.clone(), &snap, &opts, plan)
            .await
            .unwrap();
        assert_eq!(r.objects_hashed, 4);
        assert_eq!(
            Some(&r.bytes_downloaded),
            r.usage.read_bytes.get("COLDLINE")
        );
    }
}
