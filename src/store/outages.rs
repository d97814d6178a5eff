//! Outages by zone: the rows behind [`crate::outage`]. Like `directory.rs`, every function runs
//! inside the caller's transaction; the caller makes one state change one transaction.

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::Serialize;

use super::StoreError;
use super::messages::{Channel, MessageId};
use crate::rules::Customer;

/// An outage row with its counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outage {
    pub id: i64,
    pub state: String,
    pub field: String,
    pub zones: Vec<String>,
    pub message: String,
    /// Unix ms.
    pub eta: Option<i64>,
    pub source: String,
    pub alert_zone: Option<String>,
    pub master_ticket: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub resolved_at: Option<i64>,
    pub counts: Counts,
}

/// What an outage came to, for its history.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Customers frozen with the outage when it opened.
    pub affected: u64,
    /// Customers the notice was queued to.
    pub notified: u64,
    /// Affected customers who wrote while it was open.
    pub wrote: u64,
    /// Outage replies queued to them.
    pub replies: u64,
    /// All-clear messages queued when it was resolved.
    pub resolved_sent: u64,
}

/// A new outage row.
#[derive(Debug, Clone)]
pub struct NewOutage<'a> {
    pub field: &'a str,
    pub zones: &'a [String],
    pub message: &'a str,
    pub eta: Option<i64>,
    pub source: &'a str,
    pub alert_zone: Option<&'a str>,
}

const COLUMNS: &str = "id, state, field, zones, message, eta, source, alert_zone, master_ticket, \
     created_at, updated_at, resolved_at";

fn outage_row(r: &Row<'_>) -> rusqlite::Result<Outage> {
    let zones: String = r.get(3)?;
    Ok(Outage {
        id: r.get(0)?,
        state: r.get(1)?,
        field: r.get(2)?,
        zones: serde_json::from_str(&zones).unwrap_or_default(),
        message: r.get(4)?,
        eta: r.get(5)?,
        source: r.get(6)?,
        alert_zone: r.get(7)?,
        master_ticket: r.get(8)?,
        created_at: r.get(9)?,
        updated_at: r.get(10)?,
        resolved_at: r.get(11)?,
        counts: Counts::default(),
    })
}

/// The SQL expression of a customer field on table alias `c`: the `zone` and `plan` columns,
/// else the extra field of that name. `None` when `field` cannot be a field name.
pub fn field_expr(field: &str) -> Option<String> {
    match field {
        "zona" | "zone" => Some("c.zone".into()),
        "plan" => Some("c.plan".into()),
        f if !f.is_empty()
            && f.len() <= 64
            && f.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') =>
        {
            Some(format!("json_extract(c.extra, '$.\"{f}\"')"))
        }
        _ => None,
    }
}

/// A customer's value of `field`, as [`field_expr`] reads it.
pub fn field_value(c: &Customer, field: &str) -> Option<String> {
    match field {
        "zona" | "zone" => c.zone.clone(),
        "plan" => c.plan.clone(),
        f => c.extra.get(f).cloned(),
    }
}

