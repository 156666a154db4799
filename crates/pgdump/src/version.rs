//! PostgreSQL version numbers as the tools and the server report them.

use std::fmt;

/// A PostgreSQL major version: `15` is `Major(15, 0)`; before 10 the major had two
/// parts, so 9.6 is `Major(9, 6)`. Ordered, so "pg_dump older than the server" is `<`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Major(pub(crate) u32, pub(crate) u32);

impl fmt::Display for Major {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 >= 10 {
            write!(f, "{}", self.0)
        } else {
            write!(f, "{}.{}", self.0, self.1)
        }
    }
}

/// Parses `pg_dump --version` (or `psql --version`) output such as
/// `pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)` or
/// `pg_dump (PostgreSQL) 17beta1`: the version's major and the version itself.
pub(crate) fn parse_tool_version(output: &str) -> Option<(Major, String)> {
    let token = output
        .split_whitespace()
        .find(|t| t.starts_with(|c: char| c.is_ascii_digit()))?;
    let digits = |s: &str| -> Option<u32> {
        let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        s[..end].parse().ok()
    };
    let first = digits(token)?;
    let major = if first >= 10 {
        Major(first, 0)
    } else {
        let rest = token.split_once('.')?.1;
        Major(first, digits(rest)?)
    };
    Some((major, token.to_owned()))
}

/// The major of a `server_version_num` (`150018` is 15, `90624` is 9.6).
pub(crate) fn major_from_num(num: u32) -> Major {
    if num >= 100_000 {
        Major(num / 10_000, 0)
    } else {
        Major(num / 10_000, (num / 100) % 100)
    }
}
