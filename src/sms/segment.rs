//! Choosing the alphabet and cutting a text into SMS parts (3GPP TS 23.040 §9.2.3.24.1).
//!
//! Contracts:
//! - `Auto` picks GSM 7-bit when every character is in the default or extension table, UCS-2
//!   otherwise. Transliteration happens only when [`SubmitOptions::transliterate`] is set, only
//!   when it makes the whole text 7-bit (otherwise the exact text goes as UCS-2), and is reported
//!   in [`SegmentInfo::transliterated`].
//! - One part holds 160 septets or 70 UTF-16 units; parts of a concatenated message hold 153/67
//!   with an 8-bit reference and 152/66 with a 16-bit one.
//! - A part never ends between an escape and its septet, nor between the halves of a surrogate
//!   pair: such a character moves whole to the next part.
//! - [`analyze`] and [`super::encode_submit`] with the same options always agree on the count.

use std::fmt;

use super::dcs::Encoding;
use super::pdu::Body;
use super::{SmsError, gsm7, translit, ucs2};

/// Septets in a single-part GSM 7-bit message.
pub const GSM7_SINGLE: usize = 160;
/// Septets per part after a 6-octet header (8-bit reference): 140 octets less 6, in septets.
pub const GSM7_CONCAT_8: usize = 153;
/// Septets per part after a 7-octet header (16-bit reference).
pub const GSM7_CONCAT_16: usize = 152;
/// UTF-16 units in a single-part UCS-2 message.
pub const UCS2_SINGLE: usize = 70;
/// UTF-16 units per part after a 6-octet header.
pub const UCS2_CONCAT_8: usize = 67;
/// UTF-16 units per part after a 7-octet header.
pub const UCS2_CONCAT_16: usize = 66;
/// Relative validity sent when none is configured: four days, the common modem default.
pub const DEFAULT_VALIDITY_MINUTES: u32 = 4 * 24 * 60;
/// Parts allowed when none is configured; ten parts is about 1500 characters of plain text.
pub const DEFAULT_MAX_PARTS: usize = 10;

/// The alphabet a caller asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EncodingChoice {
    /// GSM 7-bit when possible, UCS-2 otherwise.
    #[default]
    Auto,
    /// GSM 7-bit or an error naming the first character that does not fit.
    Gsm7,
    Ucs2,
}

/// How to encode an outgoing message. [`analyze`] reads the alphabet and segmenting fields, the
/// PDU encoder all of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmitOptions {
    pub encoding: EncodingChoice,
    /// Replace accents and typographic punctuation to stay in GSM 7-bit (off by default).
    pub transliterate: bool,
    /// Relative validity period, rounded up to the next value the PDU can express; `None` omits
    /// it (the centre's default applies).
    pub validity_minutes: Option<u32>,
    /// Ask for a status report (TP-SRR).
    pub status_report: bool,
    /// Concatenation reference shared by all parts; only its low byte is sent unless
    /// `concat_ref16` is set. Callers should vary it per message and recipient.
    pub concat_ref: u16,
    /// Use the 16-bit reference element (one character less per part).
    pub concat_ref16: bool,
    /// Most parts a message may take (1–255); more is [`SmsError::TooManyParts`].
    pub max_parts: usize,
}

impl Default for SubmitOptions {
    fn default() -> Self {
        SubmitOptions {
            encoding: EncodingChoice::Auto,
            transliterate: false,
            validity_minutes: Some(DEFAULT_VALIDITY_MINUTES),
            status_report: false,
            concat_ref: 0,
            concat_ref16: false,
            max_parts: DEFAULT_MAX_PARTS,
        }
    }
}

/// What a text costs, for the admin page: "2 SMS, UCS-2, 41 characters left".
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SegmentInfo {
    pub parts: usize,
    pub encoding: Encoding,
    /// Characters in the text as it will be sent (after transliteration).
    pub chars: usize,
    /// Septets (GSM 7-bit, extension characters count two) or UTF-16 units (UCS-2).
    pub units: usize,
    /// Units one part holds at this part count (160/153/152 or 70/67/66).
    pub per_part: usize,
    /// Units still free in the last part before another part is needed.
    pub chars_left: usize,
    pub transliterated: bool,
    /// Whether `parts` is within [`SubmitOptions::max_parts`].
    pub within_limit: bool,
}

impl fmt::Display for SegmentInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let encoding = match self.encoding {
            Encoding::Gsm7 => "GSM 7-bit",
            Encoding::Ucs2 => "UCS-2",
            Encoding::EightBit => "8-bit",
        };
        write!(
            f,
            "{} SMS, {encoding}, {} characters left",
            self.parts, self.chars_left
        )
    }
}

/// A text cut into parts, ready for the PDU encoder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    pub info: SegmentInfo,
    /// Each part's body and its text.
    pub parts: Vec<(Body, String)>,
}

