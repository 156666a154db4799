//! Measures hashing throughput of SHA-256, SHA-1 and CRC32C alone and of the combined
//! [`imb_hash::Hasher`], for the benchmark task.
//!
//! Hashes a 64 MiB in-memory buffer and prints one line per algorithm, `name MB/s`
//! (MB = 1,000,000 bytes), taking the best of five runs so a noisy neighbour on a shared
//! machine does not decide the number. Run with
//! `cargo run --release -p imb-hash --example throughput`.

#![allow(clippy::print_stdout)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use sha2::Digest;

const SIZE: usize = 64 * 1024 * 1024;
const RUNS: usize = 5;

fn main() {
    let data = buffer();
    let results = [
        ("sha256", best(&data, |d| sha2::Sha256::digest(d))),
        ("sha1", best(&data, |d| sha1::Sha1::digest(d))),
        ("crc32c", best(&data, crc32c::crc32c)),
        ("combined", best(&data, imb_hash::digest)),
    ];
    for (name, elapsed) in results {
        let mb_per_s = SIZE as f64 / 1e6 / elapsed.as_secs_f64();
        println!("{name} {mb_per_s:.1}");
    }
}

/// Seeded random bytes: deterministic, and not all zeros, so no implementation
/// can shortcut on a trivial input.
fn buffer() -> Vec<u8> {
    let mut data = vec![0; SIZE];
    fastrand::Rng::with_seed(0x9E37_79B9_7F4A_7C15).fill(&mut data);
    data
}

/// The fastest of [`RUNS`] timed runs of `f` over `data`.
fn best<T>(data: &[u8], f: impl Fn(&[u8]) -> T) -> Duration {
    (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            // `black_box` on input and output keeps the optimiser from skipping the work.
            black_box(f(black_box(data)));
            start.elapsed()
        })
        .min()
        .unwrap_or_default()
}
