//! The `messages` table: types and the SQL that moves a message between states. Every
//! function here runs inside the caller's transaction; one call is one state change.

use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter, types::Value};

use super::StoreError;
pub use crate::model::{Channel, Direction, MessageId, NewInbound, Priority, State, StatusUpdate};

/// A message as stored. Times are Unix milliseconds (UTC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub id: MessageId,
    pub direction: Direction,
    pub channel: Channel,
    pub transport: Option<String>,
    pub peer: String,
    pub body: String,
    pub state: State,
    pub priority: Priority,
    pub attempts: u32,
    pub next_attempt_at: Option<i64>,
    pub last_error: Option<String>,
    pub provider_ref: Option<String>,
    pub customer_id: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub sent_at: Option<i64>,
    pub delivered_at: Option<i64>,
}

/// An outbound message to queue. `peer` is already normalized by the caller.
#[derive(Debug, Clone)]
pub struct NewOutbound {
    pub channel: Channel,
    pub peer: String,
    pub body: String,
    pub priority: Priority,
    pub customer_id: Option<i64>,
    /// Delivery window it must wait for (checked again whenever the window closes).
    pub window: Option<String>,
    /// Not before this time (Unix ms): the window's next opening. Later than now → `scheduled`.
    pub not_before: Option<i64>,
}

/// What became of one send attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Sent {
        provider_ref: Option<String>,
        /// Sent without a confirmation: why (kept as the message's `last_error`).
        note: Option<String>,
        /// The server's final answer (SMTP: `250 2.0.0 Ok: queued as …`), shown in history.
        answer: Option<String>,
    },
    /// Temporary failure: try again at `retry_at` (Unix ms).
    Retry { error: String, retry_at: i64 },
    /// Permanent failure, or attempts exhausted.
    Failed { error: String },
}

/// Filters for the history; all optional. Newest first; `before` is the pagination cursor.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub direction: Option<Direction>,
    pub state: Option<State>,
    pub channel: Option<Channel>,
    pub peer: Option<String>,
    pub q: Option<String>,
    pub since: Option<i64>,
    pub until: Option<i64>,
    /// `Some(true)`: sent by a user of the pages; `Some(false)`: outbound sent by pasarela
    /// itself (rules, events, the API).
    pub manual: Option<bool>,
    pub before: Option<MessageId>,
    pub limit: u32,
}

const COLUMNS: &str = "id, direction, channel, transport, peer, body, state, priority, attempts, \
     next_attempt_at, last_error, provider_ref, customer_id, created_at, updated_at, sent_at, delivered_at";

fn corrupt(what: &str, value: &str) -> rusqlite::Error {
    rusqlite::Error::InvalidColumnType(0, format!("{what} `{value}`"), rusqlite::types::Type::Text)
}

fn from_row(row: &Row<'_>) -> rusqlite::Result<Message> {
    let direction: String = row.get(1)?;
    let channel: String = row.get(2)?;
    let state: String = row.get(6)?;
    Ok(Message {
        id: MessageId(row.get(0)?),
        direction: Direction::parse(&direction).ok_or_else(|| corrupt("direction", &direction))?,
        channel: Channel::parse(&channel).ok_or_else(|| corrupt("channel", &channel))?,
        transport: row.get(3)?,
        peer: row.get(4)?,
        body: row.get(5)?,
        state: State::parse(&state).ok_or_else(|| corrupt("state", &state))?,
        priority: Priority::from_rank(row.get(7)?),
        attempts: row.get(8)?,
        next_attempt_at: row.get(9)?,
        last_error: row.get(10)?,
        provider_ref: row.get(11)?,
        customer_id: row.get(12)?,
        created_at: row.get(13)?,
        updated_at: row.get(14)?,
        sent_at: row.get(15)?,
        delivered_at: row.get(16)?,
    })
}

/// Inserts queued outbound messages; returns their ids in order. Notifications and bulk to a
/// recipient who opted out are stored cancelled.
pub fn insert_outbound(
    conn: &Connection,
    items: &[NewOutbound],
    now: i64,
) -> Result<Vec<(MessageId, State)>, StoreError> {
    insert_rows(conn, items, now, true)
}

