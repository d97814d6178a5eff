//! Keyword auto-replies, templates and delivery windows. Pure: no I/O, no clock.
//!
//! [`decide`] takes an inbound message, what the store knows about its sender and the settings,
//! and returns the actions to take. The inbox task ([`crate::inbox`]) gathers those facts and
//! carries the actions out in one transaction with marking the message handled.
//!
//! Order when a message matches several rules: opt-out (`BAJA`, `STOP`), opt-in (`ALTA`),
//! ticket, balance; a message matching none gets the help text or nothing (`unknown`).
//! Safety first: senders that are not phone numbers (alphanumeric names, short codes) never get
//! an answer, and no number gets more than `max_replies_per_hour` auto-replies.

pub mod customer;
pub mod template;
pub mod text;
pub mod window;

use std::collections::BTreeSet;

use serde::Serialize;

pub use crate::config::rules::{
    BalanceRule, GroupConfig, OptOutRule, OutageRule, PaymentRule, Settings, TicketRule,
    UnknownMode,
};
pub use customer::{Customer, Money, OptOut};
use template::{Use, Vars};
use text::Keywords;

use crate::config::Language;

/// Default texts, per language.
struct Defaults {
    balance: &'static str,
    balance_unknown: &'static str,
    balance_unavailable: &'static str,
    ticket: &'static str,
    ticket_limit: &'static str,
    alert: &'static str,
    payment: &'static str,
    payment_without_balance: &'static str,
    stop: &'static str,
    start: &'static str,
    help: &'static str,
    outage_notice: &'static str,
    outage_reply: &'static str,
    outage_resolved: &'static str,
}

const ES: Defaults = Defaults {
    balance: "Estimado %nombre%, su saldo pendiente de pago es %deuda%. Gracias por comunicarse con %empresa%.",
    balance_unknown: "%empresa%: no encontramos un cliente con este número. Comuníquese con nosotros para actualizar sus datos.",
    balance_unavailable: "Estimado %nombre%, su saldo no está disponible en este momento. Consúltelo con %empresa%.",
    ticket: "%empresa%: registramos su reclamo con el número %id%. Un técnico se comunicará a la brevedad.",
    ticket_limit: "%empresa%: ya registramos sus reclamos de hoy. Un técnico se comunicará a la brevedad.",
    alert: "Nuevo ticket %id% de %nombre% (%telefono%): %texto%",
    payment: "%empresa%: recibimos su pago de %monto%. Saldo pendiente: %deuda%. ¡Gracias!",
    payment_without_balance: "%empresa%: recibimos su pago de %monto%. ¡Gracias!",
    stop: "%empresa%: no recibirá más avisos en este número. Para volver a recibirlos envíe ALTA.",
    start: "%empresa%: volverá a recibir avisos en este número.",
    help: "%empresa%: envíe %clave_saldo% para conocer su saldo o %clave_soporte% para pedir asistencia técnica. Envíe %clave_baja% para no recibir avisos.",
    outage_notice: "%empresa%: hay un corte de servicio en la zona %zona%. %mensaje% Estimamos normalizarlo %eta%. Le avisaremos cuando se restablezca.",
    outage_reply: "%empresa%: estamos trabajando en el corte de la zona %zona%. Estimamos normalizarlo %eta%. No hace falta abrir un reclamo; le avisaremos cuando se restablezca.",
    outage_resolved: "%empresa%: el servicio en la zona %zona% ya está normalizado. %mensaje% Si sigue sin conexión, reinicie su equipo o envíe %clave_soporte%.",
};

