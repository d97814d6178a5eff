//! Logging destinations: the journal's native protocol on a datagram socket (structured
//! fields), and the stderr fallback when no journal socket is there.

mod common;

use std::collections::HashMap;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use common::{Daemon, TOKEN, api};
use reqwest::Method;
use serde_json::json;

/// Parses one datagram of the journal native protocol into its fields (a field may repeat).
fn parse_native(mut buf: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut fields = Vec::new();
    while !buf.is_empty() {
        let nl = buf
            .iter()
            .position(|b| *b == b'\n')
            .expect("field ends with a newline");
        let line = &buf[..nl];
        if let Some(eq) = line.iter().position(|b| *b == b'=') {
            fields.push((
                String::from_utf8(line[..eq].to_vec()).unwrap(),
                line[eq + 1..].to_vec(),
            ));
            buf = &buf[nl + 1..];
        } else {
            let name = String::from_utf8(line.to_vec()).unwrap();
            let rest = &buf[nl + 1..];
            let len = u64::from_le_bytes(rest[..8].try_into().unwrap()) as usize;
            fields.push((name, rest[8..8 + len].to_vec()));
            assert_eq!(rest[8 + len], b'\n');
            buf = &rest[8 + len + 1..];
        }
    }
    fields
}

#[tokio::test(flavor = "multi_thread")]
async fn structured_fields_reach_the_journal_socket() {
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("journal.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let d = Daemon::start_full(
        dir.path(),
        "log_level = \"debug\"",
        &format!("token = \"{TOKEN}\""),
        &[("PASARELA_JOURNAL_SOCKET", sock_path.to_str().unwrap())],
    );
    let (code, body) = api(
        Method::POST,
        format!("{}/api/messages", d.base),
        Some(json!({"to": "+5491123456789", "text": "hola"})),
    )
    .await;
    assert_eq!(code, 202);
    let id = body["id"].as_i64().unwrap().to_string();

    let mut buf = vec![0u8; 65536];
    let mut ready_seen = false;
    let mut tagged: Option<HashMap<String, String>> = None;
    while !(ready_seen && tagged.is_some()) {
        let n = sock.recv(&mut buf).expect("a journal datagram");
        let fields: HashMap<String, String> = parse_native(&buf[..n])
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8_lossy(&v).to_string()))
            .collect();
        assert_eq!(fields["SYSLOG_IDENTIFIER"], "pasarela");
        assert!(fields.contains_key("PRIORITY"));
        if fields["MESSAGE"].contains("ready: admin API") {
            ready_seen = true;
            assert_eq!(fields["PRIORITY"], "6");
        }
        if fields.get("PASARELA_MSG_ID") == Some(&id) {
            tagged = Some(fields);
        }
    }
    let f = tagged.unwrap();
    assert!(f["MESSAGE"].contains("queued by the API"), "{f:?}");
    assert_eq!(f["PRIORITY"], "7");
    // Nothing went to stderr while the journal took the logs.
    assert!(d.stderr_text().is_empty(), "{}", d.stderr_text());
}

#[test]
fn multiline_values_use_the_length_form() {
    let mut buf = Vec::new();
    pasarela::logging::put_field(&mut buf, "MESSAGE", b"line one\nline two");
    pasarela::logging::put_field(&mut buf, "PASARELA_MSG_ID", b"7");
    let fields = parse_native(&buf);
    assert_eq!(
        fields[0],
        ("MESSAGE".to_string(), b"line one\nline two".to_vec())
    );
    assert_eq!(fields[1], ("PASARELA_MSG_ID".to_string(), b"7".to_vec()));
}

#[test]
fn no_journal_socket_falls_back_to_stderr_with_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::start(dir.path());
    d.signal("TERM");
    d.wait_exit(Duration::from_secs(30));
    let text = d.stderr_text();
    let ready = text
        .lines()
        .find(|l| l.contains("ready: admin API"))
        .unwrap_or_else(|| panic!("{text}"));
    // 2026-11-22T02:40:00.123Z INFO  pasarela ... ready
    let ts = ready.split(' ').next().unwrap();
    assert!(chrono::DateTime::parse_from_rfc3339(ts).is_ok(), "{ready}");
    assert!(ready.contains(" INFO "), "{ready}");
}