/// [`insert_outbound`] for a caller that already left out, in this same transaction, every
/// recipient who opted out (an outage's 20,000 notices: one opt-out lookup each would cost more
/// than the inserts).
pub fn insert_outbound_prechecked(
    conn: &Connection,
    items: &[NewOutbound],
    now: i64,
) -> Result<Vec<(MessageId, State)>, StoreError> {
    insert_rows(conn, items, now, false)
}

fn insert_rows(
    conn: &Connection,
    items: &[NewOutbound],
    now: i64,
    check_optout: bool,
) -> Result<Vec<(MessageId, State)>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO messages (direction, channel, peer, body, state, priority, attempts, \
         next_attempt_at, customer_id, created_at, updated_at, send_window, last_error) \
         VALUES ('out', ?1, ?2, ?3, ?4, ?5, 0, ?6, ?7, ?8, ?8, ?9, ?10)",
    )?;
    let mut ids = Vec::with_capacity(items.len());
    for m in items {
        let opted_out = check_optout
            && m.priority != Priority::Reply
            && super::directory::opted_out(conn, m.channel, &m.peer, m.customer_id)?;
        let due = m.not_before.unwrap_or(now).max(now);
        let (state, error) = if opted_out {
            (
                State::Cancelled,
                Some("the recipient opted out (BAJA) of notifications and bulk on this channel"),
            )
        } else if due > now {
            (State::Scheduled, None)
        } else {
            (State::Queued, None)
        };
        stmt.execute(params![
            m.channel.as_str(),
            m.peer,
            m.body,
            state.as_str(),
            m.priority.rank(),
            due,
            m.customer_id,
            now,
            m.window,
            error,
        ])?;
        ids.push((MessageId(conn.last_insert_rowid()), state));
    }
    Ok(ids)
}

/// Stores an inbound message. A second delivery with the same transport and provider
/// reference returns the first row's id and `false`.
pub fn insert_inbound(
    conn: &Connection,
    m: &NewInbound,
    now: i64,
) -> Result<(MessageId, bool), StoreError> {
    if let Some(r) = &m.provider_ref {
        let existing: Option<i64> = conn
            .prepare_cached(
                "SELECT id FROM messages WHERE direction = 'in' AND transport = ?1 AND provider_ref = ?2",
            )?
            .query_row(params![m.transport, r], |row| row.get(0))
            .optional()?;
        if let Some(id) = existing {
            return Ok((MessageId(id), false));
        }
    }
    conn.prepare_cached(
        "INSERT INTO messages (direction, channel, transport, peer, body, state, priority, \
         provider_ref, created_at, updated_at, handled) \
         VALUES ('in', ?1, ?2, ?3, ?4, 'received', 0, ?5, ?6, ?6, 0)",
    )?
    .execute(params![
        m.channel.as_str(),
        m.transport,
        m.peer,
        m.body,
        m.provider_ref,
        now
    ])?;
    Ok((MessageId(conn.last_insert_rowid()), true))
}

/// Stores an inbound message unless the same sender sent the same text through the same
/// transport within `window_ms` (a provider pushing again without an id); `false` with the
/// earlier message's id then. Check and insert run in the caller's one transaction.
pub fn insert_inbound_unless_recent(
    conn: &Connection,
    m: &NewInbound,
    now: i64,
    window_ms: i64,
) -> Result<(MessageId, bool), StoreError> {
    let existing: Option<i64> = conn
        .prepare_cached(
            "SELECT id FROM messages WHERE peer = ?1 AND direction = 'in' AND transport = ?2 \
             AND body = ?3 AND created_at >= ?4 ORDER BY id DESC LIMIT 1",
        )?
        .query_row(
            params![m.peer, m.transport, m.body, now - window_ms],
            |row| row.get(0),
        )
        .optional()?;
    if let Some(id) = existing {
        return Ok((MessageId(id), false));
    }
    insert_inbound(conn, m, now)
}

pub fn get(conn: &Connection, id: MessageId) -> Result<Message, StoreError> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM messages WHERE id = ?1"))?
        .query_row([id.0], from_row)
        .optional()?
        .ok_or(StoreError::NotFound(id))
}

