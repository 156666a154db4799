//! The storage-backend contract: what the backup engine, restore-verify and
//! device-sync need from a place that holds objects, and nothing more.
//!
//! Backends implement small capability traits instead of one large one, so a
//! caller is handed exactly the power it needs (the rustic `ReadBackend` /
//! `WriteBackend` split, taken further):
//!
//! * [`ObjectRead`]: head, ranged get, paginated list.
//! * [`ObjectCreate`]: create-if-absent puts and server-side copies. This is the
//!   only write capability the library backup path receives, so "never overwrite
//!   backed-up data" is enforced by the types and by the store (a second create of
//!   the same key fails with [`Error::AlreadyExists`]), not by a prior check.
//! * [`ObjectReplace`]: overwrite, for convenience copies such as `manifest.db`.
//! * [`ObjectDelete`]: delete, handed only to database-dump retention.
//!
//! Every required method takes an options struct so new flags do not break
//! implementors; conveniences live in the [`ObjectReadExt`] extension trait.
//! This crate has no HTTP stack: GCS and the Immich server implement the
//! traits in their own crates, sharing the [`retry`] policy kept here. The
//! [`LocalDir`] and [`InMemory`] backends live here, and the `testing` feature
//! exports the conformance suite every backend runs.
//!
//! ```
//! use imb_storage::{InMemory, Key, ObjectCreate, ObjectReadExt, Payload, PutOptions, Error};
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let store = InMemory::new();
//! let key = Key::parse("library/a.jpg").unwrap();
//! store.put_opts(&key, Payload::from_static(b"one"), PutOptions::default()).await.unwrap();
//! let again = store.put_opts(&key, Payload::from_static(b"two"), PutOptions::default()).await;
//! assert!(matches!(again, Err(Error::AlreadyExists { .. })));
//! assert_eq!(store.get_bytes(&key).await.unwrap(), &b"one"[..]);
//! # });
//! ```

pub mod adaptive;
mod error;
mod key;
mod local;
mod memory;
pub mod pace;
mod payload;
pub mod retry;
mod stop;
mod traits;

#[cfg(any(test, feature = "testing"))]
pub mod conformance;

pub use error::{Error, KeyError, Result};
pub use key::{Key, MAX_KEY_LEN, decode_path, encode_path, percent_decode};
pub use local::LocalDir;
pub use memory::InMemory;
pub use payload::{Payload, PayloadReader};
pub use stop::StopToken;
pub use traits::{
    BackupStore, ByteChunks, CopyOptions, GetOptions, GetResult, ListOptions, ListPage,
    ObjectCreate, ObjectDelete, ObjectMeta, ObjectRead, ObjectReadExt, ObjectReplace, PutOptions,
    PutResult, Upload,
};

#[cfg(test)]
mod tests;
