//! The `campaigns` and `campaign_tasks` tables: the selection query, the frozen task list,
//! the feeder's step that turns pending tasks into outbox messages, pause/resume/cancel,
//! progress and the report. Every function runs inside the caller's transaction.

use std::collections::{HashMap, HashSet};

use rusqlite::{Connection, OptionalExtension, params, params_from_iter, types::Value};

use super::StoreError;
use super::directory::{CUSTOMER_COLUMNS, customer_row};
use super::messages::{NewOutbound, insert_outbound};
use crate::model::{Channel, Priority};
use crate::rules::customer::Customer;

/// Filters already checked by the API, as SQL parameters.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub balance_min: Option<i64>,
    pub balance_max: Option<i64>,
    /// `YYYY-MM-DD`: due strictly before this day.
    pub due_before: Option<String>,
    pub zone: Option<String>,
    pub plan: Option<String>,
    pub codes: Option<Vec<String>>,
    /// Normalized numbers: customers having any of them.
    pub numbers: Option<Vec<String>>,
    /// Extra fields by equality; names are checked (`[a-z0-9_]`).
    pub fields: Vec<(String, String)>,
}

fn where_clause(f: &Filter) -> (String, Vec<Value>) {
    let mut conds = Vec::new();
    let mut args: Vec<Value> = Vec::new();
    if let Some(v) = f.balance_min {
        conds.push("balance >= ?".to_string());
        args.push(Value::Integer(v));
    }
    if let Some(v) = f.balance_max {
        conds.push("balance <= ?".to_string());
        args.push(Value::Integer(v));
    }
    if let Some(v) = &f.due_before {
        conds.push("due_date < ?".to_string());
        args.push(Value::Text(v.clone()));
    }
    if let Some(v) = &f.zone {
        conds.push("zone = ?".to_string());
        args.push(Value::Text(v.clone()));
    }
    if let Some(v) = &f.plan {
        conds.push("plan = ?".to_string());
        args.push(Value::Text(v.clone()));
    }
    if let Some(v) = &f.codes {
        conds.push("code IN (SELECT value FROM json_each(?))".to_string());
        args.push(Value::Text(serde_json::to_string(v).unwrap_or_default()));
    }
    if let Some(v) = &f.numbers {
        conds.push(
            "id IN (SELECT customer_id FROM customer_phones WHERE phone IN \
             (SELECT value FROM json_each(?)))"
                .to_string(),
        );
        args.push(Value::Text(serde_json::to_string(v).unwrap_or_default()));
    }
    for (name, value) in &f.fields {
        conds.push(format!("json_extract(extra, '$.{name}') = ?"));
        args.push(Value::Text(value.clone()));
    }
    if conds.is_empty() {
        ("1".into(), args)
    } else {
        (conds.join(" AND "), args)
    }
}

/// The customers matching `f`, by id, with their numbers.
pub fn select_customers(conn: &Connection, f: &Filter) -> Result<Vec<Customer>, StoreError> {
    let (cond, args) = where_clause(f);
    let mut stmt = conn.prepare(&format!(
        "SELECT {CUSTOMER_COLUMNS} FROM customers WHERE {cond} ORDER BY id"
    ))?;
    let mut customers: Vec<Customer> = stmt
        .query_map(params_from_iter(args.iter()), customer_row)?
        .collect::<Result<_, _>>()?;
    let mut phones: HashMap<i64, Vec<String>> = HashMap::new();
    let mut stmt = conn.prepare(&format!(
        "SELECT customer_id, phone FROM customer_phones WHERE customer_id IN \
         (SELECT id FROM customers WHERE {cond}) ORDER BY customer_id, position"
    ))?;
    let rows = stmt.query_map(params_from_iter(args.iter()), |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
    })?;
    for row in rows {
        let (id, phone) = row?;
        phones.entry(id).or_default().push(phone);
    }
    for c in &mut customers {
        if let Some(p) = c.id.and_then(|id| phones.remove(&id)) {
            c.phones = p;
        }
    }
    Ok(customers)
}

/// Numbers that sent BAJA, per channel.
pub fn optouts(conn: &Connection) -> Result<HashSet<(String, String)>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT channel, peer FROM optouts")?;
    let set = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    Ok(set)
}

/// Which of `codes` no customer has.
pub fn unknown_codes(conn: &Connection, codes: &[String]) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT value FROM json_each(?1) WHERE value NOT IN (SELECT code FROM customers)",
    )?;
    let v = stmt
        .query_map([serde_json::to_string(codes).unwrap_or_default()], |r| {
            r.get(0)
        })?
        .collect::<Result<_, _>>()?;
    Ok(v)
}

