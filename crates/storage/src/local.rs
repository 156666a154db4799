//! A store in a local directory, laid out exactly like the bucket: object
//! `library/a/b.jpg` is the file `ROOT/library/a/b.jpg`.
//!
//! A create is written to an unnamed `O_TMPFILE` in the object's own directory,
//! checked against the declared CRC32C, and linked at its key (`linkat`, which
//! fails if the key exists, so a create can never overwrite); where the
//! filesystem refuses `O_TMPFILE`, a staged file under `ROOT/.imb-staging/` and a
//! `hard_link` do the same. A replace is a staged file and a `rename` (synced
//! first). A kill leaves at most a stray staged file, never a partial object.
//! Creates are made durable together by `flush` (one `syncfs`), which the backup
//! calls before every manifest save, so a manifest row never names an object a
//! power cut could lose. Blocking I/O runs in `block_in_place` on a
//! multi-threaded runtime, else on tokio's blocking pool.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;

use crate::{
    ByteChunks, CopyOptions, Error, GetOptions, GetResult, Key, ListOptions, ListPage,
    ObjectCreate, ObjectDelete, ObjectMeta, ObjectRead, ObjectReplace, Payload, PutOptions,
    PutResult, Result, Upload,
};

const STAGING: &str = ".imb-staging";
const CHUNK: usize = 256 * 1024;
const DEFAULT_PAGE: usize = 1000;

/// A store in a local directory, with every capability.
#[derive(Debug, Clone)]
pub struct LocalDir {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    root: PathBuf,
    fsync: bool,
    counter: AtomicU64,
    /// Creates go through unnamed files until the filesystem refuses one.
    unnamed: std::sync::atomic::AtomicBool,
    /// Directories created lately (see `made_dir`).
    recent_dirs: std::sync::Mutex<std::collections::VecDeque<PathBuf>>,
}

impl LocalDir {
    /// A store rooted at `root`, created if missing.
    ///
    /// # Errors
    /// [`Error::Io`] naming `root` if it cannot be created or is not a writable directory.
    pub fn new(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        let shown = root.display().to_string();
        fs::create_dir_all(root.join(STAGING)).map_err(|e| Error::io(&shown, e))?;
        // Probe writability now so an unwritable target fails before any work.
        let probe = root
            .join(STAGING)
            .join(format!("probe-{}", std::process::id()));
        File::create(&probe).map_err(|e| Error::io(&shown, e))?;
        let _ = fs::remove_file(&probe);
        clean_stale_staging(&root.join(STAGING));
        Ok(LocalDir {
            inner: Arc::new(Inner {
                root,
                fsync: true,
                counter: AtomicU64::new(0),
                unnamed: true.into(),
                recent_dirs: Default::default(),
            }),
        })
    }

    /// Whether objects are made durable (default on): each [`ObjectCreate::flush`]
    /// syncs the filesystem, replacements and streamed uploads are synced as they
    /// complete. Off only for throwaway targets such as benchmarks.
    pub fn with_fsync(self, fsync: bool) -> Self {
        LocalDir {
            inner: Arc::new(Inner {
                root: self.inner.root.clone(),
                fsync,
                counter: AtomicU64::new(0),
                unnamed: true.into(),
                recent_dirs: Default::default(),
            }),
        }
    }

    /// Creates go through staged files, as on a filesystem without `O_TMPFILE`.
    #[cfg(test)]
    pub(crate) fn staged_only(self) -> Self {
        self.inner.unnamed.store(false, Ordering::Relaxed);
        self
    }

    /// The directory the store lives in.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// The file that holds `key`.
    pub fn path_of(&self, key: &Key) -> PathBuf {
        self.inner.root.join(key.as_str())
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let inner = self.inner.clone();
        // On a multi-threaded runtime the work runs where it is asked for: on a
        // thread of the caller's own (the backup's workers) at no cost, on a
        // runtime worker after handing its tasks to another. That saves two thread
        // switches per small file; a current-thread runtime still needs the pool.
        if tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
        {
            return tokio::task::block_in_place(|| f(&inner));
        }
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| Error::Generic {
                store: "local",
                message: format!("blocking task failed: {e}"),
                transient: false,
                source: None,
            })?
    }
}

