//! The modem simulator through a real pseudo-terminal: a blocking AT client opens the link as a
//! file, the way the driver and Gammu do, while the control API is driven over HTTP.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pasarela::modem::sim::{self, ConfigPatch, Fault, SimHandle, SimOptions};
use pasarela::sms::{self, DecodedPdu, SubmitOptions, hex};

/// A blocking serial client with a 100 ms read timeout.
struct Port {
    file: File,
    pending: Vec<u8>,
}

impl Port {
    fn open(path: &Path) -> Port {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
        let fd = file.as_raw_fd();
        // SAFETY: fd is an open terminal; termios is plain data filled by tcgetattr.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            assert_eq!(libc::tcgetattr(fd, &mut t), 0);
            libc::cfmakeraw(&mut t);
            t.c_cc[libc::VMIN] = 0;
            t.c_cc[libc::VTIME] = 1;
            assert_eq!(libc::tcsetattr(fd, libc::TCSANOW, &t), 0);
        }
        Port {
            file,
            pending: Vec::new(),
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.file.write_all(bytes).unwrap();
    }

    /// Reads until the text so far contains one of `ends`; returns it all and forgets it.
    fn read_until(&mut self, ends: &[&str], within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let text = String::from_utf8_lossy(&self.pending).into_owned();
            if ends.iter().any(|e| text.contains(e)) {
                self.pending.clear();
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {ends:?}; got {text:?}"
            );
            let mut buf = [0u8; 1024];
            match self.file.read(&mut buf) {
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                Err(e) => panic!("read: {e}"),
            }
        }
    }

    /// Everything that arrives within `window`.
    fn read_for(&mut self, window: Duration) -> String {
        let deadline = Instant::now() + window;
        while Instant::now() < deadline {
            let mut buf = [0u8; 1024];
            if let Ok(n) = self.file.read(&mut buf) {
                self.pending.extend_from_slice(&buf[..n]);
            }
        }
        String::from_utf8_lossy(&std::mem::take(&mut self.pending)).into_owned()
    }

    fn cmd(&mut self, command: &str) -> String {
        self.send(format!("{command}\r").as_bytes());
        self.read_until(&["\r\nOK\r\n", "ERROR"], Duration::from_secs(5))
    }

    /// `AT+CMGS` for one part; returns the final response.
    fn submit(&mut self, part: &sms::SubmitPart) -> String {
        self.send(format!("AT+CMGS={}\r", part.length).as_bytes());
        self.read_until(&["> "], Duration::from_secs(5));
        self.send(format!("{}\x1a", part.hex_with_default_smsc()).as_bytes());
        self.read_until(&["\r\nOK\r\n", "ERROR"], Duration::from_secs(5))
    }
}

