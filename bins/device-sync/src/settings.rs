//! Settings from the command line, the environment and a config file, in that
//! order of precedence, then the built-in defaults. The API key comes from a file
//! (`--key-file`) or `IMMICH_API_KEY`, never from the command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, bail};
use clap::builder::BoolishValueParser;
use clap::{Args, Parser, Subcommand};
use conflate::Merge;
use imb_cli::{Layer, LogFormat, negate};
use imb_devicesync::conditions::Rules;
use imb_devicesync::{Selection, SyncConfig};
use imb_immich::{ApiKey, ApiVersion, ClientConfig, RetryPolicy};
use serde::{Deserialize, Serialize};

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
    /// Write and enable systemd user units that back up in the background with
    /// these settings: a service running `watch`, or with --timer a timer for
    /// periodic syncs. Needs --key-file (a unit never carries the key itself).
    Install {
        /// Sync every this long from a timer instead of watching for changes.
        #[arg(long, value_parser = humantime::parse_duration)]
        timer: Option<Duration>,
        /// Write the units only; do not ask systemd to enable or start them.
        #[arg(long)]
        no_enable: bool,
    },
    /// Stop, disable and remove what `install` wrote.
    Uninstall {
        /// Remove the files only; do not ask systemd to stop or disable them.
        #[arg(long)]
        no_enable: bool,
    },
    /// Keep running: sync when files change (after --trigger-delay of quiet, at
    /// most --max-delay after the first change) and at least every --interval.
    /// Changes come from inotify, so a change costs a look at that file only;
    /// on network and FUSE file systems, or with --watch-mode poll, the roots
    /// are walked every --poll instead.
    Watch {
        /// Sync (walking every root) at least this often [default: 1h].
        #[arg(long, env = "IMB_SYNC_INTERVAL", value_parser = humantime::parse_duration)]
        interval: Option<Duration>,
        /// How often to look for changed files when polling [default: 10s].
        #[arg(long, env = "IMB_SYNC_POLL", value_parser = humantime::parse_duration)]
        poll: Option<Duration>,
        /// The seed's TriggerDelay: wait for this much quiet after a change [default: 5s].
        #[arg(long, env = "IMB_SYNC_TRIGGER_DELAY", value_parser = humantime::parse_duration)]
        trigger_delay: Option<Duration>,
        /// The seed's MaxDelay: never wait longer than this after the first change [default: 50s].
        #[arg(long, env = "IMB_SYNC_MAX_DELAY", value_parser = humantime::parse_duration)]
        max_delay: Option<Duration>,
        /// How changes are noticed: inotify events, polling, or auto (events
        /// unless a root is on NFS, SMB, FUSE or 9p) [default: auto].
        #[arg(long, env = "IMB_SYNC_WATCH_MODE", value_enum)]
        watch_mode: Option<WatchMode>,
    },
}

/// `watch --watch-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum WatchMode {
    /// Events, unless a root is on a file system where they miss changes.
    #[default]
    Auto,
    /// inotify events.
    Events,
    /// Walk the roots every --poll.
    Poll,
}

/// Watch mode's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WatchOptions {
    pub(crate) interval: Duration,
    pub(crate) poll: Duration,
    pub(crate) trigger_delay: Duration,
    pub(crate) max_delay: Duration,
    pub(crate) mode: WatchMode,
}

