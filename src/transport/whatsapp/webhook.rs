//! `/webhooks/whatsapp` on the `[webhooks]` listener: Meta's `GET` handshake
//! (`hub.mode=subscribe`, `hub.verify_token`, `hub.challenge`) and the signed `POST`s that carry
//! customers' messages and the statuses of ours.
//!
//! Every `POST` is verified before its body is read as JSON: `X-Hub-Signature-256` must be
//! `sha256=` + the hex HMAC-SHA256 of the raw body under `app_secret`, compared in constant time
//! (401 otherwise, nothing changes). A signed body that is not the documented shape gets 400 and
//! changes nothing: the whole body is parsed before anything is recorded.
//!
//! Meta retries until it gets a 2xx and may repeat or reorder statuses, so every effect is
//! idempotent: a message is stored once per wamid, a status only moves a message forward
//! (`delivered` after `read` changes nothing), and a wamid's pricing is counted once.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use super::ROUTE;
use crate::config::WhatsappConfig;
use crate::jsonapi::{ApiError, read_body};
use crate::model::{Channel, NewInbound, StatusUpdate, now_ms};
use crate::phone::PhoneContext;
use crate::transport::Sink;

/// Largest webhook body accepted (Meta batches up to a few KiB per change).
pub const MAX_BODY: usize = 1024 * 1024;

#[derive(Clone)]
pub struct WebhookState {
    cfg: Arc<WhatsappConfig>,
    sink: Sink,
    phones: PhoneContext,
    /// Serializes the cost counters' read-modify-write.
    costs: Arc<tokio::sync::Mutex<()>>,
}

impl WebhookState {
    pub fn new(cfg: WhatsappConfig, sink: Sink, phones: PhoneContext) -> WebhookState {
        WebhookState {
            cfg: Arc::new(cfg),
            sink,
            phones,
            costs: Arc::new(tokio::sync::Mutex::new(())),
        }
    }
}

/// Routes relative to `/webhooks/whatsapp`.
pub fn router(state: WebhookState) -> Router {
    routes().with_state(state)
}

/// [`router`] before its state: what the OpenAPI drift test walks.
pub fn routes() -> Router<WebhookState> {
    Router::new().route("/", axum::routing::get(handshake).post(receive))
}

/// These routes in the OpenAPI document (`crate::admin::openapi`), at their mounted path.
#[derive(utoipa::OpenApi)]
#[openapi(paths(handshake, receive))]
pub struct Doc;

/// `sha256=` + hex HMAC-SHA256 of `body` under `secret`, as Meta signs.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

/// Whether `header` is the signature of `body` under `secret` (constant time).
pub fn verify(secret: &[u8], header: Option<&str>, body: &[u8]) -> bool {
    let Some(hex) = header.and_then(|h| h.trim().strip_prefix("sha256=")) else {
        return false;
    };
    if hex.len() != 64 || !hex.is_ascii() {
        return false;
    }
    let Some(given) = (0..64)
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
        .collect::<Option<Vec<u8>>>()
    else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    mac.verify_slice(&given).is_ok()
}

#[derive(Deserialize)]
struct Handshake {
    #[serde(rename = "hub.mode")]
    mode: Option<String>,
    #[serde(rename = "hub.verify_token")]
    verify_token: Option<String>,
    #[serde(rename = "hub.challenge")]
    challenge: Option<String>,
}

/// Meta's subscription handshake: answers `hub.challenge` when `hub.verify_token` matches.
#[utoipa::path(get, path = "/webhooks/whatsapp", tag = "webhooks",
    params(
        ("hub.mode" = Option<String>, Query, description = "`subscribe`"),
        ("hub.verify_token" = Option<String>, Query, description = "`whatsapp.verify_token`"),
        ("hub.challenge" = Option<String>, Query, description = "echoed back"),
    ),
    responses(
        (status = 200, description = "the challenge", body = String, content_type = "text/plain"),
        (status = 403, description = "the verify token differs", body = String, content_type = "text/plain"),
    ))]
async fn handshake(State(st): State<WebhookState>, Query(q): Query<Handshake>) -> Response {
    let ok = q.mode.as_deref() == Some("subscribe")
        && st.cfg.verify_token.as_ref().is_some_and(|t| {
            q.verify_token
                .as_deref()
                .is_some_and(|v| t.matches(v.as_bytes()))
        });
    match (ok, q.challenge) {
        (true, Some(c)) => (StatusCode::OK, c).into_response(),
        _ => {
            log::warn!(transport = ROUTE; "WhatsApp webhook handshake refused: hub.verify_token differs from whatsapp.verify_token");
            (StatusCode::FORBIDDEN, "verify token mismatch").into_response()
        }
    }
}

