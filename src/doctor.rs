//! `pasarela doctor`: the checks an operator runs when something is wrong on an installed box.
//! Each check is one line, `ok` or `FAIL` with the fix (`WARN` with the fix for what will fail
//! soon, such as a certificate expiring within 14 days); `--` marks checks that were not run
//! because an earlier one failed. The command exits 0 only when nothing failed.
//!
//! Contracts:
//! - It never hangs: every AT command has a timeout of a few seconds, every HTTP call 3 s.
//! - It never fights the daemon for the modem: when the daemon's admin API answers, the modem's
//!   state comes from `GET /api/status`; when a `pasarela run` process holds the port but its API
//!   does not answer, the port is reported busy and left alone.
//! - It never enters a SIM PIN (three wrong PINs lock the SIM): it only reads `AT+CPIN?`.
//! - Permissions are judged for the service user (`--user`, default `pasarela`) as the systemd
//!   unit runs it, with `SupplementaryGroups=dialout`, from owner, group and mode bits. Users and
//!   groups are read from `/etc/passwd` and `/etc/group` (the package creates a local user).

use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::{Loaded, ModemConfig};
use crate::modem::at::{Command, fields};
use crate::modem::driver::{AtError, AtPort};

/// The user the packaged service runs as.
pub const SERVICE_USER: &str = "pasarela";
/// The group the unit adds (`SupplementaryGroups=`), which owns serial devices on Debian.
pub const SERIAL_GROUP: &str = "dialout";
/// Long enough for a modem busy with a network search, short enough for an operator waiting.
const AT_TIMEOUT: Duration = Duration::from_secs(3);
const HTTP_TIMEOUT: Duration = Duration::from_secs(3);
/// ESC: leaves a half-typed `AT+CMGS` PDU entry from a previous process.
const ESC: u8 = 0x1b;

/// What a check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Fail {
        fix: String,
    },
    /// Works now, but will not for long (a certificate about to expire). Not a failure.
    Warn {
        fix: String,
    },
    /// Not run because an earlier check failed.
    Skip,
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub outcome: Outcome,
    pub what: String,
}

impl Check {
    fn ok(what: impl Into<String>) -> Check {
        Check {
            outcome: Outcome::Ok,
            what: what.into(),
        }
    }

    fn fail(what: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            outcome: Outcome::Fail { fix: fix.into() },
            what: what.into(),
        }
    }

    fn warn(what: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            outcome: Outcome::Warn { fix: fix.into() },
            what: what.into(),
        }
    }

    fn skip(what: impl Into<String>) -> Check {
        Check {
            outcome: Outcome::Skip,
            what: what.into(),
        }
    }

    pub fn failed(&self) -> bool {
        matches!(self.outcome, Outcome::Fail { .. })
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.outcome {
            Outcome::Ok => write!(f, "ok   {}", self.what),
            Outcome::Fail { fix } => write!(f, "FAIL {}  → fix: {fix}", self.what),
            Outcome::Warn { fix } => write!(f, "WARN {}  → fix: {fix}", self.what),
            Outcome::Skip => write!(f, "--   {}", self.what),
        }
    }
}

/// What to check.
#[derive(Debug, Clone)]
pub struct Options {
    pub config: PathBuf,
    /// The service user whose permissions count.
    pub user: String,
}

/// Runs every check, handing each line to `report` as soon as it is known; returns them all.
pub async fn run(opts: &Options, report: &mut (dyn FnMut(&Check) + Send)) -> Vec<Check> {
    let mut out = Report {
        checks: Vec::new(),
        report,
    };
    let Some(loaded) = check_config(&opts.config, &mut out) else {
        out.push(Check::skip(
            "other checks not run: they need a valid configuration",
        ));
        return out.checks;
    };
    let account = match Account::lookup(&opts.user) {
        Ok(a) => Some(a),
        Err(e) => {
            out.push(Check::fail(
                e,
                "reinstall the package (sudo apt install --reinstall pasarela), or pass --user",
            ));
            None
        }
    };
    // Whether the daemon answers decides where the modem's state comes from.
    let base = crate::daemon::api_base(&loaded).unwrap_or_default();
    let admin_cert = loaded.config.admin.tls_cert.as_deref();
    let health = admin_health(&base, admin_cert).await;
    let status = match &health {
        Ok(_) => Some(daemon_status(&loaded, &base).await),
        Err(_) => None,
    };
    let daemon = Daemon {
        base,
        health,
        status,
    };
    run_checks(&loaded, account.as_ref(), daemon, &mut out).await;
    out.checks
}

/// The same checks from inside the running daemon (the System page): the config file is read
/// again when the daemon was started from one (an edit that breaks the next restart shows),
/// else the running configuration is judged; permissions are the daemon process's own; the
/// modem's state is `status` (`GET /api/status`, asked in-process), never a probe of the port.
pub async fn run_in_daemon(
    running: &Loaded,
    listen: &str,
    status: Result<serde_json::Value, String>,
) -> Vec<Check> {
    let mut ignore = |_: &Check| {};
    let mut out = Report {
        checks: Vec::new(),
        report: &mut ignore,
    };
    let loaded = match &running.path {
        Some(path) => match check_config(path, &mut out) {
            Some(l) => l,
            None => running.clone(),
        },
        None => {
            out.push(Check::ok("configuration built in (demo), not from a file"));
            running.clone()
        }
    };
    let daemon = Daemon {
        base: listen.to_string(),
        health: Ok(env!("CARGO_PKG_VERSION").to_string()),
        status: Some(status),
    };
    run_checks(&loaded, Some(&Account::current()), daemon, &mut out).await;
    out.checks
}

/// What is known of the running daemon: where its API is, whether it answers, its status.
struct Daemon {
    base: String,
    health: Result<String, String>,
    status: Option<Result<serde_json::Value, String>>,
}

