//! A pure digester for the byte stream a modem sends: it tells apart the final result of the
//! command in flight (`OK`, `ERROR`, `+CME ERROR: n`, `+CMS ERROR: n`), the `> ` prompt of
//! `AT+CMGS` (which has no line end), information lines answering the command, the command's
//! echo, and unsolicited result codes (`+CMTI`, `+CDS`, `+CDSI`, `+CREG`, `RING`, Huawei `^…`
//! noise, `SMS Ready`, `+CPIN: READY` at boot). No I/O: bytes in, events out, in any chunking.

use std::time::Duration;

/// Longest line kept while waiting for its end; a longer run without a line end is noise.
const MAX_LINE: usize = 8 * 1024;

/// A command to send, with what the digester needs to read its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The wire form without the final `\r` (`AT+CMGR=3`).
    pub text: String,
    /// Prefix of the information lines that answer it (`+CMGR:`); other `+…` lines while it
    /// is in flight are unsolicited. `None`: every line that is not a known unsolicited code.
    pub prefix: Option<&'static str>,
    /// `AT+CMGS=<len>`: the modem answers with the `> ` prompt first.
    pub wants_prompt: bool,
    pub timeout: Duration,
    /// How the command appears in errors and logs when its text carries a secret (the SIM PIN).
    pub shown: Option<String>,
}

impl Command {
    /// A command whose answer lines start with `prefix`, if any. Default timeout 5 s.
    pub fn new(text: impl Into<String>, prefix: Option<&'static str>) -> Command {
        Command {
            text: text.into(),
            prefix,
            wants_prompt: false,
            timeout: Duration::from_secs(5),
            shown: None,
        }
    }

    /// A command whose text carries a secret: errors and logs show `shown` instead.
    pub fn secret(text: impl Into<String>, shown: impl Into<String>) -> Command {
        Command {
            shown: Some(shown.into()),
            ..Command::new(text, None)
        }
    }

    /// The command as errors and logs may show it (never a secret).
    pub fn shown(&self) -> &str {
        self.shown.as_deref().unwrap_or(&self.text)
    }

    pub fn timeout(mut self, timeout: Duration) -> Command {
        self.timeout = timeout;
        self
    }
}

/// The final result code of a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Final {
    /// `OK`
    Ok,
    /// `ERROR`
    Error,
    /// `+CME ERROR: <n>` (equipment errors: SIM, PIN…)
    Cme(u16),
    /// `+CMS ERROR: <n>` (message service errors: network, memory, index…)
    Cms(u16),
}

/// An unsolicited result code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Urc {
    /// `+CMTI: "SM",3`: a message was stored at that index.
    NewMessage { storage: String, index: u32 },
    /// `+CDS: <len>` followed by the status-report PDU on the next line.
    StatusReport { pdu: String },
    /// `+CDSI: "SR",2`: a status report was stored at that index.
    StatusReportStored { storage: String, index: u32 },
    /// `+CREG: <stat>` (the unsolicited form).
    Registration(String),
    /// `RING`
    Ring,
    /// `SMS Ready` (SIMCom) or `+CPIN: READY` at boot: the modem (re)started.
    Boot(String),
    /// `+CUSD: <m>[,<str>[,<dcs>]]`: the network's USSD answer (the text after the colon).
    Ussd(String),
    /// Vendor noise such as Huawei `^RSSI:12`, `^BOOT:…`, `^MODE:…`.
    Vendor(String),
    /// Any other line nobody asked for.
    Other(String),
}

/// One thing the modem said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A line answering the command in flight.
    Info(String),
    /// The command in flight is done.
    Final(Final),
    /// `> `: the modem waits for the PDU of `AT+CMGS`.
    Prompt,
    Urc(Urc),
}

/// Accumulates bytes and hands back events; one per call to [`Digester::next`].
#[derive(Debug, Default)]
pub struct Digester {
    buf: Vec<u8>,
    /// A `+CDS: <len>` header was read; the next line is its PDU.
    cds_pdu_next: bool,
}

impl Digester {
    pub fn new() -> Digester {
        Digester::default()
    }

    /// Adds bytes read from the port.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Forgets everything buffered (after reopening the port).
    pub fn reset(&mut self) {
        self.buf.clear();
        self.cds_pdu_next = false;
    }

