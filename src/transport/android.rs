//! An Android phone running "SMS Gateway for Android" (capcom6/android-sms-gateway) with its
//! Local Server on: the [`AndroidTransport`] the dispatcher sends through, and the
//! [`PhoneTask`] that checks the phone's health and keeps pasarela's webhooks registered on it.
//! Webhooks the phone calls back are served by [`webhook`].
//!
//! Requests and answers follow the app's published OpenAPI document (`smsgateway.Message`,
//! `smsgateway.GetMessageResponse`, `smsgateway.Webhook`, `smsgateway.HealthResponse`). The
//! document names the message routes `/messages`; the app's Local Server serves the same routes
//! as `/message` too, and versions before the alias only as `/message`, so that is the path used:
//! `POST /message` with our own `id` (`pasarela-<install tag>-<message id>`), so a request
//! repeated after a crash or a lost answer is refused by the phone with 409 instead of sending
//! the SMS twice; `GET /message/{id}` for its state (`Pending → Processed → Sent → Delivered |
//! Failed`); `GET /health` (no auth; an unhealthy app answers 500 or 503 with the same body);
//! `GET`/`POST`/`DELETE /webhooks`.
//!
//! Every answer the phone gives that is not clearly the app's (HTML, a redirect, a timeout, a
//! 5xx) is a temporary error: retrying is always safe because the id makes it idempotent.

pub mod webhook;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::config::{AndroidConfig, Inbound};
use crate::logging::peer as shown_peer;
use crate::model::{MessageId, NewInbound, StatusUpdate, now_ms};
use crate::phone::PhoneContext;
use crate::shutdown::Shutdown;
use crate::transport::sink::SinkError;
use crate::transport::{
    BoxFuture, Channel, Health, Outgoing, SendReceipt, Sink, Transport, TransportError,
};

/// Requests the phone may have in flight from us at once. The app queues messages itself;
/// a few in flight keep it busy without flooding it.
const CAPACITY: usize = 4;
/// Longest answer body read from the phone; the app's answers are a few hundred bytes.
const MAX_ANSWER: usize = 64 * 1024;
/// After the phone accepted a message, how long `send` follows its state before leaving the
/// rest to webhooks.
const FOLLOW_FOR: Duration = Duration::from_secs(20);
const FOLLOW_EVERY: Duration = Duration::from_millis(250);
/// The events pasarela registers, and the suffix of each registration's id.
pub const EVENTS: [(&str, &str); 4] = [
    ("sms:received", "received"),
    ("sms:sent", "sent"),
    ("sms:delivered", "delivered"),
    ("sms:failed", "failed"),
];
/// Each health round asks the phone for the state of at most this many messages still
/// waiting for a delivery report (webhooks can be missed: the app gives up after its retries).
const FOLLOW_UP_BATCH: u32 = 20;
/// Messages older than this are no longer followed up.
const FOLLOW_UP_FOR_MS: i64 = 24 * 3600 * 1000;
/// Keyed-state key (plus the route name) of the inbox cursor: the newest `createdAt` (Unix ms,
/// by the phone's clock, never ahead of ours) of the SMS stored from the phone's inbox.
const INBOX_CURSOR_KEY: &str = "android_inbox_cursor:";
/// Each read asks again for this much before the cursor: messages the phone stamped a little
/// earlier than ones already read (its clock stepped back) are still found; ids dedupe them.
const INBOX_OVERLAP_MS: i64 = 15 * 60 * 1000;
/// Without a cursor (the first read), how far back the inbox is read: older texts are not
/// answered hours late.
const INBOX_FIRST_LOOK_MS: i64 = 60 * 60 * 1000;
/// `to` of a read is this far past both clocks' now, so a phone whose clock runs ahead is read too.
const INBOX_AHEAD_MS: i64 = 7 * 24 * 3600 * 1000;
/// Messages per `GET /inbox` page (the app allows 1-500) and pages per read.
const INBOX_PAGE: usize = 100;
const INBOX_PAGES: usize = 20;
/// Ids remembered between reads so the overlap costs no database write; forgotten past this.
const INBOX_REMEMBER: usize = 10_000;
/// `meta` key of the random tag that makes our message ids unique to this database, so a
/// reinstalled pasarela (ids starting at 1 again) never collides with ids the phone remembers.
const ID_TAG_KEY: &str = "android_id_tag";

/// What `GET /api/status` shows of a phone.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct PhoneStatus {
    pub up: bool,
    pub detail: String,
    pub url: String,
    /// The app's version, from `GET /health`.
    pub app_version: Option<String>,
    /// `registered`, `not configured`, or why registering failed.
    pub webhooks: String,
    /// How received SMS arrive: `webhooks`, `read from the phone's inbox`, or why the inbox
    /// cannot be read (an app without `GET /inbox`).
    pub inbox: String,
    /// Set when the phone refused our username/password; cleared by the next accepted request.
    #[serde(skip)]
    pub auth_refused: bool,
}

