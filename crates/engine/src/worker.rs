//! The consumer side: hash one file, decide where its content goes, store it.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use imb_hash::Digests;
use imb_manifest::{FileRecord, HistoryRecord, ManifestReader};
use imb_storage::{Error as StoreError, GetOptions, Key, Payload, PutOptions, PutResult};

use crate::sync_store::SyncStore;
use crate::{DedupMode, Progress};
use imb_layout::{content_key, library_key, version_key};

/// A file the coordinator found new or changed.
#[derive(Debug)]
pub(crate) struct Job {
    pub(crate) rel: String,
    pub(crate) abs: PathBuf,
    pub(crate) size: u64,
    pub(crate) prior: Option<FileRecord>,
}

#[derive(Debug)]
pub(crate) enum Kind {
    Uploaded(u64),
    Deduplicated,
    Unchanged,
    Suspect(u64),
    Failed(String),
    /// Not started because the run is halting (a fatal error, or the coordinator
    /// stopping).
    Skipped,
    /// Not started because a stop was asked for or `--max-duration` passed while
    /// it waited in the queue.
    Stopped,
}

/// What happened to a job, and what to record.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub(crate) rel: String,
    pub(crate) kind: Kind,
    pub(crate) record: Option<FileRecord>,
    pub(crate) history: Option<HistoryRecord>,
}

/// What every worker shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) store: SyncStore,
    pub(crate) small_file: u64,
    pub(crate) dedup: DedupMode,
    pub(crate) library_class: Option<String>,
    pub(crate) run_ts: String,
    pub(crate) now_rfc3339: String,
    pub(crate) halt: AtomicBool,
    /// Checked before each file: a stop asked for, or the `--max-duration`
    /// deadline, after the walk has queued its last file still stops the run.
    pub(crate) stop: crate::StopToken,
    pub(crate) deadline: Option<std::time::Instant>,
    /// Uploads in flight.
    pub(crate) gate: crate::gate::Gate,
    /// Readers of the working manifest for dedup lookups, a few per hashing
    /// thread: not one per upload thread, whose page caches would be most of a
    /// run's memory.
    pub(crate) readers: (
        crossbeam_channel::Sender<ManifestReader>,
        crossbeam_channel::Receiver<ManifestReader>,
    ),
    pub(crate) fatal: Mutex<Option<String>>,
    /// `--bwlimit`, taken by the store piece by piece as it sends.
    pub(crate) pace: Option<Arc<imb_storage::pace::Pace>>,
    pub(crate) progress: Arc<dyn Progress>,
    pub(crate) retries: AtomicU64,
    /// One token per hashing thread allowed at once: a worker holds one while it
    /// reads and hashes, and gives it back before it uploads.
    pub(crate) hash_slots: (
        crossbeam_channel::Sender<()>,
        crossbeam_channel::Receiver<()>,
    ),
    /// Runs between hashing a file and storing it: lets tests change a file at
    /// exactly the moment that matters.
    #[cfg(test)]
    pub(crate) after_hash: Option<crate::run::TestHook>,
}

struct ReadFile {
    digests: Digests,
    payload: Payload,
    mtime_ns: i64,
}

enum Stored {
    Created(Key, PutResult),
    /// The same content was already at the key (an earlier run stored it but
    /// could not record it).
    Existing(Key),
}

/// Why reading or storing a file did not give its result.
enum Fail {
    /// The file changed while it was read (or its upload's checksum did not
    /// match what was read): worth one more try.
    Changed,
    /// It failed, for this reason.
    Failed(String),
    /// The run began stopping before the file was read: left for the next run.
    Stopped,
}

fn failed(rel: String, why: String) -> Outcome {
    Outcome {
        rel,
        kind: Kind::Failed(why),
        record: None,
        history: None,
    }
}

fn mtime_ns(md: &std::fs::Metadata) -> i64 {
    md.mtime()
        .saturating_mul(1_000_000_000)
        .saturating_add(md.mtime_nsec())
}

