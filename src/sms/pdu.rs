//! Transfer-layer PDUs (3GPP TS 23.040 §9.2.2): decoding SMS-DELIVER, SMS-SUBMIT and
//! SMS-STATUS-REPORT, and encoding SMS-SUBMIT.
//!
//! Contracts:
//! - [`decode_pdu`] reads only inside the buffer; every malformed input is an [`SmsError`] with
//!   the octet offset (counted from the start of the buffer, SMS-centre field included).
//! - Octets after the user data are ignored; a length field that claims more than the buffer or
//!   more than the standard allows is an error, with two exceptions real modems need:
//!   - user data shorter than its TP-UDL (some modems cut it) decodes what is there and is
//!     marked [`UserData::truncated`];
//!   - a status report's optional fields (TP-PI and what it announces) that do not decode, such
//!     as `FF` padding (TP-PI `FF`, TP-UDL 255), are dropped: the report keeps its status.
//! - The message type comes from TP-MTI alone (00 deliver, 01 submit, 10 status report), which is
//!   how a modem's storage presents them; TP-MTI 11 is rejected.
//! - 8-bit user data is kept as bytes; [`UserData::text`] shows it as hex, never as characters.

use chrono::{DateTime, FixedOffset};

use super::address::{self, Address};
use super::dcs::{Dcs, Encoding};
use super::reader::Reader;
use super::udh::{self, Concat, InformationElement};
use super::{SmsError, gsm7, hex, scts, ucs2};

/// Most septets one SMS carries (140 octets).
pub const MAX_SEPTETS: usize = 160;
/// Most octets of user data one SMS carries.
pub const MAX_OCTETS: usize = 140;

/// Decoded characters, or raw octets for 8-bit data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    Text(String),
    Binary(Vec<u8>),
}

/// The user data of a PDU, header interpreted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserData {
    pub encoding: Encoding,
    /// Every information element of the header, concatenation included.
    pub header: Vec<InformationElement>,
    pub concat: Option<Concat>,
    pub content: Content,
    /// UCS-2 only: a low surrogate that opened this part and belongs to the previous part's last
    /// character (set only on a concatenated part that is not the first).
    pub leading_low_surrogate: Option<u16>,
    /// UCS-2 only: a high surrogate that closed this part and waits for the next part (set only
    /// on a concatenated part that is not the last).
    pub trailing_high_surrogate: Option<u16>,
    /// The buffer ended before the octets TP-UDL announced: `content` is what arrived (whole
    /// characters only). The caller should keep the raw PDU beside the text.
    pub truncated: bool,
}

impl UserData {
    /// The text for display: decoded characters, or upper-case hex for 8-bit data.
    pub fn text(&self) -> String {
        match &self.content {
            Content::Text(t) => t.clone(),
            Content::Binary(b) => hex::encode(b),
        }
    }
}

/// TP-Validity-Period of an SMS-SUBMIT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    /// Relative format: the raw octet (see [`relative_validity_minutes`]).
    Relative(u8),
    Absolute(DateTime<FixedOffset>),
    /// Enhanced format, kept as received.
    Enhanced([u8; 7]),
}

/// Minutes a relative validity octet stands for (TS 23.040 §9.2.3.12.1).
pub fn relative_validity_minutes(code: u8) -> u32 {
    let v = u32::from(code);
    match code {
        0..=143 => (v + 1) * 5,
        144..=167 => 12 * 60 + (v - 143) * 30,
        168..=196 => (v - 166) * 24 * 60,
        _ => (v - 192) * 7 * 24 * 60,
    }
}

/// The smallest relative validity octet covering at least `minutes` (at least 5 minutes, at most
/// 63 weeks).
pub fn relative_validity_code(minutes: u32) -> u8 {
    (0..=u8::MAX)
        .find(|&c| relative_validity_minutes(c) >= minutes)
        .unwrap_or(u8::MAX)
}

/// A received message (SMS-DELIVER).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deliver {
    pub smsc: Option<Address>,
    pub from: Address,
    pub pid: u8,
    pub dcs: Dcs,
    pub timestamp: DateTime<FixedOffset>,
    pub more_messages_to_send: bool,
    pub reply_path: bool,
    pub status_report_indication: bool,
    pub user_data: UserData,
}

/// An outgoing message (SMS-SUBMIT), as listed from a modem's sent folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submit {
    pub smsc: Option<Address>,
    /// TP-MR (zero when the modem assigns it).
    pub message_reference: u8,
    pub to: Address,
    pub pid: u8,
    pub dcs: Dcs,
    pub validity: Option<Validity>,
    pub status_report_request: bool,
    pub reject_duplicates: bool,
    pub reply_path: bool,
    pub user_data: UserData,
}

