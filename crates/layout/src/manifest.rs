//! Manifest names, and finding and downloading the manifest a target's state is
//! described by.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::time::SystemTime;

use imb_manifest::{Manifest, ManifestReader};
use imb_storage::{GetOptions, Key, ObjectRead, ObjectReadExt};

use crate::shard::{LOGICAL_SHARDS, Shard};
use crate::{Error, Result, is_future, parse_ts};

/// What a manifest object holds, in the order a run writes them: its parts,
/// then its end (a delta, or a full manifest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// `manifest-{ts}.part-{n}.db[.gz]`: rows changed since the run's previous save.
    Part(u32),
    /// `manifest-{ts}.delta.db.gz`: the rest of the run's changes; the run finished.
    Delta,
    /// `manifest-{ts}.db`: the whole manifest; the run finished.
    Full,
}

/// A manifest object's name, parsed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ManifestName {
    /// The run's timestamp, as in the name.
    pub ts: String,
    /// The pod of a sharded run that wrote it (`.shard-{K}-of-{N}`); `None` for
    /// a run of one process. A sharded run writes parts and deltas only.
    pub shard: Option<Shard>,
    /// What it holds.
    pub kind: Kind,
    /// Whether the name ends in `.gz` (parts written before deltas did not).
    pub packed: bool,
}

impl ManifestName {
    /// A run's full manifest.
    pub fn full(ts: &str) -> Self {
        ManifestName {
            ts: ts.to_owned(),
            shard: None,
            kind: Kind::Full,
            packed: false,
        }
    }

    /// A run's `n`th part, compressed.
    pub fn part(ts: &str, n: u32) -> Self {
        ManifestName {
            ts: ts.to_owned(),
            shard: None,
            kind: Kind::Part(n),
            packed: true,
        }
    }

    /// A run's delta.
    pub fn delta(ts: &str) -> Self {
        ManifestName {
            ts: ts.to_owned(),
            shard: None,
            kind: Kind::Delta,
            packed: true,
        }
    }

    /// The same piece written by pod `shard` (unchanged for the one pod of an
    /// unsharded run, whose names stay as they always were).
    pub fn of_shard(mut self, shard: Shard) -> Self {
        self.shard = (!shard.is_whole()).then_some(shard);
        self
    }

    /// Parses `manifest-{ts}.db`, `manifest-{ts}[.shard-{K}-of-{N}].part-{n}.db[.gz]`
    /// or `manifest-{ts}[.shard-{K}-of-{N}].delta.db.gz` (without prefix).
    pub fn parse(name: &str) -> Option<Self> {
        let rest = name.strip_prefix("manifest-")?;
        let (rest, packed) = match rest.strip_suffix(".gz") {
            Some(r) => (r, true),
            None => (rest, false),
        };
        let rest = rest.strip_suffix(".db")?;
        // A timestamp has no dot: what follows the first one says what the object is.
        let (ts, mut tail) = match rest.split_once('.') {
            Some((ts, tail)) => (ts, Some(tail)),
            None => (rest, None),
        };
        let mut shard = None;
        if let Some(t) = tail.and_then(|t| t.strip_prefix("shard-")) {
            let (pod, after) = t.split_once('.').map_or((t, None), |(p, a)| (p, Some(a)));
            let (k, n) = pod.split_once("-of-")?;
            let s = Shard::new(k.parse().ok()?, n.parse().ok()?).ok()?;
            // One spelling per pod, so a listing and the name agree.
            if s.is_whole() || pod != format!("{:03}-of-{:03}", s.index, s.count) {
                return None;
            }
            shard = Some(s);
            tail = after;
        }
        let kind = match tail {
            None => Kind::Full,
            Some("delta") => Kind::Delta,
            Some(t) => Kind::Part(t.strip_prefix("part-")?.parse().ok()?),
        };
        // A full manifest is plain SQLite (people open it with sqlite3); a delta is packed.
        if (kind == Kind::Full && (packed || shard.is_some())) || (kind == Kind::Delta && !packed) {
            return None;
        }
        parse_ts(ts)?;
        Some(ManifestName {
            ts: ts.to_owned(),
            shard,
            kind,
            packed,
        })
    }

