//! Dead-man's-switch pings in the healthchecks.io protocol (which Uptime Kuma and
//! others accept): `URL/start` when a run begins, `URL` when it exits 0,
//! `URL/<exit status>` otherwise, the log's last lines and the summary as the
//! body. The URL is a credential (anyone holding it can ping), so messages name
//! only its host. A ping is tried a few times with a short timeout; one that
//! fails is the caller's warning, never its failure.

use std::time::Duration;

use crate::host_of;

/// Attempts per ping.
const ATTEMPTS: u32 = 3;
/// What a ping may take, each attempt, unless the caller says.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// The most body a ping sends (healthchecks.io keeps 100 kB).
const MAX_BODY: usize = 10_000;

/// A check to ping.
#[derive(Clone)]
pub struct Ping {
    url: String,
    client: reqwest::Client,
}

impl std::fmt::Debug for Ping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Ping({})", host_of(&self.url))
    }
}

impl Ping {
    /// A check at `url` (http or https), each attempt given `timeout`.
    ///
    /// # Errors
    /// A URL of another scheme, named by its host only.
    pub fn new(url: &str, timeout: Duration) -> Result<Ping, String> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!(
                "ping URL {}: must be an http:// or https:// URL",
                host_of(url)
            ));
        }
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| format!("ping {}: {e}", host_of(url)))?;
        Ok(Ping {
            url: url.trim_end_matches('/').to_owned(),
            client,
        })
    }

    /// The run began.
    ///
    /// # Errors
    /// The last attempt's error, naming only the host.
    pub async fn start(&self) -> Result<(), String> {
        self.send(&format!("{}/start", self.url), String::new())
            .await
    }

    /// The run ended with `status`; `body` is what to show with it.
    ///
    /// # Errors
    /// The last attempt's error, naming only the host.
    pub async fn finish(&self, status: u8, body: &str) -> Result<(), String> {
        let url = if status == 0 {
            self.url.clone()
        } else {
            format!("{}/{status}", self.url)
        };
        // The end of the body is the part worth keeping: the summary, the error.
        let start = body.len().saturating_sub(MAX_BODY);
        let start = (start..=body.len())
            .find(|i| body.is_char_boundary(*i))
            .unwrap_or(body.len());
        self.send(&url, body[start..].to_owned()).await
    }

    async fn send(&self, url: &str, body: String) -> Result<(), String> {
        let host = host_of(&self.url);
        let mut last = String::new();
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                // Between attempts, not synchronisation: a short pause for a blip.
                tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
            }
            match self.client.post(url).body(body.clone()).send().await {
                Ok(r) if r.status().is_success() => return Ok(()),
                Ok(r) => last = format!("ping {host}: HTTP {}", r.status()),
                Err(e) => last = format!("ping {host}: {}", e.without_url()),
            }
        }
        Err(last)
    }
}
