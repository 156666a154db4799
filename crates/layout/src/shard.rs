//! Scale-out: the library's 256 fixed logical shards, and which of them a pod of
//! an N-pod run owns (`logical mod N`), so changing N between runs re-keys nothing.
//!
//! Immich's own fan-out is the key: `upload/<user>/<aa>/…` by `<aa>` (two hex
//! digits Immich chose at random); `library/<user>/<dir>/…` (the storage
//! template's user-chosen paths), `encoded-video/` and `thumbs/` by a hash of
//! the first directory below the user. Everything else (`profile/`, `backups/`,
//! the `.immich` markers, files directly in a user's folder) is logical shard 0.
//! The key is a directory, so a pod never opens the directories of shards it
//! does not own ([`dir_shard`]).

use sha2::Digest;

/// How many logical shards a library is divided into. Fixed forever: a row's
/// shard is recomputed from its path by every reader.
pub const LOGICAL_SHARDS: u16 = 256;

/// The top-level folders sharded by the directory two levels below them.
const FANNED_OUT: [&str; 4] = ["upload", "library", "encoded-video", "thumbs"];

/// A directory's place in the sharding, relative to the source, `/`-separated
/// (the manifest's encoded form).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirShard {
    /// Above the shard keys (the root, `upload/`, `upload/<user>/`): every pod
    /// lists it; the files directly in it are logical shard 0.
    Structure,
    /// The whole subtree is in this logical shard.
    Logical(u8),
}

/// Where a directory stands (`""` is the source itself).
pub fn dir_shard(rel_dir: &str) -> DirShard {
    let mut parts = rel_dir.split('/').filter(|p| !p.is_empty());
    let Some(top) = parts.next() else {
        return DirShard::Structure;
    };
    if !FANNED_OUT.contains(&top) {
        return DirShard::Logical(0);
    }
    if parts.next().is_none() {
        return DirShard::Structure;
    }
    match parts.next() {
        None => DirShard::Structure,
        Some(key) => DirShard::Logical(key_shard(top, key)),
    }
}

/// The logical shard of a file, by its path relative to the source.
pub fn logical_shard(rel_file: &str) -> u8 {
    match rel_file.rsplit_once('/') {
        None => 0,
        Some((dir, _)) => match dir_shard(dir) {
            DirShard::Structure => 0,
            DirShard::Logical(s) => s,
        },
    }
}

fn key_shard(top: &str, key: &str) -> u8 {
    let immich_hex = key.len() == 2
        && key
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if top == "upload"
        && immich_hex
        && let Ok(v) = u8::from_str_radix(key, 16)
    {
        return v;
    }
    sha2::Sha256::digest(key.as_bytes())[0]
}

/// Pod `index` of `count`: it owns the logical shards `s` with `s mod count ==
/// index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Shard {
    /// This pod's index, `0..count`.
    pub index: u16,
    /// How many pods share the run, `1..=256`.
    pub count: u16,
}

impl Shard {
    /// The one pod of an unsharded run.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// Pod `index` of `count`, or why not.
    ///
    /// # Errors
    /// A message naming the bound that was broken.
    pub fn new(index: u16, count: u16) -> Result<Shard, String> {
        if count == 0 || count > LOGICAL_SHARDS {
            return Err(format!(
                "the number of shards must be 1 to {LOGICAL_SHARDS}, not {count}"
            ));
        }
        if index >= count {
            return Err(format!(
                "shard index {index} is out of range for {count} shards (0 to {})",
                count - 1
            ));
        }
        Ok(Shard { index, count })
    }

    /// Parses `K/N`.
    ///
    /// # Errors
    /// A message saying what `K/N` must look like.
    pub fn parse(s: &str) -> Result<Shard, String> {
        let bad = || format!("expected K/N (this pod's index and the number of pods), not {s:?}");
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let k = k.trim().parse().map_err(|_| bad())?;
        let n = n.trim().parse().map_err(|_| bad())?;
        Shard::new(k, n)
    }

