//! The customer directory, opt-outs, tickets, billing events and run-time settings. Like
//! `messages.rs`, every function runs inside the caller's transaction.

use std::collections::{BTreeMap, BTreeSet};

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::Serialize;

use super::StoreError;
use super::messages::{Channel, MessageId};
use crate::rules::{Customer, Money, OptOut};

/// A customer to insert or update, already validated and normalized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerInput {
    /// Which fields were given: an update keeps the stored value of every other field (a CSV of
    /// `codigo;deuda` updates balances and leaves names and phones alone).
    pub present: Present,
    pub code: String,
    pub name: String,
    pub phones: Vec<String>,
    pub email: Option<String>,
    pub balance: Option<Money>,
    pub due_date: Option<chrono::NaiveDate>,
    pub plan: Option<String>,
    pub zone: Option<String>,
    pub extra: BTreeMap<String, String>,
    /// `None` keeps what the customer had.
    pub optout: Option<OptOut>,
    /// Channel order per event type; `None` keeps what the customer had.
    pub channels: Option<BTreeMap<String, Vec<String>>>,
}

/// Fields given in an upsert.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Present {
    pub name: bool,
    pub phones: bool,
    pub email: bool,
    pub balance: bool,
    pub due_date: bool,
    pub plan: bool,
    pub zone: bool,
    pub extra: bool,
}

/// What an upsert did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UpsertReport {
    pub inserted: usize,
    pub updated: usize,
    /// A number that is also on another customer: stored, and reported (lookups by it will
    /// not guess between them).
    pub shared_phones: Vec<SharedPhone>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SharedPhone {
    pub code: String,
    pub phone: String,
    pub also_on: String,
}

/// Inserts or updates customers by code; their phone lists are replaced.
pub fn upsert_customers(
    conn: &Connection,
    items: &[CustomerInput],
    now: i64,
) -> Result<UpsertReport, StoreError> {
    let mut report = UpsertReport::default();
    let mut find = conn.prepare_cached("SELECT id FROM customers WHERE code = ?1")?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO customers (code, name, email, balance, due_date, plan, zone, extra, \
         optout_sms, optout_whatsapp, optout_email, created_at, updated_at, channels) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12, ?13)",
    )?;
    let mut update = conn.prepare_cached(
        "UPDATE customers SET name = CASE WHEN ?10 THEN ?2 ELSE name END, \
         email = CASE WHEN ?11 THEN ?3 ELSE email END, \
         balance = CASE WHEN ?12 THEN ?4 ELSE balance END, \
         due_date = CASE WHEN ?13 THEN ?5 ELSE due_date END, \
         plan = CASE WHEN ?14 THEN ?6 ELSE plan END, zone = CASE WHEN ?15 THEN ?7 ELSE zone END, \
         extra = CASE WHEN ?16 THEN ?8 ELSE extra END, \
         channels = CASE WHEN ?17 THEN ?18 ELSE channels END, updated_at = ?9 WHERE id = ?1",
    )?;
    let mut set_optout = conn.prepare_cached(
        "UPDATE customers SET optout_sms = ?2, optout_whatsapp = ?3, optout_email = ?4 WHERE id = ?1",
    )?;
    let mut drop_phones =
        conn.prepare_cached("DELETE FROM customer_phones WHERE customer_id = ?1")?;
    let mut add_phone = conn.prepare_cached(
        "INSERT OR IGNORE INTO customer_phones (phone, customer_id, position) VALUES (?1, ?2, ?3)",
    )?;
    let mut add_field =
        conn.prepare_cached("INSERT OR IGNORE INTO customer_fields (name) VALUES (?1)")?;
    let mut fields_seen: BTreeSet<&str> = BTreeSet::new();
    for c in items {
        let extra = serde_json::to_string(&c.extra).unwrap_or_else(|_| "{}".into());
        let balance = c.balance.map(|m| m.0);
        let due = c.due_date.map(|d| d.to_string());
        let channels = c
            .channels
            .as_ref()
            .map(|m| serde_json::to_string(m).unwrap_or_else(|_| "{}".into()));
        let existing: Option<i64> = find.query_row([&c.code], |r| r.get(0)).optional()?;
        let id = match existing {
            Some(id) => {
                let p = c.present;
                update.execute(params![
                    id,
                    c.name,
                    c.email,
                    balance,
                    due,
                    c.plan,
                    c.zone,
                    extra,
                    now,
                    p.name,
                    p.email,
                    p.balance,
                    p.due_date,
                    p.plan,
                    p.zone,
                    p.extra,
                    channels.is_some(),
                    channels.as_deref().unwrap_or("{}")
                ])?;
                if let Some(o) = c.optout {
                    set_optout.execute(params![id, o.sms, o.whatsapp, o.email])?;
                }
                if p.phones {
                    drop_phones.execute([id])?;
                }
                report.updated += 1;
                id
            }
            None => {
                let o = c.optout.unwrap_or_default();
                insert.execute(params![
                    c.code,
                    c.name,
                    c.email,
                    balance,
                    due,
                    c.plan,
                    c.zone,
                    extra,
                    o.sms,
                    o.whatsapp,
                    o.email,
                    now,
                    channels.as_deref().unwrap_or("{}")
                ])?;
                report.inserted += 1;
                conn.last_insert_rowid()
            }
        };
        // An update without phones keeps the stored ones (c.phones is empty then).
        for (i, phone) in c.phones.iter().enumerate() {
            add_phone.execute(params![phone, id, i as i64])?;
        }
        for k in c.extra.keys() {
            if fields_seen.insert(k) {
                add_field.execute([k])?;
            }
        }
    }
    // Numbers now on more than one customer, reported against the customers of this upsert.
    let codes: std::collections::HashSet<&str> = items.iter().map(|c| c.code.as_str()).collect();
    let mut shared = conn.prepare_cached(
        "SELECT p.phone, c.code, (SELECT c2.code FROM customer_phones p2 JOIN customers c2 \
         ON c2.id = p2.customer_id WHERE p2.phone = p.phone AND p2.customer_id <> p.customer_id \
         ORDER BY c2.id LIMIT 1) FROM customer_phones p JOIN customers c ON c.id = p.customer_id \
         WHERE p.phone IN (SELECT phone FROM customer_phones GROUP BY phone HAVING COUNT(*) > 1) \
         ORDER BY c.id",
    )?;
    let rows = shared.query_map([], |r| {
        Ok(SharedPhone {
            phone: r.get(0)?,
            code: r.get(1)?,
            also_on: r.get(2)?,
        })
    })?;
    for row in rows {
        let row = row?;
        if codes.contains(row.code.as_str()) {
            report.shared_phones.push(row);
        }
    }
    Ok(report)
}