#[derive(Debug, Clone, Default, Args, Deserialize, Serialize, Merge)]
#[serde(deny_unknown_fields, default)]
#[merge(strategy = conflate::option::overwrite_none)]
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
    #[serde(alias = "ca_cert")]
    ca_certs: Option<Vec<PathBuf>>,
    /// A TOML config file.
    #[arg(long, global = true, env = "IMB_SYNC_CONFIG")]
    #[serde(skip)]
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
    #[serde(alias = "root")]
    roots: Option<Vec<PathBuf>>,
    /// Back up this album (repeatable; none, or "Recents", means all). Album names
    /// may contain commas, so IMB_SYNC_ALBUM holds one; list several in --config.
    #[arg(long = "album", global = true, env = "IMB_SYNC_ALBUM")]
    #[serde(alias = "album")]
    albums: Option<Vec<String>>,
    /// Never back up this album (repeatable; wins over --album).
    #[arg(long = "exclude-album", global = true, env = "IMB_SYNC_EXCLUDE_ALBUM")]
    #[serde(alias = "exclude_album")]
    exclude_albums: Option<Vec<String>>,
    /// After uploading, add each album's assets to the server album of that name.
    #[arg(long, global = true, env = "IMB_SYNC_ALBUM_SYNC", num_args = 0..=1,
          require_equals = true, default_missing_value = "true", value_name = "BOOL", value_parser = BoolishValueParser::new())]
    album_sync: Option<bool>,
    /// Same as --album-sync=false.
    #[arg(long, global = true)]
    #[merge(skip)]
    #[serde(skip_serializing)]
    no_album_sync: bool,
    /// Uploads in flight at once, fixed [default: adapted, from 4 up to 32,
    /// backing off on 429/503].
    #[arg(long, global = true, env = "IMB_SYNC_CONCURRENCY")]
    concurrency: Option<usize>,
    /// Hash and ask the server, but upload and record nothing.
    #[arg(long, global = true, env = "IMB_SYNC_DRY_RUN", num_args = 0..=1,
          require_equals = true, default_missing_value = "true", value_name = "BOOL", value_parser = BoolishValueParser::new())]
    dry_run: Option<bool>,
    /// Speak this API generation instead of asking GET /server/version.
    #[arg(long, global = true, env = "IMB_SYNC_API", value_parser = parse_api)]
    #[serde(deserialize_with = "api_from_str", serialize_with = "api_to_str")]
    api: Option<ApiVersion>,
    /// deviceId sent to v2 servers [default: device-sync-HOSTNAME].
    #[arg(long, global = true, env = "IMB_SYNC_DEVICE_ID")]
    device_id: Option<String>,
    /// Retries per request on network errors and 5xx [default: 5].
    #[arg(long, global = true, env = "IMB_SYNC_RETRIES")]
    retries: Option<u32>,
    /// First retry wait, doubling up to 32 s [default: 2s].
    #[arg(long, global = true, env = "IMB_SYNC_RETRY_INITIAL", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde")]
    retry_initial: Option<Duration>,
    /// Run only on mains power or while charging (/sys/class/power_supply).
    #[arg(long, global = true, env = "IMB_SYNC_ONLY_IF_CHARGING", num_args = 0..=1,
          require_equals = true, default_missing_value = "true", value_name = "BOOL", value_parser = BoolishValueParser::new())]
    only_if_charging: Option<bool>,
    /// Same as --only-if-charging=false.
    #[arg(long, global = true)]
    #[merge(skip)]
    #[serde(skip_serializing)]
    no_only_if_charging: bool,
    /// Upload only on an unmetered network, photos and videos alike
    /// (NetworkManager's judgement; assumed unmetered without it). Sets both
    /// rules below.
    #[arg(long, global = true, env = "IMB_SYNC_ONLY_IF_UNMETERED", num_args = 0..=1,
          require_equals = true, default_missing_value = "true", value_name = "BOOL", value_parser = BoolishValueParser::new())]
    only_if_unmetered: Option<bool>,
    /// Same as --only-if-unmetered=false.
    #[arg(long, global = true)]
    #[merge(skip)]
    #[serde(skip_serializing)]
    no_only_if_unmetered: bool,
    /// Upload photos only on an unmetered network (the app's "use cellular for
    /// photos", off) [default: --only-if-unmetered].
    #[arg(long, global = true, env = "IMB_SYNC_ONLY_IF_UNMETERED_PHOTOS", num_args = 0..=1,
          require_equals = true, default_missing_value = "true", value_name = "BOOL", value_parser = BoolishValueParser::new())]
    only_if_unmetered_photos: Option<bool>,
    /// Upload videos only on an unmetered network (the app's "use cellular for
    /// videos", off); photos still go on a metered one [default: --only-if-unmetered].
    #[arg(long, global = true, env = "IMB_SYNC_ONLY_IF_UNMETERED_VIDEOS", num_args = 0..=1,
          require_equals = true, default_missing_value = "true", value_name = "BOOL", value_parser = BoolishValueParser::new())]
    only_if_unmetered_videos: Option<bool>,
    /// Read sync clients' placeholders too (files whose content is not on this
    /// disk: Nextcloud virtual files, online-only files on a Windows share, old
    /// files with no data blocks), which downloads them; else they are skipped
    /// as `offline` and stay pending.
    #[arg(long, global = true, env = "IMB_SYNC_DOWNLOAD_OFFLINE", num_args = 0..=1,
          require_equals = true, default_missing_value = "true", value_name = "BOOL", value_parser = BoolishValueParser::new())]
    download_offline: Option<bool>,
    /// Ask the server now whether every asset this device backed up is still
    /// there (else at most every --reconcile-every): one deleted there is
    /// uploaded again, one in its trash is not.
    #[arg(long, global = true, env = "IMB_SYNC_RECONCILE", num_args = 0..=1,
          require_equals = true, default_missing_value = "true", value_name = "BOOL", value_parser = BoolishValueParser::new())]
    reconcile: Option<bool>,
    /// How often a sync asks the server what it still has [default: 1d; 0s: every sync].
    #[arg(long, global = true, env = "IMB_SYNC_RECONCILE_EVERY", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde")]
    reconcile_every: Option<Duration>,
    /// Desktop notifications on the session bus: upload progress, failures,
    /// the quota stop [default: on for `watch`, off otherwise].
    #[arg(long, global = true, env = "IMB_SYNC_NOTIFY", num_args = 0..=1,
          require_equals = true, default_missing_value = "true", value_name = "BOOL", value_parser = BoolishValueParser::new())]
    notify: Option<bool>,
    /// Print one JSON object on stdout.
    #[arg(long, global = true, env = "IMB_JSON", num_args = 0..=1,
          require_equals = true, default_missing_value = "true", value_name = "BOOL", value_parser = BoolishValueParser::new())]
    #[serde(skip_serializing)]
    json: Option<bool>,
    /// Log format on stderr.
    #[arg(long, global = true, env = "IMB_LOG_FORMAT", value_enum)]
    #[serde(skip_serializing)]
    log_format: Option<LogFormat>,
    /// `watch --interval`, in the file.
    #[arg(skip)]
    #[serde(with = "humantime_serde")]
    interval: Option<Duration>,
    /// `watch --poll`, in the file.
    #[arg(skip)]
    #[serde(with = "humantime_serde")]
    poll: Option<Duration>,
    /// `watch --trigger-delay`, in the file.
    #[arg(skip)]
    #[serde(with = "humantime_serde")]
    trigger_delay: Option<Duration>,
    /// `watch --max-delay`, in the file.
    #[arg(skip)]
    #[serde(with = "humantime_serde")]
    max_delay: Option<Duration>,
    /// `watch --watch-mode`, in the file.
    #[arg(skip)]
    watch_mode: Option<WatchMode>,
    /// A dead-man's switch to ping around each sync: config file only, or
    /// IMB_PING_URL; never a flag, since the URL is a credential.
    #[arg(skip)]
    ping_url: Option<String>,
}

