use super::*;
use crate::sms::{Concat, hex, scts};

fn decode_hex(h: &str, has_smsc: bool) -> Result<DecodedPdu, SmsError> {
    decode_pdu(&hex::decode(h).unwrap(), has_smsc)
}

fn deliver(h: &str) -> Deliver {
    match decode_hex(h, true) {
        Ok(DecodedPdu::Deliver(d)) => d,
        other => panic!("{h}: {other:?}"),
    }
}

fn report(h: &str) -> StatusReport {
    match decode_hex(h, true) {
        Ok(DecodedPdu::StatusReport(r)) => r,
        other => panic!("{h}: {other:?}"),
    }
}

/// An SMS-DELIVER built from parts, for cases no captured PDU covers.
fn build_deliver(oa: &str, dcs: u8, header: &[u8], body: &Body) -> String {
    let mut first = 0x04;
    if !header.is_empty() {
        first |= 0x40;
    }
    let mut out = vec![0x00, first];
    out.extend(crate::sms::address::encode(oa).unwrap());
    out.extend([0x00, dcs]);
    let time = chrono::DateTime::parse_from_rfc3339("2024-05-10T17:51:01-03:00").unwrap();
    out.extend(scts::encode(&time));
    let (udl, ud) = encode_user_data(header, body);
    out.push(udl);
    out.extend(ud);
    hex::encode(&out)
}

#[test]
fn decodes_the_textbook_deliver() {
    let d = deliver("07917283010010F5040BC87238880900F10000993092516195800AE8329BFD4697D9EC37");
    assert_eq!(d.smsc.unwrap().value, "+27381000015");
    assert_eq!(d.from.value, "27838890001");
    assert_eq!(d.timestamp.to_rfc3339(), "1999-03-29T15:16:59+02:00");
    assert_eq!(d.user_data.text(), "hellohello");
    assert_eq!(d.user_data.encoding, Encoding::Gsm7);
    assert_eq!(d.dcs.class, None);
    assert!(!d.more_messages_to_send);
}

#[test]
fn decodes_alphanumeric_senders() {
    // As Gammu writes it: "Claro" with a length of 10 semi-octets, UCS-2 text.
    let d =
        deliver("0891451901000000F0000AD0437658FE060008425001711510000C0048006F006C0061002000FA");
    assert_eq!(d.from.value, "Claro");
    assert_eq!(d.from.kind(), crate::sms::AddressKind::Alphanumeric);
    assert_eq!(d.smsc.unwrap().value, "+5491100000000");
    assert_eq!(d.user_data.text(), "Hola ú");
    assert_eq!(d.timestamp.to_rfc3339(), "2024-05-10T17:51:01+00:00");
    // "Personal" (14 semi-octets), GSM 7-bit text, Argentina's -03:00.
    let d = deliver("00040ED0D0B27CFE7687D90000425001711510290AC8373B0C9A87D9E437");
    assert_eq!(d.from.value, "Personal");
    assert_eq!(d.smsc, None);
    assert_eq!(d.user_data.text(), "Hola saldo");
    assert_eq!(d.timestamp.to_rfc3339(), "2024-05-10T17:51:01-03:00");
}

#[test]
fn decodes_status_reports() {
    let r = report("079194710600403406D70B911326880736F4111011719551401110117195714000");
    assert_eq!(r.smsc.as_ref().unwrap().value, "+491760000443");
    assert_eq!(r.message_reference, 0xD7);
    assert_eq!(r.recipient.value, "+31628870634");
    assert_eq!(r.timestamp.to_rfc3339(), "2011-01-11T17:59:15+01:00");
    assert_eq!(r.discharge_time.to_rfc3339(), "2011-01-11T17:59:17+01:00");
    assert_eq!((r.status_code, r.status()), (0, DeliveryStatus::Delivered));
    assert_eq!(r.user_data, None);
    let cases = [
        ("30", DeliveryStatus::Pending),
        ("21", DeliveryStatus::Pending),
        ("41", DeliveryStatus::Failed),
        ("46", DeliveryStatus::Failed),
        ("62", DeliveryStatus::Failed),
        ("02", DeliveryStatus::Delivered),
    ];
    for (st, status) in cases {
        // +CDS as an Argentine modem prints it, with a parameter indicator and no user data.
        let h = format!("07914519010000F006110D91451921436587F94250017115002942500171151029{st}00");
        let r = report(&h);
        assert_eq!(r.status(), status, "{st}");
        assert_eq!(r.status_code, u8::from_str_radix(st, 16).unwrap());
        assert_eq!(r.message_reference, 0x11);
        assert_eq!(r.recipient.value, "+5491123456789");
        assert_eq!(r.discharge_time.to_rfc3339(), "2024-05-10T17:51:01-03:00");
    }
    // A parameter indicator announcing DCS and user data.
    let r = report(
        &("0006110D91451921436587F94250017115002942500171151029000604".to_string() + "0348656A"),
    );
    assert_eq!(r.user_data.unwrap().text(), "48656A");
}

