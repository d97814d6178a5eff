//! Opt-in transliteration to the GSM 7-bit alphabet, for operators who prefer longer, cheaper
//! 7-bit messages to exact accents. It is never applied unless asked for, and callers learn that
//! it was applied ([`super::segment::SegmentInfo::transliterated`]).
//!
//! Contract: characters already in the default or extension table are left alone (so `ñ`, `é`
//! and `€` survive); the others listed here are replaced by their closest plain form; anything
//! else is left as it is, so the caller can still fall back to UCS-2.

use super::gsm7;

/// Replacement for a character outside the GSM 7-bit tables, or `None` if there is none.
pub(crate) fn replacement(c: char) -> Option<&'static str> {
    Some(match c {
        'á' | 'â' | 'ã' | 'ā' | 'ą' => "a",
        'Á' | 'À' | 'Â' | 'Ã' | 'Ā' | 'Ą' => "A",
        'ê' | 'ë' | 'ē' | 'ę' | 'ě' => "e",
        'Ê' | 'Ë' | 'È' | 'Ē' | 'Ę' | 'Ě' => "E",
        'í' | 'î' | 'ï' | 'ī' => "i",
        'Í' | 'Ì' | 'Î' | 'Ï' | 'Ī' => "I",
        'ó' | 'ô' | 'õ' | 'ō' => "o",
        'Ó' | 'Ò' | 'Ô' | 'Õ' | 'Ō' => "O",
        'ú' | 'û' | 'ū' | 'ů' => "u",
        'Ú' | 'Ù' | 'Û' | 'Ū' | 'Ů' => "U",
        'ý' | 'ÿ' => "y",
        'Ý' | 'Ÿ' => "Y",
        'ç' | 'ć' | 'č' => "c",
        'Ć' | 'Č' => "C",
        'š' => "s",
        'Š' => "S",
        'ž' => "z",
        'Ž' => "Z",
        'ª' => "a",
        'º' | '°' => "o",
        '‘' | '’' | '‚' | '‛' | '′' | '´' | '`' => "'",
        '“' | '”' | '„' | '‟' | '″' | '«' | '»' => "\"",
        '‐' | '‑' | '‒' | '–' | '—' | '―' | '−' => "-",
        '…' => "...",
        '•' | '·' => "*",
        '\u{A0}' | '\u{2007}' | '\u{202F}' | '\u{2009}' | '\t' => " ",
        '\u{200B}' | '\u{FEFF}' | '\u{AD}' => "",
        _ => return None,
    })
}

/// `text` with every replaceable character replaced; the flag tells whether anything changed.
pub fn transliterate(text: &str) -> (String, bool) {
    let mut out = String::with_capacity(text.len());
    let mut changed = false;
    for c in text.chars() {
        if gsm7::septets_for(c).is_some() {
            out.push(c);
        } else if let Some(r) = replacement(c) {
            out.push_str(r);
            changed = true;
        } else {
            out.push(c);
        }
    }
    (out, changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let cases = [
            ("Núñez", "Nuñez", true),
            ("canción ÁÍÓÚ ç", "cancion AIOU c", true),
            ("“Hola” – ‘sí’…", "\"Hola\" - 'si'...", true),
            ("ñÑ¿¡éÉüÜ €[]", "ñÑ¿¡éÉüÜ €[]", false),
            ("😀 á", "😀 a", true),
        ];
        for (input, expected, changed) in cases {
            assert_eq!(
                transliterate(input),
                (expected.to_string(), changed),
                "{input}"
            );
        }
    }

    #[test]
    fn every_replacement_is_gsm7() {
        for c in (0u32..0x3000).filter_map(char::from_u32) {
            if let Some(r) = replacement(c) {
                assert!(gsm7::is_encodable(r), "{c:?} -> {r:?}");
                assert!(gsm7::septets_for(c).is_none(), "{c:?} needs no replacement");
            }
        }
    }
}
