//! The typed Immich API client: one method per endpoint, the retry loop they share,
//! and the multipart upload with its checksum header.

use std::time::{Duration, Instant};

use imb_storage::retry::{Retrier, Step, retry_after, retryable_status};
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tokio::sync::OnceCell;

use crate::error::from_status;
use crate::multipart::Form;
use crate::types::CheckResultDto;
use crate::{
    Album, ApiKey, ApiVersion, AssetUpload, BulkIdResult, CheckItem, CheckResult, CheckVerdict,
    ClientConfig, Error, MediaTypes, Result, ServerVersion, UploadOutcome, UploadStatus, User,
};

/// Items per `POST /assets/bulk-upload-check` request.
pub const CHECK_BATCH: usize = 1000;
/// Asset ids per `PUT /albums/{id}/assets` request.
pub const ALBUM_BATCH: usize = 1000;
/// The header that carries an upload's SHA-1 (hex).
pub const CHECKSUM_HEADER: &str = "x-immich-checksum";

/// A client for one Immich server and one API key. Cheap to share behind an `Arc`;
/// requests may run concurrently.
#[derive(Debug)]
pub struct ImmichClient {
    root: String,
    key: ApiKey,
    http: reqwest::Client,
    retrier: Retrier,
    api_override: Option<ApiVersion>,
    api: OnceCell<ApiVersion>,
}

#[derive(Debug, Deserialize)]
struct UploadResponse {
    id: String,
    #[serde(default)]
    status: Option<String>,
}

#[derive(Debug, Deserialize)]
struct CheckResponse {
    results: Vec<CheckResultDto>,
}

/// Whether a request may be sent again after a failure that might have reached the
/// server. One that may not (creating an album) is retried only when it cannot
/// have reached it: a failed connect, or a 429.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Idempotent {
    Yes,
    No,
}

use imb_http::{tls_failure, transport};

impl ImmichClient {
    /// A client for `cfg`. Nothing is sent until the first call.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a bad URL or if the HTTP client cannot be built.
    pub fn new(cfg: ClientConfig) -> Result<ImmichClient> {
        let root = cfg.api_root()?;
        let builder = imb_http::with_ca_certs(reqwest::Client::builder(), &cfg.ca_certs).map_err(
            |message| Error::InvalidConfig {
                setting: "ca-cert",
                message,
            },
        )?;
        let http = builder
            .connect_timeout(cfg.connect_timeout)
            .read_timeout(cfg.read_timeout)
            .user_agent(concat!("immich-backup/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::InvalidConfig {
                setting: "http client",
                message: e.to_string(),
            })?;
        Ok(ImmichClient {
            root,
            key: cfg.api_key,
            http,
            retrier: Retrier::new(cfg.retry),
            api_override: cfg.api,
            api: OnceCell::new(),
        })
    }

    /// The API root requests go to (`…/api`).
    pub fn api_root(&self) -> &str {
        &self.root
    }

    /// Retries made so far, over all requests.
    pub fn retries(&self) -> u64 {
        self.retrier.retries()
    }