#[test]
fn decodes_concatenation_headers_and_skips_others() {
    let header = Concat {
        reference: 0xAB,
        total: 3,
        seq: 2,
        wide: false,
    }
    .header();
    let body = Body::Gsm7(crate::sms::gsm7::encode("parte dos €").unwrap());
    let d = deliver(&build_deliver("+5491123456789", 0x00, &header, &body));
    assert_eq!(d.user_data.text(), "parte dos €");
    assert_eq!(
        d.user_data.concat,
        Some(Concat {
            reference: 0xAB,
            total: 3,
            seq: 2,
            wide: false
        })
    );
    // 16-bit reference after an unknown element (a 7-octet header needs no fill bits).
    let header = [0x09, 0x70, 0x01, 0x00, 0x08, 0x04, 0x12, 0x34, 0x02, 0x02];
    let d = deliver(&build_deliver(
        "+54911",
        0x00,
        &header,
        &Body::Gsm7(vec![0x41; 7]),
    ));
    assert_eq!(d.user_data.text(), "AAAAAAA");
    assert_eq!(d.user_data.header.len(), 2);
    assert_eq!(
        d.user_data.concat.map(|c| (c.reference, c.wide)),
        Some((0x1234, true))
    );
    // Every header length 1..=7 octets, so every fill width, in front of 7-bit text.
    for n in 0..7usize {
        let mut header = vec![n as u8 + 2, 0x70, n as u8];
        header.extend(std::iter::repeat_n(0x55, n));
        header[0] = (header.len() - 1) as u8;
        let d = deliver(&build_deliver(
            "1",
            0x00,
            &header,
            &Body::Gsm7(vec![0x7F, 0x01, 0x41]),
        ));
        assert_eq!(
            d.user_data.text(),
            "à£A",
            "header of {} octets",
            header.len()
        );
    }
}

#[test]
fn eight_bit_data_is_shown_as_hex() {
    let d = deliver(&build_deliver(
        "123",
        0xF5,
        &[],
        &Body::Octets(vec![0x00, 0xFF, 0x1B]),
    ));
    assert_eq!(d.user_data.encoding, Encoding::EightBit);
    assert_eq!(d.user_data.content, Content::Binary(vec![0x00, 0xFF, 0x1B]));
    assert_eq!(d.user_data.text(), "00FF1B");
    assert_eq!(d.dcs.class, Some(1));
}

#[test]
fn message_classes() {
    for (dcs, class) in [
        (0x10u8, Some(0)),
        (0x12, Some(2)),
        (0xF0, Some(0)),
        (0x00, None),
    ] {
        let d = deliver(&build_deliver("123", dcs, &[], &Body::Gsm7(vec![0x41])));
        assert_eq!(d.dcs.class, class, "{dcs:02X}");
    }
}

#[test]
fn split_surrogates_are_carried_between_parts() {
    let first = Concat {
        reference: 1,
        total: 2,
        seq: 1,
        wide: false,
    };
    let second = Concat { seq: 2, ..first };
    let a = deliver(&build_deliver(
        "1",
        0x08,
        &first.header(),
        &Body::Octets(vec![0x00, 0x41, 0xD8, 0x3D]),
    ));
    let b = deliver(&build_deliver(
        "1",
        0x08,
        &second.header(),
        &Body::Octets(vec![0xDE, 0x00, 0x00, 0x42]),
    ));
    assert_eq!(a.user_data.text(), "A");
    assert_eq!(b.user_data.text(), "B");
    assert_eq!(
        crate::sms::join_text([Some(&a.user_data), Some(&b.user_data)]),
        "A😀B"
    );
    assert_eq!(
        crate::sms::join_text([Some(&a.user_data), None]),
        "A\u{FFFD}"
    );
    // Outside a concatenated message the same half is an error.
    let lone = build_deliver("1", 0x08, &[], &Body::Octets(vec![0x00, 0x41, 0xD8, 0x3D]));
    assert!(matches!(
        decode_hex(&lone, true),
        Err(SmsError::InvalidUtf16 { unit: 0xD83D, .. })
    ));
}

