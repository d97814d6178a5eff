//! Outages by zone: a fibre cut or a dead node puts a zone offline; its customers are told first,
//! their "sin internet" is answered with the outage instead of a ticket each, and they are told
//! when it is back.
//!
//! - **Open** ([`RulesContext::open_outage`]): the affected customers (a customer field, `zona`
//!   by default, equal to one of the zones) are computed once and frozen with the outage, its
//!   one master ticket is opened and the `notice` is queued as priority `notification` in the
//!   `windows.urgent` window (it skips the bulk window, not the night) — all in one
//!   transaction, so a crash leaves either all of it or none. Opted-out customers, customers
//!   without a phone and customers already told by another open outage get no notice.
//! - **While open** the inbox asks [`crate::store::outages::open_outage_for`]; the rules
//!   answer a ticket keyword with `reply` and link the text to the master ticket.
//! - **Resolve** ([`RulesContext::resolve_outage`]): `resolved` once to each customer notified or
//!   who wrote, on the channel they wrote on (else where the notice went). A customer still in
//!   another open outage is handed over to it instead, so they hear "it is back" once, when it
//!   is.
//!
//! The Alertmanager receiver that drives these from monitoring is [`alertmanager`].

pub mod alertmanager;

use chrono::{DateTime, TimeZone};
use chrono_tz::Tz;

use crate::config::Language;
use crate::inbox::RulesContext;
use crate::rules::template::{self, Vars};
use crate::rules::window::ALWAYS;
use crate::rules::{Customer, OutageFacts};
use crate::store::directory as dir_sql;
use crate::store::outages::{self as sql, Outage};
use crate::store::{Channel, NewOutbound, Priority, StoreError, now_ms};

/// The longest outage message, in characters: it goes into every notice (an SMS).
pub const MAX_MESSAGE_CHARS: usize = 500;

/// What can go wrong with an outage request; each names what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum OutageError {
    #[error("`{0}` is not a customer field; use zona, plan or one of the extra fields ({1})")]
    UnknownField(String, String),
    #[error("no customer has {field} = {}", .zones.join(" or "))]
    NoCustomers { field: String, zones: Vec<String> },
    #[error("outage {0} not found")]
    NotFound(i64),
    #[error("outage {0} is already resolved")]
    AlreadyResolved(i64),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Who opens an outage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Api,
    /// Alertmanager, for this value of the zone label.
    Alertmanager(String),
}

/// An outage to open, checked by the caller for shape (non-empty zones, a parsed ETA).
#[derive(Debug, Clone)]
pub struct OpenRequest {
    pub field: String,
    pub zones: Vec<String>,
    pub message: String,
    /// Unix ms.
    pub eta: Option<i64>,
    pub origin: Origin,
}

/// What opening did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    pub id: i64,
    pub affected: usize,
    pub notified: usize,
}

/// The ETA as customers read it, in the company's language and time zone: `hoy a las 18:00`,
/// `el 03/12 a las 09:30`; `a la brevedad` when unknown.
pub fn format_eta(eta: Option<i64>, now: i64, tz: Tz, language: Language) -> String {
    let Some(at) = eta.and_then(DateTime::from_timestamp_millis) else {
        return match language {
            Language::Es => "a la brevedad".into(),
            Language::En => "as soon as possible".into(),
        };
    };
    let at = at.with_timezone(&tz);
    let today = tz
        .timestamp_millis_opt(now)
        .single()
        .map(|n| n.date_naive());
    let same_day = today == Some(at.date_naive());
    match (language, same_day) {
        (Language::Es, true) => format!("hoy a las {}", at.format("%H:%M")),
        (Language::Es, false) => format!("el {}", at.format("%d/%m a las %H:%M")),
        (Language::En, true) => format!("today at {}", at.format("%-I:%M %p")),
        (Language::En, false) => format!("on {}", at.format("%m/%d at %-I:%M %p")),
    }
}

/// Parses an ETA as RFC 3339 (`2026-12-02T18:00:00-03:00`).
pub fn parse_eta(raw: &str) -> Result<i64, String> {
    DateTime::parse_from_rfc3339(raw.trim())
        .map(|t| t.timestamp_millis())
        .map_err(|_| {
            format!("`{raw}` is not a date and time like 2026-12-02T18:00:00-03:00 (RFC 3339)")
        })
}

