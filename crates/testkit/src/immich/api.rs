//! The test server's Immich API: the endpoints device-sync and `@immich/cli` use,
//! with the server's semantics as its source has them (`asset-media.service.ts`,
//! `asset-upload.interceptor.ts`, `file-upload.interceptor.ts`, `utils/request.ts`,
//! `utils/mime-types.ts`, `album.service.ts`), answering in the shapes of the
//! OpenAPI spec.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::SystemTime;

use serde_json::{Value, json};

use super::http::Answer;
use super::{RecordedAlbum, RecordedAsset, RecordedUser, TestUser};

/// Image extensions Immich accepts (`mimeTypes.image`, raw formats included).
pub(crate) const IMAGE: &[&str] = &[
    ".3fr", ".ari", ".arw", ".cap", ".cin", ".cr2", ".cr3", ".crw", ".dcr", ".dng", ".erf", ".fff",
    ".iiq", ".k25", ".kdc", ".mrw", ".nef", ".nrw", ".orf", ".ori", ".pef", ".psd", ".raf", ".raw",
    ".rw2", ".rwl", ".sr2", ".srf", ".srw", ".x3f", ".avif", ".bmp", ".gif", ".heic", ".heif",
    ".hif", ".insp", ".jpe", ".jpeg", ".jpg", ".jxl", ".png", ".svg", ".tif", ".tiff", ".webp",
];
/// Video extensions Immich accepts (`mimeTypes.video`).
pub(crate) const VIDEO: &[&str] = &[
    ".3gp", ".3gpp", ".avi", ".flv", ".insv", ".m2ts", ".m4v", ".mkv", ".mov", ".mp4", ".mpe",
    ".mpeg", ".mpg", ".mts", ".vob", ".webm", ".wmv",
];
/// Sidecar extensions (`mimeTypes.sidecar`).
pub(crate) const SIDECAR: &[&str] = &[".xmp"];

fn ext_in(name: &str, list: &[&str]) -> bool {
    let base = name.rsplit('/').next().unwrap_or(name);
    match base.rfind('.') {
        Some(i) if i > 0 => {
            let e = base[i..].to_ascii_lowercase();
            list.contains(&e.as_str())
        }
        _ => false,
    }
}

struct UserRec {
    id: String,
    key_id: String,
    created_at: String,
    u: TestUser,
    usage: u64,
}

struct AssetRec {
    r: RecordedAsset,
    sha1: [u8; 20],
}

pub(crate) struct State {
    users: Vec<UserRec>,
    assets: Vec<AssetRec>,
    albums: Vec<RecordedAlbum>,
    next: u64,
}

/// The API behind the HTTP layer.
pub(crate) struct Api {
    version: (u64, u64, u64),
    state: Mutex<State>,
}

fn now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// `fromChecksum`: 28 characters are base64, anything else hex.
fn from_checksum(s: &str) -> Option<[u8; 20]> {
    if s.len() == 28 {
        let bytes = base64_decode(s)?;
        bytes.try_into().ok()
    } else {
        imb_hash::parse_hex::<20>(s)
    }
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    const ALPHA: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let mut bits: u32 = 0;
    let mut n = 0;
    for c in s.bytes().filter(|&c| c != b'=') {
        let v = ALPHA.iter().position(|&a| a == c)? as u32;
        bits = (bits << 6) | v;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
            bits &= (1 << n) - 1;
        }
    }
    Some(out)
}

/// `YYYY-MM-DDTHH:MM[:SS[.f]]` with `Z` or `±HH:MM`: the spec's date-time pattern, roughly.
fn is_datetime(s: &str) -> bool {
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|x| x.iter().all(u8::is_ascii_digit));
    let zoned = s.ends_with('Z')
        || (s.len() > 6 && {
            let z = &b[s.len() - 6..];
            (z[0] == b'+' || z[0] == b'-') && z[3] == b':'
        });
    s.len() >= 17
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && zoned
}

struct Part {
    name: String,
    filename: Option<String>,
    data: Vec<u8>,
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    (from..=hay.len() - needle.len()).find(|&i| hay[i..i + needle.len()] == *needle)
}

fn param(disposition: &str, key: &str) -> Option<String> {
    disposition.split(';').skip(1).find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        (k.trim().eq_ignore_ascii_case(key)).then(|| v.trim().trim_matches('"').to_owned())
    })
}