async fn run_checks(
    loaded: &Loaded,
    account: Option<&Account>,
    daemon: Daemon,
    out: &mut Report<'_>,
) {
    let cfg = &loaded.config;
    out.push(check_state_dir(&cfg.daemon.state_dir, account));
    let now = chrono::Utc::now().timestamp();
    for (section, cert, _) in loaded.tls_pairs() {
        out.push(check_certificate(section, cert, now));
    }
    if cfg.modems.is_empty() {
        out.push(Check::ok(
            "no [[modem]] configured: SMS through modems is off",
        ));
    }
    let mm_running = !processes_named("ModemManager").is_empty();
    for m in &cfg.modems {
        check_modem(m, account, mm_running, daemon.status.as_ref(), out).await;
    }
    if let Some(w) = &cfg.whatsapp {
        out.push(check_whatsapp_token(w).await);
        out.push(check_webhook_listener(cfg).await);
    }
    for e in &cfg.email {
        out.push(check_email(e).await);
    }
    out.push(check_journal());
    let base = daemon.base;
    out.push(match daemon.health {
        Ok(version) => Check::ok(format!("admin API answers on {base} (pasarela {version})")),
        Err(e) => Check::fail(
            format!("admin API does not answer on {base}: {e}"),
            "sudo systemctl start pasarela, then read why it stopped: journalctl -u pasarela -e",
        ),
    });
}

/// Connects to an `[[email]]` account's server, with its TLS, and logs in.
async fn check_email(e: &crate::config::EmailConfig) -> Check {
    let port = crate::transport::email::smtp::port_of(e);
    let what = format!("[[email]] {} ({}:{port})", e.name, e.host);
    let account = match crate::transport::email::EmailTransport::new(e.clone()) {
        Ok(a) => a,
        Err(why) => return Check::fail(format!("{what}: {why}"), "fix the [[email]] table"),
    };
    match account.login().await {
        Ok(()) => Check::ok(format!("{what}: connected and logged in")),
        Err(why) => Check::fail(
            format!("{what}: {why}"),
            "check host, port, security, username and password (POST /api/email/test sends a test mail)",
        ),
    }
}

struct Report<'a> {
    checks: Vec<Check>,
    report: &'a mut (dyn FnMut(&Check) + Send),
}

impl Report<'_> {
    fn push(&mut self, check: Check) {
        (self.report)(&check);
        self.checks.push(check);
    }
}

fn check_config(path: &Path, out: &mut Report<'_>) -> Option<Loaded> {
    let shown = path.display();
    match crate::setup::load(path) {
        Ok(loaded) => {
            let token = match loaded.admin_token() {
                Ok(Some(_)) if loaded.config.admin.token_file.is_some() => "token from file",
                Ok(Some(_)) => "token set",
                Ok(None) => {
                    out.push(Check::fail(
                        format!("config {shown} sets no admin token: the API is off"),
                        format!(
                            "set token_file = \"/etc/pasarela/admin.token\" under [admin] in {shown}"
                        ),
                    ));
                    return Some(loaded);
                }
                Err(e) => {
                    out.push(Check::fail(
                        format!("config {shown}: {e}"),
                        "put a token of 16+ characters in that file: \
                         sudo sh -c 'head -c 24 /dev/urandom | od -An -tx1 | tr -d \" \\n\" > FILE'",
                    ));
                    return Some(loaded);
                }
            };
            out.push(Check::ok(format!("config {shown} is valid ({token})")));
            Some(loaded)
        }
        Err(e) => {
            let text = e.to_string().replace('\n', "; ");
            let fix = if text.contains("Permission denied") {
                "run it as root: sudo pasarela doctor".to_string()
            } else {
                format!("edit it, then check it with `pasarela check-config {shown}`")
            };
            out.push(Check::fail(format!("config {shown}: {text}"), fix));
            None
        }
    }
}

/// A local user and the groups the service process has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub uid: u32,
    pub gids: Vec<u32>,
}

impl Account {
    fn lookup(name: &str) -> Result<Account, String> {
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        let group = std::fs::read_to_string("/etc/group").unwrap_or_default();
        account_from(&passwd, &group, name)
            .ok_or_else(|| format!("service user {name} does not exist"))
    }

    /// This process's own user and groups.
    fn current() -> Account {
        // SAFETY: these calls only read the process's credentials; the buffer is sized by
        // the first getgroups call and the count it fills is respected.
        let (uid, gid, mut gids) = unsafe {
            let n = libc::getgroups(0, std::ptr::null_mut()).max(0);
            let mut gids = vec![0 as libc::gid_t; n as usize];
            let filled = libc::getgroups(n, gids.as_mut_ptr()).max(0);
            gids.truncate(filled as usize);
            (libc::geteuid(), libc::getegid(), gids)
        };
        gids.retain(|g| *g != gid);
        gids.insert(0, gid);
        Account {
            name: user_name(uid),
            uid,
            gids,
        }
    }
}

/// The account `name` from `/etc/passwd` and `/etc/group` texts, with [`SERIAL_GROUP`] added
/// as the unit adds it.
pub fn account_from(passwd: &str, group: &str, name: &str) -> Option<Account> {
    let (uid, primary) = passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 4 && f[0] == name).then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
    })?;
    let mut gids = vec![primary];
    for l in group.lines() {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() < 4 {
            continue;
        }
        let member = f[3].split(',').any(|m| m.trim() == name);
        if (member || f[0] == SERIAL_GROUP)
            && let Ok(gid) = f[2].parse()
            && !gids.contains(&gid)
        {
            gids.push(gid);
        }
    }
    Some(Account {
        name: name.to_string(),
        uid,
        gids,
    })
}

