//! What an upload says about a file beyond its bytes: the capture time (EXIF
//! `DateTimeOriginal` with its offset, from JPEG, HEIC/HEIF, PNG, WebP and
//! TIFF-based raws, read by kamadak-exif; the `mvhd` creation time for
//! MP4/QuickTime videos; else the file's modification time), a video's duration
//! (`mvhd`), and the `.xmp` sidecar next to it. Everything is read with
//! positional reads from the descriptor the upload streams from, so what is
//! uploaded is what was looked at. The server extracts the capture time itself
//! too; what we send matters until its metadata job has run.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;

use exif::{In, Tag, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How much of a TIFF-based raw's start is parsed for EXIF (its IFDs are near
/// the start; the parser would otherwise read the whole file).
const HEAD: usize = 256 * 1024;

/// The most read from any image to find its EXIF: a HEIC's Exif item may sit
/// after other items, a PNG's eXIf chunk after the picture data; past this the
/// file times are sent.
const EXIF_READ_LIMIT: u64 = 64 << 20;

/// Seconds from 1904-01-01 (QuickTime's epoch) to 1970-01-01.
const QT_EPOCH_OFFSET: u64 = 2_082_844_800;

/// The times and duration to send with an upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MediaInfo {
    /// `fileCreatedAt`: RFC 3339 with a zone.
    pub(crate) created_at: String,
    /// `fileModifiedAt`: RFC 3339 with a zone.
    pub(crate) modified_at: String,
    /// A video's duration, when its container says so cheaply.
    pub(crate) duration: Option<Duration>,
}

/// RFC 3339 in UTC with milliseconds (`2024-05-01T10:00:00.000Z`).
pub(crate) fn rfc3339(t: SystemTime) -> String {
    imb_immich::rfc3339(t)
}

/// Reads what an upload needs from the open `file` (of `len` bytes, modified at
/// `mtime`). `video` says whether to look for a QuickTime/MP4 header.
pub(crate) fn inspect(file: &File, len: u64, mtime: SystemTime, video: bool) -> MediaInfo {
    let modified_at = rfc3339(mtime);
    let mut created_at = None;
    let mut duration = None;
    if video {
        if let Some((d, created)) = mp4_header(file, len) {
            duration = d;
            created_at = created.map(rfc3339);
        }
    } else {
        created_at = file_exif(file, len, exif_datetime);
    }
    MediaInfo {
        created_at: created_at.unwrap_or_else(|| modified_at.clone()),
        modified_at,
        duration,
    }
}

fn read_full_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    file.read_exact_at(buf, offset)
}

/// The sidecar of `media`: `IMG.jpg.xmp`, else `IMG.xmp` (either case of `xmp`).
pub(crate) fn sidecar_of(media: &Path) -> Option<PathBuf> {
    let name = media.file_name()?.to_string_lossy().into_owned();
    let stem = media.file_stem()?.to_string_lossy().into_owned();
    for base in [name, stem] {
        for ext in ["xmp", "XMP"] {
            let p = media.with_file_name(format!("{base}.{ext}"));
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

// ---- EXIF ----

/// Positional reads from the descriptor the upload streams from (its cursor is
/// not moved), at most `end` bytes into the file: a device's file may be built
/// to make a parser read (and allocate) without end.
struct At<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl Read for At<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.end.saturating_sub(self.pos);
        let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
        if n == 0 {
            return Ok(0);
        }
        let got = self.file.read_at(&mut buf[..n], self.pos)?;
        self.pos += got as u64;
        Ok(got)
    }
}

impl Seek for At<'_> {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let base = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.end.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = base.ok_or_else(|| std::io::Error::other("seek out of range"))?;
        Ok(self.pos)
    }
}

/// The EXIF of a JPEG, HEIC/HEIF/AVIF, PNG, WebP or TIFF-based raw, what of it
/// parses.
fn read_exif<R: BufRead + Seek>(r: &mut R) -> Option<exif::Exif> {
    let mut head = [0u8; 4];
    r.read_exact(&mut head).ok()?;
    r.rewind().ok()?;
    let mut reader = exif::Reader::new();
    reader.continue_on_error(true);
    // A TIFF-based raw is read whole by the parser: its IFDs are near the start,
    // so the first HEAD bytes are what is parsed (entries beyond are dropped).
    let parsed = if head.starts_with(b"II*\0") || head.starts_with(b"MM\0*") {
        let mut buf = Vec::new();
        r.take(HEAD as u64).read_to_end(&mut buf).ok()?;
        reader.read_raw(buf)
    } else {
        reader.read_from_container(r)
    };
    parsed.or_else(|e| e.distill_partial_result(|_| {})).ok()
}

