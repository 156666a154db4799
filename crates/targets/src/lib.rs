//! Opens the store a URL-like setting names, with every capability that backend
//! has, so each binary chooses backends the same way (rustic's `choose.rs`).
//! Callers hand on only the capabilities each part of their work needs.
//!
//! * `/path`, `relative/path`, `file:///path`: [`imb_storage::LocalDir`];
//! * `gs://bucket[/prefix]` (or `gs://` with `GCS_BUCKET`): [`imb_gcs::GcsStore`],
//!   configured from the environment (`STORAGE_EMULATOR_HOST`, `GCS_CREDENTIALS`,
//!   `GOOGLE_APPLICATION_CREDENTIALS`, the metadata server).
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let dir = tempfile::tempdir().unwrap();
//! let t = imb_targets::open(dir.path().to_str().unwrap(), imb_targets::Options::default()).await.unwrap();
//! assert_eq!(t.kind, imb_targets::Kind::Local);
//! # });
//! ```

use std::path::PathBuf;
use std::sync::Arc;

use imb_gcs::{GcsConfig, GcsStore};
use imb_storage::{BackupStore, LocalDir, ObjectDelete, ObjectReplace};

/// Which backend a target is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kind {
    /// A local directory.
    Local,
    /// Google Cloud Storage.
    Gcs,
}

/// Adjustments applied while opening.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Options {
    /// Skip fsync on a local target (throwaway targets only).
    pub no_fsync: bool,
    /// Retries per request, for backends that retry.
    pub retries: Option<u32>,
    /// First retry wait.
    pub retry_initial: Option<std::time::Duration>,
}

impl Options {
    /// Options with these retry settings.
    pub fn with_retries(
        mut self,
        retries: Option<u32>,
        initial: Option<std::time::Duration>,
    ) -> Self {
        self.retries = retries;
        self.retry_initial = initial;
        self
    }

    /// Options with fsync off (or on).
    pub fn with_no_fsync(mut self, no_fsync: bool) -> Self {
        self.no_fsync = no_fsync;
        self
    }
}

/// An opened target.
#[non_exhaustive]
pub struct Target {
    /// Read and create.
    pub store: Arc<dyn BackupStore>,
    /// Overwrite, for convenience copies.
    pub replace: Arc<dyn ObjectReplace>,
    /// Delete, for database-dump retention.
    pub delete: Arc<dyn ObjectDelete>,
    /// Which backend.
    pub kind: Kind,
    /// The local directory, for a local target.
    pub local_path: Option<PathBuf>,
    retries: Box<dyn Fn() -> u64 + Send + Sync>,
    congestion: imb_storage::adaptive::Signal,
    usage: Box<dyn Fn() -> imb_cost::Usage + Send + Sync>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("store", &self.store)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl Target {
    /// Requests retried so far.
    pub fn retries(&self) -> u64 {
        (self.retries)()
    }

    /// Of those, retries after 429, 503 or a timeout: a count that only grows,
    /// for backing transfers in flight off (`imb_storage::adaptive`).
    pub fn congestion(&self) -> imb_storage::adaptive::Signal {
        self.congestion.clone()
    }

    /// The operations and bytes of the requests so far, by storage class, for a
    /// store that bills them (empty for a local directory).
    pub fn usage(&self) -> imb_cost::Usage {
        (self.usage)()
    }
}

/// Why a target could not be opened. Messages name the setting (`--dest` / `--from`
/// is the caller's to add) and never a credential.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The URL has a scheme we do not know.
    #[error("{0:?}: unknown scheme (use a path, file://PATH or gs://BUCKET[/PREFIX])")]
    UnknownScheme(String),
    /// The GCS backend could not be set up.
    #[error(transparent)]
    Gcs(#[from] imb_gcs::Error),
    /// The local directory could not be used.
    #[error(transparent)]
    Local(#[from] imb_storage::Error),
}

/// Opens `url`.
///
/// # Errors
/// [`Error`] naming what is wrong.
pub async fn open(url: &str, opts: Options) -> Result<Target, Error> {
    if url.starts_with("gs:") {
        let mut cfg = GcsConfig::from_env(url).await?;
        if let Some(n) = opts.retries {
            cfg.retry.max_retries = n;
        }
        if let Some(d) = opts.retry_initial {
            cfg.retry.initial = d;
            cfg.retry.jitter = cfg.retry.jitter.min(d);
        }
        let s = Arc::new(GcsStore::new(cfg)?);
        let (r, c, u) = (s.clone(), s.clone(), s.clone());
        return Ok(Target {
            store: s.clone(),
            replace: s.clone(),
            delete: s,
            kind: Kind::Gcs,
            local_path: None,
            retries: Box::new(move || r.retries()),
            congestion: imb_storage::adaptive::Signal(Arc::new(move || c.congestion())),
            usage: Box::new(move || u.usage()),
        });
    }
    let path = match url.strip_prefix("file://") {
        Some(p) => PathBuf::from(p),
        None if url.contains("://") => return Err(Error::UnknownScheme(url.to_owned())),
        None => PathBuf::from(url),
    };
    let dir = Arc::new(LocalDir::new(&path)?.with_fsync(!opts.no_fsync));
    Ok(Target {
        store: dir.clone(),
        replace: dir.clone(),
        delete: dir,
        kind: Kind::Local,
        local_path: Some(path),
        retries: Box::new(|| 0),
        congestion: imb_storage::adaptive::Signal(Arc::new(|| 0)),
        usage: Box::new(imb_cost::Usage::default),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn schemes() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().display());
        assert_eq!(
            open(&url, Options::default()).await.unwrap().kind,
            Kind::Local
        );
        let err = open("s3://bucket", Options::default()).await.unwrap_err();
        assert!(err.to_string().contains("unknown scheme"), "{err}");
        let err = open("gs://Bad!", Options::default()).await.unwrap_err();
        assert!(err.to_string().contains("dest"), "{err}");
    }
}
