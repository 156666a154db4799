//! Gzip in independent pieces, so several threads can compress one stream and the
//! result is still a single ordinary gzip member (`gzip -t`, `zcat`, Node's zlib and
//! every single-member decoder accept it).
//!
//! This is pigz's `--independent` mode: each chunk is deflated on its own (no
//! shared dictionary) and ended with a sync flush, which closes the last deflate
//! block on a byte boundary without marking it final, so the pieces concatenate
//! into one valid deflate stream; only the stream's last chunk is finished. The
//! CRC-32 of each chunk is computed alongside and the CRCs are combined in order
//! for the gzip trailer. Dropping the dictionary at 1 MiB boundaries costs well
//! under 0.1% of compression ratio.

use flate2::{Compress, Compression, Crc, FlushCompress, Status};

/// A gzip header: deflate, no name or comment, no modification time, unknown OS.
pub(crate) const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

/// One chunk, deflated: the bytes to append and the CRC of the input.
#[derive(Debug)]
pub(crate) struct Piece {
    pub(crate) data: Vec<u8>,
    pub(crate) crc: Crc,
}

/// Deflates `input` as the next piece of a stream; `last` finishes the stream.
pub(crate) fn deflate_piece(input: &[u8], level: u32, last: bool) -> Piece {
    let mut crc = Crc::new();
    crc.update(input);
    let mut c = Compress::new(Compression::new(level), false);
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let mut out = Vec::with_capacity(input.len() / 3 + 1024);
    loop {
        if out.capacity() - out.len() < 1024 {
            out.reserve(out.capacity().max(64 * 1024));
        }
        let consumed = usize::try_from(c.total_in()).unwrap_or(usize::MAX);
        let status = c
            .compress_vec(&input[consumed..], &mut out, flush)
            .expect("deflating into a buffer with room cannot fail");
        let all_in = usize::try_from(c.total_in()).unwrap_or(usize::MAX) == input.len();
        match status {
            Status::StreamEnd => break,
            // A flush is complete once all input is taken and the call left output
            // space unused (zlib's and miniz's rule: a full buffer may hide more).
            Status::Ok | Status::BufError if !last && all_in && out.len() < out.capacity() => {
                break;
            }
            Status::Ok | Status::BufError => {}
        }
    }
    Piece { data: out, crc }
}

/// The gzip trailer for a stream whose pieces' CRCs were combined into `crc`.
pub(crate) fn trailer(crc: &Crc) -> [u8; 8] {
    let mut t = [0u8; 8];
    t[..4].copy_from_slice(&crc.sum().to_le_bytes());
    // ISIZE is the input length modulo 2^32, which is what `amount` keeps.
    t[4..].copy_from_slice(&crc.amount().to_le_bytes());
    t
}