/// The name of group `gid`, or the number.
fn group_name(gid: u32) -> String {
    let group = std::fs::read_to_string("/etc/group").unwrap_or_default();
    group
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 3 && f[2].parse() == Ok(gid)).then(|| f[0].to_string())
        })
        .unwrap_or_else(|| gid.to_string())
}

fn user_name(uid: u32) -> String {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 3 && f[2].parse() == Ok(uid)).then(|| f[0].to_string())
        })
        .unwrap_or_else(|| uid.to_string())
}

/// Read, write and search bits, as in `rwx`.
pub const R: u32 = 4;
pub const W: u32 = 2;
pub const X: u32 = 1;

/// Whether `account` gets every bit of `want` on a file with this owner, group and mode.
/// Root gets everything (it has `CAP_DAC_OVERRIDE`; the unit's root-less service does not).
pub fn may_access(uid: u32, gid: u32, mode: u32, account: &Account, want: u32) -> bool {
    if account.uid == 0 {
        return true;
    }
    let bits = if account.uid == uid {
        (mode >> 6) & 7
    } else if account.gids.contains(&gid) {
        (mode >> 3) & 7
    } else {
        mode & 7
    };
    bits & want == want
}

fn describe(meta: &std::fs::Metadata) -> String {
    format!(
        "{}:{} {:04o}",
        user_name(meta.uid()),
        group_name(meta.gid()),
        meta.mode() & 0o7777
    )
}

fn check_state_dir(dir: &Path, account: Option<&Account>) -> Check {
    let shown = dir.display();
    let user = account.map(|a| a.name.as_str()).unwrap_or(SERVICE_USER);
    let fix_owner =
        format!("sudo install -d -o {user} -g {user} -m 0750 {shown} (or chown {user}: {shown})");
    let meta = match std::fs::metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Check::fail(format!("state dir {shown} does not exist"), fix_owner);
        }
        Err(e) => return Check::fail(format!("state dir {shown}: {e}"), fix_owner),
    };
    if !meta.is_dir() {
        return Check::fail(
            format!("state dir {shown} is not a directory"),
            format!("move it away and run: {fix_owner}"),
        );
    }
    let Some(account) = account else {
        return Check::skip(format!(
            "state dir {shown}: permissions not checked (no service user)"
        ));
    };
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    let writable = if account.uid == euid {
        let probe = dir.join(format!(".pasarela-doctor-{}", std::process::id()));
        let ok = std::fs::write(&probe, b"").is_ok();
        let _ = std::fs::remove_file(&probe);
        ok
    } else {
        may_access(meta.uid(), meta.gid(), meta.mode(), account, W | X)
    };
    if writable {
        Check::ok(format!(
            "state dir {shown} is writable by {} ({})",
            account.name,
            describe(&meta)
        ))
    } else {
        Check::fail(
            format!(
                "state dir {shown} is not writable by {} ({})",
                account.name,
                describe(&meta)
            ),
            fix_owner,
        )
    }
}

async fn check_modem(
    m: &ModemConfig,
    account: Option<&Account>,
    mm_running: bool,
    status: Option<&Result<serde_json::Value, String>>,
    out: &mut Report<'_>,
) {
    let name = &m.name;
    let dev = m.device.display();
    let meta = match std::fs::metadata(&m.device) {
        Ok(meta) => meta,
        Err(e) => {
            let what = if e.kind() == std::io::ErrorKind::NotFound {
                format!("{name}: device {dev} not found (modem unplugged?)")
            } else {
                format!("{name}: device {dev}: {e}")
            };
            out.push(Check::fail(
                what,
                "plug the modem in; if it is, set `device` to its name under /dev/serial/by-id/ \
                 (ls -l /dev/serial/by-id/) and restart",
            ));
            out.push(Check::skip(format!(
                "{name}: modem, SIM and network checks not run (no device)"
            )));
            return;
        }
    };
    match account {
        Some(a) if may_access(meta.uid(), meta.gid(), meta.mode(), a, R | W) => {
            out.push(Check::ok(format!(
                "{name}: {dev} exists and {} can open it ({})",
                a.name,
                describe(&meta)
            )))
        }
        Some(a) => out.push(Check::fail(
            format!(
                "{name}: {} cannot open {dev} ({}) even with group {SERIAL_GROUP}",
                a.name,
                describe(&meta)
            ),
            format!(
                "give the device to group {SERIAL_GROUP} with a udev rule \
                 (SUBSYSTEM==\"tty\", ..., GROUP=\"{SERIAL_GROUP}\", MODE=\"0660\"), or add {} to \
                 group {}",
                a.name,
                group_name(meta.gid())
            ),
        )),
        None => out.push(Check::ok(format!(
            "{name}: {dev} exists ({})",
            describe(&meta)
        ))),
    }
    out.push(check_modem_manager(&m.device, &meta, mm_running));
    match status {
        Some(Ok(status)) => from_daemon(m, status, out),
        Some(Err(e)) => {
            out.push(Check::fail(
                format!("{name}: the daemon runs but its modem state cannot be read: {e}"),
                "check admin.token / admin.token_file, then: journalctl -u pasarela -e",
            ));
        }
        None => {
            let daemons: Vec<Holder> = holders(&m.device)
                .into_iter()
                .filter(Holder::is_daemon)
                .collect();
            if let Some(d) = daemons.first() {
                out.push(Check::fail(
                    format!(
                        "{name}: {dev} is held by pasarela (PID {}) but its admin API does not answer",
                        d.pid
                    ),
                    "sudo systemctl restart pasarela; journalctl -u pasarela -e",
                ));
                out.push(Check::skip(format!(
                    "{name}: SIM and network checks not run (port busy)"
                )));
            } else {
                probe_modem(m, out).await;
            }
        }
    }
}

