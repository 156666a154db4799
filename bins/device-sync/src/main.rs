//! `device-sync`: back up a device's photo folders to an Immich server, as the
//! Immich mobile app's backup does. Glue only: settings, terminal output, signals,
//! watch mode's loop and exit codes live here; the work is `imb_devicesync`.
//!
//! Exit status: 0 all good (or a background condition was not met, so nothing
//! ran); 2 the run finished with named problems (failed files, the storage quota,
//! a stop request, albums that could not be synced); 1 it could not run.

mod settings;
mod ui;

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use imb_cli::{Terminal, print_json};
use imb_devicesync::conditions::{self, Check};
use imb_devicesync::watch::{Debounce, fingerprint};
use imb_devicesync::{DeviceSync, Retry, StopToken, Summary};
use imb_immich::ImmichClient;
use settings::{Command, Settings};

fn main() -> ExitCode {
    let settings = match Settings::load() {
        Ok(s) => s,
        Err(code) => return code,
    };
    let json = settings.json;
    let term = Terminal::install(settings.log_format, json);
    let rt = match imb_cli::runtime() {
        Ok(rt) => rt,
        Err(e) => return fail(json, &e),
    };
    let result = rt.block_on(run(&settings, &term));
    term.finish();
    match result {
        Ok(code) => code,
        Err(e) => fail(json, &e),
    }
}

