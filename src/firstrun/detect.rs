//! `pasarela setup detect`: finds the GSM modems on this box and says which port of each to use.
//!
//! Contracts:
//! - It never types a SIM PIN: it only reads `AT+CPIN?`.
//! - It never touches a port the daemon holds: a port a `pasarela run`/`demo` process has open
//!   is listed as in use without being opened, and every other port is opened exclusively
//!   (as the daemon does), so a port someone else holds is refused and listed as in use.
//! - It never hangs: each port gets `timeout` to answer `AT`, each later command a few seconds.
//! - A stick with several ports (a Huawei shows three) gets one recommendation: the port that
//!   answers AT and takes the SMS notices (`AT+CNMI`), so `+CMTI` is announced there, and not
//!   the status port that chatters vendor codes (`^RSSI`, `^MODE`).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::modem::at::{Command, Urc, fields};
use crate::modem::driver::{AtError, AtPort};

/// Each later command's wait (a modem busy searching the network answers slowly).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(3);
/// The speed probed: what every USB modem's AT port takes.
const BAUD: u32 = 115200;

/// What a probe learnt about a modem that answered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModemInfo {
    pub maker: String,
    pub model: String,
    pub imei: String,
    /// `READY`, `SIM PIN`, `SIM PUK`, `no SIM`…
    pub sim: String,
    pub operator: Option<String>,
    /// dBm and its word (`good`).
    pub signal: Option<(i32, &'static str)>,
    /// The port takes `AT+CNMI`: new-message notices (`+CMTI`) can be routed to it.
    pub sms_notices: bool,
    /// Vendor status codes it sent unasked (`^RSSI:17`): a stick's status port.
    pub chatter: Vec<String>,
}

/// The result for one port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Modem(ModemInfo),
    /// Opened, but no `OK` to `AT` within the timeout.
    NoAnswer(Duration),
    /// Another process has it (the daemon, ModemManager…); it was left alone.
    InUse(String),
    CannotOpen(String),
}

/// One port probed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    /// The name to put in the config: the stable `/dev/serial/by-id/…` link when there is one.
    pub path: PathBuf,
    /// The device it is (`/dev/ttyUSB0`), when that differs from `path`.
    pub device: Option<PathBuf>,
    pub outcome: Outcome,
}

/// Which port of one modem to use, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub imei: String,
    pub path: PathBuf,
    pub why: String,
}

/// The ports to probe: the given ones, or every serial device a modem shows up as. A device
/// with a `/dev/serial/by-id/` link is listed once, by that link.
pub fn candidates(given: &[PathBuf]) -> Vec<(PathBuf, Option<PathBuf>)> {
    let by_id = by_id_links();
    let named = |dev: PathBuf| -> (PathBuf, Option<PathBuf>) {
        let real = std::fs::canonicalize(&dev).unwrap_or_else(|_| dev.clone());
        match by_id.iter().find(|(_, r)| *r == real) {
            Some((link, _)) if *link != dev => (link.clone(), Some(real)),
            _ if real != dev => (dev, Some(real)),
            _ => (dev, None),
        }
    };
    if !given.is_empty() {
        return given.iter().cloned().map(named).collect();
    }
    let mut out: Vec<(PathBuf, Option<PathBuf>)> = by_id
        .iter()
        .map(|(link, real)| (link.clone(), Some(real.clone())))
        .collect();
    let mut devices: Vec<PathBuf> = std::fs::read_dir("/dev")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                ["ttyUSB", "ttyACM", "ttyAMA"].iter().any(|prefix| {
                    n.strip_prefix(prefix).is_some_and(|rest| {
                        !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit())
                    })
                })
            })
        })
        .collect();
    devices.sort_by_key(|p| device_order(p));
    for dev in devices {
        if !out
            .iter()
            .any(|(_, real)| real.as_deref() == Some(dev.as_path()))
        {
            out.push((dev, None));
        }
    }
    out
}