impl Inner {
    fn checked_path(&self, key: &Key) -> Result<PathBuf> {
        if key.as_str() == STAGING || key.as_str().starts_with(".imb-staging/") {
            return Err(Error::Generic {
                store: "local",
                message: format!("{key}: reserved for staging"),
                transient: false,
                source: None,
            });
        }
        Ok(self.root.join(key.as_str()))
    }

    fn new_staged(&self) -> Result<(Staged, File)> {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let path = self
            .root
            .join(STAGING)
            .join(format!("{}-{}-{n}", std::process::id(), nanos()));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| Error::io(path.display().to_string(), e))?;
        Ok((
            Staged {
                path,
                size: 0,
                crc: 0,
            },
            file,
        ))
    }

    /// Writes the payload to a staged file; synced when `sync` (a replacement:
    /// the rename must not publish bytes still in the page cache).
    fn stage(&self, key: &Key, payload: &Payload, opts: &PutOptions, sync: bool) -> Result<Staged> {
        let (mut staged, mut file) = self.new_staged()?;
        let shown = staged.path.display().to_string();
        let (written, crc) = write_payload(key, payload, opts, &mut file, &shown)?;
        if sync {
            file.sync_all().map_err(|e| Error::io(&shown, e))?;
        }
        staged.size = written;
        staged.crc = crc;
        Ok(staged)
    }

    /// A create without a staged name: the bytes go to an unnamed file in the
    /// object's own directory (`O_TMPFILE`), which is then linked at the key, so
    /// the object appears only complete, and workers neither meet in one staging
    /// directory nor unlink anything. `None` where the filesystem (or a missing
    /// `/proc`) does not allow it; the caller stages instead.
    fn create_unnamed(
        &self,
        key: &Key,
        target: &Path,
        payload: &Payload,
        opts: &PutOptions,
    ) -> Result<Option<PutResult>> {
        use rustix::fs::{AtFlags, CWD, Mode, OFlags};
        use std::os::fd::AsRawFd;
        let parent = target.parent().expect("a key has a parent under the root");
        self.made_dir(parent)
            .map_err(|e| Error::io(key.as_str(), e))?;
        let unsupported = |e: rustix::io::Errno| {
            [
                rustix::io::Errno::OPNOTSUPP,
                rustix::io::Errno::ISDIR,
                rustix::io::Errno::INVAL,
            ]
            .contains(&e)
        };
        let fd = match rustix::fs::open(
            parent,
            OFlags::TMPFILE | OFlags::WRONLY | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o666),
        ) {
            Ok(fd) => fd,
            Err(e) if unsupported(e) => return Ok(None),
            Err(e) => return Err(Error::io(key.as_str(), e.into())),
        };
        let mut file = File::from(fd);
        let (size, crc) = write_payload(key, payload, opts, &mut file, key.as_str())?;
        let by_fd = format!("/proc/self/fd/{}", file.as_raw_fd());
        match rustix::fs::linkat(CWD, by_fd.as_str(), CWD, target, AtFlags::SYMLINK_FOLLOW) {
            Ok(()) => Ok(Some(PutResult::new(size, Some(crc)))),
            Err(rustix::io::Errno::NOENT) if !Path::new("/proc/self/fd").exists() => Ok(None),
            Err(e) => Err(map_exists(key, e.into())),
        }
    }
}

impl Inner {
    /// `create_dir_all`, skipped for the directories created most recently: files
    /// come directory by directory, so most creates need no `mkdir` at all. (A
    /// directory removed since makes the create fail; the store is not shared.)
    fn made_dir(&self, dir: &Path) -> io::Result<()> {
        const REMEMBERED: usize = 64;
        let mut recent = self.recent_dirs.lock().unwrap_or_else(|p| p.into_inner());
        if recent.iter().any(|d| d == dir) {
            return Ok(());
        }
        fs::create_dir_all(dir)?;
        if recent.len() == REMEMBERED {
            recent.pop_front();
        }
        recent.push_back(dir.to_owned());
        Ok(())
    }
}

