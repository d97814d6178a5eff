//! Billing events carried over several channels: `[events.invoice]` says which channels carry
//! an invoice, in order, and what each sends (a WhatsApp template with the PDF as its document
//! header, an SMS text of its own). An event is planned into steps, one per usable channel; the
//! first is queued at once and, when its message fails for good (not on WhatsApp, template
//! rejected, gave up), the database itself queues the next (a trigger on `messages`, migration
//! 4), so the fallback survives restarts and needs no task. A channel that cannot carry the
//! event here (not configured, no address, nothing to send on it) is skipped with the reason
//! noted in the event's result. The mail of the `email` channel is prepared by the caller
//! before planning ([`crate::transport::email::notice::queue_notice`]: the account chosen by
//! area, the templates filled, an invoice's PDF fetched and attached), since that is I/O.

use std::collections::BTreeSet;

use crate::config::{Config, EventChannels, WhatsappTemplateMapping};
use crate::model::{Channel, Document};
use crate::rules::template::{self, CUSTOMER_VARS, Vars};
use crate::transport::whatsapp::templates::{TemplateMessage, encode};

/// Channel names a list may hold (email is carried when an `[[email]]` account serves the area).
pub const CHANNELS: &[&str] = &["whatsapp", "email", "sms"];

/// Variables an invoice's texts may use besides the customer's.
pub const INVOICE_VARS: &[&str] = &["monto", "vencimiento", "numero", "pdf_url"];

/// One channel that will carry the event, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub channel: Channel,
    pub peer: String,
    pub body: String,
}

/// A channel passed over, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Skipped {
    pub channel: String,
    pub reason: String,
}

/// Problems in `[events]` and the payment rule's channels, as (key, message).
pub fn check_config(c: &Config, extra_fields: &BTreeSet<String>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(inv) = &c.events.invoice {
        check_channels("events.invoice", inv, extra_fields, INVOICE_VARS, &mut out);
    }
    out.extend(check_payment(&c.rules.payment, extra_fields));
    out
}

/// Problems in `[rules.payment]`'s `channels` and `whatsapp_template` (also checked when the
/// rules are saved through `PUT /api/rules`).
pub fn check_payment(
    p: &crate::config::rules::PaymentRule,
    extra_fields: &BTreeSet<String>,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if p.channels.is_some() || p.whatsapp_template.is_some() {
        let as_event = EventChannels {
            channels: p.channels.clone().unwrap_or_else(|| vec!["sms".into()]),
            whatsapp_template: p.whatsapp_template.clone(),
            sms_text: p.template.clone().or(Some("%monto%".into())),
        };
        check_channels(
            "rules.payment",
            &as_event,
            extra_fields,
            &["monto", "metodo"],
            &mut out,
        );
    }
    out
}

fn check_channels(
    key: &str,
    e: &EventChannels,
    extra_fields: &BTreeSet<String>,
    vars: &[&str],
    out: &mut Vec<(String, String)>,
) {
    if e.channels.is_empty() {
        out.push((
            format!("{key}.channels"),
            "is empty; list one or more of \"whatsapp\", \"email\", \"sms\"".into(),
        ));
    }
    let mut seen = BTreeSet::new();
    for ch in &e.channels {
        if !CHANNELS.contains(&ch.as_str()) {
            out.push((
                format!("{key}.channels"),
                format!("`{ch}` is not a channel; use \"whatsapp\", \"email\" or \"sms\""),
            ));
        } else if !seen.insert(ch.as_str()) {
            out.push((format!("{key}.channels"), format!("`{ch}` is listed twice")));
        }
    }
    let known =
        |v: &str| CUSTOMER_VARS.contains(&v) || vars.contains(&v) || extra_fields.contains(v);
    if seen.contains("whatsapp") {
        match &e.whatsapp_template {
            None => out.push((
                format!("{key}.whatsapp_template"),
                "is required when channels lists \"whatsapp\"".into(),
            )),
            Some(t) => {
                if let Err((f, m)) = probe(t).check(&format!("{key}.whatsapp_template.")) {
                    out.push((f, m));
                }
                for (i, p) in t.body.iter().enumerate() {
                    if p.trim().is_empty() {
                        out.push((
                            format!("{key}.whatsapp_template.body[{i}]"),
                            format!("is empty: parameter {{{{{}}}}} needs a value", i + 1),
                        ));
                    }
                    for v in template::variables(p) {
                        if !known(&v) {
                            out.push((
                                format!("{key}.whatsapp_template.body[{i}]"),
                                format!("%{v}% is not a variable this event has"),
                            ));
                        }
                    }
                }
                if let Some(d) = &t.document {
                    for v in template::variables(d) {
                        if !known(&v) {
                            out.push((
                                format!("{key}.whatsapp_template.document"),
                                format!("%{v}% is not a variable this event has"),
                            ));
                        }
                    }
                }
            }
        }
    }
    if seen.contains("sms") {
        match &e.sms_text {
            None => out.push((
                format!("{key}.sms_text"),
                "is required when channels lists \"sms\"".into(),
            )),
            Some(text) => {
                for v in template::variables(text) {
                    if !known(&v) {
                        out.push((
                            format!("{key}.sms_text"),
                            format!("%{v}% is not a variable this event has"),
                        ));
                    }
                }
            }
        }
    }
}

