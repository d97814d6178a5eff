//! The webhooks an Android phone calls: `POST /webhooks/android/<route name>`, served on the
//! `[webhooks] listen` address (the only routes there, so it can face the LAN).
//!
//! Every call is verified before anything is read from it: `X-Signature` must be the hex
//! HMAC-SHA256, under the route's signing key, of the raw body followed by `X-Timestamp`
//! (Unix seconds, within ±5 minutes), compared in constant time. Unsigned, wrongly signed or
//! stale calls get 401 and change nothing.
//!
//! The app retries a webhook until it gets a 2xx and fires `sms:delivered` once per part, so
//! every effect is idempotent: a received SMS is stored once per app message id, and a state
//! report only moves a message forward.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use super::Phone;
use crate::jsonapi::{ApiError, read_body};
use crate::logging::peer as shown_peer;
use crate::model::{Channel, MessageId, NewInbound, StatusUpdate, now_ms};
use crate::transport::sink::SinkError;

/// Largest webhook body accepted; the app's are well under 2 KiB (an SMS is at most a few KiB
/// of text even when long).
pub const MAX_BODY: usize = 64 * 1024;
/// How far `X-Timestamp` may be from our clock, in seconds.
pub const MAX_SKEW_SECS: i64 = 300;

/// What the webhook routes need.
#[derive(Clone)]
pub struct WebhookState {
    /// By route name.
    pub routes: Arc<HashMap<String, Arc<Phone>>>,
}

/// The phones' webhook routes, relative to where the registry mounts them
/// (`/webhooks/android`): `POST /{name}`.
pub fn router(state: WebhookState) -> Router {
    routes().with_state(state)
}

/// [`router`] before its state: what the OpenAPI drift test walks.
pub fn routes() -> Router<WebhookState> {
    Router::new().route("/{name}", axum::routing::post(receive))
}

/// This route in the OpenAPI document (`crate::admin::openapi`), at its mounted path.
#[derive(utoipa::OpenApi)]
#[openapi(paths(receive))]
pub struct Doc;

/// Hex HMAC-SHA256 of `body ‖ timestamp` under `key`, as the app computes it.
pub fn signature(key: &[u8], body: &[u8], timestamp: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(body);
    mac.update(timestamp.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Why a call is refused before its body is looked at.
#[derive(Debug, PartialEq, Eq)]
pub enum Unverified {
    Missing(&'static str),
    BadTimestamp,
    Stale(i64),
    BadSignature,
}

impl std::fmt::Display for Unverified {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unverified::Missing(h) => write!(f, "the {h} header is missing"),
            Unverified::BadTimestamp => f.write_str("X-Timestamp is not Unix seconds"),
            Unverified::Stale(d) => write!(
                f,
                "X-Timestamp is {d} s away from this box's clock (more than {MAX_SKEW_SECS}); \
                 check both clocks"
            ),
            Unverified::BadSignature => f.write_str(
                "X-Signature does not match: the signing key differs from android.signing_key",
            ),
        }
    }
}

/// Checks a call's signature headers against `key` at time `now` (Unix seconds).
pub fn verify(key: &[u8], headers: &HeaderMap, body: &[u8], now: i64) -> Result<(), Unverified> {
    let text = |name: &'static str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .ok_or(Unverified::Missing(name))
    };
    let timestamp = text("X-Timestamp")?;
    let given = text("X-Signature")?;
    let ts: i64 = timestamp.parse().map_err(|_| Unverified::BadTimestamp)?;
    let skew = now.saturating_sub(ts);
    if skew.abs() > MAX_SKEW_SECS {
        return Err(Unverified::Stale(skew));
    }
    let given = decode_hex(given).ok_or(Unverified::BadSignature)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(body);
    mac.update(timestamp.as_bytes());
    // `verify_slice` compares in constant time.
    mac.verify_slice(&given)
        .map_err(|_| Unverified::BadSignature)
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

/// `WebHookEvent` of the spec.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Event {
    #[serde(default)]
    id: Option<String>,
    event: String,
    #[serde(default)]
    payload: serde_json::Value,
}

/// The fields of the SMS payloads we read (`SmsReceivedPayload`, `SmsSentPayload`,
/// `SmsDeliveredPayload`, `SmsFailedPayload`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SmsPayload {
    message_id: Option<String>,
    phone_number: Option<String>,
    sender: Option<String>,
    message: Option<String>,
    reason: Option<String>,
}

fn bad(code: &'static str, message: impl Into<String>) -> Response {
    ApiError::new(StatusCode::BAD_REQUEST, code, message).into_response()
}

