//! Campaigns: a message to a selection of customers, on one channel or each customer's own,
//! throttled, resumable, with progress and a report.
//!
//! A campaign is created as a draft with its preview ([`check`], [`evaluate`]); `start`
//! freezes the selection by writing one task per customer in one transaction. The feeder
//! ([`run`]) then turns pending tasks into bulk messages in the outbox gradually: at most the
//! campaign's rate within its period, and never more than [`BACKLOG`] of them waiting in the
//! outbox at once. So the dispatcher, which claims by priority, always finds a customer's
//! keyword reply ahead of at most a few campaign messages, whatever the campaign's size; and
//! the rate holds across every route of the channel, on top of each route's own limit.
//!
//! Restart safety: a task and its message are written in the same transaction, so after a
//! crash a task either has its message (which the outbox carries as any other) or is still
//! pending; nobody is queued twice.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::config::{RateLimit, WhatsappTemplateMapping};
use crate::model::Channel;
use crate::rules::customer::{Customer, Money, parse_date};
use crate::rules::template::{self, Use};
use crate::shutdown::Shutdown;
use crate::store::campaigns::{self as sql, Filter, NewTask};
use crate::store::{Store, StoreError};
use crate::transport::Transport;
use rusqlite::Connection;

/// Campaign messages waiting in the outbox at once (queued, not yet handed to a transport).
/// Small, so a reply claimed by priority never waits behind many; large enough that a fast
/// route is never starved between two feeder rounds.
pub const BACKLOG: u32 = 20;
/// How often the feeder looks at a running campaign with nothing in the outbox (it is also
/// woken on start and resume).
const FEED_TICK: Duration = Duration::from_millis(200);
/// How soon it looks again while the campaign's messages are in the outbox: often enough
/// that the backlog refills before a fast route runs dry ([`BACKLOG`] per tick).
const BUSY_TICK: Duration = Duration::from_millis(10);
/// Days after its message within which an inbound message counts as a reply to a campaign.
pub const REPLY_DAYS: u32 = 7;

/// `POST /api/campaigns` body; stored (with defaults filled) as the campaign's `spec`.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CampaignRequest {
    pub name: String,
    /// `sms`, `whatsapp`, `email`, or `preferred` (each customer's own channel).
    pub channel: String,
    /// The text (SMS, and the email's text), with `%variables%`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// Email: the subject, with `%variables%`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// WhatsApp: the approved template with our variables mapped to its parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub whatsapp_template: Option<WhatsappTemplateMapping>,
    /// Delivery window; by default `[windows] bulk`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
    /// `600/hour`; none: as fast as the routes allow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<String>,
    #[serde(default)]
    pub selection: Selection,
    /// Start even when some customers lack a template variable (they are skipped).
    #[serde(default)]
    pub allow_missing: bool,
    /// Where the report goes by email when the campaign ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_to: Option<String>,
    #[serde(default)]
    pub reply_days: Option<u32>,
}

/// Which customers; every filter given must hold.
#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Selection {
    /// Balance at least this (pesos: `10000`, `"10.000,50"`; kept in exact cents).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balance_min: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balance_max: Option<serde_json::Value>,
    /// Due strictly before this date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_before: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
    /// An uploaded list of customer codes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub codes: Option<Vec<String>>,
    /// An uploaded list of numbers: the customers with them, messaged on that number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numbers: Option<Vec<String>>,
    /// Extra customer fields by equality (`{"nodo": "norte"}`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, String>,
}

/// The channel setting of a campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    One(Channel),
    Preferred,
}

/// A checked request.
#[derive(Debug, Clone)]
pub struct Plan {
    pub mode: Mode,
    pub text: Option<String>,
    pub subject: Option<String>,
    pub whatsapp: Option<WhatsappTemplateMapping>,
    pub window: Option<String>,
    pub rate: Option<RateLimit>,
    pub filter: Filter,
    pub allow_missing: bool,
    pub reply_days: u32,
    /// The `[[email]]` account that sends campaign mail, when one serves `clientes`/`todo`.
    pub email_account: Option<String>,
    /// Channels with a route configured.
    pub available: HashSet<Channel>,
}

/// A bad field: (field path, why).
pub type FieldError = (String, String);

fn money(v: &serde_json::Value) -> Result<i64, String> {
    match v {
        serde_json::Value::Number(n) => Money::from_json_number(n).map(|m| m.0),
        serde_json::Value::String(s) => Money::parse(s).map(|m| m.0),
        _ => Err("must be an amount, a number or a text like \"10.000,50\"".into()),
    }
}

