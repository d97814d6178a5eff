//! Outage benchmarks. One JSON line per figure.
//!
//! - `outage_open`: with 100,000 customers stored, `POST /api/outages` for the zone of 20,000 of
//!   them, until the answer: the affected customers computed and frozen, the master ticket
//!   opened and the 20,000 notices queued, committed in one transaction. Target ≤ 1 s.
//! - `outage_reply_latency`: right after, while the simulated modem (zero send delay) is sending
//!   the notices, 500 affected customers text "sin internet", one every 110 ms (within a
//!   minute). Each must get the outage reply and no ticket may be opened. Latency is from the
//!   inbound row's commit (a separate reader polling every 0.2 ms, as `benches/rules.rs`) and
//!   from the injection, until the reply is handed to the modem. Target p99 < 50 ms.
//!
//! `PASARELA_BENCH_QUICK=1` shrinks counts for a smoke run.

use std::time::{Duration, Instant};

use pasarela::config::Loaded;
use pasarela::daemon::{self, Parts};
use pasarela::modem::sim::{self, SimOptions};
use serde_json::json;

const TOKEN: &str = "bench-token-0123456789";

fn quick() -> bool {
    std::env::var_os("PASARELA_BENCH_QUICK").is_some()
}

/// Watches the database from its own thread until an inbound row from `peer` with `body` is
/// visible, and sends the instant it first saw it (after its commit returned).
fn watch_commit(
    db: &std::path::Path,
    peer: String,
    body: String,
) -> std::sync::mpsc::Receiver<Instant> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let found = conn
                .query_row(
                    "SELECT 1 FROM messages WHERE direction = 'in' AND peer = ?1 AND body = ?2",
                    [&peer, &body],
                    |_| Ok(()),
                )
                .is_ok();
            if found {
                let _ = tx.send(Instant::now());
                return;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    });
    rx
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[(((sorted.len() - 1) as f64) * p).round() as usize]
}

fn national(i: usize) -> String {
    format!("11{:08}", 40_000_000 + i)
}

fn e164(i: usize) -> String {
    format!("+549{}", national(i))
}

/// One customer in five is in `norte`.
fn csv(n: usize) -> Vec<u8> {
    let zones = ["norte", "sur", "este", "oeste", "centro"];
    let mut out = String::from("codigo;nombre;telefono;zona;deuda\n");
    for i in 0..n {
        out.push_str(&format!(
            "C{i:06};Cliente {i};{};{};1.234,50\n",
            national(i),
            zones[i % 5]
        ));
    }
    out.into_bytes()
}

fn config(dir: &std::path::Path, link: &std::path::Path) -> Loaded {
    pasarela::setup::from_toml(&format!(
        "[daemon]\nstate_dir = \"{}\"\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"{TOKEN}\"\n\
         [windows]\nurgent = \"always\"\n\
         [[modem]]\nname = \"modem1\"\ndevice = \"{}\"\nstatus_reports = false\n",
        dir.join("state").display(),
        link.display()
    ))
    .unwrap()
}

fn count(db: &std::path::Path, sql: &str) -> i64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

async fn run() {
    let n = if quick() { 10_000 } else { 100_000 };
    let texts = if quick() { 50 } else { 500 };
    let dir = tempfile::tempdir().unwrap();
    let sim = sim::start(SimOptions::new(dir.path().join("modem")))
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(daemon::run(
        config(dir.path(), sim.link()),
        Parts {
            transports: vec![],
            listener: Some(listener),
        },
        async move {
            let _ = rx.await;
        },
    ));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(300))
        .build()
        .unwrap();
    let r = client
        .post(format!("{base}/api/customers/import"))
        .bearer_auth(TOKEN)
        .header("content-type", "text/csv")
        .body(csv(n))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());

    let t0 = Instant::now();
    let r = client
        .post(format!("{base}/api/outages"))
        .bearer_auth(TOKEN)
        .json(&json!({"zones": ["norte"], "message": "Corte de fibra.", "eta": "2030-01-01T18:00:00-03:00"}))
        .send()
        .await
        .unwrap();
    let secs = t0.elapsed().as_secs_f64();
    let status = r.status();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["affected"], n / 5, "{body}");
    let target = n as f64 / 100_000.0;
    println!(
        "{}",
        json!({"bench": "outage_open", "customers": n, "affected": body["affected"], "notices_queued": body["notified"],
               "seconds": (secs * 1000.0).round() / 1000.0, "target_seconds_for_100000": 1,
               "target_met": secs <= target})
    );

    let db = dir.path().join("state").join("pasarela.db");
    let tickets_before = count(&db, "SELECT COUNT(*) FROM tickets");
    let mut from_commit = Vec::new();
    let mut from_injection = Vec::new();
    let mut notices_sent = 0usize;
    let run_started = Instant::now();
    for k in 0..texts {
        let slot = run_started + Duration::from_millis(110 * k as u64);
        tokio::time::sleep_until(slot.into()).await;
        // Affected customers are those with i % 5 == 0, spread over the directory.
        let i = ((k * 7919) % (n / 5)) * 5;
        let phone = e164(i);
        notices_sent += sim.sent().len();
        sim.clear_sent();
        let text = "sin internet".to_string();
        let seen = watch_commit(&db, phone.clone(), text.clone());
        let started = Instant::now();
        sim.inbound(&phone, &text).unwrap();
        loop {
            let sent = sim.sent();
            if let Some(m) = sent
                .iter()
                .find(|m| m.to == phone && m.text.contains("estamos trabajando"))
            {
                let handed_at = Instant::now();
                from_injection.push(handed_at.duration_since(started).as_secs_f64() * 1000.0);
                let committed = seen
                    .recv_timeout(Duration::from_secs(5))
                    .expect("the inbound row is visible");
                from_commit
                    .push(handed_at.saturating_duration_since(committed).as_secs_f64() * 1000.0);
                let _ = m;
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no outage reply to {phone}"
            );
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
    }
    let window = run_started.elapsed().as_secs_f64();
    notices_sent += sim.sent().len();
    let new_tickets = count(&db, "SELECT COUNT(*) FROM tickets") - tickets_before;
    from_commit.sort_by(|a, b| a.partial_cmp(b).unwrap());
    from_injection.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let round = |v: f64| (v * 10.0).round() / 10.0;
    println!(
        "{}",
        json!({"bench": "outage_reply_latency", "customers": n, "texts": texts,
               "seconds_for_all_texts": round(window), "answered": from_commit.len(),
               "new_tickets": new_tickets, "notices_sent_meanwhile": notices_sent,
               "commit_to_modem_p50_ms": round(percentile(&from_commit, 0.5)),
               "commit_to_modem_p99_ms": round(percentile(&from_commit, 0.99)),
               "injection_to_modem_p50_ms": round(percentile(&from_injection, 0.5)),
               "injection_to_modem_p99_ms": round(percentile(&from_injection, 0.99)),
               "target_p99_ms": 50,
               "target_met": percentile(&from_commit, 0.99) < 50.0 && new_tickets == 0
                   && from_commit.len() == texts})
    );
    let _ = stop.send(());
    task.await.unwrap().unwrap();
    sim.shutdown().await;
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
}
