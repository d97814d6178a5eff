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

use std::sync::Mutex;
use std::time::Duration;

use reqwest::Method;

use crate::config::{HttpMethod, HttpSmsConfig, PhoneFormat, PostAs};
use anyhow::Context;

use crate::transport::{BoxFuture, Health, SendReceipt, Transport, TransportError};
use crate::transport::{Channel, Outgoing};

/// Longest answer body read.
const MAX_ANSWER: usize = 64 * 1024;
/// After a request gets no answer at all, the route counts as down this long, so the
/// dispatcher tries other routes meanwhile.
const DOWN_FOR: Duration = Duration::from_secs(30);

/// The placeholders templates may use.
const PLACEHOLDERS: [&str; 3] = ["phone", "message", "id"];

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
    cfg: HttpSmsConfig,
    client: reqwest::Client,
    state: Mutex<RouteState>,
}

#[derive(Default)]
struct RouteState {
    down_until: Option<tokio::time::Instant>,
    last: String,
}

impl HttpSmsTransport {
    pub fn new(cfg: HttpSmsConfig) -> anyhow::Result<HttpSmsTransport> {
        let client = crate::net::http::client(
            &crate::net::http::ClientOptions::new(Duration::from_secs(cfg.timeout_secs))
                .ca_file(cfg.ca_file.as_deref()),
        )
        .map_err(|e| anyhow::anyhow!("http_sms.ca_file: {e}"))?;
        Ok(HttpSmsTransport {
            cfg,
            client,
            state: Mutex::new(RouteState {
                down_until: None,
                last: "no message sent yet".to_string(),
            }),
        })
    }

    fn note(&self, last: String, down: bool) {
        if let Ok(mut s) = self.state.lock() {
            s.last = last;
            s.down_until = down.then(|| tokio::time::Instant::now() + DOWN_FOR);
        }
    }

    /// The request for one message.
    pub fn build(&self, message: &Outgoing) -> reqwest::RequestBuilder {
        let phone = match self.cfg.phone_format {
            PhoneFormat::E164 => message.to.clone(),
            PhoneFormat::Digits => message.to.trim_start_matches('+').to_string(),
        };
        let id = message.id.to_string();
        let values = [
            ("phone", phone.as_str()),
            ("message", message.content.sms_text().unwrap_or_default()),
            ("id", id.as_str()),
        ];
        let url = fill(&self.cfg.url, &values, percent_encode);
        let params: Vec<(String, String)> = self
            .cfg
            .params
            .iter()
            .map(|(k, v)| (k.clone(), fill(v, &values, str::to_string)))
            .collect();
        let mut req = match self.cfg.method {
            HttpMethod::GET => {
                let mut url = url;
                if !params.is_empty() {
                    let query: Vec<String> = params
                        .iter()
                        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
                        .collect();
                    url.push(if url.contains('?') { '&' } else { '?' });
                    url.push_str(&query.join("&"));
                }
                self.client.request(Method::GET, url)
            }
            HttpMethod::POST => {
                let req = self.client.request(Method::POST, url);
                match self.cfg.post_as {
                    PostAs::Form => {
                        let body: Vec<String> = params
                            .iter()
                            .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
                            .collect();
                        req.header(
                            reqwest::header::CONTENT_TYPE,
                            "application/x-www-form-urlencoded",
                        )
                        .body(body.join("&"))
                    }
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
        if let Some(user) = &self.cfg.username {
            req = req.basic_auth(user, self.cfg.password.as_ref().map(|p| p.expose()));
        }
        req
    }

    async fn send_one(&self, message: &Outgoing) -> Result<SendReceipt, TransportError> {
        super::sms_text(message)?;
        let name = &self.cfg.name;
        let resp = match self.build(message).send().await {
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
        // What the provider said, for the message's error: no URLs or full numbers in it.
        let text = crate::net::error::sanitize(
            &String::from_utf8_lossy(&body)
                .chars()
                .filter(|c| !c.is_control())
                .take(120)
                .collect::<String>(),
        );
        let result = match status.as_u16() {
            200..=299 => match &self.cfg.success_contains {
                Some(needle) if !String::from_utf8_lossy(&body).contains(needle.as_str()) => {
                    Ok(unconfirmed(format!(
                        "{name} answered {status} without `{needle}`: `{text}`"
                    )))
                }
                _ => Ok(SendReceipt::default()),
            },
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

    fn send<'a>(
        &'a self,
        message: &'a Outgoing,
    ) -> BoxFuture<'a, Result<SendReceipt, TransportError>> {
        Box::pin(self.send_one(message))
    }
}

/// `[[http_sms]]`: one route per table; no task, no webhooks.
pub struct HttpSmsKind;
pub const KIND: HttpSmsKind = HttpSmsKind;

impl super::kind::Kind for HttpSmsKind {
    fn name(&self) -> &'static str {
        "http_sms"
    }

    fn check(&self, c: &crate::config::Config) -> Vec<(String, String)> {
        use crate::config::http_url;
        let mut errors = Vec::new();
        for h in &c.http_sms {
            let at = |key: &str| format!("http_sms.{key}");
            if !http_url(&h.url) {
                errors.push((
                    at("url"),
                    format!(
                        "`{}` must be an http:// or https:// address like \
                         http://192.168.1.60:8080/v1/sms/send/",
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
            for t in templates {
                if let Some(bad) = unknown_placeholder(t) {
                    errors.push((
                        at("params"),
                        format!(
                            "`{{{bad}}}` in `{t}` is not one of {{phone}}, {{message}}, {{id}}"
                        ),
                    ));
                }
            }
            if h.password.is_some() && h.username.is_none() {
                errors.push((at("password"), "is set but username is not".to_string()));
            }
            if h.timeout_secs == 0 || h.timeout_secs > 300 {
                errors.push((
                    at("timeout_secs"),
                    format!("{} is out of range: use 1 to 300", h.timeout_secs),
                ));
            }
        }
        errors
    }

    fn build(&self, cx: &super::kind::BuildContext<'_>) -> anyhow::Result<super::kind::Built> {
        let mut built = super::kind::Built::default();
        for route in &cx.config.http_sms {
            let t = HttpSmsTransport::new(route.clone())
                .with_context(|| format!("cannot set up the route {}", route.name))?;
            built.transports.push(std::sync::Arc::new(t));
        }
        Ok(built)
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
