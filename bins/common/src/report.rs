//! What a run tells its monitoring, the same for every binary: metrics
//! (`--metrics-push`, `--metrics-file`: a Pushgateway POST under the binary's job
//! with the `target` label, and an atomic textfile; basic-auth credentials from
//! the environment only) and dead-man's-switch pings (`IMB_PING_URL`). A push,
//! write or ping that fails is a warning, never a failed run.

use std::path::PathBuf;

use anyhow::bail;
use imb_metrics::{Auth, Metrics};

/// Where the metrics go.
#[derive(Debug, Default)]
pub struct MetricsSink {
    push: Option<String>,
    file: Option<PathBuf>,
    auth: Option<Auth>,
}

impl MetricsSink {
    /// From the settings; credentials from `IMB_METRICS_PUSH_USER` and
    /// `IMB_METRICS_PUSH_PASSWORD`.
    ///
    /// # Errors
    /// A push URL that is not http(s), or only one of the two credentials.
    pub fn new(push: Option<String>, file: Option<PathBuf>) -> anyhow::Result<Self> {
        if let Some(url) = &push
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            bail!(
                "--metrics-push {}: must be an http:// or https:// URL",
                imb_metrics::host_of(url)
            );
        }
        let auth = match (
            std::env::var("IMB_METRICS_PUSH_USER").ok(),
            std::env::var("IMB_METRICS_PUSH_PASSWORD").ok(),
        ) {
            (Some(user), Some(password)) => Some(Auth { user, password }),
            (None, None) => None,
            _ => bail!("set both IMB_METRICS_PUSH_USER and IMB_METRICS_PUSH_PASSWORD, or neither"),
        };
        Ok(MetricsSink { push, file, auth })
    }

    /// Whether any destination is set (so the series are worth building).
    pub fn wanted(&self) -> bool {
        self.push.is_some() || self.file.is_some()
    }

    /// Pushes and writes `m` under `job` with the `target` label; failures are
    /// warnings.
    pub async fn report(&self, job: &str, target: &str, m: &Metrics) {
        let labels = [("target", target)];
        if let Some(path) = &self.file {
            match m.write_file(path, &labels) {
                Ok(()) => tracing::info!(file = %path.display(), "metrics written"),
                Err(e) => tracing::warn!(error = %e, "could not write the metrics file"),
            }
        }
        if let Some(url) = &self.push {
            match m.push(url, job, &labels, self.auth.as_ref()).await {
                Ok(()) => {
                    tracing::info!(pushgateway = %imb_metrics::host_of(url), "metrics pushed")
                }
                Err(e) => tracing::warn!(error = %e, "could not push the metrics"),
            }
        }
    }
}

/// Pings of a dead-man's switch (healthchecks.io's protocol): `URL/start`, then
/// `URL` on exit 0 or `URL/<status>`, with the log's last lines and the summary.
#[derive(Debug, Default)]
pub struct Pinger(Option<imb_metrics::Ping>);

impl Pinger {
    /// From `IMB_PING_URL`, else the config file's `ping_url`; never the command
    /// line, where every user of the machine could read it. `IMB_PING_TIMEOUT`
    /// (e.g. `2s`) bounds each attempt [default: 5s].
    ///
    /// # Errors
    /// A URL that is not http(s), named by its host only; a timeout that is not a
    /// duration.
    pub fn new(from_config: Option<String>) -> anyhow::Result<Pinger> {
        let url = std::env::var("IMB_PING_URL")
            .ok()
            .filter(|u| !u.is_empty())
            .or(from_config);
        let timeout = match std::env::var("IMB_PING_TIMEOUT") {
            Ok(t) => humantime::parse_duration(&t)
                .map_err(|e| anyhow::anyhow!("IMB_PING_TIMEOUT {t:?}: {e}"))?,
            Err(_) => imb_metrics::DEFAULT_PING_TIMEOUT,
        };
        match url {
            Some(u) => Ok(Pinger(Some(
                imb_metrics::Ping::new(&u, timeout).map_err(anyhow::Error::msg)?,
            ))),
            None => Ok(Pinger(None)),
        }
    }

    /// The run began.
    pub async fn start(&self) {
        if let Some(p) = &self.0
            && let Err(e) = p.start().await
        {
            tracing::warn!(error = %e, "could not ping the start");
        }
    }

    /// The run ended with `status`; `summary` follows the log's last lines.
    pub async fn finish(&self, status: u8, summary: &str) {
        if let Some(p) = &self.0 {
            let body = format!("{}\n{summary}\n", crate::terminal::log_tail());
            match p.finish(status, &body).await {
                Ok(()) => tracing::debug!(status, "pinged"),
                Err(e) => tracing::warn!(error = %e, "could not ping the end"),
            }
        }
    }
}
