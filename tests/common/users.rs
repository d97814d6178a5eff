//! Page users, added the way an operator does: `pasarela user add` with the password on stdin.

use std::io::Write;
use std::process::{Command, Stdio};

/// Adds a user with `role` through `pasarela user add` with the daemon's config.
pub fn add_user(config: &std::path::Path, name: &str, role: &str, password: &str) {
    let mut child = Command::new(super::bin())
        .args(["user", "add", name, "--role", role, "--config"])
        .arg(config)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
}
