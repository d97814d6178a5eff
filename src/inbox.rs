//! Carries the rules out. Three loops, each supervised by the daemon:
//!
//! - **inbox**: every inbound message (any transport) is stored first with `handled = 0`; this
//!   loop looks its sender up, asks [`rules::decide`] and applies the actions (replies, tickets,
//!   opt-outs, operator alerts) in **one transaction** with marking the message handled. A crash
//!   before that commit leaves the message unhandled and it is decided again at restart; after
//!   it, nothing is applied twice.
//! - **scheduler**: delivery windows. Scheduled messages whose window has opened go to the queue;
//!   queued messages of a window that has closed wait again (a retry that fell due at night).
//! - **forwarder**: new tickets `POST`ed to the billing system (`rules.ticket.forward_url`),
//!   retried with backoff until it answers 2xx; the attempt count and last error are on the ticket.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::DateTime;
use chrono_tz::Tz;

use crate::config::{Config, Language};
use crate::directory::{Directory, DirectoryConfig, Lookup, Source};
use crate::dispatch::DispatchHandle;
use crate::logging::peer as shown;
use crate::phone::PhoneContext;
use crate::rules::template::{self, Vars};
use crate::rules::window::{ALWAYS, Windows};
use crate::rules::{self, Action, Company, Customer, Facts, Found, Settings};
use crate::shutdown::Shutdown;
use crate::store::directory as sql;
use crate::store::{
    Channel, LastLook, Message, MessageId, NewOutbound, Priority, Store, StoreError, now_ms,
};
use crate::transport::email::notice::{DocKind, MailTemplate, ticket_mail};

/// Longest wait for the billing system to take a forwarded ticket.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest sleep of the scheduler and the ticket forwarder: a look at least this often
/// (skipped while nothing changed), on the idle grid.
const LONGEST_PASS_WAIT: Duration = Duration::from_secs(30);
/// [`LONGEST_PASS_WAIT`] in milliseconds, for due times in Unix ms.
const LONGEST_PASS_MS: i64 = LONGEST_PASS_WAIT.as_millis() as i64;

/// Key of the API-edited rules in the `settings` table.
pub const RULES_KEY: &str = "rules";

/// Key of the API-edited `[windows]` and `[[groups]]` in the `settings` table.
pub const SCHEDULE_KEY: &str = "schedule";

/// `[windows]` and `[[groups]]` as JSON (`GET /api/rules` shows them beside `[rules]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    #[serde(default)]
    pub windows: crate::rules::window::WindowsConfig,
    #[serde(default)]
    pub groups: Vec<crate::rules::GroupConfig>,
}

/// Delivery windows and groups as they apply now, checked.
#[derive(Debug)]
pub struct Schedule {
    pub config: ScheduleConfig,
    pub windows: Arc<Windows>,
    pub groups: Arc<Vec<Group>>,
}

impl Schedule {
    /// Checks and builds; errors are (dotted key, message), a group's keys with its position
    /// (`groups.0.phones`).
    pub fn build(
        config: ScheduleConfig,
        tz: Tz,
        phones: &PhoneContext,
    ) -> Result<Schedule, Vec<(String, String)>> {
        let (windows, mut errors) = match Windows::new(&config.windows, tz, phones.country()) {
            Ok(w) => (Some(w), Vec::new()),
            Err(e) => (None, e),
        };
        for (i, field, message) in
            rules::check_groups(&config.groups, windows.as_ref(), Some(phones))
        {
            errors.push((format!("groups.{i}.{field}"), message));
        }
        let Some(windows) = windows.filter(|_| errors.is_empty()) else {
            return Err(errors);
        };
        let groups = config
            .groups
            .iter()
            .map(|g| Group {
                name: g.name.clone(),
                phones: g
                    .phones
                    .iter()
                    .filter_map(|p| phones.normalize(p).ok())
                    .map(|m| m.as_str().to_string())
                    .collect(),
                window: g.window.clone(),
            })
            .collect();
        Ok(Schedule {
            config,
            windows: Arc::new(windows),
            groups: Arc::new(groups),
        })
    }
}

/// An operator group, numbers normalized.
#[derive(Debug, Clone)]
pub struct Group {
    pub name: String,
    pub phones: Vec<String>,
    pub window: String,
}

/// Everything the rules need at run time; shared by the loops and the admin API.
#[derive(Clone)]
pub struct RulesContext {
    pub store: Store,
    pub directory: Directory,
    pub directory_config: DirectoryConfig,
    /// Effective settings: the file's, or the API-edited copy; templates filled in.
    settings: Arc<RwLock<Arc<Settings>>>,
    /// The file's settings, for `DELETE /api/rules`.
    file_settings: Arc<Settings>,
    pub company: Company,
    /// Effective windows and groups: the file's, or the API-edited copy.
    schedule: Arc<RwLock<Arc<Schedule>>>,
    /// The file's, for `DELETE /api/rules`.
    file_schedule: Arc<Schedule>,
    /// Bumped after every change of `settings` or `schedule` (the loops that skip a look
    /// while nothing changed compare it: an address could be reused, a count cannot).
    settings_generation: Arc<std::sync::atomic::AtomicU64>,
    pub phones: PhoneContext,
    pub dispatch: DispatchHandle,
    /// Wakes the forwarder when a ticket was opened.
    forward_wake: Arc<tokio::sync::Notify>,
    /// Who is mailed when a ticket opens or closes; `None` before the transports are known.
    ticket_mail: Option<Arc<TicketMail>>,
}