/// One page of history, newest first.
///
/// Shapes that stay fast on a history of millions: a time range is turned into an id range
/// first (ids and creation times grow together) with the exact time test kept as a filter; a
/// text search scans only the newest rows not yet in the trigram index, then walks the index
/// newest first.
pub fn list(conn: &Connection, f: &ListFilter) -> Result<Vec<Message>, StoreError> {
    let mut base = Query::default();
    if let Some(d) = f.direction {
        base.clause("m.direction = ?", d.as_str().to_string());
    }
    if let Some(s) = f.state {
        base.clause("m.state = ?", s.as_str().to_string());
    }
    if let Some(c) = f.channel {
        base.clause("m.channel = ?", c.as_str().to_string());
    }
    if let Some(p) = &f.peer {
        base.clause("m.peer = ?", p.clone());
    }
    if let Some(manual) = f.manual {
        base.clause("(m.author IS NOT NULL) = ?", i64::from(manual));
        if !manual {
            base.clause("m.direction = ?", Direction::Out.as_str().to_string());
        }
    }
    let mut upper = f.before.map(|b| b.0);
    let mut lower = None;
    if let Some(t) = f.since {
        // Unary `+` keeps the planner from driving the query by the time index.
        base.clause("+m.created_at >= ?", t);
        match first_id_at_or_after(conn, t)? {
            Some(lo) => lower = Some(lo),
            None => return Ok(Vec::new()),
        }
    }
    if let Some(t) = f.until {
        base.clause("+m.created_at < ?", t);
        if let Some(hi) = first_id_at_or_after(conn, t)? {
            upper = Some(upper.map_or(hi, |u| u.min(hi)));
        }
    }
    let limit = f.limit as usize;
    let Some(q) = f.q.as_deref() else {
        return base.run(conn, "m.id", lower, upper, limit);
    };
    let pattern = like_pattern(&fold(q));
    match fts_phrase(q) {
        None => {
            let mut scan = base.clone();
            scan.clause("pasarela_fold(m.body) LIKE ? ESCAPE '\\'", pattern);
            scan.run(conn, "m.id", lower, upper, limit)
        }
        Some(phrase) => {
            let indexed = fts_mark(conn)?;
            let mut tail = base.clone();
            tail.clause("pasarela_fold(m.body) LIKE ? ESCAPE '\\'", pattern);
            let tail_floor = Some(lower.unwrap_or(0).max(indexed + 1));
            let mut rows = tail.run(conn, "m.id", tail_floor, upper, limit)?;
            if rows.len() < limit {
                let mut fts = base;
                fts.from = "messages_fts f JOIN messages m ON m.id = f.rowid";
                fts.clause("f.messages_fts MATCH ?", phrase);
                let top = Some(upper.map_or(indexed + 1, |u| u.min(indexed + 1)));
                rows.extend(fts.run(conn, "f.rowid", lower, top, limit - rows.len())?);
            }
            Ok(rows)
        }
    }
}

/// A history query being built: a FROM, AND-ed clauses and their arguments.
#[derive(Clone)]
struct Query {
    from: &'static str,
    clauses: Vec<&'static str>,
    args: Vec<Value>,
}

impl Default for Query {
    fn default() -> Self {
        Query {
            from: "messages m",
            clauses: Vec::new(),
            args: Vec::new(),
        }
    }
}

impl Query {
    fn clause(&mut self, sql: &'static str, arg: impl Into<Value>) {
        self.clauses.push(sql);
        self.args.push(arg.into());
    }

