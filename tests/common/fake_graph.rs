//! A local Graph API for tests, written from Meta's published OpenAPI document
//! (business-messaging-api v23.0): `POST /{Version}/{Phone-Number-ID}/messages` answers
//! `{messaging_product, contacts[{input, wa_id}], messages[{id}]}`, `GET /{Version}/{Phone-Number-ID}`
//! answers the number's fields, and errors take Meta's shape
//! `{"error": {message, type, code, error_data: {details}, fbtrace_id}}`.
//!
//! `POST /{Version}/{Phone-Number-ID}/media` takes `multipart/form-data` with the parts
//! `messaging_product` (`whatsapp`), `type` and `file` (binary, its own `Content-Type`) and
//! answers `{"id": "<media id>"}`; the shape is checked strictly and a PDF upload is kept. A
//! template's `document.id` must be a media id uploaded here and not expired by the test
//! (`expired`), else the send is refused with code 131053.
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
    /// When each `POST /messages` with the right token reached the server, in order.
    pub arrived: Vec<std::time::Instant>,
    pub violations: Vec<String>,
    pub token: String,
    pub health_calls: usize,
    /// Uploaded files, by media id.
    pub uploads: Vec<Upload>,
    /// Media ids the test has expired (as Meta does after 30 days).
    pub expired: std::collections::HashSet<String>,
    /// The `wa_id` Meta answers for a recipient when it is not the recipient itself (Argentina:
    /// an account WhatsApp knows as 54… while the number is dialled 549…).
    pub wa_ids: std::collections::HashMap<String, String>,
    /// Numbers ending in 0429 that were already throttled once (130429 on their first send).
    pub throttled: std::collections::HashSet<String>,
    /// How many times a `/billing/*.pdf` link was fetched.
    pub pdf_fetches: usize,
}