/// Outcome of a status report, from TP-Status (TS 23.040 §9.2.3.15).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// 0x00–0x1F: the transaction completed (received, forwarded, replaced).
    Delivered,
    /// 0x20–0x3F: temporary error, the centre is still trying.
    Pending,
    /// 0x40–0x7F: permanent error, or temporary with no more attempts; reserved values above
    /// 0x7F are counted as failures.
    Failed,
}

impl DeliveryStatus {
    pub fn from_code(code: u8) -> Self {
        match code {
            0x00..=0x1F => DeliveryStatus::Delivered,
            0x20..=0x3F => DeliveryStatus::Pending,
            _ => DeliveryStatus::Failed,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Failed => "failed",
        }
    }
}

/// A delivery report (SMS-STATUS-REPORT).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusReport {
    pub smsc: Option<Address>,
    /// TP-MR of the SMS-SUBMIT this reports on (the value `+CMGS:` returned).
    pub message_reference: u8,
    pub recipient: Address,
    /// When the centre received the original message.
    pub timestamp: DateTime<FixedOffset>,
    /// When the status was reached (delivered, or the last attempt).
    pub discharge_time: DateTime<FixedOffset>,
    pub status_code: u8,
    pub pid: Option<u8>,
    pub dcs: Option<Dcs>,
    pub user_data: Option<UserData>,
}

impl StatusReport {
    pub fn status(&self) -> DeliveryStatus {
        DeliveryStatus::from_code(self.status_code)
    }
}

/// Any PDU a modem stores or reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodedPdu {
    Deliver(Deliver),
    Submit(Submit),
    StatusReport(StatusReport),
}

impl DecodedPdu {
    /// The user data, when the PDU has any.
    pub fn user_data(&self) -> Option<&UserData> {
        match self {
            DecodedPdu::Deliver(d) => Some(&d.user_data),
            DecodedPdu::Submit(s) => Some(&s.user_data),
            DecodedPdu::StatusReport(r) => r.user_data.as_ref(),
        }
    }

    pub fn smsc(&self) -> Option<&Address> {
        match self {
            DecodedPdu::Deliver(d) => d.smsc.as_ref(),
            DecodedPdu::Submit(s) => s.smsc.as_ref(),
            DecodedPdu::StatusReport(r) => r.smsc.as_ref(),
        }
    }
}

fn read_timestamp(
    r: &mut Reader<'_>,
    field: &'static str,
) -> Result<DateTime<FixedOffset>, SmsError> {
    let offset = r.offset();
    let raw: &[u8; 7] = r
        .take(7, field)?
        .try_into()
        .map_err(|_| SmsError::truncated(field, offset, 7, 0))?;
    scts::decode(raw, offset)
}

/// Decodes a PDU. With `has_smsc` the buffer starts with the SMS-centre address field, as modems
/// print PDUs after `+CMGR`, `+CMGL` and `+CDS`; without it the buffer is a bare TPDU.
pub fn decode_pdu(bytes: &[u8], has_smsc: bool) -> Result<DecodedPdu, SmsError> {
    let mut r = Reader::new(bytes);
    let smsc = if has_smsc {
        address::decode_smsc(&mut r)?
    } else {
        None
    };
    let first_offset = r.offset();
    let first = r.u8("first octet")?;
    let udhi = first & 0x40 != 0;
    match first & 0x03 {
        0b00 => {
            let from = address::decode(&mut r)?;
            let pid = r.u8("protocol identifier")?;
            let dcs_offset = r.offset();
            let dcs = Dcs::decode(r.u8("data coding scheme")?, dcs_offset)?;
            let timestamp = read_timestamp(&mut r, "service-centre timestamp")?;
            let user_data = decode_user_data(&mut r, &dcs, dcs_offset, udhi)?;
            Ok(DecodedPdu::Deliver(Deliver {
                smsc,
                from,
                pid,
                dcs,
                timestamp,
                more_messages_to_send: first & 0x04 == 0,
                reply_path: first & 0x80 != 0,
                status_report_indication: first & 0x20 != 0,
                user_data,
            }))
        }
        0b01 => {
            let message_reference = r.u8("message reference")?;
            let to = address::decode(&mut r)?;
            let pid = r.u8("protocol identifier")?;
            let dcs_offset = r.offset();
            let dcs = Dcs::decode(r.u8("data coding scheme")?, dcs_offset)?;
            let validity = match (first >> 3) & 0x03 {
                0b00 => None,
                0b10 => Some(Validity::Relative(r.u8("validity period")?)),
                0b11 => Some(Validity::Absolute(read_timestamp(
                    &mut r,
                    "validity period",
                )?)),
                _ => {
                    let offset = r.offset();
                    let raw = r.take(7, "validity period")?;
                    Some(Validity::Enhanced(raw.try_into().map_err(|_| {
                        SmsError::truncated("validity period", offset, 7, raw.len())
                    })?))
                }
            };
            let user_data = decode_user_data(&mut r, &dcs, dcs_offset, udhi)?;
            Ok(DecodedPdu::Submit(Submit {
                smsc,
                message_reference,
                to,
                pid,
                dcs,
                validity,
                status_report_request: first & 0x20 != 0,
                reject_duplicates: first & 0x04 != 0,
                reply_path: first & 0x80 != 0,
                user_data,
            }))
        }
        0b10 => decode_status_report(&mut r, smsc, udhi).map(DecodedPdu::StatusReport),
        mti => Err(SmsError::ReservedMessageType {
            offset: first_offset,
            mti,
        }),
    }
}

