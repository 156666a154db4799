//! The `demo` task: the README's first command, the whole story in one go.
//!
//! Generates the sample library into `target/demo/library`, then, with the real
//! binaries and printing each command as a user would type it: backs it up into
//! `target/demo/backup`; changes a photo and backs up again (one upload, the old
//! content kept); verifies a sample; restores into `target/demo/restored`; and
//! compares the restored tree with the library.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::cmd::cmd;
use crate::project_root;
use crate::sample;

const DEMO: &str = "target/demo";

/// `cargo xtask demo`.
pub(crate) fn run() -> Result<()> {
    cmd(
        "cargo",
        [
            "build",
            "--release",
            "--bin",
            "backup",
            "--bin",
            "restore-verify",
        ],
    )
    .run()?;
    let bins = project_root().join("target/release");
    let report = story(&bins, &project_root().join(DEMO))?;
    println!("\n{report}");
    Ok(())
}

/// Runs the story with the binaries in `bins`, in `dir` (emptied first); returns
/// the closing summary.
pub(crate) fn story(bins: &Path, dir: &Path) -> Result<String> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("emptying {}", dir.display()))?;
    }
    let (library, backup, restored) = (
        dir.join("library"),
        dir.join("backup"),
        dir.join("restored"),
    );
    let made = sample::generate(&library, sample::DEFAULT_FILES, sample::DEFAULT_SEED, true)?;
    eprintln!("{}", made.describe(&library));
    let tool = |name: &str| -> PathBuf { bins.join(name) };
    let step = |title: &str| eprintln!("\n== {title}");
    let run = |name: &str, args: &[&str]| -> Result<serde_json::Value> {
        // What a user types; the echo that follows is what runs (with --json, to
        // check the story, and only warnings logged).
        let prefix = format!("{}/", dir.display());
        let shown: Vec<String> = args
            .iter()
            .map(|a| {
                a.strip_prefix(prefix.as_str())
                    .map_or_else(|| (*a).to_owned(), |r| format!("{DEMO}/{r}"))
            })
            .collect();
        eprintln!("$ {name} {}", shown.join(" "));
        let mut all: Vec<&str> = args.to_vec();
        all.push("--json");
        let out = cmd(
            tool(name).to_str().context("binary path is not UTF-8")?,
            all,
        )
        .env("RUST_LOG", "warn")
        .read()?;
        serde_json::from_str(out.trim()).with_context(|| format!("{name} printed no JSON summary"))
    };
    let lib = library.to_str().context("demo path is not UTF-8")?;
    let dst = backup.to_str().context("demo path is not UTF-8")?;
    let out = restored.to_str().context("demo path is not UTF-8")?;

    step("1. Back up the library (nothing is ever overwritten or deleted in the target)");
    let first = run("backup", &["--source", lib, "--dest", dst])?;
    let uploaded = first["files_uploaded"].as_u64().unwrap_or(0);
    if uploaded == 0 {
        bail!("the first backup uploaded nothing: {first}");
    }
    eprintln!("   {uploaded} files uploaded");

    step("2. Change a photo, back up again: only it is uploaded; its old content is kept");
    let photo = first_photo(&library)?;
    let mut bytes = std::fs::read(&photo)?;
    bytes.extend_from_slice(b" edited in the demo");
    std::fs::write(&photo, &bytes)?;
    let rel = photo.strip_prefix(&library)?.to_string_lossy().into_owned();
    eprintln!("   changed {rel}");
    let second = run("backup", &["--source", lib, "--dest", dst])?;
    if second["files_uploaded"] != 1 {
        bail!("the second backup should upload exactly the changed file: {second}");
    }
    let kept = backup.join("library").join(&rel);
    if std::fs::read(&kept)?.ends_with(b" edited in the demo") {
        bail!(
            "the first content of {rel} was not kept at {}",
            kept.display()
        );
    }
    eprintln!(
        "   1 file uploaded; the first content stays at library/{rel}, the new one under versions/"
    );

    step("3. Verify: the manifest against the objects, and a sample re-hashed");
    let verified = run(
        "restore-verify",
        &[
            "--from",
            dst,
            "--sample",
            "20",
            "--seed",
            "1",
            "--no-database",
        ],
    )?;
    if verified["ok"] != true {
        bail!("verification found problems: {verified}");
    }
    eprintln!(
        "   {} files checked, {} re-hashed",
        verified["verify"]["files_checked"], verified["verify"]["objects_hashed"]
    );

    step("4. Restore into a new directory");
    let restore = run(
        "restore-verify",
        &["--from", dst, "--restore-to", out, "--no-database"],
    )?;
    if restore["ok"] != true {
        bail!("the restore found problems: {restore}");
    }

    step("5. Compare the restored tree with the library");
    let compared = compare(&library, &restored)?;
    Ok(format!(
        "The whole story ran: backup, change, backup, verify, restore. The restored tree in {} \
         equals the library, {compared} files byte for byte (thumbs/ and encoded-video/ are \
         left out by default: Immich regenerates them).",
        restored.display()
    ))
}

/// The first `.jpg` under `library/`, in name order.
fn first_photo(root: &Path) -> Result<PathBuf> {
    files(root)?
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "jpg") && p.starts_with(root.join("library")))
        .context("the sample library has no photo")
}

/// Every backed-up file of `library` is in `restored` with the same bytes; returns
/// how many.
fn compare(library: &Path, restored: &Path) -> Result<usize> {
    let mut n = 0;
    for p in files(library)? {
        let rel = p.strip_prefix(library)?;
        if rel.starts_with("thumbs") || rel.starts_with("encoded-video") {
            continue;
        }
        let other = restored.join(rel);
        let same = std::fs::read(&other).is_ok_and(|b| b == std::fs::read(&p).unwrap_or_default());
        if !same {
            bail!(
                "{} differs from {} after the restore",
                other.display(),
                p.display()
            );
        }
        n += 1;
    }
    Ok(n)
}

fn files(root: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(d) = pending.pop() {
        for e in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let e = e?;
            if e.file_type()?.is_dir() {
                pending.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    /// The README's first command tells the whole story and ends with a restore
    /// that compares equal (with the debug binaries `cargo xtask test` built).
    #[test]
    fn the_demo_ends_with_a_restore_that_compares_equal() {
        let bins = crate::project_root().join("target/debug");
        assert!(
            bins.join("backup").is_file() && bins.join("restore-verify").is_file(),
            "build the binaries first (`cargo build --workspace --bins`, which `cargo xtask test` does)"
        );
        let dir = tempfile::tempdir().unwrap();
        let report = super::story(&bins, &dir.path().join("demo")).unwrap();
        assert!(report.contains("equals the library"), "{report}");
        assert!(dir.path().join("demo/restored/library").is_dir());
    }
}
