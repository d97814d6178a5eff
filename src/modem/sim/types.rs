//! The values the simulator's callers see: its configuration, faults, what was sent and what the
//! SIM holds. Shared by the in-process [`super::SimHandle`] and the HTTP control API, so both
//! accept and return exactly the same JSON.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

/// Network registration the modem reports with `+CREG`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Registration {
    #[default]
    Home,
    Roaming,
    Searching,
    Denied,
}

impl Registration {
    /// `<stat>` of `+CREG: <n>,<stat>` (TS 27.007 §7.2).
    pub fn creg_stat(self) -> u8 {
        match self {
            Registration::Home => 1,
            Registration::Searching => 2,
            Registration::Denied => 3,
            Registration::Roaming => 5,
        }
    }

    /// Whether the network delivers and accepts messages.
    pub fn is_registered(self) -> bool {
        matches!(self, Registration::Home | Registration::Roaming)
    }
}

/// How the simulated modem behaves; every field can be changed while it runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimConfig {
    /// Time between the Ctrl-Z of each `AT+CMGS` and its `+CMGS:` answer.
    pub send_delay_ms: u64,
    /// SIM message slots (indices 1..=capacity).
    pub capacity: u16,
    /// The SIM's PIN; `Some` locks it at every power-up (start and after an unplug).
    pub pin: Option<String>,
    /// Delay before a requested status report arrives; `None` means reports never come.
    pub status_report_delay_ms: Option<u64>,
    /// `<rssi>` of `+CSQ` (0–31, 99 unknown).
    pub rssi: u8,
    pub registration: Registration,
    pub operator: String,
    /// The SMS centre `AT+CSCA?` reports and inbound PDUs carry.
    pub smsc: String,
    /// The SIM's serial number (`AT+CCID`); changing it is putting in another SIM.
    pub iccid: String,
    /// The network's USSD services by code (`*444#`); an unknown code answers `+CUSD: 4`.
    pub ussd: BTreeMap<String, UssdNode>,
    /// Answer GSM 7-bit USSD texts as hex of the packed septets, as Huawei sticks do, instead
    /// of as text (UCS-2 texts, and any text under `AT+CSCS="UCS2"`, are hex anyway).
    pub ussd_hex: bool,
}

/// One USSD answer of the simulated network, and the menu it opens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UssdNode {
    /// The text shown (a menu: one option a line).
    #[serde(default)]
    pub text: String,
    /// Send it in UCS-2 (`<dcs>` 72) rather than GSM 7-bit (`<dcs>` 15).
    #[serde(default)]
    pub ucs2: bool,
    /// Answers the network accepts next (`"1"`, `"2"`…); none ends the session.
    #[serde(default)]
    pub menu: BTreeMap<String, UssdNode>,
    #[serde(default)]
    pub result: UssdResult,
}

/// How the network answers a USSD request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UssdResult {
    /// `+CUSD: 0` with the text (`+CUSD: 1` when it has a menu).
    #[default]
    Answer,
    /// `+CUSD: 2`: the network ended the session.
    Ended,
    /// `+CUSD: 4`: operation not supported.
    NotSupported,
    /// The command itself fails: `+CME ERROR: 100`, as when the network rejects the request.
    Error,
    /// `OK` and then nothing: the host's wait times out.
    Silent,
}

impl UssdNode {
    fn text(text: &str) -> UssdNode {
        UssdNode {
            text: text.to_string(),
            ucs2: false,
            menu: BTreeMap::new(),
            result: UssdResult::Answer,
        }
    }

    fn with_menu(mut self, options: &[(&str, UssdNode)]) -> UssdNode {
        self.menu = options
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        self
    }

    /// Longest USSD text (TS 23.038: 182 GSM 7-bit characters).
    const MAX_TEXT: usize = 182;

    /// Checks every text of the tree; the error names the code or answer path.
    pub fn validate(&self, path: &str) -> Result<(), InvalidInput> {
        let bad = |why: String| Err(InvalidInput::new("ussd", format!("{path}: {why}")));
        if self.text.chars().count() > Self::MAX_TEXT {
            return bad(format!("text longer than {} characters", Self::MAX_TEXT));
        }
        if self.text.contains('"') {
            return bad("text with a double quote".to_string());
        }
        if !self.ucs2 && !crate::sms::gsm7::is_encodable(&self.text) {
            return bad("text not in the GSM 7-bit alphabet; set \"ucs2\": true".to_string());
        }
        if !self.menu.is_empty() && self.result != UssdResult::Answer {
            return bad("a menu needs \"result\": \"answer\"".to_string());
        }
        for (key, node) in &self.menu {
            if key.is_empty() || key.len() > 160 || key.contains('"') {
                return bad(format!(
                    "menu answer `{key}` must be 1-160 characters, no quotes"
                ));
            }
            node.validate(&format!("{path} > {key}"))?;
        }
        Ok(())
    }
}

/// The simulated network's USSD services out of the box: the credit, a two-step menu, a
/// UCS-2 answer, a session the network ends and a request that never gets an answer.
pub fn default_ussd() -> BTreeMap<String, UssdNode> {
    let balance = "Su saldo es $ 1.234,50. Vence el 31/12/2026.";
    let mut map = BTreeMap::new();
    map.insert("*444#".to_string(), UssdNode::text(balance));
    map.insert(
        "*150#".to_string(),
        UssdNode::text("Personal\n1 Consultar saldo\n2 Comprar pack").with_menu(&[
            ("1", UssdNode::text("Saldo: $ 1.234,50")),
            (
                "2",
                UssdNode::text("Packs:\n1 1 GB $ 500\n2 3 GB $ 1.200").with_menu(&[
                    ("1", UssdNode::text("Pack 1 GB activado. Saldo: $ 734,50")),
                    ("2", UssdNode::text("Saldo insuficiente")),
                ]),
            ),
        ]),
    );
    map.insert(
        "*555#".to_string(),
        UssdNode {
            ucs2: true,
            ..UssdNode::text("Tu crédito: $ 1.234,50 — ¡recargá ya!")
        },
    );
    map.insert(
        "*999#".to_string(),
        UssdNode {
            result: UssdResult::Ended,
            ..UssdNode::text("")
        },
    );
    map.insert(
        "*777#".to_string(),
        UssdNode {
            result: UssdResult::Silent,
            ..UssdNode::text("")
        },
    );
    map
}

