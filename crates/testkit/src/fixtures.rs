//! Media files for tests: JPEG-shaped bytes (with EXIF dates where asked) and an
//! MP4 with a duration, distinct per seed, small enough to make by the hundred.

/// Distinct JPEG-looking bytes per `seed`.
pub fn jpg(seed: u32, len: usize) -> Vec<u8> {
    let mut v = vec![0xff, 0xd8, 0xff, 0xe0];
    v.extend(seed.to_le_bytes());
    v.extend((0..len).map(|i| (i as u32).wrapping_mul(seed | 1).rotate_right(3) as u8));
    v
}

/// A JPEG whose EXIF says DateTimeOriginal 2023:07:14 18:30:05, offset +02:00.
pub fn jpg_with_exif(seed: u32) -> Vec<u8> {
    let le16 = |v: u16| v.to_le_bytes();
    let le32 = |v: u32| v.to_le_bytes();
    let mut t: Vec<u8> = b"II*\0".to_vec();
    t.extend(le32(8));
    // IFD0: one entry, the Exif IFD pointer.
    t.extend(le16(1));
    t.extend(le16(0x8769));
    t.extend(le16(4));
    t.extend(le32(1));
    t.extend(le32(26));
    t.extend(le32(0));
    // Exif IFD at 26: DateTimeOriginal and OffsetTimeOriginal, values at 56.
    t.extend(le16(2));
    for (tag, count, at) in [(0x9003u16, 20u32, 56u32), (0x9011, 7, 76)] {
        t.extend(le16(tag));
        t.extend(le16(2));
        t.extend(le32(count));
        t.extend(le32(at));
    }
    t.extend(le32(0));
    t.extend(b"2023:07:14 18:30:05\0+02:00\0");
    let mut out = vec![0xff, 0xd8, 0xff, 0xe1];
    out.extend(((t.len() + 8) as u16).to_be_bytes());
    out.extend(b"Exif\0\0");
    out.extend(t);
    out.extend([0xff, 0xda, 0x00, 0x02]);
    out.extend(jpg(seed, 3000));
    out
}

/// An MP4 whose `mvhd` says 42 s.
pub fn mp4(seed: u32) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend(16u32.to_be_bytes());
    out.extend(b"ftypisom");
    out.extend(0u32.to_be_bytes());
    let mut mvhd = vec![0u8; 12];
    mvhd.extend(1000u32.to_be_bytes());
    mvhd.extend(42_000u32.to_be_bytes());
    mvhd.extend([0u8; 80]);
    out.extend(((16 + mvhd.len()) as u32).to_be_bytes());
    out.extend(b"moov");
    out.extend(((8 + mvhd.len()) as u32).to_be_bytes());
    out.extend(b"mvhd");
    out.extend(mvhd);
    let body = jpg(seed, 5000);
    out.extend(((8 + body.len()) as u32).to_be_bytes());
    out.extend(b"mdat");
    out.extend(body);
    out
}

/// Runs a media tool (ffmpeg, exiftool: `cargo xtask immich` installs both, the
/// real server needs them; heif-enc: `cargo xtask prepare`) and panics with its
/// output when it fails.
fn tool(program: &str, args: &[&str]) {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} (`cargo xtask immich` installs it): {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A real, decodable picture or video of one colour per `seed`, 64×48, made by
/// ffmpeg in the format `ext` names (`jpg`, `png`, `mp4`), so a real server can
/// make thumbnails of it.
fn real(seed: u32, ext: &str, extra: &[&str]) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(format!("f.{ext}"));
    let colour = format!(
        "color=c=0x{:06x}:s=64x48{}",
        seed.wrapping_mul(2_654_435_761) & 0xff_ffff,
        if ext == "mp4" { ":d=1:r=5" } else { "" }
    );
    let mut args = vec!["-loglevel", "error", "-f", "lavfi", "-i", &colour];
    args.extend_from_slice(extra);
    let p = path.to_str().expect("utf-8 temp path");
    args.extend_from_slice(&["-y", p]);
    tool("ffmpeg", &args);
    (dir, path)
}

/// A real JPEG; with `date` (`("2023:07:14 18:30:05", "+02:00")`) its EXIF has
/// that DateTimeOriginal and OffsetTimeOriginal.
pub fn real_jpg(seed: u32, date: Option<(&str, &str)>) -> Vec<u8> {
    let (_dir, path) = real(seed, "jpg", &["-frames:v", "1"]);
    if let Some((when, offset)) = date {
        let p = path.to_str().expect("utf-8 temp path");
        tool(
            "exiftool",
            &[
                "-q",
                "-overwrite_original",
                &format!("-DateTimeOriginal={when}"),
                &format!("-OffsetTimeOriginal={offset}"),
                p,
            ],
        );
    }
    std::fs::read(path).expect("read the picture")
}

