//! Journals and deltas travel gzip-compressed: SQLite pages of a few changed rows
//! are mostly empty, and the hashes and paths of many rows still halve.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read};
use std::path::Path;

use crate::{Error, Result};

/// What a compressed journal may expand to, beyond [`MAX_RATIO`] × its size: an
/// empty journal is a few KiB of SQLite pages that compress fifty-fold.
const FLOOR: u64 = 16 << 20;
/// Real journals compress 2–5×, empty pages more; a gzip bomb expands a thousand-fold.
const MAX_RATIO: u64 = 32;

fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Writes `src` gzip-compressed to `dest` (replaced), synced.
///
/// # Errors
/// [`Error::Io`] naming the file.
pub fn pack(src: &Path, dest: &Path) -> Result<u64> {
    let mut input = File::open(src).map_err(io(src))?;
    let out = File::create(dest).map_err(io(dest))?;
    let mut gz = flate2::write::GzEncoder::new(BufWriter::new(out), flate2::Compression::new(6));
    std::io::copy(&mut input, &mut gz).map_err(io(src))?;
    let out = gz
        .finish()
        .and_then(|w| w.into_inner().map_err(std::io::IntoInnerError::into_error))
        .map_err(io(dest))?;
    out.sync_all().map_err(io(dest))?;
    out.metadata().map(|m| m.len()).map_err(io(dest))
}

/// Writes the journal downloaded to `src` as a plain SQLite file at `dest`: it is
/// gunzipped when it starts with gzip's magic (older journals were not), and
/// refused once it expands past 16 MiB + 32 × its size, which no journal this
/// program wrote does (`src` came from the target).
///
/// # Errors
/// [`Error::Io`] naming the file; [`Error::Untrusted`] for a file that expands too far.
pub fn unpack(src: &Path, dest: &Path) -> Result<()> {
    let mut f = File::open(src).map_err(io(src))?;
    let len = f.metadata().map_err(io(src))?.len();
    let mut magic = [0u8; 2];
    let gz = f.read_exact(&mut magic).is_ok() && magic == [0x1f, 0x8b];
    drop(f);
    if !gz {
        std::fs::copy(src, dest).map_err(io(dest))?;
        return Ok(());
    }
    let limit = FLOOR + MAX_RATIO.saturating_mul(len);
    let input = File::open(src).map_err(io(src))?;
    let mut gz = flate2::read::MultiGzDecoder::new(BufReader::new(input)).take(limit + 1);
    let mut out = BufWriter::new(File::create(dest).map_err(io(dest))?);
    let n = std::io::copy(&mut gz, &mut out).map_err(io(src))?;
    if n > limit {
        drop(out);
        let _ = std::fs::remove_file(dest);
        return Err(Error::Untrusted {
            path: src.display().to_string(),
            reason: format!("expands past {limit} bytes, more than a journal of its size holds"),
        });
    }
    out.into_inner()
        .map_err(std::io::IntoInnerError::into_error)
        .and_then(|f| f.sync_all())
        .map_err(io(dest))
}
