//! What the tests share: an Immich-shaped schema with generated rows, a fingerprint
//! of a database's content, a store that records what reaches it, and `pg_dump`
//! wrapper scripts.

use std::fmt;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use imb_pgdump::DumpOptions;
use imb_pgdump::scratch::ScratchCluster;
use imb_storage::{
    CopyOptions, Key, LocalDir, ObjectCreate, ObjectReadExt, Payload, PutOptions, PutResult, Upload,
};

/// 2024-01-15T03:00:00Z, the seed's example dump time.
pub(crate) fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_705_287_600)
}

pub(crate) fn days(n: u64) -> Duration {
    Duration::from_secs(n * 86_400)
}

/// Immich's current (singular) table names and the columns the backup cares about,
/// an extension with an index that uses it, a plpgsql trigger function,
/// `version_history` with the newest row inserted in the middle, and rows with quotes, backslashes, tabs, non-ASCII, NULLs
/// and binary checksums. About 10 MB of SQL with `assets` = 20,000.
pub(crate) fn immich_schema(assets: u32) -> String {
    format!(
        r#"
CREATE EXTENSION IF NOT EXISTS "uuid-ossp";
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE TABLE "user" (
    id uuid PRIMARY KEY DEFAULT uuid_generate_v4(),
    email varchar NOT NULL UNIQUE,
    name varchar NOT NULL DEFAULT '',
    "isAdmin" boolean NOT NULL DEFAULT false,
    "createdAt" timestamptz NOT NULL DEFAULT now(),
    "deletedAt" timestamptz
);
CREATE TABLE asset (
    id uuid PRIMARY KEY,
    "ownerId" uuid NOT NULL REFERENCES "user"(id) ON DELETE CASCADE,
    "libraryId" uuid,
    type varchar NOT NULL,
    "originalPath" text NOT NULL,
    "originalFileName" varchar NOT NULL,
    checksum bytea NOT NULL,
    "fileCreatedAt" timestamptz NOT NULL,
    "isFavorite" boolean NOT NULL DEFAULT false,
    "deletedAt" timestamptz,
    UNIQUE ("ownerId", checksum)
);
CREATE INDEX asset_original_path_trgm ON asset USING gin ("originalPath" gin_trgm_ops);
CREATE TABLE album (
    id uuid PRIMARY KEY,
    "ownerId" uuid NOT NULL REFERENCES "user"(id) ON DELETE CASCADE,
    "albumName" varchar NOT NULL,
    description text NOT NULL DEFAULT '',
    "albumThumbnailAssetId" uuid REFERENCES asset(id) ON DELETE SET NULL
);
CREATE TABLE album_asset (
    "albumId" uuid NOT NULL REFERENCES album(id) ON DELETE CASCADE,
    "assetId" uuid NOT NULL REFERENCES asset(id) ON DELETE CASCADE,
    "createdAt" timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY ("albumId", "assetId")
);
CREATE TABLE asset_file (
    id uuid PRIMARY KEY,
    "assetId" uuid NOT NULL REFERENCES asset(id) ON DELETE CASCADE,
    type varchar NOT NULL,
    path text NOT NULL
);
CREATE TABLE system_metadata (key varchar PRIMARY KEY, value jsonb NOT NULL);
CREATE FUNCTION updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        -- a backslash \ and a semicolon; inside a body are the body's
        new."deletedAt" = NULL;
        RETURN new;
    END;
$$;
CREATE TRIGGER user_updated BEFORE UPDATE ON "user" FOR EACH ROW EXECUTE FUNCTION updated_at();
CREATE TABLE version_history (
    id uuid PRIMARY KEY DEFAULT uuid_generate_v4(),
    "createdAt" timestamptz NOT NULL DEFAULT now(),
    version varchar NOT NULL
);

INSERT INTO "user" (id, email, name, "isAdmin", "createdAt")
SELECT md5('user' || i)::uuid, 'user' || i || '@example.com', 'User ' || i || E' O''Brien \\ ü',
       i = 1, timestamptz '2020-01-01 00:00:00+00' + i * interval '1 day'
FROM generate_series(1, 5) i;

INSERT INTO asset
SELECT md5('asset' || i)::uuid,
       md5('user' || (i % 5 + 1))::uuid,
       CASE WHEN i % 50 = 0 THEN md5('external')::uuid END,
       CASE WHEN i % 10 = 0 THEN 'VIDEO' ELSE 'IMAGE' END,
       'upload/library/user' || (i % 5 + 1) || '/' || (2015 + i % 10) || '/IMG_' || i
           || CASE WHEN i % 97 = 0 THEN E' tab\there \u00e9t\u00e9 ''q''' ELSE '' END || '.jpg',
       'IMG_' || i || '.jpg',
       decode(md5('c' || i) || substr(md5('d' || i), 1, 8), 'hex'),
       timestamptz '2015-01-01 00:00:00+00' + i * interval '37 minutes',
       i % 7 = 0,
       CASE WHEN i % 101 = 0 THEN timestamptz '2024-01-01 00:00:00+00' END
FROM generate_series(1, {assets}) i;

INSERT INTO album (id, "ownerId", "albumName", description, "albumThumbnailAssetId")
SELECT md5('album' || i)::uuid, md5('user' || (i % 5 + 1))::uuid, 'Album ' || i, E'line one\nline two',
       md5('asset' || ((i * 3 - 1) % {assets} + 1))::uuid
FROM generate_series(1, 30) i;

INSERT INTO album_asset ("albumId", "assetId", "createdAt")
SELECT md5('album' || (i % 30 + 1))::uuid, md5('asset' || i)::uuid,
       timestamptz '2021-01-01 00:00:00+00' + i * interval '1 minute'
FROM generate_series(3, {assets}, 3) i;

INSERT INTO asset_file
SELECT md5('file' || i || t)::uuid, md5('asset' || i)::uuid, t,
       'upload/thumbs/user' || (i % 5 + 1) || '/' || substr(md5('asset' || i), 1, 2) || '/' || i || '-' || t || '.webp'
FROM generate_series(1, {assets}) i, unnest(ARRAY['thumbnail', 'preview']) t;
INSERT INTO asset_file
SELECT md5('sidecar' || i)::uuid, md5('asset' || i)::uuid, 'sidecar',
       'upload/library/user' || (i % 5 + 1) || '/IMG_' || i || '.jpg.xmp'
FROM generate_series(1, {assets}, 4) i;

INSERT INTO system_metadata VALUES ('reverse-geocoding-state', '{{"lastUpdate": "2024-01-01", "n": [1, 2]}}');

INSERT INTO version_history (id, "createdAt", version) VALUES
    (md5('v1')::uuid, '2023-01-01 00:00:00+00', '1.90.0'),
    (md5('v3')::uuid, '2025-06-01 00:00:00+00', '2.3.1'),
    (md5('v2')::uuid, '2024-10-01 00:00:00+00', '2.0.0');
"#
    )
}