/// Whether ModemManager leaves the device alone.
fn check_modem_manager(device: &Path, meta: &std::fs::Metadata, running: bool) -> Check {
    let dev = device.display();
    if !running {
        return Check::ok("ModemManager is not running");
    }
    let rdev = meta.rdev();
    let db = format!(
        "/run/udev/data/c{}:{}",
        libc::major(rdev),
        libc::minor(rdev)
    );
    let ignored = std::fs::read_to_string(&db)
        .map(|t| udev_ignores(&t))
        .unwrap_or(false);
    if ignored {
        Check::ok(format!(
            "ModemManager is running and ignores {dev} (ID_MM_DEVICE_IGNORE)"
        ))
    } else {
        Check::fail(
            format!("ModemManager is running and may probe {dev}, which breaks the gateway"),
            "add the modem's USB vendor to a copy of /lib/udev/rules.d/77-pasarela-modemmanager.rules \
             in /etc/udev/rules.d/ and replug it (see the README), or: sudo systemctl disable --now ModemManager",
        )
    }
}

/// Whether a udev database record (`/run/udev/data/c188:0`) tells ModemManager to keep off.
pub fn udev_ignores(record: &str) -> bool {
    record
        .lines()
        .any(|l| matches!(l.trim(), "E:ID_MM_DEVICE_IGNORE=1"))
}

/// A process holding a file open.
#[derive(Debug, Clone)]
pub(crate) struct Holder {
    pid: u32,
    comm: String,
    args: Vec<String>,
}

impl Holder {
    /// The gateway daemon itself (`pasarela run` or `pasarela demo`), not the simulator.
    pub(crate) fn is_daemon(&self) -> bool {
        self.comm == "pasarela" && self.args.iter().any(|a| a == "run" || a == "demo")
    }
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (PID {})", self.comm, self.pid)
    }
}

/// Other processes with `path` open, as far as `/proc` lets this user see.
pub(crate) fn holders(path: &Path) -> Vec<Holder> {
    let Ok(target) = std::fs::canonicalize(path) else {
        return Vec::new();
    };
    let me = std::process::id();
    let mut found = Vec::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return found;
    };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
            continue;
        };
        let holds = fds
            .flatten()
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|t| t == target));
        if holds {
            found.push(process(pid));
        }
    }
    found
}

fn process(pid: u32) -> Holder {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|c| c.trim().to_string())
        .unwrap_or_default();
    let args = std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|c| *c == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .unwrap_or_default();
    Holder { pid, comm, args }
}

fn processes_named(name: &str) -> Vec<u32> {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    procs
        .flatten()
        .filter_map(|p| p.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == name)
        })
        .collect()
}

/// `+CREG` `<stat>` in words (TS 27.007 §7.2).
pub fn registration_word(stat: &str) -> &'static str {
    match stat {
        "1" => "home",
        "5" => "roaming",
        "2" => "searching",
        "3" => "denied",
        "0" => "not registered",
        _ => "unknown",
    }
}

/// The signal line for `AT+CSQ`'s `<rssi>` (99 or out of range: not known).
pub fn signal_check(name: &str, rssi: Option<u8>) -> Check {
    const FIX: &str = "move the modem or its antenna (a USB extension cable helps), away from \
                       the metal rack; check the antenna is screwed on";
    match rssi.and_then(crate::modem::gsm::signal) {
        Some((dbm, "none")) => Check::fail(format!("{name}: signal {dbm} dBm (none)"), FIX),
        Some((dbm, word)) => Check::ok(format!("{name}: signal {dbm} dBm ({word})")),
        None => Check::fail(
            format!(
                "{name}: no signal measured (+CSQ: {})",
                rssi.map_or("?".to_string(), |r| r.to_string())
            ),
            FIX,
        ),
    }
}

fn registration_check(name: &str, word: &str, operator: Option<&str>) -> Check {
    match word {
        "home" | "roaming" => Check::ok(format!(
            "{name}: registered ({word}) on {}",
            operator.unwrap_or("?")
        )),
        "denied" => Check::fail(
            format!("{name}: not registered (denied)"),
            "the operator refuses the SIM: check that its line is active (try it in a phone) \
             or call the operator",
        ),
        other => Check::fail(
            format!("{name}: not registered ({other})"),
            "check the antenna and the signal, and that the SIM has service (try it in a phone); \
             a modem that was just plugged in needs up to a minute",
        ),
    }
}

fn smsc_check(name: &str, smsc: Option<&str>) -> Check {
    match smsc.filter(|s| !s.is_empty()) {
        Some(s) => Check::ok(format!("{name}: SMS centre {s}")),
        None => Check::fail(
            format!("{name}: no SMS centre known"),
            format!(
                "set smsc = \"+…\" in the [[modem]] named {name} (your operator gives the number)"
            ),
        ),
    }
}

/// The SIM line for `+CPIN: <state>`; `true` when the network checks can go on.
fn sim_check(m: &ModemConfig, state: &str) -> (Check, bool) {
    let name = &m.name;
    match state {
        "READY" => (Check::ok(format!("{name}: SIM ready")), true),
        "SIM PIN" if m.pin.is_some() => (
            Check::ok(format!(
                "{name}: SIM locked by its PIN; `pin` is set and the daemon enters it at start"
            )),
            false,
        ),
        "SIM PIN" => (
            Check::fail(
                format!("{name}: the SIM asks for its PIN"),
                format!(
                    "set pin = \"…\" in the [[modem]] named {name}, then sudo systemctl restart pasarela"
                ),
            ),
            false,
        ),
        "SIM PUK" => (
            Check::fail(
                format!("{name}: the SIM is blocked and needs its PUK"),
                "unlock it in a phone with the PUK from the SIM's card, then restart pasarela",
            ),
            false,
        ),
        other => (
            Check::fail(
                format!("{name}: SIM not ready ({other})"),
                "check that the SIM is inserted the right way round, then replug the modem",
            ),
            false,
        ),
    }
}

