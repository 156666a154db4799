//! How many transfers to keep in flight, adapted to the link: one small
//! controller for backup's uploads, restore-verify's downloads and device-sync's
//! uploads.
//!
//! A home server 30 ms from Cloud Storage needs many small uploads in flight to
//! fill its link; a local disk does not. The controller starts at
//! [`Limits::initial`], doubles while each window of completed transfers is
//! faster (files/s or bytes/s) than the last, steps back to the better setting
//! when it stops getting faster (a plateau), and re-probes upwards now and then.
//! A congestion signal (429, 503, a timeout: Google's "back off") halves it and
//! holds it there for a while. Memory bounds it too: a transfer counts by the
//! bytes it buffers, so a few large files never hold more than
//! [`Limits::memory`]. Optionally the rate of starts is capped, doubling no faster
//! than a set period (Cloud Storage's ramp-up rule for a bucket's writes).
//!
//! Time is passed in (`now`), so tests drive it with a manual clock.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde::Serialize;

/// The bounds of a controller.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Limits {
    /// Where it starts.
    pub initial: usize,
    /// Never fewer.
    pub min: usize,
    /// Never more.
    pub max: usize,
    /// Bytes buffered by transfers in flight, at most (one transfer may always run).
    pub memory: u64,
    /// Starts per second at first, if capped; the cap doubles every `rate_doubling`.
    pub start_rate: Option<f64>,
    /// How often the start-rate cap may double.
    pub rate_doubling: Duration,
}

impl Limits {
    /// Adaptive between 1 and `max`, from `initial`, within `memory` bytes.
    pub fn adaptive(initial: usize, max: usize, memory: u64) -> Self {
        let max = max.max(1);
        Limits {
            initial: initial.clamp(1, max),
            min: 1,
            max,
            memory,
            start_rate: None,
            rate_doubling: Duration::from_secs(20 * 60),
        }
    }

    /// Always `n` (what `--uploads N` / `--concurrency N` ask for); memory still bounds it.
    pub fn fixed(n: usize, memory: u64) -> Self {
        let n = n.max(1);
        Limits {
            initial: n,
            min: n,
            max: n,
            memory,
            start_rate: None,
            rate_doubling: Duration::from_secs(20 * 60),
        }
    }

    /// With Cloud Storage's ramp-up rule for object writes: at most `per_s` starts
    /// per second at first, doubling no faster than every 20 minutes.
    pub fn with_start_rate(mut self, per_s: f64) -> Self {
        self.start_rate = Some(per_s);
        self
    }
}

/// Why the limit changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Reason {
    /// The last window was faster than the one before.
    ThroughputGrew,
    /// More in flight did not make it faster: back to the better setting.
    ThroughputPlateau,
    /// Trying more again after holding.
    Probe,
    /// 429, 503 or a timeout.
    Congestion,
}

/// One change of the limit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// Seconds since the controller started.
    pub at_s: f64,
    /// The limit before.
    pub from: usize,
    /// The limit after.
    pub to: usize,
    /// Why.
    pub reason: Reason,
}

/// What the controller did, for summaries and `--json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Report {
    /// `adaptive` or `fixed`.
    pub mode: &'static str,
    /// The limit it started with.
    pub initial: usize,
    /// The highest limit it reached.
    pub max: usize,
    /// The limit at the end.
    pub last: usize,
    /// The most transfers actually in flight at once.
    pub peak_in_flight: usize,
    /// Times a start waited because the memory bound was reached.
    pub memory_bound: u64,
    /// Times a start waited for the start-rate cap.
    pub rate_bound: u64,
    /// Congestion signals seen (429, 503, timeouts).
    pub congestion: u64,
    /// The changes, the first [`MAX_CHANGES`].
    pub changes: Vec<Change>,
}

/// Changes listed in a [`Report`].
pub const MAX_CHANGES: usize = 100;

/// A window of completed transfers: rates are compared window to window.
#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    files: u64,
    bytes: u64,
    congested: bool,
}