/// Which of `numbers` (normalized) no customer has.
pub fn unknown_numbers(conn: &Connection, numbers: &[String]) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT value FROM json_each(?1) WHERE value NOT IN (SELECT phone FROM customer_phones)",
    )?;
    let v = stmt
        .query_map([serde_json::to_string(numbers).unwrap_or_default()], |r| {
            r.get(0)
        })?
        .collect::<Result<_, _>>()?;
    Ok(v)
}

/// A campaign as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignRow {
    pub id: i64,
    pub name: String,
    pub channel: String,
    pub spec: String,
    pub preview: String,
    pub state: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

const CAMPAIGN_COLUMNS: &str =
    "id, name, channel, spec, preview, state, created_at, updated_at, started_at, finished_at";

fn campaign_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<CampaignRow> {
    Ok(CampaignRow {
        id: r.get(0)?,
        name: r.get(1)?,
        channel: r.get(2)?,
        spec: r.get(3)?,
        preview: r.get(4)?,
        state: r.get(5)?,
        created_at: r.get(6)?,
        updated_at: r.get(7)?,
        started_at: r.get(8)?,
        finished_at: r.get(9)?,
    })
}

pub fn insert_campaign(
    conn: &Connection,
    name: &str,
    channel: &str,
    spec: &str,
    preview: &str,
    now: i64,
) -> Result<i64, StoreError> {
    conn.prepare_cached(
        "INSERT INTO campaigns (name, channel, spec, preview, state, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, 'draft', ?5, ?5)",
    )?
    .execute(params![name, channel, spec, preview, now])?;
    Ok(conn.last_insert_rowid())
}

pub fn get_campaign(conn: &Connection, id: i64) -> Result<Option<CampaignRow>, StoreError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE id = ?1"
        ))?
        .query_row([id], campaign_row)
        .optional()?)
}

/// Newest first.
pub fn list_campaigns(conn: &Connection, limit: u32) -> Result<Vec<CampaignRow>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {CAMPAIGN_COLUMNS} FROM campaigns ORDER BY id DESC LIMIT +?1"
    ))?;
    let v = stmt
        .query_map([limit], campaign_row)?
        .collect::<Result<_, _>>()?;
    Ok(v)
}

pub fn set_preview(conn: &Connection, id: i64, preview: &str) -> Result<(), StoreError> {
    conn.prepare_cached("UPDATE campaigns SET preview = ?2 WHERE id = ?1")?
        .execute(params![id, preview])?;
    Ok(())
}

/// The campaigns the feeder works on.
pub fn running(conn: &Connection) -> Result<Vec<CampaignRow>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE state = 'running' ORDER BY id"
    ))?;
    let v = stmt
        .query_map([], campaign_row)?
        .collect::<Result<_, _>>()?;
    Ok(v)
}

pub fn set_state(conn: &Connection, id: i64, state: &str, now: i64) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE campaigns SET state = ?2, updated_at = ?3, \
         started_at = CASE WHEN ?2 = 'running' THEN COALESCE(started_at, ?3) ELSE started_at END, \
         finished_at = CASE WHEN ?2 IN ('done', 'cancelled') THEN ?3 ELSE finished_at END \
         WHERE id = ?1",
    )?
    .execute(params![id, state, now])?;
    Ok(())
}

/// One task as written at start.
#[derive(Debug, Clone)]
pub struct NewTask {
    pub customer_id: i64,
    pub code: String,
    pub channel: Option<Channel>,
    pub peer: Option<String>,
    pub body: Option<String>,
    /// `Some(reason)`: skipped, never sent.
    pub skipped: Option<String>,
}

/// Writes the frozen task list (the caller's transaction makes it all or nothing).
pub fn write_tasks(conn: &Connection, campaign: i64, tasks: &[NewTask]) -> Result<(), StoreError> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO campaign_tasks (campaign_id, position, customer_id, code, channel, peer, body, \
         state, reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    for (i, t) in tasks.iter().enumerate() {
        stmt.execute(params![
            campaign,
            i as i64,
            t.customer_id,
            t.code,
            t.channel.map(|c| c.as_str()),
            t.peer,
            t.body,
            if t.skipped.is_some() {
                "skipped"
            } else {
                "pending"
            },
            t.skipped,
        ])?;
    }
    Ok(())
}

