//! One method per REST call of the Cloud Storage JSON API, and the retry loop
//! they share. Statuses are mapped to `imb_storage::Error` here, at the boundary.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use imb_http::body::{Part, Source};
use imb_http::transport;
use imb_storage::pace::Pace;
use imb_storage::retry::{Retrier, Step, retry_after, retryable_status};
use imb_storage::{Error, Key, ObjectMeta, Result};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LOCATION, RANGE, RETRY_AFTER};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::Deserialize;

use crate::GcsConfig;

const STORE: &str = "gcs";

/// Characters kept as they are in a path segment (RFC 3986 unreserved).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The object resource, as much of it as we use.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Resource {
    pub(crate) name: String,
    #[serde(default)]
    size: Option<String>,
    #[serde(default)]
    crc32c: Option<String>,
    #[serde(default)]
    generation: Option<String>,
    #[serde(default)]
    metadata: Option<BTreeMap<String, String>>,
    #[serde(default)]
    storage_class: Option<String>,
    #[serde(default)]
    updated: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListResponse {
    #[serde(default)]
    items: Vec<Resource>,
    next_page_token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RewriteResponse {
    done: bool,
    rewrite_token: Option<String>,
    resource: Option<Resource>,
}

/// Decodes GCS's base64 big-endian CRC32C.
pub(crate) fn decode_crc(s: &str) -> Option<u32> {
    const ALPHA: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits: u64 = 0;
    let mut n = 0;
    for c in s.bytes().filter(|&c| c != b'=') {
        let v = ALPHA.iter().position(|&a| a == c)? as u64;
        bits = (bits << 6) | v;
        n += 6;
    }
    if n < 32 {
        return None;
    }
    Some((bits >> (n - 32)) as u32)
}

pub(crate) fn encode_crc(crc: u32) -> String {
    imb_hash::base64(&crc.to_be_bytes())
}

/// Where a resumable upload stands.
#[derive(Debug)]
pub(crate) enum Progress {
    /// The server has the first `n` bytes.
    Incomplete(u64),
    /// The object exists.
    Done(Resource),
}

/// The client: settings, a pooled HTTP client, a retry counter.
#[derive(Debug)]
pub(crate) struct Client {
    pub(crate) cfg: GcsConfig,
    http: reqwest::Client,
    pub(crate) retrier: Retrier,
}

impl Client {
    pub(crate) fn new(cfg: GcsConfig) -> std::result::Result<Self, crate::Error> {
        let builder = imb_http::with_ca_certs(reqwest::Client::builder(), &cfg.ca_certs).map_err(
            |message| crate::Error::InvalidConfig {
                key: "GCS_CA_CERT",
                message,
            },
        )?;
        let http = builder
            .connect_timeout(Duration::from_secs(20))
            .read_timeout(cfg.timeout)
            .pool_max_idle_per_host(cfg.max_idle_per_host)
            .user_agent(concat!("immich-backup/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| crate::Error::Client(e.to_string()))?;
        Ok(Client {
            http,
            retrier: Retrier::new(cfg.retry.clone()),
            cfg,
        })
    }

    pub(crate) fn name(&self, key: &Key) -> String {
        if self.cfg.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}/{}", self.cfg.prefix, key)
        }
    }

    fn key_of(&self, name: &str) -> Option<Key> {
        let rest = if self.cfg.prefix.is_empty() {
            name
        } else {
            name.strip_prefix(&self.cfg.prefix)?.strip_prefix('/')?
        };
        Key::parse(rest).ok()
    }

    pub(crate) fn shown(&self, name: &str) -> String {
        format!("gs://{}/{name}", self.cfg.bucket)
    }

    fn object_url(&self, name: &str) -> String {
        format!(
            "{}/storage/v1/b/{}/o/{}",
            self.cfg.endpoint,
            utf8_percent_encode(&self.cfg.bucket, SEGMENT),
            utf8_percent_encode(name, SEGMENT)
        )
    }

    fn upload_url(&self) -> String {
        format!(
            "{}/upload/storage/v1/b/{}/o",
            self.cfg.endpoint,
            utf8_percent_encode(&self.cfg.bucket, SEGMENT)
        )
    }

    pub(crate) fn meta(&self, r: Resource) -> Result<ObjectMeta> {
        let key = self.key_of(&r.name).ok_or_else(|| Error::Generic {
            store: STORE,
            message: format!("{}: not an object name of this store", self.shown(&r.name)),
            transient: false,
            source: None,
        })?;
        let mut m = ObjectMeta::new(key, r.size.and_then(|s| s.parse().ok()).unwrap_or(0));
        m.crc32c = r.crc32c.as_deref().and_then(decode_crc);
        m.generation = r.generation.and_then(|g| g.parse().ok());
        m.metadata = r.metadata.unwrap_or_default();
        m.storage_class = r.storage_class;
        m.updated = r.updated.and_then(|u| humantime_rfc3339(&u));
        Ok(m)
    }

    /// Sends a request built by `build`, retrying per the policy when `idempotent`.
    /// Returns the final response whatever its status; transport failures after
    /// the retries are errors naming `what`. A 401 gets a fresh token and one more
    /// try (a token can expire or be revoked in flight).
    pub(crate) async fn send(
        &self,
        what: &str,
        idempotent: bool,
        build: &(dyn Fn() -> RequestBuilder + Sync),
    ) -> Result<Response> {
        let resp = self.send_once_authorized(what, idempotent, build).await?;
        if resp.status() != StatusCode::UNAUTHORIZED {
            return Ok(resp);
        }
        self.cfg.tokens.refresh().await;
        self.send_once_authorized(what, idempotent, build).await
    }

    /// [`Client::send`] without the 401 branch.
    async fn send_once_authorized(
        &self,
        what: &str,
        idempotent: bool,
        build: &(dyn Fn() -> RequestBuilder + Sync),
    ) -> Result<Response> {
        self.retrier
            .run(what, |_| async move {
                let mut rb = build();
                match self.cfg.tokens.token().await {
                    Ok(Some(t)) => rb = rb.bearer_auth(t),
                    Ok(None) => {}
                    Err(message) => {
                        return Step::Done(Err(Error::Unauthenticated {
                            store: STORE,
                            source: message.into(),
                        }));
                    }
                }
                match rb.send().await {
                    Ok(resp) => {
                        let status = resp.status().as_u16();
                        if !(idempotent && retryable_status(status)) {
                            return Step::Done(Ok(resp));
                        }
                        let after = resp.headers().get(RETRY_AFTER).and_then(|h| h.to_str().ok());
                        let after = retry_after(after);
                        Step::retry_if(true, Ok(resp), format!("HTTP {status}"), after)
                    }
                    Err(e) => {
                        if let Some(why) = imb_http::tls_failure(&e) {
                            return Step::Done(Err(Error::Generic {
                                store: STORE,
                                message: format!(
                                    "{what}: the endpoint's certificate is not trusted ({why}); trust its \
                                     certificate authority with GCS_CA_CERT=FILE, with SSL_CERT_FILE=FILE, \
                                     or in the system's trust store (update-ca-certificates)"
                                ),
                                transient: false,
                                source: Some(Box::new(e)),
                            }));
                        }
                        let cause = transport(&e);
                        let retry = idempotent && !e.is_builder();
                        let err = Error::Generic {
                            store: STORE,
                            message: format!("{what}: {cause}"),
                            transient: true,
                            source: Some(Box::new(e)),
                        };
                        Step::retry_if(retry, Err(err), cause, None)
                    }
                }
            })
            .await
    }

    /// Turns a non-success response into the shared error for `name`.
    pub(crate) async fn error(&self, name: &str, resp: Response) -> Error {
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        let body: String = body.chars().take(300).collect();
        let key = self.shown(name);
        match status.as_u16() {
            404 => Error::NotFound { key },
            409 | 412 => Error::AlreadyExists { key },
            401 => Error::Unauthenticated {
                store: STORE,
                source: format!("HTTP 401 for {key}: {body}").into(),
            },
            403 => Error::PermissionDenied {
                key,
                source: format!("HTTP 403: {body}").into(),
            },
            400 if body.to_ascii_lowercase().contains("crc32c") => Error::ChecksumMismatch {
                key,
                expected: 0,
                actual: 0,
            },
            s => Error::Generic {
                store: STORE,
                message: format!("{key}: HTTP {s}: {body}"),
                transient: retryable_status(s),
                source: None,
            },
        }
    }

    async fn resource(&self, name: &str, resp: Response) -> Result<Resource> {
        if !resp.status().is_success() {
            return Err(self.error(name, resp).await);
        }
        resp.json::<Resource>().await.map_err(|e| Error::Generic {
            store: STORE,
            message: format!("{}: unreadable response: {e}", self.shown(name)),
            transient: true,
            source: None,
        })
    }

    pub(crate) async fn head(&self, name: &str) -> Result<Resource> {
        let url = self.object_url(name);
        let resp = self
            .send(&format!("head {}", self.shown(name)), true, &|| {
                self.http.get(&url)
            })
            .await?;
        self.resource(name, resp).await
    }

    pub(crate) async fn media(
        &self,
        name: &str,
        range: Option<std::ops::Range<u64>>,
    ) -> Result<Response> {
        let url = format!("{}?alt=media", self.object_url(name));
        let resp = self
            .send(&format!("get {}", self.shown(name)), true, &|| {
                let rb = self.http.get(&url);
                match &range {
                    Some(r) if r.end > r.start => {
                        rb.header(RANGE, format!("bytes={}-{}", r.start, r.end - 1))
                    }
                    _ => rb,
                }
            })
            .await?;
        if !resp.status().is_success() {
            return Err(self.error(name, resp).await);
        }
        Ok(resp)
    }

    pub(crate) async fn list(
        &self,
        prefix: &str,
        token: Option<&str>,
        max: Option<usize>,
    ) -> Result<(Vec<ObjectMeta>, Option<String>)> {
        let full = if self.cfg.prefix.is_empty() {
            prefix.to_owned()
        } else {
            format!("{}/{prefix}", self.cfg.prefix)
        };
        let url = format!(
            "{}/storage/v1/b/{}/o",
            self.cfg.endpoint,
            utf8_percent_encode(&self.cfg.bucket, SEGMENT)
        );
        let mut q: Vec<(&str, String)> = vec![("prefix", full.clone())];
        if let Some(t) = token {
            q.push(("pageToken", t.to_owned()));
        }
        if let Some(m) = max {
            q.push(("maxResults", m.to_string()));
        }
        let resp = self
            .send(&format!("list {}", self.shown(&full)), true, &|| {
                self.http.get(&url).query(&q)
            })
            .await?;
        if !resp.status().is_success() {
            return Err(self.error(&full, resp).await);
        }
        let page: ListResponse = resp.json().await.map_err(|e| Error::Generic {
            store: STORE,
            message: format!("list {}: unreadable response: {e}", self.shown(&full)),
            transient: true,
            source: None,
        })?;
        let mut out = Vec::with_capacity(page.items.len());
        for r in page.items {
            // Names that are not valid keys were not written by us; skip them.
            if self.key_of(&r.name).is_some() {
                out.push(self.meta(r)?);
            }
        }
        Ok((out, page.next_page_token))
    }

    /// One-request upload of object metadata and bytes (`uploadType=multipart`).
    pub(crate) async fn insert(
        &self,
        name: &str,
        meta: &serde_json::Value,
        data: Part,
        pace: Option<Arc<Pace>>,
        if_generation_match: Option<i64>,
        idempotent: bool,
    ) -> Result<Resource> {
        let boundary = format!("imb{:016x}", (self.retrier.jitter().unit() * 1e18) as u64);
        let head = format!(
            "--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{meta}\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\n\r\n"
        );
        let tail = format!("\r\n--{boundary}--\r\n");
        let body = Source::new(
            vec![Part::Bytes(head.into()), data, Part::Bytes(tail.into())],
            pace,
        );
        let len = body.len();
        let mut q = vec![("uploadType", "multipart".to_owned())];
        if let Some(g) = if_generation_match {
            q.push(("ifGenerationMatch", g.to_string()));
        }
        let url = self.upload_url();
        let ct = format!("multipart/related; boundary={boundary}");
        let resp = self
            .send(&format!("upload {}", self.shown(name)), idempotent, &|| {
                self.http
                    .post(&url)
                    .query(&q)
                    .header(CONTENT_TYPE, &ct)
                    .header(CONTENT_LENGTH, len)
                    .body(body.body())
            })
            .await
            .map_err(|e| read_failure(name, &body, e))?;
        self.resource(name, resp).await
    }

    /// Starts a resumable session and returns its URI.
    pub(crate) async fn start_session(
        &self,
        name: &str,
        meta: &serde_json::Value,
        total: Option<u64>,
        if_generation_match: Option<i64>,
    ) -> Result<String> {
        let mut q = vec![("uploadType", "resumable".to_owned())];
        if let Some(g) = if_generation_match {
            q.push(("ifGenerationMatch", g.to_string()));
        }
        let url = self.upload_url();
        let body = meta.to_string();
        let resp = self
            .send(&format!("start upload {}", self.shown(name)), true, &|| {
                let rb = self
                    .http
                    .post(&url)
                    .query(&q)
                    .header(CONTENT_TYPE, "application/json; charset=UTF-8")
                    .body(body.clone());
                match total {
                    Some(t) => rb.header("X-Upload-Content-Length", t),
                    None => rb,
                }
            })
            .await?;
        if !resp.status().is_success() {
            return Err(self.error(name, resp).await);
        }
        resp.headers()
            .get(LOCATION)
            .and_then(|l| l.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| Error::Generic {
                store: STORE,
                message: format!(
                    "start upload {}: no session URI in the response",
                    self.shown(name)
                ),
                transient: true,
                source: None,
            })
    }

    fn progress_of(resp: &Response) -> u64 {
        // `Range: bytes=0-N` means N+1 bytes persisted; no header means none.
        resp.headers()
            .get(RANGE)
            .and_then(|r| r.to_str().ok())
            .and_then(|r| r.rsplit('-').next())
            .and_then(|n| n.parse::<u64>().ok())
            .map_or(0, |n| n + 1)
    }

    async fn progress(&self, name: &str, resp: Response) -> Result<Progress> {
        match resp.status() {
            StatusCode::PERMANENT_REDIRECT => Ok(Progress::Incomplete(Self::progress_of(&resp))),
            s if s.is_success() => Ok(Progress::Done(self.resource(name, resp).await?)),
            _ => Err(self.error(name, resp).await),
        }
    }

    /// Sends one chunk at `offset`. Not retried here: after a failure the caller
    /// asks the server where it stands and resumes from there.
    pub(crate) async fn put_chunk(
        &self,
        session: &str,
        name: &str,
        offset: u64,
        data: &Source,
        total: Option<u64>,
        crc: Option<u32>,
    ) -> Result<Progress> {
        let len = data.len();
        let total_s = total.map_or("*".to_owned(), |t| t.to_string());
        let range = if len == 0 {
            format!("bytes */{total_s}")
        } else {
            format!("bytes {offset}-{}/{total_s}", offset + len - 1)
        };
        let resp = self
            .send(
                &format!("upload chunk {}", self.shown(name)),
                false,
                &|| {
                    // A fresh body per attempt: a retry re-reads the chunk.
                    let rb = self
                        .http
                        .put(session)
                        .header(CONTENT_RANGE, &range)
                        .header(CONTENT_LENGTH, len)
                        .body(data.body());
                    match (total, crc) {
                        (Some(_), Some(c)) => {
                            rb.header("x-goog-hash", format!("crc32c={}", encode_crc(c)))
                        }
                        _ => rb,
                    }
                },
            )
            .await
            .map_err(|e| read_failure(name, data, e))?;
        self.progress(name, resp).await
    }

    /// Asks where a resumable session stands.
    pub(crate) async fn query(
        &self,
        session: &str,
        name: &str,
        total: Option<u64>,
    ) -> Result<Progress> {
        let range = format!(
            "bytes */{}",
            total.map_or("*".to_owned(), |t| t.to_string())
        );
        let resp = self
            .send(&format!("query upload {}", self.shown(name)), true, &|| {
                self.http
                    .put(session)
                    .header(CONTENT_RANGE, &range)
                    .header(CONTENT_LENGTH, 0)
            })
            .await?;
        self.progress(name, resp).await
    }

    pub(crate) async fn cancel(&self, session: &str) {
        let _ = self.http.delete(session).send().await;
    }

    /// Server-side copy, create-only, following rewrite tokens until done.
    pub(crate) async fn rewrite(
        &self,
        from: &str,
        to: &str,
        storage_class: Option<&str>,
    ) -> Result<Resource> {
        let mut token: Option<String> = None;
        let body = match storage_class {
            Some(c) => serde_json::json!({ "storageClass": c }),
            None => serde_json::json!({}),
        }
        .to_string();
        loop {
            let url = format!(
                "{}/rewriteTo/b/{}/o/{}",
                self.object_url(from),
                utf8_percent_encode(&self.cfg.bucket, SEGMENT),
                utf8_percent_encode(to, SEGMENT)
            );
            let mut q = vec![("ifGenerationMatch", "0".to_owned())];
            if let Some(t) = &token {
                q.push(("rewriteToken", t.clone()));
            }
            let resp = self
                .send(
                    &format!("copy {} to {}", self.shown(from), self.shown(to)),
                    true,
                    &|| {
                        self.http
                            .post(&url)
                            .query(&q)
                            .header(CONTENT_TYPE, "application/json")
                            .body(body.clone())
                    },
                )
                .await?;
            if !resp.status().is_success() {
                let which = if resp.status() == StatusCode::NOT_FOUND {
                    from
                } else {
                    to
                };
                return Err(self.error(which, resp).await);
            }
            let r: RewriteResponse = resp.json().await.map_err(|e| Error::Generic {
                store: STORE,
                message: format!("copy to {}: unreadable response: {e}", self.shown(to)),
                transient: true,
                source: None,
            })?;
            if r.done {
                return r.resource.ok_or_else(|| Error::Generic {
                    store: STORE,
                    message: format!("copy to {}: no resource in the response", self.shown(to)),
                    transient: false,
                    source: None,
                });
            }
            token = r.rewrite_token;
        }
    }

    pub(crate) async fn delete(&self, name: &str) -> Result<()> {
        let url = self.object_url(name);
        let resp = self
            .send(&format!("delete {}", self.shown(name)), true, &|| {
                self.http.request(Method::DELETE, &url)
            })
            .await?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(self.error(name, resp).await)
        }
    }
}

fn humantime_rfc3339(s: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(s.trim_end_matches('Z')).ok()
}

/// A request that failed because the file being sent could not be read (it
/// shrank, or the disk failed) is that error, not a network one.
fn read_failure(name: &str, body: &Source, e: Error) -> Error {
    match body.take_read_error() {
        Some(io) => Error::io(name, io),
        None => e,
    }
}
