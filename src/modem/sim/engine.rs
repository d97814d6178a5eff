//! The simulated modem's brain: an AT interpreter (TS 27.007 / 27.005, PDU mode) plus the SIM
//! storage, the network side and the faults. No I/O: bytes from the host go in through
//! [`Engine::feed`], and what the modem says comes back as [`Output`]s for the caller to write;
//! unsolicited codes wait in the engine until [`Engine::poll`] hands them out.
//!
//! Contracts:
//! - Any input bytes are accepted; nothing panics. A command line longer than
//!   [`MAX_LINE`] bytes is dropped, a PDU longer than [`MAX_PDU_HEX`] hex digits fails with
//!   `+CMS ERROR: 304`.
//! - Responses use TS 27.007 framing (`\r\n<info>\r\n\r\nOK\r\n`); echo is on after power-up.
//! - Unsolicited codes never interrupt a response, are held while the host types a PDU after
//!   `> ` and while a hang lasts, and are dropped only when the host asked for none (`AT+CNMI`).
//! - Garbage noise goes before a response or between its information lines, never inside a line
//!   or after the final result code's start.
//! - Time comes in as `now`; the engine keeps deadlines and [`Engine::next_deadline`] says when
//!   to call [`Engine::poll`] again, so an idle caller can sleep.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use chrono::{DateTime, FixedOffset};
use tokio::time::Instant;

use super::pdu_out::{self, PduError, STATUS_DELIVERED, SimPdu};
use super::types::{
    ConfigPatch, Fault, InvalidInput, MAX_CAPACITY, PUK, SentMessage, SimConfig, SimContents,
    StoredMessage, UssdNode, UssdResult,
};
use crate::sms::{self, DecodedPdu, UserData, hex};

/// Longest command line kept (TS 27.007 asks for at least 80 characters).
pub const MAX_LINE: usize = 1024;
/// Longest PDU accepted after `> `: an SMS-centre field and a 164-octet TPDU, in hex, with room.
pub const MAX_PDU_HEX: usize = 400;
/// Wrong PINs before the SIM asks for its PUK.
const PIN_ATTEMPTS: u8 = 3;

const CTRL_Z: u8 = 0x1A;
const ESC: u8 = 0x1B;
const BACKSPACE: u8 = 0x08;

/// What the caller should do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Bytes for the host.
    Write(Vec<u8>),
    /// Wait before the next output (the network taking its time to accept a part).
    Pause(Duration),
}

/// Static facts the modem reports about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub manufacturer: String,
    pub model: String,
    pub revision: String,
    pub imei: String,
    pub imsi: String,
}

