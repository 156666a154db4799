//! Tidy checks: the codebase checking itself, run by `cargo test` as `tidy()`.
//!
//! The rules (each failure prints `file:line: rule: detail`):
//!
//! - every `.rs` file starts with a `//!` module doc;
//! - no trailing whitespace in `.rs`, `.toml`, `.md`, `.sh`, `.yml`/`.yaml` and `.ci/` files;
//! - library crates (`crates/*`) do not depend on indicatif, clap, tracing-subscriber,
//!   anyhow or imb-cli (`bins/common`, which has them), in any dependency table: those
//!   belong to binaries and xtask;
//! - library sources (`crates/*/src`) do not print (the print and dbg macros);
//! - no ignored test without a reason string, and no should-panic tests anywhere:
//!   assert the error you expect instead;
//! - `docs/ARCHITECTURE.md` exists and mentions every `crates/<dir>` and `bins/<dir>`.
//!
//! Lines that start with `//` are comments or docs and are exempt from the code rules.
//! The forbidden strings are assembled with `concat!` so this file does not trip them.

use std::path::{Path, PathBuf};

use crate::project_root;

/// Directories never walked, at any depth.
const SKIP_DIRS: &[&str] = &["target", ".git", "node_modules"];
/// Extensions whose files must not have trailing whitespace.
const WS_EXTENSIONS: &[&str] = &["rs", "toml", "md", "sh", "yml", "yaml"];
/// Dependencies reserved for binaries and xtask.
const BINARY_ONLY_DEPS: &[&str] = &[
    "indicatif",
    "clap",
    "tracing-subscriber",
    "anyhow",
    "imb-cli",
];
/// Macros a library must not call.
const PRINT_MACROS: &[&str] = &[
    concat!("print", "ln!"),
    concat!("eprint", "ln!"),
    concat!("print", "!"),
    concat!("eprint", "!"),
    concat!("dbg", "!"),
];
const IGNORE_ATTR: &str = concat!("#[", "ignore");
const SHOULD_PANIC_ATTR: &str = concat!("#[", "should_panic");
const CODE_MAP: &str = "docs/ARCHITECTURE.md";

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Violation {
    path: String,
    line: usize,
    rule: &'static str,
    detail: String,
}

impl Violation {
    fn new(path: &str, line: usize, rule: &'static str, detail: impl Into<String>) -> Self {
        Self {
            path: path.to_owned(),
            line,
            rule,
            detail: detail.into(),
        }
    }
}

#[test]
fn tidy() {
    let root = project_root();
    let mut violations = Vec::new();
    for path in files(root) {
        let relative = path
            .strip_prefix(root)
            .expect("walked from the root")
            .to_string_lossy()
            .replace('\\', "/");
        check_file(&path, &relative, &mut violations);
    }
    check_code_map(root, &mut violations);

    violations.sort();
    let report: Vec<String> = violations
        .iter()
        .map(|v| format!("{}:{}: {}: {}", v.path, v.line, v.rule, v.detail))
        .collect();
    assert!(
        violations.is_empty(),
        "tidy found {} problem(s) (rules are listed in xtask/src/tidy.rs):\n{}\n",
        violations.len(),
        report.join("\n")
    );
}

/// Release binaries carry no test code: their normal dependency tree has no
/// `imb-testkit` (the test servers and harnesses) and enables no `testing` feature.
#[test]
fn release_binaries_carry_no_test_code() {
    for bin in ["backup", "restore-verify", "device-sync"] {
        let found = test_code_in(&["-p", bin]);
        assert!(
            found.is_empty(),
            "{bin} ships test code:\n{}",
            found.join("\n")
        );
    }
}

/// No product crate depends on test code in its normal dependencies (a library
/// no binary uses yet would slip past the check above).
#[test]
fn product_crates_do_not_depend_on_test_code() {
    let found = test_code_in(&[
        "--workspace",
        "--exclude",
        "imb-testkit",
        "--exclude",
        "imb-e2e",
        "--exclude",
        "xtask",
    ]);
    assert!(
        found.is_empty(),
        "test code in a product crate:\n{}",
        found.join("\n")
    );
}