/// The Android SMS Gateway app's callbacks (`sms:received`, `sms:sent`, `sms:delivered`,
/// `sms:failed`), signed with the route's `signing_key`.
#[utoipa::path(post, path = "/webhooks/android/{name}", tag = "webhooks",
    params(
        ("name" = String, Path, description = "the `[[android]]` route's name"),
        ("X-Signature" = String, Header, description = "hex HMAC-SHA256 of the body followed by X-Timestamp, keyed with `signing_key`"),
        ("X-Timestamp" = String, Header, description = "Unix seconds, within 300 s of this box's clock"),
    ),
    request_body(content = serde_json::Value, description = "the app's event: `{\"event\",\"id\",\"payload\"}`"),
    responses(
        (status = 200, description = "`{\"status\"}`: what was done with it (stored, updated, ignored)", body = serde_json::Value),
        (status = 400, description = "`invalid_json`, `invalid_payload` or `unknown_event`", body = crate::jsonapi::ErrorEnvelope),
        (status = 401, description = "`bad_signature`: missing or wrong X-Signature, or X-Timestamp too far off", body = crate::jsonapi::ErrorEnvelope),
        (status = 404, description = "no such route, or its webhooks are off", body = crate::jsonapi::ErrorEnvelope),
        (status = 413, description = "`payload_too_large`: over 64 KiB", body = crate::jsonapi::ErrorEnvelope),
        (status = 503, description = "`unavailable`: cannot store it now; the app retries", body = crate::jsonapi::ErrorEnvelope),
    ))]
async fn receive(
    State(state): State<WebhookState>,
    Path(name): Path<String>,
    request: Request,
) -> Response {
    let Some(phone) = state.routes.get(&name).cloned() else {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no [[android]] route with webhooks has this name",
        )
        .into_response();
    };
    let Some(key) = phone.cfg.signing_key.clone() else {
        return ApiError::new(StatusCode::NOT_FOUND, "not_found", "webhooks are off")
            .into_response();
    };
    let headers = request.headers().clone();
    let body = match read_body(request, MAX_BODY).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let now = now_ms() / 1000;
    if let Err(why) = verify(key.expose().as_bytes(), &headers, &body, now) {
        log::warn!(transport = name.as_str(); "{name}: webhook refused: {why}");
        return ApiError::new(StatusCode::UNAUTHORIZED, "bad_signature", why.to_string())
            .into_response();
    }
    let event: Event = match serde_json::from_slice(&body) {
        Ok(e) => e,
        Err(e) => {
            return bad(
                "invalid_json",
                format!("the body is not the app's webhook JSON: {e}"),
            );
        }
    };
    let payload = || serde_json::from_value::<SmsPayload>(event.payload.clone());
    let result = match event.event.as_str() {
        "sms:received" => match payload() {
            Ok(p) => received(&phone, p).await,
            Err(e) => return bad("invalid_payload", format!("payload: {e}")),
        },
        "sms:sent" | "sms:delivered" | "sms:failed" => match payload() {
            Ok(p) => status(&phone, &event.event, p).await,
            Err(e) => return bad("invalid_payload", format!("payload: {e}")),
        },
        // Events of the app we do not subscribe to: acknowledged so it stops retrying.
        "system:ping" | "sms:data-received" | "mms:received" | "mms:downloaded" => {
            Ok("ignored".to_string())
        }
        other => {
            let shown: String = other.chars().take(40).collect();
            return bad(
                "unknown_event",
                format!("`{shown}` is not an event of the SMS Gateway app"),
            );
        }
    };
    match result {
        Ok(outcome) => {
            log::debug!(
                transport = name.as_str();
                "{name}: webhook {} ({}): {outcome}",
                event.event,
                event.id.as_deref().unwrap_or("no id")
            );
            (
                StatusCode::OK,
                axum::Json(serde_json::json!({"status": outcome})),
            )
                .into_response()
        }
        Err(resp) => resp,
    }
}

/// `sms:received`: stores the SMS through the shared inbound path, once per app message id.
async fn received(phone: &Phone, p: SmsPayload) -> Result<String, Response> {
    let name = phone.name();
    let (Some(id), Some(from), Some(text)) = (
        p.message_id.filter(|s| !s.is_empty()),
        p.phone_number.or(p.sender).filter(|s| !s.trim().is_empty()),
        p.message,
    ) else {
        return Err(bad(
            "invalid_payload",
            "sms:received needs payload.messageId, payload.phoneNumber and payload.message",
        ));
    };
    if id.len() > 200 || from.len() > 64 {
        return Err(bad(
            "invalid_payload",
            "payload.messageId or payload.phoneNumber is too long",
        ));
    }
    // Alphanumeric senders (`Personal`) and short codes stay as they came.
    let peer = phone.inbound_peer(&from);
    let stored = phone
        .sink
        .records()
        .inbound(NewInbound {
            channel: Channel::Sms,
            transport: name.to_string(),
            peer: peer.clone(),
            body: text,
            provider_ref: Some(id),
        })
        .await;
    match stored {
        Ok((msg, true)) => {
            log::info!(
                msg_id = msg.0, channel = "sms", transport = name;
                "message {msg} received from {} via {name}", shown_peer(&peer)
            );
            Ok(format!("stored as message {msg}"))
        }
        Ok((msg, false)) => Ok(format!("already stored as message {msg}")),
        Err(e) => Err(store_error(name, e)),
    }
}