/// `/dev/ttyUSB10` after `/dev/ttyUSB9`.
fn device_order(p: &Path) -> (String, u32) {
    let name = p.to_string_lossy();
    let digits = name.len() - name.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    let (stem, num) = name.split_at(name.len() - digits);
    (stem.to_string(), num.parse().unwrap_or(0))
}

/// `/dev/serial/by-id/*` with the device each points to.
fn by_id_links() -> Vec<(PathBuf, PathBuf)> {
    let mut links: Vec<(PathBuf, PathBuf)> = std::fs::read_dir("/dev/serial/by-id")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let link = e.path();
            let real = std::fs::canonicalize(&link).ok()?;
            Some((link, real))
        })
        .collect();
    links.sort();
    links
}

/// Probes each candidate in turn.
pub async fn detect(given: &[PathBuf], timeout: Duration) -> Vec<Port> {
    let mut out = Vec::new();
    for (path, device) in candidates(given) {
        let outcome = probe(&path, timeout).await;
        out.push(Port {
            path,
            device,
            outcome,
        });
    }
    out
}

/// Asks the modem at `path` who it is, leaving a port someone holds alone.
pub async fn probe(path: &Path, timeout: Duration) -> Outcome {
    let holders = crate::doctor::holders(path);
    if let Some(d) = holders.iter().find(|h| h.is_daemon()) {
        return Outcome::InUse(format!("by the pasarela daemon, {d}"));
    }
    let port = match crate::modem::port::open(path, BAUD) {
        Ok(p) => p,
        Err(e) if e.kind() == std::io::ErrorKind::ResourceBusy => {
            let names: Vec<String> = holders.iter().map(|h| h.to_string()).collect();
            return Outcome::InUse(if names.is_empty() {
                "by another program".to_string()
            } else {
                format!("by {}", names.join(", "))
            });
        }
        Err(e) => return Outcome::CannotOpen(e.to_string()),
    };
    let mut at = AtPort::new(port);
    match tokio::time::timeout(timeout, answers_at(&mut at)).await {
        Ok(true) => {}
        Ok(false) | Err(_) => return Outcome::NoAnswer(timeout),
    }
    Outcome::Modem(identify(&mut at).await)
}

/// `AT` until `OK` (a modem may drop the first one while it wakes); false on a dead link.
async fn answers_at<P>(at: &mut AtPort<P>) -> bool
where
    P: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        at.discard_input();
        match at
            .command(&Command::new("AT", None).timeout(Duration::from_millis(700)))
            .await
        {
            Ok(_) => return true,
            Err(e) if e.is_link_failure() => return false,
            Err(_) => {}
        }
    }
}

async fn ask<P>(
    at: &mut AtPort<P>,
    text: &str,
    prefix: Option<&'static str>,
) -> Result<Vec<String>, AtError>
where
    P: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    at.command(&Command::new(text, prefix).timeout(COMMAND_TIMEOUT))
        .await
}

/// The first information line of an identity command (`AT+CGMI` answers a bare line).
fn ident(lines: Result<Vec<String>, AtError>, prefix: &str) -> String {
    lines
        .ok()
        .and_then(|l| {
            l.iter().map(|s| s.trim()).find(|s| !s.is_empty()).map(|s| {
                s.strip_prefix(prefix)
                    .unwrap_or(s)
                    .trim()
                    .trim_matches('"')
                    .to_string()
            })
        })
        .unwrap_or_else(|| "?".to_string())
}

fn answer(lines: &[String], prefix: &str) -> Option<String> {
    lines
        .iter()
        .find_map(|l| l.strip_prefix(prefix))
        .map(|r| r.trim().to_string())
}