/// Ticket mails: the email routes (the `tickets` account, else `todo`, sends them) and the
/// operator's address (`[email_notify] operator`).
pub struct TicketMail {
    pub transports: Vec<Arc<dyn crate::transport::Transport>>,
    pub operator: Option<String>,
}

/// Queues, in the caller's transaction, the mails of a ticket that was opened or closed: to the
/// customer's `email` (when there is one) and to the operator, rendered from the saved template
/// of `kind` or the built-in one. No account for `tickets` (nor `todo`) means no mail, logged at
/// debug. Returns how many were queued.
#[allow(clippy::too_many_arguments)]
pub fn queue_ticket_mails(
    c: &rusqlite::Connection,
    mail: Option<&TicketMail>,
    kind: DocKind,
    language: Language,
    customer_email: Option<&str>,
    customer_id: Option<i64>,
    vars: &Vars,
    now: i64,
) -> Result<usize, StoreError> {
    let Some(mail) = mail else {
        return Ok(0);
    };
    let customer = customer_email
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|e| (e.to_string(), customer_id));
    let operator = mail.operator.clone().map(|o| (o, None));
    let targets: Vec<(String, Option<i64>)> = customer.into_iter().chain(operator).collect();
    if targets.is_empty() {
        return Ok(0);
    }
    if crate::transport::email::account_for(&mail.transports, kind.area()).is_none() {
        log::debug!(
            "no [[email]] account serves `{}` nor `todo`: the {kind:?} mail is not sent",
            kind.area()
        );
        return Ok(0);
    }
    let saved: Option<(String, String, Option<String>)> = {
        use rusqlite::OptionalExtension;
        c.prepare_cached("SELECT subject, text, html FROM email_templates WHERE kind = ?1")?
            .query_row([ticket_kind_name(kind)], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()?
    };
    let template = saved.map(|(subject, text, html)| MailTemplate {
        subject,
        text,
        html,
    });
    let mut rows = Vec::new();
    for (to, cid) in targets {
        match ticket_mail(
            &mail.transports,
            &to,
            kind,
            vars,
            language,
            template.as_ref(),
        ) {
            Ok(p) => rows.push(NewOutbound {
                channel: Channel::Email,
                peer: p.to,
                body: p.body,
                priority: Priority::Notification,
                customer_id: cid,
                window: None,
                not_before: None,
            }),
            Err(e) => log::warn!("the {kind:?} mail to {to} is not queued: {e}"),
        }
    }
    let n = rows.len();
    crate::store::messages::insert_outbound(c, &rows, now)?;
    Ok(n)
}

fn ticket_kind_name(kind: DocKind) -> &'static str {
    match kind {
        DocKind::TicketOpened => "ticket_opened",
        DocKind::TicketClosed => "ticket_closed",
        DocKind::Invoice => "invoice",
        DocKind::Payment => "payment",
    }
}

impl RulesContext {
    /// Builds from a validated config, loading API-edited rules from the store.
    pub async fn new(
        config: &Config,
        store: Store,
        dispatch: DispatchHandle,
    ) -> anyhow::Result<RulesContext> {
        let tz: Tz = config.company.timezone.parse().unwrap_or(chrono_tz::UTC);
        let phones = config.company.phone_context();
        let joined = |errors: Vec<(String, String)>| {
            errors
                .iter()
                .map(|(k, m)| format!("{k}: {m}"))
                .collect::<Vec<_>>()
                .join("; ")
        };
        let file_schedule = Schedule::build(
            ScheduleConfig {
                windows: config.windows.clone(),
                groups: config.groups.clone(),
            },
            tz,
            &phones,
        )
        .map_err(|e| anyhow::anyhow!("{}", joined(e)))?;
        let file_schedule = Arc::new(file_schedule);
        let mut schedule = file_schedule.clone();
        if let Some(json) = store.read(|c| sql::get_setting(c, SCHEDULE_KEY)).await? {
            match serde_json::from_str::<ScheduleConfig>(&json)
                .map_err(|e| e.to_string())
                .and_then(|c| Schedule::build(c, tz, &phones).map_err(joined))
            {
                Ok(s) => {
                    log::info!(
                        "rules: using the windows and groups edited through the API (DELETE /api/rules goes back to the file's)"
                    );
                    schedule = Arc::new(s);
                }
                Err(e) => log::error!(
                    "rules: the windows and groups edited through the API cannot be used ({e}); using the file's"
                ),
            }
        }
        let language = config.company.language;
        let mut file_settings = config.rules.clone();
        file_settings.fill_defaults(language);
        let mut effective = file_settings.clone();
        if let Some(json) = store.read(|c| sql::get_setting(c, RULES_KEY)).await? {
            match serde_json::from_str::<Settings>(&json) {
                Ok(mut s) => {
                    s.fill_defaults(language);
                    log::info!(
                        "rules: using the copy edited through the API (DELETE /api/rules goes back to the file's)"
                    );
                    effective = s;
                }
                Err(e) => log::error!(
                    "rules: the copy edited through the API cannot be read ({e}); using the file's"
                ),
            }
        }
        Ok(RulesContext {
            directory: Directory::new(store.clone(), &config.directory)
                .map_err(anyhow::Error::msg)?,
            directory_config: config.directory.clone(),
            store,
            settings: Arc::new(RwLock::new(Arc::new(effective))),
            file_settings: Arc::new(file_settings),
            company: Company {
                name: config.company.name.clone(),
                language,
            },
            schedule: Arc::new(RwLock::new(schedule)),
            file_schedule,
            settings_generation: Arc::default(),
            phones,
            dispatch,
            forward_wake: Arc::new(tokio::sync::Notify::new()),
            ticket_mail: None,
        })
    }

