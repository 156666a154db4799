//! The capability traits and their option and result types.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::Range;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};

use crate::{Key, Payload, Result};

/// What a store reports about an object.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ObjectMeta {
    /// The object's key.
    pub key: Key,
    /// Its size in bytes.
    pub size: u64,
    /// CRC32C of the content, where the store keeps one.
    pub crc32c: Option<u32>,
    /// The store's generation (version) number, where it has one.
    pub generation: Option<i64>,
    /// Custom metadata set at creation, where the store keeps it.
    pub metadata: BTreeMap<String, String>,
    /// The storage class, where the store has classes.
    pub storage_class: Option<String>,
    /// When the object was last written.
    pub updated: Option<SystemTime>,
}

impl ObjectMeta {
    /// Metadata with only a key and a size.
    pub fn new(key: Key, size: u64) -> Self {
        ObjectMeta {
            key,
            size,
            crc32c: None,
            generation: None,
            metadata: BTreeMap::new(),
            storage_class: None,
            updated: None,
        }
    }
}

/// Options for a get.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct GetOptions {
    /// Only these bytes of the object.
    pub range: Option<Range<u64>>,
}

impl GetOptions {
    /// Get only `range`.
    pub fn with_range(mut self, range: Range<u64>) -> Self {
        self.range = Some(range);
        self
    }
}

/// A source of byte chunks, the body of a get.
#[async_trait]
pub trait ByteChunks: Send + Debug {
    /// The next chunk, or `None` at the end.
    ///
    /// # Errors
    /// The store's error if the transfer fails.
    async fn next_chunk(&mut self) -> Result<Option<Bytes>>;
}

/// The result of a get: metadata and a body to read.
#[derive(Debug)]
#[non_exhaustive]
pub struct GetResult {
    /// The object's metadata.
    pub meta: ObjectMeta,
    /// The requested bytes.
    pub body: Box<dyn ByteChunks>,
}

impl GetResult {
    /// Builds a result.
    pub fn new(meta: ObjectMeta, body: Box<dyn ByteChunks>) -> Self {
        GetResult { meta, body }
    }
}

/// Options for a list.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ListOptions {
    /// The token of the page to return, from the previous [`ListPage`].
    pub page_token: Option<String>,
    /// At most this many objects in the page (backends may cap it).
    pub max_results: Option<usize>,
}

impl ListOptions {
    /// Continue from `token`.
    pub fn with_page_token(mut self, token: Option<String>) -> Self {
        self.page_token = token;
        self
    }
    /// At most `n` objects per page.
    pub fn with_max_results(mut self, n: usize) -> Self {
        self.max_results = Some(n);
        self
    }
}

/// One page of a listing, in ascending key order.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ListPage {
    /// The objects in this page.
    pub objects: Vec<ObjectMeta>,
    /// Pass this back to get the next page; `None` on the last one.
    pub next_page_token: Option<String>,
}

impl ListPage {
    /// Builds a page.
    pub fn new(objects: Vec<ObjectMeta>, next_page_token: Option<String>) -> Self {
        ListPage {
            objects,
            next_page_token,
        }
    }
}

/// Options for a create.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct PutOptions {
    /// The CRC32C the caller computed; the store must refuse to create the object
    /// when the bytes that arrived do not match ([`crate::Error::ChecksumMismatch`]).
    pub crc32c: Option<u32>,
    /// Custom metadata to keep with the object (stores that cannot keep it ignore it).
    pub metadata: BTreeMap<String, String>,
    /// The storage class to create the object in (stores without classes ignore it).
    pub storage_class: Option<String>,
    /// The content type.
    pub content_type: Option<String>,
    /// `--bwlimit`: the pace the bytes are sent at, piece by piece (stores that
    /// send nothing over a link may ignore it).
    pub pace: Option<std::sync::Arc<crate::pace::Pace>>,
}

impl PutOptions {
    /// Send the bytes at `pace`.
    pub fn with_pace(mut self, pace: Option<std::sync::Arc<crate::pace::Pace>>) -> Self {
        self.pace = pace;
        self
    }
    /// Declare the content's CRC32C.
    pub fn with_crc32c(mut self, crc: u32) -> Self {
        self.crc32c = Some(crc);
        self
    }
    /// Add a metadata entry.
    pub fn with_metadata(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.metadata.insert(k.into(), v.into());
        self
    }
    /// Choose a storage class.
    pub fn with_storage_class(mut self, class: impl Into<String>) -> Self {
        self.storage_class = Some(class.into());
        self
    }
}

