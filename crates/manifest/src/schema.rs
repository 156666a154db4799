//! Table definitions, shared by the manifest and its journals.

/// The tables, created in the schema named by `{s}` (`main` or an attached journal).
pub(crate) fn tables(s: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {s}.manifest_metadata (
             key TEXT PRIMARY KEY NOT NULL,
             value TEXT NOT NULL
         ) WITHOUT ROWID;
         CREATE TABLE IF NOT EXISTS {s}.files (
             file_path TEXT PRIMARY KEY NOT NULL,  -- relative to the source, '/'-separated, percent-encoded
             checksum BLOB NOT NULL,               -- SHA-256, 32 bytes
             size INTEGER NOT NULL,
             archived INTEGER NOT NULL DEFAULT 0,  -- 1 once the file has left the source
             mtime INTEGER NOT NULL,               -- nanoseconds since the Unix epoch
             sha1 BLOB NOT NULL,                   -- SHA-1, 20 bytes: what Immich records
             crc32c INTEGER NOT NULL,
             generation INTEGER,                   -- the store's object generation, where it has one
             object_key TEXT                       -- NULL means library/{{file_path}}
         ) WITHOUT ROWID;
         CREATE TABLE IF NOT EXISTS {s}.file_history (
             file_path TEXT NOT NULL,
             replaced_at TEXT NOT NULL,            -- RFC 3339 UTC: until when this content was current
             reason TEXT NOT NULL,                 -- 'changed' or 'suspect'
             checksum BLOB NOT NULL,
             size INTEGER NOT NULL,
             mtime INTEGER NOT NULL,
             sha1 BLOB NOT NULL,
             crc32c INTEGER NOT NULL,
             generation INTEGER,
             object_key TEXT,
             PRIMARY KEY (file_path, replaced_at, reason)
         ) WITHOUT ROWID;"
    )
}

/// Indexes only the full manifest needs (journals are replayed, never queried).
/// Content lookups (dedup) use an 8-byte prefix of the SHA-256: enough to be
/// selective, a quarter of the index size of the full hash.
pub(crate) const INDEXES: &str =
    "CREATE INDEX IF NOT EXISTS files_by_content ON files (substr(checksum, 1, 8));";

pub(crate) const FILE_COLUMNS: &str =
    "file_path, checksum, size, archived, mtime, sha1, crc32c, generation, object_key";

pub(crate) const HISTORY_COLUMNS: &str =
    "file_path, replaced_at, reason, checksum, size, mtime, sha1, crc32c, generation, object_key";
