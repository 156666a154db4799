//! Before the scan, at most once per `reconcile_every` (or when asked): is what
//! the state calls backed up still on the server? The mobile app's candidates are
//! the local assets whose checksum the server does not have, so an asset deleted
//! on the server is uploaded again; one in the server's trash is not (the user
//! put it there). The rows are read and asked about a page at a time, so memory
//! does not grow with the library.

use std::time::{Duration, SystemTime};

use imb_immich::{CHECK_BATCH, CheckItem, CheckVerdict};

use super::ledger::Ledger;
use super::{DeviceSync, META_RECONCILED, blocking};
use crate::Result;
use crate::state::now;

impl DeviceSync {
    /// Whether a reconcile is due: asked for, never done, or older than the interval.
    fn reconcile_due(&self, l: &Ledger) -> Result<bool> {
        if self.config.reconcile {
            return Ok(true);
        }
        let last = l.db().meta(META_RECONCILED)?;
        let Some(last) = last.and_then(|t| humantime::parse_rfc3339_weak(&t).ok()) else {
            return Ok(true);
        };
        let age = SystemTime::now()
            .duration_since(last)
            .unwrap_or(Duration::ZERO);
        Ok(age >= self.config.reconcile_every)
    }

    /// Asks the server about every row it is said to have; a row whose content
    /// the server no longer has goes back to pending (a candidate in this run's
    /// scan, with its hash kept). On a dry run nothing is written: the counts say
    /// what a real run would requeue.
    pub(super) async fn reconcile(&self, l: Ledger) -> Result<Ledger> {
        if !self.reconcile_due(&l)? {
            return Ok(l);
        }
        let dry = self.config.dry_run;
        let mut l = l;
        let mut after = 0;
        loop {
            let (back, page) = blocking(move || {
                let page = l.db().on_server_page(after, CHECK_BATCH)?;
                Ok((l, page))
            })
            .await?;
            l = back;
            let Some(last) = page.last() else { break };
            after = last.0;
            let items: Vec<CheckItem> = page
                .iter()
                .map(|(id, sha1, _)| CheckItem::new(id.to_string(), sha1))
                .collect();
            let results = match self.client.bulk_upload_check(&items).await {
                Ok(r) => r,
                Err(e) if e.is_unauthorized() => return Err(e.into()),
                Err(e) => {
                    // Not this run, then: the next one tries again.
                    tracing::warn!(error = %e, "could not check with the server what it still has");
                    return Ok(l);
                }
            };
            let mut requeue = Vec::new();
            for (r, (id, _, asset)) in results.into_iter().zip(&page) {
                match r.verdict {
                    CheckVerdict::Accept => requeue.push(*id),
                    CheckVerdict::Duplicate {
                        is_trashed: true, ..
                    } => l.s.trashed += 1,
                    // The same content under another asset (deleted and uploaded
                    // again from elsewhere): that one is ours now.
                    CheckVerdict::Duplicate { asset_id, .. } if asset_id != *asset && !dry => {
                        l.db().set_asset(*id, &asset_id)?;
                    }
                    _ => {}
                }
            }
            l.s.requeued += requeue.len() as u64;
            if !dry && !requeue.is_empty() {
                l = blocking(move || {
                    l.db().requeue(&requeue)?;
                    Ok(l)
                })
                .await?;
            }
        }
        l.s.reconciled = true;
        if !dry {
            l.db().set_meta(META_RECONCILED, &now())?;
        }
        tracing::info!(
            requeued = l.s.requeued,
            trashed = l.s.trashed,
            "checked with the server what it still has"
        );
        Ok(l)
    }
}
