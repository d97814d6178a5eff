//! `[[http_sms]]`: an SMS route that is one templated HTTP request per message, for phone apps
//! with a plain `GET http://IP:PORT/…?phone=…&message=…` API and HTTP SMS providers like them.
//!
//! The URL and each parameter value are templates over `{phone}`, `{message}` and `{id}`.
//! GET puts the parameters in the query; POST sends them as a form or a JSON object. A 2xx
//! answer (whose body holds `success_contains`, when set) is a send; 4xx answers are refusals
//! (but 408 and 429, which ask to come back later); other answers are temporary errors.
//! These APIs have no idempotency key, so a message is resent only when the request provably
//! never reached the provider (no connection: refused, DNS, TLS handshake). A 2xx without
//! `success_contains`, an answer cut off, or no answer after the request went out is
//! sent-but-unconfirmed: counted as sent, never resent, the reason kept with the message.
//!
//! A route may name a `provider` preset ([`preset`]), write `{phone}` as the national number,
//! percent-encode in ISO-8859-1 ([`encode`]), read the provider's answer by its own patterns
//! (`[http_sms.answer]`), take the provider's pushes of received SMS ([`webhook`], at
//! `/webhooks/http_sms/<name>`) or read them by PULL ([`pull`]), and query the provider's
//! credit hourly for `GET /api/status` (alerts: [`crate::credit`]).

pub mod encode;
pub mod preset;
pub mod pull;
pub mod webhook;

use std::sync::Mutex;
use std::time::Duration;

use reqwest::Method;

use crate::config::{
    AnswerReading, HttpMethod, HttpSmsConfig, PhoneFormat, PostAs, TextEncoding, Unencodable,
};
use crate::phone::PhoneContext;
use anyhow::Context;

use crate::transport::{BoxFuture, Credit, Health, SendReceipt, Transport, TransportError};
use crate::transport::{Channel, Outgoing};
use preset::Verdict;

/// Longest answer body read.
const MAX_ANSWER: usize = 64 * 1024;
/// After a request gets no answer at all, the route counts as down this long, so the
/// dispatcher tries other routes meanwhile.
const DOWN_FOR: Duration = Duration::from_secs(30);

/// How often the provider's credit is asked for.
pub const CREDIT_EVERY: Duration = Duration::from_secs(3600);

/// The placeholders templates may use.
const PLACEHOLDERS: [&str; 5] = ["phone", "message", "id", "username", "password"];

/// The first `{name}` in `template` that is not a known placeholder, for config validation.
pub fn unknown_placeholder(template: &str) -> Option<String> {
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        let end = after.find('}')?;
        let name = &after[..end];
        if !PLACEHOLDERS.contains(&name) {
            return Some(name.to_string());
        }
        rest = &after[end + 1..];
    }
    None
}

