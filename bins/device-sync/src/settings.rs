//! Settings from the command line, the environment and a config file, in that
//! order of precedence, then the built-in defaults. The API key comes from a file
//! (`--key-file`) or `IMMICH_API_KEY`, never from the command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, bail};
use clap::{Args, Parser, Subcommand};
use imb_cli::{LogFormat, duration_setting, list_setting};
use imb_devicesync::{Selection, SyncConfig};
use imb_immich::{ApiKey, ApiVersion, ClientConfig, RetryPolicy};
use serde::Deserialize;

/// The environment variable holding the API key (as `@immich/cli` reads it).
pub(crate) const KEY_ENV: &str = "IMMICH_API_KEY";

/// Back up a device's photo folders to an Immich server, as the Immich mobile app
/// does. A device album is a folder that directly contains photos; choose albums
/// with --album (none means "Recents": all of them) and --exclude-album
/// (exclusion wins). The API key comes from --key-file or IMMICH_API_KEY. Every
/// setting can also be a key in the --config file (TOML, names with underscores).
#[derive(Debug, Parser)]
#[command(name = "device-sync", version)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Clone, Subcommand)]
enum Cmd {
    /// Back up now (the default).
    Sync,
    /// Backup status: complete or not, "N of M backed up", last backup, quota.
    Status,
    /// List failed uploads with their errors; retry them.
    Failed {
        /// Retry this failed upload now (an id from the list; repeatable).
        #[arg(long = "retry", value_name = "ID")]
        retry: Vec<i64>,
        /// Retry every failed upload now.
        #[arg(long, conflicts_with = "retry")]
        retry_all: bool,
    },
    /// List the device albums under the roots, with counts and selection.
    Albums,
    /// Keep running: sync when files change (after TriggerDelay 5 s of quiet, at
    /// most MaxDelay 50 s after the first change) and at least every --interval.
    Watch {
        /// Sync at least this often [default: 1h].
        #[arg(long, env = "IMB_SYNC_INTERVAL", value_parser = humantime::parse_duration)]
        interval: Option<Duration>,
        /// How often to look for changed files [default: 10s].
        #[arg(long, env = "IMB_SYNC_POLL", value_parser = humantime::parse_duration)]
        poll: Option<Duration>,
    },
}

#[derive(Debug, Args)]
struct Common {
    /// The Immich server, e.g. https://photos.example.org (the API root /api is added).
    #[arg(long, global = true, env = "IMMICH_INSTANCE_URL")]
    server: Option<String>,
    /// A file holding the API key (else the IMMICH_API_KEY environment variable).
    #[arg(long, global = true, env = "IMMICH_API_KEY_FILE")]
    key_file: Option<PathBuf>,
    /// PEM file of a certificate authority to trust besides the system's, for a
    /// server behind a private CA (repeatable; SSL_CERT_FILE works too).
    #[arg(
        long = "ca-cert",
        global = true,
        env = "IMB_CA_CERT",
        value_delimiter = ':'
    )]
    ca_certs: Vec<PathBuf>,
    /// A TOML config file.
    #[arg(long, global = true, env = "IMB_SYNC_CONFIG")]
    config: Option<PathBuf>,
    /// Where the state database lives [default: $XDG_STATE_HOME/immich-device-sync].
    #[arg(long, global = true, env = "IMB_SYNC_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// A folder whose subfolders are device albums (repeatable; in IMB_SYNC_ROOT,
    /// separate several with `:`).
    #[arg(
        long = "root",
        global = true,
        env = "IMB_SYNC_ROOT",
        value_delimiter = ':'
    )]
    roots: Vec<PathBuf>,
    /// Back up this album (repeatable; none, or "Recents", means all). Album names
    /// may contain commas, so IMB_SYNC_ALBUM holds one; list several in --config.
    #[arg(long = "album", global = true, env = "IMB_SYNC_ALBUM")]
    albums: Vec<String>,
    /// Never back up this album (repeatable; wins over --album).
    #[arg(long = "exclude-album", global = true, env = "IMB_SYNC_EXCLUDE_ALBUM")]
    exclude_albums: Vec<String>,
    /// After uploading, add each album's assets to the server album of that name.
    #[arg(long, global = true, env = "IMB_SYNC_ALBUM_SYNC", num_args = 0..=1,
          require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    album_sync: Option<bool>,
    /// Do not sync albums (overrides the config file).
    #[arg(long, global = true, conflicts_with = "album_sync")]
    no_album_sync: bool,
    /// Uploads in flight at once [default: 4].
    #[arg(long, global = true, env = "IMB_SYNC_CONCURRENCY")]
    concurrency: Option<usize>,
    /// Hash and ask the server, but upload and record nothing.
    #[arg(long, global = true, env = "IMB_SYNC_DRY_RUN")]
    dry_run: bool,
    /// Speak this API generation instead of asking GET /server/version.
    #[arg(long, global = true, env = "IMB_SYNC_API", value_parser = parse_api)]
    api: Option<ApiVersion>,
    /// deviceId sent to v2 servers [default: device-sync-HOSTNAME].
    #[arg(long, global = true, env = "IMB_SYNC_DEVICE_ID")]
    device_id: Option<String>,
    /// Retries per request on network errors and 5xx [default: 5].
    #[arg(long, global = true, env = "IMB_SYNC_RETRIES")]
    retries: Option<u32>,
    /// First retry wait, doubling up to 32 s [default: 2s].
    #[arg(long, global = true, env = "IMB_SYNC_RETRY_INITIAL", value_parser = humantime::parse_duration)]
    retry_initial: Option<Duration>,
    /// Run only on mains power or while charging (/sys/class/power_supply).
    #[arg(long, global = true, env = "IMB_SYNC_ONLY_IF_CHARGING")]
    only_if_charging: bool,
    /// Run only on an unmetered network (NetworkManager's judgement; assumed
    /// unmetered without it).
    #[arg(long, global = true, env = "IMB_SYNC_ONLY_IF_UNMETERED")]
    only_if_unmetered: bool,
    /// Print one JSON object on stdout.
    #[arg(long, global = true, env = "IMB_JSON")]
    json: bool,
    /// Log format on stderr.
    #[arg(long, global = true, env = "IMB_LOG_FORMAT", value_enum)]
    log_format: Option<LogFormat>,
}

