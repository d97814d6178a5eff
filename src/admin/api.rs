//! JSON API handlers: messages (send, batch, list, get, resend, cancel), health and status.

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use super::{ApiError, AppState, ItemError, JsonBody, rfc3339};
use crate::store::{
    Channel, Direction, ListFilter, Message, MessageId, NewOutbound, Priority, State as MsgState,
    now_ms,
};

/// Largest body of a single-message request.
const SINGLE_LIMIT: usize = 64 * 1024;
/// Largest batch body: 10,000 messages of up to 1,530 characters each fit.
const BATCH_LIMIT: usize = 32 * 1024 * 1024;
/// Messages in one batch request.
pub const BATCH_MAX: usize = 10_000;
const PAGE_DEFAULT: u32 = 50;
const PAGE_MAX: u32 = 500;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/messages", post(send).get(list))
        .route("/api/messages/batch", post(batch))
        .route("/api/messages/{id}", get(get_one))
        .route("/api/messages/{id}/resend", post(resend))
        .route("/api/messages/{id}/cancel", post(cancel))
        .route("/api/status", get(status))
        .route("/api/email/test", post(email_test))
}

/// These routes in the OpenAPI document (`crate::admin::openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(health, send, list, batch, get_one, resend, cancel, status, email_test))]
pub(super) struct Doc;

/// `GET /api/health`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    /// Always `ok`: the process answers.
    #[schema(example = "ok")]
    status: &'static str,
    version: &'static str,
}

/// Whether the process answers, and its version; no token needed.
#[utoipa::path(get, path = "/api/health", tag = "status",
    responses((status = 200, description = "pasarela answers", body = Health)))]
pub async fn health() -> impl IntoResponse {
    Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
    })
}

/// `202` answer of `POST /api/messages`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Accepted {
    /// The message's id (`GET /api/messages/{id}`).
    id: i64,
    /// `queued`, `scheduled` (its delivery window is closed) or `cancelled` (the number sent BAJA).
    state: MsgState,
}

/// `202` answer of `POST /api/messages/batch`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct BatchAccepted {
    /// The messages' ids, in the order they were sent.
    ids: Vec<i64>,
    /// `scheduled` when every message waits for a window, else `queued`.
    state: MsgState,
    count: usize,
    queued: usize,
    scheduled: usize,
    cancelled: usize,
}

/// A page of `GET /api/messages`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct MessagePage {
    messages: Vec<MessageView>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    next_cursor: Option<String>,
}

/// `POST /api/messages` body.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    /// A phone number in any local style (`+54 9 11 2345-6789`, `011 15-2345-6789`), or an
    /// email address for `"channel": "email"`.
    pub to: String,
    #[serde(default)]
    pub text: String,
    /// A WhatsApp template instead of `text` (`"channel": "whatsapp"` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<crate::transport::whatsapp::templates::TemplateMessage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<Channel>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<Priority>,
    /// Delivery window (`laboral`, `always`…); default by priority from `[windows]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
    /// Email: the subject (required for email).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Email: an HTML alternative of `text`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    /// Email: `facturas`, `tickets`, `clientes` or `todo` (default), which picks the account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub area: Option<String>,
    /// Email: files by URL or inline base64.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<crate::transport::email::api::AttachmentRequest>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct BatchRequest {
    /// 1 to 10,000 messages.
    messages: Vec<SendRequest>,
}

/// A message as the API shows it: times in RFC 3339 (UTC).
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct MessageView {
    pub id: i64,
    pub direction: Direction,
    pub channel: Channel,
    pub transport: Option<String>,
    pub peer: String,
    pub text: String,
    pub state: MsgState,
    pub priority: Priority,
    pub attempts: u32,
    pub next_attempt_at: Option<String>,
    pub last_error: Option<String>,
    pub provider_ref: Option<String>,
    pub customer_id: Option<i64>,
    pub created_at: String,
    pub updated_at: String,
    pub sent_at: Option<String>,
    pub delivered_at: Option<String>,
    /// Email: subject, account, whether it has HTML, attachments' names and sizes; on a single
    /// message's view also `smtp`, the server's answer once it accepted the mail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub email: Option<serde_json::Value>,
}

