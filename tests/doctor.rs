//! `pasarela doctor`, the real binary, against the modem simulator on a real pseudo-terminal:
//! a healthy modem (asked directly, then through the running daemon that holds the port), a
//! SIM locked by its PIN, an unplugged modem, a modem without network or signal, and a broken
//! configuration. Permissions are checked for the user running the tests (`--user`).

mod common;

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use pasarela::modem::sim::{
    self, ConfigPatch, Fault, Registration, SimConfig, SimHandle, SimOptions,
};

struct Bench {
    dir: tempfile::TempDir,
    rt: tokio::runtime::Runtime,
    sim: Option<SimHandle>,
    link: PathBuf,
    /// A datagram socket standing in for journald's.
    journal: PathBuf,
    _journal_socket: UnixDatagram,
}

impl Bench {
    fn new(config: SimConfig) -> Bench {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("state")).unwrap();
        // Multi-threaded, so the simulator keeps answering while the test waits for the binary.
        let rt = tokio::runtime::Runtime::new().unwrap();
        let link = dir.path().join("modem");
        let mut opts = SimOptions::new(&link);
        opts.config = config;
        let sim = rt.block_on(sim::start(opts)).unwrap();
        let journal = dir.path().join("journal.sock");
        let socket = UnixDatagram::bind(&journal).unwrap();
        Bench {
            dir,
            rt,
            sim: Some(sim),
            link,
            journal,
            _journal_socket: socket,
        }
    }

    fn sim(&self) -> &SimHandle {
        self.sim.as_ref().unwrap()
    }

    /// The `[admin]` token and one `[[modem]]` on the simulator, for `common::write_config`.
    fn admin_and_modem(&self, modem_extra: &str) -> String {
        format!(
            "token = \"{}\"\n\n[[modem]]\nname = \"modem1\"\ndevice = \"{}\"\nhealth_interval_secs = 5\n{modem_extra}\n",
            common::TOKEN,
            self.link.display()
        )
    }

    fn config(&self, modem_extra: &str) -> PathBuf {
        common::write_config(
            self.dir.path(),
            common::free_port(),
            "",
            &self.admin_and_modem(modem_extra),
        )
    }

    fn doctor(&self, config: &Path) -> (i32, String) {
        let out = Command::new(common::bin())
            .arg("doctor")
            .arg("--config")
            .arg(config)
            .arg("--user")
            .arg(current_user())
            .env(pasarela::logging::JOURNAL_SOCKET_ENV, &self.journal)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.code().unwrap_or(-1), stdout)
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        if let Some(sim) = self.sim.take() {
            self.rt.block_on(sim.shutdown());
        }
    }
}

