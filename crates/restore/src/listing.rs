//! The target's objects listed once into a local SQLite table, so a metadata check
//! costs one request per page of objects (1,000 on GCS) instead of one per file,
//! and objects no manifest row names can be counted. Memory stays one page.

use std::path::{Path, PathBuf};

use imb_storage::{ListOptions, ObjectRead};
use rusqlite::{Connection, OptionalExtension, params};

use crate::{Error, Result};

fn sql(path: &Path) -> impl Fn(rusqlite::Error) -> Error + '_ {
    move |e| Error::Io {
        path: path.display().to_string(),
        source: std::io::Error::other(e),
    }
}

/// What the listing says about one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// Listed, with this size, CRC32C and storage class.
    Found {
        size: u64,
        crc32c: Option<u32>,
        class: Option<String>,
    },
    /// Under a listed prefix but not listed: missing, or created since.
    Absent,
    /// Not under a listed prefix: only a request per object can tell.
    NotCovered,
}

/// A built listing: its table's file, the prefixes it covers, and its cost.
#[derive(Debug)]
pub(crate) struct Listing {
    pub path: PathBuf,
    pub covered: Vec<String>,
    pub objects: u64,
    pub requests: u64,
}

const PAGE: usize = 1000;

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS listed (
    key TEXT PRIMARY KEY NOT NULL, size INTEGER NOT NULL, crc32c INTEGER, class TEXT,
    seen INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;";

impl Listing {
    /// Lists every object under `covered` into a new table at `path`.
    pub(crate) async fn build(
        store: &dyn ObjectRead,
        path: PathBuf,
        covered: Vec<String>,
    ) -> Result<Listing> {
        imb_manifest::remove_db(&path);
        let conn = Connection::open(&path).map_err(sql(&path))?;
        conn.execute_batch(&format!(
            "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; {SCHEMA}"
        ))
        .map_err(sql(&path))?;
        let (mut objects, mut requests) = (0, 0);
        for prefix in &covered {
            let mut token = None;
            loop {
                let page = store
                    .list(
                        prefix,
                        // GCS's largest page, asked for so every store pages alike.
                        ListOptions::default()
                            .with_max_results(PAGE)
                            .with_page_token(token),
                    )
                    .await?;
                requests += 1;
                let tx = conn.unchecked_transaction().map_err(sql(&path))?;
                {
                    let mut st = tx
                        .prepare_cached(
                            "INSERT OR REPLACE INTO listed (key, size, crc32c, class) VALUES (?1, ?2, ?3, ?4)",
                        )
                        .map_err(sql(&path))?;
                    for m in &page.objects {
                        st.execute(params![
                            m.key.as_str(),
                            m.size as i64,
                            m.crc32c,
                            m.storage_class
                        ])
                        .map_err(sql(&path))?;
                        objects += 1;
                    }
                }
                tx.commit().map_err(sql(&path))?;
                match page.next_page_token {
                    Some(t) => token = Some(t),
                    None => break,
                }
            }
        }
        Ok(Listing {
            path,
            covered,
            objects,
            requests,
        })
    }
}

/// Lookups in a built listing, from the one blocking thread that streams rows.
#[derive(Debug)]
pub(crate) struct Lookups {
    conn: Connection,
    path: PathBuf,
    covered: Vec<String>,
}

impl Lookups {
    pub(crate) fn open(listing: &Listing) -> Result<Lookups> {
        let conn = Connection::open(&listing.path).map_err(sql(&listing.path))?;
        conn.execute_batch("PRAGMA synchronous = OFF;")
            .map_err(sql(&listing.path))?;
        Ok(Lookups {
            conn,
            path: listing.path.clone(),
            covered: listing.covered.clone(),
        })
    }

    pub(crate) fn lookup(&self, key: &str) -> Result<Lookup> {
        if !self.covered.iter().any(|p| key.starts_with(p.as_str())) {
            return Ok(Lookup::NotCovered);
        }
        let found: Option<(i64, Option<u32>, Option<String>)> = self
            .conn
            .prepare_cached("SELECT size, crc32c, class FROM listed WHERE key = ?1")
            .and_then(|mut st| {
                st.query_row([key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .optional()
            })
            .map_err(sql(&self.path))?;
        Ok(match found {
            Some((size, crc32c, class)) => Lookup::Found {
                size: size as u64,
                crc32c,
                class,
            },
            None => Lookup::Absent,
        })
    }

    /// Notes that a manifest row names `key`.
    pub(crate) fn mark(&self, key: &str) -> Result<()> {
        self.conn
            .prepare_cached("UPDATE listed SET seen = 1 WHERE key = ?1")
            .and_then(|mut st| st.execute([key]))
            .map_err(sql(&self.path))?;
        Ok(())
    }

    pub(crate) fn begin(&self) -> Result<()> {
        self.conn.execute_batch("BEGIN").map_err(sql(&self.path))
    }

    pub(crate) fn commit(&self) -> Result<()> {
        self.conn.execute_batch("COMMIT").map_err(sql(&self.path))
    }

    /// Listed objects no row marked: the first `limit` with their sizes, and how many.
    pub(crate) fn unmarked(&self, limit: usize) -> Result<(Vec<(String, u64)>, u64)> {
        let count: i64 = self
            .conn
            .query_row("SELECT count(*) FROM listed WHERE seen = 0", [], |r| {
                r.get(0)
            })
            .map_err(sql(&self.path))?;
        let mut st = self
            .conn
            .prepare("SELECT key, size FROM listed WHERE seen = 0 ORDER BY key LIMIT ?1")
            .map_err(sql(&self.path))?;
        let listed = st
            .query_map([limit as i64], |r| {
                Ok((r.get(0)?, r.get::<_, i64>(1)? as u64))
            })
            .map_err(sql(&self.path))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(sql(&self.path))?;
        Ok((listed, count as u64))
    }
}
