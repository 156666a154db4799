//! End-to-end tests: the real built binaries, run as child processes against
//! real targets. One test binary (see matklad, "Delete Cargo Integration Tests");
//! `cargo xtask test` builds the binaries first.

mod backup;
mod contract;
mod database;
mod deploy;
mod device_sync;
mod gcs;
mod lock;
mod monitoring;
mod real_immich;
mod restore;
mod secrets;
mod tamper;
mod tls;
mod util;
