//! The one bridge from the engine's threads to the async store: the store and the
//! runtime handle together, so nothing else passes a `Handle` around or calls
//! `block_on`.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use imb_storage::{
    BackupStore, CopyOptions, Key, ObjectMeta, ObjectReadExt, Payload, PutOptions, PutResult,
};
use tokio::runtime::Handle;

/// The target, for blocking callers.
#[derive(Debug, Clone)]
pub(crate) struct SyncStore {
    store: Arc<dyn BackupStore>,
    handle: Handle,
}

impl SyncStore {
    pub(crate) fn new(store: Arc<dyn BackupStore>, handle: Handle) -> Self {
        SyncStore { store, handle }
    }

    /// The async store, for a future handed to [`SyncStore::run`].
    pub(crate) fn store(&self) -> &dyn BackupStore {
        &*self.store
    }

    /// Runs `f` to completion on the runtime, from a blocking thread.
    pub(crate) fn run<T>(&self, f: impl Future<Output = T>) -> T {
        self.handle.block_on(f)
    }

    /// Starts `f` on the runtime in the background.
    pub(crate) fn spawn<F>(&self, f: F) -> tokio::task::JoinHandle<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.handle.spawn(f)
    }

    /// An owned handle to the store, for a background task.
    pub(crate) fn shared(&self) -> Arc<dyn BackupStore> {
        self.store.clone()
    }

    pub(crate) fn put(
        &self,
        k: &Key,
        payload: Payload,
        opts: PutOptions,
    ) -> imb_storage::Result<PutResult> {
        self.run(self.store.put_opts(k, payload, opts))
    }

    /// Makes the objects created so far durable (see `ObjectCreate::flush`).
    pub(crate) fn flush(&self) -> imb_storage::Result<()> {
        self.run(self.store.flush())
    }

    pub(crate) fn copy(&self, from: &Key, to: &Key) -> imb_storage::Result<PutResult> {
        self.run(self.store.copy_opts(from, to, CopyOptions::default()))
    }

    pub(crate) fn head(&self, k: &Key) -> imb_storage::Result<ObjectMeta> {
        self.run(self.store.head(k))
    }

    pub(crate) fn get_bytes(&self, k: &Key) -> imb_storage::Result<Bytes> {
        self.run(self.store.get_bytes(k))
    }

    pub(crate) fn list_all(&self, prefix: &str) -> imb_storage::Result<Vec<ObjectMeta>> {
        self.run(self.store.list_all(prefix))
    }
}
