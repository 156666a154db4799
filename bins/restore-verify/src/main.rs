//! `restore-verify`: could we restore today? Checks a backup target against its
//! manifest (metadata, a seeded sample, or everything), restores it when asked,
//! and says how old the newest backup is. Glue only: the work is `imb_restore`.
//!
//! Exit status: 0 everything checked is good; 2 problems were found (each named);
//! 1 it could not run (bad flags, target unreachable, no manifest).

#![allow(clippy::print_stdout, clippy::print_stderr)]

mod metrics;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context, anyhow, bail};
use clap::Parser;
use clap::builder::BoolishValueParser;
use conflate::Merge;
use imb_restore::{Level, RestoreOptions, Snapshot, VerifyOptions};
use imb_storage::{Key, ObjectCreate, Payload, PutOptions};
use serde::Deserialize;
use serde_json::json;

/// Verify an immich-backup target and restore from it. Every setting can be a
/// flag, IMB_<FLAG> in the environment, or a key in the --config file (TOML, names
/// with underscores), in that order of precedence. The database dump is loaded
/// into a throwaway PostgreSQL from the system's binaries, or, when
/// IMB_VERIFY_DB_URL names a server (e.g. one with pgvector, for full fidelity),
/// into a new database there that is dropped afterwards.
#[derive(Debug, Default, Parser, Deserialize, Merge)]
#[command(name = "restore-verify", version)]
#[serde(deny_unknown_fields, default)]
#[merge(strategy = conflate::option::overwrite_none)]
struct Cli {
    /// The target `backup` wrote: a directory, file://PATH or gs://BUCKET[/PREFIX].
    #[arg(long, env = "IMB_FROM")]
    from: Option<String>,
    /// A TOML file with settings (keys as the flags, with underscores).
    #[arg(long, env = "IMB_CONFIG")]
    #[serde(skip)]
    config: Option<PathBuf>,
    /// Also download and re-hash a random sample of this many files.
    #[arg(long, env = "IMB_SAMPLE")]
    sample: Option<u64>,
    /// ... or of at most this many bytes.
    #[arg(long, env = "IMB_SAMPLE_BYTES")]
    sample_bytes: Option<u64>,
    /// Seed for the sample, for repeatable runs [default: random].
    #[arg(long, env = "IMB_SEED")]
    seed: Option<u64>,
    /// Download and re-hash every object.
    #[arg(long, env = "IMB_ALL", conflicts_with_all = ["sample", "sample_bytes"], num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_name = "BOOL", value_parser = BoolishValueParser::new())]
    all: Option<bool>,
    /// Re-hash one slice of the objects, the same for a given day on any machine,
    /// so that every object is re-hashed once every N days (a nightly job with
    /// --rotate 30 reads a thirtieth of the library each night).
    #[arg(long, env = "IMB_ROTATE", conflicts_with_all = ["sample", "sample_bytes", "all"])]
    rotate: Option<u32>,
    /// Refuse (exit 1) before any object is read when the estimated cost of the
    /// run's requests, retrievals and egress is above this many US dollars
    /// (prices: Google's list prices of late 2026, or the config file's [prices]).
    #[arg(long, env = "IMB_MAX_COST", value_name = "USD")]
    max_cost: Option<f64>,
    /// A dead-man's switch to ping (healthchecks.io's protocol): config file
    /// only, or IMB_PING_URL; never a flag, since the URL is a credential.
    #[arg(skip)]
    ping_url: Option<String>,
    /// Prices for the estimate, overriding the defaults (config file only:
    /// `[prices]` with `egress_per_gib` and `[prices.classes.ARCHIVE]` etc.).
    #[arg(skip)]
    prices: Option<imb_cost::PriceOverrides>,
    /// Use the backup as it was at this time (RFC 3339, 2024-01-15T03-00-00, or a
    /// manifest-….db name) instead of the newest.
    #[arg(long, env = "IMB_AT")]
    at: Option<String>,
    /// Restore the files into this directory (resumable; nothing is written outside it).
    #[arg(long, env = "IMB_RESTORE_TO")]
    restore_to: Option<PathBuf>,
    /// Only paths starting with this (relative to the backed-up root).
    #[arg(long, env = "IMB_PREFIX")]
    prefix: Option<String>,
    /// Fail (exit 2) when the newest backup is older than this (e.g. 36h).
    #[arg(long, env = "IMB_MAX_AGE", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde")]
    max_age: Option<Duration>,
    /// Write the report into the target as reports/{timestamp}.json.
    #[arg(long, env = "IMB_WRITE_REPORT", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_name = "BOOL", value_parser = BoolishValueParser::new())]
    write_report: Option<bool>,
    /// Restore and check the database dump [default: true].
    #[arg(long, env = "IMB_DATABASE", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_name = "BOOL", value_parser = BoolishValueParser::new())]
    database: Option<bool>,
    /// Same as --database=false.
    #[arg(long, env = "IMB_NO_DATABASE")]
    #[merge(skip)]
    no_database: bool,
    /// The dump to check (a database/… object) [default: the newest].
    #[arg(long, env = "IMB_DUMP")]
    dump: Option<String>,
    /// Where Immich sees the library, stripped from asset paths (repeatable)
    /// [default: where the dump says it was (Immich v3's MediaLocation), then /data
    /// and /usr/src/app/upload].
    #[arg(long, env = "IMB_IMMICH_ROOT", value_delimiter = ',')]
    immich_root: Option<Vec<String>>,
    /// Treat this extension as unavailable in the database check (repeatable):
    /// what needs it is skipped and listed, as on a server without it (e.g. a
    /// pgvector whose version differs from the dump's).
    #[arg(long, env = "IMB_WITHOUT_EXTENSION", value_delimiter = ',')]
    without_extension: Option<Vec<String>>,
    /// Restore the dump (--dump, or the newest) into the database Immich's own
    /// settings name (DB_URL, or DB_HOSTNAME, DB_PORT, DB_USERNAME, DB_PASSWORD,
    /// DB_DATABASE_NAME): credentials never go on the command line.
    #[arg(long, env = "IMB_DB_RESTORE", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_name = "BOOL", value_parser = BoolishValueParser::new())]
    db_restore: Option<bool>,
    /// With --db-restore: restore even into a database that has tables.
    #[arg(long, env = "IMB_FORCE", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_name = "BOOL", value_parser = BoolishValueParser::new())]
    force: Option<bool>,
    /// The psql to run for --db-restore [default: psql].
    #[arg(long, env = "IMB_PSQL")]
    psql: Option<PathBuf>,
    /// Check the restored Immich server running at this URL through its own API:
    /// every asset of the dump served (originals byte-identical, thumbnails
    /// present), every album as in the dump. Needs the database check.
    #[arg(long, env = "IMB_IMMICH_URL")]
    immich_url: Option<String>,
    /// For --immich-url: a file holding one user's API key (repeatable; else
    /// IMMICH_API_KEY, one key). Assets of users without a key are not checked;
    /// an administrator's key queues the regeneration.
    #[arg(long, env = "IMB_KEY_FILE", value_delimiter = ',')]
    key_file: Option<Vec<PathBuf>>,
    /// For --immich-url: queue Immich's forced regeneration of the thumbnails (and
    /// transcodes) the backup left out, and wait for it [default: true].
    #[arg(long, env = "IMB_REGENERATE", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_name = "BOOL", value_parser = BoolishValueParser::new())]
    regenerate: Option<bool>,
    /// For --immich-url: a certificate authority to trust besides the system's
    /// (PEM; repeatable).
    #[arg(long, env = "IMB_CA_CERT", value_delimiter = ',')]
    ca_cert: Option<Vec<PathBuf>>,
    /// Requests in flight, fixed [default: adapted to the link, from 16 up to 64,
    /// backing off on 429/503].
    #[arg(long, env = "IMB_CONCURRENCY")]
    concurrency: Option<usize>,
    /// Push the check's metrics to this Prometheus Pushgateway (POST, job
    /// immich_backup_verify); basic auth from IMB_METRICS_PUSH_USER and
    /// IMB_METRICS_PUSH_PASSWORD only.
    #[arg(long, env = "IMB_METRICS_PUSH")]
    metrics_push: Option<String>,
    /// Write the check's metrics to this file (atomically; node_exporter's
    /// textfile collector).
    #[arg(long, env = "IMB_METRICS_FILE")]
    metrics_file: Option<PathBuf>,
    /// Print one JSON report on stdout.
    #[arg(long, env = "IMB_JSON", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_name = "BOOL", value_parser = BoolishValueParser::new())]
    json: Option<bool>,
    /// Log lines on stderr as text or as one JSON object per line.
    #[arg(long, env = "IMB_LOG_FORMAT", value_enum)]
    log_format: Option<imb_cli::LogFormat>,
}

