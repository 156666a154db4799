//! The directory walk: the producer side of the pipeline.
//!
//! Symlinks are never followed (so a symlink loop cannot hang the walk);
//! directories matching an exclude are pruned without being read, except that
//! a top-level directory's `.immich` marker is always kept (Immich refuses to
//! start when one is missing). Every problem is an item naming the path, so one
//! unreadable directory never stops the walk.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};
use walkdir::WalkDir;

use crate::{Error, Result};

const MARKER: &str = ".immich";

/// One thing the walk found.
#[derive(Debug)]
pub(crate) enum WalkItem {
    /// A regular file to back up.
    File {
        rel: String,
        abs: PathBuf,
        size: u64,
        mtime_ns: i64,
    },
    /// A path that could not be read. `dir` is true when a whole directory was
    /// lost, which makes the walk incomplete.
    Failed {
        path: String,
        error: String,
        dir: bool,
    },
    /// Something left out on purpose, with the reason.
    Skipped { path: String, reason: &'static str },
}

/// Include and exclude patterns.
#[derive(Debug, Clone)]
pub(crate) struct Filter {
    excludes: GlobSet,
    includes: Option<GlobSet>,
}

fn globset(key: &'static str, patterns: &[String]) -> Result<GlobSet> {
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        let g: Glob = GlobBuilder::new(p)
            .literal_separator(true)
            .build()
            .map_err(|e| Error::InvalidConfig {
                key,
                message: format!("{p:?}: {e}"),
            })?;
        b.add(g);
    }
    b.build().map_err(|e| Error::InvalidConfig {
        key,
        message: e.to_string(),
    })
}

impl Filter {
    pub(crate) fn new(excludes: &[String], includes: &[String]) -> Result<Self> {
        Ok(Filter {
            excludes: globset("exclude", excludes)?,
            includes: if includes.is_empty() {
                None
            } else {
                Some(globset("include", includes)?)
            },
        })
    }

    fn excluded(&self, rel: &Path) -> bool {
        self.excludes.is_match(rel)
    }

    fn included(&self, rel: &Path) -> bool {
        self.includes.as_ref().is_none_or(|s| s.is_match(rel))
    }
}

fn mtime_ns(md: &std::fs::Metadata) -> i64 {
    md.mtime()
        .saturating_mul(1_000_000_000)
        .saturating_add(md.mtime_nsec())
}

fn display(rel: &Path) -> String {
    rel.to_string_lossy().into_owned()
}

/// Walks `root`, calling `emit` for each item until it returns false.
pub(crate) fn walk(root: &Path, filter: &Filter, mut emit: impl FnMut(WalkItem) -> bool) {
    let mut it = WalkDir::new(root)
        .follow_links(false)
        .min_depth(1)
        .into_iter();
    while let Some(entry) = it.next() {
        let item = match entry {
            Err(e) => {
                let path = e
                    .path()
                    .map(|p| display(p.strip_prefix(root).unwrap_or(p)))
                    .unwrap_or_else(|| display(root));
                let dir = e.path().is_none_or(|p| p.is_dir());
                let error = e
                    .io_error()
                    .map_or_else(|| e.to_string(), ToString::to_string);
                WalkItem::Failed { path, error, dir }
            }
            Ok(entry) => {
                let abs = entry.path();
                let rel = abs.strip_prefix(root).unwrap_or(abs);
                let ft = entry.file_type();
                if ft.is_dir() {
                    if filter.excluded(rel) {
                        it.skip_current_dir();
                        if entry.depth() == 1
                            && let Some(item) = file_item(&abs.join(MARKER), &rel.join(MARKER))
                            && !emit(item)
                        {
                            return;
                        }
                    }
                    continue;
                }
                if ft.is_symlink() {
                    WalkItem::Skipped {
                        path: display(rel),
                        reason: "symlink (not followed)",
                    }
                } else if !ft.is_file() {
                    WalkItem::Skipped {
                        path: display(rel),
                        reason: "not a regular file",
                    }
                } else {
                    let marker = entry.file_name() == MARKER;
                    if !marker && (filter.excluded(rel) || !filter.included(rel)) {
                        continue;
                    }
                    match entry.metadata() {
                        Ok(md) => encoded(rel, abs.to_owned(), md.len(), mtime_ns(&md)),
                        Err(e) => WalkItem::Failed {
                            path: display(rel),
                            error: e.to_string(),
                            dir: false,
                        },
                    }
                }
            }
        };
        if !emit(item) {
            return;
        }
    }
}

fn encoded(rel: &Path, abs: PathBuf, size: u64, mtime_ns: i64) -> WalkItem {
    match imb_storage::encode_path(rel) {
        Ok(rel) => WalkItem::File {
            rel,
            abs,
            size,
            mtime_ns,
        },
        Err(e) => WalkItem::Failed {
            path: display(rel),
            error: e.to_string(),
            dir: false,
        },
    }
}

fn file_item(abs: &Path, rel: &Path) -> Option<WalkItem> {
    let md = std::fs::symlink_metadata(abs).ok()?;
    md.is_file()
        .then(|| encoded(rel, abs.to_owned(), md.len(), mtime_ns(&md)))
}