/// Fills a template; `escape` is applied to each value.
pub fn fill(template: &str, values: &[(&str, &str)], escape: impl Fn(&str) -> String) -> String {
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        match after.find('}').and_then(|end| {
            values
                .iter()
                .find(|(k, _)| *k == &after[..end])
                .map(|(_, v)| (end, v))
        }) {
            Some((end, value)) => {
                out.push_str(&escape(value));
                rest = &after[end + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub struct HttpSmsTransport {
    /// The route with its preset applied.
    cfg: HttpSmsConfig,
    client: reqwest::Client,
    phones: PhoneContext,
    state: Mutex<RouteState>,
}

#[derive(Default)]
struct RouteState {
    down_until: Option<tokio::time::Instant>,
    last: String,
    credit: Option<Credit>,
}

/// The request for one message, and the characters transliterated in its text.
pub struct Built {
    pub request: reqwest::RequestBuilder,
    pub replaced: Vec<String>,
}

impl HttpSmsTransport {
    /// `cfg` is the route as written; its preset is applied here.
    pub fn new(cfg: HttpSmsConfig, phones: PhoneContext) -> anyhow::Result<HttpSmsTransport> {
        let cfg = preset::resolve(&cfg).map_err(|e| anyhow::anyhow!("http_sms.provider: {e}"))?;
        let client = crate::net::http::client(
            &crate::net::http::ClientOptions::new(Duration::from_secs(cfg.timeout_secs))
                .ca_file(cfg.ca_file.as_deref()),
        )
        .map_err(|e| anyhow::anyhow!("http_sms.ca_file: {e}"))?;
        Ok(HttpSmsTransport {
            cfg,
            client,
            phones,
            state: Mutex::new(RouteState {
                down_until: None,
                last: "no message sent yet".to_string(),
                credit: None,
            }),
        })
    }

    /// The route with its preset applied.
    pub fn config(&self) -> &HttpSmsConfig {
        &self.cfg
    }

    /// The phone context numbers are read in.
    pub fn phones(&self) -> &PhoneContext {
        &self.phones
    }

    fn encoding(&self) -> TextEncoding {
        self.cfg.encoding.unwrap_or_default()
    }

    fn note(&self, last: String, down: bool) {
        if let Ok(mut s) = self.state.lock() {
            s.last = last;
            s.down_until = down.then(|| tokio::time::Instant::now() + DOWN_FOR);
        }
    }

    /// Percent-encodes a filled template value in the route's encoding. Only the message can
    /// hold characters outside Latin-1, and it was checked (or transliterated) before; a
    /// config literal that still does is sent as UTF-8.
    fn escape(&self, value: &str) -> String {
        let bytes = encode::encode(value, self.encoding(), Unencodable::Refuse)
            .map(|e| e.bytes)
            .unwrap_or_else(|_| value.as_bytes().to_vec());
        encode::percent_encode_bytes(&bytes)
    }

    /// `{phone}` as the route writes it; a number with no national form fails for good.
    fn phone(&self, to: &str) -> Result<String, TransportError> {
        Ok(match self.cfg.phone_format.unwrap_or_default() {
            PhoneFormat::E164 => to.to_string(),
            PhoneFormat::Digits => to.trim_start_matches('+').to_string(),
            PhoneFormat::National => self.phones.national(to).map_err(|e| {
                TransportError::Permanent(format!(
                    "{}: the number {e} (http_sms.phone_format = \"national\")",
                    self.cfg.name
                ))
            })?,
        })
    }

    /// The request for one message; `Err` when the number or the text cannot be written the
    /// way the route wants them (permanent: no retry can change that).
    pub fn build(&self, message: &Outgoing) -> Result<Built, TransportError> {
        let phone = self.phone(&message.to)?;
        let text = message.content.sms_text().unwrap_or_default();
        let encoded = encode::encode(
            text,
            self.encoding(),
            self.cfg.unencodable.unwrap_or_default(),
        )
        .map_err(|e| TransportError::Permanent(format!("{}: {e}", self.cfg.name)))?;
        let text = match self.encoding() {
            TextEncoding::Latin1 => encode::decode(&encoded.bytes, TextEncoding::Latin1)
                .unwrap_or_else(|| text.to_string()),
            TextEncoding::Utf8 => text.to_string(),
        };
        let id = message.id.to_string();
        let username = self.cfg.username.clone().unwrap_or_default();
        let password = self
            .cfg
            .password
            .as_ref()
            .map(|p| p.expose().to_string())
            .unwrap_or_default();
        let values = [
            ("phone", phone.as_str()),
            ("message", text.as_str()),
            ("id", id.as_str()),
            ("username", username.as_str()),
            ("password", password.as_str()),
        ];
        let url = fill(&self.cfg.url, &values, |v| self.escape(v));
        let params: Vec<(String, String)> = self
            .cfg
            .params
            .iter()
            .map(|(k, v)| (k.clone(), fill(v, &values, str::to_string)))
            .collect();
        let pairs = |params: &[(String, String)]| {
            params
                .iter()
                .map(|(k, v)| format!("{}={}", self.escape(k), self.escape(v)))
                .collect::<Vec<String>>()
                .join("&")
        };
        let mut req = match self.cfg.method.unwrap_or_default() {
            HttpMethod::GET => {
                let mut url = url;
                if !params.is_empty() {
                    url.push(if url.contains('?') { '&' } else { '?' });
                    url.push_str(&pairs(&params));
                }
                self.client.request(Method::GET, url)
            }
            HttpMethod::POST => {
                let req = self.client.request(Method::POST, url);
                match self.cfg.post_as.unwrap_or_default() {
                    PostAs::Form => req
                        .header(
                            reqwest::header::CONTENT_TYPE,
                            match self.encoding() {
                                TextEncoding::Utf8 => "application/x-www-form-urlencoded",
                                TextEncoding::Latin1 => {
                                    "application/x-www-form-urlencoded; charset=ISO-8859-1"
                                }
                            },
                        )
                        .body(pairs(&params)),
                    PostAs::Json => {
                        let map: serde_json::Map<String, serde_json::Value> = params
                            .into_iter()
                            .map(|(k, v)| (k, serde_json::Value::String(v)))
                            .collect();
                        req.json(&map)
                    }
                }
            }
        };
        if let Some(user) = &self.cfg.username
            && !self.credentials_in_templates()
        {
            req = req.basic_auth(user, self.cfg.password.as_ref().map(|p| p.expose()));
        }
        Ok(Built {
            request: req,
            replaced: encoded.replaced,
        })
    }

    /// Whether a template carries the credentials (then no basic auth is added).
    fn credentials_in_templates(&self) -> bool {
        std::iter::once(&self.cfg.url)
            .chain(self.cfg.params.values())
            .any(|t| t.contains("{username}") || t.contains("{password}"))
    }

    async fn send_one(&self, message: &Outgoing) -> Result<SendReceipt, TransportError> {
        super::sms_text(message)?;
        let name = &self.cfg.name;
        let built = match self.build(message) {
            Ok(b) => b,
            Err(e) => {
                self.note(e.to_string(), false);
                return Err(e);
            }
        };
        let resp = match built.request.send().await {
            Ok(r) => r,
            Err(e) => {
                let what = crate::net::error::describe(&self.cfg.url, &e);
                let hint = if crate::net::error::is_tls(&e) {
                    "check the server's certificate, or http_sms.ca_file"
                } else {
                    "check http_sms.url and that the app is running"
                };
                let why = format!("{name}: {what}; {hint}");
                self.note(why.clone(), true);
                if e.is_connect() || e.is_builder() {
                    return Err(TransportError::Temporary(why));
                }
                // The request may have reached the provider: resending could send it twice.
                return Ok(unconfirmed(format!("{why} (after the request went out)")));
            }
        };
        let status = resp.status();
        let body = match crate::net::http::read_capped(resp, MAX_ANSWER).await {
            Ok(body) => body,
            Err(e) if status.is_success() => {
                let why = format!("{name} answered {status} but the answer was cut off: {e}");
                self.note(why.clone(), false);
                return Ok(unconfirmed(why));
            }
            Err(_) => Vec::new(),
        };
        let answer = encode::decode(&body, self.encoding())
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        // What the provider said, for the message's error: no URLs or full numbers in it.
        let text = crate::net::error::sanitize(
            &answer
                .trim()
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .take(160)
                .collect::<String>(),
        );
        let result = match status.as_u16() {
            200..=299 => self.read_2xx(status, &answer, &text),
            300..=399 => Err(TransportError::Temporary(format!(
                "{name} answered a redirect ({status}); http_sms.url must be the final address"
            ))),
            408 | 429 => Err(TransportError::Temporary(format!(
                "{name} asks to retry later ({status})"
            ))),
            400..=499 => Err(TransportError::Permanent(format!(
                "{name} refused the message ({status}): `{text}`"
            ))),
            _ => Err(TransportError::Temporary(format!(
                "{name} answered {status}: `{text}`"
            ))),
        };
        let result = result.map(|mut r| {
            if !built.replaced.is_empty() {
                let note = format!("transliterated for Latin-1: {}", built.replaced.join(", "));
                r.answer = Some(match r.answer.take() {
                    Some(a) => format!("{a} ({note})"),
                    None => note,
                });
            }
            r
        });
        let last = match &result {
            Ok(SendReceipt {
                unconfirmed: Some(why),
                ..
            }) => why.clone(),
            Ok(_) => format!("last message accepted ({status})"),
            Err(e) => e.to_string(),
        };
        self.note(last, false);
        result
    }

    /// A 2xx answer, read by the route's `answer` patterns or `success_contains`.
    fn read_2xx(
        &self,
        status: reqwest::StatusCode,
        answer: &str,
        text: &str,
    ) -> Result<SendReceipt, TransportError> {
        let name = &self.cfg.name;
        if let Some(rules) = &self.cfg.answer {
            return match preset::read_answer(rules, answer) {
                Verdict::Sent => Ok(SendReceipt {
                    answer: Some(text.to_string()).filter(|t| !t.is_empty()),
                    ..SendReceipt::default()
                }),
                Verdict::Read(AnswerReading::Temporary) => Err(TransportError::Temporary(format!(
                    "{name} did not take the message ({status}): `{text}`"
                ))),
                Verdict::Read(AnswerReading::Permanent) => Err(TransportError::Permanent(format!(
                    "{name} refused the message ({status}): `{text}`"
                ))),
                Verdict::Read(AnswerReading::Unconfirmed) | Verdict::Unrecognised => {
                    Ok(unconfirmed(format!(
                        "{name} answered {status} with an answer it does not document: `{text}`"
                    )))
                }
            };
        }
        match &self.cfg.success_contains {
            Some(needle) if !answer.contains(needle.as_str()) => Ok(unconfirmed(format!(
                "{name} answered {status} without `{needle}`: `{text}`"
            ))),
            _ => Ok(SendReceipt::default()),
        }
    }

    /// Asks the provider for the credit left and the package's expiry, and keeps the answer
    /// for `GET /api/status`.
    pub async fn refresh_credit(&self) {
        let Some(balance_url) = &self.cfg.balance_url else {
            return;
        };
        let balance = self.query(balance_url).await.and_then(|a| {
            a.trim().parse::<i64>().map_err(|_| {
                format!(
                    "the balance query answered `{}`, not a number",
                    crate::net::error::sanitize(&a.trim().chars().take(80).collect::<String>())
                )
            })
        });
        let expiry = match &self.cfg.expiry_url {
            Some(url) => self.query(url).await.map(|a| Some(a.trim().to_string())),
            None => Ok(None),
        };
        let expires = match expiry {
            Ok(Some(date)) if is_date(&date) => Some(date),
            _ => None,
        };
        let now = crate::model::now_ms();
        if let Ok(mut s) = self.state.lock() {
            let previous = s.credit.take();
            s.credit = Some(match balance {
                Ok(credit) => Credit {
                    credit: Some(credit),
                    expires,
                    checked_at_ms: Some(now),
                    alert_below: self.cfg.credit_alert_below,
                    error: None,
                    unit: crate::transport::CreditUnit::Messages,
                },
                // Keep the last known figures beside the error.
                Err(why) => Credit {
                    credit: previous.as_ref().and_then(|c| c.credit),
                    expires: expires.or(previous.as_ref().and_then(|c| c.expires.clone())),
                    checked_at_ms: previous.and_then(|c| c.checked_at_ms),
                    alert_below: self.cfg.credit_alert_below,
                    error: Some(why),
                    unit: crate::transport::CreditUnit::Messages,
                },
            });
        }
    }

    /// The stored form of a sender: numbers normalized (the provider's national `1147896321`
    /// becomes `+5491147896321`); alphanumeric senders and short codes as they came.
    pub fn peer_of(&self, from: &str) -> String {
        if from.chars().any(|c| c.is_alphabetic()) {
            return from.to_string();
        }
        self.phones
            .normalize(from)
            .map(|m| m.as_str().to_string())
            .unwrap_or_else(|_| from.to_string())
    }

    /// One GET of a query template (`{username}`, `{password}`), its 2xx body as text in the
    /// route's encoding.
    pub async fn query(&self, template: &str) -> Result<String, String> {
        let username = self.cfg.username.clone().unwrap_or_default();
        let password = self
            .cfg
            .password
            .as_ref()
            .map(|p| p.expose().to_string())
            .unwrap_or_default();
        let url = fill(
            template,
            &[
                ("username", username.as_str()),
                ("password", password.as_str()),
            ],
            percent_encode,
        );
        let resp = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| crate::net::error::describe(template, &e))?;
        let status = resp.status();
        let body = crate::net::http::read_capped(resp, MAX_ANSWER)
            .await
            .map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!("the provider answered {status}"));
        }
        Ok(encode::decode(&body, self.encoding())
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned()))
    }

    /// Refreshes the credit now and then every [`CREDIT_EVERY`] until `shutdown`.
    pub async fn run_credit(&self, mut shutdown: crate::shutdown::Shutdown) -> anyhow::Result<()> {
        while !shutdown.is_triggered() {
            self.refresh_credit().await;
            if let Some(Credit {
                error: Some(why), ..
            }) = self.credit()
            {
                log::warn!(transport = self.cfg.name.as_str(); "{}: cannot read the credit: {why}", self.cfg.name);
            }
            tokio::select! {
                _ = tokio::time::sleep(CREDIT_EVERY) => {}
                _ = shutdown.wait() => {}
            }
        }
        Ok(())
    }
}