/// State shared by the transport, the health task and the webhook handler.
pub struct Phone {
    pub cfg: AndroidConfig,
    base: String,
    client: reqwest::Client,
    status: Mutex<PhoneStatus>,
    sink: Sink,
    phones: PhoneContext,
    tag: tokio::sync::OnceCell<String>,
}

impl Phone {
    pub fn name(&self) -> &str {
        &self.cfg.name
    }

    pub fn status(&self) -> PhoneStatus {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn update(&self, f: impl FnOnce(&mut PhoneStatus)) {
        if let Ok(mut s) = self.status.lock() {
            f(&mut s);
        }
    }

    /// The prefix of every message id we give this phone: `pasarela-<tag>-`.
    pub async fn id_prefix(&self) -> Result<&str, SinkError> {
        self.tag
            .get_or_try_init(|| async {
                let fresh = i64::from(u32::from_le_bytes(random_bytes()) & 0x00ff_ffff);
                let tag = self.sink.state().get_or_init(ID_TAG_KEY, fresh).await?;
                Ok(format!("pasarela-{tag:06x}-"))
            })
            .await
            .map(String::as_str)
    }

    /// Our message id as the app knows it.
    pub async fn app_id(&self, id: MessageId) -> Result<String, SinkError> {
        Ok(format!("{}{id}", self.id_prefix().await?))
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base))
            .basic_auth(&self.cfg.username, Some(self.cfg.password.expose()))
    }

    /// Sends a request and reads the answer (capped). A failure to get any answer marks the
    /// phone down at once, so the dispatcher stops using it before the next health check.
    async fn call(&self, req: reqwest::RequestBuilder, authed: bool) -> Result<Answer, String> {
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                let why = no_answer(&self.base, &e);
                self.update(|s| {
                    s.up = false;
                    s.detail = why.clone();
                });
                return Err(why);
            }
        };
        let status = resp.status();
        let location = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = crate::net::http::read_capped(resp, MAX_ANSWER)
            .await
            .map_err(|e| format!("the phone's answer: {e}"))?;
        let refused = status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN;
        if authed && refused {
            self.update(|s| s.auth_refused = true);
        } else if authed && (status.is_success() || status == StatusCode::CONFLICT) {
            self.update(|s| s.auth_refused = false);
        }
        Ok(Answer {
            status,
            location,
            body,
        })
    }

    /// `POST /message`, then follows the state for a while. See the module doc.
    async fn send(&self, message: &Outgoing) -> Result<SendReceipt, TransportError> {
        let text = crate::transport::sms_text(message)?;
        let app_id = self
            .app_id(message.id)
            .await
            .map_err(|e| TransportError::Temporary(e.to_string()))?;
        let mut body = json!({
            "id": app_id,
            "textMessage": {"text": text},
            "phoneNumbers": [message.to],
            "withDeliveryReport": self.cfg.delivery_reports,
        });
        if let Some(sim) = self.cfg.sim {
            body["simNumber"] = json!(sim);
        }
        let path = if self.cfg.skip_phone_validation {
            "/message?skipPhoneValidation=true"
        } else {
            "/message"
        };
        let answer = self
            .call(self.request(Method::POST, path).json(&body), true)
            .await
            .map_err(TransportError::Temporary)?;
        let state = match answer.status.as_u16() {
            202 => match answer.json::<MessageState>() {
                Some(m) => m.overall(),
                None => {
                    return Err(TransportError::Temporary(format!(
                        "the phone answered 202 but not with the app's JSON ({}); check android.url",
                        answer.snippet()
                    )));
                }
            },
            409 => {
                log::info!(
                    msg_id = message.id.0, transport = self.name();
                    "message {}: {} already has it (id {app_id}); not sent again",
                    message.id, self.name()
                );
                ProcessingState::Pending
            }
            _ => return Err(self.refusal(&answer)),
        };
        self.follow(&app_id, state).await
    }

    /// Maps an answer other than 202/409 to an error.
    fn refusal(&self, answer: &Answer) -> TransportError {
        let said = answer.error_message();
        match answer.status.as_u16() {
            400 => TransportError::Permanent(format!("the phone refused the message: {said}")),
            401 | 403 => TransportError::Temporary(format!(
                "the phone refused the username/password (android.username, android.password): {said}"
            )),
            300..=399 => TransportError::Temporary(format!(
                "the phone answered a redirect ({}) to {}; android.url must be the Local Server \
                 address the app shows",
                answer.status,
                answer.location.as_deref().unwrap_or("nowhere")
            )),
            503 => TransportError::Temporary(format!("the phone's queue is full: {said}")),
            _ => TransportError::Temporary(format!("the phone answered {}: {said}", answer.status)),
        }
    }

    /// Follows a message the phone accepted until it is sent, delivered or failed, for at most
    /// [`FOLLOW_FOR`]; a message still pending then counts as handed over (webhooks report
    /// the rest).
    async fn follow(
        &self,
        app_id: &str,
        mut state: ProcessingState,
    ) -> Result<SendReceipt, TransportError> {
        let receipt = SendReceipt {
            provider_ref: Some(app_id.to_string()),
            ..SendReceipt::default()
        };
        let deadline = tokio::time::Instant::now() + FOLLOW_FOR;
        let mut error = None;
        loop {
            match state {
                ProcessingState::Sent | ProcessingState::Delivered => return Ok(receipt),
                ProcessingState::Failed => {
                    return Err(TransportError::Permanent(format!(
                        "the phone could not send it: {}",
                        error.unwrap_or_else(|| "no reason given".to_string())
                    )));
                }
                ProcessingState::Pending | ProcessingState::Processed => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(receipt);
            }
            tokio::time::sleep(FOLLOW_EVERY).await;
            let path = format!("/message/{app_id}");
            match self.call(self.request(Method::GET, &path), true).await {
                Ok(a) if a.status == StatusCode::OK => match a.json::<MessageState>() {
                    Some(m) => {
                        error = m.error();
                        state = m.overall();
                    }
                    None => return Ok(receipt),
                },
                // The phone took the message; not knowing more is not a failure.
                _ => return Ok(receipt),
            }
        }
    }

    /// One health round: `GET /health`; when the phone is up, makes sure our webhooks are
    /// registered (and checks the credentials while at it).
    pub async fn check(&self) {
        let was_up = self.status().up;
        let health = self
            .call(self.client.get(format!("{}/health", self.base)), false)
            .await;
        let (up, detail, version) = match health {
            Err(why) => (false, why, None),
            Ok(a) => match a
                .json::<HealthResponse>()
                .filter(|h| matches!(h.status.as_deref(), Some("pass" | "warn" | "fail")))
            {
                None => (
                    false,
                    format!(
                        "{} answers {} but not as the SMS Gateway app ({}); check android.url",
                        self.base,
                        a.status,
                        a.snippet()
                    ),
                    None,
                ),
                Some(h) if a.status == StatusCode::OK && h.status.as_deref() != Some("fail") => {
                    (true, "the app answers".to_string(), h.version)
                }
                Some(h) => (
                    false,
                    format!("the app reports it is not ready: {}", h.failing_checks()),
                    h.version,
                ),
            },
        };
        self.update(|s| {
            s.up = up;
            s.detail = detail;
            if version.is_some() {
                s.app_version = version;
            }
        });
        if up && (!was_up || self.status().webhooks != "registered" || self.status().auth_refused) {
            self.sync_webhooks().await;
        }
    }

    /// Asks the phone for the state of messages it took that are still `sent`, a batch per
    /// call, going round them all; applies `Delivered` and `Failed`. Returns the last id seen
    /// (the cursor for the next call; `MessageId(0)` starts over).
    pub async fn follow_up(&self, after: MessageId) -> MessageId {
        let name = self.name().to_string();
        let since = now_ms() - FOLLOW_UP_FOR_MS;
        let ids = self
            .sink
            .records()
            .awaiting_report(&name, since, after, FOLLOW_UP_BATCH)
            .await;
        let ids = match ids {
            Ok(ids) => ids,
            Err(e) => {
                log::error!(transport = name.as_str(); "{name}: cannot read messages to follow up: {e:#}");
                return MessageId(0);
            }
        };
        let Some(last) = ids.last().copied() else {
            return MessageId(0);
        };
        for id in ids {
            let Ok(app_id) = self.app_id(id).await else {
                break;
            };
            let answer = self
                .call(
                    self.request(Method::GET, &format!("/message/{app_id}")),
                    true,
                )
                .await;
            let Ok(answer) = answer else { break };
            let Some(state) = answer
                .json::<MessageState>()
                .filter(|_| answer.status == StatusCode::OK)
            else {
                continue;
            };
            let update = match state.overall() {
                ProcessingState::Delivered => StatusUpdate::Delivered,
                ProcessingState::Failed => StatusUpdate::Failed {
                    reason: format!(
                        "the phone reports: {}",
                        state.error().unwrap_or_else(|| "failed".to_string())
                    ),
                },
                _ => continue,
            };
            match self
                .sink
                .records()
                .status_of(id, &name, &app_id, update)
                .await
            {
                Ok(true) => log::info!(
                    msg_id = id.0, transport = name.as_str();
                    "message {id}: {} reported by {name}", if matches!(state.overall(), ProcessingState::Delivered) { "delivered" } else { "failed" }
                ),
                Ok(false) => {}
                Err(e) => {
                    log::error!(msg_id = id.0; "message {id}: cannot record its state: {e:#}")
                }
            }
        }
        last
    }

    /// Registers our webhooks on the phone under fixed ids (the app replaces a registration
    /// with the same id), and deletes registrations of ours that are no longer wanted.
    async fn sync_webhooks(&self) {
        let name = self.name().to_string();
        let result = async {
            let listed = self
                .call(self.request(Method::GET, "/webhooks"), true)
                .await?;
            if !listed.status.is_success() {
                return Err(webhook_error(&listed));
            }
            let existing: Vec<WebhookReg> = listed.json().unwrap_or_default();
            let ours = format!("pasarela-{name}-");
            let polled = self.cfg.inbound == Inbound::Poll;
            let wanted: Vec<(String, &str)> = match &self.cfg.webhook_url {
                Some(_) => EVENTS
                    .iter()
                    .filter(|(event, _)| !(polled && *event == "sms:received"))
                    .map(|(event, short)| (format!("{ours}{short}"), *event))
                    .collect(),
                None => Vec::new(),
            };
            for old in existing.iter().filter_map(|w| w.id.as_deref()) {
                if old.starts_with(&ours) && !wanted.iter().any(|(id, _)| id == old) {
                    let a = self
                        .call(
                            self.request(Method::DELETE, &format!("/webhooks/{old}")),
                            true,
                        )
                        .await?;
                    if !a.status.is_success() {
                        return Err(webhook_error(&a));
                    }
                }
            }
            let Some(url) = &self.cfg.webhook_url else {
                return Ok("not configured".to_string());
            };
            for (id, event) in &wanted {
                let a = self
                    .call(
                        self.request(Method::POST, "/webhooks")
                            .json(&json!({"id": id, "url": url, "event": event})),
                        true,
                    )
                    .await?;
                if !a.status.is_success() {
                    return Err(webhook_error(&a));
                }
            }
            Ok("registered".to_string())
        }
        .await;
        match result {
            Ok(state) => {
                if state == "registered" && self.status().webhooks != "registered" {
                    log::info!(transport = name.as_str(); "{name}: webhooks registered on the phone");
                }
                self.update(|s| s.webhooks = state);
            }
            Err(why) => {
                let state = format!("not registered: {why}");
                // Tried again every health round; logged when the reason changes.
                if self.status().webhooks != state {
                    log::warn!(transport = name.as_str(); "{name}: cannot register webhooks: {why}");
                }
                self.update(|s| s.webhooks = state);
            }
        }
    }
}

