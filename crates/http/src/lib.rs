//! The HTTP client the two HTTP backends (`imb-gcs`, `imb-immich`) share: a reqwest
//! builder with extra certificate authorities added to the system's roots
//! ([`with_ca_certs`]), the full text of a transport error ([`transport`]), and
//! TLS verification failures told apart from transient ones ([`tls_failure`]): a
//! retry meets the same certificate, so they are never retried.
//!
//! Verification is never switched off; a private CA is trusted by naming it.

use std::path::PathBuf;

/// Adds the PEM certificates in `paths` to the roots `builder` trusts, besides the
/// system's.
///
/// # Errors
/// The file and what is wrong with it (unreadable, not PEM certificates).
pub fn with_ca_certs(
    builder: reqwest::ClientBuilder,
    paths: &[PathBuf],
) -> Result<reqwest::ClientBuilder, String> {
    let mut roots = Vec::new();
    for path in paths {
        let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("{}: not PEM certificates: {e}", path.display()))?;
        if certs.is_empty() {
            return Err(format!("{}: no certificate in it", path.display()));
        }
        roots.extend(certs);
    }
    Ok(builder.tls_certs_merge(roots))
}

/// A transport error with every cause: reqwest's own text names the URL (never a
/// key: those travel in headers) and hides the cause.
pub fn transport(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(c) = src {
        let text = c.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        src = c.source();
    }
    s
}

/// The TLS verification failure behind a transport error, if that is what it is.
pub fn tls_failure(e: &reqwest::Error) -> Option<String> {
    std::error::Error::source(e).and_then(find_tls)
}

fn find_tls(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    if let Some(t) = e.downcast_ref::<rustls::Error>()
        && matches!(
            t,
            rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
        )
    {
        return Some(t.to_string());
    }
    // hyper-rustls nests the rustls error in io::Errors, whose `source` skips the
    // error they wrap: look inside each.
    if let Some(inner) = e
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
        && let Some(found) = find_tls(inner)
    {
        return Some(found);
    }
    e.source().and_then(find_tls)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_empty_ca_file_is_named() {
        let dir = std::env::temp_dir().join(format!("imb-http-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        for p in [dir.join("missing.pem"), empty] {
            let e =
                with_ca_certs(reqwest::Client::builder(), std::slice::from_ref(&p)).unwrap_err();
            assert!(e.contains(&p.display().to_string()), "{e}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