/// The open `file`'s EXIF, read positionally and at most [`EXIF_READ_LIMIT`] deep.
fn file_exif<'f, T>(
    file: &'f File,
    len: u64,
    f: impl FnOnce(&mut BufReader<At<'f>>) -> Option<T>,
) -> Option<T> {
    let at = At {
        file,
        pos: 0,
        end: len.min(EXIF_READ_LIMIT),
    };
    f(&mut BufReader::with_capacity(64 * 1024, at))
}

/// The capture time from the EXIF of a JPEG, HEIC/HEIF/AVIF, PNG, WebP or
/// TIFF-based raw, as RFC 3339: `DateTimeOriginal` with `OffsetTimeOriginal`
/// (else `DateTimeDigitized`, else IFD0's `DateTime`, each with its own offset).
/// EXIF times without an offset are local times of an unknown zone; they are
/// sent as UTC (a documented approximation: Immich re-reads EXIF itself).
pub(crate) fn exif_datetime<R: BufRead + Seek>(r: &mut R) -> Option<String> {
    let exif = read_exif(r)?;
    let ascii = |tag: Tag| -> Option<String> {
        match &exif.get_field(tag, In::PRIMARY)?.value {
            Value::Ascii(v) => Some(String::from_utf8_lossy(v.first()?).trim().to_owned()),
            _ => None,
        }
    };
    let (when, offset, subsec) = [
        (
            Tag::DateTimeOriginal,
            Tag::OffsetTimeOriginal,
            Tag::SubSecTimeOriginal,
        ),
        (
            Tag::DateTimeDigitized,
            Tag::OffsetTimeDigitized,
            Tag::SubSecTimeDigitized,
        ),
        (Tag::DateTime, Tag::OffsetTime, Tag::SubSecTime),
    ]
    .into_iter()
    .find_map(|(t, o, s)| Some((ascii(t)?, ascii(o), ascii(s))))?;
    format_exif(&when, offset.as_deref(), subsec.as_deref())
}

/// Apple's live-photo content identifier and, for a video, its duration: what
/// pairs a still with its motion video. The still's is in its Apple MakerNote
/// (tag 0x0011, exiftool's `MediaGroupUUID`), the video's in its QuickTime
/// `keys` (`com.apple.quicktime.content.identifier`).
pub(crate) fn live_info(file: &File, len: u64, video: bool) -> (Option<String>, Option<Duration>) {
    if video {
        let duration = mp4_header(file, len).and_then(|(d, _)| d);
        return (quicktime_content_id(file, len), duration);
    }
    let id = file_exif(file, len, read_exif).and_then(|exif| {
        match &exif.get_field(Tag::MakerNote, In::PRIMARY)?.value {
            Value::Undefined(mn, _) => apple_content_id(mn),
            _ => None,
        }
    });
    (id, None)
}