fn decode_status_report(
    r: &mut Reader<'_>,
    smsc: Option<Address>,
    udhi: bool,
) -> Result<StatusReport, SmsError> {
    let message_reference = r.u8("message reference")?;
    let recipient = address::decode(r)?;
    let timestamp = read_timestamp(r, "service-centre timestamp")?;
    let discharge_time = read_timestamp(r, "discharge time")?;
    let status_code = r.u8("status")?;
    let mut report = StatusReport {
        smsc,
        message_reference,
        recipient,
        timestamp,
        discharge_time,
        status_code,
        pid: None,
        dcs: None,
        user_data: None,
    };
    // TP-Parameter-Indicator and what it announces are optional; a report may end here. Some
    // modems pad the rest with `FF` (TP-PI `FF`, reserved DCS `FF`, TP-UDL 255): what does not
    // decode is dropped, since the status above is what the report is for.
    if r.remaining() == 0 {
        return Ok(report);
    }
    if let Ok(p) = decode_report_parameters(r, udhi) {
        report.pid = p.pid;
        report.dcs = p.dcs;
        report.user_data = p.user_data;
    }
    Ok(report)
}

/// What a status report's TP-PI announces.
#[derive(Default)]
struct ReportParameters {
    pid: Option<u8>,
    dcs: Option<Dcs>,
    user_data: Option<UserData>,
}

/// The optional fields of a status report after TP-Status: TP-PI and what it announces.
fn decode_report_parameters(r: &mut Reader<'_>, udhi: bool) -> Result<ReportParameters, SmsError> {
    let pi = r.u8("parameter indicator")?;
    // Bit 7 is the extension bit and bits 3-6 are reserved: an indicator using them is padding
    // or from a later release, and what follows cannot be read with this one.
    if pi & 0xF8 != 0 {
        return Ok(ReportParameters::default());
    }
    let pid = if pi & 0x01 != 0 {
        Some(r.u8("protocol identifier")?)
    } else {
        None
    };
    let mut dcs_offset = r.offset();
    let dcs = if pi & 0x02 != 0 {
        Some(Dcs::decode(r.u8("data coding scheme")?, dcs_offset)?)
    } else {
        None
    };
    let mut user_data = None;
    if pi & 0x04 != 0 {
        if dcs.is_none() {
            dcs_offset = r.offset();
        }
        let coding = dcs.unwrap_or(Dcs::decode(0, dcs_offset)?);
        user_data = Some(decode_user_data(r, &coding, dcs_offset, udhi)?);
    }
    Ok(ReportParameters {
        pid,
        dcs,
        user_data,
    })
}

