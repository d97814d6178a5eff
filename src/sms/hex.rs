//! Hex text as modems print PDUs: upper-case on output, either case and surrounding or embedded
//! ASCII whitespace accepted on input.

use super::SmsError;

/// Upper-case hex, two digits per octet, no separators.
pub fn encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0x0F)] as char);
    }
    out
}

/// Parses hex digits, ignoring ASCII whitespace. Errors name the offending character's index in
/// `text` or the odd digit count.
pub fn decode(text: &str) -> Result<Vec<u8>, SmsError> {
    let mut out = Vec::with_capacity(text.len() / 2);
    let mut high: Option<u8> = None;
    let mut digits = 0usize;
    for (index, digit) in text.chars().enumerate() {
        if digit.is_ascii_whitespace() {
            continue;
        }
        let value = digit
            .to_digit(16)
            .ok_or(SmsError::InvalidHex { digit, index })? as u8;
        digits += 1;
        match high.take() {
            Some(h) => out.push(h << 4 | value),
            None => high = Some(value),
        }
    }
    if high.is_some() {
        return Err(SmsError::OddHex { digits });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects() {
        assert_eq!(encode(&[0x00, 0xAB, 0x1F]), "00AB1F");
        assert_eq!(decode("00ab1F").unwrap(), vec![0x00, 0xAB, 0x1F]);
        assert_eq!(decode(" 00 AB\n").unwrap(), vec![0x00, 0xAB]);
        assert_eq!(decode("").unwrap(), Vec::<u8>::new());
        assert_eq!(decode("ABC"), Err(SmsError::OddHex { digits: 3 }));
        assert_eq!(
            decode("0G"),
            Err(SmsError::InvalidHex {
                digit: 'G',
                index: 1
            })
        );
        assert!(matches!(decode("é0"), Err(SmsError::InvalidHex { .. })));
    }
}
