//! Database backups for an Immich server: PostgreSQL dumps streamed through gzip into
//! a storage backend, named by time and Immich version, with retention.
//!
//! [`dump`] runs `pg_dump --clean --if-exists` (the flags of Immich's own dumps, so
//! Immich's restore procedure accepts ours) as a child process and streams its output
//! through gzip into a streamed create ([`imb_storage::Upload`]): no temporary file
//! the size of the database, memory bounded by a few 1 MiB chunks, and nothing at
//! the final name unless `pg_dump` exits 0. Compression runs on several threads and
//! still produces one standard gzip member. Dumps are named
//! `database/2024-01-15T03-00-00-immich-v2.3.1.sql.gz` ([`DumpName`]); the version
//! comes from Immich's `version_history` table unless configured.
//!
//! [`Connection`] reads Immich's own settings (`DB_URL`, or `DB_HOSTNAME`,
//! `DB_PORT`, `DB_USERNAME`, `DB_PASSWORD`, `DB_DATABASE_NAME`). The password never
//! reaches a command line, a log or an error: children read it from a private
//! temporary passfile, and their error output is redacted.
//!
//! [`prune`] keeps the newest N dumps and deletes older ones, only under
//! `database/`; a delete a retention-locked bucket refuses is reported, not fatal.
//!
//! [`scratch::ScratchCluster`] is a throwaway PostgreSQL server built from the
//! system's binaries: restore-verify loads untrusted dumps into one, and tests start
//! their own.
//!
//! ```
//! use imb_pgdump::{Connection, DumpName};
//! use std::time::{Duration, UNIX_EPOCH};
//!
//! let env = |k: &str| match k {
//!     "DB_HOSTNAME" => Some("immich_postgres".to_owned()),
//!     "DB_PASSWORD" => Some("s3cret".to_owned()),
//!     _ => None,
//! };
//! let conn = Connection::from_lookup(env).unwrap().unwrap();
//! assert_eq!(conn.to_string(), "postgres@immich_postgres:5432/immich");
//!
//! let name = DumpName::new(UNIX_EPOCH + Duration::from_secs(1_705_287_600), Some("v2.3.1"));
//! assert_eq!(name.key(), "database/2024-01-15T03-00-00-immich-v2.3.1.sql.gz");
//! ```

mod conn;
mod dump;
mod error;
pub mod guard;
mod gzip;
mod psql;
mod restore;
mod retention;
pub mod scratch;
mod version;

pub use conn::Connection;
pub use dump::{DumpOptions, DumpReport, dump};
pub use error::{Error, Result};
// Names and listing live with the rest of the target layout; re-exported here
// because a dump is named by them.
pub use imb_layout::{DUMP_PREFIX, DumpName, list_dumps, list_dumps_at};
pub use psql::Psql;
pub use restore::{RestoreDbOptions, RestoreDbReport, check_restore_target, restore_dump};
pub use retention::{RetentionReport, prune};

#[cfg(test)]
mod tests;
