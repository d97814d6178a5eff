//! TP-Data-Coding-Scheme (3GPP TS 23.038 §4): which alphabet the user data uses and its message
//! class.
//!
//! Contracts: reserved coding groups (1000–1011) and the reserved alphabet value are rejected
//! with [`SmsError::ReservedDcs`]; the compressed flag is reported, and the PDU decoder rejects
//! compressed text. Message-waiting groups decode to their alphabet with no class.

use super::SmsError;

/// The alphabet of the user data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Encoding {
    #[serde(rename = "gsm7")]
    Gsm7,
    #[serde(rename = "ucs2")]
    Ucs2,
    #[serde(rename = "8bit")]
    EightBit,
}

impl Encoding {
    /// The name printed by the CLI: `gsm7`, `ucs2` or `8bit`.
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Gsm7 => "gsm7",
            Encoding::Ucs2 => "ucs2",
            Encoding::EightBit => "8bit",
        }
    }
}

impl std::fmt::Display for Encoding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A decoded data coding scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dcs {
    pub raw: u8,
    pub encoding: Encoding,
    /// Message class 0–3 (0 is a "flash" message shown at once), when the DCS gives one.
    pub class: Option<u8>,
    pub compressed: bool,
}

impl Dcs {
    /// DCS octet for uncompressed text without a message class.
    pub fn encode(encoding: Encoding) -> u8 {
        match encoding {
            Encoding::Gsm7 => 0x00,
            Encoding::EightBit => 0x04,
            Encoding::Ucs2 => 0x08,
        }
    }

    /// Interprets a DCS octet found at `offset`.
    pub fn decode(raw: u8, offset: usize) -> Result<Dcs, SmsError> {
        let reserved = SmsError::ReservedDcs { offset, dcs: raw };
        let dcs = |encoding, class, compressed| Dcs {
            raw,
            encoding,
            class,
            compressed,
        };
        match raw >> 4 {
            // General data coding (00xx) and automatic deletion (01xx) share the layout.
            0x0..=0x7 => {
                let encoding = match (raw >> 2) & 0x03 {
                    0 => Encoding::Gsm7,
                    1 => Encoding::EightBit,
                    2 => Encoding::Ucs2,
                    _ => return Err(reserved),
                };
                let class = (raw & 0x10 != 0).then_some(raw & 0x03);
                Ok(dcs(encoding, class, raw & 0x20 != 0))
            }
            0x8..=0xB => Err(reserved),
            // Message waiting indication: discard (1100) or store (1101) GSM 7-bit, store UCS-2 (1110).
            0xC | 0xD => Ok(dcs(Encoding::Gsm7, None, false)),
            0xE => Ok(dcs(Encoding::Ucs2, None, false)),
            _ => {
                let encoding = if raw & 0x04 != 0 {
                    Encoding::EightBit
                } else {
                    Encoding::Gsm7
                };
                Ok(dcs(encoding, Some(raw & 0x03), false))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        use Encoding::*;
        let cases = [
            (0x00, Gsm7, None, false),
            (0x04, EightBit, None, false),
            (0x08, Ucs2, None, false),
            (0x10, Gsm7, Some(0), false),
            (0x11, Gsm7, Some(1), false),
            (0x18, Ucs2, Some(0), false),
            (0x16, EightBit, Some(2), false),
            (0x20, Gsm7, None, true),
            (0x48, Ucs2, None, false),
            (0xC0, Gsm7, None, false),
            (0xD8, Gsm7, None, false),
            (0xE0, Ucs2, None, false),
            (0xF0, Gsm7, Some(0), false),
            (0xF1, Gsm7, Some(1), false),
            (0xF6, EightBit, Some(2), false),
            (0xF7, EightBit, Some(3), false),
        ];
        for (raw, encoding, class, compressed) in cases {
            let d = Dcs::decode(raw, 0).unwrap();
            assert_eq!(
                (d.encoding, d.class, d.compressed),
                (encoding, class, compressed),
                "{raw:02X}"
            );
        }
        for raw in [0x0C, 0x1C, 0x4C, 0x80, 0x9F, 0xA5, 0xBF] {
            assert_eq!(
                Dcs::decode(raw, 7),
                Err(SmsError::ReservedDcs {
                    offset: 7,
                    dcs: raw
                })
            );
        }
        for e in [Gsm7, Ucs2, EightBit] {
            assert_eq!(Dcs::decode(Dcs::encode(e), 0).unwrap().encoding, e);
        }
    }
}
