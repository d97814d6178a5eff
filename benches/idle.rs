//! The idle footprint of the real binary: `pasarela run` with the admin API, the database and
//! one modem (the simulator, in this process, over a real pseudo-terminal), no traffic, and
//! `WATCHDOG_USEC` set as the systemd unit's `WatchdogSec=30` sets it. One JSON line per figure.
//!
//! - `idle`: over a window after a warm-up, the daemon's wakeups per second (voluntary plus
//!   involuntary context switches summed over its threads, from `/proc/<pid>/task/*/status`),
//!   CPU (utime + stime of `/proc/<pid>/stat`) and resident memory: `VmRSS` read every
//!   250 ms, its mean (the target is on it) and peak, and at the window's end split into
//!   `RssAnon` and `RssFile`. Only the daemon's pid is measured, not the simulator.
//! - `keyword_reply`: "saldo" texted to the simulator until the reply leaves it: the first one
//!   after the idle window (it pays for loading the phone-number metadata), then warm ones.
//! - `idle_after_traffic`: the same figures again once those replies are done.
//! - `keyword_reply_after_quiet` (last): three replies, each after the gateway went quiet again
//!   (its quiet release drops the compiled phone-number patterns and the code pages).
//! - `openapi_document`: `GET /api/openapi.json` 20 times (the document is embedded in the
//!   binary and sent as it is): its size and the time to serve it; then `idle_after_openapi`, the idle
//!   figures again, showing the document is not kept resident.
//!
//! `PASARELA_BENCH_QUICK=1` shortens the windows for a smoke run (about a minute). Each warm-up
//! outlasts two of the daemon's 10 s status rounds: the first round without a write hands back
//! what start-up or the traffic left mapped (`idle::release_memory`), and "idle" means after it.
//! `PASARELA_BENCH_BIN=/path/to/pasarela` measures another build (e.g. main's, for a before
//! figure) with the same procedure.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pasarela::modem::sim::{self, SimHandle, SimOptions};
use serde_json::json;

/// The goal: lighter than gammu-smsd (10.3 MB, 2 wakeups/s on the same machine).
const TARGET_RSS_MB: f64 = 8.0;
const TARGET_WAKEUPS_PER_SEC: f64 = 1.0;
const TARGET_CPU_PERCENT: f64 = 0.1;
/// The packaged unit's `WatchdogSec=30`: the daemon feeds the watchdog every 10 s.
const WATCHDOG_USEC: &str = "30000000";
/// USER_HZ on Linux.
const TICKS_PER_SEC: f64 = 100.0;

fn quick() -> bool {
    std::env::var_os("PASARELA_BENCH_QUICK").is_some()
}

fn binary() -> String {
    std::env::var("PASARELA_BENCH_BIN").unwrap_or_else(|_| common::bin().to_string())
}

struct Daemon {
    child: Child,
    port: u16,
    notify: Arc<Mutex<Vec<String>>>,
    log: PathBuf,
}