impl Default for Identity {
    fn default() -> Self {
        Identity {
            manufacturer: "Pasarela".to_string(),
            model: "SIM-Simulator".to_string(),
            revision: concat!("pasarela-modem-sim ", env!("CARGO_PKG_VERSION")).to_string(),
            imei: "356938035643809".to_string(),
            imsi: "722341234567890".to_string(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PinState {
    Ready,
    NeedPin,
    NeedPuk,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Mode {
    Command,
    /// After `AT+CMGS=<len>`: collecting hex until Ctrl-Z.
    Pdu {
        len: usize,
        hex: Vec<u8>,
    },
}

/// Per power-up settings: reset by [`Engine::power_up`].
#[derive(Debug, Clone)]
struct Session {
    echo: bool,
    cmee: u8,
    creg_n: u8,
    cnmi: [u8; 5],
    line: Vec<u8>,
    mode: Mode,
    /// The last byte was a CR, so an LF right after it is not the start of a new line.
    after_cr: bool,
    /// `AT+CSCS`: the character set of USSD strings (`GSM`, `IRA` or `UCS2`).
    cscs: String,
    /// `AT+CUSD=<n>`: whether USSD answers are presented (`+CUSD:` codes).
    cusd_presentation: bool,
    /// The open USSD session: the code and the menu answers given so far.
    ussd_path: Option<Vec<String>>,
}

impl Default for Session {
    fn default() -> Self {
        Session {
            echo: true,
            cmee: 0,
            creg_n: 0,
            cnmi: [0; 5],
            line: Vec::new(),
            mode: Mode::Command,
            after_cr: false,
            cscs: "GSM".to_string(),
            cusd_presentation: false,
            ussd_path: None,
        }
    }
}

#[derive(Debug, Clone)]
enum Content {
    Deliver {
        from: String,
        text: String,
        part: Option<[u8; 2]>,
    },
    Report {
        recipient: String,
        reference: u8,
    },
}

#[derive(Debug, Clone)]
struct Slot {
    stat: u8,
    pdu: SimPdu,
    content: Content,
}

#[derive(Debug, Clone)]
struct SentPart {
    hex: String,
    reference: u8,
    user_data: UserData,
}

#[derive(Debug, Clone)]
struct PendingReport {
    due: Instant,
    reference: u8,
    recipient: String,
    submitted: DateTime<FixedOffset>,
}

#[derive(Debug, Default)]
struct Faults {
    hang_until: Option<Instant>,
    /// `HangOnPin`: the hang the next `AT+CPIN=` starts.
    hang_on_pin: Option<Duration>,
    garbage_until: Option<Instant>,
    next_noise: Option<Instant>,
    cms: Option<(u16, f64)>,
}

/// A final result code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Final {
    Ok,
    Error,
    /// `+CME ERROR: <n>` (plain `ERROR` when `AT+CMEE=0`).
    Cme(u16),
    /// `+CMS ERROR: <n>` (TS 27.005 reports these whatever `AT+CMEE` says).
    Cms(u16),
}

#[derive(Debug, Default)]
struct Response {
    info: Vec<String>,
    result: Option<Final>,
}

impl Response {
    fn ok() -> Self {
        Response {
            info: Vec::new(),
            result: Some(Final::Ok),
        }
    }

    fn info(lines: impl IntoIterator<Item = String>) -> Self {
        Response {
            info: lines.into_iter().collect(),
            result: Some(Final::Ok),
        }
    }

    fn fail(f: Final) -> Self {
        Response {
            info: Vec::new(),
            result: Some(f),
        }
    }
}

/// Small non-cryptographic generator (xorshift64*) for fault probabilities and noise.
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Unsolicited lines a Huawei-style stick sprays.
const NOISE_LINES: &[&str] = &[
    "^RSSI:12",
    "^BOOT:20471619,0,0,0,72",
    "+CREG: 1",
    "RING",
    "^MODE:5,4",
    "^DSFLOWRPT:0000012C,00000000,00000000,0000000000001E3A,0000000000002A1B,0003E800,0003E800",
    "^SRVST:2",
];
/// Bytes for raw noise: no letters, digits, `>` or `+`, so noise never looks like a result code
/// or the CMGS prompt, and high bytes that are not UTF-8.
const NOISE_BYTES: &[u8] = b"#%&*~|!?.;:=_-@$ \x00\x7f\x80\xa7\xfe\xff";

/// The simulated modem, SIM and network.
#[derive(Debug)]
pub struct Engine {
    config: SimConfig,
    identity: Identity,
    session: Session,
    pin: PinState,
    pin_failures: u8,
    slots: BTreeMap<u16, Slot>,
    /// Parts the network could not deliver yet (SIM full, locked, no registration).
    network: VecDeque<(SimPdu, Content)>,
    next_reference: u8,
    next_concat: u8,
    sent: Vec<SentMessage>,
    partial: HashMap<(String, u16, u8), Vec<Option<SentPart>>>,
    reports: Vec<PendingReport>,
    urcs: VecDeque<Vec<u8>>,
    faults: Faults,
    rng: Rng,
}

fn wall_clock() -> DateTime<FixedOffset> {
    // Argentina has no daylight saving time: a fixed -03:00 is what the network stamps.
    match FixedOffset::west_opt(3 * 3600) {
        Some(offset) => chrono::Utc::now().with_timezone(&offset),
        None => chrono::Utc::now().fixed_offset(),
    }
}

fn secs(s: f64) -> Duration {
    Duration::try_from_secs_f64(s).unwrap_or(Duration::ZERO)
}

impl Engine {
    /// A modem just powered up with `config`; `seed` drives fault probabilities and noise.
    pub fn new(config: SimConfig, identity: Identity, seed: u64) -> Self {
        let mut engine = Engine {
            config,
            identity,
            session: Session::default(),
            pin: PinState::Ready,
            pin_failures: 0,
            slots: BTreeMap::new(),
            network: VecDeque::new(),
            next_reference: 0,
            next_concat: 1,
            sent: Vec::new(),
            partial: HashMap::new(),
            reports: Vec::new(),
            urcs: VecDeque::new(),
            faults: Faults::default(),
            rng: Rng(seed | 1),
        };
        engine.power_up();
        engine
    }

    /// A power cycle (start, or plugged in again): session settings back to defaults, the SIM
    /// locked again when it has a PIN; stored messages and the sent list survive.
    pub fn power_up(&mut self) {
        self.session = Session::default();
        self.urcs.clear();
        if self.pin != PinState::NeedPuk {
            self.pin = if self.config.pin.is_some() {
                PinState::NeedPin
            } else {
                PinState::Ready
            };
        }
    }

    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    /// Applies a partial configuration; nothing changes when a field is invalid.
    pub fn set_config(&mut self, patch: ConfigPatch) -> Result<(), InvalidInput> {
        if let Some(c) = patch.capacity
            && !(1..=MAX_CAPACITY).contains(&c)
        {
            return Err(InvalidInput::new("capacity", "must be 1-999"));
        }
        if let Some(Some(pin)) = &patch.pin
            && !(4..=8).contains(&pin.len())
        {
            return Err(InvalidInput::new("pin", "must be 4-8 digits"));
        }
        if let Some(Some(pin)) = &patch.pin
            && !pin.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(InvalidInput::new("pin", "must be 4-8 digits"));
        }
        if let Some(r) = patch.rssi
            && r > 31
            && r != 99
        {
            return Err(InvalidInput::new("rssi", "must be 0-31 or 99"));
        }
        if let Some(op) = &patch.operator
            && (op.is_empty() || op.len() > 24 || op.contains(['"', '\r', '\n']))
        {
            return Err(InvalidInput::new(
                "operator",
                "must be 1-24 characters without quotes",
            ));
        }
        if let Some(smsc) = &patch.smsc
            && (!smsc.starts_with('+') || pdu_out::smsc_field(smsc).is_err())
        {
            return Err(InvalidInput::new("smsc", "must be + and up to 20 digits"));
        }
        if let Some(iccid) = &patch.iccid
            && (!(18..=20).contains(&iccid.len()) || !iccid.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(InvalidInput::new("iccid", "must be 18-20 digits"));
        }
        if let Some(ussd) = &patch.ussd {
            for (code, node) in ussd {
                if code.is_empty() || code.len() > 160 || code.contains('"') {
                    return Err(InvalidInput::new(
                        "ussd",
                        format!("code `{code}` must be 1-160 characters, no quotes"),
                    ));
                }
                node.validate(code)?;
            }
        }
        let c = &mut self.config;
        if let Some(v) = patch.ussd {
            c.ussd = v;
            self.session.ussd_path = None;
        }
        if let Some(v) = patch.ussd_hex {
            c.ussd_hex = v;
        }
        if let Some(v) = patch.send_delay_ms {
            c.send_delay_ms = v;
        }
        if let Some(v) = patch.capacity {
            c.capacity = v;
        }
        if let Some(v) = patch.pin {
            let locks = v.is_some();
            c.pin = v;
            self.pin = if locks {
                PinState::NeedPin
            } else {
                PinState::Ready
            };
            self.pin_failures = 0;
        }
        if let Some(v) = patch.status_report_delay_ms {
            c.status_report_delay_ms = v;
        }
        if let Some(v) = patch.rssi {
            c.rssi = v;
        }
        if let Some(v) = patch.registration {
            c.registration = v;
        }
        if let Some(v) = patch.operator {
            c.operator = v;
        }
        if let Some(v) = patch.smsc {
            c.smsc = v;
        }
        if let Some(v) = patch.iccid {
            c.iccid = v;
        }
        self.deliver_waiting();
        Ok(())
    }

    /// Starts or ends a fault; `Unplug` is the link's business and is ignored here.
    pub fn apply_fault(&mut self, fault: &Fault, now: Instant) -> Result<(), InvalidInput> {
        fault.validate()?;
        match *fault {
            Fault::Hang { secs: s } => self.faults.hang_until = Some(now + secs(s)),
            Fault::HangOnPin { secs: s } => self.faults.hang_on_pin = Some(secs(s)),
            Fault::Garbage { secs: s } => {
                self.faults.garbage_until = Some(now + secs(s));
                self.faults.next_noise = Some(now);
            }
            Fault::CmsError { code, probability } => {
                self.faults.cms = (probability > 0.0).then_some((code, probability));
            }
            Fault::Clear => self.faults = Faults::default(),
            Fault::Unplug { .. } => {}
        }
        Ok(())
    }

    fn hung(&self, now: Instant) -> bool {
        self.faults.hang_until.is_some_and(|t| now < t)
    }

    fn garbage(&self, now: Instant) -> bool {
        self.faults.garbage_until.is_some_and(|t| now < t)
    }

    /// Puts a text from `from` on the network; its parts are stored on the SIM (with `+CMTI`) as
    /// room allows. Returns the number of parts.
    pub fn inbound(&mut self, from: &str, text: &str) -> Result<usize, PduError> {
        let reference = self.next_concat;
        let pdus =
            pdu_out::encode_deliver(&self.config.smsc, from, text, &wall_clock(), reference)?;
        self.next_concat = self.next_concat.wrapping_add(1);
        let total = pdus.len();
        for (i, pdu) in pdus.into_iter().enumerate() {
            let part_text = sms::decode_pdu(&pdu.bytes, true)
                .ok()
                .and_then(|d| d.user_data().map(UserData::text))
                .unwrap_or_default();
            let content = Content::Deliver {
                from: from.to_string(),
                text: part_text,
                part: (total > 1).then_some([i as u8 + 1, total as u8]),
            };
            self.network.push_back((pdu, content));
        }
        self.deliver_waiting();
        Ok(total)
    }

    /// Puts raw PDU bytes (SMS-centre field first) on the network as they are, even ones that
    /// do not decode: how tests give the host a corrupt message.
    pub fn inbound_raw(&mut self, bytes: Vec<u8>) {
        let smsc_len = bytes.first().map_or(0, |n| usize::from(*n) + 1);
        let tpdu_len = bytes.len().saturating_sub(smsc_len);
        let content = Content::Deliver {
            from: "?".to_string(),
            text: "(raw PDU)".to_string(),
            part: None,
        };
        self.network
            .push_back((SimPdu { bytes, tpdu_len }, content));
        self.deliver_waiting();
    }

    fn free_slot(&self) -> Option<u16> {
        (1..=self.config.capacity).find(|i| !self.slots.contains_key(i))
    }

    /// Moves parts from the network queue to free SIM slots while the SIM can receive.
    fn deliver_waiting(&mut self) {
        if self.pin != PinState::Ready || !self.config.registration.is_registered() {
            return;
        }
        while !self.network.is_empty() {
            let Some(index) = self.free_slot() else {
                return;
            };
            let Some((pdu, content)) = self.network.pop_front() else {
                return;
            };
            self.slots.insert(
                index,
                Slot {
                    stat: 0,
                    pdu,
                    content,
                },
            );
            if self.session.cnmi[1] != 0 {
                self.urcs
                    .push_back(format!("\r\n+CMTI: \"SM\",{index}\r\n").into_bytes());
            }
        }
    }

    pub fn sent(&self) -> &[SentMessage] {
        &self.sent
    }

    pub fn clear_sent(&mut self) {
        self.sent.clear();
        self.partial.clear();
    }

    pub fn sim_contents(&self) -> SimContents {
        SimContents {
            used: self.slots.len(),
            capacity: self.config.capacity,
            waiting: self.network.len(),
            messages: self
                .slots
                .iter()
                .map(|(&index, slot)| match &slot.content {
                    Content::Deliver { from, text, part } => StoredMessage {
                        index,
                        stat: slot.stat,
                        kind: "deliver",
                        from: from.clone(),
                        text: text.clone(),
                        part: *part,
                    },
                    Content::Report {
                        recipient,
                        reference,
                    } => StoredMessage {
                        index,
                        stat: slot.stat,
                        kind: "status_report",
                        from: recipient.clone(),
                        text: format!("delivered, TP-MR {reference}"),
                        part: None,
                    },
                })
                .collect(),
        }
    }

    /// When [`Engine::poll`] next has something to do, if ever.
    pub fn next_deadline(&self) -> Option<Instant> {
        let mut times: Vec<Instant> = self.reports.iter().map(|r| r.due).collect();
        times.extend(self.faults.hang_until);
        if self.faults.garbage_until.is_some() {
            times.extend(self.faults.next_noise);
        }
        times.into_iter().min()
    }

    /// Due status reports, garbage noise and held unsolicited codes: bytes to write now.
    pub fn poll(&mut self, now: Instant) -> Vec<u8> {
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.reports)
            .into_iter()
            .partition(|r| r.due <= now);
        self.reports = later;
        for report in due {
            self.report_arrives(report);
        }
        if self.faults.hang_until.is_some_and(|t| now >= t) {
            self.faults.hang_until = None;
        }
        if self.faults.garbage_until.is_some_and(|t| now >= t) {
            self.faults.garbage_until = None;
            self.faults.next_noise = None;
        }
        if self.hung(now) || matches!(self.session.mode, Mode::Pdu { .. }) {
            return Vec::new();
        }
        let mut out: Vec<u8> = self.urcs.drain(..).flatten().collect();
        if self.garbage(now) && self.faults.next_noise.is_some_and(|t| now >= t) {
            out.extend(self.noise());
            let gap = 150 + self.rng.below(600) as u64;
            self.faults.next_noise = Some(now + Duration::from_millis(gap));
        }
        out
    }

    fn report_arrives(&mut self, report: PendingReport) {
        let Ok(pdu) = pdu_out::encode_status_report(
            &self.config.smsc,
            report.reference,
            &report.recipient,
            &report.submitted,
            &wall_clock(),
            STATUS_DELIVERED,
        ) else {
            return;
        };
        match self.session.cnmi[3] {
            1 => self
                .urcs
                .push_back(format!("\r\n+CDS: {}\r\n{}\r\n", pdu.tpdu_len, pdu.hex()).into_bytes()),
            2 => {
                let Some(index) = self.free_slot() else {
                    return;
                };
                self.slots.insert(
                    index,
                    Slot {
                        stat: 0,
                        pdu,
                        content: Content::Report {
                            recipient: report.recipient,
                            reference: report.reference,
                        },
                    },
                );
                self.urcs
                    .push_back(format!("\r\n+CDSI: \"SM\",{index}\r\n").into_bytes());
            }
            _ => {}
        }
    }

    fn noise(&mut self) -> Vec<u8> {
        match self.rng.below(3) {
            0 => {
                let n = 1 + self.rng.below(12);
                (0..n)
                    .map(|_| NOISE_BYTES[self.rng.below(NOISE_BYTES.len())])
                    .collect()
            }
            1 => {
                let line = NOISE_LINES[self.rng.below(NOISE_LINES.len())];
                format!("\r\n{line}\r\n").into_bytes()
            }
            _ => {
                // Half a line: the response's own leading CR LF ends it.
                let line = NOISE_LINES[self.rng.below(NOISE_LINES.len())];
                let cut = 1 + self.rng.below(line.len().saturating_sub(1).max(1));
                format!("\r\n{}", &line[..cut.min(line.len())]).into_bytes()
            }
        }
    }

    /// Feeds bytes from the host; returns what the modem says, in order.
    pub fn feed(&mut self, input: &[u8], now: Instant) -> Vec<Output> {
        if self.hung(now) {
            return Vec::new();
        }
        let mut out = Vec::new();
        let mut echo = Vec::new();
        for &b in input {
            if let Mode::Pdu { hex, .. } = &mut self.session.mode {
                match b {
                    CTRL_Z => {
                        flush_echo(&mut out, &mut echo);
                        self.finish_pdu(now, &mut out);
                    }
                    ESC => {
                        flush_echo(&mut out, &mut echo);
                        self.session.mode = Mode::Command;
                        out.push(Output::Write(self.frame(Response::ok(), now)));
                    }
                    b'\r' | b'\n' | b' ' => {}
                    BACKSPACE => {
                        hex.pop();
                        if self.session.echo {
                            echo.push(b);
                        }
                    }
                    _ => {
                        if hex.len() <= MAX_PDU_HEX {
                            hex.push(b);
                        }
                        if self.session.echo {
                            echo.push(b);
                        }
                    }
                }
                continue;
            }
            match b {
                b'\r' => {
                    if self.session.echo {
                        echo.push(b);
                    }
                    flush_echo(&mut out, &mut echo);
                    self.session.after_cr = true;
                    let line = std::mem::take(&mut self.session.line);
                    self.run_line(&line, now, &mut out);
                    continue;
                }
                b'\n' if self.session.after_cr || self.session.line.is_empty() => {}
                ESC => self.session.line.clear(),
                BACKSPACE => {
                    self.session.line.pop();
                    if self.session.echo {
                        echo.push(b);
                    }
                }
                _ => {
                    if self.session.line.len() < MAX_LINE {
                        self.session.line.push(b);
                    } else {
                        self.session.line.clear();
                    }
                    if self.session.echo {
                        echo.push(b);
                    }
                }
            }
            self.session.after_cr = false;
        }
        flush_echo(&mut out, &mut echo);
        out
    }

    fn run_line(&mut self, line: &[u8], now: Instant, out: &mut Vec<Output>) {
        let text = String::from_utf8_lossy(line);
        let text = text.trim_matches(|c: char| c.is_whitespace() || c == '\0');
        let Some(body) = text
            .get(..2)
            .filter(|p| p.eq_ignore_ascii_case("AT"))
            .map(|_| &text[2..])
        else {
            return;
        };
        if body.trim().to_ascii_uppercase().starts_with("+CPIN=")
            && let Some(hang) = self.faults.hang_on_pin.take()
        {
            self.faults.hang_until = Some(now + hang);
            return;
        }
        let response = self.command(body.trim());
        if let Mode::Pdu { .. } = self.session.mode {
            out.push(Output::Write(b"\r\n> ".to_vec()));
            return;
        }
        out.push(Output::Write(self.frame(response, now)));
    }

    fn frame(&mut self, response: Response, now: Instant) -> Vec<u8> {
        let garbage = self.garbage(now);
        let mut bytes = Vec::new();
        if garbage {
            bytes.extend(self.noise());
        }
        for (i, line) in response.info.iter().enumerate() {
            if i == 0 {
                bytes.extend_from_slice(b"\r\n");
            } else if garbage && self.rng.below(2) == 0 {
                let noise = NOISE_LINES[self.rng.below(NOISE_LINES.len())];
                bytes.extend_from_slice(format!("{noise}\r\n").as_bytes());
            }
            bytes.extend_from_slice(line.as_bytes());
            bytes.extend_from_slice(b"\r\n");
        }
        if let Some(result) = response.result {
            if garbage && !response.info.is_empty() && self.rng.below(2) == 0 {
                bytes.extend(self.noise());
            }
            let code = match result {
                Final::Ok => "OK".to_string(),
                Final::Error => "ERROR".to_string(),
                Final::Cme(n) if self.session.cmee > 0 => format!("+CME ERROR: {n}"),
                Final::Cme(_) => "ERROR".to_string(),
                Final::Cms(n) => format!("+CMS ERROR: {n}"),
            };
            bytes.extend_from_slice(format!("\r\n{code}\r\n").as_bytes());
        }
        bytes
    }

    fn finish_pdu(&mut self, now: Instant, out: &mut Vec<Output>) {
        let Mode::Pdu { len, hex } = std::mem::replace(&mut self.session.mode, Mode::Command)
        else {
            return;
        };
        let delay = Duration::from_millis(self.config.send_delay_ms);
        let result = self.submit(len, &hex, now);
        if !delay.is_zero() {
            out.push(Output::Pause(delay));
        }
        let response = match result {
            Ok(reference) => Response::info([format!("+CMGS: {reference}")]),
            Err(code) => Response::fail(Final::Cms(code)),
        };
        out.push(Output::Write(self.frame(response, now)));
    }

    /// Accepts one SMS-SUBMIT typed after `> `; returns its TP-MR or a `+CMS ERROR` code.
    fn submit(&mut self, len: usize, typed: &[u8], now: Instant) -> Result<u8, u16> {
        const INVALID_PDU: u16 = 304;
        if typed.len() > MAX_PDU_HEX {
            return Err(INVALID_PDU);
        }
        let typed = std::str::from_utf8(typed).map_err(|_| INVALID_PDU)?;
        let bytes = hex::decode(typed).map_err(|_| INVALID_PDU)?;
        let smsc_len = usize::from(*bytes.first().ok_or(INVALID_PDU)?);
        if bytes.len() != 1 + smsc_len + len {
            return Err(INVALID_PDU);
        }
        let DecodedPdu::Submit(submit) = sms::decode_pdu(&bytes, true).map_err(|_| INVALID_PDU)?
        else {
            return Err(INVALID_PDU);
        };
        if !self.config.registration.is_registered() {
            return Err(331);
        }
        if let Some((code, probability)) = self.faults.cms
            && self.rng.unit() < probability
        {
            return Err(code);
        }
        let reference = self.next_reference;
        self.next_reference = self.next_reference.wrapping_add(1);
        let submitted = wall_clock();
        if submit.status_report_request
            && let Some(ms) = self.config.status_report_delay_ms
        {
            self.reports.push(PendingReport {
                due: now + Duration::from_millis(ms),
                reference,
                recipient: submit.to.value.clone(),
                submitted,
            });
        }
        let part = SentPart {
            hex: hex::encode(&bytes),
            reference,
            user_data: submit.user_data.clone(),
        };
        let to = submit.to.value.clone();
        let srr = submit.status_report_request;
        let encoding = submit.dcs.encoding.as_str();
        match submit.user_data.concat.filter(|c| c.total > 1) {
            None => self.record_sent(to, vec![part], encoding, srr, submitted),
            Some(c) => {
                let key = (to.clone(), c.reference, c.total);
                let group = self
                    .partial
                    .entry(key.clone())
                    .or_insert_with(|| vec![None; usize::from(c.total)]);
                if let Some(slot) = usize::from(c.seq)
                    .checked_sub(1)
                    .and_then(|i| group.get_mut(i))
                {
                    *slot = Some(part);
                }
                if group.iter().all(Option::is_some)
                    && let Some(group) = self.partial.remove(&key)
                {
                    let parts = group.into_iter().flatten().collect();
                    self.record_sent(to, parts, encoding, srr, submitted);
                }
            }
        }
        Ok(reference)
    }

    fn record_sent(
        &mut self,
        to: String,
        parts: Vec<SentPart>,
        encoding: &'static str,
        status_report_requested: bool,
        time: DateTime<FixedOffset>,
    ) {
        let text = sms::join_text(parts.iter().map(|p| Some(&p.user_data)));
        self.sent.push(SentMessage {
            to,
            text,
            parts: parts.len(),
            pdus: parts.iter().map(|p| p.hex.clone()).collect(),
            message_references: parts.iter().map(|p| p.reference).collect(),
            encoding,
            status_report_requested,
            time: time.to_rfc3339(),
        });
    }

    /// Runs one command (the text after `AT`).
    fn command(&mut self, body: &str) -> Response {
        if body.is_empty() {
            return Response::ok();
        }
        let upper = body.to_ascii_uppercase();
        // Basic (V.250) commands: a letter and an optional digit.
        match upper.as_str() {
            "E" | "E0" => {
                self.session.echo = false;
                return Response::ok();
            }
            "E1" => {
                self.session.echo = true;
                return Response::ok();
            }
            "Z" | "Z0" | "&F" | "&F0" => {
                self.session.echo = true;
                self.session.cmee = 0;
                self.session.cnmi = [0; 5];
                return Response::ok();
            }
            "V1" | "Q0" | "&C1" | "&D2" | "&W" => return Response::ok(),
            "I" | "I0" => {
                return Response::info([
                    self.identity.manufacturer.clone(),
                    self.identity.model.clone(),
                    format!("Revision: {}", self.identity.revision),
                ]);
            }
            _ => {}
        }
        let Some(rest) = upper.strip_prefix('+') else {
            return Response::fail(Final::Error);
        };
        let name_len = rest
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(rest.len());
        let name = &rest[..name_len];
        let suffix = &body[1 + name_len..];
        let form = if suffix.is_empty() {
            Form::Exec
        } else if suffix == "?" {
            Form::Read
        } else if suffix == "=?" {
            Form::Test
        } else if let Some(args) = suffix.strip_prefix('=') {
            Form::Set(args.trim())
        } else {
            return Response::fail(Final::Error);
        };
        self.extended(name, form)
    }

    fn sim_ready(&self) -> Result<(), Response> {
        match self.pin {
            PinState::Ready => Ok(()),
            PinState::NeedPin => Err(Response::fail(Final::Cme(11))),
            PinState::NeedPuk => Err(Response::fail(Final::Cme(12))),
        }
    }

    /// SMS commands report a locked SIM as `+CMS ERROR: 311`/`316` (TS 27.005 §3.2.5).
    fn sms_ready(&self) -> Result<(), Response> {
        match self.pin {
            PinState::Ready => Ok(()),
            PinState::NeedPin => Err(Response::fail(Final::Cms(311))),
            PinState::NeedPuk => Err(Response::fail(Final::Cms(316))),
        }
    }

    fn extended(&mut self, name: &str, form: Form<'_>) -> Response {
        let result = match name {
            "CGMI" | "GMI" => Ok(self.ident(form, |i| i.manufacturer.clone())),
            "CGMM" | "GMM" => Ok(self.ident(form, |i| i.model.clone())),
            "CGMR" | "GMR" => Ok(self.ident(form, |i| i.revision.clone())),
            "CGSN" | "GSN" => Ok(self.ident(form, |i| i.imei.clone())),
            "CIMI" => self
                .sim_ready()
                .map(|_| self.ident(form, |i| i.imsi.clone())),
            "CMEE" => Ok(self.cmee(form)),
            "CFUN" => Ok(match form {
                Form::Read => Response::info(["+CFUN: 1".to_string()]),
                Form::Test => Response::info(["+CFUN: (0,1,4),(0,1)".to_string()]),
                Form::Set(args) if numbers(args).is_some_and(|n| n.len() <= 2) => Response::ok(),
                _ => Response::fail(Final::Cme(50)),
            }),
            "CSCS" => Ok(match form {
                Form::Read => Response::info([format!("+CSCS: \"{}\"", self.session.cscs)]),
                Form::Test => Response::info(["+CSCS: (\"GSM\",\"IRA\",\"UCS2\")".to_string()]),
                Form::Set(args) if ["\"GSM\"", "\"IRA\"", "\"UCS2\""].contains(&args) => {
                    self.session.cscs = args.trim_matches('"').to_string();
                    Response::ok()
                }
                _ => Response::fail(Final::Cme(50)),
            }),
            "CUSD" => self.sim_ready().map(|_| self.cusd(form)),
            "CPIN" => Ok(self.cpin(form)),
            // The ICCID reads even while the SIM asks for its PIN.
            "CCID" => Ok(match form {
                Form::Exec | Form::Read => {
                    Response::info([format!("+CCID: {}", self.config.iccid)])
                }
                Form::Test => Response::ok(),
                Form::Set(_) => Response::fail(Final::Error),
            }),
            "CSQ" => Ok(match form {
                Form::Exec => Response::info([format!("+CSQ: {},99", self.config.rssi)]),
                Form::Test => Response::info(["+CSQ: (0-31,99),(0-7,99)".to_string()]),
                _ => Response::fail(Final::Error),
            }),
            "CREG" => Ok(self.creg(form)),
            "COPS" => Ok(match form {
                Form::Read if self.config.registration.is_registered() => {
                    Response::info([format!("+COPS: 0,0,\"{}\"", self.config.operator)])
                }
                Form::Read => Response::info(["+COPS: 0".to_string()]),
                Form::Set(args) if args == "0" || args.starts_with("3,") => Response::ok(),
                _ => Response::fail(Final::Error),
            }),
            "CMGF" => Ok(match form {
                Form::Read => Response::info(["+CMGF: 0".to_string()]),
                Form::Test => Response::info(["+CMGF: (0)".to_string()]),
                Form::Set("0") => Response::ok(),
                Form::Set(_) => Response::fail(Final::Cms(303)),
                _ => Response::fail(Final::Error),
            }),
            "CSCA" => self.sms_ready().map(|_| self.csca(form)),
            "CPMS" => self.sms_ready().map(|_| self.cpms(form)),
            "CNMI" => Ok(self.cnmi(form)),
            "CMGR" => self.sms_ready().map(|_| self.cmgr(form)),
            "CMGL" => self.sms_ready().map(|_| self.cmgl(form)),
            "CMGD" => self.sms_ready().map(|_| self.cmgd(form)),
            "CMGS" => self.sms_ready().map(|_| self.cmgs(form)),
            "CSMS" => Ok(match form {
                Form::Read => Response::info(["+CSMS: 0,1,1,1".to_string()]),
                Form::Test => Response::info(["+CSMS: (0)".to_string()]),
                Form::Set("0") => Response::info(["+CSMS: 1,1,1".to_string()]),
                _ => Response::fail(Final::Cms(303)),
            }),
            _ => Ok(Response::fail(Final::Error)),
        };
        result.unwrap_or_else(|r| r)
    }

    /// `AT+CUSD` (TS 27.007 §7.15): `=<n>[,<str>[,<dcs>]]`. The answer comes after `OK` as an
    /// unsolicited `+CUSD:` (when presentation is on, which `<n>` = 1 turns on).
    fn cusd(&mut self, form: Form<'_>) -> Response {
        let args = match form {
            Form::Read => {
                return Response::info([format!(
                    "+CUSD: {}",
                    u8::from(self.session.cusd_presentation)
                )]);
            }
            Form::Test => return Response::info(["+CUSD: (0-2)".to_string()]),
            Form::Exec => return Response::ok(),
            Form::Set(args) => args,
        };
        let (n, rest) = match args.split_once(',') {
            Some((n, rest)) => (n.trim(), Some(rest)),
            None => (args.trim(), None),
        };
        let n: u8 = match n.parse() {
            Ok(n @ 0..=2) => n,
            _ => return Response::fail(Final::Cme(50)),
        };
        if n == 2 {
            self.session.ussd_path = None;
            return Response::ok();
        }
        self.session.cusd_presentation = n == 1;
        let Some(rest) = rest else {
            return Response::ok();
        };
        let raw = match (rest.find('"'), rest.rfind('"')) {
            (Some(a), Some(b)) if b > a => &rest[a + 1..b],
            _ => return Response::fail(Final::Cme(50)),
        };
        let Some(request) = self.ussd_request_text(raw) else {
            return Response::fail(Final::Cme(50));
        };
        if !self.config.registration.is_registered() {
            return Response::fail(Final::Cme(30));
        }
        let (path, node) = match self.session.ussd_path.take() {
            Some(mut path) => {
                let current = self.ussd_node(&path);
                match current.and_then(|c| c.menu.get(&request)).cloned() {
                    Some(next) => {
                        path.push(request);
                        (path, next)
                    }
                    None => {
                        self.push_cusd(0, "Opcion invalida", false);
                        return Response::ok();
                    }
                }
            }
            None => match self.config.ussd.get(&request).cloned() {
                Some(node) => (vec![request], node),
                None => {
                    self.push_cusd_status(4);
                    return Response::ok();
                }
            },
        };
        match node.result {
            UssdResult::Answer => {
                let menu = !node.menu.is_empty();
                if menu {
                    self.session.ussd_path = Some(path);
                }
                self.push_cusd(u8::from(menu), &node.text, node.ucs2);
                Response::ok()
            }
            UssdResult::Ended => {
                self.push_cusd_status(2);
                Response::ok()
            }
            UssdResult::NotSupported => {
                self.push_cusd_status(4);
                Response::ok()
            }
            UssdResult::Error => Response::fail(Final::Cme(100)),
            UssdResult::Silent => Response::ok(),
        }
    }

    /// The request's text: UCS-2 hex under `AT+CSCS="UCS2"`; hex of packed GSM 7-bit from
    /// hosts that encode it (Huawei style); else as typed.
    fn ussd_request_text(&self, raw: &str) -> Option<String> {
        let is_code =
            |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic() || b == b' ');
        if self.session.cscs == "UCS2" {
            let bytes = hex::decode(raw).ok()?;
            return crate::sms::ucs2::decode(&bytes, 0).ok();
        }
        let plain_code = raw
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'*' || b == b'#');
        if !plain_code
            && raw.len() >= 2
            && raw.len().is_multiple_of(2)
            && let Ok(bytes) = hex::decode(raw)
        {
            let count = bytes.len() * 8 / 7;
            if let Some(mut septets) = crate::sms::gsm7::unpack(&bytes, 0, count) {
                if count.is_multiple_of(8) && matches!(septets.last(), Some(&0x0D) | Some(&0)) {
                    septets.pop();
                }
                let text = crate::sms::gsm7::decode(&septets);
                if is_code(&text) {
                    return Some(text);
                }
            }
        }
        is_code(raw).then(|| raw.to_string())
    }

