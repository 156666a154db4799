//! Running psql against a server with a connection's credentials, for callers
//! that run their own SQL (restore-verify loading a dump into a server it names).

use std::path::PathBuf;

use crate::conn::Auth;
use crate::{Connection, Result};

/// psql for one server. Holds the temporary passfile while it lives.
#[derive(Debug)]
pub struct Psql {
    psql: PathBuf,
    conn: Connection,
    auth: Auth,
}

impl Psql {
    /// psql at `psql` for the server `conn` names.
    ///
    /// # Errors
    /// [`crate::Error::Io`] if the passfile cannot be written.
    pub fn new(conn: Connection, psql: impl Into<PathBuf>) -> Result<Psql> {
        let auth = Auth::prepare(&conn)?;
        Ok(Psql {
            psql: psql.into(),
            conn,
            auth,
        })
    }

    /// A command running psql on `database` of that server (unaligned, tuples only,
    /// stopping at the first error); the password reaches it through the passfile.
    pub fn command(&self, database: &str) -> std::process::Command {
        let mut conn = self.conn.clone();
        conn.database = database.to_owned();
        let mut cmd = std::process::Command::new(&self.psql);
        cmd.env_clear()
            .envs(crate::conn::child_env())
            .args(crate::conn::PSQL_QUERY)
            .args(["--no-password", "--dbname"])
            .arg(conn.conninfo())
            .env("LC_ALL", "C");
        self.auth.apply_std(&mut cmd);
        cmd
    }

    /// The psql program.
    pub fn program(&self) -> &std::path::Path {
        &self.psql
    }

    /// The server, without the password.
    pub fn target(&self) -> String {
        self.conn.to_string()
    }

    /// Redacts the password from text psql printed.
    pub fn redact(&self, text: &str) -> String {
        self.conn.redact(text)
    }
}
