//! `[whatsapp]`: the WhatsApp Cloud API channel, one business phone number, route `whatsapp`.
//! Owns the kind (config checks, building), the transport (text and template sends through
//! [`client`], the 24-hour window, the recipient's `wa_id`, Meta's error codes, the token's
//! health) and the webhook ([`webhook`]: handshake, signed messages and statuses, costs).
//!
//! Kept in the transport's keyed state: `whatsapp.last_in:<number>` (the customer's last
//! message, Unix ms: the 24-hour window), `whatsapp.wa_id:<number>` (the id WhatsApp reported
//! for the number), the per-day cost counters
//! `whatsapp.cost:<YYYY-MM-DD>:<category>`, and with `upload_pdfs` the media id of each
//! uploaded PDF link, `whatsapp.media:<url>`, with its upload time `whatsapp.media_at:<url>`.

pub mod client;
pub mod templates;
pub mod webhook;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::config::{Config, WhatsappConfig};
use crate::model::{Channel, Outgoing, Whatsapp, now_ms};
use crate::transport::kind::{BuildContext, Built, Kind, Task};
use crate::transport::{BoxFuture, Content, Health, SendReceipt, Sink, Transport, TransportError};
use client::Verdict;

/// The route name of the channel.
pub const ROUTE: &str = "whatsapp";
/// The customer-service window.
pub const WINDOW_MS: i64 = 24 * 3600 * 1000;
/// Largest invoice PDF sent by link: the link is fetched before the send and must answer a PDF
/// this size or smaller.
pub const MAX_PDF: usize = 16 * 1024 * 1024;
/// How long an uploaded PDF's media id is reused. Meta keeps uploaded media for 30 days; a day
/// less leaves room for a message queued near the end (it goes after the id was read).
pub const MEDIA_REUSE_MS: i64 = 29 * 24 * 3600 * 1000;

pub struct WhatsappKind;
pub static KIND: WhatsappKind = WhatsappKind;

impl Kind for WhatsappKind {
    fn name(&self) -> &'static str {
        "whatsapp"
    }

    fn check(&self, config: &Config) -> Vec<(String, String)> {
        let Some(w) = &config.whatsapp else {
            return Vec::new();
        };
        check_table(w)
    }

    fn build(&self, cx: &BuildContext<'_>) -> anyhow::Result<Built> {
        let Some(cfg) = &cx.config.whatsapp else {
            return Ok(Built::default());
        };
        let transport = Arc::new(WhatsappTransport::new(cfg.clone(), cx.sink.clone())?);
        let health = transport.clone();
        let hook = webhook::router(webhook::WebhookState::new(
            cfg.clone(),
            cx.sink.clone(),
            cx.phones.clone(),
        ));
        Ok(Built {
            transports: vec![transport],
            tasks: vec![Task::new("whatsapp", health, |t, shutdown| async move {
                t.watch(shutdown).await
            })],
            webhooks: Some(hook),
        })
    }
}

