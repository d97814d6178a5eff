//! The module boundaries hold: transports and the modem never reach the store or the admin
//! API (they report through their sink), the webhooks never reach the admin, and `config`
//! imports no feature module (features import it). Scans the sources, outside test modules.

use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The file's text before its `#[cfg(test)]` module (tests may use anything), comment lines
/// blanked (line numbers stay right).
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let body = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => &text[..],
    };
    body.lines()
        .map(|l| {
            if l.trim_start().starts_with("//") {
                ""
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `file:line: text` of every path into one of `modules` (`crate::store`, `crate::store::x`;
/// not `crate::storex`). Modules reach each other only by `crate::` paths in this code base.
fn uses(files: &[PathBuf], modules: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for f in files {
        if f.components().any(|c| c.as_os_str() == "tests") || f.ends_with("tests.rs") {
            continue;
        }
        for (n, line) in code(f).lines().enumerate() {
            for m in modules {
                let path = format!("crate::{m}");
                let hit = line.match_indices(&path).any(|(i, _)| {
                    let next = line[i + path.len()..].chars().next();
                    !next.is_some_and(|c| c.is_alphanumeric() || c == '_')
                });
                if hit {
                    found.push(format!("{}:{}: {}", f.display(), n + 1, line.trim()));
                }
            }
        }
    }
    found
}

fn under(dirs: &[&str]) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    for d in dirs {
        let p = root.join(d);
        if p.is_dir() {
            sources(&p, &mut files);
        } else {
            files.push(p);
        }
    }
    files
}

#[test]
fn transports_and_the_modem_see_no_store_and_no_admin() {
    let files = under(&["transport", "modem"]);
    assert!(files.len() > 5, "sources not found: {files:?}");
    let found = uses(&files, &["store", "admin", "dispatch", "inbox", "daemon"]);
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn the_modem_simulator_needs_nothing_of_the_gateway() {
    let found = uses(
        &under(&["modem/sim"]),
        &[
            "store",
            "admin",
            "dispatch",
            "inbox",
            "daemon",
            "transport",
            "config",
            "rules",
        ],
    );
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn config_imports_no_feature_module() {
    let found = uses(
        &under(&["config.rs", "config"]),
        &[
            "admin",
            "daemon",
            "directory",
            "dispatch",
            "doctor",
            "inbox",
            "modem",
            "registry",
            "rules",
            "setup",
            "store",
            "transport",
            "jsonapi",
            "web",
            "cli",
        ],
    );
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn the_json_helpers_and_the_model_are_leaves() {
    let found = uses(
        &under(&["jsonapi.rs", "model.rs"]),
        &[
            "admin",
            "config",
            "daemon",
            "directory",
            "dispatch",
            "inbox",
            "modem",
            "rules",
            "store",
            "transport",
        ],
    );
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn inbox_does_not_reach_back_into_the_admin() {
    let found = uses(&under(&["inbox.rs", "rules"]), &["admin"]);
    assert!(found.is_empty(), "{}", found.join("\n"));
}