impl imb_cli::Layer for Cli {
    fn config(&self) -> Option<&std::path::Path> {
        self.config.as_deref()
    }

    fn fold_negations(&mut self) {
        imb_cli::negate(self.no_database, &mut self.database);
    }
}

impl Cli {
    fn from(&self) -> anyhow::Result<&str> {
        self.from
            .as_deref()
            .ok_or_else(|| anyhow!("--from is required (or IMB_FROM, or `from` in --config)"))
    }

    /// Requests in flight: fixed when given, else adapted to the link.
    fn flow(&self) -> imb_storage::adaptive::Limits {
        match self.concurrency {
            Some(n) => imb_storage::adaptive::Limits::fixed(n, imb_restore::FLOW_MEMORY),
            None => imb_restore::default_flow(),
        }
    }
}

fn on(setting: Option<bool>) -> bool {
    setting.unwrap_or(false)
}

fn main() -> ExitCode {
    let cli: Cli = match imb_cli::load("restore-verify", imb_cli::layered) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let json = on(cli.json);
    let _term = imb_cli::Terminal::install(cli.log_format.unwrap_or_default(), json);
    let rt = match imb_cli::runtime() {
        Ok(rt) => rt,
        Err(e) => return fail(json, &e),
    };
    let sink = match imb_cli::MetricsSink::new(cli.metrics_push.clone(), cli.metrics_file.clone()) {
        Ok(s) => s,
        Err(e) => return fail(json, &e),
    };
    let ping = match imb_cli::Pinger::new(cli.ping_url.clone()) {
        Ok(p) => p,
        Err(e) => return fail(json, &e),
    };
    rt.block_on(ping.start());
    let target = cli.from.clone().unwrap_or_default();
    let result = rt.block_on(run(cli));
    let (code, status, report) = match &result {
        Ok((report, problems)) => {
            if json {
                println!("{report}");
            } else {
                print_text(report);
            }
            if *problems {
                (ExitCode::from(2), 2, Some(report))
            } else {
                (ExitCode::SUCCESS, 0, Some(report))
            }
        }
        Err(e) => (fail(json, e), 1, None),
    };
    // Reported whatever happened: a check that could not run is the one to see.
    if sink.wanted() {
        rt.block_on(sink.report(metrics::JOB, &target, &metrics::metrics(status, report)));
    }
    let said = match &result {
        Ok((report, _)) => report.to_string(),
        Err(e) => imb_cli::error_chain(e),
    };
    rt.block_on(ping.finish(status, &said));
    code
}

