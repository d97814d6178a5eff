//! Templated notices by mail: invoice, payment receipt, ticket opened, ticket closed. Each has
//! a subject, a text and an HTML template over the `%variables%` of the SMS templates plus
//! `%numero%` (the document number) and `%vencimiento%`; values are HTML-escaped in the HTML
//! part; a text part always goes beside the HTML; an invoice carries its PDF, fetched once from
//! its URL with a size cap and checked to be a PDF.
//!
//! The events wiring calls [`notice_mail`] (content only) or [`queue_notice`] (account chosen by
//! the notice's area and the stored body, ready for the outbox).

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::config::Language;
use crate::model::{Content, Email};
use crate::rules::template::{self, Use, Vars};
use crate::transport::Transport;

/// Which document a notice is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DocKind {
    Invoice,
    Payment,
    TicketOpened,
    TicketClosed,
}

impl DocKind {
    /// The area whose account sends it.
    pub fn area(self) -> &'static str {
        match self {
            DocKind::Invoice | DocKind::Payment => "facturas",
            DocKind::TicketOpened | DocKind::TicketClosed => "tickets",
        }
    }

    fn uses(self) -> Use {
        match self {
            DocKind::Invoice => Use::Customer,
            DocKind::Payment => Use::Payment,
            DocKind::TicketOpened | DocKind::TicketClosed => Use::Ticket,
        }
    }
}

/// Subject, text and HTML of one document type.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MailTemplate {
    pub subject: String,
    pub text: String,
    #[serde(default)]
    pub html: Option<String>,
}

/// The built-in templates.
pub fn default_template(kind: DocKind, language: Language) -> MailTemplate {
    let (subject, text, html) = match (kind, language) {
        (DocKind::Invoice, Language::Es) => (
            "Factura N° %numero% — vence %vencimiento%",
            "Hola %nombre%:\n\nAdjuntamos su factura N° %numero%, que vence el %vencimiento%.\n\n%empresa%",
            "<p>Hola %nombre%:</p><p>Adjuntamos su factura N° <b>%numero%</b>, que vence el <b>%vencimiento%</b>.</p><p>%empresa%</p>",
        ),
        (DocKind::Invoice, Language::En) => (
            "Invoice %numero% — due %vencimiento%",
            "Hello %nombre%,\n\nYour invoice %numero% is attached; it is due on %vencimiento%.\n\n%empresa%",
            "<p>Hello %nombre%,</p><p>Your invoice <b>%numero%</b> is attached; it is due on <b>%vencimiento%</b>.</p><p>%empresa%</p>",
        ),
        (DocKind::Payment, Language::Es) => (
            "Recibimos su pago de %monto%",
            "Hola %nombre%:\n\nRecibimos su pago de %monto% (%metodo%). ¡Gracias!\n\n%empresa%",
            "<p>Hola %nombre%:</p><p>Recibimos su pago de <b>%monto%</b> (%metodo%). ¡Gracias!</p><p>%empresa%</p>",
        ),
        (DocKind::Payment, Language::En) => (
            "Payment of %monto% received",
            "Hello %nombre%,\n\nWe received your payment of %monto% (%metodo%). Thank you!\n\n%empresa%",
            "<p>Hello %nombre%,</p><p>We received your payment of <b>%monto%</b> (%metodo%). Thank you!</p><p>%empresa%</p>",
        ),
        (DocKind::TicketOpened, Language::Es) => (
            "Reclamo N° %id% recibido",
            "Hola %nombre%:\n\nRegistramos su reclamo N° %id%: %texto%\nLe avisaremos cuando esté resuelto.\n\n%empresa%",
            "<p>Hola %nombre%:</p><p>Registramos su reclamo N° <b>%id%</b>: %texto%</p><p>Le avisaremos cuando esté resuelto.</p><p>%empresa%</p>",
        ),
        (DocKind::TicketOpened, Language::En) => (
            "Ticket %id% received",
            "Hello %nombre%,\n\nWe logged your ticket %id%: %texto%\nWe will let you know when it is solved.\n\n%empresa%",
            "<p>Hello %nombre%,</p><p>We logged your ticket <b>%id%</b>: %texto%</p><p>We will let you know when it is solved.</p><p>%empresa%</p>",
        ),
        (DocKind::TicketClosed, Language::Es) => (
            "Reclamo N° %id% resuelto",
            "Hola %nombre%:\n\nSu reclamo N° %id% fue resuelto.\n\n%empresa%",
            "<p>Hola %nombre%:</p><p>Su reclamo N° <b>%id%</b> fue resuelto.</p><p>%empresa%</p>",
        ),
        (DocKind::TicketClosed, Language::En) => (
            "Ticket %id% solved",
            "Hello %nombre%,\n\nYour ticket %id% was solved.\n\n%empresa%",
            "<p>Hello %nombre%,</p><p>Your ticket <b>%id%</b> was solved.</p><p>%empresa%</p>",
        ),
    };
    MailTemplate {
        subject: subject.into(),
        text: text.into(),
        html: Some(html.into()),
    }
}

/// Checks a template before it is saved: every variable must be known for its document type
/// (customer variables, the customers' extra fields, `%numero%`, and the type's own).
/// The error names the part: (`subject` | `text` | `html`, message).
pub fn check_template(
    kind: DocKind,
    t: &MailTemplate,
    extra_fields: &BTreeSet<String>,
) -> Result<(), (String, String)> {
    let mut extra = extra_fields.clone();
    extra.insert("numero".into());
    for (part, text) in [
        ("subject", Some(t.subject.as_str())),
        ("text", Some(t.text.as_str())),
        ("html", t.html.as_deref()),
    ] {
        if let Some(text) = text {
            template::check(text, kind.uses(), &extra).map_err(|e| (part.to_string(), e))?;
        }
    }
    Ok(())
}