/// `YYYY-MM-DD`.
fn is_date(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
}

/// A send the provider did not confirm: counted as sent, never resent.
fn unconfirmed(why: String) -> SendReceipt {
    SendReceipt {
        unconfirmed: Some(why),
        ..SendReceipt::default()
    }
}

impl Transport for HttpSmsTransport {
    fn name(&self) -> &str {
        &self.cfg.name
    }

    fn channel(&self) -> Channel {
        Channel::Sms
    }

    fn health(&self) -> Health {
        let s = self.state.lock();
        let Ok(s) = s else {
            return Health {
                up: true,
                detail: String::new(),
            };
        };
        let down = s
            .down_until
            .is_some_and(|t| tokio::time::Instant::now() < t);
        Health {
            up: !down,
            detail: s.last.clone(),
        }
    }

    fn details(&self) -> Option<serde_json::Value> {
        let credit = self.credit()?;
        Some(serde_json::json!({ "credit": credit }))
    }

    fn credit(&self) -> Option<Credit> {
        self.state.lock().ok().and_then(|s| s.credit.clone())
    }

    fn send<'a>(
        &'a self,
        message: &'a Outgoing,
    ) -> BoxFuture<'a, Result<SendReceipt, TransportError>> {
        Box::pin(self.send_one(message))
    }
}

