//! What a server serves, read back: originals, thumbnails and videos as their
//! bytes' digests, album contents, and the job queues. restore-verify uses these
//! to prove a restored server works; nothing here changes an asset.

use reqwest::Method;
use reqwest::header::{CONTENT_TYPE, RANGE};
use serde::Deserialize;

use crate::client::Idempotent;
use crate::{Album, Error, ImmichClient, Result};

/// One of the server's job queues (`GET /queues`, v2.4 on).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Queue {
    /// `thumbnailGeneration`, `videoConversion`, ….
    pub name: String,
    /// A paused queue holds its jobs until resumed.
    #[serde(default)]
    pub is_paused: bool,
    /// Its job counts.
    pub statistics: QueueStatistics,
}

/// A queue's job counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct QueueStatistics {
    /// Running now.
    #[serde(default)]
    pub active: u64,
    /// Queued.
    #[serde(default)]
    pub waiting: u64,
    /// Queued for later (retries among them).
    #[serde(default)]
    pub delayed: u64,
    /// Failed (kept for inspection).
    #[serde(default)]
    pub failed: u64,
    /// Done.
    #[serde(default)]
    pub completed: u64,
}

impl Queue {
    /// Jobs not yet done: running, queued, or queued for later.
    pub fn pending(&self) -> u64 {
        self.statistics.active + self.statistics.waiting + self.statistics.delayed
    }
}

/// What a media endpoint answered.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Served {
    /// 404: the server has no such file (or no such asset for this key).
    Missing,
    /// 200 or 206, with the body's length and SHA-1.
    File {
        /// The `Content-Type` header.
        content_type: String,
        /// Bytes received.
        bytes: u64,
        /// Their SHA-1.
        sha1: [u8; 20],
    },
}

#[derive(Deserialize)]
struct SearchPage {
    assets: SearchAssets,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SearchAssets {
    items: Vec<IdOnly>,
    #[serde(default)]
    next_page: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct IdOnly {
    id: String,
}

impl ImmichClient {
    /// `GET /queues` (admin): every job queue with its counts.
    ///
    /// # Errors
    /// [`Error::Unauthorized`] without an admin key; the server's or the network's error.
    pub async fn queues(&self) -> Result<Vec<Queue>> {
        self.get("/queues").await
    }

    /// `PUT /jobs/{name}` `{"command": "start", "force": …}` (admin): queues every
    /// asset for that job; `force` redoes assets already processed. Not retried
    /// after a failure that may have reached the server (a second start is
    /// refused while the first runs).
    ///
    /// # Errors
    /// [`Error::Rejected`] (400) while the queue is already running; as [`Self::queues`].
    pub async fn start_queue(&self, name: &str, force: bool) -> Result<()> {
        let body = serde_json::json!({ "command": "start", "force": force });
        let _: serde_json::Value = self
            .send_json(Method::PUT, &format!("/jobs/{name}"), &body, Idempotent::No)
            .await?;
        Ok(())
    }

    /// `GET /albums/{id}`: the album as the key's user sees it.
    ///
    /// # Errors
    /// [`Error::NotFound`] or [`Error::Rejected`] when the album is gone or not
    /// shared with the key's user; the server's or the network's error.
    pub async fn album(&self, id: &str) -> Result<Album> {
        self.get(&format!("/albums/{id}")).await
    }

    /// The ids of the assets in an album (`POST /search/metadata` with `albumIds`,
    /// 1,000 per page): those Immich shows, i.e. not in the trash, not hidden or
    /// locked.
    ///
    /// # Errors
    /// As [`Self::album`].
    pub async fn album_asset_ids(&self, id: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let mut page = 1u64;
        loop {
            let body = serde_json::json!({ "albumIds": [id], "size": 1000, "page": page });
            let p: SearchPage = self
                .send_json(Method::POST, "/search/metadata", &body, Idempotent::Yes)
                .await?;
            out.extend(p.assets.items.into_iter().map(|a| a.id));
            match p.assets.next_page {
                Some(n) if !n.is_null() => page += 1,
                _ => return Ok(out),
            }
        }
    }

    /// `GET /assets/{id}/original`: the original's bytes, hashed as they arrive.
    ///
    /// # Errors
    /// The server's or the network's error (404 is [`Served::Missing`]).
    pub async fn original(&self, id: &str) -> Result<Served> {
        self.served(&format!("/assets/{id}/original"), None).await
    }

    /// `GET /assets/{id}/thumbnail?size=…` (`thumbnail`, `preview`).
    ///
    /// # Errors
    /// As [`Self::original`].
    pub async fn thumbnail(&self, id: &str, size: &str) -> Result<Served> {
        self.served(&format!("/assets/{id}/thumbnail?size={size}"), None)
            .await
    }

    /// `GET /assets/{id}/video/playback`, its first byte only (a range request):
    /// whether the server can play the video, not the whole transcode.
    ///
    /// # Errors
    /// As [`Self::original`].
    pub async fn playback(&self, id: &str) -> Result<Served> {
        self.served(&format!("/assets/{id}/video/playback"), Some("bytes=0-0"))
            .await
    }

    async fn served(&self, path: &str, range: Option<&str>) -> Result<Served> {
        let endpoint = format!("GET {path}");
        let (mut resp, attempts, elapsed) = self
            .send(&endpoint, Idempotent::Yes, &|| {
                let r = self.request(Method::GET, path);
                match range {
                    Some(v) => r.header(RANGE, v),
                    None => r,
                }
            })
            .await?;
        let status = resp.status().as_u16();
        if status == 404 {
            return Ok(Served::Missing);
        }
        if !resp.status().is_success() {
            let body = resp.text().await.unwrap_or_default();
            return Err(crate::error::from_status(
                &endpoint, None, status, &body, attempts, elapsed,
            ));
        }
        let content_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let mut h = imb_hash::Hasher::new();
        loop {
            match resp.chunk().await {
                Ok(Some(c)) => h.update(&c),
                Ok(None) => break,
                Err(e) => {
                    return Err(Error::Transient {
                        endpoint,
                        message: format!("reading the response: {}", imb_http::transport(&e)),
                        attempts,
                        elapsed,
                        source: Some(Box::new(e)),
                    });
                }
            }
        }
        let d = h.finish();
        Ok(Served::File {
            content_type,
            bytes: d.len,
            sha1: d.sha1,
        })
    }
}
