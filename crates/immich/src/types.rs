//! What the typed calls send and return: the parts of Immich's DTOs this client uses
//! (field names as in the server's OpenAPI spec), read leniently so a newer server's
//! extra fields do not break it.

use std::time::Duration;

use imb_storage::Payload;
use serde::{Deserialize, Serialize};

use crate::ApiVersion;

/// `GET /server/version` (`ServerVersionResponseDto`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct ServerVersion {
    /// Major version.
    pub major: u64,
    /// Minor version.
    pub minor: u64,
    /// Patch version.
    pub patch: u64,
}

impl ServerVersion {
    /// The API generation this version speaks.
    pub fn api(&self) -> ApiVersion {
        ApiVersion::for_major(self.major)
    }
}

impl std::fmt::Display for ServerVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// `GET /server/media-types` (`ServerMediaTypesResponseDto`): the file extensions
/// the server accepts, with their dots (`.jpg`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct MediaTypes {
    /// Image extensions.
    #[serde(default)]
    pub image: Vec<String>,
    /// Video extensions.
    #[serde(default)]
    pub video: Vec<String>,
    /// Sidecar extensions (`.xmp`).
    #[serde(default)]
    pub sidecar: Vec<String>,
}

/// The extension of `name` with its dot, lowercased (`IMG.JPG` → `.jpg`).
fn extension(name: &str) -> Option<String> {
    let base = name.rsplit('/').next().unwrap_or(name);
    let dot = base.rfind('.')?;
    (dot > 0).then(|| base[dot..].to_ascii_lowercase())
}

impl MediaTypes {
    fn has(list: &[String], name: &str) -> bool {
        extension(name).is_some_and(|e| list.iter().any(|x| x.eq_ignore_ascii_case(&e)))
    }
    /// Whether the server takes `name` as an asset (image or video), by extension.
    pub fn accepts(&self, name: &str) -> bool {
        self.is_image(name) || self.is_video(name)
    }
    /// Whether `name` is an image the server accepts.
    pub fn is_image(&self, name: &str) -> bool {
        Self::has(&self.image, name)
    }
    /// Whether `name` is a video the server accepts.
    pub fn is_video(&self, name: &str) -> bool {
        Self::has(&self.video, name)
    }
    /// Whether `name` is a sidecar the server accepts.
    pub fn is_sidecar(&self, name: &str) -> bool {
        Self::has(&self.sidecar, name)
    }
}

/// `GET /users/me` (`UserAdminResponseDto`), the fields this client uses.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct User {
    /// The user's id.
    pub id: String,
    /// The user's email.
    #[serde(default)]
    pub email: String,
    /// The user's name.
    #[serde(default)]
    pub name: String,
    /// The quota in bytes; `None` means unlimited.
    #[serde(default)]
    pub quota_size_in_bytes: Option<u64>,
    /// Bytes used so far (`None` on servers that do not track it).
    #[serde(default)]
    pub quota_usage_in_bytes: Option<u64>,
    /// Whether the user is an administrator (may queue jobs, read queues).
    #[serde(default)]
    pub is_admin: bool,
}

impl User {
    /// Bytes left under the quota; `None` when there is no quota.
    pub fn quota_remaining(&self) -> Option<u64> {
        self.quota_size_in_bytes
            .map(|q| q.saturating_sub(self.quota_usage_in_bytes.unwrap_or(0)))
    }

    /// Whether `bytes` more would exceed the quota (the server's own test:
    /// `quotaSizeInBytes < quotaUsageInBytes + size`).
    pub fn would_exceed_quota(&self, bytes: u64) -> bool {
        self.quota_size_in_bytes
            .is_some_and(|q| q < self.quota_usage_in_bytes.unwrap_or(0).saturating_add(bytes))
    }
}

/// One entry of `POST /assets/bulk-upload-check` (`AssetBulkUploadCheckItem`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct CheckItem {
    /// The caller's identifier, echoed in the result (e.g. a path).
    pub id: String,
    /// The SHA-1, hex.
    pub checksum: String,
}