/// Parses a `multipart/form-data` body; `None` if it is malformed.
fn parse_multipart(content_type: &str, body: &[u8]) -> Option<Vec<Part>> {
    let boundary = content_type
        .split(';')
        .find_map(|p| p.trim().strip_prefix("boundary="))?
        .trim_matches('"');
    let delim = format!("--{boundary}");
    let mut pos = find(body, delim.as_bytes(), 0)? + delim.len();
    let mut parts = Vec::new();
    loop {
        if body.get(pos..pos + 2) == Some(b"--") {
            return Some(parts);
        }
        if body.get(pos..pos + 2) != Some(b"\r\n") {
            return None;
        }
        pos += 2;
        let head_end = find(body, b"\r\n\r\n", pos)?;
        let head = String::from_utf8_lossy(&body[pos..head_end]).into_owned();
        let data_start = head_end + 4;
        let next = find(body, format!("\r\n{delim}").as_bytes(), data_start)?;
        let mut name = None;
        let mut filename = None;
        for line in head.split("\r\n") {
            if let Some((k, v)) = line.split_once(':')
                && k.trim().eq_ignore_ascii_case("content-disposition")
            {
                name = param(v, "name");
                filename = param(v, "filename");
            }
        }
        parts.push(Part {
            name: name?,
            filename,
            data: body[data_start..next].to_vec(),
        });
        pos = next + 2 + delim.len();
    }
}

impl Api {
    pub(crate) fn new(version: (u64, u64, u64), users: Vec<TestUser>) -> Api {
        let mut state = State {
            users: Vec::new(),
            assets: Vec::new(),
            albums: Vec::new(),
            next: 0,
        };
        for u in users {
            let id = state.id(0xcccc_cccc);
            let key_id = state.id(0xdddd_dddd);
            state.users.push(UserRec {
                id,
                key_id,
                created_at: now(),
                u,
                usage: 0,
            });
        }
        Api {
            version,
            state: Mutex::new(state),
        }
    }