/// The documented webhook payload, as far as pasarela reads it.
#[derive(Debug, Deserialize)]
struct Payload {
    object: String,
    entry: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
struct Entry {
    #[serde(default)]
    changes: Vec<Change>,
}

#[derive(Debug, Deserialize)]
struct Change {
    #[serde(default)]
    field: Option<String>,
    value: Value,
}

#[derive(Debug, Deserialize)]
struct Value {
    #[serde(default)]
    contacts: Vec<WaContact>,
    #[serde(default)]
    messages: Vec<WaMessage>,
    #[serde(default)]
    statuses: Vec<WaStatus>,
}

#[derive(Debug, Deserialize)]
struct WaContact {
    wa_id: String,
}

#[derive(Debug, Deserialize)]
struct WaMessage {
    from: String,
    id: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<TextBody>,
    #[serde(default)]
    button: Option<ButtonBody>,
}

#[derive(Debug, Deserialize)]
struct TextBody {
    body: String,
}

#[derive(Debug, Deserialize)]
struct ButtonBody {
    text: String,
}

#[derive(Debug, Deserialize)]
struct WaStatus {
    id: String,
    status: String,
    #[serde(default)]
    pricing: Option<Pricing>,
    #[serde(default)]
    errors: Vec<StatusError>,
}

#[derive(Debug, Deserialize)]
struct Pricing {
    #[serde(default)]
    billable: Option<bool>,
    #[serde(default)]
    category: Option<String>,
}

#[derive(Debug, Deserialize)]
struct StatusError {
    #[serde(default)]
    code: Option<i64>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// Cost categories counted per day.
pub const CATEGORIES: [&str; 4] = ["marketing", "utility", "authentication", "service"];

/// Meta's events: inbound messages, statuses with pricing.
#[utoipa::path(post, path = "/webhooks/whatsapp", tag = "webhooks",
    params(("X-Hub-Signature-256" = String, Header, description = "`sha256=` and the hex HMAC-SHA256 of the body, keyed with `whatsapp.app_secret`")),
    request_body(content = serde_json::Value, description = "Meta's webhook payload (`object`, `entry[].changes[]`)"),
    responses(
        (status = 200, description = "taken (an empty body)"),
        (status = 400, description = "not Meta's payload (`invalid_json`, `invalid_field` naming the field)", body = crate::jsonapi::ErrorEnvelope),
        (status = 401, description = "X-Hub-Signature-256 is missing or does not match", body = crate::jsonapi::ErrorEnvelope),
        (status = 413, description = "`payload_too_large`", body = crate::jsonapi::ErrorEnvelope),
    ))]
async fn receive(State(st): State<WebhookState>, request: Request) -> Result<Response, ApiError> {
    let headers: HeaderMap = request.headers().clone();
    let body = read_body(request, MAX_BODY).await?;
    let secret = st
        .cfg
        .app_secret
        .as_ref()
        .map(|s| s.expose().as_bytes().to_vec())
        .unwrap_or_default();
    let sig = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok());
    if secret.is_empty() || !verify(&secret, sig, &body) {
        log::warn!(transport = ROUTE; "WhatsApp webhook refused: X-Hub-Signature-256 {} (check whatsapp.app_secret)",
            if sig.is_some() { "does not match" } else { "is missing" });
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "bad_signature",
            "X-Hub-Signature-256 is missing or does not match",
        ));
    }
    let payload: Payload = crate::jsonapi::parse_json(&body)?;
    if payload.object != "whatsapp_business_account" {
        return Err(ApiError::field(
            "object",
            "must be \"whatsapp_business_account\"",
        ));
    }
    // Check everything before recording anything.
    for (i, e) in payload.entry.iter().enumerate() {
        for (j, c) in e.changes.iter().enumerate() {
            for (k, m) in c.value.messages.iter().enumerate() {
                if st.phones.normalize(&format!("+{}", m.from)).is_err() {
                    return Err(ApiError::field(
                        format!("entry[{i}].changes[{j}].value.messages[{k}].from"),
                        "is not a phone number",
                    ));
                }
            }
            for (k, s) in c.value.statuses.iter().enumerate() {
                if !["sent", "delivered", "read", "failed"].contains(&s.status.as_str()) {
                    return Err(ApiError::field(
                        format!("entry[{i}].changes[{j}].value.statuses[{k}].status"),
                        "must be sent, delivered, read or failed",
                    ));
                }
            }
        }
    }
    for c in payload.entry.iter().flat_map(|e| &e.changes) {
        if c.field.as_deref().is_some_and(|f| f != "messages") {
            continue;
        }
        for m in &c.value.messages {
            st.message(m, &c.value.contacts)
                .await
                .map_err(ApiError::internal)?;
        }
        for s in &c.value.statuses {
            st.status(s).await.map_err(ApiError::internal)?;
        }
    }
    Ok(StatusCode::OK.into_response())
}

