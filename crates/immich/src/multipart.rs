//! The `multipart/form-data` body of `POST /assets`, written by hand: text fields
//! first, then the file parts, with a known `Content-Length`. A file payload is
//! streamed from its open descriptor by a blocking reader feeding a small channel,
//! so a 4 GB video never sits in memory and a retry re-reads from the start.
//!
//! Order matters to Immich: it decides whether a file part is acceptable while the
//! part streams in, using the `filename` field if that arrived earlier.

use std::io::{self, Read};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Frame, SizeHint};
use imb_storage::Payload;
use tokio::sync::mpsc;

/// Bytes read from a file per chunk.
const CHUNK: usize = 256 * 1024;
/// Chunks buffered between the reader and the connection.
const DEPTH: usize = 4;

enum Segment {
    Bytes(Bytes),
    Payload(Payload),
}

/// A form being built.
pub(crate) struct Form {
    boundary: String,
    segments: Vec<Segment>,
    head: BytesMut,
    len: u64,
}

/// WHATWG's escaping of names in `Content-Disposition` (what browsers and undici do).
fn quote(s: &str) -> String {
    s.replace('"', "%22")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

impl Form {
    pub(crate) fn new(boundary: String) -> Form {
        Form {
            boundary,
            segments: Vec::new(),
            head: BytesMut::new(),
            len: 0,
        }
    }

    fn push_text(&mut self, s: &str) {
        self.head.extend_from_slice(s.as_bytes());
    }

    fn flush_head(&mut self) {
        if !self.head.is_empty() {
            let b = self.head.split().freeze();
            self.len += b.len() as u64;
            self.segments.push(Segment::Bytes(b));
        }
    }

    /// A text field.
    pub(crate) fn text(&mut self, name: &str, value: &str) {
        let b = &self.boundary;
        let s = format!(
            "--{b}\r\nContent-Disposition: form-data; name=\"{}\"\r\n\r\n{value}\r\n",
            quote(name)
        );
        self.push_text(&s);
    }

    /// A file part.
    pub(crate) fn file(&mut self, name: &str, filename: &str, payload: Payload) {
        let b = &self.boundary;
        let s = format!(
            "--{b}\r\nContent-Disposition: form-data; name=\"{}\"; filename=\"{}\"\r\nContent-Type: application/octet-stream\r\n\r\n",
            quote(name),
            quote(filename)
        );
        self.push_text(&s);
        self.flush_head();
        self.len += payload.len();
        match payload {
            Payload::Bytes(bytes) => self.segments.push(Segment::Bytes(bytes)),
            file @ Payload::File { .. } => self.segments.push(Segment::Payload(file)),
        }
        self.push_text("\r\n");
    }

    /// Closes the form; returns it with its content type and length.
    pub(crate) fn finish(mut self) -> (Finished, String, u64) {
        let end = format!("--{}--\r\n", self.boundary);
        self.push_text(&end);
        self.flush_head();
        let ct = format!("multipart/form-data; boundary={}", self.boundary);
        let len = self.len;
        (
            Finished {
                segments: self.segments,
            },
            ct,
            len,
        )
    }
}

/// A closed form, ready to become a request body.
pub(crate) struct Finished {
    segments: Vec<Segment>,
}

/// Where the reader leaves a local read error, so the caller can tell "the file
/// could not be read" from "the network failed".
pub(crate) type ReadError = Arc<Mutex<Option<io::Error>>>;

impl Finished {
    /// The body. All-in-memory forms become one buffer; forms with a file stream.
    pub(crate) fn into_body(self, len: u64, read_error: ReadError) -> reqwest::Body {
        if self.segments.iter().all(|s| matches!(s, Segment::Bytes(_))) {
            let mut all = BytesMut::with_capacity(len as usize);
            for s in self.segments {
                if let Segment::Bytes(b) = s {
                    all.extend_from_slice(&b);
                }
            }
            return reqwest::Body::from(all.freeze());
        }
        let (tx, rx) = mpsc::channel(DEPTH);
        let segments = self.segments;
        tokio::task::spawn_blocking(move || produce(segments, &tx, &read_error));
        reqwest::Body::wrap(ChannelBody { rx, remaining: len })
    }
}

/// Sends every segment into `tx`, reading files in chunks. Stops quietly when the
/// receiver is gone (the request was abandoned).
fn produce(segments: Vec<Segment>, tx: &mpsc::Sender<io::Result<Bytes>>, slot: &ReadError) {
    for seg in segments {
        match seg {
            Segment::Bytes(b) => {
                if tx.blocking_send(Ok(b)).is_err() {
                    return;
                }
            }
            Segment::Payload(p) => {
                let total = p.len();
                let mut reader = p.reader(0);
                let mut sent = 0u64;
                while sent < total {
                    let want = CHUNK.min(usize::try_from(total - sent).unwrap_or(CHUNK));
                    let mut buf = vec![0u8; want];
                    let mut filled = 0;
                    while filled < want {
                        match reader.read(&mut buf[filled..]) {
                            Ok(0) => {
                                let e = io::Error::new(
                                    io::ErrorKind::UnexpectedEof,
                                    "file shrank while being uploaded",
                                );
                                return fail(tx, slot, e);
                            }
                            Ok(n) => filled += n,
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                            Err(e) => return fail(tx, slot, e),
                        }
                    }
                    sent += want as u64;
                    if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                        return;
                    }
                }
            }
        }
    }
}

fn fail(tx: &mpsc::Sender<io::Result<Bytes>>, slot: &ReadError, e: io::Error) {
    let copy = io::Error::new(e.kind(), e.to_string());
    *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
    let _ = tx.blocking_send(Err(copy));
}

/// An `http_body::Body` over the reader's channel, with an exact size.
struct ChannelBody {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    remaining: u64,
}

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        match this.rx.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(b))) => {
                this.remaining = this.remaining.saturating_sub(b.len() as u64);
                Poll::Ready(Some(Ok(Frame::data(b))))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(None) if this.remaining > 0 => Poll::Ready(Some(Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "upload body ended early",
            )))),
            Poll::Ready(None) => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}