fn fail(json: bool, e: &anyhow::Error) -> ExitCode {
    imb_cli::fail("restore-verify", json, e)
}

/// What the run will cost, worked out before any object is read: the check's
/// plan, the dump the database check downloads, and the files `--restore-to`
/// reads (all of them: the estimate does not know what a resumed restore has).
/// Printed, and refused above `--max-cost`.
async fn estimate(
    cli: &Cli,
    store: &dyn imb_storage::ObjectRead,
    snap: &Snapshot,
    plan: &imb_restore::VerifyPlan,
    assumed: Option<&str>,
) -> anyhow::Result<imb_cost::Estimate> {
    let mut usage = plan.usage.clone();
    if cli.database.unwrap_or(true) && assumed.is_some() {
        let dumps = imb_layout::list_dumps(store).await?;
        // The same dump the check will download (it was the oldest here once).
        if let Some((_, m)) = imb_layout::choose_dump(&dumps, cli.dump.as_deref()) {
            usage.read(m.storage_class.as_deref().or(assumed), m.size);
        }
    }
    if cli.restore_to.is_some() {
        usage.add(&imb_restore::restore_usage(snap, cli.prefix.clone(), assumed).await?);
    }
    let prices = imb_cost::Prices::default().with(&cli.prices.clone().unwrap_or_default());
    let e = prices.estimate(&usage);
    tracing::info!(
        operations = e.operations,
        bytes_retrieved = e.bytes_retrieved,
        estimated_usd = format!("{:.4}", e.estimated_usd),
        prices = e.prices,
        "estimated cost"
    );
    if let Some(max) = cli.max_cost
        && e.estimated_usd > max
    {
        bail!(
            "the estimated cost ${:.4} ({} requests, {} bytes retrieved; {}) is above --max-cost ${max}: nothing was read",
            e.estimated_usd,
            e.operations,
            e.bytes_retrieved,
            e.prices
        );
    }
    Ok(e)
}