/// The lines of the normal dependency tree of `packages` that are test code.
fn test_code_in(packages: &[&str]) -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut args = vec![
        "tree",
        "-e",
        "normal,features",
        "--target",
        "all",
        "--locked",
    ];
    args.extend_from_slice(packages);
    let tree = crate::cmd::cmd(&cargo, args)
        .read()
        .expect("cargo tree runs");
    assert!(
        tree.contains("imb-"),
        "{packages:?}: an empty tree proves nothing"
    );
    tree.lines()
        .filter(|l| l.contains("feature \"testing\"") || l.contains("imb-testkit"))
        .map(str::to_owned)
        .collect()
}

/// The target layout has one home (`imb-layout`): reading a target never pulls in
/// the backup engine.
#[test]
fn restore_does_not_depend_on_the_engine() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    for krate in ["imb-restore", "restore-verify"] {
        let tree = crate::cmd::cmd(
            &cargo,
            [
                "tree", "-p", krate, "-e", "normal", "--prefix", "none", "--locked",
            ],
        )
        .read()
        .expect("cargo tree runs");
        assert!(tree.contains("imb-layout"), "{krate}: {tree}");
        assert!(
            !tree.contains("imb-engine"),
            "{krate} depends on the engine:\n{tree}"
        );
    }
}

/// Every regular file under `root`, sorted, skipping [`SKIP_DIRS`] and symlinks.
fn files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|err| panic!("reading {}: {err}", dir.display()));
        for entry in entries {
            let entry = entry.unwrap_or_else(|err| panic!("reading {}: {err}", dir.display()));
            let file_type = entry.file_type().expect("file type");
            let name = entry.file_name();
            if file_type.is_dir() {
                if !SKIP_DIRS.iter().any(|skip| name == *skip) {
                    pending.push(entry.path());
                }
            } else if file_type.is_file() {
                out.push(entry.path());
            }
        }
    }
    out.sort();
    out
}

fn check_file(path: &Path, relative: &str, out: &mut Vec<Violation>) {
    let extension = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let wants_ws_check = WS_EXTENSIONS.contains(&extension) || relative.starts_with(".ci/");
    let is_rs = extension == "rs";
    let is_library_manifest = is_library_manifest(relative);
    if !(wants_ws_check || is_rs || is_library_manifest) {
        return;
    }
    let bytes = std::fs::read(path).unwrap_or_else(|err| panic!("reading {relative}: {err}"));
    let Ok(text) = String::from_utf8(bytes) else {
        out.push(Violation::new(relative, 1, "encoding", "not UTF-8"));
        return;
    };
    if wants_ws_check {
        check_trailing_whitespace(relative, &text, out);
    }
    if is_rs {
        check_rust(relative, &text, is_library_source(relative), out);
    }
    if is_library_manifest {
        check_library_manifest(relative, &text, out);
    }
}

/// `crates/<dir>/Cargo.toml`.
fn is_library_manifest(relative: &str) -> bool {
    let parts: Vec<&str> = relative.split('/').collect();
    matches!(parts.as_slice(), ["crates", _, "Cargo.toml"])
}

/// `crates/<dir>/src/**.rs`.
fn is_library_source(relative: &str) -> bool {
    let parts: Vec<&str> = relative.split('/').collect();
    parts.len() >= 4 && parts[0] == "crates" && parts[2] == "src"
}

fn check_trailing_whitespace(path: &str, text: &str, out: &mut Vec<Violation>) {
    for (index, line) in text.split('\n').enumerate() {
        if line.ends_with([' ', '\t', '\r']) {
            out.push(Violation::new(
                path,
                index + 1,
                "trailing whitespace",
                "remove the spaces, tabs or carriage return at the end of the line",
            ));
        }
    }
}

fn check_rust(path: &str, text: &str, library_source: bool, out: &mut Vec<Violation>) {
    if !text.starts_with("//!") {
        out.push(Violation::new(
            path,
            1,
            "module doc",
            "a .rs file must start with a `//!` comment saying what it is for",
        ));
    }
    for (index, line) in text.lines().enumerate() {
        let code = line.trim_start();
        if code.starts_with("//") {
            continue;
        }
        let number = index + 1;
        for attr in find_all(code, IGNORE_ATTR) {
            let rest = code[attr + IGNORE_ATTR.len()..].trim_start();
            if rest.starts_with(']') {
                out.push(Violation::new(
                    path,
                    number,
                    "test attribute",
                    "an ignored test needs a reason: #[ignore = \"why\"]",
                ));
            }
        }
        if code.contains(SHOULD_PANIC_ATTR) {
            out.push(Violation::new(
                path,
                number,
                "test attribute",
                "no should-panic tests: call the function and assert the Err you expect",
            ));
        }
        if library_source {
            for name in PRINT_MACROS {
                if find_all(code, name).any(|at| !ends_with_ident_char(&code[..at])) {
                    out.push(Violation::new(
                        path,
                        number,
                        "library prints",
                        format!("library crates must not call {name}; emit a tracing event"),
                    ));
                }
            }
        }
    }
}