/// Options for a server-side copy.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct CopyOptions {
    /// The storage class of the copy.
    pub storage_class: Option<String>,
}

/// What a successful write reports.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct PutResult {
    /// Bytes stored.
    pub size: u64,
    /// CRC32C of what was stored, where the store reports one.
    pub crc32c: Option<u32>,
    /// The new object's generation, where the store has them.
    pub generation: Option<i64>,
    /// An identifier the store gave the object (e.g. an Immich asset id).
    pub id: Option<String>,
}

impl PutResult {
    /// A result with a size and CRC32C.
    pub fn new(size: u64, crc32c: Option<u32>) -> Self {
        PutResult {
            size,
            crc32c,
            generation: None,
            id: None,
        }
    }
}

/// Reading objects.
#[async_trait]
pub trait ObjectRead: Send + Sync + Debug + 'static {
    /// The object's metadata.
    ///
    /// # Errors
    /// [`crate::Error::NotFound`] if there is no such object.
    async fn head(&self, key: &Key) -> Result<ObjectMeta>;

    /// The object's bytes (or a range of them).
    ///
    /// # Errors
    /// [`crate::Error::NotFound`] if there is no such object.
    async fn get_opts(&self, key: &Key, opts: GetOptions) -> Result<GetResult>;

    /// One page of the objects whose keys start with `prefix` (a plain string
    /// prefix, as in Cloud Storage; `""` lists everything), in key order.
    ///
    /// # Errors
    /// The store's error.
    async fn list(&self, prefix: &str, opts: ListOptions) -> Result<ListPage>;
}

/// Creating objects that do not exist yet. Never overwrites.
#[async_trait]
pub trait ObjectCreate: Send + Sync + Debug + 'static {
    /// Creates `key` with `payload`, atomically failing if it exists.
    ///
    /// # Errors
    /// [`crate::Error::AlreadyExists`] if an object is at `key` (its content is
    /// untouched); [`crate::Error::ChecksumMismatch`] if `opts.crc32c` does not match.
    async fn put_opts(&self, key: &Key, payload: Payload, opts: PutOptions) -> Result<PutResult>;

    /// Copies `from` to a new object `to` inside the store, failing if `to` exists.
    ///
    /// # Errors
    /// [`crate::Error::AlreadyExists`], [`crate::Error::NotFound`] for `from`, or
    /// [`crate::Error::NotImplemented`].
    async fn copy_opts(&self, from: &Key, to: &Key, opts: CopyOptions) -> Result<PutResult>;

    /// Starts a streamed create of `key` (see [`Upload`]).
    ///
    /// # Errors
    /// The store's error, or [`crate::Error::NotImplemented`].
    async fn create_upload(&self, key: &Key, opts: PutOptions) -> Result<Box<dyn Upload>>;

    /// Makes every object created so far durable, for a store that defers it (a
    /// local directory syncs its filesystem once instead of every file). Call it
    /// before recording objects where a crash would outlive them (the manifest).
    ///
    /// # Errors
    /// The store's error.
    async fn flush(&self) -> Result<()> {
        Ok(())
    }
}

/// A streamed create in progress: bytes of unknown total length (a database dump
/// coming out of `pg_dump | gzip`). Nothing appears at the key until
/// [`Upload::complete`]; dropping or aborting the upload leaves nothing there.
#[async_trait]
pub trait Upload: Send + Debug {
    /// Appends bytes.
    ///
    /// # Errors
    /// The store's error; the upload should then be aborted.
    async fn write(&mut self, data: Bytes) -> Result<()>;

    /// Publishes the object, failing if the key exists by now.
    ///
    /// # Errors
    /// [`crate::Error::AlreadyExists`], or the store's error.
    async fn complete(self: Box<Self>) -> Result<PutResult>;

    /// Abandons the upload; nothing appears at the key.
    ///
    /// # Errors
    /// The store's error (the upload is abandoned regardless).
    async fn abort(self: Box<Self>) -> Result<()>;
}