    fn ussd_node(&self, path: &[String]) -> Option<&UssdNode> {
        let (first, rest) = path.split_first()?;
        let mut node = self.config.ussd.get(first)?;
        for key in rest {
            node = node.menu.get(key)?;
        }
        Some(node)
    }

    fn push_cusd_status(&mut self, m: u8) {
        self.session.ussd_path = None;
        if self.session.cusd_presentation {
            self.urcs
                .push_back(format!("\r\n+CUSD: {m}\r\n").into_bytes());
        }
    }

    /// Queues `+CUSD: <m>,"<str>",<dcs>` in the form a modem with this session's settings
    /// uses: text, UCS-2 hex or (Huawei style) packed GSM 7-bit hex. A menu's line breaks
    /// stay inside the quotes, as modems send them.
    fn push_cusd(&mut self, m: u8, text: &str, ucs2: bool) {
        if m == 0 {
            self.session.ussd_path = None;
        }
        if !self.session.cusd_presentation {
            return;
        }
        let (body, dcs) = if ucs2 {
            (hex::encode(&crate::sms::ucs2::encode(text)), 72)
        } else if self.session.cscs == "UCS2" {
            (hex::encode(&crate::sms::ucs2::encode(text)), 15)
        } else if self.config.ussd_hex {
            let mut septets = crate::sms::gsm7::encode(text).unwrap_or_default();
            // Seven spare bits would read as an `@`: fill them with a CR (TS 23.038 §6.1.2.3.1).
            if septets.len() % 8 == 7 {
                septets.push(0x0D);
            }
            (hex::encode(&crate::sms::gsm7::pack(&septets, 0)), 15)
        } else {
            (text.replace('\n', "\r\n"), 15)
        };
        self.urcs
            .push_back(format!("\r\n+CUSD: {m},\"{body}\",{dcs}\r\n").into_bytes());
    }