/// The PDU lines of a `+CMGR`/`+CMGL`/`+CDS` response, decoded.
fn pdus(response: &str) -> Vec<DecodedPdu> {
    response
        .split("\r\n")
        .filter(|l| l.len() > 20 && l.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(|l| sms::decode_pdu(&hex::decode(l).unwrap(), true).unwrap())
        .collect()
}

async fn start(dir: &Path, http: bool) -> SimHandle {
    let mut opts = SimOptions::new(dir.join("modem"));
    if http {
        opts.control = Some("127.0.0.1:0".parse().unwrap());
    }
    sim::start(opts).await.unwrap()
}

fn wait_for(what: &str, within: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identify_receive_and_send_through_the_pty_and_http() {
    let dir = tempfile::tempdir().unwrap();
    let handle = start(dir.path(), true).await;
    let base = format!("http://{}", handle.control_addr().unwrap());
    assert_ne!(handle.control_addr().unwrap().port(), 0);
    let http = reqwest::Client::new();
    let mut port = Port::open(handle.link());

    assert_eq!(port.cmd("ATE0"), "ATE0\r\r\nOK\r\n");
    assert!(port.cmd("AT+CGMI").contains("Pasarela"));
    let imei = port.cmd("AT+CGSN");
    assert!(
        imei.split("\r\n")
            .any(|l| l.len() == 15 && l.bytes().all(|b| b.is_ascii_digit()))
    );
    assert!(port.cmd("AT+CIMI").contains("\r\n722"));
    assert!(port.cmd("AT+CPIN?").contains("+CPIN: READY"));
    assert_eq!(port.cmd("AT+CNMI=2,1,0,2,0"), "\r\nOK\r\n");

    // Inbound short message: +CMTI, read, delete.
    let r: serde_json::Value = http
        .post(format!("{base}/inbound"))
        .json(&serde_json::json!({"from": "+5491123456789", "text": "Hola, ¿cómo andás?"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["parts"], 1);
    port.read_until(&["+CMTI: \"SM\",1\r\n"], Duration::from_secs(5));
    let read = port.cmd("AT+CMGR=1");
    let Some([DecodedPdu::Deliver(d)]) = <[DecodedPdu; 1]>::try_from(pdus(&read)).ok() else {
        panic!("{read:?}")
    };
    assert_eq!(d.from.value, "+5491123456789");
    assert_eq!(d.user_data.text(), "Hola, ¿cómo andás?");
    assert_eq!(port.cmd("AT+CMGD=1"), "\r\nOK\r\n");
    assert_eq!(port.cmd("AT+CMGR=1"), "\r\n+CMS ERROR: 321\r\n");

    // Three-part UCS-2 message from an alphanumeric sender.
    let long = "Estimado cliente: su factura de marzo está disponible. Podrá abonarla en línea \
                o en nuestras oficinas. Ante cualquier duda comuníquese con atención al cliente.";
    let r: serde_json::Value = http
        .post(format!("{base}/inbound"))
        .json(&serde_json::json!({"from": "Personal", "text": long}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["parts"], 3);
    port.read_until(&["+CMTI: \"SM\",3\r\n"], Duration::from_secs(5));
    let listing = port.cmd("AT+CMGL=4");
    let parts: Vec<sms::Deliver> = pdus(&listing)
        .into_iter()
        .map(|p| match p {
            DecodedPdu::Deliver(d) => d,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(parts.len(), 3);
    assert!(parts.iter().all(|d| d.from.value == "Personal"));
    assert_eq!(
        sms::join_text(parts.iter().map(|d| Some(&d.user_data))),
        long
    );
    let sim_view: serde_json::Value = http
        .get(format!("{base}/sim"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(sim_view["used"], 3);
    assert_eq!(sim_view["messages"][0]["stat"], 1);

    // Sending: three parts from the codec come back joined in GET /sent.
    let text = "Aviso de corte programado: el martes de 9 a 13 hs. habrá tareas de mantenimiento \
                en su zona. ¿Dudas? Responda AYUDA. Gracias por su paciencia, atención al cliente.";
    let submit = sms::encode_submit("+5491123456789", text, &SubmitOptions::default()).unwrap();
    assert_eq!(submit.len(), 3);
    for (i, part) in submit.iter().enumerate() {
        assert_eq!(port.submit(part), format!("\r\n+CMGS: {i}\r\n\r\nOK\r\n"));
    }
    let sent: serde_json::Value = http
        .get(format!("{base}/sent"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(sent.as_array().unwrap().len(), 1);
    assert_eq!(sent[0]["text"], text);
    assert_eq!(sent[0]["parts"], 3);
    assert_eq!(sent[0]["to"], "+5491123456789");
    assert_eq!(sent[0]["pdus"][2], submit[2].hex_with_default_smsc());
    let cleared = http.delete(format!("{base}/sent")).send().await.unwrap();
    assert!(cleared.status().is_success());
    assert!(handle.sent().is_empty());

    // Bad requests are 400s that name the field.
    for (path, body, field) in [
        ("inbound", r#"{"from": 5, "text": "x"}"#, "from"),
        (
            "inbound",
            r#"{"from": "Remitente demasiado largo", "text": "x"}"#,
            "from",
        ),
        ("inbound", r#"{"text": "x"#, "text"),
        ("config", r#"{"rssi": 77}"#, "rssi"),
        ("config", r#"{"capacity": "many"}"#, "capacity"),
        (
            "fault",
            r#"{"kind": "cms_error", "code": 500, "probability": 3}"#,
            "probability",
        ),
    ] {
        let r = http
            .post(format!("{base}/{path}"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{body}");
        let err: serde_json::Value = r.json().await.unwrap();
        assert_eq!(err["field"], field, "{body}: {err}");
    }

    handle.shutdown().await;
    assert!(std::fs::symlink_metadata(dir.path().join("modem")).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_cms_errors_and_hangs() {
    let dir = tempfile::tempdir().unwrap();
    let handle = start(dir.path(), false).await;
    assert_eq!(handle.control_addr(), None);
    let mut port = Port::open(handle.link());
    port.cmd("ATE0");
    port.cmd("AT+CNMI=2,1,0,1,0");
    handle
        .set_config(ConfigPatch {
            status_report_delay_ms: Some(Some(300)),
            ..Default::default()
        })
        .unwrap();

    let opts = SubmitOptions {
        status_report: true,
        ..SubmitOptions::default()
    };
    let part = &sms::encode_submit("+5491123456789", "con acuse", &opts).unwrap()[0];
    assert_eq!(port.submit(part), "\r\n+CMGS: 0\r\n\r\nOK\r\n");
    let cds = port.read_until(&["+CDS: "], Duration::from_secs(5));
    let cds = cds + &port.read_for(Duration::from_millis(300));
    let Some([DecodedPdu::StatusReport(report)]) = <[DecodedPdu; 1]>::try_from(pdus(&cds)).ok()
    else {
        panic!("{cds:?}")
    };
    assert_eq!(report.message_reference, 0);
    assert_eq!(report.recipient.value, "+5491123456789");

    handle
        .fault(&Fault::CmsError {
            code: 500,
            probability: 1.0,
        })
        .unwrap();
    assert_eq!(port.submit(part), "\r\n+CMS ERROR: 500\r\n");
    handle.fault(&Fault::Clear).unwrap();
    assert_eq!(port.submit(part), "\r\n+CMGS: 1\r\n\r\nOK\r\n");

    handle.fault(&Fault::Hang { secs: 1.0 }).unwrap();
    let started = Instant::now();
    port.send(b"AT\r");
    assert_eq!(port.read_for(Duration::from_millis(600)), "");
    wait_for("the hang to end", Duration::from_secs(3), || {
        started.elapsed() > Duration::from_millis(1100)
    });
    // The report for TP-MR 1 fell due during the hang: it was held, not lost.
    let after = port.cmd("AT");
    assert!(after.starts_with("\r\n+CDS: "), "{after:?}");
    assert!(after.ends_with("\r\nOK\r\n"), "{after:?}");
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unplug_removes_the_link_and_a_new_pty_comes_back_with_the_sim_intact() {
    let dir = tempfile::tempdir().unwrap();
    let handle = start(dir.path(), false).await;
    let link: PathBuf = handle.link().to_path_buf();
    let before = std::fs::read_link(&link).unwrap();
    let mut old = Port::open(&link);
    old.cmd("ATE0");
    handle.inbound("+5491123456789", "sigue acá").unwrap();

    // Unplugged long enough for a loaded machine to look while the link is gone.
    handle.fault(&Fault::Unplug { secs: 3.0 }).unwrap();
    wait_for("the link to go", Duration::from_secs(3), || {
        std::fs::symlink_metadata(&link).is_err()
    });
    assert_eq!(handle.device(), None);
    let mut buf = [0u8; 16];
    assert!(
        matches!(old.file.read(&mut buf), Ok(0) | Err(_)),
        "the old port is dead"
    );
    wait_for("the link to return", Duration::from_secs(10), || {
        std::fs::read_link(&link).is_ok()
    });
    let after = std::fs::read_link(&link).unwrap();
    assert_ne!(before, after);
    assert_eq!(handle.device(), Some(after));

    // A power cycle: echo is back on; the SIM kept its message.
    let mut port = Port::open(&link);
    assert_eq!(port.cmd("AT"), "AT\r\r\nOK\r\n");
    port.cmd("ATE0");
    let listing = port.cmd("AT+CMGL=4");
    let Some([DecodedPdu::Deliver(d)]) = <[DecodedPdu; 1]>::try_from(pdus(&listing)).ok() else {
        panic!("{listing:?}")
    };
    assert_eq!(d.user_data.text(), "sigue acá");
    handle.shutdown().await;
    assert!(std::fs::symlink_metadata(&link).is_err());
}
