//! Drives `pasarela pdu decode|encode|count` as a user would.

use std::process::Command;

use serde_json::Value;

fn pasarela(args: &[&str]) -> (i32, Vec<String>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_pasarela"))
        .args(args)
        .output()
        .expect("runs");
    let stdout = String::from_utf8(out.stdout).unwrap();
    (
        out.status.code().unwrap_or(-1),
        stdout.lines().map(str::to_string).collect(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn json(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"))
}

const SPANISH: &str =
    "Estimado Señor Núñez, su saldo pendiente es $ 1.234,50 ¿Consultas? ¡Gracias!";

#[test]
fn encode_prints_one_tpdu_per_part() {
    let (code, lines, _) = pasarela(&["pdu", "encode", "--to", "+5491123456789", "--text", "Hola"]);
    assert_eq!(code, 0);
    assert_eq!(lines, ["11000D91451921436587F90000AA04C8373B0C"]);

    let (code, lines, _) = pasarela(&[
        "pdu",
        "encode",
        "--to",
        "1123456789",
        "--text",
        SPANISH,
        "--ref",
        "42",
        "--status-report",
        "--validity",
        "60",
    ]);
    assert_eq!(code, 0);
    assert_eq!(lines.len(), 2);
    for (i, line) in lines.iter().enumerate() {
        assert!(line.starts_with("71000A81113254769800080B"), "{line}");
        assert!(line.contains(&format!("0500032A020{}", i + 1)), "{line}");
    }

    let (code, lines, stderr) = pasarela(&[
        "pdu",
        "encode",
        "--to",
        "+54911",
        "--text",
        SPANISH,
        "--encoding",
        "gsm7",
    ]);
    assert_eq!((code, lines.len()), (1, 0));
    assert!(stderr.contains("'ú'"), "{stderr}");

    let (code, lines, _) = pasarela(&[
        "pdu",
        "encode",
        "--to",
        "+54911",
        "--text",
        SPANISH,
        "--transliterate",
        "--validity",
        "0",
    ]);
    assert_eq!(code, 0);
    assert_eq!(lines.len(), 1);
    assert!(lines[0].starts_with("010005914519F10000"), "{}", lines[0]);
}

#[test]
fn encode_rejects_bad_numbers_and_long_texts() {
    let (code, _, stderr) = pasarela(&["pdu", "encode", "--to", "+54 911", "--text", "x"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("invalid phone number"), "{stderr}");
    let long = "a".repeat(154 * 3);
    let (code, _, stderr) = pasarela(&[
        "pdu",
        "encode",
        "--to",
        "1",
        "--text",
        &long,
        "--max-parts",
        "3",
    ]);
    assert_eq!(code, 1);
    assert!(stderr.contains("4 SMS parts"), "{stderr}");
}

#[test]
fn decode_prints_json_per_pdu_and_fails_after_the_rest() {
    let (code, lines, _) = pasarela(&[
        "pdu",
        "decode",
        "07917283010010F5040BC87238880900F10000993092516195800AE8329BFD4697D9EC37",
        "0011",
        "079194710600403406D70B911326880736F4111011719551401110117195714000",
    ]);
    assert_eq!(code, 1);
    assert_eq!(lines.len(), 3);
    let d = json(&lines[0]);
    assert_eq!(d["type"], "deliver");
    assert_eq!(d["from"], "27838890001");
    assert_eq!(d["smsc"], "+27381000015");
    assert_eq!(d["text"], "hellohello");
    assert_eq!(d["encoding"], "gsm7");
    assert_eq!(d["class"], Value::Null);
    assert_eq!(d["timestamp"], "1999-03-29T15:16:59+02:00");
    assert_eq!(d["concat"], Value::Null);
    assert_eq!(d["reference"], Value::Null);
    assert!(
        json(&lines[1])["error"]
            .as_str()
            .unwrap()
            .contains("message reference")
    );
    let r = json(&lines[2]);
    assert_eq!(r["type"], "status_report");
    assert_eq!(r["to"], "+31628870634");
    assert_eq!(r["reference"], 0xD7);
    assert_eq!(r["status"], "delivered");
    assert_eq!(r["status_code"], 0);
    assert_eq!(r["timestamp"], "2011-01-11T17:59:15+01:00");
}

#[test]
fn decode_joins_parts_in_any_order() {
    let (_, parts, _) = pasarela(&[
        "pdu",
        "encode",
        "--to",
        "+5491123456789",
        "--text",
        SPANISH,
        "--ref",
        "9",
    ]);
    assert_eq!(parts.len(), 2);
    let (code, lines, _) = pasarela(&["pdu", "decode", "--tpdu", &parts[0], &parts[1]]);
    assert_eq!(code, 0);
    let first = json(&lines[0]);
    assert_eq!(first["type"], "submit");
    assert_eq!(first["to"], "+5491123456789");
    assert_eq!(first["encoding"], "ucs2");
    assert_eq!(
        first["concat"],
        serde_json::json!({"ref": 9, "total": 2, "seq": 1})
    );
    assert_eq!(first["reference"], 0);

    let (code, lines, _) = pasarela(&[
        "pdu", "decode", "--tpdu", "--join", &parts[1], &parts[1], &parts[0],
    ]);
    assert_eq!(code, 0);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let joined = json(&lines[0]);
    assert_eq!(joined["text"], SPANISH);
    assert_eq!(joined["parts"], 2);

    let (code, lines, _) = pasarela(&["pdu", "decode", "--tpdu", "--join", &parts[1]]);
    assert_eq!(code, 0);
    let partial = json(&lines[0]);
    assert_eq!(partial["incomplete"], true);
    assert_eq!(partial["missing"], serde_json::json!([1]));
}

#[test]
fn count_tells_the_admin_page_the_cost() {
    let (code, lines, _) = pasarela(&["pdu", "count", "--text", SPANISH]);
    assert_eq!(code, 0);
    let info = json(&lines[0]);
    assert_eq!(info["summary"], "2 SMS, UCS-2, 58 characters left");
    assert_eq!(info["encoding"], "ucs2");
}