    fn ident(&self, form: Form<'_>, value: impl Fn(&Identity) -> String) -> Response {
        match form {
            Form::Exec => Response::info([value(&self.identity)]),
            Form::Test => Response::ok(),
            _ => Response::fail(Final::Error),
        }
    }

    fn cmee(&mut self, form: Form<'_>) -> Response {
        match form {
            Form::Read => Response::info([format!("+CMEE: {}", self.session.cmee)]),
            Form::Test => Response::info(["+CMEE: (0-2)".to_string()]),
            Form::Set(args) => match args.parse::<u8>() {
                Ok(n @ 0..=2) => {
                    self.session.cmee = n;
                    Response::ok()
                }
                _ => Response::fail(Final::Cme(50)),
            },
            Form::Exec => {
                self.session.cmee = 0;
                Response::ok()
            }
        }
    }

    fn cpin(&mut self, form: Form<'_>) -> Response {
        match form {
            Form::Read => Response::info([match self.pin {
                PinState::Ready => "+CPIN: READY".to_string(),
                PinState::NeedPin => "+CPIN: SIM PIN".to_string(),
                PinState::NeedPuk => "+CPIN: SIM PUK".to_string(),
            }]),
            Form::Test => Response::ok(),
            Form::Set(args) => {
                let values = quoted_list(args);
                match (self.pin, values.as_slice()) {
                    (PinState::Ready, [_]) => Response::ok(),
                    (PinState::NeedPin, [pin]) => {
                        if self.config.pin.as_deref() == Some(pin.as_str()) {
                            self.pin = PinState::Ready;
                            self.pin_failures = 0;
                            self.deliver_waiting();
                            Response::ok()
                        } else {
                            self.pin_failures += 1;
                            if self.pin_failures >= PIN_ATTEMPTS {
                                self.pin = PinState::NeedPuk;
                            }
                            Response::fail(Final::Cme(16))
                        }
                    }
                    (PinState::NeedPuk, [puk, new_pin]) => {
                        if puk == PUK && (4..=8).contains(&new_pin.len()) {
                            self.config.pin = Some(new_pin.clone());
                            self.pin = PinState::Ready;
                            self.pin_failures = 0;
                            self.deliver_waiting();
                            Response::ok()
                        } else {
                            Response::fail(Final::Cme(16))
                        }
                    }
                    (PinState::NeedPuk, [_]) => Response::fail(Final::Cme(12)),
                    _ => Response::fail(Final::Cme(50)),
                }
            }
            Form::Exec => Response::fail(Final::Cme(50)),
        }
    }