/// Row counts and a hash of every row of every table, plus the indexes and
/// extensions: equal fingerprints mean equal content.
pub(crate) const FINGERPRINT: &str = r#"
SELECT 'user', count(*), md5(coalesce(string_agg(t::text, E'\n' ORDER BY t::text), '')) FROM "user" t
UNION ALL SELECT 'asset', count(*), md5(coalesce(string_agg(t::text, E'\n' ORDER BY t::text), '')) FROM asset t
UNION ALL SELECT 'album', count(*), md5(coalesce(string_agg(t::text, E'\n' ORDER BY t::text), '')) FROM album t
UNION ALL SELECT 'album_asset', count(*), md5(coalesce(string_agg(t::text, E'\n' ORDER BY t::text), '')) FROM album_asset t
UNION ALL SELECT 'asset_file', count(*), md5(coalesce(string_agg(t::text, E'\n' ORDER BY t::text), '')) FROM asset_file t
UNION ALL SELECT 'system_metadata', count(*), md5(coalesce(string_agg(t::text, E'\n' ORDER BY t::text), '')) FROM system_metadata t
UNION ALL SELECT 'version_history', count(*), md5(coalesce(string_agg(t::text, E'\n' ORDER BY t::text), '')) FROM version_history t
UNION ALL SELECT 'indexes', count(*), md5(string_agg(indexdef, E'\n' ORDER BY indexdef)) FROM pg_indexes WHERE schemaname = 'public'
UNION ALL SELECT 'extensions', count(*), md5(string_agg(extname, ',' ORDER BY extname)) FROM pg_extension
ORDER BY 1;
"#;

/// A cluster with database `immich` loaded with [`immich_schema`].
pub(crate) fn immich_cluster(assets: u32) -> ScratchCluster {
    let cluster = ScratchCluster::start().expect("scratch cluster");
    cluster.create_db("immich").unwrap();
    cluster.psql("immich", &immich_schema(assets)).unwrap();
    cluster
}

