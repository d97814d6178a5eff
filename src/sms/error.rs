//! The codec's error type. Every variant names what is wrong and, for decoding errors, the octet
//! offset in the input buffer (counted from its first octet, the SMS-centre field included when
//! the input has one) where the fault was found.

use thiserror::Error;

/// Everything the SMS codec can reject. Decoding never panics; malformed input always ends here.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SmsError {
    #[error("hex input has an odd number of digits ({digits})")]
    OddHex { digits: usize },
    #[error("invalid hex digit {digit:?} at character {index}")]
    InvalidHex { digit: char, index: usize },
    #[error(
        "PDU ends in the {field} at octet {offset}: {needed} octet(s) needed, {available} left"
    )]
    Truncated {
        field: &'static str,
        offset: usize,
        needed: usize,
        available: usize,
    },
    #[error("address at octet {offset} claims {length} digits (at most {max})")]
    AddressTooLong {
        offset: usize,
        length: usize,
        max: usize,
    },
    #[error("reserved message type indicator {mti} at octet {offset}")]
    ReservedMessageType { offset: usize, mti: u8 },
    #[error("reserved data coding scheme 0x{dcs:02X} at octet {offset}")]
    ReservedDcs { offset: usize, dcs: u8 },
    #[error("compressed text (DCS 0x{dcs:02X} at octet {offset}) is not supported")]
    CompressedText { offset: usize, dcs: u8 },
    #[error("user data length {udl} at octet {offset} exceeds the maximum of {max}")]
    UserDataTooLong {
        offset: usize,
        udl: usize,
        max: usize,
    },
    #[error(
        "user data header at octet {offset} claims {length} octets but the user data holds {available}"
    )]
    HeaderTooLong {
        offset: usize,
        length: usize,
        available: usize,
    },
    #[error(
        "information element 0x{iei:02X} at octet {offset} claims {length} octets but the header holds {available}"
    )]
    ElementTooLong {
        offset: usize,
        iei: u8,
        length: usize,
        available: usize,
    },
    #[error("UCS-2 text at octet {offset} has an odd length of {length} octets")]
    OddUcs2Length { offset: usize, length: usize },
    #[error("invalid UTF-16 (unpaired surrogate 0x{unit:04X}) at octet {offset}")]
    InvalidUtf16 { offset: usize, unit: u16 },
    #[error("invalid semi-octet digit 0x{nibble:X} in the {field} at octet {offset}")]
    InvalidBcd {
        field: &'static str,
        offset: usize,
        nibble: u8,
    },
    #[error("invalid timestamp at octet {offset}: {reason}")]
    InvalidTimestamp { offset: usize, reason: &'static str },
    #[error("character {ch:?} at position {index} is not in the GSM 7-bit alphabet")]
    NotGsm7 { ch: char, index: usize },
    #[error("text needs {parts} SMS parts, more than the allowed {max}")]
    TooManyParts { parts: usize, max: usize },
    #[error("invalid phone number {number:?}: {reason}")]
    InvalidNumber {
        number: String,
        reason: &'static str,
    },
}

impl SmsError {
    pub(crate) fn truncated(
        field: &'static str,
        offset: usize,
        needed: usize,
        available: usize,
    ) -> Self {
        SmsError::Truncated {
            field,
            offset,
            needed,
            available,
        }
    }
}
