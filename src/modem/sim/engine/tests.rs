use super::*;
use crate::modem::sim::types::Registration;
use crate::sms::{SubmitOptions, encode_submit};

fn engine() -> (Engine, Instant) {
    (
        Engine::new(SimConfig::default(), Identity::default(), 7),
        Instant::now(),
    )
}

/// Everything written for `input`, pauses dropped.
fn run(e: &mut Engine, input: &[u8], now: Instant) -> String {
    let bytes: Vec<u8> = e
        .feed(input, now)
        .into_iter()
        .flat_map(|o| match o {
            Output::Write(b) => b,
            Output::Pause(_) => Vec::new(),
        })
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// An engine with echo off, errors numeric and `+CMTI`/`+CDS` on, as the driver sets it up.
fn ready() -> (Engine, Instant) {
    let (mut e, now) = engine();
    for cmd in ["ATE0\r", "AT+CMEE=1\r", "AT+CNMI=2,1,0,1,0\r"] {
        assert!(
            run(&mut e, cmd.as_bytes(), now).ends_with("\r\nOK\r\n"),
            "{cmd}"
        );
    }
    (e, now)
}

#[test]
fn echo_is_on_after_power_up_and_ate0_turns_it_off() {
    let (mut e, now) = engine();
    assert_eq!(run(&mut e, b"AT\r", now), "AT\r\r\nOK\r\n");
    assert_eq!(run(&mut e, b"ATE0\r", now), "ATE0\r\r\nOK\r\n");
    assert_eq!(run(&mut e, b"AT\r", now), "\r\nOK\r\n");
    assert_eq!(run(&mut e, b"ATE1\r", now), "\r\nOK\r\n");
    assert_eq!(run(&mut e, b"at\r", now), "at\r\r\nOK\r\n");
}

#[test]
fn commands_split_across_writes_and_crlf_terminators_work() {
    let (mut e, now) = ready();
    assert_eq!(run(&mut e, b"AT+C", now), "");
    assert_eq!(run(&mut e, b"SQ", now), "");
    assert_eq!(run(&mut e, b"\r\n", now), "\r\n+CSQ: 20,99\r\n\r\nOK\r\n");
    // The LF after the CR is not an empty second line.
    assert_eq!(run(&mut e, b"AT\r\nAT\r\n", now), "\r\nOK\r\n\r\nOK\r\n");
}

#[test]
fn gammu_start_sequence_gets_plausible_answers() {
    let (mut e, now) = engine();
    assert_eq!(run(&mut e, b"\x1b", now), "");
    assert!(run(&mut e, b"AT\r", now).ends_with("\r\nOK\r\n"));
    for (cmd, expect) in [
        ("AT+MODE=2", "\r\nERROR\r\n"),
        ("AT+CSCS?", "\r\n+CSCS: \"GSM\"\r\n\r\nOK\r\n"),
        ("AT+CGMI", "\r\nPasarela\r\n\r\nOK\r\n"),
        ("AT+CGSN", "\r\n356938035643809\r\n\r\nOK\r\n"),
        ("AT$TSSPCSW=?", "\r\nERROR\r\n"),
        ("AT^CURC=0", "\r\nERROR\r\n"),
        ("AT+CFUN=1", "\r\nOK\r\n"),
        (
            "AT+CPMS=?",
            "\r\n+CPMS: (\"SM\"),(\"SM\"),(\"SM\")\r\n\r\nOK\r\n",
        ),
        ("AT+CPMS=\"ME\"", "\r\n+CMS ERROR: 302\r\n"),
        (
            "AT+CPMS=\"SM\",\"SM\",\"SM\"",
            "\r\n+CPMS: 0,30,0,30,0,30\r\n\r\nOK\r\n",
        ),
        (
            "AT+CSCA?",
            "\r\n+CSCA: \"+5491151740000\",145\r\n\r\nOK\r\n",
        ),
        ("AT+CREG?", "\r\n+CREG: 0,1\r\n\r\nOK\r\n"),
        ("AT+COPS?", "\r\n+COPS: 0,0,\"Personal\"\r\n\r\nOK\r\n"),
        ("AT+CIMI", "\r\n722341234567890\r\n\r\nOK\r\n"),
    ] {
        let line = format!("{cmd}\r");
        let echo = line.clone();
        assert_eq!(
            run(&mut e, line.as_bytes(), now),
            format!("{echo}{expect}"),
            "{cmd}"
        );
    }
}

#[test]
fn registration_and_signal_follow_the_config() {
    let (mut e, now) = ready();
    e.set_config(ConfigPatch {
        registration: Some(Registration::Roaming),
        rssi: Some(99),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(
        run(&mut e, b"AT+CREG?\r", now),
        "\r\n+CREG: 0,5\r\n\r\nOK\r\n"
    );
    assert_eq!(
        run(&mut e, b"AT+CSQ\r", now),
        "\r\n+CSQ: 99,99\r\n\r\nOK\r\n"
    );
    e.set_config(ConfigPatch {
        registration: Some(Registration::Denied),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(
        run(&mut e, b"AT+CREG?\r", now),
        "\r\n+CREG: 0,3\r\n\r\nOK\r\n"
    );
    assert_eq!(
        run(&mut e, b"AT+COPS?\r", now),
        "\r\n+COPS: 0\r\n\r\nOK\r\n"
    );
    assert!(
        e.set_config(ConfigPatch {
            rssi: Some(40),
            ..Default::default()
        })
        .is_err()
    );
}

#[test]
fn pin_flow_unlocks_counts_failures_and_asks_for_the_puk() {
    let config = SimConfig {
        pin: Some("1234".into()),
        ..SimConfig::default()
    };
    let mut e = Engine::new(config, Identity::default(), 1);
    let now = Instant::now();
    run(&mut e, b"ATE0\rAT+CMEE=1\r", now);
    assert_eq!(
        run(&mut e, b"AT+CPIN?\r", now),
        "\r\n+CPIN: SIM PIN\r\n\r\nOK\r\n"
    );
    assert_eq!(run(&mut e, b"AT+CMGL=4\r", now), "\r\n+CMS ERROR: 311\r\n");
    assert_eq!(
        run(&mut e, b"AT+CPIN=\"0000\"\r", now),
        "\r\n+CME ERROR: 16\r\n"
    );
    assert_eq!(run(&mut e, b"AT+CPIN=\"1234\"\r", now), "\r\nOK\r\n");
    assert_eq!(
        run(&mut e, b"AT+CPIN?\r", now),
        "\r\n+CPIN: READY\r\n\r\nOK\r\n"
    );

    // A power cycle locks it again; three wrong PINs in a row need the PUK.
    e.power_up();
    run(&mut e, b"ATE0\rAT+CMEE=1\r", now);
    for _ in 0..3 {
        assert_eq!(
            run(&mut e, b"AT+CPIN=\"9999\"\r", now),
            "\r\n+CME ERROR: 16\r\n"
        );
    }
    assert_eq!(
        run(&mut e, b"AT+CPIN?\r", now),
        "\r\n+CPIN: SIM PUK\r\n\r\nOK\r\n"
    );
    assert_eq!(
        run(&mut e, b"AT+CPIN=\"1234\"\r", now),
        "\r\n+CME ERROR: 12\r\n"
    );
    assert_eq!(
        run(
            &mut e,
            format!("AT+CPIN=\"{PUK}\",\"4321\"\r").as_bytes(),
            now
        ),
        "\r\nOK\r\n"
    );
    assert_eq!(e.config().pin.as_deref(), Some("4321"));
    // Without CMEE the error is a bare ERROR.
    e.power_up();
    run(&mut e, b"ATE0\r", now);
    assert_eq!(run(&mut e, b"AT+CPIN=\"1111\"\r", now), "\r\nERROR\r\n");
}

#[test]
fn inbound_before_cnmi_is_stored_silently_then_listed_read_and_deleted() {
    let (mut e, now) = engine();
    run(&mut e, b"ATE0\r", now);
    assert_eq!(e.inbound("+5491123456789", "Hola").unwrap(), 1);
    assert!(e.poll(now).is_empty(), "no +CMTI before AT+CNMI");
    let listing = run(&mut e, b"AT+CMGL=4\r", now);
    let lines: Vec<&str> = listing.split("\r\n").collect();
    assert!(lines[1].starts_with("+CMGL: 1,0,,"), "{listing}");
    let len: usize = lines[1].rsplit(',').next().unwrap().parse().unwrap();
    let pdu = hex::decode(lines[2]).unwrap();
    assert_eq!(pdu.len(), len + 9, "length excludes the SMS-centre field");
    let DecodedPdu::Deliver(d) = sms::decode_pdu(&pdu, true).unwrap() else {
        panic!("not a deliver")
    };
    assert_eq!(d.user_data.text(), "Hola");
    assert!(listing.ends_with("\r\n\r\nOK\r\n"));

    // Listed once, now read: stat 0 lists nothing, stat 1 lists it.
    assert_eq!(run(&mut e, b"AT+CMGL=0\r", now), "\r\nOK\r\n");
    assert!(run(&mut e, b"AT+CMGL=1\r", now).starts_with("\r\n+CMGL: 1,1,,"));
    assert_eq!(run(&mut e, b"AT+CMGD=1\r", now), "\r\nOK\r\n");
    assert_eq!(run(&mut e, b"AT+CMGD=1\r", now), "\r\n+CMS ERROR: 321\r\n");
    assert_eq!(run(&mut e, b"AT+CMGR=1\r", now), "\r\n+CMS ERROR: 321\r\n");
}

#[test]
fn cmti_per_part_and_cmgr_marks_read() {
    let (mut e, now) = ready();
    let text = "Información importante sobre su cuenta. ".repeat(4);
    assert_eq!(e.inbound("Personal", &text).unwrap(), 3);
    let urcs = String::from_utf8(e.poll(now)).unwrap();
    assert_eq!(
        urcs,
        "\r\n+CMTI: \"SM\",1\r\n\r\n+CMTI: \"SM\",2\r\n\r\n+CMTI: \"SM\",3\r\n"
    );
    let first = run(&mut e, b"AT+CMGR=2\r", now);
    assert!(first.starts_with("\r\n+CMGR: 0,,"), "{first}");
    assert!(first.ends_with("\r\n\r\nOK\r\n"));
    assert!(run(&mut e, b"AT+CMGR=2\r", now).starts_with("\r\n+CMGR: 1,,"));
    let pdu = hex::decode(first.split("\r\n").nth(2).unwrap()).unwrap();
    let DecodedPdu::Deliver(d) = sms::decode_pdu(&pdu, true).unwrap() else {
        panic!("not a deliver")
    };
    assert_eq!(d.from.value, "Personal");
    assert_eq!(d.user_data.concat.unwrap().seq, 2);
}

#[test]
fn full_sim_holds_parts_in_the_network_until_a_slot_frees() {
    let (mut e, now) = ready();
    e.set_config(ConfigPatch {
        capacity: Some(2),
        ..Default::default()
    })
    .unwrap();
    for n in 0..3 {
        e.inbound("+5491123456789", &format!("mensaje {n}"))
            .unwrap();
    }
    assert_eq!(e.sim_contents().used, 2);
    assert_eq!(e.sim_contents().waiting, 1);
    assert_eq!(
        String::from_utf8(e.poll(now)).unwrap(),
        "\r\n+CMTI: \"SM\",1\r\n\r\n+CMTI: \"SM\",2\r\n"
    );
    assert_eq!(
        run(&mut e, b"AT+CPMS?\r", now),
        "\r\n+CPMS: \"SM\",2,2,\"SM\",2,2,\"SM\",2,2\r\n\r\nOK\r\n"
    );
    assert_eq!(run(&mut e, b"AT+CMGD=1,0\r", now), "\r\nOK\r\n");
    assert_eq!(
        String::from_utf8(e.poll(now)).unwrap(),
        "\r\n+CMTI: \"SM\",1\r\n"
    );
    let sim = e.sim_contents();
    assert_eq!((sim.used, sim.waiting), (2, 0));
    assert_eq!(sim.messages[0].text, "mensaje 2");
    // Delete-all flag frees everything.
    assert_eq!(run(&mut e, b"AT+CMGD=1,4\r", now), "\r\nOK\r\n");
    assert_eq!(e.sim_contents().used, 0);
}

#[test]
fn no_registration_keeps_inbound_in_the_network_and_fails_sends() {
    let (mut e, now) = ready();
    e.set_config(ConfigPatch {
        registration: Some(Registration::Searching),
        ..Default::default()
    })
    .unwrap();
    e.inbound("+5491123456789", "hola").unwrap();
    assert_eq!(e.sim_contents().waiting, 1);
    let part = &encode_submit("+5491123456789", "x", &SubmitOptions::default()).unwrap()[0];
    run(&mut e, format!("AT+CMGS={}\r", part.length).as_bytes(), now);
    let out = run(
        &mut e,
        format!("{}\x1a", part.hex_with_default_smsc()).as_bytes(),
        now,
    );
    assert_eq!(out, "\r\n+CMS ERROR: 331\r\n");
    e.set_config(ConfigPatch {
        registration: Some(Registration::Home),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(e.sim_contents().used, 1);
    assert_eq!(
        String::from_utf8(e.poll(now)).unwrap(),
        "\r\n+CMTI: \"SM\",1\r\n"
    );
}

fn send(e: &mut Engine, now: Instant, length: usize, pdu: &str) -> String {
    let prompt = run(e, format!("AT+CMGS={length}\r").as_bytes(), now);
    assert_eq!(prompt, "\r\n> ");
    run(e, format!("{pdu}\x1a").as_bytes(), now)
}

#[test]
fn cmgs_assigns_references_and_joins_multipart_messages() {
    let (mut e, now) = ready();
    let text = "Aviso: corte programado el martes de 9 a 13 hs en su zona. Disculpe las molestias. ¿Dudas? Responda AYUDA. Atención al cliente de su proveedor de internet.";
    let opts = SubmitOptions {
        concat_ref: 0x42,
        ..SubmitOptions::default()
    };
    let parts = encode_submit("+5491123456789", text, &opts).unwrap();
    assert_eq!(parts.len(), 3);
    for (i, part) in parts.iter().enumerate() {
        let out = send(&mut e, now, part.length, &part.hex_with_default_smsc());
        assert_eq!(out, format!("\r\n+CMGS: {i}\r\n\r\nOK\r\n"));
        assert_eq!(e.sent().len(), usize::from(i == 2));
    }
    let sent = &e.sent()[0];
    assert_eq!(sent.text, text);
    assert_eq!(sent.parts, 3);
    assert_eq!(sent.to, "+5491123456789");
    assert_eq!(sent.message_references, vec![0, 1, 2]);
    assert_eq!(sent.pdus[1], parts[1].hex_with_default_smsc());
}

#[test]
fn cmgs_pdu_may_arrive_in_pieces_with_a_send_delay() {
    let (mut e, now) = ready();
    e.set_config(ConfigPatch {
        send_delay_ms: Some(1500),
        ..Default::default()
    })
    .unwrap();
    // The example from the protocol notes: "Hola" to +5491123456789.
    run(&mut e, b"AT+CMGS=19\r", now);
    assert!(e.feed(b"0011000D9145192143", now).is_empty());
    assert!(e.feed(b"6587F90000AA04C8373B0C", now).is_empty());
    let out = e.feed(b"\x1a", now);
    assert_eq!(
        out,
        vec![
            Output::Pause(Duration::from_millis(1500)),
            Output::Write(b"\r\n+CMGS: 0\r\n\r\nOK\r\n".to_vec())
        ]
    );
    assert_eq!(e.sent()[0].text, "Hola");
}

#[test]
fn wrong_length_bad_hex_and_esc_abort() {
    let (mut e, now) = ready();
    let hola = "0011000D91451921436587F90000AA04C8373B0C";
    assert_eq!(send(&mut e, now, 18, hola), "\r\n+CMS ERROR: 304\r\n");
    assert_eq!(send(&mut e, now, 19, "00ZZ"), "\r\n+CMS ERROR: 304\r\n");
    assert_eq!(send(&mut e, now, 8, "0004"), "\r\n+CMS ERROR: 304\r\n");
    run(&mut e, b"AT+CMGS=19\r", now);
    assert_eq!(run(&mut e, b"0011\x1b", now), "\r\nOK\r\n");
    // Back in command mode; nothing was sent and the reference was not used.
    assert_eq!(run(&mut e, b"AT\r", now), "\r\nOK\r\n");
    assert!(e.sent().is_empty());
    assert_eq!(send(&mut e, now, 19, hola), "\r\n+CMGS: 0\r\n\r\nOK\r\n");
    assert_eq!(
        run(&mut e, b"AT+CMGS=900\r", now),
        "\r\n+CMS ERROR: 304\r\n"
    );
}

#[test]
fn references_wrap_after_255() {
    let (mut e, now) = ready();
    let hola = "0011000D91451921436587F90000AA04C8373B0C";
    for i in 0..=256u32 {
        let out = send(&mut e, now, 19, hola);
        assert_eq!(out, format!("\r\n+CMGS: {}\r\n\r\nOK\r\n", i % 256));
    }
}

#[test]
fn status_reports_arrive_as_cds_or_stored_cdsi() {
    let (mut e, now) = ready();
    e.set_config(ConfigPatch {
        status_report_delay_ms: Some(Some(2000)),
        ..Default::default()
    })
    .unwrap();
    let opts = SubmitOptions {
        status_report: true,
        ..SubmitOptions::default()
    };
    let part = &encode_submit("+5491123456789", "con aviso", &opts).unwrap()[0];
    assert!(send(&mut e, now, part.length, &part.hex_with_default_smsc()).contains("+CMGS: 0"));
    assert_eq!(e.next_deadline(), Some(now + Duration::from_millis(2000)));
    assert!(e.poll(now + Duration::from_millis(1999)).is_empty());
    let urc = String::from_utf8(e.poll(now + Duration::from_millis(2000))).unwrap();
    let lines: Vec<&str> = urc.split("\r\n").collect();
    assert!(lines[1].starts_with("+CDS: "), "{urc}");
    let pdu = hex::decode(lines[2]).unwrap();
    let DecodedPdu::StatusReport(r) = sms::decode_pdu(&pdu, true).unwrap() else {
        panic!("not a status report")
    };
    assert_eq!(r.message_reference, 0);
    assert_eq!(r.recipient.value, "+5491123456789");
    assert_eq!(lines[1], format!("+CDS: {}", pdu.len() - 9));
    assert_eq!(e.next_deadline(), None);

    run(&mut e, b"AT+CNMI=2,1,0,2,0\r", now);
    send(&mut e, now, part.length, &part.hex_with_default_smsc());
    let urc = String::from_utf8(e.poll(now + Duration::from_secs(3))).unwrap();
    assert_eq!(urc, "\r\n+CDSI: \"SM\",1\r\n");
    assert_eq!(e.sim_contents().messages[0].kind, "status_report");
    assert!(run(&mut e, b"AT+CMGR=1\r", now).starts_with("\r\n+CMGR: 0,,"));
}

#[test]
fn unsolicited_codes_wait_while_the_host_types_a_pdu() {
    let (mut e, now) = ready();
    run(&mut e, b"AT+CMGS=19\r", now);
    e.inbound("+5491123456789", "hola").unwrap();
    assert!(e.poll(now).is_empty());
    run(&mut e, b"0011000D91451921436587F90000AA04C8373B0C\x1a", now);
    assert_eq!(
        String::from_utf8(e.poll(now)).unwrap(),
        "\r\n+CMTI: \"SM\",1\r\n"
    );
}

#[test]
fn hang_ignores_input_until_it_ends() {
    let (mut e, now) = ready();
    e.apply_fault(&Fault::Hang { secs: 5.0 }, now).unwrap();
    assert!(e.feed(b"AT\r", now + Duration::from_secs(1)).is_empty());
    e.inbound("+5491123456789", "hola").unwrap();
    assert!(e.poll(now + Duration::from_secs(1)).is_empty());
    assert_eq!(e.next_deadline(), Some(now + Duration::from_secs(5)));
    let later = now + Duration::from_secs(5);
    assert_eq!(
        String::from_utf8(e.poll(later)).unwrap(),
        "\r\n+CMTI: \"SM\",1\r\n"
    );
    assert_eq!(run(&mut e, b"AT\r", later), "\r\nOK\r\n");
}

#[test]
fn cms_error_fault_with_probability_one_fails_every_send_and_zero_clears_it() {
    let (mut e, now) = ready();
    let hola = "0011000D91451921436587F90000AA04C8373B0C";
    e.apply_fault(
        &Fault::CmsError {
            code: 500,
            probability: 1.0,
        },
        now,
    )
    .unwrap();
    for _ in 0..5 {
        assert_eq!(send(&mut e, now, 19, hola), "\r\n+CMS ERROR: 500\r\n");
    }
    e.apply_fault(
        &Fault::CmsError {
            code: 500,
            probability: 0.0,
        },
        now,
    )
    .unwrap();
    assert_eq!(send(&mut e, now, 19, hola), "\r\n+CMGS: 0\r\n\r\nOK\r\n");
    assert!(
        e.apply_fault(
            &Fault::CmsError {
                code: 1,
                probability: 2.0
            },
            now
        )
        .is_err()
    );
}

/// The lines a tolerant host keeps: drops URC-looking and noise lines, as a driver must.
fn meaningful_lines(out: &str) -> Vec<String> {
    out.split("\r\n")
        .filter(|l| {
            !l.is_empty()
                && !NOISE_LINES.iter().any(|n| n.starts_with(l))
                && l.bytes().any(|b| b.is_ascii_alphanumeric())
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn garbage_never_touches_final_results_or_information_lines() {
    let (mut e, now) = ready();
    e.inbound("+5491123456789", "hola").unwrap();
    e.inbound("+5491123456789", "chau").unwrap();
    e.apply_fault(&Fault::Garbage { secs: 10.0 }, now).unwrap();
    for _ in 0..200 {
        let out = run(&mut e, b"AT+CMGL=4\r", now);
        assert!(out.ends_with("\r\nOK\r\n"), "{out:?}");
        let lines = meaningful_lines(&out);
        assert_eq!(lines.len(), 5, "{out:?}");
        assert!(lines[0].starts_with("+CMGL: 1,"));
        assert!(hex::decode(&lines[1]).is_ok());
        assert!(lines[2].starts_with("+CMGL: 2,"));
        assert_eq!(lines[4], "OK");
        let out = send(&mut e, now, 19, "0011000D91451921436587F90000AA04C8373B0C");
        assert!(!out.contains('>'));
        assert!(meaningful_lines(&out)[0].starts_with("+CMGS: "), "{out:?}");
        assert!(out.ends_with("\r\nOK\r\n"), "{out:?}");
    }
    // Idle noise comes on its own schedule and stops with the window.
    assert!(!e.poll(now).is_empty());
    let next = e.next_deadline().unwrap();
    assert!(next > now && next <= now + Duration::from_millis(750));
    let after = now + Duration::from_secs(10);
    assert!(e.poll(after).is_empty());
    assert_eq!(e.next_deadline(), None);
    assert_eq!(run(&mut e, b"AT\r", after), "\r\nOK\r\n");
}

#[test]
fn arbitrary_bytes_never_panic() {
    let (mut e, now) = engine();
    let mut rng = Rng(99);
    for _ in 0..2000 {
        let n = rng.below(64);
        let chunk: Vec<u8> = (0..n)
            .map(|_| match rng.below(6) {
                0 => b'\r',
                1 => CTRL_Z,
                2 => ESC,
                _ => (rng.next() & 0xFF) as u8,
            })
            .collect();
        e.feed(&chunk, now);
        e.feed(b"AT+CMGS=19\r", now);
    }
    let long = vec![b'A'; MAX_LINE * 3];
    e.feed(&long, now);
    e.feed(b"\x1b", now);
    run(&mut e, b"\rATE0\r", now);
    assert_eq!(run(&mut e, b"AT\r", now), "\r\nOK\r\n");
}

#[test]
fn unknown_and_malformed_commands_are_errors() {
    let (mut e, now) = ready();
    for cmd in [
        "AT+FOO",
        "AT+CMGR",
        "AT+CMGR=abc",
        "AT+CNMI=9,9",
        "AT+CMGD=",
        "ATX9",
    ] {
        let out = run(&mut e, format!("{cmd}\r").as_bytes(), now);
        assert!(out.contains("ERROR"), "{cmd}: {out:?}");
    }
    // Lines that are not commands get no answer at all.
    assert_eq!(run(&mut e, b"hello\r", now), "");
}

/// A command and what follows it: the response, then the unsolicited `+CUSD:` (if any).
fn ussd(e: &mut Engine, cmd: &str, now: Instant) -> (String, String) {
    let response = run(e, format!("{cmd}\r").as_bytes(), now);
    let urc = String::from_utf8_lossy(&e.poll(now)).into_owned();
    (response, urc)
}

#[test]
fn cusd_menu_charsets_and_network_outcomes() {
    let (mut e, now) = ready();
    assert_eq!(
        ussd(&mut e, "AT+CUSD=?", now).0,
        "\r\n+CUSD: (0-2)\r\n\r\nOK\r\n"
    );
    // Presentation off: the answer is not shown.
    assert_eq!(
        ussd(&mut e, "AT+CUSD=0,\"*444#\",15", now),
        ("\r\nOK\r\n".to_string(), String::new())
    );
    assert_eq!(
        ussd(&mut e, "AT+CUSD?", now).0,
        "\r\n+CUSD: 0\r\n\r\nOK\r\n"
    );
    // The answer comes after OK, as an unsolicited code.
    assert_eq!(
        ussd(&mut e, "AT+CUSD=1,\"*444#\",15", now),
        (
            "\r\nOK\r\n".to_string(),
            "\r\n+CUSD: 0,\"Su saldo es $ 1.234,50. Vence el 31/12/2026.\",15\r\n".to_string()
        )
    );
    // Two steps of a menu; a menu's lines break inside the quotes.
    let (_, urc) = ussd(&mut e, "AT+CUSD=1,\"*150#\",15", now);
    assert_eq!(
        urc,
        "\r\n+CUSD: 1,\"Personal\r\n1 Consultar saldo\r\n2 Comprar pack\",15\r\n"
    );
    let (_, urc) = ussd(&mut e, "AT+CUSD=1,\"2\",15", now);
    assert!(urc.starts_with("\r\n+CUSD: 1,\"Packs:"), "{urc}");
    let (_, urc) = ussd(&mut e, "AT+CUSD=1,\"2\",15", now);
    assert_eq!(urc, "\r\n+CUSD: 0,\"Saldo insuficiente\",15\r\n");
    // An option the menu does not have; a cancelled session starts over.
    ussd(&mut e, "AT+CUSD=1,\"*150#\",15", now);
    let (_, urc) = ussd(&mut e, "AT+CUSD=1,\"7\",15", now);
    assert_eq!(urc, "\r\n+CUSD: 0,\"Opcion invalida\",15\r\n");
    ussd(&mut e, "AT+CUSD=1,\"*150#\",15", now);
    assert_eq!(
        ussd(&mut e, "AT+CUSD=2", now),
        ("\r\nOK\r\n".into(), String::new())
    );
    let (_, urc) = ussd(&mut e, "AT+CUSD=1,\"1\",15", now);
    assert_eq!(
        urc, "\r\n+CUSD: 4\r\n",
        "no session: `1` is an unknown code"
    );
    // The network ends the session; a silent code never answers.
    assert_eq!(
        ussd(&mut e, "AT+CUSD=1,\"*999#\",15", now).1,
        "\r\n+CUSD: 2\r\n"
    );
    assert_eq!(ussd(&mut e, "AT+CUSD=1,\"*777#\",15", now).1, "");
    // UCS-2: by the service's alphabet (<dcs> 72) and by AT+CSCS="UCS2" (request in hex too).
    let (_, urc) = ussd(&mut e, "AT+CUSD=1,\"*555#\",15", now);
    let want = hex::encode(&crate::sms::ucs2::encode(
        "Tu crédito: $ 1.234,50 — ¡recargá ya!",
    ));
    assert_eq!(urc, format!("\r\n+CUSD: 0,\"{want}\",72\r\n"));
    run(&mut e, b"AT+CSCS=\"UCS2\"\r", now);
    let code = hex::encode(&crate::sms::ucs2::encode("*150#"));
    let (_, urc) = ussd(&mut e, &format!("AT+CUSD=1,\"{code}\",15"), now);
    let want = hex::encode(&crate::sms::ucs2::encode(
        "Personal\n1 Consultar saldo\n2 Comprar pack",
    ));
    assert_eq!(urc, format!("\r\n+CUSD: 1,\"{want}\",15\r\n"));
    run(&mut e, b"AT+CUSD=2\rAT+CSCS=\"GSM\"\r", now);
    // Huawei style: packed GSM 7-bit hex, a CR in the spare septet.
    e.set_config(ConfigPatch {
        ussd_hex: Some(true),
        ..Default::default()
    })
    .unwrap();
    let (_, urc) = ussd(&mut e, "AT+CUSD=1,\"*444#\",15", now);
    let hex_text = urc.split('"').nth(1).unwrap();
    assert_eq!(
        crate::modem::ussd::decode_text(hex_text, Some(15)),
        "Su saldo es $ 1.234,50. Vence el 31/12/2026."
    );
    // No network: the command fails.
    e.set_config(ConfigPatch {
        registration: Some(Registration::Searching),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(
        ussd(&mut e, "AT+CUSD=1,\"*444#\",15", now).0,
        "\r\n+CME ERROR: 30\r\n"
    );
    // A service table with a bad text is refused whole, naming the field.
    let mut table = e.config().ussd.clone();
    table.insert(
        "*1#".into(),
        serde_json::from_str(r#"{"text": "dice \"hola\""}"#).unwrap(),
    );
    let err = e
        .set_config(ConfigPatch {
            ussd: Some(table),
            ..Default::default()
        })
        .unwrap_err();
    assert_eq!(err.field, "ussd");
    assert!(!e.config().ussd.contains_key("*1#"));
}
