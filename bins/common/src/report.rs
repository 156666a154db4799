//! Where a run's metrics go (`--metrics-push`, `--metrics-file`), the same for
//! every binary: a Pushgateway POST under the binary's job with the `target`
//! label, and an atomic textfile. Basic-auth credentials come from the
//! environment only. A push or write that fails is a warning, never a failed run.

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