    fn v3(&self) -> bool {
        self.version.0 >= 3
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An error answer in the server's format: v3 sends `{message}`, v2 also
    /// `error` and `statusCode`.
    pub(crate) fn error(&self, status: u16, message: &str) -> Answer {
        self.error_value(status, json!(message))
    }

    fn error_value(&self, status: u16, message: Value) -> Answer {
        if self.v3() {
            Answer::json(status, &json!({ "message": message }))
        } else {
            let error = match status {
                400 => "Bad Request",
                401 => "Unauthorized",
                403 => "Forbidden",
                404 => "Not Found",
                _ => "Error",
            };
            Answer::json(
                status,
                &json!({ "message": message, "error": error, "statusCode": status, "correlationId": "test" }),
            )
        }
    }

    fn validation(&self, problems: Vec<String>) -> Answer {
        if self.v3() {
            self.error(400, "Validation failed")
        } else {
            self.error_value(400, json!(problems))
        }
    }

    /// The user the `x-api-key` header names, or the 401 answer.
    fn auth(&self, headers: &[(String, String)]) -> Result<usize, Answer> {
        let key = headers
            .iter()
            .find(|(k, _)| k == "x-api-key")
            .map(|(_, v)| v.as_str());
        let Some(key) = key else {
            return Err(self.error(401, "Authentication required"));
        };
        self.lock()
            .users
            .iter()
            .position(|u| u.u.key == key)
            .ok_or_else(|| self.error(401, "Invalid API key"))
    }

    fn permit(&self, user: usize, permission: &str) -> Result<(), Answer> {
        let st = self.lock();
        let perms = &st.users[user].u.permissions;
        if perms.iter().any(|p| p == "all" || p == permission) {
            Ok(())
        } else {
            Err(self.error(403, &format!("Missing required permission: {permission}")))
        }
    }

    /// The checksum short-circuit (`AssetUploadInterceptor`): an upload whose
    /// `x-immich-checksum` the user already has is answered before the body is read.
    pub(crate) fn early(
        &self,
        method: &str,
        path: &str,
        headers: &[(String, String)],
    ) -> Option<Answer> {
        if method != "POST" || path != "/api/assets" {
            return None;
        }
        let user = self.auth(headers).ok()?;
        self.permit(user, "asset.upload").ok()?;
        let checksum = headers
            .iter()
            .find(|(k, _)| k == "x-immich-checksum")
            .map(|(_, v)| v.as_str())?;
        let sha1 = from_checksum(checksum)?;
        let st = self.lock();
        let owner = &st.users[user].u.email;
        let existing = st
            .assets
            .iter()
            .find(|a| a.sha1 == sha1 && a.r.owner == *owner)?;
        Some(Answer::json(
            200,
            &json!({ "id": existing.r.id, "status": "duplicate" }),
        ))
    }

    /// Every other request.
    pub(crate) fn handle(
        &self,
        method: &str,
        target: &str,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Answer {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        match (method, path) {
            ("GET", "/.well-known/immich") => {
                return Answer::json(200, &json!({ "api": { "endpoint": "/api" } }));
            }
            ("GET", "/api/server/ping") => return Answer::json(200, &json!({ "res": "pong" })),
            ("GET", "/api/server/version") => return self.version(),
            ("GET", "/api/server/media-types") => {
                return Answer::json(
                    200,
                    &json!({ "image": IMAGE, "video": VIDEO, "sidecar": SIDECAR }),
                );
            }
            _ => {}
        }
        let known = matches!(
            (method, path),
            ("GET", "/api/users/me")
                | ("GET", "/api/api-keys/me")
                | ("POST", "/api/assets/bulk-upload-check")
                | ("POST", "/api/assets")
                | ("GET", "/api/albums")
                | ("POST", "/api/albums")
        ) || (method == "PUT" && album_assets_id(path).is_some())
            || (method == "GET" && album_id(path).is_some());
        if !known {
            return self.error(404, &format!("Cannot {method} {path}"));
        }
        let user = match self.auth(headers) {
            Ok(u) => u,
            Err(a) => return a,
        };
        let needed = match (method, path) {
            ("GET", "/api/users/me") => Some("user.read"),
            ("POST", "/api/assets/bulk-upload-check" | "/api/assets") => Some("asset.upload"),
            ("GET", _) if path.starts_with("/api/albums") => Some("album.read"),
            ("POST", "/api/albums") => Some("album.create"),
            ("PUT", _) => Some("albumAsset.create"),
            _ => None,
        };
        if let Some(p) = needed
            && let Err(a) = self.permit(user, p)
        {
            return a;
        }
        let json_body = || serde_json::from_slice::<Value>(body).ok();
        match (method, path) {
            ("GET", "/api/users/me") => self.me(user),
            ("GET", "/api/api-keys/me") => self.api_key(user),
            ("POST", "/api/assets/bulk-upload-check") => match json_body() {
                Some(v) => self.bulk_check(user, &v),
                None => self.validation(vec!["assets must be an array".into()]),
            },
            ("POST", "/api/assets") => {
                let ct = headers
                    .iter()
                    .find(|(k, _)| k == "content-type")
                    .map_or("", |(_, v)| v.as_str());
                self.upload(user, ct, body)
            }
            ("GET", "/api/albums") => self.list_albums(user, query),
            ("POST", "/api/albums") => match json_body() {
                Some(v) => self.create_album(user, &v),
                None => self.validation(vec!["albumName must be a string".into()]),
            },
            ("PUT", _) => {
                let id = album_assets_id(path).unwrap_or_default();
                match json_body() {
                    Some(v) => self.add_assets(user, id, &v),
                    None => self.validation(vec!["ids must be an array".into()]),
                }
            }
            _ => {
                let id = album_id(path).unwrap_or_default();
                let st = self.lock();
                let owner = &st.users[user].u.email;
                match st.albums.iter().find(|a| a.id == id && a.owner == *owner) {
                    Some(a) => Answer::json(200, &self.album_json(&st, a)),
                    None => self.error(400, "Not found or no album.read access"),
                }
            }
        }
    }

    fn version(&self) -> Answer {
        let (major, minor, patch) = self.version;
        let mut v = json!({ "major": major, "minor": minor, "patch": patch });
        if self.v3() {
            v["prerelease"] = Value::Null;
        }
        Answer::json(200, &v)
    }

    fn user_json(u: &UserRec) -> Value {
        json!({
            "id": u.id, "email": u.u.email, "name": u.u.name,
            "avatarColor": "primary", "profileImagePath": "", "profileChangedAt": u.created_at,
        })
    }

    fn me(&self, user: usize) -> Answer {
        let st = self.lock();
        let u = &st.users[user];
        let mut v = Self::user_json(u);
        let extra = json!({
            "createdAt": u.created_at, "updatedAt": u.created_at, "deletedAt": null,
            "isAdmin": user == 0, "license": null, "oauthId": "", "shouldChangePassword": false,
            "status": "active", "storageLabel": null,
            "quotaSizeInBytes": u.u.quota, "quotaUsageInBytes": u.usage,
        });
        if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        Answer::json(200, &v)
    }

    fn api_key(&self, user: usize) -> Answer {
        let st = self.lock();
        let u = &st.users[user];
        Answer::json(
            200,
            &json!({
                "id": u.key_id, "name": "test key", "createdAt": u.created_at,
                "updatedAt": u.created_at, "permissions": u.u.permissions,
            }),
        )
    }

    fn bulk_check(&self, user: usize, v: &Value) -> Answer {
        let Some(items) = v.get("assets").and_then(Value::as_array) else {
            return self.validation(vec!["assets must be an array".into()]);
        };
        let st = self.lock();
        let owner = &st.users[user].u.email;
        let mut results = Vec::with_capacity(items.len());
        for item in items {
            let (Some(id), Some(checksum)) = (
                item.get("id").and_then(Value::as_str),
                item.get("checksum").and_then(Value::as_str),
            ) else {
                return self
                    .validation(vec!["assets.id and assets.checksum must be strings".into()]);
            };
            let dup = from_checksum(checksum).and_then(|sha1| {
                st.assets
                    .iter()
                    .find(|a| a.sha1 == sha1 && a.r.owner == *owner)
            });
            results.push(match dup {
                Some(a) => json!({
                    "id": id, "action": "reject", "reason": "duplicate",
                    "assetId": a.r.id, "isTrashed": false,
                }),
                None => json!({ "id": id, "action": "accept" }),
            });
        }
        Answer::json(200, &json!({ "results": results }))
    }

    fn upload(&self, user: usize, content_type: &str, body: &[u8]) -> Answer {
        if !content_type
            .to_ascii_lowercase()
            .starts_with("multipart/form-data")
        {
            return self.error(400, "Multipart: Boundary not found");
        }
        let Some(parts) = parse_multipart(content_type, body) else {
            return self.error(400, "Unexpected end of form");
        };
        // Multer streams the parts in order: a file part is judged by the `filename`
        // field if that arrived before it, else by the part's own file name.
        let mut fields: BTreeMap<String, String> = BTreeMap::new();
        let mut asset: Option<(String, Vec<u8>)> = None;
        let mut sidecar: Option<(String, Vec<u8>)> = None;
        for p in parts {
            match (&p.filename, p.name.as_str()) {
                (None, _) => {
                    let value = String::from_utf8_lossy(&p.data).into_owned();
                    fields.entry(p.name).or_insert(value);
                }
                (Some(f), "assetData" | "sidecarData") => {
                    let judged = fields.get("filename").cloned().unwrap_or_else(|| f.clone());
                    let asset_part = p.name == "assetData";
                    let ok = if asset_part {
                        ext_in(&judged, IMAGE) || ext_in(&judged, VIDEO)
                    } else {
                        ext_in(&judged, SIDECAR)
                    };
                    if !ok {
                        return self.error(400, &format!("Unsupported file type {judged}"));
                    }
                    let slot = if asset_part { &mut asset } else { &mut sidecar };
                    if slot.is_some() {
                        return self.error(400, "Unexpected field");
                    }
                    *slot = Some((f.clone(), p.data));
                }
                (Some(_), _) => return self.error(400, "Unexpected field"),
            }
        }
        let Some((part_name, data)) = asset.filter(|(_, d)| !d.is_empty()) else {
            return self.error(400, "Validation failed (file assetData is required)");
        };
        let mut problems = Vec::new();
        for f in ["fileCreatedAt", "fileModifiedAt"] {
            if !fields.get(f).is_some_and(|v| is_datetime(v)) {
                problems.push(format!("{f} must be a Date instance"));
            }
        }
        if let Some(v) = fields.get("isFavorite")
            && v != "true"
            && v != "false"
        {
            problems.push("isFavorite must be a boolean value".into());
        }
        if self.v3() {
            if let Some(d) = fields.get("duration")
                && (d.is_empty() || !d.bytes().all(|b| b.is_ascii_digit()))
            {
                problems.push("duration must be an integer number".into());
            }
        } else {
            for f in ["deviceAssetId", "deviceId"] {
                if fields.get(f).is_none_or(|v| v.is_empty()) {
                    problems.push(format!("{f} must be a string"));
                    problems.push(format!("{f} should not be empty"));
                }
            }
        }
        if !problems.is_empty() {
            return self.validation(problems);
        }
        let size = data.len() as u64;
        let sha1 = imb_hash::digest(&data).sha1;
        let mut st = self.lock();
        let (quota, usage, owner) = {
            let u = &st.users[user];
            (u.u.quota, u.usage, u.u.email.clone())
        };
        // `requireQuota` runs before the asset is created, so a full quota refuses
        // even a duplicate that came without the checksum header.
        if quota.is_some_and(|q| q < usage + size) {
            drop(st);
            return self.error(400, "Quota has been exceeded!");
        }
        if let Some(dup) = st
            .assets
            .iter()
            .find(|a| a.sha1 == sha1 && a.r.owner == owner)
        {
            return Answer::json(200, &json!({ "id": dup.r.id, "status": "duplicate" }));
        }
        let id = st.id(0xaaaa_aaaa);
        let filename = fields.get("filename").cloned().unwrap_or(part_name);
        st.users[user].usage += size;
        st.assets.push(AssetRec {
            r: RecordedAsset {
                id: id.clone(),
                owner,
                checksum: imb_hash::hex(&sha1),
                filename,
                size,
                fields,
                sidecar: sidecar.map(|(name, d)| (name, d.len() as u64)),
                created_at: now(),
            },
            sha1,
        });
        Answer::json(201, &json!({ "id": id, "status": "created" }))
    }

    fn album_json(&self, st: &State, a: &RecordedAlbum) -> Value {
        let owner = st.users.iter().find(|u| u.u.email == a.owner);
        let owner_json = owner.map_or(Value::Null, Self::user_json);
        let mut v = json!({
            "id": a.id, "albumName": a.name, "description": "",
            "albumThumbnailAssetId": a.assets.first(),
            "assetCount": a.assets.len(), "createdAt": a.created_at, "updatedAt": a.created_at,
            "hasSharedLink": false, "isActivityEnabled": true, "shared": false, "order": "desc",
        });
        if self.v3() {
            v["albumUsers"] = json!([{ "role": "owner", "user": owner_json }]);
        } else {
            v["ownerId"] = json!(owner.map(|u| u.id.clone()));
            v["owner"] = owner_json;
            v["albumUsers"] = json!([]);
            v["assets"] = json!([]);
        }
        v
    }

    fn list_albums(&self, user: usize, query: &str) -> Answer {
        let name = query.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            (k == "name").then(|| percent_decode(v))
        });
        let st = self.lock();
        let owner = &st.users[user].u.email;
        let list: Vec<Value> = st
            .albums
            .iter()
            .filter(|a| a.owner == *owner && name.as_ref().is_none_or(|n| *n == a.name))
            .map(|a| self.album_json(&st, a))
            .collect();
        Answer::json(200, &Value::Array(list))
    }