impl From<Message> for MessageView {
    fn from(m: Message) -> MessageView {
        let (text, email) = match m.channel {
            Channel::Email => crate::transport::email::stored::summary(&m.body),
            _ => (m.body, None),
        };
        MessageView {
            id: m.id.0,
            direction: m.direction,
            channel: m.channel,
            transport: m.transport,
            peer: m.peer,
            text,
            state: m.state,
            priority: m.priority,
            attempts: m.attempts,
            next_attempt_at: m.next_attempt_at.map(rfc3339),
            last_error: m.last_error,
            provider_ref: m.provider_ref,
            customer_id: m.customer_id,
            created_at: rfc3339(m.created_at),
            updated_at: rfc3339(m.updated_at),
            sent_at: m.sent_at.map(rfc3339),
            delivered_at: m.delivered_at.map(rfc3339),
            email,
        }
    }
}

/// Checks one request; `prefix` is the field path of the item (`""` or `messages[3].`).
fn validate(
    phones: &crate::phone::PhoneContext,
    max_parts: usize,
    req: &SendRequest,
    prefix: &str,
) -> Result<NewOutbound, (String, String)> {
    let channel = req.channel.unwrap_or(Channel::Sms);
    if channel == Channel::Email {
        return Err((
            format!("{prefix}channel"),
            "email goes one message at a time through POST /api/messages".into(),
        ));
    }
    for (field, set) in [
        ("subject", req.subject.is_some()),
        ("html", req.html.is_some()),
        ("area", req.area.is_some()),
        ("attachments", !req.attachments.is_empty()),
    ] {
        if set {
            return Err((
                format!("{prefix}{field}"),
                "only applies with \"channel\": \"email\"".into(),
            ));
        }
    }
    if channel == Channel::Whatsapp {
        return validate_whatsapp(phones, req, prefix);
    }
    if req.template.is_some() {
        return Err((
            format!("{prefix}template"),
            "templates go on the whatsapp channel only; add \"channel\": \"whatsapp\"".into(),
        ));
    }
    if channel != Channel::Sms {
        return Err((
            format!("{prefix}channel"),
            format!("the {channel} channel is not available in this version; use \"sms\""),
        ));
    }
    let peer = phones
        .normalize(&req.to)
        .map_err(|e| (format!("{prefix}to"), e.to_string()))?;
    let text_field = format!("{prefix}text");
    if req.text.trim().is_empty() {
        return Err((text_field, "must not be empty".into()));
    }
    let opts = crate::sms::SubmitOptions {
        max_parts,
        ..Default::default()
    };
    let info = crate::sms::segment::analyze(&req.text, &opts)
        .map_err(|e| (text_field.clone(), e.to_string()))?;
    if !info.within_limit {
        return Err((
            text_field,
            format!(
                "is {} characters, {info}; the limit is {max_parts} parts (dispatch.max_parts)",
                info.chars
            ),
        ));
    }
    Ok(NewOutbound {
        channel,
        peer: peer.as_str().to_string(),
        body: req.text.clone(),
        priority: req.priority.unwrap_or(Priority::Notification),
        customer_id: None,
        window: None,
        not_before: None,
    })
}

/// Checks a WhatsApp message: `text` (a session message) or `template`, not both.
fn validate_whatsapp(
    phones: &crate::phone::PhoneContext,
    req: &SendRequest,
    prefix: &str,
) -> Result<NewOutbound, (String, String)> {
    let peer = phones
        .normalize(&req.to)
        .map_err(|e| (format!("{prefix}to"), e.to_string()))?;
    let body = match (&req.template, req.text.trim().is_empty()) {
        (Some(_), false) => {
            return Err((
                format!("{prefix}template"),
                "give either text or template, not both".into(),
            ));
        }
        (None, true) => {
            return Err((
                format!("{prefix}text"),
                "must not be empty (or give a template)".into(),
            ));
        }
        (Some(t), true) => {
            t.check(&format!("{prefix}template."))?;
            crate::transport::whatsapp::templates::encode(t)
        }
        (None, false) => {
            if req.text.chars().count() > 4096 {
                return Err((
                    format!("{prefix}text"),
                    "is longer than 4096 characters, WhatsApp's limit".into(),
                ));
            }
            if req
                .text
                .starts_with(crate::transport::whatsapp::templates::PREFIX)
            {
                return Err((
                    format!("{prefix}text"),
                    "must not start with the stored template marker; use template".into(),
                ));
            }
            req.text.clone()
        }
    };
    Ok(NewOutbound {
        channel: Channel::Whatsapp,
        peer: peer.as_str().to_string(),
        body,
        priority: req.priority.unwrap_or(Priority::Notification),
        customer_id: None,
        window: None,
        not_before: None,
    })
}

