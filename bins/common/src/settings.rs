//! The one precedence every binary's settings follow: command line, then the
//! environment (clap's `env`), then the TOML config file, then built-in defaults.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, anyhow};
use clap::{Parser, ValueEnum};
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// How log lines are written.
#[derive(Debug, Clone, Copy, ValueEnum, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for clusters.
    Json,
}

/// `PROGRAM completions SHELL` (bash, zsh, fish, elvish, powershell) prints a
/// completion script and `PROGRAM man` a man page, as clap-based tools do. Both are
/// answered before settings are read (they need none); `None` for any other
/// command line.
pub(crate) fn extra_command<C: clap::CommandFactory>() -> Option<ExitCode> {
    let mut args = std::env::args_os().skip(1);
    let first = args.next()?;
    let mut cmd = C::command();
    let name = cmd.get_name().to_owned();
    let mut out = std::io::stdout().lock();
    match first.to_str()? {
        "completions" => {
            let asked = args.next();
            let Some(shell) = asked
                .as_ref()
                .and_then(|s| s.to_str())
                .and_then(|s| s.parse::<clap_complete::Shell>().ok())
            else {
                #[allow(clippy::print_stderr, reason = "a usage error, before logging exists")]
                {
                    let asked = asked.map_or_else(
                        || "nothing".to_owned(),
                        |a| format!("{:?}", a.to_string_lossy()),
                    );
                    eprintln!(
                        "{name}: error: completions: name a shell (bash, zsh, fish, elvish, powershell), not {asked}"
                    );
                }
                return Some(ExitCode::from(1));
            };
            clap_complete::generate(shell, &mut cmd, name, &mut out);
            Some(ExitCode::SUCCESS)
        }
        "man" => Some(match clap_mangen::Man::new(cmd).render(&mut out) {
            Ok(()) => ExitCode::SUCCESS,
            Err(_) => ExitCode::from(1),
        }),
        _ => None,
    }
}

/// Parses the command line into `C`. On `--help` or `--version` (exit 0) and on a
/// usage error (exit 1, like every other "could not run") clap has printed what
/// to say, and the exit status is returned.
pub fn parse_args<C: Parser>() -> Result<C, ExitCode> {
    if let Some(code) = extra_command::<C>() {
        return Err(code);
    }
    C::try_parse().map_err(|e| {
        let _ = e.print();
        if e.use_stderr() {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        }
    })
}

/// Parses the command line and `resolve`s it into settings; when either fails,
/// what to say has been printed (as `program: error: …`) and the exit status is
/// returned.
pub fn load<C: Parser, S>(
    program: &str,
    resolve: impl FnOnce(C) -> anyhow::Result<S>,
) -> Result<S, ExitCode> {
    resolve(parse_args()?).map_err(|e| crate::fail(program, false, &e))
}

/// The `--config` file, or every key unset without one. Unknown keys are errors
/// that name the key (with `#[serde(deny_unknown_fields)]` on `T`).
///
/// # Errors
/// The file cannot be read or is not valid for `T`; the message names the file.
pub fn read_config<T: DeserializeOwned + Default>(path: Option<&Path>) -> anyhow::Result<T> {
    let Some(p) = path else {
        return Ok(T::default());
    };
    let text = std::fs::read_to_string(p).with_context(|| format!("--config {}", p.display()))?;
    toml::from_str(&text).map_err(|e| anyhow!("--config {}: {}", p.display(), e.message()))
}

/// A duration from the command line (already parsed by clap), else from the config
/// file's `name` key (humantime text, e.g. `5h30m`).
///
/// # Errors
/// The config file's text is not a duration.
pub fn duration_setting(
    name: &str,
    cli: Option<Duration>,
    file: Option<String>,
) -> anyhow::Result<Option<Duration>> {
    match (cli, file) {
        (Some(d), _) => Ok(Some(d)),
        (None, Some(s)) => humantime::parse_duration(&s)
            .map(Some)
            .map_err(|e| anyhow!("{name} {s:?}: {e}")),
        (None, None) => Ok(None),
    }
}

/// A repeatable setting: the command line's values if any were given (they
/// replace the file's, not add to them), else the config file's.
pub fn list_setting<T>(cli: Vec<T>, file: Option<Vec<T>>) -> Vec<T> {
    if cli.is_empty() {
        file.unwrap_or_default()
    } else {
        cli
    }
}