/// Windows held after a step back or a congestion signal before probing again.
const HOLD_WINDOWS: u32 = 4;
/// Faster by at least this much counts as faster.
const GAIN: f64 = 1.10;
/// A window is at least this long and has at least this many completions…
const MIN_WINDOW: Duration = Duration::from_millis(250);
const MIN_FILES: u64 = 8;
/// … or ends after this long whatever it has.
const MAX_WINDOW: Duration = Duration::from_secs(5);

/// The controller. Not thread-safe by itself: callers keep it behind their lock
/// or in their one task.
#[derive(Debug, Clone)]
pub struct Controller {
    limits: Limits,
    limit: usize,
    in_flight: usize,
    bytes_in_flight: u64,
    start: Instant,
    window: Window,
    /// The rate of the window before, and the limit it ran at.
    last: Option<(f64, f64, usize)>,
    /// Still doubling (until the first plateau or congestion).
    slow_start: bool,
    hold: u32,
    /// Transfers in flight when the limit was last cut for congestion: their
    /// congestion was already answered.
    cooldown: usize,
    /// Start times within the last second, for the start-rate cap.
    starts: VecDeque<Instant>,
    report: Report,
}

impl Controller {
    /// A controller within `limits`, its clock starting at `now`.
    pub fn new(limits: Limits, now: Instant) -> Self {
        let fixed = limits.min == limits.max;
        Controller {
            limit: limits.initial,
            limits,
            in_flight: 0,
            bytes_in_flight: 0,
            start: now,
            window: Window {
                started: now,
                files: 0,
                bytes: 0,
                congested: false,
            },
            last: None,
            slow_start: true,
            hold: 0,
            cooldown: 0,
            starts: VecDeque::new(),
            report: Report {
                mode: if fixed { "fixed" } else { "adaptive" },
                initial: limits.initial,
                max: limits.initial,
                last: limits.initial,
                ..Report::default()
            },
        }
    }

    /// The limit now.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Transfers in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Starts a transfer that buffers `bytes`, if the limit, the memory bound and
    /// the start rate allow it now; `false` means wait for a completion (or, with
    /// a start-rate cap, a moment).
    pub fn try_start(&mut self, bytes: u64, now: Instant) -> bool {
        if self.in_flight >= self.limit {
            return false;
        }
        if self.in_flight > 0 && self.bytes_in_flight.saturating_add(bytes) > self.limits.memory {
            self.report.memory_bound += 1;
            return false;
        }
        if let Some(rate) = self.start_rate(now) {
            while self
                .starts
                .front()
                .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
            {
                self.starts.pop_front();
            }
            if self.starts.len() as f64 >= rate {
                self.report.rate_bound += 1;
                return false;
            }
            self.starts.push_back(now);
        }
        self.in_flight += 1;
        self.bytes_in_flight += bytes;
        self.report.peak_in_flight = self.report.peak_in_flight.max(self.in_flight);
        true
    }

    /// When a start refused for the rate cap may succeed.
    pub fn next_start(&self, now: Instant) -> Instant {
        match self.starts.front() {
            Some(t) if self.start_rate(now).is_some() => *t + Duration::from_secs(1),
            _ => now,
        }
    }

    /// The start-rate cap at `now`: doubled once per `rate_doubling` elapsed.
    fn start_rate(&self, now: Instant) -> Option<f64> {
        let base = self.limits.start_rate?;
        let periods = now.duration_since(self.start).as_secs_f64()
            / self.limits.rate_doubling.as_secs_f64().max(1e-9);
        Some(base * 2f64.powi(periods.floor().min(30.0) as i32))
    }

