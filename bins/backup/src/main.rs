//! `backup`: back up an Immich library to a local directory (or, with the GCS
//! backend, a bucket). Glue only: settings, terminal output, signals and exit
//! codes live here; the work is `imb_engine`.
//!
//! Exit status: 0 all good; 2 the run finished with named problems (file
//! failures, suspected corruption, stopped early); 1 it could not run.

mod database;
mod metrics;
mod settings;
mod target;
mod ui;

use std::process::ExitCode;

use imb_engine::{Backup, StopToken};

fn main() -> ExitCode {
    let mut settings = match settings::Settings::load() {
        Ok(s) => s,
        Err(code) => return code,
    };
    let json = settings.json;
    let started = std::time::SystemTime::now();
    let term = imb_cli::Terminal::install(settings.log_format, json);
    let rt = match imb_cli::runtime() {
        Ok(rt) => rt,
        Err(e) => return fail(json, &e),
    };
    rt.block_on(settings.ping.start());
    let result = rt.block_on(async {
        let target = target::open(
            &settings.dest,
            &mut settings.config,
            &settings.target,
            settings.fsync,
        )
        .await?;
        let stop = StopToken::new();
        let on_signal = stop.clone();
        imb_cli::on_stop_signal(
            "finishing files in flight and saving the manifest",
            move || on_signal.stop(),
        );
        let database = database::run(&target, &settings.database, &mut settings.config).await;
        let backup = Backup::new(settings.config.clone(), target.store)
            .with_progress(ui::progress(&term))
            .with_stop(stop)
            .with_congestion_signal(target.congestion.clone());
        let backup = match target.replace {
            Some(r) => backup.with_replace(r),
            None => backup,
        };
        let mut summary = backup.run().await?;
        summary.retries += (target.retries)();
        summary.database = database;
        Ok::<_, anyhow::Error>((summary, (target.usage)()))
    });
    term.finish();
    let (code, status, said) = match &result {
        Ok((summary, usage)) => {
            let mut v = serde_json::to_value(summary).expect("summary serialises");
            v["peak_rss_bytes"] = serde_json::json!(peak_rss_bytes());
            // What the run asked of a billed store, and that at list prices.
            v["operations"] = serde_json::json!(usage);
            v["cost"] = serde_json::json!(imb_cost::Prices::default().estimate(usage));
            if json {
                imb_cli::print_json(&v);
            } else {
                ui::print_summary(summary);
            }
            if summary.has_problems() || database::failed(&summary.database) {
                (ExitCode::from(2), 2, v.to_string())
            } else {
                (ExitCode::SUCCESS, 0, v.to_string())
            }
        }
        Err(e) => (fail(json, e), 1, imb_cli::error_chain(e)),
    };
    // Reported whatever happened: a run that could not run is the one to see.
    let run = metrics::Run {
        started,
        status,
        summary: result.as_ref().ok().map(|(s, _)| s),
        peak_rss_bytes: peak_rss_bytes(),
    };
    rt.block_on(metrics::report(&settings.metrics, &settings.dest, &run));
    rt.block_on(settings.ping.finish(status, &said));
    code
}

fn fail(json: bool, e: &anyhow::Error) -> ExitCode {
    imb_cli::fail("backup", json, e)
}

/// The process's peak resident set size (Linux `VmHWM`), so memory can be
/// watched per run without extra tooling.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    /// "object already exists: gs://…/x.db: object already exists: gs://…/x.db"
    /// was printed for a create collision: the store error, once as the engine's
    /// message and once as its source.
    #[test]
    fn a_create_collision_names_the_object_once() {
        let store = imb_storage::Error::AlreadyExists {
            key: "gs://bk1/nightly/manifest-2026-12-01T03-00-00.db".into(),
        };
        let e = anyhow::Error::new(imb_engine::Error::Store(store));
        let shown = imb_cli::error_chain(&e);
        assert_eq!(shown.matches("object already exists").count(), 1, "{shown}");
        assert!(shown.contains("manifest-2026-12-01T03-00-00.db"), "{shown}");
    }
}
