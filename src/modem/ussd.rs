//! USSD (`AT+CUSD`, 3GPP TS 27.007 §7.15): the request line, the `+CUSD:` answer and its text,
//! and the amount a balance answer carries; and [`exchange`], one USSD session over an
//! [`AtPort`], which the modem's task ([`crate::modem::gsm`]) runs between its other work and
//! `pasarela ussd` runs itself when the daemon is not running.
//!
//! The answer's `<str>` comes in whatever form the modem picked: plain text (`AT+CSCS="GSM"` or
//! `"IRA"`), hex of UCS-2 (`AT+CSCS="UCS2"`, or any modem for a UCS-2 `<dcs>`), or, on Huawei
//! sticks and others, hex of the packed GSM 7-bit septets the network sent. [`decode_text`]
//! reads `<dcs>` as TS 23.038 §5 defines it (the cell broadcast coding groups USSD shares) and
//! takes the hex forms only when the string is hex and decodes to readable text, so a plain
//! answer is never mangled.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use super::at::{Command, Urc};
use super::driver::{AtError, AtPort};
use crate::sms::{gsm7, hex, ucs2};

/// Longest USSD string a request may carry (TS 23.038: 182 septets in one USSD message).
pub const MAX_REQUEST: usize = 160;

/// `<m>` of `+CUSD: <m>[,<str>[,<dcs>]]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UssdStatus {
    /// 0: no further user action required (the session is over).
    Done,
    /// 1: further user action required (a menu waits for the answer).
    Menu,
    /// 2: USSD terminated by the network.
    Ended,
    /// 3: another local client has responded.
    OtherClient,
    /// 4: operation not supported.
    NotSupported,
    /// 5: network time out.
    NetworkTimeout,
}

impl UssdStatus {
    pub fn from_code(m: u8) -> Option<UssdStatus> {
        Some(match m {
            0 => UssdStatus::Done,
            1 => UssdStatus::Menu,
            2 => UssdStatus::Ended,
            3 => UssdStatus::OtherClient,
            4 => UssdStatus::NotSupported,
            5 => UssdStatus::NetworkTimeout,
            _ => return None,
        })
    }

    pub fn code(self) -> u8 {
        match self {
            UssdStatus::Done => 0,
            UssdStatus::Menu => 1,
            UssdStatus::Ended => 2,
            UssdStatus::OtherClient => 3,
            UssdStatus::NotSupported => 4,
            UssdStatus::NetworkTimeout => 5,
        }
    }
}

/// One `+CUSD:` line, its text decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cusd {
    pub status: UssdStatus,
    pub text: Option<String>,
    pub dcs: Option<u8>,
}

/// Why a USSD exchange gave no answer to show.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UssdError {
    #[error("{0}")]
    Invalid(String),
    #[error("no USSD answer from the network within {0} s")]
    Timeout(u64),
    #[error("the network ended the USSD session (+CUSD: 2){}", text_suffix(.0))]
    Ended(Option<String>),
    #[error("the network does not support this USSD request (+CUSD: 4){}", text_suffix(.0))]
    NotSupported(Option<String>),
    #[error("another client on the modem answered the USSD session (+CUSD: 3)")]
    OtherClient,
    #[error("the network timed the USSD session out (+CUSD: 5)")]
    NetworkTimeout,
    /// `ERROR`, `+CME ERROR: n`: the modem refused the command.
    #[error("{0}")]
    Modem(String),
    /// The modem is down, unplugged or busy elsewhere.
    #[error("{0}")]
    Unavailable(String),
}

fn text_suffix(text: &Option<String>) -> String {
    text.as_deref()
        .filter(|t| !t.is_empty())
        .map(|t| format!(": {t}"))
        .unwrap_or_default()
}

/// One request and what the network answered to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UssdStep {
    /// What was sent: the code, then each menu answer.
    pub sent: String,
    pub status: UssdStatus,
    pub text: String,
    pub dcs: Option<u8>,
}

/// A whole exchange: the code and each menu answer, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UssdAnswer {
    pub steps: Vec<UssdStep>,
}