pub(crate) const CUSTOMER_COLUMNS: &str = "id, code, name, email, balance, due_date, plan, zone, extra, \
     optout_sms, optout_whatsapp, optout_email, channels";

pub(crate) fn customer_row(row: &Row<'_>) -> rusqlite::Result<Customer> {
    let extra: String = row.get(8)?;
    let due: Option<String> = row.get(5)?;
    Ok(Customer {
        id: Some(row.get(0)?),
        code: row.get(1)?,
        name: row.get(2)?,
        email: row.get(3)?,
        balance: row.get::<_, Option<i64>>(4)?.map(Money),
        due_date: due.and_then(|d| d.parse().ok()),
        plan: row.get(6)?,
        zone: row.get(7)?,
        extra: serde_json::from_str(&extra).unwrap_or_default(),
        optout: OptOut {
            sms: row.get(9)?,
            whatsapp: row.get(10)?,
            email: row.get(11)?,
        },
        phones: Vec::new(),
        channels: serde_json::from_str(&row.get::<_, String>(12)?).unwrap_or_default(),
    })
}

fn with_phones(conn: &Connection, mut c: Customer) -> Result<Customer, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT phone FROM customer_phones WHERE customer_id = ?1 ORDER BY position",
    )?;
    c.phones = stmt
        .query_map([c.id], |r| r.get(0))?
        .collect::<Result<Vec<String>, _>>()?;
    Ok(c)
}

/// Every customer with this (normalized) number.
pub fn customers_by_phone(conn: &Connection, phone: &str) -> Result<Vec<Customer>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {CUSTOMER_COLUMNS} FROM customers WHERE id IN \
         (SELECT customer_id FROM customer_phones WHERE phone = ?1) ORDER BY id"
    ))?;
    let found = stmt
        .query_map([phone], customer_row)?
        .collect::<Result<Vec<_>, _>>()?;
    found.into_iter().map(|c| with_phones(conn, c)).collect()
}

