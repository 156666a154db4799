//! Walking the roots: every regular file under them, with its album and kind.
//! Hidden files and directories (names starting with `.`) are left out, as
//! `immich upload` does by default; symlinks are not followed; roots nested in
//! other roots are walked once.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use imb_immich::MediaTypes;
use walkdir::WalkDir;

use crate::selection::album_of;
use crate::state::mtime_ns;

/// What a file is to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Image,
    Video,
    /// An `.xmp` sidecar: sent with its photo, never on its own.
    Sidecar,
    /// An extension the server does not accept.
    Unsupported,
}

/// One file found.
#[derive(Debug, Clone)]
pub(crate) struct Found {
    pub(crate) path: PathBuf,
    pub(crate) album: String,
    pub(crate) kind: Kind,
    pub(crate) size: u64,
    pub(crate) mtime: SystemTime,
    /// 512-byte blocks allocated (see [`crate::offline`]).
    pub(crate) blocks: u64,
}

impl Found {
    pub(crate) fn mtime_ns(&self) -> i64 {
        mtime_ns(self.mtime)
    }

    /// Why it is a sync client's placeholder, if it is one.
    pub(crate) fn placeholder(&self, now: SystemTime) -> Option<&'static str> {
        crate::offline::placeholder(&self.path, self.size, self.blocks, self.mtime, now)
    }
}

/// What the walk could not read.
#[derive(Debug, Clone)]
pub(crate) struct WalkProblem {
    pub(crate) path: String,
}

pub(crate) fn kind_of(media: &MediaTypes, path: &Path) -> Kind {
    let name = path.to_string_lossy();
    if media.is_image(&name) {
        Kind::Image
    } else if media.is_video(&name) {
        Kind::Video
    } else if media.is_sidecar(&name) {
        Kind::Sidecar
    } else {
        Kind::Unsupported
    }
}

/// The roots made absolute, with roots inside other roots dropped.
pub(crate) fn normalise_roots(roots: &[PathBuf]) -> crate::Result<Vec<PathBuf>> {
    let mut abs = Vec::new();
    for r in roots {
        abs.push(std::fs::canonicalize(r).map_err(crate::error::io_err(r))?);
    }
    abs.sort();
    abs.dedup();
    let mut out: Vec<PathBuf> = Vec::new();
    for r in abs {
        if out.iter().any(|o| r.starts_with(o)) {
            tracing::info!(root = %r.display(), "root is inside another root; walked once");
            continue;
        }
        out.push(r);
    }
    Ok(out)
}

fn hidden(e: &walkdir::DirEntry) -> bool {
    e.depth() > 0 && e.file_name().as_encoded_bytes().first() == Some(&b'.')
}

/// What the walk reports.
#[derive(Debug)]
pub(crate) enum Event {
    /// A regular file.
    File(Found),
    /// Something that could not be read.
    Problem(WalkProblem),
}

/// Walks `roots` (already normalised) in path order, calling `visit` for every
/// regular file and for what cannot be read.
pub(crate) fn walk(roots: &[PathBuf], media: &MediaTypes, mut visit: impl FnMut(Event)) {
    for root in roots {
        let it = WalkDir::new(root)
            .follow_links(false)
            .sort_by_file_name()
            .into_iter()
            .filter_entry(|e| !hidden(e));
        for entry in it {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    let path = e
                        .path()
                        .map_or_else(|| root.display().to_string(), |p| p.display().to_string());
                    tracing::warn!(path = %path, error = %e, "cannot read");
                    visit(Event::Problem(WalkProblem { path }));
                    continue;
                }
            };
            if !entry.file_type().is_file() {
                continue;
            }
            let meta = match entry.metadata() {
                Ok(m) => m,
                Err(e) => {
                    // Gone between listing and stat: nothing to back up.
                    tracing::debug!(path = %entry.path().display(), error = %e, "vanished during the walk");
                    continue;
                }
            };
            visit(Event::File(found(entry.into_path(), &meta, media)));
        }
    }
}

/// Visits what changed: each of `paths` that is a regular file, or every file
/// under it when it is a directory (a folder moved in), as [`walk`] would; paths
/// outside the roots, hidden ones, and ones gone since are left out.
pub(crate) fn visit_paths(
    roots: &[PathBuf],
    paths: &[PathBuf],
    media: &MediaTypes,
    mut visit: impl FnMut(Event),
) {
    let mut seen = std::collections::BTreeSet::new();
    for p in paths {
        let Some(root) = roots.iter().find(|r| p.starts_with(r)) else {
            continue;
        };
        let below = p.strip_prefix(root).unwrap_or(p);
        if below
            .components()
            .any(|c| c.as_os_str().as_encoded_bytes().first() == Some(&b'.'))
        {
            continue;
        }
        let Ok(meta) = std::fs::symlink_metadata(p) else {
            continue;
        };
        if meta.is_dir() {
            walk(std::slice::from_ref(p), media, |e| match e {
                Event::File(f) if !seen.insert(f.path.clone()) => {}
                e => visit(e),
            });
        } else if meta.is_file() && seen.insert(p.clone()) {
            visit(Event::File(found(p.clone(), &meta, media)));
        }
    }
}

fn found(path: PathBuf, meta: &std::fs::Metadata, media: &MediaTypes) -> Found {
    Found {
        album: album_of(&path),
        kind: kind_of(media, &path),
        size: meta.len(),
        mtime: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        blocks: std::os::unix::fs::MetadataExt::blocks(meta),
        path,
    }
}

/// A fingerprint of every file's path, size and mtime under the roots: equal
/// fingerprints mean nothing changed (for watch mode's polling).
pub(crate) fn fingerprint(roots: &[PathBuf], media: &MediaTypes) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    walk(roots, media, |e| match e {
        Event::File(f) => {
            f.path.hash(&mut h);
            f.size.hash(&mut h);
            f.mtime_ns().hash(&mut h);
        }
        Event::Problem(p) => p.path.hash(&mut h),
    });
    h.finish()
}
