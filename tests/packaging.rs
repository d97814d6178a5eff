//! The packaged files stay in step with the code: the configuration the .deb installs is the
//! documented example with the token file switched on, and the unit runs the daemon the way
//! the design says. Building, installing and purging the .deb is CI's tier `40-deb.sh`.

use std::path::Path;

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

/// The settings of a TOML text: no comments, no blank lines.
fn settings(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

#[test]
fn packaged_config_is_the_example_with_the_token_file_on() {
    let example = settings(&read("config/pasarela.toml"));
    let packaged_text = read("packaging/pasarela.toml");
    let token_line = "token_file = \"/etc/pasarela/admin.token\"";
    let packaged: Vec<String> = settings(&packaged_text)
        .into_iter()
        .filter(|l| l != token_line)
        .collect();
    assert_eq!(
        packaged, example,
        "packaging/pasarela.toml drifted from config/pasarela.toml"
    );
    assert!(packaged_text.lines().any(|l| l == token_line));

    let loaded = pasarela::setup::from_toml(&packaged_text).unwrap();
    assert_eq!(
        loaded.config.admin.token_file.as_deref(),
        Some(Path::new("/etc/pasarela/admin.token"))
    );
    assert_eq!(
        loaded.config.daemon.state_dir,
        Path::new("/var/lib/pasarela")
    );
    assert_eq!(loaded.config.admin.listen, "127.0.0.1:8080");
}

#[test]
fn unit_runs_the_daemon_as_the_design_says() {
    let unit = read("systemd/pasarela.service");
    let lines: Vec<&str> = unit.lines().collect();
    for expected in [
        "Type=notify",
        "NotifyAccess=main",
        "WatchdogSec=30",
        "Restart=on-failure",
        "User=pasarela",
        "SupplementaryGroups=dialout",
        "StateDirectory=pasarela",
        "ConfigurationDirectory=pasarela",
        "ExecStart=/usr/bin/pasarela run --config /etc/pasarela/pasarela.toml",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "CapabilityBoundingSet=",
        "DevicePolicy=closed",
        "DeviceAllow=char-ttyUSB rw",
    ] {
        assert!(
            lines.contains(&expected),
            "systemd/pasarela.service lacks `{expected}`"
        );
    }
    // PrivateUsers would map the device's dialout group to nobody.
    assert!(!unit.contains("PrivateUsers=yes"));
}