    /// Bytes not yet digested.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// The next complete event, given the command in flight (if any). `None`: more bytes needed.
    pub fn next(&mut self, in_flight: Option<&Command>) -> Option<Event> {
        loop {
            let start = self
                .buf
                .iter()
                .position(|b| !matches!(b, b'\r' | b'\n' | 0))
                .unwrap_or(self.buf.len());
            self.buf.drain(..start);
            if self.buf.is_empty() {
                return None;
            }
            if self.buf[0] == b'>' && in_flight.is_some_and(|c| c.wants_prompt) {
                let n = if self.buf.get(1) == Some(&b' ') { 2 } else { 1 };
                self.buf.drain(..n);
                return Some(Event::Prompt);
            }
            let Some(end) = self.line_end() else {
                if self.buf.len() > MAX_LINE {
                    // A runaway without a line end is noise; drop it rather than grow.
                    self.buf.clear();
                }
                return None;
            };
            let raw: Vec<u8> = self.buf.drain(..end).collect();
            let line = String::from_utf8_lossy(&raw).trim().to_string();
            if line.is_empty() {
                continue;
            }
            if let Some(event) = self.classify(line, in_flight) {
                return Some(event);
            }
        }
    }

    /// Where the line at the start of the buffer ends. A USSD answer's quoted text may hold
    /// line breaks (a menu, one option a line): its line ends after the closing quote.
    fn line_end(&self) -> Option<usize> {
        let is_break = |b: &u8| matches!(b, b'\r' | b'\n');
        let end = self.buf.iter().position(is_break)?;
        if !self.buf.starts_with(b"+CUSD:") {
            return Some(end);
        }
        let quotes = self.buf[..end].iter().filter(|&&b| b == b'"').count();
        if quotes % 2 == 0 {
            return Some(end);
        }
        let close = end + self.buf[end..].iter().position(|&b| b == b'"')?;
        Some(close + self.buf[close..].iter().position(is_break)?)
    }

    fn classify(&mut self, line: String, in_flight: Option<&Command>) -> Option<Event> {
        if std::mem::take(&mut self.cds_pdu_next) && is_hex(&line) {
            return Some(Event::Urc(Urc::StatusReport { pdu: line }));
        }
        if let Some(cmd) = in_flight {
            if line.eq_ignore_ascii_case(&cmd.text) {
                return None; // echo
            }
            if let Some(f) = final_code(&line) {
                return Some(Event::Final(f));
            }
        } else if final_code(&line).is_some() {
            // A result nobody waits for: the tail of a command that timed out.
            return Some(Event::Urc(Urc::Other(line)));
        }
        if line.starts_with("+CDS:") && in_flight.and_then(|c| c.prefix) != Some("+CDS:") {
            // The header alone is not an event; the PDU line that follows is.
            self.cds_pdu_next = true;
            return None;
        }
        if let Some(urc) = self.unsolicited(&line, in_flight) {
            return Some(Event::Urc(urc));
        }
        match in_flight {
            Some(cmd) => match cmd.prefix {
                Some(p) if line.starts_with('+') && !line.starts_with(p) => {
                    Some(Event::Urc(Urc::Other(line)))
                }
                _ => Some(Event::Info(line)),
            },
            None => Some(Event::Urc(Urc::Other(line))),
        }
    }

    fn unsolicited(&self, line: &str, in_flight: Option<&Command>) -> Option<Urc> {
        let asked = |p: &str| in_flight.and_then(|c| c.prefix) == Some(p);
        if let Some(rest) = line.strip_prefix("+CMTI:") {
            let (storage, index) = storage_index(rest)?;
            return Some(Urc::NewMessage { storage, index });
        }
        if let Some(rest) = line.strip_prefix("+CDSI:") {
            let (storage, index) = storage_index(rest)?;
            return Some(Urc::StatusReportStored { storage, index });
        }
        if let Some(rest) = line.strip_prefix("+CREG:")
            && !asked("+CREG:")
        {
            return Some(Urc::Registration(rest.trim().to_string()));
        }
        if let Some(rest) = line.strip_prefix("+CUSD:")
            && !asked("+CUSD:")
        {
            return Some(Urc::Ussd(rest.trim().to_string()));
        }
        if line == "RING" {
            return Some(Urc::Ring);
        }
        if line.starts_with('^') {
            return Some(Urc::Vendor(line.to_string()));
        }
        if line == "SMS Ready"
            || line == "Call Ready"
            || (line == "+CPIN: READY" && !asked("+CPIN:"))
        {
            return Some(Urc::Boot(line.to_string()));
        }
        None
    }
}

/// `"SM",3` → ("SM", 3)
fn storage_index(rest: &str) -> Option<(String, u32)> {
    let (storage, index) = rest.trim().rsplit_once(',')?;
    Some((
        storage.trim().trim_matches('"').to_string(),
        index.trim().parse().ok()?,
    ))
}

