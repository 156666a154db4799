//! Timestamps in object names.

use std::time::{Duration, SystemTime};

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

/// A run's timestamp: now, but always after every manifest already in the target,
/// so names sort in run order even across clock skew or two runs in one second.
pub fn run_ts(now: SystemTime, newest_existing: Option<&str>) -> String {
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
        assert_eq!(parse_ts("2024-01-15 03-00-00"), None);
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
    fn a_name_more_than_a_day_ahead_is_future() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_705_287_600);
        assert!(!is_future(&format_ts(now + Duration::from_secs(3600)), now));
        assert!(is_future(
            &format_ts(now + FUTURE_SLACK + Duration::from_secs(1)),
            now
        ));
        assert!(!is_future("garbage", now));
    }
}
