//! The GSM 7-bit default alphabet and its extension table (3GPP TS 23.038 §6.2.1 and §6.2.1.1),
//! and septet packing (TS 23.038 §6.1.2.1.1).
//!
//! Contracts:
//! - A character is encodable when it is in the default table (one septet) or the extension table
//!   (escape 0x1B plus one septet). Nothing else is, and no character is substituted silently:
//!   `ç` is not `Ç`, `á` is not `à`.
//! - Decoding accepts any septet sequence: an escape followed by a code the extension table does
//!   not define shows the default-table character, `1B 1B` shows a space (both as the
//!   specification asks of receivers), and a lone escape at the very end shows nothing.
//! - Of the national language tables (TS 23.038 annex A) only the Spanish single shift table is
//!   understood, for decoding: a message whose header names it (element 0x24, language 2) decodes
//!   `á í ó ú Á Í Ó Ú ç` from it. Encoding never uses it.
//! - Packing is little-endian within octets, as on the air interface; `fill_bits` zero bits come
//!   first so that septets after a user data header start on a septet boundary.

/// Escape to the extension table.
pub const ESCAPE: u8 = 0x1B;

/// The default alphabet, indexed by septet. Slot 0x1B is the escape and is never produced as a
/// character (its entry is a placeholder the decoder never reads).
const DEFAULT: [char; 128] = [
    '@', '£', '$', '¥', 'è', 'é', 'ù', 'ì', 'ò', 'Ç', '\n', 'Ø', 'ø', '\r', 'Å', 'å', //
    'Δ', '_', 'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', '\u{1B}', 'Æ', 'æ', 'ß', 'É', //
    ' ', '!', '"', '#', '¤', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/', //
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?', //
    '¡', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O', //
    'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ä', 'Ö', 'Ñ', 'Ü', '§', //
    '¿', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', //
    'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ä', 'ö', 'ñ', 'ü', 'à', //
];

/// The extension table: (septet after the escape, character).
const EXTENSION: [(u8, char); 10] = [
    (0x0A, '\u{0C}'),
    (0x14, '^'),
    (0x28, '{'),
    (0x29, '}'),
    (0x2F, '\\'),
    (0x3C, '['),
    (0x3D, '~'),
    (0x3E, ']'),
    (0x40, '|'),
    (0x65, '€'),
];

/// The Spanish national language single shift table (TS 23.038 §A.2.2): the default extension
/// table plus accented vowels and `ç`.
const SPANISH_SINGLE_SHIFT: [(u8, char); 19] = [
    (0x09, 'ç'),
    (0x0A, '\u{0C}'),
    (0x14, '^'),
    (0x28, '{'),
    (0x29, '}'),
    (0x2F, '\\'),
    (0x3C, '['),
    (0x3D, '~'),
    (0x3E, ']'),
    (0x40, '|'),
    (0x41, 'Á'),
    (0x49, 'Í'),
    (0x4F, 'Ó'),
    (0x55, 'Ú'),
    (0x61, 'á'),
    (0x65, '€'),
    (0x69, 'í'),
    (0x6F, 'ó'),
    (0x75, 'ú'),
];

/// National language identifier of the Spanish tables (TS 23.038 §6.2.1.2.4).
pub const LANGUAGE_SPANISH: u8 = 0x02;

/// Which table an escape selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SingleShift {
    /// The default extension table.
    #[default]
    Default,
    /// The Spanish national language single shift table.
    Spanish,
}

impl SingleShift {
    /// The table for a national language identifier; languages other than Spanish fall back to
    /// the default extension table.
    pub fn for_language(language: u8) -> Self {
        if language == LANGUAGE_SPANISH {
            SingleShift::Spanish
        } else {
            SingleShift::Default
        }
    }

    fn table(self) -> &'static [(u8, char)] {
        match self {
            SingleShift::Default => &EXTENSION,
            SingleShift::Spanish => &SPANISH_SINGLE_SHIFT,
        }
    }
}

/// Every character of the default table, in septet order, without the escape slot.
pub fn default_table() -> impl Iterator<Item = (u8, char)> {
    (0u8..128)
        .filter(|&s| s != ESCAPE)
        .map(|s| (s, DEFAULT[usize::from(s)]))
}

/// Every character of the extension table as (septet after the escape, character).
pub fn extension_table() -> impl Iterator<Item = (u8, char)> {
    EXTENSION.iter().copied()
}