impl CheckItem {
    /// An item for `sha1` under the caller's `id`.
    pub fn new(id: impl Into<String>, sha1: &[u8; 20]) -> CheckItem {
        CheckItem {
            id: id.into(),
            checksum: imb_hash::hex(sha1),
        }
    }
}

/// What the server says about one checked item.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CheckVerdict {
    /// Not on the server: upload it.
    Accept,
    /// Already on the server as asset `asset_id` (possibly in the trash).
    Duplicate {
        /// The existing asset's id.
        asset_id: String,
        /// Whether that asset is in the trash.
        is_trashed: bool,
    },
    /// Refused for another reason (`unsupported-format`, or one this client does not know).
    Reject {
        /// The server's reason.
        reason: String,
    },
}

/// One result of a bulk upload check, in the order of the request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CheckResult {
    /// The caller's identifier.
    pub id: String,
    /// The verdict.
    pub verdict: CheckVerdict,
}

/// The wire form of `AssetBulkUploadCheckResult`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CheckResultDto {
    pub(crate) id: String,
    pub(crate) action: String,
    #[serde(default)]
    pub(crate) reason: Option<String>,
    #[serde(default)]
    pub(crate) asset_id: Option<String>,
    #[serde(default)]
    pub(crate) is_trashed: Option<bool>,
}

impl From<CheckResultDto> for CheckResult {
    fn from(d: CheckResultDto) -> CheckResult {
        let verdict = match (d.action.as_str(), d.reason.as_deref(), d.asset_id) {
            ("accept", _, _) => CheckVerdict::Accept,
            (_, Some("duplicate"), Some(asset_id)) => CheckVerdict::Duplicate {
                asset_id,
                is_trashed: d.is_trashed.unwrap_or(false),
            },
            (_, reason, _) => CheckVerdict::Reject {
                reason: reason.unwrap_or("unknown").to_owned(),
            },
        };
        CheckResult { id: d.id, verdict }
    }
}

/// How an upload ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadStatus {
    /// A new asset (HTTP 201).
    Created,
    /// The user already has an asset with this content (HTTP 200).
    Duplicate,
}

/// What `POST /assets` answered (`AssetMediaResponseDto`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UploadOutcome {
    /// The asset's id on the server: the new one, or the existing duplicate.
    pub id: String,
    /// Created or duplicate.
    pub status: UploadStatus,
}

/// One asset to upload with `POST /assets`. Build it with [`AssetUpload::new`] and
/// the `with_*` setters.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AssetUpload {
    /// The file name the server records (`filename`, and the part's file name).
    pub filename: String,
    /// The bytes.
    pub payload: Payload,
    /// SHA-1 of the bytes; sent as `x-immich-checksum` so the server can answer
    /// "duplicate" without reading the body.
    pub sha1: [u8; 20],
    /// `fileCreatedAt`: RFC 3339 with a time zone (`2024-05-01T10:00:00.000Z`).
    pub file_created_at: String,
    /// `fileModifiedAt`: RFC 3339 with a time zone.
    pub file_modified_at: String,
    /// `isFavorite`.
    pub is_favorite: bool,
    /// `duration` of a video (sent as milliseconds to v3, `H:MM:SS.ffffff` to v2).
    pub duration: Option<Duration>,
    /// An `.xmp` sidecar sent as `sidecarData`.
    pub sidecar: Option<Payload>,
    /// `deviceAssetId` for v2 servers; defaults to `{filename}-{size}` without
    /// whitespace (the old CLI's convention).
    pub device_asset_id: Option<String>,
    /// `deviceId` for v2 servers; defaults to `immich-backup`.
    pub device_id: Option<String>,
    /// What to call the file in errors and logs (a path); defaults to `filename`.
    pub display_name: Option<String>,
    /// `visibility=hidden`: a live photo's motion video, shown through its still.
    pub hidden: bool,
    /// `livePhotoVideoId`: the motion video of this still, already uploaded.
    pub live_photo_video_id: Option<String>,
}

