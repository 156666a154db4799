//! The retry policy, written down once (Google's "Retry strategy"): retry 408,
//! 429, every 5xx, and connection errors and timeouts, only for idempotent
//! requests; wait `min(initial × 2^n, max) + jitter`, or what `Retry-After` says.

use std::time::Duration;

/// How requests are retried.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Retries after the first attempt (the seed: 5).
    pub max_retries: u32,
    /// The first wait (the seed: 2 s, then 4, 8, 16, 32).
    pub initial: Duration,
    /// The longest wait.
    pub max_backoff: Duration,
    /// Up to this much random time is added to each wait, so many clients that
    /// failed together do not retry together.
    pub jitter: Duration,
}

impl Default for RetryPolicy {
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

    /// The wait before retry number `attempt` (0-based), given a random `unit` in [0, 1).
    pub fn backoff(&self, attempt: u32, unit: f64) -> Duration {
        let exp = self
            .initial
            .saturating_mul(2u32.saturating_pow(attempt.min(30)))
            .min(self.max_backoff);
        exp + self.jitter.mul_f64(unit.clamp(0.0, 1.0))
    }
}

/// Whether an HTTP status is worth retrying.
pub(crate) fn retryable_status(status: u16) -> bool {
    status == 408 || status == 429 || (500..600).contains(&status)
}

/// A small xorshift for jitter; seeded per client, no dependency.
#[derive(Debug)]
pub(crate) struct Jitter(std::sync::Mutex<u64>);

impl Jitter {
    pub(crate) fn new() -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9e37_79b9_7f4a_7c15)
            | 1;
        Jitter(std::sync::Mutex::new(seed))
    }

    pub(crate) fn unit(&self) -> f64 {
        let mut s = self.0.lock().expect("jitter lock poisoned");
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        (*s >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `Retry-After` in seconds (the HTTP-date form is rare for GCS and ignored).
pub(crate) fn retry_after(h: Option<&reqwest::header::HeaderValue>) -> Option<Duration> {
    let secs: u64 = h?.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(secs.min(300)))
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
        for s in [200, 308, 400, 401, 403, 404, 409, 412] {
            assert!(!retryable_status(s), "{s}");
        }
    }

    #[test]
    fn jitter_stays_in_range() {
        let j = Jitter::new();
        for _ in 0..1000 {
            let u = j.unit();
            assert!((0.0..1.0).contains(&u));
        }
    }
}
