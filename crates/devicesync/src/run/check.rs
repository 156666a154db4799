//! Stage 3: drop what the server already has: content known locally under
//! another path, then what `bulk-upload-check` says it has (or refuses). The
//! outcomes are written in one transaction per step, on a blocking thread.

use imb_immich::{CheckItem, CheckVerdict};

use super::ledger::Ledger;
use super::{Candidate, DeviceSync, blocking};
use crate::Result;
use crate::state::FileStatus;

impl DeviceSync {
    /// Removes from `cands` what the server already has; returns what to upload.
    pub(super) async fn check(
        &self,
        l: Ledger,
        cands: Vec<Candidate>,
    ) -> Result<(Ledger, Vec<Candidate>)> {
        let (l, ask) = blocking(move || {
            let mut l = l;
            let ask = l.batch(|e| {
                let mut ask = Vec::new();
                for c in cands {
                    let Some(sha1) = c.sha1 else { continue };
                    match e.asset_for_sha1(&sha1)? {
                        Some(asset) => {
                            tracing::debug!(file = %c.shown(), asset = %asset, "already on the server (another path with this content)");
                            e.on_server(&c, FileStatus::Duplicate, &asset, false)?;
                        }
                        None => ask.push(c),
                    }
                }
                Ok(ask)
            })?;
            Ok((l, ask))
        })
        .await?;
        if ask.is_empty() {
            return Ok((l, ask));
        }
        let items: Vec<CheckItem> = ask
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.sha1.map(|h| CheckItem::new(i.to_string(), &h)))
            .collect();
        let results = match self.client.bulk_upload_check(&items).await {
            Ok(r) => r,
            Err(e) if e.is_unauthorized() => return Err(e.into()),
            Err(e) => {
                // Not fatal: every upload carries its checksum, so the server still
                // answers "duplicate" for what it has.
                tracing::warn!(error = %e, "bulk-upload-check failed; uploading without it");
                return Ok((l, ask));
            }
        };
        blocking(move || {
            let (mut l, mut ask) = (l, ask);
            let mut keep = vec![true; ask.len()];
            l.batch(|e| {
                for r in results {
                    let Ok(i) = r.id.parse::<usize>() else {
                        continue;
                    };
                    let Some(c) = ask.get(i) else { continue };
                    match r.verdict {
                        CheckVerdict::Accept => {}
                        CheckVerdict::Duplicate { asset_id, .. } => {
                            keep[i] = false;
                            e.on_server(c, FileStatus::Duplicate, &asset_id, false)?;
                        }
                        CheckVerdict::Reject { reason: why } => {
                            keep[i] = false;
                            e.failed(c, &format!("the server refuses it: {why}"))?;
                        }
                        _ => {}
                    }
                }
                Ok(())
            })?;
            let mut i = 0;
            ask.retain(|_| {
                i += 1;
                keep[i - 1]
            });
            Ok((l, ask))
        })
        .await
    }
}
