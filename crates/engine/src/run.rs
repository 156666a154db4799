//! The coordinator: owns the manifest, feeds the queue, records outcomes, saves.

use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, Select};
use imb_manifest::Manifest;
use imb_queue::{TryPush, WorkQueue};
use imb_storage::{BackupStore, ObjectReplace, Payload, PutOptions};
use tokio::runtime::Handle;

use crate::lock::RunLock;
use crate::sync_store::SyncStore;
use crate::walk::{self, Filter, WalkItem};
use crate::worker::{Job, Kind, Outcome, Shared, Worker};
use crate::{BackupConfig, Error, NoProgress, Progress, Result, StopToken, Summary};
use imb_layout::{self as layout, ManifestName};

/// How often the coordinator wakes to check for a stop when nothing else happens.
const TICK: Duration = Duration::from_millis(200);
/// Commit the working manifest after this many writes, so workers' dedup lookups
/// see recent rows.
const COMMIT_EVERY: u64 = 512;

/// A test-only callback; see `Shared::after_hash`.
#[cfg(test)]
#[derive(Clone)]
pub(crate) struct TestHook(pub(crate) Arc<dyn Fn(&Path) + Send + Sync>);

#[cfg(test)]
impl std::fmt::Debug for TestHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TestHook")
    }
}

/// One backup run. Build it, then [`Backup::run`] it.
#[derive(Debug)]
pub struct Backup {
    config: BackupConfig,
    store: Arc<dyn BackupStore>,
    replace: Option<Arc<dyn ObjectReplace>>,
    progress: Arc<dyn Progress>,
    stop: StopToken,
    congestion: Option<imb_storage::adaptive::Signal>,
    #[cfg(test)]
    pub(crate) after_hash: Option<TestHook>,
}

impl Backup {
    /// A run of `config` into `store` (read and create only: the engine cannot
    /// overwrite or delete).
    pub fn new(config: BackupConfig, store: Arc<dyn BackupStore>) -> Self {
        Backup {
            config,
            store,
            replace: None,
            progress: Arc::new(NoProgress),
            stop: StopToken::new(),
            congestion: None,
            #[cfg(test)]
            after_hash: None,
        }
    }

    /// Lets the run refresh the `manifest.db` convenience copy. Without it, only
    /// the immutable `manifest-{ts}.db` is written.
    pub fn with_replace(mut self, replace: Arc<dyn ObjectReplace>) -> Self {
        self.replace = Some(replace);
        self
    }

    /// Reports progress to `progress`.
    pub fn with_progress(mut self, progress: Arc<dyn Progress>) -> Self {
        self.progress = progress;
        self
    }

    /// Stops gracefully when `stop` is triggered.
    pub fn with_stop(mut self, stop: StopToken) -> Self {
        self.stop = stop;
        self
    }

    /// Backs the uploads in flight off when `signal` (the target client's count of
    /// retries after 429, 503 or a timeout) moves.
    pub fn with_congestion_signal(mut self, signal: imb_storage::adaptive::Signal) -> Self {
        self.congestion = Some(signal);
        self
    }

    /// Runs the backup. Per-file problems are in the [`Summary`]; an `Err` means the
    /// run could not start or could not record its result.
    ///
    /// # Errors
    /// [`Error`] naming the setting, path or object that stopped the run.
    pub async fn run(self) -> Result<Summary> {
        let target = SyncStore::new(self.store.clone(), Handle::current());
        tokio::task::spawn_blocking(move || self.run_blocking(&target))
            .await
            .map_err(|e| Error::Internal(format!("backup task failed: {e}")))?
    }

