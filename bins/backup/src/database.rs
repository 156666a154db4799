//! The database part of a run: dump first (Immich's own advice: the database
//! before the files, so every asset in the dump has its file in the same run),
//! then prune old dumps. Its outcome becomes the summary's `database` object.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use imb_engine::BackupConfig;
use imb_pgdump::{Connection, DumpOptions};
use serde_json::json;

use crate::target::Opened;

/// What the settings say about the database.
#[derive(Debug, Clone, Default)]
pub(crate) struct DbSettings {
    /// `--no-database`.
    pub(crate) skip: bool,
    /// `--pg-dump PATH`.
    pub(crate) pg_dump: Option<PathBuf>,
    /// Dumps to keep (`db_backup_retention`); `None` keeps all.
    pub(crate) retention: Option<usize>,
}

/// Dumps the database Immich's `DB_*` settings name, if any, and applies
/// retention. Returns the summary's `database` value (`None`: not configured).
/// Sets `config.immich_version` from the database unless it was given.
pub(crate) async fn run(
    target: &Opened,
    db: &DbSettings,
    config: &mut BackupConfig,
) -> Option<serde_json::Value> {
    if db.skip {
        tracing::info!("database: skipped (--no-database)");
        return None;
    }
    let conn = match Connection::from_env() {
        Ok(Some(c)) => c,
        Ok(None) => {
            tracing::info!(
                "no database configured (DB_URL or DB_HOSTNAME): skipping the database dump"
            );
            return None;
        }
        Err(e) => {
            tracing::error!(error = %e, "database settings are invalid");
            return Some(json!({ "error": e.to_string() }));
        }
    };
    let mut opts = DumpOptions::default();
    if let Some(p) = &db.pg_dump {
        opts.pg_dump = p.clone();
    }
    opts.immich_version = config.immich_version.clone();
    opts.storage_class = target.database_class.clone();
    let now = after_newest_dump(target, SystemTime::now()).await;
    tracing::info!(database = %conn, "dumping the database");
    let report = match imb_pgdump::dump(&*target.store, &conn, &opts, now).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "database dump failed; backing up the library anyway");
            return Some(json!({ "error": e.to_string() }));
        }
    };
    tracing::info!(object = %report.key, bytes = report.bytes, "database dumped");
    if config.immich_version.is_none() {
        config.immich_version = report.immich_version.clone();
    }
    let mut v = serde_json::to_value(&report).expect("report serialises");
    v["object"] = json!(report.key);
    if let (Some(keep), Some(delete)) = (db.retention, &target.delete) {
        v["retention"] = match imb_pgdump::prune(&*target.store, &**delete, keep).await {
            Ok(r) => {
                for (k, why) in &r.refused {
                    tracing::warn!(object = %k, reason = %why, "old dump not deleted (retention-locked bucket?)");
                }
                serde_json::to_value(&r).expect("report serialises")
            }
            Err(e) => json!({ "error": e.to_string() }),
        };
    }
    Some(v)
}

/// Dump names have one-second resolution; never reuse a newer dump's second.
async fn after_newest_dump(target: &Opened, now: SystemTime) -> SystemTime {
    let newest = imb_pgdump::list_dumps(&*target.store)
        .await
        .ok()
        .and_then(|d| d.first().and_then(|(n, _)| n.time()));
    match newest {
        Some(t) if t + Duration::from_secs(1) > now => t + Duration::from_secs(1),
        _ => now,
    }
}

/// Whether the database part failed (the run then exits 2).
pub(crate) fn failed(v: &Option<serde_json::Value>) -> bool {
    v.as_ref().is_some_and(|v| v.get("error").is_some())
}