/// Byte offsets of every occurrence of `needle` in `haystack`.
fn find_all<'a>(haystack: &'a str, needle: &'a str) -> impl Iterator<Item = usize> + 'a {
    haystack.match_indices(needle).map(|(at, _)| at)
}

fn ends_with_ident_char(text: &str) -> bool {
    text.chars()
        .next_back()
        .is_some_and(|c| c.is_alphanumeric() || c == '_')
}

/// Flags [`BINARY_ONLY_DEPS`] in any dependency table, whether written as
/// `name = …`, `name.workspace = true`, `[dependencies.name]`, or renamed with
/// `package = "name"`.
fn check_library_manifest(path: &str, text: &str, out: &mut Vec<Violation>) {
    let mut in_deps = false;
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let number = index + 1;
        if let Some(header) = line.strip_prefix('[') {
            let header = header.trim_start_matches('[');
            let name = header.split(']').next().unwrap_or("").trim();
            // `dependencies`, `dev-dependencies`, `build-dependencies`,
            // `target.'cfg(…)'.dependencies`, or a `[dependencies.<crate>]` table.
            let mut table = None;
            in_deps = false;
            for (at, _) in name.match_indices("dependencies") {
                let before = &name[..at];
                if before.is_empty() || before.ends_with('.') || before.ends_with('-') {
                    let after = &name[at + "dependencies".len()..];
                    if after.is_empty() {
                        in_deps = true;
                    } else if let Some(krate) = after.strip_prefix('.') {
                        table = Some(unquote(krate));
                    }
                }
            }
            if let Some(krate) = table {
                in_deps = true;
                report_dep(path, number, &krate, out);
            }
            continue;
        }
        if !in_deps {
            continue;
        }
        let key = line.split(['=', '.']).next().unwrap_or("");
        report_dep(path, number, &unquote(key), out);
        if let Some(at) = line.find("package") {
            let rest = line[at + "package".len()..].trim_start();
            if let Some(value) = rest.strip_prefix('=') {
                let value = value.trim_start();
                let renamed: String = value
                    .trim_start_matches('"')
                    .chars()
                    .take_while(|c| *c != '"')
                    .collect();
                report_dep(path, number, &renamed, out);
            }
        }
    }
}

fn report_dep(path: &str, line: usize, name: &str, out: &mut Vec<Violation>) {
    if BINARY_ONLY_DEPS.contains(&name) {
        out.push(Violation::new(
            path,
            line,
            "library dependency",
            format!("library crates must not depend on {name}: it belongs in bins/ or xtask"),
        ));
    }
}

fn unquote(key: &str) -> String {
    key.trim().trim_matches(['"', '\'']).to_owned()
}

/// Every directory in `crates/` and `bins/` must appear by path in the code map.
fn check_code_map(root: &Path, out: &mut Vec<Violation>) {
    let doc = match std::fs::read_to_string(root.join(CODE_MAP)) {
        Ok(doc) => doc,
        Err(err) => {
            out.push(Violation::new(
                CODE_MAP,
                1,
                "code map",
                format!("cannot read it ({err}); it must describe every crate"),
            ));
            return;
        }
    };
    let mut dirs = Vec::new();
    for parent in ["crates", "bins"] {
        let Ok(entries) = std::fs::read_dir(root.join(parent)) else {
            continue;
        };
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                dirs.push(format!("{parent}/{}", entry.file_name().to_string_lossy()));
            }
        }
    }
    dirs.sort();
    for dir in dirs {
        if !mentions(&doc, &dir) {
            out.push(Violation::new(
                CODE_MAP,
                1,
                "code map",
                format!("`{dir}` is not mentioned; add a paragraph for it"),
            ));
        }
    }
}

