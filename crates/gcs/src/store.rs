//! The storage traits, implemented over [`crate::client::Client`].

use std::sync::Arc;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use imb_http::body::{Part, Source};
use imb_storage::pace::Pace;
use imb_storage::{
    ByteChunks, CopyOptions, Error, GetOptions, GetResult, Key, ListOptions, ListPage,
    ObjectCreate, ObjectDelete, ObjectMeta, ObjectRead, ObjectReplace, Payload, PutOptions,
    PutResult, Result, Upload,
};

use crate::GcsConfig;
use crate::client::{Client, Progress, Resource, encode_crc};

/// A bucket (and prefix) as a store with every capability. Cheap to clone.
#[derive(Debug, Clone)]
pub struct GcsStore {
    client: Arc<Client>,
    usage: Arc<std::sync::Mutex<imb_cost::Usage>>,
}

/// The class an operation is priced at when the request names none: the
/// bucket's default, which this store does not know.
const DEFAULT_CLASS: &str = "default";

impl GcsStore {
    /// A store for `cfg`.
    ///
    /// # Errors
    /// [`crate::Error::Client`] if the HTTP client cannot be built.
    pub fn new(cfg: GcsConfig) -> std::result::Result<Self, crate::Error> {
        if cfg.chunk_size == 0 || !cfg.chunk_size.is_multiple_of(256 * 1024) {
            return Err(crate::Error::InvalidConfig {
                key: "chunk_size",
                message: format!("{} is not a positive multiple of 256 KiB", cfg.chunk_size),
            });
        }
        Ok(GcsStore {
            client: Arc::new(Client::new(cfg)?),
            usage: Arc::default(),
        })
    }

