//! The shipped monitoring (`deploy/kubernetes/components/monitoring`) against
//! Debian's promtool: the PrometheusRule's groups are valid rules and its alerts
//! fire when they should (`promtool test rules`), and every expression of the
//! Grafana dashboard is valid and names only series the binaries emit.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use imb_testkit::prometheus::promtool;

fn monitoring() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/kubernetes/components/monitoring")
}

/// The PrometheusRule's `spec`: a plain rule file, de-indented.
fn rules_of(prometheus_rule: &str) -> String {
    let lines: Vec<&str> = prometheus_rule.lines().collect();
    let at = lines
        .iter()
        .position(|l| *l == "spec:")
        .expect("the PrometheusRule has a top-level spec");
    lines[at + 1..]
        .iter()
        .map(|l| l.strip_prefix("  ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Metric names in an expression (ours all start `immich_backup`).
fn our_series(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = expr;
    while let Some(i) = rest.find("immich_backup") {
        let name: String = rest[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[i + name.len()..];
        out.insert(name);
    }
    out
}

/// Every series `docs/operations.md` lists (the binaries' tests assert they emit
/// them).
fn documented_series() -> BTreeSet<String> {
    let doc = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/operations.md"),
    )
    .unwrap();
    doc.lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split(['`', '{']).next())
        .filter(|n| n.starts_with("immich_backup"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_alert_rules_are_valid_and_fire_when_they_should() {
    let t = tempfile::tempdir().unwrap();
    let rule = std::fs::read_to_string(monitoring().join("prometheusrule.yaml")).unwrap();
    let rules = t.path().join("rules.yaml");
    std::fs::write(&rules, rules_of(&rule)).unwrap();
    let (status, said) = promtool(&["check", "rules", rules.to_str().unwrap()], None);
    assert_eq!(status, 0, "{said}");
    assert!(said.contains("5 rules found"), "{said}");
    let test = t.path().join("alerts.test.yaml");
    std::fs::copy(monitoring().join("tests/alerts.test.yaml"), &test).unwrap();
    let (status, said) = promtool(&["test", "rules", test.to_str().unwrap()], None);
    assert_eq!(status, 0, "{said}");
    assert!(said.contains("SUCCESS"), "{said}");
    // Every alert names only series we emit, and links its runbook section.
    let known = documented_series();
    for name in our_series(&rule) {
        assert!(known.contains(&name), "{name} is not a series we emit");
    }
    let doc = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/operations.md"),
    )
    .unwrap()
    .to_ascii_lowercase();
    for anchor in rule
        .lines()
        .filter_map(|l| l.trim().strip_prefix("runbook_url: \"docs/operations.md#"))
    {
        let anchor = anchor.trim_end_matches('"');
        assert!(
            doc.contains(&format!("### {anchor}")),
            "docs/operations.md has no ### {anchor}"
        );
    }
}

#[test]
fn every_dashboard_expression_is_valid_and_uses_our_series() {
    let dash: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(monitoring().join("dashboard.json")).unwrap(),
    )
    .unwrap();
    let exprs: Vec<String> = dash["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t["expr"].as_str().map(|e| e.replace("$target", ".*")))
        .collect();
    assert!(exprs.len() >= 10, "{exprs:?}");
    let known = documented_series();
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, e) in exprs.iter().enumerate() {
        for name in our_series(e) {
            assert!(
                known.contains(&name),
                "{name} in {e:?} is not a series we emit"
            );
        }
        rules.push_str(&format!(
            "      - record: dashboard:expr_{i}\n        expr: {}\n",
            serde_json::to_string(e).unwrap()
        ));
    }
    let t = tempfile::tempdir().unwrap();
    let file = t.path().join("dashboard-rules.yaml");
    std::fs::write(&file, rules).unwrap();
    let (status, said) = promtool(&["check", "rules", file.to_str().unwrap()], None);
    assert_eq!(status, 0, "{said}");
}
