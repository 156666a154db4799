//! The `demo` task: the README's first command.
//!
//! Generates the sample library into `target/demo/library` (once), backs it up with the
//! real `backup` binary into `target/demo/backup`, and says where the backup went.

use anyhow::{Result, bail};

use crate::cmd::cmd;
use crate::project_root;
use crate::sample;

const LIBRARY: &str = "target/demo/library";
const BACKUP: &str = "target/demo/backup";

/// `cargo xtask demo`.
pub(crate) fn run() -> Result<()> {
    let library = project_root().join(LIBRARY);
    if library.join("library/.immich").exists() {
        eprintln!("using the sample library already in {LIBRARY}");
    } else {
        // Without the marker an earlier run was interrupted: write over what it left.
        let made = sample::generate(&library, sample::DEFAULT_FILES, sample::DEFAULT_SEED, true)?;
        eprintln!("{}", made.describe(&library));
    }
    cmd(
        "cargo",
        [
            "run",
            "--release",
            "--bin",
            "backup",
            "--",
            "--source",
            LIBRARY,
            "--dest",
            BACKUP,
        ],
    )
    .run()?;
    // A backup that exits zero but wrote nothing is a bug the demo should not hide.
    let backup = project_root().join(BACKUP);
    let wrote_something =
        std::fs::read_dir(&backup).is_ok_and(|mut entries| entries.next().is_some());
    if !wrote_something {
        bail!("the backup binary exited successfully but {BACKUP} is missing or empty");
    }
    println!("\nThe backup of {LIBRARY} is in {}", backup.display());
    Ok(())
}
