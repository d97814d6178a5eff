//! Mail from API requests: the email fields of `POST /api/messages` (subject, html, area,
//! attachments by URL or inline base64), checked and turned into the stored form with the
//! account chosen by area; attachments fetched once with a size cap and a content check; and
//! the test send of `POST /api/email/test`. Errors name the request field.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use lettre::message::Mailbox;
use serde::{Deserialize, Serialize};

use super::stored::StoredEmail;
use crate::model::{Attachment, Email};
use crate::transport::Transport;

/// Largest attachment fetched or accepted inline.
pub const MAX_ATTACHMENT: usize = 10 * 1024 * 1024;
/// Attachments in one mail.
pub const MAX_ATTACHMENTS: usize = 10;

/// An attachment in a request: `{ "url" }` or `{ "filename", "content_type", "base64" }`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttachmentRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base64: Option<String>,
}

/// A request's mail, ready to queue: the account (route) and the `body` column.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub account: String,
    pub to: String,
    pub body: String,
}

/// Whether a content type may be attached: PDF or an image.
fn allowed(content_type: &str) -> bool {
    let ct = content_type.to_ascii_lowercase();
    ct == "application/pdf" || ct.starts_with("image/")
}

/// Checks bytes against their type: a PDF must start with `%PDF-`.
fn looks_like(content_type: &str, bytes: &[u8]) -> Result<(), String> {
    if content_type.eq_ignore_ascii_case("application/pdf") && !bytes.starts_with(b"%PDF-") {
        return Err("is not a PDF (it does not start with %PDF-)".into());
    }
    Ok(())
}

/// Fetches an attachment once: at most `cap` bytes, a PDF or an image by its content type
/// (and a PDF's bytes checked). The error says why, for the message's `last_error`.
pub async fn fetch_attachment(url: &str, cap: usize) -> Result<Attachment, String> {
    if !crate::config::http_url(url) {
        return Err(format!("`{url}` is not an http(s) URL"));
    }
    let client = crate::net::http::client(&crate::net::http::ClientOptions::new(
        Duration::from_secs(30),
    ))?;
    let resp = client
        .get(url)
        .send()
        .await
        .map_err(|e| crate::net::error::describe(url, &e))?;
    if !resp.status().is_success() {
        return Err(format!("{url} answered {}", resp.status()));
    }
    let content_type = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    if !allowed(&content_type) {
        return Err(format!(
            "{url} answered `{content_type}`, not a PDF or an image"
        ));
    }
    let filename = url
        .split(['?', '#'])
        .next()
        .and_then(|u| u.rsplit('/').next())
        .filter(|n| !n.is_empty())
        .unwrap_or(if content_type == "application/pdf" {
            "documento.pdf"
        } else {
            "imagen"
        })
        .to_string();
    let bytes = crate::net::http::read_capped(resp, cap)
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    looks_like(&content_type, &bytes).map_err(|e| format!("{url} {e}"))?;
    Ok(Attachment {
        filename,
        content_type,
        bytes,
    })
}

/// Checks an address (`Ana <ana@x.com>` or `ana@x.com`).
pub fn address(text: &str) -> Result<Mailbox, String> {
    text.trim()
        .parse::<Mailbox>()
        .map_err(|e| format!("`{text}` is not an email address ({e})"))
}

