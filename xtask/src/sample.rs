//! The `sample` task: a small, deterministic library laid out like an Immich server's.
//!
//! Immich keeps everything under one upload location: `library/` (originals placed by the
//! storage template, `<label>/<year>/<date>/IMG_0001.jpg`, with `.xmp` sidecars),
//! `upload/` (originals not yet templated, `<user>/<ab>/<cd>/<asset>.jpg`), `thumbs/`,
//! `encoded-video/`, `profile/` and `backups/`, each holding an empty `.immich` marker.
//! Bytes come from a seeded `fastrand` generator, so the same `--files` and `--seed` always
//! give byte-identical trees and no dependency is needed.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::args::Args;

/// Originals generated when `--files` is not given.
pub(crate) const DEFAULT_FILES: u32 = 200;
/// Seed used when `--seed` is not given.
pub(crate) const DEFAULT_SEED: u64 = 1;

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

/// The top-level folders of an Immich upload location; each gets a `.immich` marker.
const FOLDERS: [&str; 6] = [
    "library",
    "upload",
    "thumbs",
    "encoded-video",
    "profile",
    "backups",
];

/// `cargo xtask sample --out DIR [--files N] [--seed S] [--force]`.
pub(crate) fn run(mut args: Args) -> Result<()> {
    let out: PathBuf = args
        .value("--out")?
        .context("--out DIR is required (e.g. cargo xtask sample --out /tmp/library)")?;
    let files = args.value("--files")?.unwrap_or(DEFAULT_FILES);
    let seed = args.value("--seed")?.unwrap_or(DEFAULT_SEED);
    let force = args.flag("--force");
    args.finish()?;
    let made = generate(&out, files, seed, force)?;
    println!("{}", made.describe(&out));
    Ok(())
}

/// What [`generate`] wrote.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Made {
    photos: u64,
    sidecars: u64,
    videos: u64,
    transcodes: u64,
    thumbnails: u64,
    profiles: u64,
    markers: u64,
    /// Every file, markers included.
    files: u64,
    bytes: u64,
}

impl Made {
    /// One line for the user: where, how many files, how many bytes, and of what kind.
    pub(crate) fn describe(&self, out: &Path) -> String {
        format!(
            "sample library in {}: {} files, {} bytes ({:.1} MiB): {} photos, {} xmp \
             sidecars, {} videos, {} transcoded videos, {} thumbnails, {} profile pictures, \
             {} .immich markers",
            out.display(),
            self.files,
            self.bytes,
            self.bytes as f64 / MIB as f64,
            self.photos,
            self.sidecars,
            self.videos,
            self.transcodes,
            self.thumbnails,
            self.profiles,
            self.markers,
        )
    }
}

/// Writes the sample library into `out`.
///
/// `files` photos of 20–400 KiB plus about one ~2 MiB video per hundred photos, each with
/// Immich's derived files. Refuses a non-empty `out` unless `force`, in which case files
/// are written over same-named ones and nothing is deleted.
pub(crate) fn generate(out: &Path, files: u32, seed: u64, force: bool) -> Result<Made> {
    if out.exists() && !out.is_dir() {
        bail!("{} exists and is not a directory", out.display());
    }
    if !force && !is_empty_or_missing(out)? {
        bail!(
            "{} is not empty; pass --force to write into it anyway",
            out.display()
        );
    }
    let mut writer = Writer {
        root: out.to_path_buf(),
        made: Made::default(),
    };
    let mut rng = Rng::new(seed);

    // Two users: the admin has the storage label "admin"; the other has none, so the
    // storage template uses their id as the folder name, as Immich does.
    let users = [
        User {
            id: rng.uuid(),
            label: Some("admin"),
        },
        User {
            id: rng.uuid(),
            label: None,
        },
    ];
    for user in &users {
        let size = rng.range(8 * KIB, 32 * KIB);
        let path = format!("profile/{}/{}.jpg", user.id, rng.uuid());
        writer.write(&path, &jpeg(&mut rng, size))?;
        writer.made.profiles += 1;
    }

    let mut number = 0;
    for _ in 0..files {
        number += 1;
        let user = &users[usize::from(rng.below(5) == 0)];
        let asset = rng.uuid();
        let size = rng.range(20 * KIB, 400 * KIB);
        // Three in four originals have been moved by the storage template.
        let path = if rng.below(4) == 0 {
            format!("upload/{}/{}.jpg", sharded(&user.id, &asset), asset)
        } else {
            format!("{}/IMG_{number:04}.jpg", dated_folder(&mut rng, user))
        };
        writer.write(&path, &jpeg(&mut rng, size))?;
        writer.made.photos += 1;
        if rng.below(5) == 0 {
            writer.write(&format!("{path}.xmp"), xmp(&path).as_bytes())?;
            writer.made.sidecars += 1;
        }
        write_thumbnails(&mut writer, &mut rng, user, &asset)?;
    }

    for _ in 0..files.div_ceil(100) {
        number += 1;
        let user = &users[0];
        let asset = rng.uuid();
        let size = rng.range(2 * MIB - 256 * KIB, 2 * MIB + 256 * KIB);
        let path = format!("{}/VID_{number:04}.mp4", dated_folder(&mut rng, user));
        writer.write(&path, &mp4(&mut rng, size))?;
        writer.made.videos += 1;
        let size = rng.range(MIB - 128 * KIB, MIB + 128 * KIB);
        let path = format!("encoded-video/{}/{}.mp4", sharded(&user.id, &asset), asset);
        writer.write(&path, &mp4(&mut rng, size))?;
        writer.made.transcodes += 1;
        write_thumbnails(&mut writer, &mut rng, user, &asset)?;
    }

    // Markers last, so a present `library/.immich` means generation finished.
    for folder in FOLDERS {
        writer.write(&format!("{folder}/.immich"), &[])?;
        writer.made.markers += 1;
    }
    Ok(writer.made)
}