/// `--at`: a manifest name, our timestamp form, or RFC 3339.
fn parse_at(s: &str) -> anyhow::Result<SystemTime> {
    if let Some(n) = imb_layout::ManifestName::parse(s.rsplit('/').next().unwrap_or(s)) {
        return imb_layout::parse_ts(&n.ts).ok_or_else(|| anyhow!("--at {s}: bad timestamp"));
    }
    imb_layout::parse_ts(s)
        .or_else(|| humantime::parse_rfc3339_weak(s).ok())
        .ok_or_else(|| {
            anyhow!("--at {s:?}: not a time (use 2024-01-15T03:00:00Z or a manifest name)")
        })
}

async fn run(cli: Cli) -> anyhow::Result<(serde_json::Value, bool)> {
    let at = cli.at.as_deref().map(parse_at).transpose()?;
    let from = cli.from()?;
    let levels = [
        on(cli.all),
        cli.sample.is_some() || cli.sample_bytes.is_some(),
        cli.rotate.is_some(),
    ];
    if levels.iter().filter(|l| **l).count() > 1 {
        bail!(
            "more than one of --all, --sample/--sample-bytes and --rotate is set (one may come from --config)"
        );
    }
    if cli.rotate == Some(0) {
        bail!("--rotate 0: the cycle needs at least one day");
    }
    if cli.max_cost.is_some_and(|c| !c.is_finite() || c < 0.0) {
        bail!("--max-cost must be a number of US dollars, 0 or more");
    }
    // Keys for `--immich-url`, and a database check to take the inventory from:
    // without them it could not run (exit 1), known before anything is downloaded.
    let immich = match &cli.immich_url {
        Some(url) => {
            if !cli.database.unwrap_or(true) {
                bail!("--immich-url compares the server with the dump: drop --no-database");
            }
            let mut o = imb_restore::ImmichCheckOptions::new(url.clone(), immich_keys(&cli)?);
            o.regenerate = cli.regenerate.unwrap_or(true);
            o.concurrency = cli.concurrency.unwrap_or(8).min(32);
            o.ca_certs = cli.ca_cert.clone().unwrap_or_default();
            Some(o)
        }
        None => None,
    };
    // `--db-restore` into a database that cannot take it: could not run (exit 1),
    // before anything is downloaded or loaded.
    if on(cli.db_restore) {
        let (conn, opts) = db_restore_settings(&cli)?;
        imb_pgdump::check_restore_target(&conn, &opts)
            .await
            .context("--db-restore")?;
    }
    let target = imb_targets::open(from, imb_targets::Options::default())
        .await
        .with_context(|| format!("--from {from}"))?;
    let store: Arc<dyn imb_storage::ObjectRead> = target.store.clone();
    let snap = Snapshot::fetch(&*store, at)
        .await
        .with_context(|| format!("--from {from}"))?;
    tracing::info!(manifest = %snap.name, "verifying against manifest");
    let level = if on(cli.all) {
        Level::All
    } else if let Some(every) = cli.rotate {
        Level::rotate_today(every)
    } else if cli.sample.is_some() || cli.sample_bytes.is_some() {
        let seed = cli.seed.unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
        Level::Sample {
            count: cli.sample,
            bytes: cli.sample_bytes,
            seed,
        }
    } else {
        Level::Metadata
    };
    let mut vopts = VerifyOptions::new(level.clone());
    vopts.flow = cli.flow();
    vopts.congestion = Some(target.congestion());
    vopts.prefix = cli.prefix.clone();
    // Objects of runs after an older restore point are no one's business here.
    vopts.unreferenced = at.is_none();
    // Objects a listing does not describe are priced as the library's default
    // class, the dearest to read; a local directory costs nothing.
    let priced = from.starts_with("gs://");
    vopts.assumed_class = priced.then(|| "ARCHIVE".to_owned());
    let plan = imb_restore::plan_verify(store.clone(), &snap, &vopts).await?;
    let cost = estimate(&cli, &*store, &snap, &plan, vopts.assumed_class.as_deref()).await?;
    let verified = imb_restore::verify_planned(store.clone(), &snap, &vopts, plan).await?;
    // A damaged manifest or journal is a finding too, even though an older one served.
    let mut problems = !verified.ok() || !snap.warnings.is_empty() || !snap.future.is_empty();
    for k in &snap.future {
        tracing::error!(manifest = %k, "a manifest dated more than a day ahead of now: ignored");
    }

    let mut report = json!({
        "from": from,
        "checked_at": humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        "manifest": snap.name,
        "manifest_base": snap.base,
        "manifest_time": humantime::format_rfc3339_seconds(snap.taken).to_string(),
        "replayed_journals": snap.replayed,
        "warnings": snap.warnings,
        "future_dated_manifests": snap.future,
        "level": match &level { Level::Metadata => json!("metadata"), Level::All => json!("all"),
            Level::Sample { count, bytes, seed } => json!({"sample": count, "sample_bytes": bytes, "seed": seed}),
            Level::Rotate { every, .. } => json!({"rotate": every}),
            _ => json!(null) },
        "verify": verified,
        "cost": cost,
    });

    // The dump the database check loaded without refusing it: the only one
    // `--db-restore` may load into a real server.
    let mut passed_dump: Option<String> = None;
    let mut inventory: Option<PathBuf> = None;
    if cli.database.unwrap_or(true) {
        let mut dopts = imb_restore::DbVerifyOptions::default();
        dopts.dump = cli.dump.clone();
        if let Some(roots) = cli.immich_root.clone().filter(|r| !r.is_empty()) {
            dopts.immich_roots = roots;
        }
        dopts.without_extensions = cli.without_extension.clone().unwrap_or_default();
        dopts.inventory = immich.is_some();
        // A full server to load the dump into. Environment only: a URL holds a password.
        if let Some(url) = std::env::var("IMB_VERIFY_DB_URL")
            .ok()
            .filter(|u| !u.is_empty())
        {
            dopts.server =
                Some(imb_pgdump::Connection::from_url(&url).context("IMB_VERIFY_DB_URL")?);
        }
        if let Some(p) = &cli.psql {
            dopts.psql = p.clone();
        }
        match imb_restore::verify_database(&*store, &snap, &dopts).await? {
            Some(db) => {
                problems |= !db.ok();
                report["database_ok"] = json!(db.ok());
                if db.refused.is_none() {
                    passed_dump = Some(db.dump.clone());
                }
                report["database"] = serde_json::to_value(&db)?;
                inventory = db.inventory.clone();
            }
            None => {
                tracing::warn!("no database dump in the target");
                report["database"] = json!(null);
            }
        }
    }

    if let Some(opts) = &immich {
        report["immich"] = match &inventory {
            Some(inv) => {
                tracing::info!(server = %opts.url, "checking the restored server");
                let r = imb_restore::verify_immich(inv, opts)
                    .await
                    .with_context(|| format!("--immich-url {}", opts.url))?;
                problems |= !r.ok();
                serde_json::to_value(&r)?
            }
            None => {
                problems = true;
                json!({ "error": "the database check did not load a dump, so there is nothing to compare the server with" })
            }
        };
    }

    if on(cli.db_restore) {
        report["db_restore"] = match db_restore(&cli, &*store, passed_dump.as_deref()).await {
            Ok(r) => r,
            Err(e) => {
                let e = imb_cli::error_chain(&e);
                tracing::error!(error = %e, "database restore failed");
                problems = true;
                json!({ "error": e })
            }
        };
    }

    if let Some(max) = cli.max_age {
        let age = SystemTime::now()
            .duration_since(snap.taken)
            .unwrap_or_default();
        let dump_age = imb_pgdump::list_dumps(&*store)
            .await
            .ok()
            .and_then(|d| d.first().and_then(|(n, _)| n.time()))
            .map(|t| SystemTime::now().duration_since(t).unwrap_or_default());
        let stale = age > max || dump_age.is_some_and(|a| a > max);
        report["freshness"] = json!({
            "max_age_s": max.as_secs(),
            "manifest_age_s": age.as_secs(),
            "dump_age_s": dump_age.map(|a| a.as_secs()),
            "stale": stale,
        });
        if stale {
            tracing::error!(
                manifest_age_s = age.as_secs(),
                "the newest backup is older than --max-age"
            );
            problems = true;
        }
    }

    if let Some(dir) = &cli.restore_to {
        let mut ropts = RestoreOptions::new(dir);
        ropts.prefix = cli.prefix.clone();
        ropts.flow = cli.flow();
        ropts.congestion = Some(target.congestion());
        let restored = imb_restore::restore(store.clone(), &snap, &ropts).await?;
        problems |= !restored.ok();
        report["restore"] = serde_json::to_value(&restored)?;
    }
    report["ok"] = json!(!problems);

    if on(cli.write_report) {
        let name = imb_layout::report_key(&imb_layout::format_ts(SystemTime::now()));
        let body = serde_json::to_vec_pretty(&report)?;
        let res = target
            .store
            .put_opts(&name, Payload::from(body), PutOptions::default())
            .await;
        match res {
            Ok(_) => report["report_object"] = json!(name.as_str()),
            Err(e) => tracing::warn!(error = %e, "could not write the report into the target"),
        }
    }
    Ok((report, problems))
}

