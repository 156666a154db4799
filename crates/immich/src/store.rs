//! The Immich server as an `imb-storage` backend. It implements only
//! [`ObjectCreate`]: an Immich library can be added to, not listed or read by key,
//! and a key names a file, not a place. `put_opts` uploads the payload as an asset
//! named after the key's last segment.
//!
//! Create-only on Immich means "never store the same content twice": the server
//! deduplicates by SHA-1 per user, so a put whose content the user already has is
//! [`Error::AlreadyExists`] and nothing is stored, whatever the key. A new content
//! is `Ok` with [`PutResult::id`] = the new asset's id. Callers that need the id of
//! the existing asset too use [`ImmichStore::upload`], which returns both outcomes.
//!
//! `PutOptions::metadata` keys (all optional):
//!
//! | key              | meaning                                                        |
//! |------------------|----------------------------------------------------------------|
//! | `fileCreatedAt`  | RFC 3339 with a zone; default the file's mtime, or now         |
//! | `fileModifiedAt` | RFC 3339 with a zone; default the file's mtime, or now         |
//! | `isFavorite`     | `true` or `false` (default)                                    |
//! | `durationMs`     | a video's duration in milliseconds                             |
//! | `sha1`           | the content's SHA-1, hex; computed from the payload when absent |
//! | `deviceId`       | v2 servers' `deviceId`                                         |
//! | `deviceAssetId`  | v2 servers' `deviceAssetId`                                    |
//!
//! `PutOptions::crc32c`, when given, is checked against the payload before anything
//! is sent (Immich itself keeps no CRC32C), so a file that changed since it was
//! hashed is refused with [`Error::ChecksumMismatch`].

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use imb_storage::{
    CopyOptions, Error, Key, ObjectCreate, Payload, PutOptions, PutResult, Result, Upload,
};

use crate::{AssetUpload, ImmichClient, UploadOutcome, UploadStatus};

const STORE: &str = "immich";

/// Metadata key: `fileCreatedAt`.
pub const META_FILE_CREATED_AT: &str = "fileCreatedAt";
/// Metadata key: `fileModifiedAt`.
pub const META_FILE_MODIFIED_AT: &str = "fileModifiedAt";
/// Metadata key: `isFavorite` (`true`/`false`).
pub const META_IS_FAVORITE: &str = "isFavorite";
/// Metadata key: a video's duration in milliseconds.
pub const META_DURATION_MS: &str = "durationMs";
/// Metadata key: the content's SHA-1 in hex.
pub const META_SHA1: &str = "sha1";
/// Metadata key: v2 servers' `deviceId`.
pub const META_DEVICE_ID: &str = "deviceId";
/// Metadata key: v2 servers' `deviceAssetId`.
pub const META_DEVICE_ASSET_ID: &str = "deviceAssetId";

/// An Immich server behind the create capability of the storage contract.
#[derive(Debug, Clone)]
pub struct ImmichStore {
    client: Arc<ImmichClient>,
}

/// RFC 3339 in UTC with milliseconds, as Immich's own clients send.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

fn bad(key: &Key, message: String) -> Error {
    Error::Generic {
        store: STORE,
        message: format!("{key}: {message}"),
        transient: false,
        source: None,
    }
}

/// Maps the client's error to the storage contract's, keeping it as the source so
/// callers can still ask it (`is_quota_exceeded`).
fn to_storage(key: &Key, e: crate::Error) -> Error {
    match e {
        crate::Error::Unauthorized { status: 403, .. } => Error::PermissionDenied {
            key: key.to_string(),
            source: Box::new(e),
        },
        crate::Error::Unauthorized { .. } => Error::Unauthenticated {
            store: STORE,
            source: Box::new(e),
        },
        crate::Error::Io { path, source } => Error::Io { path, source },
        other => Error::Generic {
            store: STORE,
            message: other.to_string(),
            transient: other.is_transient(),
            source: Some(Box::new(other)),
        },
    }
}

impl ImmichStore {
    /// A store on `client`.
    pub fn new(client: Arc<ImmichClient>) -> ImmichStore {
        ImmichStore { client }
    }

    /// The client underneath.
    pub fn client(&self) -> &Arc<ImmichClient> {
        &self.client
    }

