//! One GSM modem: the task that owns its port and everything it does — start-up, sending,
//! receiving, status reports, health checks and recovery — and the [`GsmTransport`] the
//! dispatcher sends through.
//!
//! Receiving follows one rule: read a message, commit it to the store, and only then delete it
//! from the SIM. New messages are announced by `+CMTI` (no polling); a sweep with `AT+CMGL=4`
//! at start and every few minutes picks up anything missed, and empties a full SIM the same way.
//!
//! Recovery: a command that times out is followed by a probe (`AT`); no answer, or a port that
//! fails (USB unplugged), closes the session, and the task waits for the device to come back
//! (also under `/dev/serial/by-id/…`), reopens it with backoff and runs start-up again.
//! A SIM PIN is tried at most once per configured value and SIM: a PIN the SIM rejects
//! (`+CME ERROR: 16`) is remembered in the keyed state under a hash of the PIN and the SIM's
//! ICCID, and never retried on that SIM until the operator changes it (three wrong PINs lock a
//! SIM). A timeout is not a rejection. The PIN never appears in errors or logs (`****`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};

use super::at::{Command, Urc, fields};
use super::driver::{AtError, AtPort};
use super::ussd::{self, ExchangeError, UssdAnswer, UssdError};
use crate::config::ModemConfig;
use crate::logging::peer as shown_peer;
use crate::model::{InboundSms, NewInbound, PartStatus, Received};
use crate::phone::PhoneContext;
use crate::shutdown::Shutdown;
use crate::sms::{self, AddressKind, DecodedPdu};
use crate::transport::kind::{BuildContext, Built, Kind, Task};
use crate::transport::sink::SinkError;
use crate::transport::{
    BoxFuture, Channel, Health, Outgoing, SendReceipt, Sink, Transport, TransportError,
};

/// The registration state in the answer to `AT+CREG?` (`+CREG: <n>,<stat>[,<lac>,<ci>[,<AcT>]]`).
/// The unsolicited form (`+CREG: <stat>[,<lac>,<ci>[,<AcT>]]`) can arrive while the question is
/// in flight and carries the same prefix; its second field, when it has one, is a quoted area
/// code, never a one-digit state, so it is told apart and skipped rather than read as "unknown".
fn registration_stat(lines: &[String]) -> Option<String> {
    lines.iter().rev().find_map(|l| {
        let f = fields(l.strip_prefix("+CREG:")?);
        let stat = f.get(1)?;
        (f[0].len() == 1 && stat.len() == 1 && stat.bytes().all(|b| b.is_ascii_digit()))
            .then(|| stat.clone())
    })
}

/// The answer to an identity query (`AT+CGMI`…): its last line with a letter or digit in it.
/// Stray bytes before the answer (line noise, a cut-off unsolicited code) are not an identity.
fn identity_line(lines: Vec<String>) -> Option<String> {
    lines
        .into_iter()
        .rev()
        .find(|l| l.bytes().any(|b| b.is_ascii_alphanumeric()))
}

/// One part may take this long between `AT+CMGS` and `+CMGS:` (the network's round trip).
const SUBMIT_TIMEOUT: Duration = Duration::from_secs(60);
/// Long messages missing parts this long are stored as incomplete.
const INCOMPLETE_AFTER_MS: i64 = 24 * 3600 * 1000;
const RECONNECT_MAX: Duration = Duration::from_secs(30);
/// How soon the registration is asked again while the modem is not registered.
const NOT_REGISTERED_RECHECK: Duration = Duration::from_secs(5);

/// What the status page and `GET /api/status` show of a modem.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ModemStatus {
    pub up: bool,
    pub detail: String,
    pub signal_dbm: Option<i32>,
    pub signal: Option<&'static str>,
    pub registration: Option<String>,
    pub operator: Option<String>,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub revision: Option<String>,
    pub imei: Option<String>,
    pub imsi: Option<String>,
    pub smsc: Option<String>,
    /// The prepaid SIM's credit, when `balance_ussd` is set.
    pub balance: Option<SimBalance>,
}

/// The SIM's credit as the last `balance_ussd` answer gave it.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct SimBalance {
    /// Pesos with two decimals (`"1234.50"`), from the last answer that matched.
    pub amount: Option<String>,
    /// The same in cents.
    pub cents: Option<i64>,
    /// As operators write it: `$ 1.234,50`.
    pub shown: Option<String>,
    /// When it was read (RFC 3339).
    pub checked_at: Option<String>,
    #[serde(skip)]
    pub checked_at_ms: Option<i64>,
    /// `balance_alert_below`, pesos.
    pub alert_below: Option<String>,
    /// Why the last check failed (timeout, `+CUSD: 2`, pattern mismatch); the amount is then
    /// the last known one.
    pub error: Option<String>,
    /// The network's last answer, as text.
    pub answer: Option<String>,
}

struct UssdJob {
    code: String,
    replies: Vec<String>,
    reply: oneshot::Sender<Result<UssdAnswer, UssdError>>,
}

struct SendJob {
    message: Outgoing,
    reply: oneshot::Sender<Result<SendReceipt, TransportError>>,
}

/// The dispatcher's side of a modem.
pub struct GsmTransport {
    name: String,
    jobs: mpsc::Sender<SendJob>,
    ussd: mpsc::Sender<UssdJob>,
    status: Arc<Mutex<ModemStatus>>,
}

