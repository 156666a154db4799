//! Debian's Prometheus Pushgateway (`prometheus-pushgateway`, installed by
//! `cargo xtask test`), started per test on a free 127.0.0.1 port with no
//! persistence; stopped on drop. And `promtool` (Debian's `prometheus`).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running Pushgateway.
#[derive(Debug)]
pub struct Pushgateway {
    child: Child,
    port: u16,
}

impl Drop for Pushgateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Pushgateway {
    /// Starts one and waits until it answers.
    pub fn start() -> Pushgateway {
        let port = crate::free_port();
        let child = Command::new("prometheus-pushgateway")
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start prometheus-pushgateway (`cargo xtask test` installs it): {e}")
            });
        let me = Pushgateway { child, port };
        // Readiness is its own health endpoint answering, polled with a deadline.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let listening = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
            if listening && crate::http_request(port, "GET", "/-/ready", &[], &[]).0 == 200 {
                return me;
            }
            assert!(
                Instant::now() < deadline,
                "the Pushgateway did not get ready"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Its `/metrics`, as text.
    pub fn metrics(&self) -> String {
        let (status, body) = crate::http_request(self.port, "GET", "/metrics", &[], &[]);
        assert_eq!(status, 200, "GET /metrics");
        String::from_utf8_lossy(&body).into_owned()
    }

    /// The value of the series `name` whose labels include all of `labels`
    /// (`key="value"` pairs), if it is there.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        value_in(&self.metrics(), name, labels)
    }
}

/// The value of series `name` with `labels` in exposition text `text`.
pub fn value_in(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (n, rest) = series.split_once('{').unwrap_or((series, "}"));
            (n == name
                && labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\""))))
            .then(|| value.parse().ok())?
        })
        .next()
}

/// `promtool ARGS…` with `stdin`; its status code and combined output.
pub fn promtool(args: &[&str], stdin: Option<&Path>) -> (i32, String) {
    let mut c = Command::new("promtool");
    c.args(args);
    if let Some(p) = stdin {
        c.stdin(std::fs::File::open(p).expect("promtool input"));
    }
    let out = c
        .output()
        .unwrap_or_else(|e| panic!("cannot run promtool (`cargo xtask test` installs it): {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}
