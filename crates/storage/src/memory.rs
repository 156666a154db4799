//! An in-memory store, for unit tests of logic. Never the only test of a backend.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::RwLock;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;

use crate::{
    ByteChunks, CopyOptions, Error, GetOptions, GetResult, Key, ListOptions, ListPage,
    ObjectCreate, ObjectDelete, ObjectMeta, ObjectRead, ObjectReplace, Payload, PutOptions,
    PutResult, Result, Upload,
};

const DEFAULT_PAGE: usize = 1000;

/// A store held in a `BTreeMap`, with every capability. Clones share the objects.
#[derive(Debug, Default, Clone)]
pub struct InMemory {
    inner: std::sync::Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    objects: RwLock<BTreeMap<Key, (Bytes, ObjectMeta)>>,
    next_generation: std::sync::atomic::AtomicI64,
}

/// A streamed create into memory, published by `complete`.
#[derive(Debug)]
struct MemoryUpload {
    store: InMemory,
    key: Key,
    opts: PutOptions,
    buf: Vec<u8>,
}

#[async_trait]
impl Upload for MemoryUpload {
    async fn write(&mut self, data: Bytes) -> Result<()> {
        self.buf.extend_from_slice(&data);
        Ok(())
    }
    async fn complete(self: Box<Self>) -> Result<PutResult> {
        let bytes = InMemory::read_payload(&self.key, &Payload::from(self.buf), &self.opts)?;
        self.store.write(&self.key, bytes, &self.opts, false)
    }
    async fn abort(self: Box<Self>) -> Result<()> {
        Ok(())
    }
}

impl InMemory {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn read_payload(key: &Key, payload: &Payload, opts: &PutOptions) -> Result<Bytes> {
        let bytes = match payload {
            Payload::Bytes(b) => b.clone(),
            Payload::File { .. } => {
                let mut v = Vec::with_capacity(payload.len() as usize);
                std::io::Read::read_to_end(&mut payload.reader(0), &mut v)
                    .map_err(|e| Error::io(key.as_str(), e))?;
                Bytes::from(v)
            }
        };
        let actual = crc32c::crc32c(&bytes);
        if let Some(expected) = opts.crc32c
            && expected != actual
        {
            return Err(Error::ChecksumMismatch {
                key: key.to_string(),
                expected,
                actual,
            });
        }
        Ok(bytes)
    }

    fn meta_for(&self, key: &Key, bytes: &Bytes, opts: &PutOptions) -> ObjectMeta {
        let mut meta = ObjectMeta::new(key.clone(), bytes.len() as u64);
        meta.crc32c = Some(crc32c::crc32c(bytes));
        meta.generation = Some(
            self.inner
                .next_generation
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                + 1,
        );
        meta.metadata = opts.metadata.clone();
        meta.storage_class = opts.storage_class.clone();
        meta.updated = Some(SystemTime::now());
        meta
    }

    fn write(
        &self,
        key: &Key,
        bytes: Bytes,
        opts: &PutOptions,
        overwrite: bool,
    ) -> Result<PutResult> {
        let meta = self.meta_for(key, &bytes, opts);
        let result = PutResult {
            size: meta.size,
            crc32c: meta.crc32c,
            generation: meta.generation,
            id: None,
        };
        let mut map = self
            .inner
            .objects
            .write()
            .expect("in-memory store lock poisoned");
        if !overwrite && map.contains_key(key) {
            return Err(Error::AlreadyExists {
                key: key.to_string(),
            });
        }
        map.insert(key.clone(), (bytes, meta));
        Ok(result)
    }
}

#[derive(Debug)]
struct OneChunk(Option<Bytes>);

#[async_trait]
impl ByteChunks for OneChunk {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        Ok(self.0.take().filter(|b| !b.is_empty()))
    }
}

#[async_trait]
impl ObjectRead for InMemory {
    async fn head(&self, key: &Key) -> Result<ObjectMeta> {
        let map = self
            .inner
            .objects
            .read()
            .expect("in-memory store lock poisoned");
        map.get(key)
            .map(|(_, m)| m.clone())
            .ok_or_else(|| Error::NotFound {
                key: key.to_string(),
            })
    }

    async fn get_opts(&self, key: &Key, opts: GetOptions) -> Result<GetResult> {
        let (bytes, meta) = {
            let map = self
                .inner
                .objects
                .read()
                .expect("in-memory store lock poisoned");
            map.get(key).cloned().ok_or_else(|| Error::NotFound {
                key: key.to_string(),
            })?
        };
        let body = match opts.range {
            Some(r) => {
                let end = (r.end as usize).min(bytes.len());
                let start = (r.start as usize).min(end);
                bytes.slice(start..end)
            }
            None => bytes,
        };
        Ok(GetResult::new(meta, Box::new(OneChunk(Some(body)))))
    }

    async fn list(&self, prefix: &str, opts: ListOptions) -> Result<ListPage> {
        let map = self
            .inner
            .objects
            .read()
            .expect("in-memory store lock poisoned");
        let max = opts.max_results.unwrap_or(DEFAULT_PAGE).max(1);
        let start = match &opts.page_token {
            Some(t) => Bound::Excluded(Key::parse(t.clone())?),
            None => Bound::Unbounded,
        };
        let mut objects = Vec::new();
        let mut more = false;
        for (k, (_, m)) in map.range((start, Bound::Unbounded)) {
            if !k.as_str().starts_with(prefix) {
                if k.as_str() > prefix {
                    break;
                }
                continue;
            }
            if objects.len() == max {
                more = true;
                break;
            }
            objects.push(m.clone());
        }
        let next = more
            .then(|| objects.last().map(|m: &ObjectMeta| m.key.to_string()))
            .flatten();
        Ok(ListPage::new(objects, next))
    }
}

#[async_trait]
impl ObjectCreate for InMemory {
    async fn put_opts(&self, key: &Key, payload: Payload, opts: PutOptions) -> Result<PutResult> {
        let bytes = Self::read_payload(key, &payload, &opts)?;
        self.write(key, bytes, &opts, false)
    }

    async fn copy_opts(&self, from: &Key, to: &Key, opts: CopyOptions) -> Result<PutResult> {
        let (bytes, meta) = {
            let map = self
                .inner
                .objects
                .read()
                .expect("in-memory store lock poisoned");
            map.get(from).cloned().ok_or_else(|| Error::NotFound {
                key: from.to_string(),
            })?
        };
        let put = PutOptions {
            metadata: meta.metadata,
            storage_class: opts.storage_class.or(meta.storage_class),
            ..PutOptions::default()
        };
        self.write(to, bytes, &put, false)
    }

    async fn create_upload(&self, key: &Key, opts: PutOptions) -> Result<Box<dyn Upload>> {
        Ok(Box::new(MemoryUpload {
            store: self.clone(),
            key: key.clone(),
            opts,
            buf: Vec::new(),
        }))
    }
}

#[async_trait]
impl ObjectReplace for InMemory {
    async fn replace_opts(
        &self,
        key: &Key,
        payload: Payload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        let bytes = Self::read_payload(key, &payload, &opts)?;
        self.write(key, bytes, &opts, true)
    }
}

#[async_trait]
impl ObjectDelete for InMemory {
    async fn delete(&self, key: &Key) -> Result<()> {
        let mut map = self
            .inner
            .objects
            .write()
            .expect("in-memory store lock poisoned");
        map.remove(key).map(|_| ()).ok_or_else(|| Error::NotFound {
            key: key.to_string(),
        })
    }
}
