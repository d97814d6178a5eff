//! A stand-in for an Android phone running "SMS Gateway for Android" with its Local Server on,
//! written from the app's published OpenAPI document (`smsgateway.Message`,
//! `smsgateway.GetMessageResponse`, `smsgateway.Webhook`, `smsgateway.HealthResponse`,
//! `WebHookEvent`, `smsgateway.IncomingMessage` of `GET /inbox`) and its documented webhook signing: `X-Timestamp` (Unix seconds) and
//! `X-Signature` = hex HMAC-SHA256(signing key, raw body ‖ X-Timestamp).
//!
//! It checks every request against the document and records what does not conform in
//! `violations`, so a test can assert that pasarela only ever sent conforming requests.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

pub const USER: &str = "sms";
pub const PASSWORD: &str = "phone-pass-123";
pub const SIGNING_KEY: &str = "signing-key-abcdef";

/// How the phone answers `POST /messages`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Normal,
    /// `200 text/html`, as a captive portal or a wrong port would.
    Html,
    /// `500` with the app's error JSON.
    Error500,
    /// `302` to somewhere else.
    Redirect,
}

#[derive(Debug, Clone)]
pub struct Sms {
    pub id: String,
    pub phone: String,
    pub text: String,
    pub sim: Option<u64>,
    pub state: &'static str,
    pub delivery_report: bool,
}

#[derive(Default)]
pub struct Inner {
    /// Every accepted message by id; an id is sent to the network once.
    pub messages: HashMap<String, Sms>,
    /// Order in which messages actually went out (ids).
    pub sent: Vec<String>,
    /// Every `POST /messages` seen: (arrival, id), duplicates included.
    pub posts: Vec<(Instant, String)>,
    /// `POST /messages` answers given, by status code.
    pub answers: Vec<u16>,
    pub webhooks: HashMap<String, Value>,
    /// Webhook deliveries: (event, status pasarela answered).
    pub deliveries: Vec<(String, u16)>,
    pub violations: Vec<String>,
    pub mode: Option<Mode>,
    /// While set, every request hangs (the app killed in the background).
    pub hang: bool,
    /// While set, `POST /messages` accepts (and sends) the message, then holds the answer
    /// until `release` is notified.
    pub hold_answers: bool,
    pub delivery_parts: usize,
    /// `GET /health` answers an HTML page.
    pub health_html: bool,
    /// The app's record of received messages, served by `GET /inbox` (newest first, as the
    /// app's `ORDER BY createdAt DESC, id DESC`).
    pub inbox: Vec<Received>,
    /// An app version without `GET /inbox` (it answers 404, like any unknown route).
    pub no_inbox: bool,
    /// `GET /inbox` answers an HTML page (a captive portal, a wrong port).
    pub inbox_html: bool,
    /// `GET /inbox` requests answered.
    pub inbox_reads: usize,
    /// How far the phone's clock is from the real one (ms); `to` defaults to the phone's now.
    pub clock_offset_ms: i64,
    /// Webhook URLs refused by the app's https rule.
    pub refused_webhooks: Vec<String>,
}

/// One received message in the app's inbox (`IncomingMessage`).
#[derive(Debug, Clone)]
pub struct Received {
    pub id: String,
    /// `SMS`, `DATA_SMS`, `MMS`, `MMS_DOWNLOADED`.
    pub kind: &'static str,
    pub sender: String,
    pub text: String,
    /// Unix ms by the phone's clock.
    pub created_ms: i64,
}

#[derive(Clone)]
pub struct FakePhone {
    pub inner: Arc<Mutex<Inner>>,
    pub release: Arc<tokio::sync::Notify>,
    pub addr: std::net::SocketAddr,
    client: reqwest::Client,
    /// Set when the Local Server speaks https (the app's Cloud/Private server mode).
    tls: bool,
    _stop: Option<Arc<pasarela::shutdown::ShutdownTrigger>>,
}

impl FakePhone {
    pub async fn start() -> FakePhone {
        FakePhone::start_with(None, None).await
    }

    /// A phone whose API is served over https with `cert`/`key` (PEM files), and whose
    /// webhook client trusts `ca_pem` besides the Mozilla roots (a CA installed on the phone).
    pub async fn start_tls(
        cert: &std::path::Path,
        key: &std::path::Path,
        ca_pem: Option<&str>,
    ) -> FakePhone {
        let store = pasarela::net::tls::CertStore::load(cert, key).unwrap();
        FakePhone::start_with(Some(store), ca_pem).await
    }