/// Opens the port and asks the modem itself.
async fn probe_modem(m: &ModemConfig, out: &mut Report<'_>) {
    let name = &m.name;
    let dev = m.device.display();
    let port = match crate::modem::port::open(&m.device, m.baud) {
        Ok(p) => p,
        Err(e) => {
            out.push(Check::fail(
                format!("{name}: cannot open {dev}: {e}"),
                "run doctor as root (sudo pasarela doctor); replug the modem",
            ));
            out.push(Check::skip(format!(
                "{name}: SIM and network checks not run (port not open)"
            )));
            return;
        }
    };
    let mut at = AtPort::new(port);
    let _ = at.write_raw(&[ESC]).await;
    let mut alive = false;
    for _ in 0..3 {
        at.discard_input();
        match at
            .command(&Command::new("AT", None).timeout(Duration::from_secs(1)))
            .await
        {
            Ok(_) => {
                alive = true;
                break;
            }
            Err(e) if e.is_link_failure() => break,
            Err(_) => {}
        }
    }
    if !alive {
        let others: Vec<String> = holders(&m.device).iter().map(|h| h.to_string()).collect();
        let held = if others.is_empty() {
            String::new()
        } else {
            format!("; also open in {}", others.join(", "))
        };
        out.push(Check::fail(
            format!("{name}: the modem does not answer AT on {dev}{held}"),
            format!(
                "replug the modem; check `baud` ({}) and that {dev} is its AT port (some modems \
                 have several: try the others under /dev/serial/by-id/)",
                m.baud
            ),
        ));
        out.push(Check::skip(format!(
            "{name}: SIM and network checks not run (no answer)"
        )));
        return;
    }
    out.push(Check::ok(format!("{name}: modem answers AT ({dev})")));
    let _ = at
        .command(&Command::new("ATE0", None).timeout(AT_TIMEOUT))
        .await;
    let _ = at
        .command(&Command::new("AT+CMEE=1", None).timeout(AT_TIMEOUT))
        .await;

    let cpin = at
        .command(&Command::new("AT+CPIN?", Some("+CPIN:")).timeout(AT_TIMEOUT))
        .await;
    let (sim, go_on) = match cpin {
        Ok(lines) => {
            let state = answer(&lines, "+CPIN:").unwrap_or_default();
            sim_check(m, state.trim())
        }
        Err(AtError::Cme(_, 10)) => (
            Check::fail(
                format!("{name}: no SIM card"),
                "insert the SIM (power the modem off first), then replug it",
            ),
            false,
        ),
        Err(e) => (
            Check::fail(
                format!("{name}: cannot read the SIM state: {e}"),
                "check that the SIM is inserted, then replug the modem",
            ),
            false,
        ),
    };
    out.push(sim);
    if !go_on {
        out.push(Check::skip(format!(
            "{name}: network checks not run (SIM not ready)"
        )));
        return;
    }

    let stat = at
        .command(&Command::new("AT+CREG?", Some("+CREG:")).timeout(AT_TIMEOUT))
        .await
        .ok()
        .and_then(|l| answer(&l, "+CREG:"))
        .and_then(|r| fields(&r).get(1).cloned());
    let operator = at
        .command(&Command::new("AT+COPS?", Some("+COPS:")).timeout(AT_TIMEOUT))
        .await
        .ok()
        .and_then(|l| answer(&l, "+COPS:"))
        .and_then(|r| fields(&r).get(2).cloned())
        .filter(|o| !o.is_empty());
    out.push(registration_check(
        name,
        registration_word(stat.as_deref().unwrap_or("")),
        operator.as_deref(),
    ));

    let rssi = at
        .command(&Command::new("AT+CSQ", Some("+CSQ:")).timeout(AT_TIMEOUT))
        .await
        .ok()
        .and_then(|l| answer(&l, "+CSQ:"))
        .and_then(|r| fields(&r)[0].parse::<u8>().ok());
    out.push(signal_check(name, rssi));

    let smsc = at
        .command(&Command::new("AT+CSCA?", Some("+CSCA:")).timeout(AT_TIMEOUT))
        .await
        .ok()
        .and_then(|l| answer(&l, "+CSCA:"))
        .map(|r| fields(&r)[0].clone());
    let smsc = m.smsc.clone().or(smsc);
    out.push(smsc_check(name, smsc.as_deref()));

    if let Some(code) = &m.balance_ussd {
        let mut held = Vec::new();
        let answer = crate::modem::ussd::exchange(
            &mut at,
            code,
            &[],
            std::time::Duration::from_secs(m.ussd_timeout_secs),
            &mut held,
        )
        .await;
        let (cents, error, text) = match answer {
            Ok(a) => {
                let text = a.text().to_string();
                match m.balance_regex() {
                    Ok(re) => match crate::modem::gsm::read_amount(&re, &text) {
                        Ok(c) => (Some(c), None, Some(text)),
                        Err(why) => (None, Some(why), Some(text)),
                    },
                    Err(why) => (None, Some(format!("balance_pattern: {why}")), Some(text)),
                }
            }
            Err(e) => (None, Some(e.to_string()), None),
        };
        out.push(credit_check(
            m,
            cents,
            error.as_deref(),
            text.as_deref(),
            "asked just now",
        ));
    }
}