    /// Whether the run (or, for a sharded run, the pod) that wrote it finished
    /// with it.
    pub fn finished(&self) -> bool {
        matches!(self.kind, Kind::Delta | Kind::Full)
    }

    /// Whether this finished piece covers logical shard `logical`.
    fn covers(&self, logical: u8) -> bool {
        self.finished() && self.shard.is_none_or(|s| s.owns(logical))
    }

    /// The object name.
    pub fn name(&self) -> String {
        let gz = if self.packed { ".gz" } else { "" };
        let run = match self.shard {
            None => self.ts.clone(),
            Some(s) => format!("{}.shard-{:03}-of-{:03}", self.ts, s.index, s.count),
        };
        match self.kind {
            Kind::Part(n) => format!("manifest-{run}.part-{n:05}.db{gz}"),
            Kind::Delta => format!("manifest-{run}.delta.db{gz}"),
            Kind::Full => format!("manifest-{run}.db"),
        }
    }

    /// The object key.
    pub fn key(&self) -> Key {
        Key::parse(self.name()).expect("a manifest name is a valid key")
    }
}

/// A manifest object in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Its name, parsed.
    pub name: ManifestName,
    /// Its key (with the store's prefix, as listed).
    pub key: Key,
    /// Its size in bytes.
    pub size: u64,
}

/// What [`fetch_manifest`] found.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Fetched {
    /// The full manifest used as the base (`manifest-{ts}.db`), if any.
    pub base: Option<ManifestName>,
    /// The size of the base.
    pub base_bytes: u64,
    /// The restore point: the newest finished run replayed (its delta or full).
    pub point: Option<ManifestName>,
    /// Parts and deltas replayed on the base, in order.
    pub replayed: Vec<String>,
    /// Runs whose objects were replayed (finished or not).
    pub chain_runs: u32,
    /// Bytes of the objects replayed.
    pub chain_bytes: u64,
    /// Objects that could not be used (damaged manifests, parts or deltas, lost
    /// parts), with why.
    pub warnings: Vec<String>,
    /// Manifest objects dated more than a day ahead of now, left out.
    pub future: Vec<String>,
    /// When the newest run replayed was sharded and not every pod finished it:
    /// what is missing, and where each shard's rows come from instead.
    pub incomplete: Option<Incomplete>,
}

/// A sharded run some of whose pods did not finish: its restore point mixes
/// runs, each logical shard at its newest finished piece.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Incomplete {
    /// The run's timestamp.
    pub run: String,
    /// The pods with no finished piece in it (`K/N`).
    pub missing: Vec<Shard>,
    /// For the logical shards those pods own, the newest earlier run that
    /// finished them (`None`: none did), with the logical shards it serves.
    pub from: Vec<(Option<String>, Vec<u8>)>,
}

impl std::fmt::Display for Incomplete {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let missing: Vec<String> = self.missing.iter().map(Shard::to_string).collect();
        write!(
            f,
            "run {} is incomplete: shard {} did not finish;",
            self.run,
            missing.join(", ")
        )?;
        for (i, (run, logical)) in self.from.iter().enumerate() {
            let sep = if i == 0 { "" } else { ";" };
            match run {
                Some(r) => write!(f, "{sep} {} logical shards from run {r}", logical.len())?,
                None => write!(f, "{sep} {} logical shards never finished", logical.len())?,
            }
        }
        Ok(())
    }
}