const EN: Defaults = Defaults {
    balance: "Dear %nombre%, your pending balance is %deuda%. Thank you for contacting %empresa%.",
    balance_unknown: "%empresa%: we found no customer with this number. Please contact us to update your details.",
    balance_unavailable: "Dear %nombre%, your balance is not available right now. Please ask %empresa% for it.",
    ticket: "%empresa%: your support request is number %id%. A technician will contact you soon.",
    ticket_limit: "%empresa%: we already have your requests for today. A technician will contact you soon.",
    alert: "New ticket %id% from %nombre% (%telefono%): %texto%",
    payment: "%empresa%: we received your payment of %monto%. Pending balance: %deuda%. Thank you!",
    payment_without_balance: "%empresa%: we received your payment of %monto%. Thank you!",
    stop: "%empresa%: you will get no more notices on this number. Text ALTA to get them again.",
    start: "%empresa%: you will get notices on this number again.",
    help: "%empresa%: text %clave_saldo% for your balance or %clave_soporte% for technical support. Text %clave_baja% to stop notices.",
    outage_notice: "%empresa%: there is a service outage in the %zona% area. %mensaje% We expect it back %eta%. We will let you know when it is restored.",
    outage_reply: "%empresa%: we are working on the outage in the %zona% area. We expect it back %eta%. No need to open a request; we will let you know when it is restored.",
    outage_resolved: "%empresa%: service in the %zona% area is back. %mensaje% If you are still offline, restart your router or text %clave_soporte%.",
};

fn fill(slot: &mut Option<String>, default: &str) {
    if slot.as_deref().is_none_or(|s| s.trim().is_empty()) {
        *slot = Some(default.to_string());
    }
}

fn text(slot: &Option<String>) -> &str {
    slot.as_deref().unwrap_or("")
}

impl Settings {
    /// Fills every template left unset with the default of `language`.
    pub fn fill_defaults(&mut self, language: Language) {
        let d = match language {
            Language::Es => &ES,
            Language::En => &EN,
        };
        fill(&mut self.balance.reply, d.balance);
        fill(&mut self.balance.unknown_customer_reply, d.balance_unknown);
        fill(&mut self.balance.unavailable_reply, d.balance_unavailable);
        fill(&mut self.ticket.reply, d.ticket);
        fill(&mut self.ticket.limit_reply, d.ticket_limit);
        fill(&mut self.ticket.alert, d.alert);
        fill(&mut self.payment.template, d.payment);
        fill(
            &mut self.payment.template_without_balance,
            d.payment_without_balance,
        );
        fill(&mut self.optout.stop_reply, d.stop);
        fill(&mut self.optout.start_reply, d.start);
        fill(&mut self.help_reply, d.help);
        fill(&mut self.outage.notice, d.outage_notice);
        fill(&mut self.outage.reply, d.outage_reply);
        fill(&mut self.outage.resolved, d.outage_resolved);
    }

    /// Every problem, as (key, message): keyword lists, templates (unknown variables), group
    /// names. `extra_fields` are the customer fields templates may also use.
    pub fn check(
        &self,
        extra_fields: &BTreeSet<String>,
        groups: &[String],
    ) -> Vec<(String, String)> {
        let mut errors = Vec::new();
        let mut kw = |key: &str, list: &[String]| {
            if let Err(e) = text::check_keywords(list) {
                errors.push((key.to_string(), e));
            }
        };
        kw("rules.balance.keywords", &self.balance.keywords);
        kw("rules.ticket.keywords", &self.ticket.keywords);
        kw("rules.optout.stop_keywords", &self.optout.stop_keywords);
        kw("rules.optout.start_keywords", &self.optout.start_keywords);
        let templates: [(&str, &Option<String>, Use); 14] = [
            ("rules.outage.notice", &self.outage.notice, Use::Outage),
            ("rules.outage.reply", &self.outage.reply, Use::Outage),
            ("rules.outage.resolved", &self.outage.resolved, Use::Outage),
            ("rules.balance.reply", &self.balance.reply, Use::Customer),
            (
                "rules.balance.unknown_customer_reply",
                &self.balance.unknown_customer_reply,
                Use::Customer,
            ),
            (
                "rules.balance.unavailable_reply",
                &self.balance.unavailable_reply,
                Use::Customer,
            ),
            ("rules.ticket.reply", &self.ticket.reply, Use::Ticket),
            (
                "rules.ticket.limit_reply",
                &self.ticket.limit_reply,
                Use::Customer,
            ),
            ("rules.ticket.alert", &self.ticket.alert, Use::Ticket),
            (
                "rules.payment.template",
                &self.payment.template,
                Use::Payment,
            ),
            (
                "rules.payment.template_without_balance",
                &self.payment.template_without_balance,
                Use::Payment,
            ),
            (
                "rules.optout.stop_reply",
                &self.optout.stop_reply,
                Use::Customer,
            ),
            (
                "rules.optout.start_reply",
                &self.optout.start_reply,
                Use::Customer,
            ),
            ("rules.help_reply", &self.help_reply, Use::Customer),
        ];
        for (key, t, use_) in templates {
            if let Some(t) = t
                && let Err(e) = template::check(t, use_, extra_fields)
            {
                errors.push((key.to_string(), e));
            }
        }
        for (name, t) in &self.templates {
            let key = format!("rules.templates.{name}");
            if name.trim().is_empty() || name.len() > 64 {
                errors.push((key, "a template's name must have 1 to 64 characters".into()));
            } else if t.trim().is_empty() {
                errors.push((key, "is empty".into()));
            } else if let Err(e) = template::check(t, Use::Customer, extra_fields) {
                errors.push((key, e));
            }
        }
        for g in &self.ticket.alert_groups {
            if !groups.contains(g) {
                errors.push((
                    "rules.ticket.alert_groups".to_string(),
                    format!(
                        "`{g}` is not an operator group; define it with [[groups]] name = \"{g}\""
                    ),
                ));
            }
        }
        if let Some(url) = &self.ticket.forward_url
            && !url.starts_with("http://")
            && !url.starts_with("https://")
        {
            errors.push((
                "rules.ticket.forward_url".to_string(),
                format!("`{url}` must be an http:// or https:// address"),
            ));
        }
        if self.ticket.forward_ca_file.is_some()
            && !self
                .ticket
                .forward_url
                .as_deref()
                .is_some_and(|u| u.starts_with("https://"))
        {
            errors.push((
                "rules.ticket.forward_ca_file".to_string(),
                "only applies to an https:// forward_url".to_string(),
            ));
        }
        for (name, value) in &self.ticket.forward_headers {
            if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err()
                || reqwest::header::HeaderValue::from_str(value).is_err()
            {
                errors.push((
                    "rules.ticket.forward_headers".to_string(),
                    format!("`{name}` is not a valid HTTP header name and value"),
                ));
            }
        }
        errors
    }

