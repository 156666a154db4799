//! device-sync against a server whose certificate comes from a private CA
//! (certificates made here with openssl, served by `openssl s_server` on 127.0.0.1).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::util::{bin, clean_env, code};

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA (`ca.pem`) and a certificate for 127.0.0.1 it signed (`srv.pem`, `srv.key`).
fn private_ca(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=imb test private CA",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "srv.key",
            "-out",
            "srv.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "srv.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "srv.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    );
}

/// `openssl s_server` on a free port, answering any request with its status page.
struct TlsServer {
    child: Child,
    port: u16,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(dir: &Path) -> TlsServer {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new("openssl")
        .args([
            "s_server",
            "-accept",
            &format!("127.0.0.1:{port}"),
            "-cert",
            "srv.pem",
            "-key",
            "srv.key",
            "-www",
        ])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Ready when it says so.
    let out = child.stdout.take().unwrap();
    let mut lines = BufReader::new(out).lines();
    let ready = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|l| l.contains("ACCEPT"));
    assert!(ready, "s_server did not start");
    std::thread::spawn(move || lines.for_each(drop));
    TlsServer { child, port }
}

fn sync(t: &Path, port: u16) -> Command {
    let root = t.join("DCIM");
    std::fs::create_dir_all(root.join("Camera")).unwrap();
    std::fs::write(root.join("Camera/a.jpg"), b"\xff\xd8\xff\xe0 a photo").unwrap();
    let mut c = Command::new(bin("device-sync"));
    clean_env(&mut c);
    c.env("IMMICH_API_KEY", "k")
        .env("RUST_LOG", "info")
        .env_remove("SSL_CERT_FILE")
        .env_remove("SSL_CERT_DIR")
        .arg("--server")
        .arg(format!("https://127.0.0.1:{port}"))
        .arg("--root")
        .arg(&root)
        .arg("--state-dir")
        .arg(t.join("state"))
        .arg("--json");
    c
}

#[test]
fn an_untrusted_certificate_fails_at_once_and_says_how_to_trust_it() {
    let t = tempfile::tempdir().unwrap();
    private_ca(t.path());
    let server = serve(t.path());

    // Untrusted: exit 1 without a single retry, naming the cause and the remedies.
    let out = sync(t.path(), server.port).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(code(&out), 1, "{stderr}");
    assert!(
        !stderr.contains("retrying"),
        "a certificate error is permanent: {stderr}"
    );
    let err: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let err = err["error"].as_str().unwrap();
    assert!(
        err.contains("certificate is not trusted") && err.contains("UnknownIssuer"),
        "{err}"
    );
    // Which certificate, and which CA to trust.
    assert!(
        err.contains("\"CN=127.0.0.1\", issued by \"CN=imb test private CA\""),
        "{err}"
    );
    assert!(
        err.contains("--ca-cert") && err.contains("SSL_CERT_FILE"),
        "{err}"
    );

    // Trusted with --ca-cert, and with SSL_CERT_FILE: TLS passes (the status page
    // s_server answers with is no Immich, which is the error now).
    let ca = t.path().join("ca.pem");
    let out = sync(t.path(), server.port)
        .arg("--ca-cert")
        .arg(&ca)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(!text.contains("certificate"), "{text}");
    let out = sync(t.path(), server.port)
        .env("SSL_CERT_FILE", &ca)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(!text.contains("certificate"), "{text}");
}

/// `GCS_CA_CERT` names the CA for a `gs://` endpoint behind a TLS-intercepting
/// proxy; a file that is not PEM is a setting error naming it, before any request.
#[test]
fn a_bad_gcs_ca_cert_is_named() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("upload");
    crate::util::library(&src, 2, 100);
    let bad = t.path().join("not-a-cert.pem");
    std::fs::write(&bad, "not PEM").unwrap();
    let mut c = crate::util::backup();
    c.env("STORAGE_EMULATOR_HOST", "127.0.0.1:1")
        .env("GCS_CA_CERT", &bad)
        .arg("--source")
        .arg(&src)
        .args(["--dest", "gs://bk1/n", "--json"]);
    let out = c.output().unwrap();
    assert_eq!(code(&out), 1);
    let err = String::from_utf8_lossy(&out.stdout);
    assert!(
        err.contains("GCS_CA_CERT") && err.contains("not-a-cert.pem"),
        "{err}"
    );
}

/// A `gs://` endpoint whose certificate does not verify: exit 1 at once, naming
/// the certificate and `GCS_CA_CERT`, from `backup` (its first request writes the
/// lock) and `restore-verify` (its first lists manifests); with `GCS_CA_CERT` the
/// handshake passes.
#[test]
fn an_untrusted_gcs_endpoint_fails_at_once_and_gcs_ca_cert_trusts_it() {
    let t = tempfile::tempdir().unwrap();
    private_ca(t.path());
    let server = serve(t.path());
    let src = t.path().join("upload");
    crate::util::library(&src, 2, 100);
    let endpoint = format!("https://127.0.0.1:{}", server.port);
    let mut backup = crate::util::backup();
    backup
        .arg("--source")
        .arg(&src)
        .args(["--dest", "gs://bk1/n", "--no-database", "--json"]);
    let mut verify = crate::util::restore_verify();
    verify.args(["--from", "gs://bk1/n", "--json"]);
    for mut c in [backup, verify] {
        c.env("STORAGE_EMULATOR_HOST", &endpoint)
            .env_remove("SSL_CERT_FILE")
            .env_remove("SSL_CERT_DIR");
        let out = c.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(code(&out), 1, "{stderr}");
        assert!(!stderr.contains("retrying"), "{stderr}");
        let err = String::from_utf8_lossy(&out.stdout);
        assert!(
            err.contains("certificate is not trusted")
                && err.contains("issued by \\\"CN=imb test private CA\\\"")
                && err.contains("GCS_CA_CERT"),
            "{err}"
        );
    }

    // Trusted: the listing is answered by s_server's status page, which is no GCS:
    // that is the error now, not the certificate.
    let mut c = crate::util::restore_verify();
    c.env("STORAGE_EMULATOR_HOST", &endpoint)
        .env("GCS_CA_CERT", t.path().join("ca.pem"))
        .args(["--from", "gs://bk1/n", "--json"]);
    let out = c.output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(code(&out), 1, "{text}");
    assert!(
        text.contains("unreadable response") && !text.contains("certificate"),
        "{text}"
    );
}
