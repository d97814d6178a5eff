//! Read models of the operators' pages that the message history does not already answer:
//! today's traffic per channel, conversation threads with their unread mark, and who sent a
//! message from the pages.

use std::collections::HashMap;

use rusqlite::{Connection, params};

use super::StoreError;

/// One row of today's traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Traffic {
    pub direction: String,
    pub channel: String,
    pub count: u64,
}

/// Messages created at or after `since` (Unix ms), by direction and channel.
pub fn traffic_since(conn: &Connection, since: i64) -> Result<Vec<Traffic>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT direction, channel, COUNT(*) FROM messages WHERE created_at >= ?1 \
         GROUP BY direction, channel ORDER BY channel, direction",
    )?;
    let rows = stmt.query_map([since], |r| {
        Ok(Traffic {
            direction: r.get(0)?,
            channel: r.get(1)?,
            count: r.get(2)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A conversation: every message with one number, newest activity first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thread {
    pub peer: String,
    pub last_id: i64,
    /// Newer inbound messages than the operators have read.
    pub unread: bool,
}

/// Rows walked newest first looking for distinct numbers: bounds one request's work when a
/// few numbers hold most of the recent traffic.
const THREAD_SCAN: usize = 200_000;

/// The `limit` numbers with the newest messages, newest first. Walks the history newest first
/// (the primary key) until it has `limit` numbers, so it costs about the rows since the
/// `limit`-th number's last message, not the whole history.
pub fn threads(conn: &Connection, limit: u32) -> Result<Vec<Thread>, StoreError> {
    let mut walk = conn.prepare_cached("SELECT id, peer FROM messages ORDER BY id DESC")?;
    let mut rows = walk.query([])?;
    let mut found: Vec<(String, i64)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut walked = 0;
    while let Some(row) = rows.next()? {
        walked += 1;
        let peer: String = row.get(1)?;
        if seen.insert(peer.clone()) {
            found.push((peer, row.get(0)?));
            if found.len() >= limit as usize {
                break;
            }
        }
        if walked >= THREAD_SCAN {
            break;
        }
    }
    drop(rows);
    let mut unread = conn.prepare_cached(
        "SELECT COALESCE((SELECT MAX(id) FROM messages WHERE peer = ?1 AND direction = 'in'), 0) \
              > COALESCE((SELECT read_id FROM conversation_reads WHERE peer = ?1), 0)",
    )?;
    found
        .into_iter()
        .map(|(peer, last_id)| {
            let unread: bool = unread.query_row([&peer], |r| r.get(0))?;
            Ok(Thread {
                peer,
                last_id,
                unread,
            })
        })
        .collect()
}

/// Marks a conversation read up to its newest inbound message.
pub fn mark_read(conn: &Connection, peer: &str) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO conversation_reads (peer, read_id) \
         SELECT ?1, COALESCE(MAX(id), 0) FROM messages WHERE peer = ?1 AND direction = 'in' \
         ON CONFLICT (peer) DO UPDATE SET read_id = MAX(read_id, excluded.read_id)",
        params![peer],
    )?;
    Ok(())
}

/// Records the user who sent a message from the pages.
pub fn set_author(conn: &Connection, id: i64, user: &str) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE messages SET author = ?2 WHERE id = ?1",
        params![id, user],
    )?;
    Ok(())
}

/// Authors of the messages with these ids that were sent from the pages.
pub fn authors(conn: &Connection, ids: &[i64]) -> Result<HashMap<i64, String>, StoreError> {
    let mut stmt =
        conn.prepare_cached("SELECT author FROM messages WHERE id = ?1 AND author IS NOT NULL")?;
    let mut out = HashMap::new();
    for id in ids {
        if let Some(a) = stmt
            .query_map([id], |r| r.get::<_, String>(0))?
            .next()
            .transpose()?
        {
            out.insert(*id, a);
        }
    }
    Ok(out)
}