/// `--db-restore`: the dump this run's database check passed, into the database
/// Immich's settings name.
async fn db_restore(
    cli: &Cli,
    store: &dyn imb_storage::ObjectRead,
    passed: Option<&str>,
) -> anyhow::Result<serde_json::Value> {
    let (conn, opts) = db_restore_settings(cli)?;
    let Some(passed) = passed else {
        bail!(
            "--db-restore loads only a dump that this run's database check loaded and did not refuse{}",
            if !cli.database.unwrap_or(true) {
                ": drop --no-database"
            } else {
                ""
            }
        );
    };
    let key = Key::parse(passed)?;
    tracing::info!(dump = %key, database = %conn, "restoring the database");
    let r = imb_pgdump::restore_dump(store, &key, &conn, &opts).await?;
    Ok(serde_json::to_value(&r)?)
}

/// The API keys for `--immich-url`: each `--key-file`, else `IMMICH_API_KEY`.
fn immich_keys(cli: &Cli) -> anyhow::Result<Vec<imb_immich::ApiKey>> {
    let files = cli.key_file.clone().unwrap_or_default();
    if files.is_empty() {
        return match imb_immich::ApiKey::from_env("IMMICH_API_KEY") {
            Ok(k) => Ok(vec![k]),
            Err(_) => bail!(
                "--immich-url needs API keys: --key-file FILE per user (repeatable), or IMMICH_API_KEY for one"
            ),
        };
    }
    files
        .iter()
        .map(|f| imb_immich::ApiKey::from_file(f).context("--key-file"))
        .collect()
}