impl GsmTransport {
    pub fn status(&self) -> ModemStatus {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Runs a USSD session on the modem between its other work: `code`, then each reply
    /// while the network shows a menu.
    pub async fn ussd(&self, code: &str, replies: &[String]) -> Result<UssdAnswer, UssdError> {
        ussd::check_request(code, true)
            .map_err(|why| UssdError::Invalid(format!("code: {why}")))?;
        for (i, r) in replies.iter().enumerate() {
            ussd::check_request(r, false)
                .map_err(|why| UssdError::Invalid(format!("replies[{i}]: {why}")))?;
        }
        let (reply, answer) = oneshot::channel();
        let gone = || UssdError::Unavailable(format!("{} is not running", self.name));
        self.ussd
            .send(UssdJob {
                code: code.to_string(),
                replies: replies.to_vec(),
                reply,
            })
            .await
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

impl Transport for GsmTransport {
    fn name(&self) -> &str {
        &self.name
    }

    fn channel(&self) -> Channel {
        Channel::Sms
    }

    /// The modem sends one message at a time; the second slot lets the next message wait in
    /// the task's queue so the modem never idles while the database records the previous one
    /// (a reply handed over on the dispatcher's reply slot goes ahead of it). Only the message
    /// actually in the modem can be sent twice after a crash.
    fn capacity(&self) -> usize {
        2
    }

    fn health(&self) -> Health {
        let s = self.status();
        Health {
            up: s.up,
            detail: s.detail,
        }
    }

    fn details(&self) -> Option<serde_json::Value> {
        serde_json::to_value(self.status()).ok()
    }

    fn credit(&self) -> Option<crate::transport::Credit> {
        let b = self.status().balance?;
        Some(crate::transport::Credit {
            credit: b.cents,
            expires: None,
            checked_at_ms: b.checked_at_ms,
            alert_below: b
                .alert_below
                .as_deref()
                .and_then(|a| ussd::parse_amount(a).ok()),
            error: b.error,
            unit: crate::transport::CreditUnit::Cents,
        })
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }

    fn send<'a>(
        &'a self,
        message: &'a Outgoing,
    ) -> BoxFuture<'a, Result<SendReceipt, TransportError>> {
        Box::pin(async move {
            let (reply, answer) = oneshot::channel();
            self.jobs
                .send(SendJob {
                    message: message.clone(),
                    reply,
                })
                .await
                .map_err(|_| TransportError::Temporary(format!("{} is not running", self.name)))?;
            answer.await.map_err(|_| {
                TransportError::Temporary(format!("{} stopped while sending", self.name))
            })?
        })
    }
}

/// The task side of a modem; run it with [`Modem::run`].
pub struct Modem {
    cfg: ModemConfig,
    sink: Sink,
    phones: PhoneContext,
    status: Arc<Mutex<ModemStatus>>,
    jobs: mpsc::Receiver<SendJob>,
    /// Sends handed over and not started yet, taken out of `jobs` to pick a reply first.
    waiting: Vec<SendJob>,
    ussd_jobs: mpsc::Receiver<UssdJob>,
    /// `balance_pattern`, compiled (config checks made sure it compiles).
    balance_re: Option<regex_lite::Regex>,
    /// When the credit is next asked for (kept across reconnects).
    next_balance: tokio::time::Instant,
}

/// Builds a modem's task and its transport.
pub fn modem(cfg: ModemConfig, sink: Sink, phones: PhoneContext) -> (Modem, GsmTransport) {
    let (tx, rx) = mpsc::channel(4);
    let (ussd_tx, ussd_rx) = mpsc::channel(2);
    let balance_re = match cfg.balance_ussd {
        Some(_) => cfg.balance_regex().ok(),
        None => None,
    };
    let status = Arc::new(Mutex::new(ModemStatus {
        detail: "starting".into(),
        balance: balance_re.as_ref().map(|_| SimBalance {
            alert_below: cfg.balance_alert_below_cents().map(ussd::format_plain),
            ..Default::default()
        }),
        ..Default::default()
    }));
    let transport = GsmTransport {
        name: cfg.name.clone(),
        jobs: tx,
        ussd: ussd_tx,
        status: status.clone(),
    };
    (
        Modem {
            cfg,
            sink,
            phones,
            status,
            jobs: rx,
            waiting: Vec::new(),
            ussd_jobs: ussd_rx,
            balance_re,
            next_balance: tokio::time::Instant::now(),
        },
        transport,
    )
}

/// `[[modem]]`: one route and one supervised task per modem.
pub struct ModemKind;
pub const KIND: ModemKind = ModemKind;

impl Kind for ModemKind {
    fn name(&self) -> &'static str {
        "modem"
    }

    fn check(&self, c: &crate::config::Config) -> Vec<(String, String)> {
        let mut errors = Vec::new();
        for m in &c.modems {
            let at = |key: &str| format!("modem.{key}");
            if !m.device.is_absolute() {
                errors.push((
                    at("device"),
                    format!(
                        "`{}` must be a device path like /dev/ttyUSB0",
                        m.device.display()
                    ),
                ));
            }
            if ![9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600].contains(&m.baud) {
                errors.push((
                    at("baud"),
                    format!(
                        "{} is not a serial speed; use 115200 (or 9600 … 921600)",
                        m.baud
                    ),
                ));
            }
            if !["SM", "ME", "MT"].contains(&m.storage.as_str()) {
                errors.push((
                    at("storage"),
                    format!("`{}` is not SM, ME or MT", m.storage),
                ));
            }
            if m.pin.as_ref().is_some_and(|p| {
                let p = p.expose();
                !(4..=8).contains(&p.len()) || !p.chars().all(|ch| ch.is_ascii_digit())
            }) {
                errors.push((at("pin"), "must be 4 to 8 digits".to_string()));
            }
            if let Some(smsc) = &m.smsc
                && !(smsc.starts_with('+')
                    && smsc.len() > 4
                    && smsc[1..].chars().all(|ch| ch.is_ascii_digit()))
            {
                errors.push((
                    at("smsc"),
                    format!("`{smsc}` is not an international number like +5491151740000"),
                ));
            }
            errors.extend(check_balance(m));
        }
        errors
    }

    fn build(&self, cx: &BuildContext<'_>) -> anyhow::Result<Built> {
        let mut built = Built::default();
        for cfg in &cx.config.modems {
            let (modem, transport) = modem(cfg.clone(), cx.sink.clone(), cx.phones.clone());
            built.transports.push(Arc::new(transport));
            let modem = Arc::new(tokio::sync::Mutex::new(modem));
            built.tasks.push(Task {
                name: "modem",
                run: Arc::new(move |stop| {
                    let modem = modem.clone();
                    Box::pin(async move { modem.lock().await.run(stop).await })
                }),
            });
        }
        Ok(built)
    }
}

/// The `balance_*` keys of one `[[modem]]`: (key, why) for each that is wrong.
fn check_balance(m: &ModemConfig) -> Vec<(String, String)> {
    let at = |key: &str| format!("modem.{key}");
    let mut errors = Vec::new();
    match &m.balance_ussd {
        Some(code) => {
            if let Err(why) = ussd::check_request(code, true) {
                errors.push((at("balance_ussd"), why));
            }
            if let Err(why) = m.balance_regex() {
                errors.push((at("balance_pattern"), why));
            }
        }
        None => {
            for (key, set) in [
                ("balance_pattern", m.balance_pattern.is_some()),
                ("balance_alert_below", m.balance_alert_below.is_some()),
            ] {
                if set {
                    errors.push((
                        at(key),
                        "needs balance_ussd, the code that asks for the credit (like \"*444#\")"
                            .to_string(),
                    ));
                }
            }
        }
    }
    if !(1..=300).contains(&m.ussd_timeout_secs) {
        errors.push((
            at("ussd_timeout_secs"),
            format!("{} is not between 1 and 300 seconds", m.ussd_timeout_secs),
        ));
    }
    let hours = m.balance_interval_hours;
    if !(hours.is_finite() && hours > 0.0 && hours <= MAX_BALANCE_HOURS) {
        errors.push((
            at("balance_interval_hours"),
            format!("{hours} is not a number of hours between 0 and {MAX_BALANCE_HOURS} (like 12)"),
        ));
    }
    if let Some(below) = m.balance_alert_below
        && !(below.is_finite() && (0.0..1e12).contains(&below))
    {
        errors.push((
            at("balance_alert_below"),
            format!("{below} is not an amount of pesos (like 500)"),
        ));
    }
    errors
}

