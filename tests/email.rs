//! The `[[email]]` accounts end to end: the real binary against a real SMTP server (aiosmtpd,
//! `tests/common/smtpd.py`) with STARTTLS or implicit TLS from a test CA, AUTH, and faults.
//! aiosmtpd comes from PyPI, so these tests are ignored in plain `cargo test`;
//! `.ci/tiers/70-email.sh` installs it and runs them with `PASARELA_SMTPD_PYTHON` set.

mod common;
#[path = "common/fake_phone.rs"]
mod fake_phone;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use base64::Engine;
use common::{Daemon, TOKEN, api, wait_for};
use reqwest::Method;
use serde_json::{Value, json};

/// A running aiosmtpd; killed on drop.
struct Smtpd {
    child: Child,
    port: u16,
    maildir: tempfile::TempDir,
}

impl Smtpd {
    fn start(args: &[&str]) -> Smtpd {
        let python =
            std::env::var("PASARELA_SMTPD_PYTHON").unwrap_or_else(|_| "python3".to_string());
        let maildir = tempfile::tempdir().unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/common/smtpd.py");
        let mut child = Command::new(python)
            .arg(script)
            .arg("--maildir")
            .arg(maildir.path())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python with aiosmtpd (see .ci/tiers/70-email.sh)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .unwrap_or_else(|| panic!("smtpd said {line:?}"))
            .parse()
            .unwrap();
        Smtpd {
            child,
            port,
            maildir,
        }
    }

    /// The mails accepted so far, in order.
    fn mails(&self) -> Vec<Value> {
        let mut out = Vec::new();
        for n in 1.. {
            let p = self.maildir.path().join(format!("{n}.json"));
            match std::fs::read_to_string(&p) {
                Ok(t) => out.push(serde_json::from_str(&t).unwrap()),
                Err(_) => break,
            }
        }
        out
    }
}

impl Drop for Smtpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A test CA and a server certificate for 127.0.0.1: (CA file, cert file, key file).
fn test_ca(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Fibra Sur test CA");
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca = params.self_signed(&ca_key).unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "smtp");
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    let (a, c, k) = (
        dir.join("ca.pem"),
        dir.join("smtp.crt"),
        dir.join("smtp.key"),
    );
    std::fs::write(&a, ca.pem()).unwrap();
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    (a, c, k)
}

fn daemon(dir: &Path, accounts: &str) -> Daemon {
    let conf = format!(
        "token = \"{TOKEN}\"\n[dispatch]\nretry_base_secs = 1\nretry_max_secs = 1\n{accounts}"
    );
    tokio::task::block_in_place(|| Daemon::start_full(dir, "", &conf, &[]))
}

fn account(name: &str, port: u16, extra: &str) -> String {
    format!(
        "[[email]]\nname = \"{name}\"\nareas = [\"todo\"]\n\
         from = \"Facturación Fibra Sur <facturas@fibrasur.com.ar>\"\n\
         host = \"127.0.0.1\"\nport = {port}\ntest_to = \"admin@fibrasur.com.ar\"\n{extra}\n"
    )
}

async fn queue(d: &Daemon, body: Value) -> i64 {
    let (status, answer) = api(Method::POST, format!("{}/api/messages", d.base), Some(body)).await;
    assert_eq!(status, 202, "{answer}");
    answer["id"].as_i64().unwrap()
}

async fn message(d: &Daemon, id: i64) -> Value {
    api(Method::GET, format!("{}/api/messages/{id}", d.base), None)
        .await
        .1
}

fn mail(to: &str, text: &str) -> Value {
    json!({"channel": "email", "to": to, "subject": "Aviso", "text": text})
}

const PDF: &[u8] =
    b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n\x00\x01\x02\xff\xfe binary\n%%EOF\n";

