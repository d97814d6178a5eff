//! `pasarela pdu`: decode PDUs as a modem prints them, encode SMS-SUBMIT PDUs, and count what a
//! text costs. The functions write to a caller-supplied writer and return exit codes, so the
//! main binary stays thin and tests need no process.
//!
//! Output contract of `decode`: one JSON object per input line (or per reassembled message with
//! `--join`), with `type`, `from` (deliver) or `to` (submit, status report), `smsc`, `text`,
//! `encoding`, `class`, `timestamp`, `concat`, `reference`, and for status reports `status`,
//! `status_code` and `discharge_time`. An input that does not decode prints
//! `{"error": …, "input": …}` and makes the exit code 1 once every input has been handled.

use std::io::{BufRead, Write};

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};

use super::pdu::{DecodedPdu, UserData, relative_validity_minutes};
use super::reassembly::{IncompleteMessage, Part, PartKey, Pushed, Reassembler, join_text};
use super::segment::{DEFAULT_MAX_PARTS, DEFAULT_VALIDITY_MINUTES};
use super::{EncodingChoice, SmsError, SubmitOptions, Validity, hex};

/// `pasarela pdu …`
#[derive(Debug, Clone, clap::Subcommand)]
pub enum PduCommand {
    /// Decode PDUs (hex) as printed after +CMGR, +CMGL or +CDS, one JSON object per line.
    ///
    /// Input starts with the SMS-centre address field unless --tpdu is given. With no HEX
    /// arguments, PDUs are read from standard input, one per line.
    Decode {
        /// Input is a bare TPDU, without the SMS-centre field.
        #[arg(long)]
        tpdu: bool,
        /// Reassemble the parts of concatenated messages into one object with "parts": N.
        #[arg(long)]
        join: bool,
        /// PDUs in hex.
        #[arg(value_name = "HEX")]
        pdus: Vec<String>,
    },
    /// Encode a text as SMS-SUBMIT TPDUs, one hex line per part.
    ///
    /// Lines have no SMS-centre field, so each line's octet count is the AT+CMGS=<length> value;
    /// prefix "00" (the SIM's SMS centre) when typing one after the prompt.
    Encode(EncodeOptions),
    /// Tell how many SMS a text takes, in which encoding, and how many characters are left.
    Count {
        #[arg(long)]
        text: String,
        #[arg(long, value_enum, default_value_t = EncodingArg::Auto)]
        encoding: EncodingArg,
        /// Replace accents and typographic punctuation to stay in GSM 7-bit.
        #[arg(long)]
        transliterate: bool,
    },
}

/// Alphabet choice on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EncodingArg {
    /// GSM 7-bit when every character fits, UCS-2 otherwise.
    Auto,
    /// GSM 7-bit or an error.
    Gsm7,
    /// UCS-2 (UTF-16), any character.
    Ucs2,
}

impl From<EncodingArg> for EncodingChoice {
    fn from(e: EncodingArg) -> Self {
        match e {
            EncodingArg::Auto => EncodingChoice::Auto,
            EncodingArg::Gsm7 => EncodingChoice::Gsm7,
            EncodingArg::Ucs2 => EncodingChoice::Ucs2,
        }
    }
}

/// Options of `pasarela pdu encode`.
#[derive(Debug, Clone, clap::Args)]
pub struct EncodeOptions {
    /// Destination: +<country code><number> (international) or digits (national).
    #[arg(long)]
    pub to: String,
    /// Message text.
    #[arg(long)]
    pub text: String,
    #[arg(long, value_enum, default_value_t = EncodingArg::Auto)]
    pub encoding: EncodingArg,
    /// Concatenation reference for multi-part messages; above 255 the 16-bit element is used.
    #[arg(long = "ref", value_name = "N", default_value_t = 0)]
    pub reference: u16,
    /// Use the 16-bit concatenation reference even for small references.
    #[arg(long)]
    pub ref16: bool,
    /// Request a status report.
    #[arg(long)]
    pub status_report: bool,
    /// Relative validity period in minutes, rounded up to what the PDU can express; 0 omits it.
    #[arg(long, value_name = "MINUTES", default_value_t = DEFAULT_VALIDITY_MINUTES)]
    pub validity: u32,
    /// Replace accents and typographic punctuation to stay in GSM 7-bit.
    #[arg(long)]
    pub transliterate: bool,
    /// Refuse texts that need more parts than this.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_PARTS)]
    pub max_parts: usize,
}