impl Phone {
    /// The sender as stored: a normalized number, or the address as it came (alphanumeric
    /// senders such as `Personal`, short codes).
    pub fn inbound_peer(&self, from: &str) -> String {
        if from.chars().any(|c| c.is_alphabetic()) {
            return from.to_string();
        }
        self.phones
            .normalize(from)
            .map(|m| m.as_str().to_string())
            .unwrap_or_else(|_| from.to_string())
    }

    /// One read of the phone's inbox (`inbound = "poll"`): every SMS since the cursor (less an
    /// overlap) is stored once by its inbox id, oldest first, and the cursor then moves to the
    /// newest one stored. A row is committed before the cursor passes it; a failure stops the
    /// read and keeps the cursor at the last committed row. Returns how many were new.
    pub async fn poll_inbox(&self, seen: &mut InboxSeen) -> usize {
        let name = self.name().to_string();
        let result = self.read_inbox(seen).await;
        let state = match &result {
            Ok(_) => "read from the phone's inbox".to_string(),
            Err(why) => format!("cannot read the phone's inbox: {why}"),
        };
        if self.status().inbox != state {
            match &result {
                Ok(_) => {
                    log::info!(transport = name.as_str(); "{name}: reading received SMS from the phone's inbox")
                }
                Err(why) => {
                    log::warn!(transport = name.as_str(); "{name}: cannot read the phone's inbox: {why}")
                }
            }
        }
        self.update(|s| s.inbox = state);
        result.unwrap_or(0)
    }