    /// Rows with `lower <= id < upper`, newest first.
    fn run(
        mut self,
        conn: &Connection,
        id_col: &str,
        lower: Option<i64>,
        upper: Option<i64>,
        limit: usize,
    ) -> Result<Vec<Message>, StoreError> {
        let mut sql = format!("SELECT {} FROM {}", prefixed_columns(), self.from);
        let mut conditions: Vec<String> = self.clauses.iter().map(|c| c.to_string()).collect();
        if let Some(lo) = lower {
            conditions.push(format!("{id_col} >= ?"));
            self.args.push(lo.into());
        }
        if let Some(hi) = upper {
            conditions.push(format!("{id_col} < ?"));
            self.args.push(hi.into());
        }
        if !conditions.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conditions.join(" AND "));
        }
        sql.push_str(&format!(" ORDER BY {id_col} DESC LIMIT +?"));
        self.args.push((limit as i64).into());
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(params_from_iter(self.args), from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// `m.id, m.direction, …` for queries that join.
fn prefixed_columns() -> String {
    COLUMNS
        .split(", ")
        .map(|c| format!("m.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The id of the first message created at or after `t`, if any.
fn first_id_at_or_after(conn: &Connection, t: i64) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT id FROM messages WHERE created_at >= ?1 ORDER BY created_at, id LIMIT 1",
        )?
        .query_row([t], |r| r.get(0))
        .optional()?)
}

/// The text as one FTS5 phrase, or `None` when it is too short for the trigram index.
fn fts_phrase(q: &str) -> Option<String> {
    (q.chars().count() >= 3).then(|| format!("\"{}\"", q.replace('"', "\"\"")))
}

fn like_pattern(text: &str) -> String {
    let escaped = text
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

/// Lower case without accents (`Núñez` → `nunez`): how text search compares, the same way
/// the trigram index does.
pub fn fold(text: &str) -> String {
    text.chars()
        .flat_map(char::to_lowercase)
        .map(|c| match c {
            'á' | 'à' | 'ä' | 'â' | 'ã' | 'å' => 'a',
            'é' | 'è' | 'ë' | 'ê' => 'e',
            'í' | 'ì' | 'ï' | 'î' => 'i',
            'ó' | 'ò' | 'ö' | 'ô' | 'õ' => 'o',
            'ú' | 'ù' | 'ü' | 'û' => 'u',
            'ñ' => 'n',
            'ç' => 'c',
            other => other,
        })
        .collect()
}

/// Registers `pasarela_fold(text)` ([`fold`]) on a connection.
pub fn register_functions(conn: &Connection) -> rusqlite::Result<()> {
    use rusqlite::functions::FunctionFlags;
    conn.create_scalar_function(
        "pasarela_fold",
        1,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let text = ctx.get::<Option<String>>(0)?;
            Ok(text.map(|t| fold(&t)))
        },
    )
}

/// The highest message id already in the text index.
fn fts_mark(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn
        .prepare_cached("SELECT value FROM meta WHERE key = 'fts_upto'")?
        .query_row([], |r| r.get(0))
        .optional()?
        .unwrap_or(0))
}

/// Adds up to `chunk` messages not yet in the text index; returns how many.
pub fn index_text(conn: &Connection, chunk: u32) -> Result<usize, StoreError> {
    let mark = fts_mark(conn)?;
    let last: Option<i64> = conn
        .prepare_cached(
            "SELECT MAX(id) FROM (SELECT id FROM messages WHERE id > ?1 ORDER BY id LIMIT +?2)",
        )?
        .query_row(params![mark, chunk], |r| r.get(0))?;
    let Some(last) = last else { return Ok(0) };
    let n = conn
        .prepare_cached(
            "INSERT INTO messages_fts (rowid, body) SELECT id, body FROM messages \
             WHERE id > ?1 AND id <= ?2",
        )?
        .execute(params![mark, last])?;
    conn.prepare_cached("UPDATE meta SET value = ?1 WHERE key = 'fts_upto'")?
        .execute([last])?;
    Ok(n)
}

/// Marks up to `limit` due queued messages of `channel` as `sending` on `transport` and
/// returns them, highest priority and oldest first.
///
/// The claim walks `messages_queue` in (priority, id) order and stops after `limit` matches.
/// It is named: without statistics the planner took `messages_state` instead and sorted every
/// queued row on each claim (20,000 queued outage notices made each claim ~20 ms on the
/// writer, and every reply waited behind it).
///
/// Only messages whose priority is within `priorities` are taken (`Reply..=Bulk`: all;
/// `Reply..=Reply`: replies only; `Notification..=Bulk`: all but replies).
pub fn claim_due(
    conn: &Connection,
    channel: Channel,
    transport: &str,
    now: i64,
    limit: u32,
    priorities: std::ops::RangeInclusive<Priority>,
) -> Result<Vec<Message>, StoreError> {
    let mut stmt = conn.prepare_cached(&CLAIM_SQL)?;
    let mut claimed: Vec<Message> = stmt
        .query_map(
            params![
                transport,
                now,
                channel.as_str(),
                limit,
                priorities.end().rank(),
                priorities.start().rank()
            ],
            from_row,
        )?
        .collect::<Result<_, _>>()?;
    claimed.sort_by_key(|m| (m.priority.rank(), m.id));
    Ok(claimed)
}

