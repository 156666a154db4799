//! Settings from the command line, the environment and a config file, in that
//! order of precedence, then the built-in defaults: one struct, read by clap and by
//! serde, merged layer over layer (`imb_cli::layered`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, bail};
use clap::builder::BoolishValueParser;
use clap::{Parser, ValueEnum};
use conflate::Merge;
use imb_cli::{Layer, LogFormat, negate};
use imb_engine::{BackupConfig, DedupMode};
use serde::Deserialize;

/// Back up an Immich library (UPLOAD_LOCATION) incrementally, append-only, with a
/// SQLite manifest. Every setting can be a flag, IMB_<FLAG> in the environment, or
/// a key in the --config file (TOML, names with underscores), in that order of
/// precedence; on/off settings are `--X` / `--no-X` (`X = true|false` in the file).
#[derive(Debug, Default, Parser, Deserialize, Merge)]
#[command(name = "backup", version)]
#[serde(deny_unknown_fields, default)]
#[merge(strategy = conflate::option::overwrite_none)]
struct Options {
    /// The library root to back up (opened read-only).
    #[arg(long, env = "IMB_SOURCE")]
    source: Option<PathBuf>,
    /// Where to: a directory, file://PATH (gs://BUCKET[/PREFIX] with the GCS backend).
    #[arg(long, env = "IMB_DEST")]
    dest: Option<String>,
    /// A TOML file with settings (keys as the flags, with underscores).
    #[arg(long, env = "IMB_CONFIG")]
    #[serde(skip)]
    config: Option<PathBuf>,
    /// Hash-and-upload workers [default: 4].
    #[arg(long, env = "IMB_WORKERS")]
    workers: Option<usize>,
    /// Uploads in flight at once, fixed, independent of hashing threads [default:
    /// adapted to the link, from 16 up to 64, backing off on 429/503].
    #[arg(long, env = "IMB_UPLOADS")]
    uploads: Option<usize>,
    /// Upload queue capacity [default: workers × 10].
    #[arg(long, env = "IMB_QUEUE_SIZE")]
    queue_size: Option<usize>,
    /// Glob to leave out, relative to the source (repeatable; a matching directory
    /// leaves out everything below it). Adds to the defaults: thumbs, encoded-video.
    #[arg(long = "exclude", env = "IMB_EXCLUDE", value_delimiter = ',')]
    #[serde(alias = "exclude")]
    excludes: Option<Vec<String>>,
    /// Back up only files matching one of these globs (repeatable).
    #[arg(long = "include", env = "IMB_INCLUDE", value_delimiter = ',')]
    #[serde(alias = "include")]
    includes: Option<Vec<String>>,
    /// Exclude thumbs/ and encoded-video/, which Immich regenerates [default: true].
    #[arg(long, env = "IMB_DEFAULT_EXCLUDES", num_args = 0..=1,
          require_equals = true, default_missing_value = "true", value_name = "BOOL", value_parser = BoolishValueParser::new())]
    default_excludes: Option<bool>,
    /// Same as --default-excludes=false.
    #[arg(long, env = "IMB_NO_DEFAULT_EXCLUDES")]
    #[merge(skip)]
    no_default_excludes: bool,
    /// Re-hash every file, even unchanged ones, and report silent corruption.
    #[arg(long, env = "IMB_CHECKSUM", num_args = 0..=1,
          require_equals = true, default_missing_value = "true", value_name = "BOOL", value_parser = BoolishValueParser::new())]
    checksum: Option<bool>,
    /// Same as --checksum=false.
    #[arg(long)]
    #[merge(skip)]
    no_checksum: bool,
    /// Save a manifest journal after this many changed files [default: 1000].
    #[arg(long, env = "IMB_SAVE_EVERY")]
    save_every: Option<u64>,
    /// Stop gracefully after this long (e.g. 5h30m) and resume next run.
    #[arg(long, env = "IMB_MAX_DURATION", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde")]
    max_duration: Option<Duration>,
    /// Cap upload bandwidth, bytes per second (suffixes K, M, G: powers of 1024).
    #[arg(long, env = "IMB_BWLIMIT")]
    bwlimit: Option<String>,
    /// The Immich version to record in the manifest.
    #[arg(long, env = "IMB_IMMICH_VERSION")]
    immich_version: Option<String>,
    /// How content already in the target is reused.
    #[arg(long, env = "IMB_DEDUP", value_enum)]
    dedup: Option<Dedup>,
    /// Storage class for library objects on GCS [default: ARCHIVE].
    #[arg(long, env = "IMB_LIBRARY_CLASS")]
    library_class: Option<String>,
    /// Storage class for manifests on GCS [default: STANDARD].
    #[arg(long, env = "IMB_MANIFEST_CLASS")]
    manifest_class: Option<String>,
    /// Push the run's metrics to this Prometheus Pushgateway at the end of every
    /// run (POST, job `immich_backup`, label `target`); basic-auth credentials only
    /// from IMB_METRICS_PUSH_USER and IMB_METRICS_PUSH_PASSWORD.
    #[arg(long, env = "IMB_METRICS_PUSH")]
    metrics_push: Option<String>,
    /// Write the run's metrics to this file (atomically; node_exporter's textfile
    /// collector format).
    #[arg(long, env = "IMB_METRICS_FILE")]
    metrics_file: Option<PathBuf>,
    /// A dead-man's switch to ping (healthchecks.io's protocol): config file
    /// only, or IMB_PING_URL; never a flag, since the URL is a credential.
    #[arg(skip)]
    ping_url: Option<String>,
    /// Retries per request on transient errors (GCS) [default: 5].
    #[arg(long, env = "IMB_RETRIES")]
    retries: Option<u32>,
    /// First retry wait, doubling each time up to 32 s (e.g. 2s) [default: 2s].
    #[arg(long, env = "IMB_RETRY_INITIAL", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde")]
    retry_initial: Option<Duration>,
    /// Storage class for database dumps on GCS [default: STANDARD].
    #[arg(long, env = "IMB_DATABASE_CLASS")]
    database_class: Option<String>,
    /// Dump the database when DB_URL / DB_HOSTNAME are set [default: true].
    #[arg(long, env = "IMB_DATABASE", num_args = 0..=1,
          require_equals = true, default_missing_value = "true", value_name = "BOOL", value_parser = BoolishValueParser::new())]
    database: Option<bool>,
    /// --database=false: do not dump the database even if DB_URL / DB_HOSTNAME are set.
    #[arg(long, env = "IMB_NO_DATABASE")]
    #[merge(skip)]
    no_database: bool,
    /// The pg_dump to run (must not be older than the server) [default: pg_dump].
    #[arg(long, env = "IMB_PG_DUMP")]
    pg_dump: Option<PathBuf>,
    /// Database dumps to keep; older ones are deleted [default: 14].
    #[arg(long, env = "IMB_DB_BACKUP_RETENTION")]
    db_backup_retention: Option<usize>,
    /// Directory for working files [default: a temporary directory].
    #[arg(long, env = "IMB_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// Make a local target's objects durable (one filesystem sync before each
    /// manifest save) [default: true]; off only for throwaway targets (benchmarks).
    #[arg(long, env = "IMB_FSYNC", num_args = 0..=1, hide = true,
          require_equals = true, default_missing_value = "true", value_name = "BOOL", value_parser = BoolishValueParser::new())]
    fsync: Option<bool>,
    /// Same as --fsync=false.
    #[arg(long, env = "IMB_NO_FSYNC", hide = true)]
    #[merge(skip)]
    no_fsync: bool,
    /// Print one JSON summary object on stdout at the end.
    #[arg(long, env = "IMB_JSON", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_name = "BOOL", value_parser = BoolishValueParser::new())]
    json: Option<bool>,
    /// Log format on stderr.
    #[arg(long, env = "IMB_LOG_FORMAT", value_enum)]
    log_format: Option<LogFormat>,
    /// The CronJob's schedule lives in the same ConfigMap; not used by the binary.
    #[arg(skip)]
    #[merge(skip)]
    #[allow(dead_code, reason = "accepted in the ConfigMap, read by Kubernetes")]
    schedule: Option<String>,
}

