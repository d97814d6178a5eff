//! The Graph API calls pasarela makes, written from Meta's published OpenAPI document
//! (business-messaging-api v23.0): `POST /{version}/{phone_number_id}/messages` (text and
//! template messages, a template's document header) and `GET /{version}/{phone_number_id}`
//! (health), and how Meta's error codes map to a retry or a permanent failure.

use serde::Deserialize;
use serde_json::{Value, json};

use crate::model::Whatsapp;

/// Longest answer body read from the Graph API.
pub const MAX_ANSWER: usize = 256 * 1024;

/// The JSON body of `POST /{phone_number_id}/messages` for one message to `to` (digits, the
/// `wa_id` form).
pub fn message_body(to: &str, content: &Whatsapp) -> Value {
    match content {
        Whatsapp::Text { body } => json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": to,
            "type": "text",
            "text": {"preview_url": false, "body": body},
        }),
        Whatsapp::Template {
            name,
            language,
            params,
            document,
        } => {
            let mut components = Vec::new();
            if let Some(d) = document {
                let mut doc = serde_json::Map::new();
                if let Some(url) = &d.url {
                    doc.insert("link".into(), json!(url));
                }
                if let Some(id) = &d.media_id {
                    doc.insert("id".into(), json!(id));
                }
                if let Some(f) = &d.filename {
                    doc.insert("filename".into(), json!(f));
                }
                components.push(json!({
                    "type": "header",
                    "parameters": [{"type": "document", "document": doc}],
                }));
            }
            if !params.is_empty() {
                let parameters: Vec<Value> = params
                    .iter()
                    .map(|p| json!({"type": "text", "text": p}))
                    .collect();
                components.push(json!({"type": "body", "parameters": parameters}));
            }
            json!({
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": to,
                "type": "template",
                "template": {
                    "name": name,
                    "language": {"policy": "deterministic", "code": language},
                    "components": components,
                },
            })
        }
    }
}