/// Problems in `[whatsapp]`, as (key, message).
pub fn check_table(w: &WhatsappConfig) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut err = |k: &str, m: String| out.push((format!("whatsapp.{k}"), m));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(&w.phone_number_id) {
        err(
            "phone_number_id",
            "must be the numeric Phone number ID from Meta's WhatsApp > API Setup page".into(),
        );
    }
    if let Some(id) = &w.waba_id
        && !digits(id)
    {
        err(
            "waba_id",
            "must be the numeric WhatsApp Business Account ID".into(),
        );
    }
    match (&w.access_token, &w.access_token_file) {
        (Some(_), Some(_)) => err(
            "access_token_file",
            "set either whatsapp.access_token or whatsapp.access_token_file, not both".into(),
        ),
        (None, None) => err(
            "access_token",
            "is required (or whatsapp.access_token_file): a System User token with \
             whatsapp_business_messaging"
                .into(),
        ),
        (Some(t), None) if t.expose().trim().len() < 20 => err(
            "access_token",
            "is too short to be a Graph API token".into(),
        ),
        _ => {}
    }
    if w.app_secret.is_none() {
        err(
            "app_secret",
            "is required: it verifies X-Hub-Signature-256 on /webhooks/whatsapp".into(),
        );
    }
    if w.verify_token.is_none() {
        err(
            "verify_token",
            "is required: Meta sends it on the webhook's GET handshake".into(),
        );
    }
    let v = w.api_version.strip_prefix('v').unwrap_or("");
    if v.split('.').count() != 2 || !v.split('.').all(digits) {
        err(
            "api_version",
            format!("`{}` is not a version like v23.0", w.api_version),
        );
    }
    if !crate::config::http_url(&w.base_url) {
        err(
            "base_url",
            format!(
                "`{}` is not an http(s):// URL like https://graph.facebook.com",
                w.base_url
            ),
        );
    } else if w.base_url.starts_with("http://")
        && !reqwest::Url::parse(&w.base_url)
            .ok()
            .and_then(|u| {
                u.host_str()
                    .map(|h| h.starts_with("127.") || h == "localhost")
            })
            .unwrap_or(false)
    {
        err(
            "base_url",
            "must be https:// (plain http only for a local mock on 127.0.0.1)".into(),
        );
    }
    if !(1..=3600).contains(&w.health_interval_secs) {
        err("health_interval_secs", "must be 1 to 3600 seconds".into());
    }
    if let Some(t) = &w.outside_window_template {
        let probe = templates::TemplateMessage {
            name: t.name.clone(),
            language: t.language.clone(),
            body: Vec::new(),
            document: None,
        };
        if let Err((f, m)) = probe.check("outside_window_template.") {
            err(&f, m);
        }
    }
    out
}

/// Reads the access token: the value, or the file's first line.
pub fn read_token(w: &WhatsappConfig) -> Result<String, String> {
    if let Some(t) = &w.access_token {
        return Ok(t.expose().trim().to_string());
    }
    let Some(path) = &w.access_token_file else {
        return Err("whatsapp.access_token is not set".into());
    };
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "whatsapp.access_token_file: cannot read {}: {e}",
            path.display()
        )
    })?;
    let token = text.lines().next().unwrap_or("").trim().to_string();
    if token.is_empty() {
        return Err(format!(
            "whatsapp.access_token_file: {} is empty",
            path.display()
        ));
    }
    Ok(token)
}

struct Status {
    /// Why the channel is down (a refused token), or `None`.
    down: Option<String>,
    detail: String,
    display: Option<serde_json::Value>,
    token: String,
}

pub struct WhatsappTransport {
    cfg: WhatsappConfig,
    client: reqwest::Client,
    sink: Sink,
    status: Mutex<Status>,
    /// `rate_limit`, held on each `POST /messages` as it reaches Meta ([`crate::transport::pace`]).
    pacer: Option<crate::transport::pace::Pacer>,
}

impl WhatsappTransport {
    pub fn new(cfg: WhatsappConfig, sink: Sink) -> anyhow::Result<WhatsappTransport> {
        let client = crate::net::http::client(
            &crate::net::http::ClientOptions::new(Duration::from_secs(cfg.timeout_secs))
                .ca_file(cfg.ca_file.as_deref()),
        )
        .map_err(|e| anyhow::anyhow!("whatsapp.ca_file: {e}"))?;
        let token = read_token(&cfg).map_err(|e| anyhow::anyhow!(e))?;
        Ok(WhatsappTransport {
            pacer: cfg.rate_limit.map(crate::transport::pace::Pacer::new),
            cfg,
            client,
            sink,
            status: Mutex::new(Status {
                down: None,
                detail: "no message sent yet".into(),
                display: None,
                token,
            }),
        })
    }

    fn url(&self, path: &str) -> String {
        format!(
            "{}/{}/{}",
            self.cfg.base_url.trim_end_matches('/'),
            self.cfg.api_version,
            path
        )
    }

    fn token(&self) -> String {
        self.status
            .lock()
            .map(|s| s.token.clone())
            .unwrap_or_default()
    }