/// A month: a longer interval means the check is effectively off.
const MAX_BALANCE_HOURS: f64 = 24.0 * 31.0;
/// Shortest interval between credit checks however small `balance_interval_hours` is.
const MIN_BALANCE_EVERY: Duration = Duration::from_secs(2);
/// A failed credit check is tried again after this, or the interval when shorter.
const BALANCE_RETRY: Duration = Duration::from_secs(15 * 60);

/// Why a session ended.
#[derive(Debug, thiserror::Error)]
enum SessionEnd {
    #[error("{0}")]
    Link(String),
    #[error("{0}")]
    Sim(String),
    #[error("{0}")]
    Store(#[from] SinkError),
}

impl From<AtError> for SessionEnd {
    fn from(e: AtError) -> SessionEnd {
        SessionEnd::Link(e.to_string())
    }
}

enum Step {
    Job(Option<SendJob>),
    Ussd(Option<UssdJob>),
    Balance,
    Urc(Result<Urc, AtError>),
    Health,
    Sweep,
    Stop,
}

/// FNV-1a, 64 bit: a stable fingerprint of a PDU for recognising one read twice.
fn fingerprint(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016x}")
}

/// `+CME ERROR: 16`: the SIM refused the PIN (3GPP TS 27.007 §9.2).
const CME_INCORRECT_PASSWORD: u16 = 16;
/// How long a SIM may take to check its PIN.
const PIN_TIMEOUT: Duration = Duration::from_secs(20);

/// The ICCID in an answer line (`+CCID: 8954…`, `^ICCID: "8954…"` or the bare digits).
fn parse_iccid(line: &str, prefix: &str) -> Option<String> {
    let v = line
        .strip_prefix(prefix)
        .unwrap_or(line)
        .trim()
        .trim_matches('"');
    (v.len() >= 10 && v.len() <= 22 && v.bytes().all(|b| b.is_ascii_alphanumeric()))
        .then(|| v.to_ascii_uppercase())
}

/// The amount `re`'s capture finds in `text`, in cents; the error says what went wrong.
pub fn read_amount(re: &regex_lite::Regex, text: &str) -> Result<i64, String> {
    let caught = re.captures(text).and_then(|c| c.get(1)).ok_or_else(|| {
        format!(
            "balance_pattern `{}` does not match the answer",
            re.as_str()
        )
    })?;
    ussd::parse_amount(caught.as_str()).map_err(|e| format!("balance_pattern caught {e}"))
}

/// `AT+CSQ` rssi → dBm and a word for operators.
pub fn signal(rssi: u8) -> Option<(i32, &'static str)> {
    if rssi > 31 {
        return None;
    }
    let dbm = -113 + 2 * i32::from(rssi);
    let word = match rssi {
        20.. => "excellent",
        15..=19 => "good",
        10..=14 => "fair",
        2..=9 => "poor",
        _ => "none",
    };
    Some((dbm, word))
}

/// Whether a `+CMS ERROR` can succeed on a retry. Permanent: the number or the subscriber is
/// wrong or barred, or the PDU itself was refused.
pub fn cms_is_temporary(code: u16) -> bool {
    !matches!(
        code,
        1 | 8 | 10 | 21 | 28 | 29 | 30 | 50 | 96 | 97 | 98 | 99 | 111 | 127 | 304 | 305
    )
}

impl Modem {
    fn set_status(&self, f: impl FnOnce(&mut ModemStatus)) {
        if let Ok(mut s) = self.status.lock() {
            let was_up = s.up;
            f(&mut s);
            if s.up && !was_up {
                self.sink.came_up();
            }
        }
    }

    fn set_down(&self, detail: String) {
        self.set_status(|s| {
            s.up = false;
            s.detail = detail;
        });
    }

    /// The send to start next among `got` and those waiting: the highest priority, then the
    /// oldest, so a reply handed over while a notice waits here goes first.
    fn next_waiting(&mut self, got: Option<SendJob>) -> Option<SendJob> {
        self.waiting.extend(got);
        while let Ok(job) = self.jobs.try_recv() {
            self.waiting.push(job);
        }
        let best =
            (0..self.waiting.len()).min_by_key(|i| self.waiting[*i].message.priority.rank())?;
        Some(self.waiting.remove(best))
    }

    /// Runs until shutdown: sessions, and reconnects with backoff between them.
    pub async fn run(&mut self, mut shutdown: Shutdown) -> anyhow::Result<()> {
        let mut delay = Duration::from_secs(1);
        while !shutdown.is_triggered() {
            let started = tokio::time::Instant::now();
            let ended = self.session(&mut shutdown).await;
            // Sends picked up but not started go back to the dispatcher, to retry.
            for job in self.waiting.drain(..) {
                let _ = job.reply.send(Err(TransportError::Temporary(format!(
                    "{} stopped before sending it",
                    self.cfg.name
                ))));
            }
            match ended {
                Ok(()) => break,
                Err(end) => {
                    let detail = end.to_string();
                    let changed = self
                        .status
                        .lock()
                        .map(|s| s.detail != detail)
                        .unwrap_or(true);
                    if changed {
                        log::warn!(transport = self.cfg.name.as_str(); "{}: {detail}; retrying", self.cfg.name);
                    }
                    self.set_down(detail);
                }
            }
            if started.elapsed() > Duration::from_secs(60) {
                delay = Duration::from_secs(1);
            }
            // While down, refuse sends at once (the dispatcher retries them later or elsewhere).
            let wait = tokio::time::sleep(delay);
            tokio::pin!(wait);
            loop {
                tokio::select! {
                    _ = &mut wait => break,
                    _ = shutdown.wait() => return Ok(()),
                    job = self.jobs.recv() => match job {
                        Some(job) => {
                            let _ = job.reply.send(Err(TransportError::Temporary(format!("{} is down", self.cfg.name))));
                        }
                        None => return Ok(()),
                    },
                    Some(job) = self.ussd_jobs.recv() => {
                        let detail = self.status.lock().map(|s| s.detail.clone()).unwrap_or_default();
                        let _ = job.reply.send(Err(UssdError::Unavailable(format!("{} is down: {detail}", self.cfg.name))));
                    },
                }
            }
            delay = (delay * 2).min(RECONNECT_MAX);
        }
        Ok(())
    }

