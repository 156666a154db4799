//! `device-sync`: back up a device's photo folders to an Immich server, as the
//! Immich mobile app's backup does. Glue only: settings, terminal output, signals,
//! watch mode's loop and exit codes live here; the work is `imb_devicesync`.
//!
//! Exit status: 0 all good (or a background condition was not met, so nothing
//! ran); 2 the run finished with named problems (failed files, the storage quota,
//! a stop request, albums that could not be synced); 1 it could not run.

mod install;
mod notify;
mod settings;
mod ui;

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use imb_cli::{Terminal, print_json};
use imb_devicesync::conditions;
use imb_devicesync::watch::{Change, Debounce, Events, fingerprint};
use imb_devicesync::{DeviceSync, Retry, StopToken, Summary, SyncConfig};
use imb_immich::ImmichClient;
use settings::{Command, Settings, WatchMode, WatchOptions};

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
            let config = match allowed(s) {
                Ok(c) => c,
                Err(why) => return Ok(not_run(s, &why)),
            };
            let stop = StopToken::new();
            spawn_signal_handler(stop.clone());
            s.ping.start().await;
            let notifier = notifier(s).await;
            let ran = match client(s) {
                Ok(c) => {
                    let sync = DeviceSync::new(c, config).with_stop(stop);
                    notified(notifier.as_ref(), term, sync, None)
                        .await
                        .map_err(anyhow::Error::from)
                }
                Err(e) => Err(e),
            };
            ping_end(s, ran.as_ref().map_err(|e| e.as_ref() as _)).await;
            ran.map(|summary| report(s, &summary))
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
        Command::Watch(o) => watch(s, term, o).await,
        Command::Install {
            timer,
            enable,
            settings,
        } => install::install(*timer, *enable, settings, s.json),
        Command::Uninstall { enable } => install::uninstall(*enable, s.json),
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