fn is_field_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 40
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Checks a request against what is configured. Nothing is written.
pub fn check(
    req: &CampaignRequest,
    rules: &crate::inbox::RulesContext,
    transports: &[Arc<dyn Transport>],
    extra_fields: &std::collections::BTreeSet<String>,
) -> Result<Plan, FieldError> {
    fn err<T>(f: &str, m: String) -> Result<T, FieldError> {
        Err((f.to_string(), m))
    }
    if req.name.trim().is_empty() || req.name.chars().count() > 120 {
        return err("name", "must be 1 to 120 characters".into());
    }
    let mode = match req.channel.as_str() {
        "sms" => Mode::One(Channel::Sms),
        "whatsapp" => Mode::One(Channel::Whatsapp),
        "email" => Mode::One(Channel::Email),
        "preferred" => Mode::Preferred,
        other => {
            return err(
                "channel",
                format!("`{other}` is not a channel; use sms, whatsapp, email or preferred"),
            );
        }
    };
    let available: HashSet<Channel> = transports.iter().map(|t| t.channel()).collect();
    let email_account =
        crate::transport::email::account_for(transports, "clientes").map(|a| a.name().to_string());
    let uses = |c: Channel| mode == Mode::One(c) || mode == Mode::Preferred;
    if let Mode::One(c) = mode
        && !available.contains(&c)
    {
        return err(
            "channel",
            format!("no {c} route is configured, so a {c} campaign cannot be sent"),
        );
    }
    if mode == Mode::One(Channel::Email) && email_account.is_none() {
        return err(
            "channel",
            "no [[email]] account serves `clientes` nor `todo`".into(),
        );
    }
    let needs_text = uses(Channel::Sms) || uses(Channel::Email);
    match &req.template {
        Some(t) => {
            template::check(t, Use::Customer, extra_fields).or_else(|e| err("template", e))?
        }
        None if needs_text => return err("template", "is required for this channel".into()),
        None => {}
    }
    if mode == Mode::One(Channel::Email)
        && req.subject.as_deref().is_none_or(|s| s.trim().is_empty())
    {
        return err("subject", "is required for an email campaign".into());
    }
    if let Some(s) = &req.subject {
        template::check(s, Use::Customer, extra_fields).or_else(|e| err("subject", e))?;
    }
    match &req.whatsapp_template {
        Some(w) => {
            if w.name.trim().is_empty() || w.language.trim().is_empty() {
                return err(
                    "whatsapp_template",
                    "needs the template's `name` and `language`".into(),
                );
            }
            for (i, b) in w.body.iter().enumerate() {
                template::check(b, Use::Customer, extra_fields)
                    .or_else(|e| err(&format!("whatsapp_template.body[{i}]"), e))?;
            }
        }
        None if mode == Mode::One(Channel::Whatsapp) => {
            return err(
                "whatsapp_template",
                "is required: WhatsApp only carries approved templates to customers who did not \
                 write first"
                    .into(),
            );
        }
        None => {}
    }
    if let Some(w) = &req.window {
        rules
            .windows()
            .check_name(w)
            .or_else(|e| err("window", e))?;
    }
    let window = rules.window_for(crate::model::Priority::Bulk, req.window.as_deref());
    let rate = match &req.rate {
        Some(r) => Some(RateLimit::parse(r).or_else(|e| err("rate", e))?),
        None => None,
    };
    if rate.is_some_and(|r| r.count == 0) {
        return err("rate", "must allow at least one message".into());
    }
    if let Some(to) = &req.report_to
        && (!to.contains('@') || to.trim() != to || to.len() > 254)
    {
        return err("report_to", format!("`{to}` is not an email address"));
    }
    let reply_days = req.reply_days.unwrap_or(REPLY_DAYS);
    if !(1..=90).contains(&reply_days) {
        return err("reply_days", "must be 1 to 90".into());
    }
    let s = &req.selection;
    let mut filter = Filter::default();
    if let Some(v) = &s.balance_min {
        filter.balance_min = Some(money(v).or_else(|e| err("selection.balance_min", e))?);
    }
    if let Some(v) = &s.balance_max {
        filter.balance_max = Some(money(v).or_else(|e| err("selection.balance_max", e))?);
    }
    if let (Some(a), Some(b)) = (filter.balance_min, filter.balance_max)
        && a > b
    {
        return err("selection.balance_max", "is below balance_min".into());
    }
    if let Some(d) = &s.due_before {
        let d = parse_date(d).or_else(|e| err("selection.due_before", e))?;
        filter.due_before = Some(d.format("%Y-%m-%d").to_string());
    }
    filter.zone = s.zone.clone();
    filter.plan = s.plan.clone();
    if let Some(codes) = &s.codes {
        if codes.is_empty() {
            return err("selection.codes", "is empty".into());
        }
        filter.codes = Some(codes.iter().map(|c| c.trim().to_string()).collect());
    }
    if let Some(numbers) = &s.numbers {
        if numbers.is_empty() {
            return err("selection.numbers", "is empty".into());
        }
        let mut out = Vec::with_capacity(numbers.len());
        for (i, n) in numbers.iter().enumerate() {
            let m = rules
                .phones
                .normalize(n)
                .or_else(|e| err(&format!("selection.numbers[{i}]"), format!("`{n}`: {e}")))?;
            out.push(m.as_str().to_string());
        }
        filter.numbers = Some(out);
    }
    for (k, v) in &s.fields {
        if !is_field_name(k) {
            return err(
                &format!("selection.fields.{k}"),
                "is not a field name (lower-case letters, digits, _)".into(),
            );
        }
        filter.fields.push((k.clone(), v.clone()));
    }
    Ok(Plan {
        mode,
        text: req.template.clone(),
        subject: req.subject.clone(),
        whatsapp: req.whatsapp_template.clone(),
        window,
        rate,
        filter,
        allow_missing: req.allow_missing,
        reply_days,
        email_account,
        available,
    })
}

