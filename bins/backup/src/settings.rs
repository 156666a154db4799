//! Settings from the command line, the environment and a config file, in that
//! order of precedence, then the built-in defaults.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, bail};
use clap::{Parser, ValueEnum};
use imb_cli::{LogFormat, duration_setting, list_setting};
use imb_engine::{BackupConfig, DedupMode};
use serde::Deserialize;

/// Back up an Immich library (UPLOAD_LOCATION) incrementally, append-only, with a
/// SQLite manifest. Every flag can also be set as IMB_<FLAG> in the environment or
/// as a key in the --config file.
#[derive(Debug, Parser)]
#[command(name = "backup", version)]
struct Cli {
    /// The library root to back up (opened read-only).
    #[arg(long, env = "IMB_SOURCE")]
    source: Option<PathBuf>,
    /// Where to: a directory, file://PATH (gs://BUCKET[/PREFIX] with the GCS backend).
    #[arg(long, env = "IMB_DEST")]
    dest: Option<String>,
    /// A TOML file with settings (keys as the flags, with underscores).
    #[arg(long, env = "IMB_CONFIG")]
    config: Option<PathBuf>,
    /// Hash-and-upload workers [default: 4].
    #[arg(long, env = "IMB_WORKERS")]
    workers: Option<usize>,
    /// Uploads in flight at once, independent of hashing threads [default: workers].
    #[arg(long, env = "IMB_UPLOADS")]
    uploads: Option<usize>,
    /// Upload queue capacity [default: workers × 10].
    #[arg(long, env = "IMB_QUEUE_SIZE")]
    queue_size: Option<usize>,
    /// Glob to leave out, relative to the source (repeatable; a matching directory
    /// leaves out everything below it). Adds to the defaults: thumbs, encoded-video.
    #[arg(long, env = "IMB_EXCLUDE", value_delimiter = ',')]
    exclude: Vec<String>,
    /// Back up only files matching one of these globs (repeatable).
    #[arg(long, env = "IMB_INCLUDE", value_delimiter = ',')]
    include: Vec<String>,
    /// Do not exclude thumbs/ and encoded-video/ by default.
    #[arg(long, env = "IMB_NO_DEFAULT_EXCLUDES")]
    no_default_excludes: bool,
    /// Re-hash every file, even unchanged ones, and report silent corruption.
    #[arg(long, env = "IMB_CHECKSUM")]
    checksum: bool,
    /// Save a manifest journal after this many changed files [default: 1000].
    #[arg(long, env = "IMB_SAVE_EVERY")]
    save_every: Option<u64>,
    /// Stop gracefully after this long (e.g. 5h30m) and resume next run.
    #[arg(long, env = "IMB_MAX_DURATION", value_parser = humantime::parse_duration)]
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
    /// Retries per request on transient errors (GCS) [default: 5].
    #[arg(long, env = "IMB_RETRIES")]
    retries: Option<u32>,
    /// First retry wait, doubling each time up to 32 s (e.g. 2s) [default: 2s].
    #[arg(long, env = "IMB_RETRY_INITIAL", value_parser = humantime::parse_duration)]
    retry_initial: Option<Duration>,
    /// Storage class for database dumps on GCS [default: STANDARD].
    #[arg(long, env = "IMB_DATABASE_CLASS")]
    database_class: Option<String>,
    /// Do not dump the database even if DB_URL / DB_HOSTNAME are set.
    #[arg(long, env = "IMB_NO_DATABASE")]
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
    /// Skip fsync on a local target: only for throwaway targets (benchmarks).
    #[arg(long, env = "IMB_NO_FSYNC", hide = true)]
    no_fsync: bool,
    /// Print one JSON summary object on stdout at the end.
    #[arg(long, env = "IMB_JSON")]
    json: bool,
    /// Log format on stderr.
    #[arg(long, env = "IMB_LOG_FORMAT", value_enum)]
    log_format: Option<LogFormat>,
}

#[derive(Debug, Clone, Copy, ValueEnum, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Dedup {
    Copy,
    Reference,
}

/// The config file. Keys match the flags (and the seed's ConfigMap where they
/// overlap); unknown keys are errors that name the key.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    source: Option<PathBuf>,
    dest: Option<String>,
    workers: Option<usize>,
    uploads: Option<usize>,
    queue_size: Option<usize>,
    #[serde(alias = "exclude")]
    excludes: Option<Vec<String>>,
    #[serde(alias = "include")]
    includes: Option<Vec<String>>,
    default_excludes: Option<bool>,
    checksum: Option<bool>,
    save_every: Option<u64>,
    max_duration: Option<String>,
    bwlimit: Option<String>,
    immich_version: Option<String>,
    dedup: Option<Dedup>,
    state_dir: Option<PathBuf>,
    log_format: Option<LogFormat>,
    library_class: Option<String>,
    manifest_class: Option<String>,
    retries: Option<u32>,
    retry_initial: Option<String>,
    database_class: Option<String>,
    no_database: Option<bool>,
    pg_dump: Option<PathBuf>,
    db_backup_retention: Option<usize>,
    /// The CronJob's schedule lives in the same ConfigMap; not used by the binary.
    schedule: Option<String>,
}

