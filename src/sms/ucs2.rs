//! "UCS-2" user data as phones really send it: UTF-16 big-endian, so characters outside the Basic
//! Multilingual Plane (emoji) travel as surrogate pairs.
//!
//! Contracts: encoding never fails; decoding rejects an odd octet count and unpaired surrogates
//! with typed errors carrying the octet offset, except where [`decode_part`] is told that a half
//! pair may continue in the neighbouring part of a concatenated message.

use super::SmsError;

/// UTF-16 big-endian octets of `text`.
pub fn encode(text: &str) -> Vec<u8> {
    text.encode_utf16().flat_map(u16::to_be_bytes).collect()
}

/// Number of UTF-16 code units `text` takes.
pub fn unit_len(text: &str) -> usize {
    text.encode_utf16().count()
}

fn units(data: &[u8], offset: usize) -> Result<Vec<u16>, SmsError> {
    if !data.len().is_multiple_of(2) {
        return Err(SmsError::OddUcs2Length {
            offset,
            length: data.len(),
        });
    }
    Ok(data
        .chunks_exact(2)
        .map(|p| u16::from_be_bytes([p[0], p[1]]))
        .collect())
}

fn is_high(u: u16) -> bool {
    (0xD800..0xDC00).contains(&u)
}

fn is_low(u: u16) -> bool {
    (0xDC00..0xE000).contains(&u)
}

/// Decodes UTF-16BE; `offset` is where `data` starts in the PDU, for error reporting.
pub fn decode(data: &[u8], offset: usize) -> Result<String, SmsError> {
    Ok(decode_part(data, offset, false, false)?.text)
}

/// Text of one part of a concatenated UCS-2 message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartText {
    pub text: String,
    /// A low surrogate at the very start, left for the previous part's high half.
    pub leading_low: Option<u16>,
    /// A high surrogate at the very end, waiting for the next part's low half.
    pub trailing_high: Option<u16>,
}

/// Decodes UTF-16BE, setting aside a low surrogate at the start (when `allow_leading`) and a high
/// surrogate at the end (when `allow_trailing`) instead of rejecting them.
pub fn decode_part(
    data: &[u8],
    offset: usize,
    allow_leading: bool,
    allow_trailing: bool,
) -> Result<PartText, SmsError> {
    let mut units = units(data, offset)?;
    let mut start = 0usize;
    let mut leading_low = None;
    let mut trailing_high = None;
    if allow_leading && units.first().is_some_and(|&u| is_low(u)) {
        leading_low = Some(units[0]);
        start = 1;
    }
    if allow_trailing && units.len() > start && units.last().is_some_and(|&u| is_high(u)) {
        trailing_high = units.pop();
    }
    let body = &units[start..];
    let mut text = String::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        let unit = body[i];
        let pair = body
            .get(i + 1)
            .copied()
            .filter(|&l| is_high(unit) && is_low(l));
        let decoded = match pair {
            Some(low) => join_surrogates(unit, low),
            None => char::from_u32(u32::from(unit)),
        };
        let Some(c) = decoded else {
            return Err(SmsError::InvalidUtf16 {
                offset: offset + 2 * (start + i),
                unit,
            });
        };
        text.push(c);
        i += if pair.is_some() { 2 } else { 1 };
    }
    Ok(PartText {
        text,
        leading_low,
        trailing_high,
    })
}

/// Joins a high and a low surrogate set aside by [`decode_part`] into their character.
pub fn join_surrogates(high: u16, low: u16) -> Option<char> {
    char::decode_utf16([high, low]).next()?.ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bmp_and_astral_round_trip() {
        for text in ["", "Núñez", "ú", "😀", "a😀b€", "日本語"] {
            assert_eq!(decode(&encode(text), 0).unwrap(), text);
        }
        assert_eq!(encode("😀"), vec![0xD8, 0x3D, 0xDE, 0x00]);
        assert_eq!(unit_len("a😀"), 3);
    }

    #[test]
    fn rejects_broken_utf16_with_offsets() {
        assert_eq!(
            decode(&[0x00], 10),
            Err(SmsError::OddUcs2Length {
                offset: 10,
                length: 1
            })
        );
        assert_eq!(
            decode(&[0x00, 0x41, 0xD8, 0x3D, 0x00, 0x41], 10),
            Err(SmsError::InvalidUtf16 {
                offset: 12,
                unit: 0xD83D
            })
        );
        assert_eq!(
            decode(&[0xDE, 0x00], 0),
            Err(SmsError::InvalidUtf16 {
                offset: 0,
                unit: 0xDE00
            })
        );
    }

    #[test]
    fn split_pairs_are_set_aside_only_where_allowed() {
        let first = decode_part(&[0x00, 0x41, 0xD8, 0x3D], 0, false, true).unwrap();
        assert_eq!(first.text, "A");
        assert_eq!(first.trailing_high, Some(0xD83D));
        let second = decode_part(&[0xDE, 0x00, 0x00, 0x42], 0, true, false).unwrap();
        assert_eq!(second.text, "B");
        assert_eq!(join_surrogates(0xD83D, 0xDE00), Some('😀'));
        assert!(decode_part(&[0xD8, 0x3D], 0, true, false).is_err());
    }
}