/// Typical SIM capacity of the prepaid cards Argentine operators sell.
pub const DEFAULT_CAPACITY: u16 = 30;
/// Largest SIM the simulator accepts (indices stay three digits at most).
pub const MAX_CAPACITY: u16 = 999;
/// PUK that unblocks the simulated SIM after three wrong PINs.
pub const PUK: &str = "12345678";

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            send_delay_ms: 0,
            capacity: DEFAULT_CAPACITY,
            pin: None,
            status_report_delay_ms: None,
            rssi: 20,
            registration: Registration::Home,
            operator: "Personal".to_string(),
            smsc: "+5491151740000".to_string(),
            iccid: "8954340000000000001".to_string(),
            ussd: default_ussd(),
            ussd_hex: false,
        }
    }
}

/// A partial update of [`SimConfig`] (`POST /config`): absent fields are left alone; `pin` and
/// `status_report_delay_ms` take `null` to clear them.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigPatch {
    pub send_delay_ms: Option<u64>,
    pub capacity: Option<u16>,
    #[serde(default, deserialize_with = "present")]
    pub pin: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub status_report_delay_ms: Option<Option<u64>>,
    pub rssi: Option<u8>,
    pub registration: Option<Registration>,
    pub operator: Option<String>,
    pub smsc: Option<String>,
    pub iccid: Option<String>,
    /// Replaces the whole USSD service table.
    pub ussd: Option<BTreeMap<String, UssdNode>>,
    pub ussd_hex: Option<bool>,
}

/// Distinguishes `"field": null` (`Some(None)`) from an absent field (`None`, via `default`).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// A fault to inject (`POST /fault`). Durations are seconds and may be fractional.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// Read and ignore everything for `secs`, then answer normally again.
    Hang { secs: f64 },
    /// Close the pseudo-terminal and remove the link; after `secs` a new one appears.
    Unplug { secs: f64 },
    /// Each `AT+CMGS` fails with `+CMS ERROR: <code>` with this probability (0 clears it).
    CmsError { code: u16, probability: f64 },
    /// For `secs`, noise bytes and unsolicited lines around (never inside) final responses.
    Garbage { secs: f64 },
    /// The next `AT+CPIN=<pin>` gets no answer and the modem ignores everything for `secs`
    /// (a SIM busy checking its PIN); the PIN is not entered.
    HangOnPin { secs: f64 },
    /// End every fault now (an unplugged modem comes back at once).
    Clear,
}

/// Longest fault the API accepts: a day.
pub const MAX_FAULT_SECS: f64 = 86_400.0;

/// Why a configuration change or fault was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct InvalidInput {
    pub field: &'static str,
    pub reason: String,
}

impl InvalidInput {
    pub(crate) fn new(field: &'static str, reason: impl Into<String>) -> Self {
        InvalidInput {
            field,
            reason: reason.into(),
        }
    }
}

impl Fault {
    /// Checks durations and probabilities; the error names the field.
    pub fn validate(&self) -> Result<(), InvalidInput> {
        let secs = |s: f64| {
            if s.is_finite() && (0.0..=MAX_FAULT_SECS).contains(&s) {
                Ok(())
            } else {
                Err(InvalidInput::new("secs", "must be between 0 and 86400"))
            }
        };
        match *self {
            Fault::Hang { secs: s }
            | Fault::Unplug { secs: s }
            | Fault::Garbage { secs: s }
            | Fault::HangOnPin { secs: s } => secs(s),
            Fault::CmsError { code, probability } => {
                if code > 999 {
                    return Err(InvalidInput::new("code", "must be 0-999"));
                }
                if !(0.0..=1.0).contains(&probability) {
                    return Err(InvalidInput::new("probability", "must be between 0 and 1"));
                }
                Ok(())
            }
            Fault::Clear => Ok(()),
        }
    }
}

/// One message as the network received it from the modem: its parts joined.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SentMessage {
    pub to: String,
    pub text: String,
    pub parts: usize,
    /// Each part's PDU as typed after `AT+CMGS` (SMS-centre field included), in part order.
    pub pdus: Vec<String>,
    /// TP-MR the modem assigned to each part, in part order.
    pub message_references: Vec<u8>,
    pub encoding: &'static str,
    pub status_report_requested: bool,
    /// When the last part was accepted (RFC 3339).
    pub time: String,
}

/// A message slot of the SIM as `GET /sim` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredMessage {
    pub index: u16,
    /// `<stat>` of `+CMGL`: 0 unread, 1 read.
    pub stat: u8,
    /// `deliver` or `status_report`.
    pub kind: &'static str,
    /// Sender (a deliver) or recipient (a status report).
    pub from: String,
    /// This part's text; a status report shows its TP-MR.
    pub text: String,
    /// `[seq, total]` for a part of a concatenated message.
    pub part: Option<[u8; 2]>,
}

/// `GET /sim`: the stored messages and the counters `AT+CPMS` reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimContents {
    pub used: usize,
    pub capacity: u16,
    /// Parts the network holds because the SIM is full, locked or unregistered.
    pub waiting: usize,
    pub messages: Vec<StoredMessage>,
}
