//! A run's figures as Prometheus gauges: the text exposition format, written
//! atomically for node_exporter's textfile collector, or pushed to a Pushgateway.
//!
//! * **POST, never PUT**: a PUT replaces the whole group, so a failed run that
//!   does not push `…_last_success_timestamp_seconds` would erase the last
//!   success; a POST replaces only the series it carries.
//! * **Gauges named for the last run**, no `_total` (promtool reserves it for
//!   counters).
//! * Grouping label values go base64url-encoded (`label@base64/…`), so a target
//!   like `gs://bucket/prefix` survives the URL path.
//! * The push URL may carry nothing secret; basic-auth credentials come from the
//!   caller (the environment), and errors never repeat them.

mod ping;
pub use ping::{DEFAULT_TIMEOUT as DEFAULT_PING_TIMEOUT, Ping};

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

/// One gauge with its help text.
#[derive(Debug, Clone, PartialEq)]
struct Gauge {
    name: String,
    help: String,
    /// Each sample's own labels (beside the common ones) and value.
    samples: Vec<(Vec<(String, String)>, f64)>,
}

/// The gauges of one run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metrics {
    gauges: Vec<Gauge>,
}

/// Basic-auth credentials for a Pushgateway.
#[derive(Clone)]
pub struct Auth {
    /// The user.
    pub user: String,
    /// The password.
    pub password: String,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Auth(<redacted>)")
    }
}

impl Metrics {
    /// No gauges yet.
    pub fn new() -> Self {
        Metrics::default()
    }

    /// Adds gauge `name` (a valid metric name) with `help`.
    pub fn gauge(&mut self, name: &str, help: &str, value: f64) -> &mut Self {
        self.gauges.push(Gauge {
            name: name.to_owned(),
            help: help.to_owned(),
            samples: vec![(Vec::new(), value)],
        });
        self
    }

    /// Adds gauge `name` with one series per value of label `label`.
    pub fn gauge_by(
        &mut self,
        name: &str,
        help: &str,
        label: &str,
        values: &[(&str, f64)],
    ) -> &mut Self {
        self.gauges.push(Gauge {
            name: name.to_owned(),
            help: help.to_owned(),
            samples: values
                .iter()
                .map(|(v, x)| (vec![(label.to_owned(), (*v).to_owned())], *x))
                .collect(),
        });
        self
    }

    /// The text exposition format (version 0.0.4), with `labels` on every series.
    pub fn exposition(&self, labels: &[(&str, &str)]) -> String {
        let mut out = String::new();
        for g in &self.gauges {
            let _ = writeln!(out, "# HELP {} {}", g.name, g.help.replace('\n', " "));
            let _ = writeln!(out, "# TYPE {} gauge", g.name);
            for (own, value) in &g.samples {
                let all: Vec<String> = labels
                    .iter()
                    .map(|(k, v)| (*k, *v))
                    .chain(own.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                    .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                    .collect();
                let set = if all.is_empty() {
                    String::new()
                } else {
                    format!("{{{}}}", all.join(","))
                };
                let _ = writeln!(out, "{}{set} {}", g.name, number(*value));
            }
        }
        out
    }

    /// Writes the exposition to `path` atomically (a temporary file beside it,
    /// then a rename), as node_exporter's textfile collector wants.
    ///
    /// # Errors
    /// The file system's error, naming the path.
    pub fn write_file(&self, path: &Path, labels: &[(&str, &str)]) -> Result<(), String> {
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = path
            .file_name()
            .ok_or_else(|| format!("{}: not a file name", path.display()))?;
        let tmp = dir.join(format!(
            ".{}.tmp-{}",
            name.to_string_lossy(),
            std::process::id()
        ));
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(self.exposition(labels).as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            format!("{}: {e}", path.display())
        })
    }

