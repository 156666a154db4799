//! `device-sync install` and `uninstall`: systemd user units that back up in the
//! background, as the phone app's background backup does. The units run this
//! binary with a settings file written next to them (every layer of the current
//! settings merged, paths absolute, mode 0600: it may hold a ping URL); the API
//! key stays in its own file, named by path, never in a unit.

#![allow(clippy::print_stdout)]

use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use imb_cli::print_json;

/// The units' names.
pub(crate) const SERVICE: &str = "immich-device-sync.service";
pub(crate) const TIMER: &str = "immich-device-sync.timer";
/// The settings file the units run with, in [`settings_dir`].
const SETTINGS: &str = "device-sync.toml";

fn config_home() -> Result<PathBuf> {
    imb_devicesync::xdg_dir("XDG_CONFIG_HOME", ".config")
        .ok_or_else(|| anyhow!("neither XDG_CONFIG_HOME nor HOME is set: no place for user units"))
}

/// `$XDG_CONFIG_HOME/systemd/user`, where systemd looks for a user's own units.
fn unit_dir() -> Result<PathBuf> {
    Ok(config_home()?.join("systemd/user"))
}

fn settings_dir() -> Result<PathBuf> {
    Ok(config_home()?.join("immich-device-sync"))
}

/// `p` as one word of a unit's command line: quoted when it needs it, with
/// systemd's specifier (`%`) and variable (`$`) characters escaped.
fn word(p: &Path) -> Result<String> {
    let s = p
        .to_str()
        .ok_or_else(|| anyhow!("{} is not UTF-8: a unit cannot name it", p.display()))?;
    if s.chars().any(char::is_control) {
        bail!("{s:?} has control characters: a unit cannot name it");
    }
    let escaped = s.replace('%', "%%").replace('$', "$$");
    if escaped
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+%$,:@".contains(c))
    {
        return Ok(escaped);
    }
    Ok(format!(
        "\"{}\"",
        escaped.replace('\\', "\\\\").replace('"', "\\\"")
    ))
}

/// The units: a service running `watch`, or with `timer` a one-shot sync
/// and a timer that starts it that often.
pub(crate) fn units(
    exe: &Path,
    settings: &Path,
    timer: Option<Duration>,
) -> Result<Vec<(&'static str, String)>> {
    let run = format!("{} --config {}", word(exe)?, word(settings)?);
    let head = "# Written by `device-sync install`; `device-sync uninstall` removes it.\n";
    let mut service = format!(
        "{head}[Unit]\nDescription=Immich device-sync: back up photo folders to Immich\n\
         Documentation=man:device-sync(1)\n\n[Service]\n"
    );
    match timer {
        None => {
            // Exit 1 is "cannot run" (settings, a refused key): restarting would
            // not help. Anything else, a crash included, is restarted.
            let _ = write!(
                service,
                "Type=simple\nExecStart={run} watch\nRestart=on-failure\nRestartSec=1min\n\
                 RestartPreventExitStatus=1\nNoNewPrivileges=yes\n\n[Install]\nWantedBy=default.target\n"
            );
            Ok(vec![(SERVICE, service)])
        }
        Some(every) => {
            let _ = write!(
                service,
                "Type=oneshot\nExecStart={run} sync\nNoNewPrivileges=yes\n"
            );
            let every = humantime::format_duration(every)
                .to_string()
                .replace(' ', "");
            let timer = format!(
                "{head}[Unit]\nDescription=Immich device-sync every {every}\n\
                 Documentation=man:device-sync(1)\n\n[Timer]\nOnBootSec=5min\n\
                 OnUnitActiveSec={every}\n\n[Install]\nWantedBy=timers.target\n"
            );
            Ok(vec![(SERVICE, service), (TIMER, timer)])
        }
    }
}