impl Layer for Options {
    fn config(&self) -> Option<&std::path::Path> {
        self.config.as_deref()
    }

    fn fold_negations(&mut self) {
        negate(self.no_default_excludes, &mut self.default_excludes);
        negate(self.no_checksum, &mut self.checksum);
        negate(self.no_database, &mut self.database);
        negate(self.no_fsync, &mut self.fsync);
    }
}

#[derive(Debug, Clone, Copy, ValueEnum, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Dedup {
    Copy,
    Reference,
}

/// What the target is asked for (storage classes, retries); the backend fills in
/// its defaults.
#[derive(Debug, Default, Clone)]
pub(crate) struct TargetSettings {
    pub(crate) library: Option<String>,
    pub(crate) manifests: Option<String>,
    pub(crate) database: Option<String>,
    /// Whether the dedup mode was chosen explicitly (then it is not adjusted).
    pub(crate) dedup_set: bool,
    /// Retries per request.
    pub(crate) retries: Option<u32>,
    /// First retry wait.
    pub(crate) retry_initial: Option<Duration>,
}

/// Everything `main` needs.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) config: BackupConfig,
    pub(crate) target: TargetSettings,
    pub(crate) database: crate::database::DbSettings,
    pub(crate) dest: String,
    pub(crate) fsync: bool,
    pub(crate) json: bool,
    pub(crate) log_format: LogFormat,
    pub(crate) metrics: imb_cli::MetricsSink,
    pub(crate) ping: imb_cli::Pinger,
}