/// Tag 0x0011 of an Apple MakerNote (`Apple iOS\0`, a version, the byte order,
/// then an IFD whose offsets count from the MakerNote's start).
pub(crate) fn apple_content_id(mn: &[u8]) -> Option<String> {
    if !mn.starts_with(b"Apple iOS\0") {
        return None;
    }
    let little = match mn.get(12..14)? {
        b"II" => true,
        b"MM" => false,
        _ => return None,
    };
    let u16_at = |i: usize| -> Option<u16> {
        let b: [u8; 2] = mn.get(i..i + 2)?.try_into().ok()?;
        Some(if little {
            u16::from_le_bytes(b)
        } else {
            u16::from_be_bytes(b)
        })
    };
    let u32_at = |i: usize| -> Option<usize> {
        let b: [u8; 4] = mn.get(i..i + 4)?.try_into().ok()?;
        usize::try_from(if little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
        .ok()
    };
    let n = usize::from(u16_at(14)?).min(512);
    (0..n).find_map(|k| {
        let e = 16 + k * 12;
        if u16_at(e)? != 0x0011 || u16_at(e + 2)? != 2 {
            return None;
        }
        let count = u32_at(e + 4)?;
        let start = if count <= 4 { e + 8 } else { u32_at(e + 8)? };
        let bytes = mn.get(start..start.checked_add(count)?)?;
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        let id = std::str::from_utf8(&bytes[..end]).ok()?.trim();
        (!id.is_empty()).then(|| id.to_owned())
    })
}

/// The key of a QuickTime movie's live-photo content identifier.
const QT_CONTENT_ID: &[u8] = b"com.apple.quicktime.content.identifier";

/// `moov/meta`'s `keys` and `ilst`: the value of [`QT_CONTENT_ID`].
fn quicktime_content_id(file: &File, len: u64) -> Option<String> {
    let (moov, moov_end) = find_box(file, 0, len, b"moov")?;
    let (meta, meta_end) = find_box(file, moov, moov_end, b"meta")?;
    // QuickTime's `meta` has no version/flags word; ISO's (MP4) has one.
    let mut first = [0u8; 4];
    read_full_at(file, &mut first, meta).ok()?;
    let meta = if first == [0; 4] { meta + 4 } else { meta };
    let read = |from: u64, to: u64| -> Option<Vec<u8>> {
        let n = usize::try_from(to.checked_sub(from)?).ok()?;
        // A device's file: a metadata box is small; a huge one is not read.
        if n > 1 << 20 {
            return None;
        }
        let mut b = vec![0u8; n];
        read_full_at(file, &mut b, from).ok()?;
        Some(b)
    };
    let (keys, keys_end) = find_box(file, meta, meta_end, b"keys")?;
    let keys = read(keys, keys_end)?;
    let be32 = |b: &[u8], i: usize| -> Option<usize> {
        usize::try_from(u32::from_be_bytes(b.get(i..i + 4)?.try_into().ok()?)).ok()
    };
    let count = be32(&keys, 4)?;
    let mut at = 8;
    let mut index = None;
    for k in 1..=count.min(4096) {
        let size = be32(&keys, at)?;
        if size < 8 {
            return None;
        }
        if keys.get(at + 8..at + size)? == QT_CONTENT_ID {
            index = Some(k);
            break;
        }
        at += size;
    }
    let index = u32::try_from(index?).ok()?.to_be_bytes();
    let (ilst, ilst_end) = find_box(file, meta, meta_end, b"ilst")?;
    let (item, item_end) = find_box(file, ilst, ilst_end, &index)?;
    let (data, data_end) = find_box(file, item, item_end, b"data")?;
    let d = read(data, data_end)?;
    // Type 1 is UTF-8; then a locale word, then the value.
    if be32(&d, 0)? != 1 {
        return None;
    }
    let id = std::str::from_utf8(d.get(8..)?)
        .ok()?
        .trim_end_matches('\0')
        .trim();
    (!id.is_empty()).then(|| id.to_owned())
}

/// `2024:05:01 10:00:00` (+ `+02:00`, + `12`) → `2024-05-01T10:00:00.120+02:00`.
fn format_exif(when: &str, offset: Option<&str>, subsec: Option<&str>) -> Option<String> {
    let b = when.as_bytes();
    if b.len() < 19 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let s = when.get(r)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())
            .flatten()
    };
    let (y, mo, d, h, mi, s) = (
        num(0..4)?,
        num(5..7)?,
        num(8..10)?,
        num(11..13)?,
        num(14..16)?,
        num(17..19)?,
    );
    if y < 1800 || !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60
    {
        return None;
    }
    let millis = subsec
        .filter(|s| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
        .map_or_else(
            || "000".to_owned(),
            |s| format!("{:0<3}", &s[..s.len().min(3)]),
        );
    let zone = match offset {
        Some(o)
            if o.len() == 6
                && (o.starts_with('+') || o.starts_with('-'))
                && o.as_bytes()[3] == b':'
                && o[1..3]
                    .bytes()
                    .chain(o[4..6].bytes())
                    .all(|c| c.is_ascii_digit()) =>
        {
            o.to_owned()
        }
        _ => "Z".to_owned(),
    };
    Some(format!(
        "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{millis}{zone}"
    ))
}

// ---- MP4 / QuickTime ----

/// Reads a box header at `pos`: (size, type, header length).
fn box_at(file: &File, pos: u64, end: u64) -> Option<(u64, [u8; 4], u64)> {
    if pos.checked_add(8)? > end {
        return None;
    }
    let mut h = [0u8; 16];
    let n = if pos + 16 <= end { 16 } else { 8 };
    read_full_at(file, &mut h[..n], pos).ok()?;
    let size32 = u32::from_be_bytes(h[0..4].try_into().ok()?);
    let kind: [u8; 4] = h[4..8].try_into().ok()?;
    let (size, header) = match size32 {
        0 => (end - pos, 8),
        1 if n == 16 => (u64::from_be_bytes(h[8..16].try_into().ok()?), 16),
        1 => return None,
        s => (u64::from(s), 8),
    };
    (size >= header && pos.checked_add(size)? <= end).then_some((size, kind, header))
}

fn find_box(file: &File, mut pos: u64, end: u64, want: &[u8; 4]) -> Option<(u64, u64)> {
    for _ in 0..10_000 {
        let (size, kind, header) = box_at(file, pos, end)?;
        if &kind == want {
            return Some((pos + header, pos + size));
        }
        pos += size;
    }
    None
}