fn current_user() -> String {
    let out = Command::new("id").arg("-un").output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// The report has a line with this status (`ok`, `FAIL`, `--`) that contains `needle`.
#[track_caller]
fn has(report: &str, status: &str, needle: &str) {
    let prefix = format!("{status:<4} ");
    assert!(
        report
            .lines()
            .any(|l| l.starts_with(&prefix) && l.contains(needle)),
        "no `{status}` line with `{needle}` in:\n{report}"
    );
}

#[test]
fn healthy_modem_directly_then_through_the_running_daemon() {
    let bench = Bench::new(SimConfig::default());
    let config = bench.config("");
    let (code, report) = bench.doctor(&config);
    has(&report, "ok", "is valid (token set)");
    has(&report, "ok", "state dir");
    has(
        &report,
        "ok",
        &format!("modem1: {} exists", bench.link.display()),
    );
    has(
        &report,
        "ok",
        &format!("modem1: modem answers AT ({})", bench.link.display()),
    );
    has(&report, "ok", "modem1: SIM ready");
    has(&report, "ok", "modem1: registered (home) on Personal");
    has(&report, "ok", "modem1: signal -73 dBm (excellent)");
    has(&report, "ok", "modem1: SMS centre +5491151740000");
    has(&report, "ok", "journald reachable");
    // Nothing listens yet: the only failure, and it says what to do.
    has(&report, "FAIL", "admin API does not answer");
    assert!(
        report.contains("→ fix: sudo systemctl start pasarela"),
        "{report}"
    );
    assert_eq!(
        report.lines().filter(|l| l.starts_with("FAIL")).count(),
        1,
        "{report}"
    );
    assert_eq!(code, 1, "{report}");

    // The daemon takes the port; doctor asks it instead of opening the port a second time.
    let daemon = common::Daemon::start_with(bench.dir.path(), &bench.admin_and_modem(""), &[]);
    common::wait_until(
        "the modem up in /api/status",
        Duration::from_secs(30),
        || {
            let (_, status) = bench.rt.block_on(common::api(
                reqwest::Method::GET,
                format!("{}/api/status", daemon.base),
                None,
            ));
            status["transports"][0]["up"] == true
        },
    );
    let (code, report) = bench.doctor(&daemon.config);
    has(
        &report,
        "ok",
        &format!(
            "modem1: modem answers AT ({}, held by the running daemon)",
            bench.link.display()
        ),
    );
    has(&report, "ok", "modem1: SIM ready");
    has(&report, "ok", "modem1: registered (home) on Personal");
    has(&report, "ok", "modem1: signal -73 dBm (excellent)");
    has(&report, "ok", "modem1: SMS centre +5491151740000");
    has(
        &report,
        "ok",
        &format!("admin API answers on {}", daemon.base),
    );
    assert_eq!(code, 0, "{report}");
}

#[test]
fn pin_locked_sim_asks_for_the_pin_and_is_never_unlocked_by_doctor() {
    let bench = Bench::new(SimConfig {
        pin: Some("4321".to_string()),
        ..SimConfig::default()
    });
    let (code, report) = bench.doctor(&bench.config(""));
    has(&report, "ok", "modem1: modem answers AT");
    has(&report, "FAIL", "modem1: the SIM asks for its PIN");
    assert!(report.contains("→ fix: set pin = "), "{report}");
    has(
        &report,
        "--",
        "modem1: network checks not run (SIM not ready)",
    );
    assert_eq!(code, 1, "{report}");

    // With the PIN configured the locked SIM is expected: the daemon enters it, doctor does not.
    let (_, report) = bench.doctor(&bench.config("pin = \"4321\""));
    has(&report, "ok", "modem1: SIM locked by its PIN; `pin` is set");
    let (_, report) = bench.doctor(&bench.config("pin = \"4321\""));
    has(&report, "ok", "modem1: SIM locked by its PIN");
}

#[test]
fn unplugged_modem_is_named_with_the_fix() {
    let bench = Bench::new(SimConfig::default());
    bench.sim().fault(&Fault::Unplug { secs: 600.0 }).unwrap();
    common::wait_until("the link to go", Duration::from_secs(10), || {
        std::fs::symlink_metadata(&bench.link).is_err()
    });
    let (code, report) = bench.doctor(&bench.config(""));
    has(
        &report,
        "FAIL",
        &format!(
            "modem1: device {} not found (modem unplugged?)",
            bench.link.display()
        ),
    );
    assert!(report.contains("/dev/serial/by-id/"), "{report}");
    has(
        &report,
        "--",
        "modem1: modem, SIM and network checks not run",
    );
    assert_eq!(code, 1, "{report}");
}

#[test]
fn no_network_and_no_signal_fail_with_their_fixes() {
    let bench = Bench::new(SimConfig::default());
    bench
        .sim()
        .set_config(ConfigPatch {
            rssi: Some(99),
            registration: Some(Registration::Searching),
            ..ConfigPatch::default()
        })
        .unwrap();
    let (code, report) = bench.doctor(&bench.config(""));
    has(&report, "ok", "modem1: SIM ready");
    has(&report, "FAIL", "modem1: not registered (searching)");
    has(&report, "FAIL", "modem1: no signal measured (+CSQ: 99)");
    assert!(report.contains("antenna"), "{report}");
    assert_eq!(code, 1, "{report}");

    bench
        .sim()
        .set_config(ConfigPatch {
            rssi: Some(0),
            ..ConfigPatch::default()
        })
        .unwrap();
    let (_, report) = bench.doctor(&bench.config(""));
    has(&report, "FAIL", "modem1: signal -113 dBm (none)");
}

#[test]
fn a_broken_config_is_reported_first() {
    let bench = Bench::new(SimConfig::default());
    let config = bench.dir.path().join("bad.toml");
    std::fs::write(&config, "[admin]\nlisten = \"8080\"\n").unwrap();
    let (code, report) = bench.doctor(&config);
    let first = report.lines().next().unwrap_or_default();
    assert!(first.starts_with("FAIL config "), "{report}");
    assert!(first.contains("admin.listen"), "{report}");
    assert!(first.contains("→ fix: edit it"), "{report}");
    assert_eq!(code, 1, "{report}");
}