    /// The first keyword of each rule, upper-cased, for the help text.
    pub fn key_vars(&self, vars: &mut Vars) {
        let first = |l: &[String]| l.first().map(|k| k.to_uppercase()).unwrap_or_default();
        vars.set("clave_saldo", first(&self.balance.keywords))
            .set("clave_soporte", first(&self.ticket.keywords))
            .set("clave_baja", first(&self.optout.stop_keywords));
    }
}

/// Who sent the message, as far as the directory knows.
#[derive(Debug, Clone, Copy)]
pub enum Found<'a> {
    One(&'a Customer),
    NotFound,
    /// The number is on several customers: the rules do not guess which.
    Ambiguous(usize),
}

/// The facts [`decide`] needs beyond the message.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    pub customer: Found<'a>,
    /// Auto-replies this number got in the last hour.
    pub replies_last_hour: u32,
    /// Tickets this customer (or number) opened today.
    pub tickets_today: u32,
    /// The open outage the customer is affected by (the one with the latest ETA).
    pub outage: Option<&'a OutageFacts>,
}

/// An open outage as the reply to an affected customer needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutageFacts {
    pub id: i64,
    /// The customer's value of the outage's field (`%zona%`).
    pub zone: String,
    /// The ETA as customers read it (`%eta%`).
    pub eta: String,
    /// The operator's message (`%mensaje%`).
    pub message: String,
}

/// The company's name and language, for templates.
#[derive(Debug, Clone)]
pub struct Company {
    pub name: String,
    pub language: Language,
}

/// Which rule answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    OptOut,
    OptIn,
    Ticket,
    TicketLimit,
    /// A ticket keyword from a customer of an open outage: answered with the outage.
    Outage,
    Balance,
    Unknown,
    /// Nothing is done: an alphanumeric sender, a short code.
    Ignored,
}

/// A ticket to open; its reply and alerts need the ticket's number, known only once stored.
#[derive(Debug, Clone)]
pub struct NewTicket {
    pub text: String,
    pub operator: String,
    pub category: String,
    /// Reply template (`%id%` still open) and its variables; `None` when replies are capped.
    pub reply: Option<(String, Vars)>,
    pub alert_groups: Vec<String>,
    /// Alert template and its variables.
    pub alert: (String, Vars),
}