/// Freezes the customers whose `field` is one of `zones` with outage `outage`, in one
/// statement, and picks who gets the notice (by SMS, to their first phone): with `notify`, each
/// customer with a phone who has not opted out of SMS (by flag or by BAJA from that number) and
/// is not already told by another open outage. Returns how many customers were frozen.
///
/// Values are compared without case, accents or surrounding spaces (`pasarela_fold` on both
/// sides: SQLite's `lower()` folds ASCII only, so "NÚÑEZ" would miss "Núñez").
pub fn freeze_affected(
    conn: &Connection,
    outage: i64,
    field: &str,
    zones: &[String],
    notify: bool,
) -> Result<usize, StoreError> {
    let Some(expr) = field_expr(field) else {
        return Ok(0);
    };
    let list = folded_list(zones);
    let n = conn
        .prepare_cached(&format!(
            "INSERT OR IGNORE INTO outage_customers \
                 (outage_id, customer_id, zone, notice_channel, notice_peer) \
             SELECT ?1, id, zone, CASE WHEN told THEN 'sms' END, CASE WHEN told THEN phone END \
             FROM (SELECT id, zone, phone, ?3 AND phone IS NOT NULL AND NOT optout_sms \
                          AND phone NOT IN (SELECT peer FROM optouts WHERE channel = 'sms') \
                          AND NOT EXISTS (SELECT 1 FROM outage_customers oc \
                                JOIN outages o ON o.id = oc.outage_id \
                                WHERE oc.customer_id = a.id AND oc.outage_id <> ?1 \
                                AND o.state = 'open' AND oc.notice_peer IS NOT NULL) AS told \
                   FROM (SELECT c.id, COALESCE({expr}, '') AS zone, c.optout_sms, \
                                (SELECT phone FROM customer_phones p WHERE p.customer_id = c.id \
                                 ORDER BY position LIMIT 1) AS phone \
                         FROM customers c \
                         WHERE pasarela_fold(trim({expr})) IN (SELECT value FROM json_each(?2))) a) \
             ORDER BY id"
        ))?
        .execute(params![outage, list, notify])?;
    Ok(n)
}

/// `zones` folded as `pasarela_fold(trim(…))` folds the stored values, as a JSON array for
/// `json_each`.
fn folded_list(zones: &[String]) -> String {
    let wanted: Vec<String> = zones
        .iter()
        .map(|z| super::messages::fold(z.trim()))
        .collect();
    serde_json::to_string(&wanted).unwrap_or_else(|_| "[]".into())
}

/// Whether any customer's `field` is one of `zones`, compared as [`freeze_affected`] does.
pub fn any_affected(conn: &Connection, field: &str, zones: &[String]) -> Result<bool, StoreError> {
    let Some(expr) = field_expr(field) else {
        return Ok(false);
    };
    let list = folded_list(zones);
    Ok(conn
        .prepare_cached(&format!(
            "SELECT EXISTS (SELECT 1 FROM customers c \
             WHERE pasarela_fold(trim({expr})) IN (SELECT value FROM json_each(?1)))"
        ))?
        .query_row([list], |r| r.get(0))?)
}

/// The distinct field values (`%zona%`) of the customers an outage notified.
pub fn notified_zones(conn: &Connection, outage: i64) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT DISTINCT zone FROM outage_customers \
         WHERE outage_id = ?1 AND notice_peer IS NOT NULL",
    )?;
    let zones = stmt
        .query_map([outage], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(zones)
}

/// A customer an outage notified, as a notice rendered for them needs it.
#[derive(Debug, Clone)]
pub struct Notified {
    pub customer: Customer,
    /// The customer's value of the field.
    pub zone: String,
    /// Where the notice goes.
    pub peer: String,
}