/// Maker, model, IMEI, SIM state, operator, signal and whether SMS notices can come here.
async fn identify<P>(at: &mut AtPort<P>) -> ModemInfo
where
    P: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let _ = ask(at, "ATE0", None).await;
    let _ = ask(at, "AT+CMEE=1", None).await;
    let maker = ident(ask(at, "AT+CGMI", None).await, "+CGMI:");
    let model = ident(ask(at, "AT+CGMM", None).await, "+CGMM:");
    let imei = ident(ask(at, "AT+CGSN", None).await, "+CGSN:");
    // Read only: a PIN is never typed here.
    let sim = match ask(at, "AT+CPIN?", Some("+CPIN:")).await {
        Ok(lines) => answer(&lines, "+CPIN:").unwrap_or_else(|| "?".into()),
        Err(AtError::Cme(_, 10)) => "no SIM".to_string(),
        Err(e) => format!("unknown ({e})"),
    };
    let operator = ask(at, "AT+COPS?", Some("+COPS:"))
        .await
        .ok()
        .and_then(|l| answer(&l, "+COPS:"))
        .and_then(|r| fields(&r).get(2).cloned())
        .filter(|o| !o.is_empty());
    let signal = ask(at, "AT+CSQ", Some("+CSQ:"))
        .await
        .ok()
        .and_then(|l| answer(&l, "+CSQ:"))
        .and_then(|r| fields(&r).first()?.parse::<u8>().ok())
        .and_then(crate::modem::gsm::signal);
    let sms_notices = ask(at, "AT+CNMI=?", Some("+CNMI:")).await.is_ok();
    let chatter = at
        .take_urcs()
        .into_iter()
        .filter_map(|u| match u {
            Urc::Vendor(line) => Some(line),
            _ => None,
        })
        .collect();
    ModemInfo {
        maker,
        model,
        imei,
        sim,
        operator,
        signal,
        sms_notices,
        chatter,
    }
}

/// The SIM state in words, and what to do about it.
fn sim_words(state: &str) -> String {
    match state {
        "READY" => "SIM ready".to_string(),
        "SIM PIN" => {
            "SIM asks for its PIN (not typed here; give it to `pasarela setup`)".to_string()
        }
        "SIM PUK" => "SIM blocked: needs its PUK (unlock it in a phone)".to_string(),
        "no SIM" => "no SIM".to_string(),
        other => format!("SIM {other}"),
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(d) = &self.device {
            write!(f, " ({})", d.display())?;
        }
        match &self.outcome {
            Outcome::Modem(m) => {
                write!(
                    f,
                    ": {} {}, IMEI {}, {}, operator {}, signal ",
                    m.maker,
                    m.model,
                    m.imei,
                    sim_words(&m.sim),
                    m.operator.as_deref().unwrap_or("none")
                )?;
                match m.signal {
                    Some((dbm, word)) => write!(f, "{dbm} dBm ({word})"),
                    None => write!(f, "unknown"),
                }
            }
            Outcome::NoAnswer(t) => write!(
                f,
                ": no answer to AT within {:.1} s (not a modem, or not its AT port)",
                t.as_secs_f64()
            ),
            Outcome::InUse(by) => write!(f, ": in use {by}; left alone"),
            Outcome::CannotOpen(e) => write!(f, ": cannot open: {e}"),
        }
    }
}

/// For each modem (ports answering with the same IMEI), the port to use and why.
pub fn choose(ports: &[Port]) -> Vec<Choice> {
    let mut by_imei: BTreeMap<&str, Vec<(&Port, &ModemInfo)>> = BTreeMap::new();
    for p in ports {
        if let Outcome::Modem(m) = &p.outcome {
            by_imei.entry(m.imei.as_str()).or_default().push((p, m));
        }
    }
    let mut out = Vec::new();
    for (imei, mut group) in by_imei {
        // Notices first, quiet before chattering, then the stick's first interface.
        group.sort_by_key(|(p, m)| {
            (
                !m.sms_notices,
                !m.chatter.is_empty(),
                interface_number(&p.path),
                p.path.clone(),
            )
        });
        let (best, info) = group[0];
        let mut why = if info.sms_notices {
            "it answers AT and takes the SMS notices (AT+CNMI), so +CMTI is announced there"
                .to_string()
        } else {
            "it answers AT (it does not take AT+CNMI: received SMS are found by the periodic sweep)"
                .to_string()
        };
        for (p, m) in &group[1..] {
            let reason = if !m.chatter.is_empty() {
                format!(
                    "sends status codes unasked ({}): the stick's status port",
                    m.chatter[0]
                )
            } else if !m.sms_notices {
                "does not take AT+CNMI".to_string()
            } else {
                "is another AT port of the same modem".to_string()
            };
            why.push_str(&format!("; {} {reason}", p.path.display()));
        }
        for p in ports {
            if matches!(p.outcome, Outcome::NoAnswer(_)) && same_stick(&p.path, &best.path) {
                why.push_str(&format!(
                    "; {} does not answer AT (a data or diagnostics port)",
                    p.path.display()
                ));
            }
        }
        out.push(Choice {
            imei: imei.to_string(),
            path: best.path.clone(),
            why,
        });
    }
    out
}

