//! `--bwlimit`: one pace shared by every upload of a run, taken per piece of at
//! most [`PIECE`] bytes as the bytes are sent, so a 4 GB video is paced like a
//! thousand photos and no second carries more than the limit and one piece.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The most bytes sent on one reservation.
pub const PIECE: usize = 256 * 1024;

/// A pace of `rate` bytes a second: each piece is sent no earlier than the
/// moment the pieces before it, at that rate, have finished (no burst credit, so
/// any window of T seconds carries at most `rate × T` + one piece).
#[derive(Debug)]
pub struct Pace {
    rate: f64,
    origin: Instant,
    /// When the link is free again, since `origin`.
    free_at: Mutex<Duration>,
}

impl Pace {
    /// A pace of `bytes_per_sec` (at least 1).
    pub fn new(bytes_per_sec: u64) -> Self {
        Pace {
            rate: bytes_per_sec.max(1) as f64,
            origin: Instant::now(),
            free_at: Mutex::new(Duration::ZERO),
        }
    }

    /// Reserves `n` bytes (at most [`PIECE`]) asked for at `now` (since the pace
    /// was made) and returns when they may be sent. The clock is the caller's, so
    /// the rule is tested without sleeping.
    pub fn reserve_at(&self, n: u64, now: Duration) -> Duration {
        let mut free = self.free_at.lock().unwrap_or_else(|p| p.into_inner());
        let start = (*free).max(now);
        *free = start + Duration::from_secs_f64(n as f64 / self.rate);
        start
    }

    /// Blocks until `n` bytes may be sent (pieces larger than [`PIECE`] are taken
    /// as several). Call it from a blocking thread, just before sending.
    pub fn acquire(&self, mut n: u64) {
        while n > 0 {
            let piece = n.min(PIECE as u64);
            n -= piece;
            let now = self.origin.elapsed();
            let at = self.reserve_at(piece, now);
            if at > now {
                // Pacing, not synchronisation: the point is to spend the time.
                std::thread::sleep(at - now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever the piece sizes and the moments callers ask (several at once,
        /// or after idle gaps), no one-second window starting at a send carries
        /// more than the rate plus one piece, and a steady sender gets the rate.
        #[test]
        fn no_second_carries_more_than_the_rate_and_one_piece(
            rate in 64u64 * 1024..64 << 20,
            asks in prop::collection::vec((1u64..=PIECE as u64, 0u64..400), 1..300),
        ) {
            let pace = Pace::new(rate);
            let mut now = Duration::ZERO;
            let mut sent = Vec::new();
            for (n, gap_ms) in asks {
                // Callers arrive at their own moments; a blocked caller's clock
                // moves to when it was let go.
                now += Duration::from_millis(gap_ms % 7 * (gap_ms / 100));
                let at = pace.reserve_at(n, now);
                prop_assert!(at >= now);
                sent.push((at, n));
            }
            for (i, (t0, _)) in sent.iter().enumerate() {
                let window: u64 = sent[i..]
                    .iter()
                    .take_while(|(t, _)| *t < *t0 + Duration::from_secs(1))
                    .map(|(_, n)| n)
                    .sum();
                prop_assert!(window <= rate + PIECE as u64, "{window} bytes in a second at {rate}/s");
            }
        }
    }

    #[test]
    fn a_steady_sender_gets_the_rate() {
        let pace = Pace::new(1 << 20);
        let mut now = Duration::ZERO;
        for _ in 0..40 {
            now = pace.reserve_at(PIECE as u64, now);
        }
        // 40 pieces of 256 KiB at 1 MiB/s: the last one goes after 9.75 s.
        assert_eq!(now, Duration::from_millis(9750));
    }
}