pub fn customer_by_code(conn: &Connection, code: &str) -> Result<Option<Customer>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {CUSTOMER_COLUMNS} FROM customers WHERE code = ?1"
    ))?;
    match stmt.query_row([code], customer_row).optional()? {
        Some(c) => Ok(Some(with_phones(conn, c)?)),
        None => Ok(None),
    }
}

pub fn customer_by_id(conn: &Connection, id: i64) -> Result<Option<Customer>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {CUSTOMER_COLUMNS} FROM customers WHERE id = ?1"
    ))?;
    match stmt.query_row([id], customer_row).optional()? {
        Some(c) => Ok(Some(with_phones(conn, c)?)),
        None => Ok(None),
    }
}

/// Customers whose code or name contains `q` (case-insensitive), at most `limit`, by code.
pub fn search_customers(
    conn: &Connection,
    q: &str,
    limit: u32,
) -> Result<Vec<Customer>, StoreError> {
    let pattern = format!(
        "%{}%",
        q.replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    );
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {CUSTOMER_COLUMNS} FROM customers WHERE code LIKE ?1 ESCAPE '\\' \
         OR name LIKE ?1 ESCAPE '\\' ORDER BY code LIMIT +?2"
    ))?;
    let found = stmt
        .query_map(params![pattern, limit], customer_row)?
        .collect::<Result<Vec<_>, _>>()?;
    found.into_iter().map(|c| with_phones(conn, c)).collect()
}

pub fn count_customers(conn: &Connection) -> Result<u64, StoreError> {
    Ok(conn
        .prepare_cached("SELECT COUNT(*) FROM customers")?
        .query_row([], |r| r.get::<_, i64>(0))?
        .max(0) as u64)
}

/// Names of the extra fields any customer has (template variables).
pub fn extra_fields(conn: &Connection) -> Result<BTreeSet<String>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT name FROM customer_fields")?;
    Ok(stmt
        .query_map([], |r| r.get(0))?
        .collect::<Result<BTreeSet<String>, _>>()?)
}

/// Updates a customer's balance (a billing event carries the new one).
pub fn set_balance(
    conn: &Connection,
    customer_id: i64,
    balance: Money,
    now: i64,
) -> Result<(), StoreError> {
    conn.prepare_cached("UPDATE customers SET balance = ?2, updated_at = ?3 WHERE id = ?1")?
        .execute(params![customer_id, balance.0, now])?;
    Ok(())
}

// ----- opt-out ------------------------------------------------------------------------------

fn channel_column(channel: Channel) -> &'static str {
    match channel {
        Channel::Sms => "optout_sms",
        Channel::Whatsapp => "optout_whatsapp",
        Channel::Email => "optout_email",
    }
}

/// Records `BAJA` (`stop = true`) or `ALTA` from `peer` on `channel`. `ALTA` also clears the
/// flag on the customers with that number (it may have come from the billing system).
pub fn set_optout(
    conn: &Connection,
    channel: Channel,
    peer: &str,
    stop: bool,
    now: i64,
) -> Result<(), StoreError> {
    if stop {
        conn.prepare_cached(
            "INSERT INTO optouts (channel, peer, at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (channel, peer) DO UPDATE SET at = excluded.at",
        )?
        .execute(params![channel.as_str(), peer, now])?;
    } else {
        conn.prepare_cached("DELETE FROM optouts WHERE channel = ?1 AND peer = ?2")?
            .execute(params![channel.as_str(), peer])?;
        conn.prepare_cached(&format!(
            "UPDATE customers SET {col} = 0 WHERE {col} = 1 AND id IN \
             (SELECT customer_id FROM customer_phones WHERE phone = ?1)",
            col = channel_column(channel)
        ))?
        .execute([peer])?;
    }
    Ok(())
}

