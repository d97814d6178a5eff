//! The WhatsApp Cloud API channel end to end: the real binary against a local Graph API
//! (`tests/common/fake_graph.rs`, written from Meta's document), with webhooks signed with
//! real HMAC-SHA256 on the `[webhooks]` listener.

mod common;
#[path = "common/fake_graph.rs"]
mod fake_graph;

use std::time::Duration;

use common::{Daemon, TOKEN, api, client, free_port};
use fake_graph::{FakeGraph, PHONE_ID};
use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Sha256;

const ACCESS: &str = "EAAG-test-token-0123456789";
const APP_SECRET: &str = "app-secret-for-tests";
const VERIFY: &str = "verify-me";

fn config(graph: &FakeGraph, hook: u16, extra: &str) -> String {
    format!(
        "token = \"{TOKEN}\"\n\
         [dispatch]\nretry_base_secs = 1\nretry_max_secs = 2\nmax_attempts = 50\n\
         [company]\nname = \"Red Sur\"\n\
         [webhooks]\nlisten = \"127.0.0.1:{hook}\"\n\
         [whatsapp]\nphone_number_id = \"{PHONE_ID}\"\nwaba_id = \"9876543210\"\n\
         access_token = \"{ACCESS}\"\napp_secret = \"{APP_SECRET}\"\nverify_token = \"{VERIFY}\"\n\
         base_url = \"{}\"\n{extra}\n",
        graph.url
    )
}

fn start(dir: &std::path::Path, conf: &str) -> Daemon {
    tokio::task::block_in_place(|| Daemon::start_full(dir, "", conf, &[]))
}

fn sign(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(APP_SECRET.as_bytes()).unwrap();
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

async fn post_hook(hook: u16, body: &[u8], signature: Option<&str>) -> u16 {
    let mut req = client()
        .post(format!("http://127.0.0.1:{hook}/webhooks/whatsapp"))
        .header("content-type", "application/json")
        .body(body.to_vec());
    if let Some(s) = signature {
        req = req.header("X-Hub-Signature-256", s);
    }
    req.send().await.unwrap().status().as_u16()
}

fn change(value: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({"object": "whatsapp_business_account", "entry": [{
        "id": "9876543210", "changes": [{"field": "messages", "value": value}]}]}))
    .unwrap()
}

fn text_from(from: &str, id: &str, text: &str) -> Vec<u8> {
    change(json!({"messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "5491155550000", "phone_number_id": PHONE_ID},
        "contacts": [{"profile": {"name": "Ana"}, "wa_id": from}],
        "messages": [{"from": from, "id": id, "timestamp": "1764633600", "type": "text",
                      "text": {"body": text}}]}))
}

