//! The check's metrics for Prometheus (`--metrics-push`, `--metrics-file`): job
//! `immich_backup_verify`, label `target`, so the backup's own series
//! (`immich_backup`) and these never replace each other in a Pushgateway.

use std::time::SystemTime;

use imb_metrics::Metrics;
use serde_json::Value;

/// The Pushgateway job.
pub(crate) const JOB: &str = "immich_backup_verify";

fn secs(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// What a finding is about, for the `kind` label: a few fixed values, so a
/// dashboard can rely on them.
fn kind(problem: &str) -> &'static str {
    if problem.contains("missing") {
        "missing"
    } else if problem.starts_with("size") {
        "size"
    } else if problem.starts_with("crc32c") {
        "crc32c"
    } else if problem.starts_with("content differs") {
        "content"
    } else if problem.starts_with("cannot") {
        "unreadable"
    } else {
        "other"
    }
}

/// The series of a check that exited with `status`, from its report (`None`
/// when it could not run).
pub(crate) fn metrics(status: u8, report: Option<&Value>) -> Metrics {
    let now = SystemTime::now();
    let mut m = Metrics::new();
    if status == 0 {
        m.gauge(
            "immich_backup_verify_last_success_timestamp_seconds",
            "When the last check that exited 0 ended (Unix time).",
            secs(now),
        );
    }
    m.gauge(
        "immich_backup_verify_last_run_timestamp_seconds",
        "When the last check ended (Unix time).",
        secs(now),
    )
    .gauge(
        "immich_backup_verify_last_run_success",
        "1 when the last check exited 0.",
        f64::from(u8::from(status == 0)),
    )
    .gauge(
        "immich_backup_verify_last_run_exit_status",
        "The last check's exit status.",
        f64::from(status),
    );
    let Some(r) = report else {
        return m;
    };
    let v = &r["verify"];
    let n = |x: &Value| x.as_f64().unwrap_or(0.0);
    m.gauge(
        "immich_backup_verify_objects_checked",
        "Manifest rows the last check checked.",
        n(&v["files_checked"]),
    )
    .gauge(
        "immich_backup_verify_bytes_downloaded",
        "Object bytes the last check downloaded and re-hashed.",
        n(&v["bytes_downloaded"]),
    );
    let mut kinds: Vec<(&str, f64)> = [
        "missing",
        "size",
        "crc32c",
        "content",
        "unreadable",
        "other",
    ]
    .iter()
    .map(|k| (*k, 0.0))
    .collect();
    let mut add = |k: &str, by: f64| {
        if let Some(e) = kinds.iter_mut().find(|(name, _)| *name == k) {
            e.1 += by;
        }
    };
    for f in v["findings"].as_array().into_iter().flatten() {
        add(kind(f["problem"].as_str().unwrap_or("")), 1.0);
    }
    add("other", n(&v["findings_omitted"]));
    let listed = |k: &str| r[k].as_array().map_or(0.0, |a| a.len() as f64);
    kinds.push(("damaged_manifest", listed("warnings")));
    kinds.push(("future_dated", listed("future_dated_manifests")));
    m.gauge_by(
        "immich_backup_verify_findings",
        "Problems the last check found, by kind.",
        "kind",
        &kinds,
    );
    if let Some(ok) = r["database_ok"].as_bool() {
        m.gauge(
            "immich_backup_verify_database_check_success",
            "1 when the last check's database check passed.",
            f64::from(u8::from(ok)),
        );
    }
    if let Some(t) = r["manifest_time"]
        .as_str()
        .and_then(|t| humantime::parse_rfc3339(t).ok())
    {
        m.gauge(
            "immich_backup_verify_newest_backup_age_seconds",
            "Age of the backup the last check read, when it ran.",
            now.duration_since(t).map_or(0.0, |d| d.as_secs_f64()),
        );
    }
    m
}
