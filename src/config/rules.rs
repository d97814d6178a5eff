//! The data of `[rules]`, `[windows]` and `[[groups]]`: what the file and `PUT /api/rules` may
//! set, with defaults. What the values mean (matching, templates, schedules) and their checks
//! are in [`crate::rules`], which re-exports these types.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What to do with texts that match no keyword.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnknownMode {
    Silent,
    Help,
}

/// `[rules.balance]`: "SMS deuda".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BalanceRule {
    pub enabled: bool,
    pub keywords: Vec<String>,
    pub reply: Option<String>,
    /// Reply when the number matches no customer.
    pub unknown_customer_reply: Option<String>,
    /// Reply when the customer is known but their balance is not (an empty cell in the
    /// import, a billing answer without one): never told as `$ 0,00`.
    pub unavailable_reply: Option<String>,
}

impl Default for BalanceRule {
    fn default() -> Self {
        BalanceRule {
            enabled: true,
            keywords: vec!["saldo".into(), "deuda".into(), "cuenta".into()],
            reply: None,
            unknown_customer_reply: None,
            unavailable_reply: None,
        }
    }
}

/// `[rules.ticket]`: "SMS ticket".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TicketRule {
    pub enabled: bool,
    pub keywords: Vec<String>,
    /// Tickets one customer (or number) may open per day (company time zone).
    pub max_per_day: u32,
    pub reply: Option<String>,
    pub limit_reply: Option<String>,
    /// Operator and category assigned to new tickets.
    pub operator: String,
    pub category: String,
    /// Operator groups alerted by SMS about a new ticket (the ones whose window is open).
    pub alert_groups: Vec<String>,
    pub alert: Option<String>,
    /// Forward each new ticket to the billing system: `POST` of the ticket as JSON, retried.
    pub forward_url: Option<String>,
    /// Headers sent with each forward (`Authorization = "Bearer …"`), so tokens stay out of
    /// the URL.
    pub forward_headers: std::collections::BTreeMap<String, String>,
    /// PEM file of a CA trusted (besides the Mozilla roots) for an `https://` forward_url.
    pub forward_ca_file: Option<std::path::PathBuf>,
}

impl Default for TicketRule {
    fn default() -> Self {
        TicketRule {
            enabled: true,
            keywords: vec![
                "soporte".into(),
                "ayuda".into(),
                "servicio".into(),
                "reclamo".into(),
                "sin internet".into(),
            ],
            max_per_day: 3,
            reply: None,
            limit_reply: None,
            operator: "soporte".into(),
            category: "reclamo".into(),
            alert_groups: Vec::new(),
            alert: None,
            forward_url: None,
            forward_headers: std::collections::BTreeMap::new(),
            forward_ca_file: None,
        }
    }
}

/// `[rules.payment]`: "SMS pago", sent on billing events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PaymentRule {
    /// Notice for payments the billing system registered by itself (debit, gateway).
    pub automatic: bool,
    /// Notice for payments an operator entered by hand.
    pub manual: bool,
    pub template: Option<String>,
    /// Notice for a payment event that carries no `balance`: the stored balance predates the
    /// payment, so it is not told as the current one.
    pub template_without_balance: Option<String>,
    /// Channels that carry the notice, in order; unset: SMS only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channels: Option<Vec<String>>,
    /// The WhatsApp template the notice goes as on the whatsapp channel.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub whatsapp_template: Option<super::WhatsappTemplateMapping>,
}

impl Default for PaymentRule {
    fn default() -> Self {
        PaymentRule {
            automatic: true,
            manual: true,
            template: None,
            template_without_balance: None,
            channels: None,
            whatsapp_template: None,
        }
    }
}

/// `[rules.optout]`: `BAJA` / `ALTA`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OptOutRule {
    pub enabled: bool,
    /// Stop notifications and bulk to this number when the whole text is one of these.
    pub stop_keywords: Vec<String>,
    /// Undo it.
    pub start_keywords: Vec<String>,
    pub stop_reply: Option<String>,
    pub start_reply: Option<String>,
}

impl Default for OptOutRule {
    fn default() -> Self {
        OptOutRule {
            enabled: true,
            stop_keywords: vec!["baja".into(), "stop".into()],
            start_keywords: vec!["alta".into()],
            stop_reply: None,
            start_reply: None,
        }
    }
}