/// How a character is written in septets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Septets {
    One(u8),
    /// Escape followed by this septet.
    Escaped(u8),
}

impl Septets {
    pub fn count(self) -> usize {
        match self {
            Septets::One(_) => 1,
            Septets::Escaped(_) => 2,
        }
    }
}

/// The septet(s) for `c`, or `None` when it is in neither table.
pub fn septets_for(c: char) -> Option<Septets> {
    if c == '\u{1B}' {
        return None;
    }
    if let Some(s) = DEFAULT.iter().position(|&d| d == c) {
        return Some(Septets::One(s as u8));
    }
    EXTENSION
        .iter()
        .find(|&&(_, e)| e == c)
        .map(|&(s, _)| Septets::Escaped(s))
}

/// Whether every character of `text` is encodable.
pub fn is_encodable(text: &str) -> bool {
    text.chars().all(|c| septets_for(c).is_some())
}

/// Septet count of `text`, or the first character (and its char index) that is not encodable.
pub fn septet_len(text: &str) -> Result<usize, (usize, char)> {
    text.chars().enumerate().try_fold(0, |n, (i, c)| {
        septets_for(c).map(|s| n + s.count()).ok_or((i, c))
    })
}

/// Encodes `text` to unpacked septets; on failure returns the first unencodable character and
/// its char index.
pub fn encode(text: &str) -> Result<Vec<u8>, (usize, char)> {
    let mut out = Vec::with_capacity(text.len());
    for (i, c) in text.chars().enumerate() {
        match septets_for(c).ok_or((i, c))? {
            Septets::One(s) => out.push(s),
            Septets::Escaped(s) => out.extend_from_slice(&[ESCAPE, s]),
        }
    }
    Ok(out)
}

/// Decodes unpacked septets (values above 0x7F use their low seven bits).
pub fn decode(septets: &[u8]) -> String {
    decode_with(septets, SingleShift::Default)
}

/// Decodes unpacked septets, taking escaped characters from `shift`.
pub fn decode_with(septets: &[u8], shift: SingleShift) -> String {
    let mut out = String::with_capacity(septets.len());
    let mut iter = septets.iter().map(|s| s & 0x7F);
    while let Some(s) = iter.next() {
        if s != ESCAPE {
            out.push(DEFAULT[usize::from(s)]);
            continue;
        }
        match iter.next() {
            None => {}
            Some(ESCAPE) => out.push(' '),
            Some(e) => out.push(
                shift
                    .table()
                    .iter()
                    .find(|&&(code, _)| code == e)
                    .map_or(DEFAULT[usize::from(e)], |&(_, c)| c),
            ),
        }
    }
    out
}

/// Number of octets that `count` septets occupy after `fill_bits` leading fill bits.
pub fn packed_len(count: usize, fill_bits: u8) -> usize {
    (usize::from(fill_bits) + 7 * count).div_ceil(8)
}

/// Packs septets (low seven bits of each) after `fill_bits` (0–6) zero bits.
pub fn pack(septets: &[u8], fill_bits: u8) -> Vec<u8> {
    let mut out = vec![0u8; packed_len(septets.len(), fill_bits)];
    for (i, &s) in septets.iter().enumerate() {
        let bit = usize::from(fill_bits) + 7 * i;
        let value = u16::from(s & 0x7F) << (bit % 8);
        if let Some(o) = out.get_mut(bit / 8) {
            *o |= value as u8;
        }
        if value > 0xFF
            && let Some(o) = out.get_mut(bit / 8 + 1)
        {
            *o |= (value >> 8) as u8;
        }
    }
    out
}