    fn run_blocking(self, target: &SyncStore) -> Result<Summary> {
        let started = Instant::now();
        let cfg = &self.config;
        if cfg.workers == 0 {
            return Err(Error::InvalidConfig {
                key: "workers",
                message: "must be at least 1".into(),
            });
        }
        let source_shown = cfg.source.display().to_string();
        let md = std::fs::metadata(&cfg.source).map_err(|e| Error::Source {
            path: source_shown.clone(),
            source: e,
        })?;
        if !md.is_dir() {
            return Err(Error::Source {
                path: source_shown,
                source: std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory"),
            });
        }
        std::fs::read_dir(&cfg.source).map_err(|e| Error::Source {
            path: source_shown.clone(),
            source: e,
        })?;
        let filter = Filter::new(&cfg.excludes, &cfg.includes)?;

        // Removed on return; one left by a killed run is removed by the next.
        let (parent, prefix) = match &cfg.state_dir {
            Some(d) => (d.clone(), "run-"),
            None => (std::env::temp_dir(), "imb-backup-"),
        };
        std::fs::create_dir_all(&parent).map_err(|e| state_err(&parent, e))?;
        let work = imb_workdir::WorkDir::new_in(&parent, prefix, |_| {})
            .map_err(|e| state_err(&parent, e))?;
        let state = work.path().to_owned();

        let run_id = format!(
            "{}-{}",
            layout::format_ts(SystemTime::now()),
            random_suffix()
        );
        tracing::info!(source = %source_shown, run = %run_id, "backup starting");

        let lock = RunLock::acquire(target, run_id, cfg.lock_lease, cfg.lock_wait)?;
        // The run's names are chosen under the lock, after every earlier holder's
        // manifests: two runs never write the same object name.
        let result = target
            .run(layout::list_manifests(target.store()))
            .map_err(Error::from)
            .and_then(|names| {
                let newest = names.last().map(|l| l.name.ts.clone());
                let run_ts = layout::run_ts(SystemTime::now(), newest.as_deref());
                self.locked(target, &state, run_ts, filter, started)
            });
        lock.release();
        drop(work);
        result
    }

    fn locked(
        &self,
        target: &SyncStore,
        state: &Path,
        run_ts: String,
        filter: Filter,
        started: Instant,
    ) -> Result<Summary> {
        let cfg = &self.config;
        let mut summary = Summary::default();
        let work = state.join("manifest-work.db");
        let fetched = target.run(layout::fetch_manifest(target.store(), &work, None))?;
        match &fetched.base {
            Some(b) => tracing::info!(manifest = %b.name(), "loaded manifest"),
            None => tracing::info!("no manifest in the target: starting a fresh backup"),
        }
        let chain = Chain {
            has_base: fetched.base.is_some(),
            base_bytes: fetched.base_bytes,
            runs: fetched.chain_runs,
            bytes: fetched.chain_bytes,
            damaged: !fetched.warnings.is_empty(),
        };
        summary.warnings.extend(fetched.warnings);
        summary.warnings.extend(fetched.future.iter().map(|k| {
            format!("ignored {k}: dated more than a day ahead of now (planted, or a clock far off)")
        }));
        let manifest = Manifest::open(&work)?;

        let now = SystemTime::now();
        let shared = Arc::new(Shared {
            store: target.clone(),
            small_file: cfg.small_file,
            dedup: cfg.dedup,
            library_class: cfg.storage_classes.library.clone(),
            run_ts: run_ts.clone(),
            now_rfc3339: humantime::format_rfc3339_seconds(now).to_string(),
            halt: AtomicBool::new(false),
            stop: self.stop.clone(),
            deadline: cfg.max_duration.and_then(|m| started.checked_add(m)),
            gate: crate::gate::Gate::new(cfg.upload_limits(), self.congestion.clone()),
            readers: {
                // Lookups follow hashing but queue behind more uploads than
                // hashers: a few more readers than hashers, each with SQLite's
                // 2 MiB page cache, not one per upload thread.
                let n = (cfg.workers * 4).min(cfg.upload_threads()).max(1);
                let (tx, rx) = crossbeam_channel::bounded(n);
                for _ in 0..n {
                    tx.send(manifest.reader()?).expect("room for every reader");
                }
                (tx, rx)
            },
            fatal: Mutex::new(None),
            pace: cfg
                .bwlimit
                .map(|r| Arc::new(imb_storage::pace::Pace::new(r))),
            progress: self.progress.clone(),
            retries: AtomicU64::new(0),
            hash_slots: {
                let (tx, rx) = crossbeam_channel::bounded(cfg.workers);
                for _ in 0..cfg.workers {
                    tx.send(()).expect("room for every slot");
                }
                (tx, rx)
            },
            #[cfg(test)]
            after_hash: self.after_hash.clone(),
        });

        let mut co = Coordinator {
            backup: self,
            target,
            state,
            run_ts: run_ts.clone(),
            manifest,
            journal_n: 0,
            parts_saved: 0,
            part_failed: false,
            chain,
            last_save: Instant::now(),
            writes: 0,
            summary,
            walk_incomplete: false,
        };
        co.begin_journal()?;
        co.pipeline(&shared, filter, started)?;

        let fatal = shared.fatal.lock().expect("fatal lock poisoned").clone();
        if !co.summary.stopped && !co.walk_incomplete && fatal.is_none() {
            co.summary.files_archived = co.manifest.archive_unseen()?;
        } else if co.walk_incomplete {
            co.summary.warnings.push(
                "some directories could not be read, so no file was marked archived this run"
                    .into(),
            );
        }
        co.manifest.set_metadata(
            "last_backup",
            &humantime::format_rfc3339_seconds(now).to_string(),
        )?;
        if let Some(v) = &cfg.immich_version {
            co.manifest.set_metadata("immich_version", v)?;
        }
        co.finish()?;
        co.summary.retries += shared.retries.load(Ordering::Relaxed);
        co.summary.concurrency = Some(shared.gate.report());
        co.summary.duration_s = started.elapsed().as_secs_f64();
        if let Some(why) = fatal {
            return Err(Error::Internal(format!("backup aborted: {why}")));
        }
        tracing::info!(
            scanned = co.summary.files_scanned,
            uploaded = co.summary.files_uploaded,
            failed = co.summary.files_failed,
            "backup finished"
        );
        Ok(co.summary)
    }
}