/// Sets the delivery window of a validated message (`prefix` as in [`validate`]).
fn place(
    state: &AppState,
    mut item: NewOutbound,
    window: Option<&str>,
    prefix: &str,
    now: i64,
) -> Result<NewOutbound, (String, String)> {
    if let Some(w) = window {
        state
            .rules
            .windows()
            .check_name(w)
            .map_err(|e| (format!("{prefix}window"), e))?;
    }
    item.window = state.rules.window_for(item.priority, window);
    item.not_before = state.rules.not_before(item.window.as_deref(), now);
    Ok(item)
}

/// Queues one message.
#[utoipa::path(post, path = "/api/messages", tag = "messages", request_body = SendRequest,
    responses(
        (status = 202, description = "queued (or scheduled, or cancelled for a number that sent BAJA)", body = Accepted),
        (status = 400, description = "a field is wrong (`invalid_field` names it) or the body is not JSON", body = crate::jsonapi::ErrorEnvelope),
    ))]
async fn send(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<SendRequest, SINGLE_LIMIT>,
) -> Result<impl IntoResponse, ApiError> {
    let max_parts = state.dispatch_config.max_parts as usize;
    let item = if req.channel == Some(Channel::Email) {
        email_item(&state, &req).await?
    } else {
        validate(&state.phones, max_parts, &req, "").map_err(|(f, m)| ApiError::field(f, m))?
    };
    if item.channel != Channel::Sms && !state.transports.iter().any(|t| t.channel() == item.channel)
    {
        return Err(ApiError::field(
            "channel",
            format!(
                "the {} channel is not configured (add its table to the config)",
                item.channel
            ),
        ));
    }
    let item = place(&state, item, req.window.as_deref(), "", now_ms())
        .map_err(|(f, m)| ApiError::field(f, m))?;
    let placed = state.store.enqueue_placed(vec![item]).await?;
    let (id, msg_state) = placed[0];
    state.dispatch.wake();
    log::debug!(msg_id = id.0; "message {id} {msg_state} by the API");
    Ok((
        StatusCode::ACCEPTED,
        Json(Accepted {
            id: id.0,
            state: msg_state,
        }),
    ))
}

/// An email request, checked (attachments fetched) and addressed to its area's account.
async fn email_item(state: &AppState, req: &SendRequest) -> Result<NewOutbound, ApiError> {
    let p = crate::transport::email::api::prepare(
        &state.transports,
        &req.to,
        req.subject.as_deref(),
        &req.text,
        req.html.as_deref(),
        req.area.as_deref(),
        &req.attachments,
        "",
    )
    .await
    .map_err(|(f, m)| ApiError::field(f, m))?;
    Ok(NewOutbound {
        channel: Channel::Email,
        peer: p.to,
        body: p.body,
        priority: req.priority.unwrap_or(Priority::Notification),
        customer_id: None,
        window: None,
        not_before: None,
    })
}

/// `POST /api/email/test` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct EmailTestRequest {
    /// The `[[email]]` account's name.
    account: String,
    #[serde(default)]
    to: Option<String>,
}

/// Sends a test mail now (not queued) and answers the SMTP outcome.
#[utoipa::path(post, path = "/api/email/test", tag = "email", request_body = EmailTestRequest,
    responses(
        (status = 200, description = "the SMTP server accepted the mail", body = crate::transport::email::api::TestOutcome),
        (status = 502, description = "the SMTP server refused it or could not be reached (`ok` is false, `smtp` says why)", body = crate::transport::email::api::TestOutcome),
    ))]
async fn email_test(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<EmailTestRequest, SINGLE_LIMIT>,
) -> Result<impl IntoResponse, ApiError> {
    let outcome =
        crate::transport::email::api::test_send(&state.transports, &req.account, req.to.as_deref())
            .await
            .map_err(|(f, m)| ApiError::field(f, m))?;
    log::info!(
        "test mail from {} to {}: {}",
        outcome.account,
        crate::logging::peer(&outcome.to),
        outcome.smtp
    );
    let code = if outcome.ok {
        StatusCode::OK
    } else {
        StatusCode::BAD_GATEWAY
    };
    Ok((code, Json(outcome)))
}

