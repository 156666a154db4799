//! The one precedence every binary's settings follow: command line, then the
//! environment (clap's `env`), then the TOML config file, then built-in defaults.
//!
//! Each binary has one settings struct with `Option` fields, read by clap (the
//! command line and the environment) and by serde (the file), and merged field by
//! field ([`layered`]): the upper layer's value wins wherever it has one, so a
//! setting in the file can always be changed from the command line. On/off
//! settings are `Option<bool>`, `--X[=BOOL]` and `--no-X`; [`Layer::fold_negations`]
//! turns a layer's `--no-X` into `X = false` before the layers meet, so nothing is
//! OR-ed across them.

use std::path::Path;
use std::process::ExitCode;

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
    parse_from(std::env::args_os()).map_err(|e| {
        let _ = e.print();
        if e.use_stderr() {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        }
    })
}

/// Parses `args` (the program name first) into `C`, settling each `--X` /
/// `--no-X` pair given together: the command line beats the environment, and on
/// the command line the later flag wins. The loser's value is dropped, so the
/// struct holds at most one of the pair ([`negate`] then folds `--no-X` in).
///
/// # Errors
/// Clap's usage error (or its `--help` / `--version` "error").
pub fn parse_from<C: Parser, I, T>(args: I) -> Result<C, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let mut cmd = C::command();
    let mut m = cmd.try_get_matches_from_mut(args)?;
    settle_negations(&cmd, &mut m);
    C::from_arg_matches_mut(&mut m)
}

/// Top-level arguments only: the binaries' on/off settings are global ones, whose
/// values clap keeps at the top level wherever they were given.
fn settle_negations(cmd: &clap::Command, m: &mut clap::ArgMatches) {
    use clap::parser::ValueSource;
    let rank = |m: &clap::ArgMatches, id: &str| match m.value_source(id) {
        Some(ValueSource::CommandLine) => Some((1, m.index_of(id).unwrap_or(0))),
        Some(ValueSource::EnvVariable) => Some((0, 0)),
        _ => None,
    };
    for arg in cmd.get_arguments() {
        let neg = arg.get_id().as_str();
        let Some(pos) = neg.strip_prefix("no_") else {
            continue;
        };
        if !cmd.get_arguments().any(|a| a.get_id() == pos) {
            continue;
        }
        // A negative flag is set only when present, so `Some(true)` means given.
        let neg_given = m.try_get_one::<bool>(neg).ok().flatten() == Some(&true);
        if let (Some(p), Some(n)) = (rank(m, pos), rank(m, neg))
            && neg_given
            && n > p
        {
            let _ = m.try_remove_one::<bool>(pos);
        }
    }
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
    toml::from_str(&text).map_err(|e| {
        // toml's message alone does not say where ("expected a duration"): add
        // the line and its key, never its value (which may be a secret).
        let at = e.span().map(|span| {
            let line = text
                .get(..span.start)
                .map_or(0, |before| before.matches('\n').count());
            let key = text.lines().nth(line).unwrap_or("");
            let key = key.split('=').next().unwrap_or("").trim();
            format!(", line {} (`{key}`)", line + 1)
        });
        anyhow!(
            "--config {}{}: {}",
            p.display(),
            at.unwrap_or_default(),
            e.message()
        )
    })
}

/// A binary's settings struct, as one layer.
pub trait Layer: DeserializeOwned + Default + conflate::Merge {
    /// The `--config` file named on the command line or in the environment.
    fn config(&self) -> Option<&Path>;

    /// Sets each `X` whose `--no-X` flag is set to `Some(false)`.
    fn fold_negations(&mut self) {}
}

/// `setting = Some(false)` when the `--no-X` `flag` is set and `--X` is not (of
/// a pair given together, [`parse_from`] has kept only the winner).
pub fn negate(flag: bool, setting: &mut Option<bool>) {
    if flag && setting.is_none() {
        *setting = Some(false);
    }
}

/// The command line and environment (`cli`, as clap parsed them) over the config
/// file it names: every field the upper layer leaves unset is taken from the file.
///
/// # Errors
/// The file cannot be read or is not valid; the message names the file and key.
pub fn layered<T: Layer>(mut cli: T) -> anyhow::Result<T> {
    cli.fold_negations();
    let mut file: T = read_config(cli.config())?;
    file.fold_negations();
    cli.merge(file);
    Ok(cli)
}
