//! https in and out, end to end with the real binary: a test CA made at test time (rcgen),
//! local TLS servers on 127.0.0.1 (billing system, Android phone, HTTP SMS app) whose
//! certificates it issued, given to pasarela as `ca_file`; the same servers under a CA
//! pasarela does not trust; the `[webhooks]` listener over https, its certificate swapped on
//! SIGHUP; and check-config on a certificate and key that do not match.

mod common;
#[path = "common/fake_phone.rs"]
mod fake_phone;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use common::{Daemon, TOKEN, api, free_port};
use fake_phone::{FakePhone, PASSWORD, SIGNING_KEY, sign};
use reqwest::Method;
use serde_json::{Value, json};

/// A certificate authority made for one test.
struct Ca {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    fn pem(&self) -> String {
        self.cert.pem()
    }

    fn write(&self, dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, self.pem()).unwrap();
        path
    }

    /// A server certificate for 127.0.0.1 and localhost: (cert file, key file, DER).
    fn issue(&self, dir: &Path, stem: &str) -> (PathBuf, PathBuf, Vec<u8>) {
        self.issue_for(dir, stem, &["127.0.0.1", "localhost"])
    }

    fn issue_for(&self, dir: &Path, stem: &str, names: &[&str]) -> (PathBuf, PathBuf, Vec<u8>) {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = rcgen::CertificateParams::new(names).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, stem);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        let c = dir.join(format!("{stem}.crt"));
        let k = dir.join(format!("{stem}.key"));
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k, cert.der().to_vec())
    }
}

/// What the billing system saw.
#[derive(Default)]
struct Billing {
    lookups: Vec<String>,
    /// (Authorization header, ticket body).
    tickets: Vec<(Option<String>, Value)>,
}

type Shared = Arc<Mutex<Billing>>;