/// How many customers match and why some are left out.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Preview {
    /// Customers the selection matches.
    pub matched: u32,
    /// Those a message would go to now.
    pub to_send: u32,
    pub excluded: Excluded,
    /// Customers lacking a variable the template uses, by variable (a customer may count
    /// under several). Start refuses them unless `allow_missing`.
    pub missing_variables: BTreeMap<String, u32>,
    /// By channel, for `preferred`.
    pub channels: BTreeMap<String, u32>,
    /// Codes or numbers of the uploaded list that no customer has.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unknown: Vec<String>,
    /// The first message, as its customer would get it.
    pub sample: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Excluded {
    pub opted_out: u32,
    pub no_address: u32,
    pub invalid_number: u32,
    pub duplicate: u32,
    pub missing_variable: u32,
}

/// Why a customer gets no message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Skip {
    OptedOut,
    NoAddress,
    InvalidNumber,
    /// `preferred`, and none of the channels has a route (or the campaign's text for it).
    NoRoute,
}

impl Skip {
    fn reason(self, channel: Channel) -> String {
        match self {
            Skip::OptedOut => format!("opted out (BAJA) of {channel}"),
            Skip::NoAddress if channel == Channel::Email => "no email address".into(),
            Skip::NoAddress => "no phone number".into(),
            Skip::InvalidNumber => "the phone number is not valid".into(),
            Skip::NoRoute => "no channel this campaign can send on reaches the customer".into(),
        }
    }
}

/// The channels to try for `c`, in order.
fn candidates(plan: &Plan, c: &Customer) -> Vec<Channel> {
    let usable = |ch: &Channel| {
        plan.available.contains(ch)
            && match ch {
                Channel::Sms => plan.text.is_some(),
                Channel::Whatsapp => plan.whatsapp.is_some(),
                // A mail needs its subject; `preferred` does not require one at creation.
                Channel::Email => {
                    plan.text.is_some()
                        && plan.email_account.is_some()
                        && plan
                            .subject
                            .as_deref()
                            .is_some_and(|s| !s.trim().is_empty())
                }
            }
    };
    match plan.mode {
        Mode::One(ch) => vec![ch],
        Mode::Preferred => {
            // The customer's own order (given for invoices, else for payments).
            let own = c
                .channels
                .get("invoice")
                .or_else(|| c.channels.get("payment"));
            let mut order: Vec<Channel> = own
                .map(|l| l.iter().filter_map(|s| Channel::parse(s)).collect())
                .unwrap_or_default();
            order.retain(usable);
            if order.is_empty() {
                // No usable preference: the first channel this campaign can send on, if any
                // (none: the customer is skipped, see `Skip::NoRoute`).
                order.extend(
                    [Channel::Sms, Channel::Whatsapp, Channel::Email]
                        .into_iter()
                        .find(usable),
                );
            }
            order
        }
    }
}

/// The address of `c` on `ch`, or why there is none.
fn address(
    plan: &Plan,
    rules: &crate::inbox::RulesContext,
    optouts: &HashSet<(String, String)>,
    c: &Customer,
    ch: Channel,
) -> Result<String, Skip> {
    let (addr, flag) = match ch {
        Channel::Email => (
            c.email.clone().filter(|e| !e.trim().is_empty()),
            c.optout.email,
        ),
        _ => {
            // An uploaded list of numbers: the customer's number that is on it.
            let phone = match &plan.filter.numbers {
                Some(list) => c.phones.iter().find(|p| list.contains(p)).cloned(),
                None => c.phones.first().cloned(),
            };
            let phone = match phone {
                Some(p) => Some(
                    rules
                        .phones
                        .normalize(&p)
                        .map_err(|_| Skip::InvalidNumber)?
                        .as_str()
                        .to_string(),
                ),
                None => None,
            };
            let flag = if ch == Channel::Sms {
                c.optout.sms
            } else {
                c.optout.whatsapp
            };
            (phone, flag)
        }
    };
    let addr = addr.ok_or(Skip::NoAddress)?;
    if flag || optouts.contains(&(ch.as_str().to_string(), addr.clone())) {
        return Err(Skip::OptedOut);
    }
    Ok(addr)
}

/// The templates' variables for `ch`.
fn variables(plan: &Plan, ch: Channel) -> Vec<String> {
    let mut texts: Vec<&str> = Vec::new();
    match ch {
        Channel::Sms => texts.extend(plan.text.as_deref()),
        Channel::Email => texts.extend(
            plan.text
                .as_deref()
                .into_iter()
                .chain(plan.subject.as_deref()),
        ),
        Channel::Whatsapp => {
            if let Some(w) = &plan.whatsapp {
                texts.extend(w.body.iter().map(String::as_str));
                texts.extend(w.document.as_deref());
            }
        }
    }
    let mut vars: Vec<String> = texts.into_iter().flat_map(template::variables).collect();
    vars.sort();
    vars.dedup();
    vars
}