/// The customers an outage notified, by id, with their directory data.
pub fn notified_customers(conn: &Connection, outage: i64) -> Result<Vec<Notified>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT c.id, c.code, c.name, c.email, c.balance, c.due_date, c.plan, c.zone, c.extra, \
                c.optout_sms, c.optout_whatsapp, c.optout_email, oc.zone, oc.notice_peer \
         FROM outage_customers oc JOIN customers c ON c.id = oc.customer_id \
         WHERE oc.outage_id = ?1 AND oc.notice_peer IS NOT NULL ORDER BY oc.customer_id",
    )?;
    let rows = stmt.query_map([outage], |r| {
        let extra: String = r.get(8)?;
        let due: Option<String> = r.get(5)?;
        let peer: String = r.get(13)?;
        Ok(Notified {
            customer: Customer {
                id: Some(r.get(0)?),
                code: r.get(1)?,
                name: r.get(2)?,
                email: r.get(3)?,
                balance: r.get::<_, Option<i64>>(4)?.map(crate::rules::Money),
                due_date: due.and_then(|d| d.parse().ok()),
                plan: r.get(6)?,
                zone: r.get(7)?,
                extra: serde_json::from_str(&extra).unwrap_or_default(),
                optout: crate::rules::OptOut {
                    sms: r.get(9)?,
                    whatsapp: r.get(10)?,
                    email: r.get(11)?,
                },
                phones: vec![peer.clone()],
                channels: Default::default(),
            },
            zone: r.get(12)?,
            peer,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// How an outage's notices are queued, by [`queue_notices`].
#[derive(Debug, Clone)]
pub struct NoticeRows<'a> {
    pub priority: i64,
    pub state: &'a str,
    /// Unix ms the notices fall due.
    pub due: i64,
    pub window: Option<&'a str>,
}

/// Queues the notice to every customer the outage notified, in one statement, ordered by
/// customer; `bodies` is a JSON object from each field value (`outage_customers.zone`) to its
/// notice text. Returns how many were queued.
pub fn queue_notices(
    conn: &Connection,
    outage: i64,
    bodies: &str,
    rows: &NoticeRows<'_>,
    now: i64,
) -> Result<usize, StoreError> {
    let n = conn
        .prepare_cached(
            "INSERT INTO messages (direction, channel, peer, body, state, priority, attempts, \
             next_attempt_at, customer_id, created_at, updated_at, send_window) \
             SELECT 'out', oc.notice_channel, oc.notice_peer, b.value, ?3, ?4, 0, ?5, \
                    oc.customer_id, ?6, ?6, ?7 \
             FROM outage_customers oc JOIN json_each(?2) b ON b.key = oc.zone \
             WHERE oc.outage_id = ?1 AND oc.notice_peer IS NOT NULL ORDER BY oc.customer_id",
        )?
        .execute(params![
            outage,
            bodies,
            rows.state,
            rows.priority,
            rows.due,
            now,
            rows.window
        ])?;
    Ok(n)
}

/// Numbers that texted BAJA on `channel`.
pub fn optouts_on(
    conn: &Connection,
    channel: Channel,
) -> Result<std::collections::HashSet<String>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT peer FROM optouts WHERE channel = ?1")?;
    let set = stmt
        .query_map([channel.as_str()], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(set)
}

pub fn insert_outage(conn: &Connection, o: &NewOutage<'_>, now: i64) -> Result<i64, StoreError> {
    conn.prepare_cached(
        "INSERT INTO outages (field, zones, message, eta, source, alert_zone, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
    )?
    .execute(params![
        o.field,
        serde_json::to_string(o.zones).unwrap_or_else(|_| "[]".into()),
        o.message,
        o.eta,
        o.source,
        o.alert_zone,
        now
    ])?;
    Ok(conn.last_insert_rowid())
}

pub fn set_master_ticket(conn: &Connection, id: i64, ticket: i64) -> Result<(), StoreError> {
    conn.prepare_cached("UPDATE outages SET master_ticket = ?2 WHERE id = ?1")?
        .execute(params![id, ticket])?;
    Ok(())
}

pub fn get_outage(conn: &Connection, id: i64) -> Result<Option<Outage>, StoreError> {
    let o = conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM outages WHERE id = ?1"))?
        .query_row([id], outage_row)
        .optional()?;
    match o {
        Some(mut o) => {
            o.counts = counts(conn, o.id)?;
            Ok(Some(o))
        }
        None => Ok(None),
    }
}

/// Outages newest first, optionally only those in `state`, before id `before`.
pub fn list_outages(
    conn: &Connection,
    state: Option<&str>,
    before: Option<i64>,
    limit: u32,
) -> Result<Vec<Outage>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM outages WHERE (?1 IS NULL OR state = ?1) \
         AND (?2 IS NULL OR id < ?2) ORDER BY id DESC LIMIT +?3"
    ))?;
    let mut list = stmt
        .query_map(params![state, before, limit], outage_row)?
        .collect::<Result<Vec<_>, _>>()?;
    for o in &mut list {
        o.counts = counts(conn, o.id)?;
    }
    Ok(list)
}

