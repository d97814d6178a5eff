//! Keyword auto-replies end to end through `pasarela demo`: the real binary, its simulated modem
//! on a real pseudo-terminal (driven through the simulator's control API, as a customer's phone
//! would), and a real SQLite file.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{free_port, wait_until};
use serde_json::{Value, json};

const TOKEN: &str = "rules-demo-token-0123456789";

struct Demo {
    child: Child,
    api: String,
    sim: String,
    _dir: tempfile::TempDir,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_demo() -> Demo {
    let dir = tempfile::tempdir().unwrap();
    let (api_port, sim_port) = (free_port(), free_port());
    let child = Command::new(common::bin())
        .args(["demo", "--dir"])
        .arg(dir.path().join("demo"))
        .args(["--listen", &format!("127.0.0.1:{api_port}")])
        .args(["--sim-control", &format!("127.0.0.1:{sim_port}")])
        .args(["--token", TOKEN])
        .env("PASARELA_JOURNAL_SOCKET", dir.path().join("no-journal"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let demo = Demo {
        child,
        api: format!("http://127.0.0.1:{api_port}"),
        sim: format!("http://127.0.0.1:{sim_port}"),
        _dir: dir,
    };
    wait_until("the demo to answer", Duration::from_secs(30), || {
        reqwest::blocking::get(format!("{}/api/health", demo.api))
            .is_ok_and(|r| r.status().is_success())
    });
    demo
}

fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

impl Demo {
    fn api(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = http()
            .request(method, format!("{}{path}", self.api))
            .bearer_auth(TOKEN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().unwrap();
        (r.status().as_u16(), r.json().unwrap_or(Value::Null))
    }

    fn csv(&self, text: &str) -> (u16, Value) {
        let r = http()
            .post(format!("{}/api/customers/import", self.api))
            .bearer_auth(TOKEN)
            .header("content-type", "text/csv")
            .body(text.to_string())
            .send()
            .unwrap();
        (r.status().as_u16(), r.json().unwrap())
    }

    /// A customer's phone texts the gateway.
    fn text_from(&self, from: &str, text: &str) {
        let r = http()
            .post(format!("{}/inbound", self.sim))
            .json(&json!({"from": from, "text": text}))
            .send()
            .unwrap();
        assert!(r.status().is_success(), "{}", r.text().unwrap());
    }

    /// Texts the simulated modem was handed, to `to`, in order.
    fn sent_to(&self, to: &str) -> Vec<String> {
        let sent: Vec<Value> = http()
            .get(format!("{}/sent", self.sim))
            .send()
            .unwrap()
            .json()
            .unwrap();
        sent.iter()
            .filter(|m| m["to"] == to)
            .map(|m| m["text"].as_str().unwrap().to_string())
            .collect()
    }

    fn wait_sent(&self, to: &str, n: usize) -> Vec<String> {
        wait_until(
            &format!("{n} message(s) to {to}"),
            Duration::from_secs(60),
            || self.sent_to(to).len() >= n,
        );
        self.sent_to(to)
    }
}

const ANA: &str = "+5491123456789";

#[test]
fn keyword_replies_tickets_safety_and_opt_out_through_the_demo() {
    let demo = start_demo();

    // The customer is stored the way an ISP's export writes numbers: 1123456789.
    let (status, report) = demo.csv(
        "codigo;nombre;telefono;deuda;vencimiento\n1001;Marta Gómez;1123456789;2.500,00;05/12/2026\n",
    );
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["updated"], 1, "{report}");

    // "saldo" from +5491123456789 → the rendered balance.
    demo.text_from(ANA, "saldo");
    let sent = demo.wait_sent(ANA, 1);
    assert_eq!(
        sent[0],
        "Estimado Marta Gómez, su saldo pendiente de pago es $ 2.500,00. Gracias por comunicarse con Demo ISP."
    );

    // "soporte sin internet" → a ticket, its number in the reply, the text kept on it.
    demo.text_from(ANA, "soporte sin internet");
    let sent = demo.wait_sent(ANA, 2);
    let (_, tickets) = demo.api(reqwest::Method::GET, "/api/tickets?customer=1001", None);
    let first = &tickets["tickets"][0];
    assert_eq!(first["text"], "soporte sin internet");
    assert_eq!(first["state"], "open");
    let id = first["id"].as_i64().unwrap();
    assert_eq!(
        sent[1],
        format!(
            "Demo ISP: registramos su reclamo con el número {id}. Un técnico se comunicará a la brevedad."
        )
    );
    // The on-call group heard about it.
    let alerts = demo.wait_sent("+5491156781234", 1);
    assert!(
        alerts[0].contains(&format!("Nuevo ticket {id} de Marta Gómez")),
        "{alerts:?}"
    );

    // Two more tickets today are fine; the fourth gets the limit reply and opens nothing.
    demo.text_from(ANA, "ayuda, sigo sin servicio");
    demo.wait_sent(ANA, 3);
    demo.text_from(ANA, "RECLAMO");
    demo.wait_sent(ANA, 4);
    demo.text_from(ANA, "soporte por favor");
    let sent = demo.wait_sent(ANA, 5);
    assert_eq!(
        sent[4],
        "Demo ISP: ya registramos sus reclamos de hoy. Un técnico se comunicará a la brevedad."
    );
    let (_, tickets) = demo.api(reqwest::Method::GET, "/api/tickets?customer=1001", None);
    assert_eq!(tickets["tickets"].as_array().unwrap().len(), 3);

    // An alphanumeric sender (a carrier's promotion) gets nothing. Messages are handled in
    // order, so once the next customer's reply is out, the carrier's message was handled.
    demo.text_from("Personal", "Recarga saldo y ganá el doble");
    demo.text_from("+5493515550101", "cuál es mi saldo?");
    let carla = demo.wait_sent("+5493515550101", 1);
    assert!(carla[0].contains("$ 15.800,00"), "{carla:?}");
    assert!(demo.sent_to("Personal").is_empty());

    // BAJA, then a payment event: no notice is sent (the confirmation of BAJA is).
    demo.text_from(ANA, "BAJA");
    let sent = demo.wait_sent(ANA, 6);
    assert!(sent[5].contains("no recibirá más avisos"), "{}", sent[5]);
    let event = json!({"id": "pago-77", "type": "payment", "customer": "1001",
                       "amount": "2500", "method": "automatic", "balance": "0"});
    let (status, answer) = demo.api(reqwest::Method::POST, "/api/events", Some(event.clone()));
    assert_eq!(status, 202, "{answer}");
    assert!(answer["result"]["notice"].is_null(), "{answer}");
    assert!(
        answer["result"]["reason"]
            .as_str()
            .unwrap()
            .contains("BAJA")
    );
    // Bulk and notifications from the API are not sent to her either.
    let (status, answer) = demo.api(
        reqwest::Method::POST,
        "/api/messages",
        Some(json!({"to": "1123456789", "text": "Promo fibra", "priority": "bulk"})),
    );
    assert_eq!(
        (status, answer["state"].as_str()),
        (202, Some("cancelled")),
        "{answer}"
    );
    // The balance still changed, and a retried event is harmless.
    let (status, again) = demo.api(reqwest::Method::POST, "/api/events", Some(event));
    assert_eq!(status, 200);
    assert_eq!(again["duplicate"], true);
    // Her own requests are still answered after BAJA. (A different text from the first
    // "saldo": the same text from the same number within the same second is the same SMS.)
    demo.text_from(ANA, "¿y ahora mi saldo?");
    let sent = demo.wait_sent(ANA, 7);
    assert!(sent[6].contains("$ 0,00"), "{}", sent[6]);

    // ALTA: payment notices come back.
    demo.text_from(ANA, "alta");
    demo.wait_sent(ANA, 8);
    let (status, answer) = demo.api(
        reqwest::Method::POST,
        "/api/events",
        Some(
            json!({"id": "pago-78", "type": "payment", "customer": "1001",
                    "amount": "1.500,00", "method": "manual", "balance": "1000"}),
        ),
    );
    assert_eq!(status, 202, "{answer}");
    let sent = demo.wait_sent(ANA, 9);
    assert_eq!(
        sent[8],
        "Demo ISP: recibimos su pago de $ 1.500,00. Saldo pendiente: $ 1.000,00. ¡Gracias!"
    );
    // Nothing was sent to the carrier, ever.
    assert!(demo.sent_to("Personal").is_empty());
}
