//! A throwaway PostgreSQL server: [`ScratchCluster`]. restore-verify loads dumps
//! into one ([`ScratchCluster::start_private`]: socket only), and tests start
//! their own.
//!
//! It runs the system's own `initdb` and `postgres` (the newest major found under
//! `/usr/lib/postgresql/*/bin` or on `PATH`; `IMB_PG_BIN_DIR` overrides) in a private
//! temporary directory, on a free port on 127.0.0.1 and a private socket directory,
//! so tests never touch or depend on a system cluster and can run in parallel.
//! Logins over TCP need the superuser's password (SCRAM), so wrong-password tests
//! are real; the socket trusts local users, which the setup helpers use.
//!
//! `initdb` and `postgres` refuse to run as root, and CI runs as root: then both run
//! as the `postgres` OS user (which Debian's package creates) through `setpriv`
//! (or `runuser`), and the directory is handed to that user. Readiness is the
//! server's own log line "database system is ready to accept connections", read
//! from its standard error as it is written; there are no sleeps.

use std::collections::VecDeque;
use std::fs;
use std::io::{self, BufRead, BufReader, Write};
use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::Connection;
use crate::version::parse_tool_version;

const READY: &str = "database system is ready to accept connections";
/// Generous: a loaded CI machine with two cores can be slow, and failing shows the log.
const START_TIMEOUT: Duration = Duration::from_secs(120);
const STOP_TIMEOUT: Duration = Duration::from_secs(60);
const SUPERUSER: &str = "postgres";
const LOG_LINES: usize = 2000;
const PORT_ATTEMPTS: usize = 5;

/// Confines the calling thread, and what it starts from now on, to reading the
/// system's programs, libraries and settings the server needs and `bin_dir`, and
/// to writing only `dir` (and `/dev/null`). Returns whether the kernel enforces
/// it: on one without Landlock it is a no-op, said in the log.
fn confine(dir: &Path, bin_dir: &Path) -> io::Result<bool> {
    use landlock::{
        ABI, Access, AccessFs, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus,
        path_beneath_rules,
    };
    let abi = ABI::V3;
    let (read, all) = (AccessFs::from_read(abi), AccessFs::from_all(abi));
    let system = [
        "/usr",
        "/lib",
        "/lib64",
        "/bin",
        "/sbin",
        "/proc",
        "/sys",
        "/dev/urandom",
        "/etc/passwd",
        "/etc/group",
        "/etc/nsswitch.conf",
        "/etc/ld.so.cache",
        "/etc/localtime",
        "/etc/timezone",
    ];
    let err = |e: landlock::RulesetError| io::Error::other(format!("landlock: {e}"));
    let status = Ruleset::default()
        .handle_access(all)
        .map_err(err)?
        .create()
        .map_err(err)?
        .add_rules(path_beneath_rules(system, read))
        .map_err(err)?
        .add_rules(path_beneath_rules([bin_dir], read))
        .map_err(err)?
        .add_rules(path_beneath_rules([dir, Path::new("/dev/null")], all))
        .map_err(err)?
        .restrict_self()
        .map_err(err)?;
    let enforced = status.ruleset != RulesetStatus::NotEnforced;
    if !enforced {
        tracing::warn!(
            "this kernel does not enforce Landlock: the scratch PostgreSQL runs unconfined"
        );
    }
    Ok(enforced)
}

/// Stops the server a killed run left in `dir`: the pid in its `postmaster.pid`,
/// if that process is a postgres serving this directory.
fn stop_orphan(dir: &Path) {
    let data = dir.join("data");
    let Some(pid) = fs::read_to_string(data.join("postmaster.pid"))
        .ok()
        .and_then(|s| s.lines().next()?.trim().parse::<u32>().ok())
    else {
        return;
    };
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let cmdline = String::from_utf8_lossy(&cmdline);
    if cmdline.contains("postgres") && cmdline.contains(&*data.to_string_lossy()) {
        tracing::info!(pid, dir = %dir.display(), "stopping the scratch PostgreSQL of a run that was killed");
        let _ = signal(pid, "KILL");
    }
}