    async fn read_inbox(&self, seen: &mut InboxSeen) -> Result<usize, String> {
        let name = self.name().to_string();
        let key = format!("{INBOX_CURSOR_KEY}{name}");
        let now = now_ms();
        let cursor = self
            .sink
            .state()
            .get(&key)
            .await
            .map_err(|e| e.to_string())?;
        let from = match cursor {
            Some(c) => c.min(now) - INBOX_OVERLAP_MS,
            None => now - INBOX_FIRST_LOOK_MS,
        };
        let to = now.max(from) + INBOX_AHEAD_MS;
        let mut items: Vec<InboxMessage> = Vec::new();
        for page in 0..INBOX_PAGES {
            let path = format!(
                "/inbox?type=SMS&from={}&to={}&limit={INBOX_PAGE}&offset={}",
                crate::jsonapi::rfc3339(from),
                crate::jsonapi::rfc3339(to),
                page * INBOX_PAGE
            );
            let a = self.call(self.request(Method::GET, &path), true).await?;
            match a.status.as_u16() {
                200 => {}
                404 | 405 | 501 => {
                    return Err(format!(
                        "the app has no inbox (GET /inbox answered {}); update SMS Gateway for \
                         Android to a version that serves it, or use inbound = \"webhook\"",
                        a.status
                    ));
                }
                _ => {
                    return Err(format!(
                        "GET /inbox answered {}: {}",
                        a.status,
                        a.error_message()
                    ));
                }
            }
            let got: Vec<InboxMessage> = a.json().ok_or_else(|| {
                format!("GET /inbox did not answer the app's JSON ({})", a.snippet())
            })?;
            let full = got.len() >= INBOX_PAGE;
            items.extend(got);
            if !full {
                break;
            }
        }
        items.sort_by_key(|m| m.created_ms().unwrap_or(i64::MAX));
        let mut newest = cursor;
        let mut stored = 0;
        let mut failure = None;
        for m in items {
            if m.kind.as_deref().is_some_and(|k| k != "SMS") {
                continue;
            }
            if m.id.is_empty()
                || m.id.len() > 200
                || m.sender.trim().is_empty()
                || m.sender.len() > 64
            {
                log::warn!(transport = name.as_str(); "{name}: an inbox entry without a usable id or sender was skipped");
                continue;
            }
            if !seen.ids.contains(&m.id) {
                let peer = self.inbound_peer(&m.sender);
                let stored_as = self
                    .sink
                    .records()
                    .inbound(NewInbound {
                        channel: Channel::Sms,
                        transport: name.clone(),
                        peer: peer.clone(),
                        body: m.content_preview.clone(),
                        provider_ref: Some(webhook_message_id(&m.id)),
                    })
                    .await;
                match stored_as {
                    Ok((msg, true)) => {
                        stored += 1;
                        log::info!(
                            msg_id = msg.0, channel = "sms", transport = name.as_str();
                            "message {msg} received from {} via {name} (inbox)", shown_peer(&peer)
                        );
                    }
                    Ok((_, false)) => {}
                    Err(e) => {
                        failure = Some(e.to_string());
                        break;
                    }
                }
                if seen.ids.len() >= INBOX_REMEMBER {
                    seen.ids.clear();
                }
                seen.ids.insert(m.id.clone());
            }
            if let Some(at) = m.created_ms() {
                newest = Some(newest.map_or(at, |n| n.max(at)));
            }
        }
        // Never ahead of our clock: a phone whose clock runs fast does not push the cursor past
        // messages it stamps once its clock is corrected.
        let newest = newest.map(|n| n.min(now));
        if newest.is_some() && newest != cursor {
            self.sink
                .state()
                .set(&key, newest)
                .await
                .map_err(|e| e.to_string())?;
        }
        match failure {
            Some(why) => Err(why),
            None => Ok(stored),
        }
    }
}

