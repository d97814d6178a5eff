//! Campaign benchmarks. One JSON line per figure.
//!
//! The daemon in-process with 100,000 customers (half of them owing more than $ 10.000), a
//! simulated modem that receives the customers' texts, and an instant SMS route (`fast`: it
//! answers every send at once and notes when it was handed each message). Both routes send
//! (`policy = "spread"`); a reply counts as handed when either route has it.
//!
//! - `campaign_create_preview`: `POST /api/campaigns` selecting the 50,000 debtors, until the
//!   answer with its preview.
//! - `campaign_start`: `POST /api/campaigns/{id}/start` (the 50,000 tasks written), until the
//!   answer.
//! - `campaign_dispatch_overhead`: with the campaign running on the instant route, wall time
//!   per campaign message handed to the route (feeder, outbox, claim, record: everything but
//!   a real transport's own time), over a stretch of the run.
//! - `campaign_reply_latency`: a customer texts "saldo"; time from the inbound row's commit
//!   until its reply is handed to the route, p50/p99, first with no campaign (idle), then
//!   during the running campaign; the target is p99 during ≤ 2 × p99 idle.
//!
//! `PASARELA_BENCH_QUICK=1` shrinks counts for a smoke run.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pasarela::config::Loaded;
use pasarela::daemon::{self, Parts};
use pasarela::model::{Channel, Outgoing};
use pasarela::modem::sim::{self, SimOptions};
use pasarela::transport::{BoxFuture, Health, SendReceipt, Transport, TransportError};
use serde_json::json;

const TOKEN: &str = "bench-token-0123456789";

fn quick() -> bool {
    std::env::var_os("PASARELA_BENCH_QUICK").is_some()
}

/// The instant route: every send succeeds at once; notes (number, text, when).
#[derive(Default)]
struct Fast {
    sent: Mutex<Vec<(String, String, Instant)>>,
}

impl Transport for Fast {
    fn name(&self) -> &str {
        "fast"
    }
    fn channel(&self) -> Channel {
        Channel::Sms
    }
    fn capacity(&self) -> usize {
        4
    }
    fn health(&self) -> Health {
        Health {
            up: true,
            detail: "up".into(),
        }
    }
    fn send<'a>(
        &'a self,
        message: &'a Outgoing,
    ) -> BoxFuture<'a, Result<SendReceipt, TransportError>> {
        Box::pin(async move {
            self.sent.lock().unwrap().push((
                message.to.clone(),
                message.content.sms_text().unwrap_or("").to_string(),
                Instant::now(),
            ));
            Ok(SendReceipt {
                provider_ref: Some(format!("f-{}", message.id)),
                ..SendReceipt::default()
            })
        })
    }
}

fn national(i: usize) -> String {
    format!("11{:08}", 40_000_000 + i)
}

fn e164(i: usize) -> String {
    format!("+549{}", national(i))
}

/// Even customers owe $ 15.000, odd ones $ 5.000; all due on the 5th.
fn csv(n: usize) -> Vec<u8> {
    let mut out = String::from("codigo;nombre;telefono;deuda;vencimiento;zona\n");
    for i in 0..n {
        let debt = if i % 2 == 0 { "15.000,00" } else { "5.000,00" };
        out.push_str(&format!(
            "C{i:06};Cliente Número {i};{};{debt};05/12/2026;norte\n",
            national(i)
        ));
    }
    out.into_bytes()
}

fn config(dir: &std::path::Path, link: &std::path::Path) -> Loaded {
    pasarela::setup::from_toml(&format!(
        "[daemon]\nstate_dir = \"{}\"\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"{TOKEN}\"\n\
         [rules]\nmax_replies_per_hour = 1000\n[windows]\nbulk = \"always\"\n\
         [routing]\npolicy = \"spread\"\n\
         [[modem]]\nname = \"modem1\"\ndevice = \"{}\"\nstatus_reports = false\n",
        dir.join("state").display(),
        link.display()
    ))
    .unwrap()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[(((sorted.len() - 1) as f64) * p).round() as usize]
}

/// Waits until a reader sees the inbound row; the instant it did.
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

/// Reply latencies (ms, commit to route), sorted; `tag` keeps the texts apart.
async fn replies(
    sim: &sim::SimHandle,
    fast: &Fast,
    db: &std::path::Path,
    n: usize,
    samples: usize,
    tag: &str,
) -> Vec<f64> {
    let mut out = Vec::with_capacity(samples);
    for k in 0..samples {
        // Odd customers: not in the campaign, so their only message is the reply.
        let i = ((k * 7919) % (n / 2)) * 2 + 1;
        let phone = e164(i);
        let text = format!("saldo {tag}{k}");
        let seen = watch_commit(db, phone.clone(), text.clone());
        let before = sim.sent().len();
        let started = Instant::now();
        sim.inbound(&phone, &text).unwrap();
        let handed = loop {
            let found = fast
                .sent
                .lock()
                .unwrap()
                .iter()
                .rev()
                .find(|(to, _, t)| *to == phone && *t >= started)
                .map(|(_, _, t)| *t);
            if let Some(t) = found {
                break t;
            }
            if sim.sent()[before..].iter().any(|m| m.to == phone) {
                break Instant::now();
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no reply to {phone}"
            );
            tokio::time::sleep(Duration::from_micros(300)).await;
        };
        let committed = seen
            .recv_timeout(Duration::from_secs(5))
            .expect("the inbound row is visible");
        out.push(handed.saturating_duration_since(committed).as_secs_f64() * 1000.0);
    }
    out.sort_by(|a, b| a.partial_cmp(b).unwrap());
    out
}