/// The campaign's messages in the outbox: (waiting: queued or held for the window, being
/// sent). Read from the messages' state index outwards, so it costs what the outbox holds,
/// not what the campaign does.
pub fn open_messages(conn: &Connection, campaign: i64) -> Result<(u32, u32), StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT COALESCE(SUM(m.state <> 'sending'), 0), COALESCE(SUM(m.state = 'sending'), 0) \
             FROM messages m CROSS JOIN campaign_tasks t ON t.message_id = m.id \
             WHERE m.state IN ('queued', 'scheduled', 'sending') AND t.campaign_id = ?1",
        )?
        .query_row([campaign], |r| Ok((r.get(0)?, r.get(1)?)))?)
}

/// The campaign's messages sent since `since` (Unix ms), among those queued since
/// `queued_after`: with the open ones, what its rate has used.
pub fn sent_since(
    conn: &Connection,
    campaign: i64,
    since: i64,
    queued_after: i64,
) -> Result<u32, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT COUNT(*) FROM campaign_tasks t JOIN messages m ON m.id = t.message_id \
             WHERE t.campaign_id = ?1 AND t.queued_at >= ?3 AND m.sent_at >= ?2",
        )?
        .query_row(params![campaign, since, queued_after], |r| r.get(0))?)
}

/// Queues the next `n` pending tasks as bulk messages (subject to BAJA at this moment, as any
/// bulk message) and links each task to its message. Returns how many were queued.
pub fn queue_next(
    conn: &Connection,
    campaign: i64,
    window: Option<&str>,
    n: u32,
    now: i64,
) -> Result<usize, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT position, customer_id, channel, peer, body FROM campaign_tasks \
         WHERE campaign_id = ?1 AND state = 'pending' ORDER BY position LIMIT +?2",
    )?;
    type Pending = (i64, i64, String, String, String);
    let pending: Vec<Pending> = stmt
        .query_map(params![campaign, n], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?
        .collect::<Result<_, _>>()?;
    let mut rows = Vec::with_capacity(pending.len());
    for (_, customer, channel, peer, body) in &pending {
        rows.push(NewOutbound {
            channel: Channel::parse(channel).unwrap_or(Channel::Sms),
            peer: peer.clone(),
            body: body.clone(),
            priority: Priority::Bulk,
            customer_id: Some(*customer),
            window: window.map(str::to_string),
            not_before: None,
        });
    }
    let ids = insert_outbound(conn, &rows, now)?;
    let mut link = conn.prepare_cached(
        "UPDATE campaign_tasks SET state = 'queued', message_id = ?3, queued_at = ?4 \
         WHERE campaign_id = ?1 AND position = ?2",
    )?;
    for ((position, ..), (id, _)) in pending.iter().zip(&ids) {
        link.execute(params![campaign, position, id.0, now])?;
    }
    Ok(pending.len())
}

/// Whether any task is still pending, and (when none is) the campaign messages not finished
/// (queued, scheduled, sending). The pending ones are not counted: the feeder asks this on
/// every round its backlog is full, inside its write, and 50,000 index entries counted there
/// held every other write back.
pub fn remaining(conn: &Connection, campaign: i64) -> Result<(bool, u32), StoreError> {
    let pending: bool = conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM campaign_tasks WHERE campaign_id = ?1 AND state = 'pending')",
        )?
        .query_row([campaign], |r| r.get(0))?;
    if pending {
        return Ok((true, 0));
    }
    let (waiting, sending) = open_messages(conn, campaign)?;
    Ok((false, waiting + sending))
}

