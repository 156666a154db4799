//! Manifest names, and finding and downloading the manifest a target's state is
//! described by.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::time::SystemTime;

use imb_manifest::{Manifest, ManifestReader};
use imb_storage::{GetOptions, Key, ObjectRead, ObjectReadExt};

use crate::{Error, Result, is_future, parse_ts};

/// A manifest object's name, parsed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ManifestName {
    /// The run's timestamp, as in the name.
    pub ts: String,
    /// The journal number, for a part.
    pub part: Option<u32>,
}

impl ManifestName {
    /// Parses `manifest-{ts}.db` or `manifest-{ts}.part-{n}.db` (without prefix).
    pub fn parse(name: &str) -> Option<Self> {
        let rest = name.strip_prefix("manifest-")?.strip_suffix(".db")?;
        let (ts, part) = match rest.split_once(".part-") {
            Some((ts, n)) => (ts, Some(n.parse().ok()?)),
            None => (rest, None),
        };
        parse_ts(ts)?;
        Some(ManifestName {
            ts: ts.to_owned(),
            part,
        })
    }

    /// The object name.
    pub fn name(&self) -> String {
        match self.part {
            Some(n) => format!("manifest-{}.part-{n:05}.db", self.ts),
            None => format!("manifest-{}.db", self.ts),
        }
    }

    /// The object key.
    pub fn key(&self) -> Key {
        Key::parse(self.name()).expect("a manifest name is a valid key")
    }
}

/// What [`fetch_manifest`] found.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Fetched {
    /// The full manifest used as the base (`manifest-{ts}.db`), if any.
    pub base: Option<ManifestName>,
    /// Journals of later, unfinished runs that were replayed, in order.
    pub replayed: Vec<String>,
    /// Objects that could not be used (damaged manifests or journals), with why.
    pub warnings: Vec<String>,
    /// Manifest objects dated more than a day ahead of now, left out.
    pub future: Vec<String>,
}

/// Every manifest object in the store, parsed and sorted oldest first, leaving
/// out those dated more than [`crate::FUTURE_SLACK`] ahead of now (see
/// [`list_manifests_at`]).
///
/// # Errors
/// The store's error.
pub async fn list_manifests(
    store: &dyn ObjectRead,
) -> imb_storage::Result<Vec<(ManifestName, Key)>> {
    Ok(list_manifests_at(store, SystemTime::now()).await?.0)
}

/// [`list_manifests`] as of `now`, with the future-dated names it left out: such a
/// name is planted (or from a clock far off), and taking it as the newest would
/// freeze every later run's view of the target.
///
/// # Errors
/// The store's error.
pub async fn list_manifests_at(
    store: &dyn ObjectRead,
    now: SystemTime,
) -> imb_storage::Result<(Vec<(ManifestName, Key)>, Vec<String>)> {
    let mut future = Vec::new();
    let mut names: Vec<(ManifestName, Key)> = Vec::new();
    for m in store.list_all("manifest-").await? {
        let Some(n) = ManifestName::parse(m.key.as_str()) else {
            continue;
        };
        if is_future(&n.ts, now) {
            tracing::warn!(manifest = %m.key, "ignoring a manifest dated more than a day ahead");
            future.push(m.key.to_string());
        } else {
            names.push((n, m.key));
        }
    }
    names.sort();
    Ok((names, future))
}

/// Downloads into `work` the manifest describing the target: the newest
/// `manifest-{ts}.db` that opens (as of `at`, when given), then, if
/// `replay_journals`, the journals of later runs that never finished. Older full
/// manifests stand in for a damaged newest one. `work` is left absent when the
/// target has no manifest.
///
/// # Errors
/// The store's error when listing or downloading fails; [`Error::Manifest`] when a
/// journal cannot be applied to a manifest that opened.
pub async fn fetch_manifest(
    store: &dyn ObjectRead,
    work: &Path,
    at: Option<SystemTime>,
    replay_journals: bool,
) -> Result<Fetched> {
    let (names, future) = list_manifests_at(store, SystemTime::now()).await?;
    let within = |n: &ManifestName| at.is_none_or(|at| parse_ts(&n.ts).is_some_and(|t| t <= at));
    let mut out = Fetched {
        future,
        ..Fetched::default()
    };
    for (name, k) in names
        .iter()
        .rev()
        .filter(|(n, _)| n.part.is_none() && within(n))
    {
        imb_manifest::remove_db(work);
        let ok = match download(store, k, work).await {
            Ok(()) => ManifestReader::open(work).map(drop).map_err(Error::from),
            Err(e) => Err(e),
        };
        match ok {
            Ok(()) => {
                out.base = Some(name.clone());
                break;
            }
            Err(e) => {
                tracing::warn!(manifest = %k, error = %e, "manifest unreadable; trying an older one");
                out.warnings
                    .push(format!("skipped unreadable manifest {k}: {e}"));
            }
        }
    }
    if out.base.is_none() {
        imb_manifest::remove_db(work);
    }
    if !replay_journals {
        return Ok(out);
    }
    let mut manifest = None;
    for (name, k) in &names {
        let newer = out.base.as_ref().is_none_or(|b| name.ts > b.ts);
        if name.part.is_none() || !newer || !within(name) {
            continue;
        }
        let m = match &mut manifest {
            Some(m) => m,
            None => manifest.insert(Manifest::open(work)?),
        };
        let part = work.with_extension("replay");
        let applied = match download(store, k, &part).await {
            Ok(()) => m.apply(&part).map_err(Error::from),
            Err(e) => Err(e),
        };
        match applied {
            Ok(n) => {
                tracing::info!(journal = %k, rows = n, "replayed a journal of an unfinished run");
                out.replayed.push(k.to_string());
            }
            Err(e) => {
                tracing::warn!(journal = %k, error = %e, "skipping unreadable journal");
                out.warnings
                    .push(format!("skipped unreadable journal {k}: {e}"));
            }
        }
        let _ = std::fs::remove_file(&part);
    }
    Ok(out)
}

fn state_err(path: &Path, source: std::io::Error) -> Error {
    Error::Local {
        path: path.display().to_string(),
        source,
    }
}

/// Streams an object into a local file (small files: manifests, journals).
///
/// # Errors
/// The store's, or the local file's.
pub(crate) async fn download(store: &dyn ObjectRead, k: &Key, dest: &Path) -> Result<()> {
    let mut f = File::create(dest).map_err(|e| state_err(dest, e))?;
    let mut res = store.get_opts(k, GetOptions::default()).await?;
    while let Some(chunk) = res.body.next_chunk().await? {
        f.write_all(&chunk).map_err(|e| state_err(dest, e))?;
    }
    f.sync_all().map_err(|e| state_err(dest, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_names_parse() {
        let m = ManifestName::parse("manifest-2024-01-15T03-00-00.db").unwrap();
        assert_eq!(m.part, None);
        let p = ManifestName::parse("manifest-2024-01-15T03-00-00.part-00002.db").unwrap();
        assert_eq!(p.part, Some(2));
        assert_eq!(p.name(), "manifest-2024-01-15T03-00-00.part-00002.db");
        assert!(m < p);
        assert!(ManifestName::parse("manifest.db").is_none());
        assert!(ManifestName::parse("manifest-garbage.db").is_none());
    }
}
