//! A dozen lines of argument parsing, so xtask needs no clap.
//!
//! Tasks take their positionals and `--flag` / `--key VALUE` / `--key=VALUE` options from
//! [`Args`] and call [`Args::finish`] last, which rejects anything left over.

use std::str::FromStr;

use anyhow::{Context, Result, anyhow, bail};

/// The arguments after the task name, consumed as the task reads them.
#[derive(Debug)]
pub(crate) struct Args {
    rest: Vec<String>,
}

impl Args {
    /// The process arguments, without the program name.
    pub(crate) fn from_env() -> Self {
        Self::new(std::env::args().skip(1))
    }

    pub(crate) fn new(args: impl IntoIterator<Item = String>) -> Self {
        Self {
            rest: args.into_iter().collect(),
        }
    }

    /// Removes and returns the first argument that is not an option.
    pub(crate) fn next_positional(&mut self) -> Option<String> {
        let index = self.rest.iter().position(|arg| !arg.starts_with('-'))?;
        // Skip values of options such as `--out DIR`: a positional must come first or
        // follow a flag that takes no value, which is how every task is documented.
        if index > 0 {
            return None;
        }
        Some(self.rest.remove(index))
    }

    /// Removes `--name` if present.
    pub(crate) fn flag(&mut self, name: &str) -> bool {
        let before = self.rest.len();
        self.rest.retain(|arg| arg != name);
        self.rest.len() != before
    }

    /// Removes `--name VALUE` or `--name=VALUE` and parses the value.
    pub(crate) fn value<T>(&mut self, name: &str) -> Result<Option<T>>
    where
        T: FromStr,
        T::Err: std::error::Error + Send + Sync + 'static,
    {
        let prefix = format!("{name}=");
        let Some(index) = self
            .rest
            .iter()
            .position(|arg| arg == name || arg.starts_with(&prefix))
        else {
            return Ok(None);
        };
        let arg = self.rest.remove(index);
        let raw = match arg.strip_prefix(&prefix) {
            Some(value) => value.to_owned(),
            None => {
                if index >= self.rest.len() {
                    bail!("{name} needs a value");
                }
                self.rest.remove(index)
            }
        };
        raw.parse()
            .map(Some)
            .with_context(|| format!("invalid value `{raw}` for {name}"))
    }

    /// Fails if any argument was not consumed.
    pub(crate) fn finish(self) -> Result<()> {
        match self.rest.first() {
            None => Ok(()),
            Some(arg) => Err(anyhow!(
                "unexpected argument `{arg}` (run `cargo xtask` for the task list)"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn args(list: &[&str]) -> Args {
        Args::new(list.iter().map(|s| (*s).to_owned()))
    }

    #[test]
    fn options_and_positionals() {
        let mut a = args(&["sample", "--out", "/tmp/x", "--files=5", "--force"]);
        assert_eq!(a.next_positional().as_deref(), Some("sample"));
        assert_eq!(
            a.value::<PathBuf>("--out").unwrap(),
            Some(PathBuf::from("/tmp/x"))
        );
        assert_eq!(a.value::<u32>("--files").unwrap(), Some(5));
        assert_eq!(a.value::<u64>("--seed").unwrap(), None);
        assert!(a.flag("--force"));
        assert!(!a.flag("--force"));
        a.finish().unwrap();
    }

    #[test]
    fn errors_name_the_option() {
        let err = args(&["--files", "many"])
            .value::<u32>("--files")
            .unwrap_err();
        assert!(format!("{err:#}").contains("--files"), "{err:#}");
        let err = args(&["--out"]).value::<String>("--out").unwrap_err();
        assert!(err.to_string().contains("needs a value"), "{err}");
        let err = args(&["--bogus"]).finish().unwrap_err();
        assert!(err.to_string().contains("--bogus"), "{err}");
    }

    #[test]
    fn positional_after_flag_value_is_not_taken() {
        let mut a = args(&["--write", "hash"]);
        assert_eq!(a.next_positional(), None);
        assert!(a.flag("--write"));
        assert_eq!(a.next_positional().as_deref(), Some("hash"));
    }
}
