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

use std::io::Write;

use flate2::write::DeflateEncoder;
use flate2::{Compression, Crc};

/// A gzip header: deflate, no name or comment, no modification time, unknown OS.
pub(crate) const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

/// One chunk, deflated: the bytes to append and the CRC of the input.
#[derive(Debug)]
pub(crate) struct Piece {
    pub(crate) data: Vec<u8>,
    pub(crate) crc: Crc,
}

/// Deflates `input` as the next piece of a stream; `last` finishes the stream.
///
/// flate2's encoder does the flushing (a sync flush, then draining until no
/// output is pending). The backend is zlib-rs: miniz_oxide 0.9's sync flush
/// dropped the tail of some pieces (the `gzip_pieces_round_trip` regression).
pub(crate) fn deflate_piece(input: &[u8], level: u32, last: bool) -> Piece {
    let mut crc = Crc::new();
    crc.update(input);
    let out = Vec::with_capacity(input.len() / 3 + 1024);
    let mut enc = DeflateEncoder::new(out, Compression::new(level));
    // Writing to and flushing into a Vec cannot fail.
    let written = enc
        .write_all(input)
        .and_then(|()| if last { enc.try_finish() } else { enc.flush() });
    written.expect("deflating into memory cannot fail");
    // Taken before the drop, which would finish the stream into it.
    let data = std::mem::take(enc.get_mut());
    Piece { data, crc }
}

/// The gzip trailer for a stream whose pieces' CRCs were combined into `crc`.
pub(crate) fn trailer(crc: &Crc) -> [u8; 8] {
    let mut t = [0u8; 8];
    t[..4].copy_from_slice(&crc.sum().to_le_bytes());
    // ISIZE is the input length modulo 2^32, which is what `amount` keeps.
    t[4..].copy_from_slice(&crc.amount().to_le_bytes());
    t
}