impl Layer for Common {
    fn config(&self) -> Option<&std::path::Path> {
        self.config.as_deref()
    }

    fn fold_negations(&mut self) {
        let c = self;
        negate(c.no_album_sync, &mut c.album_sync);
        negate(c.no_only_if_charging, &mut c.only_if_charging);
        negate(c.no_only_if_unmetered, &mut c.only_if_unmetered);
        // The old switch sets both per-type rules, in its own layer: a file's
        // `only_if_unmetered_videos = false` still loses to a --only-if-unmetered.
        if let Some(b) = c.only_if_unmetered {
            c.only_if_unmetered_photos.get_or_insert(b);
            c.only_if_unmetered_videos.get_or_insert(b);
        }
    }
}

impl Common {
    /// These settings as the config file background units run with: every path
    /// absolute (a unit starts in another directory), the key by file only.
    fn for_units(mut self) -> anyhow::Result<String> {
        let absolute = |p: &PathBuf, what: &str| {
            std::fs::canonicalize(p).map_err(|e| anyhow!("{what} {}: {e}", p.display()))
        };
        let Some(key) = &self.key_file else {
            bail!(
                "install needs --key-file (or IMMICH_API_KEY_FILE, or `key_file` in --config): \
                 a unit must never carry the key itself"
            );
        };
        self.key_file = Some(absolute(key, "--key-file")?);
        if self.server.is_none() {
            bail!("--server is required (or IMMICH_INSTANCE_URL, or `server` in --config)");
        }
        let roots = self.roots.take().unwrap_or_default();
        if roots.is_empty() {
            bail!("--root is required (or IMB_SYNC_ROOT, or `roots` in --config)");
        }
        self.roots = Some(
            roots
                .iter()
                .map(|r| absolute(r, "--root"))
                .collect::<anyhow::Result<_>>()?,
        );
        if let Some(cas) = self.ca_certs.take() {
            self.ca_certs = Some(
                cas.iter()
                    .map(|c| absolute(c, "--ca-cert"))
                    .collect::<anyhow::Result<_>>()?,
            );
        }
        let state = match self.state_dir.take() {
            Some(d) => std::path::absolute(&d)?,
            None => imb_devicesync::default_state_dir().ok_or_else(|| {
                anyhow!("--state-dir is required when neither XDG_STATE_HOME nor HOME is set")
            })?,
        };
        self.state_dir = Some(state);
        self.config = None;
        Ok(toml::to_string(&self)?)
    }
}

