//! Crash safety with the real binary: `pasarela run` against `pasarela modem-sim` in its own
//! process (so the modem outlives the gateway), killed with SIGKILL at random moments.

mod common;

use std::time::Duration;

use common::sim_process::SimProcess;
use common::{Daemon, TOKEN};
use serde_json::json;

fn gateway(dir: &std::path::Path, link: &std::path::Path) -> Daemon {
    Daemon::start_full(
        dir,
        "",
        &format!(
            "token = \"{TOKEN}\"\n[dispatch]\nretry_base_secs = 1\nretry_max_secs = 2\nmax_attempts = 50\n\
             [[modem]]\nname = \"modem1\"\ndevice = \"{}\"\nsweep_interval_secs = 10\n",
            link.display()
        ),
        &[],
    )
}

/// Queues `total` messages whose texts are `{tag}0`, `{tag}1`, … in one batch.
async fn queue_numbered(base: &str, tag: &str, total: usize) {
    let messages: Vec<_> = (0..total)
        .map(|i| json!({"to": "+5491123456789", "text": format!("{tag}{i}")}))
        .collect();
    let r = reqwest::Client::new()
        .post(format!("{base}/api/messages/batch"))
        .bearer_auth(TOKEN)
        .json(&json!({ "messages": messages }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
}

fn count(db: &std::path::Path, sql: &str) -> i64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// A small deterministic generator for kill moments (reproducible runs).
fn jitter(seed: &mut u64) -> u64 {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (*seed >> 33) % 40
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_a_500_message_send_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let sim = SimProcess::start(dir.path());
    sim.post("/config", json!({"send_delay_ms": 20})).await;
    let mut d = gateway(dir.path(), &sim.link);
    let total = 500;
    queue_numbered(&d.base, "m", total).await;
    let mut seed = 0x5eed;
    let kills = 5;
    for k in 1..=kills {
        let target = k * total / (kills + 1);
        for _ in 0..600 {
            if sim.get("/sent").await.as_array().unwrap().len() >= target {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(jitter(&mut seed))).await;
        d.kill9();
        drop(d);
        d = gateway(dir.path(), &sim.link);
    }
    let db = d.db();
    for _ in 0..1200 {
        if count(
            &db,
            "SELECT COUNT(*) FROM messages WHERE state IN ('sent', 'delivered')",
        ) == total as i64
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM messages WHERE state IN ('sent', 'delivered')"
        ),
        total as i64
    );
    let sent = sim.get("/sent").await;
    let texts: Vec<String> = sent
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["text"].as_str().unwrap().to_string())
        .collect();
    let mut per_text = std::collections::HashMap::new();
    for t in &texts {
        *per_text.entry(t.clone()).or_insert(0) += 1;
    }
    for i in 0..total {
        assert!(
            per_text.contains_key(&format!("m{i}")),
            "m{i} never reached the modem"
        );
    }
    let duplicates = texts.len() - total;
    assert!(
        duplicates <= kills,
        "{duplicates} duplicates for {kills} kills"
    );
    assert!(per_text.values().all(|n| *n <= 2));
    eprintln!("500 messages, {kills} kills: {duplicates} duplicate(s)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_while_killed_twice_is_stored_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let sim = SimProcess::start(dir.path());
    let mut d = gateway(dir.path(), &sim.link);
    let total = 200;
    let control = sim.control.clone();
    let injector = tokio::spawn(async move {
        let client = reqwest::Client::new();
        for i in 0..total {
            let r = client
                .post(format!("{control}/inbound"))
                .json(&json!({"from": format!("+54911{}", 20_000_000 + i), "text": format!("in {i}")}))
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success());
            tokio::time::sleep(Duration::from_millis(15)).await;
        }
    });
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(900)).await;
        d.kill9();
        tokio::time::sleep(Duration::from_millis(300)).await;
        drop(d);
        d = gateway(dir.path(), &sim.link);
    }
    injector.await.unwrap();
    let db = d.db();
    for _ in 0..600 {
        let sim_state = sim.get("/sim").await;
        if count(&db, "SELECT COUNT(*) FROM messages WHERE direction = 'in'") == total as i64
            && sim_state["used"] == 0
            && sim_state["waiting"] == 0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM messages WHERE direction = 'in'"),
        total as i64
    );
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(DISTINCT body) FROM messages WHERE direction = 'in'"
        ),
        total as i64
    );
    let sim_state = sim.get("/sim").await;
    assert_eq!(
        (sim_state["used"].as_i64(), sim_state["waiting"].as_i64()),
        (Some(0), Some(0)),
        "{sim_state}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unplug_hang_errors_and_noise_need_no_hands() {
    let dir = tempfile::tempdir().unwrap();
    let sim = SimProcess::start(dir.path());
    sim.post("/config", json!({"send_delay_ms": 20})).await;
    sim.post(
        "/fault",
        json!({"kind": "cms_error", "code": 500, "probability": 0.1}),
    )
    .await;
    sim.post("/fault", json!({"kind": "garbage", "secs": 600}))
        .await;
    let d = gateway(dir.path(), &sim.link);
    let total = 80;
    queue_numbered(&d.base, "f", total).await;
    let sent_count = async || sim.get("/sent").await.as_array().unwrap().len();
    for _ in 0..600 {
        if sent_count().await >= 15 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sim.post("/fault", json!({"kind": "unplug", "secs": 3}))
        .await;
    for _ in 0..1200 {
        if sent_count().await >= 40 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sim.post("/fault", json!({"kind": "hang", "secs": 10}))
        .await;
    let db = d.db();
    for _ in 0..1800 {
        if count(&db, "SELECT COUNT(*) FROM messages WHERE state = 'sent'") == total as i64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM messages WHERE state = 'sent'"),
        total as i64
    );
    assert!(
        count(
            &db,
            "SELECT COUNT(*) FROM messages WHERE attempts > 1 AND last_error IS NOT NULL"
        ) > 0
    );
    // The same process did it all: no restart by hand.
    assert!(
        d.stderr_with("modem ready").contains("modem ready"),
        "{}",
        d.stderr_text()
    );
}
