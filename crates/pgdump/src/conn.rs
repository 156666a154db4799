//! Where the database is and how we log in: [`Connection`], read from Immich's own
//! settings, and the secret-free way it reaches `pg_dump` and `psql`.
//!
//! The password never goes on a command line (any local user can read argv through
//! `/proc`) and never into a log or an error. The children get it from a passfile:
//! a private temporary file (mode 0600) named by `PGPASSFILE` and deleted when the
//! child is done. A password a passfile cannot hold (one with a line break) goes
//! through the child's `PGPASSWORD` instead, which only the same user can read.

use std::fmt;
use std::io::Write;
use std::path::Path;

use crate::{Error, Result};

/// Immich's default port, user and database name (its `.env` defaults).
const DEFAULT_PORT: u16 = 5432;
const DEFAULT_USER: &str = "postgres";
const DEFAULT_DATABASE: &str = "immich";
/// How long libpq may take to connect before the dump fails, in seconds. Without it
/// an unreachable host hangs for the operating system's TCP timeout.
const CONNECT_TIMEOUT_S: u32 = 30;

/// A PostgreSQL database to dump, with the password kept out of `Debug`, `Display`
/// and every error.
///
/// ```
/// use imb_pgdump::Connection;
/// let c = Connection::from_url("postgres://immich:s3cret@db:5432/immich").unwrap();
/// assert_eq!(c.to_string(), "immich@db:5432/immich");
/// assert!(!format!("{c:?}").contains("s3cret"));
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Connection {
    /// Host name, IP address, or a Unix-socket directory (starting with `/`).
    pub host: String,
    /// TCP port (also names the socket file in a socket directory).
    pub port: u16,
    /// The role to log in as.
    pub user: String,
    /// The database to dump.
    pub database: String,
    password: Option<String>,
    /// Further libpq parameters from `DB_URL`'s query (`sslmode=require`, …).
    params: Vec<(String, String)>,
}

impl Connection {
    /// A connection without a password (libpq's own lookup then applies: peer or
    /// trust authentication, `~/.pgpass`).
    pub fn new(
        host: impl Into<String>,
        port: u16,
        user: impl Into<String>,
        database: impl Into<String>,
    ) -> Self {
        Connection {
            host: host.into(),
            port,
            user: user.into(),
            database: database.into(),
            password: None,
            params: Vec::new(),
        }
    }

    /// Sets the password.
    pub fn with_password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// Adds a libpq connection parameter (`sslmode`, `sslrootcert`, …), passed to the
    /// children in their connection string, which is on their command line. The one
    /// secret parameter, `password`, is taken as the password instead, so it never
    /// gets there.
    pub fn with_param(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        let (key, value) = (key.into(), value.into());
        if key == "password" {
            self.password = Some(value);
        } else {
            self.params.push((key, value));
        }
        self
    }

    /// The password, if one is set. Handle with care: this is the secret.
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// The extra libpq parameters.
    pub fn params(&self) -> &[(String, String)] {
        &self.params
    }