impl Settings {
    /// The settings, or the exit status once what went wrong has been printed.
    pub(crate) fn load() -> Result<Settings, ExitCode> {
        imb_cli::load("backup", Self::resolve)
    }

    fn resolve(cli: Options) -> anyhow::Result<Settings> {
        let o = imb_cli::layered(cli)?;
        let database = crate::database::DbSettings {
            skip: !o.database.unwrap_or(true),
            pg_dump: o.pg_dump,
            retention: Some(o.db_backup_retention.unwrap_or(14)),
        };
        if database.retention == Some(0) {
            bail!("db_backup_retention must be at least 1 (it is how many dumps to keep)");
        }
        let source = o.source.ok_or_else(|| {
            anyhow!("--source is required (or IMB_SOURCE, or `source` in --config)")
        })?;
        let dest = o
            .dest
            .ok_or_else(|| anyhow!("--dest is required (or IMB_DEST, or `dest` in --config)"))?;
        let mut config = BackupConfig::new(source);
        if let Some(w) = o.workers {
            if w == 0 {
                bail!("--workers must be at least 1");
            }
            config.workers = w;
        }
        config.uploads = o.uploads;
        config.queue_size = o.queue_size;
        config.excludes = if o.default_excludes.unwrap_or(true) {
            BackupConfig::default_excludes()
        } else {
            Vec::new()
        };
        config.excludes.extend(o.excludes.unwrap_or_default());
        config.includes = o.includes.unwrap_or_default();
        config.checksum = o.checksum.unwrap_or(false);
        if let Some(n) = o.save_every {
            config.save_every = n.max(1);
        }
        config.max_duration = o.max_duration;
        config.bwlimit = o.bwlimit.map(|s| parse_rate(&s)).transpose()?;
        config.immich_version = o.immich_version;
        let target = TargetSettings {
            library: o.library_class,
            manifests: o.manifest_class,
            database: o.database_class,
            dedup_set: o.dedup.is_some(),
            retries: o.retries,
            retry_initial: o.retry_initial,
        };
        config.dedup = match o.dedup {
            Some(Dedup::Reference) => DedupMode::Reference,
            _ => DedupMode::Copy,
        };
        config.state_dir = o.state_dir;
        Ok(Settings {
            config,
            target,
            database,
            dest,
            fsync: o.fsync.unwrap_or(true),
            json: o.json.unwrap_or(false),
            log_format: o.log_format.unwrap_or_default(),
            metrics: imb_cli::MetricsSink::new(o.metrics_push, o.metrics_file)?,
            ping: imb_cli::Pinger::new(o.ping_url)?,
        })
    }
}