/// Overwriting objects. Only for convenience copies that have an immutable twin.
#[async_trait]
pub trait ObjectReplace: Send + Sync + Debug + 'static {
    /// Writes `key`, replacing any object there.
    ///
    /// # Errors
    /// The store's error; [`crate::Error::PermissionDenied`] where a retention policy forbids it.
    async fn replace_opts(
        &self,
        key: &Key,
        payload: Payload,
        opts: PutOptions,
    ) -> Result<PutResult>;
}

/// Deleting objects. Only database-dump retention gets this capability.
#[async_trait]
pub trait ObjectDelete: Send + Sync + Debug + 'static {
    /// Deletes `key`.
    ///
    /// # Errors
    /// [`crate::Error::NotFound`], or [`crate::Error::PermissionDenied`] on a locked bucket.
    async fn delete(&self, key: &Key) -> Result<()>;
}

/// What the backup path needs: read and create, never overwrite or delete.
pub trait BackupStore: ObjectRead + ObjectCreate {}
impl<T: ObjectRead + ObjectCreate + ?Sized> BackupStore for T {}

/// Conveniences over [`ObjectRead`], for every reader.
#[async_trait]
pub trait ObjectReadExt: ObjectRead {
    /// The whole object in memory. For small objects (manifests, lock files).
    ///
    /// # Errors
    /// As [`ObjectRead::get_opts`].
    async fn get_bytes(&self, key: &Key) -> Result<Bytes> {
        let mut res = self.get_opts(key, GetOptions::default()).await?;
        let mut buf = BytesMut::new();
        while let Some(chunk) = res.body.next_chunk().await? {
            buf.extend_from_slice(&chunk);
        }
        Ok(buf.freeze())
    }

    /// Every object under `prefix`, following pages. For small prefixes only
    /// (manifests, locks, dumps): the result is held in memory.
    ///
    /// # Errors
    /// As [`ObjectRead::list`].
    async fn list_all(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .list(prefix, ListOptions::default().with_page_token(token))
                .await?;
            out.extend(page.objects);
            match page.next_page_token {
                Some(t) => token = Some(t),
                None => return Ok(out),
            }
        }
    }
}
impl<T: ObjectRead + ?Sized> ObjectReadExt for T {}

macro_rules! forward_impls {
    ($($wrapper:ty),*) => {$(
        #[async_trait]
        impl<T: ObjectRead + ?Sized> ObjectRead for $wrapper {
            async fn head(&self, key: &Key) -> Result<ObjectMeta> {
                (**self).head(key).await
            }
            async fn get_opts(&self, key: &Key, opts: GetOptions) -> Result<GetResult> {
                (**self).get_opts(key, opts).await
            }
            async fn list(&self, prefix: &str, opts: ListOptions) -> Result<ListPage> {
                (**self).list(prefix, opts).await
            }
        }
        #[async_trait]
        impl<T: ObjectCreate + ?Sized> ObjectCreate for $wrapper {
            async fn put_opts(&self, key: &Key, payload: Payload, opts: PutOptions) -> Result<PutResult> {
                (**self).put_opts(key, payload, opts).await
            }
            async fn copy_opts(&self, from: &Key, to: &Key, opts: CopyOptions) -> Result<PutResult> {
                (**self).copy_opts(from, to, opts).await
            }
            async fn create_upload(&self, key: &Key, opts: PutOptions) -> Result<Box<dyn Upload>> {
                (**self).create_upload(key, opts).await
            }
            async fn flush(&self) -> Result<()> {
                (**self).flush().await
            }
        }
        #[async_trait]
        impl<T: ObjectReplace + ?Sized> ObjectReplace for $wrapper {
            async fn replace_opts(&self, key: &Key, payload: Payload, opts: PutOptions) -> Result<PutResult> {
                (**self).replace_opts(key, payload, opts).await
            }
        }
        #[async_trait]
        impl<T: ObjectDelete + ?Sized> ObjectDelete for $wrapper {
            async fn delete(&self, key: &Key) -> Result<()> {
                (**self).delete(key).await
            }
        }
    )*};
}
forward_impls!(Arc<T>, Box<T>);
