//! Measures what the uploaded manifest costs per backed-up file, for the benchmark task.
//!
//! Fills a fresh manifest with N rows (default 200,000; the first argument overrides) of
//! paths shaped like a real Immich library: 45% storage-template originals
//! (`library/{user}/{yyyy}/{yyyy-mm-dd}/IMG_1234.jpg`), 15% their `.xmp` sidecars, 30%
//! originals in Immich's default `upload/{user}/{ab}/{cd}/{asset}.{ext}` layout, and 10%
//! profile pictures and database dumps. Every row has random hashes, a plausible size and
//! modification time, and no generation or object key, as a local backup writes them.
//! Then it takes [`Manifest::snapshot`], the compact copy that gets uploaded, and prints
//! `key value` lines: `rows`, `avg_path_bytes`, `snapshot_bytes`, `bytes_per_file`,
//! `index_bytes_per_file` (what the content index adds to the snapshot, 0 without one) and
//! `working_bytes` (the working database plus its WAL). Deterministic: a seeded `fastrand`
//! generator decides everything. Run with
//! `cargo run --release -p imb-manifest --example bytes_per_file [-- ROWS]`.

#![allow(clippy::print_stdout)]

use std::collections::HashSet;
use std::path::Path;

use imb_manifest::{FileRecord, Manifest};

const DEFAULT_ROWS: u64 = 200_000;
const COMMIT_EVERY: u64 = 10_000;
const KB: u64 = 1000;
const MB: u64 = 1000 * KB;
/// 2015-01-01T00:00:00Z and ten years later, in nanoseconds.
const MTIME_FROM_NS: i64 = 1_420_070_400 * 1_000_000_000;
const MTIME_SPAN_NS: u64 = 10 * 365 * 86_400 * 1_000_000_000;

