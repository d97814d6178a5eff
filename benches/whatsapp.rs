//! WhatsApp benchmark against the real binary and a local Graph API over loopback: a customer's
//! signed "saldo" webhook to the balance reply's request reaching the Graph API, one at a time,
//! each from a different customer. Prints one JSON line (`whatsapp_saldo_reply`, p50/p90/p99 ms).
//! `PASARELA_BENCH_QUICK=1` shrinks the count.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use axum::Json;
use axum::routing::post;
use common::{Daemon, TOKEN, api, free_port};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

const SECRET: &str = "bench-app-secret";

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn sign(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = if std::env::var_os("PASARELA_BENCH_QUICK").is_some() {
        50
    } else {
        300
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, Instant)>();
    let graph = axum::Router::new().route(
        "/{v}/{id}/messages",
        post(move |Json(body): Json<Value>| {
            let tx = tx.clone();
            async move {
                let _ = tx.send((
                    body["to"].as_str().unwrap_or("").to_string(),
                    Instant::now(),
                ));
                Json(json!({"messaging_product": "whatsapp",
                    "contacts": [{"input": body["to"], "wa_id": body["to"]}],
                    "messages": [{"id": "wamid.BENCH"}]}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let graph_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, graph).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let hook = free_port();
    let conf = format!(
        "token = \"{TOKEN}\"\n[webhooks]\nlisten = \"127.0.0.1:{hook}\"\n\
         [whatsapp]\nphone_number_id = \"1234567890\"\naccess_token = \"EAAG-bench-token-0123456789\"\n\
         app_secret = \"{SECRET}\"\nverify_token = \"v\"\nbase_url = \"{graph_url}\"\n"
    );
    let d = tokio::task::spawn_blocking(move || {
        let d = Daemon::start_full(dir.path(), "", &conf, &[]);
        (d, dir)
    })
    .await
    .unwrap();
    let (d, _dir) = d;
    let customers: Vec<Value> = (0..n)
        .map(|i| {
            json!({"code": format!("B{i}"), "name": format!("Cliente {i}"),
            "phone": format!("+54911{:08}", 20_000_000 + i), "balance": "1234.50"})
        })
        .collect();
    let (code, body) = api(
        reqwest::Method::POST,
        format!("{}/api/customers", d.base),
        Some(Value::Array(customers)),
    )
    .await;
    assert!((200..300).contains(&code), "{body}");
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{hook}/webhooks/whatsapp");
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let from = format!("54911{:08}", 20_000_000 + i);
        let body = serde_json::to_vec(&json!({"object": "whatsapp_business_account", "entry": [{
            "id": "1", "changes": [{"field": "messages", "value": {"messaging_product": "whatsapp",
            "contacts": [{"wa_id": from}],
            "messages": [{"from": from, "id": format!("wamid.IN{i}"), "timestamp": "1764633600",
                          "type": "text", "text": {"body": "saldo"}}]}}]}]}))
        .unwrap();
        let t0 = Instant::now();
        let r = client
            .post(&url)
            .header("content-type", "application/json")
            .header("X-Hub-Signature-256", sign(&body))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let (to, at) = tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .expect("no reply within 30 s")
            .unwrap();
        assert_eq!(to, from);
        samples.push(at.duration_since(t0).as_secs_f64() * 1000.0);
    }
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "{}",
        json!({"bench": "whatsapp_saldo_reply", "n": n,
            "p50_ms": (percentile(&samples, 0.5) * 100.0).round() / 100.0,
            "p90_ms": (percentile(&samples, 0.9) * 100.0).round() / 100.0,
            "p99_ms": (percentile(&samples, 0.99) * 100.0).round() / 100.0})
    );
    drop(d);
}