    fn creg(&mut self, form: Form<'_>) -> Response {
        match form {
            Form::Read => Response::info([format!(
                "+CREG: {},{}",
                self.session.creg_n,
                self.config.registration.creg_stat()
            )]),
            Form::Test => Response::info(["+CREG: (0-2)".to_string()]),
            Form::Set(args) => match args.parse::<u8>() {
                Ok(n @ 0..=2) => {
                    self.session.creg_n = n;
                    Response::ok()
                }
                _ => Response::fail(Final::Cme(50)),
            },
            Form::Exec => Response::ok(),
        }
    }

    fn csca(&mut self, form: Form<'_>) -> Response {
        match form {
            Form::Read => Response::info([format!("+CSCA: \"{}\",145", self.config.smsc)]),
            Form::Test => Response::ok(),
            Form::Set(args) => match quoted_list(args).first() {
                Some(number) if number.starts_with('+') && pdu_out::smsc_field(number).is_ok() => {
                    self.config.smsc = number.clone();
                    Response::ok()
                }
                _ => Response::fail(Final::Cms(330)),
            },
            Form::Exec => Response::fail(Final::Error),
        }
    }

    fn cpms(&mut self, form: Form<'_>) -> Response {
        let (used, total) = (self.slots.len(), self.config.capacity);
        match form {
            Form::Read => Response::info([format!(
                "+CPMS: \"SM\",{used},{total},\"SM\",{used},{total},\"SM\",{used},{total}"
            )]),
            Form::Test => Response::info(["+CPMS: (\"SM\"),(\"SM\"),(\"SM\")".to_string()]),
            Form::Set(args) => {
                let stores = quoted_list(args);
                if stores.is_empty() || stores.len() > 3 || stores.iter().any(|s| s != "SM") {
                    return Response::fail(Final::Cms(302));
                }
                Response::info([format!(
                    "+CPMS: {used},{total},{used},{total},{used},{total}"
                )])
            }
            Form::Exec => Response::fail(Final::Error),
        }
    }