    /// The connection Immich itself uses, from the process environment; see
    /// [`Connection::from_lookup`].
    ///
    /// # Errors
    /// As [`Connection::from_lookup`].
    pub fn from_env() -> Result<Option<Connection>> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// The connection described by Immich's settings, looked up through `get`:
    /// `DB_URL` if set (it wins, as in Immich); otherwise `DB_HOSTNAME`, `DB_PORT`
    /// (default 5432), `DB_USERNAME` (default `postgres`), `DB_PASSWORD` and
    /// `DB_DATABASE_NAME` (default `immich`). `DB_HOSTNAME`, `DB_USERNAME`,
    /// `DB_PASSWORD` and `DB_DATABASE_NAME` may instead be given as a file path in
    /// `…_FILE` (Docker secrets; a trailing line break is dropped); the plain
    /// variable wins when both are set. Empty values count as unset.
    ///
    /// `None` when neither `DB_URL` nor `DB_HOSTNAME` is set: the database is not
    /// configured. (Immich's compose file defaults the host to `database`, a name
    /// that only resolves inside its Docker network, so we do not assume it.)
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the setting: a `DB_URL` that does not parse, a
    /// `DB_PORT` that is not a port, an unreadable `…_FILE`. Never contains the password.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Option<Connection>> {
        let get = |name: &str| get(name).filter(|v| !v.is_empty());
        if let Some(url) = get("DB_URL") {
            return Self::from_url(&url).map(Some);
        }
        let setting = |name: &str| -> Result<Option<String>> {
            if let Some(v) = get(name) {
                return Ok(Some(v));
            }
            let file_var = format!("{name}_FILE");
            match get(&file_var) {
                None => Ok(None),
                Some(path) => read_secret_file(&file_var, Path::new(&path)).map(Some),
            }
        };
        let Some(host) = setting("DB_HOSTNAME")? else {
            return Ok(None);
        };
        let port = match get("DB_PORT") {
            None => DEFAULT_PORT,
            Some(p) => parse_port(&p).ok_or_else(|| {
                Error::invalid("DB_PORT", format!("{p:?} is not a TCP port number"))
            })?,
        };
        let user = setting("DB_USERNAME")?.unwrap_or_else(|| DEFAULT_USER.to_owned());
        let database = setting("DB_DATABASE_NAME")?.unwrap_or_else(|| DEFAULT_DATABASE.to_owned());
        let mut conn = Connection::new(host, port, user, database);
        conn.password = setting("DB_PASSWORD")?;
        Ok(Some(conn))
    }

    /// Parses a `postgres://` or `postgresql://` URL, as Immich's `DB_URL`:
    /// `postgresql://user:password@host:port/database?sslmode=require`.
    /// User, password, host and database are percent-decoded; an IPv6 host goes in
    /// brackets. The user defaults to `postgres` and the port to 5432. Query
    /// parameters are passed to libpq (`sslmode=no-verify`, which Immich's Node driver
    /// understands, becomes libpq's `require`: encrypted, certificate not checked);
    /// a `password` parameter is taken as the password.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming `DB_URL` and the part that is wrong; the
    /// message never repeats the URL, so the password cannot leak through it.
    pub fn from_url(url: &str) -> Result<Connection> {
        let bad = |reason: &str| Error::invalid("DB_URL", reason);
        let rest = url
            .strip_prefix("postgresql://")
            .or_else(|| url.strip_prefix("postgres://"))
            .ok_or_else(|| bad("must start with postgresql:// or postgres://"))?;
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let (authority, path) = match rest.split_once('/') {
            Some((a, p)) => (a, p),
            None => (rest, ""),
        };
        // The last '@' ends the user info, so an unescaped '@' in a password still parses.
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (user, password) = match userinfo {
            None => (None, None),
            Some(u) => match u.split_once(':') {
                Some((user, pw)) => (
                    Some(decode(user).ok_or_else(|| bad("bad percent escape in the user name"))?),
                    Some(decode(pw).ok_or_else(|| bad("bad percent escape in the password"))?),
                ),
                None => (
                    Some(decode(u).ok_or_else(|| bad("bad percent escape in the user name"))?),
                    None,
                ),
            },
        };
        if hostport.contains(',') {
            return Err(bad("several hosts are not supported; give one"));
        }
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| bad("an IPv6 host is missing its closing ']'"))?;
            let port = match after {
                "" => None,
                p => Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| bad("junk after the IPv6 host"))?,
                ),
            };
            (h.to_owned(), port)
        } else {
            let (h, p) = match hostport.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            };
            (
                decode(h).ok_or_else(|| bad("bad percent escape in the host"))?,
                p,
            )
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port = match port {
            None | Some("") => DEFAULT_PORT,
            Some(p) => {
                parse_port(p).ok_or_else(|| bad(&format!("port {p:?} is not a TCP port number")))?
            }
        };
        let database =
            decode(path).ok_or_else(|| bad("bad percent escape in the database name"))?;
        if database.is_empty() {
            return Err(bad("no database name (postgresql://user@host/DATABASE)"));
        }
        let user = user
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| DEFAULT_USER.to_owned());
        let mut conn = Connection::new(host, port, user, database);
        conn.password = password.filter(|p| !p.is_empty());
        for pair in query
            .into_iter()
            .flat_map(|q| q.split('&'))
            .filter(|p| !p.is_empty())
        {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let k = decode(k).ok_or_else(|| bad("bad percent escape in a query parameter"))?;
            if k == "password" {
                conn.password =
                    Some(decode(v).ok_or_else(|| bad("bad percent escape in the password"))?);
                continue;
            }
            let mut v = decode(v)
                .ok_or_else(|| bad(&format!("bad percent escape in query parameter {k:?}")))?;
            if k == "sslmode" && v == "no-verify" {
                v = "require".to_owned();
            }
            conn.params.push((k, v));
        }
        Ok(conn)
    }

    /// The libpq connection string for the children's `--dbname`: everything but the
    /// password. Values are quoted, so a database name can never be mistaken for a
    /// connection string of its own.
    pub(crate) fn conninfo(&self) -> String {
        let mut out = String::new();
        let mut add = |k: &str, v: &str| {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(k);
            out.push_str("='");
            for c in v.chars() {
                if c == '\'' || c == '\\' {
                    out.push('\\');
                }
                out.push(c);
            }
            out.push('\'');
        };
        add("host", &self.host);
        add("port", &self.port.to_string());
        add("user", &self.user);
        add("dbname", &self.database);
        add("connect_timeout", &CONNECT_TIMEOUT_S.to_string());
        add("application_name", "immich-backup");
        for (k, v) in &self.params {
            add(k, v);
        }
        out
    }

    /// Replaces the password in text a child printed, in case it ever echoes it.
    pub(crate) fn redact(&self, text: &str) -> String {
        match self.password.as_deref() {
            Some(pw) if !pw.is_empty() => text.replace(pw, "<redacted>"),
            _ => text.to_owned(),
        }
    }
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("database", &self.database)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("params", &self.params)
            .finish()
    }
}

