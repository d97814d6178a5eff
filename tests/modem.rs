//! The GSM modem route end to end, in-process: the daemon drives `pasarela modem-sim` through a
//! real pseudo-terminal, with a real SQLite file.
use pasarela::admin::MessageView;
use pasarela::modem::sim::{self, ConfigPatch, Fault, SimHandle, SimOptions};
use pasarela::store::{Direction, State};
use serde_json::json;

mod common;
use common::gateway::Gateway;
use common::{TOKEN, wait_for};

/// The retry settings the tests below use.
const DISPATCH: &str = "[dispatch]\nretry_base_secs = 1\nretry_max_secs = 2\nmax_attempts = 20";

impl Gateway {
    async fn post(&self, path: &str, body: serde_json::Value) -> serde_json::Value {
        let r = reqwest::Client::new()
            .post(format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.status());
        r.json().await.unwrap()
    }

    /// Every message, through the API (newest first).
    async fn messages(&self) -> Vec<MessageView> {
        let page = self.get("/api/messages?limit=500").await;
        serde_json::from_value(page["messages"].clone()).unwrap()
    }
}

async fn simulator(dir: &std::path::Path, configure: impl FnOnce(&mut SimOptions)) -> SimHandle {
    let mut opts = SimOptions::new(dir.join("modem"));
    configure(&mut opts);
    sim::start(opts).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_long_unicode_and_get_delivery_reports() {
    let dir = tempfile::tempdir().unwrap();
    let sim = simulator(dir.path(), |o| o.config.status_report_delay_ms = Some(50)).await;
    let gw = Gateway::start(dir.path(), DISPATCH, sim.link(), "").await;
    let text = "Estimado Señor Núñez, su saldo pendiente es $ 1.234,50. Le recordamos que la factura \
                vence el 05/12/2026; puede abonar en línea o en nuestras oficinas. ¿Consultas? Escríbanos. ¡Gracias!";
    let body = gw
        .post(
            "/api/messages",
            json!({"to": "011 15-2345-6789", "text": text}),
        )
        .await;
    let id = body["id"].as_i64().unwrap();
    wait_for("delivered", 30, async || {
        gw.get(&format!("/api/messages/{id}")).await["state"] == "delivered"
    })
    .await;
    let sent = sim.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].text, text);
    assert_eq!(sent[0].to, "+5491123456789");
    assert_eq!(sent[0].parts, 3);
    assert_eq!(sent[0].encoding, "ucs2");
    let m = gw.get(&format!("/api/messages/{id}")).await;
    assert_eq!(m["provider_ref"].as_str().unwrap().split(',').count(), 3);
    let status = gw.get("/api/status").await;
    assert_eq!(status["transports"][0]["up"], true);
    assert_eq!(status["transports"][0]["details"]["signal"], "excellent");
    assert_eq!(status["transports"][0]["details"]["model"], "SIM-Simulator");
    gw.stop().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receive_single_multipart_alphanumeric_and_a_full_sim() {
    let dir = tempfile::tempdir().unwrap();
    let sim = simulator(dir.path(), |o| o.config.capacity = 5).await;
    let gw = Gateway::start(dir.path(), DISPATCH, sim.link(), "").await;
    let long = "Hola, hace tres días que estoy sin internet en Villa Crespo, ¿pueden mandar un técnico? \
                Ya reinicié el router varias veces y la luz roja sigue encendida. Mi código de cliente es 4521.";
    sim.inbound("+5491123456789", "SALDO").unwrap();
    assert_eq!(sim.inbound("1123456780", long).unwrap(), 3);
    sim.inbound("Personal", "Tu recarga fue acreditada")
        .unwrap();
    for i in 0..12 {
        sim.inbound("+5491199990000", &format!("mensaje {i}"))
            .unwrap();
    }
    wait_for("15 inbound messages", 60, async || {
        gw.messages()
            .await
            .iter()
            .filter(|m| m.direction == Direction::In)
            .count()
            == 15
    })
    .await;
    wait_for("an empty SIM", 20, async || {
        sim.sim_messages().used == 0 && sim.sim_messages().waiting == 0
    })
    .await;
    let msgs = gw.messages().await;
    let bodies: Vec<&str> = msgs.iter().map(|m| m.text.as_str()).collect();
    assert!(bodies.contains(&long), "{bodies:?}");
    assert!(bodies.contains(&"SALDO"));
    let long_msg = msgs.iter().find(|m| m.text == long).unwrap();
    assert_eq!(long_msg.peer, "+5491123456780");
    let alpha = msgs
        .iter()
        .find(|m| m.text.starts_with("Tu recarga"))
        .unwrap();
    assert_eq!(alpha.peer, "Personal");
    assert!(
        msgs.iter()
            .filter(|m| m.direction == Direction::In)
            .all(|m| m.state == State::Received)
    );
    // The keyword rules answered the customers (at most 10 replies an hour to one number),
    // never the alphanumeric sender.
    wait_for("the auto-replies", 30, async || sim.sent().len() == 12).await;
    let sent = sim.sent();
    assert!(sent.iter().all(|m| m.to != "Personal"));
    assert_eq!(sent.iter().filter(|m| m.to == "+5491199990000").count(), 10);
    gw.stop().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_unplug_hang_errors_and_noise() {
    let dir = tempfile::tempdir().unwrap();
    let sim = simulator(dir.path(), |o| o.config.send_delay_ms = 20).await;
    let gw = Gateway::start(dir.path(), DISPATCH, sim.link(), "").await;
    sim.fault(&Fault::CmsError {
        code: 500,
        probability: 0.1,
    })
    .unwrap();
    sim.fault(&Fault::Garbage { secs: 600.0 }).unwrap();
    let n = 60;
    let messages: Vec<_> = (0..n)
        .map(|i| json!({"to": "+5491123456789", "text": format!("aviso {i}")}))
        .collect();
    gw.post("/api/messages/batch", json!({ "messages": messages }))
        .await;
    wait_for("some sent", 30, async || sim.sent().len() >= 10).await;
    sim.fault(&Fault::Unplug { secs: 3.0 }).unwrap();
    wait_for("more sent after the unplug", 60, async || {
        sim.sent().len() >= 30
    })
    .await;
    sim.fault(&Fault::Hang { secs: 10.0 }).unwrap();
    wait_for("every message sent", 120, async || {
        let status = gw.get("/api/status").await;
        let msgs = gw.get("/api/messages?state=sent&limit=500").await;
        status["queue"]["queued"] == 0 && msgs["messages"].as_array().unwrap().len() == n
    })
    .await;
    let msgs = gw.messages().await;
    assert!(msgs.iter().all(|m| m.state == State::Sent), "{msgs:?}");
    // Retried messages have their attempts and last error recorded.
    assert!(
        msgs.iter()
            .any(|m| m.attempts > 1 && m.last_error.is_some())
    );
    let texts: std::collections::HashSet<_> = sim.sent().into_iter().map(|s| s.text).collect();
    assert_eq!(texts.len(), n);
    gw.stop().await;
    sim.shutdown().await;
}

/// A modem still searching for the network when the daemon starts carries traffic within
/// seconds of registering, not at the next regular health check (a minute by default).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_modem_that_registers_late_is_used_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let sim = simulator(dir.path(), |o| {
        o.config.registration = pasarela::modem::sim::Registration::Searching
    })
    .await;
    let gw = Gateway::start(dir.path(), DISPATCH, sim.link(), "").await;
    wait_for("the modem seen searching", 30, async || {
        detail(&gw.get("/api/status").await).contains("not registered: searching")
    })
    .await;
    gw.post(
        "/api/messages",
        json!({"to": "+5491123456789", "text": "hola"}),
    )
    .await;
    sim.set_config(ConfigPatch {
        registration: Some(pasarela::modem::sim::Registration::Home),
        ..Default::default()
    })
    .unwrap();
    // Well under the one-minute regular check.
    wait_for("sent once registered", 30, async || sim.sent().len() == 1).await;
    gw.stop().await;
    sim.shutdown().await;
}

