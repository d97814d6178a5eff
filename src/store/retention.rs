//! Retention: finished messages (delivered, failed, cancelled) older than
//! `[daemon] retention_days` are deleted with their SMS parts and their search-index entries,
//! so the history does not grow forever on an SD card.
//!
//! Off the hot path: a background task deletes in small batches (each its own short write, so
//! accepts and claims never wait behind a long delete), pausing between batches, and sleeps
//! an hour between rounds. Age counts from `created_at` (indexed); messages still queued, sent
//! or received are never touched.

use std::time::Duration;

use rusqlite::{Connection, params};

use super::{Store, StoreError, now_ms};
use crate::shutdown::Shutdown;

/// Messages deleted per write: a few milliseconds of the writer's time.
pub const BATCH: u32 = 500;
/// Pause between batches of one round: the writer serves everyone else in between.
const BATCH_PAUSE: Duration = Duration::from_millis(100);
/// Time between rounds.
const ROUND_EVERY: Duration = Duration::from_secs(3600);
const DAY_MS: i64 = 24 * 3600 * 1000;

/// Deletes up to `limit` finished messages created before `cutoff` (Unix ms), with their SMS
/// parts and search-index entries. Returns how many messages went.
pub fn prune_batch(conn: &Connection, cutoff: i64, limit: u32) -> Result<usize, StoreError> {
    conn.execute_batch(
        "CREATE TEMP TABLE IF NOT EXISTS prune_ids (id INTEGER PRIMARY KEY); DELETE FROM temp.prune_ids;",
    )?;
    let n = conn
        .prepare_cached(
            "INSERT INTO temp.prune_ids (id) SELECT id FROM messages \
             WHERE created_at < ?1 AND state IN ('delivered', 'read', 'failed', 'cancelled') \
             ORDER BY created_at LIMIT +?2",
        )?
        .execute(params![cutoff, limit])?;
    if n == 0 {
        return Ok(0);
    }
    // The search index is an external-content FTS table: an indexed row is removed by giving
    // it back its indexed text. Rows past the index mark were never indexed.
    conn.prepare_cached(
        "INSERT INTO messages_fts (messages_fts, rowid, body) \
         SELECT 'delete', m.id, m.body FROM messages m JOIN temp.prune_ids p ON p.id = m.id \
         WHERE m.id <= (SELECT value FROM meta WHERE key = 'fts_upto')",
    )?
    .execute([])?;
    for sql in [
        "DELETE FROM sms_parts_out WHERE message_id IN (SELECT id FROM temp.prune_ids)",
        "DELETE FROM sms_parts_in WHERE message_id IN (SELECT id FROM temp.prune_ids)",
        "DELETE FROM messages WHERE id IN (SELECT id FROM temp.prune_ids)",
        "DELETE FROM temp.prune_ids",
    ] {
        conn.prepare_cached(sql)?.execute([])?;
    }
    Ok(n)
}

/// One round: deletes every finished message older than `days`, batch by batch. Returns how
/// many went.
pub async fn prune_round(store: &Store, days: u32, now: i64) -> Result<usize, StoreError> {
    let cutoff = now - i64::from(days) * DAY_MS;
    let mut total = 0;
    loop {
        let n = store.write(move |c| prune_batch(c, cutoff, BATCH)).await?;
        total += n;
        if n < BATCH as usize {
            return Ok(total);
        }
        tokio::time::sleep(BATCH_PAUSE).await;
    }
}

/// The retention task: a round at start (after a minute, out of the start-up's way) and every
/// hour, until `shutdown`. `days = 0` keeps everything. Errors are logged and retried next round.
pub async fn run(store: Store, days: u32, mut shutdown: Shutdown) {
    if days == 0 {
        return;
    }
    let mut wait = Duration::from_secs(60);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.wait() => return,
        }
        wait = ROUND_EVERY;
        match prune_round(&store, days, now_ms()).await {
            Ok(0) => {}
            Ok(n) => {
                log::info!("retention: deleted {n} finished message(s) older than {days} days")
            }
            Err(e) => log::warn!("retention: {e:#}; trying again in an hour"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Channel, NewOutbound, Priority, messages};

    #[tokio::test]
    async fn old_finished_messages_go_with_their_parts_and_index_entries() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let now = 400 * DAY_MS;
        let old = now - 366 * DAY_MS;
        let recent = now - 10 * DAY_MS;
        // (created_at, final state) — 1200 old delivered ones need three batches.
        let mut rows: Vec<(i64, &str)> = vec![(old, "delivered"); 1200];
        rows.extend([
            (old, "failed"),
            (old, "cancelled"),
            (old, "queued"),
            (old, "sent"),
            (old, "scheduled"),
            (recent, "delivered"),
            (recent, "failed"),
        ]);
        let ids = store
            .write(move |c| {
                let mut ids = Vec::new();
                for (i, (at, state)) in rows.iter().enumerate() {
                    let placed = messages::insert_outbound(
                        c,
                        &[NewOutbound {
                            channel: Channel::Sms,
                            peer: "+5491123456789".into(),
                            body: format!("factura número {i}"),
                            priority: Priority::Bulk,
                            customer_id: None,
                            window: None,
                            not_before: None,
                        }],
                        *at,
                    )?;
                    let id = placed[0].0.0;
                    c.execute(
                        "UPDATE messages SET state = ?2 WHERE id = ?1",
                        params![id, state],
                    )?;
                    c.execute(
                        "INSERT INTO sms_parts_out (message_id, seq, total, transport, mr, sent_at) \
                         VALUES (?1, 1, 1, 'modem1', ?2, ?3)",
                        params![id, (id % 256), at],
                    )?;
                    ids.push(id);
                }
                Ok(ids)
            })
            .await
            .unwrap();
        // Index half of them, so both indexed and unindexed rows are pruned.
        store.write(|c| messages::index_text(c, 600)).await.unwrap();
        let deleted = prune_round(&store, 365, now).await.unwrap();
        assert_eq!(deleted, 1202);
        let (left, parts, fts_ok): (Vec<String>, i64, bool) = store
            .write(|c| {
                let left = c
                    .prepare("SELECT state FROM messages ORDER BY id")?
                    .query_map([], |r| r.get(0))?
                    .collect::<Result<_, _>>()?;
                let parts = c.query_row("SELECT COUNT(*) FROM sms_parts_out", [], |r| r.get(0))?;
                let fts_ok = c
                    .execute(
                        "INSERT INTO messages_fts (messages_fts) VALUES ('integrity-check')",
                        [],
                    )
                    .is_ok();
                Ok((left, parts, fts_ok))
            })
            .await
            .unwrap();
        assert_eq!(
            left,
            ["queued", "sent", "scheduled", "delivered", "failed"],
            "unfinished and recent ones stay"
        );
        assert_eq!(parts, 5, "parts go with their messages");
        assert!(fts_ok, "the search index stays consistent");
        assert_eq!(ids.len(), 1207);
        // Nothing left to prune: a round is one read-sized write.
        assert_eq!(prune_round(&store, 365, now).await.unwrap(), 0);
    }
}