fn probe(t: &WhatsappTemplateMapping) -> TemplateMessage {
    TemplateMessage {
        name: t.name.clone(),
        language: t.language.clone(),
        body: Vec::new(),
        document: None,
    }
}

/// What is available to carry an event here.
pub struct Available {
    /// A route of this channel is configured.
    pub whatsapp: bool,
    pub email: bool,
    pub sms: bool,
    /// The event's mail, prepared beforehand when `email` is configured and listed: the
    /// recipient and the stored body of an email message, or why it cannot go.
    pub mail: Option<Result<(String, String), String>>,
}

/// Plans an event: the steps in order, and the channels skipped with their reasons. `phone`
/// is the customer's first number (normalized); `vars` the event's variables; `prefer` the
/// customer's own channel order for this event type, used instead of `e.channels` when given.
pub fn plan(
    e: &EventChannels,
    available: &Available,
    phone: Option<&str>,
    vars: &Vars,
    prefer: Option<&[String]>,
) -> (Vec<Step>, Vec<Skipped>) {
    let mut steps = Vec::new();
    let mut skipped = Vec::new();
    let mut skip = |ch: &str, reason: &str| {
        skipped.push(Skipped {
            channel: ch.into(),
            reason: reason.into(),
        })
    };
    for ch in prefer.unwrap_or(&e.channels) {
        match ch.as_str() {
            "whatsapp" => match (available.whatsapp, phone, &e.whatsapp_template) {
                (false, _, _) => skip(ch, "the whatsapp channel is not configured ([whatsapp])"),
                (_, None, _) => skip(ch, "the customer has no phone number"),
                (_, _, None) => skip(ch, "no whatsapp_template is set for this event"),
                (true, Some(p), Some(t)) => {
                    let message = TemplateMessage {
                        name: t.name.clone(),
                        language: t.language.clone(),
                        body: t.body.iter().map(|b| template::render(b, vars)).collect(),
                        document: t.document.as_ref().map(|d| Document {
                            url: Some(template::render(d, vars)),
                            media_id: None,
                            filename: t.filename.clone(),
                        }),
                    };
                    match message.check("") {
                        Ok(()) => steps.push(Step {
                            channel: Channel::Whatsapp,
                            peer: p.to_string(),
                            body: encode(&message),
                        }),
                        Err((f, m)) => skip(ch, &format!("the template's {f} {m}")),
                    }
                }
            },
            "sms" => match (available.sms, phone, &e.sms_text) {
                (false, _, _) => skip(ch, "no SMS route is configured"),
                (_, None, _) => skip(ch, "the customer has no phone number"),
                (_, _, None) => skip(ch, "no sms_text is set for this event"),
                (true, Some(p), Some(t)) => steps.push(Step {
                    channel: Channel::Sms,
                    peer: p.to_string(),
                    body: template::render(t, vars),
                }),
            },
            "email" => match (available.email, &available.mail) {
                (false, _) => skip(ch, "the email channel is not configured ([[email]])"),
                (true, None) => skip(ch, "no mail was prepared for this event"),
                (true, Some(Err(why))) => skip(ch, why),
                (true, Some(Ok((to, body)))) => steps.push(Step {
                    channel: Channel::Email,
                    peer: to.clone(),
                    body: body.clone(),
                }),
            },
            other => skip(other, "not a channel"),
        }
    }
    (steps, skipped)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invoice() -> EventChannels {
        EventChannels {
            channels: vec!["whatsapp".into(), "email".into(), "sms".into()],
            whatsapp_template: Some(WhatsappTemplateMapping {
                name: "comprobantes".into(),
                language: "es_AR".into(),
                body: vec!["%nombre%".into(), "%monto%".into(), "%vencimiento%".into()],
                document: Some("%pdf_url%".into()),
                filename: None,
            }),
            sms_text: Some("Hola %nombre%, su factura %numero% de %monto%".into()),
        }
    }

    #[test]
    fn plans_in_order_and_notes_skipped_channels() {
        let mut vars = Vars::new();
        vars.set("nombre", "Ana")
            .set("monto", "$ 1.234,50")
            .set("vencimiento", "10/12/2026")
            .set("numero", "0001-00001234")
            .set("pdf_url", "https://b.example/1.pdf");
        let all = Available {
            whatsapp: true,
            email: false,
            sms: true,
            mail: None,
        };
        let (steps, skipped) = plan(&invoice(), &all, Some("+5491123456789"), &vars, None);
        assert_eq!(steps.len(), 2);
        assert_eq!(steps[0].channel, Channel::Whatsapp);
        assert!(steps[0].body.contains("https://b.example/1.pdf"));
        assert_eq!(
            steps[1].body,
            "Hola Ana, su factura 0001-00001234 de $ 1.234,50"
        );
        assert_eq!(skipped[0].channel, "email");
        assert!(skipped[0].reason.contains("not configured"));
        let no_wa = Available {
            whatsapp: false,
            ..all
        };
        let (steps, skipped) = plan(&invoice(), &no_wa, Some("+5491123456789"), &vars, None);
        assert_eq!(steps.len(), 1);
        assert_eq!(skipped.len(), 2);
        let mailed = Available {
            whatsapp: false,
            email: true,
            sms: true,
            mail: Some(Ok(("ana@example.com".into(), "{stored mail}".into()))),
        };
        let (steps, skipped) = plan(&invoice(), &mailed, Some("+5491123456789"), &vars, None);
        assert_eq!(
            steps.iter().map(|s| s.channel).collect::<Vec<_>>(),
            [Channel::Email, Channel::Sms]
        );
        assert_eq!(steps[0].peer, "ana@example.com");
        assert_eq!(steps[0].body, "{stored mail}");
        assert_eq!(skipped[0].channel, "whatsapp");
        let no_address = Available {
            mail: Some(Err("the customer has no email address".into())),
            ..mailed
        };
        let (steps, skipped) = plan(&invoice(), &no_address, None, &vars, None);
        assert!(steps.is_empty());
        assert_eq!(skipped[1].channel, "email");
        assert_eq!(skipped[1].reason, "the customer has no email address");
        // The customer's own order replaces the configured one.
        let prefer = vec!["sms".to_string(), "whatsapp".to_string()];
        let all = Available {
            whatsapp: true,
            email: false,
            sms: true,
            mail: None,
        };
        let (steps, skipped) = plan(
            &invoice(),
            &all,
            Some("+5491123456789"),
            &vars,
            Some(&prefer),
        );
        let order: Vec<Channel> = steps.iter().map(|s| s.channel).collect();
        assert_eq!(order, vec![Channel::Sms, Channel::Whatsapp]);
        assert!(skipped.is_empty(), "{skipped:?}");
    }

    #[test]
    fn a_mapping_with_a_missing_or_unknown_parameter_is_refused() {
        let mut c: Config = toml::from_str("").unwrap();
        let mut inv = invoice();
        inv.whatsapp_template.as_mut().unwrap().body[1] = "".into();
        inv.sms_text = Some("%saldo_x%".into());
        inv.channels.push("fax".into());
        c.events.invoice = Some(inv);
        let keys: Vec<String> = check_config(&c, &BTreeSet::new())
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert!(keys.contains(&"events.invoice.whatsapp_template.body[1]".to_string()));
        assert!(keys.contains(&"events.invoice.sms_text".to_string()));
        assert!(keys.contains(&"events.invoice.channels".to_string()));
        let mut c: Config = toml::from_str("").unwrap();
        c.events.invoice = Some(invoice());
        assert!(check_config(&c, &BTreeSet::new()).is_empty());
    }
}