    fn set_down(&self, why: Option<String>) {
        let came_up = if let Ok(mut s) = self.status.lock() {
            let was_down = s.down.is_some();
            if let Some(w) = &why
                && !was_down
            {
                log::error!(transport = ROUTE; "WhatsApp channel down: {w}");
            }
            s.down = why.clone();
            was_down && why.is_none()
        } else {
            false
        };
        if came_up {
            log::info!(transport = ROUTE; "WhatsApp channel up again: the access token works");
            self.sink.came_up();
        }
    }

    /// Checks the token with `GET /{phone_number_id}` (re-reading `access_token_file`), and
    /// keeps the number's display name and quality rating.
    pub async fn check_health(&self) -> Result<(), String> {
        if self.cfg.access_token_file.is_some()
            && let Ok(t) = read_token(&self.cfg)
            && let Ok(mut s) = self.status.lock()
        {
            s.token = t;
        }
        let url = self.url(&format!(
            "{}?fields=display_phone_number,verified_name,quality_rating",
            self.cfg.phone_number_id
        ));
        let resp = self
            .client
            .get(&url)
            .bearer_auth(self.token())
            .send()
            .await
            .map_err(|e| crate::net::error::describe(&self.cfg.base_url, &e))?;
        let status = resp.status().as_u16();
        let body = crate::net::http::read_capped(resp, client::MAX_ANSWER)
            .await
            .map_err(|e| e.to_string())?;
        if (200..300).contains(&status) {
            let info: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            if let Ok(mut s) = self.status.lock() {
                s.display = Some(info);
            }
            self.set_down(None);
            return Ok(());
        }
        let err = serde_json::from_slice::<client::ErrorBody>(&body).ok();
        match client::verdict(status, err.as_ref().map(|e| &e.error)) {
            Verdict::BadToken(why) => {
                self.set_down(Some(why.clone()));
                Err(why)
            }
            v => Err(format!("{v:?}")),
        }
    }