    fn create_album(&self, user: usize, v: &Value) -> Answer {
        let Some(name) = v.get("albumName").and_then(Value::as_str) else {
            return self.validation(vec!["albumName must be a string".into()]);
        };
        let mut st = self.lock();
        let owner = st.users[user].u.email.clone();
        let mut assets = Vec::new();
        for id in v
            .get("assetIds")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if st.assets.iter().any(|a| a.r.id == id && a.r.owner == owner)
                && !assets.iter().any(|x| x == id)
            {
                assets.push(id.to_owned());
            }
        }
        let album = RecordedAlbum {
            id: st.id(0xbbbb_bbbb),
            name: name.to_owned(),
            owner,
            assets,
            created_at: now(),
        };
        let body = self.album_json(&st, &album);
        st.albums.push(album);
        Answer::json(201, &body)
    }

    fn add_assets(&self, user: usize, album: &str, v: &Value) -> Answer {
        let Some(ids) = v.get("ids").and_then(Value::as_array) else {
            return self.validation(vec!["ids must be an array".into()]);
        };
        let mut st = self.lock();
        let owner = st.users[user].u.email.clone();
        let Some(ai) = st
            .albums
            .iter()
            .position(|a| a.id == album && a.owner == owner)
        else {
            drop(st);
            return self.error(400, "Not found or no albumAsset.create access");
        };
        let mut results = Vec::with_capacity(ids.len());
        for id in ids.iter().filter_map(Value::as_str) {
            let mine = st.assets.iter().any(|a| a.r.id == id && a.r.owner == owner);
            let r = if st.albums[ai].assets.iter().any(|x| x == id) {
                json!({ "id": id, "success": false, "error": "duplicate" })
            } else if !mine {
                json!({ "id": id, "success": false, "error": "no_permission" })
            } else {
                st.albums[ai].assets.push(id.to_owned());
                json!({ "id": id, "success": true })
            };
            results.push(r);
        }
        Answer::json(200, &Value::Array(results))
    }

    // Accessors for the harness.

    pub(crate) fn assets(&self) -> Vec<RecordedAsset> {
        self.lock().assets.iter().map(|a| a.r.clone()).collect()
    }

    pub(crate) fn albums(&self) -> Vec<RecordedAlbum> {
        self.lock().albums.clone()
    }

    pub(crate) fn users(&self) -> Vec<RecordedUser> {
        self.lock()
            .users
            .iter()
            .map(|u| RecordedUser {
                id: u.id.clone(),
                email: u.u.email.clone(),
                quota: u.u.quota,
                usage: u.usage,
            })
            .collect()
    }

    pub(crate) fn set_quota(&self, email: &str, quota: Option<u64>) {
        let mut st = self.lock();
        if let Some(u) = st.users.iter_mut().find(|u| u.u.email == email) {
            u.u.quota = quota;
        }
    }

    pub(crate) fn add_album(&self, email: &str, name: &str, created_at: &str) -> String {
        let mut st = self.lock();
        let id = st.id(0xbbbb_bbbb);
        st.albums.push(RecordedAlbum {
            id: id.clone(),
            name: name.to_owned(),
            owner: email.to_owned(),
            assets: Vec::new(),
            created_at: created_at.to_owned(),
        });
        id
    }

    pub(crate) fn add_asset(&self, email: &str, filename: &str, data: &[u8]) -> String {
        let mut st = self.lock();
        let id = st.id(0xaaaa_aaaa);
        let sha1 = imb_hash::digest(data).sha1;
        if let Some(u) = st.users.iter_mut().find(|u| u.u.email == email) {
            u.usage += data.len() as u64;
        }
        st.assets.push(AssetRec {
            r: RecordedAsset {
                id: id.clone(),
                owner: email.to_owned(),
                checksum: imb_hash::hex(&sha1),
                filename: filename.to_owned(),
                size: data.len() as u64,
                fields: BTreeMap::new(),
                sidecar: None,
                created_at: now(),
            },
            sha1,
        });
        id
    }
}