/// `sms:sent`, `sms:delivered`, `sms:failed`: moves the outbound message our id names.
async fn status(phone: &Phone, event: &str, p: SmsPayload) -> Result<String, Response> {
    let name = phone.name();
    let Some(app_id) = p.message_id else {
        return Err(bad("invalid_payload", "payload.messageId is missing"));
    };
    let prefix = phone.id_prefix().await.map_err(|e| store_error(name, e))?;
    let Some(id) = app_id
        .strip_prefix(prefix)
        .and_then(|n| n.parse::<i64>().ok())
        .map(MessageId)
    else {
        // Sent through the app by someone else, or by an earlier installation.
        return Ok("not a message of ours".to_string());
    };
    let update = match event {
        "sms:delivered" => StatusUpdate::Delivered,
        "sms:failed" => StatusUpdate::Failed {
            reason: format!(
                "the phone reports: {}",
                p.reason
                    .as_deref()
                    .map(|r| r.chars().take(300).collect::<String>())
                    .unwrap_or_else(|| "failed".to_string())
            ),
        },
        // `sent` is what the dispatcher records when the phone took the message.
        _ => return Ok("noted".to_string()),
    };
    match phone
        .sink
        .records()
        .status_of(id, name, &app_id, update)
        .await
    {
        Ok(true) => {
            log::info!(msg_id = id.0, transport = name; "message {id}: {event} reported by {name}");
            Ok("applied".to_string())
        }
        Ok(false) => Ok("nothing to change".to_string()),
        Err(e) => Err(store_error(name, e)),
    }
}

/// A database problem: 503, so the app retries later.
fn store_error(name: &str, e: SinkError) -> Response {
    log::error!(transport = name; "{name}: webhook not stored: {e:#}");
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "cannot store it right now; retry later",
    )
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(ts: &str, sig: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("X-Timestamp", ts.parse().unwrap());
        h.insert("X-Signature", sig.parse().unwrap());
        h
    }

    #[test]
    fn signature_is_hmac_of_body_then_timestamp() {
        // HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog") from RFC 4231's
        // companion examples, split between body and "timestamp".
        assert_eq!(
            signature(b"key", b"The quick brown fox jumps over the lazy ", "dog"),
            "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
    }

    #[test]
    fn verify_accepts_good_and_refuses_bad() {
        let body = br#"{"event":"sms:received"}"#;
        let sig = signature(b"secret-key", body, "1700000000");
        assert_eq!(
            verify(
                b"secret-key",
                &headers("1700000000", &sig),
                body,
                1700000100
            ),
            Ok(())
        );
        assert_eq!(
            verify(
                b"secret-key",
                &headers("1700000000", &sig.to_uppercase()),
                body,
                1700000000
            ),
            Ok(())
        );
        assert_eq!(
            verify(b"other-key", &headers("1700000000", &sig), body, 1700000000),
            Err(Unverified::BadSignature)
        );
        assert_eq!(
            verify(
                b"secret-key",
                &headers("1700000000", &sig),
                b"{}",
                1700000000
            ),
            Err(Unverified::BadSignature)
        );
        assert_eq!(
            verify(
                b"secret-key",
                &headers("1700000000", &sig),
                body,
                1700000301
            ),
            Err(Unverified::Stale(301))
        );
        assert_eq!(
            verify(
                b"secret-key",
                &headers("1700000000", &sig),
                body,
                1699999600
            ),
            Err(Unverified::Stale(-400))
        );
        assert_eq!(
            verify(b"secret-key", &headers("soon", &sig), body, 1700000000),
            Err(Unverified::BadTimestamp)
        );
        assert_eq!(
            verify(
                b"secret-key",
                &headers("1700000000", "zz"),
                body,
                1700000000
            ),
            Err(Unverified::BadSignature)
        );
        assert_eq!(
            verify(b"secret-key", &HeaderMap::new(), body, 1700000000),
            Err(Unverified::Missing("X-Timestamp"))
        );
    }
}