/// The email fields of one request, checked; `prefix` as in the API (`""`, `messages[3].`).
#[allow(clippy::too_many_arguments)]
pub async fn prepare(
    transports: &[Arc<dyn Transport>],
    to: &str,
    subject: Option<&str>,
    text: &str,
    html: Option<&str>,
    area: Option<&str>,
    attachments: &[AttachmentRequest],
    prefix: &str,
) -> Result<Prepared, (String, String)> {
    let field = |f: &str| format!("{prefix}{f}");
    let to = address(to).map_err(|e| (field("to"), e))?;
    let subject = subject.unwrap_or("").trim();
    if subject.is_empty() {
        return Err((field("subject"), "must not be empty for an email".into()));
    }
    if text.trim().is_empty() {
        return Err((
            field("text"),
            "must not be empty: every mail has a text part".into(),
        ));
    }
    let area = area.unwrap_or("todo");
    if !super::check::AREAS.contains(&area) {
        return Err((
            field("area"),
            format!(
                "`{area}` is not an area; use {}",
                super::check::AREAS.join(", ")
            ),
        ));
    }
    let account = super::account_for(transports, area).ok_or_else(|| {
        (
            field("area"),
            format!("no [[email]] account serves `{area}` and there is no `todo` account"),
        )
    })?;
    if attachments.len() > MAX_ATTACHMENTS {
        return Err((
            field("attachments"),
            format!("has {}; at most {MAX_ATTACHMENTS}", attachments.len()),
        ));
    }
    let mut files = Vec::new();
    for (i, a) in attachments.iter().enumerate() {
        let f = |k: &str| field(&format!("attachments[{i}].{k}"));
        let file = match (&a.url, &a.base64) {
            (Some(url), None) => fetch_attachment(url, MAX_ATTACHMENT)
                .await
                .map_err(|e| (f("url"), e))?,
            (None, Some(b64)) => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(b64.trim().as_bytes())
                    .map_err(|e| (f("base64"), format!("is not base64: {e}")))?;
                if bytes.len() > MAX_ATTACHMENT {
                    return Err((f("base64"), format!("is over {MAX_ATTACHMENT} bytes")));
                }
                let ct = a.content_type.clone().unwrap_or_default();
                if !allowed(&ct) {
                    return Err((
                        f("content_type"),
                        format!("`{ct}` is not application/pdf or image/*"),
                    ));
                }
                looks_like(&ct, &bytes).map_err(|e| (f("base64"), e))?;
                let filename = a
                    .filename
                    .clone()
                    .filter(|n| !n.trim().is_empty() && !n.contains(['/', '\\']))
                    .ok_or_else(|| (f("filename"), "is required, without slashes".into()))?;
                Attachment {
                    filename,
                    content_type: ct,
                    bytes,
                }
            }
            _ => {
                return Err((
                    field(&format!("attachments[{i}]")),
                    "give either url, or filename, content_type and base64".into(),
                ));
            }
        };
        files.push(file);
    }
    let mail = Email {
        subject: subject.to_string(),
        text: text.to_string(),
        html: html.map(str::to_string),
        attachments: files,
    };
    Ok(Prepared {
        account: account.config().name.clone(),
        to: to.email.to_string(),
        body: StoredEmail::new(&account.config().name, &mail).to_body(),
    })
}

/// The outcome of a test send, as `POST /api/email/test` answers it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct TestOutcome {
    pub account: String,
    pub to: String,
    pub ok: bool,
    /// The server's reply (`250 2.0.0 Ok: queued`) or why the send failed.
    pub smtp: String,
}

/// Sends a test mail from `account` to `to` (default: its `test_to`). `Err` is (field, message)
/// for a request that cannot be tried at all.
pub async fn test_send(
    transports: &[Arc<dyn Transport>],
    account: &str,
    to: Option<&str>,
) -> Result<TestOutcome, (String, String)> {
    let acc = super::accounts(transports)
        .into_iter()
        .find(|a| a.config().name == account)
        .ok_or_else(|| {
            (
                "account".to_string(),
                format!("`{account}` is not the name of an [[email]] account"),
            )
        })?;
    let to = match to.or(acc.config().test_to.as_deref()) {
        Some(t) => address(t).map_err(|e| ("to".to_string(), e))?,
        None => {
            return Err((
                "to".into(),
                format!("give `to`, or set test_to on [[email]] `{account}`"),
            ));
        }
    };
    let mail = Email {
        subject: format!("Prueba de envío de pasarela ({account})"),
        text: format!(
            "Este es un correo de prueba de la cuenta {account} de pasarela.\n\
             This is a test mail from pasarela's account {account}.\n"
        ),
        html: None,
        attachments: vec![],
    };
    let to_text = to.email.to_string();
    Ok(match acc.deliver(&to_text, &mail, None).await {
        Ok(reply) => TestOutcome {
            account: account.into(),
            to: to_text,
            ok: true,
            smtp: reply,
        },
        Err(e) => TestOutcome {
            account: account.into(),
            to: to_text,
            ok: false,
            smtp: e.to_string(),
        },
    })
}
