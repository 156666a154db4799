//! Backend settings.

use std::sync::Arc;
use std::time::Duration;

use crate::{Credentials, Error, RetryPolicy, TokenSource};

/// The public endpoint.
pub const DEFAULT_ENDPOINT: &str = "https://storage.googleapis.com";

/// What a [`crate::GcsStore`] talks to and how.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct GcsConfig {
    /// The bucket.
    pub bucket: String,
    /// Object-name prefix inside the bucket (no leading or trailing `/`), or empty.
    pub prefix: String,
    /// Scheme and authority of the API, e.g. `https://storage.googleapis.com`.
    pub endpoint: String,
    /// Where bearer tokens come from (none for an emulator).
    pub tokens: Arc<dyn TokenSource>,
    /// Files larger than this go as resumable uploads.
    pub resumable_threshold: u64,
    /// Resumable chunk size; a multiple of 256 KiB.
    pub chunk_size: usize,
    /// Retry policy.
    pub retry: RetryPolicy,
    /// Most time one request may take without progress.
    pub timeout: Duration,
    /// Concurrent requests over reused connections (the pool size).
    pub max_idle_per_host: usize,
    /// PEM files of certificate authorities to trust besides the system's (an
    /// endpoint behind a TLS-intercepting proxy; `GCS_CA_CERT`).
    pub ca_certs: Vec<std::path::PathBuf>,
}

/// Splits `gs://bucket[/prefix]`.
///
/// # Errors
/// [`Error::InvalidConfig`] naming `--dest` for anything else.
pub fn parse_gs_url(url: &str) -> Result<(String, String), Error> {
    let rest = url
        .strip_prefix("gs://")
        .ok_or_else(|| Error::InvalidConfig {
            key: "dest",
            message: format!("{url:?} is not a gs:// URL"),
        })?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let valid = (3..=222).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b));
    if !valid {
        return Err(Error::InvalidConfig {
            key: "dest",
            message: format!("{bucket:?} is not a valid bucket name"),
        });
    }
    Ok((bucket.to_owned(), prefix.trim_matches('/').to_owned()))
}

impl GcsConfig {
    /// Settings for `bucket` on the public endpoint with `tokens`.
    pub fn new(bucket: impl Into<String>, tokens: Arc<dyn TokenSource>) -> Self {
        GcsConfig {
            bucket: bucket.into(),
            prefix: String::new(),
            endpoint: DEFAULT_ENDPOINT.into(),
            tokens,
            resumable_threshold: 16 * 1024 * 1024,
            chunk_size: 16 * 1024 * 1024,
            retry: RetryPolicy::default(),
            timeout: Duration::from_secs(120),
            max_idle_per_host: 32,
            ca_certs: Vec::new(),
        }
    }

    /// Settings from the environment, for `gs://bucket[/prefix]` (the bucket may be
    /// empty in the URL, `gs://`, and come from `GCS_BUCKET`, the seed's Secret).
    /// `STORAGE_EMULATOR_HOST` points at an emulator and skips auth, as Google's
    /// client libraries do; `GCS_ENDPOINT` names another endpoint that is sent the
    /// credentials (a private endpoint or a proxy: `https://`, or `http://` on
    /// loopback only, since the token would travel in clear); credentials come from `GCS_CREDENTIALS` (the
    /// key JSON itself), `GOOGLE_APPLICATION_CREDENTIALS` (a path), or the default
    /// chain (metadata server, gcloud).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] or [`Error::Credentials`], never quoting a key.
    pub async fn from_env(url: &str) -> Result<Self, Error> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let url = if url == "gs://" || url == "gs:" {
            match env("GCS_BUCKET") {
                Some(b) => format!("gs://{b}"),
                None => {
                    return Err(Error::InvalidConfig {
                        key: "dest",
                        message: "gs:// without a bucket and GCS_BUCKET is not set".into(),
                    });
                }
            }
        } else {
            url.to_owned()
        };
        let (bucket, prefix) = parse_gs_url(&url)?;
        let (endpoint, tokens): (String, Arc<dyn TokenSource>) = match env("STORAGE_EMULATOR_HOST")
        {
            Some(host) => {
                let endpoint = if host.contains("://") {
                    host
                } else {
                    format!("http://{host}")
                };
                (
                    endpoint.trim_end_matches('/').to_owned(),
                    Arc::new(Credentials::None),
                )
            }
            None => {
                let creds = if let Some(json) = env("GCS_CREDENTIALS") {
                    Credentials::from_json("GCS_CREDENTIALS", &json)?
                } else if let Some(path) = env("GOOGLE_APPLICATION_CREDENTIALS") {
                    Credentials::from_file("GOOGLE_APPLICATION_CREDENTIALS", &path)?
                } else {
                    Credentials::default_chain().await?
                };
                let endpoint = match env("GCS_ENDPOINT") {
                    Some(e) => checked_endpoint(&e)?,
                    None => DEFAULT_ENDPOINT.into(),
                };
                (endpoint, Arc::new(creds))
            }
        };
        let mut c = GcsConfig::new(bucket, tokens);
        c.prefix = prefix;
        c.endpoint = endpoint;
        c.ca_certs = env("GCS_CA_CERT")
            .map(|v| std::env::split_paths(&v).collect())
            .unwrap_or_default();
        Ok(c)
    }
}

/// `GCS_ENDPOINT` as used: HTTPS, or plain HTTP to this machine only.
fn checked_endpoint(e: &str) -> Result<String, Error> {
    let e = e.trim_end_matches('/');
    let loopback = ["http://127.0.0.1", "http://localhost", "http://[::1]"]
        .iter()
        .any(|h| {
            e.strip_prefix(h).is_some_and(|rest| {
                rest.is_empty() || rest.starts_with(':') || rest.starts_with('/')
            })
        });
    if e.starts_with("https://") || loopback {
        Ok(e.to_owned())
    } else {
        Err(Error::InvalidConfig {
            key: "GCS_ENDPOINT",
            message: format!(
                "{e:?} must be an https:// URL (or http:// to 127.0.0.1, localhost or [::1]): the access token is sent to it"
            ),
        })
    }
}