/// Queues up to 10,000 messages in one transaction: all or none.
#[utoipa::path(post, path = "/api/messages/batch", tag = "messages", request_body = BatchRequest,
    responses(
        (status = 202, description = "all queued", body = BatchAccepted),
        (status = 422, description = "`invalid_batch`: `items` lists each bad message; nothing was queued", body = crate::jsonapi::ErrorEnvelope),
    ))]
async fn batch(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<BatchRequest, BATCH_LIMIT>,
) -> Result<impl IntoResponse, ApiError> {
    let n = req.messages.len();
    if n == 0 {
        return Err(ApiError::field(
            "messages",
            "is empty; send 1 to 10000 messages",
        ));
    }
    if n > BATCH_MAX {
        return Err(ApiError::field(
            "messages",
            format!("has {n} messages; send at most {BATCH_MAX} per request"),
        ));
    }
    // Phone validation is the costly part (tens of µs a number): spread it over the cores,
    // off the async workers.
    let phones = state.phones.clone();
    let max_parts = state.dispatch_config.max_parts as usize;
    let ((items, errors), req) = tokio::task::spawn_blocking(move || {
        let out = validate_all(&phones, max_parts, &req.messages);
        (out, req)
    })
    .await
    .map_err(ApiError::internal)?;
    if !errors.is_empty() {
        let mut e = ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_batch",
            format!(
                "{} of {n} messages are invalid; nothing was queued",
                errors.len()
            ),
        );
        e.body.items = errors;
        return Err(e);
    }
    if items.len() != n {
        return Err(ApiError::internal(format!(
            "batch validation returned {} of {n} messages",
            items.len()
        )));
    }
    if let Some(index) = items.iter().position(|i| {
        i.channel != Channel::Sms && !state.transports.iter().any(|t| t.channel() == i.channel)
    }) {
        return Err(ApiError::field(
            format!("messages[{index}].channel"),
            format!(
                "the {} channel is not configured (add its table to the config); nothing was queued",
                items[index].channel
            ),
        ));
    }
    let now = now_ms();
    let mut placed_items = Vec::with_capacity(items.len());
    let mut errors = Vec::new();
    for (index, (item, r)) in items.into_iter().zip(&req.messages).enumerate() {
        match place(
            &state,
            item,
            r.window.as_deref(),
            &format!("messages[{index}]."),
            now,
        ) {
            Ok(i) => placed_items.push(i),
            Err((field, message)) => errors.push(ItemError {
                index,
                message: format!("{field}: {message}"),
                field,
            }),
        }
    }
    if !errors.is_empty() {
        let mut e = ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_batch",
            format!(
                "{} of {n} messages are invalid; nothing was queued",
                errors.len()
            ),
        );
        e.body.items = errors;
        return Err(e);
    }
    let placed = state.store.enqueue_placed(placed_items).await?;
    state.dispatch.wake();
    let count = |s: MsgState| placed.iter().filter(|(_, st)| *st == s).count();
    let (queued, scheduled, cancelled) = (
        count(MsgState::Queued),
        count(MsgState::Scheduled),
        count(MsgState::Cancelled),
    );
    log::info!(
        "batch of {n} messages accepted (ids {} to {}): {queued} queued, {scheduled} scheduled, {cancelled} cancelled (opted out)",
        placed[0].0,
        placed[n - 1].0
    );
    let overall = if scheduled == n {
        MsgState::Scheduled
    } else {
        MsgState::Queued
    };
    Ok((
        StatusCode::ACCEPTED,
        Json(BatchAccepted {
            ids: placed.iter().map(|(i, _)| i.0).collect(),
            state: overall,
            count: n,
            queued,
            scheduled,
            cancelled,
        }),
    ))
}

/// Validates every item of a batch, in parallel, keeping item order.
fn validate_all(
    phones: &crate::phone::PhoneContext,
    max_parts: usize,
    requests: &[SendRequest],
) -> (Vec<NewOutbound>, Vec<ItemError>) {
    validate_each(requests, |index, r| {
        validate(phones, max_parts, r, &format!("messages[{index}]."))
    })
}