#[test]
fn decodes_submit_from_a_sent_folder() {
    let h = "0031230D91451921436587F90008AA0C0048006F006C0061002000FA";
    let Ok(DecodedPdu::Submit(s)) = decode_hex(h, true) else {
        panic!("{h}");
    };
    assert_eq!(s.message_reference, 0x23);
    assert_eq!(s.to.value, "+5491123456789");
    assert_eq!(s.validity, Some(Validity::Relative(0xAA)));
    assert!(s.status_report_request);
    assert_eq!(s.user_data.text(), "Hola ú");
    assert_eq!(relative_validity_minutes(0xAA), 4 * 24 * 60);
    // No validity field, and an absolute one.
    let Ok(DecodedPdu::Submit(s)) = decode_hex("0100038121F3000001C1", false) else {
        panic!();
    };
    assert_eq!((s.validity, s.user_data.text().as_str()), (None, "A"));
    let Ok(DecodedPdu::Submit(s)) = decode_hex("1900038121F300004250017115102901C1", false) else {
        panic!();
    };
    assert!(matches!(s.validity, Some(Validity::Absolute(_))));
}

#[test]
fn relative_validity_table() {
    let cases = [
        (0, 0),
        (5, 0),
        (6, 1),
        (60, 11),
        (720, 143),
        (721, 144),
        (1440, 167),
        (2 * 1440, 168),
        (4 * 1440, 0xAA),
        (30 * 1440, 196),
        (5 * 7 * 1440, 197),
        (63 * 7 * 1440, 255),
        (u32::MAX, 255),
    ];
    for (minutes, code) in cases {
        assert_eq!(relative_validity_code(minutes), code, "{minutes}");
        assert!(relative_validity_minutes(code) >= minutes.min(63 * 7 * 1440));
    }
}

/// Input hex, whether it has the SMS-centre field, and the error it must give.
type BadCase = (String, bool, fn(&SmsError) -> bool);