fn api_from_str<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<ApiVersion>, D::Error> {
    let s = String::deserialize(d)?;
    s.parse()
        .map(Some)
        .map_err(|e| serde::de::Error::custom(format!("api: {e}")))
}

fn api_to_str<S: serde::Serializer>(v: &Option<ApiVersion>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(a) => s.serialize_str(&a.to_string()),
        None => s.serialize_none(),
    }
}

fn parse_api(s: &str) -> Result<ApiVersion, String> {
    s.parse::<ApiVersion>().map_err(|e| e.to_string())
}

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Command {
    Sync,
    Status,
    Failed {
        retry: Vec<i64>,
        retry_all: bool,
    },
    Albums,
    Watch(WatchOptions),
    /// `install`, with the settings file the units run with.
    Install {
        timer: Option<Duration>,
        enable: bool,
        settings: String,
    },
    Uninstall {
        enable: bool,
    },
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
    pub(crate) rules: Rules,
    pub(crate) notify: bool,
    pub(crate) json: bool,
    pub(crate) log_format: LogFormat,
    pub(crate) ping: imb_cli::Pinger,
}

impl Settings {
    /// The settings, or the exit status once what went wrong has been printed.
    pub(crate) fn load() -> Result<Settings, ExitCode> {
        imb_cli::load("device-sync", Self::resolve)
    }