impl EncodeOptions {
    pub fn submit_options(&self) -> SubmitOptions {
        SubmitOptions {
            encoding: self.encoding.into(),
            transliterate: self.transliterate,
            validity_minutes: (self.validity > 0).then_some(self.validity),
            status_report: self.status_report,
            concat_ref: self.reference,
            concat_ref16: self.ref16 || self.reference > 0xFF,
            max_parts: self.max_parts,
        }
    }
}

/// Runs a `pdu` subcommand against standard input and output; returns the exit code.
pub fn run(cmd: PduCommand) -> i32 {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match cmd {
        PduCommand::Decode { tpdu, join, pdus } => {
            let inputs = if pdus.is_empty() {
                std::io::stdin()
                    .lock()
                    .lines()
                    .map_while(Result::ok)
                    .filter(|l| !l.trim().is_empty())
                    .collect()
            } else {
                pdus
            };
            run_decode(&inputs, tpdu, join, &mut out)
        }
        PduCommand::Encode(opts) => match run_encode(&opts, &mut out) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("error: {e}");
                1
            }
        },
        PduCommand::Count {
            text,
            encoding,
            transliterate,
        } => {
            let opts = SubmitOptions {
                encoding: encoding.into(),
                transliterate,
                ..SubmitOptions::default()
            };
            match super::segment::analyze(&text, &opts) {
                Ok(info) => {
                    let mut value = json!(info);
                    value["summary"] = json!(info.to_string());
                    let _ = writeln!(out, "{value}");
                    0
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    1
                }
            }
        }
    }
}

/// Writes one hex TPDU per part.
pub fn run_encode(opts: &EncodeOptions, out: &mut impl Write) -> Result<(), SmsError> {
    let parts = super::encode_submit(&opts.to, &opts.text, &opts.submit_options())?;
    for part in parts {
        let _ = writeln!(out, "{}", part.hex);
    }
    Ok(())
}

fn timestamp(t: &DateTime<chrono::FixedOffset>) -> Value {
    json!(t.to_rfc3339())
}

fn user_data_fields(obj: &mut serde_json::Map<String, Value>, ud: Option<&UserData>) {
    obj.insert("text".into(), json!(ud.map(UserData::text)));
    obj.insert("encoding".into(), json!(ud.map(|u| u.encoding.as_str())));
    if ud.is_some_and(|u| u.truncated) {
        obj.insert("truncated".into(), json!(true));
    }
    obj.insert(
        "concat".into(),
        json!(ud.and_then(|u| u.concat).map(|c| json!({
            "ref": c.reference,
            "total": c.total,
            "seq": c.seq,
        }))),
    );
}

/// The JSON object for one decoded PDU.
pub fn pdu_json(pdu: &DecodedPdu) -> Value {
    let mut obj = serde_json::Map::new();
    match pdu {
        DecodedPdu::Deliver(d) => {
            obj.insert("type".into(), json!("deliver"));
            obj.insert("from".into(), json!(d.from.value));
            obj.insert("smsc".into(), json!(d.smsc.as_ref().map(|a| &a.value)));
            user_data_fields(&mut obj, Some(&d.user_data));
            obj.insert("class".into(), json!(d.dcs.class));
            obj.insert("timestamp".into(), timestamp(&d.timestamp));
            obj.insert("reference".into(), Value::Null);
        }
        DecodedPdu::Submit(s) => {
            obj.insert("type".into(), json!("submit"));
            obj.insert("to".into(), json!(s.to.value));
            obj.insert("smsc".into(), json!(s.smsc.as_ref().map(|a| &a.value)));
            user_data_fields(&mut obj, Some(&s.user_data));
            obj.insert("class".into(), json!(s.dcs.class));
            obj.insert("timestamp".into(), Value::Null);
            obj.insert("reference".into(), json!(s.message_reference));
            if let Some(Validity::Relative(code)) = s.validity {
                obj.insert(
                    "validity_minutes".into(),
                    json!(relative_validity_minutes(code)),
                );
            }
            obj.insert("status_report".into(), json!(s.status_report_request));
        }
        DecodedPdu::StatusReport(r) => {
            obj.insert("type".into(), json!("status_report"));
            obj.insert("to".into(), json!(r.recipient.value));
            obj.insert("smsc".into(), json!(r.smsc.as_ref().map(|a| &a.value)));
            user_data_fields(&mut obj, r.user_data.as_ref());
            obj.insert("class".into(), json!(r.dcs.and_then(|d| d.class)));
            obj.insert("timestamp".into(), timestamp(&r.timestamp));
            obj.insert("discharge_time".into(), timestamp(&r.discharge_time));
            obj.insert("reference".into(), json!(r.message_reference));
            obj.insert("status".into(), json!(r.status().as_str()));
            obj.insert("status_code".into(), json!(r.status_code));
        }
    }
    Value::Object(obj)
}

