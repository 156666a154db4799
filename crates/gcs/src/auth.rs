//! Bearer tokens, from gcp_auth or nowhere (emulators).

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

use crate::Error;

const SCOPE: &str = "https://www.googleapis.com/auth/devstorage.read_write";

/// Supplies the bearer token for each request. A trait so tests (and embedders
/// with their own token plumbing) can supply one without the metadata server.
#[async_trait]
pub trait TokenSource: Send + Sync + fmt::Debug {
    /// The current token, or `None` to send no `Authorization` header.
    ///
    /// # Errors
    /// A message safe to log (no token, no key).
    async fn token(&self) -> Result<Option<String>, String>;

    /// Called after the server rejected a token (401): drop any cached token so
    /// the next [`TokenSource::token`] gets a fresh one.
    async fn refresh(&self) {}
}

/// Where tokens come from.
#[non_exhaustive]
pub enum Credentials {
    /// No auth (an emulator).
    None,
    /// A gcp_auth provider: a service-account key, the metadata server, or gcloud.
    Provider(Refreshing),
}

/// A gcp_auth provider that can be rebuilt: gcp_auth caches a token until it
/// expires, so after a 401 the only way to a fresh one is a fresh provider.
pub struct Refreshing {
    /// The key JSON, for a service account (kept to rebuild the provider; never printed).
    key: Option<String>,
    current: tokio::sync::RwLock<Arc<dyn gcp_auth::TokenProvider>>,
}

impl Refreshing {
    async fn rebuild(&self) -> Result<(), String> {
        let fresh: Arc<dyn gcp_auth::TokenProvider> = match &self.key {
            Some(json) => Arc::new(
                gcp_auth::CustomServiceAccount::from_json(json)
                    .map_err(|_| "service-account key no longer parses".to_owned())?,
            ),
            None => gcp_auth::provider()
                .await
                .map_err(|e| format!("cannot reload credentials: {e}"))?,
        };
        *self.current.write().await = fresh;
        Ok(())
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        match self {
            Credentials::None => f.write_str("Credentials::None"),
            Credentials::Provider(_) => f.write_str("Credentials::Provider(..)"),
        }
    }
}

fn bad_key(source_name: &'static str) -> Error {
    // gcp_auth's parse errors can quote the input; say what is expected instead.
    Error::Credentials {
        source_name,
        message:
            "not a valid service-account key (JSON with type, private_key, client_email, token_uri)"
                .into(),
    }
}

impl Credentials {
    /// A service-account key given as JSON text.
    ///
    /// # Errors
    /// [`Error::Credentials`] naming `source_name`, without quoting the key.
    pub fn from_json(source_name: &'static str, json: &str) -> Result<Self, Error> {
        let sa =
            gcp_auth::CustomServiceAccount::from_json(json).map_err(|_| bad_key(source_name))?;
        Ok(Credentials::Provider(Refreshing {
            key: Some(json.to_owned()),
            current: tokio::sync::RwLock::new(Arc::new(sa)),
        }))
    }

    /// A service-account key file.
    ///
    /// # Errors
    /// [`Error::Credentials`] naming `source_name` and the path, without quoting the key.
    pub fn from_file(source_name: &'static str, path: &str) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Credentials {
            source_name,
            message: format!("{path}: {e}"),
        })?;
        Self::from_json(source_name, &text).map_err(|_| Error::Credentials {
            source_name,
            message: format!("{path}: not a valid service-account key (JSON with type, private_key, client_email, token_uri)"),
        })
    }

    /// gcp_auth's default chain: metadata server (workload identity), gcloud.
    ///
    /// # Errors
    /// [`Error::Credentials`] when none is available.
    pub async fn default_chain() -> Result<Self, Error> {
        let p = gcp_auth::provider().await.map_err(|e| Error::Credentials {
            source_name: "default",
            message: format!(
                "no Google credentials found (set GOOGLE_APPLICATION_CREDENTIALS or GCS_CREDENTIALS, or run with workload identity): {e}"
            ),
        })?;
        Ok(Credentials::Provider(Refreshing {
            key: None,
            current: tokio::sync::RwLock::new(p),
        }))
    }
}

#[async_trait]
impl TokenSource for Credentials {
    async fn token(&self) -> Result<Option<String>, String> {
        match self {
            Credentials::None => Ok(None),
            Credentials::Provider(p) => {
                let provider = p.current.read().await.clone();
                provider
                    .token(&[SCOPE])
                    .await
                    .map(|t| Some(t.as_str().to_owned()))
                    .map_err(|e| format!("cannot get an access token: {e}"))
            }
        }
    }

    async fn refresh(&self) {
        if let Credentials::Provider(p) = self
            && let Err(e) = p.rebuild().await
        {
            tracing::warn!(error = %e, "could not refresh credentials");
        }
    }
}