/// `[rules.outage]`: the texts of an outage by zone (`crate::outage`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutageRule {
    /// Send `notice` to the affected customers when an outage opens.
    pub notify: bool,
    /// Sent to the affected customers when the outage opens (not to opted-out ones).
    pub notice: Option<String>,
    /// The answer to an affected customer's ticket keyword while the outage is open.
    pub reply: Option<String>,
    /// Sent when it is resolved, to everyone notified and everyone who wrote.
    pub resolved: Option<String>,
}

impl Default for OutageRule {
    fn default() -> Self {
        OutageRule {
            notify: true,
            notice: None,
            reply: None,
            resolved: None,
        }
    }
}

/// `[rules]`: every auto-reply setting. Editable at run time (`PUT /api/rules`); the edited
/// copy is kept in the database and wins over the file until `DELETE /api/rules`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Auto-replies one number may get per hour; more are dropped (reply loops, abuse).
    pub max_replies_per_hour: u32,
    /// `help` answers unmatched texts with `help_reply`; `silent` does not answer.
    pub unknown: UnknownMode,
    pub help_reply: Option<String>,
    pub balance: BalanceRule,
    pub ticket: TicketRule,
    pub payment: PaymentRule,
    pub optout: OptOutRule,
    pub outage: OutageRule,
    /// Texts operators pick on the send page, by name (`corte = "Estimado %nombre%, …"`):
    /// customer variables only, filled in for each recipient found in the directory.
    pub templates: BTreeMap<String, String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            max_replies_per_hour: 10,
            unknown: UnknownMode::Help,
            help_reply: None,
            balance: BalanceRule::default(),
            ticket: TicketRule::default(),
            payment: PaymentRule::default(),
            optout: OptOutRule::default(),
            outage: OutageRule::default(),
            templates: BTreeMap::new(),
        }
    }
}

/// `[[groups]]`: operators alerted together (on-call technicians, the office).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupConfig {
    pub name: String,
    /// Members' phone numbers, any usual form.
    #[serde(default)]
    pub phones: Vec<String>,
    /// When this group is on duty (a delivery window name; `always` for any time).
    #[serde(default = "always")]
    pub window: String,
}

fn always() -> String {
    ALWAYS.to_string()
}

/// `always` is the pseudo-window "no restriction".
pub const ALWAYS: &str = "always";

/// `[windows.custom.NAME]`: one schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowSpec {
    /// `lun-vie`, `mon-fri`, `todos`, or a list like `["sab", "dom"]`.
    pub days: DaysSpec,
    /// Opening time, `HH:MM`.
    pub from: String,
    /// Closing time, `HH:MM` (`24:00` for midnight).
    pub to: String,
    /// Open on holidays too.
    #[serde(default)]
    pub holidays: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum DaysSpec {
    One(String),
    List(Vec<String>),
}

/// `[windows]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WindowsConfig {
    /// Window for notifications (billing events, API messages with priority `notification`);
    /// `always` (the default) means no restriction.
    pub notifications: String,
    /// Window for bulk sends; default `always`.
    pub bulk: String,
    /// Window for urgent notices (outage notices): they skip `bulk` but not the night;
    /// default `fulltime` (every day 07–23).
    pub urgent: String,
    /// Days added to the national calendar, `YYYY-MM-DD`: provincial holidays, a "día no
    /// laborable" decreed that year.
    pub holidays: Vec<String>,
    /// Days taken out of the national calendar, `YYYY-MM-DD` (a holiday the ISP works).
    pub not_holidays: Vec<String>,
    /// Whose national holidays the windows honour: a country code with a table (`AR`), or
    /// `none`. Unset: `company.country`'s, when it has a table.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calendar: Option<String>,
    pub custom: BTreeMap<String, WindowSpec>,
}

impl Default for WindowsConfig {
    fn default() -> Self {
        WindowsConfig {
            notifications: ALWAYS.into(),
            bulk: ALWAYS.into(),
            urgent: "fulltime".into(),
            holidays: Vec::new(),
            not_holidays: Vec::new(),
            calendar: None,
            custom: BTreeMap::new(),
        }
    }
}