/// Runs `check` on every item, spread over up to four threads. Every index ends up either in
/// the items (in order) or in the errors: a check that panics becomes that item's error, and
/// a worker lost some other way fails every item of its chunk, so nothing is dropped or
/// shifted and the caller can refuse the whole batch.
fn validate_each<F>(requests: &[SendRequest], check: F) -> (Vec<NewOutbound>, Vec<ItemError>)
where
    F: Fn(usize, &SendRequest) -> Result<NewOutbound, (String, String)> + Sync,
{
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(4);
    let chunk = requests.len().div_ceil(threads).max(1);
    let internal = |index: usize| ItemError {
        index,
        field: format!("messages[{index}]"),
        message: format!(
            "messages[{index}]: could not be validated (internal error, see the log); nothing was queued"
        ),
    };
    let check = &check;
    let results: Vec<Vec<Result<NewOutbound, ItemError>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = requests
            .chunks(chunk)
            .enumerate()
            .map(|(c, part)| {
                let handle = scope.spawn(move || {
                    part.iter()
                        .enumerate()
                        .map(|(i, r)| {
                            let index = c * chunk + i;
                            let checked =
                                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                    check(index, r)
                                }));
                            match checked {
                                Ok(Ok(item)) => Ok(item),
                                Ok(Err((field, message))) => Err(ItemError {
                                    index,
                                    message: format!("{field}: {message}"),
                                    field,
                                }),
                                Err(_) => {
                                    log::error!("batch: validating messages[{index}] panicked");
                                    Err(internal(index))
                                }
                            }
                        })
                        .collect::<Vec<_>>()
                });
                (c * chunk..c * chunk + part.len(), handle)
            })
            .collect();
        handles
            .into_iter()
            .map(|(range, h)| match h.join() {
                Ok(v) if v.len() == range.len() => v,
                _ => range.map(|i| Err(internal(i))).collect(),
            })
            .collect()
    });
    let mut items = Vec::with_capacity(requests.len());
    let mut errors = Vec::new();
    for r in results.into_iter().flatten() {
        match r {
            Ok(item) => items.push(item),
            Err(e) => errors.push(e),
        }
    }
    (items, errors)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// `in` or `out`.
    direction: Option<String>,
    /// `queued`, `sending`, `sent`, `delivered`, `failed`, `cancelled`, `scheduled`, `received`.
    state: Option<String>,
    /// `sms`, `whatsapp` or `email`.
    channel: Option<String>,
    /// A phone number (any form) or address.
    peer: Option<String>,
    /// Text search; ignores case and accents.
    q: Option<String>,
    /// RFC 3339, `2026-11-22` or Unix seconds.
    since: Option<String>,
    /// RFC 3339, `2026-11-22` or Unix seconds.
    until: Option<String>,
    /// 1 to 500 (default 50).
    limit: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

fn parse_enum<T>(
    field: &str,
    value: Option<&str>,
    parse: fn(&str) -> Option<T>,
    all: &[T],
) -> Result<Option<T>, ApiError>
where
    T: std::fmt::Display,
{
    match value {
        None | Some("") => Ok(None),
        Some(v) => parse(v).map(Some).ok_or_else(|| {
            let names: Vec<String> = all.iter().map(|t| t.to_string()).collect();
            ApiError::field(field, format!("`{v}` is not one of {}", names.join(", ")))
        }),
    }
}

/// Accepts RFC 3339 (`2026-11-22T10:00:00-03:00`), a date (`2026-11-22`, midnight UTC) or
/// Unix seconds.
fn parse_time(field: &str, value: Option<&str>) -> Result<Option<i64>, ApiError> {
    let Some(v) = value.filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(v) {
        return Ok(Some(t.timestamp_millis()));
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d") {
        return Ok(d
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc().timestamp_millis()));
    }
    if let Ok(secs) = v.parse::<i64>()
        && (0..=253_402_300_799).contains(&secs)
    {
        return Ok(Some(secs * 1000));
    }
    Err(ApiError::field(
        field,
        format!("`{v}` is not a time like 2026-11-22T10:00:00-03:00, 2026-11-22 or Unix seconds"),
    ))
}

/// The history, newest first.
#[utoipa::path(get, path = "/api/messages", tag = "messages", params(ListQuery),
    responses(
        (status = 200, description = "a page of messages", body = MessagePage),
        (status = 400, description = "a filter is wrong (`invalid_field`) or unknown (`invalid_query`)", body = crate::jsonapi::ErrorEnvelope),
    ))]