/// Whether the newest run with a finished piece among `names` covers every
/// logical shard, and if not, the mix a reader gets.
fn completeness(names: &[&Listed]) -> Option<Incomplete> {
    let run = names
        .iter()
        .rev()
        .find(|l| l.name.finished())?
        .name
        .ts
        .clone();
    let pieces: Vec<&ManifestName> = names
        .iter()
        .map(|l| &l.name)
        .filter(|n| n.ts == run)
        .collect();
    let uncovered: Vec<u8> = (0..LOGICAL_SHARDS)
        .map(|s| s as u8)
        .filter(|&s| !pieces.iter().any(|n| n.covers(s)))
        .collect();
    if uncovered.is_empty() {
        return None;
    }
    // Every pod of the counts the run used with no finished piece, whether it
    // saved parts or wrote nothing at all.
    let mut counts: Vec<u16> = pieces
        .iter()
        .filter_map(|n| n.shard)
        .map(|s| s.count)
        .collect();
    counts.sort_unstable();
    counts.dedup();
    let missing: Vec<Shard> = counts
        .into_iter()
        .flat_map(|count| (0..count).map(move |index| Shard { index, count }))
        .filter(|s| !pieces.iter().any(|n| n.finished() && n.shard == Some(*s)))
        .collect();
    let mut from: Vec<(Option<String>, Vec<u8>)> = Vec::new();
    for s in uncovered {
        let src = names
            .iter()
            .rev()
            .find(|l| l.name.ts < run && l.name.covers(s))
            .map(|l| l.name.ts.clone());
        match from.iter_mut().find(|(r, _)| *r == src) {
            Some((_, v)) => v.push(s),
            None => from.push((src, vec![s])),
        }
    }
    Some(Incomplete { run, missing, from })
}

/// Every manifest object in the store, parsed and sorted in the order runs wrote
/// them, leaving out those dated more than [`crate::FUTURE_SLACK`] ahead of now
/// (see [`list_manifests_at`]).
///
/// # Errors
/// The store's error.
pub async fn list_manifests(store: &dyn ObjectRead) -> imb_storage::Result<Vec<Listed>> {
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
) -> imb_storage::Result<(Vec<Listed>, Vec<String>)> {
    let mut future = Vec::new();
    let mut names: Vec<Listed> = Vec::new();
    for m in store.list_all("manifest-").await? {
        let Some(name) = ManifestName::parse(m.key.as_str()) else {
            continue;
        };
        if is_future(&name.ts, now) {
            tracing::warn!(manifest = %m.key, "ignoring a manifest dated more than a day ahead");
            future.push(m.key.to_string());
        } else {
            names.push(Listed {
                name,
                key: m.key,
                size: m.size,
            });
        }
    }
    names.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((names, future))
}