async fn serve_files() -> String {
    let router = Router::new()
        .route(
            "/factura.pdf",
            get(|| async { ([("content-type", "application/pdf")], PDF) }),
        )
        .route(
            "/login",
            get(|| async { ([("content-type", "text/html")], "<html>login</html>") }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs aiosmtpd from PyPI: .ci/tiers/70-email.sh"]
async fn starttls_with_auth_delivers_html_with_text_and_the_pdf_intact() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = test_ca(dir.path());
    let smtp = Smtpd::start(&[
        "--mode",
        "starttls",
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
        "--auth",
        "facturas:s3creta",
    ]);
    let extra = format!(
        "security = \"starttls\"\nusername = \"facturas\"\npassword = \"s3creta\"\nca_file = \"{}\"",
        ca.display()
    );
    let d = daemon(dir.path(), &account("facturas", smtp.port, &extra));
    let files = serve_files().await;
    let subject = "Factura N° 0001-00001234 — vence 10/12";
    let id = queue(
        &d,
        json!({
            "channel": "email", "to": "Ana Pérez <ana@example.com>", "area": "facturas",
            "subject": subject, "text": "Su factura está adjunta.",
            "html": "<p>Su factura está <b>adjunta</b>.</p>",
            "attachments": [{"url": format!("{files}/factura.pdf")}]
        }),
    )
    .await;
    wait_for("the mail sent", 30, async || {
        message(&d, id).await["state"] == "sent"
    })
    .await;
    let m = &smtp.mails()[0];
    assert_eq!(m["subject"], subject);
    assert!(
        m["raw_subject"].as_str().unwrap().contains("=?utf-8?b?"),
        "{m}"
    );
    assert_eq!(
        m["from"],
        "Facturación Fibra Sur <facturas@fibrasur.com.ar>"
    );
    assert_eq!(m["rcpt_tos"], json!(["ana@example.com"]));
    assert_eq!(m["tls"], true);
    assert_eq!(m["auth"], "facturas");
    let view = message(&d, id).await;
    assert_eq!(m["message_id"], view["provider_ref"], "{view}");
    assert_eq!(
        m["message_id"],
        format!("<{id}.facturas.pasarela@fibrasur.com.ar>")
    );
    assert_eq!(
        m["tree"],
        json!({"type": "multipart/mixed", "parts": [
            {"type": "multipart/alternative", "parts": [
                {"type": "text/plain", "filename": null},
                {"type": "text/html", "filename": null}]},
            {"type": "application/pdf", "filename": "factura.pdf"}]})
    );
    assert_eq!(
        m["text"].as_str().unwrap().trim(),
        "Su factura está adjunta."
    );
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(m["attachments"][0]["base64"].as_str().unwrap())
        .unwrap();
    assert_eq!(bytes, PDF);
    // History shows the mail like any message.
    assert_eq!(view["text"], "Su factura está adjunta.");
    assert_eq!(view["email"]["subject"], subject);
    assert_eq!(view["email"]["account"], "facturas");
    assert_eq!(
        view["email"]["attachments"][0],
        json!({"filename": "factura.pdf", "content_type": "application/pdf", "size": PDF.len()})
    );

    // The test send answers with the server's reply.
    let (status, body) = api(
        Method::POST,
        format!("{}/api/email/test", d.base),
        Some(json!({"account": "facturas"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ok"], true);
    assert!(body["smtp"].as_str().unwrap().starts_with("250"), "{body}");
    let test = &smtp.mails()[1];
    assert_eq!(test["rcpt_tos"], json!(["admin@fibrasur.com.ar"]));
    assert!(test["subject"].as_str().unwrap().starts_with("Prueba"));

    // Bad input is refused naming the field, and nothing is queued.
    for (body, field) in [
        (mail("ana at example", "x"), "to"),
        (
            json!({"channel": "email", "to": "ana@example.com", "subject": "s", "text": "t",
                   "attachments": [{"url": format!("{files}/login")}]}),
            "attachments[0].url",
        ),
        (
            json!({"channel": "email", "to": "ana@example.com", "subject": "s", "text": "t",
                   "attachments": [{"filename": "f.pdf", "content_type": "application/pdf",
                                    "base64": "aGVsbG8="}]}),
            "attachments[0].base64",
        ),
    ] {
        let (status, answer) =
            api(Method::POST, format!("{}/api/messages", d.base), Some(body)).await;
        assert_eq!(status, 400, "{answer}");
        assert_eq!(answer["error"]["field"], field, "{answer}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs aiosmtpd from PyPI: .ci/tiers/70-email.sh"]
async fn implicit_tls_delivers() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = test_ca(dir.path());
    let smtp = Smtpd::start(&[
        "--mode",
        "tls",
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ]);
    let extra = format!("security = \"tls\"\nca_file = \"{}\"", ca.display());
    let d = daemon(dir.path(), &account("general", smtp.port, &extra));
    let id = queue(&d, mail("ana@example.com", "hola")).await;
    wait_for("the mail sent", 30, async || {
        message(&d, id).await["state"] == "sent"
    })
    .await;
    assert_eq!(smtp.mails()[0]["tls"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs aiosmtpd from PyPI: .ci/tiers/70-email.sh"]
async fn a_421_is_retried_and_delivered_once_a_550_fails_with_its_text() {
    let dir = tempfile::tempdir().unwrap();
    let smtp = Smtpd::start(&["--fail-count", "1"]);
    let extra = "security = \"none\"\nallow_plain = true";
    let d = daemon(dir.path(), &account("general", smtp.port, extra));
    let retried = queue(&d, mail("ana@example.com", "uno")).await;
    wait_for("the mail sent", 30, async || {
        message(&d, retried).await["state"] == "sent"
    })
    .await;
    let m = message(&d, retried).await;
    assert_eq!(m["attempts"], 2, "{m}");
    assert_eq!(smtp.mails().len(), 1);
    let refused = queue(&d, mail("nobody@example.com", "dos")).await;
    wait_for("the mail failed", 30, async || {
        message(&d, refused).await["state"] == "failed"
    })
    .await;
    let m = message(&d, refused).await;
    let why = m["last_error"].as_str().unwrap();
    assert!(
        why.contains("550") && why.contains("mailbox unavailable"),
        "{m}"
    );
    assert_eq!(m["attempts"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs aiosmtpd from PyPI: .ci/tiers/70-email.sh"]
async fn a_connection_dropped_after_data_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    let smtp = Smtpd::start(&["--drop", "1"]);
    let extra = "security = \"none\"\nallow_plain = true";
    let d = daemon(dir.path(), &account("general", smtp.port, extra));
    let id = queue(&d, mail("ana@example.com", "uno")).await;
    wait_for("the mail sent", 60, async || {
        message(&d, id).await["state"] == "sent"
    })
    .await;
    assert_eq!(smtp.mails().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs aiosmtpd from PyPI: .ci/tiers/70-email.sh"]
async fn starttls_missing_never_falls_back_to_plain_and_a_wrong_password_waits() {
    let dir = tempfile::tempdir().unwrap();
    let smtp = Smtpd::start(&[]);
    let d = daemon(
        dir.path(),
        &account("general", smtp.port, "security = \"starttls\""),
    );
    let id = queue(&d, mail("ana@example.com", "secreto")).await;
    wait_for("a failed attempt", 30, async || {
        message(&d, id).await["last_error"].is_string()
    })
    .await;
    let m = message(&d, id).await;
    assert_ne!(m["state"], "sent");
    assert!(
        m["last_error"]
            .as_str()
            .unwrap()
            .contains("never sent in plain text"),
        "{m}"
    );
    let (status, body) = api(
        Method::POST,
        format!("{}/api/email/test", d.base),
        Some(json!({"account": "general", "to": "ops@example.com"})),
    )
    .await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["ok"], false);
    assert!(smtp.mails().is_empty());
    drop(d);

    // A wrong password: the account goes down, the mail waits.
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = test_ca(dir.path());
    let smtp = Smtpd::start(&[
        "--mode",
        "starttls",
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
        "--auth",
        "facturas:s3creta",
    ]);
    let extra = format!(
        "username = \"facturas\"\npassword = \"wrong\"\nca_file = \"{}\"",
        ca.display()
    );
    let d = daemon(dir.path(), &account("facturas", smtp.port, &extra));
    let id = queue(&d, mail("ana@example.com", "hola")).await;
    wait_for("a failed attempt", 30, async || {
        message(&d, id).await["last_error"].is_string()
    })
    .await;
    let m = message(&d, id).await;
    assert_eq!(m["state"], "queued", "{m}");
    assert!(
        m["last_error"]
            .as_str()
            .unwrap()
            .contains("authentication failed (535)"),
        "{m}"
    );
    assert!(smtp.mails().is_empty());
    // The account stays down until a login succeeds, so the mail spends no more attempts.
    let status = api(Method::GET, format!("{}/api/status", d.base), None)
        .await
        .1;
    let acc = &status["transports"][0];
    assert_eq!(
        (acc["name"].as_str(), acc["up"].as_bool()),
        (Some("facturas"), Some(false))
    );
    assert!(acc["detail"].as_str().unwrap().contains("535"), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs aiosmtpd from PyPI: .ci/tiers/70-email.sh"]
async fn mails_over_the_rate_limit_wait_in_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let smtp = Smtpd::start(&[]);
    let extra = "security = \"none\"\nallow_plain = true\nrate_limit = \"2/1h\"";
    let d = daemon(dir.path(), &account("general", smtp.port, extra));
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(queue(&d, mail("ana@example.com", &format!("n{n}"))).await);
    }
    // The server stores a mail before it answers 250, so the daemon may not have marked the
    // second one sent yet when its file appears: wait on the states, then count the mails.
    let states = async || {
        let mut states = Vec::new();
        for id in &ids {
            states.push(message(&d, *id).await["state"].clone());
        }
        states.sort_by_key(|s| s.to_string());
        states
    };
    wait_for("two mails sent, one waiting", 30, async || {
        states().await == vec![json!("queued"), json!("sent"), json!("sent")]
    })
    .await;
    assert_eq!(smtp.mails().len(), 2);
    // And the third stays queued (the limit is two an hour).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        states().await,
        vec![json!("queued"), json!("sent"), json!("sent")]
    );
    assert_eq!(smtp.mails().len(), 2);
}

/// The events wiring's one call: an invoice notice with its PDF fetched and checked; a URL
/// answering HTML is refused with the reason. Needs no SMTP server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invoice_notice_carries_its_pdf_and_a_login_page_is_refused() {
    use pasarela::config::Language;
    use pasarela::model::Content;
    use pasarela::rules::template::Vars;
    use pasarela::transport::email::notice::{DocKind, notice_mail};

    let files = serve_files().await;
    let mut vars = Vars::new();
    vars.set("nombre", "Ana Pérez")
        .set("numero", "0001-00001234")
        .set("vencimiento", "10/12")
        .set("empresa", "Fibra Sur");
    let url = format!("{files}/factura.pdf");
    let Content::Email(m) = notice_mail(DocKind::Invoice, &vars, Language::Es, None, Some(&url))
        .await
        .unwrap()
    else {
        panic!("not a mail")
    };
    assert_eq!(m.subject, "Factura N° 0001-00001234 — vence 10/12");
    assert!(m.text.contains("Ana Pérez") && m.html.as_deref().unwrap().contains("<b>0001"));
    assert_eq!(m.attachments.len(), 1);
    assert_eq!(m.attachments[0].bytes, PDF);
    assert_eq!(m.attachments[0].filename, "factura.pdf");
    let err = notice_mail(
        DocKind::Invoice,
        &vars,
        Language::Es,
        None,
        Some(&format!("{files}/login")),
    )
    .await
    .unwrap_err();
    assert!(
        err.contains("text/html") && err.contains("not a PDF"),
        "{err}"
    );
    let err = pasarela::transport::email::api::fetch_attachment(&url, 16)
        .await
        .unwrap_err();
    assert!(err.contains("larger than 16 bytes"), "{err}");
}

/// Each mail goes through its area's account (the `todo` account for the rest), and only that
/// account's route takes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs aiosmtpd from PyPI: .ci/tiers/70-email.sh"]
async fn the_area_picks_the_account_falling_back_to_todo() {
    let dir = tempfile::tempdir().unwrap();
    let facturas = Smtpd::start(&[]);
    let general = Smtpd::start(&[]);
    let plain = "security = \"none\"\nallow_plain = true";
    let accounts = format!(
        "{}{}",
        account("facturas", facturas.port, plain).replace("[\"todo\"]", "[\"facturas\"]"),
        account("general", general.port, plain)
    );
    let d = daemon(dir.path(), &accounts);
    let mut ids = Vec::new();
    for (n, area) in ["facturas", "tickets", "facturas", "clientes"]
        .iter()
        .enumerate()
    {
        let mut body = mail("ana@example.com", &format!("{area} {n}"));
        body["area"] = json!(area);
        ids.push(queue(&d, body).await);
    }
    wait_for("four mails", 30, async || {
        facturas.mails().len() + general.mails().len() == 4
    })
    .await;
    let texts = |s: &Smtpd| -> Vec<String> {
        s.mails()
            .iter()
            .map(|m| m["text"].as_str().unwrap().trim().to_string())
            .collect()
    };
    let mut f = texts(&facturas);
    f.sort();
    let mut g = texts(&general);
    g.sort();
    assert_eq!(f, ["facturas 0", "facturas 2"]);
    assert_eq!(g, ["clientes 3", "tickets 1"]);
    for id in &ids {
        let m = message(&d, *id).await;
        assert_eq!(m["transport"], m["email"]["account"], "{m}");
    }
}

/// STARTTLS offered but failing (a certificate from a CA the account does not trust): the
/// mail is never sent in plain text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs aiosmtpd from PyPI: .ci/tiers/70-email.sh"]
async fn a_failing_starttls_never_falls_back_to_plain() {
    let dir = tempfile::tempdir().unwrap();
    let (_ca, cert, key) = test_ca(dir.path());
    let smtp = Smtpd::start(&[
        "--mode",
        "starttls",
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ]);
    let d = daemon(
        dir.path(),
        &account("general", smtp.port, "security = \"starttls\""),
    );
    let id = queue(&d, mail("ana@example.com", "secreto")).await;
    wait_for("a failed attempt", 30, async || {
        message(&d, id).await["last_error"].is_string()
    })
    .await;
    let m = message(&d, id).await;
    assert_ne!(m["state"], "sent");
    assert!(
        m["last_error"]
            .as_str()
            .unwrap()
            .contains("never sent in plain text"),
        "{m}"
    );
    assert!(smtp.mails().is_empty());
}

/// `[events.invoice] channels = ["email", "sms"]`: the invoice mail goes from the `facturas`
/// account with the PDF attached byte for byte; a mailbox the server refuses (550) falls back
/// to the SMS text through the Android phone; a customer without an address skips email.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs aiosmtpd from PyPI: .ci/tiers/70-email.sh"]
async fn an_invoice_event_is_mailed_with_its_pdf_and_a_refused_mailbox_falls_back_to_sms() {
    let dir = tempfile::tempdir().unwrap();
    let smtp = Smtpd::start(&[]);
    let phone = fake_phone::FakePhone::start().await;
    let files = serve_files().await;
    let conf = format!(
        "{}[[android]]\nname = \"phone1\"\nurl = \"{}\"\npassword = \"{}\"\n\
         health_interval_secs = 1\nrequest_timeout_secs = 2\n\
         [company]\nname = \"Fibra Sur\"\n\
         [events.invoice]\nchannels = [\"email\", \"sms\"]\n\
         sms_text = \"Hola %nombre%, su factura %numero% de %monto% vence el %vencimiento%.\"\n",
        account(
            "facturas",
            smtp.port,
            "security = \"none\"\nallow_plain = true"
        ),
        phone.url(),
        fake_phone::PASSWORD
    );
    let d = daemon(dir.path(), &conf);
    let (status, body) = api(
        Method::POST,
        format!("{}/api/customers", d.base),
        Some(json!([
            {"code": "C-1", "name": "Ana Pérez", "phone": "+5491123456789", "email": "ana@example.com"},
            {"code": "C-2", "name": "Juan Gómez", "phone": "+5491143210000", "email": "nobody@example.com"},
            {"code": "C-3", "name": "Eva Ruiz", "phone": "+5491155550000"}
        ])),
    )
    .await;
    assert!((200..300).contains(&status), "{status} {body}");
    let invoice = |id: &str, customer: &str| {
        json!({"id": id, "type": "invoice", "customer": customer, "amount": "1234.50",
               "due": "2026-12-10", "number": "0001-00001234",
               "pdf_url": format!("{files}/factura.pdf")})
    };
    let mut results = Vec::new();
    for (id, customer) in [("inv-1", "C-1"), ("inv-2", "C-2"), ("inv-3", "C-3")] {
        let (status, answer) = api(
            Method::POST,
            format!("{}/api/events", d.base),
            Some(invoice(id, customer)),
        )
        .await;
        assert_eq!(status, 202, "{answer}");
        results.push(answer["result"].clone());
    }
    assert_eq!(results[0]["channels"], json!(["email", "sms"]));
    assert_eq!(results[0]["notice"]["channel"], "email");
    assert_eq!(results[2]["channels"], json!(["sms"]));
    assert_eq!(results[2]["skipped"][0]["channel"], "email");
    assert_eq!(
        results[2]["skipped"][0]["reason"],
        "the customer has no email address"
    );

    wait_for("Ana's mail", 30, async || !smtp.mails().is_empty()).await;
    wait_for(
        "the SMS of Juan (550) and Eva (no address)",
        60,
        async || phone.sent_texts().len() == 2,
    )
    .await;
    let mails = smtp.mails();
    assert_eq!(mails.len(), 1, "only Ana's mail was accepted");
    let m = &mails[0];
    assert_eq!(m["rcpt_tos"], json!(["ana@example.com"]));
    assert_eq!(m["subject"], "Factura N° 0001-00001234 — vence 10/12/2026");
    assert!(m["text"].as_str().unwrap().contains("Ana Pérez"), "{m}");
    assert!(m["text"].as_str().unwrap().contains("Fibra Sur"), "{m}");
    assert_eq!(m["attachments"].as_array().unwrap().len(), 1);
    let pdf = base64::engine::general_purpose::STANDARD
        .decode(m["attachments"][0]["base64"].as_str().unwrap())
        .unwrap();
    assert_eq!(pdf, PDF);
    let mut texts = phone.sent_texts();
    texts.sort();
    assert!(
        texts[0].starts_with("Hola Eva Ruiz, su factura 0001-00001234"),
        "{texts:?}"
    );
    assert!(
        texts[1].starts_with("Hola Juan Gómez, su factura 0001-00001234"),
        "{texts:?}"
    );
    // Ana's invoice went by mail only.
    assert!(texts.iter().all(|t| !t.contains("Ana")));
}

/// `pasarela doctor` connects to each `[[email]]` account with its TLS and logs in: the right
/// password is reported ok, a wrong one fails naming the server's 535.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs aiosmtpd from PyPI: .ci/tiers/70-email.sh"]
async fn doctor_logs_in_to_each_account() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = test_ca(dir.path());
    let smtp = Smtpd::start(&[
        "--mode",
        "starttls",
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
        "--auth",
        "facturas:s3creta",
    ]);
    let login = |password: &str| {
        format!(
            "security = \"starttls\"\nusername = \"facturas\"\npassword = \"{password}\"\nca_file = \"{}\"",
            ca.display()
        )
    };
    let accounts = format!(
        "token = \"{TOKEN}\"\n{}{}",
        account("facturas", smtp.port, &login("s3creta")).replace("[\"todo\"]", "[\"facturas\"]"),
        account("general", smtp.port, &login("wrong"))
    );
    std::fs::create_dir_all(dir.path().join("state")).unwrap();
    let config = common::write_config(dir.path(), common::free_port(), "", &accounts);
    let user = Command::new("id").arg("-un").output().unwrap();
    let out = Command::new(common::bin())
        .arg("doctor")
        .arg("--config")
        .arg(&config)
        .arg("--user")
        .arg(String::from_utf8(user.stdout).unwrap().trim())
        .env(
            pasarela::logging::JOURNAL_SOCKET_ENV,
            dir.path().join("no-journal"),
        )
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = |name: &str| {
        report
            .lines()
            .find(|l| l.contains(&format!("[[email]] {name} (")))
            .unwrap_or_else(|| panic!("no line for {name} in:\n{report}"))
            .to_string()
    };
    let good = line("facturas");
    assert!(
        good.starts_with("ok ") && good.contains("connected and logged in"),
        "{report}"
    );
    let bad = line("general");
    assert!(bad.starts_with("FAIL") && bad.contains("535"), "{report}");
    assert!(smtp.mails().is_empty(), "doctor sends no mail");
}

/// History of a mail: subject, account, the server's answer, attachments' names and sizes;
/// a resend of a sent mail queues a copy that the server receives whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs aiosmtpd from PyPI: .ci/tiers/70-email.sh"]
async fn history_shows_the_smtp_answer_and_a_resend_delivers_again() {
    let dir = tempfile::tempdir().unwrap();
    let smtp = Smtpd::start(&[]);
    let extra = "security = \"none\"\nallow_plain = true";
    let d = daemon(dir.path(), &account("general", smtp.port, extra));
    let b64 = base64::engine::general_purpose::STANDARD.encode(PDF);
    let id = queue(
        &d,
        json!({"channel": "email", "to": "ana@example.com", "subject": "Factura N° 0001-00001234",
               "text": "Adjuntamos su factura.",
               "attachments": [{"filename": "factura.pdf", "content_type": "application/pdf",
                                "base64": b64}]}),
    )
    .await;
    wait_for("the mail", 30, async || {
        message(&d, id).await["state"] == "sent"
    })
    .await;
    let m = message(&d, id).await;
    let email = &m["email"];
    assert_eq!(email["subject"], "Factura N° 0001-00001234", "{m}");
    assert_eq!(email["account"], "general");
    assert_eq!(email["attachments"][0]["filename"], "factura.pdf");
    assert_eq!(email["attachments"][0]["size"], PDF.len());
    let answer = email["smtp"].as_str().unwrap_or_default();
    assert!(answer.starts_with("250"), "{m}");

    let (status, copy) = api(
        Method::POST,
        format!("{}/api/messages/{id}/resend", d.base),
        None,
    )
    .await;
    assert_eq!(status, 202, "{copy}");
    let copy_id = copy["id"].as_i64().unwrap();
    assert_ne!(copy_id, id);
    wait_for("the copy", 30, async || smtp.mails().len() == 2).await;
    let mails = smtp.mails();
    for mail in &mails {
        let attached = mail["attachments"][0]["base64"]
            .as_str()
            .unwrap_or_default();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(attached)
            .unwrap_or_default();
        assert_eq!(bytes, PDF, "{mail}");
    }
    wait_for("the copy sent", 30, async || {
        message(&d, copy_id).await["state"] == "sent"
    })
    .await;
    let copy = message(&d, copy_id).await;
    assert_eq!(copy["email"]["subject"], "Factura N° 0001-00001234");
    assert!(
        copy["email"]["smtp"]
            .as_str()
            .unwrap_or("")
            .starts_with("250"),
        "{copy}"
    );
}

/// Email templates: the built-in ones (es-AR) until one is saved; a saved one is checked (an
/// unknown variable is a 400 naming it, and nothing is saved), used by the next invoice mail,
/// and dropped back to the built-in one. Needs no SMTP server (the mail waits in the queue).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_templates_are_checked_saved_and_used_by_the_next_invoice_mail() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let conf = format!(
        "{}[company]\nname = \"Fibra Sur\"\n[events.invoice]\nchannels = [\"email\"]\n",
        account("facturas", port, "security = \"none\"\nallow_plain = true"),
    );
    let d = daemon(dir.path(), &conf);
    let url = |kind: &str| format!("{}/api/email/templates/{kind}", d.base);

    let (status, list) = api(Method::GET, format!("{}/api/email/templates", d.base), None).await;
    assert_eq!(status, 200, "{list}");
    let kinds: Vec<&str> = list["templates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["invoice", "payment", "ticket_opened", "ticket_closed"]
    );
    assert_eq!(list["templates"][0]["source"], "default");
    assert_eq!(
        list["templates"][0]["subject"],
        "Factura N° %numero% — vence %vencimiento%"
    );

    let (status, err) = api(
        Method::PUT,
        url("invoice"),
        Some(
            json!({"subject": "Factura %numero%", "text": "Hola %nombre%",
                    "html": "<p>Total: %monto_total%</p>"}),
        ),
    )
    .await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["error"]["field"], "html", "{err}");
    assert!(err.to_string().contains("%monto_total%"), "{err}");
    let (_, still) = api(Method::GET, url("invoice"), None).await;
    assert_eq!(still["source"], "default");
    let (status, err) = api(Method::GET, url("receipt"), None).await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["error"]["field"], "kind", "{err}");

    let saved = json!({"subject": "Fibra Sur: factura %numero%",
                       "text": "Estimado/a %nombre%, su factura %numero% vence el %vencimiento%.",
                       "html": "<p>Estimado/a %nombre%</p>"});
    let (status, answer) = api(Method::PUT, url("invoice"), Some(saved.clone())).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["source"], "saved");
    assert_eq!(answer["subject"], saved["subject"]);

    let (status, body) = api(
        Method::POST,
        format!("{}/api/customers", d.base),
        Some(
            json!([{"code": "C-1", "name": "Ana Pérez", "phone": "+5491123456789",
                     "email": "ana@example.com"}]),
        ),
    )
    .await;
    assert!((200..300).contains(&status), "{status} {body}");
    let (status, answer) = api(
        Method::POST,
        format!("{}/api/events", d.base),
        Some(
            json!({"id": "inv-1", "type": "invoice", "customer": "C-1", "amount": "1234.50",
                    "due": "2026-12-10", "number": "0001-00001234"}),
        ),
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    let id = answer["result"]["notice"]["id"].as_i64().unwrap();
    let m = message(&d, id).await;
    assert_eq!(
        m["email"]["subject"], "Fibra Sur: factura 0001-00001234",
        "{m}"
    );
    assert_eq!(
        m["text"],
        "Estimado/a Ana Pérez, su factura 0001-00001234 vence el 10/12/2026."
    );

    let (status, back) = api(Method::DELETE, url("invoice"), None).await;
    assert_eq!(status, 200, "{back}");
    assert_eq!(back["source"], "default");
}

/// Ticket mails delivered: texting the support keyword (through the modem simulator) mails the
/// customer and `[email_notify] operator` the `ticket_opened` mail, and closing the ticket the
/// `ticket_closed` one, from the `todo` account, each with its text and HTML parts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs aiosmtpd from PyPI: .ci/tiers/70-email.sh"]
async fn ticket_mails_reach_the_customer_and_the_operator() {
    use pasarela::modem::sim::{self, SimOptions};

    let dir = tempfile::tempdir().unwrap();
    let smtp = Smtpd::start(&[]);
    let modem = sim::start(SimOptions::new(dir.path().join("modem")))
        .await
        .unwrap();
    let gw = common::gateway::Gateway::start(
        dir.path(),
        &format!(
            "[company]\nname = \"Fibra Sur\"\n[dispatch]\nretry_base_secs = 1\nretry_max_secs = 1\n\
             [email_notify]\noperator = \"soporte@fibrasur.com.ar\"\n{}",
            account(
                "soporte",
                smtp.port,
                "security = \"none\"\nallow_plain = true"
            ),
        ),
        modem.link(),
        "",
    )
    .await;
    let (status, body) = gw
        .call(
            Method::POST,
            "/api/customers",
            Some(
                json!([{"code": "C-1", "name": "Ana Pérez", "phone": "+5491123456789",
                         "email": "ana@example.com"}]),
            ),
        )
        .await;
    assert!((200..300).contains(&status), "{status} {body}");
    modem
        .inbound("+5491123456789", "soporte: sin internet")
        .unwrap();
    wait_for("the two ticket_opened mails", 30, async || {
        smtp.mails().len() >= 2
    })
    .await;
    let id = gw.get("/api/tickets").await["tickets"][0]["id"]
        .as_i64()
        .unwrap();
    let (status, t) = gw
        .call(Method::POST, &format!("/api/tickets/{id}/close"), None)
        .await;
    assert_eq!(status, 200, "{t}");
    wait_for("the two ticket_closed mails", 30, async || {
        smtp.mails().len() >= 4
    })
    .await;
    let mut mails = smtp.mails();
    mails.sort_by_key(|m| (m["subject"].to_string(), m["rcpt_tos"].to_string()));
    let got: Vec<(String, String)> = mails
        .iter()
        .map(|m| (m["rcpt_tos"][0].to_string(), m["subject"].to_string()))
        .collect();
    let opened = format!("\"Reclamo N° {id} recibido\"");
    let closed = format!("\"Reclamo N° {id} resuelto\"");
    let (ana, op) = (
        "\"ana@example.com\"".to_string(),
        "\"soporte@fibrasur.com.ar\"".to_string(),
    );
    assert_eq!(
        got,
        [
            (ana.clone(), opened.clone()),
            (op.clone(), opened),
            (ana, closed.clone()),
            (op, closed)
        ]
    );
    for m in &mails {
        assert_eq!(
            m["from"],
            "Facturación Fibra Sur <facturas@fibrasur.com.ar>"
        );
        assert!(
            m["text"].as_str().unwrap().starts_with("Hola Ana Pérez:"),
            "{m}"
        );
        assert!(
            m["html"]
                .as_str()
                .unwrap()
                .contains(&format!("<b>{id}</b>")),
            "{m}"
        );
    }
    assert!(
        mails[0]["text"]
            .as_str()
            .unwrap()
            .contains("soporte: sin internet")
    );
    gw.stop().await;
    modem.shutdown().await;
}