impl UssdAnswer {
    /// The last answer's text (what a balance pattern is matched against).
    pub fn text(&self) -> &str {
        self.steps.last().map_or("", |s| s.text.as_str())
    }

    /// The last answer's status.
    pub fn status(&self) -> UssdStatus {
        self.steps.last().map_or(UssdStatus::Done, |s| s.status)
    }
}

/// Checks a USSD code or menu answer: printable ASCII without quotes, 1 to 160 characters.
/// A code must look like one (`*444#`, `#150*2#`): digits, `*` and `#`, ending in `#`.
pub fn check_request(text: &str, is_code: bool) -> Result<(), String> {
    if text.is_empty() || text.len() > MAX_REQUEST {
        return Err(format!("must be 1 to {MAX_REQUEST} characters"));
    }
    if is_code {
        if !text
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'*' || b == b'#')
            || !text.ends_with('#')
        {
            return Err(format!(
                "`{text}` is not a USSD code: digits, * and #, ending in # (like *444#)"
            ));
        }
    } else if !text.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'"') {
        return Err(format!(
            "`{text}` cannot be sent: plain ASCII letters, digits and symbols, no quotes"
        ));
    }
    Ok(())
}

/// The command that sends `text` in an open or new session (results presented, `<dcs>` 15:
/// GSM 7-bit, language unspecified).
pub fn request_command(text: &str) -> String {
    format!("AT+CUSD=1,\"{text}\",15")
}

/// Reads the part after `+CUSD:`. The text may hold commas and line breaks, so it is taken
/// between the first and the last quote.
pub fn parse_cusd(rest: &str) -> Option<Cusd> {
    let rest = rest.trim();
    let (m, after) = match rest.find(',') {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    let status = UssdStatus::from_code(m.trim().parse().ok()?)?;
    let (raw, dcs) = match after {
        None => (None, None),
        Some(after) => {
            let first = after.find('"');
            let last = after.rfind('"');
            match (first, last) {
                (Some(a), Some(b)) if b > a => {
                    let dcs = after[b + 1..]
                        .trim()
                        .trim_start_matches(',')
                        .trim()
                        .parse()
                        .ok();
                    (Some(after[a + 1..b].to_string()), dcs)
                }
                // Unquoted (some modems): `<str>,<dcs>`.
                _ => match after.rsplit_once(',') {
                    Some((s, d)) => (Some(s.trim().to_string()), d.trim().parse().ok()),
                    None => (Some(after.trim().to_string()), None),
                },
            }
        }
    };
    let text = raw.map(|r| decode_text(&r, dcs));
    Some(Cusd { status, text, dcs })
}

/// The alphabet a `<dcs>` names (TS 23.038 §5, cell broadcast data coding scheme).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alphabet {
    Gsm7,
    Data8,
    Ucs2,
}

pub fn alphabet(dcs: Option<u8>) -> Alphabet {
    let Some(d) = dcs else {
        return Alphabet::Gsm7;
    };
    match d >> 4 {
        // Language groups: GSM 7-bit; 0x11 is UCS-2 preceded by a language.
        0x0 | 0x2 | 0x3 => Alphabet::Gsm7,
        0x1 if d == 0x11 => Alphabet::Ucs2,
        0x1 => Alphabet::Gsm7,
        // General data coding: bits 3..2 give the alphabet.
        0x4..=0x7 => match (d >> 2) & 0x3 {
            1 => Alphabet::Data8,
            2 => Alphabet::Ucs2,
            _ => Alphabet::Gsm7,
        },
        0x9 => match (d >> 2) & 0x3 {
            1 => Alphabet::Data8,
            2 => Alphabet::Ucs2,
            _ => Alphabet::Gsm7,
        },
        0xF => {
            if d & 0x04 != 0 {
                Alphabet::Data8
            } else {
                Alphabet::Gsm7
            }
        }
        _ => Alphabet::Gsm7,
    }
}