/// The id the app's `sms:received` webhook gives the SMS an inbox entry `id` names, so an SMS
/// that arrives both ways (a switch between `webhook` and `poll`) is stored once. The app keys
/// both on the same 32-bit hash: the inbox as `text:<signed decimal>`, the webhook as its
/// unsigned lowercase hex. Other ids are kept as they are.
pub fn webhook_message_id(inbox_id: &str) -> String {
    match inbox_id
        .strip_prefix("text:")
        .and_then(|n| n.parse::<i32>().ok())
    {
        Some(hash) => format!("{:x}", hash as u32),
        None => inbox_id.to_string(),
    }
}

/// Inbox ids already stored, remembered between reads of one phone.
#[derive(Debug, Default)]
pub struct InboxSeen {
    ids: std::collections::HashSet<String>,
}

/// `smsgateway.IncomingMessage` (the parts we read). For an SMS the app puts the whole text in
/// `contentPreview` (only data SMS and MMS get a shortened preview).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct InboxMessage {
    id: String,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    sender: String,
    content_preview: String,
    #[serde(default)]
    created_at: Option<String>,
}

impl InboxMessage {
    fn created_ms(&self) -> Option<i64> {
        let text = self.created_at.as_deref()?;
        chrono::DateTime::parse_from_rfc3339(text)
            .or_else(|_| chrono::DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z"))
            .ok()
            .map(|t| t.timestamp_millis())
    }
}

fn webhook_error(a: &Answer) -> String {
    format!("the phone answered {}: {}", a.status, a.error_message())
}

/// Why a request got no answer, for operators (the peer named by scheme, host and port).
fn no_answer(base: &str, e: &reqwest::Error) -> String {
    let what = crate::net::error::describe(base, e);
    if crate::net::error::is_tls(e) {
        format!("{what} (check the phone's certificate, or android.ca_file)")
    } else {
        format!(
            "{what} (is the app running with Local Server on? Android may have stopped it in \
             the background)"
        )
    }
}

/// An answer of the phone, body read.
struct Answer {
    status: StatusCode,
    location: Option<String>,
    body: Vec<u8>,
}

impl Answer {
    fn json<T: for<'de> Deserialize<'de>>(&self) -> Option<T> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The app's `ErrorResponse.message`, or a short, printable piece of the body.
    fn error_message(&self) -> String {
        #[derive(Deserialize)]
        struct ErrorResponse {
            message: Option<String>,
        }
        match self.json::<ErrorResponse>().and_then(|e| e.message) {
            Some(m) => crate::net::error::sanitize(&m.chars().take(300).collect::<String>()),
            None => self.snippet(),
        }
    }