    /// Whether this is the only pod.
    pub fn is_whole(self) -> bool {
        self.count == 1
    }

    /// Whether this pod owns logical shard `logical`.
    pub fn owns(self, logical: u8) -> bool {
        u16::from(logical) % self.count == self.index
    }

    /// Whether this pod must list a directory, and so descend into it.
    pub fn walks(self, rel_dir: &str) -> bool {
        match dir_shard(rel_dir) {
            DirShard::Structure => true,
            DirShard::Logical(s) => self.owns(s),
        }
    }

    /// Whether this pod backs up a file.
    pub fn has_file(self, rel_file: &str) -> bool {
        self.owns(logical_shard(rel_file))
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn immich_folders_shard_by_their_fan_out() {
        assert_eq!(logical_shard("upload/u1/ab/cd/x.jpg"), 0xab);
        assert_eq!(logical_shard("upload/u1/0f/00/x.jpg"), 0x0f);
        // Not Immich's lowercase hex: hashed like any other name, still one shard per directory.
        let upper = logical_shard("upload/u1/AB/cd/x.jpg");
        assert_eq!(upper, logical_shard("upload/u1/AB/other.jpg"));
        assert_eq!(upper, sha2::Sha256::digest(b"AB")[0]);
        let lib = logical_shard("library/admin/2024/01/x.jpg");
        assert_eq!(lib, sha2::Sha256::digest(b"2024")[0]);
        assert_eq!(lib, logical_shard("library/admin/2024/x.jpg"));
        assert_eq!(
            logical_shard("thumbs/u1/ab/cd/x.webp"),
            sha2::Sha256::digest(b"ab")[0]
        );
        for small in [
            "profile/u1/p.jpg",
            "backups/immich-db-backup.sql.gz",
            "upload/.immich",
            "library/admin/loose.jpg",
            "top.txt",
        ] {
            assert_eq!(logical_shard(small), 0, "{small}");
        }
        assert_eq!(dir_shard(""), DirShard::Structure);
        assert_eq!(dir_shard("upload"), DirShard::Structure);
        assert_eq!(dir_shard("upload/u1"), DirShard::Structure);
        assert_eq!(dir_shard("upload/u1/ab"), DirShard::Logical(0xab));
        assert_eq!(dir_shard("profile"), DirShard::Logical(0));
    }

    #[test]
    fn shards_parse_and_refuse_what_cannot_be() {
        assert_eq!(Shard::parse("2/4"), Ok(Shard { index: 2, count: 4 }));
        assert_eq!(Shard::parse("0/1"), Ok(Shard::WHOLE));
        assert!(Shard::parse("4/4").unwrap_err().contains("out of range"));
        assert!(Shard::parse("0/0").unwrap_err().contains("1 to 256"));
        assert!(Shard::parse("0/257").unwrap_err().contains("1 to 256"));
        assert!(Shard::parse("2").unwrap_err().contains("expected K/N"));
        assert_eq!(Shard { index: 3, count: 8 }.to_string(), "3/8");
    }

    proptest! {
        /// Every file belongs to exactly one pod of any N, and a pod that owns a
        /// file walks every directory above it: nothing is missed or done twice.
        #[test]
        fn every_file_has_exactly_one_pod_that_reaches_it(
            top in prop::sample::select(vec!["upload", "library", "thumbs", "encoded-video", "profile", "x"]),
            rest in prop::collection::vec("[a-f0-9A-Z]{1,3}", 0..4),
            count in 1u16..=16,
        ) {
            let mut parts = vec![top.to_string()];
            parts.extend(rest);
            parts.push("f.jpg".into());
            let file = parts.join("/");
            let owners: Vec<u16> = (0..count)
                .filter(|&k| Shard::new(k, count).unwrap().has_file(&file))
                .collect();
            prop_assert_eq!(owners.len(), 1);
            let pod = Shard::new(owners[0], count).unwrap();
            for i in 0..parts.len() {
                prop_assert!(pod.walks(&parts[..i].join("/")), "{} does not walk {}", pod, parts[..i].join("/"));
            }
        }
    }
}