/// The customer field named by an API or config value: `nodes` and `zones` are the lists, the
/// field is their singular; `zone` is the `zona` column.
pub fn canonical_field(field: &str) -> String {
    match field.trim() {
        "zone" => "zona".to_string(),
        f => f.to_lowercase(),
    }
}

/// Variables an outage text may name that are the same for every customer of a zone.
const ZONE_VARS: &[&str] = &[
    "zona",
    "eta",
    "mensaje",
    "empresa",
    "clave_saldo",
    "clave_soporte",
    "clave_baja",
];

/// Values for an outage text to one customer.
struct Texts {
    company: String,
    language: Language,
    settings: std::sync::Arc<crate::rules::Settings>,
}

impl Texts {
    fn vars(
        &self,
        customer: Option<&Customer>,
        phone: &str,
        zone: &str,
        eta: &str,
        msg: &str,
    ) -> Vars {
        let mut v = Vars::for_customer(customer, &self.company, phone, self.language);
        self.settings.key_vars(&mut v);
        v.set("zona", zone).set("eta", eta).set("mensaje", msg);
        v
    }

    /// Whether `template` reads the same for every customer of a zone: it names only the
    /// zone, the outage's and the company's variables (an extra field called `empresa` would
    /// stand for the company's name in [`Vars::for_customer`]).
    fn same_for_a_zone(
        &self,
        template: &Option<String>,
        conn: &rusqlite::Connection,
    ) -> Result<bool, StoreError> {
        let vars = template::variables(template.as_deref().unwrap_or(""));
        if !vars.iter().all(|v| ZONE_VARS.contains(&v.as_str())) {
            return Ok(false);
        }
        Ok(!vars.iter().any(|v| v == "empresa")
            || !dir_sql::extra_fields(conn)?.contains("empresa"))
    }