fn systemctl(args: &[&str]) -> Result<()> {
    let out = std::process::Command::new("systemctl")
        .arg("--user")
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .context("systemctl --user (is systemd running for this user?)")?;
    if !out.status.success() {
        bail!(
            "systemctl --user {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Writes `text` to `path` with `mode`, replacing it whole (a unit half-written
/// is never read: a temporary file is renamed over it).
fn write_file(path: &Path, text: &str, mode: u32) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::io::Write::write_all(&mut f, text.as_bytes())
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(mode))?;
    fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

/// `device-sync install`.
pub(crate) fn install(
    timer: Option<Duration>,
    enable: bool,
    settings: &str,
    json: bool,
) -> Result<ExitCode> {
    let exe = std::env::current_exe().context("where this program is")?;
    let (units_at, settings_at) = (unit_dir()?, settings_dir()?);
    fs::create_dir_all(&units_at).with_context(|| format!("creating {}", units_at.display()))?;
    fs::create_dir_all(&settings_at)
        .with_context(|| format!("creating {}", settings_at.display()))?;
    fs::set_permissions(&settings_at, fs::Permissions::from_mode(0o700))?;
    let settings_file = settings_at.join(SETTINGS);
    let mut did = Vec::new();
    write_file(
        &settings_file,
        &format!("# The settings of the `device-sync install` units.\n{settings}"),
        0o600,
    )?;
    did.push(format!("wrote {}", settings_file.display()));
    let units = units(&exe, &settings_file, timer)?;
    // Switching between watch and timer: the other mode's timer goes.
    if timer.is_none() && units_at.join(TIMER).exists() {
        if enable {
            systemctl(&["disable", "--now", TIMER])?;
        }
        fs::remove_file(units_at.join(TIMER))?;
        did.push(format!("removed {}", units_at.join(TIMER).display()));
    }
    for (name, text) in &units {
        let p = units_at.join(name);
        write_file(&p, text, 0o644)?;
        did.push(format!("wrote {}", p.display()));
    }
    let main = if timer.is_some() { TIMER } else { SERVICE };
    if enable {
        systemctl(&["daemon-reload"])?;
        systemctl(&["enable", "--now", main])?;
        did.push(format!("enabled and started {main}"));
    } else {
        did.push(format!(
            "not enabled: `systemctl --user daemon-reload && systemctl --user enable --now {main}` starts it"
        ));
    }
    report(&did, json);
    Ok(ExitCode::SUCCESS)
}

/// `device-sync uninstall`.
pub(crate) fn uninstall(enable: bool, json: bool) -> Result<ExitCode> {
    let (units_at, settings_at) = (unit_dir()?, settings_dir()?);
    let mut did = Vec::new();
    for name in [TIMER, SERVICE] {
        let p = units_at.join(name);
        if !p.exists() {
            continue;
        }
        if enable {
            systemctl(&["disable", "--now", name])?;
            did.push(format!("stopped and disabled {name}"));
        }
        fs::remove_file(&p).with_context(|| format!("removing {}", p.display()))?;
        did.push(format!("removed {}", p.display()));
    }
    let settings_file = settings_at.join(SETTINGS);
    if settings_file.exists() {
        fs::remove_file(&settings_file)
            .with_context(|| format!("removing {}", settings_file.display()))?;
        did.push(format!("removed {}", settings_file.display()));
    }
    if enable && !did.is_empty() {
        systemctl(&["daemon-reload"])?;
    }
    if did.is_empty() {
        did.push("nothing was installed".into());
    }
    report(&did, json);
    Ok(ExitCode::SUCCESS)
}

fn report(did: &[String], json: bool) {
    if json {
        print_json(&serde_json::json!({ "done": did }));
    } else {
        for d in did {
            println!("{d}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_and_escaped_for_systemd() {
        assert_eq!(
            word(Path::new("/usr/bin/device-sync")).unwrap(),
            "/usr/bin/device-sync"
        );
        assert_eq!(
            word(Path::new("/home/a b/x\"y")).unwrap(),
            "\"/home/a b/x\\\"y\""
        );
        assert_eq!(word(Path::new("/p/100%/$HOME")).unwrap(), "/p/100%%/$$HOME");
        assert!(word(Path::new("/p/a\nb")).is_err());
    }

    #[test]
    fn a_watch_service_or_a_timer_and_its_one_shot_sync() {
        let (exe, cfg) = (
            Path::new("/bin/device-sync"),
            Path::new("/c/device-sync.toml"),
        );
        let u = units(exe, cfg, None).unwrap();
        assert_eq!(u.len(), 1);
        assert!(
            u[0].1
                .contains("ExecStart=/bin/device-sync --config /c/device-sync.toml watch\n")
        );
        assert!(u[0].1.contains("WantedBy=default.target"));
        let u = units(exe, cfg, Some(Duration::from_secs(5400))).unwrap();
        assert_eq!((u[0].0, u[1].0), (SERVICE, TIMER));
        assert!(u[0].1.contains(
            "Type=oneshot\nExecStart=/bin/device-sync --config /c/device-sync.toml sync\n"
        ));
        assert!(u[1].1.contains("OnUnitActiveSec=1h30m\n"), "{}", u[1].1);
    }
}