    fn cnmi(&mut self, form: Form<'_>) -> Response {
        match form {
            Form::Read => {
                let [a, b, c, d, e] = self.session.cnmi;
                Response::info([format!("+CNMI: {a},{b},{c},{d},{e}")])
            }
            Form::Test => Response::info(["+CNMI: (0-2),(0,1),(0),(0-2),(0,1)".to_string()]),
            Form::Set(args) => {
                const MAX: [u8; 5] = [2, 1, 0, 2, 1];
                match numbers(args) {
                    Some(n) if !n.is_empty() && n.len() <= 5 => {
                        if n.iter().zip(MAX).any(|(&v, max)| v > u32::from(max)) {
                            return Response::fail(Final::Cms(303));
                        }
                        for (i, v) in n.iter().enumerate() {
                            self.session.cnmi[i] = *v as u8;
                        }
                        Response::ok()
                    }
                    _ => Response::fail(Final::Cms(303)),
                }
            }
            Form::Exec => Response::fail(Final::Error),
        }
    }

    fn cmgr(&mut self, form: Form<'_>) -> Response {
        let Form::Set(args) = form else {
            return match form {
                Form::Test => Response::ok(),
                _ => Response::fail(Final::Error),
            };
        };
        let Some(slot) = args
            .parse::<u16>()
            .ok()
            .and_then(|i| self.slots.get_mut(&i))
        else {
            return Response::fail(Final::Cms(321));
        };
        let response = Response::info([
            format!("+CMGR: {},,{}", slot.stat, slot.pdu.tpdu_len),
            slot.pdu.hex(),
        ]);
        slot.stat = 1;
        response
    }