fn main() {
    let rows = match std::env::args().nth(1) {
        Some(arg) => arg
            .replace('_', "")
            .parse()
            .unwrap_or_else(|err| panic!("the first argument is a row count, not `{arg}`: {err}")),
        None => DEFAULT_ROWS,
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let working = dir.path().join("manifest.db");
    let mut manifest = Manifest::open(&working).expect("a new manifest");

    let mut rng = Rng(fastrand::Rng::with_seed(0x1234_5678_9ABC_DEF1));
    let mut library = Library::new(&mut rng);
    let mut path_bytes = 0u64;
    for row in 1..=rows {
        let (path, size) = library.next_path(&mut rng);
        path_bytes += path.len() as u64;
        let mut checksum = [0u8; 32];
        let mut sha1 = [0u8; 20];
        rng.fill(&mut checksum);
        rng.fill(&mut sha1);
        let crc32c = rng.next() as u32;
        let mtime_ns = MTIME_FROM_NS + (rng.next() % MTIME_SPAN_NS) as i64;
        let record = FileRecord::new(path, checksum, sha1, crc32c, size, mtime_ns);
        manifest.upsert(&record).expect("upsert");
        if row % COMMIT_EVERY == 0 {
            manifest.commit().expect("commit");
        }
    }
    manifest.commit().expect("commit");
    let counts = manifest.counts().expect("counts");
    assert_eq!(counts.live, rows, "every generated path is distinct");

    let snapshot = dir.path().join("snapshot.db");
    manifest.snapshot(&snapshot).expect("snapshot");
    let snapshot_bytes = file_len(&snapshot);
    let working_bytes = file_len(&working) + file_len(&with_suffix(&working, "-wal"));
    let index_bytes = index_bytes(&snapshot, &dir.path().join("scratch.db"));
    drop(manifest);

    let per_file = |bytes: u64| bytes as f64 / rows.max(1) as f64;
    println!("rows {rows}");
    println!("avg_path_bytes {:.1}", per_file(path_bytes));
    println!("snapshot_bytes {snapshot_bytes}");
    println!("bytes_per_file {:.1}", per_file(snapshot_bytes));
    println!("index_bytes_per_file {:.1}", per_file(index_bytes));
    println!("working_bytes {working_bytes}");
}

/// What the `files_by_content` index costs in `snapshot` (0 if it has none): a copy at
/// `scratch` is vacuumed with the index and again without, so page slack in the snapshot
/// itself is not counted as index.
fn index_bytes(snapshot: &Path, scratch: &Path) -> u64 {
    std::fs::copy(snapshot, scratch).expect("copying the snapshot");
    let conn = rusqlite::Connection::open(scratch).expect("opening the copy");
    conn.execute_batch("VACUUM;").expect("vacuuming the copy");
    let with_index = file_len(scratch);
    conn.execute_batch("DROP INDEX IF EXISTS files_by_content; VACUUM;")
        .expect("dropping the index");
    drop(conn);
    with_index.saturating_sub(file_len(scratch))
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

fn with_suffix(path: &Path, suffix: &str) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    name.into()
}

/// The users and the paths handed out so far, so every path is new.
struct Library {
    /// (folder name in `library/`, user id): the admin has the storage label `admin`,
    /// the others have none, so Immich names their folder by id.
    users: Vec<(String, String)>,
    /// Storage-template originals that have no sidecar yet.
    without_sidecar: Vec<String>,
    seen: HashSet<String>,
}

impl Library {
    fn new(rng: &mut Rng) -> Self {
        let users = (0..4)
            .map(|i| {
                let id = rng.uuid();
                let folder = if i == 0 {
                    "admin".to_owned()
                } else {
                    id.clone()
                };
                (folder, id)
            })
            .collect();
        Library {
            users,
            without_sidecar: Vec::new(),
            seen: HashSet::new(),
        }
    }

    /// A path not handed out before, and a plausible size for it.
    fn next_path(&mut self, rng: &mut Rng) -> (String, u64) {
        loop {
            let (path, size, original) = self.candidate(rng);
            if self.seen.insert(path.clone()) {
                if original {
                    self.without_sidecar.push(path.clone());
                }
                return (path, size);
            }
        }
    }

    /// A path, its size, and whether it is a storage-template original (which may get a
    /// sidecar later).
    fn candidate(&mut self, rng: &mut Rng) -> (String, u64, bool) {
        // The admin owns half the library; the other users share the rest.
        let user = if rng.below(2) == 0 {
            0
        } else {
            1 + rng.below(self.users.len() as u64 - 1) as usize
        };
        let roll = rng.below(100);
        if (45..60).contains(&roll) && !self.without_sidecar.is_empty() {
            let index = rng.below(self.without_sidecar.len() as u64) as usize;
            let original = self.without_sidecar.swap_remove(index);
            return (format!("{original}.xmp"), rng.range(2 * KB, 8 * KB), false);
        }
        if roll < 60 {
            let year = 2015 + rng.below(10);
            let month = 1 + rng.below(12);
            let day = 1 + rng.below(28);
            let number = rng.below(10_000);
            let path = format!(
                "library/{}/{year}/{year}-{month:02}-{day:02}/IMG_{number:04}.jpg",
                self.users[user].0
            );
            return (path, rng.range(500 * KB, 8 * MB), true);
        }
        if roll < 90 {
            let asset = rng.uuid();
            let (ext, size) = match rng.below(20) {
                0..=11 => ("jpg", rng.range(500 * KB, 8 * MB)),
                12..=16 => ("heic", rng.range(800 * KB, 4 * MB)),
                _ => ("mp4", rng.range(5 * MB, 300 * MB)),
            };
            let path = format!(
                "upload/{}/{}/{}/{asset}.{ext}",
                self.users[user].1,
                &asset[..2],
                &asset[2..4]
            );
            return (path, size, false);
        }
        if roll < 97 {
            let path = format!("profile/{}/{}.jpg", self.users[user].1, rng.uuid());
            return (path, rng.range(20 * KB, 300 * KB), false);
        }
        // Immich's nightly dump: immich-db-backup-{yyyymmdd}T{hhmmss}-v{version}-pg{pg}.sql.gz.
        let path = format!(
            "backups/immich-db-backup-{}{:02}{:02}T{:02}{:02}{:02}-v1.{}.{}-pg14.{}.sql.gz",
            2020 + rng.below(6),
            1 + rng.below(12),
            1 + rng.below(28),
            rng.below(24),
            rng.below(60),
            rng.below(60),
            100 + rng.below(40),
            rng.below(5),
            10 + rng.below(8),
        );
        (path, rng.range(5 * MB, 200 * MB), false)
    }
}

/// Seeded `fastrand`, with the layout helpers the library shape needs.
struct Rng(fastrand::Rng);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0.u64(..)
    }

    /// A number in `0..n` (`n > 0`); the modulo bias is irrelevant here.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// A number in `low..=high`.
    fn range(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low + 1)
    }

    fn fill(&mut self, bytes: &mut [u8]) {
        self.0.fill(bytes);
    }

    /// A random (version 4) UUID in its usual lowercase text form.
    fn uuid(&mut self) -> String {
        let high = (self.next() & !0xF000) | 0x4000;
        let low = (self.next() & !(0b11 << 62)) | (0b10 << 62);
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
