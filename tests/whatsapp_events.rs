//! Invoice events over channels in order: the invoice goes as the WhatsApp template with its
//! PDF as the document header; a number that is not on WhatsApp (131026) falls back to the SMS
//! text through a GSM modem (`pasarela modem-sim` on a real pseudo-terminal); email, listed but
//! not configured, is skipped with the reason. In-process daemon, real SQLite file.

#[path = "common/fake_graph.rs"]
mod fake_graph;

use std::time::Duration;

use fake_graph::{FakeGraph, PHONE_ID};
use pasarela::daemon::{self, Parts};
use pasarela::modem::sim::{self, SimOptions};
use serde_json::{Value, json};

const TOKEN: &str = "events-test-token-0123456789";
const ACCESS: &str = "EAAG-test-token-0123456789";

async fn call(
    base: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut r = reqwest::Client::new()
        .request(method, format!("{base}{path}"))
        .bearer_auth(TOKEN);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invoice_goes_on_whatsapp_with_its_pdf_and_falls_back_to_sms_when_not_on_whatsapp() {
    let dir = tempfile::tempdir().unwrap();
    let graph = FakeGraph::start(ACCESS).await;
    let sim = sim::start(SimOptions::new(dir.path().join("modem")))
        .await
        .unwrap();
    let text = format!(
        "[daemon]\nstate_dir = \"{}\"\nshutdown_grace_secs = 5\n\
         [admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"{TOKEN}\"\n\
         [company]\nname = \"Red Sur\"\n\
         [dispatch]\nretry_base_secs = 1\nretry_max_secs = 2\nmax_attempts = 20\n\
         [[modem]]\nname = \"modem1\"\ndevice = \"{}\"\n\
         [whatsapp]\nphone_number_id = \"{PHONE_ID}\"\naccess_token = \"{ACCESS}\"\n\
         app_secret = \"s3cret\"\nverify_token = \"v\"\nbase_url = \"{}\"\n\
         [events.invoice]\nchannels = [\"whatsapp\", \"email\", \"sms\"]\n\
         whatsapp_template = {{ name = \"comprobantes\", language = \"es_AR\", body = [\"%nombre%\", \"%monto%\", \"%vencimiento%\"], document = \"%pdf_url%\" }}\n\
         sms_text = \"Hola %nombre%, su factura %numero% de %monto% vence el %vencimiento%. %empresa%\"\n",
        dir.path().join("state").display(),
        sim.link().display(),
        graph.url
    );
    let loaded = pasarela::setup::from_toml(&text).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(daemon::run(
        loaded,
        Parts {
            transports: vec![],
            listener: Some(listener),
        },
        async move {
            let _ = rx.await;
        },
    ));
    wait_for("the API", 30, async || {
        reqwest::get(format!("{base}/api/health")).await.is_ok()
    })
    .await;
    let (code, body) = call(
        &base,
        reqwest::Method::POST,
        "/api/customers",
        Some(json!([
            {"code": "C-1", "name": "Ana Núñez", "phone": "+5491123456789"},
            {"code": "C-2", "name": "Juan Pérez", "phone": "+5491143210000"}
        ])),
    )
    .await;
    assert!((200..300).contains(&code), "{code} {body}");

    let pdf = format!("{}/billing/1234.pdf", graph.url);
    let invoice = |id: &str, customer: &str| {
        json!({"id": id, "type": "invoice", "customer": customer, "amount": "1234.50",
               "due": "2026-12-10", "number": "0001-00001234", "pdf_url": pdf})
    };
    let (code, on_wa) = call(
        &base,
        reqwest::Method::POST,
        "/api/events",
        Some(invoice("inv-1", "C-1")),
    )
    .await;
    assert_eq!(code, 202, "{on_wa}");
    assert_eq!(on_wa["result"]["channels"], json!(["whatsapp", "sms"]));
    assert_eq!(on_wa["result"]["skipped"][0]["channel"], "email");
    assert!(
        on_wa["result"]["skipped"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("not configured")
    );
    let (code, not_wa) = call(
        &base,
        reqwest::Method::POST,
        "/api/events",
        Some(invoice("inv-2", "C-2")),
    )
    .await;
    assert_eq!(code, 202, "{not_wa}");

    wait_for("the SMS fallback through the modem", 60, async || {
        !sim.sent().is_empty()
    })
    .await;
    let sms = sim.sent();
    assert_eq!(sms.len(), 1);
    assert_eq!(sms[0].to, "+5491143210000");
    assert!(
        sms[0].text.contains("Juan Pérez") && sms[0].text.contains("0001-00001234"),
        "{}",
        sms[0].text
    );
    assert!(sms[0].text.contains("Red Sur"), "{}", sms[0].text);

    let sent = graph.with(|g| g.sent.clone());
    let ana = sent.iter().find(|b| b["to"] == "5491123456789").unwrap();
    assert_eq!(ana["template"]["name"], "comprobantes");
    let comps = &ana["template"]["components"];
    assert_eq!(comps[0]["parameters"][0]["document"]["link"], pdf);
    assert_eq!(comps[1]["parameters"][0]["text"], "Ana Núñez");
    assert!(graph.with(|g| g.violations.is_empty()));
    // Ana's invoice went on WhatsApp only.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(sim.sent().iter().all(|s| s.to != "+5491123456789"));
    // The same event again answers the same and sends nothing more.
    let (code, again) = call(
        &base,
        reqwest::Method::POST,
        "/api/events",
        Some(invoice("inv-1", "C-1")),
    )
    .await;
    assert!((200..300).contains(&code), "{again}");
    assert_eq!(graph.with(|g| g.sent.len()), 2);
    let _ = tx.send(());
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customers_own_channel_order_carries_the_invoice_and_bad_preferences_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let graph = FakeGraph::start(ACCESS).await;
    let sim = sim::start(SimOptions::new(dir.path().join("modem")))
        .await
        .unwrap();
    let text = format!(
        "[daemon]\nstate_dir = \"{}\"\nshutdown_grace_secs = 5\n\
         [admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"{TOKEN}\"\n\
         [company]\nname = \"Red Sur\"\n\
         [[modem]]\nname = \"modem1\"\ndevice = \"{}\"\n\
         [whatsapp]\nphone_number_id = \"{PHONE_ID}\"\naccess_token = \"{ACCESS}\"\n\
         app_secret = \"s3cret\"\nverify_token = \"v\"\nbase_url = \"{}\"\n\
         [events.invoice]\nchannels = [\"whatsapp\", \"sms\"]\n\
         whatsapp_template = {{ name = \"comprobantes\", language = \"es_AR\", body = [\"%nombre%\", \"%monto%\", \"%vencimiento%\"], document = \"%pdf_url%\" }}\n\
         sms_text = \"Hola %nombre%, su factura %numero% de %monto% vence el %vencimiento%. %empresa%\"\n",
        dir.path().join("state").display(),
        sim.link().display(),
        graph.url
    );
    let loaded = pasarela::setup::from_toml(&text).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(daemon::run(
        loaded,
        Parts {
            transports: vec![],
            listener: Some(listener),
        },
        async move {
            let _ = rx.await;
        },
    ));
    wait_for("the API", 30, async || {
        reqwest::get(format!("{base}/api/health")).await.is_ok()
    })
    .await;
    let customer = async |code: &str| -> Value {
        call(
            &base,
            reqwest::Method::GET,
            &format!("/api/customers?code={code}"),
            None,
        )
        .await
        .1["customers"][0]
            .clone()
    };

    // Eva wants her invoices by SMS only.
    let (code, body) = call(
        &base,
        reqwest::Method::POST,
        "/api/customers",
        Some(
            json!([{"code": "C-3", "name": "Eva Ríos", "phone": "+5491155551234",
                     "channels": {"invoice": ["sms"]}}]),
        ),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        customer("C-3").await["channels"],
        json!({"invoice": ["sms"]})
    );

    // Unknown channel names and event types are refused naming the field; nothing changes.
    for (prefs, field, says) in [
        (
            json!({"invoice": ["fax"]}),
            "channels.invoice",
            "`fax` is not a channel",
        ),
        (json!({"invoice": []}), "channels.invoice", "is empty"),
        (
            json!({"invoice": ["sms", "sms"]}),
            "channels.invoice",
            "listed twice",
        ),
        (
            json!({"factura": ["sms"]}),
            "channels.factura",
            "not an event type",
        ),
    ] {
        let (code, body) = call(
            &base,
            reqwest::Method::POST,
            "/api/customers",
            Some(json!([{"code": "C-3", "channels": prefs}])),
        )
        .await;
        assert_eq!(code, 422, "{body}");
        assert_eq!(body["rejected"][0]["field"], field, "{body}");
        assert!(
            body["rejected"][0]["error"]
                .as_str()
                .unwrap()
                .contains(says),
            "{body}"
        );
    }
    assert_eq!(
        customer("C-3").await["channels"],
        json!({"invoice": ["sms"]})
    );

    // The CSV import takes the order as a column (`canales_factura`).
    let r = reqwest::Client::new()
        .post(format!("{base}/api/customers/import"))
        .bearer_auth(TOKEN)
        .header("content-type", "text/csv")
        .body(
            "codigo;nombre;telefono;canales_factura\n\
             C-5;Leo Sosa;+5491155552222;SMS / WhatsApp\n\
             C-6;Mia Paz;+5491155553333;paloma\n",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let report: Value = r.json().await.unwrap();
    assert_eq!(report["inserted"], 1, "{report}");
    assert_eq!(report["rejected"][0]["line"], 3, "{report}");
    assert_eq!(
        report["rejected"][0]["field"], "channels.invoice",
        "{report}"
    );
    assert_eq!(
        customer("C-5").await["channels"],
        json!({"invoice": ["sms", "whatsapp"]})
    );

    // Eva's invoice goes by SMS although the configured order starts with WhatsApp.
    let (code, ev) = call(
        &base,
        reqwest::Method::POST,
        "/api/events",
        Some(
            json!({"id": "inv-9", "type": "invoice", "customer": "C-3", "amount": "990",
                    "due": "2026-12-10", "number": "0001-00009999",
                    "pdf_url": format!("{}/billing/9999.pdf", graph.url)}),
        ),
    )
    .await;
    assert_eq!(code, 202, "{ev}");
    assert_eq!(ev["result"]["channels"], json!(["sms"]), "{ev}");
    assert_eq!(ev["result"]["notice"]["channel"], "sms", "{ev}");
    wait_for("Eva's SMS through the modem", 60, async || {
        !sim.sent().is_empty()
    })
    .await;
    let sms = sim.sent();
    assert_eq!(sms[0].to, "+5491155551234");
    assert!(sms[0].text.contains("0001-00009999"), "{}", sms[0].text);
    assert!(graph.with(|g| g.sent.is_empty()), "nothing on WhatsApp");
    let _ = tx.send(());
    task.await.unwrap().unwrap();
}