/// One state a message went through (migration 6's `message_states`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateChange {
    pub at: i64,
    pub state: String,
    pub transport: Option<String>,
    pub error: Option<String>,
}

/// Every state a message went through, oldest first.
pub fn state_changes(conn: &Connection, id: i64) -> Result<Vec<StateChange>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT at, state, transport, error FROM message_states WHERE message_id = ?1 \
         ORDER BY at, rowid",
    )?;
    let rows = stmt
        .query_map([id], |r| {
            Ok(StateChange {
                at: r.get(0)?,
                state: r.get(1)?,
                transport: r.get(2)?,
                error: r.get(3)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// The database file's size in bytes (pages × page size).
pub fn database_size(conn: &Connection) -> Result<u64, StoreError> {
    Ok(conn.query_row(
        "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
        [],
        |r| r.get(0),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_are_newest_first_and_unread_until_marked() {
        let dir = tempfile::tempdir().unwrap();
        let c = Connection::open(dir.path().join("t.db")).unwrap();
        for m in super::super::schema::MIGRATIONS {
            c.execute_batch(m).unwrap();
        }
        let add = |dir: &str, peer: &str| {
            c.execute(
                "INSERT INTO messages (direction, channel, peer, body, state, created_at, updated_at) \
                 VALUES (?1, 'sms', ?2, 'x', 'received', 10, 10)",
                params![dir, peer],
            )
            .unwrap();
            c.last_insert_rowid()
        };
        add("in", "+1");
        add("out", "+2");
        let last = add("out", "+1");
        let t = threads(&c, 10).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(
            (t[0].peer.as_str(), t[0].last_id, t[0].unread),
            ("+1", last, true)
        );
        assert!(!t[1].unread, "nothing came in from +2");
        mark_read(&c, "+1").unwrap();
        assert!(!threads(&c, 10).unwrap()[0].unread);
        add("in", "+1");
        assert!(threads(&c, 10).unwrap()[0].unread);
        set_author(&c, last, "ana").unwrap();
        assert_eq!(authors(&c, &[last, 1]).unwrap().get(&last).unwrap(), "ana");
        assert_eq!(traffic_since(&c, 0).unwrap().len(), 2);
        assert!(database_size(&c).unwrap() > 0);
    }

    #[test]
    fn every_state_change_is_logged_and_goes_with_its_message() {
        let dir = tempfile::tempdir().unwrap();
        let c = Connection::open(dir.path().join("t.db")).unwrap();
        for m in super::super::schema::MIGRATIONS {
            c.execute_batch(m).unwrap();
        }
        c.execute(
            "INSERT INTO messages (direction, channel, peer, body, state, created_at, updated_at) \
             VALUES ('out', 'sms', '+1', 'x', 'queued', 10, 10)",
            [],
        )
        .unwrap();
        let id = c.last_insert_rowid();
        let set = |state: &str, at: i64, error: Option<&str>| {
            c.execute(
                "UPDATE messages SET state = ?1, updated_at = ?2, last_error = ?3, \
                 transport = 'modem1' WHERE id = ?4",
                params![state, at, error, id],
            )
            .unwrap();
        };
        set("sending", 20, None);
        set("queued", 30, Some("no network"));
        set("queued", 31, Some("no network")); // not a change: not logged
        set("sending", 40, None);
        set("sent", 50, None);
        let log = state_changes(&c, id).unwrap();
        let states: Vec<(i64, &str)> = log.iter().map(|s| (s.at, s.state.as_str())).collect();
        assert_eq!(
            states,
            [
                (10, "queued"),
                (20, "sending"),
                (30, "queued"),
                (40, "sending"),
                (50, "sent")
            ]
        );
        assert_eq!(log[2].error.as_deref(), Some("no network"));
        assert_eq!(log[4].transport.as_deref(), Some("modem1"));
        c.execute("DELETE FROM messages WHERE id = ?1", [id])
            .unwrap();
        assert!(state_changes(&c, id).unwrap().is_empty());
    }
}