/// The deltas a run's manifest was replayed from, since the last full manifest.
struct Chain {
    has_base: bool,
    base_bytes: u64,
    runs: u32,
    bytes: u64,
    /// A part or manifest could not be read: a full manifest ends the chain.
    damaged: bool,
}

struct Coordinator<'a> {
    backup: &'a Backup,
    target: &'a SyncStore,
    state: &'a Path,
    run_ts: String,
    manifest: Manifest,
    journal_n: u32,
    parts_saved: u32,
    part_failed: bool,
    chain: Chain,
    last_save: Instant,
    writes: u64,
    summary: Summary,
    walk_incomplete: bool,
}

impl Coordinator<'_> {
    fn pipeline(&mut self, shared: &Arc<Shared>, filter: Filter, started: Instant) -> Result<()> {
        let cfg = &self.backup.config;
        let (out_tx, out_rx) = crossbeam_channel::unbounded::<Outcome>();
        let threads = cfg.upload_threads();
        let mut workers = Vec::with_capacity(threads);
        for _ in 0..threads {
            let w = Worker {
                shared: shared.clone(),
            };
            let tx = out_tx.clone();
            workers.push(move |job: Job| {
                let _ = tx.send(w.process(job));
            });
        }
        drop(out_tx);
        let queue = WorkQueue::spawn("imb-worker", cfg.queue_capacity(), workers);

        let (walk_tx, walk_rx) = crossbeam_channel::bounded::<WalkItem>(1024);
        let source = cfg.source.clone();
        let walker = std::thread::Builder::new()
            .name("imb-walk".into())
            .spawn(move || walk::walk(&source, &filter, |item| walk_tx.send(item).is_ok()))
            .map_err(|e| Error::Internal(format!("cannot start the walker: {e}")))?;

        let res = self.feed(shared, &queue, &walk_rx, &out_rx, started);
        if res.is_err() {
            shared.halt.store(true, Ordering::SeqCst);
        }
        drop(walk_rx);
        let finished = queue.finish();
        let _ = walker.join();
        for o in out_rx.try_iter() {
            self.record(o)?;
        }
        res?;
        finished.map_err(|e| Error::Internal(e.to_string()))?;
        Ok(())
    }

    fn feed(
        &mut self,
        shared: &Shared,
        queue: &WorkQueue<Job>,
        walk_rx: &Receiver<WalkItem>,
        out_rx: &Receiver<Outcome>,
        started: Instant,
    ) -> Result<()> {
        let cfg = &self.backup.config;
        let mut pending: Option<Job> = None;
        let mut walk_done = false;
        loop {
            while let Ok(o) = out_rx.try_recv() {
                self.record(o)?;
            }
            let over_time = cfg.max_duration.is_some_and(|m| started.elapsed() >= m);
            if self.backup.stop.is_stopped() || over_time || shared.halt.load(Ordering::SeqCst) {
                if !shared.halt.swap(true, Ordering::SeqCst)
                    || over_time
                    || self.backup.stop.is_stopped()
                {
                    tracing::info!(over_time, "stopping: finishing files in flight");
                }
                self.summary.stopped = self.backup.stop.is_stopped() || over_time;
                return Ok(());
            }
            if let Some(job) = pending.take() {
                match queue.try_push(job) {
                    Ok(()) => {}
                    Err(TryPush::Full(job)) => {
                        pending = Some(job);
                        let mut sel = Select::new();
                        sel.send(queue.sender());
                        sel.recv(out_rx);
                        let _ = sel.ready_timeout(TICK);
                    }
                    Err(TryPush::Closed(_)) => {
                        return Err(Error::Internal("all workers exited".into()));
                    }
                }
                continue;
            }
            if walk_done {
                self.backup.progress.walk_finished();
                return Ok(());
            }
            let mut sel = Select::new();
            let walk_i = sel.recv(walk_rx);
            sel.recv(out_rx);
            match sel.ready_timeout(TICK) {
                Ok(i) if i == walk_i => match walk_rx.try_recv() {
                    Ok(item) => pending = self.walked(item)?,
                    Err(crossbeam_channel::TryRecvError::Disconnected) => walk_done = true,
                    Err(crossbeam_channel::TryRecvError::Empty) => {}
                },
                _ => {}
            }
        }
    }

    fn walked(&mut self, item: WalkItem) -> Result<Option<Job>> {
        let cfg = &self.backup.config;
        match item {
            WalkItem::File {
                rel,
                abs,
                size,
                mtime_ns,
            } => {
                self.manifest.mark_seen(&rel)?;
                self.wrote()?;
                let prior = self.manifest.get(&rel)?;
                let unchanged = !cfg.checksum
                    && prior
                        .as_ref()
                        .is_some_and(|p| !p.archived && p.size == size && p.mtime_ns == mtime_ns);
                if unchanged {
                    self.summary.files_scanned += 1;
                    self.summary.files_unchanged += 1;
                    self.backup.progress.unchanged();
                    return Ok(None);
                }
                self.backup.progress.queued(size);
                Ok(Some(Job {
                    rel,
                    abs,
                    size,
                    prior,
                }))
            }
            WalkItem::Failed { path, error, dir } => {
                tracing::warn!(path = %path, error = %error, "cannot read");
                self.walk_incomplete |= dir;
                self.summary.fail(path, error);
                Ok(None)
            }
            WalkItem::Skipped { path, reason } => {
                tracing::info!(path = %path, reason, "skipped");
                self.summary.files_skipped += 1;
                Ok(None)
            }
        }
    }

    fn record(&mut self, o: Outcome) -> Result<()> {
        let s = &mut self.summary;
        match o.kind {
            Kind::Skipped => return Ok(()),
            Kind::Stopped => {
                s.stopped = true;
                return Ok(());
            }
            Kind::Uploaded(bytes) => {
                s.files_scanned += 1;
                s.files_uploaded += 1;
                s.bytes_uploaded += bytes;
            }
            Kind::Suspect(bytes) => {
                s.files_scanned += 1;
                s.files_uploaded += 1;
                s.bytes_uploaded += bytes;
                s.suspect_corruption.push(o.rel.clone());
            }
            Kind::Deduplicated => {
                s.files_scanned += 1;
                s.files_deduplicated += 1;
            }
            Kind::Unchanged => {
                s.files_scanned += 1;
                s.files_unchanged += 1;
            }
            Kind::Failed(e) => {
                tracing::warn!(path = %o.rel, error = %e, "file not backed up");
                s.fail(o.rel.clone(), e);
            }
        }
        if let Some(h) = &o.history {
            self.manifest.add_history(h)?;
        }
        if let Some(r) = &o.record {
            self.manifest.upsert(r)?;
        }
        self.wrote()?;
        self.save()
    }

    fn wrote(&mut self) -> Result<()> {
        self.writes += 1;
        if self.writes >= COMMIT_EVERY {
            self.manifest.commit()?;
            self.writes = 0;
        }
        Ok(())
    }

    fn begin_journal(&mut self) -> Result<()> {
        self.journal_n += 1;
        let p = self.state.join(format!("journal-{}.db", self.journal_n));
        self.manifest.begin_journal(&p)?;
        Ok(())
    }

    /// Uploads the journal as a create-only part when enough has changed. A failed
    /// save is a warning: the rows stay in the working manifest, and the run ends
    /// with a full manifest that holds them.
    fn save(&mut self) -> Result<()> {
        let cfg = &self.backup.config;
        let rows = self.manifest.journal_rows();
        let due =
            rows >= cfg.save_every || (rows > 0 && self.last_save.elapsed() >= cfg.save_interval);
        if !due {
            return Ok(());
        }
        let (path, rows) = self.manifest.end_journal()?.expect("a journal is open");
        self.save_part(&path, rows)?;
        self.last_save = Instant::now();
        self.begin_journal()
    }

    /// Packs a closed journal and uploads it as the run's next part.
    fn save_part(&mut self, path: &Path, rows: u64) -> Result<()> {
        let m = ManifestName::part(&self.run_ts, self.journal_n);
        let name = m.name();
        let res = self.upload_packed(path, &m);
        match res {
            Ok(()) => {
                // Its own target: a terminal hides these (one per 1000 files).
                tracing::info!(target: "imb_engine::save", journal = %name, rows, "manifest journal saved");
                self.parts_saved += 1;
                self.summary.manifest_saves += 1;
            }
            Err(e) => {
                tracing::warn!(journal = %name, error = %e, "manifest journal not saved");
                self.part_failed = true;
                self.summary
                    .warnings
                    .push(format!("manifest journal {name} not saved: {e}"));
            }
        }
        imb_manifest::remove_db(path);
        Ok(())
    }

    fn upload_packed(&mut self, path: &Path, m: &ManifestName) -> Result<()> {
        let packed = path.with_extension("db.gz");
        let res = imb_manifest::pack(path, &packed)
            .map_err(Error::from)
            .and_then(|_| self.upload_file(&packed, &m.key()));
        let _ = std::fs::remove_file(&packed);
        res
    }

    /// Ends the run: the last journal goes up as the run's delta, or, when the
    /// chain since the last full manifest has grown long or large (or a part was
    /// lost), as a last part followed by a full manifest.
    fn finish(&mut self) -> Result<()> {
        let cfg = &self.backup.config;
        let parts = self.parts_saved.to_string();
        self.manifest
            .set_journal_metadata(imb_manifest::RUN_PARTS, &parts)?;
        let (path, rows) = self.manifest.end_journal()?.expect("a journal is open");
        let c = &self.chain;
        let full = !c.has_base
            || c.damaged
            || self.part_failed
            || c.runs + 1 >= cfg.full_manifest_every
            || c.bytes + self.summary.manifest_bytes >= c.base_bytes;
        if !full {
            let m = ManifestName::delta(&self.run_ts);
            let res = self.upload_packed(&path, &m);
            imb_manifest::remove_db(&path);
            res?;
            self.summary.manifest_saves += 1;
            self.summary.manifest = Some(m.name());
            tracing::info!(manifest = %m.name(), rows, "manifest delta saved");
            return Ok(());
        }
        if rows > 0 {
            self.save_part(&path, rows)?;
        }
        imb_manifest::remove_db(&path);
        self.publish()
    }

    /// Uploads a manifest object: the objects its rows name are made durable
    /// first, and it itself after.
    fn upload_file(&mut self, path: &Path, key: &imb_storage::Key) -> Result<()> {
        self.target.flush()?;
        let file = File::open(path).map_err(|e| state_err(path, e))?;
        let len = file.metadata().map_err(|e| state_err(path, e))?.len();
        let payload = Payload::File {
            file: Arc::new(file),
            len,
        };
        let mut opts = PutOptions::default();
        if let Some(c) = &self.backup.config.storage_classes.manifests {
            opts = opts.with_storage_class(c.clone());
        }
        self.target.put(key, payload, opts)?;
        self.target.flush()?;
        self.summary.manifest_bytes += len;
        Ok(())
    }

    /// Uploads the full manifest `manifest-{ts}.db`, then refreshes `manifest.db`.
    fn publish(&mut self) -> Result<()> {
        let m = ManifestName::full(&self.run_ts);
        let name = m.name();
        let snap = self.state.join(&name);
        imb_manifest::remove_db(&snap);
        self.manifest.snapshot(&snap)?;
        self.upload_file(&snap, &m.key())?;
        self.summary.manifest_saves += 1;
        self.summary.manifest_full = true;
        self.summary.manifest = Some(name.clone());
        tracing::info!(manifest = %name, "manifest saved");
        if let Some(replace) = &self.backup.replace {
            let res = File::open(&snap)
                .and_then(|f| Ok((f.metadata()?.len(), f)))
                .map_err(|e| state_err(&snap, e))
                .and_then(|(len, f)| {
                    let payload = Payload::File {
                        file: Arc::new(f),
                        len,
                    };
                    self.target
                        .run(replace.replace_opts(
                            &layout::manifest_copy_key(),
                            payload,
                            PutOptions::default(),
                        ))
                        .map_err(Error::from)
                });
            if let Err(e) = res {
                tracing::warn!(error = %e, "manifest.db not refreshed; readers use {name}");
                self.summary
                    .warnings
                    .push(format!("manifest.db not refreshed: {e}"));
            }
        }
        let _ = std::fs::remove_file(&snap);
        Ok(())
    }
}

fn state_err(path: &Path, source: std::io::Error) -> Error {
    Error::State {
        path: path.display().to_string(),
        source,
    }
}

fn random_suffix() -> String {
    use sha2::Digest;
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let seed = format!(
        "{}-{nanos}-{:?}",
        std::process::id(),
        std::thread::current().id()
    );
    imb_hash::hex(&sha2::Sha256::digest(seed.as_bytes())[..4])
}
