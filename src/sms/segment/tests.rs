use super::*;
use crate::sms::{DecodedPdu, decode_pdu, encode_submit, join_text};

const SPANISH: &str =
    "Estimado Señor Núñez, su saldo pendiente es $ 1.234,50 ¿Consultas? ¡Gracias!";

fn opts() -> SubmitOptions {
    SubmitOptions {
        max_parts: 255,
        ..SubmitOptions::default()
    }
}

/// Encodes, decodes every part, and returns each part's decoded text and unit count.
fn parts_of(text: &str, opts: &SubmitOptions) -> Vec<(String, usize)> {
    let parts = encode_submit("+5491123456789", text, opts).unwrap();
    let decoded: Vec<DecodedPdu> = parts
        .iter()
        .map(|p| decode_pdu(&p.tpdu, false).unwrap())
        .collect();
    let joined = join_text(decoded.iter().map(DecodedPdu::user_data));
    let sent: String = parts.iter().map(|p| p.text.as_str()).collect();
    assert_eq!(joined, sent);
    let total = parts.len();
    decoded
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let ud = d.user_data().unwrap();
            if total > 1 {
                let c = ud.concat.unwrap();
                assert_eq!((usize::from(c.seq), usize::from(c.total)), (i + 1, total));
            } else {
                assert_eq!(ud.concat, None);
            }
            let text = ud.text();
            let units = match ud.encoding {
                Encoding::Gsm7 => crate::sms::gsm7::septet_len(&text).unwrap(),
                _ => crate::sms::ucs2::unit_len(&text),
            };
            (text, units)
        })
        .collect()
}

fn units(parts: &[(String, usize)]) -> Vec<usize> {
    parts.iter().map(|p| p.1).collect()
}

#[test]
fn gsm7_boundaries() {
    let cases: [(usize, &[usize]); 7] = [
        (0, &[0]),
        (1, &[1]),
        (160, &[160]),
        (161, &[153, 8]),
        (306, &[153, 153]),
        (307, &[153, 153, 1]),
        (459, &[153, 153, 153]),
    ];
    for (n, expected) in cases {
        let text = "a".repeat(n);
        assert_eq!(units(&parts_of(&text, &opts())), expected, "{n} characters");
        let info = analyze(&text, &opts()).unwrap();
        assert_eq!(info.parts, expected.len(), "{n}");
        assert_eq!(info.encoding, Encoding::Gsm7);
    }
    // 153 and 154 characters of a message that is long anyway.
    let text = format!("{}{}", "b".repeat(153), "c".repeat(154));
    let parts = parts_of(&text, &opts());
    assert_eq!(units(&parts), [153, 153, 1]);
    assert_eq!(parts[0].0, "b".repeat(153));
    assert_eq!(parts[1].0, format!("{}", "c".repeat(153)));
}

#[test]
fn ucs2_boundaries() {
    let cases: [(usize, &[usize]); 6] = [
        (1, &[1]),
        (70, &[70]),
        (71, &[67, 4]),
        (134, &[67, 67]),
        (135, &[67, 67, 1]),
        (68, &[68]),
    ];
    for (n, expected) in cases {
        let text = "ú".repeat(n);
        assert_eq!(units(&parts_of(&text, &opts())), expected, "{n} characters");
    }
    let text = format!("{}{}", "á".repeat(67), "é".repeat(68));
    let parts = parts_of(&text, &opts());
    assert_eq!(units(&parts), [67, 67, 1]);
    assert_eq!(parts[0].0, "á".repeat(67));
}

#[test]
fn sixteen_bit_references_leave_one_less() {
    let o = SubmitOptions {
        concat_ref16: true,
        concat_ref: 0x1234,
        ..opts()
    };
    assert_eq!(units(&parts_of(&"a".repeat(305), &o)), [152, 152, 1]);
    assert_eq!(units(&parts_of(&"ú".repeat(133), &o)), [66, 66, 1]);
    let parts = encode_submit("1", &"a".repeat(161), &o).unwrap();
    let DecodedPdu::Submit(s) = decode_pdu(&parts[1].tpdu, false).unwrap() else {
        panic!()
    };
    let c = s.user_data.concat.unwrap();
    assert_eq!((c.reference, c.wide, c.seq, c.total), (0x1234, true, 2, 2));
}

#[test]
fn escapes_never_split() {
    // 152 septets, then € (two septets) would straddle 153: it moves whole.
    let text = format!("{}€{}", "a".repeat(152), "b".repeat(10));
    let parts = parts_of(&text, &opts());
    assert_eq!(units(&parts), [152, 12]);
    assert!(parts[1].0.starts_with('€'));
    // 151 + € fills exactly 153.
    let text = format!("{}€{}", "a".repeat(151), "b".repeat(10));
    assert_eq!(units(&parts_of(&text, &opts())), [153, 10]);
    // Extension characters count two in a single part too.
    assert_eq!(analyze(&"[".repeat(80), &opts()).unwrap().parts, 1);
    assert_eq!(analyze(&"[".repeat(81), &opts()).unwrap().parts, 2);
}