impl State {
    /// A UUID-shaped id (version 4, variant 1, as the spec's pattern wants), unique
    /// and increasing per server; `kind` makes asset, album and user ids look different.
    fn id(&mut self, kind: u32) -> String {
        self.next += 1;
        format!("{kind:08x}-0000-4000-8000-{:012x}", self.next)
    }
}

fn album_assets_id(path: &str) -> Option<&str> {
    let id = path.strip_prefix("/api/albums/")?.strip_suffix("/assets")?;
    (!id.is_empty() && !id.contains('/')).then_some(id)
}

fn album_id(path: &str) -> Option<&str> {
    let id = path.strip_prefix("/api/albums/")?;
    (!id.is_empty() && !id.contains('/')).then_some(id)
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or(""), 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_in_hex_and_base64() {
        let sha1 = imb_hash::digest(b"abc").sha1;
        assert_eq!(from_checksum(&imb_hash::hex(&sha1)), Some(sha1));
        assert_eq!(from_checksum(&imb_hash::base64(&sha1)), Some(sha1));
        assert_eq!(from_checksum("nope"), None);
    }

    #[test]
    fn datetimes() {
        assert!(is_datetime("2024-01-01T00:00:00.000Z"));
        assert!(is_datetime("2024-01-01T10:00:00+02:00"));
        assert!(!is_datetime("2024-01-01T10:00:00"));
        assert!(!is_datetime("yesterday"));
    }

    #[test]
    fn multipart_round_trip() {
        let body = b"--xx\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--xx\r\nContent-Disposition: form-data; name=\"f\"; filename=\"p.jpg\"\r\n\r\n\r\n--x\r\n--xx--\r\n";
        let parts = parse_multipart("multipart/form-data; boundary=xx", body).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].name, "a");
        assert_eq!(parts[0].data, b"1");
        assert_eq!(parts[1].filename.as_deref(), Some("p.jpg"));
        assert_eq!(parts[1].data, b"\r\n--x");
        assert_eq!(percent_decode("a%20b+c"), "a b c");
    }
}
