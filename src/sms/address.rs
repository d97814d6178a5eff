//! Address fields (3GPP TS 23.040 §9.1.2.5) and the SMS-centre address that modems print in front
//! of a TPDU (TS 27.005 §3.1, TS 24.011 RP address).
//!
//! Contracts:
//! - Numbers are digits with an optional leading `+`; `+` means type of address 0x91
//!   (international, ISDN plan), no `+` means 0x81 (unknown type, ISDN plan), which networks treat
//!   as a national number. No other normalisation happens here.
//! - Decoding bounds-checks the length against the buffer and the specification's maximum
//!   (20 semi-octets); alphanumeric addresses (type of number 101) decode as GSM 7-bit text.

use super::reader::Reader;
use super::{SmsError, gsm7};

/// Longest address value in semi-octets (TS 23.040: an address field is at most 12 octets).
pub const MAX_ADDRESS_SEMI_OCTETS: usize = 20;

const TON_MASK: u8 = 0x70;
const TON_INTERNATIONAL: u8 = 0x10;
const TON_NATIONAL: u8 = 0x20;
const TON_ALPHANUMERIC: u8 = 0x50;

/// Type of address for `+` numbers: international, ISDN/telephone numbering plan.
pub const TOA_INTERNATIONAL: u8 = 0x91;
/// Type of address for numbers without `+`: unknown type, ISDN/telephone numbering plan.
pub const TOA_UNKNOWN: u8 = 0x81;

/// What the type of number says about an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AddressKind {
    International,
    National,
    Alphanumeric,
    /// Unknown type of number or one of the rarely used others (network specific, subscriber,
    /// abbreviated).
    Other,
}

/// A decoded address: `value` is `+digits` for international numbers, plain digits (possibly
/// with `*`, `#`, `a`–`c`) otherwise, or the sender's name for alphanumeric addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub value: String,
    pub type_of_address: u8,
}

impl Address {
    pub fn kind(&self) -> AddressKind {
        match self.type_of_address & TON_MASK {
            TON_INTERNATIONAL => AddressKind::International,
            TON_NATIONAL => AddressKind::National,
            TON_ALPHANUMERIC => AddressKind::Alphanumeric,
            _ => AddressKind::Other,
        }
    }
}

/// Splits `number` into its type of address and digits, rejecting anything but digits with an
/// optional leading `+` (spaces, dashes and dots are not accepted: normalise first).
pub fn parse_number(number: &str) -> Result<(u8, &str), SmsError> {
    let invalid = |reason| SmsError::InvalidNumber {
        number: number.to_string(),
        reason,
    };
    let (toa, digits) = match number.strip_prefix('+') {
        Some(rest) => (TOA_INTERNATIONAL, rest),
        None => (TOA_UNKNOWN, number),
    };
    if digits.is_empty() {
        return Err(invalid("no digits"));
    }
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid("only digits and a leading + are allowed"));
    }
    if digits.len() > MAX_ADDRESS_SEMI_OCTETS {
        return Err(invalid("more than 20 digits"));
    }
    Ok((toa, digits))
}

fn swap_digits(digits: &[u8]) -> Vec<u8> {
    digits
        .chunks(2)
        .map(|pair| {
            let low = pair[0] - b'0';
            let high = pair.get(1).map_or(0x0F, |d| d - b'0');
            high << 4 | low
        })
        .collect()
}

/// Encodes a TP-DA/TP-OA field: length in digits, type of address, swapped semi-octets.
pub fn encode(number: &str) -> Result<Vec<u8>, SmsError> {
    let (toa, digits) = parse_number(number)?;
    let mut out = vec![digits.len() as u8, toa];
    out.extend(swap_digits(digits.as_bytes()));
    Ok(out)
}

fn semi_octet_char(nibble: u8) -> Option<char> {
    match nibble {
        0..=9 => Some(char::from(b'0' + nibble)),
        0x0A => Some('*'),
        0x0B => Some('#'),
        0x0C => Some('a'),
        0x0D => Some('b'),
        0x0E => Some('c'),
        _ => None,
    }
}

fn decode_semi_octets(raw: &[u8], count: usize) -> String {
    (0..count)
        .filter_map(|i| {
            let octet = raw.get(i / 2).copied().unwrap_or(0xFF);
            semi_octet_char(if i % 2 == 0 { octet & 0x0F } else { octet >> 4 })
        })
        .collect()
}

fn with_prefix(toa: u8, digits: String) -> String {
    if toa & TON_MASK == TON_INTERNATIONAL && !digits.is_empty() {
        format!("+{digits}")
    } else {
        digits
    }
}

