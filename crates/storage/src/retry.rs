//! The retry policy the HTTP backends share, written down once (Google's "Retry
//! strategy", which Immich's servers answer to as well): retry 408, 429, every
//! 5xx, and connection errors and timeouts, only for idempotent requests; wait
//! `min(initial × 2^n, max) + jitter`, or what `Retry-After` says.
//!
//! Plain numbers and pure functions, no HTTP client: each backend's send loop
//! applies them to its own requests and errors.

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How requests are retried.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// The first wait.
    pub initial: Duration,
    /// The longest wait.
    pub max_backoff: Duration,
    /// Up to this much random time is added to each wait, so many clients that
    /// failed together do not retry together.
    pub jitter: Duration,
}

impl Default for RetryPolicy {
    /// The seed's schedule: 2 s, 4, 8, 16, 32, then give up until the next run.
    fn default() -> Self {
        RetryPolicy {
            max_retries: 5,
            initial: Duration::from_secs(2),
            max_backoff: Duration::from_secs(32),
            jitter: Duration::from_secs(1),
        }
    }
}

impl RetryPolicy {
    /// A fast policy for tests: same shape, millisecond waits.
    pub fn fast() -> Self {
        RetryPolicy {
            max_retries: 5,
            initial: Duration::from_millis(5),
            max_backoff: Duration::from_millis(50),
            jitter: Duration::from_millis(5),
        }
    }

    /// No retries at all.
    pub fn none() -> Self {
        RetryPolicy {
            max_retries: 0,
            ..Self::fast()
        }
    }

    /// The wait before retry number `attempt` (0-based), given a random `unit` in [0, 1).
    pub fn backoff(&self, attempt: u32, unit: f64) -> Duration {
        let exp = self
            .initial
            .saturating_mul(2u32.saturating_pow(attempt.min(30)))
            .min(self.max_backoff);
        exp + self.jitter.mul_f64(unit.clamp(0.0, 1.0))
    }

    /// The wait before retry number `attempt` (0-based): what the server's
    /// `Retry-After` value asks for, else the backoff with jitter.
    pub fn wait(&self, attempt: u32, retry_after_value: Option<&str>, jitter: &Jitter) -> Duration {
        retry_after(retry_after_value).unwrap_or_else(|| self.backoff(attempt, jitter.unit()))
    }
}

/// Whether an HTTP status is worth retrying.
pub fn retryable_status(status: u16) -> bool {
    status == 408 || status == 429 || (500..600).contains(&status)
}

/// The wait a `Retry-After` header value asks for, in seconds, capped at five
/// minutes. The HTTP-date form is rare from these servers and ignored.
fn retry_after(value: Option<&str>) -> Option<Duration> {
    let secs: u64 = value?.trim().parse().ok()?;
    Some(Duration::from_secs(secs.min(300)))
}

/// A small xorshift for jitter (and other unpredictable-enough numbers, such as
/// multipart boundaries); seeded per client from the clock, no dependency.
#[derive(Debug)]
pub struct Jitter(Mutex<u64>);

impl Default for Jitter {
    fn default() -> Self {
        Self::new()
    }
}

impl Jitter {
    /// A generator seeded from the clock.
    pub fn new() -> Self {
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9e37_79b9_7f4a_7c15)
            | 1;
        Jitter(Mutex::new(seed))
    }

    /// The next 64 random bits.
    pub fn next_u64(&self) -> u64 {
        let mut s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        *s
    }

    /// A random number in [0, 1), for [`RetryPolicy::backoff`].
    pub fn unit(&self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_schedule_without_jitter() {
        let p = RetryPolicy::default();
        let waits: Vec<u64> = (0..6).map(|n| p.backoff(n, 0.0).as_secs()).collect();
        assert_eq!(waits, vec![2, 4, 8, 16, 32, 32]);
        assert!(p.backoff(0, 0.999) < Duration::from_secs(3));
    }

    #[test]
    fn statuses() {
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(retryable_status(s), "{s}");
        }
        for s in [200, 201, 308, 400, 401, 403, 404, 409, 412] {
            assert!(!retryable_status(s), "{s}");
        }
    }

    #[test]
    fn retry_after_seconds_only() {
        assert_eq!(retry_after(Some(" 7 ")), Some(Duration::from_secs(7)));
        assert_eq!(retry_after(Some("86400")), Some(Duration::from_secs(300)));
        assert_eq!(retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT")), None);
        assert_eq!(retry_after(None), None);
        let p = RetryPolicy::default();
        let j = Jitter::new();
        assert_eq!(p.wait(0, Some("7"), &j), Duration::from_secs(7));
        let w = p.wait(1, Some("soon"), &j);
        assert!(
            w >= Duration::from_secs(4) && w < Duration::from_secs(5),
            "{w:?}"
        );
    }

    #[test]
    fn jitter_stays_in_range() {
        let j = Jitter::new();
        for _ in 0..1000 {
            assert!((0.0..1.0).contains(&j.unit()));
        }
    }
}