    async fn watch(&self, mut shutdown: crate::shutdown::Shutdown) -> anyhow::Result<()> {
        loop {
            if let Err(e) = self.check_health().await {
                log::warn!(transport = ROUTE; "WhatsApp health check: {e}");
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(self.cfg.health_interval_secs)) => {}
                _ = shutdown.wait() => return Ok(()),
            }
        }
    }

    async fn state(&self, key: String) -> Option<i64> {
        self.sink.state().get(&key).await.ok().flatten()
    }

    /// The recipient as WhatsApp knows it: the `wa_id` it reported for this number, else the
    /// number's digits.
    async fn recipient(&self, to: &str) -> String {
        match self.state(format!("whatsapp.wa_id:{to}")).await {
            Some(wa) if wa > 0 => wa.to_string(),
            _ => to.trim_start_matches('+').to_string(),
        }
    }

    fn window_template(&self, text: &str) -> Option<Whatsapp> {
        self.cfg
            .outside_window_template
            .as_ref()
            .map(|t| Whatsapp::Template {
                name: t.name.clone(),
                language: t.language.clone(),
                params: vec![text.to_string()],
                document: None,
            })
    }

    /// Checks that a document link answers a PDF no larger than [`MAX_PDF`]: an HTML page or
    /// an oversized file fails the message with the reason; no answer is worth a retry.
    async fn check_pdf(&self, url: &str) -> Result<Vec<u8>, Verdict> {
        let resp = self.client.get(url).send().await.map_err(|e| {
            Verdict::Retry(format!(
                "the PDF link: {}",
                crate::net::error::describe(url, &e)
            ))
        })?;
        let status = resp.status().as_u16();
        let kind = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("no content type")
            .to_string();
        if !(200..300).contains(&status) {
            let why = format!(
                "the PDF link {} answered HTTP {status}",
                crate::net::error::peer_of(url)
            );
            return Err(if status >= 500 || status == 429 {
                Verdict::Retry(why)
            } else {
                Verdict::Permanent(why)
            });
        }
        let body = match crate::net::http::read_capped(resp, MAX_PDF).await {
            Ok(b) => b,
            Err(crate::net::http::BodyError::TooLarge { .. }) => {
                return Err(Verdict::Permanent(format!(
                    "the PDF at {} is over the {} MB cap",
                    crate::net::error::peer_of(url),
                    MAX_PDF / (1024 * 1024)
                )));
            }
            Err(e) => return Err(Verdict::Retry(format!("the PDF link: {e}"))),
        };
        if !body.starts_with(b"%PDF-") {
            return Err(Verdict::Permanent(format!(
                "the PDF link {} answered {}, not a PDF",
                crate::net::error::peer_of(url),
                crate::net::error::sanitize(&kind)
            )));
        }
        Ok(body)
    }

    /// The media id to send the PDF at `url` by (`upload_pdfs`): the one uploaded for this link
    /// in the last [`MEDIA_REUSE_MS`], else the link is fetched, checked ([`Self::check_pdf`])
    /// and uploaded, and the new id kept. Returns the id and whether it came from the cache.
    async fn media_for(
        &self,
        url: &str,
        filename: Option<&str>,
    ) -> Result<(String, bool), Verdict> {
        let id_key = format!("whatsapp.media:{url}");
        let at_key = format!("whatsapp.media_at:{url}");
        if let (Some(id), Some(at)) = (
            self.state(id_key.clone()).await,
            self.state(at_key.clone()).await,
        ) && id > 0
            && now_ms() - at < MEDIA_REUSE_MS
        {
            return Ok((id.to_string(), true));
        }
        let pdf = self.check_pdf(url).await?;
        let name = filename
            .map(str::to_string)
            .or_else(|| {
                reqwest::Url::parse(url).ok().and_then(|u| {
                    u.path_segments()
                        .and_then(|mut s| s.next_back().map(str::to_string))
                        .filter(|s| !s.is_empty())
                })
            })
            .unwrap_or_else(|| "factura.pdf".into());
        let id = self.upload_pdf(&pdf, &name).await?;
        // Meta's media ids are decimal; one that is not is used for this message only.
        if let Ok(n) = id.parse::<i64>() {
            let state = self.sink.state();
            let _ = state.set(&id_key, Some(n)).await;
            let _ = state.set(&at_key, Some(now_ms())).await;
        }
        log::info!(transport = ROUTE; "uploaded the PDF at {} as media {id}", crate::net::error::peer_of(url));
        Ok((id, false))
    }

    /// Forgets the media id kept for `url` (Meta no longer knows it).
    async fn forget_media(&self, url: &str) {
        let state = self.sink.state();
        let _ = state.set(&format!("whatsapp.media:{url}"), None).await;
        let _ = state.set(&format!("whatsapp.media_at:{url}"), None).await;
    }

    /// `POST /{phone_number_id}/media` with the PDF as `multipart/form-data`; the media id.
    async fn upload_pdf(&self, pdf: &[u8], filename: &str) -> Result<String, Verdict> {
        let (kind, body) = client::media_form(pdf, filename);
        let url = self.url(&format!("{}/media", self.cfg.phone_number_id));
        let resp = self
            .client
            .post(&url)
            .bearer_auth(self.token())
            .header(reqwest::header::CONTENT_TYPE, kind)
            .body(body)
            .send()
            .await
            .map_err(|e| {
                Verdict::Retry(format!(
                    "WhatsApp media upload: {}",
                    crate::net::error::describe(&self.cfg.base_url, &e)
                ))
            })?;
        let status = resp.status().as_u16();
        let bytes = crate::net::http::read_capped(resp, client::MAX_ANSWER)
            .await
            .map_err(|e| Verdict::Retry(format!("WhatsApp media upload: {e}")))?;
        if (200..300).contains(&status) {
            let answer: client::UploadAnswer = serde_json::from_slice(&bytes).map_err(|e| {
                Verdict::Retry(format!(
                    "WhatsApp media upload: the answer is not the documented JSON: {e}"
                ))
            })?;
            return Ok(answer.id);
        }
        let err = serde_json::from_slice::<client::ErrorBody>(&bytes).ok();
        Err(
            match client::verdict(status, err.as_ref().map(|e| &e.error)) {
                Verdict::Permanent(w) => Verdict::Permanent(format!("the PDF upload: {w}")),
                v => v,
            },
        )
    }

    /// A verdict as the dispatcher's error; a refused token takes the channel down.
    fn transport_error(&self, v: Verdict) -> TransportError {
        match v {
            Verdict::Retry(w) => TransportError::Temporary(w),
            Verdict::Permanent(w) | Verdict::Undeliverable(w) | Verdict::WindowClosed(w) => {
                TransportError::Permanent(w)
            }
            Verdict::BadToken(w) => {
                self.set_down(Some(w.clone()));
                TransportError::Temporary(w)
            }
        }
    }

    async fn send_content(
        &self,
        message: &Outgoing,
        content: &Whatsapp,
    ) -> Result<SendReceipt, Verdict> {
        let to = self.recipient(&message.to).await;
        let body = client::message_body(&to, content);
        let url = self.url(&format!("{}/messages", self.cfg.phone_number_id));
        // The request counts against `rate_limit` from its start until its answer is older
        // than the window: Meta sees it somewhere in between.
        let pass = match &self.pacer {
            Some(p) => Some(p.pass().await),
            None => None,
        };
        let sent = self
            .client
            .post(&url)
            .bearer_auth(self.token())
            .json(&body)
            .send()
            .await;
        drop(pass);
        let resp = sent.map_err(|e| {
            Verdict::Retry(format!(
                "WhatsApp: {}",
                crate::net::error::describe(&self.cfg.base_url, &e)
            ))
        })?;
        let status = resp.status().as_u16();
        let bytes = crate::net::http::read_capped(resp, client::MAX_ANSWER)
            .await
            .map_err(|e| Verdict::Retry(format!("WhatsApp: {e}")))?;
        if (200..300).contains(&status) {
            let answer: client::SendAnswer = serde_json::from_slice(&bytes).map_err(|e| {
                Verdict::Retry(format!(
                    "WhatsApp: the answer is not the documented JSON: {e}"
                ))
            })?;
            if let Some(wa) = answer.contacts.first().and_then(|c| c.wa_id.as_deref())
                && let Ok(n) = wa.parse::<i64>()
                && wa != to
            {
                let _ = self
                    .sink
                    .state()
                    .set(&format!("whatsapp.wa_id:{}", message.to), Some(n))
                    .await;
            }
            let wamid = answer
                .messages
                .first()
                .map(|m| m.id.clone())
                .ok_or_else(|| {
                    Verdict::Retry("WhatsApp: the answer has no message id".to_string())
                })?;
            if let Ok(mut s) = self.status.lock() {
                s.detail = "last message accepted".into();
            }
            self.set_down(None);
            return Ok(SendReceipt {
                provider_ref: Some(wamid),
                ..SendReceipt::default()
            });
        }
        let err = serde_json::from_slice::<client::ErrorBody>(&bytes).ok();
        Err(client::verdict(status, err.as_ref().map(|e| &e.error)))
    }

    async fn send_one(&self, message: &Outgoing) -> Result<SendReceipt, TransportError> {
        let Content::Whatsapp(content) = &message.content else {
            return Err(TransportError::Permanent(format!(
                "a {} message cannot go through the WhatsApp route",
                message.content.channel()
            )));
        };
        if let Some(why) = self.status.lock().ok().and_then(|s| s.down.clone()) {
            return Err(TransportError::Temporary(why));
        }
        let mut content = content.clone();
        if let Whatsapp::Text { body } = &content {
            let last = self.state(format!("whatsapp.last_in:{}", message.to)).await;
            let open = last.is_some_and(|t| now_ms() - t < WINDOW_MS);
            if !open {
                content = self.window_template(body).ok_or_else(|| {
                    TransportError::Permanent(
                        "the customer's 24-hour window is closed (no message from them in the \
                         last 24 hours): free text cannot go; send a template, or set \
                         whatsapp.outside_window_template"
                            .into(),
                    )
                })?;
            }
        }
        // The link the document was uploaded from, when it goes by a kept media id.
        let mut cached_from = None;
        if let Whatsapp::Template {
            document: Some(doc),
            ..
        } = &mut content
            && let Some(url) = doc.url.clone()
        {
            if self.cfg.upload_pdfs {
                let (id, cached) = self
                    .media_for(&url, doc.filename.as_deref())
                    .await
                    .map_err(|v| self.pdf_error(v))?;
                doc.url = None;
                doc.media_id = Some(id);
                if cached {
                    cached_from = Some(url);
                }
            } else {
                self.check_pdf(&url).await.map_err(|v| self.pdf_error(v))?;
            }
        }
        let mut result = self.send_content(message, &content).await;
        if let (Err(Verdict::WindowClosed(_)), Whatsapp::Text { body }) = (&result, &content)
            && let Some(t) = self.window_template(body)
        {
            result = self.send_content(message, &t).await;
        }
        // A kept media id Meta refuses (expired early, deleted): upload the link again, once.
        if let (Err(Verdict::Permanent(why)), Some(url)) = (&result, &cached_from) {
            log::warn!(transport = ROUTE; "a kept PDF media id was refused ({why}); uploading the PDF again");
            self.forget_media(url).await;
            if let Whatsapp::Template {
                document: Some(doc),
                ..
            } = &mut content
            {
                let (id, _) = self
                    .media_for(url, doc.filename.as_deref())
                    .await
                    .map_err(|v| self.pdf_error(v))?;
                doc.media_id = Some(id);
            }
            result = self.send_content(message, &content).await;
        }
        result.map_err(|v| self.transport_error(v))
    }

    /// A verdict about the PDF (its link or its upload) as the dispatcher's error.
    fn pdf_error(&self, v: Verdict) -> TransportError {
        match v {
            Verdict::Undeliverable(w) | Verdict::WindowClosed(w) => TransportError::Permanent(w),
            v => self.transport_error(v),
        }
    }
}