/// Whether `c` lacks a value for `var` (always-known variables never lack).
fn lacks(c: &Customer, var: &str) -> bool {
    let empty = |v: &Option<String>| v.as_deref().is_none_or(|s| s.trim().is_empty());
    match var {
        "deuda" => c.balance.is_none(),
        "vencimiento" => c.due_date.is_none(),
        "plan" => empty(&c.plan),
        "zona" => empty(&c.zone),
        "email" => empty(&c.email),
        v if template::CUSTOMER_VARS.contains(&v) => false,
        v => c.extra.get(v).is_none_or(|s| s.trim().is_empty()),
    }
}

/// The message body for `c` on `ch` (as the outbox stores it).
fn body(
    plan: &Plan,
    rules: &crate::inbox::RulesContext,
    c: &Customer,
    ch: Channel,
    peer: &str,
) -> String {
    let phone = if ch == Channel::Email {
        c.phones.first().map(String::as_str).unwrap_or("")
    } else {
        peer
    };
    let vars = rules.vars(Some(c), phone);
    let text = plan
        .text
        .as_deref()
        .map(|t| template::render(t, &vars))
        .unwrap_or_default();
    match ch {
        Channel::Sms => text,
        Channel::Email => crate::transport::email::stored::StoredEmail {
            account: plan.email_account.clone().unwrap_or_default(),
            subject: plan
                .subject
                .as_deref()
                .map(|s| template::render(s, &vars))
                .unwrap_or_default(),
            text,
            ..Default::default()
        }
        .to_body(),
        Channel::Whatsapp => {
            let Some(w) = &plan.whatsapp else {
                return text;
            };
            let message = crate::transport::whatsapp::templates::TemplateMessage {
                name: w.name.clone(),
                language: w.language.clone(),
                body: w.body.iter().map(|b| template::render(b, &vars)).collect(),
                document: w.document.as_ref().map(|d| crate::model::Document {
                    url: Some(template::render(d, &vars)),
                    media_id: None,
                    filename: w.filename.clone(),
                }),
            };
            crate::transport::whatsapp::templates::encode(&message)
        }
    }
}

/// The preview of `customers` and, with `tasks`, the task list start writes.
pub fn evaluate(
    plan: &Plan,
    rules: &crate::inbox::RulesContext,
    customers: &[Customer],
    optouts: &HashSet<(String, String)>,
    tasks: bool,
) -> (Preview, Vec<NewTask>) {
    let mut p = Preview {
        matched: customers.len() as u32,
        ..Preview::default()
    };
    let mut out = Vec::with_capacity(if tasks { customers.len() } else { 0 });
    let mut seen: HashSet<(Channel, String)> = HashSet::with_capacity(customers.len());
    let mut vars_of: std::collections::HashMap<Channel, Vec<String>> =
        std::collections::HashMap::new();
    for c in customers {
        let mut skipped = None;
        let mut chosen = None;
        for ch in candidates(plan, c) {
            match address(plan, rules, optouts, c, ch) {
                Ok(a) => {
                    chosen = Some((ch, a));
                    break;
                }
                Err(s) => {
                    skipped.get_or_insert((ch, s));
                }
            }
        }
        let mut task = NewTask {
            customer_id: c.id.unwrap_or_default(),
            code: c.code.clone(),
            channel: None,
            peer: None,
            body: None,
            skipped: None,
        };
        match chosen {
            None => {
                let (ch, s) = skipped.unwrap_or((Channel::Sms, Skip::NoRoute));
                match s {
                    Skip::OptedOut => p.excluded.opted_out += 1,
                    // Counted with "no address for that channel": there is none it can use.
                    Skip::NoAddress | Skip::NoRoute => p.excluded.no_address += 1,
                    Skip::InvalidNumber => p.excluded.invalid_number += 1,
                }
                task.channel = Some(ch);
                task.skipped = Some(s.reason(ch));
            }
            Some((ch, peer)) => {
                task.channel = Some(ch);
                task.peer = Some(peer.clone());
                if !seen.insert((ch, peer.clone())) {
                    p.excluded.duplicate += 1;
                    task.skipped =
                        Some("duplicate: the same address is on an earlier customer".into());
                } else {
                    let vars = vars_of.entry(ch).or_insert_with(|| variables(plan, ch));
                    let missing: Vec<&String> = vars.iter().filter(|v| lacks(c, v)).collect();
                    if missing.is_empty() {
                        p.to_send += 1;
                        *p.channels.entry(ch.as_str().to_string()).or_default() += 1;
                        if p.sample.is_none() {
                            let b = body(plan, rules, c, ch, &peer);
                            p.sample = Some(match ch {
                                Channel::Email => crate::transport::email::stored::summary(&b).0,
                                _ => b,
                            });
                        }
                        if tasks {
                            task.body = Some(body(plan, rules, c, ch, &peer));
                        }
                    } else {
                        p.excluded.missing_variable += 1;
                        for v in &missing {
                            *p.missing_variables.entry((*v).clone()).or_default() += 1;
                        }
                        task.skipped = Some(format!(
                            "missing template variable {}",
                            missing
                                .iter()
                                .map(|v| format!("%{v}%"))
                                .collect::<Vec<_>>()
                                .join(" ")
                        ));
                    }
                }
            }
        }
        if tasks {
            out.push(task);
        }
    }
    (p, out)
}

