//! Stage 6: album sync. Every asset on the server that is not yet in its
//! album's server album is added to it.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use imb_immich::pick_album;

use super::DeviceSync;
use super::ledger::Ledger;
use crate::Result;

impl DeviceSync {
    /// Adds every asset on the server that is not yet in its album's server album:
    /// the user's album of the same name picked by [`pick_album`] (the oldest one
    /// they own), or a new one. Assets are added in batches; an asset the album
    /// already has counts as added. Each file remembers the album id it went to,
    /// so later runs only add what is new (an album deleted on the server is not
    /// refilled).
    pub(super) async fn sync_albums(&self, l: &mut Ledger, user_id: &str) -> Result<()> {
        let rows = l.db().not_in_album()?;
        let mut by_album: BTreeMap<String, Vec<(i64, String)>> = BTreeMap::new();
        for r in rows {
            if !self.config.selection.includes(&r.album) {
                continue;
            }
            if let Some(asset) = r.asset_id {
                by_album.entry(r.album).or_default().push((r.id, asset));
            }
        }
        if by_album.is_empty() {
            return Ok(());
        }
        let server_albums = match self.client.albums().await {
            Ok(a) => a,
            Err(e) if e.is_unauthorized() => return Err(e.into()),
            Err(e) => {
                l.s.albums.errors.push(format!("listing albums: {e}"));
                return Ok(());
            }
        };
        for (name, rows) in by_album {
            let album_id = match pick_album(&server_albums, &name, user_id) {
                Some(a) => a.id.clone(),
                None => match self.client.create_album(&name).await {
                    Ok(a) => {
                        l.s.albums.created += 1;
                        tracing::info!(album = %name, id = %a.id, "created the server album");
                        a.id
                    }
                    Err(e) => {
                        tracing::warn!(album = %name, error = %e, "cannot create the server album");
                        l.s.albums.errors.push(format!("{name}: {e}"));
                        continue;
                    }
                },
            };
            let mut seen = BTreeSet::new();
            let ids: Vec<String> = rows
                .iter()
                .filter(|(_, a)| seen.insert(a.clone()))
                .map(|(_, a)| a.clone())
                .collect();
            let results = match self.client.add_to_album(&album_id, &ids).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(album = %name, error = %e, "cannot add assets to the server album");
                    l.s.albums.errors.push(format!("{name}: {e}"));
                    continue;
                }
            };
            l.s.albums.added += results.iter().filter(|r| r.success).count() as u64;
            let ok: HashSet<&str> = results
                .iter()
                .filter(|r| r.is_in_album())
                .map(|r| r.id.as_str())
                .collect();
            for r in results.iter().filter(|r| !r.is_in_album()) {
                tracing::warn!(album = %name, asset = %r.id, error = ?r.error, "not added to the album");
            }
            let done: Vec<i64> = rows
                .iter()
                .filter(|(_, a)| ok.contains(a.as_str()))
                .map(|(id, _)| *id)
                .collect();
            l.db().mark_in_album(&done, &album_id)?;
            tracing::info!(album = %name, assets = done.len(), "album synced");
        }
        Ok(())
    }
}
