//! The character sets of HTTP SMS parameters: text to bytes (UTF-8 or ISO-8859-1), with a
//! clear refusal — or, by the route's setting, a transliteration that is reported — for
//! characters Latin-1 cannot write; bytes back to text for what a provider pushes. Pure.

use crate::config::{TextEncoding, Unencodable};

/// Why a text cannot be written in the route's encoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error(
        "the text has characters ISO-8859-1 cannot write ({0}); set http_sms.unencodable = \
         \"transliterate\" or http_sms.encoding = \"utf-8\" if the provider takes it"
    )]
    NotLatin1(String),
    #[error("the text has characters ISO-8859-1 cannot write and that have no plain form ({0})")]
    NoPlainForm(String),
}

/// A text as bytes of the route's encoding, and what was transliterated (for the history).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    pub bytes: Vec<u8>,
    /// `’→'`, `€→EUR`… when characters were replaced; empty otherwise.
    pub replaced: Vec<String>,
}

/// Writes `text` in `encoding`. Latin-1 takes U+0000–U+00FF as one byte each; anything else
/// is refused (naming the characters) or, with `Unencodable::Transliterate`, replaced by its
/// plain form. A character with no plain form is refused either way: a `?` is never sent in
/// place of a letter.
pub fn encode(
    text: &str,
    encoding: TextEncoding,
    unencodable: Unencodable,
) -> Result<Encoded, EncodeError> {
    if encoding == TextEncoding::Utf8 {
        return Ok(Encoded {
            bytes: text.as_bytes().to_vec(),
            replaced: Vec::new(),
        });
    }
    let outside: Vec<char> = text.chars().filter(|c| *c as u32 > 0xFF).collect();
    if outside.is_empty() {
        return Ok(Encoded {
            bytes: text.chars().map(|c| c as u32 as u8).collect(),
            replaced: Vec::new(),
        });
    }
    let shown = |chars: &[char]| {
        let mut seen: Vec<char> = Vec::new();
        for c in chars {
            if !seen.contains(c) {
                seen.push(*c);
            }
        }
        seen.iter()
            .take(8)
            .map(|c| format!("`{c}` U+{:04X}", *c as u32))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if unencodable == Unencodable::Refuse {
        return Err(EncodeError::NotLatin1(shown(&outside)));
    }
    let mut bytes = Vec::with_capacity(text.len());
    let mut replaced = Vec::new();
    let mut missing = Vec::new();
    for c in text.chars() {
        if (c as u32) <= 0xFF {
            bytes.push(c as u32 as u8);
            continue;
        }
        match plain_form(c) {
            Some(plain) => {
                bytes.extend(plain.bytes());
                let note = format!("{c}→{plain}");
                if !replaced.contains(&note) {
                    replaced.push(note);
                }
            }
            None => missing.push(c),
        }
    }
    if !missing.is_empty() {
        return Err(EncodeError::NoPlainForm(shown(&missing)));
    }
    Ok(Encoded { bytes, replaced })
}

/// An ASCII stand-in for a character outside Latin-1.
fn plain_form(c: char) -> Option<&'static str> {
    match c {
        '€' => Some("EUR"),
        _ => crate::sms::translit::replacement(c).filter(|r| r.is_ascii()),
    }
}

/// Percent-encodes bytes, everything but RFC 3986 unreserved characters.
pub fn percent_encode_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Percent-decodes a query or form value (`+` is a space) into bytes; `None` for a `%` not
/// followed by two hex digits.
pub fn percent_decode(value: &str) -> Option<Vec<u8>> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    Some(out)
}

/// Bytes a provider sent, as text of `encoding`; `None` when they are not valid UTF-8.
pub fn decode(bytes: &[u8], encoding: TextEncoding) -> Option<String> {
    match encoding {
        TextEncoding::Utf8 => String::from_utf8(bytes.to_vec()).ok(),
        TextEncoding::Latin1 => Some(bytes.iter().map(|&b| b as char).collect()),
    }
}

/// `a=1&b=2` as (name, value) pairs decoded in `encoding`; `Err` names the first bad pair.
pub fn parse_pairs(query: &str, encoding: TextEncoding) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let shown: String = k.chars().take(40).collect();
        let key = percent_decode(k)
            .and_then(|b| decode(&b, encoding))
            .ok_or_else(|| format!("the parameter name `{shown}` is not well encoded"))?;
        let value = percent_decode(v)
            .and_then(|b| decode(&b, encoding))
            .ok_or_else(|| {
                format!(
                    "the value of `{shown}` is not well percent-encoded {}",
                    match encoding {
                        TextEncoding::Utf8 => "UTF-8 (http_sms.encoding is utf-8)",
                        TextEncoding::Latin1 => "text",
                    }
                )
            })?;
        out.push((key, value));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latin1_writes_spanish_letters_as_one_byte() {
        let e = encode("Señor: más", TextEncoding::Latin1, Unencodable::Refuse).unwrap();
        assert_eq!(e.bytes, b"Se\xF1or: m\xE1s");
        assert_eq!(percent_encode_bytes(&e.bytes), "Se%F1or%3A%20m%E1s");
        assert!(e.replaced.is_empty());
        let u = encode("ñ", TextEncoding::Utf8, Unencodable::Refuse).unwrap();
        assert_eq!(percent_encode_bytes(&u.bytes), "%C3%B1");
    }

    #[test]
    fn latin1_refuses_or_transliterates_and_says_so() {
        let text = "Pagá 1.000 € — gracias “ya”";
        let err = encode(text, TextEncoding::Latin1, Unencodable::Refuse).unwrap_err();
        assert!(err.to_string().contains("`€` U+20AC"), "{err}");
        let e = encode(text, TextEncoding::Latin1, Unencodable::Transliterate).unwrap();
        assert_eq!(
            decode(&e.bytes, TextEncoding::Latin1).unwrap(),
            "Pagá 1.000 EUR - gracias \"ya\""
        );
        assert_eq!(e.replaced, vec!["€→EUR", "—→-", "“→\"", "”→\""]);
        // No plain form: refused even when transliterating, never a `?`.
        let err = encode("hola 😀", TextEncoding::Latin1, Unencodable::Transliterate).unwrap_err();
        assert!(matches!(err, EncodeError::NoPlainForm(_)), "{err}");
    }

    #[test]
    fn pairs_decode_in_the_route_encoding() {
        assert_eq!(
            parse_pairs(
                "origen=1147896321&texto=Se%F1or+m%E1s",
                TextEncoding::Latin1
            )
            .unwrap(),
            vec![
                ("origen".to_string(), "1147896321".to_string()),
                ("texto".to_string(), "Señor más".to_string())
            ]
        );
        assert_eq!(
            parse_pairs("texto=Se%C3%B1or", TextEncoding::Utf8).unwrap()[0].1,
            "Señor"
        );
        assert!(parse_pairs("texto=Se%F1or", TextEncoding::Utf8).is_err());
        assert!(parse_pairs("texto=50%", TextEncoding::Latin1).is_err());
    }
}