/// What campaigns need at run time.
#[derive(Clone)]
pub struct Campaigns {
    pub store: Store,
    pub rules: crate::inbox::RulesContext,
    pub transports: Vec<Arc<dyn Transport>>,
    pub dispatch: crate::dispatch::DispatchHandle,
    /// Wakes the feeder (a campaign started or resumed).
    pub wake: Arc<Notify>,
}

/// Reads the selection of `plan` and evaluates it (on a reader connection).
pub async fn preview(
    ctx: &Campaigns,
    plan: &Plan,
    tasks: bool,
) -> Result<(Preview, Vec<NewTask>), StoreError> {
    let filter = plan.filter.clone();
    let (customers, optouts, unknown) = ctx
        .store
        .read(move |c| {
            let mut unknown = Vec::new();
            if let Some(codes) = &filter.codes {
                unknown.extend(sql::unknown_codes(c, codes)?);
            }
            if let Some(numbers) = &filter.numbers {
                unknown.extend(sql::unknown_numbers(c, numbers)?);
            }
            Ok((
                sql::select_customers(c, &filter)?,
                sql::optouts(c)?,
                unknown,
            ))
        })
        .await?;
    let (mut p, t) = evaluate(plan, &ctx.rules, &customers, &optouts, tasks);
    p.unknown = unknown;
    Ok((p, t))
}

/// What start did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Started {
    /// The task list was written now.
    Now,
    /// It had been started before: nothing changed.
    Already,
}

/// Why start refused.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("no such campaign")]
    NotFound,
    #[error("the campaign is {0}: only a draft starts")]
    Finished(String),
    #[error(
        "{0} customer(s) lack a template variable ({1}); set \"allow_missing\": true to skip them"
    )]
    Missing(u32, String),
    #[error("the selection matches nobody to send to now")]
    Nobody,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Freezes the selection: writes the task list and marks the campaign running, in one
/// transaction. A campaign already started is left as it is.
pub async fn start(ctx: &Campaigns, id: i64, plan: &Plan) -> Result<Started, StartError> {
    let row = ctx
        .store
        .read(move |c| sql::get_campaign(c, id))
        .await?
        .ok_or(StartError::NotFound)?;
    if row.state != "draft" {
        return match row.state.as_str() {
            "running" | "paused" | "done" => Ok(Started::Already),
            other => Err(StartError::Finished(other.to_string())),
        };
    }
    let (preview, tasks) = preview(ctx, plan, true).await?;
    if preview.excluded.missing_variable > 0 && !plan.allow_missing {
        let which = preview
            .missing_variables
            .keys()
            .map(|v| format!("%{v}%"))
            .collect::<Vec<_>>()
            .join(" ");
        return Err(StartError::Missing(
            preview.excluded.missing_variable,
            which,
        ));
    }
    if preview.to_send == 0 {
        return Err(StartError::Nobody);
    }
    let now = ctx.store.now_ms();
    let frozen = serde_json::to_string(&preview).unwrap_or_default();
    let started = ctx
        .store
        .write(move |c| {
            // Checked again inside the transaction: two starts at once write one list.
            let state: Option<String> = sql::get_campaign(c, id)?.map(|r| r.state);
            if state.as_deref() != Some("draft") {
                return Ok(Started::Already);
            }
            sql::write_tasks(c, id, &tasks)?;
            sql::set_preview(c, id, &frozen)?;
            sql::set_state(c, id, "running", now)?;
            Ok(Started::Now)
        })
        .await?;
    ctx.wake.notify_one();
    Ok(started)
}

/// Pause: the campaign's messages not yet handed to a transport are taken back (their tasks
/// go back to pending); those being sent finish. Returns false when it was not running.
pub async fn pause(ctx: &Campaigns, id: i64) -> Result<bool, StoreError> {
    let now = ctx.store.now_ms();
    ctx.store
        .write(move |c| {
            match sql::get_campaign(c, id)?.map(|r| r.state).as_deref() {
                Some("running") => {}
                _ => return Ok(false),
            }
            sql::withdraw(
                c,
                id,
                "campaign paused; queued again on resume",
                "pending",
                now,
            )?;
            sql::set_state(c, id, "paused", now)?;
            Ok(true)
        })
        .await
}

pub async fn resume(ctx: &Campaigns, id: i64) -> Result<bool, StoreError> {
    let now = ctx.store.now_ms();
    let ok = ctx
        .store
        .write(move |c| {
            match sql::get_campaign(c, id)?.map(|r| r.state).as_deref() {
                Some("paused") => {}
                _ => return Ok(false),
            }
            sql::set_state(c, id, "running", now)?;
            Ok(true)
        })
        .await?;
    ctx.wake.notify_one();
    Ok(ok)
}