#[derive(Debug, Clone)]
pub enum Action {
    Reply(String),
    /// Stop (`true`) or resume (`false`) notifications and bulk to the sender on this channel.
    SetOptOut(bool),
    OpenTicket(NewTicket),
    /// Link the message to this open outage (and its master ticket) instead of a ticket.
    LinkOutage(i64),
}

#[derive(Debug, Clone)]
pub struct Decision {
    pub rule: Rule,
    pub actions: Vec<Action>,
    /// One line for the log: why this rule, and anything dropped.
    pub why: String,
}

/// The sender is a phone number one can answer: `+` and 8 to 15 digits. Alphanumeric senders
/// (`Personal`, `BANCO`) and short codes (`2020`) are carriers and services: answering them
/// starts reply loops.
pub fn is_answerable(peer: &str) -> bool {
    peer.strip_prefix('+')
        .is_some_and(|d| (8..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
}

/// Decides what to do about one inbound message. Pure.
pub fn decide(
    settings: &Settings,
    company: &Company,
    peer: &str,
    body: &str,
    facts: Facts<'_>,
) -> Decision {
    if !is_answerable(peer) {
        return Decision {
            rule: Rule::Ignored,
            actions: Vec::new(),
            why: "the sender is not a phone number (alphanumeric or short code); never answered"
                .into(),
        };
    }
    let words = text::words(body);
    let customer = match facts.customer {
        Found::One(c) => Some(c),
        _ => None,
    };
    let mut vars = Vars::for_customer(customer, &company.name, peer, company.language);
    settings.key_vars(&mut vars);
    let render = |t: &Option<String>, v: &Vars| template::render(text(t), v);
    let who = match facts.customer {
        Found::One(c) => format!("customer {}", c.code),
        Found::NotFound => "unknown number".to_string(),
        Found::Ambiguous(n) => format!("number on {n} customers"),
    };

    let (rule, mut actions, mut why) = 'rule: {
        let o = &settings.optout;
        if o.enabled {
            if Keywords::new(&o.stop_keywords).is_whole(&words) {
                break 'rule (
                    Rule::OptOut,
                    vec![
                        Action::SetOptOut(true),
                        Action::Reply(render(&o.stop_reply, &vars)),
                    ],
                    format!("opt-out keyword from {who}"),
                );
            }
            if Keywords::new(&o.start_keywords).is_whole(&words) {
                break 'rule (
                    Rule::OptIn,
                    vec![
                        Action::SetOptOut(false),
                        Action::Reply(render(&o.start_reply, &vars)),
                    ],
                    format!("opt-in keyword from {who}"),
                );
            }
        }
        let t = &settings.ticket;
        if t.enabled && Keywords::new(&t.keywords).found_in(&words) {
            if let Some(o) = facts.outage {
                let mut v = vars.clone();
                v.set("zona", o.zone.clone())
                    .set("eta", o.eta.clone())
                    .set("mensaje", o.message.clone());
                break 'rule (
                    Rule::Outage,
                    vec![
                        Action::Reply(render(&settings.outage.reply, &v)),
                        Action::LinkOutage(o.id),
                    ],
                    format!(
                        "ticket keyword from {who}, affected by open outage {}",
                        o.id
                    ),
                );
            }
            if facts.tickets_today >= t.max_per_day {
                break 'rule (
                    Rule::TicketLimit,
                    vec![Action::Reply(render(&t.limit_reply, &vars))],
                    format!(
                        "ticket keyword from {who}, but {} tickets today already (max {})",
                        facts.tickets_today, t.max_per_day
                    ),
                );
            }
            let mut ticket_vars = vars.clone();
            ticket_vars
                .set("operador", t.operator.clone())
                .set("categoria", t.category.clone())
                .set("texto", body.trim().to_string());
            if customer.is_none() {
                ticket_vars.set("nombre", peer.to_string());
            }
            break 'rule (
                Rule::Ticket,
                vec![Action::OpenTicket(NewTicket {
                    text: body.trim().to_string(),
                    operator: t.operator.clone(),
                    category: t.category.clone(),
                    reply: Some((text(&t.reply).to_string(), ticket_vars.clone())),
                    alert_groups: t.alert_groups.clone(),
                    alert: (text(&t.alert).to_string(), ticket_vars),
                })],
                format!("ticket keyword from {who}"),
            );
        }
        let b = &settings.balance;
        if b.enabled && Keywords::new(&b.keywords).found_in(&words) {
            let (reply, note) = match customer {
                Some(c) if c.balance.is_some() => (render(&b.reply, &vars), ""),
                Some(_) => (
                    render(&b.unavailable_reply, &vars),
                    "; no balance on record, told it is not available",
                ),
                None => (render(&b.unknown_customer_reply, &vars), ""),
            };
            break 'rule (
                Rule::Balance,
                vec![Action::Reply(reply)],
                format!("balance keyword from {who}{note}"),
            );
        }
        match settings.unknown {
            UnknownMode::Help => (
                Rule::Unknown,
                vec![Action::Reply(render(&settings.help_reply, &vars))],
                format!("no keyword from {who}; help sent"),
            ),
            UnknownMode::Silent => (
                Rule::Unknown,
                Vec::new(),
                format!("no keyword from {who}; not answered (rules.unknown = silent)"),
            ),
        }
    };

    if facts.replies_last_hour >= settings.max_replies_per_hour {
        let before = actions.len();
        actions.retain(|a| !matches!(a, Action::Reply(_)));
        let mut dropped = before != actions.len();
        for a in &mut actions {
            if let Action::OpenTicket(t) = a {
                dropped |= t.reply.take().is_some();
            }
        }
        if dropped {
            why.push_str(&format!(
                "; reply dropped: {} auto-replies to this number in the last hour (max {})",
                facts.replies_last_hour, settings.max_replies_per_hour
            ));
        }
    }
    Decision { rule, actions, why }
}