fn counts(conn: &Connection, id: i64) -> Result<Counts, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT COUNT(*), COUNT(notice_peer), SUM(writes > 0), SUM(replies), SUM(resolved_sent) \
             FROM outage_customers WHERE outage_id = ?1",
        )?
        .query_row([id], |r| {
            let n = |i: usize| -> rusqlite::Result<u64> {
                Ok(r.get::<_, Option<i64>>(i)?.unwrap_or(0).max(0) as u64)
            };
            Ok(Counts {
                affected: n(0)?,
                notified: n(1)?,
                wrote: n(2)?,
                replies: n(3)?,
                resolved_sent: n(4)?,
            })
        })?)
}

/// The open outage raised by Alertmanager for `zone`, if any.
pub fn open_alert_outage(conn: &Connection, zone: &str) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT id FROM outages WHERE state = 'open' AND source = 'alertmanager' \
             AND alert_zone = ?1 ORDER BY id DESC LIMIT 1",
        )?
        .query_row([zone], |r| r.get(0))
        .optional()?)
}

/// Changes the message and/or ETA of an open outage; `false` when it is not open.
pub fn update_outage(
    conn: &Connection,
    id: i64,
    message: Option<&str>,
    eta: Option<Option<i64>>,
    now: i64,
) -> Result<bool, StoreError> {
    let n = conn
        .prepare_cached(
            "UPDATE outages SET message = COALESCE(?2, message), \
             eta = CASE WHEN ?3 THEN ?4 ELSE eta END, updated_at = ?5 \
             WHERE id = ?1 AND state = 'open'",
        )?
        .execute(params![id, message, eta.is_some(), eta.flatten(), now])?;
    Ok(n == 1)
}

/// Marks an outage resolved; `false` when it was not open.
pub fn mark_resolved(
    conn: &Connection,
    id: i64,
    note: Option<&str>,
    now: i64,
) -> Result<bool, StoreError> {
    let n = conn
        .prepare_cached(
            "UPDATE outages SET state = 'resolved', resolved_at = ?2, updated_at = ?2, \
             resolve_note = ?3 WHERE id = ?1 AND state = 'open'",
        )?
        .execute(params![id, now, note])?;
    Ok(n == 1)
}

/// Who gets the all-clear of an outage: each customer notified or who wrote, once.
#[derive(Debug, Clone)]
pub struct Contact {
    pub customer_id: i64,
    pub zone: String,
    /// Where to send it: the channel they wrote on, else where the notice went.
    pub channel: Channel,
    pub peer: String,
    pub notice: Option<(String, String)>,
    pub wrote: Option<(String, String)>,
}

pub fn contacts(conn: &Connection, outage: i64) -> Result<Vec<Contact>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT customer_id, zone, notice_channel, notice_peer, wrote_channel, wrote_peer \
         FROM outage_customers WHERE outage_id = ?1 AND resolved_sent = 0 \
         AND (notice_peer IS NOT NULL OR wrote_peer IS NOT NULL) ORDER BY customer_id",
    )?;
    let rows = stmt.query_map([outage], |r| {
        let pair = |a: usize, b: usize| -> rusqlite::Result<Option<(String, String)>> {
            Ok(
                match (
                    r.get::<_, Option<String>>(a)?,
                    r.get::<_, Option<String>>(b)?,
                ) {
                    (Some(c), Some(p)) => Some((c, p)),
                    _ => None,
                },
            )
        };
        Ok((r.get(0)?, r.get(1)?, pair(2, 3)?, pair(4, 5)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (customer_id, zone, notice, wrote): (i64, String, _, _) = row?;
        let Some((channel, peer)) = wrote.clone().or_else(|| notice.clone()) else {
            continue;
        };
        let Some(channel) = Channel::parse(&channel) else {
            continue;
        };
        out.push(Contact {
            customer_id,
            zone,
            channel,
            peer,
            notice,
            wrote,
        });
    }
    Ok(out)
}

/// Another open outage (not `except`) the customer is in, with the latest ETA.
pub fn other_open_outage(
    conn: &Connection,
    customer_id: i64,
    except: i64,
) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT o.id FROM outage_customers oc JOIN outages o ON o.id = oc.outage_id \
             WHERE oc.customer_id = ?1 AND o.state = 'open' AND o.id <> ?2 \
             ORDER BY (o.eta IS NULL) DESC, o.eta DESC, o.id DESC LIMIT 1",
        )?
        .query_row(params![customer_id, except], |r| r.get(0))
        .optional()?)
}