/// One worker thread's state.
#[derive(Debug)]
pub(crate) struct Worker {
    pub(crate) shared: Arc<Shared>,
}

impl Worker {
    pub(crate) fn process(&self, job: Job) -> Outcome {
        let s = &self.shared;
        let not_started = |kind| Outcome {
            rel: job.rel.clone(),
            kind,
            record: None,
            history: None,
        };
        if s.halt.load(Ordering::SeqCst) {
            return not_started(Kind::Skipped);
        }
        let stopping =
            || s.stop.is_stopped() || s.deadline.is_some_and(|d| std::time::Instant::now() >= d);
        if stopping() {
            return not_started(Kind::Stopped);
        }
        // A permit before the file is read: what waits to upload is bounded.
        let buffered = job.size.min(s.small_file).max(1);
        if s.gate
            .acquire(buffered, || s.halt.load(Ordering::SeqCst) || stopping())
            .is_none()
        {
            return not_started(if s.halt.load(Ordering::SeqCst) {
                Kind::Skipped
            } else {
                Kind::Stopped
            });
        }
        s.progress.started(&job.rel, job.size);
        let mut out = None;
        for attempt in 0..2 {
            match self.attempt(&job) {
                Ok(o) => {
                    out = Some(o);
                    break;
                }
                Err(Fail::Changed) if attempt == 0 => {
                    tracing::info!(path = %job.rel, "file changed while being read; trying once more");
                }
                Err(Fail::Changed) => {}
                Err(Fail::Failed(e)) => {
                    out = Some(failed(job.rel.clone(), e));
                    break;
                }
                Err(Fail::Stopped) => {
                    out = Some(not_started(Kind::Stopped));
                    break;
                }
            }
        }
        let out = out.unwrap_or_else(|| {
            failed(
                job.rel.clone(),
                "changed while being read (tried twice)".into(),
            )
        });
        let sent = match out.kind {
            Kind::Uploaded(b) | Kind::Suspect(b) => Some(b),
            _ => None,
        };
        s.gate.release(buffered, sent);
        s.progress.finished(&job.rel, job.size);
        out
    }

    fn read(&self, job: &Job) -> Result<ReadFile, Fail> {
        let (give_back, take) = &self.shared.hash_slots;
        take.recv().expect("hash slots outlive the workers");
        // Reading is what starts a file: a stop that came while this one waited
        // for its turn leaves it for the next run.
        let s = &self.shared;
        let res =
            if s.stop.is_stopped() || s.deadline.is_some_and(|d| std::time::Instant::now() >= d) {
                Err(Fail::Stopped)
            } else {
                self.read_unlimited(job)
            };
        give_back.send(()).expect("hash slots outlive the workers");
        res
    }