/// Problems in `[[groups]]`: (position, field, message). Names unique and not empty, a known
/// window, at least one phone, each phone a number of `phones`'s country.
pub fn check_groups(
    groups: &[GroupConfig],
    windows: Option<&crate::rules::window::Windows>,
    phones: Option<&crate::phone::PhoneContext>,
) -> Vec<(usize, &'static str, String)> {
    let mut errors = Vec::new();
    let mut names: Vec<&str> = Vec::new();
    for (i, g) in groups.iter().enumerate() {
        if g.name.trim().is_empty() || names.contains(&g.name.as_str()) {
            errors.push((
                i,
                "name",
                format!("`{}` must be a unique, non-empty group name", g.name),
            ));
        }
        names.push(&g.name);
        if let Some(w) = windows
            && let Err(e) = w.check_name(&g.window)
        {
            errors.push((i, "window", e));
        }
        if g.phones.is_empty() {
            errors.push((i, "phones", format!("group `{}` has no phones", g.name)));
        }
        for p in &g.phones {
            if let Some(ctx) = phones
                && let Err(e) = ctx.normalize(p)
            {
                errors.push((i, "phones", format!("`{p}`: {e}")));
            }
        }
    }
    errors
}

/// Problems in `[rules]`, `[windows]` and `[[groups]]` (templates, keywords, schedules, group
/// members and windows), as (dotted key, message).
pub fn check_config(c: &crate::config::Config) -> Vec<(String, String)> {
    let mut errors = Vec::new();
    let tz = c.company.timezone.parse().unwrap_or(chrono_tz::UTC);
    let windows = match crate::rules::window::Windows::new(&c.windows, tz, &c.company.country) {
        Ok(w) => Some(w),
        Err(list) => {
            for (key, message) in list {
                errors.push((key, message));
            }
            None
        }
    };
    let phones = crate::phone::PhoneContext::new(&c.company.country, c.company.assume_mobile).ok();
    for (_, field, message) in check_groups(&c.groups, windows.as_ref(), phones.as_ref()) {
        errors.push((format!("groups.{field}"), message));
    }
    let group_names: Vec<String> = c.groups.iter().map(|g| g.name.clone()).collect();
    let mut rules = c.rules.clone();
    rules.fill_defaults(c.company.language);
    let extra: std::collections::BTreeSet<String> =
        c.directory.extra_fields.iter().cloned().collect();
    for (key, message) in rules.check(&extra, &group_names) {
        errors.push((key, message));
    }
    errors
}

#[cfg(test)]
mod tests;