/// Escapes text for HTML.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Renders a template (HTML values escaped).
pub fn render(t: &MailTemplate, vars: &Vars, names: &[String]) -> Email {
    let mut escaped = Vars::new();
    for n in names {
        if let Some(v) = vars.get(n) {
            escaped.set(n, escape_html(v));
        }
    }
    Email {
        subject: template::render(&t.subject, vars).replace(['\r', '\n'], " "),
        text: template::render(&t.text, vars),
        html: t.html.as_ref().map(|h| template::render(h, &escaped)),
        attachments: vec![],
    }
}

/// `template` (or the built-in one for `language`) filled with `vars`; no attachment.
fn filled(
    kind: DocKind,
    vars: &Vars,
    language: Language,
    template: Option<&MailTemplate>,
) -> Email {
    let t = template
        .cloned()
        .unwrap_or_else(|| default_template(kind, language));
    let mut names = Vec::new();
    for part in [Some(&t.subject), Some(&t.text), t.html.as_ref()]
        .into_iter()
        .flatten()
    {
        names.extend(template::variables(part));
    }
    render(&t, vars, &names)
}

/// A ticket mail (opened or closed) ready for the outbox, without I/O so it can be queued in
/// the ticket's own transaction: the `tickets` account (else `todo`), the checked recipient and
/// the stored body. The error says why it cannot go (no account, a bad address).
pub fn ticket_mail(
    transports: &[Arc<dyn Transport>],
    to: &str,
    kind: DocKind,
    vars: &Vars,
    language: Language,
    template: Option<&MailTemplate>,
) -> Result<super::api::Prepared, String> {
    let account = super::account_for(transports, kind.area()).ok_or_else(|| {
        format!(
            "no [[email]] account serves `{}` and there is no `todo` account",
            kind.area()
        )
    })?;
    let to = super::api::address(to)?;
    let mail = filled(kind, vars, language, template);
    let name = account.config().name.clone();
    Ok(super::api::Prepared {
        body: super::stored::StoredEmail::new(&name, &mail).to_body(),
        account: name,
        to: to.email.to_string(),
    })
}

/// The mail of a notice: `template` (or the built-in one for `language`) filled with `vars`,
/// and for an invoice with `pdf_url` its PDF attached (fetched once, at most
/// [`super::api::MAX_ATTACHMENT`] bytes, checked to be a PDF). The error says why (for the
/// message's failure reason).
pub async fn notice_mail(
    kind: DocKind,
    vars: &Vars,
    language: Language,
    template: Option<&MailTemplate>,
    pdf_url: Option<&str>,
) -> Result<Content, String> {
    let mut mail = filled(kind, vars, language, template);
    if let Some(url) = pdf_url {
        let file = super::api::fetch_attachment(url, super::api::MAX_ATTACHMENT).await?;
        if file.content_type != "application/pdf" {
            return Err(format!("{url} is not a PDF ({})", file.content_type));
        }
        mail.attachments.push(file);
    }
    Ok(Content::Email(mail))
}

/// A notice ready for the outbox: the account chosen by the notice's area (falling back to
/// `todo`), the recipient and the `body` column of an email message.
pub async fn queue_notice(
    transports: &[Arc<dyn Transport>],
    to: &str,
    kind: DocKind,
    vars: &Vars,
    language: Language,
    template: Option<&MailTemplate>,
    pdf_url: Option<&str>,
) -> Result<super::api::Prepared, String> {
    let to = super::api::address(to)?;
    let account = super::account_for(transports, kind.area()).ok_or_else(|| {
        format!(
            "no [[email]] account serves `{}` and there is no `todo` account",
            kind.area()
        )
    })?;
    let Content::Email(mail) = notice_mail(kind, vars, language, template, pdf_url).await? else {
        return Err("not a mail".into());
    };
    let name = account.config().name.clone();
    Ok(super::api::Prepared {
        body: super::stored::StoredEmail::new(&name, &mail).to_body(),
        account: name,
        to: to.email.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_pass_their_own_check_and_unknown_variables_are_refused() {
        for kind in [
            DocKind::Invoice,
            DocKind::Payment,
            DocKind::TicketOpened,
            DocKind::TicketClosed,
        ] {
            for lang in [Language::Es, Language::En] {
                check_template(kind, &default_template(kind, lang), &BTreeSet::new()).unwrap();
            }
        }
        let mut t = default_template(DocKind::Invoice, Language::Es);
        t.html = Some("<p>%monto_total%</p>".into());
        let (part, msg) = check_template(DocKind::Invoice, &t, &BTreeSet::new()).unwrap_err();
        assert_eq!(part, "html");
        assert!(msg.contains("%monto_total%"), "{msg}");
    }

    #[tokio::test]
    async fn values_are_escaped_in_html_only() {
        let mut vars = Vars::new();
        vars.set("nombre", "Ana <b>&</b>")
            .set("numero", "0001-00001234")
            .set("vencimiento", "10/12")
            .set("empresa", "Fibra Sur");
        let Content::Email(m) = notice_mail(DocKind::Invoice, &vars, Language::Es, None, None)
            .await
            .unwrap()
        else {
            panic!()
        };
        assert_eq!(m.subject, "Factura N° 0001-00001234 — vence 10/12");
        assert!(m.text.contains("Hola Ana <b>&</b>:"));
        assert!(
            m.html
                .unwrap()
                .contains("Hola Ana &lt;b&gt;&amp;&lt;/b&gt;:")
        );
    }
}