fn is_empty_or_missing(dir: &Path) -> Result<bool> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => Ok(entries.next().is_none()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(err) => Err(err).with_context(|| format!("reading {}", dir.display())),
    }
}

struct User {
    id: String,
    label: Option<&'static str>,
}

/// `library/<label or user id>/<year>/<year-month-day>`: Immich's default storage template.
fn dated_folder(rng: &mut Rng, user: &User) -> String {
    let year = 2023 + rng.below(2);
    let month = 1 + rng.below(12);
    let day = 1 + rng.below(28);
    let owner = user.label.unwrap_or(&user.id);
    format!("library/{owner}/{year}/{year}-{month:02}-{day:02}")
}

/// `<user>/<ab>/<cd>`: the first four hex digits of the asset id split into two levels.
fn sharded(user: &str, asset: &str) -> String {
    format!("{user}/{}/{}", &asset[..2], &asset[2..4])
}

fn write_thumbnails(writer: &mut Writer, rng: &mut Rng, user: &User, asset: &str) -> Result<()> {
    let dir = format!("thumbs/{}", sharded(&user.id, asset));
    let size = rng.range(8 * KIB, 48 * KIB);
    writer.write(&format!("{dir}/{asset}-preview.jpeg"), &jpeg(rng, size))?;
    let size = rng.range(2 * KIB, 8 * KIB);
    writer.write(&format!("{dir}/{asset}-thumbnail.webp"), &webp(rng, size))?;
    writer.made.thumbnails += 2;
    Ok(())
}

/// Writes files under the output root and counts them.
struct Writer {
    root: PathBuf,
    made: Made,
}

impl Writer {
    fn write(&mut self, relative: &str, contents: &[u8]) -> Result<()> {
        let path = self.root.join(relative);
        let parent = path.parent().expect("sample paths have a parent");
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
        std::fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
        self.made.files += 1;
        self.made.bytes += contents.len() as u64;
        Ok(())
    }
}

/// A JPEG start-of-image marker, then noise.
fn jpeg(rng: &mut Rng, size: usize) -> Vec<u8> {
    with_header(rng, &[0xFF, 0xD8, 0xFF, 0xE0], size)
}

/// An ISO base media `ftyp` box, then noise.
fn mp4(rng: &mut Rng, size: usize) -> Vec<u8> {
    with_header(rng, b"\0\0\0\x18ftypisom\0\0\x02\0isomiso2", size)
}

/// A RIFF/WEBP header with the right length field, then noise.
fn webp(rng: &mut Rng, size: usize) -> Vec<u8> {
    let riff_len = u32::try_from(size - 8).expect("thumbnails are small");
    let mut header = b"RIFF".to_vec();
    header.extend_from_slice(&riff_len.to_le_bytes());
    header.extend_from_slice(b"WEBPVP8 ");
    with_header(rng, &header, size)
}

fn with_header(rng: &mut Rng, header: &[u8], size: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(size);
    bytes.extend_from_slice(header);
    rng.fill(&mut bytes, size);
    bytes
}

/// A minimal XMP sidecar such as Immich writes next to an original.
fn xmp(original: &str) -> String {
    let name = original.rsplit('/').next().unwrap_or(original);
    let mut text = String::new();
    text.push_str("<?xpacket begin=\"\u{feff}\" id=\"W5M0MpCehiHzreSzNTczkc9d\"?>\n");
    text.push_str("<x:xmpmeta xmlns:x=\"adobe:ns:meta/\">\n");
    text.push_str(" <rdf:RDF xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\">\n");
    let _ = writeln!(
        text,
        "  <rdf:Description rdf:about=\"\" xmlns:dc=\"http://purl.org/dc/elements/1.1/\">\n   \
         <dc:description>sample sidecar for {name}</dc:description>\n  </rdf:Description>"
    );
    text.push_str(" </rdf:RDF>\n</x:xmpmeta>\n<?xpacket end=\"w\"?>\n");
    text
}