/// Whether `doc` contains `path` not followed by more of a directory name
/// (`crates/hash` is not mentioned by `crates/hashes`).
fn mentions(doc: &str, path: &str) -> bool {
    find_all(doc, path).any(|at| {
        doc[at + path.len()..]
            .chars()
            .next()
            .is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == '-'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rust(text: &str, library: bool) -> Vec<(usize, &'static str)> {
        let mut out = Vec::new();
        check_rust("x.rs", text, library, &mut out);
        out.into_iter().map(|v| (v.line, v.rule)).collect()
    }

    #[test]
    fn module_doc_must_come_first() {
        assert_eq!(rust("//! Doc.\nfn f() {}\n", false), []);
        assert_eq!(rust("/// Item doc.\n", false), [(1, "module doc")]);
        assert_eq!(rust("#![allow(x)]\n//! Doc.\n", false), [(1, "module doc")]);
        assert_eq!(rust("", false), [(1, "module doc")]);
    }

    #[test]
    fn test_attributes() {
        let bare = format!("//! D\n{IGNORE_ATTR}]\nfn t() {{}}\n");
        assert_eq!(rust(&bare, false), [(2, "test attribute")]);
        let reasoned = format!("//! D\n{IGNORE_ATTR} = \"needs network\"]\n");
        assert_eq!(rust(&reasoned, false), []);
        let panics = format!("//! D\n    {SHOULD_PANIC_ATTR}(expected = \"x\")]\n");
        assert_eq!(rust(&panics, false), [(2, "test attribute")]);
        let commented = format!("//! D\n// never use {SHOULD_PANIC_ATTR}]\n");
        assert_eq!(rust(&commented, false), []);
    }

    #[test]
    fn libraries_do_not_print() {
        let println = PRINT_MACROS[0];
        let dbg = PRINT_MACROS[4];
        let text =
            format!("//! D\n{println}(\"hi\");\nlet x = {dbg}(y);\n/// {println}(\"doc\")\n");
        assert_eq!(
            rust(&text, true),
            [(2, "library prints"), (3, "library prints")]
        );
        assert_eq!(rust(&text, false), []);
        // Writing to a buffer is fine, and `eprint` must not also count as `print`.
        assert_eq!(rust("//! D\nwrite!(f, \"x\")?;\n", true), []);
        let eprint = format!("//! D\n{}(\"x\");\n", PRINT_MACROS[3]);
        assert_eq!(rust(&eprint, true), [(2, "library prints")]);
    }

    #[test]
    fn trailing_whitespace() {
        let mut out = Vec::new();
        check_trailing_whitespace("a.md", "ok\nbad \nbad\t\nwin\r\nend", &mut out);
        let lines: Vec<_> = out.iter().map(|v| v.line).collect();
        assert_eq!(lines, [2, 3, 4]);
    }

    #[test]
    fn library_manifests() {
        let manifest = "[package]\nname = \"anyhow-free\"\n\n[dependencies]\nthiserror.workspace = true\n\
            anyhow.workspace = true\n\"clap\" = \"4\"\nlog = { package = \"indicatif\", version = \"0.18\" }\n\
            \n[dev-dependencies]\ntracing-subscriber = \"0.3\"\ntracing = \"0.1\"\n\
            \n[target.'cfg(unix)'.dependencies]\nanyhow = \"1\"\n\
            \n[dependencies.clap]\nversion = \"4\"\n\n[features]\nanyhow = []\n";
        let mut out = Vec::new();
        check_library_manifest("crates/x/Cargo.toml", manifest, &mut out);
        let lines: Vec<_> = out.iter().map(|v| v.line).collect();
        assert_eq!(lines, [6, 7, 8, 11, 15, 17]);
        assert!(is_library_manifest("crates/hash/Cargo.toml"));
        assert!(!is_library_manifest("bins/backup/Cargo.toml"));
        assert!(!is_library_manifest("crates/hash/fuzz/Cargo.toml"));
        assert!(is_library_source("crates/hash/src/lib.rs"));
        assert!(is_library_source("crates/hash/src/a/b.rs"));
        assert!(!is_library_source("crates/hash/examples/throughput.rs"));
    }

    #[test]
    fn code_map_mentions_are_whole_names() {
        let doc = "`crates/hashes` and crates/storage, and `bins/backup`.";
        assert!(!mentions(doc, "crates/hash"));
        assert!(mentions(doc, "crates/storage"));
        assert!(mentions(doc, "bins/backup"));
    }
}
