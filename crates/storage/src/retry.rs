//! The retry policy the HTTP backends share, written down once (Google's "Retry
//! strategy", which Immich's servers answer to as well): retry 408, 429, every
//! 5xx, and connection errors and timeouts, only for idempotent requests; wait
//! `min(initial × 2^n, max) + jitter`, or what `Retry-After` says.
//!
//! [`Retrier::run`] is the one retry loop: it counts attempts, bounds them by
//! number and by total time, waits (backoff with jitter, or `Retry-After`), logs
//! each retry and counts it. What an attempt sends, and what a failure means, stays
//! with the caller: each backend's closure maps its own requests and errors to a
//! [`Step`], and domain branches (a token refreshed after a 401, a duplicate
//! check after a failed upload) stay in the caller too. No HTTP client here.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
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
    /// Up to this much random time is added to each wait, so many clients that
    /// failed together do not retry together.
    pub jitter: Duration,
    /// No retry starts later than this after the first attempt began (a server
    /// that fails slowly, at the read timeout, would otherwise hold a request for
    /// the timeout times the number of attempts).
    pub max_elapsed: Duration,
}

impl Default for RetryPolicy {
    /// The seed's schedule: 2 s, 4, 8, 16, 32, then give up until the next run.
    fn default() -> Self {
        RetryPolicy {
            max_retries: 5,
            initial: Duration::from_secs(2),
            max_backoff: Duration::from_secs(32),
            jitter: Duration::from_secs(1),
            max_elapsed: Duration::from_secs(300),
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
            max_elapsed: Duration::from_secs(30),
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

/// One attempt, as [`Retrier::run`] hands it to the caller's closure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Attempt {
    /// 1 for the first attempt.
    pub number: u32,
    /// Since the first attempt began.
    pub elapsed: Duration,
    /// Whether a [`Step::Retry`] from this attempt will be returned rather than
    /// retried (out of attempts or of time), so the caller need not prepare one.
    pub last: bool,
}

/// What an attempt came to.
#[derive(Debug)]
pub enum Step<T> {
    /// Finished: a success, or a failure no retry would cure.
    Done(T),
    /// Failed in a way a retry may cure.
    Retry {
        /// What to return if no retry is left.
        last: T,
        /// Why, for the log (`HTTP 503`, the transport error).
        cause: String,
        /// What the server's `Retry-After` asked for, if anything ([`retry_after`]).
        retry_after: Option<Duration>,
    },
}

impl<T> Step<T> {
    /// [`Step::Retry`] when `retry`, else [`Step::Done`] with `last`.
    pub fn retry_if(retry: bool, last: T, cause: String, retry_after: Option<Duration>) -> Self {
        if retry {
            Step::Retry {
                last,
                cause,
                retry_after,
            }
        } else {
            Step::Done(last)
        }
    }
}

/// A client's retries: its policy, its jitter and the count of retries made.
#[derive(Debug)]
pub struct Retrier {
    policy: RetryPolicy,
    jitter: Jitter,
    retries: AtomicU64,
    congestion: AtomicU64,
}

impl Retrier {
    /// Retries by `policy`.
    pub fn new(policy: RetryPolicy) -> Self {
        Retrier {
            policy,
            jitter: Jitter::new(),
            retries: AtomicU64::new(0),
            congestion: AtomicU64::new(0),
        }
    }

    /// The policy.
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// Retries made so far, over every [`Retrier::run`].
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// Of those, retries after a congestion signal (`HTTP 429`, `HTTP 503`, a
    /// timeout): what [`crate::adaptive`] backs off on.
    pub fn congestion(&self) -> u64 {
        self.congestion.load(Ordering::Relaxed)
    }

    /// The random numbers the waits use (also good for multipart boundaries).
    pub fn jitter(&self) -> &Jitter {
        &self.jitter
    }

    /// Runs `attempt` until it is [`Step::Done`], or until the policy allows no
    /// further retry (by number or by [`RetryPolicy::max_elapsed`]), then returns
    /// the last step's value. Between attempts it waits what the server asked
    /// for or the backoff with jitter, logs `what` and the cause, and counts.
    pub async fn run<T, F, Fut>(&self, what: &str, mut attempt: F) -> T
    where
        F: FnMut(Attempt) -> Fut,
        Fut: Future<Output = Step<T>>,
    {
        let mut tries = self.tries(what);
        loop {
            match attempt(tries.attempt()).await {
                Step::Done(t) => return t,
                Step::Retry {
                    last,
                    cause,
                    retry_after,
                } => {
                    if !tries.retry(&cause, retry_after).await {
                        return last;
                    }
                }
            }
        }
    }

    /// The same decisions for a loop that keeps state between attempts (a
    /// resumable upload asks the server where it stands before it goes on): the
    /// caller loops and calls [`Tries::retry`] after each failure a retry may cure.
    pub fn tries<'a>(&'a self, what: &'a str) -> Tries<'a> {
        Tries {
            retrier: self,
            what,
            start: tokio::time::Instant::now(),
            number: 1,
        }
    }
}

/// One request's attempts so far; see [`Retrier::tries`].
#[derive(Debug)]
pub struct Tries<'a> {
    retrier: &'a Retrier,
    what: &'a str,
    start: tokio::time::Instant,
    number: u32,
}

impl Tries<'_> {
    /// The attempt about to be made.
    pub fn attempt(&self) -> Attempt {
        let policy = &self.retrier.policy;
        let elapsed = self.start.elapsed();
        Attempt {
            number: self.number,
            elapsed,
            last: self.number > policy.max_retries || elapsed >= policy.max_elapsed,
        }
    }

