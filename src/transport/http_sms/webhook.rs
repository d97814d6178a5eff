//! A provider's pushes of received SMS: `GET` or `POST` `/webhooks/http_sms/<route name>` on
//! the `[webhooks]` listener, for routes with `inbound_token`.
//!
//! The token must come as `?token=…` or the `X-Token` header (compared in constant time);
//! anything without it gets 401 and changes nothing. The sender and the text come as query
//! parameters, a form body or a JSON object, under the route's `[http_sms.inbound]` names
//! (matched without regard to case, as ASP providers write them either way), decoded in the
//! route's `encoding`. A push without sender or text gets 400 and changes nothing.
//!
//! Providers push again when they get no answer, so a message is stored once: by the
//! provider's id when the push has one, else by sender and text within a minute. The stored
//! message takes the same inbound path as the modem's: the keyword rules answer it.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::HttpSmsTransport;
use super::encode;
use crate::config::TextEncoding;
use crate::jsonapi::{ApiError, read_body};
use crate::logging::peer as shown_peer;
use crate::model::{Channel, NewInbound};
use crate::transport::{Sink, Transport};

/// Largest push accepted: one SMS and a few fields.
pub const MAX_BODY: usize = 16 * 1024;
/// Without a provider id, the same sender and text within this long is one message.
pub const REPEAT_WINDOW_MS: i64 = 60_000;

/// What the push routes need.
#[derive(Clone)]
pub struct PushState {
    /// Routes with `inbound_token`, by name.
    pub routes: Arc<HashMap<String, Arc<HttpSmsTransport>>>,
    pub sink: Sink,
}

/// Relative to `/webhooks/http_sms`: `GET|POST /{name}`.
pub fn router(state: PushState) -> Router {
    routes().with_state(state)
}

/// [`router`] before its state: what the OpenAPI drift test walks.
pub fn routes() -> Router<PushState> {
    Router::new().route("/{name}", axum::routing::get(receive).post(receive))
}

/// This route in the OpenAPI document (`crate::admin::openapi`), at its mounted path.
#[derive(utoipa::OpenApi)]
#[openapi(paths(receive))]
pub struct Doc;

fn refuse(status: StatusCode, code: &'static str, message: impl Into<String>) -> Response {
    ApiError::new(status, code, message).into_response()
}

/// The token the call carries: `?token=` first, then `X-Token`.
fn given_token(query: &str, headers: &HeaderMap) -> Option<Vec<u8>> {
    for pair in query.split('&') {
        if let Some(v) = pair.strip_prefix("token=") {
            return encode::percent_decode(v);
        }
    }
    headers
        .get("X-Token")
        .map(|v| v.as_bytes().trim_ascii().to_vec())
}

/// A provider's push of an inbound SMS (SMS Masivos and other `[[http_sms]]` routes with
/// `inbound_token`): fields in the query, a JSON object or a form.
#[utoipa::path(method(get, post), path = "/webhooks/http_sms/{name}", tag = "webhooks",
    params(
        ("name" = String, Path, description = "the `[[http_sms]]` route's name"),
        ("token" = Option<String>, Query, description = "the route's `inbound_token` (or send it as `X-Token`)"),
    ),
    responses(
        (status = 200, description = "`{\"status\"}`: stored, or already stored", body = serde_json::Value),
        (status = 400, description = "`invalid_push`: a field is missing or wrong", body = crate::jsonapi::ErrorEnvelope),
        (status = 401, description = "missing or wrong token", body = crate::jsonapi::ErrorEnvelope),
        (status = 404, description = "no such route, or its pushes are off", body = crate::jsonapi::ErrorEnvelope),
        (status = 413, description = "`payload_too_large`", body = crate::jsonapi::ErrorEnvelope),
        (status = 503, description = "`unavailable`: cannot store it now; retry", body = crate::jsonapi::ErrorEnvelope),
    ))]
