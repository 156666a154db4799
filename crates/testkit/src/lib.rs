//! What the tests need and the product must not ship: real GCS emulators and a
//! fault-injecting proxy in front of them ([`gcs`]), a test Immich server with
//! scripted faults ([`immich`]), the real Immich server ([`real_immich`]), and helpers for programs a test writes and runs
//! ([`exec`]). A dev-dependency only; it exposes ports, URLs, paths and what the
//! servers recorded, never a product type, so no crate under test ever sees a
//! second copy of itself. Each crate's tests build their clients from these.
//!
//! Every server listens on 127.0.0.1 on a free port and is stopped on drop;
//! readiness is the server's own signal (a log line, a bound listener), never a
//! timer.

pub mod exec;
pub mod fixtures;
pub mod gcs;
mod http;
pub mod immich;
pub mod measure;
pub mod ping;
pub mod prometheus;
pub mod real_immich;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;

/// Where `cargo xtask test` installs the emulators, `@immich/cli` and Node.
pub fn tools_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/tools")
}

/// A port free on 127.0.0.1 now (the listener is closed before it returns).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// One HTTP/1.1 request to 127.0.0.1:`port` over a fresh connection,
/// `Connection: close`, read to the end: the status and the body (de-chunked).
pub fn http_request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).expect("write");
    s.write_all(body).expect("write");
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("read");
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = String::from_utf8_lossy(&out[..split]).to_lowercase();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let mut rest = &out[split + 4..];
    if !head.contains("transfer-encoding: chunked") {
        return (status, rest.to_vec());
    }
    let mut body = Vec::new();
    while let Some(nl) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(
            String::from_utf8_lossy(&rest[..nl])
                .split(';')
                .next()
                .unwrap_or("0")
                .trim(),
            16,
        )
        .unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = nl + 2;
        body.extend_from_slice(&rest[start..(start + size).min(rest.len())]);
        rest = rest.get(start + size + 2..).unwrap_or(&[]);
    }
    (status, body)
}
