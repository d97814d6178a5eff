//! WhatsApp bulk benchmark: 10,000 template messages queued in one `POST /api/messages/batch`
//! go out at the channel's configured `rate_limit` (the default, 80/second) while SMS sent
//! through a GSM modem (`pasarela modem-sim` on a real pseudo-terminal) during the run still go
//! out at once. In-process daemon, real SQLite file, a local Graph API over loopback that notes
//! when each request arrives.
//!
//! Prints one JSON line, `whatsapp_batch_rate`: the achieved rate, the most requests seen in
//! any one-second window, and each SMS's latency (API call → the modem transmitted it) as
//! p50/max. `target_met`: no one-second window over the limit, the whole batch at 90 % of the
//! limit or better, and every SMS out within 2 s. `PASARELA_BENCH_QUICK=1` sends 800.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::routing::post;
use pasarela::daemon::{self, Parts};
use pasarela::modem::sim::{self, SimOptions};
use serde_json::{Value, json};

const TOKEN: &str = "bench-token-0123456789";
/// `[whatsapp] rate_limit` default: Meta's default throughput per number.
const RATE: usize = 80;

async fn call(base: &str, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .request(method, format!("{base}{path}"))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = if std::env::var_os("PASARELA_BENCH_QUICK").is_some() {
        800
    } else {
        10_000
    };
    let arrivals: Arc<Mutex<Vec<Instant>>> = Arc::new(Mutex::new(Vec::with_capacity(n)));
    let seen = arrivals.clone();
    let graph = axum::Router::new().route(
        "/{v}/{id}/messages",
        post(move |Json(body): Json<Value>| {
            let seen = seen.clone();
            async move {
                let mut s = seen.lock().unwrap();
                s.push(Instant::now());
                let k = s.len();
                Json(json!({"messaging_product": "whatsapp",
                    "contacts": [{"input": body["to"], "wa_id": body["to"]}],
                    "messages": [{"id": format!("wamid.BATCH{k}")}]}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let graph_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, graph).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let sim = sim::start(SimOptions::new(dir.path().join("modem")))
        .await
        .unwrap();
    let text = format!(
        "[daemon]\nstate_dir = \"{}\"\nshutdown_grace_secs = 5\n\
         [admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"{TOKEN}\"\n\
         [[modem]]\nname = \"modem1\"\ndevice = \"{}\"\nstatus_reports = false\n\
         [whatsapp]\nphone_number_id = \"1234567890\"\naccess_token = \"EAAG-bench-token-0123456789\"\n\
         app_secret = \"s\"\nverify_token = \"v\"\nbase_url = \"{graph_url}\"\nrate_limit = \"{RATE}/second\"\n",
        dir.path().join("state").display(),
        sim.link().display(),
    );
    let loaded = pasarela::setup::from_toml(&text).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(daemon::run(
        loaded,
        Parts {
            transports: vec![],
            listener: Some(listener),
        },
        async move {
            let _ = rx.await;
        },
    ));
    // The modem is up when an SMS goes through it.
    let started = Instant::now();
    let (code, body) = call(
        &base,
        reqwest::Method::POST,
        "/api/messages",
        json!({"to": "+5491155550000", "text": "listo", "window": "always"}),
    )
    .await;
    assert_eq!(code, 202, "{body}");
    while sim.sent().is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the modem never sent"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let messages: Vec<Value> = (0..n)
        .map(|i| {
            json!({"to": format!("+54911{:08}", 30_000_000 + i), "channel": "whatsapp",
                "window": "always",
                "template": {"name": "aviso_corte", "language": "es_AR",
                             "body": [format!("Cliente {i}"), "martes 10/12 de 02:00 a 04:00"]}})
        })
        .collect();
    let queued_at = Instant::now();
    let (code, body) = call(
        &base,
        reqwest::Method::POST,
        "/api/messages/batch",
        json!({ "messages": messages }),
    )
    .await;
    assert!((200..300).contains(&code), "{code} {body}");
    let queue_ms = queued_at.elapsed().as_secs_f64() * 1000.0;

    // While the batch drains, an SMS every 500 ms; each timed until the modem transmitted it.
    let mut sms_ms = Vec::new();
    let mut k = 1;
    while arrivals.lock().unwrap().len() < n {
        assert!(
            queued_at.elapsed() < Duration::from_secs((n / RATE) as u64 * 3 + 60),
            "the batch stalled at {} of {n}",
            arrivals.lock().unwrap().len()
        );
        let before = sim.sent().len();
        let t0 = Instant::now();
        let (code, body) = call(
            &base,
            reqwest::Method::POST,
            "/api/messages",
            json!({"to": format!("+54911555{:05}", k), "text": format!("SMS {k} durante el lote"),
                   "window": "always"}),
        )
        .await;
        assert_eq!(code, 202, "{body}");
        while sim.sent().len() == before {
            assert!(t0.elapsed() < Duration::from_secs(60), "an SMS never went");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        sms_ms.push(t0.elapsed().as_secs_f64() * 1000.0);
        k += 1;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let times = arrivals.lock().unwrap().clone();
    let first = times[0];
    let last = times[times.len() - 1];
    let rate = (times.len() - 1) as f64 / last.duration_since(first).as_secs_f64();
    // Most requests in any window [t, t + 1 s).
    let mut most = 0;
    let mut lo = 0;
    for hi in 0..times.len() {
        while times[hi].duration_since(times[lo]) >= Duration::from_secs(1) {
            lo += 1;
        }
        most = most.max(hi - lo + 1);
    }
    sms_ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let p50 = sms_ms[sms_ms.len() / 2];
    let max = sms_ms[sms_ms.len() - 1];
    let round = |x: f64| (x * 10.0).round() / 10.0;
    let target_met = most <= RATE && rate >= RATE as f64 * 0.9 && max <= 2000.0;
    println!(
        "{}",
        json!({"bench": "whatsapp_batch_rate", "n": n, "rate_limit_per_s": RATE,
            "queue_request_ms": round(queue_ms),
            "achieved_per_s": round(rate), "max_in_any_1s": most,
            "drain_s": round(last.duration_since(queued_at).as_secs_f64()),
            "sms_during_batch": sms_ms.len(), "sms_p50_ms": round(p50), "sms_max_ms": round(max),
            "target_met": target_met})
    );
    let _ = stop.send(());
    let _ = task.await;
}
