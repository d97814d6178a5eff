//! SMS Masivos as a built-in `[[http_sms]]` provider, end to end: the real binary against a
//! local stand-in written from the provider's guide (version 8) and the facts noted in
//! `src/transport/http_sms/preset.rs`: `enviar_sms.asp?api=1` with `USUARIO`, `CLAVE`, `TOS`
//! (national number) and `TEXTO` read as ISO-8859-1, answering `<code>;<text>` under
//! `respuestanumerica=1`; `obtener_saldo.asp` answering the credit as digits;
//! `obtener_vencimiento_paquete.asp` answering `YYYY-MM-DD`; and its pushes of received SMS.

mod common;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::routing::get;
use common::{Daemon, TOKEN, api, free_port, queue, wait_for};
use reqwest::Method;
use serde_json::{Value, json};

const USER: &str = "ISP500";
const PASS: &str = "clave-del-isp";
const PUSH_TOKEN: &str = "0123456789abcdef0123";

/// One send the stand-in took: its parameters decoded as the ASP page decodes them (Latin-1).
#[derive(Clone, Debug)]
struct Sent {
    tos: String,
    texto: String,
    raw_query: String,
}

#[derive(Clone, Default)]
struct Provider {
    sent: Arc<Mutex<Vec<Sent>>>,
    credit: Arc<AtomicI64>,
    inbox: Arc<Mutex<Vec<Received>>>,
}

/// A received SMS in the provider's inbox: (number, text, id, read).
type Received = (String, String, u32, bool);

/// `a=1&b=%F1` → pairs, percent-decoded and read as ISO-8859-1 like the classic ASP page.
fn latin1_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (dec(k), dec(v)))
        .collect()
}

fn dec(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                out.push(
                    u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap(), 16).unwrap(),
                );
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    out.iter().map(|&c| c as char).collect()
}

fn param(pairs: &[(String, String)], name: &str) -> Option<String> {
    pairs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.clone())
}

/// Answers every body as ISO-8859-1 bytes, as the provider does.
fn latin1(text: &str) -> Vec<u8> {
    text.chars().map(|c| c as u32 as u8).collect()
}

async fn enviar(State(p): State<Provider>, RawQuery(q): RawQuery) -> Vec<u8> {
    let q = q.unwrap_or_default();
    let pairs = latin1_pairs(&q);
    if param(&pairs, "api").as_deref() != Some("1")
        || param(&pairs, "usuario").as_deref() != Some(USER)
        || param(&pairs, "clave").as_deref() != Some(PASS)
    {
        return latin1("-99;Usuario o contraseña incorrectos");
    }
    let tos = param(&pairs, "tos").unwrap_or_default();
    let texto = param(&pairs, "texto").unwrap_or_default();
    p.sent.lock().unwrap().push(Sent {
        tos: tos.clone(),
        texto: texto.clone(),
        raw_query: q.clone(),
    });
    let numeric = param(&pairs, "respuestanumerica").as_deref() == Some("1");
    match texto.as_str() {
        "pagina" => latin1("<html><body><h2>Error en el servidor</h2></body></html>"),
        "vacio" => Vec::new(),
        "raro" => latin1("Encolado para más tarde"),
        "oferta" => latin1("-5;Posible SPAM"),
        _ if !tos.chars().all(|c| c.is_ascii_digit()) || tos.len() != 10 => {
            latin1("-7;Longitud de número inválida")
        }
        _ if numeric => latin1("0;Mensaje enviado"),
        _ => latin1("OK"),
    }
}

async fn saldo(State(p): State<Provider>, RawQuery(q): RawQuery) -> Vec<u8> {
    let pairs = latin1_pairs(&q.unwrap_or_default());
    if param(&pairs, "usuario").as_deref() != Some(USER)
        || param(&pairs, "clave").as_deref() != Some(PASS)
    {
        return latin1("Usuario o contraseña incorrectos");
    }
    latin1(&p.credit.load(Ordering::SeqCst).to_string())
}