    /// Uploads `payload` as described by `opts` (see the module docs) and returns
    /// the server's answer, duplicate or created, with the asset id.
    ///
    /// # Errors
    /// As [`ObjectCreate::put_opts`], except that a duplicate is `Ok`.
    pub async fn upload(
        &self,
        key: &Key,
        payload: Payload,
        opts: &PutOptions,
    ) -> Result<(UploadOutcome, PutResult)> {
        let filename = key.as_str().rsplit('/').next().unwrap_or(key.as_str());
        let meta = &opts.metadata;
        let given_sha1 =
            match meta.get(META_SHA1) {
                Some(h) => Some(imb_hash::parse_hex::<20>(h).ok_or_else(|| {
                    bad(key, format!("metadata {META_SHA1} is not 40 hex digits"))
                })?),
                None => None,
            };
        let mut crc = None;
        let sha1 = match (given_sha1, opts.crc32c) {
            (Some(s), None) => s,
            _ => {
                let p = payload.clone();
                let d = tokio::task::spawn_blocking(move || imb_hash::hash_reader(p.reader(0)))
                    .await
                    .map_err(|e| bad(key, format!("hashing task failed: {e}")))?
                    .map_err(|e| Error::io(key.to_string(), e))?;
                if let Some(expected) = opts.crc32c
                    && expected != d.crc32c
                {
                    return Err(Error::ChecksumMismatch {
                        key: key.to_string(),
                        expected,
                        actual: d.crc32c,
                    });
                }
                if let Some(s) = given_sha1
                    && s != d.sha1
                {
                    return Err(bad(key, "metadata sha1 does not match the payload".into()));
                }
                crc = Some(d.crc32c);
                d.sha1
            }
        };
        let default_time = match &payload {
            Payload::File { file, .. } => file.metadata().and_then(|m| m.modified()).ok(),
            Payload::Bytes(_) => None,
        }
        .unwrap_or_else(SystemTime::now);
        let created = meta
            .get(META_FILE_CREATED_AT)
            .cloned()
            .unwrap_or_else(|| rfc3339(default_time));
        let modified = meta
            .get(META_FILE_MODIFIED_AT)
            .cloned()
            .unwrap_or_else(|| rfc3339(default_time));
        let size = payload.len();
        let mut asset = AssetUpload::new(filename, payload, sha1, created, modified)
            .with_favorite(meta.get(META_IS_FAVORITE).is_some_and(|v| v == "true"))
            .with_display_name(key.as_str());
        if let Some(ms) = meta.get(META_DURATION_MS) {
            let ms: u64 = ms
                .parse()
                .map_err(|_| bad(key, format!("metadata {META_DURATION_MS} is not a number")))?;
            asset = asset.with_duration(Some(Duration::from_millis(ms)));
        }
        asset.device_id = meta.get(META_DEVICE_ID).cloned();
        asset.device_asset_id = meta.get(META_DEVICE_ASSET_ID).cloned();
        let outcome = self
            .client
            .upload(&asset)
            .await
            .map_err(|e| to_storage(key, e))?;
        let mut put = PutResult::new(size, crc);
        put.id = Some(outcome.id.clone());
        Ok((outcome, put))
    }
}

#[async_trait]
impl ObjectCreate for ImmichStore {
    /// Uploads a new asset; content the user already has is
    /// [`Error::AlreadyExists`] (nothing is stored twice).
    async fn put_opts(&self, key: &Key, payload: Payload, opts: PutOptions) -> Result<PutResult> {
        let (outcome, put) = self.upload(key, payload, &opts).await?;
        match outcome.status {
            UploadStatus::Created => Ok(put),
            UploadStatus::Duplicate => Err(Error::AlreadyExists {
                key: key.to_string(),
            }),
        }
    }

    async fn copy_opts(&self, _from: &Key, _to: &Key, _opts: CopyOptions) -> Result<PutResult> {
        Err(Error::NotImplemented {
            operation: "copy",
            implementer: STORE,
        })
    }

    async fn create_upload(&self, _key: &Key, _opts: PutOptions) -> Result<Box<dyn Upload>> {
        Err(Error::NotImplemented {
            operation: "streamed create",
            implementer: STORE,
        })
    }
}