    async fn start_with(
        tls: Option<Arc<pasarela::net::tls::CertStore>>,
        ca_pem: Option<&str>,
    ) -> FakePhone {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = reqwest::Client::builder().timeout(Duration::from_secs(10));
        if let Some(pem) = ca_pem {
            client = client
                .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap());
        }
        let (trigger, stop) = pasarela::shutdown::channel();
        let phone = FakePhone {
            inner: Arc::new(Mutex::new(Inner {
                delivery_parts: 2,
                ..Default::default()
            })),
            release: Arc::new(tokio::sync::Notify::new()),
            addr: listener.local_addr().unwrap(),
            client: client.build().unwrap(),
            tls: tls.is_some(),
            _stop: Some(Arc::new(trigger)),
        };
        let app = Router::new()
            .route("/health", get(health))
            // The document's `/messages`, and `/message`, which the app's Local Server serves
            // as the same routes.
            .route("/messages", post(enqueue))
            .route("/messages/{id}", get(message_state))
            .route("/message", post(enqueue))
            .route("/message/{id}", get(message_state))
            .route("/webhooks", get(list_webhooks).post(register_webhook))
            .route("/webhooks/{id}", delete(delete_webhook))
            .route("/inbox", get(inbox))
            .with_state(phone.clone());
        tokio::spawn(async move {
            pasarela::net::serve::serve(listener, app, tls, Default::default(), stop)
                .await
                .unwrap();
        });
        phone
    }

    /// The phone's clock now (Unix ms).
    pub fn now_ms(&self) -> i64 {
        let real = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        real + self.with(|i| i.clock_offset_ms)
    }

    /// An SMS arrives at the phone: the app records it in its inbox, stamped by the phone's
    /// clock. Webhooks are not fired (tests of poll mode have none).
    pub fn receive_sms(&self, id: &str, sender: &str, text: &str) {
        let created_ms = self.now_ms();
        self.with(|i| {
            i.inbox.push(Received {
                id: id.to_string(),
                kind: "SMS",
                sender: sender.to_string(),
                text: text.to_string(),
                created_ms,
            })
        });
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    pub fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.inner.lock().unwrap())
    }

    pub fn sent_texts(&self) -> Vec<String> {
        self.with(|i| {
            i.sent
                .iter()
                .map(|id| i.messages[id].text.clone())
                .collect()
        })
    }

    /// Sends a webhook exactly as the app does: signed, retried on a non-2xx answer.
    pub async fn fire(&self, event: &str, payload: Value) -> u16 {
        let Some((hook_id, url)) = self.with(|i| {
            i.webhooks.values().find(|w| w["event"] == event).map(|w| {
                (
                    w["id"].as_str().unwrap().to_string(),
                    w["url"].as_str().unwrap().to_string(),
                )
            })
        }) else {
            return 0;
        };
        let body = json!({
            "deviceId": "fakeDevice0000000001",
            "event": event,
            "id": format!("evt-{}", rand_id()),
            "webhookId": hook_id,
            "payload": payload,
        })
        .to_string();
        let mut status = 0;
        for attempt in 0..5 {
            let (ts, sig) = sign(SIGNING_KEY, body.as_bytes());
            status = match self
                .client
                .post(&url)
                .header("Content-Type", "application/json")
                .header("X-Timestamp", ts)
                .header("X-Signature", sig)
                .body(body.clone())
                .send()
                .await
            {
                Ok(r) => r.status().as_u16(),
                Err(_) => 0,
            };
            self.with(|i| i.deliveries.push((event.to_string(), status)));
            if (200..300).contains(&status) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200 * (attempt + 1))).await;
        }
        status
    }
}

pub fn rand_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    format!(
        "{:x}{:04x}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// `(X-Timestamp, X-Signature)` for `body` now.
pub fn sign(key: &str, body: &[u8]) -> (String, String) {
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let sig = sign_at(key, body, &ts);
    (ts, sig)
}

pub fn sign_at(key: &str, body: &[u8], ts: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(body);
    mac.update(ts.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({"code": 0, "message": message}))).into_response()
}

fn authorized(headers: &HeaderMap) -> bool {
    use base64::Engine;
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
    );
    headers
        .get("authorization")
        .is_some_and(|v| v.as_bytes() == expected.as_bytes())
}