/// Unpacks `count` septets that follow `fill_bits` bits in `data`; `None` when `data` is too
/// short to hold them.
pub fn unpack(data: &[u8], fill_bits: u8, count: usize) -> Option<Vec<u8>> {
    if data.len() < packed_len(count, fill_bits) {
        return None;
    }
    let septets = (0..count)
        .map(|i| {
            let bit = usize::from(fill_bits) + 7 * i;
            let low = u16::from(data.get(bit / 8).copied().unwrap_or(0));
            let high = u16::from(data.get(bit / 8 + 1).copied().unwrap_or(0));
            (((high << 8 | low) >> (bit % 8)) & 0x7F) as u8
        })
        .collect();
    Some(septets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_character_round_trips() {
        let mut seen = std::collections::HashSet::new();
        for (septet, c) in default_table() {
            assert!(seen.insert(c), "{c:?} appears twice");
            assert_eq!(septets_for(c), Some(Septets::One(septet)), "{c:?}");
            let text = c.to_string();
            let packed = pack(&encode(&text).unwrap(), 0);
            assert_eq!(decode(&unpack(&packed, 0, 1).unwrap()), text);
        }
        assert_eq!(seen.len(), 127);
    }

    #[test]
    fn every_extension_character_round_trips_as_two_septets() {
        let expected = ['\u{0C}', '^', '{', '}', '\\', '[', '~', ']', '|', '€'];
        let table: Vec<char> = extension_table().map(|(_, c)| c).collect();
        assert_eq!(table, expected);
        for (septet, c) in extension_table() {
            let text = format!("a{c}b");
            let septets = encode(&text).unwrap();
            assert_eq!(septets, vec![0x61, ESCAPE, septet, 0x62]);
            assert_eq!(septet_len(&text), Ok(4));
            assert_eq!(decode(&unpack(&pack(&septets, 0), 0, 4).unwrap()), text);
        }
    }

    #[test]
    fn spanish_letters_split_as_the_standard_says() {
        for c in ['ñ', 'Ñ', '¿', '¡', 'é', 'É', 'ü', 'Ü'] {
            assert!(septets_for(c).is_some(), "{c} is in the default alphabet");
        }
        for c in ['á', 'í', 'ó', 'ú', 'Á', 'Í', 'Ó', 'Ú', 'ç', '`', '\t'] {
            assert_eq!(septets_for(c), None, "{c} is not");
        }
        assert_eq!(septet_len("Núñez"), Err((1, 'ú')));
    }

    #[test]
    fn spanish_single_shift_decodes_accents() {
        let septets = [
            0x1B, 0x61, 0x1B, 0x69, 0x1B, 0x6F, 0x1B, 0x75, 0x1B, 0x41, 0x1B, 0x09, 0x1B, 0x65,
        ];
        assert_eq!(decode_with(&septets, SingleShift::Spanish), "áíóúÁç€");
        // A receiver without the table shows the base letters.
        assert_eq!(decode(&septets), "aiouAÇ€");
        for (code, c) in extension_table() {
            assert_eq!(
                decode_with(&[ESCAPE, code], SingleShift::Spanish),
                c.to_string()
            );
        }
        assert_eq!(SingleShift::for_language(1), SingleShift::Default);
    }

    #[test]
    fn receivers_rules_for_unknown_escapes() {
        assert_eq!(decode(&[ESCAPE, 0x41]), "A");
        assert_eq!(decode(&[ESCAPE, ESCAPE, 0x41]), " A");
        assert_eq!(decode(&[0x41, ESCAPE]), "A");
        assert_eq!(decode(&[0xC1]), "A");
    }

    #[test]
    fn hello_packs_to_the_textbook_octets() {
        let septets = encode("hellohello").unwrap();
        assert_eq!(
            pack(&septets, 0),
            vec![0xE8, 0x32, 0x9B, 0xFD, 0x46, 0x97, 0xD9, 0xEC, 0x37]
        );
        assert_eq!(
            pack(&encode("Hola").unwrap(), 0),
            vec![0xC8, 0x37, 0x3B, 0x0C]
        );
    }

    #[test]
    fn packing_with_every_fill_width() {
        let septets: Vec<u8> = (0..23u8)
            .map(|i| i.wrapping_mul(37).wrapping_add(5) & 0x7F)
            .collect();
        for fill in 0..=6u8 {
            for n in 0..septets.len() {
                let packed = pack(&septets[..n], fill);
                assert_eq!(packed.len(), packed_len(n, fill));
                if n > 0 {
                    let mask = (1u16 << fill) as u8 - 1;
                    assert_eq!(packed[0] & mask, 0, "fill bits stay zero");
                }
                assert_eq!(unpack(&packed, fill, n).unwrap(), &septets[..n]);
                if n > 0 {
                    assert_eq!(unpack(&packed[..packed.len() - 1], fill, n), None);
                }
            }
        }
        // One septet 0x7F after one fill bit: 1111_1110 then nothing beyond.
        assert_eq!(pack(&[0x7F], 1), vec![0xFE]);
        // After six fill bits it straddles: 11xx_xxxx then 0001_1111.
        assert_eq!(pack(&[0x7F], 6), vec![0xC0, 0x1F]);
    }
}