/// `obtener_sms_entrada.asp`: tab-separated lines; `solonoleidos=1` lists the unread only,
/// `marcarcomoleidos=1` marks what it lists as read.
async fn entrada(State(p): State<Provider>, RawQuery(q): RawQuery) -> Vec<u8> {
    let pairs = latin1_pairs(&q.unwrap_or_default());
    if param(&pairs, "usuario").as_deref() != Some(USER)
        || param(&pairs, "clave").as_deref() != Some(PASS)
    {
        return latin1("Usuario o contraseña incorrectos");
    }
    let unread_only = param(&pairs, "solonoleidos").as_deref() == Some("1");
    let mark = param(&pairs, "marcarcomoleidos").as_deref() == Some("1");
    let mut inbox = p.inbox.lock().unwrap();
    let mut out = String::new();
    for (num, text, id, read) in inbox.iter_mut() {
        if unread_only && *read {
            continue;
        }
        out.push_str(&format!("{num}\t{text}\t2026-12-02 10:00:00\t{id}\r\n"));
        if mark {
            *read = true;
        }
    }
    latin1(&out)
}

async fn vencimiento() -> Vec<u8> {
    latin1("2026-12-31")
}

async fn stand_in(credit: i64) -> (String, Provider) {
    let p = Provider::default();
    p.credit.store(credit, Ordering::SeqCst);
    let router = Router::new()
        .route("/enviar_sms.asp", get(enviar).post(enviar))
        .route("/obtener_saldo.asp", get(saldo))
        .route("/obtener_vencimiento_paquete.asp", get(vencimiento))
        .route("/obtener_sms_entrada.asp", get(entrada))
        .with_state(p.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (format!("http://{addr}"), p)
}

/// The route as an ISP writes it, pointed at the stand-in; `extra` goes in the route's table.
fn config(base: &str, hook: Option<u16>, extra: &str, tail: &str) -> String {
    let hooks = hook
        .map(|p| format!("[webhooks]\nlisten = \"127.0.0.1:{p}\"\n"))
        .unwrap_or_default();
    format!(
        "token = \"{TOKEN}\"\n[dispatch]\nretry_base_secs = 60\nretry_max_secs = 60\n\
         [company]\nname = \"Red Sur\"\n{hooks}\
         [[http_sms]]\nname = \"smsm\"\nprovider = \"smsmasivos\"\n\
         username = \"{USER}\"\npassword = \"{PASS}\"\n\
         url = \"{base}/enviar_sms.asp?api=1\"\n\
         balance_url = \"{base}/obtener_saldo.asp?usuario={{username}}&clave={{password}}\"\n\
         expiry_url = \"{base}/obtener_vencimiento_paquete.asp?usuario={{username}}&clave={{password}}\"\n\
         {extra}\n{tail}"
    )
}

async fn message(d: &Daemon, id: i64) -> Value {
    api(Method::GET, format!("{}/api/messages/{id}", d.base), None)
        .await
        .1
}

async fn inbound(d: &Daemon) -> Vec<Value> {
    api(
        Method::GET,
        format!("{}/api/messages?direction=in&limit=100", d.base),
        None,
    )
    .await
    .1["messages"]
        .as_array()
        .unwrap()
        .clone()
}

async fn route_status(d: &Daemon) -> Value {
    api(Method::GET, format!("{}/api/status", d.base), None)
        .await
        .1["transports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "smsm")
        .cloned()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accents_arrive_in_latin1_with_the_national_number_and_credit_shows_in_status() {
    let (base, provider) = stand_in(50).await;
    let dir = tempfile::tempdir().unwrap();
    let conf = config(
        &base,
        None,
        "credit_alert_below = 100",
        "[rules.ticket]\nalert_groups = [\"guardia\"]\n\
         [[groups]]\nname = \"guardia\"\nphones = [\"+54 9 351 412-3456\"]\nwindow = \"always\"\n",
    );
    let d = tokio::task::block_in_place(|| Daemon::start_full(dir.path(), "", &conf, &[]));
    let text = "Año nuevo: ñandú, más café y acción";
    let id = queue(&d, "+54 9 11 4789-6321", text).await;
    wait_for("sent", 20, async || {
        message(&d, id).await["state"] == "sent"
    })
    .await;
    let m = message(&d, id).await;
    assert!(m["last_error"].is_null(), "a confirmed send: {m}");
    let sent = provider.sent.lock().unwrap().clone();
    let ours = sent
        .iter()
        .find(|s| s.texto == text)
        .expect("the text, decoded as Latin-1");
    assert_eq!(ours.tos, "1147896321");
    assert!(
        ours.raw_query.contains("%F1and%FA"),
        "Latin-1 bytes: {}",
        ours.raw_query
    );

    // The credit and the expiry, read at start-up, in GET /api/status.
    wait_for("the credit in status", 20, async || {
        route_status(&d).await["details"]["credit"]["credit"] == 50
    })
    .await;
    let credit = route_status(&d).await["details"]["credit"].clone();
    assert_eq!(credit["expires"], "2026-12-31", "{credit}");
    assert_eq!(credit["alert_below"], 100, "{credit}");
    // 50 < 100: the group on duty is told, through the route.
    wait_for("the credit alert", 30, async || {
        provider
            .sent
            .lock()
            .unwrap()
            .iter()
            .any(|s| s.tos == "3514123456" && s.texto.contains("le quedan 50 mensajes"))
    })
    .await;
    // The watcher looks again every 20 s: the credit is still low, but no second alert.
    tokio::time::sleep(Duration::from_secs(22)).await;
    let alerts = provider
        .sent
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.tos == "3514123456")
        .count();
    assert_eq!(alerts, 1, "once per crossing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pushed_saldo_is_answered_once_through_the_route() {
    let (base, provider) = stand_in(1500).await;
    let dir = tempfile::tempdir().unwrap();
    let hook = free_port();
    let conf = config(
        &base,
        Some(hook),
        &format!("inbound_token = \"{PUSH_TOKEN}\""),
        "",
    );
    let d = tokio::task::block_in_place(|| Daemon::start_full(dir.path(), "", &conf, &[]));
    let (status, body) = api(
        Method::POST,
        format!("{}/api/customers", d.base),
        Some(json!([{"code": "4521", "name": "Ana Núñez", "phone": "011 15-4789-6321", "balance": "1234.50"}])),
    )
    .await;
    assert!((200..300).contains(&status), "{status} {body}");
    let push = format!("http://127.0.0.1:{hook}/webhooks/http_sms/smsm");
    let client = reqwest::Client::new();
    // The provider pushes twice (no id): one message, one answer.
    for _ in 0..2 {
        let r = client
            .get(format!(
                "{push}?token={PUSH_TOKEN}&origen=1147896321&texto=SALDO"
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }
    wait_for("the balance answered", 30, async || {
        provider
            .sent
            .lock()
            .unwrap()
            .iter()
            .any(|s| s.tos == "1147896321" && s.texto.contains("1.234,50"))
    })
    .await;
    // With an id, as a form, token in the header, twice: stored once.
    for _ in 0..2 {
        let r = client
            .post(&push)
            .header("X-Token", PUSH_TOKEN)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body("origen=1147896321&texto=Gracias%2C+se%F1or&id=99120")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let msgs = inbound(&d).await;
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    let saldo = msgs.iter().find(|m| m["text"] == "SALDO").unwrap();
    assert_eq!(saldo["peer"], "+5491147896321");
    assert_eq!(saldo["transport"], "smsm");
    assert!(
        msgs.iter()
            .any(|m| m["text"] == "Gracias, señor" && m["provider_ref"] == "99120")
    );
    let answers = provider
        .sent
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.tos == "1147896321" && s.texto.contains("1.234,50"))
        .count();
    assert_eq!(answers, 1, "answered once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_without_the_token_or_the_fields_are_refused_and_change_nothing() {
    let (base, _provider) = stand_in(1500).await;
    let dir = tempfile::tempdir().unwrap();
    let hook = free_port();
    let conf = config(
        &base,
        Some(hook),
        &format!("inbound_token = \"{PUSH_TOKEN}\""),
        "",
    );
    let d = tokio::task::block_in_place(|| Daemon::start_full(dir.path(), "", &conf, &[]));
    let push = format!("http://127.0.0.1:{hook}/webhooks/http_sms/smsm");
    let client = reqwest::Client::new();
    let code = |r: reqwest::Response| r.status().as_u16();
    let fields = "origen=1147896321&texto=SALDO";
    assert_eq!(
        code(client.get(format!("{push}?{fields}")).send().await.unwrap()),
        401
    );
    assert_eq!(
        code(
            client
                .get(format!("{push}?token=wrong-token-123456&{fields}"))
                .send()
                .await
                .unwrap()
        ),
        401
    );
    assert_eq!(
        code(
            client
                .get(format!("{push}?{fields}"))
                .header("X-Token", "nope")
                .send()
                .await
                .unwrap()
        ),
        401
    );
    assert_eq!(
        code(
            client
                .get(format!("{push}?token={PUSH_TOKEN}&texto=SALDO"))
                .send()
                .await
                .unwrap()
        ),
        400
    );
    assert_eq!(
        code(
            client
                .get(format!("{push}?token={PUSH_TOKEN}&origen=1147896321"))
                .send()
                .await
                .unwrap()
        ),
        400
    );
    assert_eq!(
        code(
            client
                .post(format!("{push}?token={PUSH_TOKEN}"))
                .header("Content-Type", "application/json")
                .body("{\"origen\": [1]}")
                .send()
                .await
                .unwrap()
        ),
        400
    );
    assert_eq!(
        code(
            client
                .get(format!(
                    "http://127.0.0.1:{hook}/webhooks/http_sms/other?token={PUSH_TOKEN}"
                ))
                .send()
                .await
                .unwrap()
        ),
        404
    );
    assert!(inbound(&d).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_answers_wait_or_fail_as_the_preset_reads_them() {
    let (base, provider) = stand_in(1500).await;
    let dir = tempfile::tempdir().unwrap();
    let conf = config(&base, None, "", "");
    let d = tokio::task::block_in_place(|| Daemon::start_full(dir.path(), "", &conf, &[]));
    let to = "+5491147896321";
    let page = queue(&d, to, "pagina").await;
    let empty = queue(&d, to, "vacio").await;
    let odd = queue(&d, to, "raro").await;
    let spam = queue(&d, to, "oferta").await;
    let abroad = queue(&d, "+598 94 123 456", "hola").await;
    let emoji = queue(&d, to, "hola 😀").await;
    let settled = async |id: i64| {
        let m = message(&d, id).await;
        m["attempts"].as_i64().unwrap_or(0) >= 1 && m["state"] != "sending"
            || m["state"] == "failed"
    };
    for id in [page, empty, odd, spam, abroad, emoji] {
        wait_for("an answer", 20, async || settled(id).await).await;
    }
    // Each answer's outcome: the state it leaves and what its last error quotes.
    for (id, state, quoted, why) in [
        (
            page,
            "queued",
            "<html><body><h2>Error",
            "an HTML page waits",
        ),
        (empty, "queued", "did not take", "an empty answer waits"),
        (
            odd,
            "sent",
            "`Encolado para más tarde`",
            "unrecognised is sent, unconfirmed",
        ),
        (spam, "failed", "`-5;Posible SPAM`", "a refusal fails"),
        (
            abroad,
            "failed",
            "no national form in AR",
            "a foreign number fails",
        ),
        (
            emoji,
            "failed",
            "ISO-8859-1",
            "what Latin-1 cannot carry fails",
        ),
    ] {
        let m = message(&d, id).await;
        assert_eq!(m["state"], state, "{why}: {m}");
        let error = m["last_error"].as_str().unwrap_or_default();
        assert!(error.contains(quoted), "{why}: {m}");
    }
    let sent = provider.sent.lock().unwrap().clone();
    assert_eq!(
        sent.iter().filter(|s| s.texto == "raro").count(),
        1,
        "never resent"
    );
    assert!(
        !sent
            .iter()
            .any(|s| s.texto == "hola" || s.texto.starts_with("hola "))
    );
}

#[test]
fn check_config_names_the_keys_of_a_bad_route() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.toml");
    std::fs::write(
        &path,
        "[[http_sms]]\nname = \"smsm\"\nprovider = \"smsmasivos\"\ninbound_token = \"corto\"\n\
         credit_alert_below = 0\n[[http_sms]]\nname = \"otro\"\nprovider = \"connectus\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(common::bin())
        .arg("check-config")
        .arg(&path)
        .output()
        .unwrap();
    let err =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{err}");
    for needle in [
        "http_sms.username",
        "http_sms.inbound_token",
        "[webhooks]",
        "http_sms.credit_alert_below",
        "`connectus` is not a known provider",
    ] {
        assert!(err.contains(needle), "{needle}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_read_by_pull_are_answered_once_and_marked_read() {
    let (base, provider) = stand_in(1500).await;
    let dir = tempfile::tempdir().unwrap();
    let conf = config(
        &base,
        None,
        &format!(
            "poll_secs = 1\n\
             poll_url = \"{base}/obtener_sms_entrada.asp?usuario={{username}}&clave={{password}}&solonoleidos=1\"\n\
             poll_ack_url = \"{base}/obtener_sms_entrada.asp?usuario={{username}}&clave={{password}}&solonoleidos=1&marcarcomoleidos=1\""
        ),
        "",
    );
    let d = tokio::task::block_in_place(|| Daemon::start_full(dir.path(), "", &conf, &[]));
    let (status, body) = api(
        Method::POST,
        format!("{}/api/customers", d.base),
        Some(json!([{"code": "4521", "name": "Ana Núñez", "phone": "011 15-4789-6321", "balance": "1234.50"}])),
    )
    .await;
    assert!((200..300).contains(&status), "{status} {body}");
    // The customer texts the provider's number once the directory knows them.
    provider
        .inbox
        .lock()
        .unwrap()
        .push(("1147896321".into(), "SALDO".into(), 501, false));
    wait_for("the pulled SALDO answered", 30, async || {
        provider
            .sent
            .lock()
            .unwrap()
            .iter()
            .any(|s| s.tos == "1147896321" && s.texto.contains("1.234,50"))
    })
    .await;
    // Marked read after it was stored, so the mark may land just after the reply.
    wait_for("marked read at the provider", 30, async || {
        provider.inbox.lock().unwrap()[0].3
    })
    .await;
    // A second reply, and the first one listed again (the provider lost its read flag).
    {
        let mut inbox = provider.inbox.lock().unwrap();
        inbox[0].3 = false;
        inbox.push(("1147896321".into(), "Gracias, señor".into(), 502, false));
    }
    wait_for("the second one stored", 30, async || {
        inbound(&d)
            .await
            .iter()
            .any(|m| m["text"] == "Gracias, señor")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let msgs = inbound(&d).await;
    assert_eq!(msgs.len(), 2, "each stored once: {msgs:?}");
    assert!(
        msgs.iter()
            .any(|m| m["provider_ref"] == "501" && m["peer"] == "+5491147896321")
    );
    let answers = provider
        .sent
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.texto.contains("1.234,50"))
        .count();
    assert_eq!(answers, 1, "answered once");
    // A listing newest first: an id lower than one stored in the same listing is still new.
    {
        let mut inbox = provider.inbox.lock().unwrap();
        inbox.push(("1147896321".into(), "Llegó tarde".into(), 504, false));
        inbox.push(("1147896321".into(), "Llegó antes".into(), 503, false));
    }
    wait_for("both of a newest-first listing stored", 30, async || {
        inbound(&d).await.len() == 4
    })
    .await;
}
