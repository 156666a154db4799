//! Dumps the database Immich's settings name (`DB_URL`, or `DB_HOSTNAME` and the
//! other `DB_*` variables) into a local directory store and prints the report as
//! JSON, plus the SQL throughput, for the benchmark against `pg_dump | gzip > file`.
//!
//! `cargo run --release -p imb-pgdump --example dump -- DIR [--no-fsync]
//! [--threads N] [--level N] [--pg-dump PATH]`

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;
use std::time::SystemTime;

use imb_pgdump::{Connection, DumpOptions, dump};
use imb_storage::LocalDir;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut dir = None;
    let mut fsync = true;
    let mut opts = DumpOptions::default();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--no-fsync" => fsync = false,
            "--threads" => opts.compression_threads = value("--threads")?.parse()?,
            "--level" => opts.compression_level = value("--level")?.parse()?,
            "--pg-dump" => opts.pg_dump = value("--pg-dump")?.into(),
            _ if dir.is_none() && !arg.starts_with('-') => dir = Some(arg),
            _ => return Err(format!("unexpected argument {arg:?}").into()),
        }
    }
    let dir =
        dir.ok_or("usage: dump DIR [--no-fsync] [--threads N] [--level N] [--pg-dump PATH]")?;
    let conn =
        Connection::from_env()?.ok_or("set DB_URL (or DB_HOSTNAME and the other DB_* settings)")?;
    let store = LocalDir::new(dir)?.with_fsync(fsync);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(dump(&store, &conn, &opts, SystemTime::now()))?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    println!(
        "sql_mb_per_s {:.1}",
        report.sql_bytes as f64 / 1e6 / report.duration_s
    );
    Ok(())
}
