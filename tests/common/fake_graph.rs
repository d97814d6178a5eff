//! A local Graph API for tests, written from Meta's published OpenAPI document
//! (business-messaging-api v23.0): `POST /{Version}/{Phone-Number-ID}/messages` answers
//! `{messaging_product, contacts[{input, wa_id}], messages[{id}]}`, `GET /{Version}/{Phone-Number-ID}`
//! answers the number's fields, and errors take Meta's shape
//! `{"error": {message, type, code, error_data: {details}, fbtrace_id}}`.
//!
//! Behaviour by recipient: numbers ending in `0000` are not on WhatsApp (131026). A token other
//! than the expected one gets 190. Every request body is kept, and what does not follow the
//! document (missing `messaging_product`, `to`, `type`, a template without `language.code`) is
//! recorded in `violations`.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use serde_json::{Value, json};

#[derive(Default)]
pub struct Inner {
    pub sent: Vec<Value>,
    pub violations: Vec<String>,
    pub token: String,
    pub health_calls: usize,
}

#[derive(Clone)]
pub struct FakeGraph {
    pub url: String,
    pub inner: Arc<Mutex<Inner>>,
}

pub const PHONE_ID: &str = "1234567890";

impl FakeGraph {
    pub async fn start(token: &str) -> FakeGraph {
        let inner = Arc::new(Mutex::new(Inner {
            token: token.to_string(),
            ..Default::default()
        }));
        let router = Router::new()
            .route("/{version}/{id}/messages", post(messages))
            .route("/{version}/{id}", get(phone))
            .route("/{version}/{id}/message_templates", get(templates))
            .route("/billing/{file}", get(billing_file))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        FakeGraph {
            url: format!("http://{addr}"),
            inner,
        }
    }

    pub fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.inner.lock().unwrap())
    }
}

fn error(status: StatusCode, code: i64, message: &str, details: &str) -> (StatusCode, Json<Value>) {
    (
        status,
        Json(
            json!({"error": {"message": message, "type": "OAuthException", "code": code,
            "error_data": {"messaging_product": "whatsapp", "details": details},
            "fbtrace_id": "AbCdEf"}}),
        ),
    )
}

fn authorized(inner: &Inner, headers: &HeaderMap) -> bool {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {}", inner.token))
}

async fn phone(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path((_v, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> (StatusCode, Json<Value>) {
    let mut inner = inner.lock().unwrap();
    inner.health_calls += 1;
    if !authorized(&inner, &headers) {
        return error(
            StatusCode::UNAUTHORIZED,
            190,
            "Error validating access token: Session has expired",
            "",
        );
    }
    (
        StatusCode::OK,
        Json(
            json!({"id": id, "display_phone_number": "+54 9 11 5555-0000",
            "verified_name": "Red Sur", "quality_rating": "GREEN"}),
        ),
    )
}

async fn messages(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path((version, id)): Path<(String, String)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    let mut inner = inner.lock().unwrap();
    if !authorized(&inner, &headers) {
        return error(
            StatusCode::UNAUTHORIZED,
            190,
            "Error validating access token: Session has expired",
            "",
        );
    }
    if version != "v23.0" || id != PHONE_ID {
        inner
            .violations
            .push(format!("path /{version}/{id}/messages"));
    }
    for key in ["messaging_product", "to", "type"] {
        if body.get(key).and_then(Value::as_str).is_none() {
            inner.violations.push(format!("{key} missing"));
        }
    }
    match body["type"].as_str() {
        Some("text") if body["text"]["body"].as_str().is_none() => {
            inner.violations.push("text.body missing".into())
        }
        Some("template")
            if body["template"]["name"].as_str().is_none()
                || body["template"]["language"]["code"].as_str().is_none() =>
        {
            inner
                .violations
                .push("template.name or language.code missing".into())
        }
        _ => {}
    }
    let to = body["to"].as_str().unwrap_or_default().to_string();
    inner.sent.push(body.clone());
    if to.ends_with("0000") {
        return error(
            StatusCode::BAD_REQUEST,
            131026,
            "Message undeliverable",
            "Unable to deliver message",
        );
    }
    let n = inner.sent.len();
    (
        StatusCode::OK,
        Json(json!({"messaging_product": "whatsapp",
            "contacts": [{"input": to, "wa_id": to}],
            "messages": [{"id": format!("wamid.HBgN{n:04}")}]})),
    )
}

/// `GET /{Version}/{WABA-ID}/message_templates`: `{data: [{name, language, category, status,
/// components}], paging}`, in two pages.
async fn templates(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path((version, waba)): Path<(String, String)>,
    headers: HeaderMap,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> (StatusCode, Json<Value>) {
    let inner = inner.lock().unwrap();
    if !authorized(&inner, &headers) {
        return error(
            StatusCode::UNAUTHORIZED,
            190,
            "Error validating access token",
            "",
        );
    }
    if q.contains_key("after") {
        return (
            StatusCode::OK,
            Json(
                json!({"data": [{"name": "pago_recibido", "language": "es_AR", "category": "UTILITY",
                "status": "PENDING", "components": [{"type": "BODY", "text": "Hola {{1}}, recibimos {{2}}."}]}]}),
            ),
        );
    }
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_string();
    (
        StatusCode::OK,
        Json(
            json!({"data": [{"name": "comprobantes", "language": "es_AR", "category": "UTILITY",
            "status": "APPROVED", "id": "1",
            "components": [{"type": "HEADER", "format": "DOCUMENT"},
                           {"type": "BODY", "text": "Hola {{1}}, su factura de {{2}} vence el {{3}}."}]}],
            "paging": {"cursors": {"after": "MQ"},
                       "next": format!("http://{host}/{version}/{waba}/message_templates?after=MQ")}}),
        ),
    )
}

async fn billing_file(
    Path(file): Path<String>,
) -> (StatusCode, [(&'static str, &'static str); 1], Vec<u8>) {
    if file.ends_with(".pdf") {
        (
            StatusCode::OK,
            [("content-type", "application/pdf")],
            b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n".to_vec(),
        )
    } else {
        (
            StatusCode::OK,
            [("content-type", "text/html; charset=utf-8")],
            b"<html><body>Iniciar sesion</body></html>".to_vec(),
        )
    }
}