/// A running scratch PostgreSQL server; dropping it stops the server and deletes its
/// files.
pub struct ScratchCluster {
    root: imb_workdir::WorkDir,
    bin_dir: PathBuf,
    port: u16,
    password: String,
    run_as: Option<OsUser>,
    log: Arc<Mutex<VecDeque<String>>>,
    server: Option<Server>,
    /// Listening on 127.0.0.1 as well as on the private socket.
    tcp: bool,
    /// The server runs under a Landlock ruleset (private clusters, where the kernel
    /// supports it).
    confined: bool,
}

impl std::fmt::Debug for ScratchCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScratchCluster")
            .field("root", &self.root.path())
            .field("bin_dir", &self.bin_dir)
            .field("port", &self.port)
            .field("running", &self.server.is_some())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
struct OsUser {
    name: String,
    uid: u32,
    gid: u32,
}

struct Server {
    pid: u32,
    events: mpsc::Receiver<Event>,
    confined: bool,
}

enum Event {
    Ready,
    Exited(io::Result<ExitStatus>),
}

enum LaunchError {
    PortTaken(io::Error),
    Other(io::Error),
}

impl ScratchCluster {
    /// Creates a cluster with `initdb` and starts its server.
    ///
    /// # Errors
    /// When no PostgreSQL server binaries are installed (the message says how to
    /// get them), when running as root without a `postgres` OS user, or
    /// when `initdb` or the server fails (the message includes their output).
    pub fn start() -> io::Result<ScratchCluster> {
        Self::start_with(true)
    }

    /// [`Self::start`] listening on its private socket only (`psql_command`
    /// connects there; [`Self::connection`] does not work): for loading untrusted
    /// dumps, where nothing else on the machine should reach the server.
    ///
    /// # Errors
    /// As [`Self::start`].
    pub fn start_private() -> io::Result<ScratchCluster> {
        Self::start_with(false)
    }

    fn start_with(tcp: bool) -> io::Result<ScratchCluster> {
        let bin_dir = find_bin_dir()?;
        let run_as = if is_root() {
            Some(os_user("postgres")?)
        } else {
            None
        };
        // A cluster left by a killed run may still be running: stop it, then its
        // directory goes.
        let root = imb_workdir::WorkDir::new_in(&std::env::temp_dir(), "imb-pg-", stop_orphan)?;
        fs::create_dir(root.path().join("sock"))?;
        let pwfile = root.path().join("pwfile");
        let password = new_password();
        fs::write(&pwfile, format!("{password}\n"))?;
        fs::set_permissions(&pwfile, fs::Permissions::from_mode(0o600))?;
        if let Some(u) = &run_as {
            for p in [root.path(), &root.path().join("sock"), &pwfile] {
                std::os::unix::fs::chown(p, Some(u.uid), Some(u.gid))?;
            }
        }
        let mut cluster = ScratchCluster {
            root,
            bin_dir,
            port: 0,
            password,
            run_as,
            log: Arc::new(Mutex::new(VecDeque::new())),
            server: None,
            tcp,
            confined: false,
        };
        let mut initdb = cluster.server_command("initdb");
        initdb
            .arg("--pgdata")
            .arg(cluster.data_dir())
            .args(["--username", SUPERUSER, "--pwfile"])
            .arg(&pwfile)
            .args([
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
                // A scratch cluster need not survive a power cut; skipping fsync
                // saves most of initdb's time.
                "--no-sync",
            ]);
        run(initdb, None)?;
        fs::remove_file(&pwfile)?;
        cluster.launch()?;
        Ok(cluster)
    }

    /// A connection to `database` over TCP as the superuser, with its password.
    pub fn connection(&self, database: &str) -> Connection {
        Connection::new("127.0.0.1", self.port, SUPERUSER, database).with_password(&self.password)
    }

    /// The superuser's password (it contains `:`, `\`, `'` and a space, so every
    /// dump of a scratch cluster exercises the passfile escaping).
    pub fn password(&self) -> &str {
        &self.password
    }

