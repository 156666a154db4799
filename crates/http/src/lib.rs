//! The HTTP client the two HTTP backends (`imb-gcs`, `imb-immich`) share: a reqwest
//! builder with extra certificate authorities added to the system's roots
//! ([`with_ca_certs`]), the full text of a transport error ([`transport`]), and
//! TLS verification failures told apart from transient ones ([`tls_failure`]): a
//! retry meets the same certificate, so they are never retried.
//!
//! Verification is never switched off; a private CA is trusted by naming it.

pub mod body;

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

/// The TLS verification failure behind a transport error, if that is what it is:
/// rustls's reason, and which certificate the server presented and who issued it
/// (rustls's reason names neither, and "UnknownIssuer" alone does not say which CA
/// to trust).
pub fn tls_failure(e: &reqwest::Error) -> Option<String> {
    let why = std::error::Error::source(e).and_then(find_tls)?;
    Some(match e.url().and_then(presented) {
        Some(cert) => format!("{why}; the server presented {cert}"),
        None => why,
    })
}

/// The subject and issuer of the certificate the server at `url` presents, read
/// by a second handshake that only records it. Blocking, bounded by a short
/// timeout: it runs once, on a failure that ends the run.
fn presented(url: &reqwest::Url) -> Option<String> {
    use std::io::Write;
    use std::net::ToSocketAddrs;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    let host = url
        .host_str()?
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = url.port_or_known_default()?;
    let name = rustls::pki_types::ServerName::try_from(host.to_owned()).ok()?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let seen = Arc::new(Recorder {
        chain: Mutex::new(None),
        schemes: provider
            .signature_verification_algorithms
            .supported_schemes(),
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .ok()?
        .dangerous()
        .with_custom_certificate_verifier(seen.clone())
        .with_no_client_auth();
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).ok()?;
    let addr = (host, port).to_socket_addrs().ok()?.next()?;
    let timeout = Duration::from_secs(3);
    let mut sock = std::net::TcpStream::connect_timeout(&addr, timeout).ok()?;
    sock.set_read_timeout(Some(timeout)).ok()?;
    sock.set_write_timeout(Some(timeout)).ok()?;
    // The recorder refuses the certificate, so the handshake ends in an error
    // once it has been seen.
    let _ = conn.complete_io(&mut sock);
    let _ = sock.flush();
    let der = seen.chain.lock().ok()?.take()?;
    describe(&der)
}

/// "CN=host, issued by CN=Some CA" from a DER certificate.
fn describe(der: &[u8]) -> Option<String> {
    use x509_cert::der::Decode;
    let cert = x509_cert::Certificate::from_der(der).ok()?;
    let tbs = &cert.tbs_certificate;
    Some(format!("\"{}\", issued by \"{}\"", tbs.subject, tbs.issuer))
}

/// A verifier that keeps the server's certificate and trusts nothing.
#[derive(Debug)]
struct Recorder {
    chain: std::sync::Mutex<Option<Vec<u8>>>,
    schemes: Vec<rustls::SignatureScheme>,
}

impl rustls::client::danger::ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _name: &rustls::pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        if let Ok(mut c) = self.chain.lock() {
            *c = Some(end_entity.to_vec());
        }
        Err(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer,
        ))
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &rustls::pki_types::CertificateDer<'_>,
        _dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("only records".into()))
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &rustls::pki_types::CertificateDer<'_>,
        _dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("only records".into()))
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.schemes.clone()
    }
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