/// The claim's statement, built once. Its limit is written `+?4`, as every bound LIMIT in the
/// store is: SQLite's planner reads a plain `?N` limit's value, so binding it again (each
/// execution) expired the statement and recompiled it, with its triggers, on the writer every
/// claim (a profile of a running campaign found a tenth of the writer's time there). With
/// `+?N` the plan is the same, chosen without the value.
pub(crate) static CLAIM_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "UPDATE messages SET state = 'sending', transport = ?1, attempts = attempts + 1, updated_at = ?2 \
         WHERE id IN (SELECT id FROM messages INDEXED BY messages_queue \
                      WHERE state = 'queued' AND priority BETWEEN ?6 AND ?5 AND channel = ?3 \
                      AND next_attempt_at <= ?2 AND {EMAIL_ACCOUNT_IS_1} \
                      ORDER BY priority, id LIMIT +?4) \
         RETURNING {COLUMNS}"
    )
});

/// Whether a due queued reply (priority `reply`) waits that `transport` may take: one index
/// seek (`messages_queue` starts with the priority).
pub fn reply_due(
    conn: &Connection,
    channel: Channel,
    transport: &str,
    now: i64,
) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT EXISTS (SELECT 1 FROM messages INDEXED BY messages_queue \
             WHERE state = 'queued' AND priority = ?4 AND channel = ?2 \
             AND next_attempt_at <= ?3 AND {EMAIL_ACCOUNT_IS_1})"
        ))?
        .query_row(
            params![transport, channel.as_str(), now, Priority::Reply.rank()],
            |r| r.get(0),
        )?)
}

/// Send times (Unix ms) of `transport`'s outbound messages sent since `since`, newest first.
pub fn sent_since(
    conn: &Connection,
    transport: &str,
    since: i64,
    limit: u32,
) -> Result<Vec<i64>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT sent_at FROM messages WHERE transport = ?1 AND direction = 'out' \
         AND sent_at >= ?2 ORDER BY sent_at DESC LIMIT +?3",
    )?;
    let times = stmt
        .query_map(params![transport, since, limit], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(times)
}

/// The server's final answer to message `id`'s last accepted send, if one was kept.
pub fn answer(conn: &Connection, id: MessageId) -> Result<Option<String>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT answer FROM message_answers WHERE message_id = ?1")?
        .query_row(params![id.0], |r| r.get(0))
        .optional()?)
}

/// An email is stored with the account that sends it (its body is the JSON of the mail, see
/// `transport::email::stored`): only that account's route claims it.
const EMAIL_ACCOUNT_IS_1: &str = "(channel != 'email' OR json_extract(body, '$.account') = ?1)";

/// When the next queued message these routes may take falls due (Unix ms), if any. Routes are
/// (channel, route name); an email waits for its own account's route.
pub fn next_due(
    conn: &Connection,
    routes: &[(Channel, String)],
) -> Result<Option<i64>, StoreError> {
    let mut channels: Vec<&str> = routes
        .iter()
        .filter(|(c, _)| *c != Channel::Email)
        .map(|(c, _)| c.as_str())
        .collect();
    channels.dedup();
    let accounts: Vec<&str> = routes
        .iter()
        .filter(|(c, _)| *c == Channel::Email)
        .map(|(_, n)| n.as_str())
        .collect();
    if channels.is_empty() && accounts.is_empty() {
        return Ok(None);
    }
    let marks = |n: usize| vec!["?"; n].join(",");
    // The earliest first, walking `messages_due` (named, as in `claim_due`: a MIN() over
    // `messages_state` read every queued row).
    let sql = format!(
        "SELECT next_attempt_at FROM messages INDEXED BY messages_due \
         WHERE state = 'queued' AND next_attempt_at IS NOT NULL AND \
         (channel IN ({}) OR (channel = 'email' AND json_extract(body, '$.account') IN ({}))) \
         ORDER BY next_attempt_at LIMIT 1",
        marks(channels.len()),
        marks(accounts.len())
    );
    let v: Option<i64> = conn
        .prepare_cached(&sql)?
        .query_row(params_from_iter(channels.iter().chain(&accounts)), |r| {
            r.get(0)
        })
        .optional()?;
    Ok(v)
}

