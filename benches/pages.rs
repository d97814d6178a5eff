//! The operators' pages against the real binary over loopback HTTP, logged in with a session
//! cookie. Prints one JSON line per figure.
//!
//! - `page_messages_*`: `GET /messages` (the history page, rendered) latency percentiles on a
//!   1,000,000-row history, filtered and searched.
//! - `page_conversations`: `GET /conversations` on the same history (one thread per number).
//! - `page_dashboard_first_load`: bytes of the dashboard's first load, everything included.
//!
//! `cargo bench --bench pages`; `PASARELA_BENCH_QUICK=1` uses 50,000 rows and fewer requests.

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Daemon;
use serde_json::json;

const PASSWORD: &str = "clave-del-benchmark";

fn quick() -> bool {
    std::env::var_os("PASARELA_BENCH_QUICK").is_some()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// A history of `rows` messages over 20,000 numbers, a third inbound, indexed for search.
fn prefill(db: &std::path::Path, rows: i64) {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.execute_batch("PRAGMA synchronous = OFF; BEGIN")
        .unwrap();
    {
        let mut stmt = conn
            .prepare(
                "INSERT INTO messages (direction, channel, transport, peer, body, state, priority, attempts, \
                 created_at, updated_at, sent_at, author) VALUES (?1, 'sms', 'modem1', ?2, ?3, ?4, ?5, 1, ?6, ?6, ?6, ?7)",
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
            let (priority, author) = match i % 3 {
                1 => (0, None),
                _ if i % 7 == 0 => (1, Some("ana")),
                _ => (1, None),
            };
            stmt.execute(rusqlite::params![
                dir,
                peer,
                body,
                state,
                priority,
                base + i * 1000,
                author
            ])
            .unwrap();
        }
    }
    conn.execute_batch(
        "INSERT INTO messages_fts (rowid, body) SELECT id, body FROM messages; \
         UPDATE meta SET value = (SELECT MAX(id) FROM messages) WHERE key = 'fts_upto'; \
         COMMIT; PRAGMA wal_checkpoint(TRUNCATE)",
    )
    .unwrap();
}

fn add_user(d: &Daemon) {
    let mut child = Command::new(common::bin())
        .args(["user", "add", "bench", "--role", "admin", "--config"])
        .arg(&d.config)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{PASSWORD}\n").as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
}

fn cookie(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.split(';').next()?.strip_prefix(&format!("{name}=")))
        .unwrap()
        .to_string()
}

async fn login(client: &reqwest::Client, base: &str) -> String {
    let page = client.get(format!("{base}/login")).send().await.unwrap();
    let login = cookie(&page, "pasarela_login");
    let r = client
        .post(format!("{base}/login"))
        .header("cookie", format!("pasarela_login={login}"))
        .form(&[
            ("username", "bench"),
            ("password", PASSWORD),
            ("csrf", login.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    cookie(&r, "pasarela_session")
}

async fn latency(client: &reqwest::Client, session: &str, rows: i64, name: &str, url: &str) {
    let n = if quick() { 20 } else { 200 };
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let r = client
            .get(url)
            .header("cookie", format!("pasarela_session={session}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{url}");
        let _ = r.bytes().await.unwrap();
        samples.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "{}",
        json!({"bench": name, "rows": rows, "requests": n, "p50_ms": percentile(&samples, 0.5),
               "p99_ms": percentile(&samples, 0.99), "target_p99_ms": 50})
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let rows = if quick() { 50_000 } else { 1_000_000 };
        let mut d = Daemon::start(dir.path());
        d.signal("TERM");
        d.wait_exit(Duration::from_secs(30));
        let t = Instant::now();
        prefill(&d.db(), rows);
        eprintln!("prefilled {rows} rows in {:.1} s", t.elapsed().as_secs_f64());
        add_user(&d);
        drop(d);
        let d = Daemon::start(dir.path());
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let session = login(&client, &d.base).await;
        let page = format!("{}/messages", d.base);
        // An outbound row (every third row is inbound "saldo").
        let rare = rows / 7 / 3 * 3 + 1;
        let shapes = [
            ("page_messages_newest", page.clone()),
            ("page_messages_failed", format!("{page}?state=failed")),
            ("page_messages_manual", format!("{page}?origin=manual")),
            (
                "page_messages_day_inbound",
                format!("{page}?since=2023-11-15&until=2023-11-15&direction=in"),
            ),
            ("page_messages_search_common", format!("{page}?q=SALDO")),
            (
                "page_messages_search_rare_accents",
                format!("{page}?q=Cliente%20{rare}%2C%20s%C3%BA"),
            ),
            ("page_conversations", format!("{}/conversations", d.base)),
        ];
        for (name, url) in &shapes {
            latency(&client, &session, rows, name, url).await;
        }

        // The dashboard's first load: the page and every asset it names.
        let mut total = 0usize;
        for path in ["/", "/assets/app.css", "/assets/app.js"] {
            let r = client
                .get(format!("{}{path}", d.base))
                .header("cookie", format!("pasarela_session={session}"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{path}");
            total += r.bytes().await.unwrap().len();
        }
        println!(
            "{}",
            json!({"bench": "page_dashboard_first_load", "bytes": total, "requests": 3, "target_bytes": 150 * 1024})
        );
    });
}