/// Storage classes asked for; the backend fills in its defaults.
#[derive(Debug, Default, Clone)]
pub(crate) struct Classes {
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
    pub(crate) classes: Classes,
    pub(crate) database: crate::database::DbSettings,
    pub(crate) dest: String,
    pub(crate) fsync: bool,
    pub(crate) json: bool,
    pub(crate) log_format: LogFormat,
}

impl Settings {
    /// The settings, or the exit status once what went wrong has been printed.
    pub(crate) fn load() -> Result<Settings, ExitCode> {
        imb_cli::load("backup", Self::resolve)
    }

    fn resolve(cli: Cli) -> anyhow::Result<Settings> {
        let file: FileConfig = imb_cli::read_config(cli.config.as_deref())?;
        let _ = &file.schedule;
        let database = crate::database::DbSettings {
            skip: cli.no_database || file.no_database.unwrap_or(false),
            pg_dump: cli.pg_dump.or(file.pg_dump),
            retention: Some(
                cli.db_backup_retention
                    .or(file.db_backup_retention)
                    .unwrap_or(14),
            ),
        };
        if database.retention == Some(0) {
            bail!("db_backup_retention must be at least 1 (it is how many dumps to keep)");
        }
        let source = cli.source.or(file.source).ok_or_else(|| {
            anyhow!("--source is required (or IMB_SOURCE, or `source` in --config)")
        })?;
        let dest = cli
            .dest
            .or(file.dest)
            .ok_or_else(|| anyhow!("--dest is required (or IMB_DEST, or `dest` in --config)"))?;
        let mut config = BackupConfig::new(source);
        if let Some(w) = cli.workers.or(file.workers) {
            if w == 0 {
                bail!("--workers must be at least 1");
            }
            config.workers = w;
        }
        config.uploads = cli.uploads.or(file.uploads);
        config.queue_size = cli.queue_size.or(file.queue_size);
        let default_excludes = !cli.no_default_excludes && file.default_excludes.unwrap_or(true);
        let extra = list_setting(cli.exclude, file.excludes);
        config.excludes = if default_excludes {
            BackupConfig::default_excludes()
        } else {
            Vec::new()
        };
        config.excludes.extend(extra);
        config.includes = list_setting(cli.include, file.includes);
        config.checksum = cli.checksum || file.checksum.unwrap_or(false);
        if let Some(n) = cli.save_every.or(file.save_every) {
            config.save_every = n.max(1);
        }
        config.max_duration =
            duration_setting("max_duration", cli.max_duration, file.max_duration)?;
        config.bwlimit = cli
            .bwlimit
            .or(file.bwlimit)
            .map(|s| parse_rate(&s))
            .transpose()?;
        config.immich_version = cli.immich_version.or(file.immich_version);
        let dedup = cli.dedup.or(file.dedup);
        let classes = Classes {
            library: cli.library_class.or(file.library_class),
            manifests: cli.manifest_class.or(file.manifest_class),
            database: cli.database_class.or(file.database_class),
            dedup_set: dedup.is_some(),
            retries: cli.retries.or(file.retries),
            retry_initial: duration_setting(
                "retry_initial",
                cli.retry_initial,
                file.retry_initial,
            )?,
        };
        config.dedup = match dedup {
            Some(Dedup::Reference) => DedupMode::Reference,
            _ => DedupMode::Copy,
        };
        config.state_dir = cli.state_dir.or(file.state_dir);
        Ok(Settings {
            config,
            classes,
            database,
            dest,
            fsync: !cli.no_fsync,
            json: cli.json,
            log_format: cli.log_format.or(file.log_format).unwrap_or_default(),
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
        Settings::resolve(Cli::try_parse_from(all)?)
    }

    #[test]
    fn rates_parse() {
        assert_eq!(parse_rate("10M").unwrap(), 10 << 20);
        assert_eq!(parse_rate("1.5k").unwrap(), 1536);
        assert_eq!(parse_rate("100").unwrap(), 100);
        assert!(parse_rate("10X").unwrap_err().to_string().contains("unit"));
        assert!(parse_rate("-1").is_err());
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
