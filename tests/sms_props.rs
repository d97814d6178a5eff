//! Property tests for the SMS codec through its public API: whatever the text, encoding then
//! decoding gives it back, and no input makes the decoder panic.

use pasarela::sms::{
    self, DecodedPdu, Encoding, EncodingChoice, SubmitOptions, decode_pdu, encode_submit, gsm7,
    join_text,
};
use proptest::prelude::*;

fn opts(encoding: EncodingChoice, ref16: bool, reference: u16) -> SubmitOptions {
    SubmitOptions {
        encoding,
        concat_ref: reference,
        concat_ref16: ref16,
        max_parts: 255,
        ..SubmitOptions::default()
    }
}

fn round_trip(text: &str, o: &SubmitOptions) -> (String, Encoding, usize) {
    let parts = encode_submit("+5491123456789", text, o).expect("encodes");
    let decoded: Vec<DecodedPdu> = parts
        .iter()
        .map(|p| {
            assert_eq!(p.length, p.tpdu.len());
            assert_eq!(sms::hex::decode(&p.hex).unwrap(), p.tpdu);
            decode_pdu(&p.tpdu, false).expect("our own PDU decodes")
        })
        .collect();
    let encoding = decoded[0].user_data().unwrap().encoding;
    (
        join_text(decoded.iter().map(DecodedPdu::user_data)),
        encoding,
        parts.len(),
    )
}

/// Characters of both GSM tables, so 7-bit texts with escapes are common.
fn gsm_char() -> impl Strategy<Value = char> {
    let chars: Vec<char> = gsm7::default_table()
        .chain(gsm7::extension_table())
        .map(|(_, c)| c)
        .collect();
    proptest::sample::select(chars)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_unicode_text_round_trips(text in "\\PC{0,400}", ref16: bool, reference: u16) {
        let (back, _, _) = round_trip(&text, &opts(EncodingChoice::Auto, ref16, reference));
        prop_assert_eq!(back, text);
    }

    #[test]
    fn any_text_round_trips_as_ucs2(text in any::<String>().prop_map(|s| s.chars().take(300).collect::<String>())) {
        let (back, encoding, _) = round_trip(&text, &opts(EncodingChoice::Ucs2, false, 7));
        prop_assert_eq!(back, text);
        prop_assert_eq!(encoding, Encoding::Ucs2);
    }

    #[test]
    fn gsm_texts_stay_7bit(chars in proptest::collection::vec(gsm_char(), 0..500), ref16: bool) {
        let text: String = chars.into_iter().collect();
        let o = opts(EncodingChoice::Auto, ref16, 1);
        let (back, encoding, parts) = round_trip(&text, &o);
        prop_assert_eq!(&back, &text);
        prop_assert_eq!(encoding, Encoding::Gsm7);
        prop_assert_eq!(parts, sms::segment::analyze(&text, &o).unwrap().parts);
    }

    #[test]
    fn transliterated_texts_are_7bit(text in "[a-zA-Záéíóúñ¿¡ “”–…😀]{0,200}") {
        let o = SubmitOptions { transliterate: true, ..opts(EncodingChoice::Auto, false, 1) };
        let info = sms::segment::analyze(&text, &o).unwrap();
        let (back, encoding, _) = round_trip(&text, &o);
        prop_assert_eq!(encoding, info.encoding);
        if text.contains('😀') {
            prop_assert_eq!(back, text);
        } else {
            prop_assert_eq!(encoding, Encoding::Gsm7);
            prop_assert!(gsm7::is_encodable(&back));
        }
    }

    #[test]
    fn septets_pack_and_unpack(septets in proptest::collection::vec(0u8..128, 0..200), fill in 0u8..7) {
        let packed = gsm7::pack(&septets, fill);
        prop_assert_eq!(gsm7::unpack(&packed, fill, septets.len()), Some(septets));
    }

    #[test]
    fn decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200), smsc: bool) {
        let _ = decode_pdu(&bytes, smsc);
    }

    #[test]
    fn decoder_survives_mutated_pdus(text in "\\PC{0,200}", index: usize, value: u8, cut: usize) {
        let parts = encode_submit("+5491123456789", &text, &opts(EncodingChoice::Auto, false, 3)).unwrap();
        let mut tpdu = parts[0].tpdu.clone();
        let i = index % tpdu.len();
        tpdu[i] = value;
        tpdu.truncate(cut % (tpdu.len() + 1));
        let _ = decode_pdu(&tpdu, false);
        let _ = decode_pdu(&tpdu, true);
    }
}
