//! Customers, live lookup in a billing system, events, rules, templates, windows and ticket
//! forwarding, in-process: the daemon drives the modem simulator through a real pseudo-terminal,
//! with a real SQLite file, and talks to real local HTTP servers standing in for the billing system.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::Datelike;
use pasarela::modem::sim::SimHandle;
use serde_json::{Value, json};

mod common;
use common::gateway::Gateway;
use common::sims::{simulator, wait_sent};
use common::{TOKEN, wait_for};

const COMPANY: &str = "[company]\nname = \"Red Sur\"";

impl Gateway {
    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    async fn csv(&self, body: &[u8]) -> (u16, Value) {
        let r = reqwest::Client::new()
            .post(format!("{}/api/customers/import", self.base))
            .bearer_auth(TOKEN)
            .header("content-type", "text/csv")
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }
}

async fn serve(router: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

/// A billing system: one known customer, one number it is slow for, one it fails on with HTML.
async fn billing(
    Query(q): Query<std::collections::HashMap<String, String>>,
    State(calls): State<Arc<Mutex<Vec<String>>>>,
) -> axum::response::Response {
    let phone = q.get("telefono").cloned().unwrap_or_default();
    calls.lock().unwrap().push(phone.clone());
    match phone.as_str() {
        "1123456789" => {
            axum::Json(json!({"codigo": "B-1", "nombre": "Lucía Sosa", "saldo": 999.9}))
                .into_response()
        }
        "1123456780" => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            axum::Json(json!({"codigo": "B-2", "nombre": "Too Late", "saldo": "1"})).into_response()
        }
        "1123456781" => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [("content-type", "text/html")],
            "<html><body>Error</body></html>",
        )
            .into_response(),
        "1123456782" => ([("content-type", "text/html")], "<html>login</html>").into_response(),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_lookup_in_the_billing_system_with_fallback_to_the_local_table() {
    let dir = tempfile::tempdir().unwrap();
    let calls = Arc::new(Mutex::new(Vec::new()));
    let addr = serve(
        axum::Router::new()
            .route("/api/clientes", axum::routing::get(billing))
            .with_state(calls.clone()),
    )
    .await;
    let sim = simulator(dir.path()).await;
    let gw = Gateway::start(
        dir.path(),
        COMPANY,
        sim.link(),
        &format!(
            "[directory.http]\nurl = \"http://{addr}/api/clientes?telefono={{phone_national}}\"\ntimeout_ms = 2000\ncache_secs = 60\n"
        ),
    )
    .await;
    // The local table knows the numbers the billing system fails on.
    let (status, report) = gw
        .post(
            "/api/customers",
            json!([
                {"code": "L-2", "name": "Local Dos", "phone": "1123456780", "balance": "20"},
                {"code": "L-3", "name": "Local Tres", "phone": "1123456781", "balance": "30"},
                {"code": "L-4", "name": "Local Cuatro", "phone": "1123456782", "balance": 40.5}
            ]),
        )
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["inserted"], 3);

    // Answered by the billing system.
    sim.inbound("+5491123456789", "saldo").unwrap();
    let sent = wait_sent(&sim, "+5491123456789", 1).await;
    assert_eq!(
        sent[0],
        "Estimado Lucía Sosa, su saldo pendiente de pago es $ 999,90. Gracias por comunicarse con Red Sur."
    );
    // Slow (timeout), 500 with HTML, 200 with HTML: the local table answers each time.
    for (phone, balance) in [
        ("+5491123456780", "$ 20,00"),
        ("+5491123456781", "$ 30,00"),
        ("+5491123456782", "$ 40,50"),
    ] {
        sim.inbound(phone, "mi saldo?").unwrap();
        let sent = wait_sent(&sim, phone, 1).await;
        assert!(sent[0].contains(balance), "{phone}: {sent:?}");
    }
    // A second question within the cache time does not ask the billing system again.
    sim.inbound("+5491123456789", "deuda").unwrap();
    wait_sent(&sim, "+5491123456789", 2).await;
    let asked = calls.lock().unwrap().clone();
    assert_eq!(
        asked.iter().filter(|p| *p == "1123456789").count(),
        1,
        "{asked:?}"
    );
    // Unknown everywhere: the unknown-customer reply.
    sim.inbound("+5491133334444", "saldo").unwrap();
    let sent = wait_sent(&sim, "+5491133334444", 1).await;
    assert!(sent[0].contains("no encontramos un cliente"), "{sent:?}");
    gw.stop().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_customer_files_and_bodies_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let sim = simulator(dir.path()).await;
    let gw = Gateway::start(
        dir.path(),
        COMPANY,
        sim.link(),
        "[directory]\nextra_fields = [\"nodo\"]\n",
    )
    .await;

    // Unknown column: the whole file is refused, saying which and how to fix it.
    let (status, body) = gw
        .csv(b"codigo,nombre,telefono,color\nA1,Ana,1159876543,rojo\n")
        .await;
    assert_eq!(status, 422);
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("`color`") && msg.contains("extra_fields"),
        "{msg}"
    );
    // Bad rows are reported by line; good rows land. Latin-1 with a BOM-less header, `;`.
    let mut latin1 = b"codigo;nombre;telefono;deuda;nodo\n".to_vec();
    latin1.extend_from_slice(b"A1;Jos\xe9 Mu\xf1oz;011 15-5987-6543;1.234,50;Norte\n");
    latin1.extend_from_slice(b"A2;Bruno;12;10;Sur\n");
    latin1.extend_from_slice(b"A3;Caro;1159876544;-3;Sur\n");
    latin1.extend_from_slice(b"A1;Repetido;1159876545;1;Sur\n");
    latin1.extend_from_slice(b"A4;Dani;1159876546\n");
    let (status, report) = gw.csv(&latin1).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["inserted"], 1);
    let lines: Vec<i64> = report["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["line"].as_i64().unwrap())
        .collect();
    assert_eq!(lines, [3, 4, 5, 6], "{report}");
    assert!(report["warnings"][0].as_str().unwrap().contains("Latin-1"));
    let found = gw.get("/api/customers?phone=%2B5491159876543").await;
    assert_eq!(found["customers"][0]["name"], "José Muñoz");
    assert_eq!(found["customers"][0]["balance"], "1234.50");
    assert_eq!(found["customers"][0]["extra"]["nodo"], "Norte");
    assert_eq!(found["total_in_directory"], 1);

    // JSON: every item rejected → 422 and nothing stored.
    let (status, report) = gw
        .post(
            "/api/customers",
            json!([{"code": "X1", "phone": "abc"}, {"code": "", "phone": "1159876543"},
                   {"code": "X3", "balance": "diez"}, {"code": "X4", "due_date": "mañana"}]),
        )
        .await;
    assert_eq!(status, 422, "{report}");
    let fields: Vec<&str> = report["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["phone", "code", "balance", "due_date"]);
    let (status, body) = gw
        .post("/api/customers", json!([{"code": "X", "colour": "red"}]))
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(gw.get("/api/customers?q=").await["total_in_directory"], 1);

    // Events: unknown customer, bad amount, unknown type, reused id with another body.
    let ev = |id: &str, customer: &str, amount: Value| json!({"id": id, "type": "payment", "customer": customer, "amount": amount, "method": "manual"});
    let (status, body) = gw.post("/api/events", ev("e1", "NOPE", json!("10"))).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("customer")),
        "{body}"
    );
    let (status, body) = gw.post("/api/events", ev("e1", "A1", json!("-10"))).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("amount")),
        "{body}"
    );
    let (status, body) = gw
        .post("/api/events", json!({"id": "e9", "type": "invoice", "customer": "A1", "amount": "1", "method": "manual"}))
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("type")),
        "{body}"
    );
    let (status, _) = gw.post("/api/events", ev("e1", "A1", json!("10"))).await;
    assert_eq!(status, 202);
    let (status, body) = gw.post("/api/events", ev("e1", "A1", json!("11"))).await;
    assert_eq!(status, 409, "{body}");
    let notices = sent_to_wait_count(&sim, "+5491159876543", 1).await;
    assert_eq!(notices.len(), 1);

    // Rules: an unknown variable is refused when saved; the old rules stay.
    let mut rules = gw.get("/api/rules").await;
    rules["balance"]["reply"] = json!("Hola %nombre%, debe %deudaa%");
    let (status, body) = gw
        .call(reqwest::Method::PUT, "/api/rules", Some(rules.clone()))
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["field"], "rules.balance.reply");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("%deudaa%")
    );
    // A customer field is a variable.
    rules["balance"]["reply"] = json!("Hola %nombre% (nodo %nodo%): %deuda%");
    rules["balance"]["keywords"] = json!(["saldo", "cuanto debo"]);
    let (status, body) = gw
        .call(reqwest::Method::PUT, "/api/rules", Some(rules))
        .await;
    assert_eq!(status, 200, "{body}");
    sim.inbound("+5491159876543", "Cuánto debo?").unwrap();
    let sent = wait_sent(&sim, "+5491159876543", 2).await;
    assert_eq!(sent[1], "Hola José Muñoz (nodo Norte): $ 1.234,50");
    // Back to the file's rules.
    let (status, body) = gw.call(reqwest::Method::DELETE, "/api/rules", None).await;
    assert_eq!(status, 200);
    assert!(
        body["balance"]["reply"]
            .as_str()
            .unwrap()
            .starts_with("Estimado")
    );

    // Preview: rendered text, parts and encoding.
    let (status, body) = gw
        .post(
            "/api/templates/preview",
            json!({"template": "Hola %nombre%, su saldo es %deuda%.", "customer": "A1"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["text"], "Hola José Muñoz, su saldo es $ 1.234,50.");
    assert_eq!(body["parts"], 1);
    assert_eq!(body["encoding"], "gsm7");
    let (status, body) = gw
        .post(
            "/api/templates/preview",
            json!({"template": "Ticket %id% %xyz%", "uses": "ticket"}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("template")),
        "{body}"
    );

    // A daily balance file with only codes and balances updates balances and keeps the rest.
    let (status, report) = gw.csv(b"codigo;deuda\nA1;99,90\n").await;
    assert_eq!(
        (status, report["updated"].as_i64()),
        (200, Some(1)),
        "{report}"
    );
    let found = gw.get("/api/customers?code=A1").await;
    let c = &found["customers"][0];
    assert_eq!(c["balance"], "99.90");
    assert_eq!(c["name"], "José Muñoz");
    assert_eq!(c["phones"], json!(["+5491159876543"]));
    assert_eq!(c["extra"]["nodo"], "Norte");
    gw.stop().await;
    sim.shutdown().await;
}

async fn sent_to_wait_count(sim: &SimHandle, to: &str, n: usize) -> Vec<String> {
    wait_sent(sim, to, n).await
}

const DAYS: [&str; 7] = ["lun", "mar", "mie", "jue", "vie", "sab", "dom"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_windows_hold_notifications_not_replies() {
    let dir = tempfile::tempdir().unwrap();
    let sim = simulator(dir.path()).await;
    // `hoy` is open all of today (company time zone); `otro_dia` only tomorrow.
    let today = chrono::Utc::now()
        .with_timezone(&chrono_tz::America::Argentina::Buenos_Aires)
        .weekday()
        .num_days_from_monday() as usize;
    let extra = format!(
        "[windows]\nnotifications = \"otro_dia\"\n[windows.custom.hoy]\ndays = \"{}\"\nfrom = \"00:00\"\nto = \"24:00\"\nholidays = true\n\
         [windows.custom.otro_dia]\ndays = \"{}\"\nfrom = \"00:00\"\nto = \"24:00\"\nholidays = true\n",
        DAYS[today],
        DAYS[(today + 1) % 7]
    );
    let gw = Gateway::start(dir.path(), COMPANY, sim.link(), &extra).await;
    let (status, body) = gw
        .post(
            "/api/messages",
            json!({"to": "1159876543", "text": "aviso"}),
        )
        .await;
    assert_eq!(
        (status, body["state"].as_str()),
        (202, Some("scheduled")),
        "{body}"
    );
    let (_, body) = gw
        .post(
            "/api/messages",
            json!({"to": "1159876543", "text": "ya", "window": "hoy"}),
        )
        .await;
    assert_eq!(body["state"], "queued", "{body}");
    let (status, body) = gw
        .post(
            "/api/messages",
            json!({"to": "1159876543", "text": "x", "window": "nunca"}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("window")),
        "{body}"
    );
    // A reply to the customer's own message goes out at once.
    sim.inbound("+5491159876543", "hola").unwrap();
    let sent = wait_sent(&sim, "+5491159876543", 2).await;
    assert!(sent.contains(&"ya".to_string()), "{sent:?}");
    assert!(!sent.contains(&"aviso".to_string()), "{sent:?}");
    let scheduled = gw.get("/api/messages?state=scheduled").await;
    assert_eq!(scheduled["messages"].as_array().unwrap().len(), 1);
    gw.stop().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tickets_are_forwarded_to_the_billing_system_until_it_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let received = Arc::new(Mutex::new(Vec::<Value>::new()));
    let attempts = Arc::new(Mutex::new(0u32));
    let router = axum::Router::new().route(
        "/tickets",
        axum::routing::post({
            let received = received.clone();
            let attempts = attempts.clone();
            move |axum::Json(body): axum::Json<Value>| async move {
                let mut n = attempts.lock().unwrap();
                *n += 1;
                if *n == 1 {
                    return StatusCode::SERVICE_UNAVAILABLE;
                }
                received.lock().unwrap().push(body);
                StatusCode::CREATED
            }
        }),
    );
    let addr = serve(router).await;
    let sim = simulator(dir.path()).await;
    let gw = Gateway::start(
        dir.path(),
        COMPANY,
        sim.link(),
        &format!("[rules.ticket]\nforward_url = \"http://{addr}/tickets\"\noperator = \"juan\"\n"),
    )
    .await;
    sim.inbound("+5491159876543", "Reclamo: se corta internet")
        .unwrap();
    wait_sent(&sim, "+5491159876543", 1).await;
    wait_for("the ticket to be forwarded", 30, async || {
        !received.lock().unwrap().is_empty()
    })
    .await;
    let got = received.lock().unwrap()[0].clone();
    assert_eq!(got["text"], "Reclamo: se corta internet");
    assert_eq!(got["phone"], "+5491159876543");
    assert_eq!(got["operator"], "juan");
    let id = got["id"].as_i64().unwrap();
    wait_for("the forward to be recorded", 10, async || {
        gw.get(&format!("/api/tickets/{id}")).await["forward"]["state"] == "done"
    })
    .await;
    let t = gw.get(&format!("/api/tickets/{id}")).await;
    assert_eq!(t["forward"]["attempts"], 2);
    // Close, reassign, reopen.
    let (status, t) = gw
        .post(&format!("/api/tickets/{id}/close"), json!({}))
        .await;
    assert_eq!((status, t["state"].as_str()), (200, Some("closed")));
    let (_, t) = gw
        .post(
            &format!("/api/tickets/{id}/assign"),
            json!({"operator": "ana"}),
        )
        .await;
    assert_eq!(t["operator"], "ana");
    let (_, t) = gw
        .post(&format!("/api/tickets/{id}/reopen"), json!({}))
        .await;
    assert_eq!(t["state"], "open");
    let (status, _) = gw.post("/api/tickets/999/close", json!({})).await;
    assert_eq!(status, 404);
    assert_eq!(
        gw.get("/api/tickets?state=open").await["tickets"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    gw.stop().await;
    sim.shutdown().await;
}

/// The review findings of the rules work, through the API: a payment event without `balance`,
/// JSON numbers with three decimals, an unclosed CSV quote and opt-outs by number.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payment_without_balance_decimals_quotes_and_optouts_by_number() {
    let dir = tempfile::tempdir().unwrap();
    let sim = simulator(dir.path()).await;
    let gw = Gateway::start(dir.path(), COMPANY, sim.link(), "").await;
    let (status, body) = gw
        .post(
            "/api/customers",
            json!([{"code": "P1", "name": "Pía", "phone": "1159876543", "balance": "1234.50"}]),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    // A JSON number's dot is a decimal point: three decimals are refused, not read as thousands.
    let (status, body) = gw
        .post("/api/customers", json!([{"code": "P1", "balance": 1.234}]))
        .await;
    assert_eq!(status, 422, "{body}");
    let reason = body["rejected"][0]["error"].as_str().unwrap_or_default();
    assert_eq!(body["rejected"][0]["field"], "balance", "{body}");
    assert!(reason.contains("3 decimals"), "{body}");
    let ev = |id: &str, amount: Value| json!({"id": id, "type": "payment", "customer": "P1", "amount": amount, "method": "manual"});
    let (status, body) = gw.post("/api/events", ev("d1", json!(500.125))).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("amount")),
        "{body}"
    );
    let found = gw.get("/api/customers?code=P1").await;
    assert_eq!(
        found["customers"][0]["balance"], "1234.50",
        "nothing changed"
    );

    // A payment without `balance`: the stored balance predates it and is not told as current.
    let (status, body) = gw.post("/api/events", ev("p1", json!(500))).await;
    assert_eq!(status, 202, "{body}");
    let texts = wait_sent(&sim, "+5491159876543", 1).await;
    assert_eq!(texts, ["Red Sur: recibimos su pago de $ 500,00. ¡Gracias!"]);

    // An unclosed quote refuses the file, naming the line, and imports nothing.
    let (status, body) = gw
        .csv(b"codigo,nombre,telefono\nQ1,Quique,1159876550\nQ2,\"Rita,1159876551\nQ3,Sol,1159876552\n")
        .await;
    assert_eq!(status, 422, "{body}");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("line 3") && msg.contains("never closed"),
        "{msg}"
    );
    assert_eq!(gw.get("/api/customers?q=").await["total_in_directory"], 1);

    // BAJA from her number: the customer shows the opt-out by number.
    let found = gw.get("/api/customers?code=P1").await;
    assert_eq!(found["customers"][0]["optouts_by_number"], json!([]));
    sim.inbound("+5491159876543", "BAJA").unwrap();
    wait_for("the opt-out by number", 30, async || {
        let found = gw.get("/api/customers?code=P1").await;
        found["customers"][0]["optouts_by_number"][0]["phone"] == "+5491159876543"
    })
    .await;
    let found = gw.get("/api/customers?phone=1159876543").await;
    let optouts = &found["customers"][0]["optouts_by_number"];
    assert_eq!(optouts[0]["channel"], "sms", "{found}");
    assert!(optouts[0]["at"].as_i64().unwrap() > 0);
    assert_eq!(found["customers"][0]["optout"]["sms"], false, "{found}");
    gw.stop().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rules_api_shows_the_computed_holidays_and_edits_the_removed_ones() {
    use chrono::Datelike;
    let dir = tempfile::tempdir().unwrap();
    let sim = simulator(dir.path()).await;
    let gw = Gateway::start(dir.path(), COMPANY, sim.link(), "").await;
    let rules = gw.get("/api/rules").await;
    // The daemon's year is the company's (Buenos Aires), not UTC's: they differ for three
    // hours a year.
    let year = chrono::Utc::now()
        .with_timezone(&chrono_tz::America::Argentina::Buenos_Aires)
        .year();
    assert_eq!(rules["holidays"]["calendar"], "AR", "{rules}");
    let dates = |v: &serde_json::Value, key: &str| -> Vec<String> {
        v["holidays"][key]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["date"].as_str().unwrap().to_string())
            .collect()
    };
    let this_year = dates(&rules, "this_year");
    assert!(this_year.contains(&format!("{year}-05-25")), "{rules}");
    assert!(dates(&rules, "next_year").contains(&format!("{}-07-09", year + 1)));

    // Take 25 May out, add a provincial day; a body sent back with `holidays` in it is fine.
    let mut patch = rules.clone();
    patch["windows"]["not_holidays"] = json!([format!("{year}-05-25")]);
    patch["windows"]["holidays"] = json!([format!("{year}-09-15")]);
    let (status, body) = gw
        .call(reqwest::Method::PUT, "/api/rules", Some(patch))
        .await;
    assert_eq!(status, 200, "{body}");
    let this_year = dates(&body, "this_year");
    assert!(!this_year.contains(&format!("{year}-05-25")), "{body}");
    assert!(this_year.contains(&format!("{year}-09-15")), "{body}");

    let (status, body) = gw
        .call(
            reqwest::Method::PUT,
            "/api/rules",
            Some(json!({"windows": {"not_holidays": ["25 de mayo"], "calendar": "XX"}})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("windows.not_holidays: `25 de mayo` is not a date"),
        "{message}"
    );
    assert!(
        message.contains("windows.calendar: `XX` has no holiday table"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_holidays_and_groups_are_edited_through_the_rules_api() {
    let dir = tempfile::tempdir().unwrap();
    let sim = simulator(dir.path()).await;
    let gw = Gateway::start(dir.path(), COMPANY, sim.link(), "").await;
    let rules = gw.get("/api/rules").await;
    assert_eq!(rules["windows"]["notifications"], "always", "{rules}");
    assert_eq!(rules["groups"], json!([]), "{rules}");

    // Bad values are refused by field and change nothing.
    let bad = json!({
        "windows": {"holidays": ["2026-13-01"], "custom": {"guardia": {"days": "lun-vie", "from": "25:00", "to": "18:00"}}},
        "groups": [{"name": "tecnicos", "phones": ["12"], "window": "nunca"}],
        "ticket": {"alert_groups": ["tecnicos"]}
    });
    let (status, body) = gw.call(reqwest::Method::PUT, "/api/rules", Some(bad)).await;
    assert_eq!(status, 422, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    for part in [
        "windows.custom.guardia: ",
        "windows.holidays: `2026-13-01` is not a date",
        "groups.0.phones: `12`",
    ] {
        assert!(message.contains(part), "{part} in {message}");
    }
    assert!(
        !message.contains("alert_groups"),
        "the group is in the new list: {message}"
    );
    let (status, body) = gw
        .call(
            reqwest::Method::PUT,
            "/api/rules",
            Some(json!({"groups": [{"name": "tecnicos", "phones": ["1156781234"], "window": "nunca"}]})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["field"], "groups.0.window", "{body}");
    assert_eq!(gw.get("/api/rules").await, rules, "nothing changed");

    // Good ones apply at once: the new window is known to sends, the group to ticket alerts.
    let good = json!({
        "windows": {"holidays": ["2026-12-25"], "custom": {"guardia": {"days": "lun-dom", "from": "00:00", "to": "24:00", "holidays": true}}},
        "groups": [{"name": "tecnicos", "phones": ["011 15-5678-1234"], "window": "guardia"}],
        "ticket": {"alert_groups": ["tecnicos"]}
    });
    let (status, body) = gw
        .call(reqwest::Method::PUT, "/api/rules", Some(good))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["windows"]["holidays"], json!(["2026-12-25"]));
    assert_eq!(body["groups"][0]["window"], "guardia");
    let (status, body) = gw
        .post(
            "/api/messages",
            json!({"to": "1159876543", "text": "x", "window": "guardia"}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    sim.inbound("+5491159876543", "soporte: sin internet")
        .unwrap();
    let alert = wait_sent(&sim, "+5491156781234", 1).await;
    assert!(!alert.is_empty(), "the on-call group is alerted");

    // A group's alert cannot outlive its group.
    let (status, body) = gw
        .call(
            reqwest::Method::PUT,
            "/api/rules",
            Some(json!({"groups": []})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("tecnicos"),
        "{body}"
    );

    // DELETE goes back to the file's windows and groups.
    let (status, body) = gw.call(reqwest::Method::DELETE, "/api/rules", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["groups"], json!([]), "{body}");
    let (status, _) = gw
        .post(
            "/api/messages",
            json!({"to": "1159876543", "text": "x", "window": "guardia"}),
        )
        .await;
    assert_eq!(status, 400);
    gw.stop().await;
    sim.shutdown().await;
}

/// Ticket mails: texting the support keyword mails the customer (when they have an address) and
/// the operator (`[email_notify] operator`) the `ticket_opened` template; closing through the API
/// mails them the `ticket_closed` one (here a saved template), once. The account has no server
/// behind it: the mails are checked in the queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_and_closing_a_ticket_mails_the_customer_and_the_operator() {
    let dir = tempfile::tempdir().unwrap();
    let sim = simulator(dir.path()).await;
    let port = common::free_port();
    let gw = Gateway::start(
        dir.path(),
        &format!(
            "{COMPANY}\n[email_notify]\noperator = \"soporte@redsur.com.ar\"\n\
             [[email]]\nname = \"soporte\"\nareas = [\"tickets\", \"facturas\", \"clientes\"]\n\
             from = \"Soporte Red Sur <soporte@redsur.com.ar>\"\nhost = \"127.0.0.1\"\n\
             port = {port}\nsecurity = \"none\"\nallow_plain = true\n"
        ),
        sim.link(),
        "",
    )
    .await;
    let (status, body) = gw
        .post(
            "/api/customers",
            json!([
                {"code": "C-1", "name": "Ana Pérez", "phone": "+5491159876543",
                 "email": "ana@example.com"},
                {"code": "C-2", "name": "Beto Gómez", "phone": "+5491133334444"},
            ]),
        )
        .await;
    assert!((200..300).contains(&status), "{status} {body}");
    let (status, body) = gw
        .call(
            reqwest::Method::PUT,
            "/api/email/templates/ticket_closed",
            Some(json!({"subject": "Listo: reclamo %numero%",
                        "text": "%nombre%, cerramos el reclamo %id% (%texto%). %empresa%"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let emails = async || -> Vec<Value> {
        gw.get("/api/messages?channel=email&limit=100").await["messages"]
            .as_array()
            .unwrap()
            .iter()
            .rev()
            .cloned()
            .collect()
    };
    sim.inbound("+5491159876543", "soporte: sin internet")
        .unwrap();
    wait_sent(&sim, "+5491159876543", 1).await;
    sim.inbound("+5491133334444", "soporte: no anda").unwrap();
    wait_sent(&sim, "+5491133334444", 1).await;
    let mails = emails().await;
    let who: Vec<&str> = mails.iter().map(|m| m["peer"].as_str().unwrap()).collect();
    assert_eq!(
        who,
        [
            "ana@example.com",
            "soporte@redsur.com.ar",
            "soporte@redsur.com.ar"
        ],
        "{mails:?}"
    );
    let tickets = gw.get("/api/tickets?state=open").await;
    let id_of = |code: &str| {
        tickets["tickets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["customer"] == code)
            .map(|t| t["id"].as_i64().unwrap())
            .unwrap_or_else(|| panic!("no ticket of {code} in {tickets}"))
    };
    let (ana, beto) = (id_of("C-1"), id_of("C-2"));
    for m in &mails[..2] {
        assert_eq!(m["email"]["account"], "soporte", "{m}");
        assert_eq!(
            m["email"]["subject"],
            format!("Reclamo N° {ana} recibido"),
            "{m}"
        );
        assert_eq!(
            m["text"],
            format!(
                "Hola Ana Pérez:\n\nRegistramos su reclamo N° {ana}: soporte: sin internet\n\
                 Le avisaremos cuando esté resuelto.\n\nRed Sur"
            )
        );
    }
    assert!(
        mails[2]["text"]
            .as_str()
            .unwrap()
            .contains("Hola Beto Gómez")
    );

    for id in [ana, beto, ana] {
        let (status, t) = gw
            .post(&format!("/api/tickets/{id}/close"), json!({}))
            .await;
        assert_eq!((status, t["state"].as_str()), (200, Some("closed")), "{t}");
    }
    let mails = emails().await;
    let closed: Vec<(&str, &str, &str)> = mails[3..]
        .iter()
        .map(|m| {
            (
                m["peer"].as_str().unwrap(),
                m["email"]["subject"].as_str().unwrap(),
                m["text"].as_str().unwrap(),
            )
        })
        .collect();
    let ana_text = format!("Ana Pérez, cerramos el reclamo {ana} (soporte: sin internet). Red Sur");
    let beto_text = format!("Beto Gómez, cerramos el reclamo {beto} (soporte: no anda). Red Sur");
    let (ana_subject, beto_subject) = (
        format!("Listo: reclamo {ana}"),
        format!("Listo: reclamo {beto}"),
    );
    assert_eq!(
        closed,
        [
            ("ana@example.com", ana_subject.as_str(), ana_text.as_str()),
            (
                "soporte@redsur.com.ar",
                ana_subject.as_str(),
                ana_text.as_str()
            ),
            (
                "soporte@redsur.com.ar",
                beto_subject.as_str(),
                beto_text.as_str()
            ),
        ],
        "closing twice mails once; Beto has no address"
    );
    gw.stop().await;
    sim.shutdown().await;
}