/// `[[http_sms]]`: one route per table; a credit task per route with a balance query; the
/// push webhooks of routes with `inbound_token`.
pub struct HttpSmsKind;
pub const KIND: HttpSmsKind = HttpSmsKind;

impl super::kind::Kind for HttpSmsKind {
    fn name(&self) -> &'static str {
        "http_sms"
    }

    fn check(&self, c: &crate::config::Config) -> Vec<(String, String)> {
        let mut errors = Vec::new();
        for written in &c.http_sms {
            let at = |key: &str| format!("http_sms.{key}");
            match preset::resolve(written) {
                Ok(h) => check_route(&h, written, c, &mut errors),
                Err(e) => errors.push((at("provider"), e)),
            }
        }
        errors
    }

    fn build(&self, cx: &super::kind::BuildContext<'_>) -> anyhow::Result<super::kind::Built> {
        let mut built = super::kind::Built::default();
        let mut pushed = std::collections::HashMap::new();
        for route in &cx.config.http_sms {
            let t = std::sync::Arc::new(
                HttpSmsTransport::new(route.clone(), cx.phones.clone())
                    .with_context(|| format!("cannot set up the route {}", route.name))?,
            );
            if t.cfg.balance_url.is_some() {
                built.tasks.push(super::kind::Task::new(
                    "http_sms credit",
                    t.clone(),
                    |t, stop| async move { t.run_credit(stop).await },
                ));
            }
            if t.cfg.poll_secs.is_some() {
                let poller = std::sync::Arc::new(pull::Poller::new(t.clone(), cx.sink.clone()));
                built.tasks.push(super::kind::Task::new(
                    "http_sms pull",
                    poller,
                    |poller, stop| async move { poller.run(stop).await },
                ));
            }
            if t.cfg.inbound_token.is_some() {
                pushed.insert(route.name.clone(), t.clone());
            }
            built.transports.push(t);
        }
        if !pushed.is_empty() {
            built.webhooks = Some(webhook::router(webhook::PushState {
                routes: std::sync::Arc::new(pushed),
                sink: cx.sink.clone(),
            }));
        }
        Ok(built)
    }
}

