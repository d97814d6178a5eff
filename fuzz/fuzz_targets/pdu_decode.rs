//! Decodes arbitrary octets as a PDU (with and without the SMS-centre field) and renders the
//! result as the CLI does; when the first octet's bit 1 is set, the rest is also taken as text
//! that must survive encode → decode unchanged. Any panic is a bug.
#![no_main]

#[path = "../../src/sms/mod.rs"]
#[allow(dead_code, unused_imports)]
mod sms;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    if let Ok(pdu) = sms::decode_pdu(rest, flags & 1 != 0) {
        let _ = sms::cli::pdu_json(&pdu);
        if let Some(ud) = pdu.user_data() {
            let _ = sms::join_text([Some(ud)]);
        }
    }
    if let Ok(hex) = std::str::from_utf8(rest) {
        let _ = sms::hex::decode(hex);
    }
    if flags & 2 != 0 {
        let Ok(text) = std::str::from_utf8(rest) else {
            return;
        };
        let opts = sms::SubmitOptions {
            concat_ref16: flags & 4 != 0,
            transliterate: flags & 8 != 0,
            max_parts: 255,
            ..Default::default()
        };
        let Ok(parts) = sms::encode_submit("+5491123456789", text, &opts) else {
            return;
        };
        let decoded: Vec<sms::DecodedPdu> = parts
            .iter()
            .map(|p| sms::decode_pdu(&p.tpdu, false).expect("our own PDU decodes"))
            .collect();
        let joined = sms::join_text(decoded.iter().map(|d| d.user_data()));
        let sent: String = parts.iter().map(|p| p.text.as_str()).collect();
        assert_eq!(joined, sent);
        if !parts[0].transliterated {
            assert_eq!(joined, text);
        }
    }
});
