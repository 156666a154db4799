//! Files that are placeholders of a sync client (the seed's "skip assets not on
//! device"): reading one makes the client download it, possibly gigabytes on a
//! metered link. Told without reading a byte of content, by what the common
//! clients leave:
//! * the Nextcloud/ownCloud desktop client's virtual files keep
//!   `user.nextcloud.hydrate_exec` (its xattr mode);
//! * a Windows share (OneDrive, iCloud, Dropbox "online-only" files, seen over
//!   SMB) shows the file's DOS attributes as `user.cifs.dosattrib`, where
//!   `OFFLINE`, `RECALL_ON_OPEN` or `RECALL_ON_DATA_ACCESS` mark a placeholder;
//! * otherwise a non-empty file with no allocated blocks is a placeholder when it
//!   is more than ten minutes old (a file being written may not be allocated
//!   yet) and larger than a block (small files can live inline in metadata).
//!
//! rclone mounts and other FUSE file systems that report blocks for data they
//! have not fetched cannot be told this way; their files are read as any other.

use std::path::Path;
use std::time::{Duration, SystemTime};

/// How old an unallocated file must be before it counts as a placeholder.
pub(crate) const SETTLE: Duration = Duration::from_secs(10 * 60);

/// Files up to this size may have no blocks of their own (inline data).
const INLINE_MAX: u64 = 4096;

/// Windows' attributes that mean "the content is elsewhere".
const FILE_ATTRIBUTE_OFFLINE: u32 = 0x1000;
const FILE_ATTRIBUTE_RECALL_ON_OPEN: u32 = 0x4_0000;
const FILE_ATTRIBUTE_RECALL_ON_DATA_ACCESS: u32 = 0x40_0000;

/// Why `path` (of `size` bytes and `blocks` 512-byte blocks, modified at
/// `mtime`) is a placeholder, if it is one.
pub(crate) fn placeholder(
    path: &Path,
    size: u64,
    blocks: u64,
    mtime: SystemTime,
    now: SystemTime,
) -> Option<&'static str> {
    if xattr(path, "user.nextcloud.hydrate_exec").is_some() {
        return Some("a Nextcloud virtual file");
    }
    if let Some(v) = xattr(path, "user.cifs.dosattrib")
        && dos_attributes(&v).is_some_and(|a| {
            a & (FILE_ATTRIBUTE_OFFLINE
                | FILE_ATTRIBUTE_RECALL_ON_OPEN
                | FILE_ATTRIBUTE_RECALL_ON_DATA_ACCESS)
                != 0
        })
    {
        return Some("offline on the Windows share");
    }
    let settled = now.duration_since(mtime).is_ok_and(|age| age > SETTLE);
    (size > INLINE_MAX && blocks == 0 && settled).then_some("no data on this disk")
}

/// An extended attribute's value; `None` when absent or unsupported (reading
/// an attribute never reads the file's content).
fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = [0u8; 64];
    let n = rustix::fs::getxattr(path, name, &mut buf[..]).ok()?;
    Some(buf.get(..n)?.to_vec())
}

/// CIFS shows DOS attributes as text, `0x…`.
pub(crate) fn dos_attributes(v: &[u8]) -> Option<u32> {
    let s = std::str::from_utf8(v).ok()?.trim_end_matches('\0').trim();
    let hex = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"))?;
    u32::from_str_radix(hex, 16).ok()
}