async fn lookup(
    State(b): State<Shared>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> axum::response::Response {
    let phone = q.get("telefono").cloned().unwrap_or_default();
    b.lock().unwrap().lookups.push(phone.clone());
    if phone == "1123456789" {
        axum::Json(json!({"codigo": "B-7", "nombre": "Lucía Sosa", "saldo": 1234.5}))
            .into_response()
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}

async fn ticket(
    State(b): State<Shared>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> StatusCode {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    b.lock().unwrap().tickets.push((auth, body));
    StatusCode::CREATED
}

/// Serves `router` over https with `cert`/`key` on 127.0.0.1, port 0. Returns the address and
/// the trigger that keeps it running.
async fn serve_tls(
    router: axum::Router,
    cert: &Path,
    key: &Path,
) -> (std::net::SocketAddr, pasarela::shutdown::ShutdownTrigger) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let store = pasarela::net::tls::CertStore::load(cert, key).unwrap();
    let (trigger, stop) = pasarela::shutdown::channel();
    tokio::spawn(pasarela::net::serve::serve(
        listener,
        router,
        Some(store),
        Default::default(),
        stop,
    ));
    (addr, trigger)
}

async fn billing_server(
    cert: &Path,
    key: &Path,
) -> (
    Shared,
    std::net::SocketAddr,
    pasarela::shutdown::ShutdownTrigger,
) {
    let seen = Shared::default();
    let router = axum::Router::new()
        .route("/api/clientes", axum::routing::get(lookup))
        .route("/tickets", axum::routing::post(ticket))
        .with_state(seen.clone());
    let (addr, trigger) = serve_tls(router, cert, key).await;
    (seen, addr, trigger)
}

fn start(dir: &Path, admin_extra: &str) -> Daemon {
    tokio::task::block_in_place(|| Daemon::start_full(dir, "", admin_extra, &[]))
}

async fn wait_for(what: &str, secs: u64, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..secs * 20 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out after {secs} s waiting for {what}");
}

async fn get(d: &Daemon, path: &str) -> Value {
    api(Method::GET, format!("{}{path}", d.base), None).await.1
}

async fn transport(d: &Daemon, name: &str) -> Value {
    get(d, "/api/status").await["transports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name)
        .cloned()
        .unwrap()
}

/// A client that trusts `ca_pem` only (no public roots), as a phone with the ISP's CA.
fn client_trusting(ca_pem: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap())
        .tls_info(true)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn event(event: &str, payload: Value) -> Vec<u8> {
    json!({
        "deviceId": "fakeDevice0000000001",
        "event": event,
        "id": fake_phone::rand_id(),
        "webhookId": format!("pasarela-phone1-{}", event.trim_start_matches("sms:")),
        "payload": payload,
    })
    .to_string()
    .into_bytes()
}

/// POSTs a signed webhook over https to pasarela's `[webhooks]` listener.
async fn post_hook(client: &reqwest::Client, hook: u16, body: &[u8]) -> u16 {
    let (ts, sig) = sign(SIGNING_KEY, body);
    client
        .post(format!("https://127.0.0.1:{hook}/webhooks/android/phone1"))
        .header("Content-Type", "application/json")
        .header("X-Timestamp", ts)
        .header("X-Signature", sig)
        .body(body.to_vec())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn toml_path(p: &Path) -> String {
    p.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn billing_tickets_and_the_phone_work_over_https_with_the_isps_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("ISP test CA");
    let ca_file = ca.write(dir.path(), "isp-ca.pem");
    let (bc, bk, _) = ca.issue(dir.path(), "billing");
    let (pc, pk, _) = ca.issue(dir.path(), "phone");
    let (gc, gk, _) = ca.issue(dir.path(), "gateway");
    let (billing, baddr, _billing_stop) = billing_server(&bc, &bk).await;
    let phone = FakePhone::start_tls(&pc, &pk, Some(&ca.pem())).await;
    assert!(phone.url().starts_with("https://"));
    let hook = free_port();
    let ca_toml = toml_path(&ca_file);
    let d = start(
        dir.path(),
        &format!(
            "token = \"{TOKEN}\"\n\
             [dispatch]\nretry_base_secs = 1\nretry_max_secs = 2\nmax_attempts = 50\n\
             [webhooks]\nlisten = \"127.0.0.1:{hook}\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n\
             [[android]]\nname = \"phone1\"\nurl = \"{}\"\npassword = \"{PASSWORD}\"\n\
             health_interval_secs = 1\nrequest_timeout_secs = 5\nca_file = \"{ca_toml}\"\n\
             webhook_url = \"https://127.0.0.1:{hook}/webhooks/android/phone1\"\n\
             signing_key = \"{SIGNING_KEY}\"\n\
             [directory.http]\n\
             url = \"https://127.0.0.1:{}/api/clientes?telefono={{phone_national}}\"\n\
             timeout_ms = 5000\nca_file = \"{ca_toml}\"\n\
             [directory.http.fields]\ncode = \"/codigo\"\nname = \"/nombre\"\nbalance = \"/saldo\"\n\
             [rules.ticket]\nforward_url = \"https://127.0.0.1:{}/tickets\"\n\
             forward_ca_file = \"{ca_toml}\"\n\
             [rules.ticket.forward_headers]\nAuthorization = \"Bearer billing-secret-token\"\n",
            toml_path(&gc),
            toml_path(&gk),
            phone.url(),
            baddr.port(),
            baddr.port(),
        ),
    );
    // The phone takes our https webhook URLs (it refuses plain http but 127.0.0.1).
    wait_for("our webhooks registered on the phone", 30, async || {
        phone.with(|i| i.webhooks.len()) == 4
    })
    .await;
    assert!(phone.with(|i| i.refused_webhooks.is_empty()));
    assert!(phone.with(|i| {
        i.webhooks
            .values()
            .all(|w| w["url"].as_str().unwrap().starts_with("https://127.0.0.1:"))
    }));
    wait_for("the phone up", 30, async || {
        transport(&d, "phone1").await["up"] == true
    })
    .await;
    // A customer asks for the balance: webhook over https in, lookup over https, reply out
    // through the phone over https.
    let code = phone
        .fire(
            "sms:received",
            json!({"messageId": "in-1", "phoneNumber": "+5491123456789", "message": "saldo",
                   "receivedAt": "2026-11-22T12:00:00.000-03:00", "simNumber": 1}),
        )
        .await;
    assert_eq!(code, 200);
    wait_for("the balance reply sent by the phone", 30, async || {
        phone
            .sent_texts()
            .iter()
            .any(|t| t.contains("Lucía Sosa") && t.contains("1.234,50"))
    })
    .await;
    assert_eq!(billing.lock().unwrap().lookups, ["1123456789"]);
    // A ticket: forwarded over https with the token in a header, not in the URL.
    let code = phone
        .fire(
            "sms:received",
            json!({"messageId": "in-2", "phoneNumber": "+5491123456789", "message": "soporte: sin internet"}),
        )
        .await;
    assert_eq!(code, 200);
    wait_for("the ticket forwarded", 30, async || {
        !billing.lock().unwrap().tickets.is_empty()
    })
    .await;
    let (auth, body) = billing.lock().unwrap().tickets[0].clone();
    assert_eq!(auth.as_deref(), Some("Bearer billing-secret-token"));
    assert_eq!(body["text"], "soporte: sin internet");
    assert_eq!(body["customer"], "B-7");
    assert!(phone.with(|i| i.violations.is_empty()));
    assert!(!d.stderr_text().contains("billing-secret-token"));
    // Through the API, a forward_ca_file that cannot be read is refused, naming the key.
    let missing = dir.path().join("no-such-ca.pem");
    let (status, body) = api(
        Method::PUT,
        format!("{}/api/rules", d.base),
        Some(json!({"ticket": {"forward_ca_file": missing}})),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        body["error"]["field"], "rules.ticket.forward_ca_file",
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_certificates_are_refused_with_a_clear_error_and_retried() {
    let dir = tempfile::tempdir().unwrap();
    let ours = Ca::new("ISP test CA");
    let rogue = Ca::new("Somebody else's CA");
    let (bc, bk, _) = rogue.issue(dir.path(), "billing");
    let (pc, pk, _) = rogue.issue(dir.path(), "phone");
    let (sc, sk, _) = rogue.issue(dir.path(), "smsapp");
    let (gc, gk, _) = ours.issue(dir.path(), "gateway");
    let (billing, baddr, _billing_stop) = billing_server(&bc, &bk).await;
    let phone = FakePhone::start_tls(&pc, &pk, None).await;
    let sms_hits = Arc::new(Mutex::new(0u32));
    let (saddr, _sms_stop) = {
        let hits = sms_hits.clone();
        let router = axum::Router::new().route(
            "/send",
            axum::routing::get(move || {
                let hits = hits.clone();
                async move {
                    *hits.lock().unwrap() += 1;
                    "OK"
                }
            }),
        );
        serve_tls(router, &sc, &sk).await
    };
    let hook = free_port();
    // No ca_file anywhere: only the Mozilla roots are trusted.
    let d = start(
        dir.path(),
        &format!(
            "token = \"{TOKEN}\"\n\
             [dispatch]\nretry_base_secs = 1\nretry_max_secs = 2\nmax_attempts = 50\n\
             [webhooks]\nlisten = \"127.0.0.1:{hook}\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n\
             [[android]]\nname = \"phone1\"\nurl = \"{}\"\npassword = \"{PASSWORD}\"\n\
             health_interval_secs = 1\nrequest_timeout_secs = 5\n\
             webhook_url = \"https://127.0.0.1:{hook}/webhooks/android/phone1\"\n\
             signing_key = \"{SIGNING_KEY}\"\n\
             [[http_sms]]\nname = \"smsapp\"\n\
             url = \"https://127.0.0.1:{}/send?to={{phone}}&text={{message}}&key=sms-app-secret\"\n\
             [directory.http]\n\
             url = \"https://127.0.0.1:{}/api/clientes?telefono={{phone_national}}&token=lookup-secret\"\n\
             timeout_ms = 5000\n\
             [directory.http.fields]\ncode = \"/codigo\"\nname = \"/nombre\"\nbalance = \"/saldo\"\n\
             [rules.ticket]\nforward_url = \"https://127.0.0.1:{}/tickets?token=forward-secret\"\n",
            toml_path(&gc),
            toml_path(&gk),
            phone.url(),
            saddr.port(),
            baddr.port(),
            baddr.port(),
        ),
    );
    let phone_peer = format!("https://127.0.0.1:{}", phone.addr.port());
    wait_for(
        "the phone reported down for its certificate",
        30,
        async || {
            let t = transport(&d, "phone1").await;
            t["up"] == false
                && t["detail"]
                    .as_str()
                    .is_some_and(|s| s.contains("certificate not trusted (unknown issuer)"))
        },
    )
    .await;
    let detail = transport(&d, "phone1").await["detail"].to_string();
    assert!(detail.contains(&phone_peer), "{detail}");
    assert!(phone.with(|i| i.webhooks.is_empty()));

    // A customer's ticket comes in through the webhook listener (https, our CA).
    let client = client_trusting(&ours.pem());
    let body = event(
        "sms:received",
        json!({"messageId": "in-9", "phoneNumber": "+5491123456789", "message": "soporte: sin internet"}),
    );
    assert_eq!(post_hook(&client, hook, &body).await, 200);
    // The lookup is refused (the local directory answers instead) ...
    let billing_peer = format!("https://127.0.0.1:{}", baddr.port());
    wait_for("the refused lookup logged", 30, async || {
        d.stderr_text().contains(&format!(
            "certificate not trusted (unknown issuer) at {billing_peer}"
        ))
    })
    .await;
    // ... the forward is retried with the reason on the ticket, never given up ...
    wait_for("the forward retried", 60, async || {
        let t = get(&d, "/api/tickets").await["tickets"][0].clone();
        t["forward"]["attempts"].as_i64().unwrap_or(0) >= 2
    })
    .await;
    let t = get(&d, "/api/tickets").await["tickets"][0].clone();
    let err = t["forward"]["last_error"].as_str().unwrap().to_string();
    assert_eq!(
        err,
        format!("certificate not trusted (unknown issuer) at {billing_peer}")
    );
    assert_ne!(t["forward"]["state"], "done");
    // ... and the reply is retried on the https SMS app, not failed.
    let reply = wait_reply(&d).await;
    let id = reply["id"].as_i64().unwrap();
    wait_for("the reply retried", 60, async || {
        let m = get(&d, &format!("/api/messages/{id}")).await;
        m["attempts"].as_u64().unwrap_or(0) >= 1 && m["last_error"].is_string()
    })
    .await;
    let m = get(&d, &format!("/api/messages/{id}")).await;
    assert_ne!(m["state"], "failed", "{m}");
    assert_ne!(m["state"], "sent", "{m}");
    let last = m["last_error"].as_str().unwrap();
    assert!(
        last.contains(&format!(
            "certificate not trusted (unknown issuer) at https://127.0.0.1:{}",
            saddr.port()
        )),
        "{last}"
    );
    assert_eq!(*sms_hits.lock().unwrap(), 0);
    assert!(billing.lock().unwrap().tickets.is_empty());
    // Nothing secret or a full number in the log or the API.
    let log = d.stderr_text();
    for secret in [
        "lookup-secret",
        "forward-secret",
        "sms-app-secret",
        "telefono=",
        "5491123456789",
    ] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
        assert!(!err.contains(secret) && !last.contains(secret), "{secret}");
    }
}

/// The auto-reply queued for +5491123456789.
async fn wait_reply(d: &Daemon) -> Value {
    let mut found = Value::Null;
    wait_for("the reply queued", 30, async || {
        let list = get(d, "/api/messages?direction=out").await["messages"].clone();
        if let Some(m) = list.as_array().and_then(|l| l.first()) {
            found = m.clone();
            true
        } else {
            false
        }
    })
    .await;
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_sms_route_over_https_with_its_ca_file() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Provider CA");
    let ca_file = ca.write(dir.path(), "provider-ca.pem");
    let (sc, sk, _) = ca.issue(dir.path(), "provider");
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let (saddr, _stop) = {
        let seen = seen.clone();
        let router = axum::Router::new().route(
            "/v1/sms/send/",
            axum::routing::get(
                move |Query(q): Query<std::collections::HashMap<String, String>>| {
                    let seen = seen.clone();
                    async move {
                        seen.lock().unwrap().push(q["message"].clone());
                        "OK"
                    }
                },
            ),
        );
        serve_tls(router, &sc, &sk).await
    };
    let d = start(
        dir.path(),
        &format!(
            "token = \"{TOKEN}\"\n\
             [[http_sms]]\nname = \"provider\"\n\
             url = \"https://127.0.0.1:{}/v1/sms/send/\"\nca_file = \"{}\"\n\
             success_contains = \"OK\"\n\
             [http_sms.params]\nphone = \"{{phone}}\"\nmessage = \"{{message}}\"\n",
            saddr.port(),
            toml_path(&ca_file)
        ),
    );
    let (status, body) = api(
        Method::POST,
        format!("{}/api/messages", d.base),
        Some(json!({"to": "+5491123456789", "text": "Su factura está disponible"})),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_i64().unwrap();
    wait_for("the message sent over https", 30, async || {
        get(&d, &format!("/api/messages/{id}")).await["state"] == "sent"
    })
    .await;
    assert_eq!(*seen.lock().unwrap(), ["Su factura está disponible"]);
}

/// The DER certificate a fresh connection to `port` is served.
async fn served_cert(ca_pem: &str, port: u16) -> Vec<u8> {
    let resp = client_trusting(ca_pem)
        .get(format!("https://127.0.0.1:{port}/webhooks/android/none"))
        .send()
        .await
        .unwrap();
    resp.extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|i| i.peer_certificate())
        .unwrap()
        .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_serves_the_new_certificate_and_plain_http_does_not_hurt() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("ISP test CA");
    let (c1, k1, der1) = ca.issue(dir.path(), "first");
    let (c2, k2, der2) = ca.issue(dir.path(), "second");
    let cert = dir.path().join("webhooks.crt");
    let key = dir.path().join("webhooks.key");
    std::fs::copy(&c1, &cert).unwrap();
    std::fs::copy(&k1, &key).unwrap();
    // A slow SMS app keeps messages in flight across the reload.
    let hits = Arc::new(Mutex::new(0u32));
    let app = {
        let hits = hits.clone();
        axum::Router::new().route(
            "/send",
            axum::routing::get(move || {
                let hits = hits.clone();
                async move {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    *hits.lock().unwrap() += 1;
                    "OK"
                }
            }),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app_addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let hook = free_port();
    let d = start(
        dir.path(),
        &format!(
            "token = \"{TOKEN}\"\n\
             [webhooks]\nlisten = \"127.0.0.1:{hook}\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n\
             [[http_sms]]\nname = \"slow\"\nurl = \"http://{app_addr}/send?to={{phone}}&m={{message}}\"\n",
            toml_path(&cert),
            toml_path(&key),
        ),
    );
    assert_eq!(served_cert(&ca.pem(), hook).await, der1);

    // A plain-http request to the https listener is refused; the listener goes on.
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{hook}/webhooks/android/phone1"))
        .send()
        .await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut raw = tokio::net::TcpStream::connect(("127.0.0.1", hook))
            .await
            .unwrap();
        raw.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = Vec::new();
        let _ = raw.read_to_end(&mut buf).await;
        assert!(!String::from_utf8_lossy(&buf).contains("HTTP/1.1 200"));
    }
    assert_eq!(served_cert(&ca.pem(), hook).await, der1);

    // Messages in flight while the certificate changes.
    let mut ids = Vec::new();
    for n in 0..5 {
        let (status, body) = api(
            Method::POST,
            format!("{}/api/messages", d.base),
            Some(json!({"to": "+5491123456789", "text": format!("aviso {n}")})),
        )
        .await;
        assert_eq!(status, 202, "{body}");
        ids.push(body["id"].as_i64().unwrap());
    }
    // Replace the files the way certbot's deploy hook does, then SIGHUP.
    std::fs::copy(&c2, &cert).unwrap();
    std::fs::copy(&k2, &key).unwrap();
    d.signal("HUP");
    wait_for("the new certificate served", 30, async || {
        served_cert(&ca.pem(), hook).await == der2
    })
    .await;
    for id in ids {
        wait_for("every message sent", 30, async || {
            get(&d, &format!("/api/messages/{id}")).await["state"] == "sent"
        })
        .await;
    }
    assert_eq!(*hits.lock().unwrap(), 5);
    assert!(
        d.stderr_with("SIGHUP: reloaded the certificate")
            .contains("SIGHUP: reloaded the certificate")
    );
    // A broken pair on the next SIGHUP keeps the working one.
    std::fs::write(&key, "not a key").unwrap();
    d.signal("HUP");
    wait_for("the failed reload logged", 30, async || {
        d.stderr_text()
            .contains("SIGHUP: keeping the old certificate")
    })
    .await;
    assert_eq!(served_cert(&ca.pem(), hook).await, der2);
    let health = reqwest::get(format!("{}/api/health", d.base))
        .await
        .unwrap();
    assert!(health.status().is_success());
}

fn check_config(path: &Path) -> (i32, String) {
    let out = std::process::Command::new(common::bin())
        .arg("check-config")
        .arg(path)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn check_config_names_the_key_of_a_bad_pair_or_ca_file() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("ISP test CA");
    let (c1, _k1, _) = ca.issue(dir.path(), "first");
    let (_c2, k2, _) = ca.issue(dir.path(), "second");
    let ca_file = ca.write(dir.path(), "ca.pem");
    let write = |extra: &str| {
        common::write_config(
            dir.path(),
            free_port(),
            "",
            &format!("token = \"{TOKEN}\"\n{extra}"),
        )
    };
    let hooks = |cert: &Path, key: &Path| {
        format!(
            "[webhooks]\nlisten = \"127.0.0.1:{}\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
            free_port(),
            toml_path(cert),
            toml_path(key)
        )
    };
    std::fs::create_dir_all(dir.path().join("state")).unwrap();
    // Mismatched: the key of another certificate.
    let (code, err) = check_config(&write(&hooks(&c1, &k2)));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("webhooks.tls_key"), "{err}");
    assert!(err.contains("is not the key of the certificate"), "{err}");
    // Unreadable key.
    let (code, err) = check_config(&write(&hooks(&c1, &dir.path().join("nope.key"))));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("webhooks.tls_key") && err.contains("cannot read"),
        "{err}"
    );
    // Half a pair.
    let (code, err) = check_config(&write(&format!(
        "[webhooks]\nlisten = \"127.0.0.1:{}\"\ntls_cert = \"{}\"\n",
        free_port(),
        toml_path(&c1)
    )));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("webhooks.tls_cert: is set but webhooks.tls_key is not"),
        "{err}"
    );
    // A ca_file that holds no certificate.
    let (code, err) = check_config(&write(&format!(
        "[[http_sms]]\nname = \"p\"\nurl = \"https://127.0.0.1:9/s?to={{phone}}&m={{message}}\"\n\
         ca_file = \"{}\"\n",
        toml_path(&k2)
    )));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("http_sms.ca_file") && err.contains("holds no certificate"),
        "{err}"
    );
    // The good pair and CA pass.
    let (code, err) = check_config(&write(&format!(
        "{}[[http_sms]]\nname = \"p\"\nurl = \"https://127.0.0.1:9/s?to={{phone}}&m={{message}}\"\n\
         ca_file = \"{}\"\n",
        hooks(&c1, &dir.path().join("first.key")),
        toml_path(&ca_file)
    )));
    assert_eq!(code, 0, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_do_not_starve_health_or_webhooks() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("ISP test CA");
    let (gc, gk, _) = ca.issue(dir.path(), "gateway");
    let phone = FakePhone::start().await;
    let hook = free_port();
    let d = start(
        dir.path(),
        &format!(
            "token = \"{TOKEN}\"\n\
             [webhooks]\nlisten = \"127.0.0.1:{hook}\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n\
             [[android]]\nname = \"phone1\"\nurl = \"{}\"\npassword = \"{PASSWORD}\"\n\
             webhook_url = \"https://127.0.0.1:{hook}/webhooks/android/phone1\"\n\
             signing_key = \"{SIGNING_KEY}\"\n",
            toml_path(&gc),
            toml_path(&gk),
            phone.url(),
        ),
    );
    let admin_port: u16 = d.base.rsplit(':').next().unwrap().parse().unwrap();
    // 200 slowloris clients: half send a request header a few bytes at a time and never end
    // it (admin), half open TCP and never start the TLS handshake (webhooks).
    let mut held = Vec::new();
    for n in 0..200 {
        use tokio::io::AsyncWriteExt;
        let port = if n % 2 == 0 { admin_port } else { hook };
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        if port == admin_port {
            s.write_all(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                .await
                .unwrap();
        }
        held.push(s);
    }
    let health = reqwest::get(format!("{}/api/health", d.base))
        .await
        .unwrap();
    assert!(health.status().is_success());
    let body = event(
        "sms:received",
        json!({"messageId": "slow-1", "phoneNumber": "+5491123456789", "message": "hola"}),
    );
    assert_eq!(
        post_hook(&client_trusting(&ca.pem()), hook, &body).await,
        200
    );
    assert_eq!(held.len(), 200);
    drop(held);
}

/// Sends `head` (and no more), then reads until the listener closes the connection.
async fn stall(addr: std::net::SocketAddr, head: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(head).await.unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf).await;
    String::from_utf8_lossy(&buf).to_string()
}

#[tokio::test(start_paused = true)]
async fn stalled_headers_and_bodies_are_cut_off() {
    let router = axum::Router::new().route(
        "/echo",
        axum::routing::post(|b: axum::body::Bytes| async move { b.len().to_string() }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_trigger, stop) = pasarela::shutdown::channel();
    tokio::spawn(pasarela::net::serve::serve(
        listener,
        router,
        None,
        Default::default(),
        stop,
    ));
    // A header never finished: closed without an answer.
    let answer = stall(addr, b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Le").await;
    assert!(!answer.contains(" 200 "), "{answer}");
    // A body that stops half-way: cut, never handed to the route as complete.
    let answer = stall(
        addr,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("not received within"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_over_https_and_the_cli_that_trusts_its_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("ISP test CA");
    // Issued for the box's DNS name; the CLI reaches it by IP and trusts exactly this one.
    let (ac, ak, _) = ca.issue_for(dir.path(), "admin", &["gw.isp.example"]);
    let d = start(
        dir.path(),
        &format!(
            "token = \"{TOKEN}\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
            toml_path(&ac),
            toml_path(&ak)
        ),
    );
    let https = d.base.replace("http://", "https://");
    let plain = reqwest::get(format!("{}/api/health", d.base)).await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
    let out = tokio::task::block_in_place(|| {
        std::process::Command::new(common::bin())
            .args(["send", "--to", "+5491123456789", "--text", "hola por https"])
            .arg("--config")
            .arg(&d.config)
            .output()
            .unwrap()
    });
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("queued as message"),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Anyone else checks the name like a browser: by IP, the certificate is refused.
    let err = client_trusting(&ca.pem())
        .get(format!("{https}/api/health"))
        .send()
        .await
        .unwrap_err();
    assert!(
        pasarela::net::error::describe(&format!("{https}/api/health"), &err)
            .starts_with("certificate is for another host name at https://127.0.0.1:"),
        "{err:?}"
    );
}