    fn render(&self, template: &Option<String>, vars: &Vars) -> String {
        let text = template::render(template.as_deref().unwrap_or(""), vars);
        // An empty %mensaje% leaves two spaces behind; the template's line breaks stay.
        text.lines()
            .map(|l| {
                l.split(' ')
                    .filter(|w| !w.is_empty())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect::<Vec<_>>()
            .join("\n")
            .trim()
            .to_string()
    }
}

impl RulesContext {
    fn texts(&self) -> Texts {
        Texts {
            company: self.company.name.clone(),
            language: self.company.language,
            settings: self.settings(),
        }
    }

    /// The `windows.urgent` window (None: `always`) and when it next opens after `now`.
    fn urgent(&self, now: i64) -> (Option<String>, Option<i64>) {
        let schedule = self.schedule();
        let name = schedule.config.windows.urgent.clone();
        if name == ALWAYS {
            return (None, None);
        }
        let at = Some(schedule.windows.next_open(&name, now)).filter(|t| *t > now);
        (Some(name), at)
    }

    /// Checks that `field` is a customer field: `zona`, `plan` or an extra field.
    pub async fn check_outage_field(&self, field: &str) -> Result<(), OutageError> {
        if matches!(field, "zona" | "zone" | "plan") {
            return Ok(());
        }
        let extra = self.extra_fields().await?;
        if extra.contains(field) && sql::field_expr(field).is_some() {
            return Ok(());
        }
        Err(OutageError::UnknownField(
            field.to_string(),
            extra.into_iter().collect::<Vec<_>>().join(", "),
        ))
    }

    /// Opens an outage: freezes its customers, opens its master ticket and queues the notices,
    /// in one transaction. [`OutageError::NoCustomers`] changes nothing.
    pub async fn open_outage(&self, req: OpenRequest) -> Result<Opened, OutageError> {
        let field = canonical_field(&req.field);
        self.check_outage_field(&field).await?;
        let now = now_ms();
        let texts = self.texts();
        let notify = texts.settings.outage.notify;
        let (window, not_before) = self.urgent(now);
        let eta_text = format_eta(req.eta, now, self.windows().tz(), texts.language);
        let day = self.local_day(now);
        let forward = texts.settings.ticket.forward_url.is_some();
        let operator = texts.settings.ticket.operator.clone();
        let ticket_text = match texts.language {
            Language::Es => format!("Corte de servicio, {field} {}", req.zones.join(", ")),
            Language::En => format!("Service outage, {field} {}", req.zones.join(", ")),
        };
        let ticket_text = if req.message.trim().is_empty() {
            ticket_text
        } else {
            format!("{ticket_text}: {}", req.message.trim())
        };
        let zones = req.zones.clone();
        let message = req.message.clone();
        let origin = req.origin.clone();
        let field2 = field.clone();
        let opened = self
            .store
            .write(move |c| {
                // Checked first, so a request that matches nobody writes nothing.
                if !sql::any_affected(c, &field2, &zones)? {
                    return Ok(None);
                }
                let alert_zone = match &origin {
                    Origin::Alertmanager(z) => Some(z.as_str()),
                    Origin::Api => None,
                };
                let id = sql::insert_outage(
                    c,
                    &sql::NewOutage {
                        field: &field2,
                        zones: &zones,
                        message: &message,
                        eta: req.eta,
                        source: if alert_zone.is_some() {
                            "alertmanager"
                        } else {
                            "api"
                        },
                        alert_zone,
                    },
                    now,
                )?;
                // Opted-out customers are left out here, in this transaction.
                let affected = sql::freeze_affected(c, id, &field2, &zones, notify)?;
                let ticket = dir_sql::insert_ticket(
                    c,
                    &dir_sql::NewTicketRow {
                        customer: None,
                        peer: &format!("outage:{id}"),
                        channel: Channel::Sms,
                        text: &ticket_text,
                        operator: &operator,
                        category: "corte",
                        message_id: None,
                        day: &day,
                        forward,
                    },
                    now,
                )?;
                sql::set_master_ticket(c, id, ticket)?;
                let notified = if !notify {
                    0
                } else if texts.same_for_a_zone(&texts.settings.outage.notice, c)? {
                    // One text per zone value, one statement for every notice.
                    let bodies: serde_json::Map<String, serde_json::Value> =
                        sql::notified_zones(c, id)?
                            .into_iter()
                            .map(|zone| {
                                let vars = texts.vars(None, "", &zone, &eta_text, &message);
                                let body = texts.render(&texts.settings.outage.notice, &vars);
                                (zone, body.into())
                            })
                            .collect();
                    let due = not_before.unwrap_or(now).max(now);
                    sql::queue_notices(
                        c,
                        id,
                        &serde_json::Value::Object(bodies).to_string(),
                        &sql::NoticeRows {
                            priority: Priority::Notification.rank(),
                            state: if due > now { "scheduled" } else { "queued" },
                            due,
                            window: window.as_deref(),
                        },
                        now,
                    )?
                } else {
                    let notices: Vec<NewOutbound> = sql::notified_customers(c, id)?
                        .into_iter()
                        .map(|n| {
                            let vars = texts.vars(
                                Some(&n.customer),
                                &n.peer,
                                &n.zone,
                                &eta_text,
                                &message,
                            );
                            NewOutbound {
                                channel: Channel::Sms,
                                body: texts.render(&texts.settings.outage.notice, &vars),
                                peer: n.peer,
                                priority: Priority::Notification,
                                customer_id: n.customer.id,
                                window: window.clone(),
                                not_before,
                            }
                        })
                        .collect();
                    crate::store::messages::insert_outbound_prechecked(c, &notices, now)?;
                    notices.len()
                };
                Ok(Some(Opened {
                    id,
                    affected,
                    notified,
                }))
            })
            .await?;
        let Some(opened) = opened else {
            return Err(OutageError::NoCustomers {
                field,
                zones: req.zones,
            });
        };
        log::info!(
            "outage {}: opened for {field} {} ({} customers, {} notices queued)",
            opened.id,
            req.zones.join(", "),
            opened.affected,
            opened.notified
        );
        self.dispatch.wake();
        if forward {
            self.wake_forwarder();
        }
        Ok(opened)
    }

    /// One outage with its counts.
    pub async fn outage(&self, id: i64) -> Result<Outage, OutageError> {
        self.store
            .read(move |c| sql::get_outage(c, id))
            .await?
            .ok_or(OutageError::NotFound(id))
    }

    /// Changes the message and/or the ETA of an open outage (replies use them from now on; no
    /// new notice is sent). 409 when it is resolved.
    pub async fn update_outage(
        &self,
        id: i64,
        message: Option<String>,
        eta: Option<i64>,
    ) -> Result<Outage, OutageError> {
        let now = now_ms();
        let result = self
            .store
            .write(move |c| {
                if sql::update_outage(c, id, message.as_deref(), eta.map(Some), now)? {
                    return Ok(Ok(()));
                }
                Ok(Err(sql::get_outage(c, id)?.is_some()))
            })
            .await?;
        match result {
            Ok(()) => {
                log::info!("outage {id}: updated");
                self.outage(id).await
            }
            Err(true) => Err(OutageError::AlreadyResolved(id)),
            Err(false) => Err(OutageError::NotFound(id)),
        }
    }

    /// Resolves an open outage: closes its master ticket and queues `resolved` to each customer
    /// notified or who wrote, once, in one transaction. A second call is
    /// [`OutageError::AlreadyResolved`].
    pub async fn resolve_outage(
        &self,
        id: i64,
        note: Option<String>,
    ) -> Result<Outage, OutageError> {
        let now = now_ms();
        let texts = self.texts();
        let (window, not_before) = self.urgent(now);
        let note2 = note.clone();
        let result = self
            .store
            .write(move |c| {
                let Some(outage) = sql::get_outage(c, id)? else {
                    return Ok(Err(false));
                };
                if !sql::mark_resolved(c, id, note2.as_deref(), now)? {
                    return Ok(Err(true));
                }
                if let Some(t) = outage.master_ticket {
                    dir_sql::update_ticket(c, t, Some("closed"), None, now)?;
                }
                let message = note2.unwrap_or_default();
                let mut out = Vec::new();
                let mut handed = 0usize;
                let mut stopped = std::collections::HashMap::new();
                for contact in sql::contacts(c, id)? {
                    if let Some(other) = sql::other_open_outage(c, contact.customer_id, id)? {
                        sql::hand_over(c, other, &contact)?;
                        handed += 1;
                        continue;
                    }
                    let customer = dir_sql::customer_by_id(c, contact.customer_id)?;
                    let (channel, peer) = match contact.channel {
                        // A mail needs a subject and an account: the all-clear goes where the
                        // notice went, or to the customer's first phone.
                        Channel::Email => {
                            match contact.notice.as_ref().map(|n| n.1.clone()).or_else(|| {
                                customer.as_ref().and_then(|c| c.phones.first().cloned())
                            }) {
                                Some(p) => (Channel::Sms, p),
                                None => continue,
                            }
                        }
                        ch => (ch, contact.peer.clone()),
                    };
                    // Notices (not answers) skip whoever opted out since the outage opened.
                    if contact.wrote.is_none() {
                        if let std::collections::hash_map::Entry::Vacant(e) = stopped.entry(channel)
                        {
                            e.insert(sql::optouts_on(c, channel)?);
                        }
                        let by_number = stopped.get(&channel).is_some_and(|s| s.contains(&peer));
                        let flagged = customer.as_ref().is_some_and(|c| match channel {
                            Channel::Sms => c.optout.sms,
                            Channel::Whatsapp => c.optout.whatsapp,
                            Channel::Email => c.optout.email,
                        });
                        if by_number || flagged {
                            sql::mark_resolved_sent(c, id, contact.customer_id)?;
                            continue;
                        }
                    }
                    let vars = texts.vars(customer.as_ref(), &peer, &contact.zone, "", &message);
                    // To someone who wrote it answers their text (so it reaches a number that
                    // sent BAJA too); to the others it is a notice. Both wait for the night.
                    let priority = if contact.wrote.is_some() {
                        Priority::Reply
                    } else {
                        Priority::Notification
                    };
                    out.push(NewOutbound {
                        channel,
                        peer,
                        body: texts.render(&texts.settings.outage.resolved, &vars),
                        priority,
                        customer_id: Some(contact.customer_id),
                        window: window.clone(),
                        not_before,
                    });
                    sql::mark_resolved_sent(c, id, contact.customer_id)?;
                }
                crate::store::messages::insert_outbound_prechecked(c, &out, now)?;
                Ok(Ok((out.len(), handed)))
            })
            .await?;
        match result {
            Ok((sent, handed)) => {
                log::info!(
                    "outage {id}: resolved; {sent} all-clear message(s) queued{}",
                    if handed > 0 {
                        format!(", {handed} customer(s) still in another open outage")
                    } else {
                        String::new()
                    }
                );
                self.dispatch.wake();
                self.outage(id).await
            }
            Err(true) => Err(OutageError::AlreadyResolved(id)),
            Err(false) => Err(OutageError::NotFound(id)),
        }
    }

    /// Outages newest first (`state` = open | resolved).
    pub async fn outages(
        &self,
        state: Option<String>,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<Outage>, StoreError> {
        self.store
            .read(move |c| sql::list_outages(c, state.as_deref(), before, limit))
            .await
    }

    /// The reply facts of an outage row for a customer whose field value is `zone`.
    pub fn outage_facts(&self, outage: &Outage, zone: String, now: i64) -> OutageFacts {
        OutageFacts {
            id: outage.id,
            zone,
            eta: format_eta(outage.eta, now, self.windows().tz(), self.company.language),
            message: outage.message.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::DispatchHandle;
    use crate::store::Store;

    /// Bulk waits for office hours; urgent notices keep the default `fulltime` (07–23).
    async fn context(dir: &std::path::Path, extra: &str) -> RulesContext {
        let text = format!(
            "[daemon]\nstate_dir = \"{}\"\n[company]\nname = \"Red Sur\"\n\
             [windows]\nbulk = \"laboral\"\n{extra}",
            dir.display()
        );
        let loaded = crate::setup::from_toml(&text).unwrap();
        let store = Store::open(dir).unwrap();
        RulesContext::new(&loaded.config, store, DispatchHandle::default())
            .await
            .unwrap()
    }

    async fn customers(ctx: &RulesContext, list: &[(&str, &str, &str)]) {
        let list: Vec<(String, String, String)> = list
            .iter()
            .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
            .collect();
        ctx.store
            .write(move |c| {
                for (code, zone, phone) in &list {
                    c.execute(
                        "INSERT INTO customers (code, name, zone, created_at, updated_at) \
                         VALUES (?1, ?1, ?2, 0, 0)",
                        [code, zone],
                    )?;
                    c.execute(
                        "INSERT INTO customer_phones (phone, customer_id, position) \
                         VALUES (?1, last_insert_rowid(), 0)",
                        [phone],
                    )?;
                }
                Ok(())
            })
            .await
            .unwrap();
    }

    fn request(zones: &[&str]) -> OpenRequest {
        OpenRequest {
            field: "zona".into(),
            zones: zones.iter().map(|z| z.to_string()).collect(),
            message: String::new(),
            eta: None,
            origin: Origin::Api,
        }
    }

    #[tokio::test]
    async fn notices_skip_the_bulk_window_but_keep_the_urgent_one() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = context(dir.path(), "").await;
        customers(
            &ctx,
            &[
                ("A1", "norte", "+5491150000001"),
                ("A2", "sur", "+5491150000002"),
            ],
        )
        .await;
        let opened = ctx.open_outage(request(&["norte"])).await.unwrap();
        assert_eq!((opened.affected, opened.notified), (1, 1));
        let rows: Vec<(String, i64, Option<String>)> = ctx
            .store
            .read(|c| {
                let mut s = c.prepare(
                    "SELECT peer, priority, send_window FROM messages WHERE direction = 'out'",
                )?;
                let rows = s
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(rows)
            })
            .await
            .unwrap();
        assert_eq!(
            rows,
            vec![(
                "+5491150000001".to_string(),
                Priority::Notification.rank(),
                Some("fulltime".to_string())
            )]
        );
        // Nothing matches: nothing is written.
        let before = ctx.store.write_count();
        let e = ctx.open_outage(request(&["oeste"])).await.unwrap_err();
        assert!(matches!(e, OutageError::NoCustomers { .. }), "{e}");
        assert_eq!(e.to_string(), "no customer has zona = oeste");
        assert_eq!(ctx.outages(None, None, 10).await.unwrap().len(), 1);
        assert!(ctx.store.write_count() <= before + 1);
    }

    #[tokio::test]
    async fn notify_false_opens_without_notices_and_english_texts_are_used() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = context(dir.path(), "[rules.outage]\nnotify = false\n").await;
        customers(
            &ctx,
            &[
                ("A1", "norte", "+5491150000001"),
                ("A2", "NÚÑEZ", "+5491150000002"),
                ("A3", "Núñez", "+5491150000003"),
            ],
        )
        .await;
        let opened = ctx.open_outage(request(&["NORTE "])).await.unwrap();
        assert_eq!((opened.affected, opened.notified), (1, 0));
        // Accented capitals match however the zone was typed (SQLite's lower() is ASCII only).
        let opened = ctx.open_outage(request(&["núñez"])).await.unwrap();
        assert_eq!(opened.affected, 2);
        let mut s = crate::rules::Settings::default();
        s.fill_defaults(Language::En);
        assert!(
            s.outage
                .notice
                .unwrap()
                .contains("service outage in the %zona% area")
        );
    }

    async fn notices(ctx: &RulesContext) -> Vec<(String, String)> {
        ctx.store
            .read(|c| {
                let mut s = c.prepare(
                    "SELECT peer, body FROM messages WHERE direction = 'out' ORDER BY id",
                )?;
                let rows = s
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(rows)
            })
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn notices_leave_out_the_opted_out_and_the_already_told_per_zone_or_per_customer() {
        for per_customer in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let notice = if per_customer {
                "[rules.outage]\nnotice = \"Hola %nombre%: corte en %zona%, %eta%.\"\n"
            } else {
                "[rules.outage]\nnotice = \"%empresa%: corte en %zona%, %eta%.\"\n"
            };
            let ctx = context(dir.path(), notice).await;
            customers(
                &ctx,
                &[
                    ("A1", "Norte", "+5491150000001"),
                    ("A2", "norte", "+5491150000002"),
                    ("A3", "NORTE", "+5491150000003"),
                    ("A4", "sur", "+5491150000004"),
                ],
            )
            .await;
            ctx.store
                .write(|c| {
                    // A2 opted out by flag, A3 by texting BAJA.
                    c.execute("UPDATE customers SET optout_sms = 1 WHERE code = 'A2'", [])?;
                    c.execute(
                        "INSERT INTO optouts (channel, peer, at) VALUES ('sms', '+5491150000003', 0)",
                        [],
                    )?;
                    Ok(())
                })
                .await
                .unwrap();
            let opened = ctx.open_outage(request(&["norte"])).await.unwrap();
            assert_eq!((opened.affected, opened.notified), (3, 1));
            let first = if per_customer {
                "Hola A1: corte en Norte, a la brevedad."
            } else {
                "Red Sur: corte en Norte, a la brevedad."
            };
            assert_eq!(
                notices(&ctx).await,
                vec![("+5491150000001".to_string(), first.to_string())]
            );
            // An overlapping outage tells only whoever was not told yet.
            let opened = ctx.open_outage(request(&["norte", "sur"])).await.unwrap();
            assert_eq!((opened.affected, opened.notified), (4, 1));
            let last = notices(&ctx).await.pop().unwrap();
            assert_eq!(last.0, "+5491150000004");
            assert!(last.1.contains("corte en sur"), "{}", last.1);
            let o = ctx.outage(opened.id).await.unwrap();
            assert_eq!((o.counts.affected, o.counts.notified), (4, 1));
        }
    }

    fn ms(s: &str) -> i64 {
        parse_eta(s).unwrap()
    }

    #[test]
    fn the_eta_reads_in_the_company_language_and_time_zone() {
        let tz: Tz = "America/Argentina/Buenos_Aires".parse().unwrap();
        let now = ms("2026-12-02T10:00:00-03:00");
        let eta = Some(ms("2026-12-02T21:00:00Z"));
        assert_eq!(format_eta(eta, now, tz, Language::Es), "hoy a las 18:00");
        assert_eq!(format_eta(eta, now, tz, Language::En), "today at 6:00 PM");
        let tomorrow = Some(ms("2026-12-03T09:30:00-03:00"));
        assert_eq!(
            format_eta(tomorrow, now, tz, Language::Es),
            "el 03/12 a las 09:30"
        );
        assert_eq!(
            format_eta(tomorrow, now, tz, Language::En),
            "on 12/03 at 9:30 AM"
        );
        assert_eq!(format_eta(None, now, tz, Language::Es), "a la brevedad");
        assert!(parse_eta("mañana").unwrap_err().contains("RFC 3339"));
    }

    #[test]
    fn fields_by_any_name() {
        assert_eq!(canonical_field("zone"), "zona");
        assert_eq!(canonical_field(" Nodo "), "nodo");
        assert!(sql::field_expr("nodo").is_some());
        assert!(sql::field_expr("x'; DROP TABLE customers").is_none());
    }
}
