//! The first hour on a new box, through the real binary: `setup detect` against the modem
//! simulator on a real pseudo-terminal (and a pseudo-terminal nobody answers on, and a port the
//! running daemon holds), `setup --yes` writing a config that `check-config` accepts and `run`
//! starts with, `check-config` as an unprivileged user, `demo` reached with `send --config`,
//! and `holidays`.

mod common;

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{TOKEN, bin, free_port, wait_until};
use pasarela::modem::sim::{self, SimConfig, SimHandle, SimOptions};

/// The simulator on a pseudo-terminal, kept running by its own runtime.
struct Sim {
    rt: tokio::runtime::Runtime,
    handle: Option<SimHandle>,
    link: PathBuf,
}

impl Sim {
    fn start(dir: &Path, config: SimConfig) -> Sim {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let link = dir.join("modem");
        let mut opts = SimOptions::new(&link);
        opts.config = config;
        let handle = rt.block_on(sim::start(opts)).unwrap();
        Sim {
            rt,
            handle: Some(handle),
            link,
        }
    }

    fn handle(&self) -> &SimHandle {
        self.handle.as_ref().unwrap()
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            self.rt.block_on(h.shutdown());
        }
    }
}

/// A pseudo-terminal whose other side never reads nor answers: a port with no modem behind it.
struct SilentPty {
    master: std::os::fd::OwnedFd,
    path: PathBuf,
}

fn silent_pty() -> SilentPty {
    use std::os::fd::FromRawFd;
    // SAFETY: posix_openpt returns a new descriptor (or -1); grantpt/unlockpt/ptsname_r only
    // act on it and fill the buffer given.
    unsafe {
        let fd = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY);
        assert!(fd >= 0);
        assert_eq!(libc::grantpt(fd), 0);
        assert_eq!(libc::unlockpt(fd), 0);
        let mut buf = [0 as libc::c_char; 128];
        assert_eq!(libc::ptsname_r(fd, buf.as_mut_ptr(), buf.len()), 0);
        let path = std::ffi::CStr::from_ptr(buf.as_ptr())
            .to_string_lossy()
            .into_owned();
        SilentPty {
            master: std::os::fd::OwnedFd::from_raw_fd(fd),
            path: PathBuf::from(path),
        }
    }
}

fn run(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .env("PASARELA_JOURNAL_SOCKET", "/nonexistent/journal")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn setup_detect_names_the_modem_and_lists_a_silent_port_within_its_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(
        dir.path(),
        SimConfig {
            operator: "Personal".to_string(),
            rssi: 20,
            ..SimConfig::default()
        },
    );
    let silent = silent_pty();
    let link = sim.link.to_str().unwrap().to_string();
    let started = Instant::now();
    let out = run(&[
        "setup",
        "detect",
        "--device",
        &link,
        "--device",
        silent.path.to_str().unwrap(),
        "--timeout-ms",
        "1500",
    ]);
    let elapsed = started.elapsed();
    let report = text(&out);
    assert_eq!(out.status.code(), Some(0), "{report}");
    let modem_line = report
        .lines()
        .find(|l| l.starts_with(&link))
        .unwrap_or_else(|| panic!("no line for {link}:\n{report}"));
    for needle in [
        "Pasarela SIM-Simulator",
        "IMEI 356938035643809",
        "SIM ready",
        "operator Personal",
        "signal -73 dBm (excellent)",
    ] {
        assert!(
            modem_line.contains(needle),
            "{needle} missing: {modem_line}"
        );
    }
    let silent_line = report
        .lines()
        .find(|l| l.starts_with(silent.path.to_str().unwrap()))
        .unwrap_or_else(|| panic!("no line for the silent port:\n{report}"));
    assert!(
        silent_line.contains("no answer to AT within 1.5 s"),
        "{silent_line}"
    );
    assert!(
        report.contains(&format!(
            "use {link} for the modem with IMEI 356938035643809"
        )),
        "{report}"
    );
    // A hang guard, not a performance figure: the silent port costs its timeout, not more.
    assert!(elapsed < Duration::from_secs(30), "{elapsed:?}");
    drop(silent.master);
}

