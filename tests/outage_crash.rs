//! An open outage survives SIGKILL of the real binary: `pasarela run` against `pasarela
//! modem-sim` in its own process, killed while the notices go out and again while the outage is
//! open. Nobody is notified twice (beyond the one message in flight the reliability contract
//! allows per kill), replies still answer with the outage, and the all-clear goes once each.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::sim_process::SimProcess;
use common::{Daemon, TOKEN, api};
use serde_json::json;

fn gateway(dir: &std::path::Path, link: &std::path::Path) -> Daemon {
    Daemon::start_full(
        dir,
        "",
        &format!(
            "token = \"{TOKEN}\"\n[company]\nname = \"Red Sur\"\n[windows]\nurgent = \"always\"\n\
             [dispatch]\nretry_base_secs = 1\nretry_max_secs = 2\n\
             [[modem]]\nname = \"modem1\"\ndevice = \"{}\"\nsweep_interval_secs = 10\n",
            link.display()
        ),
        &[],
    )
}

const CUSTOMERS: usize = 40;

fn phone(i: usize) -> String {
    format!("+54911600{:05}", i)
}

async fn count_where(sim: &SimProcess, needle: &str) -> HashMap<String, usize> {
    let mut per = HashMap::new();
    for (to, text) in sim.sent().await {
        if text.contains(needle) {
            *per.entry(to).or_insert(0) += 1;
        }
    }
    per
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_an_open_outage_notifies_nobody_twice() {
    let dir = tempfile::tempdir().unwrap();
    let sim = SimProcess::start(dir.path());
    sim.post("/config", json!({"send_delay_ms": 40})).await;
    let mut d = gateway(dir.path(), &sim.link);
    let mut csv = String::from("codigo,nombre,telefono,zona\n");
    for i in 0..CUSTOMERS {
        csv.push_str(&format!("C{i},Cliente {i},{},norte\n", &phone(i)[4..]));
    }
    let r = reqwest::Client::new()
        .post(format!("{}/api/customers/import", d.base))
        .bearer_auth(TOKEN)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (status, body) = api(
        reqwest::Method::POST,
        format!("{}/api/outages", d.base),
        Some(json!({"zones": ["norte"], "eta": "2030-01-01T18:00:00-03:00"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["notified"], CUSTOMERS);
    let id = body["id"].as_i64().unwrap();

    // Killed while the notices go out.
    for _ in 0..400 {
        if count_where(&sim, "hay un corte").await.len() >= CUSTOMERS / 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    d.kill9();
    drop(d);
    let mut d = gateway(dir.path(), &sim.link);
    for _ in 0..1200 {
        if count_where(&sim, "hay un corte").await.len() == CUSTOMERS {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let notices = count_where(&sim, "hay un corte").await;
    assert_eq!(notices.len(), CUSTOMERS, "every customer was told");
    let extra: usize = notices.values().map(|n| n - 1).sum();
    assert!(
        extra <= 1,
        "{extra} repeated notices for one kill: {notices:?}"
    );

    // Killed again while open, once every notice is recorded sent: the restart queues no
    // notice again; replies still come.
    for _ in 0..600 {
        let mut busy = 0;
        for state in ["queued", "sending"] {
            let (_, v) = api(
                reqwest::Method::GET,
                format!("{}/api/messages?state={state}", d.base),
                None,
            )
            .await;
            busy += v["messages"].as_array().map_or(1, |a| a.len());
        }
        if busy == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let notices = count_where(&sim, "hay un corte").await;
    d.kill9();
    drop(d);
    let d = gateway(dir.path(), &sim.link);
    sim.post(
        "/inbound",
        json!({"from": phone(7), "text": "sin internet"}),
    )
    .await;
    for _ in 0..600 {
        if count_where(&sim, "estamos trabajando")
            .await
            .contains_key(&phone(7))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        count_where(&sim, "estamos trabajando").await.get(&phone(7)),
        Some(&1)
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        count_where(&sim, "hay un corte").await,
        notices,
        "no notice after restart"
    );
    let (_, o) = api(
        reqwest::Method::GET,
        format!("{}/api/outages/{id}", d.base),
        None,
    )
    .await;
    assert_eq!(o["state"], "open");
    assert_eq!(o["counts"]["notified"], CUSTOMERS);
    assert_eq!(o["counts"]["wrote"], 1);

    // The all-clear, once each.
    let (status, _) = api(
        reqwest::Method::POST,
        format!("{}/api/outages/{id}/resolve", d.base),
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 200);
    for _ in 0..1200 {
        if count_where(&sim, "normalizado").await.len() == CUSTOMERS {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let resolved = count_where(&sim, "normalizado").await;
    assert_eq!(resolved.len(), CUSTOMERS);
    assert!(resolved.values().all(|n| *n == 1), "{resolved:?}");
    let (status, _) = api(
        reqwest::Method::POST,
        format!("{}/api/outages/{id}/resolve", d.base),
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 409);
}