    fn read_unlimited(&self, job: &Job) -> Result<ReadFile, Fail> {
        let file = match File::open(&job.abs) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Fail::Failed("vanished before it could be read".into()));
            }
            Err(e) => return Err(Fail::Failed(format!("cannot open: {e}"))),
        };
        let md0 = match file.metadata() {
            Ok(m) if m.is_file() => m,
            Ok(_) => return Err(Fail::Failed("not a regular file".into())),
            Err(e) => return Err(Fail::Failed(format!("cannot stat: {e}"))),
        };
        let len = md0.len();
        let (payload, digests) = if len <= self.shared.small_file {
            let mut buf = Vec::with_capacity(len as usize);
            if let Err(e) = (&file).take(len + 1).read_to_end(&mut buf) {
                return Err(Fail::Failed(format!("read failed: {e}")));
            }
            let d = imb_hash::digest(&buf);
            (Payload::from(buf), d)
        } else {
            let payload = Payload::File {
                file: Arc::new(file.try_clone().map_err(|_| Fail::Changed)?),
                len,
            };
            match imb_hash::hash_reader(payload.reader(0)) {
                Ok(d) => (payload, d),
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    return Err(Fail::Changed);
                }
                Err(e) => return Err(Fail::Failed(format!("read failed: {e}"))),
            }
        };
        let md1 = match file.metadata() {
            Ok(m) => m,
            Err(e) => return Err(Fail::Failed(format!("cannot stat: {e}"))),
        };
        if md1.len() != len || mtime_ns(&md1) != mtime_ns(&md0) || digests.len != len {
            return Err(Fail::Changed);
        }
        Ok(ReadFile {
            digests,
            payload,
            mtime_ns: mtime_ns(&md0),
        })
    }

    fn attempt(&self, job: &Job) -> Result<Outcome, Fail> {
        let s = &self.shared;
        let rel = job.rel.clone();
        let rf = self.read(job)?;
        let d = rf.digests;
        #[cfg(test)]
        if let Some(hook) = &s.after_hash {
            (hook.0)(&job.abs);
        }
        let record_for = |k: &Key, generation: Option<i64>| {
            let (lib, recorded) = library_key(&rel);
            FileRecord {
                file_path: rel.clone(),
                checksum: d.sha256,
                sha1: d.sha1,
                crc32c: d.crc32c,
                size: d.len,
                mtime_ns: rf.mtime_ns,
                archived: false,
                generation,
                object_key: (recorded || *k != lib).then(|| k.to_string()),
            }
        };

        if let Some(prior) = &job.prior {
            if prior.checksum == d.sha256 {
                // Same content: only the times changed, or a checksum run found it intact.
                let mut rec = prior.clone();
                rec.mtime_ns = rf.mtime_ns;
                rec.archived = false;
                let record = (rec != *prior).then_some(rec);
                return Ok(Outcome {
                    rel,
                    kind: Kind::Unchanged,
                    record,
                    history: None,
                });
            }
            if !prior.archived && prior.size == d.len && prior.mtime_ns == rf.mtime_ns {
                // Content changed behind unchanged size and time: bit rot or tampering.
                // Keep the backed-up copy current; store what we read as evidence.
                tracing::warn!(path = %rel, "content changed but size and mtime did not: suspected corruption");
                let k = version_key(&rel, &s.run_ts);
                let (k, generation, bytes) = match self.store_at(&rel, k, &rf)? {
                    Stored::Created(k, r) => (k, r.generation, d.len),
                    Stored::Existing(k) => (k, None, 0),
                };
                return Ok(Outcome {
                    history: Some(HistoryRecord {
                        file: record_for(&k, generation),
                        replaced_at: s.now_rfc3339.clone(),
                        reason: "suspect".into(),
                    }),
                    rel,
                    kind: Kind::Suspect(bytes),
                    record: None,
                });
            }
        }

        let history = job.prior.as_ref().map(|p| HistoryRecord {
            file: FileRecord {
                archived: false,
                ..p.clone()
            },
            replaced_at: s.now_rfc3339.clone(),
            reason: "changed".into(),
        });
        let target = match &job.prior {
            None => library_key(&rel).0,
            Some(_) => version_key(&rel, &s.run_ts),
        };

        if let Some(rec) = self.dedup(&rel, &target, &d, &record_for) {
            return Ok(Outcome {
                rel,
                kind: Kind::Deduplicated,
                record: Some(rec),
                history,
            });
        }

        Ok(match self.store_at(&rel, target, &rf)? {
            Stored::Created(k, r) => Outcome {
                record: Some(record_for(&k, r.generation)),
                rel,
                kind: Kind::Uploaded(d.len),
                history,
            },
            Stored::Existing(k) => {
                tracing::info!(path = %rel, key = %k, "content already in the target; recorded without uploading");
                Outcome {
                    record: Some(record_for(&k, None)),
                    rel,
                    kind: Kind::Unchanged,
                    history,
                }
            }
        })
    }

    /// Reuses content already in the target, if any.
    fn dedup(
        &self,
        rel: &str,
        target: &Key,
        d: &Digests,
        record_for: &dyn Fn(&Key, Option<i64>) -> FileRecord,
    ) -> Option<FileRecord> {
        let s = &self.shared;
        let (give_back, take) = &s.readers;
        let reader = take.recv().expect("readers outlive the workers");
        let found = reader.find_content(&d.sha256);
        give_back.send(reader).expect("readers outlive the workers");
        let existing = match found {
            Ok(e) => e?,
            Err(e) => {
                tracing::warn!(path = %rel, error = %e, "dedup lookup failed; uploading instead");
                return None;
            }
        };
        if existing.size != d.len {
            return None;
        }
        // The row may come from a manifest read back from the target: a key that
        // does not parse is no content to reuse.
        let Ok(from) = Key::parse(content_key(&existing)) else {
            tracing::warn!(path = %rel, "dedup candidate has an invalid object key; uploading instead");
            return None;
        };
        match s.dedup {
            DedupMode::Reference => Some(record_for(&from, existing.generation)),
            _ => {
                let res = s.store.copy(&from, target);
                match res {
                    Ok(r) => {
                        tracing::debug!(path = %rel, from = %from, "deduplicated by server-side copy");
                        Some(record_for(target, r.generation))
                    }
                    Err(StoreError::AlreadyExists { .. }) if self.same_content(target, d) => {
                        Some(record_for(target, None))
                    }
                    Err(e) => {
                        tracing::warn!(path = %rel, from = %from, error = %e, "copy of existing content failed; uploading instead");
                        None
                    }
                }
            }
        }
    }

    /// Creates the content at `k`; if something else is there, at a version key.
    fn store_at(&self, rel: &str, k: Key, rf: &ReadFile) -> Result<Stored, Fail> {
        let s = &self.shared;
        let d = &rf.digests;
        let mut opts = PutOptions::default()
            .with_crc32c(d.crc32c)
            .with_metadata("sha256", d.sha256_hex())
            .with_pace(s.pace.clone());
        if let Some(c) = &s.library_class {
            opts = opts.with_storage_class(c.clone());
        }
        let mut k = k;
        for _ in 0..2 {
            let res = s.store.put(&k, rf.payload.clone(), opts.clone());
            match res {
                Ok(r) => return Ok(Stored::Created(k, r)),
                Err(StoreError::ChecksumMismatch { .. }) => return Err(Fail::Changed),
                Err(StoreError::AlreadyExists { .. }) => {
                    if self.same_content(&k, d) {
                        return Ok(Stored::Existing(k));
                    }
                    let v = version_key(rel, &s.run_ts);
                    if v == k {
                        return Err(Fail::Failed(format!("{k} already holds other content")));
                    }
                    tracing::warn!(path = %rel, key = %k, "target key holds other content; storing as a version");
                    k = v;
                }
                Err(e) => {
                    if matches!(
                        e,
                        StoreError::Unauthenticated { .. } | StoreError::PermissionDenied { .. }
                    ) {
                        self.halt(format!("{e}"));
                    }
                    return Err(Fail::Failed(e.to_string()));
                }
            }
        }
        Err(Fail::Failed(format!("{k} already holds other content")))
    }

    /// Whether the object at `k` holds exactly the content `d` describes.
    fn same_content(&self, k: &Key, d: &Digests) -> bool {
        let s = &self.shared;
        let Ok(meta) = s.store.head(k) else {
            return false;
        };
        if meta.size != d.len || meta.crc32c.is_some_and(|c| c != d.crc32c) {
            return false;
        }
        if let Some(h) = meta.metadata.get("sha256") {
            return *h == d.sha256_hex();
        }
        // No recorded hash: read the object back, streaming, and compare.
        let hashed = s.store.run(async {
            let mut res = s.store.store().get_opts(k, GetOptions::default()).await?;
            let mut h = imb_hash::Hasher::new();
            while let Some(chunk) = res.body.next_chunk().await? {
                h.update(&chunk);
            }
            Ok::<_, StoreError>(h.finish())
        });
        hashed.is_ok_and(|h| h.sha256 == d.sha256)
    }

    fn halt(&self, why: String) {
        let s = &self.shared;
        let mut fatal = s.fatal.lock().expect("fatal lock poisoned");
        fatal.get_or_insert(why);
        s.halt.store(true, Ordering::SeqCst);
    }
}