/// The prepaid SIM's credit: read, low, or why it could not be read.
fn credit_check(
    m: &ModemConfig,
    cents: Option<i64>,
    error: Option<&str>,
    answer: Option<&str>,
    when: &str,
) -> Check {
    use crate::modem::ussd::format_ars;
    let name = &m.name;
    let code = m.balance_ussd.as_deref().unwrap_or("");
    if let Some(why) = error {
        let answered = answer
            .filter(|a| !a.is_empty())
            .map(|a| format!("; the network answered: {a}"))
            .unwrap_or_default();
        let fix = if why.contains("balance_pattern") {
            format!(
                "make balance_pattern in the [[modem]] named {name} match the answer, with one \
                 capture group around the amount (try: pasarela ussd '{code}')"
            )
        } else {
            format!(
                "check balance_ussd (\"{code}\") with your operator; try it: pasarela ussd '{code}'"
            )
        };
        let last = cents
            .map(|c| format!(" (last known {})", format_ars(c)))
            .unwrap_or_default();
        return Check::warn(
            format!("{name}: cannot read the SIM credit: {why}{answered}{last}"),
            fix,
        );
    }
    let Some(cents) = cents else {
        return Check::skip(format!("{name}: SIM credit not read yet ({code})"));
    };
    match m.balance_alert_below_cents() {
        Some(below) if cents < below => Check::warn(
            format!(
                "{name}: SIM credit {} ({when}), below balance_alert_below {}",
                format_ars(cents),
                format_ars(below)
            ),
            "top up the SIM's credit, or SMS will stop going out",
        ),
        _ => Check::ok(format!("{name}: SIM credit {} ({when})", format_ars(cents))),
    }
}

fn answer(lines: &[String], prefix: &str) -> Option<String> {
    lines
        .iter()
        .find_map(|l| l.strip_prefix(prefix))
        .map(|r| r.trim().to_string())
}

/// The modem as the running daemon reports it in `GET /api/status`.
fn from_daemon(m: &ModemConfig, status: &serde_json::Value, out: &mut Report<'_>) {
    let name = &m.name;
    let dev = m.device.display();
    let transport = status["transports"]
        .as_array()
        .and_then(|ts| ts.iter().find(|t| t["name"] == name.as_str()));
    let Some(t) = transport else {
        out.push(Check::fail(
            format!("{name}: the running daemon has no modem of this name"),
            "the config changed since it started: sudo systemctl restart pasarela",
        ));
        return;
    };
    let d = &t["details"];
    let detail = t["detail"].as_str().unwrap_or("");
    let text = |key: &str| d[key].as_str().map(str::to_string);
    let sim_trouble = detail.contains("SIM") || detail.contains("PIN");
    let answered = text("registration").is_some() || text("manufacturer").is_some() || sim_trouble;
    if !answered {
        let fix = if detail.contains("not found") {
            "plug the modem in; if it is, set `device` to its name under /dev/serial/by-id/ and restart"
        } else {
            "replug the modem; the daemon retries on its own. Its log: journalctl -u pasarela -e"
        };
        out.push(Check::fail(
            format!("{name}: {detail} (reported by the running daemon)"),
            fix,
        ));
        out.push(Check::skip(format!(
            "{name}: SIM and network checks not run (no answer)"
        )));
        return;
    }
    out.push(Check::ok(format!(
        "{name}: modem answers AT ({dev}, held by the running daemon)"
    )));
    if sim_trouble && t["up"] != true {
        out.push(Check::fail(
            format!("{name}: {detail}"),
            format!(
                "fix `pin` in the [[modem]] named {name} or the SIM, then sudo systemctl restart pasarela"
            ),
        ));
        out.push(Check::skip(format!(
            "{name}: network checks not run (SIM not ready)"
        )));
        return;
    }
    out.push(Check::ok(format!("{name}: SIM ready")));
    let registration = text("registration").unwrap_or_else(|| "unknown".into());
    out.push(registration_check(
        name,
        &registration,
        text("operator").as_deref(),
    ));
    out.push(match (d["signal_dbm"].as_i64(), d["signal"].as_str()) {
        (Some(dbm), Some("none")) => Check::fail(
            format!("{name}: signal {dbm} dBm (none)"),
            "move the modem or its antenna (a USB extension cable helps), away from the metal rack",
        ),
        (Some(dbm), Some(word)) => Check::ok(format!("{name}: signal {dbm} dBm ({word})")),
        _ => signal_check(name, None),
    });
    out.push(smsc_check(name, text("smsc").as_deref()));
    if m.balance_ussd.is_some() {
        let b = &d["balance"];
        let when = b["checked_at"]
            .as_str()
            .map(|t| format!("read {t}"))
            .unwrap_or_else(|| "not read yet".to_string());
        out.push(credit_check(
            m,
            b["cents"].as_i64(),
            b["error"].as_str(),
            b["answer"].as_str(),
            &when,
        ));
    }
}

async fn admin_health(base: &str, admin_cert: Option<&Path>) -> Result<String, String> {
    let client = http(admin_cert)?;
    let response = client
        .get(format!("{base}/api/health"))
        .send()
        .await
        .map_err(|e| {
            if e.is_connect() {
                "connection refused (is pasarela running? systemctl status pasarela)".to_string()
            } else {
                e.to_string()
            }
        })?;
    if !response.status().is_success() {
        return Err(format!("it answered {}", response.status()));
    }
    let body: serde_json::Value = response.json().await.map_err(|e| e.to_string())?;
    match body["version"].as_str() {
        Some(v) if body["status"] == "ok" => Ok(v.to_string()),
        _ => Err("something else listens there (not pasarela)".to_string()),
    }
}

async fn daemon_status(loaded: &Loaded, base: &str) -> Result<serde_json::Value, String> {
    let token = loaded
        .admin_token()
        .map_err(|e| e.to_string())?
        .ok_or("no admin token in the config")?;
    let response = http(loaded.config.admin.tls_cert.as_deref())?
        .get(format!("{base}/api/status"))
        .bearer_auth(token.expose())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("GET /api/status answered {}", response.status()));
    }
    response.json().await.map_err(|e| e.to_string())
}