async fn list(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Query(q) = query
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", e.body_text()))?;
    let limit = match q.limit.as_deref() {
        None | Some("") => PAGE_DEFAULT,
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=PAGE_MAX).contains(n))
            .ok_or_else(|| {
                ApiError::field(
                    "limit",
                    format!("`{v}` is not a number from 1 to {PAGE_MAX}"),
                )
            })?,
    };
    let before = match q.cursor.as_deref() {
        None | Some("") => None,
        Some(v) => Some(MessageId(v.parse::<i64>().map_err(|_| {
            ApiError::field(
                "cursor",
                "is not a cursor returned by this API (next_cursor)",
            )
        })?)),
    };
    // A peer filter is normalized like a recipient when it is a phone number, so
    // `peer=1123456789` finds `+5491123456789`; anything else (a sender name) is taken as is.
    let peer = q.peer.as_deref().filter(|p| !p.is_empty()).map(|p| {
        state
            .phones
            .normalize(p)
            .map(|m| m.as_str().to_string())
            .unwrap_or_else(|_| p.to_string())
    });
    let filter = ListFilter {
        direction: parse_enum(
            "direction",
            q.direction.as_deref(),
            Direction::parse,
            Direction::ALL,
        )?,
        state: parse_enum("state", q.state.as_deref(), MsgState::parse, MsgState::ALL)?,
        channel: parse_enum(
            "channel",
            q.channel.as_deref(),
            Channel::parse,
            Channel::ALL,
        )?,
        peer,
        q: q.q.filter(|s| !s.is_empty()),
        since: parse_time("since", q.since.as_deref())?,
        until: parse_time("until", q.until.as_deref())?,
        manual: None,
        before,
        limit: limit + 1,
    };
    let mut rows = state.store.list(filter).await?;
    let next_cursor = if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        rows.last().map(|m| m.id.0.to_string())
    } else {
        None
    };
    let messages: Vec<MessageView> = rows.into_iter().map(MessageView::from).collect();
    Ok(Json(MessagePage {
        messages,
        next_cursor,
    }))
}

fn parse_id(raw: &str) -> Result<MessageId, ApiError> {
    raw.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .map(MessageId)
        .ok_or_else(|| ApiError::field("id", format!("`{raw}` is not a message id")))
}

/// One message.
#[utoipa::path(get, path = "/api/messages/{id}", tag = "messages",
    params(("id" = String, Path, description = "the message's id (a positive integer)")),
    responses(
        (status = 200, description = "the message", body = MessageView),
        (status = 400, description = "`id` is not a message id", body = crate::jsonapi::ErrorEnvelope),
        (status = 404, description = "no such message", body = crate::jsonapi::ErrorEnvelope),
    ))]
async fn get_one(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let m = state.store.get(parse_id(&id)?).await?;
    let answer = match m.channel {
        Channel::Email => state.store.answer(m.id).await?,
        _ => None,
    };
    let mut view = MessageView::from(m);
    // Email: the server's final answer to the accepted send (`250 2.0.0 Ok: queued as …`).
    if let (Some(serde_json::Value::Object(email)), Some(answer)) = (&mut view.email, answer) {
        email.insert("smtp".into(), answer.into());
    }
    Ok(Json(view))
}

/// A failed or cancelled message back to the queue; a sent one copied into a new message.
#[utoipa::path(post, path = "/api/messages/{id}/resend", tag = "messages",
    params(("id" = String, Path, description = "the message's id")),
    responses(
        (status = 202, description = "the message queued again (or its new copy)", body = MessageView),
        (status = 400, description = "`id` is not a message id", body = crate::jsonapi::ErrorEnvelope),
        (status = 404, description = "no such message", body = crate::jsonapi::ErrorEnvelope),
        (status = 409, description = "`conflict`: the message is still on its way", body = crate::jsonapi::ErrorEnvelope),
    ))]
async fn resend(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let m = state.store.resend(parse_id(&id)?).await?;
    state.dispatch.wake();
    Ok((StatusCode::ACCEPTED, Json(MessageView::from(m))))
}

/// Cancels a queued or scheduled message.
#[utoipa::path(post, path = "/api/messages/{id}/cancel", tag = "messages",
    params(("id" = String, Path, description = "the message's id")),
    responses(
        (status = 200, description = "the cancelled message", body = MessageView),
        (status = 400, description = "`id` is not a message id", body = crate::jsonapi::ErrorEnvelope),
        (status = 404, description = "no such message", body = crate::jsonapi::ErrorEnvelope),
        (status = 409, description = "`conflict`: already sent, failed or cancelled", body = crate::jsonapi::ErrorEnvelope),
    ))]