/// Downloads into `work` the manifest describing the target: the newest full
/// `manifest-{ts}.db` that opens (older ones stand in for a damaged newest one),
/// then every later part and delta in the order they were written. Without `at`,
/// that is everything, the parts of an unfinished last run too; with `at`, the
/// restore point of the newest run at or before `at` that finished (with a
/// delta or a full manifest). A part or delta that cannot be used is skipped
/// with a warning: it loses that object's rows, not the chain. `work` is left
/// absent when the target has no manifest at or before `at`.
///
/// # Errors
/// The store's error when listing or downloading fails; [`Error::Manifest`] when a
/// part cannot be applied to a manifest that opened.
pub async fn fetch_manifest(
    store: &dyn ObjectRead,
    work: &Path,
    at: Option<SystemTime>,
) -> Result<Fetched> {
    let (names, future) = list_manifests_at(store, SystemTime::now()).await?;
    let within = |n: &ManifestName| at.is_none_or(|at| parse_ts(&n.ts).is_some_and(|t| t <= at));
    let mut out = Fetched {
        future,
        ..Fetched::default()
    };
    // With `at`, nothing after the newest run that finished by then.
    let end = if at.is_some() {
        match names
            .iter()
            .rev()
            .find(|l| within(&l.name) && l.name.finished())
        {
            Some(l) => Some(l.name.ts.clone()),
            None => {
                imb_manifest::remove_db(work);
                return Ok(out);
            }
        }
    } else {
        None
    };
    let upto = |n: &ManifestName| end.as_ref().is_none_or(|e| n.ts <= *e);
    out.incomplete = completeness(&names.iter().filter(|l| upto(&l.name)).collect::<Vec<_>>());
    if let Some(i) = &out.incomplete {
        tracing::warn!(mix = %i, "the newest restore point is incomplete");
    }
    for l in names
        .iter()
        .rev()
        .filter(|l| l.name.kind == Kind::Full && upto(&l.name))
    {
        imb_manifest::remove_db(work);
        let ok = match download(store, &l.key, work).await {
            Ok(()) => ManifestReader::open(work).map(drop).map_err(Error::from),
            Err(e) => Err(e),
        };
        match ok {
            Ok(()) => {
                out.base = Some(l.name.clone());
                out.base_bytes = l.size;
                out.point = Some(l.name.clone());
                break;
            }
            Err(e) => {
                tracing::warn!(manifest = %l.key, error = %e, "manifest unreadable; trying an older one");
                out.warnings
                    .push(format!("skipped unreadable manifest {}: {e}", l.key));
            }
        }
    }
    if out.base.is_none() {
        imb_manifest::remove_db(work);
    }
    let chain: Vec<&Listed> = names
        .iter()
        .filter(|l| {
            l.name.kind != Kind::Full
                && upto(&l.name)
                && out.base.as_ref().is_none_or(|b| l.name.ts > b.ts)
        })
        .collect();
    let mut manifest = None;
    // The run (and pod) being replayed, and its parts seen.
    let mut run: Option<(&str, Option<Shard>, u32)> = None;
    let mut last_ts: Option<&str> = None;
    for l in chain {
        let m = match &mut manifest {
            Some(m) => m,
            None => manifest.insert(Manifest::open(work)?),
        };
        if run.is_none_or(|(ts, shard, _)| ts != l.name.ts || shard != l.name.shard) {
            run = Some((&l.name.ts, l.name.shard, 0));
        }
        if last_ts != Some(l.name.ts.as_str()) {
            last_ts = Some(&l.name.ts);
            out.chain_runs += 1;
        }
        let part = work.with_extension("replay");
        let fetched = work.with_extension("download");
        let applied = match download(store, &l.key, &fetched).await {
            Ok(()) => imb_manifest::unpack(&fetched, &part)
                .and_then(|()| {
                    let parts = match l.name.kind {
                        Kind::Delta => ManifestReader::open(&part)?
                            .metadata(imb_manifest::RUN_PARTS)?
                            .and_then(|v| v.parse::<u32>().ok()),
                        _ => None,
                    };
                    Ok((parts, m.apply(&part)?))
                })
                .map_err(Error::from),
            Err(e) => Err(e),
        };
        let _ = std::fs::remove_file(&fetched);
        imb_manifest::remove_db(&part);
        out.chain_bytes += l.size;
        match applied {
            Ok((parts, n)) => {
                tracing::info!(manifest = %l.key, rows = n, "replayed");
                out.replayed.push(l.key.to_string());
                if let Some((_, shard, seen)) = &mut run {
                    if matches!(l.name.kind, Kind::Part(_)) {
                        *seen += 1;
                    }
                    if let Some(want) = parts.filter(|w| w != seen) {
                        let pod = shard.map(|s| format!(" shard {s}")).unwrap_or_default();
                        out.warnings.push(format!(
                            "run {}{pod}: {} of its {want} manifest parts found; the rows of the others are lost from the manifest (their objects remain)",
                            l.name.ts, seen
                        ));
                    }
                }
                if l.name.kind == Kind::Delta {
                    out.point = Some(l.name.clone());
                }
            }
            Err(e) => {
                tracing::warn!(manifest = %l.key, error = %e, "skipping an unreadable manifest part");
                out.warnings
                    .push(format!("skipped unreadable manifest part {}: {e}", l.key));
            }
        }
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
        let ts = "2024-01-15T03-00-00";
        let m = ManifestName::parse("manifest-2024-01-15T03-00-00.db").unwrap();
        assert_eq!(m, ManifestName::full(ts));
        let p = ManifestName::parse("manifest-2024-01-15T03-00-00.part-00002.db").unwrap();
        assert_eq!((p.kind, p.packed), (Kind::Part(2), false));
        assert_eq!(p.name(), "manifest-2024-01-15T03-00-00.part-00002.db");
        let z = ManifestName::parse("manifest-2024-01-15T03-00-00.part-00003.db.gz").unwrap();
        assert_eq!(z, ManifestName::part(ts, 3));
        let d = ManifestName::parse("manifest-2024-01-15T03-00-00.delta.db.gz").unwrap();
        assert_eq!(d, ManifestName::delta(ts));
        for n in [&m, &p, &z, &d] {
            assert_eq!(ManifestName::parse(&n.name()).as_ref(), Some(n));
        }
        // A run writes its parts, then its end.
        assert!(p < z && z < d && d < m);
        assert!(ManifestName::parse("manifest-2024-01-15T03-00-00.db.gz").is_none());
        assert!(ManifestName::parse("manifest-2024-01-15T03-00-00.delta.db").is_none());
        assert!(ManifestName::parse("manifest.db").is_none());
        assert!(ManifestName::parse("manifest-garbage.db").is_none());
    }

    #[test]
    fn sharded_names_parse_and_sort_within_their_run() {
        let ts = "2024-01-15T03-00-00";
        let pod = Shard::new(2, 4).unwrap();
        let d = ManifestName::delta(ts).of_shard(pod);
        assert_eq!(
            d.name(),
            "manifest-2024-01-15T03-00-00.shard-002-of-004.delta.db.gz"
        );
        let p = ManifestName::part(ts, 7).of_shard(pod);
        assert_eq!(
            p.name(),
            "manifest-2024-01-15T03-00-00.shard-002-of-004.part-00007.db.gz"
        );
        for n in [&d, &p] {
            assert_eq!(ManifestName::parse(&n.name()).as_ref(), Some(n));
        }
        assert!(p < d && d < ManifestName::delta(ts).of_shard(Shard::new(3, 4).unwrap()));
        assert_eq!(
            ManifestName::delta(ts).of_shard(Shard::WHOLE),
            ManifestName::delta(ts)
        );
        for bad in [
            "manifest-2024-01-15T03-00-00.shard-002-of-004.db",
            "manifest-2024-01-15T03-00-00.shard-002-of-004.delta.db",
            "manifest-2024-01-15T03-00-00.shard-2-of-4.delta.db.gz",
            "manifest-2024-01-15T03-00-00.shard-000-of-001.delta.db.gz",
            "manifest-2024-01-15T03-00-00.shard-004-of-004.delta.db.gz",
            "manifest-2024-01-15T03-00-00.shard-001-of-004.garbage.db.gz",
        ] {
            assert!(ManifestName::parse(bad).is_none(), "{bad}");
        }
    }

    /// A sharded run merges its pods' pieces; one pod that did not finish makes
    /// the restore point incomplete, named with where its shards come from.
    #[test]
    fn a_sharded_run_merges_its_pieces_and_names_a_missing_pod() {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let store = InMemory::new();
        let put = |name: ManifestName, rows: &[(u8, u8)], parts: Option<u32>| {
            let rows: BTreeMap<u8, u8> = rows.iter().copied().collect();
            let bytes = journal(dir.path(), &name.name(), &rows, parts);
            rt.block_on(store.put_opts(&name.key(), Payload::from(bytes), Default::default()))
                .unwrap();
        };
        let (t0, t1, t2) = (
            "2024-01-15T03-00-00",
            "2024-01-16T03-00-00",
            "2024-01-17T03-00-00",
        );
        put(
            ManifestName::full(t0),
            &[(0, 1), (1, 1), (2, 1), (3, 1)],
            None,
        );
        let pod = |k| Shard::new(k, 4).unwrap();
        put(ManifestName::delta(t1).of_shard(pod(0)), &[(0, 2)], Some(0));
        put(ManifestName::part(t1, 1).of_shard(pod(1)), &[(1, 2)], None);
        put(ManifestName::delta(t1).of_shard(pod(1)), &[(5, 2)], Some(1));
        put(ManifestName::part(t1, 1).of_shard(pod(2)), &[(2, 2)], None); // then killed
        put(ManifestName::delta(t1).of_shard(pod(3)), &[(3, 2)], Some(0));
        let read = |at: Option<SystemTime>| {
            let p = dir.path().join("fetched.db");
            imb_manifest::remove_db(&p);
            let got = rt.block_on(fetch_manifest(&store, &p, at)).unwrap();
            let mut rows = BTreeMap::new();
            ManifestReader::open(&p)
                .unwrap()
                .for_each_file(|r| {
                    rows.insert(r.file_path[1..].parse::<u8>().unwrap(), r.checksum[0]);
                    Ok(())
                })
                .unwrap();
            (got, rows)
        };
        let (got, rows) = read(None);
        assert!(got.warnings.is_empty(), "{:?}", got.warnings);
        assert_eq!(got.chain_runs, 1);
        assert_eq!(
            rows,
            BTreeMap::from([(0, 2), (1, 2), (2, 2), (3, 2), (5, 2)]),
            "every pod's rows, the killed pod's saved part too"
        );
        let inc = got.incomplete.expect("pod 2 did not finish");
        assert_eq!(inc.run, t1);
        assert_eq!(inc.missing, vec![pod(2)]);
        let want: Vec<u8> = (0..=255u8).filter(|s| s % 4 == 2).collect();
        assert_eq!(inc.from, vec![(Some(t0.to_owned()), want)]);
        assert!(
            inc.to_string().contains(
                "shard 2/4 did not finish; 64 logical shards from run 2024-01-15T03-00-00"
            ),
            "{inc}"
        );

        // The next run, with two pods, finishes: complete again; nothing re-keyed.
        let two = |k| Shard::new(k, 2).unwrap();
        put(ManifestName::delta(t2).of_shard(two(0)), &[(2, 3)], Some(0));
        let (got, _) = read(None);
        let inc = got.incomplete.expect("pod 1 of 2 wrote nothing");
        assert_eq!(inc.missing, vec![two(1)]);
        // Its odd shards are 1 and 3 mod 4, both finished in t1 by pods 1 and 3 of 4.
        let odd: Vec<u8> = (0..=255u8).filter(|s| s % 2 == 1).collect();
        assert_eq!(inc.from, vec![(Some(t1.to_owned()), odd)]);
        put(ManifestName::delta(t2).of_shard(two(1)), &[], Some(0));
        let (got, rows) = read(None);
        assert_eq!(got.incomplete, None);
        assert_eq!(rows[&2], 3);
    }

    use imb_manifest::FileRecord;
    use imb_storage::{InMemory, ObjectCreate, Payload};
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    /// One run of a model writer: the rows it changes, split into parts, and how it
    /// ends.
    #[derive(Debug, Clone)]
    struct Run {
        rows: Vec<(u8, u8)>, // (path, content)
        per_part: usize,
        end: Option<Kind>, // None: killed after its parts
    }

    fn run_strategy() -> impl Strategy<Value = Run> {
        (
            prop::collection::vec((0u8..12, any::<u8>()), 0..8),
            1usize..4,
            prop_oneof![Just(None), Just(Some(Kind::Delta)), Just(Some(Kind::Full))],
        )
            .prop_map(|(rows, per_part, end)| Run {
                rows,
                per_part,
                end,
            })
    }

    fn journal(dir: &Path, name: &str, rows: &BTreeMap<u8, u8>, parts: Option<u32>) -> Vec<u8> {
        let p = dir.join(name);
        let mut m = Manifest::open(&p).unwrap();
        for (path, c) in rows {
            m.upsert(&FileRecord::new(
                format!("f{path}"),
                [*c; 32],
                [0; 20],
                0,
                1,
                2,
            ))
            .unwrap();
        }
        if let Some(n) = parts {
            m.set_metadata(imb_manifest::RUN_PARTS, &n.to_string())
                .unwrap();
        }
        m.commit().unwrap();
        drop(m);
        let gz = dir.join(format!("{name}.gz"));
        imb_manifest::pack(&p, &gz).unwrap();
        let bytes = std::fs::read(if name.ends_with(".gz") { &gz } else { &p }).unwrap();
        imb_manifest::remove_db(&p);
        bytes
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// Whatever mix of parts, deltas, full manifests and killed runs a target
        /// holds, the restore point of every finished run is every row written up
        /// to it, killed runs' parts included; and the newest point without `at`
        /// includes a killed last run's parts.
        #[test]
        fn every_finished_run_restores_what_was_written_up_to_it(
            runs in prop::collection::vec(run_strategy(), 1..7),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let store = InMemory::new();
            let mut state: BTreeMap<u8, u8> = BTreeMap::new();
            let mut points = Vec::new();
            let t0 = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
            // The first run always writes a full manifest, as the engine does.
            let mut runs = runs;
            runs[0].end = Some(Kind::Full);
            for (i, r) in runs.iter().enumerate() {
                let at = t0 + std::time::Duration::from_secs(i as u64 * 60);
                let ts = crate::format_ts(at);
                let mut parts = 0;
                let keep = if r.end.is_some() { r.rows.len() / 2 } else { r.rows.len() };
                for (n, chunk) in r.rows[..keep].chunks(r.per_part).enumerate() {
                    let rows: BTreeMap<u8, u8> = chunk.iter().copied().collect();
                    state.extend(rows.iter().map(|(k, v)| (*k, *v)));
                    let name = ManifestName::part(&ts, n as u32 + 1);
                    let bytes = journal(dir.path(), &name.name(), &rows, None);
                    rt.block_on(store.put_opts(&name.key(), Payload::from(bytes), Default::default())).unwrap();
                    parts += 1;
                }
                let rest: BTreeMap<u8, u8> = r.rows[keep..].iter().copied().collect();
                state.extend(rest.iter().map(|(k, v)| (*k, *v)));
                match r.end {
                    None => continue,
                    Some(Kind::Delta) => {
                        let name = ManifestName::delta(&ts);
                        let bytes = journal(dir.path(), &name.name(), &rest, Some(parts));
                        rt.block_on(store.put_opts(&name.key(), Payload::from(bytes), Default::default())).unwrap();
                    }
                    Some(_) => {
                        let name = ManifestName::full(&ts);
                        let bytes = journal(dir.path(), &name.name(), &state, None);
                        rt.block_on(store.put_opts(&name.key(), Payload::from(bytes), Default::default())).unwrap();
                    }
                }
                points.push((at, state.clone()));
            }
            let read = |at: Option<SystemTime>| {
                let p = dir.path().join("fetched.db");
                imb_manifest::remove_db(&p);
                let got = rt.block_on(fetch_manifest(&store, &p, at)).unwrap();
                assert!(got.warnings.is_empty(), "{got:?}");
                let mut rows = BTreeMap::new();
                ManifestReader::open(&p).unwrap().for_each_file(|r| {
                    rows.insert(r.file_path[1..].parse::<u8>().unwrap(), r.checksum[0]);
                    Ok(())
                }).unwrap();
                rows
            };
            for (at, want) in &points {
                prop_assert_eq!(&read(Some(*at)), want);
            }
            prop_assert_eq!(read(None), state);
        }
    }
}