    /// Whether the server runs confined by Landlock to reading the system's
    /// programs and libraries and writing only its own directory.
    pub fn confined(&self) -> bool {
        self.confined
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory with the server's binaries (and, on Debian, its `pg_dump` and
    /// `psql`).
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// `name` from the server's binary directory if it is there, otherwise `name`
    /// to be found on `PATH`.
    pub fn bin(&self, name: &str) -> PathBuf {
        let p = self.bin_dir.join(name);
        if p.is_file() { p } else { PathBuf::from(name) }
    }

    /// The server's log so far (its last lines).
    pub fn log(&self) -> String {
        let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        log.iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// A `psql` command connected to `database` as the superuser over the private
    /// socket (trusted, no password), without `~/.psqlrc`, stopping at the first
    /// error, printing bare unaligned rows. Add arguments and run it.
    pub fn psql_command(&self, database: &str) -> Command {
        self.psql_command_as(database, SUPERUSER)
    }

    /// [`Self::psql_command`] logged in as `role` (over the socket, which trusts
    /// local users).
    pub fn psql_command_as(&self, database: &str, role: &str) -> Command {
        // Only the test harness starts programs this way; the library uses tokio.
        let mut cmd = Command::new(self.bin("psql"));
        cmd.env_clear()
            .envs(crate::conn::child_env())
            .args(crate::conn::PSQL_QUERY)
            .arg("--host")
            .arg(self.root.path().join("sock"))
            .arg("--port")
            .arg(self.port.to_string())
            .args(["--username", role, "--dbname", database])
            .env("LC_ALL", "C");
        cmd
    }

    /// Runs the SQL script `sql` in `database` and returns what it printed.
    ///
    /// # Errors
    /// When psql fails; the message has its error output.
    pub fn psql(&self, database: &str, sql: &str) -> io::Result<String> {
        self.psql_with(database, &[], sql.as_bytes())
    }

    /// Runs `psql` on `database` with extra arguments (e.g. `--single-transaction`),
    /// feeding `script` (a plain SQL dump, say) on its standard input, and returns
    /// what it printed.
    ///
    /// # Errors
    /// When psql fails; the message has its error output.
    pub fn psql_with(&self, database: &str, args: &[&str], script: &[u8]) -> io::Result<String> {
        let mut cmd = self.psql_command(database);
        cmd.args(args).arg("--file=-");
        run(cmd, Some(script))
    }

    /// Creates an empty database.
    ///
    /// # Errors
    /// As [`ScratchCluster::psql`].
    pub fn create_db(&self, name: &str) -> io::Result<()> {
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""))
            .map(drop)
    }

    /// Stops the server (a fast shutdown), keeping its port: connections then fail
    /// as they do against a server that is down. Idempotent.
    ///
    /// # Errors
    /// When the server cannot be signalled or does not exit.
    pub fn stop(&mut self) -> io::Result<()> {
        let Some(server) = self.server.take() else {
            return Ok(());
        };
        // SIGINT is PostgreSQL's "fast" shutdown: it disconnects clients (a test may
        // have left a pg_dump behind) instead of waiting for them as SIGTERM would.
        signal(server.pid, "INT")?;
        if wait_exit(&server, STOP_TIMEOUT) {
            return Ok(());
        }
        signal(server.pid, "KILL")?;
        if wait_exit(&server, STOP_TIMEOUT) {
            return Ok(());
        }
        Err(io::Error::other(format!(
            "postgres (pid {}) did not exit; its log:\n{}",
            server.pid,
            self.log()
        )))
    }

    fn data_dir(&self) -> PathBuf {
        self.root.path().join("data")
    }

    /// `program` from the binary directory, run as the `postgres` user when we are root.
    fn server_command(&self, program: &str) -> Command {
        let bin = self.bin_dir.join(program);
        let mut cmd = match &self.run_as {
            None => Command::new(bin),
            Some(u) if on_path("setpriv") => {
                // setpriv execs the program itself, so the child's pid is the server's.
                let mut c = Command::new("setpriv");
                c.arg(format!("--reuid={}", u.uid))
                    .arg(format!("--regid={}", u.gid))
                    .args(["--init-groups", "--"])
                    .arg(bin);
                c
            }
            Some(u) => {
                let mut c = Command::new("runuser");
                c.args(["-u", &u.name, "--"]).arg(bin);
                c
            }
        };
        cmd.env_clear()
            .envs(crate::conn::child_env())
            .current_dir(self.root.path())
            .env("LC_ALL", "C");
        cmd
    }

