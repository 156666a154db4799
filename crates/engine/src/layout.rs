//! Where things live in the target, and timestamps in object names.
//!
//! ```text
//! manifest.db                         convenience copy of the newest manifest (replaceable)
//! manifest-{ts}.db                    the full manifest a run ended with (create-only)
//! manifest-{ts}.part-{n}.db           rows changed since the previous save (create-only)
//! library/{file_path}                 the first content of each path
//! versions/{file_path}/{ts}           later contents of a path
//! long/{sha256 of file_path}          content of a path too long for an object name
//! locks/{run_id}/{n}.json, released   run locks with an expiry (or withdrawn); never deleted
//! ```

use std::time::{Duration, SystemTime};

use imb_storage::{Key, MAX_KEY_LEN};

/// Formats a time as used in object names: UTC, `2024-01-15T03-00-00`.
pub fn format_ts(t: SystemTime) -> String {
    let s = humantime::format_rfc3339_seconds(t).to_string();
    s.trim_end_matches('Z').replace(':', "-")
}

/// Parses [`format_ts`]'s output.
pub fn parse_ts(s: &str) -> Option<SystemTime> {
    let (date, time) = s.split_once('T')?;
    if date.len() != 10 || time.len() != 8 {
        return None;
    }
    humantime::parse_rfc3339(&format!("{date}T{}Z", time.replace('-', ":"))).ok()
}

/// How far ahead of now a name's time may be before it is taken as planted (a
/// clock a little fast is fine; `manifest-2999-…` would otherwise be "newest"
/// forever and make retention delete real objects).
pub const FUTURE_SLACK: Duration = Duration::from_secs(24 * 3600);

/// Whether a name's timestamp is more than [`FUTURE_SLACK`] ahead of `now`.
pub fn is_future(ts: &str, now: SystemTime) -> bool {
    parse_ts(ts).is_some_and(|t| t > now + FUTURE_SLACK)
}

/// A manifest object's name, parsed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ManifestName {
    /// The run's timestamp, as in the name.
    pub ts: String,
    /// The journal number, for a part.
    pub part: Option<u32>,
}

impl ManifestName {
    /// Parses `manifest-{ts}.db` or `manifest-{ts}.part-{n}.db` (without prefix).
    pub fn parse(name: &str) -> Option<Self> {
        let rest = name.strip_prefix("manifest-")?.strip_suffix(".db")?;
        let (ts, part) = match rest.split_once(".part-") {
            Some((ts, n)) => (ts, Some(n.parse().ok()?)),
            None => (rest, None),
        };
        parse_ts(ts)?;
        Some(ManifestName {
            ts: ts.to_owned(),
            part,
        })
    }

    /// The object name.
    pub fn name(&self) -> String {
        match self.part {
            Some(n) => format!("manifest-{}.part-{n:05}.db", self.ts),
            None => format!("manifest-{}.db", self.ts),
        }
    }
}

pub(crate) fn key(s: impl Into<String>) -> Key {
    Key::parse(s).expect("layout keys are built from validated parts")
}

/// The key for the first content of `file_path`, and whether it must be recorded
/// (it is not the derived `library/{file_path}`).
pub(crate) fn library_key(file_path: &str) -> (Key, bool) {
    let derived = format!("library/{file_path}");
    match Key::parse(derived.as_str()) {
        Ok(k) => (k, false),
        Err(_) => (long_key(file_path, None), true),
    }
}

/// The key for a later content of `file_path`, stored at run time `ts`.
pub(crate) fn version_key(file_path: &str, ts: &str) -> Key {
    let k = format!("versions/{file_path}/{ts}");
    if k.len() <= MAX_KEY_LEN
        && let Ok(k) = Key::parse(k)
    {
        return k;
    }
    long_key(file_path, Some(ts))
}

fn long_key(file_path: &str, ts: Option<&str>) -> Key {
    use sha2::Digest;
    let h = imb_hash::hex(&sha2::Sha256::digest(file_path.as_bytes()));
    match ts {
        Some(ts) => key(format!("long/{h}/{ts}")),
        None => key(format!("long/{h}")),
    }
}

/// A run's timestamp: now, but always after every manifest already in the target,
/// so names sort in run order even across clock skew or two runs in one second.
pub(crate) fn run_ts(now: SystemTime, newest_existing: Option<&str>) -> String {
    let now_s = format_ts(now);
    match newest_existing.and_then(|p| Some((p, parse_ts(p)?))) {
        // Names have one-second resolution: compare them as names.
        Some((p, prev)) if now_s.as_str() <= p => format_ts(prev + Duration::from_secs(1)),
        _ => now_s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_and_order() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_705_287_600);
        assert_eq!(format_ts(t), "2024-01-15T03-00-00");
        assert_eq!(parse_ts("2024-01-15T03-00-00"), Some(t));
        assert_eq!(
            run_ts(t, Some("2024-01-15T03-00-00")),
            "2024-01-15T03-00-01"
        );
        assert_eq!(
            run_ts(t, Some("2023-01-01T00-00-00")),
            "2024-01-15T03-00-00"
        );
        let later_in_same_second = t + Duration::from_millis(700);
        assert_eq!(
            run_ts(later_in_same_second, Some("2024-01-15T03-00-00")),
            "2024-01-15T03-00-01"
        );
    }

    #[test]
    fn manifest_names_parse() {
        let m = ManifestName::parse("manifest-2024-01-15T03-00-00.db").unwrap();
        assert_eq!(m.part, None);
        let p = ManifestName::parse("manifest-2024-01-15T03-00-00.part-00002.db").unwrap();
        assert_eq!(p.part, Some(2));
        assert_eq!(p.name(), "manifest-2024-01-15T03-00-00.part-00002.db");
        assert!(m < p);
        assert!(ManifestName::parse("manifest.db").is_none());
        assert!(ManifestName::parse("manifest-garbage.db").is_none());
    }

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
