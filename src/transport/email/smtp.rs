//! One `[[email]]` account as a route: a pooled lettre SMTP transport (STARTTLS required,
//! implicit TLS, or plain only when opted in), the MIME message built from [`Email`] content,
//! and SMTP replies classified for the dispatcher: 4xx (421 included) temporary, 5xx permanent
//! with the server's text, an authentication refusal (535) takes the account down so mail
//! waits; no connection, TLS or STARTTLS problem ever sends in plain text.

use std::sync::Mutex;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Attachment as MimeAttachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::{AsyncSmtpTransport, PoolConfig};
use lettre::{AsyncTransport, Tokio1Executor};

use crate::config::{EmailConfig, EmailSecurity};
use crate::model::{Email, MessageId};
use crate::transport::TransportError;
use crate::transport::{BoxFuture, Channel, Health, Outgoing, SendReceipt, Transport};

/// After a connection, TLS or login failure the account counts as down this long.
const DOWN_FOR: Duration = Duration::from_secs(30);
/// Connections kept open per account.
const POOL_SIZE: u32 = 2;

pub struct EmailTransport {
    cfg: EmailConfig,
    from: Mailbox,
    smtp: AsyncSmtpTransport<Tokio1Executor>,
    state: Mutex<AccountState>,
}

struct AccountState {
    down_until: Option<tokio::time::Instant>,
    /// The server refused the login: down until a login succeeds ([`EmailTransport::login`],
    /// tried by the kind's task), so queued mail waits without spending attempts.
    auth_failed: bool,
    last: String,
}

/// The port an account connects to: its `port`, else 587, 465 or 25 by `security`.
pub fn port_of(cfg: &EmailConfig) -> u16 {
    cfg.port.unwrap_or(match cfg.security {
        EmailSecurity::Starttls => 587,
        EmailSecurity::Tls => 465,
        EmailSecurity::None => 25,
    })
}

/// The password of an account: `password`, or the first line of `password_file`.
fn password(cfg: &EmailConfig) -> Result<Option<String>, String> {
    if let Some(p) = &cfg.password {
        return Ok(Some(p.expose().to_string()));
    }
    match &cfg.password_file {
        Some(path) => std::fs::read_to_string(path)
            .map(|t| Some(t.lines().next().unwrap_or("").trim().to_string()))
            .map_err(|e| format!("email.password_file: cannot read {}: {e}", path.display())),
        None => Ok(None),
    }
}

impl EmailTransport {
    pub fn new(cfg: EmailConfig) -> Result<EmailTransport, String> {
        let from: Mailbox = cfg
            .from
            .parse()
            .map_err(|e| format!("email.from: `{}`: {e}", cfg.from))?;
        let tls_params = || -> Result<TlsParameters, String> {
            let mut b = TlsParameters::builder(cfg.host.clone())
                .certificate_store(CertificateStore::WebpkiRoots);
            if let Some(path) = &cfg.ca_file {
                let pem = std::fs::read(path)
                    .map_err(|e| format!("email.ca_file: cannot read {}: {e}", path.display()))?;
                let cert = Certificate::from_pem(&pem)
                    .map_err(|e| format!("email.ca_file: {}: {e}", path.display()))?;
                b = b.add_root_certificate(cert);
            }
            b.build_rustls()
                .map_err(|e| format!("email TLS setup: {e}"))
        };
        let tls = match cfg.security {
            EmailSecurity::Starttls => Tls::Required(tls_params()?),
            EmailSecurity::Tls => Tls::Wrapper(tls_params()?),
            EmailSecurity::None => Tls::None,
        };
        let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(cfg.host.as_str())
            .port(port_of(&cfg))
            .tls(tls)
            .timeout(Some(Duration::from_secs(cfg.timeout_secs)))
            .pool_config(PoolConfig::new().max_size(POOL_SIZE));
        if let Some(name) = &cfg.ehlo_name {
            b = b.hello_name(ClientId::Domain(name.clone()));
        }
        if let (Some(user), Some(pass)) = (&cfg.username, password(&cfg)?) {
            b = b.credentials(Credentials::new(user.clone(), pass));
        }
        Ok(EmailTransport {
            smtp: b.build(),
            from,
            state: Mutex::new(AccountState {
                down_until: None,
                auth_failed: false,
                last: "no mail sent yet".into(),
            }),
            cfg,
        })
    }