/// The answer's text, whichever form the modem chose (see the module's doc).
pub fn decode_text(raw: &str, dcs: Option<u8>) -> String {
    let alphabet = alphabet(dcs);
    let is_hex =
        raw.len() >= 2 && raw.len().is_multiple_of(2) && raw.bytes().all(|b| b.is_ascii_hexdigit());
    if is_hex {
        let bytes = hex::decode(raw).unwrap_or_default();
        let as_ucs2 = (bytes.len().is_multiple_of(2))
            .then(|| ucs2::decode(&bytes, 0).ok())
            .flatten()
            .filter(|t| readable(t));
        let as_packed = || {
            let count = bytes.len() * 8 / 7;
            let mut septets = gsm7::unpack(&bytes, 0, count)?;
            // When seven bits are left over the sender fills them with a CR (TS 23.038
            // §6.1.2.3.1), or, on sloppy networks, with zeros: padding, not text.
            if count.is_multiple_of(8) && matches!(septets.last(), Some(&0x0D) | Some(&0)) {
                septets.pop();
            }
            Some(gsm7::decode(&septets)).filter(|t| readable(t))
        };
        match alphabet {
            Alphabet::Ucs2 => {
                if let Some(t) = as_ucs2 {
                    return t;
                }
            }
            Alphabet::Data8 => {
                let t: String = bytes.iter().map(|&b| char::from(b)).collect();
                if readable(&t) {
                    return t;
                }
            }
            Alphabet::Gsm7 => {
                // `AT+CSCS="UCS2"` answers in UCS-2 hex whatever the network's alphabet.
                if raw.len() >= 8
                    && raw.len().is_multiple_of(4)
                    && let Some(t) = as_ucs2.filter(|_| looks_like_ucs2_hex(&bytes))
                {
                    return t;
                }
                if raw.len() >= 8
                    && let Some(t) = as_packed()
                {
                    return t;
                }
            }
        }
    }
    raw.to_string()
}

/// Most UCS-2 units of Latin text have a zero high byte.
fn looks_like_ucs2_hex(bytes: &[u8]) -> bool {
    let units = bytes.len() / 2;
    let zero_high = bytes.chunks(2).filter(|c| c[0] == 0).count();
    units > 0 && zero_high * 2 >= units
}

/// Text a person could read: no control characters but line breaks and tabs, and mostly
/// letters, digits, spaces and punctuation.
fn readable(t: &str) -> bool {
    if t.is_empty() {
        return false;
    }
    let mut good = 0usize;
    let mut total = 0usize;
    for c in t.chars() {
        total += 1;
        if c.is_control() && !matches!(c, '\n' | '\r' | '\t') {
            return false;
        }
        if c.is_ascii_alphanumeric()
            || c == ' '
            || c == '\n'
            || "$.,:;-()/*#%!?¡¿'+=_".contains(c)
            || c.is_alphabetic()
        {
            good += 1;
        }
    }
    good * 10 >= total * 9
}

/// The answer as a person reads it: line breaks normalised, trailing spaces trimmed.
pub fn readable_lines(text: &str) -> String {
    text.replace("\r\n", "\n")
        .replace('\r', "\n")
        .lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_string()
}

/// The exchange as `pasarela ussd` prints it: the answer's text alone for a single request
/// (easy to script); each request (`> 1`) before its answer when menu answers were given.
/// Notes for the operator (a menu waiting, a session closed early) come separately.
pub fn render(answer: &UssdAnswer, requests: usize) -> (String, Vec<String>) {
    let mut out = String::new();
    for (i, step) in answer.steps.iter().enumerate() {
        if requests > 1 {
            if i > 0 {
                out.push('\n');
            }
            out.push_str(&format!("> {}\n", step.sent));
        }
        out.push_str(&step.text);
        out.push('\n');
    }
    let mut notes = Vec::new();
    if answer.steps.len() < requests {
        notes.push(format!(
            "the network closed the session after {} of the {requests} requests; the rest were not sent",
            answer.steps.len()
        ));
    }
    if answer.status() == UssdStatus::Menu {
        let sent: Vec<String> = answer
            .steps
            .iter()
            .map(|s| format!("'{}'", s.sent))
            .collect();
        notes.push(format!(
            "a menu: to choose, run again with the option after the code, e.g. pasarela ussd {} 1 \
             (the session was closed)",
            sent.join(" ")
        ));
    }
    (out, notes)
}

