//! What the binaries share and the library crates must not have: logging and
//! progress on a terminal, the CLI > environment > config file > default layering
//! of settings, the runtime, signals and the "could not run" exit.
//!
//! Only binaries depend on this crate, so it may use clap, indicatif,
//! tracing-subscriber and anyhow. What differs between the binaries (their
//! progress displays, summaries, flags) stays in each binary.

mod process;
mod report;
mod settings;
mod terminal;

pub use process::{on_stop_signal, runtime};
pub use report::{MetricsSink, Pinger};
pub use settings::{Layer, LogFormat, layered, load, negate, parse_args, parse_from, read_config};
pub use terminal::{Counters, Terminal, chain_of, error_chain, fail, log_tail, print_json};

#[cfg(test)]
mod tests;