/// The text that will be sent, its encoding and whether it was transliterated.
fn choose(text: &str, opts: &SubmitOptions) -> Result<(String, Encoding, bool), SmsError> {
    match opts.encoding {
        EncodingChoice::Ucs2 => Ok((text.to_string(), Encoding::Ucs2, false)),
        EncodingChoice::Gsm7 => {
            let unfit = text.chars().enumerate().find(|&(_, c)| {
                gsm7::septets_for(c).is_none()
                    && !(opts.transliterate && translit::replacement(c).is_some())
            });
            if let Some((index, ch)) = unfit {
                return Err(SmsError::NotGsm7 { ch, index });
            }
            let (sent, changed) = if opts.transliterate {
                translit::transliterate(text)
            } else {
                (text.to_string(), false)
            };
            Ok((sent, Encoding::Gsm7, changed))
        }
        EncodingChoice::Auto => {
            if gsm7::is_encodable(text) {
                return Ok((text.to_string(), Encoding::Gsm7, false));
            }
            if opts.transliterate {
                let (sent, changed) = translit::transliterate(text);
                if gsm7::is_encodable(&sent) {
                    return Ok((sent, Encoding::Gsm7, changed));
                }
            }
            Ok((text.to_string(), Encoding::Ucs2, false))
        }
    }
}

/// Cuts `units` (one entry per character: its units) into parts of at most `cap`.
fn cut<T: Clone>(chars: &[(char, Vec<T>)], cap: usize) -> Vec<(Vec<T>, String)> {
    let mut parts = vec![(Vec::new(), String::new())];
    for (c, units) in chars {
        let fits = parts
            .last()
            .is_some_and(|(current, _): &(Vec<T>, String)| current.len() + units.len() <= cap);
        if !fits {
            parts.push((Vec::new(), String::new()));
        }
        if let Some((current, text)) = parts.last_mut() {
            current.extend_from_slice(units);
            text.push(*c);
        }
    }
    parts
}

pub(crate) fn plan(text: &str, opts: &SubmitOptions) -> Result<Plan, SmsError> {
    let (sent, encoding, transliterated) = choose(text, opts)?;
    let (single, multi) = match (encoding, opts.concat_ref16) {
        (Encoding::Gsm7, false) => (GSM7_SINGLE, GSM7_CONCAT_8),
        (Encoding::Gsm7, true) => (GSM7_SINGLE, GSM7_CONCAT_16),
        (_, false) => (UCS2_SINGLE, UCS2_CONCAT_8),
        (_, true) => (UCS2_SINGLE, UCS2_CONCAT_16),
    };
    let (units, mut pieces): (usize, Vec<(Body, String)>) = match encoding {
        Encoding::Gsm7 => {
            let chars: Vec<(char, Vec<u8>)> = sent
                .chars()
                .enumerate()
                .map(|(index, c)| {
                    gsm7::encode(c.encode_utf8(&mut [0; 4]))
                        .map(|s| (c, s))
                        .map_err(|_| SmsError::NotGsm7 { ch: c, index })
                })
                .collect::<Result<_, _>>()?;
            let total = chars.iter().map(|(_, s)| s.len()).sum();
            let cap = if total <= single { single } else { multi };
            let pieces = cut(&chars, cap)
                .into_iter()
                .map(|(septets, text)| (Body::Gsm7(septets), text))
                .collect();
            (total, pieces)
        }
        _ => {
            let chars: Vec<(char, Vec<u16>)> = sent
                .chars()
                .map(|c| (c, c.encode_utf16(&mut [0; 2]).to_vec()))
                .collect();
            let total = ucs2::unit_len(&sent);
            let cap = if total <= single { single } else { multi };
            let pieces = cut(&chars, cap)
                .into_iter()
                .map(|(_, text)| (Body::Octets(ucs2::encode(&text)), text))
                .collect();
            (total, pieces)
        }
    };
    let per_part = if units <= single { single } else { multi };
    let last_units = match pieces.last() {
        Some((Body::Gsm7(s), _)) => s.len(),
        Some((Body::Octets(o), _)) => o.len() / 2,
        None => 0,
    };
    if pieces.is_empty() {
        pieces.push((Body::Gsm7(Vec::new()), String::new()));
    }
    let max = opts.max_parts.clamp(1, 255);
    let info = SegmentInfo {
        parts: pieces.len(),
        encoding,
        chars: sent.chars().count(),
        units,
        per_part,
        chars_left: per_part.saturating_sub(last_units),
        transliterated,
        within_limit: pieces.len() <= max,
    };
    Ok(Plan {
        info,
        parts: pieces,
    })
}

/// How many parts `text` takes with `opts`, in which alphabet, and how much room is left in the
/// last part. Fails only when GSM 7-bit is forced and a character does not fit; a text over the
/// part limit is reported through [`SegmentInfo::within_limit`].
pub fn analyze(text: &str, opts: &SubmitOptions) -> Result<SegmentInfo, SmsError> {
    plan(text, opts).map(|p| p.info)
}

#[cfg(test)]
mod tests;