    /// A transfer started with `bytes` buffered has finished, having moved
    /// `moved` bytes; `congested` when it met a 429, 503 or timeout on the way
    /// (retried or not).
    pub fn finish(&mut self, bytes: u64, moved: u64, congested: bool, now: Instant) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.bytes_in_flight = self.bytes_in_flight.saturating_sub(bytes);
        self.window.files += 1;
        self.window.bytes += moved;
        if congested {
            self.report.congestion += 1;
        }
        if self.cooldown > 0 {
            self.cooldown -= 1;
        } else if congested {
            self.window.congested = true;
        }
        self.tick(now);
    }

    /// A transfer started with `bytes` buffered ended without moving anything
    /// worth timing (a file that needed no upload): the permit is returned, the
    /// window is not touched.
    pub fn cancel(&mut self, bytes: u64) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.bytes_in_flight = self.bytes_in_flight.saturating_sub(bytes);
    }

    /// `signals` congestion signals not tied to one transfer (the client's retry
    /// counter moved by that much).
    pub fn congestion(&mut self, signals: u64, now: Instant) {
        self.report.congestion += signals;
        if self.cooldown == 0 {
            self.window.congested = true;
        }
        self.tick(now);
    }

    /// Ends the window when it is long and full enough, and adapts.
    fn tick(&mut self, now: Instant) {
        let w = self.window;
        let elapsed = now.duration_since(w.started);
        let congested_now = w.congested && self.limit > self.limits.min && self.hold == 0;
        let full = elapsed >= MIN_WINDOW && w.files >= MIN_FILES.max(self.limit as u64);
        if !(congested_now || full || (elapsed >= MAX_WINDOW && w.files > 0)) {
            return;
        }
        self.window = Window {
            started: now,
            files: 0,
            bytes: 0,
            congested: false,
        };
        if self.limits.min == self.limits.max {
            return;
        }
        let secs = elapsed.as_secs_f64().max(1e-6);
        let (files_s, bytes_s) = (w.files as f64 / secs, w.bytes as f64 / secs);
        if w.congested {
            self.slow_start = false;
            self.hold = HOLD_WINDOWS;
            self.last = None;
            let to = (self.limit / 2).max(self.limits.min);
            self.set(to, Reason::Congestion, now);
            self.cooldown = self.in_flight;
            return;
        }
        let previous = self.last.replace((files_s, bytes_s, self.limit));
        if self.hold > 0 {
            self.hold -= 1;
            if self.hold == 0 && self.limit < self.limits.max {
                let to = (self.limit + (self.limit / 4).max(1)).min(self.limits.max);
                self.set(to, Reason::Probe, now);
            }
            return;
        }
        let Some((pf, pb, plimit)) = previous else {
            // The first window: nothing to compare with yet; go up if we may.
            if self.slow_start && self.limit < self.limits.max {
                let to = (self.limit * 2).min(self.limits.max);
                self.set(to, Reason::ThroughputGrew, now);
            }
            return;
        };
        let faster = files_s > pf * GAIN || bytes_s > pb * GAIN;
        if faster && self.limit < self.limits.max {
            let to = if self.slow_start {
                self.limit * 2
            } else {
                self.limit + (self.limit / 4).max(1)
            }
            .min(self.limits.max);
            self.set(to, Reason::ThroughputGrew, now);
        } else if !faster && plimit < self.limit {
            // More in flight bought nothing: back to where it was as fast.
            self.slow_start = false;
            self.hold = HOLD_WINDOWS;
            self.last = Some((pf.max(files_s), pb.max(bytes_s), plimit));
            self.set(plimit, Reason::ThroughputPlateau, now);
        } else if !faster {
            self.slow_start = false;
            self.hold = HOLD_WINDOWS;
        }
    }

    fn set(&mut self, to: usize, reason: Reason, now: Instant) {
        let to = to.clamp(self.limits.min, self.limits.max);
        if to == self.limit {
            return;
        }
        if self.report.changes.len() < MAX_CHANGES {
            self.report.changes.push(Change {
                at_s: (now.duration_since(self.start).as_secs_f64() * 1000.0).round() / 1000.0,
                from: self.limit,
                to,
                reason,
            });
        }
        self.limit = to;
        self.report.max = self.report.max.max(to);
        self.report.last = to;
    }

    /// What it did so far.
    pub fn report(&self) -> Report {
        let mut r = self.report.clone();
        r.last = self.limit;
        r
    }
}