/// True when notifications and bulk must not go to `peer` on `channel`: the number sent BAJA,
/// or the customer is marked opted out.
pub fn opted_out(
    conn: &Connection,
    channel: Channel,
    peer: &str,
    customer_id: Option<i64>,
) -> Result<bool, StoreError> {
    let by_number: bool = conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM optouts WHERE channel = ?1 AND peer = ?2)")?
        .query_row(params![channel.as_str(), peer], |r| r.get(0))?;
    if by_number {
        return Ok(true);
    }
    let col = channel_column(channel);
    let by_customer: bool = conn
        .prepare_cached(&format!(
            "SELECT EXISTS (SELECT 1 FROM customers WHERE {col} = 1 AND (id = ?2 OR id IN \
             (SELECT customer_id FROM customer_phones WHERE phone = ?1)))"
        ))?
        .query_row(params![peer, customer_id], |r| r.get(0))?;
    Ok(by_customer)
}

/// Opt-outs by number (`BAJA` texted from one of the customer's phones): (channel, phone,
/// when, Unix ms), by phone order then channel.
pub fn number_optouts(
    conn: &Connection,
    customer_id: i64,
) -> Result<Vec<(String, String, i64)>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT o.channel, o.peer, o.at FROM customer_phones p \
         JOIN optouts o ON o.peer = p.phone WHERE p.customer_id = ?1 \
         ORDER BY p.position, o.channel",
    )?;
    let rows = stmt
        .query_map([customer_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Auto-replies (`reply` priority) queued to `peer` since `since` (Unix ms).
pub fn replies_since(conn: &Connection, peer: &str, since: i64) -> Result<u32, StoreError> {
    let n: i64 = conn
        .prepare_cached(
            "SELECT COUNT(*) FROM messages WHERE peer = ?1 AND direction = 'out' AND priority = 0 \
             AND created_at >= ?2",
        )?
        .query_row(params![peer, since], |r| r.get(0))?;
    Ok(n.max(0) as u32)
}

// ----- inbound messages waiting for the rules ------------------------------------------------

/// Inbound messages not yet handled by the rules, oldest first.
pub fn unhandled(conn: &Connection, limit: u32) -> Result<Vec<super::Message>, StoreError> {
    let ids: Vec<i64> = conn
        .prepare_cached(
            "SELECT id FROM messages WHERE direction = 'in' AND handled = 0 ORDER BY id LIMIT +?1",
        )?
        .query_map([limit], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    ids.into_iter()
        .map(|id| super::messages::get(conn, MessageId(id)))
        .collect()
}

/// Marks an inbound message handled, linking it to its customer. `false` when it already was
/// (the caller's actions must then not be applied twice).
pub fn mark_handled(
    conn: &Connection,
    id: MessageId,
    customer_id: Option<i64>,
) -> Result<bool, StoreError> {
    let n = conn
        .prepare_cached(
            "UPDATE messages SET handled = 1, customer_id = COALESCE(?2, customer_id) \
             WHERE id = ?1 AND direction = 'in' AND handled = 0",
        )?
        .execute(params![id.0, customer_id])?;
    Ok(n == 1)
}

// ----- delivery windows ---------------------------------------------------------------------

/// Scheduled messages whose time has come: (id, window).
pub fn scheduled_due(
    conn: &Connection,
    now: i64,
    limit: u32,
) -> Result<Vec<(MessageId, Option<String>)>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, send_window FROM messages WHERE state = 'scheduled' AND next_attempt_at <= ?1 \
         ORDER BY next_attempt_at LIMIT +?2",
    )?;
    Ok(stmt
        .query_map(params![now, limit], |r| {
            Ok((MessageId(r.get(0)?), r.get(1)?))
        })?
        .collect::<Result<_, _>>()?)
}

/// Moves a scheduled message to the queue (`at = None`) or to a later time.
pub fn reschedule(
    conn: &Connection,
    id: MessageId,
    at: Option<i64>,
    now: i64,
) -> Result<(), StoreError> {
    match at {
        None => conn
            .prepare_cached(
                "UPDATE messages SET state = 'queued', next_attempt_at = ?2, updated_at = ?2 \
                 WHERE id = ?1 AND state = 'scheduled'",
            )?
            .execute(params![id.0, now])?,
        Some(at) => conn
            .prepare_cached(
                "UPDATE messages SET next_attempt_at = ?2, updated_at = ?3 \
                 WHERE id = ?1 AND state = 'scheduled'",
            )?
            .execute(params![id.0, at, now])?,
    };
    Ok(())
}

/// Queued messages of a window that has just closed go back to `scheduled` until `reopens`.
/// Whether any message of `window` is queued (read-only; decides if a hold is needed).
pub fn has_queued_in_window(conn: &Connection, window: &str) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM messages WHERE state = 'queued' AND send_window = ?1)",
        )?
        .query_row([window], |r| r.get(0))?)
}