    async fn session(&mut self, shutdown: &mut Shutdown) -> Result<(), SessionEnd> {
        let device = &self.cfg.device;
        if !device.exists() {
            return Err(SessionEnd::Link(format!(
                "device {} not found (unplugged?)",
                device.display()
            )));
        }
        let port = super::port::open(device, self.cfg.baud)
            .map_err(|e| SessionEnd::Link(format!("cannot open {}: {e}", device.display())))?;
        let mut at = AtPort::new(port);
        self.start_up(&mut at).await?;
        self.check_health(&mut at).await?;
        self.sweep(&mut at).await?;
        // On the idle clock, so an idle modem's checks wake the process with its other loops.
        let mut health =
            crate::idle::Ticker::new(Duration::from_secs(self.cfg.health_interval_secs.max(5)));
        let mut sweep =
            crate::idle::Ticker::new(Duration::from_secs(self.cfg.sweep_interval_secs.max(10)));
        self.recheck_soon_if_down(&mut health);
        loop {
            for urc in at.take_urcs() {
                self.on_urc(&mut at, urc).await?;
            }
            let balance_due = self.next_balance;
            let step = if let Some(job) = self.next_waiting(None) {
                Step::Job(Some(job))
            } else {
                tokio::select! {
                job = self.jobs.recv() => Step::Job(job),
                job = self.ussd_jobs.recv() => Step::Ussd(job),
                _ = tokio::time::sleep_until(balance_due), if self.balance_re.is_some() => Step::Balance,
                urc = at.next_urc() => Step::Urc(urc),
                _ = health.tick() => Step::Health,
                _ = sweep.tick() => Step::Sweep,
                _ = shutdown.wait() => Step::Stop,
                }
            };
            match step {
                Step::Job(Some(job)) => {
                    let Some(job) = self.next_waiting(Some(job)) else {
                        continue;
                    };
                    let result = self.send(&mut at, &job.message).await;
                    let link_lost = matches!(&result, Err((_, true)));
                    let _ = job.reply.send(result.map_err(|(e, _)| e));
                    if link_lost {
                        return Err(SessionEnd::Link(
                            "the modem stopped answering while sending".into(),
                        ));
                    }
                }
                Step::Job(None) | Step::Ussd(None) | Step::Stop => return Ok(()),
                Step::Ussd(Some(job)) => {
                    let result = self.run_ussd(&mut at, &job.code, &job.replies).await;
                    match result {
                        Ok(answer) => {
                            let _ = job.reply.send(answer);
                        }
                        Err(end) => {
                            let _ = job.reply.send(Err(UssdError::Unavailable(format!(
                                "{}: {end}",
                                self.cfg.name
                            ))));
                            return Err(end);
                        }
                    }
                }
                Step::Balance => self.check_balance(&mut at).await?,
                Step::Urc(urc) => self.on_urc(&mut at, urc?).await?,
                Step::Health => {
                    self.check_health(&mut at).await?;
                    self.recheck_soon_if_down(&mut health);
                }
                Step::Sweep => self.sweep(&mut at).await?,
            }
        }
    }

    /// A modem that is not registered (searching, denied, an answer it could not give) is
    /// asked again in a few seconds instead of at the next regular check, so it carries traffic
    /// as soon as the network takes it. Registered, it goes back to `health_interval_secs`.
    fn recheck_soon_if_down(&self, health: &mut crate::idle::Ticker) {
        if !self.status.lock().is_ok_and(|s| s.up) {
            health.reset_after(NOT_REGISTERED_RECHECK.min(health.period()));
        }
    }

    /// Runs `cmd`; a timeout is followed by a probe, and a modem that does not answer the
    /// probe ends the session.
    async fn cmd<P: AsyncRead + AsyncWrite + Unpin>(
        &self,
        at: &mut AtPort<P>,
        cmd: Command,
    ) -> Result<Result<Vec<String>, AtError>, SessionEnd> {
        match at.command(&cmd).await {
            Err(e) if e.is_link_failure() => Err(e.into()),
            Err(AtError::Timeout(..)) => {
                self.probe(at).await?;
                Ok(Err(AtError::Timeout(
                    cmd.shown().to_string(),
                    cmd.timeout.as_secs(),
                )))
            }
            other => Ok(other),
        }
    }

