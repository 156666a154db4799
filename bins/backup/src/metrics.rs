//! The run's metrics for Prometheus (`--metrics-push`, `--metrics-file`): the
//! series `docs/operations.md` lists, job `immich_backup`, label `target`. A push
//! or write that fails is a warning, never a failed backup.

use std::path::PathBuf;
use std::time::SystemTime;

use anyhow::bail;
use imb_engine::Summary;
use imb_metrics::{Auth, Metrics};

/// The Pushgateway job.
pub(crate) const JOB: &str = "immich_backup";

/// Where the metrics go.
#[derive(Debug, Default)]
pub(crate) struct MetricsSettings {
    push: Option<String>,
    file: Option<PathBuf>,
    auth: Option<Auth>,
}

impl MetricsSettings {
    /// From the settings; credentials from the environment only.
    pub(crate) fn new(push: Option<String>, file: Option<PathBuf>) -> anyhow::Result<Self> {
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
        Ok(MetricsSettings { push, file, auth })
    }
}

/// What the run did.
pub(crate) struct Run<'a> {
    pub(crate) started: SystemTime,
    /// The exit status: 0, 2 (problems) or 1 (could not run).
    pub(crate) status: u8,
    pub(crate) summary: Option<&'a Summary>,
    pub(crate) peak_rss_bytes: Option<u64>,
}

fn secs(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The series of `run`.
pub(crate) fn metrics(run: &Run<'_>) -> Metrics {
    let now = SystemTime::now();
    let mut m = Metrics::new();
    if run.status == 0 {
        // Only a clean run: a failure must never move it (the stale alert watches it).
        m.gauge(
            "immich_backup_last_success_timestamp_seconds",
            "When the last run that exited 0 ended (Unix time).",
            secs(now),
        );
    }
    m.gauge(
        "immich_backup_last_run_timestamp_seconds",
        "When the last run ended (Unix time).",
        secs(now),
    )
    .gauge(
        "immich_backup_last_run_success",
        "1 when the last run exited 0; 0 for problems (2) or a run that could not run (1).",
        f64::from(u8::from(run.status == 0)),
    )
    .gauge(
        "immich_backup_last_run_exit_status",
        "The last run's exit status.",
        f64::from(run.status),
    )
    .gauge(
        "immich_backup_last_run_duration_seconds",
        "How long the last run took.",
        now.duration_since(run.started)
            .map_or(0.0, |d| d.as_secs_f64()),
    );
    if let Some(rss) = run.peak_rss_bytes {
        m.gauge(
            "immich_backup_last_run_peak_rss_bytes",
            "The last run's peak resident memory.",
            rss as f64,
        );
    }
    let Some(s) = run.summary else {
        return m;
    };
    for (name, help, v) in [
        (
            "files_scanned",
            "Files the last run considered.",
            s.files_scanned,
        ),
        (
            "files_uploaded",
            "Files the last run uploaded.",
            s.files_uploaded,
        ),
        (
            "files_deduplicated",
            "Files the last run found stored under another path.",
            s.files_deduplicated,
        ),
        (
            "files_failed",
            "Files the last run could not back up.",
            s.files_failed,
        ),
        (
            "files_archived",
            "Files the last run marked archived (gone from the library).",
            s.files_archived,
        ),
        (
            "bytes_uploaded",
            "Library bytes the last run uploaded.",
            s.bytes_uploaded,
        ),
        ("retries", "Requests the last run retried.", s.retries),
    ] {
        m.gauge(&format!("immich_backup_last_run_{name}"), help, v as f64);
    }
    if let Some(db) = &s.database {
        let ok = !crate::database::failed(&s.database);
        m.gauge(
            "immich_backup_last_run_db_dump_success",
            "1 when the last run's database dump succeeded.",
            f64::from(u8::from(ok)),
        );
        if let Some(b) = db.get("bytes").and_then(serde_json::Value::as_u64) {
            m.gauge(
                "immich_backup_last_run_db_dump_bytes",
                "The last run's database dump, compressed.",
                b as f64,
            );
        }
    }
    m
}

impl MetricsSettings {
    /// Pushes and writes `run`'s series where asked; failures are warnings.
    pub(crate) async fn report(&self, target: &str, run: &Run<'_>) {
        if self.push.is_none() && self.file.is_none() {
            return;
        }
        let m = metrics(run);
        let labels = [("target", target)];
        if let Some(path) = &self.file {
            match m.write_file(path, &labels) {
                Ok(()) => tracing::info!(file = %path.display(), "metrics written"),
                Err(e) => tracing::warn!(error = %e, "could not write the metrics file"),
            }
        }
        if let Some(url) = &self.push {
            match m.push(url, JOB, &labels, self.auth.as_ref()).await {
                Ok(()) => {
                    tracing::info!(pushgateway = %imb_metrics::host_of(url), "metrics pushed")
                }
                Err(e) => tracing::warn!(error = %e, "could not push the metrics"),
            }
        }
    }
}