    fn snippet(&self) -> String {
        if self.body.is_empty() {
            return "empty body".to_string();
        }
        let text: String = String::from_utf8_lossy(&self.body)
            .chars()
            .filter(|c| !c.is_control())
            .take(80)
            .collect();
        format!("body starts `{}`", crate::net::error::sanitize(&text))
    }
}

fn random_bytes() -> [u8; 4] {
    let mut b = [0u8; 4];
    let _ = getrandom::fill(&mut b);
    b
}

/// `smsgateway.ProcessingState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum ProcessingState {
    Pending,
    Processed,
    Sent,
    Delivered,
    Failed,
}

/// The parts of `smsgateway.GetMessageResponse` we read.
#[derive(Debug, Deserialize)]
struct MessageState {
    state: ProcessingState,
    #[serde(default)]
    recipients: Vec<RecipientState>,
}

/// `smsgateway.RecipientState`.
#[derive(Debug, Deserialize)]
struct RecipientState {
    state: ProcessingState,
    #[serde(default)]
    error: Option<String>,
}

impl MessageState {
    /// We send to one recipient: its state when present, else the message's.
    fn overall(&self) -> ProcessingState {
        self.recipients.first().map_or(self.state, |r| r.state)
    }

    fn error(&self) -> Option<String> {
        self.recipients.iter().find_map(|r| r.error.clone())
    }
}

/// `smsgateway.HealthResponse` (the parts we read).
#[derive(Debug, Deserialize)]
struct HealthResponse {
    status: Option<String>,
    version: Option<String>,
    #[serde(default)]
    checks: serde_json::Map<String, serde_json::Value>,
}

impl HealthResponse {
    fn failing_checks(&self) -> String {
        let failing: Vec<String> = self
            .checks
            .iter()
            .filter(|(_, c)| c["status"] != "pass")
            .map(|(name, c)| match c["description"].as_str() {
                Some(d) => format!("{name} ({d})"),
                None => name.clone(),
            })
            .collect();
        if failing.is_empty() {
            "no check named".to_string()
        } else {
            failing.join(", ")
        }
    }
}

/// `smsgateway.Webhook` (the parts we read).
#[derive(Debug, Deserialize)]
struct WebhookReg {
    id: Option<String>,
}

/// The dispatcher's side of a phone.
pub struct AndroidTransport {
    phone: Arc<Phone>,
}

impl Transport for AndroidTransport {
    fn name(&self) -> &str {
        self.phone.name()
    }

    fn channel(&self) -> Channel {
        Channel::Sms
    }

    fn capacity(&self) -> usize {
        CAPACITY
    }

    fn health(&self) -> Health {
        let s = self.phone.status();
        if s.up && s.auth_refused {
            return Health {
                up: false,
                detail: "the phone refused the username/password (android.username, \
                         android.password)"
                    .to_string(),
            };
        }
        Health {
            up: s.up,
            detail: s.detail,
        }
    }

    fn details(&self) -> Option<serde_json::Value> {
        serde_json::to_value(self.phone.status()).ok()
    }

    fn send<'a>(
        &'a self,
        message: &'a Outgoing,
    ) -> BoxFuture<'a, Result<SendReceipt, TransportError>> {
        Box::pin(async move {
            let result = self.phone.send(message).await;
            if let Err(e) = &result {
                log::debug!(
                    msg_id = message.id.0, transport = self.phone.name();
                    "message {} to {} on {}: {e}", message.id, shown_peer(&message.to), self.phone.name()
                );
            }
            result
        })
    }
}

/// The phone's background task: health checks and webhook registration.
pub struct PhoneTask {
    phone: Arc<Phone>,
}

