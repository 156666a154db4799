//! Object keys.

use imb_manifest::FileRecord;
use imb_storage::{Key, MAX_KEY_LEN};

/// Where run locks live.
pub const LOCKS_PREFIX: &str = "locks/";
const LIBRARY_PREFIX: &str = "library/";

fn key(s: impl Into<String>) -> Key {
    Key::parse(s).expect("layout keys are built from validated parts")
}

/// The key for the first content of `file_path`, and whether it must be recorded
/// in the manifest (it is not the derived `library/{file_path}`).
pub fn library_key(file_path: &str) -> (Key, bool) {
    let derived = format!("{LIBRARY_PREFIX}{file_path}");
    match Key::parse(derived.as_str()) {
        Ok(k) => (k, false),
        Err(_) => (long_key(file_path, None), true),
    }
}

/// The key for a later content of `file_path`, stored at run time `ts`.
pub fn version_key(file_path: &str, ts: &str) -> Key {
    let k = format!("versions/{file_path}/{ts}");
    if k.len() <= MAX_KEY_LEN
        && let Ok(k) = Key::parse(k)
    {
        return k;
    }
    long_key(file_path, Some(ts))
}

/// The key of the object holding a manifest row's content: the one recorded, else
/// the derived `library/{file_path}`. Read back from a target, so not trusted to be
/// a valid key: the caller parses it.
pub fn content_key(row: &FileRecord) -> String {
    match &row.object_key {
        Some(k) => k.clone(),
        None => format!("{LIBRARY_PREFIX}{}", row.file_path),
    }
}

fn long_key(file_path: &str, ts: Option<&str>) -> Key {
    use sha2::Digest;
    let h = imb_hash::hex(&sha2::Sha256::digest(file_path.as_bytes()));
    match ts {
        Some(ts) => key(format!("long/{h}/{ts}")),
        None => key(format!("long/{h}")),
    }
}

/// The replaceable copy of the newest manifest, `manifest.db`.
pub fn manifest_copy_key() -> Key {
    key("manifest.db")
}

/// The `n`th lock object of a run (each renewal writes the next).
pub fn lock_key(run_id: &str, n: u32) -> Key {
    key(format!("{LOCKS_PREFIX}{run_id}/{n:06}.json"))
}

/// A run's end marker: `released` (it finished) or `withdrawn` (it backed off).
pub fn lock_marker_key(run_id: &str, marker: &str) -> Key {
    key(format!("{LOCKS_PREFIX}{run_id}/{marker}"))
}

/// Where restore-verify writes the report of a run at `ts`.
pub fn report_key(ts: &str) -> Key {
    key(format!("reports/{ts}.json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlong_paths_get_hashed_keys() {
        let long = "a/".repeat(600) + "x.jpg";
        let (k, recorded) = library_key(&long);
        assert!(recorded && k.as_str().starts_with("long/"));
        assert!(
            version_key(&long, "2024-01-15T03-00-00")
                .as_str()
                .starts_with("long/")
        );
        assert_eq!(library_key("a/b.jpg"), (key("library/a/b.jpg"), false));
    }
}