/// Reads TP-UDL and TP-UD. `dcs_offset` locates the DCS for the compressed-text error.
fn decode_user_data(
    r: &mut Reader<'_>,
    dcs: &Dcs,
    dcs_offset: usize,
    udhi: bool,
) -> Result<UserData, SmsError> {
    if dcs.compressed {
        return Err(SmsError::CompressedText {
            offset: dcs_offset,
            dcs: dcs.raw,
        });
    }
    let udl_offset = r.offset();
    let udl = usize::from(r.u8("user data length")?);
    let (max, octets) = match dcs.encoding {
        Encoding::Gsm7 => (MAX_SEPTETS, gsm7::packed_len(udl, 0)),
        _ => (MAX_OCTETS, udl),
    };
    if udl > max {
        return Err(SmsError::UserDataTooLong {
            offset: udl_offset,
            udl,
            max,
        });
    }
    let ud_offset = r.offset();
    // A modem that cut the user data short: decode what is there and say so.
    let truncated = r.remaining() < octets;
    let ud = r.take(octets.min(r.remaining()), "user data")?;
    let (header_len, header, concat) = if udhi && !ud.is_empty() {
        let header_len = 1 + usize::from(ud[0]);
        let body = ud.get(1..header_len).ok_or(SmsError::HeaderTooLong {
            offset: ud_offset,
            length: header_len,
            available: ud.len(),
        })?;
        let (header, concat) = udh::parse(body, ud_offset + 1)?;
        (header_len, header, concat)
    } else if udhi {
        return Err(SmsError::HeaderTooLong {
            offset: ud_offset,
            length: 1,
            available: 0,
        });
    } else {
        (0, Vec::new(), None)
    };
    let mut body = &ud[header_len..];
    let body_offset = ud_offset + header_len;
    let mut leading_low_surrogate = None;
    let mut trailing_high_surrogate = None;
    let content = match dcs.encoding {
        Encoding::Gsm7 => {
            let header_septets = (header_len * 8).div_ceil(7);
            let count = udl
                .checked_sub(header_septets)
                .ok_or(SmsError::HeaderTooLong {
                    offset: ud_offset,
                    length: header_len,
                    available: octets,
                })?;
            let fill = (header_septets * 7 - header_len * 8) as u8;
            // Only the septets whose seven bits all arrived.
            let count = if truncated {
                count.min((body.len() * 8).saturating_sub(usize::from(fill)) / 7)
            } else {
                count
            };
            let septets = gsm7::unpack(body, fill, count).ok_or(SmsError::truncated(
                "user data",
                body_offset,
                gsm7::packed_len(count, fill),
                body.len(),
            ))?;
            let shift = header
                .iter()
                .find(|ie| ie.iei == udh::IEI_SINGLE_SHIFT)
                .and_then(|ie| ie.data.first())
                .map_or(gsm7::SingleShift::Default, |&l| {
                    gsm7::SingleShift::for_language(l)
                });
            Content::Text(gsm7::decode_with(&septets, shift))
        }
        Encoding::Ucs2 => {
            let (lead, mut trail) = concat.map_or((false, false), |c| (c.seq > 1, c.seq < c.total));
            if truncated {
                // Whole UTF-16 units only; a character cut in half is dropped, not an error.
                body = &body[..body.len() & !1];
                trail = true;
            }
            let part = ucs2::decode_part(body, body_offset, lead, trail)?;
            leading_low_surrogate = part.leading_low;
            // A high surrogate left by the cut is not waiting for another part.
            if !truncated {
                trailing_high_surrogate = part.trailing_high;
            }
            Content::Text(part.text)
        }
        Encoding::EightBit => Content::Binary(body.to_vec()),
    };
    Ok(UserData {
        encoding: dcs.encoding,
        header,
        concat,
        content,
        leading_low_surrogate,
        trailing_high_surrogate,
        truncated,
    })
}

/// User data ready to be written: an optional header (length octet included) and the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Body {
    /// Unpacked septets.
    Gsm7(Vec<u8>),
    /// UTF-16BE or 8-bit octets.
    Octets(Vec<u8>),
}

/// TP-UDL and TP-UD for `body` after `header`.
pub(crate) fn encode_user_data(header: &[u8], body: &Body) -> (u8, Vec<u8>) {
    let mut ud = header.to_vec();
    let udl = match body {
        Body::Gsm7(septets) => {
            let header_septets = (header.len() * 8).div_ceil(7);
            let fill = (header_septets * 7 - header.len() * 8) as u8;
            ud.extend(gsm7::pack(septets, fill));
            header_septets + septets.len()
        }
        Body::Octets(octets) => {
            ud.extend_from_slice(octets);
            ud.len()
        }
    };
    (udl as u8, ud)
}

/// Fields of an SMS-SUBMIT besides the user data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SubmitFields<'a> {
    pub destination: &'a [u8],
    pub dcs: u8,
    pub validity: Option<u8>,
    pub status_report_request: bool,
}

/// An SMS-SUBMIT TPDU (no SMS-centre field) with TP-MR zero, for the modem to fill.
pub(crate) fn encode_submit_tpdu(fields: &SubmitFields<'_>, header: &[u8], body: &Body) -> Vec<u8> {
    let mut first = 0x01;
    if fields.validity.is_some() {
        first |= 0x10;
    }
    if fields.status_report_request {
        first |= 0x20;
    }
    if !header.is_empty() {
        first |= 0x40;
    }
    let mut out = vec![first, 0x00];
    out.extend_from_slice(fields.destination);
    out.extend_from_slice(&[0x00, fields.dcs]);
    out.extend(fields.validity);
    let (udl, ud) = encode_user_data(header, body);
    out.push(udl);
    out.extend(ud);
    out
}

#[cfg(test)]
mod tests;