impl WebhookState {
    async fn message(
        &self,
        m: &WaMessage,
        contacts: &[WaContact],
    ) -> Result<(), crate::transport::sink::SinkError> {
        let peer = self
            .phones
            .normalize(&format!("+{}", m.from))
            .map(|n| n.as_str().to_string())
            .unwrap_or_else(|_| format!("+{}", m.from));
        let state = self.sink.state();
        state
            .set(&format!("whatsapp.last_in:{peer}"), Some(now_ms()))
            .await?;
        let wa_id = contacts
            .first()
            .map(|c| c.wa_id.as_str())
            .unwrap_or(&m.from);
        if let Ok(n) = wa_id.parse::<i64>() {
            state
                .set(&format!("whatsapp.wa_id:{peer}"), Some(n))
                .await?;
        }
        let inbound = |body: String| NewInbound {
            channel: Channel::Whatsapp,
            transport: ROUTE.to_string(),
            peer: peer.clone(),
            body,
            provider_ref: Some(m.id.clone()),
        };
        let text = match m.kind.as_str() {
            "text" => m.text.as_ref().map(|t| t.body.clone()),
            "button" => m.button.as_ref().map(|b| b.text.clone()),
            _ => None,
        };
        match text {
            Some(t) => {
                self.sink.records().inbound(inbound(t)).await?;
            }
            None => {
                self.sink
                    .records()
                    .inbound_raw(
                        inbound(String::new()),
                        format!("a WhatsApp {} message: only text is read", m.kind),
                    )
                    .await?;
            }
        }
        Ok(())
    }

    async fn status(&self, s: &WaStatus) -> Result<(), crate::transport::sink::SinkError> {
        let records = self.sink.records();
        let update = match s.status.as_str() {
            "delivered" => Some(StatusUpdate::Delivered),
            "read" => Some(StatusUpdate::Read),
            "failed" => {
                let e = s.errors.first();
                let reason = match e {
                    Some(e) => format!(
                        "WhatsApp failed it ({}): {}",
                        e.code.map(|c| c.to_string()).unwrap_or_default(),
                        crate::net::error::sanitize(
                            e.message.as_deref().or(e.title.as_deref()).unwrap_or("")
                        )
                    ),
                    None => "WhatsApp failed it".into(),
                };
                let reason = if e.and_then(|e| e.code) == Some(131026) {
                    format!("{reason} ({})", super::client::UNDELIVERABLE)
                } else {
                    reason
                };
                Some(StatusUpdate::Failed { reason })
            }
            _ => None,
        };
        if let Some(u) = update {
            records.status(ROUTE, &s.id, u).await?;
        }
        if let Some(p) = &s.pricing
            && p.billable != Some(false)
        {
            let category = p
                .category
                .as_deref()
                .filter(|c| CATEGORIES.contains(c))
                .unwrap_or("service");
            let _guard = self.costs.lock().await;
            let state = self.sink.state();
            let first = state
                .get_or_init(&format!("whatsapp.priced:{}", s.id), 0)
                .await?;
            if first == 0 {
                state
                    .set(&format!("whatsapp.priced:{}", s.id), Some(1))
                    .await?;
                crate::metrics::global().count_whatsapp_billable(category);
                let day = chrono::Utc::now().format("%Y-%m-%d");
                let key = format!("whatsapp.cost:{day}:{category}");
                let n = state.get(&key).await?.unwrap_or(0);
                state.set(&key, Some(n + 1)).await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_only_the_exact_body() {
        let body = br#"{"object":"whatsapp_business_account","entry":[]}"#;
        let sig = signature(b"secret", body);
        assert!(verify(b"secret", Some(&sig), body));
        assert!(!verify(b"other", Some(&sig), body));
        assert!(!verify(b"secret", Some(&sig), b"{}"));
        assert!(!verify(b"secret", None, body));
        assert!(!verify(b"secret", Some("sha256=zz"), body));
    }
}
