//! Google Cloud Storage as an `imb-storage` backend, on the JSON API over
//! reqwest with rustls (TLS verified).
//!
//! Design decisions:
//! * **Create-only is enforced by the store**: every create sends
//!   `ifGenerationMatch=0`, and a 412 becomes [`imb_storage::Error::AlreadyExists`].
//!   Resumable and streamed creates also check for the object first, because some
//!   emulators ignore the precondition there; real GCS enforces both.
//! * **Small files in one request, large files resumable**: up to
//!   `resumable_threshold` a file goes as one `uploadType=multipart` request with its
//!   metadata; above it, a resumable session in chunks that are multiples of
//!   256 KiB, resumed from the offset the server reports after a dropped
//!   connection, so a 5 GiB video never starts over after a blip.
//! * **Integrity**: the caller's CRC32C travels with every upload and GCS rejects
//!   bytes that do not match it.
//! * **Retries by the shared policy** ([`RetryPolicy`], `imb_storage::retry`):
//!   408, 429, 5xx and connection errors, exponential backoff with jitter,
//!   `Retry-After` honoured, only for requests that are idempotent
//!   (preconditions make creates idempotent).
//! * Errors name the bucket and object, never a token or key.

mod auth;
mod client;
mod config;
mod store;

pub use auth::{Credentials, TokenSource};
pub use config::{DEFAULT_ENDPOINT, GcsConfig, parse_gs_url};
pub use imb_storage::retry::RetryPolicy;
pub use store::GcsStore;

/// Why a GCS backend could not be set up. Request failures are `imb_storage::Error`s.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting is invalid.
    #[error("invalid setting {key}: {message}")]
    InvalidConfig {
        /// The setting's name.
        key: &'static str,
        /// What is wrong.
        message: String,
    },
    /// Credentials could not be loaded. The message never includes key material.
    #[error("google credentials ({source_name}): {message}")]
    Credentials {
        /// Where the credentials came from (an environment variable or "default").
        source_name: &'static str,
        /// What went wrong.
        message: String,
    },
    /// The HTTP client could not be built.
    #[error("http client: {0}")]
    Client(String),
}