    /// POSTs the gauges to the Pushgateway at `base` (e.g. `http://pushgateway:9091`)
    /// under `job` and the grouping labels `group`.
    ///
    /// # Errors
    /// What went wrong, naming the Pushgateway's host, never a credential.
    pub async fn push(
        &self,
        base: &str,
        job: &str,
        group: &[(&str, &str)],
        auth: Option<&Auth>,
    ) -> Result<(), String> {
        let url = push_url(base, job, group)?;
        let host = host_of(base);
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("Pushgateway {host}: {e}"))?;
        let mut req = client
            .post(&url)
            .header("content-type", "text/plain; version=0.0.4")
            .body(self.exposition(&[]));
        if let Some(a) = auth {
            req = req.basic_auth(&a.user, Some(&a.password));
        }
        let resp = req
            .send()
            .await
            .map_err(|e| format!("Pushgateway {host}: {}", e.without_url()))?;
        let status = resp.status();
        if !status.is_success() {
            let body = resp.text().await.unwrap_or_default();
            let body: String = body.chars().take(300).collect();
            return Err(format!("Pushgateway {host}: HTTP {status}: {body}"));
        }
        Ok(())
    }
}

/// `base/metrics/job/<job>/<label>@base64/<value>…`.
fn push_url(base: &str, job: &str, group: &[(&str, &str)]) -> Result<String, String> {
    let base = base.trim_end_matches('/');
    if !(base.starts_with("http://") || base.starts_with("https://")) {
        return Err(format!(
            "Pushgateway {}: the URL must start with http:// or https://",
            host_of(base)
        ));
    }
    let mut url = format!("{base}/metrics/job@base64/{}", base64url(job));
    for (k, v) in group {
        // An empty value is written as `=` (Pushgateway's rule for base64 labels).
        let v = if v.is_empty() {
            "=".to_owned()
        } else {
            base64url(v)
        };
        url.push_str(&format!("/{k}@base64/{v}"));
    }
    Ok(url)
}

/// The host (and port) of a URL, for messages: never its user info or path.
pub fn host_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    authority.rsplit('@').next().unwrap_or("").to_owned()
}

fn base64url(s: &str) -> String {
    imb_hash::base64(s.as_bytes())
        .trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_")
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn number(v: f64) -> String {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else if v.is_nan() {
        "NaN".into()
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_and_urls() {
        let mut m = Metrics::new();
        m.gauge("imb_x_files", "Files.", 3.0)
            .gauge("imb_x_seconds", "Seconds.", 1.5);
        assert_eq!(
            m.exposition(&[("target", "gs://b/\"p\"")]),
            "# HELP imb_x_files Files.\n# TYPE imb_x_files gauge\nimb_x_files{target=\"gs://b/\\\"p\\\"\"} 3\n\
             # HELP imb_x_seconds Seconds.\n# TYPE imb_x_seconds gauge\nimb_x_seconds{target=\"gs://b/\\\"p\\\"\"} 1.5\n"
        );
        assert_eq!(
            push_url(
                "http://pg:9091/",
                "immich_backup",
                &[("target", "gs://b/p")]
            )
            .unwrap(),
            "http://pg:9091/metrics/job@base64/aW1taWNoX2JhY2t1cA/target@base64/Z3M6Ly9iL3A"
        );
        assert!(
            push_url("pg:9091", "j", &[])
                .unwrap_err()
                .contains("http://")
        );
        assert_eq!(
            host_of("https://user:secret@pg.example:9091/x?y"),
            "pg.example:9091"
        );
    }

    #[test]
    fn the_file_is_replaced_whole() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("imb.prom");
        let mut m = Metrics::new();
        m.gauge("a", "A.", 1.0);
        m.write_file(&p, &[]).unwrap();
        m.gauge("b", "B.", 2.0);
        m.write_file(&p, &[]).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), m.exposition(&[]));
        assert_eq!(
            std::fs::read_dir(t.path()).unwrap().count(),
            1,
            "no temporary left"
        );
    }
}
