//! The test server's HTTP/1.1 layer: keep-alive connections on std threads,
//! `Content-Length` and chunked request bodies, `Expect: 100-continue`, scripted
//! faults, an answer before the body is read (Immich's checksum short-circuit), and
//! a log of every request.

use std::io::{self, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::EarlyAnswer;
use super::api::Api;
use crate::http::{Head, read_body, read_head};

/// A request as the server saw it, and how it was answered.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Seen {
    /// Sequence number over the server's life, from 0.
    pub n: usize,
    /// Method.
    pub method: String,
    /// Path and query.
    pub target: String,
    /// Headers, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The declared `Content-Length` (`None` for chunked or no body).
    pub content_length: Option<u64>,
    /// Status sent (0 when the connection was cut without an answer).
    pub status: u16,
    /// Whether the server read the body before answering.
    pub body_read_before_answer: bool,
    /// Body bytes read in all (after the answer too, when draining).
    pub body_bytes_read: u64,
    /// The fault the script chose.
    pub fault: Fault,
}

impl Seen {
    /// A header's value (`name` lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The path without the query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or(&self.target)
    }
}

/// What the server does with a request, chosen by the fault script.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Handle it normally.
    Serve,
    /// Read the body, then answer with this status (a 5xx burst, a 429) without
    /// handling the request.
    Status(u16),
    /// Close the connection right after the request head: a reset, nothing handled.
    Reset,
    /// Read half the body, then close the connection: a reset mid-upload.
    ResetMidBody,
    /// Wait this long, then handle it: a slow response.
    Delay(Duration),
    /// Handle it (an upload is stored), then close without answering: the answer
    /// is lost on the way back.
    LoseResponse,
}

/// The script: request (status not yet known) → fault.
pub(crate) type Script = dyn Fn(&Seen) -> Fault + Send + Sync;

/// An answer to send.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
}

impl Answer {
    pub(crate) fn json(status: u16, v: &serde_json::Value) -> Answer {
        Answer {
            status,
            body: v.to_string().into_bytes(),
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

fn write_answer(w: &mut TcpStream, a: &Answer, close: bool) -> io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\nConnection: {}\r\n\r\n",
        a.status,
        reason(a.status),
        a.body.len(),
        if close { "close" } else { "keep-alive" }
    )
    .into_bytes();
    out.extend_from_slice(&a.body);
    w.write_all(&out)?;
    w.flush()
}

/// Everything a connection thread needs.
pub(crate) struct Conn {
    pub(crate) api: Arc<Api>,
    pub(crate) script: Option<Arc<Script>>,
    pub(crate) counter: Arc<AtomicUsize>,
    pub(crate) log: Arc<Mutex<Vec<Seen>>>,
    pub(crate) early: EarlyAnswer,
}

impl Conn {
    fn record(&self, seen: Seen) {
        self.log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(seen);
    }

    fn update(&self, n: usize, f: impl FnOnce(&mut Seen)) {
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = log.iter_mut().rev().find(|s| s.n == n) {
            f(s);
        }
    }

    /// Serves requests on `stream` until the client closes it or a fault cuts it.
    pub(crate) fn serve(&self, stream: TcpStream) {
        let Ok(read_half) = stream.try_clone() else {
            return;
        };
        let mut reader = BufReader::new(read_half);
        let mut w = stream;
        while let Ok(Some(head)) = read_head(&mut reader) {
            if !self.one(&head, &mut reader, &mut w) {
                let _ = w.shutdown(Shutdown::Both);
                return;
            }
        }
    }

    /// Handles one request; `false` means the connection is finished.
    fn one(&self, head: &Head, reader: &mut BufReader<TcpStream>, w: &mut TcpStream) -> bool {
        let mut seen = Seen {
            n: self.counter.fetch_add(1, Ordering::SeqCst),
            method: head.method.clone(),
            target: head.target.clone(),
            headers: head.headers.clone(),
            content_length: if head.chunked() {
                None
            } else {
                head.content_length()
            },
            status: 0,
            body_read_before_answer: false,
            body_bytes_read: 0,
            fault: Fault::Serve,
        };
        let fault = self.script.as_ref().map_or(Fault::Serve, |s| s(&seen));
        seen.fault = fault.clone();
        let close = head.wants_close();
        match fault {
            Fault::Reset => {
                self.record(seen);
                return false;
            }
            Fault::ResetMidBody => {
                let half = head.content_length().unwrap_or(0) / 2;
                let mut buf = vec![0u8; usize::try_from(half).unwrap_or(0)];
                let _ = reader.read_exact(&mut buf);
                seen.body_bytes_read = half;
                self.record(seen);
                return false;
            }
            Fault::Status(code) => {
                let n = read_body(reader, head, None);
                seen.body_bytes_read = n.as_ref().copied().unwrap_or(0);
                seen.body_read_before_answer = true;
                seen.status = code;
                let a = self.api.error(code, "injected fault");
                // Logged before answering, so a client that has its answer finds it logged.
                self.record(seen);
                return n.is_ok() && write_answer(w, &a, close).is_ok() && !close;
            }
            Fault::Delay(d) => std::thread::sleep(d), // the fault is the latency itself
            Fault::Serve | Fault::LoseResponse => {}
        }
        let expects_continue = head
            .header("expect")
            .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
        if let Some(a) = self.api.early(&head.method, seen.path(), &head.headers) {
            seen.status = a.status;
            // With `Expect: 100-continue` the client may never send the body: close.
            let drain = self.early == EarlyAnswer::Drain && !expects_continue && !close;
            let n = seen.n;
            self.record(seen);
            let sent = write_answer(w, &a, !drain).is_ok();
            if drain && sent {
                let read = read_body(reader, head, None);
                self.update(n, |s| {
                    s.body_bytes_read = read.as_ref().copied().unwrap_or(0)
                });
                return read.is_ok();
            }
            // Stop reading: the unread body makes the kernel reset the connection.
            let _ = w.shutdown(Shutdown::Write);
            return false;
        }
        if expects_continue && w.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").is_err() {
            self.record(seen);
            return false;
        }
        let mut body = Vec::new();
        match read_body(reader, head, Some(&mut body)) {
            Ok(n) => seen.body_bytes_read = n,
            Err(_) => {
                seen.body_bytes_read = body.len() as u64;
                self.record(seen);
                return false;
            }
        }
        seen.body_read_before_answer = true;
        let a = self
            .api
            .handle(&head.method, &head.target, &head.headers, &body);
        if seen.fault == Fault::LoseResponse {
            self.record(seen);
            return false;
        }
        seen.status = a.status;
        self.record(seen);
        write_answer(w, &a, close).is_ok() && !close
    }
}