impl Daemon {
    fn start(dir: &Path, link: &Path) -> Daemon {
        let port = common::free_port();
        let config = common::write_config(
            dir,
            port,
            "",
            &format!(
                "token = \"{}\"\n[[modem]]\nname = \"modem1\"\ndevice = \"{}\"\n",
                common::TOKEN,
                link.display()
            ),
        );
        let notify_path = dir.join("notify.sock");
        let sock = UnixDatagram::bind(&notify_path).unwrap();
        let notify = Arc::new(Mutex::new(Vec::new()));
        {
            let notify = notify.clone();
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 4096];
                while let Ok(n) = sock.recv(&mut buf) {
                    let msg = String::from_utf8_lossy(&buf[..n]).to_string();
                    notify.lock().unwrap().push(msg);
                }
            });
        }
        let log = dir.join("daemon.log");
        let child = Command::new(binary())
            .arg("run")
            .arg("--config")
            .arg(&config)
            .env("NOTIFY_SOCKET", &notify_path)
            .env("WATCHDOG_USEC", WATCHDOG_USEC)
            .env("PASARELA_JOURNAL_SOCKET", dir.join("no-journal-here"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Daemon {
            child,
            port,
            notify,
            log,
        }
    }

    /// Waits until a notification line starts with `needle`.
    fn wait_notified(&self, needle: &str, limit: Duration) {
        let start = Instant::now();
        while !self.notify.lock().unwrap().iter().any(|m| {
            m.lines()
                .any(|l| l.starts_with(needle) || l.contains(needle))
        }) {
            assert!(
                start.elapsed() < limit,
                "no `{needle}` from the daemon; its log:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One look at the process: context switches per thread, CPU ticks, memory (KiB).
struct Sample {
    switches: HashMap<String, u64>,
    ticks: u64,
    rss_kb: u64,
    anon_kb: u64,
    file_kb: u64,
}

fn status_field(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn sample(pid: u32) -> Sample {
    let mut switches = HashMap::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let task = task.unwrap();
        // A thread may end between the listing and the read.
        let Ok(status) = std::fs::read_to_string(task.path().join("status")) else {
            continue;
        };
        let n = status_field(&status, "voluntary_ctxt_switches:")
            + status_field(&status, "nonvoluntary_ctxt_switches:");
        // Keyed by id and name: the name groups the figures per thread kind.
        let name = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        let key = format!("{}:{}", task.file_name().to_string_lossy(), name.trim());
        switches.insert(key, n);
    }
    let (_, ticks) = common::proc_stat(pid);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    Sample {
        switches,
        ticks,
        rss_kb: status_field(&status, "VmRSS:"),
        anon_kb: status_field(&status, "RssAnon:"),
        file_kb: status_field(&status, "RssFile:"),
    }
}

/// Measures `pid` over `window` and prints one line named `bench`.
async fn measure(bench: &str, pid: u32, window: Duration) -> bool {
    let before = sample(pid);
    // Resident memory moves within a window (a round maps code, the release after it drops
    // it): read it every 250 ms (reading /proc does not wake the daemon) for its mean and peak.
    let start = Instant::now();
    let mut rss_readings = Vec::new();
    while start.elapsed() < window {
        tokio::time::sleep(Duration::from_millis(250).min(window - start.elapsed())).await;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        rss_readings.push(status_field(&status, "VmRSS:"));
    }
    let after = sample(pid);
    rss_readings.push(after.rss_kb);
    let rss_mean_mb = rss_readings.iter().sum::<u64>() as f64 / rss_readings.len() as f64 / 1024.0;
    let rss_max_mb = rss_readings.iter().max().copied().unwrap_or(0) as f64 / 1024.0;
    // Threads that ended during the window took their counts with them: say how many.
    let ended = before
        .switches
        .keys()
        .filter(|t| !after.switches.contains_key(*t))
        .count();
    let switches: u64 = after
        .switches
        .iter()
        .map(|(t, n)| n - before.switches.get(t).copied().unwrap_or(0).min(*n))
        .sum();
    let secs = window.as_secs_f64();
    let wakeups = switches as f64 / secs;
    // Where the wakeups go: per thread name (threads of one kind summed), per second.
    let mut by_thread: std::collections::BTreeMap<String, u64> = Default::default();
    for (t, n) in &after.switches {
        let name = t.split_once(':').map_or(t.as_str(), |(_, n)| n).to_string();
        *by_thread.entry(name).or_default() +=
            n - before.switches.get(t).copied().unwrap_or(0).min(*n);
    }
    let by_thread: serde_json::Map<String, serde_json::Value> = by_thread
        .into_iter()
        .map(|(k, n)| (k, json!((n as f64 / secs * 100.0).round() / 100.0)))
        .collect();
    let cpu = (after.ticks - before.ticks) as f64 / TICKS_PER_SEC / secs * 100.0;
    let rss_mb = after.rss_kb as f64 / 1024.0;
    let met = rss_mean_mb <= TARGET_RSS_MB
        && wakeups <= TARGET_WAKEUPS_PER_SEC
        && cpu <= TARGET_CPU_PERCENT;
    let mb2 = |v: f64| (v * 100.0).round() / 100.0;
    println!(
        "{}",
        json!({
            "bench": bench, "binary": binary(), "window_secs": secs,
            "wakeups_per_sec": (wakeups * 100.0).round() / 100.0,
            "context_switches": switches, "threads": after.switches.len(),
            "wakeups_per_sec_by_thread": by_thread,
            "threads_ended_in_window": ended,
            "cpu_percent_of_one_core": (cpu * 1000.0).round() / 1000.0,
            "cpu_resolution_percent": 1.0 / TICKS_PER_SEC / secs * 100.0,
            "rss_mean_mb": mb2(rss_mean_mb), "rss_max_mb": mb2(rss_max_mb),
            "rss_readings": rss_readings.len(),
            "rss_mb": mb2(rss_mb),
            "rss_anon_mb": mb2(after.anon_kb as f64 / 1024.0),
            "rss_file_mb": mb2(after.file_kb as f64 / 1024.0),
            "rss_what": "rss_mean_mb: VmRSS read every 250 ms over the window, averaged (the target is on it); rss_max_mb: the highest reading; rss_mb and its anon/file split: at the window's end",
            "target_rss_mb": TARGET_RSS_MB, "target_wakeups_per_sec": TARGET_WAKEUPS_PER_SEC,
            "target_cpu_percent": TARGET_CPU_PERCENT, "target_met": met
        })
    );
    met
}

/// Texts "saldo" from `from` and waits for the reply to leave the simulator; milliseconds.
async fn keyword_reply(sim: &SimHandle, from: &str) -> f64 {
    let start = Instant::now();
    sim.inbound(from, "saldo").unwrap();
    let deadline = start + Duration::from_secs(30);
    while !sim.sent().iter().any(|m| m.to == from) {
        assert!(Instant::now() < deadline, "no reply to {from} within 30 s");
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
    start.elapsed().as_secs_f64() * 1000.0
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[(((sorted.len() - 1) as f64) * p).round() as usize]
}

async fn run() {
    let dir = tempfile::tempdir().unwrap();
    let sim = sim::start(SimOptions::new(dir.path().join("modem")))
        .await
        .unwrap();
    let d = Daemon::start(dir.path(), sim.link());
    let pid = d.child.id();
    d.wait_notified("READY=1", Duration::from_secs(30));
    d.wait_notified("transports 1/1 up", Duration::from_secs(60));
    let (warm_up, window, after_window, replies) = if quick() {
        (20, 12, 20, 5)
    } else {
        (30, 60, 60, 30)
    };
    tokio::time::sleep(Duration::from_secs(warm_up)).await;
    measure("idle", pid, Duration::from_secs(window)).await;

    let first = keyword_reply(&sim, "+5491100000000").await;
    let mut warm = Vec::new();
    for i in 1..=replies {
        warm.push(keyword_reply(&sim, &format!("+54911{:08}", i)).await);
    }
    warm.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "{}",
        json!({
            "bench": "keyword_reply", "binary": binary(),
            "measured": "from the simulator storing the SMS and announcing it to the reply leaving the simulator",
            "first_after_idle_ms": (first * 10.0).round() / 10.0, "warm_replies": replies,
            "warm_p50_ms": (percentile(&warm, 0.5) * 10.0).round() / 10.0,
            "warm_max_ms": (warm[warm.len() - 1] * 10.0).round() / 10.0
        })
    );
    // Let the replies' writes, the search index and the status line settle first.
    tokio::time::sleep(Duration::from_secs(warm_up)).await;
    measure("idle_after_traffic", pid, Duration::from_secs(after_window)).await;

    let url = format!("http://127.0.0.1:{}/api/openapi.json", d.port);
    let mut times = Vec::new();
    let mut bytes = 0;
    for _ in 0..20 {
        let start = Instant::now();
        let answer = reqwest::get(&url).await.unwrap();
        assert!(answer.status().is_success(), "{}", answer.status());
        bytes = answer.bytes().await.unwrap().len();
        times.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    let first = times[0];
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "{}",
        json!({
            "bench": "openapi_document", "binary": binary(), "requests": times.len(),
            "measured": "GET /api/openapi.json over loopback: the embedded document read and sent",
            "bytes": bytes, "first_ms": (first * 10.0).round() / 10.0,
            "p50_ms": (percentile(&times, 0.5) * 10.0).round() / 10.0,
            "max_ms": (times[times.len() - 1] * 10.0).round() / 10.0
        })
    );
    tokio::time::sleep(Duration::from_secs(warm_up)).await;
    measure("idle_after_openapi", pid, Duration::from_secs(after_window)).await;

    // A customer texting a gateway that went quiet after traffic: the metadata is loaded, but
    // the quiet release dropped its compiled patterns and the code pages the reply runs.
    let mut quiet = Vec::new();
    for i in 0..3 {
        quiet.push(keyword_reply(&sim, &format!("+54911{:08}", 90 + i)).await);
        tokio::time::sleep(Duration::from_secs(if quick() { 12 } else { 25 })).await;
    }
    println!(
        "{}",
        json!({
            "bench": "keyword_reply_after_quiet", "binary": binary(),
            "measured": "a reply after the gateway went quiet again (each after a quiet release)",
            "replies_ms": quiet.iter().map(|v| (v * 10.0).round() / 10.0).collect::<Vec<_>>(),
            "warm_p50_ms_for_comparison": (percentile(&warm, 0.5) * 10.0).round() / 10.0
        })
    );
    drop(d);
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