    fn cmgl(&mut self, form: Form<'_>) -> Response {
        let stat = match form {
            Form::Test => return Response::info(["+CMGL: (0-4)".to_string()]),
            Form::Exec => 0,
            Form::Set(args) => match args.parse::<u8>() {
                Ok(s @ 0..=4) => s,
                _ => return Response::fail(Final::Cms(302)),
            },
            Form::Read => return Response::fail(Final::Error),
        };
        let mut lines = Vec::new();
        for (&index, slot) in self.slots.iter_mut() {
            if stat == 4 || slot.stat == stat {
                lines.push(format!(
                    "+CMGL: {index},{},,{}",
                    slot.stat, slot.pdu.tpdu_len
                ));
                lines.push(slot.pdu.hex());
                slot.stat = if slot.stat == 0 { 1 } else { slot.stat };
            }
        }
        Response::info(lines)
    }

    fn cmgd(&mut self, form: Form<'_>) -> Response {
        let args = match form {
            Form::Test => {
                let indices: Vec<String> = self.slots.keys().map(u16::to_string).collect();
                return Response::info([format!("+CMGD: ({}),(0-4)", indices.join(","))]);
            }
            Form::Set(args) => args,
            _ => return Response::fail(Final::Error),
        };
        let Some(n) = numbers(args).filter(|n| (1..=2).contains(&n.len())) else {
            return Response::fail(Final::Cms(302));
        };
        let flag = n.get(1).copied().unwrap_or(0);
        match flag {
            0 => {
                let removed = u16::try_from(n[0]).ok().and_then(|i| self.slots.remove(&i));
                if removed.is_none() {
                    return Response::fail(Final::Cms(321));
                }
            }
            1..=4 => {
                // 1 read, 2 read+sent, 3 read+sent+unsent, 4 all (TS 27.005 §3.5.4).
                let doomed = |stat: u8| match flag {
                    1 => stat == 1,
                    2 => matches!(stat, 1 | 3),
                    3 => matches!(stat, 1..=3),
                    _ => true,
                };
                self.slots.retain(|_, s| !doomed(s.stat));
            }
            _ => return Response::fail(Final::Cms(302)),
        }
        self.deliver_waiting();
        Response::ok()
    }

