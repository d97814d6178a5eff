//! The Android phone route end to end: the real `pasarela` binary against a fake phone that
//! follows the "SMS Gateway for Android" OpenAPI document and signs its webhooks like the app.

mod common;
#[path = "common/fake_phone.rs"]
mod fake_phone;

use std::time::Duration;

use common::{Daemon, TOKEN, api, client, free_port, queue, wait_for};
use fake_phone::{FakePhone, Mode, PASSWORD, SIGNING_KEY, sign, sign_at};
use reqwest::Method;
use serde_json::{Value, json};

/// Config under `[admin]`: fast retries, the webhook listener, and one phone `phone1`.
fn config(phone: &FakePhone, hook_port: u16, webhooks: bool, extra: &str) -> String {
    let hooks = if webhooks {
        format!(
            "webhook_url = \"http://127.0.0.1:{hook_port}/webhooks/android/phone1\"\n\
             signing_key = \"{SIGNING_KEY}\"\n"
        )
    } else {
        String::new()
    };
    format!(
        "token = \"{TOKEN}\"\n\
         [dispatch]\nretry_base_secs = 1\nretry_max_secs = 2\nmax_attempts = 50\n\
         [webhooks]\nlisten = \"127.0.0.1:{hook_port}\"\n\
         [[android]]\nname = \"phone1\"\nurl = \"{}\"\npassword = \"{PASSWORD}\"\n\
         health_interval_secs = 1\nrequest_timeout_secs = 2\n{hooks}{extra}\n",
        phone.url()
    )
}

fn start(dir: &std::path::Path, admin_extra: &str) -> Daemon {
    tokio::task::block_in_place(|| Daemon::start_full(dir, "", admin_extra, &[]))
}

async fn get(d: &Daemon, path: &str) -> Value {
    api(Method::GET, format!("{}{path}", d.base), None).await.1
}

async fn batch(d: &Daemon, texts: &[String], priority: &str) {
    let messages: Vec<Value> = texts
        .iter()
        .map(|t| json!({"to": "+5491123456789", "text": t, "priority": priority}))
        .collect();
    let (status, body) = api(
        Method::POST,
        format!("{}/api/messages/batch", d.base),
        Some(json!({ "messages": messages })),
    )
    .await;
    assert_eq!(status, 202, "{body}");
}

async fn message(d: &Daemon, id: i64) -> Value {
    get(d, &format!("/api/messages/{id}")).await
}

