//! The `[[http_sms]]` route end to end: the real binary against a local server with the plain
//! `GET /v1/sms/send/?phone=…&message=…` API of simple Android SMS apps, and a POST/JSON one.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use common::{Daemon, TOKEN, api, queue, wait_for};
use reqwest::Method;
use serde_json::{Value, json};

type Seen = Arc<Mutex<Vec<HashMap<String, String>>>>;

/// Answers "OK" like the GET-style apps; numbers ending in 0000 are refused with 400 and
/// a text "fail" gets a 500 the first two times.
async fn get_app(
    State(seen): State<Seen>,
    Query(q): Query<HashMap<String, String>>,
) -> (StatusCode, String) {
    let mut seen = seen.lock().unwrap();
    seen.push(q.clone());
    let phone = q.get("phone").cloned().unwrap_or_default();
    if phone.ends_with("0000") {
        return (StatusCode::BAD_REQUEST, "invalid number".into());
    }
    let fails = seen
        .iter()
        .filter(|s| s.get("message").is_some_and(|m| m == "fail"))
        .count();
    if q.get("message").is_some_and(|m| m == "fail") && fails <= 2 {
        return (StatusCode::INTERNAL_SERVER_ERROR, "busy".into());
    }
    (StatusCode::OK, "OK".into())
}

async fn json_app(
    State(seen): State<Seen>,
    axum::Json(body): axum::Json<HashMap<String, String>>,
) -> axum::Json<Value> {
    seen.lock().unwrap().push(body);
    axum::Json(json!({"status": "queued"}))
}

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

async fn state(d: &Daemon, id: i64) -> Value {
    api(Method::GET, format!("{}/api/messages/{id}", d.base), None)
        .await
        .1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_style_app_sends_refuses_and_retries() {
    let seen: Seen = Arc::default();
    let base = serve(
        Router::new()
            .route("/v1/sms/send/", get(get_app))
            .with_state(seen.clone()),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let conf = format!(
        "token = \"{TOKEN}\"\n[dispatch]\nretry_base_secs = 1\nretry_max_secs = 1\n\
         [company]\nassume_mobile = false\n\
         [[http_sms]]\nname = \"celu\"\nurl = \"{base}/v1/sms/send/\"\nsuccess_contains = \"OK\"\n\
         [http_sms.params]\nphone = \"{{phone}}\"\nmessage = \"{{message}}\"\n"
    );
    let d = tokio::task::block_in_place(|| Daemon::start_full(dir.path(), "", &conf, &[]));
    let text = "¿Saldo? 50% & más: $ 1.234,50 #1";
    let ok = queue(&d, "011 15-2345-6789", text).await;
    let refused = queue(&d, "+54 11 4321-0000", "x").await;
    let retried = queue(&d, "+5491123456789", "fail").await;
    wait_for("all three settled", 30, async || {
        state(&d, ok).await["state"] == "sent"
            && state(&d, refused).await["state"] == "failed"
            && state(&d, retried).await["state"] == "sent"
    })
    .await;
    let seen = seen.lock().unwrap().clone();
    let first = seen.iter().find(|q| q["message"] == text).unwrap();
    assert_eq!(first["phone"], "+5491123456789");
    let r = state(&d, refused).await;
    assert!(
        r["last_error"]
            .as_str()
            .unwrap()
            .contains("refused the message (400"),
        "{r}"
    );
    assert_eq!(r["attempts"], 1);
    assert_eq!(seen.iter().filter(|q| q["message"] == "fail").count(), 3);
    assert!(state(&d, retried).await["attempts"].as_u64().unwrap() >= 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_json_provider() {
    let seen: Seen = Arc::default();
    let base = serve(
        Router::new()
            .route("/api/send", post(json_app))
            .with_state(seen.clone()),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let conf = format!(
        "token = \"{TOKEN}\"\n\
         [[http_sms]]\nname = \"proveedor\"\nurl = \"{base}/api/send\"\nmethod = \"POST\"\n\
         post_as = \"json\"\nphone_format = \"digits\"\n\
         [http_sms.params]\nto = \"{{phone}}\"\ntext = \"Aviso: {{message}}\"\nref = \"pasarela-{{id}}\"\n"
    );
    let d = tokio::task::block_in_place(|| Daemon::start_full(dir.path(), "", &conf, &[]));
    let id = queue(&d, "+54 9 11 2345-6789", "Corte \"programado\"").await;
    wait_for("sent", 20, async || state(&d, id).await["state"] == "sent").await;
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0]["to"], "5491123456789");
    assert_eq!(seen[0]["text"], "Aviso: Corte \"programado\"");
    assert_eq!(seen[0]["ref"], format!("pasarela-{id}"));
}

/// A provider that takes each request and answers `answer` (raw HTTP), then closes; counts
/// the requests it read.
async fn raw_provider(answer: &'static str) -> (String, Arc<Mutex<usize>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(Mutex::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut req = Vec::new();
                let mut buf = [0u8; 4096];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                *seen.lock().unwrap() += 1;
                let _ = sock.write_all(answer.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    (format!("http://{addr}"), count)
}

fn get_route(name: &str, url: &str, extra: &str) -> String {
    format!(
        "token = \"{TOKEN}\"\n[dispatch]\nretry_base_secs = 1\nretry_max_secs = 1\nmax_attempts = 2\n\
         [[http_sms]]\nname = \"{name}\"\nurl = \"{url}/send\"\n{extra}\n\
         [http_sms.params]\nphone = \"{{phone}}\"\nmessage = \"{{message}}\"\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unconfirmed_2xx_is_sent_once_and_noted() {
    // 200 without the expected text, and 200 whose body is cut off before its length.
    let (plain, plain_count) =
        raw_provider("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nERROR")
            .await;
    let (cut, cut_count) =
        raw_provider("HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\nOK").await;
    for (base, count, extra, why) in [
        (
            plain,
            plain_count,
            "success_contains = \"OK\"",
            "without `OK`",
        ),
        (cut, cut_count, "", "cut off"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let conf = get_route("prov", &base, extra);
        let d = tokio::task::block_in_place(|| Daemon::start_full(dir.path(), "", &conf, &[]));
        let id = queue(&d, "+5491123456789", "aviso").await;
        wait_for("settled", 20, async || {
            let s = state(&d, id).await["state"].clone();
            s != "queued" && s != "sending"
        })
        .await;
        let m = state(&d, id).await;
        assert_eq!(m["state"], "sent", "{m}");
        assert_eq!(m["attempts"], 1, "{m}");
        assert!(m["last_error"].as_str().unwrap().contains(why), "{m}");
        assert_eq!(*count.lock().unwrap(), 1, "resent: {m}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_is_resent() {
    // A port nobody listens on: the request never reached anyone.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let dir = tempfile::tempdir().unwrap();
    let conf = get_route("prov", &base, "");
    let d = tokio::task::block_in_place(|| Daemon::start_full(dir.path(), "", &conf, &[]));
    let id = queue(&d, "+5491123456789", "aviso").await;
    wait_for("given up after its attempts", 60, async || {
        state(&d, id).await["state"] == "failed"
    })
    .await;
    let m = state(&d, id).await;
    // The route counts as down for 30 s after a refused connection; then the second attempt.
    assert_eq!(m["attempts"], 2, "{m}");
    assert!(
        m["last_error"].as_str().unwrap().contains("cannot connect"),
        "{m}"
    );
}