    /// Mails ticket updates through the email routes among `transports`, and to `operator`.
    pub fn with_ticket_mail(
        mut self,
        transports: Vec<Arc<dyn crate::transport::Transport>>,
        operator: Option<String>,
    ) -> RulesContext {
        self.ticket_mail = Some(Arc::new(TicketMail {
            transports,
            operator,
        }));
        self
    }

    /// Wakes the ticket forwarder (a ticket was opened outside the inbox).
    pub fn wake_forwarder(&self) {
        self.forward_wake.notify_one();
    }

    /// Ticket mails, when set up.
    pub fn ticket_mail(&self) -> Option<Arc<TicketMail>> {
        self.ticket_mail.clone()
    }

    pub fn settings(&self) -> Arc<Settings> {
        self.settings
            .read()
            .map(|s| s.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    fn settings_changed(&self) {
        self.settings_generation
            .fetch_add(1, std::sync::atomic::Ordering::Release);
    }

    /// Changes of the settings, windows and groups in force since start.
    fn settings_generation(&self) -> u64 {
        self.settings_generation
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// The windows and groups in force.
    pub fn schedule(&self) -> Arc<Schedule> {
        self.schedule
            .read()
            .map(|s| s.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// The delivery windows in force.
    pub fn windows(&self) -> Arc<Windows> {
        self.schedule().windows.clone()
    }

    /// The operator groups in force.
    pub fn groups(&self) -> Arc<Vec<Group>> {
        self.schedule().groups.clone()
    }

    /// The customer fields templates may use: configured CSV extras plus every extra field stored.
    pub async fn extra_fields(&self) -> Result<BTreeSet<String>, StoreError> {
        let mut fields = self.store.read(sql::extra_fields).await?;
        fields.extend(self.directory_config.extra_fields.iter().cloned());
        Ok(fields)
    }

    /// Checks and installs new settings (kept in the database). Errors are (key, message).
    pub async fn replace_settings(
        &self,
        new: Settings,
    ) -> Result<Arc<Settings>, Vec<(String, String)>> {
        self.replace_all(new, None).await.map(|(s, _)| s)
    }

    /// [`RulesContext::replace_settings`], and windows and groups too when `schedule` is
    /// given: all checked together (a ticket alert names a group of the new list), saved in
    /// one transaction, or nothing changes. Errors are (key, message).
    pub async fn replace_all(
        &self,
        mut new: Settings,
        schedule: Option<ScheduleConfig>,
    ) -> Result<(Arc<Settings>, Arc<Schedule>), Vec<(String, String)>> {
        new.fill_defaults(self.company.language);
        let extra = self
            .extra_fields()
            .await
            .map_err(|e| vec![(String::new(), e.to_string())])?;
        let mut errors = Vec::new();
        let names: Vec<String> = match &schedule {
            Some(c) => c.groups.iter().map(|g| g.name.clone()).collect(),
            None => self.groups().iter().map(|g| g.name.clone()).collect(),
        };
        let built = match schedule {
            Some(c) => match Schedule::build(c, self.windows().tz(), &self.phones) {
                Ok(s) => Some(Arc::new(s)),
                Err(e) => {
                    errors.extend(e);
                    None
                }
            },
            None => None,
        };
        errors.extend(new.check(&extra, &names));
        if let Some(path) = &new.ticket.forward_ca_file
            && let Err(e) = crate::net::tls::load_certs(path)
        {
            errors.push(("rules.ticket.forward_ca_file".to_string(), e));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let json = serde_json::to_string(&new).map_err(|e| vec![(String::new(), e.to_string())])?;
        let schedule_json = match &built {
            Some(s) => Some(
                serde_json::to_string(&s.config)
                    .map_err(|e| vec![(String::new(), e.to_string())])?,
            ),
            None => None,
        };
        self.store
            .write(move |c| {
                // One transaction (`Store::write`'s): both keys or neither.
                sql::set_setting(c, RULES_KEY, Some(&json), now_ms())?;
                if let Some(j) = &schedule_json {
                    sql::set_setting(c, SCHEDULE_KEY, Some(j), now_ms())?;
                }
                Ok(())
            })
            .await
            .map_err(|e| vec![(String::new(), e.to_string())])?;
        let new = Arc::new(new);
        if let Ok(mut s) = self.settings.write() {
            *s = new.clone();
        }
        if let Some(b) = &built
            && let Ok(mut s) = self.schedule.write()
        {
            *s = b.clone();
        }
        self.settings_changed();
        log::info!(
            "rules: settings{} changed through the API",
            if built.is_some() {
                ", windows and groups"
            } else {
                ""
            }
        );
        Ok((new, built.unwrap_or_else(|| self.schedule())))
    }

    /// Drops the API-edited copy; the file's settings apply again.
    pub async fn reset_settings(&self) -> Result<Arc<Settings>, StoreError> {
        self.store
            .write(|c| {
                sql::set_setting(c, RULES_KEY, None, now_ms())?;
                sql::set_setting(c, SCHEDULE_KEY, None, now_ms())?;
                Ok(())
            })
            .await?;
        let file = self.file_settings.clone();
        if let Ok(mut s) = self.settings.write() {
            *s = file.clone();
        }
        if let Ok(mut s) = self.schedule.write() {
            *s = self.file_schedule.clone();
        }
        self.settings_changed();
        log::info!("rules: back to the settings of the config file");
        Ok(file)
    }

    /// Company-local date `YYYY-MM-DD` of `ms`.
    pub fn local_day(&self, ms: i64) -> String {
        DateTime::from_timestamp_millis(ms)
            .map(|t| {
                t.with_timezone(&self.windows().tz())
                    .date_naive()
                    .to_string()
            })
            .unwrap_or_default()
    }

    /// The delivery window for a message of `priority`, unless the caller chose one.
    pub fn window_for(&self, priority: Priority, chosen: Option<&str>) -> Option<String> {
        let schedule = self.schedule();
        let name = match (chosen, priority) {
            (Some(w), _) => w,
            (None, Priority::Reply) => return None,
            (None, Priority::Notification) => schedule.config.windows.notifications.as_str(),
            (None, Priority::Bulk) => schedule.config.windows.bulk.as_str(),
        };
        (name != ALWAYS).then(|| name.to_string())
    }

    /// `not_before` for a message in `window`, now.
    pub fn not_before(&self, window: Option<&str>, now: i64) -> Option<i64> {
        window
            .map(|w| self.windows().next_open(w, now))
            .filter(|t| *t > now)
    }

    // ----- inbox ------------------------------------------------------------------------------

    /// Works inbound messages until `shutdown`.
    pub async fn run_inbox(&self, mut shutdown: Shutdown) -> anyhow::Result<()> {
        let signal = self.store.inbound_signal();
        let mut failures: HashMap<MessageId, u32> = HashMap::new();
        // A look that found nothing unhandled holds until the database changes.
        let mut look: LastLook<()> = LastLook::default();
        while !shutdown.is_triggered() {
            let snapshot = self.store.snapshot();
            let pending = if failures.is_empty() && !look.needed(&snapshot, &(), 0) {
                Vec::new()
            } else {
                let pending = self.store.read(|c| sql::unhandled(c, 64)).await?;
                if pending.is_empty() && failures.is_empty() {
                    look.record(snapshot, (), None);
                }
                pending
            };
            let busy = !pending.is_empty();
            for m in pending {
                if shutdown.is_triggered() {
                    break;
                }
                if let Err(e) = self.handle(&m).await {
                    let n = failures.entry(m.id).or_insert(0);
                    *n += 1;
                    log::error!(msg_id = m.id.0; "rules: message {} could not be handled (try {n}): {e:#}", m.id);
                    self.no_reply_coming();
                    if *n >= 5 {
                        log::error!(msg_id = m.id.0; "rules: giving up on message {}; it stays in the history unanswered", m.id);
                        let id = m.id;
                        self.store
                            .write(move |c| sql::mark_handled(c, id, None))
                            .await?;
                        failures.remove(&m.id);
                    }
                } else {
                    failures.remove(&m.id);
                }
            }
            if busy && failures.is_empty() {
                continue;
            }
            tokio::select! {
                _ = signal.notified() => {}
                // Each committed inbound message signals; the long look is for rows that
                // came some other way (a restore).
                _ = crate::idle::sleep(Duration::from_secs(if failures.is_empty() { 60 } else { 2 })) => {}
                _ = shutdown.wait() => {}
            }
        }
        Ok(())
    }

    /// Decides about one inbound message and applies the decision.
    pub async fn handle(&self, m: &Message) -> anyhow::Result<()> {
        let settings = self.settings();
        let answerable = rules::is_answerable(&m.peer);
        let (lookup, source) = if answerable {
            self.directory.lookup(&m.peer).await
        } else {
            (Lookup::NotFound, Source::Local)
        };
        let now = now_ms();
        let day = self.local_day(now);
        let customer: Option<Customer> = match &lookup {
            Lookup::One(c) => Some((**c).clone()),
            _ => None,
        };
        let (replies, tickets, outage) = {
            let peer = m.peer.clone();
            let cid = customer.as_ref().and_then(|c| c.id);
            let code = customer.as_ref().map(|c| c.code.clone());
            let day = day.clone();
            self.store
                .read(move |c| {
                    let outage = match &code {
                        Some(code) => crate::store::outages::open_outage_for(c, cid, code)?,
                        None => None,
                    };
                    Ok((
                        sql::replies_since(c, &peer, now - 3_600_000)?,
                        sql::tickets_on(c, cid, &peer, &day)?,
                        outage,
                    ))
                })
                .await?
        };
        let outage = outage.map(|(o, zone)| self.outage_facts(&o, zone, now));
        let found = match &lookup {
            Lookup::One(c) => Found::One(c),
            Lookup::NotFound => Found::NotFound,
            Lookup::Ambiguous(list) => Found::Ambiguous(list.len()),
        };
        let decision = rules::decide(
            &settings,
            &self.company,
            &m.peer,
            &m.body,
            Facts {
                customer: found,
                replies_last_hour: replies,
                tickets_today: tickets,
                outage: outage.as_ref(),
            },
        );
        if let Lookup::Ambiguous(list) = &lookup {
            log::warn!(
                msg_id = m.id.0;
                "rules: {} is on {} customers ({}); not guessing which",
                shown(&m.peer),
                list.len(),
                list.iter().map(|c| c.code.as_str()).collect::<Vec<_>>().join(", ")
            );
        }
        log::info!(
            msg_id = m.id.0, rule = format!("{:?}", decision.rule);
            "rules: message {} from {}: {}{}",
            m.id,
            shown(&m.peer),
            decision.why,
            if answerable { format!(" (customer from the {source})") } else { String::new() }
        );

        // Alert targets are chosen now (window state) but rendered with the ticket id.
        let alert_targets = self.alert_targets(&settings, now);
        let forward = settings.ticket.forward_url.is_some();
        let message = m.clone();
        let actions = decision.actions;
        let replies = actions.iter().any(|a| match a {
            Action::Reply(_) => true,
            Action::OpenTicket(t) => t.reply.is_some(),
            Action::LinkOutage(_) => false,
            Action::SetOptOut(_) => false,
        });
        let windows = self.windows();
        let mail = self.ticket_mail.clone();
        let language = self.company.language;
        // The decision need not wait for the disk: the inbound message is durable already
        // (it was stored before the modem deleted it), and a power cut that undoes this commit
        // leaves it unhandled, so it is decided again after the restart (at most one
        // duplicate reply, as for any message in flight). Anything sent because of it has a
        // durable outcome, which takes this commit to disk first. So the reply waits for no
        // sync, neither its own nor, during a campaign, the outcomes' queued before it.
        let applied = self
            .store
            .write_deferred_sync(move |c| {
                let cid = customer.as_ref().and_then(|x| x.id);
                if !sql::mark_handled(c, message.id, cid)? {
                    return Ok(false);
                }
                let reply = |c: &rusqlite::Connection, body: String| {
                    crate::store::messages::insert_outbound(
                        c,
                        &[NewOutbound {
                            channel: message.channel,
                            peer: message.peer.clone(),
                            body,
                            priority: Priority::Reply,
                            customer_id: cid,
                            window: None,
                            not_before: None,
                        }],
                        now,
                    )
                };
                let mut replied = false;
                for action in actions {
                    match action {
                        Action::Reply(text) => {
                            reply(c, text)?;
                            replied = true;
                        }
                        Action::LinkOutage(outage) => {
                            crate::store::outages::link_message(
                                c,
                                outage,
                                cid,
                                customer.as_ref().map(|x| x.code.as_str()).unwrap_or(""),
                                message.id,
                                message.channel,
                                &message.peer,
                                replied,
                            )?;
                        }
                        Action::SetOptOut(stop) => {
                            sql::set_optout(c, message.channel, &message.peer, stop, now)?;
                        }
                        Action::OpenTicket(t) => {
                            let id = sql::insert_ticket(
                                c,
                                &sql::NewTicketRow {
                                    customer: customer.as_ref(),
                                    peer: &message.peer,
                                    channel: message.channel,
                                    text: &t.text,
                                    operator: &t.operator,
                                    category: &t.category,
                                    message_id: Some(message.id),
                                    day: &day,
                                    forward,
                                },
                                now,
                            )?;
                            if let Some((tpl, mut vars)) = t.reply {
                                vars.set("id", id.to_string());
                                reply(c, template::render(&tpl, &vars))?;
                            }
                            let (tpl, mut vars) = t.alert;
                            vars.set("id", id.to_string()).set("numero", id.to_string());
                            let text = template::render(&tpl, &vars);
                            queue_ticket_mails(
                                c,
                                mail.as_deref(),
                                DocKind::TicketOpened,
                                language,
                                customer.as_ref().and_then(|x| x.email.as_deref()),
                                cid,
                                &vars,
                                now,
                            )?;
                            let mut alerts = Vec::new();
                            for (group, phones, window) in &alert_targets {
                                if !t.alert_groups.contains(group) {
                                    continue;
                                }
                                for p in phones {
                                    alerts.push(NewOutbound {
                                        channel: Channel::Sms,
                                        peer: p.clone(),
                                        body: text.clone(),
                                        priority: Priority::Notification,
                                        customer_id: None,
                                        window: window.clone(),
                                        not_before: window
                                            .as_deref()
                                            .map(|w| windows.next_open(w, now))
                                            .filter(|at| *at > now),
                                    });
                                }
                            }
                            crate::store::messages::insert_outbound(c, &alerts, now)?;
                        }
                    }
                }
                Ok(true)
            })
            .await?;
        if applied {
            if replies {
                let waited = (now_ms() - m.created_at).max(0);
                crate::metrics::global().observe_keyword_reply(waited as f64 / 1000.0);
            }
            self.dispatch.wake();
            if forward {
                self.forward_wake.notify_one();
            }
        }
        if !(applied && replies) {
            self.no_reply_coming();
        }
        Ok(())
    }

    /// No reply goes for the message being handled: campaign messages need not wait for one
    /// (`Store::bulk_held`), and the dispatcher is woken to take them.
    fn no_reply_coming(&self) {
        self.store.release_bulk();
        self.dispatch.wake();
    }

    /// Groups to alert about a new ticket: those on duty now; when none is, the one whose window
    /// opens first (its alert waits for it). (name, phones, window or None for always).
    fn alert_targets(
        &self,
        settings: &Settings,
        now: i64,
    ) -> Vec<(String, Vec<String>, Option<String>)> {
        let groups = self.groups();
        let wanted: Vec<&Group> = groups
            .iter()
            .filter(|g| settings.ticket.alert_groups.contains(&g.name))
            .collect();
        let window_of = |g: &Group| (g.window != ALWAYS).then(|| g.window.clone());
        let on_duty: Vec<&Group> = wanted
            .iter()
            .copied()
            .filter(|g| self.windows().is_open(&g.window, now))
            .collect();
        let chosen: Vec<&Group> = if on_duty.is_empty() {
            wanted
                .iter()
                .copied()
                .min_by_key(|g| self.windows().next_open(&g.window, now))
                .into_iter()
                .collect()
        } else {
            on_duty
        };
        chosen
            .into_iter()
            .map(|g| (g.name.clone(), g.phones.clone(), window_of(g)))
            .collect()
    }

    /// Queues `text` by SMS to the ticket alert groups (`rules.ticket.alert_groups`) on duty
    /// now, or, when none is, to the one whose window opens first (it waits for it), in one
    /// transaction. Returns how many messages were queued (0 with no alert group set).
    pub async fn alert_on_duty(&self, text: String) -> Result<usize, StoreError> {
        self.alert_on_duty_marking(text, None).await
    }

    /// [`Self::alert_on_duty`], and in the same transaction sets the `meta` value `mark` (key,
    /// value): the alert is queued and remembered as sent together, so a crash cannot queue it
    /// twice or forget it.
    pub async fn alert_on_duty_marking(
        &self,
        text: String,
        mark: Option<(String, i64)>,
    ) -> Result<usize, StoreError> {
        let now = now_ms();
        let targets = self.alert_targets(&self.settings(), now);
        let windows = self.windows();
        let mut alerts = Vec::new();
        for (_, phones, window) in targets {
            for p in phones {
                alerts.push(NewOutbound {
                    channel: Channel::Sms,
                    peer: p,
                    body: text.clone(),
                    priority: Priority::Notification,
                    customer_id: None,
                    window: window.clone(),
                    not_before: window
                        .as_deref()
                        .map(|w| windows.next_open(w, now))
                        .filter(|at| *at > now),
                });
            }
        }
        if alerts.is_empty() && mark.is_none() {
            return Ok(0);
        }
        let n = alerts.len();
        self.store
            .write(move |c| {
                if !alerts.is_empty() {
                    crate::store::messages::insert_outbound(c, &alerts, now)?;
                }
                match mark {
                    Some((key, value)) => crate::store::meta_put(c, &key, Some(value)),
                    None => Ok(()),
                }
            })
            .await?;
        self.dispatch.wake();
        Ok(n)
    }

    /// The company's language, for texts to operators.
    pub fn language(&self) -> Language {
        self.company.language
    }

    // ----- scheduler --------------------------------------------------------------------------

    /// Moves messages between `scheduled` and `queued` as windows open and close.
    pub async fn run_scheduler(&self, mut shutdown: Shutdown) -> anyhow::Result<()> {
        // The last pass's answer holds while the database and the windows in force stand,
        // until the next change it found is due.
        let mut look: LastLook<u64> = LastLook::default();
        while !shutdown.is_triggered() {
            let snapshot = self.store.snapshot();
            let windows = self.settings_generation();
            let now = now_ms();
            if look.needed(&snapshot, &windows, now) {
                let due = self.schedule_pass(now).await?;
                look.record(snapshot, windows, due);
            }
            let next = look.due().unwrap_or(now + LONGEST_PASS_MS);
            // Sleep until the next window change or scheduled time, at most about 30 s.
            let wait = (next - now_ms()).clamp(50, LONGEST_PASS_MS) as u64;
            let until = crate::idle::wake_at(Duration::from_millis(wait), LONGEST_PASS_WAIT);
            tokio::select! {
                _ = crate::idle::sleep_until(until) => {}
                _ = shutdown.wait() => {}
            }
        }
        Ok(())
    }

    /// One pass of the scheduler at `now`: holds the queued messages of closed windows, queues
    /// the scheduled ones whose time came and whose window is open. Returns when the next pass
    /// is due (Unix ms). A pass with nothing to move only reads: a closed window with nothing
    /// queued costs no write (and no fsync) on every pass.
    pub async fn schedule_once(&self, now: i64) -> Result<i64, StoreError> {
        Ok(self
            .schedule_pass(now)
            .await?
            .unwrap_or(now + LONGEST_PASS_MS))
    }

    /// [`Self::schedule_once`], saying `None` when no window changes and nothing is
    /// scheduled.
    async fn schedule_pass(&self, now: i64) -> Result<Option<i64>, StoreError> {
        const DUE_BATCH: usize = 1000;
        let mut closed = self.windows().names();
        closed.retain(|n| !self.windows().is_open(n, now));
        // One read for the whole look (each query on its own would wake the reader thread
        // and this task again: an idle pass should cost one round trip).
        let (to_hold, due, next_sched) = self
            .store
            .read(move |c| {
                let mut held = Vec::new();
                for name in closed {
                    if sql::has_queued_in_window(c, &name)? {
                        held.push(name);
                    }
                }
                let due = sql::scheduled_due(c, now, DUE_BATCH as u32)?;
                // Messages due now are handled below; what is left wakes the next pass.
                let next: Option<i64> = c.query_row(
                    "SELECT MIN(next_attempt_at) FROM messages \
                     WHERE state = 'scheduled' AND next_attempt_at > ?1",
                    [now],
                    |r| r.get(0),
                )?;
                Ok((held, due, next))
            })
            .await?;
        // A full batch may leave more due now: look again at once.
        let next_sched = if due.len() >= DUE_BATCH {
            Some(now)
        } else {
            next_sched
        };
        for name in to_hold {
            let reopens = self.windows().next_open(&name, now);
            let n = {
                let name = name.clone();
                self.store
                    .write(move |c| sql::hold_window(c, &name, reopens, now))
                    .await?
            };
            if n > 0 {
                log::info!("window {name} is closed: {n} message(s) wait until it opens again");
            }
        }
        // Scheduled messages whose time came: queue them if their window is open.
        let mut queued = 0;
        if !due.is_empty() {
            let windows = self.windows();
            queued = self
                .store
                .write(move |c| {
                    let mut queued = 0;
                    for (id, window) in due {
                        let at = window
                            .as_deref()
                            .map(|w| windows.next_open(w, now))
                            .filter(|t| *t > now);
                        sql::reschedule(c, id, at, now)?;
                        queued += usize::from(at.is_none());
                    }
                    Ok(queued)
                })
                .await?;
        }
        if queued > 0 {
            log::info!("{queued} scheduled message(s) queued: their window is open");
            self.dispatch.wake();
        }
        Ok([self.windows().next_change(now), next_sched]
            .into_iter()
            .flatten()
            .min())
    }

    // ----- ticket forwarding ------------------------------------------------------------------

    /// Forwards new tickets to the billing system until `shutdown`.
    pub async fn run_forwarder(&self, mut shutdown: Shutdown) -> anyhow::Result<()> {
        // Rebuilt when forward_ca_file changes (PUT /api/rules may change it at run time).
        let mut client: Option<(Option<std::path::PathBuf>, reqwest::Client)> = None;
        // The last look's answer holds while the database and the settings in force stand,
        // until the next retry it found is due.
        let mut look: LastLook<u64> = LastLook::default();
        while !shutdown.is_triggered() {
            // Read before the settings: a change in between makes the next round look again.
            let generation = self.settings_generation();
            let settings = self.settings();
            let ca_file = settings.ticket.forward_ca_file.clone();
            if client.as_ref().is_none_or(|(ca, _)| *ca != ca_file) {
                let opts = crate::net::http::ClientOptions::new(FORWARD_TIMEOUT)
                    .ca_file(ca_file.as_deref());
                client = Some((
                    ca_file.clone(),
                    crate::net::http::client(&opts).unwrap_or_else(|e| {
                        log::error!(
                            "rules.ticket.forward_ca_file: {e}; forwarding trusts only the \
                             Mozilla roots until it is fixed"
                        );
                        crate::net::http::client(&crate::net::http::ClientOptions::new(
                            FORWARD_TIMEOUT,
                        ))
                        .unwrap_or_default()
                    }),
                ));
            }
            let Some((_, client)) = client.as_ref() else {
                continue;
            };
            let now = now_ms();
            let snapshot = self.store.snapshot();
            if !look.needed(&snapshot, &generation, now) {
                self.forward_pause(look.due(), &mut shutdown).await;
                continue;
            }
            let due = self
                .store
                .read(move |c| sql::forwards_due(c, now, 50))
                .await?;
            for t in due {
                let Some(url) = settings.ticket.forward_url.clone() else {
                    break;
                };
                let mut req = client.post(&url);
                for (k, v) in &settings.ticket.forward_headers {
                    req = req.header(k, v);
                }
                let result = req
                    .json(&serde_json::json!({
                        "id": t.id,
                        "customer": t.customer_code,
                        "phone": t.peer,
                        "channel": t.channel,
                        "text": t.text,
                        "operator": t.operator,
                        "category": t.category,
                        "state": t.state,
                        "created_at": crate::jsonapi::rfc3339(t.created_at),
                    }))
                    .send()
                    .await;
                let outcome = match result {
                    Ok(r) if r.status().is_success() => Ok(()),
                    Ok(r) => Err(format!("the billing system answered HTTP {}", r.status())),
                    Err(e) if e.is_timeout() => Err(format!(
                        "no answer within {} s at {}",
                        FORWARD_TIMEOUT.as_secs(),
                        crate::net::error::peer_of(&url)
                    )),
                    Err(e) => Err(crate::net::error::describe(&url, &e)),
                };
                let attempts = t.forward_attempts + 1;
                // 4 s, doubling, at most an hour; never given up (tickets are not lost).
                let delay = (2_000i64 << attempts.min(11)).min(3_600_000);
                let id = t.id;
                match &outcome {
                    Ok(()) => log::info!("ticket {id} forwarded to the billing system"),
                    Err(e) => log::warn!(
                        "ticket {id}: forwarding failed (attempt {attempts}): {e}; retrying in {} s",
                        delay / 1000
                    ),
                }
                let now = now_ms();
                self.store
                    .write(move |c| {
                        sql::record_forward(
                            c,
                            id,
                            outcome
                                .as_ref()
                                .map(|_| ())
                                .map_err(|e| (e.as_str(), now + delay)),
                            now,
                        )
                    })
                    .await?;
            }
            let next = if settings.ticket.forward_url.is_some() {
                self.store.read(sql::next_forward).await?
            } else {
                None // forwarding turned off: pending tickets wait for it to come back
            };
            look.record(snapshot, generation, next);
            self.forward_pause(next, &mut shutdown).await;
        }
        Ok(())
    }

    /// The forwarder's sleep: until the `next` retry is due, at most the longest wait (on the
    /// idle grid); a new ticket cuts it short.
    async fn forward_pause(&self, next: Option<i64>, shutdown: &mut Shutdown) {
        let longest = LONGEST_PASS_MS;
        let wait = next.map_or(longest, |n| (n - now_ms()).clamp(100, longest));
        let wait = Duration::from_millis(wait as u64);
        let until = crate::idle::wake_at(wait, LONGEST_PASS_WAIT);
        tokio::select! {
            _ = crate::idle::sleep_until(until) => {}
            _ = self.forward_wake.notified() => {}
            _ = shutdown.wait() => {}
        }
    }

    /// Payment-method word for `%metodo%`.
    pub fn method_word(&self, automatic: bool) -> &'static str {
        match (self.company.language, automatic) {
            (Language::Es, true) => "automático",
            (Language::Es, false) => "manual",
            (Language::En, true) => "automatic",
            (Language::En, false) => "manual",
        }
    }

    /// Variables for a customer.
    pub fn vars(&self, customer: Option<&Customer>, phone: &str) -> Vars {
        let mut v = Vars::for_customer(customer, &self.company.name, phone, self.company.language);
        let s = self.settings();
        let first = |l: &[String]| l.first().map(|k| k.to_uppercase()).unwrap_or_default();
        v.set("clave_saldo", first(&s.balance.keywords))
            .set("clave_soporte", first(&s.ticket.keywords))
            .set("clave_baja", first(&s.optout.stop_keywords));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::messages::{self, Outcome};

    /// `oficina`: Monday to Friday 09:00–18:00 UTC; notifications wait for it.
    async fn context(dir: &std::path::Path) -> RulesContext {
        let text = format!(
            "[daemon]\nstate_dir = \"{}\"\n[company]\nname = \"Red Sur\"\ntimezone = \"UTC\"\n\
             [windows]\nnotifications = \"oficina\"\n\
             [windows.custom.oficina]\ndays = \"lun-vie\"\nfrom = \"09:00\"\nto = \"18:00\"\n",
            dir.display()
        );
        let loaded = crate::setup::from_toml(&text).unwrap();
        let store = Store::open(dir).unwrap();
        RulesContext::new(&loaded.config, store, DispatchHandle::default())
            .await
            .unwrap()
    }

    fn at(rfc3339: &str) -> i64 {
        DateTime::parse_from_rfc3339(rfc3339)
            .unwrap()
            .timestamp_millis()
    }

    #[tokio::test]
    async fn a_closed_window_with_nothing_queued_costs_no_write() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = context(dir.path()).await;
        // Saturday noon: `oficina` is closed and nothing is queued.
        let saturday = at("2026-11-28T12:00:00Z");
        let before = ctx.store.write_count();
        for pass in 0..3 {
            let next = ctx.schedule_once(saturday + pass * 30_000).await.unwrap();
            assert!(next > saturday, "the next pass is later");
        }
        assert_eq!(ctx.store.write_count(), before, "idle passes only read");
    }

    #[tokio::test]
    async fn a_retry_due_after_its_window_closed_waits_for_it_to_open() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = context(dir.path()).await;
        let open = at("2026-11-30T17:59:00Z"); // Monday, a minute before closing
        let window = ctx.window_for(Priority::Notification, None);
        assert_eq!(window.as_deref(), Some("oficina"));
        let claim = |now: i64| {
            ctx.store.write(move |c| {
                messages::claim_due(
                    c,
                    Channel::Sms,
                    "modem1",
                    now,
                    10,
                    Priority::Reply..=Priority::Bulk,
                )
            })
        };
        let id = ctx
            .store
            .write(move |c| {
                messages::insert_outbound(
                    c,
                    &[NewOutbound {
                        channel: Channel::Sms,
                        peer: "+5491123456789".into(),
                        body: "aviso".into(),
                        priority: Priority::Notification,
                        customer_id: None,
                        window,
                        not_before: None,
                    }],
                    open,
                )
            })
            .await
            .unwrap()[0]
            .0;
        assert_eq!(claim(open).await.unwrap().len(), 1);
        // The attempt fails temporarily; its retry falls due at 18:00:30, after the close.
        let retry_at = at("2026-11-30T18:00:30Z");
        ctx.store
            .write(move |c| {
                messages::record_outcome(
                    c,
                    id,
                    &Outcome::Retry {
                        error: "no network".into(),
                        retry_at,
                    },
                    open + 1_000,
                )
            })
            .await
            .unwrap();
        // Due, but its window is closed: the dispatcher cannot claim it, the scheduler keeps it.
        let late = retry_at + 5_000;
        assert!(
            claim(late).await.unwrap().is_empty(),
            "not sent after close"
        );
        ctx.schedule_once(late).await.unwrap();
        assert!(claim(late).await.unwrap().is_empty());
        let m = ctx.store.get(id).await.unwrap();
        assert_eq!(m.next_attempt_at, Some(at("2026-12-01T09:00:00Z")));
        // Tuesday 09:00: the scheduler queues it and it goes out.
        let tuesday = at("2026-12-01T09:00:01Z");
        ctx.schedule_once(tuesday).await.unwrap();
        let claimed = claim(tuesday).await.unwrap();
        assert_eq!(claimed.iter().map(|m| m.id).collect::<Vec<_>>(), [id]);
    }
}