/// Decodes a TP-OA/TP-DA/TP-RA field.
pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Address, SmsError> {
    let offset = r.offset();
    let length = usize::from(r.u8("address length")?);
    if length > MAX_ADDRESS_SEMI_OCTETS {
        return Err(SmsError::AddressTooLong {
            offset,
            length,
            max: MAX_ADDRESS_SEMI_OCTETS,
        });
    }
    let toa = r.u8("type of address")?;
    let raw = r.take(length.div_ceil(2), "address")?;
    let value = if toa & TON_MASK == TON_ALPHANUMERIC {
        let septets = gsm7::unpack(raw, 0, length * 4 / 7).unwrap_or_default();
        gsm7::decode(&septets)
            .trim_end_matches(['@', '\r'])
            .to_string()
    } else {
        with_prefix(toa, decode_semi_octets(raw, length))
    };
    Ok(Address {
        value,
        type_of_address: toa,
    })
}

/// Decodes the SMS-centre field a modem prints before the TPDU: a length in octets (type of
/// address included), zero when there is none. A field with a type but no digits is `None` too.
pub(crate) fn decode_smsc(r: &mut Reader<'_>) -> Result<Option<Address>, SmsError> {
    let offset = r.offset();
    let octets = usize::from(r.u8("SMS-centre length")?);
    if octets == 0 {
        return Ok(None);
    }
    if octets > 1 + MAX_ADDRESS_SEMI_OCTETS / 2 {
        return Err(SmsError::AddressTooLong {
            offset,
            length: (octets - 1) * 2,
            max: MAX_ADDRESS_SEMI_OCTETS,
        });
    }
    let toa = r.u8("SMS-centre type of address")?;
    let raw = r.take(octets - 1, "SMS-centre address")?;
    let digits = decode_semi_octets(raw, raw.len() * 2);
    if digits.is_empty() {
        return Ok(None);
    }
    Ok(Some(Address {
        value: with_prefix(toa, digits),
        type_of_address: toa,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sms::hex;

    fn decode_hex(h: &str) -> Result<Address, SmsError> {
        let bytes = hex::decode(h).unwrap();
        decode(&mut Reader::new(&bytes))
    }

    #[test]
    fn encodes_international_and_national() {
        assert_eq!(
            hex::encode(&encode("+5491123456789").unwrap()),
            "0D91451921436587F9"
        );
        assert_eq!(
            hex::encode(&encode("1123456789").unwrap()),
            "0A811132547698"
        );
        assert_eq!(hex::encode(&encode("123").unwrap()), "038121F3");
    }

    #[test]
    fn rejects_bad_numbers() {
        for bad in [
            "",
            "+",
            "+54 9 11",
            "12-34",
            "+123456789012345678901",
            "++1",
        ] {
            assert!(encode(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn decodes_numbers_and_names() {
        let cases = [
            (
                "0D91451921436587F9",
                "+5491123456789",
                AddressKind::International,
            ),
            ("0A811132547698", "1123456789", AddressKind::Other),
            ("04A11010", "0101", AddressKind::National),
            // "Claro" and "Personal" as carriers send them (type of address 0xD0).
            ("09D0437658FE06", "Claro", AddressKind::Alphanumeric),
            ("0ED0D0B27CFE7687D9", "Personal", AddressKind::Alphanumeric),
            ("05812143FA", "1234*", AddressKind::Other),
        ];
        for (h, value, kind) in cases {
            let a = decode_hex(h).unwrap_or_else(|e| panic!("{h}: {e}"));
            assert_eq!(a.value, value, "{h}");
            assert_eq!(a.kind(), kind, "{h}");
        }
    }

    #[test]
    fn rejects_lengths_beyond_the_buffer_or_the_standard() {
        assert!(matches!(
            decode_hex("0D914519"),
            Err(SmsError::Truncated {
                field: "address",
                offset: 2,
                ..
            })
        ));
        assert!(matches!(
            decode_hex("1591"),
            Err(SmsError::AddressTooLong {
                offset: 0,
                length: 21,
                ..
            })
        ));
        assert!(matches!(decode_hex("0D"), Err(SmsError::Truncated { .. })));
    }

    #[test]
    fn decodes_smsc_fields() {
        let bytes = hex::decode("07914519010000F0").unwrap();
        let smsc = decode_smsc(&mut Reader::new(&bytes)).unwrap().unwrap();
        assert_eq!(smsc.value, "+54911000000");
        assert_eq!(smsc.kind(), AddressKind::International);
        assert_eq!(decode_smsc(&mut Reader::new(&[0])).unwrap(), None);
        assert!(decode_smsc(&mut Reader::new(&[0x0D, 0x91])).is_err());
    }
}