/// Why an amount did not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an amount like $ 1.234,50 or $1234.50")]
pub struct BadAmount(pub String);

/// An amount of money in exact cents, from the forms Argentine operators write: `$ 1.234,50`,
/// `$1234.50`, `1.234`, `1,234.50`, `-$ 12,30`, `$ 50`. With both separators the last one is
/// the decimal one; with one separator it is decimal when followed by one or two digits, and
/// groups thousands when followed by three (`$ 1.234` is a thousand two hundred thirty-four).
/// A full stop or comma at the end (the sentence's) is not part of the amount.
pub fn parse_amount(text: &str) -> Result<i64, BadAmount> {
    let bad = || BadAmount(text.to_string());
    let mut s: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    // A pattern that takes the sentence's full stop with the amount (`$ 1.234,50.`).
    while s.ends_with(['.', ',']) {
        s.pop();
    }
    let negative = s.starts_with('-') || s.contains("$-");
    s = s.replace(['-', '$'], "");
    if let Some(rest) = s.strip_prefix("ARS") {
        s = rest.to_string();
    }
    if s.is_empty()
        || !s
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'.' || b == b',')
    {
        return Err(bad());
    }
    let last_dot = s.rfind('.');
    let last_comma = s.rfind(',');
    let decimal = match (last_dot, last_comma) {
        (Some(d), Some(c)) => Some(d.max(c)),
        (Some(i), None) | (None, Some(i)) => {
            let sep = s.as_bytes()[i];
            let count = s.bytes().filter(|&b| b == sep).count();
            let after = s.len() - i - 1;
            if count == 1 && (1..=2).contains(&after) {
                Some(i)
            } else if after == 3 {
                None
            } else {
                return Err(bad());
            }
        }
        (None, None) => None,
    };
    let (int_part, frac) = match decimal {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s.as_str(), ""),
    };
    if frac.len() > 2 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    // Thousands groups: every group after the first has exactly three digits.
    let groups: Vec<&str> = int_part.split(['.', ',']).collect();
    if groups.iter().any(|g| g.is_empty())
        || groups.iter().skip(1).any(|g| g.len() != 3)
        || (groups.len() > 1 && groups[0].len() > 3)
    {
        return Err(bad());
    }
    let digits: String = groups.concat();
    let units: i64 = digits.parse().map_err(|_| bad())?;
    let cents: i64 = match frac.len() {
        0 => 0,
        1 => frac.parse::<i64>().map_err(|_| bad())? * 10,
        _ => frac.parse().map_err(|_| bad())?,
    };
    let total = units
        .checked_mul(100)
        .and_then(|u| u.checked_add(cents))
        .ok_or_else(bad)?;
    Ok(if negative { -total } else { total })
}

/// Cents as an es-AR amount: `$ 1.234,50`.
pub fn format_ars(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let c = cents.unsigned_abs();
    let units = (c / 100).to_string();
    let mut grouped = String::new();
    for (i, ch) in units.chars().enumerate() {
        if i > 0 && (units.len() - i).is_multiple_of(3) {
            grouped.push('.');
        }
        grouped.push(ch);
    }
    format!("{sign}$ {grouped},{:02}", c % 100)
}

/// Cents as a plain decimal (`1234.50`), for JSON and metrics.
pub fn format_plain(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let c = cents.unsigned_abs();
    format!("{sign}{}.{:02}", c / 100, c % 100)
}

