//! The PDUs a network sends to a handset and the codec does not build: SMS-DELIVER (one per part
//! of an inbound text) and SMS-STATUS-REPORT (3GPP TS 23.040 §9.2.2.1 and §9.2.2.3).
//!
//! Contracts:
//! - Every PDU starts with the SMS-centre field, as a modem prints it after `+CMGR`, `+CMGL` and
//!   `+CDS`; [`SimPdu::tpdu_len`] is the `<length>` those responses announce.
//! - Alphabet choice and cutting into parts are the codec's (`segment::plan`), so a text is split
//!   exactly as the gateway would split it when sending.
//! - Senders are `+digits` (international), `digits` (unknown type, read as national) or up to
//!   11 GSM 7-bit characters (alphanumeric, TON 101).

use chrono::{DateTime, FixedOffset};

use crate::sms::pdu::{Body, encode_user_data};
use crate::sms::segment::{self, EncodingChoice, SubmitOptions};
use crate::sms::{Concat, Dcs, SmsError, address, gsm7, hex, scts};

/// Longest alphanumeric sender: 11 characters fill the 10-octet address field.
pub const MAX_ALPHANUMERIC_SENDER: usize = 11;
/// Type of address for an alphanumeric sender: TON 101, numbering plan 0000.
const TOA_ALPHANUMERIC: u8 = 0xD0;
/// TP-Status for "short message received by the SME".
pub const STATUS_DELIVERED: u8 = 0x00;

/// A PDU with its SMS-centre field, ready for a `+CMGR`/`+CMGL`/`+CDS` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimPdu {
    pub bytes: Vec<u8>,
    /// Octets after the SMS-centre field.
    pub tpdu_len: usize,
}

impl SimPdu {
    fn new(smsc_field: Vec<u8>, tpdu: &[u8]) -> SimPdu {
        let mut bytes = smsc_field;
        bytes.extend_from_slice(tpdu);
        SimPdu {
            bytes,
            tpdu_len: tpdu.len(),
        }
    }

    pub fn hex(&self) -> String {
        hex::encode(&self.bytes)
    }
}

/// Why an inbound message cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum PduError {
    #[error("sender {0:?} is neither a number nor 1-11 GSM 7-bit characters")]
    InvalidSender(String),
    #[error("text needs {parts} parts; at most 255 fit a concatenated message")]
    TooLong { parts: usize },
    #[error(transparent)]
    Sms(#[from] SmsError),
}

/// The SMS-centre field: octet count, type of address, swapped digits.
pub fn smsc_field(smsc: &str) -> Result<Vec<u8>, SmsError> {
    let mut field = address::encode(smsc)?;
    field[0] = (field.len() - 1) as u8;
    Ok(field)
}

/// TP-OA for `sender`: a number when it parses as one, otherwise alphanumeric.
pub fn originator_field(sender: &str) -> Result<Vec<u8>, PduError> {
    if let Ok(field) = address::encode(sender) {
        return Ok(field);
    }
    let chars = sender.chars().count();
    if chars == 0 || chars > MAX_ALPHANUMERIC_SENDER {
        return Err(PduError::InvalidSender(sender.to_string()));
    }
    let septets = gsm7::encode(sender).map_err(|_| PduError::InvalidSender(sender.to_string()))?;
    if septets.len() > MAX_ALPHANUMERIC_SENDER {
        return Err(PduError::InvalidSender(sender.to_string()));
    }
    let packed = gsm7::pack(&septets, 0);
    let semi_octets = (septets.len() * 7).div_ceil(4);
    let mut field = vec![semi_octets as u8, TOA_ALPHANUMERIC];
    field.extend(packed);
    Ok(field)
}

/// One SMS-DELIVER per part of `text` from `sender`, GSM 7-bit when every character fits and
/// UCS-2 otherwise; parts of a long text carry an 8-bit concatenation header with `reference`.
pub fn encode_deliver(
    smsc: &str,
    sender: &str,
    text: &str,
    timestamp: &DateTime<FixedOffset>,
    reference: u8,
) -> Result<Vec<SimPdu>, PduError> {
    let smsc = smsc_field(smsc)?;
    let originator = originator_field(sender)?;
    let opts = SubmitOptions {
        encoding: EncodingChoice::Auto,
        max_parts: 255,
        ..SubmitOptions::default()
    };
    let plan = segment::plan(text, &opts)?;
    if !plan.info.within_limit {
        return Err(PduError::TooLong {
            parts: plan.info.parts,
        });
    }
    let total = plan.parts.len() as u8;
    let dcs = Dcs::encode(plan.info.encoding);
    let stamp = scts::encode(timestamp);
    Ok(plan
        .parts
        .iter()
        .enumerate()
        .map(|(i, (body, _))| {
            let header = if total > 1 {
                Concat {
                    reference: u16::from(reference),
                    total,
                    seq: i as u8 + 1,
                    wide: false,
                }
                .header()
            } else {
                Vec::new()
            };
            SimPdu::new(
                smsc.clone(),
                &deliver_tpdu(&originator, dcs, &stamp, &header, body),
            )
        })
        .collect())
}

fn deliver_tpdu(
    originator: &[u8],
    dcs: u8,
    stamp: &[u8; 7],
    header: &[u8],
    body: &Body,
) -> Vec<u8> {
    // TP-MTI 00, TP-MMS set (no more messages waiting), TP-UDHI when a header precedes the text.
    let mut first = 0x04;
    if !header.is_empty() {
        first |= 0x40;
    }
    let mut tpdu = vec![first];
    tpdu.extend_from_slice(originator);
    tpdu.extend_from_slice(&[0x00, dcs]);
    tpdu.extend_from_slice(stamp);
    let (udl, ud) = encode_user_data(header, body);
    tpdu.push(udl);
    tpdu.extend(ud);
    tpdu
}