pub fn hold_window(
    conn: &Connection,
    window: &str,
    reopens: i64,
    now: i64,
) -> Result<usize, StoreError> {
    Ok(conn
        .prepare_cached(
            "UPDATE messages SET state = 'scheduled', next_attempt_at = MAX(next_attempt_at, ?2), \
             updated_at = ?3 WHERE state = 'queued' AND send_window = ?1",
        )?
        .execute(params![window, reopens, now])?)
}

// ----- tickets ------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ticket {
    pub id: i64,
    pub customer_id: Option<i64>,
    pub customer_code: Option<String>,
    pub peer: String,
    pub channel: String,
    pub text: String,
    pub state: String,
    pub operator: String,
    pub category: String,
    pub message_id: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub closed_at: Option<i64>,
    pub forward_state: Option<String>,
    pub forward_attempts: u32,
    pub forward_error: Option<String>,
}

const TICKET_COLUMNS: &str = "id, customer_id, customer_code, peer, channel, text, state, operator, \
     category, message_id, created_at, updated_at, closed_at, forward_state, forward_attempts, \
     forward_error";

fn ticket_row(r: &Row<'_>) -> rusqlite::Result<Ticket> {
    Ok(Ticket {
        id: r.get(0)?,
        customer_id: r.get(1)?,
        customer_code: r.get(2)?,
        peer: r.get(3)?,
        channel: r.get(4)?,
        text: r.get(5)?,
        state: r.get(6)?,
        operator: r.get(7)?,
        category: r.get(8)?,
        message_id: r.get(9)?,
        created_at: r.get(10)?,
        updated_at: r.get(11)?,
        closed_at: r.get(12)?,
        forward_state: r.get(13)?,
        forward_attempts: r.get(14)?,
        forward_error: r.get(15)?,
    })
}

/// A ticket to store.
#[derive(Debug, Clone)]
pub struct NewTicketRow<'a> {
    pub customer: Option<&'a Customer>,
    pub peer: &'a str,
    pub channel: Channel,
    pub text: &'a str,
    pub operator: &'a str,
    pub category: &'a str,
    pub message_id: Option<MessageId>,
    /// Company-local date.
    pub day: &'a str,
    pub forward: bool,
}

pub fn insert_ticket(conn: &Connection, t: &NewTicketRow<'_>, now: i64) -> Result<i64, StoreError> {
    conn.prepare_cached(
        "INSERT INTO tickets (customer_id, customer_code, peer, channel, text, operator, category, \
         message_id, day, created_at, updated_at, forward_state, forward_next_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10, ?11, ?12)",
    )?
    .execute(params![
        t.customer.and_then(|c| c.id),
        t.customer.map(|c| c.code.clone()),
        t.peer,
        t.channel.as_str(),
        t.text,
        t.operator,
        t.category,
        t.message_id.map(|m| m.0),
        t.day,
        now,
        t.forward.then_some("pending"),
        t.forward.then_some(now),
    ])?;
    Ok(conn.last_insert_rowid())
}

/// Tickets opened on `day` by this customer (or, for unknown numbers, this number).
pub fn tickets_on(
    conn: &Connection,
    customer_id: Option<i64>,
    peer: &str,
    day: &str,
) -> Result<u32, StoreError> {
    let n: i64 = match customer_id {
        Some(id) => conn
            .prepare_cached("SELECT COUNT(*) FROM tickets WHERE customer_id = ?1 AND day = ?2")?
            .query_row(params![id, day], |r| r.get(0))?,
        None => conn
            .prepare_cached("SELECT COUNT(*) FROM tickets WHERE peer = ?1 AND day = ?2")?
            .query_row(params![peer, day], |r| r.get(0))?,
    };
    Ok(n.max(0) as u32)
}

pub fn get_ticket(conn: &Connection, id: i64) -> Result<Option<Ticket>, StoreError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {TICKET_COLUMNS} FROM tickets WHERE id = ?1"
        ))?
        .query_row([id], ticket_row)
        .optional()?)
}

