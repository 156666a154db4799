//! Request bodies that stream from the file instead of holding it: parts in
//! memory and ranges of a [`Payload`] read in pieces of [`PIECE`] bytes by a
//! blocking reader feeding a small channel, each piece paced by `--bwlimit` just
//! before it is handed to the connection. A retry asks for a fresh body, which
//! re-reads the range from the file: nothing is kept for it.

use std::io::{self, Read};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use imb_storage::Payload;
use imb_storage::pace::{PIECE, Pace};
use tokio::sync::mpsc;

/// Pieces buffered between the reader and the connection (1 MiB per request).
const DEPTH: usize = 4;

/// One part of a body.
#[derive(Debug, Clone)]
pub enum Part {
    /// Bytes in memory (headers, a small file already read).
    Bytes(Bytes),
    /// `len` bytes of a payload from `offset`.
    Range {
        /// The payload.
        payload: Payload,
        /// Where the range starts.
        offset: u64,
        /// Its length.
        len: u64,
    },
}

impl Part {
    /// A whole payload: its bytes, or its file streamed.
    pub fn payload(p: Payload) -> Part {
        match p {
            Payload::Bytes(b) => Part::Bytes(b),
            file => Part::Range {
                len: file.len(),
                payload: file,
                offset: 0,
            },
        }
    }

    fn len(&self) -> u64 {
        match self {
            Part::Bytes(b) => b.len() as u64,
            Part::Range { len, .. } => *len,
        }
    }
}

/// A body that can be made again for every attempt.
#[derive(Debug, Clone)]
pub struct Source {
    parts: Vec<Part>,
    pace: Option<Arc<Pace>>,
    read_error: Arc<Mutex<Option<io::Error>>>,
}

impl Source {
    /// A body of `parts`, sent at `pace` when given.
    pub fn new(parts: Vec<Part>, pace: Option<Arc<Pace>>) -> Source {
        Source {
            parts,
            pace,
            read_error: Arc::default(),
        }
    }

    /// Its length in bytes.
    pub fn len(&self) -> u64 {
        self.parts.iter().map(Part::len).sum()
    }

    /// Whether it has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A fresh body. Bytes that are all in memory and unpaced go as one buffer;
    /// anything else streams.
    pub fn body(&self) -> reqwest::Body {
        let in_memory = self.parts.iter().all(|p| matches!(p, Part::Bytes(_)));
        if in_memory && self.pace.is_none() {
            return match self.parts.as_slice() {
                [Part::Bytes(b)] => reqwest::Body::from(b.clone()),
                parts => {
                    let mut all = Vec::with_capacity(self.len() as usize);
                    for p in parts {
                        if let Part::Bytes(b) = p {
                            all.extend_from_slice(b);
                        }
                    }
                    reqwest::Body::from(all)
                }
            };
        }
        let (tx, rx) = mpsc::channel(DEPTH);
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.produce(&tx));
        reqwest::Body::wrap(ChannelBody {
            rx,
            remaining: self.len(),
        })
    }

    /// The local read error that ended the last body early, if one did: "the file
    /// could not be read" rather than "the network failed".
    pub fn take_read_error(&self) -> Option<io::Error> {
        self.read_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    /// Sends every part into `tx` in pieces. Stops quietly when the receiver is
    /// gone (the request was abandoned).
    fn produce(&self, tx: &mpsc::Sender<io::Result<Bytes>>) {
        let send = |b: Bytes| {
            if let Some(p) = &self.pace {
                p.acquire(b.len() as u64);
            }
            tx.blocking_send(Ok(b)).is_ok()
        };
        for part in &self.parts {
            match part {
                Part::Bytes(b) => {
                    for at in (0..b.len()).step_by(PIECE) {
                        if !send(b.slice(at..b.len().min(at + PIECE))) {
                            return;
                        }
                    }
                }
                Part::Range {
                    payload,
                    offset,
                    len,
                } => {
                    let mut reader = payload.reader(*offset);
                    let mut sent = 0u64;
                    while sent < *len {
                        let want = PIECE.min(usize::try_from(len - sent).unwrap_or(PIECE));
                        let mut buf = vec![0u8; want];
                        if let Err(e) = reader.read_exact(&mut buf) {
                            let e = match e.kind() {
                                io::ErrorKind::UnexpectedEof => {
                                    io::Error::new(e.kind(), "file shrank while being uploaded")
                                }
                                _ => e,
                            };
                            return self.fail(tx, e);
                        }
                        sent += want as u64;
                        if !send(Bytes::from(buf)) {
                            return;
                        }
                    }
                }
            }
        }
    }

    fn fail(&self, tx: &mpsc::Sender<io::Result<Bytes>>, e: io::Error) {
        let copy = io::Error::new(e.kind(), e.to_string());
        *self.read_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
        let _ = tx.blocking_send(Err(copy));
    }
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