/// Cancel: what is not sent yet never will be. `Err(state)` when it had already ended.
pub async fn cancel(ctx: &Campaigns, id: i64) -> Result<Result<(), String>, StoreError> {
    let now = ctx.store.now_ms();
    ctx.store
        .write(move |c| {
            let state = sql::get_campaign(c, id)?
                .map(|r| r.state)
                .unwrap_or_default();
            match state.as_str() {
                "done" => return Ok(Err(state)),
                "cancelled" => return Ok(Ok(())),
                _ => {}
            }
            sql::withdraw(c, id, "campaign cancelled", "cancelled", now)?;
            sql::set_state(c, id, "cancelled", now)?;
            Ok(Ok(()))
        })
        .await
}

/// The spec a campaign was created with.
pub fn spec_of(row: &sql::CampaignRow) -> Option<CampaignRequest> {
    serde_json::from_str(&row.spec).ok()
}

/// The feeder: queues running campaigns' tasks at their rate until `shutdown`.
pub async fn run(ctx: Campaigns, mut shutdown: Shutdown) -> anyhow::Result<()> {
    // A round that found no campaign running holds until the database changes.
    let mut look: crate::store::LastLook<()> = crate::store::LastLook::default();
    let mut stalls = HashMap::new();
    while !shutdown.is_triggered() {
        let snapshot = ctx.store.snapshot();
        let fed = if look.needed(&snapshot, &(), 0) {
            feed_all(&ctx, &mut stalls).await
        } else {
            Ok(None)
        };
        if matches!(fed, Ok(None)) {
            look.record(snapshot, (), None);
        } else {
            look.forget();
        }
        let wait = match fed {
            Ok(Some(wait)) => wait,
            Ok(None) => crate::dispatch::IDLE_TICK_ALL_UP,
            Err(e) => {
                log::error!("campaigns: cannot queue campaign messages: {e:#}");
                crate::dispatch::IDLE_TICK
            }
        };
        tokio::select! {
            _ = ctx.wake.notified() => {}
            // Long waits land on the idle grid with the other loops' (`crate::idle`).
            _ = crate::idle::sleep_until(crate::idle::deadline(wait)) => {}
            _ = shutdown.wait() => {}
        }
    }
    Ok(())
}

/// One round over the running campaigns: how soon to look again (`None`: none is running).
/// `stalls`: each campaign's rounds in a row that found its backlog full and none of it
/// being sent.
async fn feed_all(
    ctx: &Campaigns,
    stalls: &mut HashMap<i64, u32>,
) -> Result<Option<Duration>, StoreError> {
    // While a customer's message is being answered, no campaign message is queued: the
    // reply's writes do not wait behind the round's (`Store::bulk_held`).
    if let Some(left) = ctx.store.bulk_held() {
        return Ok(Some(left.min(BUSY_TICK)));
    }
    let running = ctx.store.read(sql::running).await?;
    stalls.retain(|id, _| running.iter().any(|r| r.id == *id));
    let mut soonest: Option<Duration> = None;
    for row in &running {
        let wait = feed(ctx, row, stalls.entry(row.id).or_default()).await?;
        soonest = Some(soonest.map_or(wait, |s| s.min(wait)));
    }
    Ok(soonest)
}

/// Feeds one campaign; how soon it wants to be fed again. `stalled`: the rounds in a row
/// before this one that found its backlog full with nothing of it being sent.
async fn feed(
    ctx: &Campaigns,
    row: &sql::CampaignRow,
    stalled: &mut u32,
) -> Result<Duration, StoreError> {
    let Some(spec) = spec_of(row) else {
        log::error!(
            "campaign {}: its stored request cannot be read; pausing it",
            row.id
        );
        pause(ctx, row.id).await?;
        return Ok(FEED_TICK);
    };
    let now = ctx.store.now_ms();
    let window = ctx
        .rules
        .window_for(crate::model::Priority::Bulk, spec.window.as_deref());
    if let Some(w) = &window {
        let opens = ctx.rules.windows().next_open(w, now);
        if opens > now {
            let wait = Duration::from_millis((opens - now) as u64);
            return Ok(wait.min(crate::dispatch::IDLE_TICK_ALL_UP));
        }
    }
    let rate = spec.rate.as_deref().and_then(|r| RateLimit::parse(r).ok());
    let id = row.id;
    // The report mail is queued in the transaction that marks the campaign done, so a crash
    // between the two cannot lose it. The round need not wait for the disk: a power cut that
    // undoes it leaves its tasks pending (queued again after the restart) and the campaign
    // running, and nothing it queued can have been sent without a durable outcome after it,
    // which takes it to disk first. So the writer is not held a whole sync every 10 ms.
    let report = report_plan(ctx, row, &spec);
    let unmailed = spec.report_to.is_some() && report.is_none();
    let queued = ctx
        .store
        .write_deferred_sync(move |c| {
            if sql::get_campaign(c, id)?.map(|r| r.state).as_deref() != Some("running") {
                return Ok((None, FEED_TICK, false));
            }
            let (waiting, sending) = sql::open_messages(c, id)?;
            let full = waiting >= BACKLOG && sending == 0;
            let mut room = BACKLOG.saturating_sub(waiting);
            // While the routes take messages faster than they are fed, look again soon; while
            // the backlog is full (a slow route), at the normal tick.
            let mut wait = if waiting < BACKLOG && sending > 0 {
                BUSY_TICK
            } else {
                FEED_TICK
            };
            if let Some(r) = rate {
                // Sends within the last period plus those still to go: never more than the
                // rate allows in any period, whichever routes send them.
                let per = r.per.as_millis() as i64;
                let sent = sql::sent_since(c, id, now - per, now - 2 * per)?;
                let allowed = r.count.saturating_sub(sent + waiting + sending);
                if allowed < room {
                    room = allowed;
                    // A slot frees about every period/count.
                    wait = (r.per / r.count.max(1)).clamp(BUSY_TICK, crate::dispatch::IDLE_TICK);
                }
            }
            if room > 0 {
                let n = sql::queue_next(c, id, window.as_deref(), room, now)?;
                if n > 0 {
                    return Ok((Some(n), BUSY_TICK, false));
                }
            }
            let (pending, open) = sql::remaining(c, id)?;
            if !pending && open == 0 {
                sql::set_state(c, id, "done", now)?;
                if let Some(r) = &report {
                    crate::store::messages::insert_outbound(c, &[report_mail(c, r)?], now)?;
                }
                return Ok((Some(0), FEED_TICK, false));
            }
            Ok((None, wait, full))
        })
        .await?;
    let (queued, wait, full) = queued;
    let wait = stall_wait(wait, full, stalled);
    match queued {
        Some(0) => {
            log::info!("campaign {id} ({}) finished", row.name);
            if unmailed {
                log::info!(
                    "campaign {id}: no [[email]] account serves `clientes` nor `todo`; the report is not mailed"
                );
            }
            ctx.dispatch.wake();
        }
        Some(n) => {
            log::debug!("campaign {id}: {n} message(s) queued");
            ctx.dispatch.wake();
        }
        None => {}
    }
    Ok(wait)
}