/// Tickets newest first, optionally by state / customer code, before id `before`.
pub fn list_tickets(
    conn: &Connection,
    state: Option<&str>,
    customer: Option<&str>,
    before: Option<i64>,
    limit: u32,
) -> Result<Vec<Ticket>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {TICKET_COLUMNS} FROM tickets WHERE (?1 IS NULL OR state = ?1) \
         AND (?2 IS NULL OR customer_code = ?2) AND (?3 IS NULL OR id < ?3) \
         ORDER BY id DESC LIMIT +?4"
    ))?;
    Ok(stmt
        .query_map(params![state, customer, before, limit], ticket_row)?
        .collect::<Result<_, _>>()?)
}

/// Closes, reopens or reassigns a ticket.
pub fn update_ticket(
    conn: &Connection,
    id: i64,
    state: Option<&str>,
    operator: Option<&str>,
    now: i64,
) -> Result<Option<Ticket>, StoreError> {
    let n = conn
        .prepare_cached(
            "UPDATE tickets SET state = COALESCE(?2, state), operator = COALESCE(?3, operator), \
             closed_at = CASE WHEN ?2 = 'closed' THEN ?4 WHEN ?2 = 'open' THEN NULL ELSE closed_at END, \
             updated_at = ?4 WHERE id = ?1",
        )?
        .execute(params![id, state, operator, now])?;
    if n == 0 {
        return Ok(None);
    }
    get_ticket(conn, id)
}

/// Tickets whose forwarding is due.
pub fn forwards_due(conn: &Connection, now: i64, limit: u32) -> Result<Vec<Ticket>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {TICKET_COLUMNS} FROM tickets WHERE forward_state = 'pending' \
         AND forward_next_at <= ?1 ORDER BY forward_next_at LIMIT +?2"
    ))?;
    Ok(stmt
        .query_map(params![now, limit], ticket_row)?
        .collect::<Result<_, _>>()?)
}

/// When the next forwarding is due, if any.
pub fn next_forward(conn: &Connection) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT MIN(forward_next_at) FROM tickets WHERE forward_state = 'pending'")?
        .query_row([], |r| r.get(0))?)
}

/// Records a forwarding attempt: done, or retry at `retry_at` with the error.
pub fn record_forward(
    conn: &Connection,
    id: i64,
    result: Result<(), (&str, i64)>,
    now: i64,
) -> Result<(), StoreError> {
    match result {
        Ok(()) => conn
            .prepare_cached(
                "UPDATE tickets SET forward_state = 'done', forward_attempts = forward_attempts + 1, \
                 forward_error = NULL, forward_next_at = NULL, updated_at = ?2 WHERE id = ?1",
            )?
            .execute(params![id, now])?,
        Err((error, retry_at)) => conn
            .prepare_cached(
                "UPDATE tickets SET forward_attempts = forward_attempts + 1, forward_error = ?2, \
                 forward_next_at = ?3, updated_at = ?4 WHERE id = ?1",
            )?
            .execute(params![id, error, retry_at, now])?,
    };
    Ok(())
}

// ----- billing events -----------------------------------------------------------------------

/// A stored event: its body (to tell a retry from a different event reusing the id) and what
/// was answered.
pub fn get_event(conn: &Connection, id: &str) -> Result<Option<(String, String)>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT body, result FROM events WHERE id = ?1")?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}

pub fn insert_event(
    conn: &Connection,
    id: &str,
    kind: &str,
    body: &str,
    result: &str,
    now: i64,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO events (id, type, body, result, received_at) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![id, kind, body, result, now])?;
    Ok(())
}

// ----- settings -----------------------------------------------------------------------------

pub fn get_setting(conn: &Connection, key: &str) -> Result<Option<String>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT value FROM settings WHERE key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()?)
}

pub fn set_setting(
    conn: &Connection,
    key: &str,
    value: Option<&str>,
    now: i64,
) -> Result<(), StoreError> {
    match value {
        Some(v) => conn
            .prepare_cached(
                "INSERT INTO settings (key, value, updated_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            )?
            .execute(params![key, v, now])?,
        None => conn
            .prepare_cached("DELETE FROM settings WHERE key = ?1")?
            .execute([key])?,
    };
    Ok(())
}