/// `user@host:port/database`: how errors and logs name the database.
impl fmt::Display for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(
                f,
                "{}@[{}]:{}/{}",
                self.user, self.host, self.port, self.database
            )
        } else {
            write!(
                f,
                "{}@{}:{}/{}",
                self.user, self.host, self.port, self.database
            )
        }
    }
}

fn parse_port(p: &str) -> Option<u16> {
    p.parse().ok().filter(|&p| p != 0)
}

fn read_secret_file(setting: &str, path: &Path) -> Result<String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::invalid(setting, format!("cannot read {}: {e}", path.display())))?;
    Ok(text
        .strip_suffix('\n')
        .map(|t| t.strip_suffix('\r').unwrap_or(t))
        .unwrap_or(&text)
        .to_owned())
}

/// Percent-decodes a URL part; `None` on a bad escape or bytes that are not UTF-8.
fn decode(s: &str) -> Option<String> {
    String::from_utf8(imb_storage::percent_decode(s)?).ok()
}

/// How a child gets the password: the environment changes to make on its command.
/// Holding this keeps the passfile alive; dropping it deletes the file.
#[derive(Default)]
pub(crate) struct Auth {
    passfile: Option<tempfile::NamedTempFile>,
    password_env: Option<String>,
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth")
            .field("passfile", &self.passfile.as_ref().map(|p| p.path()))
            .field(
                "password_env",
                &self.password_env.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl Auth {
    /// Writes the passfile for `conn` (nothing when it has no password).
    pub(crate) fn prepare(conn: &Connection) -> Result<Auth> {
        let Some(pw) = conn.password.as_deref() else {
            return Ok(Auth::default());
        };
        if pw.contains(['\n', '\r']) {
            // A passfile entry is one line; this password can only go by environment.
            return Ok(Auth {
                passfile: None,
                password_env: Some(pw.to_owned()),
            });
        }
        // tempfile creates the file with mode 0600 (libpq ignores a passfile that
        // group or others can read) in the system temporary directory.
        let mut file = tempfile::Builder::new()
            .prefix("imb-pgpass-")
            .tempfile()
            .map_err(|e| Error::io("creating the temporary passfile", e))?;
        file.write_all(passfile_line(pw).as_bytes())
            .and_then(|()| file.flush())
            .map_err(|e| Error::io("writing the temporary passfile", e))?;
        Ok(Auth {
            passfile: Some(file),
            password_env: None,
        })
    }

    /// Points a child at the password. An inherited `PGPASSWORD` is removed because
    /// libpq would prefer it to our passfile.
    pub(crate) fn apply_std(&self, cmd: &mut std::process::Command) {
        if let Some(file) = &self.passfile {
            cmd.env_remove("PGPASSWORD").env("PGPASSFILE", file.path());
        } else if let Some(pw) = &self.password_env {
            cmd.env("PGPASSWORD", pw);
        }
    }

    pub(crate) fn apply(&self, cmd: &mut tokio::process::Command) {
        if let Some(file) = &self.passfile {
            cmd.env_remove("PGPASSWORD").env("PGPASSFILE", file.path());
        } else if let Some(pw) = &self.password_env {
            cmd.env("PGPASSWORD", pw);
        }
    }
}

/// The variables a child PostgreSQL tool sees: locale, paths, and libpq's TLS and
/// timeout settings. Everything else stays with us: a child inherits the whole
/// environment by default, and ours holds GCS keys, Immich's API key, `DB_URL` and
/// `DB_PASSWORD`, which would then show in `/proc/PID/environ` (to the `postgres`
/// user, for the scratch cluster).
const CHILD_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "LANG",
    "LANGUAGE",
    "TZ",
    "TMPDIR",
    "USER",
    "LOGNAME",
    "PGSSLMODE",
    "PGSSLROOTCERT",
    "PGSSLCERT",
    "PGSSLKEY",
    "PGSSLCRL",
    "PGSSLCRLDIR",
    "PGSSLSNI",
    "PGGSSENCMODE",
    "PGCONNECT_TIMEOUT",
    "PGTZ",
    "PGAPPNAME",
    "PGTARGETSESSIONATTRS",
];

/// How we run psql for queries: no psqlrc, bare rows, stop at the first error.
pub(crate) const PSQL_QUERY: [&str; 5] = [
    "--no-psqlrc",
    "--quiet",
    "--no-align",
    "--tuples-only",
    "--set=ON_ERROR_STOP=1",
];

/// [`CHILD_ENV`] (and `LC_*`) as set here, for `Command::env_clear().envs(…)`.
pub(crate) fn child_env() -> Vec<(std::ffi::OsString, std::ffi::OsString)> {
    std::env::vars_os()
        .filter(|(k, _)| {
            k.to_str()
                .is_some_and(|k| CHILD_ENV.contains(&k) || k.starts_with("LC_"))
        })
        .collect()
}

/// A passfile line matching any host, port, database and user: the file exists for
/// one child that connects to one place. `\` and `:` are escaped as libpq requires.
pub(crate) fn passfile_line(password: &str) -> String {
    let mut line = String::from("*:*:*:*:");
    for c in password.chars() {
        if c == '\\' || c == ':' {
            line.push('\\');
        }
        line.push(c);
    }
    line.push('\n');
    line
}
