//! Dump object names: `database/{ts}-immich-v{version}.sql.gz`, or
//! `database/{ts}-immich-unknown.sql.gz` when the Immich version could not be read,
//! and listing them. Retention orders dumps by the time in the name.

use std::time::SystemTime;

use imb_storage::{ObjectMeta, ObjectRead, ObjectReadExt};

use crate::{format_ts, is_future, parse_ts};

/// Where dumps live in the target.
pub const DUMP_PREFIX: &str = "database/";
const SUFFIX: &str = ".sql.gz";
const TS_LEN: usize = "2024-01-15T03-00-00".len();

/// A dump's name, parsed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub struct DumpName {
    /// When the dump was taken, as in the name (`2024-01-15T03-00-00`, UTC).
    pub ts: String,
    /// The Immich version in the name, without the `v`; `None` for `unknown`.
    pub immich_version: Option<String>,
}

impl DumpName {
    /// The name of a dump taken at `now` of a database at `immich_version` (a leading
    /// `v` is dropped, so `v2.3.1` and `2.3.1` give the same name; characters that do
    /// not belong in an object name become `_`).
    pub fn new(now: SystemTime, immich_version: Option<&str>) -> Self {
        DumpName {
            ts: format_ts(now),
            immich_version: immich_version.and_then(clean_version),
        }
    }

    /// Parses a key such as `database/2024-01-15T03-00-00-immich-v2.3.1.sql.gz`;
    /// `None` for anything else under `database/` (or outside it).
    pub fn parse(key: &str) -> Option<Self> {
        let name = key.strip_prefix(DUMP_PREFIX)?.strip_suffix(SUFFIX)?;
        if name.contains('/') {
            return None;
        }
        let ts = name.get(..TS_LEN)?;
        parse_ts(ts)?;
        let rest = name.get(TS_LEN..)?.strip_prefix("-immich-")?;
        let immich_version = if rest == "unknown" {
            None
        } else {
            let v = rest.strip_prefix('v')?;
            if v.is_empty() || clean_version(v).as_deref() != Some(v) {
                return None;
            }
            Some(v.to_owned())
        };
        Some(DumpName {
            ts: ts.to_owned(),
            immich_version,
        })
    }

    /// The object key.
    pub fn key(&self) -> String {
        match &self.immich_version {
            Some(v) => format!("{DUMP_PREFIX}{}-immich-v{v}{SUFFIX}", self.ts),
            None => format!("{DUMP_PREFIX}{}-immich-unknown{SUFFIX}", self.ts),
        }
    }

    /// When the dump was taken.
    pub fn time(&self) -> Option<SystemTime> {
        parse_ts(&self.ts)
    }
}

/// A version as it goes into a name: no leading `v`, only `[0-9A-Za-z.+_-]`.
fn clean_version(v: &str) -> Option<String> {
    let v = v.trim();
    let v = v.strip_prefix(['v', 'V']).unwrap_or(v);
    if v.is_empty() {
        return None;
    }
    Some(
        v.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "._+-".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect(),
    )
}

/// Every dump in the store, newest first (by the time in the name, then by name),
/// leaving out those dated more than a day ahead of now (see [`list_dumps_at`]).
///
/// # Errors
/// The store's error from listing `database/`.
pub async fn list_dumps(read: &dyn ObjectRead) -> imb_storage::Result<Vec<(DumpName, ObjectMeta)>> {
    Ok(list_dumps_at(read, SystemTime::now()).await?.0)
}

/// The dump a check reads from `dumps` (as [`list_dumps`] returns them, newest
/// first): the one with key `wanted`, or the newest.
pub fn choose_dump<'a>(
    dumps: &'a [(DumpName, ObjectMeta)],
    wanted: Option<&str>,
) -> Option<&'a (DumpName, ObjectMeta)> {
    match wanted {
        Some(k) => dumps.iter().find(|(n, _)| n.key() == k),
        None => dumps.first(),
    }
}

/// [`list_dumps`] as of `now`, with the keys of the future-dated dumps it left out (a
/// planted `database/2999-…` must not push real dumps out of retention).
///
/// # Errors
/// The store's error from listing `database/`.
pub async fn list_dumps_at(
    read: &dyn ObjectRead,
    now: SystemTime,
) -> imb_storage::Result<(Vec<(DumpName, ObjectMeta)>, Vec<String>)> {
    let mut future = Vec::new();
    let mut dumps: Vec<(DumpName, ObjectMeta)> = Vec::new();
    for meta in read.list_all(DUMP_PREFIX).await? {
        let Some(name) = DumpName::parse(meta.key.as_str()) else {
            tracing::debug!(key = %meta.key, "not a dump name; retention leaves it alone");
            continue;
        };
        if is_future(&name.ts, now) {
            tracing::warn!(key = %meta.key, "ignoring a dump dated more than a day ahead");
            future.push(meta.key.to_string());
        } else {
            dumps.push((name, meta));
        }
    }
    dumps.sort_by(|(a, am), (b, bm)| (&b.ts, bm.key.as_str()).cmp(&(&a.ts, am.key.as_str())));
    Ok((dumps, future))
}
