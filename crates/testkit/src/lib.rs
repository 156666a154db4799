//! What the tests need and the product must not ship: real GCS emulators and a
//! fault-injecting proxy in front of them ([`gcs`]), a test Immich server with
//! scripted faults ([`immich`]), the real Immich server ([`real_immich`]), and helpers for programs a test writes and runs
//! ([`exec`]). A dev-dependency only; it exposes ports, URLs, paths and what the
//! servers recorded, never a product type, so no crate under test ever sees a
//! second copy of itself. Each crate's tests build their clients from these.
//!
//! Every server listens on 127.0.0.1 on a free port and is stopped on drop;
//! readiness is the server's own signal (a log line, a bound listener), never a
//! timer.

pub mod exec;
pub mod fixtures;
pub mod gcs;
pub mod immich;
pub mod real_immich;

use std::path::PathBuf;

/// Where `cargo xtask test` installs the emulators, `@immich/cli` and Node.
pub fn tools_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/tools")
}
