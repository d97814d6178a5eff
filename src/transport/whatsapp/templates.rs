//! WhatsApp template messages as pasarela stores and checks them: the API's `template` object
//! (`{name, language, body, document}`), its validation, and its stored form. A queued template
//! message keeps its template in the message body as `whatsapp-template:` + JSON, so the history
//! shows what was sent and the dispatcher hands the transport the same template on every attempt.

use serde::{Deserialize, Serialize};

use crate::model::{Document, Whatsapp};

/// Marks a stored body that is a template, not a text.
pub const PREFIX: &str = "whatsapp-template:";

/// Longest body parameter Meta takes.
const MAX_PARAM: usize = 1024;

/// `template` of `POST /api/messages`, and the stored form.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateMessage {
    pub name: String,
    pub language: String,
    #[serde(default)]
    pub body: Vec<String>,
    /// The header's PDF: `{"url","filename"?}` or `{"base64","filename"}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub document: Option<Document>,
}

impl TemplateMessage {
    /// Checks it; errors name the field under `prefix` (`template.`).
    pub fn check(&self, prefix: &str) -> Result<(), (String, String)> {
        if !valid_name(&self.name) {
            return Err((
                format!("{prefix}name"),
                "must be a template name: lowercase letters, digits and _".into(),
            ));
        }
        if !valid_language(&self.language) {
            return Err((
                format!("{prefix}language"),
                format!(
                    "`{}` is not a language code like es_AR or en",
                    self.language
                ),
            ));
        }
        for (i, p) in self.body.iter().enumerate() {
            if p.trim().is_empty() {
                return Err((format!("{prefix}body[{i}]"), "must not be empty".into()));
            }
            if p.chars().count() > MAX_PARAM {
                return Err((
                    format!("{prefix}body[{i}]"),
                    format!("is longer than {MAX_PARAM} characters"),
                ));
            }
        }
        if let Some(d) = &self.document {
            match (&d.url, &d.media_id) {
                (Some(url), None) => {
                    if !url.starts_with("https://") && !url.starts_with("http://") {
                        return Err((
                            format!("{prefix}document.url"),
                            "must be an http:// or https:// URL".into(),
                        ));
                    }
                }
                (None, Some(id)) if !id.trim().is_empty() => {}
                _ => {
                    return Err((
                        format!("{prefix}document"),
                        "give either url or media_id".into(),
                    ));
                }
            }
        }
        Ok(())
    }

    pub fn into_content(self) -> Whatsapp {
        Whatsapp::Template {
            name: self.name,
            language: self.language,
            params: self.body,
            document: self.document,
        }
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 512
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn valid_language(code: &str) -> bool {
    let (lang, region) = match code.split_once('_') {
        Some((l, r)) => (l, Some(r)),
        None => (code, None),
    };
    (2..=3).contains(&lang.len())
        && lang.bytes().all(|b| b.is_ascii_lowercase())
        && region.is_none_or(|r| r.len() == 2 && r.bytes().all(|b| b.is_ascii_uppercase()))
}

/// The stored body of a template message.
pub fn encode(t: &TemplateMessage) -> String {
    format!(
        "{PREFIX}{}",
        serde_json::to_string(t).unwrap_or_else(|_| "{}".into())
    )
}

/// The template a stored body holds, if it is one.
pub fn decode(body: &str) -> Option<Whatsapp> {
    let json = body.strip_prefix(PREFIX)?;
    serde_json::from_str::<TemplateMessage>(json)
        .ok()
        .map(TemplateMessage::into_content)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invoice() -> TemplateMessage {
        TemplateMessage {
            name: "comprobantes".into(),
            language: "es_AR".into(),
            body: vec!["Ana".into(), "$ 1.234,50".into()],
            document: Some(Document {
                url: Some("https://billing.example/f/1.pdf".into()),
                media_id: None,
                filename: Some("factura.pdf".into()),
            }),
        }
    }

    #[test]
    fn stored_form_round_trips() {
        let t = invoice();
        let body = encode(&t);
        assert_eq!(decode(&body), Some(t.into_content()));
        assert_eq!(decode("saldo"), None);
    }

    #[test]
    fn checks_name_the_field() {
        let mut t = invoice();
        assert!(t.check("template.").is_ok());
        t.language = "spanish".into();
        assert_eq!(t.check("template.").unwrap_err().0, "template.language");
        let mut t = invoice();
        t.document.as_mut().unwrap().media_id = Some("1".into());
        assert_eq!(t.check("template.").unwrap_err().0, "template.document");
        let mut t = invoice();
        t.body[1] = " ".into();
        assert_eq!(t.check("template.").unwrap_err().0, "template.body[1]");
    }
}