impl Transport for WhatsappTransport {
    fn name(&self) -> &str {
        ROUTE
    }

    fn channel(&self) -> Channel {
        Channel::Whatsapp
    }

    fn capacity(&self) -> usize {
        8
    }

    fn health(&self) -> Health {
        match self.status.lock() {
            Ok(s) => match &s.down {
                Some(why) => Health {
                    up: false,
                    detail: why.clone(),
                },
                None => Health {
                    up: true,
                    detail: s.detail.clone(),
                },
            },
            Err(_) => Health {
                up: false,
                detail: "internal state lost".into(),
            },
        }
    }

    fn details(&self) -> Option<serde_json::Value> {
        self.status.lock().ok().and_then(|s| s.display.clone())
    }

    fn send<'a>(
        &'a self,
        message: &'a Outgoing,
    ) -> BoxFuture<'a, Result<SendReceipt, TransportError>> {
        Box::pin(self.send_one(message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> WhatsappConfig {
        let c: Config = toml::from_str(text).unwrap();
        c.whatsapp.unwrap()
    }

    #[test]
    fn check_names_each_bad_key_and_masks_secrets() {
        let w = table(
            "[whatsapp]\nphone_number_id = \"12ab\"\nwaba_id = \"x\"\naccess_token = \"short\"\n\
             api_version = \"23\"\nbase_url = \"http://graph.example\"\n",
        );
        let keys: Vec<String> = check_table(&w).into_iter().map(|(k, _)| k).collect();
        for k in [
            "whatsapp.phone_number_id",
            "whatsapp.waba_id",
            "whatsapp.access_token",
            "whatsapp.app_secret",
            "whatsapp.verify_token",
            "whatsapp.api_version",
            "whatsapp.base_url",
        ] {
            assert!(keys.iter().any(|x| x == k), "{k} in {keys:?}");
        }
        assert!(!format!("{w:?}").contains("short"), "secret printed");
        let ok = table(
            "[whatsapp]\nphone_number_id = \"1234567890\"\naccess_token_file = \"/x\"\n\
             app_secret = \"s\"\nverify_token = \"v\"\nrate_limit = \"80/second\"\n",
        );
        assert!(check_table(&ok).is_empty(), "{:?}", check_table(&ok));
        let both = table(
            "[whatsapp]\nphone_number_id = \"1\"\naccess_token = \"EAAG0123456789012345678\"\n\
             access_token_file = \"/x\"\napp_secret = \"s\"\nverify_token = \"v\"\n",
        );
        assert_eq!(check_table(&both)[0].0, "whatsapp.access_token_file");
    }
}