    fn launch(&mut self) -> io::Result<()> {
        let mut last = None;
        for _ in 0..PORT_ATTEMPTS {
            // The port is free now; another process may take it before the server
            // binds it, which the server's log then says, and we try another. On
            // the private socket alone the port only names the socket file.
            let port = if self.tcp {
                TcpListener::bind("127.0.0.1:0")?.local_addr()?.port()
            } else {
                5432
            };
            match self.try_launch(port) {
                Ok(server) => {
                    self.port = port;
                    self.confined = server.confined;
                    self.server = Some(server);
                    return Ok(());
                }
                Err(LaunchError::PortTaken(e)) => last = Some(e),
                Err(LaunchError::Other(e)) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("no free port")))
    }

    fn try_launch(&self, port: u16) -> Result<Server, LaunchError> {
        let mut cmd = self.server_command("postgres");
        cmd.arg("-D")
            .arg(self.data_dir())
            .arg("-p")
            .arg(port.to_string())
            .arg("-k")
            .arg(self.root.path().join("sock"))
            .arg("-c")
            .arg(if self.tcp {
                "listen_addresses=127.0.0.1"
            } else {
                "listen_addresses="
            })
            .args([
                // Throwaway data: durability only costs test time.
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "logging_collector=off",
                "-c",
                "max_connections=40",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if !self.tcp {
            cmd.args(["-c", "dynamic_shared_memory_type=mmap"]);
        }
        let (spawned, confined) = if self.tcp {
            (cmd.spawn(), false)
        } else {
            // Landlock confines the calling thread and what it starts, so a thread
            // of its own starts the server and ends.
            let (root, bin) = (self.root.path(), self.bin_dir.as_path());
            std::thread::scope(|s| {
                s.spawn(|| match confine(root, bin) {
                    Ok(confined) => (cmd.spawn(), confined),
                    Err(e) => (Err(e), false),
                })
                .join()
                .unwrap_or_else(|_| {
                    (
                        Err(io::Error::other("the launching thread panicked")),
                        false,
                    )
                })
            })
        };
        let mut child = spawned.map_err(|e| {
            LaunchError::Other(io::Error::new(
                e.kind(),
                format!("starting {}: {e}", self.bin_dir.join("postgres").display()),
            ))
        })?;
        let pid = child.id();
        let stderr = child.stderr.take().expect("stderr is piped");
        let (tx, events) = mpsc::channel();
        let log = self.log.clone();
        let ready_tx = tx.clone();
        // Drains the log for the server's whole life (a full pipe would stall it)
        // and reports readiness when the line appears.
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let ready = line.contains(READY);
                {
                    let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
                    if log.len() == LOG_LINES {
                        log.pop_front();
                    }
                    log.push_back(line);
                }
                if ready {
                    let _ = ready_tx.send(Event::Ready);
                }
            }
        });
        std::thread::spawn(move || {
            let status = child.wait();
            // The log is complete once the reader has seen the end of it.
            let _ = reader.join();
            let _ = tx.send(Event::Exited(status));
        });
        let deadline = Instant::now() + START_TIMEOUT;
        let server = Server {
            pid,
            events,
            confined,
        };
        match server
            .events
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            Ok(Event::Ready) => Ok(server),
            Ok(Event::Exited(status)) => {
                let log = self.log();
                let e = io::Error::other(format!(
                    "postgres exited ({status:?}) before it was ready; its log:\n{log}"
                ));
                if log.contains("could not bind") || log.contains("Address already in use") {
                    Err(LaunchError::PortTaken(e))
                } else {
                    Err(LaunchError::Other(e))
                }
            }
            Err(_) => {
                let _ = signal(pid, "KILL");
                wait_exit(&server, STOP_TIMEOUT);
                Err(LaunchError::Other(io::Error::other(format!(
                    "postgres was not ready after {START_TIMEOUT:?}; its log:\n{}",
                    self.log()
                ))))
            }
        }
    }
}

