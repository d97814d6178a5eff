//! Outages by zone, in-process: the daemon on a real SQLite file, the modem simulator on a real
//! pseudo-terminal standing in for the customers' phones, the admin API and the `[webhooks]`
//! listener on 127.0.0.1, Alertmanager's calls made with its published webhook JSON (version 4).

use std::time::Duration;

use serde_json::{Value, json};

mod common;
use common::gateway::Gateway;
use common::sims::{sent_to, simulator, wait_sent};
use common::{TOKEN, free_port, wait_for};

const AM_TOKEN: &str = "alertmanager-token-0123456789";
const TECH: &str = "+5491150000000";
const ANA: &str = "+5491150000001";
const BETO: &str = "+5491150000002";
const CARO: &str = "+5491150000003";
const DANI: &str = "+5491150000004";

/// Waits until the inbox handled every inbound text and the queue is empty.
async fn settle(gw: &Gateway) {
    wait_for("the inbox and the queue to settle", 30, async || {
        let s = gw.get("/api/status").await;
        let q = gw.get("/api/messages?state=queued").await;
        let sending = gw.get("/api/messages?state=sending").await;
        s.is_object()
            && q["messages"].as_array().is_some_and(|a| a.is_empty())
            && sending["messages"].as_array().is_some_and(|a| a.is_empty())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
}

async fn post(gw: &Gateway, path: &str, body: Value) -> (u16, Value) {
    gw.call(reqwest::Method::POST, path, Some(body)).await
}

async fn tickets(gw: &Gateway) -> usize {
    gw.get("/api/tickets?limit=500").await["tickets"]
        .as_array()
        .unwrap()
        .len()
}

async fn alertmanager(port: u16, token: Option<&str>, body: &Value) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/webhooks/alertmanager"))
        .json(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// Alertmanager's webhook payload (version 4) for one alert on `zona`.
fn am_payload(status: &str, zona: &str) -> Value {
    json!({
        "version": "4",
        "groupKey": "{}:{alertname=\"NodoCaido\"}",
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "pasarela",
        "groupLabels": {"alertname": "NodoCaido"},
        "commonLabels": {"alertname": "NodoCaido", "zona": zona, "severity": "critical"},
        "commonAnnotations": {"summary": format!("Nodo {zona} sin enlace")},
        "externalURL": "http://alertmanager.example:9093",
        "alerts": [{
            "status": status,
            "labels": {"alertname": "NodoCaido", "zona": zona, "severity": "critical"},
            "annotations": {"summary": format!("Nodo {zona} sin enlace")},
            "startsAt": "2026-12-02T13:08:45.828Z",
            "endsAt": if status == "resolved" { "2026-12-02T14:00:00Z" } else { "0001-01-01T00:00:00Z" },
            "generatorURL": "http://prometheus.example:9090/graph?g0.expr=up%3D%3D0",
            "fingerprint": "1a30ba71cca2921f"
        }]
    })
}

fn rfc3339_in(hours: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::hours(hours))
        .with_timezone(&chrono_tz::America::Argentina::Buenos_Aires)
        .to_rfc3339()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outages_answer_the_zone_and_tell_it_when_service_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let sim = simulator(dir.path()).await;
    let am_port = free_port();
    let sections = format!(
        "[company]\nname = \"Red Sur\"\n\
         [directory]\nextra_fields = [\"nodo\"]\n\
         [windows]\nurgent = \"always\"\n\
         [rules.ticket]\nalert_groups = [\"tecnicos\"]\n\
         [[groups]]\nname = \"tecnicos\"\nphones = [\"{TECH}\"]\n\
         [webhooks]\nlisten = \"127.0.0.1:{am_port}\"\n\
         [webhooks.alertmanager]\ntoken = \"{AM_TOKEN}\"\n"
    );
    let gw = Gateway::start(dir.path(), &sections, sim.link(), "").await;
    let csv = "codigo,nombre,telefono,zona,nodo,deuda\n\
               A-1,Ana,1150000001,Norte,n1,100\n\
               A-2,Beto,1150000002,norte,n1,200\n\
               A-3,Caro,1150000003,sur,n2,300\n\
               A-4,Dani,1150000004,centro,n3,400\n";
    let r = reqwest::Client::new()
        .post(format!("{}/api/customers/import", gw.base))
        .bearer_auth(TOKEN)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Beto opted out of notices.
    sim.inbound(BETO, "BAJA").unwrap();
    wait_sent(&sim, BETO, 1).await;

    // Bad input changes nothing.
    let (status, body) = post(&gw, "/api/outages", json!({"zones": ["Oeste"]})).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["field"], "zones");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(msg.contains("zona") && msg.contains("Oeste"), "{msg}");
    let (status, body) = post(
        &gw,
        "/api/outages",
        json!({"zones": ["norte"], "field": "color"}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("field")),
        "{body}"
    );
    let (status, body) = post(
        &gw,
        "/api/outages",
        json!({"zones": ["norte"], "eta": "a la tarde"}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("eta")),
        "{body}"
    );
    assert_eq!(gw.get("/api/outages").await["outages"], json!([]));

    // Open: Ana is told, Beto (BAJA) is not; Caro and Dani are elsewhere.
    let eta1 = rfc3339_in(3);
    let (status, body) = post(
        &gw,
        "/api/outages",
        json!({"zones": ["norte"], "message": "Fibra cortada.", "eta": eta1}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        (body["affected"].as_i64(), body["notified"].as_i64()),
        (Some(2), Some(1))
    );
    let first = body["id"].as_i64().unwrap();
    let notice = wait_sent(&sim, ANA, 1).await;
    assert!(
        notice[0].starts_with("Red Sur: hay un corte de servicio en la zona Norte. Fibra cortada."),
        "{notice:?}"
    );
    assert_eq!(tickets(&gw).await, 1, "the outage's master ticket");

    // While open: ticket keywords get the outage reply, not a ticket; balance works as usual.
    sim.inbound(ANA, "Estoy sin internet").unwrap();
    let got = wait_sent(&sim, ANA, 2).await;
    assert!(
        got[1].contains("estamos trabajando en el corte de la zona Norte"),
        "{got:?}"
    );
    assert!(got[1].contains("Estimamos normalizarlo"), "{got:?}");
    sim.inbound(BETO, "soporte por favor").unwrap();
    let got = wait_sent(&sim, BETO, 2).await;
    assert!(
        got[1].contains("estamos trabajando"),
        "opted out still gets the reply: {got:?}"
    );
    sim.inbound(ANA, "saldo").unwrap();
    let got = wait_sent(&sim, ANA, 3).await;
    assert!(got[2].contains("$ 100,00"), "{got:?}");
    // Outside the zone: the normal ticket and the technician paged.
    sim.inbound(DANI, "soporte").unwrap();
    let got = wait_sent(&sim, DANI, 1).await;
    assert!(got[0].contains("registramos su reclamo"), "{got:?}");
    wait_sent(&sim, TECH, 1).await;
    settle(&gw).await;
    assert_eq!(
        tickets(&gw).await,
        2,
        "only Dani's ticket besides the master one"
    );
    assert_eq!(
        sent_to(&sim, TECH).len(),
        1,
        "the technician was paged for Dani only"
    );

    // Overlap by node: Ana is already told (one notice), Caro is new, Beto opted out.
    let eta2 = rfc3339_in(30);
    let (status, body) = post(
        &gw,
        "/api/outages",
        json!({"nodes": ["n1", "N2"], "eta": eta2}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        (body["affected"].as_i64(), body["notified"].as_i64()),
        (Some(3), Some(1))
    );
    let second = body["id"].as_i64().unwrap();
    wait_sent(&sim, CARO, 1).await;
    settle(&gw).await;
    assert_eq!(sent_to(&sim, ANA).len(), 3, "no second notice to Ana");
    // Her reply now has the latest ETA (tomorrow's date, not "hoy").
    sim.inbound(ANA, "reclamo").unwrap();
    let got = wait_sent(&sim, ANA, 4).await;
    assert!(got[3].contains("Estimamos normalizarlo el "), "{got:?}");
    assert!(got[3].contains("zona n1"), "{got:?}");

    // Update, history with counts.
    let (status, o) = post(
        &gw,
        &format!("/api/outages/{first}/update"),
        json!({"message": "Cuadrilla en camino."}),
    )
    .await;
    assert_eq!(
        (status, o["message"].as_str()),
        (200, Some("Cuadrilla en camino.")),
        "{o}"
    );
    let o = gw.get(&format!("/api/outages/{first}")).await;
    assert_eq!(o["state"], "open");
    assert_eq!(o["zones"], json!(["norte"]));
    assert_eq!(
        o["counts"],
        json!({"affected": 2, "notified": 1, "wrote": 2, "replies": 2, "resolved_sent": 0}),
        "{o}"
    );
    let list = gw.get("/api/outages?state=open").await;
    assert_eq!(list["outages"].as_array().unwrap().len(), 2);
    let (status, _) = post(&gw, "/api/outages/999/resolve", json!({})).await;
    assert_eq!(status, 404);

    // Resolving the first: Ana and Beto are still in the node outage: nothing yet.
    settle(&gw).await;
    let before: usize = [ANA, BETO, CARO]
        .iter()
        .map(|p| sent_to(&sim, p).len())
        .sum();
    let (status, o) = post(&gw, &format!("/api/outages/{first}/resolve"), json!({})).await;
    assert_eq!(
        (status, o["state"].as_str()),
        (200, Some("resolved")),
        "{o}"
    );
    let (status, body) = post(&gw, &format!("/api/outages/{first}/resolve"), json!({})).await;
    assert_eq!(status, 409, "{body}");
    let (status, _) = post(
        &gw,
        &format!("/api/outages/{first}/update"),
        json!({"message": "x"}),
    )
    .await;
    assert_eq!(status, 409);
    settle(&gw).await;
    let after: usize = [ANA, BETO, CARO]
        .iter()
        .map(|p| sent_to(&sim, p).len())
        .sum();
    assert_eq!(
        before, after,
        "customers still in an open outage are not told yet"
    );

    // Resolving the second: each notified or who wrote hears it once.
    let r = reqwest::Client::new()
        .post(format!("{}/api/outages/{second}/resolve", gw.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "a resolve without a body");
    for (peer, n) in [(ANA, 5), (BETO, 3), (CARO, 2)] {
        let got = wait_sent(&sim, peer, n).await;
        assert!(
            got[n - 1].contains("ya está normalizado"),
            "{peer}: {got:?}"
        );
    }
    settle(&gw).await;
    for (peer, n) in [(ANA, 5), (BETO, 3), (CARO, 2), (DANI, 1)] {
        assert_eq!(
            sent_to(&sim, peer).len(),
            n,
            "{peer}: {:?}",
            sent_to(&sim, peer)
        );
    }
    let o = gw.get(&format!("/api/outages/{second}")).await;
    assert_eq!(o["counts"]["resolved_sent"], 3, "{o}");
    let t = gw
        .get(&format!("/api/tickets/{}", o["master_ticket"]))
        .await;
    assert_eq!(t["state"], "closed", "{t}");
    // Back to normal: Ana's "soporte" opens a ticket.
    sim.inbound(ANA, "soporte").unwrap();
    let got = wait_sent(&sim, ANA, 6).await;
    assert!(got[5].contains("registramos su reclamo"), "{got:?}");

    // Alertmanager: authentication, bad payloads change nothing, then firing and resolved.
    let firing = am_payload("firing", "sur");
    assert_eq!(alertmanager(am_port, None, &firing).await.0, 401);
    assert_eq!(
        alertmanager(am_port, Some("wrong-token-0123456789"), &firing)
            .await
            .0,
        401
    );
    let mut v3 = firing.clone();
    v3["version"] = json!("3");
    let (status, body) = alertmanager(am_port, Some(AM_TOKEN), &v3).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("version")),
        "{body}"
    );
    let mut unlabeled = firing.clone();
    unlabeled["alerts"][0]["labels"]
        .as_object_mut()
        .unwrap()
        .remove("zona");
    let (status, body) = alertmanager(am_port, Some(AM_TOKEN), &unlabeled).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("alerts[0].labels.zona")),
        "{body}"
    );
    let (status, body) =
        alertmanager(am_port, Some(AM_TOKEN), &am_payload("firing", "nowhere")).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        gw.get("/api/outages?state=open").await["outages"],
        json!([])
    );

    let (status, body) = alertmanager(am_port, Some(AM_TOKEN), &firing).await;
    assert_eq!(status, 200, "{body}");
    let am_id = body["opened"][0].as_i64().unwrap();
    let got = wait_sent(&sim, CARO, 3).await;
    assert!(got[2].contains("Nodo sur sin enlace"), "{got:?}");
    // Alertmanager repeats a firing group: an update, no second notice.
    let (status, body) = alertmanager(am_port, Some(AM_TOKEN), &firing).await;
    assert_eq!(
        (status, body["updated"][0].as_i64()),
        (200, Some(am_id)),
        "{body}"
    );
    let o = gw.get(&format!("/api/outages/{am_id}")).await;
    assert_eq!(
        (o["source"].as_str(), o["alert_zone"].as_str()),
        (Some("alertmanager"), Some("sur"))
    );
    let (status, body) =
        alertmanager(am_port, Some(AM_TOKEN), &am_payload("resolved", "sur")).await;
    assert_eq!(
        (status, body["resolved"][0].as_i64()),
        (200, Some(am_id)),
        "{body}"
    );
    let got = wait_sent(&sim, CARO, 4).await;
    assert!(got[3].contains("ya está normalizado"), "{got:?}");
    settle(&gw).await;
    assert_eq!(sent_to(&sim, CARO).len(), 4);
    let all = gw.get("/api/outages").await;
    assert_eq!(all["outages"].as_array().unwrap().len(), 3);
    assert!(
        all["outages"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["state"] == "resolved")
    );
    gw.stop().await;
    sim.shutdown().await;
}