/// How soon to feed a campaign again whose round found its backlog `full` and none of it
/// being sent, `stalled` rounds in a row before (counted here). Usually a round just queued
/// that backlog and the dispatcher is about to claim it: a fast route empties it within
/// milliseconds, and waiting the whole tick left that route idle for most of it. If it stays
/// full (every route down, busy or over its limit), the feeder looks less and less often, up
/// to the round's own `wait`.
fn stall_wait(wait: Duration, full: bool, stalled: &mut u32) -> Duration {
    if !full {
        *stalled = 0;
        return wait;
    }
    let soon = BUSY_TICK * 2u32.pow((*stalled).min(5));
    *stalled += 1;
    wait.min(soon)
}

/// The report as CSV: one row per selected customer.
pub async fn report_csv(store: &Store, id: i64, reply_days: u32) -> Result<String, StoreError> {
    store.read(move |c| report_text(c, id, reply_days)).await
}

fn report_text(c: &Connection, id: i64, reply_days: u32) -> Result<String, StoreError> {
    let reply_ms = i64::from(reply_days) * 86_400_000;
    let rows = sql::report(c, id, reply_ms)?;
    let mut out = String::from("code,channel,address,state,reason,cost,replied\n");
    for r in rows {
        let cells = [
            r.code,
            r.channel.unwrap_or_default(),
            r.peer.unwrap_or_default(),
            r.state,
            r.reason.unwrap_or_default(),
            r.cost.unwrap_or_default(),
            if r.replied { "yes" } else { "no" }.to_string(),
        ];
        let line: Vec<String> = cells.iter().map(|c| csv_cell(c)).collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    Ok(out)
}

/// A CSV cell, quoted when needed; a leading `=` or `@` (or `+`/`-` not starting a number)
/// is prefixed with `'` so a spreadsheet does not run it as a formula.
fn csv_cell(s: &str) -> String {
    let mut chars = s.chars();
    let risky = match chars.next() {
        Some('=' | '@') => true,
        Some('+' | '-') => !chars.next().is_some_and(|c| c.is_ascii_digit()),
        _ => false,
    };
    let s = if risky {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// What the report mail of a finishing campaign needs: where it goes and which account sends
/// it. `None` when it asks for no report or no email account serves campaigns.
struct ReportPlan {
    id: i64,
    name: String,
    to: String,
    account: String,
    reply_days: u32,
    language: crate::config::Language,
}

fn report_plan(
    ctx: &Campaigns,
    row: &sql::CampaignRow,
    spec: &CampaignRequest,
) -> Option<ReportPlan> {
    let to = spec.report_to.clone()?;
    let account = crate::transport::email::account_for(&ctx.transports, "clientes")?;
    Some(ReportPlan {
        id: row.id,
        name: row.name.clone(),
        to,
        account: account.name().to_string(),
        reply_days: spec.reply_days.unwrap_or(REPLY_DAYS),
        language: ctx.rules.company.language,
    })
}

/// The report mail of a finished campaign, built in the caller's transaction: the counts in
/// the text and the CSV attached.
fn report_mail(c: &Connection, r: &ReportPlan) -> Result<crate::store::NewOutbound, StoreError> {
    let csv = report_text(c, r.id, r.reply_days)?;
    let p = sql::progress(c, r.id, i64::from(r.reply_days) * 86_400_000)?;
    let (subject, text) = match r.language {
        crate::config::Language::Es => (
            format!("Campaña «{}» terminada", r.name),
            format!(
                "La campaña «{}» terminó.\n\nClientes: {}\nEnviados: {}\nEntregados: {}\nFallidos: {}\nOmitidos: {}\nRespondieron: {}\n\nEl detalle por cliente va adjunto.\n",
                r.name, p.total, p.sent, p.delivered, p.failed, p.skipped, p.replied
            ),
        ),
        crate::config::Language::En => (
            format!("Campaign “{}” finished", r.name),
            format!(
                "The campaign “{}” finished.\n\nCustomers: {}\nSent: {}\nDelivered: {}\nFailed: {}\nSkipped: {}\nReplied: {}\n\nThe detail per customer is attached.\n",
                r.name, p.total, p.sent, p.delivered, p.failed, p.skipped, p.replied
            ),
        ),
    };
    let mail = crate::model::Email {
        subject,
        text,
        html: None,
        attachments: vec![crate::model::Attachment {
            filename: format!("campaign-{}.csv", r.id),
            content_type: "text/csv".into(),
            bytes: csv.into_bytes(),
        }],
    };
    Ok(crate::store::NewOutbound {
        channel: Channel::Email,
        peer: r.to.clone(),
        body: crate::transport::email::stored::StoredEmail::new(&r.account, &mail).to_body(),
        priority: crate::model::Priority::Notification,
        customer_id: None,
        window: None,
        not_before: None,
    })
}

/// The campaign's progress counts.
pub async fn sql_progress(
    store: &Store,
    id: i64,
    reply_days: u32,
) -> Result<sql::Progress, StoreError> {
    let reply_ms = i64::from(reply_days) * 86_400_000;
    store.read(move |c| sql::progress(c, id, reply_ms)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_are_quoted_and_never_formulas() {
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_cell("=SUM(A1)"), "'=SUM(A1)");
        assert_eq!(csv_cell("+5491123456789"), "+5491123456789");
        assert_eq!(csv_cell("plain"), "plain");
        assert_eq!(csv_cell("-cmd"), "'-cmd");
    }

    #[test]
    fn a_full_backlog_is_looked_at_again_soon_then_less_and_less_often() {
        let mut stalled = 0;
        // Just queued: the next look is the busy tick, not the round's own.
        assert_eq!(stall_wait(FEED_TICK, true, &mut stalled), BUSY_TICK);
        let later: Vec<Duration> = (0..6)
            .map(|_| stall_wait(FEED_TICK, true, &mut stalled))
            .collect();
        assert!(later.windows(2).all(|w| w[0] <= w[1]), "{later:?}");
        assert_eq!(later[0], BUSY_TICK * 2);
        assert_eq!(*later.last().unwrap(), FEED_TICK);
        // Something was taken: back to the round's own wait, and the count starts over.
        assert_eq!(stall_wait(BUSY_TICK, false, &mut stalled), BUSY_TICK);
        assert_eq!(stalled, 0);
        assert_eq!(stall_wait(FEED_TICK, true, &mut stalled), BUSY_TICK);
        // A round that wants to look sooner than the backoff (a rate's next slot) keeps its own.
        let mut stalled = 5;
        let soon = Duration::from_millis(15);
        assert_eq!(stall_wait(soon, true, &mut stalled), soon);
    }

    #[test]
    fn field_names_are_checked() {
        assert!(is_field_name("nodo_2"));
        assert!(!is_field_name("a'); DROP"));
        assert!(!is_field_name(""));
    }

    fn preferred(available: &[Channel], subject: Option<&str>) -> Plan {
        Plan {
            mode: Mode::Preferred,
            text: Some("Hola %nombre%".into()),
            subject: subject.map(str::to_string),
            whatsapp: None,
            window: None,
            rate: None,
            filter: Filter::default(),
            allow_missing: false,
            reply_days: 7,
            email_account: Some("avisos".into()),
            available: available.iter().copied().collect(),
        }
    }

    #[test]
    fn preferred_uses_only_channels_the_campaign_can_send_on() {
        let mut c = Customer::default();
        c.channels.insert("invoice".into(), vec!["email".into()]);
        // Email first, but no subject: not a mail without one; SMS instead.
        let plan = preferred(&[Channel::Sms, Channel::Email], None);
        assert_eq!(candidates(&plan, &c), vec![Channel::Sms]);
        let plan = preferred(&[Channel::Sms, Channel::Email], Some("Tu factura"));
        assert_eq!(candidates(&plan, &c), vec![Channel::Email]);
        // No SMS route and no usable preference: not an SMS that could never leave.
        let plan = preferred(&[Channel::Email], None);
        assert!(candidates(&plan, &c).is_empty());
        assert!(Skip::NoRoute.reason(Channel::Sms).contains("no channel"));
    }

    #[test]
    fn money_filters_are_exact_cents() {
        assert_eq!(money(&serde_json::json!(10000)).unwrap(), 1_000_000);
        assert_eq!(money(&serde_json::json!("10.000,50")).unwrap(), 1_000_050);
        assert_eq!(money(&serde_json::json!(0.1)).unwrap(), 10);
        assert!(money(&serde_json::json!(true)).is_err());
    }
}
