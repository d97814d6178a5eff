//! SMS codec: GSM 7-bit and UCS-2 alphabets, segmenting, SMS-SUBMIT encoding, decoding of
//! SMS-DELIVER / SMS-SUBMIT / SMS-STATUS-REPORT, and reassembly of concatenated messages
//! (3GPP TS 23.038 and TS 23.040, PDU mode of TS 27.005).
//!
//! Pure code: no I/O, no clock, no global state. Malformed input is always an [`SmsError`],
//! never a panic. The modem driver uses [`encode_submit`], [`decode_pdu`], [`Reassembler`] and
//! [`segment::analyze`]; [`cli`] implements `pasarela pdu`.
//!
//! Map:
//! - [`gsm7`], [`ucs2`], [`translit`]: alphabets and septet packing.
//! - [`address`], [`dcs`], [`scts`], [`udh`]: the fields of a PDU.
//! - [`pdu`]: whole PDUs; [`segment`]: choosing the alphabet and cutting into parts.
//! - [`reassembly`]: putting concatenated parts back together.

pub mod address;
pub mod cli;
pub mod dcs;
mod error;
pub mod gsm7;
pub mod hex;
pub mod pdu;
mod reader;
pub mod reassembly;
pub mod scts;
pub mod segment;
pub mod translit;
pub mod ucs2;
pub mod udh;

pub use address::{Address, AddressKind};
pub use dcs::{Dcs, Encoding};
pub use error::SmsError;
pub use pdu::{
    Content, DecodedPdu, Deliver, DeliveryStatus, StatusReport, Submit, UserData, Validity,
    decode_pdu,
};
pub use reassembly::{
    CompleteMessage, IncompleteMessage, Part, PartKey, Pushed, Reassembler, join_text,
};
pub use segment::{EncodingChoice, SegmentInfo, SubmitOptions};
pub use udh::Concat;

/// One SMS-SUBMIT ready for `AT+CMGS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmitPart {
    /// The TPDU, without the SMS-centre field; TP-MR is zero for the modem to assign.
    pub tpdu: Vec<u8>,
    /// `tpdu` as upper-case hex.
    pub hex: String,
    /// Octets in `tpdu`: the `<length>` of `AT+CMGS=<length>`.
    pub length: usize,
    /// 1-based position and part count (1 and 1 for a single-part message).
    pub seq: u8,
    pub total: u8,
    pub encoding: Encoding,
    /// The characters this part carries (after transliteration, if any).
    pub text: String,
    /// Whether the text was transliterated to fit GSM 7-bit (same for every part).
    pub transliterated: bool,
}

impl SubmitPart {
    /// The PDU to type after `AT+CMGS=<length>`: `00` (use the SIM's SMS centre) then the TPDU.
    pub fn hex_with_default_smsc(&self) -> String {
        format!("00{}", self.hex)
    }
}

/// Encodes `text` to `to` (digits with an optional leading `+`) as one SMS-SUBMIT per part.
/// Parts of a multi-part message carry a concatenation header with `opts.concat_ref`.
pub fn encode_submit(
    to: &str,
    text: &str,
    opts: &SubmitOptions,
) -> Result<Vec<SubmitPart>, SmsError> {
    let destination = address::encode(to)?;
    let plan = segment::plan(text, opts)?;
    let info = &plan.info;
    if !info.within_limit {
        return Err(SmsError::TooManyParts {
            parts: info.parts,
            max: opts.max_parts.clamp(1, 255),
        });
    }
    let fields = pdu::SubmitFields {
        destination: &destination,
        dcs: Dcs::encode(info.encoding),
        validity: opts.validity_minutes.map(pdu::relative_validity_code),
        status_report_request: opts.status_report,
    };
    let total = info.parts as u8;
    Ok(plan
        .parts
        .into_iter()
        .enumerate()
        .map(|(i, (body, part_text))| {
            let seq = (i + 1) as u8;
            let header = if total > 1 {
                Concat {
                    reference: opts.concat_ref,
                    total,
                    seq,
                    wide: opts.concat_ref16,
                }
                .header()
            } else {
                Vec::new()
            };
            let tpdu = pdu::encode_submit_tpdu(&fields, &header, &body);
            SubmitPart {
                hex: hex::encode(&tpdu),
                length: tpdu.len(),
                tpdu,
                seq,
                total,
                encoding: info.encoding,
                text: part_text,
                transliterated: info.transliterated,
            }
        })
        .collect())
}