fn detail(status: &serde_json::Value) -> String {
    status["transports"][0]["detail"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_pin_is_tried_once_per_sim_and_never_shown() {
    let dir = tempfile::tempdir().unwrap();
    let sim = simulator(dir.path(), |o| o.config.pin = Some("4321".into())).await;
    let gw = Gateway::start(dir.path(), DISPATCH, sim.link(), "pin = \"1111\"").await;
    wait_for("the PIN refusal", 20, async || {
        detail(&gw.get("/api/status").await).contains("rejected the configured PIN")
    })
    .await;
    let d = detail(&gw.get("/api/status").await);
    assert!(!d.contains("1111"), "the PIN leaks into the status: {d}");
    assert!(d.contains("****"), "{d}");
    gw.stop().await;
    // A restart with the same PIN does not try it again.
    let gw = Gateway::start(dir.path(), DISPATCH, sim.link(), "pin = \"1111\"").await;
    wait_for("the refusal to retry", 20, async || {
        detail(&gw.get("/api/status").await).contains("already rejected once")
    })
    .await;
    gw.stop().await;
    // Another SIM (another ICCID) whose PIN is 1111: the same PIN is tried on it.
    sim.set_config(ConfigPatch {
        iccid: Some("8954340000000000002".into()),
        pin: Some(Some("1111".into())),
        ..ConfigPatch::default()
    })
    .unwrap();
    let gw = Gateway::start(dir.path(), DISPATCH, sim.link(), "pin = \"1111\"").await;
    wait_for("the new SIM up", 30, async || {
        gw.get("/api/status").await["transports"][0]["up"] == true
    })
    .await;
    gw.stop().await;
    // Back to the first SIM: the right PIN unlocks it.
    sim.set_config(ConfigPatch {
        iccid: Some("8954340000000000001".into()),
        pin: Some(Some("4321".into())),
        ..ConfigPatch::default()
    })
    .unwrap();
    let gw = Gateway::start(dir.path(), DISPATCH, sim.link(), "pin = \"4321\"").await;
    wait_for("the modem up", 30, async || {
        gw.get("/api/status").await["transports"][0]["up"] == true
    })
    .await;
    gw.stop().await;
    sim.set_config(ConfigPatch::default()).unwrap();
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pin_that_times_out_is_not_taken_for_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let sim = simulator(dir.path(), |o| o.config.pin = Some("4321".into())).await;
    sim.fault(&Fault::HangOnPin { secs: 1.0 }).unwrap();
    let gw = Gateway::start(dir.path(), DISPATCH, sim.link(), "pin = \"4321\"").await;
    // The first AT+CPIN= gets no answer (20 s); the next session enters it again.
    wait_for("the modem up after the PIN timeout", 90, async || {
        let status = gw.get("/api/status").await;
        let d = detail(&status);
        assert!(!d.contains("4321"), "the PIN leaks into the status: {d}");
        assert!(
            !d.contains("rejected"),
            "a timeout taken for a rejection: {d}"
        );
        status["transports"][0]["up"] == true
    })
    .await;
    gw.stop().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_modems_share_the_queue_and_a_sick_one_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let a = simulator(dir.path(), |o| o.config.send_delay_ms = 10).await;
    let mut ob = SimOptions::new(dir.path().join("modem-b"));
    ob.config.send_delay_ms = 10;
    let b = sim::start(ob).await.unwrap();
    let extra = format!(
        "[[modem]]\nname = \"modem2\"\ndevice = \"{}\"\nhealth_interval_secs = 5\n",
        b.link().display()
    );
    let gw = Gateway::start(dir.path(), DISPATCH, a.link(), &extra).await;
    wait_for("both modems up", 20, async || {
        let s = gw.get("/api/status").await;
        s["transports"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["up"] == true)
    })
    .await;
    let batch = |tag: &'static str| {
        let messages: Vec<_> = (0..40)
            .map(|i| json!({"to": "+5491123456789", "text": format!("{tag}{i}")}))
            .collect();
        json!({ "messages": messages })
    };
    gw.post("/api/messages/batch", batch("x")).await;
    wait_for("40 sent", 30, async || {
        a.sent().len() + b.sent().len() == 40
    })
    .await;
    assert!(
        a.sent().len() >= 10 && b.sent().len() >= 10,
        "{} / {}",
        a.sent().len(),
        b.sent().len()
    );
    // modem2 loses registration: everything goes through modem1.
    b.set_config(ConfigPatch {
        registration: Some(pasarela::modem::sim::Registration::Denied),
        ..Default::default()
    })
    .unwrap();
    b.clear_sent();
    a.clear_sent();
    // Health is checked every minute by default; the status shows it after the next check.
    wait_for("modem2 marked down", 90, async || {
        gw.get("/api/status").await["transports"][1]["up"] == false
    })
    .await;
    gw.post("/api/messages/batch", batch("y")).await;
    wait_for("40 more sent", 30, async || a.sent().len() == 40).await;
    assert_eq!(b.sent().len(), 0);
    gw.stop().await;
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_pdu_is_kept_raw_and_its_slot_freed() {
    let dir = tempfile::tempdir().unwrap();
    let sim = simulator(dir.path(), |_| {}).await;
    let gw = Gateway::start(dir.path(), DISPATCH, sim.link(), "").await;
    // An SMS-DELIVER with a reserved data coding scheme (0x80). (User data shorter than its
    // length alone is no longer undecodable: what arrived is decoded, marked truncated.)
    sim.inbound_raw(vec![
        0x07, 0x91, 0x45, 0x19, 0x11, 0x15, 0x47, 0xF0, 0x04, 0x0B, 0x91, 0x45, 0x19, 0x21, 0x43,
        0x65, 0xF7, 0x00, 0x80, 0x62, 0x11, 0x22, 0x00, 0x00, 0x00, 0x80, 0xA0, 0xC8,
    ]);
    sim.inbound("+5491123456789", "después").unwrap();
    wait_for("both stored", 20, async || {
        gw.messages()
            .await
            .iter()
            .filter(|m| m.direction == Direction::In)
            .count()
            == 2
    })
    .await;
    wait_for("an empty SIM", 20, async || sim.sim_messages().used == 0).await;
    let msgs = gw.messages().await;
    let raw = msgs.iter().find(|m| m.peer == "unknown").unwrap();
    assert!(
        raw.last_error
            .as_deref()
            .unwrap()
            .starts_with("undecodable PDU"),
        "{raw:?}"
    );
    assert!(raw.text.starts_with("0791"), "kept as hex: {}", raw.text);
    assert!(msgs.iter().any(|m| m.text == "después"));
    gw.stop().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sms_the_modem_cut_short_keeps_what_arrived_and_its_raw_pdu() {
    let dir = tempfile::tempdir().unwrap();
    let sim = simulator(dir.path(), |_| {}).await;
    let gw = Gateway::start(dir.path(), DISPATCH, sim.link(), "").await;
    // An SMS-DELIVER in GSM 7-bit whose user-data length (0xA0, 160 septets) promises far more
    // than the one octet that follows, as some modems cut a listing.
    sim.inbound_raw(vec![
        0x07, 0x91, 0x45, 0x19, 0x11, 0x15, 0x47, 0xF0, 0x04, 0x0B, 0x91, 0x45, 0x19, 0x21, 0x43,
        0x65, 0xF7, 0x00, 0x00, 0x62, 0x11, 0x22, 0x00, 0x00, 0x00, 0x80, 0xA0, 0xC8,
    ]);
    wait_for("stored", 20, async || {
        gw.messages()
            .await
            .iter()
            .any(|m| m.direction == Direction::In && m.last_error.is_some())
    })
    .await;
    wait_for("an empty SIM", 20, async || sim.sim_messages().used == 0).await;
    let msgs = gw.messages().await;
    let cut = msgs.iter().find(|m| m.direction == Direction::In).unwrap();
    assert_eq!(cut.peer, "+54911234567", "{cut:?}");
    assert_eq!(cut.text, "H", "what arrived is decoded: {cut:?}");
    let note = cut.last_error.as_deref().unwrap();
    assert!(note.contains("cut this SMS short"), "{note}");
    assert!(
        note.contains("07914519111547F0040B"),
        "the raw PDU is kept: {note}"
    );
    gw.stop().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_open_of_the_port_fails_while_the_daemon_holds_it() {
    let dir = tempfile::tempdir().unwrap();
    let sim = simulator(dir.path(), |_| {}).await;
    let gw = Gateway::start(dir.path(), DISPATCH, sim.link(), "").await;
    wait_for("the modem up", 30, async || {
        gw.get("/api/status").await["transports"][0]["up"] == true
    })
    .await;
    let device = sim.device().unwrap();
    let Err(err) = pasarela::modem::port::open(&device, 115200) else {
        panic!("a second open succeeded while the daemon holds the port");
    };
    assert!(err.to_string().contains("in use"), "{err}");
    gw.stop().await;
    // Free again once the daemon let it go.
    assert!(pasarela::modem::port::open(&device, 115200).is_ok());
    sim.shutdown().await;
}