#[test]
fn malformed_input_is_a_typed_error() {
    let ok = "07917283010010F5040BC87238880900F10000993092516195800AE8329BFD4697D9EC37";
    let cases: Vec<BadCase> = vec![
        ("".into(), true, |e| {
            matches!(e, SmsError::Truncated { offset: 0, .. })
        }),
        // SMS-centre length beyond the buffer.
        ("0791728301".into(), true, |e| {
            matches!(e, SmsError::Truncated { .. })
        }),
        // SMS-centre length beyond the standard.
        ("0F91".into(), true, |e| {
            matches!(e, SmsError::AddressTooLong { offset: 0, .. })
        }),
        // Originating address longer than 20 digits.
        ("00041591".into(), true, |e| {
            matches!(e, SmsError::AddressTooLong { offset: 2, .. })
        }),
        // Originating address running past the end.
        ("00040B917238".into(), true, |e| {
            matches!(
                e,
                SmsError::Truncated {
                    field: "address",
                    ..
                }
            )
        }),
        // TP-MTI 11.
        ("0003".into(), true, |e| {
            matches!(e, SmsError::ReservedMessageType { offset: 1, mti: 3 })
        }),
        // Reserved DCS.
        ("0004038121F3008042500171151029".into(), true, |e| {
            matches!(
                e,
                SmsError::ReservedDcs {
                    offset: 7,
                    dcs: 0x80
                }
            )
        }),
        ("0004038121F3000C42500171151029".into(), true, |e| {
            matches!(e, SmsError::ReservedDcs { .. })
        }),
        // Compressed text.
        ("0004038121F3002042500171151029".into(), true, |e| {
            matches!(e, SmsError::CompressedText { offset: 7, .. })
        }),
        // Impossible date.
        ("0004038121F3000042200371151029".into(), true, |e| {
            matches!(e, SmsError::InvalidTimestamp { offset: 8, .. })
        }),
        // UDL beyond 160 septets / 140 octets.
        ("0004038121F3000042500171151029A1".into(), true, |e| {
            matches!(
                e,
                SmsError::UserDataTooLong {
                    udl: 161,
                    max: 160,
                    ..
                }
            )
        }),
        (
            "0004038121F3000842500171151029".to_string() + "8D",
            true,
            |e| {
                matches!(
                    e,
                    SmsError::UserDataTooLong {
                        udl: 141,
                        max: 140,
                        ..
                    }
                )
            },
        ),
        // UDH length beyond the user data.
        (
            "0044038121F300084250017115102904090003AA".into(),
            true,
            |e| {
                matches!(
                    e,
                    SmsError::HeaderTooLong {
                        offset: 16,
                        length: 10,
                        available: 4
                    }
                )
            },
        ),
        // UDH present but the 7-bit UDL is shorter than the header.
        (
            "0044038121F300004250017115102902050003AA0201".into(),
            true,
            |e| matches!(e, SmsError::HeaderTooLong { .. }),
        ),
        // Element running past the header.
        (
            "0044038121F3000842500171151029040300050001".into(),
            true,
            |e| {
                matches!(
                    e,
                    SmsError::ElementTooLong {
                        offset: 17,
                        iei: 0,
                        length: 5,
                        ..
                    }
                )
            },
        ),
        // UDHI set with empty user data.
        ("0044038121F3000842500171151029 00".into(), true, |e| {
            matches!(e, SmsError::HeaderTooLong { .. })
        }),
        // Odd UCS-2 length and an unpaired surrogate.
        ("0004038121F30008425001711510290300410A".into(), true, |e| {
            matches!(
                e,
                SmsError::OddUcs2Length {
                    offset: 16,
                    length: 3
                }
            )
        }),
        (
            "0004038121F300084250017115102904DC000041".into(),
            true,
            |e| {
                matches!(
                    e,
                    SmsError::InvalidUtf16 {
                        offset: 16,
                        unit: 0xDC00
                    }
                )
            },
        ),
    ];
    for (h, has_smsc, expected) in cases {
        let err = decode_hex(&h, has_smsc).expect_err(&h);
        assert!(expected(&err), "{h}: {err:?}");
        assert!(!err.to_string().is_empty());
    }
    // Every strict prefix of a valid PDU up to its TP-UDL (octet 26) fails cleanly; a longer
    // one decodes what it has, marked truncated.
    let bytes = hex::decode(ok).unwrap();
    for n in 0..bytes.len() {
        match decode_pdu(&bytes[..n], true) {
            Err(_) => assert!(n <= 26, "prefix of {n} octets"),
            Ok(DecodedPdu::Deliver(d)) => {
                assert!(n > 26 && d.user_data.truncated, "prefix of {n} octets")
            }
            Ok(other) => panic!("prefix of {n} octets: {other:?}"),
        }
    }
}

#[test]
fn encodes_the_reference_submit() {
    let parts = crate::sms::encode_submit("+5491123456789", "Hola", &Default::default()).unwrap();
    assert_eq!(parts.len(), 1);
    assert_eq!(parts[0].hex, "11000D91451921436587F90000AA04C8373B0C");
    assert_eq!(parts[0].length, 19);
    assert_eq!(
        parts[0].hex_with_default_smsc(),
        "0011000D91451921436587F90000AA04C8373B0C"
    );
    let opts = crate::sms::SubmitOptions {
        validity_minutes: None,
        status_report: true,
        ..Default::default()
    };
    let parts = crate::sms::encode_submit("1123456789", "Hola", &opts).unwrap();
    assert_eq!(
        parts[0].hex,
        "21000A8111325476980000".to_string() + "04C8373B0C"
    );
}

#[test]
fn spanish_single_shift_header_selects_the_spanish_table() {
    // "Camión" with ó as escape + 0x6F, after a header naming the Spanish single shift table.
    let septets = vec![0x43, 0x61, 0x6D, 0x69, 0x1B, 0x6F, 0x6E];
    let with = deliver(&build_deliver(
        "1",
        0x00,
        &[0x03, 0x24, 0x01, 0x02],
        &Body::Gsm7(septets.clone()),
    ));
    assert_eq!(with.user_data.text(), "Camión");
    let without = deliver(&build_deliver("1", 0x00, &[], &Body::Gsm7(septets)));
    assert_eq!(without.user_data.text(), "Camion");
}

