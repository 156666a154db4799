//! A typed client for the Immich server's API, and the Immich server as a
//! create-only `imb-storage` backend, for device-sync (the mobile app's backup,
//! from a device's photo folders).
//!
//! Design decisions:
//! * **The server's current API (v3) first, v2 still spoken.** [`ImmichClient::api`]
//!   asks `GET /server/version` once (or takes the `--api v2|v3` override);
//!   v2 servers additionally get `deviceAssetId`/`deviceId` and a string `duration`.
//! * **Dedup by SHA-1.** Every upload carries its SHA-1 (hex) in
//!   `x-immich-checksum`; the server accepts hex or base64 (`fromChecksum` in its
//!   `utils/request.ts`: 28 characters mean base64). `bulk_upload_check` asks about
//!   many checksums at once before anything is sent.
//! * **The multipart body is written by hand** (`multipart.rs`):
//!   text fields before file parts, exact `Content-Length`, files streamed from
//!   their open descriptors; no multipart dependency.
//! * **An early "duplicate" is a success.** Immich answers 200 from the checksum
//!   header before reading the body. hyper hands over an answer that arrives while
//!   the body is still going out; if the connection breaks before the answer is
//!   read, the client asks the server about the checksum instead of reporting a
//!   broken pipe.
//! * **Retries by the shared policy** ([`RetryPolicy`], `imb_storage::retry`):
//!   connection errors, 408, 429, 5xx, exponential backoff with jitter,
//!   `Retry-After` honoured, only for idempotent requests (uploads are: the
//!   checksum makes a repeat a duplicate; creating an album is not).
//! * **The key never leaks**: it comes from a file or the environment
//!   ([`ApiKey`]), `Debug` redacts it, the header is marked sensitive, and errors
//!   name endpoints and files only.
//! * The storage backend ([`ImmichStore`]) implements only `ObjectCreate`; see its
//!   module for what "create-only" means on a server that deduplicates content.

mod client;
mod config;
mod error;
mod multipart;
mod served;
mod store;
mod types;

pub use client::{ALBUM_BATCH, CHECK_BATCH, CHECKSUM_HEADER, ImmichClient};
pub use config::{ApiKey, ApiVersion, ClientConfig};
pub use error::{Error, Result};
pub use imb_storage::retry::RetryPolicy;
pub use served::{Queue, QueueStatistics, Served};
pub use store::{
    ImmichStore, META_DEVICE_ASSET_ID, META_DEVICE_ID, META_DURATION_MS, META_FILE_CREATED_AT,
    META_FILE_MODIFIED_AT, META_IS_FAVORITE, META_SHA1, rfc3339,
};
pub use types::{
    Album, AlbumUser, AlbumUserRef, AssetUpload, BulkIdResult, CheckItem, CheckResult,
    CheckVerdict, MediaTypes, ServerVersion, UploadOutcome, UploadStatus, User, pick_album,
};

#[cfg(test)]
mod tests;
