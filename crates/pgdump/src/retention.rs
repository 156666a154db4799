//! Dump retention (`db_backup_retention`): keep the newest N dumps, delete the rest.
//!
//! Only keys that [`DumpName::parse`] accepts are ever candidates, so nothing outside
//! `database/` (in particular nothing under `library/`) and nothing in `database/`
//! that we did not name can be deleted. On a bucket with a retention policy the
//! store refuses deletes of young objects; that is the bucket doing its job, so a
//! failed delete is reported in [`RetentionReport::refused`] and the next run tries
//! again, rather than failing the backup.

use std::time::{Duration, SystemTime};

use imb_storage::{Key, ObjectDelete, ObjectMeta, ObjectRead, ObjectReadExt};
use serde::Serialize;

use crate::name::{DUMP_PREFIX, DumpName};
use crate::{Error, Result};

/// What [`prune`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RetentionReport {
    /// Dumps kept, newest first.
    pub kept: Vec<String>,
    /// Dumps deleted (or found already gone), newest first.
    pub deleted: Vec<String>,
    /// Dumps whose delete the store refused or failed, with its message.
    pub refused: Vec<(String, String)>,
    /// Dumps dated more than a day ahead of now: neither kept nor counted nor
    /// deleted (a planted `database/2999-…` must not push real dumps out).
    pub future: Vec<String>,
}

/// Every dump in the store, newest first (by the time in the name, then by name),
/// leaving out those dated more than a day ahead of now (see [`list_dumps_at`]).
///
/// # Errors
/// The store's error from listing `database/`.
pub async fn list_dumps(read: &dyn ObjectRead) -> Result<Vec<(DumpName, ObjectMeta)>> {
    Ok(list_dumps_at(read, SystemTime::now()).await?.0)
}

/// [`list_dumps`] as of `now`, with the keys of the future-dated dumps it left out.
///
/// # Errors
/// The store's error from listing `database/`.
pub async fn list_dumps_at(
    read: &dyn ObjectRead,
    now: SystemTime,
) -> Result<(Vec<(DumpName, ObjectMeta)>, Vec<String>)> {
    let mut future = Vec::new();
    let mut dumps: Vec<(DumpName, ObjectMeta)> = Vec::new();
    for meta in read.list_all(DUMP_PREFIX).await? {
        let Some(name) = DumpName::parse(meta.key.as_str()) else {
            tracing::debug!(key = %meta.key, "not a dump name; retention leaves it alone");
            continue;
        };
        if name.time().is_some_and(|t| t > now + FUTURE_SLACK) {
            tracing::warn!(key = %meta.key, "ignoring a dump dated more than a day ahead");
            future.push(meta.key.to_string());
        } else {
            dumps.push((name, meta));
        }
    }
    dumps.sort_by(|(a, am), (b, bm)| (&b.ts, bm.key.as_str()).cmp(&(&a.ts, am.key.as_str())));
    Ok((dumps, future))
}

/// How far ahead of now a dump's name may be dated (as the engine's manifests).
const FUTURE_SLACK: Duration = Duration::from_secs(24 * 3600);

/// Keeps the newest `keep` dumps and deletes the older ones.
///
/// `keep` must be at least 1: retention exists to bound the number of dumps, and a
/// rule that deleted every dump, including the one just taken, is never what a
/// backup wants. (To keep everything, do not call `prune`.)
///
/// # Errors
/// [`Error::InvalidConfig`] naming `db_backup_retention` when `keep` is 0; the
/// store's error when listing fails. Failed deletes are not errors: they are in
/// [`RetentionReport::refused`].
pub async fn prune(
    read: &dyn ObjectRead,
    delete: &dyn ObjectDelete,
    keep: usize,
) -> Result<RetentionReport> {
    if keep == 0 {
        return Err(Error::invalid(
            "db_backup_retention",
            "must be at least 1 (it is how many dumps to keep)",
        ));
    }
    let (dumps, future) = list_dumps_at(read, SystemTime::now()).await?;
    let mut report = RetentionReport {
        future,
        ..RetentionReport::default()
    };
    for (i, (_, meta)) in dumps.into_iter().enumerate() {
        let key: Key = meta.key;
        if i < keep {
            report.kept.push(key.to_string());
            continue;
        }
        match delete.delete(&key).await {
            Ok(()) => {
                tracing::info!(key = %key, "old database dump deleted");
                report.deleted.push(key.to_string());
            }
            Err(imb_storage::Error::NotFound { .. }) => {
                tracing::debug!(key = %key, "old database dump already gone");
                report.deleted.push(key.to_string());
            }
            Err(e) => {
                tracing::warn!(key = %key, error = %e, "could not delete an old database dump");
                report.refused.push((key.to_string(), e.to_string()));
            }
        }
    }
    Ok(report)
}