async fn run(s: &Settings, term: &Terminal) -> anyhow::Result<ExitCode> {
    match &s.command {
        Command::Sync => {
            if let Some(why) = blocked(s) {
                return Ok(not_run(s, &why));
            }
            let stop = StopToken::new();
            spawn_signal_handler(stop.clone());
            s.ping.start().await;
            let ran = match client(s) {
                Ok(c) => DeviceSync::new(c, s.sync.clone())
                    .with_progress(ui::progress(term))
                    .with_stop(stop)
                    .run()
                    .await
                    .map_err(anyhow::Error::from),
                Err(e) => Err(e),
            };
            match ran {
                Ok(summary) => {
                    let code = report(s, &summary);
                    let status = if summary.has_problems() { 2 } else { 0 };
                    let said = serde_json::to_string(&summary).unwrap_or_default();
                    s.ping.finish(status, &said).await;
                    Ok(code)
                }
                Err(e) => {
                    s.ping.finish(1, &imb_cli::error_chain(&e)).await;
                    Err(e)
                }
            }
        }
        Command::Status | Command::Albums => {
            let client = if s.has_server() {
                Some(ImmichClient::new(s.client_config()?)?)
            } else {
                None
            };
            let st = imb_devicesync::status(&s.sync, client.as_ref()).await?;
            match (&s.command, s.json) {
                (Command::Status, true) => print_json(&serde_json::to_value(&st)?),
                (Command::Status, false) => ui::print_status(&st),
                (_, true) => print_json(&serde_json::json!({ "albums": st.albums })),
                (_, false) => ui::print_albums(&st.albums),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Failed { retry, retry_all } if retry.is_empty() && !retry_all => {
            let rows = imb_devicesync::failed_uploads(&s.sync.state_dir)?;
            if s.json {
                print_json(&serde_json::json!({ "failed": rows.len(), "uploads": rows }));
            } else {
                ui::print_failed(&rows);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Failed { retry, .. } => {
            let which = if retry.is_empty() {
                Retry::All
            } else {
                Retry::Ids(retry.clone())
            };
            let stop = StopToken::new();
            spawn_signal_handler(stop.clone());
            let summary = DeviceSync::new(client(s)?, s.sync.clone())
                .with_progress(ui::progress(term))
                .with_stop(stop)
                .retry(which)
                .await?;
            Ok(report(s, &summary))
        }
        Command::Watch { interval, poll } => watch(s, term, *interval, *poll).await,
    }
}

fn client(s: &Settings) -> anyhow::Result<Arc<ImmichClient>> {
    Ok(Arc::new(ImmichClient::new(s.client_config()?)?))
}

/// Prints the summary; 2 when the run left named problems.
fn report(s: &Settings, summary: &Summary) -> ExitCode {
    if s.json {
        print_json(&serde_json::to_value(summary).expect("summary serialises"));
    } else {
        ui::print_summary(summary);
    }
    if summary.has_problems() {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}

/// Why a background condition keeps this run from starting, if one does.
fn blocked(s: &Settings) -> Option<String> {
    let mut checks = Vec::new();
    if s.only_if_charging {
        checks.push(conditions::charging(Path::new(
            conditions::POWER_SUPPLY_DIR,
        )));
    }
    if s.only_if_unmetered {
        checks.push(conditions::unmetered());
    }
    for c in checks {
        match c {
            Check::Met => {}
            Check::Assumed(why) => tracing::info!("{why}"),
            Check::NotMet(why) => return Some(why),
        }
    }
    None
}

fn not_run(s: &Settings, why: &str) -> ExitCode {
    tracing::info!(reason = %why, "not syncing: a background condition is not met");
    if s.json {
        print_json(&serde_json::json!({ "ran": false, "reason": why }));
    }
    ExitCode::SUCCESS
}

async fn fingerprint_of(s: &Settings) -> u64 {
    let roots = s.sync.roots.clone();
    tokio::task::spawn_blocking(move || fingerprint(&roots))
        .await
        .unwrap_or(0)
}

/// Watch mode: sync, then poll the roots; sync again when they change (debounced
/// with the seed's TriggerDelay/MaxDelay) or when `interval` has passed. Each
/// sync takes the state directory's lock, so a manual `device-sync` in between is
/// safe: whichever comes second skips (or fails with "another device-sync is running").
async fn watch(
    s: &Settings,
    term: &Terminal,
    interval: Duration,
    poll: Duration,
) -> anyhow::Result<ExitCode> {
    let client = client(s)?;
    let stop = StopToken::new();
    spawn_signal_handler(stop.clone());
    let mut debounce = Debounce::default();
    tracing::info!(interval = %humantime::format_duration(interval), poll = %humantime::format_duration(poll), "watching for changes");
    while !stop.is_stopped() {
        // Taken before the sync, so a file added while it runs counts as a change.
        let mut last = fingerprint_of(s).await;
        if let Some(why) = blocked(s) {
            tracing::info!(reason = %why, "not syncing: a background condition is not met");
        } else {
            s.ping.start().await;
            let run = DeviceSync::new(client.clone(), s.sync.clone())
                .with_progress(ui::progress(term))
                .with_stop(stop.clone())
                .run()
                .await;
            // Each sync is a run to the dead-man's switch: a watcher that stops
            // syncing is what it is for.
            match &run {
                Ok(summary) => {
                    let status = if summary.has_problems() { 2 } else { 0 };
                    let said = serde_json::to_string(summary).unwrap_or_default();
                    s.ping.finish(status, &said).await;
                }
                Err(e) => s.ping.finish(1, &e.to_string()).await,
            }
            match run {
                Ok(summary) => {
                    if s.json {
                        print_json(&serde_json::to_value(&summary)?);
                    }
                    tracing::info!(
                        uploaded = summary.uploaded,
                        duplicates = summary.duplicates,
                        failed = summary.failed,
                        "sync finished"
                    );
                }
                Err(e) if e.is_lock_held() => tracing::info!("{e}; skipping this round"),
                Err(e) if e.is_unauthorized() => {
                    return Err(e).context("the server refused the API key");
                }
                Err(e) => tracing::error!(error = %e, "sync failed; trying again later"),
            }
        }
        debounce.reset();
        let since = Instant::now();
        loop {
            let wake = Instant::now() + poll;
            while Instant::now() < wake && !stop.is_stopped() {
                tokio::time::sleep(Duration::from_millis(200).min(poll)).await;
            }
            if stop.is_stopped() || since.elapsed() >= interval {
                break;
            }
            let now_fp = fingerprint_of(s).await;
            if now_fp != last {
                last = now_fp;
                debounce.changed(Instant::now());
                tracing::debug!("files changed");
            }
            if debounce.due(Instant::now()) {
                tracing::info!("files changed: syncing");
                break;
            }
        }
    }
    tracing::info!("watch stopped");
    Ok(ExitCode::SUCCESS)
}

fn fail(json: bool, e: &anyhow::Error) -> ExitCode {
    imb_cli::fail("device-sync", json, e)
}

/// SIGTERM and Ctrl-C ask for a graceful stop: uploads in flight finish.
fn spawn_signal_handler(stop: StopToken) {
    imb_cli::on_stop_signal("finishing the uploads in flight", move || stop.stop());
}
