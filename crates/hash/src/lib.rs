//! Streaming digests of a byte stream: SHA-256, SHA-1, CRC32C and the length, in one pass.
//!
//! Each digest has its own consumer: SHA-256 is the backup's identity for an object (dedup
//! and "is this the same file" checks), SHA-1 is how Immich identifies assets, and CRC32C is
//! what Google Cloud Storage validates uploads with and reports in object metadata.
//!
//! The key design decision is that all of them are computed by **one** [`Hasher`] fed
//! from a single read of the bytes. Library files are large and read from slow disks or
//! network mounts, so the cost that matters is I/O; reading a file once and updating three
//! digests from the same buffer keeps hashing at one read per file no matter how many
//! digests a caller needs. [`Hasher`] implements [`std::io::Write`] so it can sit at the
//! end of [`std::io::copy`] or behind a tee while the same bytes are uploaded.
//!
//! ```
//! let d = imb_hash::digest(b"abc");
//! assert_eq!(
//!     d.sha256_hex(),
//!     "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
//! );
//! assert_eq!(d.sha1_hex(), "a9993e364706816aba3e25717850c26c9cd0d89d");
//! assert_eq!(d.len, 3);
//!
//! // Streaming gives the same answer as one-shot hashing.
//! let mut h = imb_hash::Hasher::new();
//! h.update(b"a");
//! h.update(b"bc");
//! assert_eq!(h.finish(), d);
//!
//! // Any reader works too, e.g. a file.
//! let from_reader = imb_hash::hash_reader(&b"abc"[..]).unwrap();
//! assert_eq!(from_reader, d);
//! ```

use std::fmt;
use std::io::{self, Read};

use sha1::Sha1;
use sha2::{Digest, Sha256};

#[cfg(test)]
mod tests;

/// Size of the read buffer used by [`hash_reader`].
///
/// 256 KiB amortises per-call overhead of `read` on slow filesystems while staying small
/// enough that one buffer per worker thread does not matter for memory.
pub const BUFFER_SIZE: usize = 256 * 1024;

/// The digests of one byte stream, as produced by [`Hasher::finish`] or [`digest`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Digests {
    /// SHA-256 of the bytes; the backup's identity for an object.
    pub sha256: [u8; 32],
    /// SHA-1 of the bytes; the checksum Immich identifies assets by.
    pub sha1: [u8; 20],
    /// CRC32C (Castagnoli) of the bytes; what Google Cloud Storage validates uploads with.
    pub crc32c: u32,
    /// Number of bytes hashed.
    pub len: u64,
}

impl Digests {
    /// The SHA-256 digest as 64 lowercase hex characters.
    pub fn sha256_hex(&self) -> String {
        hex(&self.sha256)
    }

    /// The SHA-1 digest as 40 lowercase hex characters.
    pub fn sha1_hex(&self) -> String {
        hex(&self.sha1)
    }

    /// The CRC32C in the form Google Cloud Storage reports it: the four bytes in big-endian
    /// order, encoded as standard base64 with padding (always 8 characters).
    pub fn crc32c_base64(&self) -> String {
        base64(&self.crc32c.to_be_bytes())
    }
}

/// Encodes bytes as lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// Decodes exactly `2 * N` hex characters (either case) into `N` bytes.
///
/// Returns `None` if the length is wrong or any character is not a hex digit.
pub fn parse_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let s = s.as_bytes();
    if s.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (byte, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        *byte = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Encodes bytes as standard base64 (RFC 4648 alphabet) with `=` padding.
///
/// Small enough to write here rather than pull in a crate for one 4-byte value.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        // A chunk of k bytes yields k + 1 significant characters; the rest is padding.
        for i in 0..4 {
            if i <= chunk.len() {
                let index = (n >> (18 - 6 * i)) & 0x3f;
                out.push(char::from(ALPHABET[index as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Incremental hasher computing every digest in [`Digests`] from one pass over the bytes.
///
/// Feed it with [`update`](Self::update) or through its [`io::Write`] implementation, then
/// call [`finish`](Self::finish). Cloning gives an independent hasher with the same state,
/// which is how a caller can take a digest of a prefix and keep going.
#[derive(Clone, Default)]
pub struct Hasher {
    sha256: Sha256,
    sha1: Sha1,
    crc32c: u32,
    len: u64,
}

impl Hasher {
    /// Creates a hasher that has seen no bytes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds `bytes` to every digest.
    pub fn update(&mut self, bytes: &[u8]) {
        self.sha256.update(bytes);
        self.sha1.update(bytes);
        self.crc32c = crc32c::crc32c_append(self.crc32c, bytes);
        // usize always fits in u64 on the platforms Rust supports.
        self.len += bytes.len() as u64;
    }

    /// Consumes the hasher and returns the digests of everything fed to it.
    pub fn finish(self) -> Digests {
        Digests {
            sha256: self.sha256.finalize().into(),
            sha1: self.sha1.finalize().into(),
            crc32c: self.crc32c,
            len: self.len,
        }
    }
}

impl fmt::Debug for Hasher {
    // The digest states are opaque and uninteresting; the byte count is what helps debugging.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hasher")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl io::Write for Hasher {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.update(buf);
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.update(buf);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Computes the digests of an in-memory byte slice.
pub fn digest(bytes: &[u8]) -> Digests {
    let mut hasher = Hasher::new();
    hasher.update(bytes);
    hasher.finish()
}

/// Reads `reader` to the end with a [`BUFFER_SIZE`] buffer and returns the digests of
/// everything read.
///
/// Reads that fail with [`io::ErrorKind::Interrupted`] are retried, as [`io::copy`] does.
///
/// # Errors
///
/// Returns the first other error the reader reports; the bytes read before it are lost.
pub fn hash_reader<R: Read>(mut reader: R) -> io::Result<Digests> {
    // On the heap: 256 KiB is too much to put on a worker thread's stack.
    let mut buf = vec![0u8; BUFFER_SIZE];
    let mut hasher = Hasher::new();
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return Ok(hasher.finish()),
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}