    fn cmgs(&mut self, form: Form<'_>) -> Response {
        match form {
            Form::Test => Response::ok(),
            Form::Set(args) => match args.parse::<usize>() {
                Ok(len @ 7..=164) => {
                    self.session.mode = Mode::Pdu {
                        len,
                        hex: Vec::new(),
                    };
                    Response::default()
                }
                _ => Response::fail(Final::Cms(304)),
            },
            _ => Response::fail(Final::Cms(304)),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form<'a> {
    Exec,
    Read,
    Test,
    Set(&'a str),
}

fn flush_echo(out: &mut Vec<Output>, echo: &mut Vec<u8>) {
    if !echo.is_empty() {
        out.push(Output::Write(std::mem::take(echo)));
    }
}

/// `1,2, 3` as numbers; `None` when any is not one (empty fields count as 0).
fn numbers(args: &str) -> Option<Vec<u32>> {
    args.split(',')
        .map(|a| {
            let a = a.trim();
            if a.is_empty() {
                Some(0)
            } else {
                a.parse().ok()
            }
        })
        .collect()
}

/// `"SM","ME"` or `1234` as strings without their quotes.
fn quoted_list(args: &str) -> Vec<String> {
    if args.is_empty() {
        return Vec::new();
    }
    args.split(',')
        .map(|a| a.trim().trim_matches('"').to_string())
        .collect()
}

#[cfg(test)]
mod tests;