fn http(admin_cert: Option<&Path>) -> Result<reqwest::Client, String> {
    crate::net::http::admin_client(admin_cert, HTTP_TIMEOUT)
}

/// A certificate expiring within this long gets a WARN: time to renew before phones refuse it.
const CERT_WARN_SECS: i64 = 14 * 86_400;

/// `[whatsapp]`: the access token works (`GET /{phone_number_id}`, the channel's own health
/// call); names the number and its quality rating.
async fn check_whatsapp_token(w: &crate::config::WhatsappConfig) -> Check {
    let fix = "renew the token in Meta's Business settings (System users), then set \
               whatsapp.access_token or whatsapp.access_token_file";
    let token = match crate::transport::whatsapp::read_token(w) {
        Ok(t) => t,
        Err(e) => return Check::fail(e, fix),
    };
    let http = match crate::net::http::client(
        &crate::net::http::ClientOptions::new(Duration::from_secs(10))
            .ca_file(w.ca_file.as_deref()),
    ) {
        Ok(c) => c,
        Err(e) => return Check::fail(format!("whatsapp.ca_file: {e}"), "fix whatsapp.ca_file"),
    };
    let url = format!(
        "{}/{}/{}?fields=display_phone_number,verified_name,quality_rating",
        w.base_url.trim_end_matches('/'),
        w.api_version,
        w.phone_number_id
    );
    let resp = match http.get(&url).bearer_auth(&token).send().await {
        Ok(r) => r,
        Err(e) => {
            return Check::fail(
                format!("WhatsApp: {}", crate::net::error::describe(&w.base_url, &e)),
                "check whatsapp.base_url and this box's internet access",
            );
        }
    };
    let status = resp.status().as_u16();
    let body = crate::net::http::read_capped(resp, 64 * 1024)
        .await
        .unwrap_or_default();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    if (200..300).contains(&status) {
        let name = json["verified_name"].as_str().unwrap_or("?");
        let number = json["display_phone_number"].as_str().unwrap_or("?");
        let quality = json["quality_rating"].as_str().unwrap_or("unknown");
        return Check::ok(format!(
            "WhatsApp token works: {name} ({number}), quality {quality}"
        ));
    }
    let code = json["error"]["code"].as_i64().unwrap_or(0);
    let said = crate::net::error::sanitize(json["error"]["message"].as_str().unwrap_or(""));
    if code == 190 {
        Check::fail(
            format!("WhatsApp refused the access token (190): {said}"),
            fix,
        )
    } else {
        Check::fail(
            format!("WhatsApp answered HTTP {status} (error {code}): {said}"),
            "check whatsapp.phone_number_id and the token's permissions (whatsapp_business_messaging)",
        )
    }
}

/// `[whatsapp]` needs the `[webhooks]` listener, and it answers at `/webhooks/whatsapp`.
async fn check_webhook_listener(cfg: &crate::config::Config) -> Check {
    let Some(listen) = &cfg.webhooks.listen else {
        return Check::fail(
            "WhatsApp webhooks have no listener: [webhooks] listen is not set",
            "set [webhooks] listen (and tls_cert/tls_key, or a reverse proxy with a public \
             certificate) and give Meta https://<your host>/webhooks/whatsapp",
        );
    };
    let scheme = if cfg.webhooks.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    let host = listen.replace("0.0.0.0", "127.0.0.1");
    let url = format!("{scheme}://{host}/webhooks/whatsapp?hub.mode=subscribe");
    let http = match crate::net::http::admin_client(
        cfg.webhooks.tls_cert.as_deref(),
        Duration::from_secs(5),
    ) {
        Ok(c) => c,
        Err(e) => return Check::fail(format!("webhooks.tls_cert: {e}"), "fix webhooks.tls_cert"),
    };
    match http.get(&url).send().await {
        // The handshake without the verify token is refused: the route is there.
        Ok(r) if r.status().as_u16() == 403 => Check::ok(format!(
            "WhatsApp webhook route answers on {scheme}://{host}/webhooks/whatsapp"
        )),
        Ok(r) => Check::fail(
            format!(
                "{scheme}://{host}/webhooks/whatsapp answered HTTP {}",
                r.status().as_u16()
            ),
            "is another program on webhooks.listen? restart pasarela",
        ),
        Err(e) => Check::fail(
            format!(
                "the webhook listener does not answer: {}",
                crate::net::error::describe(&url, &e)
            ),
            "sudo systemctl start pasarela, then journalctl -u pasarela -e",
        ),
    }
}

/// The expiry of a listener's certificate (`section` is `webhooks` or `admin`): WARN within 14
/// days, FAIL once expired.
fn check_certificate(section: &str, path: &Path, now: i64) -> Check {
    const RENEW: &str = "renew it (certbot renew, or your CA), then sudo systemctl reload pasarela";
    let shown = path.display();
    let not_after = crate::net::tls::load_certs(path).and_then(|certs| {
        crate::net::tls::not_after(&certs[0])
            .ok_or_else(|| format!("cannot read the expiry date of {shown}"))
    });
    match not_after {
        Err(e) => Check::fail(
            format!("{section}.tls_cert: {e}"),
            "point it at the PEM certificate chain (e.g. fullchain.pem)",
        ),
        Ok(t) => {
            let date = chrono::DateTime::from_timestamp(t, 0)
                .map(|d| d.format("%Y-%m-%d").to_string())
                .unwrap_or_default();
            let days = (t - now).div_euclid(86_400);
            if t <= now {
                Check::fail(
                    format!("{section}.tls_cert {shown} expired on {date}"),
                    RENEW,
                )
            } else if t - now < CERT_WARN_SECS {
                Check::warn(
                    format!("{section}.tls_cert {shown} expires in {days} day(s), on {date}"),
                    RENEW,
                )
            } else {
                Check::ok(format!(
                    "{section}.tls_cert {shown} is valid until {date} ({days} days)"
                ))
            }
        }
    }
}