/// Records the result of an attempt on a message in `sending`. A message that left
/// `sending` meanwhile (cancelled by an operator is not possible; a restart requeued it) is
/// left alone and reported as a conflict.
pub fn record_outcome(
    conn: &Connection,
    id: MessageId,
    outcome: &Outcome,
    now: i64,
) -> Result<(), StoreError> {
    let changed = match outcome {
        Outcome::Sent {
            provider_ref,
            note,
            answer,
        } => {
            let changed = conn
                .prepare_cached(
                    "UPDATE messages SET state = 'sent', provider_ref = ?2, sent_at = ?3, updated_at = ?3, \
                     next_attempt_at = NULL, last_error = COALESCE(?4, last_error) \
                     WHERE id = ?1 AND state = 'sending'",
                )?
                .execute(params![id.0, provider_ref, now, note])?;
            if changed == 1
                && let Some(answer) = answer
            {
                conn.prepare_cached(
                    "INSERT OR REPLACE INTO message_answers (message_id, answer) VALUES (?1, ?2)",
                )?
                .execute(params![id.0, answer])?;
            }
            changed
        }
        // A message bound to a delivery window waits as `scheduled`: only the scheduler, which
        // knows the windows, queues it again, so a retry falling due after its window closed
        // does not go out (it waits for the window to open).
        Outcome::Retry { error, retry_at } => conn
            .prepare_cached(
                "UPDATE messages SET state = CASE WHEN send_window IS NULL THEN 'queued' ELSE 'scheduled' END, \
                 last_error = ?2, next_attempt_at = ?3, \
                 updated_at = ?4 WHERE id = ?1 AND state = 'sending'",
            )?
            .execute(params![id.0, error, retry_at, now])?,
        Outcome::Failed { error } => conn
            .prepare_cached(
                "UPDATE messages SET state = 'failed', last_error = ?2, next_attempt_at = NULL, \
                 updated_at = ?3 WHERE id = ?1 AND state = 'sending'",
            )?
            .execute(params![id.0, error, now])?,
    };
    if changed != 1 {
        return Err(StoreError::Conflict(format!(
            "message {id} is no longer being sent"
        )));
    }
    if matches!(outcome, Outcome::Retry { .. }) {
        super::campaigns::hold_if_stopped(conn, id.0, now)?;
    }
    Ok(())
}

/// Applies a delivery report to the outbound message the transport knows as `provider_ref`.
/// Returns the message id, or `None` when no message matches (a late or foreign report).
pub fn apply_status(
    conn: &Connection,
    transport: &str,
    provider_ref: &str,
    update: &StatusUpdate,
    now: i64,
) -> Result<Option<MessageId>, StoreError> {
    let id: Option<i64> = conn
        .prepare_cached(
            "SELECT id FROM messages WHERE transport = ?1 AND provider_ref = ?2 AND direction = 'out' \
             ORDER BY id DESC LIMIT 1",
        )?
        .query_row(params![transport, provider_ref], |r| r.get(0))
        .optional()?;
    let Some(id) = id else { return Ok(None) };
    match update {
        StatusUpdate::Delivered => conn
            .prepare_cached(
                "UPDATE messages SET state = 'delivered', delivered_at = ?2, updated_at = ?2 \
                 WHERE id = ?1 AND state IN ('sent', 'sending')",
            )?
            .execute(params![id, now])?,
        // A read report may come before (or instead of) the delivered one.
        StatusUpdate::Read => conn
            .prepare_cached(
                "UPDATE messages SET state = 'read', delivered_at = COALESCE(delivered_at, ?2), \
                 updated_at = ?2 WHERE id = ?1 AND state IN ('sent', 'sending', 'delivered')",
            )?
            .execute(params![id, now])?,
        StatusUpdate::Failed { reason } => conn
            .prepare_cached(
                "UPDATE messages SET state = 'failed', last_error = ?2, updated_at = ?3 \
                 WHERE id = ?1 AND state IN ('sent', 'sending')",
            )?
            .execute(params![id, reason, now])?,
    };
    Ok(Some(MessageId(id)))
}