/// Copies `payload` into `file` (pieces paced by `--bwlimit`), checking the
/// declared CRC32C. Returns the size and the CRC32C.
fn write_payload(
    key: &Key,
    payload: &Payload,
    opts: &PutOptions,
    file: &mut File,
    shown: &str,
) -> Result<(u64, u32)> {
    let mut crc = 0u32;
    let mut written = 0u64;
    let mut put = |bytes: &[u8]| -> Result<()> {
        if let Some(p) = &opts.pace {
            p.acquire(bytes.len() as u64);
        }
        crc = crc32c::crc32c_append(crc, bytes);
        file.write_all(bytes).map_err(|e| Error::io(shown, e))?;
        written += bytes.len() as u64;
        Ok(())
    };
    match payload {
        Payload::Bytes(b) => {
            for piece in b.chunks(CHUNK) {
                put(piece)?;
            }
        }
        Payload::File { len, .. } => {
            let mut reader = payload.reader(0);
            // Sized to the file: most are photos far smaller than a chunk.
            let mut buf = vec![0u8; usize::try_from(*len).unwrap_or(CHUNK).clamp(1, CHUNK)];
            loop {
                let n = match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(Error::io(key.as_str(), e)),
                };
                put(&buf[..n])?;
            }
        }
    }
    if let Some(expected) = opts.crc32c
        && expected != crc
    {
        return Err(Error::ChecksumMismatch {
            key: key.to_string(),
            expected,
            actual: crc,
        });
    }
    Ok((written, crc))
}

/// Removes staged files left by processes that no longer exist (a killed run).
/// Staged names start with the writer's pid.
fn clean_stale_staging(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let pid = name
            .to_str()
            .and_then(|n| n.split('-').next())
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(pid) = pid
            && !Path::new(&format!("/proc/{pid}")).exists()
            && Path::new("/proc/self").exists()
        {
            let _ = fs::remove_file(e.path());
        }
    }
}

fn map_exists(key: &Key, e: io::Error) -> Error {
    match e.kind() {
        io::ErrorKind::AlreadyExists => Error::AlreadyExists {
            key: key.to_string(),
        },
        io::ErrorKind::NotFound => Error::NotFound {
            key: key.to_string(),
        },
        _ => Error::io(key.as_str(), e),
    }
}