/// Takes back the campaign's messages that no transport has started (queued or waiting for a
/// window): they are cancelled with `why`, and their tasks become `to` (`pending` to be queued
/// again on resume, `cancelled` for good). Messages being sent are left to finish.
pub fn withdraw(
    conn: &Connection,
    campaign: i64,
    why: &str,
    to: &str,
    now: i64,
) -> Result<usize, StoreError> {
    let ids: Vec<i64> = conn
        .prepare_cached(
            "SELECT m.id FROM messages m CROSS JOIN campaign_tasks t ON t.message_id = m.id \
             WHERE t.campaign_id = ?1 AND m.state IN ('queued', 'scheduled')",
        )?
        .query_map([campaign], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut cancel = conn.prepare_cached(
        "UPDATE messages SET state = 'cancelled', last_error = ?2, updated_at = ?3, \
         next_attempt_at = NULL WHERE id = ?1 AND state IN ('queued', 'scheduled')",
    )?;
    let mut task = conn.prepare_cached(
        "UPDATE campaign_tasks SET state = ?3, message_id = NULL, queued_at = NULL, \
         reason = CASE WHEN ?3 = 'cancelled' THEN ?4 ELSE NULL END \
         WHERE campaign_id = ?1 AND message_id = ?2",
    )?;
    for id in &ids {
        cancel.execute(params![id, why, now])?;
        task.execute(params![campaign, id, to, why])?;
    }
    if to == "cancelled" {
        conn.prepare_cached(
            "UPDATE campaign_tasks SET state = 'cancelled', reason = ?2 \
             WHERE campaign_id = ?1 AND state = 'pending'",
        )?
        .execute(params![campaign, why])?;
    }
    Ok(ids.len())
}

/// A campaign message that went back to the queue (a temporary failure, a transport giving it
/// up, a restart) while its campaign is paused or cancelled is taken back as [`withdraw`] takes
/// the queued ones at pause or cancel: it was being sent then, and nothing new goes out after.
/// Runs in the transaction that requeued it; whether it was taken back.
pub fn hold_if_stopped(conn: &Connection, message: i64, now: i64) -> Result<bool, StoreError> {
    let found: Option<(i64, String)> = conn
        .prepare_cached(
            "SELECT c.id, c.state FROM campaign_tasks t JOIN campaigns c ON c.id = t.campaign_id \
             WHERE t.message_id = ?1",
        )?
        .query_row([message], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let (campaign, why, to) = match found {
        Some((c, state)) if state == "paused" => {
            (c, "campaign paused; queued again on resume", "pending")
        }
        Some((c, state)) if state == "cancelled" => (c, "campaign cancelled", "cancelled"),
        _ => return Ok(false),
    };
    conn.prepare_cached(
        "UPDATE messages SET state = 'cancelled', last_error = ?2, updated_at = ?3, \
         next_attempt_at = NULL WHERE id = ?1 AND state IN ('queued', 'scheduled')",
    )?
    .execute(params![message, why, now])?;
    conn.prepare_cached(
        "UPDATE campaign_tasks SET state = ?3, message_id = NULL, queued_at = NULL, \
         reason = CASE WHEN ?3 = 'cancelled' THEN ?4 ELSE NULL END \
         WHERE campaign_id = ?1 AND message_id = ?2",
    )?
    .execute(params![campaign, message, to, why])?;
    Ok(true)
}

/// Counts for the progress view.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Progress {
    pub total: u32,
    /// Not handed to the outbox yet.
    pub pending: u32,
    /// In the outbox: queued, waiting for the window, or being sent.
    pub queued: u32,
    pub sent: u32,
    pub delivered: u32,
    pub failed: u32,
    /// Skipped at start, withdrawn by cancel, or cancelled by a BAJA meanwhile.
    pub skipped: u32,
    pub replied: u32,
}

/// The SQL for whether a task's recipient replied within `reply_ms` of its message.
const REPLIED: &str = "(t.message_id IS NOT NULL AND EXISTS (SELECT 1 FROM messages i \
     WHERE i.peer = t.peer AND i.direction = 'in' AND i.id > t.message_id \
     AND i.created_at <= t.queued_at + ?2))";

pub fn progress(conn: &Connection, campaign: i64, reply_ms: i64) -> Result<Progress, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT t.state, m.state, {REPLIED} FROM campaign_tasks t \
         LEFT JOIN messages m ON m.id = t.message_id WHERE t.campaign_id = ?1"
    ))?;
    let mut p = Progress::default();
    let rows = stmt.query_map(params![campaign, reply_ms], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, Option<String>>(1)?,
            r.get::<_, bool>(2)?,
        ))
    })?;
    for row in rows {
        let (task, message, replied) = row?;
        p.total += 1;
        p.replied += u32::from(replied);
        match (task.as_str(), message.as_deref()) {
            ("pending", _) => p.pending += 1,
            (_, Some("queued" | "scheduled" | "sending")) => p.queued += 1,
            (_, Some("sent")) => p.sent += 1,
            (_, Some("delivered")) => p.delivered += 1,
            (_, Some("failed")) => p.failed += 1,
            _ => p.skipped += 1,
        }
    }
    Ok(p)
}

/// One row of `report.csv`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportRow {
    pub code: String,
    pub channel: Option<String>,
    pub peer: Option<String>,
    /// The task's state (`skipped`, `pending`, `cancelled`) or its message's.
    pub state: String,
    pub reason: Option<String>,
    pub cost: Option<String>,
    pub replied: bool,
}