impl Drop for ScratchCluster {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::warn!(error = %e, "stopping the scratch cluster failed");
        }
    }
}

/// Waits for the server's exit event; false on timeout.
fn wait_exit(server: &Server, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        match server
            .events
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            Ok(Event::Ready) => {}
            Ok(Event::Exited(_)) | Err(mpsc::RecvTimeoutError::Disconnected) => return true,
            Err(mpsc::RecvTimeoutError::Timeout) => return false,
        }
    }
}

/// Sends a signal with the shell's `kill` builtin (no `unsafe` libc call, and no
/// dependence on procps being installed). A process that is already gone makes
/// `kill` fail, which is fine: the exit event follows either way.
fn signal(pid: u32, sig: &str) -> io::Result<()> {
    Command::new("sh")
        .args(["-c", &format!("kill -{sig} {pid}")])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(drop)
}

/// Runs a command, feeding `input`, and returns its standard output; an error
/// carries the command and its error output.
fn run(mut cmd: Command, input: Option<&[u8]>) -> io::Result<String> {
    let shown = format!("{cmd:?}");
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("{shown}: {e}")))?;
    // Writing from another thread: a large script and a large result would
    // otherwise deadlock on full pipes.
    let writer = input.map(|bytes| {
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let bytes = bytes.to_vec();
        std::thread::spawn(move || stdin.write_all(&bytes))
    });
    let out = child.wait_with_output()?;
    if let Some(w) = writer {
        // A broken pipe here means the program stopped reading: its status says why.
        let _ = w.join();
    }
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "{shown} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        )));
    }
    String::from_utf8(out.stdout).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

fn is_root() -> bool {
    // /proc/self belongs to the process's effective user.
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn os_user(name: &str) -> io::Result<OsUser> {
    let passwd = fs::read_to_string("/etc/passwd")?;
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 3 && f[0] == name)
        .and_then(|f| {
            Some(OsUser {
                name: name.to_owned(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
            })
        })
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "running as root, the scratch cluster needs the `{name}` OS user to run \
                     initdb and postgres (Debian's postgresql package creates it; `cargo xtask \
                     test` installs that package in its prepare step)"
                ),
            )
        })
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}

/// The newest directory holding `initdb` and `postgres`.
fn find_bin_dir() -> io::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("IMB_PG_BIN_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let mut candidates = Vec::new();
    if let Ok(entries) = fs::read_dir("/usr/lib/postgresql") {
        for e in entries.flatten() {
            candidates.push(e.path().join("bin"));
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            // Resolve symlinks such as /usr/local/bin/initdb -> /usr/lib/postgresql/15/bin.
            if let Some(parent) = fs::canonicalize(dir.join("initdb"))
                .ok()
                .and_then(|p| p.parent().map(Path::to_owned))
            {
                candidates.push(parent);
            }
        }
    }
    candidates.retain(|d| d.join("initdb").is_file() && d.join("postgres").is_file());
    candidates.sort();
    candidates.dedup();
    candidates
        .into_iter()
        .filter_map(|d| {
            let out = Command::new(d.join("postgres"))
                .arg("--version")
                .stdin(Stdio::null())
                .output()
                .ok()?;
            let (major, _) = parse_tool_version(&String::from_utf8_lossy(&out.stdout))?;
            Some((major, d))
        })
        .max()
        .map(|(_, d)| d)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "no PostgreSQL server binaries (initdb and postgres) on PATH or under \
                 /usr/lib/postgresql/*/bin: run `cargo xtask test` (its prepare step \
                 installs them), or set IMB_PG_BIN_DIR",
            )
        })
}

/// A password unique to the cluster, with the characters a passfile must escape.
fn new_password() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("pw:{nanos:08x}\\'{} s", std::process::id())
}
