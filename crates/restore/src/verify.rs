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

/// A sample entry ordered by priority (the heap keeps the smallest ones).
#[derive(PartialEq, Eq)]
struct Pick(u64, String, u64);

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

/// Checks `store` against `snap` at `opts.level`.
///
/// # Errors
/// Only when the manifest cannot be read; problems with objects are findings.
pub async fn verify(
    store: Arc<dyn ObjectRead>,
    snap: &Snapshot,
    opts: &VerifyOptions,
) -> Result<VerifyReport> {
    let started = Instant::now();
    let mut report = VerifyReport {
        manifest: snap.name.clone(),
        ..VerifyReport::default()
    };
    let hash_all = opts.level == Level::All;
    let lookups = if opts.listing {
        let covered = match &opts.prefix {
            None => vec!["library/".into(), "versions/".into(), "long/".into()],
            Some(p) => vec![format!("library/{p}"), format!("versions/{p}")],
        };
        let listing = Listing::build(&*store, snap.dir().join("listing.db"), covered).await?;
        report.objects_listed = listing.objects;
        report.list_requests = listing.requests;
        Some(Lookups::open(&listing)?)
    } else {
        None
    };
    let unreferenced = opts.unreferenced && opts.prefix.is_none() && lookups.is_some();
    // Pass 1: metadata for every live file (and hashes, for `All`).
    let mut sample: BinaryHeap<Pick> = BinaryHeap::new();
    let mut sample_bytes = 0u64;
    let mut rows = stream_checked(
        snap.path().to_owned(),
        opts.prefix.clone(),
        lookups,
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
        if let Level::Sample { count, bytes, seed } = &opts.level {
            sample.push(Pick(
                priority(*seed, &row.file_path),
                row.file_path.clone(),
                row.size,
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
        let buffered = if hash_all {
            row.size.min(crate::CHUNK)
        } else {
            0
        };
        crate::admit(&mut flow, &mut tasks, buffered, |r| {
            collect(&mut report, Some(r))
        })
        .await;
        let store = store.clone();
        tasks.spawn(
            async move { flowed(buffered, check(&*store, row, hash_all, Some(lookup)).await) },
        );
    }
    crate::drain(&mut flow, &mut tasks, |r| collect(&mut report, Some(r))).await;
    // Pass 2: the sample, looked up by path.
    if !sample.is_empty() {
        let reader = imb_manifest::ManifestReader::open(snap.path())?;
        for Pick(_, path, _) in sample.into_sorted_vec() {
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
        Some(Lookup::Found { size, crc32c }) => Some((size, crc32c)),
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