/// The USB interface of a by-id name (`…-if02-port0` → 2); others sort after.
fn interface_number(path: &Path) -> u32 {
    let name = path.to_string_lossy();
    name.rfind("-if")
        .and_then(|i| name[i + 3..].get(..2))
        .and_then(|n| n.parse().ok())
        .unwrap_or(u32::MAX)
}

/// Two by-id names of one USB device differ only in `-ifNN-portN`.
fn same_stick(a: &Path, b: &Path) -> bool {
    let stem = |p: &Path| {
        let s = p.to_string_lossy().into_owned();
        s.rfind("-if").map(|i| s[..i].to_string())
    };
    matches!((stem(a), stem(b)), (Some(x), Some(y)) if x == y)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn modem(path: &str, notices: bool, chatter: &[&str]) -> Port {
        Port {
            path: PathBuf::from(path),
            device: None,
            outcome: Outcome::Modem(ModemInfo {
                maker: "huawei".into(),
                model: "E3372".into(),
                imei: "861234567890123".into(),
                sim: "READY".into(),
                operator: Some("Personal".into()),
                signal: Some((-73, "good")),
                sms_notices: notices,
                chatter: chatter.iter().map(|s| s.to_string()).collect(),
            }),
        }
    }

    #[test]
    fn a_stick_with_three_ports_gets_its_at_port_with_the_reason() {
        let stick = "/dev/serial/by-id/usb-HUAWEI_Mobile_HUAWEI_Mobile-";
        let ports = vec![
            modem(&format!("{stick}if02-port0"), true, &["^RSSI:17"]),
            Port {
                path: PathBuf::from(format!("{stick}if01-port0")),
                device: None,
                outcome: Outcome::NoAnswer(Duration::from_secs(2)),
            },
            modem(&format!("{stick}if00-port0"), true, &[]),
        ];
        let choices = choose(&ports);
        assert_eq!(choices.len(), 1);
        assert_eq!(choices[0].path, PathBuf::from(format!("{stick}if00-port0")));
        let why = &choices[0].why;
        assert!(why.contains("takes the SMS notices"), "{why}");
        assert!(
            why.contains("if02-port0 sends status codes unasked (^RSSI:17)"),
            "{why}"
        );
        assert!(why.contains("if01-port0 does not answer AT"), "{why}");
    }

    #[test]
    fn notices_win_over_the_interface_order() {
        let ports = vec![
            modem("/dev/ttyUSB0", false, &[]),
            modem("/dev/ttyUSB2", true, &[]),
        ];
        let choices = choose(&ports);
        assert_eq!(choices[0].path, PathBuf::from("/dev/ttyUSB2"));
        assert!(
            choices[0]
                .why
                .contains("/dev/ttyUSB0 does not take AT+CNMI")
        );
    }

    #[test]
    fn lines_name_every_field() {
        let line = modem("/dev/ttyUSB0", true, &[]).to_string();
        assert_eq!(
            line,
            "/dev/ttyUSB0: huawei E3372, IMEI 861234567890123, SIM ready, operator Personal, signal -73 dBm (good)"
        );
        assert!(device_order(Path::new("/dev/ttyUSB10")) > device_order(Path::new("/dev/ttyUSB9")));
    }
}