/// Hands a customer's contact over to another open outage (its all-clear will tell them).
pub fn hand_over(conn: &Connection, to: i64, c: &Contact) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE outage_customers SET \
         notice_channel = COALESCE(notice_channel, ?3), notice_peer = COALESCE(notice_peer, ?4), \
         wrote_channel = COALESCE(?5, wrote_channel), wrote_peer = COALESCE(?6, wrote_peer) \
         WHERE outage_id = ?1 AND customer_id = ?2",
    )?
    .execute(params![
        to,
        c.customer_id,
        c.notice.as_ref().map(|n| n.0.as_str()),
        c.notice.as_ref().map(|n| n.1.as_str()),
        c.wrote.as_ref().map(|n| n.0.as_str()),
        c.wrote.as_ref().map(|n| n.1.as_str()),
    ])?;
    Ok(())
}

pub fn mark_resolved_sent(
    conn: &Connection,
    outage: i64,
    customer_id: i64,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE outage_customers SET resolved_sent = 1 WHERE outage_id = ?1 AND customer_id = ?2",
    )?
    .execute(params![outage, customer_id])?;
    Ok(())
}

/// The open outage affecting a customer (by id, or by code for a customer the billing system
/// found), the one with the latest ETA (unknown counts as latest): (outage, customer's zone).
pub fn open_outage_for(
    conn: &Connection,
    customer_id: Option<i64>,
    code: &str,
) -> Result<Option<(Outage, String)>, StoreError> {
    let found: Option<(i64, String)> = conn
        .prepare_cached(
            "SELECT o.id, oc.zone FROM outage_customers oc JOIN outages o ON o.id = oc.outage_id \
             WHERE oc.customer_id = COALESCE(?1, (SELECT id FROM customers WHERE code = ?2)) \
             AND o.state = 'open' \
             ORDER BY (o.eta IS NULL) DESC, o.eta DESC, o.id DESC LIMIT 1",
        )?
        .query_row(params![customer_id, code], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((id, zone)) = found else {
        return Ok(None);
    };
    let o = conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM outages WHERE id = ?1"))?
        .query_row([id], outage_row)?;
    Ok(Some((o, zone)))
}

/// Whether any outage is open (the inbox skips the lookup when none is).
pub fn any_open(conn: &Connection) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM outages WHERE state = 'open')")?
        .query_row([], |r| r.get(0))?)
}

/// Links an inbound text to the outage (and its master ticket) and records who wrote, from
/// where, and whether they were answered.
#[allow(clippy::too_many_arguments)]
pub fn link_message(
    conn: &Connection,
    outage: i64,
    customer_id: Option<i64>,
    code: &str,
    message: MessageId,
    channel: Channel,
    peer: &str,
    replied: bool,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT OR IGNORE INTO outage_messages (message_id, outage_id, ticket_id) \
         SELECT ?1, id, master_ticket FROM outages WHERE id = ?2",
    )?
    .execute(params![message.0, outage])?;
    conn.prepare_cached(
        "UPDATE outage_customers SET wrote_channel = ?4, wrote_peer = ?5, writes = writes + 1, \
         replies = replies + ?6 WHERE outage_id = ?1 \
         AND customer_id = COALESCE(?2, (SELECT id FROM customers WHERE code = ?3))",
    )?
    .execute(params![
        outage,
        customer_id,
        code,
        channel.as_str(),
        peer,
        i64::from(replied)
    ])?;
    Ok(())
}

/// Inbound texts linked to an outage.
pub fn linked_messages(conn: &Connection, outage: i64) -> Result<u64, StoreError> {
    Ok(conn
        .prepare_cached("SELECT COUNT(*) FROM outage_messages WHERE outage_id = ?1")?
        .query_row([outage], |r| r.get::<_, i64>(0))?
        .max(0) as u64)
}