/// Runs one USSD session on `at`: `code`, then each of `replies` while the network shows a
/// menu. The answer may come before the command's `OK` (older modems) or, as TS 27.007 has it,
/// as an unsolicited `+CUSD:` after it; other unsolicited codes that arrive meanwhile go to
/// `held`, for the caller to handle once the port is free. A session the network leaves open
/// (a menu with no more replies given), and one that timed out, is closed with `AT+CUSD=2`.
pub async fn exchange<P: AsyncRead + AsyncWrite + Unpin>(
    at: &mut AtPort<P>,
    code: &str,
    replies: &[String],
    timeout: Duration,
    held: &mut Vec<Urc>,
) -> Result<UssdAnswer, ExchangeError> {
    check_request(code, true).map_err(|why| UssdError::Invalid(format!("code: {why}")))?;
    for r in replies {
        check_request(r, false).map_err(|why| UssdError::Invalid(format!("reply: {why}")))?;
    }
    let mut steps = Vec::new();
    for request in std::iter::once(code).chain(replies.iter().map(String::as_str)) {
        let cmd = Command::new(request_command(request), Some("+CUSD:"))
            .timeout(Duration::from_secs(10).min(timeout));
        let deadline = Instant::now() + timeout;
        let lines = match at.command(&cmd).await {
            Ok(lines) => lines,
            Err(e) if e.is_link_failure() => return Err(ExchangeError::Link(e)),
            Err(AtError::Timeout(..)) => {
                close(at).await?;
                return Err(UssdError::Timeout(timeout.as_secs()).into());
            }
            Err(e) => return Err(UssdError::Modem(e.to_string()).into()),
        };
        let early = lines
            .iter()
            .find_map(|l| l.strip_prefix("+CUSD:"))
            .and_then(parse_cusd);
        let cusd = match early {
            Some(c) => c,
            None => match wait_answer(at, deadline, held).await? {
                Some(c) => c,
                None => {
                    close(at).await?;
                    return Err(UssdError::Timeout(timeout.as_secs()).into());
                }
            },
        };
        let text = cusd.text.as_deref().map(readable_lines);
        match cusd.status {
            UssdStatus::Done | UssdStatus::Menu => steps.push(UssdStep {
                sent: request.to_string(),
                status: cusd.status,
                text: text.unwrap_or_default(),
                dcs: cusd.dcs,
            }),
            UssdStatus::Ended => return Err(UssdError::Ended(text).into()),
            UssdStatus::NotSupported => return Err(UssdError::NotSupported(text).into()),
            UssdStatus::OtherClient => return Err(UssdError::OtherClient.into()),
            UssdStatus::NetworkTimeout => return Err(UssdError::NetworkTimeout.into()),
        }
        if cusd.status == UssdStatus::Done {
            // The network closed the session: later replies have nothing to answer.
            break;
        }
    }
    if steps.last().is_some_and(|s| s.status == UssdStatus::Menu) {
        close(at).await?;
    }
    Ok(UssdAnswer { steps })
}

/// Waits for the `+CUSD:` answer until `deadline`; `None` when none came.
async fn wait_answer<P: AsyncRead + AsyncWrite + Unpin>(
    at: &mut AtPort<P>,
    deadline: Instant,
    held: &mut Vec<Urc>,
) -> Result<Option<Cusd>, ExchangeError> {
    loop {
        match tokio::time::timeout_at(deadline, at.next_urc()).await {
            Err(_) => return Ok(None),
            Ok(Err(e)) => return Err(ExchangeError::Link(e)),
            Ok(Ok(Urc::Ussd(rest))) => match parse_cusd(&rest) {
                Some(c) => return Ok(Some(c)),
                None => log::debug!("USSD: unreadable answer +CUSD: {rest}"),
            },
            Ok(Ok(other)) => held.push(other),
        }
    }
}

/// Ends the session on the modem (`AT+CUSD=2`); a modem that refuses has none open.
async fn close<P: AsyncRead + AsyncWrite + Unpin>(at: &mut AtPort<P>) -> Result<(), ExchangeError> {
    match at.command(&Command::new("AT+CUSD=2", None)).await {
        Err(e) if e.is_link_failure() => Err(ExchangeError::Link(e)),
        _ => Ok(()),
    }
}