    /// After a failure a retry may cure: waits and returns `true` when the policy
    /// allows another attempt, else returns `false` at once.
    pub async fn retry(&mut self, cause: &str, retry_after: Option<Duration>) -> bool {
        let r = self.retrier;
        if self.attempt().last {
            return false;
        }
        let wait = retry_after
            .map(|d| d.min(MAX_RETRY_AFTER))
            .unwrap_or_else(|| r.policy.backoff(self.number - 1, r.jitter.unit()));
        if self.start.elapsed() + wait > r.policy.max_elapsed {
            return false;
        }
        r.retries.fetch_add(1, Ordering::Relaxed);
        if is_congestion(cause) {
            r.congestion.fetch_add(1, Ordering::Relaxed);
        }
        tracing::warn!(request = %self.what, attempt = self.number + 1, delay_ms = wait.as_millis() as u64, cause = %cause, "retrying");
        tokio::time::sleep(wait).await;
        self.number += 1;
        true
    }

    /// Starts the count again (a resumable upload made progress).
    pub fn reset(&mut self) {
        self.start = tokio::time::Instant::now();
        self.number = 1;
    }
}

/// Whether a retry's cause is the server or the path asking for less: the
/// causes the clients give are `HTTP {status}` or the transport's error text.
fn is_congestion(cause: &str) -> bool {
    cause == "HTTP 429"
        || cause == "HTTP 503"
        || cause.contains("timed out")
        || cause.contains("timeout")
}

/// Whether an HTTP status is worth retrying.
pub fn retryable_status(status: u16) -> bool {
    status == 408 || status == 429 || (500..600).contains(&status)
}

/// The longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// The wait a `Retry-After` header value asks for, in seconds, capped at five
/// minutes. The HTTP-date form is rare from these servers and ignored.
pub fn retry_after(value: Option<&str>) -> Option<Duration> {
    let secs: u64 = value?.trim().parse().ok()?;
    Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}

/// Random numbers for jitter (and other unpredictable-enough numbers, such as
/// multipart boundaries): `fastrand`, seeded per client.
#[derive(Debug)]
pub struct Jitter(Mutex<fastrand::Rng>);

impl Default for Jitter {
    fn default() -> Self {
        Self::new()
    }
}

impl Jitter {
    /// A generator with a seed of its own.
    pub fn new() -> Self {
        Jitter(Mutex::new(fastrand::Rng::new()))
    }

    /// The next 64 random bits.
    pub fn next_u64(&self) -> u64 {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).u64(..)
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
    }

    /// Attempts seen by `run`, with the time (paused clock) each began.
    async fn attempts(
        policy: RetryPolicy,
        mut step: impl FnMut(Attempt) -> Step<u32>,
    ) -> (u32, Vec<(Attempt, Duration)>, u64) {
        let r = Retrier::new(policy);
        let start = tokio::time::Instant::now();
        let seen = std::sync::Mutex::new(Vec::new());
        let out = r
            .run("test", |a| {
                seen.lock().unwrap().push((a, start.elapsed()));
                let s = step(a);
                async move { s }
            })
            .await;
        let seen = seen.into_inner().unwrap();
        (out, seen, r.retries())
    }

    fn fail(a: Attempt) -> Step<u32> {
        Step::Retry {
            last: a.number,
            cause: "HTTP 503".into(),
            retry_after: None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retries_by_number_then_returns_the_last() {
        let p = RetryPolicy {
            jitter: Duration::ZERO,
            ..RetryPolicy::default()
        };
        let (out, seen, retries) = attempts(p, fail).await;
        assert_eq!(out, 6, "the sixth attempt's value");
        assert_eq!(retries, 5);
        let began: Vec<u64> = seen.iter().map(|(_, t)| t.as_secs()).collect();
        assert_eq!(began, vec![0, 2, 6, 14, 30, 62], "2, 4, 8, 16, 32 s apart");
        assert_eq!(
            seen.iter().map(|(a, _)| a.last).collect::<Vec<_>>(),
            [false, false, false, false, false, true]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn done_ends_at_once_and_retry_after_is_honoured() {
        let (out, seen, retries) = attempts(RetryPolicy::default(), |a| {
            if a.number == 3 {
                Step::Done(99)
            } else {
                Step::Retry {
                    last: 0,
                    cause: "HTTP 429".into(),
                    retry_after: Some(Duration::from_secs(7)),
                }
            }
        })
        .await;
        assert_eq!((out, seen.len(), retries), (99, 3, 2));
        assert_eq!(seen[2].1, Duration::from_secs(14));
    }

    #[tokio::test(start_paused = true)]
    async fn no_retry_starts_after_the_total_time_bound() {
        let p = RetryPolicy {
            max_retries: 100,
            jitter: Duration::ZERO,
            max_elapsed: Duration::from_secs(40),
            ..RetryPolicy::default()
        };
        let (out, seen, retries) = attempts(p, fail).await;
        // 0, 2, 6, 14, 30; the next wait (32 s) would start attempt 6 at 62 s > 40.
        assert_eq!((out, retries), (5, 4));
        assert!(seen.iter().all(|(_, t)| *t <= Duration::from_secs(40)));
    }

    #[test]
    fn jitter_stays_in_range() {
        let j = Jitter::new();
        for _ in 0..1000 {
            assert!((0.0..1.0).contains(&j.unit()));
        }
    }
}
