//! A test Immich server on 127.0.0.1, for the faults and corner cases the real
//! server cannot produce on demand. It follows the OpenAPI spec for the endpoints device-sync and `@immich/cli` use,
//! with the server's semantics: per-user SHA-1 dedup (200 duplicate), the checksum
//! short-circuit (answered before the body is read), quotas with the server's
//! message, unsupported extensions refused as the server refuses them, 401 for a
//! missing or wrong key and 403 for a missing permission, albums whose names need
//! not be unique, v2 vs v3 differences, and scripted faults (5xx bursts, resets,
//! slow and lost responses). It records what it received for assertions.
//!
//! It is a small hand-written HTTP/1.1 server on std threads (keep-alive, chunked
//! bodies, `Expect: 100-continue`): no web framework, and full control of the
//! moments a fault or an early answer needs. It is ready when `start` returns
//! (the listener is bound before the port is handed out).
//!
//! Not implemented: sharing (every album and asset belongs to its uploader),
//! trash, live photos, `replaceAsset`, thumbnails and downloads, sessions and
//! passwords (API keys only), `GET /albums` filters other than `name`.

mod api;
mod http;

use std::collections::BTreeMap;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

pub use http::{Fault, Seen};

/// The key of the default user.
pub const DEFAULT_KEY: &str = "test-api-key-0123456789";
/// The email of the default user.
pub const DEFAULT_EMAIL: &str = "user@example.test";

/// A user of the test server, with one API key.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TestUser {
    /// Email (also the user's name in [`RecordedAsset::owner`]).
    pub email: String,
    /// Display name.
    pub name: String,
    /// The API key.
    pub key: String,
    /// Storage quota in bytes; `None` is unlimited.
    pub quota: Option<u64>,
    /// The key's permissions (`all`, or names like `asset.upload`).
    pub permissions: Vec<String>,
}

impl TestUser {
    /// A user with an unlimited quota and a key with every permission.
    pub fn new(email: impl Into<String>, key: impl Into<String>) -> TestUser {
        let email = email.into();
        TestUser {
            name: email.split('@').next().unwrap_or("user").to_owned(),
            email,
            key: key.into(),
            quota: None,
            permissions: vec!["all".into()],
        }
    }
    /// With a storage quota.
    pub fn with_quota(mut self, bytes: Option<u64>) -> TestUser {
        self.quota = bytes;
        self
    }
    /// With only these permissions.
    pub fn with_permissions(mut self, perms: &[&str]) -> TestUser {
        self.permissions = perms.iter().map(|p| (*p).to_owned()).collect();
        self
    }
}

/// What happens after the checksum short-circuit has answered an upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EarlyAnswer {
    /// Read and discard the rest of the body, keep the connection (what Immich on
    /// Node does: its upload middleware still consumes the stream).
    Drain,
    /// Stop reading and close: the unread body makes the client's send fail (a
    /// reverse proxy, or a server that stops early). The harsh case.
    Close,
}

/// How to start a [`TestServer`].
#[derive(Clone)]
#[non_exhaustive]
pub struct TestServerOptions {
    /// The version `GET /server/version` reports; major 3 or more means v3
    /// behaviour, below that v2 (`deviceAssetId`/`deviceId` required, string
    /// durations, v2 error bodies, `ownerId` on albums).
    pub version: (u64, u64, u64),
    /// The users; the first is the default one.
    pub users: Vec<TestUser>,
    /// After a short-circuit answer.
    pub early_answer: EarlyAnswer,
    script: Option<Arc<http::Script>>,
}

impl std::fmt::Debug for TestServerOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestServerOptions")
            .field("version", &self.version)
            .field("users", &self.users.len())
            .field("early_answer", &self.early_answer)
            .field("faults", &self.script.is_some())
            .finish()
    }
}

impl Default for TestServerOptions {
    /// A v3 server (3.0.3, the reference spec's version) with one user.
    fn default() -> Self {
        TestServerOptions {
            version: (3, 0, 3),
            users: vec![TestUser::new(DEFAULT_EMAIL, DEFAULT_KEY)],
            early_answer: EarlyAnswer::Drain,
            script: None,
        }
    }
}

impl TestServerOptions {
    /// A v3 server.
    pub fn v3() -> Self {
        Self::default()
    }
    /// A v2 server (2.3.1).
    pub fn v2() -> Self {
        TestServerOptions {
            version: (2, 3, 1),
            ..Self::default()
        }
    }
    /// Another user.
    pub fn with_user(mut self, u: TestUser) -> Self {
        self.users.push(u);
        self
    }
    /// A quota for the default user.
    pub fn with_quota(mut self, bytes: u64) -> Self {
        if let Some(u) = self.users.first_mut() {
            u.quota = Some(bytes);
        }
        self
    }
    /// What follows a short-circuit answer.
    pub fn with_early_answer(mut self, e: EarlyAnswer) -> Self {
        self.early_answer = e;
        self
    }
    /// A fault script, asked about every request (its `status` is still 0).
    pub fn with_faults(mut self, f: impl Fn(&Seen) -> Fault + Send + Sync + 'static) -> Self {
        self.script = Some(Arc::new(f));
        self
    }
}