fn parse_api(s: &str) -> Result<ApiVersion, String> {
    s.parse::<ApiVersion>().map_err(|e| e.to_string())
}

/// The config file; unknown keys are errors that name the key.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    server: Option<String>,
    key_file: Option<PathBuf>,
    #[serde(alias = "ca_cert")]
    ca_certs: Option<Vec<PathBuf>>,
    state_dir: Option<PathBuf>,
    #[serde(alias = "root")]
    roots: Option<Vec<PathBuf>>,
    #[serde(alias = "album")]
    albums: Option<Vec<String>>,
    #[serde(alias = "exclude_album")]
    exclude_albums: Option<Vec<String>>,
    album_sync: Option<bool>,
    concurrency: Option<usize>,
    api: Option<String>,
    device_id: Option<String>,
    retries: Option<u32>,
    retry_initial: Option<String>,
    only_if_charging: Option<bool>,
    only_if_unmetered: Option<bool>,
    log_format: Option<LogFormat>,
    interval: Option<String>,
    poll: Option<String>,
}

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Command {
    Sync,
    Status,
    Failed { retry: Vec<i64>, retry_all: bool },
    Albums,
    Watch { interval: Duration, poll: Duration },
}

/// Everything `main` needs.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) command: Command,
    pub(crate) sync: SyncConfig,
    pub(crate) server: Option<String>,
    key_file: Option<PathBuf>,
    ca_certs: Vec<PathBuf>,
    pub(crate) api: Option<ApiVersion>,
    pub(crate) retry: RetryPolicy,
    pub(crate) only_if_charging: bool,
    pub(crate) only_if_unmetered: bool,
    pub(crate) json: bool,
    pub(crate) log_format: LogFormat,
}

impl Settings {
    /// The settings, or the exit status once what went wrong has been printed.
    pub(crate) fn load() -> Result<Settings, ExitCode> {
        imb_cli::load("device-sync", Self::resolve)
    }

    fn resolve(cli: Cli) -> anyhow::Result<Settings> {
        let c = cli.common;
        let file: FileConfig = imb_cli::read_config(c.config.as_deref())?;
        let roots = list_setting(c.roots, file.roots);
        let state_dir = c
            .state_dir
            .or(file.state_dir)
            .or_else(imb_devicesync::default_state_dir)
            .ok_or_else(|| {
                anyhow!("--state-dir is required when neither XDG_STATE_HOME nor HOME is set")
            })?;
        let mut sync = SyncConfig::new(roots, state_dir);
        let albums = list_setting(c.albums, file.albums);
        let excluded = list_setting(c.exclude_albums, file.exclude_albums);
        sync.selection = Selection::albums(albums).excluding(excluded);
        sync.album_sync = if c.no_album_sync {
            false
        } else {
            c.album_sync.or(file.album_sync).unwrap_or(false)
        };
        if let Some(n) = c.concurrency.or(file.concurrency) {
            if n == 0 {
                bail!("--concurrency must be at least 1");
            }
            sync.concurrency = n;
        }
        sync.dry_run = c.dry_run;
        if let Some(d) = c.device_id.or(file.device_id) {
            sync.device_id = d;
        }
        let api = match (c.api, file.api) {
            (Some(a), _) => Some(a),
            (None, Some(s)) => Some(s.parse::<ApiVersion>().map_err(|e| anyhow!("api: {e}"))?),
            (None, None) => None,
        };
        let mut retry = RetryPolicy::default();
        if let Some(n) = c.retries.or(file.retries) {
            retry.max_retries = n;
        }
        if let Some(d) = duration_setting("retry_initial", c.retry_initial, file.retry_initial)? {
            retry.initial = d;
            retry.jitter = retry.jitter.min(d);
        }
        let command = match cli.cmd.unwrap_or(Cmd::Sync) {
            Cmd::Sync => Command::Sync,
            Cmd::Status => Command::Status,
            Cmd::Albums => Command::Albums,
            Cmd::Failed { retry, retry_all } => Command::Failed { retry, retry_all },
            Cmd::Watch { interval, poll } => Command::Watch {
                interval: duration_setting("interval", interval, file.interval)?
                    .unwrap_or(Duration::from_secs(3600)),
                poll: duration_setting("poll", poll, file.poll)?.unwrap_or(Duration::from_secs(10)),
            },
        };
        // Listing failures only reads the state database.
        let needs_roots = !matches!(
            &command,
            Command::Failed { retry, retry_all } if retry.is_empty() && !retry_all
        );
        if needs_roots && sync.roots.is_empty() {
            bail!("--root is required (or IMB_SYNC_ROOT, or `roots` in --config)");
        }
        Ok(Settings {
            command,
            sync,
            server: c.server.or(file.server),
            key_file: c.key_file.or(file.key_file),
            ca_certs: list_setting(c.ca_certs, file.ca_certs),
            api,
            retry,
            only_if_charging: c.only_if_charging || file.only_if_charging.unwrap_or(false),
            only_if_unmetered: c.only_if_unmetered || file.only_if_unmetered.unwrap_or(false),
            json: c.json,
            log_format: c.log_format.or(file.log_format).unwrap_or_default(),
        })
    }