#[derive(Clone, Debug)]
pub struct Upload {
    pub id: String,
    pub filename: String,
    pub kind: String,
    pub bytes: Vec<u8>,
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
            .route("/{version}/{id}/media", post(media))
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
    inner.arrived.push(std::time::Instant::now());
    let media = body["template"]["components"][0]["parameters"][0]["document"]["id"]
        .as_str()
        .map(str::to_string);
    if let Some(id) = media
        && (inner.expired.contains(&id) || !inner.uploads.iter().any(|u| u.id == id))
    {
        return error(
            StatusCode::BAD_REQUEST,
            131053,
            "Media upload error",
            &format!("The media id {id} is not valid or has expired"),
        );
    }
    // Meta's own view of the customer's window can differ from ours (a message we never
    // received): a text to a number ending in 1047 is refused as outside it.
    if to.ends_with("1047") && body["type"] == "text" {
        return error(
            StatusCode::BAD_REQUEST,
            131047,
            "Re-engagement message",
            "More than 24 hours have passed since the recipient last replied",
        );
    }
    if to.ends_with("0429") && inner.throttled.insert(to.clone()) {
        return error(
            StatusCode::BAD_REQUEST,
            130429,
            "Rate limit hit",
            "Cloud API message throughput has been reached",
        );
    }
    if to.ends_with("0000") {
        return error(
            StatusCode::BAD_REQUEST,
            131026,
            "Message undeliverable",
            "Unable to deliver message",
        );
    }
    let n = inner.sent.len();
    let wa_id = inner.wa_ids.get(&to).cloned().unwrap_or_else(|| to.clone());
    (
        StatusCode::OK,
        Json(json!({"messaging_product": "whatsapp",
            "contacts": [{"input": to, "wa_id": wa_id}],
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

/// One part of a `multipart/form-data` body (RFC 7578): its name, filename, type and bytes.
struct Part {
    name: String,
    filename: Option<String>,
    kind: Option<String>,
    body: Vec<u8>,
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Splits a `multipart/form-data` body strictly: every delimiter line is CRLF-terminated, each
/// part has a `Content-Disposition: form-data; name="…"` header, the body ends with the close
/// delimiter.
fn parse_multipart(content_type: &str, body: &[u8]) -> Result<Vec<Part>, String> {
    let boundary = content_type
        .strip_prefix("multipart/form-data; boundary=")
        .ok_or_else(|| format!("Content-Type {content_type} is not multipart/form-data"))?
        .trim_matches('"');
    let delim = format!("--{boundary}");
    let close = format!("\r\n--{boundary}--\r\n");
    if !body.starts_with(format!("{delim}\r\n").as_bytes()) {
        return Err("body does not start with the boundary".into());
    }
    if !body.ends_with(close.as_bytes()) {
        return Err("body does not end with the close delimiter".into());
    }
    let inner = &body[delim.len() + 2..body.len() - close.len()];
    let sep = format!("\r\n{delim}\r\n");
    let mut parts = Vec::new();
    let mut rest = inner;
    loop {
        let (chunk, next) = match find(rest, sep.as_bytes()) {
            Some(at) => (&rest[..at], Some(&rest[at + sep.len()..])),
            None => (rest, None),
        };
        let head_end =
            find(chunk, b"\r\n\r\n").ok_or("a part has no blank line after its headers")?;
        let head = std::str::from_utf8(&chunk[..head_end]).map_err(|_| "headers not UTF-8")?;
        let mut part = Part {
            name: String::new(),
            filename: None,
            kind: None,
            body: chunk[head_end + 4..].to_vec(),
        };
        for line in head.split("\r\n") {
            let (k, v) = line
                .split_once(": ")
                .ok_or(format!("bad header line {line:?}"))?;
            if k.eq_ignore_ascii_case("content-disposition") {
                let mut fields = v.split("; ");
                if fields.next() != Some("form-data") {
                    return Err(format!("disposition {v:?} is not form-data"));
                }
                for f in fields {
                    let (fk, fv) = f.split_once('=').ok_or(format!("bad field {f:?}"))?;
                    let fv = fv
                        .strip_prefix('"')
                        .and_then(|x| x.strip_suffix('"'))
                        .ok_or(format!("{fk} is not quoted"))?;
                    match fk {
                        "name" => part.name = fv.to_string(),
                        "filename" => part.filename = Some(fv.to_string()),
                        _ => return Err(format!("unknown disposition field {fk}")),
                    }
                }
            } else if k.eq_ignore_ascii_case("content-type") {
                part.kind = Some(v.to_string());
            } else {
                return Err(format!("unexpected part header {k}"));
            }
        }
        if part.name.is_empty() {
            return Err("a part has no name".into());
        }
        parts.push(part);
        match next {
            Some(n) => rest = n,
            None => break,
        }
    }
    Ok(parts)
}

/// `POST /{Version}/{Phone-Number-ID}/media`.
async fn media(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path((version, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> (StatusCode, Json<Value>) {
    let mut inner = inner.lock().unwrap();
    if !authorized(&inner, &headers) {
        return error(
            StatusCode::UNAUTHORIZED,
            190,
            "Error validating access token",
            "",
        );
    }
    if version != "v23.0" || id != PHONE_ID {
        inner.violations.push(format!("path /{version}/{id}/media"));
    }
    let kind = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let parts = match parse_multipart(kind, &body) {
        Ok(p) => p,
        Err(e) => {
            inner.violations.push(format!("media upload: {e}"));
            return error(StatusCode::BAD_REQUEST, 100, "Invalid parameter", &e);
        }
    };
    let field = |n: &str| parts.iter().find(|p| p.name == n);
    let mut problems = Vec::new();
    if field("messaging_product").map(|p| p.body.as_slice()) != Some(b"whatsapp") {
        problems.push("messaging_product must be whatsapp".to_string());
    }
    if field("type").map(|p| p.body.as_slice()) != Some(b"application/pdf") {
        problems.push("type must be application/pdf".to_string());
    }
    match field("file") {
        Some(f) if f.filename.is_some() && f.kind.as_deref() == Some("application/pdf") => {
            if !f.body.starts_with(b"%PDF-") {
                problems.push("file is not a PDF".into());
            }
        }
        _ => problems
            .push("file must be a part with a filename and Content-Type application/pdf".into()),
    }
    if parts.len() != 3 {
        problems.push(format!("{} parts, expected 3", parts.len()));
    }
    if !problems.is_empty() {
        let e = problems.join("; ");
        inner.violations.push(format!("media upload: {e}"));
        return error(StatusCode::BAD_REQUEST, 100, "Invalid parameter", &e);
    }
    let file = field("file").unwrap();
    let id = format!("{}", 4490709327384000u64 + inner.uploads.len() as u64);
    inner.uploads.push(Upload {
        id: id.clone(),
        filename: file.filename.clone().unwrap_or_default(),
        kind: file.kind.clone().unwrap_or_default(),
        bytes: file.body.clone(),
    });
    (StatusCode::OK, Json(json!({"id": id})))
}

async fn billing_file(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path(file): Path<String>,
) -> (StatusCode, [(&'static str, &'static str); 1], Vec<u8>) {
    if file == "huge.pdf" {
        // A real PDF's first bytes, one byte over pasarela's 16 MiB cap.
        let mut body = b"%PDF-1.4\n".to_vec();
        body.resize(16 * 1024 * 1024 + 1, b' ');
        return (StatusCode::OK, [("content-type", "application/pdf")], body);
    }
    if file.ends_with(".pdf") {
        inner.lock().unwrap().pdf_fetches += 1;
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