/// The `multipart/form-data` body of `POST /{phone_number_id}/media` for one PDF: the parts
/// `messaging_product` (`whatsapp`), `type` (`application/pdf`) and `file` (the bytes, with
/// their own `Content-Type: application/pdf`). Returns the request's `Content-Type` (with the
/// boundary) and the body. The boundary is random and checked not to occur in the file.
pub fn media_form(pdf: &[u8], filename: &str) -> (String, Vec<u8>) {
    let boundary = loop {
        let b = format!(
            "pasarela-{:016x}{:016x}",
            getrandom::u64().unwrap_or(0x7061_7361_7265_6c61),
            getrandom::u64().unwrap_or(now_nanos())
        );
        if !pdf.windows(b.len()).any(|w| w == b.as_bytes()) {
            break b;
        }
    };
    // A filename is a quoted-string in Content-Disposition: no quotes, backslashes or controls.
    let name: String = filename
        .chars()
        .map(|c| {
            if c == '"' || c == '\\' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    let mut body = Vec::with_capacity(pdf.len() + 512);
    for (field, value) in [
        ("messaging_product", "whatsapp"),
        ("type", "application/pdf"),
    ] {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\
             Content-Type: application/pdf\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(pdf);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// The answer of a media upload: `{"id": "<media id>"}`.
#[derive(Debug, Deserialize)]
pub struct UploadAnswer {
    pub id: String,
}

/// One template of `GET /{waba_id}/message_templates` (`data[]`).
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
pub struct Template {
    pub name: String,
    pub language: String,
    #[serde(default)]
    pub category: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub components: Vec<Value>,
}

impl Template {
    /// How many `{{n}}` parameters its body takes.
    pub fn body_params(&self) -> usize {
        self.components
            .iter()
            .filter(|c| {
                c["type"]
                    .as_str()
                    .is_some_and(|t| t.eq_ignore_ascii_case("body"))
            })
            .filter_map(|c| c["text"].as_str())
            .map(|t| t.matches("{{").count())
            .sum()
    }

    /// Whether its header is a document.
    pub fn document_header(&self) -> bool {
        self.components.iter().any(|c| {
            c["type"]
                .as_str()
                .is_some_and(|t| t.eq_ignore_ascii_case("header"))
                && c["format"]
                    .as_str()
                    .is_some_and(|f| f.eq_ignore_ascii_case("document"))
        })
    }
}

#[derive(Debug, Deserialize)]
struct TemplatePage {
    #[serde(default)]
    data: Vec<Template>,
    #[serde(default)]
    paging: Option<Paging>,
}

#[derive(Debug, Deserialize)]
struct Paging {
    #[serde(default)]
    next: Option<String>,
}

/// Every template of the business account, following `paging.next` (at most 50 pages).
pub async fn fetch_templates(
    http: &reqwest::Client,
    cfg: &crate::config::WhatsappConfig,
    token: &str,
) -> Result<Vec<Template>, String> {
    let Some(waba) = &cfg.waba_id else {
        return Err("whatsapp.waba_id is not set: it is needed to list templates".into());
    };
    let mut url = format!(
        "{}/{}/{waba}/message_templates?fields=name,language,category,status,components&limit=100",
        cfg.base_url.trim_end_matches('/'),
        cfg.api_version
    );
    let mut out = Vec::new();
    for _ in 0..50 {
        let resp = http
            .get(&url)
            .bearer_auth(token)
            .send()
            .await
            .map_err(|e| crate::net::error::describe(&cfg.base_url, &e))?;
        let status = resp.status().as_u16();
        let body = crate::net::http::read_capped(resp, 8 * MAX_ANSWER)
            .await
            .map_err(|e| e.to_string())?;
        if !(200..300).contains(&status) {
            let err = serde_json::from_slice::<ErrorBody>(&body).ok();
            return Err(match verdict(status, err.as_ref().map(|e| &e.error)) {
                Verdict::Retry(w)
                | Verdict::Permanent(w)
                | Verdict::Undeliverable(w)
                | Verdict::WindowClosed(w)
                | Verdict::BadToken(w) => w,
            });
        }
        let page: TemplatePage = serde_json::from_slice(&body)
            .map_err(|e| format!("the template list is not the documented JSON: {e}"))?;
        out.extend(page.data);
        // Only follow links on the configured host.
        match page.paging.and_then(|p| p.next) {
            Some(next) if next.starts_with(cfg.base_url.trim_end_matches('/')) => url = next,
            _ => break,
        }
    }
    Ok(out)
}

/// A successful send: `messages[].id` (the wamid) and `contacts[].wa_id`.
#[derive(Debug, Deserialize)]
pub struct SendAnswer {
    #[serde(default)]
    pub contacts: Vec<Contact>,
    #[serde(default)]
    pub messages: Vec<SentMessage>,
}

#[derive(Debug, Deserialize)]
pub struct Contact {
    #[serde(default)]
    pub input: Option<String>,
    #[serde(default)]
    pub wa_id: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct SentMessage {
    pub id: String,
}

/// Meta's error body: `{"error": {message, type, code, error_subcode, error_data, fbtrace_id}}`.
#[derive(Debug, Deserialize)]
pub struct ErrorBody {
    pub error: GraphError,
}

#[derive(Debug, Clone, Deserialize)]
pub struct GraphError {
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub code: i64,
    #[serde(default)]
    pub error_data: Option<ErrorData>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ErrorData {
    #[serde(default)]
    pub details: Option<String>,
}

/// What an error means for the message and the channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Wait and retry (throughput or pair rate limits, Meta's own trouble).
    Retry(String),
    /// The message cannot go: this reason.
    Permanent(String),
    /// The number is not on WhatsApp (131026): permanent, and the event fallback takes over.
    Undeliverable(String),
    /// The customer's 24-hour window is closed (131047): only a template can go.
    WindowClosed(String),
    /// The access token does not work (190): the channel is down until it does.
    BadToken(String),
}

/// The reason text a verdict fails a message with; `undeliverable` words are what the event
/// fallback looks for.
pub const UNDELIVERABLE: &str = "undeliverable on WhatsApp";

/// Maps an error answer (HTTP `status`, Meta's body when it has one) to a verdict.
pub fn verdict(status: u16, error: Option<&GraphError>) -> Verdict {
    let Some(e) = error else {
        return if status == 429 || status >= 500 {
            Verdict::Retry(format!("the Graph API answered HTTP {status}"))
        } else {
            Verdict::Permanent(format!("the Graph API answered HTTP {status}"))
        };
    };
    let details = e
        .error_data
        .as_ref()
        .and_then(|d| d.details.clone())
        .unwrap_or_default();
    let said = if details.is_empty() {
        crate::net::error::sanitize(&e.message)
    } else {
        format!(
            "{}: {}",
            crate::net::error::sanitize(&e.message),
            crate::net::error::sanitize(&details)
        )
    };
    match e.code {
        130429 => Verdict::Retry(format!("WhatsApp throughput limit (130429): {said}")),
        131056 => Verdict::Retry(format!(
            "too many messages to this number just now (131056): {said}"
        )),
        131026 => Verdict::Undeliverable(format!(
            "{UNDELIVERABLE} (131026): the number may not use WhatsApp: {said}"
        )),
        131047 => Verdict::WindowClosed(format!(
            "the customer's 24-hour window is closed (131047); only a template can go: {said}"
        )),
        190 => Verdict::BadToken(format!(
            "the access token was refused (190): {said}; renew whatsapp.access_token"
        )),
        100 => Verdict::Permanent(format!(
            "invalid parameter (100){}: {said}",
            field_of(&said)
                .map(|f| format!(", field {f}"))
                .unwrap_or_default()
        )),
        _ if status == 429 || status >= 500 => {
            Verdict::Retry(format!("WhatsApp error {} (HTTP {status}): {said}", e.code))
        }
        _ => Verdict::Permanent(format!("WhatsApp error {} (HTTP {status}): {said}", e.code)),
    }
}

/// The parameter an error 100 names (`… param text['body'] …`, `(#100) The parameter to is
/// required.`), when it names one.
fn field_of(text: &str) -> Option<String> {
    for marker in ["param ", "parameter ", "Param "] {
        if let Some(at) = text.find(marker) {
            let rest = &text[at + marker.len()..];
            let word: String = rest
                .chars()
                .take_while(|c| !c.is_whitespace() && *c != ',' && *c != ':')
                .collect();
            let word = word.trim_end_matches('.');
            if !word.is_empty() && word != "is" {
                return Some(word.to_string());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(code: i64, message: &str, details: Option<&str>) -> GraphError {
        GraphError {
            message: message.into(),
            code,
            error_data: details.map(|d| ErrorData {
                details: Some(d.into()),
            }),
        }
    }

    #[test]
    fn meta_codes_map_to_retry_or_permanent() {
        assert!(matches!(
            verdict(400, Some(&err(130429, "Rate limit hit", None))),
            Verdict::Retry(_)
        ));
        assert!(matches!(
            verdict(400, Some(&err(131056, "pair rate", None))),
            Verdict::Retry(_)
        ));
        let Verdict::Undeliverable(why) =
            verdict(400, Some(&err(131026, "Message undeliverable", None)))
        else {
            panic!()
        };
        assert!(why.contains(UNDELIVERABLE));
        assert!(matches!(
            verdict(401, Some(&err(190, "Error validating access token", None))),
            Verdict::BadToken(_)
        ));
        assert!(matches!(
            verdict(400, Some(&err(131047, "Re-engagement message", None))),
            Verdict::WindowClosed(_)
        ));
        let Verdict::Permanent(why) = verdict(
            400,
            Some(&err(
                100,
                "Invalid parameter",
                Some("Parameter value is not valid: param template['name']"),
            )),
        ) else {
            panic!()
        };
        assert!(why.contains("field template['name']"), "{why}");
        assert!(matches!(verdict(503, None), Verdict::Retry(_)));
        assert!(matches!(verdict(404, None), Verdict::Permanent(_)));
    }

    #[test]
    fn media_form_has_the_three_documented_parts() {
        let pdf = b"%PDF-1.4\r\n--not-the-boundary\r\n%%EOF";
        let (kind, body) = media_form(pdf, "factura \"1\".pdf");
        let boundary = kind.strip_prefix("multipart/form-data; boundary=").unwrap();
        let text = String::from_utf8_lossy(&body);
        let parts: Vec<&str> = text.split(&format!("--{boundary}")).collect();
        // preamble, three parts, and the closing "--\r\n"
        assert_eq!(parts.len(), 5, "{text}");
        assert_eq!(parts[0], "");
        assert_eq!(
            parts[1],
            "\r\nContent-Disposition: form-data; name=\"messaging_product\"\r\n\r\nwhatsapp\r\n"
        );
        assert_eq!(
            parts[2],
            "\r\nContent-Disposition: form-data; name=\"type\"\r\n\r\napplication/pdf\r\n"
        );
        assert!(parts[3].starts_with(
            "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"factura _1_.pdf\"\r\n\
             Content-Type: application/pdf\r\n\r\n%PDF-1.4"
        ));
        assert!(body.windows(pdf.len()).any(|w| w == pdf));
        assert_eq!(parts[4], "--\r\n");
    }

    #[test]
    fn template_with_document_header_has_the_documented_shape() {
        let body = message_body(
            "5491123456789",
            &Whatsapp::Template {
                name: "comprobantes".into(),
                language: "es_AR".into(),
                params: vec!["Ana".into()],
                document: Some(crate::model::Document {
                    url: Some("https://b.example/1.pdf".into()),
                    media_id: None,
                    filename: Some("f.pdf".into()),
                }),
            },
        );
        let comps = &body["template"]["components"];
        assert_eq!(comps[0]["type"], "header");
        assert_eq!(
            comps[0]["parameters"][0]["document"]["link"],
            "https://b.example/1.pdf"
        );
        assert_eq!(comps[1]["parameters"][0]["text"], "Ana");
        assert_eq!(body["template"]["language"]["code"], "es_AR");
    }
}