async fn inbound(d: &Daemon) -> Vec<Value> {
    get(d, "/api/messages?direction=in&limit=500").await["messages"]
        .as_array()
        .unwrap()
        .clone()
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_follows_state_and_registers_webhooks() {
    let phone = FakePhone::start().await;
    phone.with(|i| {
        for (id, url) in [
            ("pasarela-phone1-stale", "http://192.0.2.9/old"),
            ("someone-else", "http://192.0.2.9/crm"),
        ] {
            i.webhooks.insert(
                id.into(),
                json!({"id": id, "url": url, "event": "sms:received"}),
            );
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let hook = free_port();
    let d = start(
        dir.path(),
        &config(
            &phone,
            hook,
            true,
            "sim = 2\n[company]\nassume_mobile = false",
        ),
    );
    wait_for("our four webhooks, the stale one gone", 20, async || {
        let mut ids: Vec<String> = phone.with(|i| i.webhooks.keys().cloned().collect());
        ids.sort();
        ids == [
            "pasarela-phone1-delivered",
            "pasarela-phone1-failed",
            "pasarela-phone1-received",
            "pasarela-phone1-sent",
            "someone-else",
        ]
    })
    .await;
    let url = format!("http://127.0.0.1:{hook}/webhooks/android/phone1");
    assert!(phone.with(|i| {
        i.webhooks
            .values()
            .filter(|w| w["id"].as_str().unwrap().starts_with("pasarela-"))
            .all(|w| w["url"] == url.as_str())
    }));

    let text = "Su pago fue registrado. ¡Gracias, señor Núñez!";
    let id = queue(&d, "011 15-2345-6789", text).await;
    wait_for("delivered", 20, async || {
        message(&d, id).await["state"] == "delivered"
    })
    .await;
    let sent: Vec<_> = phone.with(|i| i.sent.iter().map(|s| i.messages[s].clone()).collect());
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].phone, "+5491123456789");
    assert_eq!(sent[0].text, text);
    assert_eq!(sent[0].sim, Some(2));
    assert!(sent[0].delivery_report);
    assert!(sent[0].id.starts_with("pasarela-") && sent[0].id.ends_with(&format!("-{id}")));
    let m = message(&d, id).await;
    assert_eq!(m["provider_ref"], sent[0].id.as_str());
    assert_eq!(m["transport"], "phone1");
    // Both per-part `sms:delivered` webhooks were acknowledged; the message is delivered once.
    wait_for("both delivery webhooks", 10, async || {
        phone.with(|i| {
            i.deliveries
                .iter()
                .filter(|(e, s)| e == "sms:delivered" && *s == 200)
                .count()
                == 2
        })
    })
    .await;
    assert_eq!(message(&d, id).await["state"], "delivered");

    // A landline in +54 form without the 9: the app's validation refuses it, for good.
    let id = queue(&d, "+54 11 4321-0000", "Aviso").await;
    wait_for("failed", 20, async || {
        message(&d, id).await["state"] == "failed"
    })
    .await;
    let m = message(&d, id).await;
    let error = m["last_error"].as_str().unwrap();
    assert!(
        error.contains("refused the message") && error.contains("Invalid phone number"),
        "{error}"
    );
    assert_eq!(m["attempts"], 1);

    let t = transport(&d, "phone1").await;
    assert_eq!(t["up"], true, "{t}");
    assert_eq!(t["details"]["app_version"], "1.40.0");
    assert_eq!(t["details"]["webhooks"], "registered");
    assert!(
        phone.with(|i| i.violations.is_empty()),
        "{:?}",
        phone.with(|i| i.violations.clone())
    );
    assert!(!d.stderr_text().contains(PASSWORD));
    assert!(!d.stderr_text().contains(SIGNING_KEY));
}

/// POSTs a webhook to pasarela's listener the way the app does; returns the status.
async fn post_hook(hook: u16, route: &str, body: &[u8], ts: &str, sig: &str) -> u16 {
    reqwest::Client::new()
        .post(format!("http://127.0.0.1:{hook}/webhooks/android/{route}"))
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

async fn signed(hook: u16, body: &[u8]) -> u16 {
    let (ts, sig) = sign(SIGNING_KEY, body);
    post_hook(hook, "phone1", body, &ts, &sig).await
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_webhooks_are_verified_and_stored_once() {
    let phone = FakePhone::start().await;
    let dir = tempfile::tempdir().unwrap();
    let hook = free_port();
    let d = start(dir.path(), &config(&phone, hook, true, ""));
    let saldo = event(
        "sms:received",
        json!({"messageId": "a1b2c3", "phoneNumber": "+5491123456789", "message": "SALDO",
               "receivedAt": "2026-11-22T12:00:00.000-03:00", "simNumber": 1}),
    );
    // The app retries until it gets a 2xx: three deliveries, one message.
    for _ in 0..3 {
        assert_eq!(signed(hook, &saldo).await, 200);
    }
    let alpha = event(
        "sms:received",
        json!({"messageId": "d4e5f6", "phoneNumber": "Personal", "message": "Tu recarga fue acreditada"}),
    );
    assert_eq!(signed(hook, &alpha).await, 200);
    let msgs = inbound(&d).await;
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    let saldo_row = msgs.iter().find(|m| m["text"] == "SALDO").unwrap();
    assert_eq!(saldo_row["peer"], "+5491123456789");
    assert_eq!(saldo_row["transport"], "phone1");
    assert_eq!(saldo_row["provider_ref"], "a1b2c3");
    assert!(msgs.iter().any(|m| m["peer"] == "Personal"));

    let fresh = event(
        "sms:received",
        json!({"messageId": "zzz", "phoneNumber": "+5491100000000", "message": "hola"}),
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // Unsigned.
    let code = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{hook}/webhooks/android/phone1"))
        .body(fresh.clone())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16();
    assert_eq!(code, 401);
    // Signed with another key.
    let (ts, sig) = sign("not-the-key-at-all", &fresh);
    assert_eq!(post_hook(hook, "phone1", &fresh, &ts, &sig).await, 401);
    // Signature of another body.
    let (ts, sig) = sign(SIGNING_KEY, &saldo);
    assert_eq!(post_hook(hook, "phone1", &fresh, &ts, &sig).await, 401);
    // Correctly signed, but stale or from the future.
    for ts in [now - 600, now + 600] {
        let ts = ts.to_string();
        let sig = sign_at(SIGNING_KEY, &fresh, &ts);
        assert_eq!(post_hook(hook, "phone1", &fresh, &ts, &sig).await, 401);
    }
    // Signed, but not JSON; an unknown event; a payload without the message.
    assert_eq!(signed(hook, b"<html>hello</html>").await, 400);
    assert_eq!(
        signed(hook, &event("sms:teleported", json!({"messageId": "x"}))).await,
        400
    );
    assert_eq!(
        signed(
            hook,
            &event(
                "sms:received",
                json!({"messageId": "y", "phoneNumber": "+5491100000000"})
            )
        )
        .await,
        400
    );
    // A huge body, signed or not.
    let huge = vec![b' '; 1024 * 1024];
    assert_eq!(signed(hook, &huge).await, 413);
    // A route that does not exist.
    let (ts, sig) = sign(SIGNING_KEY, &fresh);
    assert_eq!(post_hook(hook, "phone9", &fresh, &ts, &sig).await, 404);
    // Events we do not use are acknowledged; states of messages not ours change nothing.
    assert_eq!(signed(hook, &event("system:ping", json!({}))).await, 200);
    assert_eq!(
        signed(
            hook,
            &event(
                "sms:delivered",
                json!({"messageId": "pasarela-000000-1", "phoneNumber": "+5491100000000"})
            )
        )
        .await,
        200
    );
    assert_eq!(inbound(&d).await.len(), 2);
    // Nothing refused reached the inbox, so nothing answers it (the keyword rules may answer
    // the accepted SALDO).
    let outbound = get(&d, "/api/messages?direction=out&peer=%2B5491100000000").await;
    assert_eq!(outbound["messages"].as_array().unwrap().len(), 0);
    assert!(d.stderr_with("webhook refused").contains("webhook refused"));
    // Every refusal above is counted by reason in the metrics.
    let text = client()
        .get(format!("{}/metrics", d.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for (reason, n) in [
        ("bad_signature", 5),
        ("bad_request", 3),
        ("too_large", 1),
        ("unknown_route", 1),
    ] {
        let series = format!(
            "pasarela_webhook_rejections_total{{webhook=\"android\",reason=\"{reason}\"}} {n}"
        );
        assert!(text.lines().any(|l| l == series), "{series}\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_request_and_answer_sends_once() {
    let phone = FakePhone::start().await;
    phone.with(|i| i.hold_answers = true);
    let dir = tempfile::tempdir().unwrap();
    let hook = free_port();
    let conf = config(&phone, hook, true, "");
    let mut d = start(dir.path(), &conf);
    let id = queue(&d, "+5491123456789", "Corte programado mañana 9 a 11 h").await;
    // The phone has taken (and sent) the message but holds its answer: kill pasarela now.
    wait_for("the phone to hold the request", 20, async || {
        phone.with(|i| i.posts.len()) == 1
    })
    .await;
    d.kill9();
    phone.with(|i| i.hold_answers = false);
    let d = start(dir.path(), &conf);
    wait_for("sent after the restart", 20, async || {
        let s = message(&d, id).await["state"].clone();
        s == "sent" || s == "delivered"
    })
    .await;
    let (posts, sent, answers) =
        phone.with(|i| (i.posts.clone(), i.sent.clone(), i.answers.clone()));
    assert_eq!(posts.len(), 2, "the same request, twice");
    assert_eq!(posts[0].1, posts[1].1, "with the same id");
    assert_eq!(sent.len(), 1, "sent once");
    assert!(answers.contains(&409), "{answers:?}");
    phone.release.notify_waiters();
    assert!(d.stderr_with("already has it").contains("already has it"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_phone_goes_down_the_modem_takes_over_and_back() {
    use pasarela::modem::sim::{self, SimOptions};
    let phone = FakePhone::start().await;
    phone.with(|i| i.delivery_parts = 1);
    let dir = tempfile::tempdir().unwrap();
    let sim = sim::start(SimOptions::new(dir.path().join("modem")))
        .await
        .unwrap();
    let hook = free_port();
    let extra = format!(
        "[[modem]]\nname = \"modem1\"\ndevice = \"{}\"\n\
         [routing]\npolicy = \"failover\"\nprimary = [\"phone1\"]\nbackup = [\"modem1\"]\n",
        sim.link().display()
    );
    let d = start(dir.path(), &config(&phone, hook, true, &extra));
    wait_for("both routes up", 30, async || {
        transport(&d, "phone1").await["up"] == true && transport(&d, "modem1").await["up"] == true
    })
    .await;
    let round = |tag: &str| (0..5).map(|i| format!("{tag}{i}")).collect::<Vec<_>>();
    let all_sent = |texts: Vec<String>| {
        let d = &d;
        async move {
            let page = get(d, "/api/messages?direction=out&limit=500").await;
            texts.iter().all(|t| {
                page["messages"].as_array().unwrap().iter().any(|m| {
                    m["text"] == t.as_str() && (m["state"] == "sent" || m["state"] == "delivered")
                })
            })
        }
    };

    // The phone is primary: it carries everything while it is up.
    batch(&d, &round("a"), "notification").await;
    wait_for("round a sent", 30, async || all_sent(round("a")).await).await;
    assert_eq!(phone.sent_texts().len(), 5);
    assert!(sim.sent().is_empty());

    // Android stops the app: the phone stops answering; the modem takes over.
    phone.with(|i| i.hang = true);
    batch(&d, &round("b"), "notification").await;
    wait_for("round b sent", 60, async || all_sent(round("b")).await).await;
    let modem_texts: Vec<String> = sim.sent().into_iter().map(|s| s.text).collect();
    for t in round("b") {
        assert!(
            modem_texts.contains(&t),
            "{t} not sent by the modem: {modem_texts:?}"
        );
        assert!(!phone.sent_texts().contains(&t));
    }
    let t = transport(&d, "phone1").await;
    assert_eq!(t["up"], false);
    assert!(
        t["detail"]
            .as_str()
            .unwrap()
            .contains("Android may have stopped it"),
        "{t}"
    );

    // The app is back: the phone takes the traffic again.
    phone.with(|i| i.hang = false);
    wait_for("the phone up again", 30, async || {
        transport(&d, "phone1").await["up"] == true
    })
    .await;
    sim.clear_sent();
    batch(&d, &round("c"), "notification").await;
    wait_for("round c sent", 30, async || all_sent(round("c")).await).await;
    for t in round("c") {
        assert!(phone.sent_texts().contains(&t));
    }
    assert!(sim.sent().is_empty());
    drop(d);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_holds_under_a_bulk_of_1000() {
    const LIMIT: usize = 6;
    const WINDOW: Duration = Duration::from_secs(3);
    let phone = FakePhone::start().await;
    let dir = tempfile::tempdir().unwrap();
    let hook = free_port();
    let d = start(
        dir.path(),
        &config(&phone, hook, false, "rate_limit = \"6/3s\""),
    );
    let texts: Vec<String> = (0..1000).map(|i| format!("Corte programado {i}")).collect();
    batch(&d, &texts, "bulk").await;
    wait_for("three windows' worth of sends", 60, async || {
        phone.with(|i| i.posts.len()) >= 3 * LIMIT
    })
    .await;
    let posts: Vec<_> = phone.with(|i| i.posts.iter().map(|(t, _)| *t).collect());
    // Counted at the phone, a window one second shorter than the limit's leaves room for the
    // time a request takes to get there.
    let look = WINDOW - Duration::from_secs(1);
    for (n, start) in posts.iter().enumerate() {
        let within = posts[n..]
            .iter()
            .filter(|t| t.duration_since(*start) < look)
            .count();
        assert!(
            within <= LIMIT,
            "{within} sends within {look:?} of send {n}"
        );
    }
    // The rest waits its turn in the queue: nothing failed, nothing sent twice.
    let status = get(&d, "/api/status").await;
    let sent_so_far = phone.with(|i| i.posts.len()) as u64;
    let queued = status["queue"]["queued"].as_u64().unwrap();
    assert!(queued + sent_so_far + 8 >= 1000, "{status}");
    assert_eq!(status["queue"]["failed"], 0, "{status}");
    let ids: std::collections::HashSet<_> =
        phone.with(|i| i.posts.iter().map(|(_, id)| id.clone()).collect());
    assert_eq!(ids.len(), phone.with(|i| i.posts.len()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_answers_are_retried_and_the_message_goes_once() {
    let phone = FakePhone::start().await;
    let dir = tempfile::tempdir().unwrap();
    let hook = free_port();
    let d = start(dir.path(), &config(&phone, hook, false, ""));
    wait_for("the phone up", 20, async || {
        transport(&d, "phone1").await["up"] == true
    })
    .await;
    phone.with(|i| i.mode = Some(Mode::Error500));
    let id = queue(&d, "+5491123456789", "Su factura de noviembre").await;
    for (mode, expect) in [
        (Mode::Error500, "500"),
        (Mode::Html, "It works!"),
        (Mode::Redirect, "redirect"),
    ] {
        phone.with(|i| i.mode = Some(mode));
        wait_for(expect, 30, async || {
            let m = message(&d, id).await;
            m["last_error"].as_str().is_some_and(|e| e.contains(expect))
        })
        .await;
        assert_eq!(message(&d, id).await["state"], "queued");
    }
    phone.with(|i| i.mode = Some(Mode::Normal));
    // Without webhooks, the delivery is learnt by asking the phone.
    wait_for("delivered", 30, async || {
        message(&d, id).await["state"] == "delivered"
    })
    .await;
    assert_eq!(phone.with(|i| i.sent.len()), 1);

    // A health check answered by something that is not the app marks the phone down.
    phone.with(|i| i.health_html = true);
    wait_for("the phone down", 20, async || {
        let t = transport(&d, "phone1").await;
        t["up"] == false
            && t["detail"]
                .as_str()
                .is_some_and(|s| s.contains("not as the SMS Gateway app"))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_texts_saldo_and_the_reply_leaves_through_the_phone() {
    let phone = FakePhone::start().await;
    let dir = tempfile::tempdir().unwrap();
    let hook = free_port();
    let d = start(
        dir.path(),
        &config(&phone, hook, true, "[company]\nname = \"Red Sur\""),
    );
    let (status, body) = api(
        Method::POST,
        format!("{}/api/customers", d.base),
        Some(json!([{"code": "4521", "name": "Ana Núñez", "phone": "011 15-2345-6789", "balance": "1234.50"}])),
    )
    .await;
    assert!((200..300).contains(&status), "{status} {body}");
    wait_for("our webhooks registered", 20, async || {
        phone.with(|i| i.webhooks.len()) == 4
    })
    .await;
    // The customer texts the phone; the app calls pasarela's webhook, signed.
    let code = phone
        .fire(
            "sms:received",
            json!({"messageId": "in-0001", "phoneNumber": "+5491123456789", "message": "Saldo",
                   "receivedAt": "2026-11-22T12:00:00.000-03:00", "simNumber": 1}),
        )
        .await;
    assert_eq!(code, 200);
    wait_for("the reply sent by the phone", 30, async || {
        phone.with(|i| !i.sent.is_empty())
    })
    .await;
    let reply = phone.with(|i| i.messages[&i.sent[0]].clone());
    assert_eq!(reply.phone, "+5491123456789");
    assert!(reply.text.contains("Ana Núñez"), "{}", reply.text);
    assert!(reply.text.contains("1.234,50"), "{}", reply.text);
    assert!(reply.text.contains("Red Sur"), "{}", reply.text);
    // The app delivering the same webhook again does not answer twice.
    phone
        .fire(
            "sms:received",
            json!({"messageId": "in-0001", "phoneNumber": "+5491123456789", "message": "Saldo"}),
        )
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(phone.with(|i| i.sent.len()), 1);
    assert_eq!(inbound(&d).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_keep_the_phone_out_of_use() {
    let phone = FakePhone::start().await;
    let dir = tempfile::tempdir().unwrap();
    let hook = free_port();
    let conf = config(&phone, hook, true, "").replace(PASSWORD, "not-the-password");
    let d = start(dir.path(), &conf);
    wait_for("the refusal shown", 20, async || {
        let t = transport(&d, "phone1").await;
        t["up"] == false
            && t["detail"]
                .as_str()
                .is_some_and(|s| s.contains("refused the username/password"))
    })
    .await;
    let id = queue(&d, "+5491123456789", "Aviso").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(message(&d, id).await["state"], "queued");
    assert!(phone.with(|i| i.posts.is_empty() && i.webhooks.is_empty()));
    assert!(!d.stderr_text().contains("not-the-password"));
}

/// `inbound = "poll"`: the phone cannot reach pasarela (its webhook URL goes nowhere), so
/// pasarela reads the app's inbox. Every SMS is stored once and answered once: across repeated
/// reads, an entry listed twice, the phone's clock stepping back, and a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poll_mode_stores_and_answers_each_inbox_sms_once() {
    let phone = FakePhone::start().await;
    let dir = tempfile::tempdir().unwrap();
    let hook = free_port();
    let nowhere = free_port();
    let extra = format!(
        "inbound = \"poll\"\npoll_interval_secs = 1\n\
         webhook_url = \"http://127.0.0.1:{nowhere}/webhooks/android/phone1\"\n\
         signing_key = \"{SIGNING_KEY}\"\n[company]\nname = \"Red Sur\""
    );
    let conf = config(&phone, hook, false, &extra);
    let mut d = start(dir.path(), &conf);
    let (status, body) = api(
        Method::POST,
        format!("{}/api/customers", d.base),
        Some(json!([{"code": "4521", "name": "Ana Núñez", "phone": "011 15-2345-6789", "balance": "1234.50"}])),
    )
    .await;
    assert!((200..300).contains(&status), "{status} {body}");
    // Only the state webhooks are registered: received SMS come from the inbox.
    wait_for("the state webhooks registered", 20, async || {
        let mut ids: Vec<String> = phone.with(|i| i.webhooks.keys().cloned().collect());
        ids.sort();
        ids == [
            "pasarela-phone1-delivered",
            "pasarela-phone1-failed",
            "pasarela-phone1-sent",
        ]
    })
    .await;

    phone.receive_sms("text:1001", "+5491123456789", "Saldo");
    phone.receive_sms(
        "text:1002",
        "+5491198765432",
        "hola, ¿cómo consulto mi deuda?",
    );
    // The same entry listed twice (the app's table is keyed by id; a page can still repeat
    // an entry when new messages shift the offsets).
    phone.with(|i| {
        let again = i.inbox[0].clone();
        i.inbox.push(again);
    });
    wait_for("both answered", 30, async || {
        phone.with(|i| i.sent.len()) >= 2
    })
    .await;
    // The phone's clock steps back two minutes: the next SMS is stamped before the cursor.
    phone.with(|i| i.clock_offset_ms = -120_000);
    phone.receive_sms("text:1003", "+5491155554444", "soporte sin internet");
    wait_for("the third answered", 30, async || {
        phone.with(|i| i.sent.len()) >= 3
    })
    .await;
    let reads = phone.with(|i| i.inbox_reads);
    wait_for("three more reads of the inbox", 30, async || {
        phone.with(|i| i.inbox_reads) >= reads + 3
    })
    .await;
    let check = |d: &Daemon| {
        let d_base = d.base.clone();
        let phone = phone.clone();
        async move {
            let msgs = get_base(&d_base, "/api/messages?direction=in&limit=500").await;
            let msgs = msgs["messages"].as_array().unwrap().clone();
            let mut refs: Vec<String> = msgs
                .iter()
                .map(|m| m["peer"].as_str().unwrap().to_string())
                .collect();
            refs.sort();
            assert_eq!(
                refs,
                ["+5491123456789", "+5491155554444", "+5491198765432"],
                "each SMS stored once"
            );
            let mut to: Vec<String> = phone.with(|i| {
                i.sent
                    .iter()
                    .map(|id| i.messages[id].phone.clone())
                    .collect()
            });
            to.sort();
            assert_eq!(
                to,
                ["+5491123456789", "+5491155554444", "+5491198765432"],
                "each SMS answered once"
            );
        }
    };
    check(&d).await;
    let ana = phone.with(|i| {
        i.sent
            .iter()
            .map(|id| i.messages[id].clone())
            .find(|m| m.phone == "+5491123456789")
            .unwrap()
    });
    assert!(ana.text.contains("1.234,50"), "{}", ana.text);
    let t = transport(&d, "phone1").await;
    assert_eq!(t["details"]["inbox"], "read from the phone's inbox", "{t}");

    // A restart reads the inbox again from the stored cursor: nothing new is stored or sent.
    d.signal("TERM");
    assert_eq!(d.wait_exit(Duration::from_secs(20)), Some(0));
    let reads = phone.with(|i| i.inbox_reads);
    let d = start(dir.path(), &conf);
    wait_for("the inbox read after the restart", 30, async || {
        phone.with(|i| i.inbox_reads) >= reads + 2
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    check(&d).await;
    assert!(
        phone.with(|i| i.violations.is_empty()),
        "{:?}",
        phone.with(|i| i.violations.clone())
    );
}

/// An app version without `GET /inbox` is shown in the phone's status, with the reason; the
/// phone still sends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poll_mode_without_an_inbox_says_why() {
    let phone = FakePhone::start().await;
    phone.with(|i| i.no_inbox = true);
    let dir = tempfile::tempdir().unwrap();
    let hook = free_port();
    let d = start(
        dir.path(),
        &config(
            &phone,
            hook,
            false,
            "inbound = \"poll\"\npoll_interval_secs = 1",
        ),
    );
    wait_for("the missing inbox reported", 20, async || {
        let t = transport(&d, "phone1").await;
        t["details"]["inbox"]
            .as_str()
            .is_some_and(|s| s.contains("the app has no inbox (GET /inbox answered 404"))
    })
    .await;
    let t = transport(&d, "phone1").await;
    assert_eq!(t["up"], true, "{t}");
    let id = queue(&d, "+5491123456789", "Aviso").await;
    wait_for("the message sent", 20, async || {
        let state = message(&d, id).await["state"].clone();
        state == "sent" || state == "delivered"
    })
    .await;
    assert_eq!(phone.with(|i| i.sent.len()), 1);
    // An answer that is not the app's (HTML) is reported and stores nothing; once the inbox
    // answers, what it holds is read.
    phone.with(|i| {
        i.no_inbox = false;
        i.inbox_html = true;
    });
    phone.receive_sms("text:-1795", "Personal", "Su recarga fue acreditada");
    wait_for("the HTML answer reported", 20, async || {
        let t = transport(&d, "phone1").await;
        t["details"]["inbox"]
            .as_str()
            .is_some_and(|s| s.contains("did not answer the app's JSON"))
    })
    .await;
    assert!(inbound(&d).await.is_empty());
    phone.with(|i| i.inbox_html = false);
    wait_for("the SMS read", 20, async || inbound(&d).await.len() == 1).await;
    let m = &inbound(&d).await[0];
    assert_eq!(m["peer"], "Personal", "{m}");
    assert_eq!(m["text"], "Su recarga fue acreditada", "{m}");
    assert_eq!(
        m["provider_ref"], "fffff8fd",
        "the webhook form of the id: {m}"
    );
}

async fn get_base(base: &str, path: &str) -> Value {
    api(Method::GET, format!("{base}{path}"), None).await.1
}
