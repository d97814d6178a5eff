//! GSM modem benchmarks against `pasarela modem-sim` over real pseudo-terminals. One JSON line
//! per figure.
//!
//! - `inbound_latency`: the simulator stores a message and emits `+CMTI` → the row is committed,
//!   timed when a separate reader first sees the row (so after COMMIT and fsync returned), not
//!   from `created_at`, which is stamped before COMMIT.
//! - `send_overhead`: 200 messages with a 50 ms per-part send delay, one modem, against 200 × 50 ms.
//! - `send_scaling`: the same on four modems, throughput against one.
//! - `idle_modem`: resident memory and CPU of the real binary with one modem over 60 s.
//!
//! `PASARELA_BENCH_QUICK=1` shrinks counts and windows for a smoke run.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pasarela::config::Loaded;
use pasarela::daemon::{self, Parts};
use pasarela::modem::sim::{self, SimHandle, SimOptions};
use serde_json::json;

fn quick() -> bool {
    std::env::var_os("PASARELA_BENCH_QUICK").is_some()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn config(dir: &std::path::Path, links: &[std::path::PathBuf]) -> Loaded {
    let mut text = format!(
        "[daemon]\nstate_dir = \"{}\"\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"bench-token-0123456789\"\n",
        dir.join("state").display()
    );
    for (i, link) in links.iter().enumerate() {
        text.push_str(&format!(
            "[[modem]]\nname = \"modem{}\"\ndevice = \"{}\"\nstatus_reports = false\n",
            i + 1,
            link.display()
        ));
    }
    pasarela::setup::from_toml(&text).unwrap()
}

struct Running {
    base: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    state: std::path::PathBuf,
}

async fn start(dir: &std::path::Path, links: &[std::path::PathBuf]) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(daemon::run(
        config(dir, links),
        Parts {
            transports: vec![],
            listener: Some(listener),
        },
        async move {
            let _ = rx.await;
        },
    ));
    Running {
        base,
        stop,
        task,
        state: dir.join("state"),
    }
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
    }
}

async fn sims(dir: &std::path::Path, n: usize, send_delay_ms: u64) -> Vec<SimHandle> {
    let mut out = Vec::new();
    for i in 0..n {
        let mut o = SimOptions::new(dir.join(format!("modem{i}")));
        o.config.send_delay_ms = send_delay_ms;
        out.push(sim::start(o).await.unwrap());
    }
    out
}

/// How often the commit watcher looks: the resolution of "after the commit returned".
const WATCH_EVERY: Duration = Duration::from_micros(200);

/// Watches the database from its own thread (a read-only connection, as any other process
/// would have) until an inbound row with `body` is visible, and sends the instant it first saw
/// it with the row's `created_at`. A row is visible only once its commit (and fsync) returned,
/// so this is at most [`WATCH_EVERY`] plus one query after the commit.
fn watch_commit(
    state: &std::path::Path,
    body: String,
) -> std::sync::mpsc::Receiver<(Instant, i64)> {
    let conn = rusqlite::Connection::open_with_flags(
        state.join("pasarela.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let found: Option<i64> = conn
                .query_row(
                    "SELECT created_at FROM messages WHERE direction = 'in' AND body = ?1",
                    [&body],
                    |r| r.get(0),
                )
                .ok();
            if let Some(created_at) = found {
                let _ = tx.send((Instant::now(), created_at));
                return;
            }
            std::thread::sleep(WATCH_EVERY);
        }
    });
    rx
}

/// Whether every figure met its target (`actual <= target`), for the JSON line.
fn met(pairs: &[(f64, f64)]) -> bool {
    pairs.iter().all(|(actual, target)| actual <= target)
}

/// Modem start-up takes a few AT round trips; give it time before measuring.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(1500)).await;
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[(((sorted.len() - 1) as f64) * p).round() as usize]
}

async fn inbound_latency() {
    let dir = tempfile::tempdir().unwrap();
    let sims = sims(dir.path(), 1, 0).await;
    let running = start(dir.path(), &[sims[0].link().to_path_buf()]).await;
    settle().await;
    let n = if quick() { 30 } else { 300 };
    let mut samples = Vec::with_capacity(n);
    let mut stamped = Vec::with_capacity(n);
    for i in 0..n {
        let text = format!("saldo {i}");
        let seen = watch_commit(&running.state, text.clone());
        let t0 = now_ms();
        let started = Instant::now();
        sims[0].inbound("+5491123456789", &text).unwrap();
        let (at, created_at) = tokio::task::spawn_blocking(move || seen.recv())
            .await
            .unwrap()
            .unwrap_or_else(|_| panic!("message {i} never reached the database"));
        samples.push(at.duration_since(started).as_secs_f64() * 1000.0);
        stamped.push((created_at - t0).max(0) as f64);
    }
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    stamped.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let (p50, p99) = (percentile(&samples, 0.5), percentile(&samples, 0.99));
    println!(
        "{}",
        json!({"bench": "inbound_latency", "measured_until": "the committed row is visible to another reader (polled every 0.2 ms)",
               "messages": n, "p50_ms": p50, "p99_ms": p99, "max_ms": samples[n - 1],
               "created_at_stamp_p50_ms": percentile(&stamped, 0.5),
               "target_p50_ms": 20, "target_p99_ms": 100, "target_met": met(&[(p50, 20.0), (p99, 100.0)])})
    );
    running.stop().await;
    for s in sims {
        s.shutdown().await;
    }
}