fn not_found(key: &Key, e: io::Error) -> Error {
    if e.kind() == io::ErrorKind::NotFound {
        Error::NotFound {
            key: key.to_string(),
        }
    } else {
        Error::io(key.as_str(), e)
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}

/// A staged file, removed on drop (after publishing, the published link remains).
struct Staged {
    path: PathBuf,
    size: u64,
    crc: u32,
}

impl Drop for Staged {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

impl Inner {
    fn put(
        &self,
        key: &Key,
        payload: &Payload,
        opts: &PutOptions,
        overwrite: bool,
    ) -> Result<PutResult> {
        let target = self.checked_path(key)?;
        // The link is what refuses an existing key; a staged create checks first,
        // since staging costs more than a stat.
        if !overwrite && self.unnamed.load(Ordering::Relaxed) {
            match self.create_unnamed(key, &target, payload, opts)? {
                Some(done) => return Ok(done),
                None => self.unnamed.store(false, Ordering::Relaxed),
            }
        }
        if !overwrite && target.symlink_metadata().is_ok() {
            return Err(Error::AlreadyExists {
                key: key.to_string(),
            });
        }
        let staged = self.stage(key, payload, opts, overwrite && self.fsync)?;
        self.publish(key, staged, overwrite)
    }

    fn publish(&self, key: &Key, staged: Staged, overwrite: bool) -> Result<PutResult> {
        let target = self.checked_path(key)?;
        let parent = target.parent().expect("a key has a parent under the root");
        fs::create_dir_all(parent).map_err(|e| Error::io(key.as_str(), e))?;
        let (size, crc) = (staged.size, staged.crc);
        if overwrite {
            fs::rename(&staged.path, &target).map_err(|e| Error::io(key.as_str(), e))?;
        } else {
            fs::hard_link(&staged.path, &target).map_err(|e| map_exists(key, e))?;
        }
        drop(staged);
        // Durable at the next `flush` (one filesystem sync before the manifest
        // names the object), or now for a replacement, which has no manifest.
        if self.fsync && overwrite {
            sync_dir(parent).map_err(|e| Error::io(key.as_str(), e))?;
        }
        Ok(PutResult::new(size, Some(crc)))
    }

    fn meta(&self, key: &Key) -> Result<ObjectMeta> {
        let path = self.checked_path(key)?;
        let md = fs::metadata(&path).map_err(|e| not_found(key, e))?;
        if !md.is_file() {
            return Err(Error::NotFound {
                key: key.to_string(),
            });
        }
        let mut meta = ObjectMeta::new(key.clone(), md.len());
        meta.updated = md.modified().ok();
        Ok(meta)
    }

    fn list(&self, prefix: &str, opts: &ListOptions) -> Result<ListPage> {
        // Walk only the directory the prefix names, then filter by the string prefix.
        let dir_part = prefix.rfind('/').map_or("", |i| &prefix[..i]);
        let start = if dir_part.is_empty() {
            self.root.clone()
        } else {
            self.root.join(dir_part)
        };
        let max = opts.max_results.unwrap_or(DEFAULT_PAGE).max(1);
        // One more than a page tells whether another follows.
        let mut walk = Walk {
            prefix,
            after: opts.page_token.as_deref(),
            want: max + 1,
            out: Vec::with_capacity(max + 1),
        };
        walk.dir(&start, dir_part)
            .map_err(|e| Error::io(prefix, e))?;
        let mut keys = walk.out;
        let more = keys.len() > max;
        keys.truncate(max);
        let next = if more { keys.last().cloned() } else { None };
        let mut objects = Vec::with_capacity(keys.len());
        for k in keys {
            let key = Key::parse(k)?;
            match self.meta(&key) {
                Ok(m) => objects.push(m),
                // Gone between the walk and the stat: not part of the page.
                Err(Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(ListPage::new(objects, next))
    }
}

/// The keys of one page of a listing, in key order: a walk that visits a
/// directory's entries sorted as keys sort (`a.jpg` before `a/…`), skips every
/// directory whose keys all sort at or before the page token or cannot start with
/// the prefix (listing `manifest-` never walks `library/`), and stops once the page
/// is full, so listing a million objects page by page reads each directory about
/// once, in memory of one page.
struct Walk<'a> {
    prefix: &'a str,
    after: Option<&'a str>,
    want: usize,
    out: Vec<String>,
}

impl Walk<'_> {
    fn dir(&mut self, dir: &Path, rel: &str) -> io::Result<()> {
        let entries = match fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let mut sorted = Vec::new();
        for entry in entries {
            let entry = entry?;
            // Names that are not UTF-8 cannot be keys, so they are not objects.
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if rel.is_empty() && name == STAGING {
                continue;
            }
            let key = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let ft = entry.file_type()?;
            if ft.is_dir() {
                sorted.push((format!("{key}/"), Some(entry.path())));
            } else if ft.is_file() {
                sorted.push((key, None));
            }
        }
        sorted.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        for (key, sub) in sorted {
            if self.out.len() >= self.want {
                break;
            }
            match sub {
                Some(path) => {
                    let matches = key.starts_with(self.prefix) || self.prefix.starts_with(&key);
                    // Every key below is `key` + more: all at or before the token
                    // when the token sorts after them without starting with `key`.
                    let passed = self
                        .after
                        .is_some_and(|t| t > key.as_str() && !t.starts_with(&key));
                    if matches && !passed {
                        self.dir(&path, key.trim_end_matches('/'))?;
                    }
                }
                None => {
                    if key.starts_with(self.prefix)
                        && self.after.is_none_or(|t| key.as_str() > t)
                        && !key.starts_with(".imb-staging/")
                    {
                        self.out.push(key);
                    }
                }
            }
        }
        Ok(())
    }
}

#[derive(Debug)]
struct FileChunks {
    file: Option<Arc<File>>,
    pos: u64,
    end: u64,
    key: Key,
}

#[async_trait]
impl ByteChunks for FileChunks {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        let Some(file) = self.file.clone() else {
            return Ok(None);
        };
        if self.pos >= self.end {
            self.file = None;
            return Ok(None);
        }
        let want = (self.end - self.pos).min(CHUNK as u64) as usize;
        let pos = self.pos;
        let key = self.key.clone();
        let chunk = tokio::task::spawn_blocking(move || {
            let mut buf = vec![0u8; want];
            let n = file
                .read_at(&mut buf, pos)
                .map_err(|e| Error::io(key.as_str(), e))?;
            buf.truncate(n);
            Ok::<_, Error>(buf)
        })
        .await
        .map_err(|e| Error::Generic {
            store: "local",
            message: format!("blocking task failed: {e}"),
            transient: false,
            source: None,
        })??;
        if chunk.is_empty() {
            return Err(Error::io(
                self.key.as_str(),
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "object shrank while being read",
                ),
            ));
        }
        self.pos += chunk.len() as u64;
        Ok(Some(Bytes::from(chunk)))
    }
}

#[async_trait]
impl ObjectRead for LocalDir {
    async fn head(&self, key: &Key) -> Result<ObjectMeta> {
        let key = key.clone();
        self.blocking(move |inner| inner.meta(&key)).await
    }

    async fn get_opts(&self, key: &Key, opts: GetOptions) -> Result<GetResult> {
        let key = key.clone();
        self.blocking(move |inner| {
            let path = inner.checked_path(&key)?;
            let file = File::open(&path).map_err(|e| not_found(&key, e))?;
            let meta = inner.meta(&key)?;
            let (pos, end) = match &opts.range {
                Some(r) => (r.start.min(meta.size), r.end.min(meta.size)),
                None => (0, meta.size),
            };
            let body = FileChunks {
                file: Some(Arc::new(file)),
                pos,
                end: end.max(pos),
                key,
            };
            Ok(GetResult::new(meta, Box::new(body)))
        })
        .await
    }

    async fn list(&self, prefix: &str, opts: ListOptions) -> Result<ListPage> {
        let prefix = prefix.to_owned();
        self.blocking(move |inner| inner.list(&prefix, &opts)).await
    }
}

#[async_trait]
impl ObjectCreate for LocalDir {
    /// One `syncfs` of the target's filesystem: every object staged and linked
    /// since the last flush reaches the disk, with its directory entries, at the
    /// cost of one call instead of two fsyncs per file.
    async fn flush(&self) -> Result<()> {
        if !self.inner.fsync {
            return Ok(());
        }
        self.blocking(|inner| {
            let root = File::open(&inner.root)
                .map_err(|e| Error::io(inner.root.display().to_string(), e))?;
            rustix::fs::syncfs(&root)
                .map_err(|e| Error::io(inner.root.display().to_string(), e.into()))
        })
        .await
    }

    async fn put_opts(&self, key: &Key, payload: Payload, opts: PutOptions) -> Result<PutResult> {
        let key = key.clone();
        self.blocking(move |inner| inner.put(&key, &payload, &opts, false))
            .await
    }

    async fn copy_opts(&self, from: &Key, to: &Key, _opts: CopyOptions) -> Result<PutResult> {
        let (from, to) = (from.clone(), to.clone());
        self.blocking(move |inner| {
            let src = inner.checked_path(&from)?;
            let dst = inner.checked_path(&to)?;
            let size = fs::metadata(&src).map_err(|e| not_found(&from, e))?.len();
            let parent = dst.parent().expect("a key has a parent under the root");
            fs::create_dir_all(parent).map_err(|e| Error::io(to.as_str(), e))?;
            // A hard link is a free, atomic, create-only copy of an immutable object.
            fs::hard_link(&src, &dst).map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => Error::NotFound {
                    key: from.to_string(),
                },
                _ => map_exists(&to, e),
            })?;
            Ok(PutResult::new(size, None))
        })
        .await
    }

    async fn create_upload(&self, key: &Key, opts: PutOptions) -> Result<Box<dyn Upload>> {
        let inner = self.inner.clone();
        inner.checked_path(key)?;
        let (staged, file) = self.blocking(|inner| inner.new_staged()).await?;
        Ok(Box::new(LocalUpload {
            inner,
            key: key.clone(),
            opts,
            staged: Some(staged),
            file: Some(file),
        }))
    }
}