impl PhoneTask {
    /// Checks the phone every `health_interval_secs` until `shutdown`, wakes the dispatcher
    /// when the phone comes back, and follows up messages still waiting for a delivery report.
    pub async fn run(&self, mut shutdown: Shutdown) -> anyhow::Result<()> {
        let health_every = Duration::from_secs(self.phone.cfg.health_interval_secs);
        let polled = self.phone.cfg.inbound == Inbound::Poll;
        let every = if polled {
            health_every.min(Duration::from_secs(
                self.phone.cfg.poll_interval_secs.max(1),
            ))
        } else {
            health_every
        };
        let mut cursor = MessageId(0);
        let mut seen = InboxSeen::default();
        let mut last_health: Option<tokio::time::Instant> = None;
        while !shutdown.is_triggered() {
            if last_health.is_none_or(|t| t.elapsed() >= health_every) {
                last_health = Some(tokio::time::Instant::now());
                let was_up = self.phone.status().up;
                self.phone.check().await;
                let status = self.phone.status();
                if status.up && !was_up {
                    self.phone.sink.came_up();
                }
                if status.up && self.phone.cfg.delivery_reports {
                    cursor = self.phone.follow_up(cursor).await;
                }
            }
            if polled && self.phone.status().up {
                self.phone.poll_inbox(&mut seen).await;
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.wait() => {}
            }
        }
        Ok(())
    }
}

/// Builds a phone's shared state, its transport and its task.
pub fn phone(
    cfg: AndroidConfig,
    sink: Sink,
    phones: PhoneContext,
) -> anyhow::Result<(Arc<Phone>, AndroidTransport, PhoneTask)> {
    let client = crate::net::http::client(
        &crate::net::http::ClientOptions::new(Duration::from_secs(cfg.request_timeout_secs))
            .ca_file(cfg.ca_file.as_deref()),
    )
    .map_err(|e| anyhow::anyhow!("android.ca_file: {e}"))?;
    let base = cfg.url.trim_end_matches('/').to_string();
    let phone = Arc::new(Phone {
        status: Mutex::new(PhoneStatus {
            up: false,
            detail: "starting".to_string(),
            url: base.clone(),
            webhooks: if cfg.webhook_url.is_some() {
                "not registered yet".to_string()
            } else {
                "not configured".to_string()
            },
            inbox: match cfg.inbound {
                Inbound::Poll => "not read yet".to_string(),
                Inbound::Webhook if cfg.webhook_url.is_some() => "webhooks".to_string(),
                Inbound::Webhook => "not received (no webhook_url)".to_string(),
            },
            ..Default::default()
        }),
        cfg,
        base,
        client,
        sink,
        phones,
        tag: tokio::sync::OnceCell::new(),
    });
    Ok((
        phone.clone(),
        AndroidTransport {
            phone: phone.clone(),
        },
        PhoneTask { phone },
    ))
}

/// `[[android]]`: one route and one supervised health task per phone; phones with
/// `webhook_url` take webhooks at `/webhooks/android/<name>`.
pub struct AndroidKind;
pub const KIND: AndroidKind = AndroidKind;