fn final_code(line: &str) -> Option<Final> {
    match line {
        "OK" => Some(Final::Ok),
        "ERROR" => Some(Final::Error),
        _ => {
            let code = |n: &str| n.trim().parse().unwrap_or(u16::MAX);
            if let Some(n) = line.strip_prefix("+CME ERROR:") {
                Some(Final::Cme(code(n)))
            } else {
                line.strip_prefix("+CMS ERROR:")
                    .map(|n| Final::Cms(code(n)))
            }
        }
    }
}

fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.len().is_multiple_of(2) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Reads a quoted or bare comma-separated field list: `+CMGL: 1,0,,23` → ["1","0","","23"].
pub fn fields(rest: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in rest.trim().chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur).trim().to_string()),
            c => cur.push(c),
        }
    }
    out.push(cur.trim().to_string());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest_all(chunks: &[&[u8]], cmd: Option<&Command>) -> (Vec<Event>, usize) {
        let mut d = Digester::new();
        let mut events = Vec::new();
        for chunk in chunks {
            d.push(chunk);
            while let Some(e) = d.next(cmd) {
                events.push(e);
            }
        }
        (events, d.pending())
    }

    /// Every split of `bytes` into two chunks gives the same events as the whole.
    fn check(bytes: &[u8], cmd: Option<&Command>, want: &[Event]) {
        let (whole, _) = digest_all(&[bytes], cmd);
        assert_eq!(
            whole,
            want,
            "whole input {:?}",
            String::from_utf8_lossy(bytes)
        );
        for k in 0..=bytes.len() {
            let (split, _) = digest_all(&[&bytes[..k], &bytes[k..]], cmd);
            assert_eq!(
                split,
                want,
                "split at {k} of {:?}",
                String::from_utf8_lossy(bytes)
            );
        }
    }

    fn info(s: &str) -> Event {
        Event::Info(s.to_string())
    }

    #[test]
    fn ok_then_urc_left_for_later() {
        let cmd = Command::new("AT", None);
        let mut d = Digester::new();
        d.push(b"\r\nOK\r\n\r\n+CMTI: \"SM\",1\r\n");
        assert_eq!(d.next(Some(&cmd)), Some(Event::Final(Final::Ok)));
        assert_eq!(
            d.next(None),
            Some(Event::Urc(Urc::NewMessage {
                storage: "SM".into(),
                index: 1
            }))
        );
        assert_eq!(d.next(None), None);
    }

    #[test]
    fn table() {
        let csq = Command::new("AT+CSQ", Some("+CSQ:"));
        let cmgr = Command::new("AT+CMGR=3", Some("+CMGR:"));
        let cgmi = Command::new("AT+CGMI", None);
        let mut cmgs = Command::new("AT+CMGS=19", Some("+CMGS:"));
        cmgs.wants_prompt = true;
        let creg = Command::new("AT+CREG?", Some("+CREG:"));
        let cpin = Command::new("AT+CPIN?", Some("+CPIN:"));
        let cases: Vec<(&[u8], Option<&Command>, Vec<Event>)> = vec![
            (b"\r\n+CSQ: 20,99\r\n\r\nOK\r\n", Some(&csq), vec![info("+CSQ: 20,99"), Event::Final(Final::Ok)]),
            // Echo on: the command comes back first and is dropped.
            (b"AT+CSQ\r\r\n+CSQ: 20,99\r\n\r\nOK\r\n", Some(&csq), vec![info("+CSQ: 20,99"), Event::Final(Final::Ok)]),
            (b"\r\n+CMS ERROR: 321\r\n", Some(&cmgr), vec![Event::Final(Final::Cms(321))]),
            (b"\r\n+CME ERROR: 16\r\n", Some(&cpin), vec![Event::Final(Final::Cme(16))]),
            (b"\r\nERROR\r\n", Some(&cgmi), vec![Event::Final(Final::Error)]),
            (
                b"\r\n+CMGR: 0,,23\r\n07911326040000F0040B911346610089F60000208062917314080CC8F71D14969741F977FD07\r\n\r\nOK\r\n",
                Some(&cmgr),
                vec![
                    info("+CMGR: 0,,23"),
                    info("07911326040000F0040B911346610089F60000208062917314080CC8F71D14969741F977FD07"),
                    Event::Final(Final::Ok),
                ],
            ),
            // A new-message code in the middle of an answer is kept as unsolicited.
            (
                b"\r\n+CSQ: 20,99\r\n\r\n+CMTI: \"SM\",4\r\n\r\nOK\r\n",
                Some(&csq),
                vec![info("+CSQ: 20,99"), Event::Urc(Urc::NewMessage { storage: "SM".into(), index: 4 }), Event::Final(Final::Ok)],
            ),
            (b"\r\nhuawei\r\n\r\nOK\r\n", Some(&cgmi), vec![info("huawei"), Event::Final(Final::Ok)]),
            (b"\r\n> ", Some(&cmgs), vec![Event::Prompt]),
            (b"\r\n+CMGS: 7\r\n\r\nOK\r\n", Some(&cmgs), vec![info("+CMGS: 7"), Event::Final(Final::Ok)]),
            // Huawei noise, RING, and the unsolicited registration form, with nothing in flight.
            (
                b"\r\n^RSSI:12\r\n\r\nRING\r\n\r\n+CREG: 1\r\n\r\n^BOOT:123,0,0,0,6\r\n",
                None,
                vec![
                    Event::Urc(Urc::Vendor("^RSSI:12".into())),
                    Event::Urc(Urc::Ring),
                    Event::Urc(Urc::Registration("1".into())),
                    Event::Urc(Urc::Vendor("^BOOT:123,0,0,0,6".into())),
                ],
            ),
            // +CREG asked for is an answer, not a code.
            (b"\r\n+CREG: 0,1\r\n\r\nOK\r\n", Some(&creg), vec![info("+CREG: 0,1"), Event::Final(Final::Ok)]),
            (b"\r\n+CPIN: READY\r\n\r\nOK\r\n", Some(&cpin), vec![info("+CPIN: READY"), Event::Final(Final::Ok)]),
            (b"\r\n+CPIN: READY\r\n\r\nSMS Ready\r\n", None, vec![Event::Urc(Urc::Boot("+CPIN: READY".into())), Event::Urc(Urc::Boot("SMS Ready".into()))]),
            // Status report delivered inline: header then PDU.
            (
                b"\r\n+CDS: 25\r\n0006D60B911326880736F4111011719551401110117195714000\r\n",
                None,
                vec![Event::Urc(Urc::StatusReport { pdu: "0006D60B911326880736F4111011719551401110117195714000".into() })],
            ),
            (b"\r\n+CDSI: \"SR\",2\r\n", None, vec![Event::Urc(Urc::StatusReportStored { storage: "SR".into(), index: 2 })]),
            // A late OK with nothing in flight is not a result.
            (b"\r\nOK\r\n", None, vec![Event::Urc(Urc::Other("OK".into()))]),
            // An unknown +line while waiting for +CSQ is unsolicited.
            (b"\r\n+CSSI: 1\r\n\r\nOK\r\n", Some(&csq), vec![Event::Urc(Urc::Other("+CSSI: 1".into())), Event::Final(Final::Ok)]),
            // A USSD answer is its own code, in flight or not; a menu's text spans lines.
            (b"\r\n+CUSD: 0,\"x\",15\r\n\r\nOK\r\n", Some(&csq), vec![Event::Urc(Urc::Ussd("0,\"x\",15".into())), Event::Final(Final::Ok)]),
            (
                b"\r\n+CUSD: 1,\"Elija:\r\n1 Saldo\r\n2 Packs\",15\r\n",
                None,
                vec![Event::Urc(Urc::Ussd("1,\"Elija:\r\n1 Saldo\r\n2 Packs\",15".into()))],
            ),
            (b"\r\n+CUSD: 2\r\n", None, vec![Event::Urc(Urc::Ussd("2".into()))]),
        ];
        for (bytes, cmd, want) in cases {
            check(bytes, cmd, &want);
        }
    }

    #[test]
    fn garbage_never_panics_and_is_bounded() {
        let cmd = Command::new("AT", None);
        let mut d = Digester::new();
        d.push(&[0xff, 0xfe, 0x00, 0x80, b'\r']);
        assert!(matches!(d.next(Some(&cmd)), Some(Event::Info(_))));
        d.push(&vec![b'x'; MAX_LINE + 10]);
        assert_eq!(d.next(Some(&cmd)), None);
        assert_eq!(d.pending(), 0);
        d.push(b"\r\nOK\r\n");
        assert_eq!(d.next(Some(&cmd)), Some(Event::Final(Final::Ok)));
        // Non-numeric error code.
        d.push(b"+CMS ERROR: abc\r\n");
        assert_eq!(d.next(Some(&cmd)), Some(Event::Final(Final::Cms(u16::MAX))));
        // A +CMTI without an index is an ordinary line, not a panic.
        d.push(b"+CMTI: \"SM\"\r\n");
        assert!(d.next(None).is_some());
    }

    #[test]
    fn field_lists() {
        assert_eq!(fields(" 1,0,,23"), ["1", "0", "", "23"]);
        assert_eq!(
            fields(" 0,0,\"Personal AR\",2"),
            ["0", "0", "Personal AR", "2"]
        );
    }
}