    async fn probe<P: AsyncRead + AsyncWrite + Unpin>(
        &self,
        at: &mut AtPort<P>,
    ) -> Result<(), SessionEnd> {
        for _ in 0..2 {
            at.discard_input();
            match at
                .command(&Command::new("AT", None).timeout(Duration::from_secs(2)))
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) if e.is_link_failure() => return Err(e.into()),
                Err(_) => continue,
            }
        }
        Err(SessionEnd::Link("the modem stopped answering".into()))
    }

    async fn start_up<P: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        at: &mut AtPort<P>,
    ) -> Result<(), SessionEnd> {
        // ESC leaves a half-typed PDU from a previous life; then wait for the modem to answer.
        at.write_raw(&[0x1b]).await?;
        let mut alive = false;
        for _ in 0..10 {
            at.discard_input();
            match at
                .command(&Command::new("AT", None).timeout(Duration::from_secs(1)))
                .await
            {
                Ok(_) => {
                    alive = true;
                    break;
                }
                Err(e) if e.is_link_failure() => return Err(e.into()),
                Err(_) => {}
            }
        }
        if !alive {
            return Err(SessionEnd::Link("the modem does not answer AT".into()));
        }
        self.cmd(at, Command::new("ATE0", None)).await??;
        let _ = self.cmd(at, Command::new("AT+CMEE=1", None)).await?;
        self.unlock_sim(at).await?;
        self.cmd(at, Command::new("AT+CMGF=0", None)).await??;
        let storage = &self.cfg.storage;
        let cpms = format!("AT+CPMS=\"{storage}\",\"{storage}\",\"{storage}\"");
        if self
            .cmd(at, Command::new(cpms, Some("+CPMS:")))
            .await?
            .is_err()
        {
            self.cmd(
                at,
                Command::new(format!("AT+CPMS=\"{storage}\""), Some("+CPMS:")),
            )
            .await??;
        }
        // New messages announced as +CMTI; status reports inline (+CDS) or stored (+CDSI).
        let mut indications_ok = false;
        let options: &[&str] = if self.cfg.status_reports {
            &[
                "AT+CNMI=2,1,0,2,0",
                "AT+CNMI=2,1,0,1,0",
                "AT+CNMI=1,1,0,2,0",
                "AT+CNMI=2,1,0,0,0",
            ]
        } else {
            &["AT+CNMI=2,1,0,0,0", "AT+CNMI=1,1,0,0,0"]
        };
        for cnmi in options {
            if self.cmd(at, Command::new(*cnmi, None)).await?.is_ok() {
                indications_ok = true;
                break;
            }
        }
        if !indications_ok {
            log::warn!(transport = self.cfg.name.as_str();
                "{}: the modem refuses new-message indications; relying on the sweep every {} s",
                self.cfg.name, self.cfg.sweep_interval_secs);
        }
        if let Some(smsc) = &self.cfg.smsc {
            self.cmd(at, Command::new(format!("AT+CSCA=\"{smsc}\",145"), None))
                .await??;
        }
        let smsc = self
            .cmd(at, Command::new("AT+CSCA?", Some("+CSCA:")))
            .await?
            .ok()
            .and_then(|l| {
                l.first()
                    .and_then(|l| l.strip_prefix("+CSCA:"))
                    .map(|r| fields(r)[0].clone())
            });
        let mut ident = Vec::new();
        for c in ["AT+CGMI", "AT+CGMM", "AT+CGMR", "AT+CGSN", "AT+CIMI"] {
            let v = self
                .cmd(at, Command::new(c, None))
                .await?
                .ok()
                .and_then(identity_line)
                .map(|v| {
                    // Some modems prefix the answer with the command name (`+CGMI: huawei`).
                    let prefix = format!("{}:", &c[2..]);
                    v.strip_prefix(&prefix).unwrap_or(&v).trim().to_string()
                });
            ident.push(v);
        }
        if ident[0]
            .as_deref()
            .is_some_and(|m| m.to_ascii_lowercase().contains("huawei"))
        {
            // Huawei sticks ^RSSI/^MODE/^BOOT noise into the stream; turn it off where it can.
            let _ = self.cmd(at, Command::new("AT^CURC=0", None)).await?;
        }
        let mut it = ident.into_iter();
        self.set_status(|s| {
            s.manufacturer = it.next().flatten();
            s.model = it.next().flatten();
            s.revision = it.next().flatten();
            s.imei = it.next().flatten();
            s.imsi = it.next().flatten();
            s.smsc = smsc;
        });
        log::info!(transport = self.cfg.name.as_str(); "{}: modem ready on {}", self.cfg.name, self.cfg.device.display());
        Ok(())
    }

    fn pin_key(&self) -> String {
        format!("pin_rejected:{}", self.cfg.name)
    }

    /// The SIM's ICCID (`AT+CCID`, or Huawei's `AT^ICCID?`); empty when the modem tells neither.
    async fn read_iccid<P: AsyncRead + AsyncWrite + Unpin>(
        &self,
        at: &mut AtPort<P>,
    ) -> Result<String, SessionEnd> {
        for (c, prefix) in [("AT+CCID", "+CCID:"), ("AT^ICCID?", "^ICCID:")] {
            if let Ok(lines) = self.cmd(at, Command::new(c, None)).await?
                && let Some(iccid) = lines.iter().find_map(|l| parse_iccid(l, prefix))
            {
                return Ok(iccid);
            }
        }
        Ok(String::new())
    }

    async fn unlock_sim<P: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        at: &mut AtPort<P>,
    ) -> Result<(), SessionEnd> {
        let state = self
            .cmd(at, Command::new("AT+CPIN?", Some("+CPIN:")))
            .await?
            .map_err(|e| SessionEnd::Sim(format!("cannot read the SIM state: {e}")))?;
        let state = state
            .iter()
            .find_map(|l| l.strip_prefix("+CPIN:"))
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        match state.as_str() {
            "READY" => Ok(()),
            "SIM PIN" => {
                let Some(pin) = self.cfg.pin.clone() else {
                    return Err(SessionEnd::Sim(
                        "the SIM asks for its PIN: set `pin` under this [[modem]] and restart"
                            .into(),
                    ));
                };
                // Keyed by the SIM and the PIN: a new SIM or a new PIN is tried again.
                let iccid = self.read_iccid(at).await?;
                let hash = fingerprint(format!("{iccid}\u{0}{}", pin.expose()).as_bytes());
                let tag = i64::from_str_radix(&hash[..15], 16).unwrap_or(0);
                if self.sink.state().get(&self.pin_key()).await? == Some(tag) {
                    return Err(SessionEnd::Sim(
                        "the SIM asks for its PIN and the configured PIN was already rejected once; \
                         not trying it again (three wrong PINs lock the SIM). Fix `pin` and restart"
                            .into(),
                    ));
                }
                let answer = self
                    .cmd(
                        at,
                        Command::secret(
                            format!("AT+CPIN=\"{}\"", pin.expose()),
                            "AT+CPIN=\"****\"",
                        )
                        .timeout(PIN_TIMEOUT),
                    )
                    .await?;
                match answer {
                    Ok(_) => {
                        self.sink.state().set(&self.pin_key(), None).await?;
                        log::info!(transport = self.cfg.name.as_str(); "{}: SIM unlocked with the configured PIN", self.cfg.name);
                        // The SIM needs a moment before messages can be read.
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        Ok(())
                    }
                    // Only the SIM saying "incorrect password" is a rejection; anything else
                    // (a timeout, a busy SIM) leaves the PIN to be tried again.
                    Err(e @ AtError::Cme(_, CME_INCORRECT_PASSWORD)) => {
                        self.sink.state().set(&self.pin_key(), Some(tag)).await?;
                        Err(SessionEnd::Sim(format!(
                            "the SIM rejected the configured PIN ({e}); it will not be tried again \
                             until `pin` or the SIM is changed"
                        )))
                    }
                    Err(e) => Err(SessionEnd::Sim(format!(
                        "the SIM did not take the PIN ({e}); trying again"
                    ))),
                }
            }
            "SIM PUK" => Err(SessionEnd::Sim(
                "the SIM is locked and needs its PUK: unlock it in a phone, then restart".into(),
            )),
            other => Err(SessionEnd::Sim(format!("SIM not ready: {other}"))),
        }
    }

    async fn check_health<P: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        at: &mut AtPort<P>,
    ) -> Result<(), SessionEnd> {
        let csq = self
            .cmd(at, Command::new("AT+CSQ", Some("+CSQ:")))
            .await?
            .ok();
        let rssi = csq
            .as_ref()
            .and_then(|l| l.iter().find_map(|l| l.strip_prefix("+CSQ:")))
            .and_then(|r| fields(r)[0].parse::<u8>().ok());
        let creg = self
            .cmd(at, Command::new("AT+CREG?", Some("+CREG:")))
            .await?
            .ok();
        let stat = creg.as_deref().and_then(registration_stat);
        let registration = match stat.as_deref() {
            Some("1") => "home",
            Some("5") => "roaming",
            Some("2") => "searching",
            Some("3") => "denied",
            Some("0") => "not registered",
            _ => "unknown",
        };
        let operator = self
            .cmd(at, Command::new("AT+COPS?", Some("+COPS:")))
            .await?
            .ok()
            .and_then(|l| l.iter().find_map(|l| l.strip_prefix("+COPS:")).map(fields))
            .and_then(|f| f.get(2).cloned().filter(|o| !o.is_empty()));
        let sig = rssi.and_then(signal);
        let up = matches!(registration, "home" | "roaming");
        let detail = match (up, sig) {
            (true, Some((dbm, word))) => format!(
                "registered ({registration}) on {}, signal {dbm} dBm ({word})",
                operator.as_deref().unwrap_or("?")
            ),
            (true, None) => format!("registered ({registration}), signal unknown"),
            (false, _) => format!("not registered: {registration}"),
        };
        let before = self
            .status
            .lock()
            .map(|s| s.detail.clone())
            .unwrap_or_default();
        if before != detail {
            log::info!(transport = self.cfg.name.as_str(); "{}: {detail}", self.cfg.name);
        }
        self.set_status(|s| {
            s.up = up;
            s.detail = detail;
            s.signal_dbm = sig.map(|(d, _)| d);
            s.signal = sig.map(|(_, w)| w);
            s.registration = Some(registration.to_string());
            s.operator = operator;
        });
        Ok(())
    }

    async fn on_urc<P: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        at: &mut AtPort<P>,
        urc: Urc,
    ) -> Result<(), SessionEnd> {
        match urc {
            Urc::NewMessage { index, .. } | Urc::StatusReportStored { index, .. } => {
                self.read_and_delete(at, index).await
            }
            Urc::StatusReport { pdu } => {
                self.handle_pdu(&pdu).await?;
                Ok(())
            }
            Urc::Boot(what) => {
                // The modem restarted under us: its settings are gone; start over.
                Err(SessionEnd::Link(format!("the modem restarted ({what})")))
            }
            Urc::Ussd(rest) => {
                // An answer nobody waits for any more (after a timeout): nothing to do.
                log::debug!(transport = self.cfg.name.as_str(); "{}: late USSD answer +CUSD: {rest}", self.cfg.name);
                Ok(())
            }
            Urc::Registration(_) | Urc::Ring | Urc::Vendor(_) | Urc::Other(_) => Ok(()),
        }
    }

    /// One USSD session; unsolicited codes that came meanwhile are handled after it. The outer
    /// error ends the session (the port failed); the inner one is the USSD outcome.
    async fn run_ussd<P: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        at: &mut AtPort<P>,
        code: &str,
        replies: &[String],
    ) -> Result<Result<UssdAnswer, UssdError>, SessionEnd> {
        let mut held = Vec::new();
        let timeout = Duration::from_secs(self.cfg.ussd_timeout_secs);
        let result = ussd::exchange(at, code, replies, timeout, &mut held).await;
        for urc in held {
            self.on_urc(at, urc).await?;
        }
        match result {
            Ok(answer) => Ok(Ok(answer)),
            Err(ExchangeError::Ussd(e)) => {
                if matches!(e, UssdError::Timeout(_)) {
                    // The modem answered nothing: make sure it is still there.
                    self.probe(at).await?;
                }
                Ok(Err(e))
            }
            Err(ExchangeError::Link(e)) => Err(e.into()),
        }
    }

    fn balance_key(&self) -> String {
        format!("balance_mismatch:{}", self.cfg.name)
    }

    /// Asks for the credit with `balance_ussd`, reads the amount with `balance_pattern`, and
    /// keeps it for the status page, metrics, doctor and the credit alerts. A failure keeps
    /// the last amount and says why; an answer the pattern does not match is logged once per
    /// distinct answer (remembered across restarts), not at every check.
    async fn check_balance<P: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        at: &mut AtPort<P>,
    ) -> Result<(), SessionEnd> {
        let (Some(code), Some(re)) = (self.cfg.balance_ussd.clone(), self.balance_re.clone())
        else {
            return Ok(());
        };
        let name = self.cfg.name.clone();
        let every = Duration::from_secs_f64(self.cfg.balance_interval_hours * 3600.0)
            .max(MIN_BALANCE_EVERY);
        let now_ms = chrono::Utc::now().timestamp_millis();
        let outcome = match self.run_ussd(at, &code, &[]).await? {
            Ok(answer) => {
                let text = answer.text().to_string();
                match read_amount(&re, &text) {
                    Ok(cents) => Ok((cents, text)),
                    Err(why) => Err((why, Some(text), true)),
                }
            }
            Err(e) => Err((e.to_string(), None, false)),
        };
        let mut ok = false;
        match outcome {
            Ok((cents, text)) => {
                ok = true;
                if self.sink.state().get(&self.balance_key()).await?.is_some() {
                    self.sink.state().set(&self.balance_key(), None).await?;
                }
                log::info!(transport = name.as_str(); "{name}: SIM credit {}", ussd::format_ars(cents));
                self.set_balance(|b| {
                    b.cents = Some(cents);
                    b.amount = Some(ussd::format_plain(cents));
                    b.shown = Some(ussd::format_ars(cents));
                    b.checked_at_ms = Some(now_ms);
                    b.checked_at = Some(crate::jsonapi::rfc3339(now_ms));
                    b.error = None;
                    b.answer = Some(text);
                });
            }
            Err((why, answer, mismatch)) => {
                if mismatch {
                    let text = answer.clone().unwrap_or_default();
                    let tag =
                        i64::from_str_radix(&fingerprint(text.as_bytes())[..15], 16).unwrap_or(0);
                    if self.sink.state().get(&self.balance_key()).await? != Some(tag) {
                        log::warn!(transport = name.as_str();
                            "{name}: the credit answer does not match balance_pattern ({why}); the answer was: {text}");
                        self.sink
                            .state()
                            .set(&self.balance_key(), Some(tag))
                            .await?;
                    }
                } else {
                    let before = self
                        .status
                        .lock()
                        .ok()
                        .and_then(|s| s.balance.as_ref().and_then(|b| b.error.clone()));
                    if before.as_deref() != Some(why.as_str()) {
                        log::warn!(transport = name.as_str(); "{name}: cannot read the SIM credit: {why}");
                    }
                }
                self.set_balance(|b| {
                    b.error = Some(why);
                    if answer.is_some() {
                        b.answer = answer;
                    }
                });
            }
        }
        self.next_balance =
            tokio::time::Instant::now() + if ok { every } else { every.min(BALANCE_RETRY) };
        Ok(())
    }

    fn set_balance(&self, f: impl FnOnce(&mut SimBalance)) {
        self.set_status(|s| f(s.balance.get_or_insert_with(SimBalance::default)));
    }

    /// Reads the message at `index`, commits it, then deletes it from the SIM.
    async fn read_and_delete<P: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        at: &mut AtPort<P>,
        index: u32,
    ) -> Result<(), SessionEnd> {
        let lines = match self
            .cmd(at, Command::new(format!("AT+CMGR={index}"), Some("+CMGR:")))
            .await?
        {
            Ok(lines) => lines,
            Err(AtError::Cms(_, 321)) => return Ok(()), // already gone
            Err(e) => {
                log::warn!(transport = self.cfg.name.as_str(); "{}: cannot read message {index}: {e}", self.cfg.name);
                return Ok(());
            }
        };
        let Some(pdu) = lines.iter().find(|l| !l.starts_with('+')) else {
            return Ok(()); // empty slot
        };
        self.handle_pdu(pdu).await?;
        self.delete(at, index).await
    }

    async fn delete<P: AsyncRead + AsyncWrite + Unpin>(
        &self,
        at: &mut AtPort<P>,
        index: u32,
    ) -> Result<(), SessionEnd> {
        match self
            .cmd(at, Command::new(format!("AT+CMGD={index}"), None))
            .await?
        {
            Ok(_) | Err(AtError::Cms(_, 321)) => Ok(()),
            Err(e) => {
                log::warn!(transport = self.cfg.name.as_str(); "{}: cannot delete message {index} from the SIM: {e}", self.cfg.name);
                Ok(())
            }
        }
    }

    /// Lists every stored message and handles each as if just announced.
    async fn sweep<P: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        at: &mut AtPort<P>,
    ) -> Result<(), SessionEnd> {
        let lines = match self
            .cmd(
                at,
                Command::new("AT+CMGL=4", Some("+CMGL:")).timeout(Duration::from_secs(30)),
            )
            .await?
        {
            Ok(l) => l,
            Err(e) => {
                log::warn!(transport = self.cfg.name.as_str(); "{}: cannot list stored messages: {e}", self.cfg.name);
                return Ok(());
            }
        };
        let mut listed = Vec::new();
        let mut current: Option<u32> = None;
        for line in lines {
            if let Some(rest) = line.strip_prefix("+CMGL:") {
                current = fields(rest)[0].parse().ok();
            } else if let Some(index) = current.take() {
                listed.push((index, line));
            }
        }
        if !listed.is_empty() {
            log::info!(transport = self.cfg.name.as_str(); "{}: {} message(s) found on the SIM", self.cfg.name, listed.len());
        }
        for (index, pdu) in listed {
            self.handle_pdu(&pdu).await?;
            self.delete(at, index).await?;
        }
        for id in self
            .sink
            .records()
            .flush_incomplete_sms(INCOMPLETE_AFTER_MS)
            .await?
        {
            log::warn!(msg_id = id.0; "message {id}: a long SMS never got all its parts; stored incomplete");
        }
        Ok(())
    }

    /// Decodes a PDU from the SIM and commits what it says. An undecodable PDU is kept raw
    /// (flagged) so it can be deleted from the SIM without losing it.
    async fn handle_pdu(&mut self, hex: &str) -> Result<(), SessionEnd> {
        let name = self.cfg.name.clone();
        let decoded = sms::hex::decode(hex).and_then(|b| sms::decode_pdu(&b, true).map(|p| (b, p)));
        let (bytes, pdu) = match decoded {
            Ok(v) => v,
            Err(e) => {
                log::warn!(transport = name.as_str(); "{name}: a message on the SIM does not decode ({e}); kept raw");
                let id = self
                    .sink
                    .records()
                    .inbound_raw(
                        NewInbound {
                            channel: Channel::Sms,
                            transport: name.clone(),
                            peer: "unknown".into(),
                            body: hex.to_string(),
                            provider_ref: Some(format!("raw:{}", fingerprint(hex.as_bytes()))),
                        },
                        format!("undecodable PDU: {e}"),
                    )
                    .await?;
                log::debug!(msg_id = id.0; "raw PDU stored as message {id}");
                return Ok(());
            }
        };
        match pdu {
            DecodedPdu::Deliver(d) => {
                let sender = match d.from.kind() {
                    AddressKind::Alphanumeric => d.from.value.clone(),
                    _ => self
                        .phones
                        .normalize(&d.from.value)
                        .map(|m| m.as_str().to_string())
                        .unwrap_or_else(|_| d.from.value.clone()),
                };
                let concat = d.user_data.concat.map(|c| (c.reference, c.total, c.seq));
                let pdu_hash =
                    fingerprint(bytes.get(usize::from(bytes[0]) + 1..).unwrap_or(&bytes));
                let received = self
                    .sink
                    .records()
                    .inbound_sms(InboundSms {
                        transport: name.clone(),
                        sender: sender.clone(),
                        text: d.user_data.text(),
                        concat,
                        pdu_hash: pdu_hash.clone(),
                    })
                    .await?;
                if d.user_data.truncated {
                    log::warn!(transport = name.as_str(); "{name}: the modem cut an SMS from {} short; kept what arrived and the raw PDU", shown_peer(&sender));
                    self.sink
                        .records()
                        .note_truncated(&name, &pdu_hash, hex)
                        .await?;
                }
                match received {
                    Received::Message(id) => log::info!(
                        msg_id = id.0, channel = "sms", transport = name.as_str();
                        "message {id} received from {}", shown_peer(&sender)
                    ),
                    Received::PartPending => log::debug!(
                        "{name}: part of a long message from {} stored",
                        shown_peer(&sender)
                    ),
                    Received::Duplicate => {
                        log::debug!("{name}: a message read twice was recognised")
                    }
                }
            }
            DecodedPdu::StatusReport(r) => {
                let recipient = self
                    .phones
                    .normalize(&r.recipient.value)
                    .map(|m| m.as_str().to_string())
                    .unwrap_or_default();
                let status = match r.status() {
                    sms::DeliveryStatus::Delivered => Some(PartStatus::Delivered),
                    sms::DeliveryStatus::Failed => Some(PartStatus::Failed(format!(
                        "the network reports delivery failed (status {:#04x})",
                        r.status_code
                    ))),
                    sms::DeliveryStatus::Pending => None,
                };
                if let Some(status) = status {
                    match self
                        .sink
                        .records()
                        .part_status(&name, r.message_reference, &recipient, status)
                        .await?
                    {
                        Some(id) => {
                            log::info!(msg_id = id.0; "message {id}: status report {:#04x}", r.status_code)
                        }
                        None => log::debug!(
                            "{name}: status report for unknown reference {}",
                            r.message_reference
                        ),
                    }
                }
            }
            DecodedPdu::Submit(_) => {} // our own sent copy; nothing to store
        }
        Ok(())
    }

    /// Sends every part not sent yet. The error's flag says the link is lost.
    async fn send<P: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        at: &mut AtPort<P>,
        message: &Outgoing,
    ) -> Result<SendReceipt, (TransportError, bool)> {
        let text = crate::transport::sms_text(message).map_err(|e| (e, false))?;
        let opts = sms::SubmitOptions {
            transliterate: self.cfg.transliterate,
            validity_minutes: (self.cfg.validity_minutes > 0).then_some(self.cfg.validity_minutes),
            status_report: self.cfg.status_reports,
            concat_ref: (message.id.0 & 0xff) as u16,
            max_parts: 255,
            ..Default::default()
        };
        let parts = sms::encode_submit(&message.to, text, &opts).map_err(|e| {
            (
                TransportError::Permanent(format!("cannot encode the SMS: {e}")),
                false,
            )
        })?;
        let done = self
            .sink
            .records()
            .parts_sent(message.id)
            .await
            .map_err(|e| (TransportError::Temporary(e.to_string()), false))?;
        let mut refs = Vec::new();
        for part in &parts {
            if done.contains(&part.seq) {
                continue;
            }
            match at
                .submit(part.length, &part.hex_with_default_smsc(), SUBMIT_TIMEOUT)
                .await
            {
                Ok(mr) => {
                    refs.push(mr.to_string());
                    if let Err(e) = self
                        .sink
                        .records()
                        .part_sent(message.id, part.seq, part.total, &self.cfg.name, mr)
                        .await
                    {
                        log::error!(msg_id = message.id.0; "message {}: part {} sent but not recorded: {e}", message.id, part.seq);
                    }
                }
                Err(AtError::Cms(_, code)) => {
                    let what = format!("+CMS ERROR: {code} on part {} of {}", part.seq, part.total);
                    let e = if cms_is_temporary(code) {
                        TransportError::Temporary(what)
                    } else {
                        TransportError::Permanent(what)
                    };
                    return Err((e, false));
                }
                Err(e) if e.is_link_failure() => {
                    return Err((TransportError::Temporary(e.to_string()), true));
                }
                Err(e) => {
                    let lost = self.probe(at).await.is_err();
                    return Err((TransportError::Temporary(e.to_string()), lost));
                }
            }
        }
        Ok(SendReceipt {
            provider_ref: (!refs.is_empty()).then(|| refs.join(",")),
            ..SendReceipt::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iccid_answers() {
        let want = Some("8954340000000000001".to_string());
        assert_eq!(parse_iccid("+CCID: 8954340000000000001", "+CCID:"), want);
        assert_eq!(
            parse_iccid("^ICCID: \"8954340000000000001\"", "^ICCID:"),
            want
        );
        assert_eq!(parse_iccid("8954340000000000001", "+CCID:"), want);
        assert_eq!(parse_iccid("+CCID: ", "+CCID:"), None);
        assert_eq!(parse_iccid("+CCID: 89 54", "+CCID:"), None);
    }

    #[test]
    fn a_secret_command_shows_masked() {
        let c = Command::secret("AT+CPIN=\"1234\"", "AT+CPIN=\"****\"");
        assert_eq!(c.shown(), "AT+CPIN=\"****\"");
        assert_eq!(Command::new("AT", None).shown(), "AT");
    }

    #[test]
    fn registration_skips_the_unsolicited_form() {
        let lines = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let stat = |v: &[&str]| registration_stat(&lines(v));
        assert_eq!(stat(&["+CREG: 0,1"]).as_deref(), Some("1"));
        assert_eq!(
            stat(&["+CREG: 2,5,\"00C3\",\"0010\",7"]).as_deref(),
            Some("5")
        );
        // An unsolicited `+CREG: 1` (or a cut-off one) before the answer is not the answer.
        assert_eq!(stat(&["+CREG: 1", "+CREG: 0,1"]).as_deref(), Some("1"));
        assert_eq!(stat(&["+CREG:", "+CREG: 0,2"]).as_deref(), Some("2"));
        assert_eq!(
            stat(&["+CREG: 1,\"00C3\",\"0010\"", "+CREG: 2,1,\"00C3\",\"0010\""]).as_deref(),
            Some("1")
        );
        assert_eq!(stat(&["+CREG: 1"]), None);
        assert_eq!(stat(&["+CREG: 5,\"00C3\",\"0010\""]), None);
        assert_eq!(stat(&[]), None);
    }

    #[test]
    fn identity_skips_line_noise() {
        let id = |v: &[&str]| identity_line(v.iter().map(|s| s.to_string()).collect());
        assert_eq!(id(&["huawei"]).as_deref(), Some("huawei"));
        assert_eq!(
            id(&["#%&*~", "+CRE", "SIMCOM_Ltd"]).as_deref(),
            Some("SIMCOM_Ltd")
        );
        assert_eq!(id(&["+CGMI: huawei"]).as_deref(), Some("+CGMI: huawei"));
        assert_eq!(id(&["#%&", "?!"]), None);
        assert_eq!(id(&[]), None);
    }

    #[test]
    fn signal_words() {
        assert_eq!(signal(20), Some((-73, "excellent")));
        assert_eq!(signal(15), Some((-83, "good")));
        assert_eq!(signal(10), Some((-93, "fair")));
        assert_eq!(signal(5), Some((-103, "poor")));
        assert_eq!(signal(0), Some((-113, "none")));
        assert_eq!(signal(99), None);
    }

    #[test]
    fn cms_classes() {
        assert!(!cms_is_temporary(1), "unassigned number");
        assert!(!cms_is_temporary(10), "barred");
        assert!(cms_is_temporary(38), "network out of order");
        assert!(cms_is_temporary(42), "congestion");
        assert!(cms_is_temporary(331), "no network");
        assert!(cms_is_temporary(332), "network timeout");
        assert!(cms_is_temporary(500), "unknown");
    }
}