    /// The operations and bytes of this store's requests so far, by storage class
    /// (`default` where a request names none): a retried request counts once.
    pub fn usage(&self) -> imb_cost::Usage {
        self.usage.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn count(&self, f: impl FnOnce(&mut imb_cost::Usage)) {
        f(&mut self.usage.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// Requests retried so far by this store.
    pub fn retries(&self) -> u64 {
        self.client.retrier.retries()
    }

    /// Of those, retries after 429, 503 or a timeout.
    pub fn congestion(&self) -> u64 {
        self.client.retrier.congestion()
    }

    /// The settings.
    pub fn config(&self) -> &GcsConfig {
        &self.client.cfg
    }

    fn put_result(&self, r: Resource) -> Result<PutResult> {
        let m = self.client.meta(r)?;
        let mut res = PutResult::new(m.size, m.crc32c);
        res.generation = m.generation;
        Ok(res)
    }

    /// Writes an object in one request or, above the threshold, resumably;
    /// `create`: only if absent (the generation precondition, so a repeat is safe).
    async fn write(
        &self,
        name: &str,
        payload: Payload,
        opts: &PutOptions,
        create: bool,
    ) -> Result<Resource> {
        let meta = object_json(name, opts);
        let class = opts.storage_class.as_deref().unwrap_or(DEFAULT_CLASS);
        self.count(|u| u.write(Some(class), payload.len()));
        let if_absent = create.then_some(0);
        if payload.len() <= self.client.cfg.resumable_threshold {
            let part = Part::payload(payload);
            return self
                .client
                .insert(name, &meta, part, opts.pace.clone(), if_absent, true)
                .await;
        }
        if create && self.exists(name).await? {
            return Err(Error::AlreadyExists {
                key: format!("gs://{}/{name}", self.client.cfg.bucket),
            });
        }
        self.resumable(
            name,
            &meta,
            &payload,
            opts.crc32c,
            opts.pace.clone(),
            if_absent,
        )
        .await
    }

    async fn exists(&self, name: &str) -> Result<bool> {
        match self.client.head(name).await {
            Ok(_) => Ok(true),
            Err(Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Uploads a payload larger than the threshold as a resumable session,
    /// resuming from the server's offset after a failure.
    async fn resumable(
        &self,
        name: &str,
        meta: &serde_json::Value,
        payload: &Payload,
        crc: Option<u32>,
        pace: Option<Arc<Pace>>,
        if_generation_match: Option<i64>,
    ) -> Result<Resource> {
        let c = &self.client;
        let total = payload.len();
        let chunk = c.cfg.chunk_size as u64;
        let mut session = c
            .start_session(name, meta, Some(total), if_generation_match)
            .await?;
        let mut offset = 0u64;
        let what = format!("upload {}", c.shown(name));
        let mut tries = c.retrier.tries(&what);
        loop {
            let len = chunk.min(total - offset);
            let data = Source::new(vec![range(payload, offset, len)], pace.clone());
            match c
                .put_chunk(&session, name, offset, &data, Some(total), crc)
                .await
            {
                Ok(Progress::Done(r)) => return Ok(r),
                Ok(Progress::Incomplete(n)) => {
                    offset = n;
                    // Progress: the next failure starts a fresh count.
                    tries.reset();
                }
                Err(e) if e.is_transient() => {
                    if !tries.retry(&format!("at {offset}: {e}"), None).await {
                        return Err(e);
                    }
                    match c.query(&session, name, Some(total)).await {
                        Ok(Progress::Done(r)) => return Ok(r),
                        Ok(Progress::Incomplete(n)) => offset = n,
                        Err(Error::NotFound { .. }) => {
                            // The session expired: start again, from the beginning.
                            session = c
                                .start_session(name, meta, Some(total), if_generation_match)
                                .await?;
                            offset = 0;
                        }
                        Err(e) => return Err(e),
                    }
                    tracing::info!(object = %name, offset, "resuming upload");
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// GCS validates a declared CRC32C itself; this catches a server (or emulator)
/// that stored something else, so the mismatch is at least reported.
fn check_crc(bucket: &str, name: &str, declared: Option<u32>, stored: Option<u32>) -> Result<()> {
    match (declared, stored) {
        (Some(expected), Some(actual)) if expected != actual => Err(Error::ChecksumMismatch {
            key: format!("gs://{bucket}/{name}"),
            expected,
            actual,
        }),
        _ => Ok(()),
    }
}

fn object_json(name: &str, opts: &PutOptions) -> serde_json::Value {
    let mut m = serde_json::json!({
        "name": name,
        "contentType": opts.content_type.as_deref().unwrap_or("application/octet-stream"),
    });
    if let Some(c) = opts.crc32c {
        m["crc32c"] = encode_crc(c).into();
    }
    if !opts.metadata.is_empty() {
        m["metadata"] = serde_json::to_value(&opts.metadata).expect("metadata serialises");
    }
    if let Some(c) = &opts.storage_class {
        m["storageClass"] = c.clone().into();
    }
    m
}

/// `len` bytes of `payload` from `offset`, as a body part: a slice of bytes in
/// memory, or a range read from the file as it is sent.
fn range(payload: &Payload, offset: u64, len: u64) -> Part {
    match payload {
        Payload::Bytes(b) => Part::Bytes(b.slice(offset as usize..(offset + len) as usize)),
        file => Part::Range {
            payload: file.clone(),
            offset,
            len,
        },
    }
}

#[derive(Debug)]
struct MediaBody(reqwest::Response);

#[async_trait]
impl ByteChunks for MediaBody {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        self.0.chunk().await.map_err(|e| Error::Generic {
            store: "gcs",
            message: format!("download interrupted: {e}"),
            transient: true,
            source: Some(Box::new(e)),
        })
    }
}

#[async_trait]
impl ObjectRead for GcsStore {
    async fn head(&self, key: &Key) -> Result<ObjectMeta> {
        self.count(|u| u.class_b(Some(DEFAULT_CLASS), 1));
        let r = self.client.head(&self.client.name(key)).await?;
        self.client.meta(r)
    }

    async fn get_opts(&self, key: &Key, opts: GetOptions) -> Result<GetResult> {
        let name = self.client.name(key);
        let meta = self.client.meta(self.client.head(&name).await?)?;
        let class = meta.storage_class.clone();
        self.count(|u| {
            u.class_b(class.as_deref().or(Some(DEFAULT_CLASS)), 1);
            u.read(class.as_deref().or(Some(DEFAULT_CLASS)), meta.size);
        });
        let range = opts
            .range
            .map(|r| r.start.min(meta.size)..r.end.min(meta.size));
        if range.as_ref().is_some_and(|r| r.start >= r.end) {
            return Ok(GetResult::new(meta, Box::new(Empty)));
        }
        let resp = self.client.media(&name, range).await?;
        Ok(GetResult::new(meta, Box::new(MediaBody(resp))))
    }

    async fn list(&self, prefix: &str, opts: ListOptions) -> Result<ListPage> {
        self.count(|u| u.class_a(Some(DEFAULT_CLASS), 1));
        let (objects, next) = self
            .client
            .list(prefix, opts.page_token.as_deref(), opts.max_results)
            .await?;
        Ok(ListPage::new(objects, next))
    }
}

#[derive(Debug)]
struct Empty;

#[async_trait]
impl ByteChunks for Empty {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        Ok(None)
    }
}

#[async_trait]
impl ObjectCreate for GcsStore {
    async fn put_opts(&self, key: &Key, payload: Payload, opts: PutOptions) -> Result<PutResult> {
        let name = self.client.name(key);
        let r = self.write(&name, payload, &opts, true).await?;
        let res = self.put_result(r)?;
        check_crc(&self.client.cfg.bucket, &name, opts.crc32c, res.crc32c)?;
        Ok(res)
    }

    async fn copy_opts(&self, from: &Key, to: &Key, opts: CopyOptions) -> Result<PutResult> {
        let (src, dst) = (self.client.name(from), self.client.name(to));
        self.count(|u| u.class_a(Some(DEFAULT_CLASS), 1));
        // The precondition is what guarantees it on GCS; the check makes emulators that
        // ignore preconditions on rewrite behave the same.
        if self.exists(&dst).await? {
            return Err(Error::AlreadyExists {
                key: format!("gs://{}/{dst}", self.client.cfg.bucket),
            });
        }
        let r = self
            .client
            .rewrite(&src, &dst, opts.storage_class.as_deref())
            .await?;
        self.put_result(r)
    }

    async fn create_upload(&self, key: &Key, opts: PutOptions) -> Result<Box<dyn Upload>> {
        let name = self.client.name(key);
        Ok(Box::new(GcsUpload {
            store: self.clone(),
            meta: object_json(&name, &opts),
            name,
            session: None,
            buf: BytesMut::new(),
            sent: 0,
            crc: 0,
            declared_crc: opts.crc32c,
        }))
    }
}

/// A streamed create: a resumable session of unknown length. Full chunks are
/// sent as they fill; the final request, the only one that makes the object
/// exist, is sent by `complete`.
#[derive(Debug)]
struct GcsUpload {
    store: GcsStore,
    name: String,
    meta: serde_json::Value,
    session: Option<String>,
    buf: BytesMut,
    sent: u64,
    crc: u32,
    declared_crc: Option<u32>,
}

impl GcsUpload {
    async fn session(&mut self) -> Result<String> {
        if let Some(s) = &self.session {
            return Ok(s.clone());
        }
        let s = self
            .store
            .client
            .start_session(&self.name, &self.meta, None, Some(0))
            .await?;
        self.session = Some(s.clone());
        Ok(s)
    }

    /// Sends `data` at `self.sent`, resuming from the server's offset on failure.
    async fn send(&mut self, mut data: Bytes, total: Option<u64>) -> Result<Option<Resource>> {
        let session = self.session().await?;
        let c = self.store.client.clone();
        let what = format!("upload {}", c.shown(&self.name));
        let mut tries = c.retrier.tries(&what);
        loop {
            let crc = total.map(|_| self.crc);
            let body = Source::new(vec![Part::Bytes(data.clone())], None);
            match c
                .put_chunk(&session, &self.name, self.sent, &body, total, crc)
                .await
            {
                Ok(Progress::Done(r)) => return Ok(Some(r)),
                Ok(Progress::Incomplete(n))
                    if total.is_none() && n == self.sent + data.len() as u64 =>
                {
                    self.sent = n;
                    return Ok(None);
                }
                Ok(Progress::Incomplete(n)) => {
                    // The server kept less than we sent: send the rest.
                    let kept = n.saturating_sub(self.sent) as usize;
                    data = data.slice(kept.min(data.len())..);
                    self.sent = n;
                }
                Err(e) if e.is_transient() => {
                    if !tries.retry(&format!("at {}: {e}", self.sent), None).await {
                        return Err(e);
                    }
                    if let Progress::Incomplete(n) = c.query(&session, &self.name, total).await? {
                        let kept = n.saturating_sub(self.sent) as usize;
                        data = data.slice(kept.min(data.len())..);
                        self.sent = n;
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }
}

#[async_trait]
impl Upload for GcsUpload {
    async fn write(&mut self, data: Bytes) -> Result<()> {
        self.crc = crc32c::crc32c_append(self.crc, &data);
        self.buf.extend_from_slice(&data);
        let chunk = self.store.client.cfg.chunk_size;
        while self.buf.len() >= chunk {
            let part = self.buf.split_to(chunk).freeze();
            self.send(part, None).await?;
        }
        Ok(())
    }

    async fn complete(mut self: Box<Self>) -> Result<PutResult> {
        if let Some(expected) = self.declared_crc
            && expected != self.crc
        {
            self.cancel().await;
            return Err(Error::ChecksumMismatch {
                key: format!("gs://{}/{}", self.store.client.cfg.bucket, self.name),
                expected,
                actual: self.crc,
            });
        }
        if self.store.exists(&self.name).await? {
            self.cancel().await;
            return Err(Error::AlreadyExists {
                key: format!("gs://{}/{}", self.store.client.cfg.bucket, self.name),
            });
        }
        let rest = self.buf.split().freeze();
        let total = self.sent + rest.len() as u64;
        let r = match self.send(rest, Some(total)).await? {
            Some(r) => r,
            None => {
                return Err(Error::Generic {
                    store: "gcs",
                    message: format!("{}: upload did not complete", self.name),
                    transient: true,
                    source: None,
                });
            }
        };
        let class = self.meta["storageClass"].as_str().unwrap_or(DEFAULT_CLASS);
        self.store.count(|u| u.write(Some(class), total));
        self.store.put_result(r)
    }

    async fn abort(mut self: Box<Self>) -> Result<()> {
        self.cancel().await;
        Ok(())
    }
}

impl GcsUpload {
    async fn cancel(&mut self) {
        if let Some(s) = self.session.take() {
            self.store.client.cancel(&s).await;
        }
    }
}

#[async_trait]
impl ObjectReplace for GcsStore {
    async fn replace_opts(
        &self,
        key: &Key,
        payload: Payload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        // Only convenience copies are replaced; a repeat writes the same bytes.
        let r = self
            .write(&self.client.name(key), payload, &opts, false)
            .await?;
        self.put_result(r)
    }
}

#[async_trait]
impl ObjectDelete for GcsStore {
    async fn delete(&self, key: &Key) -> Result<()> {
        self.client.delete(&self.client.name(key)).await
    }
}