fn check_journal() -> Check {
    let path = std::env::var_os(crate::logging::JOURNAL_SOCKET_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(crate::logging::JOURNAL_SOCKET));
    let shown = path.display();
    let connected = std::os::unix::net::UnixDatagram::unbound().and_then(|s| s.connect(&path));
    match connected {
        Ok(()) => Check::ok(format!("journald reachable ({shown})")),
        Err(e) => Check::fail(
            format!("journald not reachable at {shown}: {e}"),
            "systemctl status systemd-journald; until it is back pasarela logs to stderr",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificates_expiring_within_14_days_get_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["gw.isp.example".to_string()]).unwrap();
        params.not_after = rcgen::date_time_ymd(2027, 3, 15);
        let path = dir.path().join("fullchain.pem");
        std::fs::write(&path, params.self_signed(&key).unwrap().pem()).unwrap();
        let day = 86_400;
        let expiry = 1_805_068_800; // 2027-03-15T00:00:00Z
        let at = |now: i64| check_certificate("webhooks", &path, now);
        assert_eq!(at(expiry - 90 * day).outcome, Outcome::Ok);
        let soon = at(expiry - 5 * day);
        assert!(matches!(soon.outcome, Outcome::Warn { .. }), "{soon}");
        assert!(!soon.failed());
        assert!(
            soon.to_string().starts_with(&format!(
                "WARN webhooks.tls_cert {} expires in 5 day(s), on 2027-03-15",
                path.display()
            )),
            "{soon}"
        );
        assert!(at(expiry + day).failed());
        assert!(check_certificate("admin", &dir.path().join("none.pem"), 0).failed());
    }

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n\
                          pasarela:x:998:997:pasarela:/var/lib/pasarela:/usr/sbin/nologin\n";
    const GROUP: &str =
        "root:x:0:\ndialout:x:20:pi\ntty:x:5:\npasarela:x:997:\nsms:x:30:pasarela,pi\n";

    #[test]
    fn account_has_its_groups_and_dialout() {
        let a = account_from(PASSWD, GROUP, "pasarela").unwrap();
        assert_eq!(a.uid, 998);
        assert_eq!(a.gids, vec![997, 20, 30]);
        assert!(account_from(PASSWD, GROUP, "nobody-here").is_none());
    }

    #[test]
    fn permission_bits_follow_owner_group_other() {
        let a = account_from(PASSWD, GROUP, "pasarela").unwrap();
        // crw-rw---- root:dialout, as udev makes /dev/ttyUSB0
        assert!(may_access(0, 20, 0o20660, &a, R | W));
        // crw--w---- root:tty: no read for the group
        assert!(!may_access(0, 5, 0o20620, &a, R | W));
        // drwxr-x--- pasarela:pasarela
        assert!(may_access(998, 997, 0o40750, &a, W | X));
        // drwxr-x--- root:pasarela: the group cannot write
        assert!(!may_access(0, 997, 0o40750, &a, W | X));
        let root = account_from(PASSWD, GROUP, "root").unwrap();
        assert!(may_access(5, 5, 0o40000, &root, R | W | X));
    }

    #[test]
    fn udev_record_ignore_flag() {
        assert!(udev_ignores(
            "S:serial/by-id/x\nE:ID_MM_DEVICE_IGNORE=1\nG:systemd\n"
        ));
        assert!(!udev_ignores("E:ID_MM_CANDIDATE=1\n"));
        assert!(!udev_ignores("E:ID_MM_DEVICE_IGNORE=0\n"));
    }

    #[test]
    fn signal_lines_give_dbm_and_a_word() {
        assert_eq!(
            signal_check("m", Some(20)).to_string(),
            "ok   m: signal -73 dBm (excellent)"
        );
        assert_eq!(
            signal_check("m", Some(12)).to_string(),
            "ok   m: signal -89 dBm (fair)"
        );
        assert!(signal_check("m", Some(0)).failed());
        let unknown = signal_check("m", Some(99));
        assert!(unknown.failed());
        assert!(unknown.to_string().contains("+CSQ: 99"), "{unknown}");
    }

    #[test]
    fn registration_words() {
        assert_eq!(registration_word("1"), "home");
        assert_eq!(registration_word("5"), "roaming");
        assert!(registration_check("m", registration_word("2"), None).failed());
        assert!(!registration_check("m", "roaming", Some("Claro")).failed());
    }

    #[test]
    fn sim_states() {
        let mut m = ModemConfig::new("m", PathBuf::from("/dev/ttyUSB0"));
        assert_eq!(sim_check(&m, "READY"), (Check::ok("m: SIM ready"), true));
        let (c, go) = sim_check(&m, "SIM PIN");
        assert!(c.failed() && !go);
        assert!(c.to_string().contains("fix: set pin"), "{c}");
        m.pin = Some(crate::config::Secret::new("1234"));
        let (c, go) = sim_check(&m, "SIM PIN");
        assert!(!c.failed() && !go, "{c}");
        assert!(sim_check(&m, "SIM PUK").0.failed());
    }

    #[test]
    fn lines_have_the_documented_shape() {
        assert_eq!(Check::ok("x").to_string(), "ok   x");
        assert_eq!(Check::fail("x", "y").to_string(), "FAIL x  → fix: y");
        assert_eq!(Check::skip("x").to_string(), "--   x");
    }
}