    /// The account's config.
    pub fn config(&self) -> &EmailConfig {
        &self.cfg
    }

    /// Whether this account carries `area`.
    pub fn serves(&self, area: &str) -> bool {
        self.cfg.areas.iter().any(|a| a == area)
    }

    fn note(&self, last: String, down: bool) {
        if let Ok(mut s) = self.state.lock() {
            s.last = last;
            s.down_until = down.then(|| tokio::time::Instant::now() + DOWN_FOR);
        }
    }

    /// The stable `Message-ID` of message `id` (a retry after a crash carries the same one).
    pub fn message_id(&self, id: MessageId) -> String {
        format!(
            "<{id}.{}.pasarela@{}>",
            self.cfg.name,
            self.from.email.domain()
        )
    }

    /// Connects (with the account's TLS) and logs in, sending nothing: for `pasarela doctor`.
    pub async fn login(&self) -> Result<(), String> {
        match self.smtp.test_connection().await {
            Ok(true) => {
                if let Ok(mut s) = self.state.lock() {
                    s.auth_failed = false;
                }
                Ok(())
            }
            Ok(false) => Err("the server did not answer NOOP after login".into()),
            Err(e) => Err(classify(&self.cfg, &e).0.to_string()),
        }
    }

    /// Whether the last login was refused (the account waits for a good one).
    pub fn auth_failed(&self) -> bool {
        self.state.lock().map(|s| s.auth_failed).unwrap_or(false)
    }

    /// Sends `mail` to `to` and answers the server's final reply (`250 …`).
    pub async fn deliver(
        &self,
        to: &str,
        mail: &Email,
        message_id: Option<String>,
    ) -> Result<String, TransportError> {
        let to: Mailbox = to.parse().map_err(|e| {
            TransportError::Permanent(format!("`{to}` is not an email address: {e}"))
        })?;
        let message = build(&self.from, to, mail, message_id)?;
        match self.smtp.send(message).await {
            Ok(resp) => {
                let text = format!(
                    "{} {}",
                    resp.code(),
                    resp.message().collect::<Vec<_>>().join(" ")
                );
                self.note(format!("last mail accepted: {text}"), false);
                Ok(text)
            }
            Err(e) => {
                let (err, down) = classify(&self.cfg, &e);
                self.note(err.to_string(), down);
                if is_auth_refusal(&e)
                    && let Ok(mut s) = self.state.lock()
                {
                    s.auth_failed = true;
                }
                Err(err)
            }
        }
    }
}

/// A refused login (530, 534, 535).
fn is_auth_refusal(e: &lettre::transport::smtp::Error) -> bool {
    e.status()
        .is_some_and(|c| ["530", "534", "535"].contains(&c.to_string().as_str()))
}

/// What an SMTP failure means for the message, and whether it takes the account down.
pub fn classify(cfg: &EmailConfig, e: &lettre::transport::smtp::Error) -> (TransportError, bool) {
    let name = &cfg.name;
    let text = crate::net::error::sanitize(&e.to_string());
    if let Some(code) = e.status() {
        let code = code.to_string();
        if ["530", "534", "535"].contains(&code.as_str()) {
            return (
                TransportError::Temporary(format!(
                    "{name}: authentication failed ({code}); check email.username and the password: {text}"
                )),
                true,
            );
        }
        if e.is_transient() {
            return (TransportError::Temporary(format!("{name}: {text}")), false);
        }
        if e.is_permanent() {
            return (TransportError::Permanent(format!("{name}: {text}")), false);
        }
    }
    let lower = text.to_ascii_lowercase();
    let hint = if e.is_tls()
        || ["tls", "certificate", "handshake"]
            .iter()
            .any(|w| lower.contains(w))
    {
        "TLS failed and mail is never sent in plain text; check email.security and email.ca_file"
    } else if e.is_timeout() {
        "the server did not answer in time"
    } else {
        "check email.host and email.port"
    };
    (
        TransportError::Temporary(format!("{name}: {text}; {hint}")),
        true,
    )
}