impl AssetUpload {
    /// An upload of `payload` as `filename` with the given SHA-1 and times.
    pub fn new(
        filename: impl Into<String>,
        payload: Payload,
        sha1: [u8; 20],
        file_created_at: impl Into<String>,
        file_modified_at: impl Into<String>,
    ) -> AssetUpload {
        AssetUpload {
            filename: filename.into(),
            payload,
            sha1,
            file_created_at: file_created_at.into(),
            file_modified_at: file_modified_at.into(),
            is_favorite: false,
            duration: None,
            sidecar: None,
            device_asset_id: None,
            device_id: None,
            display_name: None,
            hidden: false,
            live_photo_video_id: None,
        }
    }

    /// A live photo's part: `hidden` for the motion video, `video` (its asset
    /// id) for the still.
    pub fn with_live_photo(mut self, hidden: bool, video: Option<String>) -> Self {
        self.hidden = hidden;
        self.live_photo_video_id = video;
        self
    }

    /// Mark as favourite.
    pub fn with_favorite(mut self, fav: bool) -> Self {
        self.is_favorite = fav;
        self
    }
    /// A video's duration.
    pub fn with_duration(mut self, d: Option<Duration>) -> Self {
        self.duration = d;
        self
    }
    /// An `.xmp` sidecar.
    pub fn with_sidecar(mut self, sidecar: Option<Payload>) -> Self {
        self.sidecar = sidecar;
        self
    }
    /// The device ids v2 servers require.
    pub fn with_device(
        mut self,
        device_id: impl Into<String>,
        device_asset_id: impl Into<String>,
    ) -> Self {
        self.device_id = Some(device_id.into());
        self.device_asset_id = Some(device_asset_id.into());
        self
    }
    /// The name used in errors and logs.
    pub fn with_display_name(mut self, name: impl Into<String>) -> Self {
        self.display_name = Some(name.into());
        self
    }

    /// The name used in errors and logs.
    pub fn shown(&self) -> &str {
        self.display_name.as_deref().unwrap_or(&self.filename)
    }
}

/// `GET /albums` and `POST /albums` (`AlbumResponseDto`), the fields this client uses.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Album {
    /// The album's id.
    pub id: String,
    /// Its name (not unique: several albums may share one).
    pub album_name: String,
    /// How many assets it has.
    #[serde(default)]
    pub asset_count: u64,
    /// When it was created (RFC 3339).
    #[serde(default)]
    pub created_at: String,
    /// The owner's id (v2 servers send it).
    #[serde(default)]
    pub owner_id: Option<String>,
    /// The album's users; v3 servers list the owner first with role `owner`.
    #[serde(default)]
    pub album_users: Vec<AlbumUser>,
}

/// One entry of an album's `albumUsers`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct AlbumUser {
    /// `owner`, `editor` or `viewer`.
    #[serde(default)]
    pub role: String,
    /// The user.
    pub user: AlbumUserRef,
}

/// The user of an [`AlbumUser`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct AlbumUserRef {
    /// The user's id.
    pub id: String,
}

impl Album {
    /// The owner's id: `ownerId` (v2) or the `albumUsers` entry with role `owner` (v3).
    pub fn owner(&self) -> Option<&str> {
        self.owner_id.as_deref().or_else(|| {
            self.album_users
                .iter()
                .find(|u| u.role == "owner")
                .map(|u| u.user.id.as_str())
        })
    }
}

/// Picks the album a device album named `name` maps to, when the user may have
/// several albums of that name: among albums with exactly that name that `user_id`
/// owns (or whose owner the server does not say), the one created first, ties
/// broken by the smaller id. `None` means "create one".
pub fn pick_album<'a>(albums: &'a [Album], name: &str, user_id: &str) -> Option<&'a Album> {
    albums
        .iter()
        .filter(|a| a.album_name == name && a.owner().is_none_or(|o| o == user_id))
        .min_by(|a, b| (&a.created_at, &a.id).cmp(&(&b.created_at, &b.id)))
}

/// One result of adding assets to an album (`BulkIdResponseDto`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct BulkIdResult {
    /// The asset id.
    pub id: String,
    /// Whether it was added.
    pub success: bool,
    /// Why not: `duplicate` (already in the album), `no_permission`, `not_found`, ….
    #[serde(default)]
    pub error: Option<String>,
}

impl BulkIdResult {
    /// Added now, or already there.
    pub fn is_in_album(&self) -> bool {
        self.success || self.error.as_deref() == Some("duplicate")
    }
}