/// Queues `n` messages, starts the gateway on `modems` simulators, and times until all are sent.
async fn send_run(n: usize, modems: usize, delay_ms: u64) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let sims = sims(dir.path(), modems, delay_ms).await;
    let links: Vec<_> = sims.iter().map(|s| s.link().to_path_buf()).collect();
    // Start first so the modems are up, then queue everything at once.
    let running = start(dir.path(), &links).await;
    settle().await;
    let messages: Vec<_> = (0..n)
        .map(|i| json!({"to": "+5491123456789", "text": format!("aviso {i}"), "priority": "bulk"}))
        .collect();
    let t = Instant::now();
    // Through the API, which wakes the dispatcher at once.
    let r = reqwest::Client::new()
        .post(format!("{}/api/messages/batch", running.base))
        .bearer_auth("bench-token-0123456789")
        .json(&json!({ "messages": messages }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let sent: usize = sims.iter().map(|s| s.sent().len()).sum();
        if sent >= n {
            break;
        }
        assert!(Instant::now() < deadline, "only {sent} of {n} sent");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let secs = t.elapsed().as_secs_f64();
    running.stop().await;
    for s in sims {
        s.shutdown().await;
    }
    secs
}

async fn send_overhead() {
    let n = if quick() { 40 } else { 200 };
    let delay = 50;
    let one = send_run(n, 1, delay).await;
    let ideal = n as f64 * delay as f64 / 1000.0;
    let overhead = (one / ideal - 1.0) * 100.0;
    println!(
        "{}",
        json!({"bench": "send_overhead", "messages": n, "modems": 1, "part_delay_ms": delay, "seconds": one, "ideal_seconds": ideal, "overhead_percent": overhead, "target_overhead_percent": 5, "target_met": met(&[(overhead, 5.0)])})
    );
    let four = send_run(n, 4, delay).await;
    println!(
        "{}",
        json!({"bench": "send_scaling", "messages": n, "modems": 4, "part_delay_ms": delay, "seconds": four, "speedup_vs_one": one / four, "target_speedup": 3.6, "target_met": one / four >= 3.6})
    );
}

async fn idle_modem() {
    let dir = tempfile::tempdir().unwrap();
    let sims = sims(dir.path(), 1, 0).await;
    let d = common::Daemon::start_full(
        dir.path(),
        "",
        &format!(
            "token = \"{}\"\n[[modem]]\nname = \"modem1\"\ndevice = \"{}\"\n",
            common::TOKEN,
            sims[0].link().display()
        ),
        &[],
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let window = if quick() { 5 } else { 60 };
    let (_, t0) = common::proc_stat(d.child.id());
    tokio::time::sleep(Duration::from_secs(window)).await;
    let (rss_kb, t1) = common::proc_stat(d.child.id());
    let cpu = (t1 - t0) as f64 / 100.0 / window as f64 * 100.0;
    // One message in and one out: the phone-number metadata is loaded from then on.
    sims[0].inbound("+5491123456789", "saldo").unwrap();
    let r = reqwest::Client::new()
        .post(format!("{}/api/messages", d.base))
        .bearer_auth(common::TOKEN)
        .json(&json!({"to": "+5491123456789", "text": "hola"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (rss_after_kb, _) = common::proc_stat(d.child.id());
    println!(
        "{}",
        json!({
            "bench": "idle_modem", "rss_mb": rss_kb as f64 / 1024.0,
            "rss_mb_after_first_messages": rss_after_kb as f64 / 1024.0,
            "cpu_percent_of_one_core": cpu, "window_secs": window,
            "target_rss_mb": 10, "target_cpu_percent": 1,
            "target_met": met(&[(rss_kb as f64 / 1024.0, 10.0), (cpu, 1.0)])
        })
    );
    drop(d);
    for s in sims {
        s.shutdown().await;
    }
}

fn main() {
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let run = |name: &str| filter.as_deref().is_none_or(|f| name.contains(f));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        if run("inbound") {
            inbound_latency().await;
        }
        if run("send") {
            send_overhead().await;
        }
        if run("idle") {
            idle_modem().await;
        }
    });
}