/// The sync the network and power rules allow now: the settings with what
/// must wait held back, or why nothing may run. Either way `status` is told.
fn allowed(s: &Settings) -> Result<SyncConfig, String> {
    let a = s.rules.allowed(
        || conditions::charging(Path::new(conditions::POWER_SUPPLY_DIR)),
        conditions::unmetered,
    );
    for why in &a.assumed {
        tracing::info!("{why}");
    }
    if !s.sync.dry_run
        && let Err(e) = imb_devicesync::note_waiting(&s.sync.state_dir, a.why.as_deref())
    {
        tracing::warn!(error = %e, "could not note for `status` why runs wait");
    }
    if a.nothing() {
        return Err(a.why.unwrap_or_default());
    }
    if let Some(why) = &a.why {
        tracing::info!(reason = %why, "some files wait for a background condition");
    }
    let mut c = s.sync.clone();
    c.hold_photos = !a.photos;
    c.hold_videos = !a.videos;
    Ok(c)
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

/// How watch mode hears of changes.
enum Ears {
    Events(Events),
    /// Walking the roots every `poll`, with the last fingerprint.
    Poll(u64),
}

impl Ears {
    fn open(s: &Settings, mode: WatchMode) -> Ears {
        let roots: Vec<_> = s
            .sync
            .roots
            .iter()
            .map(|r| std::fs::canonicalize(r).unwrap_or_else(|_| r.clone()))
            .collect();
        let why = match mode {
            WatchMode::Poll => Some("--watch-mode poll".to_owned()),
            WatchMode::Auto => imb_devicesync::watch::poll_reason(&roots),
            WatchMode::Events => None,
        };
        if let Some(why) = why {
            tracing::info!(reason = %why, "watching by polling");
            return Ears::Poll(0);
        }
        match Events::start(&roots) {
            Ok(e) => {
                tracing::info!("watching by inotify events");
                Ears::Events(e)
            }
            Err(e) => {
                tracing::warn!(error = %e, "inotify is not available; watching by polling");
                Ears::Poll(0)
            }
        }
    }
}

/// Watch mode: a full sync, then syncs of what changed (debounced with the
/// seed's TriggerDelay/MaxDelay), and a full sync again at least every
/// `interval`. With inotify a change syncs only the changed paths; a queue
/// overflow, polling, and the interval walk the roots. Each sync takes the state
/// directory's lock, so a manual `device-sync` in between is safe: whichever
/// comes second skips (or fails with "another device-sync is running").
async fn watch(s: &Settings, term: &Terminal, o: &WatchOptions) -> anyhow::Result<ExitCode> {
    let client = client(s)?;
    let stop = StopToken::new();
    spawn_signal_handler(stop.clone());
    let mut debounce = Debounce::new(o.trigger_delay, o.max_delay);
    let mut ears = Ears::open(s, o.mode);
    let notifier = notifier(s).await;
    tracing::info!(interval = %humantime::format_duration(o.interval), "watching for changes");
    // Ticks short enough for the trigger delay, long enough to cost nothing.
    let tick = (o.trigger_delay / 2).clamp(Duration::from_millis(10), Duration::from_millis(200));
    let mut paths: Option<Vec<std::path::PathBuf>> = None;
    while !stop.is_stopped() {
        if let Ears::Poll(last) = &mut ears {
            // Taken before the sync, so a file added while it runs counts as a change.
            *last = fingerprint_of(s).await;
        }
        match allowed(s) {
            Err(why) => {
                tracing::info!(reason = %why, "not syncing: a background condition is not met");
            }
            Ok(config) => {
                s.ping.start().await;
                let sync = DeviceSync::new(client.clone(), config).with_stop(stop.clone());
                let run = notified(notifier.as_ref(), term, sync, paths.take()).await;
                // Each sync is a run to the dead-man's switch: a watcher that stops
                // syncing is what it is for.
                ping_end(s, run.as_ref().map_err(|e| e as _)).await;
                match run {
                    Ok(summary) => {
                        if s.json {
                            print_json(&serde_json::to_value(&summary)?);
                        }
                        tracing::info!(
                            uploaded = summary.uploaded,
                            duplicates = summary.duplicates,
                            failed = summary.failed,
                            walks = summary.walks,
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
        }
        debounce.reset();
        let since = Instant::now();
        let mut next_poll = Instant::now() + o.poll;
        loop {
            tokio::time::sleep(tick).await;
            if stop.is_stopped() || since.elapsed() >= o.interval {
                paths = None;
                break;
            }
            match &mut ears {
                Ears::Events(ev) => {
                    if ev.arrived() {
                        debounce.changed(Instant::now());
                    }
                }
                Ears::Poll(last) if Instant::now() >= next_poll => {
                    next_poll = Instant::now() + o.poll;
                    let now_fp = fingerprint_of(s).await;
                    if now_fp != *last {
                        *last = now_fp;
                        debounce.changed(Instant::now());
                    }
                }
                Ears::Poll(_) => {}
            }
            if debounce.due(Instant::now()) {
                paths = match &ears {
                    Ears::Events(ev) => match ev.take() {
                        Some(Change::Paths(p)) => Some(p),
                        // Overflow: only a walk finds everything.
                        Some(Change::Rescan) | None => None,
                    },
                    Ears::Poll(_) => None,
                };
                tracing::info!(
                    paths = paths.as_ref().map_or(0, Vec::len),
                    walk = paths.is_none(),
                    "files changed: syncing"
                );
                break;
            }
        }
    }
    tracing::info!("watch stopped");
    Ok(ExitCode::SUCCESS)
}

async fn notifier(s: &Settings) -> Option<notify::Notifier> {
    if s.notify {
        notify::Notifier::connect().await
    } else {
        None
    }
}

/// Runs `sync` (of `paths`, or everything) with the terminal's progress, and
/// with desktop notifications when there is a notifier.
async fn notified(
    notifier: Option<&notify::Notifier>,
    term: &Terminal,
    sync: DeviceSync,
    paths: Option<Vec<std::path::PathBuf>>,
) -> imb_devicesync::Result<Summary> {
    let counts = notify::Counting::new(ui::progress(term));
    let sync = sync.with_progress(counts.clone());
    let follow = notifier.map(|n| n.follow(counts));
    let run = match paths {
        Some(p) => sync.run_paths(p).await,
        None => sync.run().await,
    };
    if let Some(f) = follow {
        f.abort();
    }
    if let (Some(n), Ok(summary)) = (notifier, &run) {
        n.finished(summary).await;
    }
    run
}

/// Tells the dead-man's switch how a sync ended: 0 done, 2 done with named
/// problems, 1 it could not run. A sync that found another one running is 0:
/// the backup is being done, by that one.
async fn ping_end(s: &Settings, run: Result<&Summary, &(dyn std::error::Error + 'static)>) {
    let lock_held = |e: &(dyn std::error::Error + 'static)| {
        e.downcast_ref::<imb_devicesync::Error>()
            .is_some_and(imb_devicesync::Error::is_lock_held)
    };
    match run {
        Ok(summary) => {
            let status = if summary.has_problems() { 2 } else { 0 };
            let said = serde_json::to_string(summary).unwrap_or_default();
            s.ping.finish(status, &said).await;
        }
        Err(e) if lock_held(e) => s.ping.finish(0, &format!("skipped: {e}")).await,
        Err(e) => s.ping.finish(1, &imb_cli::chain_of(e)).await,
    }
}

fn fail(json: bool, e: &anyhow::Error) -> ExitCode {
    imb_cli::fail("device-sync", json, e)
}

/// SIGTERM and Ctrl-C ask for a graceful stop: uploads in flight finish.
fn spawn_signal_handler(stop: StopToken) {
    imb_cli::on_stop_signal("finishing the uploads in flight", move || stop.stop());
}