async fn run() {
    let n = if quick() { 10_000 } else { 100_000 };
    let samples = if quick() { 30 } else { 200 };
    let dir = tempfile::tempdir().unwrap();
    let sim = sim::start(SimOptions::new(dir.path().join("modem")))
        .await
        .unwrap();
    let fast = Arc::new(Fast::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(daemon::run(
        config(dir.path(), sim.link()),
        Parts {
            transports: vec![fast.clone() as Arc<dyn Transport>],
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
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let db = dir.path().join("state").join("pasarela.db");

    let idle = replies(&sim, &fast, &db, n, samples, "idle").await;

    let t0 = Instant::now();
    let r = client
        .post(format!("{base}/api/campaigns"))
        .bearer_auth(TOKEN)
        .json(&json!({
            "name": "Deuda mayor a $ 10.000, vencida antes del 10",
            "channel": "sms",
            "template": "%nombre%: su deuda es de %deuda%, vencida el %vencimiento%. Evite el corte.",
            "selection": {"balance_min": "10.000,01", "due_before": "2026-12-10"}
        }))
        .send()
        .await
        .unwrap();
    let create_secs = t0.elapsed().as_secs_f64();
    let status = r.status();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(status, 201, "{body}");
    let selected = body["preview"]["to_send"].as_u64().unwrap();
    assert_eq!(selected as usize, n / 2, "{body}");
    let id = body["id"].as_i64().unwrap();
    let round3 = |v: f64| (v * 1000.0).round() / 1000.0;
    println!(
        "{}",
        json!({"bench": "campaign_create_preview", "customers": n, "selected": selected,
               "seconds": round3(create_secs), "target_seconds": 2,
               "target_met": create_secs <= 2.0 * n as f64 / 100_000.0})
    );

    let t0 = Instant::now();
    let r = client
        .post(format!("{base}/api/campaigns/{id}/start"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    let start_secs = t0.elapsed().as_secs_f64();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    println!(
        "{}",
        json!({"bench": "campaign_start", "tasks": selected, "seconds": round3(start_secs),
               "target_seconds": 3, "target_met": start_secs <= 3.0 * n as f64 / 100_000.0})
    );

    // Overhead: campaign messages handed to the instant route over a stretch of the run.
    let campaign_sends = |fast: &Fast| {
        let on_fast = fast
            .sent
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, text, _)| text.contains("Evite el corte"))
            .count();
        on_fast
            + sim
                .sent()
                .iter()
                .filter(|m| m.text.contains("Evite el corte"))
                .count()
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (c0, t0) = (campaign_sends(&fast), Instant::now());
    tokio::time::sleep(Duration::from_secs(if quick() { 2 } else { 5 })).await;
    let (c1, t1) = (campaign_sends(&fast), Instant::now());
    let per_ms = (t1 - t0).as_secs_f64() * 1000.0 / (c1 - c0).max(1) as f64;
    println!(
        "{}",
        json!({"bench": "campaign_dispatch_overhead", "messages": c1 - c0,
               "ms_per_message": round3(per_ms), "messages_per_s": ((c1 - c0) as f64 / (t1 - t0).as_secs_f64()).round(),
               "target_ms": 1, "target_met": per_ms <= 1.0})
    );

    let during = replies(&sim, &fast, &db, n, samples, "busy").await;
    let still: serde_json::Value = client
        .get(format!("{base}/api/campaigns/{id}"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let running = still["state"] == "running";
    let round1 = |v: f64| (v * 10.0).round() / 10.0;
    let (idle99, busy99) = (percentile(&idle, 0.99), percentile(&during, 0.99));
    println!(
        "{}",
        json!({"bench": "campaign_reply_latency", "samples": samples,
               "idle_p50_ms": round1(percentile(&idle, 0.5)), "idle_p99_ms": round1(idle99),
               "during_p50_ms": round1(percentile(&during, 0.5)), "during_p99_ms": round1(busy99),
               "campaign_still_running": running,
               "campaign_sent_so_far": campaign_sends(&fast),
               "target": "during p99 <= 2 x idle p99",
               "target_met": running && busy99 <= 2.0 * idle99})
    );
    let _ = client
        .post(format!("{base}/api/campaigns/{id}/cancel"))
        .bearer_auth(TOKEN)
        .send()
        .await;
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