#[test]
fn setup_detect_never_types_the_pin_and_leaves_the_daemons_port_alone() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(
        dir.path(),
        SimConfig {
            pin: Some("4321".to_string()),
            ..SimConfig::default()
        },
    );
    let link = sim.link.to_str().unwrap().to_string();
    for _ in 0..2 {
        let out = run(&["setup", "detect", "--device", &link]);
        let report = text(&out);
        assert!(
            report.contains("SIM asks for its PIN (not typed here"),
            "{report}"
        );
    }

    // The daemon holds the port: detect lists it as in use and leaves it alone.
    drop(sim);
    let ready_dir = dir.path().join("ready");
    std::fs::create_dir_all(&ready_dir).unwrap();
    let sim_ready = Sim::start(&ready_dir, SimConfig::default());
    let modem = format!(
        "token = \"{TOKEN}\"\n\n[[modem]]\nname = \"modem1\"\ndevice = \"{}\"\n",
        sim_ready.link.display()
    );
    let d = common::Daemon::start_with(dir.path(), &modem, &[]);
    let up = || {
        reqwest::blocking::Client::new()
            .get(format!("{}/api/status", d.base))
            .bearer_auth(TOKEN)
            .send()
            .ok()
            .and_then(|r| r.json::<serde_json::Value>().ok())
            .is_some_and(|s| s["transports"][0]["up"] == true)
    };
    wait_until("the daemon's modem up", Duration::from_secs(30), up);
    let out = run(&[
        "setup",
        "detect",
        "--device",
        sim_ready.link.to_str().unwrap(),
    ]);
    let report = text(&out);
    assert!(report.contains("in use by the pasarela daemon"), "{report}");
    assert!(report.contains("left alone"), "{report}");
    assert_eq!(
        out.status.code(),
        Some(1),
        "no modem could be asked: {report}"
    );
    assert!(up(), "the daemon keeps its modem");
}

/// Starts `pasarela run --config PATH` and waits for READY=1.
fn run_daemon(dir: &Path, config: &Path) -> Child {
    let notify_path = dir.join("notify.sock");
    let sock = UnixDatagram::bind(&notify_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut child = Command::new(bin())
        .arg("run")
        .arg("--config")
        .arg(config)
        .env("NOTIFY_SOCKET", &notify_path)
        .env("PASARELA_JOURNAL_SOCKET", dir.join("no-journal"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        if let Ok(n) = sock.recv(&mut buf)
            && String::from_utf8_lossy(&buf[..n])
                .lines()
                .any(|l| l == "READY=1")
        {
            return child;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("pasarela run exited: {status}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no READY=1 from pasarela run"
        );
    }
}

#[test]
fn setup_yes_writes_a_config_that_check_config_accepts_and_run_starts_with() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(dir.path(), SimConfig::default());
    let config = dir.path().join("etc/pasarela.toml");
    let state = dir.path().join("state");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let setup = |extra: &[&str]| {
        let mut args = vec![
            "setup",
            "--yes",
            "--config",
            config.to_str().unwrap(),
            "--company",
            "Fibra Sur",
            "--country",
            "AR",
            "--device",
            sim.link.to_str().unwrap(),
            "--listen",
            &listen,
            "--state-dir",
            state.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        run(&args)
    };
    let out = setup(&["--test-sms", "11 2345-6789"]);
    let report = text(&out);
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert!(report.contains("config written to"), "{report}");
    assert!(
        report.contains("test SMS to +*********6789 sent through"),
        "{report}"
    );
    let sent = sim.handle().sent();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].to, "+5491123456789");
    assert!(
        sent[0].text.starts_with("Fibra Sur: mensaje de prueba"),
        "{sent:?}"
    );

    let written = std::fs::read_to_string(&config).unwrap();
    assert!(written.contains("name = \"Fibra Sur\""), "{written}");
    assert!(written.contains(&format!("device = \"{}\"", sim.link.display())));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&config).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640, "it holds the token");

    // Never over an existing file without --force.
    let again = setup(&[]);
    assert_eq!(again.status.code(), Some(1));
    assert!(text(&again).contains("pass --force"), "{}", text(&again));
    assert_eq!(std::fs::read_to_string(&config).unwrap(), written);

    let out = run(&["check-config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("company \"Fibra Sur\""));

    // The written config holds notifications for the `fulltime` window (07-23 local time),
    // so a message sent at night waits until morning; the test runs at any hour.
    let always = written.replace("notifications = \"fulltime\"", "notifications = \"always\"");
    assert_ne!(always, written);
    std::fs::write(&config, always).unwrap();
    std::fs::create_dir_all(&state).unwrap();
    let mut daemon = run_daemon(dir.path(), &config);
    // The written token opens the API: `send` reads it from the config.
    let out = run(&[
        "send",
        "--config",
        config.to_str().unwrap(),
        "--to",
        "1123456789",
        "--text",
        "hola",
    ]);
    assert!(text(&out).contains("queued as message"), "{}", text(&out));
    wait_until("the daemon's SMS", Duration::from_secs(30), || {
        sim.handle().sent().len() == 2
    });
    let _ = daemon.kill();
    let _ = daemon.wait();
}