/// Holds a request while the phone hangs. A request that hung is answered 503 afterwards
/// (its caller gave up long ago), never processed late.
async fn gate(phone: &FakePhone) -> Result<(), Response> {
    let mut hung = false;
    while phone.with(|i| i.hang) {
        hung = true;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if hung {
        return Err(error(StatusCode::SERVICE_UNAVAILABLE, "woke up late"));
    }
    Ok(())
}

async fn health(State(phone): State<FakePhone>) -> Response {
    if let Err(r) = gate(&phone).await {
        return r;
    }
    if phone.with(|i| i.health_html) {
        return (
            [("content-type", "text/html")],
            "<html><body>Router login</body></html>",
        )
            .into_response();
    }
    axum::Json(json!({
        "status": "pass",
        "version": "1.40.0",
        "releaseId": 1,
        "checks": {
            "battery:level": {"status": "pass", "observedValue": 80, "observedUnit": "percent", "description": "Battery level in percent"},
            "connection:status": {"status": "pass", "observedValue": 1, "observedUnit": "boolean", "description": "Internet connection status"}
        }
    }))
    .into_response()
}

/// The app's own validation: Argentine numbers only as `+549…` mobiles.
fn valid_number(n: &str) -> bool {
    let digits = n.strip_prefix('+').unwrap_or("");
    let ok = (8..=15).contains(&digits.len()) && digits.chars().all(|c| c.is_ascii_digit());
    ok && (!digits.starts_with("54") || digits.starts_with("549"))
}

/// Checks a body against `smsgateway.Message`; returns the first violation.
fn check_message(body: &Value) -> Result<(), String> {
    let known = [
        "dataMessage",
        "deviceId",
        "id",
        "isEncrypted",
        "message",
        "phoneNumbers",
        "priority",
        "scheduleAt",
        "simNumber",
        "textMessage",
        "ttl",
        "validUntil",
        "withDeliveryReport",
    ];
    let obj = body.as_object().ok_or("body is not an object")?;
    if let Some(k) = obj.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(format!("unknown property {k}"));
    }
    let numbers = obj["phoneNumbers"]
        .as_array()
        .ok_or("phoneNumbers missing")?;
    if numbers.is_empty() || numbers.len() > 100 || !numbers.iter().all(Value::is_string) {
        return Err("phoneNumbers must be 1-100 strings".into());
    }
    let text = body["textMessage"]["text"]
        .as_str()
        .ok_or("textMessage.text missing")?;
    if text.is_empty() || text.len() > 65535 {
        return Err("textMessage.text length".into());
    }
    if let Some(id) = obj.get("id") {
        let id = id.as_str().ok_or("id not a string")?;
        if id.len() > 36 {
            return Err(format!("id longer than 36: {id}"));
        }
    }
    if let Some(sim) = obj.get("simNumber") {
        let sim = sim.as_u64().ok_or("simNumber not an integer")?;
        if !(1..=3).contains(&sim) {
            return Err("simNumber out of 1-3".into());
        }
    }
    if let Some(w) = obj.get("withDeliveryReport")
        && !w.is_boolean()
    {
        return Err("withDeliveryReport not a boolean".into());
    }
    Ok(())
}