    fn resolve(cli: Cli) -> anyhow::Result<Settings> {
        let c = imb_cli::layered(cli.common)?;
        // What the background units run with: these settings, every layer merged.
        let unit_settings = match &cli.cmd {
            Some(Cmd::Install { .. }) => Some(c.clone().for_units()?),
            _ => None,
        };
        let state_dir = c
            .state_dir
            .or_else(imb_devicesync::default_state_dir)
            .ok_or_else(|| {
                anyhow!("--state-dir is required when neither XDG_STATE_HOME nor HOME is set")
            })?;
        let mut sync = SyncConfig::new(c.roots.unwrap_or_default(), state_dir);
        sync.selection = Selection::albums(c.albums.unwrap_or_default())
            .excluding(c.exclude_albums.unwrap_or_default());
        sync.album_sync = c.album_sync.unwrap_or(false);
        if let Some(n) = c.concurrency {
            if n == 0 {
                bail!("--concurrency must be at least 1");
            }
            sync.concurrency = Some(n);
        }
        sync.dry_run = c.dry_run.unwrap_or(false);
        sync.reconcile = c.reconcile.unwrap_or(false);
        sync.download_offline = c.download_offline.unwrap_or(false);
        if let Some(d) = c.reconcile_every {
            sync.reconcile_every = d;
        }
        if let Some(d) = c.device_id {
            sync.device_id = d;
        }
        let mut retry = RetryPolicy::default();
        if let Some(n) = c.retries {
            retry.max_retries = n;
        }
        if let Some(d) = c.retry_initial {
            retry.initial = d;
            retry.jitter = retry.jitter.min(d);
        }
        let command = match cli.cmd.unwrap_or(Cmd::Sync) {
            Cmd::Sync => Command::Sync,
            Cmd::Status => Command::Status,
            Cmd::Albums => Command::Albums,
            Cmd::Failed { retry, retry_all } => Command::Failed { retry, retry_all },
            Cmd::Watch {
                interval,
                poll,
                trigger_delay,
                max_delay,
                watch_mode,
            } => Command::Watch(WatchOptions {
                interval: interval.or(c.interval).unwrap_or(Duration::from_secs(3600)),
                poll: poll.or(c.poll).unwrap_or(Duration::from_secs(10)),
                trigger_delay: trigger_delay
                    .or(c.trigger_delay)
                    .unwrap_or(imb_devicesync::watch::TRIGGER_DELAY),
                max_delay: max_delay
                    .or(c.max_delay)
                    .unwrap_or(imb_devicesync::watch::MAX_DELAY),
                mode: watch_mode.or(c.watch_mode).unwrap_or_default(),
            }),
            Cmd::Install { timer, no_enable } => Command::Install {
                timer,
                enable: !no_enable,
                settings: unit_settings.unwrap_or_default(),
            },
            Cmd::Uninstall { no_enable } => Command::Uninstall { enable: !no_enable },
        };
        // Listing failures only reads the state database; uninstalling reads nothing.
        let needs_roots = !matches!(
            &command,
            Command::Failed { retry, retry_all } if retry.is_empty() && !retry_all
        ) && !matches!(command, Command::Uninstall { .. });
        if needs_roots && sync.roots.is_empty() {
            bail!("--root is required (or IMB_SYNC_ROOT, or `roots` in --config)");
        }
        let watching = matches!(command, Command::Watch(_));
        Ok(Settings {
            command,
            sync,
            server: c.server,
            key_file: c.key_file,
            ca_certs: c.ca_certs.unwrap_or_default(),
            api: c.api,
            retry,
            rules: {
                let mut r = Rules::default();
                r.charging = c.only_if_charging.unwrap_or(false);
                r.unmetered_photos = c.only_if_unmetered_photos.unwrap_or(false);
                r.unmetered_videos = c.only_if_unmetered_videos.unwrap_or(false);
                r
            },
            notify: c.notify.unwrap_or(watching),
            json: c.json.unwrap_or(false),
            log_format: c.log_format.unwrap_or_default(),
            ping: imb_cli::Pinger::new(c.ping_url)?,
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
        Settings::resolve(imb_cli::parse_from(all)?)
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
        assert_eq!(s.sync.concurrency, Some(2));
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
        // On/off settings in the file switch off from the command line (they were
        // OR-ed across layers before), and watch's durations come from the file.
        std::fs::write(
            &cfg,
            "roots = ['/r']\nonly_if_charging = true\nonly_if_unmetered = true\ndry_run = true\ninterval = '2h'\n",
        )
        .unwrap();
        let s = parse(&["--config", c, "--state-dir", "/s", "watch"]).unwrap();
        assert!(s.rules.charging && s.sync.dry_run);
        assert!(s.rules.unmetered_photos && s.rules.unmetered_videos);
        assert_eq!(
            s.command,
            Command::Watch(WatchOptions {
                interval: Duration::from_secs(7200),
                poll: Duration::from_secs(10),
                trigger_delay: Duration::from_secs(5),
                max_delay: Duration::from_secs(50),
                mode: WatchMode::Auto,
            })
        );
        let s = parse(&[
            "--config",
            c,
            "--state-dir",
            "/s",
            "--no-only-if-charging",
            "--only-if-unmetered=false",
            "--dry-run=false",
        ])
        .unwrap();
        assert!(!s.rules.charging && !s.sync.dry_run);
        assert!(!s.rules.unmetered_photos && !s.rules.unmetered_videos);
        // Per type: videos wait on a metered network, photos go; a per-type
        // flag beats the old switch of a lower layer.
        let s = parse(&[
            "--config",
            c,
            "--state-dir",
            "/s",
            "--only-if-unmetered-photos=false",
        ])
        .unwrap();
        assert!(!s.rules.unmetered_photos && s.rules.unmetered_videos);
        let s = parse(&[
            "--root",
            "/r",
            "--only-if-unmetered-videos",
            "--state-dir",
            "/s",
        ])
        .unwrap();
        assert!(!s.rules.unmetered_photos && s.rules.unmetered_videos);
        // Reconciling: forced, and its interval from the file.
        std::fs::write(&cfg, "roots = ['/r']\nreconcile_every = '12h'\n").unwrap();
        let s = parse(&["--config", c, "--state-dir", "/s", "--reconcile"]).unwrap();
        assert!(s.sync.reconcile);
        assert_eq!(s.sync.reconcile_every, Duration::from_secs(12 * 3600));
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
        // Which error: the bad value, and a key on the command line is no flag.
        let err = parse(&["--api", "v9", "--root", "/r"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("v9") && err.contains("--api"), "{err}");
        let err = parse(&["--api-key", "k", "--root", "/r"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("unexpected argument '--api-key'"), "{err}");
    }
}
