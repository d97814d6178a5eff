//! Customer directory and keyword-rule benchmarks. One JSON line per figure.
//!
//! - `customers_import_csv`: a 100,000-row CSV (Spanish headers, ISP-style phone numbers,
//!   Argentine amounts) posted to `/api/customers/import` until the answer (all rows committed).
//! - `saldo_reply_latency`: with 100,000 customers stored, a customer texts "saldo" to the
//!   simulated modem (zero send delay); time until the reply is handed to the modem (`AT+CMGS`
//!   accepted), measured from the injection and from the inbound row's commit. "From the commit"
//!   starts when a separate reader first sees the row (polled every 0.2 ms from its own
//!   thread), so after COMMIT and fsync returned; `created_at` is stamped before COMMIT and is
//!   not used.
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
/// visible, and sends the instant it first saw it: after its commit returned, by at most one
/// poll interval (0.2 ms) and one query.
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

/// Customer `i`'s number, national form: Buenos Aires and Córdoba mobiles.
fn national(i: usize) -> String {
    if i.is_multiple_of(2) {
        format!("11{:08}", 40_000_000 + i)
    } else {
        format!("351{:07}", 4_000_000 + i)
    }
}

fn e164(i: usize) -> String {
    format!("+549{}", national(i))
}

/// The rows an ISP's export would have, in the forms they come in.
fn csv(n: usize) -> Vec<u8> {
    let mut out = String::from("codigo;nombre;telefono;email;deuda;vencimiento;plan\n");
    for i in 0..n {
        let phone = match i % 3 {
            0 => national(i),
            1 => {
                let n = national(i);
                let area = if n.starts_with("11") { 2 } else { 3 };
                format!("0{} 15-{}", &n[..area], &n[area..])
            }
            _ => format!("+54 9 {}", national(i)),
        };
        let pesos = (i * 37) % 250_000;
        out.push_str(&format!(
            "C{i:06};Cliente Número {i};{phone};c{i}@example.com;{}.{:03},{:02};05/12/2026;Fibra 300\n",
            pesos / 1000,
            pesos % 1000,
            i % 100
        ));
    }
    out.into_bytes()
}

fn config(dir: &std::path::Path, link: &std::path::Path) -> Loaded {
    pasarela::setup::from_toml(&format!(
        "[daemon]\nstate_dir = \"{}\"\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"{TOKEN}\"\n\
         [rules]\nmax_replies_per_hour = 1000\n\
         [[modem]]\nname = \"modem1\"\ndevice = \"{}\"\nstatus_reports = false\n",
        dir.join("state").display(),
        link.display()
    ))
    .unwrap()
}

async fn run() {
    let n = if quick() { 10_000 } else { 100_000 };
    let samples_wanted = if quick() { 30 } else { 300 };
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
    // Modem start-up takes a few AT round trips.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let body = csv(n);
    let bytes = body.len();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(300))
        .build()
        .unwrap();
    let t0 = Instant::now();
    let r = client
        .post(format!("{base}/api/customers/import"))
        .bearer_auth(TOKEN)
        .header("content-type", "text/csv")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let report: serde_json::Value = r.json().await.unwrap();
    let secs = t0.elapsed().as_secs_f64();
    assert!(status.is_success(), "{report}");
    assert_eq!(report["inserted"], n, "{report}");
    assert_eq!(report["rejected"].as_array().unwrap().len(), 0, "{report}");
    // The target is for 100,000 rows; a quick run scales it.
    let target = 5.0 * n as f64 / 100_000.0;
    println!(
        "{}",
        json!({"bench": "customers_import_csv", "rows": n, "bytes": bytes, "seconds": (secs * 1000.0).round() / 1000.0, "rows_per_s": (n as f64 / secs).round(), "target_seconds_for_100000": 5, "target_met": secs <= target})
    );

    let db = dir.path().join("state").join("pasarela.db");
    let mut from_commit = Vec::new();
    let mut from_injection = Vec::new();
    for k in 0..samples_wanted {
        // Spread over the directory; a new number each time (the hourly reply cap is per number).
        let i = (k * 7919) % n;
        let phone = e164(i);
        let before = sim.sent().len();
        let text = format!("saldo {k}");
        let seen = watch_commit(&db, phone.clone(), text.clone());
        let started = Instant::now();
        sim.inbound(&phone, &text).unwrap();
        loop {
            let sent = sim.sent();
            if let Some(m) = sent[before..].iter().find(|m| m.to == phone) {
                let handed_at = Instant::now();
                let handed = handed_at.duration_since(started).as_secs_f64() * 1000.0;
                assert!(
                    m.text.contains(&format!("Cliente Número {i},")),
                    "{}",
                    m.text
                );
                // The reply needs the committed row, so the watcher has seen it by now (or within
                // one poll interval).
                let committed = seen
                    .recv_timeout(Duration::from_secs(5))
                    .expect("the inbound row is visible");
                from_injection.push(handed);
                from_commit
                    .push(handed_at.saturating_duration_since(committed).as_secs_f64() * 1000.0);
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no reply to {phone}"
            );
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
    }
    from_commit.sort_by(|a, b| a.partial_cmp(b).unwrap());
    from_injection.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let round = |v: f64| (v * 10.0).round() / 10.0;
    println!(
        "{}",
        json!({"bench": "saldo_reply_latency", "customers": n, "messages": samples_wanted,
               "commit_to_modem_p50_ms": round(percentile(&from_commit, 0.5)),
               "commit_to_modem_p99_ms": round(percentile(&from_commit, 0.99)),
               "injection_to_modem_p50_ms": round(percentile(&from_injection, 0.5)),
               "injection_to_modem_p99_ms": round(percentile(&from_injection, 0.99)),
               "target_p99_ms": 50,
               "target_met": percentile(&from_commit, 0.99) <= 50.0})
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
