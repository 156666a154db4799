//! `backup`: back up an Immich library to a local directory (or, with the GCS
//! backend, a bucket). Glue only: settings, terminal output, signals and exit
//! codes live here; the work is `imb_engine`.
//!
//! Exit status: 0 all good; 2 the run finished with named problems (file
//! failures, suspected corruption, stopped early); 1 it could not run.

mod database;
mod settings;
mod target;
mod ui;

use std::process::ExitCode;

use imb_engine::{Backup, StopToken};

fn main() -> ExitCode {
    let mut settings = match settings::Settings::load() {
        Ok(s) => s,
        Err(settings::LoadError::Exit(code)) => return code,
        Err(settings::LoadError::Invalid(e)) => return fail(false, &e),
    };
    let json = settings.json;
    let ui = ui::Ui::install(settings.log_format, json);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(json, &anyhow::anyhow!("cannot start the runtime: {e}")),
    };
    let result = rt.block_on(async {
        let target = target::open(
            &settings.dest,
            &mut settings.config,
            &settings.classes,
            settings.fsync,
        )
        .await?;
        let stop = StopToken::new();
        spawn_signal_handler(stop.clone());
        let database = database::run(&target, &settings.database, &mut settings.config).await;
        let backup = Backup::new(settings.config.clone(), target.store)
            .with_progress(ui.progress())
            .with_stop(stop);
        let backup = match target.replace {
            Some(r) => backup.with_replace(r),
            None => backup,
        };
        let mut summary = backup.run().await?;
        summary.retries += (target.retries)();
        summary.database = database;
        Ok::<_, anyhow::Error>(summary)
    });
    ui.finish();
    match result {
        Ok(summary) => {
            if json {
                let mut v = serde_json::to_value(&summary).expect("summary serialises");
                v["peak_rss_bytes"] = serde_json::json!(peak_rss_bytes());
                ui::print_json(&v);
            } else {
                ui::print_summary(&summary);
            }
            if summary.has_problems() || database::failed(&summary.database) {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => fail(json, &e),
    }
}

fn fail(json: bool, e: &anyhow::Error) -> ExitCode {
    let msg = format!("{e:#}");
    if json {
        ui::print_json(&serde_json::json!({ "error": msg }));
    }
    ui::print_error(&msg);
    ExitCode::from(1)
}

/// The process's peak resident set size (Linux `VmHWM`), so memory can be
/// watched per run without extra tooling.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// SIGTERM (Kubernetes stopping the pod) and Ctrl-C ask for a graceful stop.
fn spawn_signal_handler(stop: StopToken) {
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            tracing::warn!("cannot listen for signals; stop with --max-duration instead");
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::warn!("stop requested: finishing files in flight and saving the manifest");
        stop.stop();
    });
}