/// An SMS-STATUS-REPORT for the SUBMIT with TP-MR `reference` sent to `recipient`, without the
/// optional parameter indicator.
pub fn encode_status_report(
    smsc: &str,
    reference: u8,
    recipient: &str,
    submitted: &DateTime<FixedOffset>,
    discharged: &DateTime<FixedOffset>,
    status: u8,
) -> Result<SimPdu, PduError> {
    let smsc = smsc_field(smsc)?;
    let recipient = originator_field(recipient)?;
    // TP-MTI 10, TP-MMS set, TP-SRQ clear: the report answers an SMS-SUBMIT.
    let mut tpdu = vec![0x06, reference];
    tpdu.extend(recipient);
    tpdu.extend_from_slice(&scts::encode(submitted));
    tpdu.extend_from_slice(&scts::encode(discharged));
    tpdu.push(status);
    Ok(SimPdu::new(smsc, &tpdu))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sms::{AddressKind, DecodedPdu, Encoding, decode_pdu, join_text};

    const SMSC: &str = "+5491151740000";

    fn time() -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339("2025-03-14T09:26:53-03:00").unwrap()
    }

    fn delivers(pdus: &[SimPdu]) -> Vec<crate::sms::Deliver> {
        pdus.iter()
            .map(|p| match decode_pdu(&p.bytes, true).unwrap() {
                DecodedPdu::Deliver(d) => d,
                other => panic!("not a deliver: {other:?}"),
            })
            .collect()
    }

    #[test]
    fn short_gsm7_deliver_round_trips() {
        let pdus =
            encode_deliver(SMSC, "+5491123456789", "Hola, ¿cómo está? ñ", &time(), 1).unwrap();
        assert_eq!(pdus.len(), 1);
        assert_eq!(pdus[0].bytes.len(), pdus[0].tpdu_len + 9);
        let d = &delivers(&pdus)[0];
        assert_eq!(d.smsc.as_ref().unwrap().value, SMSC);
        assert_eq!(d.from.value, "+5491123456789");
        assert_eq!(d.from.kind(), AddressKind::International);
        assert_eq!(d.timestamp, time());
        // "ó" and "á" are not GSM 7-bit: the whole text goes as UCS-2.
        assert_eq!(d.dcs.encoding, Encoding::Ucs2);
        assert_eq!(d.user_data.text(), "Hola, ¿cómo está? ñ");
    }

    #[test]
    fn gsm7_text_stays_seven_bit() {
        let pdus =
            encode_deliver(SMSC, "1123456789", "Saldo: $ 1.234,50 {ok}", &time(), 0).unwrap();
        let d = &delivers(&pdus)[0];
        assert_eq!(d.dcs.encoding, Encoding::Gsm7);
        assert_eq!(d.from.value, "1123456789");
        assert_eq!(d.user_data.text(), "Saldo: $ 1.234,50 {ok}");
    }

    #[test]
    fn long_ucs2_text_splits_into_concatenated_parts() {
        let text = "Año nuevo, módem nuevo: ¿recibió la factura? ".repeat(4);
        let pdus = encode_deliver(SMSC, "+5491123456789", &text, &time(), 77).unwrap();
        assert_eq!(pdus.len(), 3);
        let ds = delivers(&pdus);
        for (i, d) in ds.iter().enumerate() {
            let c = d.user_data.concat.unwrap();
            assert_eq!((c.reference, c.total, c.seq), (77, 3, i as u8 + 1));
            assert!(pdus[i].tpdu_len <= 140 + 13 + 1 + 7);
        }
        assert_eq!(join_text(ds.iter().map(|d| Some(&d.user_data))), text);
    }

    #[test]
    fn long_gsm7_text_uses_fill_bits_after_header() {
        let text = "Su servicio fue restablecido. ".repeat(7);
        let pdus = encode_deliver(SMSC, "+5491123456789", &text, &time(), 9).unwrap();
        assert_eq!(pdus.len(), 2);
        let ds = delivers(&pdus);
        assert_eq!(join_text(ds.iter().map(|d| Some(&d.user_data))), text);
    }

    #[test]
    fn alphanumeric_sender_round_trips() {
        for name in ["Personal", "Claro", "InfoISP2025"] {
            let pdus = encode_deliver(SMSC, name, "x", &time(), 0).unwrap();
            let d = &delivers(&pdus)[0];
            assert_eq!(d.from.value, name);
            assert_eq!(d.from.kind(), AddressKind::Alphanumeric);
        }
    }

    #[test]
    fn bad_senders_are_rejected() {
        for bad in ["", "TwelveChars!", "+54 9 11 2345 6789", "Ñandú€€€€€€"] {
            assert!(
                matches!(
                    encode_deliver(SMSC, bad, "x", &time(), 0),
                    Err(PduError::InvalidSender(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn status_report_round_trips() {
        let later = DateTime::parse_from_rfc3339("2025-03-14T09:27:10-03:00").unwrap();
        let pdu = encode_status_report(
            SMSC,
            42,
            "+5491123456789",
            &time(),
            &later,
            STATUS_DELIVERED,
        )
        .unwrap();
        match decode_pdu(&pdu.bytes, true).unwrap() {
            DecodedPdu::StatusReport(r) => {
                assert_eq!(r.message_reference, 42);
                assert_eq!(r.recipient.value, "+5491123456789");
                assert_eq!(r.timestamp, time());
                assert_eq!(r.discharge_time, later);
                assert_eq!(r.status(), crate::sms::DeliveryStatus::Delivered);
            }
            other => panic!("not a status report: {other:?}"),
        }
        assert_eq!(pdu.bytes.len(), pdu.tpdu_len + 9);
    }
}
