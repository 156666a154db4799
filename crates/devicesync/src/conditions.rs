//! The mobile app's background conditions ("Wi-Fi only", "charging only"), as far
//! as a Linux machine exposes them.
//!
//! * Charging: `/sys/class/power_supply/*`: a mains/USB supply whose `online` is 1,
//!   or a battery whose `status` is `Charging` or `Full`. A machine with no
//!   batteries at all (a desktop, a VM) counts as on mains power.
//! * Unmetered: NetworkManager's own judgement, `nmcli -t -f GENERAL.METERED dev
//!   show`; any device it calls metered (`yes`, `yes (guessed)`) makes the network
//!   metered. Without nmcli (or when it fails) the network is assumed unmetered and
//!   the reason is returned to be logged. This approximates "Wi-Fi only": a phone
//!   tethered over Wi-Fi is metered to NetworkManager only if it says so.

use std::path::Path;

/// The default power-supply directory.
pub const POWER_SUPPLY_DIR: &str = "/sys/class/power_supply";

/// What a condition check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// The condition holds.
    Met,
    /// It does not; the reason says why.
    NotMet(String),
    /// It could not be told; treated as met, with the reason to log.
    Assumed(String),
}

impl Check {
    /// Whether a run may go ahead.
    pub fn allows(&self) -> bool {
        !matches!(self, Check::NotMet(_))
    }
}

fn read(p: &Path) -> Option<String> {
    std::fs::read_to_string(p).ok().map(|s| s.trim().to_owned())
}

/// Whether the machine is charging or on mains power, from a `power_supply` directory.
pub fn charging(dir: &Path) -> Check {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Check::Assumed(format!(
            "{} is not readable: assuming mains power",
            dir.display()
        ));
    };
    let mut batteries = 0;
    for e in entries.flatten() {
        let p = e.path();
        let kind = read(&p.join("type")).unwrap_or_default();
        if kind == "Battery" {
            batteries += 1;
            if matches!(
                read(&p.join("status")).as_deref(),
                Some("Charging" | "Full")
            ) {
                return Check::Met;
            }
        } else if read(&p.join("online")).as_deref() == Some("1") {
            return Check::Met;
        }
    }
    if batteries == 0 {
        Check::Assumed("no battery found: assuming mains power".into())
    } else {
        Check::NotMet("on battery power".into())
    }
}

/// Reads `nmcli -t -f GENERAL.METERED dev show` output.
pub fn metered_from_nmcli(output: &str) -> Check {
    let values: Vec<&str> = output
        .lines()
        .filter_map(|l| l.strip_prefix("GENERAL.METERED:"))
        .map(str::trim)
        .collect();
    if values.iter().any(|v| v.starts_with("yes")) {
        Check::NotMet("NetworkManager reports a metered connection".into())
    } else if values.iter().any(|v| v.starts_with("no")) {
        Check::Met
    } else {
        Check::Assumed("NetworkManager does not know whether the network is metered".into())
    }
}

/// Whether the network is unmetered, asking NetworkManager.
pub fn unmetered() -> Check {
    match std::process::Command::new("nmcli")
        // Only what nmcli needs: our environment holds the API key.
        .env_clear()
        .envs(std::env::vars_os().filter(|(k, _)| k == "PATH" || k == "LANG"))
        .args(["-t", "-f", "GENERAL.METERED", "dev", "show"])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
    {
        Ok(o) if o.status.success() => metered_from_nmcli(&String::from_utf8_lossy(&o.stdout)),
        Ok(o) => Check::Assumed(format!("nmcli failed ({}): assuming unmetered", o.status)),
        Err(e) => Check::Assumed(format!("nmcli is not available ({e}): assuming unmetered")),
    }
}

/// The seed's background rules: "only while charging", and "use cellular" for
/// photos and for videos apart (a metered network may carry photos but not
/// videos).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Rules {
    /// Run only on mains power or while charging.
    pub charging: bool,
    /// Upload photos only on an unmetered network.
    pub unmetered_photos: bool,
    /// Upload videos only on an unmetered network.
    pub unmetered_videos: bool,
}

/// What the rules allow now.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Allowed {
    /// Photos may be uploaded.
    pub photos: bool,
    /// Videos may be uploaded.
    pub videos: bool,
    /// Why something waits, when it does.
    pub why: Option<String>,
    /// What could not be told and was assumed met, to log.
    pub assumed: Vec<String>,
}

impl Allowed {
    /// Nothing may be uploaded: the run does not start.
    pub fn nothing(&self) -> bool {
        !self.photos && !self.videos
    }
}

impl Rules {
    /// What the rules allow, asking the machine only about the rules set:
    /// `charging` and `unmetered` are [`charging`] and [`unmetered`], or stand-ins.
    pub fn allowed(
        self,
        charging: impl FnOnce() -> Check,
        unmetered: impl FnOnce() -> Check,
    ) -> Allowed {
        let mut a = Allowed {
            photos: true,
            videos: true,
            why: None,
            assumed: Vec::new(),
        };
        if self.charging {
            match charging() {
                Check::Met => {}
                Check::Assumed(why) => a.assumed.push(why),
                Check::NotMet(why) => {
                    (a.photos, a.videos, a.why) = (false, false, Some(why));
                    return a;
                }
            }
        }
        if self.unmetered_photos || self.unmetered_videos {
            match unmetered() {
                Check::Met => {}
                Check::Assumed(why) => a.assumed.push(why),
                Check::NotMet(why) => {
                    a.photos = !self.unmetered_photos;
                    a.videos = !self.unmetered_videos;
                    a.why = Some(match (a.photos, a.videos) {
                        (true, false) => format!("{why}: videos wait for an unmetered network"),
                        (false, true) => format!("{why}: photos wait for an unmetered network"),
                        _ => why,
                    });
                }
            }
        }
        a
    }
}
