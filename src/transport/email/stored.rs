//! How an email waits in the queue: the message's `body` column holds this JSON document
//! (the account that sends it, subject, text, HTML, attachments in base64), so a queued mail
//! survives a restart whole and only its account's route claims it (the store matches
//! `$.account`). [`content`] turns it back into the [`Content`] a transport is handed.

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::model::{Attachment, Content, Email};

/// An attachment as stored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StoredAttachment {
    pub filename: String,
    pub content_type: String,
    pub base64: String,
}

/// A queued mail as stored in `messages.body`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct StoredEmail {
    /// The `[[email]]` account (route) that sends it.
    pub account: String,
    pub subject: String,
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<StoredAttachment>,
}

impl StoredEmail {
    pub fn new(account: &str, mail: &Email) -> StoredEmail {
        let b64 = base64::engine::general_purpose::STANDARD;
        StoredEmail {
            account: account.to_string(),
            subject: mail.subject.clone(),
            text: mail.text.clone(),
            html: mail.html.clone(),
            attachments: mail
                .attachments
                .iter()
                .map(|a| StoredAttachment {
                    filename: a.filename.clone(),
                    content_type: a.content_type.clone(),
                    base64: b64.encode(&a.bytes),
                })
                .collect(),
        }
    }

    /// The `body` column.
    pub fn to_body(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The content of a stored email body. A body that is not the JSON form (a plain text) is
/// mailed as that text with no subject.
pub fn content(body: &str) -> Content {
    let b64 = base64::engine::general_purpose::STANDARD;
    match serde_json::from_str::<StoredEmail>(body) {
        Ok(s) => Content::Email(Email {
            subject: s.subject,
            text: s.text,
            html: s.html,
            attachments: s
                .attachments
                .into_iter()
                .map(|a| Attachment {
                    filename: a.filename,
                    content_type: a.content_type,
                    bytes: b64.decode(a.base64.as_bytes()).unwrap_or_default(),
                })
                .collect(),
        }),
        Err(_) => Content::Email(Email {
            text: body.to_string(),
            ..Default::default()
        }),
    }
}

/// How history shows a stored mail: its text part, and subject, account, whether it has HTML,
/// attachments' names and sizes.
pub fn summary(body: &str) -> (String, Option<serde_json::Value>) {
    match serde_json::from_str::<StoredEmail>(body) {
        Ok(s) => {
            let files: Vec<serde_json::Value> = s
                .attachments
                .iter()
                .map(|a| {
                    serde_json::json!({
                        "filename": a.filename,
                        "content_type": a.content_type,
                        "size": a.base64.len() / 4 * 3
                            - a.base64.bytes().rev().take_while(|b| *b == b'=').count(),
                    })
                })
                .collect();
            let view = serde_json::json!({
                "subject": s.subject,
                "account": s.account,
                "html": s.html.is_some(),
                "attachments": files,
            });
            (s.text, Some(view))
        }
        Err(_) => (body.to_string(), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_mail_comes_back_whole() {
        let mail = Email {
            subject: "Factura N° 0001-00001234 — vence 10/12".into(),
            text: "Hola".into(),
            html: Some("<p>Hola</p>".into()),
            attachments: vec![Attachment {
                filename: "f.pdf".into(),
                content_type: "application/pdf".into(),
                bytes: b"%PDF-1.4 \x00\xff".to_vec(),
            }],
        };
        let body = StoredEmail::new("facturas", &mail).to_body();
        assert_eq!(content(&body), Content::Email(mail));
        assert_eq!(
            content("just text"),
            Content::Email(Email {
                text: "just text".into(),
                ..Default::default()
            })
        );
    }
}