/// Applies a delivery report to outbound message `id`, but only while `transport` is the
/// route it went out on and the report can still change it: `Delivered` moves a queued,
/// sending or sent message to `delivered` (a message the route already delivered is not sent
/// again), `Read` likewise or a delivered one to `read`; `Failed` moves a sending or sent one to `failed`. Returns whether it changed;
/// a repeated report changes nothing. `provider_ref` is recorded if the message has none yet
/// (the report can arrive before the send's own result is recorded).
pub fn apply_status_by_id(
    conn: &Connection,
    id: MessageId,
    transport: &str,
    provider_ref: &str,
    update: &StatusUpdate,
    now: i64,
) -> Result<bool, StoreError> {
    let changed = match update {
        StatusUpdate::Delivered => conn
            .prepare_cached(
                "UPDATE messages SET state = 'delivered', delivered_at = ?3, \
                 sent_at = COALESCE(sent_at, ?3), next_attempt_at = NULL, updated_at = ?3, \
                 provider_ref = COALESCE(provider_ref, ?4) \
                 WHERE id = ?1 AND direction = 'out' AND transport = ?2 \
                 AND state IN ('queued', 'sending', 'sent')",
            )?
            .execute(params![id.0, transport, now, provider_ref])?,
        StatusUpdate::Read => conn
            .prepare_cached(
                "UPDATE messages SET state = 'read', delivered_at = COALESCE(delivered_at, ?3), \
                 sent_at = COALESCE(sent_at, ?3), next_attempt_at = NULL, updated_at = ?3, \
                 provider_ref = COALESCE(provider_ref, ?4) \
                 WHERE id = ?1 AND direction = 'out' AND transport = ?2 \
                 AND state IN ('queued', 'sending', 'sent', 'delivered')",
            )?
            .execute(params![id.0, transport, now, provider_ref])?,
        StatusUpdate::Failed { reason } => conn
            .prepare_cached(
                "UPDATE messages SET state = 'failed', last_error = ?4, next_attempt_at = NULL, \
                 updated_at = ?3, provider_ref = COALESCE(provider_ref, ?5) WHERE id = ?1 AND direction = 'out' AND transport = ?2 \
                 AND state IN ('sending', 'sent')",
            )?
            .execute(params![id.0, transport, now, reason, provider_ref])?,
    };
    Ok(changed == 1)
}

/// Outbound messages `transport` handed over that are still `sent` (no delivery report yet),
/// updated since `since`, with ids above `after`, oldest first.
pub fn awaiting_report(
    conn: &Connection,
    transport: &str,
    since: i64,
    after: MessageId,
    limit: u32,
) -> Result<Vec<MessageId>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id FROM messages WHERE state = 'sent' AND id > ?3 AND direction = 'out' \
         AND transport = ?1 AND updated_at >= ?2 ORDER BY id LIMIT +?4",
    )?;
    let ids = stmt
        .query_map(params![transport, since, after.0, limit], |r| {
            r.get(0).map(MessageId)
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ids)
}

/// Cancels a message that has not started sending.
pub fn cancel(conn: &Connection, id: MessageId, now: i64) -> Result<Message, StoreError> {
    let m = get(conn, id)?;
    match (m.direction, m.state) {
        (Direction::In, _) => Err(StoreError::Conflict(format!(
            "message {id} is inbound; only outbound messages can be cancelled"
        ))),
        (_, State::Queued | State::Scheduled) => {
            conn.prepare_cached(
                "UPDATE messages SET state = 'cancelled', next_attempt_at = NULL, updated_at = ?2 WHERE id = ?1",
            )?
            .execute(params![id.0, now])?;
            get(conn, id)
        }
        (_, State::Sending) => Err(StoreError::Conflict(format!(
            "message {id} is being sent right now and can no longer be cancelled"
        ))),
        (_, s) => Err(StoreError::Conflict(format!(
            "message {id} is already {s}; only queued or scheduled messages can be cancelled"
        ))),
    }
}

