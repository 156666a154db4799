//! Client settings: the server's API root, the API key (from a file or the
//! environment, never the command line), the API version override, timeouts and
//! the retry policy.

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use crate::{Error, Result, RetryPolicy};

/// An Immich API key. `Debug` and `Display` never show it; it leaves this crate
/// only as a sensitive `x-api-key` header value.
#[derive(Clone)]
pub struct ApiKey(Arc<str>);

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

impl ApiKey {
    /// A key from a string (surrounding whitespace is dropped). `origin` names where
    /// it came from, for error messages.
    ///
    /// # Errors
    /// [`Error::ApiKey`] if the key is empty or is not printable ASCII (it travels
    /// as an HTTP header). The message never quotes the key.
    pub fn new(key: &str, origin: &str) -> Result<ApiKey> {
        let key = key.trim();
        if key.is_empty() {
            return Err(Error::ApiKey {
                origin: origin.to_owned(),
                message: "the key is empty".into(),
            });
        }
        if !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Error::ApiKey {
                origin: origin.to_owned(),
                message: "the key has characters other than printable ASCII".into(),
            });
        }
        Ok(ApiKey(Arc::from(key)))
    }

    /// The key in the file at `path` (its first line; a trailing newline is fine).
    ///
    /// # Errors
    /// [`Error::ApiKey`] if the file cannot be read or holds no key.
    pub fn from_file(path: &Path) -> Result<ApiKey> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| Error::ApiKey {
            origin: origin.clone(),
            message: format!("cannot read the file: {e}"),
        })?;
        ApiKey::new(text.lines().next().unwrap_or(""), &origin)
    }

    /// The key in the environment variable `var`.
    ///
    /// # Errors
    /// [`Error::ApiKey`] if the variable is unset, not UTF-8, or empty.
    pub fn from_env(var: &str) -> Result<ApiKey> {
        let origin = format!("${var}");
        let value = std::env::var(var).map_err(|e| Error::ApiKey {
            origin: origin.clone(),
            message: match e {
                std::env::VarError::NotPresent => "not set".into(),
                std::env::VarError::NotUnicode(_) => "not valid UTF-8".into(),
            },
        })?;
        ApiKey::new(&value, &origin)
    }

    pub(crate) fn header(&self) -> reqwest::header::HeaderValue {
        let mut v = reqwest::header::HeaderValue::from_str(&self.0)
            .expect("checked to be printable ASCII when the key was made");
        v.set_sensitive(true);
        v
    }
}

/// Which generation of the Immich API a server speaks, as far as this client cares.
///
/// * `V2` (Immich 1.x and 2.x): `POST /assets` requires `deviceAssetId` and
///   `deviceId`; `duration` is a `H:MM:SS.ffffff` string.
/// * `V3` (Immich 3.x): those two fields are gone (unknown form fields are ignored);
///   `duration` is an integer of milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ApiVersion {
    /// Immich 1.x and 2.x.
    V2,
    /// Immich 3.x and later.
    V3,
}

impl ApiVersion {
    /// The generation a server of this major version speaks.
    pub fn for_major(major: u64) -> ApiVersion {
        if major >= 3 {
            ApiVersion::V3
        } else {
            ApiVersion::V2
        }
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ApiVersion::V2 => "v2",
            ApiVersion::V3 => "v3",
        })
    }
}

impl FromStr for ApiVersion {
    type Err = Error;
    fn from_str(s: &str) -> Result<ApiVersion> {
        match s.trim().to_ascii_lowercase().as_str() {
            "v2" | "2" => Ok(ApiVersion::V2),
            "v3" | "3" => Ok(ApiVersion::V3),
            other => Err(Error::InvalidConfig {
                setting: "api",
                message: format!("{other:?} is not an API version (v2 or v3)"),
            }),
        }
    }
}

/// Settings for an [`crate::ImmichClient`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientConfig {
    /// The API root, e.g. `https://photos.example.org/api`. A URL without a path
    /// (or with a path not ending in `/api`) gets `/api` appended.
    pub base_url: String,
    /// The key sent as `x-api-key`.
    pub api_key: ApiKey,
    /// Use this API generation instead of asking `GET /server/version`.
    pub api: Option<ApiVersion>,
    /// How failed requests are retried.
    pub retry: RetryPolicy,
    /// Longest wait for the connection to open.
    pub connect_timeout: Duration,
    /// Longest silence while reading a response (and while a slow server reads an upload).
    pub read_timeout: Duration,
    /// PEM files of certificate authorities to trust besides the system's (a
    /// server behind a private CA). Verification is never switched off.
    pub ca_certs: Vec<std::path::PathBuf>,
}

impl ClientConfig {
    /// Settings with the default timeouts and retry policy.
    pub fn new(base_url: impl Into<String>, api_key: ApiKey) -> ClientConfig {
        ClientConfig {
            base_url: base_url.into(),
            api_key,
            api: None,
            retry: RetryPolicy::default(),
            connect_timeout: Duration::from_secs(20),
            read_timeout: Duration::from_secs(300),
            ca_certs: Vec::new(),
        }
    }

    /// Use `api` instead of asking the server (the `--api v2|v3` override).
    pub fn with_api(mut self, api: Option<ApiVersion>) -> ClientConfig {
        self.api = api;
        self
    }

    /// Use this retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> ClientConfig {
        self.retry = retry;
        self
    }

    /// The normalised API root without a trailing slash.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] unless the URL is `http://` or `https://` with a host.
    pub fn api_root(&self) -> Result<String> {
        let given = self.base_url.trim();
        let bad = |message: &str| Error::InvalidConfig {
            setting: "server url",
            message: format!("{given:?}: {message}"),
        };
        // The scheme first, so that "http://" is said to lack a host.
        let scheme = ["https://", "http://"]
            .into_iter()
            .find(|s| given.starts_with(s))
            .ok_or_else(|| bad("must start with http:// or https://"))?;
        let rest = given[scheme.len()..].trim_end_matches('/');
        if rest.is_empty() || rest.starts_with('/') {
            return Err(bad("has no host"));
        }
        let url = &format!("{scheme}{rest}");
        if url.contains(['?', '#']) || url.chars().any(char::is_whitespace) {
            return Err(bad("must not have a query, fragment or spaces"));
        }
        if url.ends_with("/api") {
            Ok(url.to_owned())
        } else {
            Ok(format!("{url}/api"))
        }
    }
}