/// `10M` → 10 MiB/s; plain numbers are bytes per second.
fn parse_rate(s: &str) -> anyhow::Result<u64> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m = match c.to_ascii_uppercase() {
                'K' => 1u64 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                _ => bail!("--bwlimit {s:?}: unknown unit {c:?} (use K, M or G)"),
            };
            (&t[..i], m)
        }
        _ => (t, 1),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| anyhow!("--bwlimit {s:?}: not a number"))?;
    if n.is_nan() || n <= 0.0 {
        bail!("--bwlimit {s:?}: must be positive");
    }
    Ok((n * mult as f64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> anyhow::Result<Settings> {
        let mut all = vec!["backup"];
        all.extend_from_slice(args);
        Settings::resolve(imb_cli::parse_from(all)?)
    }

    #[test]
    fn rates_parse() {
        assert_eq!(parse_rate("10M").unwrap(), 10 << 20);
        assert_eq!(parse_rate("1.5k").unwrap(), 1536);
        assert_eq!(parse_rate("100").unwrap(), 100);
        assert!(parse_rate("10X").unwrap_err().to_string().contains("unit"));
        assert!(
            parse_rate("-1")
                .unwrap_err()
                .to_string()
                .contains("must be positive")
        );
    }

    #[test]
    fn cli_beats_file_and_defaults_fill_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("c.toml");
        std::fs::write(&cfg, "source = '/from/file'\ndest = '/d'\nworkers = 8\nexcludes = ['backups']\ndb_backup_retention = 7\n").unwrap();
        let s = parse(&["--config", cfg.to_str().unwrap(), "--workers", "2"]).unwrap();
        assert_eq!(s.config.workers, 2);
        assert_eq!(s.config.source, PathBuf::from("/from/file"));
        assert_eq!(
            s.config.excludes,
            vec!["thumbs", "encoded-video", "backups"]
        );
        assert_eq!(s.config.queue_size, None);
    }

    /// Booleans used to be OR-ed across layers: `checksum = true` or
    /// `no_database = true` in the file could not be switched off.
    #[test]
    fn on_off_settings_in_the_file_can_be_switched_from_the_command_line() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("c.toml");
        let cfg_s = cfg.to_str().unwrap();
        std::fs::write(&cfg, "source = '/s'\ndest = '/d'\nchecksum = true\nno_database = true\ndefault_excludes = false\nfsync = false\njson = true\n").unwrap();
        let s = parse(&["--config", cfg_s]).unwrap();
        assert!(s.config.checksum && s.database.skip && !s.fsync && s.json);
        assert!(s.config.excludes.is_empty());
        let s = parse(&[
            "--config",
            cfg_s,
            "--no-checksum",
            "--database",
            "--default-excludes",
            "--fsync",
            "--json=false",
        ])
        .unwrap();
        assert!(!s.config.checksum && !s.database.skip && s.fsync && !s.json);
        assert_eq!(s.config.excludes, vec!["thumbs", "encoded-video"]);
        // The positive key in the file, the old negative flag on the command line.
        std::fs::write(&cfg, "source = '/s'\ndest = '/d'\ndatabase = true\n").unwrap();
        assert!(
            parse(&["--config", cfg_s, "--no-database"])
                .unwrap()
                .database
                .skip
        );
    }

    #[test]
    fn unknown_keys_and_missing_settings_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("c.toml");
        std::fs::write(&cfg, "source = '/s'\nwrokers = 3\n").unwrap();
        let err = parse(&["--config", cfg.to_str().unwrap()])
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("wrokers"), "{err}");
        let err = parse(&["--dest", "/d"]).err().unwrap().to_string();
        assert!(err.contains("--source"), "{err}");
    }
}