async fn enqueue(
    State(phone): State<FakePhone>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Err(r) = gate(&phone).await {
        return r;
    }
    if !authorized(&headers) {
        phone.with(|i| {
            i.violations
                .push("POST /messages without valid Basic auth".into())
        });
        return error(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    let answer = enqueue_inner(&phone, &query, &body).await;
    phone.with(|i| i.answers.push(answer.status().as_u16()));
    answer
}

async fn enqueue_inner(
    phone: &FakePhone,
    query: &HashMap<String, String>,
    body: &[u8],
) -> Response {
    match phone.with(|i| i.mode) {
        Some(Mode::Html) => {
            return (
                [("content-type", "text/html")],
                "<html><body>It works!</body></html>",
            )
                .into_response();
        }
        Some(Mode::Error500) => {
            return error(StatusCode::INTERNAL_SERVER_ERROR, "database is locked");
        }
        Some(Mode::Redirect) => {
            return (StatusCode::FOUND, [("location", "http://192.0.2.1/login")]).into_response();
        }
        _ => {}
    }
    let Ok(body) = serde_json::from_slice::<Value>(body) else {
        phone.with(|i| i.violations.push("POST /messages body is not JSON".into()));
        return error(StatusCode::BAD_REQUEST, "Invalid JSON");
    };
    if let Err(v) = check_message(&body) {
        phone.with(|i| i.violations.push(format!("POST /messages: {v}")));
        return error(StatusCode::BAD_REQUEST, &v);
    }
    let id = body["id"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(rand_id);
    phone.with(|i| i.posts.push((Instant::now(), id.clone())));
    let skip = query
        .get("skipPhoneValidation")
        .is_some_and(|v| v == "true");
    let number = body["phoneNumbers"][0].as_str().unwrap().to_string();
    if !skip && !valid_number(&number) {
        return error(
            StatusCode::BAD_REQUEST,
            &format!("Invalid phone number: {number}"),
        );
    }
    let duplicate = phone.with(|i| i.messages.contains_key(&id));
    if duplicate {
        return error(StatusCode::CONFLICT, "Message with such ID already exists");
    }
    let sms = Sms {
        id: id.clone(),
        phone: number.clone(),
        text: body["textMessage"]["text"].as_str().unwrap().to_string(),
        sim: body["simNumber"].as_u64(),
        state: "Pending",
        delivery_report: body["withDeliveryReport"].as_bool().unwrap_or(true),
    };
    phone.with(|i| {
        i.messages.insert(id.clone(), sms.clone());
        i.sent.push(id.clone());
    });
    if phone.with(|i| i.hold_answers) {
        phone.release.notified().await;
    }
    tokio::spawn(progress(phone.clone(), id.clone()));
    (
        StatusCode::ACCEPTED,
        [("location", format!("/messages/{id}"))],
        axum::Json(state_json(&sms)),
    )
        .into_response()
}

fn state_json(sms: &Sms) -> Value {
    json!({
        "id": sms.id,
        "deviceId": "fakeDevice0000000001",
        "state": sms.state,
        "isHashed": false,
        "isEncrypted": false,
        "recipients": [{"phoneNumber": sms.phone, "state": sms.state}],
        "states": {},
    })
}

/// Pending → Processed → Sent → Delivered, with the app's webhooks (`sms:delivered` once per
/// part).
async fn progress(phone: FakePhone, id: String) {
    let set = |state: &'static str| {
        phone.with(|i| {
            if let Some(m) = i.messages.get_mut(&id) {
                m.state = state;
            }
        })
    };
    let sms = phone.with(|i| i.messages[&id].clone());
    tokio::time::sleep(Duration::from_millis(20)).await;
    set("Processed");
    tokio::time::sleep(Duration::from_millis(20)).await;
    set("Sent");
    let base = json!({"messageId": id, "phoneNumber": sms.phone, "simNumber": sms.sim});
    let mut sent = base.clone();
    sent["sentAt"] = json!("2026-11-22T12:00:00.000+00:00");
    phone.fire("sms:sent", sent).await;
    if !sms.delivery_report {
        return;
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    set("Delivered");
    let parts = phone.with(|i| i.delivery_parts);
    for _ in 0..parts {
        let mut delivered = base.clone();
        delivered["deliveredAt"] = json!("2026-11-22T12:00:01.000+00:00");
        phone.fire("sms:delivered", delivered).await;
    }
}

async fn message_state(
    State(phone): State<FakePhone>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = gate(&phone).await {
        return r;
    }
    if !authorized(&headers) {
        return error(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    match phone.with(|i| i.messages.get(&id).cloned()) {
        Some(m) => axum::Json(state_json(&m)).into_response(),
        None => error(StatusCode::NOT_FOUND, "Message not found"),
    }
}

async fn list_webhooks(State(phone): State<FakePhone>, headers: HeaderMap) -> Response {
    if let Err(r) = gate(&phone).await {
        return r;
    }
    if !authorized(&headers) {
        return error(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    let list: Vec<Value> = phone.with(|i| i.webhooks.values().cloned().collect());
    axum::Json(list).into_response()
}

async fn register_webhook(
    State(phone): State<FakePhone>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Err(r) = gate(&phone).await {
        return r;
    }
    if !authorized(&headers) {
        return error(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    let events = [
        "sms:received",
        "sms:data-received",
        "sms:sent",
        "sms:delivered",
        "sms:failed",
        "system:ping",
        "mms:received",
        "mms:downloaded",
    ];
    let Ok(mut w) = serde_json::from_slice::<Value>(&body) else {
        phone.with(|i| i.violations.push("POST /webhooks body is not JSON".into()));
        return error(StatusCode::BAD_REQUEST, "Invalid JSON");
    };
    let ok = w["url"].is_string()
        && w["event"].as_str().is_some_and(|e| events.contains(&e))
        && w.get("id")
            .is_none_or(|id| id.as_str().is_some_and(|s| s.len() <= 36));
    if !ok {
        phone.with(|i| i.violations.push(format!("POST /webhooks: {w}")));
        return error(StatusCode::BAD_REQUEST, "Invalid webhook");
    }
    // The app's rule (`WebHooksService.replace`): https only, but `http://127.0.0.1` for
    // receivers on the phone itself.
    let url = w["url"].as_str().unwrap_or_default();
    let local = url
        .strip_prefix("http://127.0.0.1")
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([':', '/']));
    if !url.starts_with("https://") && !local {
        phone.with(|i| i.refused_webhooks.push(url.to_string()));
        return error(StatusCode::BAD_REQUEST, "url must start with https://");
    }
    if w.get("id").is_none() {
        w["id"] = json!(rand_id());
    }
    w["deviceId"] = json!("fakeDevice0000000001");
    let id = w["id"].as_str().unwrap().to_string();
    phone.with(|i| i.webhooks.insert(id, w.clone()));
    (StatusCode::CREATED, axum::Json(w)).into_response()
}

async fn delete_webhook(
    State(phone): State<FakePhone>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = gate(&phone).await {
        return r;
    }
    if !authorized(&headers) {
        return error(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    phone.with(|i| i.webhooks.remove(&id));
    StatusCode::NO_CONTENT.into_response()
}

fn iso(ms: i64) -> String {
    use chrono::TimeZone;
    chrono::FixedOffset::west_opt(3 * 3600)
        .unwrap()
        .timestamp_millis_opt(ms)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%S%.3f%:z")
        .to_string()
}

/// `GET /inbox` as the app's `InboxRoutes` serves it: `type`, `limit` (1-500, default 50),
/// `offset`, `from` (default the epoch) and `to` (default the phone's now) as ISO 8601,
/// `from > to` refused, `createdAt BETWEEN from AND to`, newest first, `X-Total-Count`.
async fn inbox(
    State(phone): State<FakePhone>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = gate(&phone).await {
        return r;
    }
    if phone.with(|i| i.no_inbox) {
        return StatusCode::NOT_FOUND.into_response();
    }
    if phone.with(|i| i.inbox_html) {
        return (
            [("content-type", "text/html")],
            "<html><body>Login</body></html>",
        )
            .into_response();
    }
    if !authorized(&headers) {
        return error(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    let bad = |m: &str| {
        phone.with(|i| i.violations.push(format!("GET /inbox: {m}")));
        error(StatusCode::BAD_REQUEST, m)
    };
    let kind = query.get("type").filter(|t| !t.is_empty());
    if kind.is_some_and(|t| !["SMS", "DATA_SMS", "MMS", "MMS_DOWNLOADED"].contains(&t.as_str())) {
        return bad("Invalid type");
    }
    let limit: i64 = match query.get("limit").map(|l| l.parse()) {
        None => 50,
        Some(Ok(l)) => l,
        Some(Err(_)) => 50,
    };
    if !(1..=500).contains(&limit) {
        return bad("limit must be between 1 and 500");
    }
    let offset: i64 = query
        .get("offset")
        .and_then(|o| o.parse().ok())
        .unwrap_or(0);
    if offset < 0 {
        return bad("offset must be >= 0");
    }
    let parse = |v: &String| {
        chrono::DateTime::parse_from_rfc3339(v)
            .ok()
            .map(|t| t.timestamp_millis())
    };
    let from = match query.get("from") {
        None => 0,
        Some(v) => match parse(v) {
            Some(t) => t,
            None => return bad("Invalid from datetime"),
        },
    };
    let to = match query.get("to") {
        None => phone.now_ms(),
        Some(v) => match parse(v) {
            Some(t) => t,
            None => return bad("Invalid to datetime"),
        },
    };
    if from > to {
        return error(
            StatusCode::BAD_REQUEST,
            "Start date cannot be after end date",
        );
    }
    let (total, page) = phone.with(|i| {
        i.inbox_reads += 1;
        let mut matching: Vec<&Received> = i
            .inbox
            .iter()
            .filter(|m| kind.is_none_or(|k| k == m.kind))
            .filter(|m| (from..=to).contains(&m.created_ms))
            .collect();
        matching.sort_by(|a, b| b.created_ms.cmp(&a.created_ms).then(b.id.cmp(&a.id)));
        let page: Vec<Value> = matching
            .iter()
            .skip(offset as usize)
            .take(limit as usize)
            .map(|m| {
                json!({
                    "id": m.id,
                    "type": m.kind,
                    "sender": m.sender,
                    "recipient": "+5491100000000",
                    "simNumber": 1,
                    "contentPreview": m.text,
                    "createdAt": iso(m.created_ms),
                })
            })
            .collect();
        (matching.len(), page)
    });
    ([("x-total-count", total.to_string())], axum::Json(page)).into_response()
}