/// `moov/mvhd`: the duration and the creation time, if set.
fn mp4_header(file: &File, len: u64) -> Option<(Option<Duration>, Option<SystemTime>)> {
    let (moov, moov_end) = find_box(file, 0, len, b"moov")?;
    let (mvhd, mvhd_end) = find_box(file, moov, moov_end, b"mvhd")?;
    let mut b = [0u8; 32];
    let avail = usize::try_from((mvhd_end - mvhd).min(32)).ok()?;
    read_full_at(file, &mut b[..avail], mvhd).ok()?;
    let be32 = |at: usize| -> Option<u64> {
        Some(u64::from(u32::from_be_bytes(
            b.get(at..at + 4)?.try_into().ok()?,
        )))
    };
    let be64 = |at: usize| -> Option<u64> {
        Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
    };
    let (created, timescale, duration) = match b[0] {
        0 if avail >= 20 => (be32(4)?, be32(12)?, be32(16)?),
        1 if avail >= 32 => (be64(4)?, be32(20)?, be64(24)?),
        _ => return None,
    };
    let duration = (timescale > 0 && duration > 0 && duration != u64::from(u32::MAX))
        .then(|| Duration::from_secs_f64(duration as f64 / timescale as f64));
    // Zero means "not set"; anything before 1971 is a camera with no clock.
    let created = created
        .checked_sub(QT_EPOCH_OFFSET)
        .filter(|&s| s > 365 * 86_400)
        .map(|s| UNIX_EPOCH + Duration::from_secs(s));
    Some((duration, created))
}

#[cfg(test)]
pub(crate) mod test_files {
    //! Builders of minimal JPEG (with EXIF) and MP4 files for tests.

    /// A JPEG whose EXIF says `DateTimeOriginal = when` (+ `OffsetTimeOriginal`),
    /// followed by `body` bytes.
    pub(crate) fn jpeg_with_exif(when: &str, offset: Option<&str>, body: &[u8]) -> Vec<u8> {
        // Little-endian TIFF: header, IFD0 with one entry (ExifIFD pointer), Exif IFD.
        let mut t: Vec<u8> = b"II*\0".to_vec();
        t.extend(8u32.to_le_bytes());
        // IFD0 at 8: 1 entry, next-IFD 0.
        t.extend(1u16.to_le_bytes());
        t.extend(0x8769u16.to_le_bytes());
        t.extend(4u16.to_le_bytes());
        t.extend(1u32.to_le_bytes());
        let exif_at = 8 + 2 + 12 + 4;
        t.extend((exif_at as u32).to_le_bytes());
        t.extend(0u32.to_le_bytes());
        // Exif IFD.
        let n: u16 = if offset.is_some() { 2 } else { 1 };
        let data_at = exif_at + 2 + usize::from(n) * 12 + 4;
        t.extend(n.to_le_bytes());
        t.extend(0x9003u16.to_le_bytes());
        t.extend(2u16.to_le_bytes());
        t.extend(20u32.to_le_bytes());
        t.extend((data_at as u32).to_le_bytes());
        if offset.is_some() {
            t.extend(0x9011u16.to_le_bytes());
            t.extend(2u16.to_le_bytes());
            t.extend(7u32.to_le_bytes());
            t.extend((data_at as u32 + 20).to_le_bytes());
        }
        t.extend(0u32.to_le_bytes());
        t.extend(when.as_bytes());
        t.push(0);
        if let Some(o) = offset {
            t.extend(o.as_bytes());
            t.push(0);
        }
        let mut out = vec![0xff, 0xd8, 0xff, 0xe1];
        out.extend(((t.len() + 8) as u16).to_be_bytes());
        out.extend(b"Exif\0\0");
        out.extend(t);
        out.extend([0xff, 0xda, 0x00, 0x02]);
        out.extend(body);
        out.extend([0xff, 0xd9]);
        out
    }

    /// An MP4 with `moov/mvhd` (version 0): `secs` long at timescale 1000,
    /// created `created_unix` seconds after 1970.
    pub(crate) fn mp4(secs: u32, created_unix: u64, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend(16u32.to_be_bytes());
        out.extend(b"ftypisom");
        out.extend(0u32.to_be_bytes());
        let mut mvhd = vec![0u8; 4];
        let qt = (created_unix + super::QT_EPOCH_OFFSET) as u32;
        mvhd.extend(qt.to_be_bytes());
        mvhd.extend(qt.to_be_bytes());
        mvhd.extend(1000u32.to_be_bytes());
        mvhd.extend((secs * 1000).to_be_bytes());
        mvhd.extend([0u8; 80]);
        let mvhd_box_len = 8 + mvhd.len();
        out.extend(((8 + mvhd_box_len) as u32).to_be_bytes());
        out.extend(b"moov");
        out.extend((mvhd_box_len as u32).to_be_bytes());
        out.extend(b"mvhd");
        out.extend(mvhd);
        out.extend(((8 + body.len()) as u32).to_be_bytes());
        out.extend(b"mdat");
        out.extend(body);
        out
    }
}