/// A real picture in `ext`'s format (`jpg`, `png`, `heic`, `tif`) whose EXIF
/// says `DateTimeOriginal = when` and, when given, `OffsetTimeOriginal`,
/// written by exiftool into the container's own EXIF place (a HEIC's Exif item,
/// a PNG's eXIf chunk). A HEIC is encoded by libheif's `heif-enc` from a PNG.
pub fn real_dated(seed: u32, ext: &str, when: &str, offset: Option<&str>) -> Vec<u8> {
    let made = if ext == "heic" { "png" } else { ext };
    let (dir, mut path) = real(seed, made, &["-frames:v", "1"]);
    if ext == "heic" {
        let heic = dir.path().join("f.heic");
        let (from, to) = (
            path.to_str().expect("utf-8 temp path"),
            heic.to_str().expect("utf-8 temp path"),
        );
        tool("heif-enc", &["-q", "50", from, "-o", to]);
        path = heic;
    }
    let p = path.to_str().expect("utf-8 temp path");
    let mut args = vec![
        "-q".to_owned(),
        "-overwrite_original".to_owned(),
        format!("-EXIF:DateTimeOriginal={when}"),
    ];
    if let Some(o) = offset {
        args.push(format!("-EXIF:OffsetTimeOriginal={o}"));
    }
    args.push(p.to_owned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    tool("exiftool", &args);
    std::fs::read(path).expect("read the picture")
}

/// A real PNG.
pub fn real_png(seed: u32) -> Vec<u8> {
    let (_dir, path) = real(seed, "png", &["-frames:v", "1"]);
    std::fs::read(path).expect("read the picture")
}

/// A real one-second H.264 MP4.
pub fn real_mp4(seed: u32) -> Vec<u8> {
    let (_dir, path) = real(seed, "mp4", &["-pix_fmt", "yuv420p"]);
    std::fs::read(path).expect("read the video")
}

/// `jpeg` with an EXIF segment (right after SOI) whose MakerNote is an Apple
/// one carrying `content_id` as tag 0x0011 (exiftool's `MediaGroupUUID`), as an
/// iPhone's live-photo still has. Synthetic: built here, since exiftool writes
/// Apple MakerNote tags only into a MakerNote that is already there.
pub fn with_apple_content_id(jpeg: &[u8], content_id: &str) -> Vec<u8> {
    assert!(jpeg.starts_with(&[0xff, 0xd8]), "a JPEG");
    // The MakerNote: header, byte order, one-entry IFD, the string.
    let mut mn = b"Apple iOS\0\0\x01MM".to_vec();
    let id = [content_id.as_bytes(), b"\0"].concat();
    mn.extend(1u16.to_be_bytes());
    mn.extend(0x0011u16.to_be_bytes());
    mn.extend(2u16.to_be_bytes());
    mn.extend((id.len() as u32).to_be_bytes());
    mn.extend(32u32.to_be_bytes()); // 14 + 2 + 12 + 4: right after the IFD
    mn.extend(0u32.to_be_bytes());
    mn.extend(&id);
    // The TIFF: IFD0 with the Exif IFD pointer, the Exif IFD with the MakerNote.
    let mut t = b"MM\0*".to_vec();
    t.extend(8u32.to_be_bytes());
    t.extend(1u16.to_be_bytes());
    t.extend(0x8769u16.to_be_bytes());
    t.extend(4u16.to_be_bytes());
    t.extend(1u32.to_be_bytes());
    t.extend(26u32.to_be_bytes()); // 8 + 2 + 12 + 4
    t.extend(0u32.to_be_bytes());
    t.extend(1u16.to_be_bytes());
    t.extend(0x927cu16.to_be_bytes());
    t.extend(7u16.to_be_bytes());
    t.extend((mn.len() as u32).to_be_bytes());
    t.extend(44u32.to_be_bytes()); // 26 + 2 + 12 + 4
    t.extend(0u32.to_be_bytes());
    t.extend(&mn);
    let mut out = vec![0xff, 0xd8, 0xff, 0xe1];
    out.extend(((t.len() + 8) as u16).to_be_bytes());
    out.extend(b"Exif\0\0");
    out.extend(t);
    out.extend(&jpeg[2..]);
    out
}

/// A real QuickTime movie `secs` long; with `content_id`, its `keys` carry it
/// as `com.apple.quicktime.content.identifier` (written by exiftool, taught the
/// key by a user-defined tag: Debian's exiftool does not know it).
pub fn real_mov(seed: u32, secs: u32, content_id: Option<&str>) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("f.mov");
    let p = path.to_str().expect("utf-8 temp path");
    let colour = format!(
        "color=c=0x{:06x}:s=64x48:d={secs}:r=5",
        seed.wrapping_mul(2_654_435_761) & 0xff_ffff
    );
    tool(
        "ffmpeg",
        &[
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            &colour,
            "-pix_fmt",
            "yuv420p",
            "-y",
            p,
        ],
    );
    if let Some(id) = content_id {
        let config = dir.path().join("keys.config");
        std::fs::write(
            &config,
            "%Image::ExifTool::UserDefined = ('Image::ExifTool::QuickTime::Keys' => \
             { 'content.identifier' => { Name => 'ContentIdentifier', Writable => 'string' } });\n1;\n",
        )
        .expect("write the exiftool config");
        let c = config.to_str().expect("utf-8 temp path");
        tool(
            "exiftool",
            &[
                "-config",
                c,
                "-q",
                "-overwrite_original",
                &format!("-Keys:ContentIdentifier={id}"),
                p,
            ],
        );
    }
    std::fs::read(path).expect("read the video")
}