/// Sends a message again. A failed or cancelled message goes back to the queue as it is
/// (attempts start over); a sent or delivered one is copied into a new queued message.
/// Returns the message that will be sent.
pub fn resend(conn: &Connection, id: MessageId, now: i64) -> Result<Message, StoreError> {
    let m = get(conn, id)?;
    match (m.direction, m.state) {
        (Direction::In, _) => Err(StoreError::Conflict(format!(
            "message {id} is inbound; only outbound messages can be resent"
        ))),
        (_, State::Failed | State::Cancelled) => {
            conn.prepare_cached(
                "UPDATE messages SET state = 'queued', attempts = 0, next_attempt_at = ?2, \
                 updated_at = ?2 WHERE id = ?1",
            )?
            .execute(params![id.0, now])?;
            get(conn, id)
        }
        (_, State::Sent | State::Delivered | State::Read) => {
            let ids = insert_outbound(
                conn,
                &[NewOutbound {
                    channel: m.channel,
                    peer: m.peer.clone(),
                    body: m.body.clone(),
                    priority: m.priority,
                    customer_id: m.customer_id,
                    window: None,
                    not_before: None,
                }],
                now,
            )?;
            get(conn, ids[0].0)
        }
        (_, s) => Err(StoreError::Conflict(format!(
            "message {id} is {s}: it will be sent anyway"
        ))),
    }
}

/// Returns every message left in `sending` (by a crash, or a shutdown that ran out of grace)
/// to the queue, due now (one bound to a delivery window to `scheduled`, for the scheduler to
/// check its window). At-least-once: such a message may have reached the network.
pub fn requeue_sending(conn: &Connection, now: i64) -> Result<Vec<MessageId>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "UPDATE messages SET state = CASE WHEN send_window IS NULL THEN 'queued' ELSE 'scheduled' END, next_attempt_at = ?1, updated_at = ?1, \
         last_error = COALESCE(last_error, 'interrupted while sending; sent again') \
         WHERE state = 'sending' RETURNING id",
    )?;
    let ids = stmt
        .query_map([now], |r| r.get(0).map(MessageId))?
        .collect::<Result<Vec<_>, _>>()?;
    for id in &ids {
        super::campaigns::hold_if_stopped(conn, id.0, now)?;
    }
    Ok(ids)
}

/// Puts specific `sending` messages back in the queue (their transport gave up on them); one
/// bound to a delivery window goes to `scheduled`, as a retry does.
pub fn requeue(conn: &Connection, ids: &[MessageId], now: i64) -> Result<usize, StoreError> {
    let mut stmt = conn.prepare_cached(
        "UPDATE messages SET state = CASE WHEN send_window IS NULL THEN 'queued' ELSE 'scheduled' END, attempts = MAX(attempts - 1, 0), next_attempt_at = ?2, \
         updated_at = ?2 WHERE id = ?1 AND state = 'sending'",
    )?;
    let mut n = 0;
    for id in ids {
        let back = stmt.execute(params![id.0, now])?;
        if back == 1 {
            super::campaigns::hold_if_stopped(conn, id.0, now)?;
        }
        n += back;
    }
    Ok(n)
}

/// How many messages are in each of `states` (an index range count each, cheap on a large history).
pub fn count_by_state(
    conn: &Connection,
    states: &[State],
) -> Result<Vec<(State, u64)>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT COUNT(*) FROM messages WHERE state = ?1")?;
    let mut out = Vec::with_capacity(states.len());
    for s in states {
        let n: i64 = stmt.query_row([s.as_str()], |r| r.get(0))?;
        out.push((*s, n.max(0) as u64));
    }
    Ok(out)
}

/// Messages waiting to go out (queued or sending), cheaper than a full count.
/// Scheduled, queued and sending messages by state and priority. The queued ones, which can
/// be many, are counted from the dispatcher's partial index alone (`messages_queue` holds the
/// priority); scheduled and sending ones are few.
pub fn queue_breakdown(conn: &Connection) -> Result<Vec<(State, Priority, u64)>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT 'queued', priority, COUNT(*) FROM messages INDEXED BY messages_queue \
         WHERE state = 'queued' GROUP BY priority \
         UNION ALL SELECT state, priority, COUNT(*) FROM messages \
         WHERE state IN ('scheduled', 'sending') GROUP BY state, priority",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (state, rank, n) = row?;
        if let Some(state) = State::parse(&state) {
            out.push((state, Priority::from_rank(rank), n.max(0) as u64));
        }
    }
    Ok(out)
}

pub fn queue_depth(conn: &Connection) -> Result<u64, StoreError> {
    let n: i64 = conn
        .prepare_cached("SELECT COUNT(*) FROM messages WHERE state IN ('queued', 'sending')")?
        .query_row([], |r| r.get(0))?;
    Ok(n.max(0) as u64)
}