/// `/metrics` of the daemon, with the token.
async fn metrics(d: &Daemon) -> String {
    client()
        .get(format!("{}/metrics", d.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

fn has_series(text: &str, series: &str) -> bool {
    text.lines().any(|l| l == series)
}

fn status(wamid: &str, status: &str, pricing: Option<&str>) -> Vec<u8> {
    let mut s = json!({"id": wamid, "status": status, "timestamp": "1764633700",
        "recipient_id": "5491123456789"});
    if let Some(cat) = pricing {
        s["pricing"] = json!({"billable": true, "pricing_model": "PMP", "category": cat});
    }
    change(json!({"messaging_product": "whatsapp", "statuses": [s]}))
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

async fn message(d: &Daemon, id: i64) -> Value {
    api(Method::GET, format!("{}/api/messages/{id}", d.base), None)
        .await
        .1
}

async fn messages(d: &Daemon) -> Vec<Value> {
    let body = api(
        Method::GET,
        format!("{}/api/messages?limit=100", d.base),
        None,
    )
    .await
    .1;
    body["messages"].as_array().cloned().unwrap_or_default()
}

async fn send(d: &Daemon, body: Value) -> (u16, Value) {
    api(Method::POST, format!("{}/api/messages", d.base), Some(body)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saldo_on_whatsapp_gets_the_balance_reply_on_whatsapp_and_statuses_move_it() {
    let graph = FakeGraph::start(ACCESS).await;
    let dir = tempfile::tempdir().unwrap();
    let hook = free_port();
    let d = start(dir.path(), &config(&graph, hook, ""));
    let (status_code, body) = api(
        Method::POST,
        format!("{}/api/customers", d.base),
        Some(json!([{"code": "4521", "name": "Ana Núñez", "phone": "011 15-2345-6789", "balance": "1234.50"}])),
    )
    .await;
    assert!((200..300).contains(&status_code), "{status_code} {body}");

    let saldo = text_from("5491123456789", "wamid.IN1", "Saldo");
    assert_eq!(post_hook(hook, &saldo, Some(&sign(&saldo))).await, 200);
    wait_for("the reply sent on WhatsApp", 30, async || {
        graph.with(|g| !g.sent.is_empty())
    })
    .await;
    let reply = graph.with(|g| g.sent[0].clone());
    assert_eq!(reply["type"], "text", "{reply}");
    assert_eq!(reply["to"], "5491123456789");
    let text = reply["text"]["body"].as_str().unwrap();
    assert!(
        text.contains("Ana Núñez") && text.contains("1.234,50"),
        "{text}"
    );
    assert!(graph.with(|g| g.violations.is_empty()));

    // Meta delivering the same webhook again (a replay) does not answer twice.
    assert_eq!(post_hook(hook, &saldo, Some(&sign(&saldo))).await, 200);
    let all = messages(&d).await;
    let out = all
        .iter()
        .find(|m| m["direction"] == "out")
        .unwrap()
        .clone();
    let id = out["id"].as_i64().unwrap();
    wait_for("the reply stored as sent with its wamid", 20, async || {
        message(&d, id).await["provider_ref"] == "wamid.HBgN0001"
    })
    .await;
    assert_eq!(
        all.iter().filter(|m| m["direction"] == "in").count(),
        1,
        "stored once"
    );
    assert_eq!(out["channel"], "whatsapp");

    // Statuses out of order and repeated: read before delivered, sent last, a late failure.
    for (s, cat) in [
        ("read", Some("service")),
        ("delivered", Some("service")),
        ("sent", Some("service")),
        ("read", None),
        ("failed", None),
    ] {
        let b = status("wamid.HBgN0001", s, cat);
        assert_eq!(post_hook(hook, &b, Some(&sign(&b))).await, 200, "{s}");
    }
    // "read" is kept as its own state, after delivered, in the message and in the list.
    let m = message(&d, id).await;
    assert_eq!(m["state"], "read", "{m}");
    assert!(m["delivered_at"].is_string(), "{m}");
    assert_eq!(m["last_error"], Value::Null);
    let listed = api(
        Method::GET,
        format!("{}/api/messages?state=read", d.base),
        None,
    )
    .await
    .1;
    let listed = listed["messages"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["id"], id);
    assert_eq!(listed[0]["state"], "read");
    let usage = api(Method::GET, format!("{}/api/whatsapp/usage", d.base), None)
        .await
        .1;
    assert_eq!(usage["days"][0]["service"], 1, "{usage}");
    assert_eq!(usage["days"][0]["marketing"], 0, "{usage}");
    // The same pricing, once, in the metrics' cost counters.
    let text = metrics(&d).await;
    for series in [
        r#"pasarela_whatsapp_billable_messages_total{category="service"} 1"#,
        r#"pasarela_whatsapp_billable_messages_total{category="marketing"} 0"#,
        r#"pasarela_messages_total{channel="whatsapp",direction="out",state="read"} 1"#,
    ] {
        assert!(has_series(&text, series), "{series}\n{text}");
    }
    assert!(!d.stderr_text().contains(APP_SECRET));
    assert!(!d.stderr_text().contains(ACCESS));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_refuse_unsigned_tampered_and_malformed_calls_and_change_nothing() {
    let graph = FakeGraph::start(ACCESS).await;
    let dir = tempfile::tempdir().unwrap();
    let hook = free_port();
    let d = start(dir.path(), &config(&graph, hook, ""));
    let body = text_from("5491123456789", "wamid.IN2", "Saldo");
    assert_eq!(post_hook(hook, &body, None).await, 401, "unsigned");
    let mut tampered = body.clone();
    let at = tampered.len() - 10;
    tampered[at] ^= 1;
    assert_eq!(
        post_hook(hook, &tampered, Some(&sign(&body))).await,
        401,
        "tampered"
    );
    assert_eq!(
        post_hook(hook, &body, Some("sha256=00")).await,
        401,
        "bad signature"
    );
    let malformed = br#"{"object": "whatsapp_business_account", "entry": [{"changes": [{"value": {"messages": [{"from": 5}]}}]}]}"#;
    assert_eq!(
        post_hook(hook, malformed, Some(&sign(malformed))).await,
        400,
        "malformed but signed"
    );
    let half_bad = change(json!({"messages": [
        {"from": "5491123456789", "id": "wamid.OK", "type": "text", "text": {"body": "hola"}},
        {"from": "not a number", "id": "wamid.BAD", "type": "text", "text": {"body": "x"}}]}));
    assert_eq!(
        post_hook(hook, &half_bad, Some(&sign(&half_bad))).await,
        400,
        "one bad message refuses the whole call"
    );
    assert!(messages(&d).await.is_empty(), "nothing stored");
    assert!(graph.with(|g| g.sent.is_empty()));

    // The GET handshake.
    let hs = |token: &str| {
        format!(
            "http://127.0.0.1:{hook}/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token={token}&hub.challenge=1158201444"
        )
    };
    let r = client().get(hs(VERIFY)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.text().await.unwrap(), "1158201444");
    let r = client().get(hs("wrong")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 403);
    // Each refusal counted by reason.
    let text = metrics(&d).await;
    for series in [
        r#"pasarela_webhook_rejections_total{webhook="whatsapp",reason="bad_signature"} 3"#,
        r#"pasarela_webhook_rejections_total{webhook="whatsapp",reason="bad_request"} 2"#,
        r#"pasarela_webhook_rejections_total{webhook="whatsapp",reason="forbidden"} 1"#,
    ] {
        assert!(has_series(&text, series), "{series}\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_sends_templates_with_a_pdf_header_and_keeps_text_inside_the_window() {
    let graph = FakeGraph::start(ACCESS).await;
    let dir = tempfile::tempdir().unwrap();
    let hook = free_port();
    let d = start(dir.path(), &config(&graph, hook, ""));
    let (code, body) = send(
        &d,
        json!({"to": "+5491123456789", "channel": "whatsapp", "template": {
            "name": "comprobantes", "language": "es_AR",
            "body": ["Ana", "$ 1.234,50", "10/12/2026"],
            "document": {"url": format!("{}/billing/1234.pdf", graph.url), "filename": "factura-1234.pdf"}}}),
    )
    .await;
    assert_eq!(code, 202, "{body}");
    let invoice = body["id"].as_i64().unwrap();
    // A link that answers a login page, not the PDF.
    let (_, body) = send(
        &d,
        json!({"to": "+5491123456789", "channel": "whatsapp", "template": {
            "name": "comprobantes", "language": "es_AR", "body": ["Ana", "$ 1", "10/12/2026"],
            "document": {"url": format!("{}/billing/login", graph.url)}}}),
    )
    .await;
    let html = body["id"].as_i64().unwrap();
    // A link that answers a PDF over the 16 MiB cap.
    let (_, body) = send(
        &d,
        json!({"to": "+5491123456789", "channel": "whatsapp", "template": {
            "name": "comprobantes", "language": "es_AR", "body": ["Ana", "$ 1", "10/12/2026"],
            "document": {"url": format!("{}/billing/huge.pdf", graph.url)}}}),
    )
    .await;
    let huge = body["id"].as_i64().unwrap();
    // No message from this customer: free text is never sent.
    let (_, body) = send(
        &d,
        json!({"to": "+5491123456789", "channel": "whatsapp", "text": "Hola"}),
    )
    .await;
    let text = body["id"].as_i64().unwrap();
    // Not on WhatsApp: permanent, with the reason.
    let (_, body) = send(
        &d,
        json!({"to": "+5491143210000", "channel": "whatsapp", "template": {"name": "aviso", "language": "es_AR"}}),
    )
    .await;
    let nowa = body["id"].as_i64().unwrap();
    wait_for("all settled", 30, async || {
        message(&d, invoice).await["state"] == "sent"
            && message(&d, text).await["state"] == "failed"
            && message(&d, nowa).await["state"] == "failed"
            && message(&d, html).await["state"] == "failed"
            && message(&d, huge).await["state"] == "failed"
    })
    .await;
    let sent = graph.with(|g| g.sent.clone());
    let tpl = sent
        .iter()
        .find(|b| b["template"]["name"] == "comprobantes")
        .unwrap();
    let comps = &tpl["template"]["components"];
    assert_eq!(comps[0]["type"], "header");
    assert_eq!(
        comps[0]["parameters"][0]["document"]["link"],
        format!("{}/billing/1234.pdf", graph.url)
    );
    let h = message(&d, html).await;
    assert!(
        h["last_error"]
            .as_str()
            .unwrap()
            .contains("answered text/html; charset=utf-8, not a PDF"),
        "{h}"
    );
    let h = message(&d, huge).await;
    assert!(
        h["last_error"]
            .as_str()
            .unwrap()
            .contains("is over the 16 MB cap"),
        "{h}"
    );
    assert_eq!(h["attempts"], 1, "{h}");
    assert_eq!(
        sent.len(),
        2,
        "neither the HTML one nor the huge one reached WhatsApp"
    );
    assert_eq!(comps[1]["parameters"][2]["text"], "10/12/2026");
    assert!(sent.iter().all(|b| b["type"] != "text"), "no text sent");
    let t = message(&d, text).await;
    assert!(
        t["last_error"].as_str().unwrap().contains("24-hour window"),
        "{t}"
    );
    let n = message(&d, nowa).await;
    assert!(n["last_error"].as_str().unwrap().contains("131026"), "{n}");
    assert_eq!(n["attempts"], 1);
    assert!(graph.with(|g| g.violations.is_empty()));

    // Bad input names the field and queues nothing.
    for (req, field) in [
        (
            json!({"to": "+5491123456789", "channel": "whatsapp", "template": {"name": "Bad Name", "language": "es_AR"}}),
            "template.name",
        ),
        (
            json!({"to": "+5491123456789", "channel": "whatsapp", "text": "x", "template": {"name": "a", "language": "es_AR"}}),
            "template",
        ),
        (
            json!({"to": "+5491123456789", "template": {"name": "a", "language": "es_AR"}}),
            "template",
        ),
    ] {
        let (code, body) = send(&d, req).await;
        assert_eq!(code, 400, "{body}");
        assert_eq!(body["error"]["field"], field, "{body}");
    }
}

/// `rate_limit` holds where Meta counts it: on the requests as they arrive, not on the
/// dispatcher's claims (claimed messages whose requests left late used to crowd the next
/// window). A count over the arrival times the server recorded, not a timing of our speed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_never_puts_more_than_the_rate_limit_in_any_second_at_meta() {
    let graph = FakeGraph::start(ACCESS).await;
    let dir = tempfile::tempdir().unwrap();
    let hook = free_port();
    let d = start(
        dir.path(),
        &config(&graph, hook, "rate_limit = \"6/second\""),
    );
    let n = 30;
    let batch: Vec<Value> = (0..n)
        .map(|i| {
            json!({"to": format!("+54911{:08}", 30_000_000 + i), "channel": "whatsapp",
                "template": {"name": "aviso_corte", "language": "es_AR", "body": [format!("Cliente {i}")]}})
        })
        .collect();
    let (code, body) = api(
        Method::POST,
        format!("{}/api/messages/batch", d.base),
        Some(json!({ "messages": batch })),
    )
    .await;
    assert!((200..300).contains(&code), "{code} {body}");
    wait_for("the whole batch at Meta", 60, async || {
        graph.with(|g| g.arrived.len() >= n)
    })
    .await;
    let times = graph.with(|g| g.arrived.clone());
    assert_eq!(times.len(), n);
    let mut lo = 0;
    for hi in 0..times.len() {
        while times[hi].duration_since(times[lo]) >= Duration::from_secs(1) {
            lo += 1;
        }
        assert!(
            hi - lo < 6,
            "{} requests within one second (requests {lo} to {hi})",
            hi - lo + 1
        );
    }
    assert!(graph.with(|g| g.violations.is_empty()));
}

/// Argentina: WhatsApp may know a number by another id than its E.164 digits (54… vs 549…);
/// once Meta reported that `wa_id`, later messages go to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn later_messages_go_to_the_wa_id_meta_reported_for_the_number() {
    let graph = FakeGraph::start(ACCESS).await;
    let dir = tempfile::tempdir().unwrap();
    let hook = free_port();
    let d = start(dir.path(), &config(&graph, hook, ""));
    graph.with(|g| {
        g.wa_ids
            .insert("5491155551234".into(), "541155551234".into())
    });
    let mut peers = Vec::new();
    for _ in 0..2 {
        let (code, body) = send(
            &d,
            json!({"to": "011 15-5555-1234", "channel": "whatsapp", "template": {"name": "aviso", "language": "es_AR"}}),
        )
        .await;
        assert_eq!(code, 202, "{body}");
        let id = body["id"].as_i64().unwrap();
        wait_for("sent", 20, async || {
            message(&d, id).await["state"] == "sent"
        })
        .await;
        peers.push(message(&d, id).await["peer"].clone());
    }
    let to: Vec<Value> = graph.with(|g| g.sent.iter().map(|b| b["to"].clone()).collect());
    assert_eq!(to, [json!("5491155551234"), json!("541155551234")]);
    // The stored number stays the normalized one.
    assert_eq!(peers, [json!("+5491155551234"), json!("+5491155551234")]);

    // Meta's throughput error (130429) is temporary: the message waits and goes on a retry.
    let (_, body) = send(
        &d,
        json!({"to": "+5491155550429", "channel": "whatsapp", "template": {"name": "aviso", "language": "es_AR"}}),
    )
    .await;
    let id = body["id"].as_i64().unwrap();
    wait_for("sent on the retry", 30, async || {
        message(&d, id).await["state"] == "sent"
    })
    .await;
    let m = message(&d, id).await;
    assert_eq!(m["attempts"], 2, "{m}");
    let tries = graph.with(|g| g.sent.iter().filter(|b| b["to"] == "5491155550429").count());
    assert_eq!(tries, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_the_window_a_text_goes_as_the_configured_template() {
    let graph = FakeGraph::start(ACCESS).await;
    let dir = tempfile::tempdir().unwrap();
    let hook = free_port();
    let d = start(
        dir.path(),
        &config(
            &graph,
            hook,
            "outside_window_template = { name = \"aviso_general\", language = \"es_AR\" }",
        ),
    );
    let (_, body) = send(
        &d,
        json!({"to": "+5491123456789", "channel": "whatsapp", "text": "Corte programado mañana"}),
    )
    .await;
    let id = body["id"].as_i64().unwrap();
    wait_for("sent", 20, async || {
        message(&d, id).await["state"] == "sent"
    })
    .await;
    let sent = graph.with(|g| g.sent[0].clone());
    assert_eq!(sent["type"], "template");
    assert_eq!(sent["template"]["name"], "aviso_general");
    assert_eq!(
        sent["template"]["components"][0]["parameters"][0]["text"],
        "Corte programado mañana"
    );

    // Inside the window by our records (the customer wrote), but Meta answers 131047: the text
    // goes as the template in the same attempt.
    let hola = text_from("5491155551047", "wamid.IN1047", "hola");
    assert_eq!(post_hook(hook, &hola, Some(&sign(&hola))).await, 200);
    let (_, body) = send(
        &d,
        json!({"to": "+5491155551047", "channel": "whatsapp", "text": "Su equipo ya fue configurado"}),
    )
    .await;
    let id = body["id"].as_i64().unwrap();
    wait_for("sent after 131047", 20, async || {
        message(&d, id).await["state"] == "sent"
    })
    .await;
    let sent: Vec<Value> = graph.with(|g| {
        g.sent
            .iter()
            .filter(|b| {
                // (The keyword rules may answer "hola" too: only ours.)
                let ours = "Su equipo ya fue configurado";
                b["text"]["body"] == ours
                    || b["template"]["components"][0]["parameters"][0]["text"] == ours
            })
            .cloned()
            .collect()
    });
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(sent[0]["type"], "text", "tried as text first");
    assert_eq!(sent[1]["template"]["name"], "aviso_general");
    assert_eq!(
        sent[1]["template"]["components"][0]["parameters"][0]["text"],
        "Su equipo ya fue configurado"
    );
    assert_eq!(message(&d, id).await["attempts"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_takes_the_channel_down_and_messages_wait_until_it_is_renewed() {
    let graph = FakeGraph::start(ACCESS).await;
    let dir = tempfile::tempdir().unwrap();
    let hook = free_port();
    let token_file = dir.path().join("whatsapp.token");
    std::fs::write(&token_file, "EAAG-expired-token-0123456789\n").unwrap();
    let conf = config(&graph, hook, "health_interval_secs = 1").replace(
        &format!("access_token = \"{ACCESS}\""),
        &format!("access_token_file = \"{}\"", token_file.display()),
    );
    let d = start(dir.path(), &conf);
    let (_, body) = send(
        &d,
        json!({"to": "+5491123456789", "channel": "whatsapp", "template": {"name": "aviso", "language": "es_AR"}}),
    )
    .await;
    let id = body["id"].as_i64().unwrap();
    wait_for("health says why", 20, async || {
        let s = api(Method::GET, format!("{}/api/status", d.base), None)
            .await
            .1;
        s.to_string().contains("access token was refused (190)")
    })
    .await;
    let m = message(&d, id).await;
    assert_eq!(m["state"], "queued", "{m}");
    let lines = doctor(&d).await;
    assert!(
        lines.contains("FAIL WhatsApp refused the access token (190)"),
        "{lines}"
    );
    assert!(d.stderr_text().contains("WhatsApp channel down"));
    // The token is renewed in its file: the next check brings the channel back and the
    // message that waited goes.
    std::fs::write(&token_file, format!("{ACCESS}\n")).unwrap();
    wait_for("the message sent after the renewal", 30, async || {
        message(&d, id).await["state"] == "sent"
    })
    .await;
    assert!(d.stderr_text().contains("WhatsApp channel up again"));

    // The token expires while the daemon runs (Meta starts refusing it): the channel goes down
    // with the reason, a message sent meanwhile waits queued, the one sent before stays sent.
    const RENEWED: &str = "EAAG-renewed-token-0123456789";
    graph.with(|g| g.token = RENEWED.into());
    let (_, body) = send(
        &d,
        json!({"to": "+5491123456789", "channel": "whatsapp", "template": {"name": "aviso", "language": "es_AR"}}),
    )
    .await;
    let later = body["id"].as_i64().unwrap();
    wait_for("health says why again", 20, async || {
        let s = api(Method::GET, format!("{}/api/status", d.base), None)
            .await
            .1;
        s.to_string().contains("access token was refused (190)")
    })
    .await;
    let m = message(&d, later).await;
    assert!(
        m["state"] == "queued" || m["state"] == "sending",
        "waits: {m}"
    );
    assert_eq!(message(&d, id).await["state"], "sent");
    std::fs::write(&token_file, format!("{RENEWED}\n")).unwrap();
    wait_for(
        "the waiting message sent with the new token",
        30,
        async || message(&d, later).await["state"] == "sent",
    )
    .await;
    let sent = graph.with(|g| g.sent.len());
    assert_eq!(sent, 2, "each message reached WhatsApp once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_notice_goes_as_the_configured_whatsapp_template() {
    let graph = FakeGraph::start(ACCESS).await;
    let dir = tempfile::tempdir().unwrap();
    let hook = free_port();
    let d = start(
        dir.path(),
        &config(
            &graph,
            hook,
            "[rules.payment]\nchannels = [\"whatsapp\", \"email\", \"sms\"]\n\
             template = \"Recibimos su pago de %monto%. %empresa%\"\n\
             whatsapp_template = { name = \"pago_recibido\", language = \"es_AR\", body = [\"%nombre%\", \"%monto%\"] }",
        ),
    );
    let (code, body) = api(
        Method::POST,
        format!("{}/api/customers", d.base),
        Some(json!([{"code": "C-1", "name": "Ana Núñez", "phone": "+5491123456789"}])),
    )
    .await;
    assert!((200..300).contains(&code), "{body}");
    let (code, body) = api(
        Method::POST,
        format!("{}/api/events", d.base),
        Some(json!({"id": "pay-1", "type": "payment", "customer": "C-1", "amount": "1234.50", "method": "automatic"})),
    )
    .await;
    assert_eq!(code, 202, "{body}");
    assert_eq!(body["result"]["notice"]["channel"], "whatsapp", "{body}");
    let skipped = body["result"]["skipped"].to_string();
    assert!(
        skipped.contains("email") && skipped.contains("sms"),
        "{skipped}"
    );
    wait_for("the template sent", 20, async || {
        graph.with(|g| !g.sent.is_empty())
    })
    .await;
    let sent = graph.with(|g| g.sent[0].clone());
    assert_eq!(sent["template"]["name"], "pago_recibido");
    assert_eq!(
        sent["template"]["components"][0]["parameters"][1]["text"],
        "$ 1.234,50"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn templates_sync_from_meta_and_mappings_are_checked_against_them() {
    let graph = FakeGraph::start(ACCESS).await;
    let dir = tempfile::tempdir().unwrap();
    let hook = free_port();
    let d = start(
        dir.path(),
        &config(
            &graph,
            hook,
            "[events.invoice]\nchannels = [\"whatsapp\"]\n\
             whatsapp_template = { name = \"comprobantes\", language = \"es_AR\", body = [\"%nombre%\", \"%monto%\"], document = \"%pdf_url%\" }\n\
             [rules.payment]\nchannels = [\"whatsapp\"]\n\
             whatsapp_template = { name = \"pago_recibido\", language = \"es_AR\", body = [\"%nombre%\", \"%monto%\"] }",
        ),
    );
    let (code, body) = api(
        Method::POST,
        format!("{}/api/whatsapp/templates/sync", d.base),
        None,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["synced"], 2, "both pages: {body}");
    let list = api(
        Method::GET,
        format!("{}/api/whatsapp/templates", d.base),
        None,
    )
    .await
    .1;
    assert_eq!(list["templates"][0]["name"], "comprobantes");
    assert_eq!(list["templates"][0]["status"], "APPROVED");
    let problems = list["mapping_problems"].to_string();
    assert!(
        problems.contains("takes 3 body parameters; the mapping gives 2"),
        "{problems}"
    );
    assert!(problems.contains("is PENDING, not approved"), "{problems}");
    let lines = doctor(&d).await;
    assert!(
        lines.contains("WhatsApp token works: Red Sur (+54 9 11 5555-0000), quality GREEN"),
        "{lines}"
    );
    assert!(
        lines.contains("WhatsApp webhook route answers on http://127.0.0.1:"),
        "{lines}"
    );
}

/// `pasarela doctor`'s lines for the daemon's config, in-process.
async fn doctor(d: &Daemon) -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
    let opts = pasarela::doctor::Options {
        config: d.config.clone(),
        user,
    };
    let checks = pasarela::doctor::run(&opts, &mut |_| {}).await;
    checks
        .iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_mapping_with_a_missing_parameter_is_refused_when_saved() {
    let graph = FakeGraph::start(ACCESS).await;
    let dir = tempfile::tempdir().unwrap();
    let hook = free_port();
    let d = start(dir.path(), &config(&graph, hook, ""));
    let (code, body) = api(
        Method::PUT,
        format!("{}/api/rules", d.base),
        Some(json!({"payment": {"channels": ["whatsapp", "sms"],
            "whatsapp_template": {"name": "pago_recibido", "language": "es_AR", "body": ["%nombre%", ""]}}})),
    )
    .await;
    assert_eq!(code, 422, "{body}");
    assert_eq!(
        body["error"]["field"], "rules.payment.whatsapp_template.body[1]",
        "{body}"
    );
    let rules = api(Method::GET, format!("{}/api/rules", d.base), None)
        .await
        .1;
    assert!(
        rules["payment"].get("channels").is_none(),
        "nothing saved: {rules}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whatsapp_messages_are_refused_when_the_channel_is_not_configured() {
    let dir = tempfile::tempdir().unwrap();
    let d = tokio::task::block_in_place(|| Daemon::start(dir.path()));
    let (code, body) = send(
        &d,
        json!({"to": "+5491123456789", "channel": "whatsapp", "text": "Hola"}),
    )
    .await;
    assert_eq!(code, 400, "{body}");
    assert_eq!(body["error"]["field"], "channel", "{body}");
    let (code, body) = api(
        Method::POST,
        format!("{}/api/messages/batch", d.base),
        Some(json!({"messages": [
            {"to": "+5491123456789", "text": "Hola"},
            {"to": "+5491123456789", "channel": "whatsapp", "text": "Hola"}]})),
    )
    .await;
    assert_eq!(code, 400, "{body}");
    assert_eq!(body["error"]["field"], "messages[1].channel", "{body}");
    assert!(messages(&d).await.is_empty(), "nothing queued");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_upload_pdfs_a_pdf_link_is_uploaded_once_sent_by_media_id_and_uploaded_again_when_stale()
 {
    let graph = FakeGraph::start(ACCESS).await;
    let dir = tempfile::tempdir().unwrap();
    let hook = free_port();
    let d = start(dir.path(), &config(&graph, hook, "upload_pdfs = true"));
    let pdf = format!("{}/billing/1234.pdf", graph.url);
    let invoice = |filename: Option<&str>| {
        let mut document = json!({"url": pdf});
        if let Some(f) = filename {
            document["filename"] = json!(f);
        }
        json!({"to": "+5491123456789", "channel": "whatsapp", "template": {
            "name": "comprobantes", "language": "es_AR", "body": ["Ana", "$ 1.234,50", "10/12/2026"],
            "document": document}})
    };
    let send_and_wait = async |body: Value| -> Value {
        let (code, answer) = send(&d, body).await;
        assert_eq!(code, 202, "{answer}");
        let id = answer["id"].as_i64().unwrap();
        wait_for("the message settled", 30, async || {
            let s = message(&d, id).await["state"].clone();
            s == "sent" || s == "failed"
        })
        .await;
        message(&d, id).await
    };
    let document_of = |n: usize| {
        graph.with(|g| g.sent[n]["template"]["components"][0]["parameters"][0]["document"].clone())
    };

    // The first send fetches the link, uploads it and sends by the new media id.
    let m = send_and_wait(invoice(Some("factura-1234.pdf"))).await;
    assert_eq!(m["state"], "sent", "{m}");
    let (uploads, fetches) = graph.with(|g| (g.uploads.clone(), g.pdf_fetches));
    assert_eq!(uploads.len(), 1);
    assert_eq!(fetches, 1);
    assert_eq!(uploads[0].filename, "factura-1234.pdf");
    assert_eq!(uploads[0].kind, "application/pdf");
    assert!(uploads[0].bytes.starts_with(b"%PDF-1.4"));
    let doc = document_of(0);
    assert_eq!(doc["id"], uploads[0].id.as_str(), "{doc}");
    assert!(doc.get("link").is_none(), "no link once uploaded: {doc}");
    assert_eq!(doc["filename"], "factura-1234.pdf");

    // The same link again: the kept media id, no fetch, no upload.
    let m = send_and_wait(invoice(None)).await;
    assert_eq!(m["state"], "sent", "{m}");
    assert_eq!(graph.with(|g| (g.uploads.len(), g.pdf_fetches)), (1, 1));
    assert_eq!(document_of(1)["id"], uploads[0].id.as_str());

    // Meta forgot the id before its time: the send is refused, the link uploaded again and the
    // message goes in the same attempt.
    graph.with(|g| g.expired.insert(uploads[0].id.clone()));
    let m = send_and_wait(invoice(None)).await;
    assert_eq!(m["state"], "sent", "{m}");
    assert_eq!(m["attempts"], 1, "{m}");
    let second = graph.with(|g| g.uploads[1].id.clone());
    assert_eq!(graph.with(|g| (g.uploads.len(), g.pdf_fetches)), (2, 2));
    assert_eq!(document_of(3)["id"], second.as_str());
    // Without a filename the upload is named after the link's last segment.
    assert_eq!(graph.with(|g| g.uploads[1].filename.clone()), "1234.pdf");

    // An id uploaded 30 days ago is not used any more (Meta keeps media 30 days).
    {
        let conn = rusqlite::Connection::open(d.db()).unwrap();
        let month_ago = chrono::Utc::now().timestamp_millis() - 30 * 24 * 3600 * 1000;
        let n = conn
            .execute(
                "UPDATE meta SET value = ?1 WHERE key = ?2",
                rusqlite::params![month_ago, format!("whatsapp.media_at:{pdf}")],
            )
            .unwrap();
        assert_eq!(
            n, 1,
            "the upload time is kept under whatsapp.media_at:<url>"
        );
    }
    let m = send_and_wait(invoice(None)).await;
    assert_eq!(m["state"], "sent", "{m}");
    let third = graph.with(|g| g.uploads[2].id.clone());
    assert_eq!(graph.with(|g| g.uploads.len()), 3);
    assert_eq!(document_of(4)["id"], third.as_str());

    // A link that answers a login page fails with the reason and uploads nothing.
    let mut login = invoice(None);
    login["template"]["document"]["url"] = json!(format!("{}/billing/login", graph.url));
    let m = send_and_wait(login).await;
    assert_eq!(m["state"], "failed", "{m}");
    assert!(
        m["last_error"].as_str().unwrap().contains("not a PDF"),
        "{m}"
    );
    assert_eq!(graph.with(|g| g.uploads.len()), 3);
    assert!(
        graph.with(|g| g.violations.is_empty()),
        "{:?}",
        graph.with(|g| g.violations.clone())
    );
}

/// The value of the first `name="NAME" value="…"` of a page.
fn form_field(html: &str, name: &str) -> String {
    let key = format!("name=\"{name}\" value=\"");
    let at = html
        .find(&key)
        .unwrap_or_else(|| panic!("no {name} in {html}"));
    let rest = &html[at + key.len()..];
    rest[..rest.find('"').unwrap()].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reply_box_shows_the_whatsapp_window_and_replies_on_whatsapp() {
    let graph = FakeGraph::start(ACCESS).await;
    let dir = tempfile::tempdir().unwrap();
    let hook = free_port();
    let d = start(dir.path(), &config(&graph, hook, ""));
    // An operator from the command line, logged in through the form.
    let mut child = std::process::Command::new(common::bin())
        .args(["user", "add", "maria", "--role", "operator", "--config"])
        .arg(&d.config)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"clave-de-maria\n")
            .unwrap();
    }
    assert!(child.wait().unwrap().success());
    let web = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let cookie = |r: &reqwest::Response, name: &str| {
        r.headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok()?.split(';').next()?.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(k, v)| format!("{k}={v}"))
            .unwrap()
    };
    let r = web.get(format!("{}/login", d.base)).send().await.unwrap();
    let login_cookie = cookie(&r, "pasarela_login");
    let csrf = form_field(&r.text().await.unwrap(), "csrf");
    let r = web
        .post(format!("{}/login", d.base))
        .header("cookie", login_cookie)
        .form(&[
            ("username", "maria"),
            ("password", "clave-de-maria"),
            ("csrf", &csrf),
            ("next", "/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let session = cookie(&r, "pasarela_session");

    let hola = text_from("5491123456789", "wamid.W1", "Hola, una consulta");
    assert_eq!(post_hook(hook, &hola, Some(&sign(&hola))).await, 200);
    wait_for("the inbound message", 30, async || {
        messages(&d).await.iter().any(|m| m["direction"] == "in")
    })
    .await;
    let peer = messages(&d)
        .await
        .into_iter()
        .find(|m| m["direction"] == "in")
        .unwrap()["peer"]
        .as_str()
        .unwrap()
        .replace('+', "%2B");
    let page = web
        .get(format!("{}/conversations/{peer}", d.base))
        .header("cookie", &session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("La respuesta va por WhatsApp"), "{page}");
    assert!(page.contains("id=\"wa-window\""), "{page}");
    assert!(
        page.contains("Ventana de 24 horas de WhatsApp abierta"),
        "{page}"
    );
    assert!(!page.contains("disabled"), "{page}");
    let csrf = form_field(&page, "csrf");
    let r = web
        .post(format!("{}/conversations/{peer}/reply", d.base))
        .header("cookie", &session)
        .form(&[("text", "Hola Ana, ¿en qué la ayudamos?"), ("csrf", &csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    // (The keyword rules may answer "Hola" with the help text too: look for ours.)
    wait_for("the operator's reply on WhatsApp", 30, async || {
        graph.with(|g| {
            g.sent.iter().any(|m| {
                m["type"] == "text" && m["text"]["body"] == "Hola Ana, ¿en qué la ayudamos?"
            })
        })
    })
    .await;
}
