//! Dump retention (`db_backup_retention`): keep the newest N dumps, delete the rest.
//!
//! Only keys that [`DumpName::parse`] accepts are ever candidates, so nothing outside
//! `database/` (in particular nothing under `library/`) and nothing in `database/`
//! that we did not name can be deleted. On a bucket with a retention policy the
//! store refuses deletes of young objects; that is the bucket doing its job, so a
//! failed delete is reported in [`RetentionReport::refused`] and the next run tries
//! again, rather than failing the backup.

use std::time::SystemTime;

use imb_layout::list_dumps_at;
use imb_storage::{Key, ObjectDelete, ObjectRead};
use serde::Serialize;

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
