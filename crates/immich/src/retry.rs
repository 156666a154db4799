//! The retry policy, written down once: connection errors, 408, 429 and every 5xx
//! are retried for idempotent requests, with exponential backoff and jitter
//! (`min(initial × 2^n, max) + jitter`, or what `Retry-After` says). Requests that
//! are not idempotent (creating an album) are retried only when they cannot have
//! reached the server: a failed connect, or a 429.

use std::time::Duration;

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
    /// Up to this much random time is added to each wait, so clients that failed
    /// together do not retry together.
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
}

/// Whether an HTTP status is worth retrying.
pub(crate) fn retryable_status(status: u16) -> bool {
    status == 408 || status == 429 || (500..600).contains(&status)
}

/// A small xorshift for jitter (and multipart boundaries); seeded per client.
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

    pub(crate) fn next_u64(&self) -> u64 {
        let mut s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        *s
    }

    pub(crate) fn unit(&self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `Retry-After` in seconds (the HTTP-date form is ignored), capped at five minutes.
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
        for s in [200, 201, 400, 401, 403, 404, 409] {
            assert!(!retryable_status(s), "{s}");
        }
    }

    #[test]
    fn jitter_stays_in_range() {
        let j = Jitter::new();
        for _ in 0..1000 {
            assert!((0.0..1.0).contains(&j.unit()));
        }
    }
}