/// What [`exchange`] can end with: a USSD outcome to report, or a port that failed.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error(transparent)]
    Ussd(#[from] UssdError),
    #[error("{0}")]
    Link(AtError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_in_argentine_forms_are_exact_cents() {
        for (text, cents) in [
            ("$ 1.234,50", 123_450),
            ("$1234.50", 123_450),
            ("1.234", 123_400),
            ("1,234.50", 123_450),
            ("$ 50", 5_000),
            ("$ 0,5", 50),
            ("12,3", 1_230),
            ("$ 1.234.567,89", 123_456_789),
            ("-$ 12,30", -1_230),
            ("$-12.30", -1_230),
            ("ARS 99,99", 9_999),
            ("$ 1.234,50.", 123_450),
        ] {
            assert_eq!(parse_amount(text), Ok(cents), "{text}");
        }
        for bad in [
            "",
            "$",
            "abc",
            "1.2.3",
            "1,2345",
            "12.345,678",
            "1..2",
            "12345.6789",
        ] {
            assert!(parse_amount(bad).is_err(), "{bad}");
        }
        assert_eq!(format_ars(123_450), "$ 1.234,50");
        assert_eq!(format_ars(5), "$ 0,05");
        assert_eq!(format_ars(-100_000_000), "-$ 1.000.000,00");
        assert_eq!(format_plain(123_450), "1234.50");
    }

    #[test]
    fn cusd_lines_in_every_form_modems_use() {
        let c = parse_cusd(" 0,\"Su saldo es $ 1.234,50, vence 31/12\",15").unwrap();
        assert_eq!(c.status, UssdStatus::Done);
        assert_eq!(
            c.text.as_deref(),
            Some("Su saldo es $ 1.234,50, vence 31/12")
        );
        assert_eq!(c.dcs, Some(15));
        // Huawei: packed GSM 7-bit in hex.
        let packed = hex::encode(&gsm7::pack(&gsm7::encode("Saldo: $ 10,00").unwrap(), 0));
        let c = parse_cusd(&format!("0,\"{packed}\",15")).unwrap();
        assert_eq!(c.text.as_deref(), Some("Saldo: $ 10,00"));
        // UCS-2 hex, by <dcs> 72 and by AT+CSCS="UCS2" with <dcs> 15.
        let u = hex::encode(&ucs2::encode("¡Recargá ya! Saldo $ 5,00"));
        assert_eq!(
            parse_cusd(&format!("1,\"{u}\",72"))
                .unwrap()
                .text
                .as_deref(),
            Some("¡Recargá ya! Saldo $ 5,00")
        );
        assert_eq!(
            parse_cusd(&format!("0,\"{u}\",15"))
                .unwrap()
                .text
                .as_deref(),
            Some("¡Recargá ya! Saldo $ 5,00")
        );
        assert_eq!(
            parse_cusd("2").unwrap(),
            Cusd {
                status: UssdStatus::Ended,
                text: None,
                dcs: None
            }
        );
        assert_eq!(parse_cusd("4").unwrap().status, UssdStatus::NotSupported);
        assert!(parse_cusd("9,\"x\",15").is_none());
        assert!(parse_cusd("x").is_none());
        // Plain text that happens to be hex stays as it is.
        assert_eq!(decode_text("1234", Some(15)), "1234");
        assert_eq!(decode_text("CAFE", Some(15)), "CAFE");
        // A menu with line breaks.
        let c = parse_cusd("1,\"1 Saldo\n2 Packs\",15").unwrap();
        assert_eq!(c.status, UssdStatus::Menu);
        assert_eq!(c.text.as_deref(), Some("1 Saldo\n2 Packs"));
    }

    #[test]
    fn dcs_alphabets() {
        assert_eq!(alphabet(Some(15)), Alphabet::Gsm7);
        assert_eq!(alphabet(Some(0x48)), Alphabet::Ucs2);
        assert_eq!(alphabet(Some(0x11)), Alphabet::Ucs2);
        assert_eq!(alphabet(Some(0x44)), Alphabet::Data8);
        assert_eq!(alphabet(Some(0x00)), Alphabet::Gsm7);
        assert_eq!(alphabet(None), Alphabet::Gsm7);
    }

    #[test]
    fn requests_are_checked() {
        assert!(check_request("*444#", true).is_ok());
        assert!(check_request("#150*2#", true).is_ok());
        assert!(check_request("444", true).is_err());
        assert!(check_request("*44\"4#", true).is_err());
        assert!(check_request("1", false).is_ok());
        assert!(check_request("a\"b", false).is_err());
        assert!(check_request("", false).is_err());
        assert_eq!(request_command("*444#"), "AT+CUSD=1,\"*444#\",15");
    }
}