/// Problems of one route (`h`: with its preset applied; `written`: as in the file).
fn check_route(
    h: &HttpSmsConfig,
    written: &HttpSmsConfig,
    c: &crate::config::Config,
    errors: &mut Vec<(String, String)>,
) {
    use crate::config::http_url;
    let at = |key: &str| format!("http_sms.{key}");
    if !http_url(&h.url) {
        errors.push((
            at("url"),
            format!(
                "`{}` must be an http:// or https:// address like \
                 http://192.168.1.60:8080/v1/sms/send/ (or set provider)",
                h.url
            ),
        ));
    }
    if h.ca_file.is_some() && !h.url.starts_with("https://") {
        errors.push((at("ca_file"), "only applies to an https:// url".to_string()));
    }
    let templates = std::iter::once(&h.url).chain(h.params.values());
    if !templates.clone().any(|t| t.contains("{message}")) {
        errors.push((
            at("params"),
            "no template holds {message}: add e.g. `message = \"{message}\"` under \
             [http_sms.params]"
                .to_string(),
        ));
    }
    if !templates.clone().any(|t| t.contains("{phone}")) {
        errors.push((
            at("params"),
            "no template holds {phone}: add e.g. `phone = \"{phone}\"` under \
             [http_sms.params]"
                .to_string(),
        ));
    }
    for t in templates
        .chain(h.balance_url.iter())
        .chain(h.expiry_url.iter())
        .chain(h.poll_url.iter())
        .chain(h.poll_ack_url.iter())
    {
        if let Some(bad) = unknown_placeholder(t) {
            errors.push((
                at("params"),
                format!(
                    "`{{{bad}}}` in `{t}` is not one of {{phone}}, {{message}}, {{id}}, \
                     {{username}}, {{password}}"
                ),
            ));
        }
    }
    if h.password.is_some() && h.username.is_none() {
        errors.push((at("password"), "is set but username is not".to_string()));
    }
    if written.provider.is_some() && (h.username.is_none() || h.password.is_none()) {
        errors.push((
            at("username"),
            "the provider preset needs username and password: the user and password the \
             provider gave you"
                .to_string(),
        ));
    }
    if h.timeout_secs == 0 || h.timeout_secs > 300 {
        errors.push((
            at("timeout_secs"),
            format!("{} is out of range: use 1 to 300", h.timeout_secs),
        ));
    }
    if h.encoding == Some(TextEncoding::Latin1)
        && h.method == Some(HttpMethod::POST)
        && h.post_as == Some(PostAs::Json)
    {
        errors.push((
            at("encoding"),
            "latin1 does not apply to post_as = \"json\": JSON is always UTF-8".to_string(),
        ));
    }
    if let Some(token) = &h.inbound_token {
        if token.expose().len() < 16 {
            errors.push((
                at("inbound_token"),
                "must be at least 16 characters (e.g. the output of `openssl rand -hex 16`)"
                    .to_string(),
            ));
        }
        if c.webhooks.listen.is_none() {
            errors.push((
                at("inbound_token"),
                "needs `listen = \"0.0.0.0:8090\"` under [webhooks]: the listener the provider \
                 pushes to"
                    .to_string(),
            ));
        }
        let names = h.inbound.clone().unwrap_or_default();
        if names.from.is_none() || names.text.is_none() {
            errors.push((
                at("inbound"),
                "needs `from` and `text`: the names of the push's sender and text parameters"
                    .to_string(),
            ));
        }
    } else if written.inbound.is_some() {
        errors.push((
            at("inbound"),
            "is set but inbound_token is not: pushes are taken only with a token".to_string(),
        ));
    }
    for (key, url) in [
        ("balance_url", &h.balance_url),
        ("expiry_url", &h.expiry_url),
    ] {
        if let Some(url) = url
            && !http_url(url)
        {
            errors.push((
                at(key),
                format!("`{url}` must be an http:// or https:// address"),
            ));
        }
    }
    if let Some(secs) = h.poll_secs {
        if secs == 0 || secs > 3600 {
            errors.push((
                at("poll_secs"),
                format!("{secs} is out of range: use 1 to 3600"),
            ));
        }
        match &h.poll_url {
            Some(url) if !http_url(url) => errors.push((
                at("poll_url"),
                format!("`{url}` must be an http:// or https:// address"),
            )),
            Some(_) => {}
            None => errors.push((
                at("poll_url"),
                "poll_secs needs poll_url (or a provider that lists received SMS)".to_string(),
            )),
        }
        if let Some(url) = &h.poll_ack_url
            && !http_url(url)
        {
            errors.push((
                at("poll_ack_url"),
                format!("`{url}` must be an http:// or https:// address"),
            ));
        }
    }
    if let Some(below) = h.credit_alert_below {
        if h.balance_url.is_none() {
            errors.push((
                at("credit_alert_below"),
                "needs balance_url (or a provider with a balance query)".to_string(),
            ));
        }
        if below <= 0 {
            errors.push((
                at("credit_alert_below"),
                format!("{below} is out of range: use a number of messages above 0"),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_fill_and_escape() {
        let values = [
            ("phone", "+5491123456789"),
            ("message", "¿Saldo? 50% & más"),
            ("id", "7"),
        ];
        assert_eq!(
            fill(
                "http://h/send/{id}?to={phone}&text={message}&x={other}",
                &values,
                percent_encode
            ),
            "http://h/send/7?to=%2B5491123456789&text=%C2%BFSaldo%3F%2050%25%20%26%20m%C3%A1s&x={other}"
        );
        assert_eq!(
            fill("{message}", &values, str::to_string),
            "¿Saldo? 50% & más"
        );
        assert_eq!(
            fill("{ {phone}", &values, str::to_string),
            "{ +5491123456789"
        );
        assert_eq!(
            unknown_placeholder("a={phone}&b={mesage}"),
            Some("mesage".into())
        );
        assert_eq!(unknown_placeholder("{phone}{message}{id}"), None);
    }
}