async fn receive(
    State(state): State<PushState>,
    Path(name): Path<String>,
    request: Request,
) -> Response {
    let Some(route) = state.routes.get(&name).cloned() else {
        return refuse(
            StatusCode::NOT_FOUND,
            "not_found",
            "no [[http_sms]] route with inbound_token has this name",
        );
    };
    let cfg = route.config();
    let Some(token) = cfg.inbound_token.as_ref() else {
        return refuse(StatusCode::NOT_FOUND, "not_found", "pushes are off");
    };
    let query = request.uri().query().unwrap_or("").to_string();
    let headers = request.headers().clone();
    if !given_token(&query, &headers).is_some_and(|t| token.matches(&t)) {
        log::warn!(transport = name.as_str(); "{name}: push refused: no valid token");
        return refuse(
            StatusCode::UNAUTHORIZED,
            "bad_token",
            "the push needs the route's inbound_token as ?token=… or the X-Token header",
        );
    }
    let body = match read_body(request, MAX_BODY).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let encoding = cfg.encoding.unwrap_or_default();
    let fields = match fields(&query, &headers, &body, encoding) {
        Ok(f) => f,
        Err(why) => return refuse(StatusCode::BAD_REQUEST, "invalid_push", why),
    };
    let names = cfg.inbound.clone().unwrap_or_default();
    let (from_name, text_name) = (
        names.from.unwrap_or_else(|| "from".to_string()),
        names.text.unwrap_or_else(|| "text".to_string()),
    );
    let get = |key: &str| {
        fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.clone())
    };
    let from = get(&from_name)
        .map(|f| f.trim().to_string())
        .filter(|f| !f.is_empty());
    let text = get(&text_name).filter(|t| !t.is_empty());
    let (Some(from), Some(text)) = (from, text) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "invalid_push",
            format!(
                "the push needs the sender in `{from_name}` and the text in `{text_name}` \
                 (http_sms.inbound.from and .text)"
            ),
        );
    };
    let id = names
        .id
        .as_deref()
        .and_then(get)
        .map(|i| i.trim().to_string())
        .filter(|i| !i.is_empty());
    if from.chars().count() > 64
        || text.chars().count() > 5000
        || id.as_ref().is_some_and(|i| i.len() > 200)
    {
        return refuse(
            StatusCode::BAD_REQUEST,
            "invalid_push",
            format!("`{from_name}`, `{text_name}` or the id is too long"),
        );
    }
    let peer = route.peer_of(&from);
    let message = NewInbound {
        channel: Channel::Sms,
        transport: route.name().to_string(),
        peer: peer.clone(),
        body: text,
        provider_ref: id.clone(),
    };
    let records = state.sink.records();
    let stored = match id {
        Some(_) => records.inbound(message).await,
        None => {
            records
                .inbound_unless_recent(message, REPEAT_WINDOW_MS)
                .await
        }
    };
    match stored {
        Ok((msg, true)) => {
            log::info!(
                msg_id = msg.0, channel = "sms", transport = name.as_str();
                "message {msg} received from {} via {name} (pushed)", shown_peer(&peer)
            );
            (
                StatusCode::OK,
                axum::Json(serde_json::json!({"status": format!("stored as message {msg}")})),
            )
                .into_response()
        }
        Ok((msg, false)) => (
            StatusCode::OK,
            axum::Json(serde_json::json!({"status": format!("already stored as message {msg}")})),
        )
            .into_response(),
        Err(e) => {
            log::error!(transport = name.as_str(); "{name}: push not stored: {e:#}");
            refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "cannot store it right now; retry later",
            )
        }
    }
}

/// The push's fields: the query's (but the token), then the body's (a JSON object, or a form).
fn fields(
    query: &str,
    headers: &HeaderMap,
    body: &[u8],
    encoding: TextEncoding,
) -> Result<Vec<(String, String)>, String> {
    let mut out: Vec<(String, String)> = encode::parse_pairs(query, encoding)
        .map_err(|e| format!("query: {e}"))?
        .into_iter()
        .filter(|(k, _)| k != "token")
        .collect();
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(out);
    }
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if content_type.starts_with("application/json") {
        let value: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
        let serde_json::Value::Object(map) = value else {
            return Err("the JSON body must be an object of fields".to_string());
        };
        for (k, v) in map {
            let v = match v {
                serde_json::Value::String(s) => s,
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Null => continue,
                other => {
                    return Err(format!("`{k}` must be a string or a number, not {other}"));
                }
            };
            out.push((k, v));
        }
        return Ok(out);
    }
    let text = std::str::from_utf8(body)
        .map_err(|_| "a form body must be percent-encoded ASCII".to_string())?;
    out.extend(encode::parse_pairs(text.trim(), encoding).map_err(|e| format!("form: {e}"))?);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_come_from_query_form_or_json() {
        let mut h = HeaderMap::new();
        let f = fields(
            "token=x&origen=1147896321",
            &h,
            b"texto=m%E1s",
            TextEncoding::Latin1,
        )
        .unwrap();
        assert_eq!(
            f,
            vec![
                ("origen".to_string(), "1147896321".to_string()),
                ("texto".to_string(), "más".to_string())
            ]
        );
        h.insert(
            axum::http::header::CONTENT_TYPE,
            "application/json".parse().unwrap(),
        );
        let f = fields(
            "",
            &h,
            br#"{"from":"+5491147896321","text":"SALDO","id":77}"#,
            TextEncoding::Utf8,
        )
        .unwrap();
        assert!(f.contains(&("id".to_string(), "77".to_string())), "{f:?}");
        assert!(
            f.contains(&("text".to_string(), "SALDO".to_string())),
            "{f:?}"
        );
        assert!(fields("", &h, b"[1]", TextEncoding::Utf8).is_err());
        assert!(fields("", &h, b"{nope", TextEncoding::Utf8).is_err());
    }

    #[test]
    fn the_token_comes_from_the_query_or_the_header() {
        let mut h = HeaderMap::new();
        assert_eq!(given_token("a=1&token=abc%21", &h), Some(b"abc!".to_vec()));
        assert_eq!(given_token("a=1", &h), None);
        h.insert("X-Token", "secreto".parse().unwrap());
        assert_eq!(given_token("", &h), Some(b"secreto".to_vec()));
    }
}