#[test]
fn check_config_checks_the_file_only_whoever_runs_it_and_strict_keeps_the_box_checks() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config/pasarela.toml");
    // As an unprivileged user: `nobody` when the tests run as root.
    let mut cmd = if unsafe { libc::geteuid() } == 0 && Path::new("/usr/bin/setpriv").exists() {
        let mut c = Command::new("/usr/bin/setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", bin()]);
        c
    } else {
        Command::new(bin())
    };
    let out = cmd.args(["check-config", example]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).starts_with("config OK"), "{}", text(&out));

    // A key only the service may read: a warning for this user, not a failure.
    if unsafe { libc::geteuid() } == 0 && Path::new("/usr/bin/setpriv").exists() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        for f in [&cert, &key] {
            std::fs::write(f, b"not for everyone").unwrap();
            std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let config = dir.path().join("pasarela.toml");
        std::fs::write(
            &config,
            format!(
                "[webhooks]\nlisten = \"127.0.0.1:8090\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
                cert.display(),
                key.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
        let out = Command::new("/usr/bin/setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", bin()])
            .arg("check-config")
            .arg(&config)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        assert!(
            text(&out).contains("webhooks.tls_key:")
                && text(&out).contains("cannot be read by this user"),
            "{}",
            text(&out)
        );
        // Root reads them, and they are no certificate: an error naming the key.
        let out = run(&["check-config", config.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        assert!(text(&out).contains("webhooks.tls_cert"), "{}", text(&out));
    }

    // A state directory that cannot be created: the file is valid; --strict says why the box
    // is not ready.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plainfile");
    std::fs::write(&file, b"").unwrap();
    let config = dir.path().join("pasarela.toml");
    std::fs::write(
        &config,
        format!(
            "[daemon]\nstate_dir = \"{}/state\"\n[admin]\ntoken = \"{TOKEN}\"\n",
            file.display()
        ),
    )
    .unwrap();
    let out = run(&["check-config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = run(&["check-config", "--strict", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("daemon.state_dir"), "{}", text(&out));
}

#[test]
fn a_demo_started_in_a_directory_is_reached_with_send_config() {
    let dir = tempfile::tempdir().unwrap();
    let demo_dir = dir.path().join("pasarela-demo");
    let (api_port, sim_port) = (free_port(), free_port());
    let mut demo = Command::new(bin())
        .args(["demo", "--dir"])
        .arg(&demo_dir)
        .args(["--listen", &format!("127.0.0.1:{api_port}")])
        .args(["--sim-control", &format!("127.0.0.1:{sim_port}")])
        .env("PASARELA_JOURNAL_SOCKET", dir.path().join("no-journal"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("the demo to answer", Duration::from_secs(30), || {
        reqwest::blocking::get(format!("http://127.0.0.1:{api_port}/api/health"))
            .is_ok_and(|r| r.status().is_success())
    });
    let config = demo_dir.join("pasarela.toml");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&config).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "it holds the generated token");
    let out = run(&[
        "send",
        "--config",
        config.to_str().unwrap(),
        "--to",
        "011 15-2345-6789",
        "--text",
        "Hola desde send",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("queued as message"), "{}", text(&out));
    wait_until(
        "the simulated modem sends it",
        Duration::from_secs(30),
        || {
            reqwest::blocking::get(format!("http://127.0.0.1:{sim_port}/sent"))
                .ok()
                .and_then(|r| r.text().ok())
                .is_some_and(|t| t.contains("Hola desde send"))
        },
    );
    // Other commands reach it too: a backup of its database.
    let copy = dir.path().join("copy.db");
    let out = run(&[
        "backup",
        copy.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(copy.is_file());
    let _ = demo.kill();
    let _ = demo.wait();
}

#[test]
fn holidays_2027_for_argentina_lists_the_national_days() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pasarela.toml");
    std::fs::write(&config, "").unwrap();
    let out = run(&[
        "holidays",
        "2027",
        "--country",
        "AR",
        "--config",
        config.to_str().unwrap(),
    ]);
    let list = text(&out);
    assert_eq!(out.status.code(), Some(0), "{list}");
    for day in [
        "2027-01-01",
        "2027-02-08",
        "2027-02-09",
        "2027-03-24",
        "2027-03-26",
        "2027-04-02",
        "2027-05-01",
        "2027-05-25",
        "2027-07-09",
        "2027-12-08",
        "2027-12-25",
    ] {
        assert!(list.lines().any(|l| l.starts_with(day)), "{day}:\n{list}");
    }
    assert!(
        list.lines()
            .any(|l| l.starts_with("2027-06-21") && l.contains("moved by law 27.399")),
        "{list}"
    );
    assert!(!list.contains("2027-06-17"), "{list}");

    // The config adds a provincial day and takes one out.
    std::fs::write(
        &config,
        "[windows]\nholidays = [\"2027-04-01\"]\nnot_holidays = [\"2027-10-11\"]\n",
    )
    .unwrap();
    let out = run(&["holidays", "2027", "--config", config.to_str().unwrap()]);
    let list = text(&out);
    assert!(list.lines().any(|l| l.starts_with("2027-04-01")), "{list}");
    assert!(!list.lines().any(|l| l.starts_with("2027-10-11")), "{list}");

    let out = run(&[
        "holidays",
        "2027",
        "--country",
        "XX",
        "--config",
        config.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("no holiday table"), "{}", text(&out));
}

#[test]
fn a_window_that_skips_holidays_holds_notifications_on_the_2027_holidays() {
    use chrono::TimeZone;
    // The IntegraComex case: a notification window every day 08-20, closed on holidays, and the
    // built-in fulltime (holidays too), from a config with no date typed in.
    let loaded = pasarela::setup::from_toml(
        "[windows]\nnotifications = \"diario\"\n\
         [windows.custom.diario]\ndays = \"todos\"\nfrom = \"08:00\"\nto = \"20:00\"\nholidays = false\n",
    )
    .unwrap();
    let c = &loaded.config;
    let tz: chrono_tz::Tz = c.company.timezone.parse().unwrap();
    let windows =
        pasarela::rules::window::Windows::new(&c.windows, tz, &c.company.country).unwrap();
    let at = |m: u32, d: u32, h: u32| {
        tz.with_ymd_and_hms(2027, m, d, h, 0, 0)
            .unwrap()
            .timestamp_millis()
    };
    for (m, d, next) in [
        ((1, 1), (1, 2)),
        ((2, 8), (2, 10)),
        ((3, 24), (3, 25)),
        ((3, 26), (3, 27)),
        ((4, 2), (4, 3)),
        ((5, 1), (5, 2)),
        ((5, 25), (5, 26)),
        ((7, 9), (7, 10)),
        ((12, 8), (12, 9)),
        ((12, 25), (12, 26)),
    ]
    .map(|((m, d), next)| (m, d, next))
    {
        // The clock is set by the test: 10:00 on the holiday.
        let now = at(m, d, 10);
        assert!(!windows.is_open("diario", now), "2027-{m}-{d}");
        assert_eq!(
            windows.next_open("diario", now),
            at(next.0, next.1, 8),
            "a notification on 2027-{m}-{d} waits for the next working day's 08:00"
        );
        assert!(
            windows.is_open("fulltime", now),
            "fulltime goes on holidays"
        );
    }
    assert!(
        windows.is_open("diario", at(3, 25, 10)),
        "Holy Thursday is no holiday"
    );
}

#[test]
fn interactive_setup_asks_again_for_a_bad_answer_and_leaves_the_pin_to_the_daemon() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(
        dir.path(),
        SimConfig {
            pin: Some("4321".to_string()),
            ..SimConfig::default()
        },
    );
    let config = dir.path().join("pasarela.toml");
    let mut child = Command::new(bin())
        .args(["setup", "--config"])
        .arg(&config)
        .arg("--device")
        .arg(&sim.link)
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Company, country (a bad one, then the default), time zone, PIN (too short, then good),
    // admin address, the test SMS number.
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"Cable Oeste\nArgentina\n\n\n12\n4321\n127.0.0.1:18090\n1123456789\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = text(&out);
    assert!(
        report.contains("`Argentina` is not a two-letter country code"),
        "{report}"
    );
    assert!(report.contains("a SIM PIN is 4 to 8 digits"), "{report}");
    // The config is written; the test SMS is refused rather than typing the PIN.
    assert!(report.contains("config written to"), "{report}");
    assert!(report.contains("the SIM is not ready"), "{report}");
    assert_eq!(out.status.code(), Some(1), "{report}");
    let written = std::fs::read_to_string(&config).unwrap();
    assert!(written.contains("pin = \"4321\""), "{written}");
    assert!(written.contains("name = \"Cable Oeste\""), "{written}");
    assert!(sim.handle().sent().is_empty());
    // Still locked: nobody typed the PIN.
    let out = run(&["setup", "detect", "--device", sim.link.to_str().unwrap()]);
    assert!(
        text(&out).contains("SIM asks for its PIN"),
        "{}",
        text(&out)
    );
}
