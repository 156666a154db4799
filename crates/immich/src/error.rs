//! The crate's one error type, and the mapping from the server's answers to it.

use std::io;
use std::time::Duration;

/// Shorthand for results whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a call to the Immich server failed. Each variant names the endpoint or file
/// involved; none ever includes the API key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting is invalid (the server URL, a timeout).
    #[error("invalid setting {setting}: {message}")]
    InvalidConfig {
        /// The setting's name.
        setting: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The API key could not be loaded. The message never quotes the key.
    #[error("immich api key from {origin}: {message}")]
    ApiKey {
        /// Where the key was to come from (a file path or an environment variable).
        origin: String,
        /// What went wrong.
        message: String,
    },
    /// TLS verification of the server failed: permanent, never retried.
    #[error(
        "{endpoint}: the server's certificate is not trusted ({message}); trust its certificate \
         authority with device-sync --ca-cert FILE, with SSL_CERT_FILE=FILE, or in the system's \
         trust store (update-ca-certificates)"
    )]
    Tls {
        /// The request.
        endpoint: String,
        /// Why verification failed (rustls's reason).
        message: String,
    },
    /// The server refused the key (401), or the key lacks a permission (403).
    #[error("{endpoint}: not authorized (HTTP {status}): {message}")]
    Unauthorized {
        /// The request, e.g. `GET /users/me`.
        endpoint: String,
        /// 401 or 403.
        status: u16,
        /// What the server said.
        message: String,
    },
    /// The user's storage quota is used up: the server's "Quota has been exceeded!"
    /// answer, or the up-front check against `GET /users/me`.
    #[error("{file}: storage quota exceeded: {message}")]
    QuotaExceeded {
        /// The file whose upload was refused.
        file: String,
        /// What the server said.
        message: String,
    },
    /// The server does not accept this kind of file ("Unsupported file type …").
    #[error("{file}: unsupported file type: {message}")]
    UnsupportedFileType {
        /// The file.
        file: String,
        /// What the server said.
        message: String,
    },
    /// The album, asset or endpoint does not exist (404, or Immich's
    /// "Not found or no … access").
    #[error("{what}: not found: {message}")]
    NotFound {
        /// What was looked for.
        what: String,
        /// What the server said.
        message: String,
    },
    /// Any other refusal (4xx): the request will fail the same way again.
    #[error("{endpoint}: rejected (HTTP {status}): {message}")]
    Rejected {
        /// The request.
        endpoint: String,
        /// The status.
        status: u16,
        /// What the server said.
        message: String,
    },
    /// Network errors, 5xx and 429 that outlasted the retries (or were not retried
    /// because the request is not idempotent). Worth trying again later.
    #[error("{endpoint}: {message} (after {attempts} attempt(s) in {elapsed:.1?})")]
    Transient {
        /// The request.
        endpoint: String,
        /// The last failure.
        message: String,
        /// How many times the request was sent.
        attempts: u32,
        /// Time spent, retries included.
        elapsed: Duration,
        /// The underlying transport error, if any.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The server answered something this client does not understand.
    #[error("{endpoint}: unexpected response: {message}")]
    Protocol {
        /// The request.
        endpoint: String,
        /// What was wrong with the answer.
        message: String,
    },
    /// Reading a local file (the asset or its sidecar) failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// Whether the same request may succeed later (network trouble, 5xx, 429).
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Transient { .. })
    }

    /// Whether the server said the storage quota is used up.
    pub fn is_quota_exceeded(&self) -> bool {
        matches!(self, Error::QuotaExceeded { .. })
    }

    /// Whether the API key was refused or lacks a permission.
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, Error::Unauthorized { .. })
    }
}

/// The server's message for quota exhaustion (`asset-media.service.ts`, `requireQuota`).
pub(crate) const QUOTA_MESSAGE: &str = "Quota has been exceeded!";

/// The `message` of an Immich error body: a string, or (class-validator, v2) a list.
pub(crate) fn server_message(body: &str) -> String {
    let msg = match serde_json::from_str::<serde_json::Value>(body) {
        Ok(v) => match v.get("message") {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Array(items)) => items
                .iter()
                .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
                .collect::<Vec<_>>()
                .join("; "),
            _ => body.to_owned(),
        },
        Err(_) => body.to_owned(),
    };
    let msg = msg.trim();
    if msg.chars().count() > 300 {
        let cut: String = msg.chars().take(300).collect();
        format!("{cut}…")
    } else {
        msg.to_owned()
    }
}

/// Maps a non-success answer to an error. `endpoint` names the request, `file` the
/// asset being uploaded (if any), and `attempts`/`elapsed` say what retrying cost.
pub(crate) fn from_status(
    endpoint: &str,
    file: Option<&str>,
    status: u16,
    body: &str,
    attempts: u32,
    elapsed: Duration,
) -> Error {
    let message = server_message(body);
    let subject = || file.unwrap_or(endpoint).to_owned();
    match status {
        401 | 403 => Error::Unauthorized {
            endpoint: endpoint.to_owned(),
            status,
            message,
        },
        400 if message.contains(QUOTA_MESSAGE) => Error::QuotaExceeded {
            file: subject(),
            message,
        },
        400 if message.starts_with("Unsupported file type") => Error::UnsupportedFileType {
            file: subject(),
            message,
        },
        404 => Error::NotFound {
            what: endpoint.to_owned(),
            message,
        },
        400 if message.starts_with("Not found or no ") => Error::NotFound {
            what: endpoint.to_owned(),
            message,
        },
        s if imb_storage::retry::retryable_status(s) => Error::Transient {
            endpoint: endpoint.to_owned(),
            message: format!("HTTP {s}: {message}"),
            attempts,
            elapsed,
            source: None,
        },
        s => Error::Rejected {
            endpoint: endpoint.to_owned(),
            status: s,
            message,
        },
    }
}