#[test]
fn surrogate_pairs_never_split() {
    let text = format!("{}😀{}", "a".repeat(66), "b".repeat(10));
    let parts = parts_of(&text, &opts());
    assert_eq!(units(&parts), [66, 12]);
    assert!(parts[1].0.starts_with('😀'));
    let text = format!("{}😀{}", "a".repeat(65), "b".repeat(10));
    assert_eq!(units(&parts_of(&text, &opts())), [67, 10]);
    assert_eq!(analyze("😀", &opts()).unwrap().units, 2);
    assert_eq!(units(&parts_of(&"😀".repeat(35), &opts())), [70]);
    assert_eq!(units(&parts_of(&"😀".repeat(36), &opts())), [66, 6]);
}

#[test]
fn spanish_text_goes_ucs2_or_transliterated_gsm7() {
    let info = analyze(SPANISH, &opts()).unwrap();
    assert_eq!(
        (info.encoding, info.parts, info.chars, info.transliterated),
        (Encoding::Ucs2, 2, 76, false)
    );
    assert_eq!(info.to_string(), "2 SMS, UCS-2, 58 characters left");
    let parts = parts_of(SPANISH, &opts());
    assert_eq!(
        parts.iter().map(|p| p.0.as_str()).collect::<String>(),
        SPANISH
    );

    let translit = SubmitOptions {
        transliterate: true,
        ..opts()
    };
    let expected = "Estimado Señor Nuñez, su saldo pendiente es $ 1.234,50 ¿Consultas? ¡Gracias!";
    let info = analyze(SPANISH, &translit).unwrap();
    assert_eq!(
        (
            info.encoding,
            info.parts,
            info.units,
            info.chars_left,
            info.transliterated
        ),
        (Encoding::Gsm7, 1, 76, 84, true)
    );
    assert_eq!(info.to_string(), "1 SMS, GSM 7-bit, 84 characters left");
    let sent = encode_submit("+5491123456789", SPANISH, &translit).unwrap();
    assert!(sent[0].transliterated);
    assert_eq!(parts_of(SPANISH, &translit)[0].0, expected);
    // Text that is 7-bit already is never marked as transliterated.
    assert!(!analyze(expected, &translit).unwrap().transliterated);
    // Transliteration that cannot reach 7-bit keeps the exact text in UCS-2.
    let emoji = format!("{SPANISH} 😀");
    let info = analyze(&emoji, &translit).unwrap();
    assert_eq!(
        (info.encoding, info.transliterated),
        (Encoding::Ucs2, false)
    );
}

#[test]
fn forced_encodings() {
    let gsm = SubmitOptions {
        encoding: EncodingChoice::Gsm7,
        ..opts()
    };
    assert_eq!(
        analyze(SPANISH, &gsm),
        Err(SmsError::NotGsm7 {
            ch: 'ú', index: 16
        })
    );
    let gsm_translit = SubmitOptions {
        transliterate: true,
        ..gsm.clone()
    };
    assert_eq!(
        analyze(SPANISH, &gsm_translit).unwrap().encoding,
        Encoding::Gsm7
    );
    assert!(matches!(
        analyze("😀", &gsm_translit),
        Err(SmsError::NotGsm7 {
            ch: '😀', index: 0
        })
    ));
    let ucs2 = SubmitOptions {
        encoding: EncodingChoice::Ucs2,
        ..opts()
    };
    let info = analyze("Hola", &ucs2).unwrap();
    assert_eq!((info.encoding, info.chars_left), (Encoding::Ucs2, 66));
}

#[test]
fn part_limit() {
    let limited = SubmitOptions {
        max_parts: 2,
        ..opts()
    };
    assert!(encode_submit("1", &"a".repeat(306), &limited).is_ok());
    assert_eq!(
        encode_submit("1", &"a".repeat(307), &limited),
        Err(SmsError::TooManyParts { parts: 3, max: 2 })
    );
    let info = analyze(&"a".repeat(307), &limited).unwrap();
    assert!(!info.within_limit);
    assert_eq!(SubmitOptions::default().max_parts, DEFAULT_MAX_PARTS);
    assert!(encode_submit("1", &"a".repeat(153 * 255), &opts()).is_ok());
    assert!(matches!(
        encode_submit("1", &"a".repeat(153 * 255 + 1), &opts()),
        Err(SmsError::TooManyParts {
            parts: 256,
            max: 255
        })
    ));
}

#[test]
fn chars_left() {
    let cases = [("", 160), ("Hola", 156), ("€", 158), ("ú", 69)];
    for (text, left) in cases {
        assert_eq!(analyze(text, &opts()).unwrap().chars_left, left, "{text:?}");
    }
    assert_eq!(analyze(&"a".repeat(161), &opts()).unwrap().chars_left, 145);
    assert_eq!(analyze(&"a".repeat(160), &opts()).unwrap().chars_left, 0);
}