/// A monotonic count of congestion signals to watch (a client's retries after
/// 429, 503 or a timeout).
#[derive(Clone)]
pub struct Signal(pub std::sync::Arc<dyn Fn() -> u64 + Send + Sync>);

impl std::fmt::Debug for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signal")
    }
}

impl Signal {
    fn read(&self) -> u64 {
        (self.0)()
    }
}

/// A [`Controller`] on the real clock that also watches a client's congestion
/// count: what a transfer loop holds (behind a lock when threads share it).
pub struct Flow {
    ctl: Controller,
    signal: Option<Signal>,
    seen: u64,
}

impl std::fmt::Debug for Flow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flow")
            .field("ctl", &self.ctl)
            .finish_non_exhaustive()
    }
}

impl Flow {
    /// Within `limits`, backing off when `signal` moves.
    pub fn new(limits: Limits, signal: Option<Signal>) -> Flow {
        let seen = signal.as_ref().map_or(0, Signal::read);
        Flow {
            ctl: Controller::new(limits, Instant::now()),
            signal,
            seen,
        }
    }

    /// See [`Controller::try_start`].
    pub fn try_start(&mut self, bytes: u64) -> bool {
        self.ctl.try_start(bytes, Instant::now())
    }

    /// When a start refused for the rate cap may succeed.
    pub fn next_start(&self) -> Instant {
        self.ctl.next_start(Instant::now())
    }

    /// A transfer that buffered `bytes` ended: `moved` bytes transferred, or
    /// `None` when it transferred nothing worth timing.
    pub fn finish(&mut self, bytes: u64, moved: Option<u64>) {
        let now = Instant::now();
        if let Some(signal) = &self.signal {
            let count = signal.read();
            if count > self.seen {
                self.ctl.congestion(count - self.seen, now);
                self.seen = count;
            }
        }
        match moved {
            Some(m) => self.ctl.finish(bytes, m, false, now),
            None => self.ctl.cancel(bytes),
        }
    }