/// Dump options using the cluster's own client binaries.
pub(crate) fn options(cluster: &ScratchCluster) -> DumpOptions {
    let mut opts = DumpOptions::default();
    opts.pg_dump = cluster.bin("pg_dump");
    opts.psql = cluster.bin("psql");
    opts
}

/// Decompresses a dump with a single-member decoder (so a dump that is not one
/// gzip member comes out short) and restores it into a new database.
pub(crate) fn restore(cluster: &ScratchCluster, db: &str, gz: &Path) -> Vec<u8> {
    let bytes = std::fs::read(gz).unwrap();
    let mut sql = Vec::new();
    flate2::read::GzDecoder::new(&bytes[..])
        .read_to_end(&mut sql)
        .unwrap();
    cluster.create_db(db).unwrap();
    cluster
        .psql_with(db, &["--single-transaction"], &sql)
        .unwrap();
    sql
}

/// Every key under `prefix` in the store.
pub(crate) async fn keys(store: &LocalDir, prefix: &str) -> Vec<String> {
    store
        .list_all(prefix)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.key.to_string())
        .collect()
}

/// Files left in the local store's staging area (a failed upload must leave none).
pub(crate) fn staged_files(store: &LocalDir) -> Vec<PathBuf> {
    std::fs::read_dir(store.root().join(".imb-staging"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

/// Writes an executable shell script, ready to run. `body` must answer
/// `--version` without side effects: that is how readiness is checked.
pub(crate) fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    // A child forked by another test thread may still hold it open for writing.
    imb_testkit::exec::wait_until_executable(&path).unwrap();
    path
}

/// What reached a [`Recording`] store.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) uploads: usize,
    pub(crate) writes: usize,
    pub(crate) bytes: u64,
    pub(crate) aborted: usize,
    pub(crate) completed: usize,
}

/// A local store that records streamed creates, and can fail a write once
/// `fail_after` bytes have arrived.
#[derive(Clone)]
pub(crate) struct Recording {
    pub(crate) inner: LocalDir,
    pub(crate) record: Arc<Mutex<Record>>,
    pub(crate) fail_after: Option<u64>,
}

impl fmt::Debug for Recording {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recording").finish_non_exhaustive()
    }
}

impl Recording {
    pub(crate) fn new(inner: LocalDir) -> Self {
        Recording {
            inner,
            record: Arc::default(),
            fail_after: None,
        }
    }

    pub(crate) fn record(&self) -> Record {
        self.record.lock().unwrap().clone()
    }
}

#[async_trait]
impl ObjectCreate for Recording {
    async fn put_opts(
        &self,
        key: &Key,
        payload: Payload,
        opts: PutOptions,
    ) -> imb_storage::Result<PutResult> {
        self.inner.put_opts(key, payload, opts).await
    }

    async fn copy_opts(
        &self,
        from: &Key,
        to: &Key,
        opts: CopyOptions,
    ) -> imb_storage::Result<PutResult> {
        self.inner.copy_opts(from, to, opts).await
    }

    async fn create_upload(
        &self,
        key: &Key,
        opts: PutOptions,
    ) -> imb_storage::Result<Box<dyn Upload>> {
        self.record.lock().unwrap().uploads += 1;
        Ok(Box::new(RecordingUpload {
            inner: self.inner.create_upload(key, opts).await?,
            record: self.record.clone(),
            fail_after: self.fail_after,
        }))
    }
}

#[derive(Debug)]
struct RecordingUpload {
    inner: Box<dyn Upload>,
    record: Arc<Mutex<Record>>,
    fail_after: Option<u64>,
}

#[async_trait]
impl Upload for RecordingUpload {
    async fn write(&mut self, data: Bytes) -> imb_storage::Result<()> {
        let total = {
            let mut r = self.record.lock().unwrap();
            r.writes += 1;
            r.bytes += data.len() as u64;
            r.bytes
        };
        if self.fail_after.is_some_and(|limit| total > limit) {
            return Err(imb_storage::Error::Generic {
                store: "recording",
                message: "injected write failure".to_owned(),
                transient: false,
                source: None,
            });
        }
        self.inner.write(data).await
    }

    async fn complete(self: Box<Self>) -> imb_storage::Result<PutResult> {
        self.record.lock().unwrap().completed += 1;
        self.inner.complete().await
    }

    async fn abort(self: Box<Self>) -> imb_storage::Result<()> {
        self.record.lock().unwrap().aborted += 1;
        self.inner.abort().await
    }
}
