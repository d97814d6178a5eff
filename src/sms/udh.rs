//! User data headers (3GPP TS 23.040 §9.2.3.24): a length octet, then information elements
//! (identifier, length, data). Concatenation is interpreted here and the national language
//! single shift by the 7-bit decoder; other elements are kept as raw bytes and skipped.
//!
//! Contracts: an element whose length runs past the header is an error; a concatenation element
//! with a wrong length, a zero total, a zero sequence number or a sequence number above the total
//! is ignored, as TS 23.040 asks of receivers, and the part is treated as a whole message.

use super::SmsError;

/// Concatenated short message, 8-bit reference.
pub const IEI_CONCAT_8: u8 = 0x00;
/// Concatenated short message, 16-bit reference.
pub const IEI_CONCAT_16: u8 = 0x08;

/// National language single shift (its data is the language identifier).
pub const IEI_SINGLE_SHIFT: u8 = 0x24;

/// One information element, data as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InformationElement {
    pub iei: u8,
    pub data: Vec<u8>,
}

/// Where a part belongs in a concatenated message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Concat {
    pub reference: u16,
    pub total: u8,
    /// 1-based.
    pub seq: u8,
    /// The reference travelled in a 16-bit element.
    pub wide: bool,
}

impl Concat {
    /// The whole header for this part, length octet included: `05 00 03 ref total seq` or
    /// `06 08 04 ref_hi ref_lo total seq`. An 8-bit header carries the low byte of `reference`.
    pub fn header(&self) -> Vec<u8> {
        if self.wide {
            let [hi, lo] = self.reference.to_be_bytes();
            vec![0x06, IEI_CONCAT_16, 0x04, hi, lo, self.total, self.seq]
        } else {
            vec![
                0x05,
                IEI_CONCAT_8,
                0x03,
                self.reference as u8,
                self.total,
                self.seq,
            ]
        }
    }

    fn from_element(ie: &InformationElement) -> Option<Concat> {
        let (reference, total, seq, wide) = match (ie.iei, ie.data.as_slice()) {
            (IEI_CONCAT_8, &[r, t, s]) => (u16::from(r), t, s, false),
            (IEI_CONCAT_16, &[hi, lo, t, s]) => (u16::from_be_bytes([hi, lo]), t, s, true),
            _ => return None,
        };
        (total > 0 && seq > 0 && seq <= total).then_some(Concat {
            reference,
            total,
            seq,
            wide,
        })
    }
}

/// Parses the elements in `body` (the header without its length octet), which starts at `offset`
/// in the PDU, and returns them with the first valid concatenation element.
pub fn parse(
    body: &[u8],
    offset: usize,
) -> Result<(Vec<InformationElement>, Option<Concat>), SmsError> {
    let mut elements = Vec::new();
    let mut pos = 0usize;
    while pos < body.len() {
        let iei = body[pos];
        let Some(&length) = body.get(pos + 1) else {
            return Err(SmsError::ElementTooLong {
                offset: offset + pos,
                iei,
                length: 1,
                available: 0,
            });
        };
        let start = pos + 2;
        let data =
            body.get(start..start + usize::from(length))
                .ok_or(SmsError::ElementTooLong {
                    offset: offset + pos,
                    iei,
                    length: usize::from(length),
                    available: body.len() - start,
                })?;
        elements.push(InformationElement {
            iei,
            data: data.to_vec(),
        });
        pos = start + usize::from(length);
    }
    let concat = elements.iter().find_map(Concat::from_element);
    Ok((elements, concat))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_concat_and_skips_others() {
        let (ies, c) = parse(&[0x00, 0x03, 0x2A, 0x02, 0x01], 0).unwrap();
        assert_eq!(ies.len(), 1);
        assert_eq!(
            c,
            Some(Concat {
                reference: 0x2A,
                total: 2,
                seq: 1,
                wide: false
            })
        );
        // A national language shift element, then a 16-bit concatenation element.
        let (ies, c) = parse(&[0x24, 0x01, 0x02, 0x08, 0x04, 0x12, 0x34, 0x03, 0x03], 0).unwrap();
        assert_eq!(ies.len(), 2);
        assert_eq!(
            c,
            Some(Concat {
                reference: 0x1234,
                total: 3,
                seq: 3,
                wide: true
            })
        );
        // Zero total, zero sequence, sequence beyond total, wrong length: ignored.
        for body in [
            &[0x00, 0x03, 0x01, 0x00, 0x01][..],
            &[0x00, 0x03, 0x01, 0x02, 0x00],
            &[0x00, 0x03, 0x01, 0x02, 0x03],
            &[0x00, 0x02, 0x01, 0x02],
        ] {
            assert_eq!(parse(body, 0).unwrap().1, None, "{body:02X?}");
        }
        assert_eq!(parse(&[], 0).unwrap(), (vec![], None));
    }

    #[test]
    fn rejects_elements_running_past_the_header() {
        assert_eq!(
            parse(&[0x00, 0x03, 0x01, 0x02], 10),
            Err(SmsError::ElementTooLong {
                offset: 10,
                iei: 0,
                length: 3,
                available: 2
            })
        );
        assert!(parse(&[0x00, 0x03, 0x01, 0x02, 0x01, 0x24], 0).is_err());
    }

    #[test]
    fn headers_have_the_standard_bytes() {
        let c = Concat {
            reference: 0x1234,
            total: 2,
            seq: 1,
            wide: false,
        };
        assert_eq!(c.header(), vec![0x05, 0x00, 0x03, 0x34, 0x02, 0x01]);
        let w = Concat { wide: true, ..c };
        assert_eq!(w.header(), vec![0x06, 0x08, 0x04, 0x12, 0x34, 0x02, 0x01]);
    }
}
