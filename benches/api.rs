//! Admin API benchmarks against the real release binary over loopback HTTP. Prints one JSON
//! line per figure.
//!
//! - `accept_single`: `POST /api/messages` from 16 concurrent clients, durable accepts per second.
//! - `accept_batch`: 100,000 messages in ten `POST /api/messages/batch` requests of 10,000.
//! - `list_*`: `GET /api/messages` latency percentiles on a 1,000,000-row history.
//! - `idle`: resident memory and CPU of an idle daemon.
//! - `db_size`: the database file after the 1,000,000-message history (with its search index
//!   and one SMS part per outbound message), and `backup`: `GET /api/backup` of it.
//! - `environment`: which file system the databases are on (on tmpfs fsync is free, so the
//!   accept figures there are not what an SD card gives).
//!
//! `cargo bench --bench api` runs all; `PASARELA_BENCH_QUICK=1` shrinks the counts for a smoke run.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{Daemon, TOKEN};
use serde_json::json;

fn quick() -> bool {
    std::env::var_os("PASARELA_BENCH_QUICK").is_some()
}

fn figure(v: serde_json::Value) {
    println!("{v}");
}

/// The file system type of `dir` (`ext4`, `tmpfs`, `btrfs`…), as `stat -f` names it.
fn filesystem(dir: &std::path::Path) -> String {
    std::process::Command::new("stat")
        .args(["-f", "-c", "%T"])
        .arg(dir)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

async fn accept_single(d: &Daemon) {
    let clients = 16;
    let total: usize = if quick() { 2_000 } else { 30_000 };
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()
        .unwrap();
    let url = format!("{}/api/messages", d.base);
    // Warm up connections.
    for _ in 0..clients {
        let r = client
            .post(&url)
            .bearer_auth(TOKEN)
            .json(&json!({"to": "+5491123456789", "text": "warm"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
    }
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let client = client.clone();
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..total / clients {
                let body = json!({"to": format!("+54911{:08}", 20_000_000 + c * 100_000 + i), "text": "Su pago fue registrado. Gracias."});
                let r = client.post(&url).bearer_auth(TOKEN).json(&body).send().await.unwrap();
                assert_eq!(r.status(), 202);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    figure(
        json!({"bench": "accept_single", "clients": clients, "messages": total, "seconds": secs, "per_sec": total as f64 / secs, "target_per_sec": 3000, "target_met": total as f64 / secs >= 3000.0}),
    );
}

async fn accept_batch(d: &Daemon) {
    let requests = if quick() { 2 } else { 10 };
    let client = reqwest::Client::new();
    let url = format!("{}/api/messages/batch", d.base);
    let bodies: Vec<Vec<u8>> = (0..requests)
        .map(|r| {
            let messages: Vec<_> = (0..10_000)
                .map(|i| json!({"to": format!("+54911{:08}", 30_000_000 + r * 10_000 + i), "text": "Aviso: corte programado el martes de 2 a 4 h.", "priority": "bulk"}))
                .collect();
            serde_json::to_vec(&json!({ "messages": messages })).unwrap()
        })
        .collect();
    let start = Instant::now();
    for body in bodies {
        let r = client
            .post(&url)
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
    }
    let secs = start.elapsed().as_secs_f64();
    figure(
        json!({"bench": "accept_batch", "messages": requests * 10_000, "requests": requests, "seconds": secs, "per_sec": (requests * 10_000) as f64 / secs, "target_seconds_for_100k": 2.0, "target_met": secs * 10.0 / requests as f64 <= 2.0}),
    );
}

fn prefill(db: &std::path::Path, rows: i64) {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.execute_batch("PRAGMA synchronous = OFF; BEGIN")
        .unwrap();
    {
        let mut stmt = conn
            .prepare(
                "INSERT INTO messages (direction, channel, transport, peer, body, state, priority, attempts, \
                 created_at, updated_at, sent_at) VALUES (?1, 'sms', 'modem1', ?2, ?3, ?4, 1, 1, ?5, ?5, ?5)",
            )
            .unwrap();
        let mut parts = conn
            .prepare(
                "INSERT INTO sms_parts_out (message_id, seq, total, transport, mr, status, sent_at) \
                 VALUES (?1, 1, 1, 'modem1', ?2, ?3, ?4)",
            )
            .unwrap();
        let base = 1_700_000_000_000i64;
        for i in 0..rows {
            let dir = if i % 3 == 0 { "in" } else { "out" };
            let state = match (dir, i % 50) {
                ("in", _) => "received",
                (_, 0) => "failed",
                (_, 1) => "queued",
                (_, n) if n < 30 => "delivered",
                _ => "sent",
            };
            let peer = format!("+54911{:08}", 20_000_000 + i % 20_000);
            let body = if i % 3 == 0 {
                "saldo".to_string()
            } else {
                format!("Estimado cliente {i}, su saldo pendiente es $ 1.234,50")
            };
            stmt.execute(rusqlite::params![dir, peer, body, state, base + i * 1000])
                .unwrap();
            if dir == "out" && state != "queued" {
                parts
                    .execute(rusqlite::params![
                        conn.last_insert_rowid(),
                        i % 256,
                        if state == "delivered" {
                            "delivered"
                        } else {
                            "sent"
                        },
                        base + i * 1000
                    ])
                    .unwrap();
            }
        }
    }
    // Steady state: the background indexer has caught up.
    conn.execute_batch(
        "INSERT INTO messages_fts (rowid, body) SELECT id, body FROM messages; \
         UPDATE meta SET value = (SELECT MAX(id) FROM messages) WHERE key = 'fts_upto'; \
         COMMIT; PRAGMA wal_checkpoint(TRUNCATE)",
    )
    .unwrap();
}

async fn list_latency(d: &Daemon, rows: i64) {
    let client = reqwest::Client::new();
    let base = format!("{}/api/messages", d.base);
    let shapes: Vec<(&str, String)> = vec![
        ("list_newest", base.clone()),
        ("list_state_failed", format!("{base}?state=failed")),
        ("list_direction_in", format!("{base}?direction=in")),
        ("list_peer", format!("{base}?peer=%2B5491120012345")),
        ("list_deep_cursor", format!("{base}?cursor={}", rows / 2)),
        (
            "list_time_range",
            format!("{base}?since=2023-11-15T00:00:00Z&until=2023-11-16T00:00:00Z"),
        ),
        ("list_text_search_common", format!("{base}?q=saldo")),
        (
            "list_text_search_rare",
            format!("{base}?q=cliente%20{}", rows / 7),
        ),
    ];
    let n = if quick() { 20 } else { 200 };
    for (name, url) in shapes {
        let mut samples = Vec::with_capacity(n);
        for _ in 0..n {
            let t = Instant::now();
            let r = client.get(&url).bearer_auth(TOKEN).send().await.unwrap();
            assert_eq!(r.status(), 200, "{url}");
            let _ = r.bytes().await.unwrap();
            samples.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
        figure(
            json!({"bench": name, "rows": rows, "requests": n, "p50_ms": percentile(&samples, 0.5), "p99_ms": percentile(&samples, 0.99), "target_p99_ms": 20, "target_met": percentile(&samples, 0.99) <= 20.0}),
        );
    }
}

/// Size of the database after the prefilled history (WAL folded in), and a backup of it over
/// the API.
async fn db_size(d: &Daemon, rows: i64) {
    let bytes = std::fs::metadata(d.db()).map(|m| m.len()).unwrap_or(0);
    let wal = std::fs::metadata(d.db().with_extension("db-wal"))
        .map(|m| m.len())
        .unwrap_or(0);
    figure(json!({
        "bench": "db_size", "messages": rows, "bytes": bytes, "wal_bytes": wal,
        "mb": bytes as f64 / 1e6, "bytes_per_message": bytes as f64 / rows as f64,
        "contents": "2/3 outbound (one SMS part each unless queued), 1/3 inbound, 40-60 character bodies, search index"
    }));
    let t = Instant::now();
    let r = reqwest::Client::new()
        .get(format!("{}/api/backup", d.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = r.bytes().await.unwrap();
    figure(json!({
        "bench": "backup", "messages": rows, "bytes": body.len(),
        "seconds": t.elapsed().as_secs_f64(), "via": "GET /api/backup (VACUUM INTO, streamed)"
    }));
}

async fn idle(d: &Daemon) {
    let pid = d.child.id();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let window = if quick() { 5 } else { 60 };
    let (_, t0) = common::proc_stat(pid);
    tokio::time::sleep(Duration::from_secs(window)).await;
    let (rss_kb, t1) = common::proc_stat(pid);
    let hz = 100.0; // USER_HZ on Linux
    let cpu = (t1 - t0) as f64 / hz / window as f64 * 100.0;
    // The phone-number metadata loads with the first number parsed: measure after one message too.
    let r = reqwest::Client::new()
        .post(format!("{}/api/messages", d.base))
        .bearer_auth(TOKEN)
        .json(&json!({"to": "+5491123456789", "text": "hola"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (rss_after_kb, _) = common::proc_stat(pid);
    figure(json!({
        "bench": "idle", "rss_mb": rss_kb as f64 / 1024.0,
        "rss_mb_after_first_message": rss_after_kb as f64 / 1024.0,
        "cpu_percent_of_one_core": cpu, "window_secs": window, "target_rss_mb": 10,
        "target_met": rss_kb as f64 / 1024.0 <= 10.0
    }));
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
        let probe = tempfile::tempdir().unwrap();
        let fs = filesystem(probe.path());
        figure(json!({
            "bench": "environment", "db_filesystem": fs, "db_dir": probe.path().parent().map(|p| p.display().to_string()),
            "note": if fs == "tmpfs" { "tmpfs: fsync is free, accept figures are higher than on a disk or SD card" } else { "fsync reaches the device" }
        }));
        if run("idle") {
            let dir = tempfile::tempdir().unwrap();
            let d = Daemon::start(dir.path());
            idle(&d).await;
        }
        if run("accept") {
            let dir = tempfile::tempdir().unwrap();
            let d = Daemon::start(dir.path());
            accept_single(&d).await;
            accept_batch(&d).await;
        }
        if run("list") {
            let dir = tempfile::tempdir().unwrap();
            let rows = if quick() { 50_000 } else { 1_000_000 };
            // Let the daemon create the schema, stop it, fill, start again.
            let mut d = Daemon::start(dir.path());
            d.signal("TERM");
            d.wait_exit(Duration::from_secs(30));
            let t = Instant::now();
            prefill(&d.db(), rows);
            eprintln!(
                "prefilled {rows} rows in {:.1} s",
                t.elapsed().as_secs_f64()
            );
            drop(d);
            let d = Daemon::start(dir.path());
            list_latency(&d, rows).await;
            db_size(&d, rows).await;
        }
    });
}