/// A streamed create: bytes go to a staged file, published by `complete`.
#[derive(Debug)]
struct LocalUpload {
    inner: Arc<Inner>,
    key: Key,
    opts: PutOptions,
    staged: Option<Staged>,
    file: Option<File>,
}

impl std::fmt::Debug for Staged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Staged").field(&self.path).finish()
    }
}

#[async_trait]
impl Upload for LocalUpload {
    async fn write(&mut self, data: Bytes) -> Result<()> {
        let (Some(mut file), Some(staged)) = (self.file.take(), self.staged.as_mut()) else {
            return Err(Error::Generic {
                store: "local",
                message: format!("{}: upload already failed", self.key),
                transient: false,
                source: None,
            });
        };
        staged.crc = crc32c::crc32c_append(staged.crc, &data);
        staged.size += data.len() as u64;
        let key = self.key.clone();
        let file = tokio::task::spawn_blocking(move || {
            file.write_all(&data)
                .map(|()| file)
                .map_err(|e| Error::io(key.as_str(), e))
        })
        .await
        .map_err(|e| Error::Generic {
            store: "local",
            message: format!("blocking task failed: {e}"),
            transient: false,
            source: None,
        })??;
        self.file = Some(file);
        Ok(())
    }

    async fn complete(mut self: Box<Self>) -> Result<PutResult> {
        let (Some(file), Some(staged)) = (self.file.take(), self.staged.take()) else {
            return Err(Error::Generic {
                store: "local",
                message: format!("{}: upload already failed", self.key),
                transient: false,
                source: None,
            });
        };
        if let Some(expected) = self.opts.crc32c
            && expected != staged.crc
        {
            return Err(Error::ChecksumMismatch {
                key: self.key.to_string(),
                expected,
                actual: staged.crc,
            });
        }
        let (inner, key) = (self.inner.clone(), self.key.clone());
        tokio::task::spawn_blocking(move || {
            if inner.fsync {
                file.sync_all().map_err(|e| Error::io(key.as_str(), e))?;
            }
            inner.publish(&key, staged, false)
        })
        .await
        .map_err(|e| Error::Generic {
            store: "local",
            message: format!("blocking task failed: {e}"),
            transient: false,
            source: None,
        })?
    }

    async fn abort(self: Box<Self>) -> Result<()> {
        // Dropping the staged file removes it.
        Ok(())
    }
}

#[async_trait]
impl ObjectReplace for LocalDir {
    async fn replace_opts(
        &self,
        key: &Key,
        payload: Payload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        let key = key.clone();
        self.blocking(move |inner| inner.put(&key, &payload, &opts, true))
            .await
    }
}

#[async_trait]
impl ObjectDelete for LocalDir {
    async fn delete(&self, key: &Key) -> Result<()> {
        let key = key.clone();
        self.blocking(move |inner| {
            let path = inner.checked_path(&key)?;
            fs::remove_file(&path).map_err(|e| not_found(&key, e))
        })
        .await
    }
}