fn peer(pdu: &DecodedPdu) -> &str {
    match pdu {
        DecodedPdu::Deliver(d) => &d.from.value,
        DecodedPdu::Submit(s) => &s.to.value,
        DecodedPdu::StatusReport(r) => &r.recipient.value,
    }
}

fn joined_json(parts: &[Option<&DecodedPdu>]) -> Value {
    let Some(first) = parts.iter().flatten().next() else {
        return Value::Null;
    };
    let mut value = pdu_json(first);
    value["text"] = json!(join_text(
        parts.iter().map(|p| p.and_then(|p| p.user_data()))
    ));
    if let Some(c) = first.user_data().and_then(|u| u.concat) {
        value["concat"] = json!({"ref": c.reference, "total": c.total});
    }
    value["parts"] = json!(parts.iter().flatten().count());
    value
}

fn incomplete_json(message: &IncompleteMessage<DecodedPdu>) -> Value {
    let parts: Vec<Option<&DecodedPdu>> = message.parts.iter().map(Option::as_ref).collect();
    let mut value = joined_json(&parts);
    value["incomplete"] = json!(true);
    value["missing"] = json!(message.missing());
    value
}

/// Decodes every input; returns 0, or 1 if any input failed to decode.
pub fn run_decode(hex_inputs: &[String], tpdu_only: bool, join: bool, out: &mut impl Write) -> i32 {
    let mut reassembler: Reassembler<DecodedPdu> =
        Reassembler::new(TimeDelta::MAX, hex_inputs.len().max(1));
    let now = DateTime::<Utc>::UNIX_EPOCH;
    let mut failed = false;
    for input in hex_inputs {
        let decoded = hex::decode(input).and_then(|bytes| super::decode_pdu(&bytes, !tpdu_only));
        let pdu = match decoded {
            Ok(pdu) => pdu,
            Err(e) => {
                failed = true;
                let _ = writeln!(
                    out,
                    "{}",
                    json!({"error": e.to_string(), "input": input.trim()})
                );
                continue;
            }
        };
        let concat = pdu.user_data().and_then(|u| u.concat);
        let Some(concat) = concat.filter(|_| join) else {
            let mut value = pdu_json(&pdu);
            if join {
                value["parts"] = json!(1);
            }
            let _ = writeln!(out, "{value}");
            continue;
        };
        let part = Part {
            key: PartKey {
                sender: peer(&pdu).to_string(),
                reference: concat.reference,
                total: concat.total,
            },
            seq: concat.seq,
            payload: pdu,
        };
        match reassembler.push(part, now) {
            Pushed::Complete(message) => {
                let parts: Vec<Option<&DecodedPdu>> = message.parts.iter().map(Some).collect();
                let _ = writeln!(out, "{}", joined_json(&parts));
            }
            Pushed::PendingEvicted(message) => {
                let _ = writeln!(out, "{}", incomplete_json(&message));
            }
            Pushed::Invalid(part) => {
                let _ = writeln!(out, "{}", pdu_json(&part.payload));
            }
            Pushed::Pending | Pushed::Duplicate => {}
        }
    }
    for message in reassembler.drain() {
        let _ = writeln!(out, "{}", incomplete_json(&message));
    }
    i32::from(failed)
}
