//! The run's metrics for Prometheus (`--metrics-push`, `--metrics-file`): the
//! series `docs/operations.md` lists, job `immich_backup`, label `target`. A push
//! or write that fails is a warning, never a failed backup.

use std::time::SystemTime;

use imb_engine::Summary;
use imb_metrics::Metrics;

/// The Pushgateway job.
pub(crate) const JOB: &str = "immich_backup";

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
    m.gauge(
        "immich_backup_manifest_bytes",
        "Bytes of manifest objects the last run uploaded (its parts, and its delta or full manifest).",
        s.manifest_bytes as f64,
    );
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

/// Pushes and writes `run`'s series where `sink` says; failures are warnings.
pub(crate) async fn report(sink: &imb_cli::MetricsSink, target: &str, run: &Run<'_>) {
    if sink.wanted() {
        sink.report(JOB, target, &metrics(run)).await;
    }
}
