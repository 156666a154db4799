//! What a put sends: bytes in memory, or a range of an open file.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use bytes::Bytes;

/// The body of a put. A file payload holds an open descriptor and reads with
/// positional reads, so a backend can re-read from any offset when it retries or
/// resumes, and a rename or delete of the source path cannot swap the bytes.
#[derive(Debug, Clone)]
pub enum Payload {
    /// Bytes already in memory.
    Bytes(Bytes),
    /// The first `len` bytes of an open file.
    File {
        /// The open file, shared so the payload is cheap to clone.
        file: Arc<File>,
        /// How many bytes to send.
        len: u64,
    },
}

impl Payload {
    /// A payload of static bytes.
    pub fn from_static(b: &'static [u8]) -> Self {
        Payload::Bytes(Bytes::from_static(b))
    }

    /// The number of bytes the payload sends.
    pub fn len(&self) -> u64 {
        match self {
            Payload::Bytes(b) => b.len() as u64,
            Payload::File { len, .. } => *len,
        }
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A blocking reader over the payload starting at `offset`.
    pub fn reader(&self, offset: u64) -> PayloadReader {
        PayloadReader {
            payload: self.clone(),
            pos: offset.min(self.len()),
        }
    }
}

impl From<Bytes> for Payload {
    fn from(b: Bytes) -> Self {
        Payload::Bytes(b)
    }
}

impl From<Vec<u8>> for Payload {
    fn from(b: Vec<u8>) -> Self {
        Payload::Bytes(Bytes::from(b))
    }
}

/// A blocking [`Read`] over a [`Payload`]. A file that has shrunk since the
/// payload was made is an `UnexpectedEof` error, not a short object.
#[derive(Debug)]
pub struct PayloadReader {
    payload: Payload,
    pos: u64,
}

impl Read for PayloadReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let remaining = self.payload.len() - self.pos;
        let want = buf
            .len()
            .min(usize::try_from(remaining).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = match &self.payload {
            Payload::Bytes(b) => {
                let start = self.pos as usize;
                buf[..want].copy_from_slice(&b[start..start + want]);
                want
            }
            Payload::File { file, .. } => {
                let n = file.read_at(&mut buf[..want], self.pos)?;
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "file shrank while being read",
                    ));
                }
                n
            }
        };
        self.pos += n as u64;
        Ok(n)
    }
}