/// The MIME message: text alone, or multipart/alternative (text, HTML); with attachments, both
/// inside multipart/mixed. Subjects are RFC 2047 encoded by lettre when not ASCII.
pub fn build(
    from: &Mailbox,
    to: Mailbox,
    mail: &Email,
    message_id: Option<String>,
) -> Result<lettre::Message, TransportError> {
    let builder = lettre::Message::builder()
        .from(from.clone())
        .to(to)
        .subject(mail.subject.clone())
        .message_id(message_id);
    let alternative = mail
        .html
        .as_ref()
        .map(|html| MultiPart::alternative_plain_html(mail.text.clone(), html.clone()));
    let message = if mail.attachments.is_empty() {
        match alternative {
            Some(alt) => builder.multipart(alt),
            None => builder.singlepart(SinglePart::plain(mail.text.clone())),
        }
    } else {
        let mut mixed = match alternative {
            Some(alt) => MultiPart::mixed().multipart(alt),
            None => MultiPart::mixed().singlepart(SinglePart::plain(mail.text.clone())),
        };
        for a in &mail.attachments {
            let ct = ContentType::parse(&a.content_type).map_err(|e| {
                TransportError::Permanent(format!(
                    "attachment {}: `{}` is not a content type: {e}",
                    a.filename, a.content_type
                ))
            })?;
            mixed =
                mixed.singlepart(MimeAttachment::new(a.filename.clone()).body(a.bytes.clone(), ct));
        }
        builder.multipart(mixed)
    };
    message.map_err(|e| TransportError::Permanent(format!("cannot build the mail: {e}")))
}

impl Transport for EmailTransport {
    fn name(&self) -> &str {
        &self.cfg.name
    }

    fn channel(&self) -> Channel {
        Channel::Email
    }

    fn capacity(&self) -> usize {
        POOL_SIZE as usize
    }

    fn health(&self) -> Health {
        let s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let down = s.auth_failed
            || s.down_until
                .is_some_and(|t| tokio::time::Instant::now() < t);
        Health {
            up: !down,
            detail: s.last.clone(),
        }
    }

    fn details(&self) -> Option<serde_json::Value> {
        Some(serde_json::json!({
            "host": self.cfg.host,
            "areas": self.cfg.areas,
            "from": self.cfg.from,
            "rate_limit": self.cfg.rate_limit.map(|r| r.to_string()),
        }))
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }

    fn send<'a>(
        &'a self,
        message: &'a Outgoing,
    ) -> BoxFuture<'a, Result<SendReceipt, TransportError>> {
        Box::pin(async move {
            let crate::model::Content::Email(mail) = &message.content else {
                return Err(TransportError::Permanent(format!(
                    "a {} message cannot go through an email account",
                    message.content.channel()
                )));
            };
            let id = self.message_id(message.id);
            let answer = self.deliver(&message.to, mail, Some(id.clone())).await?;
            // Accepted only on the server's 250 after DATA: SMTP makes the server responsible
            // from then on, so an answer cut off before it is retried (the stable Message-ID
            // lets a duplicate be recognised), never counted as sent unconfirmed.
            Ok(SendReceipt {
                provider_ref: Some(id),
                unconfirmed: None,
                answer: Some(answer),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Attachment;

    #[test]
    fn html_mail_is_alternative_inside_mixed_with_an_encoded_subject() {
        let from: Mailbox = "Facturación <facturas@fibrasur.com.ar>".parse().unwrap();
        let mail = Email {
            subject: "Factura N° 0001-00001234 — vence 10/12".into(),
            text: "Su factura".into(),
            html: Some("<p>Su factura</p>".into()),
            attachments: vec![Attachment {
                filename: "factura.pdf".into(),
                content_type: "application/pdf".into(),
                bytes: b"%PDF-1.4\n".to_vec(),
            }],
        };
        let m = build(
            &from,
            "ana@example.com".parse().unwrap(),
            &mail,
            Some("<1.f.pasarela@fibrasur.com.ar>".into()),
        )
        .unwrap();
        let raw = String::from_utf8(m.formatted()).unwrap();
        let subject = raw.lines().find(|l| l.starts_with("Subject: ")).unwrap();
        assert!(subject.contains("=?utf-8?b?"), "{raw}");
        assert!(raw.contains("multipart/mixed"));
        assert!(raw.contains("multipart/alternative"));
        assert!(raw.contains("text/plain"));
        assert!(raw.contains("application/pdf"));
        assert!(raw.contains("Message-ID: <1.f.pasarela@fibrasur.com.ar>"));
        assert!(!raw.contains("Factura N°"), "subject must be encoded");
    }
}