/// Seeded `fastrand`, with the helpers the library shape needs.
struct Rng(fastrand::Rng);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(fastrand::Rng::with_seed(seed))
    }

    fn next(&mut self) -> u64 {
        self.0.u64(..)
    }

    /// A number in `0..n` (`n > 0`); the modulo bias is irrelevant here.
    fn below(&mut self, n: u32) -> u32 {
        u32::try_from(self.next() % u64::from(n)).expect("less than a u32")
    }

    /// A number in `low..=high`.
    fn range(&mut self, low: usize, high: usize) -> usize {
        let span = (high - low + 1) as u64;
        low + usize::try_from(self.next() % span).expect("spans are small")
    }

    /// Appends noise to `bytes` until it is `size` long.
    fn fill(&mut self, bytes: &mut Vec<u8>, size: usize) {
        let from = bytes.len();
        bytes.resize(size.max(from), 0);
        self.0.fill(&mut bytes[from..]);
    }

    /// A random (version 4) UUID in its usual lowercase text form.
    fn uuid(&mut self) -> String {
        let high = self.next();
        let low = self.next();
        let high = (high & !0xF000) | 0x4000;
        let low = (low & !(0b11 << 62)) | (0b10 << 62);
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            high >> 32,
            (high >> 16) & 0xFFFF,
            high & 0xFFFF,
            low >> 48,
            low & 0xFFFF_FFFF_FFFF
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> Self {
            let path =
                std::env::temp_dir().join(format!("xtask-sample-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&path);
            Self(path)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// Every file under `dir` as (relative path, contents), sorted.
    fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
        fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(root, &path, out);
                } else {
                    let relative = path.strip_prefix(root).unwrap().display().to_string();
                    out.push((relative, std::fs::read(&path).unwrap()));
                }
            }
        }
        let mut out = Vec::new();
        walk(dir, dir, &mut out);
        out.sort();
        out
    }

    #[test]
    fn same_seed_same_bytes_and_immich_shape() {
        let (a, b) = (TempDir::new("a"), TempDir::new("b"));
        let made = generate(&a.0, 12, 7, false).unwrap();
        generate(&b.0, 12, 7, false).unwrap();
        let files = tree(&a.0);
        assert_eq!(files, tree(&b.0));
        assert_eq!(made.files, files.len() as u64);
        assert_eq!(
            made.bytes,
            files.iter().map(|(_, c)| c.len() as u64).sum::<u64>()
        );
        assert_eq!((made.photos, made.videos, made.markers), (12, 1, 6));

        for folder in FOLDERS {
            let marker = files
                .iter()
                .find(|(p, _)| *p == format!("{folder}/.immich"));
            assert_eq!(marker.map(|(_, c)| c.len()), Some(0), "{folder}/.immich");
        }
        for (path, contents) in &files {
            if path.ends_with(".jpg") || path.ends_with(".jpeg") {
                assert_eq!(contents[..3], [0xFF, 0xD8, 0xFF], "{path}");
            }
            if path.contains("/IMG_") && path.ends_with(".jpg") {
                let parts: Vec<_> = path.split('/').collect();
                assert_eq!(parts.len(), 5, "{path}");
                assert_eq!(parts[0], "library");
                assert!(parts[3].starts_with(parts[2]), "{path}");
                let kib = contents.len() / KIB;
                assert!((20..=400).contains(&kib), "{path}: {kib} KiB");
            }
        }
        assert!(files.iter().any(|(p, _)| p.ends_with(".jpg.xmp")) || made.sidecars == 0);
        assert!(files.iter().any(|(p, _)| p.ends_with("-thumbnail.webp")));
        assert!(files.iter().any(|(p, _)| p.starts_with("encoded-video/")));
    }

    #[test]
    fn other_seed_other_bytes() {
        let (a, b) = (TempDir::new("seed1"), TempDir::new("seed2"));
        generate(&a.0, 3, 1, false).unwrap();
        generate(&b.0, 3, 2, false).unwrap();
        assert_ne!(tree(&a.0), tree(&b.0));
    }

    #[test]
    fn refuses_a_non_empty_dir_without_force() {
        let dir = TempDir::new("full");
        std::fs::create_dir_all(&dir.0).unwrap();
        std::fs::write(dir.0.join("precious.txt"), "keep").unwrap();
        let err = generate(&dir.0, 1, 1, false).unwrap_err();
        assert!(err.to_string().contains("--force"), "{err}");
        generate(&dir.0, 1, 1, true).unwrap();
        assert_eq!(std::fs::read(dir.0.join("precious.txt")).unwrap(), b"keep");
    }

    #[test]
    fn uuids_look_like_uuids() {
        let mut rng = Rng::new(0);
        let id = rng.uuid();
        assert_eq!(id.len(), 36);
        assert_eq!(id.as_bytes()[14], b'4');
        assert!(
            matches!(id.as_bytes()[19], b'8' | b'9' | b'a' | b'b'),
            "{id}"
        );
        assert_ne!(id, rng.uuid());
    }
}