    /// Whether a server (and so a key) is configured.
    pub(crate) fn has_server(&self) -> bool {
        self.server.is_some()
    }

    /// The client settings: the server and the key (from the file, else the environment).
    pub(crate) fn client_config(&self) -> anyhow::Result<ClientConfig> {
        let server = self.server.clone().ok_or_else(|| {
            anyhow!("--server is required (or IMMICH_INSTANCE_URL, or `server` in --config)")
        })?;
        let key = match &self.key_file {
            Some(p) => ApiKey::from_file(p)?,
            None => ApiKey::from_env(KEY_ENV).map_err(|e| {
                anyhow!("{e} (give the key in a file with --key-file, or in {KEY_ENV})")
            })?,
        };
        let mut cfg = ClientConfig::new(server, key)
            .with_api(self.api)
            .with_retry(self.retry.clone());
        cfg.ca_certs = self.ca_certs.clone();
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> anyhow::Result<Settings> {
        let mut all = vec!["device-sync"];
        all.extend_from_slice(args);
        Settings::resolve(Cli::try_parse_from(all)?)
    }

    #[test]
    fn cli_beats_file_and_defaults_fill_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("c.toml");
        std::fs::write(
            &cfg,
            "roots = ['/from/file']\nalbum_sync = true\nconcurrency = 8\nexclude_albums = ['Screenshots']\napi = 'v2'\n",
        )
        .unwrap();
        let c = cfg.to_str().unwrap();
        let s = parse(&["--config", c, "--concurrency", "2", "--state-dir", "/s"]).unwrap();
        assert_eq!(s.sync.concurrency, 2);
        assert_eq!(s.sync.roots, vec![PathBuf::from("/from/file")]);
        assert!(s.sync.album_sync);
        assert!(!s.sync.selection.includes("Screenshots"));
        assert!(s.sync.selection.is_recents());
        assert_eq!(s.api, Some(ApiVersion::V2));
        assert_eq!(s.command, Command::Sync);
        let s = parse(&[
            "status",
            "--config",
            c,
            "--no-album-sync",
            "--state-dir",
            "/s",
        ])
        .unwrap();
        assert!(!s.sync.album_sync);
        assert_eq!(s.command, Command::Status);
        let s = parse(&["--root", "/r", "--album-sync", "--state-dir", "/s"]).unwrap();
        assert!(s.sync.album_sync);
        // A bare --album-sync does not swallow the subcommand after it.
        let s = parse(&[
            "--root",
            "/r",
            "--album-sync",
            "status",
            "--state-dir",
            "/s",
        ])
        .unwrap();
        assert!(s.sync.album_sync);
        assert_eq!(s.command, Command::Status);
        let s = parse(&["--config", c, "--album-sync=false", "--state-dir", "/s"]).unwrap();
        assert!(!s.sync.album_sync);
        // Album names keep their commas.
        let s = parse(&["--root", "/r", "--album", "Trip, 2024", "--state-dir", "/s"]).unwrap();
        assert!(s.sync.selection.includes("Trip, 2024"));
        assert!(!s.sync.selection.includes("Trip"));
    }

    #[test]
    fn unknown_keys_and_missing_settings_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("c.toml");
        std::fs::write(&cfg, "roots = ['/r']\napi_key = 'secret'\n").unwrap();
        let err = parse(&["--config", cfg.to_str().unwrap()])
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("api_key"), "{err}");
        assert!(!err.contains("secret"), "{err}");
        let err = parse(&["--state-dir", "/s"]).err().unwrap().to_string();
        assert!(err.contains("--root"), "{err}");
        // Listing failures needs no roots.
        assert!(parse(&["failed", "--state-dir", "/s"]).is_ok());
        assert!(parse(&["--api", "v9", "--root", "/r"]).is_err());
        assert!(parse(&["--api-key", "k", "--root", "/r"]).is_err());
    }
}