    /// What it did so far.
    pub fn report(&self) -> Report {
        self.ctl.report()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A simulated link: each transfer takes `latency` plus its bytes at
    /// `bandwidth` shared by everything in flight, and the server answers 503 to
    /// starts beyond `overload` in flight. Runs `files` transfers of `size` bytes
    /// with the controller and returns the simulated seconds and the controller.
    fn simulate(
        limits: Limits,
        files: usize,
        size: u64,
        latency: Duration,
        bandwidth: f64,
        overload: Option<usize>,
    ) -> (f64, Controller) {
        let t0 = Instant::now();
        let mut now = t0;
        let mut c = Controller::new(limits, now);
        // (finish time, congested)
        let mut flying: Vec<(Instant, bool)> = Vec::new();
        let mut left = files;
        while left > 0 || !flying.is_empty() {
            while left > 0 && c.try_start(size, now) {
                left -= 1;
                let n = c.in_flight() as f64;
                let transfer = Duration::from_secs_f64(size as f64 * n / bandwidth);
                let congested = overload.is_some_and(|o| c.in_flight() > o);
                flying.push((now + latency + transfer, congested));
            }
            // Advance the manual clock to the next completion.
            flying.sort_by_key(|f| f.0);
            let (at, congested) = flying.remove(0);
            now = now.max(at);
            c.finish(size, if congested { 0 } else { size }, congested, now);
            if congested {
                left += 1; // a 503 is done again
            }
        }
        (now.duration_since(t0).as_secs_f64(), c)
    }

    const MB: f64 = 1e6;

    #[test]
    fn on_a_slow_link_it_converges_near_the_best_fixed_setting() {
        let lat = Duration::from_millis(30);
        let bw = 50.0 * MB;
        let best = [4, 16, 64]
            .map(|n| simulate(Limits::fixed(n, u64::MAX), 3000, 4000, lat, bw, None).0)
            .into_iter()
            .fold(f64::INFINITY, f64::min);
        let (adaptive, c) = simulate(
            Limits::adaptive(16, 64, u64::MAX),
            3000,
            4000,
            lat,
            bw,
            None,
        );
        assert!(
            adaptive <= best * 1.3,
            "adaptive {adaptive:.2} s, best fixed {best:.2} s: {:?}",
            c.report()
        );
        let r = c.report();
        assert!(r.max >= 32, "it grew: {r:?}");
        assert!(r.changes.len() <= 20, "bounded steps: {r:?}");
    }

    #[test]
    fn on_a_fast_link_it_does_not_grow_for_nothing_and_is_not_slower() {
        // No latency to hide: the bandwidth is the bound, more in flight buys nothing.
        let bw = 200.0 * MB;
        let (fixed4, _) = simulate(
            Limits::fixed(4, u64::MAX),
            2000,
            400_000,
            Duration::ZERO,
            bw,
            None,
        );
        let (adaptive, c) = simulate(
            Limits::adaptive(16, 64, u64::MAX),
            2000,
            400_000,
            Duration::ZERO,
            bw,
            None,
        );
        assert!(
            adaptive <= fixed4 * 1.05,
            "adaptive {adaptive:.2} s vs 4: {fixed4:.2} s"
        );
        let r = c.report();
        assert!(
            r.changes
                .iter()
                .any(|ch| ch.reason == Reason::ThroughputPlateau),
            "it saw the plateau and stepped back: {r:?}"
        );
        assert!(r.last <= 32, "{r:?}");
    }

    #[test]
    fn it_backs_off_on_503s() {
        let (_, c) = simulate(
            Limits::adaptive(16, 64, u64::MAX),
            3000,
            4000,
            Duration::from_millis(30),
            50.0 * MB,
            Some(20),
        );
        let r = c.report();
        assert!(r.congestion > 0, "{r:?}");
        assert!(
            r.changes
                .iter()
                .any(|ch| ch.reason == Reason::Congestion && ch.to < ch.from),
            "halved on 503: {r:?}"
        );
        assert!(
            r.last <= 32,
            "it does not stay above the overload point for long: {r:?}"
        );
    }

    #[test]
    fn a_fixed_setting_never_moves_and_memory_bounds_large_files() {
        let (_, c) = simulate(
            Limits::fixed(8, u64::MAX),
            500,
            4000,
            Duration::from_millis(30),
            50.0 * MB,
            None,
        );
        let r = c.report();
        assert_eq!((r.mode, r.initial, r.max, r.last), ("fixed", 8, 8, 8));
        assert!(r.changes.is_empty());
        // 64 MiB of memory and 30 MB files: two at a time, whatever the limit.
        let (_, c) = simulate(
            Limits::adaptive(16, 64, 64 << 20),
            40,
            30_000_000,
            Duration::from_millis(30),
            50.0 * MB,
            None,
        );
        let r = c.report();
        assert_eq!(r.peak_in_flight, 2, "{r:?}");
        assert!(r.memory_bound > 0, "{r:?}");
    }

    #[test]
    fn the_start_rate_cap_holds_and_doubles_after_its_period() {
        let t0 = Instant::now();
        let mut limits = Limits::adaptive(64, 64, u64::MAX).with_start_rate(10.0);
        limits.rate_doubling = Duration::from_secs(60);
        let mut c = Controller::new(limits, t0);
        let mut started = 0;
        while c.try_start(1, t0) {
            started += 1;
        }
        assert_eq!(started, 10, "ten starts in the first second");
        assert!(c.next_start(t0) > t0);
        for _ in 0..10 {
            c.finish(1, 1, false, t0);
        }
        let later = t0 + Duration::from_secs(61);
        let mut started = 0;
        while c.try_start(1, later) {
            started += 1;
        }
        assert_eq!(started, 20, "doubled after the period");
    }
}