    /// Of those, retries after 429, 503 or a timeout.
    pub fn congestion(&self) -> u64 {
        self.retrier.congestion()
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.root)
    }

    pub(crate) fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, self.url(path))
            .header("x-api-key", self.key.header())
            .header("accept", "application/json")
    }

    /// Sends what `build` makes, retrying per the policy. Returns the final response
    /// whatever its status, with the number of attempts; transport failures that
    /// outlast the retries are [`Error::Transient`].
    pub(crate) async fn send(
        &self,
        endpoint: &str,
        idem: Idempotent,
        build: &(dyn Fn() -> RequestBuilder + Sync),
    ) -> Result<(Response, u32, Duration)> {
        let start = Instant::now();
        self.retrier
            .run(endpoint, |a| async move {
                match build().send().await {
                    Ok(resp) => {
                        let status = resp.status().as_u16();
                        let retry = match idem {
                            Idempotent::Yes => retryable_status(status),
                            Idempotent::No => status == 429,
                        };
                        let after = resp
                            .headers()
                            .get(RETRY_AFTER)
                            .and_then(|h| h.to_str().ok());
                        let retry_after = retry_after(after);
                        let last = Ok((resp, a.number, start.elapsed()));
                        Step::retry_if(retry, last, format!("HTTP {status}"), retry_after)
                    }
                    Err(e) => {
                        if let Some(why) = tls_failure(&e) {
                            return Step::Done(Err(Error::Tls {
                                endpoint: endpoint.to_owned(),
                                message: why,
                            }));
                        }
                        let retry = !e.is_builder() && (idem == Idempotent::Yes || e.is_connect());
                        transport_step(retry, endpoint, e, a.number, start)
                    }
                }
            })
            .await
    }

    /// Reads a JSON answer, or maps a non-success status to an error.
    pub(crate) async fn json<T: DeserializeOwned>(
        &self,
        endpoint: &str,
        (resp, attempts, elapsed): (Response, u32, Duration),
    ) -> Result<T> {
        let status = resp.status();
        let body = resp.text().await.map_err(|e| Error::Transient {
            endpoint: endpoint.to_owned(),
            message: format!("reading the response: {}", transport(&e)),
            attempts,
            elapsed,
            source: Some(Box::new(e)),
        })?;
        if !status.is_success() {
            return Err(from_status(
                endpoint,
                None,
                status.as_u16(),
                &body,
                attempts,
                elapsed,
            ));
        }
        serde_json::from_str(&body).map_err(|e| Error::Protocol {
            endpoint: endpoint.to_owned(),
            message: format!("HTTP {status}: {e}"),
        })
    }

    pub(crate) async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let endpoint = format!("GET {path}");
        let sent = self
            .send(&endpoint, Idempotent::Yes, &|| {
                self.request(Method::GET, path)
            })
            .await?;
        self.json(&endpoint, sent).await
    }

    pub(crate) async fn send_json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &serde_json::Value,
        idem: Idempotent,
    ) -> Result<T> {
        let endpoint = format!("{method} {path}");
        let body = body.to_string();
        let sent = self
            .send(&endpoint, idem, &|| {
                self.request(method.clone(), path)
                    .header(CONTENT_TYPE, "application/json")
                    .body(body.clone())
            })
            .await?;
        self.json(&endpoint, sent).await
    }

    /// `GET /server/version`.
    ///
    /// # Errors
    /// The server's or the network's error.
    pub async fn server_version(&self) -> Result<ServerVersion> {
        self.get("/server/version").await
    }

    /// The API generation to speak: the configured override, else what
    /// `GET /server/version` says (asked once, then remembered).
    ///
    /// # Errors
    /// As [`Self::server_version`].
    pub async fn api(&self) -> Result<ApiVersion> {
        if let Some(v) = self.api_override {
            return Ok(v);
        }
        self.api
            .get_or_try_init(|| async {
                let v = self.server_version().await?;
                tracing::debug!(version = %v, api = %v.api(), "server version");
                Ok(v.api())
            })
            .await
            .copied()
    }

    /// `GET /server/media-types`: the extensions the server accepts.
    ///
    /// # Errors
    /// The server's or the network's error.
    pub async fn media_types(&self) -> Result<MediaTypes> {
        self.get("/server/media-types").await
    }

    /// `GET /users/me`: who the key belongs to, and the quota.
    ///
    /// # Errors
    /// [`Error::Unauthorized`] for a bad key; the server's or the network's error.
    pub async fn my_user(&self) -> Result<User> {
        self.get("/users/me").await
    }

    /// Checks the quota up front: fails with [`Error::QuotaExceeded`] when `bytes`
    /// more would not fit. Returns the user.
    ///
    /// # Errors
    /// [`Error::QuotaExceeded`], or as [`Self::my_user`].
    pub async fn ensure_quota(&self, bytes: u64) -> Result<User> {
        let user = self.my_user().await?;
        if user.would_exceed_quota(bytes) {
            return Err(Error::QuotaExceeded {
                file: format!("{bytes} bytes to upload"),
                message: format!(
                    "{} of {} bytes used",
                    user.quota_usage_in_bytes.unwrap_or(0),
                    user.quota_size_in_bytes.unwrap_or(0)
                ),
            });
        }
        Ok(user)
    }

    /// `POST /assets/bulk-upload-check` in batches of [`CHECK_BATCH`]: which of
    /// these checksums the user's library already has. Results come in the order
    /// of `items`.
    ///
    /// # Errors
    /// The server's or the network's error; [`Error::Protocol`] if the answer does
    /// not match the question.
    pub async fn bulk_upload_check(&self, items: &[CheckItem]) -> Result<Vec<CheckResult>> {
        let mut out = Vec::with_capacity(items.len());
        for batch in items.chunks(CHECK_BATCH) {
            let body = serde_json::json!({ "assets": batch });
            let resp: CheckResponse = self
                .send_json(
                    Method::POST,
                    "/assets/bulk-upload-check",
                    &body,
                    Idempotent::Yes,
                )
                .await?;
            if resp.results.len() != batch.len()
                || resp.results.iter().zip(batch).any(|(r, i)| r.id != i.id)
            {
                return Err(Error::Protocol {
                    endpoint: "POST /assets/bulk-upload-check".into(),
                    message: format!(
                        "{} results for {} items, or not in the order asked",
                        resp.results.len(),
                        batch.len()
                    ),
                });
            }
            out.extend(resp.results.into_iter().map(CheckResult::from));
        }
        Ok(out)
    }

    /// `GET /albums`: every album the user can see.
    ///
    /// # Errors
    /// The server's or the network's error.
    pub async fn albums(&self) -> Result<Vec<Album>> {
        self.get("/albums").await
    }

    /// `POST /albums`: a new album called `name` (names need not be unique). Not
    /// retried after a failure that may have reached the server, so a blip cannot
    /// create two albums; list the albums again before creating once more.
    ///
    /// # Errors
    /// The server's or the network's error.
    pub async fn create_album(&self, name: &str) -> Result<Album> {
        let body = serde_json::json!({ "albumName": name });
        self.send_json(Method::POST, "/albums", &body, Idempotent::No)
            .await
    }

    /// `PUT /assets/{still}`: links `video` as the live photo's motion part (the
    /// server hides the video). Idempotent: linking again changes nothing.
    ///
    /// # Errors
    /// The server's (400 when `video` is not the user's video) or the network's.
    pub async fn link_live_photo(&self, still: &str, video: &str) -> Result<()> {
        let body = serde_json::json!({ "livePhotoVideoId": video });
        let _: serde_json::Value = self
            .send_json(
                Method::PUT,
                &format!("/assets/{still}"),
                &body,
                Idempotent::Yes,
            )
            .await?;
        Ok(())
    }

    /// `PUT /albums/{id}/assets` in batches of [`ALBUM_BATCH`]. Assets already in
    /// the album come back with `error: "duplicate"` ([`BulkIdResult::is_in_album`]).
    ///
    /// # Errors
    /// [`Error::NotFound`] if the album is gone; the server's or the network's error.
    pub async fn add_to_album(
        &self,
        album_id: &str,
        asset_ids: &[String],
    ) -> Result<Vec<BulkIdResult>> {
        let path = format!("/albums/{album_id}/assets");
        let mut out = Vec::with_capacity(asset_ids.len());
        for batch in asset_ids.chunks(ALBUM_BATCH) {
            let body = serde_json::json!({ "ids": batch });
            let part: Vec<BulkIdResult> = self
                .send_json(Method::PUT, &path, &body, Idempotent::Yes)
                .await?;
            out.extend(part);
        }
        Ok(out)
    }

    /// The form fields of an upload, in the order they are sent.
    fn form(&self, asset: &AssetUpload, api: ApiVersion) -> Form {
        let boundary = format!(
            "----imb{:016x}{:016x}",
            self.retrier.jitter().next_u64(),
            self.retrier.jitter().next_u64()
        );
        let mut form = Form::new(boundary);
        if api == ApiVersion::V2 {
            let device_asset_id = asset.device_asset_id.clone().unwrap_or_else(|| {
                format!("{}-{}", asset.filename, asset.payload.len())
                    .split_whitespace()
                    .collect()
            });
            form.text("deviceAssetId", &device_asset_id);
            form.text(
                "deviceId",
                asset.device_id.as_deref().unwrap_or("immich-backup"),
            );
        }
        form.text("fileCreatedAt", &asset.file_created_at);
        form.text("fileModifiedAt", &asset.file_modified_at);
        // Immich checks every file part against `filename` when that field arrived
        // before the part, so with a sidecar the field goes last (the sidecar part
        // would otherwise be judged by the photo's name and refused).
        let filename_last = asset.sidecar.is_some();
        if !filename_last {
            form.text("filename", &asset.filename);
        }
        form.text(
            "isFavorite",
            if asset.is_favorite { "true" } else { "false" },
        );
        if asset.hidden {
            form.text("visibility", "hidden");
        }
        if let Some(video) = &asset.live_photo_video_id {
            form.text("livePhotoVideoId", video);
        }
        if let Some(d) = asset.duration {
            match api {
                ApiVersion::V3 => form.text("duration", &d.as_millis().to_string()),
                ApiVersion::V2 => {
                    let s = d.as_secs();
                    let v = format!(
                        "{}:{:02}:{:02}.{:06}",
                        s / 3600,
                        (s / 60) % 60,
                        s % 60,
                        d.subsec_micros()
                    );
                    form.text("duration", &v);
                }
            }
        }
        form.file("assetData", &asset.filename, asset.payload.clone());
        if let Some(sidecar) = &asset.sidecar {
            let stem = match asset.filename.rfind('.') {
                Some(i) if i > 0 => &asset.filename[..i],
                _ => asset.filename.as_str(),
            };
            form.file("sidecarData", &format!("{stem}.xmp"), sidecar.clone());
            form.text("filename", &asset.filename);
        }
        form
    }

    /// `POST /assets`: uploads one asset with its SHA-1 in `x-immich-checksum`.
    ///
    /// 201 is [`UploadStatus::Created`], 200 [`UploadStatus::Duplicate`]; both carry
    /// the asset id. The checksum makes the request idempotent (a repeat is answered
    /// "duplicate"), so network errors, 5xx and 429 are retried. A server may answer
    /// "duplicate" from the header alone, before it has read the body, and then stop
    /// reading: if sending the body fails, the client asks
    /// `bulk-upload-check` whether the server now has this checksum, and if so
    /// returns `Duplicate` with that id instead of a broken-pipe error. (The same
    /// answer covers an upload whose 201 was lost on the way back: it is then
    /// reported as a duplicate of itself.)
    ///
    /// # Errors
    /// [`Error::QuotaExceeded`], [`Error::UnsupportedFileType`],
    /// [`Error::Unauthorized`], [`Error::Io`] if the file cannot be read, or
    /// [`Error::Transient`] after the retries.
    pub async fn upload(&self, asset: &AssetUpload) -> Result<UploadOutcome> {
        let api = self.api().await?;
        let shown = asset.shown().to_owned();
        let endpoint = format!("POST /assets ({shown})");
        let checksum = imb_hash::hex(&asset.sha1);
        let start = Instant::now();
        let (endpoint, shown, checksum) = (&endpoint, &shown, &checksum);
        self.retrier
            .run(endpoint, |a| async move {
                let form = self.form(asset, api);
                let (source, content_type, len) = form.finish();
                let body = source.body();
                let sent = self
                    .request(Method::POST, "/assets")
                    .header(CHECKSUM_HEADER, checksum)
                    .header(CONTENT_TYPE, &content_type)
                    .header(CONTENT_LENGTH, len)
                    .body(body)
                    .send()
                    .await;
                match sent {
                    Ok(resp) => {
                        let status = resp.status();
                        if status == StatusCode::OK || status == StatusCode::CREATED {
                            return Step::Done(
                                self.upload_answer(endpoint, resp, a.number, start).await,
                            );
                        }
                        let code = status.as_u16();
                        let after = resp.headers().get(RETRY_AFTER).and_then(|h| h.to_str().ok());
                        let retry_after = retry_after(after);
                        let body = resp.text().await.unwrap_or_default();
                        let last = Err(from_status(
                            endpoint,
                            Some(shown),
                            code,
                            &body,
                            a.number,
                            start.elapsed(),
                        ));
                        Step::retry_if(retryable_status(code), last, format!("HTTP {code}"), retry_after)
                    }
                    Err(e) => {
                        if let Some(io) = source.take_read_error() {
                            return Step::Done(Err(Error::Io {
                                path: shown.clone(),
                                source: io,
                            }));
                        }
                        if let Some(why) = tls_failure(&e) {
                            return Step::Done(Err(Error::Tls {
                                endpoint: endpoint.clone(),
                                message: why,
                            }));
                        }
                        if let Some(done) = self.duplicate_after_failure(asset).await {
                            tracing::debug!(file = %shown, id = %done.id, cause = %transport(&e), "upload answered as a duplicate before the body was sent");
                            return Step::Done(Ok(done));
                        }
                        transport_step(!e.is_builder(), endpoint, e, a.number, start)
                    }
                }
            })
            .await
    }

    async fn upload_answer(
        &self,
        endpoint: &str,
        resp: Response,
        attempts: u32,
        start: Instant,
    ) -> Result<UploadOutcome> {
        let http_status = resp.status();
        let body: UploadResponse = self
            .json(endpoint, (resp, attempts, start.elapsed()))
            .await?;
        let status = match (http_status, body.status.as_deref()) {
            (_, Some("duplicate")) | (StatusCode::OK, _) => UploadStatus::Duplicate,
            _ => UploadStatus::Created,
        };
        Ok(UploadOutcome {
            id: body.id,
            status,
        })
    }

    /// After a failed send: does the server have this content now? One quick
    /// check without retries of its own; any failure means "don't know".
    async fn duplicate_after_failure(&self, asset: &AssetUpload) -> Option<UploadOutcome> {
        let item = CheckItem::new("upload", &asset.sha1);
        let body = serde_json::json!({ "assets": [item] }).to_string();
        let resp = self
            .request(Method::POST, "/assets/bulk-upload-check")
            .header(CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .ok()?;
        if !resp.status().is_success() {
            return None;
        }
        let parsed: CheckResponse = resp.json().await.ok()?;
        match parsed
            .results
            .into_iter()
            .next()
            .map(CheckResult::from)?
            .verdict
        {
            CheckVerdict::Duplicate { asset_id, .. } => Some(UploadOutcome {
                id: asset_id,
                status: UploadStatus::Duplicate,
            }),
            _ => None,
        }
    }
}

/// A transport failure of attempt `attempts`: retried when `retry`, else (and when
/// no retry is left) [`Error::Transient`].
fn transport_step<T>(
    retry: bool,
    endpoint: &str,
    e: reqwest::Error,
    attempts: u32,
    start: Instant,
) -> Step<Result<T>> {
    let cause = transport(&e);
    let last = Err(Error::Transient {
        endpoint: endpoint.to_owned(),
        message: cause.clone(),
        attempts,
        elapsed: start.elapsed(),
        source: Some(Box::new(e)),
    });
    Step::retry_if(retry, last, cause, None)
}