async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let m = state.store.cancel(parse_id(&id)?).await?;
    Ok(Json(MessageView::from(m)))
}

/// Version, uptime, queue depth by state, each route's health.
#[utoipa::path(get, path = "/api/status", tag = "status",
    responses((status = 200, description = "`{\"version\",\"uptime_secs\",\"queue\":{state: count},\"transports\":[{\"name\",\"channel\",\"up\",\"detail\",\"details\"}],\"dispatcher\":{\"alive\"}}`", body = StatusView)))]
async fn status(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let counts = state
        .store
        .count_by_state(vec![
            MsgState::Scheduled,
            MsgState::Queued,
            MsgState::Sending,
            MsgState::Failed,
        ])
        .await?;
    let queue = counts
        .into_iter()
        .map(|(s, n)| (s.as_str().to_string(), n))
        .collect();
    let transports = state
        .transports
        .iter()
        .map(|t| {
            let h = t.health();
            TransportStatus {
                name: t.name().to_string(),
                channel: t.channel(),
                up: h.up,
                detail: h.detail,
                details: t.details(),
            }
        })
        .collect();
    let heartbeat = state.dispatch.last_heartbeat();
    Ok(Json(StatusView {
        version: env!("CARGO_PKG_VERSION"),
        uptime_secs: state.started.elapsed().as_secs(),
        queue,
        transports,
        dispatcher: DispatcherStatus {
            alive: heartbeat > 0
                && now_ms() - heartbeat < crate::dispatch::ALIVE_WITHIN.as_millis() as i64,
        },
    }))
}

/// `GET /api/status`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct StatusView {
    version: &'static str,
    uptime_secs: u64,
    /// Messages by state: `scheduled`, `queued`, `sending`, `failed`.
    queue: std::collections::BTreeMap<String, u64>,
    /// Each route (modem, phone, provider, WhatsApp, email account).
    transports: Vec<TransportStatus>,
    dispatcher: DispatcherStatus,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TransportStatus {
    name: String,
    channel: Channel,
    /// Whether the route can send now.
    up: bool,
    /// Why, in words.
    detail: String,
    /// The kind's own figures (a modem's signal and operator…), when it has any.
    #[schema(value_type = Option<Object>)]
    details: Option<serde_json::Value>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct DispatcherStatus {
    /// Whether the dispatcher's loop ran recently.
    alive: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(i: usize) -> SendRequest {
        SendRequest {
            to: format!("+54911{:08}", 20_000_000 + i),
            text: format!("aviso {i}"),
            channel: None,
            priority: None,
            window: None,
            template: None,
            subject: None,
            html: None,
            area: None,
            attachments: Vec::new(),
        }
    }

    fn item(r: &SendRequest) -> NewOutbound {
        NewOutbound {
            channel: Channel::Sms,
            peer: r.to.clone(),
            body: r.text.clone(),
            priority: Priority::Bulk,
            customer_id: None,
            window: None,
            not_before: None,
        }
    }

    #[test]
    fn a_panicking_check_fails_its_own_item_and_shifts_nothing() {
        let requests: Vec<SendRequest> = (0..40).map(request).collect();
        let (items, errors) = validate_each(&requests, |i, r| {
            if i == 13 {
                panic!("a validation bug");
            }
            Ok(item(r))
        });
        assert_eq!(errors.iter().map(|e| e.index).collect::<Vec<_>>(), [13]);
        assert!(errors[0].message.contains("internal error"), "{errors:?}");
        let bodies: Vec<String> = items.into_iter().map(|m| m.body).collect();
        let others: Vec<String> = (0..40)
            .filter(|&i| i != 13)
            .map(|i| format!("aviso {i}"))
            .collect();
        assert_eq!(bodies, others, "every other item, in order");
        // Plain validation errors keep their index too, across chunks.
        let (items, errors) = validate_each(&requests, |i, r| {
            if i % 10 == 9 {
                Err((format!("messages[{i}].to"), "is not a number".into()))
            } else {
                Ok(item(r))
            }
        });
        assert_eq!(items.len(), 36);
        assert_eq!(
            errors.iter().map(|e| e.index).collect::<Vec<_>>(),
            [9, 19, 29, 39]
        );
    }
}
