//! SMS parts in the store. Inbound: the parts of a long message are kept until the last one
//! arrives (a restart between parts loses none), then joined into one message in the same
//! transaction; a part read twice is recognised by its PDU hash. Outbound: each part handed to
//! a modem is recorded with the reference the modem gave, so status reports can find it and a
//! resend can skip the parts already sent.

use rusqlite::{Connection, OptionalExtension, params};

use super::StoreError;
use super::messages::{self, Channel, MessageId, NewInbound};
pub use crate::model::{InboundSms, PartStatus, Received};

pub fn receive(conn: &Connection, sms: &InboundSms, now: i64) -> Result<Received, StoreError> {
    let Some((reference, total, seq)) = sms.concat else {
        let (id, new) = messages::insert_inbound(
            conn,
            &NewInbound {
                channel: Channel::Sms,
                transport: sms.transport.clone(),
                peer: sms.sender.clone(),
                body: sms.text.clone(),
                provider_ref: Some(sms.pdu_hash.clone()),
            },
            now,
        )?;
        return Ok(if new {
            Received::Message(id)
        } else {
            Received::Duplicate
        });
    };
    let inserted = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO sms_parts_in (transport, sender, ref, total, seq, body, pdu_hash, received_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![
            sms.transport,
            sms.sender,
            reference,
            total,
            seq,
            sms.text,
            sms.pdu_hash,
            now
        ])?;
    if inserted == 0 {
        return Ok(Received::Duplicate);
    }
    let parts = open_group(conn, &sms.transport, &sms.sender, reference, total)?;
    let distinct: std::collections::BTreeMap<u8, &(i64, u8, String)> =
        parts.iter().map(|p| (p.1, p)).collect();
    if distinct.len() < total as usize {
        return Ok(Received::PartPending);
    }
    let text: String = distinct.values().map(|p| p.2.as_str()).collect();
    let id = complete_group(conn, sms, &text, &parts, None, now)?;
    Ok(Received::Message(id))
}

type PartRow = (i64, u8, String);