impl super::kind::Kind for AndroidKind {
    fn name(&self) -> &'static str {
        "android"
    }

    fn check(&self, c: &crate::config::Config) -> Vec<(String, String)> {
        use crate::config::http_url;
        let mut errors = Vec::new();
        let webhook_listen = c.webhooks.listen.as_deref();
        for a in &c.androids {
            let at = |key: &str| format!("android.{key}");
            if !http_url(&a.url) {
                errors.push((
                    at("url"),
                    format!(
                        "`{}` must be the app's Local Server address like http://192.168.1.50:8080 \
                         (or an https:// address: its Cloud/Private server)",
                        a.url
                    ),
                ));
            }
            if a.ca_file.is_some() && !a.url.starts_with("https://") {
                errors.push((at("ca_file"), "only applies to an https:// url".to_string()));
            }
            if a.password.expose().is_empty() {
                errors.push((
                    at("password"),
                    "must be the Local Server password the app shows".to_string(),
                ));
            }
            if a.sim.is_some_and(|s| !(1..=3).contains(&s)) {
                errors.push((at("sim"), "must be 1, 2 or 3".to_string()));
            }
            if a.health_interval_secs == 0 || a.health_interval_secs > 3600 {
                errors.push((
                    at("health_interval_secs"),
                    format!("{} is out of range: use 1 to 3600", a.health_interval_secs),
                ));
            }
            if a.request_timeout_secs == 0 || a.request_timeout_secs > 300 {
                errors.push((
                    at("request_timeout_secs"),
                    format!("{} is out of range: use 1 to 300", a.request_timeout_secs),
                ));
            }
            if a.inbound == Inbound::Poll
                && (a.poll_interval_secs == 0 || a.poll_interval_secs > 3600)
            {
                errors.push((
                    at("poll_interval_secs"),
                    format!("{} is out of range: use 1 to 3600", a.poll_interval_secs),
                ));
            }
            match &a.webhook_url {
                Some(url) => {
                    let path = format!("/webhooks/android/{}", a.name);
                    if !http_url(url) || !url.trim_end_matches('/').ends_with(&path) {
                        errors.push((
                            at("webhook_url"),
                            format!(
                                "`{url}` must be the address the phone can reach, like \
                                 https://gw.isp.example:8090{path} (the app takes https only, \
                                 but http://127.0.0.1)"
                            ),
                        ));
                    }
                    if a.signing_key.as_ref().is_none_or(|k| k.expose().len() < 8) {
                        errors.push((
                            at("signing_key"),
                            "must be set to the app's webhook signing key (8+ characters) when \
                             webhook_url is set"
                                .to_string(),
                        ));
                    }
                    if webhook_listen.is_none() {
                        errors.push((
                            at("webhook_url"),
                            "needs `listen = \"0.0.0.0:8090\"` under [webhooks]: the listener \
                             the phone calls"
                                .to_string(),
                        ));
                    }
                }
                None if a.signing_key.is_some() => errors.push((
                    at("signing_key"),
                    "is set but webhook_url is not: set both or neither".to_string(),
                )),
                None => {}
            }
        }
        errors
    }

    fn build(&self, cx: &super::kind::BuildContext<'_>) -> anyhow::Result<super::kind::Built> {
        use anyhow::Context;
        let mut built = super::kind::Built::default();
        let mut hooked = std::collections::HashMap::new();
        for cfg in &cx.config.androids {
            let (phone, transport, task) =
                phone(cfg.clone(), cx.sink.clone(), cx.phones.clone())
                    .with_context(|| format!("cannot set up the phone {}", cfg.name))?;
            if cfg.webhook_url.is_some() {
                hooked.insert(cfg.name.clone(), phone);
            }
            built.transports.push(Arc::new(transport));
            built.tasks.push(super::kind::Task::new(
                "phone",
                Arc::new(task),
                |task, stop| async move { task.run(stop).await },
            ));
        }
        if !hooked.is_empty() {
            built.webhooks = Some(webhook::router(webhook::WebhookState {
                routes: Arc::new(hooked),
            }));
        }
        Ok(built)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_parse_as_the_spec_spells_them() {
        let m: MessageState = serde_json::from_str(
            r#"{"id":"x","deviceId":"d","state":"Processed","recipients":[{"phoneNumber":"+5491123456789","state":"Failed","error":"RESULT_ERROR_GENERIC_FAILURE"}]}"#,
        )
        .unwrap();
        assert_eq!(m.overall(), ProcessingState::Failed);
        assert_eq!(m.error().as_deref(), Some("RESULT_ERROR_GENERIC_FAILURE"));
        assert!(serde_json::from_str::<MessageState>(r#"{"state":"Lost"}"#).is_err());
    }

    #[test]
    fn inbox_entries_parse_as_the_app_writes_them() {
        let list: Vec<InboxMessage> = serde_json::from_str(
            r#"[{"id":"text:-1795","type":"SMS","sender":"+5491123456789","recipient":null,
                 "simNumber":1,"contentPreview":"Saldo","createdAt":"2026-11-22T12:00:00.250-03:00"},
                {"id":"text:7","type":"SMS","sender":"Personal","contentPreview":"x",
                 "createdAt":"2026-11-22T15:00:00Z"},
                {"id":"text:8","type":"SMS","sender":"1","contentPreview":"y",
                 "createdAt":"yesterday"}]"#,
        )
        .unwrap();
        assert_eq!(list[0].created_ms(), Some(1_795_359_600_250));
        assert_eq!(list[1].created_ms(), Some(1_795_359_600_000));
        assert_eq!(list[2].created_ms(), None);
        assert_eq!(list[0].content_preview, "Saldo");
    }

    #[test]
    fn inbox_ids_become_the_webhook_ids_of_the_same_sms() {
        assert_eq!(webhook_message_id("text:-1795"), "fffff8fd");
        assert_eq!(webhook_message_id("text:1001"), "3e9");
        assert_eq!(webhook_message_id("text:0"), "0");
        assert_eq!(webhook_message_id("text:99999999999"), "text:99999999999");
        assert_eq!(webhook_message_id("mms:12"), "mms:12");
    }

    #[test]
    fn failing_health_checks_are_named() {
        let h: HealthResponse = serde_json::from_str(
            r#"{"status":"fail","version":"1.30.0","checks":{"battery:level":{"status":"pass"},"connection:status":{"status":"fail","description":"Internet connection status"}}}"#,
        )
        .unwrap();
        assert_eq!(
            h.failing_checks(),
            "connection:status (Internet connection status)"
        );
    }
}