/// Status reports whose optional fields are `FF` padding, as some modems print them: the
/// status still decodes and the padding is dropped.
#[test]
fn status_reports_padded_with_ff_keep_their_status() {
    let head = "07914519010000F006110D91451921436587F94250017115002942500171151029";
    let cases = [
        // TP-PI FF, then PID, DCS and UDL all FF, and nothing behind them.
        ("00FFFFFFFF", 0x00, DeliveryStatus::Delivered),
        // TP-PI FF alone.
        ("46FF", 0x46, DeliveryStatus::Failed),
        // TP-PI FF and a long run of FF (the rest of the modem's buffer).
        (
            "30FFFFFFFFFFFFFFFFFFFFFFFFFFFF",
            0x30,
            DeliveryStatus::Pending,
        ),
        // TP-PI announcing user data, UDL 255 (beyond 160 septets).
        ("0004FF", 0x00, DeliveryStatus::Delivered),
        // TP-PI announcing DCS FF (reserved) and user data.
        ("0006FFFF", 0x00, DeliveryStatus::Delivered),
    ];
    for (tail, code, status) in cases {
        let r = report(&format!("{head}{tail}"));
        assert_eq!((r.status_code, r.status()), (code, status), "{tail}");
        assert_eq!(r.message_reference, 0x11, "{tail}");
        assert_eq!(r.recipient.value, "+5491123456789", "{tail}");
        assert_eq!((r.pid, r.dcs, r.user_data), (None, None, None), "{tail}");
    }
    // TP-PI announcing user data that is not there: the status, and empty truncated text.
    let r = report(&format!("{head}620405"));
    assert_eq!(r.status(), DeliveryStatus::Failed);
    assert!(
        r.user_data
            .is_some_and(|u| u.truncated && u.text().is_empty())
    );
}

/// User data shorter than TP-UDL (a modem cut it): what arrived decodes, marked truncated.
#[test]
fn user_data_shorter_than_its_length_decodes_what_is_there() {
    // "Hola saldo" is 10 septets in 9 octets; UDL still says 10 but only 4 octets follow
    // (4 whole septets: 28 of 32 bits).
    let full = "00040ED0D0B27CFE7687D90000425001711510290AC8373B0C9A87D9E437";
    assert!(!deliver(full).user_data.truncated);
    let cut = &full[..full.len() - 10];
    let d = deliver(cut);
    assert!(d.user_data.truncated);
    assert_eq!(d.user_data.text(), "Hola");
    assert_eq!(d.from.value, "Personal");
    // UDL 20 septets, no octet of user data at all.
    let d = deliver("00040ED0D0B27CFE7687D900004250017115102914");
    assert!(d.user_data.truncated);
    assert_eq!(d.user_data.text(), "");
    // UCS-2 "Hola ú" (12 octets) cut after 7 octets: three whole characters, the half one dropped.
    let ucs2 = "0891451901000000F0000AD0437658FE060008425001711510000C0048006F006C0061002000FA";
    let d = deliver(&ucs2[..ucs2.len() - 10]);
    assert!(d.user_data.truncated);
    assert_eq!(d.user_data.text(), "Hol");
    // UCS-2 cut between the two halves of an emoji: the lone high surrogate is dropped.
    let body = Body::Octets("ab😀".encode_utf16().flat_map(u16::to_be_bytes).collect());
    let whole = build_deliver("+5491123456789", 0x08, &[], &body);
    let d = deliver(&whole[..whole.len() - 4]);
    assert!(d.user_data.truncated);
    assert_eq!(d.user_data.text(), "ab");
    assert_eq!(d.user_data.trailing_high_surrogate, None);
    // 8-bit data keeps the octets that came.
    let d = deliver("0004038121F30004425001711510290501020304");
    assert!(d.user_data.truncated);
    assert_eq!(d.user_data.text(), "01020304");
    // A concatenated GSM part cut inside its text keeps its header and what followed it.
    let header = Concat {
        reference: 7,
        total: 2,
        seq: 1,
        wide: false,
    }
    .header();
    let body = Body::Gsm7(crate::sms::gsm7::encode("parte uno completa").unwrap());
    let whole = build_deliver("+5491123456789", 0x00, &header, &body);
    let d = deliver(&whole[..whole.len() - 8]);
    assert!(d.user_data.truncated);
    assert_eq!(
        d.user_data.concat.map(|c| (c.reference, c.seq)),
        Some((7, 1))
    );
    assert!("parte uno completa".starts_with(&d.user_data.text()));
    assert!(d.user_data.text().len() >= 12, "{}", d.user_data.text());
}