/// A fault script: `n` answers of `status` to requests whose path starts with
/// `path_prefix`, then normal service.
pub fn burst(
    path_prefix: &'static str,
    n: usize,
    status: u16,
) -> impl Fn(&Seen) -> Fault + Send + Sync + 'static {
    let left = AtomicUsize::new(n);
    move |s: &Seen| {
        if s.path().starts_with(path_prefix)
            && left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |l| l.checked_sub(1))
                .is_ok()
        {
            Fault::Status(status)
        } else {
            Fault::Serve
        }
    }
}

/// An asset the server stored.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordedAsset {
    /// Its id.
    pub id: String,
    /// The owner's email.
    pub owner: String,
    /// SHA-1 of the bytes received, hex.
    pub checksum: String,
    /// `originalFileName`: the `filename` field, else the part's file name.
    pub filename: String,
    /// Bytes received.
    pub size: u64,
    /// The text fields, as sent (unknown ones too: the server ignores them).
    pub fields: BTreeMap<String, String>,
    /// The sidecar's part file name and size, if one came.
    pub sidecar: Option<(String, u64)>,
    /// When it was stored.
    pub created_at: String,
}

/// An album on the server.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordedAlbum {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// The owner's email.
    pub owner: String,
    /// Asset ids, in the order they were added.
    pub assets: Vec<String>,
    /// When it was created.
    pub created_at: String,
}

/// A user's account state.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordedUser {
    /// The user's id.
    pub id: String,
    /// Email.
    pub email: String,
    /// Quota.
    pub quota: Option<u64>,
    /// Bytes used.
    pub usage: u64,
}

/// A running test server; stopped (connections closed) on drop.
pub struct TestServer {
    port: u16,
    api: Arc<api::Api>,
    log: Arc<Mutex<Vec<Seen>>>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    stop: Arc<AtomicBool>,
    key: String,
    version: (u64, u64, u64),
}

impl std::fmt::Debug for TestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestServer")
            .field("port", &self.port)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl TestServer {
    /// Starts a server on a free port of 127.0.0.1.
    pub fn start(opts: TestServerOptions) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("test server binds 127.0.0.1");
        let port = listener.local_addr().expect("local addr").port();
        let key = opts
            .users
            .first()
            .map(|u| u.key.clone())
            .unwrap_or_default();
        let api = Arc::new(api::Api::new(opts.version, opts.users));
        let log = Arc::new(Mutex::new(Vec::new()));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let conn = Arc::new(http::Conn {
            api: api.clone(),
            script: opts.script,
            counter: Arc::new(AtomicUsize::new(0)),
            log: log.clone(),
            early: opts.early_answer,
        });
        let (conns2, stop2) = (conns.clone(), stop.clone());
        std::thread::Builder::new()
            .name(format!("immich-test-{port}"))
            .spawn(move || {
                for s in listener.incoming() {
                    if stop2.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(s) = s else { continue };
                    let _ = s.set_nodelay(true);
                    if let Ok(c) = s.try_clone() {
                        conns2.lock().unwrap_or_else(|p| p.into_inner()).push(c);
                    }
                    let conn = conn.clone();
                    let _ = std::thread::Builder::new()
                        .name(format!("immich-test-{port}-conn"))
                        .spawn(move || conn.serve(s));
                }
            })
            .expect("test server thread starts");
        TestServer {
            port,
            api,
            log,
            conns,
            stop,
            key,
            version: opts.version,
        }
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's root URL, `http://127.0.0.1:PORT` (what `immich login` takes).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The API root, `http://127.0.0.1:PORT/api`.
    pub fn api_url(&self) -> String {
        format!("{}/api", self.url())
    }

    /// The default user's API key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Every asset stored, in upload order.
    pub fn assets(&self) -> Vec<RecordedAsset> {
        self.api.assets()
    }

    /// Every album, in creation order.
    pub fn albums(&self) -> Vec<RecordedAlbum> {
        self.api.albums()
    }

    /// Every user's account state.
    pub fn users(&self) -> Vec<RecordedUser> {
        self.api.users()
    }

    /// Every request so far, in the order they were finished.
    pub fn requests(&self) -> Vec<Seen> {
        let mut v = self.log.lock().unwrap_or_else(|p| p.into_inner()).clone();
        v.sort_by_key(|s| s.n);
        v
    }

    /// Changes a user's quota.
    pub fn set_quota(&self, email: &str, quota: Option<u64>) {
        self.api.set_quota(email, quota);
    }

    /// Creates an album directly (one the user made elsewhere, at `created_at`, RFC 3339).
    pub fn add_album(&self, email: &str, name: &str, created_at: &str) -> String {
        self.api.add_album(email, name, created_at)
    }

    /// Stores an asset directly (one uploaded from another device).
    pub fn add_asset(&self, email: &str, filename: &str, data: &[u8]) -> String {
        self.api.add_asset(email, filename, data)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        for c in self
            .conns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            let _ = c.shutdown(Shutdown::Both);
        }
    }
}
