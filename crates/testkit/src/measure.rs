//! What a run costs, for the benches: one program under GNU time (wall seconds,
//! user + system CPU seconds, peak RSS) and CPU seconds from `/proc` (a process's,
//! the machine's). The benches of device-sync, of the restore drill and of GCS
//! uploads all measure this way.

use std::io;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Instant;

/// What one run cost.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// Wall seconds, as measured here.
    pub wall_s: f64,
    /// User + system CPU seconds of the program and its children.
    pub cpu_s: f64,
    /// Peak resident set of the largest process, KiB.
    pub max_rss_kib: f64,
}

impl Usage {
    /// Peak RSS in MiB.
    pub fn rss_mib(&self) -> f64 {
        self.max_rss_kib / 1024.0
    }

    /// The better of two rounds, figure by figure.
    pub fn best(self, other: Usage) -> Usage {
        Usage {
            wall_s: self.wall_s.min(other.wall_s),
            cpu_s: self.cpu_s.min(other.cpu_s),
            max_rss_kib: self.max_rss_kib.min(other.max_rss_kib),
        }
    }
}

/// Runs `program args` under `/usr/bin/time` (its report into `times`), set up
/// by `configure` (environment, stdin, working directory). Returns the output
/// and the cost; a program that fails is an error with its standard error.
///
/// # Errors
/// When it cannot be started, fails, or GNU time wrote no report.
pub fn timed(
    program: &Path,
    args: &[&std::ffi::OsStr],
    times: &Path,
    configure: impl FnOnce(&mut Command),
) -> io::Result<(Output, Usage)> {
    let mut c = Command::new("/usr/bin/time");
    c.arg("-f")
        .arg("%e %U %S %M")
        .arg("-o")
        .arg(times)
        .arg(program)
        .args(args);
    configure(&mut c);
    let started = Instant::now();
    let out = c.output()?;
    let wall_s = started.elapsed().as_secs_f64();
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "{} exited with {}: {}",
            program.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    let text = std::fs::read_to_string(times)?;
    let (user, sys, rss) = parse_time(&text).ok_or_else(|| {
        io::Error::other(format!("no `%e %U %S %M` line from GNU time in {text:?}"))
    })?;
    Ok((
        out,
        Usage {
            wall_s,
            cpu_s: user + sys,
            max_rss_kib: rss,
        },
    ))
}

/// User seconds, system seconds and max RSS (KiB) from GNU time's last line.
pub fn parse_time(text: &str) -> Option<(f64, f64, f64)> {
    let line = text.lines().rfind(|line| !line.trim().is_empty())?;
    let numbers: Vec<f64> = line
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    match numbers[..] {
        [_, user, sys, rss] => Some((user, sys, rss)),
        _ => None,
    }
}

/// Clock ticks per second, the unit of `/proc`'s CPU times.
///
/// # Errors
/// When `getconf` cannot be run or says nothing numeric.
pub fn clock_ticks() -> io::Result<f64> {
    let out = Command::new("getconf").arg("CLK_TCK").output()?;
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .map_err(|e| io::Error::other(format!("getconf CLK_TCK: {e}")))
}

/// CPU seconds (user + system, children excluded) of process `pid`, or of this
/// process for `"self"`.
///
/// # Errors
/// When its `/proc/…/stat` cannot be read or parsed.
pub fn process_cpu_s(pid: &str, ticks: f64) -> io::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // After the command name, utime and stime are the 12th and 13th fields.
    let mut total = 0.0;
    for f in fields
        .get(11..13)
        .ok_or_else(|| io::Error::other("short /proc stat"))?
    {
        total += f
            .parse::<f64>()
            .map_err(|e| io::Error::other(format!("/proc/{pid}/stat: {e}")))?;
    }
    Ok(total / ticks)
}

/// Busy CPU seconds of the whole machine so far: everything but idle and iowait in
/// the `cpu` line of `/proc/stat`.
///
/// # Errors
/// When `/proc/stat` cannot be read or parsed.
pub fn machine_busy_s(ticks: f64) -> io::Result<f64> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let line = stat.lines().next().unwrap_or_default();
    let mut busy = 0.0;
    // user nice system idle iowait irq softirq steal (guest time is inside user).
    for (index, field) in line.split_whitespace().skip(1).take(8).enumerate() {
        if index != 3 && index != 4 {
            busy += field
                .parse::<f64>()
                .map_err(|e| io::Error::other(format!("/proc/stat: {line}: {e}")))?;
        }
    }
    Ok(busy / ticks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gnu_time_lines() {
        assert_eq!(
            parse_time("12.50 3.20 0.80 45678\n"),
            Some((3.2, 0.8, 45678.0))
        );
        assert_eq!(
            parse_time("Command exited with non-zero status 1\n1.00 0.10 0.00 2000\n"),
            Some((0.1, 0.0, 2000.0))
        );
        assert_eq!(parse_time("garbage\n"), None);
    }

    #[test]
    fn this_process_has_spent_some_cpu() {
        let ticks = clock_ticks().unwrap();
        assert!(ticks > 0.0);
        let mut x = 0u64;
        let until = Instant::now() + std::time::Duration::from_millis(50);
        while Instant::now() < until {
            x = x.wrapping_add(1);
        }
        assert!(x > 0);
        assert!(process_cpu_s("self", ticks).unwrap() > 0.0);
        assert!(machine_busy_s(ticks).unwrap() > 0.0);
    }
}