fn open_group(
    conn: &Connection,
    transport: &str,
    sender: &str,
    reference: u16,
    total: u8,
) -> Result<Vec<PartRow>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, seq, body FROM sms_parts_in WHERE transport = ?1 AND sender = ?2 AND ref = ?3 \
         AND total = ?4 AND message_id IS NULL ORDER BY seq, id",
    )?;
    let rows = stmt.query_map(params![transport, sender, reference, total], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn complete_group(
    conn: &Connection,
    first: &InboundSms,
    text: &str,
    parts: &[PartRow],
    problem: Option<String>,
    now: i64,
) -> Result<MessageId, StoreError> {
    let (id, _) = messages::insert_inbound(
        conn,
        &NewInbound {
            channel: Channel::Sms,
            transport: first.transport.clone(),
            peer: first.sender.clone(),
            body: text.to_string(),
            provider_ref: Some(format!("concat:{}", first.pdu_hash)),
        },
        now,
    )?;
    if let Some(p) = problem {
        conn.prepare_cached("UPDATE messages SET last_error = ?2 WHERE id = ?1")?
            .execute(params![id.0, p])?;
    }
    let mut mark = conn.prepare_cached("UPDATE sms_parts_in SET message_id = ?2 WHERE id = ?1")?;
    for (part_id, _, _) in parts {
        mark.execute(params![part_id, id.0])?;
    }
    Ok(id)
}

/// Long messages whose last part arrived before `cutoff` and are still incomplete are stored
/// as they are, the missing parts shown as `[…]` and named in `last_error`: nothing is
/// silently dropped. Returns the messages stored.
pub fn flush_incomplete(
    conn: &Connection,
    cutoff: i64,
    now: i64,
) -> Result<Vec<MessageId>, StoreError> {
    let groups: Vec<(String, String, u16, u8)> = {
        let mut stmt = conn.prepare_cached(
            "SELECT transport, sender, ref, total FROM sms_parts_in WHERE message_id IS NULL \
             GROUP BY transport, sender, ref, total HAVING MAX(received_at) < ?1",
        )?;
        let rows = stmt.query_map([cutoff], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?;
        rows.collect::<Result<_, _>>()?
    };
    let mut stored = Vec::new();
    for (transport, sender, reference, total) in groups {
        let parts = open_group(conn, &transport, &sender, reference, total)?;
        let mut text = String::new();
        let mut missing = Vec::new();
        for seq in 1..=total {
            match parts.iter().find(|p| p.1 == seq) {
                Some(p) => text.push_str(&p.2),
                None => {
                    text.push_str("[…]");
                    missing.push(seq.to_string());
                }
            }
        }
        let hash: String = conn
            .prepare_cached("SELECT pdu_hash FROM sms_parts_in WHERE id = ?1")?
            .query_row([parts[0].0], |r| r.get(0))?;
        let first = InboundSms {
            transport,
            sender,
            text: String::new(),
            concat: Some((reference, total, 0)),
            pdu_hash: hash,
        };
        let problem = format!(
            "incomplete: part(s) {} of {total} never arrived",
            missing.join(", ")
        );
        stored.push(complete_group(
            conn,
            &first,
            &text,
            &parts,
            Some(problem),
            now,
        )?);
    }
    // Completed parts are kept a week to recognise late re-reads, then forgotten.
    conn.prepare_cached(
        "DELETE FROM sms_parts_in WHERE message_id IS NOT NULL AND received_at < ?1",
    )?
    .execute([now - 7 * 86_400_000])?;
    Ok(stored)
}

pub fn record_part_sent(
    conn: &Connection,
    message: MessageId,
    seq: u8,
    total: u8,
    transport: &str,
    mr: u8,
    now: i64,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO sms_parts_out (message_id, seq, total, transport, mr, status, sent_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, 'sent', ?6)",
    )?
    .execute(params![message.0, seq, total, transport, mr, now])?;
    Ok(())
}

/// Parts of `message` already handed to a modem (a retry sends only the others).
pub fn parts_sent(conn: &Connection, message: MessageId) -> Result<Vec<u8>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT seq FROM sms_parts_out WHERE message_id = ?1")?;
    let rows = stmt.query_map([message.0], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Applies a status report for the part the modem numbered `mr` (most recent such part sent to
/// `recipient` through `transport`). The message becomes `delivered` when every part is, or
/// `failed` when one failed. Returns the message and whether its state changed.
pub fn apply_part_status(
    conn: &Connection,
    transport: &str,
    mr: u8,
    recipient: &str,
    status: &PartStatus,
    now: i64,
) -> Result<Option<MessageId>, StoreError> {
    let found: Option<(i64, u8)> = conn
        .prepare_cached(
            "SELECT p.message_id, p.seq FROM sms_parts_out p JOIN messages m ON m.id = p.message_id \
             WHERE p.transport = ?1 AND p.mr = ?2 AND (m.peer = ?3 OR ?3 = '') \
             ORDER BY p.sent_at DESC LIMIT 1",
        )?
        .query_row(params![transport, mr, recipient], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((message, seq)) = found else {
        return Ok(None);
    };
    let label = match status {
        PartStatus::Delivered => "delivered",
        PartStatus::Failed(_) => "failed",
    };
    conn.prepare_cached("UPDATE sms_parts_out SET status = ?3 WHERE message_id = ?1 AND seq = ?2")?
        .execute(params![message, seq, label])?;
    match status {
        PartStatus::Failed(reason) => {
            conn.prepare_cached(
                "UPDATE messages SET state = 'failed', last_error = ?2, updated_at = ?3 \
                 WHERE id = ?1 AND state IN ('sent', 'sending')",
            )?
            .execute(params![message, format!("part {seq}: {reason}"), now])?;
        }
        PartStatus::Delivered => {
            let (total, delivered): (i64, i64) = conn
                .prepare_cached(
                    "SELECT MAX(total), SUM(status = 'delivered') FROM sms_parts_out WHERE message_id = ?1",
                )?
                .query_row([message], |r| Ok((r.get(0)?, r.get(1)?)))?;
            if delivered >= total {
                conn.prepare_cached(
                    "UPDATE messages SET state = 'delivered', delivered_at = ?2, updated_at = ?2 \
                     WHERE id = ?1 AND state = 'sent'",
                )?
                .execute(params![message, now])?;
            }
        }
    }
    Ok(Some(MessageId(message)))
}

/// Keeps the raw PDU of an SMS the modem cut short (user data ended before its TP-UDL) on its
/// message: `last_error` says the text is what arrived and carries the PDU as hex. `pdu_hash`
/// is the one given to [`receive`]. Returns false while the part's message is not complete
/// yet (call again when [`receive`] answers [`Received::Message`] for a later part).
pub fn note_truncated(
    conn: &Connection,
    transport: &str,
    pdu_hash: &str,
    raw_hex: &str,
) -> Result<bool, StoreError> {
    let single: Option<i64> = conn
        .prepare_cached(
            "SELECT id FROM messages WHERE direction = 'in' AND transport = ?1 AND provider_ref = ?2",
        )?
        .query_row(params![transport, pdu_hash], |r| r.get(0))
        .optional()?;
    let id = match single {
        Some(id) => Some(id),
        None => conn
            .prepare_cached(
                "SELECT message_id FROM sms_parts_in WHERE transport = ?1 AND pdu_hash = ?2",
            )?
            .query_row(params![transport, pdu_hash], |r| r.get::<_, Option<i64>>(0))
            .optional()?
            .flatten(),
    };
    let Some(id) = id else { return Ok(false) };
    let note =
        format!("the modem cut this SMS short; the text is what arrived; raw PDU: {raw_hex}");
    conn.prepare_cached(
        "UPDATE messages SET last_error = CASE WHEN last_error IS NULL THEN ?2 \
         ELSE last_error || '; ' || ?2 END WHERE id = ?1",
    )?
    .execute(params![id, note])?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{State, Store};

    fn part(reference: u16, total: u8, seq: u8, text: &str) -> InboundSms {
        InboundSms {
            transport: "modem1".into(),
            sender: "+5491123456789".into(),
            text: text.into(),
            concat: Some((reference, total, seq)),
            pdu_hash: format!("h{reference}-{seq}-{text}"),
        }
    }

    #[tokio::test]
    async fn parts_join_in_any_order_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let r = |p: InboundSms| {
            let store = store.clone();
            async move { store.write(move |c| receive(c, &p, 1)).await.unwrap() }
        };
        assert_eq!(r(part(7, 3, 3, "c")).await, Received::PartPending);
        assert_eq!(r(part(7, 3, 1, "a")).await, Received::PartPending);
        assert_eq!(r(part(7, 3, 1, "a")).await, Received::Duplicate);
        let Received::Message(id) = r(part(7, 3, 2, "b")).await else {
            panic!()
        };
        let m = store.get(id).await.unwrap();
        assert_eq!((m.body.as_str(), m.state), ("abc", State::Received));
        // A re-read of a part of the completed message changes nothing.
        assert_eq!(r(part(7, 3, 2, "b")).await, Received::Duplicate);
        // The same reference reused later starts a new message.
        assert_eq!(r(part(7, 2, 1, "x")).await, Received::PartPending);
        let single = InboundSms {
            concat: None,
            ..part(0, 1, 1, "saldo")
        };
        assert!(matches!(r(single.clone()).await, Received::Message(_)));
        assert_eq!(r(single).await, Received::Duplicate);
        // The pending group is flushed as incomplete after its time-out.
        let flushed = store.write(|c| flush_incomplete(c, 10, 20)).await.unwrap();
        assert_eq!(flushed.len(), 1);
        let m = store.get(flushed[0]).await.unwrap();
        assert_eq!(m.body, "x[…]");
        assert!(m.last_error.unwrap().contains("part(s) 2 of 2"));
    }

    #[tokio::test]
    async fn a_truncated_sms_keeps_its_raw_pdu() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let single = InboundSms {
            concat: None,
            pdu_hash: "cut-1".into(),
            ..part(0, 1, 1, "Hola")
        };
        let Received::Message(id) = store.write(move |c| receive(c, &single, 1)).await.unwrap()
        else {
            panic!()
        };
        assert!(
            store
                .write(|c| note_truncated(c, "modem1", "cut-1", "00040ED0"))
                .await
                .unwrap()
        );
        let m = store.get(id).await.unwrap();
        assert_eq!(m.body, "Hola");
        assert!(m.last_error.unwrap().ends_with("raw PDU: 00040ED0"));
        // A part of a long message: noted once the message is complete.
        let first = part(9, 2, 1, "parte ");
        let hash = first.pdu_hash.clone();
        store.write(move |c| receive(c, &first, 1)).await.unwrap();
        let h = hash.clone();
        assert!(
            !store
                .write(move |c| note_truncated(c, "modem1", &h, "AA"))
                .await
                .unwrap()
        );
        let second = part(9, 2, 2, "dos");
        let Received::Message(id) = store.write(move |c| receive(c, &second, 1)).await.unwrap()
        else {
            panic!()
        };
        assert!(
            store
                .write(move |c| note_truncated(c, "modem1", &hash, "AA"))
                .await
                .unwrap()
        );
        assert!(
            store
                .get(id)
                .await
                .unwrap()
                .last_error
                .unwrap()
                .contains("raw PDU: AA")
        );
    }
}