pub fn report(
    conn: &Connection,
    campaign: i64,
    reply_ms: i64,
) -> Result<Vec<ReportRow>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT t.code, t.channel, t.peer, t.state, t.reason, m.state, m.last_error, \
         a.answer, {REPLIED} FROM campaign_tasks t \
         LEFT JOIN messages m ON m.id = t.message_id \
         LEFT JOIN message_answers a ON a.message_id = t.message_id \
         WHERE t.campaign_id = ?1 ORDER BY t.position"
    ))?;
    let rows = stmt
        .query_map(params![campaign, reply_ms], |r| {
            let task: String = r.get(3)?;
            let message: Option<String> = r.get(5)?;
            let task_reason: Option<String> = r.get(4)?;
            let message_error: Option<String> = r.get(6)?;
            Ok(ReportRow {
                code: r.get(0)?,
                channel: r.get(1)?,
                peer: r.get(2)?,
                state: message.unwrap_or(task),
                reason: task_reason.or(message_error),
                cost: cost_of(r.get::<_, Option<String>>(7)?.as_deref()),
                replied: r.get(8)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// The cost a provider reported with its answer (`"cost": "0.0075"` or `"price"` in a JSON
/// answer), when it did.
fn cost_of(answer: Option<&str>) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(answer?).ok()?;
    ["cost", "price"].iter().find_map(|k| match &v[*k] {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

/// The campaign whose message went to `peer` within its `reply_days` before `at`: an inbound message from `peer` at `at` is a reply to it. Newest first.
pub fn campaign_for_reply(
    conn: &Connection,
    peer: &str,
    at: i64,
) -> Result<Option<(i64, String)>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT c.id, c.name FROM campaign_tasks t JOIN campaigns c ON c.id = t.campaign_id \
             WHERE t.peer = ?1 AND t.message_id IS NOT NULL AND t.queued_at <= ?2 \
             AND t.queued_at >= ?2 - 86400000 * json_extract(c.spec, '$.reply_days') \
             ORDER BY t.queued_at DESC LIMIT 1",
        )?
        .query_row(params![peer, at], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use crate::store::messages::{self, MessageId, Outcome};

    /// A campaign of one task whose message is being sent; (campaign, message).
    fn sending(c: &Connection, now: i64) -> Result<(i64, i64), StoreError> {
        c.execute(
            "INSERT INTO customers (code, name, created_at, updated_at) VALUES ('7', 'Ana', 0, 0)",
            [],
        )?;
        let customer = c.last_insert_rowid();
        let id = insert_campaign(c, "Aviso", "sms", "{}", "{}", now)?;
        write_tasks(
            c,
            id,
            &[NewTask {
                customer_id: customer,
                code: "7".into(),
                channel: Some(Channel::Sms),
                peer: Some("+5491147896321".into()),
                body: Some("Hola".into()),
                skipped: None,
            }],
        )?;
        set_state(c, id, "running", now)?;
        assert_eq!(queue_next(c, id, None, 1, now)?, 1);
        let message: i64 =
            c.query_row("SELECT message_id FROM campaign_tasks", [], |r| r.get(0))?;
        c.execute(
            "UPDATE messages SET state = 'sending' WHERE id = ?1",
            [message],
        )?;
        Ok((id, message))
    }

    fn states(c: &Connection, message: i64) -> Result<(String, String), StoreError> {
        Ok((
            c.query_row("SELECT state FROM messages WHERE id = ?1", [message], |r| {
                r.get(0)
            })?,
            c.query_row("SELECT state FROM campaign_tasks", [], |r| r.get(0))?,
        ))
    }

    #[tokio::test]
    async fn a_send_in_flight_at_pause_or_cancel_is_not_retried_after() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        // Paused while it was being sent; it fails for now: not retried, the task waits for
        // the resume.
        let got = store
            .write(|c| {
                let (id, m) = sending(c, 1_000)?;
                set_state(c, id, "paused", 1_001)?;
                let retry = Outcome::Retry {
                    error: "busy".into(),
                    retry_at: 5_000,
                };
                messages::record_outcome(c, MessageId(m), &retry, 1_002)?;
                states(c, m)
            })
            .await
            .unwrap();
        assert_eq!(got, ("cancelled".to_string(), "pending".to_string()));

        // Cancelled while it was being sent, then a restart requeues what was in flight.
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let got = store
            .write(|c| {
                let (id, m) = sending(c, 1_000)?;
                set_state(c, id, "cancelled", 1_001)?;
                messages::requeue_sending(c, 1_002)?;
                states(c, m)
            })
            .await
            .unwrap();
        assert_eq!(got, ("cancelled".to_string(), "cancelled".to_string()));

        // A running campaign's retry goes back to the queue as any message's.
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let got = store
            .write(|c| {
                let (_, m) = sending(c, 1_000)?;
                messages::requeue(c, &[MessageId(m)], 1_002)?;
                states(c, m)
            })
            .await
            .unwrap();
        assert_eq!(got, ("queued".to_string(), "queued".to_string()));
    }
}
