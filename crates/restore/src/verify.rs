//! Checking the target against the manifest.

use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::Instant;

use imb_manifest::FileRecord;
use imb_storage::{Error as StoreError, GetOptions, Key, ObjectRead};
use serde::Serialize;
use sha2::Digest;
use tokio::task::JoinSet;

use crate::{MAX_LISTED, Result, Snapshot, stream_rows};

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
}

impl VerifyOptions {
    /// Options at `level`, requests in flight adapted to the link.
    pub fn new(level: Level) -> Self {
        VerifyOptions {
            level,
            flow: crate::default_flow(),
            congestion: None,
            prefix: None,
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
    // Pass 1: metadata for every live file (and hashes, for `All`).
    let mut sample: BinaryHeap<Pick> = BinaryHeap::new();
    let mut sample_bytes = 0u64;
    let mut rows = stream_rows(snap.path().to_owned(), opts.prefix.clone());
    let mut tasks = JoinSet::new();
    let mut flow = imb_storage::adaptive::Flow::new(opts.flow, opts.congestion.clone());
    while let Some(row) = rows.recv().await {
        let row = row?;
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
        tasks.spawn(async move { flowed(buffered, check(&*store, row, hash_all).await) });
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
            tasks.spawn(async move { flowed(buffered, check(&*store, row, true).await) });
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

type Checked = (Option<Finding>, Option<u64>);

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
        Some(Ok((finding, hashed))) => {
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
    if let Some(Ok((Some(f), _))) = &r
        && report.findings.iter().any(|g| g.path == f.path)
    {
        return;
    }
    collect(report, r);
}

/// Checks one file's object; with `hash`, downloads and re-hashes it.
async fn check(store: &dyn ObjectRead, row: FileRecord, hash: bool) -> Checked {
    let object = imb_layout::content_key(&row);
    let finding = |problem: String| Finding {
        path: row.file_path.clone(),
        object: object.clone(),
        problem,
    };
    let key = match Key::parse(object.as_str()) {
        Ok(k) => k,
        Err(e) => return (Some(finding(format!("invalid object key: {e}"))), None),
    };
    let meta = match store.head(&key).await {
        Ok(m) => m,
        Err(StoreError::NotFound { .. }) => return (Some(finding("object missing".into())), None),
        Err(e) => return (Some(finding(format!("cannot check: {e}"))), None),
    };
    if meta.size != row.size {
        return (
            Some(finding(format!(
                "size {} in the target, {} in the manifest",
                meta.size, row.size
            ))),
            None,
        );
    }
    if let Some(c) = meta.crc32c
        && c != row.crc32c
    {
        return (
            Some(finding(format!(
                "crc32c {c:08x} in the target, {:08x} in the manifest",
                row.crc32c
            ))),
            None,
        );
    }
    if !hash {
        return (None, None);
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
        Ok(d) if d.sha256 == row.checksum => (None, Some(d.len)),
        Ok(d) => (
            Some(finding(format!(
                "content differs: sha256 {} in the target, {} in the manifest",
                d.sha256_hex(),
                imb_hash::hex(&row.checksum)
            ))),
            Some(d.len),
        ),
        Err(e) => (Some(finding(format!("cannot read: {e}"))), None),
    }
}