/// The database Immich's settings name, and how to restore into it.
fn db_restore_settings(
    cli: &Cli,
) -> anyhow::Result<(imb_pgdump::Connection, imb_pgdump::RestoreDbOptions)> {
    let conn = imb_pgdump::Connection::from_env()?.ok_or_else(|| {
        anyhow!("--db-restore: set DB_URL or DB_HOSTNAME (and DB_PASSWORD…) to name the database")
    })?;
    let mut opts = imb_pgdump::RestoreDbOptions::default();
    opts.force = on(cli.force);
    if let Some(p) = &cli.psql {
        opts.psql = p.clone();
    }
    Ok((conn, opts))
}

fn print_text(r: &serde_json::Value) {
    let v = &r["verify"];
    println!(
        "{} against {} ({}): {} files checked, {} objects re-hashed",
        if r["ok"] == true { "OK" } else { "PROBLEMS" },
        r["manifest"].as_str().unwrap_or("?"),
        r["manifest_time"].as_str().unwrap_or("?"),
        v["files_checked"],
        v["objects_hashed"]
    );
    for f in v["findings"].as_array().into_iter().flatten() {
        println!(
            "  {}: {} ({})",
            f["path"].as_str().unwrap_or(""),
            f["problem"].as_str().unwrap_or(""),
            f["object"].as_str().unwrap_or("")
        );
    }
    if let Some(db) = r.get("database").filter(|d| !d.is_null()) {
        println!(
            "  database {}: {} users, {} assets checked against the backup, {} statements skipped",
            db["dump"].as_str().unwrap_or("?"),
            db["users"],
            db["originals_checked"],
            db["skipped_statements"].as_array().map_or(0, Vec::len)
        );
        for f in db["findings"].as_array().into_iter().flatten() {
            println!(
                "  {}: {}",
                f["path"].as_str().unwrap_or(""),
                f["problem"].as_str().unwrap_or("")
            );
        }
    }
    if let Some(im) = r.get("immich") {
        println!(
            "  immich {}: {} assets checked ({} originals identical, {} with thumbnails), {} albums identical of {}, {} assets not checked (no key)",
            im["server_version"].as_str().unwrap_or("?"),
            im["assets_checked"],
            im["originals_identical"],
            im["thumbnails_present"],
            im["albums_identical"],
            im["albums_checked"],
            im["not_checked"]
        );
        if let Some(e) = im["error"].as_str() {
            println!("  immich: {e}");
        }
        for f in im["findings"].as_array().into_iter().flatten() {
            println!(
                "  {}: {} ({})",
                f["path"].as_str().unwrap_or(""),
                f["problem"].as_str().unwrap_or(""),
                f["object"].as_str().unwrap_or("")
            );
        }
    }
    if let Some(fr) = r.get("freshness") {
        println!(
            "  newest backup is {} s old (limit {} s){}",
            fr["manifest_age_s"],
            fr["max_age_s"],
            if fr["stale"] == true { ": STALE" } else { "" }
        );
    }
    if let Some(rs) = r.get("restore") {
        println!(
            "  restored {} files ({} already present)",
            rs["files_restored"], rs["files_present"]
        );
        for f in rs["failures"]
            .as_array()
            .into_iter()
            .chain(rs["refused"].as_array())
            .flatten()
        {
            println!(
                "  not restored: {}: {}",
                f["path"].as_str().unwrap_or(""),
                f["problem"].as_str().unwrap_or("")
            );
        }
    }
}
