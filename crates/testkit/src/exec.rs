//! [`wait_until_executable`], for programs a test writes and then runs.

use std::io;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// How often [`wait_until_executable`] tries before giving up.
const EXEC_ATTEMPTS: u64 = 100;

/// Returns once `path`, a program or script this process just wrote and closed,
/// can be executed: runs `path --version` (which must have no side effects)
/// until it starts.
///
/// A child another thread forked while the file was open for writing holds that
/// descriptor until it execs; meanwhile executing the file fails with ETXTBSY
/// (rust-lang/rust#114554). Once a run starts no writer is left, as no new child
/// can inherit the closed descriptor. Renaming into place would not help.
///
/// # Errors
/// Any other error running it, or still ETXTBSY after 100 tries.
pub fn wait_until_executable(path: &Path) -> io::Result<()> {
    let mut last = None;
    for attempt in 1..=EXEC_ATTEMPTS {
        match Command::new(path)
            .arg("--version")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
        {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::ExecutableFileBusy => {
                last = Some(e);
                // A short, growing backoff: the forking thread's child execs soon.
                std::thread::sleep(Duration::from_millis(attempt.min(20)));
            }
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("running {} --version: {e}", path.display()),
                ));
            }
        }
    }
    Err(last.map_or_else(
        || io::Error::other("never tried"),
        |e| {
            io::Error::new(
                e.kind(),
                format!(
                    "{} stayed busy after {EXEC_ATTEMPTS} tries: {e}",
                    path.display()
                ),
            )
        },
    ))
}
