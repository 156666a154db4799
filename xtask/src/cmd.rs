//! The one place that starts external programs.
//!
//! Every task runs its tools through [`cmd`], so each command line is echoed as
//! `$ program args` before it runs and a failure always names the command that failed.
//! `xtask/clippy.toml` bans `std::process::Command::new` everywhere else.

use std::ffi::OsStr;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

/// A command line about to be run; build one with [`cmd`].
pub(crate) struct Cmd {
    inner: Command,
    display: String,
}

/// Prepares `program args…` to run in the project root with stdin closed.
///
/// Nothing we run reads input, and CI has no stdin, so closing it here means a tool that
/// unexpectedly prompts fails at once instead of hanging.
pub(crate) fn cmd<I, S>(program: &str, args: I) -> Cmd
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    #[allow(clippy::disallowed_methods, reason = "this is the wrapper")]
    let mut inner = Command::new(program);
    let mut display = program.to_owned();
    for arg in args {
        let arg = arg.as_ref();
        display.push(' ');
        display.push_str(&quote(&arg.to_string_lossy()));
        inner.arg(arg);
    }
    inner
        .current_dir(crate::project_root())
        .stdin(Stdio::null());
    Cmd { inner, display }
}

impl Cmd {
    /// Sets an environment variable for the child.
    pub(crate) fn env(mut self, key: &str, value: &str) -> Self {
        self.inner.env(key, value);
        self
    }

    /// Echoes the command, runs it with output going to the terminal, and fails if it
    /// exits non-zero.
    pub(crate) fn run(mut self) -> Result<()> {
        eprintln!("$ {}", self.display);
        let status = self
            .inner
            .status()
            .with_context(|| format!("could not start `{}`", self.display))?;
        if !status.success() {
            bail!("`{}` failed: {status}", self.display);
        }
        Ok(())
    }

    /// Echoes the command, runs it, and returns its stdout; stderr goes to the terminal.
    pub(crate) fn read(mut self) -> Result<String> {
        eprintln!("$ {}", self.display);
        let output = self
            .inner
            .stderr(Stdio::inherit())
            .output()
            .with_context(|| format!("could not start `{}`", self.display))?;
        if !output.status.success() {
            bail!("`{}` failed: {}", self.display, output.status);
        }
        String::from_utf8(output.stdout)
            .with_context(|| format!("`{}` printed something that is not UTF-8", self.display))
    }

    /// Runs the command silently and reports whether it started and exited zero: a probe
    /// such as "is this tool installed?".
    pub(crate) fn succeeds(mut self) -> bool {
        self.inner
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    }
}

/// Quotes an argument the way a POSIX shell would need it, so echoed lines can be pasted.
fn quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%^".contains(c));
    if plain {
        arg.to_owned()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote("--all-targets"), "--all-targets");
        assert_eq!(quote("target/demo"), "target/demo");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
    }

    #[test]
    fn failure_names_the_command() {
        let err = cmd("sh", ["-c", "exit 3"]).run().unwrap_err().to_string();
        assert!(err.contains("`sh -c 'exit 3'` failed"), "{err}");
        assert!(err.contains('3'), "{err}");
    }

    #[test]
    fn read_captures_stdout() {
        let out = cmd("sh", ["-c", "echo hello"]).read().unwrap();
        assert_eq!(out, "hello\n");
        assert!(cmd("sh", ["-c", "true"]).succeeds());
        assert!(!cmd("sh", ["-c", "false"]).succeeds());
        assert!(!cmd("/nonexistent/program", [""; 0]).succeeds());
    }
}
