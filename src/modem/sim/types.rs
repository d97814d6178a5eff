//! The values the simulator's callers see: its configuration, faults, what was sent and what the
//! SIM holds. Shared by the in-process [`super::SimHandle`] and the HTTP control API, so both
//! accept and return exactly the same JSON.

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
